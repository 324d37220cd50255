//! Ingestion benchmark: text files attached to a vector store, timed from the attach until
//! every file is `completed` (parse, o200k tokenisation, chunking, writing chunks, index
//! generation bump). Embeddings are excluded: the server runs without an embeddings model.
//!
//! Run: `cargo bench -p assistants-tests --bench ingest` (release; embedded SQLite unless
//! `ASSISTANTS_TEST_DATABASE_URL` names PostgreSQL). `BENCH_FILES` (default 20) files of
//! `BENCH_FILE_MB` (default 1) MB of Zipf-distributed words each; `ingest_concurrency` 2, the
//! default.

use assistants_tests::bench::{env_usize, peak_rss_mib};
use std::time::{Duration, Instant};

use assistants_tests::{json, TestApp};
use rand::{Rng, SeedableRng};

/// About `bytes` of text: words from a 20,000-word vocabulary with a Zipf-like frequency.
fn text(rng: &mut impl Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        let r: f64 = rng.gen();
        let idx = (20_000f64.powf(r) as usize).saturating_sub(1);
        s.push_str(&format!("w{idx:x}"));
        s.push(if rng.gen_ratio(1, 15) { '\n' } else { ' ' });
    }
    s
}

fn main() {
    let files = env_usize("BENCH_FILES", 20);
    let mb = env_usize("BENCH_FILE_MB", 1);
    let rt = assistants_tests::bench::runtime();
    rt.block_on(async move {
        let app = TestApp::spawn().await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut ids = Vec::new();
        let mut total = 0usize;
        for i in 0..files {
            let body = text(&mut rng, mb * 1024 * 1024);
            total += body.len();
            ids.push(app.upload_ok(&format!("doc{i}.txt"), body).await);
        }
        let started = Instant::now();
        let vs = app
            .create("/vector_stores", json!({"name": "bench", "file_ids": ids}))
            .await;
        loop {
            let (_, v) = app.get(&format!("/vector_stores/{vs}")).await;
            if v["file_counts"]["in_progress"] == 0 {
                assert_eq!(v["file_counts"]["completed"], files, "{v}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let elapsed = started.elapsed();
        let db = app
            .settings()
            .storage
            .data_dir
            .join("assistants.db");
        let db_mb = ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db.display())).ok())
            .map(|m| m.len() as f64 / 1e6)
            .sum::<f64>();
        println!(
            "ingested {files} files, {:.1} MB of text, in {:.2} s: {:.2} MB/s (auto chunking 800/400 tokens), database {:.0} MB, peak RSS {:.0} MiB",
            total as f64 / 1e6,
            elapsed.as_secs_f64(),
            total as f64 / 1e6 / elapsed.as_secs_f64(),
            db_mb,
            peak_rss_mib()
        );
    });
}
