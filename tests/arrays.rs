//! Array parameters (vectors, matrices) and index reductions (sum, prod, min, max) of the
//! definition language: values against hand-written formulas, overrides of single elements,
//! and located errors for bad indices.

use phaseflow::systems::{CompiledSystem, Overrides, System, SystemSpec};
use std::path::Path;

fn compile(text: &str, set: &[&str]) -> Result<CompiledSystem, String> {
    let spec = SystemSpec::from_str_at(text, Path::new("test.toml")).map_err(|e| e.to_string())?;
    let ov = Overrides::parse(&set.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .map_err(|e| e.to_string())?;
    CompiledSystem::new(spec, &ov).map_err(|e| e.to_string())
}

const BEER: &str = r#"
name = "Beer"
kind = "flow"
variables = ["x"]
dimension = 3
initial_conditions = [0.1, 0.2, 0.3]
[parameters]
tau = [1.0, 2.5, 1.0]
theta = [-4.108, -2.787, -1.114]
w = [[5.422, -0.018, 2.75], [-0.24, 4.59, 1.21], [0.535, -2.25, 3.885]]
[equations]
x = "(-x + sum(j, w[i, j] / (1 + exp(-(x[j] + theta[j]))))) / tau"
"#;

/// x_i' = (−x_i + Σ_j w_ij σ(x_j + θ_j)) / τ_i (Beer 1995), written out by hand.
fn beer(x: &[f64], w: &[[f64; 3]; 3]) -> Vec<f64> {
    let tau = [1.0, 2.5, 1.0];
    let theta = [-4.108, -2.787, -1.114];
    let sig = |u: f64| 1.0 / (1.0 + (-u).exp());
    (0..3)
        .map(|i| {
            let s: f64 = (0..3).map(|j| w[i][j] * sig(x[j] + theta[j])).sum();
            (-x[i] + s) / tau[i]
        })
        .collect()
}

#[test]
fn matrix_vector_network_matches_hand_formula() {
    let mut w = [
        [5.422, -0.018, 2.75],
        [-0.24, 4.59, 1.21],
        [0.535, -2.25, 3.885],
    ];
    let x = [0.7, -1.3, 2.2];
    let sys = compile(BEER, &[]).unwrap();
    let mut f = vec![0.0; 3];
    sys.rhs(0.0, &x, &mut f);
    for (a, b) in f.iter().zip(beer(&x, &w)) {
        assert!((a - b).abs() < 1e-14 * b.abs().max(1.0), "{a} vs {b}");
    }
    // one element overridden (spaces inside the brackets are allowed)
    let sys = compile(BEER, &["w[1, 2]=-0.75"]).unwrap();
    w[1][2] = -0.75;
    sys.rhs(0.0, &x, &mut f);
    for (a, b) in f.iter().zip(beer(&x, &w)) {
        assert!((a - b).abs() < 1e-14 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert!(sys.model().param_names.contains(&"w[1,2]".to_string()));
    assert_eq!(sys.params().len(), 15);
}

const CHUA: &str = r#"
name = "Diode"
kind = "flow"
variables = ["x", "y", "z"]
initial_conditions = [0.1, 0.2, 0.3]
[parameters]
a = 9.0
b = 14.286
c = [0.0, 1.0, 2.15, 3.6, 8.2, 13.0]
m = [-0.14285714, 0.28571429, -0.57142857, 0.28571429, -0.57142857, 0.28571429]
[equations]
x = "a * (y - (m[5] * x + sum(j, 1, 5, 0.5 * (m[j - 1] - m[j]) * (abs(x + c[j]) - abs(x - c[j])))))"
y = "x - y + z + prod(k, 1, 3, k) - 6 + sum(k, 3, 2, 1)"
z = "-b * y + min(k, 0, 5, (x - c[k])^2) - max(k, 0, 5, -(x - c[k])^2)"
"#;

#[test]
fn fixed_range_reductions_match_hand_formulas() {
    let sys = compile(CHUA, &[]).unwrap();
    let c = [0.0, 1.0, 2.15, 3.6, 8.2, 13.0];
    let m = [
        -0.14285714,
        0.28571429,
        -0.57142857,
        0.28571429,
        -0.57142857,
        0.28571429,
    ];
    for x in [-20.0, -3.0, -0.5, 0.4, 2.5, 9.0, 14.0] {
        let s = [x, 0.3, -0.2];
        let mut f = [0.0; 3];
        sys.rhs(0.0, &s, &mut f);
        let mut diode = m[5] * x;
        for j in 1..6 {
            diode += 0.5 * (m[j - 1] - m[j]) * ((x + c[j]).abs() - (x - c[j]).abs());
        }
        assert!((f[0] - 9.0 * (0.3 - diode)).abs() < 1e-12);
        // prod over 1..3 = 6, empty sum = 0
        assert!((f[1] - (x - 0.3 - 0.2)).abs() < 1e-12);
        let dmin = c
            .iter()
            .map(|ck| (x - ck).powi(2))
            .fold(f64::INFINITY, f64::min);
        assert!(
            (f[2] - (-14.286 * 0.3 + 2.0 * dmin)).abs() < 1e-9,
            "{} vs {}",
            f[2],
            dmin
        );
    }
}

#[test]
fn bad_indices_are_located_errors() {
    let bad = |eq: &str, needle: &str| {
        let text = CHUA.replace(
            "y = \"x - y + z + prod(k, 1, 3, k) - 6 + sum(k, 3, 2, 1)\"",
            &format!("y = \"{eq}\""),
        );
        let e = compile(&text, &[]).unwrap_err();
        assert!(e.contains("test.toml:"), "{e}");
        assert!(e.contains(needle), "expected '{needle}' in: {e}");
    };
    bad("x + c[6]", "index 6 of 'c' is out of range 0..5");
    bad("x + c[0, 1]", "'c' has 1 index(es)");
    bad("x + c", "'c' is an array parameter: write c[k]");
    bad("x + c[y]", "state variable 'y' cannot appear here");
    bad("x + c[a]", "index of 'c' must be an integer expression");
    bad(
        "sum(a, 0, 2, c[a])",
        "summation index 'a' has the name of a variable, parameter",
    );
    bad("sum(j, 0, 2)", "reads sum(j, lo, hi, expression)");
    bad("min(j, 2, 1, c[j])", "over an empty range");
    let ragged = CHUA.replace(
        "c = [0.0, 1.0, 2.15, 3.6, 8.2, 13.0]",
        "c = [[0.0, 1.0], [2.0]]",
    );
    let e = compile(&ragged, &[]).unwrap_err();
    assert!(e.contains("rows of different lengths"), "{e}");
}
