//! Accuracy and behaviour tests of the integrators against known answers.
//! Run optimised: `cargo test --release` (add `-- --nocapture` to see the reported numbers).

use phaseflow::integrate::{
    integrate, AdaptiveStepper, Dop853, Dopri5, IntegrationError, Method, SolverOptions,
};
use phaseflow::systems::{System, TimeKind};

// ---------------------------------------------------------------- systems

/// x' = -x + cos t; x(t) = (cos t + sin t)/2 + (x0 - 1/2) e^{-t}.
struct Forced;
impl System for Forced {
    fn dim(&self) -> usize {
        1
    }
    fn rhs(&self, t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = -x[0] + t.cos();
    }
}
fn forced_exact(t: f64, x0: f64) -> f64 {
    0.5 * (t.cos() + t.sin()) + (x0 - 0.5) * (-t).exp()
}

/// Harmonic oscillator x' = v, v' = -x; from (1, 0): (cos t, -sin t).
struct Harmonic;
impl System for Harmonic {
    fn dim(&self) -> usize {
        2
    }
    fn rhs(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = x[1];
        out[1] = -x[0];
    }
}

/// x' = 1 + x^2, x(0) = 0: x = tan t (nonlinear, for local-order checks).
struct Tan;
impl System for Tan {
    fn dim(&self) -> usize {
        1
    }
    fn rhs(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = 1.0 + x[0] * x[0];
    }
}

/// Lorenz with dysts' parameters (sigma = 10, rho = 28, beta = 2.667 exactly).
struct Lorenz;
impl System for Lorenz {
    fn dim(&self) -> usize {
        3
    }
    fn rhs(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = 10.0 * (x[1] - x[0]);
        out[1] = x[0] * (28.0 - x[2]) - x[1];
        out[2] = x[0] * x[1] - 2.667 * x[2];
    }
}
const LORENZ_X0: [f64; 3] = [-9.7869288, -15.03852, 20.533978];

/// Hénon–Heiles, state (x, y, px, py).
struct HenonHeiles;
impl System for HenonHeiles {
    fn dim(&self) -> usize {
        4
    }
    fn rhs(&self, _t: f64, s: &[f64], out: &mut [f64]) {
        let (x, y, px, py) = (s[0], s[1], s[2], s[3]);
        out[0] = px;
        out[1] = py;
        out[2] = -x - 2.0 * x * y;
        out[3] = -y - x * x + y * y;
    }
}
fn hh_energy(s: &[f64]) -> f64 {
    let (x, y, px, py) = (s[0], s[1], s[2], s[3]);
    0.5 * (px * px + py * py) + 0.5 * (x * x + y * y) + x * x * y - y * y * y / 3.0
}

/// x' = x^2, x(0) = 1: x = 1/(1-t), blows up at t = 1.
struct Square;
impl System for Square {
    fn dim(&self) -> usize {
        1
    }
    fn rhs(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = x[0] * x[0];
    }
}

/// Well behaved until t = 0.5, NaN afterwards (in the second component).
struct NanAfterHalf;
impl System for NanAfterHalf {
    fn dim(&self) -> usize {
        2
    }
    fn rhs(&self, t: f64, _x: &[f64], out: &mut [f64]) {
        out[0] = 1.0;
        out[1] = if t > 0.5 { f64::NAN } else { 1.0 };
    }
}

/// NaN everywhere.
struct AlwaysNan;
impl System for AlwaysNan {
    fn dim(&self) -> usize {
        1
    }
    fn rhs(&self, _t: f64, _x: &[f64], out: &mut [f64]) {
        out[0] = f64::NAN;
    }
}

// ---------------------------------------------------------------- helpers

fn opts(method: Method, tol: f64) -> SolverOptions {
    SolverOptions {
        method,
        rtol: tol,
        atol: tol,
        ..SolverOptions::default()
    }
}

/// Runs `integrate` and collects (t, x) at every output.
fn run<S: System>(
    sys: &S,
    o: &SolverOptions,
    t0: f64,
    x0: &[f64],
    t_out: &[f64],
) -> (Vec<(f64, Vec<f64>)>, phaseflow::integrate::SolverStats) {
    let mut out = Vec::new();
    let stats = integrate(sys, o, t0, x0, t_out, &mut |k, t, x| {
        assert_eq!(k, out.len());
        out.push((t, x.to_vec()));
        true
    })
    .expect("integration failed");
    assert_eq!(out.len(), t_out.len());
    (out, stats)
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

// ---------------------------------------------------------------- 1. RK4 order

#[test]
fn rk4_observed_order_is_four() {
    let t_out = [2.4, 10.0];
    let mut errs = Vec::new();
    for h in [0.2, 0.1, 0.05] {
        let o = SolverOptions {
            method: Method::Rk4,
            h0: Some(h),
            ..SolverOptions::default()
        };
        let (out, stats) = run(&Forced, &o, 0.0, &[2.0], &t_out);
        assert_eq!(stats.rhs_evals, 4 * stats.accepted);
        assert_eq!(stats.accepted, (10.0 / h).round() as u64);
        errs.push((out[1].1[0] - forced_exact(10.0, 2.0)).abs());
    }
    let p1 = (errs[0] / errs[1]).log2();
    let p2 = (errs[1] / errs[2]).log2();
    println!("RK4 errors {errs:?}, observed orders {p1:.3}, {p2:.3}");
    for p in [p1, p2] {
        assert!((3.8..=4.2).contains(&p), "observed RK4 order {p}");
    }

    // Same on the harmonic oscillator, outputs every 0.3 with h = 0.1 / 0.05.
    let t_out = linspace(0.0, 6.0, 21);
    let mut errs = Vec::new();
    for h in [0.1, 0.05] {
        let o = SolverOptions {
            method: Method::Rk4,
            h0: Some(h),
            ..SolverOptions::default()
        };
        let (out, _) = run(&Harmonic, &o, 0.0, &[1.0, 0.0], &t_out);
        let e = out
            .iter()
            .map(|(t, x)| (x[0] - t.cos()).abs().max((x[1] + t.sin()).abs()))
            .fold(0.0, f64::max);
        errs.push(e);
    }
    let p = (errs[0] / errs[1]).log2();
    println!("RK4 harmonic: errors {errs:?}, observed order {p:.3}");
    assert!((3.8..=4.2).contains(&p), "observed RK4 order {p}");
}

#[test]
fn rk4_uneven_output_intervals_land_on_outputs() {
    // Output spacing not a multiple of h: 0.25 with h = 0.1 -> 3 steps of 1/12 each.
    let o = SolverOptions {
        method: Method::Rk4,
        h0: Some(0.1),
        ..SolverOptions::default()
    };
    let t_out = [0.25, 0.5, 0.5, 1.0];
    let (out, stats) = run(&Forced, &o, 0.0, &[0.0], &t_out);
    // 3 + 3 steps, none for the repeated 0.5, 5 for [0.5, 1].
    assert_eq!(stats.accepted, 11);
    for (t, x) in &out {
        assert!((x[0] - forced_exact(*t, 0.0)).abs() < 1e-6);
    }
    assert_eq!(out[1].1, out[2].1);
}

// ---------------------------------------------------------------- 2. dense output accuracy

fn check_dense_closed_form(method: Method) {
    let t_out = linspace(0.0, 10.0, 100);
    // Forced decay.
    let (out, stats) = run(&Forced, &opts(method, 1e-10), 0.0, &[2.0], &t_out);
    let e1 = out
        .iter()
        .map(|(t, x)| (x[0] - forced_exact(*t, 2.0)).abs())
        .fold(0.0, f64::max);
    // Harmonic oscillator.
    let (out, _) = run(&Harmonic, &opts(method, 1e-10), 0.0, &[1.0, 0.0], &t_out);
    let e2 = out
        .iter()
        .map(|(t, x)| (x[0] - t.cos()).abs().max((x[1] + t.sin()).abs()))
        .fold(0.0, f64::max);
    println!(
        "{method}: max dense error forced {e1:.2e}, harmonic {e2:.2e} ({} steps, {} evals)",
        stats.accepted, stats.rhs_evals
    );
    assert!(e1 < 1e-8 && e2 < 1e-8, "{method}: {e1:e} {e2:e}");
    // Outputs never shorten steps: the step sequence is the one of a final-output-only run.
    let (_, stats_end) = run(&Forced, &opts(method, 1e-10), 0.0, &[2.0], &[10.0]);
    assert_eq!(stats.accepted, stats_end.accepted, "{method}");
    assert_eq!(stats.rejected, stats_end.rejected, "{method}");

    // Error decreases with the tolerance, roughly proportionally.
    let mut errs = Vec::new();
    for tol in [1e-5, 1e-7, 1e-9, 1e-11] {
        let (out, _) = run(&Harmonic, &opts(method, tol), 0.0, &[1.0, 0.0], &t_out);
        errs.push(
            out.iter()
                .map(|(t, x)| (x[0] - t.cos()).abs().max((x[1] + t.sin()).abs()))
                .fold(0.0, f64::max),
        );
    }
    let shown: Vec<String> = errs.iter().map(|e| format!("{e:.2e}")).collect();
    println!("{method}: max dense error at tol 1e-5, 1e-7, 1e-9, 1e-11: {shown:?}");
    for w in errs.windows(2) {
        assert!(
            w[1] < w[0] / 10.0,
            "{method}: errors not decreasing: {errs:?}"
        );
    }
}

#[test]
fn dopri5_dense_matches_closed_form() {
    check_dense_closed_form(Method::Dopri5);
}

#[test]
fn dop853_dense_matches_closed_form() {
    check_dense_closed_form(Method::Dop853);
}

/// One step of size h from tan's IC: observed local orders of the step end (p+1) and of the
/// dense output at the midpoint (q+1) as h halves. DOP853: p = 8, q = 7; DOPRI5: p = 5, q = 4.
fn local_orders<A: AdaptiveStepper>(
    mut make: impl FnMut() -> A,
    hs: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let mut end_err = Vec::new();
    let mut mid_err = Vec::new();
    for &h in hs {
        let mut st = make();
        let mut x = [0.0];
        st.reset(&Tan, 0.0, &x);
        st.try_step(&Tan, 0.0, &x, h);
        st.accept(&Tan, &mut x);
        st.prepare_dense(&Tan);
        let mut mid = [0.0];
        st.dense(0.5 * h, &mut mid);
        end_err.push((x[0] - h.tan()).abs());
        mid_err.push((mid[0] - (0.5 * h).tan()).abs());
        // Dense output reproduces both ends of the step.
        let mut e = [0.0];
        st.dense(h, &mut e);
        assert!((e[0] - x[0]).abs() <= 1e-15 * x[0].abs().max(1.0));
        st.dense(0.0, &mut e);
        assert_eq!(e[0], 0.0);
    }
    let ord = |v: &Vec<f64>| {
        v.windows(2)
            .map(|w| (w[0] / w[1]).log2())
            .collect::<Vec<_>>()
    };
    (ord(&end_err), ord(&mid_err))
}

#[test]
fn local_orders_of_steps_and_dense_output() {
    let (end, mid) = local_orders(|| Dop853::new(1, 1.0, 1.0), &[0.4, 0.2, 0.1]);
    println!(
        "DOP853 local orders: step end {end:.2?} (expect ~9), dense midpoint {mid:.2?} (expect ~8)"
    );
    assert!(end.iter().all(|&p| p > 8.5), "{end:?}");
    assert!(mid.iter().all(|&p| p > 7.5), "{mid:?}");
    let (end, mid) = local_orders(|| Dopri5::new(1, 1.0, 1.0), &[0.2, 0.1, 0.05]);
    println!(
        "DOPRI5 local orders: step end {end:.2?} (expect ~6), dense midpoint {mid:.2?} (expect ~5)"
    );
    assert!(end.iter().all(|&p| p > 5.5), "{end:?}");
    assert!(mid.iter().all(|&p| p > 4.5), "{mid:?}");
}

// ---------------------------------------------------------------- 3. Lorenz reference

#[test]
fn lorenz_dop853_reference_state() {
    let o = opts(Method::Dop853, 1e-12);
    let (out, stats) = run(&Lorenz, &o, 0.0, &LORENZ_X0, &[15.008]);
    let x = &out[0].1;
    println!(
        "Lorenz DOP853 1e-12: x(15.008) = {x:?}; {} accepted, {} rejected, {} rhs evals",
        stats.accepted, stats.rejected, stats.rhs_evals
    );
    let reference = [9.073, 15.0553, 17.3348];
    for i in 0..3 {
        assert!(
            (x[i] - reference[i]).abs() < 1e-3,
            "component {i}: {} vs {}",
            x[i],
            reference[i]
        );
    }
    // Evaluation bookkeeping: f(t0), HINIT, 11 per attempt, 1 FSAL per accepted step, no dense.
    assert_eq!(
        stats.rhs_evals,
        2 + 11 * (stats.accepted + stats.rejected) + stats.accepted
    );
    assert_eq!(stats.t_final, 15.008);

    // The same end state reached through 1000 dense outputs on the way (identical step sequence)
    // and via Dopri5 at tight tolerance.
    let t_out = linspace(0.0, 15.008, 1001);
    let (out2, stats2) = run(&Lorenz, &o, 0.0, &LORENZ_X0, &t_out);
    assert_eq!(out2.last().unwrap().1, *x);
    assert_eq!(stats2.accepted, stats.accepted);
    assert!(stats2.rhs_evals > stats.rhs_evals);
    assert_eq!((stats2.rhs_evals - stats.rhs_evals) % 3, 0);
    let (out3, _) = run(
        &Lorenz,
        &opts(Method::Dopri5, 1e-12),
        0.0,
        &LORENZ_X0,
        &[15.008],
    );
    for (v, r) in out3[0].1.iter().zip(reference) {
        assert!((v - r).abs() < 1e-3, "dopri5: {v} vs {r}");
    }
}

// ---------------------------------------------------------------- 4. Hénon–Heiles energy

#[test]
fn henon_heiles_energy_drift() {
    let x0 = [-0.2, 0.5, 0.1, 0.1];
    let e0 = hh_energy(&x0);
    assert!(e0 > 0.1 && e0 < 1.0 / 6.0, "E0 = {e0}");
    let t_out = linspace(0.0, 1000.0, 10_001);
    let mut max_drift: f64 = 0.0;
    let mut max_r: f64 = 0.0;
    let stats = integrate(
        &HenonHeiles,
        &opts(Method::Dop853, 1e-12),
        0.0,
        &x0,
        &t_out,
        &mut |_, _, s| {
            max_drift = max_drift.max(((hh_energy(s) - e0) / e0).abs());
            max_r = max_r.max((s[0] * s[0] + s[1] * s[1]).sqrt());
            true
        },
    )
    .unwrap();
    println!(
        "Hénon–Heiles E0 = {e0:.6}: max relative energy drift {max_drift:.2e} over t = 1000 \
         ({} steps, {} evals), max radius {max_r:.3}",
        stats.accepted, stats.rhs_evals
    );
    assert!(max_drift < 1e-8);
    assert!(max_r < 1.0, "orbit escaped");
}

// ---------------------------------------------------------------- 5. cross-check ode_solvers

mod cross {
    use ode_solvers::{DVector, Dop853 as OdeDop853, OutputType, System as OdeSystem, Vector3};
    pub struct L;
    impl OdeSystem<f64, Vector3<f64>> for L {
        fn system(&self, _t: f64, x: &Vector3<f64>, d: &mut Vector3<f64>) {
            d[0] = 10.0 * (x[1] - x[0]);
            d[1] = x[0] * (28.0 - x[2]) - x[1];
            d[2] = x[0] * x[1] - 2.667 * x[2];
        }
    }
    /// ode_solvers' DOP853 with Hairer's parameters, step-end (sparse) output; final state.
    pub fn lorenz(t_end: f64, tol: f64, x0: [f64; 3]) -> ([f64; 3], u32) {
        let mut s = OdeDop853::from_param(
            L,
            0.0,
            t_end,
            0.0,
            Vector3::new(x0[0], x0[1], x0[2]),
            tol,
            tol,
            0.9,
            0.0,
            0.333,
            6.0,
            t_end,
            0.0,
            u32::MAX,
            1000,
            OutputType::Sparse,
        );
        let stats = s.integrate().expect("ode_solvers failed");
        assert_eq!(*s.x_out().last().unwrap(), t_end);
        let y = s.y_out().last().unwrap();
        ([y[0], y[1], y[2]], stats.num_eval)
    }

    pub struct LDyn;
    impl OdeSystem<f64, DVector<f64>> for LDyn {
        fn system(&self, _t: f64, x: &DVector<f64>, d: &mut DVector<f64>) {
            d[0] = 10.0 * (x[1] - x[0]);
            d[1] = x[0] * (28.0 - x[2]) - x[1];
            d[2] = x[0] * x[1] - 2.667 * x[2];
        }
    }
    /// Same with a dynamically sized state (what a runtime-defined system needs).
    pub fn lorenz_dyn(t_end: f64, tol: f64, x0: [f64; 3]) -> [f64; 3] {
        let mut s = OdeDop853::from_param(
            LDyn,
            0.0,
            t_end,
            0.0,
            DVector::from_column_slice(&x0),
            tol,
            tol,
            0.9,
            0.0,
            0.333,
            6.0,
            t_end,
            0.0,
            u32::MAX,
            1000,
            OutputType::Sparse,
        );
        s.integrate().expect("ode_solvers failed");
        let y = s.y_out().last().unwrap();
        [y[0], y[1], y[2]]
    }
}

#[test]
fn dop853_agrees_with_ode_solvers() {
    let (theirs, their_evals) = cross::lorenz(10.0, 1e-10, LORENZ_X0);
    let (out, stats) = run(
        &Lorenz,
        &opts(Method::Dop853, 1e-10),
        0.0,
        &LORENZ_X0,
        &[10.0],
    );
    let ours = &out[0].1;
    let diff = (0..3)
        .map(|i| (ours[i] - theirs[i]).abs())
        .fold(0.0, f64::max);
    println!(
        "Lorenz t=10 tol 1e-10: ours {ours:?} ({} evals), ode_solvers {theirs:?} ({their_evals} evals), max diff {diff:.2e}",
        stats.rhs_evals
    );
    assert!(diff < 1e-6);
}

// ---------------------------------------------------------------- 6. blow-up and NaN

#[test]
fn blow_up_is_reported_near_singularity() {
    for method in [Method::Dop853, Method::Dopri5] {
        let res = integrate(
            &Square,
            &opts(method, 1e-8),
            0.0,
            &[1.0],
            &[2.0],
            &mut |_, _, _| true,
        );
        println!("{method} x'=x^2: {res:?}");
        match res {
            Err(IntegrationError::BlowUp { t, index, .. }) => {
                assert_eq!(index, 0);
                assert!((t - 1.0).abs() < 1e-3, "t = {t}");
            }
            Err(IntegrationError::StepSizeTooSmall { t, .. }) => {
                assert!((t - 1.0).abs() < 1e-3, "t = {t}")
            }
            other => panic!("{method}: unexpected {other:?}"),
        }
    }
    let o = SolverOptions {
        method: Method::Rk4,
        h0: Some(1e-3),
        ..SolverOptions::default()
    };
    match integrate(&Square, &o, 0.0, &[1.0], &[2.0], &mut |_, _, _| true) {
        Err(IntegrationError::BlowUp { t, index, .. }) => {
            assert_eq!(index, 0);
            assert!((t - 1.0).abs() < 2e-3, "t = {t}");
        }
        other => panic!("rk4: unexpected {other:?}"),
    }
}

#[test]
fn nan_rhs_is_reported_not_hung() {
    for method in [Method::Dop853, Method::Dopri5, Method::Rk4] {
        let res = integrate(
            &NanAfterHalf,
            &opts(method, 1e-8),
            0.0,
            &[0.0, 0.0],
            &[1.0],
            &mut |_, _, _| true,
        );
        println!("{method} NaN after t=0.5: {res:?}");
        match res {
            Err(IntegrationError::BlowUp { t, index, value }) => {
                assert_eq!(index, 1);
                assert!(value.is_nan());
                assert!((0.49..=0.51).contains(&t), "t = {t}");
            }
            Err(IntegrationError::StepSizeTooSmall { t, .. }) => {
                assert!((0.49..=0.51).contains(&t), "t = {t}")
            }
            other => panic!("{method}: unexpected {other:?}"),
        }
        let res = integrate(
            &AlwaysNan,
            &opts(method, 1e-8),
            0.0,
            &[1.0],
            &[1.0],
            &mut |_, _, _| true,
        );
        println!("{method} NaN everywhere: {res:?}");
        assert!(matches!(
            res,
            Err(IntegrationError::BlowUp { index: 0, .. })
                | Err(IntegrationError::StepSizeTooSmall { .. })
        ));
    }
}

#[test]
fn too_many_steps() {
    let o = SolverOptions {
        max_steps: 10,
        ..opts(Method::Dop853, 1e-12)
    };
    let res = integrate(&Lorenz, &o, 0.0, &LORENZ_X0, &[100.0], &mut |_, _, _| true);
    assert!(
        matches!(res, Err(IntegrationError::TooManySteps { steps: 10, .. })),
        "{res:?}"
    );
}

// ---------------------------------------------------------------- 7. interrupt, t0 outputs, input

#[test]
fn observer_interrupts() {
    for method in [Method::Dop853, Method::Dopri5, Method::Rk4] {
        let t_out = linspace(0.0, 10.0, 11);
        let mut seen = Vec::new();
        let res = integrate(
            &Harmonic,
            &opts(method, 1e-9),
            0.0,
            &[1.0, 0.0],
            &t_out,
            &mut |k, t, _| {
                seen.push(k);
                t < 3.0
            },
        );
        assert_eq!(
            res,
            Err(IntegrationError::Interrupted { t: 3.0 }),
            "{method}"
        );
        assert_eq!(seen, vec![0, 1, 2, 3]);
    }
}

#[test]
fn outputs_at_t0_get_x0() {
    for method in [Method::Dop853, Method::Dopri5, Method::Rk4] {
        let x0 = [0.3, -0.7];
        let t_out = [1.5, 1.5, 2.0, 2.0];
        let (out, _) = run(&Harmonic, &opts(method, 1e-10), 1.5, &x0, &t_out);
        assert_eq!(out[0], (1.5, x0.to_vec()));
        assert_eq!(out[1], (1.5, x0.to_vec()));
        assert_eq!(out[2].1, out[3].1);
        // Exact: rotation by 0.5.
        let (c, s) = (0.5f64.cos(), 0.5f64.sin());
        let ex = [x0[0] * c + x0[1] * s, -x0[0] * s + x0[1] * c];
        let tol = if method == Method::Rk4 { 1e-12 } else { 1e-9 };
        assert!((out[2].1[0] - ex[0]).abs() < tol && (out[2].1[1] - ex[1]).abs() < tol);
        // Only t0 requested: no step, x0 observed, interruption at t0 honoured.
        let (out, stats) = run(&Harmonic, &opts(method, 1e-10), 1.5, &x0, &[1.5]);
        assert_eq!(out[0].1, x0.to_vec());
        assert_eq!(stats.accepted, 0);
        let res = integrate(
            &Harmonic,
            &opts(method, 1e-10),
            1.5,
            &x0,
            &[1.5, 2.0],
            &mut |_, _, _| false,
        );
        assert_eq!(res, Err(IntegrationError::Interrupted { t: 1.5 }));
        // No outputs at all.
        let (_, stats) = run(&Harmonic, &opts(method, 1e-10), 1.5, &x0, &[]);
        assert_eq!(stats.rhs_evals, 0);
    }
}

#[test]
fn invalid_input_is_rejected() {
    struct Map;
    impl System for Map {
        fn dim(&self) -> usize {
            1
        }
        fn time_kind(&self) -> TimeKind {
            TimeKind::Discrete
        }
        fn rhs(&self, _t: f64, x: &[f64], out: &mut [f64]) {
            out[0] = x[0];
        }
    }
    let o = SolverOptions::default();
    let nop = &mut |_: usize, _: f64, _: &[f64]| true;
    let bad =
        |r: Result<_, IntegrationError>| matches!(r, Err(IntegrationError::InvalidInput { .. }));
    assert!(bad(integrate(&Harmonic, &o, 0.0, &[1.0], &[1.0], nop)));
    assert!(bad(integrate(
        &Harmonic,
        &o,
        0.0,
        &[1.0, 0.0],
        &[2.0, 1.0],
        nop
    )));
    assert!(bad(integrate(
        &Harmonic,
        &o,
        0.0,
        &[1.0, 0.0],
        &[-1.0],
        nop
    )));
    assert!(bad(integrate(
        &Harmonic,
        &o,
        0.0,
        &[1.0, 0.0],
        &[f64::NAN],
        nop
    )));
    assert!(bad(integrate(&Map, &o, 0.0, &[1.0], &[1.0], nop)));
    let o2 = SolverOptions {
        atol: 0.0,
        ..o.clone()
    };
    assert!(bad(integrate(
        &Harmonic,
        &o2,
        0.0,
        &[1.0, 0.0],
        &[1.0],
        nop
    )));
    let o3 = SolverOptions {
        method: Method::Rk4,
        h0: Some(-1.0),
        ..o
    };
    assert!(bad(integrate(
        &Harmonic,
        &o3,
        0.0,
        &[1.0, 0.0],
        &[1.0],
        nop
    )));
}

#[test]
fn method_names_round_trip() {
    for m in [Method::Dop853, Method::Dopri5, Method::Rk4] {
        assert_eq!(m.to_string().parse::<Method>().unwrap(), m);
    }
    assert_eq!(" DOP853 ".parse::<Method>().unwrap(), Method::Dop853);
    assert!("euler".parse::<Method>().is_err());
    assert_eq!(SolverOptions::default().method, Method::Dop853);
}

#[test]
fn h0_and_h_max_are_honoured() {
    // h_max bounds the steps: at least 10/0.05 = 200 steps.
    let o = SolverOptions {
        h_max: Some(0.05),
        h0: Some(1e-4),
        ..opts(Method::Dop853, 1e-6)
    };
    let (out, stats) = run(&Harmonic, &o, 0.0, &[1.0, 0.0], &[10.0]);
    assert!(stats.accepted >= 200, "{}", stats.accepted);
    assert!((out[0].1[0] - 10f64.cos()).abs() < 1e-6);
}

// ---------------------------------------------------------------- timing (printout only)

#[test]
fn timing_lorenz_1000() {
    use std::time::Instant;
    let o = opts(Method::Dop853, 1e-10);
    let mut best = f64::INFINITY;
    let mut stats = None;
    for _ in 0..5 {
        let t = Instant::now();
        let (_, s) = run(&Lorenz, &o, 0.0, &LORENZ_X0, &[1000.0]);
        best = best.min(t.elapsed().as_secs_f64());
        stats = Some(s);
    }
    let s = stats.unwrap();
    let t_out = linspace(0.0, 1000.0, 100_001);
    let mut best_dense = f64::INFINITY;
    let mut sd = None;
    for _ in 0..5 {
        let t = Instant::now();
        let s = integrate(&Lorenz, &o, 0.0, &LORENZ_X0, &t_out, &mut |_, _, _| true).unwrap();
        best_dense = best_dense.min(t.elapsed().as_secs_f64());
        sd = Some(s);
    }
    let sd = sd.unwrap();
    let mut best_theirs = f64::INFINITY;
    let mut their_evals = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let (_, ev) = cross::lorenz(1000.0, 1e-10, LORENZ_X0);
        best_theirs = best_theirs.min(t.elapsed().as_secs_f64());
        their_evals = ev;
    }
    let mut best_dyn = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        cross::lorenz_dyn(1000.0, 1e-10, LORENZ_X0);
        best_dyn = best_dyn.min(t.elapsed().as_secs_f64());
    }
    println!(
        "TIMING ode_solvers with DVector state: {:.2} ms",
        best_dyn * 1e3
    );
    println!(
        "TIMING Lorenz [0,1000] DOP853 tol 1e-10: {:.2} ms final-only ({} steps, {} evals); \
         {:.2} ms with 100001 dense outputs ({} evals); ode_solvers (Vector3, step-end output) \
         {:.2} ms ({} evals)",
        best * 1e3,
        s.accepted,
        s.rhs_evals,
        best_dense * 1e3,
        sd.rhs_evals,
        best_theirs * 1e3,
        their_evals
    );
}
