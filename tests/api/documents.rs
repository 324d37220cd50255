//! Documents that need parsing (PDF, HTML, DOCX, PPTX, XLSX) are read by the built-in parser
//! component in the sandbox; hostile ones (a zip bomb, garbage) end as failed files and the
//! server goes on ingesting the next file.

use std::io::Write;

use assistants_tests::fixtures::pdf;
use assistants_tests::{json, TestApp};
use serde_json::Value;

/// A zip archive of (name, contents).
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
    }
    out.into_inner()
}

fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<w:p><w:r><w:t xml:space=\"preserve\">{p}</w:t></w:r></w:p>"))
        .collect();
    let xml = format!(
        "<?xml version=\"1.0\"?><w:document xmlns:w=\"x\"><w:body>{body}</w:body></w:document>"
    );
    zip(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("word/document.xml", xml.as_bytes()),
    ])
}

/// Ingests `bytes` as `name` into a fresh store; returns (store, file, vector-store file).
async fn ingest(app: &TestApp, name: &str, bytes: Vec<u8>) -> (String, String, Value) {
    let file = app.upload_ok(name, bytes).await;
    let vs = app
        .create("/vector_stores", json!({"name": name, "file_ids": [file]}))
        .await;
    let vf = app.wait_vs_file(&vs, &file).await;
    (vs, file, vf)
}

async fn text_of(app: &TestApp, vs: &str, file: &str) -> String {
    let (_, content) = app
        .get(&format!("/vector_stores/{vs}/files/{file}/content"))
        .await;
    content["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("")
}

#[tokio::test]
async fn office_documents_and_html_become_text_in_the_sandbox() {
    let app = TestApp::spawn().await;

    let (vs, file, vf) = ingest(
        &app,
        "report.docx",
        docx(&["Quarterly report", "Revenue grew &amp; costs fell."]),
    )
    .await;
    assert_eq!(vf["status"], "completed", "{vf}");
    assert_eq!(
        text_of(&app, &vs, &file).await,
        "Quarterly report\n\nRevenue grew & costs fell."
    );
    let (_, hits) = app
        .post(
            &format!("/vector_stores/{vs}/search"),
            json!({"query": "revenue"}),
        )
        .await;
    assert_eq!(hits["data"][0]["file_id"], file.as_str());

    let slide = |t: &str| {
        format!("<p:sld><p:txBody><a:p><a:r><a:t>{t}</a:t></a:r></a:p></p:txBody></p:sld>")
    };
    let (s2, s10) = (slide("Second slide"), slide("Tenth slide"));
    let (s1,) = (slide("First slide"),);
    let pptx = zip(&[
        ("ppt/slides/slide10.xml", s10.as_bytes()),
        ("ppt/slides/slide1.xml", s1.as_bytes()),
        ("ppt/slides/slide2.xml", s2.as_bytes()),
    ]);
    let (vs, file, vf) = ingest(&app, "deck.pptx", pptx).await;
    assert_eq!(vf["status"], "completed", "{vf}");
    assert_eq!(
        text_of(&app, &vs, &file).await,
        "Slide 1\n\nFirst slide\n\nSlide 2\n\nSecond slide\n\nSlide 3\n\nTenth slide",
        "slides in numeric order"
    );

    let xlsx = zip(&[(
        "xl/sharedStrings.xml",
        b"<sst><si><t>Region</t></si><si><t>North &lt;east&gt;</t></si></sst>".as_slice(),
    )]);
    let (vs, file, vf) = ingest(&app, "sheet.xlsx", xlsx).await;
    assert_eq!(vf["status"], "completed", "{vf}");
    assert_eq!(text_of(&app, &vs, &file).await, "Region\n\nNorth <east>");

    let html = "<html><head><title>Care guide</title><script>alert('x')</script></head>\
                <body><h1>Ferns</h1><p>Water twice a week.</p><p>Tom &amp;日本語 &#0;</p></body></html>";
    let (vs, file, vf) = ingest(&app, "guide.html", html.as_bytes().to_vec()).await;
    assert_eq!(vf["status"], "completed", "{vf}");
    assert_eq!(
        text_of(&app, &vs, &file).await,
        "Care guide\n\nFerns\n\nWater twice a week.\n\nTom &日本語 \u{fffd}",
        "entities next to multi-byte text decode; NUL becomes U+FFFD"
    );

    let (vs, file, vf) = ingest(
        &app,
        "paper.pdf",
        pdf(&["Quokkas smile", "Second page here"]),
    )
    .await;
    assert_eq!(vf["status"], "completed", "{vf}");
    let text = text_of(&app, &vs, &file).await;
    assert!(
        text.contains("Quokkas smile") && text.contains("Second page here"),
        "{text:?}"
    );
    assert!(
        text.find("Quokkas").unwrap() < text.find("Second").unwrap(),
        "pages in order"
    );

    // The parser is listed as a plugin, with its kind.
    let (_, plugins) = app.get("/plugins").await;
    let documents = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "documents")
        .expect("the built-in parser is listed")
        .clone();
    assert_eq!(documents["kind"], "parser");
}

#[tokio::test]
async fn hostile_documents_fail_alone() {
    let app = TestApp::spawn().await;
    // 300 MiB of zeros inflate from a few hundred KiB: refused at the inflation bound.
    let mut zeros = Vec::new();
    {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(&mut zeros));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("word/document.xml", opts).unwrap();
        let block = vec![b' '; 1024 * 1024];
        for _ in 0..300 {
            w.write_all(&block).unwrap();
        }
        w.finish().unwrap();
    }
    assert!(zeros.len() < 2 * 1024 * 1024, "{} bytes", zeros.len());
    let (_, _, vf) = ingest(&app, "bomb.docx", zeros).await;
    assert_eq!(vf["status"], "failed", "{vf}");
    assert_eq!(vf["last_error"]["code"], "invalid_file");
    assert!(
        vf["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("inflates"),
        "{vf}"
    );

    let (_, _, vf) = ingest(
        &app,
        "garbage.pptx",
        b"PK\x03\x04 not really a zip".to_vec(),
    )
    .await;
    assert_eq!(vf["status"], "failed", "{vf}");
    assert_eq!(vf["last_error"]["code"], "invalid_file");

    let (_, _, vf) = ingest(&app, "empty.docx", docx(&[])).await;
    assert_eq!(vf["status"], "failed", "{vf}");

    // A PDF that is only a header, and a real one cut in half.
    let (_, _, vf) = ingest(&app, "paper.pdf", b"%PDF-1.7 ...".to_vec()).await;
    assert_eq!(vf["status"], "failed", "{vf}");
    assert_eq!(vf["last_error"]["code"], "invalid_file", "{vf}");
    let whole = pdf(&["Some text"]);
    let (_, _, vf) = ingest(&app, "cut.pdf", whole[..whole.len() / 2].to_vec()).await;
    assert_eq!(vf["status"], "failed", "{vf}");
    // Still no parser for some formats: a clear unsupported_file, not garbage text.
    let (_, _, vf) = ingest(&app, "old.doc", b"\xd0\xcf\x11\xe0".to_vec()).await;
    assert_eq!(vf["last_error"]["code"], "unsupported_file", "{vf}");

    // The server is unaffected: the next document is read as usual.
    let (vs, file, vf) = ingest(&app, "fine.docx", docx(&["Still working."])).await;
    assert_eq!(vf["status"], "completed", "{vf}");
    assert_eq!(text_of(&app, &vs, &file).await, "Still working.");
}
