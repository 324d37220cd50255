//! What the integration tests may do to a database that the server never does: create and drop
//! whole databases, and install faults (a trigger that refuses writes) to prove a request
//! leaves nothing behind. Compiled only for tests (and with the `test-support` feature, which
//! the tests crate enables); the server binary's own surface has no raw SQL.

/// Runs one statement on a fresh connection (no pool, no migrations).
pub async fn admin_execute(url: &str, sql: &str) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    conn.execute(sql).await?;
    conn.close().await?;
    Ok(())
}

/// The one integer a query returns (e.g. a `COUNT(*)`), on a fresh connection.
pub async fn admin_scalar(url: &str, sql: &str) -> anyhow::Result<i64> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let row = sqlx::query(sql).fetch_one(&mut conn).await?;
    let n: i64 = row.try_get(0)?;
    conn.close().await?;
    Ok(n)
}
