//! Builds the built-in plugins in `plugins/` for wasm32-wasip2 and embeds them, so a plain
//! `cargo build` produces a binary with its plugins and a fresh clone needs no extra step.

#[path = "build_wasm.rs"]
mod build_wasm;

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../../plugins");
    println!("cargo:rerun-if-changed=../../plugins");
    println!("cargo:rerun-if-changed=../../wit");
    println!("cargo:rerun-if-changed=build_wasm.rs");
    // `sqlx::migrate!` embeds the migrations, but only this tells cargo a new one appeared.
    println!("cargo:rerun-if-changed=../../migrations");
    let built =
        build_wasm::build_wasm_workspace(&plugins, &manifest_dir.join("../../wit"), "wasm-plugins");
    let mut entries = Vec::new();
    for (member, manifest) in build_wasm::plugin_manifests(&plugins) {
        let stem = manifest.file_stem().unwrap().to_string_lossy().to_string();
        let crate_name = member
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('-', "_");
        let wasm = built.join(format!("{crate_name}.wasm"));
        assert!(wasm.exists(), "{} was not built", wasm.display());
        entries.push(format!(
            "({stem:?}, include_bytes!({:?}), include_str!({:?})),",
            wasm.display().to_string(),
            manifest.display().to_string()
        ));
    }
    let code = format!(
        "/// Built-in plugins: (name, component bytes, manifest).\npub static BUILTIN_PLUGINS: &[(&str, &[u8], &str)] = &[\n{}\n];\n",
        entries.join("\n")
    );
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("builtin_plugins.rs"), code).unwrap();
}
