//! Bringing a store's index up to date from the database: the store's completed files are
//! compared with the index's ([`StoreIndex::delta`]), and only the chunks of the files that
//! are new or were ingested again are read, streamed into a segment builder on a blocking
//! thread (tokenising is CPU work: seconds for a large store). An index of nothing (a store
//! this node has not cached) is the same operation with every file new, reading the store's
//! chunks in one pass; the stale index is never copied, only shared.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;

use super::index::StoreIndex;
use super::segment::SegmentBuilder;
use crate::store::vector_stores::FILES_PER_QUERY;
use crate::store::{Store, StoreError, StoreResult};

/// Rows per batch streamed from the database into a segment builder.
const BUILD_BATCH: usize = 512;

/// `base` brought up to `generation` (which the caller read before calling: the files and
/// chunks read here are at least that recent, so the index never answers older content).
pub(super) async fn refresh(
    store: &Store,
    vs_id: &str,
    generation: i64,
    base: Arc<StoreIndex>,
) -> StoreResult<StoreIndex> {
    let started = std::time::Instant::now();
    let current = store.indexed_files(vs_id).await?;
    let delta = base.delta(current);
    if delta.added.is_empty() {
        let (dead, retagged) = (delta.dead.len(), delta.retagged.len());
        let ix = base.apply(generation, delta, &HashMap::new(), None);
        tracing::debug!(
            vector_store_id = vs_id,
            dead,
            retagged,
            "refreshed search index"
        );
        return Ok(ix);
    }
    let filenames = store
        .filenames(delta.added.iter().map(|f| f.id.as_str()))
        .await?;
    let slots: HashMap<String, u32> = delta
        .added
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.clone(), delta.first_slot + i as u32))
        .collect();
    let avg_len = base.avg_len();
    type Row = (u32, i64, String, Option<Vec<u8>>);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Row>>(4);
    let builder = tokio::task::spawn_blocking(move || {
        let mut b = SegmentBuilder::default();
        while let Some(batch) = rx.blocking_recv() {
            for (slot, seq, text, embedding) in batch {
                b.add(slot, seq, &text, embedding.as_deref());
            }
        }
        (!b.is_empty()).then(|| b.finish(avg_len))
    });
    let mut batch = Vec::with_capacity(BUILD_BATCH);
    // Everything new (a first build): one pass over the store. Otherwise the new files'
    // chunks only, a few files per query.
    let queries: Vec<Option<Vec<String>>> = if base.chunks() == 0 {
        vec![None]
    } else {
        let ids: Vec<String> = delta.added.iter().map(|f| f.id.clone()).collect();
        ids.chunks(FILES_PER_QUERY)
            .map(|c| Some(c.to_vec()))
            .collect()
    };
    'read: for files in queries {
        let mut rows = match &files {
            None => store.stream_chunks(vs_id),
            Some(files) => store.stream_file_chunks(vs_id, files),
        };
        while let Some(row) = rows.next().await {
            let c = row?;
            // Chunks of files that are no longer completed members are not searchable.
            if let Some(&slot) = slots.get(&c.file_id) {
                batch.push((slot, c.seq, c.text, c.embedding));
            }
            if batch.len() == BUILD_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BUILD_BATCH));
                if tx.send(full).await.is_err() {
                    break 'read;
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    drop(tx);
    let segment = builder
        .await
        .map_err(|e| StoreError::internal("building a search index", e))?;
    let (added, dead, chunks) = (
        delta.added.len(),
        delta.dead.len(),
        segment.as_ref().map_or(0, |s| s.len()),
    );
    let ix = base.apply(generation, delta, &filenames, segment);
    tracing::debug!(
        vector_store_id = vs_id,
        added,
        dead,
        chunks,
        segments = ix.segments(),
        index_chunks = ix.chunks(),
        vectors = ix.vectors(),
        bytes = ix.bytes(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "refreshed search index"
    );
    Ok(ix)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::search::{QueryVector, SearchIndexes, SearchRequest};
    use crate::store::vector_stores::NewChunk;
    use crate::store::Store;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        crate::store::testing::admin_execute(
            &url,
            "INSERT INTO vector_stores (id, project_id, created_at, last_active_at, body) \
             VALUES ('vs_1', 'p', 0, 0, '{}')",
        )
        .await
        .unwrap();
        (store, dir)
    }

    /// Attaches a file and completes its ingestion with these chunk texts, as a worker would.
    async fn ingest(store: &Store, file: &str, texts: &[&str]) {
        let strategy = json!({"type": "auto"});
        store
            .attach_file("p", "vs_1", file, None, &strategy, None)
            .await
            .unwrap();
        let job = store
            .claim_ingest(300, None)
            .await
            .unwrap()
            .expect("claimable");
        let chunks: Vec<NewChunk> = texts
            .iter()
            .map(|t| NewChunk {
                tokens: 1,
                text: t.to_string(),
                embedding: None,
            })
            .collect();
        assert!(store.complete_ingest(&job, &chunks, 1).await.unwrap());
    }

    async fn found(ix: &SearchIndexes, store: &Store, query: &str) -> Vec<(String, String)> {
        let queries = [query.to_string()];
        let qv = QueryVector::new();
        let req = SearchRequest {
            queries: &queries,
            max_results: 50,
            threshold: 0.0,
            filter: None,
            rerank: true,
            query_vector: &qv,
        };
        let mut hits: Vec<(String, String)> = ix
            .search(store, "vs_1", &req)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.file_id, h.text))
            .collect();
        hits.sort();
        hits
    }

    #[tokio::test]
    async fn a_node_reads_only_what_changed_and_merges_in_the_background() {
        let (store, _dir) = store().await;
        let ix = SearchIndexes::new(None);
        ingest(&store, "file-a", &["otters hold hands", "otters sleep"]).await;
        assert_eq!(found(&ix, &store, "otters").await.len(), 2);
        assert_eq!((ix.stats().full_builds, ix.stats().refreshes), (1, 0));
        // An unchanged store is not read again.
        found(&ix, &store, "otters").await;
        assert_eq!(ix.stats().refreshes, 0);

        ingest(&store, "file-b", &["sea otters use tools"]).await;
        let got = found(&ix, &store, "otters").await;
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!((ix.stats().full_builds, ix.stats().refreshes), (1, 1));

        // Ingested again with other text: the old chunks are gone, the new ones found.
        ingest(&store, "file-a", &["beavers build dams"]).await;
        assert_eq!(
            found(&ix, &store, "otters beavers").await,
            vec![
                ("file-a".into(), "beavers build dams".into()),
                ("file-b".into(), "sea otters use tools".into())
            ]
        );
        // Detached: not found any more.
        assert!(store.detach_file("p", "vs_1", "file-b").await.unwrap());
        assert_eq!(found(&ix, &store, "otters beavers").await.len(), 1);
        assert_eq!((ix.stats().full_builds, ix.stats().refreshes), (1, 3));

        // Enough appends for a tier of small segments: merged in the background, same hits,
        // while a second node that searches less often keeps its own index of the same store
        // (and searches run while the merge does).
        let other = SearchIndexes::new(None);
        assert_eq!(found(&other, &store, "otters beavers").await.len(), 1);
        for n in 0..4 {
            ingest(&store, &format!("file-{n}"), &["badgers dig"]).await;
            assert_eq!(found(&ix, &store, "badgers").await.len(), n + 1);
            if n % 2 == 1 {
                assert_eq!(found(&other, &store, "badgers").await.len(), n + 1);
            }
        }
        assert_eq!(found(&ix, &store, "badgers").await.len(), 4);
        assert_eq!((other.stats().full_builds, other.stats().refreshes), (1, 2));
        for _ in 0..200 {
            if ix.stats().merges > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(ix.stats().merges > 0, "{:?}", ix.stats());
        assert_eq!(found(&ix, &store, "badgers").await.len(), 4);
        assert_eq!(found(&ix, &store, "beavers otters").await.len(), 1);
        assert_eq!(ix.stats().full_builds, 1);
    }

    #[tokio::test]
    async fn searches_racing_changes_all_answer_and_the_last_sees_everything() {
        let (store, _dir) = store().await;
        let ix = std::sync::Arc::new(SearchIndexes::new(None));
        let mut searches = Vec::new();
        for n in 0..8 {
            ingest(&store, &format!("file-{n}"), &["wolves howl"]).await;
            let (ix, store) = (ix.clone(), store.clone());
            // Each search may find a refresh to an older generation running: it starts from
            // that one's result, and neither fails.
            searches.push(tokio::spawn(async move {
                found(&ix, &store, "wolves").await.len()
            }));
        }
        for (n, s) in searches.into_iter().enumerate() {
            let hits = s.await.unwrap();
            assert!(hits > n && hits <= 8, "search {n} found {hits}");
        }
        assert_eq!(found(&ix, &store, "wolves").await.len(), 8);
        assert_eq!(ix.stats().full_builds, 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_is_tried_again_by_the_next_search() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let sql = |q: &'static str| crate::store::testing::admin_execute(&url, q);
        sql(
            "INSERT INTO vector_stores (id, project_id, created_at, last_active_at, body) \
             VALUES ('vs_1', 'p', 0, 0, '{}')",
        )
        .await
        .unwrap();
        ingest(&store, "file-a", &["lynx"]).await;
        // Attributes the index cannot read (written behind the server's back; the store's
        // generation does not move): the refresh fails, and so does the search.
        sql("UPDATE vector_store_files SET attributes = '{' WHERE id = 'file-a'")
            .await
            .unwrap();
        let ix = SearchIndexes::new(None);
        let queries = ["lynx".to_string()];
        let qv = QueryVector::new();
        let req = SearchRequest {
            queries: &queries,
            max_results: 5,
            threshold: 0.0,
            filter: None,
            rerank: true,
            query_vector: &qv,
        };
        assert!(ix.search(&store, "vs_1", &req).await.is_err());
        // Repaired at the same generation: the next search builds again instead of sharing
        // the failure.
        sql("UPDATE vector_store_files SET attributes = NULL WHERE id = 'file-a'")
            .await
            .unwrap();
        assert_eq!(found(&ix, &store, "lynx").await.len(), 1);
    }

    /// Waits until `ix` has written one snapshot (they are written in the background).
    async fn written(ix: &SearchIndexes) {
        for _ in 0..500 {
            if ix.stats().snapshots_written > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(ix.stats().snapshots_written, 1);
    }

    #[tokio::test]
    async fn another_node_loads_the_snapshot_and_reads_only_what_changed_since() {
        let (store, dir) = store().await;
        let blobs = crate::blobs::Blobs::open(None, dir.path()).unwrap();
        let node = |min| SearchIndexes::new(None).with_snapshots(blobs.clone(), min);
        for (f, text) in [("file-a", "otters hold hands"), ("file-b", "otters sleep")] {
            ingest(&store, f, &[text]).await;
        }
        // Too small to persist at the server's threshold; this test's nodes persist anything.
        let small = node(crate::search::SNAPSHOT_MIN_CHUNKS);
        found(&small, &store, "otters").await;
        let first = node(1);
        assert_eq!(found(&first, &store, "otters").await.len(), 2);
        written(&first).await;
        assert_eq!(small.stats().snapshots_written, 0);

        // Changed since: one file re-ingested, one added.
        ingest(&store, "file-b", &["beavers sleep"]).await;
        ingest(&store, "file-c", &["sea otters use tools"]).await;
        let second = node(1);
        let want = vec![
            ("file-a".to_string(), "otters hold hands".to_string()),
            ("file-b".to_string(), "beavers sleep".to_string()),
            ("file-c".to_string(), "sea otters use tools".to_string()),
        ];
        assert_eq!(found(&second, &store, "otters beavers").await, want);
        let stats = second.stats();
        assert_eq!((stats.loads, stats.full_builds), (1, 0), "{stats:?}");
        // Grown by half: persisted again, replacing the first node's snapshot.
        written(&second).await;

        // A damaged snapshot: logged, and the store is read instead.
        let snapshots = dir.path().join("files/search/vs_1");
        for entry in std::fs::read_dir(&snapshots).unwrap() {
            let path = entry.unwrap().path();
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            std::fs::write(&path, vec![7u8; len]).unwrap();
        }
        let third = node(1);
        assert_eq!(found(&third, &store, "otters beavers").await, want);
        assert_eq!((third.stats().loads, third.stats().full_builds), (0, 1));
        // …and forgets it, so the index it read is persisted in its place.
        written(&third).await;
        // Objects no store records (the damaged one, one a node died before recording) are
        // swept; the recorded one stays, and loads.
        blobs
            .put_bytes("search/vs_1/orphan.idx", b"x".to_vec())
            .await
            .unwrap();
        let swept = crate::search::sweep_snapshots(&store, &blobs, std::time::Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(swept, 2);
        assert_eq!(std::fs::read_dir(&snapshots).unwrap().count(), 1);
        let fourth = node(1);
        assert_eq!(found(&fourth, &store, "otters beavers").await, want);
        assert_eq!((fourth.stats().loads, fourth.stats().full_builds), (1, 0));

        // A deleted store's snapshots go with it.
        third.forget("vs_1").await;
        assert_eq!(std::fs::read_dir(&snapshots).map_or(0, |d| d.count()), 0);
    }
}
