//! Invariants of a measured scalar series, without equations (`phaseflow series`): the maximal
//! Lyapunov exponent by Rosenstein's and Kantz's methods, the correlation dimension of the delay
//! embedding, sample and multiscale entropy, and the dominant period that sets the defaults.
//!
//! Defaults (each overridable in [`SeriesSettings`]): the oscillation time scale P is the dominant
//! period of the differenced series (differencing removes the red low-frequency part of e.g.
//! Lorenz's lobe switching; the series itself if that fails; 100 samples otherwise), in samples
//! clamped to [4, n/10]; lag P/8, exclusion window P, horizon min(8P, n/4). At most 12,000
//! samples enter Rosenstein's method and the correlation sum, 6,000 Kantz's, 3,000 the entropies.
//!
//! ```
//! use phaseflow::analysis::series::{analyse, SeriesSettings};
//! let dt = 0.05;
//! let x: Vec<f64> = (0..2000).map(|k| (k as f64 * dt).sin()).collect();
//! let r = analyse(&x, dt, &SeriesSettings::default()).unwrap();
//! assert!((r.dominant_period - 2.0 * std::f64::consts::PI).abs() < 0.2);
//! ```

use super::{dimension, stats, timeseries};

/// Settings of [`analyse`]; `None` picks the documented default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesSettings {
    /// Embedding dimension m (default 5).
    pub embed: usize,
    /// Embedding delay in samples.
    pub lag: Option<usize>,
    /// Temporal exclusion window in samples.
    pub exclude: Option<usize>,
    /// Samples the divergence is followed for.
    pub horizon: Option<usize>,
}

impl Default for SeriesSettings {
    fn default() -> Self {
        SeriesSettings {
            embed: 5,
            lag: None,
            exclude: None,
            horizon: None,
        }
    }
}

/// What [`analyse`] found (the serde form is `phaseflow series --json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesInvariants {
    pub samples: usize,
    pub dt: f64,
    pub dominant_period: f64,
    pub embedding_dimension: usize,
    pub lag: usize,
    pub exclusion: usize,
    pub horizon: usize,
    pub lyapunov_rosenstein: Option<f64>,
    pub lyapunov_kantz: Option<f64>,
    pub correlation_dimension: Option<f64>,
    pub correlation_dimension_error: Option<f64>,
    pub sample_entropy: Option<f64>,
    pub multiscale_entropy: Vec<Option<f64>>,
}

/// Why a series cannot be analysed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error("the series needs at least 200 finite samples and a positive time step")]
    TooShort,
    #[error("the embedding dimension must be at least 1")]
    Embedding,
    #[error("the lag, exclusion window and horizon must be at least 1 sample")]
    Window,
    /// The input could not be read or is malformed (the message names the file).
    #[error("{0}")]
    Input(String),
}

/// Reads a scalar series: component `variable` (a name or an index; default the first) of a
/// phaseflow trajectory file (its time step unless `dt` is given), or a text file with one
/// number per line (`#` starts a comment; `dt` required). The kind is told by the content (the
/// HDF5 signature), not by the file name; a file named `.h5`/`.hdf5` that is not HDF5 is an
/// error saying so. Returns (values, time step).
pub fn read_series(
    path: &std::path::Path,
    variable: Option<&str>,
    dt: Option<f64>,
) -> Result<(Vec<f64>, f64), SeriesError> {
    let bad = |m: String| SeriesError::Input(m);
    if let Some(d) = dt.filter(|d| !(d.is_finite() && *d > 0.0)) {
        return Err(bad(format!("--dt must be a finite number > 0, got {d}")));
    }
    let named_hdf5 = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("h5") || e.eq_ignore_ascii_case("hdf5"));
    if crate::io::is_hdf5(path) || named_hdf5 {
        crate::io::probe_hdf5(path).map_err(|e| bad(e.to_string()))?;
        let tr = crate::io::read_trajectory(path).map_err(|e| bad(e.to_string()))?;
        if tr.len() < 2 {
            return Err(bad(format!("{}: fewer than two samples", path.display())));
        }
        let c = match variable {
            None => 0,
            Some(v) => tr
                .variables
                .iter()
                .position(|n| n == v)
                .or_else(|| v.parse::<usize>().ok().filter(|k| *k < tr.dim))
                .ok_or_else(|| {
                    bad(format!(
                        "no component '{v}' (components: {})",
                        tr.variables.join(", ")
                    ))
                })?,
        };
        let xs: Vec<f64> = (0..tr.len()).map(|k| tr.state[k * tr.dim + c]).collect();
        return Ok((xs, dt.unwrap_or(tr.time[1] - tr.time[0])));
    }
    let text = std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let text = String::from_utf8(text).map_err(|_| {
        bad(format!(
            "{}: neither an HDF5 trajectory nor a text file of numbers (binary content)",
            path.display()
        ))
    })?;
    let dt = dt.ok_or_else(|| {
        bad(format!(
            "{}: a text series needs its sampling step: --dt",
            path.display()
        ))
    })?;
    let mut xs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        xs.push(l.parse::<f64>().map_err(|_| {
            bad(format!(
                "{}:{}: '{l}' is not a number",
                path.display(),
                i + 1
            ))
        })?);
    }
    Ok((xs, dt))
}

/// Invariants of the series `x` sampled every `dt`.
pub fn analyse(
    x: &[f64],
    dt: f64,
    settings: &SeriesSettings,
) -> Result<SeriesInvariants, SeriesError> {
    if dt.is_nan() || dt <= 0.0 || x.len() < 200 || x.iter().any(|v| !v.is_finite()) {
        return Err(SeriesError::TooShort);
    }
    let m = settings.embed;
    if m == 0 {
        return Err(SeriesError::Embedding);
    }
    let diff: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let period = stats::dominant_period(&diff, dt)
        .or_else(|| stats::dominant_period(x, dt))
        .unwrap_or(100.0 * dt);
    let per = ((period / dt).round() as usize).clamp(4, x.len() / 10);
    let lag = settings.lag.unwrap_or((per / 8).max(1));
    let w = settings.exclude.unwrap_or(per);
    let horizon = settings.horizon.unwrap_or((8 * per).min(x.len() / 4));
    if lag == 0 || horizon == 0 {
        return Err(SeriesError::Window);
    }
    let n = x.len().min(12000);
    let xs = &x[..n];
    let ros = timeseries::rosenstein(xs, dt, m, lag, w, horizon);
    let mean = xs.iter().sum::<f64>() / n as f64;
    let sd = (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let kan = timeseries::kantz(
        &x[..n.min(6000)],
        dt,
        m,
        lag,
        w,
        0.1 * sd * (m as f64).sqrt(),
        horizon,
    );
    // delay embedding for the correlation dimension
    let count = n.saturating_sub((m - 1) * lag);
    let emb: Vec<f64> = (0..count)
        .flat_map(|i| (0..m).map(move |c| (i, c)))
        .map(|(i, c)| xs[i + c * lag])
        .collect();
    // at most 12,000 points (seconds): run without a cancellation token
    let never = crate::control::Cancel::new();
    let corr = dimension::correlation_dimension(&emb, m, w, sd * (m as f64).sqrt(), &never)
        .unwrap_or(None);
    let mse = timeseries::multiscale_entropy(&xs[..n.min(3000)], 2, 0.2, 5);
    Ok(SeriesInvariants {
        samples: x.len(),
        dt,
        dominant_period: period,
        embedding_dimension: m,
        lag,
        exclusion: w,
        horizon,
        lyapunov_rosenstein: ros.as_ref().map(|r| r.lambda),
        lyapunov_kantz: kan.as_ref().map(|r| r.lambda),
        correlation_dimension: corr.as_ref().map(|c| c.dimension),
        correlation_dimension_error: corr.as_ref().map(|c| c.error),
        sample_entropy: mse.first().cloned().flatten(),
        multiscale_entropy: mse,
    })
}
