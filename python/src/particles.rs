//! `phaseflow._native.simulate_particles`: the particle engine (`phaseflow simulate` for a
//! particle model) from Python. It loads the model as the CLI does, runs
//! [`phaseflow::particles::run::run_to`] with a [`FrameRecorder`] (and, when asked, the H5MD
//! file the CLI writes) on a worker thread with the GIL released and Ctrl-C connected to the
//! run's [`Cancel`] token, and hands the recorded arrays to NumPy without copying them.

use crate::{err, interruptible, overrides, resolve, PhaseflowError};
use numpy::ndarray::{Array1, Array2, Array4};
use numpy::IntoPyArray;
use phaseflow::control::{Cancel, NoProgress};
use phaseflow::particles::run::{run_to, FrameRecorder, RunConfig};
use phaseflow::particles::ParticleModel;
use phaseflow::systems::{is_particle_file, SystemSpec};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Mutex;

/// Warnings of the run in progress (`RunConfig::warn` is a plain function, called on whichever
/// thread runs): returned to the Python side, which shows them with `warnings.warn`. Two runs
/// at once in one process share it (a warning may then be shown by the other call).
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn collect_warning(w: &str) {
    WARNINGS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(w.to_string());
}

/// Loads a particle model: `model` is TOML text (`text` true, named `<string>` in messages) or
/// a path, a path inside the catalogue or a catalogue name; `--set` overrides.
fn load(model: &str, text: bool, values: &[(String, f64)]) -> PyResult<ParticleModel> {
    let (source, label) = if text {
        (model.to_string(), PathBuf::from("<string>"))
    } else {
        resolve(model)?
    };
    let ov = overrides(values)?;
    if !is_particle_file(&source) {
        // as the CLI reads it: a file that does not parse gets the parser's file:line:column
        SystemSpec::from_str_at(&source, &label).map_err(|e| err(&e))?;
        return Err(PhaseflowError::new_err(format!(
            "{}: not a particle model (kind = \"particles\"): phaseflow.load_system loads equation systems (flows, maps, delay equations)",
            label.display()
        )));
    }
    ParticleModel::from_str_at(&source, &label, &ov.values).map_err(|e| err(&e))
}

/// `--checkpoint-interval` as the CLI reads it.
fn checkpoint_every(s: Option<f64>) -> PyResult<std::time::Duration> {
    match s {
        None => Ok(phaseflow::io::h5md::DEFAULT_CHECKPOINT_INTERVAL),
        Some(s) if s >= 0.0 && s.is_finite() && s < 1e9 => {
            Ok(std::time::Duration::from_secs_f64(s))
        }
        Some(s) => Err(PhaseflowError::new_err(format!(
            "--checkpoint-interval must be a non-negative number of seconds, got {s}"
        ))),
    }
}

/// Runs a particle model as `phaseflow simulate MODEL --steps … -o OUTPUT --json` does, holding
/// every frame in memory (and writing `output`, H5MD, atomically, when given). Returns a dict:
/// `time` (F,), `step` (F,) int64, `position` (M, F, N, d), `image` (M, F, N, d) int32,
/// `propulsion` (M, F, N, c), `propulsion_name`, `box` (d,) edges, `series` {name: (F, M)},
/// `fixed` {name: {dataset: (K,)}}, `parameters` {name: value}, `summary` (the CLI's `--json`
/// text) and `warnings` [str].
#[pyfunction]
#[pyo3(signature = (model, text=false, overrides=Vec::new(), steps=None, t_end=None, every=None, burn_in=0.0, replicas=1, seed=0, threads=None, output=None, checkpoint_interval=None, command=String::new()))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn simulate_particles<'py>(
    py: Python<'py>,
    model: &str,
    text: bool,
    overrides: Vec<(String, f64)>,
    steps: Option<u64>,
    t_end: Option<f64>,
    every: Option<u64>,
    burn_in: f64,
    replicas: usize,
    seed: u64,
    threads: Option<usize>,
    output: Option<PathBuf>,
    checkpoint_interval: Option<f64>,
    command: String,
) -> PyResult<Bound<'py, PyDict>> {
    let model = py.detach(|| load(model, text, &overrides))?;
    let mut warnings = model.warnings();
    let steps = match (steps, t_end) {
        (Some(_), Some(_)) => {
            return Err(PhaseflowError::new_err(
                "give steps or t_end, not both (--steps and --t-end exclude each other)",
            ))
        }
        (Some(s), None) => s,
        (None, Some(t)) => RunConfig::steps_of_time(&model, t, "--t-end").map_err(|e| err(&e))?,
        (None, None) => {
            return Err(PhaseflowError::new_err(
                "give --steps S or --t-end T for a particle model",
            ))
        }
    };
    if output.is_none() && checkpoint_interval.is_some() {
        return Err(PhaseflowError::new_err(
            "--checkpoint-interval applies to an output file (give output=...)",
        ));
    }
    let cancel = Cancel::new();
    let cfg = RunConfig {
        steps,
        every: every.unwrap_or(RunConfig::default_every(steps)),
        burn_in_steps: RunConfig::steps_of_time(&model, burn_in, "--burn-in")
            .map_err(|e| err(&e))?,
        replicas,
        seed,
        resume: false,
        cancel: cancel.clone(),
        command,
        abort_after_frames: None,
        checkpoint_interval: checkpoint_every(checkpoint_interval)?,
        warn: collect_warning,
    };
    // refused here, with the size named, before anything is allocated
    let mut rec = FrameRecorder::new(&model, &cfg).map_err(|e| err(&e))?;
    let out = output.as_deref();
    let work = || {
        phaseflow::control::with_threads(threads, || {
            run_to(&model, out, &cfg, &NoProgress, Some(&mut rec))
        })
    };
    WARNINGS.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let result = interruptible(py, &cancel, work);
    warnings.append(&mut WARNINGS.lock().unwrap_or_else(|p| p.into_inner()));
    let summary = result?
        .map_err(PhaseflowError::new_err)?
        .map_err(|e| err(&e))?;
    arrays(py, &model, rec, summary.to_json(), warnings)
}

fn shape_err(e: numpy::ndarray::ShapeError) -> PyErr {
    PyRuntimeError::new_err(format!("phaseflow: recorded arrays: {e}"))
}

/// The result dict of [`simulate_particles`] (the recorder's vectors moved into NumPy arrays).
fn arrays<'py>(
    py: Python<'py>,
    model: &ParticleModel,
    rec: FrameRecorder,
    summary: String,
    warnings: Vec<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let (f, m, n, d, c) = (rec.frames(), rec.replicas, rec.n, rec.dim, rec.components);
    let dict = PyDict::new(py);
    dict.set_item("time", Array1::from(rec.time).into_pyarray(py))?;
    let steps: Vec<i64> = rec.step.iter().map(|&s| s as i64).collect();
    dict.set_item("step", Array1::from(steps).into_pyarray(py))?;
    dict.set_item(
        "position",
        Array4::from_shape_vec((m, f, n, d), rec.position)
            .map_err(shape_err)?
            .into_pyarray(py),
    )?;
    dict.set_item(
        "image",
        Array4::from_shape_vec((m, f, n, d), rec.image)
            .map_err(shape_err)?
            .into_pyarray(py),
    )?;
    dict.set_item(
        "propulsion",
        Array4::from_shape_vec((m, f, n, c), rec.propulsion)
            .map_err(shape_err)?
            .into_pyarray(py),
    )?;
    dict.set_item("propulsion_name", rec.propulsion_name)?;
    dict.set_item(
        "box",
        Array1::from(vec![model.bx.length; d]).into_pyarray(py),
    )?;
    let series = PyDict::new(py);
    for (name, values) in rec.series {
        series.set_item(
            name,
            Array2::from_shape_vec((f, m), values)
                .map_err(shape_err)?
                .into_pyarray(py),
        )?;
    }
    dict.set_item("series", series)?;
    let fixed = PyDict::new(py);
    if let Some(a) = &rec.averages {
        for (name, data) in a.datasets() {
            let g = PyDict::new(py);
            for (k, v) in data {
                g.set_item(k, Array1::from(v.to_vec()).into_pyarray(py))?;
            }
            fixed.set_item(name, g)?;
        }
    }
    dict.set_item("fixed", fixed)?;
    let params = PyDict::new(py);
    for (k, v) in &model.parameters {
        params.set_item(k, *v)?;
    }
    dict.set_item("parameters", params)?;
    dict.set_item("name", &model.name)?;
    dict.set_item("dt", model.dt)?;
    dict.set_item("summary", summary)?;
    dict.set_item("warnings", warnings)?;
    Ok(dict)
}

/// Registers the particle functions in `_native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(simulate_particles, m)?)
}
