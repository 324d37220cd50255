//! Crawls of web sites into vector stores (`/vector_stores/{id}/crawls`), against a local test
//! site: depth, a redirect, robots.txt, an ungranted host, a page that changes and one that
//! disappears between passes, the files' attributes and citations of crawled pages.

use std::sync::atomic::Ordering;
use std::time::Duration;

use assistants_core::plugins::manifest::Grant;
use assistants_tests::fake_llm::{FakeLlm, Reply};
use assistants_tests::site::TestSite;
use assistants_tests::{assert_error, json, TestApp};
use serde_json::Value;

/// Grants the crawler the test site (and nothing else), without a politeness delay.
fn crawling(site: &TestSite) -> impl FnOnce(&mut assistants_host::config::Settings) {
    let host = site.host.clone();
    move |s| {
        s.crawl.delay_ms = 0;
        s.plugins.grants.insert(
            "crawler".into(),
            Grant {
                hosts: vec![host],
                allow_private_addresses: true,
                ..Default::default()
            },
        );
    }
}

/// Polls a crawl until it is no longer in progress (its pass ended, its pages ingested).
async fn wait_crawl(app: &TestApp, vs: &str, crawl: &str) -> Value {
    for _ in 0..1200 {
        let (s, v) = app
            .get(&format!("/vector_stores/{vs}/crawls/{crawl}"))
            .await;
        assert_eq!(s, 200, "{v}");
        if v["status"] != "in_progress" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("crawl {crawl} stayed in_progress");
}

/// Starts another pass of a crawl (which must be accepted); the crawl as it was answered.
async fn recrawl(app: &TestApp, vs: &str, crawl: &str) -> Value {
    let (s, v) = app
        .post(
            &format!("/vector_stores/{vs}/crawls/{crawl}/recrawl"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Every page the crawl reached, by URL path.
async fn pages(app: &TestApp, vs: &str, crawl: &str, site: &TestSite) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/vector_stores/{vs}/crawls/{crawl}/pages?limit=3");
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", urlencode(a)));
        }
        let (s, v) = app.get(&path).await;
        assert_eq!(s, 200, "{v}");
        for p in v["data"].as_array().unwrap() {
            let url = p["url"].as_str().unwrap();
            let key = url
                .strip_prefix(&site.url)
                .map(str::to_string)
                .unwrap_or_else(|| url.to_string());
            out.push((key, p.clone()));
        }
        if v["has_more"] != true {
            return out;
        }
        after = v["last_id"].as_str().map(str::to_string);
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn page<'a>(pages: &'a [(String, Value)], path: &str) -> &'a Value {
    &pages
        .iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no page {path} in {pages:#?}"))
        .1
}

#[tokio::test]
async fn a_site_is_crawled_into_a_store_and_recrawled_with_its_changes() {
    let site = TestSite::start().await;
    let app = TestApp::spawn_with(crawling(&site)).await;
    let vs = app.create("/vector_stores", json!({"name": "docs"})).await;
    let (s, crawl) = app
        .post(
            &format!("/vector_stores/{vs}/crawls"),
            json!({"root_urls": [format!("{}/docs/#top", site.url)], "max_depth": 2,
                   "same_domain": false}),
        )
        .await;
    assert_eq!(s, 200, "{crawl}");
    assert_eq!(crawl["object"], "vector_store.crawl");
    assert!(crawl["id"].as_str().unwrap().starts_with("vscrawl_"));
    assert_eq!(
        crawl["root_urls"],
        json!([format!("{}/docs/", site.url)]),
        "fragment dropped"
    );
    assert_eq!(crawl["status"], "in_progress");
    let id = crawl["id"].as_str().unwrap().to_string();
    let done = wait_crawl(&app, &vs, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["pass"], 1);
    assert_eq!(done["next_crawl_at"], Value::Null, "no re-crawl interval");

    let first = pages(&app, &vs, &id, &site).await;
    let status = |pages: &[(String, Value)], path: &str| page(pages, path)["status"].clone();
    for p in [
        "/docs/",
        "/docs/guide.html",
        "/docs/deep.html",
        "/docs/moved.html",
    ] {
        assert_eq!(status(&first, p), "stored", "{p}: {first:#?}");
    }
    assert_eq!(page(&first, "/docs/deep.html")["depth"], 2);
    assert!(
        first.iter().all(|(p, _)| p != "/docs/deeper.html"),
        "depth 3 is beyond max_depth"
    );
    assert_eq!(site.hits("/docs/deeper.html"), 0);
    // The redirect: the old URL points at the page, which holds the file.
    assert_eq!(status(&first, "/old"), "redirected");
    assert_eq!(page(&first, "/docs/moved.html")["depth"], 1);
    // robots.txt keeps /private/ out, unfetched.
    assert_eq!(status(&first, "/private/secret.html"), "skipped");
    assert!(page(&first, "/private/secret.html")["reason"]
        .as_str()
        .unwrap()
        .contains("robots.txt"));
    assert_eq!(site.hits("/private/secret.html"), 0);
    assert_eq!(site.hits("/robots.txt"), 1, "read once per pass");
    // The other server's host is not granted: skipped, never asked.
    let external = format!("{}/external.html", site.other_url);
    assert_eq!(status(&first, &external), "skipped");
    assert!(page(&first, &external)["reason"]
        .as_str()
        .unwrap()
        .contains("not granted"));
    assert_eq!(site.hits("/external.html"), 0);
    assert_eq!(done["page_counts"]["stored"], 6, "{done}");
    assert_eq!(done["file_counts"]["completed"], 6, "{done}");

    // Each stored page is a file of the store with its URL, title, time and depth, parsed
    // from HTML like an upload.
    let guide = page(&first, "/docs/guide.html");
    let guide_file = guide["file_id"].as_str().unwrap().to_string();
    let (_, vf) = app
        .get(&format!("/vector_stores/{vs}/files/{guide_file}"))
        .await;
    assert_eq!(vf["status"], "completed", "{vf}");
    let attrs = &vf["attributes"];
    assert_eq!(attrs["url"], format!("{}/docs/guide.html", site.url));
    assert_eq!(attrs["title"], "Feeding guide");
    assert_eq!(attrs["depth"], 1);
    assert!(attrs["crawled_at"].as_i64().unwrap() > 0);
    let (_, file) = app.get(&format!("/files/{guide_file}")).await;
    assert_eq!(file["filename"], "127.0.0.1_docs_guide.html");
    let (_, content) = app
        .get(&format!("/vector_stores/{vs}/files/{guide_file}/content"))
        .await;
    let text = content["data"][0]["text"].as_str().unwrap();
    assert!(text.contains("saltbush at dusk"), "{text}");
    assert!(!text.contains("<p>"), "parsed, not markup: {text}");
    let (_, found) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "saltbush", "filters": {"type": "eq", "key": "depth", "value": 1}}),
        )
        .await;
    assert_eq!(found["data"][0]["file_id"], guide_file.as_str(), "{found}");
    assert_eq!(found["data"][0]["attributes"]["url"], attrs["url"]);

    // The site changes: one page is edited, one disappears, robots.txt now disallows a third.
    // A re-crawl replaces the first, removes the second and third, and keeps the rest.
    let changing_before = page(&first, "/docs/changing.html")["file_id"]
        .as_str()
        .unwrap()
        .to_string();
    let vanishing_before = page(&first, "/docs/vanishing.html")["file_id"]
        .as_str()
        .unwrap()
        .to_string();
    site.state.version.store(1, Ordering::SeqCst);
    site.state.vanished.store(true, Ordering::SeqCst);
    site.state.deep_disallowed.store(true, Ordering::SeqCst);
    let again = recrawl(&app, &vs, &id).await;
    assert_eq!(again["pass"], 2);
    let done = wait_crawl(&app, &vs, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let second = pages(&app, &vs, &id, &site).await;
    assert_eq!(status(&second, "/docs/changing.html"), "stored");
    let changing_after = page(&second, "/docs/changing.html")["file_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        changing_after, changing_before,
        "a new file holds the new text"
    );
    assert_eq!(status(&second, "/docs/vanishing.html"), "removed");
    assert_eq!(
        page(&second, "/docs/vanishing.html")["file_id"],
        Value::Null
    );
    for p in ["/docs/", "/docs/guide.html", "/docs/moved.html"] {
        assert_eq!(status(&second, p), "unchanged", "{p}");
    }
    // The site's robots.txt now disallows a stored page: its copy goes.
    assert_eq!(status(&second, "/docs/deep.html"), "skipped");
    assert_eq!(page(&second, "/docs/deep.html")["file_id"], Value::Null);
    let deep_before = page(&first, "/docs/deep.html")["file_id"].as_str().unwrap();
    assert_eq!(
        page(&second, "/docs/guide.html")["file_id"],
        guide_file.as_str()
    );
    for gone in [
        changing_before.as_str(),
        vanishing_before.as_str(),
        deep_before,
    ] {
        let (s, _) = app.get(&format!("/files/{gone}")).await;
        assert_eq!(s, 404, "{gone} was deleted with its page's old copy");
    }
    let (_, found) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "census edition quokkas"}),
        )
        .await;
    let texts: Vec<&str> = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["content"][0]["text"].as_str())
        .collect();
    assert!(texts.iter().any(|t| t.contains("edition 1")), "{found}");
    assert!(!texts.iter().any(|t| t.contains("edition 0")), "{found}");
    let (_, store) = app.get(&format!("/vector_stores/{vs}")).await;
    assert_eq!(store["file_counts"]["total"], 4, "{store}");

    // Nothing to cancel once a pass ended with no re-crawl due.
    let (s, v) = app
        .post(
            &format!("/vector_stores/{vs}/crawls/{id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // Deleting the store deletes the crawl and the files it made.
    let (s, _) = app.delete(&format!("/vector_stores/{vs}")).await;
    assert_eq!(s, 200);
    let (s, _) = app.get(&format!("/files/{guide_file}")).await;
    assert_eq!(s, 404, "the crawl's files go with its store");
}

#[tokio::test]
async fn crawls_keep_to_their_bounds_and_schedule_and_cancel_recrawls() {
    let site = TestSite::start().await;
    let app = TestApp::spawn_with(crawling(&site)).await;
    let vs = app.create("/vector_stores", json!({})).await;
    // Two pages at most, within the root's host, excluding the guide.
    let id = app
        .create(
            &format!("/vector_stores/{vs}/crawls"),
            json!({"root_urls": [format!("{}/docs/", site.url)], "max_pages": 2,
                   "exclude_patterns": ["*/guide.html"], "recrawl_interval_seconds": 3600}),
        )
        .await;
    let done = wait_crawl(&app, &vs, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["page_counts"]["stored"], 2, "{done}");
    let all = pages(&app, &vs, &id, &site).await;
    assert!(all.iter().all(|(p, _)| p != "/docs/guide.html"), "excluded");
    assert!(
        all.iter().all(|(p, _)| !p.contains("external")),
        "another host is not followed by default: {all:#?}"
    );
    let bounded: Vec<&Value> = all
        .iter()
        .map(|(_, v)| v)
        .filter(|v| {
            v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("max_pages"))
        })
        .collect();
    assert!(!bounded.is_empty(), "{all:#?}");
    let ended = done["pass_ended_at"].as_i64().unwrap();
    assert_eq!(done["next_crawl_at"].as_i64(), Some(ended + 3600));

    // A pass while the site is down keeps what is stored: its robots.txt cannot be read, so
    // nothing is crawled and nothing is taken for gone.
    site.state.down.store(true, Ordering::SeqCst);
    recrawl(&app, &vs, &id).await;
    let outage = wait_crawl(&app, &vs, &id).await;
    assert_eq!(outage["pass"], 2, "{outage}");
    assert_eq!(outage["status"], "completed", "{outage}");
    assert_eq!(outage["page_counts"]["skipped"], 1, "{outage}");
    assert_eq!(outage["file_counts"]["completed"], 2, "{outage}");
    let root = pages(&app, &vs, &id, &site).await;
    assert!(page(&root, "/docs/")["reason"]
        .as_str()
        .unwrap()
        .contains("robots.txt could not be read"));
    site.state.down.store(false, Ordering::SeqCst);

    // Cancelling stops the re-crawls.
    let (s, cancelled) = app
        .post(
            &format!("/vector_stores/{vs}/crawls/{id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["next_crawl_at"], Value::Null);
    let (s, v) = app
        .post(
            &format!("/vector_stores/{vs}/crawls/{id}/recrawl"),
            json!({}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // The pages stored stay; the crawl is listed.
    let (_, store) = app.get(&format!("/vector_stores/{vs}")).await;
    assert_eq!(store["file_counts"]["completed"], 2, "{store}");
    let (_, list) = app.get(&format!("/vector_stores/{vs}/crawls")).await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert_eq!(list["first_id"], id.as_str());
}

#[tokio::test]
async fn crawl_requests_are_checked_before_anything_is_recorded() {
    let site = TestSite::start().await;
    let app = TestApp::spawn_with(crawling(&site)).await;
    let vs = app.create("/vector_stores", json!({})).await;
    let path = format!("/vector_stores/{vs}/crawls");
    let root = format!("{}/docs/", site.url);
    for (body, param) in [
        (json!({}), "root_urls"),
        (json!({"root_urls": []}), "root_urls"),
        (json!({"root_urls": ["file:///etc/passwd"]}), "root_urls[0]"),
        (
            json!({"root_urls": [root, "https://example.com/"]}),
            "root_urls[1]",
        ),
        (json!({"root_urls": [root], "max_depth": 99}), "max_depth"),
        (json!({"root_urls": [root], "max_pages": 0}), "max_pages"),
        (
            json!({"root_urls": [root], "recrawl_interval_seconds": 1}),
            "recrawl_interval_seconds",
        ),
        (
            json!({"root_urls": [root], "include_patterns": [""]}),
            "include_patterns[0]",
        ),
        (
            json!({"root_urls": [root], "chunking_strategy": {"type": "static"}}),
            "chunking_strategy.static",
        ),
        (json!({"root_urls": [root], "depth": 1}), "depth"),
    ] {
        let (s, v) = app.post(&path, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(assert_error(&v)["param"], param, "{body}: {v}");
    }
    let (s, v) = app.get(&format!("{path}/vscrawl_nope")).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = app.get(&format!("{path}/vsfb_wrongkind")).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = app
        .post(
            "/vector_stores/vs_missing/crawls",
            json!({"root_urls": [root]}),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (_, list) = app.get(&path).await;
    assert_eq!(list["data"], json!([]), "nothing was recorded");

    // A server whose operator granted the crawler nothing cannot crawl.
    let closed = TestApp::spawn().await;
    let vs = closed.create("/vector_stores", json!({})).await;
    let (s, v) = closed
        .post(
            &format!("/vector_stores/{vs}/crawls"),
            json!({"root_urls": [root]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        assert_error(&v)["message"]
            .as_str()
            .unwrap()
            .contains("[plugins.grants.crawler]"),
        "{v}"
    );
}

/// An answer that uses a crawled page cites it as the file and as its URL.
#[tokio::test]
async fn answers_cite_crawled_pages_by_file_and_url() {
    let site = TestSite::start().await;
    let llm = FakeLlm::start().await;
    let grant = crawling(&site);
    let app = TestApp::spawn_with_llm(&llm, grant).await;
    let vs = app.create("/vector_stores", json!({})).await;
    let id = app
        .create(
            &format!("/vector_stores/{vs}/crawls"),
            json!({"root_urls": [format!("{}/docs/guide.html", site.url)], "max_depth": 0}),
        )
        .await;
    assert_eq!(wait_crawl(&app, &vs, &id).await["status"], "completed");
    let asst = app
        .create(
            "/assistants",
            json!({"model": "m", "tools": [{"type": "file_search"}],
                   "tool_resources": {"file_search": {"vector_store_ids": [vs]}}}),
        )
        .await;
    let thread = app
        .create(
            "/threads",
            json!({"messages": [{"role": "user", "content": "What do quokkas eat?"}]}),
        )
        .await;
    llm.push(Reply::tool(
        "file_search",
        r#"{"query":"quokkas saltbush"}"#,
    ));
    let label = "【0:0†127.0.0.1_docs_guide.html】";
    llm.push(Reply::text(&format!("Saltbush, at dusk{label}.")));
    let (_, run) = app
        .post(
            &format!("/threads/{thread}/runs"),
            json!({"assistant_id": asst}),
        )
        .await;
    let run = app.wait_run(&thread, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run}");
    let seen = llm.last_message_text();
    assert!(seen.contains("saltbush at dusk"), "{seen}");
    let (_, msgs) = app.get(&format!("/threads/{thread}/messages")).await;
    let text = &msgs["data"][0]["content"][0]["text"];
    let anns = text["annotations"].as_array().unwrap();
    assert_eq!(anns.len(), 2, "{text}");
    assert_eq!(anns[0]["type"], "file_citation");
    assert_eq!(anns[1]["type"], "url_citation");
    assert_eq!(anns[1]["url"], format!("{}/docs/guide.html", site.url));
    assert_eq!(anns[1]["title"], "Feeding guide");
    assert_eq!(anns[0]["start_index"], anns[1]["start_index"]);
    assert_eq!(anns[0]["text"], label);
    // The run step's results carry the page's attributes.
    let (_, steps) = app
        .get(&format!(
            "/threads/{thread}/runs/{}/steps?order=asc",
            run["id"].as_str().unwrap()
        ))
        .await;
    let result = &steps["data"][0]["step_details"]["tool_calls"][0]["file_search"]["results"][0];
    assert_eq!(
        result["attributes"]["url"],
        format!("{}/docs/guide.html", site.url),
        "{result}"
    );
}
