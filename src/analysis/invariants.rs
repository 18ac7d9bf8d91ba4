//! All invariants of one system with one documented method each — the code behind
//! `phaseflow invariants` and `phaseflow catalogue invariants`: Lyapunov spectrum (variational
//! equations, [`super::lyapunov::spectrum`]), maximal exponent by two-trajectory renormalisation,
//! Kaplan–Yorke dimension, Pesin bound, correlation dimension ([`super::dimension`]), sample and
//! multiscale entropy ([`super::timeseries`]), dominant period ([`super::stats`]), beside the
//! reference values stored in the system's file (literature, and dysts' with a `_dysts` suffix).
//!
//! Cancellation: [`InvariantSettings::cancel`] is polled throughout (inside the spectrum and
//! two-trajectory integrations, the correlation trajectory and the correlation sum; between the
//! stages) and [`compute`] returns [`InvariantsError::Interrupted`] once it is set. The entropies
//! and periods are bounded (≤ 3000 and 4000 samples, milliseconds) and run between two checks.

use super::dimension::correlation_dimension;
use super::lyapunov::{
    kaplan_yorke, max_exponent_two_trajectories, pesin_entropy, spectrum, SpectrumOptions,
};
use crate::control::Cancel;
use crate::integrate::{IntegrationError, SolverOptions};
use crate::simulate;
use crate::systems::{CompiledSystem, Kind};

/// Settings; `None` picks the per-kind default given in each field's doc.
#[derive(Debug, Clone)]
pub struct InvariantSettings {
    /// Measured span: flows 2000 periods, maps 1e5 iterations.
    pub span: Option<f64>,
    /// Transient: flows 20 periods, maps 1000 iterations.
    pub transient: Option<f64>,
    /// QR interval: flows period/8, maps 1.
    pub qr_interval: Option<f64>,
    /// Number of exponents (default all).
    pub exponents: Option<usize>,
    /// Initial conditions (1: the file's, with block error bars; K > 1: sampled on the attractor).
    pub ics: usize,
    pub seed: u64,
    pub rtol: f64,
    pub atol: f64,
    /// Points of the correlation-dimension estimate (0 skips it).
    pub correlation_points: usize,
    /// Cancellation (e.g. Ctrl-C, connected by the front end): [`compute`] stops at its next
    /// check with [`InvariantsError::Interrupted`].
    pub cancel: Cancel,
}

impl Default for InvariantSettings {
    fn default() -> Self {
        InvariantSettings {
            span: None,
            transient: None,
            qr_interval: None,
            exponents: None,
            ics: 1,
            seed: 0,
            rtol: 1e-9,
            atol: 1e-9,
            correlation_points: 20000,
            cancel: Cancel::new(),
        }
    }
}

/// A definition file's reference values of the invariants (literature and dysts), where given.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReferenceValues {
    pub lyapunov_spectrum: Option<Vec<f64>>,
    pub lyapunov_spectrum_dysts: Option<Vec<f64>>,
    pub kaplan_yorke_dimension: Option<f64>,
    pub kaplan_yorke_dimension_dysts: Option<f64>,
    pub pesin_entropy_dysts: Option<f64>,
    pub maximum_lyapunov_dysts: Option<f64>,
    pub correlation_dimension_dysts: Option<f64>,
    pub multiscale_entropy_dysts: Option<f64>,
}

impl ReferenceValues {
    /// The `[reference]` values of `sys`'s definition file.
    pub fn of(sys: &CompiledSystem) -> ReferenceValues {
        let spec = &sys.info().spec;
        let n = |k: &str| spec.reference_number(k);
        ReferenceValues {
            lyapunov_spectrum: spec.reference_array("lyapunov_spectrum"),
            lyapunov_spectrum_dysts: spec.reference_array("lyapunov_spectrum_dysts"),
            kaplan_yorke_dimension: n("kaplan_yorke_dimension"),
            kaplan_yorke_dimension_dysts: n("kaplan_yorke_dimension_dysts"),
            pesin_entropy_dysts: n("pesin_entropy_dysts"),
            maximum_lyapunov_dysts: n("maximum_lyapunov_dysts"),
            correlation_dimension_dysts: n("correlation_dimension_dysts"),
            multiscale_entropy_dysts: n("multiscale_entropy_dysts"),
        }
    }
}

/// The invariants of a system beside its file's reference values, with their units: the serde
/// form is `phaseflow invariants --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvariantsReport {
    #[serde(flatten)]
    pub invariants: Invariants,
    /// `"per time unit"` (flows, delay equations) or `"per iteration"` (maps).
    pub units: &'static str,
    pub reference: ReferenceValues,
}

impl InvariantsReport {
    /// `invariants` of `sys` with the reference values of its file.
    pub fn new(sys: &CompiledSystem, invariants: Invariants) -> InvariantsReport {
        let units = if invariants.kind == "map" {
            "per iteration"
        } else {
            "per time unit"
        };
        InvariantsReport {
            invariants,
            units,
            reference: ReferenceValues::of(sys),
        }
    }
}

/// The invariants of one system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invariants {
    pub system: String,
    pub kind: String,
    pub dimension: usize,
    /// Lyapunov exponents, decreasing (per time unit; per iteration for maps).
    pub lyapunov_spectrum: Vec<f64>,
    pub lyapunov_errors: Vec<f64>,
    pub sum: f64,
    pub kaplan_yorke_dimension: f64,
    pub pesin_entropy: f64,
    pub maximum_lyapunov_two_trajectories: Option<f64>,
    pub maximum_lyapunov_two_trajectories_error: Option<f64>,
    pub correlation_dimension: Option<f64>,
    pub correlation_dimension_error: Option<f64>,
    pub correlation_fit_range: Option<(f64, f64)>,
    /// Sample entropy SampEn(2, 0.2σ) of the first coordinate (3000 samples at 20 per period)
    /// and the multiscale-entropy curve for coarse-graining scales 1 … 5.
    pub sample_entropy: Option<f64>,
    pub multiscale_entropy: Vec<Option<f64>>,
    /// Dominant period of each coordinate from its power spectrum (time units; first 4000
    /// samples at 20 per period). A coordinate with irregular slow switching (Lorenz x, y) has a
    /// red spectrum and a long dominant period; the oscillation shows in the others (Lorenz z).
    pub dominant_periods: Vec<Option<f64>>,
    pub span: f64,
    pub transient: f64,
    pub qr_interval: f64,
    pub initial_conditions: usize,
    pub error_bars: String,
    pub wall_seconds: f64,
}

/// Why invariants could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum InvariantsError {
    #[error("at least one initial condition is needed")]
    NoInitialCondition,
    /// A setting is out of range (the message names it by its command-line spelling).
    #[error("{0}")]
    Invalid(String),
    /// Sampling the initial conditions on the attractor failed.
    #[error("sampling initial conditions on the attractor: {0}")]
    Attractor(crate::simulate::RunError),
    /// The augmented (variational) integration failed, after the retries with shorter QR
    /// intervals.
    #[error("{system}: {error}")]
    Integration {
        system: String,
        error: crate::integrate::IntegrationError,
    },
    /// [`InvariantSettings::cancel`] was set before the computation ended.
    #[error("interrupted")]
    Interrupted,
}

impl From<crate::control::Interrupted> for InvariantsError {
    fn from(_: crate::control::Interrupted) -> InvariantsError {
        InvariantsError::Interrupted
    }
}

/// Refuses given settings out of range before any work: the span, the QR interval and the
/// tolerances must be finite and > 0 (rtol ≥ 0), the transient finite and ≥ 0 (an infinite
/// transient ran forever).
fn check_settings(s: &InvariantSettings) -> Result<(), InvariantsError> {
    let bad = |m: String| Err(InvariantsError::Invalid(m));
    for (v, name) in [
        (s.span, "--t-end"),
        (s.qr_interval, "--qr-interval"),
        (Some(s.atol), "--atol"),
    ] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
            return bad(format!("{name} must be a finite number > 0, got {v}"));
        }
    }
    for (v, name) in [(s.transient, "--transient"), (Some(s.rtol), "--rtol")] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            return bad(format!("{name} must be a finite number >= 0, got {v}"));
        }
    }
    Ok(())
}

/// Computes every invariant of `sys` (see the module docs); delay equations get their leading
/// exponents and the quantities derived from them (see `dde_invariants`).
pub fn compute(sys: &CompiledSystem, s: &InvariantSettings) -> Result<Invariants, InvariantsError> {
    let started = std::time::Instant::now();
    check_settings(s)?;
    let m = sys.model();
    let map = m.kind == Kind::Map;
    if m.kind == Kind::Dde {
        return dde_invariants(sys, s, started);
    }
    if s.ics == 0 {
        return Err(InvariantsError::NoInitialCondition);
    }
    let opts = SpectrumOptions {
        exponents: s.exponents.unwrap_or(usize::MAX),
        transient: s
            .transient
            .unwrap_or(if map { 1000.0 } else { 20.0 * m.period }),
        span: s.span.unwrap_or(if map { 1e5 } else { 2000.0 * m.period }),
        qr_interval: s
            .qr_interval
            .unwrap_or(if map { 1.0 } else { m.period / 8.0 }),
        blocks: 10,
        rtol: s.rtol,
        atol: s.atol,
        cancel: s.cancel.clone(),
    };
    let ics: Vec<Vec<f64>> = if s.ics == 1 {
        vec![m.initial_condition.clone()]
    } else {
        s.cancel.check()?;
        simulate::attractor_initial_conditions(sys, &SolverOptions::default(), s.ics, s.seed)
            .map_err(InvariantsError::Attractor)?
    };
    // tangent vectors that grow too much between re-orthonormalisations (strongly contracting or
    // stiff directions) make the augmented integration fail: retry with a QR interval 4× and 16×
    // shorter before giving up
    let mut opts = opts;
    let mut runs = Vec::new();
    'attempts: for attempt in 0..3 {
        runs.clear();
        for x0 in &ics {
            match spectrum(sys, m.t0, x0, &opts) {
                Ok(r) => runs.push(r),
                Err(IntegrationError::Interrupted { .. }) => {
                    return Err(InvariantsError::Interrupted)
                }
                Err(e) if attempt < 2 => {
                    let _ = e;
                    opts.qr_interval /= 4.0;
                    continue 'attempts;
                }
                Err(error) => {
                    return Err(InvariantsError::Integration {
                        system: m.name.clone(),
                        error,
                    })
                }
            }
        }
        break;
    }
    let k = runs[0].exponents.len();
    let (exponents, errors): (Vec<f64>, Vec<f64>) = if runs.len() == 1 {
        (runs[0].exponents.clone(), runs[0].errors.clone())
    } else {
        (0..k)
            .map(|i| {
                let v: Vec<f64> = runs.iter().map(|r| r.exponents[i]).collect();
                let n = v.len() as f64;
                let mean = v.iter().sum::<f64>() / n;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
                (mean, (var / n).sqrt())
            })
            .unzip()
    };
    let two = match max_exponent_two_trajectories(sys, m.t0, &m.initial_condition, &opts) {
        Err(IntegrationError::Interrupted { .. }) => return Err(InvariantsError::Interrupted),
        r => r.ok(),
    };
    let mut first_coordinate: Vec<f64> = Vec::new();
    let mut columns: Vec<Vec<f64>> = Vec::new();
    let mut sample_dt = 1.0;
    let corr = if s.correlation_points >= 100 {
        let n = s.correlation_points;
        let (sampling, theiler) = if map {
            (
                simulate::Sampling::iterations(m.t0 + opts.transient.round(), n),
                0,
            )
        } else {
            (
                simulate::Sampling::per_period(m.t0 + opts.transient, m.period, n, 20),
                20,
            )
        };
        let ro = simulate::RunOptions::new(SolverOptions::default());
        let rec = simulate::record(sys, &ro, &m.initial_condition, &sampling, &mut |_| {
            !s.cancel.is_cancelled()
        });
        s.cancel.check()?;
        rec.ok()
            .map(|rec| {
                let d = rec.dim;
                first_coordinate = rec.state.iter().step_by(d).copied().collect();
                let rows = (rec.state.len() / d).min(4000);
                columns = (0..d)
                    .map(|c| (0..rows).map(|r| rec.state[r * d + c]).collect())
                    .collect();
                sample_dt = if rec.time.len() > 1 {
                    rec.time[1] - rec.time[0]
                } else {
                    1.0
                };
                let stds = super::stats::column_stds(&rec.state, d);
                let size = stds.iter().map(|v| v * v).sum::<f64>().sqrt();
                correlation_dimension(&rec.state, d, theiler, 0.5 * size, &s.cancel)
            })
            .transpose()?
            .flatten()
    } else {
        None
    };
    s.cancel.check()?;
    let head = &first_coordinate[..first_coordinate.len().min(3000)];
    let (sample_entropy, multiscale_entropy) = if head.len() >= 100 {
        let mse = super::timeseries::multiscale_entropy(head, 2, 0.2, 5);
        (mse[0], mse)
    } else {
        (None, Vec::new())
    };
    let dominant_periods = columns
        .iter()
        .map(|c| super::stats::dominant_period(c, sample_dt))
        .collect();
    Ok(Invariants {
        sample_entropy,
        multiscale_entropy,
        dominant_periods,
        system: m.name.clone(),
        kind: m.kind.as_str().into(),
        dimension: m.dim(),
        sum: exponents.iter().sum(),
        kaplan_yorke_dimension: kaplan_yorke(&exponents),
        pesin_entropy: pesin_entropy(&exponents),
        lyapunov_spectrum: exponents,
        lyapunov_errors: errors,
        maximum_lyapunov_two_trajectories: two.map(|v| v.0),
        maximum_lyapunov_two_trajectories_error: two.map(|v| v.1),
        correlation_dimension: corr.as_ref().map(|c| c.dimension),
        correlation_dimension_error: corr.as_ref().map(|c| c.error),
        correlation_fit_range: corr.as_ref().map(|c| c.fit_range),
        span: opts.span,
        transient: opts.transient,
        qr_interval: opts.qr_interval,
        initial_conditions: ics.len(),
        error_bars: if ics.len() == 1 {
            "standard error over 10 blocks".into()
        } else {
            "standard error over initial conditions".into()
        },
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Delay equations: the leading exponents ([`super::lyapunov::dde_spectrum`]; default 3 — the
/// leading one, the zero exponent of the flow and the first contracting one, enough for the
/// Kaplan–Yorke dimension of the low-dimensional attractors of the catalogue), spans in units of
/// the longest delay: default transient 20 τ, span 500 τ, 100 history samples per τ. The first
/// column of the finite-difference QR method is two-trajectory renormalisation itself, so λ1 is
/// also reported as the two-trajectory value.
fn dde_invariants(
    sys: &CompiledSystem,
    s: &InvariantSettings,
    started: std::time::Instant,
) -> Result<Invariants, InvariantsError> {
    use crate::integrate::DelaySystem;
    let m = sys.model();
    let tau = sys.lags().iter().map(|l| l.1).fold(0.0f64, f64::max);
    let opts = SpectrumOptions {
        exponents: s.exponents.unwrap_or(3),
        transient: s.transient.unwrap_or(20.0 * tau),
        span: s.span.unwrap_or(500.0 * tau),
        qr_interval: tau,
        blocks: 10,
        rtol: s.rtol.min(1e-11),
        atol: s.atol.min(1e-11),
        cancel: s.cancel.clone(),
    };
    let sp = super::lyapunov::dde_spectrum(sys, m.t0, &m.initial_condition, &opts, 100).map_err(
        |error| match error {
            IntegrationError::Interrupted { .. } => InvariantsError::Interrupted,
            error => InvariantsError::Integration {
                system: m.name.clone(),
                error,
            },
        },
    )?;
    let (l, e) = (sp.exponents[0], sp.errors[0]);
    Ok(Invariants {
        system: m.name.clone(),
        kind: m.kind.as_str().into(),
        dimension: m.dim(),
        sum: sp.exponents.iter().sum(),
        // a truncated spectrum whose sum stays ≥ 0 bounds D_KY only from below: not reported
        kaplan_yorke_dimension: if sp.exponents.iter().sum::<f64>() < 0.0 {
            kaplan_yorke(&sp.exponents)
        } else {
            f64::NAN
        },
        pesin_entropy: pesin_entropy(&sp.exponents),
        lyapunov_spectrum: sp.exponents,
        lyapunov_errors: sp.errors,
        maximum_lyapunov_two_trajectories: Some(l),
        maximum_lyapunov_two_trajectories_error: Some(e),
        correlation_dimension: None,
        correlation_dimension_error: None,
        correlation_fit_range: None,
        sample_entropy: None,
        multiscale_entropy: Vec::new(),
        dominant_periods: Vec::new(),
        span: opts.span,
        transient: opts.transient,
        qr_interval: tau,
        initial_conditions: 1,
        error_bars: "standard error over 10 blocks (leading exponents of the discretised history, 100 samples per delay, finite-difference QR every delay)".into(),
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}
