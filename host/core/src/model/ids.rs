//! Prefixed object ids (`asst_…`, `file-…`), generated in one place.
//!
//! Ids are opaque to clients but the prefix is part of the wire contract: SDK users and tests
//! look at it, and the hyphen in `file-` is what OpenAI used. The random part is 24 characters
//! of base62 (~143 bits), so collisions are not a practical concern and ids do not leak counts.
//!
//! Each kind of object has its own id type ([`AssistantId`], [`ThreadId`], [`RunId`], …), so a
//! thread id cannot be stored where a run id belongs. Ids from outside (paths, bodies, cursors)
//! become typed through `parse`, which refuses anything that is not an id of that kind — a
//! wrong prefix names no object, so the API answers 404 for it without a query. Stored
//! documents deserialise without that check: the store holds only ids this server made.

use std::fmt;
use std::ops::Deref;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The kinds of object that get an id, each with its wire prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// A crawl of web sites into a vector store (an extension of the API).
    Crawl,
    Project,
    ApiKey,
    Conversation,
    Response,
    /// Items of a conversation or a response: messages, tool calls and their outputs. Each
    /// item type has its own prefix ([`ItemId::of_type`]); this kind accepts any of them.
    Item,
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
            IdKind::Crawl => "vscrawl_",
            IdKind::Project => "proj_",
            IdKind::ApiKey => "key_",
            IdKind::Conversation => "conv_",
            IdKind::Response => "resp_",
            // An item's prefix is its type's; ids made without one say only "item".
            IdKind::Item => "item_",
        }
    }
}

impl IdKind {
    /// What clients call this kind of object in messages ("No run step found with id …").
    pub const fn noun(self) -> &'static str {
        match self {
            IdKind::Assistant => "assistant",
            IdKind::Thread => "thread",
            IdKind::Message => "message",
            IdKind::Run => "run",
            IdKind::Step => "run step",
            IdKind::ToolCall => "tool call",
            IdKind::File => "file",
            IdKind::Upload => "upload",
            IdKind::UploadPart => "upload part",
            IdKind::VectorStore => "vector store",
            IdKind::FileBatch => "vector store file batch",
            IdKind::Crawl => "vector store crawl",
            IdKind::Project => "project",
            IdKind::ApiKey => "API key",
            IdKind::Conversation => "conversation",
            IdKind::Response => "response",
            IdKind::Item => "item",
        }
    }
}

impl IdKind {
    /// Whether `id` could be an id of this kind: well-formed ([`is_valid_id`]) with its prefix.
    pub fn accepts(self, id: &str) -> bool {
        match self {
            // Items from clients carry ids of many prefixes (OpenAI's own among them, in
            // items echoed back from its responses).
            IdKind::Item => is_valid_id(id),
            _ => is_valid_id(id) && id.starts_with(self.prefix()),
        }
    }
}

/// A short id tail derived from `text` (16 hex digits of its FNV-1a hash): the same on every
/// node and in every release, for ids that must come out the same when an action is repeated.
pub fn stable_tail(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
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

/// An id from outside that is not an id of the expected kind: it names no object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{id}' is not an id of a {kind:?}")]
pub struct IdError {
    pub kind: IdKind,
    pub id: String,
}

/// What every id type can do: be parsed from outside, checked for its kind.
pub trait TypedId: Sized + AsRef<str> {
    /// An id from outside: refused unless it is well-formed and has this kind's prefix.
    fn parse(id: &str) -> Result<Self, IdError>;
}

/// Declares the id type of one kind of object.
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident = $kind:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random id of this kind.
            #[allow(clippy::new_without_default)]
            pub fn new() -> $name {
                $name(new_id($kind))
            }

            /// An id from outside: refused unless it is well-formed and has this kind's prefix.
            pub fn parse(id: &str) -> Result<$name, IdError> {
                if $kind.accepts(id) {
                    Ok($name(id.to_string()))
                } else {
                    Err(IdError {
                        kind: $kind,
                        id: id.to_string(),
                    })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id without its kind's prefix (ids of related objects derived from this
            /// one share it).
            pub fn tail(&self) -> &str {
                self.0.strip_prefix($kind.prefix()).unwrap_or(&self.0)
            }
        }

        impl TypedId for $name {
            fn parse(id: &str) -> Result<$name, IdError> {
                $name::parse(id)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

typed_id!(AssistantId = IdKind::Assistant);
typed_id!(ThreadId = IdKind::Thread);
typed_id!(MessageId = IdKind::Message);
typed_id!(RunId = IdKind::Run);
typed_id!(StepId = IdKind::Step);
typed_id!(FileId = IdKind::File);
typed_id!(UploadId = IdKind::Upload);
typed_id!(VectorStoreId = IdKind::VectorStore);
typed_id!(FileBatchId = IdKind::FileBatch);
typed_id!(CrawlId = IdKind::Crawl);
typed_id!(UploadPartId = IdKind::UploadPart);
typed_id!(ConversationId = IdKind::Conversation);
typed_id!(ResponseId = IdKind::Response);
typed_id!(
    /// An item of a conversation or response; new ones are made with [`ItemId::of_type`].
    ItemId = IdKind::Item
);

impl ItemId {
    /// A new id for an item of `type` (`message` → `msg_…`, `function_call` → `fc_…`).
    pub fn of_type(kind: &str) -> ItemId {
        let tail = &new_id(IdKind::Item)[IdKind::Item.prefix().len()..];
        ItemId(format!("{}{tail}", Self::prefix_of(kind)))
    }

    /// The id of the output item that shows the tool call `call_id` as an item of `type`
    /// (`fc_…` for `call_…`): derived, so the item streamed while the call is made and the
    /// one recorded when the response ends are the same item.
    pub fn for_call(kind: &str, call_id: &str) -> ItemId {
        let tail = call_id
            .strip_prefix(IdKind::ToolCall.prefix())
            .unwrap_or(call_id);
        ItemId(format!("{}{tail}", Self::prefix_of(kind)))
    }

    fn prefix_of(kind: &str) -> &'static str {
        match kind {
            "message" => "msg_",
            "function_call" => "fc_",
            "function_call_output" => "fco_",
            "file_search_call" => "fs_",
            "web_search_call" => "ws_",
            "code_interpreter_call" => "ci_",
            "reasoning" => "rs_",
            "mcp_list_tools" => "mcpl_",
            "mcp_call" => "mcp_",
            "mcp_approval_request" => "mcpr_",
            "mcp_approval_response" => "mcpa_",
            "compaction" => "cmp_",
            _ => IdKind::Item.prefix(),
        }
    }
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

    #[test]
    fn an_id_from_outside_must_have_its_kind() {
        let run = RunId::new();
        assert_eq!(RunId::parse(&run).unwrap(), run);
        assert!(RunId::parse(StepId::new().as_str()).is_err());
        assert!(RunId::parse("run_a/b").is_err());
        assert!(RunId::parse("run_").is_ok_and(|r| r == "run_"));
        let e = ThreadId::parse("asst_1").unwrap_err();
        assert_eq!(e.kind, IdKind::Thread);
        // On the wire and in storage an id is its string.
        assert_eq!(serde_json::to_value(&run).unwrap(), run.as_str());
    }
}
