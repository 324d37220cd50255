//! The HTTP server's own limits: a connection cap, and a header-read / idle timeout that
//! closes connections which send nothing (or headers a byte at a time).

use std::time::Duration;

use assistants_tests::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(app: &TestApp) -> String {
    app.root.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let app = TestApp::spawn_with(|s| s.connections.idle_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(addr(&app)).await.unwrap();
    slow.write_all(b"GET /v1/assistants HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    // Functional bound, not a timing target: the server closes it rather than waiting forever.
    let read = tokio::time::timeout(Duration::from_secs(30), slow.read(&mut buf))
        .await
        .expect("the server closed the slow connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // A keep-alive connection that goes quiet after its request is closed the same way.
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closed the idle connection");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_a_slot_frees() {
    let app = TestApp::spawn_with(|s| {
        s.connections.max_connections = 3;
        s.connections.idle_timeout = Duration::from_secs(120);
    })
    .await;
    // Three silent clients take every slot (the test client's pooled connection may hold one
    // already; then the third waits in the backlog, which changes nothing below).
    let mut hogs = Vec::new();
    for _ in 0..3 {
        hogs.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let url = format!("{}/healthz", app.root);
    // Refused service shows as no answer: the connection is not accepted while all slots are
    // taken (a slower machine only makes that more certain).
    let blocked = fresh()
        .get(&url)
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(blocked.is_err(), "answered beyond the cap: {blocked:?}");
    drop(hogs);
    let r = fresh()
        .get(&url)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("served once the silent clients left");
    assert!(r.status().is_success());
}

/// A body refused before it was read to its end ends its connection, and the response says so:
/// a client that had already written the whole body would otherwise reuse the connection and
/// lose its next request (seen as broken pipes by the soak benchmark). A body read in full
/// keeps the connection, error or not.
#[tokio::test]
async fn a_response_to_an_unread_body_closes_its_connection() {
    let app = TestApp::spawn_with(|s| s.max_json_bytes = 1024).await;
    let post = |body: String| {
        app.client
            .post(app.url("/assistants"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let big = post(format!(
        r#"{{"model": "m", "instructions": "{}"}}"#,
        "x".repeat(64 * 1024)
    ))
    .await
    .unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(big.headers()["connection"], "close");
    let invalid = post(r#"{"model": 5}"#.into()).await.unwrap();
    assert_eq!(invalid.status(), 400);
    assert!(invalid.headers().get("connection").is_none());
    let ok = post(r#"{"model": "m"}"#.into()).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().get("connection").is_none());
}

/// A body that stops arriving fails once it has paused for the idle timeout: a client sending a
/// byte a minute cannot hold its connection and request open for as long as it likes.
#[tokio::test]
async fn a_request_body_that_stops_arriving_is_given_up() {
    let app = TestApp::spawn_with(|s| s.connections.idle_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(addr(&app)).await.unwrap();
    slow.write_all(
        b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"model\": ",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // Functional bound, not a timing target: the server answers and closes rather than wait.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server gave up on the stalled body");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
}
