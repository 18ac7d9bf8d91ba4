//! Forecasting chaos: generated data sets, forecasters, the dysts metrics and the benchmark runner.
//!
//! The pieces, in the order data flows through them:
//!
//! - [`data`]: deterministic data sets from catalogue systems under documented protocols
//!   (`short`, `long`, `univariate`, or free settings): a training trajectory and several test
//!   trajectories from different on-attractor initial conditions, each a context followed by the
//!   horizon to forecast; stored as HDF5 with every setting.
//! - [`Forecaster`]: the small trait every model implements — fit on a training series, then roll
//!   out a horizon continuing a context. [`models`] holds the native ones (naive, mean, seasonal
//!   naive, context parroting, ridge VAR, NVAR, ESN, random-feature ridge, a burn MLP) and their
//!   hyperparameter grids; [`external`] runs any program through a file-based subprocess protocol.
//! - [`metrics`]: one pinned definition of every metric of dysts' `compute_metrics`, plus the
//!   valid prediction time and error-against-horizon curves.
//! - [`mod@bench`]: tunes each model per system on a validation split of the training series, forecasts
//!   every test trajectory, scores it and writes per-system results, the leaderboard, a summary and
//!   plots (`phaseflow forecast bench`).

pub mod bench;
pub mod data;
pub mod external;
pub mod linalg;
pub mod metrics;
pub mod models;

/// A multivariate time series on a uniform grid: `len() × dim` values, row-major (row t is the
/// state at step t).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub values: Vec<f64>,
    pub dim: usize,
}

impl Series {
    /// A series from row-major values; `values.len()` must be a multiple of `dim` (≥ 1).
    pub fn new(values: Vec<f64>, dim: usize) -> Series {
        assert!(
            dim > 0 && values.len().is_multiple_of(dim),
            "Series::new: {} values do not form rows of {dim}",
            values.len()
        );
        Series { values, dim }
    }

    /// Number of time steps.
    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The state at step `t`.
    pub fn row(&self, t: usize) -> &[f64] {
        &self.values[t * self.dim..(t + 1) * self.dim]
    }

    /// The last state.
    pub fn last(&self) -> &[f64] {
        self.row(self.len() - 1)
    }

    /// Steps `a..b` as a new series.
    pub fn slice(&self, a: usize, b: usize) -> Series {
        Series::new(self.values[a * self.dim..b * self.dim].to_vec(), self.dim)
    }

    /// The first `n` steps.
    pub fn head(&self, n: usize) -> Series {
        self.slice(0, n.min(self.len()))
    }

    /// The last `n` steps.
    pub fn tail(&self, n: usize) -> Series {
        let t = self.len();
        self.slice(t - n.min(t), t)
    }

    /// Component `k` over time.
    pub fn column(&self, k: usize) -> Vec<f64> {
        self.values.chunks_exact(self.dim).map(|r| r[k]).collect()
    }

    /// Per-component mean and (population) standard deviation.
    pub fn moments(&self) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim;
        (
            crate::analysis::stats::column_means(&self.values, d),
            crate::analysis::stats::column_stds(&self.values, d),
        )
    }
}

/// Errors of the benchmark's protocols, data sets and runs (the message names the system, model
/// or file concerned).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Failed(String),
}

/// The message, for code that reports errors as text (e.g. per-system failures in a table).
impl From<BenchError> for String {
    fn from(e: BenchError) -> String {
        e.to_string()
    }
}

/// Why a forecaster could not fit or predict.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    #[error("{model}: training series too short ({len} steps, needs at least {need})")]
    TooShort {
        model: String,
        len: usize,
        need: usize,
    },
    #[error("{model}: predict called before fit")]
    NotFitted { model: String },
    #[error("{model}: {msg}")]
    Failed { model: String, msg: String },
}

/// A forecasting model: fit on a training series, then forecast `horizon` steps that continue a
/// context series (the steps just before the forecast window, of the same system; the
/// context may be the training series itself).
///
/// Implementations are deterministic: a forecaster built with the same settings and seed, fitted on
/// the same series, returns bit-identical forecasts. The forecast has `horizon` rows of
/// `context.dim` values; values after a blow-up may be non-finite (the runner scores those as
/// maximal errors and flags the forecast as diverged).
pub trait Forecaster: Send {
    /// The model's name with its hyperparameters, e.g. `nvar(lags=2,skip=5,ridge=1e-4)`.
    fn name(&self) -> String;
    /// Fits the model to a training series.
    fn fit(&mut self, train: &Series) -> Result<(), ForecastError>;
    /// Forecasts `horizon` steps after the end of `context`.
    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError>;
}

/// Per-component affine standardisation z = (x − mean)/std, fitted on a training series
/// (components with zero spread keep scale 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Scaler {
    pub fn fit(s: &Series) -> Scaler {
        let (mean, std) = s.moments();
        let std = std
            .into_iter()
            .map(|v| if v > 0.0 && v.is_finite() { v } else { 1.0 })
            .collect();
        Scaler { mean, std }
    }

    /// The identity map (mean 0, std 1), for models told not to standardise.
    pub fn identity(dim: usize) -> Scaler {
        Scaler {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }

    /// `fit(s)` when `standardise`, else [`Scaler::identity`].
    pub fn fit_if(standardise: bool, s: &Series) -> Scaler {
        if standardise {
            Scaler::fit(s)
        } else {
            Scaler::identity(s.dim)
        }
    }

    /// The standardised series.
    pub fn apply(&self, s: &Series) -> Series {
        let mut out = s.values.clone();
        for row in out.chunks_exact_mut(s.dim) {
            for ((v, m), sd) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / sd;
            }
        }
        Series::new(out, s.dim)
    }

    /// Back to original units.
    pub fn invert(&self, s: &Series) -> Series {
        let mut out = s.values.clone();
        for row in out.chunks_exact_mut(s.dim) {
            for ((v, m), sd) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = *v * sd + m;
            }
        }
        Series::new(out, s.dim)
    }
}
