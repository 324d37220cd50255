//! A response's event stream: OpenAI's events in their order, each `sequence_number` one above
//! the last, text and function-call arguments streamed as deltas, and the finished response
//! last (the SDKs rebuild the response from the events and check it against that); a
//! background response's stream again, whole or from a sequence number, the same every time;
//! reasoning streamed by the model as a `reasoning` item.

use assistants_tests::fake_llm::{FakeLlm, Reply};
use std::time::Duration;

use assistants_tests::json;

use super::response_runs::{setup, text_of, weather};

#[tokio::test]
async fn a_streamed_response_sends_openais_events_in_order() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("One two three."));
    let (s, evs) = app
        .stream(
            "/responses",
            json!({"model": "m", "input": "Count.", "stream": true}),
        )
        .await;
    assert_eq!(s, 200, "{evs:?}");
    let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "response.output_text.delta")
        .count();
    assert!(deltas >= 2, "{names:?}");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);
    for (i, (name, data)) in evs.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i as u64, "{name}");
    }
    let text: String = evs
        .iter()
        .filter(|(e, _)| e == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "One two three.");
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(text_of(done), text);
    let item_id = &evs[2].1["item"]["id"];
    assert_eq!(&done["output"][0]["id"], item_id);
    assert_eq!(evs[4].1["item_id"], *item_id);
    assert_eq!(evs[0].1["response"]["status"], "in_progress");
}

#[tokio::test]
async fn a_streamed_function_call_streams_its_arguments() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::tool("get_weather", r#"{"city":"Rome"}"#));
    let (_, evs) = app
        .stream(
            "/responses",
            json!({"model": "m", "input": "Rome?", "tools": [weather()], "stream": true}),
        )
        .await;
    let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ],
        "{names:?}"
    );
    assert_eq!(
        names[names.len() - 3..],
        [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ],
        "{names:?}"
    );
    let args: String = evs
        .iter()
        .filter(|(e, _)| e == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(args, r#"{"city":"Rome"}"#);
    let added = &evs[2].1["item"];
    assert_eq!(added["type"], "function_call");
    assert_eq!(added["status"], "in_progress");
    let done = &evs[evs.len() - 2].1["item"];
    assert_eq!(done["id"], added["id"]);
    assert_eq!(done["arguments"], r#"{"city":"Rome"}"#);
    let finished = &evs.last().unwrap().1["response"];
    assert_eq!(finished["output"][0], *done);
}

#[tokio::test]
async fn a_background_response_streams_again_from_any_point() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("One two three four five.").chunk_delay(Duration::from_millis(20)));
    let (s, first) = app
        .stream(
            "/responses",
            json!({"model": "m", "input": "Count.", "background": true, "stream": true}),
        )
        .await;
    assert_eq!(s, 200, "{first:?}");
    let names: Vec<&str> = first.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names[..3],
        [
            "response.created",
            "response.queued",
            "response.in_progress"
        ],
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"response.completed"));
    let id = first[0].1["response"]["id"].as_str().unwrap().to_string();

    // The whole stream again: the same events, numbered the same.
    let (s, again) = app
        .get_stream(&format!("/responses/{id}?stream=true"))
        .await;
    assert_eq!(s, 200, "{again:?}");
    assert_eq!(again, first);
    // From the middle: what follows the given sequence number.
    let (_, rest) = app
        .get_stream(&format!("/responses/{id}?stream=true&starting_after=4"))
        .await;
    assert_eq!(rest, first[5..]);

    // A stream joined while the response runs gets everything from its start, then the rest
    // live, without a gap or a repeat.
    llm.push(Reply::text("Slowly but surely done.").chunk_delay(Duration::from_millis(100)));
    let (_, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Slow.", "background": true}),
        )
        .await;
    let id = r["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, joined) = app
        .get_stream(&format!("/responses/{id}?stream=true"))
        .await;
    for (i, (name, data)) in joined.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64, "{name}: {joined:?}");
    }
    let text: String = joined
        .iter()
        .filter(|(e, _)| e == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Slowly but surely done.");
    let done = &joined.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed", "{joined:?}");
    assert_eq!(text_of(done), text);

    // Only background responses are recorded.
    llm.push(Reply::text("now"));
    let (_, fg) = app
        .post("/responses", json!({"model": "m", "input": "Now."}))
        .await;
    let (s, e) = app
        .get(&format!(
            "/responses/{}?stream=true",
            fg["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assistants_tests::assert_error(&e)["param"], "stream");
}

#[tokio::test]
async fn reasoning_the_model_streams_becomes_a_reasoning_item_before_its_answer() {
    let llm = FakeLlm::start().await;
    let app = setup(&llm).await;
    llm.push(Reply::text("Paris.").reasoning("France's capital is Paris."));
    let (_, evs) = app
        .stream(
            "/responses",
            json!({"model": "m", "input": "Capital of France?", "stream": true}),
        )
        .await;
    let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "response.reasoning_text.delta")
        .count();
    assert!(deltas >= 2, "{names:?}");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.reasoning_text.delta", deltas));
    expected.extend([
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);
    let reasoning = &evs[2].1["item"];
    assert_eq!(reasoning["type"], "reasoning");
    assert!(reasoning["id"].as_str().unwrap().starts_with("rs_"));
    let streamed: String = evs
        .iter()
        .filter(|(e, _)| e == "response.reasoning_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, "France's capital is Paris.");
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["id"], reasoning["id"]);
    assert_eq!(
        done["output"][0]["content"][0]["text"],
        "France's capital is Paris."
    );
    assert_eq!(done["output"][0], evs[4 + deltas + 2].1["item"]);
    assert_eq!(text_of(done), "Paris.");

    // Before a function call too; and the next request does not send it back to the model.
    llm.push(Reply::tool("get_weather", r#"{"city":"Rome"}"#).reasoning("I need the weather."));
    let (_, r) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "Rome?", "tools": [weather()]}),
        )
        .await;
    let kinds: Vec<&str> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "function_call"], "{r}");
    llm.push(Reply::text("Sunny."));
    let call_id = r["output"][1]["call_id"].as_str().unwrap();
    let (s, _) = app
        .post(
            "/responses",
            json!({"model": "m", "previous_response_id": r["id"], "tools": [weather()],
                   "input": [{"type": "function_call_output", "call_id": call_id, "output": "sun"}]}),
        )
        .await;
    assert_eq!(s, 200);
    let sent = llm.last_request();
    assert!(!sent.to_string().contains("I need the weather"), "{sent}");
}
