use assistants_tests::{assert_error, json, TestApp};

#[tokio::test]
async fn malformed_requests_get_the_error_envelope() {
    let app = TestApp::spawn_with(|s| s.max_json_bytes = 64 * 1024).await;
    for body in [&b"{"[..], b"[]", b"\"str\"", b"{\"model\": }", b"\xff\xfe"] {
        let (s, e) = app.post_raw("/assistants", body.to_vec()).await;
        assert_eq!(s, 400, "{body:?}: {e}");
        assert_error(&e);
    }
    let (s, e) = app
        .post_raw(
            "/assistants",
            format!("{{\"model\": \"{}\"}}", "x".repeat(70_000)).into_bytes(),
        )
        .await;
    assert_eq!(s, 413, "{e}");
    assert_error(&e);

    let (s, e) = app.get("/no/such/route").await;
    assert_eq!(s, 404);
    assert_error(&e);
    let (s, e) = app.delete("/threads").await;
    assert_eq!(s, 405, "{e}");
    assert_error(&e);

    // GET and DELETE may arrive with a JSON content type and an empty body; bodiless POSTs too.
    let id = app.create("/assistants", json!({"model": "m"})).await;
    let r = app
        .client
        .get(app.url(&format!("/assistants/{id}")))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, t) = app.post_raw("/threads", Vec::new()).await;
    assert_eq!(s, 200, "{t}");
    // `"stream": false` and unknown keys are accepted.
    let (s, _) = app
        .post("/threads", json!({"stream": false, "whatever": [1, 2]}))
        .await;
    assert_eq!(s, 200);
    // Every successful GET carries the poll hint the SDK pollers use.
    let r = app
        .client
        .get(app.url(&format!("/assistants/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["openai-poll-after-ms"], "100");
}
