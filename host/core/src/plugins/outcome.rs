//! What became of a sandboxed call, for metrics and for the caller: outcome labels, trap
//! descriptions, result sizes, and plugin-written text cut to size.

use super::*;

/// Bytes an annotation adds to a result (its strings plus a fixed overhead).
pub(super) fn annotation_size(a: &bindings::Annotation) -> usize {
    32 + match a {
        bindings::Annotation::File(c) => c.file_id.len() + c.quote.as_ref().map_or(0, String::len),
        bindings::Annotation::Url(c) => c.url.len() + c.title.as_ref().map_or(0, String::len),
    }
}

/// The metrics label of a sandboxed call's outcome (timed out on the host's clock, trapped —
/// and which limit that trap hit — or the plugin's own answer, ok or error).
pub(super) fn call_outcome<T, E>(
    outcome: &Result<wasmtime::Result<Result<T, E>>, tokio::time::error::Elapsed>,
    memory: MemoryStop,
) -> &'static str {
    match outcome {
        Err(_) => "timeout",
        Ok(Err(_)) if memory != MemoryStop::None => "memory",
        Ok(Err(trap)) => match trap.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => "timeout",
            _ => "trap",
        },
        Ok(Ok(Ok(_))) => "ok",
        Ok(Ok(Err(_))) => "error",
    }
}

/// A trap as the model should read it: which limit was hit (the memory limit is known from the
/// store's limiter, not guessed from the message), or that the tool crashed.
pub(super) fn describe_trap(e: &wasmtime::Error, limits: &Effective, memory: MemoryStop) -> String {
    match memory {
        MemoryStop::OwnLimit => {
            return format!(
                "the tool exceeded its memory limit of {} MiB",
                limits.memory_mib
            )
        }
        MemoryStop::HostBudget => {
            return "the server's memory for plugin calls is taken by other calls right now; \
                    try again shortly"
                .into()
        }
        MemoryStop::None => {}
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        match trap {
            wasmtime::Trap::Interrupt => {
                return format!(
                    "the tool did not finish within its time limit of {} ms",
                    limits.timeout_ms
                )
            }
            wasmtime::Trap::StackOverflow => return "the tool overflowed its stack".into(),
            _ => {}
        }
    }
    if let Some(wasmtime::Trap::UnreachableCodeReached) = e.downcast_ref::<wasmtime::Trap>() {
        return "the tool crashed (it panicked or hit an unreachable instruction)".into();
    }
    let text = format!("{e:#}");
    // A plugin granted no host has wasi:http imports that trap (see `World::instantiate_pre`).
    if text.contains("unknown import: `wasi:http/") {
        return "the tool has no network grant: outgoing HTTP is not available to it".into();
    }
    format!(
        "the tool crashed: {}",
        text.lines().next().unwrap_or("trap")
    )
}

/// `text` cut to at most `limit` bytes at a character boundary, ending with a note of how long
/// it was. Plugin-written text (a tool's error, a strategy's error) is bounded like results
/// before anything stores, logs or shows it.
pub(crate) fn cap_text(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let note = format!(" … [truncated from {} bytes]", text.len());
    let keep = text.floor_char_boundary(limit.saturating_sub(note.len()));
    let mut cut = text;
    cut.truncate(keep);
    cut.push_str(&note);
    cut
}

/// A tool's error with its text capped at `limit` bytes (see [`cap_text`]).
pub(super) fn cap_error(e: ToolError, limit: usize) -> ToolError {
    match e {
        ToolError::InvalidArguments(m) => ToolError::InvalidArguments(cap_text(m, limit)),
        ToolError::UnknownTool(m) => ToolError::UnknownTool(cap_text(m, limit)),
        ToolError::Failed(m) => ToolError::Failed(cap_text(m, limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::cap_text;

    #[test]
    fn cap_text_bounds_and_keeps_characters_whole() {
        assert_eq!(cap_text("short".into(), 100), "short");
        let long = "é".repeat(10_000); // 2 bytes each
        let cut = cap_text(long, 1000);
        assert!(cut.len() <= 1000, "{}", cut.len());
        assert!(cut.starts_with("éé"));
        assert!(cut.ends_with("[truncated from 20000 bytes]"), "{cut}");
        // A limit smaller than the note still gives a bounded, valid string.
        assert!(cap_text("x".repeat(500), 10).len() <= 64);
    }
}
