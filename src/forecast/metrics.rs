//! Forecast-skill metrics, each pinned to the definition in dysts 0.96 (`dysts/metrics.py`).
//!
//! Every series is a row-major `&[f64]` of shape `T × D`: row `t` is `series[t*dim..(t+1)*dim]`,
//! and `T = series.len() / dim`. Unless a function says otherwise, `truth` and `pred` must
//! have the same shape.
//!
//! # Conventions (the same as dysts')
//! * "mean" is over all `T·D` entries (the arrays are flattened) unless a metric is stated
//!   to be per dimension; per-dimension metrics (correlations, mutual information, spectral
//!   Hellinger distance) return the mean over the `D` columns.
//! * `ε = 1e-10` ([`EPS`]) is added to the denominators exactly where dysts adds it, so a
//!   near-zero denominator gives a huge but finite value, as in dysts (for example MAPE with
//!   a true value of 0 is `100·|pred|/1e-10`).
//! * Population statistics (`ddof = 0`) everywhere, as numpy's default.
//!
//! # Degenerate input
//! Every `f64`-valued function returns [`f64::NAN`] (it never panics) when `dim == 0`, a
//! series is empty, the lengths differ or are not a multiple of `dim`, or a denominator that
//! dysts does *not* guard with `ε` is zero (R² of a constant truth, a correlation of a
//! constant column, too few points for an estimator). The step-indexed functions return `0`
//! ([`valid_prediction_time`]) or an empty vector ([`error_vs_horizon`],
//! [`cumulative_smape`]) instead.
//!
//! # Randomised estimators
//! dysts estimates two metrics with numpy's global random state:
//! * mutual information (scikit-learn's `mutual_info_regression`) adds Gaussian noise of
//!   relative size 1e-10 to both variables before its deterministic Kraskov (KSG) count; the
//!   noise only decides how *tied* values are ordered. [`mutual_information`] reproduces the
//!   whole pipeline with the noise drawn from a seeded [`StdRng`]: on data without ties it
//!   equals dysts' value to rounding, with ties it is one draw of the same distribution.
//! * the KL divergence between attractors is a Monte Carlo average of `log p̂/q̂` over
//!   samples of `p̂`. [`kl_divergence`] draws them from a seeded [`StdRng`];
//!   [`kl_divergence_at_points`] is the deterministic part (the mean log ratio at given
//!   points), which matches dysts to rounding.
//!
//! Seeded results are reproducible for a given version of `rand` (its `StdRng` stream is
//! not promised to stay the same across `rand` releases).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The `ε` dysts adds to denominators (`eps=1e-10` in every dysts metric that has one).
pub const EPS: f64 = 1e-10;
/// Default valid-prediction-time threshold: cumulative sMAPE of 30 on the 0–200 scale.
pub const DEFAULT_VPT_THRESHOLD: f64 = 30.0;
/// The scale [`DEFAULT_VPT_THRESHOLD`] is expressed on.
pub const DEFAULT_VPT_SCALE: SmapeScale = SmapeScale::Percent200;
/// dysts' default number of frequency bins of the spectral Hellinger distance.
pub const DEFAULT_HELLINGER_BINS: usize = 100;
/// dysts' default number of Monte Carlo samples of the KL estimate.
pub const DEFAULT_KL_SAMPLES: usize = 1000;
/// dysts' default per-component variance of the KL estimate's Gaussian mixtures
/// (`sigma_scale=1.0`, used as the covariance `1.0·I`).
pub const DEFAULT_KL_VARIANCE: f64 = 1.0;
/// Number of neighbours of the KSG mutual-information estimate (scikit-learn's default, 3).
pub const MI_NEIGHBORS: usize = 3;

/// The scale of the symmetric mean absolute percentage error.
///
/// dysts' `smape(x, y, scaled=True)` (its default, and what its `compute_metrics` reports)
/// is [`SmapeScale::Percent100`]; `scaled=False` is [`SmapeScale::Percent200`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmapeScale {
    /// `100·mean(|x−y|/(|x|+|y|+ε))`, in `[0, 100]`.
    Percent100,
    /// `200·mean(|x−y|/(|x|+|y|+ε))`, in `[0, 200]` (the textbook sMAPE).
    Percent200,
}

impl SmapeScale {
    /// The factor in front of the mean ratio: 100 or 200.
    pub fn factor(self) -> f64 {
        match self {
            SmapeScale::Percent100 => 100.0,
            SmapeScale::Percent200 => 200.0,
        }
    }
}

/// Options of [`compute_metrics`]. [`Default`] reproduces dysts' defaults.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricOptions {
    /// Scale of the `"smape"` entry (dysts: [`SmapeScale::Percent100`]).
    pub smape_scale: SmapeScale,
    /// Season length `m` of the `"mase"` entry (dysts: 1).
    pub mase_season: usize,
    /// Training series (row-major `T_train × D`) for the naive scale of `"mase"`; `None`
    /// uses the truth itself, as dysts does when `y_train=None`.
    pub mase_train: Option<Vec<f64>>,
    /// Seed of the randomised estimators (mutual-information noise, KL sampling).
    pub seed: u64,
    /// Monte Carlo samples of `"kl_divergence"` (dysts: 1000).
    pub kl_samples: usize,
    /// Per-component variance of the KL mixtures (dysts: `sigma_scale=1.0`).
    pub kl_variance: f64,
    /// Frequency bins of `"hellinger_distance"` (dysts: 100).
    pub hellinger_bins: usize,
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions {
            smape_scale: SmapeScale::Percent100,
            mase_season: 1,
            mase_train: None,
            seed: 0,
            kl_samples: DEFAULT_KL_SAMPLES,
            kl_variance: DEFAULT_KL_VARIANCE,
            hellinger_bins: DEFAULT_HELLINGER_BINS,
        }
    }
}

/// `T` for two series of identical shape `T × dim` with `T ≥ 1`, else `None`.
fn rows(truth: &[f64], pred: &[f64], dim: usize) -> Option<usize> {
    if dim == 0 || truth.is_empty() || truth.len() != pred.len() || !truth.len().is_multiple_of(dim)
    {
        None
    } else {
        Some(truth.len() / dim)
    }
}

fn mean_of(n: usize, it: impl Iterator<Item = f64>) -> f64 {
    it.sum::<f64>() / n as f64
}

/// Mean of `f(truth_i, pred_i)` over all entries, `NaN` for degenerate shapes.
fn flat_mean(truth: &[f64], pred: &[f64], dim: usize, f: impl Fn(f64, f64) -> f64) -> f64 {
    match rows(truth, pred, dim) {
        None => f64::NAN,
        Some(_) => mean_of(truth.len(), truth.iter().zip(pred).map(|(&a, &b)| f(a, b))),
    }
}

fn column(series: &[f64], dim: usize, d: usize) -> Vec<f64> {
    series.iter().skip(d).step_by(dim).copied().collect()
}

fn mean_std(x: &[f64]) -> (f64, f64) {
    let m = mean_of(x.len(), x.iter().copied());
    let v = mean_of(x.len(), x.iter().map(|&v| (v - m) * (v - m)));
    (m, v.sqrt())
}

/// Mean squared error: `mean((y − ŷ)²)` over all `T·D` entries.
pub fn mse(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    flat_mean(truth, pred, dim, |a, b| (a - b) * (a - b))
}

/// Mean absolute error: `mean(|y − ŷ|)` over all `T·D` entries.
pub fn mae(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    flat_mean(truth, pred, dim, |a, b| (a - b).abs())
}

/// Root mean squared error: `sqrt(mse)`.
pub fn rmse(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    mse(truth, pred, dim).sqrt()
}

/// Normalised RMSE: `sqrt(mean_{t,d}((y_td − ŷ_td)² / (σ_d² + ε)))`, where `σ_d` is the
/// population standard deviation of column `d` of the *truth* (each dimension is normalised
/// by its own variance; the mean is over all `T·D` entries).
pub fn nrmse(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    let Some(_) = rows(truth, pred, dim) else {
        return f64::NAN;
    };
    let sigma: Vec<f64> = (0..dim)
        .map(|d| mean_std(&column(truth, dim, d)).1)
        .collect();
    nrmse_with_scale(truth, pred, dim, &sigma)
}

/// [`nrmse`] with explicit per-dimension scales `σ_d` (dysts' `scale=` argument), shape `D`.
pub fn nrmse_with_scale(truth: &[f64], pred: &[f64], dim: usize, sigma: &[f64]) -> f64 {
    if rows(truth, pred, dim).is_none() || sigma.len() != dim {
        return f64::NAN;
    }
    let s = truth.iter().zip(pred).enumerate().map(|(i, (&a, &b))| {
        let sd = sigma[i % dim];
        (a - b) * (a - b) / (sd * sd + EPS)
    });
    mean_of(truth.len(), s).sqrt()
}

/// Mean absolute ranged relative error, in percent:
/// `100·mean(|y − ŷ| / (max(y) − min(y) + ε))`, with one global range of the truth (over
/// all `T·D` entries, not per dimension).
pub fn marre(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    if rows(truth, pred, dim).is_none() {
        return f64::NAN;
    }
    let hi = truth.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lo = truth.iter().copied().fold(f64::INFINITY, f64::min);
    let range = hi - lo + EPS;
    100.0 * flat_mean(truth, pred, dim, |a, b| (a - b).abs() / range)
}

/// Coefficient of determination: `1 − Σ(y − ŷ)² / Σ(y − ȳ)²`, with `ȳ` the mean over all
/// `T·D` entries (one global mean, not per dimension). `NaN` if the truth is constant.
pub fn r2_score(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    if rows(truth, pred, dim).is_none() {
        return f64::NAN;
    }
    let m = mean_of(truth.len(), truth.iter().copied());
    let ss_res: f64 = truth
        .iter()
        .zip(pred)
        .map(|(&a, &b)| (a - b) * (a - b))
        .sum();
    let ss_tot: f64 = truth.iter().map(|&a| (a - m) * (a - m)).sum();
    if ss_tot == 0.0 {
        return f64::NAN;
    }
    1.0 - ss_res / ss_tot
}

/// Root mean squared log error with dysts' shift to the positive domain: each series is
/// shifted per dimension, `y'_td = y_td − min_t y_td + ε` (and the same for `ŷ` with *its
/// own* minima), then `sqrt(mean((ln(ŷ' + 1) − ln(y' + 1))²))` over all `T·D` entries.
pub fn rmsle(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    if rows(truth, pred, dim).is_none() {
        return f64::NAN;
    }
    let col_min = |s: &[f64]| -> Vec<f64> {
        let mut m = vec![f64::INFINITY; dim];
        for (i, &v) in s.iter().enumerate() {
            m[i % dim] = m[i % dim].min(v);
        }
        m
    };
    let (mt, mp) = (col_min(truth), col_min(pred));
    let s = truth.iter().zip(pred).enumerate().map(|(i, (&a, &b))| {
        let a = a - mt[i % dim] + EPS;
        let b = b - mp[i % dim] + EPS;
        let e = (b + 1.0).ln() - (a + 1.0).ln();
        e * e
    });
    mean_of(truth.len(), s).sqrt()
}

/// Symmetric mean absolute percentage error:
/// `factor·mean(|y − ŷ| / (|y| + |ŷ| + ε))` over all `T·D` entries, `factor` = 100
/// ([`SmapeScale::Percent100`], dysts' default `scaled=True`) or 200
/// ([`SmapeScale::Percent200`], `scaled=False`).
pub fn smape(truth: &[f64], pred: &[f64], dim: usize, scale: SmapeScale) -> f64 {
    scale.factor() * flat_mean(truth, pred, dim, smape_term)
}

fn smape_term(a: f64, b: f64) -> f64 {
    (a - b).abs() / (a.abs() + b.abs() + EPS)
}

/// Mean absolute percentage error, in percent (0–100 for errors up to the true value):
/// `100·mean(|(y − ŷ) / (y + ε)|)`. Note the denominator is `y + ε`, not `|y| + ε` (as in
/// dysts), so a true value of exactly `−ε` divides by zero.
pub fn mape(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    100.0 * flat_mean(truth, pred, dim, |a, b| ((a - b) / (a + EPS)).abs())
}

/// Weighted absolute percentage error, in percent: `100·Σ|y − ŷ| / (Σ|y| + ε)`.
pub fn wape(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    if rows(truth, pred, dim).is_none() {
        return f64::NAN;
    }
    let num: f64 = truth.iter().zip(pred).map(|(&a, &b)| (a - b).abs()).sum();
    let den: f64 = truth.iter().map(|a| a.abs()).sum();
    100.0 * num / (den + EPS)
}

/// Coefficient of variation of the error, in percent:
/// `100·std(y − ŷ) / (mean(y) + ε)`, with the population standard deviation of all `T·D`
/// errors and the mean of all `T·D` true values (signed: a negative-mean truth gives a
/// negative value).
pub fn coefficient_of_variation(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    if rows(truth, pred, dim).is_none() {
        return f64::NAN;
    }
    let err: Vec<f64> = truth.iter().zip(pred).map(|(&a, &b)| a - b).collect();
    let (_, sd) = mean_std(&err);
    100.0 * sd / (mean_of(truth.len(), truth.iter().copied()) + EPS)
}

/// Mean absolute scaled error: `mean|y − ŷ| / (s + ε)`, where the naive seasonal scale
/// `s = mean_{t ≥ m, d} |y_train[t,d] − y_train[t−m,d]|` is taken along the **time** axis of
/// the training series (`T_train × D`, row-major; `None` uses the truth itself, as dysts
/// does for `y_train=None`). Requires `0 < m < T_train`, else `NaN`.
///
/// This is dysts' `mase(y, ŷ, y_train, m, time_dim=0)`. dysts' *default* `time_dim=-1`
/// differences a `(T, D)` array along its last axis, i.e. across dimensions (and fails for
/// `D = 1`); that is not a seasonal naive forecast, so the time axis is pinned here.
pub fn mase(truth: &[f64], pred: &[f64], dim: usize, train: Option<&[f64]>, m: usize) -> f64 {
    if rows(truth, pred, dim).is_none() {
        return f64::NAN;
    }
    let train = train.unwrap_or(truth);
    if !train.len().is_multiple_of(dim) {
        return f64::NAN;
    }
    let t_train = train.len() / dim;
    if m == 0 || m >= t_train {
        return f64::NAN;
    }
    let n = (t_train - m) * dim;
    let s = mean_of(
        n,
        (m * dim..train.len()).map(|i| (train[i] - train[i - m * dim]).abs()),
    );
    mae(truth, pred, dim) / (s + EPS)
}

/// Average ranks (scipy's `rankdata(method="average")`), 1-based.
fn average_ranks(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let r = 0.5 * ((i + j) as f64 + 2.0);
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

fn is_constant(x: &[f64]) -> bool {
    x.iter().all(|&v| v == x[0])
}

fn has_nan(x: &[f64]) -> bool {
    x.iter().any(|v| v.is_nan())
}

/// Spearman's ρ of two columns (scipy `spearmanr`: Pearson correlation of average ranks, as
/// computed by `np.corrcoef`). `NaN` for fewer than 2 points, a constant column or a NaN.
fn spearman_1d(x: &[f64], y: &[f64]) -> f64 {
    if x.len() < 2 || has_nan(x) || has_nan(y) || is_constant(x) || is_constant(y) {
        return f64::NAN;
    }
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    let n = rx.len();
    let mx = mean_of(n, rx.iter().copied());
    let my = mean_of(n, ry.iter().copied());
    let f = (n - 1) as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (a, b) = (a - mx, b - my);
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    (sxy / f / (sxx / f).sqrt() / (syy / f).sqrt()).clamp(-1.0, 1.0)
}

/// Pearson's r of two columns (scipy `pearsonr`). `NaN` for fewer than 2 points or a
/// constant column.
fn pearson_1d(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n < 2 || is_constant(x) || is_constant(y) {
        return f64::NAN;
    }
    let mx = mean_of(n, x.iter().copied());
    let my = mean_of(n, y.iter().copied());
    let xm: Vec<f64> = x.iter().map(|v| v - mx).collect();
    let ym: Vec<f64> = y.iter().map(|v| v - my).collect();
    let norm = |v: &[f64]| {
        let mx = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
        mx * v.iter().map(|a| (a / mx) * (a / mx)).sum::<f64>().sqrt()
    };
    let (nx, ny) = (norm(&xm), norm(&ym));
    let r: f64 = xm.iter().zip(&ym).map(|(a, b)| (a / nx) * (b / ny)).sum();
    let r = r.clamp(-1.0, 1.0);
    if n == 2 {
        r.round()
    } else {
        r
    }
}

/// Kendall's τ-b of two columns (scipy `kendalltau`, default variant "b"):
/// `τ = (n_c − n_d) / sqrt((n₀ − n_x)(n₀ − n_y))` with `n_x`, `n_y` the pairs tied in `x`,
/// `y`. `NaN` if either column is constant (or has fewer than 2 points, or a NaN).
fn kendall_1d(x: &[f64], y: &[f64]) -> f64 {
    if has_nan(x) || has_nan(y) {
        return f64::NAN;
    }
    let n = x.len();
    let (mut s, mut nx, mut ny) = (0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[j].partial_cmp(&x[i]).map_or(0, |o| o as i64);
            let dy = y[j].partial_cmp(&y[i]).map_or(0, |o| o as i64);
            s += dx * dy;
            nx += (dx != 0) as i64;
            ny += (dy != 0) as i64;
        }
    }
    if nx == 0 || ny == 0 {
        return f64::NAN;
    }
    (s as f64 / (nx as f64).sqrt() / (ny as f64).sqrt()).clamp(-1.0, 1.0)
}

/// Mean over the `D` columns of a per-column statistic (`NaN` if any column gives `NaN`).
fn per_column(truth: &[f64], pred: &[f64], dim: usize, f: impl Fn(&[f64], &[f64]) -> f64) -> f64 {
    let Some(t) = rows(truth, pred, dim) else {
        return f64::NAN;
    };
    if t < 2 {
        return f64::NAN;
    }
    let s: f64 = (0..dim)
        .map(|d| f(&column(truth, dim, d), &column(pred, dim, d)))
        .sum();
    s / dim as f64
}

/// Spearman rank correlation, mean over the `D` columns of scipy's `spearmanr` (Pearson
/// correlation of the average ranks). `NaN` for `T < 2` or a constant column.
///
/// (dysts squeezes its input first, so for `T = 1, D > 1` it would correlate across
/// dimensions; here that is `NaN`.)
pub fn spearman(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    per_column(truth, pred, dim, spearman_1d)
}

/// dysts' `pearson`, reproduced faithfully **including its quirk**: for `D = 1` dysts calls
/// `spearmanr`, so this returns the Spearman rank correlation; for `D > 1` it is the mean
/// over columns of Pearson's `r = Σ(x − x̄)(y − ȳ) / sqrt(Σ(x − x̄)² Σ(y − ȳ)²)`. Use
/// [`pearson_r`] for the Pearson correlation at every `D`.
pub fn pearson(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    if dim == 1 {
        spearman(truth, pred, dim)
    } else {
        pearson_r(truth, pred, dim)
    }
}

/// Pearson correlation (scipy `pearsonr`), mean over the `D` columns, for every `D`
/// (without dysts' `D = 1` quirk, see [`pearson`]). `NaN` for `T < 2` or a constant column.
pub fn pearson_r(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    per_column(truth, pred, dim, pearson_1d)
}

/// Kendall rank correlation τ-b (scipy `kendalltau`, tie-corrected), mean over the `D`
/// columns. `NaN` for `T < 2` or a constant column. `O(T²)`.
pub fn kendall(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    per_column(truth, pred, dim, kendall_1d)
}

/// Digamma function ψ(x) for `x > 0` (recurrence up to `x ≥ 10`, then the asymptotic series;
/// absolute error ~1e-15).
fn digamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    // ψ(x) ~ ln x − 1/(2x) − Σ_k B_2k / (2k x^2k), truncated after x^-14
    let x2 = 1.0 / (x * x);
    let series = x2
        * (1.0 / 12.0
            - x2 * (1.0 / 120.0
                - x2 * (1.0 / 252.0
                    - x2 * (1.0 / 240.0
                        - x2 * (1.0 / 132.0 - x2 * (691.0 / 32760.0 - x2 / 12.0))))));
    acc + x.ln() - 0.5 / x - series
}

/// Standard normal draws (Box–Muller, both values of each pair used).
struct Gauss {
    rng: StdRng,
    spare: Option<f64>,
}

impl Gauss {
    fn new(seed: u64) -> Self {
        Gauss {
            rng: StdRng::seed_from_u64(seed),
            spare: None,
        }
    }

    fn next(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]
        let u2: f64 = self.rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }
}

/// scikit-learn's preprocessing of one continuous variable in `mutual_info_regression`:
/// divide by the population standard deviation (unless it is "zero"), then add
/// `1e-10·max(1, mean|x|)·N(0, 1)` noise.
fn mi_prepare(x: &[f64], near_zero: f64, g: &mut Gauss) -> Vec<f64> {
    let (_, sd) = mean_std(x);
    let sd = if sd <= near_zero { 1.0 } else { sd };
    let mut v: Vec<f64> = x.iter().map(|a| a / sd).collect();
    let amp = 1e-10 * mean_of(v.len(), v.iter().map(|a| a.abs())).max(1.0);
    for a in &mut v {
        *a += amp * g.next();
    }
    v
}

/// Kraskov–Stögbauer–Grassberger estimate (algorithm 1) exactly as scikit-learn's
/// `_compute_mi_cc`: `ψ(N) + ψ(k) − ⟨ψ(n_x + 1)⟩ − ⟨ψ(n_y + 1)⟩`, clipped at 0, where `ε_i`
/// is the Chebyshev distance to the `k`-th neighbour in the joint space and `n_x`, `n_y`
/// count the other points strictly within `ε_i` (radius `nextafter(ε_i, 0)`, inclusive).
fn ksg(x: &[f64], y: &[f64], k: usize) -> f64 {
    let n = x.len();
    let mut d = Vec::with_capacity(n);
    let (mut sx, mut sy) = (0.0, 0.0);
    for i in 0..n {
        d.clear();
        d.extend(
            (0..n)
                .filter(|&j| j != i)
                .map(|j| (x[i] - x[j]).abs().max((y[i] - y[j]).abs())),
        );
        let (_, kth, _) = d.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
        let r = if *kth > 0.0 { kth.next_down() } else { *kth };
        let nx = x.iter().filter(|&&v| (x[i] - v).abs() <= r).count() - 1;
        let ny = y.iter().filter(|&&v| (y[i] - v).abs() <= r).count() - 1;
        sx += digamma(nx as f64 + 1.0);
        sy += digamma(ny as f64 + 1.0);
    }
    let mi = digamma(n as f64) + digamma(k as f64) - sx / n as f64 - sy / n as f64;
    mi.max(0.0)
}

/// Mutual information (nats) between each true column and the matching predicted column,
/// mean over the `D` columns: dysts' `mutual_information`, i.e. scikit-learn's
/// `mutual_info_regression(y[:, d:d+1], ŷ[:, d])` with its defaults (KSG estimator with
/// `k = 3` neighbours on the std-scaled variables plus 1e-10-relative Gaussian noise, clipped
/// at 0).
///
/// The noise is drawn from `StdRng::seed_from_u64(seed)` (for each column: `T` draws for the
/// truth, then `T` for the prediction) instead of numpy's global state. The KSG count is a
/// function of the neighbour *ordering* only, which noise of that size changes only between
/// tied (or 1e-10-close) values: without ties the result equals dysts' to rounding, with
/// ties it is one draw from the same distribution as dysts' value. `NaN` for `T ≤ 3`.
pub fn mutual_information(truth: &[f64], pred: &[f64], dim: usize, seed: u64) -> f64 {
    let Some(t) = rows(truth, pred, dim) else {
        return f64::NAN;
    };
    if t <= MI_NEIGHBORS {
        return f64::NAN;
    }
    if has_nan(truth) || has_nan(pred) {
        return f64::NAN;
    }
    let mut g = Gauss::new(seed);
    let mut s = 0.0;
    for d in 0..dim {
        // sklearn: X (2-D) treats std < 10·machine-ε as zero, y (1-D) only an exact zero.
        let x = mi_prepare(&column(truth, dim, d), 10.0 * f64::EPSILON, &mut g);
        let y = mi_prepare(&column(pred, dim, d), 0.0, &mut g);
        s += ksg(&x, &y, MI_NEIGHBORS);
    }
    s / dim as f64
}

/// `log Σ_t exp(−|s − c_t|² / (2v))` over the rows `c_t` of `centers` (the log of an
/// isotropic Gaussian mixture density up to a constant shared by `p̂` and `q̂`).
fn log_mixture(s: &[f64], centers: &[f64], dim: usize, v: f64) -> f64 {
    // one-pass log-sum-exp: running maximum `m` and `acc = Σ exp(e − m)`
    let (mut m, mut acc) = (f64::NEG_INFINITY, 0.0);
    for c in centers.chunks_exact(dim) {
        let d2: f64 = s.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
        let e = -d2 / (2.0 * v);
        if e == f64::NEG_INFINITY {
            continue;
        } else if e > m {
            acc = acc * (m - e).exp() + 1.0;
            m = e;
        } else {
            acc += (e - m).exp();
        }
    }
    m + acc.ln()
}

/// The deterministic part of [`kl_divergence`]: `mean_s log(p̂(s)/q̂(s))` over the given
/// points (row-major `S × D`), where `p̂ = (1/T)Σ_t N(y_t, v·I)` and
/// `q̂ = (1/T)Σ_t N(ŷ_t, v·I)` are the equal-weight isotropic Gaussian mixtures centred on
/// the true and predicted states. Evaluated in log-sum-exp form, so where dysts' direct
/// ratio would underflow to `0/0` or `x/0` this stays finite. `NaN` for degenerate shapes or
/// `v ≤ 0`.
pub fn kl_divergence_at_points(
    truth: &[f64],
    pred: &[f64],
    dim: usize,
    points: &[f64],
    variance: f64,
) -> f64 {
    if rows(truth, pred, dim).is_none()
        || points.is_empty()
        || !points.len().is_multiple_of(dim)
        || variance.is_nan()
        || variance <= 0.0
    {
        return f64::NAN;
    }
    let n = points.len() / dim;
    let s = points
        .chunks_exact(dim)
        .map(|p| log_mixture(p, truth, dim, variance) - log_mixture(p, pred, dim, variance));
    mean_of(n, s)
}

/// KL divergence `KL(p̂ ‖ q̂)` between the attractors (dysts' `estimate_kl_divergence` with
/// `sigma_scale = variance`; dysts' default 1.0): `p̂` and `q̂` are equal-weight isotropic
/// Gaussian mixtures with covariance `variance·I` centred on the `T` true / predicted
/// states, and the estimate is the Monte Carlo mean of `log p̂(s)/q̂(s)` over `n_samples`
/// draws `s ~ p̂` (pick a true state uniformly, add `N(0, variance·I)`), see
/// [`kl_divergence_at_points`]. Note dysts' `sigma_scale` is a *variance*, not a standard
/// deviation. The Monte Carlo estimate can be slightly negative.
///
/// Sampling uses `StdRng::seed_from_u64(seed)` instead of numpy's global state, so the value
/// differs from dysts' by Monte Carlo error (standard error `sd(log p̂/q̂)/sqrt(n_samples)`).
/// dysts' `sigma_scale=None` (locally adapted widths) is not provided. `NaN` for degenerate
/// shapes, `n_samples == 0` or `variance ≤ 0`.
pub fn kl_divergence(
    truth: &[f64],
    pred: &[f64],
    dim: usize,
    n_samples: usize,
    variance: f64,
    seed: u64,
) -> f64 {
    let Some(t) = rows(truth, pred, dim) else {
        return f64::NAN;
    };
    if n_samples == 0 || variance.is_nan() || variance <= 0.0 {
        return f64::NAN;
    }
    let mut g = Gauss::new(seed);
    let sd = variance.sqrt();
    let mut points = Vec::with_capacity(n_samples * dim);
    for _ in 0..n_samples {
        let c = g.rng.random_range(0..t);
        for d in 0..dim {
            points.push(truth[c * dim + d] + sd * g.next());
        }
    }
    kl_divergence_at_points(truth, pred, dim, &points, variance)
}

/// `|X_k|²` for `k < bins` of the discrete Fourier transform `X_k = Σ_n x_n e^{−2πikn/T}`
/// (direct sums with exact phase reduction `kn mod T`; `O(T·bins)`).
fn power_spectrum(x: &[f64], bins: usize) -> Vec<f64> {
    let t = x.len();
    let w = std::f64::consts::TAU / t as f64;
    (0..bins)
        .map(|k| {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, &v) in x.iter().enumerate() {
                let ph = w * ((k * n) % t) as f64;
                re += v * ph.cos();
                im -= v * ph.sin();
            }
            re * re + im * im
        })
        .collect()
}

/// Spectral Hellinger distance, mean over the `D` columns (dysts'
/// `average_hellinger_distance`): for each column take the power spectrum `|FFT|²` of the
/// full length-`T` series, keep its first `B = min(num_freq_bins, T)` bins (indices
/// `0..B` of the *full* FFT: the DC bin included, and for `T ≤ B` the mirrored negative
/// frequencies too), normalise each to sum 1 (`p`, `q`), and
/// `H = sqrt(1 − Σ_k sqrt(p_k q_k))`, in `[0, 1]`.
///
/// Difference from dysts: `1 − Σ sqrt(p q)` is clamped at 0 (for identical spectra rounding
/// can make it `−2e-16`, whose square root dysts returns as `NaN`). `NaN` for an all-zero
/// column (zero power), `num_freq_bins == 0` or degenerate shapes.
pub fn hellinger_distance(truth: &[f64], pred: &[f64], dim: usize, num_freq_bins: usize) -> f64 {
    let Some(t) = rows(truth, pred, dim) else {
        return f64::NAN;
    };
    if num_freq_bins == 0 {
        return f64::NAN;
    }
    let bins = num_freq_bins.min(t);
    let mut total = 0.0;
    for d in 0..dim {
        let p = power_spectrum(&column(truth, dim, d), bins);
        let q = power_spectrum(&column(pred, dim, d), bins);
        let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
        let bc: f64 = p
            .iter()
            .zip(&q)
            .map(|(a, b)| ((a / sp) * (b / sq)).sqrt())
            .sum();
        let h2 = 1.0 - bc;
        if h2.is_nan() {
            return f64::NAN;
        }
        total += h2.max(0.0).sqrt();
    }
    total / dim as f64
}

/// Dynamic time warping cost as dysts' `dtw(...)[0]`: with the local cost
/// `c(i, j) = ‖y_i − ŷ_j‖₂` (Euclidean over the `D` components) and the usual recursion
/// `A(i, j) = c(i, j) + min(A(i−1, j), A(i, j−1), A(i−1, j−1))`, `A(0,0) = 0`,
/// `A(0, j>0) = A(i>0, 0) = ∞`, the result is `A(T, T̂) / (T + T̂ + 2)` — normalised by the
/// accumulated-cost matrix's size `(T+1) + (T̂+1)`, not by the warping path's length.
/// The two series may have different lengths `T` and `T̂` (same `dim`). `O(T·T̂)` time,
/// `O(T̂)` memory. `NaN` if either is empty or not a multiple of `dim`.
pub fn dtw(truth: &[f64], pred: &[f64], dim: usize) -> f64 {
    if dim == 0
        || truth.is_empty()
        || pred.is_empty()
        || !truth.len().is_multiple_of(dim)
        || !pred.len().is_multiple_of(dim)
    {
        return f64::NAN;
    }
    let (n, m) = (truth.len() / dim, pred.len() / dim);
    let mut prev = vec![f64::INFINITY; m + 1];
    let mut cur = vec![f64::INFINITY; m + 1];
    prev[0] = 0.0;
    for a in truth.chunks_exact(dim) {
        cur[0] = f64::INFINITY;
        for (j, b) in pred.chunks_exact(dim).enumerate() {
            let c = a
                .iter()
                .zip(b)
                .map(|(u, v)| (u - v) * (u - v))
                .sum::<f64>()
                .sqrt();
            cur[j + 1] = c + prev[j + 1].min(cur[j]).min(prev[j]);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m] / (n + m + 2) as f64
}

/// sMAPE of each horizon step, averaged over the dimensions:
/// `e_t = factor·(1/D)Σ_d |y_td − ŷ_td| / (|y_td| + |ŷ_td| + ε)` for `t = 0..T` (dysts'
/// `smape(y[t], ŷ[t])`), `factor` 100 or 200 per `scale`. Empty for degenerate shapes.
pub fn error_vs_horizon(truth: &[f64], pred: &[f64], dim: usize, scale: SmapeScale) -> Vec<f64> {
    if rows(truth, pred, dim).is_none() {
        return Vec::new();
    }
    truth
        .chunks_exact(dim)
        .zip(pred.chunks_exact(dim))
        .map(|(a, b)| {
            let s: f64 = a.iter().zip(b).map(|(&x, &y)| smape_term(x, y)).sum();
            scale.factor() * (s / dim as f64)
        })
        .collect()
}

/// Cumulative sMAPE versus horizon: entry `t` is the sMAPE of steps `0..=t` (all `(t+1)·D`
/// entries), i.e. dysts' `horizoned_metric(y, ŷ, smape, scaled=...)`, equivalently the
/// running mean of [`error_vs_horizon`]. Empty for degenerate shapes.
pub fn cumulative_smape(truth: &[f64], pred: &[f64], dim: usize, scale: SmapeScale) -> Vec<f64> {
    if rows(truth, pred, dim).is_none() {
        return Vec::new();
    }
    let mut sum = 0.0;
    truth
        .chunks_exact(dim)
        .zip(pred.chunks_exact(dim))
        .enumerate()
        .map(|(t, (a, b))| {
            sum += a
                .iter()
                .zip(b)
                .map(|(&x, &y)| smape_term(x, y))
                .sum::<f64>();
            scale.factor() * (sum / ((t + 1) * dim) as f64)
        })
        .collect()
}

/// Valid prediction time, in steps: the first index `t` at which the cumulative sMAPE of
/// steps `0..=t` ([`cumulative_smape`], on `scale`) exceeds `threshold` (strictly), i.e.
/// the number of leading steps before the forecast is judged invalid; `T` if it never does.
/// The customary choice is `threshold = 30` on [`SmapeScale::Percent200`]
/// ([`DEFAULT_VPT_THRESHOLD`], [`DEFAULT_VPT_SCALE`]). dysts 0.96 has no VPT function; this
/// is the definition built on dysts' `horizoned_metric(smape)`. Returns 0 for
/// degenerate shapes. Convert to Lyapunov times with [`steps_to_lyapunov_times`].
pub fn valid_prediction_time(
    truth: &[f64],
    pred: &[f64],
    dim: usize,
    threshold: f64,
    scale: SmapeScale,
) -> usize {
    let c = cumulative_smape(truth, pred, dim, scale);
    c.iter().position(|&v| v > threshold).unwrap_or(c.len())
}

/// Steps to Lyapunov times: `steps·dt·λ_max` (the time `steps·dt` in units of the Lyapunov
/// time `1/λ_max`). `NaN` unless `dt > 0` and `λ_max > 0` are finite.
pub fn steps_to_lyapunov_times(steps: usize, dt: f64, lambda_max: f64) -> f64 {
    if !(dt.is_finite() && dt > 0.0 && lambda_max.is_finite() && lambda_max > 0.0) {
        return f64::NAN;
    }
    steps as f64 * dt * lambda_max
}

/// Every metric of dysts' `compute_metrics(y_true, y_pred)` (one batch), keyed by dysts'
/// names: `mse`, `mae`, `rmse`, `nrmse`, `marre`, `r2_score`, `rmsle`, `smape` (on
/// `opts.smape_scale`; dysts: 0–100), `mape`, `wape`, `spearman`, `pearson` (with dysts'
/// `D = 1` quirk, see [`pearson`]), `kendall`, `coefficient_of_variation`,
/// `mutual_information` (seeded), `kl_divergence` (seeded Monte Carlo) and
/// `hellinger_distance` — plus two that dysts defines but leaves out of its dict: `mase`
/// (`opts.mase_season`, `opts.mase_train`) and `dtw`. Degenerate input gives the same keys
/// with `NaN` values.
pub fn compute_metrics(
    truth: &[f64],
    pred: &[f64],
    dim: usize,
    opts: &MetricOptions,
) -> BTreeMap<String, f64> {
    let (y, p, d) = (truth, pred, dim);
    let same_shape = rows(y, p, d).is_some();
    let entries = [
        ("mse", mse(y, p, d)),
        ("mae", mae(y, p, d)),
        ("rmse", rmse(y, p, d)),
        ("nrmse", nrmse(y, p, d)),
        ("marre", marre(y, p, d)),
        ("r2_score", r2_score(y, p, d)),
        ("rmsle", rmsle(y, p, d)),
        ("smape", smape(y, p, d, opts.smape_scale)),
        ("mape", mape(y, p, d)),
        ("wape", wape(y, p, d)),
        ("spearman", spearman(y, p, d)),
        ("pearson", pearson(y, p, d)),
        ("kendall", kendall(y, p, d)),
        (
            "coefficient_of_variation",
            coefficient_of_variation(y, p, d),
        ),
        ("mutual_information", mutual_information(y, p, d, opts.seed)),
        (
            "kl_divergence",
            kl_divergence(y, p, d, opts.kl_samples, opts.kl_variance, opts.seed),
        ),
        (
            "hellinger_distance",
            hellinger_distance(y, p, d, opts.hellinger_bins),
        ),
        (
            "mase",
            mase(y, p, d, opts.mase_train.as_deref(), opts.mase_season),
        ),
        // dtw alone accepts different lengths; here both series must have one shape
        ("dtw", if same_shape { dtw(y, p, d) } else { f64::NAN }),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    fn sine(t: usize, dim: usize) -> Vec<f64> {
        (0..t * dim)
            .map(|i| {
                let (s, d) = (i / dim, i % dim);
                2.0 + (0.3 * s as f64 + d as f64).sin()
            })
            .collect()
    }

    #[test]
    fn perfect_prediction() {
        let y = sine(40, 3);
        let m = compute_metrics(&y, &y, 3, &MetricOptions::default());
        for k in [
            "mse", "mae", "rmse", "nrmse", "marre", "rmsle", "smape", "mape", "wape",
        ] {
            assert_eq!(m[k], 0.0, "{k}");
        }
        for k in ["mase", "dtw", "coefficient_of_variation"] {
            assert_eq!(m[k], 0.0, "{k}");
        }
        assert_eq!(m["kl_divergence"], 0.0);
        // Σ sqrt(p·p) = Σ p is 1 only to rounding, so H is at most sqrt(few ulp)
        assert!(m["hellinger_distance"] < 1e-7);
        assert_eq!(m["r2_score"], 1.0);
        for k in ["spearman", "pearson", "kendall"] {
            assert!(close(m[k], 1.0, 1e-12), "{k} {}", m[k]);
        }
        assert!(m["mutual_information"] > 1.0);
        assert_eq!(m.len(), 19);
    }

    #[test]
    fn smape_scales_differ_by_two() {
        let y = sine(30, 2);
        let p: Vec<f64> = y.iter().map(|v| v * 1.1 - 0.05).collect();
        let a = smape(&y, &p, 2, SmapeScale::Percent100);
        let b = smape(&y, &p, 2, SmapeScale::Percent200);
        assert!(a > 0.0);
        assert_eq!(b, 2.0 * a);
        // hand value: y = 1, ŷ = 3 → |2|/(4 + ε)
        let v = smape(&[1.0], &[3.0], 1, SmapeScale::Percent200);
        assert!(close(v, 100.0, 1e-9));
        // opposite signs give the maximum
        let v = smape(&[1.0], &[-1.0], 1, SmapeScale::Percent100);
        assert!(close(v, 100.0, 1e-9));
    }

    #[test]
    fn hand_checked_values() {
        let y = [1.0, 2.0, 3.0, 4.0];
        let p = [1.0, 2.0, 3.0, 5.0];
        assert_eq!(mse(&y, &p, 1), 0.25);
        assert_eq!(mae(&y, &p, 1), 0.25);
        assert_eq!(rmse(&y, &p, 1), 0.5);
        // naive m=1 scale of the truth is 1 → 0.25/(1 + ε)
        assert!(close(mase(&y, &p, 1, None, 1), 0.25, 1e-9));
        // m=2: |3-1|,|4-2| → 2
        assert!(close(mase(&y, &p, 1, None, 2), 0.125, 1e-9));
        assert!(mase(&y, &p, 1, None, 4).is_nan());
        assert!(mase(&y, &p, 1, None, 0).is_nan());
        // explicit training series
        let train = [0.0, 10.0, 20.0];
        assert!(close(mase(&y, &p, 1, Some(&train), 1), 0.025, 1e-9));
        // marre: range 3 → 100·mean(0,0,0,1)/3
        assert!(close(marre(&y, &p, 1), 100.0 / 12.0, 1e-9));
        // wape: 100·1/10
        assert!(close(wape(&y, &p, 1), 10.0, 1e-9));
        // mape: 100·(1/4)/4
        assert!(close(mape(&y, &p, 1), 6.25, 1e-9));
        // r2: 1 − 1/5
        assert!(close(r2_score(&y, &p, 1), 0.8, 1e-12));
        // nrmse: column [1,3] has σ=1; errors [1,0]
        let v = nrmse(&[1.0, 3.0], &[2.0, 3.0], 1);
        assert!(close(v, (0.5f64).sqrt(), 1e-9));
        // per-dimension σ: column 2 has σ = 10, error 10 in it
        let v = nrmse(&[1.0, 0.0, 3.0, 20.0], &[1.0, 10.0, 3.0, 20.0], 2);
        assert!(close(v, (0.25f64).sqrt(), 1e-9));
        // coefficient of variation: errors [0,0,0,-1] std = sqrt(3)/4, mean(y) = 2.5
        let v = coefficient_of_variation(&y, &p, 1);
        assert!(close(v, 100.0 * 3f64.sqrt() / 4.0 / 2.5, 1e-9));
    }

    #[test]
    fn rank_correlations_by_hand() {
        // Kendall: pairs (1,2)+ (1,3)+ (2,3)− → 1/3
        assert!(close(
            kendall(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0], 1),
            1.0 / 3.0,
            1e-12
        ));
        // tau-b with a tie in x: x=[1,2,2,3], y=[1,2,3,4]: S = 5, n_x = 5, n_y = 6
        let v = kendall(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0], 1);
        assert!(close(v, 5.0 / 30f64.sqrt(), 1e-12));
        // Spearman with ties: ranks [1,2.5,2.5,4] vs [1,2,3,4] → sqrt(0.9)
        let v = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0], 1);
        assert!(close(v, 0.9f64.sqrt(), 1e-12));
        // monotone nonlinear: Spearman = 1, Pearson < 1; dysts' pearson at D=1 is Spearman
        let x: Vec<f64> = (1..=10).map(|v| v as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| v.powi(3)).collect();
        assert!(close(spearman(&x, &y, 1), 1.0, 1e-12));
        assert_eq!(pearson(&x, &y, 1), spearman(&x, &y, 1));
        assert!(pearson_r(&x, &y, 1) < 0.95);
        // D = 2: pearson is the column mean of Pearson's r
        let xy: Vec<f64> = x.iter().zip(&y).flat_map(|(a, b)| [*a, *b]).collect();
        let yx: Vec<f64> = y.iter().zip(&x).flat_map(|(a, b)| [*a, *b]).collect();
        assert!(close(pearson(&xy, &yx, 2), pearson_r(&x, &y, 1), 1e-12));
        // constant column → NaN
        assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], 1).is_nan());
        assert!(pearson_r(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], 1).is_nan());
        assert!(kendall(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], 1).is_nan());
    }

    #[test]
    fn dtw_by_hand() {
        assert_eq!(dtw(&[0.0, 1.0, 2.0], &[0.0, 1.0, 2.0], 1), 0.0);
        // A(1,1)=1, A(1,2)=A(2,1)=2, A(2,2)=1+min(2,2,1)=2; /(2+2+2)
        assert!(close(dtw(&[0.0, 0.0], &[1.0, 1.0], 1), 1.0 / 3.0, 1e-15));
        // a time shift is absorbed: cost of [0,0,1] vs [0,1,1] is 0
        assert_eq!(dtw(&[0.0, 0.0, 1.0], &[0.0, 1.0, 1.0], 1), 0.0);
        // Euclidean local cost in D = 2, different lengths: (3,4) vs origin twice → 5+5
        assert!(close(
            dtw(&[3.0, 4.0], &[0.0, 0.0, 0.0, 0.0], 2),
            10.0 / 5.0,
            1e-15
        ));
        assert!(dtw(&[], &[1.0], 1).is_nan());
    }

    #[test]
    fn hellinger_by_hand() {
        // DC-only vs Nyquist-only spectra are disjoint → 1
        let v = hellinger_distance(&[1.0; 4], &[1.0, -1.0, 1.0, -1.0], 1, 100);
        assert!(close(v, 1.0, 1e-12));
        let y = sine(64, 2);
        assert!(hellinger_distance(&y, &y, 2, 100) < 1e-7);
        // scaling a series does not change its normalised spectrum
        let p: Vec<f64> = y.iter().map(|v| 3.0 * v).collect();
        assert!(hellinger_distance(&y, &p, 2, 100) < 1e-7);
        assert!(hellinger_distance(&[0.0; 4], &[1.0; 4], 1, 100).is_nan());
        assert!(hellinger_distance(&y, &y, 2, 0).is_nan());
    }

    #[test]
    fn vpt_on_constructed_series() {
        // per-step sMAPE (0-200): 0,0,0 then 200 each (opposite signs).
        let y = vec![1.0; 10];
        let mut p = vec![1.0; 10];
        for v in &mut p[3..] {
            *v = -1.0;
        }
        let e = error_vs_horizon(&y, &p, 1, SmapeScale::Percent200);
        assert_eq!(e[..3], [0.0, 0.0, 0.0]);
        assert!(close(e[3], 200.0, 1e-9));
        // cumulative at t=3 is 200/4 = 50 > 30 → VPT 3
        let c = cumulative_smape(&y, &p, 1, SmapeScale::Percent200);
        assert!(close(c[3], 50.0, 1e-9) && close(c[4], 80.0, 1e-9));
        let s200 = SmapeScale::Percent200;
        assert_eq!(
            valid_prediction_time(&y, &p, 1, DEFAULT_VPT_THRESHOLD, s200),
            3
        );
        // threshold 60: 50 at t=3, 80 at t=4 → 4
        assert_eq!(valid_prediction_time(&y, &p, 1, 60.0, s200), 4);
        // threshold 30 on 0-100 scale: 25 at t=3, 40 at t=4 → 4
        assert_eq!(
            valid_prediction_time(&y, &p, 1, 30.0, SmapeScale::Percent100),
            4
        );
        // never exceeded → T
        assert_eq!(valid_prediction_time(&y, &p, 1, 250.0, s200), 10);
        // D = 2 with one wrong component: per step 100 (0-200) from t=2
        let y2 = vec![1.0; 8];
        let mut p2 = vec![1.0; 8];
        for t in 2..4 {
            p2[2 * t + 1] = -1.0;
        }
        let e2 = error_vs_horizon(&y2, &p2, 2, s200);
        assert!(close(e2[2], 100.0, 1e-9) && e2[1] == 0.0);
        // cumulative: t=2 → 100/3 > 30
        assert_eq!(valid_prediction_time(&y2, &p2, 2, 30.0, s200), 2);
        // degenerate
        assert_eq!(valid_prediction_time(&[], &[], 1, 30.0, s200), 0);
        assert_eq!(valid_prediction_time(&[1.0], &[1.0, 2.0], 1, 30.0, s200), 0);
        assert!(error_vs_horizon(&[1.0], &[1.0, 2.0], 1, s200).is_empty());
    }

    #[test]
    fn lyapunov_times() {
        assert!(close(steps_to_lyapunov_times(100, 0.01, 0.9), 0.9, 1e-15));
        assert!(steps_to_lyapunov_times(100, 0.01, 0.0).is_nan());
        assert!(steps_to_lyapunov_times(100, -0.01, 0.9).is_nan());
    }

    #[test]
    fn degenerate_inputs_are_nan() {
        let y = [1.0, 2.0, 3.0];
        let bad: [(&[f64], &[f64], usize); 4] =
            [(&[], &[], 1), (&y, &y[..2], 1), (&y, &y, 0), (&y, &y, 2)];
        for (a, b, d) in bad {
            let m = compute_metrics(a, b, d, &MetricOptions::default());
            assert_eq!(m.len(), 19);
            for (k, v) in &m {
                assert!(v.is_nan(), "{k} = {v} for {a:?} {b:?} {d}");
            }
        }
        // R² of a constant truth is undefined
        assert!(r2_score(&[2.0, 2.0], &[1.0, 3.0], 1).is_nan());
        // the KSG estimate needs more than k points
        assert!(mutual_information(&y, &y, 1, 0).is_nan());
        assert!(kl_divergence(&y, &y, 1, 0, 1.0, 0).is_nan());
        assert!(kl_divergence(&y, &y, 1, 10, 0.0, 0).is_nan());
    }

    #[test]
    fn digamma_values() {
        let g = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + g).abs() < 1e-15);
        assert!((digamma(0.5) + g + 2.0 * 2f64.ln()).abs() < 1e-14);
        let h9: f64 = (1..10).map(|k| 1.0 / k as f64).sum();
        assert!((digamma(10.0) - (h9 - g)).abs() < 1e-14);
        let h99: f64 = (1..100).map(|k| 1.0 / k as f64).sum();
        assert!((digamma(100.0) - (h99 - g)).abs() < 1e-13);
    }

    #[test]
    fn seeded_estimators_are_deterministic() {
        let y = sine(60, 2);
        let p: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v + 0.1 * (i as f64 * 1.7).sin())
            .collect();
        let a = mutual_information(&y, &p, 2, 7);
        assert_eq!(a, mutual_information(&y, &p, 2, 7));
        assert!(a > 0.0);
        let k = kl_divergence(&y, &p, 2, 500, 1.0, 3);
        assert_eq!(k, kl_divergence(&y, &p, 2, 500, 1.0, 3));
        // a shifted attractor is further away than a slightly perturbed one
        let far: Vec<f64> = y.iter().map(|v| v + 3.0).collect();
        assert!(kl_divergence(&y, &far, 2, 500, 1.0, 3) > k + 1.0);
        // at the points themselves the log ratio is finite even far apart (no underflow)
        let very_far: Vec<f64> = y.iter().map(|v| v + 100.0).collect();
        let v = kl_divergence_at_points(&y, &very_far, 2, &y, 1.0);
        assert!(v.is_finite() && v > 4000.0);
    }
}
