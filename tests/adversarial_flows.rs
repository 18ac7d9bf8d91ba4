//! Issue 21 (reliability under bad input and faults), the flow outputs (ODE/SDE/DDE/map
//! trajectories), through the command line: exit code, the message (printed once), and that
//! nothing is destroyed or left behind.

use std::path::Path;
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

/// Succeeds (exit status 0).
fn succeeds(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
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

/// Entries of `dir` whose names start with a dot (phaseflow's temporaries and partial files).
fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// `/state`'s chunk shape.
fn state_chunks(path: &Path) -> Vec<usize> {
    let f = hdf5::File::open(path).unwrap();
    f.dataset("state").unwrap().chunk().unwrap()
}

/// Item 15: `/state` was chunked in (4096, D) blocks whatever the length, so 10 points of a
/// 1000-variable Lorenz-96 made a 33 MB file for 80 KB of data. Chunks now follow the shape
/// (about 1 MiB, never longer than the trajectory); a long narrow trajectory keeps long chunks.
#[test]
fn chunks_follow_the_shape_of_the_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.h5");
    succeeds(&phaseflow(&[
        "simulate",
        "lorenz96",
        "--set",
        "dimension=1000",
        "--points",
        "10",
        "-q",
        "-o",
        wide.to_str().unwrap(),
    ]));
    let data = 10 * 1000 * 8;
    let size = std::fs::metadata(&wide).unwrap().len() as usize;
    // the rest is the attributes (1000 variable names twice, the definition, …)
    assert!(size < 4 * data, "{size} bytes for {data} bytes of data");
    assert_eq!(state_chunks(&wide), [10, 1000]);
    let narrow = dir.path().join("narrow.h5");
    succeeds(&phaseflow(&[
        "simulate",
        "lorenz",
        "--points",
        "10000",
        "-q",
        "-o",
        narrow.to_str().unwrap(),
    ]));
    assert_eq!(state_chunks(&narrow), [4096, 3]);
    let f = hdf5::File::open(&narrow).unwrap();
    assert_eq!(f.dataset("state").unwrap().shape(), [10000, 3]);
    assert!(hidden_entries(dir.path()).is_empty());
}

/// `/time` and `/state` of a trajectory file, as f64 bits (`/state` flattened).
fn time_and_state(path: &Path) -> (Vec<u64>, Vec<u64>) {
    let f = hdf5::File::open(path).unwrap();
    let bits = |name: &str| -> Vec<u64> {
        let v = f.dataset(name).unwrap().read_raw::<f64>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    };
    (bits("time"), bits("state"))
}

/// Item 3: a single trajectory streams to its file (10,001 points: three chunks of 4096 rows)
/// and holds the same data as the in-memory path (an ensemble of one member from the same
/// initial condition, computed whole and then written).
#[test]
fn a_single_trajectory_streams_the_data_of_the_in_memory_path() {
    let dir = tempfile::tempdir().unwrap();
    let streamed = dir.path().join("streamed.h5");
    let whole = dir.path().join("whole.h5");
    let ic = dir.path().join("ic.txt");
    std::fs::write(&ic, "1, 2, 3\n").unwrap();
    let grid = ["--t-end", "100", "--dt-out", "0.01", "-q", "-o"];
    let mut a = vec!["simulate", "lorenz", "--ic", "1,2,3"];
    a.extend(grid);
    a.push(streamed.to_str().unwrap());
    succeeds(&phaseflow(&a));
    let mut b = vec!["simulate", "lorenz", "--ic-file", ic.to_str().unwrap()];
    b.extend(grid);
    b.push(whole.to_str().unwrap());
    succeeds(&phaseflow(&b));
    let (t1, x1) = time_and_state(&streamed);
    let (t2, x2) = time_and_state(&whole);
    assert_eq!(t1.len(), 10001);
    assert_eq!(x1.len(), 3 * 10001);
    assert_eq!((t1, x1), (t2, x2));
    assert!(hidden_entries(dir.path()).is_empty());
}

/// Item 3 for the library: [`Run::write`] (streaming) writes what [`Run::run`] followed by
/// `io::write_trajectory` writes, every root attribute included.
#[test]
fn run_write_equals_run_then_write_trajectory() {
    use phaseflow::io::{read_trajectory, write_trajectory, AttrValue};
    use phaseflow::simulate::Run;
    use phaseflow::systems::{CompiledSystem, Overrides};
    let dir = tempfile::tempdir().unwrap();
    let sys = CompiledSystem::load("lorenz", &Overrides::default()).unwrap();
    let run = Run::new(&sys).span(50.0, 0.005).burn_in(1.0);
    let extra = [("command_line".to_string(), AttrValue::Str("x".into()))].into();
    let streamed = dir.path().join("streamed.h5");
    let w = run.write(&streamed, &extra).unwrap();
    assert_eq!(w.frames, 10001);
    let mut out = run.run().unwrap();
    out.trajectory.attrs.extend(extra);
    let whole = dir.path().join("whole.h5");
    write_trajectory(&whole, &out.trajectory).unwrap();
    // through Debug: the attribute `step` is NaN here (no initial step given)
    let a = format!("{:?}", read_trajectory(&streamed).unwrap());
    let b = format!("{:?}", read_trajectory(&whole).unwrap());
    assert!(a.contains("\"step\": F64(NaN)") && a.contains("command_line"));
    assert!(a == b, "the streamed file differs from the in-memory one");
    assert_eq!(w.solver, out.solver);
}

/// Item 3: a run whose output cannot be held is refused before anything is allocated or
/// written, naming the size. `--t-end 1e7 --dt-out 1e-3` aborted with "memory allocation of
/// 80000000008 bytes failed": a single trajectory now streams in constant memory, and a file
/// larger than the free disk space (1e10 points: 320 GB; 1e15 points: 32 PB) is refused up
/// front; an ensemble or an embedding is held in memory whole and refused beyond the machine's
/// memory.
#[test]
fn outputs_too_large_are_refused_up_front_with_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let o_ = out.to_str().unwrap();
    let free = phaseflow::io::available_bytes(&out).expect("statvfs");
    let o = phaseflow(&[
        "simulate", "lorenz", "--t-end", "1e9", "--dt-out", "1e-3", "-o", o_,
    ]);
    fails_once(&o, &["32.0 TB", "1e12 points × 4 values × 8 bytes", "free"]);
    // the case, where the disk cannot hold it (elsewhere it runs, streaming)
    if free < 320_000_000_000 {
        let o = phaseflow(&[
            "simulate", "lorenz", "--t-end", "1e7", "--dt-out", "1e-3", "-o", o_,
        ]);
        fails_once(
            &o,
            &["320.0 GB", "1e10 points × 4 values × 8 bytes", "free"],
        );
    } else {
        eprintln!("{free} bytes free: the issue's 320 GB case is not tried");
    }
    // beyond the memory of any test machine (the budget is the machine's memory)
    let o = phaseflow(&[
        "simulate",
        "lorenz",
        "--ensemble",
        "1000",
        "--t-end",
        "1e6",
        "--dt-out",
        "1e-3",
        "-o",
        o_,
    ]);
    fails_once(
        &o,
        &[
            "24.0 TB",
            "1e9 points × 3001 values × 8 bytes",
            "more than the limit of",
        ],
    );
    let o = phaseflow(&[
        "simulate",
        "mackey_glass",
        "--embed",
        "10",
        "--burn-in",
        "1000",
        "--t-end",
        "1e11",
        "--dt-out",
        "0.1",
        "-o",
        o_,
    ]);
    fails_once(
        &o,
        &[
            "the embedded output would take 104.0 TB",
            "more than the limit of",
        ],
    );
    assert!(!out.exists());
    assert!(hidden_entries(dir.path()).is_empty());
}

/// Item 3: the disk fills during streaming (a file-size limit, `ulimit -f`, makes writes fail
/// as a full disk does): one clear error, the temporary removed, no output.
#[cfg(unix)]
#[test]
fn a_full_disk_during_streaming_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let o = Command::new("sh")
        .arg("-c")
        // 200 blocks (100-200 KB): the run's 32 MB cannot fit; SIGXFSZ ignored, so writes fail
        .arg("ulimit -f 200; trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_phaseflow"))
        .args([
            "simulate", "lorenz", "--t-end", "1000", "--dt-out", "1e-3", "-q", "-o",
        ])
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    fails_once(&o, &["o.h5: write /", "File too large"]);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!out.exists());
    assert!(hidden_entries(dir.path()).is_empty());
}

/// Starts a long flow run writing to `out` and returns it once its temporary exists.
#[cfg(unix)]
fn long_run_started(out: &Path) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args([
            "simulate",
            "lorenz96",
            "--set",
            "dimension=200",
            "--t-end",
            "1e4",
            "--dt-out",
            "0.1",
            "-q",
            "-o",
        ])
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dir = out.parent().unwrap();
    let t = std::time::Instant::now();
    while hidden_entries(dir).is_empty() {
        assert!(t.elapsed().as_secs() < 30, "no temporary appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// Item 11: Ctrl-C during a flow run removes its temporary (exit 1, "interrupted" once); so do
/// the termination signals of a scheduler or `timeout` (SIGTERM: Slurm's `scancel` and time
/// limit; SIGHUP: a closed terminal).
#[cfg(unix)]
#[test]
fn ctrl_c_during_a_flow_run_leaves_nothing() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.h5");
        let child = long_run_started(&out);
        // SAFETY: sends a signal to the child we started.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let o = child.wait_with_output().unwrap();
        fails_once(&o, &["interrupted"]);
        assert!(!out.exists(), "signal {signal}");
        assert!(hidden_entries(dir.path()).is_empty(), "signal {signal}");
    }
}

/// Item 11: a flow run killed by `kill -9` cannot remove its temporary; the next run writing to
/// the same destination removes it, and leaves a live process's temporary alone.
#[cfg(unix)]
#[test]
fn the_next_run_removes_what_a_killed_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let mut child = long_run_started(&out);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = hidden_entries(dir.path());
    assert_eq!(left, [format!(".o.h5.tmp-{}-0", child.id())]);
    // a temporary of a live process (this test's) with the same naming scheme
    let live = format!(".o.h5.tmp-{}-7", std::process::id());
    std::fs::write(dir.path().join(&live), b"being written").unwrap();
    succeeds(&phaseflow(&[
        "simulate",
        "lorenz",
        "--points",
        "300",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]));
    assert!(out.exists());
    assert_eq!(hidden_entries(dir.path()), [live]);
}

/// Item 14: negative numbers are values, not options (`--t-end -5` was read as an option), and
/// every numeric setting of the flow commands out of range (negative, zero, NaN, infinite) is
/// one clear error naming it; `invariants --transient inf` ran forever.
#[test]
fn numeric_settings_out_of_range_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let o_ = out.to_str().unwrap();
    for (args, message) in [
        (
            &["--t-end", "-5", "--dt-out", "0.1"][..],
            "--t-end must be a finite number > 0, got -5",
        ),
        (
            &["--t-end", "5", "--dt-out", "0"],
            "--dt-out must be a finite number > 0, got 0",
        ),
        (
            &["--t-end", "NaN", "--dt-out", "0.1"],
            "--t-end must be a finite number > 0, got NaN",
        ),
        (
            &["--t-end", "inf", "--dt-out", "0.1"],
            "--t-end must be a finite number > 0, got inf",
        ),
        (
            &["--t-end", "5", "--dt-out", "inf"],
            "--dt-out must be a finite number > 0, got inf",
        ),
        (&["--rtol", "-1e-8"], "--rtol must be a finite number > 0"),
        (
            &["--atol", "nan"],
            "--atol must be a finite number > 0, got NaN",
        ),
        (
            &["--step", "-0.1"],
            "--step must be a finite number > 0, got -0.1",
        ),
        (
            &["--max-abs", "-1"],
            "--max-abs must be a number > 0, got -1",
        ),
        (
            &["--burn-in", "-3"],
            "--burn-in must be a non-negative number, got -3",
        ),
        // 1e600 points: the count saturated and wrapped to "records 0 point"
        (
            &["--t-end", "1e300", "--dt-out", "1e-300"],
            "output points requested; a run records at most 2^53",
        ),
        (
            &["--points", "18446744073709551615"],
            "1.84e19 output points requested",
        ),
    ] {
        let mut a = vec!["simulate", "lorenz", "-q", "-o", o_];
        a.extend(args);
        fails_once(&phaseflow(&a), &[message]);
    }
    for (args, message) in [
        (
            &["--t-end", "-1"][..],
            "--t-end must be a finite number > 0, got -1",
        ),
        (
            &["--transient", "inf"],
            "--transient must be a finite number >= 0, got inf",
        ),
        (
            &["--qr-interval", "0"],
            "--qr-interval must be a finite number > 0, got 0",
        ),
        (
            &["--rtol", "-1"],
            "--rtol must be a finite number >= 0, got -1",
        ),
    ] {
        let mut a = vec!["invariants", "lorenz", "--correlation-points", "0"];
        a.extend(args);
        fails_once(&phaseflow(&a), &[message]);
    }
    let data = dir.path().join("lorenz.h5");
    let d = data.to_str().unwrap();
    succeeds(&phaseflow(&[
        "simulate", "lorenz", "--points", "300", "-q", "-o", d,
    ]));
    fails_once(
        &phaseflow(&["series", d, "--dt", "-1"]),
        &["--dt must be a finite number > 0, got -1"],
    );
    assert!(!out.exists());
    assert!(hidden_entries(dir.path()).is_empty());
}

/// Item 14: files are read by their content. `series` on a trajectory named `.partial` or
/// `.hdf5` said "needs --dt" (it took them for text); `series` and `epr --data` on a truncated
/// or non-HDF5 file said "needs --dt" / "needs --model DIR" instead of what is wrong with it.
#[test]
fn inputs_are_read_by_content_and_their_faults_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lorenz.h5");
    let d = data.to_str().unwrap();
    succeeds(&phaseflow(&[
        "simulate", "lorenz", "--points", "1000", "-q", "-o", d,
    ]));
    let reference = phaseflow(&["series", d, "--json"]);
    succeeds(&reference);
    for name in ["lorenz.partial", "lorenz.hdf5", "lorenz"] {
        let copy = dir.path().join(name);
        std::fs::copy(&data, &copy).unwrap();
        let o = phaseflow(&["series", copy.to_str().unwrap(), "--json"]);
        succeeds(&o);
        assert_eq!(o.stdout, reference.stdout, "{name}");
    }
    let bytes = std::fs::read(&data).unwrap();
    let truncated = dir.path().join("truncated.h5");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let text = dir.path().join("text.h5");
    std::fs::write(&text, "1.0\n2.0\n").unwrap();
    let empty = dir.path().join("empty.h5");
    std::fs::write(&empty, "").unwrap();
    let binary = dir.path().join("binary.dat");
    std::fs::write(&binary, [0u8, 159, 146, 150, 255, 0, 1]).unwrap();
    for (file, message) in [
        (&truncated, "truncated or damaged"),
        (&text, "not an HDF5 file"),
        (&empty, "the file is empty"),
    ] {
        let f = file.to_str().unwrap();
        for args in [vec!["series", f], vec!["epr", "--data", f]] {
            let o = phaseflow(&args);
            fails_once(&o, &[f, message]);
            assert!(!stderr(&o).contains("--model") && !stderr(&o).contains("--dt"));
        }
    }
    let b = binary.to_str().unwrap();
    fails_once(
        &phaseflow(&["series", b]),
        &[b, "neither an HDF5 trajectory nor a text file of numbers"],
    );
    // a valid flow trajectory without a model: the true reason
    fails_once(
        &phaseflow(&["epr", "--data", d]),
        &[
            "a flow trajectory, not a particle (H5MD) file",
            "--model DIR",
        ],
    );
    assert!(hidden_entries(dir.path()).is_empty());
}

/// Item 3: a trajectory file read whole (plot, series, epr) whose data exceed the machine's
/// memory is refused before the allocation, naming the size (a chunked file with no chunks
/// written is tiny on disk whatever its shape).
#[test]
fn files_too_large_to_read_whole_are_refused_with_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.h5");
    {
        let f = hdf5::File::create(&huge).unwrap();
        let t = 1_000_000_000_000usize;
        f.new_dataset::<f64>()
            .chunk(4096)
            .shape(t)
            .create("time")
            .unwrap();
        f.new_dataset::<f64>()
            .chunk((4096, 3))
            .shape((t, 3))
            .create("state")
            .unwrap();
    }
    assert!(std::fs::metadata(&huge).unwrap().len() < 100_000);
    let h = huge.to_str().unwrap();
    let png = dir.path().join("p.png");
    for args in [
        vec!["plot", h, "-o", png.to_str().unwrap()],
        vec!["series", h],
    ] {
        let o = phaseflow(&args);
        fails_once(
            &o,
            &["32.0 TB (1e12 times × 4 values × 8 bytes)", "memory budget"],
        );
    }
    assert!(!png.exists());
    assert_eq!(hidden_entries(dir.path()), Vec::<String>::new());
}

/// Item 14: `epr --flow-dt` takes a negative value as a value and refuses it (and NaN) by name
/// before any work; nothing is written.
#[cfg(feature = "learn")]
#[test]
fn epr_flow_step_out_of_range_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("trap.h5");
    let d = data.to_str().unwrap();
    succeeds(&phaseflow(&[
        "simulate",
        "trap",
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
        d,
    ]));
    let cfg = dir.path().join("train.toml");
    std::fs::write(
        &cfg,
        "[network]\nkind = \"mlp\"\nhidden = [8]\n\n[training]\nsteps = 10\nbatch = 8\nwarmup = 2\n",
    )
    .unwrap();
    let model = dir.path().join("model");
    let m = model.to_str().unwrap();
    succeeds(&phaseflow(&[
        "train",
        cfg.to_str().unwrap(),
        "--data",
        d,
        "-o",
        m,
        "-q",
    ]));
    let flow = dir.path().join("flow.h5");
    let f = flow.to_str().unwrap();
    for (v, shown) in [("-1", "-1"), ("nan", "NaN"), ("0", "0")] {
        let o = phaseflow(&[
            "epr",
            "--model",
            m,
            "--data",
            d,
            "--flow-out",
            f,
            "--flow-dt",
            v,
            "-q",
        ]);
        let message = format!("--flow-dt must be a finite number > 0, got {shown}");
        fails_once(&o, &[&message]);
    }
    assert!(!flow.exists());
    assert!(hidden_entries(dir.path()).is_empty());
}

/// A delay far shorter than the run: steps are capped at the smallest delay, so `τ = 1e-300`
/// needed ~6e301 steps and ran until the step limit (over a minute). It is refused before the
/// first step, naming the delay and the step limit, with nothing left behind.
#[test]
fn a_delay_too_short_for_the_step_limit_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mg.h5");
    let o = phaseflow(&[
        "simulate",
        "mackey_glass",
        "--set",
        "tau=1e-300",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    fails_once(&o, &["τ = 1e-300", "limit of 100000000 steps"]);
    assert!(!out.exists());
    assert!(hidden_entries(dir.path()).is_empty());
}

/// Item 14: a negative number is a value in every subcommand (clap read `-5` as an unknown
/// option, exit 2, whatever the option), so the range check names the setting.
#[test]
fn negative_numbers_reach_the_range_checks_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let o_ = out.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "simulate",
                "trap",
                "--steps",
                "10",
                "--checkpoint-interval",
                "-5",
                "-o",
                o_,
            ],
            "--checkpoint-interval must be a non-negative number of seconds, got -5",
        ),
        (
            &[
                "simulate", "lorenz", "--t-end", "-5", "--dt-out", "0.1", "-o", o_,
            ],
            "--t-end must be a finite number > 0, got -5",
        ),
        (
            &[
                "simulate",
                "lorenz",
                "--points",
                "100",
                "--burn-in",
                "-1",
                "-o",
                o_,
            ],
            "--burn-in",
        ),
    ];
    for (args, needle) in cases {
        fails_once(&phaseflow(args), &[needle]);
        assert!(!out.exists());
        assert!(hidden_entries(dir.path()).is_empty());
    }
}

/// Requests that could never finish are refused before any file is made: a burn-in so long that
/// the recorded times are no longer distinct in double precision (`--burn-in 1e308` integrated
/// for minutes), a particle run of more than 2^53 steps (`--t-end 1e308`: 2^64 steps), and a
/// particle output larger than the free disk (`--steps 1e11 --every 1`).
#[test]
fn requests_that_cannot_finish_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.h5");
    let o_ = out.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &[
                "simulate",
                "lorenz",
                "--burn-in",
                "1e308",
                "--points",
                "20",
                "-o",
                o_,
            ],
            &["near t = 1e308", "below the resolution of double precision"],
        ),
        (
            &["simulate", "trap", "--t-end", "1e308", "-o", o_],
            &["--t-end 1e308", "the limit of 2^53"],
        ),
        (
            &[
                "simulate",
                "trap",
                "--steps",
                "100000000000",
                "--every",
                "1",
                "-o",
                o_,
            ],
            &["1e11 frames", "free"],
        ),
    ];
    for (args, needles) in cases {
        fails_once(&phaseflow(args), needles);
        assert!(!out.exists());
        assert!(hidden_entries(dir.path()).is_empty(), "{args:?}");
    }
}
