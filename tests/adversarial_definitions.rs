//! Issue 21, items 13 and 14 (definition files and `--set`), through the command line: every
//! entry of a file is checked, errors are located at `file:line:column` and the token, printed
//! once, with exit status 1 and nothing written.

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

/// Writes `text` as `DIR/NAME` and returns its path.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `info FILE` and `simulate FILE -o DIR/out.h5` both fail with the located message `needles`;
/// the directory holds nothing but the definition files afterwards.
fn info_and_simulate_fail(dir: &Path, path: &Path, needles: &[&str]) {
    let p = path.to_str().unwrap();
    fails_once(&phaseflow(&["info", p]), needles);
    let out = dir.join("out.h5");
    let o = phaseflow(&[
        "simulate",
        p,
        "--points",
        "100",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    fails_once(&o, needles);
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".toml"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

const HEAD: &str = "name = \"T\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [1.0]\n[parameters]\nk = 1.0\n";

/// Item 13: a `[define]` cycle or an unknown symbol in a define that no equation uses, and an
/// unused `[initial_rule]` with an unknown symbol, are located errors (they were accepted).
#[test]
fn every_define_is_checked_used_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cycle = file(
        d,
        "cycle.toml",
        &format!("{HEAD}[define]\na = \"b + 1\"\nb = \"a * 2\"\n[equations]\nx = \"-k * x\"\n"),
    );
    // line 9 is `b = "a * 2"`: the `a` that closes the cycle is at column 6
    info_and_simulate_fail(d, &cycle, &["cycle.toml:9:6:", "(a -> b -> a)"]);
    let unknown = file(
        d,
        "unknown.toml",
        &format!("{HEAD}[define]\nq = \"k + zz\"\n[equations]\nx = \"-k * x\"\n"),
    );
    info_and_simulate_fail(d, &unknown, &["unknown.toml:8:10:", "unknown symbol 'zz'"]);
    let rule = file(
        d,
        "rule.toml",
        &format!("{HEAD}[initial_rule]\nx = \"2 * ww\"\n[equations]\nx = \"-k * x\"\n"),
    );
    info_and_simulate_fail(d, &rule, &["rule.toml:8:10:", "unknown symbol 'ww'"]);
    // the same cycle used by an equation: the same located message, once
    let used = file(
        d,
        "used.toml",
        &format!("{HEAD}[define]\na = \"b + 1\"\nb = \"a * 2\"\n[equations]\nx = \"-k * a\"\n"),
    );
    info_and_simulate_fail(d, &used, &["used.toml:", "(a -> b -> a)"]);
}

/// Checking every `[define]` costs each entry once: an unused chain of 2000 entries (each using
/// the previous; the resolution depth allows about 2000) loads in milliseconds, where one
/// expansion per entry took 2 million nodes and seconds, and an unknown symbol at the bottom of
/// such a chain is still found.
#[test]
fn long_unused_define_chains_are_checked_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let chain = |bottom: &str| {
        let mut t = format!("{HEAD}[define]\na0 = \"{bottom}\"\n");
        for k in 1..2000 {
            t.push_str(&format!("a{k} = \"a{} + 1\"\n", k - 1));
        }
        t + "[equations]\nx = \"-k * x\"\n"
    };
    let ok = file(d, "chain.toml", &chain("k"));
    let o = phaseflow(&["info", ok.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bad = file(d, "bad_chain.toml", &chain("k + zz"));
    info_and_simulate_fail(d, &bad, &["bad_chain.toml:8:11:", "unknown symbol 'zz'"]);
}

/// A non-finite `t0` was accepted (every entry of a file is checked): a located error.
#[test]
fn a_non_finite_start_time_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = HEAD.replace(
        "initial_conditions = [1.0]\n",
        "initial_conditions = [1.0]\nt0 = nan\n",
    ) + "[equations]\nx = \"-k * x\"\n";
    let p = file(d, "t0.toml", &text);
    info_and_simulate_fail(
        d,
        &p,
        &[
            "t0.toml:5:6:",
            "field 't0' must be a finite number, got NaN",
        ],
    );
}

/// Item 14: a delay τ ≤ 0 written in the file is located at the delay (it was reported as a
/// `--set` error without a location); a τ ≤ 0 given by `--set` is a `--set` error.
#[test]
fn a_non_positive_delay_in_the_file_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = "name = \"D\"\nkind = \"dde\"\nvariables = [\"x\"]\ninitial_conditions = [0.5]\n[parameters]\ntau = -1.0\n[equations]\nx = \"0.2 * x(t - tau) - 0.1 * x\"\n";
    let p = file(d, "delay.toml", text);
    info_and_simulate_fail(d, &p, &["delay.toml:8:18:", "must be positive, got -1"]);
    let o = phaseflow(&["info", "mackey_glass", "--set", "tau=0"]);
    fails_once(&o, &["--set:", "must be positive, got 0"]);
}

/// Item 14: a negative `[diffusion]` coefficient fails at load (so `info` fails too), located at
/// its expression; made negative by `--set`, it is a `--set` error before any file is made.
#[test]
fn a_negative_diffusion_fails_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = "name = \"S\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [0.0]\n[parameters]\nT = 1.0\n[equations]\nx = \"-x\"\n[diffusion]\nx = \"-T\"\n";
    let p = file(d, "sde.toml", text);
    info_and_simulate_fail(
        d,
        &p,
        &["sde.toml:10:6:", "diffusion of 'x' is -1", "non-negative"],
    );
    let out = d.join("o.h5");
    let o = phaseflow(&[
        "simulate",
        "systems/linear/bead_spring_2.toml",
        "--set",
        "Tc=-1",
        "--points",
        "100",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    fails_once(&o, &["--set:", "diffusion of 'x1'", "is -1"]);
    assert!(
        std::fs::read_dir(d).unwrap().count() == 1,
        "a file was left"
    );
}

/// Item 14: columns inside a string with TOML escapes are those of the token as written
/// (`\u0078` is 6 characters of the file but 1 of the expression).
#[test]
fn columns_count_through_toml_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = "name = \"E\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [1.0]\n[equations]\nx = \"\\u0078 + \\u0078 * qq\"\n";
    let p = file(d, "escape.toml", text);
    // `x = "\u0078 + \u0078 * qq"`: qq at column 24 of line 6
    info_and_simulate_fail(d, &p, &["escape.toml:6:24:", "unknown symbol 'qq'"]);
    // a multi-line string with a line-ending backslash and an escape before the bad token
    let text = "name = \"E\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [1.0]\n[equations]\nx = \"\"\"\n-\\u0078 + \\\n    \\t2 * qq\"\"\"\n";
    let p = file(d, "multiline.toml", text);
    // line 8 is `    \t2 * qq"""`: qq at column 11
    info_and_simulate_fail(d, &p, &["multiline.toml:8:11:", "unknown symbol 'qq'"]);
}

/// Item 14: a parameter that is not a number says what a parameter may be and shows the value
/// (it said "data did not match any variant of untagged enum RawParam").
#[test]
fn a_parameter_that_is_not_a_number_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = file(
        d,
        "param.toml",
        &(HEAD.replace("k = 1.0", "k = \"1/0\"") + "[equations]\nx = \"-k * x\"\n"),
    );
    info_and_simulate_fail(
        d,
        &p,
        &[
            "param.toml:6:5:",
            "parameter value \"1/0\" is not a number",
            "[define]",
        ],
    );
    assert!(!stderr(&phaseflow(&["info", p.to_str().unwrap()])).contains("untagged"));
    let p = file(
        d,
        "table.toml",
        &(HEAD.replace("k = 1.0", "k = { a = 1 }") + "[equations]\nx = \"-x\"\n"),
    );
    info_and_simulate_fail(d, &p, &["table.toml:6:5:", "is not a number"]);
}

/// Item 14: a directory given as the definition file is named as a directory (it said "no such
/// definition file" or "not a file and not a system of the catalogue").
#[test]
fn a_directory_is_not_a_definition_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("defs");
    std::fs::create_dir(&sub).unwrap();
    let s = sub.to_str().unwrap();
    let with_slash = format!("{s}/");
    for arg in [s, with_slash.as_str(), "systems/active", "active"] {
        fails_once(&phaseflow(&["info", arg]), &["is a directory"]);
        let out = dir.path().join("o.h5");
        let o = phaseflow(&["simulate", arg, "-q", "-o", out.to_str().unwrap()]);
        fails_once(&o, &["is a directory"]);
        assert!(!out.exists());
    }
}

/// Item 14: a particle number above the documented limit names the limit, located at the value
/// in the file, or as a `--set` error; other particle parameters are located the same way.
#[test]
fn too_many_particles_names_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trap = std::fs::read_to_string("systems/active/trap.toml").unwrap();
    assert!(trap.contains("\nN = 64\n"));
    let line = trap[..trap.find("\nN = 64\n").unwrap()]
        .matches('\n')
        .count()
        + 2;
    let p = file(d, "big.toml", &trap.replace("\nN = 64\n", "\nN = 1e12\n"));
    let at = format!("big.toml:{line}:5:");
    let limit = "N = 1e12 exceeds the limit of 100000000 particles";
    fails_once(&phaseflow(&["info", p.to_str().unwrap()]), &[&at, limit]);
    let out = d.join("o.h5");
    let o_ = out.to_str().unwrap();
    let o = phaseflow(&["simulate", "trap", "--set", "N=1e12", "-q", "-o", o_]);
    fails_once(&o, &["--set:", limit]);
    let p = file(d, "half.toml", &trap.replace("\nN = 64\n", "\nN = 2.5\n"));
    let at = format!("half.toml:{line}:5:");
    let o = phaseflow(&["simulate", p.to_str().unwrap(), "-q", "-o", o_]);
    fails_once(&o, &[&at, "N must be a positive integer, got 2.5"]);
    let o = phaseflow(&["simulate", "trap", "--set", "phi=2", "-q", "-o", o_]);
    fails_once(&o, &["--set:", "phi must be in (0, 1), got 2"]);
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".toml"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Item 14 (the same class as N): a family size above the documented limit names the limit, in
/// the file (located at the value) and by `--set` (it said "must be a positive integer").
#[test]
fn too_large_a_family_names_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let l96 = std::fs::read_to_string("systems/lorenz96.toml").unwrap();
    let at = l96.find("\ndimension = ").unwrap() + 1;
    let line = l96[..at].matches('\n').count() + 1;
    let eol = at + l96[at..].find('\n').unwrap();
    let big = format!("{}dimension = 100000000{}", &l96[..at], &l96[eol..]);
    let p = file(d, "big.toml", &big);
    let loc = format!("big.toml:{line}:13:");
    info_and_simulate_fail(
        d,
        &p,
        &[
            &loc,
            "dimension 100000000 gives more than 2000000 state components",
        ],
    );
    let o = phaseflow(&["info", "lorenz96", "--set", "dimension=1e8"]);
    fails_once(
        &o,
        &[
            "--set:",
            "dimension 100000000 gives 100000000 state components",
            "at most 2000000",
        ],
    );
}

/// Item 14: `--set` errors are printed once (they were printed twice, `F: msg: F: msg`), for
/// equations and particles, and nothing is written.
#[test]
fn set_errors_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let o_ = out.to_str().unwrap();
    for (system, set, needle) in [
        ("lorenz", "foo=1", "unknown parameter 'foo'"),
        ("lorenz", "rho=abc", "value 'abc' of 'rho' is not a number"),
        ("lorenz", "rho", "'rho' is not of the form NAME=VALUE"),
        (
            "lorenz96",
            "dimension=0",
            "dimension must be a positive integer",
        ),
        ("trap", "foo=1", "unknown parameter 'foo'"),
        ("trap", "N=abc", "value 'abc' of 'N' is not a number"),
    ] {
        for cmd in ["info", "simulate"] {
            let mut args = vec![cmd, system, "--set", set];
            if cmd == "simulate" {
                args.extend(["-q", "-o", o_]);
            }
            let o = phaseflow(&args);
            fails_once(&o, &["--set:", needle]);
        }
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
