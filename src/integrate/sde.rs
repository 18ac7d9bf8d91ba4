//! Flows with additive (or diagonal, state-independent) noise:
//! dx = f(t, x) dt + σ ∘ dW, σ a constant vector (one intensity per component).
//!
//! Integrated with the stochastic Heun method (predictor x̃ = x + f(t, x) h + σ ΔW, corrector
//! x' = x + [f(t, x) + f(t + h, x̃)] h/2 + σ ΔW, ΔW ~ N(0, h) per component), which for additive
//! noise has strong order 1 and weak order 2, and reduces to Heun's (RK2) method when σ = 0.
//! Steps are fixed: each output interval is divided into the smallest number of equal steps ≤ h,
//! so the outputs land on steps. The Gaussian increments come from the caller's generator: the
//! same seed gives the same path.

use super::{IntegrationError, SolverStats, Times};
use crate::dynamics::System;
use rand::Rng;
use rand_distr::StandardNormal;

/// Integrates the SDE from `(t0, x0)` with step ≤ `h`, calling `observe(k, t_k, x(t_k))` at every
/// output time (sorted, ≥ t0). Blow-up (non-finite or |x_i| > `max_abs`) is reported with its
/// time and component.
#[allow(clippy::too_many_arguments)]
pub fn integrate_additive_noise<'a, S: System + ?Sized, R: Rng>(
    sys: &S,
    sigma: &[f64],
    h: f64,
    t0: f64,
    x0: &[f64],
    t_out: impl Into<Times<'a>>,
    max_abs: f64,
    rng: &mut R,
    observe: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
) -> Result<SolverStats, IntegrationError> {
    let t_out: Times = t_out.into();
    let d = sys.dim();
    if sigma.len() != d || x0.len() != d || h.is_nan() || h <= 0.0 {
        return Err(IntegrationError::InvalidInput {
            reason: format!(
                "noise needs {d} intensities, a state of length {d} and a positive step"
            ),
        });
    }
    let mut x = x0.to_vec();
    let (mut f0, mut f1, mut pred, mut dw) =
        (vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let mut t = t0;
    let mut steps = 0u64;
    for (k, target) in t_out.iter().enumerate() {
        if target < t - 1e-12 * t.abs().max(1.0) {
            return Err(IntegrationError::InvalidInput {
                reason: "output times must be sorted and not before t0".into(),
            });
        }
        let span = target - t;
        let n = (span / h - 1e-9).ceil().max(0.0) as u64;
        let hs = if n > 0 { span / n as f64 } else { 0.0 };
        let sq = hs.sqrt();
        for i in 0..n {
            let ti = t + i as f64 * hs;
            sys.rhs(ti, &x, &mut f0);
            for j in 0..d {
                let z: f64 = rng.sample(StandardNormal);
                dw[j] = sigma[j] * sq * z;
                pred[j] = x[j] + f0[j] * hs + dw[j];
            }
            sys.rhs(ti + hs, &pred, &mut f1);
            for j in 0..d {
                x[j] += 0.5 * (f0[j] + f1[j]) * hs + dw[j];
            }
            steps += 1;
            if let Some(j) = x.iter().position(|v| !v.is_finite() || v.abs() > max_abs) {
                return Err(IntegrationError::BlowUp {
                    t: ti + hs,
                    index: j,
                    value: x[j],
                });
            }
        }
        t = target;
        if !observe(k, t, &x) {
            return Err(IntegrationError::Interrupted { t });
        }
    }
    Ok(SolverStats {
        accepted: steps,
        rejected: 0,
        rhs_evals: 2 * steps,
        t_final: t,
    })
}
