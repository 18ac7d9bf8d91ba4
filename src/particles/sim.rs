//! The particle simulation: state, forces through Verlet lists, and one time step of the model's
//! stochastic dynamics.
//!
//! Storage is kept in cell order (re-sorted at every neighbour-list rebuild) with a `tag` per
//! slot naming the particle, so neighbours are close in memory. One step is a single parallel
//! pass: each particle gathers the force of its neighbours from the old positions and writes its
//! new position into a second buffer (the buffers are then swapped), so there are no write
//! conflicts and the summation order is fixed. The noise of particle i at step n is a function of
//! (seed, replica, n, i) only: a step is bit-identical whatever the number of threads.

use super::cells::{select, PeriodicBox};
use super::isa::{self, multiversion, Isa};
use super::model::{Dynamics, PairForce, ParticleModel};
use super::neighbours::VerletList;
use super::rng::CounterRng;
use rayon::prelude::*;

/// Particles per parallel work item at most (large enough to amortise scheduling).
const CHUNK: usize = 512;

/// Instantaneous state of one replica, in particle order.
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
    /// Positions in storage order (slot s holds particle tag[s]); `x_next` is the write buffer.
    pub(super) x: Vec<f64>,
    pub(super) x_next: Vec<f64>,
    pub(super) image: Vec<i32>,
    pub(super) g: Vec<f64>,
    pub(super) tag: Vec<u32>,
    pub(super) step: u64,
    /// Noise stream of this replica's dynamics.
    rng: CounterRng,
    pub(super) nlist: Option<VerletList>,
    pub(super) max_force: f64,
    /// Largest squared displacement of a particle since the last neighbour-list build (∞ when
    /// unknown).
    max_disp2: f64,
    /// Pair forces of the last [`Simulation::compute_forces`], particle order.
    pub(super) force: Vec<f64>,
    /// Instruction set of the step kernel (detected; the results do not depend on it).
    isa: Isa,
    scratch: Scratch,
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
        Self::with_list(model, state, seed, replica, nlist)
    }

    /// [`Simulation::from_state`] with the given neighbour list (a decomposed run's list over
    /// its region of the box).
    pub(super) fn with_list(
        model: ParticleModel,
        state: ParticleState,
        seed: u64,
        replica: u32,
        nlist: Option<VerletList>,
    ) -> Simulation {
        // (all N particles, or a rank's own)
        let d = model.dim;
        let n = state.x.len() / d;
        let mut sim = Simulation {
            rng: CounterRng::new(seed, stream(replica, 0)),
            nlist,
            x: Vec::new(),
            x_next: vec![0.0; n * d],
            image: Vec::new(),
            g: Vec::new(),
            tag: (0..n as u32).collect(),
            step: 0,
            max_force: 0.0,
            max_disp2: f64::INFINITY,
            force: vec![0.0; n * d],
            isa: isa::detect(),
            scratch: Scratch::default(),
            model,
            seed,
            replica,
        };
        sim.set_state(state);
        sim
    }

    /// Replaces the state (particle order); the neighbour list is rebuilt at the next step.
    pub fn set_state(&mut self, state: ParticleState) {
        self.x = state.x;
        self.image = state.image;
        self.g = state.g;
        self.step = state.step;
        self.tag = (0..(self.x.len() / self.model.dim) as u32).collect();
        self.max_disp2 = f64::INFINITY;
    }

    /// Sets the positions (particle order, N·d, wrapped or not) in place, without allocating
    /// once the buffers have their size: positions are wrapped into the box (images counted),
    /// storage order reset to particle order, and the neighbour list marked stale, so that
    /// [`Simulation::compute_forces`] gives exactly what a fresh simulation at `x` would.
    pub fn set_positions(&mut self, x: &[f64]) {
        let bx = self.model.bx;
        self.x.clear();
        self.x.extend_from_slice(x);
        self.image.clear();
        self.image.resize(x.len(), 0);
        for (v, im) in self.x.iter_mut().zip(self.image.iter_mut()) {
            *im = bx.wrap(v);
        }
        for (k, t) in self.tag.iter_mut().enumerate() {
            *t = k as u32;
        }
        self.max_disp2 = f64::INFINITY;
    }

    /// The state in particle order (a copy).
    pub fn state(&self) -> ParticleState {
        let (d, gd) = (self.model.dim, self.model.propulsion_dim());
        let n = self.model.n;
        let mut st = ParticleState {
            x: vec![0.0; n * d],
            image: vec![0; n * d],
            g: vec![0.0; n * gd],
            step: self.step,
        };
        for (s, &i) in self.tag.iter().enumerate() {
            let i = i as usize;
            st.x[i * d..(i + 1) * d].copy_from_slice(&self.x[s * d..(s + 1) * d]);
            st.image[i * d..(i + 1) * d].copy_from_slice(&self.image[s * d..(s + 1) * d]);
            st.g[i * gd..(i + 1) * gd].copy_from_slice(&self.g[s * gd..(s + 1) * gd]);
        }
        st
    }

    /// Runs the step kernel compiled for the baseline target even where a wider instruction set
    /// is available (for the test that the variants give bit-identical results).
    #[doc(hidden)]
    pub fn use_baseline_kernel(&mut self) {
        self.isa = Isa::Baseline;
    }

    /// Steps taken since the initial condition.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Time t = step·Δt.
    pub fn time(&self) -> f64 {
        self.step as f64 * self.model.dt
    }

    /// Builds of the neighbour list so far.
    pub fn list_builds(&self) -> u64 {
        self.nlist.as_ref().map_or(0, |l| l.builds)
    }

    /// Rebuilds the neighbour list if a particle has moved more than half the skin since the
    /// last build: storage is re-sorted into cell order first (positions, images, propulsion and
    /// tags permuted together).
    fn refresh_neighbours(&mut self) {
        let d = self.model.dim;
        let gd = self.model.propulsion_dim();
        let bx = self.model.bx;
        let Some(list) = self.nlist.as_mut() else {
            return;
        };
        if self.max_disp2 <= 0.25 * list.skin * list.skin && list.is_built() {
            return;
        }
        let order = list.cell_order(&self.x);
        let sc = &mut self.scratch;
        permute(&mut self.x, order, d, &mut sc.x);
        permute(&mut self.image, order, d, &mut sc.image);
        permute(&mut self.g, order, gd, &mut sc.g);
        permute(&mut self.tag, order, 1, &mut sc.tag);
        list.build(&self.x, &bx, &self.tag);
        self.max_disp2 = 0.0;
    }

    /// Pair forces Σ_j f(r_ij) r̂_ij on every particle (N·d, particle order) at the current
    /// positions, by the same per-particle code as the time step (for analyses and tests).
    pub fn compute_forces(&mut self) {
        let d = self.model.dim;
        self.refresh_neighbours();
        let (Some(pair), Some(list)) = (self.model.pair, self.nlist.as_ref()) else {
            self.force.iter_mut().for_each(|f| *f = 0.0);
            return;
        };
        let rc2 = pair.cutoff().powi(2);
        let bx = self.model.bx;
        let mut f = [0.0f64; 3];
        for (s, &i) in self.tag.iter().enumerate() {
            force_on(s, &self.x, d, &bx, &pair, rc2, list, &mut f[..d]);
            let i = i as usize;
            self.force[i * d..(i + 1) * d].copy_from_slice(&f[..d]);
        }
    }

    /// Pair forces of the last [`Simulation::compute_forces`] (particle order, N·d).
    pub fn forces(&self) -> &[f64] {
        &self.force
    }

    /// The first particle (id) whose image counter exceeds `limit` in absolute value, with that
    /// counter (the driver's blow-up check; counters saturate at the `i32` range in the step).
    pub fn image_beyond(&self, limit: i32) -> Option<(usize, i64)> {
        let limit = limit.unsigned_abs();
        // a branch-free maximum (vectorised): one pass of a few µs at N = 32768 in 2-D
        let worst = self.image.iter().fold(0u32, |m, v| m.max(v.unsigned_abs()));
        if worst <= limit {
            return None;
        }
        let k = self.image.iter().position(|v| v.unsigned_abs() > limit)?;
        Some((self.tag[k / self.model.dim] as usize, self.image[k] as i64))
    }

    /// Largest force component of the last step.
    pub fn max_force(&self) -> f64 {
        self.max_force
    }

    /// Largest displacement a force caused in the last step: max |F| · mobility · Δt (the
    /// blow-up check: a sizeable fraction of a diameter means Δt is too large).
    pub fn max_force_displacement(&self) -> f64 {
        let mu = match self.model.dynamics {
            Dynamics::Abp { mu, .. } => mu,
            Dynamics::Aoup { .. } => 1.0,
        };
        self.max_force * mu * self.model.dt
    }

    /// Advances one step of Δt: forces from the old positions, Euler–Maruyama for x (and for the
    /// ABP orientation), the exact Ornstein–Uhlenbeck step for the AOUP propulsion.
    pub fn step(&mut self) {
        self.refresh_neighbours();
        let n = self.model.n;
        let (disp, fmax) = self.advance_slots(n);
        self.max_force = fmax;
        if self.nlist.as_ref().is_some_and(|l| l.is_built()) {
            self.max_disp2 = self.max_disp2.max(disp);
        }
    }

    /// The step kernel over the first `owned` storage slots (all of them in a single-process
    /// run; a rank's own particles, ahead of its ghosts, in a decomposed one — the ghosts are
    /// read, not moved): forces from the old positions through the current neighbour list,
    /// positions written into the second buffer, buffers swapped, step counter advanced.
    /// Returns (largest squared displacement since the list build, largest force component)
    /// over those slots.
    pub(super) fn advance_slots(&mut self, owned: usize) -> (f64, f64) {
        let m = &self.model;
        let (d, dt, n_mobile) = (m.dim, m.dt, (m.n - m.n_fixed) as u32);
        let gd = m.propulsion_dim();
        let bx = m.bx;
        let step = self.step;
        let pair = m.pair;
        let rc2 = pair.map_or(0.0, |p| p.cutoff().powi(2));
        let list = self.nlist.as_ref();
        let xb: &[f64] = list.map_or(&[], |l| l.built_positions());
        let x_old = &self.x;
        let tag = &self.tag;
        // 16 work items per thread for small systems (results do not depend on it)
        let chunk_len = super::work_item_len(owned, 16, CHUNK);
        let ctx = StepContext {
            dynamics: m.dynamics,
            kicks: NoiseAmplitudes::new(&m.dynamics, dt),
            rng: self.rng,
            step,
            dt,
            d,
            gd,
            n_mobile,
            bx,
            pair,
            rc2,
            list,
            xb,
            x_old,
            tag,
            chunk_len,
        };
        let isa = self.isa;
        #[cfg(target_arch = "x86_64")]
        let wide = isa == Isa::Avx512 && super::avx512::applies(&ctx);
        let (disp, fmax) = self.x_next[..owned * d]
            .par_chunks_mut(chunk_len * d)
            .zip(self.image[..owned * d].par_chunks_mut(chunk_len * d))
            .zip(self.g[..owned * gd].par_chunks_mut(chunk_len * gd))
            .enumerate()
            .map(|(chunk, ((xn, imgs), gs))| {
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: the CPU has AVX-512 (isa comes from isa::detect) and the kernel
                    // applies to this model.
                    return unsafe { super::avx512::chunk2(&ctx, chunk, xn, imgs, gs) };
                }
                step_chunk_for(isa, &ctx, chunk, xn, imgs, gs)
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        std::mem::swap(&mut self.x, &mut self.x_next);
        self.step += 1;
        (disp, fmax)
    }
}

/// Everything one step of a chunk of particles reads (shared by all chunks).
pub(super) struct StepContext<'a> {
    pub(super) dynamics: Dynamics,
    pub(super) kicks: NoiseAmplitudes,
    pub(super) rng: CounterRng,
    pub(super) step: u64,
    pub(super) dt: f64,
    pub(super) d: usize,
    pub(super) gd: usize,
    pub(super) n_mobile: u32,
    pub(super) bx: PeriodicBox,
    pub(super) pair: Option<PairForce>,
    pub(super) rc2: f64,
    pub(super) list: Option<&'a VerletList>,
    /// Positions at the last list build (storage order; empty without a list).
    pub(super) xb: &'a [f64],
    pub(super) x_old: &'a [f64],
    pub(super) tag: &'a [u32],
    /// Particles per work item (see [`super::work_item_len`]).
    pub(super) chunk_len: usize,
}

multiversion!(
    /// [`step_chunk`] compiled for the instruction set `isa` (see [`super::isa`]; measured on
    /// 2-D ABP-WCA, N = 32768, one core: baseline 9.8e6, AVX2 9.9e6, AVX-512 1.22e7
    /// particle-steps/s).
    fn step_chunk_for(
        ctx: &StepContext,
        chunk: usize,
        xn: &mut [f64],
        imgs: &mut [i32],
        gs: &mut [f64],
    ) -> (f64, f64) = step_chunk;
);

/// One step of the particles of storage chunk `chunk`: forces from the old positions, then
/// [`advance`]; returns (largest squared displacement since the list build, largest force
/// component).
#[inline(always)]
fn step_chunk(
    ctx: &StepContext,
    chunk: usize,
    xn: &mut [f64],
    imgs: &mut [i32],
    gs: &mut [f64],
) -> (f64, f64) {
    let d = ctx.d;
    let (mut disp, mut fmax) = (0.0f64, 0.0f64);
    for k in 0..xn.len() / d {
        step_particle(
            ctx,
            chunk * ctx.chunk_len + k,
            k,
            xn,
            imgs,
            gs,
            &mut disp,
            &mut fmax,
        );
    }
    (disp, fmax)
}

/// One step of the particle in storage slot `s` (offset `k` in the chunk's output slices
/// `xn`, `imgs`, `gs`): its force from the old positions, then [`advance`]; folds its squared
/// displacement since the list build into `disp` and its largest force component into `fmax`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn step_particle(
    ctx: &StepContext,
    s: usize,
    k: usize,
    xn: &mut [f64],
    imgs: &mut [i32],
    gs: &mut [f64],
    disp: &mut f64,
    fmax: &mut f64,
) {
    let (d, gd) = (ctx.d, ctx.gd);
    let xi = &ctx.x_old[s * d..(s + 1) * d];
    let out = &mut xn[k * d..(k + 1) * d];
    let i = ctx.tag[s];
    if i >= ctx.n_mobile {
        out.copy_from_slice(xi);
        return;
    }
    let mut f = [0.0f64; 3];
    if let (Some(p), Some(l)) = (ctx.pair, ctx.list) {
        force_on(s, ctx.x_old, d, &ctx.bx, &p, ctx.rc2, l, &mut f[..d]);
        *fmax = f[..d].iter().fold(*fmax, |a, v| a.max(v.abs()));
    }
    advance(
        &ctx.dynamics,
        &ctx.kicks,
        &ctx.rng,
        ctx.step,
        i,
        ctx.dt,
        &ctx.bx,
        xi,
        &f[..d],
        out,
        &mut imgs[k * d..(k + 1) * d],
        &mut gs[k * gd..(k + 1) * gd],
    );
    if !ctx.xb.is_empty() {
        *disp = disp.max(displacement2(out, &ctx.xb[s * d..(s + 1) * d], &ctx.bx));
    }
}

/// The update of one mobile particle (id `i`) from its old position `xi` and pair force `f`:
/// writes the new wrapped position into `out`, updates its image counters and propulsion.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn advance(
    dynamics: &Dynamics,
    kicks: &NoiseAmplitudes,
    rng: &CounterRng,
    step: u64,
    i: u32,
    dt: f64,
    bx: &PeriodicBox,
    xi: &[f64],
    f: &[f64],
    out: &mut [f64],
    img: &mut [i32],
    g: &mut [f64],
) {
    let d = xi.len();
    match *dynamics {
        Dynamics::Aoup { v0, trap, .. } => {
            let NoiseAmplitudes { sx, decay, sg, .. } = *kicks;
            let z = rng.normals(step, i, 0);
            let z2 = if d > 2 {
                rng.normals(step, i, 1)
            } else {
                [0.0; 4]
            };
            for c in 0..d {
                let unwrapped = xi[c] + img[c] as f64 * bx.length;
                let drift = v0 * g[c] + f[c] - trap * unwrapped;
                // noise: x uses z[0..d), g the next d numbers
                let (nx, ng) = noise_pair(&z, &z2, c, d);
                let mut xn = xi[c] + drift * dt + sx * nx;
                g[c] = decay * g[c] + sg * ng;
                img[c] = img[c].saturating_add(bx.wrap(&mut xn));
                out[c] = xn;
            }
        }
        Dynamics::Abp { v0, mu, .. } => {
            let NoiseAmplitudes { sx, sr, .. } = *kicks;
            let z = rng.normals(step, i, 0);
            if d == 2 {
                let (s, c) = super::rng::sin_cos(g[0]);
                let dir = [c, s];
                for a in 0..2 {
                    let mut xn = xi[a] + (v0 * dir[a] + mu * f[a]) * dt + sx * z[a];
                    img[a] = img[a].saturating_add(bx.wrap(&mut xn));
                    out[a] = xn;
                }
                // the angle is kept in [−π, π) (only e = (cos θ, sin θ) matters)
                let mut th = g[0] + sr * z[2];
                if th >= std::f64::consts::PI {
                    th -= std::f64::consts::TAU;
                } else if th < -std::f64::consts::PI {
                    th += std::f64::consts::TAU;
                }
                g[0] = th;
            } else {
                let z2 = rng.normals(step, i, 1);
                for a in 0..3 {
                    let mut xn = xi[a] + (v0 * g[a] + mu * f[a]) * dt + sx * z[a];
                    img[a] = img[a].saturating_add(bx.wrap(&mut xn));
                    out[a] = xn;
                }
                // rotational diffusion on the sphere: tangential kick, renormalised
                let eta = [z[3], z2[0], z2[1]];
                let dot = eta[0] * g[0] + eta[1] * g[1] + eta[2] * g[2];
                for a in 0..3 {
                    g[a] += sr * (eta[a] - dot * g[a]);
                }
                let norm = (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt();
                g.iter_mut().for_each(|v| *v /= norm);
            }
        }
    }
}

/// Per-step constants of the noise, computed once per step rather than once per particle:
/// translational kick √(2 D_x Δt) (AOUP: D_x = ε, ABP: D_T), the exact OU factors e^{−γΔt} and
/// √(1 − e^{−2γΔt}) of the AOUP propulsion, the rotational kick √(2 D_r Δt) of ABPs.
#[derive(Clone, Copy)]
pub(super) struct NoiseAmplitudes {
    pub(super) sx: f64,
    pub(super) decay: f64,
    pub(super) sg: f64,
    pub(super) sr: f64,
}

impl NoiseAmplitudes {
    fn new(dynamics: &Dynamics, dt: f64) -> Self {
        match *dynamics {
            Dynamics::Aoup { gamma, eps, .. } => {
                let decay = (-gamma * dt).exp();
                NoiseAmplitudes {
                    sx: (2.0 * eps * dt).sqrt(),
                    decay,
                    sg: (1.0 - decay * decay).sqrt(),
                    sr: 0.0,
                }
            }
            Dynamics::Abp { d_t, d_r, .. } => NoiseAmplitudes {
                sx: (2.0 * d_t * dt).sqrt(),
                decay: 0.0,
                sg: 0.0,
                sr: (2.0 * d_r * dt).sqrt(),
            },
        }
    }
}

/// Buffers the re-sort into cell order writes into (kept between rebuilds: no allocation).
#[derive(Default)]
struct Scratch {
    x: Vec<f64>,
    image: Vec<i32>,
    g: Vec<f64>,
    tag: Vec<u32>,
}

/// `v[k] = v_old[order[k]]` for blocks of `per` values, through the buffer `out` (swapped in).
pub(super) fn permute<T: Copy + Default + Send + Sync>(
    v: &mut Vec<T>,
    order: &[u32],
    per: usize,
    out: &mut Vec<T>,
) {
    out.resize(v.len(), T::default());
    out.par_chunks_mut(CHUNK * per)
        .zip(order.par_chunks(CHUNK))
        .for_each(|(o, idx)| {
            for (ok, &s) in o.chunks_exact_mut(per).zip(idx) {
                let s = s as usize;
                ok.copy_from_slice(&v[s * per..(s + 1) * per]);
            }
        });
    std::mem::swap(v, out);
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
pub(super) fn skin(model: &ParticleModel, _pair: &PairForce) -> f64 {
    0.3 * model.diameter()
}

/// Force on the particle in storage slot `s` from its list neighbours (positions in storage
/// order).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn force_on(
    s: usize,
    x: &[f64],
    d: usize,
    bx: &PeriodicBox,
    pair: &PairForce,
    rc2: f64,
    list: &VerletList,
    out: &mut [f64],
) {
    let nb = list.neighbours(s);
    match (*pair, d) {
        (PairForce::Wca { eps, sigma }, 2) => {
            // branch-free: the LJ expression is cheap, so evaluate it for every neighbour and mask
            let (s2, e24) = (sigma * sigma, 24.0 * eps);
            force_over_list::<2>(s, x, bx, rc2, nb, out, true, |r2| {
                let inv = 1.0 / r2;
                let q = s2 * inv;
                let s6 = q * q * q;
                e24 * (2.0 * s6 * s6 - s6) * inv
            })
        }
        (p, 1) => force_over_list::<1>(s, x, bx, rc2, nb, out, false, |r2| p.magnitude_over_r(r2)),
        (p, 2) => force_over_list::<2>(s, x, bx, rc2, nb, out, false, |r2| p.magnitude_over_r(r2)),
        (p, _) => force_over_list::<3>(s, x, bx, rc2, nb, out, false, |r2| p.magnitude_over_r(r2)),
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn force_over_list<const D: usize>(
    s: usize,
    x: &[f64],
    bx: &PeriodicBox,
    rc2: f64,
    nb: &[u32],
    out: &mut [f64],
    branchless: bool,
    over_r: impl Fn(f64) -> f64,
) {
    let mut xi = [0.0f64; D];
    xi.copy_from_slice(&x[s * D..(s + 1) * D]);
    let mut f = [0.0f64; D];
    for &j in nb {
        let j = j as usize;
        let mut r = [0.0f64; D];
        let mut r2 = 0.0;
        for a in 0..D {
            let v = bx.min_image_wrapped(xi[a] - x[j * D + a]);
            r[a] = v;
            r2 += v * v;
        }
        let inside = r2 < rc2 && r2 > 0.0;
        let sc = if branchless {
            // half of a Verlet list lies outside the cut-off, in no predictable pattern: evaluate
            // for every neighbour and mask with selects, not branches
            select(inside, over_r(select(inside, r2, rc2)), 0.0)
        } else if inside {
            over_r(r2)
        } else {
            0.0
        };
        for a in 0..D {
            f[a] += sc * r[a];
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
