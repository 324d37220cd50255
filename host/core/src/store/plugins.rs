//! The plugin catalog's rows: components uploaded through the API (kept by digest for runs
//! pinned to them) and which one is installed under each id. The bytes are in the object store
//! (`crate::catalog`).

use sqlx::Row;

use super::{Store, StoreResult};
use crate::model::ids::now;
use crate::plugins::catalog::CatalogEntry;

impl Store {
    /// The uploaded plugins installed now, by id.
    pub async fn catalog_entries(&self) -> StoreResult<Vec<CatalogEntry>> {
        let rows = sqlx::query(
            "SELECT plugin_id, digest, manifest FROM plugin_catalog ORDER BY plugin_id",
        )
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CatalogEntry {
                    id: r.try_get(0)?,
                    digest: r.try_get(1)?,
                    manifest: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The manifest an uploaded component was first uploaded with (what runs pinned to it
    /// load it with, as the local archive keeps it; migration 0010's comment says "last", as
    /// its first release did); `None` if no component with this digest was uploaded.
    pub async fn component_manifest(&self, digest: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT manifest FROM plugin_components WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(self.read())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Records an uploaded component (its bytes already stored; kept as first uploaded) and
    /// installs it under its id with this manifest.
    pub async fn install_plugin(&self, entry: &CatalogEntry, bytes: u64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let at = now();
        sqlx::query(
            "INSERT INTO plugin_components (digest, plugin_id, manifest, bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(entry.digest.clone())
        .bind(entry.id.clone())
        .bind(entry.manifest.clone())
        .bind(bytes as i64)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO plugin_catalog (plugin_id, digest, manifest, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (plugin_id) DO UPDATE SET digest = excluded.digest, \
             manifest = excluded.manifest, updated_at = excluded.updated_at",
        )
        .bind(entry.id.clone())
        .bind(entry.digest.clone())
        .bind(entry.manifest.clone())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uninstalls the uploaded plugin `id` (its components stay, for pinned runs); false if
    /// none was installed.
    pub async fn uninstall_plugin(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM plugin_catalog WHERE plugin_id = $1")
            .bind(id.to_string())
            .execute(self.write())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
