//! The binary's progress display: an indicatif bar behind the library's
//! [`Progress`](crate::control::Progress) trait.

use crate::control::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// An indicatif progress bar reporting a library call (hidden when `quiet`).
pub struct IndicatifProgress {
    bar: ProgressBar,
}

impl IndicatifProgress {
    /// A bar drawn with the indicatif `template` (e.g. `"{bar:30} {pos}/{len} steps {msg}"`;
    /// the default bar style when the template is invalid), or a hidden one when `quiet`.
    /// Its length is set by [`Progress::start`].
    pub fn new(quiet: bool, template: &str) -> IndicatifProgress {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        IndicatifProgress { bar }
    }
}

impl Progress for IndicatifProgress {
    fn start(&self, len: u64, done: u64, _unit: &str) {
        self.bar.reset();
        self.bar.set_length(len);
        self.bar.set_position(done);
    }
    fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
    }
    fn advance(&self, delta: u64) {
        self.bar.inc(delta);
    }
    fn message(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
