//! Entropy production of stochastic systems dz = b(z) dt + √(2D) dW with diagonal D.
//!
//! Conventions (stated in every output): the probability flow velocity is v = b − D s with
//! s = ∇ log ρ the stationary score, the probability current j = vρ, and the entropy production
//! rate (in units of k_B per unit time)
//!
//!   EPR = E[v · D⁻¹ v],
//!
//! summed over the noisy coordinates (D_k > 0; the pseudo-inverse on the noisy subspace when D
//! is singular). Self-propulsion g is treated as *even* under time reversal, so it enters v like
//! a position; other conventions (g odd) give other numbers.
//!
//! - [`linear_sde`] / [`exact_linear_epr`]: the exact stationary covariance and EPR of a linear
//!   SDE dz = Az dt + √(2D) dW (Lyapunov equation AΣ + ΣAᵀ + 2D = 0; F = A + DΣ⁻¹ is the flow
//!   matrix, v = Fz, EPR = tr(Fᵀ D⁺ F Σ)), per coordinate as well.
//! - [`BatchMean`]: means with batch-means standard errors, for the sample estimates.
//!
//! Cancellation: the sample estimates ([`sample_epr`], [`reference_epr`], [`trajectory_epr`],
//! [`diagnostics`]) poll a [`Cancel`] token at every sample, and
//! [`probability_flow_trajectory`] at every step; they return [`EprError::Interrupted`] once it
//! is set.

use crate::control::Cancel;
use crate::systems::System;
use nalgebra::DMatrix;

/// Why an entropy production rate could not be computed (the message names what is wrong: a
/// drift that is not linear, a singular Lyapunov equation, data that do not fit the model, …).
#[derive(Debug, thiserror::Error)]
pub enum EprError {
    #[error("{0}")]
    Invalid(String),
    /// The call's [`Cancel`] token was set before it ended.
    #[error("interrupted")]
    Interrupted,
}

/// A linear SDE dz = A z dt + √(2D) dW (D diagonal).
#[derive(Debug, Clone)]
pub struct LinearSde {
    pub a: DMatrix<f64>,
    pub diffusion: Vec<f64>,
}

/// Extracts A from a system whose drift is linear, b(z) = Az: the columns b(e_j) − b(0), then a
/// check at random points (relative tolerance 1e-9) that the drift really is linear and has no
/// constant term.
pub fn linear_sde(system: &dyn System, diffusion: &[f64]) -> Result<LinearSde, EprError> {
    linear_sde_inner(system, diffusion).map_err(EprError::Invalid)
}

fn linear_sde_inner(system: &dyn System, diffusion: &[f64]) -> Result<LinearSde, String> {
    let n = system.dim();
    if diffusion.len() != n {
        return Err(format!(
            "{} diffusion coefficients for {n} variables",
            diffusion.len()
        ));
    }
    // deterministic pseudo-random test points, uniform in [−amp, amp)^n
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut point = |amp: f64| -> Vec<f64> {
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                amp * ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
            })
            .collect()
    };
    // cheap screen first (3 evaluations): a linear drift is additive, b(z1 + z2) = b(z1) + b(z2)
    {
        let z1 = point(2.0);
        let z2 = point(2.0);
        let z12: Vec<f64> = z1.iter().zip(&z2).map(|(a, b)| a + b).collect();
        let (mut b1, mut b2, mut b12) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        system.rhs(0.0, &z1, &mut b1);
        system.rhs(0.0, &z2, &mut b2);
        system.rhs(0.0, &z12, &mut b12);
        let scale = b12.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
        let err = (0..n).fold(0.0f64, |m, k| m.max((b12[k] - b1[k] - b2[k]).abs()));
        if err > 1e-9 * scale * n as f64 {
            return Err(format!(
                "the drift is not linear (b(z1 + z2) − b(z1) − b(z2) = {err:.3e} at test points): the exact EPR needs b(z) = Az"
            ));
        }
    }
    let zero = vec![0.0; n];
    let mut b0 = vec![0.0; n];
    system.rhs(0.0, &zero, &mut b0);
    let scale = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let mut a = DMatrix::zeros(n, n);
    let mut e = vec![0.0; n];
    let mut col = vec![0.0; n];
    for j in 0..n {
        e[j] = 1.0;
        system.rhs(0.0, &e, &mut col);
        for i in 0..n {
            a[(i, j)] = col[i] - b0[i];
        }
        e[j] = 0.0;
    }
    let norm = a.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    if scale(&b0) > 1e-12 * norm {
        return Err(format!(
            "the drift is not linear: b(0) = {:?} ≠ 0 (the exact EPR needs b(z) = Az)",
            b0
        ));
    }
    // b(z) = Az at further test points
    for _ in 0..3 {
        let z = point(3.0);
        system.rhs(0.0, &z, &mut col);
        let az = &a * nalgebra::DVector::from_column_slice(&z);
        let err = col
            .iter()
            .zip(az.iter())
            .fold(0.0f64, |m, (u, w)| m.max((u - w).abs()));
        if err > 1e-9 * norm * 3.0 * n as f64 {
            return Err(format!(
                "the drift is not linear (|b(z) − Az| = {err:.3e} at a test point): the exact EPR needs b(z) = Az"
            ));
        }
    }
    Ok(LinearSde {
        a,
        diffusion: diffusion.to_vec(),
    })
}

/// The stationary solution of a linear SDE and its entropy production.
#[derive(Debug, Clone)]
pub struct LinearEpr {
    /// Stationary covariance Σ (n × n).
    pub sigma: DMatrix<f64>,
    /// Flow matrix F = A + DΣ⁻¹ (v = Fz).
    pub flow: DMatrix<f64>,
    /// EPR = Σ_k (FΣFᵀ)_kk / D_k over the noisy coordinates.
    pub epr: f64,
    /// The terms (FΣFᵀ)_kk / D_k (0 for noiseless coordinates).
    pub per_coordinate: Vec<f64>,
    /// Relative residual ‖AΣ + ΣAᵀ + 2D‖ / ‖2D‖ of the Lyapunov solve.
    pub residual: f64,
}

/// Solves AΣ + ΣAᵀ + 2D = 0 (A stable) by the squared Smith iteration on the Cayley transform:
/// with B = A − pI, U = B⁻¹(A + pI) and Q = 4p B⁻¹DB⁻ᵀ, Σ = UΣUᵀ + Q, so Σ = Σ_k U^k Q (Uᵀ)^k,
/// summed by doubling (S ← S + USUᵀ, U ← U²) until the increment is below 1e-17‖S‖. The shift
/// p is the geometric mean of the largest and smallest eigenvalue moduli.
pub fn lyapunov(a: &DMatrix<f64>, diffusion: &[f64]) -> Result<(DMatrix<f64>, f64), EprError> {
    lyapunov_inner(a, diffusion).map_err(EprError::Invalid)
}

fn lyapunov_inner(a: &DMatrix<f64>, diffusion: &[f64]) -> Result<(DMatrix<f64>, f64), String> {
    let n = a.nrows();
    let eig = a.complex_eigenvalues();
    if let Some(l) = eig.iter().find(|l| l.re >= 0.0) {
        return Err(format!(
            "A has an eigenvalue {:.6} + {:.6}i with non-negative real part: no stationary state",
            l.re, l.im
        ));
    }
    let (lo, hi) = eig.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), l| {
        let m = l.norm();
        (lo.min(m), hi.max(m))
    });
    let p = (lo * hi).sqrt();
    let d = DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(diffusion));
    let b = a - DMatrix::identity(n, n) * p;
    let binv = b
        .clone()
        .try_inverse()
        .ok_or("A − pI is singular (unexpected for a stable A)")?;
    let mut u = &binv * (a + DMatrix::identity(n, n) * p);
    let mut s = &binv * &d * binv.transpose() * (4.0 * p);
    for _ in 0..200 {
        let inc = &u * &s * u.transpose();
        let done = inc.norm() <= 1e-17 * s.norm();
        s += inc;
        if done {
            break;
        }
        u = &u * &u;
    }
    let s = (&s + s.transpose()) * 0.5;
    let r = a * &s + &s * a.transpose() + &d * 2.0;
    let residual = r.norm() / (2.0 * d.norm()).max(1e-300);
    Ok((s, residual))
}

/// The exact EPR of a linear SDE (see the module docs).
pub fn exact_linear_epr(sde: &LinearSde) -> Result<LinearEpr, EprError> {
    exact_linear_epr_inner(sde).map_err(EprError::Invalid)
}

fn exact_linear_epr_inner(sde: &LinearSde) -> Result<LinearEpr, String> {
    let (sigma, residual) = lyapunov_inner(&sde.a, &sde.diffusion)?;
    let sinv = sigma
        .clone()
        .try_inverse()
        .ok_or("the stationary covariance is singular (noise does not reach every coordinate)")?;
    let n = sde.a.nrows();
    let d = DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(&sde.diffusion));
    let flow = &sde.a + &d * &sinv;
    let fsf = &flow * &sigma * flow.transpose();
    let per_coordinate: Vec<f64> = (0..n)
        .map(|k| {
            if sde.diffusion[k] > 0.0 {
                fsf[(k, k)] / sde.diffusion[k]
            } else {
                0.0
            }
        })
        .collect();
    Ok(LinearEpr {
        epr: per_coordinate.iter().sum(),
        sigma,
        flow,
        per_coordinate,
        residual,
    })
}

/// Mean of a sequence of samples with a batch-means standard error: the samples (in the order
/// given, e.g. replica-major frames) are cut into `batches` contiguous batches and the error is
/// the standard deviation of the batch means over √batches, robust to correlation within a
/// batch.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BatchMean {
    pub mean: f64,
    pub stderr: f64,
}

impl BatchMean {
    pub fn of(samples: &[f64], batches: usize) -> BatchMean {
        let n = samples.len();
        let mean = samples.iter().sum::<f64>() / n.max(1) as f64;
        let b = batches.min(n).max(1);
        if b < 2 {
            return BatchMean {
                mean,
                stderr: f64::NAN,
            };
        }
        let means: Vec<f64> = (0..b)
            .map(|k| {
                let (lo, hi) = (k * n / b, (k + 1) * n / b);
                samples[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
            })
            .collect();
        let mm = means.iter().sum::<f64>() / b as f64;
        let var = means.iter().map(|m| (m - mm).powi(2)).sum::<f64>() / (b - 1) as f64;
        BatchMean {
            mean,
            stderr: (var / b as f64).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The linear trap per coordinate, A = [[−a, v0], [0, −γ]], D = diag(ε, γ): Σ and EPR in
    /// closed form (Σ_xx = (ε(a+γ) + v0²)/(a(a+γ)), Σ_xg = v0/(a+γ), Σ_gg = 1,
    /// EPR = γv0²/(ε(a+γ))), and with ε = 0 the finite g-part aγv0²/(γv0²) = a.
    #[test]
    fn linear_trap_closed_forms() {
        for &(a, g, e, v0) in &[
            (0.05, 0.1, 0.1, 0.5),
            (0.3, 2.0, 0.7, 1.3),
            (0.05, 0.1, 0.0, 0.3),
        ] {
            let sde = LinearSde {
                a: DMatrix::from_row_slice(2, 2, &[-a, v0, 0.0, -g]),
                diffusion: vec![e, g],
            };
            let r = exact_linear_epr(&sde).unwrap();
            let sxx = (e * (a + g) + v0 * v0) / (a * (a + g));
            assert!((r.sigma[(0, 0)] - sxx).abs() < 1e-10 * sxx);
            assert!((r.sigma[(0, 1)] - v0 / (a + g)).abs() < 1e-10);
            assert!((r.sigma[(1, 1)] - 1.0).abs() < 1e-10);
            let want = if e > 0.0 {
                g * v0 * v0 / (e * (a + g))
            } else {
                a * g * v0 * v0 / (e * (a + g).powi(2) + g * v0 * v0)
            };
            assert!(
                (r.epr - want).abs() < 1e-10 * want,
                "{a} {g} {e} {v0}: {} vs {want}",
                r.epr
            );
            assert!(r.residual < 1e-12);
        }
    }

    /// An unstable or non-linear system is refused with a reason.
    #[test]
    fn unstable_systems_are_refused() {
        let sde = LinearSde {
            a: DMatrix::from_row_slice(2, 2, &[0.1, 0.0, 0.0, -1.0]),
            diffusion: vec![1.0, 1.0],
        };
        let e = exact_linear_epr(&sde).unwrap_err().to_string();
        assert!(e.contains("no stationary state"), "{e}");
    }

    #[test]
    fn batch_means_of_independent_samples() {
        let x: Vec<f64> = (0..1000)
            .map(|k| ((k * 7919) % 1000) as f64 / 1000.0)
            .collect();
        let m = BatchMean::of(&x, 20);
        assert!((m.mean - 0.4995).abs() < 1e-12);
        assert!(m.stderr > 0.0 && m.stderr < 0.05);
    }

    #[test]
    fn time_averages_by_hand() {
        // 2 replicas × 3 frames × 2 particles, replica-major
        let e = [
            1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0, 5.0, 50.0, 6.0, 60.0,
        ];
        assert_eq!(
            super::time_averages(&e, 2, 3, 2),
            vec![2.0, 20.0, 5.0, 50.0]
        );
        assert!(super::time_averages(&e, 2, 2, 2).iter().all(|v| v.is_nan()));
    }
}

/// Entropy production of particle samples with a learned score or velocity (see the module docs
/// for the convention): what `phaseflow epr --model … --data …` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleEpr {
    /// Learned EPR E[v·D⁻¹v] (for ε = 0: its finite g-part E[|v_g|²/γ]).
    pub epr: f64,
    pub epr_stderr: f64,
    /// Per particle (epr / N).
    pub epr_per_particle: f64,
    /// Learning-free reference from the drift alone: ⟨|b_x|²⟩/ε + ⟨∇_x·b_x⟩ (ε > 0), or the
    /// g-part −⟨∇_x·b_x⟩ (ε = 0).
    pub epr_reference: f64,
    pub epr_reference_stderr: f64,
    /// Exact value when the drift is linear (Lyapunov equation), else `None`.
    pub epr_exact: Option<f64>,
    /// The learned EPR split by degree of freedom: positions x and self-propulsion g.
    pub per_dof: PerDof,
    /// Time- and replica-averaged contribution of each particle (N values; they sum to `epr`).
    pub per_particle: Vec<f64>,
    /// Stationarity diagnostic E[v·s] (0 at stationarity), with its standard error.
    pub mean_v_dot_s: f64,
    pub mean_v_dot_s_stderr: f64,
    pub n_samples: usize,
    pub particles: usize,
    pub convention: String,
    /// Per sample (replica-major frames) and particle: the contribution v_i·D_i⁻¹v_i, F × N.
    #[serde(skip)]
    pub particle_samples: Vec<f64>,
    /// Stationarity diagnostics (with a model; filled by the caller).
    pub diagnostics: Option<Diagnostics>,
}

/// EPR split by degree of freedom.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PerDof {
    pub x: f64,
    pub g: f64,
}

/// The convention line of every EPR output.
pub const CONVENTION: &str = "EPR = E[v . D^-1 v], v = b - D s, s = grad log rho (k_B per unit time); self-propulsion g even under time reversal; for eps = 0 only the finite g-part E[|v_g|^2/gamma]";

/// The learning-free reference of one configuration z = (x, g): |b_x|²/ε + ∇_x·b_x (ε > 0) or
/// −∇_x·b_x (ε = 0), from the model's drift (mobile particles).
pub fn reference_sample(drift: &crate::particles::ParticleDrift, z: &[f64]) -> f64 {
    use crate::particles::Dynamics;
    let m = &drift.model;
    let (n, d, c) = (m.n, m.dim, m.propulsion_dim());
    let (eps, gamma) = match m.dynamics {
        Dynamics::Aoup { eps, gamma, .. } => (eps, gamma),
        Dynamics::Abp { d_t, .. } => (d_t, 0.0),
    };
    let n_mobile = n - m.n_fixed;
    // ∇·b = ∇_x·b_x − γ per mobile propulsion component
    let div_x = drift.divergence(z) + gamma * (n_mobile * c) as f64;
    if eps > 0.0 {
        let mut b = vec![0.0; z.len()];
        drift.rhs(0.0, z, &mut b);
        b[..n_mobile * d].iter().map(|v| v * v).sum::<f64>() / eps + div_x
    } else {
        -div_x
    }
}

/// Evaluates the learned EPR (and everything in [`SampleEpr`]) over every frame of every
/// replica of `samples`, with the drift of `model`; `batches` for the standard errors. Without a
/// model (`sm = None`) only the learning-free reference is computed (the learned fields are NaN),
/// as [`reference_epr`] does in builds without the `learn` feature. `cancel` is polled at every
/// sample ([`EprError::Interrupted`]); `progress` counts samples.
#[cfg(feature = "learn")]
pub fn sample_epr(
    sm: Option<&crate::score::evaluate::ScoreModel>,
    model: &crate::particles::ParticleModel,
    samples: &crate::io::h5md::ParticleSamples,
    batches: usize,
    cancel: &Cancel,
    progress: &dyn crate::control::Progress,
) -> Result<SampleEpr, EprError> {
    sample_epr_of(
        sm.map(|m| m as &dyn Learned),
        model,
        samples,
        batches,
        cancel,
        progress,
    )
}

/// The learning-free reference of particle samples (everything in [`SampleEpr`] that needs no
/// score; the learned fields are NaN): `sample_epr` without a model, in every build (no `learn`
/// feature needed).
pub fn reference_epr(
    model: &crate::particles::ParticleModel,
    samples: &crate::io::h5md::ParticleSamples,
    batches: usize,
    cancel: &Cancel,
    progress: &dyn crate::control::Progress,
) -> Result<SampleEpr, EprError> {
    sample_epr_of(None, model, samples, batches, cancel, progress)
}

/// What `sample_epr` needs of a trained score model: a check that it fits the particle
/// model, and per configuration (x, g) the scores and probability flow velocities
/// (s_x, s_g, v_x, v_g).
trait Learned {
    fn check_model(&self, model: &crate::particles::ParticleModel) -> Result<(), String>;
    fn flow(&self, model: &crate::particles::ParticleModel, x: &[f64], g: &[f64]) -> [Vec<f64>; 4];
}

#[cfg(feature = "learn")]
impl Learned for crate::score::evaluate::ScoreModel {
    fn check_model(&self, model: &crate::particles::ParticleModel) -> Result<(), String> {
        crate::score::evaluate::ScoreModel::check_model(self, model).map_err(|e| e.to_string())
    }
    fn flow(&self, model: &crate::particles::ParticleModel, x: &[f64], g: &[f64]) -> [Vec<f64>; 4] {
        let crate::score::evaluate::Flow { sx, sg, vx, vg } =
            crate::score::evaluate::ScoreModel::flow(self, model, x, g);
        [sx, sg, vx, vg]
    }
}

fn sample_epr_of(
    sm: Option<&dyn Learned>,
    model: &crate::particles::ParticleModel,
    samples: &crate::io::h5md::ParticleSamples,
    batches: usize,
    cancel: &Cancel,
    progress: &dyn crate::control::Progress,
) -> Result<SampleEpr, EprError> {
    use crate::particles::{Dynamics, ParticleDrift};
    let bad = |m: String| Err(EprError::Invalid(m));
    if batches == 0 {
        return bad("--batches must be at least 1 (the standard errors are batch means)".into());
    }
    let (eps, gamma) = match model.dynamics {
        Dynamics::Aoup { eps, gamma, .. } => (eps, gamma),
        Dynamics::Abp { .. } => {
            return bad("EPR of ABP models (orientations) is not supported yet: the score networks learn AOUP self-propulsion".into())
        }
    };
    let (n, d, c) = (samples.n, samples.dim, samples.propulsion);
    if (n, d, c) != (model.n, model.dim, model.propulsion_dim()) {
        return bad(format!(
            "the data has N = {n}, d = {d}, c = {c} but the system has N = {}, d = {}, c = {}",
            model.n,
            model.dim,
            model.propulsion_dim()
        ));
    }
    if let Some(sm) = sm {
        sm.check_model(model).map_err(EprError::Invalid)?;
    }
    let drift = ParticleDrift::new(model.clone());
    let dz = drift.diffusion();
    let mut total = Vec::new();
    let mut xs = Vec::new();
    let mut reference = Vec::new();
    let mut vs = Vec::new();
    let mut per_particle = vec![0.0; n];
    let mut particle_samples = Vec::with_capacity(samples.replicas * samples.frames * n);
    for r in 0..samples.replicas {
        for f in 0..samples.frames {
            if cancel.is_cancelled() {
                return Err(EprError::Interrupted);
            }
            progress.advance(1);
            let (x, g) = model.configuration(samples, r, f);
            let mut z = x.clone();
            z.extend_from_slice(g);
            reference.push(reference_sample(&drift, &z));
            let Some(sm) = sm else {
                continue;
            };
            let [sx, sg, vx, vg] = sm.flow(model, &x, g);
            let (mut ex, mut eg, mut dot) = (0.0, 0.0, 0.0);
            for (i, pp) in per_particle.iter_mut().enumerate() {
                let mut ei = 0.0;
                for a in 0..d {
                    let k = i * d + a;
                    if eps > 0.0 && dz[k] > 0.0 {
                        let t = vx[k] * vx[k] / dz[k];
                        ex += t;
                        ei += t;
                        dot += vx[k] * sx[k];
                    }
                }
                for a in 0..c {
                    let k = i * c + a;
                    let dk = dz[n * d + k];
                    if dk > 0.0 {
                        let t = vg[k] * vg[k] / dk;
                        eg += t;
                        ei += t;
                        dot += vg[k] * sg[k];
                    }
                }
                *pp += ei;
                particle_samples.push(ei);
            }
            if eps == 0.0 {
                // v_x·s_x = b_x·s_x → −∇_x·b_x in expectation (s_x is not learned)
                dot -= drift.divergence(&z) + gamma * ((n - model.n_fixed) * c) as f64;
            }
            total.push(ex + eg);
            xs.push(ex);
            vs.push(dot);
        }
    }
    let count = reference.len();
    if count == 0 {
        return bad("the data holds no frames".into());
    }
    if sm.is_none() {
        // reference only: the learned quantities are undefined (null in JSON)
        total = vec![f64::NAN; count];
        xs = vec![f64::NAN; count];
        vs = vec![f64::NAN; count];
        per_particle = vec![f64::NAN; n];
    }
    per_particle.iter_mut().for_each(|v| *v /= count as f64);
    let e = BatchMean::of(&total, batches);
    let rf = BatchMean::of(&reference, batches);
    let vsm = BatchMean::of(&vs, batches);
    let x_part = xs.iter().sum::<f64>() / count as f64;
    // exact value where the drift is linear (k = 0 traps)
    let epr_exact = linear_sde(&drift, &dz)
        .ok()
        .and_then(|sde| exact_linear_epr(&sde).ok())
        .map(|r| r.epr);
    Ok(SampleEpr {
        epr: e.mean,
        epr_stderr: e.stderr,
        epr_per_particle: e.mean / n as f64,
        epr_reference: rf.mean,
        epr_reference_stderr: rf.stderr,
        epr_exact,
        per_dof: PerDof {
            x: x_part,
            g: e.mean - x_part,
        },
        per_particle,
        mean_v_dot_s: vsm.mean,
        mean_v_dot_s_stderr: vsm.stderr,
        n_samples: count,
        particles: n,
        convention: CONVENTION.into(),
        particle_samples,
        diagnostics: None,
    })
}

/// Per-particle time averages along each replica's trajectory: from the per-sample contributions
/// `particle_samples` (replica-major frames, `replicas · frames × n`, as in
/// [`SampleEpr::particle_samples`]) the `replicas × n` matrix ē_{r,i} = (1/F) Σ_f e_{r,f,i}. Their
/// mean over replicas is [`SampleEpr::per_particle`]; their spread over replicas shows how far
/// one trajectory of F frames is from the ensemble value.
pub fn time_averages(
    particle_samples: &[f64],
    replicas: usize,
    frames: usize,
    n: usize,
) -> Vec<f64> {
    let mut out = vec![0.0; replicas * n];
    if frames == 0 || particle_samples.len() != replicas * frames * n {
        return vec![f64::NAN; replicas * n];
    }
    for (r, traj) in particle_samples.chunks_exact(frames * n).enumerate() {
        let acc = &mut out[r * n..(r + 1) * n];
        for frame in traj.chunks_exact(n) {
            for (a, e) in acc.iter_mut().zip(frame) {
                *a += e;
            }
        }
        acc.iter_mut().for_each(|a| *a /= frames as f64);
    }
    out
}

/// Spatial maps of the entropy production of particle samples: where it is produced.
#[derive(Debug, Clone)]
pub struct EprMaps {
    /// Square grid over the positions seen (2-D): bin edges along each axis (G + 1).
    pub edges: Vec<f64>,
    /// Per cell (G × G, row-major in y then x): conditional mean E[e_i | x_i in cell] and the
    /// ρ-weighted density Σ e_i / (samples · cell area) (EPR per unit area; sums to the EPR).
    pub conditional_mean: Vec<f64>,
    pub density: Vec<f64>,
    pub count: Vec<f64>,
    /// Radial profile |x_i| (traps): bin edges, conditional mean and density per unit area.
    pub radial_edges: Vec<f64>,
    pub radial_mean: Vec<f64>,
    pub radial_density: Vec<f64>,
}

/// Bins the per-particle contributions e_i (F × N) at positions x (F × N × d, the first two
/// coordinates used) on a G × G grid spanning the positions, and radially in R bins.
pub fn epr_maps(e: &[f64], x: &[f64], n: usize, d: usize, bins: usize) -> EprMaps {
    let frames = e.len() / n.max(1);
    let coord = |k: usize, a: usize| if a < d { x[k * d + a] } else { 0.0 };
    let (mut lo, mut hi, mut rmax) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for k in 0..frames * n {
        for a in 0..d.min(2) {
            lo = lo.min(coord(k, a));
            hi = hi.max(coord(k, a));
        }
        rmax = rmax.max((0..d).map(|a| coord(k, a).powi(2)).sum::<f64>().sqrt());
    }
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        hi = lo + 1.0;
    }
    let w = (hi - lo) / bins as f64 * (1.0 + 1e-12);
    let g2 = if d >= 2 { bins * bins } else { bins };
    let (mut sum, mut count) = (vec![0.0; g2], vec![0.0; g2]);
    let rw = rmax.max(1e-300) / bins as f64 * (1.0 + 1e-12);
    let (mut rsum, mut rcount) = (vec![0.0; bins], vec![0.0; bins]);
    for (k, &ek) in e.iter().enumerate().take(frames * n) {
        let ix = (((coord(k, 0) - lo) / w) as usize).min(bins - 1);
        let cell = if d >= 2 {
            let iy = (((coord(k, 1) - lo) / w) as usize).min(bins - 1);
            iy * bins + ix
        } else {
            ix
        };
        sum[cell] += ek;
        count[cell] += 1.0;
        let r = (0..d).map(|a| coord(k, a).powi(2)).sum::<f64>().sqrt();
        let ir = ((r / rw) as usize).min(bins - 1);
        rsum[ir] += ek;
        rcount[ir] += 1.0;
    }
    let area = if d >= 2 { w * w } else { w };
    let f = frames.max(1) as f64;
    let radial_area = |b: usize| {
        let (r0, r1) = (b as f64 * rw, (b + 1) as f64 * rw);
        match d {
            1 => 2.0 * (r1 - r0),
            2 => std::f64::consts::PI * (r1 * r1 - r0 * r0),
            _ => 4.0 / 3.0 * std::f64::consts::PI * (r1.powi(3) - r0.powi(3)),
        }
    };
    EprMaps {
        edges: (0..=bins).map(|b| lo + b as f64 * w).collect(),
        conditional_mean: sum
            .iter()
            .zip(&count)
            .map(|(s, c)| if *c > 0.0 { s / c } else { f64::NAN })
            .collect(),
        density: sum.iter().map(|s| s / (f * area)).collect(),
        count,
        radial_edges: (0..=bins).map(|b| b as f64 * rw).collect(),
        radial_mean: rsum
            .iter()
            .zip(&rcount)
            .map(|(s, c)| if *c > 0.0 { s / c } else { f64::NAN })
            .collect(),
        radial_density: rsum
            .iter()
            .enumerate()
            .map(|(b, s)| s / (f * radial_area(b)))
            .collect(),
    }
}

/// Stationarity diagnostics of a learned score (all zero for the true one): the pointwise
/// Fokker–Planck residual r = ∇·v + v·s (with ∇·v = ∇·b − Σ_k D_k ∂_k s_k), its mean and
/// histogram, and E[|s|² + ∇·s] over the scored coordinates. ∇·s by central differences of
/// the score (h = 1e-2) along every coordinate when the state has at most 64 of them, else along
/// one Rademacher probe per sample (Hutchinson: unbiased, noisier).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnostics {
    pub samples: usize,
    pub divergence: String,
    /// Mean of ∇·v + v·s and its standard error (`None` when ε = 0: the residual needs s_x).
    pub residual_mean: Option<f64>,
    pub residual_stderr: Option<f64>,
    /// Histogram of the residual: bin edges (symmetric about 0) and counts.
    pub residual_edges: Vec<f64>,
    pub residual_counts: Vec<u64>,
    /// E[|s|² + ∇·s] (0 by parts) and its standard error.
    pub fisher_identity: f64,
    pub fisher_identity_stderr: f64,
}

/// See [`Diagnostics`]; evaluated on up to `max_samples` samples spread evenly over the data.
/// `cancel` is polled at every sample ([`EprError::Interrupted`], the only error).
#[cfg(feature = "learn")]
pub fn diagnostics(
    sm: &crate::score::evaluate::ScoreModel,
    model: &crate::particles::ParticleModel,
    samples: &crate::io::h5md::ParticleSamples,
    max_samples: usize,
    cancel: &Cancel,
) -> Result<Diagnostics, EprError> {
    use crate::particles::{Dynamics, ParticleDrift};
    let (n, d, c) = (samples.n, samples.dim, samples.propulsion);
    let eps = match model.dynamics {
        Dynamics::Aoup { eps, .. } => eps,
        Dynamics::Abp { d_t, .. } => d_t,
    };
    let drift = ParticleDrift::new(model.clone());
    let dz = drift.diffusion();
    let dim = n * (d + c);
    let exact = dim <= 64;
    let h = 1e-2;
    let total = samples.replicas * samples.frames;
    let take = max_samples.clamp(1, total.max(1));
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut residual = Vec::new();
    let mut fisher = Vec::new();
    let score = |z: &[f64]| -> Vec<f64> {
        let (sx, sg) = sm.score(model, &z[..n * d], &z[n * d..]);
        sx.into_iter().chain(sg).collect()
    };
    for k in 0..take {
        if cancel.is_cancelled() {
            return Err(EprError::Interrupted);
        }
        let idx = k * total / take;
        let (r, f) = (idx / samples.frames, idx % samples.frames);
        let (x, g) = model.configuration(samples, r, f);
        let mut z = x;
        z.extend_from_slice(g);
        let s = score(&z);
        // scored coordinates: g always, x when ε > 0
        let scored = |j: usize| j >= n * d || eps > 0.0;
        let probes: Vec<Vec<f64>> = if exact {
            (0..dim)
                .filter(|&j| scored(j))
                .map(|j| {
                    let mut e = vec![0.0; dim];
                    e[j] = 1.0;
                    e
                })
                .collect()
        } else {
            vec![(0..dim)
                .map(|j| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if !scored(j) {
                        0.0
                    } else if rng & 1 == 0 {
                        1.0
                    } else {
                        -1.0
                    }
                })
                .collect()]
        };
        let (mut div, mut wdiv) = (0.0, 0.0);
        for e in &probes {
            let zp: Vec<f64> = z.iter().zip(e).map(|(a, b)| a + h * b).collect();
            let zm: Vec<f64> = z.iter().zip(e).map(|(a, b)| a - h * b).collect();
            let (sp, sm_) = (score(&zp), score(&zm));
            for j in 0..dim {
                if e[j] != 0.0 {
                    let t = e[j] * (sp[j] - sm_[j]) / (2.0 * h);
                    div += t;
                    wdiv += dz[j] * t;
                }
            }
        }
        let sq: f64 = (0..dim).filter(|&j| scored(j)).map(|j| s[j] * s[j]).sum();
        fisher.push(sq + div);
        if eps > 0.0 {
            let mut b = vec![0.0; dim];
            drift.rhs(0.0, &z, &mut b);
            let vs: f64 = (0..dim).map(|j| (b[j] - dz[j] * s[j]) * s[j]).sum();
            residual.push(drift.divergence(&z) - wdiv + vs);
        }
    }
    let fm = BatchMean::of(&fisher, 20);
    let (residual_mean, residual_stderr, residual_edges, residual_counts) = if residual.is_empty() {
        (None, None, Vec::new(), Vec::new())
    } else {
        let rm = BatchMean::of(&residual, 20);
        let mut sorted: Vec<f64> = residual.iter().map(|v| v.abs()).collect();
        sorted.sort_by(f64::total_cmp);
        let span = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)].max(1e-12);
        let bins = 40;
        let edges: Vec<f64> = (0..=bins)
            .map(|b| -span + 2.0 * span * b as f64 / bins as f64)
            .collect();
        let mut counts = vec![0u64; bins];
        for v in &residual {
            let b = (((v + span) / (2.0 * span)) * bins as f64).floor();
            if (0.0..bins as f64).contains(&b) {
                counts[b as usize] += 1;
            }
        }
        (Some(rm.mean), Some(rm.stderr), edges, counts)
    };
    Ok(Diagnostics {
        samples: take,
        divergence: if exact { "exact" } else { "hutchinson" }.into(),
        residual_mean,
        residual_stderr,
        residual_edges,
        residual_counts,
        fisher_identity: fm.mean,
        fisher_identity_stderr: fm.stderr,
    })
}

/// The EPR of an SDE flow's trajectory with a learned score: what `phaseflow epr --model …
/// --data TRAJ.h5` reports for a definition with a `[diffusion]` table (every variable noisy).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SdeEpr {
    pub system: String,
    /// Learned E[v·D⁻¹v], v = b − D s.
    pub epr: f64,
    pub epr_stderr: f64,
    /// Learning-free reference E[b·D⁻¹b] + E[∇·b] (exact for any D invertible: the identity
    /// E[v·s] = 0 removes the score).
    pub epr_reference: f64,
    pub epr_reference_stderr: f64,
    /// Exact value (Lyapunov equation) when the drift is linear.
    pub epr_exact: Option<f64>,
    /// Learned contribution E[v_k²/D_k] of each variable.
    pub per_dof: std::collections::BTreeMap<String, f64>,
    /// Stationarity diagnostic E[v·s].
    pub mean_v_dot_s: f64,
    pub mean_v_dot_s_stderr: f64,
    pub n_samples: usize,
    pub convention: String,
}

/// See [`SdeEpr`]; every frame of every ensemble member of `traj`. `cancel` is polled at every
/// sample ([`EprError::Interrupted`]); `progress` counts samples.
#[cfg(feature = "learn")]
pub fn trajectory_epr(
    sm: &crate::score::evaluate::ScoreModel,
    sde: &crate::score::train::SdeSystem,
    traj: &crate::io::Trajectory,
    batches: usize,
    cancel: &Cancel,
    progress: &dyn crate::control::Progress,
) -> Result<SdeEpr, EprError> {
    let bad = |m: String| Err(EprError::Invalid(m));
    if batches == 0 {
        return bad("--batches must be at least 1 (the standard errors are batch means)".into());
    }
    let n = sde.system.dim();
    if traj.dim != n || sm.shapes.propulsion != n || sm.shapes.dim != 0 {
        return bad(format!(
            "the model was trained on a different state (N = {}, d = {}, c = {}) than the data's {n} variables",
            sm.shapes.n, sm.shapes.dim, sm.shapes.propulsion
        ));
    }
    let d = &sde.diffusion;
    let frames = traj.len() * traj.members;
    let (mut total, mut reference, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    let mut per = vec![0.0; n];
    let mut b = vec![0.0; n];
    for k in 0..frames {
        if cancel.is_cancelled() {
            return Err(EprError::Interrupted);
        }
        progress.advance(1);
        let z = &traj.state[k * n..(k + 1) * n];
        sde.system.rhs(0.0, z, &mut b);
        let s = sm.score_state(z, &b, d);
        let (mut e, mut dot, mut bb) = (0.0, 0.0, 0.0);
        for j in 0..n {
            let v = b[j] - d[j] * s[j];
            e += v * v / d[j];
            per[j] += v * v / d[j];
            dot += v * s[j];
            bb += b[j] * b[j] / d[j];
        }
        total.push(e);
        vs.push(dot);
        reference.push(bb + crate::score::train::sde_divergence(&sde.system, z));
    }
    if frames == 0 {
        return bad("the data holds no frames".into());
    }
    let e = BatchMean::of(&total, batches);
    let r = BatchMean::of(&reference, batches);
    let m = BatchMean::of(&vs, batches);
    let epr_exact = linear_sde(&sde.system, d)
        .ok()
        .and_then(|l| exact_linear_epr(&l).ok())
        .map(|l| l.epr);
    Ok(SdeEpr {
        system: sde.system.name().to_string(),
        epr: e.mean,
        epr_stderr: e.stderr,
        epr_reference: r.mean,
        epr_reference_stderr: r.stderr,
        epr_exact,
        per_dof: sde
            .system
            .model()
            .components
            .iter()
            .cloned()
            .zip(per.iter().map(|v| v / frames as f64))
            .collect(),
        mean_v_dot_s: m.mean,
        mean_v_dot_s_stderr: m.stderr,
        n_samples: frames,
        convention: CONVENTION.into(),
    })
}

/// One state (x N·d, g N·c) of a probability-flow trajectory.
pub type FlowState = (Vec<f64>, Vec<f64>);

/// Integrates the probability flow dz/dt = v(z) (v = b − D s, the learned velocity) from the
/// configuration (x0, g0) with the classical RK4 scheme, `steps` steps of `dt`; returns the
/// `steps + 1` states, each (x N·d, g N·c). Deterministic transport of the stationary density:
/// samples stay samples (for a Gaussian, zᵀΣ⁻¹z is conserved exactly). `cancel` is polled at
/// every step ([`EprError::Interrupted`], the only error).
#[cfg(feature = "learn")]
pub fn probability_flow_trajectory(
    sm: &crate::score::evaluate::ScoreModel,
    model: &crate::particles::ParticleModel,
    x0: &[f64],
    g0: &[f64],
    dt: f64,
    steps: usize,
    cancel: &Cancel,
) -> Result<Vec<FlowState>, EprError> {
    let nx = x0.len();
    let v = |z: &[f64]| -> Vec<f64> {
        let (vx, vg) = sm.velocity(model, &z[..nx], &z[nx..]);
        vx.into_iter().chain(vg).collect()
    };
    let mut z: Vec<f64> = x0.iter().chain(g0).copied().collect();
    let mut out = vec![(x0.to_vec(), g0.to_vec())];
    let axpy = |z: &[f64], k: &[f64], a: f64| -> Vec<f64> {
        z.iter().zip(k).map(|(u, w)| u + a * w).collect()
    };
    for _ in 0..steps {
        if cancel.is_cancelled() {
            return Err(EprError::Interrupted);
        }
        let k1 = v(&z);
        let k2 = v(&axpy(&z, &k1, 0.5 * dt));
        let k3 = v(&axpy(&z, &k2, 0.5 * dt));
        let k4 = v(&axpy(&z, &k3, dt));
        for j in 0..z.len() {
            z[j] += dt / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
        out.push((z[..nx].to_vec(), z[nx..].to_vec()));
    }
    Ok(out)
}
