//! Builds the built-in plugins in `plugins/` for wasm32-wasip2 and embeds them, so a plain
//! `cargo build` produces a binary with its plugins and a fresh clone needs no extra step.
//!
//! The plugins are a separate workspace built by a nested cargo into `<target>/wasm-plugins`
//! (outside this build's own directory, so the two builds never wait on each other's lock).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins");
    println!("cargo:rerun-if-changed=../plugins");
    println!("cargo:rerun-if-changed=../wit");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_root = out_dir.ancestors().nth(4).unwrap_or(&out_dir).to_path_buf();
    let wasm_target = target_root.join("wasm-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&wasm_target)
        // Flags meant for the host build must not leak into the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        // Under `cargo clippy` these would build the wasm through clippy-driver too, and
        // switching between clippy and build would then rebuild it each time.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .arg("--locked")
        .status()
        .expect("running cargo for the plugins workspace");
    assert!(
        status.success(),
        "building the built-in plugins failed; is the wasm32-wasip2 target installed? \
         (rustup target add wasm32-wasip2)"
    );
    let built = wasm_target.join("wasm32-wasip2/release");
    let mut entries = Vec::new();
    for dir in std::fs::read_dir(&plugins).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.join("Cargo.toml").exists() {
            continue;
        }
        for manifest in manifests(&dir) {
            let stem = manifest.file_stem().unwrap().to_string_lossy().to_string();
            let crate_name = dir.file_name().unwrap().to_string_lossy().replace('-', "_");
            let wasm = built.join(format!("{crate_name}.wasm"));
            assert!(wasm.exists(), "{} was not built", wasm.display());
            entries.push(format!(
                "({stem:?}, include_bytes!({:?}), include_str!({:?})),",
                wasm.display().to_string(),
                manifest.display().to_string()
            ));
        }
    }
    entries.sort();
    let code = format!(
        "/// Built-in plugins: (name, component bytes, manifest).\npub static BUILTIN_PLUGINS: &[(&str, &[u8], &str)] = &[\n{}\n];\n",
        entries.join("\n")
    );
    std::fs::write(out_dir.join("builtin_plugins.rs"), code).unwrap();
}

/// Plugin manifests of a plugin crate: `*.toml` files other than `Cargo.toml`.
fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_name().is_some_and(|n| n != "Cargo.toml")
        })
        .collect();
    out.sort();
    out
}
