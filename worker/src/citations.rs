//! File-search citation labels in a model's answer.
//!
//! file_search labels each passage it returns `【{sequence}:{n}†{filename}】`; a model that
//! uses a passage writes the label into its answer. Each label found becomes a `file_citation`
//! annotation whose `start_index`/`end_index` slice exactly the label out of the message text.
//! Indices count characters (Unicode scalar values), as the SDKs' string slicing does.
//!
//! Tools other than file_search cite the same way: a labelled passage with an annotation
//! (`url` or `file`) becomes a source of the run ([`labelled_sources`]), and the answer's
//! labels that name a source become its annotations ([`annotations`]).

use serde_json::{json, Value};

use assistants_core::model::engine::Source;

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

/// The citable passages of a tool's output: each annotation whose indices cover a label
/// `【s:n†name】` in the text (a `url` annotation makes a web source, a `file` one a file source).
pub fn labelled_sources(out: &assistants_core::plugins::bindings::ToolOutput) -> Vec<Source> {
    use assistants_core::plugins::bindings::Annotation;
    let chars: Vec<char> = out.text.chars().collect();
    let label_at = |start: u32, end: u32| {
        let (s, e) = (start as usize, end as usize);
        (s < e && e <= chars.len())
            .then(|| chars[s..e].iter().collect::<String>())
            .and_then(|t| labels(&t).into_iter().next())
    };
    out.annotations
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let (start, end, file_id, url, title) = match a {
                Annotation::Url(u) => (
                    u.start_index,
                    u.end_index,
                    String::new(),
                    Some(u.url.clone()),
                    u.title.clone(),
                ),
                Annotation::File(f) => (f.start_index, f.end_index, f.file_id.clone(), None, None),
            };
            let label = label_at(start, end)?;
            Some(Source {
                sequence: label.sequence.unwrap_or(0),
                index: label.index.unwrap_or(i as u32),
                file_id,
                filename: label.filename,
                url,
                title,
            })
        })
        .collect()
}

/// Citation annotations for the labels in `text` that name a passage this run was given: by
/// its exact `sequence:index`, else by name (models garble numbers). File sources become
/// `file_citation`s, web sources `url_citation`s (the shape the Responses API uses), and a
/// file that holds a web page (a crawled page, its `url` attribute) gets both, on the same
/// label.
pub fn annotations(text: &str, sources: &[Source]) -> Vec<Value> {
    labels(text)
        .into_iter()
        .flat_map(|l| {
            let exact = sources.iter().find(|s| {
                Some(s.sequence) == l.sequence
                    && Some(s.index) == l.index
                    && s.filename == l.filename
            });
            let source = exact.or_else(|| sources.iter().find(|s| s.filename == l.filename));
            let mut out = Vec::new();
            let Some(source) = source else { return out };
            if !source.file_id.is_empty() {
                out.push(json!({
                    "type": "file_citation",
                    "text": l.text,
                    "start_index": l.start_index,
                    "end_index": l.end_index,
                    "file_citation": {"file_id": source.file_id},
                }));
            }
            if let Some(url) = &source.url {
                out.push(json!({
                    "type": "url_citation",
                    "text": l.text,
                    "start_index": l.start_index,
                    "end_index": l.end_index,
                    "url": url,
                    "title": source.title.clone().unwrap_or_else(|| source.filename.clone()),
                }));
            }
            out
        })
        .collect()
}

/// The web page a file holds, from its vector-store attributes (a crawled page's `url` and
/// `title`): what its passages are cited as besides the file.
pub fn page_of(attributes: &Value) -> (Option<String>, Option<String>) {
    let url = attributes
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_string);
    let title = url
        .as_ref()
        .and(attributes.get("title").and_then(Value::as_str))
        .map(str::to_string);
    (url, title)
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
    fn a_crawled_page_is_cited_as_its_file_and_its_url() {
        let (url, title) = page_of(&json!({"url": "https://docs.example.com/a", "title": "A"}));
        let page = Source {
            sequence: 0,
            index: 0,
            file_id: "file-a".into(),
            filename: "docs.example.com_a.html".into(),
            url,
            title,
        };
        let web = Source {
            sequence: 1,
            index: 0,
            file_id: String::new(),
            filename: "Web".into(),
            url: Some("https://web.example.com/".into()),
            title: None,
        };
        let text = "See【0:0†docs.example.com_a.html】 and【1:0†Web】.";
        let got = annotations(text, &[page, web]);
        let kinds: Vec<&str> = got.iter().map(|a| a["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["file_citation", "url_citation", "url_citation"]);
        assert_eq!(got[0]["file_citation"]["file_id"], "file-a");
        assert_eq!(got[1]["url"], "https://docs.example.com/a");
        assert_eq!(got[1]["title"], "A");
        assert_eq!(
            (got[0]["start_index"].clone(), got[0]["end_index"].clone()),
            (got[1]["start_index"].clone(), got[1]["end_index"].clone())
        );
        assert_eq!(
            got[2]["title"], "Web",
            "a page without a title is named by its label"
        );
        assert_eq!(
            page_of(&json!({"url": "javascript:alert(1)"})),
            (None, None),
            "only web addresses are cited as URLs"
        );
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
