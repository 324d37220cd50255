//! The plugin host: built-in plugins, the extension endpoint, plugin tool types on assistants,
//! manifests and grants, and the sandbox against a deliberately hostile component.

use std::time::{Duration, Instant};

use assistants_host::plugins::bindings::{CallContext, ToolError};
use assistants_host::plugins::{error_text, PluginHost, PluginSettings};
use assistants_tests::{assert_error, json, TestApp};

const TEST_PLUGINS: &str = env!("TEST_PLUGINS_DIR");

fn ctx() -> CallContext {
    CallContext {
        tool_call_id: "call_test".into(),
        run_id: None,
        thread_id: None,
        assistant_id: None,
        vector_store_ids: vec![],
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
    let host = host_with_test_plugins().await;
    let p = host
        .get("hostile")
        .expect("the hostile test plugin loads from the plugins dir");
    assert_eq!(p.limits.timeout_ms, 500);
    // (tool, words the error must contain)
    let cases = [
        ("spin", "time limit"),
        ("sleep", "time limit"),
        ("hog", "memory limit"),
        ("read_file", "no file access"),
        ("read_env", "no environment"),
        ("open_socket", "no sockets"),
        ("huge_result", "limit is 64 KiB"),
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
            "{tool}: expected '{expected}' in '{text}'"
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
    let greedy = manifest.replace("timeout_ms = 500", "timeout_ms = 999999")
        + "\n[network]\nhosts = [\"api.example.test\"]\n";
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
