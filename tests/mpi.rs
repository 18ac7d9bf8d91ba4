//! Particle runs over MPI ranks (feature `mpi`; `mpirun` from MPICH): `mpirun -np 2` writes the
//! datasets of a one-process run bit for bit — for ABPs at high Péclet number (particles cross
//! the rank border many times), AOUP MIPS with its long soft cut-off, 3-D ABPs, a trap with
//! replicas and fixed particles —, a run interrupted under one rank count resumes under another
//! to the same file (after a simulated crash, and after Ctrl-C sent to `mpirun`), and set-ups the
//! box cannot hold are refused before any step.
//!
//! Particle count: every dataset holds all N particles at every frame and equals the
//! one-process run's, so no particle is lost or duplicated in migration.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(dead_code)]
mod common;
use common::h5md_datasets as datasets;

const BIN: &str = env!("CARGO_BIN_EXE_phaseflow");

/// `mpirun -np K phaseflow ARGS` (K = 0: the binary alone, no launcher).
fn launch(k: usize, args: &[&str]) -> Output {
    let mut c = if k == 0 {
        Command::new(BIN)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["-np", &k.to_string(), BIN]);
        c
    };
    c.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("mpirun (MPICH: apt-get install mpich) runs")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A definition file: `systems/active/NAME.toml` with the text replacements `edit`, in `dir`.
fn definition(dir: &Path, name: &str, edit: &[(&str, &str)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("systems/active/{name}.toml"));
    let mut text = std::fs::read_to_string(src).unwrap();
    for (a, b) in edit {
        assert!(text.contains(a), "{name}.toml has no '{a}'");
        text = text.replace(a, b);
    }
    let p = dir.join(format!("{name}-{}.toml", edit.len()));
    std::fs::write(&p, text).unwrap();
    p
}

/// The run `args` (model and settings, without `-o`) in one process (two threads) and with
/// `mpirun -np K` for each K in `ranks`: identical datasets. `on_ranks`: where the pair
/// statistics of the frames are counted with the most ranks (true: on every rank, added up;
/// false: on the root; None: the model has none).
fn same_as_one_process(
    dir: &Path,
    label: &str,
    args: &[&str],
    ranks: &[usize],
    on_ranks: Option<bool>,
) {
    let one = dir.join(format!("{label}-one.h5"));
    ok(&launch(
        0,
        &[
            &["simulate"],
            args,
            &["--threads", "2", "-o", one.to_str().unwrap(), "--quiet"],
        ]
        .concat(),
    ));
    let reference = datasets(&one);
    assert!(
        reference.len() >= 8,
        "{label}: {} datasets",
        reference.len()
    );
    for &k in ranks {
        let out = dir.join(format!("{label}-np{k}.h5"));
        let o = launch(
            k,
            &[
                &["simulate"],
                args,
                &["-o", out.to_str().unwrap(), "--json"],
            ]
            .concat(),
        );
        ok(&o);
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            summary["ranks"], k,
            "{label}: one JSON summary, from the root"
        );
        assert_eq!(
            datasets(&out),
            reference,
            "{label}: mpirun -np {k} differs from one process"
        );
        if k == *ranks.iter().max().unwrap() {
            assert_eq!(
                summary["traffic"]["pair_statistics_on_ranks"],
                serde_json::json!(on_ranks),
                "{label}: {summary}"
            );
        }
    }
}

#[test]
fn two_ranks_write_the_datasets_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // ABP-WCA at Pe = 150: v0 = 50, 4000 steps of 5e-5 carry a particle 10 diameters, in a box
    // 26 wide cut into two sub-boxes 13 wide (and noise in every direction)
    same_as_one_process(
        d,
        "abp",
        &[
            "abp-mips", "--set", "N=512", "--steps", "4000", "--every", "1000", "--seed", "3",
        ],
        &[1, 2],
        Some(true),
    );
    // a box so small that the sub-boxes (3.2 wide) are thinner than the pair statistics' reach
    // (contact + probe radius, 3.7): the root counts them from the gathered frame
    same_as_one_process(
        d,
        "abp-small",
        &[
            "abp-mips", "--set", "N=32", "--steps", "2000", "--every", "500", "--seed", "4",
        ],
        &[2],
        Some(false),
    );
    // AOUP MIPS (softplus pairs out to their long cut-off), faster propulsion so that
    // particles migrate, two replicas
    same_as_one_process(
        d,
        "aoup",
        &[
            "mips",
            "--set",
            "N=1024",
            "--set",
            "v0=0.5",
            "--set",
            "gamma=0.05",
            "--set",
            "eps=0.001",
            "--set",
            "dt=0.02",
            "--steps",
            "600",
            "--every",
            "200",
            "--replicas",
            "2",
        ],
        &[2],
        Some(true),
    );
    // 3-D ABP-WCA
    let abp3 = definition(
        d,
        "abp_mips",
        &[("dimension = 2", "dimension = 3"), ("N = 4096", "N = 800")],
    );
    same_as_one_process(
        d,
        "abp3",
        &[abp3.to_str().unwrap(), "--steps", "2000", "--every", "500"],
        &[2],
        Some(true),
    );
    // the interacting trap (a force towards the centre, not translation invariant), three
    // replicas
    same_as_one_process(
        d,
        "trap",
        &[
            "trap",
            "--steps",
            "3000",
            "--every",
            "1000",
            "--replicas",
            "3",
        ],
        &[2],
        Some(true),
    );
    // fixed particles on a ring (1-D, two sub-boxes)
    let ring = definition(
        d,
        "ring",
        &[
            ("N = 2", "N = 12"),
            ("n_fixed = 1", "n_fixed = 3"),
            ("L = 16.0", "L = 60.0"),
        ],
    );
    same_as_one_process(
        d,
        "ring",
        &[ring.to_str().unwrap(), "--steps", "4000", "--every", "1000"],
        &[2],
        None,
    );
}

#[test]
fn a_run_interrupted_under_one_rank_count_resumes_under_another() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "simulate",
        "abp-mips",
        "--set",
        "N=600",
        "--steps",
        "3000",
        "--every",
        "300",
        "--seed",
        "5",
        "--replicas",
        "2",
        "--checkpoint-interval",
        "0",
    ];
    let full = d.join("full.h5");
    ok(&launch(
        0,
        &[&args[..], &["-o", full.to_str().unwrap(), "--quiet"]].concat(),
    ));
    let reference = datasets(&full);
    for (first, then) in [(2, 0), (0, 2), (2, 1)] {
        let out = d.join(format!("cut-{first}-{then}.h5"));
        let o = launch(
            first,
            &[
                &args[..],
                &[
                    "-o",
                    out.to_str().unwrap(),
                    "--quiet",
                    "--abort-after-frames",
                    "4",
                ],
            ]
            .concat(),
        );
        assert!(!o.status.success(), "the aborted run stops with an error");
        assert!(!out.exists(), "no output before the run completes");
        let o = launch(
            then,
            &[
                &args[..],
                &["-o", out.to_str().unwrap(), "--quiet", "--resume"],
            ]
            .concat(),
        );
        ok(&o);
        assert_eq!(
            datasets(&out),
            reference,
            "interrupted under {first} rank(s), resumed under {then}: differs"
        );
    }
}

#[test]
fn impossible_decompositions_are_refused_before_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 4 disks at phi = 0.6: a box 2.3 wide; two ranks along either direction would give sub-boxes
    // 1.14 wide, thinner than the WCA cut-off plus skin (1.42)
    let out = d.join("tiny.h5");
    let o = launch(
        2,
        &[
            "simulate",
            "abp-mips",
            "--set",
            "N=4",
            "--steps",
            "10",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.matches("thinner than the ghost layer").count(),
        1,
        "one message, from the root: {err}"
    );
    assert!(
        !out.exists() && std::fs::read_dir(d).unwrap().next().is_none(),
        "no file"
    );
    // a rank grid whose product is not the rank count, and a grid for a single process
    let o = launch(
        2,
        &[
            "simulate",
            "abp-mips",
            "--set",
            "N=512",
            "--steps",
            "10",
            "--ranks-grid",
            "3x1",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--ranks-grid 3x1 has 3 ranks, the run has 2"),
        "{err}"
    );
    let o = launch(
        0,
        &[
            "simulate",
            "abp-mips",
            "--set",
            "N=512",
            "--steps",
            "10",
            "--ranks-grid",
            "2x1",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("applies to runs started with mpirun"));
    // an explicit grid is obeyed: 1x2 gives the same datasets as the default 2x1
    let a = d.join("a.h5");
    let b = d.join("b.h5");
    let run = [
        "simulate", "abp-mips", "--set", "N=256", "--steps", "400", "--every", "200",
    ];
    ok(&launch(
        2,
        &[&run[..], &["-o", a.to_str().unwrap(), "--quiet"]].concat(),
    ));
    ok(&launch(
        2,
        &[
            &run[..],
            &["--ranks-grid", "1x2", "-o", b.to_str().unwrap(), "--quiet"],
        ]
        .concat(),
    ));
    assert_eq!(datasets(&a), datasets(&b));
}

#[test]
fn ctrl_c_under_mpirun_stops_every_rank_and_the_run_resumes_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "simulate",
        "abp-mips",
        "--set",
        "N=4096",
        "--steps",
        "40000",
        "--every",
        "500",
        "--seed",
        "11",
        "--checkpoint-interval",
        "0",
    ];
    let out = d.join("run.h5");
    let partial = d.join(".run.h5.partial");
    let child = Command::new("mpirun")
        .args(["-np", "2", BIN])
        .args(args)
        .args(["-o", out.to_str().unwrap(), "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Ctrl-C once frames are being written: mpirun forwards it to both ranks, which agree to
    // stop after the frame in progress
    let start = std::time::Instant::now();
    while !partial.exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: kill(2) on our own child's pid
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // (40,000 steps of 4096 particles take seconds; the signal comes half a second in)
    assert!(!out.exists(), "the run was interrupted: {err}");
    assert_eq!(
        err.matches("interrupted after").count(),
        1,
        "one report: {err}"
    );
    assert!(partial.exists(), "the partial file is kept");
    ok(&launch(
        0,
        &[
            &args[..],
            &["-o", out.to_str().unwrap(), "--quiet", "--resume"],
        ]
        .concat(),
    ));
    let whole = d.join("whole.h5");
    ok(&launch(
        0,
        &[&args[..], &["-o", whole.to_str().unwrap(), "--quiet"]].concat(),
    ));
    assert_eq!(datasets(&out), datasets(&whole));
}
