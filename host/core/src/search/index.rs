//! A store's index at one generation: a table of file slots and a list of segments.
//!
//! Every change to a store's searchable content is a change to one of its files (chunks
//! written when its ingestion completes, dropped when it is detached or re-attached, its
//! attributes edited), and every completed file carries the generation its chunks were
//! written at (its *stamp*). So a node brings its index up to date from the store's list of
//! completed files alone ([`StoreIndex::delta`]): a file gone or re-ingested (its stamp
//! moved) has its slot marked dead, a new one gets a slot and its chunks go into a new
//! segment, edited attributes are replaced in place. Nothing is rebuilt: the new index
//! shares every old segment (they are immutable) and holds the new one, and dead slots' chunks
//! are skipped by the same per-file check that applies attribute filters.
//!
//! Segments are merged in the background ([`StoreIndex::merge_plan`]) by size tier, so a
//! store that keeps growing holds a few segments and each chunk is rewritten a logarithmic
//! number of times; a merge also drops dead chunks. Chunk ids handed out by [`StoreIndex::rank`]
//! are global: a segment's chunks are numbered from its base.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use serde_json::Value;

use super::codec::{invalid, Reader, Writer};
use super::lexical::Weights;
use super::segment::Segment;
use super::vectors::top_k;
use super::{fuse, Filter, FUSION_WINDOW, VECTOR_CANDIDATES};
use crate::store::vector_stores::IndexedFile;

/// Segments of one size tier (sizes within a factor of [`TIER_FACTOR`]) that are merged into
/// one as soon as there are this many.
const TIER_WIDTH: usize = 4;
const TIER_FACTOR: usize = 4;
/// Segments up to this many chunks are all of the lowest tier.
const TIER_FLOOR: usize = 1_024;
/// A segment whose dead chunks reach this share of it is compacted (merged on its own).
const DEAD_SHARE: f64 = 0.3;
/// The first eight bytes of a persisted index: the format's name and version.
const FORMAT: u64 = u64::from_le_bytes(*b"AsIdx\0\0\x01");

/// A slot of the file table. Dead slots (the file left the store, or its chunks were
/// replaced) stay until no segment holds their chunks.
#[derive(Debug)]
pub(super) struct FileInfo {
    pub id: String,
    pub filename: String,
    pub attributes: Option<Value>,
    pub stamp: i64,
    pub live: bool,
}

/// What brings an index up to the store's current list of files.
#[derive(Debug, Default)]
pub(super) struct Delta {
    /// Slots whose file left the store or was ingested again.
    pub dead: Vec<u32>,
    /// Live slots whose attributes changed.
    pub retagged: Vec<(u32, Option<Value>)>,
    /// Files whose chunks must be read; they get slots from `first_slot` on, in this order.
    pub added: Vec<IndexedFile>,
    pub first_slot: u32,
}

#[derive(Default)]
pub(super) struct StoreIndex {
    pub generation: i64,
    pub files: Vec<Arc<FileInfo>>,
    /// Live file id → slot.
    slots: HashMap<String, u32>,
    segments: Vec<Arc<Segment>>,
    /// The global id of each segment's first chunk.
    bases: Vec<u32>,
}

impl StoreIndex {
    fn assemble(
        generation: i64,
        files: Vec<Arc<FileInfo>>,
        segments: Vec<Arc<Segment>>,
    ) -> StoreIndex {
        let slots = files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.live)
            .map(|(i, f)| (f.id.clone(), i as u32))
            .collect();
        let mut bases = Vec::with_capacity(segments.len());
        let mut next = 0u32;
        for s in &segments {
            bases.push(next);
            next += s.len() as u32;
        }
        StoreIndex {
            generation,
            files,
            slots,
            segments,
            bases,
        }
    }

    /// Heap bytes held by the segments.
    pub fn bytes(&self) -> usize {
        self.segments.iter().map(|s| s.bytes()).sum()
    }

    pub fn chunks(&self) -> usize {
        self.segments.iter().map(|s| s.len()).sum()
    }

    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    pub fn vectors(&self) -> usize {
        self.segments.iter().map(|s| s.vectors.len()).sum()
    }

    /// The store's average chunk length in terms, if it has chunks: what a new segment's
    /// lexical factors are normalised by, so its chunks score as in one index of the store.
    pub fn avg_len(&self) -> Option<f32> {
        let chunks = self.chunks();
        (chunks > 0).then(|| {
            let total: u64 = self.segments.iter().map(|s| s.lexical.total_len()).sum();
            total as f32 / chunks as f32
        })
    }

    /// What changed between this index and the store's `current` completed files.
    pub fn delta(&self, current: Vec<IndexedFile>) -> Delta {
        let mut delta = Delta {
            first_slot: self.files.len() as u32,
            ..Delta::default()
        };
        let mut seen = std::collections::HashSet::with_capacity(current.len());
        for f in current {
            seen.insert(f.id.clone());
            match self.slots.get(&f.id) {
                Some(&slot) if self.files[slot as usize].stamp == f.stamp => {
                    if self.files[slot as usize].attributes != f.attributes {
                        delta.retagged.push((slot, f.attributes));
                    }
                }
                Some(&slot) => {
                    delta.dead.push(slot);
                    delta.added.push(f);
                }
                None => delta.added.push(f),
            }
        }
        delta.dead.extend(
            self.slots
                .iter()
                .filter(|(id, _)| !seen.contains(id.as_str()))
                .map(|(_, &slot)| slot),
        );
        delta
    }

    /// This index with `delta` applied at `generation`: the added files' chunks are
    /// `segment` (numbered with their slots), their names from `filenames`.
    pub fn apply(
        &self,
        generation: i64,
        delta: Delta,
        filenames: &HashMap<String, String>,
        segment: Option<Segment>,
    ) -> StoreIndex {
        debug_assert_eq!(delta.first_slot as usize, self.files.len());
        let mut files = self.files.clone();
        for slot in delta.dead {
            let old = &files[slot as usize];
            files[slot as usize] = Arc::new(FileInfo {
                id: old.id.clone(),
                filename: String::new(),
                attributes: None,
                stamp: old.stamp,
                live: false,
            });
        }
        for (slot, attributes) in delta.retagged {
            let old = &files[slot as usize];
            files[slot as usize] = Arc::new(FileInfo {
                id: old.id.clone(),
                filename: old.filename.clone(),
                attributes,
                stamp: old.stamp,
                live: true,
            });
        }
        for f in delta.added {
            files.push(Arc::new(FileInfo {
                filename: filenames.get(&f.id).cloned().unwrap_or_default(),
                id: f.id,
                attributes: f.attributes,
                stamp: f.stamp,
                live: true,
            }));
        }
        let mut segments = self.segments.clone();
        segments.extend(segment.filter(|s| s.len() > 0).map(Arc::new));
        StoreIndex::assemble(generation, files, segments)
    }

    /// The segment holding global chunk `id`, and the chunk's number in it.
    fn locate(&self, id: u32) -> (&Segment, usize) {
        let i = self.bases.partition_point(|&b| b <= id) - 1;
        (&self.segments[i], (id - self.bases[i]) as usize)
    }

    /// Global chunk `id`'s row number and file.
    pub fn chunk(&self, id: u32) -> (i64, &FileInfo) {
        let (s, c) = self.locate(id);
        (s.chunk_seq[c], &self.files[s.chunk_file[c] as usize])
    }

    /// The chunks that best match, best first: `(global chunk, score)` with scores in 0..1.
    pub fn rank(
        &self,
        query_terms: &[String],
        query_vector: Option<&[f32]>,
        max_results: usize,
        threshold: f64,
        filter: Option<&Filter>,
        rerank: bool,
    ) -> Vec<(u32, f64)> {
        let allowed_files: Vec<bool> = self
            .files
            .iter()
            .map(|f| f.live && filter.is_none_or(|flt| flt.matches(f.attributes.as_ref())))
            .collect();
        let ranked = match query_vector.filter(|_| self.vectors() > 0) {
            Some(q) => {
                let window = FUSION_WINDOW.max(max_results);
                let lexical = self.lexical(query_terms, window, &allowed_files);
                let vector = self.nearest(q, window, rerank, &allowed_files);
                fuse(&lexical, &vector)
            }
            None => self.lexical(query_terms, max_results, &allowed_files),
        };
        ranked
            .into_iter()
            .filter(|(_, s)| *s >= threshold && *s > 0.0)
            .take(max_results)
            .collect()
    }

    fn lexical(&self, query_terms: &[String], k: usize, allowed_files: &[bool]) -> Vec<(u32, f64)> {
        let weights = Weights::new(query_terms, self.chunks(), |t| {
            self.segments.iter().map(|s| s.lexical.df(t)).sum()
        });
        if weights.is_empty() {
            return Vec::new();
        }
        let mut scored = Vec::new();
        for (s, &base) in self.segments.iter().zip(&self.bases) {
            s.lexical.score(
                &weights,
                |c| allowed_files[s.chunk_file[c as usize] as usize],
                |c| base + c,
                &mut scored,
            );
        }
        top_k(scored, k)
            .into_iter()
            .map(|(c, score)| (c, weights.normalise(score)))
            .collect()
    }

    fn nearest(
        &self,
        q: &[f32],
        k: usize,
        rerank: bool,
        allowed_files: &[bool],
    ) -> Vec<(u32, f64)> {
        let mut found = Vec::new();
        for (s, &base) in self.segments.iter().zip(&self.bases) {
            let allowed = |c: u32| allowed_files[s.chunk_file[c as usize] as usize];
            found.extend(
                s.vectors
                    .nearest(q, k, VECTOR_CANDIDATES, rerank, allowed)
                    .into_iter()
                    .map(|(c, cos)| (base + c, f64::from(cos.clamp(0.0, 1.0))))
                    .filter(|(_, s)| *s > 0.0),
            );
        }
        top_k(found, k)
    }

    /// Chunks of dead slots in each segment.
    fn dead_chunks(&self) -> Vec<usize> {
        self.segments
            .iter()
            .map(|s| {
                s.chunk_file
                    .iter()
                    .filter(|&&f| !self.files[f as usize].live)
                    .count()
            })
            .collect()
    }

    /// Segments worth merging now, if any: the smallest tier with [`TIER_WIDTH`] segments
    /// (sizes counted in live chunks), or else a segment mostly dead.
    pub fn merge_plan(&self) -> Option<Vec<Arc<Segment>>> {
        let dead = self.dead_chunks();
        let live: Vec<usize> = self
            .segments
            .iter()
            .zip(&dead)
            .map(|(s, d)| s.len() - d)
            .collect();
        let tier = |n: usize| {
            let (mut t, mut cap) = (0u32, TIER_FLOOR);
            while n > cap {
                t += 1;
                cap = cap.saturating_mul(TIER_FACTOR);
            }
            t
        };
        // Only segments of one embedding dimension merge (a store embedded by two models keeps
        // both models' vectors apart; a merge keeps one dimension).
        let mut tiers: std::collections::BTreeMap<(u32, usize), Vec<usize>> = Default::default();
        for (i, &n) in live.iter().enumerate() {
            tiers
                .entry((tier(n), self.segments[i].dims()))
                .or_default()
                .push(i);
        }
        let pick = tiers
            .into_values()
            .find(|members| members.len() >= TIER_WIDTH)
            .or_else(|| {
                (0..self.segments.len())
                    .find(|&i| {
                        dead[i] > 0 && dead[i] as f64 >= DEAD_SHARE * self.segments[i].len() as f64
                    })
                    .map(|i| vec![i])
            })?;
        Some(pick.into_iter().map(|i| self.segments[i].clone()).collect())
    }

    /// Merges `parts` (from [`StoreIndex::merge_plan`]) into one segment, keeping the chunks
    /// of slots live in this index. Runs on a blocking thread: it copies every kept chunk.
    pub fn merge(&self, parts: &[Arc<Segment>]) -> Segment {
        let refs: Vec<&Segment> = parts.iter().map(|p| &**p).collect();
        let all = parts.len() == self.segments.len();
        // A merge of everything normalises by its own average; a partial one by the store's.
        let avg = if all { None } else { self.avg_len() };
        Segment::merge(&refs, |slot| self.files[slot as usize].live, avg)
    }

    /// This index with `merged` in place of `parts`, if they are all still here (a refresh
    /// built from an index before the merge holds them too; a full build does not). When
    /// nothing else is left, the file table is compacted: slots no chunk refers to any more
    /// are dropped (the merged segment is then renumbered, sharing its bulk).
    pub fn with_merged(&self, parts: &[Arc<Segment>], merged: &Arc<Segment>) -> Option<StoreIndex> {
        let positions: Vec<usize> = parts
            .iter()
            .map(|p| self.segments.iter().position(|s| Arc::ptr_eq(s, p)))
            .collect::<Option<_>>()?;
        let mut segments: Vec<Arc<Segment>> = self
            .segments
            .iter()
            .enumerate()
            .filter(|(i, _)| !positions.contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        if !segments.is_empty() {
            if merged.len() > 0 {
                segments.push(merged.clone());
            }
            return Some(StoreIndex::assemble(
                self.generation,
                self.files.clone(),
                segments,
            ));
        }
        let mut referenced = vec![false; self.files.len()];
        for &slot in merged.chunk_file.iter() {
            referenced[slot as usize] = true;
        }
        let mut renumbered = vec![u32::MAX; self.files.len()];
        let mut files = Vec::new();
        for (slot, f) in self.files.iter().enumerate() {
            if f.live || referenced[slot] {
                renumbered[slot] = files.len() as u32;
                files.push(f.clone());
            }
        }
        if merged.len() > 0 {
            segments.push(Arc::new(merged.renumbered(&renumbered)));
        }
        Some(StoreIndex::assemble(self.generation, files, segments))
    }

    /// Writes the whole index (files and segments) for [`StoreIndex::read`].
    pub fn write<W: Write>(&self, w: &mut Writer<W>) -> io::Result<()> {
        w.u64(FORMAT)?;
        w.i64(self.generation)?;
        w.len(self.files.len())?;
        for f in &self.files {
            w.str(&f.id)?;
            w.str(&f.filename)?;
            let attributes = f.attributes.as_ref().map(Value::to_string);
            w.str(attributes.as_deref().unwrap_or(""))?;
            w.i64(f.stamp)?;
            w.u32(u32::from(f.live))?;
        }
        w.len(self.segments.len())?;
        for s in &self.segments {
            s.write(w)?;
        }
        Ok(())
    }

    /// Reads an index [`StoreIndex::write`] wrote; an error for anything else.
    pub fn read<R: Read>(r: &mut Reader<R>) -> io::Result<StoreIndex> {
        if r.u64()? != FORMAT {
            return Err(invalid("not a search index of this version"));
        }
        let generation = r.i64()?;
        let n = r.len()?;
        let mut files = Vec::with_capacity(n);
        for _ in 0..n {
            let (id, filename, attributes) = (r.string()?, r.string()?, r.string()?);
            let attributes = (!attributes.is_empty())
                .then(|| serde_json::from_str(&attributes))
                .transpose()
                .map_err(|_| invalid("attributes"))?;
            files.push(Arc::new(FileInfo {
                id,
                filename,
                attributes,
                stamp: r.i64()?,
                live: r.u32()? != 0,
            }));
        }
        let n = r.len()?;
        let mut segments = Vec::with_capacity(n);
        for _ in 0..n {
            segments.push(Arc::new(Segment::read(r, files.len())?));
        }
        if r.remaining() != 0 || segments.iter().map(|s| s.len()).sum::<usize>() > u32::MAX as usize
        {
            return Err(invalid("trailing bytes"));
        }
        Ok(StoreIndex::assemble(generation, files, segments))
    }
}
