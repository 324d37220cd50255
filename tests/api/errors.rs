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

#[tokio::test]
async fn an_id_of_the_wrong_kind_in_a_path_is_not_found_for_that_kind() {
    let app = TestApp::spawn().await;
    let thread = app.create("/threads", json!({})).await;
    let asst = app.create("/assistants", json!({"model": "m"})).await;
    let vs = app.create("/vector_stores", json!({})).await;
    for (path, message) in [
        (
            format!("/threads/{asst}"),
            format!("No thread found with id '{asst}'."),
        ),
        (
            format!("/threads/{thread}/runs/{thread}"),
            format!("No run found with id '{thread}'."),
        ),
        (
            format!("/assistants/{thread}/"),
            format!("No assistant found with id '{thread}'."),
        ),
        (
            format!("/vector_stores/{asst}/files"),
            format!("No vector store found with id '{asst}'."),
        ),
        (
            format!("/vector_stores/{vs}/files/{asst}"),
            format!("No vector store file found with id '{asst}'."),
        ),
    ] {
        let (s, e) = app.get(path.trim_end_matches('/')).await;
        assert_eq!(s, 404, "{path}: {e}");
        assert_error(&e);
        assert_eq!(e["error"]["message"], message.as_str(), "{path}");
    }
    // The right kind still finds the object.
    let (s, _) = app.get(&format!("/threads/{thread}")).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn an_id_of_the_wrong_kind_in_a_body_names_no_object() {
    let app = TestApp::spawn().await;
    let thread = app.create("/threads", json!({})).await;
    let vs = app.create("/vector_stores", json!({})).await;
    // A file's id where a file belongs is found; another kind's id is not, whatever it is.
    let file = app.upload_ok("a.txt", "alpha").await;
    for (path, body, param, message) in [
        (
            format!("/vector_stores/{vs}/files"),
            json!({"file_id": vs}),
            "file_id",
            format!("No file found with id '{vs}'."),
        ),
        (
            format!("/vector_stores/{vs}/file_batches"),
            json!({"file_ids": [file, thread]}),
            "file_ids",
            format!("No file found with id '{thread}'."),
        ),
        (
            "/vector_stores".to_string(),
            json!({"file_ids": [thread]}),
            "file_ids",
            format!("No file found with id '{thread}'."),
        ),
        (
            "/assistants".to_string(),
            json!({"model": "m", "tools": [{"type": "file_search"}],
                   "tool_resources": {"file_search": {"vector_store_ids": [file]}}}),
            "tool_resources.file_search.vector_store_ids",
            format!("No vector store found with id '{file}'."),
        ),
        (
            format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": "x",
                   "attachments": [{"file_id": vs, "tools": [{"type": "file_search"}]}]}),
            "attachments",
            format!("No file found with id '{vs}'."),
        ),
    ] {
        let (s, e) = app.post(&path, body).await;
        assert_eq!(s, 400, "{path}: {e}");
        let e = assert_error(&e);
        assert_eq!(e["param"], param, "{path}");
        assert_eq!(e["message"], message.as_str(), "{path}");
    }
    // A run's assistant: 404 for an id of another kind, without a query.
    let (s, e) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": thread}),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    assert_eq!(
        assert_error(&e)["message"],
        format!("No assistant found with id '{thread}'.").as_str()
    );
    // The messages filter takes run ids only.
    let (s, e) = app
        .get(&format!("/threads/{thread}/messages?run_id={thread}"))
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "run_id");
    // An upload's parts: another kind's id is no part of it.
    let (s, up) = app
        .post(
            "/uploads",
            json!({"bytes": 5, "filename": "u.txt", "mime_type": "text/plain", "purpose": "assistants"}),
        )
        .await;
    assert_eq!(s, 200, "{up}");
    let (s, e) = app
        .post(
            &format!("/uploads/{}/complete", up["id"].as_str().unwrap()),
            json!({"part_ids": [file]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "part_ids");
}
