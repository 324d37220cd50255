//! Streamed tool calls, assembled.
//!
//! A chat-completions stream sends each tool call in fragments keyed by `index`: the first
//! names it (upstream id, function name), later ones append argument text. The assembler keeps
//! them in index order and tells the caller, per fragment, what is new, which is exactly what a
//! `thread.run.step.delta` carries (name once, argument fragments after; strings concatenate on
//! the client, so nothing is ever repeated).

/// One streamed fragment of a tool call.
#[derive(Debug, Clone, Default)]
pub struct Fragment {
    pub index: u32,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: Option<String>,
}

/// What a fragment added, for the step delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// Position of the call within this step (dense, in order of first appearance).
    pub position: usize,
    /// True for the first fragment of a call: the delta must name it.
    pub first: bool,
    pub name: String,
    pub arguments: String,
}

/// A whole call as the model made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub upstream_id: Option<String>,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Default)]
pub struct Assembler {
    /// (upstream index, call)
    calls: Vec<(u32, Call)>,
}

impl Assembler {
    pub fn push(&mut self, f: Fragment) -> Added {
        // A call is new when its index is first seen, whatever the fragment carries: some
        // servers open a call with a fragment holding only its id.
        let first = !self.calls.iter().any(|(i, _)| *i == f.index);
        let position = match self.calls.iter().position(|(i, _)| *i == f.index) {
            Some(p) => p,
            None => {
                self.calls.push((
                    f.index,
                    Call {
                        upstream_id: None,
                        name: String::new(),
                        arguments: String::new(),
                    },
                ));
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[position].1;
        if call.upstream_id.is_none() {
            call.upstream_id = f.id.filter(|s| !s.is_empty());
        }
        // Some servers repeat the name in every fragment; it is the same call, not a longer
        // name. The name is reported once, with whichever fragment first carries it.
        let name = match f.name.filter(|n| !n.is_empty()) {
            Some(n) if call.name.is_empty() => {
                call.name = n.clone();
                n
            }
            _ => String::new(),
        };
        let arguments = f.arguments.unwrap_or_default();
        call.arguments.push_str(&arguments);
        Added {
            position,
            first,
            name,
            arguments,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls in order of first appearance.
    pub fn finish(self) -> Vec<Call> {
        self.calls.into_iter().map(|(_, c)| c).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(index: u32, name: Option<&str>, args: &str) -> Fragment {
        Fragment {
            index,
            id: name.map(|n| format!("up_{n}")),
            name: name.map(str::to_string),
            arguments: Some(args.into()),
        }
    }

    #[test]
    fn fragments_assemble_in_order_and_name_each_call_once() {
        let mut a = Assembler::default();
        let first = a.push(frag(0, Some("get_weather"), ""));
        assert!(first.first && first.name == "get_weather" && first.position == 0);
        let more = a.push(frag(0, None, "{\"city\":"));
        assert!(!more.first && more.name.is_empty());
        a.push(frag(0, Some("get_weather"), "\"Paris\"}"));
        let other = a.push(frag(3, Some("calc"), "{}"));
        assert_eq!(other.position, 1);
        let calls = a.finish();
        assert_eq!(calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].upstream_id.as_deref(), Some("up_get_weather"));
        assert_eq!(calls[1].name, "calc");
    }

    #[test]
    fn a_call_opened_by_an_id_only_fragment_is_first_once() {
        let mut a = Assembler::default();
        let open = a.push(Fragment {
            index: 0,
            id: Some("up".into()),
            ..Default::default()
        });
        assert!(open.first && open.name.is_empty());
        let named = a.push(frag(0, Some("f"), "{}"));
        assert!(!named.first, "the same call, not a new one");
        assert_eq!(named.name, "f", "the name still reaches the client once");
        assert_eq!(a.finish().len(), 1);
    }
}
