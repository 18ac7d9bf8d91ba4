//! Entropy production end to end through the CLI (`phaseflow epr`): the exact linear-SDE solver
//! against closed forms (linear trap, bead-spring), the `[diffusion]` table of SDE files, the
//! learned EPR of the linear trap against γv0²/(ε(A+γ)) per coordinate, and of the interacting
//! trap against the learning-free reference.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{phaseflow, run, train};

fn json(args: &[&str]) -> Value {
    serde_json::from_slice(&run(args).stdout).unwrap()
}

/// A training file in `dir`: MLP 64 × 64 (antisymmetrised), implicit score matching with the
/// three stationarity terms, `steps` steps of 256 with a linear warm-up of `warmup`.
fn ism_config(dir: &Path, steps: usize, warmup: usize) -> PathBuf {
    let cfg = dir.join("train.toml");
    std::fs::write(
        &cfg,
        format!(
            "[network]\nkind = \"mlp\"\nhidden = [64, 64]\nsymmetry = \"odd\"\n\n[loss]\nkind = \"ism\"\nfokker_planck = 1\nmean_divergence = 1\nmean_flow_score = 1\n\n[training]\nsteps = {steps}\nbatch = 256\nlr = 2e-3\nwarmup = {warmup}\nema = 0.99\nlog_every = {}\ncheckpoint_every = {steps}\nseed = 1\n",
            steps / 4
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn exact_entropy_production_of_linear_sdes() {
    let r = json(&[
        "epr",
        "--system",
        "systems/linear/bead_spring_2.toml",
        "--exact",
        "--json",
    ]);
    assert!((r["epr"].as_f64().unwrap() - 2.025).abs() < 1e-10, "{r}");
    assert!(r["convention"]
        .as_str()
        .unwrap()
        .contains("even under time reversal"));
    let r = json(&[
        "epr",
        "--system",
        "systems/linear/bead_spring_5.toml",
        "--exact",
        "--json",
    ]);
    assert!((r["epr"].as_f64().unwrap() - 0.6298).abs() < 5e-5, "{r}");
    for v0 in [0.1, 0.3, 0.5] {
        let set = format!("v0={v0}");
        let r = json(&[
            "epr",
            "--system",
            "systems/active/trap.toml",
            "--exact",
            "--json",
            "--set",
            "N=2",
            "--set",
            "k=0",
            "--set",
            &set,
        ]);
        let want = 4.0 * 0.1 * v0 * v0 / (0.1 * 0.15);
        assert!(
            (r["epr"].as_f64().unwrap() - want).abs() < 1e-10 * want,
            "v0 = {v0}: {r}"
        );
        let r = json(&[
            "epr",
            "--system",
            "systems/active/trap.toml",
            "--exact",
            "--json",
            "--set",
            "N=2",
            "--set",
            "k=0",
            "--set",
            &set,
            "--set",
            "eps=0",
        ]);
        assert!(
            (r["epr"].as_f64().unwrap() - 4.0 * 0.05).abs() < 1e-10,
            "{r}"
        );
    }
    // a nonlinear drift is refused with the reason
    let o = phaseflow(&["epr", "--system", "systems/active/trap.toml", "--exact"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not linear"));
}

/// A `[diffusion]` table makes a flow an SDE: `phaseflow simulate` integrates
/// dx = f dt + √(2D) dW, and the bead-spring covariance matches the Lyapunov solution
/// (Σ = [[17/12, 11/6], [11/6, 71/12]]) within 5 % (statistical error ≈ 1.5 % over 2·10⁴ time
/// units with correlation time ≈ 1). Bad tables name the variable.
#[test]
fn diffusion_tables_make_sdes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bs.h5");
    run(&[
        "simulate",
        "systems/linear/bead_spring_2.toml",
        "--t-end",
        "20000",
        "--dt-out",
        "0.1",
        "--burn-in",
        "10",
        "--seed",
        "2",
        "-o",
        out.to_str().unwrap(),
    ]);
    let f = hdf5::File::open(&out).unwrap();
    let z: Vec<f64> = f.dataset("state").unwrap().read_raw().unwrap();
    let n = z.len() / 2;
    let cov =
        |a: usize, b: usize| (0..n).map(|t| z[2 * t + a] * z[2 * t + b]).sum::<f64>() / n as f64;
    for (a, b, want) in [(0, 0, 17.0 / 12.0), (0, 1, 11.0 / 6.0), (1, 1, 71.0 / 12.0)] {
        let c = cov(a, b);
        assert!(
            (c - want).abs() < 0.05 * want,
            "Σ[{a}][{b}] = {c}, want {want}"
        );
    }
    let bad = |table: &str, expect: &str| {
        let p = dir.path().join("bad.toml");
        std::fs::write(
            &p,
            format!("name = \"b\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [0.0]\n[parameters]\nD = 1.0\n[equations]\nx = \"-x\"\n[diffusion]\n{table}\n"),
        )
        .unwrap();
        let o = phaseflow(&["epr", "--system", p.to_str().unwrap(), "--exact"]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && err.contains(expect), "{err}");
    };
    bad(
        "y = \"D\"",
        "diffusion for 'y', which is not a declared variable",
    );
    bad("x = \"D * x\"", "must be an expression of the parameters");
    bad("x = \"Dx\"", "Dx");
}

/// Learned EPR of the linear trap (N = 1, d = 2, k = 0; A = 0.05, γ = ε = 0.1) for v0 = 0.1,
/// 0.3, 0.5: an MLP (antisymmetrised) trained by implicit score matching with the stationarity
/// terms on 256 replicas × 201 frames gives E[v·D⁻¹v] within 3 % of 2γv0²/(ε(A+γ)) (measured
/// 0.3 % at v0 = 0.1 and 0.5; the sampling error is ≈ 0.6 %), and the learning-free reference
/// ⟨|b_x|²⟩/ε + ⟨∇_x·b_x⟩ agrees within its error bar; the stationarity diagnostics (mean
/// Fokker–Planck residual ∇·v + v·s, E[|s|² + ∇·s]) vanish within their errors; maps and
/// probability-flow trajectories at v0 = 0.5.
#[test]
fn learned_epr_of_the_linear_trap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ism_config(dir.path(), 2000, 100);
    for v0 in [0.1, 0.3, 0.5] {
        let data = dir.path().join(format!("v{v0}.h5"));
        let model = dir.path().join(format!("m{v0}"));
        common::simulate_trap(
            &data,
            &["N=1", "k=0", &format!("v0={v0}"), "dt=0.01"],
            256,
            "3",
            "1000",
        );
        train(&cfg, &data, &model);
        let r = json(&[
            "epr",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
        ]);
        let want = 2.0 * 0.1 * v0 * v0 / (0.1 * 0.15);
        let epr = r["epr"].as_f64().unwrap();
        let reference = r["epr_reference"].as_f64().unwrap();
        let ref_err = r["epr_reference_stderr"].as_f64().unwrap();
        println!(
            "v0 = {v0}: learned {epr:.5}, reference {reference:.5} ± {ref_err:.5}, exact {want:.5}"
        );
        assert!((epr - want).abs() < 0.03 * want, "v0 = {v0}: {r}");
        assert!((r["epr_exact"].as_f64().unwrap() - want).abs() < 1e-9 * want);
        assert!((reference - want).abs() < 4.0 * ref_err, "v0 = {v0}: {r}");
        assert_eq!(r["n_samples"].as_u64(), Some(256 * 201));
        let per_dof = r["per_dof"]["x"].as_f64().unwrap() + r["per_dof"]["g"].as_f64().unwrap();
        assert!((per_dof - epr).abs() < 1e-9 * epr);
        // stationarity diagnostics of the learned score: zero within their errors
        let dg = &r["diagnostics"];
        for (m, e) in [
            ("residual_mean", "residual_stderr"),
            ("fisher_identity", "fisher_identity_stderr"),
        ] {
            let (m, e) = (dg[m].as_f64().unwrap(), dg[e].as_f64().unwrap());
            assert!(m.abs() < 4.0 * e + 1e-3, "v0 = {v0}: {dg}");
        }
        if v0 == 0.5 {
            // where it is produced: the ρ-weighted grid density integrates to the EPR, and in a
            // linear trap the conditional mean grows with the distance from the centre
            // (e(z) = v·D⁻¹v is a quadratic form in z)
            let maps = dir.path().join("maps.h5");
            let png = dir.path().join("epr.png");
            run(&[
                "epr",
                "--model",
                model.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--maps",
                maps.to_str().unwrap(),
                "--png",
                png.to_str().unwrap(),
                "--bins",
                "16",
                "--quiet",
            ]);
            assert!(png.exists());
            let f = hdf5::File::open(&maps).unwrap();
            let edges: Vec<f64> = f.dataset("grid/edges").unwrap().read_raw().unwrap();
            let density: Vec<f64> = f.dataset("grid/density").unwrap().read_raw().unwrap();
            let w = edges[1] - edges[0];
            let total: f64 = density.iter().sum::<f64>() * w * w;
            assert!((total - epr).abs() < 1e-9 * epr, "{total} vs {epr}");
            let radial: Vec<f64> = f
                .dataset("radial/conditional_mean")
                .unwrap()
                .read_raw()
                .unwrap();
            assert!(radial[8] > radial[1], "{radial:?}");
            assert_eq!(
                f.dataset("particle_epr").unwrap().shape(),
                vec![256 * 201, 1]
            );
            // per-particle time averages along each replica's trajectory: [R, N]; their mean
            // over replicas is the ensemble per-particle EPR, and each is one trajectory's
            // estimate of it (spread, not identical)
            let ta = f.dataset("particle_time_average").unwrap();
            assert_eq!(ta.shape(), vec![256, 1]);
            let ta: Vec<f64> = ta.read_raw().unwrap();
            let mean = ta.iter().sum::<f64>() / 256.0;
            let pp = r["per_particle"][0].as_f64().unwrap();
            assert!((mean - pp).abs() < 1e-9 * pp, "{mean} vs {pp}");
            assert!(ta.iter().any(|v| (v - mean).abs() > 1e-6 * mean));
            // probability-flow trajectories dz/dt = v(z) transport the stationary law: for the
            // Gaussian the exact flow conserves Q = zᵀΣ⁻¹z on every trajectory; with the learned
            // v over t = 20 (3 relaxation times) the ensemble mean of Q moves < 3 % (measured
            // 0.4 %) and the median trajectory < 8 % (2.6 %)
            let flow = dir.path().join("flow.h5");
            run(&[
                "epr",
                "--model",
                model.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--flow-out",
                flow.to_str().unwrap(),
                "--flow-steps",
                "200",
                "--flow-dt",
                "0.1",
                "--diagnostic-samples",
                "0",
                "--quiet",
            ]);
            let f = hdf5::File::open(&flow).unwrap();
            let x: Vec<f64> = f.dataset("flow/position").unwrap().read_raw().unwrap();
            let g: Vec<f64> = f.dataset("flow/propulsion").unwrap().read_raw().unwrap();
            assert_eq!(x.len(), 256 * 201 * 2);
            let (a, gm, e) = (0.05, 0.1, 0.1);
            let sxx = (e * (a + gm) + v0 * v0) / (a * (a + gm));
            let sxg = v0 / (a + gm);
            let det = sxx - sxg * sxg;
            let q = |r: usize, t: usize| -> f64 {
                (0..2)
                    .map(|c| {
                        let (xx, gg) = (x[(r * 201 + t) * 2 + c], g[(r * 201 + t) * 2 + c]);
                        (xx * xx - 2.0 * sxg * xx * gg + sxx * gg * gg) / det
                    })
                    .sum()
            };
            let (mut q0, mut q1) = (0.0, 0.0);
            let mut drift: Vec<f64> = (0..256)
                .map(|r| {
                    q0 += q(r, 0) / 256.0;
                    q1 += q(r, 200) / 256.0;
                    (q(r, 200) / q(r, 0) - 1.0).abs()
                })
                .collect();
            drift.sort_by(f64::total_cmp);
            println!(
                "flow: mean Q {q0:.4} -> {q1:.4}, median drift {:.4}",
                drift[128]
            );
            assert!((q1 - q0).abs() < 0.03 * q0, "{q0} -> {q1}");
            assert!(drift[128] < 0.08, "median drift {}", drift[128]);
        }
    }
}

/// Interacting trap (N = 4 soft AOUPs, k = 2.5, β = 7.5, v0 = 0.5, A = 0.05, γ = ε = 0.1, the
/// paper's trap parameters): an MLP trained by implicit score matching with the stationarity terms
/// (500 steps, 20 s) gives a learned EPR within 5 % of the learning-free reference
/// ⟨|b_x|²⟩/ε + ⟨∇_x·b_x⟩ — on its training data and on an independent simulation (measured
/// −1.0 % on both; 1000 steps −1.7 %, 2000 steps or 128-wide layers −1.5 %). The box is sized by φ = 0.005
/// (half-width 25 ≈ 4 trap widths): with the trap file's φ = 0.1 and N = 4 the box half-width
/// (5.6) is below the trap's spread, particles interact through periodic images, the reference
/// moves by 3 % and every loss tried (DSM, ISM, probability flow) came out 6–10 % low; `simulate`
/// warns about such a box.
#[test]
fn learned_epr_of_the_interacting_trap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ism_config(dir.path(), 500, 50);
    let simulate = |seed: &str, phi: &str, t_end: &str, out: &Path| -> Output {
        common::simulate_trap(
            out,
            &["N=4", &format!("phi={phi}"), "dt=0.01"],
            256,
            seed,
            t_end,
        )
    };
    // the trap file's box at N = 4 is smaller than the trap: named on stderr
    let small = simulate("1", "0.1", "5", &dir.path().join("small.h5"));
    let warning = String::from_utf8_lossy(&small.stderr);
    assert!(warning.contains("periodic images"), "{warning}");
    let data = dir.path().join("trap.h5");
    let fresh = dir.path().join("fresh.h5");
    let quiet = simulate("11", "0.005", "2000", &data);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("warning"));
    simulate("12", "0.005", "2000", &fresh);
    let model = dir.path().join("model");
    train(&cfg, &data, &model);
    for d in [&data, &fresh] {
        let r = json(&[
            "epr",
            "--model",
            model.to_str().unwrap(),
            "--data",
            d.to_str().unwrap(),
            "--json",
        ]);
        let epr = r["epr"].as_f64().unwrap();
        let reference = r["epr_reference"].as_f64().unwrap();
        let ref_err = r["epr_reference_stderr"].as_f64().unwrap();
        println!(
            "interacting trap ({}): learned {epr:.4} ± {:.4}, reference {reference:.4} ± {ref_err:.4}",
            d.file_name().unwrap().to_string_lossy(),
            r["epr_stderr"].as_f64().unwrap()
        );
        assert!((epr - reference).abs() < 0.05 * reference, "{r}");
        // about 13.2 (N = 4, d = 2); the linear trap's value (k = 0) is 4·2·1.667 = 13.3
        assert!(reference > 12.0 && reference < 14.5, "{r}");
        assert!(r["epr_exact"].is_null());
    }
}

/// Bead-spring (2 and 5 beads): an MLP trained by implicit score matching with the stationarity
/// terms on the SDE's own trajectory file (4 ensemble members × 4·10⁴ frames 0.5 apart; the
/// state is scored as a whole) gives a learned EPR within 3 % of the exact 2.025 / 0.6298
/// (measured −0.6 % for both); the learning-free reference E[b·D⁻¹b] + E[∇·b] agrees within
/// its error bar.
#[test]
fn learned_epr_of_the_bead_spring_models() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ism_config(dir.path(), 2000, 100);
    for (beads, exact) in [(2, 2.025), (5, 0.6298172794946997)] {
        let file = format!("systems/linear/bead_spring_{beads}.toml");
        let data = dir.path().join(format!("bs{beads}.h5"));
        let model = dir.path().join(format!("m{beads}"));
        run(&[
            "simulate",
            &file,
            "--t-end",
            "20000",
            "--dt-out",
            "0.5",
            "--burn-in",
            "10",
            "--ensemble",
            "4",
            "--seed",
            "1",
            "-o",
            data.to_str().unwrap(),
        ]);
        train(&cfg, &data, &model);
        let r = json(&[
            "epr",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
        ]);
        let epr = r["epr"].as_f64().unwrap();
        println!("bead-spring {beads}: learned {epr:.5}, exact {exact:.5}; {r}");
        assert!((epr - exact).abs() < 0.03 * exact, "{r}");
        assert!((r["epr_exact"].as_f64().unwrap() - exact).abs() < 1e-9);
        let (rf, re) = (
            r["epr_reference"].as_f64().unwrap(),
            r["epr_reference_stderr"].as_f64().unwrap(),
        );
        assert!((rf - exact).abs() < 4.0 * re, "{r}");
        assert_eq!(r["per_dof"].as_object().unwrap().len(), beads);
    }
}

/// A whole-configuration network (MLP) trained at N = 1 asked to score N = 4 data: a clear error
/// from `phaseflow epr` and `phaseflow score` naming both sizes (it was a panic inside burn).
#[test]
fn a_model_of_another_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (one, four) = (dir.path().join("n1.h5"), dir.path().join("n4.h5"));
    common::simulate_trap(&one, &["N=1", "k=0", "dt=0.01"], 8, "1", "50");
    common::simulate_trap(&four, &["N=4", "phi=0.005", "dt=0.01"], 2, "2", "10");
    let cfg = dir.path().join("train.toml");
    std::fs::write(
        &cfg,
        "[network]\nkind = \"mlp\"\nhidden = [16]\n\n[loss]\nkind = \"dsm\"\n\n[training]\nsteps = 20\nbatch = 16\nlog_every = 10\ncheckpoint_every = 20\n",
    )
    .unwrap();
    let model = dir.path().join("m");
    train(&cfg, &one, &model);
    let out = dir.path().join("s.h5");
    for args in [
        vec![
            "epr",
            "--model",
            model.to_str().unwrap(),
            "--data",
            four.to_str().unwrap(),
        ],
        vec![
            "score",
            model.to_str().unwrap(),
            "--data",
            four.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    ] {
        let o = phaseflow(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("N = 4") && err.contains("trained for N = 1") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// Cancellation of the sample estimates (library calls): a token set before the call stops it
/// before the first sample, and one set during the call (here by the progress reporter at the
/// 5th sample) stops it at the next sample, with `EprError::Interrupted` — the learning-free
/// reference and the learned EPR of particle samples, the learned EPR of an SDE trajectory, the
/// stationarity diagnostics; `write_flow` stops inside the probability-flow integration and
/// writes no file. Models: an MLP 8 trained for 2 steps (only the control flow matters here).
#[cfg(feature = "learn")]
#[test]
fn a_cancelled_token_stops_the_epr_sampling() {
    use phaseflow::analysis::epr::{self, EprError};
    use phaseflow::analysis::epr_output::{self, EprOutputError};
    use phaseflow::control::{Cancel, NoProgress, Progress};
    use phaseflow::score::evaluate::ScoreModel;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Counts the samples reported and cancels the token at the `at`-th.
    struct CancelAt {
        at: u64,
        seen: AtomicU64,
        cancel: Cancel,
    }
    impl Progress for CancelAt {
        fn advance(&self, delta: u64) {
            if self.seen.fetch_add(delta, Ordering::SeqCst) + delta == self.at {
                self.cancel.cancel();
            }
        }
    }
    let at = |k: u64| CancelAt {
        at: k,
        seen: AtomicU64::new(0),
        cancel: Cancel::new(),
    };
    let cancelled = || {
        let c = Cancel::new();
        c.cancel();
        c
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(
        &cfg,
        "[network]\nkind = \"mlp\"\nhidden = [8]\n\n[loss]\nkind = \"ism\"\n\n[training]\nsteps = 2\nbatch = 16\nwarmup = 1\nlog_every = 1\ncheckpoint_every = 2\nseed = 1\n",
    )
    .unwrap();
    // particle samples (2 AOUPs in a harmonic trap, 4 replicas × 11 frames) and a model of them
    let data = dir.path().join("trap.h5");
    common::simulate_trap(&data, &["N=2", "k=0", "dt=0.01"], 4, "1", "50");
    let model_dir = dir.path().join("m");
    train(&cfg, &data, &model_dir);
    let device = phaseflow::score::cpu_device();
    let sm = ScoreModel::load(&model_dir, &device).unwrap();
    let samples = phaseflow::io::h5md::read_particle_samples(&data).unwrap();
    let model = phaseflow::particles::ParticleModel::at_parameters(
        &samples.definition,
        Path::new(&samples.definition_path),
        &samples.parameters,
        &[],
    )
    .unwrap();
    assert!(samples.replicas * samples.frames > 10);
    // the reference (no model) and the learned EPR
    let p = at(u64::MAX);
    let r = epr::reference_epr(&model, &samples, 4, &cancelled(), &p);
    assert!(matches!(r, Err(EprError::Interrupted)), "{r:?}");
    assert_eq!(p.seen.load(Ordering::SeqCst), 0);
    for sm in [None, Some(&sm)] {
        let p = at(5);
        let r = epr::sample_epr(sm, &model, &samples, 4, &p.cancel, &p);
        assert!(matches!(r, Err(EprError::Interrupted)), "{r:?}");
        assert_eq!(p.seen.load(Ordering::SeqCst), 5);
        // not cancelled: the whole data
        let p = at(u64::MAX);
        let r = epr::sample_epr(sm, &model, &samples, 4, &p.cancel, &p).unwrap();
        assert_eq!(r.n_samples, samples.replicas * samples.frames);
    }
    let r = epr::diagnostics(&sm, &model, &samples, 100, &cancelled());
    assert!(matches!(r, Err(EprError::Interrupted)), "{r:?}");
    assert!(epr::diagnostics(&sm, &model, &samples, 10, &Cancel::new()).is_ok());
    let flow = dir.path().join("flow.h5");
    let r = epr_output::write_flow(&flow, &sm, &samples, &model, 0.01, 1000, &cancelled());
    assert!(matches!(r, Err(EprOutputError::Interrupted)), "{r:?}");
    assert!(!flow.exists());
    // a probability flow of 10^9 steps, cancelled after 0.2 s: stops within a second
    let cancel = Cancel::new();
    let (r, late) = std::thread::scope(|s| {
        let setter = s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            cancel.cancel();
            std::time::Instant::now()
        });
        let r = epr_output::write_flow(&flow, &sm, &samples, &model, 0.01, 1_000_000_000, &cancel);
        let end = std::time::Instant::now();
        (r, end.saturating_duration_since(setter.join().unwrap()))
    });
    assert!(matches!(r, Err(EprOutputError::Interrupted)), "{r:?}");
    assert!(late < std::time::Duration::from_secs(1), "{late:?}");
    assert!(!flow.exists());
    // the trajectory of an SDE flow (bead-spring, 2 members × 101 frames) and a model of it
    let traj_file = dir.path().join("bs.h5");
    run(&[
        "simulate",
        "systems/linear/bead_spring_2.toml",
        "--t-end",
        "50",
        "--dt-out",
        "0.5",
        "--ensemble",
        "2",
        "--seed",
        "1",
        "-q",
        "-o",
        traj_file.to_str().unwrap(),
    ]);
    let sde_dir = dir.path().join("sde");
    train(&cfg, &traj_file, &sde_dir);
    let sde_model = ScoreModel::load(&sde_dir, &device).unwrap();
    let traj = phaseflow::io::read_trajectory(&traj_file).unwrap();
    let sde = phaseflow::score::train::sde_of_trajectory(&traj).unwrap();
    let p = at(5);
    let r = epr::trajectory_epr(&sde_model, &sde, &traj, 4, &p.cancel, &p);
    assert!(matches!(r, Err(EprError::Interrupted)), "{r:?}");
    assert_eq!(p.seen.load(Ordering::SeqCst), 5);
    let r = epr::trajectory_epr(&sde_model, &sde, &traj, 4, &Cancel::new(), &NoProgress).unwrap();
    assert_eq!(r.n_samples, traj.len() * traj.members);
}
