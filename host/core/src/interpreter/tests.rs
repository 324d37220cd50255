//! The host plumbing against a stand-in module with the interpreter's exports and imports
//! (`testdata/fake_python.wat`), so it runs in `cargo test` without the 100 MB artifact.

use std::time::Duration;

use super::artifact::Installed;
use super::engine;
use super::session::{CellStatus, Mounts, Python, Session, SessionLimits};
use crate::plugins::cache::CacheKey;

/// The stand-in installed in `dir`.
fn installed(dir: &std::path::Path) -> Installed {
    super::testing::install_stand_in(dir)
}

fn limits() -> SessionLimits {
    SessionLimits {
        memory_bytes: 4 << 20,
        open_files: 64,
        output_bytes: 64 << 10,
    }
}

async fn session(dir: &std::path::Path) -> Session {
    let installed = installed(dir);
    let engine = engine::engine().unwrap();
    let module = wasmtime::Module::new(&engine, super::testing::stand_in_wasm()).unwrap();
    let python = Python::link(&engine, &module).unwrap();
    let mounts = Mounts {
        installed,
        tmp: dir.join("tmp"),
        data: dir.join("data"),
    };
    Session::start(&python, &mounts, &limits()).await.unwrap()
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn cells_print_keep_state_and_report_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let out = s.cell("p hello", SECOND).await;
    assert_eq!(out.status, CellStatus::Ok);
    assert_eq!(out.stdout, "hello");
    assert_eq!(out.stderr, "");
    let out = s.cell("e oops", SECOND).await;
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", "oops"));
    // State lives in the instance between cells.
    s.cell("s Z", SECOND).await;
    assert_eq!(s.cell("r", SECOND).await.stdout, "Z");
    assert_eq!(s.cell("x 3", SECOND).await.status, CellStatus::Exit(3));
    assert_eq!(s.cell("x 1", SECOND).await.status, CellStatus::Exception);
    assert!(!s.has_ended());
    assert_eq!(s.cell("q", SECOND).await.status, CellStatus::Quit);
    assert!(s.has_ended());
    assert!(matches!(
        s.cell("p again", SECOND).await.status,
        CellStatus::Trapped(_)
    ));
}

#[tokio::test]
async fn output_past_the_cap_is_dropped_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let out = s.cell("o", SECOND).await;
    assert_eq!(out.status, CellStatus::Ok);
    assert_eq!(out.stdout.len(), 64 << 10);
    assert_eq!(out.dropped, 1000 * 1024 - (64 << 10));
    // The next cell starts with empty buffers.
    assert_eq!(s.cell("p x", SECOND).await.stdout, "x");
}

#[tokio::test]
async fn a_runaway_cell_times_out_and_breaks_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let out = s.cell("l", Duration::from_millis(200)).await;
    assert_eq!(out.status, CellStatus::Timeout);
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    assert!(s.is_broken());
}

#[tokio::test]
async fn a_trap_breaks_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    let out = s.cell("t", SECOND).await;
    assert!(matches!(out.status, CellStatus::Trapped(_)), "{out:?}");
    assert!(s.is_broken());
}

#[tokio::test]
async fn memory_past_the_limit_is_refused_not_trapped() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    assert_eq!(s.cell("g", SECOND).await.status, CellStatus::Exception);
    assert!(s.memory_bytes() <= 4 << 20);
    assert!(!s.is_broken());
    assert_eq!(s.cell("p alive", SECOND).await.stdout, "alive");
}

#[tokio::test]
async fn files_land_in_the_session_and_thread_directories_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path()).await;
    // Preopens: 3 = /usr/local/lib (read-only), 4 = /tmp, 5 = /mnt/data (no mpl-data here).
    assert_eq!(s.cell("w4 a.txt", SECOND).await.status, CellStatus::Ok);
    assert_eq!(s.cell("w5 b.txt", SECOND).await.status, CellStatus::Ok);
    assert_eq!(
        std::fs::read(dir.path().join("tmp/a.txt")).unwrap(),
        b"aaaa"
    );
    assert!(dir.path().join("data/b.txt").is_file());
    // The library mount is read-only, and nothing climbs out of a mount.
    assert_eq!(
        s.cell("w3 c.txt", SECOND).await.status,
        CellStatus::Exception
    );
    assert_eq!(
        s.cell("w4 ../escape.txt", SECOND).await.status,
        CellStatus::Exception
    );
    assert!(!dir.path().join("escape.txt").exists());
}

#[test]
fn the_compiled_module_is_cached_and_a_tampered_one_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let installed = installed(dir.path());
    let engine = engine::engine().unwrap();
    let key = CacheKey::load(Some(&dir.path().join("key")));
    assert!(!engine::is_compiled(&engine, &installed));
    engine::compiled(&engine, &installed, &key).unwrap();
    assert!(engine::is_compiled(&engine, &installed));
    let cwasm = std::fs::read_dir(&installed.root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("a compiled file");
    let good = std::fs::read(&cwasm).unwrap();
    // Flip a byte: the MAC no longer verifies, so it is compiled again (and works).
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0xff;
    std::fs::write(&cwasm, &bad).unwrap();
    engine::compiled(&engine, &installed, &key).unwrap();
    assert_eq!(std::fs::read(&cwasm).unwrap(), good);
    // Under another key the entry does not verify either.
    let other = CacheKey::load(Some(&dir.path().join("other-key")));
    let before = std::fs::metadata(&cwasm).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    engine::compiled(&engine, &installed, &other).unwrap();
    assert_ne!(
        std::fs::metadata(&cwasm).unwrap().modified().unwrap(),
        before
    );
}
