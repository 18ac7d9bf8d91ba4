//! Helpers shared by the integration tests that drive the `phaseflow` binary (score training
//! and entropy production: tests/score.rs, tests/epr.rs; particle runs: tests/particles_cli.rs,
//! tests/mpi.rs).

use std::path::Path;
use std::process::{Command, Output};

/// `phaseflow ARGS` in the repository root (may fail).
pub fn phaseflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// `phaseflow ARGS`, which must succeed (stderr shown otherwise).
pub fn run(args: &[&str]) -> Output {
    let o = phaseflow(args);
    assert!(
        o.status.success(),
        "phaseflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `replicas` replicas of `systems/active/trap.toml` with the overrides `set` (NAME=VALUE; Δt is
/// the caller's), burn-in 100, to `t_end`, a frame every 500 steps, written to `out`.
pub fn simulate_trap(out: &Path, set: &[&str], replicas: usize, seed: &str, t_end: &str) -> Output {
    let replicas = replicas.to_string();
    let mut args = vec!["simulate", "systems/active/trap.toml"];
    for s in set {
        args.extend(["--set", s]);
    }
    args.extend([
        "--replicas",
        &replicas,
        "--burn-in",
        "100",
        "--t-end",
        t_end,
        "--every",
        "500",
        "--seed",
        seed,
        "-o",
        out.to_str().unwrap(),
    ]);
    run(&args)
}

/// `phaseflow train CONFIG --data DATA -o MODEL --quiet` (must succeed).
pub fn train(cfg: &Path, data: &Path, model: &Path) {
    run(&[
        "train",
        cfg.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "-o",
        model.to_str().unwrap(),
        "--quiet",
    ]);
}

/// Every dataset under `/particles`, `/observables` (time series) and `/analysis` (averages),
/// as raw f64/i64 bits.
#[allow(dead_code)] // (used by the particle tests, not by score and epr)
pub fn h5md_datasets(path: &Path) -> Vec<(String, Vec<u64>)> {
    let f = hdf5::File::open(path).unwrap();
    let mut out = Vec::new();
    fn walk(g: &hdf5::Group, prefix: &str, out: &mut Vec<(String, Vec<u64>)>) {
        for name in g.member_names().unwrap() {
            let full = format!("{prefix}/{name}");
            if let Ok(sub) = g.group(&name) {
                walk(&sub, &full, out);
            } else if let Ok(ds) = g.dataset(&name) {
                let bits: Vec<u64> = match ds.dtype().unwrap().to_descriptor().unwrap() {
                    hdf5::types::TypeDescriptor::Float(_) => ds
                        .read_raw::<f64>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect(),
                    _ => ds
                        .read_raw::<i64>()
                        .unwrap()
                        .iter()
                        .map(|v| *v as u64)
                        .collect(),
                };
                out.push((full, bits));
            }
        }
    }
    // (/analysis holds g(r) and packing histograms: models with pair forces in d ≥ 2)
    for top in ["particles", "observables", "analysis"] {
        if top == "analysis" && !f.link_exists(top) {
            continue;
        }
        walk(&f.group(top).unwrap(), &format!("/{top}"), &mut out);
    }
    out
}
