//! Sharded runs (`--shard I/N`, Slurm job arrays) and `phaseflow merge`: shard specs and the
//! Slurm environment, byte-identical merges for N = 1, 2, 3 of every sharded command, merges
//! refused (missing, duplicated, foreign, damaged shards), `phaseflow sweep` resumed after an
//! interruption and after `kill -9`, `simulate --ensemble` (whole and sharded) resumed with
//! `--resume` after an interruption and after `kill -9`, and `catalogue check` resumed with
//! `--resume`.

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
        &["forecast", "bench", "--help"],
        &["simulate", "--help"],
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

/// `catalogue check -o` (whole and shard 1/2) interrupted after some systems keeps their rows in
/// its partial table; `--resume` checks only the others and writes the bytes of an
/// uninterrupted check; a kill's torn row is dropped; without `--resume`, or with other
/// settings, the partial table is refused and kept.
#[test]
fn catalogue_check_resumes_after_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    for (name, shard) in [("check.jsonl", None), ("part.jsonl", Some("1/2"))] {
        let with = |out: &Path, more: &[&str]| {
            let mut a = check_args(out);
            if let Some(sh) = shard {
                a.extend(s(&["--shard", sh]));
            }
            a.extend(s(more));
            a
        };
        let full = dir.path().join(format!("full-{name}"));
        let _ = phaseflow_env(&with(&full, &[]), &[]);
        assert!(full.exists(), "{name}");
        let out = dir.path().join(name);
        let partial = dir.path().join(format!(".{name}.partial"));
        // one thread: the abort comes after exactly one system
        let o = phaseflow_env(
            &with(&out, &["--abort-after-systems", "1"]),
            &[("RAYON_NUM_THREADS", "1")],
        );
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
        assert!(!out.exists());
        let kept = std::fs::read_to_string(&partial).unwrap();
        assert_eq!(kept.lines().count(), 2, "{kept}");
        assert!(kept.starts_with("phaseflow-check-partial work="), "{kept}");
        // without --resume: refused, kept
        let o = phaseflow_env(&with(&out, &[]), &[]);
        assert_eq!(o.status.code(), Some(1));
        for says in [".partial", "--resume", "remove the file to start afresh"] {
            assert!(stderr(&o).contains(says), "{name}: {}", stderr(&o));
        }
        // other settings: refused, kept
        let o = phaseflow_env(&with(&out, &["--resume", "--points", "300"]), &[]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("cannot resume"), "{}", stderr(&o));
        assert!(partial.exists());
        // a row cut short by a kill (file 3 belongs to both the whole check and shard 1/2)
        std::fs::write(&partial, format!("{kept}3\t{{\"system\":\"chu")).unwrap();
        let o = phaseflow_env(&with(&out, &["--resume"]), &[]);
        assert!(stderr(&o).contains("resuming: 1 systems"), "{}", stderr(&o));
        // --json lists every system of the table, the resumed one included
        let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // (5 systems; shard 1/2 holds files 1 and 3)
        let rows = if shard.is_some() { 2 } else { 5 };
        assert_eq!(listed.as_array().map(Vec::len), Some(rows), "{name}");
        same_bytes(&full, &out, name);
        assert!(!partial.exists(), "{name}");
    }
}

/// Starts `phaseflow ARGS` in `dir` and kills it (SIGKILL) once its partial file holds 3 rows
/// (`what` ran: for the messages).
fn kill_after_rows(args: &[String], dir: &Path, partial: &Path, what: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(dir)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let rows = std::fs::read_to_string(partial)
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if rows >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what} finished before it could be killed: make it longer"
        );
        assert!(
            started.elapsed().as_secs() < 60,
            "{what}: no rows after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
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
    kill_after_rows(
        &args(&out),
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &partial,
        "the sweep",
    );
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

/// `phaseflow ARGS` run in `dir` (so that relative output names, and so the recorded command
/// lines, agree between runs), the Slurm array's variables removed unless given.
fn phaseflow_in(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phaseflow"));
    c.args(args).current_dir(dir);
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

fn same_bytes(a: &Path, b: &Path, what: &str) {
    if let Ok(c) = Command::new("cmp").arg(a).arg(b).output() {
        assert!(
            c.status.success(),
            "{what}: cmp {} {} differs",
            a.display(),
            b.display()
        );
    }
    assert!(
        std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
        "{what}: {} and {} differ",
        a.display(),
        b.display()
    );
}

/// Files under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// A tiny benchmark: three flows, three cheap models, short series (well under a second).
fn bench_args(out: &Path) -> Vec<String> {
    let mut a = s(&[
        "forecast",
        "bench",
        "--systems",
        "lorenz,rossler,chua",
        "--models",
        "naive,mean,linear",
        "--train",
        "300",
        "--context",
        "50",
        "--horizon",
        "40",
        "--test-ics",
        "2",
        "--per-period",
        "30",
        "--no-tune",
        "-q",
        "-o",
    ]);
    a.push(out.display().to_string());
    a
}

/// `forecast bench` as N = 1, 2, 3 shards (each in its own directory, merged in reverse order;
/// and N = 2 in one shared directory merged in place) gives the unsharded run's directory:
/// leaderboard, summary, plots and data sets byte for byte, the per-pair results equal but for
/// their wall time (`seconds`, which differs between any two runs). A shard reports its shard
/// and counts in --json, and a shard run again reuses its finished pairs.
#[test]
fn forecast_bench_merge_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    ok(&phaseflow_env(&bench_args(&full), &[]), "bench");
    let want = files_under(&full);
    assert!(want.contains(&PathBuf::from("leaderboard.csv")), "{want:?}");
    assert!(want.contains(&PathBuf::from("summary.md")), "{want:?}");
    let compare = |merged: &Path, what: &str| {
        assert_eq!(files_under(merged), want, "{what}: the files differ");
        for f in &want {
            let (a, b) = (full.join(f), merged.join(f));
            if f.starts_with("results") {
                let strip = |p: &Path| {
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                    v.as_object_mut().unwrap().remove("seconds");
                    v
                };
                assert_eq!(strip(&a), strip(&b), "{what}: {}", f.display());
            } else {
                same_bytes(&a, &b, what);
            }
        }
    };
    for n in 1..=3usize {
        let mut shard_files = Vec::new();
        for i in 0..n {
            let d = dir.path().join(format!("s{n}-{i}"));
            let mut a = bench_args(&d);
            a.extend(["--shard".to_string(), format!("{i}/{n}")]);
            let o = phaseflow_env(&a, &[]);
            ok(&o, &format!("bench shard {i}/{n}"));
            assert!(
                stderr(&o).contains(&format!("shard {i}/{n}")),
                "{}",
                stderr(&o)
            );
            assert!(
                !d.join("leaderboard.csv").exists(),
                "a shard writes no report"
            );
            shard_files.push(d.join(format!("shard-{i}-of-{n}.jsonl")));
        }
        shard_files.reverse();
        let merged = dir.path().join(format!("merged-{n}"));
        let mut a = vec!["merge".to_string(), merged.display().to_string()];
        a.extend(shard_files.iter().map(|p| p.display().to_string()));
        ok(&phaseflow_env(&a, &[]), "merge");
        compare(&merged, &format!("bench N = {n}"));
    }
    // two shards sharing one directory (a cluster's shared file system), merged in place
    let shared = dir.path().join("shared");
    for i in 0..2 {
        let mut a = bench_args(&shared);
        a.extend(["--shard".to_string(), format!("{i}/2"), "--json".into()]);
        let o = phaseflow_env(&a, &[]);
        ok(&o, "bench shard, shared directory");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            v["shard"],
            serde_json::json!({"index": i, "count": 2}),
            "{v}"
        );
        assert_eq!(v["items"], 3, "{v}");
        assert_eq!(v["systems"], if i == 0 { 2 } else { 1 }, "{v}");
    }
    // run again: every pair of the shard is reused (a killed shard continues the same way)
    let mut a = bench_args(&shared);
    a.extend(["--shard".to_string(), "0/2".into(), "--json".into()]);
    let o = phaseflow_env(&a, &[]);
    ok(&o, "bench shard again");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["computed"].as_u64(), v["reused"].as_u64()),
        (Some(0), Some(6)),
        "{v}"
    );
    let a = s(&[
        "merge",
        shared.to_str().unwrap(),
        shared.join("shard-0-of-2.jsonl").to_str().unwrap(),
        shared.join("shard-1-of-2.jsonl").to_str().unwrap(),
    ]);
    ok(&phaseflow_env(&a, &[]), "merge in place");
    for f in ["shard-0-of-2.jsonl", "shard-1-of-2.jsonl"] {
        std::fs::remove_file(shared.join(f)).unwrap();
    }
    compare(&shared, "bench, shared directory");
}

/// A small Lorenz ensemble with noise (5 members, short span).
fn ensemble_args(out: &str) -> Vec<String> {
    let mut a = s(&[
        "simulate",
        "lorenz",
        "--ensemble",
        "5",
        "--t-end",
        "2",
        "--dt-out",
        "0.01",
        "--noise",
        "0.1",
        "--seed",
        "4",
        "-o",
    ]);
    a.push(out.to_string());
    a
}

/// `simulate --ensemble` as N = 1, 2, 3 shards merged (reverse order) equals the unsharded
/// HDF5 file byte for byte, its recorded command line included: the unsharded run writes
/// `-o out.h5` in one directory, the merge `out.h5` in another.
#[test]
fn ensemble_merge_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    std::fs::create_dir(&whole).unwrap();
    ok(
        &phaseflow_in(&whole, &ensemble_args("out.h5"), &[]),
        "ensemble",
    );
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    for n in 1..=3usize {
        let mut shard_files = Vec::new();
        for i in 0..n {
            let name = format!("part{i}-of-{n}");
            let mut a = ensemble_args(&name);
            a.extend(["--shard".to_string(), format!("{i}/{n}")]);
            let o = phaseflow_in(&parts, &a, &[]);
            ok(&o, &format!("ensemble shard {i}/{n}"));
            assert!(
                stderr(&o).contains(&format!("shard {i}/{n}")),
                "{}",
                stderr(&o)
            );
            shard_files.push(parts.join(name));
        }
        shard_files.reverse();
        let merged = dir.path().join(format!("merged-{n}"));
        std::fs::create_dir(&merged).unwrap();
        let mut a = vec!["merge".to_string(), "out.h5".to_string()];
        a.extend(shard_files.iter().map(|p| p.display().to_string()));
        ok(&phaseflow_in(&merged, &a, &[]), "merge");
        same_bytes(
            &whole.join("out.h5"),
            &merged.join("out.h5"),
            &format!("ensemble N = {n}"),
        );
    }
    // --json: the shard, its members and the ensemble's size
    let mut a = ensemble_args("j");
    a.extend(["--shard".to_string(), "1/2".into(), "--json".into()]);
    let o = phaseflow_in(&parts, &a, &[]);
    ok(&o, "ensemble shard --json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            v["shard"].as_str(),
            v["members"].as_u64(),
            v["ensemble_size"].as_u64()
        ),
        (Some("1/2"), Some(2), Some(5)),
        "{v}"
    );
}

/// Ensembles: the Slurm array's shard applies to --ensemble runs only; more shards than members,
/// --shard without --ensemble, and merges of missing, duplicated or foreign shards are refused.
#[test]
fn ensemble_shards_refused_and_slurm_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = [
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "2"),
    ];
    let o = phaseflow_in(d, &ensemble_args("env"), &env);
    ok(&o, "ensemble under a Slurm array");
    assert!(
        stderr(&o).contains("shard 1/2: 2 of 5 members"),
        "{}",
        stderr(&o)
    );
    assert!(std::fs::read_to_string(d.join("env"))
        .unwrap()
        .starts_with("{\"format\":\"phaseflow-shard\""));
    // a single trajectory ignores the array: an HDF5 file
    let a = s(&[
        "simulate", "lorenz", "--t-end", "1", "--dt-out", "0.1", "-o", "one.h5",
    ]);
    ok(
        &phaseflow_in(d, &a, &env),
        "one trajectory under a Slurm array",
    );
    assert!(std::fs::read(d.join("one.h5"))
        .unwrap()
        .starts_with(b"\x89HDF"));
    // --shard needs --ensemble (usage error)
    let mut a = s(&["simulate", "lorenz", "-o", "x.h5", "--shard", "0/2"]);
    let o = phaseflow_in(d, &a, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // more shards than members
    a = ensemble_args("p");
    a.extend(["--shard".to_string(), "5/6".into()]);
    let o = phaseflow_in(d, &a, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("has no members"), "{}", stderr(&o));
    assert!(!d.join("p").exists());
    // shards 0/2, 1/2 and a foreign 0/2 (another parameter)
    for (name, shard, set) in [
        ("a0", "0/2", "rho=28"),
        ("a1", "1/2", "rho=28"),
        ("b0", "0/2", "rho=27"),
    ] {
        let mut a = ensemble_args(name);
        a.extend([
            "--shard".to_string(),
            shard.into(),
            "--set".into(),
            set.into(),
        ]);
        ok(&phaseflow_in(d, &a, &[]), name);
    }
    for (shards, says) in [
        (&["a0"][..], "missing shard 1/2"),
        (&["a0", "a0"], "given twice"),
        (&["a0", "b0"], "not a shard of the same run"),
    ] {
        let mut a = s(&["merge", "m.h5"]);
        a.extend(shards.iter().map(|x| x.to_string()));
        let o = phaseflow_in(d, &a, &[]);
        assert_eq!(o.status.code(), Some(1), "{shards:?}");
        assert!(stderr(&o).contains(says), "{shards:?}: {}", stderr(&o));
        assert!(!d.join("m.h5").exists());
    }
    ok(
        &phaseflow_in(d, &s(&["merge", "m.h5", "a1", "a0"]), &[]),
        "merge",
    );
}

/// `simulate --ensemble`, whole and as shard 1/2, stopped after some members (the testing aid:
/// as if killed after their rows were synced to `.NAME.partial`) with a row torn as a kill
/// mid-write leaves it: without `--resume` the partial file is refused (kept, not overwritten),
/// a resume with another setting is refused naming it, and `--resume` writes the bytes of an
/// uninterrupted run, taking the finished members over, and removes the partial file. Also:
/// stopped after its last member (nothing left to compute), `--resume` without a partial file,
/// a partial file whose first line was cut short, and `--resume` of a single trajectory.
#[test]
fn ensemble_resumes_after_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let with = |a: &[String], more: &[&str]| {
        let mut a = a.to_vec();
        a.extend(more.iter().map(|x| x.to_string()));
        a
    };
    for (name, shard, stop) in [
        ("out.h5", None, "2"),
        ("part", Some("1/2"), "1"),
        ("all.h5", None, "5"),
    ] {
        let mut args = ensemble_args(name);
        if let Some(sh) = shard {
            args.extend(["--shard".to_string(), sh.to_string()]);
        }
        let case = format!("{name} (shard {shard:?}, stopped after {stop})");
        let full = dir.path().join(format!("full-{name}"));
        let cut = dir.path().join(format!("cut-{name}"));
        std::fs::create_dir(&full).unwrap();
        std::fs::create_dir(&cut).unwrap();
        ok(&phaseflow_in(&full, &args, &[]), &case);
        assert!(!full.join(format!(".{name}.partial")).exists(), "{case}");
        let partial = cut.join(format!(".{name}.partial"));
        let o = phaseflow_in(&cut, &with(&args, &["--abort-after-members", stop]), &[]);
        assert_eq!(o.status.code(), Some(1), "{case}: {}", stderr(&o));
        for says in ["interrupted", "members are kept in", "--resume"] {
            assert!(stderr(&o).contains(says), "{case}: {}", stderr(&o));
        }
        assert!(!cut.join(name).exists(), "{case}");
        let kept = std::fs::read_to_string(&partial).unwrap();
        let stop: usize = stop.parse().unwrap();
        assert!(kept.lines().count() > stop, "{case}: {kept}");
        assert!(kept.starts_with("{\"format\":\"phaseflow-ensemble-partial\""));
        // a row cut short by a kill (member 3 belongs to both the whole run and shard 1/2)
        std::fs::write(&partial, format!("{kept}3\t{{\"state\":\"3ff00000")).unwrap();
        // without --resume, the partial file is refused and kept
        let o = phaseflow_in(&cut, &args, &[]);
        assert_eq!(o.status.code(), Some(1), "{case}");
        for says in [".partial", "--resume", "remove the file to start afresh"] {
            assert!(stderr(&o).contains(says), "{case}: {}", stderr(&o));
        }
        // a resume with another setting is refused, naming it
        for (changed, says) in [
            (&["--seed", "5"][..], "--seed is 5 here but 4 in it"),
            (&["--t-end", "3"][..], "--t-end is 3.0 here but 2.0 in it"),
        ] {
            let mut a = with(&args, &["--resume"]);
            let at = a.iter().position(|x| x == changed[0]).unwrap();
            a[at + 1] = changed[1].to_string();
            let o = phaseflow_in(&cut, &a, &[]);
            assert_eq!(o.status.code(), Some(1), "{case}: {changed:?}");
            for s in ["cannot resume", says, ".partial"] {
                assert!(
                    stderr(&o).contains(s),
                    "{case}: {changed:?}: {}",
                    stderr(&o)
                );
            }
            assert!(partial.exists() && !cut.join(name).exists(), "{case}");
        }
        let o = phaseflow_in(&cut, &with(&args, &["--resume"]), &[]);
        ok(&o, &format!("{case}, resumed"));
        assert!(
            stderr(&o).contains("members taken from the partial file"),
            "{case}: {}",
            stderr(&o)
        );
        same_bytes(&full.join(name), &cut.join(name), &case);
        assert!(!partial.exists(), "{case}: the partial file is left");
        assert!(!cut.join(format!(".{name}.lock")).exists(), "{case}");
    }
    // --resume with no partial file runs the whole ensemble (a requeued job's same command)
    let d = dir.path().join("again");
    std::fs::create_dir(&d).unwrap();
    let o = phaseflow_in(&d, &with(&ensemble_args("out.h5"), &["--resume"]), &[]);
    ok(&o, "--resume without a partial file");
    assert!(!stderr(&o).contains("partial file"), "{}", stderr(&o));
    same_bytes(
        &dir.path().join("full-out.h5").join("out.h5"),
        &d.join("out.h5"),
        "--resume without a partial file",
    );
    // a partial file without a complete first line (killed while creating it) is replaced
    std::fs::write(d.join(".new.h5.partial"), "{\"format\":\"phaseflow-ens").unwrap();
    let o = phaseflow_in(&d, &with(&ensemble_args("new.h5"), &["--json"]), &[]);
    ok(&o, "a torn first line");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["members_from_partial_file"].as_u64(), Some(0), "{v}");
    assert!(!d.join(".new.h5.partial").exists());
    // a single trajectory is not resumable
    let o = phaseflow_in(
        &d,
        &s(&[
            "simulate", "lorenz", "--t-end", "1", "--dt-out", "0.1", "--resume", "-o", "one.h5",
        ]),
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("a single trajectory is not resumable"),
        "{}",
        stderr(&o)
    );
}

/// `kill -9` in the middle of an ensemble: the same command with `--resume` continues from the
/// synced members and writes the bytes of an uninterrupted run.
#[test]
fn ensemble_resumes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &str| {
        s(&[
            "simulate",
            "lorenz",
            "--ensemble",
            "24",
            "--t-end",
            "300",
            "--dt-out",
            "0.1",
            "--noise",
            "0.1",
            "--seed",
            "2",
            "-q",
            "-o",
            out,
        ])
    };
    let full = dir.path().join("full");
    let cut = dir.path().join("cut");
    std::fs::create_dir(&full).unwrap();
    std::fs::create_dir(&cut).unwrap();
    ok(&phaseflow_in(&full, &args("e.h5"), &[]), "ensemble");
    let partial = cut.join(".e.h5.partial");
    kill_after_rows(&args("e.h5"), &cut, &partial, "the ensemble");
    assert!(
        !cut.join("e.h5").exists(),
        "killed before the end, yet an output exists"
    );
    let mut again = args("e.h5");
    again.push("--resume".into());
    ok(&phaseflow_in(&cut, &again, &[]), "resumed ensemble");
    same_bytes(
        &full.join("e.h5"),
        &cut.join("e.h5"),
        "ensemble after kill -9",
    );
    assert!(!partial.exists());
}
