//! Scale benchmark: thousands of live runs and open SSE streams on one node.
//!
//! For each level N (`BENCH_SCALE_LEVELS`, default `1000,5000,10000`) two scenarios, each on a
//! fresh `assistants serve` process (embedded SQLite, `--run-concurrency` and the project's run
//! cap raised to fit), against an in-process fake upstream whose every answer streams 16 words
//! over about 2 s:
//!
//! - **runs**: N runs created (`POST /threads/runs`, not streamed, 64 client connections); the
//!   upstream holds every answer until all N are waiting in it, so all N are live at once, then
//!   lets them go. Timed: release → every run completed (the server's own
//!   `assistants_runs_finished_total{status="completed"}`).
//! - **streams**: N clients each open a streamed run and hold its SSE stream; the node drives
//!   N/2 runs at once (the others wait queued, their streams open). Once all N streams are open
//!   and N/2 answers wait in the upstream, it lets them go. Timed: release → each stream's
//!   `thread.run.completed` (two waves of ~2 s when nothing else costs anything).
//!
//! Reported per scenario: the server process's RSS at rest, its peak (`VmHWM`), and per live
//! run; its CPU seconds during the scenario; the latencies above. Why N/2 in `streams`: a
//! streamed run holds two sockets on the server (its client and its upstream call, over
//! HTTP/1.1), and this machine's hard limit of open files per process is 20,000.
//!
//! Run: `cargo build --release --bin assistants && cargo bench -p assistants-tests --bench
//! scale`. The server is the `assistants` binary (`ASSISTANTS_BIN`, else the target
//! directory's); the clients and the fake upstream share this process and the machine's cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assistants_tests::bench::{cpu_secs, peak_rss_mib_of, percentile, rss_mib};
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::json;
use assistants_tests::server_process::ServerProcess;
use serde_json::Value;
use tokio::sync::Semaphore;

/// An answer of 16 words, one chunk each, 100 ms apart: with the role, finish and usage chunks
/// and `[DONE]`, 20 chunks over 2 s.
fn answer(_: &Value) -> Reply {
    Reply::text("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen")
        .chunk_delay(Duration::from_millis(100))
}

/// A server process for `concurrency` runs at once, all of one project.
async fn server(llm: &FakeLlm, concurrency: usize) -> ServerProcess {
    ServerProcess::start(&format!(
        "[runs]\nconcurrency = {concurrency}\n[limits]\nmax_runs = {concurrency}\n\
         [llm]\nbase_url = \"{}\"\nmax_retries = 0\n",
        llm.url
    ))
    .await
}

struct Measured {
    rss_rest: f64,
    rss_peak: f64,
    cpu: f64,
}

/// What the server process used while `f` ran: RSS before, peak RSS, CPU seconds.
async fn measure<F: std::future::Future<Output = ()>>(server: &ServerProcess, f: F) -> Measured {
    let pid = server.pid().to_string();
    let rss_rest = rss_mib(&pid);
    let cpu_before = cpu_secs(&pid);
    f.await;
    Measured {
        rss_rest,
        rss_peak: peak_rss_mib_of(&pid),
        cpu: cpu_secs(&pid) - cpu_before,
    }
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> (bool, String)) {
    let started = Instant::now();
    loop {
        let (ok, state) = done();
        if ok {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{what}: still not there after {limit:?}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs completed on this server so far, from its metrics.
async fn completed(client: &reqwest::Client, server: &ServerProcess) -> usize {
    let text = client
        .get(format!("{}/metrics", server.root))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("assistants_runs_finished_total{") && l.contains("status=\"completed\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

async fn assistant(client: &reqwest::Client, server: &ServerProcess) -> String {
    let v: Value = client
        .post(format!("{}/assistants", server.base))
        .bearer_auth("bench")
        .json(&json!({"model": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["id"].as_str().expect("an assistant").to_string()
}

fn run_body(assistant: &str, stream: bool) -> Value {
    json!({
        "assistant_id": assistant,
        "thread": {"messages": [{"role": "user", "content": "hi"}]},
        "stream": stream,
    })
}

async fn runs(n: usize) {
    let llm = FakeLlm::with_responder(Arc::new(answer)).await;
    let server = server(&llm, n).await;
    let client = reqwest::Client::new();
    let asst = assistant(&client, &server).await;
    llm.hold();
    let mut created = Duration::ZERO;
    let mut to_done = Duration::ZERO;
    let m = measure(&server, async {
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(64));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = permits.clone().acquire_owned().await.unwrap();
            let (client, url, body) = (
                client.clone(),
                format!("{}/threads/runs", server.base),
                run_body(&asst, false),
            );
            tasks.push(tokio::spawn(async move {
                let r = client.post(url).bearer_auth("bench").json(&body).send();
                let r = r.await.expect("create run");
                let status = r.status();
                assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
                drop(permit);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        created = started.elapsed();
        wait_until(
            "every run in the upstream",
            Duration::from_secs(300),
            || (llm.held() >= n, format!("{} of {n} waiting", llm.held())),
        )
        .await;
        let released = Instant::now();
        llm.release();
        loop {
            let done = completed(&client, &server).await;
            if done >= n {
                break;
            }
            assert!(
                released.elapsed() < Duration::from_secs(600),
                "{done} of {n} runs completed after 600 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        to_done = released.elapsed();
    })
    .await;
    println!(
        "runs    {n:>6}: created in {:>5.2} s ({:>5.0}/s); all live at once, released -> all completed {:>5.2} s; \
         RSS rest {:>4.0} MiB, peak {:>5.0} MiB ({:>5.1} KiB per run); CPU {:>5.1} s",
        created.as_secs_f64(),
        n as f64 / created.as_secs_f64(),
        to_done.as_secs_f64(),
        m.rss_rest,
        m.rss_peak,
        (m.rss_peak - m.rss_rest) * 1024.0 / n as f64,
        m.cpu,
    );
}

async fn streams(n: usize) {
    let llm = FakeLlm::with_responder(Arc::new(answer)).await;
    let concurrency = n / 2;
    let server = server(&llm, concurrency).await;
    let client = reqwest::Client::new();
    let asst = assistant(&client, &server).await;
    llm.hold();
    let open = Arc::new(AtomicUsize::new(0));
    let released: Arc<std::sync::OnceLock<Instant>> = Default::default();
    let mut opened = Duration::ZERO;
    let mut latencies = Vec::with_capacity(n);
    let m = measure(&server, async {
        let started = Instant::now();
        // Streams open 256 at a time (up to their first event), so the kernel's accept
        // backlog, not the server, is never what is measured.
        let permits = Arc::new(Semaphore::new(256));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = permits.clone().acquire_owned().await.unwrap();
            let (client, url, body) = (
                client.clone(),
                format!("{}/threads/runs", server.base),
                run_body(&asst, true),
            );
            let (open, released) = (open.clone(), released.clone());
            tasks.push(tokio::spawn(async move {
                let mut r = client
                    .post(url)
                    .bearer_auth("bench")
                    .json(&body)
                    .send()
                    .await
                    .expect("open stream");
                assert_eq!(r.status(), 200);
                let mut permit = Some(permit);
                let mut buf = String::new();
                while let Some(chunk) = r.chunk().await.expect("stream") {
                    buf.push_str(std::str::from_utf8(&chunk).unwrap());
                    if permit.is_some() && buf.contains("event: thread.run.created") {
                        permit = None;
                        open.fetch_add(1, Ordering::SeqCst);
                    }
                    if buf.contains("event: thread.run.completed") {
                        let at = Instant::now();
                        return at.saturating_duration_since(*released.get().expect("released"));
                    }
                    // Keep only the tail that may hold a split event name.
                    if buf.len() > 4096 {
                        buf.drain(..buf.len() - 64);
                    }
                }
                panic!("stream ended without thread.run.completed: {buf}");
            }));
        }
        wait_until("every stream open", Duration::from_secs(300), || {
            let o = open.load(Ordering::SeqCst);
            let h = llm.held();
            (
                o >= n && h >= concurrency,
                format!("{o} of {n} streams open, {h} of {concurrency} runs in the upstream"),
            )
        })
        .await;
        opened = started.elapsed();
        released.set(Instant::now()).unwrap();
        llm.release();
        for t in tasks {
            latencies.push(t.await.unwrap());
        }
    })
    .await;
    latencies.sort_unstable();
    let ms = |p: f64| percentile(&latencies, p).as_secs_f64();
    println!(
        "streams {n:>6}: all open in {:>5.2} s; released -> completed p50 {:>5.2} s, p99 {:>5.2} s, max {:>5.2} s; \
         RSS rest {:>4.0} MiB, peak {:>5.0} MiB ({:>5.1} KiB per stream); CPU {:>5.1} s",
        opened.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        ms(1.0),
        m.rss_rest,
        m.rss_peak,
        (m.rss_peak - m.rss_rest) * 1024.0 / n as f64,
        m.cpu,
    );
}

fn main() {
    let levels: Vec<usize> = std::env::var("BENCH_SCALE_LEVELS")
        .unwrap_or_else(|_| "1000,5000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BENCH_SCALE_LEVELS: numbers"))
        .collect();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let rt = assistants_tests::bench::runtime();
    rt.block_on(async move {
        for n in levels {
            if only.is_empty() || only.contains("runs") {
                runs(n).await;
            }
            if only.is_empty() || only.contains("streams") {
                streams(n.max(2)).await;
            }
        }
    });
}
