//! Projects and API keys. Keys are stored as SHA-256 hashes; the key itself is shown once.

use sqlx::Row;

use super::StoreResult;

use super::Store;
use crate::model::ids::{new_id, now, IdKind};

/// The project every request lands in while no API key exists.
pub const DEFAULT_PROJECT: &str = "proj_default";

/// What a key may do besides using its project's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Its project's objects only.
    Project,
    /// Also manage the server: upload and remove plugins (`PUT`/`DELETE /v1/plugins/{id}`).
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Project => "project",
            Scope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Scope {
        // Anything but 'admin' grants no more than a project key.
        if s == "admin" {
            Scope::Admin
        } else {
            Scope::Project
        }
    }
}

/// What an active key opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAccess {
    pub project: String,
    pub scope: Scope,
}

/// A key as listed by `assistants keys list` (never the secret).
#[derive(Debug)]
pub struct KeyInfo {
    pub id: String,
    pub project: String,
    pub scope: Scope,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub(crate) fn hash_key(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

impl Store {
    /// Whether any key was ever created; until then the server runs open in the default project.
    /// Revoked keys count: revoking the last key must lock the server, not open it.
    pub async fn any_key_configured(&self) -> StoreResult<bool> {
        let row = sqlx::query("SELECT COUNT(*) FROM api_keys")
            .fetch_one(self.read())
            .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// The project of an active key, if the key is valid.
    pub async fn project_for_key(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self.key_access(key).await?.map(|a| a.project))
    }

    /// The project and scope of an active key, if the key is valid.
    pub async fn key_access(&self, key: &str) -> StoreResult<Option<KeyAccess>> {
        let row = sqlx::query(
            "SELECT project_id, scope FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_key(key))
        .fetch_optional(self.read())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(KeyAccess {
            project: row.try_get(0)?,
            scope: Scope::parse(&row.try_get::<String, _>(1)?),
        }))
    }

    /// The name of the project with this id, if it has one (open mode's project has none
    /// until a key names it).
    pub async fn project_name(&self, id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT name FROM projects WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.read())
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    /// Creates a project key in `project_name` (creating the project if needed); returns
    /// (key id, key).
    pub async fn create_key(&self, project_name: &str) -> anyhow::Result<(String, String)> {
        self.create_key_with(project_name, Scope::Project).await
    }

    /// [`Store::create_key`] with a scope.
    pub async fn create_key_with(
        &self,
        project_name: &str,
        scope: Scope,
    ) -> anyhow::Result<(String, String)> {
        let mut tx = self.begin().await?;
        let existing = sqlx::query("SELECT id FROM projects WHERE name = $1")
            .bind(project_name.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let project_id = match existing {
            Some(r) => r.try_get::<String, _>(0)?,
            None => {
                let id = new_id(IdKind::Project);
                sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(id.clone())
                    .bind(project_name.to_string())
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                id
            }
        };
        let created = insert_key(&mut tx, &project_id, scope).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Creates a key for the project open mode uses (named `default`), so what was created
    /// before keys existed stays visible to the key's holder; returns (key id, key).
    pub async fn create_default_project_key(&self) -> anyhow::Result<(String, String)> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO projects (id, name, created_at) VALUES ($1, 'default', $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(DEFAULT_PROJECT)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let created = insert_key(&mut tx, DEFAULT_PROJECT, Scope::Project).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn list_keys(&self) -> anyhow::Result<Vec<KeyInfo>> {
        let rows = sqlx::query(
            "SELECT k.id, p.name, k.scope, k.prefix, k.created_at, k.revoked_at \
             FROM api_keys k JOIN projects p ON p.id = k.project_id ORDER BY k.created_at, k.id",
        )
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyInfo {
                    id: r.try_get(0)?,
                    project: r.try_get(1)?,
                    scope: Scope::parse(&r.try_get::<String, _>(2)?),
                    prefix: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    revoked_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Revokes a key; false if no active key has that id.
    pub async fn revoke_key(&self, id: &str) -> anyhow::Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now())
                .bind(id.to_string())
                .execute(self.write())
                .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// A new random key in `project_id`, stored as its hash; returns (key id, key).
async fn insert_key(
    tx: &mut super::Tx,
    project_id: &str,
    scope: Scope,
) -> anyhow::Result<(String, String)> {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    let secret: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let key = format!("sk-asst-{secret}");
    let id = new_id(IdKind::ApiKey);
    sqlx::query(
        "INSERT INTO api_keys (id, project_id, key_hash, prefix, created_at, scope) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.clone())
    .bind(project_id.to_string())
    .bind(hash_key(&key))
    .bind(key[..12].to_string())
    .bind(now())
    .bind(scope.as_str())
    .execute(&mut **tx)
    .await?;
    Ok((id, key))
}
