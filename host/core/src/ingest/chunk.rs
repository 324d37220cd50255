//! Token-exact chunking with the `o200k_base` tokenizer ([`crate::tokens`]).
//!
//! The text is tokenized once; chunks are windows of `max` tokens advancing by `max - overlap`.
//! Window edges are mapped back to byte offsets in the original text (by summing each token's
//! byte length), so chunk text is an exact slice of the source rather than a lossy re-decode.
//! A token may end inside a multi-byte character; edges are moved forward to the next
//! character boundary.

use crate::tokens;

/// A chunk: its exact text and its token count.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub text: String,
    pub tokens: usize,
}

/// Splits `text` into windows of at most `max` tokens overlapping by `overlap` tokens; also
/// returns the text's total token count (so callers need not tokenize twice).
pub fn chunk(text: &str, max: usize, overlap: usize) -> (Vec<Chunk>, usize) {
    assert!(
        max > 0 && overlap < max,
        "chunking parameters are validated by the API"
    );
    let tokens = tokens::encode(text);
    if tokens.is_empty() {
        return (Vec::new(), 0);
    }
    let offsets = tokens::byte_offsets(&tokens);
    debug_assert_eq!(offsets.last().copied(), Some(text.len()));
    let boundary = |mut i: usize| {
        while i < text.len() && !text.is_char_boundary(i) {
            i += 1;
        }
        i.min(text.len())
    };
    let stride = max - overlap;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + max).min(tokens.len());
        let (a, b) = (boundary(offsets[start]), boundary(offsets[end]));
        if b > a {
            out.push(Chunk {
                text: text[a..b].to_string(),
                tokens: end - start,
            });
        }
        if end == tokens.len() {
            break;
        }
        start += stride;
    }
    (out, tokens.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::count_tokens;

    #[test]
    fn windows_have_the_requested_size_and_overlap() {
        let text: String = (0..3000).map(|i| format!("word{i} ")).collect();
        let (chunks, total) = chunk(&text, 800, 400);
        assert_eq!(total, count_tokens(&text));
        assert!(chunks.iter().all(|c| c.tokens <= 800));
        assert_eq!(chunks[0].tokens, 800);
        // Every token is covered and consecutive windows start 400 tokens apart.
        assert_eq!(chunks.len(), (total - 800).div_ceil(400) + 1);
        assert!(text.starts_with(&chunks[0].text));
        assert!(text.ends_with(&chunks.last().unwrap().text));
    }

    #[test]
    fn multibyte_text_is_sliced_on_char_boundaries() {
        let text = "日本語のテキスト🙂".repeat(200);
        for c in chunk(&text, 100, 50).0 {
            assert!(!c.text.is_empty());
            assert!(text.contains(&c.text));
        }
    }

    #[test]
    fn short_text_is_one_chunk() {
        let (c, _) = chunk("hello world", 800, 400);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text, "hello world");
        assert!(chunk("", 800, 400).0.is_empty());
    }
}
