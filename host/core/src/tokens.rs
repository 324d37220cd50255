//! Token counts with the `o200k_base` tokenizer (the GPT-4o family's): what run budgets
//! (`max_prompt_tokens`, truncation) and chunking measure text in.
//!
//! The encoder is `bpe-openai`'s (GitHub's linear-time byte-pair encoder with a faster
//! pre-tokeniser), which gives the same tokens as OpenAI's tiktoken for this vocabulary (a test
//! below compares them on varied text) at about twice its speed; ingestion is bound by it.

/// The tokenizer, deserialised at its first use: its tables take tens of MB of a node's memory,
/// which a node that has counted no tokens yet (an idle one, an API-only one) does without.
fn bpe() -> &'static bpe_openai::Tokenizer {
    bpe_openai::o200k_base()
}

/// Bytes of text encoded at once; cuts fall just before whitespace, where tokens break anyway.
const SEGMENT_BYTES: usize = 4096;
/// Longest run without whitespace encoded whole. With tiktoken's encoder, merging was
/// quadratic in the length of a pre-tokenised piece (16 KiB of `x`: 100 ms; the 256,000
/// characters a message may hold: half a minute); this one is linear, but its pre-tokeniser
/// still scans such a run for every piece it yields. Longer runs are cut (at a character
/// boundary), which changes at most a token or two per cut; kept so counts and chunk edges
/// stay what they were.
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
    segments(text).map(|s| bpe().count(s)).sum()
}

/// The tokens of `text` (their bytes, concatenated, are `text`'s).
pub(crate) fn encode(text: &str) -> Vec<u32> {
    let mut out = Vec::with_capacity(text.len() / 4);
    for s in segments(text) {
        out.extend(bpe().encode(s));
    }
    out
}

/// Where each token of an encoded text starts, in bytes, followed by the text's length: token
/// `i` spans `offsets[i]..offsets[i + 1]` (an edge may fall inside a multi-byte character).
pub(crate) fn byte_offsets(tokens: &[u32]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(tokens.len() + 1);
    let mut at = 0usize;
    offsets.push(0);
    for &t in tokens {
        at += bpe().bpe.token_len(t);
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
        assert_eq!(count_tokens(&prose), bpe().encode(prose.as_str()).len());
        let tokens = encode(&prose);
        assert_eq!(*byte_offsets(&tokens).last().unwrap(), prose.len());
    }

    #[test]
    fn a_long_run_without_whitespace_is_counted_in_linear_time() {
        // 256,000 characters: encoded whole this takes about half a minute.
        let n = count_tokens(&"x".repeat(256_000));
        assert!((256_000 / 8..=256_000).contains(&n), "{n}");
    }

    /// tiktoken's own encoder for the same vocabulary (OpenAI's reference, as a Rust port).
    fn reference() -> &'static tiktoken_rs::CoreBPE {
        static REF: std::sync::OnceLock<tiktoken_rs::CoreBPE> = std::sync::OnceLock::new();
        REF.get_or_init(|| tiktoken_rs::o200k_base().expect("o200k_base ships in tiktoken-rs"))
    }

    /// Varied text: prose, contractions, numbers, code, whitespace runs, URLs, JSON, scripts
    /// of many languages, emoji sequences, combining marks, and random code points.
    fn corpus() -> Vec<String> {
        let mut texts: Vec<String> = [
            "The quick brown fox jumps over the lazy dog. Don't stop; I'm sure we'll see it's THEY'RE fine.",
            "Numbers: 1, 12, 123, 1234, 12345678901234567890, 3.14159, -42, 1e10, 0xFF, 2026-12-06T21:00:00Z.",
            "fn main() {\n    let x = vec![1, 2, 3];\n\tprintln!(\"{x:?}\");\n}\n\n\n    // trailing   \n",
            "def f(a, b=2, *args, **kw):\n    return {'a': a, \"b\": b}  # comment\r\n",
            "   leading spaces, \t tabs \t\t, and\n\n\n\nblank lines   \n   ",
            "https://example.com/a/b?c=d&e=f#g mailto:someone@example.org C:\\Windows\\system32",
            "{\"id\": \"asst_abc123\", \"object\": \"assistant\", \"tools\": [{\"type\": \"file_search\"}]}",
            "日本語のテキストと中文文本，한국어 텍스트. Привет, мир! مرحبا بالعالم. שלום עולם. नमस्ते दुनिया।",
            "Emoji: 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️‍🔥 🙂🙂🙂 and ZWJ‍joiners; e\u{301} vs é; ﬁ ligature; Å Å.",
            "| col | other |\n|-----|-------|\n| **bold** | _it_ |\n> quote\n- item\n1. first",
            "ALLCAPS WORDS AND MiXeD CaSe, camelCaseIdentifiers and snake_case_names and kebab-case.",
            "'s 't 're 've 'm 'll 'd 'S 'T 'RE — “quotes” ‘single’ «guillemets» … ellipsis",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Random strings over several blocks (a fixed seed: failures reproduce).
        let blocks: [(u32, u32); 9] = [
            (0x20, 0x7e),
            (0x09, 0x0d),
            (0xa0, 0x24f),
            (0x370, 0x4ff),
            (0x600, 0x6ff),
            (0x900, 0x97f),
            (0x3040, 0x30ff),
            (0x4e00, 0x4fff),
            (0x1f300, 0x1f64f),
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let len = (next() % 400) as usize;
            let text: String = (0..len)
                .filter_map(|_| {
                    let (lo, hi) = blocks[(next() % blocks.len() as u64) as usize];
                    char::from_u32(lo + (next() % u64::from(hi - lo + 1)) as u32)
                })
                .collect();
            texts.push(text);
        }
        texts
    }

    #[test]
    fn tokens_are_tiktokens() {
        for text in corpus() {
            let expected: Vec<u32> = segments(&text)
                .flat_map(|s| reference().encode_ordinary(s))
                .collect();
            assert_eq!(encode(&text), expected, "{text:?}");
            assert_eq!(count_tokens(&text), expected.len(), "{text:?}");
            let offsets = byte_offsets(&expected);
            let bytes: Vec<u8> = expected
                .windows(1)
                .zip(offsets.windows(2))
                .flat_map(|(t, o)| {
                    let b = reference()
                        ._decode_native_and_split(t.to_vec())
                        .next()
                        .unwrap();
                    assert_eq!(b.len(), o[1] - o[0]);
                    b
                })
                .collect();
            assert_eq!(bytes, text.as_bytes());
        }
    }
}
