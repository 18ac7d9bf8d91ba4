//! Echo state network (leaky reservoir computer) with a ridge read-out.
//!
//! On the standardised series z_t (training mean and std), the reservoir state r_t ∈ R^N follows
//!
//! r_t = (1 − a) r_{t−1} + a tanh(ρ W r_{t−1} + σ W_in z_t + β b),   r_{−1} = 0,
//!
//! with a sparse W (`degree` non-zeros per row, N(0, 1) weights, rescaled to spectral radius 1 by
//! its exact eigenvalues), W_in and b uniform on [−1, 1], leak a, spectral radius ρ, input
//! scaling σ and bias scaling β. The read-out predicts the increment
//! z_{t+1} − z_t = W_out (1, z_t, r_t) (or, with `increment` off, z_{t+1} itself), fitted by
//! ridge regression after `washout` steps. With `standardise` off, z is the raw series.
//! Forecast: the reservoir is driven by the whole context (teacher forcing), then runs on its own
//! predictions. The random matrices depend only on (N, seed); the normalised W is computed once
//! per process and shared.

use crate::forecast::linalg;
use crate::forecast::{ForecastError, Forecaster, Scaler, Series};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Settings of an [`Esn`].
#[derive(Debug, Clone, PartialEq)]
pub struct EsnSettings {
    pub units: usize,
    pub spectral_radius: f64,
    pub leak: f64,
    pub input_scale: f64,
    pub bias_scale: f64,
    pub ridge: f64,
    pub washout: usize,
    /// Non-zeros per row of the reservoir matrix.
    pub degree: usize,
    /// Predict the increment z_{t+1} − z_t (else the next value z_{t+1}).
    pub increment: bool,
    /// Standardise with the training mean and std (else raw values).
    pub standardise: bool,
    pub seed: u64,
}

/// The sparse reservoir matrix with spectral radius 1 (CSR, `k` entries per row).
#[derive(Debug)]
struct Reservoir {
    k: usize,
    cols: Vec<usize>,
    vals: Vec<f64>,
}

fn reservoir(units: usize, degree: usize, seed: u64) -> Arc<Reservoir> {
    type Cache = Mutex<HashMap<(usize, usize, u64), Arc<Reservoir>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (units, degree, seed);
    if let Some(r) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return r.clone();
    }
    let k = degree.clamp(1, units);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cols = Vec::with_capacity(units * k);
    let mut vals = Vec::with_capacity(units * k);
    let mut pool: Vec<usize> = (0..units).collect();
    for _ in 0..units {
        // k distinct columns by a partial Fisher–Yates shuffle
        for j in 0..k {
            let m = rng.random_range(j..units);
            pool.swap(j, m);
            cols.push(pool[j]);
            vals.push(rng.sample::<f64, _>(StandardNormal));
        }
    }
    let mut dense = nalgebra::DMatrix::<f64>::zeros(units, units);
    for i in 0..units {
        for j in 0..k {
            dense[(i, cols[i * k + j])] += vals[i * k + j];
        }
    }
    let radius = dense
        .complex_eigenvalues()
        .iter()
        .map(|c| c.norm())
        .fold(0.0, f64::max);
    if radius > 0.0 {
        for v in &mut vals {
            *v /= radius;
        }
    }
    let r = Arc::new(Reservoir { k, cols, vals });
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, r.clone());
    r
}

/// An echo state network forecaster.
#[derive(Debug, Clone)]
pub struct Esn {
    pub settings: EsnSettings,
    fitted: Option<Fitted>,
}

#[derive(Debug, Clone)]
struct Fitted {
    scaler: Scaler,
    w: Arc<Reservoir>,
    /// N × d input weights (already times σ) and N biases (times β)
    w_in: Vec<f64>,
    bias: Vec<f64>,
    /// (1 + d + N) × d read-out
    w_out: Vec<f64>,
}

impl Esn {
    pub fn new(settings: EsnSettings) -> Esn {
        Esn {
            settings,
            fitted: None,
        }
    }

    /// One reservoir update r ← (1 − a) r + a tanh(ρ W r + W_in z + b); `tmp` has N entries.
    fn update(&self, f: &Fitted, r: &mut [f64], z: &[f64], tmp: &mut [f64]) {
        let s = &self.settings;
        let n = r.len();
        let k = f.w.k;
        let d = z.len();
        for i in 0..n {
            let mut acc = f.bias[i];
            for j in 0..k {
                acc += s.spectral_radius * f.w.vals[i * k + j] * r[f.w.cols[i * k + j]];
            }
            for (wi, zi) in f.w_in[i * d..(i + 1) * d].iter().zip(z) {
                acc += wi * zi;
            }
            tmp[i] = acc.tanh();
        }
        for (ri, ti) in r.iter_mut().zip(tmp.iter()) {
            *ri = (1.0 - s.leak) * *ri + s.leak * ti;
        }
    }

    fn features(r: &[f64], z: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.push(1.0);
        out.extend_from_slice(z);
        out.extend_from_slice(r);
    }
}

impl Forecaster for Esn {
    fn name(&self) -> String {
        let s = &self.settings;
        format!(
            "esn(units={},degree={},radius={},leak={},input={},ridge={:e}{}{})",
            s.units,
            s.degree,
            s.spectral_radius,
            s.leak,
            s.input_scale,
            s.ridge,
            if s.increment { ",increment" } else { ",next" },
            if s.standardise { "" } else { ",raw" }
        )
    }

    fn fit(&mut self, train: &Series) -> Result<(), ForecastError> {
        let s = self.settings.clone();
        let d = train.dim;
        let n = s.units.max(1);
        if train.len() < s.washout + 2 {
            return Err(ForecastError::TooShort {
                model: self.name(),
                len: train.len(),
                need: s.washout + 2,
            });
        }
        let scaler = Scaler::fit_if(s.standardise, train);
        let z = scaler.apply(train);
        let mut rng = rand::rngs::StdRng::seed_from_u64(crate::seeds::stream_seed(s.seed, 1));
        let w_in: Vec<f64> = (0..n * d)
            .map(|_| s.input_scale * rng.random_range(-1.0..1.0))
            .collect();
        let bias: Vec<f64> = (0..n)
            .map(|_| s.bias_scale * rng.random_range(-1.0..1.0))
            .collect();
        let mut f = Fitted {
            scaler,
            w: reservoir(n, s.degree, s.seed),
            w_in,
            bias,
            w_out: Vec::new(),
        };
        let p = 1 + d + n;
        let mut r = vec![0.0; n];
        let mut tmp = vec![0.0; n];
        let mut row = Vec::with_capacity(p);
        let mut phi = Vec::with_capacity((train.len() - s.washout) * p);
        let mut y = Vec::new();
        for t in 0..train.len() - 1 {
            self.update(&f, &mut r, z.row(t), &mut tmp);
            if t >= s.washout {
                Self::features(&r, z.row(t), &mut row);
                phi.extend_from_slice(&row);
                for k in 0..d {
                    let base = if s.increment { z.row(t)[k] } else { 0.0 };
                    y.push(z.row(t + 1)[k] - base);
                }
            }
        }
        let rows = phi.len() / p;
        f.w_out =
            linalg::ridge(&phi, rows, p, &y, d, s.ridge).ok_or_else(|| ForecastError::Failed {
                model: self.name(),
                msg: "ridge regression failed".into(),
            })?;
        self.fitted = Some(f);
        Ok(())
    }

    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        let f = self
            .fitted
            .as_ref()
            .ok_or(ForecastError::NotFitted { model: self.name() })?;
        // (an empty context is refused by `rollout`, which needs its last step)
        let d = context.dim;
        let n = self.settings.units.max(1);
        // teacher forcing through the whole context, then the reservoir runs on its predictions
        let z = f.scaler.apply(context);
        let mut r = vec![0.0; n];
        let mut tmp = vec![0.0; n];
        for t in 0..z.len() {
            self.update(f, &mut r, z.row(t), &mut tmp);
        }
        let mut row = Vec::with_capacity(1 + d + n);
        let inc = self.settings.increment;
        super::rollout(
            &self.name(),
            &f.scaler,
            context,
            1,
            horizon,
            |z, t, next| {
                let cur = &z[t * d..(t + 1) * d];
                Self::features(&r, cur, &mut row);
                linalg::apply(&row, &f.w_out, next);
                if inc {
                    for (x, c) in next.iter_mut().zip(cur) {
                        *x += c;
                    }
                }
                self.update(f, &mut r, next, &mut tmp);
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservoir_has_unit_spectral_radius_and_forecasts_a_sine() {
        let w = reservoir(100, 10, 7);
        let mut dense = nalgebra::DMatrix::<f64>::zeros(100, 100);
        for i in 0..100 {
            for j in 0..w.k {
                dense[(i, w.cols[i * w.k + j])] += w.vals[i * w.k + j];
            }
        }
        let rho = dense
            .complex_eigenvalues()
            .iter()
            .map(|c| c.norm())
            .fold(0.0, f64::max);
        assert!((rho - 1.0).abs() < 1e-9, "{rho}");
        let s = Series::new((0..700).map(|t| (t as f64 * 0.1).sin()).collect(), 1);
        let mut m = Esn::new(EsnSettings {
            units: 100,
            spectral_radius: 0.9,
            leak: 1.0,
            input_scale: 0.5,
            bias_scale: 0.1,
            ridge: 1e-8,
            washout: 100,
            degree: 10,
            increment: true,
            standardise: true,
            seed: 3,
        });
        m.fit(&s.head(600)).unwrap();
        let p = m.predict(&s.head(600), 60).unwrap();
        let err = p
            .values
            .iter()
            .zip(&s.tail(100).head(60).values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.05, "max error {err} over one period");
    }
}
