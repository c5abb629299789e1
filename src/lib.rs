//! The workspace's root package holds the black-box tests in `tests/` and the benchmarks in
//! `benches/`; this library has what the benchmarks share (the test helpers live in
//! `tests/it/common.rs`).

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A server process a benchmark started: stopped gracefully (SIGTERM, then SIGKILL once `grace`
/// has passed) by [`stop`](Self::stop) or when dropped, so a failed or interrupted benchmark
/// never leaves a server behind holding a core.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    grace: Duration,
}

impl ServerProcess {
    /// Takes charge of `child`.
    pub fn new(child: Child, grace: Duration) -> Self {
        Self { child, grace }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has already ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, so the server drains as in production; SIGKILL if it has not ended after the grace
    /// period.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time a process has used so far, in seconds: utime and stime of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// Time in the process's own code.
    pub user: f64,
    /// Time in the kernel on the process's behalf.
    pub kernel: f64,
}

impl CpuTime {
    /// The figures of process `pid`; zero where `/proc` cannot be read.
    pub fn of(pid: u32) -> Self {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return Self::default();
        };
        // Fields after the `(comm)`, which may contain spaces: utime is field 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0) as f64
        };
        let hz = clock_ticks_per_sec();
        Self {
            user: ticks(11) / hz,
            kernel: ticks(12) / hz,
        }
    }

    /// User and kernel time together.
    pub fn total(&self) -> f64 {
        self.user + self.kernel
    }

    /// The time used since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            user: (self.user - earlier.user).max(0.0),
            kernel: (self.kernel - earlier.kernel).max(0.0),
        }
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, read once), the unit of `/proc` CPU times.
fn clock_ticks_per_sec() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|hz: &f64| *hz > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_read_and_grows() {
        let me = std::process::id();
        let before = CpuTime::of(me);
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = CpuTime::of(me).since(&before);
        assert!(used.total() > 0.0, "{used:?}");
        assert!(used.total() < 5.0, "{used:?}");
    }
}
