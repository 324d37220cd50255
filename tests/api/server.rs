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
