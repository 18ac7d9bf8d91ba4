//! The run builder for equation systems (flows, SDE flows, maps, delay equations): one place
//! that turns "what the user asked for" into a [`Trajectory`] value with its provenance.
//! `phaseflow simulate` (and the Python package) call exactly this and then
//! [`crate::io::write_trajectory`].
//!
//! Defaults are the command line's: the stiffness-switching method `auto`, tolerances 1e-10,
//! 1000 points at 100 per period (dysts' sampling), no burn-in, the file's initial condition,
//! RK4 with the file's `dt`, and the file's `[diffusion]` table as noise (an SDE file run through
//! the library is an SDE run).
//!
//! ```
//! use phaseflow::simulate::Run;
//! use phaseflow::systems::{CompiledSystem, Overrides};
//! let lorenz = CompiledSystem::load("lorenz", &Overrides::default()).unwrap();
//! let out = Run::new(&lorenz).points(200).burn_in(5.0).run().unwrap();
//! let tr = &out.trajectory;
//! assert_eq!((tr.len(), tr.dim, tr.members), (200, 3, 1));
//! // provenance travels with the data
//! assert_eq!(tr.attr_str("system"), Some("Lorenz"));
//! ```

use super::ensemble::{assemble, EnsembleBase, Member};
use super::{attractor_initial_conditions, Noise, RunError, RunOptions};
use super::{Recorded, Sampling};
use crate::control::{human_bytes, human_count, Cancel, NoProgress, Progress};
use crate::integrate::{DelaySystem, Method, SolverOptions, SolverStats};
use crate::io::{AttrValue, Trajectory};
use crate::systems::{CompiledSystem, Kind, System};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors of setting up or running an equation system.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A setting is out of range or inconsistent with the system (the message names it by its
    /// command-line spelling, e.g. `--burn-in`, which the Python keywords mirror).
    #[error("{0}")]
    Invalid(String),
    /// The integration failed (blow-up, step-size underflow, …).
    #[error(transparent)]
    Run(RunError),
    /// Sampling the ensemble's initial conditions on the attractor failed.
    #[error("sampling initial conditions on the attractor: {0}")]
    Attractor(RunError),
    /// The initial-condition file could not be read.
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    /// The initial-condition file is malformed (`file:line: what`).
    #[error("{0}")]
    IcFile(String),
    /// The run was cancelled through its [`Cancel`] token.
    #[error("interrupted")]
    Interrupted,
    /// An ensemble written to a file was cancelled: its finished members are kept in the
    /// partial file, which [`Run::resume`] continues.
    #[error("interrupted: {done} of {total} members are kept in {}; continue with --resume (the same command)", .partial.display())]
    EnsembleInterrupted {
        /// The partial file.
        partial: PathBuf,
        /// Members finished.
        done: usize,
        /// Members of this run (of its shard).
        total: usize,
    },
    /// An ensemble's partial file cannot be used (another run's, damaged, or left by an
    /// unfinished run that this one does not resume).
    #[error("{}: {msg}", .path.display())]
    Partial {
        /// The partial file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The output would not fit in the memory budget ([`Run::memory_limit`]); nothing was run.
    #[error("{0}")]
    TooLarge(String),
    /// Writing the output file failed (the temporary file is removed; the destination is
    /// untouched).
    #[error(transparent)]
    Io(crate::io::IoError),
}

/// The most output points of a run: 2^53, the last integer up to which every output index `k`
/// (and so every output time `t_start + k·dt_out`) is exact in f64. (Far beyond any disk: such
/// a run of one variable would write 144 PB.)
pub const MAX_POINTS: usize = 1 << 53;

fn invalid<T>(msg: impl Into<String>) -> Result<T, SimulateError> {
    Err(SimulateError::Invalid(msg.into()))
}

/// Where the run starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Start {
    /// The file's initial condition.
    #[default]
    FileDefault,
    /// One given state (D values).
    State(Vec<f64>),
    /// An ensemble of M members sampled on the attractor with the run's seed
    /// (see [`attractor_initial_conditions`]).
    Attractor(usize),
    /// An ensemble from given states (each D values).
    States(Vec<Vec<f64>>),
}

/// The output grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grid {
    /// dysts' convention: `points` values on [t_start, t_start + period·points/per_period].
    PerPeriod { points: usize, per_period: usize },
    /// `t_start, t_start + dt_out, …` up to `t_start + t_len` (flows).
    Fixed { t_len: f64, dt_out: f64 },
}

/// Units of additive noise intensities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NoiseUnits {
    /// σ as given, in the units of the state.
    #[default]
    State,
    /// σ times the reference standard deviation of each variable (the file's `[reference] std`).
    Std,
}

/// Noise of a flow.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum NoiseSetting {
    /// The file's `[diffusion]` table, dx = f dt + √(2D) dW, if it has one; else none.
    #[default]
    FromFile,
    /// Additive noise σ ∘ dW: one intensity for every component, or one per component.
    Additive { sigma: Vec<f64>, units: NoiseUnits },
}

/// A delay embedding x(t), x(t − L), …, x(t − (E−1)L) of every component.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Embed {
    /// Coordinates per component E ≥ 1.
    pub dimension: usize,
    /// Lag L in time units (rounded to a multiple of the output spacing); `None`: the smallest
    /// delay of a delay equation.
    pub lag: Option<f64>,
}

/// A run of an equation system, built step by step (every setter has the command line's
/// default) and carried out by [`Run::run`].
#[derive(Clone)]
pub struct Run<'a> {
    sys: &'a CompiledSystem,
    method: Method,
    rtol: f64,
    atol: f64,
    step: Option<f64>,
    max_abs: f64,
    grid: Option<Grid>,
    burn_in: f64,
    start: Start,
    seed: u64,
    noise: NoiseSetting,
    embed: Option<Embed>,
    raw: bool,
    inverse: bool,
    progress: &'a dyn Progress,
    cancel: Cancel,
    memory_limit: u64,
    resume: bool,
    stop_after_members: Option<usize>,
}

/// What [`Run::write`] wrote: the number of frames, and how the solver got there.
#[derive(Debug, Clone)]
pub struct Written {
    /// Frames written (`T`).
    pub frames: usize,
    /// Accepted and rejected steps and right-hand-side evaluations (summed over members).
    pub stats: SolverStats,
    /// What actually ran (see [`Simulated::solver`]).
    pub solver: String,
    /// The recorded grid.
    pub sampling: Sampling,
    /// Members of an ensemble taken over from its partial file ([`Run::resume`]).
    pub reused_members: usize,
}

/// Everything a run needs, checked: [`Run::prepare`].
struct Prepared {
    x0: Vec<f64>,
    smp: Sampling,
    opts: SolverOptions,
    noise: Option<Noise>,
    ensemble_ics: Option<Vec<Vec<f64>>>,
    ro: RunOptions,
}

/// What [`Run::run`] produced: the trajectory with its provenance attributes, and how the
/// solver got there.
#[derive(Debug, Clone)]
pub struct Simulated {
    /// Times \[T\], states \[T, D\] (or \[M, T, D\] for an ensemble), component names, and the root
    /// attributes a file gets (system, definition, parameters, solver, …).
    pub trajectory: Trajectory,
    /// Accepted and rejected steps and right-hand-side evaluations (summed over members).
    pub stats: SolverStats,
    /// What actually ran: e.g. `"dop853"`, or `"dop853 -> rosenbrock"` after a stiffness switch.
    pub solver: String,
    /// The recorded grid.
    pub sampling: Sampling,
}

impl<'a> Run<'a> {
    /// A run of `sys` with the command line's defaults.
    pub fn new(sys: &'a CompiledSystem) -> Run<'a> {
        Run {
            sys,
            method: Method::Auto,
            rtol: 1e-10,
            atol: 1e-10,
            step: None,
            max_abs: 1e12,
            grid: None,
            burn_in: 0.0,
            start: Start::FileDefault,
            seed: 0,
            noise: NoiseSetting::FromFile,
            embed: None,
            raw: false,
            inverse: false,
            progress: &NoProgress,
            cancel: Cancel::new(),
            memory_limit: crate::control::memory_budget(),
            resume: false,
            stop_after_members: None,
        }
    }
    /// The most memory (bytes) the recorded output may take when it is held whole: [`Run::run`]
    /// holds the trajectory (`T × (D + 1) × 8` bytes, `T × (M·D + 1) × 8` for an ensemble of M,
    /// an embedding's longer raw run and its embedded output together), and so does
    /// [`Run::write`] for an ensemble or an embedding. A run over the limit is refused before it
    /// starts, naming the size. A single trajectory written by [`Run::write`] streams in
    /// constant memory and is not limited by this. Default: the machine's physical memory
    /// ([`crate::control::memory_budget`]).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }
    /// Integration method (default `auto`: DOP853 with a switch to Rosenbrock when stiff).
    pub fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }
    /// Relative and absolute tolerances of the adaptive methods (default 1e-10 both).
    pub fn tolerances(mut self, rtol: f64, atol: f64) -> Self {
        self.rtol = rtol;
        self.atol = atol;
        self
    }
    /// The fixed step of RK4 and of the noise (default: the file's `dt`); the initial step of
    /// the adaptive methods (default: Hairer's guess).
    pub fn step(mut self, h: f64) -> Self {
        self.step = Some(h);
        self
    }
    /// Blow-up threshold on |x_i| (default 1e12).
    pub fn max_abs(mut self, v: f64) -> Self {
        self.max_abs = v;
        self
    }
    /// `n` points at `per_period` points per period (dysts' `make_trajectory`).
    pub fn points_per_period(mut self, n: usize, per_period: usize) -> Self {
        self.grid = Some(Grid::PerPeriod {
            points: n,
            per_period,
        });
        self
    }
    /// `n` points at the default 100 per period.
    pub fn points(self, n: usize) -> Self {
        self.points_per_period(n, 100)
    }
    /// A recorded interval of length `t_len` sampled every `dt_out` (flows, delay equations).
    pub fn span(mut self, t_len: f64, dt_out: f64) -> Self {
        self.grid = Some(Grid::Fixed { t_len, dt_out });
        self
    }
    /// The output grid (see [`Grid`]); `None` restores the default.
    pub fn grid(mut self, grid: Option<Grid>) -> Self {
        self.grid = grid;
        self
    }
    /// Transient discarded before recording (time units; whole iterations for maps).
    pub fn burn_in(mut self, t: f64) -> Self {
        self.burn_in = t;
        self
    }
    /// Initial condition(s).
    pub fn start(mut self, s: Start) -> Self {
        self.start = s;
        self
    }
    /// Seed of every random choice (attractor sampling, noise increments).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Noise (default: the file's `[diffusion]` table).
    pub fn noise(mut self, n: NoiseSetting) -> Self {
        self.noise = n;
        self
    }
    /// Record a delay embedding.
    pub fn embed(mut self, e: Embed) -> Self {
        self.embed = Some(e);
        self
    }
    /// Record the raw state even where the file declares an observation map.
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }
    /// Maps: iterate the inverse map of the file's `[inverse]` table.
    pub fn inverse(mut self, inverse: bool) -> Self {
        self.inverse = inverse;
        self
    }
    /// Progress, in recorded points (one run) or members (an ensemble).
    pub fn progress(mut self, p: &'a dyn Progress) -> Self {
        self.progress = p;
        self
    }
    /// Cancellation token, polled at every recorded point.
    pub fn cancel(mut self, c: Cancel) -> Self {
        self.cancel = c;
        self
    }
    /// An ensemble written to a file ([`Run::write`], [`Run::write_ensemble_shard`]) keeps each
    /// finished member in the partial file `.NAME.partial` beside it; with `resume`, a run takes
    /// the members found there (which must have been computed with this run's settings: a
    /// difference is refused, naming it) and computes the others. Without it, a partial file
    /// left by an unfinished run is refused rather than overwritten. Default `false`.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }
    /// Testing aid: an ensemble written to a file stops (as if killed) after this many members
    /// computed in this call, keeping them in its partial file.
    #[doc(hidden)]
    pub fn stop_after_members(mut self, n: Option<usize>) -> Self {
        self.stop_after_members = n;
        self
    }

    /// The recorded grid after the burn-in (at most [`MAX_POINTS`] points, their spacing
    /// resolved to 0.1 % in double precision at the last time).
    pub fn sampling(&self) -> Result<Sampling, SimulateError> {
        let s = self.sampling_unchecked()?;
        if s.points > MAX_POINTS {
            return invalid(format!(
                "{} output points requested; a run records at most 2^53 = {MAX_POINTS:.3e} (where every output index is exact in f64)",
                human_count(s.points),
                MAX_POINTS = MAX_POINTS as f64
            ));
        }
        // the recorded times must be distinct numbers: each spacing resolved to 0.1 % in f64
        let t_last = s.t_start + (s.points.saturating_sub(1)) as f64 * s.dt_out;
        let resolution = 1e3 * f64::EPSILON * t_last.abs();
        if s.dt_out.is_nan() || s.dt_out <= resolution {
            return invalid(format!(
                "output times near t = {t_last:e} are {:.3e} apart, below the resolution of double precision there (the spacing must exceed {:.1e}): start earlier (--burn-in), end sooner (--t-end) or widen the spacing",
                s.dt_out, resolution
            ));
        }
        Ok(s)
    }

    fn sampling_unchecked(&self) -> Result<Sampling, SimulateError> {
        let m = self.sys.model();
        if !(self.burn_in >= 0.0 && self.burn_in.is_finite()) {
            return invalid(format!(
                "--burn-in must be a non-negative number, got {}",
                self.burn_in
            ));
        }
        let t_start = m.t0 + self.burn_in;
        if m.kind == Kind::Map {
            if self.burn_in.fract() != 0.0 {
                return invalid("--burn-in of a map counts iterations: give an integer");
            }
            let points = match self.grid {
                Some(Grid::PerPeriod { points, .. }) => points,
                Some(Grid::Fixed { .. }) => {
                    return invalid("a map is sampled at every iteration: give a number of points")
                }
                None => 1000,
            };
            return Ok(Sampling::iterations(t_start, points));
        }
        match self.grid {
            Some(Grid::Fixed { t_len, dt_out }) => {
                for (v, name) in [(t_len, "--t-end"), (dt_out, "--dt-out")] {
                    if !(v > 0.0 && v.is_finite()) {
                        return invalid(format!("{name} must be a finite number > 0, got {v}"));
                    }
                }
                let s = Sampling::fixed(t_start, t_len, dt_out);
                if s.points < 2 {
                    return invalid(format!(
                        "--t-end {t_len} with --dt-out {dt_out} records {} point; at least 2 are needed (--dt-out at most --t-end)",
                        s.points
                    ));
                }
                Ok(s)
            }
            grid => {
                let (points, per) = match grid {
                    Some(Grid::PerPeriod { points, per_period }) => (points, per_period),
                    _ => (1000, 100),
                };
                if points < 2 || per == 0 {
                    return invalid("--points must be at least 2 and --pts-per-period positive");
                }
                Ok(Sampling::per_period(t_start, m.period, points, per))
            }
        }
    }

    /// The solver settings (RK4 steps at the file's `dt` unless a step is given).
    pub fn solver_options(&self) -> Result<SolverOptions, SimulateError> {
        for (v, name) in [(self.rtol, "--rtol"), (self.atol, "--atol")] {
            if !(v > 0.0 && v.is_finite()) {
                return invalid(format!("{name} must be a finite number > 0, got {v}"));
            }
        }
        if let Some(h) = self.step.filter(|h| !(*h > 0.0 && h.is_finite())) {
            return invalid(format!("--step must be a finite number > 0, got {h}"));
        }
        // +inf: no threshold
        if self.max_abs.is_nan() || self.max_abs <= 0.0 {
            return invalid(format!(
                "--max-abs must be a number > 0, got {}",
                self.max_abs
            ));
        }
        let h0 = match self.method {
            Method::Rk4 => Some(self.step.unwrap_or(self.sys.model().dt)),
            _ => self.step,
        };
        Ok(SolverOptions {
            method: self.method,
            rtol: self.rtol,
            atol: self.atol,
            h0,
            max_abs: self.max_abs,
            ..SolverOptions::default()
        })
    }

    /// The noise this run integrates (`None`: deterministic).
    pub fn resolved_noise(&self) -> Result<Option<Noise>, SimulateError> {
        let sys = self.sys;
        let sigma = match &self.noise {
            NoiseSetting::FromFile => {
                // an SDE file: dx = f dt + √(2D) dW with its [diffusion] table
                let Some(diff) = sys.diffusion() else {
                    return Ok(None);
                };
                if let Some((k, v)) = diff
                    .iter()
                    .enumerate()
                    .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
                {
                    return invalid(format!(
                        "{}: the diffusion of {} is {v}; it must be a non-negative number",
                        sys.name(),
                        sys.model().components[k]
                    ));
                }
                diff.iter().map(|d| (2.0 * d).sqrt()).collect()
            }
            NoiseSetting::Additive { sigma, units } => {
                let d = System::dim(sys);
                let mut sigma = match sigma.len() {
                    1 => vec![sigma[0]; d],
                    n if n == d => sigma.clone(),
                    n => {
                        return invalid(format!(
                            "--noise has {n} values but {} has {d} variables (give 1 or {d})",
                            sys.name()
                        ))
                    }
                };
                if sigma.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
                    return invalid("--noise intensities must be non-negative numbers");
                }
                if *units == NoiseUnits::Std {
                    let std = sys
                        .info()
                        .spec
                        .reference_array("std")
                        .filter(|s| s.len() == d)
                        .ok_or_else(|| {
                            SimulateError::Invalid(format!("--noise-units std needs a [reference] std with {d} values in the definition file"))
                        })?;
                    for (s, r) in sigma.iter_mut().zip(&std) {
                        *s *= r;
                    }
                }
                sigma
            }
        };
        let step = self.step.unwrap_or(sys.model().dt);
        if step.is_nan() || step <= 0.0 {
            return invalid("--step must be positive");
        }
        Ok(Some(Noise {
            sigma,
            step,
            seed: self.seed,
        }))
    }

    /// Integrates (or iterates) the system and returns the recorded trajectory with its
    /// provenance attributes (everything `phaseflow simulate` writes but `command_line`).
    pub fn run(&self) -> Result<Simulated, SimulateError> {
        self.check_memory_in_full()?;
        let p = self.prepare()?;
        self.run_prepared(p)
    }

    /// Runs and writes the output to `path` (a trajectory file, layout in [`crate::io`]) with
    /// the root attributes of [`Run::run`] and `extra` (e.g. the command line), which replace
    /// them where names coincide.
    ///
    /// A single trajectory streams to the file as it is computed: memory holds one chunk row of
    /// frames ([`crate::io::chunk_shape`]) whatever the length (the output times are a grid
    /// computed on demand, [`Sampling::grid`]); a file larger than the free space of its file
    /// system is refused before the run, naming both sizes. An ensemble or a delay embedding is
    /// computed in memory ([`Run::run`], within [`Run::memory_limit`]) and then written. Either way the file appears
    /// only complete (a temporary next to it, renamed into place), and the file holds what
    /// [`Run::run`] followed by [`crate::io::write_trajectory`] would write; a failed,
    /// interrupted or blown-up run, or a full disk, leaves no file and no temporary.
    ///
    /// An ensemble's finished members are kept meanwhile, each as it finishes (synced), in the
    /// partial file `.NAME.partial` beside `path` (one process at a time writes it:
    /// [`crate::io::h5md::OutputLock`]): an interrupted or killed run leaves it, and a run with
    /// [`Run::resume`] continues from it and writes the bytes of an uninterrupted run; it is
    /// removed once the file is in place, or when a member fails.
    pub fn write(
        &self,
        path: &Path,
        extra: &BTreeMap<String, AttrValue>,
    ) -> Result<Written, SimulateError> {
        use crate::io::TrajectoryWriter;
        if matches!(self.start, Start::Attractor(_) | Start::States(_)) {
            return self.write_ensemble(path, extra);
        }
        if self.embed.is_some() {
            self.check_memory_in_full()?;
            // refuse a bad destination before the work
            crate::io::check_output_path(path).map_err(SimulateError::Io)?;
            let mut out = self.run_prepared(self.prepare()?)?;
            out.trajectory.attrs.extend(extra.clone());
            let frames =
                crate::io::write_trajectory(path, &out.trajectory).map_err(SimulateError::Io)?;
            return Ok(Written {
                frames,
                stats: out.stats,
                solver: out.solver,
                sampling: out.sampling,
                reused_members: 0,
            });
        }
        let p = self.prepare()?;
        let smp = p.smp;
        let (sys, io) = (self.sys, SimulateError::Io);
        let m = sys.model();
        crate::io::check_output_path(path).map_err(io)?;
        // the file: times and states, 8 bytes each (the attributes aside)
        let d = System::dim(sys);
        let file_bytes = smp.points as f64 * (d + 1) as f64 * 8.0;
        if let Some(free) = crate::io::available_bytes(path) {
            if file_bytes > free as f64 {
                return Err(SimulateError::TooLarge(format!(
                    "{}: the output would take {} ({} points × {} values × 8 bytes) but its file system has {} free; record fewer points",
                    path.display(),
                    human_bytes(file_bytes),
                    human_count(smp.points),
                    d + 1,
                    human_bytes(free as f64)
                )));
            }
        }
        let mut w =
            TrajectoryWriter::create_sized(path, d, &m.components, smp.points).map_err(io)?;
        let mut failed = None;
        self.progress.start(smp.points as u64, 0, "points");
        let report = super::run(sys, &p.ro, &p.x0, smp.grid(), &mut |k, t, row| {
            if let Err(e) = w.push(t, row) {
                failed = Some(e);
                return false;
            }
            // the clock behind a bar is read every 64 points only
            if (k + 1).is_multiple_of(64) {
                self.progress.set_position(k as u64 + 1);
            }
            !self.cancel.is_cancelled()
        });
        self.progress.finish();
        if let Some(e) = failed {
            return Err(io(e));
        }
        if self.cancel.is_cancelled() {
            return Err(SimulateError::Interrupted);
        }
        let report = report.map_err(SimulateError::Run)?;
        let solver = report.methods.join(" -> ");
        let mut attrs = BTreeMap::new();
        let (stats, noise) = (report.stats, p.noise.as_ref());
        self.provenance(&mut attrs, &p.x0, &smp, &p.opts, noise, stats, &solver);
        attrs.extend(extra.clone());
        // as write_trajectory does: the writer's own attributes are not overwritten
        for (k, v) in &attrs {
            if !matches!(k.as_str(), "format" | "format_version" | "ensemble_size") {
                w.set_attr(k, v).map_err(io)?;
            }
        }
        let frames = w.finish().map_err(io)?;
        Ok(Written {
            frames,
            stats,
            solver,
            sampling: smp,
            reused_members: 0,
        })
    }

    /// [`Run::write`] of an ensemble: its members kept in the partial file as they finish
    /// ([`Run::kept_members`]), the file written from all of them, then the partial file removed.
    fn write_ensemble(
        &self,
        path: &Path,
        extra: &BTreeMap<String, AttrValue>,
    ) -> Result<Written, SimulateError> {
        self.check_memory_in_full()?;
        // refuse a bad destination before the work
        crate::io::check_output_path(path).map_err(SimulateError::Io)?;
        let p = self.prepare()?;
        let ics = p.ensemble_ics.as_deref().unwrap_or_default();
        let whole = crate::shard::Shard::WHOLE;
        // held until the file is published
        let _lock = crate::io::h5md::OutputLock::acquire(path).map_err(SimulateError::Io)?;
        let mut kept = self.kept_members(path, ics, None)?;
        let reused_members = kept.found.len();
        let (base, members) = self.ensemble_part(&p, whole, Some(&mut kept))?;
        let members: Vec<Member> = members.into_iter().map(|(_, m)| m).collect();
        let mut out = assemble(&base, &members);
        out.trajectory.attrs.extend(extra.clone());
        let frames =
            crate::io::write_trajectory(path, &out.trajectory).map_err(SimulateError::Io)?;
        kept.file.remove();
        Ok(Written {
            frames,
            stats: out.stats,
            solver: out.solver,
            sampling: out.sampling,
            reused_members,
        })
    }

    /// What an ensemble's members depend on, named as on the command line, with their values:
    /// the first line of its partial file, which a resume must match. `shard`: `None` for the
    /// whole ensemble's file.
    fn ensemble_settings(
        &self,
        ics: &[Vec<f64>],
        shard: Option<crate::shard::Shard>,
    ) -> Vec<(String, String)> {
        let sys = self.sys;
        let m = sys.model();
        let spec = &sys.info().spec;
        let num = |x: f64| format!("{x:?}");
        let given = |x: Option<f64>| x.map_or("not given".to_string(), num);
        let (points, per_period, t_end, dt_out) = match self.grid {
            Some(Grid::Fixed { t_len, dt_out }) => (None, None, Some(t_len), Some(dt_out)),
            Some(Grid::PerPeriod { points, per_period }) => {
                (Some(points), Some(per_period), None, None)
            }
            None => (Some(1000), Some(100), None, None),
        };
        let count = |x: Option<usize>| x.map_or("not given".to_string(), |v| v.to_string());
        let parameters = m
            .param_names
            .iter()
            .zip(sys.params())
            .map(|(n, v)| format!("{n}={}", num(*v)))
            .collect::<Vec<_>>()
            .join(",");
        let ic_values: Vec<u8> = ics
            .iter()
            .flatten()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect();
        let (noise, units) = match &self.noise {
            NoiseSetting::FromFile => ("the file's [diffusion], if any".to_string(), "-".into()),
            NoiseSetting::Additive { sigma, units } => (
                sigma.iter().map(|v| num(*v)).collect::<Vec<_>>().join(","),
                format!("{units:?}").to_lowercase(),
            ),
        };
        [
            ("system", spec.path.display().to_string()),
            ("definition", crate::shard::work_id(spec.source.as_bytes())),
            ("--set", parameters),
            ("variables", m.components.join(",")),
            ("--ensemble", ics.len().to_string()),
            (
                "--ic-file",
                match self.start {
                    Start::States(_) => format!(
                        "initial conditions with fingerprint {}",
                        crate::shard::work_id(&ic_values)
                    ),
                    _ => "not given (sampled on the attractor)".into(),
                },
            ),
            ("--seed", self.seed.to_string()),
            ("--method", self.method.to_string()),
            ("--rtol", num(self.rtol)),
            ("--atol", num(self.atol)),
            ("--step", given(self.step)),
            ("--max-abs", num(self.max_abs)),
            ("--points", count(points)),
            ("--pts-per-period", count(per_period)),
            ("--t-end", given(t_end)),
            ("--dt-out", given(dt_out)),
            ("--burn-in", num(self.burn_in)),
            ("--noise", noise),
            ("--noise-units", units),
            ("--raw", self.raw.to_string()),
            ("--inverse", self.inverse.to_string()),
            (
                "--shard",
                shard.map_or("not given".into(), |s| s.to_string()),
            ),
            ("phaseflow version", env!("CARGO_PKG_VERSION").into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The partial file of the ensemble written to `path` (see [`Run::resume`]): its members
    /// read back when resuming, else a new file. Call with the output's lock held.
    fn kept_members(
        &self,
        path: &Path,
        ics: &[Vec<f64>],
        shard: Option<crate::shard::Shard>,
    ) -> Result<Kept, SimulateError> {
        use crate::shard::PartialFile;
        let partial = PartialFile::path_of(path).map_err(shard_error)?;
        let bad = |msg: String| SimulateError::Partial {
            path: partial.clone(),
            msg,
        };
        let settings = self.ensemble_settings(ics, shard);
        let first_line = super::ensemble::partial_first_line(&settings);
        let whole = shard.unwrap_or(crate::shard::Shard::WHOLE);
        let found = PartialFile::read(&partial, whole, ics.len()).map_err(shard_error)?;
        let Some(found) = found else {
            let file = PartialFile::create(&partial, &first_line).map_err(shard_error)?;
            return Ok(Kept {
                file,
                found: BTreeMap::new(),
            });
        };
        if !self.resume {
            return Err(bad(
                "an unfinished run of this output kept its finished members here: continue it with --resume (the same command), or remove the file to start afresh".into(),
            ));
        }
        let differences = super::ensemble::settings_differences(&found.first_line, &settings)
            .map_err(|e| bad(format!("cannot resume: {e}; remove it to start afresh")))?;
        if !differences.is_empty() {
            return Err(bad(format!(
                "cannot resume: this command's settings differ from those of the run that wrote it: {}; give the same settings, or remove the file to start afresh",
                differences.join("; ")
            )));
        }
        let values = self.sampling()?.points * System::dim(self.sys);
        let mut members = BTreeMap::new();
        for (k, text) in &found.rows {
            let m = super::ensemble::parse_member_row(text, values)
                .map_err(|e| bad(format!("member {k}: {e}")))?;
            members.insert(*k, m);
        }
        let file = PartialFile::resume(&partial, &found).map_err(shard_error)?;
        Ok(Kept {
            file,
            found: members,
        })
    }

    /// Checks every setting and samples an ensemble's initial conditions: all that can fail
    /// before the run proper.
    fn prepare(&self) -> Result<Prepared, SimulateError> {
        let sys = self.sys;
        let m = sys.model();
        let x0 = match &self.start {
            Start::State(x) => {
                check_state(sys, x, "--ic")?;
                x.clone()
            }
            _ => m.initial_condition.clone(),
        };
        let smp = self.sampling()?;
        let opts = self.solver_options()?;
        let noise = self.resolved_noise()?;
        let ensemble_ics = match &self.start {
            Start::States(list) => {
                if list.is_empty() {
                    return invalid("an ensemble needs at least one initial condition");
                }
                for x in list {
                    check_state(sys, x, "an initial condition")?;
                }
                Some(list.clone())
            }
            Start::Attractor(0) => return invalid("--ensemble must be at least 1"),
            Start::Attractor(n) => Some(
                attractor_initial_conditions(sys, &opts, *n, self.seed)
                    .map_err(SimulateError::Attractor)?,
            ),
            _ => None,
        };
        if self.embed.is_some() && ensemble_ics.is_some() {
            return invalid("--embed records one trajectory: it does not combine with an ensemble");
        }
        let ro = RunOptions {
            solver: opts.clone(),
            noise: noise.clone(),
            raw: self.raw,
            inverse: self.inverse,
        };
        Ok(Prepared {
            x0,
            smp,
            opts,
            noise,
            ensemble_ics,
            ro,
        })
    }

    /// Refuses an output that would exceed [`Run::memory_limit`] in memory: `count` points of
    /// `width` f64 values each (described by `what`), before anything is allocated.
    fn check_memory(
        &self,
        count: usize,
        width: usize,
        what: &str,
        hint: &str,
    ) -> Result<(), SimulateError> {
        let bytes = count as f64 * width as f64 * 8.0;
        if bytes > self.memory_limit as f64 {
            return Err(SimulateError::TooLarge(format!(
                "{what} would take {} in memory ({} points × {width} values × 8 bytes), more than the limit of {}: {hint}",
                human_bytes(bytes),
                human_count(count),
                human_bytes(self.memory_limit as f64),
            )));
        }
        Ok(())
    }

    /// [`Run::check_memory`] for a run held in memory whole ([`Run::run`]): every member's
    /// states and the output times (with an embedding, its longer raw run and the embedded
    /// output).
    fn check_memory_in_full(&self) -> Result<(), SimulateError> {
        let d = System::dim(self.sys);
        let smp = self.sampling()?;
        let points = smp.points;
        let hint = "an ensemble or a delay embedding is held in memory whole; record fewer points or members (a single trajectory streams to its file)";
        if let Some(e) = self.embed {
            let emb = embedding(self.sys, &smp, e)?;
            // raw run (times + states) and the embedded output (times + D·E values per point)
            let width = (d + 1) + (d * e.dimension + 1);
            return self.check_memory(emb.sampling.points, width, "the embedded output", hint);
        }
        let members = match &self.start {
            Start::Attractor(n) => *n,
            Start::States(list) => list.len(),
            _ => 1,
        };
        let width = members.saturating_mul(d).saturating_add(1);
        self.check_memory(points, width, "the output", hint)
    }

    fn run_prepared(&self, p: Prepared) -> Result<Simulated, SimulateError> {
        let sys = self.sys;
        let m = sys.model();
        let d = System::dim(sys);
        if p.ensemble_ics.is_some() {
            // the one path from members to an ensemble's output, shared with the merge of its
            // shards (super::ensemble)
            let (base, members) = self.ensemble_part(&p, crate::shard::Shard::WHOLE, None)?;
            let members: Vec<Member> = members.into_iter().map(|(_, m)| m).collect();
            return Ok(assemble(&base, &members));
        }
        let Prepared {
            x0,
            smp,
            opts,
            noise,
            ro,
            ..
        } = p;
        let mut attrs: BTreeMap<String, AttrValue> = BTreeMap::new();
        let (time, state, members, variables, stats, methods) = if let Some(e) = self.embed {
            let emb = embedding(sys, &smp, e)?;
            let rec = self.one(&ro, &x0, &emb.sampling, false)?;
            let ed = e.dimension;
            let mut names = Vec::with_capacity(d * ed);
            for c in &m.components {
                for k in 0..ed {
                    names.push(if k == 0 {
                        format!("{c}(t)")
                    } else {
                        format!("{c}(t-{k}L)")
                    });
                }
            }
            let shift = (ed - 1) * emb.lag_steps;
            let mut state = Vec::with_capacity(smp.points * d * ed);
            let mut time = Vec::with_capacity(smp.points);
            for k in 0..smp.points {
                time.push(rec.time[k + shift]);
                for j in 0..d {
                    for q in 0..ed {
                        state.push(rec.state[(k + shift - q * emb.lag_steps) * d + j]);
                    }
                }
            }
            attrs.insert("embedding_dimension".into(), AttrValue::U64(ed as u64));
            attrs.insert(
                "embedding_lag".into(),
                AttrValue::F64(emb.lag_steps as f64 * smp.dt_out),
            );
            (time, state, 1, names, rec.stats, rec.methods)
        } else {
            self.progress.start(smp.points as u64, 0, "points");
            let rec = self.one(&ro, &x0, &smp, true);
            self.progress.finish();
            let rec = rec?;
            (
                rec.time,
                rec.state,
                1,
                m.components.clone(),
                rec.stats,
                rec.methods,
            )
        };
        let solver = methods.join(" -> ");
        self.provenance(&mut attrs, &x0, &smp, &opts, noise.as_ref(), stats, &solver);
        Ok(Simulated {
            trajectory: Trajectory {
                time,
                state,
                dim: variables.len(),
                members,
                variables,
                attrs,
            },
            stats,
            solver,
            sampling: smp,
        })
    }

    /// One member: [`super::trajectory`] with progress (points, if `report_points`) and
    /// cancellation.
    fn one(
        &self,
        ro: &RunOptions,
        x0: &[f64],
        smp: &Sampling,
        report_points: bool,
    ) -> Result<Recorded, SimulateError> {
        let rec = super::record(self.sys, ro, x0, smp, &mut |k| {
            // the clock behind a bar is read every 64 points only
            if report_points && (k + 1).is_multiple_of(64) {
                self.progress.set_position(k as u64 + 1);
            }
            !self.cancel.is_cancelled()
        });
        if self.cancel.is_cancelled() {
            return Err(SimulateError::Interrupted);
        }
        rec.map_err(SimulateError::Run)
    }

    /// The members of `shard` of the ensemble of `p` (member `k` from `ics[k]` with the noise
    /// stream `k`, in parallel, progress in members) and what all members share. With `kept`,
    /// the members found in the partial file are taken over and each one computed is appended
    /// to it as it finishes: a cancelled run ([`Run::stop_after_members`] included) is then
    /// [`SimulateError::EnsembleInterrupted`], and a failed one removes the partial file.
    fn ensemble_part(
        &self,
        p: &Prepared,
        shard: crate::shard::Shard,
        kept: Option<&mut Kept>,
    ) -> Result<(EnsembleBase, Vec<(usize, Member)>), SimulateError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (ro, smp) = (&p.ro, &p.smp);
        let ics = p.ensemble_ics.as_deref().unwrap_or_default();
        let own = shard.items(ics.len());
        check_shard_has_members(shard, ics.len())?;
        let todo: Vec<usize> = own
            .iter()
            .copied()
            .filter(|k| !kept.as_ref().is_some_and(|f| f.found.contains_key(k)))
            .collect();
        let reused = own.len() - todo.len();
        let file = kept.as_ref().map(|k| &k.file);
        let grid = smp.times();
        let same_bits = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        let computed = AtomicUsize::new(0);
        self.progress
            .start(own.len() as u64, reused as u64, "members");
        let recs: Result<Vec<Option<(usize, Timed)>>, SimulateError> = todo
            .par_iter()
            .map(|&k| {
                if self.cancel.is_cancelled() {
                    return Ok(None);
                }
                let r = self.one(&ro.member(k), &ics[k], smp, false)?;
                let time = (!same_bits(&r.time, &grid)).then_some(r.time);
                let member = Member {
                    state: r.state,
                    stats: r.stats,
                    methods: r.methods.iter().map(|m| m.to_string()).collect(),
                };
                if let Some(file) = file {
                    let row = super::ensemble::member_row(&member, time.as_deref());
                    file.append(k, &format!("{row}\n")).map_err(shard_error)?;
                    let n = computed.fetch_add(1, Ordering::SeqCst) + 1;
                    if self.stop_after_members.is_some_and(|m| n >= m) {
                        self.cancel.cancel();
                    }
                }
                self.progress.advance(1);
                Ok(Some((k, (member, time))))
            })
            .collect();
        self.progress.finish();
        if let Some(file) = file {
            let interrupted = matches!(recs, Err(SimulateError::Interrupted))
                || (recs.is_ok() && self.cancel.is_cancelled());
            if interrupted {
                return Err(SimulateError::EnsembleInterrupted {
                    partial: file.path().to_path_buf(),
                    done: reused + computed.load(Ordering::SeqCst),
                    total: own.len(),
                });
            }
            if matches!(recs, Err(SimulateError::Run(_))) {
                // a member failed: running it again fails the same way
                let _ = std::fs::remove_file(file.path());
            }
        }
        let mut members: BTreeMap<usize, Timed> = BTreeMap::new();
        for r in recs? {
            let Some((k, m)) = r else {
                return Err(SimulateError::Interrupted);
            };
            members.insert(k, m);
        }
        if let Some(kept) = kept {
            members.append(&mut kept.found);
        }
        if self.cancel.is_cancelled() || members.len() != own.len() {
            return Err(SimulateError::Interrupted);
        }
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "initial_conditions".into(),
            AttrValue::F64s(ics.iter().flatten().copied().collect()),
        );
        attrs.insert("ensemble_size".into(), AttrValue::U64(ics.len() as u64));
        // the solver's attributes come from the members (assemble)
        let stats = SolverStats::default();
        self.provenance(&mut attrs, &p.x0, smp, &p.opts, p.noise.as_ref(), stats, "");
        // the times every member recorded (the first member's, if not the grid's)
        let time = members
            .values()
            .next()
            .and_then(|(_, t)| t.clone())
            .unwrap_or(grid);
        let base = EnsembleBase {
            time,
            variables: self.sys.model().components.clone(),
            attrs,
            sampling: *smp,
            members: ics.len(),
        };
        let members = members.into_iter().map(|(k, (m, _))| (k, m)).collect();
        Ok((base, members))
    }

    /// Runs shard `shard` of an ensemble (`--ensemble M` or given initial conditions; member `k`
    /// belongs to shard `k mod N`, and runs exactly as in the whole ensemble) and writes its
    /// shard file to `path` (atomically) for [`super::merge_ensemble`], which writes the file
    /// [`Run::write`] writes for the whole ensemble. `command`: the command line recorded for
    /// the merged file, as [`super::command_template`] makes it (`None`: no `command_line`
    /// attribute). Refuses a run that is not an ensemble and a shard without members (N > M).
    /// Finished members are kept in the partial file beside `path` until the shard file is
    /// written, as [`Run::write`] keeps an ensemble's ([`Run::resume`]). Returns what was
    /// written and the number of members taken over from the partial file.
    pub fn write_ensemble_shard(
        &self,
        path: &Path,
        shard: crate::shard::Shard,
        command: Option<Vec<String>>,
    ) -> Result<(crate::shard::Published, usize), SimulateError> {
        if !matches!(self.start, Start::Attractor(_) | Start::States(_)) {
            return invalid("--shard splits an ensemble (--ensemble M): this run is not one");
        }
        self.check_memory_in_full()?;
        crate::io::check_output_path(path).map_err(SimulateError::Io)?;
        let p = self.prepare()?;
        let ics = p.ensemble_ics.as_deref().unwrap_or_default();
        check_shard_has_members(shard, ics.len())?;
        // held until the shard file is published
        let _lock = crate::io::h5md::OutputLock::acquire(path).map_err(SimulateError::Io)?;
        let mut kept = self.kept_members(path, ics, Some(shard))?;
        let reused = kept.found.len();
        let (base, members) = self.ensemble_part(&p, shard, Some(&mut kept))?;
        let table = super::ensemble::shard_table(&base, &members, command);
        let published = crate::shard::publish(path, &table, Some(shard)).map_err(shard_error)?;
        kept.file.remove();
        Ok((published, reused))
    }

    /// The root attributes of the output: the system, its definition and parameters, the
    /// initial condition, the sampling, the solver and its statistics, the noise.
    #[allow(clippy::too_many_arguments)]
    fn provenance(
        &self,
        attrs: &mut BTreeMap<String, AttrValue>,
        x0: &[f64],
        smp: &Sampling,
        opts: &SolverOptions,
        noise: Option<&Noise>,
        stats: SolverStats,
        solver: &str,
    ) {
        let sys = self.sys;
        let m = sys.model();
        let spec = &sys.info().spec;
        let apply_map = sys.has_observation_map() && !self.raw;
        let mut put = |k: &str, v: AttrValue| {
            attrs.insert(k.to_string(), v);
        };
        put("seed", AttrValue::U64(self.seed));
        if let Some(nz) = noise {
            put("noise_sigma", AttrValue::F64s(nz.sigma.clone()));
            put("noise_step", AttrValue::F64(nz.step));
            put(
                "noise_method",
                AttrValue::Str("stochastic Heun (additive noise)".into()),
            );
        }
        put("system", AttrValue::Str(m.name.clone()));
        put("kind", AttrValue::Str(m.kind.as_str().into()));
        put("definition", AttrValue::Str(spec.source.clone()));
        put(
            "definition_path",
            AttrValue::Str(spec.path.display().to_string()),
        );
        put("variables", AttrValue::Strs(m.components.clone()));
        put("parameter_names", AttrValue::Strs(m.param_names.clone()));
        put("parameter_values", AttrValue::F64s(sys.params().to_vec()));
        put("initial_condition", AttrValue::F64s(x0.to_vec()));
        put("t0", AttrValue::F64(m.t0));
        put("inverse_map", AttrValue::Bool(self.inverse));
        put("burn_in", AttrValue::F64(self.burn_in));
        put("dt_out", AttrValue::F64(smp.dt_out));
        put("period", AttrValue::F64(m.period));
        put("solver", AttrValue::Str(solver.to_string()));
        put("solver_requested", AttrValue::Str(self.method.to_string()));
        put("rtol", AttrValue::F64(self.rtol));
        put("atol", AttrValue::F64(self.atol));
        put("step", AttrValue::F64(opts.h0.unwrap_or(f64::NAN)));
        put("accepted_steps", AttrValue::U64(stats.accepted));
        put("rejected_steps", AttrValue::U64(stats.rejected));
        put("rhs_evaluations", AttrValue::U64(stats.rhs_evals));
        put(
            "observation_map",
            AttrValue::Strs(if apply_map {
                spec.observe
                    .iter()
                    .map(|(v, e)| format!("{v} -> {}", e.value))
                    .collect()
            } else {
                Vec::new()
            }),
        );
        put(
            "phaseflow_version",
            AttrValue::Str(env!("CARGO_PKG_VERSION").into()),
        );
    }
}

/// An ensemble's partial file while it runs: the members found in it (with their times where
/// they are not the grid's; [`Run::ensemble_part`] takes them) and the file the others are
/// appended to.
struct Kept {
    file: crate::shard::PartialFile,
    found: BTreeMap<usize, Timed>,
}

/// A member with its recorded times where they are not the grid's (see
/// [`super::ensemble::member_row`]).
type Timed = (Member, Option<Vec<f64>>);

/// Refuses a shard without members (more shards than members).
fn check_shard_has_members(
    shard: crate::shard::Shard,
    members: usize,
) -> Result<(), SimulateError> {
    if shard.items(members).is_empty() {
        return invalid(format!(
            "shard {shard} has no members: an ensemble of {members} is split into at most {members} shards"
        ));
    }
    Ok(())
}

/// A sharding or partial-file error as the run's.
fn shard_error(e: crate::shard::ShardError) -> SimulateError {
    match e {
        crate::shard::ShardError::Io(io) => SimulateError::Io(io),
        crate::shard::ShardError::File { path, msg } => SimulateError::Partial { path, msg },
        other => SimulateError::Invalid(other.to_string()),
    }
}

/// Checks that a given state has the system's dimension and finite values.
fn check_state(sys: &CompiledSystem, x: &[f64], what: &str) -> Result<(), SimulateError> {
    let m = sys.model();
    if x.len() != System::dim(sys) {
        let names = if m.components.len() <= 8 {
            m.components.join(", ")
        } else {
            format!(
                "{}, ..., {}",
                m.components[0],
                m.components[m.components.len() - 1]
            )
        };
        return invalid(format!(
            "{what} has {} values but {} has {} variables ({names})",
            x.len(),
            m.name,
            System::dim(sys)
        ));
    }
    if let Some(v) = x.iter().find(|v| !v.is_finite()) {
        return invalid(format!("{what}: '{v}' is not finite"));
    }
    Ok(())
}

/// Reads ensemble initial conditions from a text file: one state per line, numbers separated by
/// commas or white space, `#` starts a comment. Each line must hold `dim` numbers.
pub fn read_initial_conditions(
    path: &Path,
    sys: &CompiledSystem,
) -> Result<Vec<Vec<f64>>, SimulateError> {
    let text = std::fs::read_to_string(path).map_err(|e| SimulateError::Read {
        path: path.to_path_buf(),
        reason: e,
    })?;
    let bad = |msg: String| Err(SimulateError::IcFile(msg));
    let d = System::dim(sys);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut row = Vec::with_capacity(d);
        for s in line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            match s.parse::<f64>() {
                Ok(v) => row.push(v),
                Err(_) => {
                    return bad(format!(
                        "{}:{}: '{s}' is not a number",
                        path.display(),
                        i + 1
                    ))
                }
            }
        }
        if row.len() != d {
            return bad(format!(
                "{}:{}: {} values but {} has {d} variables",
                path.display(),
                i + 1,
                row.len(),
                sys.name()
            ));
        }
        out.push(row);
    }
    if out.is_empty() {
        return bad(format!("{}: no initial conditions", path.display()));
    }
    Ok(out)
}

/// Output grid of a delay-embedded run: the requested grid extended backwards by (E−1)·L.
struct Embedding {
    sampling: Sampling,
    lag_steps: usize,
}

fn embedding(sys: &CompiledSystem, smp: &Sampling, e: Embed) -> Result<Embedding, SimulateError> {
    let ed = e.dimension;
    if ed == 0 {
        return invalid("--embed must be at least 1");
    }
    let lag = match e.lag {
        Some(l) => l,
        None => DelaySystem::lags(sys)
            .iter()
            .map(|(_, tau)| *tau)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
            .ok_or_else(|| {
                SimulateError::Invalid(
                    "--embed needs --embed-lag for a system without delays".into(),
                )
            })?,
    };
    if !(lag.is_finite() && lag > 0.0) {
        return invalid("--embed-lag must be positive");
    }
    let lag_steps = ((lag / smp.dt_out).round() as usize).max(1);
    let back = (ed - 1) as f64 * lag_steps as f64 * smp.dt_out;
    let t0 = sys.model().t0;
    if smp.t_start - back < t0 - 1e-9 * back.max(1.0) {
        return invalid(format!(
            "--embed {ed} with lag {} needs a burn-in of at least {back} (the embedding looks back (E-1)·L)",
            lag_steps as f64 * smp.dt_out
        ));
    }
    Ok(Embedding {
        sampling: Sampling {
            points: smp.points + (ed - 1) * lag_steps,
            t_start: smp.t_start - back,
            dt_out: smp.dt_out,
        },
        lag_steps,
    })
}
