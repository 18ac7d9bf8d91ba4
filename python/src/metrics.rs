//! The forecast metrics of `phaseflow.metrics`: thin calls of
//! [`phaseflow::forecast::metrics`] (the definitions the command line's forecast benchmark
//! scores with), with the GIL released and Ctrl-C checked between metrics.
//!
//! Every series arrives as a C-contiguous float64 array of shape (B, T, D): B batch members,
//! each T time steps of D components (row-major, as the library's `&[f64]` of `T × D`).
//! The pure-Python module (`python/phaseflow/metrics.py`) reshapes dysts' accepted shapes
//! into that and takes dysts' mean over the batch.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use phaseflow::control::Cancel;
use phaseflow::forecast::metrics as m;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{interruptible, PhaseflowError};

/// The keys of `compute_metrics`, in its order: dysts 0.96's 17, then `mase`, `dtw` and the
/// valid prediction time `vpt`.
pub const KEYS: [&str; 20] = [
    "mse",
    "mae",
    "rmse",
    "nrmse",
    "marre",
    "r2_score",
    "rmsle",
    "smape",
    "mape",
    "wape",
    "spearman",
    "pearson",
    "kendall",
    "coefficient_of_variation",
    "mutual_information",
    "kl_divergence",
    "hellinger_distance",
    "mase",
    "dtw",
    "vpt",
];

/// Settings of the metrics that have any (dysts' keyword arguments).
struct Settings {
    /// `smape(scaled=True)`: the 0–100 scale; false: 0–200.
    smape_scaled: bool,
    /// Per-dimension scales of `nrmse` (dysts' `scale=`), shape (D,).
    nrmse_scale: Option<Vec<f64>>,
    /// Season length of `mase`.
    mase_m: usize,
    /// Training series of `mase`, row-major (T_train, D).
    mase_train: Option<Vec<f64>>,
    /// Seed of mutual information's noise and of the KL estimate's samples.
    seed: u64,
    kl_samples: usize,
    kl_variance: f64,
    hellinger_bins: usize,
    /// Threshold of the valid prediction time on the cumulative sMAPE (0–200).
    vpt_threshold: f64,
}

fn scale(scaled: bool) -> m::SmapeScale {
    if scaled {
        m::SmapeScale::Percent100
    } else {
        m::SmapeScale::Percent200
    }
}

/// One metric of one (T × D) pair by its key; `None` for an unknown key.
fn one(key: &str, y: &[f64], p: &[f64], d: usize, s: &Settings) -> Option<f64> {
    Some(match key {
        "mse" => m::mse(y, p, d),
        "mae" => m::mae(y, p, d),
        "rmse" => m::rmse(y, p, d),
        "nrmse" => match &s.nrmse_scale {
            Some(sc) => m::nrmse_with_scale(y, p, d, sc),
            None => m::nrmse(y, p, d),
        },
        "marre" => m::marre(y, p, d),
        "r2_score" => m::r2_score(y, p, d),
        "rmsle" => m::rmsle(y, p, d),
        "smape" => m::smape(y, p, d, scale(s.smape_scaled)),
        "mape" => m::mape(y, p, d),
        "wape" => m::wape(y, p, d),
        "spearman" => m::spearman(y, p, d),
        "pearson" => m::pearson(y, p, d),
        "pearson_r" => m::pearson_r(y, p, d),
        "kendall" => m::kendall(y, p, d),
        "coefficient_of_variation" => m::coefficient_of_variation(y, p, d),
        "mutual_information" => m::mutual_information(y, p, d, s.seed),
        "kl_divergence" => m::kl_divergence(y, p, d, s.kl_samples, s.kl_variance, s.seed),
        "hellinger_distance" => m::hellinger_distance(y, p, d, s.hellinger_bins),
        "mase" => m::mase(y, p, d, s.mase_train.as_deref(), s.mase_m),
        "dtw" => m::dtw(y, p, d),
        "vpt" => m::valid_prediction_time(y, p, d, s.vpt_threshold, m::DEFAULT_VPT_SCALE) as f64,
        _ => return None,
    })
}

/// B, T, D and the values of two (B, T, D) arrays.
type Pair = ((usize, usize, usize), Vec<f64>, Vec<f64>);

/// (B, T, D) of two arrays of one shape, copied (the work runs with the GIL released).
fn pair(y: &PyReadonlyArray3<'_, f64>, p: &PyReadonlyArray3<'_, f64>) -> PyResult<Pair> {
    if y.shape() != p.shape() {
        return Err(PhaseflowError::new_err(format!(
            "y_true has shape {:?}, y_pred {:?}: they must have the same shape",
            y.shape(),
            p.shape()
        )));
    }
    let (b, t, d) = (y.shape()[0], y.shape()[1], y.shape()[2]);
    let ys = y
        .as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let ps = p
        .as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(((b, t, d), ys.to_vec(), ps.to_vec()))
}

/// The metrics `keys` (default: all of [`KEYS`], then through the library's
/// `compute_metrics`) of each batch member of `y_true`, `y_pred` (both (B, T, D)):
/// `[(key, [value of member 0, …, member B−1])]` in the order of `keys`.
#[pyfunction]
#[pyo3(signature = (y_true, y_pred, keys=None, *, smape_scaled=true, nrmse_scale=None, mase_m=1, mase_train=None, seed=0, kl_samples=m::DEFAULT_KL_SAMPLES, kl_variance=m::DEFAULT_KL_VARIANCE, hellinger_bins=m::DEFAULT_HELLINGER_BINS, vpt_threshold=m::DEFAULT_VPT_THRESHOLD))]
#[allow(clippy::too_many_arguments)]
fn metrics_batch(
    py: Python<'_>,
    y_true: PyReadonlyArray3<'_, f64>,
    y_pred: PyReadonlyArray3<'_, f64>,
    keys: Option<Vec<String>>,
    smape_scaled: bool,
    nrmse_scale: Option<Vec<f64>>,
    mase_m: usize,
    mase_train: Option<PyReadonlyArray2<'_, f64>>,
    seed: u64,
    kl_samples: usize,
    kl_variance: f64,
    hellinger_bins: usize,
    vpt_threshold: f64,
) -> PyResult<Vec<(String, Vec<f64>)>> {
    let ((b, t, d), ys, ps) = pair(&y_true, &y_pred)?;
    let mase_train = match &mase_train {
        None => None,
        Some(a) => {
            if a.shape()[1] != d {
                return Err(PhaseflowError::new_err(format!(
                    "y_train has {} components, the series {d}",
                    a.shape()[1]
                )));
            }
            Some(
                a.as_slice()
                    .map_err(|e| PyValueError::new_err(e.to_string()))?
                    .to_vec(),
            )
        }
    };
    if let Some(sc) = &nrmse_scale {
        if sc.len() != d {
            return Err(PhaseflowError::new_err(format!(
                "scale has {} values, the series {d} components",
                sc.len()
            )));
        }
    }
    let all = keys.is_none();
    let keys: Vec<String> = keys.unwrap_or_else(|| KEYS.iter().map(|k| k.to_string()).collect());
    if let Some(k) = keys
        .iter()
        .find(|k| one(k, &[], &[], 1, &dummy()).is_none())
    {
        return Err(PhaseflowError::new_err(format!(
            "unknown metric '{k}': one of {}",
            KEYS.join(", ")
        )));
    }
    let s = Settings {
        smape_scaled,
        nrmse_scale,
        mase_m,
        mase_train,
        seed,
        kl_samples,
        kl_variance,
        hellinger_bins,
        vpt_threshold,
    };
    // the library's `compute_metrics` when every key is asked for with the settings it takes
    let library = all
        && smape_scaled
        && s.nrmse_scale.is_none()
        && kl_samples == m::DEFAULT_KL_SAMPLES
        && kl_variance == m::DEFAULT_KL_VARIANCE
        && hellinger_bins == m::DEFAULT_HELLINGER_BINS;
    let cancel = Cancel::new();
    let work = || -> Option<Vec<(String, Vec<f64>)>> {
        let mut out: Vec<(String, Vec<f64>)> = keys
            .iter()
            .map(|k| (k.clone(), Vec::with_capacity(b)))
            .collect();
        let n = t * d;
        for i in 0..b {
            let (y, p) = (&ys[i * n..(i + 1) * n], &ps[i * n..(i + 1) * n]);
            if library {
                let opts = m::MetricOptions {
                    smape_scale: m::SmapeScale::Percent100,
                    mase_season: s.mase_m,
                    mase_train: s.mase_train.clone(),
                    seed: s.seed,
                    ..m::MetricOptions::default()
                };
                let all = m::compute_metrics(y, p, d, &opts);
                for (k, v) in &mut out {
                    v.push(match all.get(k.as_str()) {
                        Some(x) => *x,
                        None => one(k, y, p, d, &s)?,
                    });
                }
            } else {
                for (k, v) in &mut out {
                    if cancel.is_cancelled() {
                        return None;
                    }
                    v.push(one(k, y, p, d, &s)?);
                }
            }
            if cancel.is_cancelled() {
                return None;
            }
        }
        Some(out)
    };
    interruptible(py, &cancel, work)?
        .ok_or_else(|| PyValueError::new_err("phaseflow: metrics interrupted"))
}

/// Settings used only to recognise keys.
fn dummy() -> Settings {
    Settings {
        smape_scaled: true,
        nrmse_scale: None,
        mase_m: 1,
        mase_train: None,
        seed: 0,
        kl_samples: 0,
        kl_variance: 1.0,
        hellinger_bins: 1,
        vpt_threshold: 1.0,
    }
}

/// C-contiguous (T, D) rows, copied.
fn rows(a: &PyReadonlyArray2<'_, f64>) -> PyResult<Vec<f64>> {
    Ok(a.as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))?
        .to_vec())
}

/// The dynamic time warping cost of (T, D) and (T', D) (the lengths may differ):
/// `A(T, T') / (T + T' + 2)` with the Euclidean local cost (dysts' `dtw(...)[0]`).
#[pyfunction]
fn dtw_cost(
    py: Python<'_>,
    y_true: PyReadonlyArray2<'_, f64>,
    y_pred: PyReadonlyArray2<'_, f64>,
) -> PyResult<f64> {
    let d = y_true.shape()[1];
    if y_pred.shape()[1] != d {
        return Err(PhaseflowError::new_err(format!(
            "y_true has {d} components, y_pred {}",
            y_pred.shape()[1]
        )));
    }
    let (y, p) = (rows(&y_true)?, rows(&y_pred)?);
    let cancel = Cancel::new();
    interruptible(py, &cancel, || m::dtw(&y, &p, d))
}

/// The deterministic part of the KL estimate: `mean_s log(p̂(s)/q̂(s))` at the points (S, D),
/// with `p̂`, `q̂` the isotropic Gaussian mixtures (covariance `variance·I`) on the rows of
/// `y_true`, `y_pred` (both (T, D)).
#[pyfunction]
fn kl_divergence_at_points(
    py: Python<'_>,
    y_true: PyReadonlyArray2<'_, f64>,
    y_pred: PyReadonlyArray2<'_, f64>,
    points: PyReadonlyArray2<'_, f64>,
    variance: f64,
) -> PyResult<f64> {
    let d = y_true.shape()[1];
    if y_pred.shape() != y_true.shape() || points.shape()[1] != d {
        return Err(PhaseflowError::new_err(format!(
            "y_true {:?}, y_pred {:?} and points {:?} must be (T, D), (T, D) and (S, D)",
            y_true.shape(),
            y_pred.shape(),
            points.shape()
        )));
    }
    let (y, p, s) = (rows(&y_true)?, rows(&y_pred)?, rows(&points)?);
    let cancel = Cancel::new();
    interruptible(py, &cancel, || {
        m::kl_divergence_at_points(&y, &p, d, &s, variance)
    })
}

/// sMAPE of each step (`cumulative` false) or of steps `0..=t` (true), averaged over the
/// components, on the 0–100 (`scaled`) or 0–200 scale: shape (T,).
#[pyfunction]
fn smape_vs_horizon<'py>(
    py: Python<'py>,
    y_true: PyReadonlyArray2<'py, f64>,
    y_pred: PyReadonlyArray2<'py, f64>,
    cumulative: bool,
    scaled: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    if y_true.shape() != y_pred.shape() {
        return Err(PhaseflowError::new_err(format!(
            "y_true has shape {:?}, y_pred {:?}: they must have the same shape",
            y_true.shape(),
            y_pred.shape()
        )));
    }
    let d = y_true.shape()[1];
    let (y, p) = (rows(&y_true)?, rows(&y_pred)?);
    let v = if cumulative {
        m::cumulative_smape(&y, &p, d, scale(scaled))
    } else {
        m::error_vs_horizon(&y, &p, d, scale(scaled))
    };
    Ok(v.into_pyarray(py))
}

/// Steps to Lyapunov times: `steps·dt·λ_max` (NaN unless `dt`, `λ_max` > 0 and finite).
#[pyfunction]
fn steps_to_lyapunov_times(steps: usize, dt: f64, lambda_max: f64) -> f64 {
    m::steps_to_lyapunov_times(steps, dt, lambda_max)
}

/// Registers the metric functions in `_native`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("METRIC_KEYS", KEYS.to_vec())?;
    module.add("DEFAULT_VPT_THRESHOLD", m::DEFAULT_VPT_THRESHOLD)?;
    module.add_function(wrap_pyfunction!(metrics_batch, module)?)?;
    module.add_function(wrap_pyfunction!(dtw_cost, module)?)?;
    module.add_function(wrap_pyfunction!(kl_divergence_at_points, module)?)?;
    module.add_function(wrap_pyfunction!(smape_vs_horizon, module)?)?;
    module.add_function(wrap_pyfunction!(steps_to_lyapunov_times, module)?)?;
    Ok(())
}
