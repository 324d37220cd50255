//! Clients' secrets kept sealed at rest. The `headers` a response gives for an MCP server
//! must outlive the request — a worker, maybe on another node, maybe after a restart, makes
//! the calls — so they are in the run's engine record; there they are encrypted
//! (ChaCha20-Poly1305) under the server's seal key and bound to their response (associated
//! data), so the database, its write-ahead log, backups and replicas never hold them in clear,
//! and a sealed value moved to another response does not open. The key is a key file outside
//! the data directory ([`crate::keyfile`]); every node that accepts or runs responses needs
//! the same one (`--secrets-key-file`).

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::keyfile;

/// What a sealed value starts with: the format, so another can follow.
const VERSION: &str = "v1.";

pub struct SealKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// A sealed value that does not open: another node's key, another response's value, or
/// altered bytes.
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be opened: it was sealed under another secrets key (give every node the same --secrets-key-file) or altered")]
pub struct SealError;

impl SealKey {
    /// The key in `file`, created if missing: an error if it cannot be read or made (the
    /// operator named it: the nodes must share it). Without `file`, the default
    /// `$HOME/.config/assistants/secrets.key`, or — where that cannot be used — a key in memory
    /// only: what this process seals then opens only in it (logged).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Arc<SealKey>> {
        use anyhow::Context as _;
        let bytes = match file {
            Some(path) => keyfile::read_or_create(path)
                .with_context(|| format!("the secrets key file {}", path.display()))?,
            None => match keyfile::default_path("secrets.key").map(|p| keyfile::read_or_create(&p))
            {
                Some(Ok(key)) => key,
                Some(Err(e)) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "no secrets key file; clients' secrets sealed now open in this process only"
                    );
                    keyfile::random()
                }
                None => keyfile::random(),
            },
        };
        Ok(Arc::new(SealKey::from_bytes(&bytes)))
    }

    pub fn from_bytes(bytes: &[u8; keyfile::KEY_LEN]) -> SealKey {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("a 32-byte key");
        SealKey {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        }
    }

    /// `plain` sealed for `context` (e.g. the response it belongs to), as text.
    pub fn seal(&self, context: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .expect("sealing fits in memory");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        )
    }

    /// What [`SealKey::seal`] sealed for `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(b)
                    .ok()
            })
            .filter(|b| b.len() >= NONCE_LEN)
            .ok_or(SealError)?;
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut rest = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut rest)
            .map_err(|_| SealError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = SealKey::from_bytes(&[7; 32]);
        let sealed = key.seal("resp_1", b"Bearer sk-secret");
        assert!(!sealed.contains("sk-secret"));
        assert_eq!(key.open("resp_1", &sealed).unwrap(), b"Bearer sk-secret");
        // Each seal is fresh (a random nonce): equal secrets do not look equal.
        assert_ne!(key.seal("resp_1", b"Bearer sk-secret"), sealed);
        assert!(key.open("resp_2", &sealed).is_err(), "another response's");
        let other = SealKey::from_bytes(&[8; 32]);
        assert!(other.open("resp_1", &sealed).is_err(), "another key");
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(key.open("resp_1", &altered).is_err(), "altered");
        assert!(key.open("resp_1", "v1.").is_err());
        assert!(key.open("resp_1", "plain text").is_err());
    }
}
