//! Hostile `multipart/form-data`: oversized text fields, big unknown parts, endless part
//! headers, too many parts — each refused with a clear 400 while the server reads it in bounded
//! memory — and a property test that no form, however shaped, makes the server fail or store a
//! file other than the one sent.

use assistants_tests::{assert_error, TestApp};
use axum::body::Bytes;
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;

const BOUNDARY: &str = "hostile-boundary-7f3a";

/// One part of a hand-built form: its headers and its body, sent in 64 KiB chunks.
struct RawPart {
    headers: String,
    body: Vec<u8>,
}

fn field(name: &str, body: impl Into<Vec<u8>>) -> RawPart {
    RawPart {
        headers: format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        body: body.into(),
    }
}

fn file(name: &str, filename: &str, body: impl Into<Vec<u8>>) -> RawPart {
    RawPart {
        headers: format!(
            "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n"
        ),
        body: body.into(),
    }
}

/// The form's bytes as a stream of chunks, as a client streaming a large body sends them.
fn form_body(parts: Vec<RawPart>) -> reqwest::Body {
    let mut chunks: Vec<Bytes> = Vec::new();
    for p in parts {
        chunks.push(format!("--{BOUNDARY}\r\n{}\r\n", p.headers).into());
        for c in p.body.chunks(64 * 1024) {
            chunks.push(Bytes::copy_from_slice(c));
        }
        chunks.push("\r\n".into());
    }
    chunks.push(format!("--{BOUNDARY}--\r\n").into());
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    reqwest::Body::wrap_stream(stream)
}

async fn post_form(app: &TestApp, path: &str, body: reqwest::Body) -> (StatusCode, Value) {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(&app.key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .expect("the server answers instead of dropping the connection");
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn message(v: &Value) -> String {
    assert_error(v)["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_oversized_text_field_is_refused_by_name() {
    let app = TestApp::spawn().await;
    let huge = "a".repeat(4 * 1024 * 1024);
    let (s, e) = post_form(
        &app,
        "/files",
        form_body(vec![field("purpose", huge), file("file", "a.txt", "hi")]),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "purpose", "{e}");
    assert!(message(&e).contains("longer than 65536 bytes"), "{e}");

    let (s, e) = post_form(
        &app,
        "/files",
        form_body(vec![
            field("purpose", "assistants"),
            field("expires_after[seconds]", "9".repeat(100_000)),
            file("file", "a.txt", "hi"),
        ]),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "expires_after.seconds", "{e}");
    assert_eq!(app.get("/files").await.1["data"], serde_json::json!([]));
}

#[tokio::test]
async fn unknown_parts_are_ignored_only_within_a_budget() {
    let app = TestApp::spawn().await;
    // Small unknown parts are ignored like unknown JSON keys.
    let (s, f) = post_form(
        &app,
        "/files",
        form_body(vec![
            field("purpose", "assistants"),
            field("user", "someone"),
            file("file", "a.txt", "hello"),
        ]),
    )
    .await;
    assert_eq!(s, 200, "{f}");
    // A big one is refused: the server does not read megabytes it will throw away.
    let (s, e) = post_form(
        &app,
        "/files",
        form_body(vec![
            field("purpose", "assistants"),
            field("junk", vec![b'x'; 3 * 1024 * 1024]),
            file("file", "b.txt", "hello"),
        ]),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(message(&e).contains("unknown parts exceed"), "{e}");
    // The same rule holds for upload parts.
    let upload = app
        .create(
            "/uploads",
            serde_json::json!({"filename": "u.txt", "purpose": "assistants", "bytes": 5, "mime_type": "text/plain"}),
        )
        .await;
    let (s, e) = post_form(
        &app,
        &format!("/uploads/{upload}/parts"),
        form_body(vec![
            field("junk", vec![b'x'; 3 * 1024 * 1024]),
            file("data", "blob", "hello"),
        ]),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(message(&e).contains("unknown parts exceed"), "{e}");
    let (_, files) = app.get("/files").await;
    assert_eq!(files["data"].as_array().unwrap().len(), 1, "{files}");
}

/// A file over the upload limit is answered 413 while the client is still sending, and the
/// rest of its body is drained (up to 8 MiB) so the client reads that answer instead of a
/// broken connection.
#[tokio::test]
async fn a_file_over_the_limit_is_answered_not_cut_off() {
    let app = TestApp::spawn_with(|s| s.max_upload_bytes = 1024 * 1024).await;
    let (s, e) = post_form(
        &app,
        "/files",
        form_body(vec![
            field("purpose", "assistants"),
            file("file", "big.bin", vec![b'b'; 9 * 1024 * 1024]),
        ]),
    )
    .await;
    assert_eq!(s, 413, "{e}");
    assert_eq!(assert_error(&e)["code"], "file_too_large");
}

#[tokio::test]
async fn endless_part_headers_are_cut_off() {
    let app = TestApp::spawn().await;
    let header = format!(
        "Content-Disposition: form-data; name=\"purpose\"\r\nX-Padding: {}",
        "p".repeat(1536 * 1024)
    );
    // The header block never reaches its blank line within the limit.
    let parts = vec![RawPart {
        headers: header,
        body: b"assistants".to_vec(),
    }];
    let (s, e) = post_form(&app, "/files", form_body(parts)).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        message(&e).contains("part headers or framing exceed"),
        "{e}"
    );
}

#[tokio::test]
async fn too_many_parts_are_refused() {
    let app = TestApp::spawn().await;
    let mut parts: Vec<RawPart> = (0..40).map(|i| field(&format!("f{i}"), "x")).collect();
    parts.push(field("purpose", "assistants"));
    parts.push(file("file", "a.txt", "hello"));
    let (s, e) = post_form(&app, "/files", form_body(parts)).await;
    assert_eq!(s, 400, "{e}");
    assert!(message(&e).contains("more than 16 parts"), "{e}");
}

#[derive(Debug, Clone)]
enum GenPart {
    Purpose(String),
    Expires(String),
    File(String, Vec<u8>),
    Unknown(String, usize),
}

fn gen_part() -> impl Strategy<Value = GenPart> {
    prop_oneof![
        prop_oneof![
            Just("assistants".to_string()),
            Just("vision".to_string()),
            "[a-z\\-]{0,12}",
            (0usize..70_000).prop_map(|n| "a".repeat(n)),
        ]
        .prop_map(GenPart::Purpose),
        prop_oneof![Just("3600".to_string()), "[0-9]{0,8}", "[^\\r\\n]{0,20}"]
            .prop_map(GenPart::Expires),
        (
            prop_oneof![
                Just("a.txt".to_string()),
                Just("".to_string()),
                "[a-zA-Z0-9._/\\\\]{1,20}"
            ],
            prop::collection::vec(any::<u8>(), 0..200_000),
        )
            .prop_map(|(n, b)| GenPart::File(n, b)),
        ("[a-z]{1,10}", 0usize..1_500_000).prop_map(|(n, len)| GenPart::Unknown(n, len)),
    ]
}

fn raw(p: &GenPart) -> RawPart {
    match p {
        GenPart::Purpose(v) => field("purpose", v.as_bytes()),
        GenPart::Expires(v) => field("expires_after[seconds]", v.as_bytes()),
        GenPart::File(name, body) => file("file", name, body.clone()),
        GenPart::Unknown(name, len) => field(&format!("x-{name}"), vec![b'u'; *len]),
    }
}

/// Any form gets a 2xx with exactly the file sent, or a 4xx in the error envelope; never a 5xx.
#[test]
fn any_form_is_answered_cleanly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(TestApp::spawn());
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(parts in prop::collection::vec(gen_part(), 0..6))| {
        let body = form_body(parts.iter().map(raw).collect());
        let (status, v) = rt.block_on(post_form(&app, "/files", body));
        prop_assert!(status.as_u16() < 500, "{:?} -> {} {}", parts, status, v);
        if status.is_success() {
            let sent = parts.iter().find_map(|p| match p {
                GenPart::File(_, b) => Some(b.clone()),
                _ => None,
            });
            prop_assert!(sent.is_some(), "accepted a form without a file: {}", v);
            let id = v["id"].as_str().unwrap().to_string();
            let got = rt.block_on(async {
                app.client
                    .get(app.url(&format!("/files/{id}/content")))
                    .bearer_auth(&app.key)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
            });
            prop_assert_eq!(got.as_ref(), &sent.unwrap()[..]);
        } else {
            assert_error(&v);
        }
    });
}
