//! A linearly implicit (Rosenbrock) method for stiff systems, using the exact Jacobian.
//!
//! The modified Rosenbrock formula of Shampine & Reichelt ("The MATLAB ODE suite", SIAM J. Sci.
//! Comput. 18, 1997; MATLAB's `ode23s`), with d = 1/(2 + √2), e32 = 6 + √2, W = I − h d J:
//!
//! ```text
//! F0 = f(t, y)                         k1 = W⁻¹ (F0 + h d T)
//! F1 = f(t + h/2, y + h k1/2)          k2 = W⁻¹ (F1 − k1) + k1
//! y1 = y + h k2                        F2 = f(t + h, y1)
//! k3 = W⁻¹ (F2 − e32 (k2 − F1) − 2 (k1 − F0) + h d T)
//! error ≈ h (k1 − 2 k2 + k3) / 6
//! ```
//!
//! with J = ∂f/∂x (exact, from the symbolic Jacobian) and T = ∂f/∂t (a forward difference in t;
//! zero for autonomous systems up to round-off). The advancing formula is second order and
//! L-stable, the error estimate third order; W is factorised once per step (LU with partial
//! pivoting on preallocated buffers, no allocation while stepping). Continuous extension:
//! y(t + s h) = y + h [s(1 − s) k1 + s(s − 2d) k2] / (1 − 2d). FSAL: F2 is the next F0.
//!
//! Step control: h_new = h · clamp(0.9 err^(−1/3), 0.2, 5), err the RMS of the scaled error
//! as in the explicit methods. Counts: 3 evaluations + 1 (∂f/∂t) + 1 Jacobian + 1 LU per step.

// Stage updates index several buffers of the same length in lockstep; explicit indices read
// closer to the formulas than zipped iterators.
#![allow(clippy::needless_range_loop)]

use super::{blow_up_index, IntegrationError, SolverOptions, SolverStats, Times};
use crate::dynamics::Jacobian;

const UROUND: f64 = 2.220446049250313e-16;

/// Buffers of the Rosenbrock stepper for dimension `n`.
struct Work {
    jac: Vec<f64>,
    w: Vec<f64>,
    piv: Vec<usize>,
    f0: Vec<f64>,
    f1: Vec<f64>,
    f2: Vec<f64>,
    ft: Vec<f64>,
    dfdt: Vec<f64>,
    k1: Vec<f64>,
    k2: Vec<f64>,
    k3: Vec<f64>,
    y1: Vec<f64>,
    tmp: Vec<f64>,
}

impl Work {
    fn new(n: usize) -> Work {
        let v = || vec![0.0; n];
        Work {
            jac: vec![0.0; n * n],
            w: vec![0.0; n * n],
            piv: vec![0; n],
            f0: v(),
            f1: v(),
            f2: v(),
            ft: v(),
            dfdt: v(),
            k1: v(),
            k2: v(),
            k3: v(),
            y1: v(),
            tmp: v(),
        }
    }
}

/// LU factorisation with partial pivoting of the row-major n×n matrix `a` in place; `false` if
/// singular.
fn lu(a: &mut [f64], piv: &mut [usize], n: usize) -> bool {
    for k in 0..n {
        let (mut p, mut best) = (k, a[k * n + k].abs());
        for i in k + 1..n {
            let v = a[i * n + k].abs();
            if v > best {
                best = v;
                p = i;
            }
        }
        if best == 0.0 || !best.is_finite() {
            return false;
        }
        piv[k] = p;
        if p != k {
            for j in 0..n {
                a.swap(k * n + j, p * n + j);
            }
        }
        let d = a[k * n + k];
        for i in k + 1..n {
            let l = a[i * n + k] / d;
            a[i * n + k] = l;
            if l != 0.0 {
                for j in k + 1..n {
                    a[i * n + j] -= l * a[k * n + j];
                }
            }
        }
    }
    true
}

/// Solves (LU) x = b in place (`b` becomes x).
fn lu_solve(a: &[f64], piv: &[usize], n: usize, b: &mut [f64]) {
    for k in 0..n {
        b.swap(k, piv[k]);
        let bk = b[k];
        for i in k + 1..n {
            b[i] -= a[i * n + k] * bk;
        }
    }
    for k in (0..n).rev() {
        let mut s = b[k];
        for j in k + 1..n {
            s -= a[k * n + j] * b[j];
        }
        b[k] = s / a[k * n + k];
    }
}

/// Integrates a stiff system from `(t0, x0)` and reports the state at every output time
/// (continuous extension between steps; the last step ends on the last output time). Tolerances,
/// `h0`, `h_max`, `max_steps` and `max_abs` are taken from `opts` (its method is ignored).
pub fn integrate_rosenbrock<'a, S: Jacobian + ?Sized>(
    sys: &S,
    opts: &SolverOptions,
    t0: f64,
    x0: &[f64],
    t_out: impl Into<Times<'a>>,
    observe: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
) -> Result<SolverStats, IntegrationError> {
    let t_out: Times = t_out.into();
    let n = sys.dim();
    if x0.len() != n {
        return Err(IntegrationError::InvalidInput {
            reason: format!("initial state has {} values for dimension {n}", x0.len()),
        });
    }
    crate::dynamics::check_dense_jacobian(n, "the Rosenbrock (stiff) method")
        .map_err(|reason| IntegrationError::InvalidInput { reason })?;
    let mut stats = SolverStats {
        t_final: t0,
        ..SolverStats::default()
    };
    let Some(t_end) = t_out.last() else {
        return Ok(stats);
    };
    let d = 1.0 / (2.0 + 2f64.sqrt());
    let e32 = 6.0 + 2f64.sqrt();
    let mut wk = Work::new(n);
    let mut x = x0.to_vec();
    let mut t = t0;
    let mut k = 0;
    while k < t_out.len() && t_out.get(k) <= t0 {
        if !observe(k, t0, x0) {
            return Err(IntegrationError::Interrupted { t: t0 });
        }
        k += 1;
    }
    if k == t_out.len() {
        return Ok(stats);
    }
    let (rtol, atol) = (opts.rtol, opts.atol);
    let h_max = opts.h_max.unwrap_or(t_end - t0).min(t_end - t0);
    sys.rhs(t, &x, &mut wk.f0);
    let mut evals = 1u64;
    // initial step: |h| · ‖f0‖ ≈ rtol^(1/3) in the scaled norm
    let mut h = opts.h0.unwrap_or_else(|| {
        let mut s = 0.0;
        for i in 0..n {
            let sc = atol + rtol * x[i].abs();
            s += (wk.f0[i] / sc).powi(2);
        }
        let fnorm = (s / n as f64).sqrt();
        let h = if fnorm > 0.0 {
            rtol.powf(1.0 / 3.0) / fnorm
        } else {
            h_max
        };
        h.min(h_max).max(1e-12 * (t_end - t0).abs().max(1.0))
    });
    let mut attempts = 0u64;
    let mut reject = false;
    loop {
        if attempts >= opts.max_steps {
            return Err(IntegrationError::TooManySteps { t, steps: attempts });
        }
        if !h.is_finite() || 0.1 * h.abs() <= t.abs().max(1.0) * UROUND {
            return Err(IntegrationError::StepSizeTooSmall { t, h });
        }
        let last = t + 1.01 * h >= t_end;
        if last {
            h = t_end - t;
        }
        attempts += 1;
        // Jacobian and ∂f/∂t at (t, x)
        sys.jacobian(t, &x, &mut wk.jac);
        let dt = UROUND.sqrt() * t.abs().max(1.0);
        sys.rhs(t + dt, &x, &mut wk.ft);
        evals += 1;
        for i in 0..n {
            wk.dfdt[i] = (wk.ft[i] - wk.f0[i]) / dt;
        }
        for i in 0..n {
            for j in 0..n {
                wk.w[i * n + j] = if i == j { 1.0 } else { 0.0 } - h * d * wk.jac[i * n + j];
            }
        }
        stats.rhs_evals = evals;
        if !lu(&mut wk.w, &mut wk.piv, n) {
            h *= 0.25;
            reject = true;
            stats.rejected += 1;
            continue;
        }
        let hd = h * d;
        for i in 0..n {
            wk.k1[i] = wk.f0[i] + hd * wk.dfdt[i];
        }
        lu_solve(&wk.w, &wk.piv, n, &mut wk.k1);
        for i in 0..n {
            wk.tmp[i] = x[i] + 0.5 * h * wk.k1[i];
        }
        sys.rhs(t + 0.5 * h, &wk.tmp, &mut wk.f1);
        for i in 0..n {
            wk.k2[i] = wk.f1[i] - wk.k1[i];
        }
        lu_solve(&wk.w, &wk.piv, n, &mut wk.k2);
        for i in 0..n {
            wk.k2[i] += wk.k1[i];
            wk.y1[i] = x[i] + h * wk.k2[i];
        }
        let t_new = if last { t_end } else { t + h };
        sys.rhs(t_new, &wk.y1, &mut wk.f2);
        for i in 0..n {
            wk.k3[i] = wk.f2[i] - e32 * (wk.k2[i] - wk.f1[i]) - 2.0 * (wk.k1[i] - wk.f0[i])
                + hd * wk.dfdt[i];
        }
        lu_solve(&wk.w, &wk.piv, n, &mut wk.k3);
        evals += 2;
        stats.rhs_evals = evals;
        let mut s = 0.0;
        for i in 0..n {
            let e = h / 6.0 * (wk.k1[i] - 2.0 * wk.k2[i] + wk.k3[i]);
            let sc = atol + rtol * x[i].abs().max(wk.y1[i].abs());
            s += (e / sc).powi(2);
        }
        let err = (s / n as f64).sqrt();
        let err = if err.is_finite() { err } else { f64::INFINITY };
        let fac = (0.9 * err.powf(-1.0 / 3.0)).clamp(0.2, 5.0);
        if err <= 1.0 {
            stats.accepted += 1;
            if let Some(i) = blow_up_index(&wk.y1, opts.max_abs) {
                return Err(IntegrationError::BlowUp {
                    t: t_new,
                    index: i,
                    value: wk.y1[i],
                });
            }
            // outputs inside (t, t_new] from the continuous extension
            let c = 1.0 / (1.0 - 2.0 * d);
            while k < t_out.len() && t_out.get(k) <= t_new {
                let tk = t_out.get(k);
                let ok = if tk == t_new {
                    observe(k, tk, &wk.y1)
                } else {
                    let sfr = (tk - t) / h;
                    let a1 = sfr * (1.0 - sfr) * c;
                    let a2 = sfr * (sfr - 2.0 * d) * c;
                    for i in 0..n {
                        wk.tmp[i] = x[i] + h * (a1 * wk.k1[i] + a2 * wk.k2[i]);
                    }
                    observe(k, tk, &wk.tmp)
                };
                if !ok {
                    return Err(IntegrationError::Interrupted { t: tk });
                }
                k += 1;
            }
            x.copy_from_slice(&wk.y1);
            std::mem::swap(&mut wk.f0, &mut wk.f2);
            t = t_new;
            stats.t_final = t;
            if k == t_out.len() {
                return Ok(stats);
            }
            let mut h_new = (h * fac).min(h_max);
            if reject {
                h_new = h_new.min(h);
            }
            reject = false;
            h = h_new;
        } else {
            stats.rejected += 1;
            reject = true;
            h *= fac.min(1.0);
        }
    }
}
