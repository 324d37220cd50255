//! A stand-in interpreter for tests (`test-support`): a tiny module with the real one's
//! exports and imports (`testdata/fake_python.wat`), installed where the real one would be,
//! so the plumbing — install layout, compile cache, sessions, runs — is tested without the
//! 100 MB artifact. Its "cells" are one-letter commands (see the .wat file): `p TEXT` prints,
//! `s C` / `r` keep and read state, `l` loops, `t` traps.

use std::path::Path;

use super::artifact::{Installed, STDLIB_ZIP, WHEEL};

const STAND_IN: &str = include_str!("testdata/fake_python.wat");

/// The stand-in's module bytes.
pub fn stand_in_wasm() -> Vec<u8> {
    wat::parse_str(STAND_IN).expect("the stand-in module parses")
}

/// Installs the stand-in into `dir` as `assistants code-interpreter install` would lay out
/// the real one.
pub fn install_stand_in(dir: &Path) -> Installed {
    let root = dir.join(format!("{}-{}", WHEEL.project, WHEEL.version));
    std::fs::create_dir_all(root.join("lib")).expect("creating the install");
    std::fs::write(root.join("lib").join(STDLIB_ZIP), b"").expect("writing the stdlib");
    std::fs::write(root.join("python-snapshot.wasm"), stand_in_wasm()).expect("writing it");
    std::fs::write(root.join("INSTALLED"), format!("{}\n", WHEEL.sha256)).expect("marking it");
    Installed::find(dir).expect("a complete install")
}
