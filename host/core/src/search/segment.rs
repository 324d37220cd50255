//! One segment of a store's index: the chunks of some of its files, with their lexical and
//! vector indexes. A segment is immutable once built; a store's index is a list of them
//! (`index.rs`), a refresh adds one for the files that changed, and a merge replaces several
//! with one (keeping only the chunks of files still live) without reading the database.

use std::io::{self, Read, Write};
use std::sync::Arc;

use super::codec::{invalid, Reader, Writer};
use super::lexical::{Lexical, LexicalBuilder};
use super::vectors::Vectors;

/// Chunks of some files, numbered 0.. within the segment. The bulky parts are shared, so a
/// segment whose file slots are renumbered (a file table compaction) copies only `chunk_file`.
pub(super) struct Segment {
    /// Per chunk: its file's slot in the store index's file table.
    pub chunk_file: Box<[u32]>,
    /// Per chunk: its row number (`chunks.seq`), to read its text back.
    pub chunk_seq: Arc<[i64]>,
    pub lexical: Arc<Lexical>,
    pub vectors: Arc<Vectors>,
    /// Heap bytes held, counted once (the cache's budget reads it on every install).
    bytes: usize,
}

/// Builds a [`Segment`] from chunks added in order.
#[derive(Default)]
pub(super) struct SegmentBuilder {
    chunk_file: Vec<u32>,
    chunk_seq: Vec<i64>,
    lexical: LexicalBuilder,
    vectors: Vectors,
    scratch: Vec<f32>,
}

impl SegmentBuilder {
    pub fn add(&mut self, slot: u32, seq: i64, text: &str, embedding: Option<&[u8]>) {
        let chunk = self.chunk_file.len() as u32;
        self.chunk_file.push(slot);
        self.chunk_seq.push(seq);
        self.lexical.add(text);
        if let Some(bytes) = embedding {
            self.vectors.push_bytes(chunk, bytes, &mut self.scratch);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.chunk_file.is_empty()
    }

    /// The segment; lexical factors normalised by `avg_len` (the store's average chunk
    /// length) or, without it, by the segment's own.
    pub fn finish(mut self, avg_len: Option<f32>) -> Segment {
        self.vectors.shrink_to_fit();
        Segment::new(
            self.chunk_file.into_boxed_slice(),
            self.chunk_seq.into(),
            self.lexical.finish(avg_len),
            self.vectors,
        )
    }
}

impl Segment {
    fn new(
        chunk_file: Box<[u32]>,
        chunk_seq: Arc<[i64]>,
        lexical: Lexical,
        vectors: Vectors,
    ) -> Segment {
        let bytes = lexical.bytes() + vectors.bytes() + chunk_file.len() * 4 + chunk_seq.len() * 8;
        Segment {
            chunk_file,
            chunk_seq,
            lexical: Arc::new(lexical),
            vectors: Arc::new(vectors),
            bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.chunk_file.len()
    }

    /// Heap bytes held (approximately: the postings' hash table itself is not counted).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The embedding dimension of its vectors (0: none).
    pub fn dims(&self) -> usize {
        self.vectors.dims()
    }

    /// This segment with its chunks' file slots renumbered by `slots` (old → new), sharing
    /// everything else.
    pub fn renumbered(&self, slots: &[u32]) -> Segment {
        Segment {
            chunk_file: self.chunk_file.iter().map(|&f| slots[f as usize]).collect(),
            chunk_seq: self.chunk_seq.clone(),
            lexical: self.lexical.clone(),
            vectors: self.vectors.clone(),
            bytes: self.bytes,
        }
    }

    /// One segment of the chunks of `parts` whose file slot `keep` accepts, in order; the
    /// lexical factors normalised by `avg_len` (see [`SegmentBuilder::finish`]).
    pub fn merge(parts: &[&Segment], keep: impl Fn(u32) -> bool, avg_len: Option<f32>) -> Segment {
        let mut b = SegmentBuilder::default();
        for part in parts {
            let mut renumbered = Vec::with_capacity(part.len());
            for (c, &slot) in part.chunk_file.iter().enumerate() {
                if keep(slot) {
                    renumbered.push(b.chunk_file.len() as u32);
                    b.chunk_file.push(slot);
                    b.chunk_seq.push(part.chunk_seq[c]);
                } else {
                    renumbered.push(u32::MAX);
                }
            }
            b.lexical.absorb(&part.lexical, &renumbered);
            b.vectors.absorb(&part.vectors, &renumbered);
        }
        b.chunk_file.shrink_to_fit();
        b.chunk_seq.shrink_to_fit();
        b.finish(avg_len)
    }

    pub fn write<W: Write>(&self, w: &mut Writer<W>) -> io::Result<()> {
        w.u32s(&self.chunk_file)?;
        w.i64s(&self.chunk_seq)?;
        self.lexical.write(w)?;
        self.vectors.write(w)
    }

    /// Reads what [`Segment::write`] wrote, for an index with `files` file slots.
    pub fn read<R: Read>(r: &mut Reader<R>, files: usize) -> io::Result<Segment> {
        let chunk_file = r.u32s()?.into_boxed_slice();
        let chunk_seq: Arc<[i64]> = r.i64s()?.into();
        let lexical = Lexical::read(r)?;
        let vectors = super::vectors::Vectors::read(r, chunk_file.len())?;
        if chunk_seq.len() != chunk_file.len()
            || lexical.chunks() != chunk_file.len()
            || chunk_file.iter().any(|&f| f as usize >= files)
        {
            return Err(invalid("a segment's arrays disagree"));
        }
        Ok(Segment::new(chunk_file, chunk_seq, lexical, vectors))
    }
}
