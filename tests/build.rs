//! Builds the sandbox test components in `tests/plugins/` for wasm32-wasip2 and tells the tests
//! where they are (`TEST_PLUGINS_DIR`: `NAME.wasm` + `NAME.toml`, usable as a plugins dir).

#[path = "../host/core/build_wasm.rs"]
mod build_wasm;

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("plugins");
    println!("cargo:rerun-if-changed=plugins");
    println!("cargo:rerun-if-changed=../wit");
    println!("cargo:rerun-if-changed=../host/core/build_wasm.rs");
    let built = build_wasm::build_wasm_workspace(
        &plugins,
        &manifest_dir.join("../wit"),
        "wasm-test-plugins",
    );
    let dir = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("test-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    for (member, manifest) in build_wasm::plugin_manifests(&plugins) {
        let name = manifest.file_stem().unwrap().to_string_lossy().to_string();
        let crate_name = member
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('-', "_");
        std::fs::copy(
            built.join(format!("{crate_name}.wasm")),
            dir.join(format!("{name}.wasm")),
        )
        .unwrap();
        std::fs::copy(&manifest, dir.join(format!("{name}.toml"))).unwrap();
    }
    println!("cargo:rustc-env=TEST_PLUGINS_DIR={}", dir.display());
}
