//! Cursor pagination shared by every list endpoint.
//!
//! Objects are ordered by `seq`, their insertion order, which is also creation order with ties
//! broken stably. `after`/`before` are object ids; the cursor object itself is excluded. A page
//! is fetched with one extra row to learn `has_more` without a count query.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::error::{StoreError, StoreResult};
use super::{bind_all, Store, Val};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

/// Validated list parameters (the API layer parses and range-checks them).
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub limit: i64,
    pub order: Order,
    pub after: Option<String>,
    pub before: Option<String>,
}

/// One page of a list, in the requested order.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_more: self.has_more,
        }
    }
}

/// The list envelope every SDK expects: `first_id`/`last_id` null when empty, `has_more` always sent.
#[derive(Debug, Serialize)]
pub struct ListEnvelope<T: Serialize> {
    pub object: &'static str,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// What a list walks: one table, within a project and (optionally) one parent, narrowed by
/// filters. Cursors are resolved within the project and parent only, not the filters: an object
/// whose status changed between two pages still positions the next page.
pub(crate) struct ListScope<'a> {
    pub table: &'static str,
    pub project: &'a str,
    /// The parent column and id, e.g. `("thread_id", "thread_…")`.
    pub parent: Option<(&'static str, &'a str)>,
    /// Extra equalities that narrow the list (status, run id, purpose, batch).
    pub filters: Vec<(&'static str, Val)>,
    /// The `parent` key of this table's tombstones: the parent id where object ids repeat across
    /// parents (vector-store files), empty where ids are unique.
    pub tombstone_parent: &'a str,
}

impl Store {
    /// One page of rows in `scope`; `columns` are selected as given and `map` turns each row
    /// into an item. A cursor naming no object of the scope, live or recently deleted, is a 400.
    pub(crate) async fn list_rows<T>(
        &self,
        scope: &ListScope<'_>,
        columns: &'static str,
        params: &ListParams,
        map: impl Fn(&AnyRow) -> StoreResult<T>,
    ) -> StoreResult<Page<T>> {
        let after = self
            .cursor_seq(scope, "after", params.after.as_deref())
            .await?;
        let before = self
            .cursor_seq(scope, "before", params.before.as_deref())
            .await?;

        // In list order, `after` moves away from the head and `before` towards it. Translate both
        // into seq bounds; with only `before`, walk backwards from the cursor and flip the page.
        let (lo, hi) = match params.order {
            Order::Desc => (before, after),
            Order::Asc => (after, before),
        };
        let walk_backwards = params.before.is_some() && params.after.is_none();
        let sql_desc = (params.order == Order::Desc) != walk_backwards;
        let mut args = vec![Val::Text(scope.project.to_string())];
        let mut sql = format!(
            "SELECT {columns} FROM {} WHERE project_id = $1",
            scope.table
        );
        if let Some((col, id)) = scope.parent {
            args.push(Val::Text(id.to_string()));
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        }
        for (col, v) in &scope.filters {
            args.push(v.clone());
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        }
        // Only bounds that exist go into the SQL: sentinel bounds would make PostgreSQL's generic
        // plans estimate a handful of rows and sort a whole thread instead of walking the index.
        for (bound, op) in [(lo, ">"), (hi, "<")] {
            if let Some(seq) = bound {
                args.push(Val::Int(seq));
                sql.push_str(&format!(" AND seq {op} ${}", args.len()));
            }
        }
        args.push(Val::Int(params.limit + 1));
        sql.push_str(&format!(
            " ORDER BY seq {} LIMIT ${}",
            if sql_desc { "DESC" } else { "ASC" },
            args.len()
        ));
        let rows = bind_all(sqlx::query(&sql), &args)
            .fetch_all(self.read())
            .await?;
        let has_more = rows.len() as i64 > params.limit;
        let mut items = rows
            .iter()
            .take(params.limit as usize)
            .map(&map)
            .collect::<StoreResult<Vec<_>>>()?;
        if walk_backwards {
            items.reverse();
        }
        Ok(Page { items, has_more })
    }

    /// The `seq` of the cursor object: live in the scope, or deleted from it recently.
    async fn cursor_seq(
        &self,
        scope: &ListScope<'_>,
        param: &'static str,
        id: Option<&str>,
    ) -> StoreResult<Option<i64>> {
        let Some(id) = id else { return Ok(None) };
        let invalid = || StoreError::UnknownCursor {
            param,
            id: id.to_string(),
        };
        if !crate::model::ids::is_valid_id(id) {
            return Err(invalid());
        }
        let mut args = vec![
            Val::Text(scope.project.to_string()),
            Val::Text(id.to_string()),
        ];
        let mut sql = format!(
            "SELECT seq FROM {} WHERE project_id = $1 AND id = $2",
            scope.table
        );
        if let Some((col, parent)) = scope.parent {
            args.push(Val::Text(parent.to_string()));
            sql.push_str(&format!(" AND {col} = $3"));
        }
        if let Some(r) = bind_all(sqlx::query(&sql), &args)
            .fetch_optional(self.read())
            .await?
        {
            return Ok(Some(r.try_get::<i64, _>(0)?));
        }
        let dead = sqlx::query(
            "SELECT seq FROM tombstones WHERE tbl = $1 AND parent = $2 AND id = $3 AND project_id = $4",
        )
        .bind(scope.table)
        .bind(scope.tombstone_parent.to_string())
        .bind(id.to_string())
        .bind(scope.project.to_string())
        .fetch_optional(self.read())
        .await?;
        match dead {
            Some(r) => Ok(Some(r.try_get::<i64, _>(0)?)),
            None => Err(invalid()),
        }
    }

    /// Records where a deleted object stood, so cursors naming it keep working for a while.
    pub(crate) async fn tombstone_in(
        &self,
        tx: &mut super::Tx,
        table: &'static str,
        parent: &str,
        id: &str,
        project: &str,
        seq: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tombstones (tbl, parent, id, project_id, seq, deleted_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tbl, parent, id) DO UPDATE SET seq = excluded.seq, deleted_at = excluded.deleted_at",
        )
        .bind(table)
        .bind(parent.to_string())
        .bind(id.to_string())
        .bind(project.to_string())
        .bind(seq)
        .bind(crate::model::ids::now())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Forgets tombstones older than `max_age_secs`.
    pub async fn purge_tombstones(&self, max_age_secs: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM tombstones WHERE deleted_at < $1")
            .bind(crate::model::ids::now() - max_age_secs)
            .execute(self.write())
            .await?;
        Ok(done.rows_affected())
    }
}
