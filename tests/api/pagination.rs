use assistants_tests::{assert_error, json, TestApp};
use serde_json::Value;

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn cursors_walk_every_object_once_in_both_orders() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(
            app.create(
                "/assistants",
                json!({"model": "m", "name": format!("a{i}")}),
            )
            .await,
        );
    }
    // Newest first by default, ties on created_at broken by insertion order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (s, page) = app.get(&format!("/assistants?limit=10{q}")).await;
        assert_eq!(s, 200, "{page}");
        let page_ids = ids(&page);
        if page_ids.is_empty() {
            // SDKs that ignore has_more stop on an empty page: it must be a 200, not an error.
            assert_eq!(page["has_more"], false);
            assert_eq!(page["first_id"], Value::Null);
            break;
        }
        assert_eq!(page["first_id"], page_ids[0].as_str());
        assert_eq!(page["last_id"], page_ids.last().unwrap().as_str());
        assert_eq!(page["has_more"], seen.len() + page_ids.len() < 25);
        seen.extend(page_ids.clone());
        after = page_ids.last().cloned();
    }
    let mut expected = created.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let (_, asc) = app.get("/assistants?order=asc&limit=5").await;
    assert_eq!(ids(&asc), created[..5].to_vec());
    let (_, next) = app
        .get(&format!(
            "/assistants?order=asc&limit=5&after={}",
            created[4]
        ))
        .await;
    assert_eq!(ids(&next), created[5..10].to_vec());
    // `before` returns the objects just ahead of the cursor, still in list order.
    let (_, before) = app
        .get(&format!(
            "/assistants?order=asc&limit=3&before={}",
            created[10]
        ))
        .await;
    assert_eq!(ids(&before), created[7..10].to_vec());
    assert_eq!(before["has_more"], true);
    let (_, before_desc) = app
        .get(&format!("/assistants?limit=2&before={}", created[10]))
        .await;
    assert_eq!(
        ids(&before_desc),
        vec![created[12].clone(), created[11].clone()]
    );
}

#[tokio::test]
async fn bad_list_parameters_are_400s() {
    let app = TestApp::spawn().await;
    for (q, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("order=up", "order"),
        ("after=asst_nope", "after"),
        ("before=asst_nope", "before"),
    ] {
        let (s, e) = app.get(&format!("/assistants?{q}")).await;
        assert_eq!(s, 400, "{q}: {e}");
        assert_eq!(assert_error(&e)["param"], param);
    }
}

#[tokio::test]
async fn deleting_while_iterating_keeps_the_cursor_valid() {
    // The SDK cleanup loop: list a page, delete every item, ask for the page after the last
    // (now deleted) id, until a page comes back empty.
    let app = TestApp::spawn().await;
    for i in 0..12 {
        app.create(
            "/assistants",
            json!({"model": "m", "name": format!("a{i}")}),
        )
        .await;
    }
    let mut after: Option<String> = None;
    let mut deleted = 0;
    loop {
        let q = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (s, page) = app.get(&format!("/assistants?limit=5{q}")).await;
        assert_eq!(s, 200, "{page}");
        let page_ids = ids(&page);
        if page_ids.is_empty() {
            break;
        }
        for id in &page_ids {
            assert_eq!(app.delete(&format!("/assistants/{id}")).await.0, 200);
            deleted += 1;
        }
        after = page_ids.last().cloned();
    }
    assert_eq!(deleted, 12);
}

#[tokio::test]
async fn a_cursor_outside_the_status_filter_still_positions_the_page() {
    let app = TestApp::spawn().await;
    let good = app.upload_ok("good.txt", "some words").await;
    let bad = app.upload_ok("bad.pdf", b"%PDF".to_vec()).await;
    let later = app.upload_ok("later.txt", "more words").await;
    let vs = app
        .create("/vector_stores", json!({"file_ids": [good, bad, later]}))
        .await;
    app.wait_vs(&vs).await;
    let (s, page) = app
        .get(&format!(
            "/vector_stores/{vs}/files?order=asc&filter=completed&after={bad}"
        ))
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(ids(&page), vec![later]);
}
