//! Integrators against known answers: closed-form solutions (orders of RK4 and of the dense
//! outputs), conservation of the Hénon–Heiles energy, map iteration.

use phaseflow::integrate::{integrate, iterate_map, Method, SolverOptions};
use phaseflow::systems::{CompiledSystem, Overrides, SystemSpec};
use std::path::Path;

fn system(text: &str) -> CompiledSystem {
    let spec = SystemSpec::from_str_at(text, Path::new("inline.toml")).unwrap();
    CompiledSystem::new(spec, &Overrides::default()).unwrap()
}

/// x' = −x + cos t (non-autonomous), exact: x(t) = (cos t + sin t)/2 + (x0 − 1/2) e^{−t}.
const FORCED: &str = r#"name = "Forced"
kind = "flow"
variables = ["x"]
initial_conditions = [2.0]
[equations]
x = "-x + cos(t)"
"#;

fn forced_exact(t: f64) -> f64 {
    0.5 * (t.cos() + t.sin()) + 1.5 * (-t).exp()
}

fn run(sys: &CompiledSystem, opts: &SolverOptions, t_out: &[f64]) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    let x0 = sys.model().initial_condition.clone();
    integrate(sys, opts, 0.0, &x0, t_out, &mut |_, _, x| {
        out.push(x.to_vec());
        true
    })
    .unwrap();
    out
}

#[test]
fn rk4_has_order_four() {
    let sys = system(FORCED);
    let t_out = [5.0];
    let err = |h: f64| {
        let opts = SolverOptions {
            method: Method::Rk4,
            h0: Some(h),
            ..SolverOptions::default()
        };
        (run(&sys, &opts, &t_out)[0][0] - forced_exact(5.0)).abs()
    };
    let (e1, e2, e3) = (err(0.1), err(0.05), err(0.025));
    let p1 = (e1 / e2).log2();
    let p2 = (e2 / e3).log2();
    assert!(
        (3.8..4.2).contains(&p1) && (3.8..4.2).contains(&p2),
        "observed orders {p1}, {p2} (errors {e1:e} {e2:e} {e3:e})"
    );
}

#[test]
fn dense_output_matches_closed_form() {
    let sys = system(FORCED);
    let t_out: Vec<f64> = (0..=200).map(|k| k as f64 * 0.05).collect();
    for (method, tol, bound) in [
        (Method::Dop853, 1e-10, 1e-8),
        (Method::Dopri5, 1e-10, 1e-8),
        (Method::Dop853, 1e-6, 1e-4),
    ] {
        let opts = SolverOptions {
            method,
            rtol: tol,
            atol: tol,
            ..SolverOptions::default()
        };
        let xs = run(&sys, &opts, &t_out);
        assert_eq!(xs.len(), t_out.len());
        let worst = t_out
            .iter()
            .zip(&xs)
            .map(|(t, x)| (x[0] - forced_exact(*t)).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < bound,
            "{method} at tol {tol}: max dense-output error {worst:e}"
        );
    }
}

#[test]
fn henon_heiles_energy_is_conserved() {
    let sys = CompiledSystem::load("henon_heiles", &Overrides::default()).unwrap();
    let x0 = sys.model().initial_condition.clone();
    let e0 = sys.conserved(0.0, &x0)[0].1;
    assert!(e0 > 0.0 && e0 < 1.0 / 6.0, "bounded regime: E = {e0}");
    let t_out: Vec<f64> = (0..=1000).map(|k| k as f64).collect();
    let opts = SolverOptions {
        method: Method::Dop853,
        rtol: 1e-12,
        atol: 1e-12,
        ..SolverOptions::default()
    };
    let mut worst = 0.0f64;
    integrate(&sys, &opts, 0.0, &x0, &t_out, &mut |_, t, x| {
        let e = sys.conserved(t, x)[0].1;
        worst = worst.max(((e - e0) / e0).abs());
        true
    })
    .unwrap();
    assert!(
        worst < 1e-8,
        "relative energy drift {worst:e} over t = 1000"
    );
}

#[test]
fn henon_map_iteration() {
    let sys = system(
        r#"name = "Henon"
kind = "map"
variables = ["x", "y"]
initial_conditions = [0.1, 0.2]
[parameters]
a = 1.4
b = 0.3
[equations]
x = "1 - a * x^2 + y"
y = "b * x"
"#,
    );
    let t_out: Vec<f64> = (0..50).map(|k| 10.0 + k as f64).collect();
    let mut got = Vec::new();
    iterate_map(&sys, 0.0, &[0.1, 0.2], &t_out, 1e12, &mut |_, n, x| {
        got.push((n, x[0], x[1]));
        true
    })
    .unwrap();
    let (mut x, mut y) = (0.1f64, 0.2f64);
    let mut n = 0;
    for (k, &(tn, gx, gy)) in got.iter().enumerate() {
        while n < 10 + k {
            let nx = 1.0 - 1.4 * (x * x) + y;
            y = 0.3 * x;
            x = nx;
            n += 1;
        }
        assert_eq!(tn, n as f64);
        assert_eq!((gx, gy), (x, y), "iteration {n}");
    }
}

/// Ornstein–Uhlenbeck dx = −θ x dt + σ dW from x = 0: Var x(t) = σ²(1 − e^{−2θt})/(2θ).
#[test]
fn additive_noise_reproduces_ornstein_uhlenbeck_variance() {
    use phaseflow::simulate::{ensemble, Noise, RunOptions, Sampling};
    let sys = system(
        r#"name = "OU"
kind = "flow"
variables = ["x"]
initial_conditions = [0.0]
[parameters]
theta = 1.5
[equations]
x = "-theta * x"
"#,
    );
    let (theta, sigma, m) = (1.5, 0.8, 4000usize);
    let noise = Noise {
        sigma: vec![sigma],
        step: 0.005,
        seed: 42,
    };
    let ics = vec![vec![0.0]; m];
    let sampling = Sampling::fixed(0.0, 4.0, 1.0);
    let ro = RunOptions {
        noise: Some(noise.clone()),
        ..RunOptions::default()
    };
    let recs = ensemble(&sys, &ro, &ics, &sampling).unwrap();
    for (k, t) in sampling.times().iter().enumerate().skip(1) {
        let xs: Vec<f64> = recs.iter().map(|r| r.state[k]).collect();
        let mean = xs.iter().sum::<f64>() / m as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (m - 1) as f64;
        let exact = sigma * sigma * (1.0 - (-2.0 * theta * t).exp()) / (2.0 * theta);
        // standard error of a Gaussian sample variance: var·√(2/(M−1)) ≈ 2.2 %; allow 4 of them
        assert!(
            (var / exact - 1.0).abs() < 4.0 * (2.0 / (m as f64 - 1.0)).sqrt(),
            "t={t}: var {var} vs {exact}"
        );
        assert!(
            mean.abs() < 4.0 * (exact / m as f64).sqrt(),
            "t={t}: mean {mean}"
        );
    }
    // same seed → identical paths; member streams differ
    let again = ensemble(&sys, &ro, &ics[..3], &sampling).unwrap();
    assert_eq!(again[1].state, recs[1].state);
    assert_ne!(recs[0].state, recs[1].state);
}

#[test]
fn batched_rk4_is_bit_identical_to_scalar_rk4() {
    use phaseflow::integrate::{Rk4, Rk4Batch};
    let sys = CompiledSystem::load("lorenz", &Overrides::default()).unwrap();
    let lanes = 7;
    let starts: Vec<[f64; 3]> = (0..lanes)
        .map(|l| [1.0 + l as f64, -2.0, 20.0 + 0.5 * l as f64])
        .collect();
    let mut soa = vec![0.0; 3 * lanes];
    for (l, s) in starts.iter().enumerate() {
        for k in 0..3 {
            soa[k * lanes + l] = s[k];
        }
    }
    let mut batch = Rk4Batch::new(3, lanes);
    let mut scalar = Rk4::new(3);
    let mut xs: Vec<Vec<f64>> = starts.iter().map(|s| s.to_vec()).collect();
    let h = 1e-3;
    for n in 0..2000 {
        let t = n as f64 * h;
        batch.step(&sys, t, &mut soa, h);
        for x in xs.iter_mut() {
            scalar.step(&sys, t, x, h);
        }
    }
    for (l, x) in xs.iter().enumerate() {
        for k in 0..3 {
            assert_eq!(
                soa[k * lanes + l].to_bits(),
                x[k].to_bits(),
                "lane {l} component {k}"
            );
        }
    }
}

#[test]
fn inverse_map_undoes_the_map() {
    use phaseflow::simulate::{trajectory, RunOptions, Sampling};
    let sys = system(
        r#"name = "Henon"
kind = "map"
variables = ["x", "y"]
initial_conditions = [0.1, 0.2]
[parameters]
a = 1.4
b = 0.3
[equations]
x = "1 - a * x^2 + y"
y = "b * x"
[inverse]
x = "y / b"
y = "x - 1 + a * (y / b)^2"
"#,
    );
    let fwd = trajectory(
        &sys,
        &RunOptions::default(),
        &[0.1, 0.2],
        &Sampling::iterations(0.0, 11),
    )
    .unwrap();
    let x10 = fwd.state[20..22].to_vec();
    let inv = RunOptions {
        inverse: true,
        ..RunOptions::default()
    };
    let back = trajectory(&sys, &inv, &x10, &Sampling::iterations(0.0, 11)).unwrap();
    // ten inverse steps return to the start; round-off grows in the inverse map's expanding
    // direction by up to 1/|det J| = 1/b ≈ 3.3 per step: 3.3^10 · 1e-16 ≈ 2e-11, times O(10)
    assert!(
        (back.state[20] - 0.1).abs() < 1e-8 && (back.state[21] - 0.2).abs() < 1e-8,
        "{:?}",
        &back.state[20..22]
    );
    // a flow has no inverse map
    let flow = system(FORCED);
    assert!(trajectory(&flow, &inv, &[1.0], &Sampling::iterations(0.0, 3)).is_err());
}
