//! What became of a sandboxed call, for metrics and for the caller: outcome labels, trap
//! descriptions, result sizes.

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
    memory_limit_hit: bool,
) -> &'static str {
    match outcome {
        Err(_) => "timeout",
        Ok(Err(_)) if memory_limit_hit => "memory",
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
pub(super) fn describe_trap(
    e: &wasmtime::Error,
    limits: &Effective,
    memory_limit_hit: bool,
) -> String {
    if memory_limit_hit {
        return format!(
            "the tool exceeded its memory limit of {} MiB",
            limits.memory_mib
        );
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
    format!(
        "the tool crashed: {}",
        text.lines().next().unwrap_or("trap")
    )
}
