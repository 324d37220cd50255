//! Where snapshots of sessions and the template they fork from live: the object store (a
//! local directory in the embedded mode, S3 in the distributed one), so a restarted node or
//! another worker continues a thread's session.
//!
//! Layout, under `code-interpreter/`:
//! - `templates/<recipe>/<sha>.json` and `.image`: a template's [`Head`] and memory image
//!   (named by the image's hash); `templates/<recipe>/files/<sha>`: its files.
//! - `threads/<thread>/head.json`: the thread's latest snapshot; `threads/<thread>/memory/
//!   <session>-<seq>`: its memory, as the pages that differ from its template, and
//!   `…/delta/<session>-<seq>`: the pages later snapshots changed (folded into a new whole
//!   layer once they add up); `threads/<thread>/files/<sha>`: the files it lists, by content.
//!
//! A snapshot is written blobs first and head last (one object put, atomic), so a reader
//! sees a complete old or new snapshot; what the new head no longer names is deleted after.
//! The recipe names the interpreter build and template cell, so a snapshot is never loaded
//! into another build of the interpreter.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::snapshot::Tree;
use crate::blobs::{BlobError, Blobs};

const ROOT: &str = "code-interpreter";
/// The head format; a head of another version is not restored.
const VERSION: u32 = 1;
/// The largest memory image or head read back (the memory limit bounds images anyway).
const MAX_OBJECT: u64 = 4 << 30;

/// A snapshot: what is needed to continue a session elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub version: u32,
    /// The interpreter build and template recipe the image belongs to.
    pub recipe: String,
    /// The live session that wrote it, and its count of snapshots.
    pub session: String,
    pub seq: u64,
    /// The template image (its hash) the memory is a difference from; none for a template.
    pub base: Option<String>,
    /// Its memory: a whole layer (pages that differ from the base), then layers of the pages
    /// each later snapshot changed, applied in order; and the sizes that decide when the
    /// layers are folded into a new whole one.
    pub memory: String,
    #[serde(default)]
    pub deltas: Vec<String>,
    pub memory_len: u64,
    #[serde(default)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub delta_bytes: u64,
    pub tree: Tree,
    /// Descriptors the guest held open (beyond its mounts) when the image was taken.
    #[serde(default)]
    pub fds: Vec<u32>,
    /// When it was written (Unix seconds).
    pub created_at: i64,
}

impl Head {
    pub fn new(recipe: &str, session: &str, seq: u64) -> Head {
        Head {
            version: VERSION,
            recipe: recipe.to_string(),
            session: session.to_string(),
            seq,
            base: None,
            memory: String::new(),
            deltas: Vec::new(),
            memory_len: 0,
            memory_bytes: 0,
            delta_bytes: 0,
            tree: Tree::default(),
            fds: Vec::new(),
            created_at: crate::model::ids::now(),
        }
    }
}

/// Snapshots and templates in the object store.
#[derive(Clone)]
pub struct Persist {
    blobs: Blobs,
    recipe: String,
}

fn thread_root(thread: &str) -> String {
    format!("{ROOT}/threads/{thread}/")
}

impl Persist {
    /// `recipe` names the interpreter (its wheel's hash) and the template cell.
    pub fn new(blobs: Blobs, wheel_sha256: &str, template: &str) -> Persist {
        let recipe =
            super::snapshot::sha256(format!("{VERSION}\n{wheel_sha256}\n{template}").as_bytes());
        Persist {
            blobs,
            recipe: recipe[..16].to_string(),
        }
    }

    pub(crate) fn recipe(&self) -> &str {
        &self.recipe
    }

    fn templates(&self) -> String {
        format!("{ROOT}/templates/{}/", self.recipe)
    }

    /// The thread's latest snapshot, if it has one (possibly of another build: see
    /// [`Persist::restorable`]).
    pub async fn head(&self, thread: &str) -> anyhow::Result<Option<Head>> {
        let key = format!("{}head.json", thread_root(thread));
        let bytes = match self.blobs.get_bytes(&key, MAX_OBJECT).await {
            Ok(b) => b,
            Err(BlobError::Missing) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_slice(&bytes) {
            Ok(head) => Ok(Some(head)),
            // Unreadable is unusable: the thread starts anew (and its next snapshot
            // replaces this one).
            Err(e) => {
                tracing::warn!(thread, error = %e, "ignoring an unreadable code_interpreter snapshot");
                Ok(None)
            }
        }
    }

    /// Whether this build of the interpreter can load `head`'s image.
    pub(crate) fn restorable(&self, head: &Head) -> bool {
        head.version == VERSION && head.recipe == self.recipe
    }

    /// A memory image or file named in a head.
    pub async fn object(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self.blobs.get_bytes(key, MAX_OBJECT).await?.to_vec())
    }

    /// Where a thread's file with `sha` is kept.
    pub(crate) fn thread_file(&self, thread: &str, sha: &str) -> String {
        format!("{}files/{sha}", thread_root(thread))
    }

    /// Writes `head` for `thread`: its new memory layer (`memory`: a whole one when `head`
    /// has no deltas, else its last delta), the files of its tree not in `stored`
    /// or `shared` (its template's; read from `dir`, the session's directory; `stored` is
    /// updated), then the head. Objects `previous` named that `head` does not are deleted
    /// afterwards.
    pub async fn save(
        &self,
        thread: &str,
        head: &mut Head,
        memory: Vec<u8>,
        dir: &Path,
        (stored, shared): (&mut HashSet<String>, &HashSet<String>),
        previous: Option<&Head>,
    ) -> anyhow::Result<()> {
        let root = thread_root(thread);
        let key = format!("{}-{}", head.session, head.seq);
        if head.deltas.is_empty() {
            head.memory = format!("{root}memory/{key}");
            head.memory_bytes = memory.len() as u64;
            head.delta_bytes = 0;
            self.blobs.put_bytes(&head.memory, memory).await?;
        } else {
            let delta = format!("{root}delta/{key}");
            head.delta_bytes += memory.len() as u64;
            self.blobs.put_bytes(&delta, memory).await?;
            *head.deltas.last_mut().expect("a delta") = delta;
        }
        for f in &head.tree.files {
            if stored.contains(&f.sha256) || shared.contains(&f.sha256) {
                continue;
            }
            let path = super::snapshot::checked(dir, &f.path)?;
            self.put_file(&self.thread_file(thread, &f.sha256), &path)
                .await?;
            stored.insert(f.sha256.clone());
        }
        let json = serde_json::to_vec(head).expect("a head serializes");
        self.blobs
            .put_bytes(&format!("{root}head.json"), json)
            .await?;
        if let Some(prev) = previous {
            let layers = std::iter::once(&prev.memory).chain(&prev.deltas);
            for layer in layers {
                let kept = *layer == head.memory || head.deltas.contains(layer);
                if !kept && layer.starts_with(&root) {
                    self.blobs.delete(layer).await?;
                }
            }
            for f in &prev.tree.files {
                let kept = head.tree.files.iter().any(|n| n.sha256 == f.sha256);
                if !kept && !shared.contains(&f.sha256) {
                    self.blobs
                        .delete(&self.thread_file(thread, &f.sha256))
                        .await?;
                    stored.remove(&f.sha256);
                }
            }
        }
        Ok(())
    }

    async fn put_file(&self, key: &str, path: &Path) -> anyhow::Result<()> {
        let file = tokio::fs::File::open(path).await?;
        let stream = tokio_util::io::ReaderStream::new(file);
        self.blobs
            .put_stream(key, stream, u64::MAX)
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("storing {}: {e:?}", path.display()))
    }

    /// Forgets everything of `thread` (its session ended, or the thread was deleted).
    pub async fn forget(&self, thread: &str) -> anyhow::Result<()> {
        Ok(self.blobs.delete_prefix(&thread_root(thread)).await?)
    }

    /// A template for this recipe already in the store: its head.
    pub(crate) async fn find_template(&self) -> anyhow::Result<Option<Head>> {
        let keys = self.blobs.list(&self.templates()).await?;
        for key in keys.iter().filter(|k| k.ends_with(".json")) {
            let bytes = self.blobs.get_bytes(key, MAX_OBJECT).await?;
            match serde_json::from_slice::<Head>(&bytes) {
                Ok(h) if h.version == VERSION && h.recipe == self.recipe => return Ok(Some(h)),
                _ => tracing::warn!(key, "ignoring an unreadable code_interpreter template"),
            }
        }
        Ok(None)
    }

    /// The template whose image hash is `sha`.
    pub async fn template(&self, sha: &str) -> anyhow::Result<Head> {
        let bytes = self
            .blobs
            .get_bytes(&format!("{}{sha}.json", self.templates()), MAX_OBJECT)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Where a template's file with `sha` is kept.
    pub(crate) fn template_file(&self, sha: &str) -> String {
        format!("{}files/{sha}", self.templates())
    }

    /// Stores a template (image hash `sha`, built in `dir`).
    pub(crate) async fn save_template(
        &self,
        sha: &str,
        head: &mut Head,
        memory: Vec<u8>,
        dir: &Path,
    ) -> anyhow::Result<()> {
        head.memory = format!("{}{sha}.image", self.templates());
        self.blobs.put_bytes(&head.memory, memory).await?;
        for f in &head.tree.files {
            let path = super::snapshot::checked(dir, &f.path)?;
            self.put_file(&self.template_file(&f.sha256), &path).await?;
        }
        let json = serde_json::to_vec(head).expect("a head serializes");
        self.blobs
            .put_bytes(&format!("{}{sha}.json", self.templates()), json)
            .await?;
        Ok(())
    }
}
