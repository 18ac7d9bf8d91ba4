//! The particle simulation: state, forces through the cell list, and one time step of the
//! model's stochastic dynamics. Forces are gathered per particle (each particle sums over its
//! own neighbours, in cell order), and the noise of particle i at step n is a function of
//! (seed, replica, n, i) only, so a step is bit-identical whatever the number of threads.

use super::cells::PeriodicBox;
use super::model::{Dynamics, PairForce, ParticleModel};
use super::neighbours::{self, VerletList};
use super::rng::CounterRng;
use rayon::prelude::*;

/// Particles per parallel work item (large enough to amortise scheduling).
const CHUNK: usize = 512;

/// Instantaneous state of one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticleState {
    /// Positions wrapped into the box, N·d (particle-major).
    pub x: Vec<f64>,
    /// Image counters, N·d: the unwrapped position is x + image·L.
    pub image: Vec<i32>,
    /// AOUP: self-propulsion g (N·d). ABP 2-D: angles θ (N). ABP 3-D: unit vectors e (N·3).
    pub g: Vec<f64>,
    /// Steps taken since the initial condition.
    pub step: u64,
}

/// A replica of a particle model being integrated.
pub struct Simulation {
    pub model: ParticleModel,
    pub state: ParticleState,
    /// Noise stream of this replica's dynamics.
    rng: CounterRng,
    nlist: Option<VerletList>,
    force: Vec<f64>,
    max_force: f64,
    /// Largest squared displacement of a particle since the last neighbour-list build (∞ when
    /// unknown).
    max_disp2: f64,
    sorted_x: Vec<f64>,
    sorted_f: Vec<f64>,
    /// Current positions in the layout the cell list was built from (scratch, N·d).
    pub seed: u64,
    pub replica: u32,
}

/// Stream numbers under one seed: replicas are independent, and initial conditions use their own
/// streams.
fn stream(replica: u32, purpose: u32) -> u32 {
    replica.wrapping_mul(4).wrapping_add(purpose) & 0x00ff_ffff
}

impl Simulation {
    /// A replica started from a random initial condition: positions on a lattice filling the box
    /// with random jitter that keeps particles apart, in a random assignment; self-propulsion
    /// drawn from its stationary law N(0, I) (AOUP), orientations uniform (ABP).
    pub fn new(model: ParticleModel, seed: u64, replica: u32) -> Simulation {
        let state = initial_state(&model, seed, replica);
        Self::from_state(model, state, seed, replica)
    }

    /// A replica continuing from a given state (resume, or a user-supplied configuration).
    pub fn from_state(
        model: ParticleModel,
        state: ParticleState,
        seed: u64,
        replica: u32,
    ) -> Simulation {
        let nlist = model
            .pair
            .map(|p| VerletList::new(&model.bx, p.cutoff(), skin(&model, &p)));
        let n = model.n;
        let d = model.dim;
        Simulation {
            rng: CounterRng::new(seed, stream(replica, 0)),
            nlist,
            force: vec![0.0; n * d],
            max_force: 0.0,
            max_disp2: f64::INFINITY,
            sorted_x: Vec::new(),
            sorted_f: Vec::new(),
            model,
            state,
            seed,
            replica,
        }
    }

    /// Time t = step·Δt.
    pub fn time(&self) -> f64 {
        self.state.step as f64 * self.model.dt
    }

    /// Pair forces Σ_j f(r_ij) r̂_ij on every particle (N·d), from the Verlet list (rebuilt
    /// from the cell list when a particle has moved more than half the skin): positions are
    /// gathered into cell order, each particle sums over its own neighbours (no write conflicts,
    /// a fixed summation order, so any thread count gives the same bits), and the forces are
    /// scattered back.
    pub fn compute_forces(&mut self) {
        let d = self.model.dim;
        let (Some(pair), Some(list)) = (self.model.pair, self.nlist.as_mut()) else {
            self.force.iter_mut().for_each(|f| *f = 0.0);
            return;
        };
        let bx = self.model.bx;
        // the displacement since the last build is tracked by the update pass (max_disp2); after
        // an external change of the state it is unknown (∞) and the list is rebuilt
        if !(self.max_disp2 <= 0.25 * list.skin * list.skin) || !list.is_built() {
            list.build(&self.state.x, &bx, &mut self.sorted_x);
            self.max_disp2 = 0.0;
        } else {
            neighbours::gather(&self.state.x, list.order(), d, &mut self.sorted_x);
        }
        let list = &*list;
        let n = self.model.n;
        self.sorted_f.resize(n * d, 0.0);
        let xs = &self.sorted_x;
        let rc2 = pair.cutoff().powi(2);
        self.max_force = self
            .sorted_f
            .par_chunks_mut(CHUNK * d)
            .enumerate()
            .map(|(chunk, out)| {
                let first = chunk * CHUNK;
                let mut fmax = 0.0f64;
                for (k, fk) in out.chunks_exact_mut(d).enumerate() {
                    sorted_force_on(first + k, xs, d, &bx, &pair, rc2, list, fk);
                    fmax = fk.iter().fold(fmax, |m, v| m.max(v.abs()));
                }
                fmax
            })
            .reduce(|| 0.0, f64::max);
        neighbours::scatter(&self.sorted_f, &list.rank, d, &mut self.force);
    }

    /// Largest force component of the last step (the blow-up check: a step moving a particle by
    /// a sizeable fraction of its diameter means Δt is too large).
    pub fn max_force(&self) -> f64 {
        self.max_force
    }

    /// Largest displacement a force can cause in one step: max |F| · mobility · Δt.
    pub fn max_force_displacement(&self) -> f64 {
        let mu = match self.model.dynamics {
            Dynamics::Abp { mu, .. } => mu,
            Dynamics::Aoup { .. } => 1.0,
        };
        self.max_force * mu * self.model.dt
    }

    /// Builds of the neighbour list so far.
    pub fn list_builds(&self) -> u64 {
        self.nlist.as_ref().map_or(0, |l| l.builds)
    }

    /// Advances one step of Δt.
    pub fn step(&mut self) {
        self.compute_forces();
        let xb_store = self.nlist.as_ref().map(|l| l.built_positions());
        let xb: &[f64] = xb_store.unwrap_or(&[]);
        let track = !xb.is_empty();
        let m = &self.model;
        let (d, dt, n_mobile) = (m.dim, m.dt, m.n - m.n_fixed);
        let bx = m.bx;
        let step = self.state.step;
        let rng = self.rng;
        let force = &self.force;
        let gd = m.propulsion_dim();
        let disp = match m.dynamics {
            Dynamics::Aoup {
                v0,
                gamma,
                eps,
                trap,
            } => {
                let sx = (2.0 * eps * dt).sqrt();
                let decay = (-gamma * dt).exp();
                let sg = (1.0 - decay * decay).sqrt();
                let len = bx.length;
                self.state.x[..n_mobile * d]
                    .par_chunks_mut(CHUNK * d)
                    .zip(self.state.image[..n_mobile * d].par_chunks_mut(CHUNK * d))
                    .zip(self.state.g[..n_mobile * d].par_chunks_mut(CHUNK * d))
                    .enumerate()
                    .map(|(chunk, ((xs, imgs), gs))| {
                        let mut disp = 0.0f64;
                        for k in 0..xs.len() / d {
                            let i = chunk * CHUNK + k;
                            let z = rng.normals(step, i as u32, 0);
                            let z2 = if d > 2 {
                                rng.normals(step, i as u32, 1)
                            } else {
                                [0.0; 4]
                            };
                            for c in 0..d {
                                let (xi, gi) = (&mut xs[k * d + c], &mut gs[k * d + c]);
                                let unwrapped = *xi + imgs[k * d + c] as f64 * len;
                                let drift = v0 * *gi + force[i * d + c] - trap * unwrapped;
                                // noise: x uses z[0..d), g uses the next d numbers
                                let (nx, ng) = noise_pair(&z, &z2, c, d);
                                *xi += drift * dt + sx * nx;
                                *gi = decay * *gi + sg * ng;
                                imgs[k * d + c] += bx.wrap(xi);
                            }
                            if track {
                                disp = disp.max(displacement2(&xs[k * d..(k + 1) * d], &xb[i * d..(i + 1) * d], &bx));
                            }
                        }
                        disp
                    })
                    .reduce(|| 0.0, f64::max)
            }
            Dynamics::Abp { v0, mu, d_t, d_r } => {
                let sx = (2.0 * d_t * dt).sqrt();
                let sr = (2.0 * d_r * dt).sqrt();
                self.state.x[..n_mobile * d]
                    .par_chunks_mut(CHUNK * d)
                    .zip(self.state.image[..n_mobile * d].par_chunks_mut(CHUNK * d))
                    .zip(self.state.g[..n_mobile * gd].par_chunks_mut(CHUNK * gd))
                    .enumerate()
                    .map(|(chunk, ((xs, imgs), gs))| {
                        let mut disp = 0.0f64;
                        for k in 0..xs.len() / d {
                            let i = chunk * CHUNK + k;
                            let z = rng.normals(step, i as u32, 0);
                            let e = &mut gs[k * gd..(k + 1) * gd];
                            if d == 2 {
                                let (s, c) = super::rng::sin_cos(e[0]);
                                let dir = [c, s];
                                for a in 0..2 {
                                    let xi = &mut xs[k * 2 + a];
                                    *xi += (v0 * dir[a] + mu * force[i * 2 + a]) * dt + sx * z[a];
                                    imgs[k * 2 + a] += bx.wrap(xi);
                                }
                                // the angle is kept in [−π, π) (only e = (cos θ, sin θ) matters)
                                let mut th = e[0] + sr * z[2];
                                if th >= std::f64::consts::PI {
                                    th -= std::f64::consts::TAU;
                                } else if th < -std::f64::consts::PI {
                                    th += std::f64::consts::TAU;
                                }
                                e[0] = th;
                            } else {
                                let z2 = rng.normals(step, i as u32, 1);
                                for a in 0..3 {
                                    let xi = &mut xs[k * 3 + a];
                                    *xi += (v0 * e[a] + mu * force[i * 3 + a]) * dt + sx * z[a];
                                    imgs[k * 3 + a] += bx.wrap(xi);
                                }
                                // rotational diffusion on the sphere: tangential kick, renormalised
                                let eta = [z[3], z2[0], z2[1]];
                                let dot = eta[0] * e[0] + eta[1] * e[1] + eta[2] * e[2];
                                for a in 0..3 {
                                    e[a] += sr * (eta[a] - dot * e[a]);
                                }
                                let norm = (e[0] * e[0] + e[1] * e[1] + e[2] * e[2]).sqrt();
                                e.iter_mut().for_each(|v| *v /= norm);
                            }
                            if track {
                                disp = disp.max(displacement2(&xs[k * d..(k + 1) * d], &xb[i * d..(i + 1) * d], &bx));
                            }
                        }
                        disp
                    })
                    .reduce(|| 0.0, f64::max)
            }
        };
        if track {
            self.max_disp2 = self.max_disp2.max(disp);
        }
        self.state.step += 1;
    }

    /// Forces a neighbour-list rebuild at the next step: call after changing `state` by hand.
    pub fn invalidate_neighbours(&mut self) {
        self.max_disp2 = f64::INFINITY;
    }

    /// Pair forces of the last step (N·d).
    pub fn forces(&self) -> &[f64] {
        &self.force
    }
}

/// Squared minimum-image distance of two wrapped positions.
#[inline(always)]
fn displacement2(a: &[f64], b: &[f64], bx: &PeriodicBox) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| {
            let v = bx.min_image_wrapped(p - q);
            v * v
        })
        .sum()
}

/// Noise numbers for component c of x and g from two blocks of four normals (d ≤ 3).
#[inline]
fn noise_pair(z: &[f64; 4], z2: &[f64; 4], c: usize, d: usize) -> (f64, f64) {
    let all = [z[0], z[1], z[2], z[3], z2[0], z2[1]];
    (all[c], all[d + c])
}

/// Skin of the Verlet list: 0.3 particle diameters (a rebuild every ~0.15 σ of motion).
fn skin(model: &ParticleModel, _pair: &PairForce) -> f64 {
    0.3 * model.diameter()
}

/// Force on the particle at sorted position `ks`, from positions in sorted order.
#[allow(clippy::too_many_arguments)]
#[inline]
fn sorted_force_on(
    ks: usize,
    xs: &[f64],
    d: usize,
    bx: &PeriodicBox,
    pair: &PairForce,
    rc2: f64,
    list: &VerletList,
    out: &mut [f64],
) {
    let nb = list.neighbours(ks);
    match (*pair, d) {
        (PairForce::Wca { eps, sigma }, 2) => {
            // branch-free: the LJ expression is cheap, so evaluate it for every neighbour and mask
            let (s2, e24) = (sigma * sigma, 24.0 * eps);
            force_over_list::<2>(ks, xs, bx, rc2, nb, out, true, |r2| {
                let inv = 1.0 / r2;
                let q = s2 * inv;
                let s6 = q * q * q;
                e24 * (2.0 * s6 * s6 - s6) * inv
            })
        }
        (p, 1) => {
            force_over_list::<1>(ks, xs, bx, rc2, nb, out, false, |r2| p.magnitude_over_r(r2))
        }
        (p, 2) => {
            force_over_list::<2>(ks, xs, bx, rc2, nb, out, false, |r2| p.magnitude_over_r(r2))
        }
        (p, _) => {
            force_over_list::<3>(ks, xs, bx, rc2, nb, out, false, |r2| p.magnitude_over_r(r2))
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn force_over_list<const D: usize>(
    ks: usize,
    xs: &[f64],
    bx: &PeriodicBox,
    rc2: f64,
    nb: &[u32],
    out: &mut [f64],
    branchless: bool,
    over_r: impl Fn(f64) -> f64,
) {
    let mut xi = [0.0f64; D];
    xi.copy_from_slice(&xs[ks * D..(ks + 1) * D]);
    let mut f = [0.0f64; D];
    for &j in nb {
        let j = j as usize;
        let mut r = [0.0f64; D];
        let mut r2 = 0.0;
        for a in 0..D {
            let v = bx.min_image_wrapped(xi[a] - xs[j * D + a]);
            r[a] = v;
            r2 += v * v;
        }
        let inside = r2 < rc2 && r2 > 0.0;
        let s = if branchless {
            let s = over_r(if inside { r2 } else { rc2 });
            if inside {
                s
            } else {
                0.0
            }
        } else if inside {
            over_r(r2)
        } else {
            0.0
        };
        for a in 0..D {
            f[a] += s * r[a];
        }
    }
    out.copy_from_slice(&f);
}

/// All-pairs forces (O(N²), minimum image): the reference the cell list is tested against.
pub fn all_pairs_forces(model: &ParticleModel, x: &[f64]) -> Vec<f64> {
    let d = model.dim;
    let mut out = vec![0.0; x.len()];
    let Some(pair) = model.pair else { return out };
    let rc = pair.cutoff();
    for i in 0..model.n {
        for j in 0..model.n {
            if i == j {
                continue;
            }
            let r: Vec<f64> = (0..d)
                .map(|c| model.bx.min_image(x[i * d + c] - x[j * d + c]))
                .collect();
            let rn = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            if rn < rc && rn > 0.0 {
                for c in 0..d {
                    out[i * d + c] += pair.magnitude(rn) * r[c] / rn;
                }
            }
        }
    }
    out
}

/// The initial condition of replica `replica` (see [`Simulation::new`]).
pub fn initial_state(model: &ParticleModel, seed: u64, replica: u32) -> ParticleState {
    let (n, d) = (model.n, model.dim);
    let rng = CounterRng::new(seed, stream(replica, 1));
    let per_side = (n as f64).powf(1.0 / d as f64).ceil() as usize;
    let spacing = model.bx.length / per_side as f64;
    let jitter = (spacing - model.diameter()).max(0.0) * 0.5;
    // random assignment of particles to lattice sites: sort sites by a random key
    let sites = per_side.pow(d as u32);
    let mut keys: Vec<(u64, usize)> = (0..sites)
        .map(|s| {
            let b = rng.bits(0, s as u32, 0);
            (((b[0] as u64) << 32) | b[1] as u64, s)
        })
        .collect();
    keys.sort_unstable();
    let w = model.bx.half();
    let mut x = vec![0.0; n * d];
    for i in 0..n {
        let mut s = keys[i].1;
        let u = rng.uniforms(1, i as u32, 0);
        for c in 0..d {
            let site = s % per_side;
            s /= per_side;
            let centre = -w + (site as f64 + 0.5) * spacing;
            x[i * d + c] = centre + jitter * (2.0 * u[c] - 1.0);
        }
    }
    let mut image = vec![0; n * d];
    for (xi, im) in x.iter_mut().zip(image.iter_mut()) {
        *im += model.bx.wrap(xi);
    }
    let gd = model.propulsion_dim();
    let mut g = vec![0.0; n * gd];
    for i in 0..n {
        let z = rng.normals(2, i as u32, 0);
        match model.dynamics {
            Dynamics::Aoup { .. } => g[i * d..(i + 1) * d].copy_from_slice(&z[..d]),
            Dynamics::Abp { .. } => {
                if d == 2 {
                    let u = rng.uniforms(3, i as u32, 0);
                    g[i] = std::f64::consts::TAU * u[0] - std::f64::consts::PI;
                } else {
                    let norm = (z[0] * z[0] + z[1] * z[1] + z[2] * z[2]).sqrt();
                    for c in 0..3 {
                        g[i * 3 + c] = z[c] / norm;
                    }
                }
            }
        }
    }
    if model.n_fixed > 0 {
        // fixed particles keep no propulsion
        for v in g[(n - model.n_fixed) * gd..].iter_mut() {
            *v = 0.0;
        }
    }
    ParticleState {
        x,
        image,
        g,
        step: 0,
    }
}
