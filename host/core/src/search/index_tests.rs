//! Tests of a store's segmented index: ranking, and refreshes and merges giving what an index
//! built from scratch gives.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};

use super::index::StoreIndex;
use super::segment::SegmentBuilder;
use super::Filter;
use crate::store::vector_stores::{vector_bytes, IndexedFile};

/// A chunk as the database holds it: row number, text, embedding.
type Chunk = (i64, String, Option<Vec<f32>>);

/// A store as the database holds it: completed files (stamp, attributes, chunks).
#[derive(Default, Clone)]
struct Fake {
    files: BTreeMap<String, (i64, Option<Value>, Vec<Chunk>)>,
    generation: i64,
    next_seq: i64,
}

impl Fake {
    /// Ingests (or ingests again) a file with these chunk texts and vectors.
    fn ingest(&mut self, id: &str, chunks: &[(&str, Option<Vec<f32>>)]) {
        self.generation += 1;
        let attrs = self.files.get(id).and_then(|f| f.1.clone());
        let chunks = chunks
            .iter()
            .map(|(t, v)| {
                self.next_seq += 1;
                (self.next_seq, t.to_string(), v.clone())
            })
            .collect();
        self.files
            .insert(id.to_string(), (self.generation, attrs, chunks));
    }

    fn remove(&mut self, id: &str) {
        self.generation += 1;
        self.files.remove(id);
    }

    fn tag(&mut self, id: &str, attributes: Value) {
        self.generation += 1;
        self.files.get_mut(id).unwrap().1 = Some(attributes);
    }

    fn listed(&self) -> Vec<IndexedFile> {
        self.files
            .iter()
            .map(|(id, (stamp, attributes, _))| IndexedFile {
                id: id.clone(),
                attributes: attributes.clone(),
                stamp: *stamp,
            })
            .collect()
    }

    /// What `refresh` does, with this fake for the database.
    fn refresh(&self, base: &StoreIndex) -> StoreIndex {
        let delta = base.delta(self.listed());
        let slots: HashMap<&str, u32> = delta
            .added
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id.as_str(), delta.first_slot + i as u32))
            .collect();
        let mut rows: Vec<(i64, u32, &str, Option<Vec<u8>>)> = Vec::new();
        for (id, (_, _, chunks)) in &self.files {
            if let Some(&slot) = slots.get(id.as_str()) {
                for (seq, text, v) in chunks {
                    rows.push((*seq, slot, text, v.as_deref().map(vector_bytes)));
                }
            }
        }
        rows.sort_by_key(|r| r.0);
        let mut b = SegmentBuilder::default();
        for (seq, slot, text, v) in rows {
            b.add(slot, seq, text, v.as_deref());
        }
        let names: HashMap<String, String> = slots
            .keys()
            .map(|id| (id.to_string(), format!("{id}.txt")))
            .collect();
        let segment = (!b.is_empty()).then(|| b.finish(base.avg_len()));
        base.apply(self.generation, delta, &names, segment)
    }

    fn build(&self) -> StoreIndex {
        self.refresh(&StoreIndex::default())
    }
}

/// Every result, as (row, score), in order.
fn results(
    ix: &StoreIndex,
    query: &str,
    vector: Option<&[f32]>,
    filter: Option<&Filter>,
) -> Vec<(i64, f64)> {
    let terms: Vec<String> = super::terms(query).collect();
    ix.rank(&terms, vector, 1_000, 0.0, filter, true)
        .into_iter()
        .map(|(c, s)| (ix.chunk(c).0, s))
        .collect()
}

fn two_files(chunks: &[(u32, &str, Option<Vec<f32>>)]) -> StoreIndex {
    let mut fake = Fake::default();
    for (n, name) in ["a", "b"].iter().enumerate() {
        let mine: Vec<(&str, Option<Vec<f32>>)> = chunks
            .iter()
            .filter(|c| c.0 == n as u32)
            .map(|c| (c.1, c.2.clone()))
            .collect();
        fake.ingest(&format!("file-{name}"), &mine);
        fake.tag(&format!("file-{name}"), json!({"name": name}));
    }
    fake.build()
}

#[test]
fn fusion_ranks_vector_only_matches_and_keeps_the_better_score() {
    let ix = two_files(&[
        (0, "car tires", Some(vec![1.0, 0.0])),
        (0, "bananas", Some(vec![0.0, 1.0])),
        (0, "automobile dealer", Some(vec![0.6, 0.8])),
    ]);
    // Lexical: only chunk 2 matches the word; vectors favour chunk 0, then chunk 2.
    let fused = ix.rank(&["dealer".into()], Some(&[1.0, 0.0]), 10, 0.0, None, true);
    let order: Vec<u32> = fused.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        order,
        vec![2, 0],
        "in both rankings beats first in one; orthogonal and no word: not a hit"
    );
    let score = |c: u32| fused.iter().find(|(i, _)| *i == c).unwrap().1;
    assert!(
        (score(2) - 0.6).abs() < 0.01,
        "max(lexical, 0.6 cosine): {fused:?}"
    );
    assert!((score(0) - 1.0).abs() < 0.01);
    // The threshold and max_results apply to the fused ranking.
    let rank = |k, threshold| {
        ix.rank(
            &["dealer".into()],
            Some(&[1.0, 0.0]),
            k,
            threshold,
            None,
            true,
        )
    };
    assert_eq!(rank(1, 0.0).len(), 1);
    assert_eq!(rank(10, 0.9).len(), 1);
    // A query vector of another dimension leaves the search lexical.
    let other = ix.rank(
        &["dealer".into()],
        Some(&[1.0, 0.0, 0.0]),
        10,
        0.0,
        None,
        true,
    );
    assert_eq!(other.len(), 1);
}

#[test]
fn filters_exclude_files_from_both_rankings() {
    let ix = two_files(&[
        (0, "fox one", Some(vec![1.0, 0.0])),
        (1, "fox two", Some(vec![1.0, 0.1])),
    ]);
    let only_b = Filter::parse(
        "filters",
        &json!({"type": "eq", "key": "name", "value": "b"}),
    )
    .unwrap();
    for v in [None, Some(&[1.0f32, 0.0][..])] {
        let got = ix.rank(&["fox".into()], v, 10, 0.0, Some(&only_b), true);
        assert_eq!(got.len(), 1, "{v:?}");
        assert_eq!(ix.chunk(got[0].0).1.id, "file-b");
    }
}

fn words(seed: usize, n: usize) -> String {
    const VOCAB: [&str; 12] = [
        "river", "stone", "lamp", "orbit", "maple", "copper", "violet", "harbor", "signal",
        "meadow", "falcon", "ember",
    ];
    (0..n)
        .map(|i| VOCAB[(seed * 7 + i * i * 3 + i) % VOCAB.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn vector(seed: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..8)
        .map(|i| (((seed * 31 + i * 17) % 13) as f32) - 6.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.into_iter().map(|x| x / n).collect()
}

fn file_chunks(seed: usize, n: usize) -> Vec<(String, Option<Vec<f32>>)> {
    (0..n)
        .map(|i| {
            (
                words(seed * 10 + i, 5 + (seed + i) % 9),
                Some(vector(seed * 10 + i)),
            )
        })
        .collect()
}

fn ingest(fake: &mut Fake, id: &str, seed: usize, n: usize) {
    let chunks = file_chunks(seed, n);
    let refs: Vec<(&str, Option<Vec<f32>>)> = chunks
        .iter()
        .map(|(t, v)| (t.as_str(), v.clone()))
        .collect();
    fake.ingest(id, &refs);
}

/// The same hits as a fresh build (scores within the drift of per-segment normalisation).
fn assert_like_fresh(ix: &StoreIndex, fake: &Fake, exact: bool) {
    let fresh = fake.build();
    let tagged = Filter::parse(
        "filters",
        &json!({"type": "eq", "key": "tag", "value": "x"}),
    )
    .unwrap();
    for (q, v) in [
        ("river stone", None),
        ("ember", Some(vector(3))),
        ("falcon maple copper", Some(vector(12))),
    ] {
        for filter in [None, Some(&tagged)] {
            let got = results(ix, q, v.as_deref(), filter);
            let want = results(&fresh, q, v.as_deref(), filter);
            let sorted = |r: &[(i64, f64)]| {
                let mut s: Vec<i64> = r.iter().map(|x| x.0).collect();
                s.sort();
                s
            };
            assert_eq!(sorted(&got), sorted(&want), "{q} {filter:?}");
            for ((gs, g), (ws, w)) in got.iter().zip(&want) {
                if exact {
                    assert_eq!(gs, ws, "{q}");
                    assert!((g - w).abs() < 1e-4, "{q}: {g} {w}");
                }
            }
            let score = |r: &[(i64, f64)], seq: i64| r.iter().find(|x| x.0 == seq).unwrap().1;
            for (seq, _) in &want {
                assert!((score(&got, *seq) - score(&want, *seq)).abs() < 0.15, "{q}");
            }
        }
    }
}

#[test]
fn refreshes_and_merges_give_what_a_fresh_build_gives() {
    let mut fake = Fake::default();
    for f in 0..5 {
        ingest(&mut fake, &format!("f{f}"), f, 20);
    }
    let mut ix = fake.build();
    assert_eq!(ix.segments(), 1);
    // Appends, a removal, a re-ingestion, attributes: each refresh adds at most one segment
    // and reads only the changed files.
    ingest(&mut fake, "f5", 5, 10);
    ix = fake.refresh(&ix);
    assert_eq!((ix.segments(), ix.chunks()), (2, 110));
    assert_like_fresh(&ix, &fake, false);
    fake.remove("f1");
    ix = fake.refresh(&ix);
    assert_eq!(ix.segments(), 2, "a removal reads nothing");
    assert_like_fresh(&ix, &fake, false);
    ingest(&mut fake, "f2", 20, 7);
    fake.tag("f3", json!({"tag": "x"}));
    ix = fake.refresh(&ix);
    assert_eq!(ix.segments(), 3);
    assert_like_fresh(&ix, &fake, false);
    fake.tag("f3", json!({"tag": "y"}));
    fake.tag("f5", json!({"tag": "x"}));
    ix = fake.refresh(&ix);
    assert_eq!(ix.segments(), 3, "attributes read nothing");
    assert_like_fresh(&ix, &fake, false);
    assert_eq!(ix.generation, fake.generation);
    // One more segment makes a tier of four: merged into one, dead chunks dropped, equal to
    // a fresh build in order and score.
    ingest(&mut fake, "f6", 6, 3);
    ix = fake.refresh(&ix);
    let parts = ix.merge_plan().expect("four small segments merge");
    assert_eq!(parts.len(), 4);
    let merged = ix.merge(&parts);
    let ix = ix
        .with_merged(&parts, &Arc::new(merged))
        .expect("nothing changed meanwhile");
    assert_eq!(ix.segments(), 1);
    assert_eq!(ix.chunks(), 20 * 3 + 10 + 7 + 3);
    assert_eq!(ix.files.len(), 6, "dead slots dropped");
    assert!(ix.merge_plan().is_none());
    assert_like_fresh(&ix, &fake, true);
}

#[test]
fn a_merge_of_an_older_index_is_dropped_or_keeps_later_changes() {
    let mut fake = Fake::default();
    let mut ix = StoreIndex::default();
    for f in 0..4 {
        ingest(&mut fake, &format!("f{f}"), f, 5);
        ix = fake.refresh(&ix);
    }
    let older = Arc::new(ix);
    let parts = older.merge_plan().expect("a tier of four");
    // Meanwhile: f0 removed, f4 added (a fifth segment).
    fake.remove("f0");
    ingest(&mut fake, "f4", 4, 5);
    let newer = fake.refresh(&older);
    let merged = older.merge(&parts);
    let ix = newer
        .with_merged(&parts, &Arc::new(merged))
        .expect("the parts are still there");
    assert_eq!(ix.segments(), 2);
    assert_eq!(ix.generation, fake.generation);
    assert_like_fresh(&ix, &fake, false);
    // A full build replaced the parts: the merge has nowhere to go.
    let rebuilt = fake.build();
    assert!(rebuilt
        .with_merged(&parts, &Arc::new(older.merge(&parts)))
        .is_none());
}

#[test]
fn a_mostly_dead_segment_is_compacted() {
    let mut fake = Fake::default();
    for f in 0..10 {
        ingest(&mut fake, &format!("f{f}"), f, 10);
    }
    let mut ix = fake.build();
    assert!(ix.merge_plan().is_none());
    for f in 0..4 {
        fake.remove(&format!("f{f}"));
    }
    ix = fake.refresh(&ix);
    let parts = ix.merge_plan().expect("40% dead");
    assert_eq!(parts.len(), 1);
    let merged = ix.merge(&parts);
    let ix = ix.with_merged(&parts, &Arc::new(merged)).unwrap();
    assert_eq!((ix.chunks(), ix.files.len()), (60, 6));
    assert_like_fresh(&ix, &fake, true);
    // Everything removed: an empty index that finds nothing.
    for f in 4..10 {
        fake.remove(&format!("f{f}"));
    }
    let ix = fake.refresh(&ix);
    assert!(results(&ix, "river", None, None).is_empty());
    let parts = ix.merge_plan().expect("all dead");
    let ix = ix.with_merged(&parts, &Arc::new(ix.merge(&parts))).unwrap();
    assert_eq!((ix.chunks(), ix.segments(), ix.files.len()), (0, 0, 0));
}

#[test]
fn an_index_survives_writing_and_reading_and_damage_is_refused() {
    use super::codec::{Reader, Writer};
    let mut fake = Fake::default();
    let mut ix = StoreIndex::default();
    for f in 0..3 {
        ingest(&mut fake, &format!("f{f}"), f, 12);
        ix = fake.refresh(&ix);
    }
    fake.remove("f1");
    fake.tag("f2", json!({"tag": "x"}));
    let ix = fake.refresh(&ix);
    let mut w = Writer::new(Vec::new());
    ix.write(&mut w).unwrap();
    let bytes = w.into_inner();
    let back = StoreIndex::read(&mut Reader::new(&bytes[..], bytes.len() as u64)).unwrap();
    assert_eq!(
        (
            back.generation,
            back.segments(),
            back.chunks(),
            back.files.len()
        ),
        (ix.generation, ix.segments(), ix.chunks(), ix.files.len())
    );
    let tagged = Filter::parse(
        "filters",
        &json!({"type": "eq", "key": "tag", "value": "x"}),
    )
    .unwrap();
    for filter in [None, Some(&tagged)] {
        assert_eq!(
            results(&back, "river ember", Some(&vector(4)), filter),
            results(&ix, "river ember", Some(&vector(4)), filter)
        );
    }
    // A refresh from the read index is like one from the original.
    ingest(&mut fake, "f3", 3, 4);
    assert_like_fresh(&fake.refresh(&back), &fake, false);
    // Truncated, flipped or trailing bytes: an error, never a panic.
    let read = |b: &[u8]| StoreIndex::read(&mut Reader::new(b, b.len() as u64));
    assert!(read(&bytes[..bytes.len() / 2]).is_err());
    assert!(read(&[bytes.as_slice(), &[0]].concat()).is_err());
    for at in (0..bytes.len()).step_by(7) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0xff;
        // What reads at all searches without a panic.
        if let Ok(ix) = read(&damaged) {
            results(&ix, "river ember", Some(&vector(4)), None);
        }
    }
}
