//! Tool plugins: the `tool` export (`describe`, `invoke`) and what a tool may import —
//! configuration, and for retrieval tools, vector-store search.
//!
//! ```ignore
//! use assistants_plugin::tool::{args, CallContext, Tool, ToolError, ToolOutput, ToolSpec};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Shout {
//!     text: String,
//! }
//!
//! struct Plugin;
//!
//! impl Tool for Plugin {
//!     fn describe() -> Vec<ToolSpec> {
//!         vec![ToolSpec::new("shout", "Upper-cases text.", serde_json::json!({
//!             "type": "object",
//!             "properties": {"text": {"type": "string"}},
//!             "required": ["text"],
//!         }))]
//!     }
//!
//!     fn invoke(_ctx: CallContext, name: String, arguments: String) -> Result<ToolOutput, ToolError> {
//!         ToolError::expect_tool(&name, "shout")?;
//!         let shout: Shout = args(&arguments)?;
//!         Ok(shout.text.to_uppercase().into())
//!     }
//! }
//!
//! assistants_plugin::export_tool!(Plugin);
//! ```

#[doc(hidden)]
pub mod bindings {
    //! Generated from `retrieval-tool-plugin`, the tool world with vector-store search: a
    //! component that never searches does not import `vector-store`, so the same bindings serve
    //! plain tools (`kind = "tool"`).
    world_bindings!("retrieval-tool-plugin", "export_tool", "assistants_plugin::tool::bindings", {
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
    });
}

pub use bindings::assistants::plugin::types::{
    Annotation, CallContext, FileCitation, ToolError, ToolOutput, ToolSpec, UrlCitation,
};
pub use bindings::assistants::plugin::vector_store::{SearchHit, SearchRequest};
/// What a tool component implements: `describe` once at load, `invoke` per call (each call in
/// a fresh instance).
pub use bindings::exports::assistants::plugin::tool::Guest as Tool;

use serde::de::DeserializeOwned;

/// The value of a non-secret config key the operator set for this plugin (manifest
/// `[[config]]`); secrets are never readable, the host injects them into requests.
pub fn config(key: &str) -> Option<String> {
    bindings::assistants::plugin::config::get(key)
}

/// Searches vector stores (retrieval tools only: `kind = "retrieval-tool"`). The stores must be
/// among the call's `vector_store_ids`.
pub fn search(request: &SearchRequest) -> Result<Vec<SearchHit>, String> {
    bindings::assistants::plugin::vector_store::search(request)
}

/// Parses a call's JSON arguments into `T`; a mismatch is an `invalid-arguments` error whose
/// text tells the model what to fix.
pub fn args<T: DeserializeOwned>(arguments_json: &str) -> Result<T, ToolError> {
    serde_json::from_str(arguments_json).map_err(|e| {
        ToolError::InvalidArguments(format!("the arguments do not fit the schema: {e}"))
    })
}

impl ToolSpec {
    /// A tool named `name` (1-64 of `a-z A-Z 0-9 _ -`) whose arguments follow the JSON Schema
    /// `parameters`. Not strict: see [`ToolSpec::strict`].
    pub fn new(name: &str, description: &str, parameters: serde_json::Value) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters_json: parameters.to_string(),
            strict: false,
        }
    }

    /// Asks the model to follow the schema exactly (OpenAI strict function calling: every
    /// property required, `additionalProperties: false`).
    pub fn strict(mut self) -> ToolSpec {
        self.strict = true;
        self
    }
}

impl ToolError {
    /// The arguments are wrong; the model sees `message` and may retry.
    pub fn invalid(message: impl Into<String>) -> ToolError {
        ToolError::InvalidArguments(message.into())
    }

    /// The tool ran and failed.
    pub fn failed(message: impl Into<String>) -> ToolError {
        ToolError::Failed(message.into())
    }

    /// `Err(unknown-tool)` unless `name` is `expected` (for single-tool components).
    pub fn expect_tool(name: &str, expected: &str) -> Result<(), ToolError> {
        if name == expected {
            Ok(())
        } else {
            Err(ToolError::UnknownTool(name.into()))
        }
    }
}

impl From<String> for ToolOutput {
    fn from(text: String) -> ToolOutput {
        ToolOutput {
            text,
            annotations: Vec::new(),
        }
    }
}

impl From<&str> for ToolOutput {
    fn from(text: &str) -> ToolOutput {
        text.to_string().into()
    }
}

impl CallContext {
    /// The host's options for this call (`options-json`), parsed.
    pub fn options(&self) -> CallOptions {
        let v: serde_json::Value = serde_json::from_str(&self.options_json).unwrap_or_default();
        CallOptions {
            sequence: v
                .get("sequence")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            tool: v.get("tool").cloned().unwrap_or_default(),
        }
    }
}

/// What the host says about a call besides its arguments.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// This run's earlier calls of this plugin, from 0: the first number of citation labels.
    pub sequence: u64,
    /// The entry of the assistant's (or run's) `tools` that enabled this plugin, with the
    /// options the user set there (`null` outside runs).
    pub tool: serde_json::Value,
}

/// A tool's output as labelled passages the model can cite: each passage starts with a label
/// `【{sequence}:{n}†{name}】` (the form OpenAI's file_search uses, which models know) with a
/// `file` or `url` annotation over it. The host makes each annotated passage a source of the
/// run and turns the labels the model repeats in its answer into `file_citation` /
/// `url_citation` annotations.
#[derive(Debug, Clone, Default)]
pub struct Passages {
    sequence: u64,
    count: usize,
    text: String,
    annotations: Vec<Annotation>,
}

impl Passages {
    /// Passages for the call whose options are `options` (labels use its sequence).
    pub fn new(options: &CallOptions) -> Passages {
        Passages {
            sequence: options.sequence,
            ..Passages::default()
        }
    }

    /// No passage added yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a passage of a file in a vector store, labelled with its file name and annotated
    /// with a `file` citation of `file_id` over the label.
    pub fn file(&mut self, filename: &str, file_id: &str, body: &str) -> &mut Passages {
        let (start, end) = self.label(filename);
        self.text.push('\n');
        self.text.push_str(body.trim());
        self.annotations.push(Annotation::File(FileCitation {
            start_index: start,
            end_index: end,
            file_id: file_id.to_string(),
            quote: None,
        }));
        self
    }

    /// Adds a passage of a web page, labelled with its title (the URL if it has none) and
    /// annotated with a `url` citation over the label.
    pub fn url(&mut self, title: &str, url: &str, body: &str) -> &mut Passages {
        // Titles can be absurdly long: the label carries a short form, the annotation more.
        let short: String = label_name(title).chars().take(80).collect();
        let (start, end) = self.label(if short.is_empty() { url } else { &short });
        self.text.push(' ');
        self.text.push_str(url);
        self.text.push('\n');
        self.text.push_str(body.trim());
        self.annotations.push(Annotation::Url(UrlCitation {
            start_index: start,
            end_index: end,
            url: url.to_string(),
            title: Some(title.chars().take(200).collect::<String>()).filter(|t| !t.is_empty()),
        }));
        self
    }

    /// Starts the next passage with its label; returns the label's character range.
    fn label(&mut self, name: &str) -> (u32, u32) {
        if self.count > 0 {
            self.text.push_str("\n\n");
        }
        let start = self.text.chars().count() as u32;
        let label = format!("【{}:{}†{}】", self.sequence, self.count, label_name(name));
        self.text.push_str(&label);
        self.count += 1;
        (start, start + label.chars().count() as u32)
    }

    /// The output: the passages' text and annotations.
    pub fn finish(self) -> ToolOutput {
        ToolOutput {
            text: self.text,
            annotations: self.annotations,
        }
    }
}

/// A name as it can stand in a citation label (the host resolves labels by this name too): no
/// brackets, daggers or line breaks, no surrounding spaces.
pub fn label_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !matches!(c, '【' | '】' | '†' | '\n' | '\r'))
        .collect();
    cleaned.trim().to_string()
}
