//! The `assistants` binary in a process of its own, for benchmarks that measure the server's
//! RSS and CPU apart from the load generator's (`soak`, `scale`).

use std::path::PathBuf;
use std::time::Duration;

/// A server started from the built binary on a fresh data directory; killed when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    dir: tempfile::TempDir,
    /// e.g. `http://127.0.0.1:41234/v1`
    pub base: String,
    /// The server root without `/v1` (for `/metrics`, `/healthz`).
    pub root: String,
}

impl ServerProcess {
    /// `ASSISTANTS_BIN`, else the target directory's binary of this build's profile.
    pub fn binary() -> PathBuf {
        if let Ok(bin) = std::env::var("ASSISTANTS_BIN") {
            return bin.into();
        }
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        std::path::Path::new(&target)
            .join(profile)
            .join("assistants")
    }

    /// Starts `assistants serve` with `config` (TOML; the `listen` line is added here) and
    /// waits until `/healthz` answers.
    pub async fn start(config: &str) -> ServerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, format!("listen = \"127.0.0.1:{port}\"\n{config}")).unwrap();
        let bin = Self::binary();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = std::process::Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--plugin-cache-key-file")
            .arg(dir.path().join("cache.key"))
            .env("ASSISTANTS_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} (build it first: cargo build [--release] --bin assistants): {e}",
                    bin.display()
                )
            });
        let server = ServerProcess {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}/v1"),
            root: format!("http://127.0.0.1:{port}"),
        };
        let health = format!("{}/healthz", server.root);
        for _ in 0..600 {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.print_log_tail();
        panic!("the server did not become healthy");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The embedded database, for a benchmark that sets up keys directly.
    pub fn database_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.path().join("data/assistants.db").display()
        )
    }

    pub fn print_log_tail(&self) {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<_> = log.lines().collect();
        for l in &lines[lines.len().saturating_sub(20)..] {
            println!("  server: {l}");
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
