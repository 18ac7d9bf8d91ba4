//! One process that simulates particles and then trains a score network on them, with Ctrl-C
//! connected once (the binary's token, `phaseflow::cli::cancel_token`): a real SIGINT during the
//! particle run checkpoints it (`resume` completes it to the uninterrupted trajectory), and a
//! second SIGINT during the training checkpoints the training (resuming gives the uninterrupted
//! result). With a handler installed by each long-running call, as before, the second install
//! failed silently and the second Ctrl-C neither checkpointed nor stopped.
//!
//! Alone in its test binary: it raises SIGINT in the process, and burn's CPU backend has one
//! global random generator.

use phaseflow::control::{Cancel, NoProgress, Progress};
use phaseflow::particles::{run, ParticleModel};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Raises SIGINT once the reported position reaches `at`, and waits until the handler has
/// cancelled the token (the handler runs on its own thread).
struct SigintAt {
    at: u64,
    cancel: Cancel,
    raised: AtomicBool,
    raised_at: AtomicU64,
}

impl SigintAt {
    fn new(at: u64, cancel: Cancel) -> SigintAt {
        SigintAt {
            at,
            cancel,
            raised: AtomicBool::new(false),
            raised_at: AtomicU64::new(0),
        }
    }
}

impl Progress for SigintAt {
    fn set_position(&self, pos: u64) {
        if pos >= self.at && !self.raised.swap(true, Ordering::SeqCst) {
            self.raised_at.store(pos, Ordering::SeqCst);
            // SAFETY: raise only sends a signal to this process; the handler is installed.
            unsafe {
                libc::raise(libc::SIGINT);
            }
            let t = std::time::Instant::now();
            while !self.cancel.is_cancelled() && t.elapsed().as_secs() < 10 {
                std::thread::yield_now();
            }
            assert!(self.cancel.is_cancelled(), "SIGINT did not reach the token");
        }
    }
}

/// Every dataset under `group` of an HDF5 file, as f64 bits, by path.
fn datasets(path: &Path, group: &str) -> Vec<(String, Vec<u64>)> {
    fn walk(g: &hdf5::Group, prefix: &str, out: &mut Vec<(String, Vec<u64>)>) {
        for name in g.member_names().unwrap() {
            let p = format!("{prefix}/{name}");
            if let Ok(ds) = g.dataset(&name) {
                let v = ds.read_raw::<f64>().unwrap();
                out.push((p, v.iter().map(|x| x.to_bits()).collect()));
            } else if let Ok(sub) = g.group(&name) {
                walk(&sub, &p, out);
            }
        }
    }
    let f = hdf5::File::open(path).unwrap();
    let mut out = Vec::new();
    walk(&f.group(group).unwrap(), group, &mut out);
    out
}

#[test]
fn ctrl_c_during_particle_run_then_training_checkpoints_both() {
    let cancel = phaseflow::cli::cancel_token(); // connects Ctrl-C, once per process
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/active/trap.toml");
    let set = [
        ("N".to_string(), 4.0),
        ("k".to_string(), 0.0),
        ("dt".to_string(), 0.01),
    ];
    let model = ParticleModel::load(&file, &set).unwrap();
    let cfg = |resume: bool| run::RunConfig {
        steps: 20_000,
        every: 250,
        burn_in_steps: 2_000,
        replicas: 4,
        seed: 5,
        resume,
        cancel: cancel.clone(),
        command: String::new(),
        abort_after_frames: None,
        checkpoint_interval: phaseflow::io::h5md::DEFAULT_CHECKPOINT_INTERVAL,
        warn: |_| {},
    };

    // 1. particles: uninterrupted, then interrupted half-way and resumed
    let whole = dir.path().join("whole.h5");
    run::run(&model, &whole, &cfg(false), &NoProgress).unwrap();
    let data = dir.path().join("d.h5");
    let sigint = SigintAt::new(12_000, cancel.clone());
    let err = run::run(&model, &data, &cfg(false), &sigint).unwrap_err();
    assert!(
        matches!(err, run::RunError::Interrupted { .. }),
        "particle run: {err}"
    );
    assert!(!data.exists(), "an interrupted run publishes no file");
    cancel.reset();
    let resumed = run::run(&model, &data, &cfg(true), &NoProgress).unwrap();
    let from = resumed
        .resumed_from_step
        .expect("resumed from the checkpoint");
    assert!((2_000..22_000).contains(&from), "checkpoint at step {from}");
    assert_eq!(datasets(&whole, "particles"), datasets(&data, "particles"));

    // 2. training on those samples: uninterrupted, then interrupted and resumed
    let config = dir.path().join("train.toml");
    std::fs::write(
        &config,
        "[network]\nkind = \"mlp\"\nhidden = [16]\n\n[loss]\nsigma = 0.05\n\n[training]\nsteps = 60\nbatch = 32\nwarmup = 10\nema = 0.99\nlog_every = 10\ncheckpoint_every = 20\nseed = 1\n",
    )
    .unwrap();
    let mut full = phaseflow::score::train::TrainRun::new(&config, &data, dir.path().join("a"));
    full.cancel = cancel.clone();
    let a = phaseflow::score::train::train(&full).unwrap();
    assert_eq!(a.steps_done, 60);

    let b_dir = dir.path().join("b");
    let mut part = phaseflow::score::train::TrainRun::new(&config, &data, &b_dir);
    part.cancel = cancel.clone();
    let reporter = Arc::new(SigintAt::new(30, cancel.clone()));
    part.progress = reporter.clone();
    let b = phaseflow::score::train::train(&part).unwrap();
    assert!(
        (30..60).contains(&b.steps_done),
        "stopped at {}",
        b.steps_done
    );
    assert!(!b_dir.join("model.bpk").exists(), "no model before the end");
    let progress: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(b_dir.join("checkpoint/progress.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(progress["step"].as_u64(), Some(b.steps_done as u64));
    cancel.reset();
    part.resume = true;
    part.progress = Arc::new(NoProgress);
    let b = phaseflow::score::train::train(&part).unwrap();
    assert_eq!(b.steps_done, 60);
    assert_eq!(b.final_loss.to_bits(), a.final_loss.to_bits());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a/log.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').map_or(l, |p| p.0).to_string())
            .collect::<Vec<_>>()
            .len(),
        std::fs::read_to_string(b_dir.join("log.csv"))
            .unwrap()
            .lines()
            .count()
    );
}
