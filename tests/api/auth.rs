use assistants_core::store::Store;
use assistants_tests::{assert_error, json, TestApp};

#[tokio::test]
async fn projects_are_isolated_by_key() {
    let mut app = TestApp::spawn().await;
    let store = Store::connect(&app.database_url).await.unwrap();
    let (_, key_a) = store.create_key("alpha").await.unwrap();
    let (_, key_b) = store.create_key("beta").await.unwrap();
    // The open-mode check is cached for up to a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    app.key = "sk-not-a-key".into();
    let (s, e) = app.get("/assistants").await;
    assert_eq!(s, 401, "{e}");
    assert_eq!(assert_error(&e)["code"], "invalid_api_key");
    let r = app.client.get(app.url("/assistants")).send().await.unwrap();
    assert_eq!(r.status(), 401, "no key at all");

    app.key = key_a.clone();
    let asst = app.create("/assistants", json!({"model": "m"})).await;
    let file = app.upload_ok("a.txt", "alpha secret").await;
    let thread = app.create("/threads", json!({})).await;
    let vs = app.create("/vector_stores", json!({})).await;

    app.key = key_b.clone();
    assert_eq!(app.get(&format!("/assistants/{asst}")).await.0, 404);
    assert_eq!(
        app.post(&format!("/assistants/{asst}"), json!({"name": "stolen"}))
            .await
            .0,
        404
    );
    assert_eq!(app.delete(&format!("/assistants/{asst}")).await.0, 404);
    assert_eq!(app.get("/assistants").await.1["data"], json!([]));
    assert_eq!(app.get(&format!("/files/{file}")).await.0, 404);
    assert_eq!(app.get(&format!("/files/{file}/content")).await.0, 404);
    assert_eq!(app.get("/files").await.1["data"], json!([]));
    assert_eq!(app.get(&format!("/threads/{thread}")).await.0, 404);
    assert_eq!(
        app.post(
            &format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": "hi"})
        )
        .await
        .0,
        404
    );
    assert_eq!(app.get(&format!("/vector_stores/{vs}")).await.0, 404);
    // B cannot attach A's file to its own store, nor reference A's store.
    let own_vs = app.create("/vector_stores", json!({})).await;
    assert_eq!(
        app.post(
            &format!("/vector_stores/{own_vs}/files"),
            json!({"file_id": file})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        app.post(
            "/assistants",
            json!({"model": "m", "tool_resources": {"file_search": {"vector_store_ids": [vs]}}})
        )
        .await
        .0,
        400
    );
    // Cursors from another project do not resolve either.
    assert_eq!(app.get(&format!("/assistants?after={asst}")).await.0, 400);

    app.key = key_a;
    let (s, a) = app.get(&format!("/assistants/{asst}")).await;
    assert_eq!(s, 200);
    assert!(a["name"].is_null(), "B's update did not land");
}

#[tokio::test]
async fn every_kind_of_object_is_invisible_across_projects() {
    let mut app = TestApp::spawn().await;
    let store = Store::connect(&app.database_url).await.unwrap();
    let (_, key_a) = store.create_key("alpha").await.unwrap();
    let (_, key_b) = store.create_key("beta").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    app.key = key_a;
    let file = app.upload_ok("a.txt", "alpha words").await;
    let vs = app
        .create("/vector_stores", json!({"file_ids": [file]}))
        .await;
    app.wait_vs(&vs).await;
    let (_, batch) = app
        .post(
            &format!("/vector_stores/{vs}/file_batches"),
            json!({"file_ids": [file]}),
        )
        .await;
    let batch = batch["id"].as_str().unwrap().to_string();
    let thread = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "secret"}]}),
        )
        .await;
    let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
    let msg = msgs["data"][0]["id"].as_str().unwrap().to_string();
    let upload = app.create("/uploads", json!({"filename": "u.txt", "purpose": "assistants", "bytes": 3, "mime_type": "text/plain"})).await;

    app.key = key_b;
    for path in [
        format!("/vector_stores/{vs}/files"),
        format!("/vector_stores/{vs}/files/{file}"),
        format!("/vector_stores/{vs}/files/{file}/content"),
        format!("/vector_stores/{vs}/file_batches/{batch}"),
        format!("/vector_stores/{vs}/file_batches/{batch}/files"),
        format!("/threads/{thread}/messages"),
        format!("/threads/{thread}/messages/{msg}"),
    ] {
        assert_eq!(app.get(&path).await.0, 404, "GET {path}");
    }
    for (path, body) in [
        (
            format!("/vector_stores/{vs}/search"),
            json!({"query": "alpha"}),
        ),
        (
            format!("/vector_stores/{vs}/files/{file}"),
            json!({"attributes": {"k": "v"}}),
        ),
        (
            format!("/vector_stores/{vs}/file_batches/{batch}/cancel"),
            json!({}),
        ),
        (
            format!("/threads/{thread}/messages/{msg}"),
            json!({"metadata": {"k": "v"}}),
        ),
        (
            format!("/uploads/{upload}/complete"),
            json!({"part_ids": []}),
        ),
        (format!("/uploads/{upload}/cancel"), json!({})),
    ] {
        let (s, e) = app.post(&path, body).await;
        assert_eq!(s, 404, "POST {path}: {e}");
    }
    assert_eq!(
        app.delete(&format!("/vector_stores/{vs}/files/{file}"))
            .await
            .0,
        404
    );
    assert_eq!(
        app.delete(&format!("/threads/{thread}/messages/{msg}"))
            .await
            .0,
        404
    );
    assert_eq!(app.delete(&format!("/vector_stores/{vs}")).await.0, 404);
}

#[tokio::test]
async fn revoking_the_last_key_does_not_open_the_server() {
    let mut app = TestApp::spawn().await;
    let store = Store::connect(&app.database_url).await.unwrap();
    let (id, key) = store.create_key("solo").await.unwrap();
    assert!(store.revoke_key(&id).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.key = "anything".into();
    assert_eq!(app.get("/assistants").await.0, 401);
    app.key = key;
    assert_eq!(
        app.get("/assistants").await.0,
        401,
        "a revoked key is refused"
    );
}

#[tokio::test]
async fn keys_can_be_created_while_the_server_is_writing() {
    // `assistants keys create` runs as a second process on the same database as a busy server.
    let app = TestApp::spawn().await;
    let thread = app.create("/threads", json!({})).await;
    let path = format!("/threads/{thread}/messages");
    let writes = async {
        let posts =
            (0..200).map(|i| app.post(&path, json!({"role": "user", "content": format!("m{i}")})));
        for (s, v) in futures::future::join_all(posts).await {
            assert_eq!(s, 200, "{v}");
        }
    };
    let keys = async {
        let store = Store::connect(&app.database_url).await.unwrap();
        for i in 0..5 {
            store
                .create_key(&format!("p{i}"))
                .await
                .expect("no 'database is locked' beside a busy server");
        }
    };
    tokio::join!(writes, keys);
}

/// A server reachable beyond loopback never starts open: with no key it creates one (printed
/// once on the console) and requires it; `--allow-open` keeps open mode when asked for.
#[tokio::test]
async fn an_exposed_server_does_not_start_open() {
    let app = TestApp::spawn_with(|s| s.listen = "0.0.0.0:0".parse().unwrap()).await;
    let store = Store::connect(&app.database_url).await.unwrap();
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "one key created at start");
    assert_eq!(keys[0].project, "default");
    let r = app.client.get(app.url("/assistants")).send().await.unwrap();
    assert_eq!(r.status(), 401, "no key at all");
    let (s, _) = app.get("/assistants").await;
    assert_eq!(s, 401, "any token was accepted");
    // The key belongs to the project open mode used, so nothing made before keys is
    // stranded; `keys create --project default` adds keys to that same project.
    let (_, extra) = store.create_key("default").await.unwrap();
    assert_eq!(
        store.project_for_key(&extra).await.unwrap().as_deref(),
        Some(assistants_core::store::keys::DEFAULT_PROJECT)
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut keyed = app;
    keyed.key = extra;
    assert_eq!(keyed.get("/assistants").await.0, 200);

    let open = TestApp::spawn_with(|s| {
        s.listen = "0.0.0.0:0".parse().unwrap();
        s.allow_open = true;
    })
    .await;
    let store = Store::connect(&open.database_url).await.unwrap();
    assert!(store.list_keys().await.unwrap().is_empty());
    assert_eq!(open.get("/assistants").await.0, 200);

    // On loopback nothing changes: the newcomer's one-command start stays open.
    let local = TestApp::spawn().await;
    let store = Store::connect(&local.database_url).await.unwrap();
    assert!(store.list_keys().await.unwrap().is_empty());
    assert_eq!(local.get("/assistants").await.0, 200);
}

/// An operator decides which projects may use a plugin (`projects` in its grant): others
/// neither see it nor can enable it, and an assistant that enabled it before the
/// restriction cannot run with it.
#[tokio::test]
async fn operators_choose_which_projects_may_use_a_plugin() {
    use assistants_core::plugins::manifest::Grant;
    let mut open = TestApp::spawn().await;
    let store = Store::connect(&open.database_url).await.unwrap();
    let (_, key_a) = store.create_key("team-a").await.unwrap();
    let (_, key_b) = store.create_key("team-b").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    open.key = key_b.clone();
    let calc = json!({"model": "m", "tools": [{"type": "calculator"}]});
    let before = open.create("/assistants", calc.clone()).await;
    let thread = open.create("/threads", json!({})).await;

    // A second node on the same database, where calculator is for team-a only.
    let mut app = open
        .spawn_peer(|s| {
            s.plugins.grants.insert(
                "calculator".into(),
                Grant {
                    projects: Some(vec!["team-a".into()]),
                    ..Default::default()
                },
            );
        })
        .await;
    app.key = key_b;
    let (s, e) = app.post("/assistants", calc.clone()).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not available to this project"),
        "{e}"
    );
    let (_, plugins) = app.get("/plugins").await;
    let ids: Vec<&str> = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"calculator"), "{ids:?}");
    assert_eq!(app.get("/plugins/calculator").await.0, 404);
    let (s, e) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": before}),
        )
        .await;
    assert_eq!(s, 400, "an assistant from before the restriction: {e}");
    assert_eq!(e["error"]["param"], "tools");

    app.key = key_a;
    app.create("/assistants", calc).await;
    let (_, plugins) = app.get("/plugins").await;
    assert!(plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == "calculator"));
}
