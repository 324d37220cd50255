//! File-search citation labels in a model's answer.
//!
//! file_search labels each passage it returns `【{sequence}:{n}†{filename}】`; a model that
//! uses a passage writes the label into its answer. Each label found becomes a `file_citation`
//! annotation whose `start_index`/`end_index` slice exactly the label out of the message text.
//! Indices count characters (Unicode scalar values), as the SDKs' string slicing does.

/// One label found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The label exactly as written, brackets included.
    pub text: String,
    pub start_index: usize,
    pub end_index: usize,
    pub sequence: Option<u32>,
    pub index: Option<u32>,
    pub filename: String,
}

/// Every well-formed label in `text`, in order. The numbers may be missing or garbled (models
/// do that); the filename after `†` is required.
pub fn labels(text: &str) -> Vec<Label> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '【' {
            i += 1;
            continue;
        }
        let Some(close) = chars[i + 1..].iter().position(|&c| c == '】' || c == '【') else {
            break;
        };
        let end = i + 1 + close;
        if chars[end] == '【' {
            i = end;
            continue;
        }
        let inner: String = chars[i + 1..end].iter().collect();
        if let Some((head, filename)) = inner.split_once('†') {
            let filename = filename.trim();
            if !filename.is_empty() {
                let mut nums = head.split(':').map(|n| n.trim().parse::<u32>().ok());
                let sequence = nums.next().flatten();
                let index = nums.next().flatten();
                out.push(Label {
                    text: chars[i..=end].iter().collect(),
                    start_index: i,
                    end_index: end + 1,
                    sequence,
                    index,
                    filename: filename.to_string(),
                });
            }
        }
        i = end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_found_with_character_indices() {
        let text = "Quokkas eat mango peel【0:1†notes.txt】 — and naïve ones【1:0†b c.md】.";
        let found = labels(text);
        assert_eq!(found.len(), 2);
        let chars: Vec<char> = text.chars().collect();
        for l in &found {
            let sliced: String = chars[l.start_index..l.end_index].iter().collect();
            assert_eq!(sliced, l.text);
        }
        assert_eq!(found[0].sequence, Some(0));
        assert_eq!(found[0].index, Some(1));
        assert_eq!(found[0].filename, "notes.txt");
        assert_eq!(found[1].filename, "b c.md");
    }

    #[test]
    fn malformed_labels_are_skipped() {
        assert!(labels("no labels here").is_empty());
        assert!(labels("【0:1 no dagger】 and 【unclosed").is_empty());
        assert!(labels("【0:1†】").is_empty());
        let found = labels("【【0:0†a.txt】");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start_index, 1);
        let loose = labels("【source†a.txt】");
        assert_eq!((loose[0].sequence, loose[0].index), (None, None));
    }
}
