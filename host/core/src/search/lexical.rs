//! The lexical side of a store's index: BM25 (k1 = 1.2, b = 0.75) over an inverted index.
//!
//! Each posting stores its chunk and its precomputed BM25 term-frequency factor, so a query
//! only adds `idf × factor` per posting into a dense score array: no per-posting lookups of
//! chunk lengths, which at a million chunks are cache misses. Scores are divided by the most
//! any chunk could score for the query (every term present, saturated), giving 0..1: "how
//! fully this chunk matches the query", meaningful for `score_threshold` on its own.

use std::collections::HashMap;

use super::vectors::top_k;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// Splits text into lowercase alphanumeric terms (the same for documents and queries).
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
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
            match self.postings.get_mut(t.as_str()) {
                Some(list) => list.push((chunk, n)),
                None => {
                    self.postings.insert(t.into_boxed_str(), vec![(chunk, n)]);
                }
            }
        }
        self.lens.push(len);
    }

    pub fn finish(self) -> Lexical {
        let n = self.lens.len();
        let total: u64 = self.lens.iter().map(|&l| u64::from(l)).sum();
        let avg = if n == 0 {
            1.0
        } else {
            (total as f32 / n as f32).max(1.0)
        };
        let lens = self.lens;
        let postings = self
            .postings
            .into_iter()
            .map(|(term, list)| {
                let list: Box<[(u32, f32)]> = list
                    .into_iter()
                    .map(|(c, tf)| {
                        let (tf, len) = (tf as f32, lens[c as usize] as f32);
                        (c, tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg)))
                    })
                    .collect();
                (term, list)
            })
            .collect();
        Lexical {
            chunks: n as u32,
            postings,
        }
    }
}

/// A BM25 inverted index over a store's chunks.
pub(crate) struct Lexical {
    chunks: u32,
    /// term → (chunk, BM25 term-frequency factor)
    postings: HashMap<Box<str>, Box<[(u32, f32)]>>,
}

impl Lexical {
    fn idf(&self, df: usize) -> f32 {
        let (n, df) = (self.chunks as f32, df as f32);
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// Heap bytes held by the postings (not counting the hash table's own slots).
    pub fn bytes(&self) -> usize {
        self.postings
            .iter()
            .map(|(t, l)| t.len() + std::mem::size_of_val(&**l))
            .sum()
    }

    /// The `k` allowed chunks that best match `query_terms` (deduplicated), best first, with
    /// normalised scores in 0..1.
    pub fn top(
        &self,
        query_terms: &[String],
        k: usize,
        allowed: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f64)> {
        let lists: Vec<(f32, &[(u32, f32)])> = query_terms
            .iter()
            .filter_map(|t| self.postings.get(t.as_str()))
            .map(|l| (self.idf(l.len()), &**l))
            .collect();
        if lists.is_empty() {
            return Vec::new();
        }
        // The bound: every query term saturated in one chunk (unknown terms count too, so a
        // chunk matching half the query scores about half).
        let bound: f32 = query_terms
            .iter()
            .map(|t| self.idf(self.postings.get(t.as_str()).map_or(0, |l| l.len())) * (K1 + 1.0))
            .sum::<f32>()
            .max(f32::EPSILON);
        // A dense array is much faster than a map for the posting-list sizes of large stores.
        let mut scores = vec![0f32; self.chunks as usize];
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
        let scored = touched
            .into_iter()
            .filter(|&c| allowed(c))
            .map(|c| (c, scores[c as usize]))
            .collect();
        top_k(scored, k)
            .into_iter()
            .map(|(c, s)| (c, f64::from((s / bound).min(1.0))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(texts: &[&str]) -> Lexical {
        let mut b = LexicalBuilder::default();
        for t in texts {
            b.add(t);
        }
        b.finish()
    }

    #[test]
    fn bm25_ranks_the_denser_match_first_and_normalises() {
        let ix = index(&[
            "The quick brown fox jumps over the lazy dog",
            "Zebras graze on the savanna; a zebra herd",
            "foxes and more foxes, fox fox",
        ]);
        let top = ix.top(&["fox".into()], 10, |_| true);
        let order: Vec<u32> = top.iter().map(|r| r.0).collect();
        assert_eq!(order, vec![2, 0]);
        assert!(top.iter().all(|r| r.1 > 0.0 && r.1 <= 1.0), "{top:?}");
        // Half the query's terms unknown: the score drops accordingly.
        let half = ix.top(&["fox".into(), "unicorn".into()], 10, |_| true);
        assert!(half[0].1 < top[0].1);
        // The filter and k apply.
        assert_eq!(ix.top(&["fox".into()], 10, |c| c != 2)[0].0, 0);
        assert_eq!(ix.top(&["fox".into()], 1, |_| true).len(), 1);
        assert!(ix.top(&["unicorn".into()], 10, |_| true).is_empty());
    }
}
