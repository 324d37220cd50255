//! The server's own keys: 32 random bytes each, in a file the server creates once (0600, in a
//! directory it makes 0700) outside the data directory, by default under
//! `$HOME/.config/assistants/`: the plugin cache's MAC key (`plugins::cache::CacheKey`) and
//! the key that seals clients' secrets in the database (`seal::SealKey`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub const KEY_LEN: usize = 32;

/// `$HOME/.config/assistants/<name>`, if there is a home.
pub fn default_path(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".config/assistants").join(name))
}

pub fn random() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    rand::Rng::fill(&mut rand::thread_rng(), &mut key[..]);
    key
}

/// The key in `path`, written there first if the file does not exist.
pub fn read_or_create(path: &Path) -> anyhow::Result<[u8; KEY_LEN]> {
    let read = |path: &Path| -> anyhow::Result<[u8; KEY_LEN]> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        // Exactly the bytes the server wrote: a file of another length (a key pasted as text)
        // would otherwise give a weaker key silently.
        <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
            anyhow::anyhow!(
                "{} holds {} bytes, not the {KEY_LEN} random bytes of a key file",
                path.display(),
                bytes.len()
            )
        })
    };
    if path.exists() {
        return read(path);
    }
    let dir = path.parent().context("the key file has no directory")?;
    // Only a directory made for the key is restricted; an existing one is the operator's.
    if !dir.exists() {
        private_dir(dir)?;
    }
    let key = random();
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?; // created 0600
    tmp.write_all(&key)?;
    tmp.as_file().sync_all()?;
    // Several servers may start at once: the first key written wins, the others read it.
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(key),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e.error).with_context(|| format!("writing {}", path.display())),
    }
}

/// Creates `dir` (and parents) readable by this user only, and tightens it if it exists.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}
