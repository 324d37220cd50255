//! What the server forgets by itself, through the janitor (`assistants_host::janitor`): a
//! `store: false` response with its run a while after it ended, a background response's
//! recorded events a day after (it can no longer be streamed again; it can still be
//! retrieved), and a deleted conversation's lock thread once no response runs in it — never
//! anything still in use.

use std::time::Duration;

use assistants_core::store::testing::{admin_execute, admin_scalar};
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::{assert_error, json, TestApp};

use super::response_runs::{poll, setup, text_of};

async fn count(app: &TestApp, sql: &str) -> i64 {
    admin_scalar(&app.settings().storage.database_url, sql)
        .await
        .unwrap()
}

async fn execute(app: &TestApp, sql: &str) {
    admin_execute(&app.settings().storage.database_url, sql)
        .await
        .unwrap()
}

/// How many rows of what a response made are there: its row, run, messages, input items and
/// own lock thread.
async fn rows_of(app: &TestApp, id: &str) -> i64 {
    let tail = id.strip_prefix("resp_").unwrap();
    let mut n = 0;
    for sql in [
        format!("SELECT COUNT(*) FROM responses WHERE id = '{id}'"),
        format!("SELECT COUNT(*) FROM runs WHERE id = 'run_{tail}'"),
        format!("SELECT COUNT(*) FROM messages WHERE run_id = 'run_{tail}'"),
        format!("SELECT COUNT(*) FROM items WHERE response_id = '{id}'"),
        format!("SELECT COUNT(*) FROM threads WHERE id = 'thread_{tail}'"),
    ] {
        n += count(app, &sql).await;
    }
    n
}

#[tokio::test]
async fn a_response_not_stored_is_purged_a_while_after_it_ended() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("Kept."));
    llm.push(Reply::text("Forgotten."));
    let (_, kept) = app
        .post("/responses", json!({"model": "m", "input": "One."}))
        .await;
    let (s, gone) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Two.", "store": false}),
        )
        .await;
    assert_eq!(s, 200, "{gone}");
    assert_eq!(text_of(&gone), "Forgotten.");
    let (kept, gone) = (kept["id"].as_str().unwrap(), gone["id"].as_str().unwrap());
    assert!(rows_of(&app, gone).await >= 5);

    // Just ended: the janitor leaves it (whoever created it may still be reading it).
    let janitor = app.janitor().await;
    janitor.sweep().await.unwrap();
    assert!(rows_of(&app, gone).await >= 5);

    // A while later it is gone with everything it made; the stored one stays whole.
    let before = rows_of(&app, kept).await;
    execute(
        &app,
        &format!(
            "UPDATE responses SET ended_at = ended_at - 3600 WHERE id IN ('{kept}', '{gone}')"
        ),
    )
    .await;
    janitor.sweep().await.unwrap();
    assert_eq!(rows_of(&app, gone).await, 0);
    assert_eq!(rows_of(&app, kept).await, before);
    let (s, r) = app.get(&format!("/responses/{kept}")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(text_of(&r), "Kept.");
}

#[tokio::test]
async fn a_background_responses_events_are_pruned_a_day_after_it_ended() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("Done.").delay(Duration::from_millis(100)));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Work.", "background": true}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(poll(&app, &id).await["status"], "completed");
    let events = format!("SELECT COUNT(*) FROM response_events WHERE response_id = '{id}'");
    let janitor = app.janitor().await;
    janitor.sweep().await.unwrap();
    assert!(count(&app, &events).await > 0);
    let (s, again) = app
        .get_stream(&format!("/responses/{id}?stream=true"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(again.last().unwrap().0, "response.completed");

    execute(
        &app,
        &format!("UPDATE responses SET events_until = events_until - 90000 WHERE id = '{id}'"),
    )
    .await;
    janitor.sweep().await.unwrap();
    assert_eq!(count(&app, &events).await, 0);
    // Its stream is refused with a reason; the response itself is still there.
    let (s, e) = app.get(&format!("/responses/{id}?stream=true")).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "stream");
    let (s, r) = app.get(&format!("/responses/{id}")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(text_of(&r), "Done.");
}

#[tokio::test]
async fn a_deleted_conversations_lock_thread_goes_once_nothing_runs_in_it() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    let conv = app.create("/conversations", json!({})).await;
    let tail = conv.strip_prefix("conv_").unwrap();
    let lock = format!("SELECT COUNT(*) FROM threads WHERE id = 'thread_{tail}'");
    llm.push(Reply::text("First."));
    let (s, first) = app
        .post(
            "/responses",
            json!({"model": "m", "conversation": conv, "input": "One."}),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    // The second is still running when the conversation is deleted.
    llm.push(Reply::text("Second.").delay(Duration::from_millis(1500)));
    let (s, second) = app
        .post(
            "/responses",
            json!({"model": "m", "conversation": conv, "input": "Two.", "background": true}),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    let second = second["id"].as_str().unwrap().to_string();
    let (s, _) = app.delete(&format!("/conversations/{conv}")).await;
    assert_eq!(s, 200);

    let janitor = app.janitor().await;
    janitor.sweep().await.unwrap();
    assert_eq!(count(&app, &lock).await, 1, "a response still runs in it");
    let done = poll(&app, &second).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(text_of(&done), "Second.");
    // Its output went nowhere: the conversation is gone.
    let orphans = format!("SELECT COUNT(*) FROM items WHERE conversation_id = '{conv}'");
    assert_eq!(count(&app, &orphans).await, 0);

    janitor.sweep().await.unwrap();
    assert_eq!(count(&app, &lock).await, 0);
    // The responses themselves are still there, with their output.
    for id in [first["id"].as_str().unwrap(), &second] {
        let (s, r) = app.get(&format!("/responses/{id}")).await;
        assert_eq!(s, 200, "{r}");
        assert!(!text_of(&r).is_empty(), "{r}");
    }
}

#[tokio::test]
async fn a_response_ends_when_its_run_ends_whatever_its_status() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    // A response that fails after a while: its grace starts at its end, not its creation
    // (OpenAI's `completed_at` is only set for completed responses).
    llm.push(Reply::error(400).delay(Duration::from_millis(1500)));
    let (s, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Fail slowly.", "store": false}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    let id = r["id"].as_str().unwrap();
    let took = count(
        &app,
        &format!("SELECT ended_at - created_at FROM responses WHERE id = '{id}'"),
    )
    .await;
    assert!(took >= 1, "ended {took} s after its creation");
}
