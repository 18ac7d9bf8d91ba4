//! The particle engine against exact answers: cell-list forces = all-pairs forces; the
//! self-propulsion marginal is exactly N(0, I); free AOUP and ABP mean-squared displacements and
//! the ABP orientation autocorrelation against their closed forms; the stationary covariance of
//! the linear trap; the divergence of the drift against finite differences.

use phaseflow::particles::model::ParticleModel;
use phaseflow::particles::observables::{autocorrelation, msd, unwrap};
use phaseflow::particles::sim::{all_pairs_forces, Simulation};
use phaseflow::particles::{ParticleDrift, ParticleState};
use phaseflow::systems::{finite_difference_jacobian, System};
use std::path::Path;

fn model(text: &str, set: &[(&str, f64)]) -> ParticleModel {
    let ov: Vec<(String, f64)> = set.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    ParticleModel::from_str_at(text, Path::new("test.toml"), &ov).unwrap()
}

fn aoup(dim: usize, extra: &str) -> String {
    format!(
        "name = \"t\"\nkind = \"particles\"\nmodel = \"aoup\"\ndimension = {dim}\ndt = 0.01\n[parameters]\nN = 100\nphi = 0.3\nv0 = 1.0\ngamma = 0.5\neps = 0.1\nk = 1.0\n{extra}"
    )
}

const MIPS: &str = include_str!("../systems/active/mips.toml");

const ABP: &str = "name = \"a\"\nkind = \"particles\"\nmodel = \"abp\"\ndimension = 2\ndt = 1e-3\n[parameters]\nN = 100\nphi = 0.3\nPe = 30.0\n";

/// Uniformly random wrapped positions (overlaps allowed), from a fixed xorshift stream.
fn random_positions(m: &ParticleModel, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let w = m.bx.half();
    (0..m.n * m.dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            -w + 2.0 * w * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

#[test]
fn cell_list_forces_equal_all_pairs_forces() {
    let cases: Vec<(String, Vec<(&str, f64)>)> = vec![
        (aoup(1, "beta = 7.5\n"), vec![("phi", 0.2), ("N", 40.0)]),
        (aoup(2, "beta = 7.5\n"), vec![("phi", 0.1), ("N", 400.0)]),
        (aoup(2, "beta = 7.5\n"), vec![("phi", 0.5), ("N", 900.0)]),
        (aoup(2, ""), vec![("phi", 0.7), ("N", 900.0)]),
        (aoup(3, "beta = 7.5\n"), vec![("phi", 0.3), ("N", 800.0)]),
        (ABP.to_string(), vec![("phi", 0.2), ("N", 600.0)]),
        (ABP.to_string(), vec![("phi", 0.6), ("N", 1000.0)]),
        (
            ABP.replace("dimension = 2", "dimension = 3"),
            vec![("phi", 0.4), ("N", 1000.0)],
        ),
    ];
    for (k, (text, set)) in cases.iter().enumerate() {
        let m = model(text, set);
        let x = random_positions(&m, k as u64 + 1);
        let reference = all_pairs_forces(&m, &x);
        let state = ParticleState {
            x: x.clone(),
            image: vec![0; x.len()],
            g: vec![0.0; m.n * m.propulsion_dim()],
            step: 0,
        };
        let mut sim = Simulation::from_state(m.clone(), state, 1, 0);
        sim.compute_forces();
        let scale = reference.iter().fold(1e-300f64, |a, v| a.max(v.abs()));
        let mut nonzero = 0;
        for (a, b) in sim.forces().iter().zip(&reference) {
            assert!(
                (a - b).abs() <= 1e-12 * scale.max(b.abs()),
                "case {k}: cell list {a} vs all pairs {b}"
            );
            nonzero += (b.abs() > 0.0) as usize;
        }
        assert!(
            nonzero > m.n / 10,
            "case {k}: the configuration exercises the forces"
        );
    }
}

/// The exact Ornstein–Uhlenbeck step keeps g ~ N(0, I) at every step, whatever x does.
#[test]
fn self_propulsion_marginal_is_exactly_standard_normal() {
    let m = model(
        &aoup(2, "beta = 7.5\n"),
        &[("N", 20000.0), ("phi", 0.3), ("gamma", 2.0), ("dt", 0.05)],
    );
    let mut sim = Simulation::new(m, 3, 0);
    for step in 0..40 {
        if step % 13 == 0 {
            let g = &sim.state().g;
            let n = g.len() as f64;
            let mean = g.iter().sum::<f64>() / n;
            let var = g.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let kurt = g.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n / (var * var);
            assert!(mean.abs() < 4.0 / n.sqrt(), "step {step}: mean {mean}");
            assert!(
                (var - 1.0).abs() < 4.0 * (2.0 / n).sqrt(),
                "step {step}: var {var}"
            );
            assert!(
                (kurt - 3.0).abs() < 4.0 * (24.0 / n).sqrt(),
                "step {step}: kurtosis {kurt}"
            );
        }
        sim.step();
    }
}

/// Free AOUP (k = 0, A = 0): per coordinate
/// ⟨Δx²⟩ = 2 v0² (γt − 1 + e^{−γt})/γ² + 2εt (stationary g, exact OU step, Euler–Maruyama in x
/// with error O(γ dt) = 0.5 %); and ⟨g(t)·g(0)⟩/d = e^{−γt}.
#[test]
fn free_aoup_msd_and_propulsion_correlation_match_closed_forms() {
    let (v0, gamma, eps, dt) = (1.0, 0.5, 0.1, 0.01);
    let m = model(
        &aoup(2, ""),
        &[
            ("N", 4000.0),
            ("k", 0.0),
            ("v0", v0),
            ("gamma", gamma),
            ("eps", eps),
            ("dt", dt),
        ],
    );
    let d = 2.0;
    let mut sim = Simulation::new(m.clone(), 11, 0);
    let st = sim.state();
    let x0 = unwrap(&st.x, &st.image, &m.bx);
    let g0 = st.g.clone();
    for target in [100u64, 200, 400] {
        while sim.step_count() < target {
            sim.step();
        }
        let t = target as f64 * dt;
        let st = sim.state();
        let u = unwrap(&st.x, &st.image, &m.bx);
        let got = msd(&u, &x0, m.n);
        let want = d
            * (2.0 * v0 * v0 * (gamma * t - 1.0 + (-gamma * t).exp()) / (gamma * gamma)
                + 2.0 * eps * t);
        // statistical error: Δx is Gaussian, so the sample MSD has relative sd sqrt(2/(N d))
        let tol = 4.0 * (2.0 / (m.n as f64 * d)).sqrt() + 0.01;
        assert!(
            (got / want - 1.0).abs() < tol,
            "t = {t}: MSD {got} vs {want}"
        );
        let c = autocorrelation(&st.g, &g0, 2, m.n) / d;
        let want_c = (-gamma * t).exp();
        assert!(
            (c - want_c).abs() < 4.0 / (m.n as f64 * d).sqrt(),
            "t = {t}: C {c} vs {want_c}"
        );
    }
}

/// Free ABP (no interactions): ⟨e(t)·e(0)⟩ = exp(−(d−1) D_r t) and
/// MSD = 2d D_T t + 2 v0² (κt − 1 + e^{−κt})/κ², κ = (d−1) D_r, in 2-D and 3-D.
#[test]
fn free_abp_orientation_correlation_and_msd_match_closed_forms() {
    for dim in [2usize, 3] {
        let text = ABP.replace("dimension = 2", &format!("dimension = {dim}"));
        let (d_r, v0) = (1.0, 3.0);
        let m = model(
            &text,
            &[
                ("N", 4000.0),
                ("phi", 0.01),
                ("epsilon", 0.0),
                ("D_r", d_r),
                ("Pe", 9.0),
                ("dt", 2e-3),
            ],
        );
        assert!((m.parameters["v0"] - v0).abs() < 1e-12);
        let d_t = m.parameters["D_T"];
        let mut sim = Simulation::new(m.clone(), 5, 0);
        let st0 = sim.state();
        let x0 = unwrap(&st0.x, &st0.image, &m.bx);
        let e0 = st0.g.clone();
        let per = m.propulsion_dim();
        let kappa = (dim as f64 - 1.0) * d_r;
        for target in [250u64, 500, 1000] {
            while sim.step_count() < target {
                sim.step();
            }
            let t = target as f64 * 2e-3;
            let st = sim.state();
            let c = autocorrelation(&st.g, &e0, per, m.n);
            let want_c = (-kappa * t).exp();
            // per-particle e·e0 has variance ≤ 1/2 (2-D) or 1/3 (3-D): sd ≤ 0.71/√N
            assert!(
                (c - want_c).abs() < 4.0 * 0.71 / (m.n as f64).sqrt() + 2e-3,
                "d = {dim}, t = {t}: C {c} vs {want_c}"
            );
            let u = unwrap(&st.x, &st.image, &m.bx);
            let got = msd(&u, &x0, m.n);
            let want = 2.0 * dim as f64 * d_t * t
                + 2.0 * v0 * v0 * (kappa * t - 1.0 + (-kappa * t).exp()) / (kappa * kappa);
            assert!(
                (got / want - 1.0).abs() < 0.05,
                "d = {dim}, t = {t}: MSD {got} vs {want}"
            );
        }
    }
}

/// Linear trap (k = 0): per coordinate Σ_xx = (ε(A+γ) + v0²)/(A(A+γ)), Σ_xg = v0/(A+γ),
/// Σ_gg = 1, from 2000 independent particles after a burn-in of 7.5/A.
#[test]
fn linear_trap_stationary_covariance() {
    let (a, gamma, eps, v0, dt) = (0.05, 0.1, 0.1, 0.5, 0.02);
    let m = model(
        &aoup(2, ""),
        &[
            ("N", 2000.0),
            ("L", 1000.0),
            ("k", 0.0),
            ("A", a),
            ("gamma", gamma),
            ("eps", eps),
            ("v0", v0),
            ("dt", dt),
        ],
    );
    let mut sim = Simulation::new(m.clone(), 21, 0);
    // start the positions near the trap centre (the lattice start spans the whole box)
    let mut st = sim.state();
    st.x.iter_mut().for_each(|x| *x *= 0.01);
    sim.set_state(st);
    let burn = (150.0 / dt) as u64;
    let (mut sxx, mut sxg, mut sgg, mut count) = (0.0, 0.0, 0.0, 0.0);
    for frame in 0..=12 {
        while sim.step_count() < burn + frame * (20.0 / dt) as u64 {
            sim.step();
        }
        let st = sim.state();
        let u = unwrap(&st.x, &st.image, &m.bx);
        for (x, g) in u.iter().zip(&st.g) {
            sxx += x * x;
            sxg += x * g;
            sgg += g * g;
            count += 1.0;
        }
    }
    let want_xx = (eps * (a + gamma) + v0 * v0) / (a * (a + gamma));
    let want_xg = v0 / (a + gamma);
    let (xx, xg, gg) = (sxx / count, sxg / count, sgg / count);
    assert!((xx / want_xx - 1.0).abs() < 0.05, "Σ_xx {xx} vs {want_xx}");
    assert!((xg / want_xg - 1.0).abs() < 0.05, "Σ_xg {xg} vs {want_xg}");
    assert!((gg - 1.0).abs() < 0.03, "Σ_gg {gg}");
}

/// ∇·b from `ParticleDrift::divergence` equals central differences of the drift, with pair
/// forces, a trap and a fixed particle; the drift itself equals v0 g + F − A x, −γ g.
#[test]
fn drift_divergence_matches_finite_differences() {
    let m = model(
        &aoup(2, "beta = 7.5\nA = 0.05\nn_fixed = 1\n"),
        &[("N", 6.0), ("L", 12.0), ("k", 2.5)],
    );
    let drift = ParticleDrift::new(m.clone());
    let n = drift.dim();
    // particles close enough to interact
    let mut z: Vec<f64> = vec![0.0; n];
    let pos = [
        [0.0, 0.0],
        [1.7, 0.4],
        [-1.2, 1.5],
        [0.5, -1.9],
        [2.9, 2.2],
        [-2.5, -1.0],
    ];
    for (i, p) in pos.iter().enumerate() {
        z[2 * i] = p[0];
        z[2 * i + 1] = p[1];
    }
    for (k, v) in z[12..].iter_mut().enumerate() {
        *v = 0.3 * (k as f64 - 5.0);
    }
    let fd = finite_difference_divergence(&drift, &z);
    let div = drift.divergence(&z);
    assert!(
        (div - fd).abs() < 1e-6 * div.abs().max(1.0),
        "divergence {div} vs finite differences {fd}"
    );
    // diffusion: eps for mobile x, gamma for mobile g, 0 for the fixed particle
    let dd = drift.diffusion();
    assert_eq!(dd[0], 0.1);
    assert_eq!(dd[10], 0.0);
    assert_eq!(dd[12], 0.5);
    assert_eq!(dd[23], 0.0);
}

/// The cell-list divergence of a dense box (N = 300, φ = 0.6: many cells, pairs across the
/// periodic edges; a trap acting on unwrapped coordinates) equals the finite-difference trace
/// of the drift's Jacobian.
#[test]
fn cell_list_divergence_of_a_dense_box_matches_finite_differences() {
    let m = model(
        &aoup(2, "beta = 7.5\nA = 0.05\n"),
        &[("N", 300.0), ("phi", 0.6), ("k", 2.5)],
    );
    assert!(m.bx.length > 12.0, "several cells per side");
    let drift = ParticleDrift::new(m.clone());
    let mut z = random_positions(&m, 11);
    // unwrap some particles by whole periods (the trap sees them, the pairs must not)
    for k in (0..z.len()).step_by(7) {
        z[k] += m.bx.length;
    }
    z.extend((0..m.n * 2).map(|k| 0.01 * (k as f64 % 13.0) - 0.06));
    let fd = finite_difference_divergence(&drift, &z);
    let div = drift.divergence(&z);
    assert!(
        (div - fd).abs() < 1e-6 * div.abs().max(1.0),
        "divergence {div} vs finite differences {fd}"
    );
}

/// The step kernel compiled for a wider instruction set (AVX2 / AVX-512, where the CPU has
/// them) gives bit-identical states to the baseline kernel: AOUP 1-D (harmonic) and 2-D
/// (softplus), ABP 2-D and 3-D with WCA, 300 steps each including neighbour-list rebuilds.
/// On an AVX-512 CPU the 2-D ABP cases run the eight-lane kernel (`particles::avx512`): N = 100
/// leaves a scalar tail of four particles per step; one case is stable (Δt = 1e-4, Pe = 150,
/// the benchmark's parameters), one blows up (Δt = 1e-3 at φ = 0.6: positions of 10¹⁰ and more
/// in one step, where the image counters saturate and wrap like the scalar i32 arithmetic).
#[test]
fn wide_and_baseline_kernels_are_bit_identical() {
    let abp3 = ABP.replace("dimension = 2", "dimension = 3");
    let abp_stable = ABP.replace("dt = 1e-3", "dt = 1e-4");
    let cases = [
        model(&aoup(1, ""), &[]),
        model(&aoup(2, "beta = 7.5\n"), &[]),
        model(ABP, &[("phi", 0.6), ("Pe", 100.0)]),
        model(&abp_stable, &[("phi", 0.6), ("Pe", 150.0)]),
        model(&abp3, &[("phi", 0.4)]),
        // the paper's MIPS (softplus out to its long cut-off), N = 1003: the eight-lane AOUP
        // kernel with scalar tails
        model(MIPS, &[("N", 1003.0)]),
        model(
            MIPS,
            &[("N", 1003.0), ("tail", 1e-4), ("A", 0.01), ("eps", 0.05)],
        ),
    ];
    for m in cases {
        let mut wide = Simulation::new(m.clone(), 42, 0);
        let mut base = Simulation::new(m, 42, 0);
        base.use_baseline_kernel();
        for _ in 0..300 {
            wide.step();
            base.step();
        }
        assert!(wide.list_builds() > 1);
        let (a, b) = (wide.state(), base.state());
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.x), bits(&b.x));
        assert_eq!(bits(&a.g), bits(&b.g));
        assert_eq!(a.image, b.image);
    }
}

/// ∇·b as the trace of the central finite-difference Jacobian of the drift
/// (`systems::finite_difference_jacobian`, step 1e-6·max(1, |z_k|)).
fn finite_difference_divergence(drift: &ParticleDrift, z: &[f64]) -> f64 {
    let n = z.len();
    let jac = finite_difference_jacobian(drift, 0.0, z, 1e-6);
    (0..n).map(|k| jac[k * n + k]).sum()
}

/// The softplus cut-off tolerance (`tail`: largest neglected force per pair, in units of k): on
/// the paper's MIPS (N = 4096, φ = 0.5) after 1000 steps from the lattice, the all-pairs force
/// with the cut-off of tail = 1e-6 and 1e-4 against that of the default 1e-10 (itself within
/// 1e-10·k·(pairs beyond it) of the uncut force). Prints the mean number of partners inside the
/// cut-off and the largest and rms force differences per particle, in units of v0 (the
/// propulsion speed the force competes with); checks them against the bound k·tail per pair.
#[test]
fn softplus_cutoff_tolerance_force_error() {
    let base = model(MIPS, &[]);
    let mut sim = Simulation::new(base.clone(), 7, 0);
    for _ in 0..1000 {
        sim.step();
    }
    let x = sim.state().x;
    let reference = all_pairs_forces(&base, &x);
    let v0 = 0.025;
    let partners = |m: &ParticleModel| {
        let rc2 = m.pair.unwrap().cutoff().powi(2);
        let mut count = 0usize;
        for i in 0..m.n {
            for j in 0..m.n {
                let r2: f64 = (0..2)
                    .map(|c| m.bx.min_image(x[i * 2 + c] - x[j * 2 + c]).powi(2))
                    .sum();
                count += (i != j && r2 < rc2) as usize;
            }
        }
        count as f64 / m.n as f64
    };
    println!(
        "tail 1e-10: r_c = {:.3}, {:.2} partners inside r_c",
        base.pair.unwrap().cutoff(),
        partners(&base)
    );
    for tail in [1e-6, 1e-4] {
        let m = model(MIPS, &[("tail", tail)]);
        let f = all_pairs_forces(&m, &x);
        let diff: Vec<f64> = (0..m.n)
            .map(|i| {
                ((f[2 * i] - reference[2 * i]).powi(2)
                    + (f[2 * i + 1] - reference[2 * i + 1]).powi(2))
                .sqrt()
            })
            .collect();
        let max = diff.iter().cloned().fold(0.0, f64::max);
        let rms = (diff.iter().map(|d| d * d).sum::<f64>() / m.n as f64).sqrt();
        let n_in = partners(&m);
        println!(
            "tail {tail:e}: r_c = {:.3}, {n_in:.2} partners inside r_c; |ΔF| max {:.3e} v0, rms {:.3e} v0",
            m.pair.unwrap().cutoff(),
            max / v0,
            rms / v0
        );
        // each neglected pair contributes less than k·tail
        assert!(max < tail * 200.0 && max > 0.0);
    }
}
