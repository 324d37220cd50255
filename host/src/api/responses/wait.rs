//! Waiting for a response to finish: a create request that neither streams nor runs in the
//! background answers with the finished response, and a cancel answers once the cancel took.
//!
//! The run's events say when it ended; the database is the truth when the bus is silent
//! (events are best-effort), so the wait checks the run every few seconds as well.

use std::time::Duration;

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use assistants_core::bus::Subscription;
use assistants_core::model::ids::ResponseId;
use assistants_core::model::response;
use assistants_core::model::status::event_ends_stream;
use assistants_core::model::Run;

/// How long the wait listens before it checks the run in the database.
const CHECK: Duration = Duration::from_secs(5);

/// Returns once the response's run has ended (its row is then finished), or after `limit`.
pub(super) async fn until_ended(
    state: &AppState,
    project: &str,
    id: &ResponseId,
    mut sub: Subscription,
    limit: Option<Duration>,
) -> ApiResult<()> {
    let run_id = response::run_id(id);
    let deadline = limit.map(|l| tokio::time::Instant::now() + l);
    let mut listening = true;
    loop {
        let check = match deadline {
            Some(d) => CHECK.min(d.saturating_duration_since(tokio::time::Instant::now())),
            None => CHECK,
        };
        let heard = tokio::select! {
            biased;
            e = sub.recv(), if listening => match e {
                Some(e) => event_ends_stream(&e.event),
                None => {
                    // The bus went away: the database alone says when the run ends.
                    listening = false;
                    false
                }
            },
            _ = tokio::time::sleep(if listening { check } else { check.min(Duration::from_secs(1)) }) => {
                let run = state.store.find::<Run>(project, &run_id).await?;
                run.is_none_or(|r| r.status.is_terminal())
            }
            _ = state.lifecycle.ending.cancelled() => {
                return Err(ApiError::new(
                    ErrorKind::Unavailable,
                    format!("This server is shutting down. The response is not lost: retrieve '{id}' later (another worker finishes it)."),
                ));
            }
        };
        let out_of_time = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if heard || out_of_time {
            return Ok(());
        }
    }
}
