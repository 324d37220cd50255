//! Prefixed object ids (`asst_…`, `file-…`), generated in one place.
//!
//! Ids are opaque to clients but the prefix is part of the wire contract: SDK users and tests
//! look at it, and the hyphen in `file-` is what OpenAI used. The random part is 24 characters
//! of base62 (~143 bits), so collisions are not a practical concern and ids do not leak counts.

use rand::distributions::Alphanumeric;
use rand::Rng;

/// The kinds of object that get an id, each with its wire prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Assistant,
    Thread,
    Message,
    Run,
    Step,
    ToolCall,
    File,
    Upload,
    UploadPart,
    VectorStore,
    FileBatch,
    Project,
    ApiKey,
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::Assistant => "asst_",
            IdKind::Thread => "thread_",
            IdKind::Message => "msg_",
            IdKind::Run => "run_",
            IdKind::Step => "step_",
            IdKind::ToolCall => "call_",
            IdKind::File => "file-",
            IdKind::Upload => "upload_",
            IdKind::UploadPart => "part_",
            IdKind::VectorStore => "vs_",
            IdKind::FileBatch => "vsfb_",
            IdKind::Project => "proj_",
            IdKind::ApiKey => "key_",
        }
    }
}

/// A new random id of the given kind.
pub fn new_id(kind: IdKind) -> String {
    let mut rng = rand::thread_rng();
    let tail: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("{}{}", kind.prefix(), tail)
}

/// Whether `id` could be an id of ours: 1–128 characters of `A-Z a-z 0-9 _ -`. Anything else
/// (NUL bytes, slashes, spaces) is refused before it reaches a query; PostgreSQL rejects NUL in
/// text outright, which would otherwise surface as a server error.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Current time as integer Unix seconds, the only time unit on the wire.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let a = new_id(IdKind::File);
        let b = new_id(IdKind::File);
        assert!(a.starts_with("file-") && a.len() == 5 + 24);
        assert_ne!(a, b);
    }
}
