//! Score networks trained with burn on samples phaseflow simulated, end to end through the CLI
//! (`phaseflow simulate` → `phaseflow train` → the library's `ScoreModel`): resume from a
//! checkpoint equals an uninterrupted run; the local transformer is permutation-equivariant and
//! translation-invariant, and its divergence by autodiff equals finite differences.

use phaseflow::io::h5md::read_particle_samples;
use phaseflow::score::evaluate::ScoreModel;
use phaseflow::score::train::model_of_samples;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "phaseflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Stationary samples of the trap (N particles) with the given overrides, 64 replicas, frames
/// every 10 time units after a burn-in of 100 (relaxation time 1/A = 20).
fn simulate_trap(dir: &Path, name: &str, set: &[&str], t_end: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut args = vec!["simulate", "systems/active/trap.toml"];
    for s in set {
        args.push("--set");
        args.push(s);
    }
    args.extend([
        "--replicas",
        "64",
        "--burn-in",
        "100",
        "--t-end",
        t_end,
        "--every",
        "1000",
        "--seed",
        "3",
        "-o",
        out.to_str().unwrap(),
    ]);
    run(&args);
    out
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const TRAINING: &str = "[network]\nkind = \"transformer\"\nwidth = 32\nheads = 4\nblocks = 2\n\n[loss]\nsigma = 0.05\n\n[training]\nsteps = 1500\nbatch = 256\nlr = 2e-3\nlr_min = 1e-5\nwarmup = 100\nema = 0.99\nlog_every = 250\ncheckpoint_every = 500\nseed = 1\n";

/// An interrupted training (stopped with a checkpoint after 120 steps, then `--resume`) ends with
/// exactly the parameters of an uninterrupted run: same scores, bit for bit.
#[test]
fn resumed_training_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate_trap(dir.path(), "d.h5", &["N=4", "k=0", "dt=0.01"], "300");
    let text = TRAINING
        .replace("steps = 1500", "steps = 240")
        .replace("checkpoint_every = 500", "checkpoint_every = 50");
    let cfg = write(dir.path(), "train.toml", &text);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let args = |out: &Path| {
        vec![
            "train".to_string(),
            cfg.to_str().unwrap().into(),
            "--data".into(),
            data.to_str().unwrap().into(),
            "-o".into(),
            out.to_str().unwrap().into(),
            "--quiet".into(),
        ]
    };
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(|s| s.as_str()).collect()
    }
    run(&refs(&args(&a)));
    let mut first = args(&b);
    first.extend(["--stop-after".into(), "120".into()]);
    run(&refs(&first));
    assert!(
        !b.join("model.bpk").exists(),
        "a stopped run must not write the final model"
    );
    let mut resumed = args(&b);
    resumed.push("--resume".into());
    run(&refs(&resumed));
    let device = phaseflow::score::cpu_device();
    let (ma, mb) = (
        ScoreModel::load(&a, &device).unwrap(),
        ScoreModel::load(&b, &device).unwrap(),
    );
    let s = read_particle_samples(&data).unwrap();
    let model = model_of_samples(&s).unwrap();
    for f in [0, 5, 17] {
        let o = s.frame_offset(0, f);
        let x = &s.x[o * 2..(o + 4) * 2];
        let g = &s.g[o * 2..(o + 4) * 2];
        let (sa, ga) = ma.score(&model, x, g);
        let (sb, gb) = mb.score(&model, x, g);
        assert_eq!(sa, sb);
        assert_eq!(ga, gb);
    }
    let log = std::fs::read_to_string(b.join("log.csv")).unwrap();
    // header + the log line written at the last step (log_every = 250 > 240 steps)
    assert_eq!(log.lines().count(), 2, "{log}");
}

mod local {
    use phaseflow::particles::ParticleModel;
    use phaseflow::score::evaluate::ScoreModel;
    use phaseflow::score::network::Shapes;
    use phaseflow::score::train::TrainConfig;
    use std::path::Path;

    /// A MIPS-like AOUP box (N = 60, φ = 0.4, ε = 0.1 so that s_x is learned too), a random
    /// configuration, and an untrained local transformer (k = 8).
    fn setup() -> (ParticleModel, ScoreModel, Vec<f64>, Vec<f64>) {
        let text = "name = \"box\"\nkind = \"particles\"\nmodel = \"aoup\"\ndimension = 2\ndt = 0.01\n[parameters]\nN = 60\nphi = 0.4\nv0 = 1.0\ngamma = 1.0\neps = 0.1\nk = 1.0\n";
        let model = ParticleModel::from_str_at(text, Path::new("box.toml"), &[]).unwrap();
        let config = TrainConfig::from_toml(
            "[network]\nkind = \"local_transformer\"\nwidth = 32\nheads = 4\nblocks = 2\nneighbours = 8\nhidden = [32, 32]\n",
        )
        .unwrap();
        let shapes = Shapes {
            n: 60,
            dim: 2,
            propulsion: 2,
            learn_x: true,
            scale_x: 1.0,
            scale_g: 1.0,
        };
        let device = phaseflow::score::cpu_device();
        device.seed(5);
        let net = config.network.init(shapes, &device).unwrap();
        let sm = ScoreModel {
            config,
            shapes,
            net,
            device,
        };
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let w = model.bx.length;
        let x: Vec<f64> = (0..120).map(|_| w * next()).collect();
        let g: Vec<f64> = (0..120).map(|_| 2.0 * next()).collect();
        (model, sm, x, g)
    }

    /// Permuting the particles permutes the scores exactly (bit for bit: neighbour tokens are
    /// ordered by distance, not by label).
    #[test]
    fn permutation_permutes_the_scores_exactly() {
        let (model, sm, x, g) = setup();
        let (sx, sg) = sm.score(&model, &x, &g);
        let perm: Vec<usize> = (0..60).map(|i| (i * 37 + 11) % 60).collect();
        let mut xp = vec![0.0; 120];
        let mut gp = vec![0.0; 120];
        for (i, &p) in perm.iter().enumerate() {
            xp[2 * p..2 * p + 2].copy_from_slice(&x[2 * i..2 * i + 2]);
            gp[2 * p..2 * p + 2].copy_from_slice(&g[2 * i..2 * i + 2]);
        }
        let (sxp, sgp) = sm.score(&model, &xp, &gp);
        for (i, &p) in perm.iter().enumerate() {
            assert_eq!(sxp[2 * p..2 * p + 2], sx[2 * i..2 * i + 2]);
            assert_eq!(sgp[2 * p..2 * p + 2], sg[2 * i..2 * i + 2]);
        }
    }

    /// Translating every particle by the same vector (and wrapping into the box) leaves the
    /// scores unchanged up to the rounding of the translated coordinates (f32 network: 1e-5).
    #[test]
    fn translation_leaves_the_scores_unchanged() {
        let (model, sm, x, g) = setup();
        let (sx, sg) = sm.score(&model, &x, &g);
        for shift in [[0.37, -2.1], [5.5, 9.25]] {
            let mut xt = x.clone();
            for (k, v) in xt.iter_mut().enumerate() {
                *v += shift[k % 2];
                model.bx.wrap(v);
            }
            let (sxt, sgt) = sm.score(&model, &xt, &g);
            let scale = sx.iter().chain(&sg).fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in sx.iter().chain(&sg).zip(sxt.iter().chain(&sgt)) {
                assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
            }
        }
    }

    /// ∇_g·s_g of every particle by autodiff (a backward pass per component) equals central
    /// finite differences (h = 1e-2 in f32: agreement to 2e-3 relative).
    #[test]
    fn divergence_by_autodiff_equals_finite_differences() {
        let (model, sm, x, g) = setup();
        let ad = sm.divergence_g(&model, &x, &g);
        let h = 1e-2;
        for i in [0usize, 13, 59] {
            let mut fd = 0.0;
            for a in 0..2 {
                let mut gp = g.clone();
                let mut gm = g.clone();
                gp[2 * i + a] += h;
                gm[2 * i + a] -= h;
                let (_, sp) = sm.score(&model, &x, &gp);
                let (_, sm_) = sm.score(&model, &x, &gm);
                fd += (sp[2 * i + a] - sm_[2 * i + a]) / (2.0 * h);
            }
            let scale = ad[i].abs().max(0.1);
            assert!(
                (ad[i] - fd).abs() < 2e-3 * scale.max(1.0),
                "particle {i}: autodiff {} vs FD {fd}",
                ad[i]
            );
        }
    }
}
