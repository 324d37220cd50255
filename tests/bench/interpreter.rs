//! Code interpreter benchmark (the real CPython-in-wasm, installed): template ready, first
//! cell on a new thread (a fork of the template), a warm trivial cell and the server's
//! overhead on it, a pandas + plot cell, restoring a thread on another node, snapshot sizes,
//! memory per live session. Run:
//! `ASSISTANTS_CODE_INTERPRETER_DIR=DIR ASSISTANTS_PLUGIN_CACHE_KEY_FILE=KEY
//!  cargo bench -p assistants-tests --bench interpreter` (see docs/benchmarks.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assistants_core::blobs::Blobs;
use assistants_core::interpreter::service::{Availability, CodeInterpreter, InterpreterSettings};
use assistants_core::plugins::cache::CacheKey;
use assistants_tests::bench::{env_usize, percentile, rss_mib};

async fn node(
    root: &std::path::Path,
    store: &Blobs,
    name: &str,
) -> (Arc<CodeInterpreter>, Duration) {
    let mut s = InterpreterSettings::for_data_dir(&root.join(name));
    s.dir = PathBuf::from(
        std::env::var_os("ASSISTANTS_CODE_INTERPRETER_DIR")
            .expect("ASSISTANTS_CODE_INTERPRETER_DIR names the install"),
    );
    s.max_sessions = 64;
    s.memory_budget_mib = 64 << 10;
    let key = std::env::var_os("ASSISTANTS_PLUGIN_CACHE_KEY_FILE").map(PathBuf::from);
    let started = Instant::now();
    let ci = CodeInterpreter::start(s, CacheKey::load(key.as_deref()), Some(store.clone()));
    loop {
        match ci.availability() {
            Availability::Ready => return (ci, started.elapsed()),
            Availability::Unavailable(why) => panic!("{why}"),
            Availability::Preparing => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// One cell: its total time through the service, and the cell's own time in the guest.
async fn cell(ci: &CodeInterpreter, thread: &str, code: &str) -> (Duration, Duration) {
    let t = Instant::now();
    let r = ci
        .run_cell(thread, code, async {})
        .await
        .expect("the cell ran");
    let total = t.elapsed();
    assert!(r.outcome.stderr.is_empty(), "{code}: {}", r.outcome.stderr);
    (total, r.outcome.elapsed)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&e.path())
        } else {
            meta.len()
        };
    }
    total
}

fn main() {
    let rt = assistants_tests::bench::runtime();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let store_dir = root.path().join("store");
        let store = Blobs::open(None, &store_dir).unwrap();
        let pid = std::process::id().to_string();

        // 1. Node start: load the compiled module, build the template (no template stored).
        let (a, built) = node(root.path(), &store, "a").await;
        println!("ready with a template built here: {:.0} ms", ms(built));
        let template_bytes = dir_bytes(&store_dir.join("files/code-interpreter/templates"));
        println!("template stored: {:.1} MiB", template_bytes as f64 / (1 << 20) as f64);
        // … and a second node that loads the stored template instead.
        let (b, loaded) = node(root.path(), &store, "b").await;
        println!("ready with the stored template: {:.0} ms", ms(loaded));

        // 2. First cell on new threads (fork + reseed + cell + snapshot).
        let n = env_usize("INTERP_THREADS", 20);
        let mut firsts = Vec::new();
        for i in 0..n {
            firsts.push(cell(&a, &format!("first_{i}"), "print(1)").await.0);
        }
        firsts.sort();
        println!(
            "first cell on a new thread (`print(1)`, {n} threads): median {:.1} ms, p90 {:.1} ms",
            ms(percentile(&firsts, 0.5)),
            ms(percentile(&firsts, 0.9))
        );

        // 3. Warm trivial cells on one thread: total, and the server's part (total minus the
        // guest's own time).
        let mut totals = Vec::new();
        let mut overheads = Vec::new();
        for _ in 0..env_usize("INTERP_WARM", 200) {
            let (total, guest) = cell(&a, "warm", "x = 1").await;
            totals.push(total);
            overheads.push(total.saturating_sub(guest));
        }
        totals.sort();
        overheads.sort();
        println!(
            "warm trivial cell (`x = 1`): median {:.1} ms (server overhead {:.1} ms: hidden cell, snapshot, stale check), p99 {:.1} ms",
            ms(percentile(&totals, 0.5)),
            ms(percentile(&overheads, 0.5)),
            ms(percentile(&totals, 0.99))
        );

        // 4. pandas + a plot.
        let plot = "import numpy as np, pandas as pd, matplotlib.pyplot as plt\n\
                    df = pd.DataFrame({'x': np.arange(1000), 'y': np.random.rand(1000).cumsum()})\n\
                    df.plot(x='x', y='y')\n\
                    df.describe()";
        let mut plots = Vec::new();
        for i in 0..5 {
            plots.push(cell(&a, &format!("plot_{i}"), plot).await.0);
        }
        plots.sort();
        println!(
            "pandas + plot cell (first cell on a thread, PNG out): median {:.0} ms",
            ms(percentile(&plots, 0.5))
        );
        let thread_dir = store_dir.join("files/code-interpreter/threads/plot_0");
        println!(
            "snapshot of that thread: {:.2} MiB (memory pages changed from the template, files)",
            dir_bytes(&thread_dir) as f64 / (1 << 20) as f64
        );

        // … and a warm trivial cell in a session that has worked (its memory differs from
        // the template in more pages).
        let mut worked = Vec::new();
        for _ in 0..env_usize("INTERP_WARM", 200) / 4 {
            worked.push(cell(&a, "plot_0", "x = 1").await.0);
        }
        worked.sort();
        println!(
            "warm trivial cell after the pandas + plot cell: median {:.1} ms, p99 {:.1} ms",
            ms(percentile(&worked, 0.5)),
            ms(percentile(&worked, 0.99))
        );

        // 5. Restoring a thread on the other node.
        let mut restores = Vec::new();
        for i in 0..5 {
            restores.push(cell(&b, &format!("plot_{i}"), "len(df)").await.0);
        }
        restores.sort();
        println!(
            "restore on another node + a cell (`len(df)`): median {:.0} ms",
            ms(percentile(&restores, 0.5))
        );

        // 6. Memory per live session: RSS growth over new sessions that each ran a cell.
        let before = rss_mib(&pid);
        let live_before = a.live_sessions();
        let extra = env_usize("INTERP_SESSIONS", 16);
        for i in 0..extra {
            cell(&a, &format!("mem_{i}"), "import pandas as pd; df = pd.DataFrame({'a': range(1000)})").await;
        }
        let grown = rss_mib(&pid) - before;
        let added = a.live_sessions() - live_before;
        let per = grown / added.max(1) as f64;
        println!(
            "memory per live session: {:.1} MiB RSS ({added} sessions added {:.0} MiB); {:.0} sessions in 1 GiB",
            per,
            grown,
            1024.0 / per
        );
    });
}
