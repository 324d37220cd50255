//! A thread's live session and how it comes to be: restored from the thread's snapshot,
//! forked from the node's template, or started fresh; and how it is written down after a
//! good cell (`snapshot`, `persist`).
//!
//! The template is a session that ran `settings::TEMPLATE_CELL` (numpy, pandas and pyplot
//! imported, ≈ 1.3 s of work) and was imaged: a new thread's session copies that image instead of
//! importing again, and its snapshots hold only the pages its own cells changed. One node
//! builds it and stores it; the others load it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::artifact::Installed;
use super::persist::{Head, Persist};
use super::session::{CellStatus, Mounts, Python, Session, SessionLimits};
use super::settings::InterpreterSettings;
use super::snapshot::{self, Known, Tree};
use super::snapshot::{disk_use, DiskUse};
use crate::blobs::BlobError;

/// Run first in a session forked from the template: the template's random generators were
/// seeded once, and every fork would otherwise draw the same numbers.
const RESEED_CELL: &str = "def __assistants_reseed():
    import sys, random
    random.seed()
    np = sys.modules.get('numpy')
    if np is not None:
        np.random.seed()
__assistants_reseed()
del __assistants_reseed
";

/// Run in a restored session whose image held files open: the descriptors it remembers are
/// taken by an empty read-only file, so they read as empty instead of aliasing files the
/// session opens next.
const RESERVE_CELL: &str = "def __assistants_reserve(fds):
    import os
    os.makedirs('/tmp/.figures', exist_ok=True)
    path = '/tmp/.figures/.closed'
    open(path, 'wb').close()
    held = []
    for _ in range(max(fds) + 1):
        fd = os.open(path, os.O_RDONLY)
        if fd > max(fds):
            os.close(fd)
            break
        held.append(fd)
    for fd in held:
        if fd not in fds:
            os.close(fd)
__assistants_reserve(FDS)
del __assistants_reserve
";

/// The node's template: an image of a session that ran its template cell, and its files.
pub struct Template {
    pub sha: String,
    pub image: Vec<u8>,
    /// Where `image` differs from a fresh instance's memory: all a fork copies (the rest of
    /// a fresh instance already holds it, or zeros).
    pub runs: Vec<std::ops::Range<usize>>,
    pub head: Head,
    /// Its files by hash; sessions' snapshots refer to them instead of storing copies.
    pub files: HashMap<String, Vec<u8>>,
}

impl Template {
    /// Hashes of its files.
    fn shared(&self) -> HashSet<String> {
        self.files.keys().cloned().collect()
    }
}

/// A thread's session, live on this node.
pub struct Live {
    pub session: Session,
    pub started: Instant,
    pub last_used: Instant,
    /// This live session's name in its snapshots, and how many it wrote or continued.
    pub id: String,
    pub seq: u64,
    /// The snapshot it continues from or last wrote.
    pub head: Option<Head>,
    /// The template its memory is compared against.
    pub base: Option<Arc<Template>>,
    pub known: Known,
    /// Hashes of the files the thread's snapshot already stored, and of those its template
    /// holds (never stored per thread).
    pub stored: HashSet<String>,
    pub shared: HashSet<String>,
    /// Its pages' hashes when its last snapshot was taken (or it was restored): what
    /// changed since goes into the next layer.
    pub hashes: Vec<u64>,
}

/// Layers of changes a snapshot keeps before they are folded into a new whole layer (they
/// also are once they outweigh it).
const MAX_DELTAS: usize = 16;

/// A snapshot ready to store: its head, its new memory layer, and the hashes it leaves.
pub(crate) struct Capture {
    pub head: Head,
    pub memory: Vec<u8>,
    pub hashes: Vec<u64>,
}

/// How a session came to be (the model is told when state was lost or restored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// From the thread's last snapshot.
    Restored,
    /// A new session, from the template or the bare interpreter.
    New,
}

/// Everything opening a session needs.
pub struct Opening {
    pub python: Arc<Python>,
    pub mounts: Mounts,
    pub limits: SessionLimits,
    pub persist: Option<Persist>,
    pub template: Option<Arc<Template>>,
    /// The thread's session directory (`tmp/` and `data/` are its mounts).
    pub dir: PathBuf,
}

/// Whether `e` is the object store failing (as opposed to what it holds being unusable).
fn unavailable(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| matches!(c.downcast_ref::<BlobError>(), Some(BlobError::Store(_))))
}

/// A new session id.
fn session_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Opening {
    /// A session for the thread: from `head` (its snapshot) if given and loadable, else a
    /// new one; the session's directory is made to match. A snapshot that cannot be loaded
    /// (another build's, damaged, incomplete) gives way to a new session; one the store
    /// cannot deliver now is an error (a new session would overwrite it).
    pub async fn open(self, head: Option<Head>, thread: &str) -> anyhow::Result<(Live, Origin)> {
        if let (Some(head), Some(persist)) = (head, self.persist.clone()) {
            match self.fetch(&persist, &head, thread).await {
                Ok(fetched) => match self.restore(head, fetched).await {
                    Ok(live) => return Ok((live, Origin::Restored)),
                    Err(e) => tracing::warn!(
                        thread,
                        error = format!("{e:#}"),
                        "a code_interpreter snapshot did not restore; starting anew"
                    ),
                },
                Err(e) if unavailable(&e) => return Err(e),
                Err(e) => tracing::warn!(
                    thread,
                    error = format!("{e:#}"),
                    "a code_interpreter snapshot could not be read; starting anew"
                ),
            }
        }
        Ok((self.new_session().await?, Origin::New))
    }

    /// What restoring `head` needs from the store: its memory, its base image when it is
    /// not this node's template, and the files the directory lacks.
    async fn fetch(&self, persist: &Persist, head: &Head, thread: &str) -> anyhow::Result<Fetched> {
        if !persist.restorable(head) {
            anyhow::bail!("the snapshot was made by another build of the interpreter");
        }
        let memory = persist.object(&head.memory).await?;
        let mut deltas = Vec::with_capacity(head.deltas.len());
        for key in &head.deltas {
            deltas.push(persist.object(key).await?);
        }
        // Files the snapshot's template holds are read from it, not from the thread.
        let (base, from_template) = match (&head.base, &self.template) {
            (None, _) => (None, None),
            (Some(sha), Some(t)) if *sha == t.sha => (None, Some(t.clone())),
            (Some(sha), _) => {
                let other = persist.template(sha).await?;
                let other =
                    Arc::new(load_template(persist, other, self.limits.memory_bytes).await?);
                (Some(other.clone()), Some(other))
            }
        };
        let dir = self.dir.clone();
        let local =
            tokio::task::spawn_blocking(move || snapshot::tree(&dir, &mut Known::new())).await??;
        let mut files = HashMap::new();
        for f in &head.tree.files {
            if local.files.contains(f) || files.contains_key(&f.sha256) {
                continue;
            }
            let shared = from_template.as_ref().and_then(|t| t.files.get(&f.sha256));
            let bytes = match shared {
                Some(bytes) => bytes.clone(),
                None => {
                    persist
                        .object(&persist.thread_file(thread, &f.sha256))
                        .await?
                }
            };
            files.insert(f.sha256.clone(), bytes);
        }
        Ok(Fetched {
            memory,
            deltas,
            base,
            files,
        })
    }

    async fn restore(&self, head: Head, fetched: Fetched) -> anyhow::Result<Live> {
        let mut session = Session::start(&self.python, &self.mounts, &self.limits).await?;
        let (base, runs): (&[u8], _) = match (&fetched.base, &self.template) {
            (Some(other), _) => (&other.image, None),
            (None, Some(t)) if head.base.is_some() => (&t.image, Some(&t.runs[..])),
            _ => (&[], None),
        };
        let len = head.memory_len as usize;
        if len > self.limits.memory_bytes {
            anyhow::bail!("the snapshot's memory is over the session's limit");
        }
        session
            .load_image(len, |m| {
                snapshot::apply(base, runs, &fetched.memory, m)?;
                for delta in &fetched.deltas {
                    snapshot::apply_delta(delta, m)?;
                }
                Ok(())
            })
            .await?;
        let hashes = snapshot::page_hashes(session.image());
        let mut known = Known::new();
        snapshot::reconcile(&self.dir, &head.tree, &mut known, |f| {
            fetched
                .files
                .get(&f.sha256)
                .cloned()
                .with_context(|| format!("{} was not fetched", f.path))
        })?;
        if !head.fds.is_empty() {
            let fds: Vec<String> = head.fds.iter().map(u32::to_string).collect();
            let cell = RESERVE_CELL.replace("FDS", &format!("[{}]", fds.join(", ")));
            session.cell(&cell, Duration::from_secs(10)).await;
        }
        if session.is_broken() {
            anyhow::bail!("the restored session did not run");
        }
        let now = Instant::now();
        Ok(Live {
            session,
            started: now,
            last_used: now,
            id: head.session.clone(),
            seq: head.seq,
            stored: head.tree.files.iter().map(|f| f.sha256.clone()).collect(),
            shared: self
                .template
                .as_ref()
                .map(|t| t.shared())
                .unwrap_or_default(),
            hashes,
            head: Some(head),
            // Later snapshots compare against this node's template.
            base: self.template.clone(),
            known,
        })
    }

    /// A session from the template, or the bare interpreter; the directory starts as the
    /// template's.
    async fn new_session(&self) -> anyhow::Result<Live> {
        let mut session = Session::start(&self.python, &self.mounts, &self.limits).await?;
        let mut known = Known::new();
        if let Some(t) = &self.template {
            session
                .load_image(t.image.len(), |m| snapshot::copy_runs(&t.image, &t.runs, m))
                .await?;
            session.cell(RESEED_CELL, Duration::from_secs(10)).await;
            if session.is_broken() {
                anyhow::bail!("a session forked from the template did not run");
            }
        }
        if self.persist.is_some() {
            // The snapshot is the thread's state: none means nothing, not what a session
            // that ended left behind.
            let tree = self.template.as_ref().map(|t| t.head.tree.clone());
            let files = self.template.as_ref().map(|t| &t.files);
            snapshot::reconcile(&self.dir, &tree.unwrap_or_default(), &mut known, |f| {
                files
                    .and_then(|m| m.get(&f.sha256).cloned())
                    .context("a template file is missing")
            })?;
        }
        let now = Instant::now();
        Ok(Live {
            session,
            started: now,
            last_used: now,
            id: session_id(),
            seq: 0,
            head: None,
            base: self.template.clone(),
            known,
            stored: HashSet::new(),
            shared: self
                .template
                .as_ref()
                .map(|t| t.shared())
                .unwrap_or_default(),
            // The first snapshot is a whole layer.
            hashes: Vec::new(),
        })
    }
}

struct Fetched {
    memory: Vec<u8>,
    deltas: Vec<Vec<u8>>,
    /// The snapshot's template when it is not this node's.
    base: Option<Arc<Template>>,
    files: HashMap<String, Vec<u8>>,
}

impl Live {
    /// The next snapshot of this session (between cells): a layer of the pages changed
    /// since the last one, or — first, after a restore from another template, or once the
    /// layers add up — the pages that differ from the template. CPU and file reads; run on
    /// the guest threads.
    pub(crate) fn capture(
        &mut self,
        recipe: &str,
        dir: &Path,
        fds: Vec<u32>,
    ) -> anyhow::Result<Capture> {
        let image = self.session.image();
        let (runs, hashes) = snapshot::changed_since(&self.hashes, image);
        let mut head = Head::new(recipe, &self.id, self.seq + 1);
        head.base = self.base.as_ref().map(|t| t.sha.clone());
        head.memory_len = image.len() as u64;
        head.tree = snapshot::tree(dir, &mut self.known)?;
        head.fds = fds;
        let layered = self.head.as_ref().filter(|prev| {
            prev.base == head.base && prev.deltas.len() < MAX_DELTAS && !self.hashes.is_empty()
        });
        let delta = layered.map(|prev| (prev, snapshot::encode(image, &runs)));
        let memory = match delta {
            Some((prev, delta))
                if prev.delta_bytes + delta.len() as u64 <= prev.memory_bytes.max(1 << 20) =>
            {
                head.memory = prev.memory.clone();
                head.memory_bytes = prev.memory_bytes;
                head.delta_bytes = prev.delta_bytes;
                head.deltas = prev.deltas.clone();
                head.deltas.push(String::new()); // named when stored
                delta
            }
            _ => {
                let base: &[u8] = self.base.as_ref().map_or(&[], |t| &t.image);
                snapshot::diff(base, image)
            }
        };
        Ok(Capture {
            head,
            memory,
            hashes,
        })
    }
}

/// Builds the template in `dir`: a fresh session runs `cell`, and is imaged with its files.
pub(crate) async fn build_template(
    python: &Python,
    mounts: &Mounts,
    limits: &SessionLimits,
    dir: &Path,
    cell: &str,
) -> anyhow::Result<(Template, Vec<u8>)> {
    snapshot::reconcile(dir, &Tree::default(), &mut Known::new(), |_| unreachable!())?;
    let mut session = Session::start(python, mounts, limits).await?;
    let out = session.cell(cell, Duration::from_secs(300)).await;
    if out.status != CellStatus::Ok {
        anyhow::bail!(
            "the template cell ended with {:?}: {}",
            out.status,
            out.stderr.chars().take(2000).collect::<String>()
        );
    }
    let image = session.image().to_vec();
    let sha = snapshot::sha256(&image);
    let encoded = snapshot::diff(&[], &image);
    let mut head = Head::new("", "template", 0);
    head.memory_len = image.len() as u64;
    head.tree = snapshot::tree(dir, &mut Known::new())?;
    let mut files = HashMap::new();
    for f in &head.tree.files {
        files.insert(
            f.sha256.clone(),
            std::fs::read(snapshot::checked(dir, &f.path)?)?,
        );
    }
    Ok((
        Template {
            sha,
            image,
            runs: Vec::new(),
            head,
            files,
        },
        encoded,
    ))
}

/// The template `head` names, loaded from the store and checked against its hash.
pub(crate) async fn load_template(
    persist: &Persist,
    head: Head,
    limit: usize,
) -> anyhow::Result<Template> {
    let sha = head
        .memory
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".image"))
        .context("a template's image is misnamed")?
        .to_string();
    let encoded = persist.object(&head.memory).await?;
    let image = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let mut image = vec![0; snapshot::image_len(&encoded, limit)?];
        snapshot::apply(&[], None, &encoded, &mut image)?;
        Ok(image)
    })
    .await??;
    if snapshot::sha256(&image) != sha {
        anyhow::bail!("the stored template {sha} is damaged");
    }
    let mut files = HashMap::new();
    for f in &head.tree.files {
        files.insert(
            f.sha256.clone(),
            persist.object(&persist.template_file(&f.sha256)).await?,
        );
    }
    Ok(Template {
        sha,
        image,
        runs: Vec::new(),
        head,
        files,
    })
}

/// The template new sessions fork from: the stored one for this interpreter and recipe, or
/// one built here (and stored). None when there is no recipe or it failed (sessions then
/// start bare, and the log says why).
pub(crate) async fn node_template(
    settings: InterpreterSettings,
    persist: Option<Persist>,
    python: Arc<Python>,
    installed: Installed,
) -> Option<Arc<Template>> {
    let cell = settings.template.as_ref()?;
    let limits = settings.session_limits();
    let dir = settings.sessions_dir.join(".template");
    let mounts = Mounts {
        installed,
        tmp: dir.join("tmp"),
        data: dir.join("data"),
    };
    let mut template = None;
    if let Some(p) = &persist {
        match p.find_template().await {
            Ok(Some(head)) => match load_template(p, head, limits.memory_bytes).await {
                Ok(t) => template = Some(t),
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "the stored code_interpreter template did not load; building one"
                ),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "could not look for a code_interpreter template"
            ),
        }
    }
    if template.is_none() {
        template = built_template(&persist, &python, &mounts, &limits, &dir, cell).await;
    }
    let mut t = template?;
    // What a fork copies: where the image differs from a fresh instance.
    match Session::start(&python, &mounts, &limits).await {
        Ok(fresh) => t.runs = snapshot::changed(fresh.image(), &t.image),
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "no code_interpreter template: a fresh session did not start"
            );
            return None;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Some(Arc::new(t))
}

/// A template built here, and stored for the other nodes.
async fn built_template(
    persist: &Option<Persist>,
    python: &Python,
    mounts: &Mounts,
    limits: &SessionLimits,
    dir: &Path,
    cell: &str,
) -> Option<Template> {
    let started = Instant::now();
    let (mut t, encoded) = match build_template(python, mounts, limits, dir, cell).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "no code_interpreter template: sessions start without one"
            );
            return None;
        }
    };
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        bytes = t.image.len(),
        "built the code_interpreter template"
    );
    if let Some(p) = persist {
        t.head.recipe = p.recipe().to_string();
        let sha = t.sha.clone();
        if let Err(e) = p.save_template(&sha, &mut t.head, encoded, dir).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not store the code_interpreter template"
            );
        }
    }
    Some(t)
}

pub(crate) fn over_quota(limit: DiskUse) -> String {
    format!(
        "the session's files went over their quota ({} MiB, {} files and directories)",
        limit.bytes >> 20,
        limit.entries
    )
}

/// Stops the running cell when the session's files go over `limit` (checked every quarter
/// second: WASI has no quota of its own, so a cell can overshoot by what it writes in that
/// time).
pub(crate) async fn watch_disk(dir: PathBuf, limit: DiskUse, stopper: super::session::Stopper) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let d = dir.clone();
        let Ok(used) = tokio::task::spawn_blocking(move || disk_use(&d, limit)).await else {
            return;
        };
        if used.bytes > limit.bytes || used.entries > limit.entries {
            stopper.stop(over_quota(limit));
            return;
        }
    }
}
