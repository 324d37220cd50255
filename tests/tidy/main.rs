//! Tidy: the layout rules of ARCHITECTURE.md that a compiler does not check, checked on every
//! `cargo test` (in the spirit of rust-analyzer's `tidy.rs`).
//!
//! - every source file of the server's crates opens with a `//!` paragraph saying what it owns;
//! - `sqlx` is named only under the store: handlers, the engine and ingestion speak `Store`;
//! - `api::` is named only inside the API and the binary that mounts it;
//! - no source file grows past [`MAX_LINES`]: a module that does becomes a directory;
//! - a run's status changes only in `worker/src/transitions/`, and the API never names the
//!   engine record: it calls transitions.

use std::path::{Path, PathBuf};

/// Lines a source file may have (the anchors' 90th percentile is 570–860).
const MAX_LINES: usize = 600;

/// The crates whose layout is checked, relative to the workspace root.
const CRATES: &[&str] = &["host/src", "host/core/src", "worker/src"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file under the checked crates, as (path relative to the root, text).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut files = Vec::new();
    for krate in CRATES {
        walk(&root.join(krate), &mut files);
    }
    files.sort();
    assert!(files.len() > 20, "tidy found only {} files", files.len());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("source file");
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, text)
        })
        .collect()
}

/// The text without `//` comments, so a rule about code is not tripped by prose.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `code` names `word` as a path segment (`word::`), not as part of a longer name.
fn names_path(code: &str, word: &str) -> bool {
    let pat = format!("{word}::");
    code.match_indices(&pat).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        // `crate::api::…`, `super::api::…` and a bare `api::…` count; `foo_api::` does not.
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn report(rule: &str, offenders: Vec<String>) {
    assert!(
        offenders.is_empty(),
        "{rule}:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn every_source_file_says_what_it_owns() {
    let offenders = sources()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(path, _)| path)
        .collect();
    report("files that do not open with a `//!` paragraph", offenders);
}

#[test]
fn sqlx_is_named_only_under_the_store() {
    let offenders = sources()
        .into_iter()
        .filter(|(path, _)| !path.contains("/store/"))
        .filter(|(_, text)| names_path(&code(text), "sqlx"))
        .map(|(path, _)| path)
        .collect();
    report("files outside store/ that name sqlx", offenders);
}

#[test]
fn the_api_is_named_only_by_itself_and_the_binary() {
    let offenders = sources()
        .into_iter()
        .filter(|(path, _)| !path.contains("/api/"))
        .filter(|(path, _)| {
            !path.ends_with("host/src/main.rs") && !path.ends_with("host/src/lib.rs")
        })
        .filter(|(_, text)| names_path(&code(text), "api"))
        .map(|(path, _)| path)
        .collect();
    report("files outside api/ that name api::", offenders);
}

#[test]
fn run_statuses_change_only_in_transitions() {
    // The one module that calls `set_status`, and where it is defined.
    let allowed = |path: &str| {
        path.starts_with("worker/src/transitions/") || path == "host/core/src/model/run.rs"
    };
    let offenders = sources()
        .into_iter()
        .filter(|(path, _)| !allowed(path))
        .filter(|(_, text)| {
            let code = code(text);
            code.contains(".set_status(") || code.contains("run.status = ")
        })
        .map(|(path, _)| path)
        .collect();
    report(
        "files that change a run's status outside worker/src/transitions/",
        offenders,
    );
    let offenders = sources()
        .into_iter()
        .filter(|(path, _)| path.starts_with("host/src/"))
        .filter(|(_, text)| {
            let code = code(text);
            code.contains("EngineRecord") || names_path(&code, "Next")
        })
        .map(|(path, _)| path)
        .collect();
    report(
        "API files that build or edit engine state (call assistants_worker::transitions)",
        offenders,
    );
}

#[test]
fn no_source_file_is_too_long() {
    let sizes: Vec<(String, usize)> = sources()
        .into_iter()
        .map(|(path, text)| (path, text.lines().count()))
        .collect();
    let offenders = sizes
        .iter()
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(path, n)| format!("{path}: {n} lines"))
        .collect();
    report(
        &format!("files over {MAX_LINES} lines (split them by responsibility)"),
        offenders,
    );
}

#[test]
fn the_rules_see_what_they_look_for() {
    // The checks above pass vacuously if the matcher is broken; pin it down.
    assert!(names_path("use crate::api::AppState;", "api"));
    assert!(names_path("sqlx::query(\"x\")", "sqlx"));
    assert!(!names_path("use async_openai::types;", "openai"));
    assert!(!names_path("let my_api::x", "api"));
    assert!(!names_path("fn apis() {}", "api"));
    assert_eq!(code("let a = 1; // sqlx::query"), "let a = 1; ");
    // The status rule matches what transitions really call.
    let (_, transitions) = sources()
        .into_iter()
        .find(|(path, _)| path == "worker/src/transitions/mod.rs")
        .expect("worker/src/transitions/mod.rs exists");
    assert!(code(&transitions).contains(".set_status("));
}
