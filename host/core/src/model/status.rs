//! The run status machine of the Assistants API v2.
//!
//! `queued → in_progress → (requires_action → queued → in_progress …)` ending in `completed`,
//! `incomplete`, `failed`, `cancelled` or `expired`; `cancelling` sits between a cancel request
//! on a run that a worker is driving and `cancelled`. Old SDK pollers loop forever on a status
//! outside this enum, so nothing else is ever reported.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Queued,
    InProgress,
    RequiresAction,
    Cancelling,
    Cancelled,
    Failed,
    Completed,
    Incomplete,
    Expired,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Queued,
        RunStatus::InProgress,
        RunStatus::RequiresAction,
        RunStatus::Cancelling,
        RunStatus::Cancelled,
        RunStatus::Failed,
        RunStatus::Completed,
        RunStatus::Incomplete,
        RunStatus::Expired,
    ];

    /// The statuses that hold the thread lock (and count toward expiry).
    pub const ACTIVE: [RunStatus; 4] = [
        RunStatus::Queued,
        RunStatus::InProgress,
        RunStatus::RequiresAction,
        RunStatus::Cancelling,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::InProgress => "in_progress",
            RunStatus::RequiresAction => "requires_action",
            RunStatus::Cancelling => "cancelling",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Failed => "failed",
            RunStatus::Completed => "completed",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Expired => "expired",
        }
    }

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

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown run status '{s}'"))
    }
}

/// Whether an SSE event name ends a run's stream (see [`RunStatus::ends_stream`]).
pub fn event_ends_stream(event: &str) -> bool {
    RunStatus::ALL
        .into_iter()
        .any(|s| s.ends_stream() && s.event() == event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_partition() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
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
}
