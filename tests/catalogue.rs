//! Every definition file of the catalogue loads, compiles and integrates; the catalogue check
//! reproduces the reference statistics of a known system.

use phaseflow::catalogue::{check_file, CheckOptions, Verdict};
use phaseflow::integrate::SolverOptions;
use phaseflow::simulate::{trajectory, RunOptions, Sampling};
use phaseflow::systems::{
    catalogue_files, resolve_system, CompiledSystem, Kind, Overrides, SystemSpec,
};

#[test]
fn every_file_loads_compiles_and_integrates_briefly() {
    let files = catalogue_files();
    assert!(!files.is_empty());
    for f in files {
        let spec = SystemSpec::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let sys = CompiledSystem::new(spec, &Overrides::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let m = sys.model();
        let sampling = match m.kind {
            Kind::Map => Sampling::iterations(m.t0, 200),
            _ => Sampling::per_period(m.t0, m.period, 200, 100),
        };
        let opts = SolverOptions {
            rtol: 1e-8,
            atol: 1e-8,
            ..SolverOptions::default()
        };
        let rec = trajectory(
            &sys,
            &RunOptions::new(opts),
            &m.initial_condition,
            &sampling,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(rec.time.len(), 200, "{}", f.display());
        assert!(
            rec.state.iter().all(|v| v.is_finite()),
            "{}: non-finite output",
            f.display()
        );
    }
}

#[test]
fn check_reproduces_dysts_statistics_for_lorenz() {
    // dysts' stored mean/std come from 10 periods from the default IC: same protocol here
    let r = check_file(&resolve_system("lorenz").unwrap(), &CheckOptions::default());
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(
        r.mean_error.unwrap() < 0.01 && r.std_error.unwrap() < 0.01,
        "{r:?}"
    );
    // Rössler's dominant period is its rotation period (the file's 5.909) within the resolution
    let r = check_file(
        &resolve_system("rossler").unwrap(),
        &CheckOptions::default(),
    );
    let p = r.spectral_period.unwrap();
    assert!(
        (p / r.period - 1.0).abs() < 0.1,
        "spectral period {p} vs {}",
        r.period
    );
}

#[test]
fn check_fails_on_a_wrong_reference() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("wrong.toml");
    let text = std::fs::read_to_string(resolve_system("lorenz").unwrap()).unwrap();
    // shift the reference mean of z by one std: the check must fail
    let text = text.replace("23.545984293942695", "32.1");
    std::fs::write(&f, text).unwrap();
    let r = check_file(&f, &CheckOptions::default());
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    assert!(r.mean_error.unwrap() > 0.9);
}

#[test]
fn mackey_glass_long_run_matches_an_independent_integration() {
    // The file's mean_x_long_run / std_x_long_run were computed by an independent method-of-steps
    // integrator (RK4 with h = tau/320, cubic Hermite history, in Python) over a long run; with
    // dysts' tau = 16 the attractor is a periodic orbit, so the statistics agree to ~1e-4.
    let path = resolve_system("mackey_glass").unwrap();
    let spec = SystemSpec::load(&path).unwrap();
    let want_mean = spec.reference_array("mean_x_long_run").unwrap()[0];
    let want_std = spec.reference_array("std_x_long_run").unwrap()[0];
    let sys = CompiledSystem::new(spec, &Overrides::default()).unwrap();
    let sampling = Sampling::fixed(2000.0, 20000.0, 0.25);
    let opts = SolverOptions {
        rtol: 1e-9,
        atol: 1e-9,
        ..SolverOptions::default()
    };
    let rec = trajectory(
        &sys,
        &RunOptions::new(opts),
        &sys.model().initial_condition.clone(),
        &sampling,
    )
    .unwrap();
    let n = rec.state.len() as f64;
    let mean = rec.state.iter().sum::<f64>() / n;
    let std = (rec
        .state
        .iter()
        .map(|x| (x - mean) * (x - mean))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(
        (mean - want_mean).abs() < 1e-3 * want_std,
        "mean {mean} vs {want_mean}"
    );
    assert!(
        (std / want_std - 1.0).abs() < 1e-3,
        "std {std} vs {want_std}"
    );
}
