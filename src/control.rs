//! Control of long-running calls: cooperative cancellation ([`Cancel`]) and progress reporting
//! ([`Progress`]). The bottom layer: every other module may use it, it uses none of them.
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
}

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
