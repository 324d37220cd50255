//! Generic storage for "document" objects: a row with a few indexed columns and a JSON `body`.
//!
//! Assistants, threads, messages, files, uploads and vector stores are read and written whole,
//! so storing their wire JSON in one column keeps the schema small and lets fields be added
//! without migrations. Columns exist only for what queries filter or order on.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use super::{bind, ListParams, Page, Store, Val};
use crate::error::{ApiError, ApiResult};

/// An object stored as a JSON document in its own table.
pub trait Doc: Serialize + DeserializeOwned + Send + Sync + Unpin {
    /// The table; it has `seq`, `id`, `project_id`, `created_at` and `body` columns.
    const TABLE: &'static str;
    /// The noun in "No {NAME} found with id '…'."
    const NAME: &'static str;
    fn id(&self) -> &str;
    fn created_at(&self) -> i64;
}

impl Store {
    /// Inserts a document with extra indexed columns (e.g. `thread_id`).
    ///
    /// One statement in autocommit rather than BEGIN/INSERT/COMMIT: it is just as atomic and
    /// costs one round trip to the single SQLite writer instead of three.
    pub async fn insert<D: Doc>(
        &self,
        project: &str,
        doc: &D,
        extra: &[(&'static str, Val)],
    ) -> ApiResult<()> {
        let sql = insert_sql::<D>(extra);
        let q = bind_insert(&sql, project, doc, extra)?;
        q.execute(&self.write).await?;
        Ok(())
    }

    pub(crate) async fn insert_in<D: Doc>(
        &self,
        tx: &mut super::Tx,
        project: &str,
        doc: &D,
        extra: &[(&'static str, Val)],
    ) -> ApiResult<()> {
        let sql = insert_sql::<D>(extra);
        bind_insert(&sql, project, doc, extra)?
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Fetches a document of the project, or a 404 in the wire wording.
    pub async fn get<D: Doc>(&self, project: &str, id: &str) -> ApiResult<D> {
        self.find::<D>(project, id)
            .await?
            .ok_or_else(|| ApiError::not_found(D::NAME, id))
    }

    /// Fetches a document of the project if it exists.
    pub async fn find<D: Doc>(&self, project: &str, id: &str) -> ApiResult<Option<D>> {
        let sql = format!(
            "SELECT body FROM {} WHERE id = $1 AND project_id = $2",
            D::TABLE
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(project.to_string())
            .fetch_optional(&self.read)
            .await?;
        match row {
            Some(r) => Ok(Some(serde_json::from_str(&r.try_get::<String, _>(0)?)?)),
            None => Ok(None),
        }
    }

    /// Read-modify-write of one document under the write lock, so concurrent updates never
    /// lose each other's fields. `f` may reject the change; nothing is written then.
    pub async fn update<D: Doc>(
        &self,
        project: &str,
        id: &str,
        f: impl FnOnce(&mut D) -> ApiResult<()>,
    ) -> ApiResult<D> {
        let mut tx = self.begin().await?;
        let doc = self.update_in(&mut tx, project, id, f).await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// [`Store::update`] inside a caller's transaction.
    pub async fn update_in<D: Doc>(
        &self,
        tx: &mut super::Tx,
        project: &str,
        id: &str,
        f: impl FnOnce(&mut D) -> ApiResult<()>,
    ) -> ApiResult<D> {
        let sql = format!(
            "SELECT body FROM {} WHERE id = $1 AND project_id = $2{}",
            D::TABLE,
            self.lock_rows()
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(project.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| ApiError::not_found(D::NAME, id))?;
        let mut doc: D = serde_json::from_str(&row.try_get::<String, _>(0)?)?;
        f(&mut doc)?;
        let sql = format!("UPDATE {} SET body = $1 WHERE id = $2", D::TABLE);
        sqlx::query(&sql)
            .bind(serde_json::to_string(&doc)?)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(doc)
    }

    /// Deletes a document of the project; 404 if there was none.
    pub async fn delete<D: Doc>(&self, project: &str, id: &str) -> ApiResult<()> {
        let sql = format!("DELETE FROM {} WHERE id = $1 AND project_id = $2", D::TABLE);
        let done = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(project.to_string())
            .execute(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found(D::NAME, id));
        }
        Ok(())
    }

    /// One page of the project's documents, optionally narrowed by extra column equalities.
    pub async fn list<D: Doc>(
        &self,
        project: &str,
        filters: Vec<(&'static str, Val)>,
        params: &ListParams,
    ) -> ApiResult<Page<D>> {
        let mut scope = vec![("project_id", Val::Text(project.to_string()))];
        scope.extend(filters);
        self.list_rows(D::TABLE, "body", &scope, params, |r| {
            Ok(serde_json::from_str(&r.try_get::<String, _>(0)?)?)
        })
        .await
    }
}

fn insert_sql<D: Doc>(extra: &[(&'static str, Val)]) -> String {
    let mut cols = String::from("id, project_id, created_at, body");
    let mut vals = String::from("$1, $2, $3, $4");
    for (i, (c, _)) in extra.iter().enumerate() {
        cols.push_str(", ");
        cols.push_str(c);
        vals.push_str(&format!(", ${}", i + 5));
    }
    format!("INSERT INTO {} ({cols}) VALUES ({vals})", D::TABLE)
}

fn bind_insert<'q, D: Doc>(
    sql: &'q str,
    project: &str,
    doc: &D,
    extra: &[(&'static str, Val)],
) -> ApiResult<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>> {
    let mut q = sqlx::query(sql)
        .bind(doc.id().to_string())
        .bind(project.to_string())
        .bind(doc.created_at())
        .bind(serde_json::to_string(doc)?);
    for (_, v) in extra {
        q = bind(q, v);
    }
    Ok(q)
}
