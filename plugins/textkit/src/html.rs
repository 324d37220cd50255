//! HTML to readable text, inside the sandbox: the page's title, and its visible text with
//! paragraph breaks at block elements. Script, style and other non-content elements are
//! dropped; entities are decoded. Deliberately simple (no DOM): malformed markup degrades to
//! more or less text, never to an error.

const SKIP: [&str; 8] = [
    "script", "style", "noscript", "svg", "template", "head", "nav", "iframe",
];
const BLOCK: [&str; 22] = [
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "pre",
    "hr",
    "main",
];

/// One piece of a document: text between tags, or a tag.
enum Piece<'a> {
    Text(&'a str),
    Tag(Tag<'a>),
}

/// A tag: its text between `<` and `>`, its lower-case name, and whether it closes.
struct Tag<'a> {
    raw: &'a str,
    name: String,
    closing: bool,
}

/// A document as text and tags in order, comments dropped; an unclosed `<` ends it. The one
/// scanner [`readable`] and [`links`] share.
struct Pieces<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            if !self.rest.starts_with('<') {
                let end = self.rest.find('<').unwrap_or(self.rest.len());
                let text = &self.rest[..end];
                self.rest = &self.rest[end..];
                return Some(Piece::Text(text));
            }
            if self.rest.starts_with("<!--") {
                self.rest = self.rest.find("-->").map_or("", |i| &self.rest[i + 3..]);
                continue;
            }
            let Some(gt) = self.rest.find('>') else {
                self.rest = "";
                return None;
            };
            let raw = &self.rest[1..gt];
            self.rest = &self.rest[gt + 1..];
            let name = raw
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            return Some(Piece::Tag(Tag {
                raw,
                name,
                closing: raw.starts_with('/'),
            }));
        }
    }
}

/// (title, text) of an HTML document.
pub fn readable(html: &str) -> (String, String) {
    let mut title = String::new();
    let mut text = String::new();
    let mut skipping: Option<String> = None;
    let mut in_title = false;
    for piece in (Pieces { rest: html }) {
        let tag = match piece {
            Piece::Text(raw) => {
                push_text(&mut text, &mut title, in_title, skipping.is_some(), raw);
                continue;
            }
            Piece::Tag(tag) => tag,
        };
        let Tag { raw, name, closing } = tag;
        if name == "title" {
            in_title = !closing;
            continue;
        }
        if let Some(s) = &skipping {
            if closing && *s == name {
                skipping = None;
            }
            continue;
        }
        if !closing && SKIP.contains(&name.as_str()) && !raw.ends_with('/') {
            // <head> holds the title: keep reading it, skip the rest of the head.
            if name != "head" {
                skipping = Some(name);
            }
            continue;
        }
        if BLOCK.contains(&name.as_str()) && !text.ends_with("\n\n") && !text.is_empty() {
            text.push_str("\n\n");
        }
    }
    let text = text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    (title.split_whitespace().collect::<Vec<_>>().join(" "), text)
}

fn push_text(text: &mut String, title: &mut String, in_title: bool, skipping: bool, raw: &str) {
    if skipping || raw.is_empty() {
        return;
    }
    let decoded = decode(raw);
    if in_title {
        title.push_str(&decoded);
    } else {
        text.push_str(&decoded);
    }
}

/// Decodes the common named entities and numeric character references.
pub fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // Entities are short: look for the ';' within 12 bytes (by byte, so a multi-byte
        // character after the '&' cannot split a slice).
        let Some(semi) = rest.as_bytes().iter().take(12).position(|&b| b == b';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            // NUL and invalid code points become U+FFFD: the text must stay storable.
            e if e.starts_with("#x") || e.starts_with("#X") => Some(
                u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .filter(|&c| c != 0)
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}'),
            ),
            e if e.starts_with('#') => Some(
                e[1..]
                    .parse::<u32>()
                    .ok()
                    .filter(|&c| c != 0)
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}'),
            ),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a crawler needs from a page's markup: where its links point (as written, entities
/// decoded), the `<base href>` they are relative to, and the page's own robots directives
/// (`<meta name="robots">`). Links marked `rel="nofollow"` are left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Links {
    pub base: Option<String>,
    pub hrefs: Vec<String>,
    pub noindex: bool,
    pub nofollow: bool,
}

/// The links and robots directives of an HTML document (see [`Links`]). Like [`readable`],
/// tolerant: malformed markup yields fewer links, never an error.
pub fn links(html: &str) -> Links {
    let mut out = Links::default();
    // Links inside scripts and styles are not the page's.
    let mut skipping: Option<String> = None;
    for piece in (Pieces { rest: html }) {
        let Piece::Tag(Tag { raw, name, closing }) = piece else {
            continue;
        };
        if let Some(s) = &skipping {
            if closing && *s == name {
                skipping = None;
            }
            continue;
        }
        if closing {
            continue;
        }
        match name.as_str() {
            "script" | "style" if !raw.ends_with('/') => skipping = Some(name),
            "a" | "area" => {
                let nofollow = attribute(raw, "rel").is_some_and(|r| {
                    r.split_ascii_whitespace()
                        .any(|v| v.eq_ignore_ascii_case("nofollow"))
                });
                if let Some(href) = attribute(raw, "href").filter(|_| !nofollow) {
                    out.hrefs.push(href);
                }
            }
            "base" if out.base.is_none() => out.base = attribute(raw, "href"),
            "meta" if attribute(raw, "name").is_some_and(|n| n.eq_ignore_ascii_case("robots")) => {
                let content = attribute(raw, "content")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                for directive in content.split(',').map(str::trim) {
                    match directive {
                        "noindex" => out.noindex = true,
                        "nofollow" => out.nofollow = true,
                        "none" => {
                            out.noindex = true;
                            out.nofollow = true;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The value of attribute `name` in a tag's text (double-, single- or unquoted), entities
/// decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name).map(|i| i + from) {
        from = i + name.len();
        // A whole attribute name: whitespace before it, `=` after it.
        if i == 0 || !bytes[i - 1].is_ascii_whitespace() {
            continue;
        }
        let Some(value) = lower[from..].trim_start().strip_prefix('=') else {
            continue;
        };
        let raw = &tag[tag.len() - value.trim_start().len()..];
        let value = match raw.chars().next() {
            Some(q @ ('"' | '\'')) => raw[1..].split(q).next().unwrap_or(""),
            _ => raw
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or(""),
        };
        return Some(decode(value.trim()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_text_keeps_the_title_and_visible_paragraphs() {
        let page = "<html><head><title> The  Almanac </title><style>p{}</style></head><body>\
            <nav><a href=x>menu</a></nav><h1>Tortoises</h1><p>They bask &amp; glow.<br>Slowly.\
            </p><!-- <p>hidden</p> --><script>if (a<b) { x = '</p>'; }</script>\
            <div>Last <b>word</b></div><p>unclosed <";
        let (title, text) = readable(page);
        assert_eq!(title, "The Almanac");
        assert_eq!(
            text,
            "Tortoises\n\nThey bask & glow.\n\nSlowly.\n\nLast word\n\nunclosed"
        );
    }

    #[test]
    fn links_follow_the_markup_and_its_robots_directives() {
        let page = r#"<html><head><base href="https://docs.example.com/v2/">
            <meta name="ROBOTS" content="noindex, follow"></head><body>
            <a href="intro.html">Intro</a> <A HREF='/api?q=1&amp;r=2'>API</A>
            <a class=x href=bare.html>bare</a> <a rel="external nofollow" href="skip.html">no</a>
            <a name="anchor">no href</a> <area shape=rect href="map.html">
            <script>var s = '<a href="in-script.html">';</script>
            <!-- <a href="commented.html"> --> <a data-href="x" href="last.html">last</a>
            </body></html>"#;
        let l = links(page);
        assert_eq!(l.base.as_deref(), Some("https://docs.example.com/v2/"));
        assert_eq!(
            l.hrefs,
            [
                "intro.html",
                "/api?q=1&r=2",
                "bare.html",
                "map.html",
                "last.html"
            ]
        );
        assert!(l.noindex);
        assert!(!l.nofollow);
        let none = links(r#"<meta content="none" name="robots"><a href="x">"#);
        assert!(none.noindex && none.nofollow);
    }
}
