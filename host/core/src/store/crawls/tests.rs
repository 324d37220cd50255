//! The crawl store against a real (SQLite) database: claims, fencing, passes.

use super::*;
use crate::model::ids::FileId;
use crate::model::FileStatus;
use serde_json::json;

async fn store() -> (Store, tempfile::TempDir) {
    crate::store::test_store_with_vs().await
}

fn spec(interval: Option<u64>) -> CrawlSpec {
    CrawlSpec {
        root_urls: vec!["https://a.example/".into()],
        max_depth: 2,
        max_pages: 10,
        same_domain: true,
        include_patterns: vec![],
        exclude_patterns: vec![],
        recrawl_interval_seconds: interval,
        chunking_strategy: json!({"type": "static", "static":
            {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}),
    }
}

fn stored(url: &str) -> PageWrite {
    let file = FileObject {
        id: FileId::new(),
        object: "file".into(),
        bytes: 3,
        created_at: 0,
        expires_at: None,
        filename: "a.html".into(),
        purpose: "assistants".into(),
        status: FileStatus::Processed,
        status_details: None,
    };
    PageWrite {
        url: url.into(),
        depth: 0,
        status: PageStatus::Stored,
        reason: None,
        content_hash: Some("h".into()),
        title: None,
        crawled_at: Some(1),
        file: FileChange::Replace(NewPageFile {
            file,
            attributes: json!({"url": url}),
        }),
    }
}

/// A crawl of `vs_1` whose claimed first pass stored its root and, one link down, `/old`.
async fn first_pass_with_two_pages(store: &Store, interval: Option<u64>) -> CrawlJob {
    store
        .create_crawl("p", "vs_1", "vscrawl_1", &spec(interval))
        .await
        .unwrap();
    let job = store.claim_crawl(60).await.unwrap().unwrap();
    let mut write = CrawlWrite {
        pages_fetched: 2,
        pages: vec![
            stored("https://a.example/"),
            stored("https://a.example/old"),
        ],
        ..Default::default()
    };
    write.pages[1].depth = 1;
    store.record_pages(&job, &write).await.unwrap().unwrap();
    job
}

#[tokio::test]
async fn a_crawl_is_held_by_one_claim_and_a_cancel_fences_its_writes() {
    let (store, _dir) = store().await;
    store
        .create_crawl("p", "vs_1", "vscrawl_1", &spec(None))
        .await
        .unwrap();
    let job = store.claim_crawl(60).await.unwrap().expect("claimable");
    assert!(store.claim_crawl(60).await.unwrap().is_none(), "leased");
    let frontier = store.frontier(&job, 10).await.unwrap();
    assert_eq!(frontier.len(), 1);
    assert_eq!(frontier[0].url, "https://a.example/");
    let write = CrawlWrite {
        pages_fetched: 1,
        bytes_fetched: 3,
        pages: vec![stored("https://a.example/")],
        links: vec!["https://a.example/b".into(), "https://a.example/".into()],
        link_depth: 1,
    };
    assert_eq!(
        store.record_pages(&job, &write).await.unwrap(),
        Some(vec![])
    );
    let next = store.frontier(&job, 10).await.unwrap();
    assert_eq!(
        next.iter().map(|p| p.url.as_str()).collect::<Vec<_>>(),
        ["https://a.example/b"],
        "a page this pass has is not queued again"
    );
    let root = store
        .crawl_page(&job, "https://a.example/")
        .await
        .unwrap()
        .unwrap();
    assert!(root.file_attached, "{root:?}");
    let files = store.file_counts("vs_1", None).await.unwrap().0;
    assert_eq!(files.in_progress, 1, "attached for ingestion");

    assert!(store.cancel_crawl("p", "vs_1", "vscrawl_1").await.unwrap());
    let late = CrawlWrite {
        pages: vec![stored("https://a.example/b")],
        ..Default::default()
    };
    assert_eq!(
        store.record_pages(&job, &late).await.unwrap(),
        None,
        "fenced"
    );
    assert!(!store.renew_crawl(&job, 60).await.unwrap());
    let crawl = store
        .crawl("p", "vs_1", "vscrawl_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(crawl.status, CrawlStatus::Cancelled);
    let counts = store.page_counts(&crawl).await.unwrap();
    assert_eq!((counts.stored, counts.cancelled), (1, 1));
    assert!(!store.start_pass("p", "vs_1", "vscrawl_1").await.unwrap());
    assert!(
        !store.cancel_crawl("p", "vs_1", "vscrawl_1").await.unwrap(),
        "once"
    );
}

#[tokio::test]
async fn a_complete_pass_removes_what_it_no_longer_reaches_and_schedules_the_next() {
    let (store, _dir) = store().await;
    let job = first_pass_with_two_pages(&store, Some(3600)).await;
    assert_eq!(
        store.finish_pass(&job, true, None).await.unwrap(),
        Some(vec![])
    );
    let crawl = store
        .crawl("p", "vs_1", "vscrawl_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(crawl.status, CrawlStatus::Completed);
    let ended = crawl.pass_ended_at.unwrap();
    assert_eq!(crawl.next_pass_at, Some(ended + 3600));
    assert_eq!(store.start_due_passes().await.unwrap(), 0, "not due yet");

    // The second pass reaches the root only: the other page's file goes.
    assert!(store.start_pass("p", "vs_1", "vscrawl_1").await.unwrap());
    let job = store.claim_crawl(60).await.unwrap().unwrap();
    assert_eq!(job.crawl.pass, 2);
    let keep = PageWrite {
        status: PageStatus::Unchanged,
        file: FileChange::Keep,
        ..stored("https://a.example/")
    };
    let write = CrawlWrite {
        pages_fetched: 1,
        pages: vec![keep],
        ..Default::default()
    };
    store.record_pages(&job, &write).await.unwrap().unwrap();
    let deleted = store.finish_pass(&job, true, None).await.unwrap().unwrap();
    assert_eq!(deleted.len(), 1);
    let crawl = store
        .crawl("p", "vs_1", "vscrawl_1")
        .await
        .unwrap()
        .unwrap();
    let counts = store.page_counts(&crawl).await.unwrap();
    assert_eq!((counts.unchanged, counts.removed), (1, 1));
    assert_eq!(store.file_counts("vs_1", None).await.unwrap().0.total, 1);

    // A pass that ends with no page stored fails, and says why.
    sqlx::query("UPDATE crawls SET next_pass_at = 0 WHERE id = 'vscrawl_1'")
        .execute(store.write())
        .await
        .unwrap();
    assert_eq!(store.start_due_passes().await.unwrap(), 1, "due");
    let job = store.claim_crawl(60).await.unwrap().unwrap();
    assert_eq!(job.crawl.pass, 3);
    let gone = PageWrite {
        status: PageStatus::Removed,
        file: FileChange::Remove,
        ..stored("https://a.example/")
    };
    let write = CrawlWrite {
        pages: vec![gone],
        ..Default::default()
    };
    store.record_pages(&job, &write).await.unwrap().unwrap();
    let why = (
        "crawl_failed",
        "No page could be stored: https://a.example/: gone",
    );
    store
        .finish_pass(&job, true, Some(why))
        .await
        .unwrap()
        .unwrap();
    let crawl = store
        .crawl("p", "vs_1", "vscrawl_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(crawl.status, CrawlStatus::Failed);
    assert_eq!(crawl.last_error.unwrap()["code"], "crawl_failed");
    assert_eq!(store.file_counts("vs_1", None).await.unwrap().0.total, 0);
}

#[tokio::test]
async fn a_failure_that_may_pass_keeps_what_the_pass_did_not_reach() {
    let (store, _dir) = store().await;
    let job = first_pass_with_two_pages(&store, None).await;
    store.finish_pass(&job, true, None).await.unwrap().unwrap();

    // The root answers 503 on the next pass: it links nowhere, yet /old is not gone.
    assert!(store.start_pass("p", "vs_1", "vscrawl_1").await.unwrap());
    let job = store.claim_crawl(60).await.unwrap().unwrap();
    let unavailable = PageWrite {
        status: PageStatus::Failed,
        reason: Some("HTTP 503".into()),
        content_hash: None,
        file: FileChange::Keep,
        ..stored("https://a.example/")
    };
    let write = CrawlWrite {
        pages_fetched: 1,
        pages: vec![unavailable],
        ..Default::default()
    };
    store.record_pages(&job, &write).await.unwrap().unwrap();
    assert_eq!(
        store.finish_pass(&job, true, None).await.unwrap(),
        Some(vec![])
    );
    assert_eq!(
        store.file_counts("vs_1", None).await.unwrap().0.total,
        2,
        "both copies kept"
    );

    // Deleting the store stops its crawl: a write in flight lands nowhere, and no crawl can
    // be made for it any more.
    assert!(store.start_pass("p", "vs_1", "vscrawl_1").await.unwrap());
    let job = store.claim_crawl(60).await.unwrap().unwrap();
    let deleted = store
        .delete_vector_store("p", "vs_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.len(), 2, "the crawl's files go with the store");
    let late = CrawlWrite {
        pages: vec![stored("https://a.example/new")],
        ..Default::default()
    };
    assert_eq!(store.record_pages(&job, &late).await.unwrap(), None);
    let again = store
        .create_crawl("p", "vs_1", "vscrawl_2", &spec(None))
        .await;
    assert!(
        matches!(again, Err(StoreError::NotFound { .. })),
        "{again:?}"
    );
}
