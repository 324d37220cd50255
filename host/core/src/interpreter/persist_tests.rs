//! Snapshots, templates and rollback against the stand-in module (its `s C` cell keeps a byte
//! in linear memory, `r` prints it, `wN NAME` writes a file under preopen N — 5 is /mnt/data
//! here — `t` traps, `q` quits), with two "nodes" sharing one object store.

use std::time::Duration;

use super::live::Origin;
use super::report::result_text;
use super::service::{Availability, CodeInterpreter, InterpreterSettings};
use super::session::CellStatus;
use super::snapshot::{self, Known, Tree};
use crate::blobs::Blobs;
use crate::plugins::cache::CacheKey;

/// A node with the stand-in installed under `root` and snapshots in `store`; its sessions'
/// directories are its own (`node`).
async fn node(
    root: &std::path::Path,
    store: &Blobs,
    node: &str,
) -> std::sync::Arc<CodeInterpreter> {
    let mut s = InterpreterSettings::for_data_dir(&root.join(node));
    s.dir = root.join("install");
    super::testing::install_stand_in(&s.dir);
    s.memory_mib = 4;
    s.cell_timeout = Duration::from_millis(500);
    s.template = Some("s T".into());
    s.disk_entries = 6;
    let key = CacheKey::load(Some(&root.join("key")));
    let ci = CodeInterpreter::start(s, key, Some(store.clone()));
    for _ in 0..400 {
        if ci.availability() == Availability::Ready {
            return ci;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not ready: {:?}", ci.availability());
}

async fn run(ci: &CodeInterpreter, thread: &str, code: &str) -> super::report::CellReport {
    ci.run_cell(thread, code, async {})
        .await
        .expect("the cell ran")
}

#[test]
fn an_image_is_rebuilt_from_its_difference_with_a_base() {
    // Incompressible bytes, so sizes reflect the pages kept.
    let mut x = 1u64;
    let base: Vec<u8> = (0..8 * snapshot::PAGE)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    let mut image = base.clone();
    image[10] ^= 1; // page 0
    image[3 * snapshot::PAGE + 7] ^= 1; // page 3
    image.extend_from_slice(&[0; snapshot::PAGE]); // grown: zeros cost nothing
    image.extend_from_slice(&[9; 17]); // and a partial page of data
    let encoded = snapshot::diff(&base, &image);
    let whole = snapshot::diff(&[], &image);
    assert!(
        encoded.len() < whole.len() / 2,
        "{} vs {}",
        encoded.len(),
        whole.len()
    );
    for (b, e) in [(&base[..], &encoded), (&[][..], &whole)] {
        let len = snapshot::image_len(e, 1 << 20).unwrap();
        assert_eq!(len, image.len());
        let mut memory = vec![0xAA; len];
        snapshot::apply(b, None, e, &mut memory).unwrap();
        assert_eq!(memory, image);
    }
    assert!(snapshot::image_len(&encoded, 100).is_err());
    assert!(snapshot::apply(&base, None, b"not deflate", &mut [0; 8]).is_err());
    // Onto a fresh instance's memory, only where the base differs from it is copied.
    let fresh: Vec<u8> = base
        .iter()
        .map(|b| if *b % 3 == 0 { *b } else { 0 })
        .collect();
    let runs = snapshot::changed(&fresh, &base);
    let mut memory = fresh.clone();
    memory.resize(image.len(), 0);
    snapshot::apply(&base, Some(&runs), &encoded, &mut memory).unwrap();
    assert_eq!(memory, image);
}

#[test]
fn a_directory_is_made_to_match_a_tree_without_following_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("data/sub")).unwrap();
    std::fs::write(root.join("data/sub/a.txt"), b"alpha").unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(root.join("data/b.txt"), b"beta").unwrap();
    let mut known = Known::new();
    let tree = snapshot::tree(root, &mut known).unwrap();
    assert_eq!(tree.files.len(), 2);
    assert_eq!(tree.dirs, vec!["data/sub".to_string()]);
    // Afterwards: a file changed, one added, a link out of the sandbox made.
    std::fs::write(root.join("data/sub/a.txt"), b"changed").unwrap();
    std::fs::write(root.join("tmp/new.txt"), b"new").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"host").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("data/link")).unwrap();
    let content = |f: &snapshot::FileEntry| -> anyhow::Result<Vec<u8>> {
        Ok(match f.path.as_str() {
            "data/sub/a.txt" => b"alpha".to_vec(),
            _ => b"beta".to_vec(),
        })
    };
    snapshot::reconcile(root, &tree, &mut known, content).unwrap();
    assert_eq!(
        std::fs::read(root.join("data/sub/a.txt")).unwrap(),
        b"alpha"
    );
    assert!(!root.join("tmp/new.txt").exists());
    assert!(std::fs::symlink_metadata(root.join("data/link")).is_err());
    assert!(outside.path().join("secret").exists());
    // A manifest cannot name a path out of the directory.
    let evil = Tree {
        files: vec![snapshot::FileEntry {
            path: "data/../../x".into(),
            sha256: snapshot::sha256(b"x"),
            size: 1,
        }],
        dirs: vec![],
    };
    assert!(snapshot::reconcile(root, &evil, &mut known, |_| Ok(b"x".to_vec())).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_fork_from_the_template_and_continue_on_another_node() {
    let root = tempfile::tempdir().unwrap();
    let store = Blobs::open(None, &root.path().join("store")).unwrap();
    let a = node(root.path(), &store, "a").await;
    // Forked from the template: the template's cell ran, this session did not run it.
    assert_eq!(run(&a, "thread_1", "r").await.outcome.stdout, "T");
    run(&a, "thread_1", "s Z").await;
    assert_eq!(
        run(&a, "thread_1", "w5 kept.txt").await.outcome.status,
        CellStatus::Ok
    );
    // Another node (or this one restarted) continues from the snapshot: memory and files.
    let b = node(root.path(), &store, "b").await;
    let report = run(&b, "thread_1", "r").await;
    assert_eq!(report.outcome.stdout, "Z");
    assert!(!report.lost);
    assert!(b.data_dir("thread_1").join("kept.txt").is_file());
    // The thread moved on over there; this node's live session is stale and is replaced.
    run(&b, "thread_1", "s Y").await;
    assert_eq!(run(&a, "thread_1", "r").await.outcome.stdout, "Y");
    // Threads are isolated.
    assert_eq!(run(&b, "thread_2", "r").await.outcome.stdout, "T");
    // A file a link names is found in the snapshot once the session is not live here.
    let c = node(root.path(), &store, "c").await;
    assert_eq!(
        c.stored_file("thread_1", "kept.txt", 1 << 20)
            .await
            .unwrap(),
        b"aaaa"
    );
    assert!(c.stored_file("thread_1", "../x", 1 << 20).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cell_rolls_back_to_the_last_good_one() {
    let root = tempfile::tempdir().unwrap();
    let store = Blobs::open(None, &root.path().join("store")).unwrap();
    let a = node(root.path(), &store, "a").await;
    run(&a, "thread_1", "s K").await;
    // A trap, then a runaway: both roll back, and the model is told so.
    for code in ["t", "l"] {
        let report = run(&a, "thread_1", code).await;
        assert!(
            matches!(
                report.outcome.status,
                CellStatus::Trapped(_) | CellStatus::Timeout
            ),
            "{report:?}"
        );
        assert_eq!(report.reset, Some(Origin::Restored));
        assert!(
            result_text(&report).contains("rolled back"),
            "{}",
            result_text(&report)
        );
        assert_eq!(run(&a, "thread_1", "r").await.outcome.stdout, "K");
    }
    // A first cell that fails has nothing to go back to: a new session.
    let report = run(&a, "thread_2", "t").await;
    assert_eq!(report.reset, Some(Origin::New));
    // Files past the quota (six entries here, with tmp/.matplotlib-like leftovers counted):
    // the cell is stopped or refused, and its files are gone with the rollback.
    run(&a, "thread_3", "w5 one").await;
    let mut over = None;
    for i in 0..8 {
        let r = run(&a, "thread_3", &format!("w5 f{i}")).await;
        if let CellStatus::Stopped(why) = &r.outcome.status {
            over = Some((i, why.clone(), r.reset));
            break;
        }
    }
    let (i, why, reset) = over.expect("the quota stopped a cell");
    assert!(why.contains("quota"), "{why}");
    assert_eq!(reset, Some(Origin::Restored));
    let data = a.data_dir("thread_3");
    assert!(data.join("one").is_file());
    assert!(!data.join(format!("f{i}")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitting_or_deleting_the_thread_forgets_its_session() {
    let root = tempfile::tempdir().unwrap();
    let store = Blobs::open(None, &root.path().join("store")).unwrap();
    let a = node(root.path(), &store, "a").await;
    run(&a, "thread_1", "s Q").await;
    assert_eq!(
        run(&a, "thread_1", "q").await.outcome.status,
        CellStatus::Quit
    );
    assert_eq!(run(&a, "thread_1", "r").await.outcome.stdout, "T");
    run(&a, "thread_1", "s D").await;
    a.forget("thread_1").await;
    assert!(store
        .list("code-interpreter/threads/thread_1/")
        .await
        .unwrap()
        .is_empty());
    assert!(!a.data_dir("thread_1").exists());
    assert_eq!(run(&a, "thread_1", "r").await.outcome.stdout, "T");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_add_layers_of_changes_and_fold_them_into_a_whole_one() {
    let root = tempfile::tempdir().unwrap();
    let store = Blobs::open(None, &root.path().join("store")).unwrap();
    let a = node(root.path(), &store, "a").await;
    let deltas = || async {
        store
            .list("code-interpreter/threads/thread_1/delta/")
            .await
            .unwrap()
            .len()
    };
    run(&a, "thread_1", "s A").await;
    assert_eq!(deltas().await, 0, "the first snapshot is a whole layer");
    run(&a, "thread_1", "s B").await;
    assert_eq!(deltas().await, 1, "the next one holds what changed");
    let mut most = 0;
    for i in 0..40u8 {
        let c = (b'a' + i % 26) as char;
        run(&a, "thread_1", &format!("s {c}")).await;
        most = most.max(deltas().await);
    }
    assert!((1..=16).contains(&most), "{most}");
    assert!(
        deltas().await < most,
        "layers were folded and the old ones removed"
    );
    // Whole layer and deltas together restore the last state elsewhere.
    let b = node(root.path(), &store, "b").await;
    assert_eq!(run(&b, "thread_1", "r").await.outcome.stdout, "n");
    assert_eq!(
        store
            .list("code-interpreter/threads/thread_1/memory/")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_snapshot_gives_a_new_session_not_a_stuck_thread() {
    let root = tempfile::tempdir().unwrap();
    let store = Blobs::open(None, &root.path().join("store")).unwrap();
    let a = node(root.path(), &store, "a").await;
    run(&a, "thread_1", "s U").await;
    store
        .put_bytes(
            "code-interpreter/threads/thread_1/head.json",
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
    // Another node has no live session to fall back on: it starts anew and goes on.
    let b = node(root.path(), &store, "b").await;
    assert_eq!(run(&b, "thread_1", "r").await.outcome.stdout, "T");
    run(&b, "thread_1", "s V").await;
    assert_eq!(run(&b, "thread_1", "r").await.outcome.stdout, "V");
    // A part of a snapshot gone missing is the same: the model is told the state was lost.
    for key in store
        .list("code-interpreter/threads/thread_1/memory/")
        .await
        .unwrap()
    {
        store.delete(&key).await.unwrap();
    }
    let c = node(root.path(), &store, "c").await;
    let report = run(&c, "thread_1", "r").await;
    assert_eq!(report.outcome.stdout, "T");
    assert!(report.lost);
    assert!(result_text(&report).contains("could not be restored"));
}
