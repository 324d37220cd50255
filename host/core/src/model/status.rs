//! The statuses of the domain objects, as enums with their wire names.
//!
//! Runs: `queued → in_progress → (requires_action → queued → in_progress …)` ending in
//! `completed`, `incomplete`, `failed`, `cancelled` or `expired`; `cancelling` sits between a
//! cancel request on a run that a worker is driving and `cancelled`. Old SDK pollers loop
//! forever on a status outside this enum, so nothing else is ever reported. Steps, messages,
//! files and uploads have their own, smaller sets.
//!
//! Each status (de)serialises as its wire name and nothing else: a stored object with a status
//! outside its set fails to load (the store reports it as an internal error) instead of being
//! read as some other status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a status enum whose variants serialise as the given wire names, with `ALL`,
/// `as_str`, `Display` and `FromStr` agreeing with serde.
macro_rules! wire_status {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|st| st.as_str() == s)
                    .ok_or_else(|| format!("unknown {} '{s}'", stringify!($name)))
            }
        }
    };
}

wire_status! {
    /// A run's status.
    RunStatus {
        Queued = "queued",
        InProgress = "in_progress",
        RequiresAction = "requires_action",
        Cancelling = "cancelling",
        Cancelled = "cancelled",
        Failed = "failed",
        Completed = "completed",
        Incomplete = "incomplete",
        Expired = "expired",
    }
}

wire_status! {
    /// A run step's status: in progress until its run ends it or it completes.
    StepStatus {
        InProgress = "in_progress",
        Cancelled = "cancelled",
        Failed = "failed",
        Completed = "completed",
        Expired = "expired",
    }
}

wire_status! {
    /// A message's status: user messages are `completed` when created; an assistant's answer
    /// is `in_progress` while it streams, then `completed` or `incomplete`.
    MessageStatus {
        InProgress = "in_progress",
        Incomplete = "incomplete",
        Completed = "completed",
    }
}

wire_status! {
    /// A file's status (deprecated on the wire, still sent): files are `processed` once stored.
    FileStatus {
        Uploaded = "uploaded",
        Processed = "processed",
        Error = "error",
    }
}

wire_status! {
    /// A vector-store file's ingestion status, and a file batch's (derived from its files).
    IngestStatus {
        InProgress = "in_progress",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

wire_status! {
    /// A vector store's status, derived on read: `expired` past its expiry, `in_progress`
    /// while a file is being ingested, else `completed`.
    VectorStoreStatus {
        Expired = "expired",
        InProgress = "in_progress",
        Completed = "completed",
    }
}

wire_status! {
    /// A vector-store crawl's status: `in_progress` while a pass runs, then `completed` or
    /// `failed` (a pass that stored no page) until the next pass, if it re-crawls.
    CrawlStatus {
        InProgress = "in_progress",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

wire_status! {
    /// What became of one URL of a crawl in its latest pass.
    PageStatus {
        /// Waiting to be fetched in the current pass.
        Queued = "queued",
        /// Fetched and stored: new, or changed since the last pass (its file replaced).
        Stored = "stored",
        /// Fetched, the same as the stored copy.
        Unchanged = "unchanged",
        /// It led to another URL, which holds the page.
        Redirected = "redirected",
        /// Not fetched or not stored (robots.txt, no grant, noindex, limits, content type).
        Skipped = "skipped",
        /// The fetch failed or the server answered an error; a stored copy is kept.
        Failed = "failed",
        /// Gone (404 or 410) or no longer linked: its file was removed.
        Removed = "removed",
        /// The crawl was cancelled before it was fetched.
        Cancelled = "cancelled",
    }
}

wire_status! {
    /// An upload's status: `pending` until completed, cancelled or expired.
    UploadStatus {
        Pending = "pending",
        Completed = "completed",
        Cancelled = "cancelled",
        Expired = "expired",
    }
}

impl RunStatus {
    /// The statuses that hold the thread lock (and count toward expiry).
    pub const ACTIVE: [RunStatus; 4] = [
        RunStatus::Queued,
        RunStatus::InProgress,
        RunStatus::RequiresAction,
        RunStatus::Cancelling,
    ];

    /// Whether the run still holds its thread (no new messages or runs there).
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// Whether the run has ended for good.
    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }

    /// Whether `POST …/cancel` is accepted in this status.
    pub fn is_cancellable(self) -> bool {
        matches!(
            self,
            RunStatus::Queued | RunStatus::InProgress | RunStatus::RequiresAction
        )
    }

    /// The SSE event that announces a run entering this status.
    pub fn event(self) -> &'static str {
        match self {
            RunStatus::Queued => "thread.run.queued",
            RunStatus::InProgress => "thread.run.in_progress",
            RunStatus::RequiresAction => "thread.run.requires_action",
            RunStatus::Cancelling => "thread.run.cancelling",
            RunStatus::Cancelled => "thread.run.cancelled",
            RunStatus::Failed => "thread.run.failed",
            RunStatus::Completed => "thread.run.completed",
            RunStatus::Incomplete => "thread.run.incomplete",
            RunStatus::Expired => "thread.run.expired",
        }
    }

    /// Whether a stream of this run ends after announcing this status: the client has
    /// everything it can get from this response (a terminal state, or tool calls to answer).
    pub fn ends_stream(self) -> bool {
        self.is_terminal() || self == RunStatus::RequiresAction
    }
}

/// Whether an SSE event name ends a run's stream (see [`RunStatus::ends_stream`]).
pub fn event_ends_stream(event: &str) -> bool {
    RunStatus::ALL
        .iter()
        .any(|s| s.ends_stream() && s.event() == event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_partition() {
        for &s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_ne!(s.is_active(), s.is_terminal());
        }
        assert!("running".parse::<RunStatus>().is_err());
        assert!(RunStatus::RequiresAction.is_cancellable());
        assert!(!RunStatus::Cancelling.is_cancellable());
        assert!(event_ends_stream("thread.run.requires_action"));
        assert!(event_ends_stream("thread.run.expired"));
        assert!(!event_ends_stream("thread.run.in_progress"));
        assert!(!event_ends_stream("thread.run.cancelling"));
    }

    #[test]
    fn a_status_outside_its_set_does_not_load() {
        assert!(serde_json::from_value::<RunStatus>("running".into()).is_err());
        assert!(serde_json::from_value::<StepStatus>("requires_action".into()).is_err());
        for &s in StepStatus::ALL {
            let back: StepStatus = serde_json::from_value(s.as_str().into()).unwrap();
            assert_eq!(back, s);
        }
        for &s in MessageStatus::ALL {
            assert_eq!(s.as_str().parse::<MessageStatus>().unwrap(), s);
        }
    }
}
