//! Control of long-running calls: cooperative cancellation ([`Cancel`]), progress reporting
//! ([`Progress`]) and the memory budget of whatever is held in memory whole
//! ([`memory_budget`]). The bottom layer: every other module may use it, it uses none of them.
//!
//! The library never installs a signal handler. A front end (the `phaseflow` binary, the Python
//! package) makes one [`Cancel`] token, connects it to Ctrl-C once, and hands clones of it to every
//! long-running call; those calls poll it at safe points (after a frame, after a training step),
//! write their checkpoint and return an `Interrupted` error. Because the token is a value, one
//! process can simulate, be interrupted, [`Cancel::reset`] the token and train, and the second
//! Ctrl-C is seen just like the first.
//!
//! ```
//! use phaseflow::control::Cancel;
//! let cancel = Cancel::new();
//! let seen_by_worker = cancel.clone();
//! assert!(!seen_by_worker.is_cancelled());
//! cancel.cancel(); // e.g. from a Ctrl-C handler installed by the binary
//! assert!(seen_by_worker.is_cancelled());
//! cancel.reset();
//! assert!(!seen_by_worker.is_cancelled());
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation token shared by clones: `cancel()` on any clone is seen by all of them.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Cancel {
        Cancel::default()
    }
    /// Asks every holder of the token to stop at its next safe point (async-signal safe: one
    /// atomic store).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether [`Cancel::cancel`] was called since the token was made or last reset.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// Clears the request, so that the token can serve the next call of the same process.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
    /// `Err(`[`Interrupted`]`)` when the token is cancelled: `cancel.check()?` at a safe point.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_cancelled() {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }
}

/// The error of a call that stopped because its [`Cancel`] token was cancelled, for functions
/// whose only failure is that (e.g. [`crate::analysis::dimension::correlation_sums`]); calls
/// that fail in other ways too have an `Interrupted` variant in their own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Progress of a long-running call, reported in units of work (`unit`: "steps", "points",
/// "systems", "samples", …). Every method has a no-op default; [`NoProgress`] is the silent
/// implementation, and the binary adapts an indicatif bar. Implementations must be cheap:
/// callers report from hot loops (at most once per recorded frame or training step).
pub trait Progress: Sync {
    /// The work is `len` units of `unit`, of which `done` are already done (a resumed run).
    fn start(&self, _len: u64, _done: u64, _unit: &str) {}
    /// `pos` units are done.
    fn set_position(&self, _pos: u64) {}
    /// `delta` more units are done.
    fn advance(&self, _delta: u64) {}
    /// A short note on the current unit (e.g. the system being computed).
    fn message(&self, _msg: &str) {}
    /// The work ended (successfully or not): remove any display.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_request() {
        let a = Cancel::new();
        let b = a.clone();
        let t = std::thread::spawn(move || {
            while !b.is_cancelled() {
                std::thread::yield_now();
            }
            true
        });
        a.cancel();
        assert!(t.join().unwrap());
        a.reset();
        assert!(!a.is_cancelled());
    }
}

/// Runs `work` on a pool of `threads` worker threads (`--threads`; None: rayon's global pool,
/// one thread per core). Results of the library do not depend on the thread count. Errs with
/// the message for 0 threads or a pool that cannot start.
pub fn with_threads<T: Send>(
    threads: Option<usize>,
    work: impl FnOnce() -> T + Send,
) -> Result<T, String> {
    match threads {
        None => Ok(work()),
        Some(0) => Err("--threads must be at least 1".into()),
        Some(t) => rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map(|pool| pool.install(work))
            .map_err(|e| format!("cannot start {t} threads: {e}")),
    }
}

/// Memory budget where the platform does not say how much memory the machine has: 4 GiB.
pub const FALLBACK_MEMORY_BUDGET: u64 = 4 << 30;

/// The most bytes a call may hold in memory at once for data it keeps whole (an ensemble or an
/// embedded run before it is written, a trajectory file read whole): the machine's physical
/// memory (`sysconf` on Unix), or [`FALLBACK_MEMORY_BUDGET`] where that is unknown. Such calls
/// check their size against it before allocating and refuse with the size named, rather than
/// abort on a failed allocation; what fits in the machine is never refused.
pub fn memory_budget() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads configuration values.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && size > 0 {
            return (pages as u64).saturating_mul(size as u64);
        }
    }
    FALLBACK_MEMORY_BUDGET
}

/// `bytes` in the largest decimal unit that keeps a number ≥ 1: `80.0 GB`, `512 bytes`.
pub fn human_bytes(bytes: f64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// A count as a user would write it: below 10^6 as is, above with three significant digits in
/// scientific notation, trailing zeros dropped (`10000000001` → `1e10`, `123456789` → `1.23e8`).
pub fn human_count(n: usize) -> String {
    if n < 1_000_000 {
        return n.to_string();
    }
    let s = format!("{:.2e}", n as f64);
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    format!("{mantissa}e{exp}")
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn sizes_and_counts_read_as_a_user_writes_them() {
        assert_eq!(human_bytes(512.0), "512 bytes");
        assert_eq!(human_bytes(8e10), "80.0 GB");
        assert_eq!(human_count(999_999), "999999");
        assert_eq!(human_count(10_000_000_001), "1e10");
        assert_eq!(human_count(123_456_789), "1.23e8");
        assert!(memory_budget() >= 1 << 20);
    }
}
