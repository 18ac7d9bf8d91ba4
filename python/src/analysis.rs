//! The analysis calls of the Python package (`phaseflow.invariants`, `phaseflow.epr`,
//! `phaseflow.train`, in `python/phaseflow/analysis.py`): each runs the library functions that
//! the matching subcommand runs, in the same order and with the same checks, and returns what
//! that subcommand prints with `--json` (as JSON text, which the Python side parses). Errors are
//! `PhaseflowError`s with the command line's message (settings named by their command-line
//! spelling, e.g. `--flow-dt`).
//!
//! - `invariants`: [`phaseflow::analysis::invariants::compute`] and its
//!   [`phaseflow::analysis::invariants::InvariantsReport`] (`src/cli/invariants.rs`);
//! - `epr_exact`, `epr_exact_system`, `epr_samples`: [`phaseflow::analysis::epr_output`] and
//!   [`phaseflow::analysis::epr`] (`src/cli/epr.rs`);
//! - `train`: [`phaseflow::score::train::Trainer`] stepped and checkpointed as
//!   [`phaseflow::score::train::train`] does (`src/cli/train.rs`), Ctrl-C connected to its
//!   cancellation token; `train_config`: a training file's text with `[training]` overrides.
//!
//! Ctrl-C: every call runs in [`crate::interruptible`], which cancels the call's
//! [`phaseflow::control::Cancel`] token and raises `KeyboardInterrupt` once the work has stopped:
//! training at its next step with a checkpoint, as the command line does; the invariants and the
//! EPR at the library's next check (milliseconds: every few hundred integration steps, every 8
//! points of the correlation sum, every sample), writing no file that was not finished before.

use crate::{err, interruptible, resolve, PhaseflowError, PySystem};
use phaseflow::analysis::invariants as inv;
use phaseflow::analysis::{epr, epr_output};
use phaseflow::control::{Cancel, NoProgress};
use phaseflow::particles::ParticleModel;
use phaseflow::score::evaluate::ScoreModel;
use phaseflow::score::train::{TrainConfig, TrainRun, Trainer};
use phaseflow::score::ScoreError;
use phaseflow::systems::CompiledSystem;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

fn json_err(e: serde_json::Error) -> PyErr {
    PyRuntimeError::new_err(format!("phaseflow: cannot write JSON: {e}"))
}

/// A `PhaseflowError` with `e`'s own message only (where the command line formats the error
/// with `anyhow!("{e}")`, dropping its sources).
fn display_err(e: impl std::fmt::Display) -> PyErr {
    PhaseflowError::new_err(e.to_string())
}

/// `system` at parameters `values` (checked as `--set`), leaving `system` itself unchanged.
fn with_parameters(system: &PySystem, values: &[(String, f64)]) -> PyResult<CompiledSystem> {
    let mut copy = PySystem {
        sys: system.sys.clone(),
        label: system.label.clone(),
    };
    for (k, v) in values {
        copy.set_param(k, *v)?;
    }
    Ok(copy.sys)
}

/// `phaseflow invariants SYSTEM --json` of a loaded system at parameters `overrides`: the JSON
/// of [`inv::InvariantsReport`] (keys sorted, as the command line prints it). Settings
/// `None` take the per-kind defaults of [`inv::InvariantSettings`].
#[pyfunction]
#[pyo3(signature = (system, overrides=Vec::new(), t_end=None, transient=None, qr_interval=None, exponents=None, ics=1, seed=0, rtol=1e-9, atol=1e-9, correlation_points=20000))]
#[allow(clippy::too_many_arguments)]
fn invariants(
    py: Python<'_>,
    system: &PySystem,
    overrides: Vec<(String, f64)>,
    t_end: Option<f64>,
    transient: Option<f64>,
    qr_interval: Option<f64>,
    exponents: Option<usize>,
    ics: usize,
    seed: u64,
    rtol: f64,
    atol: f64,
    correlation_points: usize,
) -> PyResult<String> {
    let sys = with_parameters(system, &overrides)?;
    let settings = inv::InvariantSettings {
        span: t_end,
        transient,
        qr_interval,
        exponents,
        ics,
        seed,
        rtol,
        atol,
        correlation_points,
        cancel: Cancel::new(),
    };
    let cancel = settings.cancel.clone();
    let result = interruptible(py, &cancel, || inv::compute(&sys, &settings))?;
    let report = inv::InvariantsReport::new(&sys, result.map_err(display_err)?);
    // through a JSON value: keys sorted, as the command line prints them
    let value = serde_json::to_value(&report).map_err(json_err)?;
    serde_json::to_string(&value).map_err(json_err)
}

/// `phaseflow epr --exact --system SYSTEM --json`: the exact EPR of a linear SDE definition (a
/// catalogue name or path, or definition text when `text`), at parameters `overrides`.
#[pyfunction]
#[pyo3(signature = (system, text=false, overrides=Vec::new()))]
fn epr_exact(
    py: Python<'_>,
    system: &str,
    text: bool,
    overrides: Vec<(String, f64)>,
) -> PyResult<String> {
    let ov = crate::overrides(&overrides)?;
    let (text, label) = if text {
        (system.to_string(), PathBuf::from("<string>"))
    } else {
        resolve(system)?
    };
    let exact = py
        .detach(|| epr_output::exact_of_text(&text, &label, &ov))
        .map_err(|e| err(&e))?;
    serde_json::to_string(&exact).map_err(json_err)
}

/// The exact EPR of a loaded equation system with a `[diffusion]` table, at parameters
/// `overrides` (as `epr_exact`).
#[pyfunction]
#[pyo3(signature = (system, overrides=Vec::new()))]
fn epr_exact_system(
    py: Python<'_>,
    system: &PySystem,
    overrides: Vec<(String, f64)>,
) -> PyResult<String> {
    let sys = with_parameters(system, &overrides)?;
    let exact = py
        .detach(|| epr_output::exact_of_system(&sys))
        .map_err(|e| err(&e))?;
    serde_json::to_string(&exact).map_err(json_err)
}

/// `phaseflow epr --data DATA [--model DIR] [--system SYSTEM] … --json`, step by step as
/// `src/cli/epr.rs` runs it: particle samples (H5MD) with or without a model
/// ([`epr::sample_epr`], [`epr::diagnostics`], [`epr_output::write_maps`],
/// [`epr_output::write_flow`], the PNG), or the trajectory of an SDE flow with a model
/// ([`epr::trajectory_epr`]). `system`: a catalogue name or path, or definition text when
/// `system_text`.
#[pyfunction]
#[pyo3(signature = (data, model=None, system=None, system_text=false, overrides=Vec::new(), batches=20, maps=None, bins=32, diagnostic_samples=500, png=None, flow_out=None, flow_steps=100, flow_dt=None, device="cpu"))]
#[allow(clippy::too_many_arguments)]
fn epr_samples(
    py: Python<'_>,
    data: Option<PathBuf>,
    model: Option<PathBuf>,
    system: Option<String>,
    system_text: bool,
    overrides: Vec<(String, f64)>,
    batches: usize,
    maps: Option<PathBuf>,
    bins: usize,
    diagnostic_samples: usize,
    png: Option<PathBuf>,
    flow_out: Option<PathBuf>,
    flow_steps: usize,
    flow_dt: Option<f64>,
    device: &str,
) -> PyResult<String> {
    let ov = crate::overrides(&overrides)?;
    if let Some(dt) = flow_dt.filter(|dt| !(dt.is_finite() && *dt > 0.0)) {
        return Err(PhaseflowError::new_err(format!(
            "--flow-dt must be a finite number > 0, got {dt}"
        )));
    }
    let Some(data) = data else {
        return Err(PhaseflowError::new_err(
            "phaseflow epr needs --data SAMPLES.h5 (with --model DIR for the learned EPR; without, the learning-free reference only), or --exact --system FILE",
        ));
    };
    // the definition's text and label, resolved here (the catalogue is the module's)
    let definition = match system {
        Some(s) if system_text => Some((s, PathBuf::from("<string>"))),
        Some(s) => Some(resolve(&s)?),
        None => None,
    };
    let cancel = Cancel::new();
    let stop = &cancel;
    interruptible(py, &cancel, move || {
        let sm = match &model {
            Some(dir) => Some(
                ScoreModel::load(dir, &phaseflow::score::device(device).map_err(display_err)?)
                    .map_err(|e| err(&e))?,
            ),
            None => None,
        };
        if sm.is_none() && (maps.is_some() || png.is_some()) {
            return Err(PhaseflowError::new_err(
                "--maps and --png show the learned EPR: they need --model DIR",
            ));
        }
        if !phaseflow::io::particle_file::is_particle_file(&data) {
            phaseflow::io::probe_hdf5(&data).map_err(|e| err(&e))?;
            let Some(sm) = sm else {
                phaseflow::io::read_trajectory(&data).map_err(|e| err(&e))?;
                return Err(PhaseflowError::new_err(format!(
                    "{}: a flow trajectory, not a particle (H5MD) file: its EPR needs --model DIR (a score model trained on the trajectory of an SDE flow)",
                    data.display()
                )));
            };
            let traj = phaseflow::io::read_trajectory(&data).map_err(display_err)?;
            let sde = phaseflow::score::train::sde_of_trajectory(&traj).map_err(|e| err(&e))?;
            let r = epr::trajectory_epr(&sm, &sde, &traj, batches, stop, &NoProgress)
                .map_err(|e| err(&e))?;
            return serde_json::to_string(&r).map_err(json_err);
        }
        let samples =
            phaseflow::io::particle_file::read_particle_samples(&data).map_err(display_err)?;
        let (text, def_path) = match definition {
            Some(d) => d,
            None => (
                samples.definition.clone(),
                PathBuf::from(&samples.definition_path),
            ),
        };
        let model = ParticleModel::at_parameters(&text, &def_path, &samples.parameters, &ov.values)
            .map_err(display_err)?;
        let mut r = epr::sample_epr(sm.as_ref(), &model, &samples, batches, stop, &NoProgress)
            .map_err(|e| err(&e))?;
        if let Some(sm) = &sm {
            if diagnostic_samples > 0 {
                r.diagnostics = Some(
                    epr::diagnostics(sm, &model, &samples, diagnostic_samples, stop)
                        .map_err(|e| err(&e))?,
                );
            }
        }
        let interrupted = || PhaseflowError::new_err("interrupted");
        if let Some(out) = &maps {
            if stop.is_cancelled() {
                return Err(interrupted());
            }
            epr_output::write_maps(out, &samples, &model, &r, bins.max(1)).map_err(|e| err(&e))?;
        }
        if let Some(out) = &flow_out {
            let sm = sm
                .as_ref()
                .ok_or_else(|| PhaseflowError::new_err("--flow-out needs --model DIR"))?;
            let dt = flow_dt.unwrap_or(model.dt);
            if stop.is_cancelled() {
                return Err(interrupted());
            }
            epr_output::write_flow(out, sm, &samples, &model, dt, flow_steps, stop)
                .map_err(|e| err(&e))?;
        }
        if let Some(png) = &png {
            let frame = phaseflow::io::particle_file::read_particle_frame(&data, -1)
                .map_err(display_err)?;
            let n = r.particles;
            let last = (samples.frames - 1) * n;
            if stop.is_cancelled() {
                return Err(interrupted());
            }
            phaseflow::io::plot_particles(
                &frame,
                &r.particle_samples[last..last + n],
                "EPR per particle",
                model.diameter(),
                png,
                (1000, 860),
            )
            .map_err(display_err)?;
        }
        serde_json::to_string(&r).map_err(json_err)
    })?
}

/// A training file's text with `[training]` overrides `steps` and `seed` (a table `[training]`
/// is added when absent). `source` is TOML text, or JSON text of the tables when `json` (a
/// Python dict); `label` names it in messages. Without overrides TOML text is returned as is.
#[pyfunction]
#[pyo3(signature = (source, label, json=false, steps=None, seed=None))]
fn train_config(
    source: &str,
    label: &str,
    json: bool,
    steps: Option<usize>,
    seed: Option<u64>,
) -> PyResult<String> {
    if !json && steps.is_none() && seed.is_none() {
        return Ok(source.to_string());
    }
    let mut table: toml::Table = if json {
        serde_json::from_str(source)
            .map_err(|e| PhaseflowError::new_err(format!("{label}: {e}")))?
    } else {
        source
            .parse()
            .map_err(|e: toml::de::Error| PhaseflowError::new_err(format!("{label}: {e}")))?
    };
    if steps.is_some() || seed.is_some() {
        let training = table
            .entry("training")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(training) = training.as_table_mut() else {
            return Err(PhaseflowError::new_err(format!(
                "{label}: `training` must be a table"
            )));
        };
        let int = |v: u64, name: &str| {
            i64::try_from(v)
                .map(toml::Value::Integer)
                .map_err(|_| PhaseflowError::new_err(format!("{name} = {v} is too large")))
        };
        if let Some(s) = steps {
            training.insert("steps".into(), int(s as u64, "steps")?);
        }
        if let Some(s) = seed {
            training.insert("seed".into(), int(s, "seed")?);
        }
    }
    toml::to_string(&table).map_err(|e| PhaseflowError::new_err(format!("{label}: {e}")))
}

/// `phaseflow train CONFIG --data DATA -o OUTPUT [--resume] --json`: the training loop of
/// [`phaseflow::score::train::train`] (a checkpoint every `training.checkpoint_every` steps, at
/// the end, and when Ctrl-C stops the run; the model directory when every step is done).
/// `config_label`: the name of the configuration in messages when `config` is a temporary file
/// holding the caller's text. Returns the summary's JSON and the training loss of every step of
/// this call.
#[pyfunction]
#[pyo3(signature = (config, data, output, resume=false, device="cpu", config_label=None))]
fn train(
    py: Python<'_>,
    config: PathBuf,
    data: PathBuf,
    output: PathBuf,
    resume: bool,
    device: &str,
    config_label: Option<String>,
) -> PyResult<(String, Vec<f64>)> {
    if let Some(label) = &config_label {
        // the caller's text, named as the caller knows it (not by the temporary file)
        let text = std::fs::read_to_string(&config)
            .map_err(|e| PhaseflowError::new_err(format!("{}: {e}", config.display())))?;
        match TrainConfig::from_toml(&text) {
            Err(ScoreError::Invalid(m)) => {
                return Err(PhaseflowError::new_err(format!("{label}: {m}")))
            }
            Err(e) => return Err(err(&e)),
            Ok(_) => {}
        }
    }
    let device = phaseflow::score::device(device).map_err(display_err)?;
    let cancel = Cancel::new();
    let token = cancel.clone();
    let (summary, losses) = interruptible(py, &cancel, move || {
        let run = TrainRun {
            config_path: config,
            data_path: data,
            out_dir: output,
            resume,
            device,
            stop_after: None,
            cancel: token,
            progress: Arc::new(NoProgress),
        };
        run_training(&run)
    })?
    .map_err(|e| err(&e))?;
    Ok((serde_json::to_string(&summary).map_err(json_err)?, losses))
}

/// [`phaseflow::score::train::train`] with the loss of every step recorded: the same steps and
/// checkpoints, hence the same files, bit for bit.
fn run_training(
    run: &TrainRun,
) -> Result<(phaseflow::score::train::TrainSummary, Vec<f64>), ScoreError> {
    let mut trainer = Trainer::new(run)?;
    let mut losses = Vec::new();
    let (total, every) = (
        trainer.total_steps(),
        trainer.config().training.checkpoint_every,
    );
    while trainer.steps_done() < total {
        match trainer.step() {
            Ok(l) => losses.push(l),
            Err(e) => {
                run.progress.finish();
                return Err(e);
            }
        }
        let done = trainer.steps_done();
        let stop = run.cancel.is_cancelled();
        if done.is_multiple_of(every) || done == total || stop {
            if let Err(e) = trainer.save() {
                run.progress.finish();
                return Err(e);
            }
        }
        if stop {
            break;
        }
    }
    Ok((trainer.finish()?, losses))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(invariants, m)?)?;
    m.add_function(wrap_pyfunction!(epr_exact, m)?)?;
    m.add_function(wrap_pyfunction!(epr_exact_system, m)?)?;
    m.add_function(wrap_pyfunction!(epr_samples, m)?)?;
    m.add_function(wrap_pyfunction!(train_config, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    Ok(())
}
