//! The calculator plugin: `calculate` evaluates arithmetic expressions exactly as written
//! (no code execution, a small recursive-descent parser), `convert_units` converts lengths,
//! masses and temperatures. Pure computation: it imports nothing but logging.

use assistants_plugin::tool::{args, CallContext, Tool, ToolError, ToolOutput, ToolSpec};
use serde::Deserialize;
use serde_json::json;

mod expr;
mod units;

struct Calculator;

#[derive(Deserialize)]
struct Calculate {
    expression: String,
}

#[derive(Deserialize)]
struct Convert {
    value: f64,
    from: String,
    to: String,
}

impl Tool for Calculator {
    fn describe() -> Vec<ToolSpec> {
        vec![
            ToolSpec::new(
                "calculate",
                "Evaluate an arithmetic expression with + - * / ^, parentheses and the functions \
                 sqrt, abs, ln, log10, sin, cos, tan, round, floor, ceil and the constants pi and e.",
                json!({
                    "type": "object",
                    "properties": {"expression": {"type": "string", "description": "e.g. (2 + 3) * sqrt(16)"}},
                    "required": ["expression"],
                    "additionalProperties": false,
                }),
            )
            .strict(),
            ToolSpec::new(
                "convert_units",
                "Convert a value between units of length (m, km, cm, mm, mi, yd, ft, in), mass \
                 (kg, g, mg, lb, oz) or temperature (c, f, k).",
                json!({
                    "type": "object",
                    "properties": {
                        "value": {"type": "number"},
                        "from": {"type": "string"},
                        "to": {"type": "string"},
                    },
                    "required": ["value", "from", "to"],
                    "additionalProperties": false,
                }),
            )
            .strict(),
        ]
    }

    fn invoke(
        _ctx: CallContext,
        name: String,
        arguments_json: String,
    ) -> Result<ToolOutput, ToolError> {
        match name.as_str() {
            "calculate" => {
                let Calculate { expression } = args(&arguments_json)?;
                let value = expr::evaluate(&expression).map_err(ToolError::InvalidArguments)?;
                Ok(format_number(value).into())
            }
            "convert_units" => {
                let Convert { value, from, to } = args(&arguments_json)?;
                let out = units::convert(value, &from, &to).map_err(ToolError::InvalidArguments)?;
                Ok(format!("{} {to}", format_number(out)).into())
            }
            other => Err(ToolError::UnknownTool(other.to_string())),
        }
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

assistants_plugin::export_tool!(Calculator);
