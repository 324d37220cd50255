//! The domain model: the objects the server keeps, owned by no transport.
//!
//! The HTTP API, the run engine, ingestion and the store all speak these types; none of them
//! imports another's. A document's serde shape is also its stored shape (the store keeps each
//! object as one JSON document, `store::docs`), which is the Assistants wire shape: changing a
//! field here changes what is stored and what clients see, together.

pub mod assistant;
pub mod conversation;
pub mod engine;
pub mod file;
pub mod ids;
pub mod mcp;
pub mod message;
pub mod response;
pub mod run;
pub mod status;
pub mod thread;
pub mod upload;
pub mod vector_store;

pub use assistant::Assistant;
pub use conversation::{Conversation, Item};
pub use file::FileObject;
pub use message::Message;
pub use response::ResponseObject;
pub use run::{Run, RunStatus, RunStep};
pub use status::{
    CrawlStatus, FileStatus, IngestStatus, MessageStatus, PageStatus, StepStatus, UploadStatus,
    VectorStoreStatus,
};
pub use thread::Thread;
pub use upload::Upload;
pub use vector_store::VectorStoreDoc;

/// Up to 16 string pairs a client attaches to an object (validated at the edge).
pub type Metadata = serde_json::Map<String, serde_json::Value>;
