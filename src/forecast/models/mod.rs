//! The native forecasters, their hyperparameters and the grids the benchmark tunes them over.
//!
//! | name | model | tuned over (validation split of each system) |
//! |---|---|---|
//! | `naive` | last value of the context | — |
//! | `mean` | training mean | — |
//! | `seasonal_naive` | repeats the last season | season ∈ {½, 1, 2} periods |
//! | `parroting` | context parroting (Zhang & Gilpin 2025) | match length ∈ {5, 20, 50} % of a period, min 2 |
//! | `linear` | ridge VAR on lags (darts' LinearRegression) | lags ∈ {1, 5, 10, 25, 50} |
//! | `nvar` | next-generation reservoir computer | lags ∈ {2, 3} × skip ∈ {1, 5, 10} × ridge ∈ {1e-6, 1e-4, 1e-2} |
//! | `esn` | echo state network, 300 units | radius ∈ {0.6, 0.9, 1.2} × leak ∈ {0.3, 1} × ridge ∈ {1e-6, 1e-3} |
//! | `random_features` | random Fourier feature ridge, 300 features | lags ∈ {2, 4} × lengthscale ∈ {1, 3} × ridge ∈ {1e-6, 1e-3} |
//! | `mlp` | burn MLP on delay vectors, 2 × 32 hidden (feature `learn`) | skip ∈ {2, 8} |
//!
//! Skips and season lengths are in steps, derived from the data set's points per period. All
//! random draws come from the benchmark seed, so a forecast is reproducible bit for bit.

pub mod baseline;
pub mod delay;
pub mod esn;
#[cfg(feature = "learn")]
pub mod mlp;

use super::{ForecastError, Forecaster, Scaler, Series};
use std::collections::BTreeMap;

/// Standardised states beyond this magnitude count as a diverged forecast (the rest is NaN).
pub const DIVERGED: f64 = 1e3;

/// Whether a forecast value (in the model's standardised units) means divergence: not finite or
/// beyond ±[`DIVERGED`].
pub fn diverged(v: f64) -> bool {
    !v.is_finite() || v.abs() > DIVERGED
}

/// A delay embedding: `lags` = k steps `skip` = s apart, u_t = (z_t, z_{t−s}, …, z_{t−(k−1)s}).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delays {
    pub lags: usize,
    pub skip: usize,
}

impl Delays {
    /// At least one lag, skip at least 1.
    pub fn new(lags: usize, skip: usize) -> Delays {
        Delays {
            lags: lags.max(1),
            skip: skip.max(1),
        }
    }

    /// Steps of history one delay vector spans: (k − 1)·s + 1.
    pub fn span(&self) -> usize {
        (self.lags - 1) * self.skip + 1
    }

    /// Appends u_t for row `t` of the row-major values `z` (`d` per row) to `out`.
    pub fn push(&self, z: &[f64], d: usize, t: usize, out: &mut Vec<f64>) {
        for l in 0..self.lags {
            let r = t - l * self.skip;
            out.extend_from_slice(&z[r * d..(r + 1) * d]);
        }
    }
}

/// Iterates a one-step map from the end of a context: the last `span` steps of the context,
/// standardised by `scaler`, start the history z; for each of `horizon` steps `step(z, t, next)`
/// writes z_{t+1} given the history up to row t (row-major, `context.dim` per row) and it is
/// appended. After the first diverged value (see [`diverged`]) the rest of the forecast is NaN and
/// `step` is not called again. Returns the forecast in the context's units, or
/// [`ForecastError::TooShort`] (naming `model`) when the context has fewer than `span` steps.
pub fn rollout(
    model: &str,
    scaler: &Scaler,
    context: &Series,
    span: usize,
    horizon: usize,
    mut step: impl FnMut(&[f64], usize, &mut [f64]),
) -> Result<Series, ForecastError> {
    if context.len() < span {
        return Err(ForecastError::TooShort {
            model: model.into(),
            len: context.len(),
            need: span,
        });
    }
    let d = context.dim;
    let mut z = scaler.apply(&context.tail(span)).values;
    z.reserve(horizon * d);
    let mut next = vec![0.0; d];
    let mut stopped = false;
    for _ in 0..horizon {
        if stopped {
            z.extend(std::iter::repeat_n(f64::NAN, d));
            continue;
        }
        let t = z.len() / d - 1;
        step(&z, t, &mut next);
        stopped = next.iter().any(|v| diverged(*v));
        z.extend_from_slice(&next);
    }
    Ok(scaler.invert(&Series::new(z.split_off(span * d), d)))
}

/// The native forecasters, in leaderboard order.
pub const NATIVE: &[&str] = &[
    "naive",
    "mean",
    "seasonal_naive",
    "parroting",
    "linear",
    "nvar",
    "esn",
    "random_features",
    #[cfg(feature = "learn")]
    "mlp",
];

/// Hyperparameters of one configuration, by name (all numeric; integers stored as f64).
pub type Hyper = BTreeMap<String, f64>;

/// What a model may know about the data set besides the series: the sampling in points per
/// (dominant) period, and the seed of its random draws.
#[derive(Debug, Clone, Copy)]
pub struct ModelContext {
    pub points_per_period: f64,
    pub seed: u64,
}

fn hyper(pairs: &[(&str, f64)]) -> Hyper {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn steps(x: f64) -> f64 {
    x.round().max(1.0)
}

/// The error for `mlp` in a build without the `learn` feature (no burn).
#[cfg(not(feature = "learn"))]
fn without_learn(kind: &str) -> String {
    format!("forecaster '{kind}': this build has no score networks: rebuild with the default feature `learn`")
}

/// Why a native forecaster could not be named, configured or built (the message names the
/// model and the setting).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Invalid(String),
}

/// The message, for the benchmark's per-pair failure records.
impl From<ModelError> for String {
    fn from(e: ModelError) -> String {
        e.to_string()
    }
}

/// The hyperparameter grid of a native model (one empty configuration for the untuned ones).
pub fn grid(kind: &str, ctx: &ModelContext) -> Result<Vec<Hyper>, ModelError> {
    grid_inner(kind, ctx).map_err(ModelError::Invalid)
}

fn grid_inner(kind: &str, ctx: &ModelContext) -> Result<Vec<Hyper>, String> {
    let pp = ctx.points_per_period.max(2.0);
    let mut g = Vec::new();
    match kind {
        "naive" | "mean" => g.push(Hyper::new()),
        "seasonal_naive" => {
            for f in [0.5, 1.0, 2.0] {
                g.push(hyper(&[("season", steps(f * pp))]));
            }
        }
        "parroting" => {
            for f in [0.05, 0.2, 0.5] {
                g.push(hyper(&[("match", steps(f * pp).max(2.0))]));
            }
        }
        "linear" => {
            for lags in [1.0, 5.0, 10.0, 25.0, 50.0] {
                g.push(hyper(&[("lags", lags)]));
            }
        }
        "nvar" => {
            for lags in [2.0, 3.0] {
                for skip in [1.0, 5.0, 10.0] {
                    for ridge in [1e-6, 1e-4, 1e-2] {
                        g.push(hyper(&[
                            ("lags", lags),
                            ("skip", steps(skip * pp / 100.0)),
                            ("ridge", ridge),
                        ]));
                    }
                }
            }
        }
        "esn" => {
            for radius in [0.6, 0.9, 1.2] {
                for leak in [0.3, 1.0] {
                    for ridge in [1e-6, 1e-3] {
                        g.push(hyper(&[
                            ("units", 300.0),
                            ("radius", radius),
                            ("leak", leak),
                            ("ridge", ridge),
                        ]));
                    }
                }
            }
        }
        "random_features" => {
            for lags in [2.0, 4.0] {
                for ls in [1.0, 3.0] {
                    for ridge in [1e-6, 1e-3] {
                        g.push(hyper(&[
                            ("lags", lags),
                            ("skip", steps(5.0 * pp / 100.0)),
                            ("features", 300.0),
                            ("lengthscale", ls),
                            ("ridge", ridge),
                        ]));
                    }
                }
            }
        }
        #[cfg(not(feature = "learn"))]
        "mlp" => return Err(without_learn(kind)),
        #[cfg(feature = "learn")]
        "mlp" => {
            for skip in [2.0, 8.0] {
                g.push(hyper(&[("lags", 4.0), ("skip", steps(skip * pp / 100.0))]));
            }
        }
        other => return Err(unknown(other)),
    }
    // the grid is a set: coarse sampling can map two skips to the same step count
    g.dedup();
    Ok(g)
}

/// The hyperparameter names [`build`] reads for a native model.
pub fn hyperparameter_names(kind: &str) -> Result<&'static [&'static str], ModelError> {
    hyperparameter_names_inner(kind).map_err(ModelError::Invalid)
}

fn hyperparameter_names_inner(kind: &str) -> Result<&'static [&'static str], String> {
    Ok(match kind {
        "naive" | "mean" => &[],
        "seasonal_naive" => &["season"],
        "parroting" => &["match"],
        "linear" => &["lags", "skip", "ridge", "standardise", "increment"],
        "nvar" => &["lags", "skip", "ridge", "standardise", "increment", "order"],
        "random_features" => &[
            "lags",
            "skip",
            "ridge",
            "standardise",
            "increment",
            "features",
            "lengthscale",
        ],
        "esn" => &[
            "units",
            "degree",
            "radius",
            "leak",
            "input",
            "bias",
            "ridge",
            "washout",
            "increment",
            "standardise",
        ],
        "mlp" => &["lags", "skip", "width", "layers", "steps", "lr"],
        other => return Err(unknown(other)),
    })
}

/// The values a hyperparameter may take (the same name means the same thing in every model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HyperRange {
    /// A whole number in `min..=max`.
    Integer { min: u64, max: u64 },
    /// 0 (off) or 1 (on).
    Flag,
    /// A finite real number above `min` (`min` itself allowed when `closed`), at most `max`.
    Real { min: f64, closed: bool, max: f64 },
}

impl std::fmt::Display for HyperRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            HyperRange::Integer { min, max } if max == min + 1 => write!(f, "{min} or {max}"),
            HyperRange::Integer { min, max } => write!(f, "an integer from {min} to {max}"),
            HyperRange::Flag => write!(f, "0 or 1"),
            HyperRange::Real { min, closed, max } => {
                let op = if closed { "≥" } else { ">" };
                if max.is_finite() {
                    write!(f, "a number {op} {min} and ≤ {max}")
                } else {
                    write!(f, "a finite number {op} {min}")
                }
            }
        }
    }
}

/// The valid range of hyperparameter `name` (see [`build`] for their meaning). Sizes are bounded
/// so that no setting asks for unbounded memory: `lags` ≤ 1000, `units`/`features`/`width`/
/// `degree` ≤ 10^4 (ridge systems of that order), `layers` ≤ 100, step counts ≤ 10^9.
pub fn hyperparameter_range(name: &str) -> Option<HyperRange> {
    const STEPS: u64 = 1_000_000_000;
    let int = |min, max| Some(HyperRange::Integer { min, max });
    let real = |min, closed, max| Some(HyperRange::Real { min, closed, max });
    match name {
        "season" | "skip" | "steps" => int(1, STEPS),
        "match" => int(2, STEPS),
        "washout" => int(0, STEPS),
        "lags" => int(1, 1000),
        "units" | "features" | "width" | "degree" => int(1, 10_000),
        "layers" => int(1, 100),
        "order" => int(1, 2),
        "standardise" | "increment" => Some(HyperRange::Flag),
        "ridge" | "input" | "bias" => real(0.0, true, f64::INFINITY),
        "radius" => real(0.0, true, 1e3),
        "leak" => real(0.0, false, 1.0),
        "lengthscale" | "lr" => real(0.0, false, f64::INFINITY),
        _ => None,
    }
}

/// Checks a hyperparameter of a native model: a name the model reads, with a value in its
/// [`hyperparameter_range`]; the error names `MODEL.NAME`, the value and the valid range.
pub fn check_hyperparameter(kind: &str, name: &str, value: f64) -> Result<(), ModelError> {
    let names = hyperparameter_names(kind)?;
    if !names.contains(&name) {
        return Err(ModelError::Invalid(format!(
            "{kind} has no hyperparameter '{name}' (it has: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    let Some(range) = hyperparameter_range(name) else {
        return Ok(());
    };
    let ok = value.is_finite()
        && match range {
            HyperRange::Integer { min, max } => {
                value.fract() == 0.0 && value >= min as f64 && value <= max as f64
            }
            HyperRange::Flag => value == 0.0 || value == 1.0,
            HyperRange::Real { min, closed, max } => {
                (value > min || (closed && value == min)) && value <= max
            }
        };
    if ok {
        Ok(())
    } else {
        Err(ModelError::Invalid(format!(
            "{kind}.{name} = {value}: must be {range}"
        )))
    }
}

fn unknown(kind: &str) -> String {
    format!(
        "unknown forecaster '{kind}' (native: {}; external models via --external NAME=COMMAND)",
        NATIVE.join(", ")
    )
}

/// Builds a native forecaster from its hyperparameters; missing ones take defaults. Beyond the
/// tuned ones of the table above, every model reads:
///
/// - `linear`, `nvar`, `random_features`: `lags`, `skip`, `ridge` (relative), `standardise`
///   (1/0), `increment` (1: predict z_{t+1} − z_t, 0: z_{t+1}; default 0 for `linear`, 1 else);
///   `nvar`: `order` (2: quadratic monomials, 1: linear features only, as reservoirpy's NVAR
///   with order = 1); `random_features`: `features`, `lengthscale`;
/// - `esn`: `units`, `degree` (non-zeros per reservoir row), `radius`, `leak`, `input`, `bias`,
///   `ridge`, `washout`, `increment`, `standardise`;
/// - `mlp`: `lags`, `skip`, `width`, `layers`, `steps`, `lr`;
/// - `seasonal_naive`: `season`; `parroting`: `match` (steps).
pub fn build(kind: &str, h: &Hyper, ctx: &ModelContext) -> Result<Box<dyn Forecaster>, ModelError> {
    build_inner(kind, h, ctx).map_err(ModelError::Invalid)
}

fn build_inner(kind: &str, h: &Hyper, ctx: &ModelContext) -> Result<Box<dyn Forecaster>, String> {
    for (k, v) in h {
        check_hyperparameter(kind, k, *v)?;
    }
    let get = |k: &str, default: f64| h.get(k).copied().unwrap_or(default);
    let n = |k: &str, default: f64| get(k, default).round().max(1.0) as usize;
    let flag = |k: &str| get(k, 1.0) != 0.0;
    let target = |default: f64| {
        if get("increment", default) != 0.0 {
            delay::Target::Increment
        } else {
            delay::Target::Next
        }
    };
    let delay_model = |label, features, target, ridge| {
        let mut m = delay::DelayRegression::new(
            label,
            n("lags", 2.0),
            n("skip", 1.0),
            features,
            target,
            get("ridge", ridge),
        );
        m.standardise = flag("standardise");
        Box::new(m)
    };
    let pp = ctx.points_per_period.max(2.0);
    Ok(match kind {
        "naive" => Box::new(baseline::Naive),
        "mean" => Box::new(baseline::Mean::default()),
        "seasonal_naive" => Box::new(baseline::SeasonalNaive {
            season: n("season", pp),
        }),
        "parroting" => Box::new(baseline::Parroting {
            match_length: n("match", 0.2 * pp),
        }),
        "linear" => delay_model("linear", delay::Features::Linear, target(0.0), 1e-10),
        "nvar" => delay_model(
            "nvar",
            if get("order", 2.0) >= 2.0 {
                delay::Features::Quadratic
            } else {
                delay::Features::Linear
            },
            target(1.0),
            1e-4,
        ),
        "random_features" => delay_model(
            "random_features",
            delay::Features::RandomFourier {
                count: n("features", 300.0),
                lengthscale: get("lengthscale", 1.0),
                seed: ctx.seed,
            },
            target(1.0),
            1e-6,
        ),
        "esn" => Box::new(esn::Esn::new(esn::EsnSettings {
            units: n("units", 300.0),
            spectral_radius: get("radius", 0.9),
            leak: get("leak", 1.0),
            input_scale: get("input", 0.5),
            bias_scale: get("bias", 0.1),
            ridge: get("ridge", 1e-6),
            washout: n("washout", 100.0),
            degree: n("degree", 10.0),
            increment: get("increment", 1.0) != 0.0,
            standardise: flag("standardise"),
            seed: ctx.seed,
        })),
        #[cfg(not(feature = "learn"))]
        "mlp" => return Err(without_learn(kind)),
        #[cfg(feature = "learn")]
        "mlp" => Box::new(mlp::MlpForecaster::new(mlp::MlpSettings {
            lags: n("lags", 4.0),
            skip: n("skip", 2.0),
            hidden: vec![n("width", 32.0); n("layers", 2.0)],
            steps: n("steps", 300.0),
            learning_rate: get("lr", 3e-3),
            seed: ctx.seed,
        })),
        other => return Err(unknown(other)),
    })
}
