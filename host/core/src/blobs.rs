//! File bytes, through `object_store`: a local directory by default, any S3-compatible store
//! with `s3://bucket[/prefix]`.
//!
//! Uploads are streamed: bytes go to the store in parts as they arrive, and the size limit is
//! enforced while streaming, so an oversize upload is refused without ever being held in memory.
//! A failed or refused upload aborts its multipart write, leaving no partial object behind.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// A local directory (not S3): see [`Blobs::io`].
    local: bool,
}

/// See [`Blobs::open_read`].
pub enum BlobRead {
    File(std::fs::File),
    Stream(futures::stream::BoxStream<'static, Result<Bytes, object_store::Error>>),
}

/// Why reading, copying or deleting an object failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The object's bytes are gone (deleted with their object, concurrently).
    #[error("the object no longer exists")]
    Missing,
    /// The object is larger than the caller can take.
    #[error("the object is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the object store failed: {0}")]
    Store(object_store::Error),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::Missing,
            other => BlobError::Store(other),
        }
    }
}

pub(crate) type BlobResult<T> = Result<T, BlobError>;

/// Why a streamed write did not complete.
#[derive(Debug)]
pub enum PutError {
    /// More than the limit arrived; the write was aborted.
    TooLarge { limit: u64 },
    /// The client's stream failed (disconnect, malformed multipart).
    Source(String),
    /// The object store failed.
    Store(object_store::Error),
}

impl Blobs {
    /// Opens the store named by `url`, or `data_dir/files` when none is given.
    pub fn open(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Blobs> {
        let is_local = url.is_none_or(|u| u.starts_with("file://"));
        let store: Arc<dyn ObjectStore> = match url {
            None => local(&data_dir.join("files"))?,
            Some(u) if u.starts_with("file://") => local(Path::new(&u["file://".len()..]))?,
            Some(u) if u.starts_with("s3://") => {
                let parsed = url::Url::parse(u).with_context(|| format!("parsing {u}"))?;
                let bucket = parsed.host_str().context("s3:// URL needs a bucket")?;
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .context("configuring the S3 object store (see AWS_* variables)")?;
                let prefix = parsed.path().trim_matches('/');
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
                }
            }
            Some(u) => anyhow::bail!("unsupported object store URL (use s3:// or file://): {u}"),
        };
        Ok(Blobs {
            store,
            local: is_local,
        })
    }

    /// Runs `io` on this store. On a local directory, object_store's file I/O is blocking work
    /// on the current runtime's pool (and an object's parts are written by tasks spawned
    /// there), so a demoted project's uploads and deletes go to the low-priority runtime
    /// (`lowprio::on_low_pool`; under the soak benchmark's uploads-only attack the normal
    /// pool's threads were busy a seventh of a core). Not on S3: the HTTP client's connection
    /// tasks would be spawned there too and serve every caller after.
    async fn io<T>(&self, io: impl std::future::Future<Output = T>) -> T {
        if self.local {
            crate::lowprio::on_low_pool(io).await
        } else {
            io.await
        }
    }

    /// Streams `source` into `key`, refusing more than `limit` bytes. Returns the byte count.
    pub async fn put_stream<S, E>(&self, key: &str, source: S, limit: u64) -> Result<u64, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.io(self.write_stream(key, source, limit)).await
    }

    async fn write_stream<S, E>(
        &self,
        key: &str,
        mut source: S,
        limit: u64,
    ) -> Result<u64, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let upload = self
            .store
            .put_multipart(&ObjectPath::from(key))
            .await
            .map_err(PutError::Store)?;
        let mut writer = WriteMultipart::new(upload);
        let mut total: u64 = 0;
        let outcome = loop {
            match source.next().await {
                None => break Ok(()),
                Some(Err(e)) => break Err(PutError::Source(e.to_string())),
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    if total > limit {
                        break Err(PutError::TooLarge { limit });
                    }
                    // Back-pressure: at most a few parts are buffered while earlier ones upload.
                    if let Err(e) = writer.wait_for_capacity(4).await {
                        break Err(PutError::Store(e));
                    }
                    writer.write(&chunk);
                }
            }
        };
        match outcome {
            Ok(()) => {
                writer.finish().await.map_err(PutError::Store)?;
                Ok(total)
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key, error = %abort, "aborting a failed upload left debris");
                }
                Err(e)
            }
        }
    }

    /// Writes a small object whole (one request; for what the server itself produces, such
    /// as code_interpreter figures).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> BlobResult<()> {
        self.io(self.store.put(&ObjectPath::from(key), bytes.into()))
            .await?;
        Ok(())
    }

    /// The object's bytes as a stream, for downloads.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> BlobResult<impl Stream<Item = Result<Bytes, object_store::Error>>> {
        Ok(self.store.get(&ObjectPath::from(key)).await?.into_stream())
    }

    /// An object for a reader on a blocking thread: its size, and the local file itself when
    /// the store is a directory (streaming a local object hops to a blocking thread per
    /// 8 KiB piece, which dominates reading gigabytes), else its byte stream.
    pub async fn open_read(&self, key: &str) -> BlobResult<(u64, BlobRead)> {
        let got = self.store.get(&ObjectPath::from(key)).await?;
        let size = got.meta.size as u64;
        Ok(match got.payload {
            object_store::GetResultPayload::File(file, _) => (size, BlobRead::File(file)),
            object_store::GetResultPayload::Stream(s) => (size, BlobRead::Stream(s)),
        })
    }

    /// The whole object in memory, refusing objects larger than `limit`.
    pub(crate) async fn get_bytes(&self, key: &str, limit: u64) -> BlobResult<Bytes> {
        let got = self.store.get(&ObjectPath::from(key)).await?;
        if got.meta.size as u64 > limit {
            return Err(BlobError::TooLarge { limit });
        }
        Ok(got.bytes().await?)
    }

    /// Concatenates `parts` into `dest` by streaming, returning the total size.
    pub async fn concat(&self, parts: &[String], dest: &str) -> BlobResult<u64> {
        let store = self.store.clone();
        let parts: Vec<ObjectPath> = parts.iter().map(|p| ObjectPath::from(p.as_str())).collect();
        let stream = futures::stream::iter(parts)
            .then(move |p| {
                let store = store.clone();
                async move { store.get(&p).await.map(|g| g.into_stream()) }
            })
            .try_flatten()
            .boxed();
        self.put_stream(dest, stream, u64::MAX)
            .await
            .map_err(|e| match e {
                PutError::Store(e) => BlobError::from(e),
                // The parts' own stream failed: a part could not be read.
                PutError::Source(e) => BlobError::Store(object_store::Error::Generic {
                    store: "concat",
                    source: e.into(),
                }),
                PutError::TooLarge { limit } => BlobError::TooLarge { limit },
            })
    }

    /// Deletes an object; a missing object is not an error (deletes are retried idempotently).
    pub async fn delete(&self, key: &str) -> BlobResult<()> {
        match self.io(self.store.delete(&ObjectPath::from(key))).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the bytes of files whose rows are already deleted; a failure leaves an
    /// unreachable object behind (logged), never a dangling file.
    pub async fn delete_files(&self, file_ids: &[String]) {
        for id in file_ids {
            if let Err(e) = self.delete(&file_key(id)).await {
                tracing::warn!(file_id = %id, error = %e, "file deleted but its bytes could not be removed");
            }
        }
    }

    /// The keys of the objects under `prefix`.
    pub async fn list(&self, prefix: &str) -> BlobResult<Vec<String>> {
        Ok(self
            .store
            .list(Some(&ObjectPath::from(prefix)))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await?)
    }

    /// The keys of the objects under `prefix` last written at or before `before` (Unix seconds).
    pub async fn list_older(&self, prefix: &str, before: i64) -> BlobResult<Vec<String>> {
        Ok(self
            .store
            .list(Some(&ObjectPath::from(prefix)))
            .try_filter(|m| futures::future::ready(m.last_modified.timestamp() <= before))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await?)
    }

    /// Deletes every object under `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> BlobResult<()> {
        let keys: Vec<_> = self
            .store
            .list(Some(&ObjectPath::from(prefix)))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for k in keys {
            self.delete(k.as_ref()).await?;
        }
        Ok(())
    }

    /// Confirms the store is reachable (used at start-up so misconfiguration fails fast).
    pub async fn check(&self) -> anyhow::Result<()> {
        let probe = ObjectPath::from("health/probe");
        self.store
            .put(&probe, Bytes::from_static(b"ok").into())
            .await
            .context("writing a probe object")?;
        self.store
            .delete(&probe)
            .await
            .context("deleting the probe object")?;
        Ok(())
    }
}

fn local(dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(dir)?,
    ))
}

/// Where a file's bytes live.
pub fn file_key(file_id: &str) -> String {
    format!("files/{file_id}")
}

/// Where an upload part's bytes live until the upload completes.
pub fn part_key(upload_id: &str, part_id: &str) -> String {
    format!("uploads/{upload_id}/{part_id}")
}
