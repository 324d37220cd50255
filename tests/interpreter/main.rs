//! The real code interpreter (CPython with numpy, pandas and matplotlib, in WebAssembly) under
//! the host's limits. Needs the installed artifact, so it is not part of `cargo test
//! --workspace`: `.ci/run` installs it (`assistants code-interpreter install`, cached across
//! runs) and runs `cargo test -p assistants-tests --test interpreter` with
//! `ASSISTANTS_CODE_INTERPRETER_DIR` (and `ASSISTANTS_PLUGIN_CACHE_KEY_FILE`, the key the
//! install compiled it under). Without them every test fails and says so.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use assistants_core::interpreter::artifact::Installed;
use assistants_core::interpreter::engine;
use assistants_core::interpreter::session::{CellStatus, Mounts, Python, Session, SessionLimits};
use assistants_core::plugins::cache::CacheKey;

const CELL: Duration = Duration::from_secs(60);

/// The installed interpreter, compiled (mapped from the install's cache), once per process.
fn python() -> &'static (Python, Installed) {
    static PYTHON: OnceLock<(Python, Installed)> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let dir = std::env::var_os("ASSISTANTS_CODE_INTERPRETER_DIR").expect(
            "ASSISTANTS_CODE_INTERPRETER_DIR names the directory of \
             `assistants code-interpreter install --dir DIR`",
        );
        let installed = Installed::find(&PathBuf::from(dir)).expect("an installed interpreter");
        let key_file = std::env::var_os("ASSISTANTS_PLUGIN_CACHE_KEY_FILE").map(PathBuf::from);
        let key = CacheKey::load(key_file.as_deref());
        let engine = engine::engine().unwrap();
        let module = engine::compiled(&engine, &installed, &key).unwrap();
        (Python::link(&engine, &module).unwrap(), installed)
    })
}

fn limits() -> SessionLimits {
    SessionLimits {
        memory_bytes: 512 << 20,
        open_files: 64,
        output_bytes: 64 << 10,
    }
}

async fn session(dir: &std::path::Path) -> Session {
    let (python, installed) = python();
    let mounts = Mounts {
        installed: installed.clone(),
        tmp: dir.join("tmp"),
        data: dir.join("data"),
    };
    Session::start(python, &mounts, &limits()).await.unwrap()
}

/// Runs `code` and expects it to succeed; its stdout.
async fn ok(s: &mut Session, code: &str) -> String {
    let out = s.cell(code, CELL).await;
    assert_eq!(out.status, CellStatus::Ok, "{code}: {out:?}");
    out.stdout
}

#[tokio::test]
async fn cells_echo_keep_state_and_compute_with_numpy_and_pandas() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    assert_eq!(ok(&mut s, "print('hello')").await, "hello\n");
    // A final expression is echoed, as in a notebook.
    assert_eq!(ok(&mut s, "x = 41\nx + 1").await, "42\n");
    assert_eq!(ok(&mut s, "x").await, "41\n");
    let code = "import numpy as np, pandas as pd\n\
                df = pd.DataFrame({'a': np.arange(1, 11), 'b': np.arange(10) ** 2})\n\
                print(int(df['a'].sum()), int(df['b'].max()), df.shape)";
    assert_eq!(ok(&mut s, code).await, "55 81 (10, 2)\n");
}

#[tokio::test]
async fn matplotlib_draws_a_png_into_the_thread_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let code = "import matplotlib.pyplot as plt\n\
                plt.plot([1, 2, 3], [1, 4, 9])\n\
                plt.title('squares')\n\
                plt.savefig('/mnt/data/plot.png')\n\
                print('saved')";
    assert_eq!(ok(&mut s, code).await, "saved\n");
    let png = std::fs::read(dir.path().join("data/plot.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 1000);
}

#[tokio::test]
async fn an_exception_is_reported_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let out = s.cell("y = 3\n1 / 0", CELL).await;
    assert_eq!(out.status, CellStatus::Exception);
    assert!(out.stderr.contains("ZeroDivisionError"), "{}", out.stderr);
    assert_eq!(ok(&mut s, "y").await, "3\n");
    assert_eq!(
        s.cell("import sys; sys.exit(4)", CELL).await.status,
        CellStatus::Exit(4)
    );
    assert_eq!(ok(&mut s, "y * 2").await, "6\n");
}

#[tokio::test]
async fn a_runaway_or_sleeping_cell_is_stopped_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let out = s
        .cell("while True:\n    pass", Duration::from_secs(1))
        .await;
    assert_eq!(out.status, CellStatus::Timeout);
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
    assert!(s.is_broken());
    let mut s = session(dir.path()).await;
    let out = s
        .cell("import time; time.sleep(30)", Duration::from_secs(1))
        .await;
    assert_eq!(out.status, CellStatus::Timeout);
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
    // A fresh session works after a broken one.
    let mut s = session(dir.path()).await;
    assert_eq!(ok(&mut s, "2 ** 10").await, "1024\n");
}

#[tokio::test]
async fn memory_past_the_limit_is_a_memory_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let out = s.cell("big = bytearray(1024 * 1024 * 1024)", CELL).await;
    assert_eq!(out.status, CellStatus::Exception, "{out:?}");
    assert!(out.stderr.contains("MemoryError"), "{}", out.stderr);
    assert!(s.memory_bytes() <= 512 << 20);
    assert_eq!(ok(&mut s, "len(bytearray(10))").await, "10\n");
}

#[tokio::test]
async fn no_network_no_host_files_and_a_descriptor_flood_ends_only_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let out = s
        .cell(
            "import socket\nsocket.create_connection(('127.0.0.1', 5432), timeout=2)",
            CELL,
        )
        .await;
    assert_eq!(out.status, CellStatus::Exception, "{out:?}");
    let out = s.cell("open('/etc/passwd').read()", CELL).await;
    assert_eq!(out.status, CellStatus::Exception, "{out:?}");
    assert!(out.stderr.contains("Error"), "{}", out.stderr);
    // Writing the library mount is refused.
    let out = s.cell("open('/usr/local/lib/x', 'w')", CELL).await;
    assert_eq!(out.status, CellStatus::Exception, "{out:?}");
    // Opening files past the session's descriptor limit ends the session (WASI preview 1
    // has no EMFILE in wasmtime); the host's descriptors stay bounded, a new session works.
    let code = "files = [open(f'/tmp/f{i}', 'w') for i in range(10000)]";
    match s.cell(code, CELL).await.status {
        CellStatus::Trapped(why) => assert!(why.contains("too many open files"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(s.is_broken());
    let mut s = session(dir.path()).await;
    assert_eq!(
        ok(&mut s, "open('/tmp/after', 'w').write('ok')").await,
        "2\n"
    );
}

/// A run whose model calls code_interpreter, on a server configured like the install.
#[tokio::test]
async fn a_run_reads_its_input_file_with_pandas_in_the_threads_session() {
    use assistants_tests::fake_llm::{FakeLlm, Reply};
    use assistants_tests::{json, TestApp};
    let dir = std::env::var_os("ASSISTANTS_CODE_INTERPRETER_DIR").map(PathBuf::from);
    let key = std::env::var_os("ASSISTANTS_PLUGIN_CACHE_KEY_FILE").map(PathBuf::from);
    let llm = FakeLlm::start().await;
    let app = TestApp::spawn_with_llm(&llm, |s| {
        s.code_interpreter.dir = dir.expect("ASSISTANTS_CODE_INTERPRETER_DIR");
        s.plugins.cache_key_file = key;
    })
    .await;
    let mut ready = false;
    for _ in 0..600 {
        let (_, info) = app.get("/plugins/code_interpreter").await;
        assert_ne!(info["status"], "unavailable", "{info}");
        if info["status"] == "ready" {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the interpreter did not become ready in a minute");
    let csv = app.upload_ok("numbers.csv", "x\n1\n2\n3\n4\n").await;
    let asst = app
        .create(
            "/assistants",
            json!({"model": "gpt-4o", "tools": [{"type": "code_interpreter"}],
                   "tool_resources": {"code_interpreter": {"file_ids": [csv]}}}),
        )
        .await;
    let thread = app.create("/threads", json!({})).await;
    let code = format!("import pandas as pd\ndf = pd.read_csv('/mnt/data/{csv}')\ndf['x'].mean()");
    llm.push(Reply::tool(
        "code_interpreter",
        &json!({ "code": code }).to_string(),
    ));
    llm.push(Reply::tool("code_interpreter", r#"{"code": "len(df)"}"#));
    let plot =
        "import matplotlib.pyplot as plt\nplt.plot(df['x'], df['x'] ** 2)\nplt.title('squares')";
    llm.push(Reply::tool(
        "code_interpreter",
        &json!({ "code": plot }).to_string(),
    ));
    llm.push(Reply::tool(
        "code_interpreter",
        r#"{"code": "(df * 2).to_csv('/mnt/data/doubled.csv', index=False)"}"#,
    ));
    llm.push(Reply::text(
        "The mean is 2.5; [doubled](sandbox:/mnt/data/doubled.csv).",
    ));
    let run = app
        .create(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    // Four cells, the first importing pandas, beside the other tests' sessions.
    let done = app
        .wait_run_within(&thread, &run, Duration::from_secs(300))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, steps) = app
        .get(&format!("/threads/{thread}/runs/{run}/steps?order=asc"))
        .await;
    let logs: Vec<String> = steps["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["step_details"]["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| {
            c["code_interpreter"]["outputs"][0]["logs"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(logs[..2], ["np.float64(2.5)\n", "4\n"], "{steps}");
    // The figure the last cell left open was displayed: an image output, a file with purpose
    // assistants_output holding a PNG, and an image_file part of the answer.
    let plotted = steps["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["step_details"]["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .nth(2)
        .unwrap();
    let outputs = plotted["code_interpreter"]["outputs"].as_array().unwrap();
    // The logs are the cell's own output (its final expression echoed); the note on the image
    // is only for the model.
    assert_eq!(
        outputs[0]["logs"], "Text(0.5, 1.0, 'squares')\n",
        "{plotted}"
    );
    assert_eq!(outputs.len(), 2, "{plotted}");
    let image = outputs
        .iter()
        .find(|o| o["type"] == "image")
        .unwrap_or_else(|| panic!("no image output: {plotted}"));
    let file_id = image["image"]["file_id"].as_str().unwrap();
    let (_, file) = app.get(&format!("/files/{file_id}")).await;
    assert_eq!(file["purpose"], "assistants_output", "{file}");
    let png = app.file_content(file_id).await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let (_, msgs) = app
        .get(&format!("/threads/{thread}/messages?order=desc&limit=1"))
        .await;
    let content = msgs["data"][0]["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "text", "{msgs}");
    assert_eq!(
        content[1],
        json!({"type": "image_file", "image_file": {"file_id": file_id}})
    );
    // The file the code wrote, linked from the answer, is downloadable through its annotation.
    let annotation = &content[0]["text"]["annotations"][0];
    assert_eq!(annotation["type"], "file_path", "{msgs}");
    assert_eq!(annotation["text"], "sandbox:/mnt/data/doubled.csv");
    let written = annotation["file_path"]["file_id"].as_str().unwrap();
    let csv = String::from_utf8(app.file_content(written).await).unwrap();
    assert_eq!(csv, "x\n2\n4\n6\n8\n");
}

/// A node's interpreter with snapshots in `store`, its sessions under `root/<name>`.
async fn node(
    root: &std::path::Path,
    store: &assistants_core::blobs::Blobs,
    name: &str,
    disk_mib: u64,
) -> std::sync::Arc<assistants_core::interpreter::service::CodeInterpreter> {
    use assistants_core::interpreter::service::{
        Availability, CodeInterpreter, InterpreterSettings,
    };
    let mut s = InterpreterSettings::for_data_dir(&root.join(name));
    s.dir = PathBuf::from(std::env::var_os("ASSISTANTS_CODE_INTERPRETER_DIR").unwrap());
    s.memory_mib = 512;
    s.cell_timeout = Duration::from_secs(5);
    s.disk_mib = disk_mib;
    let key_file = std::env::var_os("ASSISTANTS_PLUGIN_CACHE_KEY_FILE").map(PathBuf::from);
    let ci = CodeInterpreter::start(s, CacheKey::load(key_file.as_deref()), Some(store.clone()));
    for _ in 0..1200 {
        match ci.availability() {
            Availability::Ready => return ci,
            Availability::Unavailable(why) => panic!("{why}"),
            Availability::Preparing => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the interpreter was not ready in two minutes");
}

/// Runs `code` on `thread` and expects it to succeed; its stdout.
async fn cell_ok(
    ci: &assistants_core::interpreter::service::CodeInterpreter,
    thread: &str,
    code: &str,
) -> String {
    let r = ci
        .run_cell(thread, code, async {})
        .await
        .expect("the cell ran");
    assert_eq!(r.outcome.status, CellStatus::Ok, "{code}: {r:?}");
    assert!(!r.lost, "{r:?}");
    r.outcome.stdout
}

/// Sessions fork from the template image (pandas already imported, random generators
/// reseeded per fork), continue on another node from their snapshot (variables, imports,
/// files; a file left open reads as closed-empty rather than as another file), and roll
/// back to the last good cell after a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_fork_from_the_template_and_survive_their_node() {
    use assistants_core::interpreter::live::Origin;
    let root = tempfile::tempdir().unwrap();
    let store = assistants_core::blobs::Blobs::open(None, &root.path().join("store")).unwrap();
    let a = node(root.path(), &store, "a", 1024).await;
    // The template imported pandas; the fork did not leave its name in __main__.
    assert_eq!(
        cell_ok(
            &a,
            "t1",
            "import sys\n('pandas' in sys.modules, 'pandas' in dir())"
        )
        .await,
        "(True, False)\n"
    );
    let r1 = cell_ok(&a, "t1", "import random; random.random()").await;
    let r2 = cell_ok(&a, "t2", "import random; random.random()").await;
    assert_ne!(r1, r2, "two forks drew the same random numbers");
    cell_ok(
        &a,
        "t1",
        "import pandas as pd\ndf = pd.DataFrame({'x': [1, 2, 3]})\n\
         open('/mnt/data/kept.txt', 'w').write('kept')\nleft_open = open('/mnt/data/kept.txt')",
    )
    .await;
    // Another node (a restart, or another worker) continues the thread.
    let b = node(root.path(), &store, "b", 1024).await;
    assert_eq!(cell_ok(&b, "t1", "int(df['x'].sum())").await, "6\n");
    assert_eq!(
        cell_ok(&b, "t1", "open('/mnt/data/kept.txt').read()").await,
        "'kept'\n"
    );
    assert_eq!(cell_ok(&b, "t1", "left_open.read()").await, "''\n");
    // A runaway cell rolls back to the last good one.
    let r = b
        .run_cell("t1", "df['y'] = 1\nwhile True: pass", async {})
        .await
        .unwrap();
    assert_eq!(r.outcome.status, CellStatus::Timeout);
    assert_eq!(r.reset, Some(Origin::Restored));
    assert_eq!(cell_ok(&b, "t1", "list(df.columns)").await, "['x']\n");
    // The first node's live session is stale now: it takes the stored state.
    assert_eq!(
        cell_ok(&a, "t1", "list(df.columns), len(df)").await,
        "(['x'], 3)\n"
    );
}

/// WASI has no disk quota: the host watches the session's files during a cell and after it.
/// A cell that writes past the quota — at once, or in a loop that would fill the disk — is
/// stopped, and the session rolls back to its last good cell, files included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_that_fills_the_disk_is_stopped_and_rolled_back() {
    use assistants_core::interpreter::live::Origin;
    let root = tempfile::tempdir().unwrap();
    let store = assistants_core::blobs::Blobs::open(None, &root.path().join("store")).unwrap();
    let a = node(root.path(), &store, "a", 8).await;
    cell_ok(
        &a,
        "t",
        "open('/mnt/data/small', 'wb').write(b'x' * 1000)\nkept = 1",
    )
    .await;
    for code in [
        "open('/mnt/data/big', 'wb').write(b'x' * (20 << 20))",
        "f = open('/tmp/endless', 'wb')\nwhile True: f.write(b'x' * (1 << 20))",
    ] {
        let r = a.run_cell("t", code, async {}).await.unwrap();
        assert!(
            matches!(&r.outcome.status, CellStatus::Stopped(why) if why.contains("quota")),
            "{code}: {r:?}"
        );
        assert_eq!(r.reset, Some(Origin::Restored));
        let data = a.data_dir("t");
        assert!(data.join("small").is_file());
        assert!(!data.join("big").exists());
        assert!(!data.parent().unwrap().join("tmp/endless").exists());
        assert_eq!(cell_ok(&a, "t", "kept").await, "1\n");
    }
}
