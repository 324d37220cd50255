//! What a session's state is made of once it is written down, and how it is compared and
//! rebuilt: the guest's linear memory, as the pages that differ from a base image, and the
//! files of its `/tmp` and `/mnt/data`, as a manifest of content hashes.
//!
//! Linear memory is all the interpreter's mutable state between cells (its only other
//! mutable global, the shadow stack pointer, is back at its start whenever no export runs;
//! see docs/code-interpreter-embedding.md §2), so an image taken between cells and copied
//! into a new instance of the same module continues the session. Images are compared in
//! 4 KiB pages against a base — the node's template, itself an image of a session that
//! imported the heavy libraries — so a snapshot holds what the thread's own cells changed,
//! deflated. Nothing here does I/O beyond the session's own directories.

use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The unit memory is compared and stored in.
pub(crate) const PAGE: usize = 4096;
const MAGIC: &[u8; 8] = b"AIMAGE1\n";

/// `image` as the pages that differ from `base` (read as zeros past its end), deflated.
/// `diff(&[], image)` is a whole image (zero pages are left out either way).
pub(crate) fn diff(base: &[u8], image: &[u8]) -> Vec<u8> {
    encode(image, &changed(base, image))
}

/// The pages of `image` in `runs`, deflated: a layer [`apply`] or [`apply_delta`] writes.
pub(crate) fn encode(image: &[u8], runs: &[Range<usize>]) -> Vec<u8> {
    let mut out = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut put = |bytes: &[u8]| out.write_all(bytes).expect("writing to memory");
    put(MAGIC);
    put(&(image.len() as u64).to_le_bytes());
    for run in runs {
        put(&((run.start / PAGE) as u32).to_le_bytes());
        put(&(run.len().div_ceil(PAGE) as u32).to_le_bytes());
        put(&image[run.clone()]);
    }
    put(&u32::MAX.to_le_bytes());
    out.finish().expect("deflating in memory")
}

/// The byte ranges, in whole pages (the last one possibly short), where `image` differs
/// from `base` read as zeros past its end.
pub fn changed(base: &[u8], image: &[u8]) -> Vec<Range<usize>> {
    runs_of(image.len(), |n| !same(base, image, n))
}

/// The runs of pages (as byte ranges of an image of `len` bytes) for which `pick` holds.
fn runs_of(len: usize, mut pick: impl FnMut(usize) -> bool) -> Vec<Range<usize>> {
    let pages = len.div_ceil(PAGE);
    let mut runs = Vec::new();
    let mut page = 0;
    while page < pages {
        if !pick(page) {
            page += 1;
            continue;
        }
        let first = page;
        while page < pages && pick(page) {
            page += 1;
        }
        runs.push(first * PAGE..(page * PAGE).min(len));
    }
    runs
}

/// Whether page `n` of `image` equals `base`'s (zeros past `base`'s end).
fn same(base: &[u8], image: &[u8], n: usize) -> bool {
    let end = ((n + 1) * PAGE).min(image.len());
    let page = &image[n * PAGE..end];
    match base.get(n * PAGE..end) {
        Some(b) => b == page,
        None if n * PAGE >= base.len() => page.iter().all(|&b| b == 0),
        None => {
            let (inside, past) = page.split_at(base.len() - n * PAGE);
            inside == &base[n * PAGE..] && past.iter().all(|&b| b == 0)
        }
    }
}

/// A 64-bit hash of each page of `image`: a later image's pages that hash differently are
/// what changed since (one read of the image instead of a comparison with a copy).
pub(crate) fn page_hashes(image: &[u8]) -> Vec<u64> {
    // Reading the whole image is bound by memory bandwidth, which one core does not use up:
    // large images are hashed in parts on scoped threads (one per core, at most four).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let part = image.len().div_ceil(threads).div_ceil(PAGE) * PAGE;
    if threads == 1 || image.len() < (16 << 20) {
        return image.chunks(PAGE).map(xxhash_rust::xxh3::xxh3_64).collect();
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = image
            .chunks(part)
            .map(|p| {
                scope.spawn(move || {
                    p.chunks(PAGE)
                        .map(xxhash_rust::xxh3::xxh3_64)
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("hashing pages does not panic"))
            .collect()
    })
}

/// The pages of `image` that changed since it hashed as `before` (a page past `before`'s
/// end changed unless it is zeros, as grown memory starts), and its hashes now.
pub(crate) fn changed_since(before: &[u64], image: &[u8]) -> (Vec<Range<usize>>, Vec<u64>) {
    let now = page_hashes(image);
    let zero = xxhash_rust::xxh3::xxh3_64(&[0; PAGE]);
    let runs = runs_of(image.len(), |n| {
        now[n] != before.get(n).copied().unwrap_or(zero)
    });
    (runs, now)
}

/// The length of the image `encoded` describes, refusing one longer than `limit`.
pub(crate) fn image_len(encoded: &[u8], limit: usize) -> anyhow::Result<usize> {
    let mut r = flate2::read::DeflateDecoder::new(encoded);
    let len = read_header(&mut r)?;
    if len > limit {
        bail!("the memory image is {len} bytes, over the session's limit of {limit}");
    }
    Ok(len)
}

fn read_header(r: &mut impl Read) -> anyhow::Result<usize> {
    let mut header = [0u8; 16];
    r.read_exact(&mut header)
        .context("reading a memory image")?;
    if &header[..8] != MAGIC {
        bail!("not a memory image");
    }
    Ok(u64::from_le_bytes(header[8..].try_into().expect("8 bytes")) as usize)
}

/// Rebuilds into `memory` (at least the image's length) the image `encoded` describes
/// against `base`. With `runs` (the ranges where `base` differs from a fresh instance's
/// memory, [`changed`]) `memory` must be a fresh instance's and only those are copied;
/// without, all of `base` is.
pub fn apply(
    base: &[u8],
    runs: Option<&[Range<usize>]>,
    encoded: &[u8],
    memory: &mut [u8],
) -> anyhow::Result<()> {
    match runs {
        Some(runs) => copy_runs(base, runs, memory)?,
        None => {
            let shared = base.len().min(memory.len());
            memory[..shared].copy_from_slice(&base[..shared]);
            memory[shared..].fill(0);
        }
    }
    apply_delta(encoded, memory)
}

/// Writes the pages of a layer (`encode`d) into `memory`, which holds the image it followed.
pub(crate) fn apply_delta(encoded: &[u8], memory: &mut [u8]) -> anyhow::Result<()> {
    let mut r = flate2::read::DeflateDecoder::new(encoded);
    let len = read_header(&mut r)?;
    if len > memory.len() {
        bail!("a memory image is longer than the memory it is written into");
    }
    let mut int = [0u8; 4];
    loop {
        r.read_exact(&mut int)?;
        let first = u32::from_le_bytes(int);
        if first == u32::MAX {
            return Ok(());
        }
        r.read_exact(&mut int)?;
        let count = u32::from_le_bytes(int) as usize;
        let from = first as usize * PAGE;
        let to = (from + count * PAGE).min(len);
        if from >= to {
            bail!("a memory image's page lies outside it");
        }
        r.read_exact(&mut memory[from..to])
            .context("a memory image ends early")?;
    }
}

/// Copies `runs` of `image` into `memory` (a fresh instance's, grown to at least the image's
/// length): the rest already holds what the image does.
pub(crate) fn copy_runs(
    image: &[u8],
    runs: &[Range<usize>],
    memory: &mut [u8],
) -> anyhow::Result<()> {
    if memory.len() < image.len() || runs.iter().any(|r| r.end > image.len()) {
        bail!("an image does not fit the memory it is copied into");
    }
    for r in runs {
        memory[r.clone()].copy_from_slice(&image[r.clone()]);
    }
    Ok(())
}

/// The hex SHA-256 of `bytes` (how images and files are named).
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A regular file of the session, by its path under the session directory (`tmp/…` or
/// `data/…`) and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// What the session's directories hold: regular files and directories (symbolic links and
/// anything else are neither recorded nor followed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub files: Vec<FileEntry>,
    pub dirs: Vec<String>,
}

/// The session directory's roots that are state (figures in flight are not).
pub(crate) const ROOTS: [&str; 2] = ["tmp", "data"];
const SKIP: &str = "tmp/.figures";

/// How much the session's directories hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DiskUse {
    pub bytes: u64,
    pub entries: u64,
}

/// Walks `root`'s state directories, calling `each` for every regular file (its relative
/// path, host path and metadata) and directory; stops early when `each` says so.
fn walk(
    root: &Path,
    mut each: impl FnMut(&str, &Path, &std::fs::Metadata) -> std::ops::ControlFlow<()>,
) -> std::io::Result<()> {
    let mut stack: Vec<String> = ROOTS.iter().map(|r| r.to_string()).collect();
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue; // not UTF-8: the guest's paths always are
            };
            let rel = format!("{rel}/{name}");
            if rel == SKIP {
                continue;
            }
            let meta = entry.metadata()?; // does not follow a symbolic link
            if (meta.is_file() || meta.is_dir()) && each(&rel, &entry.path(), &meta).is_break() {
                return Ok(());
            }
            if meta.is_dir() {
                stack.push(rel);
            }
        }
    }
    Ok(())
}

/// What `root` holds, stopping at `limit` (the caller only needs to know it is over).
pub(crate) fn disk_use(root: &Path, limit: DiskUse) -> DiskUse {
    let mut used = DiskUse::default();
    let _ = walk(root, |_, _, meta| {
        used.entries += 1;
        if meta.is_file() {
            used.bytes += meta.len();
        }
        if used.bytes > limit.bytes || used.entries > limit.entries {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    used
}

/// Hashes of files already known, so unchanged files are not read again: by relative path,
/// `(size, modified, sha256)`.
pub(crate) type Known = std::collections::HashMap<String, (u64, std::time::SystemTime, String)>;

/// The tree under `root`, hashing only files whose size or modification time changed since
/// `known` (which is updated).
pub(crate) fn tree(root: &Path, known: &mut Known) -> std::io::Result<Tree> {
    let mut tree = Tree::default();
    let mut failed = None;
    walk(root, |rel, path, meta| {
        if meta.is_dir() {
            tree.dirs.push(rel.to_string());
            return std::ops::ControlFlow::Continue(());
        }
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let sha = match known.get(rel) {
            Some((size, m, sha)) if *size == meta.len() && *m == modified => sha.clone(),
            _ => match hash_file(path) {
                Ok(sha) => sha,
                Err(e) => {
                    failed = Some(e);
                    return std::ops::ControlFlow::Break(());
                }
            },
        };
        known.insert(rel.to_string(), (meta.len(), modified, sha.clone()));
        tree.files.push(FileEntry {
            path: rel.to_string(),
            sha256: sha,
            size: meta.len(),
        });
        std::ops::ControlFlow::Continue(())
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    known.retain(|rel, _| tree.files.iter().any(|f| &f.path == rel));
    tree.files.sort_by(|a, b| a.path.cmp(&b.path));
    tree.dirs.sort();
    Ok(tree)
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// A relative path from a manifest, checked: under one of [`ROOTS`], plain components only.
pub fn checked(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let mut parts = rel.split('/');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    if !ROOTS.contains(&first)
        || rest.is_empty()
        || rest.iter().any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        bail!("a snapshot names an invalid path: {rel:?}");
    }
    Ok(root.join(rel))
}

/// Makes `root` hold exactly `tree`: removes what it does not list (symbolic links too),
/// creates its directories, and writes the files `fetch` gives for those whose hash
/// differs (through a temporary file, renamed into place).
pub(crate) fn reconcile(
    root: &Path,
    tree: &Tree,
    known: &mut Known,
    mut fetch: impl FnMut(&FileEntry) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<()> {
    for r in ROOTS {
        std::fs::create_dir_all(root.join(r))?;
    }
    let current = self::tree(root, known)?;
    // Remove what should not be there, deepest first; links and oddities are not in the tree
    // walk, so they are found by listing each directory.
    prune(root, root, tree)?;
    for d in &tree.dirs {
        std::fs::create_dir_all(checked(root, d)?)?;
    }
    for f in &tree.files {
        let path = checked(root, &f.path)?;
        if current.files.iter().any(|c| c == f) && path.is_file() {
            continue;
        }
        let bytes = fetch(f)?;
        if sha256(&bytes) != f.sha256 {
            bail!("the snapshot's copy of {} is damaged", f.path);
        }
        let parent = path.parent().expect("under a root");
        std::fs::create_dir_all(parent)?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
        tmp.write_all(&bytes)?;
        tmp.persist(&path)?;
    }
    known.clear();
    self::tree(root, known)?;
    Ok(())
}

fn prune(root: &Path, dir: &Path, tree: &Tree) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("below the root")
            .to_string_lossy()
            .into_owned();
        let meta = entry.metadata()?;
        if dir == root {
            if !ROOTS.contains(&rel.as_str()) {
                remove(&path, &meta)?;
            } else if meta.is_dir() {
                prune(root, &path, tree)?;
            }
            continue;
        }
        let keep = if meta.is_dir() {
            tree.dirs.contains(&rel)
        } else {
            meta.is_file() && tree.files.iter().any(|f| f.path == rel)
        };
        if rel == SKIP {
            continue;
        } else if !keep {
            remove(&path, &meta)?;
        } else if meta.is_dir() {
            prune(root, &path, tree)?;
        }
    }
    Ok(())
}

fn remove(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}
