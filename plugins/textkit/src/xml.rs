//! Text runs of office XML (WordprocessingML, DrawingML, SpreadsheetML): the text inside
//! `<w:t>`, `<a:t>` or `<t>` elements, with a paragraph break after each paragraph element
//! (`</w:p>`, `</a:p>`) and a tab for explicit tabs. A linear scan, no DOM: size-bounded by
//! its input and safe on malformed markup.

/// The text of `xml`, where `text_tag` names the run element (`w:t`, `a:t`, `t`) and
/// `paragraph_tag` the element ending a paragraph (`w:p`, `a:p`, `row`).
pub fn text_runs(xml: &str, text_tag: &str, paragraph_tag: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    let mut in_text = false;
    while let Some(lt) = rest.find('<') {
        if in_text {
            out.push_str(&super::html::decode(&rest[..lt]));
        }
        rest = &rest[lt + 1..];
        let Some(gt) = rest.find('>') else { break };
        let tag = &rest[..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let self_closing = tag.ends_with('/');
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        if name == text_tag {
            in_text = !closing && !self_closing;
        } else if closing && name == paragraph_tag {
            out.push_str("\n\n");
        } else if !closing && (name == "w:tab" || name == "a:tab") {
            out.push('\t');
        } else if !closing && (name == "w:br" || name == "a:br") {
            out.push('\n');
        }
    }
    out.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}
