//! Issue 21: a bounded fuzz run over definition files and expressions (proptest, run by CI in
//! every test run, a few seconds in `--profile test-opt`).
//!
//! Property: reading, resolving and compiling a definition file, and evaluating its right-hand
//! side a few times, never panics, aborts or hangs — it gives a system or an error located in
//! the file (`file:line:column`). Inputs: the equations of the shipped systems mutated (tokens
//! inserted, deleted and replaced, deep nesting, huge numbers, unicode, reductions) and random
//! expressions. Where a file loads, the compiled right-hand side equals the interpreter's bit for
//! bit. The crash cases of issue 21 (items 1 and 2) are explicit seeds below, through the library
//! and, for two of them, through the command line.

use phaseflow::systems::{
    catalogue_files, CompiledSystem, Interpreted, Jacobian, LoadError, Overrides, System,
    SystemSpec,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Cases of each fuzz test in CI (a few seconds); `PHASEFLOW_FUZZ_CASES=N` runs N instead, and
/// `PHASEFLOW_FUZZ_SEED=S` draws other cases (a longer fuzz run by hand).
const CASES: u32 = 300;

/// A runner of [`CASES`] cases with a fixed seed (the same cases in every run).
fn runner() -> TestRunner {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let config = Config {
        cases: env("PHASEFLOW_FUZZ_CASES").map_or(CASES, |n| n as u32),
        failure_persistence: None,
        ..Config::default()
    };
    let rng = match env("PHASEFLOW_FUZZ_SEED") {
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        Some(s) => {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&s.to_le_bytes());
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed)
        }
    };
    TestRunner::new_with_rng(config, rng)
}

/// Loads `text` as the file `path` and, if it loads, evaluates it: the property of the module.
/// Returns whether it loaded.
fn check_file(text: &str, path: &Path) -> bool {
    let spec = match SystemSpec::from_str_at(text, path) {
        Ok(s) => s,
        Err(e) => {
            assert_located(&e.to_string(), path);
            return false;
        }
    };
    let sys = match CompiledSystem::new(spec, &Overrides::default()) {
        Ok(s) => s,
        Err(LoadError::Spec(e)) => {
            // errors of `--set` are not located in the file; the fuzzer sets nothing, but a
            // delay τ ≤ 0 is reported like one (issue 21, item 14, another piece of work)
            if e.file != "--set" {
                assert_located(&e.to_string(), path);
            }
            return false;
        }
        Err(e) => panic!("not a located error: {e}"),
    };
    evaluate(&sys);
    true
}

/// A few evaluations of the compiled right-hand side, compared with the interpreter, and of the
/// Jacobian for small systems; a few explicit Euler steps.
fn evaluate(sys: &CompiledSystem) {
    let d = sys.dim();
    let interp = Interpreted::new(sys.model().clone());
    let mut x = sys.model().initial_condition.clone();
    let (mut f, mut g) = (vec![0.0; d], vec![0.0; d]);
    for step in 0..3 {
        let t = sys.model().t0 + step as f64 * 0.01;
        sys.rhs(t, &x, &mut f);
        if sys.n_lags() == 0 {
            interp.rhs(t, &x, &mut g);
            for k in 0..d {
                assert!(
                    f[k].to_bits() == g[k].to_bits() || (f[k].is_nan() && g[k].is_nan()),
                    "component {k} of {}: compiled {} interpreted {}",
                    sys.name(),
                    f[k],
                    g[k]
                );
            }
        }
        if d <= 32 {
            let mut jac = vec![0.0; d * d];
            sys.jacobian(t, &x, &mut jac);
        }
        for k in 0..d {
            x[k] += 1e-3 * f[k];
        }
    }
}

/// An error message names the file, a line and a column: `path:LINE:COL: …`.
fn assert_located(msg: &str, path: &Path) {
    let prefix = format!("{}:", path.display());
    let rest = msg
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("error not located in {}: {msg}", path.display()));
    let mut parts = rest.splitn(3, ':');
    let line = parts.next().unwrap_or("");
    let col = parts.next().unwrap_or("");
    assert!(
        line.parse::<usize>().is_ok_and(|l| l >= 1) && col.parse::<usize>().is_ok_and(|c| c >= 1),
        "no line:column in: {msg}"
    );
    assert!(!msg.contains("panicked"), "{msg}");
}

/// The shipped equation files (path, text).
fn shipped() -> &'static [(PathBuf, String)] {
    static FILES: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    FILES.get_or_init(|| {
        catalogue_files()
            .into_iter()
            .map(|p| {
                let t = std::fs::read_to_string(&p).unwrap();
                (p, t)
            })
            .collect()
    })
}

/// Tokens the mutations insert or substitute.
const TOKENS: &[&str] = &[
    "+",
    "-",
    "*",
    "/",
    "^",
    "**",
    "(",
    ")",
    ",",
    "[",
    "]",
    "x",
    "y",
    "z",
    "t",
    "i",
    "N",
    "j",
    "pi",
    "e",
    "0",
    "1",
    "-1",
    "1e308",
    "1e-320",
    "1e999",
    "0.0",
    "9999999999999999999",
    "sin(",
    "pow(",
    "atan2(",
    "kepler(",
    "mod(",
    "min(",
    "max(",
    "sqrt(",
    "log(",
    "x[",
    "x[i+1]",
    "sum(j, 0, 9, ",
    "prod(j, 0, 3, ",
    "sum(j, 0, 99999, ",
    "min(j, 0, 2, ",
    "sum(j, ",
    "x(t - ",
    "é",
    "→",
    "\u{0}",
    "𝑥",
    "$",
    "#",
    "'",
    "\\\"",
    "\\u0078",
    " ",
    "  ",
    "\t",
];

/// One mutation of an expression string.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, usize),
    Delete(usize, usize),
    Replace(usize, usize, usize),
    /// Wrap in `n` parentheses / `sin(` calls.
    Nest(usize, bool),
    /// Append `+ term` `n` times.
    Repeat(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, k)| Mutation::Insert(p, k)),
        (any::<usize>(), 1usize..6).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1usize..4, 0..TOKENS.len())
            .prop_map(|(p, n, k)| Mutation::Replace(p, n, k)),
        (prop_oneof![1usize..20, 200usize..400], any::<bool>())
            .prop_map(|(n, f)| Mutation::Nest(n, f)),
        prop_oneof![1usize..10, 1000usize..3000].prop_map(Mutation::Repeat),
    ]
}

/// Nearest char boundary at or before `p % (len + 1)`.
fn boundary(s: &str, p: usize) -> usize {
    let mut p = p % (s.len() + 1);
    while !s.is_char_boundary(p) {
        p -= 1;
    }
    p
}

fn apply(expr: &str, m: &Mutation) -> String {
    match *m {
        Mutation::Insert(p, k) => {
            let p = boundary(expr, p);
            format!("{}{}{}", &expr[..p], TOKENS[k], &expr[p..])
        }
        Mutation::Delete(p, n) => {
            let a = boundary(expr, p);
            let b = boundary(expr, a + n).max(a);
            format!("{}{}", &expr[..a], &expr[b..])
        }
        Mutation::Replace(p, n, k) => {
            let a = boundary(expr, p);
            let b = boundary(expr, a + n).max(a);
            format!("{}{}{}", &expr[..a], TOKENS[k], &expr[b..])
        }
        Mutation::Nest(n, calls) => {
            let open = if calls { "sin(" } else { "(" };
            format!("{}{expr}{}", open.repeat(n), ")".repeat(n))
        }
        // at most 100,000 characters (loads of big expressions are tested by the seeds)
        Mutation::Repeat(n) => {
            let n = n.min(100_000 / (expr.len() + 3));
            let mut s = expr.to_string();
            for _ in 0..n {
                s.push_str(" + ");
                s.push_str(expr);
            }
            s
        }
    }
}

/// The byte ranges of the equation strings (`name = "…"` in `[equations]`) of a file.
fn equation_strings(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut in_eq = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let l = line.trim();
        if l.starts_with('[') {
            in_eq = l == "[equations]";
        } else if in_eq {
            if let (Some(a), Some(b)) = (line.find('"'), line.rfind('"')) {
                if b > a {
                    out.push(offset + a + 1..offset + b);
                }
            }
        }
        offset += line.len();
    }
    out
}

/// Mutated equations of the shipped systems.
#[test]
fn mutated_shipped_equations_load_or_fail_located() {
    let files = shipped();
    assert!(files.len() > 50);
    let mut runner = runner();
    let strategy = (
        0..files.len(),
        any::<usize>(),
        proptest::collection::vec(mutation(), 1..4),
    );
    let (loaded, failed) = (Cell::new(0u32), Cell::new(0u32));
    runner
        .run(&strategy, |(file, which, muts)| {
            let (path, text) = &files[file];
            let eqs = equation_strings(text);
            prop_assume!(!eqs.is_empty());
            let r = eqs[which % eqs.len()].clone();
            let mut e = text[r.clone()].to_string();
            for m in &muts {
                e = apply(&e, m);
            }
            let mutated = format!("{}{e}{}", &text[..r.start], &text[r.end..]);
            let counter = if check_file(&mutated, path) {
                &loaded
            } else {
                &failed
            };
            counter.set(counter.get() + 1);
            Ok(())
        })
        .unwrap();
    let (loaded, failed) = (loaded.get(), failed.get());
    eprintln!("mutated shipped equations: {loaded} loaded, {failed} located errors");
    assert!(loaded > 0 && failed > 0, "{loaded} loaded, {failed} failed");
}

/// Random expressions over two variables, a parameter, time, every function and reductions.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x".to_string()),
        Just("y".to_string()),
        Just("a".to_string()),
        Just("t".to_string()),
        Just("j".to_string()),
        Just("pi".to_string()),
        Just("q".to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        (0u32..20).prop_map(|v| v.to_string()),
    ];
    leaf.prop_recursive(6, 64, 3, |inner| {
        let f1 = prop_oneof![
            Just("sin"),
            Just("cos"),
            Just("tan"),
            Just("asin"),
            Just("acos"),
            Just("atan"),
            Just("sinh"),
            Just("cosh"),
            Just("tanh"),
            Just("exp"),
            Just("log"),
            Just("sqrt"),
            Just("abs"),
            Just("sign"),
            Just("floor"),
            Just("heaviside"),
        ];
        let f2 = prop_oneof![
            Just("atan2"),
            Just("min"),
            Just("max"),
            Just("mod"),
            Just("pow"),
            Just("kepler"),
        ];
        let op = prop_oneof![
            Just("+"),
            Just("-"),
            Just("*"),
            Just("/"),
            Just("^"),
            Just("**"),
        ];
        let red = prop_oneof![Just("sum"), Just("prod"), Just("min"), Just("max")];
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            (f1, inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            (f2, inner.clone(), inner.clone()).prop_map(|(f, a, b)| format!("{f}({a}, {b})")),
            (red, -3i32..3, -3i32..6, inner.clone())
                .prop_map(|(r, lo, hi, a)| format!("{r}(j, {lo}, {hi}, {a})")),
            (inner, 1usize..400).prop_map(|(a, n)| vec![a; n].join(" + ")),
        ]
    })
}

#[test]
fn random_expressions_load_or_fail_located() {
    let mut runner = runner();
    let path = Path::new("fuzz.toml");
    let (loaded, failed) = (Cell::new(0u32), Cell::new(0u32));
    runner
        .run(&(expression(), expression()), |(ex, ey)| {
            let text = format!(
                "name = \"fuzz\"\nkind = \"flow\"\nvariables = [\"x\", \"y\"]\n\
                 initial_conditions = [0.3, -0.7]\ndt = 0.01\nperiod = 1.0\n\
                 [parameters]\na = 1.5\n[equations]\nx = \"{ex}\"\ny = \"{ey}\"\n"
            );
            let counter = if check_file(&text, path) {
                &loaded
            } else {
                &failed
            };
            counter.set(counter.get() + 1);
            Ok(())
        })
        .unwrap();
    let (loaded, failed) = (loaded.get(), failed.get());
    eprintln!("random expressions: {loaded} loaded, {failed} located errors");
    assert!(loaded > 0 && failed > 0, "{loaded} loaded, {failed} failed");
}

// ----- seeds: the crash cases of issue 21, items 1 and 2 -----

/// A one-variable flow file whose equation is `eq`.
fn flow(eq: &str) -> String {
    format!(
        "name = \"seed\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [0.1]\n\
         dt = 0.01\nperiod = 1.0\n[equations]\nx = \"{eq}\"\n"
    )
}

fn seed_loads(eq: &str) {
    assert!(check_file(&flow(eq), Path::new("seed.toml")), "{eq:.80}");
}

/// The located message of a seed that must fail.
fn seed_fails(eq: &str) -> String {
    let path = Path::new("seed.toml");
    let spec = SystemSpec::from_str_at(&flow(eq), path).unwrap();
    let e = CompiledSystem::new(spec, &Overrides::default()).unwrap_err();
    let msg = e.to_string();
    assert_located(&msg, path);
    msg
}

#[test]
fn seed_sum_of_20000_terms_loads() {
    seed_loads(&vec!["x"; 20_000].join(" + "));
    seed_loads(&vec!["x"; 20_000].join(" * 0.5 / "));
}

#[test]
fn seed_30000_unary_minus_signs_load() {
    seed_loads(&format!("{}x", "-".repeat(30_000)));
    seed_loads(&format!("{}x", "-".repeat(30_001)));
}

#[test]
fn seed_10000_nested_parentheses_fail_located() {
    let m = seed_fails(&format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000)));
    assert!(m.contains("nested too deeply"), "{m}");
    // 256 levels are allowed
    seed_loads(&format!("{}x{}", "(".repeat(256), ")".repeat(256)));
}

#[test]
fn seed_reduction_of_100000_terms_loads() {
    seed_loads("-0.001*sum(j, 0, 99999, x)");
}

#[test]
fn seed_nested_reductions_hit_the_budget() {
    let m = seed_fails("sum(j,0,9999,sum(k,0,9999,x))");
    assert!(m.contains("limit of 4000000 expanded nodes"), "{m}");
}

#[test]
fn seed_huge_family_is_refused() {
    let path = catalogue_files()
        .into_iter()
        .find(|p| p.ends_with("lorenz96.toml"))
        .unwrap();
    let spec = SystemSpec::load(&path).unwrap();
    let ov = Overrides::parse(&["dimension=10000000".to_string()]).unwrap();
    let e = CompiledSystem::new(spec, &ov).unwrap_err().to_string();
    assert!(e.contains("at most 2000000"), "{e}");
}

/// A deep product (its derivative is deep too) evaluates the same compiled and interpreted.
#[test]
fn seed_deep_product_and_its_jacobian_evaluate() {
    seed_loads(&vec!["sin(x)"; 5_000].join(" * "));
}

/// Two seeds through the command line: exit status and one located message, or success.
#[test]
fn seeds_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, eq: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, flow(eq)).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_phaseflow"))
            .args(["info", f.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = run("neg.toml", &format!("{}x", "-".repeat(30_000)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        "paren.toml",
        &format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000)),
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.matches("paren.toml:8:").count(), 1, "{e}");
    assert_eq!(e.matches("nested too deeply").count(), 1, "{e}");
}

/// `[define]` entries used inside one another: a chain just inside the resolution depth limit
/// loads on a thread with a small (2 MiB) stack; a longer one is a located error there too.
#[test]
fn seed_define_chains_on_a_small_stack() {
    let chain = |n: usize| {
        let mut text = flow(&format!("a{}", n - 1));
        text.push_str("[define]\na0 = \"x\"\n");
        for k in 1..n {
            text.push_str(&format!("a{k} = \"a{} + 1\"\n", k - 1));
        }
        text
    };
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            assert!(check_file(&chain(2000), Path::new("defs.toml")));
            assert!(!check_file(&chain(6000), Path::new("defs.toml")));
        })
        .unwrap()
        .join()
        .unwrap();
}
