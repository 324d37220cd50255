//! The transitions against a real (SQLite) store: what clients may ask, what they get refused,
//! and what the strategy sees next.

use super::*;
use assistants_core::bus::{LocalBus, LocalQueue};
use assistants_core::model::Thread;

/// A store with one thread, and the handle the API would use on it.
async fn setup() -> (RunsHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let thread: Thread = serde_json::from_value(json!({
        "id": "thread_1", "object": "thread", "created_at": 0,
        "tool_resources": {}, "metadata": {},
    }))
    .unwrap();
    let mut tx = store.begin().await.unwrap();
    store.insert_in(&mut tx, "p", &thread, &[]).await.unwrap();
    tx.commit().await.unwrap();
    let (queue, _deliveries) = LocalQueue::new();
    let runs = RunsHandle {
        bus: Arc::new(LocalBus::default()),
        queue: Arc::new(queue),
        store,
    };
    (runs, dir)
}

/// A run created the way the API creates one, then waiting for `calls`.
async fn waiting_run(runs: &RunsHandle, calls: &[&str]) -> Run {
    let mut run: Run = serde_json::from_value(json!({
        "id": "run_1", "object": "thread.run", "created_at": 0, "thread_id": "thread_1",
        "assistant_id": "asst_1", "status": "queued", "model": "m", "instructions": "",
        "tools": [], "metadata": {}, "truncation_strategy": {"type": "auto"},
        "tool_choice": "auto", "parallel_tool_calls": true, "response_format": "auto",
        "expires_at": 600,
    }))
    .unwrap();
    let pins = Pins {
        strategy: "native".into(),
        digest: "d".into(),
        tools: vec![],
        vector_store_ids: vec![],
        code_file_ids: None,
        include_content: false,
        response: None,
        mcp: vec![],
    };
    let engine = create(&mut run, pins);
    assert_eq!(run.status, RunStatus::Queued);
    assert!(matches!(
        engine.next,
        Next::Step {
            event: Event::Start
        }
    ));
    let mut tx = runs.store.begin().await.unwrap();
    runs.store
        .insert_run_in(&mut tx, "p", &run, &engine)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let calls: Vec<ToolCall> = calls
        .iter()
        .map(|id| ToolCall {
            id: id.to_string(),
            name: "f".into(),
            arguments_json: "{}".into(),
        })
        .collect();
    runs.store
        .update_run::<StoreError>("p", "thread_1", "run_1", |run, engine| {
            start(run);
            require_action(run, engine, &calls);
            Ok(())
        })
        .await
        .unwrap()
}

fn output(id: &str) -> ToolResult {
    ToolResult {
        tool_call_id: id.into(),
        output: format!("out of {id}"),
        is_error: false,
    }
}

#[tokio::test]
async fn outputs_must_answer_exactly_the_waiting_calls_and_reach_the_strategy_in_call_order() {
    let (runs, _dir) = setup().await;
    let run = waiting_run(&runs, &["call_a", "call_b"]).await;
    assert_eq!(run.status, RunStatus::RequiresAction);
    assert!(run.expires_at.is_some());

    let err = submit_tool_outputs(&runs, "p", "thread_1", "run_1", vec![output("call_x")])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "No tool call found with id 'call_x' waiting for output in run run_1."
    );
    let err = submit_tool_outputs(&runs, "p", "thread_1", "run_1", vec![output("call_b")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransitionError::MissingToolOutputs { missing, .. } if missing == &["call_a"]),
        "{err}"
    );

    let run = submit_tool_outputs(
        &runs,
        "p",
        "thread_1",
        "run_1",
        vec![output("call_b"), output("call_a")],
    )
    .await
    .unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    assert!(run.required_action.is_none());
    let (_, engine) = runs
        .store
        .lock_run_in(
            &mut runs.store.begin().await.unwrap(),
            "p",
            "thread_1",
            "run_1",
        )
        .await
        .unwrap();
    let Next::Step {
        event: Event::OutputsSubmitted(given),
    } = engine.next
    else {
        panic!(
            "the strategy's next event is the outputs: {:?}",
            engine.next
        );
    };
    let order: Vec<&str> = given.iter().map(|r| r.tool_call_id.as_str()).collect();
    assert_eq!(order, ["call_a", "call_b"]);

    // Queued again: no more outputs, and a cancel marks it for its worker.
    let err = submit_tool_outputs(&runs, "p", "thread_1", "run_1", vec![output("call_a")])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Runs in status \"queued\" do not accept tool outputs."
    );
    let run = cancel(&runs, "p", "thread_1", "run_1").await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelling);
}

#[tokio::test]
async fn a_run_waiting_for_the_client_is_cancelled_at_once_and_then_refuses_another_cancel() {
    let (runs, _dir) = setup().await;
    waiting_run(&runs, &["call_a"]).await;
    let mut events = runs.bus.subscribe("run_1").await.unwrap();
    let run = cancel(&runs, "p", "thread_1", "run_1").await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.cancelled_at.is_some());
    assert!(run.expires_at.is_none(), "terminal runs do not expire");
    assert!(run.usage.is_some(), "terminal runs carry usage");
    assert_eq!(
        events.recv().await.map(|e| e.event),
        Some("thread.run.cancelled".to_string())
    );
    let err = cancel(&runs, "p", "thread_1", "run_1").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cannot cancel run with status 'cancelled'."
    );
}

#[test]
fn each_ending_closes_children_the_way_the_wire_says() {
    let failed = Ending::Failed {
        code: "server_error".into(),
        message: "x".into(),
    };
    let incomplete = Ending::Incomplete {
        reason: "max_prompt_tokens".into(),
    };
    let table = [
        (
            Ending::Completed,
            RunStatus::Completed,
            "completed",
            "max_tokens",
        ),
        (incomplete, RunStatus::Incomplete, "completed", "max_tokens"),
        (failed, RunStatus::Failed, "failed", "run_failed"),
        (
            Ending::Cancelled,
            RunStatus::Cancelled,
            "cancelled",
            "run_cancelled",
        ),
        (
            Ending::Expired,
            RunStatus::Expired,
            "expired",
            "run_expired",
        ),
    ];
    for (ending, status, step, reason) in table {
        assert_eq!(ending.status(), status);
        assert!(status.is_terminal());
        assert_eq!(ending.step_status().as_str(), step);
        assert_eq!(ending.message_reason(), reason);
    }
}
