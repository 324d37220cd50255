//! Token counts with the `o200k_base` tokenizer (the GPT-4o family's): what run budgets
//! (`max_prompt_tokens`, truncation) and chunking measure text in.

use std::sync::{Mutex, OnceLock};

use tiktoken_rs::CoreBPE;

/// The tokenizer, loaded at its first use: its tables are about 50 MB of a node's memory, which
/// a node that has counted no tokens yet (an idle one, an API-only one) does without.
fn bpe() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| {
        tiktoken_rs::o200k_base().expect("the o200k_base ranks ship inside tiktoken-rs")
    })
}

/// Byte length of each token id seen so far (0: not looked up yet; no token is empty). Decoding
/// every token of a text to learn its length allocated once per token, a tenth of ingestion's
/// time; the vocabulary is small, so its lengths are learnt once per process.
fn token_lens() -> &'static Mutex<Vec<u32>> {
    static LENS: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();
    LENS.get_or_init(Default::default)
}

fn token_len(lens: &mut Vec<u32>, t: u32) -> usize {
    let i = t as usize;
    if i >= lens.len() {
        lens.resize(i + 1, 0);
    }
    if lens[i] == 0 {
        lens[i] = bpe()
            ._decode_native_and_split(vec![t])
            .next()
            .map_or(0, |b| b.len() as u32);
    }
    lens[i] as usize
}

/// Bytes of text encoded at once; cuts fall just before whitespace, where tokens break anyway.
const SEGMENT_BYTES: usize = 4096;
/// Longest run without whitespace encoded whole. Byte-pair merging is quadratic in the length
/// of a pre-tokenised piece, and such a run is one piece: 16 KiB of `x` took 100 ms and the
/// 256,000 characters a message may hold, half a minute. Longer runs are cut (at a character
/// boundary), which changes at most a token or two per cut and makes the worst case linear.
const MAX_RUN_BYTES: usize = 256;

/// `text` in consecutive pieces that are cheap to encode (see [`MAX_RUN_BYTES`]).
fn segments(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut run = 0;
    let mut cuts = text.char_indices().filter_map(move |(i, c)| {
        let cut = if c.is_whitespace() {
            run = 0;
            i - start >= SEGMENT_BYTES
        } else {
            run += c.len_utf8();
            run > MAX_RUN_BYTES
        };
        if cut {
            run = if c.is_whitespace() { 0 } else { c.len_utf8() };
            let piece = (start, i);
            start = i;
            Some(piece)
        } else {
            None
        }
    });
    let mut last = 0;
    std::iter::from_fn(move || match cuts.next() {
        Some((a, b)) => {
            last = b;
            Some(&text[a..b])
        }
        None if last < text.len() => {
            let rest = &text[last..];
            last = text.len();
            Some(rest)
        }
        None => None,
    })
    .filter(|s| !s.is_empty())
}

/// Number of tokens in `text`.
pub fn count_tokens(text: &str) -> usize {
    segments(text).map(|s| bpe().encode_ordinary(s).len()).sum()
}

/// The tokens of `text` (their bytes, concatenated, are `text`'s).
pub(crate) fn encode(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for s in segments(text) {
        out.extend(bpe().encode_ordinary(s));
    }
    out
}

/// Where each token of an encoded text starts, in bytes, followed by the text's length: token
/// `i` spans `offsets[i]..offsets[i + 1]` (an edge may fall inside a multi-byte character).
pub(crate) fn byte_offsets(tokens: &[u32]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(tokens.len() + 1);
    let mut at = 0usize;
    offsets.push(0);
    let mut lens = token_lens().lock().expect("token length table poisoned");
    for &t in tokens {
        at += token_len(&mut lens, t);
        offsets.push(at);
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_text_and_bound_runs() {
        let text = format!("{} tail {}", "x".repeat(1000), "é".repeat(300));
        let parts: Vec<&str> = segments(&text).collect();
        assert_eq!(parts.concat(), text);
        let longest_run = parts
            .iter()
            .flat_map(|p| p.split(char::is_whitespace))
            .map(str::len)
            .max()
            .unwrap();
        assert!(longest_run <= MAX_RUN_BYTES, "{longest_run}");
        assert_eq!(segments("").count(), 0);
    }

    #[test]
    fn prose_counts_as_if_encoded_whole() {
        let prose = "The quick brown fox jumps over the lazy dog, twice. ".repeat(400);
        assert!(prose.len() > 3 * SEGMENT_BYTES);
        assert_eq!(count_tokens(&prose), bpe().encode_ordinary(&prose).len());
        let tokens = encode(&prose);
        assert_eq!(*byte_offsets(&tokens).last().unwrap(), prose.len());
    }

    #[test]
    fn a_long_run_without_whitespace_is_counted_in_linear_time() {
        // 256,000 characters: encoded whole this takes about half a minute.
        let n = count_tokens(&"x".repeat(256_000));
        assert!((256_000 / 8..=256_000).contains(&n), "{n}");
    }
}
