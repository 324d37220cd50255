use assistants_tests::{assert_error, json, TestApp};

#[tokio::test]
async fn create_retrieve_modify_delete() {
    let app = TestApp::spawn().await;
    let (s, a) = app
        .post(
            "/assistants",
            json!({
                "model": "gpt-4o", "name": "Math tutor", "instructions": "Be terse.",
                "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
                          {"type": "file_search", "file_search": {"max_num_results": 5}}],
                "metadata": {"team": "blue"}, "temperature": 0.5,
                "response_format": {"type": "json_object"},
                "some_future_field": true
            }),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    let id = a["id"].as_str().unwrap();
    assert!(id.starts_with("asst_"));
    assert_eq!(a["object"], "assistant");
    assert!(a["created_at"].is_i64());
    assert_eq!(a["top_p"], 1.0);
    assert_eq!(a["tools"].as_array().unwrap().len(), 2);

    let (s, got) = app.get(&format!("/assistants/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(got, a);

    // A partial update leaves other fields alone; null clears a nullable field.
    let (s, m) = app
        .post(
            &format!("/assistants/{id}"),
            json!({"name": null, "metadata": {"team": "red"}}),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["name"], serde_json::Value::Null);
    assert_eq!(m["instructions"], "Be terse.");
    assert_eq!(m["metadata"], json!({"team": "red"}));
    assert_eq!(m["temperature"], 0.5);

    let (s, d) = app.delete(&format!("/assistants/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        d,
        json!({"id": id, "object": "assistant.deleted", "deleted": true})
    );
    let (s, e) = app.get(&format!("/assistants/{id}")).await;
    assert_eq!(s, 404);
    assert!(assert_error(&e)["message"].as_str().unwrap().contains(id));
}

#[tokio::test]
async fn invalid_fields_are_rejected_and_change_nothing() {
    let app = TestApp::spawn().await;
    let id = app
        .create("/assistants", json!({"model": "orig", "name": "keep"}))
        .await;
    let many: serde_json::Map<String, serde_json::Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!({"model": "m", "metadata": many}), "metadata"),
        (json!({"model": "m", "temperature": 2.5}), "temperature"),
        (json!({"model": "m", "top_p": -0.1}), "top_p"),
        (
            json!({"model": "m", "tools": [{"type": "function", "function": {"name": "bad name"}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"model": "m", "tools": [{"type": "file_search", "file_search": {"max_num_results": 51}}]}),
            "tools[0].file_search.max_num_results",
        ),
        (
            json!({"model": "m", "tools": [{"type": "teleport"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "tools": [{"type": "function", "function": {}}]}),
            "tools[0].function.name",
        ),
        (json!({"model": "m", "name": "x".repeat(257)}), "name"),
        (json!({"model": 42}), "model"),
        (json!({}), "model"),
        (
            json!({"model": "m", "response_format": {"type": "yaml"}}),
            "response_format",
        ),
        (
            json!({"model": "m", "tool_resources": {"file_search": {"vector_store_ids": ["vs_missing"]}}}),
            "tool_resources.file_search.vector_store_ids",
        ),
    ];
    for (body, param) in cases {
        let (s, e) = app.post("/assistants", body.clone()).await;
        assert_eq!(s, 400, "{body} -> {e}");
        assert_eq!(assert_error(&e)["param"], param, "{body} -> {e}");
        // The same body as an update is refused too (`{}` is a valid no-op update) and must
        // not alter the stored assistant.
        let expected = if body == json!({}) { 200 } else { 400 };
        let (s, e) = app.post(&format!("/assistants/{id}"), body.clone()).await;
        assert_eq!(s, expected, "update {body} -> {e}");
    }
    let (_, a) = app.get(&format!("/assistants/{id}")).await;
    assert_eq!(a["name"], "keep");
    assert_eq!(a["model"], "orig");
    let (_, list) = app.get("/assistants").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "no assistant created by a rejected request"
    );
}

#[tokio::test]
async fn routes_answer_at_the_root_too() {
    let app = TestApp::spawn().await;
    let id = app.create("/assistants", json!({"model": "m"})).await;
    let r = app
        .client
        .get(format!("{}/assistants/{id}", app.root))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let app = TestApp::spawn().await;
    let id = app
        .create("/assistants", json!({"model": "m", "name": "durable"}))
        .await;
    let app = app.restart().await;
    let (s, a) = app.get(&format!("/assistants/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(a["name"], "durable");
}

#[tokio::test]
async fn inline_vector_stores_only_on_create_and_only_when_everything_else_is_valid() {
    let app = TestApp::spawn().await;
    let f = app.upload_ok("a.txt", "words").await;
    let inline = json!({"file_search": {"vector_stores": [{"file_ids": [f]}]}});
    // A create that fails after the inline store was planned leaves no store behind.
    let (s, _) = app
        .post(
            "/assistants",
            json!({"model": "m", "tool_resources": inline, "temperature": 9}),
        )
        .await;
    assert_eq!(s, 400);
    let (_, stores) = app.get("/vector_stores").await;
    assert_eq!(stores["data"], json!([]));
    // Modify takes only existing store ids, as in the spec.
    let id = app.create("/assistants", json!({"model": "m"})).await;
    let (s, e) = app
        .post(
            &format!("/assistants/{id}"),
            json!({"tool_resources": inline}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = app
        .post(
            "/assistants/asst_missing",
            json!({"tool_resources": inline}),
        )
        .await;
    assert!(s == 400 || s == 404, "{e}");
    let (_, stores) = app.get("/vector_stores").await;
    assert_eq!(
        stores["data"],
        json!([]),
        "no store created by refused requests"
    );
    // And on create it works, attached to the new assistant.
    let (s, a) = app
        .post(
            "/assistants",
            json!({"model": "m", "tool_resources": inline}),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    let vs = a["tool_resources"]["file_search"]["vector_store_ids"][0]
        .as_str()
        .unwrap();
    assert_eq!(app.wait_vs(vs).await["file_counts"]["completed"], 1);
}

/// agency-swarm 0.7 sends `{"tool_resources": {"file_search": {}}}` with every start; that must
/// not detach the stores already there. Only a list that is given changes, `[]` clears, and
/// `null` clears everything — for assistants and threads alike.
#[tokio::test]
async fn a_partial_tool_resources_patch_keeps_what_it_does_not_name() {
    let app = TestApp::spawn().await;
    let f = app.upload_ok("a.txt", "words").await;
    let vs = app.create("/vector_stores", json!({})).await;
    let full = json!({
        "code_interpreter": {"file_ids": [f]},
        "file_search": {"vector_store_ids": [vs]},
    });
    let asst = app
        .create("/assistants", json!({"model": "m", "tool_resources": full}))
        .await;
    let thread = app
        .create("/threads", json!({"tool_resources": full}))
        .await;
    for path in [format!("/assistants/{asst}"), format!("/threads/{thread}")] {
        for keep in [
            json!({"file_search": {}}),
            json!({"file_search": {"vector_store_ids": null}}),
            json!({}),
            json!({"code_interpreter": {}}),
        ] {
            let (s, o) = app.post(&path, json!({"tool_resources": keep})).await;
            assert_eq!(s, 200, "{o}");
            assert_eq!(o["tool_resources"], full, "{path} after {keep}");
            assert_eq!(app.get(&path).await.1["tool_resources"], full);
        }
        let (_, o) = app
            .post(
                &path,
                json!({"tool_resources": {"file_search": {"vector_store_ids": []}}}),
            )
            .await;
        assert_eq!(
            o["tool_resources"]["file_search"]["vector_store_ids"],
            json!([])
        );
        assert_eq!(
            o["tool_resources"]["code_interpreter"]["file_ids"],
            json!([f])
        );
        let (_, o) = app
            .post(
                &path,
                json!({"tool_resources": {"file_search": {"vector_store_ids": [vs]}}}),
            )
            .await;
        assert_eq!(o["tool_resources"], full);
        // A bad id in a patch is refused and changes nothing.
        let (s, e) = app
            .post(
                &path,
                json!({"tool_resources": {"code_interpreter": {"file_ids": ["file-missing"]}}}),
            )
            .await;
        assert_eq!(s, 400, "{e}");
        assert_eq!(app.get(&path).await.1["tool_resources"], full);
        let (_, o) = app.post(&path, json!({"tool_resources": null})).await;
        assert_eq!(o["tool_resources"], json!({}), "{path}");
    }
}
