//! A pool lent to one query, whose caller is critical (`lowprio::critical`) until the query's
//! connection is back in its pool.
//!
//! Why: a query holds one of a few pooled connections (SQLite: 8 readers and the one writer)
//! from the moment it is sent until the caller has taken its rows, and the caller takes them
//! only when it is next polled. Relayed (demoted) work polled on the low-priority threads
//! could wait there for a core with the connection in hand while every other project's
//! queries queued for it: measured with those threads made idle-priority, the other projects'
//! reads and writes waited 130–190 ms at p99 (docs/benchmarks.md). Marked critical, such work
//! is polled at its caller's priority until the connection is returned, as with a turn at
//! SQLite's writer (`lanes`), and then yields once (`lowprio::back_to_low`), so that what it
//! does with the rows runs on the low-priority threads again.
//!
//! Every single query of the store goes through [`super::Store::read`] or
//! [`super::Store::write`], which hand out this executor; transactions carry the same guard in
//! [`super::Tx`]. Only what never runs as relayed work takes the pools directly: the
//! migrations and the group writer's own task (`group`).

use futures::{FutureExt, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyPool, Describe, Either, Error, Execute, Executor};

use crate::lowprio::Critical;

/// `pool`, for one query by a caller kept critical until it ends (or is dropped).
pub(crate) struct Held<'p> {
    pool: &'p AnyPool,
    critical: Critical,
}

impl<'p> Held<'p> {
    pub(crate) fn new(pool: &'p AnyPool) -> Held<'p> {
        Held {
            pool,
            critical: crate::lowprio::critical(),
        }
    }
}

impl std::fmt::Debug for Held<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("pool", self.pool).finish()
    }
}

/// Each method runs the pool's own, with the guard moved into what it returns: the guard goes
/// when the query's future or stream ends (then yields if relayed work should go back to
/// the low-priority threads), or when it is dropped, after its connection went back.
impl<'p> Executor<'p> for Held<'p> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> futures::stream::BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let Held { pool, critical } = self;
        let end = futures::stream::once(async move {
            drop(critical);
            crate::lowprio::back_to_low().await;
        })
        .filter_map(|()| futures::future::ready(None));
        pool.fetch_many(query).chain(end).boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> futures::future::BoxFuture<'e, Result<Option<AnyRow>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let Held { pool, critical } = self;
        holding(pool.fetch_optional(query), critical)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> futures::future::BoxFuture<'e, Result<AnyStatement<'q>, Error>>
    where
        'p: 'e,
    {
        let Held { pool, critical } = self;
        holding(pool.prepare_with(sql, parameters), critical)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> futures::future::BoxFuture<'e, Result<Describe<Any>, Error>>
    where
        'p: 'e,
    {
        let Held { pool, critical } = self;
        holding(pool.describe(sql), critical)
    }
}

/// `work`, with `critical` kept until it is ready or dropped.
fn holding<'e, T: Send + 'e>(
    work: futures::future::BoxFuture<'e, T>,
    critical: Critical,
) -> futures::future::BoxFuture<'e, T> {
    async move {
        let out = work.await;
        drop(critical);
        crate::lowprio::back_to_low().await;
        out
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use crate::lowprio::{critical_now, thread, LowPriority};

    #[tokio::test]
    async fn relayed_work_is_critical_from_a_query_s_start_until_its_connection_is_back() {
        let (store, _dir) = crate::store::test_store_with_vs().await;
        let low = LowPriority::new("test-held").unwrap();
        let seen = low
            .relay(async move {
                let mut seen = vec![critical_now()];
                let read = sqlx::query("SELECT 1").fetch_one(store.read());
                seen.push(critical_now());
                read.await.unwrap();
                seen.push(critical_now());
                assert_eq!(thread(), "test-held", "rows taken: back on the low threads");
                sqlx::query("SELECT 1")
                    .fetch_all(store.read())
                    .await
                    .unwrap();
                assert_eq!(thread(), "test-held", "a stream's end too");
                let write = sqlx::query("UPDATE vector_stores SET last_active_at = 1")
                    .execute(store.write());
                seen.push(critical_now());
                drop(write);
                seen.push(critical_now());
                let tx = store.begin().await.unwrap();
                seen.push(critical_now());
                tx.commit().await.unwrap();
                seen.push(critical_now());
                assert_eq!(thread(), "test-held", "committed: back on the low threads");
                seen
            })
            .await;
        assert_eq!(
            seen,
            [false, true, false, true, false, true, false],
            "before, during and after a read; a write dropped unsent; a transaction"
        );
    }
}
