//! Issue 21, items 1 and 2, through the command line: expressions of any size either load or
//! get one located error (no stack overflow, no unbounded memory), and large indexed families
//! load. Each big file is generated into a temporary directory; exit code, message (printed
//! once, `file:line:column`) and that nothing is left behind are checked. No timings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn phaseflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with exit status 1 and one `error:` line containing every needle once.
fn fails_once(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.matches("error:").count(), 1, "{e}");
    for n in needles {
        assert_eq!(e.matches(n).count(), 1, "'{n}' in: {e}");
    }
}

/// A one-variable flow whose equation is `eq` (line 9 of the file), plus `extra` TOML after it.
fn flow_file(dir: &Path, name: &str, eq: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "name = \"big\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [0.1]\n\
             dt = 0.01\nperiod = 1.0\n\n[equations]\nx = \"{eq}\"\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// The directory holds exactly the files written by the test.
fn nothing_left(dir: &Path, expected: usize) {
    let n = std::fs::read_dir(dir).unwrap().count();
    assert_eq!(n, expected, "files left in {}", dir.display());
}

fn info(path: &Path) -> Output {
    phaseflow(&["info", path.to_str().unwrap()])
}

/// A sum of 20,000 terms (an 80 KB file) and 30,000 unary minus signs load: they used to abort
/// with a stack overflow (exit 134).
#[test]
fn long_sums_and_sign_runs_load() {
    let dir = tempfile::tempdir().unwrap();
    let sum = vec!["x"; 20_000].join(" + ");
    let f = flow_file(dir.path(), "sum.toml", &sum, "");
    let o = info(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Jacobian: 1 nonzero"));

    let neg = format!("{}x", "-".repeat(30_000));
    let f = flow_file(dir.path(), "neg.toml", &neg, "");
    let o = info(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    nothing_left(dir.path(), 2);
}

/// `-0.001*sum(j, 0, 99999, x)` (inside the 100,000-term limit of one reduction) loads and
/// simulates; it used to overflow the stack.
#[test]
fn reduction_of_100000_terms_loads_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let f = flow_file(dir.path(), "red.toml", "-0.001*sum(j, 0, 99999, x)", "");
    let out = dir.path().join("red.h5");
    let o = phaseflow(&[
        "simulate",
        f.to_str().unwrap(),
        "--t-end",
        "1",
        "--dt-out",
        "0.5",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    nothing_left(dir.path(), 2);
}

/// 10,000 nested parentheses and a right-associative power tower of 20,000 levels are errors at
/// the token past the nesting limit (256 levels), printed once.
#[test]
fn deep_nesting_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let eq = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
    let f = flow_file(dir.path(), "paren.toml", &eq, "");
    // the 257th '(' is column 5 + 257 of line 9 (`x = "` takes 5)
    fails_once(
        &info(&f),
        &[
            "paren.toml:9:262:",
            "nested too deeply at '('",
            "256 levels",
        ],
    );

    let eq = vec!["x"; 20_000].join("^");
    let f = flow_file(dir.path(), "pow.toml", &eq, "");
    fails_once(&info(&f), &["pow.toml:9:", "nested too deeply at '^'"]);

    // sin(sin(…)) and x[x[…]]-like index nesting go through the same limit
    let eq = format!("{}x{}", "sin(".repeat(5_000), ")".repeat(5_000));
    let f = flow_file(dir.path(), "sin.toml", &eq, "");
    fails_once(&info(&f), &["sin.toml:9:", "nested too deeply at 'sin'"]);
    nothing_left(dir.path(), 3);
}

/// A chain of 6,000 `[define]` entries, each using the previous one, nests deeper than the
/// resolution limit: a located error, not a stack overflow.
#[test]
fn deep_define_chain_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut defs = String::from("[define]\na0 = \"x\"\n");
    for k in 1..6000 {
        defs.push_str(&format!("a{k} = \"a{} + 1\"\n", k - 1));
    }
    let f = flow_file(dir.path(), "defs.toml", "a5999", &defs);
    fails_once(&info(&f), &["defs.toml:", "nested too deeply"]);
    nothing_left(dir.path(), 1);
}

/// Nested reductions share one budget per file: `sum(j,0,9999,sum(k,0,9999,x))` (10⁸ terms)
/// is an error naming the limit (it took 3.3 GB and went on); `lorenz96 --set
/// dimension=10000000` is refused before anything is allocated (it took over 15 GB).
#[test]
fn expansion_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let f = flow_file(
        dir.path(),
        "nested.toml",
        "sum(j,0,9999,sum(k,0,9999,x))",
        "",
    );
    fails_once(
        &info(&f),
        &["nested.toml:9:", "limit of 4000000 expanded nodes"],
    );
    let f = flow_file(dir.path(), "long.toml", "sum(j, 0, 100000, x)", "");
    fails_once(
        &info(&f),
        &["long.toml:9:13:", "over 100001 terms: at most 100000"],
    );
    fails_once(
        &phaseflow(&["info", "lorenz96", "--set", "dimension=10000000"]),
        &["10000000 state components", "at most 2000000"],
    );
    fails_once(
        &phaseflow(&["info", "lorenz96", "--set", "dimension=1000000"]),
        &["lorenz96.toml:", "limit of 4000000 expanded nodes"],
    );
    let big = dir.path().join("big_family.toml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/lorenz96.toml"),
    )
    .unwrap()
    .replace("dimension = 4\n", "dimension = 5000000\n");
    std::fs::write(&big, text).unwrap();
    fails_once(
        &info(&big),
        &["big_family.toml:", "more than 2000000 state components"],
    );
    nothing_left(dir.path(), 3);
}

/// Lorenz-96 with 10⁵ variables is a normal use: it loads (it took hours, the compile time was
/// quadratic in the dimension, and its dense Jacobian kernel could not be compiled).
#[test]
fn lorenz96_with_100000_variables_loads() {
    let o = phaseflow(&["info", "lorenz96", "--set", "dimension=100000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Lorenz96 (flow, dimension 100000)"), "{out}");
    assert!(out.contains("Jacobian: 400000 nonzero entries"), "{out}");
}

/// A method that needs the dense Jacobian refuses a system too large for it, with the size,
/// and leaves no output or temporary (it would have asked for gigabytes and aborted).
#[test]
fn dense_jacobian_methods_refuse_large_systems() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l96.h5");
    let o = phaseflow(&[
        "simulate",
        "lorenz96",
        "--set",
        "dimension=9000",
        "--method",
        "rosenbrock",
        "--t-end",
        "0.01",
        "--dt-out",
        "0.005",
        "-o",
        out.to_str().unwrap(),
    ]);
    fails_once(&o, &["dense 9000×9000 Jacobian", "at most dimension 8192"]);
    nothing_left(dir.path(), 0);
}

/// Above the dense-Jacobian limit, `auto` is plain DOP853 (its stiffness watch would need the
/// dense Jacobian) and the run goes through; Lyapunov spectra are refused with the size.
#[test]
fn auto_runs_explicit_above_the_dense_jacobian_limit() {
    use phaseflow::integrate::{integrate_with_jacobian, Method, SolverOptions};
    use phaseflow::systems::{resolve_system, CompiledSystem, Overrides, SystemSpec};
    let spec = SystemSpec::load(&resolve_system("lorenz96").unwrap()).unwrap();
    let ov = Overrides::parse(&["dimension=9000".to_string()]).unwrap();
    let sys = CompiledSystem::new(spec, &ov).unwrap();
    let x0 = sys.model().initial_condition.clone();
    let opts = SolverOptions {
        method: Method::Auto,
        ..SolverOptions::default()
    };
    let mut rows = 0;
    let report = integrate_with_jacobian(
        &sys,
        &opts,
        false,
        0.0,
        &x0,
        &[0.0, 1e-3],
        &mut |_, _, x| {
            assert!(x.iter().all(|v| v.is_finite()));
            rows += 1;
            true
        },
    )
    .unwrap();
    assert_eq!(rows, 2);
    assert_eq!(report.methods, vec!["dop853"]);
    let e = phaseflow::analysis::lyapunov::spectrum(&sys, 0.0, &x0, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("dense 9000×9000 Jacobian"), "{e}");
}
