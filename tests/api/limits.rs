//! Per-project limits: storage quotas answered with 429 `insufficient_quota`, and runs of one
//! project that cannot crowd out another's.

use std::time::Duration;

use assistants_core::store::Store;
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::{assert_error, json, TestApp};

/// Two projects' keys on `app` (the open-mode check is cached for up to a second).
async fn two_projects(app: &TestApp) -> (String, String) {
    let store = Store::connect(&app.database_url).await.unwrap();
    let (_, a) = store.create_key("alpha").await.unwrap();
    let (_, b) = store.create_key("beta").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (a, b)
}

fn assert_quota(status: reqwest::StatusCode, body: &serde_json::Value, what: &str) {
    assert_eq!(status, 429, "{body}");
    let e = assert_error(body);
    assert_eq!(e["type"], "insufficient_quota", "{body}");
    assert_eq!(e["code"], "insufficient_quota", "{body}");
    assert!(e["message"].as_str().unwrap().contains(what), "{body}");
}

#[tokio::test]
async fn storage_quotas_refuse_what_would_go_over_and_nothing_else() {
    let mut app = TestApp::spawn_with(|s| {
        s.limits.max_storage_bytes = Some(1000);
        s.limits.max_files = Some(3);
    })
    .await;
    let (a, b) = two_projects(&app).await;
    app.key = a.clone();

    // An upload started while there is room; its parts count when they arrive.
    let upload = app
        .create(
            "/uploads",
            json!({"filename": "u.txt", "purpose": "assistants", "bytes": 10, "mime_type": "text/plain"}),
        )
        .await;
    let first = app.upload_ok("a.txt", vec![b'a'; 600]).await;
    let (s, v) = app.upload("b.txt", vec![b'b'; 600], "assistants").await;
    assert_quota(s, &v, "1000 bytes");
    assert_eq!(
        app.get("/files").await.1["data"].as_array().unwrap().len(),
        1,
        "the refused upload left no file"
    );
    // Exactly up to the quota is fine; the SDKs are told not to retry past it.
    app.upload_ok("c.txt", vec![b'c'; 400]).await;
    let resp = app
        .client
        .post(app.url("/files"))
        .bearer_auth(&a)
        .multipart(
            reqwest::multipart::Form::new()
                .text("purpose", "assistants")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(vec![1]).file_name("d.txt"),
                ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-should-retry"], "false");

    // Upload parts count against the same bytes; an upload that cannot fit is refused.
    let (s, v) = app
        .post(
            "/uploads",
            json!({"filename": "v.txt", "purpose": "assistants", "bytes": 10, "mime_type": "text/plain"}),
        )
        .await;
    assert_quota(s, &v, "1000 bytes");
    let part = reqwest::multipart::Form::new().part(
        "data",
        reqwest::multipart::Part::bytes(vec![b'u'; 10]).file_name("blob"),
    );
    let resp = app
        .client
        .post(app.url(&format!("/uploads/{upload}/parts")))
        .bearer_auth(&a)
        .multipart(part)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);

    // Another project has its own quota.
    app.key = b;
    app.upload_ok("b.txt", vec![b'b'; 600]).await;

    // Deleting frees room; the files quota counts files, even empty ones.
    app.key = a;
    assert_eq!(app.delete(&format!("/files/{first}")).await.0, 200);
    app.upload_ok("e.txt", vec![b'e'; 600]).await;
    app.upload_ok("empty.txt", Vec::new()).await;
    let (s, v) = app.upload("f.txt", Vec::new(), "assistants").await;
    assert_quota(s, &v, "3 files");
}

#[tokio::test]
async fn a_chunk_quota_stops_new_chunks_but_keeps_the_indexed_ones() {
    let mut app = TestApp::spawn_with(|s| s.limits.max_chunks = Some(3)).await;
    let (a, _) = two_projects(&app).await;
    app.key = a;
    // About 150 tokens each: two chunks of at most 100 tokens.
    let text = |w: &str| format!("{w} ").repeat(150);
    let small = json!({"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}});
    let vs = app.create("/vector_stores", json!({})).await;
    let f1 = app.upload_ok("one.txt", text("apple")).await;
    let f2 = app.upload_ok("two.txt", text("pear")).await;
    let f3 = app.upload_ok("three.txt", text("plum")).await;

    let attach = |f: &str| json!({"file_id": f, "chunking_strategy": small});
    app.create(&format!("/vector_stores/{vs}/files"), attach(&f1))
        .await;
    assert_eq!(app.wait_vs_file(&vs, &f1).await["status"], "completed");
    // Two more chunks would make four: the file fails, and says why.
    app.create(&format!("/vector_stores/{vs}/files"), attach(&f2))
        .await;
    let failed = app.wait_vs_file(&vs, &f2).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("quota of 3 vector-store chunks"),
        "{failed}"
    );
    let (s, hits) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "apple"}),
        )
        .await;
    assert_eq!(s, 200, "{hits}");
    assert!(!hits["data"].as_array().unwrap().is_empty(), "{hits}");

    // One more chunk fits; then attaching is refused up front.
    app.create(
        &format!("/vector_stores/{vs}/files"),
        json!({"file_id": f3, "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 0}}}),
    )
    .await;
    assert_eq!(app.wait_vs_file(&vs, &f3).await["status"], "completed");
    let (s, v) = app
        .post(
            &format!("/vector_stores/{vs}/files"),
            json!({"file_id": f2, "chunking_strategy": small}),
        )
        .await;
    assert_quota(s, &v, "3 vector-store chunks");
    let (s, v) = app.post("/vector_stores", json!({"file_ids": [f2]})).await;
    assert_quota(s, &v, "3 vector-store chunks");
}

/// A new thread with one message and a run on it: (thread, run).
async fn start_run(app: &TestApp) -> (String, String) {
    let asst = app.create("/assistants", json!({"model": "m"})).await;
    let thread = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let run = app
        .create(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    (thread, run)
}

#[tokio::test]
async fn one_projects_slow_runs_do_not_hold_every_slot() {
    let llm = FakeLlm::start().await;
    // A's first run is slow; the others answer at once.
    llm.push(Reply::text("slow").delay(Duration::from_secs(5)));
    llm.push(Reply::text("quick"));
    llm.push(Reply::text("quick"));
    let mut app = TestApp::spawn_with_llm(&llm, |s| {
        s.runs.concurrency = 2;
        s.limits.max_runs = Some(1);
    })
    .await;
    let (a, b) = two_projects(&app).await;
    app.key = a.clone();
    start_run(&app).await;
    for _ in 0..200 {
        if !llm.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        llm.requests().len(),
        1,
        "A's first run is waiting on the model"
    );
    let (a_thread, a_second) = start_run(&app).await;
    app.key = b;
    let (b_thread, b_run) = start_run(&app).await;

    // B's run takes the slot A's second run would have taken without the per-project cap.
    let done = app.wait_run(&b_thread, &b_run).await;
    assert_eq!(done["status"], "completed", "{done}");
    app.key = a;
    let (_, second) = app
        .get(&format!("/threads/{a_thread}/runs/{a_second}"))
        .await;
    assert_eq!(
        second["status"], "queued",
        "A's second run waits for A's first: {second}"
    );
    let done = app.wait_run(&a_thread, &a_second).await;
    assert_eq!(done["status"], "completed", "{done}");
}
