//! DOPRI5: the explicit Runge–Kutta pair of order 5(4) of Dormand & Prince (1980) with
//! Shampine's (1986) 4th-order dense output, after Hairer & Wanner's `dopri5.f` (E. Hairer,
//! S. P. Nørsett, G. Wanner, *Solving Ordinary Differential Equations I*, 2nd ed., §II.5, §II.6).
//!
//! # Method
//! Butcher tableau (the 7th stage is evaluated at the new point and reused as `k_1` of the next
//! step — FSAL):
//!
//! ```text
//!  0    |
//!  1/5  | 1/5
//!  3/10 | 3/40        9/40
//!  4/5  | 44/45      −56/15      32/9
//!  8/9  | 19372/6561 −25360/2187 64448/6561 −212/729
//!  1    | 9017/3168  −355/33     46732/5247 49/176   −5103/18656
//!  1    | 35/384      0          500/1113   125/192  −2187/6784   11/84
//! ------+--------------------------------------------------------------------
//!  y5   | 35/384      0          500/1113   125/192  −2187/6784   11/84     0
//!  e    | 71/57600    0         −71/16695   71/1920  −17253/339200 22/525  −1/40
//! ```
//!
//! `e = b5 − b4` gives the local error estimate `err_i = h Σ e_j k_j`, measured in the RMS norm
//! `sqrt(1/n Σ (err_i / (atol + rtol max(|y_i|, |y_new,i|)))²)`.
//!
//! Dense output on `θ = (t* − t)/h`:
//! `x = r1 + θ (r2 + (1−θ) (r3 + θ (r4 + (1−θ) r5)))` with `r1 = y`, `r2 = y_new − y`,
//! `r3 = h k_1 − r2`, `r4 = r2 − h k_7 − r3`, `r5 = h (d1 k1 + d3 k3 + d4 k4 + d5 k5 + d6 k6 + d7 k7)`.
//!
//! Cost: 6 evaluations per attempted step. Controller (Hairer's defaults): PI control with
//! `beta = 0.04`, `expo1 = 0.2 − 0.75 beta`, `fac1 = 0.2`, `fac2 = 10`, `safe = 0.9`; initial
//! step by `HINIT` with order 5.

use super::adaptive::{hinit, AdaptiveStepper, StepControl};
use crate::dynamics::System;

const C2: f64 = 0.2;
const C3: f64 = 0.3;
const C4: f64 = 0.8;
const C5: f64 = 8.0 / 9.0;
const A21: f64 = 0.2;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
const A71: f64 = 35.0 / 384.0;
const A73: f64 = 500.0 / 1113.0;
const A74: f64 = 125.0 / 192.0;
const A75: f64 = -2187.0 / 6784.0;
const A76: f64 = 11.0 / 84.0;
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;
// Dense output of Shampine (1986).
const D1: f64 = -12715105075.0 / 11282082432.0;
const D3: f64 = 87487479700.0 / 32700410799.0;
const D4: f64 = -10690763975.0 / 1880347072.0;
const D5: f64 = 701980252875.0 / 199316789632.0;
const D6: f64 = -1453857185.0 / 822651844.0;
const D7: f64 = 69997945.0 / 29380423.0;

/// Dormand–Prince 5(4) stepper (see the [module documentation](self)). Holds 11 work vectors of
/// length `dim` plus the 5 dense-output blocks, allocated once in [`Dopri5::new`]; stepping
/// never allocates.
#[derive(Clone, Debug)]
pub struct Dopri5 {
    n: usize,
    rtol: f64,
    atol: f64,
    /// Stages k_1..k_7 of the current attempt; k_7 = f(t+h, y_new).
    k: [Vec<f64>; 7],
    ys: Vec<f64>,
    ynew: Vec<f64>,
    yold: Vec<f64>,
    rcont: Vec<f64>,
    t_try: f64,
    h_try: f64,
    t_old: f64,
    h_old: f64,
    /// k_7 of the accepted step is the next k_1 (swapped in at the next attempt).
    fsal_pending: bool,
    /// 0: no accepted step, 1: accepted, 2: `rcont` ready.
    dense: u8,
    evals: u64,
}

impl Dopri5 {
    /// A stepper for systems of dimension `dim` with tolerances `rtol`, `atol` (should be `> 0`).
    pub fn new(dim: usize, rtol: f64, atol: f64) -> Self {
        let z = || vec![0.0; dim];
        Dopri5 {
            n: dim,
            rtol,
            atol,
            k: std::array::from_fn(|_| z()),
            ys: z(),
            ynew: z(),
            yold: z(),
            rcont: vec![0.0; 5 * dim],
            t_try: 0.0,
            h_try: 0.0,
            t_old: 0.0,
            h_old: 0.0,
            fsal_pending: false,
            dense: 0,
            evals: 0,
        }
    }

    /// Changes the tolerances (takes effect at the next attempted step).
    pub fn set_tolerances(&mut self, rtol: f64, atol: f64) {
        self.rtol = rtol;
        self.atol = atol;
    }

    /// The derivative `f(t, x)` at the current step start (valid after `reset` or `accept`).
    pub fn derivative(&self) -> &[f64] {
        if self.fsal_pending {
            &self.k[6]
        } else {
            &self.k[0]
        }
    }

    /// The dense-output coefficients `r1..r5` of the last accepted step (5 blocks of `dim`
    /// values, block-major: `r_b` of component `i` at `(b-1) dim + i`; see the module
    /// documentation for the polynomial). Requires [`AdaptiveStepper::prepare_dense`] since the
    /// last [`AdaptiveStepper::accept`] (panics otherwise). Used by the DDE solver's history.
    pub fn dense_coefficients(&self) -> &[f64] {
        assert!(
            self.dense == 2,
            "Dopri5::dense_coefficients called without prepare_dense after an accepted step"
        );
        &self.rcont
    }

    fn take_fsal(&mut self) {
        if self.fsal_pending {
            self.k.swap(0, 6);
            self.fsal_pending = false;
        }
    }
}

impl AdaptiveStepper for Dopri5 {
    fn dim(&self) -> usize {
        self.n
    }

    fn control(&self) -> StepControl {
        let beta = 0.04;
        StepControl {
            order: 5,
            expo1: 0.2 - beta * 0.75,
            beta,
            fac1: 0.2,
            fac2: 10.0,
            safe: 0.9,
        }
    }

    fn tolerances(&self) -> (f64, f64) {
        (self.rtol, self.atol)
    }

    fn rhs_evals(&self) -> u64 {
        self.evals
    }

    fn reset<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64]) {
        sys.rhs(t, x, &mut self.k[0]);
        self.evals += 1;
        self.fsal_pending = false;
        self.dense = 0;
    }

    fn initial_step<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64], h_max: f64) -> f64 {
        self.take_fsal();
        self.dense = 0;
        self.evals += 1;
        hinit(
            sys,
            t,
            x,
            &self.k[0],
            5,
            h_max,
            self.rtol,
            self.atol,
            &mut self.ys,
            &mut self.ynew,
        )
    }

    fn try_step<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64], h: f64) -> f64 {
        let n = self.n;
        assert_eq!(
            x.len(),
            n,
            "Dopri5::try_step: state length != stepper dimension"
        );
        self.take_fsal();
        self.dense = 0;
        self.t_try = t;
        self.h_try = h;
        let (rtol, atol) = (self.rtol, self.atol);
        let [k1, k2, k3, k4, k5, k6, k7] = &mut self.k;
        let (k1, k2, k3, k4) = (&mut k1[..n], &mut k2[..n], &mut k3[..n], &mut k4[..n]);
        let (k5, k6, k7) = (&mut k5[..n], &mut k6[..n], &mut k7[..n]);
        let ys = &mut self.ys[..n];
        let ynew = &mut self.ynew[..n];

        for i in 0..n {
            ys[i] = x[i] + h * A21 * k1[i];
        }
        sys.rhs(t + C2 * h, ys, k2);
        for i in 0..n {
            ys[i] = x[i] + h * (A31 * k1[i] + A32 * k2[i]);
        }
        sys.rhs(t + C3 * h, ys, k3);
        for i in 0..n {
            ys[i] = x[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i]);
        }
        sys.rhs(t + C4 * h, ys, k4);
        for i in 0..n {
            ys[i] = x[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]);
        }
        sys.rhs(t + C5 * h, ys, k5);
        for i in 0..n {
            ys[i] =
                x[i] + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i]);
        }
        sys.rhs(t + h, ys, k6);
        for i in 0..n {
            ynew[i] =
                x[i] + h * (A71 * k1[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i]);
        }
        sys.rhs(t + h, ynew, k7);
        self.evals += 6;

        let mut err = 0.0;
        for i in 0..n {
            let e =
                h * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i]);
            let sk = atol + rtol * x[i].abs().max(ynew[i].abs());
            err += (e / sk) * (e / sk);
        }
        let err = (err / n as f64).sqrt();
        if err.is_nan() {
            f64::INFINITY
        } else {
            err
        }
    }

    fn candidate(&self) -> &[f64] {
        &self.ynew
    }

    fn accept<S: System + ?Sized>(&mut self, _sys: &S, x: &mut [f64]) {
        self.yold.copy_from_slice(x);
        x.copy_from_slice(&self.ynew);
        self.fsal_pending = true;
        self.t_old = self.t_try;
        self.h_old = self.h_try;
        self.dense = 1;
    }

    fn prepare_dense<S: System + ?Sized>(&mut self, _sys: &S) {
        match self.dense {
            2 => return,
            0 => panic!("Dopri5::prepare_dense: no accepted step to interpolate"),
            _ => {}
        }
        let n = self.n;
        let h = self.h_old;
        let [k1, _, k3, k4, k5, k6, k7] = &self.k;
        let (k1, k3, k4, k5, k6, k7) = (&k1[..n], &k3[..n], &k4[..n], &k5[..n], &k6[..n], &k7[..n]);
        let y = &self.yold[..n];
        let ynew = &self.ynew[..n];
        let (r0, r) = self.rcont.split_at_mut(n);
        let (r1, r) = r.split_at_mut(n);
        let (r2, r) = r.split_at_mut(n);
        let (r3, r4) = r.split_at_mut(n);
        for i in 0..n {
            let ydiff = ynew[i] - y[i];
            let bspl = h * k1[i] - ydiff;
            r0[i] = y[i];
            r1[i] = ydiff;
            r2[i] = bspl;
            r3[i] = ydiff - h * k7[i] - bspl;
            r4[i] =
                h * (D1 * k1[i] + D3 * k3[i] + D4 * k4[i] + D5 * k5[i] + D6 * k6[i] + D7 * k7[i]);
        }
        self.dense = 2;
    }

    fn dense_interval(&self) -> (f64, f64) {
        (self.t_old, self.h_old)
    }

    fn dense(&self, t: f64, out: &mut [f64]) {
        assert!(
            self.dense == 2,
            "Dopri5::dense called without prepare_dense after an accepted step"
        );
        let n = self.n;
        let th = (t - self.t_old) / self.h_old;
        let th1 = 1.0 - th;
        let r = &self.rcont[..5 * n];
        let out = &mut out[..n];
        for i in 0..n {
            out[i] = r[i]
                + th * (r[n + i] + th1 * (r[2 * n + i] + th * (r[3 * n + i] + th1 * r[4 * n + i])));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tableau_consistency() {
        let rows: [(f64, &[f64]); 6] = [
            (C2, &[A21]),
            (C3, &[A31, A32]),
            (C4, &[A41, A42, A43]),
            (C5, &[A51, A52, A53, A54]),
            (1.0, &[A61, A62, A63, A64, A65]),
            (1.0, &[A71, A73, A74, A75, A76]),
        ];
        for (c, a) in rows {
            assert!((a.iter().sum::<f64>() - c).abs() < 1e-14);
        }
        assert!((E1 + E3 + E4 + E5 + E6 + E7).abs() < 1e-15);
        assert!((D1 + D3 + D4 + D5 + D6 + D7).abs() < 1e-12);
    }
}
