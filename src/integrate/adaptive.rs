//! The adaptive-step driver shared by [`super::Dopri5`] and [`super::Dop853`].
//!
//! Step-size control (Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4 and §IV.2, as coded in
//! `dopri5.f` / `dop853.f`): with the scaled error norm `err` of the attempted step,
//!
//! ```text
//! fac11 = err^expo1
//! fac   = clamp(fac11 / facold^beta / safe, 1/fac2, 1/fac1)      h_new = h / fac
//! ```
//!
//! where `facold = max(err_prev_accepted, 1e-4)` (Lund stabilisation / PI control). A step is
//! accepted when `err <= 1`; after a rejection the next accepted step may not grow, and a rejected
//! step retries with `h / min(1/fac1, fac11/safe)`. A non-finite `err` (stages produced NaN/inf)
//! counts as a rejection with the smallest allowed factor `fac1`.

use super::{blow_up_index, validate, IntegrationError, SolverOptions, SolverStats, Times};
use crate::dynamics::System;

/// Hairer's unit roundoff `UROUND`, used in the step-size underflow test.
const UROUND: f64 = 2.3e-16;

/// Parameters of the step-size controller of an adaptive method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepControl {
    /// Order used by the initial step guess [`hinit`] (`IORD`: 8 for DOP853, 5 for DOPRI5).
    pub order: i32,
    /// Exponent applied to `err` (`1/8 - 0.2 beta` for DOP853, `1/5 - 0.75 beta` for DOPRI5).
    pub expo1: f64,
    /// Lund-stabilisation exponent `beta` (PI control); 0 = classic controller.
    pub beta: f64,
    /// Lower bound of `h_new / h`.
    pub fac1: f64,
    /// Upper bound of `h_new / h`.
    pub fac2: f64,
    /// Safety factor.
    pub safe: f64,
}

/// An embedded Runge–Kutta stepper with a continuous extension, driven by
/// [`integrate_adaptive`].
///
/// The state `(t, x)` is owned by the caller; the stepper owns only preallocated buffers. Protocol:
/// 1. [`reset`](Self::reset) at the initial state (evaluates `f(t, x)`), and again whenever the
///    caller changes `x` by other means (e.g. renormalisation in a Lyapunov computation);
/// 2. [`try_step`](Self::try_step) from `(t, x)` with step `h` — returns the scaled error norm
///    and leaves the candidate `x(t+h)` in [`candidate`](Self::candidate);
/// 3. if the error is `<= 1`, [`accept`](Self::accept) copies the candidate into `x` and makes the
///    continuous extension over `[t, t+h]` available: [`prepare_dense`](Self::prepare_dense) (may
///    evaluate extra stages, idempotent) then [`dense`](Self::dense) at any time of the step.
///
/// None of these methods allocates.
pub trait AdaptiveStepper {
    /// State dimension.
    fn dim(&self) -> usize;
    /// Controller parameters of the method.
    fn control(&self) -> StepControl;
    /// Relative and absolute tolerances `(rtol, atol)` used in the error norm.
    fn tolerances(&self) -> (f64, f64);
    /// Right-hand-side evaluations made by this stepper since construction.
    fn rhs_evals(&self) -> u64;
    /// Starts (or restarts) at `(t, x)`: evaluates `f(t, x)` (1 evaluation) and invalidates the
    /// dense output.
    fn reset<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64]);
    /// Hairer's initial step guess from the current `(t, x)` (call after [`reset`](Self::reset);
    /// 1 evaluation). Never larger than `h_max`.
    fn initial_step<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64], h_max: f64) -> f64;
    /// Attempts a step of size `h > 0` from `(t, x)` and returns the scaled RMS error norm
    /// (accept when `<= 1`; `+inf` when the stages produced non-finite values).
    fn try_step<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64], h: f64) -> f64;
    /// The candidate state `x(t+h)` of the last [`try_step`](Self::try_step).
    fn candidate(&self) -> &[f64];
    /// Accepts the last attempted step: `x` (the state the step started from) is overwritten with
    /// the candidate, the derivative at the new point is made available for the next step (FSAL)
    /// and the step becomes the dense-output interval.
    fn accept<S: System + ?Sized>(&mut self, sys: &S, x: &mut [f64]);
    /// Completes the continuous extension of the last accepted step (DOP853: 3 extra
    /// evaluations, done at most once per step; DOPRI5: no evaluation).
    fn prepare_dense<S: System + ?Sized>(&mut self, sys: &S);
    /// `(t_old, h)` of the last accepted step: the dense output covers `[t_old, t_old + h]`.
    fn dense_interval(&self) -> (f64, f64);
    /// Continuous extension at time `t` of the last accepted step into `out`. Requires
    /// [`prepare_dense`](Self::prepare_dense) since the last [`accept`](Self::accept) (panics
    /// otherwise).
    fn dense(&self, t: f64, out: &mut [f64]);
}

/// Hairer's `HINIT`: initial step such that `h^order * max(|f0|, |f'|) = 0.01` in the scaled
/// norm, bounded by `100 h_euler` and `h_max` (forward direction). Uses `f0 = f(t, x)`, performs
/// one explicit Euler step (1 evaluation of `sys`) with the scratch buffers `y1`, `f1`.
#[allow(clippy::too_many_arguments)]
pub fn hinit<S: System + ?Sized>(
    sys: &S,
    t: f64,
    x: &[f64],
    f0: &[f64],
    order: i32,
    h_max: f64,
    rtol: f64,
    atol: f64,
    y1: &mut [f64],
    f1: &mut [f64],
) -> f64 {
    let n = x.len();
    let (f0, y1, f1) = (&f0[..n], &mut y1[..n], &mut f1[..n]);
    let mut dnf = 0.0;
    let mut dny = 0.0;
    for i in 0..n {
        let sk = atol + rtol * x[i].abs();
        dnf += (f0[i] / sk).powi(2);
        dny += (x[i] / sk).powi(2);
    }
    let mut h = if dnf <= 1e-10 || dny <= 1e-10 {
        1e-6
    } else {
        (dny / dnf).sqrt() * 0.01
    };
    h = h.min(h_max);
    if h.is_nan() || h <= 0.0 {
        h = 1e-6_f64.min(h_max);
    }
    for i in 0..n {
        y1[i] = x[i] + h * f0[i];
    }
    sys.rhs(t + h, y1, f1);
    let mut der2 = 0.0;
    for i in 0..n {
        let sk = atol + rtol * x[i].abs();
        der2 += ((f1[i] - f0[i]) / sk).powi(2);
    }
    let der2 = der2.sqrt() / h;
    let der12 = der2.abs().max(dnf.sqrt());
    let h1 = if der12 <= 1e-15 {
        (1e-6_f64).max(h * 1e-3)
    } else {
        (0.01 / der12).powf(1.0 / f64::from(order))
    };
    // Floor: a state within roundoff of zero (|x| ~ 1e-16 where the solution crosses 0 at a
    // window boundary) makes 100 h_euler a few ulps of t, below the step-size-too-small limit
    // (10 u |t|); 1000 ε |t| sits above it and the error control shrinks it if needed.
    let h = (100.0 * h)
        .min(h1)
        .max(1000.0 * f64::EPSILON * t.abs())
        .min(h_max);
    if h > 0.0 && h.is_finite() {
        h
    } else {
        1e-6_f64.min(h_max)
    }
}

/// Generic adaptive driver: integrates from `(t0, x0)` with `stepper` and reports the state at
/// every output time through `observe` (see [`super::integrate`] for the contract). The stepper
/// must have dimension `sys.dim()`; its tolerances are its own (those of `opts` are ignored here;
/// [`super::integrate`] builds the stepper from them). `opts.method` is ignored.
///
/// Intermediate outputs come from the dense output; only the final output time ends a step
/// exactly (the last step is cut to it, as Hairer's codes do with `XEND`).
pub fn integrate_adaptive<'a, A: AdaptiveStepper, S: System + ?Sized>(
    stepper: &mut A,
    sys: &S,
    opts: &SolverOptions,
    t0: f64,
    x0: &[f64],
    t_out: impl Into<Times<'a>>,
    observe: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
) -> Result<SolverStats, IntegrationError> {
    integrate_adaptive_monitored(stepper, sys, opts, t0, x0, t_out, observe, None)
}

/// A callback `(t, x, h) -> stop?` run after accepted steps (see [`integrate_adaptive_monitored`]).
pub type StepMonitor<'a> = &'a mut dyn FnMut(f64, &[f64], f64) -> bool;

/// [`integrate_adaptive`] with a monitor called after every accepted step that does not end
/// the run, as `monitor(t, x, h)`; returning `true` stops the run with
/// [`IntegrationError::Stiff`] at `(t, x)` (every output time ≤ t has been reported).
#[allow(clippy::too_many_arguments)]
pub fn integrate_adaptive_monitored<'a, A: AdaptiveStepper, S: System + ?Sized>(
    stepper: &mut A,
    sys: &S,
    opts: &SolverOptions,
    t0: f64,
    x0: &[f64],
    t_out: impl Into<Times<'a>>,
    observe: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
    mut monitor: Option<StepMonitor<'_>>,
) -> Result<SolverStats, IntegrationError> {
    let t_out: Times = t_out.into();
    validate(sys, stepper.dim(), opts, t0, x0, t_out)?;
    let evals0 = stepper.rhs_evals();
    let mut stats = SolverStats {
        t_final: t0,
        ..SolverStats::default()
    };
    let n_out = t_out.len();
    if n_out == 0 {
        return Ok(stats);
    }
    if let Some(i) = blow_up_index(x0, opts.max_abs) {
        return Err(IntegrationError::BlowUp {
            t: t0,
            index: i,
            value: x0[i],
        });
    }
    // Outputs at t0 see x0 itself.
    let mut k = 0;
    while k < n_out && t_out.get(k) == t0 {
        if !observe(k, t0, x0) {
            return Err(IntegrationError::Interrupted { t: t0 });
        }
        k += 1;
    }
    if k == n_out {
        return Ok(stats);
    }

    let t_end = t_out.get(n_out - 1);
    let h_max = opts.h_max.unwrap_or(t_end - t0).min(t_end - t0);
    let ctl = stepper.control();
    let (facc1, facc2) = (1.0 / ctl.fac1, 1.0 / ctl.fac2);

    let mut x = x0.to_vec();
    let mut buf = vec![0.0; x0.len()];
    let mut t = t0;
    stepper.reset(sys, t, &x);
    let mut h = match opts.h0 {
        Some(h0) => h0.min(h_max),
        None => stepper.initial_step(sys, t, &x, h_max),
    };
    let mut facold: f64 = 1e-4;
    let mut reject = false;
    let mut attempts: u64 = 0;

    let evals = |st: &A| st.rhs_evals() - evals0;
    loop {
        if attempts >= opts.max_steps {
            return Err(IntegrationError::TooManySteps { t, steps: attempts });
        }
        if !h.is_finite() || 0.1 * h.abs() <= t.abs() * UROUND {
            // Step-size underflow. If the last attempt failed on non-finite stages, say where.
            if attempts > 0 {
                let cand = stepper.candidate();
                if let Some(i) = cand.iter().position(|v| !v.is_finite()) {
                    return Err(IntegrationError::BlowUp {
                        t,
                        index: i,
                        value: cand[i],
                    });
                }
            }
            return Err(IntegrationError::StepSizeTooSmall { t, h });
        }
        let mut last = false;
        if t + 1.01 * h - t_end > 0.0 {
            h = t_end - t;
            last = true;
        }
        attempts += 1;
        let err = stepper.try_step(sys, t, &x, h);
        let err = if err.is_nan() { f64::INFINITY } else { err };

        let fac11 = err.powf(ctl.expo1);
        let fac = (fac11 / facold.powf(ctl.beta) / ctl.safe).clamp(facc2, facc1);
        let mut h_new = h / fac;
        if err <= 1.0 {
            facold = err.max(1e-4);
            stats.accepted += 1;
            stepper.accept(sys, &mut x);
            let t_new = if last { t_end } else { t + h };
            if let Some(i) = blow_up_index(&x, opts.max_abs) {
                return Err(IntegrationError::BlowUp {
                    t: t_new,
                    index: i,
                    value: x[i],
                });
            }
            while k < n_out && t_out.get(k) <= t_new {
                let tk = t_out.get(k);
                let keep_going = if tk == t_new {
                    observe(k, tk, &x)
                } else {
                    stepper.prepare_dense(sys);
                    stepper.dense(tk, &mut buf);
                    observe(k, tk, &buf)
                };
                if !keep_going {
                    return Err(IntegrationError::Interrupted { t: tk });
                }
                k += 1;
            }
            t = t_new;
            if k < n_out {
                if let Some(m) = monitor.as_mut() {
                    if m(t, &x, h) {
                        return Err(IntegrationError::Stiff {
                            t,
                            state: x.clone(),
                        });
                    }
                }
            }
            if k == n_out {
                stats.rhs_evals = evals(stepper);
                stats.t_final = t;
                return Ok(stats);
            }
            if h_new.abs() > h_max {
                h_new = h_max;
            }
            if reject {
                h_new = h_new.min(h);
            }
            reject = false;
        } else {
            h_new = h / facc1.min(fac11 / ctl.safe);
            reject = true;
            stats.rejected += 1;
        }
        h = h_new;
    }
}
