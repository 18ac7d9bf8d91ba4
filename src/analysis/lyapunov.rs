//! Lyapunov spectra from the variational equations, and the dimensions and entropies derived from
//! them.
//!
//! Flows: the state x and k tangent vectors Q = (q_1 … q_k) (D×k) are integrated together,
//! x' = f(t, x), Q' = J(t, x) Q, with the exact (symbolic, compiled) Jacobian J and the same
//! adaptive DOP853 solver as trajectories. Every `qr_interval` time units Q is re-orthonormalised
//! by modified Gram–Schmidt, Q = Q̃ R, and ln R_ii is accumulated (Benettin et al. 1980; Shimada &
//! Nagashima 1979): λ_i = (1/T) Σ ln R_ii over the measured time T, after a discarded transient.
//! Maps: the same with Q ← J(x_n) Q and x_{n+1} = f(x_n), one product per iteration.
//!
//! Error bars: the measured span is cut into `blocks` equal blocks; the exponent of each block
//! is computed from its own ln R_ii sums and the error is the standard error of the block values
//! (or, with several initial conditions, of their per-IC exponents).
//!
//! Identity checked by the tests: Σ_i ln R_ii = ln |det Φ| = ∫ tr J dt, so for k = D the sum of
//! the exponents equals the time average of tr J exactly (−(σ + 1 + β) for Lorenz).
//!
//! Cancellation: every computation here polls [`SpectrumOptions::cancel`] (flows every 256
//! attempted steps, maps every 1024 iterations, two-trajectory renormalisation every interval of
//! a flow and every 1024 of a map, delay equations every integrated window) and returns [`IntegrationError::Interrupted`] at the
//! time reached once it is set.

use crate::control::Cancel;
use crate::integrate::{
    integrate_adaptive, AdaptiveStepper, Dop853, IntegrationError, SolverOptions,
};
use crate::systems::{Jacobian, System, TimeKind};
use std::cell::RefCell;

/// Settings of a spectrum computation.
#[derive(Debug, Clone)]
pub struct SpectrumOptions {
    /// Number of exponents k (≤ D).
    pub exponents: usize,
    /// Discarded transient (time units; iterations for maps).
    pub transient: f64,
    /// Measured span T (time units; iterations for maps).
    pub span: f64,
    /// Re-orthonormalisation interval (time units; maps: every `qr_interval` iterations, rounded).
    pub qr_interval: f64,
    /// Blocks for the error bar.
    pub blocks: usize,
    /// Tolerances of the augmented integration.
    pub rtol: f64,
    pub atol: f64,
    /// Cancellation (e.g. Ctrl-C, connected by the front end): the computation stops at its next
    /// check with [`IntegrationError::Interrupted`].
    pub cancel: Cancel,
}

impl Default for SpectrumOptions {
    fn default() -> Self {
        SpectrumOptions {
            exponents: usize::MAX,
            transient: 100.0,
            span: 2000.0,
            qr_interval: 1.0,
            blocks: 10,
            rtol: 1e-9,
            atol: 1e-9,
            cancel: Cancel::new(),
        }
    }
}

/// A Lyapunov spectrum with error bars.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Spectrum {
    /// Exponents in decreasing order (per time unit; per iteration for maps).
    pub exponents: Vec<f64>,
    /// Standard errors (from blocks or initial conditions).
    pub errors: Vec<f64>,
    /// Sum of the k exponents (for k = D: the time average of tr J).
    pub sum: f64,
    /// Measured span.
    pub span: f64,
}

/// The variational system (x, Q) of a flow: dimension D + D·k, Q stored column after column.
struct Variational<'a, S: Jacobian + ?Sized> {
    sys: &'a S,
    d: usize,
    k: usize,
    jac: RefCell<Vec<f64>>,
}

impl<S: Jacobian + ?Sized> System for Variational<'_, S> {
    fn dim(&self) -> usize {
        self.d * (1 + self.k)
    }
    fn rhs(&self, t: f64, z: &[f64], out: &mut [f64]) {
        // small systems: Jacobian on the stack and the product unrolled by the compiler
        match self.d {
            1 => self.rhs_fixed::<1>(t, z, out),
            2 => self.rhs_fixed::<2>(t, z, out),
            3 => self.rhs_fixed::<3>(t, z, out),
            4 => self.rhs_fixed::<4>(t, z, out),
            5 => self.rhs_fixed::<5>(t, z, out),
            6 => self.rhs_fixed::<6>(t, z, out),
            _ => self.rhs_general(t, z, out),
        }
    }
}

impl<S: Jacobian + ?Sized> Variational<'_, S> {
    #[inline(always)]
    fn rhs_fixed<const D: usize>(&self, t: f64, z: &[f64], out: &mut [f64]) {
        let (x, q) = z.split_at(D);
        let (fx, fq) = out.split_at_mut(D);
        let mut raw = [[0.0f64; D]; D];
        self.sys.rhs_jacobian(t, x, fx, raw.as_flattened_mut());
        // Element-wise (volatile) reads: the kernel has just written the entries one by one, and
        // the compiler's paired 16-byte loads of them would fail store-to-load forwarding (a
        // stall that cost a third of this function's time).
        let mut jac = [[0.0f64; D]; D];
        for r in 0..D {
            for j in 0..D {
                // SAFETY: in-bounds read of an initialised local array.
                jac[r][j] = unsafe { std::ptr::read_volatile(&raw[r][j]) };
            }
        }
        for (qc, fc) in q.chunks_exact(D).zip(fq.chunks_exact_mut(D)).take(self.k) {
            let mut v = [0.0f64; D];
            v.copy_from_slice(qc);
            for r in 0..D {
                let mut acc = 0.0;
                for j in 0..D {
                    acc += jac[r][j] * v[j];
                }
                fc[r] = acc;
            }
        }
    }

    fn rhs_general(&self, t: f64, z: &[f64], out: &mut [f64]) {
        let d = self.d;
        let (x, q) = z.split_at(d);
        let (fx, fq) = out.split_at_mut(d);
        let mut jac = self.jac.borrow_mut();
        self.sys.rhs_jacobian(t, x, fx, &mut jac);
        for c in 0..self.k {
            let qc = &q[c * d..(c + 1) * d];
            for r in 0..d {
                let row = &jac[r * d..(r + 1) * d];
                fq[c * d + r] = row.iter().zip(qc).map(|(a, b)| a * b).sum();
            }
        }
    }
}

/// Modified Gram–Schmidt on the k columns (length d each) of `q`, in place; returns ln R_ii.
pub fn orthonormalise(q: &mut [f64], d: usize, k: usize, log_r: &mut [f64]) {
    orthonormalise_weighted(q, d, k, 1.0, log_r)
}

/// Modified Gram–Schmidt of k vectors of length n (stored one after another) in the inner
/// product ⟨u, w⟩ = scale·Σ u_i w_i, in place; ln of the diagonal of R into `log_r` (a zero
/// vector stays zero, ln R = −∞).
pub fn orthonormalise_weighted(q: &mut [f64], n: usize, k: usize, scale: f64, log_r: &mut [f64]) {
    for (j, lr) in log_r.iter_mut().enumerate().take(k) {
        let (done, rest) = q.split_at_mut(j * n);
        let v = &mut rest[..n];
        for u in done.chunks_exact(n) {
            let p = scale * u.iter().zip(v.iter()).map(|(a, b)| a * b).sum::<f64>();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= p * b);
        }
        let norm = (scale * v.iter().map(|a| a * a).sum::<f64>()).sqrt();
        *lr = norm.ln();
        if norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
        }
    }
}

/// Accumulates ln R_ii into per-block sums over the measured span.
struct Accumulator {
    blocks: Vec<Vec<f64>>,
    block_len: Vec<f64>,
}

impl Accumulator {
    fn new(blocks: usize, k: usize) -> Self {
        Accumulator {
            blocks: vec![vec![0.0; k]; blocks],
            block_len: vec![0.0; blocks],
        }
    }
    fn add(&mut self, b: usize, dt: f64, log_r: &[f64]) {
        let b = b.min(self.blocks.len() - 1);
        self.block_len[b] += dt;
        self.blocks[b]
            .iter_mut()
            .zip(log_r)
            .for_each(|(s, l)| *s += l);
    }
    fn spectrum(&self) -> Spectrum {
        let k = self.blocks[0].len();
        let total: f64 = self.block_len.iter().sum();
        let exponents: Vec<f64> = (0..k)
            .map(|i| self.blocks.iter().map(|b| b[i]).sum::<f64>() / total)
            .collect();
        let nb = self
            .blocks
            .iter()
            .zip(&self.block_len)
            .filter(|(_, l)| **l > 0.0)
            .count();
        let errors = (0..k)
            .map(|i| {
                if nb < 2 {
                    return f64::NAN;
                }
                let vals: Vec<f64> = self
                    .blocks
                    .iter()
                    .zip(&self.block_len)
                    .filter(|(_, l)| **l > 0.0)
                    .map(|(b, l)| b[i] / l)
                    .collect();
                std_error(&vals)
            })
            .collect();
        Spectrum {
            sum: exponents.iter().sum(),
            exponents,
            errors,
            span: total,
        }
    }
}

fn std_error(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0) / n).sqrt()
}

/// Lyapunov spectrum of a flow or map from initial state `x0` at time `t0` (see the module docs).
pub fn spectrum<S: Jacobian + ?Sized>(
    sys: &S,
    t0: f64,
    x0: &[f64],
    opts: &SpectrumOptions,
) -> Result<Spectrum, IntegrationError> {
    let d = sys.dim();
    crate::dynamics::check_dense_jacobian(d, "the Lyapunov spectrum")
        .map_err(|reason| IntegrationError::InvalidInput { reason })?;
    let k = opts.exponents.min(d).max(1);
    if !(opts.span > 0.0 && opts.qr_interval > 0.0 && opts.transient >= 0.0 && opts.blocks >= 1) {
        return Err(IntegrationError::InvalidInput {
            reason: "span and QR interval must be positive, transient non-negative, blocks ≥ 1"
                .into(),
        });
    }
    // tangent vectors: the first k unit vectors
    let mut z = vec![0.0; d * (1 + k)];
    z[..d].copy_from_slice(x0);
    for c in 0..k {
        z[d + c * d + c] = 1.0;
    }
    let mut log_r = vec![0.0; k];
    let mut acc = Accumulator::new(opts.blocks, k);
    if sys.time_kind() == TimeKind::Discrete {
        let every = opts.qr_interval.round().max(1.0) as u64;
        let (transient, span) = (
            opts.transient.round() as u64,
            opts.span.round().max(1.0) as u64,
        );
        let mut jac = vec![0.0; d * d];
        let mut next = vec![0.0; d];
        let mut q_next = vec![0.0; d * k];
        let mut since = 0u64;
        // the token is polled between blocks of 1024 iterations, outside the iteration itself
        let total = transient + span;
        for block in (0..total).step_by(1024) {
            if opts.cancel.is_cancelled() {
                return Err(IntegrationError::Interrupted {
                    t: t0 + block as f64,
                });
            }
            for n in block..(block + 1024).min(total) {
                let t = t0 + n as f64;
                let (x, q) = z.split_at_mut(d);
                sys.jacobian(t, x, &mut jac);
                sys.rhs(t, x, &mut next);
                if next.iter().any(|v| !v.is_finite()) {
                    return Err(IntegrationError::BlowUp {
                        t,
                        index: next.iter().position(|v| !v.is_finite()).unwrap_or(0),
                        value: f64::NAN,
                    });
                }
                for c in 0..k {
                    for r in 0..d {
                        q_next[c * d + r] = (0..d).map(|j| jac[r * d + j] * q[c * d + j]).sum();
                    }
                }
                q.copy_from_slice(&q_next);
                x.copy_from_slice(&next);
                since += 1;
                if since == every || n + 1 == total {
                    orthonormalise(q, d, k, &mut log_r);
                    if n >= transient {
                        let done = (n + 1 - transient) as f64;
                        let b = ((done - 0.5) / span as f64 * opts.blocks as f64) as usize;
                        acc.add(b, since as f64, &log_r);
                    }
                    since = 0;
                }
            }
        }
        return Ok(acc.spectrum());
    }
    let var = Variational {
        sys,
        d,
        k,
        jac: RefCell::new(vec![0.0; d * d]),
    };
    // One continuous adaptive integration: after the accepted step that reaches the next QR time,
    // Q is re-orthonormalised in place and the stepper restarted at the new state (its cached
    // derivative is stale); no dense output and no initial-step guess per interval.
    let mut stepper = Dop853::new(var.dim(), opts.rtol, opts.atol);
    let t_end = t0 + opts.transient + opts.span;
    let t_measure = t0 + opts.transient;
    let mut t = t0;
    stepper.reset(&var, t, &z);
    let mut h = stepper.initial_step(&var, t, &z, opts.qr_interval);
    let mut last_qr = t;
    let mut steps = 0u64;
    let h_min_rel = 1e-14;
    while t < t_end {
        let h_try = h.min(t_end - t);
        if h_try <= h_min_rel * t.abs().max(1.0) {
            return Err(IntegrationError::StepSizeTooSmall { t, h: h_try });
        }
        if steps.is_multiple_of(256) && opts.cancel.is_cancelled() {
            return Err(IntegrationError::Interrupted { t });
        }
        let err = stepper.try_step(&var, t, &z, h_try);
        steps += 1;
        if steps > 100_000_000 {
            return Err(IntegrationError::TooManySteps { t, steps });
        }
        // elementary controller for an order-8 method: h ← h · clamp(0.9 err^(−1/8), 0.2, 5)
        let fac = if err == 0.0 {
            5.0
        } else if err.is_finite() {
            // err^(−1/8) by three square roots (cheaper than powf)
            (0.9 / err.sqrt().sqrt().sqrt()).clamp(0.2, 5.0)
        } else {
            0.2
        };
        if err <= 1.0 {
            stepper.accept(&var, &mut z);
            t += h_try;
            if z[..d].iter().any(|v| !v.is_finite()) {
                return Err(IntegrationError::BlowUp {
                    t,
                    index: z.iter().position(|v| !v.is_finite()).unwrap_or(0),
                    value: f64::NAN,
                });
            }
            if t - last_qr >= opts.qr_interval || t >= t_end {
                orthonormalise(&mut z[d..], d, k, &mut log_r);
                if last_qr >= t_measure - 1e-12 * t_end.abs().max(1.0) {
                    let mid = 0.5 * (last_qr + t) - t_measure;
                    let b = ((mid / opts.span) * opts.blocks as f64) as usize;
                    acc.add(b, t - last_qr, &log_r);
                }
                last_qr = t;
                stepper.reset(&var, t, &z);
            }
            h = h_try * fac;
        } else {
            h = h_try * fac.min(1.0);
        }
    }
    Ok(acc.spectrum())
}

/// Maximal exponent by two-trajectory renormalisation (Benettin et al. 1976): a companion
/// trajectory starts at distance δ0 = 1e-8·max(1, |x0|) along (1, …, 1)/√D; every
/// `opts.qr_interval` the separation δ is measured, ln(δ/δ0) accumulated and the companion
/// pulled back to distance δ0 along the current separation. No Jacobian is used, so this is an
/// independent check of λ1 from [`spectrum`]. Maps: one renormalisation per `qr_interval`
/// iterations. Error bar from blocks as in [`spectrum`].
pub fn max_exponent_two_trajectories<S: System + ?Sized>(
    sys: &S,
    t0: f64,
    x0: &[f64],
    opts: &SpectrumOptions,
) -> Result<(f64, f64), IntegrationError> {
    let d = sys.dim();
    let scale = x0.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let delta0 = 1e-8 * scale;
    let mut a = x0.to_vec();
    let mut b: Vec<f64> = x0.iter().map(|v| v + delta0 / (d as f64).sqrt()).collect();
    let mut acc = Accumulator::new(opts.blocks, 1);
    let discrete = sys.time_kind() == TimeKind::Discrete;
    let interval = if discrete {
        opts.qr_interval.round().max(1.0)
    } else {
        opts.qr_interval
    };
    let total = opts.transient + opts.span;
    let steps = (total / interval).ceil() as usize;
    let sopts = SolverOptions {
        rtol: opts.rtol,
        atol: opts.atol,
        ..SolverOptions::default()
    };
    let mut stepper = Dop853::new(d, opts.rtol, opts.atol);
    let mut next = vec![0.0; d];
    let mut t = t0;
    let mut advance = |x: &mut Vec<f64>, t: f64, t_next: f64| -> Result<(), IntegrationError> {
        if discrete {
            let mut n = t;
            while n < t_next - 0.5 {
                sys.rhs(n, x, &mut next);
                x.copy_from_slice(&next);
                n += 1.0;
            }
            return Ok(());
        }
        let mut end = x.clone();
        integrate_adaptive(
            &mut stepper,
            sys,
            &sopts,
            t,
            x,
            &[t_next],
            &mut |_, _, v| {
                end.copy_from_slice(v);
                true
            },
        )?;
        x.copy_from_slice(&end);
        Ok(())
    };
    // maps: one interval is a few iterations, so the token is polled every 1024 of them
    let poll_mask = if discrete { 1023 } else { 0 };
    for s in 0..steps {
        if s & poll_mask == 0 && opts.cancel.is_cancelled() {
            return Err(IntegrationError::Interrupted { t });
        }
        let t_next = (t0 + (s + 1) as f64 * interval).min(t0 + total);
        advance(&mut a, t, t_next)?;
        advance(&mut b, t, t_next)?;
        let dist = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q) * (p - q))
            .sum::<f64>()
            .sqrt();
        if !(dist > 0.0 && dist.is_finite()) {
            return Err(IntegrationError::InvalidInput {
                reason: format!("two-trajectory separation became {dist} at t = {t_next}"),
            });
        }
        for (q, p) in b.iter_mut().zip(&a) {
            *q = p + (*q - p) * delta0 / dist;
        }
        if t >= t0 + opts.transient - 1e-12 * total.abs().max(1.0) {
            let done = t_next - (t0 + opts.transient);
            let blk = (((done - 0.5 * (t_next - t)) / opts.span) * opts.blocks as f64) as usize;
            acc.add(blk, t_next - t, &[(dist / delta0).ln()]);
        }
        t = t_next;
    }
    let s = acc.spectrum();
    Ok((s.exponents[0], s.errors[0]))
}

/// Leading Lyapunov exponent of a delay equation: [`dde_spectrum`] with one exponent.
/// Returns (λ1, standard error).
pub fn dde_max_exponent<S: crate::integrate::DelaySystem + ?Sized>(
    sys: &S,
    t0: f64,
    x0: &[f64],
    opts: &SpectrumOptions,
    samples: usize,
) -> Result<(f64, f64), IntegrationError> {
    let one = SpectrumOptions {
        exponents: 1,
        ..opts.clone()
    };
    let s = dde_spectrum(sys, t0, x0, &one, samples)?;
    Ok((s.exponents[0], s.errors[0]))
}

/// The k = `opts.exponents` leading Lyapunov exponents of a delay equation from a discretised
/// history (Farmer 1982). The state of a DDE is its history segment on [t − τ_max, t],
/// represented by `samples` points per τ_max (linear interpolation between them), so the state
/// space is ℝ^{D·(samples+1)} with the inner product ⟨u, w⟩ = Σ u·w / (samples + 1) (the
/// discretised L2 product over the window). A reference solution and k companions, each the
/// reference plus δ0·q_j (q_j orthonormal, δ0 = 1e-6·max(1, |x|) — far above the solver error of
/// the tolerances ≤ 1e-11 used, far below the nonlinear scale), are integrated by the method of
/// steps over one window τ_max; the k differences are orthonormalised by modified Gram–Schmidt,
/// ln(R_jj/δ0) accumulated, and the companions reset to the reference plus δ0·q_j — the
/// finite-difference form of the QR method in the discretised infinite-dimensional space.
/// k is capped at the discretised dimension. An autonomous DDE has one zero exponent (along the
/// flow); for a linear DDE x' = a·x(t) + b·x(t − τ) the exponents are the real parts of the
/// characteristic roots λ = a + b·e^{−λτ} (each complex pair twice). Error bars from blocks.
pub fn dde_spectrum<S: crate::integrate::DelaySystem + ?Sized>(
    sys: &S,
    t0: f64,
    x0: &[f64],
    opts: &SpectrumOptions,
    samples: usize,
) -> Result<Spectrum, IntegrationError> {
    use crate::integrate::{integrate_dde, History, Method};
    use std::sync::Arc;
    let d = sys.dim();
    let tau = sys.lags().iter().map(|l| l.1).fold(0.0f64, f64::max);
    if tau.is_nan() || tau <= 0.0 || samples < 4 {
        return Err(IntegrationError::InvalidInput {
            reason:
                "a delay equation with a positive delay and at least 4 history samples is needed"
                    .into(),
        });
    }
    if !(opts.span > 0.0 && opts.transient >= 0.0 && opts.blocks >= 1) {
        return Err(IntegrationError::InvalidInput {
            reason: "span must be positive, transient non-negative, blocks ≥ 1".into(),
        });
    }
    let n = (samples + 1) * d;
    let k = opts.exponents.clamp(1, n);
    let hs = tau / samples as f64;
    // window samples: (samples + 1) rows of d values at t − τ, …, t
    let interp = |w: Arc<Vec<f64>>, t_end: f64| -> History {
        History::Function(Box::new(move |t: f64, out: &mut [f64]| {
            let u = ((t - (t_end - tau)) / hs).clamp(0.0, samples as f64);
            let k = (u.floor() as usize).min(samples - 1);
            let f = u - k as f64;
            for c in 0..out.len() {
                out[c] = (1.0 - f) * w[k * out.len() + c] + f * w[(k + 1) * out.len() + c];
            }
        }))
    };
    // the next window: integrate one τ from the window `w` that ends at time t
    let advance = |w: &[f64], t: f64| -> Result<Vec<f64>, IntegrationError> {
        let hist = interp(Arc::new(w.to_vec()), t);
        let times: Vec<f64> = (1..=samples).map(|j| t + j as f64 * hs).collect();
        let mut next = Vec::with_capacity(n);
        next.extend_from_slice(&w[samples * d..]);
        integrate_dde(
            sys,
            Method::Dop853,
            opts.rtol,
            opts.atol,
            1e12,
            100_000_000,
            t,
            &hist,
            &times,
            &mut |_, _, v| {
                next.extend_from_slice(&v[..d]);
                true
            },
        )
        .map(|_| next)
    };
    let scale = 1.0 / (samples + 1) as f64;
    // transient from the constant history
    let mut t = t0;
    let mut wref: Vec<f64> = x0.iter().cycle().take(n).copied().collect();
    let transient_windows = (opts.transient / tau).ceil() as usize;
    let stop = |t: f64| {
        if opts.cancel.is_cancelled() {
            Err(IntegrationError::Interrupted { t })
        } else {
            Ok(())
        }
    };
    for _ in 0..transient_windows {
        stop(t)?;
        wref = advance(&wref, t)?;
        t += tau;
    }
    let delta0 = 1e-6 * wref.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    // initial directions: smooth, distinct perturbations, orthonormalised
    let mut q = vec![0.0; n * k];
    for j in 0..k {
        for (i, v) in q[j * n..(j + 1) * n].iter_mut().enumerate() {
            *v = 1.0 + ((i + 1) as f64 * (0.7 + 0.37 * j as f64)).sin();
        }
    }
    let mut log_r = vec![0.0; k];
    orthonormalise_weighted(&mut q, n, k, scale, &mut log_r);
    let windows = (opts.span / tau).ceil().max(1.0) as usize;
    let mut acc = Accumulator::new(opts.blocks.min(windows), k);
    let mut diff = vec![0.0; n * k];
    for win in 0..windows {
        stop(t)?;
        let next_ref = advance(&wref, t)?;
        for j in 0..k {
            stop(t)?;
            let comp: Vec<f64> = wref
                .iter()
                .zip(&q[j * n..(j + 1) * n])
                .map(|(r, qj)| r + delta0 * qj)
                .collect();
            let next = advance(&comp, t)?;
            for ((dv, a), b) in diff[j * n..(j + 1) * n]
                .iter_mut()
                .zip(&next)
                .zip(&next_ref)
            {
                *dv = (a - b) / delta0;
            }
        }
        orthonormalise_weighted(&mut diff, n, k, scale, &mut log_r);
        if let Some(j) = log_r.iter().position(|v| !v.is_finite()) {
            return Err(IntegrationError::InvalidInput {
                reason: format!(
                    "perturbation {} of the history lost its size (R = exp({})) at t = {}",
                    j + 1,
                    log_r[j],
                    t + tau
                ),
            });
        }
        acc.add(win * acc.blocks.len() / windows, tau, &log_r);
        q.copy_from_slice(&diff);
        wref = next_ref;
        t += tau;
    }
    Ok(acc.spectrum())
}

/// Kaplan–Yorke (Lyapunov) dimension of a spectrum: with exponents sorted in decreasing order and
/// j the largest index with S_j = λ_1 + … + λ_j ≥ 0, D_KY = j + S_j/|λ_{j+1}|. Edge cases: all
/// exponents negative (λ_1 < 0) → 0; a sum that never becomes negative → the number of exponents
/// (the dimension cannot exceed it).
pub fn kaplan_yorke(exponents: &[f64]) -> f64 {
    let mut l = exponents.to_vec();
    l.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    let mut s = 0.0;
    for (j, v) in l.iter().enumerate() {
        if s + v < 0.0 {
            return if j == 0 { 0.0 } else { j as f64 + s / v.abs() };
        }
        s += v;
    }
    l.len() as f64
}

/// Pesin upper bound of the Kolmogorov–Sinai entropy: the sum of the positive exponents.
pub fn pesin_entropy(exponents: &[f64]) -> f64 {
    exponents.iter().filter(|v| **v > 0.0).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaplan_yorke_edge_cases() {
        assert!((kaplan_yorke(&[0.9056, 0.0, -14.5723]) - 2.062_144).abs() < 1e-5);
        assert_eq!(kaplan_yorke(&[-0.1, -1.0]), 0.0);
        assert_eq!(kaplan_yorke(&[0.5, 0.1, -0.2]), 3.0);
        // order of the input does not matter
        assert!((kaplan_yorke(&[-14.5723, 0.9056, 0.0]) - 2.062_144).abs() < 1e-5);
        assert!((pesin_entropy(&[0.9, 0.0, -14.0]) - 0.9).abs() < 1e-15);
    }

    #[test]
    fn gram_schmidt_is_orthonormal() {
        let mut q = vec![1.0, 2.0, 0.5, -1.0, 0.3, 4.0, 2.0, 2.0, 2.0];
        let mut lr = vec![0.0; 3];
        orthonormalise(&mut q, 3, 3, &mut lr);
        for a in 0..3 {
            for b in 0..3 {
                let dot: f64 = (0..3).map(|i| q[a * 3 + i] * q[b * 3 + i]).sum();
                assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-14);
            }
        }
        assert!((lr[0] - (1.0f64 + 4.0 + 0.25).sqrt().ln()).abs() < 1e-14);
    }
}
