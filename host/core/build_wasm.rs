//! Shared by `host/core/build.rs` and `tests/build.rs` (included with `#[path]`): builds a cargo
//! workspace of plugin components for wasm32-wasip2 with a nested cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the workspace at `workspace` (its `Cargo.toml` directory) in release mode into
/// `<target>/<target_name>/wit-<digest of wit_dir>` and returns the directory holding the
/// `.wasm` files.
///
/// The nested build gets its own target directory outside this build's, so the two never
/// wait on each other's lock, and none of the outer build's compiler settings. Cargo does not
/// see the WIT files the components' bindings are generated from, so a change there would
/// leave stale components built against the old contract; keying the directory by the WIT
/// digest rebuilds them (and directories of older contracts are removed).
pub fn build_wasm_workspace(workspace: &Path, wit_dir: &Path, target_name: &str) -> PathBuf {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_root = out_dir.ancestors().nth(4).unwrap_or(&out_dir).to_path_buf();
    let parent = target_root.join(target_name);
    let key = format!("wit-{:016x}", dir_digest(wit_dir));
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("wit-") && name != key.as_str() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let wasm_target = parent.join(key);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&wasm_target)
        // Flags meant for the host build must not leak into the wasm build; under `cargo
        // clippy` the wrappers would also rebuild the wasm whenever clippy and build alternate.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .status()
        .expect("running cargo for a wasm plugin workspace");
    assert!(
        status.success(),
        "building {} for wasm32-wasip2 failed; is the target installed? (rustup target add wasm32-wasip2)",
        workspace.display()
    );
    wasm_target.join("wasm32-wasip2/release")
}

/// FNV-1a over the relative paths and contents of every file under `dir`, in sorted order.
fn dir_digest(dir: &Path) -> u64 {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for f in files {
        eat(f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .as_bytes());
        eat(&std::fs::read(&f).unwrap_or_default());
    }
    h
}

/// Member crates of a workspace directory, with the plugin manifest each ships as `*.toml`
/// (other than `Cargo.toml`): `(crate dir, manifest path)`.
pub fn plugin_manifests(workspace: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for member in std::fs::read_dir(workspace).unwrap() {
        let member = member.unwrap().path();
        if !member.join("Cargo.toml").exists() {
            continue;
        }
        for file in std::fs::read_dir(&member).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml")
                && path.file_name().is_some_and(|n| n != "Cargo.toml")
            {
                out.push((member.clone(), path));
            }
        }
    }
    out.sort();
    out
}
