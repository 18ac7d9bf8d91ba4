//! `phaseflow.forecast.bench`: the library's forecast benchmark
//! ([`phaseflow::forecast::bench::run`]) with the settings of `phaseflow forecast bench`
//! ([`phaseflow::cli::forecast::bench_options`], so every option is checked with the command
//! line's message), run with the GIL released and Ctrl-C connected to its cancellation token.
//!
//! Systems are resolved as the rest of the package resolves them: in `$PHASEFLOW_SYSTEMS` when
//! set (exactly as the command line), else in the catalogue built into the module. The
//! benchmark reads definition files from disk, so a built-in definition is used from the
//! on-disk catalogue of [`phaseflow::systems::catalogue_dir`] when that holds the same text
//! (then its data and result files are named as the command line names them), and is
//! otherwise written to `OUTPUT/systems/…` first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use phaseflow::cli::forecast::{self as cli, BenchArgs, ProtocolArgs};
use phaseflow::control::{Cancel, Progress};
use phaseflow::forecast::bench;
use phaseflow::forecast::data::ProtocolName;
use phaseflow::systems::catalogue::classify;
use phaseflow::systems::{FileClass, Kind, SystemSpec};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{embedded, interruptible, resolve, source, PhaseflowError, Source};

/// Progress lines on Python's `sys.stderr` (only with `verbose`).
struct Lines {
    verbose: bool,
    total: AtomicU64,
    done: AtomicU64,
    note: Mutex<String>,
}

impl Progress for Lines {
    fn start(&self, len: u64, done: u64, _unit: &str) {
        self.total.store(len, Ordering::SeqCst);
        self.done.store(done, Ordering::SeqCst);
    }
    fn message(&self, msg: &str) {
        *self.note.lock().unwrap_or_else(|p| p.into_inner()) = msg.to_string();
    }
    fn advance(&self, delta: u64) {
        // one lock for the count and the line, so that lines come out in order
        let note = self.note.lock().unwrap_or_else(|p| p.into_inner());
        let done = self.done.fetch_add(delta, Ordering::SeqCst) + delta;
        if !self.verbose {
            return;
        }
        let line = format!(
            "forecast bench: {done}/{} {note}\n",
            self.total.load(Ordering::SeqCst)
        );
        Python::attach(|py| {
            if let Ok(err) = py.import("sys").and_then(|s| s.getattr("stderr")) {
                let _ = err.call_method1("write", (line,));
            }
        });
    }
}

/// The path of a built-in definition for the benchmark: the on-disk catalogue's file when it
/// has the same text, else the text written to `out/systems/<rel>`.
fn on_disk(rel: &str, text: &str, out: &Path) -> Result<PathBuf, String> {
    let shipped = phaseflow::systems::catalogue_dir().join(rel);
    if std::fs::read_to_string(&shipped).is_ok_and(|t| t == text) {
        return Ok(shipped);
    }
    let copy = out.join("systems").join(rel);
    if std::fs::read_to_string(&copy).is_ok_and(|t| t == text) {
        return Ok(copy);
    }
    if let Some(dir) = copy.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    phaseflow::io::write_bytes_atomically(&copy, text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(copy)
}

/// The definition files of `--systems` (`all` or comma-separated names or files) in the
/// catalogue built into the module (`$PHASEFLOW_SYSTEMS` unset).
fn embedded_systems(p: &ProtocolArgs) -> Result<Vec<PathBuf>, String> {
    let out = &p.output;
    let mut files = Vec::new();
    if p.systems.trim() == "all" {
        for (rel, text) in embedded::FILES {
            if classify(text).1 != FileClass::Equations {
                continue;
            }
            let label = PathBuf::from(format!("systems/{rel}"));
            let flow = SystemSpec::from_str_at(text, &label)
                .is_ok_and(|s| matches!(s.kind, Kind::Flow | Kind::Dde));
            if flow {
                files.push(on_disk(rel, text, out)?);
            }
        }
        return Ok(files);
    }
    for name in p.systems.split(',').map(str::trim) {
        let (text, label) = resolve(name).map_err(|e| e.to_string())?;
        if std::fs::read_to_string(&label).is_ok_and(|t| t == text) {
            // a file here (a path given, or the built-in one's label is a copy of it)
            files.push(label);
            continue;
        }
        let rel = label
            .to_str()
            .and_then(|l| l.strip_prefix("systems/"))
            .filter(|r| embedded::FILES.iter().any(|(f, t)| f == r && *t == text));
        match rel {
            Some(rel) => files.push(on_disk(rel, &text, out)?),
            None => files.push(label),
        }
    }
    Ok(files)
}

/// The benchmark's tables: the leaderboard (one row per model and metric, as the command
/// line's `--json` output and `leaderboard.csv`), and one row per (system, model) with the
/// mean of every metric over the test trajectories (as `results/SYSTEM/MODEL.json`).
type Tables<'py> = (
    Vec<Bound<'py, PyDict>>,
    Vec<Bound<'py, PyDict>>,
    Bound<'py, PyDict>,
);

/// Runs `phaseflow forecast bench` with these settings (the command line's options, same
/// defaults; `models` None: every native model). Returns (leaderboard rows, per-(system,
/// model) rows, summary).
#[pyfunction]
#[pyo3(signature = (output, systems="all".to_string(), models=None, protocol="short", per_period=None, train=None, context=None, horizon=None, test_ics=None, standardise=false, noise=0.0, integrator="auto".to_string(), rtol=1e-9, atol=1e-9, seed=0, external=Vec::new(), external_timeout=600.0, vpt_threshold=30.0, tune=true, hyper=Vec::new(), verbose=false))]
#[allow(clippy::too_many_arguments)]
fn forecast_bench<'py>(
    py: Python<'py>,
    output: PathBuf,
    systems: String,
    models: Option<Vec<String>>,
    protocol: &str,
    per_period: Option<f64>,
    train: Option<usize>,
    context: Option<usize>,
    horizon: Option<usize>,
    test_ics: Option<usize>,
    standardise: bool,
    noise: f64,
    integrator: String,
    rtol: f64,
    atol: f64,
    seed: u64,
    external: Vec<String>,
    external_timeout: f64,
    vpt_threshold: f64,
    tune: bool,
    hyper: Vec<String>,
    verbose: bool,
) -> PyResult<Tables<'py>> {
    let protocol: ProtocolName = protocol.parse().map_err(PhaseflowError::new_err)?;
    let args = BenchArgs {
        protocol: ProtocolArgs {
            systems,
            protocol,
            per_period,
            train,
            context,
            horizon,
            test_ics,
            standardise,
            noise,
            integrator,
            rtol,
            atol,
            seed,
            output,
            json: false,
            quiet: !verbose,
        },
        models,
        external,
        external_timeout,
        vpt_threshold,
        no_tune: !tune,
        hyper,
        shard: None,
    };
    let cancel = Cancel::new();
    let progress = Lines {
        verbose,
        total: AtomicU64::new(0),
        done: AtomicU64::new(0),
        note: Mutex::new(String::new()),
    };
    let work = || -> Result<_, String> {
        let systems = |p: &ProtocolArgs| {
            if matches!(source(), Source::Dir(_)) {
                // `$PHASEFLOW_SYSTEMS`: the command line's own resolution
                return cli::systems_of(p);
            }
            Ok(embedded_systems(p).map_err(std::io::Error::other)?)
        };
        let opts =
            cli::bench_options(&args, systems, cancel.clone()).map_err(|e| format!("{e:#}"))?;
        let summary = bench::run(&opts, &progress).map_err(|e| e.to_string())?;
        let keys: Vec<String> = opts.systems.iter().map(|p| bench::system_key(p)).collect();
        let results =
            bench::load_results(&opts.out, &keys, &summary.models).map_err(|e| e.to_string())?;
        Ok((summary, results))
    };
    let (summary, results) = interruptible(py, &cancel, work)?.map_err(PhaseflowError::new_err)?;
    if let Err(e) = cli::check_failed(&summary) {
        return Err(PhaseflowError::new_err(format!(
            "{e:#}:\n{}",
            summary.failed.join("\n")
        )));
    }
    let mut board = Vec::with_capacity(summary.leaderboard.len());
    for r in &summary.leaderboard {
        let d = PyDict::new(py);
        d.set_item("model", &r.model)?;
        d.set_item("metric", &r.metric)?;
        d.set_item("median", r.median)?;
        d.set_item("mean", r.mean)?;
        d.set_item("q25", r.q25)?;
        d.set_item("q75", r.q75)?;
        d.set_item("iqr", r.iqr)?;
        d.set_item("systems_won", r.systems_won)?;
        d.set_item("n", r.n)?;
        d.set_item("diverged", r.diverged)?;
        board.push(d);
    }
    let mut per_system = Vec::with_capacity(results.len());
    for r in &results {
        let d = PyDict::new(py);
        d.set_item("system", &r.system)?;
        d.set_item("model", &r.model)?;
        d.set_item("configuration", &r.configuration)?;
        d.set_item("dt", r.dt)?;
        d.set_item("lyapunov_max", r.lyapunov_max)?;
        d.set_item("diverged", r.cases.iter().filter(|c| c.diverged).count())?;
        let metrics: &BTreeMap<String, f64> = &r.metrics;
        for (k, v) in metrics {
            d.set_item(k, *v)?;
        }
        per_system.push(d);
    }
    let s = PyDict::new(py);
    s.set_item("systems", summary.systems)?;
    s.set_item("models", &summary.models)?;
    s.set_item("computed", summary.computed)?;
    s.set_item("reused", summary.reused)?;
    s.set_item("seconds", summary.seconds)?;
    Ok((board, per_system, s))
}

/// Registers the benchmark in `_native`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add(
        "FORECAST_MODELS",
        phaseflow::forecast::models::NATIVE.to_vec(),
    )?;
    module.add_function(wrap_pyfunction!(forecast_bench, module)?)?;
    Ok(())
}
