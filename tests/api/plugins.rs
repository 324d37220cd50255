//! The plugin host: built-in plugins, the extension endpoint, plugin tool types on assistants,
//! manifests and grants, and the sandbox against a deliberately hostile component.

use std::time::{Duration, Instant};

use assistants_core::plugins::bindings::{CallContext, ToolError};
use assistants_core::plugins::{error_text, PluginHost, PluginSettings};
use assistants_tests::{assert_error, json, TestApp};

const TEST_PLUGINS: &str = env!("TEST_PLUGINS_DIR");

pub(crate) fn ctx() -> CallContext {
    CallContext {
        tool_call_id: "call_test".into(),
        run_id: None,
        thread_id: None,
        assistant_id: None,
        vector_store_ids: vec![],
        options_json: "{}".into(),
    }
}

/// A run's input for stepping a strategy by hand: "Be brief." and one user message, no tools.
fn brief_input() -> assistants_core::model::engine::RunInput {
    use assistants_core::model::engine::{ChatMessage, RunInput, RunLimits};
    RunInput {
        model: "m".into(),
        instructions: "Be brief.".into(),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "hi".into(),
            tool_call_id: None,
            tool_calls: vec![],
        }],
        tools: vec![],
        tool_choice_json: "\"auto\"".into(),
        response_format_json: "\"auto\"".into(),
        limits: RunLimits {
            max_prompt_tokens: None,
            max_completion_tokens: None,
            temperature: None,
            top_p: None,
            parallel_tool_calls: true,
        },
    }
}

async fn host_with_test_plugins() -> PluginHost {
    let settings = PluginSettings {
        dir: Some(TEST_PLUGINS.into()),
        instances: Some(16),
        ..Default::default()
    };
    PluginHost::load(&settings).await.expect("plugin host")
}

/// The test plugins in a directory of their own, the hostile one's time limit set to
/// `timeout_ms`: calls that do real work before their outcome (holding 20 MiB for 300 ms,
/// growing memory to the limit) must reach it on a loaded two-core machine, where guest
/// threads run at lower priority, rather than end at the manifest's 500 ms.
pub(crate) fn test_plugins_with_timeout(timeout_ms: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(TEST_PLUGINS).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(name)).unwrap();
        }
    }
    let manifest = dir.path().join("hostile.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("timeout_ms = 500"), "{text}");
    let text = text.replace("timeout_ms = 500", &format!("timeout_ms = {timeout_ms}"));
    std::fs::write(&manifest, text).unwrap();
    dir
}

#[tokio::test]
async fn built_in_plugins_are_listed_and_usable_as_tool_types() {
    let app = TestApp::spawn().await;
    let (s, list) = app.get("/plugins").await;
    assert_eq!(s, 200, "{list}");
    let calc = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "calculator")
        .expect("calculator is built in");
    assert_eq!(calc["kind"], "tool");
    assert_eq!(calc["builtin"], true);
    assert_eq!(calc["digest"].as_str().unwrap().len(), 64);
    let tools: Vec<&str> = calc["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["calculate", "convert_units"]);
    assert_eq!(calc["tools"][0]["parameters"]["type"], "object");
    assert_eq!(app.get("/plugins/calculator").await.1["id"], "calculator");
    assert_eq!(app.get("/plugins/nope").await.0, 404);

    let (s, a) = app
        .post(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "calculator"}]}),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    let (s, e) = app
        .post(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "weather"}]}),
        )
        .await;
    assert_eq!(s, 400);
    let msg = assert_error(&e)["message"].as_str().unwrap();
    assert!(
        msg.contains("'weather'") && msg.contains("calculator"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_calculator_computes_in_the_sandbox() {
    let host = host_with_test_plugins().await;
    let calc = host.get("calculator").unwrap();
    let out = host
        .invoke(
            &calc,
            ctx(),
            "calculate",
            r#"{"expression": "(2 + 3) * sqrt(16) - 2^3"}"#,
        )
        .await
        .unwrap();
    assert_eq!(out.text, "12");
    let out = host
        .invoke(
            &calc,
            ctx(),
            "convert_units",
            r#"{"value": 100, "from": "c", "to": "f"}"#,
        )
        .await
        .unwrap();
    assert_eq!(out.text, "212 f");
    let e = host
        .invoke(&calc, ctx(), "calculate", r#"{"expression": "1 / 0"}"#)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ToolError::InvalidArguments(ref m) if m.contains("division by zero")),
        "{e:?}"
    );
    let e = host
        .invoke(&calc, ctx(), "teleport", "{}")
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::UnknownTool(_)));
    let e = host
        .invoke(
            &calc,
            ctx(),
            "calculate",
            &format!(r#"{{"expression": "{}"}}"#, "1+".repeat(600_000)),
        )
        .await
        .unwrap_err();
    assert!(
        error_text(&e).contains("at most"),
        "oversize arguments are refused before the call: {e:?}"
    );
}

#[tokio::test]
async fn hostile_calls_end_in_tool_errors_and_the_plugin_keeps_working() {
    let plugins = test_plugins_with_timeout(2000);
    let host = PluginHost::load(&PluginSettings {
        dir: Some(plugins.path().to_path_buf()),
        instances: Some(16),
        ..Default::default()
    })
    .await
    .expect("plugin host");
    let p = host
        .get("hostile")
        .expect("the hostile test plugin loads from the plugins dir");
    assert_eq!(p.limits.timeout_ms, 2000);
    // (tool, words the error must contain)
    let cases = [
        ("spin", "time limit"),
        ("sleep", "time limit"),
        ("hog", "memory limit"),
        ("read_file", "no file access"),
        ("read_env", "no environment"),
        ("open_socket", "no sockets"),
        ("huge_result", "limit is 64 KiB"),
        ("huge_error", "[truncated from 20971520 bytes]"),
        ("panic", "crashed"),
        ("deep_recursion", "stack"),
    ];
    for (tool, expected) in cases {
        let started = Instant::now();
        let result = host.invoke(&p, ctx(), tool, "{}").await;
        let elapsed = started.elapsed();
        let e = result.expect_err(tool);
        let text = error_text(&e);
        assert!(
            text.contains(expected),
            "{tool}: expected '{expected}' in '{}…'",
            &text[..text.len().min(200)]
        );
        assert!(
            text.len() <= 64 * 1024,
            "{tool}: {} bytes of error",
            text.len()
        );
        // A functional bound, not a performance target: the call must end at its deadline
        // rather than hang (generous margin for a loaded CI machine).
        assert!(elapsed < Duration::from_secs(10), "{tool} took {elapsed:?}");
        let ok = host
            .invoke(&p, ctx(), "ok", "{}")
            .await
            .expect("the next call works");
        assert_eq!(ok.text, "fine");
    }
}

#[tokio::test]
async fn manifests_must_fit_their_grants() {
    let host = host_with_test_plugins().await;
    let wasm = std::fs::read(format!("{TEST_PLUGINS}/hostile.wasm")).unwrap();
    let manifest = std::fs::read_to_string(format!("{TEST_PLUGINS}/hostile.toml")).unwrap();
    let greedy = manifest
        .replace("timeout_ms = 500", "timeout_ms = 999999")
        .replace("hosts = [\"*\"]", "hosts = [\"api.example.test\"]");
    let settings = PluginSettings::default();
    let err = format!(
        "{:#}",
        host.prepare(&wasm, &greedy, &settings, false)
            .await
            .err()
            .expect("refused")
    );
    assert!(
        err.contains("api.example.test") && err.contains("timeout_ms"),
        "every missing grant is named: {err}"
    );
    let wrong_world = manifest.replace("kind = \"tool\"", "kind = \"retrieval-tool\"");
    assert!(host
        .prepare(&wasm, &wrong_world, &settings, false)
        .await
        .is_err());
    let not_a_component = host
        .prepare(b"\0asm\x01\0\0\0", &manifest, &settings, false)
        .await;
    assert!(not_a_component.is_err());
}

/// The host loads every released contract version: the components in `tests/plugins/` are
/// built against v0.1.0 (and must stay so), the built-in ones against the newest; both kinds
/// of every world load and run side by side.
#[tokio::test]
async fn components_of_every_released_contract_version_load_and_run() {
    use assistants_core::model::engine::{Action, Event, FinishReason, LlmResult, PublishMode};
    use assistants_core::plugins::manifest::{Manifest, WitVersion};
    let host = host_with_test_plugins().await;
    let version = |id: &str| {
        let plugin = host.get(id).unwrap_or_else(|| panic!("{id} loads"));
        plugin.manifest.version().expect("a released version")
    };
    for id in ["hostile", "search-tool", "echo-strategy", "text-parser"] {
        assert_eq!(version(id), WitVersion::V0_1, "{id} is a v0.1.0 component");
    }
    for id in ["calculator", "file_search", "native", "react", "documents"] {
        assert_eq!(
            version(id),
            WitVersion::LATEST,
            "{id} is built with the SDK"
        );
    }

    // Parsers: v0.1.0 and the newest read their formats, and refuse as they say.
    let rot13 = host.get("text-parser").unwrap();
    assert_eq!(
        host.parse(&rot13, "a.rot13", b"Uryyb, jbeyq")
            .await
            .unwrap(),
        "Hello, world"
    );
    let (code, _) = host.parse(&rot13, "b.rot13", b"  ").await.unwrap_err();
    assert_eq!(code, "unsupported_file");
    assert_eq!(host.parser_for("rot13").unwrap().manifest.id, "text-parser");
    let documents = host
        .parser_for("html")
        .expect("the built-in parser reads HTML");
    let text = host
        .parse(
            &documents,
            "a.html",
            b"<html><body><p>Quokkas smile.</p></body></html>",
        )
        .await
        .unwrap();
    assert!(text.contains("Quokkas smile."), "{text}");

    // Tools: a v0.1.0 and a newest-version tool answer in the same types.
    let calc = host.get("calculator").unwrap();
    let out = host
        .invoke(&calc, ctx(), "calculate", r#"{"expression": "6 * 7"}"#)
        .await
        .unwrap();
    assert_eq!(out.text, "42");
    let e = host
        .invoke(&calc, ctx(), "calculate", r#"{"expr": "6 * 7"}"#)
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e:?}");
    let hostile = host.get("hostile").unwrap();
    assert!(host.invoke(&hostile, ctx(), "nope", "{}").await.is_err());

    // Strategies: the newest version's enums and records reach the engine's types.
    let native = host.get("native").unwrap();
    let input = brief_input();
    let first = host
        .step(&native, &input, &[], &Event::Start)
        .await
        .unwrap();
    let Action::CallLlm(request, PublishMode::Message) = &first.action else {
        panic!("expected a streamed LLM call, got {:?}", first.action)
    };
    let roles: Vec<&str> = request.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user"]);
    let cut = LlmResult {
        text: "Hel".into(),
        tool_calls: vec![],
        finish_reason: "length".into(),
        prompt_tokens: 5,
        completion_tokens: 1,
    };
    let second = host
        .step(&native, &input, &first.state, &Event::LlmCompleted(cut))
        .await
        .unwrap();
    assert!(
        matches!(
            second.action,
            Action::Finish(FinishReason::MaxCompletionTokens)
        ),
        "the stop reason arrived as `length`: {:?}",
        second.action
    );

    // A manifest must name the version the component was built against.
    let wasm = std::fs::read(format!("{TEST_PLUGINS}/text-parser.wasm")).unwrap();
    let manifest = std::fs::read_to_string(format!("{TEST_PLUGINS}/text-parser.toml")).unwrap();
    let settings = PluginSettings::default();
    let newer = manifest.replace("@0.1.0", "@0.2.0");
    let err = format!(
        "{:#}",
        host.prepare(&wasm, &newer, &settings, false)
            .await
            .err()
            .expect("refused")
    );
    assert!(
        err.contains("does not implement the world assistants:plugin/parser-plugin@0.2.0"),
        "{err}"
    );
    let unknown = manifest.replace("@0.1.0", "@0.9.0");
    let err = Manifest::parse(&unknown).unwrap_err().to_string();
    assert!(
        err.contains("expected one of") && err.contains("@0.2.0"),
        "{err}"
    );
}

/// `assistants plugins test`: fixtures run against the component as a server would load it,
/// an HTTP stub standing in for its API (the weather plugin's key injected by the host, which
/// the stub requires), and each case judged.
#[tokio::test]
async fn the_fixtures_harness_runs_cases_against_a_stub() {
    use assistants_core::plugins::BUILTIN_PLUGINS;
    use assistants_host::plugin_cli::harness::{run, Fixtures};
    let (_, wasm, manifest) = BUILTIN_PLUGINS
        .iter()
        .find(|(stem, _, _)| *stem == "weather")
        .unwrap();
    let fixtures = Fixtures::parse(
        r#"
[config]
base_url = "{stub}/api"
api_key = "k-1234"

[[http]]
path = "/api/v1/current"
body = '{"city": "Oslo", "temperature_c": -3.5, "conditions": "snow", "wind_kph": 8}'
require_headers = { authorization = "Bearer k-1234" }

[[case]]
name = "reads the API"
tool = "current_weather"
args = { city = "Oslo" }
expect = "Oslo: -3.5 °C, snow, wind 8 km/h"

[[case]]
name = "judged wrong on purpose"
tool = "current_weather"
args = { city = "Oslo" }
contains = ["sunny"]

[[case]]
name = "an error of the expected kind"
tool = "current_weather"
args = {}
error = "invalid-arguments"

[[case]]
name = "an error of another kind"
tool = "forecast"
args = '{"city": "Oslo"}'
error = "failed"
"#,
    )
    .unwrap();
    let outcomes = run(wasm, manifest, &fixtures).await.unwrap();
    let failures: Vec<Option<&str>> = outcomes.iter().map(|o| o.failure.as_deref()).collect();
    assert_eq!(failures[0], None, "{outcomes:?}");
    assert!(
        failures[1]
            .unwrap()
            .contains("does not contain [\"sunny\"]"),
        "{outcomes:?}"
    );
    assert_eq!(failures[2], None, "{outcomes:?}");
    assert!(
        failures[3]
            .unwrap()
            .starts_with("expected a failed error, got unknown-tool"),
        "{outcomes:?}"
    );

    // Without the key the stub refuses, and the case says so.
    let keyless = Fixtures::parse(
        r#"
[config]
base_url = "{stub}/api"

[[http]]
path = "/api/v1/current"
body = "{}"
require_headers = { authorization = "Bearer k-1234" }

[[case]]
name = "needs the key"
tool = "current_weather"
args = { city = "Oslo" }
contains = ["Oslo"]
"#,
    )
    .unwrap();
    let outcomes = run(wasm, manifest, &keyless).await.unwrap();
    let why = outcomes[0].failure.as_deref().expect("fails");
    assert!(why.starts_with("the call failed:"), "{why}");
    // A config key the manifest does not declare is a mistake in the fixtures.
    let typo = Fixtures::parse(
        "[config]\nbase_ur = \"x\"\n[[case]]\nname = \"a\"\ntool = \"t\"\nexpect = \"\"\n",
    )
    .unwrap();
    let e = run(wasm, manifest, &typo).await.unwrap_err().to_string();
    assert!(e.contains("base_ur"), "{e}");
}

/// `/mcp` lists and calls only the tools the caller's project may use: a plugin granted to
/// another project is neither listed nor callable (the MCP client library test, with the
/// official Python SDK, is tests/mcp/run.sh).
#[tokio::test]
async fn the_mcp_server_offers_a_project_only_its_plugins() {
    let app = TestApp::spawn_with(|s| {
        s.plugins.grants.insert(
            "calculator".into(),
            assistants_core::plugins::manifest::Grant {
                projects: Some(vec!["team-x".into()]),
                ..Default::default()
            },
        );
    })
    .await;
    let rpc = |method: &str, params: serde_json::Value| {
        app.client
            .post(format!("{}/mcp", app.root))
            .bearer_auth(&app.key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
    };
    let listed: serde_json::Value = rpc("tools/list", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"calculate"), "{names:?}");
    let called: serde_json::Value = rpc(
        "tools/call",
        json!({"name": "calculate", "arguments": {"expression": "1+1"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(
        called["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown tool: calculate"),
        "{called}"
    );
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that records each request head and answers by path:
/// `/v1/current…` with weather JSON, `/redirect` with a 302 to a private address, `/big` with
/// 1 MiB, anything else with `200 hello`.
async fn http_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                log.lock().unwrap().push(head.clone());
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body) = if path.starts_with("/v1/current") {
                    ("200 OK", "", r#"{"city":"Lisbon","temperature_c":21.5,"conditions":"sunny","wind_kph":12}"#.to_string())
                } else if path == "/redirect" {
                    (
                        "302 Found",
                        "Location: http://169.254.169.254/latest/meta-data\r\n",
                        String::new(),
                    )
                } else if path == "/echo" {
                    // Reflects the request head, as header-echo services do.
                    ("200 OK", "", head.clone())
                } else if path == "/big" {
                    ("200 OK", "", "x".repeat(1 << 20))
                } else {
                    ("200 OK", "", "hello".to_string())
                };
                let resp = format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

async fn host_with_grants(
    grants: &[(&str, assistants_core::plugins::manifest::Grant)],
) -> PluginHost {
    let settings = PluginSettings {
        dir: Some(TEST_PLUGINS.into()),
        instances: Some(16),
        grants: grants
            .iter()
            .map(|(id, g)| (id.to_string(), g.clone()))
            .collect(),
        ..Default::default()
    };
    PluginHost::load(&settings).await.expect("plugin host")
}

fn grant(hosts: &[String], private: bool) -> assistants_core::plugins::manifest::Grant {
    assistants_core::plugins::manifest::Grant {
        hosts: hosts.to_vec(),
        allow_private_addresses: private,
        ..Default::default()
    }
}

async fn fetch(host: &PluginHost, url: &str) -> Result<String, String> {
    let p = host.get("hostile").unwrap();
    host.invoke(&p, ctx(), "fetch", &json!({ "url": url }).to_string())
        .await
        .map(|o| o.text)
        .map_err(|e| error_text(&e))
}

#[tokio::test]
async fn the_weather_plugin_calls_its_api_with_a_host_side_secret() {
    let (port, seen) = http_server().await;
    let mut g = grant(&[format!("127.0.0.1:{port}")], true);
    g.config
        .insert("base_url".into(), format!("http://127.0.0.1:{port}"));
    g.config.insert("api_key".into(), "test-secret".into());
    g.secret_hosts
        .insert("api_key".into(), vec![format!("127.0.0.1:{port}")]);
    let host = host_with_grants(&[("weather", g.clone()), ("hostile", g)]).await;
    let weather = host
        .get("weather")
        .expect("the built-in weather plugin loads once granted");
    let out = host
        .invoke(&weather, ctx(), "current_weather", r#"{"city": "Lisbon"}"#)
        .await
        .unwrap();
    assert_eq!(out.text, "Lisbon: 21.5 °C, sunny, wind 12 km/h");
    let head = seen.lock().unwrap().last().cloned().unwrap();
    assert!(head.starts_with("GET /v1/current?city=Lisbon "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer test-secret"),
        "the host injected the secret: {head}"
    );
    // The secret never reaches guest memory: config.get does not return secret keys.
    let hostile = host.get("hostile").unwrap();
    let e = host
        .invoke(&hostile, ctx(), "read_secret", "{}")
        .await
        .unwrap_err();
    assert_eq!(error_text(&e), "no secret visible");
}

/// A secret goes only to the hosts it is bound to (not to every granted host, not to a
/// redirect target), and a host that echoes it hands the plugin a masked value instead.
#[tokio::test]
async fn secrets_are_bound_to_their_hosts_and_never_read_back() {
    let (port, seen) = http_server().await;
    let bound = format!("127.0.0.1:{port}");
    let other = format!("localhost:{port}");
    let mut g = grant(&[bound.clone(), other.clone()], true);
    g.config.insert("api_key".into(), "sk-bound-secret".into());
    // Bound nowhere: the plugin does not load, and the error says what to grant.
    let settings = PluginSettings {
        dir: Some(TEST_PLUGINS.into()),
        instances: Some(4),
        grants: [("hostile".to_string(), g.clone())].into(),
        ..Default::default()
    };
    let host = PluginHost::load(&settings).await.unwrap();
    assert!(host.get("hostile").is_none(), "a secret bound nowhere");
    let wasm = std::fs::read(format!("{TEST_PLUGINS}/hostile.wasm")).unwrap();
    let manifest = std::fs::read_to_string(format!("{TEST_PLUGINS}/hostile.toml")).unwrap();
    let e = host
        .prepare(&wasm, &manifest, &settings, false)
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("secret_hosts.api_key"), "{e:#}");
    // Bound to a host that is not granted: refused the same way.
    let mut stray = g.clone();
    stray
        .secret_hosts
        .insert("api_key".into(), vec!["api.elsewhere.test".into()]);
    assert!(host_with_grants(&[("hostile", stray)])
        .await
        .get("hostile")
        .is_none());

    g.secret_hosts.insert("api_key".into(), vec![bound.clone()]);
    let host = host_with_grants(&[("hostile", g)]).await;
    let echoed = fetch(&host, &format!("http://{bound}/echo")).await.unwrap();
    let sent = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        sent.contains("sk-bound-secret"),
        "injected for its host: {sent}"
    );
    assert!(!echoed.contains("sk-bound-secret"), "read back: {echoed}");
    assert!(echoed.contains("Bearer ***************"), "{echoed}");
    // Another granted host (same server, other name) never receives it.
    let echoed = fetch(&host, &format!("http://{other}/echo")).await.unwrap();
    let sent = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        !sent.to_ascii_lowercase().contains("authorization"),
        "{sent}"
    );
    assert!(echoed.starts_with("200 GET /echo"), "{echoed}");
}

#[tokio::test]
async fn outgoing_http_follows_the_grant_after_dns() {
    let (port, seen) = http_server().await;
    let local = format!("127.0.0.1:{port}");
    // Nothing granted: no HTTP at all (the imports trap), so nothing is connected.
    let host = host_with_grants(&[]).await;
    let e = fetch(&host, &format!("http://{local}/")).await.unwrap_err();
    assert!(e.contains("no network grant"), "{e}");
    // Granted, but it is a loopback address: refused without the private-address grant,
    // also when reached through a name that resolves there, and for the metadata address.
    let host = host_with_grants(&[(
        "hostile",
        grant(
            &[
                local.clone(),
                format!("localhost:{port}"),
                "169.254.169.254".into(),
            ],
            false,
        ),
    )])
    .await;
    for url in [
        format!("http://{local}/"),
        format!("http://localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data".to_string(),
    ] {
        let e = fetch(&host, &url).await.unwrap_err();
        assert!(e.contains("http refused"), "{url}: {e}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "no refused request reached the server"
    );
    // With the private-address grant the same host works; an ungranted one still does not.
    let host = host_with_grants(&[("hostile", grant(std::slice::from_ref(&local), true))]).await;
    assert_eq!(
        fetch(&host, &format!("http://{local}/")).await.unwrap(),
        "200 hello"
    );
    assert!(
        fetch(&host, &format!("http://localhost:{port}/"))
            .await
            .is_err(),
        "only the granted name"
    );
    // Redirects are not followed by the host; following one would be a new, checked request.
    assert_eq!(
        fetch(&host, &format!("http://{local}/redirect"))
            .await
            .unwrap(),
        "302 "
    );
    assert!(fetch(&host, "http://169.254.169.254/latest/meta-data")
        .await
        .is_err());
    // Response bodies are capped (the test grant leaves the default of 10 MiB; ask for less).
    let mut small = grant(std::slice::from_ref(&local), true);
    small.limits.http_max_response_kib = Some(64);
    let host = host_with_grants(&[("hostile", small)]).await;
    let e = fetch(&host, &format!("http://{local}/big"))
        .await
        .unwrap_err();
    assert!(e.contains("http body failed"), "{e}");
}

/// wasi:http resources live in host memory, outside the plugin's `memory_mib`: 20,000 header
/// maps once took the host to 2.5 GB. Ungranted, a plugin has no HTTP resources at all;
/// granted, their number and size are budgeted against its memory limit.
#[tokio::test]
async fn http_resources_are_budgeted_against_the_plugin() {
    for host in [
        host_with_grants(&[]).await,
        host_with_grants(&[("hostile", grant(&["example.com".into()], false))]).await,
    ] {
        let p = host.get("hostile").unwrap();
        let e = host
            .invoke(&p, ctx(), "hoard_fields", "{}")
            .await
            .expect_err("hoarding header maps ends in an error");
        let text = error_text(&e);
        assert!(!text.contains("kept"), "{text}");
        assert_eq!(
            host.invoke(&p, ctx(), "ok", "{}").await.unwrap().text,
            "fine"
        );
    }
    // The budget: a 32 MiB plugin holds at most 512 host resources of at most 16 KiB.
    assert_eq!(assistants_core::plugins::runtime::resource_cap(32), 512);
}

#[tokio::test]
async fn plugin_tools_are_prefixed_only_when_names_collide() {
    let host = host_with_test_plugins().await;
    let offered = host.offered_tools(
        &["calculator".into(), "hostile".into()],
        &["calculate".into()],
    );
    let names: Vec<&str> = offered.iter().map(|t| t.exposed_name.as_str()).collect();
    assert!(
        names.contains(&"calculator__calculate"),
        "a client function took the plain name: {names:?}"
    );
    assert!(
        names.contains(&"convert_units") && names.contains(&"spin"),
        "{names:?}"
    );
    assert_eq!(
        offered
            .iter()
            .find(|t| t.exposed_name == "calculator__calculate")
            .unwrap()
            .spec
            .name,
        "calculate"
    );
}

#[tokio::test]
async fn a_strategy_component_is_driven_step_by_step() {
    use assistants_core::model::engine::{Action, Event, FinishReason, LlmResult, PublishMode};
    let host = host_with_test_plugins().await;
    let s = host
        .get("echo-strategy")
        .expect("strategies load from the plugins dir");
    assert!(!s.is_tool(), "a strategy is not a tool type");
    let input = brief_input();
    let first = host.step(&s, &input, &[], &Event::Start).await.unwrap();
    assert_eq!(first.state, vec![1]);
    let Action::CallLlm(request, PublishMode::Message) = &first.action else {
        panic!("expected an LLM call")
    };
    assert_eq!(request.messages.len(), 2);
    assert_eq!(request.messages[0].content, "Be brief.");
    let done = LlmResult {
        text: "hello".into(),
        tool_calls: vec![],
        finish_reason: "stop".into(),
        prompt_tokens: 5,
        completion_tokens: 1,
    };
    let second = host
        .step(&s, &input, &first.state, &Event::LlmCompleted(done))
        .await
        .unwrap();
    assert_eq!(
        second.state,
        vec![2],
        "the state came back through the host"
    );
    assert!(matches!(
        second.action,
        Action::Finish(FinishReason::Completed)
    ));
    let err = host
        .step(&s, &input, &second.state, &Event::ToolsCompleted(vec![]))
        .await
        .unwrap_err();
    assert!(err.contains("only handles"), "{err}");
    // Strategies cannot be enabled as tools, and tools cannot be stepped.
    let app = TestApp::spawn_with(|st| st.plugins.dir = Some(TEST_PLUGINS.into())).await;
    let (status, e) = app
        .post(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "echo-strategy"}]}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    let calc = host.get("calculator").unwrap();
    assert!(host.step(&calc, &input, &[], &Event::Start).await.is_err());
}

#[tokio::test]
async fn retrieval_tools_search_only_the_stores_of_their_call() {
    let app = TestApp::spawn().await;
    let f = app
        .upload_ok("otters.txt", "Sea otters hold hands while they sleep.")
        .await;
    let other = app
        .upload_ok("bees.txt", "Bees dance to share where flowers are.")
        .await;
    let vs = app.create("/vector_stores", json!({"file_ids": [f]})).await;
    let vs_other = app
        .create("/vector_stores", json!({"file_ids": [other]}))
        .await;
    app.wait_vs(&vs).await;
    app.wait_vs(&vs_other).await;

    let store = assistants_core::store::Store::connect(&app.database_url)
        .await
        .unwrap();
    let search = std::sync::Arc::new(assistants_core::search::PluginSearch {
        store,
        indexes: Default::default(),
    });
    let settings = PluginSettings {
        dir: Some(TEST_PLUGINS.into()),
        instances: Some(16),
        ..Default::default()
    };
    let host = PluginHost::load_with(&settings, Some(search), None)
        .await
        .expect("plugin host");
    let tool = host.get("search-tool").expect("retrieval tools load");
    assert!(tool.is_tool());
    let mut call = ctx();
    call.vector_store_ids = vec![vs.clone()];
    let out = host
        .invoke(
            &tool,
            call.clone(),
            "search",
            r#"{"query": "otters sleep"}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        out.text,
        "【0:0†otters.txt】Sea otters hold hands while they sleep."
    );
    let out = host
        .invoke(&tool, call.clone(), "search", r#"{"query": "bees"}"#)
        .await
        .unwrap();
    assert_eq!(out.text, "", "the other store was not given to this call");
    let e = host
        .invoke(&tool, call, "search_elsewhere", r#"{"query": "bees"}"#)
        .await
        .unwrap_err();
    assert!(
        error_text(&e).contains("not available to this call"),
        "{e:?}"
    );
    // Searches are paid host-side: a call gets a bounded number of them.
    let mut call = ctx();
    call.vector_store_ids = vec![vs.clone()];
    let e = host
        .invoke(&tool, call, "search_flood", r#"{"query": "otters"}"#)
        .await
        .unwrap_err();
    assert!(
        error_text(&e).contains("refused after 32 searches"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_project_holds_only_its_share_of_the_pool() {
    let settings = PluginSettings {
        dir: Some(TEST_PLUGINS.into()),
        instances: Some(8),
        ..Default::default()
    };
    let host = std::sync::Arc::new(PluginHost::load(&settings).await.unwrap());
    // One project floods a plugin whose calls hang until their 500 ms limit...
    let sleepers: Vec<_> = (0..8)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                let p = host.get("hostile").unwrap();
                host.invoke_recorded(&p, Some("proj_flood"), ctx(), "sleep", "{}")
                    .await
                    .0
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...yet it holds at most a quarter of the pool (its plugin's and its project's share),
    // so another project's call gets a slot within its own limit.
    use assistants_core::plugins::manifest::Kind;
    assert!(
        host.slots_in_use(Kind::Tool) <= 2,
        "{} slots held",
        host.slots_in_use(Kind::Tool)
    );
    let calc = host.get("calculator").unwrap();
    let (out, _) = host
        .invoke_recorded(
            &calc,
            Some("proj_other"),
            ctx(),
            "calculate",
            r#"{"expression": "6 * 7"}"#,
        )
        .await;
    assert_eq!(out.expect("a slot for another project").text, "42");
    // The flooding project's own calls wait for its share (within their limit) rather than
    // failing at once.
    let (out, _) = host
        .invoke_recorded(
            &calc,
            Some("proj_flood"),
            ctx(),
            "calculate",
            r#"{"expression": "6 * 7"}"#,
        )
        .await;
    assert_eq!(out.expect("waited for the project's share").text, "42");
    for s in sleepers {
        let e = error_text(&s.await.unwrap().unwrap_err());
        assert!(e.contains("time limit") || e.contains("busy"), "{e}");
    }
}

#[tokio::test]
async fn a_replaced_plugin_stays_available_by_digest() {
    let cache = tempfile::tempdir().unwrap();
    let with = PluginSettings {
        dir: Some(TEST_PLUGINS.into()),
        instances: Some(4),
        cache_dir: Some(cache.path().into()),
        ..Default::default()
    };
    let digest = {
        let host = PluginHost::load(&with).await.unwrap();
        host.get("hostile").unwrap().digest.clone()
    };
    // The operator removes the plugin; a run pinned to its digest still gets that component.
    let without = PluginSettings {
        dir: None,
        ..with.clone()
    };
    let host = PluginHost::load(&without).await.unwrap();
    assert!(host.get("hostile").is_none());
    let pinned = host.by_digest(&digest).await.expect("archived by digest");
    assert_eq!(pinned.manifest.id, "hostile");
    assert_eq!(
        host.invoke(&pinned, ctx(), "ok", "{}").await.unwrap().text,
        "fine"
    );
    assert!(host.by_digest(&"0".repeat(64)).await.is_err());
    assert!(host.by_digest("../../etc/passwd").await.is_err());
    let calc = host.get("calculator").unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &host.by_digest(&calc.digest.clone()).await.unwrap(),
        &calc
    ));
}

/// `assistants plugins check` without an operator config: a plugin that needs hosts, config
/// and a secret is validated as if granted them, and what it needs is listed.
#[tokio::test]
async fn a_component_is_checked_without_an_operator_config() {
    use assistants_core::plugins::manifest::{requirements, sample_grant, Manifest};
    use assistants_core::plugins::BUILTIN_PLUGINS;
    let (_, wasm, manifest) = BUILTIN_PLUGINS
        .iter()
        .find(|(stem, _, _)| *stem == "weather")
        .unwrap();
    let parsed = Manifest::parse(manifest).unwrap();
    let bare = PluginSettings {
        instances: Some(4),
        ..Default::default()
    };
    let host = PluginHost::load(&bare).await.unwrap();
    assert!(
        host.prepare(wasm, manifest, &bare, false).await.is_err(),
        "with no grant it would not load"
    );
    let mut checked = bare.clone();
    checked
        .grants
        .insert(parsed.id.clone(), sample_grant(&parsed));
    let plugin = host
        .prepare(wasm, manifest, &checked, false)
        .await
        .expect("valid as if granted what it asks for");
    assert_eq!(plugin.tools[0].name, "current_weather");
    let needs = requirements(&parsed).join("\n");
    assert!(needs.contains("required config 'base_url'"), "{needs}");
    assert!(
        needs.contains("secret 'api_key'") && needs.contains("Authorization header"),
        "{needs}"
    );
    assert!(needs.contains("hosts the operator chooses"), "{needs}");
}

/// The crawler component (for vector-store crawls, called by the host; never a tool of its
/// own): a page through the granted network with its final URL after redirects, status, body,
/// links resolved to absolute URLs (base href, fragments dropped, other schemes and nofollow
/// left out) and robots meta directives; a gone page is an answer (404), not an error; an
/// ungranted host or a redirect into one is refused by the host's policy; assistants cannot
/// enable it.
#[tokio::test]
async fn the_crawler_fetches_granted_pages_with_their_links_and_is_no_assistant_tool() {
    use assistants_core::plugins::manifest::Grant;
    use axum::routing::get;
    use serde_json::Value;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let docs = "<html><head><title>Docs home</title><base href=\"/docs/\">\
        <meta name=\"robots\" content=\"noindex\"></head><body>\
        <a href=\"guide.html#setup\">Guide</a> <a href=\"../about\">About</a>\
        <a href=\"mailto:team@example.com\">Mail</a> <a rel=\"nofollow\" href=\"/login\">Login</a>\
        <a href=\"http://elsewhere.example.com/x\">Out</a> <a href=\"guide.html\">Again</a>\
        </body></html>";
    let site = axum::Router::new()
        .route(
            "/docs/index.html",
            get(move || async move { ([("content-type", "text/html")], docs) }),
        )
        .route(
            "/start",
            get(|| async {
                (
                    axum::http::StatusCode::MOVED_PERMANENTLY,
                    [("location", "/docs/index.html")],
                    "",
                )
            }),
        )
        .route(
            "/escape",
            get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "http://169.254.169.254/")],
                    "",
                )
            }),
        )
        .route(
            "/robots.txt",
            get(|| async { "User-agent: *\nDisallow: /private/\n" }),
        );
    tokio::spawn(async move { axum::serve(listener, site).await });

    let mut settings = PluginSettings {
        instances: Some(16),
        ..Default::default()
    };
    settings.grants.insert(
        "crawler".into(),
        Grant {
            hosts: vec![format!("127.0.0.1:{}", addr.port())],
            allow_private_addresses: true,
            ..Default::default()
        },
    );
    let host = PluginHost::load(&settings).await.unwrap();
    let crawler = host.get("crawler").expect("the crawler loads once granted");
    let fetch = |url: String| {
        let (host, crawler) = (&host, crawler.clone());
        async move {
            host.invoke(
                &crawler,
                ctx(),
                "fetch_page",
                &json!({"url": url}).to_string(),
            )
            .await
        }
    };
    let base = format!("http://{addr}");
    let page: Value =
        serde_json::from_str(&fetch(format!("{base}/start")).await.unwrap().text).unwrap();
    assert_eq!(page["url"], format!("{base}/docs/index.html"));
    assert_eq!(page["redirects"], json!([format!("{base}/start")]));
    assert_eq!(page["status"], 200);
    assert_eq!(page["title"], "Docs home");
    assert_eq!(
        page["links"],
        json!([
            format!("{base}/docs/guide.html"),
            format!("{base}/about"),
            "http://elsewhere.example.com/x",
        ]),
        "resolved against <base>, fragments dropped, mailto and nofollow left out, deduplicated"
    );
    assert_eq!(
        (page["noindex"].clone(), page["nofollow"].clone()),
        (json!(true), json!(false))
    );
    assert!(page["body"]
        .as_str()
        .unwrap()
        .contains("<a href=\"guide.html#setup\">"));

    let robots: Value =
        serde_json::from_str(&fetch(format!("{base}/robots.txt")).await.unwrap().text).unwrap();
    assert_eq!(robots["status"], 200);
    assert!(robots["body"]
        .as_str()
        .unwrap()
        .contains("Disallow: /private/"));
    assert!(robots.get("links").is_none(), "plain text has no links");
    let gone: Value =
        serde_json::from_str(&fetch(format!("{base}/nothing-here")).await.unwrap().text).unwrap();
    assert_eq!(gone["status"], 404, "a gone page is an answer: {gone}");

    for refused in [
        "http://elsewhere.example.com/x".to_string(),
        format!("{base}/escape"),
    ] {
        let e = fetch(refused.clone()).await.unwrap_err();
        assert!(
            error_text(&e).contains("network policy"),
            "{refused}: {}",
            error_text(&e)
        );
    }
    assert!(matches!(
        fetch("ftp://example.com/".into()).await.unwrap_err(),
        ToolError::InvalidArguments(_)
    ));

    // Assistants cannot enable it, responses neither.
    let app = TestApp::spawn_with(move |s| {
        s.plugins.grants.insert(
            "crawler".into(),
            Grant {
                hosts: vec![format!("127.0.0.1:{}", addr.port())],
                allow_private_addresses: true,
                ..Default::default()
            },
        );
    })
    .await;
    let (s, e) = app
        .post(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "crawler"}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(assert_error(&e)["param"], "tools[0].type");
    let (s, e) = app
        .post(
            "/responses",
            json!({"model": "m", "input": "x", "tools": [{"type": "crawler"}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
}
