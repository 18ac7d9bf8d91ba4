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

/// `[define]`: named intermediate quantities, per component in families (`mu` / `mu[j]`), with
/// cycles reported; MacArthur's resource model written with a defined growth rate equals the
/// same model written inline.
#[test]
fn defined_quantities_equal_inline_expressions() {
    let base = r#"
name = "Consumers"
kind = "flow"
variables = ["n", "res"]
dimension = 3
initial_conditions = [1.0, 2.0, 3.0, 0.5, 0.6, 0.7]
[parameters]
r = 1.0
m = 0.25
d = 0.25
s = [6.0, 10.0, 14.0]
k = [[0.39, 0.34, 0.30], [0.22, 0.39, 0.34], [0.27, 0.22, 0.39]]
c = [[0.04, 0.04, 0.07], [0.08, 0.08, 0.08], [0.10, 0.10, 0.10]]
"#;
    let with_define = format!(
        "{base}[define]\nmu = \"min(l, 0, N - 1, r * res[l] / (k[l, i] + res[l]))\"\n[equations]\nn = \"n * (mu - m)\"\nres = \"d * (s - res) - sum(j, c[i, j] * mu[j] * n[j])\"\n"
    );
    let inline = format!(
        "{base}[equations]\nn = \"n * (min(l, 0, N - 1, r * res[l] / (k[l, i] + res[l])) - m)\"\nres = \"d * (s - res) - sum(j, c[i, j] * min(l, 0, N - 1, r * res[l] / (k[l, j] + res[l])) * n[j])\"\n"
    );
    let a = compile(&with_define, &[]).unwrap();
    let b = compile(&inline, &[]).unwrap();
    let x = [1.3, 0.2, 2.1, 0.4, 3.0, 0.05];
    let (mut fa, mut fb) = (vec![0.0; 6], vec![0.0; 6]);
    a.rhs(0.0, &x, &mut fa);
    b.rhs(0.0, &x, &mut fb);
    assert_eq!(fa, fb);
    // hand value of the first species: mu_0 = min_l r res_l / (k[l,0] + res_l)
    let mu0 = (0..3)
        .map(|l| x[3 + l] / ([0.39, 0.22, 0.27][l] + x[3 + l]))
        .fold(f64::INFINITY, f64::min);
    assert!((fa[0] - x[0] * (mu0 - 0.25)).abs() < 1e-15);
    // a cycle is a located error naming the chain
    let cyc = with_define.replace(
        "mu = \"min(l, 0, N - 1, r * res[l] / (k[l, i] + res[l]))\"",
        "mu = \"nu + 1\"\nnu = \"2 * mu\"",
    );
    let e = compile(&cyc, &[]).unwrap_err();
    assert!(e.contains("refers to itself"), "{e}");
    // a define may not shadow a parameter
    let e = compile(&with_define.replace("mu = ", "m = "), &[]).unwrap_err();
    assert!(e.contains("[define] name 'm'"), "{e}");
}

/// `kepler(m, e)` solves E − e sin E = m to machine precision over the whole range |e| < 1, and
/// its symbolic derivatives dE/dm = 1/(1 − e cos E), dE/de = sin E/(1 − e cos E) match
/// central differences.
#[test]
fn kepler_equation_root_and_derivatives() {
    use phaseflow::systems::Jacobian;
    let text = r#"
name = "K"
kind = "map"
variables = ["m", "e"]
initial_conditions = [0.1, 0.1]
[equations]
m = "kepler(m, e)"
e = "e"
"#;
    let sys = compile(text, &[]).unwrap();
    for &e in &[-0.99, -0.5, 0.0, 0.3, 0.9, 0.999] {
        for &m in &[-20.0, -3.0, -0.1, 0.0, 1e-3, 1.0, 3.1, 7.5, 100.0] {
            let mut f = [0.0; 2];
            sys.rhs(0.0, &[m, e], &mut f);
            let big_e = f[0];
            let resid = big_e - e * big_e.sin() - m;
            assert!(
                resid.abs() <= 4.0 * f64::EPSILON * m.abs().max(1.0),
                "m = {m}, e = {e}: residual {resid}"
            );
            let mut j = [0.0; 4];
            sys.jacobian(0.0, &[m, e], &mut j);
            let den = 1.0 - e * big_e.cos();
            assert!((j[0] - 1.0 / den).abs() < 1e-12 / den);
            assert!((j[1] - big_e.sin() / den).abs() < 1e-12 / den);
        }
    }
    let mut f = [0.0; 2];
    sys.rhs(0.0, &[1.0, 1.0], &mut f);
    assert!(f[0].is_nan(), "|e| >= 1 has several roots: NaN");
}
