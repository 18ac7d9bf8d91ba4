//! Stiff problems: the Rosenbrock method against independent references, and the automatic
//! method switching on detected stiffness.

use phaseflow::integrate::{integrate, integrate_with_jacobian, Method, SolverOptions};
use phaseflow::systems::{CompiledSystem, Overrides, SystemSpec};
use std::path::Path;

fn system(text: &str) -> CompiledSystem {
    let spec = SystemSpec::from_str_at(text, Path::new("inline.toml")).unwrap();
    CompiledSystem::new(spec, &Overrides::default()).unwrap()
}

/// Robertson's chemical kinetics (Hairer & Wanner, Solving ODEs II, §IV.1): eigenvalues down to
/// about −1e4 against an O(1) time scale; y1 + y2 + y3 = 1 exactly.
const ROBERTSON: &str = r#"name = "Robertson"
kind = "flow"
variables = ["a", "b", "c"]
initial_conditions = [1.0, 0.0, 0.0]
stiff = true
[parameters]
k1 = 0.04
k2 = 3e7
k3 = 1e4
[equations]
a = "-k1 * a + k3 * b * c"
b = "k1 * a - k3 * b * c - k2 * b^2"
c = "k2 * b^2"
"#;

/// Van der Pol in Hairer's scaled form: y1' = y2, y2' = ((1 − y1²) y2 − y1)/ε.
const VDP: &str = r#"name = "VanDerPolScaled"
kind = "flow"
variables = ["y1", "y2"]
initial_conditions = [2.0, -0.66]
[parameters]
eps = 1e-3
[equations]
y1 = "y2"
y2 = "((1 - y1^2) * y2 - y1) / eps"
"#;

fn final_state(
    sys: &CompiledSystem,
    opts: &SolverOptions,
    t_end: f64,
) -> (Vec<f64>, u64, Vec<&'static str>) {
    let x0 = sys.model().initial_condition.clone();
    let mut last = Vec::new();
    let rep = integrate_with_jacobian(sys, opts, false, 0.0, &x0, &[t_end], &mut |_, _, x| {
        last = x.to_vec();
        true
    })
    .unwrap();
    (last, rep.stats.rhs_evals, rep.methods)
}

#[test]
fn robertson_matches_an_explicit_reference_and_conserves_mass() {
    let sys = system(ROBERTSON);
    // reference: DOP853 at tight tolerance (explicit, stability-limited but accurate)
    let tight = SolverOptions {
        method: Method::Dop853,
        rtol: 1e-12,
        atol: 1e-16,
        ..SolverOptions::default()
    };
    let (reference, explicit_evals, _) = final_state(&sys, &tight, 40.0);
    // published value at t = 40 (Hairer & Wanner's test set): y1 = 0.7158270687...
    assert!(
        (reference[0] - 0.715_827_068_7).abs() < 1e-8,
        "{reference:?}"
    );
    let opts = SolverOptions {
        method: Method::Rosenbrock,
        rtol: 1e-7,
        atol: 1e-12,
        ..SolverOptions::default()
    };
    let (x, evals, _) = final_state(&sys, &opts, 40.0);
    for k in 0..3 {
        let rel = (x[k] - reference[k]).abs() / reference[k].abs();
        assert!(
            rel < 2e-5,
            "component {k}: {} vs {} (rel {rel:e})",
            x[k],
            reference[k]
        );
    }
    assert!(
        (x.iter().sum::<f64>() - 1.0).abs() < 1e-12,
        "mass {}",
        x.iter().sum::<f64>()
    );
    assert!(
        evals * 10 < explicit_evals,
        "stiff method used {evals} evaluations, DOP853 {explicit_evals}"
    );
    // long horizon: only the stiff method gets there in reasonable work
    let (x, _, _) = final_state(&sys, &opts, 4e5);
    assert!((x.iter().sum::<f64>() - 1.0).abs() < 1e-10);
    assert!(x[0] > 0.0 && x[0] < 0.01, "y1(4e5) = {}", x[0]);
}

#[test]
fn van_der_pol_auto_switches_and_agrees_with_explicit_reference() {
    let sys = system(VDP);
    let t_end = 2.0;
    let tight = SolverOptions {
        method: Method::Dop853,
        rtol: 1e-12,
        atol: 1e-12,
        ..SolverOptions::default()
    };
    let x0 = sys.model().initial_condition.clone();
    let mut reference = Vec::new();
    let explicit = integrate(&sys, &tight, 0.0, &x0, &[t_end], &mut |_, _, x| {
        reference = x.to_vec();
        true
    })
    .unwrap();
    let opts = SolverOptions {
        method: Method::Auto,
        rtol: 1e-7,
        atol: 1e-9,
        ..SolverOptions::default()
    };
    let (x, evals, methods) = final_state(&sys, &opts, t_end);
    assert_eq!(
        methods,
        vec!["dop853", "rosenbrock"],
        "auto must detect the stiffness"
    );
    for k in 0..2 {
        assert!(
            (x[k] - reference[k]).abs() < 1e-4 * reference[k].abs().max(1.0),
            "{x:?} vs {reference:?}"
        );
    }
    assert!(
        evals < explicit.rhs_evals,
        "auto {evals} vs explicit {}",
        explicit.rhs_evals
    );
    // a non-stiff system stays explicit
    let lorenz = CompiledSystem::load("lorenz", &Overrides::default()).unwrap();
    let (_, _, methods) = final_state(&lorenz, &opts, 30.0);
    assert_eq!(methods, vec!["dop853"]);
}

#[test]
fn rosenbrock_dense_output_on_a_closed_form() {
    // x' = −x + cos t: x = (cos t + sin t)/2 + (x0 − 1/2) e^{−t}; error shrinks with the tolerance
    let sys = system("name = \"F\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [2.0]\n[equations]\nx = \"-x + cos(t)\"\n");
    let exact = |t: f64| 0.5 * (t.cos() + t.sin()) + 1.5 * (-t).exp();
    let times: Vec<f64> = (0..=100).map(|k| k as f64 * 0.1).collect();
    let mut worst = Vec::new();
    for tol in [1e-4, 1e-6, 1e-8] {
        let opts = SolverOptions {
            method: Method::Rosenbrock,
            rtol: tol,
            atol: tol,
            ..SolverOptions::default()
        };
        let mut e = 0.0f64;
        integrate_with_jacobian(&sys, &opts, false, 0.0, &[2.0], &times, &mut |_, t, x| {
            e = e.max((x[0] - exact(t)).abs());
            true
        })
        .unwrap();
        worst.push(e);
    }
    assert!(
        worst[0] < 1e-2 && worst[1] < worst[0] / 10.0 && worst[2] < worst[1] / 10.0,
        "{worst:?}"
    );
}
