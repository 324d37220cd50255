//! The files a run's code_interpreter works on, as OpenAI gives them to it: the assistant's
//! and the thread's `tool_resources.code_interpreter.file_ids`, and files attached to the
//! thread's messages for the code_interpreter tool. They appear in the session as
//! `/mnt/data/<file_id>`; the model is told each one's name (`input`, the tool's description)
//! and the engine copies them in before a cell runs (`engine::interpreter`). Out of the
//! sandbox: an answer's `sandbox:/mnt/data/…` links become `file_path` annotations.

use serde_json::Value;

use assistants_core::model::{Assistant, FileObject, Message, Run, Thread};
use assistants_core::store::{ListParams, Order, Store, StoreResult};

/// Messages searched for attachments, newest first.
const MESSAGES: i64 = 100;
/// Files offered at most (OpenAI allows 20 in tool_resources and 10 per message).
const MAX_FILES: usize = 50;

/// The run's code_interpreter files that exist, in a stable order (the assistant's — or the
/// run's own, `own`, which replace them — the thread's, then attachments from the newest
/// message).
pub async fn input_files(
    store: &Store,
    project: &str,
    run: &Run,
    own: Option<&[String]>,
) -> StoreResult<Vec<FileObject>> {
    let mut ids: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        if !ids.iter().any(|i| i == id) && ids.len() < MAX_FILES {
            ids.push(id.to_string());
        }
    };
    match own {
        Some(ids) => ids.iter().for_each(|id| add(id)),
        None => {
            if let Some(a) = store.find::<Assistant>(project, &run.assistant_id).await? {
                resource_ids(&a.tool_resources).for_each(&mut add);
            }
        }
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

/// A `sandbox:/mnt/data/…` link in an answer: the whole link text, the path after `sandbox:`,
/// and its character range.
#[derive(Debug, PartialEq)]
pub struct SandboxLink {
    pub text: String,
    pub path: String,
    pub start: usize,
    pub end: usize,
}

const SANDBOX: &str = "sandbox:";

/// The `sandbox:/mnt/data/…` links in `text`, with character indices (as annotations count).
/// A link ends at whitespace, a closing bracket or parenthesis, or a quote.
pub fn sandbox_links(text: &str) -> Vec<SandboxLink> {
    let mut links = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(SANDBOX).map(|i| i + from) {
        let rest = &text[at + SANDBOX.len()..];
        let len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | ']' | '"' | '\'' | '>' | '<'))
            .unwrap_or(rest.len());
        let path = rest[..len].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        let end_byte = at + SANDBOX.len() + path.len();
        if path.starts_with("/mnt/data/") && path.len() > "/mnt/data/".len() {
            let start = text[..at].chars().count();
            let link = &text[at..end_byte];
            links.push(SandboxLink {
                text: link.to_string(),
                path: path.to_string(),
                start,
                end: start + link.chars().count(),
            });
        }
        from = end_byte.max(at + SANDBOX.len());
    }
    links
}

/// `file_path` annotations for the links in `text` whose files were kept.
pub fn file_path_annotations(
    text: &str,
    kept: &[assistants_core::model::engine::SandboxFile],
) -> Vec<Value> {
    sandbox_links(text)
        .into_iter()
        .filter_map(|l| {
            let file = kept.iter().find(|f| f.path == l.path)?;
            Some(serde_json::json!({
                "type": "file_path",
                "text": l.text,
                "start_index": l.start,
                "end_index": l.end,
                "file_path": {"file_id": file.file_id},
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_links_are_found_with_character_indices() {
        let text = "Voilà: [report](sandbox:/mnt/data/report.csv) and sandbox:/mnt/data/b.png.";
        let links = sandbox_links(text);
        assert_eq!(links.len(), 2, "{links:?}");
        assert_eq!(links[0].path, "/mnt/data/report.csv");
        assert_eq!(links[1].path, "/mnt/data/b.png");
        let chars: Vec<char> = text.chars().collect();
        let slice = |l: &SandboxLink| chars[l.start..l.end].iter().collect::<String>();
        assert_eq!(slice(&links[0]), "sandbox:/mnt/data/report.csv");
        assert_eq!(slice(&links[1]), "sandbox:/mnt/data/b.png");
        assert!(sandbox_links("sandbox:/etc/passwd and sandbox:/mnt/data/").is_empty());
    }
}
