//! Items from clients (the Responses surface's `InputItem`): validated and brought to the one
//! stored shape — every item with `type`, `id` and `status`, every message's content a list of
//! typed parts — before anything is written. Conversations' `items` and responses' `input`
//! both come through here.
//!
//! Accepted: messages (the short form `{role, content}` with string or part-list content, and
//! the full form), `function_call`, `function_call_output`, `item_reference` (resolved to the
//! item it names), `compaction` (made by `POST /responses/compact`), `mcp_approval_response`
//! (the client's answer to an MCP approval request), and items of other types
//! a client sends back from earlier output
//! (`file_search_call`, `web_search_call`, `code_interpreter_call`, `reasoning`, MCP items),
//! kept as given.

use serde_json::{json, Map, Value};

use super::common;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use assistants_core::model::ids::ItemId;
use assistants_core::model::response;
use assistants_core::model::{FileObject, Item};

/// Most characters of one text part, as for Assistants messages.
const MAX_TEXT_CHARS: usize = super::messages::MAX_CONTENT_CHARS;
/// Most characters of a function call's arguments or a function call output (10 MiB, as
/// OpenAI's limit on `output`).
const MAX_OUTPUT_CHARS: usize = 10 * 1024 * 1024;

/// Most characters of a compaction item's content (20 MiB, as OpenAI's limit).
const MAX_COMPACTION_CHARS: usize = 20 * 1024 * 1024;

/// Earlier output items a client may send back as they were given.
const ECHOED: [&str; 7] = [
    "file_search_call",
    "web_search_call",
    "code_interpreter_call",
    "reasoning",
    "mcp_list_tools",
    "mcp_call",
    "mcp_approval_request",
];

/// Validates `items` (named `param` in errors: `items`, `input`) and returns them in their
/// stored shape, in order, with new ids where they had none. Nothing is written.
pub async fn normalize(
    state: &AppState,
    project: &str,
    param: &str,
    items: Vec<Value>,
) -> ApiResult<Vec<Item>> {
    let mut out = Vec::with_capacity(items.len());
    let mut files = Vec::new();
    for (i, v) in items.into_iter().enumerate() {
        let p = format!("{param}[{i}]");
        let Value::Object(map) = v else {
            return Err(ApiError::invalid(
                &p,
                format!("Invalid type for '{p}': expected an object."),
            ));
        };
        out.push(one(state, project, &p, map, &mut files).await?);
    }
    if !files.is_empty() {
        let ids: Vec<String> = files.iter().map(|(_, id)| id.clone()).collect();
        let param = files.first().map(|(p, _)| p.clone()).unwrap_or_default();
        common::require_existing::<FileObject>(&state.store, project, &param, &ids).await?;
    }
    Ok(out)
}

fn text_part(role: &str, text: String) -> Value {
    if role == "assistant" {
        json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    } else {
        json!({"type": "input_text", "text": text})
    }
}

fn message(role: &str, content: Value) -> Item {
    item(
        ItemId::of_type("message"),
        json!({"type": "message", "status": "completed", "role": role, "content": content}),
    )
}

fn item(id: ItemId, fields: Value) -> Item {
    let Value::Object(fields) = fields else {
        unreachable!("items are built from object literals")
    };
    Item {
        id,
        fields,
        conversation_id: None,
        response_id: None,
        created_at: assistants_core::model::ids::now(),
    }
}

async fn one(
    state: &AppState,
    project: &str,
    p: &str,
    mut map: Map<String, Value>,
    files: &mut Vec<(String, String)>,
) -> ApiResult<Item> {
    let kind = match map.get("type") {
        None | Some(Value::Null) if map.contains_key("role") => "message".to_string(),
        None | Some(Value::Null) if map.contains_key("id") => "item_reference".to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(ApiError::invalid(
                format!("{p}.type"),
                format!("Missing required parameter: '{p}.type'."),
            ))
        }
    };
    let id = match map.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(ItemId::parse(s).map_err(|_| {
            ApiError::invalid(format!("{p}.id"), format!("Invalid '{p}.id': '{s}'."))
        })?),
        Some(_) => {
            return Err(ApiError::invalid(
                format!("{p}.id"),
                format!("Invalid type for '{p}.id': expected a string."),
            ))
        }
    };
    match kind.as_str() {
        "message" => {
            let role = str_field(&map, p, "role")?;
            if !["user", "assistant", "system", "developer"].contains(&role.as_str()) {
                return Err(ApiError::invalid(
                    format!("{p}.role"),
                    format!(
                        "Invalid value: '{role}'. Supported values are: 'user', 'assistant', 'system', and 'developer'."
                    ),
                ));
            }
            let content = match map.remove("content") {
                Some(Value::String(s)) => {
                    max_chars(&format!("{p}.content"), &s, MAX_TEXT_CHARS)?;
                    json!([text_part(&role, s)])
                }
                Some(Value::Array(parts)) => {
                    Value::Array(content_parts(&format!("{p}.content"), &role, parts, files)?)
                }
                _ => {
                    return Err(ApiError::invalid(
                        format!("{p}.content"),
                        format!(
                        "Invalid '{p}.content': expected a string or an array of content parts."
                    ),
                    ))
                }
            };
            let mut m = message(&role, content);
            if let Some(id) = id {
                m.id = id;
            }
            Ok(m)
        }
        "function_call" => {
            let call_id = str_field(&map, p, "call_id")?;
            let name = str_field(&map, p, "name")?;
            let arguments = str_field(&map, p, "arguments")?;
            max_chars(&format!("{p}.arguments"), &arguments, MAX_OUTPUT_CHARS)?;
            Ok(item(
                id.unwrap_or_else(|| ItemId::of_type("function_call")),
                json!({"type": "function_call", "status": "completed", "call_id": call_id,
                       "name": name, "arguments": arguments}),
            ))
        }
        "function_call_output" => {
            let call_id = str_field(&map, p, "call_id")?;
            let output = match map.remove("output") {
                Some(Value::String(s)) => {
                    max_chars(&format!("{p}.output"), &s, MAX_OUTPUT_CHARS)?;
                    Value::String(s)
                }
                Some(Value::Array(parts)) => {
                    Value::Array(content_parts(&format!("{p}.output"), "user", parts, files)?)
                }
                _ => {
                    return Err(ApiError::invalid(
                        format!("{p}.output"),
                        format!("Missing required parameter: '{p}.output'."),
                    ))
                }
            };
            Ok(item(
                id.unwrap_or_else(|| ItemId::of_type("function_call_output")),
                json!({"type": "function_call_output", "status": "completed",
                       "call_id": call_id, "output": output}),
            ))
        }
        "item_reference" => {
            let id = id.ok_or_else(|| {
                ApiError::invalid(
                    format!("{p}.id"),
                    format!("Missing required parameter: '{p}.id'."),
                )
            })?;
            state.store.find_item(project, &id).await?.ok_or_else(|| {
                ApiError::invalid(format!("{p}.id"), format!("Item with id '{id}' not found."))
            })
        }
        "compaction" => {
            let content = str_field(&map, p, "encrypted_content")?;
            let param = format!("{p}.encrypted_content");
            max_chars(&param, &content, MAX_COMPACTION_CHARS)?;
            if response::compaction_summary(&content).is_none() {
                return Err(ApiError::invalid(
                    &param,
                    format!("Invalid '{param}': not a compaction made by this server."),
                ));
            }
            Ok(item(
                id.unwrap_or_else(|| ItemId::of_type("compaction")),
                json!({"type": "compaction", "encrypted_content": content}),
            ))
        }
        "mcp_approval_response" => {
            let request = str_field(&map, p, "approval_request_id")?;
            let approve = match map.get("approve") {
                Some(Value::Bool(b)) => *b,
                None | Some(Value::Null) => {
                    return Err(ApiError::invalid(
                        format!("{p}.approve"),
                        format!("Missing required parameter: '{p}.approve'."),
                    ))
                }
                Some(_) => {
                    return Err(ApiError::invalid(
                        format!("{p}.approve"),
                        format!("Invalid type for '{p}.approve': expected a boolean."),
                    ))
                }
            };
            let reason = match map.get("reason") {
                None | Some(Value::Null) => None,
                Some(Value::String(r)) => Some(r.clone()),
                Some(_) => {
                    return Err(ApiError::invalid(
                        format!("{p}.reason"),
                        format!("Invalid type for '{p}.reason': expected a string."),
                    ))
                }
            };
            max_chars(
                &format!("{p}.reason"),
                reason.as_deref().unwrap_or(""),
                MAX_TEXT_CHARS,
            )?;
            Ok(item(
                id.unwrap_or_else(|| ItemId::of_type("mcp_approval_response")),
                json!({"type": "mcp_approval_response", "approval_request_id": request,
                       "approve": approve, "reason": reason}),
            ))
        }
        k if ECHOED.contains(&k) => {
            let id = id.ok_or_else(|| {
                ApiError::invalid(
                    format!("{p}.id"),
                    format!("Missing required parameter: '{p}.id'."),
                )
            })?;
            map.remove("id");
            map.entry("status").or_insert_with(|| json!("completed"));
            Ok(Item {
                id,
                fields: map,
                conversation_id: None,
                response_id: None,
                created_at: assistants_core::model::ids::now(),
            })
        }
        other => Err(ApiError::invalid(
            format!("{p}.type"),
            format!("Invalid value: '{other}'. This server does not accept items of this type."),
        )),
    }
}

/// Content parts (of a message's `content` or an output's `output`, named `field`),
/// validated; file ids collected for one existence check.
fn content_parts(
    field: &str,
    role: &str,
    parts: Vec<Value>,
    files: &mut Vec<(String, String)>,
) -> ApiResult<Vec<Value>> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        let pp = format!("{field}[{j}]");
        let Value::Object(mut m) = part else {
            return Err(ApiError::invalid(
                &pp,
                format!("Invalid type for '{pp}': expected an object."),
            ));
        };
        let kind = m
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match kind.as_str() {
            "input_text" | "output_text" if kind == "input_text" || role == "assistant" => {
                let text = str_field(&m, &pp, "text")?;
                max_chars(&format!("{pp}.text"), &text, MAX_TEXT_CHARS)?;
                if kind == "output_text" {
                    let annotations = m.remove("annotations").unwrap_or_else(|| json!([]));
                    out.push(json!({"type": "output_text", "text": text,
                                    "annotations": annotations, "logprobs": []}));
                } else {
                    out.push(json!({"type": "input_text", "text": text}));
                }
            }
            "refusal" if role == "assistant" => {
                let refusal = str_field(&m, &pp, "refusal")?;
                out.push(json!({"type": "refusal", "refusal": refusal}));
            }
            "input_image" => {
                let url = m.get("image_url").and_then(Value::as_str);
                let file = m.get("file_id").and_then(Value::as_str);
                if url.is_none() && file.is_none() {
                    return Err(ApiError::invalid(
                        format!("{pp}.image_url"),
                        format!("Invalid '{pp}': give 'image_url' or 'file_id'."),
                    ));
                }
                if let Some(f) = file {
                    files.push((format!("{pp}.file_id"), f.to_string()));
                }
                let detail = m.get("detail").and_then(Value::as_str).unwrap_or("auto");
                if !["auto", "low", "high"].contains(&detail) {
                    return Err(ApiError::invalid(
                        format!("{pp}.detail"),
                        format!("Invalid value: '{detail}'. Supported values are: 'auto', 'low', and 'high'."),
                    ));
                }
                out.push(json!({"type": "input_image", "image_url": url, "file_id": file,
                                "detail": detail}));
            }
            "input_file" => {
                let file = m.get("file_id").and_then(Value::as_str);
                let data = m.get("file_data").and_then(Value::as_str);
                let url = m.get("file_url").and_then(Value::as_str);
                if file.is_none() && data.is_none() && url.is_none() {
                    return Err(ApiError::invalid(
                        format!("{pp}.file_id"),
                        format!("Invalid '{pp}': give 'file_id', 'file_data' or 'file_url'."),
                    ));
                }
                if let Some(f) = file {
                    files.push((format!("{pp}.file_id"), f.to_string()));
                }
                let mut part = json!({"type": "input_file"});
                for key in ["file_id", "filename", "file_data", "file_url"] {
                    if let Some(v) = m.get(key).filter(|v| v.is_string()) {
                        part[key] = v.clone();
                    }
                }
                out.push(part);
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{pp}.type"),
                    format!("Invalid value: '{other}'. Supported content types here are 'input_text', 'input_image', 'input_file'{}.",
                        if role == "assistant" { ", 'output_text' and 'refusal'" } else { "" }),
                ))
            }
        }
    }
    Ok(out)
}

fn str_field(m: &Map<String, Value>, p: &str, key: &str) -> ApiResult<String> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(ApiError::invalid(
            format!("{p}.{key}"),
            format!("Missing required parameter: '{p}.{key}'."),
        )),
        Some(_) => Err(ApiError::invalid(
            format!("{p}.{key}"),
            format!("Invalid type for '{p}.{key}': expected a string."),
        )),
    }
}

fn max_chars(param: &str, s: &str, max: usize) -> ApiResult<()> {
    // Bytes bound characters from above: count only when it could matter.
    if s.len() > max {
        common::max_chars(param, &Some(s.to_string()), max)?;
    }
    Ok(())
}
