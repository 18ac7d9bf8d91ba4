//! Issue 21, items 9 (hyperparameters), 10 and 12 (`forecast bench` with external models),
//! through the command line: a failed or changed pair is computed again, an external program
//! (and everything it started) is killed on time-out and on Ctrl-C, its scratch folder removed,
//! and bad settings are errors naming the setting and its valid range.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `phaseflow ARGS` in the repository root, with `TMPDIR` set (the external scratch folders).
fn phaseflow_in(tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .env("TMPDIR", tmp)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with exit status 1 and one `error:` line; every needle appears once.
fn fails_once(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.matches("error:").count(), 1, "{e}");
    for n in needles {
        assert_eq!(e.matches(n).count(), 1, "'{n}' in: {e}");
    }
}

/// A small benchmark of Lorenz (train 200, context 50, horizon 20, 2 test trajectories) into
/// `out`, plus `extra` arguments.
fn bench_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "forecast",
        "bench",
        "--systems",
        "lorenz",
        "--train",
        "200",
        "--context",
        "50",
        "--horizon",
        "20",
        "--test-ics",
        "2",
        "-q",
        "-o",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

/// An external model in plain sh that forecasts 20 rows of zeros for Lorenz (D = 3).
const ZEROS: &str = "s='[0,0,0]'; i=1; while [ $i -lt 20 ]; do s=\"$s,[0,0,0]\"; i=$((i+1)); done; printf '{\"forecast\": [%s]}' \"$s\" > forecast.json";

/// The `--json` summary's (computed, reused, failed) counts.
fn counts(o: &Output) -> (u64, u64, usize) {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    (
        v["computed"].as_u64().unwrap(),
        v["reused"].as_u64().unwrap(),
        v["failed"].as_array().unwrap().len(),
    )
}

/// Whether the process `pid` still runs (a zombie waiting for its new parent to reap it has
/// terminated: it counts as gone).
#[cfg(unix)]
fn running(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    exists && !zombie
}

/// Waits up to 5 s for `pid` to be gone (SIGKILL is asynchronous).
#[cfg(unix)]
fn gone(pid: i32) -> bool {
    let t = Instant::now();
    while running(pid) {
        if t.elapsed() > Duration::from_secs(5) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Names in `dir` starting with `phaseflow-external-`.
fn scratch_folders(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("phaseflow-external-"))
        .collect()
}

/// A shell script that starts a long-sleeping grandchild, writes its pid to `pid_file`, and
/// sleeps itself.
#[cfg(unix)]
fn hanging_script(dir: &Path, pid_file: &Path) -> String {
    let script = dir.join("hang.sh");
    std::fs::write(
        &script,
        format!(
            "sleep 300 &\necho $! > '{}.tmp'\nmv '{0}.tmp' '{0}'\nsleep 300\n",
            pid_file.display()
        ),
    )
    .unwrap();
    format!("hang=sh '{}'", script.display())
}

/// Item 10: a failed pair is computed again when the command is fixed (it was reused: "0
/// computed, 1 reused", exit 0, the error kept); results record the command, and a changed command
/// is computed again too.
#[test]
fn failed_or_changed_external_results_are_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let o_ = out.to_str().unwrap();
    let t = dir.path();
    let failing = "bad=echo broken model >&2; exit 3";
    let o = phaseflow_in(t, &bench_args(o_, &["--external", failing, "--json"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(counts(&o), (0, 0, 1));
    // with --json the failure is reported in the summary on stdout, the error line on stderr
    assert!(String::from_utf8_lossy(&o.stdout).contains("broken model"));
    assert_eq!(stderr(&o).matches("error:").count(), 1, "{}", stderr(&o));
    let working = format!("bad={ZEROS}");
    let o = phaseflow_in(t, &bench_args(o_, &["--external", &working, "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(counts(&o), (1, 0, 0), "the failed result was reused");
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results/lorenz/bad.json")).unwrap(),
    )
    .unwrap();
    assert!(result["error"].is_null(), "{result}");
    assert_eq!(result["command"].as_str(), Some(ZEROS));
    assert_eq!(result["cases"].as_array().unwrap().len(), 2);
    // the same command: reused; another command under the same name: computed again
    let o = phaseflow_in(t, &bench_args(o_, &["--external", &working, "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(counts(&o), (0, 1, 0));
    let changed = format!("bad=true; {ZEROS}");
    let o = phaseflow_in(t, &bench_args(o_, &["--external", &changed, "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        counts(&o),
        (1, 0, 0),
        "a changed command reused the old result"
    );
    assert!(scratch_folders(t).is_empty());
}

/// Item 12: `--external-timeout` bounds a call; on time-out the whole process group of the
/// program is killed (a grandchild it started too) and its scratch folder is removed.
#[cfg(unix)]
#[test]
fn a_timed_out_external_model_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let out = t.join("bench");
    let pid_file = t.join("grandchild.pid");
    let hang = hanging_script(t, &pid_file);
    let start = Instant::now();
    let o = phaseflow_in(
        t,
        &bench_args(
            out.to_str().unwrap(),
            &["--external", &hang, "--external-timeout", "1"],
        ),
    );
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the time-out did not act"
    );
    fails_once(
        &o,
        &[
            "timed out after 1 s",
            "1 data sets or (system, model) pairs failed",
        ],
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(gone(pid), "the grandchild {pid} still runs");
    assert!(scratch_folders(t).is_empty(), "{:?}", scratch_folders(t));
}

/// Item 12: Ctrl-C (SIGINT) during an external call kills the program's process group, removes
/// its scratch folder, writes no result for the unfinished pair and exits 1 saying so.
#[cfg(unix)]
#[test]
fn sigint_kills_the_external_program_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let out = t.join("bench");
    let pid_file = t.join("grandchild.pid");
    let hang = hanging_script(t, &pid_file);
    let args = bench_args(out.to_str().unwrap(), &["--external", &hang]);
    let child = Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(&args)
        .env("TMPDIR", t)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !pid_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the external model never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(scratch_folders(t).len(), 1, "{:?}", scratch_folders(t));
    // SAFETY: sends SIGINT to the phaseflow process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    fails_once(&o, &["interrupted"]);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(gone(pid), "the grandchild {pid} still runs");
    assert!(scratch_folders(t).is_empty(), "{:?}", scratch_folders(t));
    assert!(!out.join("results/lorenz/hang.json").exists());
}

/// Item 12: a program that succeeds but leaves a background process (holding its stderr open)
/// does not hold up the run, and the process is killed with its group when the call ends.
#[cfg(unix)]
#[test]
fn a_background_process_of_a_finished_program_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let pid_file = t.join("background.pid");
    let model = format!("bg=sleep 300 & echo $! > '{}'; {ZEROS}", pid_file.display());
    let start = Instant::now();
    let o = phaseflow_in(
        t,
        &bench_args(t.join("bench").to_str().unwrap(), &["--external", &model]),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the run waited for the background process"
    );
    // one call per test trajectory: the pid of the last one
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(gone(pid), "the background process {pid} still runs");
    assert!(scratch_folders(t).is_empty(), "{:?}", scratch_folders(t));
}

/// Item 12: scratch folders of a process that no longer exists (killed outright) are removed by
/// the next run with external models; those of live processes are left alone.
#[cfg(unix)]
#[test]
fn stale_scratch_folders_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let stale = t.join(format!("phaseflow-external-{dead_pid}-0"));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("train.npy"), b"left over").unwrap();
    let live = t.join(format!("phaseflow-external-{}-0", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    let out = t.join("bench");
    let working = format!("z={ZEROS}");
    let o = phaseflow_in(
        t,
        &bench_args(out.to_str().unwrap(), &["--external", &working]),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists(), "the stale scratch folder is still there");
    assert!(live.exists(), "a live process's folder was removed");
}

/// Item 12 and item 9: bad `--external-timeout` values, an infinite `--vpt-threshold` (it wrote
/// a result that could not be read back) and out-of-range `--hyper` values (`nvar.order=-1` was
/// accepted) are errors naming the setting and its valid range, before any file is made.
#[test]
fn bad_timeouts_and_hyperparameters_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let out = t.join("bench");
    let o_ = out.to_str().unwrap();
    for v in ["0", "-1", "nan", "inf"] {
        let o = phaseflow_in(
            t,
            &bench_args(o_, &["--external", "x=true", "--external-timeout", v]),
        );
        fails_once(
            &o,
            &["--external-timeout", "must be a positive number of seconds"],
        );
    }
    for v in ["inf", "nan", "0"] {
        let o = phaseflow_in(
            t,
            &bench_args(o_, &["--models", "naive", "--vpt-threshold", v]),
        );
        fails_once(&o, &["--vpt-threshold", "must be a finite positive number"]);
    }
    for (hyper, needle) in [
        ("nvar.order=-1", "nvar.order = -1: must be 1 or 2"),
        ("nvar.order=nan", "nvar.order = NaN: must be 1 or 2"),
        (
            "nvar.lags=0",
            "nvar.lags = 0: must be an integer from 1 to 1000",
        ),
        (
            "nvar.lags=2.5",
            "nvar.lags = 2.5: must be an integer from 1 to 1000",
        ),
        (
            "esn.units=1e9",
            "esn.units = 1000000000: must be an integer from 1 to 10000",
        ),
        ("esn.leak=0", "esn.leak = 0: must be a number > 0 and ≤ 1"),
        (
            "nvar.ridge=-1",
            "nvar.ridge = -1: must be a finite number ≥ 0",
        ),
        (
            "linear.standardise=2",
            "linear.standardise = 2: must be 0 or 1",
        ),
        (
            "random_features.lengthscale=inf",
            "must be a finite number > 0",
        ),
        ("nvar.width=3", "nvar has no hyperparameter 'width'"),
    ] {
        let model = hyper.split('.').next().unwrap();
        let o = phaseflow_in(t, &bench_args(o_, &["--models", model, "--hyper", hyper]));
        fails_once(&o, &[&format!("--hyper '{hyper}'"), needle]);
    }
    assert!(!out.exists(), "an output directory was made");
}

/// The same class of hole in the data-set settings: infinite sampling or noise made a data set
/// (and then an unreadable result, "invalid type: null"), and `--train 1e11` aborted on a failed
/// 800 GB allocation. Each is an error naming the setting or the documented size limit.
#[test]
fn data_set_settings_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let out = t.join("data");
    let o_ = out.to_str().unwrap();
    for (flag, value, needle) in [
        (
            "--per-period",
            "inf",
            "points per period must be a finite number ≥ 2",
        ),
        ("--noise", "inf", "got noise inf"),
        ("--noise", "nan", "got noise NaN"),
        (
            "--train",
            "100000000000",
            "exceeds the limit of 1e8 values of a data set",
        ),
        (
            "--test-ics",
            "100000000",
            "exceeds the limit of 1e8 values of a data set",
        ),
    ] {
        let o = phaseflow_in(
            t,
            &[
                "forecast",
                "data",
                "--systems",
                "lorenz",
                "-q",
                "-o",
                o_,
                flag,
                value,
            ],
        );
        fails_once(&o, &[needle]);
    }
    // within the step limit but not with the system's 3 components: named per system
    let o = phaseflow_in(
        t,
        &[
            "forecast",
            "data",
            "--systems",
            "lorenz",
            "-q",
            "-o",
            o_,
            "--train",
            "40000000",
        ],
    );
    fails_once(&o, &["3 components exceed the limit of 1e8 values"]);
    assert!(!out.join("data/lorenz.h5").exists());
}
