//! The code_interpreter tool in a run: the model's calls run as cells in the thread's session
//! (`assistants_core::interpreter`), and are recorded in OpenAI's `code_interpreter` step shape
//! (`input`, then `outputs` with the cell's `logs`), streamed as the model writes the code.

use super::*;
use assistants_core::blobs::{file_key, Blobs};
use assistants_core::interpreter::report::result_text;
use assistants_core::interpreter::service::CodeInterpreter;
use assistants_core::interpreter::{self as interp};
use assistants_core::limits::{ProjectLimits, Usage};
use assistants_core::model::engine::SandboxFile;
use assistants_core::model::ids::FileId;
use assistants_core::model::{FileObject, FileStatus};
use assistants_core::store::Val;

impl Engine {
    /// Whether the model's function `name` is the code interpreter.
    pub(super) fn is_code_interpreter(ctx: &Ctx, name: &str) -> bool {
        ctx.rec
            .tools
            .iter()
            .any(|b| b.exposed == name && b.plugin == interp::TOOL)
    }
}

/// The Python source in a call's arguments: `{"code": "..."}` as offered, or (as some models
/// trained on OpenAI's tool send it) the bare source.
pub(super) fn code_of(arguments: &str) -> Result<String, String> {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) => v
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                "the arguments must be an object with the Python source in `code`".to_string()
            }),
        Err(_) if !arguments.trim().is_empty() => Ok(arguments.to_string()),
        Err(_) => Err("no code was given".to_string()),
    }
}

/// A code_interpreter call as a step lists it: its input, and its outputs once it ran.
pub(super) fn entry(id: &str, input: &str, logs: Option<&str>) -> Value {
    let mut ci = json!({ "input": input });
    if let Some(logs) = logs {
        ci["outputs"] = if logs.is_empty() {
            json!([])
        } else {
            json!([{ "type": "logs", "logs": logs }])
        };
    }
    json!({ "id": id, "type": "code_interpreter", "code_interpreter": ci })
}

/// Where a call runs and what it may read.
pub(super) struct Place {
    pub interpreter: Arc<CodeInterpreter>,
    pub store: Store,
    pub blobs: Blobs,
    pub limits: ProjectLimits,
    pub project: String,
    pub run: Run,
    /// The run's own input files, replacing the assistant's (`EngineRecord::code_file_ids`).
    pub code_file_ids: Option<Vec<String>>,
}

/// Copies the run's input files into the thread's `/mnt/data` (each once: a file's bytes
/// never change), through a temporary file beside it so the guest never sees half a file.
async fn provide_files(place: &Place) {
    let thread = place.run.thread_id.to_string();
    let dir = place.interpreter.data_dir(&thread);
    let result: anyhow::Result<()> = async {
        let files = crate::code_files::input_files(
            &place.store,
            &place.project,
            &place.run,
            place.code_file_ids.as_deref(),
        )
        .await?;
        tokio::fs::create_dir_all(&dir).await?;
        let staging = dir.parent().unwrap_or(&dir).to_path_buf();
        for f in files {
            let path = dir.join(f.id.as_str());
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                continue;
            }
            let mut stream = place.blobs.get_stream(&file_key(f.id.as_str())).await?;
            let tmp = tempfile::NamedTempFile::new_in(&staging)?;
            let mut out = tokio::fs::File::from_std(tmp.reopen()?);
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                tokio::io::AsyncWriteExt::write_all(&mut out, &chunk?).await?;
            }
            tokio::io::AsyncWriteExt::flush(&mut out).await?;
            tmp.persist(&path)?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(
            thread,
            error = format!("{e:#}"),
            "could not provide the code_interpreter's input files"
        );
    }
}

/// Keeps bytes the code produced as a file of the run's project, with purpose
/// `assistants_output` (as OpenAI's code_interpreter outputs are), within the project's
/// storage quota; its id.
async fn save_output(
    store: &Store,
    blobs: &Blobs,
    limits: &ProjectLimits,
    project: &str,
    filename: String,
    content: Vec<u8>,
) -> anyhow::Result<String> {
    let id = FileId::new();
    let bytes = content.len() as u64;
    if limits.limits_storage() {
        let adding = Usage {
            bytes,
            files: 1,
            chunks: 0,
        };
        limits.check(store.project_usage(project).await?, adding)?;
    }
    blobs.put_bytes(&file_key(id.as_str()), content).await?;
    let file = FileObject {
        id: id.clone(),
        object: "file".into(),
        bytes: bytes as i64,
        created_at: now(),
        expires_at: None,
        filename,
        purpose: "assistants_output".into(),
        status: FileStatus::Processed,
        status_details: None,
    };
    store
        .insert(
            project,
            &file,
            &[
                ("purpose", Val::Text("assistants_output".into())),
                ("expires_at", Val::OptInt(None)),
            ],
        )
        .await?;
    Ok(id.to_string())
}

/// A file below `dir` at `rel` that is a regular file reached through real directories only
/// (the guest can make symlinks in /mnt/data; the host must not follow them out of it).
async fn sandbox_file(dir: &std::path::Path, rel: &str) -> Option<std::path::PathBuf> {
    let mut path = dir.to_path_buf();
    let parts: Vec<_> = std::path::Path::new(rel).components().collect();
    for (i, part) in parts.iter().enumerate() {
        let std::path::Component::Normal(name) = part else {
            return None;
        };
        path.push(name);
        let meta = tokio::fs::symlink_metadata(&path).await.ok()?;
        let last = i + 1 == parts.len();
        let fits = if last {
            meta.is_file() && meta.len() <= MAX_OUTPUT_BYTES
        } else {
            meta.is_dir()
        };
        if !fits {
            return None;
        }
    }
    (!parts.is_empty()).then_some(path)
}

/// The largest file an answer's `sandbox:` link keeps.
const MAX_OUTPUT_BYTES: u64 = 64 << 20;

impl Engine {
    /// Keeps the files an answer links as `sandbox:/mnt/data/…` (each path once per run), so
    /// its `file_path` annotations can point at them. Called before the answer's transaction
    /// (writing a file inside it would wait for SQLite's writer that transaction holds). No
    /// thread's cell runs meanwhile: a thread has one active run at a time.
    pub(super) async fn keep_sandbox_files(&self, ctx: &mut Ctx, text: &str) {
        if !ctx.rec.tools.iter().any(|b| b.plugin == interp::TOOL) {
            return;
        }
        let dir = self.interpreter.data_dir(ctx.run.thread_id.as_str());
        for link in crate::code_files::sandbox_links(text) {
            if ctx.rec.sandbox_files.iter().any(|f| f.path == link.path) {
                continue;
            }
            let rel = &link.path[interp::session::GUEST_DATA.len() + 1..];
            // The session's directory here, or (its session no longer live on this node)
            // the thread's stored snapshot.
            let content = match sandbox_file(&dir, rel).await {
                Some(host) => tokio::fs::read(&host).await.ok(),
                None => {
                    let thread = ctx.run.thread_id.as_str();
                    self.interpreter
                        .stored_file(thread, rel, MAX_OUTPUT_BYTES)
                        .await
                }
            };
            let Some(content) = content else {
                continue;
            };
            let name = rel.rsplit('/').next().unwrap_or(rel).to_string();
            let kept = save_output(
                &self.store,
                &self.blobs,
                &self.limits,
                &ctx.project,
                name,
                content,
            )
            .await;
            match kept {
                Ok(file_id) => ctx.rec.sandbox_files.push(SandboxFile {
                    path: link.path,
                    file_id,
                }),
                Err(e) => {
                    tracing::warn!(path = %link.path, error = format!("{e:#}"), "could not keep a file an answer links")
                }
            }
        }
    }
}

/// Runs one call in `thread`'s session: the text the model reads, and the step entry.
pub(super) async fn call(place: &Place, call: &ToolCall) -> (ToolResult, Value) {
    let interpreter = &place.interpreter;
    let thread = place.run.thread_id.to_string();
    let thread = thread.as_str();
    let input = code_of(&call.arguments_json);
    let mut images: Vec<String> = Vec::new();
    // What the model reads is what the step's logs show (errors included), plus a note on
    // the images it displayed.
    let (output, is_error, logs) = match &input {
        Err(e) => {
            let text = format!("error: {e}");
            (text.clone(), true, text)
        }
        Ok(code) => match interpreter
            .run_cell(thread, code, provide_files(place))
            .await
        {
            Err(why) => {
                let text = format!("error: code_interpreter is not available: {why}");
                (text.clone(), true, text)
            }
            Ok(report) => {
                let logs = result_text(&report);
                let mut text = logs.clone();
                let failed = !matches!(
                    report.outcome.status,
                    interp::session::CellStatus::Ok | interp::session::CellStatus::Exit(0)
                );
                for (i, png) in report.images.into_iter().enumerate() {
                    let name = format!("{}-{i}.png", call.id);
                    let kept = save_output(
                        &place.store,
                        &place.blobs,
                        &place.limits,
                        &place.project,
                        name,
                        png,
                    )
                    .await;
                    match kept {
                        Ok(id) => images.push(id),
                        Err(e) => {
                            tracing::warn!(
                                error = format!("{e:#}"),
                                "could not keep a code_interpreter figure"
                            );
                            text.push_str(&format!("\n[a figure could not be kept: {e}]"));
                        }
                    }
                }
                if !images.is_empty() {
                    if !text.is_empty() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    text.push_str(&format!(
                        "[{} image(s) displayed to the user: {}]",
                        images.len(),
                        images.join(", ")
                    ));
                }
                // The step's logs are the cell's output; the note on images is for the model.
                (text, failed, logs)
            }
        },
    };
    let input = input.unwrap_or_else(|_| call.arguments_json.clone());
    let mut entry = entry(&call.id, &input, Some(&logs));
    if let Some(outputs) = entry
        .pointer_mut("/code_interpreter/outputs")
        .and_then(Value::as_array_mut)
    {
        for id in &images {
            outputs.push(json!({"type": "image", "image": {"file_id": id}}));
        }
    }
    let result = ToolResult {
        tool_call_id: call.id.clone(),
        output,
        is_error,
    };
    (result, entry)
}

/// The Python source decoded so far from a streamed `{"code": "..."` prefix: what a client
/// can be shown while the model is still writing. Stops before an incomplete escape.
pub(super) fn streamed_code(partial: &str) -> String {
    let Some(key) = partial.find("\"code\"") else {
        return String::new();
    };
    let rest = partial[key + 6..].trim_start();
    let Some(rest) = rest.strip_prefix(':') else {
        return String::new();
    };
    let Some(body) = rest.trim_start().strip_prefix('"') else {
        return String::new();
    };
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => {
                let Some(e) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        if hex.len() < 4 {
                            break;
                        }
                        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                            Some(ch) => out.push(ch),
                            // A surrogate pair half: shown once the whole call is known.
                            None => break,
                        }
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_code_decodes_what_has_arrived() {
        assert_eq!(streamed_code(""), "");
        assert_eq!(streamed_code("{\"co"), "");
        assert_eq!(streamed_code("{\"code\": \"import"), "import");
        assert_eq!(
            streamed_code("{\"code\": \"x = 1\\nprint(x"),
            "x = 1\nprint(x"
        );
        // An escape cut in half waits for its second half.
        assert_eq!(streamed_code("{\"code\": \"a\\"), "a");
        assert_eq!(streamed_code("{\"code\": \"\\u00e9t\\u00"), "ét");
        assert_eq!(streamed_code("{\"code\": \"q = \\\"s\\\"\"}"), "q = \"s\"");
    }

    #[test]
    fn code_is_read_from_json_or_taken_bare() {
        assert_eq!(code_of(r#"{"code": "1+1"}"#).unwrap(), "1+1");
        assert_eq!(code_of("print(2)").unwrap(), "print(2)");
        assert!(code_of(r#"{"source": "1"}"#).is_err());
        assert!(code_of("  ").is_err());
    }
}
