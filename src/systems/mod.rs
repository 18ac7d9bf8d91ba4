//! Systems read from definition files (`systems/*.toml`), resolved and compiled to native
//! code; the traits they implement ([`System`], [`Jacobian`], …) are defined in
//! [`crate::dynamics`] and re-exported here.
//!
//! Pipeline: [`spec::SystemSpec::load`] (TOML → typed spec) → [`model::Model::build`] (names →
//! slots, symbolic Jacobian) → [`jit::compile`] (Cranelift) → [`CompiledSystem`], which
//! implements [`System`] and [`Jacobian`]. [`Interpreted`] evaluates the same trees with the
//! reference interpreter and is used to check the compiled code.

pub mod catalogue;
pub mod expr;
pub mod jit;
pub mod model;
pub mod parse;
pub mod spec;

pub use catalogue::{Catalogue, FileClass};
pub use model::{Model, Overrides};
pub use spec::{is_particle_file, is_particle_path, Kind, SpecError, SystemSpec};
// the traits every layer shares live at the bottom ([`crate::dynamics`]); re-exported here,
// where users of definition files look for them
pub use crate::dynamics::{BatchSystem, Jacobian, System, TimeKind};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Metadata of a system loaded from a file, shared by its compiled and interpreted forms.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    pub spec: SystemSpec,
    pub model: Model,
}

/// A system from a definition file, compiled to native code. Cheap to clone (the code is
/// shared); parameters can be changed without recompiling.
#[derive(Clone)]
pub struct CompiledSystem {
    info: Arc<SystemInfo>,
    params: Vec<f64>,
    code: Arc<jit::JitCode>,
    /// Cached sizes and kernel pointers (the hot calls must not chase pointers; `code` keeps
    /// the kernels alive).
    dim: usize,
    n_lags: usize,
    rhs_fn: jit::KernelFn,
    jac_fn: jit::KernelFn,
    rhs_jac_fn: jit::KernelFn2,
}

impl std::fmt::Debug for CompiledSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSystem")
            .field("name", &self.info.model.name)
            .field("dim", &self.dim())
            .field("params", &self.params)
            .finish()
    }
}

/// Any error while loading a system.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Jit(#[from] jit::JitError),
    #[error("{0}")]
    NotFound(String),
}

impl CompiledSystem {
    /// Builds and compiles a spec with overrides.
    pub fn new(spec: SystemSpec, ov: &Overrides) -> Result<CompiledSystem, LoadError> {
        let model = Model::build(&spec, ov)?;
        let code = jit::compile(&model)?;
        let params = model.param_values.clone();
        let (dim, n_lags) = (model.dim(), model.lags.len());
        let (rhs_fn, jac_fn, rhs_jac_fn) = (code.rhs_undelayed, code.jacobian, code.rhs_jacobian);
        Ok(CompiledSystem {
            info: Arc::new(SystemInfo { spec, model }),
            params,
            code: Arc::new(code),
            dim,
            n_lags,
            rhs_fn,
            jac_fn,
            rhs_jac_fn,
        })
    }

    /// Loads a file (or catalogue name) and compiles it.
    pub fn load(system: &str, ov: &Overrides) -> Result<CompiledSystem, LoadError> {
        let path = resolve_system(system)?;
        Self::new(SystemSpec::load(&path)?, ov)
    }

    /// The spec and resolved model.
    pub fn info(&self) -> &SystemInfo {
        &self.info
    }
    /// The resolved model.
    pub fn model(&self) -> &Model {
        &self.info.model
    }
    /// System name.
    pub fn name(&self) -> &str {
        &self.info.model.name
    }
    /// Current parameter values (sorted-name order, see [`Model::param_names`]).
    pub fn params(&self) -> &[f64] {
        &self.params
    }
    /// Sets a parameter by name; `false` if there is no such parameter.
    pub fn set_param(&mut self, name: &str, value: f64) -> bool {
        match self.info.model.param_names.iter().position(|p| p == name) {
            Some(k) => {
                self.params[k] = value;
                true
            }
            None => false,
        }
    }
    /// Number of delayed terms (0 unless a DDE).
    pub fn n_lags(&self) -> usize {
        self.n_lags
    }
    /// f(t, x) with the delayed values `lag` (length [`Self::n_lags`]).
    pub fn rhs_lagged(&self, t: f64, x: &[f64], lag: &[f64], out: &mut [f64]) {
        let d = self.dim();
        assert!(x.len() >= d && out.len() >= d && lag.len() >= self.n_lags());
        // SAFETY: lengths checked above; the kernel reads D + P + L values and writes D.
        unsafe {
            (self.code.rhs)(
                t,
                x.as_ptr(),
                self.params.as_ptr(),
                lag.as_ptr(),
                out.as_mut_ptr(),
            )
        }
    }
    /// f(t, x) and the Jacobian in one pass (`jac` row-major D×D). For a DDE both are the
    /// undelayed forms (see [`System::rhs`] below).
    pub fn rhs_and_jacobian(&self, t: f64, x: &[f64], out: &mut [f64], jac: &mut [f64]) {
        let d = self.dim();
        assert!(x.len() >= d && out.len() >= d && jac.len() >= d * d);
        // SAFETY: lengths checked; this kernel never reads `lag` (delayed terms read the state).
        unsafe {
            (self.rhs_jac_fn)(
                t,
                x.as_ptr(),
                self.params.as_ptr(),
                x.as_ptr(),
                out.as_mut_ptr(),
                jac.as_mut_ptr(),
            )
        }
    }
    /// ∂f_i/∂p_k at `out[i*P + k]` (row-major D×P).
    pub fn param_jacobian(&self, t: f64, x: &[f64], out: &mut [f64]) {
        let d = self.dim();
        let p = self.params.len();
        assert!(x.len() >= d && out.len() >= d * p);
        // SAFETY: as above; delayed terms are replaced by the current state.
        unsafe {
            (self.code.param_jacobian)(
                t,
                x.as_ptr(),
                self.params.as_ptr(),
                x.as_ptr(),
                out.as_mut_ptr(),
            )
        }
    }
    /// Writes the recorded form of the state: `x` with the components of the file's
    /// `[observe]` table replaced by their expressions (interpreted; called per output point).
    pub fn observe(&self, t: f64, x: &[f64], out: &mut [f64]) {
        out[..self.dim].copy_from_slice(&x[..self.dim]);
        let cx = expr::Ctx {
            t,
            x,
            p: &self.params,
            lag: &[],
        };
        for (k, e) in &self.info.model.observe {
            out[*k] = e.eval(&cx);
        }
    }
    /// One step of the inverse map (maps with an `[inverse]` table): writes the previous state
    /// into `out` and returns `true`, or returns `false` when the file gives no inverse.
    pub fn inverse_step(&self, n: f64, x: &[f64], out: &mut [f64]) -> bool {
        let inv = &self.info.model.inverse;
        if inv.is_empty() {
            return false;
        }
        let cx = expr::Ctx {
            t: n,
            x,
            p: &self.params,
            lag: &[],
        };
        for (o, e) in out.iter_mut().zip(inv) {
            *o = e.eval(&cx);
        }
        true
    }
    /// Whether the file declares an observation map.
    pub fn has_observation_map(&self) -> bool {
        !self.info.model.observe.is_empty()
    }

    /// The diagonal diffusion D (one coefficient per component, 0 where noiseless) of an SDE
    /// flow dx = f dt + √(2D) dW declared by a `[diffusion]` table; `None` without one.
    pub fn diffusion(&self) -> Option<Vec<f64>> {
        let model = &self.info.model;
        if model.diffusion.is_empty() {
            return None;
        }
        let cx = expr::Ctx {
            t: 0.0,
            x: &[],
            p: &self.params,
            lag: &[],
        };
        Some(
            model
                .diffusion
                .iter()
                .map(|e| e.as_ref().map_or(0.0, |e| e.eval(&cx)))
                .collect(),
        )
    }

    /// Values of the named conserved quantities at (t, x) (interpreted; not a hot path).
    pub fn conserved(&self, t: f64, x: &[f64]) -> Vec<(String, f64)> {
        let cx = expr::Ctx {
            t,
            x,
            p: &self.params,
            lag: &[],
        };
        self.info
            .model
            .conserved
            .iter()
            .map(|(n, e)| (n.clone(), e.eval(&cx)))
            .collect()
    }
}

impl System for CompiledSystem {
    #[inline]
    fn dim(&self) -> usize {
        self.dim
    }
    fn time_kind(&self) -> TimeKind {
        match self.info.model.kind {
            Kind::Map => TimeKind::Discrete,
            _ => TimeKind::Continuous,
        }
    }
    /// For a DDE this is the τ → 0 limit (delayed terms read the current state); integrate
    /// delay equations with [`CompiledSystem::rhs_lagged`].
    #[inline]
    fn rhs(&self, t: f64, x: &[f64], out: &mut [f64]) {
        let d = self.dim;
        assert!(x.len() >= d && out.len() >= d);
        // SAFETY: lengths checked; the undelayed kernel never reads `lag`.
        unsafe {
            (self.rhs_fn)(
                t,
                x.as_ptr(),
                self.params.as_ptr(),
                x.as_ptr(),
                out.as_mut_ptr(),
            )
        }
    }
}

impl crate::dynamics::DelaySystem for CompiledSystem {
    fn dim(&self) -> usize {
        self.dim
    }
    /// (component, τ) of each delayed term, τ evaluated at the current parameters.
    fn lags(&self) -> Vec<(usize, f64)> {
        let cx = expr::Ctx {
            t: 0.0,
            x: &[],
            p: &self.params,
            lag: &[],
        };
        self.info
            .model
            .lags
            .iter()
            .map(|l| (l.component, l.delay.eval(&cx)))
            .collect()
    }
    fn rhs_lagged(&self, t: f64, x: &[f64], lagged: &[f64], out: &mut [f64]) {
        CompiledSystem::rhs_lagged(self, t, x, lagged, out)
    }
}

impl BatchSystem for CompiledSystem {
    /// Two states per SIMD operation through the JIT's batched kernel; an odd last state (and
    /// every state of a DDE, which has no batched kernel) goes through the scalar kernel.
    fn rhs_batch(&self, t: f64, x: &[f64], stride: usize, n: usize, out: &mut [f64]) {
        let d = self.dim;
        assert!(n <= stride && x.len() >= d * stride && out.len() >= d * stride);
        let even = match self.code.rhs_batch {
            Some(f) => {
                let even = n & !1;
                // SAFETY: bounds checked above: the kernel touches x and out at
                // k*stride + i for k < D, i < even <= stride.
                unsafe {
                    f(
                        t,
                        x.as_ptr(),
                        self.params.as_ptr(),
                        out.as_mut_ptr(),
                        stride as i64,
                        even as i64,
                    )
                };
                even
            }
            None => 0,
        };
        let mut xi = [0.0f64; 16];
        let mut fi = [0.0f64; 16];
        for i in even..n {
            if d <= 16 {
                for k in 0..d {
                    xi[k] = x[k * stride + i];
                }
                self.rhs(t, &xi[..d], &mut fi[..d]);
                for k in 0..d {
                    out[k * stride + i] = fi[k];
                }
            } else {
                let xv: Vec<f64> = (0..d).map(|k| x[k * stride + i]).collect();
                let mut fv = vec![0.0; d];
                self.rhs(t, &xv, &mut fv);
                for k in 0..d {
                    out[k * stride + i] = fv[k];
                }
            }
        }
    }
}

impl Jacobian for CompiledSystem {
    #[inline]
    fn jacobian(&self, t: f64, x: &[f64], out: &mut [f64]) {
        let d = self.dim();
        assert!(x.len() >= d && out.len() >= d * d);
        // SAFETY: lengths checked; delayed terms (DDEs) read the current state.
        unsafe {
            (self.jac_fn)(
                t,
                x.as_ptr(),
                self.params.as_ptr(),
                x.as_ptr(),
                out.as_mut_ptr(),
            )
        }
    }
    #[inline]
    fn rhs_jacobian(&self, t: f64, x: &[f64], f: &mut [f64], jac: &mut [f64]) {
        self.rhs_and_jacobian(t, x, f, jac)
    }
}

/// The same system evaluated by the reference tree interpreter (slow; for checks).
#[derive(Debug, Clone)]
pub struct Interpreted {
    pub model: Model,
    pub params: Vec<f64>,
}

impl Interpreted {
    /// Wraps a model with its default parameters.
    pub fn new(model: Model) -> Interpreted {
        let params = model.param_values.clone();
        Interpreted { model, params }
    }
    fn lag_values(&self, x: &[f64]) -> Vec<f64> {
        self.model.lags.iter().map(|l| x[l.component]).collect()
    }
    /// ∂f/∂p, row-major D×P.
    pub fn param_jacobian(&self, t: f64, x: &[f64], out: &mut [f64]) {
        let lag = self.lag_values(x);
        let cx = expr::Ctx {
            t,
            x,
            p: &self.params,
            lag: &lag,
        };
        out.iter_mut().for_each(|v| *v = 0.0);
        let np = self.params.len();
        for (r, k, e) in &self.model.param_jacobian {
            out[r * np + k] = e.eval(&cx);
        }
    }
}

impl System for Interpreted {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn time_kind(&self) -> TimeKind {
        if self.model.kind == Kind::Map {
            TimeKind::Discrete
        } else {
            TimeKind::Continuous
        }
    }
    fn rhs(&self, t: f64, x: &[f64], out: &mut [f64]) {
        let lag = self.lag_values(x);
        let cx = expr::Ctx {
            t,
            x,
            p: &self.params,
            lag: &lag,
        };
        for (o, e) in out.iter_mut().zip(&self.model.rhs) {
            *o = e.eval(&cx);
        }
    }
}

impl Jacobian for Interpreted {
    fn jacobian(&self, t: f64, x: &[f64], out: &mut [f64]) {
        let lag = self.lag_values(x);
        let cx = expr::Ctx {
            t,
            x,
            p: &self.params,
            lag: &lag,
        };
        let d = self.dim();
        out[..d * d].iter_mut().for_each(|v| *v = 0.0);
        for (r, c, e) in &self.model.jacobian {
            out[r * d + c] = e.eval(&cx);
        }
    }
}

/// Central finite-difference Jacobian of any system (row-major D×D), step h·max(1, |x_j|).
pub fn finite_difference_jacobian<S: System + ?Sized>(
    sys: &S,
    t: f64,
    x: &[f64],
    h: f64,
) -> Vec<f64> {
    let d = sys.dim();
    let mut jac = vec![0.0; d * d];
    let mut xp = x.to_vec();
    let mut fp = vec![0.0; d];
    let mut fm = vec![0.0; d];
    for j in 0..d {
        let hj = h * x[j].abs().max(1.0);
        xp[j] = x[j] + hj;
        sys.rhs(t, &xp, &mut fp);
        xp[j] = x[j] - hj;
        sys.rhs(t, &xp, &mut fm);
        xp[j] = x[j];
        for i in 0..d {
            jac[i * d + j] = (fp[i] - fm[i]) / (2.0 * hj);
        }
    }
    jac
}

/// Directory of the bundled catalogue: `$PHASEFLOW_SYSTEMS`, else `systems/` under the current
/// directory, else the `systems/` folder of the source tree this binary was built from.
pub fn catalogue_dir() -> PathBuf {
    if let Ok(p) = std::env::var("PHASEFLOW_SYSTEMS") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("systems");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("systems")
}

/// The deterministic equation files of the shipped catalogue, sorted by path (see
/// [`Catalogue::equation_files`]).
pub fn catalogue_files() -> Vec<PathBuf> {
    Catalogue::shipped().equation_files()
}

/// Whether a definition file declares an SDE (a non-empty `[diffusion]` table).
pub fn is_sde_path(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| catalogue::classify(&t).1 == FileClass::Sde)
}

/// The SDE files shipped with phaseflow (`[diffusion]` tables, e.g. `systems/linear/`).
pub fn sde_files() -> Vec<PathBuf> {
    Catalogue::shipped().sde_files()
}

/// The particle-model files of the shipped catalogue (`kind = "particles"`, `systems/active/`).
pub fn particle_files() -> Vec<PathBuf> {
    Catalogue::shipped().particle_files()
}

/// Resolves SYSTEM in the shipped catalogue (see [`Catalogue::resolve`]).
pub fn resolve_system(system: &str) -> Result<PathBuf, LoadError> {
    Catalogue::shipped().resolve(system)
}
