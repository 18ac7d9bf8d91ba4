//! Forecasting data sets generated from the catalogue, deterministic and stored with every setting.
//!
//! # Protocols
//!
//! | name | points per period | training | test context | horizon | coordinates |
//! |---|---|---|---|---|---|
//! | `short` (Gilpin, PRR 2023) | 100 | 1000 | 1000 | 200 | all (multivariate), raw values |
//! | `long` | 100 | 1000 | 1000 | 5000 | all, raw |
//! | `univariate` (Gilpin, NeurIPS 2021) | 15 or 100 | 10 periods | 10 periods | 2 periods | the first |
//!
//! Every setting can be changed ("free settings"): points per period, lengths, number of test
//! trajectories, standardisation, observation noise, seed.
//!
//! # Construction
//!
//! 1. `1 + test_ics` distinct initial conditions on the attractor
//!    ([`simulate::attractor_initial_conditions`]: the trajectory from the file's initial condition
//!    after 20 periods, sampled every tenth of a period, rows drawn with the data set's seed).
//! 2. From each, `burn_in_periods` are integrated and discarded (this also settles the history of a
//!    delay equation, which starts constant), then the series is recorded at `points_per_period`
//!    points per period of the file (dysts' convention): the first initial condition gives the
//!    training series (`train` steps), every other one a test trajectory of `context + horizon`
//!    steps. Default integrator: the automatic method (DOP853, Rosenbrock on stiffness) at
//!    rtol = atol = 1e-9 (settable: dysts' 2021/2023 data sets used SciPy's defaults, rtol = 1e-3,
//!    atol = 1e-6, which `--integrator rosenbrock --rtol 1e-3 --atol 1e-6` approximates).
//! 3. Univariate protocols keep the first coordinate.
//! 4. Optional observation noise: Gaussian with standard deviation `noise` × the component's std
//!    over the clean training series, seeded, added to the training series and the test contexts
//!    (what a forecaster sees); the truth it is scored against stays clean.
//! 5. Optional standardisation (`standardise`): every series is mapped with the clean training
//!    series' per-component mean and std (stored, so forecasts can be mapped back).
//!
//! The validation split for tuning is the end of the training series only: the first
//! `train − validation` steps are fitted, the last `validation` forecast (`validation` =
//! min(horizon, train / 5)).

use super::{Scaler, Series};
use crate::integrate::{Method, SolverOptions};
use crate::simulate::{self, Sampling};
use crate::systems::{CompiledSystem, Kind, Overrides, SystemSpec};
use hdf5::types::VarLenUnicode;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest data set, in stored values: (train + test_ics × (context + horizon)) steps × the
/// system's dimension D ≤ 10^8 (800 MB of f64). A larger protocol is an error naming this limit
/// before anything is integrated.
pub const MAX_DATASET_VALUES: usize = 100_000_000;

/// The settings of a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// `short`, `long`, `univariate` or `custom`.
    pub name: String,
    pub points_per_period: f64,
    /// Steps of the training series.
    pub train: usize,
    /// Steps of each test trajectory given to the forecaster before its horizon.
    pub context: usize,
    /// Steps to forecast.
    pub horizon: usize,
    /// Number of test trajectories (each from its own initial condition).
    pub test_ics: usize,
    /// Keep only the first coordinate.
    pub univariate: bool,
    /// Standardise every series with the training mean and std.
    pub standardise: bool,
    /// Observation noise, as a fraction of each component's std.
    pub noise: f64,
    /// Periods integrated and discarded from each initial condition.
    pub burn_in_periods: f64,
    /// Integrator (`auto`, `dop853`, `dopri5`, `rosenbrock`, `rk4`) and its tolerances.
    pub method: String,
    pub rtol: f64,
    pub atol: f64,
    pub seed: u64,
}

/// The named protocols (see [`Protocol::named`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolName {
    /// PRR 2023: 100 points per period, train 1000, forecast 200, multivariate, raw.
    Short,
    /// As short, forecasting 5000 steps.
    Long,
    /// NeurIPS 2021: the first coordinate, fit 10 periods, forecast 2 (15 or 100 points per
    /// period).
    Univariate,
    /// Short's settings, to be overridden one by one.
    Custom,
}

impl std::str::FromStr for ProtocolName {
    type Err = String;
    fn from_str(s: &str) -> Result<ProtocolName, String> {
        <ProtocolName as clap::ValueEnum>::from_str(s, false)
            .map_err(|_| format!("unknown protocol '{s}' (short, long, univariate or custom)"))
    }
}

impl ProtocolName {
    /// The name [`Protocol::named`] takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolName::Short => "short",
            ProtocolName::Long => "long",
            ProtocolName::Univariate => "univariate",
            ProtocolName::Custom => "custom",
        }
    }
}

impl Protocol {
    /// A named protocol with its documented settings (`univariate` at `points_per_period`, 15 or
    /// 100; ignored by the others).
    pub fn named(
        name: &str,
        univariate_points: f64,
    ) -> Result<Protocol, crate::forecast::BenchError> {
        Self::named_inner(name, univariate_points).map_err(crate::forecast::BenchError::Failed)
    }

    fn named_inner(name: &str, univariate_points: f64) -> Result<Protocol, String> {
        let base = Protocol {
            name: name.into(),
            points_per_period: 100.0,
            train: 1000,
            context: 1000,
            horizon: 200,
            test_ics: 3,
            univariate: false,
            standardise: false,
            noise: 0.0,
            burn_in_periods: 2.0,
            method: "auto".into(),
            rtol: 1e-9,
            atol: 1e-9,
            seed: 0,
        };
        match name {
            "short" => Ok(base),
            "long" => Ok(Protocol {
                horizon: 5000,
                ..base
            }),
            "univariate" => {
                let pp = univariate_points;
                let ten = (10.0 * pp).round() as usize;
                Ok(Protocol {
                    points_per_period: pp,
                    train: ten,
                    context: ten,
                    horizon: (2.0 * pp).round() as usize,
                    univariate: true,
                    ..base
                })
            }
            "custom" => Ok(Protocol {
                name: "custom".into(),
                ..base
            }),
            other => Err(format!(
                "unknown protocol '{other}' (short, long, univariate or custom)"
            )),
        }
    }

    /// Steps held out at the end of the training series for tuning.
    pub fn validation(&self) -> usize {
        self.horizon.min(self.train / 5).max(1)
    }

    /// Checks the settings make sense.
    pub fn validate(&self) -> Result<(), crate::forecast::BenchError> {
        self.validate_inner()
            .map_err(crate::forecast::BenchError::Failed)
    }

    fn validate_inner(&self) -> Result<(), String> {
        if !self.points_per_period.is_finite() || self.points_per_period < 2.0 {
            return Err(format!(
                "points per period must be a finite number ≥ 2 (got {})",
                self.points_per_period
            ));
        }
        if self.train < 20 || self.horizon == 0 || self.context == 0 || self.test_ics == 0 {
            return Err(format!(
                "need train ≥ 20, context ≥ 1, horizon ≥ 1 and test_ics ≥ 1 (got {}, {}, {}, {})",
                self.train, self.context, self.horizon, self.test_ics
            ));
        }
        let positive = |v: f64| v > 0.0 && v.is_finite();
        let non_negative = |v: f64| v >= 0.0 && v.is_finite();
        if !non_negative(self.noise)
            || !positive(self.rtol)
            || !positive(self.atol)
            || !non_negative(self.burn_in_periods)
        {
            return Err(format!(
                "noise and burn-in must be finite and ≥ 0, rtol and atol finite and > 0 (got noise {}, burn-in {}, rtol {}, atol {})",
                self.noise, self.burn_in_periods, self.rtol, self.atol
            ));
        }
        let steps =
            self.train as f64 + self.test_ics as f64 * (self.context as f64 + self.horizon as f64);
        if steps > MAX_DATASET_VALUES as f64 {
            return Err(format!(
                "train + test_ics × (context + horizon) = {steps:e} steps exceeds the limit of {MAX_DATASET_VALUES:e} values of a data set"
            ));
        }
        self.method.parse::<Method>().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// One test trajectory: the context a forecaster sees and the truth of the horizon after it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    pub context: Series,
    pub truth: Series,
}

/// A generated data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// System name (file's `name`) and definition file.
    pub system: String,
    pub file: String,
    pub protocol: Protocol,
    /// Names of the recorded coordinates.
    pub variables: Vec<String>,
    /// Sampling interval in the system's time units (period / points per period).
    pub dt: f64,
    /// The file's dominant period.
    pub period: f64,
    /// Largest Lyapunov exponent (1 / time unit) from the file's reference values, if any.
    pub lyapunov_max: Option<f64>,
    pub train: Series,
    pub tests: Vec<TestCase>,
    /// The standardisation applied (`standardise`), to map forecasts back to raw units.
    pub scale: Option<Scaler>,
    /// The initial conditions (training first), full state.
    pub initial_conditions: Vec<Vec<f64>>,
}

/// λ_max of a definition file: phaseflow's own estimate, else the first of its spectrum, else
/// dysts' values.
pub fn lyapunov_max(spec: &SystemSpec) -> Option<f64> {
    let first = |k: &str| spec.reference_array(k).and_then(|v| v.first().copied());
    spec.reference_number("phaseflow_maximum_lyapunov")
        .or_else(|| first("phaseflow_lyapunov_spectrum"))
        .or_else(|| first("lyapunov_spectrum"))
        .or_else(|| spec.reference_number("maximum_lyapunov_dysts"))
        .or_else(|| first("lyapunov_spectrum_dysts"))
        .filter(|v| v.is_finite())
}

/// A 64-bit hash of a name (FNV-1a), to give every system its own noise stream.
fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Generates the data set of one definition file under `protocol`.
pub fn generate(path: &Path, protocol: &Protocol) -> Result<Dataset, crate::forecast::BenchError> {
    generate_inner(path, protocol).map_err(crate::forecast::BenchError::Failed)
}

fn generate_inner(path: &Path, protocol: &Protocol) -> Result<Dataset, String> {
    protocol.validate()?;
    let spec = SystemSpec::load(path).map_err(|e| e.to_string())?;
    let lmax = lyapunov_max(&spec);
    let sys = CompiledSystem::new(spec, &Overrides::default()).map_err(|e| e.to_string())?;
    let m = sys.model();
    if !matches!(m.kind, Kind::Flow | Kind::Dde) {
        return Err(format!(
            "{}: forecasting data sets are made from flows and delay equations (this is a {})",
            path.display(),
            m.kind.as_str()
        ));
    }
    let steps = protocol.train as f64
        + protocol.test_ics as f64 * (protocol.context as f64 + protocol.horizon as f64);
    if steps * m.dim() as f64 > MAX_DATASET_VALUES as f64 {
        return Err(format!(
            "{}: {steps:e} steps × {} components exceed the limit of {MAX_DATASET_VALUES:e} values of a data set",
            path.display(),
            m.dim()
        ));
    }
    let method: Method = protocol
        .method
        .parse()
        .map_err(|e: crate::integrate::ParseMethodError| e.to_string())?;
    let solver = SolverOptions {
        method,
        rtol: protocol.rtol,
        atol: protocol.atol,
        // the fixed-step method steps at the file's dt
        h0: (method == Method::Rk4).then_some(m.dt),
        ..SolverOptions::default()
    };
    let name = sys.name().to_string();
    let fail = |what: &str, e: String| format!("{name}: {what}: {e}");
    let ics =
        simulate::attractor_initial_conditions(&sys, &solver, 1 + protocol.test_ics, protocol.seed)
            .map_err(|e| fail("initial conditions", e.to_string()))?;
    let ro = simulate::RunOptions {
        raw: true,
        ..simulate::RunOptions::new(solver)
    };
    let pp = protocol.points_per_period;
    let record = |x0: &[f64], n: usize| -> Result<Series, String> {
        let sampling = Sampling::per_period(
            m.t0 + protocol.burn_in_periods * m.period,
            m.period,
            n,
            pp.round() as usize,
        );
        let sampling = Sampling {
            dt_out: m.period / pp,
            ..sampling
        };
        let rec = simulate::trajectory(&sys, &ro, x0, &sampling)
            .map_err(|e| fail("integration", e.to_string()))?;
        let full = Series::new(rec.state, rec.dim);
        Ok(if protocol.univariate {
            Series::new(full.column(0), 1)
        } else {
            full
        })
    };
    let mut train = record(&ics[0], protocol.train)?;
    let mut tests = Vec::with_capacity(protocol.test_ics);
    for x0 in &ics[1..] {
        let s = record(x0, protocol.context + protocol.horizon)?;
        tests.push(TestCase {
            context: s.head(protocol.context),
            truth: s.slice(protocol.context, protocol.context + protocol.horizon),
        });
    }
    let clean = Scaler::fit(&train);
    if protocol.noise > 0.0 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(crate::seeds::stream_seed(
            protocol.seed,
            name_hash(&name),
        ));
        let mut add = |s: &mut Series| {
            for row in s.values.chunks_exact_mut(s.dim) {
                for (v, sd) in row.iter_mut().zip(&clean.std) {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    *v += protocol.noise * sd * z;
                }
            }
        };
        add(&mut train);
        for t in &mut tests {
            add(&mut t.context);
        }
    }
    let scale = protocol.standardise.then(|| clean.clone());
    if let Some(sc) = &scale {
        train = sc.apply(&train);
        for t in &mut tests {
            t.context = sc.apply(&t.context);
            t.truth = sc.apply(&t.truth);
        }
    }
    let variables = if protocol.univariate {
        vec![m.components[0].clone()]
    } else {
        m.components.clone()
    };
    Ok(Dataset {
        system: name,
        file: path.display().to_string(),
        protocol: protocol.clone(),
        variables,
        dt: m.period / pp,
        period: m.period,
        lyapunov_max: lmax,
        train,
        tests,
        scale,
        initial_conditions: ics,
    })
}

/// The metadata stored as the `metadata` attribute (JSON) of a data set file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Metadata {
    system: String,
    file: String,
    protocol: Protocol,
    variables: Vec<String>,
    dt: f64,
    period: f64,
    lyapunov_max: Option<f64>,
    scale_mean: Option<Vec<f64>>,
    scale_std: Option<Vec<f64>>,
    creator: String,
}

/// Writes a data set (atomically): `/train` [T, D], `/test/context` [K, C, D], `/test/truth`
/// [K, H, D], `/initial_conditions` [K + 1, D_full], and the root attribute `metadata` (JSON:
/// system, file, protocol, variables, dt, period, lyapunov_max, scale) plus `dt` and `period` as
/// numbers.
pub fn write(ds: &Dataset, path: &Path) -> Result<(), crate::forecast::BenchError> {
    write_inner(ds, path).map_err(crate::forecast::BenchError::Failed)
}

fn write_inner(ds: &Dataset, path: &Path) -> Result<(), String> {
    let meta = Metadata {
        system: ds.system.clone(),
        file: ds.file.clone(),
        protocol: ds.protocol.clone(),
        variables: ds.variables.clone(),
        dt: ds.dt,
        period: ds.period,
        lyapunov_max: ds.lyapunov_max,
        scale_mean: ds.scale.as_ref().map(|s| s.mean.clone()),
        scale_std: ds.scale.as_ref().map(|s| s.std.clone()),
        creator: format!("phaseflow {}", env!("CARGO_PKG_VERSION")),
    };
    let json = serde_json::to_string(&meta).map_err(|e| e.to_string())?;
    let d = ds.train.dim;
    let k = ds.tests.len();
    let c = ds.tests.first().map_or(0, |t| t.context.len());
    let h = ds.tests.first().map_or(0, |t| t.truth.len());
    let full = ds.initial_conditions.first().map_or(0, |x| x.len());
    let ctx: Vec<f64> = ds
        .tests
        .iter()
        .flat_map(|t| t.context.values.clone())
        .collect();
    let truth: Vec<f64> = ds
        .tests
        .iter()
        .flat_map(|t| t.truth.values.clone())
        .collect();
    let ics: Vec<f64> = ds.initial_conditions.concat();
    crate::io::write_hdf5_atomically(path, |f| {
        fn arr2(v: &[f64], a: usize, b: usize) -> hdf5::Result<ndarray::ArrayView2<'_, f64>> {
            ndarray::ArrayView2::from_shape((a, b), v).map_err(|e| hdf5::Error::from(e.to_string()))
        }
        fn arr3(
            v: &[f64],
            a: usize,
            b: usize,
            c: usize,
        ) -> hdf5::Result<ndarray::ArrayView3<'_, f64>> {
            ndarray::ArrayView3::from_shape((a, b, c), v)
                .map_err(|e| hdf5::Error::from(e.to_string()))
        }
        f.new_dataset_builder()
            .with_data(&arr2(&ds.train.values, ds.train.len(), d)?)
            .create("train")?;
        let g = f.create_group("test")?;
        g.new_dataset_builder()
            .with_data(&arr3(&ctx, k, c, d)?)
            .create("context")?;
        g.new_dataset_builder()
            .with_data(&arr3(&truth, k, h, d)?)
            .create("truth")?;
        f.new_dataset_builder()
            .with_data(&arr2(&ics, ds.initial_conditions.len(), full)?)
            .create("initial_conditions")?;
        let v: VarLenUnicode = json
            .parse()
            .map_err(|_| hdf5::Error::from("metadata not storable"))?;
        f.new_attr::<VarLenUnicode>()
            .create("metadata")?
            .write_scalar(&v)?;
        f.new_attr::<f64>().create("dt")?.write_scalar(&ds.dt)?;
        f.new_attr::<f64>()
            .create("period")?
            .write_scalar(&ds.period)?;
        Ok(())
    })
    .map_err(|e| e.to_string())
}

/// Reads a data set written by [`write()`].
pub fn read(path: &Path) -> Result<Dataset, crate::forecast::BenchError> {
    read_inner(path).map_err(crate::forecast::BenchError::Failed)
}

fn read_inner(path: &Path) -> Result<Dataset, String> {
    let err = |e: hdf5::Error| format!("{}: {e}", path.display());
    // without HDF5's advisory lock (see `io::open_read`): files are published complete by rename
    let f = crate::io::open_read(path).map_err(err)?;
    let meta: VarLenUnicode = f
        .attr("metadata")
        .and_then(|a| a.read_scalar())
        .map_err(err)?;
    let meta: Metadata = serde_json::from_str(meta.as_str())
        .map_err(|e| format!("{}: metadata: {e}", path.display()))?;
    let train = f
        .dataset("train")
        .and_then(|d| d.read_2d::<f64>())
        .map_err(err)?;
    let ctx = f
        .dataset("test/context")
        .and_then(|d| d.read::<f64, ndarray::Ix3>())
        .map_err(err)?;
    let truth = f
        .dataset("test/truth")
        .and_then(|d| d.read::<f64, ndarray::Ix3>())
        .map_err(err)?;
    let ics = f
        .dataset("initial_conditions")
        .and_then(|d| d.read_2d::<f64>())
        .map_err(err)?;
    let d = train.ncols().max(1);
    let to_series = |a: ndarray::ArrayView2<f64>| Series::new(a.iter().copied().collect(), d);
    let tests = (0..ctx.shape()[0])
        .map(|k| TestCase {
            context: to_series(ctx.index_axis(ndarray::Axis(0), k)),
            truth: to_series(truth.index_axis(ndarray::Axis(0), k)),
        })
        .collect();
    let scale = match (meta.scale_mean, meta.scale_std) {
        (Some(mean), Some(std)) => Some(Scaler { mean, std }),
        _ => None,
    };
    Ok(Dataset {
        system: meta.system,
        file: meta.file,
        protocol: meta.protocol,
        variables: meta.variables,
        dt: meta.dt,
        period: meta.period,
        lyapunov_max: meta.lyapunov_max,
        train: to_series(train.view()),
        tests,
        scale,
        initial_conditions: ics.outer_iter().map(|r| r.to_vec()).collect(),
    })
}
