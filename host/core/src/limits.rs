//! What one project may hold and how much of a node's work it may take: storage quotas
//! (bytes, files, chunks) and concurrency caps (runs, ingestion).
//!
//! Quotas are checked against usage counted from the database at the moment of the check (no
//! counters that could drift from the rows). Concurrent requests of one project may each pass
//! a check the other then pushes over, so a quota can be exceeded by what those requests add;
//! it is never exceeded by a request that started once the quota was reached.
//!
//! Concurrency caps are enforced where the work is scheduled: runs by each worker node's pool
//! (`assistants_worker::pool`, per node), ingestion by the claim query (across the cluster).
//! Both also order waiting work fairly between projects, so one project's backlog never
//! starves another's; the caps stop one project from holding every slot while it is slow.

use std::fmt;

/// A project's limits. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectLimits {
    /// Bytes of files plus parts of pending uploads.
    pub max_storage_bytes: Option<u64>,
    /// Files (uploaded or completed uploads).
    pub max_files: Option<u64>,
    /// Chunks across the project's vector stores.
    pub max_chunks: Option<u64>,
    /// Runs of one project a worker node drives at once (the rest wait, queued).
    pub max_runs: Option<usize>,
    /// Files of one project being ingested at once across all nodes (the rest wait).
    pub max_ingest: Option<usize>,
}

/// What a project holds, or what a request would add to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub files: u64,
    pub chunks: u64,
}

/// The quota a request would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    Bytes { limit: u64 },
    Files { limit: u64 },
    Chunks { limit: u64 },
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, limit) = match self {
            QuotaExceeded::Bytes { limit } => ("bytes of storage", limit),
            QuotaExceeded::Files { limit } => ("files", limit),
            QuotaExceeded::Chunks { limit } => ("vector-store chunks", limit),
        };
        write!(
            f,
            "You exceeded your project's quota of {limit} {what}. Delete some, or ask the \
             server's operator to raise the quota."
        )
    }
}

impl std::error::Error for QuotaExceeded {}

impl ProjectLimits {
    /// Whether any storage quota is set (when none is, usage need not be counted).
    pub fn limits_storage(&self) -> bool {
        self.max_storage_bytes.is_some() || self.max_files.is_some() || self.max_chunks.is_some()
    }

    /// Whether `usage` plus `adding` stays within every quota. A request that adds nothing of
    /// a kind is not refused for that kind, so a project over a quota can still delete.
    pub fn check(&self, usage: Usage, adding: Usage) -> Result<(), QuotaExceeded> {
        let over = |limit: Option<u64>, have: u64, add: u64| {
            limit.filter(|&l| add > 0 && have.saturating_add(add) > l)
        };
        if let Some(limit) = over(self.max_files, usage.files, adding.files) {
            return Err(QuotaExceeded::Files { limit });
        }
        if let Some(limit) = over(self.max_storage_bytes, usage.bytes, adding.bytes) {
            return Err(QuotaExceeded::Bytes { limit });
        }
        if let Some(limit) = over(self.max_chunks, usage.chunks, adding.chunks) {
            return Err(QuotaExceeded::Chunks { limit });
        }
        Ok(())
    }

    /// Bytes the project may still store, if its storage is limited.
    pub fn bytes_left(&self, usage: Usage) -> Option<u64> {
        self.max_storage_bytes
            .map(|l| l.saturating_sub(usage.bytes))
    }

    /// Whether the project may start adding chunks (it is below its chunk quota).
    pub fn may_add_chunks(&self, usage: Usage) -> Result<(), QuotaExceeded> {
        match self.max_chunks {
            Some(limit) if usage.chunks >= limit => Err(QuotaExceeded::Chunks { limit }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_refuse_only_what_would_go_over() {
        let limits = ProjectLimits {
            max_storage_bytes: Some(100),
            max_files: Some(2),
            max_chunks: Some(10),
            ..Default::default()
        };
        let usage = Usage {
            bytes: 60,
            files: 1,
            chunks: 10,
        };
        let file = |bytes| Usage {
            bytes,
            files: 1,
            chunks: 0,
        };
        assert_eq!(limits.check(usage, file(40)), Ok(()));
        assert_eq!(
            limits.check(usage, file(41)),
            Err(QuotaExceeded::Bytes { limit: 100 })
        );
        let two = Usage { files: 2, ..usage };
        assert_eq!(
            limits.check(two, file(1)),
            Err(QuotaExceeded::Files { limit: 2 })
        );
        // At its chunk quota a project may still add files, but no chunks.
        assert_eq!(limits.check(usage, file(1)), Ok(()));
        assert!(limits.may_add_chunks(usage).is_err());
        assert_eq!(
            limits.check(
                usage,
                Usage {
                    chunks: 1,
                    ..Default::default()
                }
            ),
            Err(QuotaExceeded::Chunks { limit: 10 })
        );
        assert_eq!(limits.bytes_left(usage), Some(40));
        assert_eq!(ProjectLimits::default().bytes_left(usage), None);
        assert!(!ProjectLimits::default().limits_storage());
    }
}
