//! Issue 21 (reliability under bad input and faults), the particle run path, through the command
//! line: `--resume` after kill -9 at several moments gives the uninterrupted file (every dataset
//! and attribute); a resume with other settings is refused, naming them; two runs on one output
//! never mix; a blow-up (here: image counters overflowing) is reported and leaves nothing behind;
//! an interruption keeps the partial file and says so; stale partial files are reported.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn phaseflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
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

/// Succeeds (exit 0) with no error line.
fn succeeds(o: &Output) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(!e.contains("error:"), "{e}");
}

/// Entries of `dir` whose names start with a dot (partial and lock files).
fn hidden_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// A value read back bit for bit: floats as their bits, integers widened, strings as they are.
fn bits(dtype: &hdf5::Datatype, read: impl Fn(Kind) -> Vec<String>) -> Vec<String> {
    use hdf5::types::TypeDescriptor as T;
    match dtype.to_descriptor().unwrap() {
        T::Float(_) => read(Kind::Float),
        T::Integer(_) => read(Kind::Int),
        T::Unsigned(_) => read(Kind::Unsigned),
        T::VarLenUnicode => read(Kind::Str),
        other => vec![format!("{other:?}")],
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Float,
    Int,
    Unsigned,
    Str,
}

fn attributes(loc: &hdf5::Location, at: &str, out: &mut BTreeMap<String, Vec<String>>) {
    for name in loc.attr_names().unwrap() {
        let a = loc.attr(&name).unwrap();
        let v = bits(&a.dtype().unwrap(), |k| match k {
            Kind::Float => a
                .read_raw::<f64>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits().to_string())
                .collect(),
            Kind::Int => a
                .read_raw::<i64>()
                .unwrap()
                .iter()
                .map(|v| v.to_string())
                .collect(),
            Kind::Unsigned => a
                .read_raw::<u64>()
                .unwrap()
                .iter()
                .map(|v| v.to_string())
                .collect(),
            Kind::Str => a
                .read_raw::<hdf5::types::VarLenUnicode>()
                .unwrap()
                .iter()
                .map(|v| v.to_string())
                .collect(),
        });
        out.insert(format!("{at}@{name}"), v);
    }
}

/// Every dataset (with its shape) and every attribute of every group and dataset of an HDF5
/// file, bit for bit, by path; `/parameters@command` and `/parameters@wall_seconds` (the
/// documented run-time attributes) left out.
fn contents(path: &Path) -> BTreeMap<String, Vec<String>> {
    fn walk(g: &hdf5::Group, at: &str, out: &mut BTreeMap<String, Vec<String>>) {
        attributes(g, if at.is_empty() { "/" } else { at }, out);
        for name in g.member_names().unwrap() {
            let full = format!("{at}/{name}");
            if let Ok(sub) = g.group(&name) {
                walk(&sub, &full, out);
            } else {
                let ds = g.dataset(&name).unwrap();
                attributes(&ds, &full, out);
                let mut v = vec![format!("shape {:?}", ds.shape())];
                v.extend(bits(&ds.dtype().unwrap(), |k| match k {
                    Kind::Float => ds
                        .read_raw::<f64>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits().to_string())
                        .collect(),
                    Kind::Int => ds
                        .read_raw::<i64>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_string())
                        .collect(),
                    Kind::Unsigned => ds
                        .read_raw::<u64>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_string())
                        .collect(),
                    Kind::Str => ds
                        .read_raw::<hdf5::types::VarLenUnicode>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_string())
                        .collect(),
                }));
                out.insert(full, v);
            }
        }
    }
    let f = hdf5::File::open(path).unwrap();
    let mut out = BTreeMap::new();
    walk(&f, "", &mut out);
    out.remove("/parameters@command");
    out.remove("/parameters@wall_seconds");
    out
}

/// Asserts that two files hold the same datasets and attributes (see [`contents`]), naming the
/// first difference.
fn same_file(a: &Path, b: &Path, what: &str) {
    let (ca, cb) = (contents(a), contents(b));
    assert!(ca.len() > 30, "{}: {} entries", a.display(), ca.len());
    assert_eq!(
        ca.keys().collect::<Vec<_>>(),
        cb.keys().collect::<Vec<_>>(),
        "{what}: the files hold different objects"
    );
    for (k, v) in &ca {
        assert!(&cb[k] == v, "{what}: {k} differs");
    }
}

/// A small ABP run with pair forces (so g(r) and the packing histogram are accumulated), two
/// replicas, a checkpoint at every frame; `-o` is appended by the caller.
fn abp_args(steps: &str) -> Vec<&str> {
    vec![
        "simulate",
        "abp_mips",
        "--set",
        "N=256",
        "--replicas",
        "2",
        "--steps",
        steps,
        "--every",
        "100",
        "--seed",
        "1",
        "-q",
        "--checkpoint-interval",
        "0",
    ]
}

fn with_output<'a>(args: &[&'a str], out: &'a Path) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["-o", out.to_str().unwrap()]);
    v
}

/// Item 6: a run killed (SIGKILL) at several moments and resumed gives the uninterrupted file,
/// every dataset and attribute bit for bit (the frame-averaged g(r) and packing histogram
/// included); the lock file of the killed process is taken over and nothing is left behind.
#[test]
fn resume_after_kill_9_at_several_moments_gives_the_uninterrupted_file() {
    let dir = tempfile::tempdir().unwrap();
    let args = abp_args("6000");
    let full = dir.path().join("full.h5");
    let started = Instant::now();
    succeeds(&phaseflow(&with_output(&args, &full)));
    let whole = started.elapsed();
    let mut interrupted = 0;
    for (k, fraction) in [0.1, 0.35, 0.6, 0.85].into_iter().enumerate() {
        let out = dir.path().join(format!("killed{k}.h5"));
        let mut child = spawn(&with_output(&args, &out));
        std::thread::sleep(whole.mul_f64(fraction));
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if running && !status.success() && out.exists() {
            // killed between publishing the complete file (checked below) and exiting: at most
            // its lock file, unlocked, remains (the next run on the path takes it over)
            let _ = std::fs::remove_file(dir.path().join(format!(".killed{k}.h5.lock")));
        } else if running && !status.success() {
            interrupted += 1;
            let partial = dir.path().join(format!(".killed{k}.h5.partial"));
            let resume = if partial.exists() {
                with_output(&[&args[..], &["--resume"]].concat(), &out)
            } else {
                // killed before the partial file was made: nothing to resume
                let o = phaseflow(&with_output(&[&args[..], &["--resume"]].concat(), &out));
                fails_once(&o, &["nothing to resume"]);
                with_output(&args, &out)
            };
            succeeds(&phaseflow(&resume));
        }
        assert!(out.exists());
        same_file(&full, &out, &format!("killed at {fraction} of the run"));
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} kills interrupted the run"
    );
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
}

/// Item 6, the case: stopped after 15 frames (the default checkpoint interval, so the
/// checkpoint is the one written when stopping) and resumed: the same file, accumulators
/// included; the message names the partial file kept.
#[test]
fn resume_after_a_stop_restores_the_frame_averages() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "simulate", "abp_mips", "--set", "N=400", "--steps", "3000", "--every", "100", "--seed",
        "1", "-q",
    ];
    let full = dir.path().join("full.h5");
    succeeds(&phaseflow(&with_output(&args, &full)));
    let ab = dir.path().join("ab.h5");
    let o = phaseflow(&with_output(
        &[&args[..], &["--abort-after-frames", "15"]].concat(),
        &ab,
    ));
    fails_once(&o, &[".ab.h5.partial kept", "continue with --resume"]);
    assert_eq!(hidden_entries(dir.path()), vec![".ab.h5.partial"]);
    succeeds(&phaseflow(&with_output(
        &[&args[..], &["--resume"]].concat(),
        &ab,
    )));
    same_file(&full, &ab, "stopped after 15 frames and resumed");
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
}

/// Item 8: a resume whose settings differ from the partial file's is refused, naming the
/// setting and both values; the partial file stays resumable.
#[test]
fn resume_with_other_settings_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.h5");
    let base = |seed: &'static str, steps: &'static str, every: &'static str| {
        vec![
            "simulate", "abp_mips", "--set", "N=100", "--steps", steps, "--every", every, "--seed",
            seed, "-q",
        ]
    };
    let ok = base("1", "1000", "100");
    let o = phaseflow(&with_output(
        &[&ok[..], &["--abort-after-frames", "3"]].concat(),
        &out,
    ));
    fails_once(&o, &["--resume"]);
    let partial = dir.path().join(".p.h5.partial");
    let before = std::fs::read(&partial).unwrap();
    for (args, needles) in [
        (base("2", "1000", "100"), vec!["--seed is 2 here but 1"]),
        (
            [&ok[..], &["--set", "Pe=10"]].concat(),
            vec!["parameter Pe is 10 here but 150"],
        ),
        (
            base("1", "1000", "500"),
            vec!["--every is 500 here but 100"],
        ),
        (
            base("1", "2000", "100"),
            vec!["--steps (or --t-end) is 2000 here but 1000"],
        ),
        (
            [&ok[..], &["--replicas", "2"]].concat(),
            vec!["--replicas is 2 here but 1"],
        ),
    ] {
        let o = phaseflow(&with_output(&[&args[..], &["--resume"]].concat(), &out));
        let mut n = needles.clone();
        n.extend(["cannot resume", ".p.h5.partial"]);
        fails_once(&o, &n);
        assert!(!out.exists());
        assert_eq!(
            std::fs::read(&partial).unwrap(),
            before,
            "the partial file changed"
        );
        assert_eq!(hidden_entries(dir.path()), vec![".p.h5.partial"]);
    }
    succeeds(&phaseflow(&with_output(
        &[&ok[..], &["--resume"]].concat(),
        &out,
    )));
    let full = dir.path().join("full.h5");
    succeeds(&phaseflow(&with_output(&ok, &full)));
    same_file(&full, &out, "resumed with the same settings");
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
}

/// Item 7: a second run on an output being written fails at once, naming the first; the first
/// publishes its own complete file; `--resume` on it is refused the same way.
#[test]
fn a_second_run_on_the_same_output_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("same.h5");
    let a_args = abp_args("8000");
    let mut a = spawn(&with_output(&a_args, &out));
    let lock = dir.path().join(".same.h5.lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(lock.exists() && dir.path().join(".same.h5.partial").exists()) {
        assert!(
            a.try_wait().unwrap().is_none(),
            "run A ended before B started"
        );
        assert!(Instant::now() < deadline, "run A made no partial file");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = a.id().to_string();
    let mut b_args = abp_args("8000");
    b_args[11] = "2"; // another seed: another file
    for extra in [&[][..], &["--resume"][..]] {
        let o = phaseflow(&with_output(&[&b_args[..], extra].concat(), &out));
        if a.try_wait().unwrap().is_some() {
            // A finished first (a very slow machine): B then ran alone, which is not the case
            panic!("run A finished before B was tried");
        }
        fails_once(
            &o,
            &[
                "another phaseflow run",
                &format!("process {pid}"),
                "choose another output",
            ],
        );
    }
    let status = a.wait().unwrap();
    assert!(status.success());
    let reference = dir.path().join("reference.h5");
    succeeds(&phaseflow(&with_output(&a_args, &reference)));
    same_file(&reference, &out, "the published file is run A's");
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
}

/// Items 9 and 11: an explicit step far beyond the trap's stability limit throws particles across
/// the box by whole box lengths: the run stops at the image-counter limit (no overflow into
/// nonsense) with a blow-up report, exit 1, and removes its partial file (written at frame 0), as
/// a pair-force instability does; `--every` beyond `--steps` is an error before any file.
#[test]
fn image_counter_overflow_is_a_blow_up_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trap.h5");
    let o = phaseflow(&with_output(
        &[
            "simulate", "trap", "--set", "k=0", "--set", "dt=1e6", "--steps", "200", "--every",
            "1", "-q",
        ],
        &out,
    ));
    fails_once(
        &o,
        &["crossed the periodic box", "blew up", "no output written"],
    );
    assert!(!out.exists());
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
    // the pair-force stability check: the same clean end (frame 0 was written before)
    let o = phaseflow(&with_output(
        &[
            "simulate", "abp_mips", "--set", "N=400", "--set", "dt=2e-3", "--steps", "2000",
            "--every", "10", "-q",
        ],
        &out,
    ));
    fails_once(&o, &["unstable at step", "no output written"]);
    assert!(!out.exists());
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
    let o = phaseflow(&with_output(
        &["simulate", "trap", "--steps", "10", "--every", "100", "-q"],
        &out,
    ));
    fails_once(&o, &["--every 100 is longer than the 10 recorded steps"]);
    assert!(!out.exists());
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
}

/// Item 11: Ctrl-C keeps the partial file and says so (exit 1); a later run without `--resume`
/// replaces it with a warning; a partial file without a checkpoint is restarted with a warning.
#[cfg(unix)]
#[test]
fn interruptions_keep_the_partial_file_and_stale_ones_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.h5");
    let args = abp_args("20000");
    let mut child = spawn(&with_output(&args, &out));
    let partial = dir.path().join(".c.h5.partial");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !partial.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: signalling a child process of this test
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    fails_once(
        &o,
        &[
            "interrupted after",
            ".c.h5.partial kept",
            "continue with --resume",
        ],
    );
    assert!(!out.exists());
    assert_eq!(hidden_entries(dir.path()), vec![".c.h5.partial"]);

    // a fresh run replaces the stale partial file and says so once
    let short = abp_args("500");
    let o = phaseflow(&with_output(&short, &out));
    succeeds(&o);
    let e = stderr(&o);
    assert_eq!(e.matches("warning: replacing").count(), 1, "{e}");
    assert!(e.contains(".c.h5.partial") && e.contains("--resume"), "{e}");
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());

    // a partial file that is not even HDF5 (killed while being created): starts afresh
    let reference = out.clone();
    let again = dir.path().join("d.h5");
    std::fs::write(dir.path().join(".d.h5.partial"), b"").unwrap();
    let o = phaseflow(&with_output(&[&short[..], &["--resume"]].concat(), &again));
    succeeds(&o);
    let e = stderr(&o);
    assert_eq!(e.matches("starting from the beginning").count(), 1, "{e}");
    same_file(
        &reference,
        &again,
        "restarted from a partial file without checkpoint",
    );
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
}

/// Unmounts a test file system when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Item 11: a full disk during a particle run is an error printed once (exit 1) that leaves no
/// partial or lock file. Tried where a small tmpfs can be mounted (as root in a container that
/// allows it); the test says so when not.
#[cfg(unix)]
#[test]
fn a_full_disk_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=300k", "tmpfs"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot mount a small tmpfs here: the full disk is not tried");
        return;
    }
    let _guard = Mounted(dir.path().to_path_buf());
    let out = dir.path().join("f.h5");
    // frames alone beyond the free space (31 frames of 20 kB in 300 kB): refused up front
    let o = phaseflow(&with_output(&abp_args("3000"), &out));
    fails_once(&o, &["the output would take at least", "free"]);
    assert!(!out.exists());
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
    // frames that fit (11), the whole file (checkpoints, observables) does not: fails in the run
    let o = phaseflow(&with_output(&abp_args("1000"), &out));
    fails_once(&o, &["No space left on device"]);
    assert!(!out.exists());
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
}

/// Ctrl-C or SIGTERM within a long frame stops the run at once: the token was read only between
/// frames, so a run whose frames are long (here one frame of 10^11 steps) ignored SIGTERM for
/// as long as the frame lasted (45 min, measured). It now stops within a few hundred steps,
/// keeping the partial file resumable from its last checkpoint.
#[cfg(unix)]
#[test]
fn a_signal_within_a_long_frame_stops_the_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("long.h5");
    let args = [
        "simulate",
        "trap",
        "--steps",
        "100000000000",
        "--every",
        "100000000000",
        "-q",
    ];
    let mut child = spawn(&with_output(&args, &out));
    let partial = dir.path().join(".long.h5.partial");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !partial.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling a child process of this test
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    fails_once(&o, &["interrupted after 1 frames", ".long.h5.partial kept"]);
    assert!(!out.exists());
    let mut left = hidden_entries(dir.path());
    left.sort();
    assert_eq!(left, vec![".long.h5.partial"]);
}
