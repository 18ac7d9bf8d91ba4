//! The library is the product: every library call here gives, bit for bit, the datasets that the
//! corresponding `phaseflow` command writes (the command is a thin front end over the same call).
//! Cases: an ODE, an ensemble, an SDE file (run through the library it is an SDE run), a delay
//! equation with a delay embedding, a map, a particle model, invariants, EPR and a small
//! forecast benchmark; and one process that is interrupted (Ctrl-C) while simulating particles
//! and again while training, checkpointing both.

use phaseflow::control::{Cancel, NoProgress};
use phaseflow::io::{read_trajectory, write_trajectory, Trajectory};
use phaseflow::simulate::{Embed, NoiseSetting, NoiseUnits, Run, Start};
use phaseflow::systems::{CompiledSystem, Overrides};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `phaseflow ARGS` in the repository root; must succeed. Returns stdout.
fn cli(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_phaseflow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "phaseflow {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A system as the command line loads it (tests run in the repository root).
fn load(name: &str) -> CompiledSystem {
    CompiledSystem::load(name, &Overrides::default()).unwrap()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Same times, states (bit for bit), shape and names, and the same root attributes apart from
/// the command line.
fn assert_same(lib: &Trajectory, file: &Path) {
    let cli = read_trajectory(file).unwrap();
    assert_eq!(bits(&lib.time), bits(&cli.time), "time");
    assert_eq!(bits(&lib.state), bits(&cli.state), "state");
    assert_eq!((lib.dim, lib.members), (cli.dim, cli.members));
    assert_eq!(lib.variables, cli.variables);
    for (k, v) in &lib.attrs {
        let w = cli.attrs.get(k).unwrap_or_else(|| panic!("attribute {k}"));
        match (v, w) {
            (phaseflow::io::AttrValue::F64(a), phaseflow::io::AttrValue::F64(b)) => {
                assert_eq!(a.to_bits(), b.to_bits(), "{k}")
            }
            _ => assert_eq!(v, w, "{k}"),
        }
    }
}

/// The library's trajectory, written by `io::write_trajectory`, reads back as itself.
fn round_trip(lib: &Trajectory, dir: &Path) {
    let p = dir.join("lib.h5");
    write_trajectory(&p, lib).unwrap();
    assert_same(lib, &p);
}

#[test]
fn ode_run_is_the_cli_run() {
    let dir = tmpdir();
    let out = dir.path().join("cli.h5");
    cli(&[
        "simulate",
        "systems/lorenz.toml",
        "--points",
        "2000",
        "--burn-in",
        "15",
        "--rtol",
        "1e-9",
        "--atol",
        "1e-9",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    let sys = load("systems/lorenz.toml");
    let r = Run::new(&sys)
        .points(2000)
        .burn_in(15.0)
        .tolerances(1e-9, 1e-9)
        .run()
        .unwrap();
    assert_same(&r.trajectory, &out);
    round_trip(&r.trajectory, dir.path());
    assert_eq!(r.solver, "dop853");
}

#[test]
fn ensemble_is_the_cli_ensemble() {
    let dir = tmpdir();
    let out = dir.path().join("cli.h5");
    cli(&[
        "simulate",
        "rossler",
        "--ensemble",
        "4",
        "--seed",
        "7",
        "--points",
        "300",
        "--method",
        "dopri5",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    let sys = load("rossler");
    let r = Run::new(&sys)
        .start(Start::Attractor(4))
        .seed(7)
        .points(300)
        .method(phaseflow::integrate::Method::Dopri5)
        .run()
        .unwrap();
    assert_eq!(r.trajectory.members, 4);
    assert_same(&r.trajectory, &out);
    round_trip(&r.trajectory, dir.path());
}

#[test]
fn sde_file_through_the_library_is_an_sde_run() {
    let dir = tmpdir();
    let out = dir.path().join("cli.h5");
    let file = "systems/linear/bead_spring_2.toml";
    cli(&[
        "simulate",
        file,
        "--points",
        "400",
        "--seed",
        "5",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    let sys = load(file);
    let r = Run::new(&sys).points(400).seed(5).run().unwrap();
    assert_eq!(r.solver, "stochastic-heun");
    // σ = √(2D) from the file's [diffusion] table
    let d = sys.diffusion().unwrap();
    match r.trajectory.attrs.get("noise_sigma") {
        Some(phaseflow::io::AttrValue::F64s(s)) => {
            let want: Vec<f64> = d.iter().map(|d| (2.0 * d).sqrt()).collect();
            assert_eq!(bits(s), bits(&want));
        }
        other => panic!("noise_sigma: {other:?}"),
    }
    assert_same(&r.trajectory, &out);
    // another seed, another path: the noise is real
    let other = Run::new(&sys).points(400).seed(6).run().unwrap();
    assert_ne!(bits(&other.trajectory.state), bits(&r.trajectory.state));
    // explicit additive noise in units of the reference std matches the command line too
    let out2 = dir.path().join("cli2.h5");
    cli(&[
        "simulate",
        "lorenz",
        "--noise",
        "0.05",
        "--noise-units",
        "std",
        "--points",
        "300",
        "-q",
        "-o",
        out2.to_str().unwrap(),
    ]);
    let lorenz = load("systems/lorenz.toml");
    let r2 = Run::new(&lorenz)
        .noise(NoiseSetting::Additive {
            sigma: vec![0.05],
            units: NoiseUnits::Std,
        })
        .points(300)
        .run()
        .unwrap();
    assert_same(&r2.trajectory, &out2);
}

#[test]
fn delay_embedding_is_the_cli_embedding() {
    let dir = tmpdir();
    let out = dir.path().join("cli.h5");
    cli(&[
        "simulate",
        "mackey_glass",
        "--embed",
        "4",
        "--burn-in",
        "100",
        "--points",
        "500",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    let sys = load("mackey_glass");
    let r = Run::new(&sys)
        .embed(Embed {
            dimension: 4,
            lag: None,
        })
        .burn_in(100.0)
        .points(500)
        .run()
        .unwrap();
    assert_eq!(r.trajectory.dim, 4);
    assert_same(&r.trajectory, &out);
    round_trip(&r.trajectory, dir.path());
}

#[test]
fn map_and_ic_file_are_the_cli_ones() {
    let dir = tmpdir();
    let out = dir.path().join("cli.h5");
    cli(&[
        "simulate",
        "henon",
        "--points",
        "700",
        "--burn-in",
        "10",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    let sys = load("henon");
    let r = Run::new(&sys).points(700).burn_in(10.0).run().unwrap();
    assert_same(&r.trajectory, &out);
    // an ensemble from a file of initial conditions
    let ics = dir.path().join("ics.txt");
    std::fs::write(&ics, "0.1 0.1\n# comment\n0.2, -0.1\n").unwrap();
    let out = dir.path().join("cli_ics.h5");
    cli(&[
        "simulate",
        "henon",
        "--ic-file",
        ics.to_str().unwrap(),
        "--points",
        "50",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    let states = phaseflow::simulate::read_initial_conditions(&ics, &sys).unwrap();
    assert_eq!(states, vec![vec![0.1, 0.1], vec![0.2, -0.1]]);
    let r = Run::new(&sys)
        .start(Start::States(states))
        .points(50)
        .run()
        .unwrap();
    assert_same(&r.trajectory, &out);
}

/// Every dataset of an HDF5 file, read as f64, by path (groups walked recursively).
fn datasets(path: &Path) -> Vec<(String, Vec<u64>)> {
    fn walk(g: &hdf5::Group, prefix: &str, out: &mut Vec<(String, Vec<u64>)>) {
        for name in g.member_names().unwrap() {
            let p = format!("{prefix}/{name}");
            if let Ok(ds) = g.dataset(&name) {
                out.push((p, bits(&ds.read_raw::<f64>().unwrap())));
            } else if let Ok(sub) = g.group(&name) {
                walk(&sub, &p, out);
            }
        }
    }
    let f = hdf5::File::open(path).unwrap();
    let mut out = Vec::new();
    walk(&f, "", &mut out);
    out
}

#[test]
fn particle_run_is_the_cli_run() {
    use phaseflow::particles::{run, ParticleModel};
    let dir = tmpdir();
    let out = dir.path().join("cli.h5");
    cli(&[
        "simulate",
        "systems/active/trap.toml",
        "--set",
        "v0=0.3",
        "--replicas",
        "3",
        "--burn-in",
        "10",
        "--t-end",
        "50",
        "--every",
        "250",
        "--seed",
        "3",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    let file = PathBuf::from("systems/active/trap.toml");
    let model = ParticleModel::load(&file, &[("v0".to_string(), 0.3)]).unwrap();
    let lib = dir.path().join("lib.h5");
    let cfg = run::RunConfig {
        steps: (50.0 / model.dt).round() as u64,
        every: 250,
        burn_in_steps: (10.0 / model.dt).round() as u64,
        replicas: 3,
        seed: 3,
        resume: false,
        cancel: Cancel::new(),
        command: String::new(),
        abort_after_frames: None,
        checkpoint_interval: phaseflow::io::h5md::DEFAULT_CHECKPOINT_INTERVAL,
        warn: |_| {},
    };
    let summary = run::run(&model, &lib, &cfg, &NoProgress).unwrap();
    assert_eq!(summary.replicas, 3);
    let (a, b) = (datasets(&out), datasets(&lib));
    assert_eq!(
        a.iter().map(|d| &d.0).collect::<Vec<_>>(),
        b.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x, y, "{name}");
    }
}

/// The frames a run holds in memory ([`run::FrameRecorder`], as the Python package takes them)
/// are the file's, bit for bit, with or without the file; a recording larger than the memory
/// limit is refused before anything runs.
#[test]
fn recorded_frames_are_the_file_frames() {
    use phaseflow::particles::{run, ParticleModel};
    let model = ParticleModel::load(
        Path::new("systems/active/mips.toml"),
        &[("N".to_string(), 64.0)],
    )
    .unwrap();
    let cfg = run::RunConfig {
        steps: 300,
        every: 30,
        burn_in_steps: 20,
        replicas: 2,
        seed: 9,
        resume: false,
        cancel: Cancel::new(),
        command: String::new(),
        abort_after_frames: None,
        checkpoint_interval: phaseflow::io::h5md::DEFAULT_CHECKPOINT_INTERVAL,
        warn: |_| {},
    };
    let dir = tmpdir();
    let out = dir.path().join("run.h5");
    let mut with_file = run::FrameRecorder::new(&model, &cfg).unwrap();
    let s = run::run_to(&model, Some(&out), &cfg, &NoProgress, Some(&mut with_file)).unwrap();
    assert_eq!((s.frames, s.output.as_deref()), (11, Some(out.as_path())));
    let file = phaseflow::io::h5md::read_particle_samples(&out).unwrap();
    assert_eq!(with_file.frames(), file.frames);
    assert_eq!(bits(&with_file.position), bits(&file.x));
    assert_eq!(with_file.image, file.image);
    assert_eq!(bits(&with_file.propulsion), bits(&file.g));
    assert_eq!(bits(&with_file.time), bits(&file.time));
    assert_eq!(
        with_file.step,
        (0..11).map(|k| 20 + 30 * k).collect::<Vec<u64>>()
    );
    let f = hdf5::File::open(&out).unwrap();
    for (name, values) in &with_file.series {
        let v = f
            .dataset(&format!("observables/{name}/value"))
            .unwrap()
            .read_raw::<f64>()
            .unwrap();
        assert_eq!(bits(values), bits(&v), "{name}");
    }
    let names: Vec<&str> = with_file.series.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "msd",
            "propulsion_autocorrelation",
            "largest_cluster_fraction"
        ]
    );
    let avg = with_file.averages.as_ref().expect("pair forces in 2-D");
    for (name, data) in avg.datasets() {
        for (k, v) in data {
            let w = f
                .dataset(&format!("analysis/{name}/{k}"))
                .unwrap()
                .read_raw::<f64>()
                .unwrap();
            assert_eq!(bits(v), bits(&w), "{name}/{k}");
        }
    }
    drop(f);
    let read = phaseflow::io::h5md::read_averages(&out).unwrap();
    assert_eq!(read.len(), 2);
    for (name, data) in avg.datasets() {
        assert_eq!(read[name].len(), data.len());
        for (k, v) in data {
            assert_eq!(bits(v), bits(&read[name][k]), "{name}/{k}");
        }
    }
    // no file: the same frames and summary
    let mut memory = run::FrameRecorder::new(&model, &cfg).unwrap();
    let t = run::run_to(&model, None, &cfg, &NoProgress, Some(&mut memory)).unwrap();
    assert_eq!(bits(&memory.position), bits(&with_file.position));
    assert_eq!(memory.series, with_file.series);
    assert_eq!(memory.averages, with_file.averages);
    assert_eq!((t.frames, t.steps, t.output), (s.frames, s.steps, None));
    assert_eq!(t.largest_cluster_fraction, s.largest_cluster_fraction);
    // too large for the limit: refused, naming the size
    let e = run::FrameRecorder::within(&model, &cfg, 1000).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("the recorded frames would take 57.0 kB in memory (11 frames × 2 replica(s) × 64 particles), more than the limit of 1.0 kB"),
        "{e}"
    );
}

#[test]
fn invariants_are_the_cli_invariants() {
    use phaseflow::analysis::invariants::{compute, InvariantSettings};
    let json = cli(&[
        "invariants",
        "lorenz",
        "--t-end",
        "200",
        "--transient",
        "10",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let sys = load("systems/lorenz.toml");
    let settings = InvariantSettings {
        span: Some(200.0),
        transient: Some(10.0),
        ..InvariantSettings::default()
    };
    let inv = compute(&sys, &settings).unwrap();
    let from_cli: Vec<f64> = v["lyapunov_spectrum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(bits(&from_cli), bits(&inv.lyapunov_spectrum));
    assert_eq!(
        v["kaplan_yorke_dimension"].as_f64().unwrap().to_bits(),
        inv.kaplan_yorke_dimension.to_bits()
    );
}

#[test]
fn epr_is_the_cli_epr() {
    use phaseflow::analysis::{epr, epr_output};
    let dir = tmpdir();
    // exact EPR of a linear SDE definition
    let json = cli(&[
        "epr",
        "--exact",
        "--system",
        "systems/linear/bead_spring_2.toml",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let file = PathBuf::from("systems/linear/bead_spring_2.toml");
    let exact = epr_output::exact_of_definition(&file, &Overrides::default()).unwrap();
    assert_eq!(v, serde_json::to_value(&exact).unwrap());
    // learning-free reference on particle samples
    let data = dir.path().join("trap.h5");
    cli(&[
        "simulate",
        "systems/active/trap.toml",
        "--set",
        "N=4",
        "--set",
        "k=0",
        "--replicas",
        "4",
        "--burn-in",
        "20",
        "--t-end",
        "100",
        "--every",
        "100",
        "-q",
        "-o",
        data.to_str().unwrap(),
    ]);
    let json = cli(&["epr", "--data", data.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let samples = phaseflow::io::h5md::read_particle_samples(&data).unwrap();
    let model = phaseflow::particles::ParticleModel::at_parameters(
        &samples.definition,
        &PathBuf::from(&samples.definition_path),
        &samples.parameters,
        &[],
    )
    .unwrap();
    let r = epr::reference_epr(&model, &samples, 20, &Cancel::new(), &NoProgress).unwrap();
    #[cfg(feature = "learn")]
    {
        // the same as sample_epr without a model
        let s = epr::sample_epr(None, &model, &samples, 20, &Cancel::new(), &NoProgress).unwrap();
        assert_eq!(s.epr_reference.to_bits(), r.epr_reference.to_bits());
        assert_eq!(
            s.epr_reference_stderr.to_bits(),
            r.epr_reference_stderr.to_bits()
        );
    }
    assert_eq!(
        v["epr_reference"].as_f64().unwrap().to_bits(),
        r.epr_reference.to_bits()
    );
    assert_eq!(
        v["epr_reference_stderr"].as_f64().unwrap().to_bits(),
        r.epr_reference_stderr.to_bits()
    );
}

#[test]
fn forecast_bench_is_the_cli_bench() {
    use phaseflow::forecast::{bench, data::Protocol};
    let dir = tmpdir();
    let cli_out = dir.path().join("cli");
    cli(&[
        "forecast",
        "bench",
        "--systems",
        "lorenz",
        "--models",
        "naive,mean",
        "-q",
        "-o",
        cli_out.to_str().unwrap(),
    ]);
    let lib_out = dir.path().join("lib");
    let opts = bench::BenchOptions {
        systems: vec![phaseflow::systems::resolve_system("lorenz").unwrap()],
        models: vec!["naive".into(), "mean".into()],
        external: Vec::new(),
        protocol: Protocol::named("short", 100.0).unwrap(),
        out: lib_out.clone(),
        vpt_threshold: 30.0,
        tune: true,
        pinned: Vec::new(),
        external_timeout: phaseflow::forecast::external::DEFAULT_TIMEOUT,
        cancel: phaseflow::control::Cancel::new(),
        shard: None,
    };
    bench::run(&opts, &NoProgress).unwrap();
    for m in ["naive", "mean"] {
        let read = |root: &Path| -> serde_json::Value {
            let mut v: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(root.join("results/lorenz").join(format!("{m}.json")))
                    .unwrap(),
            )
            .unwrap();
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| !k.contains("seconds"));
            }
            v
        };
        assert_eq!(read(&cli_out), read(&lib_out), "{m}");
    }
    let board = |root: &Path| std::fs::read_to_string(root.join("leaderboard.csv")).unwrap();
    assert_eq!(board(&cli_out), board(&lib_out));
}
