//! The plugin host's files on disk, authenticated: compiled components (`.cwasm`, machine code
//! the host runs without recompiling) and the archive of every loaded component (for runs
//! pinned to a replaced plugin).
//!
//! Both live in the data directory, which an attacker with a foothold there could write. A
//! `.cwasm` is executable code, trusted by wasmtime once deserialised; a swapped archive entry
//! would run as a pinned plugin. So every entry carries an HMAC-SHA256 under a key kept outside
//! the data directory ([`CacheKey`]), and one that does not verify is ignored (compiled again)
//! or refused (archive). Directories are created 0700.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::keyfile;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::component::Component;
use wasmtime::Engine;

const MAC_LEN: usize = keyfile::KEY_LEN;

/// The secret that authenticates cache entries: 32 random bytes in a file the server creates
/// once (0600), by default `$HOME/.config/assistants/plugin-cache.key`.
#[derive(Clone)]
pub struct CacheKey([u8; MAC_LEN]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

impl CacheKey {
    /// The key in `file` (or the default file), created if missing. Without a usable file the
    /// key lives in memory only: the cache then serves this process alone (logged).
    pub fn load(file: Option<&Path>) -> CacheKey {
        let path = file
            .map(Path::to_path_buf)
            .or_else(|| keyfile::default_path("plugin-cache.key"));
        match path.as_deref().map(keyfile::read_or_create) {
            Some(Ok(key)) => CacheKey(key),
            Some(Err(e)) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "no plugin cache key file; compiled plugins are cached for this process only"
                );
                CacheKey::random()
            }
            None => CacheKey::random(),
        }
    }

    fn random() -> CacheKey {
        CacheKey(keyfile::random())
    }

    /// The keyed hash of `parts`, each length-prefixed so no two different part lists feed
    /// it the same bytes.
    fn keyed(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length works");
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }

    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        self.keyed(parts).finalize().into_bytes().into()
    }

    fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.keyed(parts).verify_slice(tag).is_ok()
    }

    /// Whether `tag` is the MAC of `parts` followed by the rest of `file` as one more part —
    /// what [`CacheKey::mac`] gives for the same bytes in memory — read in pieces, so a
    /// large file is checked without holding it.
    pub(crate) fn verify_file(
        &self,
        parts: &[&[u8]],
        file: &mut std::fs::File,
        tag: &[u8],
    ) -> std::io::Result<bool> {
        use std::io::Read as _;
        let len = file.metadata()?.len();
        let mut mac = self.keyed(parts);
        mac.update(&len.to_le_bytes());
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            mac.update(&buf[..n]);
            read += n as u64;
        }
        Ok(read == len && mac.verify_slice(tag).is_ok())
    }
}

/// The cache directory with its key.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: CacheKey,
}

impl ArtifactCache {
    pub fn new(dir: PathBuf, key: CacheKey) -> ArtifactCache {
        ArtifactCache { dir, key }
    }

    /// `wasm` compiled for `engine`: from the cache if an entry for this digest and engine
    /// configuration (`tag`) verifies, else compiled and cached.
    pub fn compiled(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
        tag: &str,
    ) -> anyhow::Result<Component> {
        let path = self.dir.join(format!("{digest}-{tag}.cwasm"));
        fn parts<'a>(digest: &'a str, tag: &'a str, code: &'a [u8]) -> [&'a [u8]; 4] {
            [b"cwasm", digest.as_bytes(), tag.as_bytes(), code]
        }
        if let Ok(bytes) = std::fs::read(&path) {
            match bytes.split_at_checked(MAC_LEN) {
                Some((mac, code)) if self.key.verify(&parts(digest, tag, code), mac) => {
                    // SAFETY: `code` is what `serialize` below produced for this engine
                    // configuration and content hash: its MAC, under a key kept outside the
                    // cache directory, verified, and the bytes are in memory (not re-read).
                    // wasmtime also checks the header against the engine.
                    #[allow(unsafe_code)]
                    match unsafe { Component::deserialize(engine, code) } {
                        Ok(c) => return Ok(c),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable cached component")
                        }
                    }
                }
                _ => {
                    tracing::warn!(path = %path.display(), "a cached component failed its integrity check; compiling it again")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        // The cache only saves time: failing to write it (read-only or full disk) is logged.
        let written = component
            .serialize()
            .map_err(anyhow::Error::from)
            .and_then(|code| {
                let mac = self.key.mac(&parts(digest, tag, &code));
                self.write(&path, &[&mac, &code])
            });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = format!("{e:#}"), "could not cache a compiled component");
        }
        Ok(component)
    }

    /// Keeps a loaded component's bytes and manifest by digest, for runs pinned to it.
    /// Best-effort: a failure is logged.
    pub fn archive(&self, digest: &str, wasm: &[u8], manifest: &str) {
        let dir = self.dir.join("archive");
        let mac_path = dir.join(format!("{digest}.mac"));
        if mac_path.exists() {
            return;
        }
        let tag = self
            .key
            .mac(&[b"archive", digest.as_bytes(), manifest.as_bytes()]);
        // The MAC goes last: an entry interrupted half-way does not verify.
        let result = (|| -> anyhow::Result<()> {
            self.write(&dir.join(format!("{digest}.toml")), &[manifest.as_bytes()])?;
            self.write(&dir.join(format!("{digest}.wasm")), &[wasm])?;
            self.write(&mac_path, &[&tag])
        })();
        if let Err(e) = result {
            tracing::warn!(
                digest,
                error = format!("{e:#}"),
                "could not archive a plugin for pinned runs"
            );
        }
    }

    /// The archived component and manifest with this digest, verified: the bytes must hash to
    /// the digest and the manifest must carry this server's MAC.
    pub fn archived(&self, digest: &str) -> anyhow::Result<(Vec<u8>, String)> {
        let dir = self.dir.join("archive");
        let wasm = std::fs::read(dir.join(format!("{digest}.wasm")))
            .with_context(|| format!("no component with digest {digest} was ever loaded here"))?;
        let manifest = std::fs::read_to_string(dir.join(format!("{digest}.toml")))?;
        let tag = std::fs::read(dir.join(format!("{digest}.mac"))).unwrap_or_default();
        let intact = super::registry::digest(&wasm) == digest
            && self
                .key
                .verify(&[b"archive", digest.as_bytes(), manifest.as_bytes()], &tag);
        anyhow::ensure!(
            intact,
            "the archived component {digest} failed its integrity check; it is not loaded"
        );
        Ok((wasm, manifest))
    }

    /// Writes `parts` to a unique temporary file in the (private) directory of `path`, syncs
    /// it and renames it into place, so concurrent writers and readers (other servers,
    /// `plugins check`) never see half a file.
    fn write(&self, path: &Path, parts: &[&[u8]]) -> anyhow::Result<()> {
        let dir = path.parent().context("a cache path has a directory")?;
        keyfile::private_dir(dir)?;
        write_atomic(path, parts)
    }
}

/// Writes `parts` to a unique temporary file beside `path`, syncs it and renames it into
/// place, so concurrent writers and readers never see half a file.
pub(crate) fn write_atomic(path: &Path, parts: &[&[u8]]) -> anyhow::Result<()> {
    let dir = path.parent().context("a path with a directory")?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    for part in parts {
        tmp.write_all(part)?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}

/// A short tag of what compiled code depends on in `engine`'s configuration (and the
/// wasmtime version): part of every compiled file's name.
pub(crate) fn engine_tag(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}
