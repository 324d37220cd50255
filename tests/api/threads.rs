use assistants_tests::{assert_error, json, TestApp};

#[tokio::test]
async fn threads_with_messages() {
    let app = TestApp::spawn().await;
    let (s, t) = app
        .post(
            "/threads",
            json!({"messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": [{"type": "text", "text": "second"}], "metadata": {"k": "v"}}
            ], "metadata": {"topic": "x"}}),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let tid = t["id"].as_str().unwrap();
    assert!(tid.starts_with("thread_"));
    assert_eq!(t["object"], "thread");

    let (_, list) = app.get(&format!("/threads/{tid}/messages?order=asc")).await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["content"][0]["text"]["value"], "first");
    assert_eq!(data[0]["content"][0]["text"]["annotations"], json!([]));
    assert_eq!(data[1]["role"], "assistant");
    assert_eq!(data[1]["object"], "thread.message");
    assert_eq!(data[1]["thread_id"], tid);
    assert!(data[1]["id"].as_str().unwrap().starts_with("msg_"));

    let (s, m) = app
        .post(
            &format!("/threads/{tid}/messages"),
            json!({"role": "user", "content": "third"}),
        )
        .await;
    assert_eq!(s, 200);
    let mid = m["id"].as_str().unwrap();
    let (_, upd) = app
        .post(
            &format!("/threads/{tid}/messages/{mid}"),
            json!({"metadata": {"a": "b"}}),
        )
        .await;
    assert_eq!(upd["metadata"], json!({"a": "b"}));
    assert_eq!(upd["content"], m["content"]);

    let (_, by_run) = app
        .get(&format!("/threads/{tid}/messages?run_id=run_none"))
        .await;
    assert_eq!(by_run["data"], json!([]));

    // A message is only reachable through its own thread.
    let other = app.create("/threads", json!({})).await;
    let (s, e) = app.get(&format!("/threads/{other}/messages/{mid}")).await;
    assert_eq!(s, 404, "{e}");

    let (s, d) = app.delete(&format!("/threads/{tid}/messages/{mid}")).await;
    assert_eq!(s, 200);
    assert_eq!(d["object"], "thread.message.deleted");

    let (_, t2) = app
        .post(&format!("/threads/{tid}"), json!({"metadata": {}}))
        .await;
    assert_eq!(t2["metadata"], json!({}));
    let (s, d) = app.delete(&format!("/threads/{tid}")).await;
    assert_eq!(s, 200);
    assert_eq!(d["object"], "thread.deleted");
    let (s, _) = app.get(&format!("/threads/{tid}/messages")).await;
    assert_eq!(s, 404);
    let (s, _) = app
        .get(&format!(
            "/threads/{tid}/messages/{}",
            data[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 404, "messages go with their thread");
}

#[tokio::test]
async fn a_bad_message_rejects_the_whole_thread() {
    let app = TestApp::spawn().await;
    let (s, e) = app
        .post("/threads", json!({"messages": [{"role": "user", "content": "ok"}, {"role": "system", "content": "no"}]}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(assert_error(&e)["param"], "messages[1].role");
    let (s, e) = app.post("/threads", json!({"messages": [{"role": "user", "content": "x", "attachments": [{"file_id": "file-missing", "tools": [{"type": "file_search"}]}]}]})).await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = app
        .post(
            "/threads/thread_missing/messages",
            json!({"role": "user", "content": "x"}),
        )
        .await;
    assert_eq!(s, 404);
    let tid = app.create("/threads", json!({})).await;
    for bad in [
        json!({"role": "user", "content": []}),
        json!({"role": "user", "content": 5}),
        json!({"role": "user"}),
        json!({"role": "user", "content": [{"type": "video"}]}),
    ] {
        let (s, e) = app
            .post(&format!("/threads/{tid}/messages"), bad.clone())
            .await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert_error(&e);
    }
    let (_, list) = app.get(&format!("/threads/{tid}/messages")).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn thread_tool_resources_can_create_a_vector_store() {
    let app = TestApp::spawn().await;
    let f = app
        .upload_ok("notes.txt", "penguins live in antarctica")
        .await;
    let (s, t) = app
        .post(
            "/threads",
            json!({"tool_resources": {"file_search": {"vector_stores": [{"file_ids": [f]}]}}}),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let vs = t["tool_resources"]["file_search"]["vector_store_ids"][0]
        .as_str()
        .unwrap();
    let v = app.wait_vs(vs).await;
    assert_eq!(v["file_counts"]["completed"], 1);
}
