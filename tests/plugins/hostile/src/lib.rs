//! Every tool of this component misbehaves in one way; the host tests (tests/api/plugins.rs)
//! check each ends in the expected `tool-error`, within its limit, and that the next call of
//! the same plugin still works. A tool that *succeeds* in escaping returns what it got, so a
//! leak shows up as an `Ok` the test rejects.

wit_bindgen::generate!({ world: "tool-plugin", path: "../../../wit/v0.1.0" });

use exports::assistants::plugin::tool::{CallContext, Guest, ToolError, ToolOutput, ToolSpec};

struct Hostile;

const TOOLS: &[&str] = &[
    "ok",
    "spin",
    "hog",
    "read_file",
    "read_env",
    "open_socket",
    "huge_result",
    "panic",
    "sleep",
    "deep_recursion",
    "fetch",
    "read_secret",
    "huge_error",
    "hoard_fields",
    "hold",
    "remember",
];

fn ok(text: String) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput {
        text,
        annotations: vec![],
    })
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        std::hint::black_box(recurse(n - 1) + 1)
    }
}

impl Guest for Hostile {
    fn describe() -> Vec<ToolSpec> {
        TOOLS
            .iter()
            .map(|name| ToolSpec {
                name: name.to_string(),
                description: format!("hostile test tool {name}"),
                parameters_json: r#"{"type":"object","properties":{}}"#.into(),
                strict: false,
            })
            .collect()
    }

    fn invoke(_ctx: CallContext, name: String, args: String) -> Result<ToolOutput, ToolError> {
        match name.as_str() {
            "ok" => ok("fine".into()),
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "hog" => {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                loop {
                    keep.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&keep);
                }
            }
            "read_file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(leaked) => ok(leaked),
                Err(e) => Err(ToolError::Failed(format!("no file access: {e}"))),
            },
            "read_env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                let args: Vec<String> = std::env::args().collect();
                if vars.is_empty() && args.is_empty() {
                    Err(ToolError::Failed("no environment or arguments".into()))
                } else {
                    ok(format!("{vars:?} {args:?}"))
                }
            }
            "open_socket" => match std::net::TcpStream::connect("127.0.0.1:5432") {
                Ok(_) => ok("connected to the host's PostgreSQL".into()),
                Err(e) => Err(ToolError::Failed(format!("no sockets: {e}"))),
            },
            "huge_result" => ok("x".repeat(10 << 20)),
            "huge_error" => Err(ToolError::Failed("e".repeat(20 << 20))),
            // Host-side memory through wasi:http: 20,000 header maps of ~8 KiB, all kept.
            "hoard_fields" => {
                use wasip2::http::types::Fields;
                let value = vec![b'v'; 8 * 1024];
                let mut kept = Vec::new();
                for n in 0..20_000 {
                    match Fields::from_list(&[("x-hoard".to_string(), value.clone())]) {
                        Ok(f) => kept.push(f),
                        Err(e) => {
                            return Err(ToolError::Failed(format!(
                                "refused after {n} fields: {e:?}"
                            )))
                        }
                    }
                }
                ok(format!("kept {} fields", kept.len()))
            }
            // Takes 20 MiB (within its own limit) and keeps it for 300 ms: many such calls at
            // once are what the host's memory budget bounds.
            "hold" => {
                let held = vec![1u8; 20 << 20];
                std::thread::sleep(std::time::Duration::from_millis(300));
                ok(format!("held {} bytes", std::hint::black_box(&held).len()))
            }
            // Reports what an earlier call left in this component's memory, then leaves its
            // own marks: a static counter (in the data section, among the pages a freed pool
            // slot resets in place) and a byte 8 MiB up the heap (past them: decommitted).
            // Each call must find neither: its sandbox is fresh.
            "remember" => {
                use std::sync::atomic::{AtomicU64, Ordering};
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                let before = COUNTER.fetch_add(1, Ordering::SeqCst);
                let mut far = vec![0u8; 8 << 20];
                let last = far.len() - 1;
                let p = std::hint::black_box(far.as_mut_ptr());
                // SAFETY: `last` is inside `far`; volatile so the compiler cannot assume the
                // zeroed allocation's contents.
                let found = unsafe {
                    let found = p.add(last).read_volatile();
                    p.add(last).write_volatile(0xAB);
                    found
                };
                ok(format!("counter {before}, far byte {found}"))
            }
            "panic" => panic!("the hostile plugin panics on purpose"),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(30));
                ok("woke up".into())
            }
            "deep_recursion" => ok(recurse(u64::MAX).to_string()),
            // GET the URL in the arguments; succeeds only where the grant allows.
            "fetch" => {
                let url = args.split('"').nth(3).unwrap_or_default().to_string();
                wstd::runtime::block_on(async move {
                    let request = wstd::http::Request::get(url.as_str())
                        .body(wstd::http::Body::empty())
                        .map_err(|e| ToolError::Failed(format!("bad request: {e}")))?;
                    let mut response = wstd::http::Client::new()
                        .send(request)
                        .await
                        .map_err(|e| ToolError::Failed(format!("http refused: {e:?}")))?;
                    let status = response.status().as_u16();
                    let body = response
                        .body_mut()
                        .str_contents()
                        .await
                        .map_err(|e| ToolError::Failed(format!("http body failed: {e:?}")))?;
                    ok(format!("{status} {body}"))
                })
            }
            // Secrets are injected by the host and never readable through config.
            "read_secret" => match assistants::plugin::config::get("api_key") {
                Some(leaked) => ok(leaked),
                None => Err(ToolError::Failed("no secret visible".into())),
            },
            other => Err(ToolError::UnknownTool(other.into())),
        }
    }
}

export!(Hostile);
