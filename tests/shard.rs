//! Sharded runs (`--shard I/N`, Slurm job arrays) and `phaseflow merge`: shard specs and the
//! Slurm environment, byte-identical merges for N = 1, 2, 3 of every sharded command, merges
//! refused (missing, duplicated, foreign, damaged shards), and `phaseflow sweep` resumed after an
//! interruption and after `kill -9`.

#[allow(dead_code)] // the particle and training helpers serve other tests
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `phaseflow ARGS` with extra environment variables, the Slurm array's removed unless given.
fn phaseflow_env(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phaseflow"));
    c.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A small sweep of Lorenz (6 points, short spans).
fn sweep_args(out: &Path) -> Vec<String> {
    let mut a = s(&[
        "sweep",
        "lorenz",
        "--set",
        "rho=20:30:2",
        "--set",
        "beta=2.5",
        "--t-end",
        "20",
        "--transient",
        "2",
        "--quiet",
        "-o",
    ]);
    a.push(out.display().to_string());
    a
}

const SYSTEMS: &str = "lorenz,rossler,henon,logistic,chua";

fn invariants_args(out: &Path) -> Vec<String> {
    let mut a = s(&[
        "catalogue",
        "invariants",
        "--systems",
        SYSTEMS,
        "--span-periods",
        "5",
        "--correlation-points",
        "500",
        "-o",
    ]);
    a.push(out.display().to_string());
    a
}

fn check_args(out: &Path) -> Vec<String> {
    let mut a = s(&["catalogue", "check", "--systems", SYSTEMS, "--json", "-o"]);
    a.push(out.display().to_string());
    a
}

/// Runs `args(out)` unsharded, then as N = 1, 2, 3 shards (each with `--shard I/N`) merged in
/// reverse order; every merge must equal the unsharded output byte for byte. `must_succeed`:
/// whether the command's exit status must be 0 (a failing catalogue check still writes).
fn merge_matches_unsharded(name: &str, args: fn(&Path) -> Vec<String>, must_succeed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join(format!("{name}.full"));
    let o = phaseflow_env(&args(&full), &[]);
    if must_succeed {
        ok(&o, name);
    }
    let full_bytes = std::fs::read(&full).unwrap();
    assert!(!full_bytes.is_empty());
    for n in 1..=3usize {
        let mut shards: Vec<PathBuf> = Vec::new();
        for i in 0..n {
            let p = dir.path().join(format!("{name}.{i}-of-{n}"));
            let mut a = args(&p);
            a.extend(["--shard".to_string(), format!("{i}/{n}")]);
            let o = phaseflow_env(&a, &[]);
            if must_succeed {
                ok(&o, &format!("{name} shard {i}/{n}"));
            }
            assert!(
                stderr(&o).contains(&format!("shard {i}/{n}")),
                "{}",
                stderr(&o)
            );
            shards.push(p);
        }
        shards.reverse();
        let merged = dir.path().join(format!("{name}.merged-{n}"));
        let mut a = vec!["merge".to_string(), merged.display().to_string()];
        a.extend(shards.iter().map(|p| p.display().to_string()));
        ok(&phaseflow_env(&a, &[]), "merge");
        if let Ok(c) = Command::new("cmp").arg(&full).arg(&merged).output() {
            assert!(c.status.success(), "{name} N = {n}: cmp differs");
        }
        assert!(
            std::fs::read(&merged).unwrap() == full_bytes,
            "{name}: the merge of {n} shards differs from the unsharded output"
        );
    }
}

#[test]
fn sweep_merge_is_byte_identical() {
    merge_matches_unsharded("sweep", sweep_args, true);
}

#[test]
fn catalogue_invariants_merge_is_byte_identical() {
    merge_matches_unsharded("invariants", invariants_args, true);
}

#[test]
fn catalogue_check_merge_is_byte_identical() {
    merge_matches_unsharded("check", check_args, false);
}

/// The commands' help names the shard option and merge.
#[test]
fn help_texts() {
    for cmd in [
        &["sweep", "--help"][..],
        &["catalogue", "invariants", "--help"],
        &["catalogue", "check", "--help"],
    ] {
        let o = common::run(cmd);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("--shard <I/N>") && text.contains("SLURM_ARRAY_TASK_ID"),
            "{cmd:?}"
        );
    }
    let o = common::run(&["merge", "--help"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("byte")
            || String::from_utf8_lossy(&o.stdout).contains("shard")
    );
}

/// Shard specs: clear errors for bad ones; the Slurm array's variables (ID − MIN of COUNT) as
/// the default; an explicit --shard over them; malformed variables named.
#[test]
fn shard_spec_and_slurm_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.csv");
    for (bad, says) in [
        ("3/3", "not below N"),
        ("0/0", "at least 1"),
        ("x/2", "not a whole number"),
        ("1", "no '/'"),
    ] {
        let mut a = sweep_args(&out);
        a.extend(["--shard".into(), bad.into()]);
        let o = phaseflow_env(&a, &[]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(stderr(&o).contains(says), "{bad}: {}", stderr(&o));
    }
    // ID 7, MIN 5, COUNT 3: shard 2/3 (points 2 and 5 of 6)
    let env = [
        ("SLURM_ARRAY_TASK_ID", "7"),
        ("SLURM_ARRAY_TASK_MIN", "5"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    let o = phaseflow_env(&sweep_args(&out), &env);
    ok(&o, "sweep under a Slurm array");
    assert!(
        stderr(&o).contains("shard 2/3: 2 of 6 points"),
        "{}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("{\"format\":\"phaseflow-shard\""),
        "{text}"
    );
    assert!(text.contains("\"shard\":2,\"of\":3"), "{text}");
    assert!(text.contains("{\"item\":2,") && text.contains("{\"item\":5,"));
    // --shard wins over the environment
    let mut a = sweep_args(&out);
    a.extend(["--shard".into(), "0/2".into()]);
    let o = phaseflow_env(&a, &env);
    ok(&o, "sweep --shard under a Slurm array");
    assert!(
        stderr(&o).contains("shard 0/2: 3 of 6 points"),
        "{}",
        stderr(&o)
    );
    // MIN defaults to 0
    let o = phaseflow_env(
        &sweep_args(&out),
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    );
    ok(&o, "sweep, no MIN");
    assert!(stderr(&o).contains("shard 1/2"), "{}", stderr(&o));
    // malformed or inconsistent variables: an error naming the variable, no output
    for (env, says) in [
        (
            vec![
                ("SLURM_ARRAY_TASK_ID", "abc"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ],
            "SLURM_ARRAY_TASK_ID='abc'",
        ),
        (
            vec![
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "-2"),
            ],
            "SLURM_ARRAY_TASK_COUNT='-2'",
        ),
        (
            vec![("SLURM_ARRAY_TASK_ID", "1")],
            "SLURM_ARRAY_TASK_COUNT is not",
        ),
        (
            vec![
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
            "not below N",
        ),
    ] {
        let fresh = dir.path().join("bad.csv");
        let o = phaseflow_env(&sweep_args(&fresh), &env);
        assert_eq!(o.status.code(), Some(1), "{env:?}");
        assert!(stderr(&o).contains(says), "{env:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
        assert!(!fresh.exists());
    }
    // catalogue check: a shard needs -o
    let o = phaseflow_env(
        &s(&[
            "catalogue",
            "check",
            "--systems",
            "lorenz",
            "--shard",
            "0/2",
        ]),
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("needs --output"), "{}", stderr(&o));
}

/// `merge` refuses a missing, duplicated or foreign shard, a file that is not a shard and a
/// damaged one, naming them, and writes nothing.
#[test]
fn merge_refuses_incomplete_or_foreign_shards() {
    let dir = tempfile::tempdir().unwrap();
    let shard = |i: usize, n: usize, extra: &[&str]| {
        let p = dir.path().join(format!("s{i}-{n}{}", extra.join("")));
        let mut a = sweep_args(&p);
        a.extend(["--shard".to_string(), format!("{i}/{n}")]);
        a.extend(extra.iter().map(|x| x.to_string()));
        ok(&phaseflow_env(&a, &[]), "shard");
        p
    };
    let (a, b, c) = (shard(0, 3, &[]), shard(1, 3, &[]), shard(2, 3, &[]));
    let other = shard(1, 3, &["--seed", "4"]);
    let two = shard(1, 2, &[]);
    let out = dir.path().join("merged.csv");
    let merge = |files: &[&PathBuf]| {
        let mut args = vec!["merge".to_string(), out.display().to_string()];
        args.extend(files.iter().map(|p| p.display().to_string()));
        phaseflow_env(&args, &[])
    };
    let refused = |files: &[&PathBuf], says: &str| {
        let o = merge(files);
        assert_eq!(o.status.code(), Some(1), "{files:?}");
        assert!(stderr(&o).contains(says), "{files:?}: {}", stderr(&o));
        assert!(!out.exists(), "{files:?}: wrote an output");
    };
    refused(&[&a, &b], "missing shard 2/3");
    refused(&[&a, &b, &b, &c], "shard 1/3 is given twice");
    refused(&[&a, &other, &c], "is not a shard of the same run");
    refused(&[&a, &b, &c, &two], "is not a shard of the same run");
    let not_shard = dir.path().join("plain.csv");
    std::fs::write(&not_shard, "rho,system\n").unwrap();
    refused(&[&a, &b, &not_shard], "not a phaseflow shard file");
    let cut = dir.path().join("cut");
    let text = std::fs::read_to_string(&c).unwrap();
    std::fs::write(&cut, text.lines().next().unwrap().to_string() + "\n").unwrap();
    refused(
        &[&a, &b, &cut],
        "holds 0 rows, not the 2 items of shard 2/3",
    );
    let o = merge(&[&c, &a, &b]);
    ok(&o, "merge");
    assert!(out.exists());
    // never over what is not a regular file
    let d = dir.path().join("adir");
    std::fs::create_dir(&d).unwrap();
    let o = phaseflow_env(
        &[
            "merge".into(),
            d.display().to_string(),
            a.display().to_string(),
            b.display().to_string(),
            c.display().to_string(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

/// A sweep stopped after two points (the testing aid: as if killed after their rows were
/// synced), with a torn line appended as a kill mid-write leaves it, is continued by the same
/// command and writes the bytes of an uninterrupted run.
#[test]
fn sweep_resumes_after_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.csv");
    ok(&phaseflow_env(&sweep_args(&full), &[]), "sweep");
    let out = dir.path().join("resumed.csv");
    let partial = dir.path().join(".resumed.csv.partial");
    let mut a = sweep_args(&out);
    a.extend(["--abort-after-points".into(), "2".into()]);
    let o = phaseflow_env(&a, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert!(!out.exists());
    let kept = std::fs::read_to_string(&partial).unwrap();
    assert!(kept.lines().count() >= 3, "{kept}");
    // a row cut short by a kill
    std::fs::write(&partial, format!("{kept}4\t26,\"Lor")).unwrap();
    let o = phaseflow_env(&sweep_args(&out), &[]);
    ok(&o, "resumed sweep");
    assert!(
        stderr(&o).contains("from the partial file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&full).unwrap(),
        "resumed sweep differs"
    );
    assert!(!partial.exists());
    // a partial file of another sweep is refused, not overwritten
    let mut a = sweep_args(&out);
    a.extend(["--abort-after-points".into(), "1".into()]);
    let _ = phaseflow_env(&a, &[]);
    let mut b = sweep_args(&out);
    b.extend(["--seed".into(), "9".into()]);
    let o = phaseflow_env(&b, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the partial file of another sweep"),
        "{}",
        stderr(&o)
    );
}

/// `kill -9` in the middle of a sweep shard: the same command continues from the synced rows and
/// the shard file equals that of an uninterrupted run.
#[test]
fn sweep_resumes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        let mut a = s(&[
            "sweep",
            "lorenz",
            "--set",
            "rho=20:40:1",
            "--set",
            "sigma=9:10:1",
            "--t-end",
            "150",
            "--transient",
            "2",
            "--shard",
            "1/2",
            "--quiet",
            "-o",
        ]);
        a.push(out.display().to_string());
        a
    };
    let full = dir.path().join("full.shard");
    ok(&phaseflow_env(&args(&full), &[]), "sweep");
    let out = dir.path().join("killed.shard");
    let partial = dir.path().join(".killed.shard.partial");
    let mut child = Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args(&out))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SLURM_ARRAY_TASK_ID")
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let rows = std::fs::read_to_string(&partial)
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if rows >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep finished before it could be killed: make it longer"
        );
        assert!(started.elapsed().as_secs() < 60, "no rows after 60 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!out.exists(), "killed before the end, yet an output exists");
    let o = phaseflow_env(&args(&out), &[]);
    ok(&o, "resumed sweep");
    assert!(
        stderr(&o).contains("from the partial file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&full).unwrap());
}
