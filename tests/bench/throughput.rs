//! Sustained run throughput: embedded mode against distributed mode on the same machine.
//!
//! `BENCH_CLIENTS` (default 32) clients each loop for `BENCH_SECS` (default 20): create a thread
//! and a run in one streamed request (`POST /threads/runs`) and read its events until
//! `thread.run.completed`. The upstream answers instantly. Reported: completed runs per second
//! and p50/p99 of create → completed at that load.
//!
//! - embedded: one node, SQLite, in-process queue and events;
//! - distributed: an API-only node and a worker-only node (two servers in this process) over
//!   PostgreSQL, RabbitMQ and Redis (`ASSISTANTS_TEST_DATABASE_URL` etc., defaulting to the
//!   machine's services).
//!
//! Run: `cargo bench -p assistants-tests --bench throughput` (`BENCH_MODES=embedded` or
//! `distributed` for one). Client, servers and fake upstream share this process and two cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use assistants_tests::bench::{env_usize, percentile};
use assistants_tests::fake_llm::FakeLlm;
use assistants_tests::{json, TestApp};

/// Runs completed and their latencies, and the wall time until the last one completed.
async fn load(
    api: &TestApp,
    asst: &str,
    clients: usize,
    secs: u64,
) -> (usize, Vec<Duration>, Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let client = reqwest::Client::new();
    let url = Arc::new(api.url("/threads/runs"));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, asst) = (client.clone(), url.clone(), asst.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let mut resp = client
                    .post(url.as_str())
                    .bearer_auth("bench")
                    .json(&json!({"assistant_id": asst, "stream": true,
                                  "thread": {"messages": [{"role": "user", "content": "hi"}]}}))
                    .send()
                    .await
                    .expect("POST");
                assert_eq!(resp.status(), 200);
                let mut buf = String::new();
                let mut done = false;
                while let Some(chunk) = resp.chunk().await.expect("stream") {
                    buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
                    if buf.contains("event: thread.run.completed") {
                        done = true;
                        break;
                    }
                }
                assert!(done, "run did not complete: {buf}");
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (all.len(), all, started.elapsed())
}

fn main() {
    let clients = env_usize("BENCH_CLIENTS", 32);
    let secs = env_usize("BENCH_SECS", 20) as u64;
    let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "embedded,distributed".into());
    let rt = assistants_tests::bench::runtime();
    rt.block_on(async move {
        let llm = FakeLlm::start().await;
        for mode in modes.split(',') {
            // Nodes live until the measurement is printed (a worker node ends with its app).
            let (api, _worker) = match mode {
                "embedded" => (
                    TestApp::spawn_with_llm(&llm, |s| s.runs.concurrency = 256).await,
                    None,
                ),
                "distributed" => {
                    let api = TestApp::spawn_distributed(&llm, |s| s.runs.worker = false).await;
                    let worker = api
                        .spawn_peer(|s| {
                            s.runs.worker = true;
                            s.runs.concurrency = 256;
                        })
                        .await;
                    (api, Some(worker))
                }
                other => panic!("unknown mode {other}"),
            };
            let asst = api.create("/assistants", json!({"model": "bench"})).await;
            // Warm-up: connections, caches, the strategy component.
            load(&api, &asst, clients, 2).await;
            let (n, lat, wall) = load(&api, &asst, clients, secs).await;
            println!(
                "{mode}: {clients} clients for {secs} s: {n} runs, {:.1} runs/s; create → completed p50 {:.1} ms, p99 {:.1} ms",
                n as f64 / wall.as_secs_f64(),
                percentile(&lat, 0.50).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3,
            );
        }
    });
}
