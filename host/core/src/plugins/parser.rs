//! The parser world: which formats a parser component reads, and parsing a document in the
//! sandbox for ingestion.

use super::*;

impl PluginHost {
    /// Asks a parser component which formats it reads (once, at load).
    pub(super) async fn formats(&self, plugin: &Plugin) -> anyhow::Result<Vec<String>> {
        if plugin.manifest.kind != Kind::Parser {
            return Ok(Vec::new());
        }
        let mut store = self.store(plugin);
        let call = plugin.pre.formats(&mut store);
        let formats = tokio::time::timeout(Duration::from_millis(plugin.limits.timeout_ms), call)
            .await
            .map_err(|_| anyhow::anyhow!("formats() did not return in time"))??;
        let formats: Vec<String> = formats
            .into_iter()
            .map(|f| f.trim_start_matches('.').to_ascii_lowercase())
            .filter(|f| !f.is_empty())
            .collect();
        anyhow::ensure!(!formats.is_empty(), "formats() returned no formats");
        Ok(formats)
    }

    /// The parser plugin that reads files with this extension, if any (operator plugins win
    /// over built-in ones).
    pub fn parser_for(&self, extension: &str) -> Option<Arc<Plugin>> {
        let ext = extension.to_ascii_lowercase();
        let mut found: Vec<Arc<Plugin>> = self
            .snapshot()
            .values()
            .filter(|p| p.manifest.kind == Kind::Parser && p.formats.contains(&ext))
            .cloned()
            .collect();
        found.sort_by_key(|p| (p.builtin, p.manifest.id.clone()));
        found.into_iter().next()
    }

    /// Parses one document in a fresh sandbox. Every failure — the parser's own verdict, a
    /// trap, the time or memory limit — comes back as (`last_error.code`, message) for the
    /// vector-store file; the host is never affected.
    pub async fn parse(
        &self,
        plugin: &Plugin,
        filename: &str,
        content: &[u8],
    ) -> Result<String, (&'static str, String)> {
        if plugin.manifest.kind != Kind::Parser {
            return Err((
                "server_error",
                format!("{} is not a parser", plugin.manifest.id),
            ));
        }
        let limits = plugin.limits;
        let slot = self
            .world(plugin.manifest.kind)
            .slot_for(plugin, None, Duration::from_millis(limits.timeout_ms))
            .await
            .map_err(|e| ("server_error", e))?;
        let mut store = self.store(plugin);
        let timeout = Duration::from_millis(limits.timeout_ms) + runtime::TICK * 5;
        let (pre, name, content) = (plugin.pre.clone(), filename.to_string(), content.to_vec());
        let (store, outcome) = self
            .guests
            .run(async move {
                // The slot goes with the store: both are free only once the call has ended.
                let _slot = slot;
                let call = pre.parse(&mut store, &name, &content);
                let outcome = tokio::time::timeout(timeout, call).await;
                (store, outcome)
            })
            .await;
        store.data().flush_stdio();
        let label = call_outcome(&outcome, store.data().limits.memory_stop);
        crate::obs::metrics::metrics().plugin_call(&plugin.id, "parser", label);
        let result = match outcome {
            Err(_) => Err((
                "invalid_file",
                format!(
                    "The document could not be parsed within {} ms.",
                    limits.timeout_ms
                ),
            )),
            Ok(Err(trap)) => Err((
                "invalid_file",
                format!(
                    "The document could not be parsed: {}.",
                    describe_trap(&trap, &limits, store.data().limits.memory_stop)
                        .replace("the tool", "the parser")
                ),
            )),
            Ok(Ok(Err(ParseError::Invalid(m)))) => Err((
                "invalid_file",
                format!("The document could not be read: {m}"),
            )),
            Ok(Ok(Err(ParseError::Unsupported(m)))) => Err(("unsupported_file", m)),
            // The host keeps the text and tokenises it: bound it, and keep it storable.
            Ok(Ok(Ok(text))) if text.len() > MAX_PARSED_TEXT => Err((
                "invalid_file",
                format!(
                    "The document holds more than {} MiB of text, the most a file may have.",
                    MAX_PARSED_TEXT / (1024 * 1024)
                ),
            )),
            Ok(Ok(Ok(text))) if text.contains('\0') => Ok(text.replace('\0', "\u{fffd}")),
            Ok(Ok(Ok(text))) => Ok(text),
        };
        if let Err((code, message)) = &result {
            tracing::info!(plugin = %plugin.id, filename, code, message, "document not parsed");
        }
        result
    }
}
