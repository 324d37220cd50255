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

/// Threads of the default project, read straight from the database (the API cannot list
/// threads).
async fn stored_threads(app: &TestApp) -> usize {
    use assistants_core::model::Thread;
    use assistants_core::store::{keys::DEFAULT_PROJECT, ListParams, Store};
    let store = Store::connect(&app.database_url).await.unwrap();
    let params = ListParams {
        limit: 100,
        ..Default::default()
    };
    store
        .list_raw::<Thread>(DEFAULT_PROJECT, None, vec![], &params)
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn create_thread_and_run_writes_both_or_neither() {
    let app = TestApp::spawn().await;
    let asst = app.create("/assistants", json!({"model": "gpt-4o"})).await;
    let body = json!({
        "assistant_id": asst,
        "thread": {"messages": [{"role": "user", "content": "hello"}]},
    });
    // The database refuses the run, after the thread and its message were written in the
    // same transaction: nothing of the request may remain.
    let postgres = app.database_url.starts_with("postgres");
    let refuse_runs = if postgres {
        "CREATE FUNCTION refuse_run() RETURNS trigger AS $$ BEGIN \
         RAISE EXCEPTION 'no runs today'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_runs BEFORE INSERT ON runs \
         FOR EACH ROW EXECUTE FUNCTION refuse_run();"
    } else {
        "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs \
         BEGIN SELECT RAISE(ABORT, 'no runs today'); END;"
    };
    assistants_core::store::testing::admin_execute(&app.database_url, refuse_runs)
        .await
        .unwrap();
    let (s, e) = app.post("/threads/runs", body.clone()).await;
    assert_eq!(s, 500, "{e}");
    assert_eq!(assert_error(&e)["type"], "server_error");
    assert_eq!(stored_threads(&app).await, 0, "no orphan thread");

    let allow_runs = if postgres {
        "DROP TRIGGER refuse_runs ON runs"
    } else {
        "DROP TRIGGER refuse_runs"
    };
    assistants_core::store::testing::admin_execute(&app.database_url, allow_runs)
        .await
        .unwrap();
    let (s, run) = app.post("/threads/runs", body).await;
    assert_eq!(s, 200, "{run}");
    assert_eq!(stored_threads(&app).await, 1);
    let thread = run["thread_id"].as_str().unwrap();
    let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
    assert_eq!(msgs["data"][0]["content"][0]["text"]["value"], "hello");
}

/// OpenAI caps a message at 256,000 characters (not bytes); longer content is refused with
/// its error code, whether it comes as a string or as text parts.
#[tokio::test]
async fn message_content_is_capped_at_256000_characters() {
    let app = TestApp::spawn().await;
    let thread = app.create("/threads", json!({})).await;
    let path = format!("/threads/{thread}/messages");
    let at_limit = "é".repeat(256_000);
    let (s, m) = app
        .post(&path, json!({"role": "user", "content": at_limit}))
        .await;
    assert_eq!(s, 200, "{m}");
    let (s, e) = app
        .post(
            &path,
            json!({"role": "user", "content": "x".repeat(256_001)}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["code"], "string_above_max_length", "{e}");
    assert_eq!(e["error"]["param"], "content", "{e}");
    let halves = json!([
        {"type": "text", "text": "a".repeat(128_001)},
        {"type": "text", "text": "b".repeat(128_000)},
    ]);
    let (s, e) = app
        .post(&path, json!({"role": "user", "content": halves}))
        .await;
    assert_eq!(s, 400, "{e}");
    // The same limit holds where messages arrive with a new thread.
    let (s, e) = app
        .post(
            "/threads",
            json!({"messages": [{"role": "user", "content": "x".repeat(256_001)}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (_, list) = app.get(&path).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}
