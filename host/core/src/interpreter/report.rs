//! What a cell gives back: its outcome, the figures it left open, and the text the model
//! reads; and the hidden cell that collects the figures and the descriptors the guest holds
//! after each cell that returned.

use std::path::{Path, PathBuf};

use super::live::Origin;
use super::session::{CellOutcome, CellStatus};

/// One call's result as the engine records it.
#[derive(Debug, Clone)]
pub struct CellReport {
    pub outcome: CellOutcome,
    /// PNGs of the matplotlib figures the cell left open (in figure order), which the
    /// notebook would have displayed; the figures are closed.
    pub images: Vec<Vec<u8>>,
    /// After a cell that broke its session: what the session is now.
    pub reset: Option<Origin>,
    /// The thread's stored session could not be restored before this cell: it ran in a
    /// new one.
    pub lost: bool,
}

/// Saves and closes the figures a cell left open, as a notebook displays them, and prints
/// the descriptors the guest holds beyond its mounts (from FIRST, below LIMIT) after a
/// marker; leaves no name behind. Run after each cell that returned.
const AFTER_CELL: &str = "def __assistants_after():
    import sys, os
    plt = sys.modules.get('matplotlib.pyplot')
    if plt is not None:
        os.makedirs('/tmp/.figures', exist_ok=True)
        for n in plt.get_fignums()[:MAX]:
            plt.figure(n).savefig(f'/tmp/.figures/{n:06d}.png', format='png')
        plt.close('all')
    fds = []
    for fd in range(FIRST, LIMIT):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            pass
    print('\\0fds', *fds)
__assistants_after()
del __assistants_after
";
const FDS_MARKER: &str = "\0fds";

/// The hidden cell for a session whose first free descriptor is `first`, holding at most
/// `open_files`.
pub(crate) fn after_cell(first: u32, open_files: usize) -> String {
    AFTER_CELL
        .replace("MAX", &MAX_FIGURES.to_string())
        .replace("FIRST", &first.to_string())
        .replace("LIMIT", &(first as usize + open_files).to_string())
}

/// The descriptors the hidden cell printed (none when it did not run as Python).
pub(crate) fn open_fds(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(FDS_MARKER))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Figures kept per cell, and the largest PNG taken.
const MAX_FIGURES: usize = 10;
const MAX_FIGURE_BYTES: u64 = 16 << 20;

/// The PNGs in `dir` in name order (at most [`MAX_FIGURES`], each at most
/// [`MAX_FIGURE_BYTES`]), removed as they are read.
pub(crate) fn take_figures(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    let mut images = Vec::new();
    for path in paths {
        let small = std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_FIGURE_BYTES);
        if small && images.len() < MAX_FIGURES {
            if let Ok(bytes) = std::fs::read(&path) {
                images.push(bytes);
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    images
}

/// The tool result the model reads for a cell: its output, and what happened if it did not
/// simply finish.
pub fn result_text(report: &CellReport) -> String {
    let o = &report.outcome;
    let mut text = String::new();
    if report.lost {
        text.push_str("[the earlier session on this thread could not be restored: this code ran in a new session, without earlier variables, imports or files]\n");
    }
    text.push_str(&o.stdout);
    if !o.stderr.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&o.stderr);
    }
    if o.dropped > 0 {
        text.push_str(&format!(
            "\n[output truncated: {} more bytes were not kept]",
            o.dropped
        ));
    }
    let after = match report.reset {
        Some(Origin::Restored) => "the session was rolled back to its state after the last call that completed (its variables, imports and files)",
        Some(Origin::New) => "the session was reset: earlier variables, imports and files are gone",
        None => "the session was reset: earlier variables and imports are gone",
    };
    let note = match &o.status {
        CellStatus::Ok | CellStatus::Exception | CellStatus::Exit(0) => None,
        CellStatus::Exit(n) => Some(format!("[the code exited with status {n}]")),
        CellStatus::Quit => Some("[the code called exit(): the session ended; the next call starts a new one, without its variables or files]".to_string()),
        CellStatus::Timeout => Some(format!(
            "[execution timed out after {} s; {after}]",
            o.elapsed.as_secs().max(1)
        )),
        CellStatus::Stopped(why) => Some(format!("[execution stopped: {why}; {after}]")),
        CellStatus::Trapped(why) => Some(format!("[execution failed: {why}; {after}]")),
    };
    if let Some(note) = note {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&note);
    }
    text
}
