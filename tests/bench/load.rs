//! Load benchmark: starts the server (embedded SQLite by default, or the backend named by
//! `ASSISTANTS_TEST_DATABASE_URL`) on its own runtime, seeds data through the API, then drives
//! each scenario with 64 concurrent keep-alive connections for `BENCH_SECS` seconds (default 10)
//! and prints req/s with p50/p95/p99 latency.
//!
//! Run: `cargo bench -p assistants-tests --bench load` (release build). Scenarios can be
//! narrowed with `BENCH_ONLY=get_assistant,search`. The load generator shares the machine
//! with the server, so figures are a floor for what a separate client would see.

use std::sync::Arc;
use std::time::{Duration, Instant};

use assistants_tests::{json, TestApp};
use rand::{Rng, SeedableRng};

const CONNECTIONS: usize = 64;

struct Report {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Report {
    fn print(&mut self) {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| {
            let v = &self.latencies_us;
            if v.is_empty() {
                return 0.0;
            }
            v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0
        };
        println!(
            "{:<34} {:>9.0} req/s   p50 {:>7.2} ms   p95 {:>7.2} ms   p99 {:>7.2} ms   ({} requests, {} errors)",
            self.name,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.95),
            pct(0.99),
            self.requests,
            self.errors
        );
    }
}

/// Runs `make_request(i)` from 64 concurrent workers for `secs` seconds.
async fn drive<F, Fut>(name: &'static str, secs: u64, make_request: F) -> Report
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let make_request = Arc::new(make_request);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONNECTIONS {
        let make_request = make_request.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = w as u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = make_request(i).await;
                lat.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors += 1;
                }
                i += CONNECTIONS as u64;
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies_us.extend(l);
        errors += e;
    }
    Report {
        name,
        requests: latencies_us.len(),
        errors,
        elapsed: start.elapsed(),
        latencies_us,
    }
}

/// A vocabulary with a Zipf-like frequency, so posting lists look like natural text.
fn corpus_text(rng: &mut impl Rng, vocab: &[String], words: usize) -> String {
    let mut s = String::with_capacity(words * 8);
    for i in 0..words {
        let r: f64 = rng.gen();
        let idx = ((vocab.len() as f64).powf(r) as usize)
            .saturating_sub(1)
            .min(vocab.len() - 1);
        s.push_str(&vocab[idx]);
        s.push(if i % 15 == 14 { '\n' } else { ' ' });
    }
    s
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let only = std::env::var("BENCH_ONLY").ok();
    let enabled = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == name))
    };

    // The server gets its own runtime (and so its own threads), as it would in its own process.
    let server_rt = assistants_tests::bench::runtime();
    let app = server_rt.block_on(TestApp::spawn_with(|s| s.ingest_concurrency = 2));
    let app = Arc::new(app);
    let client_rt = assistants_tests::bench::runtime();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    println!(
        "backend: {}   connections: {CONNECTIONS}   seconds per scenario: {secs}",
        app.database_url.split(':').next().unwrap()
    );

    client_rt.block_on(async {
        if enabled("get_assistant") {
            let id = app.create("/assistants", json!({"model": "gpt-4o", "name": "bench", "instructions": "Be brief."})).await;
            let url = app.url(&format!("/assistants/{id}"));
            let c = client.clone();
            drive("GET /assistants/{id}", secs, move |_| {
                let (c, url) = (c.clone(), url.clone());
                async move { c.get(url).bearer_auth("k").send().await.is_ok_and(|r| r.status() == 200) }
            })
            .await
            .print();
        }

        if enabled("create_message") {
            let thread = app.create("/threads", json!({})).await;
            let url = app.url(&format!("/threads/{thread}/messages"));
            let c = client.clone();
            drive("POST /threads/{id}/messages", secs, move |i| {
                let (c, url) = (c.clone(), url.clone());
                async move {
                    let body = json!({"role": "user", "content": format!("message number {i}")});
                    c.post(url).bearer_auth("k").json(&body).send().await.is_ok_and(|r| r.status() == 200)
                }
            })
            .await
            .print();
        }

        if enabled("list_messages") {
            let thread = app.create("/threads", json!({})).await;
            let url = app.url(&format!("/threads/{thread}/messages"));
            let seed = Instant::now();
            let c = client.clone();
            let u = url.clone();
            futures_lite_join(10_000, 64, move |i| {
                let (c, u) = (c.clone(), u.clone());
                async move {
                    let r = c.post(u).bearer_auth("k").json(&json!({"role": "user", "content": format!("seed {i}")})).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
            .await;
            println!("  (seeded 10,000 messages in {:.1}s)", seed.elapsed().as_secs_f64());
            let c = client.clone();
            let list = format!("{url}?limit=20");
            drive("GET messages?limit=20 (10k thread)", secs, move |_| {
                let (c, url) = (c.clone(), list.clone());
                async move { c.get(url).bearer_auth("k").send().await.is_ok_and(|r| r.status() == 200) }
            })
            .await
            .print();
        }

        if enabled("search") {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let vocab: Vec<String> = (0..20_000)
                .map(|_| (0..rng.gen_range(3..10)).map(|_| rng.gen_range(b'a'..=b'z') as char).collect())
                .collect();
            let vs = app.create("/vector_stores", json!({"name": "bench"})).await;
            // 50 files of ~2,000 chunks of 100 tokens each: just over 100,000 chunks.
            let seed = Instant::now();
            let mut file_ids = Vec::new();
            let mut bytes = 0usize;
            for f in 0..50 {
                let text = corpus_text(&mut rng, &vocab, 80_000);
                bytes += text.len();
                file_ids.push(app.upload_ok(&format!("doc{f}.txt"), text).await);
            }
            let (s, b) = app
                .post(
                    &format!("/vector_stores/{vs}/file_batches"),
                    json!({"file_ids": file_ids, "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}}),
                )
                .await;
            assert_eq!(s, 200, "{b}");
            let v = app.wait_vs(&vs).await;
            assert_eq!(v["file_counts"]["completed"], 50, "{v}");
            let ingest = seed.elapsed().as_secs_f64();
            let settings = app.settings();
            let store = assistants_core::store::Store::connect(&settings.storage.database_url).await.unwrap();
            let chunks = store.chunk_count(&vs).await.unwrap();
            println!(
                "  (ingested {:.1} MB of text into {chunks} chunks in {ingest:.1}s = {:.1} MB/s, incl. upload)",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / ingest
            );
            let warm = Instant::now();
            let (s, _) = app.post(&format!("/vector_stores/{vs}/search"), json!({"query": vocab[10].clone()})).await;
            assert_eq!(s, 200);
            println!("  (first search incl. index build: {:.0} ms)", warm.elapsed().as_secs_f64() * 1000.0);
            let url = app.url(&format!("/vector_stores/{vs}/search"));
            let vocab = Arc::new(vocab);
            let c = client.clone();
            drive("POST /vector_stores/{id}/search", secs, move |i| {
                let (c, url, vocab) = (c.clone(), url.clone(), vocab.clone());
                async move {
                    let mut r = rand::rngs::StdRng::seed_from_u64(i);
                    let q: Vec<&str> = (0..3).map(|_| vocab[r.gen_range(0..2_000)].as_str()).collect();
                    let body = json!({"query": q.join(" "), "max_num_results": 10});
                    c.post(url).bearer_auth("k").json(&body).send().await.is_ok_and(|r| r.status() == 200)
                }
            })
            .await
            .print();
        }
    });
    drop(app);
    server_rt.shutdown_timeout(Duration::from_secs(5));
}

/// Runs `n` jobs with at most `width` in flight.
async fn futures_lite_join<F, Fut>(n: usize, width: usize, job: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::stream::StreamExt;
    futures::stream::iter(0..n)
        .map(job)
        .buffer_unordered(width)
        .collect::<Vec<_>>()
        .await;
}
