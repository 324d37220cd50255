use assistants_tests::{assert_error, json, TestApp};
use serde_json::Value;

const PENGUINS: &str = "Emperor penguins breed in the Antarctic winter. The male penguin incubates the egg on its feet.";
const VOLCANO: &str =
    "Volcanic eruptions eject magma, ash and gases. Basaltic lava flows are fluid.";
const COOKING: &str =
    "To bake sourdough bread, feed the starter, autolyse the flour, then shape and proof the loaf.";

#[tokio::test]
async fn ingestion_counts_and_search() {
    let app = TestApp::spawn().await;
    let a = app.upload_ok("penguins.md", PENGUINS).await;
    let b = app.upload_ok("volcano.txt", VOLCANO).await;
    let bad = app
        // A format no parser reads (PDF is parsed now).
        .upload_ok("report.odt", b"PK binary".to_vec())
        .await;
    let (s, vs) = app
        .post(
            "/vector_stores",
            json!({"name": "kb", "file_ids": [a, b, bad], "metadata": {"x": "y"}}),
        )
        .await;
    assert_eq!(s, 200, "{vs}");
    let vs_id = vs["id"].as_str().unwrap();
    assert!(vs_id.starts_with("vs_"));
    assert_eq!(vs["file_counts"]["total"], 3);

    let failed = app.wait_vs_file(vs_id, &bad).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["last_error"]["code"], "unsupported_file");
    let done = app.wait_vs_file(vs_id, &a).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["id"], a.as_str());
    assert_eq!(done["object"], "vector_store.file");
    assert_eq!(done["usage_bytes"], PENGUINS.len());
    assert_eq!(
        done["chunking_strategy"]["static"]["max_chunk_size_tokens"],
        800
    );

    let v = app.wait_vs(vs_id).await;
    assert_eq!(
        v["file_counts"],
        json!({"in_progress": 0, "completed": 2, "failed": 1, "cancelled": 0, "total": 3})
    );
    assert_eq!(v["usage_bytes"], PENGUINS.len() + VOLCANO.len());
    assert_eq!(v["status"], "completed");

    let (s, r) = app
        .post(
            &format!("/vector_stores/{vs_id}/search"),
            json!({"query": "penguin egg incubation"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["object"], "vector_store.search_results.page");
    assert_eq!(r["search_query"], json!(["penguin egg incubation"]));
    let hits = r["data"].as_array().unwrap();
    assert_eq!(
        hits.len(),
        1,
        "only the penguin file mentions penguins: {r}"
    );
    assert_eq!(hits[0]["file_id"], a.as_str());
    assert_eq!(hits[0]["filename"], "penguins.md");
    let score = hits[0]["score"].as_f64().unwrap();
    assert!(score > 0.0 && score <= 1.0);
    assert_eq!(hits[0]["content"][0]["text"], PENGUINS);

    let (_, content) = app
        .get(&format!("/vector_stores/{vs_id}/files/{a}/content"))
        .await;
    assert_eq!(content["data"][0]["text"], PENGUINS);

    let (_, failed_only) = app
        .get(&format!("/vector_stores/{vs_id}/files?filter=failed"))
        .await;
    assert_eq!(failed_only["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get(&format!("/vector_stores/{vs_id}/files?filter=weird"))
            .await
            .0,
        400
    );

    // Deleting the file removes it from the store: counts, bytes and search follow.
    assert_eq!(app.delete(&format!("/files/{a}")).await.0, 200);
    let (_, v) = app.get(&format!("/vector_stores/{vs_id}")).await;
    assert_eq!(v["file_counts"]["total"], 2);
    assert_eq!(v["usage_bytes"], VOLCANO.len());
    let (_, r) = app
        .post(
            &format!("/vector_stores/{vs_id}/search"),
            json!({"query": "penguin"}),
        )
        .await;
    assert_eq!(r["data"], json!([]));
    assert_eq!(
        app.get(&format!("/vector_stores/{vs_id}/files/{a}"))
            .await
            .0,
        404
    );

    let (s, d) = app.delete(&format!("/vector_stores/{vs_id}")).await;
    assert_eq!(s, 200);
    assert_eq!(d["object"], "vector_store.deleted");
    assert_eq!(app.get(&format!("/vector_stores/{vs_id}")).await.0, 404);
}

#[tokio::test]
async fn static_chunking_and_result_limits() {
    let app = TestApp::spawn().await;
    let text: String = (0..400)
        .map(|i| format!("Paragraph {i} talks about lighthouse number {i}.\n"))
        .collect();
    let f = app.upload_ok("lighthouses.txt", text.clone()).await;
    let vs = app
        .create("/vector_stores", json!({"name": "chunks"}))
        .await;
    let (s, vf) = app
        .post(
            &format!("/vector_stores/{vs}/files"),
            json!({"file_id": f, "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}}}),
        )
        .await;
    assert_eq!(s, 200, "{vf}");
    assert_eq!(vf["status"], "in_progress");
    assert_eq!(app.wait_vs_file(&vs, &f).await["status"], "completed");

    let (_, r) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "lighthouse", "max_num_results": 50}),
        )
        .await;
    let hits = r["data"].as_array().unwrap();
    assert_eq!(
        hits.len(),
        50,
        "a 100-token chunking of this text has far more than 50 chunks"
    );
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "ranked by score: {scores:?}"
    );
    for h in hits {
        assert!(
            text.contains(h["content"][0]["text"].as_str().unwrap()),
            "chunks are exact slices of the file"
        );
    }
    let (_, r) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "lighthouse 17", "max_num_results": 3}),
        )
        .await;
    assert_eq!(r["data"].as_array().unwrap().len(), 3);
    assert!(r["data"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("number 17."));

    let (_, r) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "lighthouse", "ranking_options": {"score_threshold": 1.0}}),
        )
        .await;
    assert!(r["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["score"].as_f64().unwrap() >= 1.0));

    for bad in [
        json!({"query": "x", "max_num_results": 0}),
        json!({"query": "x", "max_num_results": 51}),
        json!({"query": 7}),
        json!({"query": ""}),
        json!({"query": "x", "ranking_options": {"score_threshold": 2}}),
        json!({"query": "x", "filters": {"type": "eq", "key": "k"}}),
    ] {
        let (s, e) = app
            .post(&format!("/vector_stores/{vs}/search"), bad.clone())
            .await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert_error(&e);
    }
    let (s, e) = app
        .post(&format!("/vector_stores/{vs}/files"), json!({"file_id": f, "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 60}}}))
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        app.post(
            &format!("/vector_stores/{vs}/files"),
            json!({"file_id": "file-missing"})
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn attribute_filters() {
    let app = TestApp::spawn().await;
    let vs = app.create("/vector_stores", json!({})).await;
    let mut ids = Vec::new();
    for (name, text, year) in [
        ("a.txt", PENGUINS, 2019),
        ("b.txt", VOLCANO, 2022),
        ("c.txt", COOKING, 2024),
    ] {
        let f = app.upload_ok(name, text).await;
        let (s, v) = app
            .post(
                &format!("/vector_stores/{vs}/files"),
                json!({"file_id": f, "attributes": {"year": year, "kind": "doc"}}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        ids.push(f);
    }
    app.wait_vs(&vs).await;
    let search = |filters: Value| {
        let app = &app;
        let vs = vs.clone();
        async move {
            let (s, r) = app
                .post(
                    &format!("/vector_stores/{vs}/search"),
                    json!({"query": "the penguin magma sourdough", "filters": filters}),
                )
                .await;
            assert_eq!(s, 200, "{r}");
            let mut got: Vec<String> = r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["file_id"].as_str().unwrap().to_string())
                .collect();
            got.sort();
            got
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        search(json!({"type": "gte", "key": "year", "value": 2022})).await,
        sorted(vec![ids[1].clone(), ids[2].clone()])
    );
    assert_eq!(
        search(json!({"type": "eq", "key": "year", "value": 2019})).await,
        vec![ids[0].clone()]
    );
    assert_eq!(
        search(json!({"type": "or", "filters": [{"type": "eq", "key": "year", "value": 2019}, {"type": "lt", "key": "year", "value": 2020}]})).await,
        vec![ids[0].clone()]
    );
    assert_eq!(
        search(json!({"type": "eq", "key": "missing", "value": 1})).await,
        Vec::<String>::new()
    );

    // Updating attributes is reflected in the next search.
    let (s, upd) = app
        .post(
            &format!("/vector_stores/{vs}/files/{}", ids[2]),
            json!({"attributes": {"year": 1999}}),
        )
        .await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["attributes"], json!({"year": 1999}));
    assert_eq!(
        search(json!({"type": "lt", "key": "year", "value": 2000})).await,
        vec![ids[2].clone()]
    );
    let (s, e) = app
        .post(
            &format!("/vector_stores/{vs}/files/{}", ids[2]),
            json!({"attributes": {"nested": {"a": 1}}}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
}

#[tokio::test]
async fn batches_count_and_cancel() {
    let app = TestApp::spawn().await;
    let vs = app
        .create("/vector_stores", json!({"name": "batches"}))
        .await;
    let files = vec![
        app.upload_ok("1.txt", PENGUINS).await,
        app.upload_ok("2.txt", VOLCANO).await,
        app.upload_ok("3.csv", "a,b\n1,2").await,
    ];
    let (s, b) = app
        .post(
            &format!("/vector_stores/{vs}/file_batches"),
            json!({"file_ids": files}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["id"].as_str().unwrap().starts_with("vsfb_"));
    assert_eq!(b["object"], "vector_store.files_batch");
    assert_eq!(b["file_counts"]["total"], 3);
    let bid = b["id"].as_str().unwrap();
    let mut last = Value::Null;
    for _ in 0..600 {
        let (_, v) = app
            .get(&format!("/vector_stores/{vs}/file_batches/{bid}"))
            .await;
        last = v;
        if last["status"] != "in_progress" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["file_counts"]["completed"], 3);
    let (_, listed) = app
        .get(&format!(
            "/vector_stores/{vs}/file_batches/{bid}/files?filter=completed"
        ))
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);

    // A finished batch cannot be cancelled.
    let (s, e) = app
        .post(
            &format!("/vector_stores/{vs}/file_batches/{bid}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 400, "{e}");

    for bad in [
        json!({}),
        json!({"file_ids": []}),
        json!({"file_ids": ["file-missing"]}),
        json!({"file_ids": ["x"], "files": [{"file_id": "x"}]}),
    ] {
        let (s, e) = app
            .post(&format!("/vector_stores/{vs}/file_batches"), bad.clone())
            .await;
        assert_eq!(s, 400, "{bad}: {e}");
    }
    assert_eq!(
        app.get(&format!("/vector_stores/{vs}/file_batches/vsfb_missing"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn store_update_and_expiry_policy() {
    let app = TestApp::spawn().await;
    let (_, vs) = app
        .post(
            "/vector_stores",
            json!({"name": "n", "expires_after": {"anchor": "last_active_at", "days": 2}}),
        )
        .await;
    let id = vs["id"].as_str().unwrap();
    assert_eq!(
        vs["expires_at"],
        vs["last_active_at"].as_i64().unwrap() + 2 * 86400
    );
    let (s, v) = app
        .post(
            &format!("/vector_stores/{id}"),
            json!({"name": "renamed", "expires_after": null, "metadata": {"a": "b"}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["expires_at"], Value::Null);
    assert_eq!(v["metadata"], json!({"a": "b"}));
    let (s, _) = app
        .post(
            "/vector_stores",
            json!({"expires_after": {"anchor": "created_at", "days": 2}}),
        )
        .await;
    assert_eq!(s, 400);
    let (_, list) = app.get("/vector_stores").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cancelling_a_batch() {
    // No ingestion workers on this node, so the batch is certainly still in progress.
    let app = TestApp::spawn_with(|s| s.ingest_concurrency = 0).await;
    let vs = app.create("/vector_stores", json!({})).await;
    let f = app.upload_ok("4.txt", COOKING).await;
    let (_, b) = app
        .post(
            &format!("/vector_stores/{vs}/file_batches"),
            json!({"files": [{"file_id": f, "attributes": {"k": "v"}}]}),
        )
        .await;
    let bid = b["id"].as_str().unwrap();
    assert_eq!(b["status"], "in_progress");
    // A cancelled batch reports its unfinished files as cancelled, consistently for both pollers.
    let (s, c) = app
        .post(
            &format!("/vector_stores/{vs}/file_batches/{bid}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "cancelled");
    assert_eq!(
        c["file_counts"],
        json!({"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 1, "total": 1})
    );
    let (_, file) = app.get(&format!("/vector_stores/{vs}/files/{f}")).await;
    assert_eq!(file["status"], "cancelled");
    // Cancelling again is harmless.
    assert_eq!(
        app.post(
            &format!("/vector_stores/{vs}/file_batches/{bid}/cancel"),
            json!({})
        )
        .await
        .0,
        200
    );
}

/// A file whose ingestion fails transiently (here the embeddings upstream refuses once) is
/// handed back and retried after a short delay (30 s), not held until its lease (300 s)
/// lapses.
#[tokio::test]
async fn a_transiently_failed_file_is_retried_soon() {
    use assistants_tests::fake_llm::FakeLlm;
    let llm = FakeLlm::start().await;
    let app = TestApp::spawn_with_llm(&llm, |s| {
        s.llm.embedding_model = Some("embed-test".into());
    })
    .await;
    llm.fail_embeddings(1);
    let file = app.upload_ok("car.txt", "The car needs new tires.").await;
    let vs = app
        .create("/vector_stores", json!({"file_ids": [file]}))
        .await;
    let started = std::time::Instant::now();
    let mut done = Value::Null;
    while started.elapsed() < std::time::Duration::from_secs(120) {
        let (_, v) = app.get(&format!("/vector_stores/{vs}")).await;
        if v["file_counts"]["in_progress"] == 0 {
            done = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(done["file_counts"]["completed"], 1, "{done}");
    assert!(llm.embedding_requests().len() >= 2);
}

#[tokio::test]
async fn with_an_embeddings_model_search_is_hybrid() {
    use assistants_tests::fake_llm::FakeLlm;
    let llm = FakeLlm::start().await;
    let hybrid = TestApp::spawn_with_llm(&llm, |s| {
        s.llm.embedding_model = Some("embed-test".into());
    })
    .await;
    let lexical = TestApp::spawn_with_llm(&llm, |_| {}).await;
    for app in [&hybrid, &lexical] {
        let car = app
            .upload_ok("car.txt", "The car needs new tires before winter.")
            .await;
        let fruit = app
            .upload_ok("fruit.txt", "Bananas are yellow and sweet.")
            .await;
        let vs = app
            .create("/vector_stores", json!({"file_ids": [car, fruit]}))
            .await;
        app.wait_vs(&vs).await;
        let (s, hits) = app
            .post(
                &format!("/vector_stores/{vs}/search"),
                json!({"query": "automobile"}),
            )
            .await;
        assert_eq!(s, 200, "{hits}");
        let found: Vec<&str> = hits["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["filename"].as_str().unwrap())
            .collect();
        if std::ptr::eq(app, &hybrid) {
            // No shared word: only the vectors connect "automobile" to the car note.
            assert_eq!(found.first(), Some(&"car.txt"), "{hits}");
            let score = hits["data"][0]["score"].as_f64().unwrap();
            assert!(score > 0.0 && score <= 1.0);
            // A lexical match still ranks first for its own words.
            let (_, hits) = app
                .post(
                    &format!("/vector_stores/{vs}/search"),
                    json!({"query": "bananas"}),
                )
                .await;
            assert_eq!(hits["data"][0]["filename"], "fruit.txt");
            // `ranker: none` skips the exact rescoring: the sign-bit estimate still finds it.
            let (s, hits) = app
                .post(
                    &format!("/vector_stores/{vs}/search"),
                    json!({"query": "automobile", "ranking_options": {"ranker": "none"}}),
                )
                .await;
            assert_eq!(s, 200, "{hits}");
            assert_eq!(hits["data"][0]["filename"], "car.txt", "{hits}");
        } else {
            assert!(found.is_empty(), "lexical search has no match: {hits}");
        }
    }
    // Chunks were embedded in batches at ingestion, and queries at search time.
    let reqs = llm.embedding_requests();
    assert!(reqs.iter().all(|r| r["model"] == "embed-test"), "{reqs:?}");
    assert!(reqs.iter().any(|r| r["input"]
        .as_array()
        .is_some_and(|a| a.iter().any(|t| t.as_str().unwrap().contains("tires")))));
    assert!(reqs.iter().any(|r| r["input"] == json!(["automobile"])));
}

/// Tokenising and embedding a query is paid before any limit on results: queries are capped
/// in count and length.
#[tokio::test]
async fn search_queries_are_bounded() {
    let app = TestApp::spawn().await;
    let vs = app.create("/vector_stores", json!({})).await;
    let path = format!("/vector_stores/{vs}/search");
    let (s, e) = app
        .post(&path, json!({"query": "q".repeat(16 * 1024 + 1)}))
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["param"], "query");
    let many: Vec<String> = (0..11).map(|i| format!("query {i}")).collect();
    let (s, e) = app.post(&path, json!({"query": many})).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10"),
        "{e}"
    );
    let (s, r) = app.post(&path, json!({"query": many[..10]})).await;
    assert_eq!(s, 200, "{r}");
}

/// The node's index of a store follows every change to it (files added, detached, ingested
/// again, deleted): it is brought up to date, not rebuilt, so stale or doubled chunks would
/// show here.
#[tokio::test]
async fn search_follows_every_change_to_the_store() {
    let app = TestApp::spawn().await;
    let a = app.upload_ok("penguins.md", PENGUINS).await;
    let b = app.upload_ok("volcano.txt", VOLCANO).await;
    let vs = app.create("/vector_stores", json!({"file_ids": [a]})).await;
    app.wait_vs(&vs).await;
    let both = |x: &str, y: &str| {
        let mut v = vec![x.to_string(), y.to_string()];
        v.sort();
        v
    };
    assert_eq!(
        search_files(&app, &vs, "penguin magma").await,
        vec![a.clone()]
    );
    // Added after the index exists.
    let (s, r) = app
        .post(&format!("/vector_stores/{vs}/files"), json!({"file_id": b}))
        .await;
    assert_eq!(s, 200, "{r}");
    app.wait_vs(&vs).await;
    assert_eq!(search_files(&app, &vs, "penguin magma").await, both(&a, &b));
    // Attached again: ingested again, its chunks replaced, not doubled.
    let (s, r) = app
        .post(
            &format!("/vector_stores/{vs}/files"),
            json!({"file_id": b, "attributes": {"kind": "geology"}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    app.wait_vs(&vs).await;
    assert_eq!(search_files(&app, &vs, "penguin magma").await, both(&a, &b));
    let (s, r) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "magma", "filters": {"type": "eq", "key": "kind", "value": "geology"}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["data"].as_array().unwrap().len(), 1, "{r}");
    // Detached from the store, then deleted altogether.
    let (s, r) = app.delete(&format!("/vector_stores/{vs}/files/{a}")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        search_files(&app, &vs, "penguin magma").await,
        vec![b.clone()]
    );
    let (s, r) = app.delete(&format!("/files/{b}")).await;
    assert_eq!(s, 200, "{r}");
    assert!(search_files(&app, &vs, "penguin magma").await.is_empty());
}

/// The files a search of `vs` on `node` finds, sorted.
async fn search_files(node: &TestApp, vs: &str, query: &str) -> Vec<String> {
    let (s, r) = node
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": query}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let mut files: Vec<String> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["file_id"].as_str().unwrap().to_string())
        .collect();
    files.sort();
    files
}

/// A store's index persisted by one node is what another node starts from, on the
/// deployment's object store (local here; S3 in CI's S3 suite), and goes with the store.
#[tokio::test]
async fn a_persisted_index_serves_another_node_and_goes_with_its_store() {
    let app = TestApp::spawn_with(|s| s.search_snapshot_min_chunks = 1).await;
    let a = app.upload_ok("penguins.md", PENGUINS).await;
    let b = app.upload_ok("volcano.txt", VOLCANO).await;
    let vs = app.create("/vector_stores", json!({"file_ids": [a]})).await;
    app.wait_vs(&vs).await;
    assert_eq!(search_files(&app, &vs, "penguin").await, vec![a.clone()]);
    let snapshots = format!("SELECT COUNT(*) FROM search_snapshots WHERE vector_store_id = '{vs}'");
    let mut recorded = 0;
    for _ in 0..200 {
        recorded = assistants_core::store::testing::admin_scalar(&app.database_url, &snapshots)
            .await
            .unwrap();
        if recorded == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(recorded, 1, "the first search's index is persisted");
    // Changed after the snapshot: the other node loads it and reads only what changed.
    let (s, r) = app
        .post(&format!("/vector_stores/{vs}/files"), json!({"file_id": b}))
        .await;
    assert_eq!(s, 200, "{r}");
    app.wait_vs(&vs).await;
    let peer = app.spawn_peer(|s| s.search_snapshot_min_chunks = 1).await;
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(search_files(&peer, &vs, "penguin magma").await, both);
    let (s, _) = app.delete(&format!("/vector_stores/{vs}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        assistants_core::store::testing::admin_scalar(&app.database_url, &snapshots)
            .await
            .unwrap(),
        0
    );
    if app.settings().storage.object_store_url.is_none() {
        let dir = app
            .settings()
            .storage
            .data_dir
            .join("files/search")
            .join(&vs);
        assert_eq!(
            std::fs::read_dir(&dir).map_or(0, |d| d.count()),
            0,
            "{dir:?}"
        );
    }
}
