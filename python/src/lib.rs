//! `phaseflow._native`: the native module of the Python package. A thin layer over the
//! `phaseflow` library: it resolves catalogue names (in the catalogue embedded at build time, or
//! in `$PHASEFLOW_SYSTEMS` when set, as the CLI does), loads and compiles definition files,
//! evaluates right-hand sides and Jacobians, and runs [`phaseflow::simulate::Run`] with the GIL
//! released and Ctrl-C connected to a [`phaseflow::control::Cancel`] token. The dysts-style API
//! is the pure-Python package beside it (`python/phaseflow/`).

use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{IntoPyArray, PyArray1, PyArrayDyn, PyReadonlyArray2, PyUntypedArrayMethods};
use phaseflow::control::Cancel;
use phaseflow::integrate::Method;
use phaseflow::simulate::{NoiseSetting, NoiseUnits, Run, SimulateError, Start};
use phaseflow::systems::catalogue::{classify, normalise};
use phaseflow::systems::{
    Catalogue, CompiledSystem, FileClass, Jacobian, Kind, LoadError, Overrides, SpecError, System,
    SystemSpec,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

mod analysis;
mod forecast;
mod metrics;
mod particles;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/catalogue.rs"));
}

pyo3::create_exception!(
    phaseflow,
    PhaseflowError,
    PyValueError,
    "Bad input to phaseflow (a definition file, a parameter, a setting): the message is the \
     command line's (file:line:column: what, for a definition file)."
);

/// The message the CLI prints after `error: ` (an error and its sources, as anyhow's `{:#}`).
fn message(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn err(e: &dyn std::error::Error) -> PyErr {
    PhaseflowError::new_err(message(e))
}

/// Where catalogue names are looked up.
enum Source {
    /// The catalogue built into the module.
    Embedded,
    /// `$PHASEFLOW_SYSTEMS`.
    Dir(PathBuf),
}

fn source() -> Source {
    match std::env::var_os("PHASEFLOW_SYSTEMS") {
        Some(p) => Source::Dir(PathBuf::from(p)),
        None => Source::Embedded,
    }
}

/// How embedded files are named in messages.
fn embedded_label(rel: &str) -> String {
    format!("systems/{rel}")
}

/// The embedded file named `name` (as [`Catalogue::find`]: a file stem first, then a `name`
/// field, SDE files by path only).
fn find_embedded(name: &str) -> Option<(&'static str, &'static str)> {
    let want = normalise(name);
    let named = || {
        embedded::FILES
            .iter()
            .copied()
            .filter(|(_, text)| classify(text).1 != FileClass::Sde)
    };
    named()
        .find(|(rel, _)| {
            Path::new(rel)
                .file_stem()
                .is_some_and(|s| normalise(&s.to_string_lossy()) == want)
        })
        .or_else(|| {
            named().find(|(_, text)| classify(text).0.is_some_and(|n| normalise(&n) == want))
        })
}

/// Text and label of SYSTEM: an existing path, a path inside the catalogue or a name.
fn resolve(system: &str) -> Result<(String, PathBuf), PyErr> {
    let read = |p: &Path| {
        phaseflow::systems::spec::read_definition(p)
            .map(|t| (t, p.to_path_buf()))
            .map_err(|e| err(&e))
    };
    match source() {
        Source::Dir(dir) => {
            let path = Catalogue::open(&dir).resolve(system).map_err(|e| err(&e))?;
            read(&path)
        }
        Source::Embedded => {
            let rel = system.strip_prefix("systems/").unwrap_or(system);
            let inside = embedded::FILES
                .iter()
                .find(|(r, _)| *r == rel || r.strip_suffix(".toml") == Some(rel));
            // `systems/…`: the keys of `catalogue()`, always the embedded file; other paths
            // that exist on disk come first (as the CLI resolves them)
            if (inside.is_none() || !system.starts_with("systems/")) && Path::new(system).is_file()
            {
                return read(Path::new(system));
            }
            let path_like = system.ends_with(".toml") || system.contains('/');
            let hit = inside
                .copied()
                .or_else(|| (!path_like).then(|| find_embedded(system)).flatten());
            match hit {
                Some((rel, text)) => Ok((text.to_string(), PathBuf::from(embedded_label(rel)))),
                None => Err(err(&LoadError::NotFound(if path_like {
                    format!("{system}: no such definition file")
                } else {
                    format!(
                        "{system}: not a file and not a system of the catalogue built into phaseflow (phaseflow.systems.get_attractor_list)"
                    )
                }))),
            }
        }
    }
}

/// `--set NAME=VALUE` overrides, checked as the CLI checks them (a NaN is rejected).
fn overrides(values: &[(String, f64)]) -> PyResult<Overrides> {
    let items: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    Overrides::parse(&items).map_err(|e| err(&e))
}

fn compile(text: &str, label: &Path, values: &[(String, f64)]) -> PyResult<CompiledSystem> {
    let ov = overrides(values)?;
    if phaseflow::systems::is_particle_file(text) {
        return Err(PhaseflowError::new_err(format!(
            "{}: a particle model: run it with phaseflow.particles.simulate (phaseflow.load_system loads equation systems: flows, maps, delay equations)",
            label.display()
        )));
    }
    let spec = SystemSpec::from_str_at(text, label).map_err(|e: SpecError| err(&e))?;
    CompiledSystem::new(spec, &ov).map_err(|e| err(&e))
}

/// The catalogue: one `(path, name, class, kind)` per file, sorted by path; `class` is
/// `"equations"`, `"sde"` or `"particles"`, `kind` `"flow"`, `"map"`, `"dde"` (equations that
/// parse) or `None`.
#[pyfunction]
fn catalogue() -> Vec<(String, Option<String>, &'static str, Option<&'static str>)> {
    let files: Vec<(String, String)> = match source() {
        Source::Embedded => embedded::FILES
            .iter()
            .map(|(rel, text)| (embedded_label(rel), text.to_string()))
            .collect(),
        Source::Dir(dir) => Catalogue::open(&dir)
            .entries()
            .iter()
            .map(|e| {
                (
                    e.path.display().to_string(),
                    std::fs::read_to_string(&e.path).unwrap_or_default(),
                )
            })
            .collect(),
    };
    files
        .into_iter()
        .map(|(path, text)| {
            let (name, class) = classify(&text);
            let class_name = match class {
                FileClass::Equations => "equations",
                FileClass::Sde => "sde",
                FileClass::Particles => "particles",
            };
            let kind = (class != FileClass::Particles)
                .then(|| SystemSpec::from_str_at(&text, Path::new(&path)).ok())
                .flatten()
                .map(|s| s.kind.as_str());
            (path, name, class_name, kind)
        })
        .collect()
}

/// Where the catalogue comes from: `$PHASEFLOW_SYSTEMS`, or `None` for the embedded one.
#[pyfunction]
fn catalogue_dir() -> Option<String> {
    match source() {
        Source::Embedded => None,
        Source::Dir(d) => Some(d.display().to_string()),
    }
}

/// Times (T,) and states (T, D) or (B, T, D).
type Arrays<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArrayDyn<f64>>);

/// A compiled equation system.
#[pyclass(name = "System", module = "phaseflow._native")]
struct PySystem {
    sys: CompiledSystem,
    label: String,
}

/// Runs `work` on a scoped thread while this thread waits with the GIL released, checking
/// Python's signal handlers every 20 ms: on Ctrl-C the token is cancelled, the work stops at its
/// next safe point and the signal's exception (`KeyboardInterrupt`) is raised.
fn interruptible<T: Send>(
    py: Python<'_>,
    cancel: &Cancel,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    let done = (Mutex::new(false), Condvar::new());
    std::thread::scope(|s| {
        let done = &done;
        let handle = s.spawn(move || {
            struct Notify<'a>(&'a (Mutex<bool>, Condvar));
            impl Drop for Notify<'_> {
                fn drop(&mut self) {
                    *self.0 .0.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    self.0 .1.notify_all();
                }
            }
            let _notify = Notify(done);
            work()
        });
        let mut signal = Ok(());
        loop {
            let finished = py.detach(|| {
                let g = done.0.lock().unwrap_or_else(|p| p.into_inner());
                let (g, _) = done
                    .1
                    .wait_timeout_while(g, Duration::from_millis(20), |d| !*d)
                    .unwrap_or_else(|p| p.into_inner());
                *g
            });
            if finished {
                break;
            }
            if let Err(e) = py.check_signals() {
                cancel.cancel();
                signal = Err(e);
                break;
            }
        }
        let joined = py.detach(|| handle.join());
        signal?;
        joined.map_err(|_| PyRuntimeError::new_err("phaseflow: the computation panicked"))
    })
}

fn kind_name(k: Kind) -> &'static str {
    k.as_str()
}

#[pymethods]
impl PySystem {
    /// Loads SYSTEM (a path, a path inside the catalogue or a catalogue name) with parameter
    /// overrides `[(name, value)]` (also `dimension` of indexed families and `dt`).
    #[staticmethod]
    #[pyo3(signature = (system, overrides=Vec::new()))]
    fn load(py: Python<'_>, system: &str, overrides: Vec<(String, f64)>) -> PyResult<PySystem> {
        let (text, label) = resolve(system)?;
        let sys = py.detach(|| compile(&text, &label, &overrides))?;
        Ok(PySystem {
            sys,
            label: label.display().to_string(),
        })
    }

    /// Compiles definition text (named `<string>` in messages).
    #[staticmethod]
    #[pyo3(signature = (text, overrides=Vec::new()))]
    fn from_toml(py: Python<'_>, text: &str, overrides: Vec<(String, f64)>) -> PyResult<PySystem> {
        let label = PathBuf::from("<string>");
        let sys = py.detach(|| compile(text, &label, &overrides))?;
        Ok(PySystem {
            sys,
            label: "<string>".into(),
        })
    }

    /// Where the definition came from (a path, `systems/…` for the embedded catalogue, or
    /// `<string>`).
    #[getter]
    fn source(&self) -> &str {
        &self.label
    }
    #[getter]
    fn name(&self) -> &str {
        self.sys.name()
    }
    /// `"flow"`, `"map"` or `"dde"`.
    #[getter]
    fn kind(&self) -> &'static str {
        kind_name(self.sys.model().kind)
    }
    #[getter]
    fn dimension(&self) -> usize {
        self.sys.dim()
    }
    #[getter]
    fn dt(&self) -> f64 {
        self.sys.model().dt
    }
    #[getter]
    fn period(&self) -> f64 {
        self.sys.model().period
    }
    #[getter]
    fn ic<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        Array1::from(self.sys.model().initial_condition.clone()).into_pyarray(py)
    }
    #[getter]
    fn variables(&self) -> Vec<String> {
        self.sys.model().components.clone()
    }
    #[getter]
    fn param_names(&self) -> Vec<String> {
        self.sys.model().param_names.clone()
    }
    #[getter]
    fn param_values(&self) -> Vec<f64> {
        self.sys.params().to_vec()
    }
    /// An array of the file's `[reference]` table (`mean`, `std`, …), if present.
    fn reference(&self, key: &str) -> Option<Vec<f64>> {
        self.sys.info().spec.reference_array(key)
    }
    /// A number of the file's `[reference]` table, if present.
    fn reference_number(&self, key: &str) -> Option<f64> {
        self.sys.info().spec.reference_number(key)
    }

    /// Sets a parameter (checked as `--set NAME=VALUE`: a NaN or infinity is rejected).
    fn set_param(&mut self, name: &str, value: f64) -> PyResult<()> {
        let ov = overrides(&[(name.to_string(), value)])?;
        let (k, v) = &ov.values[0];
        if self.sys.set_param(k, *v) {
            Ok(())
        } else {
            Err(PhaseflowError::new_err(format!(
                "{k}: no such parameter of {} (parameters: {})",
                self.sys.name(),
                self.sys.model().param_names.join(", ")
            )))
        }
    }

    /// f(t, x) for every row of `x` (shape (B, D)); for a map, the next state.
    fn rhs<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        t: f64,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (b, d) = self.check_states(&x)?;
        let xs = x
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut out = vec![0.0; b * d];
        for (xi, oi) in xs.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            self.sys.rhs(t, xi, oi);
        }
        Ok(Array2::from_shape_vec((b, d), out)
            .expect("shape")
            .into_dyn()
            .into_pyarray(py))
    }

    /// The Jacobian ∂f_i/∂x_j for every row of `x` (shape (B, D)): shape (B, D, D).
    fn jac<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        t: f64,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (b, d) = self.check_states(&x)?;
        phaseflow::dynamics::check_dense_jacobian(d, "jac").map_err(PhaseflowError::new_err)?;
        let xs = x
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut out = vec![0.0; b * d * d];
        for (xi, oi) in xs.chunks_exact(d).zip(out.chunks_exact_mut(d * d)) {
            self.sys.jacobian(t, xi, oi);
        }
        Ok(Array3::from_shape_vec((b, d, d), out)
            .expect("shape")
            .into_dyn()
            .into_pyarray(py))
    }

    /// Runs `simulate::Run`: `points` output points at `per_period` per period, or every
    /// `dt_out` time units (flows); from the file's initial condition, one state (`init` of
    /// shape (1, D), `batch` false) or a batch (`init` (B, D), `batch` true, run in parallel).
    /// Returns (times (T,), states (T, D) or (B, T, D)).
    #[pyo3(signature = (points, per_period=100, dt_out=None, step=None, init=None, batch=false, method="auto", rtol=1e-12, atol=1e-12, noise=0.0, seed=0, burn_in=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn trajectory<'py>(
        &self,
        py: Python<'py>,
        points: usize,
        per_period: usize,
        dt_out: Option<f64>,
        step: Option<f64>,
        init: Option<PyReadonlyArray2<'py, f64>>,
        batch: bool,
        method: &str,
        rtol: f64,
        atol: f64,
        noise: f64,
        seed: u64,
        burn_in: f64,
    ) -> PyResult<Arrays<'py>> {
        let method: Method = method
            .parse()
            .map_err(|e: phaseflow::integrate::ParseMethodError| err(&e))?;
        let start = match &init {
            None => Start::FileDefault,
            Some(x) => {
                let (b, d) = self.check_states(x)?;
                let xs = x
                    .as_slice()
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
                let rows: Vec<Vec<f64>> = xs.chunks_exact(d).map(<[f64]>::to_vec).collect();
                if batch {
                    Start::States(rows)
                } else if b == 1 {
                    Start::State(rows.into_iter().next().expect("one row"))
                } else {
                    return Err(PyValueError::new_err("one initial condition expected"));
                }
            }
        };
        if !noise.is_finite() || noise < 0.0 {
            return Err(PhaseflowError::new_err(format!(
                "noise must be a finite number >= 0, got {noise}"
            )));
        }
        let noise = if noise > 0.0 {
            NoiseSetting::Additive {
                sigma: vec![noise],
                units: NoiseUnits::State,
            }
        } else {
            NoiseSetting::FromFile
        };
        let cancel = Cancel::new();
        let sys = &self.sys;
        let is_map = sys.model().kind == Kind::Map;
        let run = || -> Result<_, SimulateError> {
            let mut r = Run::new(sys)
                .method(method)
                .tolerances(rtol, atol)
                .start(start)
                .seed(seed)
                .noise(noise)
                .burn_in(burn_in)
                .cancel(cancel.clone());
            r = match dt_out {
                Some(h) if !is_map => r.span(h * (points.max(1) - 1) as f64, h),
                _ => r.points_per_period(points, per_period),
            };
            if let Some(h) = step {
                r = r.step(h);
            }
            r.run()
        };
        let out = interruptible(py, &cancel, run)?.map_err(|e| err(&e))?;
        let tr = out.trajectory;
        let t = tr.time.len();
        let states = if batch {
            Array3::from_shape_vec((tr.members, t, tr.dim), tr.state)
                .map(|a| a.into_dyn())
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?
        } else {
            Array2::from_shape_vec((t, tr.dim), tr.state)
                .map(|a| a.into_dyn())
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?
        };
        Ok((
            Array1::from(tr.time).into_pyarray(py),
            states.into_pyarray(py),
        ))
    }
}

impl PySystem {
    /// (B, D) of a C-contiguous state array whose rows have the system's dimension.
    fn check_states(&self, x: &PyReadonlyArray2<'_, f64>) -> PyResult<(usize, usize)> {
        let (b, d) = (x.shape()[0], x.shape()[1]);
        if d != self.sys.dim() {
            return Err(PhaseflowError::new_err(format!(
                "states of {} have {} components, got {d}",
                self.sys.name(),
                self.sys.dim()
            )));
        }
        if !x.is_c_contiguous() {
            return Err(PyValueError::new_err("states must be C-contiguous"));
        }
        Ok((b, d))
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("PhaseflowError", m.py().get_type::<PhaseflowError>())?;
    m.add_class::<PySystem>()?;
    m.add_function(wrap_pyfunction!(catalogue, m)?)?;
    m.add_function(wrap_pyfunction!(catalogue_dir, m)?)?;
    analysis::register(m)?;
    metrics::register(m)?;
    forecast::register(m)?;
    particles::register(m)?;
    Ok(())
}
