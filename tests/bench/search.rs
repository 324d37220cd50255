//! Search benchmark: one vector store of a million embedded chunks.
//!
//! Run: `cargo bench -p assistants-tests --bench search` (release, embedded SQLite). Settings:
//! `BENCH_CHUNKS` (default 1,000,000), `BENCH_DIMS` (1,536, text-embedding-3-small's),
//! `BENCH_CHUNK_WORDS` (100), `BENCH_FILES` (100), `BENCH_QUERIES` (200).
//!
//! The store is made through the server's own write path: files are uploaded and attached
//! over HTTP with ingestion switched off, then each file's chunks (text and embedding) are
//! written by `Store::complete_ingest`, as ingestion would. Texts are Zipf-distributed words
//! plus words of the chunk's topic; embeddings are clustered (1,000 topics; a chunk's cosine
//! to others of its topic is about 0.5, to the rest about 0), so near neighbours are close
//! calls, as with real embeddings.
//!
//! Measured:
//! 1. Index build on first search, database size on disk, resident memory.
//! 2. Hybrid query latency (`SearchIndexes::search` with the query embedding supplied, so the
//!    embedding call is excluded; includes the generation check, ranking and reading the
//!    texts of the results) and lexical-only latency: p50/p95/p99.
//! 3. Changes to the store (`BENCH_APPENDS`, default 20, files of `BENCH_APPEND_CHUNKS`, 200):
//!    the first search after each file's ingestion completes (the index reads only that file),
//!    search latency while files keep landing every 250 ms, the first search after a file of the
//!    store is detached, and what the refreshes and background merges did; then a restarted
//!    node's first search (it loads the snapshot written after the build and reads the files
//!    changed since).
//! 4. The vector engines compared on the same vectors: exact f32, exhaustive int8, and sign
//!    bits + int8 rescoring for several candidate counts: time per query and recall@10
//!    against exact f32. (The f32 copy this needs is made after 1 to 3 are measured.)

use std::time::{Duration, Instant};

use assistants_core::blobs::Blobs;
use assistants_core::search::vectors::{exact_nearest, Vectors};
use assistants_core::search::{QueryVector, SearchIndexes, SearchRequest, SNAPSHOT_MIN_CHUNKS};
use assistants_core::store::keys::DEFAULT_PROJECT;
use assistants_core::store::vector_stores::NewChunk;
use assistants_core::store::Store;
use assistants_tests::bench::{env_usize, peak_rss_mib, percentile, rss_mib};
use assistants_tests::{json, TestApp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOPICS: usize = 1_000;
const SEED: u64 = 0x5ea4c4;

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn noise(rng: &mut StdRng, dims: usize) -> Vec<f32> {
    unit((0..dims).map(|_| rng.gen::<f32>() - 0.5).collect())
}

/// The synthetic corpus: every chunk's text and vector derive from its number alone, so they
/// can be regenerated instead of kept.
struct Corpus {
    dims: usize,
    words: usize,
    centroids: Vec<Vec<f32>>,
}

impl Corpus {
    fn new(dims: usize, words: usize) -> Corpus {
        let mut rng = StdRng::seed_from_u64(SEED);
        let centroids = (0..TOPICS).map(|_| noise(&mut rng, dims)).collect();
        Corpus {
            dims,
            words,
            centroids,
        }
    }

    fn topic(i: usize) -> usize {
        (i.wrapping_mul(2_654_435_761) >> 7) % TOPICS
    }

    fn vector(&self, i: usize) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(SEED ^ (i as u64).wrapping_mul(0x9e37_79b9));
        let c = &self.centroids[Self::topic(i)];
        let n = noise(&mut rng, self.dims);
        unit(c.iter().zip(&n).map(|(a, b)| 0.7 * a + 0.7 * b).collect())
    }

    fn text(&self, i: usize) -> String {
        let mut rng = StdRng::seed_from_u64(!SEED ^ i as u64);
        let topic = Self::topic(i);
        let mut s = String::with_capacity(self.words * 7);
        for _ in 0..self.words {
            if rng.gen_ratio(1, 10) {
                s.push_str(&format!("t{topic}k{}", rng.gen_range(0..40)));
            } else {
                let r: f64 = rng.gen();
                s.push_str(&format!(
                    "w{:x}",
                    (30_000f64.powf(r) as usize).saturating_sub(1)
                ));
            }
            s.push(' ');
        }
        s
    }
}

/// One search of the bench's store, timed: (latency, hits).
async fn search_once(
    search: &SearchIndexes,
    store: &Store,
    vs: &str,
    text: String,
    vector: Option<Vec<f32>>,
) -> (Duration, usize) {
    let cell = QueryVector::new_with(Some(vector));
    let queries = [text];
    let req = SearchRequest {
        queries: &queries,
        max_results: 10,
        threshold: 0.0,
        filter: None,
        rerank: true,
        query_vector: &cell,
    };
    let t = Instant::now();
    let hits = search.search(store, vs, &req).await.unwrap();
    (t.elapsed(), hits.len())
}

/// Bytes of the files under `dir`.
fn walk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{label}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.95)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap())
    );
}

fn main() {
    let chunks = env_usize("BENCH_CHUNKS", 1_000_000);
    let dims = env_usize("BENCH_DIMS", 1_536);
    let words = env_usize("BENCH_CHUNK_WORDS", 100);
    let files = env_usize("BENCH_FILES", 100).max(1);
    let queries = env_usize("BENCH_QUERIES", 200);
    let appends = env_usize("BENCH_APPENDS", 20);
    let append_chunks = env_usize("BENCH_APPEND_CHUNKS", 200);
    let corpus = Corpus::new(dims, words);
    let rt = assistants_tests::bench::runtime();
    rt.block_on(async move {
        let mut app = TestApp::spawn_with(|s| s.ingest_concurrency = 0).await;
        let mut ids = Vec::new();
        // The store's files, then the files appended later (attached now; ingestion is off,
        // so they wait in_progress until this bench completes them).
        for f in 0..files + 2 * appends {
            ids.push(app.upload_ok(&format!("part{f}.txt"), "placeholder").await);
        }
        let vs = app
            .create("/vector_stores", json!({"name": "bench", "file_ids": ids}))
            .await;
        app.stop().await;
        let store = Store::connect(&app.database_url).await.unwrap();

        let started = Instant::now();
        let per_file = chunks.div_ceil(files);
        let mut written = 0;
        let mut loaded = Vec::new();
        for _ in 0..files {
            let job = store.claim_ingest(86_400, None).await.unwrap().unwrap();
            loaded.push(job.file_id.clone());
            let range = written..(written + per_file).min(chunks);
            let batch: Vec<NewChunk> = range
                .clone()
                .map(|i| NewChunk {
                    tokens: words as i64,
                    text: corpus.text(i),
                    embedding: Some(corpus.vector(i)),
                })
                .collect();
            let bytes = batch.iter().map(|c| c.text.len() as i64).sum();
            assert!(store.complete_ingest(&job, &batch, bytes).await.unwrap());
            written = range.end;
        }
        assert_eq!(written, chunks, "the chunks spread over the files");
        let written_in = started.elapsed();
        // Let the checkpointer catch up so the sizes are the settled ones.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let db = app.settings().storage.data_dir.join("assistants.db");
        let size = |suffix: &str| {
            std::fs::metadata(format!("{}{suffix}", db.display())).map_or(0.0, |m| m.len() as f64 / 1e6)
        };
        let (db_mb, wal_mb) = (size(""), size("-wal"));
        println!(
            "store: {chunks} chunks of {words} words, {dims} dimensions, in {files} files; written in {:.1} s; database {db_mb:.0} MB on disk ({:.0} bytes per chunk) + WAL {wal_mb:.0} MB",
            written_in.as_secs_f64(),
            db_mb * 1e6 / chunks as f64
        );

        // Indexes persisted next to the files, as the server does.
        let blobs = Blobs::open(None, &app.settings().storage.data_dir).unwrap();
        let node = || SearchIndexes::default().with_snapshots(blobs.clone(), SNAPSHOT_MIN_CHUNKS);
        let search = node();
        let rss_before = rss_mib("self");
        let mut rng = StdRng::seed_from_u64(SEED + 1);
        let query = |rng: &mut StdRng| {
            let target = rng.gen_range(0..chunks);
            let text = corpus.text(target);
            let picked: Vec<&str> = text
                .split(' ')
                .filter(|w| !w.is_empty())
                .skip(rng.gen_range(0..words.saturating_sub(4).max(1)))
                .take(4)
                .collect();
            let q = noise(rng, dims);
            let v = unit(
                corpus
                    .vector(target)
                    .iter()
                    .zip(&q)
                    .map(|(a, b)| 0.8 * a + 0.6 * b)
                    .collect(),
            );
            (target, picked.join(" "), v)
        };
        let run = |text: String, vector: Option<Vec<f32>>| search_once(&search, &store, &vs, text, vector);
        let (target, text, v) = query(&mut rng);
        let (build, n) = run(text, Some(v)).await;
        println!(
            "index build on first search: {:.1} s ({} hits for chunk {target}); resident memory {:.0} MiB → {:.0} MiB",
            build.as_secs_f64(),
            n,
            rss_before,
            rss_mib("self")
        );
        // The snapshot is written in the background; wait for it so it does not share the
        // cores with the measured queries.
        let t = Instant::now();
        while search.stats().snapshots_written == 0 && t.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let snapshot_mb = walk_bytes(&app.settings().storage.data_dir.join("files/search")) as f64 / 1e6;
        println!(
            "snapshot written {:.1} s after the build ({snapshot_mb:.0} MB)",
            t.elapsed().as_secs_f64()
        );
        let mut hybrid = Vec::new();
        let mut lexical = Vec::new();
        for _ in 0..queries {
            let (_, text, v) = query(&mut rng);
            let (t, n) = run(text.clone(), Some(v)).await;
            assert!(n > 0);
            hybrid.push(t);
            lexical.push(run(text, None).await.0);
        }
        report(&format!("hybrid search, {queries} queries, top 10 (query embedding excluded)"), hybrid);
        report("lexical search", lexical);
        println!("peak RSS so far {:.0} MiB (server setup, client and index in one process)", peak_rss_mib());

        // 3. Changes: files landing one by one, then while searches run, then a removal.
        // (Their queries draw from a generator of their own, so the engines' probes below are
        // the ones earlier versions of this bench used.)
        let mut changes_rng = StdRng::seed_from_u64(SEED + 3);
        let mut next_chunk = chunks;
        let complete_one = |next: usize| {
            let store = store.clone();
            let batch: Vec<NewChunk> = (next..next + append_chunks)
                .map(|i| NewChunk {
                    tokens: words as i64,
                    text: corpus.text(i),
                    embedding: Some(corpus.vector(i)),
                })
                .collect();
            async move {
                let job = store.claim_ingest(86_400, None).await.unwrap().unwrap();
                assert!(store.complete_ingest(&job, &batch, 1).await.unwrap());
                job.file_id
            }
        };
        let mut first_after = Vec::new();
        for _ in 0..appends {
            complete_one(next_chunk).await;
            let (_, text, v) = query(&mut changes_rng);
            first_after.push(run(text, Some(v)).await.0);
            next_chunk += append_chunks;
        }
        report(&format!("first search after a {append_chunks}-chunk file lands ({appends} files)"), first_after);
        let mut tasks = Vec::new();
        for n in 0..appends {
            let start = next_chunk + n * append_chunks;
            let append = complete_one(start);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(250 * n as u64)).await;
                append.await
            }));
        }
        let mut during = Vec::new();
        let until = Instant::now() + Duration::from_millis(250 * appends as u64 + 500);
        while Instant::now() < until {
            let (_, text, v) = query(&mut changes_rng);
            during.push(run(text, Some(v)).await.0);
        }
        for t in tasks {
            t.await.unwrap();
        }
        report(&format!("hybrid search while a file lands every 250 ms ({} queries)", during.len()), during);
        assert!(store.detach_file(DEFAULT_PROJECT, &vs, &loaded[0]).await.unwrap());
        let (_, text, v) = query(&mut changes_rng);
        let (t, _) = run(text, Some(v)).await;
        println!("first search after detaching a {per_file}-chunk file: {:.2} ms", ms(t));
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!(
            "index: {:?}; resident memory {:.0} MiB",
            search.stats(),
            rss_mib("self")
        );
        drop(search);
        // A restarted node: the snapshot, then the files changed since it was taken.
        let restarted = node();
        let (_, text, v) = query(&mut changes_rng);
        let (t, n) = search_once(&restarted, &store, &vs, text, Some(v)).await;
        println!(
            "restarted node's first search: {:.2} s ({n} hits; {:?}); resident memory {:.0} MiB",
            t.as_secs_f64(),
            restarted.stats(),
            rss_mib("self")
        );
        drop(restarted);

        // 4. Engines compared on the same vectors.
        let mut flat = Vec::with_capacity(chunks * dims);
        let mut ix = Vectors::default();
        for i in 0..chunks {
            let v = corpus.vector(i);
            ix.push(i as u32, &v);
            flat.extend_from_slice(&v);
        }
        let probes: Vec<Vec<f32>> = (0..50).map(|_| query(&mut rng).2).collect();
        let recall = |got: &[(u32, f32)], exact: &[(u32, f32)]| {
            got.iter().filter(|g| exact.iter().any(|e| e.0 == g.0)).count() as f64 / exact.len() as f64
        };
        let mut exact_results = Vec::new();
        let t = Instant::now();
        for q in &probes {
            exact_results.push(exact_nearest(&flat, dims, q, 10));
        }
        println!(
            "engine exact f32 (memory {:.0} MiB): {:.1} ms per query",
            (flat.len() * 4) as f64 / 1048576.0,
            ms(t.elapsed()) / probes.len() as f64
        );
        let t = Instant::now();
        let mut r = 0.0;
        for (q, exact) in probes.iter().zip(&exact_results) {
            r += recall(&ix.nearest_exhaustive(q, 10, |_| true), exact);
        }
        println!(
            "engine int8 exhaustive (memory {:.0} MiB for sign bits + codes): {:.1} ms per query, recall@10 {:.3}",
            ix.bytes() as f64 / 1048576.0,
            ms(t.elapsed()) / probes.len() as f64,
            r / probes.len() as f64
        );
        for candidates in [100, 250, 500, 1_000, 2_000, 4_000] {
            let t = Instant::now();
            let mut r = 0.0;
            for (q, exact) in probes.iter().zip(&exact_results) {
                r += recall(&ix.nearest(q, 10, candidates, true, |_| true), exact);
            }
            println!(
                "engine sign bits + int8 rescoring of {candidates}: {:.1} ms per query, recall@10 {:.3}",
                ms(t.elapsed()) / probes.len() as f64,
                r / probes.len() as f64
            );
        }
    });
}
