use assistants_tests::{assert_error, json, TestApp};

async fn add_part(app: &TestApp, upload: &str, data: &[u8]) -> (u16, serde_json::Value) {
    let form = reqwest::multipart::Form::new().part(
        "data",
        reqwest::multipart::Part::bytes(data.to_vec()).file_name("blob"),
    );
    let r = app
        .client
        .post(app.url(&format!("/uploads/{upload}/parts")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn parts_are_concatenated_in_the_given_order() {
    let app = TestApp::spawn().await;
    let (s, u) = app
        .post("/uploads", json!({"filename": "big.txt", "purpose": "assistants", "bytes": 11, "mime_type": "text/plain"}))
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["status"], "pending");
    assert_eq!(u["object"], "upload");
    let uid = u["id"].as_str().unwrap();
    let (s, p1) = add_part(&app, uid, b"world").await;
    assert_eq!(s, 200, "{p1}");
    assert_eq!(p1["object"], "upload.part");
    let (_, p2) = add_part(&app, uid, b"hello ").await;

    let (s, e) = app
        .post(
            &format!("/uploads/{uid}/complete"),
            json!({"part_ids": [p1["id"]]}),
        )
        .await;
    assert_eq!(s, 400, "size mismatch must be refused: {e}");

    let (s, done) = app
        .post(
            &format!("/uploads/{uid}/complete"),
            json!({"part_ids": [p2["id"], p1["id"]]}),
        )
        .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "completed");
    let fid = done["file"]["id"].as_str().unwrap();
    assert_eq!(done["file"]["bytes"], 11);
    let body = app
        .client
        .get(app.url(&format!("/files/{fid}/content")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello world");

    let (s, e) = app
        .post(
            &format!("/uploads/{uid}/complete"),
            json!({"part_ids": [p2["id"], p1["id"]]}),
        )
        .await;
    assert_eq!(s, 400, "completing twice: {e}");
    assert_error(&e);
}

#[tokio::test]
async fn cancelled_uploads_take_no_parts() {
    let app = TestApp::spawn().await;
    let uid = app.create("/uploads", json!({"filename": "a.txt", "purpose": "assistants", "bytes": 3, "mime_type": "text/plain"})).await;
    let (s, c) = app.post(&format!("/uploads/{uid}/cancel"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(c["status"], "cancelled");
    let (s, _) = add_part(&app, &uid, b"abc").await;
    assert_eq!(s, 400);
    // A large part is refused with a clean response too (the body is drained, not cut off).
    let (s, e) = add_part(&app, &uid, &vec![b'x'; 2 << 20]).await;
    assert_eq!(s, 400, "{e}");
    for bad in [
        json!({"filename": "a/b", "purpose": "assistants", "bytes": 3, "mime_type": "t"}),
        json!({"filename": "a", "purpose": "assistants", "bytes": 0, "mime_type": "t"}),
        json!({"filename": "a", "purpose": "nope", "bytes": 3, "mime_type": "t"}),
        json!({"filename": "a", "purpose": "assistants", "bytes": 3}),
    ] {
        let (s, e) = app.post("/uploads", bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {e}");
    }
    let (s, _) = app
        .post(
            "/uploads/upload_missing/complete",
            json!({"part_ids": ["part_x"]}),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn parts_may_not_exceed_the_declared_size() {
    let app = TestApp::spawn().await;
    let uid = app.create("/uploads", json!({"filename": "a.txt", "purpose": "assistants", "bytes": 5, "mime_type": "text/plain"})).await;
    assert_eq!(add_part(&app, &uid, b"abc").await.0, 200);
    let (s, e) = add_part(&app, &uid, b"def").await;
    assert_eq!(s, 400, "3 + 3 bytes exceed the declared 5: {e}");
    let (s, _) = add_part(&app, &uid, b"de").await;
    assert_eq!(s, 200, "exactly the declared size is fine");
}
