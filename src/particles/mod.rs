//! Active-matter particle engine: AOUP and ABP particles in periodic boxes, pair forces through
//! O(N) cell lists, counter-based noise (bit-identical for any thread count), H5MD output.
//!
//! The drift b, the diffusion D and the divergence ∇·b of a model are exposed through the same
//! [`System`] trait as flows ([`ParticleDrift`]), on the flat state
//! z = (x_1 … x_N, g_1 … g_N) (AOUP) or z = (x, θ) / (x, e) (ABP), so score and entropy-production
//! analyses see particles like any other system.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod cells;
pub mod decomposition;
pub mod isa;
pub mod model;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod neighbours;
pub mod observables;
pub mod rng;
pub mod run;
pub mod sim;

pub use cells::{CellList, PeriodicBox};
pub use model::{Dynamics, PairForce, ParticleModel};
pub use sim::{ParticleState, Simulation};

use crate::systems::System;

/// Particles per parallel work item over `n` particles: `items_per_thread` items per rayon
/// thread so that small systems balance across threads, at most `max` (large systems amortise
/// scheduling), at least 64, a multiple of 8 (the vector kernel's width). Used by the time step
/// and the neighbour-list build; neither result depends on it.
pub(crate) fn work_item_len(n: usize, items_per_thread: usize, max: usize) -> usize {
    let per = n / (items_per_thread * rayon::current_num_threads().max(1));
    (per / 8 * 8).clamp(64, max)
}

/// The deterministic part of a particle model as a [`System`]: `rhs` is the drift b(z).
///
/// AOUP: b_x,i = v0 g_i + Σ_j F(x_i − x_j) − A x_i, b_g,i = −γ g_i; D = diag(ε I, γ I).
/// ABP (2-D): b_x,i = v0 (cos θ_i, sin θ_i) + μ Σ_j F, b_θ,i = 0; D = diag(D_T I, D_r).
/// Positions in z are taken as they are (wrapped or unwrapped: forces use minimum image; the
/// trap −A x uses the coordinates given).
///
/// `rhs` does not allocate (the [`System`] contract): the pair forces are computed by a
/// simulation kept for the purpose (its buffers and neighbour list reused from call to call,
/// behind a mutex, so concurrent callers take turns).
pub struct ParticleDrift {
    pub model: ParticleModel,
    forces: std::sync::Mutex<Simulation>,
}

impl ParticleDrift {
    pub fn new(model: ParticleModel) -> ParticleDrift {
        let state = ParticleState {
            x: vec![0.0; model.n * model.dim],
            image: vec![0; model.n * model.dim],
            g: vec![0.0; model.n * model.propulsion_dim()],
            step: 0,
        };
        let forces = std::sync::Mutex::new(Simulation::from_state(model.clone(), state, 0, 0));
        ParticleDrift { model, forces }
    }

    /// Pair forces at positions `x` (N·d, wrapped or not), computed by the same cell-list
    /// code as the time stepping, written into `out` (N·d).
    fn pair_forces(&self, x: &[f64], out: &mut [f64]) {
        let mut sim = self.forces.lock().unwrap_or_else(|p| p.into_inner());
        sim.set_positions(x);
        sim.compute_forces();
        out.copy_from_slice(sim.forces());
    }

    /// Diagonal of the diffusion matrix D (length `dim()`); 0 for fixed particles.
    pub fn diffusion(&self) -> Vec<f64> {
        let m = &self.model;
        let (n, d, gd) = (m.n, m.dim, m.propulsion_dim());
        let mobile = |i: usize| i < n - m.n_fixed;
        let (dx, dg) = match m.dynamics {
            Dynamics::Aoup { eps, gamma, .. } => (eps, gamma),
            Dynamics::Abp { d_t, d_r, .. } => (d_t, d_r),
        };
        let mut out = Vec::with_capacity(n * (d + gd));
        for i in 0..n {
            out.extend(std::iter::repeat_n(if mobile(i) { dx } else { 0.0 }, d));
        }
        for i in 0..n {
            out.extend(std::iter::repeat_n(if mobile(i) { dg } else { 0.0 }, gd));
        }
        out
    }

    /// ∇·b(z): Σ_i Σ_j [f'(r_ij) + (d − 1) f(r_ij)/r_ij] (pairs within the cut-off, each ordered
    /// pair once, mobile i only; found with a cell list, O(N)) − N_mobile·d·A − N_mobile·d·γ
    /// (AOUP).
    pub fn divergence(&self, z: &[f64]) -> f64 {
        let m = &self.model;
        let (n, d) = (m.n, m.dim);
        let n_mobile = n - m.n_fixed;
        let mut div = 0.0;
        if let Some(pair) = m.pair {
            let rc = pair.cutoff();
            let scale = match m.dynamics {
                Dynamics::Abp { mu, .. } => mu,
                _ => 1.0,
            };
            let mut x = z[..n * d].to_vec();
            for v in x.iter_mut() {
                m.bx.wrap(v);
            }
            let mut cells = cells::CellList::new(&m.bx, rc);
            cells.build(&x);
            for i in 0..n_mobile {
                cells.for_each_candidate(i, |j| {
                    if i == j {
                        return;
                    }
                    let r2: f64 = (0..d)
                        .map(|c| m.bx.min_image(x[i * d + c] - x[j * d + c]).powi(2))
                        .sum();
                    let r = r2.sqrt();
                    if r < rc && r > 0.0 {
                        div +=
                            scale * (pair.derivative(r) + (d as f64 - 1.0) * pair.magnitude(r) / r);
                    }
                });
            }
        }
        if let Dynamics::Aoup { gamma, trap, .. } = m.dynamics {
            div -= (n_mobile * d) as f64 * (trap + gamma);
        }
        div
    }
}

impl System for ParticleDrift {
    fn dim(&self) -> usize {
        self.model.n * (self.model.dim + self.model.propulsion_dim())
    }

    fn rhs(&self, _t: f64, z: &[f64], out: &mut [f64]) {
        let m = &self.model;
        let (n, d, gd) = (m.n, m.dim, m.propulsion_dim());
        let (x, g) = z.split_at(n * d);
        let (bx, bg) = out.split_at_mut(n * d);
        let n_mobile = n - m.n_fixed;
        bg.iter_mut().for_each(|v| *v = 0.0);
        // bx holds the pair forces F first; the drift is then formed in place in the order of
        // the formula, v0 g + F − A x
        self.pair_forces(x, bx);
        match m.dynamics {
            Dynamics::Aoup {
                v0, gamma, trap, ..
            } => {
                for k in 0..n_mobile * d {
                    bx[k] = v0 * g[k] + bx[k] - trap * x[k];
                    bg[k] = -gamma * g[k];
                }
            }
            Dynamics::Abp { v0, mu, .. } => {
                for i in 0..n_mobile {
                    let mut e = [0.0f64; 3];
                    if d == 2 {
                        e[0] = g[i].cos();
                        e[1] = g[i].sin();
                    } else {
                        e[..gd].copy_from_slice(&g[i * gd..(i + 1) * gd]);
                    }
                    for c in 0..d {
                        bx[i * d + c] = v0 * e[c] + mu * bx[i * d + c];
                    }
                }
            }
        }
        // fixed particles do not move
        bx[n_mobile * d..].iter_mut().for_each(|v| *v = 0.0);
    }
}
