//! Builds the sandbox test components in `tests/plugins/` for wasm32-wasip2 and tells the tests
//! where they are (`TEST_PLUGINS_DIR`: `NAME.wasm` + `NAME.toml`, usable as a plugins dir).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("plugins");
    println!("cargo:rerun-if-changed=plugins");
    println!("cargo:rerun-if-changed=../wit");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_root = out_dir.ancestors().nth(4).unwrap_or(&out_dir).to_path_buf();
    let wasm_target = target_root.join("wasm-test-plugins");
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
        .expect("running cargo for the test plugins");
    assert!(
        status.success(),
        "building the test plugins failed (rustup target add wasm32-wasip2?)"
    );
    let dir = out_dir.join("test-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    // Every member crate NAME of the workspace ships NAME.toml as its manifest.
    for member in std::fs::read_dir(&plugins).unwrap() {
        let member = member.unwrap().path();
        if !member.join("Cargo.toml").exists() {
            continue;
        }
        let name = member.file_name().unwrap().to_string_lossy().to_string();
        let wasm = wasm_target.join(format!(
            "wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ));
        std::fs::copy(&wasm, dir.join(format!("{name}.wasm"))).unwrap();
        std::fs::copy(
            member.join(format!("{name}.toml")),
            dir.join(format!("{name}.toml")),
        )
        .unwrap();
    }
    println!("cargo:rustc-env=TEST_PLUGINS_DIR={}", dir.display());
}
