//! Hostile plugins against the whole server: what a misbehaving tool does to a run stays
//! inside that run's limits (the sandbox itself is tested in `plugins.rs`).

use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::{json, TestApp};

const TEST_PLUGINS: &str = env!("TEST_PLUGINS_DIR");

#[tokio::test]
async fn a_huge_tool_error_is_truncated_and_the_run_goes_on() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool("huge_error", "{}"));
    llm.push(Reply::text("The tool failed."));
    let app = TestApp::spawn_with_llm(&llm, |s| s.plugins.dir = Some(TEST_PLUGINS.into())).await;
    let asst = app
        .create(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "hostile"}]}),
        )
        .await;
    let thread = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "go"}]}),
        )
        .await;
    let (run, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run}/steps?order=asc"))
        .await;
    let output = steps["data"][0]["step_details"]["tool_calls"][0]["function"]["output"]
        .as_str()
        .unwrap()
        .to_string();
    // The manifest's max_result_kib (64) bounds the error as it bounds a result.
    assert!(
        output.len() <= 64 * 1024 + 64,
        "{} bytes stored",
        output.len()
    );
    assert!(
        output.contains("[truncated from 20971520 bytes]"),
        "…{}",
        &output[output.len() - 80..]
    );
    let sent = llm.last_message_text();
    assert!(
        sent.len() <= 64 * 1024 + 64,
        "{} bytes sent to the model",
        sent.len()
    );
}

/// A thread may hold thousands of 256,000-character messages; a run reads its history newest
/// first within a byte budget (8 MiB) instead of loading all of it into every step.
#[tokio::test]
async fn a_huge_history_is_read_within_a_byte_budget() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("ok"));
    let app = TestApp::spawn_with_llm(&llm, |_| {}).await;
    let asst = app.create("/assistants", json!({"model": "m"})).await;
    let thread = app.create("/threads", json!({})).await;
    let big = "x".repeat(255_990);
    for i in 0..40 {
        app.create(
            &format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": format!("{i:04} {big}")}),
        )
        .await;
    }
    let (_, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    let sent: Vec<String> = llm.last_request()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap()[..4].to_string())
        .collect();
    // 8 MiB holds 32 of these; the newest are kept, in order.
    assert_eq!(sent.len(), 32, "{sent:?}");
    assert_eq!(sent.first().unwrap(), "0008");
    assert_eq!(sent.last().unwrap(), "0039");
}

/// History is read a page at a time (newest first): a thread longer than one page reaches the
/// model whole and in order.
#[tokio::test]
async fn a_long_history_is_read_page_by_page() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("ok"));
    let app = TestApp::spawn_with_llm(&llm, |_| {}).await;
    let asst = app.create("/assistants", json!({"model": "m"})).await;
    let thread = app.create("/threads", json!({})).await;
    for i in 0..120 {
        app.create(
            &format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": format!("{i:04}")}),
        )
        .await;
    }
    let (_, done) = app.run_to_end(&thread, &asst).await;
    assert_eq!(done["status"], "completed", "{done}");
    let sent: Vec<String> = llm.last_request()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..120).map(|i| format!("{i:04}")).collect();
    assert_eq!(sent, expected);
}

/// The compile cache and the archive live in the data directory; an attacker who can write
/// there must not get code run as another plugin. A swapped `.cwasm` is compiled again, a
/// swapped archive entry is refused, and the directories are private.
#[tokio::test]
async fn swapped_cache_files_are_not_trusted() {
    use assistants_core::plugins::{PluginHost, PluginSettings};
    let cache = tempfile::tempdir().unwrap();
    let key = tempfile::tempdir().unwrap();
    let settings = PluginSettings {
        dir: Some(TEST_PLUGINS.into()),
        instances: Some(4),
        cache_dir: Some(cache.path().join("plugin-cache")),
        cache_key_file: Some(key.path().join("cache.key")),
        ..Default::default()
    };
    use super::plugins::ctx;
    let (calc, hostile) = {
        let host = PluginHost::load(&settings).await.unwrap();
        let digest = |id: &str| host.get(id).unwrap().digest.clone();
        (digest("calculator"), digest("hostile"))
    };
    let dir = cache.path().join("plugin-cache");
    let compiled = |digest: &str| {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                name.starts_with(digest) && name.ends_with(".cwasm")
            })
            .unwrap_or_else(|| panic!("no cached component for {digest}"))
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "cache dir mode {mode:o}");
    }
    // The hostile component's compiled code, put where the calculator's belongs.
    std::fs::copy(compiled(&hostile), compiled(&calc)).unwrap();
    let host = PluginHost::load(&settings).await.unwrap();
    let calculator = host.get("calculator").unwrap();
    assert_eq!(calculator.digest, calc);
    let out = host
        .invoke(
            &calculator,
            ctx(),
            "calculate",
            r#"{"expression":"(2+3)*4"}"#,
        )
        .await
        .expect("the calculator, compiled again, not the swapped code");
    assert_eq!(out.text, "20");

    // The archive serves runs pinned to a plugin no longer installed: an entry edited there
    // (a manifest asking for more, a component swapped for another) is refused.
    let archive = dir.join("archive");
    let without = PluginSettings {
        dir: None,
        ..settings.clone()
    };
    let manifest = archive.join(format!("{hostile}.toml"));
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        original.replace("timeout_ms = 500", "timeout_ms = 5000"),
    )
    .unwrap();
    refused(&PluginHost::load(&without).await.unwrap(), &hostile).await;
    std::fs::write(&manifest, &original).unwrap();
    let host = PluginHost::load(&without).await.unwrap();
    let pinned = host
        .by_digest(&hostile)
        .await
        .expect("the intact entry loads");
    assert_eq!(pinned.limits.timeout_ms, 500);
    std::fs::copy(
        archive.join(format!("{calc}.wasm")),
        archive.join(format!("{hostile}.wasm")),
    )
    .unwrap();
    refused(&PluginHost::load(&without).await.unwrap(), &hostile).await;
}

async fn refused(host: &assistants_core::plugins::PluginHost, digest: &str) {
    let e = host.by_digest(digest).await.err().expect("refused");
    assert!(format!("{e:#}").contains("integrity"), "{e:#}");
}

/// Every call gets fresh memory: what one call left in its statics or its heap is gone for the
/// next, whether the freed pool slot was reset in place or decommitted (plugins/runtime.rs).
#[tokio::test]
async fn a_call_never_sees_what_an_earlier_call_left_in_memory() {
    use assistants_core::plugins::{PluginHost, PluginSettings};
    let host = PluginHost::load(&PluginSettings {
        dir: Some(TEST_PLUGINS.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let hostile = host.get("hostile").unwrap();
    for _ in 0..3 {
        let out = host
            .invoke(&hostile, super::plugins::ctx(), "remember", "{}")
            .await
            .expect("the call succeeds");
        assert_eq!(out.text, "counter 0, far byte 0");
    }
}

/// Each call stays within its own memory limit, yet together they would take more than the
/// host gave plugins: the call that would go over fails (and says why), the others finish,
/// and the budget is whole again afterwards.
#[tokio::test]
async fn concurrent_calls_share_one_memory_budget() {
    use assistants_core::plugins::{PluginHost, PluginSettings};
    let plugins = super::plugins::test_plugins_with_timeout(2000);
    let host = PluginHost::load(&PluginSettings {
        dir: Some(plugins.path().to_path_buf()),
        // A plugin may hold a quarter of the slots: two calls of it at once.
        instances: Some(8),
        memory_budget_mib: Some(40),
        ..Default::default()
    })
    .await
    .unwrap();
    let host = std::sync::Arc::new(host);
    let hostile = host.get("hostile").unwrap();
    let call = |host: std::sync::Arc<PluginHost>| {
        let hostile = hostile.clone();
        async move {
            host.invoke(&hostile, super::plugins::ctx(), "hold", "{}")
                .await
        }
    };
    let first = tokio::spawn(call(host.clone()));
    // The first call holds its 20 MiB by the time the second asks for as much.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let second = call(host.clone()).await;
    let e = second.expect_err("over the budget");
    assert!(
        assistants_core::plugins::error_text(&e).contains("taken by other calls"),
        "{e:?}"
    );
    let first = first.await.unwrap().expect("within the budget");
    assert!(first.text.starts_with("held"), "{}", first.text);
    assert_eq!(
        host.memory_in_use().0,
        0,
        "every call's memory was refunded"
    );
    let again = call(host.clone()).await.expect("the budget is free again");
    assert!(again.text.starts_with("held"));
}
