//! The weather plugin: `current_weather(city)` calls `GET {base_url}/v1/current?city=…` on the
//! operator's weather API and summarises the JSON answer
//! (`{"city", "temperature_c", "conditions", "wind_kph"}`) for the model. It shows the shape of
//! a network-using plugin: the URL comes from `config`, the credential is injected by the host,
//! and every request goes through the host's outgoing-HTTP policy.

use assistants_plugin::tool::{config, CallContext, Tool, ToolError, ToolOutput, ToolSpec};

struct Weather;

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get_json(url: &str) -> Result<serde_json::Value, ToolError> {
    wstd::runtime::block_on(async move {
        let request = wstd::http::Request::get(url)
            .body(wstd::http::Body::empty())
            .map_err(|e| ToolError::Failed(format!("bad request: {e}")))?;
        let mut response = wstd::http::Client::new().send(request).await.map_err(|e| {
            ToolError::Failed(format!("the weather API could not be reached: {e:?}"))
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .str_contents()
            .await
            .map_err(|e| ToolError::Failed(format!("reading the answer failed: {e:?}")))?
            .to_string();
        if status != 200 {
            return Err(ToolError::Failed(format!(
                "the weather API answered {status}: {body}"
            )));
        }
        serde_json::from_str(&body)
            .map_err(|e| ToolError::Failed(format!("the weather API sent invalid JSON: {e}")))
    })
}

impl Tool for Weather {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "current_weather".into(),
            description: "Current temperature, conditions and wind for a city.".into(),
            parameters_json: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}"#.into(),
            strict: true,
        }]
    }

    fn invoke(
        _ctx: CallContext,
        name: String,
        arguments_json: String,
    ) -> Result<ToolOutput, ToolError> {
        if name != "current_weather" {
            return Err(ToolError::UnknownTool(name));
        }
        let args: serde_json::Value = serde_json::from_str(&arguments_json)
            .map_err(|e| ToolError::InvalidArguments(format!("arguments are not JSON: {e}")))?;
        let city = args["city"]
            .as_str()
            .ok_or_else(|| ToolError::InvalidArguments("'city' must be a string".into()))?;
        let base = config("base_url")
            .ok_or_else(|| ToolError::Failed("the operator has not configured base_url".into()))?;
        let url = format!(
            "{}/v1/current?city={}",
            base.trim_end_matches('/'),
            encode(city)
        );
        assistants_plugin::log::debug(&format!("GET {url}"));
        let w = get_json(&url)?;
        let text = format!(
            "{}: {} °C, {}, wind {} km/h",
            w["city"].as_str().unwrap_or(city),
            w["temperature_c"],
            w["conditions"].as_str().unwrap_or("unknown conditions"),
            w["wind_kph"]
        );
        Ok(ToolOutput {
            text,
            annotations: vec![],
        })
    }
}

assistants_plugin::export_tool!(Weather);
