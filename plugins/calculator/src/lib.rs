//! The calculator plugin: `calculate` evaluates arithmetic expressions exactly as written
//! (no code execution, a small recursive-descent parser), `convert_units` converts lengths,
//! masses and temperatures. Pure computation: it imports nothing but logging.

wit_bindgen::generate!({ world: "tool-plugin", path: "../../wit/v0.1.0" });

use exports::assistants::plugin::tool::{CallContext, Guest, ToolError, ToolOutput, ToolSpec};

mod expr;
mod units;

struct Calculator;

impl Guest for Calculator {
    fn describe() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "calculate".into(),
                description: "Evaluate an arithmetic expression with + - * / ^, parentheses and \
                              the functions sqrt, abs, ln, log10, sin, cos, tan, round, floor, ceil \
                              and the constants pi and e."
                    .into(),
                parameters_json: r#"{"type":"object","properties":{"expression":{"type":"string","description":"e.g. (2 + 3) * sqrt(16)"}},"required":["expression"],"additionalProperties":false}"#.into(),
                strict: true,
            },
            ToolSpec {
                name: "convert_units".into(),
                description: "Convert a value between units of length (m, km, cm, mm, mi, yd, ft, in), \
                              mass (kg, g, mg, lb, oz) or temperature (c, f, k)."
                    .into(),
                parameters_json: r#"{"type":"object","properties":{"value":{"type":"number"},"from":{"type":"string"},"to":{"type":"string"}},"required":["value","from","to"],"additionalProperties":false}"#.into(),
                strict: true,
            },
        ]
    }

    fn invoke(
        _ctx: CallContext,
        name: String,
        arguments_json: String,
    ) -> Result<ToolOutput, ToolError> {
        let args: serde_json::Value = serde_json::from_str(&arguments_json)
            .map_err(|e| ToolError::InvalidArguments(format!("arguments are not JSON: {e}")))?;
        let text = match name.as_str() {
            "calculate" => {
                let expression = args["expression"].as_str().ok_or_else(|| {
                    ToolError::InvalidArguments("'expression' must be a string".into())
                })?;
                let value = expr::evaluate(expression).map_err(ToolError::InvalidArguments)?;
                format_number(value)
            }
            "convert_units" => {
                let value = args["value"].as_f64().ok_or_else(|| {
                    ToolError::InvalidArguments("'value' must be a number".into())
                })?;
                let unit = |k: &str| {
                    args[k].as_str().ok_or_else(|| {
                        ToolError::InvalidArguments(format!("'{k}' must be a string"))
                    })
                };
                let out = units::convert(value, unit("from")?, unit("to")?)
                    .map_err(ToolError::InvalidArguments)?;
                format!("{} {}", format_number(out), unit("to")?)
            }
            other => return Err(ToolError::UnknownTool(other.to_string())),
        };
        Ok(ToolOutput {
            text,
            annotations: vec![],
        })
    }
}

/// Integers without a trailing `.0`; others with up to 12 significant decimals.
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.12}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

export!(Calculator);
