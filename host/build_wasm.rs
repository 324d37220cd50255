//! Shared by `host/build.rs` and `tests/build.rs` (included with `#[path]`): builds a cargo
//! workspace of plugin components for wasm32-wasip2 with a nested cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the workspace at `workspace` (its `Cargo.toml` directory) in release mode into
/// `<target>/<target_name>` and returns the directory holding the `.wasm` files.
///
/// The nested build gets its own target directory outside this build's, so the two never
/// wait on each other's lock, and none of the outer build's compiler settings.
pub fn build_wasm_workspace(workspace: &Path, target_name: &str) -> PathBuf {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_root = out_dir.ancestors().nth(4).unwrap_or(&out_dir).to_path_buf();
    let wasm_target = target_root.join(target_name);
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
