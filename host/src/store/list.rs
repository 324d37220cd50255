//! Cursor pagination shared by every list endpoint.
//!
//! Objects are ordered by `seq`, their insertion order, which is also creation order with ties
//! broken stably. `after`/`before` are object ids; the cursor object itself is excluded. A page
//! is fetched with one extra row to learn `has_more` without a count query.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{bind, bind_all, Store, Val};
use crate::error::{ApiError, ApiResult};

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

impl Store {
    /// Lists rows of `table` matching `scope` (column = value, ANDed), one page.
    ///
    /// `columns` are selected as given; `map` turns each row into an item. A cursor id that does
    /// not name an object in the same scope is a 400 naming the parameter.
    pub(crate) async fn list_rows<T>(
        &self,
        table: &'static str,
        columns: &'static str,
        scope: &[(&'static str, Val)],
        params: &ListParams,
        map: impl Fn(&AnyRow) -> ApiResult<T>,
    ) -> ApiResult<Page<T>> {
        let mut where_sql = String::new();
        for (i, (col, _)) in scope.iter().enumerate() {
            if i > 0 {
                where_sql.push_str(" AND ");
            }
            where_sql.push_str(&format!("{col} = ${}", i + 1));
        }
        let after = self
            .cursor_seq(table, &where_sql, scope, "after", params.after.as_deref())
            .await?;
        let before = self
            .cursor_seq(table, &where_sql, scope, "before", params.before.as_deref())
            .await?;

        // In list order, `after` moves away from the head and `before` towards it. Translate both
        // into seq bounds; with only `before`, walk backwards from the cursor and flip the page.
        let (lo, hi) = match params.order {
            Order::Desc => (before, after),
            Order::Asc => (after, before),
        };
        let walk_backwards = params.before.is_some() && params.after.is_none();
        let sql_desc = (params.order == Order::Desc) != walk_backwards;
        // Only bounds that exist go into the SQL: sentinel bounds would make PostgreSQL's generic
        // plans estimate a handful of rows and sort a whole thread instead of walking the index.
        let mut args: Vec<Val> = scope.iter().map(|(_, v)| v.clone()).collect();
        let mut sql = format!("SELECT {columns} FROM {table} WHERE {where_sql}");
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
            .fetch_all(&self.read)
            .await?;
        let has_more = rows.len() as i64 > params.limit;
        let mut items = rows
            .iter()
            .take(params.limit as usize)
            .map(&map)
            .collect::<ApiResult<Vec<_>>>()?;
        if walk_backwards {
            items.reverse();
        }
        Ok(Page { items, has_more })
    }

    /// The `seq` of the cursor object, which must be in the same scope.
    async fn cursor_seq(
        &self,
        table: &str,
        where_sql: &str,
        scope: &[(&'static str, Val)],
        param: &'static str,
        id: Option<&str>,
    ) -> ApiResult<Option<i64>> {
        let Some(id) = id else { return Ok(None) };
        let sql = format!(
            "SELECT seq FROM {table} WHERE {where_sql} AND id = ${}",
            scope.len() + 1
        );
        let mut q = sqlx::query(&sql);
        for (_, v) in scope {
            q = bind(q, v);
        }
        match q.bind(id.to_string()).fetch_optional(&self.read).await? {
            Some(r) => Ok(Some(r.try_get::<i64, _>(0)?)),
            None => Err(ApiError::invalid(
                param,
                format!("Invalid '{param}': no object with id '{id}' in this list."),
            )),
        }
    }
}
