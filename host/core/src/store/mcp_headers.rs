//! The sealed headers of an assistant's remote MCP servers, by assistant and server label
//! (never part of the assistant's document, which clients see).

use sqlx::Row;

use super::{Store, StoreResult, Tx};

/// One server's sealed headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHeaders {
    pub label: String,
    pub url: String,
    pub sealed: String,
}

impl Store {
    /// The sealed headers kept for `owner`'s servers.
    pub async fn mcp_headers(&self, owner: &str) -> StoreResult<Vec<SealedHeaders>> {
        let rows = sqlx::query(HEADERS_OF)
            .bind(owner.to_string())
            .fetch_all(self.read())
            .await?;
        headers_of(&rows)
    }

    /// [`Store::mcp_headers`] inside a caller's transaction (that holds their owner).
    pub async fn mcp_headers_in(
        &self,
        tx: &mut Tx,
        owner: &str,
    ) -> StoreResult<Vec<SealedHeaders>> {
        let rows = sqlx::query(HEADERS_OF)
            .bind(owner.to_string())
            .fetch_all(&mut **tx)
            .await?;
        headers_of(&rows)
    }

    /// Replaces what is kept for `owner` with `headers` (none: deletes them), within `tx`
    /// (the one that writes the assistant owning them).
    pub async fn set_mcp_headers_in(
        &self,
        tx: &mut Tx,
        owner: &str,
        headers: &[SealedHeaders],
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM mcp_headers WHERE owner_id = $1")
            .bind(owner.to_string())
            .execute(&mut **tx)
            .await?;
        for h in headers {
            sqlx::query(
                "INSERT INTO mcp_headers (owner_id, server_label, server_url, sealed) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(owner.to_string())
            .bind(h.label.clone())
            .bind(h.url.clone())
            .bind(h.sealed.clone())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

const HEADERS_OF: &str = "SELECT server_label, server_url, sealed FROM mcp_headers \
                          WHERE owner_id = $1 ORDER BY server_label";

fn headers_of(rows: &[sqlx::any::AnyRow]) -> StoreResult<Vec<SealedHeaders>> {
    rows.iter()
        .map(|r| {
            Ok(SealedHeaders {
                label: r.try_get(0)?,
                url: r.try_get(1)?,
                sealed: r.try_get(2)?,
            })
        })
        .collect()
}
