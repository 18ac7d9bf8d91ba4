//! Running a system loaded from a definition file: the one sampling pipeline shared by
//! `phaseflow simulate`, the catalogue check and later analyses.
//!
//! [`Sampling`] builds the output grid (dysts' "points per period" convention or a fixed
//! spacing after a burn-in); [`run`] dispatches on the kind of system (flow → ODE integrator,
//! map → iteration) and applies the file's observation map before handing each recorded row to
//! the caller; [`trajectory`] collects the rows in memory.

use crate::integrate::{self, IntegrationError, SolverOptions, SolverStats};
use crate::systems::{CompiledSystem, Kind, System};

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
    pub fn fixed(t_start: f64, t_len: f64, dt_out: f64) -> Sampling {
        Sampling {
            points: (t_len / dt_out * (1.0 + 1e-12)).floor() as usize + 1,
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
        (0..self.points)
            .map(|k| self.t_start + k as f64 * self.dt_out)
            .collect()
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
    #[error("{system}: {source}")]
    Integration {
        system: String,
        source: IntegrationError,
    },
    #[error("{0}: delay equations are parsed and validated, but their integrator (method of steps) is not part of this version")]
    DelayUnsupported(String),
}

/// Integrates (or iterates) `sys` from `(sys.t0, x0)` and hands `observe(k, t_k, row_k)` the
/// recorded row at every output time: the state, with the file's observation map applied
/// unless `raw`. `observe` returning `false` stops the run.
pub fn run(
    sys: &CompiledSystem,
    opts: &SolverOptions,
    x0: &[f64],
    times: &[f64],
    raw: bool,
    observe: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
) -> Result<SolverStats, RunError> {
    let m = sys.model();
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
    let result = match m.kind {
        Kind::Map => integrate::iterate_map(sys, m.t0, x0, times, opts.max_abs, &mut obs),
        Kind::Flow => integrate::integrate(sys, opts, m.t0, x0, times, &mut obs),
        Kind::Dde => return Err(RunError::DelayUnsupported(m.name.clone())),
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
            source: other,
        },
    })
}

/// A trajectory in memory: times [T] and recorded rows [T × D] (row-major).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub time: Vec<f64>,
    pub state: Vec<f64>,
    pub dim: usize,
    pub stats: SolverStats,
}

/// [`run`], collecting the rows.
pub fn trajectory(
    sys: &CompiledSystem,
    opts: &SolverOptions,
    x0: &[f64],
    sampling: &Sampling,
    raw: bool,
) -> Result<Recorded, RunError> {
    let times = sampling.times();
    let d = sys.dim();
    let mut state = Vec::with_capacity(times.len() * d);
    let mut time = Vec::with_capacity(times.len());
    let stats = run(sys, opts, x0, &times, raw, &mut |_, t, row| {
        time.push(t);
        state.extend_from_slice(row);
        true
    })?;
    Ok(Recorded {
        time,
        state,
        dim: d,
        stats,
    })
}
