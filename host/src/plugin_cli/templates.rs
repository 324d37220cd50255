//! `assistants plugins new NAME --lang rust|python|js`: a tool plugin project that builds and
//! passes `plugins check` as generated, with fixtures for `plugins test`.
//!
//! The project carries what it builds against, so it builds offline and against exactly the
//! contract this server speaks: the WIT of the current version (Python, JavaScript) or the
//! guest SDK crate with it (Rust, vendored under `vendor/assistants-plugin` until the crate is
//! published). Both are embedded in the binary from `wit/` and `plugins/sdk/`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The languages a template exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// The current contract version's WIT, as `(path under wit/, text)`.
pub const WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../../wit/v0.2.0/types.wit")),
    ("tool.wit", include_str!("../../../wit/v0.2.0/tool.wit")),
    (
        "strategy.wit",
        include_str!("../../../wit/v0.2.0/strategy.wit"),
    ),
    ("parser.wit", include_str!("../../../wit/v0.2.0/parser.wit")),
    (
        "deps/cli.wit",
        include_str!("../../../wit/v0.2.0/deps/cli.wit"),
    ),
    (
        "deps/clocks.wit",
        include_str!("../../../wit/v0.2.0/deps/clocks.wit"),
    ),
    (
        "deps/filesystem.wit",
        include_str!("../../../wit/v0.2.0/deps/filesystem.wit"),
    ),
    (
        "deps/http.wit",
        include_str!("../../../wit/v0.2.0/deps/http.wit"),
    ),
    (
        "deps/io.wit",
        include_str!("../../../wit/v0.2.0/deps/io.wit"),
    ),
    (
        "deps/random.wit",
        include_str!("../../../wit/v0.2.0/deps/random.wit"),
    ),
    (
        "deps/sockets.wit",
        include_str!("../../../wit/v0.2.0/deps/sockets.wit"),
    ),
];

/// The guest SDK's sources, as `(path under the crate, text)`.
pub const SDK: &[(&str, &str)] = &[
    (
        "src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/tool.rs",
        include_str!("../../../plugins/sdk/src/tool.rs"),
    ),
    (
        "src/strategy.rs",
        include_str!("../../../plugins/sdk/src/strategy.rs"),
    ),
    (
        "src/parser.rs",
        include_str!("../../../plugins/sdk/src/parser.rs"),
    ),
];

/// The SDK's dependencies, as the plugins workspace pins them (`plugins/Cargo.toml`; a unit
/// test keeps the two equal).
pub const SDK_DEPENDENCIES: &str = r#"wit-bindgen = "0.61"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
wasip2 = "1.0.4"
"#;

/// The componentize-py release the Python template builds with (and CI tests).
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js release (npm) the JavaScript template builds with (and CI tests).
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// Writes a new tool plugin project named `name` into `dir/name`; returns its directory.
pub fn create(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<PathBuf> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    anyhow::ensure!(
        valid,
        "'{name}' cannot be a plugin id: use 1-64 characters of a-z, 0-9, _ and -"
    );
    anyhow::ensure!(
        !assistants_core::plugins::BUILTIN_PLUGINS
            .iter()
            .any(|(stem, _, _)| *stem == name)
            && !["function", "code_interpreter"].contains(&name),
        "'{name}' is the id of a built-in tool; choose another"
    );
    let root = dir.join(name);
    anyhow::ensure!(
        !root.exists(),
        "{} already exists; choose another name or directory",
        root.display()
    );
    // The tool's name: what the model calls (ids may hold `-`; tool names may too, but an
    // identifier-like name reads better in prompts).
    let tool = name.replace('-', "_");
    let files = match lang {
        Lang::Rust => rust(name, &tool),
        Lang::Python => python(name, &tool),
        Lang::Js => js(name, &tool),
    };
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))
            .with_context(|| format!("creating {}", path.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "sh") {
            make_executable(&path)?;
        }
    }
    Ok(root)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn manifest(name: &str, lang: &str, memory_mib: u32) -> String {
    format!(
        r#"# The plugin's manifest; every key is described in the server's plugins/README.md.
id = "{name}"
version = "0.1.0"
kind = "tool"
world = "assistants:plugin/tool-plugin@0.2.0"
description = "Counts the words of a text (a {lang} plugin made by `assistants plugins new`)."

[limits]
timeout_ms = 2000
memory_mib = {memory_mib}
"#
    )
}

fn fixtures(tool: &str) -> String {
    format!(
        r#"# Cases for `assistants plugins test {tool}.wasm fixtures.toml`: each calls a tool and checks
# its answer. Keys: tool, args (a table, or a JSON string), and one of expect (the exact text),
# contains (strings the text must hold) or error (invalid-arguments, unknown-tool or failed;
# with error_contains for its message).

[[case]]
name = "counts words"
tool = "{tool}"
args = {{ text = "The cat sat on the mat." }}
expect = "6 words"

[[case]]
name = "refuses arguments that do not fit the schema"
tool = "{tool}"
args = {{ txt = "hello" }}
error = "invalid-arguments"
error_contains = "text"

[[case]]
name = "knows only its own tool"
tool = "nope"
args = {{}}
error = "unknown-tool"
"#
    )
}

fn readme(name: &str, build: &str, lang: &str) -> String {
    format!(
        r#"# {name}

A tool plugin in {lang} for the assistants server, made by `assistants plugins new`. Its tool
counts the words of a text; change `describe` and `invoke` to make it yours, and keep
`{name}.toml` (the manifest) in step.

    {build}                                    # → {name}.wasm
    assistants plugins check {name}.wasm             # the component, its manifest, the grants it needs
    assistants plugins test {name}.wasm fixtures.toml  # the cases in fixtures.toml
    assistants plugins call {name}.wasm {tool} '{{"text": "one two"}}'

To install it, copy `{name}.wasm` and `{name}.toml` into the server's plugins directory
(`--plugins-dir`) and grant what `plugins check` lists; assistants enable it with
`{{"type": "{name}"}}`. The manifest keys, grants, limits and sandbox rules are in the server's
`plugins/README.md`.
"#,
        tool = name.replace('-', "_"),
    )
}

fn rust(name: &str, tool: &str) -> Vec<(String, String)> {
    let crate_name = name.replace('-', "_");
    let mut files = vec![
        (
            "Cargo.toml".to_string(),
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
# The guest SDK, vendored by `assistants plugins new` for this server's contract version.
assistants-plugin = {{ path = "vendor/assistants-plugin" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# A project of its own, wherever it is created.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
"#
            ),
        ),
        (
            "src/lib.rs".to_string(),
            format!(
                r#"//! {name}: a tool plugin. `describe` lists the tools the model may call; `invoke` runs one
//! call, in a fresh sandbox each time.

use assistants_plugin::tool::{{args, CallContext, Tool, ToolError, ToolOutput, ToolSpec}};
use serde::Deserialize;

/// The arguments of `{tool}`, as its schema below describes them.
#[derive(Deserialize)]
struct Args {{
    text: String,
}}

struct Plugin;

impl Tool for Plugin {{
    fn describe() -> Vec<ToolSpec> {{
        let schema = serde_json::json!({{
            "type": "object",
            "properties": {{"text": {{"type": "string", "description": "The text to count."}}}},
            "required": ["text"],
            "additionalProperties": false,
        }});
        vec![ToolSpec::new("{tool}", "Counts the words of a text.", schema).strict()]
    }}

    fn invoke(_ctx: CallContext, name: String, arguments: String) -> Result<ToolOutput, ToolError> {{
        ToolError::expect_tool(&name, "{tool}")?;
        let Args {{ text }} = args(&arguments)?;
        Ok(format!("{{}} words", text.split_whitespace().count()).into())
    }}
}}

assistants_plugin::export_tool!(Plugin);
"#
            ),
        ),
        (format!("{name}.toml"), manifest(name, "Rust", 16)),
        ("fixtures.toml".to_string(), fixtures(tool)),
        (
            "build.sh".to_string(),
            format!(
                r#"#!/usr/bin/env bash
# Builds {name}.wasm (needs `rustup target add wasm32-wasip2` once).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
cp "${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{crate_name}.wasm" {name}.wasm
echo "built {name}.wasm"
"#
            ),
        ),
        ("README.md".to_string(), readme(name, "./build.sh", "Rust")),
        (".gitignore".to_string(), "target/\n*.wasm\n".to_string()),
        (
            "vendor/assistants-plugin/Cargo.toml".to_string(),
            format!(
                r#"[package]
name = "assistants-plugin"
description = "Guest SDK for plugins of the assistants server (vendored by `assistants plugins new`)."
version = "{}"
edition = "2021"
license = "Apache-2.0"

[dependencies]
{SDK_DEPENDENCIES}"#,
                env!("CARGO_PKG_VERSION")
            ),
        ),
    ];
    files.extend(
        SDK.iter()
            .map(|(p, t)| (format!("vendor/assistants-plugin/{p}"), t.to_string())),
    );
    files.extend(
        WIT.iter()
            .map(|(p, t)| (format!("vendor/assistants-plugin/wit/{p}"), t.to_string())),
    );
    files
}

fn with_wit(mut files: Vec<(String, String)>) -> Vec<(String, String)> {
    files.extend(WIT.iter().map(|(p, t)| (format!("wit/{p}"), t.to_string())));
    files
}

fn python(name: &str, tool: &str) -> Vec<(String, String)> {
    with_wit(vec![
        (
            "app.py".to_string(),
            format!(
                r#""""{name}: a tool plugin in Python, built with componentize-py.

`describe` lists the tools the model may call; `invoke` runs one call, in a fresh sandbox
each time. Errors are raised as `Err(ToolError_…)`: the model sees their message.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.assistants_plugin_types import (
    CallContext,
    ToolError_InvalidArguments,
    ToolError_UnknownTool,
    ToolOutput,
    ToolSpec,
)

SCHEMA = {{
    "type": "object",
    "properties": {{"text": {{"type": "string", "description": "The text to count."}}}},
    "required": ["text"],
    "additionalProperties": False,
}}


class Tool(exports.Tool):
    def describe(self) -> list[ToolSpec]:
        return [ToolSpec(name="{tool}", description="Counts the words of a text.",
                         parameters_json=json.dumps(SCHEMA), strict=True)]

    def invoke(self, ctx: CallContext, name: str, arguments_json: str) -> ToolOutput:
        if name != "{tool}":
            raise Err(ToolError_UnknownTool(name))
        args = json.loads(arguments_json)
        if not isinstance(args.get("text"), str):
            raise Err(ToolError_InvalidArguments("'text' must be a string"))
        return ToolOutput(text=f"{{len(args['text'].split())}} words", annotations=[])
"#
            ),
        ),
        (format!("{name}.toml"), manifest(name, "Python", 128)),
        ("fixtures.toml".to_string(), fixtures(tool)),
        (
            "build.sh".to_string(),
            format!(
                r#"#!/usr/bin/env bash
# Builds {name}.wasm with componentize-py from PyPI, installed into .venv on first use.
set -euo pipefail
cd "$(dirname "$0")"
venv="${{COMPONENTIZE_PY_VENV:-.venv}}"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "{COMPONENTIZE_PY}"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py=={COMPONENTIZE_PY}"
fi
"$venv/bin/componentize-py" -d wit -w tool-plugin componentize app -o {name}.wasm
"#
            ),
        ),
        (
            "README.md".to_string(),
            readme(name, "./build.sh", "Python"),
        ),
        (".gitignore".to_string(), ".venv/\n*.wasm\n".to_string()),
    ])
}

fn js(name: &str, tool: &str) -> Vec<(String, String)> {
    with_wit(vec![
        (
            "tool.js".to_string(),
            format!(
                r#"// {name}: a tool plugin in JavaScript, built with componentize-js.
//
// `describe` lists the tools the model may call; `invoke` runs one call, in a fresh sandbox
// each time. A thrown `{{ tag, val }}` is the tool's error: the model sees its message.

const SCHEMA = {{
  type: "object",
  properties: {{ text: {{ type: "string", description: "The text to count." }} }},
  required: ["text"],
  additionalProperties: false,
}};

export const tool = {{
  describe() {{
    return [
      {{
        name: "{tool}",
        description: "Counts the words of a text.",
        parametersJson: JSON.stringify(SCHEMA),
        strict: true,
      }},
    ];
  }},

  invoke(ctx, name, argumentsJson) {{
    if (name !== "{tool}") {{
      throw {{ tag: "unknown-tool", val: name }};
    }}
    const args = JSON.parse(argumentsJson);
    if (typeof args.text !== "string") {{
      throw {{ tag: "invalid-arguments", val: "'text' must be a string" }};
    }}
    const words = args.text.split(/\s+/).filter((w) => w.length > 0).length;
    return {{ text: `${{words}} words`, annotations: [] }};
  }},
}};
"#
            ),
        ),
        (
            "package.json".to_string(),
            format!(
                r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {{
    "build": "componentize-js tool.js --wit wit --world-name tool-plugin --disable http fetch-event -o {name}.wasm"
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "{COMPONENTIZE_JS}"
  }}
}}
"#
            ),
        ),
        (format!("{name}.toml"), manifest(name, "JavaScript", 128)),
        ("fixtures.toml".to_string(), fixtures(tool)),
        (
            "build.sh".to_string(),
            format!(
                r#"#!/usr/bin/env bash
# Builds {name}.wasm with componentize-js from npm, installed on first use. The build leaves
# out wasi:http (`--disable http`): to call an API with fetch(), remove `http` there, list the
# API's host in the manifest's [network] and have the operator grant it.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/@bytecodealliance/componentize-js ] || npm install --no-audit --no-fund --silent
npm run --silent build
"#
            ),
        ),
        (
            "README.md".to_string(),
            readme(name, "./build.sh", "JavaScript"),
        ),
        (
            ".gitignore".to_string(),
            "node_modules/\n*.wasm\n".to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let sub = path.file_name().unwrap().to_string_lossy().to_string();
                out.extend(files_under(&path).into_iter().map(|f| format!("{sub}/{f}")));
            } else {
                out.push(path.file_name().unwrap().to_string_lossy().to_string());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_embedded_contract_and_sdk_are_complete() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut wit: Vec<String> = WIT.iter().map(|(p, _)| p.to_string()).collect();
        wit.sort();
        assert_eq!(
            wit,
            files_under(&root.join("wit/v0.2.0")),
            "list every WIT file"
        );
        let mut sdk: Vec<String> = SDK.iter().map(|(p, _)| p.to_string()).collect();
        sdk.sort();
        let on_disk: Vec<String> = files_under(&root.join("plugins/sdk/src"))
            .into_iter()
            .map(|f| format!("src/{f}"))
            .collect();
        assert_eq!(sdk, on_disk, "list every SDK source file");
    }

    #[test]
    fn the_vendored_sdk_pins_what_the_plugins_workspace_pins() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let workspace = std::fs::read_to_string(root.join("plugins/Cargo.toml")).unwrap();
        for line in SDK_DEPENDENCIES.lines() {
            assert!(workspace.contains(line), "plugins/Cargo.toml pins {line}");
        }
    }

    #[test]
    fn names_are_checked_and_projects_written() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "Caps", "a b", "calculator", "function"] {
            assert!(create(bad, Lang::Rust, dir.path()).is_err(), "{bad:?}");
        }
        let root = create("word-count", Lang::Rust, dir.path()).unwrap();
        let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
        assert!(lib.contains("\"word_count\""), "{lib}");
        let manifest = std::fs::read_to_string(root.join("word-count.toml")).unwrap();
        let parsed = assistants_core::plugins::manifest::Manifest::parse(&manifest).unwrap();
        assert_eq!(parsed.id, "word-count");
        assert!(root
            .join("vendor/assistants-plugin/wit/deps/http.wit")
            .exists());
        assert!(
            create("word-count", Lang::Rust, dir.path()).is_err(),
            "an existing directory is left alone"
        );
        for lang in [Lang::Python, Lang::Js] {
            let root = create(&format!("wc-{lang:?}").to_lowercase(), lang, dir.path()).unwrap();
            assert!(root.join("wit/tool.wit").exists());
            assert!(root.join("fixtures.toml").exists());
        }
    }
}
