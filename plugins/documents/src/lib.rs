//! The built-in document parser: PDF, HTML, Word (`.docx`), PowerPoint (`.pptx`) and Excel
//! (`.xlsx`) files to text for vector stores. It runs in the plugin sandbox with the host's
//! memory and time limits, so a hostile file (a zip bomb, absurd nesting) ends this one call,
//! never the server.
//!
//! Office files are zip archives of XML; the text is read from the parts that hold it, in
//! reading order (the document body; slides in order; shared strings of a workbook). The
//! archive is checked before anything is inflated: entry count and the declared size of what
//! would be read are bounded, and reading stops at the bound whatever the entries claim.

use std::io::Read;

use assistants_plugin::parser::{ParseError, Parser};
use textkit::{html, xml};

/// Most entries an office archive may have, and most bytes read out of it in all (well under
/// the memory limit, so a bomb meets this bound with a clear message, not the limit).
const MAX_ENTRIES: usize = 10_000;
const MAX_INFLATED: u64 = 32 * 1024 * 1024;

struct Documents;

fn extension(filename: &str) -> String {
    filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

type Archive<'a> = zip::ZipArchive<std::io::Cursor<&'a [u8]>>;

fn open(content: &[u8]) -> Result<Archive<'_>, ParseError> {
    let archive = zip::ZipArchive::new(std::io::Cursor::new(content))
        .map_err(|e| ParseError::Invalid(format!("not a readable office file (zip): {e}")))?;
    if archive.len() > MAX_ENTRIES {
        return Err(ParseError::Invalid(format!(
            "the archive has {} entries; at most {MAX_ENTRIES} are read",
            archive.len()
        )));
    }
    Ok(archive)
}

/// Reads one archive entry as UTF-8, counting against the shared inflation budget.
fn read_entry(
    archive: &mut Archive<'_>,
    name: &str,
    budget: &mut u64,
) -> Result<Option<String>, ParseError> {
    let entry = match archive.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(ParseError::Invalid(format!("{name}: {e}"))),
    };
    if entry.encrypted() {
        return Err(ParseError::Unsupported(
            "encrypted documents cannot be read".into(),
        ));
    }
    // Reserve what the entry declares (within the budget) so the buffer does not double its
    // way past the memory limit; never trust the declaration beyond that: read at most what
    // the budget allows, plus one byte to notice an entry that goes over.
    let mut bytes = Vec::with_capacity(entry.size().min(*budget + 1) as usize);
    entry
        .take(*budget + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ParseError::Invalid(format!("{name}: {e}")))?;
    if bytes.len() as u64 > *budget {
        return Err(ParseError::Invalid(format!(
            "the document inflates to more than {} MiB",
            MAX_INFLATED / (1024 * 1024)
        )));
    }
    *budget -= bytes.len() as u64;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ParseError::Invalid(format!("{name} is not UTF-8 XML")))
}

/// Names of the entries matching `prefix` + number + `suffix`, in numeric order.
fn numbered(archive: &Archive<'_>, prefix: &str, suffix: &str) -> Vec<String> {
    let mut found: Vec<(u32, String)> = archive
        .file_names()
        .filter_map(|n| {
            let num = n.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()?;
            Some((num, n.to_string()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

/// The text of a PDF's pages, in order. A malformed file may make the PDF library give up
/// (an error) or panic: the panic traps this sandboxed call, and the file fails alone.
fn pdf(content: &[u8]) -> Result<String, ParseError> {
    if !content.starts_with(b"%PDF") {
        return Err(ParseError::Invalid(
            "not a PDF file (no %PDF header)".into(),
        ));
    }
    let text = pdf_extract::extract_text_from_mem(content).map_err(|e| {
        let why = e.to_string();
        if why.to_ascii_lowercase().contains("encrypt") {
            ParseError::Unsupported("encrypted PDFs cannot be read".into())
        } else {
            ParseError::Invalid(format!("the PDF could not be read: {why}"))
        }
    })?;
    // Pages come separated by form feeds; paragraphs by blank lines.
    Ok(text
        .split('\u{c}')
        .map(|page| {
            page.split("\n\n")
                .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("\n\n")
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n"))
}

fn docx(content: &[u8]) -> Result<String, ParseError> {
    let mut archive = open(content)?;
    let mut budget = MAX_INFLATED;
    let body = read_entry(&mut archive, "word/document.xml", &mut budget)?
        .ok_or_else(|| ParseError::Invalid("no word/document.xml: not a Word document".into()))?;
    Ok(xml::text_runs(&body, "w:t", "w:p"))
}

fn pptx(content: &[u8]) -> Result<String, ParseError> {
    let mut archive = open(content)?;
    let mut budget = MAX_INFLATED;
    let slides = numbered(&archive, "ppt/slides/slide", ".xml");
    if slides.is_empty() {
        return Err(ParseError::Invalid(
            "no slides: not a PowerPoint presentation".into(),
        ));
    }
    let mut out = Vec::new();
    for (i, name) in slides.iter().enumerate() {
        if let Some(slide) = read_entry(&mut archive, name, &mut budget)? {
            let text = xml::text_runs(&slide, "a:t", "a:p");
            if !text.is_empty() {
                out.push(format!("Slide {}\n\n{text}", i + 1));
            }
        }
    }
    Ok(out.join("\n\n"))
}

fn xlsx(content: &[u8]) -> Result<String, ParseError> {
    let mut archive = open(content)?;
    let mut budget = MAX_INFLATED;
    // Cell text lives in the shared-strings table; numbers are in the sheets and carry little
    // meaning without their headers, so the strings are what retrieval needs.
    let strings =
        read_entry(&mut archive, "xl/sharedStrings.xml", &mut budget)?.unwrap_or_default();
    Ok(xml::text_runs(&strings, "t", "si"))
}

impl Parser for Documents {
    fn formats() -> Vec<String> {
        ["pdf", "html", "htm", "xhtml", "docx", "pptx", "xlsx"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn parse(filename: String, content: Vec<u8>) -> Result<String, ParseError> {
        let text = match extension(&filename).as_str() {
            "html" | "htm" | "xhtml" => {
                let page = String::from_utf8_lossy(&content);
                let (title, body) = html::readable(&page);
                if title.is_empty() || body.starts_with(&title) {
                    body
                } else {
                    format!("{title}\n\n{body}")
                }
            }
            "pdf" => pdf(&content)?,
            "docx" => docx(&content)?,
            "pptx" => pptx(&content)?,
            "xlsx" => xlsx(&content)?,
            other => {
                return Err(ParseError::Unsupported(format!(
                    "this parser does not read '.{other}' files"
                )))
            }
        };
        if text.trim().is_empty() {
            return Err(ParseError::Invalid("the document contains no text".into()));
        }
        Ok(text)
    }
}

assistants_plugin::export_parser!(Documents);
