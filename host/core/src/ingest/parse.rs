//! Text extraction for the formats that need no parsing: plain text, Markdown, JSON, CSV and
//! source code only have their encoding checked here. Formats that need real parsing (HTML,
//! office documents) are read by a parser component in the sandbox (`PluginHost::parse`,
//! chosen by extension before this module is asked); formats nothing reads (PDF, for now) fail
//! with `unsupported_file`, never with garbage text.

/// Why a file could not be turned into text; `code` is the wire `last_error.code`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    pub code: &'static str,
    pub message: String,
}

/// Extensions whose content is text as-is.
const TEXT_EXTENSIONS: &[&str] = &[
    "txt",
    "text",
    "md",
    "markdown",
    "mdx",
    "rst",
    "json",
    "jsonl",
    "csv",
    "tsv",
    "log",
    "xml",
    "yaml",
    "yml",
    "toml",
    "ini",
    "cfg",
    "conf",
    "css",
    "scss",
    "tex",
    "sql",
    "sh",
    "bash",
    "zsh",
    "ps1",
    "bat",
    "py",
    "pyi",
    "ipynb",
    "js",
    "mjs",
    "cjs",
    "jsx",
    "ts",
    "tsx",
    "rs",
    "go",
    "java",
    "kt",
    "kts",
    "scala",
    "c",
    "h",
    "cc",
    "cpp",
    "cxx",
    "hpp",
    "hh",
    "cs",
    "rb",
    "php",
    "pl",
    "pm",
    "swift",
    "m",
    "mm",
    "r",
    "lua",
    "dart",
    "ex",
    "exs",
    "erl",
    "hs",
    "ml",
    "clj",
    "vue",
    "svelte",
    "proto",
    "graphql",
    "gql",
    "tf",
    "dockerfile",
    "makefile",
    "gradle",
    "properties",
    "env",
    "vtt",
    "srt",
];

/// Binary document formats: read by a parser component when one is installed for them (asked
/// first), otherwise refused here with `unsupported_file`.
const BINARY_DOCUMENTS: &[&str] = &[
    "pdf", "docx", "doc", "pptx", "ppt", "xlsx", "xls", "odt", "rtf", "epub",
];

pub fn extension(filename: &str) -> String {
    let lower = filename.to_ascii_lowercase();
    match lower.rsplit_once('.') {
        Some((_, ext)) => ext.to_string(),
        // Extension-less names such as `Makefile` or `Dockerfile` are the format.
        None => lower,
    }
}

/// Extracts the text of a file.
pub(crate) fn extract_text(filename: &str, bytes: &[u8]) -> Result<String, ParseError> {
    let ext = extension(filename);
    if BINARY_DOCUMENTS.contains(&ext.as_str()) {
        return Err(ParseError {
            code: "unsupported_file",
            message: format!("Files of type '.{ext}' are not supported for retrieval yet."),
        });
    }
    if !TEXT_EXTENSIONS.contains(&ext.as_str()) {
        return Err(ParseError {
            code: "unsupported_file",
            message: format!(
                "Files with the extension '{ext}' are not supported for retrieval. Supported: text, \
                 Markdown, JSON, CSV and source code files."
            ),
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError {
        code: "invalid_file",
        message: format!(
            "The file is not valid UTF-8 text (invalid byte at offset {}).",
            e.valid_up_to()
        ),
    })?;
    if text.contains('\0') {
        return Err(ParseError {
            code: "invalid_file",
            message: "The file contains NUL bytes; it is not a text file.".into(),
        });
    }
    if text.trim().is_empty() {
        return Err(ParseError {
            code: "invalid_file",
            message: "The file contains no text.".into(),
        });
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_formats_pass_and_others_fail_with_a_reason() {
        assert_eq!(extract_text("a.md", b"# hi").unwrap(), "# hi");
        assert_eq!(extract_text("Makefile", b"all:").unwrap(), "all:");
        assert_eq!(extract_text("a.txt", b"\xEF\xBB\xBFbom").unwrap(), "bom");
        assert_eq!(
            extract_text("a.pdf", b"%PDF").unwrap_err().code,
            "unsupported_file"
        );
        assert_eq!(
            extract_text("a.bin", b"x").unwrap_err().code,
            "unsupported_file"
        );
        assert_eq!(
            extract_text("a.txt", b"\xff\xfe").unwrap_err().code,
            "invalid_file"
        );
        assert_eq!(
            extract_text("a.txt", b"a\0b").unwrap_err().code,
            "invalid_file"
        );
        assert_eq!(
            extract_text("a.txt", b"  \n").unwrap_err().code,
            "invalid_file"
        );
    }
}
