//! Lyapunov spectra against literature values and exact identities: Lorenz (σ = 10, ρ = 28,
//! β = 8/3): (0.9056, 0, −14.5723) with the trace identity Σλ = −(σ + 1 + β); Hénon (1.4, 0.3):
//! λ1 = 0.4192, λ1 + λ2 = ln 0.3; logistic r = 4: ln 2; Kaplan–Yorke of Lorenz ≈ 2.06.

use phaseflow::analysis::lyapunov::{kaplan_yorke, spectrum, SpectrumOptions};
use phaseflow::control::Cancel;
use phaseflow::systems::{CompiledSystem, Overrides, SystemSpec};
use std::path::Path;
use std::time::Instant;

fn system(text: &str) -> CompiledSystem {
    let spec = SystemSpec::from_str_at(text, Path::new("test.toml")).unwrap();
    CompiledSystem::new(spec, &Overrides::default()).unwrap()
}

const LORENZ: &str = r#"
name = "Lorenz83"
kind = "flow"
variables = ["x", "y", "z"]
initial_conditions = [1.0, 1.0, 20.0]
[parameters]
sigma = 10.0
rho = 28.0
beta = 2.6666666666666665
[equations]
x = "sigma * (y - x)"
y = "x * (rho - z) - y"
z = "x * y - beta * z"
"#;

#[test]
fn lorenz_spectrum_matches_literature_and_trace_identity() {
    let sys = system(LORENZ);
    let opts = SpectrumOptions {
        transient: 50.0,
        span: 10_000.0,
        qr_interval: 0.5,
        ..SpectrumOptions::default()
    };
    let start = Instant::now();
    let s = spectrum(&sys, 0.0, &[1.0, 1.0, 20.0], &opts).unwrap();
    println!(
        "Lorenz spectrum {:?} ± {:?} in {:?}",
        s.exponents,
        s.errors,
        start.elapsed()
    );
    let (l1, l2, l3) = (s.exponents[0], s.exponents[1], s.exponents[2]);
    assert!(
        (l1 - 0.9056).abs() < 2e-3 + 3.0 * s.errors[0],
        "λ1 = {l1} ± {}",
        s.errors[0]
    );
    assert!((l1 - 0.9056).abs() < 1e-2, "λ1 = {l1}");
    assert!(l2.abs() < 2e-3, "λ2 = {l2}");
    assert!((l3 + 14.5723).abs() < 1e-2, "λ3 = {l3}");
    // trace identity: Σ ln R_ii = ∫ tr J dt exactly; tr J = −(σ + 1 + β) is constant
    let sum = l1 + l2 + l3;
    assert!((sum + (10.0 + 1.0 + 8.0 / 3.0)).abs() < 1e-6, "sum {sum}");
    let ky = kaplan_yorke(&s.exponents);
    assert!((ky - 2.06).abs() < 0.005, "Kaplan–Yorke {ky}");
}

#[test]
fn henon_and_logistic_maps() {
    let henon = system(
        r#"
name = "Henon"
kind = "map"
variables = ["x", "y"]
initial_conditions = [0.1, 0.1]
[parameters]
a = 1.4
b = 0.3
[equations]
x = "1 - a * x^2 + y"
y = "b * x"
"#,
    );
    let opts = SpectrumOptions {
        transient: 1000.0,
        span: 1_000_000.0,
        qr_interval: 1.0,
        ..SpectrumOptions::default()
    };
    let s = spectrum(&henon, 0.0, &[0.1, 0.1], &opts).unwrap();
    println!("Hénon {:?} ± {:?}", s.exponents, s.errors);
    assert!(
        (s.exponents[0] - 0.4192).abs() < 2e-3,
        "λ1 = {}",
        s.exponents[0]
    );
    // |det J| = b everywhere: λ1 + λ2 = ln 0.3 up to rounding
    assert!((s.sum - 0.3f64.ln()).abs() < 1e-9, "sum {}", s.sum);
    let logistic = system(
        r#"
name = "Logistic"
kind = "map"
variables = ["x"]
initial_conditions = [0.3]
[parameters]
r = 4.0
[equations]
x = "r * x * (1 - x)"
"#,
    );
    let opts = SpectrumOptions {
        transient: 100.0,
        span: 200_000.0,
        ..opts
    };
    // (at r = 4 double-precision orbits eventually hit 0 or 1's preimages; 2e5 iterates from 0.3 do not)
    let s = spectrum(&logistic, 0.0, &[0.3], &opts).unwrap();
    println!("logistic {:?} ± {:?}", s.exponents, s.errors);
    assert!(
        (s.exponents[0] - 2f64.ln()).abs() < 5e-3,
        "λ = {}",
        s.exponents[0]
    );
}

/// Grassberger–Procaccia: Hénon ≈ 1.22 and Lorenz ≈ 2.05 (±0.05), with the fit range of the
/// documented correlation-sum window.
#[test]
fn correlation_dimensions_of_henon_and_lorenz() {
    use phaseflow::analysis::dimension::correlation_dimension;
    use phaseflow::integrate::{integrate, SolverOptions};
    use phaseflow::systems::System;
    // Hénon: 30000 iterates after a transient
    let (a, b) = (1.4, 0.3);
    let (mut x, mut y) = (0.1f64, 0.1f64);
    let mut pts = Vec::new();
    for n in 0..31000 {
        let nx = 1.0 - a * x * x + y;
        y = b * x;
        x = nx;
        if n >= 1000 {
            pts.extend_from_slice(&[x, y]);
        }
    }
    let c = correlation_dimension(&pts, 2, 0, 0.5, &Cancel::new())
        .unwrap()
        .unwrap();
    println!(
        "Hénon D2 = {} ± {} over {:?}",
        c.dimension, c.error, c.fit_range
    );
    assert!(
        (c.dimension - 1.22).abs() < 0.05,
        "Hénon D2 {}",
        c.dimension
    );
    // Lorenz: 30000 samples 0.05 apart after a transient, Theiler window of one period (30 samples)
    let sys = system(LORENZ);
    let times: Vec<f64> = (0..30000).map(|k| 50.0 + 0.05 * k as f64).collect();
    let mut traj = Vec::with_capacity(3 * times.len());
    integrate(
        &sys,
        &SolverOptions::default(),
        0.0,
        &[1.0, 1.0, 20.0],
        &times,
        &mut |_, _, v| {
            traj.extend_from_slice(&v[..sys.dim()]);
            true
        },
    )
    .unwrap();
    let c = correlation_dimension(&traj, 3, 30, 5.0, &Cancel::new())
        .unwrap()
        .unwrap();
    println!(
        "Lorenz D2 = {} ± {} over {:?}",
        c.dimension, c.error, c.fit_range
    );
    assert!(
        (c.dimension - 2.05).abs() < 0.05,
        "Lorenz D2 {}",
        c.dimension
    );
}

/// Rosenstein's method on the x-series of Lorenz (no equations used) within 10 % of 0.9056.
#[test]
fn rosenstein_on_a_lorenz_series() {
    use phaseflow::analysis::timeseries::rosenstein;
    let dt = 0.01;
    let xs = lorenz_x_series(12000, dt);
    // embedding m = 5 with delay 0.1 (10 samples), exclusion of one period (~0.75 time units),
    // divergence followed for 8 time units (to the plateau)
    let est = rosenstein(&xs, dt, 5, 10, 75, 800).unwrap();
    println!("Rosenstein λ = {} (fit {:?})", est.lambda, est.fit);
    assert!(
        (est.lambda / 0.9056 - 1.0).abs() < 0.10,
        "λ = {}",
        est.lambda
    );
}

/// Two-trajectory renormalisation (no Jacobian) agrees with the variational λ1 for Lorenz.
#[test]
fn two_trajectory_maximal_exponent() {
    use phaseflow::analysis::lyapunov::max_exponent_two_trajectories;
    let sys = system(LORENZ);
    let opts = SpectrumOptions {
        transient: 50.0,
        span: 5000.0,
        qr_interval: 0.5,
        ..SpectrumOptions::default()
    };
    let (l, e) = max_exponent_two_trajectories(&sys, 0.0, &[1.0, 1.0, 20.0], &opts).unwrap();
    println!("two trajectories λ1 = {l} ± {e}");
    assert!((l - 0.9056).abs() < 0.01, "λ1 = {l} ± {e}");
}

/// `phaseflow catalogue invariants`: table columns, dysts values side by side, the phaseflow_*
/// values written into (a copy of) a definition file — replaced, not duplicated, on a second run —
/// and --resume of a partial table.
#[test]
fn catalogue_invariants_table_and_reference_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lorenz.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/systems/lorenz.toml"),
        &file,
    )
    .unwrap();
    let out = dir.path().join("t.csv");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "catalogue",
            "invariants",
            "--systems",
            file.to_str().unwrap(),
            "--span-periods",
            "200",
            "--correlation-points",
            "3000",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_phaseflow"))
            .args(&args)
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        let o = run(&["--write-reference"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let table = std::fs::read_to_string(&out).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("system"), "\"Lorenz\"");
    let l1: f64 = col("lyapunov_spectrum")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((l1 - 0.9056).abs() < 0.05, "λ1 {l1}");
    assert!(col("lyapunov_spectrum_dysts").starts_with("1.09"));
    assert_eq!(col("status"), "\"ok\"");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("phaseflow_lyapunov_spectrum = [").count(), 1);
    assert!(text.contains("lyapunov_spectrum_dysts"));
    let spec = SystemSpec::from_str_at(&text, &file).unwrap();
    let l = spec.reference_array("phaseflow_lyapunov_spectrum").unwrap();
    assert!((l[0] - 0.9056).abs() < 0.05);
    // resume: a partial table with Lorenz done is completed without recomputing it
    let partial = dir.path().join(".t.csv.partial");
    std::fs::copy(&out, &partial).unwrap();
    let o = run(&["--resume"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("0 systems computed now, 1 from the partial table"));
}

/// Kantz's neighbourhood method on the same Lorenz x-series, within 15 % of 0.9056.
#[test]
fn kantz_on_a_lorenz_series() {
    use phaseflow::analysis::timeseries::kantz;
    let dt = 0.01;
    let xs = lorenz_x_series(8000, dt);
    let est = kantz(&xs, dt, 5, 10, 75, 1.0, 800).unwrap();
    println!("Kantz λ = {} (fit {:?})", est.lambda, est.fit);
    assert!(
        (est.lambda / 0.9056 - 1.0).abs() < 0.15,
        "λ = {}",
        est.lambda
    );
}

/// Delay equations: the leading exponent of Mackey–Glass (β = 0.2, γ = 0.1, n = 10) from the
/// discretised history: τ = 17 is chaotic with λ1 ≈ 0.007 per time unit (Farmer, Physica D 4,
/// 366, 1982), τ = 16 (dysts' value) settles on a periodic orbit (λ1 = 0).
#[test]
fn mackey_glass_leading_exponent() {
    use phaseflow::analysis::lyapunov::dde_max_exponent;
    let text = |tau: f64| {
        format!(
            "name = \"MG\"\nkind = \"dde\"\nvariables = [\"x\"]\ninitial_conditions = [0.76980123]\n[parameters]\nbeta = 0.2\ngamma = 0.1\nn = 10.0\ntau = {tau:?}\n[equations]\nx = \"beta * x(t - tau) / (1 + x(t - tau)^n) - gamma * x\"\n"
        )
    };
    let opts = |tau: f64| SpectrumOptions {
        transient: 20.0 * tau,
        span: 500.0 * tau,
        rtol: 1e-11,
        atol: 1e-11,
        ..SpectrumOptions::default()
    };
    let (l17, e17) =
        dde_max_exponent(&system(&text(17.0)), 0.0, &[0.76980123], &opts(17.0), 100).unwrap();
    println!("MG τ = 17: λ1 = {l17} ± {e17}");
    assert!((0.004..0.010).contains(&l17), "τ = 17: λ1 = {l17} ± {e17}");
    let (l16, e16) =
        dde_max_exponent(&system(&text(16.0)), 0.0, &[0.76980123], &opts(16.0), 100).unwrap();
    println!("MG τ = 16: λ1 = {l16} ± {e16}");
    assert!(l16.abs() < 0.002, "τ = 16: λ1 = {l16} ± {e16}");
}

/// Linear delay equation x' = −x(t − 1): its Lyapunov exponents are the real parts of the
/// characteristic roots λ = −e^{−λ}, i.e. λ = W_k(−1) (Lambert W): the leading complex pair
/// W_0(−1) = −0.318132 ± 1.337236i, then W_{±1}(−1) = −2.062278 ± 7.588631i; each pair gives
/// two equal exponents. The finite-difference QR method on the discretised history (100 samples
/// per delay) recovers them; the tolerance 0.01 covers the window discretisation (linear
/// interpolation between samples, O(h²) per window) and the block error.
#[test]
fn linear_dde_spectrum_is_the_characteristic_roots() {
    use phaseflow::analysis::lyapunov::dde_spectrum;
    let sys = system(
        "name = \"LinearDelay\"\nkind = \"dde\"\nvariables = [\"x\"]\ninitial_conditions = [1.0]\n[parameters]\ntau = 1.0\n[equations]\nx = \"-x(t - tau)\"\n",
    );
    let opts = SpectrumOptions {
        exponents: 4,
        transient: 5.0,
        span: 2000.0,
        rtol: 1e-11,
        atol: 1e-11,
        ..SpectrumOptions::default()
    };
    let s = dde_spectrum(&sys, 0.0, &[1.0], &opts, 100).unwrap();
    println!("x' = -x(t-1): {:?} ± {:?}", s.exponents, s.errors);
    let expected = [-0.318132, -0.318132, -2.062278, -2.062278];
    for (l, e) in s.exponents.iter().zip(expected) {
        assert!((l - e).abs() < 0.01, "{:?} vs {expected:?}", s.exponents);
    }
}

/// Mackey–Glass τ = 17 (β = 0.2, γ = 0.1, n = 10): the three leading exponents. λ1 agrees with
/// the two-trajectory value (≈ 0.007, Farmer 1982), λ2 is the zero exponent of an autonomous
/// flow (exact), λ3 < 0, and the Kaplan–Yorke dimension is Farmer's ≈ 2.1.
#[test]
fn mackey_glass_spectrum_has_the_flow_zero_exponent() {
    use phaseflow::analysis::lyapunov::{dde_spectrum, kaplan_yorke};
    let sys = system(
        "name = \"MG\"\nkind = \"dde\"\nvariables = [\"x\"]\ninitial_conditions = [0.76980123]\n[parameters]\nbeta = 0.2\ngamma = 0.1\nn = 10.0\ntau = 17.0\n[equations]\nx = \"beta * x(t - tau) / (1 + x(t - tau)^n) - gamma * x\"\n",
    );
    let opts = SpectrumOptions {
        exponents: 3,
        transient: 20.0 * 17.0,
        span: 500.0 * 17.0,
        rtol: 1e-11,
        atol: 1e-11,
        ..SpectrumOptions::default()
    };
    let s = dde_spectrum(&sys, 0.0, &[0.76980123], &opts, 100).unwrap();
    let dky = kaplan_yorke(&s.exponents);
    println!(
        "MG τ = 17: {:?} ± {:?}, D_KY = {dky}",
        s.exponents, s.errors
    );
    assert!(
        (0.004..0.010).contains(&s.exponents[0]),
        "{:?}",
        s.exponents
    );
    assert!(s.exponents[1].abs() < 0.002, "{:?}", s.exponents);
    assert!(s.exponents[2] < -0.01, "{:?}", s.exponents);
    assert!((1.9..2.4).contains(&dky), "D_KY = {dky}");
}

/// The x-coordinate of Lorenz sampled every `dt` after a transient of 50 time units.
fn lorenz_x_series(n: usize, dt: f64) -> Vec<f64> {
    use phaseflow::integrate::{integrate, SolverOptions};
    let sys = system(LORENZ);
    let times: Vec<f64> = (0..n).map(|k| 50.0 + dt * k as f64).collect();
    let mut xs = Vec::with_capacity(n);
    integrate(
        &sys,
        &SolverOptions::default(),
        0.0,
        &[1.0, 1.0, 20.0],
        &times,
        &mut |_, _, v| {
            xs.push(v[0]);
            true
        },
    )
    .unwrap();
    xs
}

/// `phaseflow series`: a Lorenz trajectory file analysed as data (no equations): Rosenstein's
/// exponent within 15 % of 0.9056 and a correlation dimension near 2.05 with the default
/// embedding; a text series needs --dt, and a bad line is named.
#[test]
fn series_command_on_lorenz_data() {
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("l.h5");
    let bin = env!("CARGO_BIN_EXE_phaseflow");
    let o = std::process::Command::new(bin)
        .args([
            "simulate",
            "lorenz",
            "--t-end",
            "200",
            "--dt-out",
            "0.01",
            "--burn-in",
            "50",
            "-q",
            "-o",
        ])
        .arg(&h5)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = std::process::Command::new(bin)
        .arg("series")
        .arg(&h5)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let l = v["lyapunov_rosenstein"].as_f64().unwrap();
    assert!((l / 0.9056 - 1.0).abs() < 0.15, "Rosenstein {l}");
    let d2 = v["correlation_dimension"].as_f64().unwrap();
    assert!((d2 - 2.05).abs() < 0.15, "D2 {d2}");
    let txt = dir.path().join("s.txt");
    std::fs::write(&txt, "0.1\n0.2\nabc\n").unwrap();
    let o = std::process::Command::new(bin)
        .arg("series")
        .arg(&txt)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--dt"));
    let o = std::process::Command::new(bin)
        .arg("series")
        .arg(&txt)
        .args(["--dt", "0.1"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("s.txt:3: 'abc' is not a number"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Cancellation: a token set while [`phaseflow::analysis::invariants::compute`] runs stops it at
/// its next check with `InvariantsError::Interrupted`, whichever stage it is in — the spectrum of
/// a flow (variational DOP853; from several initial conditions), of a map, of a delay equation,
/// the correlation trajectory, the correlation sum. Each setting here runs for minutes
/// uncancelled; the token is set after 0.3 s and the call must return within 1 s of it (the
/// checks are milliseconds apart). A token set before the call stops it before any work.
#[test]
fn a_cancelled_token_stops_invariants_promptly() {
    use phaseflow::analysis::dimension::correlation_sums;
    use phaseflow::analysis::invariants::{compute, InvariantSettings, InvariantsError};
    use std::time::Duration;
    let load = |name: &str| CompiledSystem::load(name, &Overrides::default()).unwrap();
    let after = Duration::from_millis(300);
    // the time from cancellation to the return of `work`, which must be `Interrupted`
    fn latency<T: std::fmt::Debug, E: std::fmt::Debug>(
        cancel: &Cancel,
        after: Duration,
        work: impl FnOnce() -> Result<T, E>,
        interrupted: impl Fn(&E) -> bool,
    ) -> Duration {
        std::thread::scope(|s| {
            let setter = s.spawn(|| {
                std::thread::sleep(after);
                cancel.cancel();
                Instant::now()
            });
            let r = work();
            let end = Instant::now();
            let at = setter.join().unwrap();
            match r {
                Err(e) if interrupted(&e) => end.saturating_duration_since(at),
                other => panic!("not interrupted: {other:?}"),
            }
        })
    }
    let cases: [(&str, InvariantSettings); 5] = [
        (
            "lorenz",
            InvariantSettings {
                span: Some(1e7),
                correlation_points: 0,
                ..InvariantSettings::default()
            },
        ),
        (
            "henon",
            InvariantSettings {
                span: Some(1e11),
                correlation_points: 0,
                ..InvariantSettings::default()
            },
        ),
        (
            "mackey_glass",
            InvariantSettings {
                span: Some(1e7),
                ..InvariantSettings::default()
            },
        ),
        (
            "lorenz",
            InvariantSettings {
                span: Some(1e6),
                ics: 20,
                correlation_points: 0,
                ..InvariantSettings::default()
            },
        ),
        (
            // a short spectrum, then the correlation trajectory of 2·10^6 points (seconds) and
            // its correlation sum (an hour)
            "lorenz",
            InvariantSettings {
                span: Some(1.0),
                transient: Some(0.0),
                correlation_points: 2_000_000,
                ..InvariantSettings::default()
            },
        ),
    ];
    for (name, settings) in cases {
        let sys = load(name);
        let cancel = Cancel::new();
        let settings = InvariantSettings {
            cancel: cancel.clone(),
            ..settings
        };
        let late = latency(
            &cancel,
            after,
            || compute(&sys, &settings),
            |e| matches!(e, InvariantsError::Interrupted),
        );
        println!(
            "{name} {:?}: stopped {late:?} after the token was set",
            settings.span
        );
        assert!(late < Duration::from_secs(1), "{name}: {late:?}");
        // set before the call: nothing is computed
        let t = Instant::now();
        let r = compute(&sys, &settings);
        assert!(matches!(r, Err(InvariantsError::Interrupted)), "{r:?}");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
    }
    // the correlation sum on its own: 2·10^5 points in the unit cube with r_max = 0.5 (≈ 10^10
    // pairs examined uncancelled)
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let pts: Vec<f64> = (0..600_000)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    let cancel = Cancel::new();
    let late = latency(
        &cancel,
        after,
        || correlation_sums(&pts, 3, 0, 0.5, 4.0, 64, &cancel),
        |_| true,
    );
    println!("correlation sum: stopped {late:?} after the token was set");
    assert!(late < Duration::from_secs(1), "correlation sum: {late:?}");
}

/// Ctrl-C (SIGINT) to `phaseflow invariants` during a computation of minutes: the command stops
/// within a second with `error: interrupted` (once) and exit status 1, as `phaseflow simulate`
/// does; SIGTERM likewise.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_stops_the_invariants_command() {
    use std::process::{Command, Stdio};
    use std::time::Duration;
    // whether `pid` has installed a handler for `signal` (SigCgt of /proc/PID/status)
    let catches = |pid: u32, signal: i32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (signal - 1)) != 0)
    };
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let child = Command::new(env!("CARGO_BIN_EXE_phaseflow"))
            .args(["invariants", "lorenz", "--t-end", "1e7", "--json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // the token is connected (the handler installed) just before the computation starts
        let t = Instant::now();
        while !catches(child.id(), signal) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no handler installed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: sends a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let sent = Instant::now();
        let o = child.wait_with_output().unwrap();
        let late = sent.elapsed();
        let err = String::from_utf8_lossy(&o.stderr);
        println!("signal {signal}: exited {late:?} after it");
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.trim(), "error: interrupted");
        assert!(o.stdout.is_empty());
        assert!(late < Duration::from_secs(1), "{late:?}");
    }
}
