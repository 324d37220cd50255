//! The interpreter's wasmtime engine and its compiled module.
//!
//! The interpreter is a WASI preview 1 core module, not a component, and needs what the plugin
//! engine does not have: exception handling (CPython for wasm unwinds with `try_table` /
//! `throw_ref`, which wasmtime implements on its GC heap) and an 8 MiB wasm stack. So it has an
//! engine of its own, without a pooling allocator (a session's memory grows to hundreds of MiB;
//! a few live at once, not thousands). Guest code is interrupted every epoch tick like plugin
//! code, by the same ticker thread.
//!
//! Compiling the 105 MB module takes about 80 s and 2 GB of memory, so it is compiled once and
//! kept beside the installed files: `python-<key>.cwasm`, keyed by the module's hash and the
//! engine's compatibility hash (a new wasmtime or engine setting gives a new key), with an
//! HMAC under the plugin cache key in `python-<key>.cwasm.mac`. The file is mapped, not read
//! (its code pages load on demand and stay shared with the page cache).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use wasmtime::{Config, Engine, Module};

use super::artifact::{sha256_file, Installed};
use crate::plugins::cache::{engine_tag, write_atomic, CacheKey};

/// The wasm stack the interpreter needs (CPython's recursion runs on it).
const WASM_STACK: usize = 8 << 20;
/// The native stack a guest call runs on: the wasm stack plus room for host functions.
const ASYNC_STACK: usize = 10 << 20;

/// The engine configuration the interpreter runs under.
pub fn engine() -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_exceptions(true)
        .async_stack_size(ASYNC_STACK)
        .max_wasm_stack(WASM_STACK)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    let engine = Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the code interpreter's engine")?;
    crate::plugins::runtime::start_ticker(engine.clone());
    Ok(engine)
}

/// The compiled interpreter for `engine` from `installed`: mapped from the cache file if one
/// verifies, else compiled now (slow) and cached. Blocking: call it off the async threads.
pub fn compiled(engine: &Engine, installed: &Installed, key: &CacheKey) -> anyhow::Result<Module> {
    let wasm_path = installed.snapshot();
    let wasm_hash = sha256_file(&wasm_path)?;
    let cached = cache_path(&installed.root, &wasm_hash, engine);
    if let Some(module) = load_cached(engine, &cached, &wasm_hash, key) {
        return Ok(module);
    }
    tracing::info!(path = %cached.display(), "compiling the code interpreter for this machine (about a minute); calls wait for it");
    let wasm = std::fs::read(&wasm_path)?;
    let code = engine.precompile_module(&wasm)?;
    drop(wasm);
    let mac = key.mac(&mac_parts(&wasm_hash, &code));
    write_atomic(&cached, &[&code])?;
    write_atomic(&mac_path(&cached), &[&mac])?;
    drop(code);
    load_cached(engine, &cached, &wasm_hash, key)
        .with_context(|| format!("the compiled interpreter {} did not load", cached.display()))
}

/// Whether a verified compiled interpreter for `engine` is already in `installed`'s directory.
#[cfg(test)]
pub(crate) fn is_compiled(engine: &Engine, installed: &Installed) -> bool {
    sha256_file(&installed.snapshot())
        .map(|h| cache_path(&installed.root, &h, engine).is_file())
        .unwrap_or(false)
}

fn cache_path(root: &Path, wasm_hash: &str, engine: &Engine) -> PathBuf {
    root.join(format!(
        "python-{}-{}.cwasm",
        &wasm_hash[..16],
        engine_tag(engine)
    ))
}

fn mac_path(cwasm: &Path) -> PathBuf {
    let mut name = cwasm.as_os_str().to_owned();
    name.push(".mac");
    PathBuf::from(name)
}

fn mac_parts<'a>(wasm_hash: &'a str, code: &'a [u8]) -> [&'a [u8]; 3] {
    [b"interpreter-cwasm", wasm_hash.as_bytes(), code]
}

/// The MAC's parts before the compiled code (which [`CacheKey::verify_file`] reads itself).
fn mac_prefix(wasm_hash: &str) -> [&[u8]; 2] {
    [b"interpreter-cwasm", wasm_hash.as_bytes()]
}

/// Maps the compiled file if its MAC verifies (computed over the opened file, which is then
/// the one mapped: replacing the path afterwards changes nothing).
fn load_cached(engine: &Engine, path: &Path, wasm_hash: &str, key: &CacheKey) -> Option<Module> {
    let mac = std::fs::read(mac_path(path)).ok()?;
    let mut file = std::fs::File::open(path).ok()?;
    // Read once to verify; the mapping below shares these pages through the page cache.
    if !key
        .verify_file(&mac_prefix(wasm_hash), &mut file, &mac)
        .unwrap_or(false)
    {
        tracing::warn!(path = %path.display(), "the compiled interpreter failed its integrity check; compiling it again");
        return None;
    }
    // SAFETY: the file's contents were just authenticated with a key kept outside this
    // directory (an HMAC over exactly what `precompile_module` produced for this module and
    // engine), through the same open file that is now mapped; wasmtime also checks the
    // header against the engine. What remains is a writer with this user's rights changing
    // the file in place between the check and the mapping, who could replace the server
    // binary as well.
    #[allow(unsafe_code)]
    match unsafe { Module::deserialize_open_file(engine, file) } {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable compiled interpreter");
            None
        }
    }
}
