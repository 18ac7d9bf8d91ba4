//! Regression on delay vectors, one piece of code for three forecasters: the ridge VAR (linear
//! autoregression), NVAR (next-generation reservoir computing) and random-feature ridge.
//!
//! All three standardise the series with the training mean and std (unless told not to), build the delay vector
//! u_t = (z_t, z_{t−s}, …, z_{t−(k−1)s}) of `lags` = k steps `skip` = s apart, map it to features
//! φ(u_t), and fit a ridge read-out W to a target:
//!
//! - VAR: φ = (1, u), target z_{t+1} (darts' / sklearn's linear regression on lags);
//! - NVAR (Gauthier et al. 2021): φ = (1, u, the unique quadratic monomials u_i u_j, i ≤ j),
//!   target the increment z_{t+1} − z_t;
//! - random features: φ = (1, u, √(2/M) cos(ω_m·u/ℓ + b_m)), ω_m ~ N(0, I), b_m ~ U[0, 2π),
//!   m = 1…M (random Fourier features of a Gaussian kernel of width ℓ), target the increment.
//!
//! The forecast iterates the fitted one-step map from the end of the context. A standardised
//! state beyond ±1e3 (far outside any attractor the model saw) counts as divergence: the rest of
//! the forecast is NaN, which the runner scores as diverged.

use super::Delays;
use crate::forecast::linalg;
use crate::forecast::{ForecastError, Forecaster, Scaler, Series};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// The feature map of a [`DelayRegression`].
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// (1, u)
    Linear,
    /// (1, u, u_i u_j for i ≤ j)
    Quadratic,
    /// (1, u, √(2/M) cos(ω·u/ℓ + b)) with M features of width ℓ, drawn from `seed`.
    RandomFourier {
        count: usize,
        lengthscale: f64,
        seed: u64,
    },
}

/// What the read-out predicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The next standardised state z_{t+1}.
    Next,
    /// The increment z_{t+1} − z_t.
    Increment,
}

/// A ridge regression from features of delay vectors to the next step.
#[derive(Debug, Clone)]
pub struct DelayRegression {
    pub label: &'static str,
    pub delays: Delays,
    pub features: Features,
    pub target: Target,
    /// Relative ridge penalty (see [`linalg::ridge`]).
    pub ridge: f64,
    /// Standardise with the training mean and std (else raw values).
    pub standardise: bool,
    fitted: Option<Fitted>,
}

#[derive(Debug, Clone)]
struct Fitted {
    scaler: Scaler,
    /// p × d read-out
    w: Vec<f64>,
    /// random features: frequencies (M × q, already divided by ℓ) and phases (M)
    omega: Vec<f64>,
    phase: Vec<f64>,
}

impl DelayRegression {
    pub fn new(
        label: &'static str,
        lags: usize,
        skip: usize,
        features: Features,
        target: Target,
        ridge: f64,
    ) -> DelayRegression {
        DelayRegression {
            label,
            delays: Delays::new(lags, skip),
            features,
            target,
            ridge,
            standardise: true,
            fitted: None,
        }
    }

    fn n_features(&self, d: usize) -> usize {
        let q = self.delays.lags * d;
        1 + q
            + match &self.features {
                Features::Linear => 0,
                Features::Quadratic => q * (q + 1) / 2,
                Features::RandomFourier { count, .. } => *count,
            }
    }

    /// φ(u_t) for the delay vector ending at row `t` of the standardised values `z` (dim `d`).
    fn features_at(
        &self,
        f: &Fitted,
        z: &[f64],
        d: usize,
        t: usize,
        u: &mut Vec<f64>,
        out: &mut Vec<f64>,
    ) {
        u.clear();
        self.delays.push(z, d, t, u);
        out.clear();
        out.push(1.0);
        out.extend_from_slice(u);
        match &self.features {
            Features::Linear => {}
            Features::Quadratic => {
                for i in 0..u.len() {
                    for j in i..u.len() {
                        out.push(u[i] * u[j]);
                    }
                }
            }
            Features::RandomFourier { count, .. } => {
                let q = u.len();
                let norm = (2.0 / *count as f64).sqrt();
                for (om, ph) in f.omega.chunks_exact(q).zip(&f.phase) {
                    let dot: f64 = om.iter().zip(u.iter()).map(|(a, b)| a * b).sum();
                    out.push(norm * (dot + ph).cos());
                }
            }
        }
    }
}

impl Forecaster for DelayRegression {
    fn name(&self) -> String {
        let extra = match &self.features {
            Features::RandomFourier {
                count, lengthscale, ..
            } => format!(",features={count},lengthscale={lengthscale}"),
            _ => String::new(),
        };
        let order = match self.features {
            Features::Quadratic => ",order=2",
            _ => "",
        };
        let target = match self.target {
            Target::Next => ",next",
            Target::Increment => ",increment",
        };
        let raw = if self.standardise { "" } else { ",raw" };
        format!(
            "{}(lags={},skip={}{order}{extra},ridge={:e}{target}{raw})",
            self.label, self.delays.lags, self.delays.skip, self.ridge
        )
    }

    fn fit(&mut self, train: &Series) -> Result<(), ForecastError> {
        let d = train.dim;
        let span = self.delays.span();
        let n_rows = train.len().saturating_sub(span);
        let p = self.n_features(d);
        if n_rows < 2 {
            return Err(ForecastError::TooShort {
                model: self.name(),
                len: train.len(),
                need: span + 2,
            });
        }
        let scaler = Scaler::fit_if(self.standardise, train);
        let z = scaler.apply(train).values;
        let q = self.delays.lags * d;
        let (omega, phase) = match &self.features {
            Features::RandomFourier {
                count,
                lengthscale,
                seed,
            } => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(*seed);
                let om: Vec<f64> = (0..count * q)
                    .map(|_| rng.sample::<f64, _>(StandardNormal) / lengthscale)
                    .collect();
                let ph: Vec<f64> = (0..*count)
                    .map(|_| rng.random::<f64>() * std::f64::consts::TAU)
                    .collect();
                (om, ph)
            }
            _ => (Vec::new(), Vec::new()),
        };
        let mut fitted = Fitted {
            scaler,
            w: Vec::new(),
            omega,
            phase,
        };
        let mut phi = Vec::with_capacity(n_rows * p);
        let mut y = Vec::with_capacity(n_rows * d);
        let (mut u, mut row) = (Vec::new(), Vec::new());
        for t in span - 1..train.len() - 1 {
            self.features_at(&fitted, &z, d, t, &mut u, &mut row);
            phi.extend_from_slice(&row);
            for k in 0..d {
                let next = z[(t + 1) * d + k];
                y.push(match self.target {
                    Target::Next => next,
                    Target::Increment => next - z[t * d + k],
                });
            }
        }
        let rows = phi.len() / p;
        fitted.w = linalg::ridge(&phi, rows, p, &y, d, self.ridge).ok_or_else(|| {
            ForecastError::Failed {
                model: self.name(),
                msg: "ridge regression failed (non-finite training data?)".into(),
            }
        })?;
        self.fitted = Some(fitted);
        Ok(())
    }

    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        let f = self
            .fitted
            .as_ref()
            .ok_or(ForecastError::NotFitted { model: self.name() })?;
        let d = context.dim;
        let (mut u, mut row) = (Vec::new(), Vec::new());
        super::rollout(
            &self.name(),
            &f.scaler,
            context,
            self.delays.span(),
            horizon,
            |z, t, next| {
                self.features_at(f, z, d, t, &mut u, &mut row);
                linalg::apply(&row, &f.w, next);
                if self.target == Target::Increment {
                    for (n, zt) in next.iter_mut().zip(&z[t * d..(t + 1) * d]) {
                        *n += zt;
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_recovers_a_linear_recursion() {
        // a damped rotation x_{t+1} = A x_t: lag 1 linear regression reproduces it exactly
        let (c, s) = (0.1f64.cos() * 0.999, 0.1f64.sin() * 0.999);
        let mut v = vec![1.0, 0.0];
        for t in 0..300 {
            let (a, b) = (v[2 * t], v[2 * t + 1]);
            v.extend_from_slice(&[c * a - s * b, s * a + c * b]);
        }
        let all = Series::new(v, 2);
        let mut m = DelayRegression::new("linear", 1, 1, Features::Linear, Target::Next, 1e-14);
        m.fit(&all.head(250)).unwrap();
        let p = m.predict(&all.head(250), 51).unwrap();
        let truth = all.tail(51);
        for (a, b) in p.values.iter().zip(&truth.values) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
    }

    #[test]
    fn nvar_recovers_a_quadratic_map_increment() {
        // logistic-type map in increment form z_{t+1} = z_t + 0.1 z_t (1 − z_t): quadratic
        // features contain it exactly
        let mut v = vec![0.01];
        for t in 0..400 {
            let z: f64 = v[t];
            v.push(z + 0.1 * z * (1.0 - z));
        }
        let s = Series::new(v, 1);
        let mut m =
            DelayRegression::new("nvar", 1, 1, Features::Quadratic, Target::Increment, 1e-14);
        m.fit(&s.head(300)).unwrap();
        let p = m.predict(&s.head(300), 50).unwrap();
        for (a, b) in p.values.iter().zip(&s.slice(300, 350).values) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
