//! Classic fixed-step 4th-order Runge–Kutta method:
//!
//! ```text
//! k1 = f(t, x)
//! k2 = f(t + h/2, x + h/2 k1)
//! k3 = f(t + h/2, x + h/2 k2)
//! k4 = f(t + h,   x + h k3)
//! x(t + h) = x + h/6 (k1 + 2 k2 + 2 k3 + k4)          (global error O(h^4))
//! ```
//!
//! [`integrate_rk4`] divides every interval between consecutive output times (and from `t0` to
//! the first output) into the smallest integer number of equal steps of size `<= h`, so that
//! outputs land exactly on step boundaries and no interpolation spoils the order.

use super::{
    blow_up_index, validate, IntegrationError, SolverOptions, SolverStats, Times, DEFAULT_RK4_STEP,
};
use crate::dynamics::System;

/// RK4 stepper with preallocated buffers (5 vectors of length `dim`); [`Rk4::step`] never
/// allocates.
#[derive(Clone, Debug)]
pub struct Rk4 {
    n: usize,
    k1: Vec<f64>,
    k2: Vec<f64>,
    k3: Vec<f64>,
    k4: Vec<f64>,
    ys: Vec<f64>,
    evals: u64,
}

impl Rk4 {
    /// A stepper for systems of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        let z = || vec![0.0; dim];
        Rk4 {
            n: dim,
            k1: z(),
            k2: z(),
            k3: z(),
            k4: z(),
            ys: z(),
            evals: 0,
        }
    }

    /// State dimension.
    pub fn dim(&self) -> usize {
        self.n
    }

    /// Right-hand-side evaluations made since construction (4 per step).
    pub fn rhs_evals(&self) -> u64 {
        self.evals
    }

    /// Advances `x` in place from `t` to `t + h` (4 evaluations).
    pub fn step<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &mut [f64], h: f64) {
        let n = self.n;
        assert_eq!(x.len(), n, "Rk4::step: state length != stepper dimension");
        let (k1, k2, k3, k4) = (
            &mut self.k1[..n],
            &mut self.k2[..n],
            &mut self.k3[..n],
            &mut self.k4[..n],
        );
        let ys = &mut self.ys[..n];
        let h2 = 0.5 * h;
        sys.rhs(t, x, k1);
        for i in 0..n {
            ys[i] = x[i] + h2 * k1[i];
        }
        sys.rhs(t + h2, ys, k2);
        for i in 0..n {
            ys[i] = x[i] + h2 * k2[i];
        }
        sys.rhs(t + h2, ys, k3);
        for i in 0..n {
            ys[i] = x[i] + h * k3[i];
        }
        sys.rhs(t + h, ys, k4);
        let h6 = h / 6.0;
        for i in 0..n {
            x[i] += h6 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i]);
        }
        self.evals += 4;
    }
}

/// Number of equal steps of size `<= h` covering `dt` (at least 1). A ratio within 1e-12
/// (relative) above an integer counts as that integer, so `dt = 10 h` gives 10 steps despite
/// rounding.
fn n_substeps(dt: f64, h: f64) -> u64 {
    let r = dt / h;
    let m = (r * (1.0 - 1e-12)).ceil();
    if m < 1.0 {
        1
    } else {
        m as u64
    }
}

/// Fixed-step RK4 driver (see [`super::integrate`] for the contract). The step is
/// `opts.h0` (default [`DEFAULT_RK4_STEP`]); each output interval is split into equal steps of
/// size `<= h`. Tolerances and `h_max` are ignored. Every step is checked for blow-up.
pub fn integrate_rk4<'a, S: System + ?Sized>(
    stepper: &mut Rk4,
    sys: &S,
    opts: &SolverOptions,
    t0: f64,
    x0: &[f64],
    t_out: impl Into<Times<'a>>,
    observe: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
) -> Result<SolverStats, IntegrationError> {
    let t_out: Times = t_out.into();
    validate(sys, stepper.dim(), opts, t0, x0, t_out)?;
    let h = opts.h0.unwrap_or(DEFAULT_RK4_STEP);
    let evals0 = stepper.rhs_evals();
    let mut stats = SolverStats {
        t_final: t0,
        ..SolverStats::default()
    };
    if t_out.is_empty() {
        return Ok(stats);
    }
    if let Some(i) = blow_up_index(x0, opts.max_abs) {
        return Err(IntegrationError::BlowUp {
            t: t0,
            index: i,
            value: x0[i],
        });
    }
    let mut x = x0.to_vec();
    let mut t_prev = t0;
    for (k, tk) in t_out.iter().enumerate() {
        let dt = tk - t_prev;
        if dt > 0.0 {
            let m = n_substeps(dt, h);
            let hs = dt / m as f64;
            for j in 0..m {
                if stats.accepted >= opts.max_steps {
                    let t = t_prev + j as f64 * hs;
                    return Err(IntegrationError::TooManySteps {
                        t,
                        steps: stats.accepted,
                    });
                }
                let t = t_prev + j as f64 * hs;
                stepper.step(sys, t, &mut x, hs);
                stats.accepted += 1;
                if let Some(i) = blow_up_index(&x, opts.max_abs) {
                    let t_end = if j + 1 == m { tk } else { t + hs };
                    return Err(IntegrationError::BlowUp {
                        t: t_end,
                        index: i,
                        value: x[i],
                    });
                }
            }
        }
        if !observe(k, tk, &x) {
            return Err(IntegrationError::Interrupted { t: tk });
        }
        t_prev = tk;
    }
    stats.rhs_evals = stepper.rhs_evals() - evals0;
    stats.t_final = t_prev;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::n_substeps;

    #[test]
    fn substeps() {
        assert_eq!(n_substeps(1.0, 0.1), 10);
        assert_eq!(n_substeps(0.3, 0.1), 3);
        assert_eq!(n_substeps(1.05, 0.1), 11);
        assert_eq!(n_substeps(1e-9, 0.1), 1);
        assert_eq!(n_substeps(15.008, 1e-3), 15008);
    }
}

/// Classic RK4 on a batch of states in structure-of-arrays layout (see
/// [`BatchSystem`](crate::dynamics::BatchSystem)): the same arithmetic as [`Rk4::step`] per
/// state, so a state's trajectory is bit-identical to a scalar run, but the right-hand side is
/// evaluated for all states in one call (SIMD in the JIT) and the stage updates vectorise.
#[derive(Debug, Clone)]
pub struct Rk4Batch {
    dim: usize,
    lanes: usize,
    k1: Vec<f64>,
    k2: Vec<f64>,
    k3: Vec<f64>,
    k4: Vec<f64>,
    ys: Vec<f64>,
}

impl Rk4Batch {
    /// Buffers for `lanes` states of dimension `dim`.
    pub fn new(dim: usize, lanes: usize) -> Self {
        let n = dim * lanes;
        Rk4Batch {
            dim,
            lanes,
            k1: vec![0.0; n],
            k2: vec![0.0; n],
            k3: vec![0.0; n],
            k4: vec![0.0; n],
            ys: vec![0.0; n],
        }
    }

    /// Advances the `lanes` states in `x` (SoA, length dim·lanes) from `t` to `t + h`.
    pub fn step<S: crate::dynamics::BatchSystem + ?Sized>(
        &mut self,
        sys: &S,
        t: f64,
        x: &mut [f64],
        h: f64,
    ) {
        let (n, l) = (self.dim * self.lanes, self.lanes);
        assert_eq!(x.len(), n, "Rk4Batch::step: state length != dim × lanes");
        let h2 = 0.5 * h;
        sys.rhs_batch(t, x, l, l, &mut self.k1);
        for ((y, xi), k) in self.ys.iter_mut().zip(x.iter()).zip(&self.k1) {
            *y = xi + h2 * k;
        }
        sys.rhs_batch(t + h2, &self.ys, l, l, &mut self.k2);
        for ((y, xi), k) in self.ys.iter_mut().zip(x.iter()).zip(&self.k2) {
            *y = xi + h2 * k;
        }
        sys.rhs_batch(t + h2, &self.ys, l, l, &mut self.k3);
        for ((y, xi), k) in self.ys.iter_mut().zip(x.iter()).zip(&self.k3) {
            *y = xi + h * k;
        }
        sys.rhs_batch(t + h, &self.ys, l, l, &mut self.k4);
        let h6 = h / 6.0;
        for (i, xi) in x.iter_mut().enumerate().take(n) {
            *xi += h6 * (self.k1[i] + 2.0 * (self.k2[i] + self.k3[i]) + self.k4[i]);
        }
    }
}
