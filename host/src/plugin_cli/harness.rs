//! `assistants plugins test FILE.wasm FIXTURES.toml`: a plugin's tools against fixtures, for
//! authors' own test suites in any language (the command exits non-zero if a case fails).
//!
//! Fixtures name calls and what each must answer. A tool that calls an HTTP API is tested
//! against a stub the harness serves on 127.0.0.1 (`[[http]]`: canned answers by path, with
//! the headers a request must carry — the way to see that the host injected a secret); config
//! values may point at it with `{stub}`. The plugin is loaded as the server would load it, with
//! a grant of what it asks for plus the stub, so limits, the egress policy and secret injection
//! are the real ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;

use assistants_core::plugins::bindings::{CallContext, ToolError};
use assistants_core::plugins::manifest::{Grant, Manifest};
use assistants_core::plugins::{error_text, PluginHost, PluginSettings};

/// A fixtures file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    /// Values of the plugin's config keys (secrets too: they stay host-side as in a server).
    /// `{stub}` in a value becomes the stub's base URL, `http://127.0.0.1:PORT`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The stub's answers.
    #[serde(default)]
    pub http: Vec<StubAnswer>,
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

/// One canned HTTP answer of the stub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StubAnswer {
    /// The request path it answers (the query is ignored).
    pub path: String,
    /// The method it answers [default: any].
    pub method: Option<String>,
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default = "json")]
    pub content_type: String,
    /// Headers the request must carry, with these values (names case-insensitive); otherwise
    /// the stub answers 400 naming what is missing.
    #[serde(default)]
    pub require_headers: BTreeMap<String, String>,
}

fn ok() -> u16 {
    200
}

fn json() -> String {
    "application/json".into()
}

/// One call and what it must answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub tool: String,
    /// The arguments: a table, or a JSON text (to send what a table cannot, e.g. invalid JSON).
    #[serde(default = "empty_args")]
    pub args: toml::Value,
    /// `call-context.options-json`'s `tool` entry (as an assistant's `tools` would hold it).
    pub options: Option<toml::Value>,
    /// The exact text of the answer.
    pub expect: Option<String>,
    /// Strings the answer must contain.
    #[serde(default)]
    pub contains: Vec<String>,
    /// The call must fail with this kind: `invalid-arguments`, `unknown-tool` or `failed`.
    pub error: Option<String>,
    /// ... and a message containing this.
    pub error_contains: Option<String>,
}

fn empty_args() -> toml::Value {
    toml::Value::Table(Default::default())
}

/// How one case went.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    /// `None` if it passed; else why not.
    pub failure: Option<String>,
}

impl Fixtures {
    pub fn parse(text: &str) -> anyhow::Result<Fixtures> {
        let fixtures: Fixtures = toml::from_str(text)?;
        anyhow::ensure!(!fixtures.cases.is_empty(), "the fixtures hold no [[case]]");
        for c in &fixtures.cases {
            let checks = [
                c.expect.is_some(),
                !c.contains.is_empty(),
                c.error.is_some(),
            ]
            .into_iter()
            .filter(|x| *x)
            .count();
            anyhow::ensure!(
                checks == 1,
                "case '{}' must say exactly one of expect, contains or error",
                c.name
            );
            if let Some(kind) = &c.error {
                anyhow::ensure!(
                    ["invalid-arguments", "unknown-tool", "failed"].contains(&kind.as_str()),
                    "case '{}': error must be invalid-arguments, unknown-tool or failed",
                    c.name
                );
            }
        }
        Ok(fixtures)
    }
}

/// Loads the component as a server would, with a grant of what its manifest asks for (and the
/// stub), and runs every case.
pub async fn run(
    wasm: &[u8],
    manifest_text: &str,
    fixtures: &Fixtures,
) -> anyhow::Result<Vec<Outcome>> {
    let manifest = Manifest::parse(manifest_text).context("invalid manifest")?;
    let stub = if fixtures.http.is_empty() {
        None
    } else {
        Some(Stub::start(fixtures.http.clone()).await?)
    };
    let base = stub
        .as_ref()
        .map(|s| format!("http://127.0.0.1:{}", s.port));
    let mut grant = Grant {
        hosts: manifest
            .network
            .hosts
            .iter()
            .filter(|h| *h != "*")
            .cloned()
            .collect(),
        ..Grant::default()
    };
    if let Some(s) = &stub {
        grant.hosts.push(format!("127.0.0.1:{}", s.port));
        grant.allow_private_addresses = true;
    }
    for (key, value) in &fixtures.config {
        anyhow::ensure!(
            manifest.config.iter().any(|c| &c.key == key),
            "the fixtures set config key '{key}', which the manifest does not declare"
        );
        let value = match &base {
            Some(base) => value.replace("{stub}", base),
            None => value.clone(),
        };
        grant.config.insert(key.clone(), value);
    }
    for c in manifest.config.iter().filter(|c| c.inject_header.is_some()) {
        if c.inject_hosts.is_empty() {
            grant
                .secret_hosts
                .insert(c.key.clone(), grant.hosts.clone());
        }
    }
    let settings = PluginSettings {
        grants: [(manifest.id.clone(), grant)].into(),
        instances: Some(4),
        ..Default::default()
    };
    let host = PluginHost::load(&settings).await?;
    let plugin = Arc::new(
        host.prepare(wasm, manifest_text, &settings, false)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))?,
    );
    anyhow::ensure!(plugin.is_tool(), "{} is not a tool plugin", manifest.id);
    let mut outcomes = Vec::new();
    for (n, case) in fixtures.cases.iter().enumerate() {
        let args = match &case.args {
            toml::Value::String(text) => text.clone(),
            other => serde_json::to_string(other)?,
        };
        let options = match &case.options {
            Some(tool) => serde_json::json!({ "tool": tool, "sequence": n }),
            None => serde_json::json!({}),
        };
        let ctx = CallContext {
            tool_call_id: format!("call_fixture{n}"),
            run_id: None,
            thread_id: None,
            assistant_id: None,
            vector_store_ids: vec![],
            options_json: options.to_string(),
        };
        let result = host.invoke(&plugin, ctx, &case.tool, &args).await;
        outcomes.push(Outcome {
            name: case.name.clone(),
            failure: judge(case, result),
        });
    }
    Ok(outcomes)
}

/// Why `result` does not satisfy `case`, if it does not.
fn judge(
    case: &Case,
    result: Result<assistants_core::plugins::bindings::ToolOutput, ToolError>,
) -> Option<String> {
    match (result, &case.error) {
        (Ok(out), None) => {
            if let Some(expected) = &case.expect {
                return (out.text != *expected)
                    .then(|| format!("expected {expected:?}, got {:?}", out.text));
            }
            let missing: Vec<&String> = case
                .contains
                .iter()
                .filter(|s| !out.text.contains(s.as_str()))
                .collect();
            (!missing.is_empty()).then(|| format!("{:?} does not contain {missing:?}", out.text))
        }
        (Ok(out), Some(kind)) => Some(format!(
            "expected a {kind} error, got the answer {:?}",
            out.text
        )),
        (Err(e), None) => Some(format!("the call failed: {}", error_text(&e))),
        (Err(e), Some(kind)) => {
            let (got, message) = match &e {
                ToolError::InvalidArguments(m) => ("invalid-arguments", m),
                ToolError::UnknownTool(m) => ("unknown-tool", m),
                ToolError::Failed(m) => ("failed", m),
            };
            if got != kind {
                return Some(format!("expected a {kind} error, got {got}: {message}"));
            }
            case.error_contains
                .as_ref()
                .filter(|s| !message.contains(s.as_str()))
                .map(|s| format!("the error {message:?} does not contain {s:?}"))
        }
    }
}

/// The HTTP stub: a server on 127.0.0.1 answering from the fixtures, until dropped.
struct Stub {
    port: u16,
    _server: tokio::task::JoinHandle<()>,
}

impl Stub {
    async fn start(answers: Vec<StubAnswer>) -> anyhow::Result<Stub> {
        use axum::extract::Request;
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let answers = Arc::new(answers);
        let app = axum::Router::new().fallback(move |request: Request| {
            let answers = answers.clone();
            async move {
                let path = request.uri().path().to_string();
                let method = request.method().as_str().to_string();
                let Some(answer) = answers.iter().find(|a| {
                    a.path == path
                        && a.method
                            .as_ref()
                            .is_none_or(|m| m.eq_ignore_ascii_case(&method))
                }) else {
                    return (
                        axum::http::StatusCode::NOT_FOUND,
                        format!("the fixtures have no answer for {method} {path}"),
                    )
                        .into_response();
                };
                for (name, value) in &answer.require_headers {
                    let got = request
                        .headers()
                        .get(name.as_str())
                        .and_then(|v| v.to_str().ok());
                    if got != Some(value.as_str()) {
                        return (
                            axum::http::StatusCode::BAD_REQUEST,
                            format!("the request lacks the header {name}: {value}"),
                        )
                            .into_response();
                    }
                }
                let status = axum::http::StatusCode::from_u16(answer.status)
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                (
                    status,
                    [(
                        axum::http::header::CONTENT_TYPE,
                        answer.content_type.clone(),
                    )],
                    answer.body.clone(),
                )
                    .into_response()
            }
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Stub {
            port,
            _server: server,
        })
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self._server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_say_one_thing_per_case() {
        let ok = Fixtures::parse(
            "[[case]]\nname = \"a\"\ntool = \"t\"\nargs = { x = 1 }\nexpect = \"1\"\n",
        )
        .unwrap();
        assert_eq!(ok.cases[0].args.to_string(), "{ x = 1 }");
        let two = "[[case]]\nname = \"a\"\ntool = \"t\"\nexpect = \"1\"\nerror = \"failed\"\n";
        assert!(Fixtures::parse(two).is_err());
        let none = "[[case]]\nname = \"a\"\ntool = \"t\"\n";
        assert!(Fixtures::parse(none).is_err());
        let kind = "[[case]]\nname = \"a\"\ntool = \"t\"\nerror = \"boom\"\n";
        assert!(Fixtures::parse(kind).is_err());
        assert!(Fixtures::parse("").is_err(), "no cases");
        assert!(Fixtures::parse(
            "[[case]]\nname = \"a\"\ntool = \"t\"\nexpect = \"\"\nextra = 1\n"
        )
        .is_err());
    }
}
