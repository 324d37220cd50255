//! Run engine benchmark: the server's own cost per run, against an in-process fake upstream.
//!
//! 1. One-step runs, one after another (streamed): median and p95 of create → `thread.run.completed`
//!    with an instant upstream, and of the time from the upstream starting its answer to the
//!    client receiving the first `thread.message.delta`; then the same for streamed responses
//!    (`POST /responses`: → `response.completed`, → first `response.output_text.delta`).
//! 2. 1,000 runs at once against an upstream that takes 2 s per answer (`--run-concurrency`
//!    1000): all must complete; wall time, throughput and peak RSS.
//!
//! Run: `cargo bench -p assistants-tests --bench runs` (release build; embedded SQLite unless
//! `ASSISTANTS_TEST_DATABASE_URL` names PostgreSQL). `BENCH_RUNS` (default 300) sets the number of
//! sequential runs, `BENCH_CONCURRENT` (default 1000) the concurrent ones. Client, server and
//! fake upstream share this process and its two cores.

use assistants_tests::bench::{env_usize, peak_rss_mib, percentile};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::{json, parse_sse, TestApp};

fn main() {
    let sequential = env_usize("BENCH_RUNS", 300);
    let concurrent = env_usize("BENCH_CONCURRENT", 1000);
    let rt = assistants_tests::bench::runtime();
    rt.block_on(async move {
        let llm = FakeLlm::start().await;
        let app = TestApp::spawn_with_llm(&llm, |s| {
            s.runs.concurrency = 1000;
            // One project here: its cap (by default three quarters of the slots, derived from
            // the default concurrency before this raises it) would hold it to 24 runs at once.
            s.limits.max_runs = Some(1000);
        })
        .await;
        println!("backend: {}", app.database_url.split(':').next().unwrap());
        let asst = app.create("/assistants", json!({"model": "bench"})).await;

        // 1. Sequential one-step streamed runs.
        let mut threads = Vec::with_capacity(sequential + 20);
        for _ in 0..sequential + 20 {
            threads.push(
                app.create("/threads", json!({"messages": [{"role": "user", "content": "hi"}]}))
                    .await,
            );
        }
        let client = reqwest::Client::new();
        let mut total = Vec::with_capacity(sequential);
        let mut first_delta = Vec::with_capacity(sequential);
        for (i, thread) in threads.iter().enumerate() {
            llm.push(Reply::text("Hello there, this is a short answer."));
            let started = Instant::now();
            let mut resp = client
                .post(app.url(&format!("/threads/{thread}/runs")))
                .bearer_auth("bench")
                .json(&json!({"assistant_id": asst, "stream": true}))
                .send()
                .await
                .unwrap();
            let mut buf = String::new();
            let mut delta_at = None;
            let mut completed_at = None;
            while let Some(chunk) = resp.chunk().await.unwrap() {
                buf.push_str(std::str::from_utf8(&chunk).unwrap());
                if delta_at.is_none() && buf.contains("event: thread.message.delta") {
                    delta_at = Some(Instant::now());
                }
                if completed_at.is_none() && buf.contains("event: thread.run.completed") {
                    completed_at = Some(Instant::now());
                }
            }
            let events = parse_sse(&buf);
            assert!(
                events.iter().any(|(e, _)| e == "thread.run.completed"),
                "run did not complete: {buf}"
            );
            if i < 20 {
                continue; // warm-up
            }
            total.push(completed_at.unwrap() - started);
            let answered = *llm.answered_at().last().unwrap();
            first_delta.push(delta_at.unwrap().saturating_duration_since(answered));
        }
        total.sort_unstable();
        first_delta.sort_unstable();
        println!(
            "one-step run, create -> completed ({sequential} sequential, streamed): median {:.2} ms, p95 {:.2} ms",
            percentile(&total, 0.5).as_secs_f64() * 1e3,
            percentile(&total, 0.95).as_secs_f64() * 1e3
        );
        println!(
            "upstream answer start -> first thread.message.delta at the client: median {:.3} ms, p95 {:.3} ms",
            percentile(&first_delta, 0.5).as_secs_f64() * 1e3,
            percentile(&first_delta, 0.95).as_secs_f64() * 1e3
        );

        // 1b. The same through the Responses surface: a streamed response per request.
        let mut total = Vec::with_capacity(sequential);
        let mut first_delta = Vec::with_capacity(sequential);
        for i in 0..sequential + 20 {
            llm.push(Reply::text("Hello there, this is a short answer."));
            let started = Instant::now();
            let mut resp = client
                .post(app.url("/responses"))
                .bearer_auth("bench")
                .json(&json!({"model": "bench", "input": "hi", "stream": true}))
                .send()
                .await
                .unwrap();
            let mut buf = String::new();
            let mut delta_at = None;
            let mut completed_at = None;
            while let Some(chunk) = resp.chunk().await.unwrap() {
                buf.push_str(std::str::from_utf8(&chunk).unwrap());
                if delta_at.is_none() && buf.contains("event: response.output_text.delta") {
                    delta_at = Some(Instant::now());
                }
                if completed_at.is_none() && buf.contains("event: response.completed") {
                    completed_at = Some(Instant::now());
                }
            }
            assert!(completed_at.is_some(), "response did not complete: {buf}");
            if i < 20 {
                continue; // warm-up
            }
            total.push(completed_at.unwrap() - started);
            let answered = *llm.answered_at().last().unwrap();
            first_delta.push(delta_at.unwrap().saturating_duration_since(answered));
        }
        total.sort_unstable();
        first_delta.sort_unstable();
        println!(
            "one-step response, create -> response.completed ({sequential} sequential, streamed): median {:.2} ms, p95 {:.2} ms",
            percentile(&total, 0.5).as_secs_f64() * 1e3,
            percentile(&total, 0.95).as_secs_f64() * 1e3
        );
        println!(
            "upstream answer start -> first response.output_text.delta at the client: median {:.3} ms, p95 {:.3} ms",
            percentile(&first_delta, 0.5).as_secs_f64() * 1e3,
            percentile(&first_delta, 0.95).as_secs_f64() * 1e3
        );

        // 2. Many concurrent runs against a slow upstream.
        let mut threads = Vec::with_capacity(concurrent);
        for _ in 0..concurrent {
            threads.push(
                app.create("/threads", json!({"messages": [{"role": "user", "content": "hi"}]}))
                    .await,
            );
        }
        for _ in 0..concurrent {
            llm.push(Reply::text("slow answer").delay(Duration::from_secs(2)));
        }
        let app = Arc::new(app);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for thread in threads {
            let app = app.clone();
            let asst = asst.clone();
            tasks.push(tokio::spawn(async move {
                let (s, run) = app
                    .post(&format!("/threads/{thread}/runs"), json!({"assistant_id": asst}))
                    .await;
                assert_eq!(s, 200, "{run}");
                let run_id = run["id"].as_str().unwrap().to_string();
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let (_, r) = app.get(&format!("/threads/{thread}/runs/{run_id}")).await;
                    match r["status"].as_str() {
                        Some("queued" | "in_progress") => continue,
                        Some("completed") => return,
                        other => panic!("run ended {other:?}: {r}"),
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let wall = started.elapsed();
        println!(
            "{concurrent} concurrent runs, upstream 2 s each: all completed in {:.2} s ({:.0} runs/s), peak RSS {:.0} MiB (server + client + fake upstream)",
            wall.as_secs_f64(),
            concurrent as f64 / wall.as_secs_f64(),
            peak_rss_mib()
        );
    });
}
