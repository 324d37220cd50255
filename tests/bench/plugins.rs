//! Plugin host benchmark: instantiate + invoke of a small tool (the built-in calculator), a
//! cached load of a precompiled component, and 1,000 concurrent invocations (throughput and
//! peak memory). Run: `cargo bench -p assistants-tests --bench plugins`.

use assistants_tests::bench::{peak_rss_mib, percentile};
use std::time::Instant;

use assistants_core::plugins::bindings::CallContext;
use assistants_core::plugins::runtime::{PluginEngine, PoolSize};
use assistants_core::plugins::{PluginHost, PluginSettings};

fn ctx() -> CallContext {
    CallContext {
        tool_call_id: "call_bench".into(),
        run_id: None,
        thread_id: None,
        assistant_id: None,
        vector_store_ids: vec![],
        options_json: "{}".into(),
    }
}

fn main() {
    let rt = assistants_tests::bench::runtime();
    rt.block_on(async {
        let cache = tempfile::tempdir().unwrap();
        let settings = PluginSettings { cache_dir: Some(cache.path().to_path_buf()), instances: Some(1000), ..Default::default() };
        let host = PluginHost::load(&settings).await.unwrap();
        let calc = host.get("calculator").unwrap();
        let args = r#"{"expression": "1 + 1"}"#;

        // 1. Sequential instantiate + invoke.
        for _ in 0..1000 {
            host.invoke(&calc, ctx(), "calculate", args).await.unwrap();
        }
        let mut times = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let t = Instant::now();
            let out = host.invoke(&calc, ctx(), "calculate", args).await.unwrap();
            times.push(t.elapsed());
            assert_eq!(out.text, "2");
        }
        times.sort();
        println!(
            "instantiate + invoke (calculator, 20,000 sequential calls): median {:.1} µs, p99 {:.1} µs",
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6
        );

        // 2. Loading a component that is already compiled and cached on disk.
        let engine = PluginEngine::new(PoolSize { instances: 16, max_memory_mib: 256 }).unwrap();
        let wasm = assistants_core::plugins::BUILTIN_PLUGINS[0].1;
        let digest = "bench-calculator";
        // The cache authenticates what it loads (an HMAC over the compiled code), as a server's does.
        let artifacts = assistants_core::plugins::cache::ArtifactCache::new(
            cache.path().join("artifacts"),
            assistants_core::plugins::cache::CacheKey::load(Some(&cache.path().join("key"))),
        );
        engine.load_component(wasm, digest, Some(&artifacts)).unwrap();
        let mut loads = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            engine.load_component(wasm, digest, Some(&artifacts)).unwrap();
            loads.push(t.elapsed());
        }
        loads.sort();
        let t = Instant::now();
        engine.load_component(wasm, "bench-uncached", None).unwrap();
        let compile = t.elapsed();
        println!(
            "cached load of the precompiled calculator ({} KiB): median {:.0} µs, p99 {:.0} µs (compiling it instead: {:.0} ms)",
            wasm.len() / 1024,
            percentile(&loads, 0.5).as_secs_f64() * 1e6,
            percentile(&loads, 0.99).as_secs_f64() * 1e6,
            compile.as_secs_f64() * 1e3
        );

        // 3. 1,000 invocations in flight at once.
        let host = std::sync::Arc::new(host);
        let before = peak_rss_mib();
        for round in 0..3 {
            let t = Instant::now();
            let tasks: Vec<_> = (0..1000)
                .map(|i| {
                    let (host, calc) = (host.clone(), calc.clone());
                    tokio::spawn(async move {
                        let args = format!(r#"{{"expression": "{i} * 2"}}"#);
                        host.invoke(&calc, ctx(), "calculate", &args).await.unwrap().text
                    })
                })
                .collect();
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), (i * 2).to_string());
            }
            let elapsed = t.elapsed();
            println!(
                "1,000 concurrent invocations (round {}): {:.1} ms, {:.0} calls/s",
                round + 1,
                elapsed.as_secs_f64() * 1e3,
                1000.0 / elapsed.as_secs_f64()
            );
        }
        println!("peak RSS: {:.0} MiB before the concurrent rounds, {:.0} MiB after", before, peak_rss_mib());

        // 4. One sandboxed parse of a 10 MB PDF by the built-in documents parser.
        let parser = host.parser_for("pdf").expect("the built-in documents parser reads PDF");
        let line = "Quokkas are small marsupials that live on Rottnest Island and smile. ";
        let page: String = line.repeat(60);
        let mut pages = Vec::new();
        let mut size = 0;
        while size < 10 * 1024 * 1024 {
            size += page.len() + 200;
            pages.push(page.as_str());
        }
        let pdf = assistants_tests::fixtures::pdf(&pages);
        let mut times = Vec::new();
        let mut chars = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let text = host.parse(&parser, "big.pdf", &pdf).await.expect("the PDF parses");
            times.push(t.elapsed());
            chars = text.len();
        }
        times.sort();
        println!(
            "sandboxed parse of a {:.1} MB PDF ({} pages, {:.1} MB of text): median {:.2} s over 3 (limits: {} ms, {} MiB)",
            pdf.len() as f64 / 1e6,
            pages.len(),
            chars as f64 / 1e6,
            percentile(&times, 0.5).as_secs_f64(),
            parser.limits.timeout_ms,
            parser.limits.memory_mib
        );
    });
}
