//! A parser built against contract v0.1.0 (like the other components here): it keeps the
//! host's promise that components built against a released contract version keep loading.
//! It reads `.rot13` files — text under ROT13, so a test can tell parsed text from raw bytes.

wit_bindgen::generate!({ world: "parser-plugin", path: "../../../wit/v0.1.0" });

use exports::assistants::plugin::parser::{Guest, ParseError};

struct Rot13;

impl Guest for Rot13 {
    fn formats() -> Vec<String> {
        vec!["rot13".into()]
    }

    fn parse(_filename: String, content: Vec<u8>) -> Result<String, ParseError> {
        let text = String::from_utf8(content)
            .map_err(|_| ParseError::Invalid("the file is not UTF-8".into()))?;
        if text.trim().is_empty() {
            return Err(ParseError::Unsupported(
                "empty files hold nothing to read".into(),
            ));
        }
        Ok(text
            .chars()
            .map(|c| match c {
                'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
                'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
                _ => c,
            })
            .collect())
    }
}

export!(Rot13);
