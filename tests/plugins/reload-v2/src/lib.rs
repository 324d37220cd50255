//! Version 2 of a one-tool component: `version` answers "v2". The hot-reload test replaces
//! one version by the other in a running server's plugins directory and sees which answers.

wit_bindgen::generate!({ world: "tool-plugin", path: "../../../wit/v0.1.0" });

use exports::assistants::plugin::tool::{CallContext, Guest, ToolError, ToolOutput, ToolSpec};

struct Version;

impl Guest for Version {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "version".into(),
            description: "Which version of this component is serving.".into(),
            parameters_json: r#"{"type":"object","properties":{}}"#.into(),
            strict: false,
        }]
    }

    fn invoke(_ctx: CallContext, name: String, _args: String) -> Result<ToolOutput, ToolError> {
        match name.as_str() {
            "version" => Ok(ToolOutput {
                text: "v2".into(),
                annotations: vec![],
            }),
            other => Err(ToolError::UnknownTool(other.into())),
        }
    }
}

export!(Version);
