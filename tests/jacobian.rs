//! Property test over every shipped definition file: the JIT-compiled right-hand side and
//! Jacobian equal the reference interpreter, and the Jacobian (and ∂f/∂p) equal central finite
//! differences, on random states around the default initial condition.

use phaseflow::systems::{
    catalogue_files, finite_difference_jacobian, BatchSystem, CompiledSystem, Interpreted,
    Jacobian, Model, Overrides, System, SystemSpec,
};
use rand::{Rng, SeedableRng};

/// A delay equation with its delayed values frozen: an ODE in the current state.
struct FrozenLags<'a> {
    sys: &'a CompiledSystem,
    lag: &'a [f64],
}

impl System for FrozenLags<'_> {
    fn dim(&self) -> usize {
        self.sys.dim()
    }
    fn rhs(&self, t: f64, x: &[f64], out: &mut [f64]) {
        self.sys.rhs_lagged(t, x, self.lag, out)
    }
}

fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a - b).abs() <= atol + rtol * a.abs().max(b.abs())
}

fn check_system(spec: &SystemSpec, ov: &Overrides, n_states: usize) {
    let sys = CompiledSystem::new(spec.clone(), ov).unwrap_or_else(|e| panic!("{e}"));
    let interp = Interpreted::new(Model::build(spec, ov).unwrap());
    let d = sys.dim();
    let np = sys.params().len();
    let x0 = sys.model().initial_condition.clone();
    let scale = x0.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed ^ d as u64);
    let (mut fj, mut fi) = (vec![0.0; d], vec![0.0; d]);
    let (mut jj, mut ji) = (vec![0.0; d * d], vec![0.0; d * d]);
    let (mut fb, mut jb) = (vec![0.0; d], vec![0.0; d * d]);
    let mut pji = vec![0.0; d * np];
    for k in 0..n_states {
        // random state: the IC perturbed by up to 50 % of the state scale, drawn again (with a
        // smaller perturbation) where the equations are undefined (a pole, log of a negative)
        let mut amp = 0.5 * scale;
        let mut attempt = 0;
        let (x, t) = loop {
            let x: Vec<f64> = x0
                .iter()
                .map(|v| v + amp * rng.random_range(-1.0..1.0))
                .collect();
            let t = sys.model().t0 + rng.random_range(0.0..10.0);
            interp.rhs(t, &x, &mut fi);
            interp.jacobian(t, &x, &mut ji);
            interp.param_jacobian(t, &x, &mut pji);
            // (z^m at z < 0 is defined for integer m, but its m-derivative z^m ln z is not)
            if fi.iter().chain(&ji).chain(&pji).all(|v| v.is_finite()) {
                break (x, t);
            }
            attempt += 1;
            assert!(
                attempt < 200,
                "{}: no finite random state near the IC",
                spec.name
            );
            if attempt % 20 == 0 {
                amp *= 0.5;
            }
        };
        sys.rhs(t, &x, &mut fj);
        interp.rhs(t, &x, &mut fi);
        sys.jacobian(t, &x, &mut jj);
        interp.jacobian(t, &x, &mut ji);
        sys.rhs_and_jacobian(t, &x, &mut fb, &mut jb);
        for i in 0..d {
            assert!(
                close(fj[i], fi[i], 1e-14, 1e-300),
                "{} state {k}: f[{i}] jit {} vs interp {}",
                spec.name,
                fj[i],
                fi[i]
            );
            assert_eq!(
                fj[i].to_bits(),
                fb[i].to_bits(),
                "{}: combined kernel differs",
                spec.name
            );
        }
        for i in 0..d * d {
            assert!(
                close(jj[i], ji[i], 1e-14, 1e-300),
                "{} state {k}: J[{i}] jit {} vs interp {}",
                spec.name,
                jj[i],
                ji[i]
            );
            assert_eq!(
                jj[i].to_bits(),
                jb[i].to_bits(),
                "{}: combined kernel differs",
                spec.name
            );
        }
        // batched (SIMD) kernel: 5 states (odd: the last goes through the scalar kernel), stride 6
        {
            let lanes = 5;
            let stride = 6;
            let states: Vec<Vec<f64>> = (0..lanes)
                .map(|l| x.iter().map(|v| v * (1.0 + 0.01 * l as f64)).collect())
                .collect();
            let mut soa = vec![0.0; d * stride];
            for (l, st) in states.iter().enumerate() {
                for k in 0..d {
                    soa[k * stride + l] = st[k];
                }
            }
            let mut out = vec![0.0; d * stride];
            sys.rhs_batch(t, &soa, stride, lanes, &mut out);
            let mut f = vec![0.0; d];
            for (l, st) in states.iter().enumerate() {
                sys.rhs(t, st, &mut f);
                for k in 0..d {
                    assert_eq!(
                        out[k * stride + l].to_bits(),
                        f[k].to_bits(),
                        "{}: batched f[{k}] lane {l}",
                        spec.name
                    );
                }
            }
        }
        // central differences: error O(h^2 f''') + O(eps f / h); h = 1e-6 relative
        // for delay equations the Jacobian is ∂f/∂x(t) with the delayed values held fixed
        let lag: Vec<f64> = sys.model().lags.iter().map(|l| x[l.component]).collect();
        let frozen = FrozenLags {
            sys: &sys,
            lag: &lag,
        };
        let fd = finite_difference_jacobian(&frozen, t, &x, 1e-6);
        let jscale = jj.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for i in 0..d {
            for j in 0..d {
                let (a, b) = (jj[i * d + j], fd[i * d + j]);
                assert!(
                    close(a, b, 1e-5, 1e-6 * jscale),
                    "{} state {k}: dF{i}/dx{j} symbolic {a} vs finite difference {b}",
                    spec.name
                );
            }
        }
        // parameter Jacobian against differences in the parameters
        if np > 0 {
            let mut pj = vec![0.0; d * np];
            sys.param_jacobian(t, &x, &mut pj);
            let mut pi = vec![0.0; d * np];
            interp.param_jacobian(t, &x, &mut pi);
            for q in 0..np {
                let p0 = sys.params()[q];
                // relative step: parameters span 1e-7 (BelousovZhabotinsky y0) to 1e3
                let h = if p0 != 0.0 { 1e-6 * p0.abs() } else { 1e-6 };
                let name = sys.model().param_names[q].clone();
                let mut sp = sys.clone();
                // fourth-order central stencil: error O(h^4 f^(5)), small even where f depends on
                // omega * t with t ~ 6e3 (DoubleGyre's phase)
                let eval = |sp: &mut CompiledSystem, v: f64| {
                    sp.set_param(&name, v);
                    let mut f = vec![0.0; d];
                    sp.rhs(t, &x, &mut f);
                    f
                };
                let (f2p, f1p) = (eval(&mut sp, p0 + 2.0 * h), eval(&mut sp, p0 + h));
                let (f1m, f2m) = (eval(&mut sp, p0 - h), eval(&mut sp, p0 - 2.0 * h));
                for i in 0..d {
                    let fdv = (f2m[i] - 8.0 * f1m[i] + 8.0 * f1p[i] - f2p[i]) / (12.0 * h);
                    let a = pj[i * np + q];
                    assert!(
                        close(a, pi[i * np + q], 1e-14, 1e-300),
                        "{}: df{i}/d{name} jit {a} vs interp {}",
                        spec.name,
                        pi[i * np + q]
                    );
                    let fscale = fj.iter().fold(1.0f64, |m, v| m.max(v.abs()))
                        / if p0 != 0.0 { p0.abs() } else { 1.0 };
                    assert!(
                        close(a, fdv, 1e-5, 1e-6 * fscale.max(1.0)),
                        "{}: df{i}/d{name} symbolic {a} vs finite difference {fdv}",
                        spec.name
                    );
                }
            }
        }
    }
}

#[test]
fn every_shipped_system_jit_equals_interpreter_equals_finite_differences() {
    let files = catalogue_files();
    assert!(
        files.len() >= 10,
        "expected the shipped catalogue, found {} files",
        files.len()
    );
    for f in files {
        let spec = SystemSpec::load(&f).unwrap_or_else(|e| panic!("{e}"));
        check_system(&spec, &Overrides::default(), 25);
    }
}

#[test]
fn indexed_family_any_dimension() {
    let spec = SystemSpec::load(&phaseflow::systems::resolve_system("lorenz96").unwrap()).unwrap();
    for n in [4usize, 5, 40] {
        let ov = Overrides::parse(&[format!("dimension={n}")]).unwrap();
        check_system(&spec, &ov, 3);
        let sys = CompiledSystem::new(spec.clone(), &ov).unwrap();
        assert_eq!(sys.dim(), n);
        // Lorenz-96: dx_i/dt = (x_{i+1} − x_{i−2}) x_{i−1} − x_i + F, periodic indices
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let f_param = sys.params()[sys
            .model()
            .param_names
            .iter()
            .position(|p| p == "f")
            .unwrap()];
        let mut out = vec![0.0; n];
        sys.rhs(0.0, &x, &mut out);
        for i in 0..n {
            let want = (x[(i + 1) % n] - x[(i + n - 2) % n]) * x[(i + n - 1) % n] - x[i] + f_param;
            assert!(
                (out[i] - want).abs() < 1e-12,
                "N={n} i={i}: {} vs {want}",
                out[i]
            );
        }
    }
}

#[test]
fn all_functions_of_the_language() {
    // one equation per function, checked against Rust's f64 functions, and its derivative
    // against finite differences (where differentiable)
    let funcs = [
        ("sin(x)", f64::sin as fn(f64) -> f64),
        ("cos(x)", f64::cos),
        ("tan(x)", f64::tan),
        ("asin(x/2)", |x: f64| (x / 2.0).asin()),
        ("acos(x/2)", |x: f64| (x / 2.0).acos()),
        ("atan(x)", f64::atan),
        ("atan2(x, 0.3)", |x: f64| x.atan2(0.3)),
        ("sinh(x)", f64::sinh),
        ("cosh(x)", f64::cosh),
        ("tanh(x)", f64::tanh),
        ("exp(x)", f64::exp),
        ("log(x + 2)", |x: f64| (x + 2.0).ln()),
        ("sqrt(x + 2)", |x: f64| (x + 2.0).sqrt()),
        ("abs(x)", f64::abs),
        ("sign(x) * x^2", |x: f64| x.signum() * x * x),
        ("floor(3*x) + x", |x: f64| (3.0 * x).floor() + x),
        ("min(x, 0.1) + max(x, -0.2)", |x: f64| {
            x.min(0.1) + x.max(-0.2)
        }),
        ("mod(x, 0.3)", |x: f64| x - 0.3 * (x / 0.3).floor()),
        ("pow(x + 2, 1.5) + (x+2)^-2", |x: f64| {
            (x + 2.0).powf(1.5) + (x + 2.0).powi(-2)
        }),
        ("heaviside(x) * x", |x: f64| if x >= 0.0 { x } else { 0.0 }),
        ("pi * e * x", |x: f64| {
            std::f64::consts::PI * std::f64::consts::E * x
        }),
        ("-x^2", |x: f64| -(x * x)),
        ("2^3^2 * x", |x: f64| 512.0 * x),
    ];
    for (eq, f) in funcs {
        let src = format!(
            "name = \"F\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [0.5]\n[equations]\nx = \"{eq}\"\n"
        );
        let spec = SystemSpec::from_str_at(&src, std::path::Path::new("f.toml")).unwrap();
        let sys = CompiledSystem::new(spec.clone(), &Overrides::default()).unwrap();
        for &x in &[-0.77, -0.31, 0.13, 0.52, 0.93] {
            let mut out = [0.0];
            sys.rhs(0.0, &[x], &mut out);
            assert!(
                close(out[0], f(x), 1e-14, 1e-15),
                "{eq} at {x}: {} vs {}",
                out[0],
                f(x)
            );
        }
        check_system(&spec, &Overrides::default(), 10);
    }
}

#[test]
fn delay_terms_are_parsed_and_validated() {
    let src = "name = \"MG\"\nkind = \"dde\"\nvariables = [\"x\"]\ninitial_conditions = [1.2]\n[parameters]\nbeta = 0.2\ngamma = 0.1\nn = 10\ntau = 17\n[equations]\nx = \"beta * x(t - tau) / (1 + x(t - tau)^n) - gamma * x\"\n";
    let spec = SystemSpec::from_str_at(src, std::path::Path::new("mg.toml")).unwrap();
    let sys = CompiledSystem::new(spec, &Overrides::default()).unwrap();
    assert_eq!(sys.n_lags(), 1, "identical delay terms share one slot");
    let mut out = [0.0];
    sys.rhs_lagged(0.0, &[1.0], &[0.5], &mut out);
    let want = 0.2 * 0.5 / (1.0 + 0.5f64.powi(10)) - 0.1;
    assert!((out[0] - want).abs() < 1e-15);
}
