//! What an operator configures for the code interpreter (`[code_interpreter]`,
//! `--code-interpreter-*`), with the defaults for a data directory.

use std::path::PathBuf;
use std::time::Duration;

/// What the template runs: the libraries most cells use, imported without leaving names in
/// `__main__` (a forked session looks like a fresh interpreter).
pub(crate) const TEMPLATE_CELL: &str = "def __assistants_template():
    import numpy, pandas, matplotlib
    import matplotlib.pyplot
__assistants_template()
del __assistants_template
";

/// What an operator configures (`[code_interpreter]`, `--code-interpreter-*`).
#[derive(Debug, Clone)]
pub struct InterpreterSettings {
    pub enabled: bool,
    /// Where `assistants code-interpreter install` put it.
    pub dir: PathBuf,
    /// Per-thread working directories (`/tmp`, `/mnt/data`).
    pub sessions_dir: PathBuf,
    pub memory_mib: u64,
    pub cell_timeout: Duration,
    /// Output kept per stream per cell.
    pub output_kib: usize,
    pub open_files: usize,
    /// Live sessions per node.
    pub max_sessions: usize,
    /// Cells running at once on this node.
    pub max_cells: usize,
    pub idle: Duration,
    pub lifetime: Duration,
    /// Live sessions' memory on this node, at most (least recently used ones are dropped).
    pub memory_budget_mib: u64,
    /// A session's files (`/tmp` and `/mnt/data`), at most: bytes and entries.
    pub disk_mib: u64,
    pub disk_entries: u64,
    /// What new sessions fork from ([`TEMPLATE_CELL`]); none starts them bare.
    pub template: Option<String>,
}

impl InterpreterSettings {
    /// What one session runs under.
    pub fn session_limits(&self) -> super::session::SessionLimits {
        super::session::SessionLimits {
            memory_bytes: (self.memory_mib << 20) as usize,
            open_files: self.open_files,
            output_bytes: self.output_kib << 10,
        }
    }

    /// The defaults for a data directory.
    pub fn for_data_dir(data_dir: &std::path::Path) -> InterpreterSettings {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        InterpreterSettings {
            enabled: true,
            dir: data_dir.join("code-interpreter"),
            sessions_dir: data_dir.join("code-interpreter-sessions"),
            memory_mib: 1024,
            cell_timeout: Duration::from_secs(120),
            output_kib: 64,
            open_files: 256,
            max_sessions: 16,
            max_cells: cores,
            idle: Duration::from_secs(20 * 60),
            lifetime: Duration::from_secs(60 * 60),
            memory_budget_mib: 2048,
            disk_mib: 1024,
            disk_entries: 10_000,
            template: Some(TEMPLATE_CELL.to_string()),
        }
    }
}
