//! End-to-end tests of the `phaseflow` binary: bad input gives a one-line located error and
//! writes nothing; good input writes HDF5 that reads back, and plots.

use phaseflow::io::{read_trajectory, AttrValue};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phaseflow"));
    c.env(
        "PHASEFLOW_SYSTEMS",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systems"),
    );
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run phaseflow")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A fresh directory; the test asserts it is left empty after a failing run.
fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

const LORENZ_OK: &str = r#"name = "Bad"
kind = "flow"
variables = ["x", "y", "z"]
initial_conditions = [1.0, 1.0, 1.0]
[parameters]
sigma = 10
rho = 28
beta = 2.667
[equations]
x = "sigma * (y - x)"
y = "x * (rho - z) - y"
z = "x * y - beta * z"
"#;

/// Writes `text` as a definition file in `dir`, runs `simulate` on it into `dir/out.h5`, and
/// checks failure, a single-line message containing every `needles`, and no file left behind
/// other than the definition itself.
fn expect_failure(text: &str, extra: &[&str], needles: &[&str]) -> String {
    let dir = tmpdir();
    let def = dir.path().join("bad.toml");
    std::fs::write(&def, text).unwrap();
    let out = dir.path().join("out.h5");
    let mut args = vec![
        "simulate",
        def.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--points",
        "50",
        "-q",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let msg = stderr(&o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {msg}"
    );
    assert_eq!(
        msg.trim_end().lines().count(),
        1,
        "error must be one line: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
    let left = entries(dir.path());
    assert_eq!(
        left,
        vec![def.clone()],
        "a failed run must leave no file: {left:?}"
    );
    msg
}

#[test]
fn malformed_toml_names_file_line_column() {
    let text = LORENZ_OK.replace("kind = \"flow\"", "kind = = \"flow\"");
    expect_failure(&text, &[], &["bad.toml:2:8:", "malformed"]);
}

#[test]
fn unknown_symbol_is_located_at_the_token() {
    // line 11 is `y = "x * (rho - z) - y"`; replace rho by rhoo: column of the token is 11
    let text = LORENZ_OK.replace("(rho - z)", "(rhoo - z)");
    expect_failure(&text, &[], &["bad.toml:11:11:", "unknown symbol 'rhoo'"]);
}

#[test]
fn unknown_function_is_named() {
    let text = LORENZ_OK.replace("beta * z\"", "beta * sinn(z)\"");
    expect_failure(&text, &[], &["bad.toml:12:", "unknown function 'sinn'"]);
}

#[test]
fn syntax_error_in_equation_is_located() {
    let text = LORENZ_OK.replace("sigma * (y - x)", "sigma * (y - x");
    expect_failure(&text, &[], &["bad.toml:10:", "expected ')'"]);
}

#[test]
fn wrong_number_of_initial_conditions_in_file() {
    let text = LORENZ_OK.replace("[1.0, 1.0, 1.0]", "[1.0, 1.0]");
    expect_failure(
        &text,
        &[],
        &[
            "bad.toml:4:",
            "initial_conditions has 2 values",
            "3 variables",
        ],
    );
}

#[test]
fn wrong_number_of_initial_conditions_on_command_line() {
    expect_failure(
        LORENZ_OK,
        &["--ic", "1,2"],
        &["--ic has 2 values", "3 variables (x, y, z)"],
    );
    expect_failure(
        LORENZ_OK,
        &["--ic", "1,2,abc"],
        &["--ic", "'abc' is not a number"],
    );
}

#[test]
fn bad_set() {
    expect_failure(
        LORENZ_OK,
        &["--set", "rho"],
        &["--set", "'rho' is not of the form NAME=VALUE"],
    );
    expect_failure(
        LORENZ_OK,
        &["--set", "rho=abc"],
        &["--set", "'abc'", "not a number"],
    );
    expect_failure(
        LORENZ_OK,
        &["--set", "foo=1"],
        &["unknown parameter 'foo'", "beta, rho, sigma"],
    );
}

#[test]
fn equation_for_undeclared_variable_and_missing_field() {
    let text = LORENZ_OK.replace("z = \"x * y - beta * z\"", "w = \"x\"");
    expect_failure(&text, &[], &["bad.toml:12:1:", "'w'"]);
    let text = LORENZ_OK.replace("variables = [\"x\", \"y\", \"z\"]\n", "");
    expect_failure(&text, &[], &["bad.toml:", "variables"]);
}

#[test]
fn blow_up_names_time_and_variable() {
    let text = r#"name = "Explode"
kind = "flow"
variables = ["u", "v"]
initial_conditions = [1.0, 0.0]
[equations]
u = "u^2"
v = "-v"
"#;
    // u(t) = 1/(1 − t) blows up at t = 1 (default period 1: 50 points at 10 per period cover [0, 5])
    let msg = expect_failure(
        text,
        &["--pts-per-period", "10"],
        &["blow-up at t = ", "variable 'u'"],
    );
    assert!(msg.contains("no output written"), "{msg}");
    let t: f64 = msg
        .split("blow-up at t = ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (t - 1.0).abs() < 1e-3,
        "blow-up time {t} should be close to 1"
    );
}

#[test]
fn missing_system_file() {
    let dir = tmpdir();
    let out = dir.path().join("o.h5");
    let o = run(&["simulate", "no/such/file.toml", "-o", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no/such/file.toml"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn lorenz_reference_point_end_to_end() {
    // dysts default IC and parameters, DOP853 at rtol = atol = 1e-12: state at t = 15.008
    let dir = tmpdir();
    let out = dir.path().join("lorenz.h5");
    let o = run(&[
        "simulate",
        "lorenz",
        "--t-end",
        "15.008",
        "--dt-out",
        "0.007504",
        "--rtol",
        "1e-12",
        "--atol",
        "1e-12",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["points"], 2001);
    let tr = read_trajectory(&out).unwrap();
    assert_eq!(tr.dim, 3);
    assert_eq!(tr.time.len(), 2001);
    assert!((tr.time[2000] - 15.008).abs() < 1e-12);
    let last = &tr.state[2000 * 3..];
    let want = [9.073, 15.0553, 17.3348];
    for k in 0..3 {
        assert!(
            (last[k] - want[k]).abs() < 1e-3,
            "component {k}: {} vs {}",
            last[k],
            want[k]
        );
    }
    // provenance attributes
    match tr.attrs.get("system") {
        Some(AttrValue::Str(s)) => assert_eq!(s, "Lorenz"),
        other => panic!("system attribute: {other:?}"),
    }
    match tr.attrs.get("definition") {
        Some(AttrValue::Str(s)) => assert!(s.contains("sigma * (y - x)")),
        other => panic!("definition attribute: {other:?}"),
    }
    for key in [
        "parameter_names",
        "parameter_values",
        "initial_condition",
        "solver",
        "rtol",
        "atol",
        "accepted_steps",
        "rejected_steps",
        "rhs_evaluations",
        "phaseflow_version",
        "command_line",
    ] {
        assert!(tr.attrs.contains_key(key), "missing attribute {key}");
    }
    match tr.attrs.get("solver") {
        Some(AttrValue::Str(s)) => {
            assert_eq!(s, "dop853", "auto runs DOP853 on a non-stiff system")
        }
        other => panic!("solver attribute: {other:?}"),
    }

    // plot it
    let png = dir.path().join("lorenz.png");
    let o = run(&["plot", out.to_str().unwrap(), "-o", png.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000);
    let png2 = dir.path().join("xz.png");
    let o = run(&[
        "plot",
        out.to_str().unwrap(),
        "-o",
        png2.to_str().unwrap(),
        "--axes",
        "x,z",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn dysts_sampling_and_parameter_override() {
    // --points N --pts-per-period K: t_end = period·N/K (Lorenz period 1.5008), N points
    let dir = tmpdir();
    let out = dir.path().join("l.h5");
    let o = run(&[
        "simulate",
        "lorenz",
        "--points",
        "200",
        "--pts-per-period",
        "50",
        "--burn-in",
        "5",
        "--set",
        "rho=35",
        "--method",
        "dopri5",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tr = read_trajectory(&out).unwrap();
    assert_eq!(tr.time.len(), 200);
    assert!((tr.time[0] - 5.0).abs() < 1e-12);
    let t_len = 1.5008 * 200.0 / 50.0;
    assert!(
        (tr.time[199] - 5.0 - t_len).abs() < 1e-9,
        "{}",
        tr.time[199]
    );
    match tr.attrs.get("parameter_values") {
        Some(AttrValue::F64s(v)) => assert_eq!(v, &vec![2.667, 35.0, 10.0]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lorenz96_forty_and_rk4() {
    let dir = tmpdir();
    let out = dir.path().join("l96.h5");
    let o = run(&[
        "simulate",
        "lorenz96",
        "--set",
        "dimension=40",
        "--set",
        "f=8",
        "--method",
        "rk4",
        "--step",
        "0.01",
        "--t-end",
        "20",
        "--dt-out",
        "0.1",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tr = read_trajectory(&out).unwrap();
    assert_eq!(tr.dim, 40);
    assert_eq!(tr.variables[39], "x[39]");
    assert_eq!(tr.time.len(), 201);
    assert!(tr.state.iter().all(|v| v.is_finite() && v.abs() < 30.0));
}

#[test]
fn list_and_info() {
    let o = run(&["list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for n in [
        "Lorenz",
        "Rossler",
        "Thomas",
        "Aizawa",
        "Chen",
        "Chua",
        "Halvorsen",
        "Lorenz96",
        "HenonHeiles",
        "Duffing",
    ] {
        assert!(names.contains(&n), "{n} missing from list: {names:?}");
    }
    let o = run(&["info", "henon_heiles", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dimension"], 4);
    assert_eq!(v["conserved"][0], "energy");
    let o = run(&["info", "duffing"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("d/dt"));
    let o = run(&["info", "nosuchsystem"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nosuchsystem"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["--help"],
        vec!["list", "--help"],
        vec!["info", "--help"],
        vec!["simulate", "--help"],
        vec!["plot", "--help"],
    ] {
        let o = run(&sub);
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage"));
    }
}

#[test]
fn ensemble_is_bit_identical_for_any_thread_count() {
    let dir = tmpdir();
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("ens{threads}.h5"));
        let o = bin()
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "simulate",
                "lorenz",
                "--ensemble",
                "8",
                "--seed",
                "7",
                "--points",
                "300",
                "--noise",
                "0.1",
                "--noise-units",
                "std",
                "-q",
                "-o",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        outs.push(read_trajectory(&out).unwrap());
    }
    assert_eq!(outs[0].members, 8);
    assert_eq!(outs[0].state.len(), 8 * 300 * 3);
    assert_eq!(
        outs[0].state, outs[1].state,
        "thread count changed the result"
    );
    // members start from different points of the attractor
    let first: Vec<&[f64]> = (0..8)
        .map(|m| &outs[0].state[m * 300 * 3..m * 300 * 3 + 3])
        .collect();
    assert!(first.windows(2).all(|w| w[0] != w[1]));
}

#[test]
fn ensemble_from_ic_file() {
    let dir = tmpdir();
    let ics = dir.path().join("ics.txt");
    std::fs::write(&ics, "# two members\n1, 1, 1\n-1 -1 20\n").unwrap();
    let out = dir.path().join("e.h5");
    let o = run(&[
        "simulate",
        "lorenz",
        "--ic-file",
        ics.to_str().unwrap(),
        "--points",
        "50",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tr = read_trajectory(&out).unwrap();
    assert_eq!(tr.members, 2);
    assert_eq!(&tr.state[..3], &[1.0, 1.0, 1.0]);
    assert_eq!(&tr.state[50 * 3..50 * 3 + 3], &[-1.0, -1.0, 20.0]);
    std::fs::write(&ics, "1, 1\n").unwrap();
    let o = run(&[
        "simulate",
        "lorenz",
        "--ic-file",
        ics.to_str().unwrap(),
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ics.txt:1: 2 values"), "{}", stderr(&o));
}

#[test]
fn delay_equation_with_delay_embedding() {
    let dir = tmpdir();
    let out = dir.path().join("mg.h5");
    let o = run(&[
        "simulate",
        "mackey_glass",
        "--embed",
        "4",
        "--burn-in",
        "100",
        "--points",
        "500",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tr = read_trajectory(&out).unwrap();
    assert_eq!(tr.dim, 4);
    assert_eq!(tr.variables[2], "x(t-2L)");
    let lag = match tr.attrs.get("embedding_lag") {
        Some(AttrValue::F64(l)) => *l,
        other => panic!("{other:?}"),
    };
    let dt = tr.time[1] - tr.time[0];
    let m = (lag / dt).round() as usize;
    assert!(
        (lag - 16.0).abs() <= dt,
        "lag {lag} should be the delay tau = 16 to the output spacing"
    );
    // column q at row k is column 0 at row k − q·m
    for k in 3 * m..tr.time.len() {
        for q in 1..4 {
            assert_eq!(tr.state[k * 4 + q], tr.state[(k - q * m) * 4]);
        }
    }
    // the embedding looks back 3·16 time units: a shorter burn-in is refused
    let o = run(&[
        "simulate",
        "mackey_glass",
        "--embed",
        "4",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("burn-in"), "{}", stderr(&o));
}

/// A delay equation with an expression history: x'(t) = e·x(t − 1) with x(t) = e^t for t ≤ 0
/// has the exact solution x(t) = e^t for all t (x(t − 1) = e^(t−1)); with the constant history
/// x = 1 instead, x(1) = 1 + e. Checks the [history] table end to end.
#[test]
fn dde_expression_history_end_to_end() {
    let dir = tmpdir();
    let file = dir.path().join("growth.toml");
    let text = r#"
name = "Growth"
kind = "dde"
variables = ["x"]
initial_conditions = [1.0]
[parameters]
tau = 1.0
[equations]
x = "e * x(t - tau)"
[history]
x = "exp(t)"
"#;
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("g.h5");
    let args = |f: &Path, o: &Path| {
        run(&[
            "simulate",
            f.to_str().unwrap(),
            "--t-end",
            "3",
            "--dt-out",
            "0.5",
            "--rtol",
            "1e-11",
            "--atol",
            "1e-11",
            "-o",
            o.to_str().unwrap(),
        ])
    };
    let o = args(&file, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let tr = read_trajectory(&out).unwrap();
    for (t, x) in tr.time.iter().zip(&tr.state) {
        assert!(
            (x - t.exp()).abs() < 1e-8 * t.exp(),
            "x({t}) = {x} vs e^t = {}",
            t.exp()
        );
    }
    // without the history table: constant history x = 1, so x(1) = 1 + e
    let file2 = dir.path().join("growth_const.toml");
    std::fs::write(&file2, text.replace("[history]\nx = \"exp(t)\"\n", "")).unwrap();
    let out2 = dir.path().join("g2.h5");
    let o = args(&file2, &out2);
    assert!(o.status.success(), "{}", stderr(&o));
    let tr = read_trajectory(&out2).unwrap();
    assert!((tr.state[2] - (1.0 + std::f64::consts::E)).abs() < 1e-8);
    // a history may not depend on the state
    std::fs::write(&file2, text.replace("\"exp(t)\"", "\"exp(t) * x\"")).unwrap();
    let o = args(&file2, &out2);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("history of 'x' must be an expression of t and parameters"),
        "{}",
        stderr(&o)
    );
}

/// Without the `learn` feature (`--no-default-features`), every score-network request fails
/// with one line naming the feature, and the learning-free EPR still works.
#[cfg(not(feature = "learn"))]
#[test]
fn without_learn_score_networks_name_the_feature() {
    let dir = tmpdir();
    let data = dir.path().join("trap.h5");
    let o = run(&[
        "simulate",
        "systems/active/trap.toml",
        "--set",
        "N=4",
        "--set",
        "k=0",
        "--replicas",
        "2",
        "--burn-in",
        "5",
        "--t-end",
        "20",
        "--every",
        "20",
        "-q",
        "-o",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d = data.to_str().unwrap();
    let model = dir.path().join("model");
    let m = model.to_str().unwrap();
    for args in [
        vec!["train", "train.toml", "--data", d, "-o", m],
        vec!["score", m, "--data", d, "-o", m],
        vec!["epr", "--model", m, "--data", d],
        vec![
            "forecast",
            "bench",
            "--systems",
            "lorenz",
            "--models",
            "mlp",
            "-q",
            "-o",
            m,
        ],
    ] {
        let o = run(&args);
        let msg = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            msg.contains("rebuild with the default feature `learn`"),
            "{args:?}: {msg}"
        );
        assert_eq!(msg.trim_end().lines().count(), 1, "{args:?}: {msg}");
    }
    assert!(!model.exists());
    let o = run(&["epr", "--data", d, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["epr_reference"].as_f64().unwrap().is_finite());
}
