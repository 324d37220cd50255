//! `/conversations` and their items: shapes, order, cursors, deletes, errors, isolation.

use assistants_core::store::Store;
use assistants_tests::{assert_error, json, TestApp};
use serde_json::Value;

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_conversation_keeps_its_items_in_order() {
    let app = TestApp::spawn().await;
    let (s, c) = app
        .post(
            "/conversations",
            json!({"metadata": {"topic": "demo"}, "items": [
                {"role": "user", "content": "Hello!"},
                {"type": "message", "role": "assistant", "content": "Hi. How can I help?"},
                {"type": "message", "role": "developer",
                 "content": [{"type": "input_text", "text": "Be brief."}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                 "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let cid = c["id"].as_str().unwrap();
    assert!(cid.starts_with("conv_"), "{c}");
    assert_eq!(c["object"], "conversation");
    assert_eq!(c["metadata"], json!({"topic": "demo"}));
    assert!(c["created_at"].as_i64().unwrap() > 0);
    assert_eq!(app.get(&format!("/conversations/{cid}")).await.1, c);

    // Oldest first with order=asc; newest first by default.
    let (s, asc) = app
        .get(&format!("/conversations/{cid}/items?order=asc"))
        .await;
    assert_eq!(s, 200, "{asc}");
    let data = asc["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    assert_eq!(
        data[0],
        json!({"id": data[0]["id"], "type": "message", "status": "completed", "role": "user",
               "content": [{"type": "input_text", "text": "Hello!"}]})
    );
    assert!(data[0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        data[1]["content"],
        json!([{"type": "output_text", "text": "Hi. How can I help?", "annotations": [], "logprobs": []}])
    );
    assert_eq!(data[2]["role"], "developer");
    assert_eq!(data[3]["type"], "function_call");
    assert!(data[3]["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(data[3]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(data[4]["type"], "function_call_output");
    assert_eq!(data[4]["output"], "sunny");
    assert_eq!(asc["first_id"], data[0]["id"]);
    assert_eq!(asc["last_id"], data[4]["id"]);
    assert_eq!(asc["has_more"], false);
    let all = ids(&asc);
    let (_, desc) = app.get(&format!("/conversations/{cid}/items")).await;
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);

    // Pages by cursor.
    let (_, page) = app
        .get(&format!("/conversations/{cid}/items?order=asc&limit=2"))
        .await;
    assert_eq!(ids(&page), all[..2]);
    assert_eq!(page["has_more"], true);
    let (_, next) = app
        .get(&format!(
            "/conversations/{cid}/items?order=asc&limit=2&after={}",
            all[1]
        ))
        .await;
    assert_eq!(ids(&next), all[2..4]);

    // Added items go after the others; the answer lists just them.
    let (s, added) = app
        .post(
            &format!("/conversations/{cid}/items"),
            json!({"items": [{"role": "user", "content": "And tomorrow?"}]}),
        )
        .await;
    assert_eq!(s, 200, "{added}");
    assert_eq!(added["object"], "list");
    assert_eq!(added["data"].as_array().unwrap().len(), 1);
    let new_id = added["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(added["first_id"], new_id.as_str());
    let (_, desc) = app.get(&format!("/conversations/{cid}/items")).await;
    assert_eq!(ids(&desc)[0], new_id);

    let (s, item) = app
        .get(&format!("/conversations/{cid}/items/{new_id}"))
        .await;
    assert_eq!(s, 200, "{item}");
    assert_eq!(item, added["data"][0]);

    // Metadata is replaced by an update.
    let (s, u) = app
        .post(
            &format!("/conversations/{cid}"),
            json!({"metadata": {"topic": "weather"}}),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["metadata"], json!({"topic": "weather"}));
    let (s, cleared) = app
        .post(&format!("/conversations/{cid}"), json!({"metadata": null}))
        .await;
    assert_eq!(s, 200, "{cleared}");
    assert_eq!(cleared["metadata"], json!({}));
    app.post(
        &format!("/conversations/{cid}"),
        json!({"metadata": {"topic": "weather"}}),
    )
    .await;

    // Deleting an item answers with the conversation; a cursor naming it still works.
    let (s, after_delete) = app
        .delete(&format!("/conversations/{cid}/items/{}", all[1]))
        .await;
    assert_eq!(s, 200, "{after_delete}");
    assert_eq!(after_delete["id"], cid);
    assert_eq!(after_delete["object"], "conversation");
    let (s, e) = app
        .get(&format!("/conversations/{cid}/items/{}", all[1]))
        .await;
    assert_eq!(s, 404, "{e}");
    let (s, rest) = app
        .get(&format!(
            "/conversations/{cid}/items?order=asc&after={}",
            all[1]
        ))
        .await;
    assert_eq!(s, 200, "{rest}");
    assert_eq!(ids(&rest)[0], all[2]);

    let (s, d) = app.delete(&format!("/conversations/{cid}")).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        d,
        json!({"id": cid, "object": "conversation.deleted", "deleted": true})
    );
    for path in [
        format!("/conversations/{cid}"),
        format!("/conversations/{cid}/items"),
        format!("/conversations/{cid}/items/{new_id}"),
    ] {
        let (s, e) = app.get(&path).await;
        assert_eq!(s, 404, "{path}: {e}");
        assert_error(&e);
    }
}

#[tokio::test]
async fn items_refer_to_earlier_items_and_files() {
    let app = TestApp::spawn().await;
    let file = app.upload_ok("notes.txt", "some notes").await;
    let (s, c) = app
        .post(
            "/conversations",
            json!({"items": [{"role": "user", "content": [
                {"type": "input_text", "text": "Read this"},
                {"type": "input_file", "file_id": file},
                {"type": "input_image", "image_url": "https://example.com/a.png"}
            ]}]}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let cid = c["id"].as_str().unwrap();
    let (_, items) = app.get(&format!("/conversations/{cid}/items")).await;
    let first = items["data"][0].clone();
    assert_eq!(
        first["content"][1],
        json!({"type": "input_file", "file_id": file})
    );
    assert_eq!(
        first["content"][2],
        json!({"type": "input_image", "image_url": "https://example.com/a.png",
               "file_id": null, "detail": "auto"})
    );

    // An item_reference copies the item it names into another conversation, id and all.
    let other = app.create("/conversations", json!({})).await;
    let (s, added) = app
        .post(
            &format!("/conversations/{other}/items"),
            json!({"items": [{"type": "item_reference", "id": first["id"]}]}),
        )
        .await;
    assert_eq!(s, 200, "{added}");
    assert_eq!(added["data"][0], first);
    // Taking it out of one conversation leaves the other's copy.
    let (s, _) = app
        .delete(&format!(
            "/conversations/{other}/items/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    let (s, again) = app
        .get(&format!(
            "/conversations/{cid}/items/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again, first);
}

#[tokio::test]
async fn bad_items_are_refused_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"items": [{"role": "robot", "content": "x"}]}),
            "items[0].role",
        ),
        (json!({"items": [{"role": "user"}]}), "items[0].content"),
        (json!({"items": [{"type": "teleport"}]}), "items[0].type"),
        (json!({"items": ["hello"]}), "items[0]"),
        (
            json!({"items": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-nope"}]}]}),
            "items[0].content[0].file_id",
        ),
        (
            json!({"items": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]}),
            "items[0].content[0].type",
        ),
        (
            json!({"items": [{"type": "function_call", "call_id": "c", "name": "f"}]}),
            "items[0].arguments",
        ),
        (
            json!({"items": [{"type": "function_call_output", "call_id": "c"}]}),
            "items[0].output",
        ),
        (
            json!({"items": [{"type": "item_reference", "id": "msg_unknown"}]}),
            "items[0].id",
        ),
        (json!({"metadata": {"k": "v".repeat(513)}}), "metadata.k"),
        (
            json!({"items": vec![json!({"role": "user", "content": "x"}); 21]}),
            "items",
        ),
    ];
    for (body, param) in cases {
        let (s, e) = app.post("/conversations", body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert_eq!(assert_error(&e)["param"], param, "{body}: {e}");
    }
    // Nothing was created by the refused requests; a good one still works.
    let cid = app.create("/conversations", json!({})).await;
    let (s, e) = app
        .post(&format!("/conversations/{cid}/items"), json!({}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(assert_error(&e)["param"], "items");
    let (s, e) = app.post(&format!("/conversations/{cid}"), json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(assert_error(&e)["param"], "metadata");
    // Ids of another kind name no conversation.
    for path in ["/conversations/thread_abc", "/conversations/conv_missing"] {
        let (s, e) = app.get(path).await;
        assert_eq!(s, 404, "{e}");
        assert_error(&e);
    }
    let (s, e) = app
        .post(
            "/conversations/conv_missing/items",
            json!({"items": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    let (s, e) = app
        .get(&format!("/conversations/{cid}/items?after=msg_nowhere"))
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "after");
}

#[tokio::test]
async fn conversations_belong_to_their_project() {
    let mut app = TestApp::spawn().await;
    let store = Store::connect(&app.database_url).await.unwrap();
    let (_, key_a) = store.create_key("alpha").await.unwrap();
    let (_, key_b) = store.create_key("beta").await.unwrap();
    // The open-mode check is cached for up to a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.key = key_a;
    let (s, c) = app
        .post(
            "/conversations",
            json!({"items": [{"role": "user", "content": "secret"}]}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    let (_, items) = app.get(&format!("/conversations/{cid}/items")).await;
    let item = items["data"][0]["id"].as_str().unwrap().to_string();
    app.key = key_b;
    for path in [
        format!("/conversations/{cid}"),
        format!("/conversations/{cid}/items"),
        format!("/conversations/{cid}/items/{item}"),
    ] {
        let (s, e) = app.get(&path).await;
        assert_eq!(s, 404, "{path}: {e}");
    }
    let (s, _) = app.delete(&format!("/conversations/{cid}")).await;
    assert_eq!(s, 404);
    // Another project's item cannot be referenced either.
    let (s, e) = app
        .post(
            "/conversations",
            json!({"items": [{"type": "item_reference", "id": item}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
}
