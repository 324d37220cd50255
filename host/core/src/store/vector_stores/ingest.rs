//! Ingestion's side of vector-store files: leases (claim, release), results fenced by the
//! lease token (complete, fail), the extracted text cache, and the chunks search indexes read.

use super::*;

/// Most files [`Store::stream_file_chunks`] reads in one query.
pub(crate) const FILES_PER_QUERY: usize = 64;

fn chunk_row(r: AnyRow) -> StoreResult<ChunkRow> {
    Ok(ChunkRow {
        seq: r.try_get(0)?,
        file_id: r.try_get(1)?,
        text: r.try_get(2)?,
        embedding: r.try_get(3)?,
    })
}

impl Store {
    /// Claims a waiting in-progress file for `lease_secs` seconds, serving projects fairly:
    /// the project with the fewest files being ingested goes first (then the one whose file
    /// has waited longest), and a project with `per_project` files in flight waits.
    ///
    /// Two nodes may pick the same file; the conditional update lets one win and the other
    /// picks again. They may also both see a project one below its cap, so across nodes the
    /// cap can be exceeded by the number of nodes claiming at that moment.
    pub async fn claim_ingest(
        &self,
        lease_secs: i64,
        per_project: Option<usize>,
    ) -> StoreResult<Option<IngestJob>> {
        let cap = per_project.map_or(i64::MAX, |n| n as i64);
        for _ in 0..8 {
            let t = now();
            let pick = sqlx::query(
                "SELECT w.first FROM \
                   (SELECT project_id, MIN(seq) AS first FROM vector_store_files \
                    WHERE status = 'in_progress' AND (lease_until IS NULL OR lease_until < $1) \
                    GROUP BY project_id) w \
                 LEFT JOIN \
                   (SELECT project_id, COUNT(*) AS n FROM vector_store_files \
                    WHERE status = 'in_progress' AND lease_token IS NOT NULL AND lease_until >= $1 \
                    GROUP BY project_id) a ON a.project_id = w.project_id \
                 WHERE COALESCE(a.n, 0) < $2 ORDER BY COALESCE(a.n, 0), w.first LIMIT 1",
            )
            .bind(t)
            .bind(cap)
            .fetch_optional(self.read())
            .await?;
            let Some(pick) = pick else { return Ok(None) };
            let seq: i64 = pick.try_get(0)?;
            let token: i64 = rand::random();
            let row = sqlx::query(
                "UPDATE vector_store_files SET lease_until = $1, lease_token = $3, attempts = attempts + 1 \
                 WHERE seq = $4 AND status = 'in_progress' AND (lease_until IS NULL OR lease_until < $2) \
                 RETURNING vector_store_id, id, project_id, chunking_strategy, attempts",
            )
            .bind(t + lease_secs)
            .bind(t)
            .bind(token)
            .bind(seq)
            .fetch_optional(self.write())
            .await?;
            // Another claimer took it first: pick again.
            let Some(r) = row else { continue };
            return Ok(Some(IngestJob {
                vector_store_id: r.try_get(0)?,
                file_id: r.try_get(1)?,
                project_id: r.try_get(2)?,
                chunking_strategy: serde_json::from_str(&r.try_get::<String, _>(3)?)?,
                token,
                attempts: r.try_get(4)?,
            }));
        }
        Ok(None)
    }

    /// Gives a claimed file back for another attempt after `retry_in_secs` (transient failure);
    /// while it waits it no longer counts as in flight for its project.
    pub(crate) async fn release_ingest(
        &self,
        job: &IngestJob,
        retry_in_secs: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE vector_store_files SET lease_until = $1, lease_token = NULL \
             WHERE vector_store_id = $2 AND id = $3 AND lease_token = $4 AND status = 'in_progress'",
        )
        .bind(now() + retry_in_secs)
        .bind(job.vector_store_id.clone())
        .bind(job.file_id.clone())
        .bind(job.token)
        .execute(self.write())
        .await?;
        Ok(())
    }

    /// Writes the chunks and completes the file, unless the job was superseded (then false).
    pub async fn complete_ingest(
        &self,
        job: &IngestJob,
        chunks: &[NewChunk],
        usage_bytes: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_background().await?;
        let done = sqlx::query(
            "UPDATE vector_store_files SET status = 'completed', usage_bytes = $1, lease_until = NULL, \
             lease_token = NULL, \
             content_generation = (SELECT index_generation + 1 FROM vector_stores WHERE id = $2) \
             WHERE vector_store_id = $2 AND id = $3 AND lease_token = $4 AND status = 'in_progress'",
        )
        .bind(usage_bytes)
        .bind(job.vector_store_id.clone())
        .bind(job.file_id.clone())
        .bind(job.token)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        self.drop_chunks_in(&mut tx, &job.vector_store_id, Some(&job.file_id))
            .await?;
        // Many rows per statement: a large file has thousands of chunks, and on SQLite every
        // statement holds the single writer that all API writes wait for.
        const ROWS: usize = 100;
        for (batch_no, batch) in chunks.chunks(ROWS).enumerate() {
            let mut sql = String::from(
                "INSERT INTO chunks (vector_store_id, file_id, chunk_index, tokens, text, embedding) VALUES ",
            );
            let mut args = Vec::with_capacity(batch.len() * 6);
            for (i, c) in batch.iter().enumerate() {
                let n = args.len();
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6
                ));
                args.push(Val::Text(job.vector_store_id.clone()));
                args.push(Val::Text(job.file_id.clone()));
                args.push(Val::Int((batch_no * ROWS + i) as i64));
                args.push(Val::Int(c.tokens));
                args.push(Val::Text(c.text.clone()));
                args.push(Val::OptBytes(c.embedding.as_deref().map(vector_bytes)));
            }
            crate::store::bind_all(sqlx::query(&sql), &args)
                .execute(&mut *tx)
                .await?;
        }
        self.touch_store_in(&mut tx, &job.vector_store_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks the file failed with `last_error`, unless the job was superseded.
    pub(crate) async fn fail_ingest(
        &self,
        job: &IngestJob,
        code: &str,
        message: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE vector_store_files SET status = 'failed', last_error = $1, lease_until = NULL, \
             lease_token = NULL \
             WHERE vector_store_id = $2 AND id = $3 AND lease_token = $4 AND status = 'in_progress'",
        )
        .bind(serde_json::json!({ "code": code, "message": message }).to_string())
        .bind(job.vector_store_id.clone())
        .bind(job.file_id.clone())
        .bind(job.token)
        .execute(self.write())
        .await?;
        Ok(())
    }

    /// The generation of a store's searchable content; changes whenever chunks or attributes do.
    pub(crate) async fn index_generation(&self, vs_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT index_generation FROM vector_stores WHERE id = $1")
            .bind(vs_id.to_string())
            .fetch_optional(self.read())
            .await?
            .ok_or_else(|| StoreError::not_found("vector store", vs_id))?;
        Ok(row.try_get(0)?)
    }

    /// All chunks of a store in insertion order, streamed: a large store's chunks (text and
    /// embeddings) would not fit in memory at once next to the index being built from them.
    pub(crate) fn stream_chunks<'a>(
        &'a self,
        vs_id: &str,
    ) -> futures::stream::BoxStream<'a, StoreResult<ChunkRow>> {
        use futures::StreamExt;
        sqlx::query(
            "SELECT seq, file_id, text, embedding FROM chunks WHERE vector_store_id = $1 ORDER BY seq",
        )
        .bind(vs_id.to_string())
        .fetch(self.read())
        .map(|row| chunk_row(row?))
        .boxed()
    }

    /// The chunks of some files of a store (at most [`FILES_PER_QUERY`]), in row order.
    pub(crate) fn stream_file_chunks<'a>(
        &'a self,
        vs_id: &str,
        files: &[String],
    ) -> futures::stream::BoxStream<'a, StoreResult<ChunkRow>> {
        use futures::StreamExt;
        use std::sync::OnceLock;
        // One statement per count of files, made once: the stream borrows its text.
        static SQL: OnceLock<Vec<String>> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            (0..=FILES_PER_QUERY)
                .map(|n| {
                    let marks: Vec<String> = (2..n + 2).map(|i| format!("${i}")).collect();
                    format!(
                        "SELECT seq, file_id, text, embedding FROM chunks \
                         WHERE vector_store_id = $1 AND file_id IN ({}) ORDER BY seq",
                        marks.join(", ")
                    )
                })
                .collect()
        });
        assert!(
            (1..=FILES_PER_QUERY).contains(&files.len()),
            "one query reads 1 to {FILES_PER_QUERY} files"
        );
        let mut q = sqlx::query(sql[files.len()].as_str()).bind(vs_id.to_string());
        for f in files {
            q = q.bind(f.clone());
        }
        q.fetch(self.read()).map(|row| chunk_row(row?)).boxed()
    }

    /// The text of the chunks with these row numbers (those still stored).
    pub(crate) async fn chunk_texts(
        &self,
        seqs: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, String>> {
        if seqs.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (1..=seqs.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT seq, text FROM chunks WHERE seq IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for s in seqs {
            q = q.bind(*s);
        }
        q.fetch_all(self.read())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The completed files of a store: what its search index holds.
    pub(crate) async fn indexed_files(&self, vs_id: &str) -> StoreResult<Vec<IndexedFile>> {
        let rows = sqlx::query(
            "SELECT id, attributes, content_generation FROM vector_store_files \
             WHERE vector_store_id = $1 AND status = 'completed'",
        )
        .bind(vs_id.to_string())
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| {
                let a: Option<String> = r.try_get(1)?;
                Ok(IndexedFile {
                    id: r.try_get(0)?,
                    attributes: a.map(|s| serde_json::from_str(&s)).transpose()?,
                    stamp: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The parsed text of a file, if it has been parsed.
    pub async fn file_text(&self, file_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT text FROM file_texts WHERE file_id = $1")
            .bind(file_id.to_string())
            .fetch_optional(self.read())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub(crate) async fn put_file_text(&self, file_id: &str, text: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO file_texts (file_id, text) VALUES ($1, $2) \
             ON CONFLICT (file_id) DO UPDATE SET text = excluded.text",
        )
        .bind(file_id.to_string())
        .bind(text.to_string())
        .execute(self.write())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn store_with_file() -> (Store, tempfile::TempDir) {
        crate::store::test_store_with_vs().await
    }

    #[tokio::test]
    async fn a_result_from_before_a_reattach_is_discarded() {
        let (store, _dir) = store_with_file().await;
        let strategy = json!({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}});
        store
            .attach_file("p", "vs_1", "file-a", None, &strategy, None)
            .await
            .unwrap();
        let first = store
            .claim_ingest(300, None)
            .await
            .unwrap()
            .expect("claimable");
        // The client re-attaches the file while the first worker is still busy with it.
        store
            .attach_file("p", "vs_1", "file-a", None, &strategy, None)
            .await
            .unwrap();
        let second = store
            .claim_ingest(300, None)
            .await
            .unwrap()
            .expect("claimable again");
        assert_ne!(first.token, second.token);
        let chunk = |t: &str| {
            vec![NewChunk {
                tokens: 1,
                text: t.into(),
                embedding: None,
            }]
        };
        assert!(
            !store
                .complete_ingest(&first, &chunk("stale"), 5)
                .await
                .unwrap(),
            "stale result must not land"
        );
        assert!(store
            .complete_ingest(&second, &chunk("fresh"), 5)
            .await
            .unwrap());
        use futures::TryStreamExt;
        let chunks: Vec<ChunkRow> = store.stream_chunks("vs_1").try_collect().await.unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "fresh");
        let texts = store.chunk_texts(&[chunks[0].seq, 12345]).await.unwrap();
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[&chunks[0].seq], "fresh");
    }

    #[tokio::test]
    async fn a_released_file_is_claimable_after_its_backoff_only() {
        let (store, _dir) = store_with_file().await;
        let strategy = json!({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}});
        store
            .attach_file("p", "vs_1", "file-a", None, &strategy, None)
            .await
            .unwrap();
        let job = store.claim_ingest(300, None).await.unwrap().unwrap();
        assert!(
            store.claim_ingest(300, None).await.unwrap().is_none(),
            "leased"
        );
        store.release_ingest(&job, -1).await.unwrap();
        let again = store
            .claim_ingest(300, None)
            .await
            .unwrap()
            .expect("released");
        assert_eq!(again.attempts, 2);
    }

    #[tokio::test]
    async fn claims_serve_the_least_busy_project_first_and_respect_its_cap() {
        let (store, _dir) = store_with_file().await;
        let strategy = json!({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}});
        // Project p queued three files before project q queued one.
        for f in ["p-1", "p-2", "p-3"] {
            store
                .attach_file("p", "vs_1", f, None, &strategy, None)
                .await
                .unwrap();
        }
        store
            .attach_file("q", "vs_1", "q-1", None, &strategy, None)
            .await
            .unwrap();
        let mut order = Vec::new();
        while let Some(job) = store.claim_ingest(300, Some(2)).await.unwrap() {
            order.push(job.file_id);
        }
        // q does not wait behind p's backlog, and p never has more than two in flight.
        assert_eq!(order, ["p-1", "q-1", "p-2"]);
        let rest = store.claim_ingest(300, None).await.unwrap().unwrap();
        assert_eq!(rest.file_id, "p-3", "without a cap the rest is claimable");
    }
}
