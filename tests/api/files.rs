use assistants_tests::{assert_error, json, TestApp};

fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

#[tokio::test]
async fn upload_list_download_delete() {
    let app = TestApp::spawn().await;
    let bytes = random_bytes(3 * 1024 * 1024 + 17);
    let (s, f) = app.upload("data.bin", bytes.clone(), "assistants").await;
    assert_eq!(s, 200, "{f}");
    let id = f["id"].as_str().unwrap();
    assert!(id.starts_with("file-"));
    assert_eq!(f["object"], "file");
    assert_eq!(f["bytes"], bytes.len());
    assert_eq!(f["filename"], "data.bin");
    assert_eq!(f["purpose"], "assistants");
    assert_eq!(f["status"], "processed");

    let other = app.upload_ok("other.jsonl", "{}").await;
    let _ = other;
    let (s, v) = app.upload("x.txt", b"hello".to_vec(), "vision").await;
    assert_eq!(s, 200, "{v}");

    let (_, list) = app.get("/files?purpose=assistants").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (_, all) = app.get("/files").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);

    // Content is the raw bytes whatever the Accept header says.
    let r = app
        .client
        .get(app.url(&format!("/files/{id}/content")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[..]);

    let (s, d) = app.delete(&format!("/files/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(d, json!({"id": id, "object": "file", "deleted": true}));
    assert_eq!(app.get(&format!("/files/{id}")).await.0, 404);
    assert_eq!(app.get(&format!("/files/{id}/content")).await.0, 404);
    assert_eq!(app.delete(&format!("/files/{id}")).await.0, 404);
}

#[tokio::test]
async fn purpose_may_follow_the_file_part() {
    let app = TestApp::spawn().await;
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"abc".to_vec()).file_name("late.txt"),
        )
        .text("purpose", "assistants");
    let r = app
        .client
        .post(app.url("/files"))
        .bearer_auth("k")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn refused_uploads_leave_nothing_behind() {
    let app = TestApp::spawn_with(|s| s.max_upload_bytes = 1024 * 1024).await;
    let cases: Vec<(&str, Vec<u8>, &str, u16)> = vec![
        ("../etc/passwd", b"x".to_vec(), "assistants", 400),
        ("a\\b.txt", b"x".to_vec(), "assistants", 400),
        ("ok.txt", b"x".to_vec(), "world-domination", 400),
        ("big.bin", random_bytes(1024 * 1024 + 1), "assistants", 413),
    ];
    for (name, bytes, purpose, status) in cases {
        let (s, e) = app.upload(name, bytes, purpose).await;
        assert_eq!(s.as_u16(), status, "{name}: {e}");
        assert_error(&e);
    }
    // Missing parts.
    let form = reqwest::multipart::Form::new().text("purpose", "assistants");
    let r = app
        .client
        .post(app.url("/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"a".to_vec()).file_name("a.txt"),
    );
    let r = app
        .client
        .post(app.url("/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Not multipart at all.
    let (s, e) = app.post("/files", json!({"purpose": "assistants"})).await;
    assert_eq!(s, 400, "{e}");

    let (_, list) = app.get("/files").await;
    assert_eq!(
        list["data"],
        json!([]),
        "no file object survives a refused upload"
    );
    // And exactly the limit is fine.
    let (s, _) = app
        .upload("edge.bin", random_bytes(1024 * 1024), "assistants")
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn expired_files_are_deleted_everywhere() {
    let app = TestApp::spawn().await;
    let r = upload_expiring(&app, "tmp.txt", b"short-lived words", "3600").await;
    assert_eq!(r.status(), 200);
    let f: serde_json::Value = r.json().await.unwrap();
    let id = f["id"].as_str().unwrap().to_string();
    assert_eq!(f["expires_at"], f["created_at"].as_i64().unwrap() + 3600);
    let keep = app.upload_ok("keep.txt", "long-lived words").await;
    let vs = app
        .create("/vector_stores", json!({"file_ids": [id, keep]}))
        .await;
    app.wait_vs(&vs).await;

    // Nothing is due yet; then move the expiry into the past and sweep as the janitor would.
    let janitor = app.janitor().await;
    assert_eq!(janitor.sweep().await.unwrap(), 0);
    assistants_core::store::testing::admin_execute(
        &app.settings().storage.database_url,
        &format!("UPDATE files SET expires_at = 1 WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    assert_eq!(janitor.sweep().await.unwrap(), 1);

    assert_eq!(app.get(&format!("/files/{id}")).await.0, 404);
    assert_eq!(app.get(&format!("/files/{keep}")).await.0, 200);
    let (_, v) = app.get(&format!("/vector_stores/{vs}")).await;
    assert_eq!(v["file_counts"]["total"], 1);

    let r = upload_expiring(&app, "x.txt", b"x", "10").await;
    assert_eq!(r.status(), 400, "expiry below the 3600 s minimum");
}

/// `POST /files` with `expires_after` as the SDKs send it (bracketed form fields).
async fn upload_expiring(
    app: &TestApp,
    name: &str,
    bytes: &[u8],
    seconds: &str,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("purpose", "assistants")
        .text("expires_after[anchor]", "created_at")
        .text("expires_after[seconds]", seconds.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string()),
        );
    app.client
        .post(app.url("/files"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}
