//! The plugin catalog every node shares ([`plugins::catalog::Catalog`]): which uploaded
//! component is installed under each id, and every component uploaded, in the database; the
//! bytes in the object store (`plugins/{digest}.wasm`); a nudge on the event bus
//! ([`bus::PLUGINS_CHANNEL`]) so the other nodes sync at once instead of at their next tick.

use std::sync::Arc;

use crate::blobs::Blobs;
use crate::bus::{self, EventBus, StreamEvent};
use crate::plugins::catalog::{Catalog, CatalogEntry, MAX_COMPONENT_BYTES};
use crate::store::Store;

pub struct SharedCatalog {
    pub store: Store,
    pub blobs: Blobs,
    pub bus: Arc<dyn EventBus>,
}

/// Where an uploaded component's bytes live.
fn component_key(digest: &str) -> String {
    format!("plugins/{digest}.wasm")
}

#[async_trait::async_trait]
impl Catalog for SharedCatalog {
    async fn installed(&self) -> anyhow::Result<Vec<CatalogEntry>> {
        Ok(self.store.catalog_entries().await?)
    }

    async fn component(&self, digest: &str) -> anyhow::Result<Option<(Vec<u8>, String)>> {
        let Some(manifest) = self.store.component_manifest(digest).await? else {
            return Ok(None);
        };
        let bytes = self
            .blobs
            .get_bytes(&component_key(digest), MAX_COMPONENT_BYTES)
            .await?;
        Ok(Some((bytes.to_vec(), manifest)))
    }

    async fn install(&self, entry: &CatalogEntry, wasm: &[u8]) -> anyhow::Result<()> {
        // Bytes first: a row never names a component whose bytes are not stored.
        self.blobs
            .put_bytes(&component_key(&entry.digest), wasm.to_vec())
            .await?;
        self.store.install_plugin(entry, wasm.len() as u64).await?;
        Ok(())
    }

    async fn uninstall(&self, id: &str) -> anyhow::Result<bool> {
        Ok(self.store.uninstall_plugin(id).await?)
    }

    async fn announce(&self) {
        self.bus
            .publish(
                bus::PLUGINS_CHANNEL,
                StreamEvent::new("plugins.changed", &serde_json::json!({})),
            )
            .await;
    }
}
