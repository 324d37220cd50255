//! Small measuring helpers shared by the benchmarks in `tests/bench`.

use std::time::Duration;

/// The `p` quantile (0..1) of durations sorted ascending.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Peak resident set size of this process so far (Linux `VmHWM`), in MiB; 0 elsewhere.
pub fn peak_rss_mib() -> f64 {
    status_mib("self", "VmHWM")
}

/// Peak resident set size of process `pid` so far (Linux `VmHWM`), in MiB; 0 elsewhere.
pub fn peak_rss_mib_of(pid: &str) -> f64 {
    status_mib(pid, "VmHWM")
}

/// CPU time (user + system) process `pid` has used so far, in seconds; 0 where unknown.
/// `/proc/PID/stat` counts in clock ticks, 100 per second on Linux.
pub fn cpu_secs(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// Resident set size of process `pid` (`"self"` for this one) now (Linux `VmRSS`), in MiB.
pub fn rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmRSS")
}

/// A kB field of `/proc/PID/status`, in MiB; 0 where there is none.
fn status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s
                .lines()
                .find(|l| l.split(':').next() == Some(field))?
                .to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A numeric setting from the environment (`BENCH_…`), or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The runtime benchmarks run on: multi-threaded with two workers, the machine's cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
