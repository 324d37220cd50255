//! The lexical side of a store's index: BM25 (k1 = 1.2, b = 0.75) over an inverted index.
//!
//! Each posting stores its chunk and its precomputed BM25 term-frequency factor, so a query
//! only adds `idf × factor` per posting into a dense score array: no per-posting lookups of
//! chunk lengths, which at a million chunks are cache misses. Scores are divided by the most
//! any chunk could score for the query (every term present, saturated), giving 0..1: "how
//! fully this chunk matches the query", meaningful for `score_threshold` on its own.
//!
//! A store's index is made of segments (see `segment.rs`), each with a `Lexical` of its own:
//! the factors of a segment are normalised by the store's average chunk length when it was
//! built, and idf comes from the counts of every segment at query time ([`Weights`]), so a
//! chunk scores about what it would in one index of the whole store. A merge recovers each
//! posting's term frequency from its factor and length (exact for any realistic chunk) and
//! normalises again with the merged average ([`LexicalBuilder::absorb`]).

use std::collections::HashMap;
use std::io::{self, Read, Write};

use super::codec::{invalid, Reader, Writer};

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// Splits text into lowercase alphanumeric terms (the same for documents and queries).
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
}

fn idf(chunks: usize, df: usize) -> f32 {
    let (n, df) = (chunks as f32, df as f32);
    ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
}

fn norm(len: u32, avg: f32) -> f32 {
    1.0 - B + B * len as f32 / avg
}

/// A query's terms weighted by idf over a whole store (every segment), and the most a chunk
/// could score for it.
pub(crate) struct Weights<'q> {
    terms: Vec<(&'q str, f32)>,
    bound: f32,
}

impl<'q> Weights<'q> {
    /// `chunks`: the store's chunks; `df`: in how many of them a term occurs.
    pub fn new(query_terms: &'q [String], chunks: usize, df: impl Fn(&str) -> usize) -> Self {
        let terms: Vec<(&str, usize)> = query_terms.iter().map(|t| (t.as_str(), df(t))).collect();
        // The bound: every query term saturated in one chunk (unknown terms count too, so a
        // chunk matching half the query scores about half).
        let bound = terms
            .iter()
            .map(|&(_, df)| idf(chunks, df) * (K1 + 1.0))
            .sum::<f32>()
            .max(f32::EPSILON);
        Weights {
            terms: terms
                .into_iter()
                .filter(|&(_, df)| df > 0)
                .map(|(t, df)| (t, idf(chunks, df)))
                .collect(),
            bound,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// A raw score as 0..1.
    pub fn normalise(&self, score: f32) -> f64 {
        f64::from((score / self.bound).min(1.0))
    }
}

/// Collects chunks, then [`LexicalBuilder::finish`]es into a [`Lexical`] index.
#[derive(Default)]
pub(crate) struct LexicalBuilder {
    /// term → (chunk, term frequency)
    postings: HashMap<Box<str>, Vec<(u32, u32)>>,
    lens: Vec<u32>,
    /// Reused per chunk.
    tf: HashMap<String, u32>,
}

impl LexicalBuilder {
    /// Adds the next chunk (chunks are numbered in the order they are added).
    pub fn add(&mut self, text: &str) {
        let chunk = self.lens.len() as u32;
        let mut len = 0u32;
        for t in terms(text) {
            *self.tf.entry(t).or_default() += 1;
            len += 1;
        }
        for (t, n) in self.tf.drain() {
            push(&mut self.postings, &t, chunk, n);
        }
        self.lens.push(len);
    }

    /// Adds the chunks of `part` that `renumbered` keeps (`u32::MAX`: dropped), as the next
    /// chunks: kept chunks must be numbered on from this builder's count, in their order.
    pub fn absorb(&mut self, part: &Lexical, renumbered: &[u32]) {
        let first = self.lens.len() as u32;
        self.lens.extend(
            part.lens
                .iter()
                .zip(renumbered)
                .filter(|(_, &n)| n != u32::MAX)
                .map(|(&len, _)| len),
        );
        debug_assert!(renumbered
            .iter()
            .filter(|&&n| n != u32::MAX)
            .enumerate()
            .all(|(i, &n)| n == first + i as u32));
        for (term, list) in &part.postings {
            for &(c, factor) in list.iter() {
                let new = renumbered[c as usize];
                if new != u32::MAX {
                    let tf = term_frequency(factor, part.lens[c as usize], part.avg);
                    push(&mut self.postings, term, new, tf);
                }
            }
        }
    }

    /// The index, its factors normalised by `avg` (the store's average chunk length), or by
    /// this builder's own average.
    pub fn finish(self, avg: Option<f32>) -> Lexical {
        let n = self.lens.len();
        let total: u64 = self.lens.iter().map(|&l| u64::from(l)).sum();
        let avg = avg.unwrap_or(if n == 0 { 1.0 } else { total as f32 / n as f32 });
        let avg = avg.max(1.0);
        let lens = self.lens.into_boxed_slice();
        let postings = self
            .postings
            .into_iter()
            .map(|(term, list)| {
                let list: Box<[(u32, f32)]> = list
                    .into_iter()
                    .map(|(c, tf)| {
                        let tf = tf as f32;
                        (c, tf * (K1 + 1.0) / (tf + K1 * norm(lens[c as usize], avg)))
                    })
                    .collect();
                (term, list)
            })
            .collect();
        Lexical {
            lens,
            total,
            avg,
            postings,
        }
    }
}

fn push(postings: &mut HashMap<Box<str>, Vec<(u32, u32)>>, term: &str, chunk: u32, tf: u32) {
    match postings.get_mut(term) {
        Some(list) => list.push((chunk, tf)),
        None => {
            postings.insert(term.into(), vec![(chunk, tf)]);
        }
    }
}

/// The term frequency a factor was computed from (its inverse): factors are below `K1 + 1`
/// and increase with tf, so rounding recovers chunks' counts exactly up to thousands.
fn term_frequency(factor: f32, len: u32, avg: f32) -> u32 {
    let room = K1 + 1.0 - factor;
    if room <= f32::EPSILON {
        return len.max(1);
    }
    let tf = f64::from(factor) * f64::from(K1 * norm(len, avg)) / f64::from(room);
    (tf.round() as u32).clamp(1, len.max(1))
}

/// A BM25 inverted index over a segment's chunks.
pub(crate) struct Lexical {
    /// Each chunk's length in terms (for [`LexicalBuilder::absorb`]).
    lens: Box<[u32]>,
    total: u64,
    /// The average chunk length the factors were normalised by.
    avg: f32,
    /// term → (chunk, BM25 term-frequency factor)
    postings: HashMap<Box<str>, Box<[(u32, f32)]>>,
}

impl Lexical {
    pub fn chunks(&self) -> usize {
        self.lens.len()
    }

    /// The sum of the chunks' lengths.
    pub fn total_len(&self) -> u64 {
        self.total
    }

    /// In how many chunks `term` occurs.
    pub fn df(&self, term: &str) -> usize {
        self.postings.get(term).map_or(0, |l| l.len())
    }

    /// Heap bytes held by the postings (not counting the hash table's own slots).
    pub fn bytes(&self) -> usize {
        self.lens.len() * 4
            + self
                .postings
                .iter()
                .map(|(t, l)| t.len() + std::mem::size_of_val(&**l))
                .sum::<usize>()
    }

    /// Raw scores of the allowed chunks matching any weighted term, as `(to_id(chunk), score)`.
    pub fn score(
        &self,
        weights: &Weights<'_>,
        allowed: impl Fn(u32) -> bool,
        to_id: impl Fn(u32) -> u32,
        out: &mut Vec<(u32, f32)>,
    ) {
        let lists: Vec<(f32, &[(u32, f32)])> = weights
            .terms
            .iter()
            .filter_map(|&(t, idf)| Some((idf, &**self.postings.get(t)?)))
            .collect();
        if lists.is_empty() {
            return;
        }
        // A dense array is much faster than a map for the posting-list sizes of large stores.
        let mut scores = vec![0f32; self.lens.len()];
        let mut touched = Vec::new();
        for (idf, list) in lists {
            for &(c, factor) in list {
                let slot = &mut scores[c as usize];
                if *slot == 0.0 {
                    touched.push(c);
                }
                *slot += idf * factor;
            }
        }
        out.extend(
            touched
                .into_iter()
                .filter(|&c| allowed(c))
                .map(|c| (to_id(c), scores[c as usize])),
        );
    }
}

impl Lexical {
    pub(super) fn write<W: Write>(&self, w: &mut Writer<W>) -> io::Result<()> {
        w.u32s(&self.lens)?;
        w.u64(self.total)?;
        w.f32(self.avg)?;
        w.len(self.postings.len())?;
        for (term, list) in &self.postings {
            w.str(term)?;
            w.postings(list)?;
        }
        Ok(())
    }

    /// Reads what [`Lexical::write`] wrote, refusing postings of chunks it does not have.
    pub(super) fn read<R: Read>(r: &mut Reader<R>) -> io::Result<Lexical> {
        let lens = r.u32s()?.into_boxed_slice();
        let total = r.u64()?;
        let avg = r.f32()?;
        if !(avg.is_finite() && avg >= 1.0) {
            return Err(invalid("average chunk length"));
        }
        if total != lens.iter().map(|&l| u64::from(l)).sum::<u64>() {
            return Err(invalid("total chunk length"));
        }
        let terms = r.len()?;
        // A term takes at least 16 bytes (its length and its list's); the table is grown as
        // terms arrive beyond a modest start, so a header cannot ask for more than that.
        let mut postings = HashMap::with_capacity(terms.min(1 << 16));
        if terms as u64 > r.remaining() / 16 {
            return Err(invalid("more terms than bytes"));
        }
        for _ in 0..terms {
            let term = r.string()?.into_boxed_str();
            let list = r.postings()?;
            if list
                .iter()
                .any(|&(c, f)| c as usize >= lens.len() || !f.is_finite())
            {
                return Err(invalid("a posting of no chunk"));
            }
            postings.insert(term, list.into_boxed_slice());
        }
        Ok(Lexical {
            lens,
            total,
            avg,
            postings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::vectors::top_k;
    use super::*;

    fn index(texts: &[&str]) -> Lexical {
        let mut b = LexicalBuilder::default();
        for t in texts {
            b.add(t);
        }
        b.finish(None)
    }

    fn top(
        ix: &Lexical,
        query: &[&str],
        k: usize,
        allowed: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f64)> {
        let query: Vec<String> = query.iter().map(|t| t.to_string()).collect();
        let w = Weights::new(&query, ix.chunks(), |t| ix.df(t));
        let mut scored = Vec::new();
        ix.score(&w, allowed, |c| c, &mut scored);
        top_k(scored, k)
            .into_iter()
            .map(|(c, s)| (c, w.normalise(s)))
            .collect()
    }

    #[test]
    fn bm25_ranks_the_denser_match_first_and_normalises() {
        let ix = index(&[
            "The quick brown fox jumps over the lazy dog",
            "Zebras graze on the savanna; a zebra herd",
            "foxes and more foxes, fox fox",
        ]);
        let first = top(&ix, &["fox"], 10, |_| true);
        let order: Vec<u32> = first.iter().map(|r| r.0).collect();
        assert_eq!(order, vec![2, 0]);
        assert!(first.iter().all(|r| r.1 > 0.0 && r.1 <= 1.0), "{first:?}");
        // Half the query's terms unknown: the score drops accordingly.
        let half = top(&ix, &["fox", "unicorn"], 10, |_| true);
        assert!(half[0].1 < first[0].1);
        // The filter and k apply.
        assert_eq!(top(&ix, &["fox"], 10, |c| c != 2)[0].0, 0);
        assert_eq!(top(&ix, &["fox"], 1, |_| true).len(), 1);
        assert!(top(&ix, &["unicorn"], 10, |_| true).is_empty());
    }

    #[test]
    fn absorbing_parts_gives_the_index_of_the_whole() {
        let texts = [
            "alpha beta beta gamma",
            "beta beta beta beta beta beta beta delta",
            "gamma",
            "alpha alpha epsilon zeta eta theta iota kappa lambda",
            "mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega alpha",
        ];
        let whole = index(&texts);
        let (a, b) = (index(&texts[..2]), index(&texts[2..]));
        let mut merged = LexicalBuilder::default();
        merged.absorb(&a, &[0, 1]);
        merged.absorb(&b, &[2, 3, 4]);
        let merged = merged.finish(None);
        assert_eq!(merged.chunks(), whole.chunks());
        assert_eq!(merged.total_len(), whole.total_len());
        for (term, list) in &whole.postings {
            let got = &merged.postings[term];
            assert_eq!(got.len(), list.len(), "{term}");
            for (x, y) in list.iter().zip(got.iter()) {
                assert_eq!(x.0, y.0);
                assert!((x.1 - y.1).abs() < 1e-6, "{term}: {x:?} {y:?}");
            }
        }
        // Dropped chunks leave nothing behind; the rest are renumbered.
        let mut some = LexicalBuilder::default();
        some.absorb(&whole, &[u32::MAX, 0, u32::MAX, 1, u32::MAX]);
        let some = some.finish(None);
        assert_eq!(some.chunks(), 2);
        assert_eq!(some.df("gamma"), 0);
        assert_eq!(some.df("alpha"), 1);
        assert_eq!(top(&some, &["beta"], 10, |_| true)[0].0, 0);
    }

    #[test]
    fn term_frequencies_survive_the_round_trip() {
        for avg in [3.0f32, 57.5, 400.0] {
            for len in [1u32, 10, 100, 800, 4096] {
                for tf in [1u32, 2, 7, 100, 800, 4096]
                    .into_iter()
                    .filter(|&t| t <= len)
                {
                    let t = tf as f32;
                    let factor = t * (K1 + 1.0) / (t + K1 * norm(len, avg));
                    assert_eq!(term_frequency(factor, len, avg), tf, "{avg} {len}");
                }
            }
        }
    }
}
