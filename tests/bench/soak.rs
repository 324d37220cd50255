//! Soak benchmark: many tenants at once, some of them hostile, for a long time.
//!
//! `SOAK_PROJECTS` projects (default 50) share one embedded server; a tenth of them (at least
//! one) attack it — runs whose tools are the hostile test plugin's (loops, memory hogs, huge
//! errors, panics, sleeps), JSON bodies past `--max-json-bytes`, multipart fields past their
//! cap, messages past 256,000 characters, uploads until their storage quota answers 429 — while
//! the others make ordinary requests (get an assistant, add and list messages, a run calling
//! the calculator). First the ordinary projects run alone (the idle baseline), then everyone
//! for `SOAK_SECS` seconds (default 600).
//!
//! `SOAK_ATTACKS` narrows the attacks (`runs,json,field,message,uploads`) to see what each costs.
//!
//! Reported: the ordinary projects' request latency (p50/p99) and run turnaround, baseline vs
//! soak; the process RSS (sampled every second); responses by status class. The run fails
//! (exit 1) on any 5xx other than 503, any failed ordinary request or run, or an RSS above
//! `SOAK_MAX_RSS_MIB` (default 3072); the p99 target (≤ 2× the baseline) is reported, and
//! enforced only with `SOAK_STRICT=1` (the machine is shared, latency is noisy).
//!
//! Run: `cargo build --release --bin assistants && cargo bench -p assistants-tests --bench
//! soak`. CI runs a short debug one: `SOAK_SECS=40 SOAK_PROJECTS=20 cargo test -p
//! assistants-tests --bench soak` after `cargo build --bin assistants`. The server is the
//! `assistants` binary (`ASSISTANTS_BIN`, else the target directory's) in a process of its
//! own, so the RSS is the server's; the load generator and the fake upstream share its cores.
//! The attackers' clients have a runtime of their own, so their 2 MiB bodies never hold the
//! threads that time the ordinary requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assistants_core::store::Store;
use assistants_tests::bench::{env_usize, rss_mib};
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::json;
use assistants_tests::server_process::ServerProcess;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const TEST_PLUGINS: &str = env!("TEST_PLUGINS_DIR");
/// What the hostile projects' runs make the model call.
const HOSTILE_TOOLS: &[&str] = &[
    "spin",
    "hog",
    "hold",
    "huge_error",
    "huge_result",
    "panic",
    "deep_recursion",
    "hoard_fields",
    "sleep",
    "ok",
];
const MAX_JSON: usize = 1 << 20;

/// The upstream: a user message `call NAME ARGS` makes the model call tool NAME with ARGS once;
/// after a tool result, or for any other message, it answers in text.
fn upstream(body: &Value) -> Reply {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or_default();
    if last["role"] == "user" {
        if let Some(rest) = last["content"]
            .as_str()
            .and_then(|c| c.strip_prefix("call "))
        {
            let (name, args) = rest.split_once(' ').unwrap_or((rest, "{}"));
            return Reply::tool(name, args);
        }
    }
    Reply::text("Done.")
}

/// Who sends a request, and what it is.
#[derive(Clone, Copy)]
enum Op {
    /// An ordinary project's request: timed, and it must succeed.
    Ordinary(&'static str),
    /// An attack: its status is counted.
    Attack(&'static str),
}

/// Latencies and outcomes of one phase.
#[derive(Default)]
struct Tally {
    requests_us: Vec<u64>,
    /// The same, by kind of request.
    by_op: BTreeMap<&'static str, Vec<u64>>,
    runs_ms: Vec<u64>,
    /// Ordinary requests or runs that did not succeed (with a sample).
    failures: Vec<String>,
    /// Attack responses by kind and status.
    attack_statuses: BTreeMap<(&'static str, u16), u64>,
    /// 5xx other than 503, from anyone.
    server_errors: Vec<String>,
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

struct Tenant {
    key: String,
    assistant: String,
    thread: String,
}

struct Ctx {
    client: reqwest::Client,
    base: String,
    tally: Arc<Mutex<Tally>>,
}

impl Ctx {
    fn req(&self, key: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("OpenAI-Beta", "assistants=v2")
    }

    /// Sends, classifies the status, and returns (status, body).
    async fn send(&self, rb: reqwest::RequestBuilder, op: Op) -> (u16, Value) {
        let t = Instant::now();
        let (status, body) = match rb.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (
                    s,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(e) => (0, Value::String(format!("{e:?}"))),
        };
        let mut tally = self.tally.lock().unwrap();
        if status >= 500 && status != 503 {
            tally.server_errors.push(format!("{status} {body}"));
        }
        match op {
            Op::Ordinary(name) => {
                let us = t.elapsed().as_micros() as u64;
                tally.requests_us.push(us);
                tally.by_op.entry(name).or_default().push(us);
                if !(200..300).contains(&status) {
                    tally.failures.push(format!("{name}: {status} {body}"));
                }
            }
            Op::Attack(name) => {
                if status == 0 && std::env::var("SOAK_DEBUG").is_ok() {
                    eprintln!("{name}: {body}");
                }
                *tally.attack_statuses.entry((name, status)).or_default() += 1
            }
        }
        (status, body)
    }

    /// Creates a thread and run with `content`, polls it to its end; the final run.
    async fn run(&self, t: &Tenant, content: &str, op: Op) -> Option<Value> {
        let body = json!({"assistant_id": t.assistant,
            "thread": {"messages": [{"role": "user", "content": content}]}});
        let (s, run) = self
            .send(
                self.req(&t.key, reqwest::Method::POST, "/threads/runs")
                    .json(&body),
                op,
            )
            .await;
        if s != 200 {
            // Said in the failure, so a refused ordinary run can be told from a lost one.
            return Some(json!({"create": s, "answer": run}));
        }
        let path = format!(
            "/threads/{}/runs/{}",
            run["thread_id"].as_str()?,
            run["id"].as_str()?
        );
        // A poll that fails in transport (a kept-alive connection the server closed as it was
        // reused) is tried again, as the SDKs' pollers do; three in a row end the wait.
        let mut transport_errors = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let polled = match self.req(&t.key, reqwest::Method::GET, &path).send().await {
                Ok(r) => r.json::<Value>().await,
                Err(e) => Err(e),
            };
            let v = match polled {
                Ok(v) => v,
                Err(e) => {
                    transport_errors += 1;
                    if transport_errors == 3 {
                        return Some(json!({"poll": format!("{e:?}")}));
                    }
                    continue;
                }
            };
            transport_errors = 0;
            if !matches!(
                v["status"].as_str(),
                Some("queued" | "in_progress" | "cancelling")
            ) {
                return Some(v);
            }
        }
    }
}

async fn ordinary(ctx: Arc<Ctx>, t: Tenant, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        match rng.gen_range(0..10) {
            0..=2 => {
                let path = format!("/assistants/{}", t.assistant);
                ctx.send(
                    ctx.req(&t.key, reqwest::Method::GET, &path),
                    Op::Ordinary("get assistant"),
                )
                .await;
            }
            3..=5 => {
                let path = format!("/threads/{}/messages", t.thread);
                let body = json!({"role": "user", "content": "How is the weather today?"});
                let rb = ctx.req(&t.key, reqwest::Method::POST, &path).json(&body);
                ctx.send(rb, Op::Ordinary("create message")).await;
            }
            6..=8 => {
                let path = format!("/threads/{}/messages?limit=20", t.thread);
                ctx.send(
                    ctx.req(&t.key, reqwest::Method::GET, &path),
                    Op::Ordinary("list messages"),
                )
                .await;
            }
            _ => {
                let started = Instant::now();
                let run = ctx
                    .run(
                        &t,
                        r#"call calculate {"expression":"(2+3)*4"}"#,
                        Op::Ordinary("create run"),
                    )
                    .await;
                let mut tally = ctx.tally.lock().unwrap();
                match run {
                    Some(r) if r["status"] == "completed" => {
                        tally.runs_ms.push(started.elapsed().as_millis() as u64)
                    }
                    other => tally.failures.push(format!("run ended {other:?}")),
                }
            }
        }
        // An interactive client's pace, not a closed loop at full speed.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..80))).await;
    }
}

async fn hostile(ctx: Arc<Ctx>, t: Tenant, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut files: Vec<String> = Vec::new();
    let allowed = attacks();
    while !stop.load(Ordering::Relaxed) {
        let pick = rng.gen_range(0..10);
        let kind = match pick {
            0..=3 => "runs",
            4 => "json",
            5 => "field",
            6 => "message",
            _ => "uploads",
        };
        if !allowed.iter().any(|a| a == kind) {
            tokio::task::yield_now().await;
            continue;
        }
        match pick {
            0..=3 => {
                let tool = HOSTILE_TOOLS[rng.gen_range(0..HOSTILE_TOOLS.len())];
                ctx.run(&t, &format!("call {tool} {{}}"), Op::Attack("hostile run"))
                    .await;
            }
            4 => {
                let body = format!(
                    r#"{{"model": "m", "instructions": "{}"}}"#,
                    "x".repeat(MAX_JSON * 2)
                );
                let rb = ctx
                    .req(&t.key, reqwest::Method::POST, "/assistants")
                    .header("content-type", "application/json")
                    .body(body);
                ctx.send(rb, Op::Attack("oversized JSON")).await;
            }
            5 => {
                let form = reqwest::multipart::Form::new()
                    .text("purpose", "p".repeat(1 << 20))
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(vec![1; 10]).file_name("x.txt"),
                    );
                ctx.send(
                    ctx.req(&t.key, reqwest::Method::POST, "/files")
                        .multipart(form),
                    Op::Attack("oversized field"),
                )
                .await;
            }
            6 => {
                let path = format!("/threads/{}/messages", t.thread);
                let body = json!({"role": "user", "content": "y".repeat(300_000)});
                ctx.send(
                    ctx.req(&t.key, reqwest::Method::POST, &path).json(&body),
                    Op::Attack("long message"),
                )
                .await;
            }
            _ => {
                // Upload until the storage quota answers 429, then free some room.
                let form = reqwest::multipart::Form::new()
                    .text("purpose", "assistants")
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(vec![b'z'; 512 << 10])
                            .file_name("fill.txt"),
                    );
                let (s, v) = ctx
                    .send(
                        ctx.req(&t.key, reqwest::Method::POST, "/files")
                            .multipart(form),
                        Op::Attack("upload to quota"),
                    )
                    .await;
                if s == 200 {
                    files.extend(v["id"].as_str().map(str::to_string));
                } else if s == 429 {
                    for id in files.drain(..files.len().min(8)) {
                        let path = format!("/files/{id}");
                        ctx.send(
                            ctx.req(&t.key, reqwest::Method::DELETE, &path),
                            Op::Attack("delete file"),
                        )
                        .await;
                    }
                }
            }
        }
    }
}

/// The attacks hostile projects make (`SOAK_ATTACKS`, comma-separated; default all): `runs`,
/// `json`, `field`, `message`, `uploads`.
fn attacks() -> Vec<String> {
    std::env::var("SOAK_ATTACKS")
        .unwrap_or_else(|_| "runs,json,field,message,uploads".into())
        .split(',')
        .map(|a| a.trim().to_string())
        .collect()
}

/// A client of project `key`: an assistant (with the hostile or the calculator tool) and a
/// thread of its own.
async fn tenant(ctx: &Ctx, key: &str, hostile: bool) -> Tenant {
    let create = |path: &'static str, body: Value| async move {
        let v: Value = ctx
            .req(key, reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("set-up request")
            .json()
            .await
            .expect("set-up response");
        v["id"].as_str().expect("created").to_string()
    };
    let tools = if hostile {
        json!([{"type": "hostile"}])
    } else {
        json!([{"type": "calculator"}])
    };
    Tenant {
        key: key.to_string(),
        assistant: create("/assistants", json!({"model": "m", "tools": tools})).await,
        thread: create("/threads", json!({})).await,
    }
}

/// The hostile projects' clients, standing in for machines of their own: a runtime, threads and
/// connection pool apart from the ordinary clients', so building and sending 2 MiB bodies
/// does not hold the threads that time the ordinary requests.
struct Attackers {
    /// Present until dropped (dropped inside the main runtime: shut down without blocking).
    runtime: Option<tokio::runtime::Runtime>,
    ctx: Arc<Ctx>,
}

impl Attackers {
    fn new(base: &str, tally: Arc<Mutex<Tally>>) -> Attackers {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("soak-attacker")
            .enable_all()
            .build()
            .expect("the attackers' runtime");
        let ctx = Arc::new(Ctx {
            client: reqwest::Client::new(),
            base: base.to_string(),
            tally,
        });
        Attackers {
            runtime: Some(runtime),
            ctx,
        }
    }

    fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.runtime.as_ref().expect("present").spawn(f)
    }
}

impl Drop for Attackers {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs the ordinary (and, in the soak phase, hostile) tenants for `secs`; what they saw.
async fn phase(
    ctx: &Arc<Ctx>,
    attack: &Attackers,
    tenants: &[(bool, String)],
    secs: u64,
    with_attackers: bool,
    seed: u64,
    server: u32,
) -> (Tally, f64) {
    *ctx.tally.lock().unwrap() = Tally::default();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mib(&server.to_string()) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for (i, (is_hostile, key)) in tenants.iter().enumerate() {
        if *is_hostile && !with_attackers {
            continue;
        }
        // Hostile projects attack with several clients at once.
        let clients = if *is_hostile { 8 } else { 1 };
        for c in 0..clients {
            let t = tenant(ctx, key, *is_hostile).await;
            let stop = stop.clone();
            let seed = seed ^ ((i as u64) << 8 | c);
            tasks.push(if *is_hostile {
                let ctx = attack.ctx.clone();
                attack.spawn(hostile(ctx, t, stop, seed))
            } else {
                tokio::spawn(ordinary(ctx.clone(), t, stop, seed))
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = sampler.await;
    let tally = std::mem::take(&mut *ctx.tally.lock().unwrap());
    (tally, peak.load(Ordering::Relaxed) as f64)
}

fn main() {
    let secs = env_usize("SOAK_SECS", 600) as u64;
    let projects = env_usize("SOAK_PROJECTS", 50).max(2);
    let max_rss = env_usize("SOAK_MAX_RSS_MIB", 3072) as f64;
    let strict = std::env::var("SOAK_STRICT").is_ok_and(|v| v == "1");
    let baseline_secs = (secs / 5).clamp(10, 60);
    let rt = assistants_tests::bench::runtime();
    let ok = rt.block_on(async move {
        let llm = FakeLlm::with_responder(Arc::new(upstream)).await;
        let server = ServerProcess::start(&format!(
            "max_json_bytes = {MAX_JSON}\n\
             [plugins]\ndir = \"{TEST_PLUGINS}\"\n\
             [limits]\nmax_storage_bytes = {}\nmax_files = 1000\n\
             [llm]\nbase_url = \"{}\"\nmax_retries = 1\n",
            16 << 20,
            llm.url
        ))
        .await;
        let store = Store::connect(&server.database_url()).await.unwrap();
        let attackers = (projects / 10).max(1);
        let mut tenants = Vec::new();
        for i in 0..projects {
            let (_, key) = store.create_key(&format!("project-{i}")).await.unwrap();
            tenants.push((i < attackers, key));
        }
        // The open-mode check is cached for up to a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let ctx = Arc::new(Ctx {
            client: reqwest::Client::new(),
            base: server.base.clone(),
            tally: tally.clone(),
        });
        let attack = Attackers::new(&server.base, tally);
        let pid = server.pid();
        println!(
            "soak: {projects} projects ({attackers} hostile), baseline {baseline_secs} s, soak {secs} s"
        );
        let (mut base, base_rss) = phase(&ctx, &attack, &tenants, baseline_secs, false, 1, pid).await;
        let rss_after_baseline = rss_mib(&pid.to_string());
        let (mut soak, soak_rss) = phase(&ctx, &attack, &tenants, secs, true, 2, pid).await;
        let rss_end = rss_mib(&pid.to_string());

        let row = |name: &str, t: &mut Tally| {
            println!(
                "{name:<9} requests {:>7}  p50 {:>7.2} ms  p99 {:>7.2} ms   runs {:>5}  p50 {:>6} ms  p99 {:>6} ms",
                t.requests_us.len(),
                pct(&mut t.requests_us, 0.5) as f64 / 1000.0,
                pct(&mut t.requests_us, 0.99) as f64 / 1000.0,
                t.runs_ms.len(),
                pct(&mut t.runs_ms, 0.5),
                pct(&mut t.runs_ms, 0.99),
            );
        };
        row("baseline", &mut base);
        row("soak", &mut soak);
        for (op, soak_us) in soak.by_op.iter_mut() {
            let base_p99 = base.by_op.get_mut(op).map_or(0, |v| pct(v, 0.99));
            println!(
                "  {op:<15} p99 baseline {:>7.2} ms  soak {:>7.2} ms",
                base_p99 as f64 / 1000.0,
                pct(soak_us, 0.99) as f64 / 1000.0
            );
        }
        let ratio = pct(&mut soak.requests_us, 0.99) as f64
            / pct(&mut base.requests_us, 0.99).max(1) as f64;
        let run_ratio =
            pct(&mut soak.runs_ms, 0.99) as f64 / pct(&mut base.runs_ms, 0.99).max(1) as f64;
        println!("ordinary p99 soak/baseline: requests {ratio:.2}x, runs {run_ratio:.2}x (target ≤ 2x)");
        println!(
            "RSS MiB: peak in baseline {base_rss:.0}, after baseline {rss_after_baseline:.0}, peak in soak {soak_rss:.0}, at end {rss_end:.0} (limit {max_rss:.0})"
        );
        println!("attack responses (status 0: the server closed the connection while the client was still sending):");
        for ((name, status), n) in &soak.attack_statuses {
            println!("  {name:<16} {status:>3}: {n}");
        }
        let failures: Vec<_> = base.failures.iter().chain(&soak.failures).collect();
        let server_errors: Vec<_> = base.server_errors.iter().chain(&soak.server_errors).collect();
        println!(
            "ordinary failures: {}; 5xx other than 503: {}",
            failures.len(),
            server_errors.len()
        );
        for f in failures.iter().chain(&server_errors).take(5) {
            println!("  e.g. {}", f.chars().take(300).collect::<String>());
        }
        let mut ok = failures.is_empty() && server_errors.is_empty() && soak_rss <= max_rss;
        if !ok {
            server.print_log_tail();
        }
        if strict && (ratio > 2.0 || run_ratio > 2.0) {
            println!("SOAK_STRICT: p99 above 2x the baseline");
            ok = false;
        }
        ok
    });
    if !ok {
        println!("soak: FAILED");
        std::process::exit(1);
    }
    println!("soak: ok");
}
