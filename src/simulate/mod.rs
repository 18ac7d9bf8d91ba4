//! Running a system loaded from a definition file: the one sampling pipeline shared by
//! `phaseflow simulate`, the catalogue check and later analyses.
//!
//! [`Sampling`] builds the output grid (dysts' "points per period" convention or a fixed
//! spacing after a burn-in); [`run`] dispatches on the kind of system (flow → ODE integrator,
//! map → iteration) and applies the file's observation map before handing each recorded row to
//! the caller; [`trajectory`] collects the rows in memory.

mod builder;
mod definition;
mod ensemble;
pub use builder::{
    read_initial_conditions, Embed, Grid, NoiseSetting, NoiseUnits, Run, SimulateError, Simulated,
    Start, Written, MAX_POINTS,
};
pub use definition::{Definition, DefinitionError};
pub use ensemble::{
    assemble, command_template, merge_ensemble, recorded_command, EnsembleBase, Member,
    MergedEnsemble, ENSEMBLE_SHARD_COMMAND, OUTPUT_MARKER, PARTIAL_FORMAT,
};

use crate::integrate::{self, IntegrationError, SolveReport, SolverOptions, SolverStats};
use crate::systems::{CompiledSystem, Kind, System};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// Additive noise σ ∘ dW on a flow (see [`integrate::sde`]): one intensity per component, a
/// fixed step and the seed of the Gaussian increments.
#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    pub sigma: Vec<f64>,
    pub step: f64,
    pub seed: u64,
}

/// How to run a system: solver settings, optional noise, whether to record the raw state
/// (ignoring the file's observation map), and for maps whether to iterate the inverse map.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub solver: SolverOptions,
    pub noise: Option<Noise>,
    pub raw: bool,
    pub inverse: bool,
}

impl RunOptions {
    /// Plain deterministic run with the given solver settings.
    pub fn new(solver: SolverOptions) -> RunOptions {
        RunOptions {
            solver,
            ..RunOptions::default()
        }
    }

    /// The options of ensemble member `k`: its noise seeded with `stream_seed(noise.seed, k)`,
    /// so members get independent, thread-count-independent streams.
    pub fn member(&self, k: usize) -> RunOptions {
        RunOptions {
            noise: self.noise.as_ref().map(|n| Noise {
                seed: stream_seed(n.seed, k as u64),
                ..n.clone()
            }),
            ..self.clone()
        }
    }
}

/// The inverse of a map (from its file's `[inverse]` table) as a system of its own.
struct InverseMap<'a>(&'a CompiledSystem);

impl System for InverseMap<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn time_kind(&self) -> crate::systems::TimeKind {
        crate::systems::TimeKind::Discrete
    }
    fn rhs(&self, t: f64, x: &[f64], out: &mut [f64]) {
        self.0.inverse_step(t, x, out);
    }
}

pub use crate::seeds::stream_seed;

/// A uniform output grid: `points` times `t_start + k·dt_out`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub points: usize,
    pub t_start: f64,
    pub dt_out: f64,
}

impl Sampling {
    /// dysts' convention: `points` values uniformly on [t_start, t_start + period·points/per_period]
    /// (both ends included, like `numpy.linspace`).
    pub fn per_period(t_start: f64, period: f64, points: usize, per_period: usize) -> Sampling {
        let len = period * points as f64 / per_period as f64;
        Sampling {
            points,
            t_start,
            dt_out: len / (points.max(2) - 1) as f64,
        }
    }
    /// Times `t_start, t_start + dt_out, …` up to `t_start + t_len` (inclusive, to round-off).
    /// A count beyond `usize` (or a non-finite ratio) saturates at `usize::MAX`.
    pub fn fixed(t_start: f64, t_len: f64, dt_out: f64) -> Sampling {
        let n = (t_len / dt_out * (1.0 + 1e-12)).floor();
        let points = if n >= 0.0 && n < usize::MAX as f64 {
            n as usize + 1
        } else if n.is_nan() {
            0
        } else {
            usize::MAX
        };
        Sampling {
            points,
            t_start,
            dt_out,
        }
    }
    /// Iterations `t_start, t_start + 1, …` of a map.
    pub fn iterations(t_start: f64, points: usize) -> Sampling {
        Sampling {
            points,
            t_start,
            dt_out: 1.0,
        }
    }
    /// The output times.
    pub fn times(&self) -> Vec<f64> {
        self.grid().iter().collect()
    }
    /// The output times as a grid computed on demand (no list in memory; the same values as
    /// [`Sampling::times`], bit for bit).
    pub fn grid(&self) -> integrate::Times<'static> {
        integrate::Times::uniform(self.t_start, self.dt_out, self.points)
    }
    /// Last output time.
    pub fn t_end(&self) -> f64 {
        self.t_start + self.points.saturating_sub(1) as f64 * self.dt_out
    }
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{system}: blow-up at t = {t}: variable '{variable}' = {value} (non-finite or beyond the blow-up threshold)")]
    BlowUp {
        system: String,
        t: f64,
        variable: String,
        value: f64,
    },
    #[error("{system}: {error}")]
    Integration {
        system: String,
        error: IntegrationError,
    },
}

/// Integrates (or iterates) `sys` from `(sys.t0, x0)` and hands `observe(k, t_k, row_k)` the
/// recorded row at every output time: the state, with the file's observation map applied
/// unless `raw`. `observe` returning `false` stops the run. `times` is a list (`&[f64]`,
/// `&Vec<f64>`) or a grid ([`Sampling::grid`]: constant memory however many outputs).
pub fn run<'a>(
    sys: &CompiledSystem,
    ro: &RunOptions,
    x0: &[f64],
    times: impl Into<integrate::Times<'a>>,
    observe: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
) -> Result<SolveReport, RunError> {
    let times: integrate::Times = times.into();
    let (opts, noise, raw) = (&ro.solver, ro.noise.as_ref(), ro.raw);
    let m = sys.model();
    if ro.inverse && (m.kind != Kind::Map || m.inverse.is_empty()) {
        return Err(RunError::Integration {
            system: m.name.clone(),
            error: IntegrationError::InvalidInput {
                reason: "the inverse is only available for maps whose file has an [inverse] table"
                    .into(),
            },
        });
    }
    if noise.is_some() && m.kind != Kind::Flow {
        return Err(RunError::Integration {
            system: m.name.clone(),
            error: IntegrationError::InvalidInput {
                reason: "noise is supported for flows only".into(),
            },
        });
    }
    let apply_map = sys.has_observation_map() && !raw;
    let mut recorded = vec![0.0; sys.dim()];
    let mut obs = |k: usize, t: f64, x: &[f64]| -> bool {
        if apply_map {
            sys.observe(t, x, &mut recorded);
            observe(k, t, &recorded)
        } else {
            observe(k, t, x)
        }
    };
    let plain = |stats: SolverStats, method: &'static str| SolveReport {
        stats,
        methods: vec![method],
        switched_at: None,
    };
    let result = match m.kind {
        Kind::Map if ro.inverse => {
            integrate::iterate_map(&InverseMap(sys), m.t0, x0, times, opts.max_abs, &mut obs)
                .map(|s| plain(s, "inverse map"))
        }
        Kind::Map => integrate::iterate_map(sys, m.t0, x0, times, opts.max_abs, &mut obs)
            .map(|s| plain(s, "map")),
        Kind::Flow => match noise {
            None => {
                let stiff = sys.info().spec.stiff;
                integrate::integrate_with_jacobian(sys, opts, stiff, m.t0, x0, times, &mut obs)
            }
            Some(nz) => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(nz.seed);
                integrate::integrate_additive_noise(
                    sys,
                    &nz.sigma,
                    nz.step,
                    m.t0,
                    x0,
                    times,
                    opts.max_abs,
                    &mut rng,
                    &mut obs,
                )
                .map(|s| plain(s, "stochastic-heun"))
            }
        },
        Kind::Dde => {
            if noise.is_some() {
                return Err(RunError::Integration {
                    system: m.name.clone(),
                    error: IntegrationError::InvalidInput {
                        reason: "noise is not supported for delay equations".into(),
                    },
                });
            }
            // method of steps with dense history; the history for t < t0 is the file's [history]
            // table, or the initial state held constant. RK4 has no dense output: delay equations use DOP853 then.
            let method = match opts.method {
                integrate::Method::Dopri5 => integrate::Method::Dopri5,
                _ => integrate::Method::Dop853,
            };
            let history = dde_history(m, sys.params(), x0);
            integrate::integrate_dde(
                sys,
                method,
                opts.rtol,
                opts.atol,
                opts.max_abs,
                opts.max_steps,
                m.t0,
                &history,
                times,
                &mut obs,
            )
            .map(|s| plain(s, method.name()))
        }
    };
    result.map_err(|e| match e {
        IntegrationError::BlowUp { t, index, value } => RunError::BlowUp {
            system: m.name.clone(),
            t,
            variable: m.components.get(index).cloned().unwrap_or_default(),
            value,
        },
        other => RunError::Integration {
            system: m.name.clone(),
            error: other,
        },
    })
}

/// A trajectory in memory: times \[T\] and recorded rows \[T × D\] (row-major).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub time: Vec<f64>,
    pub state: Vec<f64>,
    pub dim: usize,
    pub stats: SolverStats,
    /// Methods used, in order (e.g. `["dop853", "rosenbrock"]` after a stiffness switch).
    pub methods: Vec<&'static str>,
}

/// [`run`], collecting the rows.
pub fn trajectory(
    sys: &CompiledSystem,
    ro: &RunOptions,
    x0: &[f64],
    sampling: &Sampling,
) -> Result<Recorded, RunError> {
    record(sys, ro, x0, sampling, &mut |_| true)
}

/// [`trajectory`], calling `after(k)` once row `k` is recorded; `after` returning `false`
/// stops the run (an [`IntegrationError`] "interrupted by the observer").
pub(crate) fn record(
    sys: &CompiledSystem,
    ro: &RunOptions,
    x0: &[f64],
    sampling: &Sampling,
    after: &mut dyn FnMut(usize) -> bool,
) -> Result<Recorded, RunError> {
    let d = sys.dim();
    let mut state = Vec::with_capacity(sampling.points * d);
    let mut time = Vec::with_capacity(sampling.points);
    let report = run(sys, ro, x0, sampling.grid(), &mut |k, t, row| {
        time.push(t);
        state.extend_from_slice(row);
        after(k)
    })?;
    Ok(Recorded {
        time,
        state,
        dim: d,
        stats: report.stats,
        methods: report.methods,
    })
}

/// `members` initial conditions on the attractor: the trajectory from the file's initial
/// condition, after a transient of 20 periods (1000 iterations for maps), is sampled at
/// 10 points per period over `max(100, 20·members)` points, and `members` distinct samples are
/// drawn with a generator seeded by `seed` (deterministic). Raw states (no observation map).
pub fn attractor_initial_conditions(
    sys: &CompiledSystem,
    opts: &SolverOptions,
    members: usize,
    seed: u64,
) -> Result<Vec<Vec<f64>>, RunError> {
    let m = sys.model();
    let pool = (20 * members).max(100);
    let sampling = match m.kind {
        Kind::Map => Sampling::iterations(m.t0 + 1000.0, pool),
        _ => Sampling {
            points: pool,
            t_start: m.t0 + 20.0 * m.period,
            dt_out: m.period / 10.0,
        },
    };
    let ro = RunOptions {
        solver: opts.clone(),
        raw: true,
        ..RunOptions::default()
    };
    let rec = trajectory(sys, &ro, &m.initial_condition, &sampling)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(stream_seed(seed, u64::MAX));
    let d = rec.dim;
    // partial Fisher–Yates: `members` distinct rows
    let mut idx: Vec<usize> = (0..pool).collect();
    let mut out = Vec::with_capacity(members);
    for i in 0..members {
        let j = rng.random_range(i..pool);
        idx.swap(i, j);
        out.push(rec.state[idx[i] * d..(idx[i] + 1) * d].to_vec());
    }
    Ok(out)
}

/// Integrates an ensemble in parallel (rayon), member `k` from `ics[k]` with the noise seed
/// `stream_seed(noise.seed, k)`. The result does not depend on the number of threads.
pub fn ensemble(
    sys: &CompiledSystem,
    ro: &RunOptions,
    ics: &[Vec<f64>],
    sampling: &Sampling,
) -> Result<Vec<Recorded>, RunError> {
    ics.par_iter()
        .enumerate()
        .map(|(k, x0)| trajectory(sys, &ro.member(k), x0, sampling))
        .collect()
}

/// The history of a delay equation for t < t0: the expressions of the file's `[history]` table
/// (components without one keep their initial value), or the initial state held constant.
pub fn dde_history(m: &crate::systems::Model, params: &[f64], x0: &[f64]) -> integrate::History {
    if m.history.is_empty() {
        return integrate::History::Constant(x0.to_vec());
    }
    let exprs = m.history.clone();
    let params = params.to_vec();
    let x0 = x0.to_vec();
    integrate::History::Function(Box::new(move |t: f64, out: &mut [f64]| {
        let cx = crate::systems::expr::Ctx {
            t,
            x: &[],
            p: &params,
            lag: &[],
        };
        for ((o, e), v0) in out.iter_mut().zip(&exprs).zip(&x0) {
            *o = e.as_ref().map_or(*v0, |e| e.eval(&cx));
        }
    }))
}
