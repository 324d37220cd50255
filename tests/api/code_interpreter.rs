//! The code_interpreter tool in runs, against the stand-in interpreter
//! (`assistants_core::interpreter::testing`: its "cells" are one-letter commands — `p TEXT`
//! prints, `s C` keeps a byte, `r` prints it, `l` loops). The real interpreter runs the same
//! paths in `tests/interpreter` and the SDK suites.

use std::time::Duration;

use assistants_core::interpreter::testing::install_stand_in;
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::{json, TestApp};
use serde_json::Value;

/// A server with the stand-in installed, once it reports code_interpreter ready.
async fn setup(
    llm: &FakeLlm,
    tweak: impl FnOnce(&mut assistants_host::config::Settings),
) -> TestApp {
    let app = TestApp::spawn_with_llm(llm, |s| {
        install_stand_in(&s.code_interpreter.dir);
        // New sessions fork from a template that remembered `T`.
        s.code_interpreter.template = Some("s T".into());
        tweak(s)
    })
    .await;
    for _ in 0..200 {
        let (_, info) = app.get("/plugins/code_interpreter").await;
        if info["status"] == "ready" {
            return app;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("code_interpreter did not become ready");
}

async fn assistant_and_thread(app: &TestApp) -> (String, String) {
    let asst = app
        .create(
            "/assistants",
            json!({"model": "gpt-4o", "tools": [{"type": "code_interpreter"}]}),
        )
        .await;
    let thread = app.create("/threads", json!({})).await;
    (asst, thread)
}

/// The code_interpreter tool's description in the first model request.
fn description(llm: &FakeLlm) -> String {
    let tools = &llm.requests()[0]["tools"];
    tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "code_interpreter")
        .and_then(|t| t["function"]["description"].as_str())
        .unwrap_or_else(|| panic!("not offered: {tools}"))
        .to_string()
}

/// The tool-call entries of a run's steps.
async fn calls(app: &TestApp, thread: &str, run: &str) -> Vec<Value> {
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run}/steps?order=asc"))
        .await;
    steps["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "tool_calls")
        .flat_map(|s| s["step_details"]["tool_calls"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn calls_run_in_the_threads_session_and_are_recorded_in_openais_shape() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |_| {}).await;
    let (asst, thread) = assistant_and_thread(&app).await;

    // The model is offered the tool as OpenAI's models know it.
    llm.push(Reply::tool("code_interpreter", r#"{"code": "s Z"}"#));
    llm.push(Reply::text("Stored."));
    app.post(
        &format!("/threads/{thread}/messages"),
        json!({"role": "user", "content": "remember Z"}),
    )
    .await;
    let (run, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    let offered = &llm.requests()[0]["tools"];
    let tool = offered
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "code_interpreter")
        .unwrap_or_else(|| panic!("not offered: {offered}"));
    assert_eq!(tool["function"]["parameters"]["required"], json!(["code"]));
    let first = calls(&app, &thread, &run).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["type"], "code_interpreter");
    assert_eq!(first[0]["code_interpreter"]["input"], "s Z");
    assert_eq!(first[0]["code_interpreter"]["outputs"], json!([]));

    // The next run on the thread finds the session's state.
    llm.push(Reply::tool("code_interpreter", r#"{"code": "r"}"#));
    llm.push(Reply::text("It was Z."));
    let (run, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    let second = calls(&app, &thread, &run).await;
    assert_eq!(
        second[0]["code_interpreter"],
        json!({"input": "r", "outputs": [{"type": "logs", "logs": "Z"}]})
    );
    assert_eq!(llm.last_message_text(), "Z");

    // Another thread has a session of its own, forked from the template.
    let other = app.create("/threads", json!({})).await;
    llm.push(Reply::tool("code_interpreter", r#"{"code": "r"}"#));
    llm.push(Reply::text("Nothing."));
    let (run, _) = app.run_to_end(&other, &asst).await;
    assert_eq!(
        calls(&app, &other, &run).await[0]["code_interpreter"]["outputs"][0]["logs"],
        "T"
    );
}

#[tokio::test]
async fn a_streamed_run_shows_the_code_then_its_output() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |_| {}).await;
    let (asst, thread) = assistant_and_thread(&app).await;
    llm.push(Reply::tool("code_interpreter", r#"{"code": "p 42\n"}"#));
    llm.push(Reply::text("The answer is 42."));
    let (status, events) = app
        .stream(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst, "stream": true}),
        )
        .await;
    assert_eq!(status, 200);
    let input: String = events
        .iter()
        .filter(|(e, _)| e == "thread.run.step.delta")
        .flat_map(|(_, d)| d["delta"]["step_details"]["tool_calls"].as_array().cloned())
        .flatten()
        .filter(|c| c["type"] == "code_interpreter")
        .filter_map(|c| c["code_interpreter"]["input"].as_str().map(str::to_string))
        .collect();
    assert_eq!(input, "p 42\n");
    let completed = events
        .iter()
        .find(|(e, d)| e == "thread.run.step.completed" && d["type"] == "tool_calls")
        .map(|(_, d)| d.clone())
        .expect("the tool step completed");
    assert_eq!(
        completed["step_details"]["tool_calls"][0]["code_interpreter"]["outputs"],
        json!([{"type": "logs", "logs": "42\n"}])
    );
    assert_eq!(events.last().unwrap().0, "done");
}

#[tokio::test]
async fn a_runaway_cell_times_out_and_the_session_rolls_back_to_the_last_good_cell() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |s| {
        s.code_interpreter.cell_timeout = Duration::from_millis(300)
    })
    .await;
    let (asst, thread) = assistant_and_thread(&app).await;
    llm.push(Reply::tool("code_interpreter", r#"{"code": "s A"}"#));
    llm.push(Reply::tool("code_interpreter", r#"{"code": "l"}"#));
    llm.push(Reply::tool("code_interpreter", r#"{"code": "r"}"#));
    llm.push(Reply::text("Done."));
    let (run, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    let calls = calls(&app, &thread, &run).await;
    let logs = |i: usize| calls[i]["code_interpreter"]["outputs"][0]["logs"].clone();
    let told = logs(1);
    assert!(told.as_str().unwrap().contains("timed out"), "{told}");
    assert!(told.as_str().unwrap().contains("rolled back"), "{told}");
    // The state set before the timeout is back.
    assert_eq!(logs(2), "A");
}

#[tokio::test]
async fn without_the_interpreter_a_call_is_told_why_and_the_run_goes_on() {
    let llm = FakeLlm::start().await;
    let app = TestApp::spawn_with_llm(&llm, |_| {}).await;
    let (_, info) = app.get("/plugins/code_interpreter").await;
    assert_eq!(info["status"], "unavailable", "{info}");
    assert!(
        info["status_reason"]
            .as_str()
            .unwrap()
            .contains("code-interpreter install"),
        "{info}"
    );
    let (_, list) = app.get("/plugins").await;
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == "code_interpreter"));
    let (asst, thread) = assistant_and_thread(&app).await;
    llm.push(Reply::tool("code_interpreter", r#"{"code": "print(1)"}"#));
    llm.push(Reply::text("I could not run it."));
    let (run, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        llm.last_message_text()
            .starts_with("error: code_interpreter is not available"),
        "{}",
        llm.last_message_text()
    );
    let calls = calls(&app, &thread, &run).await;
    assert_eq!(calls[0]["code_interpreter"]["input"], "print(1)");
}

#[tokio::test]
async fn a_cell_abandoned_by_a_cancelled_run_leaves_a_working_thread() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |_| {}).await;
    let (asst, thread) = assistant_and_thread(&app).await;
    llm.push(Reply::tool("code_interpreter", r#"{"code": "s B"}"#));
    llm.push(Reply::tool("code_interpreter", r#"{"code": "l"}"#));
    let run = app
        .create(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    // Cancel while the loop runs: its call is listed just before the cell starts, and the
    // loop runs for the whole cell timeout (two minutes), so a second later it is running.
    for _ in 0..400 {
        if calls(&app, &thread, &run).await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, v) = app
        .post(&format!("/threads/{thread}/runs/{run}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    let done = app.wait_run(&thread, &run).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    // The broken session is not reused: the next call continues from the last good cell.
    llm.push(Reply::tool("code_interpreter", r#"{"code": "r"}"#));
    llm.push(Reply::text("Restored."));
    let (run, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        calls(&app, &thread, &run).await[0]["code_interpreter"]["outputs"][0]["logs"],
        "B"
    );
}

#[tokio::test]
async fn input_files_are_in_mnt_data_and_named_to_the_model() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |_| {}).await;
    let sales = app
        .upload_ok("sales.csv", "month,total\njan,3\nfeb,4\n")
        .await;
    let notes = app.upload_ok("notes.txt", "attached to a message").await;
    let unrelated = app
        .upload_ok("other.txt", "attached for file_search only")
        .await;
    let asst = app
        .create(
            "/assistants",
            json!({"model": "gpt-4o", "tools": [{"type": "code_interpreter"}],
                   "tool_resources": {"code_interpreter": {"file_ids": [sales]}}}),
        )
        .await;
    let thread = app.create("/threads", json!({})).await;
    let (s, v) = app
        .post(
            &format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": "summarise",
                   "attachments": [
                       {"file_id": notes, "tools": [{"type": "code_interpreter"}]},
                       {"file_id": unrelated, "tools": [{"type": "file_search"}]}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    llm.push(Reply::tool("code_interpreter", r#"{"code": "p ok"}"#));
    llm.push(Reply::text("Done."));
    let (_, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    // The model was told where each file is and what it is called.
    let description = description(&llm);
    assert!(
        description.contains(&format!("/mnt/data/{sales}: sales.csv")),
        "{description}"
    );
    assert!(
        description.contains(&format!("/mnt/data/{notes}: notes.txt")),
        "{description}"
    );
    assert!(!description.contains(&unrelated), "{description}");
    // And the cell ran with them in the thread's /mnt/data.
    let data = app
        .settings()
        .code_interpreter
        .sessions_dir
        .join(&thread)
        .join("data");
    assert_eq!(
        std::fs::read_to_string(data.join(&sales)).unwrap(),
        "month,total\njan,3\nfeb,4\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join(&notes)).unwrap(),
        "attached to a message"
    );
    assert!(!data.join(&unrelated).exists());
}

#[tokio::test]
async fn sandbox_links_in_an_answer_become_file_path_annotations() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |_| {}).await;
    let (asst, thread) = assistant_and_thread(&app).await;
    // The stand-in writes "aaaa" to /mnt/data/out.csv (descriptor 5 is /mnt/data here).
    llm.push(Reply::tool("code_interpreter", r#"{"code": "w5 out.csv"}"#));
    // A file outside the sandbox, linked from inside it (a guest can make symlinks).
    let data = app
        .settings()
        .code_interpreter
        .sessions_dir
        .join(&thread)
        .join("data");
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "host secret").unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(secret.path(), data.join("leak.txt")).unwrap();
    let answer = "Saved [the table](sandbox:/mnt/data/out.csv); see sandbox:/mnt/data/leak.txt and sandbox:/mnt/data/missing.csv.";
    llm.push(Reply::text(answer));
    let run = app
        .create(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let done = app.wait_run(&thread, &run).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, msgs) = app
        .get(&format!("/threads/{thread}/messages?order=desc&limit=1"))
        .await;
    let text = &msgs["data"][0]["content"][0]["text"];
    assert_eq!(text["value"], answer);
    let annotations = text["annotations"].as_array().unwrap();
    // Only the file the code wrote: not the symlink out of the sandbox, not a missing one.
    assert_eq!(annotations.len(), 1, "{annotations:?}");
    let a = &annotations[0];
    assert_eq!(a["type"], "file_path");
    assert_eq!(a["text"], "sandbox:/mnt/data/out.csv");
    let chars: Vec<char> = answer.chars().collect();
    let (start, end) = (
        a["start_index"].as_u64().unwrap() as usize,
        a["end_index"].as_u64().unwrap() as usize,
    );
    assert_eq!(
        chars[start..end].iter().collect::<String>(),
        "sandbox:/mnt/data/out.csv"
    );
    let file_id = a["file_path"]["file_id"].as_str().unwrap();
    let (_, file) = app.get(&format!("/files/{file_id}")).await;
    assert_eq!(file["purpose"], "assistants_output", "{file}");
    assert_eq!(file["filename"], "out.csv");
    let content = String::from_utf8(app.file_content(file_id).await).unwrap();
    assert_eq!(content, "aaaa");
    let (_, files) = app.get("/files?purpose=assistants_output").await;
    assert_eq!(files["data"].as_array().unwrap().len(), 1, "{files}");
}

#[tokio::test]
async fn create_thread_and_run_brings_its_own_files_and_deleting_the_thread_forgets_its_session() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |_| {}).await;
    let (asst, _) = assistant_and_thread(&app).await;
    let own = app.upload_ok("own.csv", "a,b\n1,2\n").await;
    llm.push(Reply::tool("code_interpreter", r#"{"code": "s O"}"#));
    llm.push(Reply::text("Done."));
    let (s, run) = app
        .post(
            "/threads/runs",
            json!({"assistant_id": asst,
                   "tool_resources": {"code_interpreter": {"file_ids": [own]}}}),
        )
        .await;
    assert_eq!(s, 200, "{run}");
    let thread = run["thread_id"].as_str().unwrap().to_string();
    let done = app.wait_run(&thread, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    // The run's own files replace the assistant's: named to the model, and in /mnt/data.
    let description = description(&llm);
    assert!(
        description.contains(&format!("/mnt/data/{own}: own.csv")),
        "{description}"
    );
    let settings = app.settings();
    let data = settings
        .code_interpreter
        .sessions_dir
        .join(&thread)
        .join("data");
    assert_eq!(
        std::fs::read_to_string(data.join(&own)).unwrap(),
        "a,b\n1,2\n"
    );
    // The session was snapshotted (the embedded object store is a directory), and the
    // snapshot goes with the thread.
    let stored = settings
        .storage
        .data_dir
        .join("files/code-interpreter/threads")
        .join(&thread);
    assert!(stored.join("head.json").is_file());
    let (s, v) = app.delete(&format!("/threads/{thread}")).await;
    assert_eq!(s, 200, "{v}");
    assert!(!stored.join("head.json").exists());
    assert!(!data.exists());
}

/// Under the ReAct strategy (models without native tool calling) the tool is described in the
/// prompt and called through text; the cell runs and is recorded the same way.
#[tokio::test]
async fn the_react_strategy_runs_cells_through_text() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |_| {}).await;
    let asst = app
        .create(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "code_interpreter"}],
                   "metadata": {"strategy": "react"}}),
        )
        .await;
    let thread = app.create("/threads", json!({})).await;
    llm.push(Reply::text(
        "Thought: run it.\nAction: code_interpreter\nAction Input: {\"code\": \"p 7\"}",
    ));
    llm.push(Reply::text("Thought: done.\nFinal Answer: It printed 7."));
    let (run, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    let reqs = llm.requests();
    assert!(
        reqs[0].get("tools").is_none(),
        "ReAct offers no native tools"
    );
    assert!(
        reqs[0]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("code_interpreter"),
        "{}",
        reqs[0]["messages"]
    );
    assert!(reqs[1]["messages"].to_string().contains("Observation: 7"));
    let calls = calls(&app, &thread, &run).await;
    assert_eq!(
        calls[0]["code_interpreter"],
        json!({"input": "p 7", "outputs": [{"type": "logs", "logs": "7"}]})
    );
}

#[tokio::test]
async fn a_response_shows_its_code_and_output_as_a_code_interpreter_call() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm, |_| {}).await;
    llm.push(Reply::tool("code_interpreter", r#"{"code": "p 42"}"#));
    llm.push(Reply::text("The answer is 42."));
    let (s, events) = app
        .stream(
            "/responses",
            json!({"model": "gpt-4o", "input": "Compute.", "stream": true,
                   "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}),
        )
        .await;
    assert_eq!(s, 200);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let at = |n: &str| {
        names
            .iter()
            .position(|e| *e == n)
            .unwrap_or_else(|| panic!("{n}: {names:?}"))
    };
    assert!(
        at("response.code_interpreter_call.in_progress")
            < at("response.code_interpreter_call_code.done")
    );
    assert!(
        at("response.code_interpreter_call_code.done")
            < at("response.code_interpreter_call.interpreting")
    );
    assert!(at("response.code_interpreter_call.completed") < at("response.output_text.delta"));
    let code: String = events
        .iter()
        .filter(|(e, _)| e == "response.code_interpreter_call_code.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(code, "p 42");
    let done = &events.last().unwrap().1["response"];
    let call = &done["output"][0];
    assert_eq!(call["type"], "code_interpreter_call", "{done}");
    assert!(call["id"].as_str().unwrap().starts_with("ci_"));
    assert_eq!(call["status"], "completed");
    assert_eq!(call["code"], "p 42");
    assert_eq!(call["outputs"], json!([{"type": "logs", "logs": "42"}]));
    assert_eq!(done["output"][1]["type"], "message");
    assert_eq!(llm.last_message_text(), "42");
}
