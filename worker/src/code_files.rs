//! The files a run's code_interpreter works on, as OpenAI gives them to it: the assistant's
//! and the thread's `tool_resources.code_interpreter.file_ids`, and files attached to the
//! thread's messages for the code_interpreter tool. They appear in the session as
//! `/mnt/data/<file_id>`; the model is told each one's name (`input`, the tool's description)
//! and the engine copies them in before a cell runs (`engine::interpreter`).

use serde_json::Value;

use assistants_core::model::{Assistant, FileObject, Message, Run, Thread};
use assistants_core::store::{ListParams, Order, Store, StoreResult};

/// Messages searched for attachments, newest first.
const MESSAGES: i64 = 100;
/// Files offered at most (OpenAI allows 20 in tool_resources and 10 per message).
const MAX_FILES: usize = 50;

/// The run's code_interpreter files that exist, in a stable order (assistant, thread, then
/// attachments from the newest message).
pub async fn input_files(store: &Store, project: &str, run: &Run) -> StoreResult<Vec<FileObject>> {
    let mut ids: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        if !ids.iter().any(|i| i == id) && ids.len() < MAX_FILES {
            ids.push(id.to_string());
        }
    };
    if let Some(a) = store.find::<Assistant>(project, &run.assistant_id).await? {
        resource_ids(&a.tool_resources).for_each(&mut add);
    }
    if let Some(t) = store.find::<Thread>(project, &run.thread_id).await? {
        resource_ids(&t.tool_resources).for_each(&mut add);
    }
    let params = ListParams {
        limit: MESSAGES,
        order: Order::Desc,
        after: None,
        before: None,
    };
    let page = store
        .list::<Message>(
            project,
            Some(("thread_id", &run.thread_id)),
            vec![],
            &params,
        )
        .await?;
    for m in &page.items {
        for a in &m.attachments {
            let for_code = a["tools"].as_array().is_some_and(|tools| {
                tools
                    .iter()
                    .any(|t| t["type"] == assistants_core::interpreter::TOOL)
            });
            if let (true, Some(id)) = (for_code, a["file_id"].as_str()) {
                add(id);
            }
        }
    }
    let mut files = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(f) = store.find::<FileObject>(project, &id).await? {
            files.push(f);
        }
    }
    Ok(files)
}

fn resource_ids(resources: &Value) -> impl Iterator<Item = &str> {
    resources
        .pointer("/code_interpreter/file_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}
