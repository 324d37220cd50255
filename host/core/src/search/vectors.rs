//! The vector side of a store's index: nearest chunks to a query embedding by cosine.
//!
//! Every chunk's unit embedding is kept twice, compactly, instead of as f32 (6 KiB per chunk
//! at 1,536 dimensions):
//!
//! - its **sign bits** (dims / 8 bytes): a first pass over every chunk ranks them by Hamming
//!   distance to the query's sign bits, a cheap estimate of the angle between them;
//! - its **int8 codes** with one scale per vector (dims bytes): the best `candidates` of the
//!   first pass are rescored by cosine from these, within about 1% of the f32 value.
//!
//! This was chosen by measurement over exact f32 and exhaustive int8 scans (the `search` bench,
//! figures in `docs/benchmarks.md`): at a million chunks the f32 scan reads 6 GiB per query and
//! the int8 scan 1.5 GiB, both far over the latency goal, while the sign-bit pass reads 192 MB
//! with plain portable code and, rescoring enough candidates, finds the same top results.
//! It needs no training and no rebuild when chunks are added, unlike clustered (IVF) or graph
//! (HNSW) indexes, whose build cost on a two-core machine would be paid on every node.

/// Embeddings of a store's chunks (all of one dimension; see [`Vectors::push`]).
#[derive(Default)]
pub struct Vectors {
    dims: usize,
    /// u64 words of sign bits per vector.
    words: usize,
    /// The chunk number of each vector (chunks without an embedding have none).
    chunks: Vec<u32>,
    bits: Vec<u64>,
    codes: Vec<i8>,
    scales: Vec<f32>,
}

impl Vectors {
    /// Adds `chunk`'s embedding, given as little-endian f32 bytes (the stored form). The first
    /// embedding fixes the dimension; one of another dimension (the store was embedded by
    /// several models) is skipped, since it cannot be compared with the query. Returns whether
    /// it was added.
    pub(crate) fn push_bytes(&mut self, chunk: u32, bytes: &[u8], scratch: &mut Vec<f32>) -> bool {
        scratch.clear();
        scratch.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        self.push(chunk, scratch)
    }

    /// Adds `chunk`'s embedding (see [`Vectors::push_bytes`]).
    pub fn push(&mut self, chunk: u32, v: &[f32]) -> bool {
        // Hamming distances are kept as u16 (see `nearest`).
        if v.is_empty() || v.len() >= usize::from(u16::MAX) || v.iter().any(|x| !x.is_finite()) {
            return false;
        }
        if self.dims == 0 {
            self.dims = v.len();
            self.words = v.len().div_ceil(64);
        }
        if v.len() != self.dims {
            return false;
        }
        self.bits.extend(sign_bits(v));
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        self.codes.extend(
            v.iter()
                .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
        );
        self.scales.push(scale);
        self.chunks.push(chunk);
        true
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Appends the vectors of `other`'s chunks that `renumbered` keeps (`u32::MAX`: dropped),
    /// under their new numbers: a segment merge. Vectors of another dimension than this
    /// index's are skipped, as in [`Vectors::push`].
    pub(crate) fn absorb(&mut self, other: &Vectors, renumbered: &[u32]) {
        if other.is_empty() {
            return;
        }
        if self.dims == 0 {
            self.dims = other.dims;
            self.words = other.words;
        }
        if other.dims != self.dims {
            return;
        }
        let (words, dims) = (self.words, self.dims);
        for (row, &chunk) in other.chunks.iter().enumerate() {
            let new = renumbered[chunk as usize];
            if new == u32::MAX {
                continue;
            }
            self.chunks.push(new);
            self.bits
                .extend_from_slice(&other.bits[row * words..(row + 1) * words]);
            self.codes
                .extend_from_slice(&other.codes[row * dims..(row + 1) * dims]);
            self.scales.push(other.scales[row]);
        }
    }

    /// Returns the spare capacity of a finished index.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.chunks.shrink_to_fit();
        self.bits.shrink_to_fit();
        self.codes.shrink_to_fit();
        self.scales.shrink_to_fit();
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.chunks.capacity() * 4
            + self.bits.capacity() * 8
            + self.codes.capacity()
            + self.scales.capacity() * 4
    }

    fn cosine(&self, row: usize, q: &[f32]) -> f32 {
        let code = &self.codes[row * self.dims..(row + 1) * self.dims];
        dot_code(q, code) * self.scales[row]
    }

    /// The `k` allowed chunks nearest `q` by cosine, best first (equal scores: lower chunk
    /// first). A Hamming pass over every allowed chunk keeps the `candidates` nearest (at least
    /// `k`), which are rescored from their int8 codes. With `oversample` off (the search's
    /// `ranker: "none"`) only the `k` nearest by Hamming distance are rescored: less work, and
    /// a true neighbour the sign bits misjudge can be missed; scores stay exact either way. A
    /// query of another dimension finds nothing.
    pub fn nearest(
        &self,
        q: &[f32],
        k: usize,
        candidates: usize,
        oversample: bool,
        allowed: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if q.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let candidates = if oversample { candidates.max(k) } else { k };
        let qbits: Vec<u64> = sign_bits(q).collect();
        // Distances fit u16 (at most `dims`); u16::MAX marks a chunk the filter excludes.
        let mut counts = vec![0u32; self.dims + 1];
        let distances: Vec<u16> = self
            .bits
            .chunks_exact(self.words)
            .zip(&self.chunks)
            .map(|(bits, &chunk)| {
                if !allowed(chunk) {
                    return u16::MAX;
                }
                let d: u32 = bits
                    .iter()
                    .zip(&qbits)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                counts[d as usize] += 1;
                d as u16
            })
            .collect();
        // The distance below which there are fewer than `candidates` chunks: take all of those
        // and, in row order, enough at the cut-off distance itself.
        // (Fewer allowed chunks than `candidates`: every one of them.)
        let mut cut = self.dims + 1;
        let mut below = 0u32;
        for (d, &n) in counts.iter().enumerate() {
            if (below + n) as usize >= candidates {
                cut = d;
                break;
            }
            below += n;
        }
        let mut at_cut = candidates as u32 - below.min(candidates as u32);
        let mut scored = Vec::with_capacity(candidates);
        for (row, &d) in distances.iter().enumerate() {
            let take = if d == u16::MAX {
                false
            } else if (d as usize) < cut {
                true
            } else if d as usize == cut && at_cut > 0 {
                at_cut -= 1;
                true
            } else {
                false
            };
            if take {
                scored.push((self.chunks[row], self.cosine(row, q)));
            }
        }
        top_k(scored, k)
    }

    /// Every allowed chunk scored from its int8 code: exact up to quantisation, and slow on
    /// large stores. For measuring [`Vectors::nearest`] against (the `search` bench).
    pub fn nearest_exhaustive(
        &self,
        q: &[f32],
        k: usize,
        allowed: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if q.len() != self.dims {
            return Vec::new();
        }
        let scored = (0..self.len())
            .filter(|&row| allowed(self.chunks[row]))
            .map(|row| (self.chunks[row], self.cosine(row, q)))
            .collect();
        top_k(scored, k)
    }
}

impl Vectors {
    pub(super) fn write<W: std::io::Write>(
        &self,
        w: &mut super::codec::Writer<W>,
    ) -> std::io::Result<()> {
        w.u64(self.dims as u64)?;
        w.u32s(&self.chunks)?;
        w.u64s(&self.bits)?;
        w.i8s(&self.codes)?;
        w.f32s(&self.scales)
    }

    /// Reads what [`Vectors::write`] wrote for a segment of `chunks` chunks, checking that
    /// every array has its length and every vector a chunk.
    pub(super) fn read<R: std::io::Read>(
        r: &mut super::codec::Reader<R>,
        chunks: usize,
    ) -> std::io::Result<Vectors> {
        let bad = super::codec::invalid;
        let dims = usize::try_from(r.u64()?).map_err(|_| bad("dimensions"))?;
        if dims >= usize::from(u16::MAX) {
            return Err(bad("dimensions"));
        }
        let words = dims.div_ceil(64);
        let v = Vectors {
            dims,
            words,
            chunks: r.u32s()?,
            bits: r.u64s()?,
            codes: r.i8s()?,
            scales: r.f32s()?,
        };
        let n = v.chunks.len();
        if (n > 0 && dims == 0)
            || v.bits.len() != n * words
            || v.codes.len() != n * dims
            || v.scales.len() != n
            || v.chunks.iter().any(|&c| c as usize >= chunks)
            || v.scales.iter().any(|s| !s.is_finite())
        {
            return Err(bad("vectors"));
        }
        // Sign bits past the dimension are zero (`sign_bits` never sets them): a set one would
        // put a Hamming distance past the dimension.
        if dims % 64 != 0 {
            let padding = !0u64 << (dims % 64);
            if v.bits
                .chunks_exact(words)
                .any(|w| w[words - 1] & padding != 0)
            {
                return Err(bad("sign bits past the dimension"));
            }
        }
        Ok(v)
    }
}

/// Exact f32 nearest rows of `vectors` (row-major, `dims` per row) to `q`: the baseline the
/// `search` bench compares with.
pub fn exact_nearest(vectors: &[f32], dims: usize, q: &[f32], k: usize) -> Vec<(u32, f32)> {
    let scored = vectors
        .chunks_exact(dims)
        .enumerate()
        .map(|(row, v)| (row as u32, dot(v, q)))
        .collect();
    top_k(scored, k)
}

/// The `k` highest scores, best first, ties by lower id: a selection, not a full sort, since
/// the input can be a large part of a million-chunk store.
pub(crate) fn top_k<S: Copy + PartialOrd>(mut v: Vec<(u32, S)>, k: usize) -> Vec<(u32, S)> {
    let order = |a: &(u32, S), b: &(u32, S)| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    };
    if k == 0 {
        return Vec::new();
    }
    if v.len() > k {
        v.select_nth_unstable_by(k - 1, order);
        v.truncate(k);
    }
    v.sort_by(order);
    v
}

fn sign_bits(v: &[f32]) -> impl Iterator<Item = u64> + '_ {
    v.chunks(64).map(|w| {
        w.iter()
            .enumerate()
            .fold(0u64, |acc, (i, x)| acc | (u64::from(*x > 0.0) << i))
    })
}

/// Dot product with eight independent sums, so the compiler can vectorise it (one running sum
/// forces a sequential order of float additions, about six times slower).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [`dot`] of an f32 query with an int8 code.
fn dot_code(q: &[f32], code: &[i8]) -> f32 {
    let mut acc = [0f32; 8];
    let (cq, cc) = (q.chunks_exact(8), code.chunks_exact(8));
    let tail: f32 = cq
        .remainder()
        .iter()
        .zip(cc.remainder())
        .map(|(x, &y)| x * f32::from(y))
        .sum();
    for (x, y) in cq.zip(cc) {
        for i in 0..8 {
            acc[i] += x[i] * f32::from(y[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// Deterministic pseudo-random unit vectors.
    fn vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        (0..n)
            .map(|_| unit((0..dims).map(|_| next()).collect()))
            .collect()
    }

    #[test]
    fn quantised_cosine_is_close_to_exact() {
        let vs = vectors(50, 300, 7);
        let mut ix = Vectors::default();
        for (i, v) in vs.iter().enumerate() {
            assert!(ix.push(i as u32, v));
        }
        let q = &vs[0];
        for (row, v) in vs.iter().enumerate() {
            let exact = dot(v, q);
            assert!((ix.cosine(row, q) - exact).abs() < 0.01, "{row}");
        }
        assert!((ix.cosine(0, q) - 1.0).abs() < 0.01);
    }

    #[test]
    fn nearest_finds_the_exact_top_results_and_honours_the_filter() {
        let dims = 256;
        let vs = vectors(2_000, dims, 11);
        let mut ix = Vectors::default();
        let mut flat = Vec::new();
        for (i, v) in vs.iter().enumerate() {
            ix.push(i as u32, v);
            flat.extend_from_slice(v);
        }
        // A query near chunk 42: it must come first, and the top 5 agree with exact f32.
        let q = unit(
            vs[42]
                .iter()
                .zip(&vs[7])
                .map(|(a, b)| a + 0.3 * b)
                .collect(),
        );
        let exact: Vec<u32> = exact_nearest(&flat, dims, &q, 5)
            .iter()
            .map(|r| r.0)
            .collect();
        let got: Vec<u32> = ix
            .nearest(&q, 5, 400, true, |_| true)
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(got[0], 42);
        assert_eq!(got[1], 7);
        assert_eq!(got, exact);
        let full: Vec<u32> = ix
            .nearest_exhaustive(&q, 5, |_| true)
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(full, exact);
        // Without oversampling: the clear winner is still found, with its exact score.
        let quick = ix.nearest(&q, 5, 400, false, |_| true);
        assert_eq!(quick.len(), 5);
        assert_eq!(quick[0].0, 42);
        assert!((quick[0].1 - exact_nearest(&flat, dims, &q, 1)[0].1).abs() < 0.01);
        // Filtered out: never returned, even when nearest.
        let filtered = ix.nearest(&q, 5, 400, true, |c| c != 42);
        assert!(filtered.iter().all(|r| r.0 != 42));
        assert_eq!(filtered[0].0, 7);
        assert_eq!(filtered.len(), 5);
        // Fewer allowed chunks than candidates: all of them, ranked.
        assert_eq!(ix.nearest(&q, 5, 400, true, |c| c < 3).len(), 3);
        // …even those at the largest distance (every sign differs).
        let mut opposite = Vectors::default();
        opposite.push(0, &[1.0, 1.0]);
        opposite.push(1, &[-1.0, -1.0]);
        opposite.push(2, &[-1.0, -0.5]);
        assert_eq!(
            opposite.nearest(&[1.0, 1.0], 3, 10, true, |_| true).len(),
            3
        );
    }

    #[test]
    fn other_dimensions_and_bad_values_are_skipped() {
        let mut ix = Vectors::default();
        assert!(ix.push(0, &[1.0, 0.0]));
        assert!(!ix.push(1, &[1.0, 0.0, 0.0]));
        assert!(!ix.push(2, &[f32::NAN, 1.0]));
        let mut scratch = Vec::new();
        let bytes: Vec<u8> = [0.0f32, 1.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert!(ix.push_bytes(3, &bytes, &mut scratch));
        assert_eq!(ix.len(), 2);
        assert!(ix
            .nearest(&[1.0, 0.0, 0.0], 3, 10, true, |_| true)
            .is_empty());
        let got = ix.nearest(&[0.0, 1.0], 3, 10, true, |_| true);
        assert_eq!(got[0].0, 3);
    }

    #[test]
    fn absorbing_keeps_the_chosen_vectors_under_new_numbers() {
        let vs = vectors(6, 100, 3);
        let mut part = Vectors::default();
        for (i, v) in vs.iter().enumerate() {
            part.push(i as u32, v);
        }
        let mut merged = Vectors::default();
        merged.absorb(&part, &[u32::MAX, 0, u32::MAX, 1, 2, u32::MAX]);
        assert_eq!(merged.len(), 3);
        for (row, old) in [1usize, 3, 4].into_iter().enumerate() {
            assert_eq!(merged.chunks[row], row as u32);
            assert!((merged.cosine(row, &vs[old]) - part.cosine(old, &vs[old])).abs() < 1e-6);
        }
        let got = merged.nearest(&vs[3], 1, 10, true, |_| true);
        assert_eq!(got[0].0, 1);
        // Another dimension is skipped.
        let mut other = Vectors::default();
        other.push(0, &[1.0, 0.0]);
        merged.absorb(&other, &[3]);
        assert_eq!(merged.len(), 3);
    }

    #[test]
    fn top_k_selects_and_orders() {
        let v = vec![(3, 0.5), (1, 0.9), (2, 0.5), (4, 0.1)];
        assert_eq!(top_k(v.clone(), 3), vec![(1, 0.9), (2, 0.5), (3, 0.5)]);
        assert_eq!(top_k(v.clone(), 10).len(), 4);
        assert!(top_k(v, 0).is_empty());
    }
}
