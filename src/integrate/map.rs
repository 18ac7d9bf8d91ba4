//! Iteration of maps x_{n+1} = f(n, x_n).

use super::{IntegrationError, SolverStats, Times};
use crate::dynamics::System;

/// Iterates a map from `(n0, x0)` and calls `observe(k, n_k, x_{n_k})` at every output
/// iteration `t_out[k]` (sorted integers ≥ n0, given as f64). Blow-up (non-finite or
/// |x_i| > `max_abs`) stops with [`IntegrationError::BlowUp`] naming the iteration and component.
/// Allocation-free apart from two state buffers.
pub fn iterate_map<'a, S: System + ?Sized>(
    sys: &S,
    n0: f64,
    x0: &[f64],
    t_out: impl Into<Times<'a>>,
    max_abs: f64,
    observe: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
) -> Result<SolverStats, IntegrationError> {
    let t_out: Times = t_out.into();
    let d = sys.dim();
    let mut x = x0.to_vec();
    let mut next = vec![0.0; d];
    let mut n = n0;
    let mut evals = 0u64;
    for (k, target) in t_out.iter().enumerate() {
        while n + 0.5 < target {
            sys.rhs(n, &x, &mut next);
            evals += 1;
            n += 1.0;
            if let Some(i) = next
                .iter()
                .position(|v| !v.is_finite() || v.abs() > max_abs)
            {
                return Err(IntegrationError::BlowUp {
                    t: n,
                    index: i,
                    value: next[i],
                });
            }
            std::mem::swap(&mut x, &mut next);
        }
        if !observe(k, n, &x) {
            return Err(IntegrationError::Interrupted { t: n });
        }
    }
    Ok(SolverStats {
        accepted: evals,
        rejected: 0,
        rhs_evals: evals,
        t_final: n,
    })
}
