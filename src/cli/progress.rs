//! The command line's progress bars: an indicatif adapter of the library's
//! `Progress` trait ([`crate::control::Progress`]), and the process's one cancellation token.

use crate::control::{Cancel, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Instant;

/// The process's one cancellation token, connected on first use (the library never installs
/// handlers) to Ctrl-C (SIGINT) and to the termination signals a scheduler or `timeout` sends
/// (SIGTERM, SIGHUP — Slurm's `scancel` and time limit): the run stops at its next check,
/// removes its temporaries, keeps what is resumable and says so. A second signal while that
/// clean-up is under way exits at once (status 130), for a run that does not reach a check.
/// Every long-running call of one process shares the token.
pub fn cancel_token() -> Cancel {
    static TOKEN: std::sync::OnceLock<Cancel> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let c = Cancel::new();
            let h = c.clone();
            let _ = ctrlc::set_handler(move || {
                if h.is_cancelled() {
                    std::process::exit(130);
                }
                h.cancel()
            });
            c
        })
        .clone()
}

/// A progress bar on standard error that appears only once the work has taken more than a
/// second (short runs print nothing), hidden altogether when `quiet`.
pub struct IndicatifProgress {
    bar: ProgressBar,
    start: Instant,
    shown: std::sync::atomic::AtomicBool,
    quiet: bool,
}

impl IndicatifProgress {
    /// A bar drawn with an indicatif `template`; `{unit}` in it is replaced by the unit that
    /// [`Progress::start`] names.
    pub fn new(quiet: bool, template: &str) -> IndicatifProgress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        IndicatifProgress {
            bar,
            start: Instant::now(),
            shown: std::sync::atomic::AtomicBool::new(false),
            quiet,
        }
    }

    /// The bar of counted work: `{pos}/{len} {unit}` with rate and time left.
    pub fn counting(quiet: bool, unit: &str) -> IndicatifProgress {
        Self::new(
            quiet,
            &format!("{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"),
        )
    }

    fn reveal(&self) {
        use std::sync::atomic::Ordering;
        if !self.quiet
            && !self.shown.load(Ordering::Relaxed)
            && self.start.elapsed().as_secs_f64() > 1.0
        {
            self.shown.store(true, Ordering::Relaxed);
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }
}

impl Progress for IndicatifProgress {
    fn start(&self, len: u64, done: u64, _unit: &str) {
        self.bar.set_length(len);
        self.bar.set_position(done);
    }
    fn set_position(&self, pos: u64) {
        self.reveal();
        self.bar.set_position(pos);
    }
    fn advance(&self, delta: u64) {
        self.reveal();
        self.bar.inc(delta);
    }
    fn message(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
