//! Run responses: the run as JSON, or its event stream (SSE) followed until the run ends or
//! waits for the client, with the database as the fallback when the event bus is silent.

use super::*;

/// Answers a created or resumed run: the run as JSON, or its event stream.
pub(super) fn respond(
    state: &AppState,
    project: &str,
    run: &Run,
    initial: Vec<StreamEvent>,
    sub: Option<Subscription>,
) -> Response {
    match sub {
        None => axum::Json(run).into_response(),
        Some(sub) => {
            let watch = Watch {
                store: state.store.clone(),
                project: project.to_string(),
                run_id: run.id.to_string(),
                ending: state.lifecycle.ending.clone(),
            };
            sse(initial, sub, watch)
        }
    }
}

/// How long a stream waits for an event before it checks the run in the database.
pub(super) const STREAM_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// The run a stream follows, read from the database when the bus is silent: events are
/// best-effort (a Redis restart loses some), the database is the truth, so a stream always
/// ends once its run has.
pub(super) struct Watch {
    store: assistants_core::store::Store,
    project: String,
    run_id: String,
    /// The node's shutdown grace period is over: the stream must end now.
    ending: tokio_util::sync::CancellationToken,
}

impl Watch {
    async fn settled(&self) -> Option<StreamEvent> {
        let run = self
            .store
            .find::<Run>(&self.project, &self.run_id)
            .await
            .ok()??;
        let status = run.status;
        status
            .ends_stream()
            .then(|| StreamEvent::new(status.event(), &run))
    }
}

/// An SSE response: `initial` events, then the run's events until one ends the stream, then
/// `done`.
pub(super) fn sse(initial: Vec<StreamEvent>, sub: Subscription, watch: Watch) -> Response {
    enum St {
        Initial(std::vec::IntoIter<StreamEvent>, Subscription, Watch),
        Live(Subscription, Watch),
        Done,
        End,
    }
    fn frame(e: &StreamEvent) -> Result<SseEvent, Infallible> {
        Ok(SseEvent::default().event(&e.event).data(&e.data))
    }
    async fn live(
        mut sub: Subscription,
        watch: Watch,
    ) -> Option<(Result<SseEvent, Infallible>, St)> {
        loop {
            // Biased: an event already waiting (a terminal one, say) goes out before the
            // shutdown notice.
            let next = tokio::select! {
                biased;
                next = tokio::time::timeout(STREAM_CHECK, sub.recv()) => next,
                _ = watch.ending.cancelled() => Ok(None),
            };
            match next {
                Ok(Some(e)) => {
                    let ends = event_ends_stream(&e.event) || e.event == "error";
                    return Some((
                        frame(&e),
                        if ends { St::Done } else { St::Live(sub, watch) },
                    ));
                }
                // This node is shutting down (grace period over, or the bus went away): tell
                // the client, then end. The run itself continues on another worker.
                Ok(None) => {
                    let err = ApiError::new(
                        crate::error::ErrorKind::Unavailable,
                        "This server is shutting down. The run is not lost: retrieve it or stream it again (another worker resumes it, or this one after a restart).",
                    );
                    let e = StreamEvent {
                        event: "error".into(),
                        data: err.body().to_string(),
                        recorded: None,
                    };
                    return Some((frame(&e), St::Done));
                }
                Err(_) => {
                    if let Some(e) = watch.settled().await {
                        return Some((frame(&e), St::Done));
                    }
                }
            }
        }
    }
    let stream = futures::stream::unfold(
        St::Initial(initial.into_iter(), sub, watch),
        |st| async move {
            match st {
                St::Initial(mut it, sub, watch) => match it.next() {
                    Some(e) => {
                        let next = if event_ends_stream(&e.event) {
                            St::Done
                        } else {
                            St::Initial(it, sub, watch)
                        };
                        Some((frame(&e), next))
                    }
                    None => live(sub, watch).await,
                },
                St::Live(sub, watch) => live(sub, watch).await,
                St::Done => Some((
                    Ok(SseEvent::default().event("done").data("[DONE]")),
                    St::End,
                )),
                St::End => None,
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
