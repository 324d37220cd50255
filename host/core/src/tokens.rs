//! Token counts with the `o200k_base` tokenizer (the GPT-4o family's): what run budgets
//! (`max_prompt_tokens`, truncation) and chunking measure text in.

use std::sync::{Mutex, OnceLock};

use tiktoken_rs::CoreBPE;

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

/// Loads the tokenizer ahead of the first request (it takes a moment).
pub fn warm_up() {
    let _ = bpe();
}

/// Number of tokens in `text`.
pub fn count_tokens(text: &str) -> usize {
    bpe().encode_ordinary(text).len()
}

/// The tokens of `text`.
pub fn encode(text: &str) -> Vec<u32> {
    bpe().encode_ordinary(text)
}

/// Where each token of an encoded text starts, in bytes, followed by the text's length: token
/// `i` spans `offsets[i]..offsets[i + 1]` (an edge may fall inside a multi-byte character).
pub fn byte_offsets(tokens: &[u32]) -> Vec<usize> {
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
