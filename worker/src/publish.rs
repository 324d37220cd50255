//! Which part of a streaming LLM answer reaches clients as message deltas.
//!
//! A strategy asks for one of three modes with each LLM call: publish everything (native
//! function calling: the text is the answer), nothing (the strategy parses the text and emits a
//! message itself), or only what follows a marker (ReAct: the model thinks aloud, and only the
//! text after `Final Answer:` is the answer). Chunks split text anywhere, including inside the
//! marker, so the filter keeps what it has seen until the marker is decided.

/// How an LLM call's text is published (mirrors the WIT `publish-mode`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    Message,
    Silent,
    AfterMarker(String),
}

/// Feeds on streamed chunks and hands back the text to publish.
#[derive(Debug)]
pub struct Filter {
    mode: Mode,
    /// Text seen before the marker was found (AfterMarker only).
    pending: String,
    /// The marker was found; everything after it is published.
    open: bool,
    /// Whitespace right after the marker is dropped until the first visible character.
    started: bool,
}

impl Filter {
    pub fn new(mode: Mode) -> Filter {
        let open = mode == Mode::Message;
        Filter {
            mode,
            pending: String::new(),
            open,
            started: open,
        }
    }

    /// The publishable part of `chunk` (possibly empty).
    pub fn push(&mut self, chunk: &str) -> String {
        match &self.mode {
            Mode::Silent => String::new(),
            Mode::Message => chunk.to_string(),
            Mode::AfterMarker(marker) => {
                if self.open {
                    return self.strip_leading(chunk);
                }
                self.pending.push_str(chunk);
                match self.pending.find(marker.as_str()) {
                    Some(at) => {
                        self.open = true;
                        let rest = self.pending[at + marker.len()..].to_string();
                        self.pending.clear();
                        self.strip_leading(&rest)
                    }
                    None => String::new(),
                }
            }
        }
    }

    fn strip_leading(&mut self, s: &str) -> String {
        if self.started {
            return s.to_string();
        }
        let t = s.trim_start();
        if !t.is_empty() {
            self.started = true;
        }
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: Mode, chunks: &[&str]) -> String {
        let mut f = Filter::new(mode);
        chunks.iter().map(|c| f.push(c)).collect()
    }

    #[test]
    fn message_mode_publishes_everything_and_silent_nothing() {
        assert_eq!(run(Mode::Message, &["Hel", "lo"]), "Hello");
        assert_eq!(run(Mode::Silent, &["Hel", "lo"]), "");
    }

    #[test]
    fn marker_split_across_chunks_is_found_and_not_published() {
        let m = Mode::AfterMarker("Final Answer:".into());
        let out = run(
            m.clone(),
            &["Thought: done\nFinal An", "swer:", "  ", " It is", " 42."],
        );
        assert_eq!(out, "It is 42.");
        assert_eq!(run(m.clone(), &["Thought: x\nAction: y"]), "");
        // Every possible split point of the marker.
        let text = "Thought: ok\nFinal Answer: yes";
        for i in 0..text.len() {
            assert_eq!(
                run(m.clone(), &[&text[..i], &text[i..]]),
                "yes",
                "split at {i}"
            );
        }
    }
}
