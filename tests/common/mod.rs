//! Helpers shared by the integration tests that drive the `phaseflow` binary through score
//! training and entropy production (tests/score.rs, tests/epr.rs).

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
