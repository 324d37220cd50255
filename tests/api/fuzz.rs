//! Property test: no request body, however malformed, makes the server answer 5xx, and every
//! error is in the OpenAI envelope.

use assistants_tests::{assert_error, json, TestApp};
use proptest::prelude::*;
use serde_json::Value;

/// Field names the endpoints know, so generated bodies reach deep validation, not just "unknown key".
const KEYS: &[&str] = &[
    "model",
    "name",
    "description",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
    "messages",
    "role",
    "content",
    "attachments",
    "file_id",
    "file_ids",
    "files",
    "chunking_strategy",
    "attributes",
    "type",
    "static",
    "max_chunk_size_tokens",
    "chunk_overlap_tokens",
    "query",
    "filters",
    "max_num_results",
    "ranking_options",
    "score_threshold",
    "expires_after",
    "anchor",
    "days",
    "filename",
    "purpose",
    "bytes",
    "mime_type",
    "part_ids",
    "function",
    "parameters",
    "file_search",
    "vector_store_ids",
    "vector_stores",
    "code_interpreter",
    "key",
    "value",
    "text",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop_oneof![
            Just("auto".to_string()),
            Just("static".to_string()),
            Just("file_search".to_string()),
            Just("user".to_string()),
            "[a-z_]{0,12}",
            ".{0,40}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

#[test]
fn no_body_makes_the_server_fail() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (app, paths) = rt.block_on(async {
        let app = TestApp::spawn().await;
        let asst = app.create("/assistants", json!({"model": "m"})).await;
        let thread = app.create("/threads", json!({"messages": [{"role": "user", "content": "x"}]})).await;
        let file = app.upload_ok("f.txt", "some text").await;
        let vs = app.create("/vector_stores", json!({"file_ids": [file]})).await;
        let upload = app.create("/uploads", json!({"filename": "u.txt", "purpose": "assistants", "bytes": 5, "mime_type": "text/plain"})).await;
        let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
        let msg = msgs["data"][0]["id"].as_str().unwrap().to_string();
        let paths = vec![
            "/assistants".to_string(),
            format!("/assistants/{asst}"),
            "/threads".to_string(),
            format!("/threads/{thread}"),
            format!("/threads/{thread}/messages"),
            format!("/threads/{thread}/messages/{msg}"),
            "/vector_stores".to_string(),
            format!("/vector_stores/{vs}"),
            format!("/vector_stores/{vs}/files"),
            format!("/vector_stores/{vs}/files/{file}"),
            format!("/vector_stores/{vs}/file_batches"),
            format!("/vector_stores/{vs}/search"),
            "/uploads".to_string(),
            format!("/uploads/{upload}/complete"),
        ];
        (app, paths)
    });
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(path in prop::sample::select(paths), body in body())| {
        let (status, v) = rt.block_on(app.post(&path, body.clone()));
        prop_assert!(status.as_u16() < 500, "POST {} {} -> {} {}", path, body, status, v);
        if status.as_u16() >= 400 {
            assert_error(&v);
        }
    });
}

/// Path segments and query values that are not ids: odd bytes, encodings, NUL, huge strings.
fn hostile_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("%00".to_string()),
        Just("asst_%00x".to_string()),
        Just("%FF%FE".to_string()),
        Just("..%2F..%2Fetc".to_string()),
        Just("%E2%82%AC".to_string()),
        Just("a".repeat(300)),
        "[a-zA-Z0-9_%-]{1,20}",
    ]
}

#[test]
fn no_path_or_query_makes_the_server_fail() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (app, vs) = rt.block_on(async {
        let app = TestApp::spawn().await;
        let vs = app.create("/vector_stores", json!({})).await;
        (app, vs)
    });
    let templates = vec![
        "GET /assistants/{}",
        "POST /assistants/{}",
        "DELETE /assistants/{}",
        "GET /threads/{}/messages",
        "GET /threads/{}/messages/{}",
        "GET /files/{}/content",
        "DELETE /files/{}",
        "GET /vector_stores/{}/files/{}",
        "POST /uploads/{}/cancel",
        "GET /assistants?after={}",
        "GET /assistants?before={}&limit={}",
        "GET /files?purpose={}&after={}",
        "GET /threads/{}/messages?run_id={}",
        "GET /vector_stores/VS/files?filter={}&after={}",
        "GET /vector_stores/VS/file_batches/{}/files",
        "POST /vector_stores/VS/search",
    ];
    let config = ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(t in prop::sample::select(templates), a in hostile_segment(), b in hostile_segment())| {
        let (method, path) = t.split_once(' ').unwrap();
        let path = path.replacen("{}", &a, 1).replacen("{}", &b, 1).replace("VS", &vs);
        let url = format!("{}{}", app.base, path);
        let (status, v) = rt.block_on(async {
            let rb = match method {
                "GET" => app.client.get(&url),
                "DELETE" => app.client.delete(&url),
                _ => app.client.post(&url).json(&json!({"query": a.clone(), "metadata": {"k": b.clone()}})),
            };
            let r = rb.bearer_auth("k").send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        });
        prop_assert!(status.as_u16() < 500, "{} {} -> {} {}", method, path, status, v);
        if status.as_u16() >= 400 {
            assert_error(&v);
        }
    });
}
