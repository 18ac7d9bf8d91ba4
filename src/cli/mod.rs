//! The `phaseflow` command line: argument parsing and one library pipeline per subcommand.

use crate::integrate::{Method, SolverOptions};
use crate::io::{self, AttrValue, PlotOptions, TrajectoryWriter};
use crate::simulate::{self, Sampling};
use crate::systems::{self, CompiledSystem, Kind, Overrides, System, SystemSpec};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub mod forecast;
pub mod progress;

/// The process's one cancellation token, connected to Ctrl-C on first use (the library never installs handlers).
pub fn cancel_token() -> crate::control::Cancel {
    static TOKEN: std::sync::OnceLock<crate::control::Cancel> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let c = crate::control::Cancel::new();
            let h = c.clone();
            let _ = ctrlc::set_handler(move || h.cancel());
            c
        })
        .clone()
}

/// phaseflow: chaotic flows and active matter from plain-text definition files.
#[derive(Parser, Debug)]
#[command(name = "phaseflow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the systems of the catalogue (`systems/`, or $PHASEFLOW_SYSTEMS).
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a system: equations, parameters, initial condition, reference values.
    Info {
        /// A definition file path or a catalogue name (e.g. lorenz).
        system: String,
        /// Override a parameter (or `dimension` of an indexed family): NAME=VALUE.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Integrate a system and write its trajectory to HDF5 (/time [T], /state [T, D]); particle models (systems/active/) write H5MD 1.1.
    Simulate(Box<SimulateArgs>),
    /// Catalogue-wide operations.
    Catalogue {
        #[command(subcommand)]
        action: CatalogueCommand,
    },
    /// Lyapunov spectrum (variational equations with the exact Jacobian, QR re-orthonormalisation),
    /// Kaplan–Yorke dimension and Pesin entropy, with error bars, beside the file's reference values.
    Invariants(InvariantsArgs),
    /// Invariants of a measured scalar series, without equations: maximal Lyapunov exponent
    /// (Rosenstein and Kantz), correlation dimension of the delay embedding, sample and multiscale
    /// entropy, dominant period. Input: a phaseflow trajectory file (.h5) or a text file with one
    /// number per line (time step from --dt).
    Series(SeriesArgs),
    /// Train a score network (burn) on stationary samples from `phaseflow simulate` (particle
    /// H5MD files, or trajectories of SDE files): denoising or implicit score matching (with the
    /// Fokker–Planck residual and global constraints), or the model-free probability-flow loss
    /// on consecutive snapshots; RAdam/Adam with warm-up + cosine schedule, clipping, EMA;
    /// checkpoints (every K steps and on Ctrl-C), `--resume` continues bit for bit; writes
    /// MODEL_DIR/{model.bpk, model.json, config.toml, log.csv, loss.png}.
    Train(TrainArgs),
    /// Evaluate a trained score network on particle samples: s_x, s_g and the probability flow
    /// velocity v = b − D s per frame into an HDF5 file.
    Score(ScoreArgs),
    /// Entropy production rate EPR = E[v·D⁻¹v] (v = b − D s): learned from a trained model on
    /// samples, beside the learning-free reference ⟨|b_x|²⟩/ε + ⟨∇_x·b_x⟩ (ε = 0: the g-part
    /// −⟨∇_x·b_x⟩) and, for a linear drift, the exact value; or `--exact` for a linear SDE file
    /// (Lyapunov equation).
    Epr(EprArgs),
    /// Forecasting benchmark on generated chaos: data sets, native and external forecasters,
    /// dysts' metrics, leaderboards.
    Forecast {
        #[command(subcommand)]
        action: forecast::ForecastCommand,
    },
    /// Plot a trajectory file: 2-D projection, or the first three coordinates in perspective;
    /// for a particle (H5MD) file, a snapshot of one frame coloured by local packing fraction.
    Plot {
        /// Trajectory file written by `phaseflow simulate`.
        input: PathBuf,
        /// Output PNG.
        #[arg(short, long)]
        output: PathBuf,
        /// Components to plot, by name or index (2 or 3 of them), e.g. `x,z`.
        #[arg(long, value_delimiter = ',')]
        axes: Option<Vec<String>>,
        /// Image width in pixels.
        #[arg(long, default_value_t = 1000)]
        width: u32,
        /// Image height in pixels.
        #[arg(long, default_value_t = 800)]
        height: u32,
        /// Particle (H5MD) files: the frame to draw, negative from the end (-1 = last);
        /// particles are coloured by their local packing fraction
        #[arg(long, allow_hyphen_values = true, default_value_t = -1)]
        frame: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum CatalogueCommand {
    /// Integrate every system from its default initial condition and compare its mean and std
    /// with the reference values of its file (exit status 1 when a system fails).
    Check(CheckArgs),
    /// Invariants of every system (Lyapunov spectrum with errors, Kaplan–Yorke, Pesin, two-
    /// trajectory λ_max, correlation dimension) beside dysts' values, as a CSV table; parallel,
    /// resumable (--resume continues the partial table).
    Invariants(CatalogueInvariantsArgs),
}

/// Options of `phaseflow catalogue invariants`.
#[derive(Args, Debug)]
pub struct CatalogueInvariantsArgs {
    /// Output table (CSV; written as .NAME.partial until complete)
    #[arg(short, long)]
    pub output: PathBuf,
    /// Only these systems (names or files), comma-separated
    #[arg(long, value_delimiter = ',')]
    pub systems: Option<Vec<String>>,
    /// Measured span of flows in periods (maps: 100 iterations per period-unit, i.e. 1e5 for 1000)
    #[arg(long, default_value_t = 500.0)]
    pub span_periods: f64,
    /// Points of the correlation-dimension estimates (0 skips them)
    #[arg(long, default_value_t = 10000)]
    pub correlation_points: usize,
    /// Continue an interrupted table
    #[arg(long)]
    pub resume: bool,
    /// Also write the results into each file's [reference] as phaseflow_* values
    #[arg(long)]
    pub write_reference: bool,
}

/// Options of `phaseflow catalogue check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Only these systems (names or files), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub systems: Option<Vec<String>>,
    /// Integration method.
    #[arg(long, default_value = "auto", value_parser = ["auto", "dop853", "dopri5", "rk4", "rosenbrock"])]
    pub method: String,
    /// Relative tolerance.
    #[arg(long, default_value_t = 1e-10)]
    pub rtol: f64,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 1e-10)]
    pub atol: f64,
    /// Transient discarded before recording, in periods (dysts' references used none).
    #[arg(long, default_value_t = 0.0)]
    pub burn_in_periods: f64,
    /// Recorded points per system.
    #[arg(long, default_value_t = 1000)]
    pub points: usize,
    /// Points per period.
    #[arg(long, default_value_t = 100)]
    pub pts_per_period: usize,
    /// Largest accepted mean/std error, in units of the reference std.
    #[arg(long, default_value_t = 0.1)]
    pub tolerance: f64,
    /// Machine-readable output (one object per system).
    #[arg(long)]
    pub json: bool,
}

/// Options of `phaseflow invariants`.
#[derive(Args, Debug)]
pub struct InvariantsArgs {
    /// System name or definition file
    pub system: String,
    /// Override a parameter: NAME=VALUE (repeatable)
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Measured span per initial condition (time units; iterations for maps)
    /// [default: 2000 periods of flows, 1e5 iterations of maps]
    #[arg(long)]
    pub t_end: Option<f64>,
    /// Discarded transient [default: 20 periods; 1000 iterations]
    #[arg(long)]
    pub transient: Option<f64>,
    /// Re-orthonormalisation interval [default: period/8; every iteration of maps]
    #[arg(long)]
    pub qr_interval: Option<f64>,
    /// Number of exponents (default: all; delay equations: 3)
    #[arg(long)]
    pub exponents: Option<usize>,
    /// Initial conditions sampled on the attractor (error bars across them); 1 = the file's IC
    /// with block error bars
    #[arg(long, default_value_t = 1)]
    pub ics: usize,
    /// Seed of the initial-condition sampling
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 1e-9)]
    pub rtol: f64,
    #[arg(long, default_value_t = 1e-9)]
    pub atol: f64,
    /// Points of the correlation-dimension estimate (a trajectory sampled 20 times per period
    /// after the transient, Theiler window one period; maps: iterates); 0 skips it
    #[arg(long, default_value_t = 20000)]
    pub correlation_points: usize,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// Options of `phaseflow train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training file (TOML: [network], [loss], [training]).
    pub config: PathBuf,
    /// Samples: an H5MD file written by `phaseflow simulate` for a particle model.
    #[arg(long)]
    pub data: PathBuf,
    /// Model directory to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Continue from the directory's last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// `cpu` (burn's flex backend), or `cuda` / `wgpu` when built with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Stop (with a checkpoint) after this many steps of this invocation.
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options of `phaseflow score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Model directory written by `phaseflow train`.
    pub model: PathBuf,
    /// Samples (H5MD particle file).
    #[arg(long)]
    pub data: PathBuf,
    /// Output HDF5 file: /score_x [F, N, d], /score_g [F, N, c] and the probability flow
    /// velocity /velocity_x, /velocity_g per frame F.
    #[arg(short, long)]
    pub output: PathBuf,
    /// `cpu`, or `cuda` / `wgpu` when built with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Options of `phaseflow epr`.
#[derive(Args, Debug)]
pub struct EprArgs {
    /// System definition: a particle model (systems/active/) or a linear SDE (a flow with a
    /// [diffusion] table, systems/linear/). With --data, its parameters are those the data was
    /// simulated with (`/parameters`), unless overridden by --set.
    #[arg(long)]
    pub system: Option<String>,
    /// Override a parameter: NAME=VALUE.
    #[arg(long)]
    pub set: Vec<String>,
    /// The exact EPR of a linear SDE dz = Az dt + √(2D) dW (no samples, no model).
    #[arg(long)]
    pub exact: bool,
    /// Model directory written by `phaseflow train`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Samples (H5MD particle file from `phaseflow simulate`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Contiguous batches for the batch-means standard errors.
    #[arg(long, default_value_t = 20)]
    pub batches: usize,
    /// Where entropy is produced, to HDF5: per frame and particle (/particle_epr [F, N],
    /// /position [F, N, d]), on a grid (/grid/{edges, conditional_mean, density, count}) and
    /// radially (/radial/{edges, conditional_mean, density}).
    #[arg(long)]
    pub maps: Option<PathBuf>,
    /// Bins per axis of the maps.
    #[arg(long, default_value_t = 32)]
    pub bins: usize,
    /// Samples for the stationarity diagnostics (∇·v + v·s, E[|s|² + ∇·s]; 0: none).
    #[arg(long, default_value_t = 500)]
    pub diagnostic_samples: usize,
    /// PNG: the last frame (first replica) with each particle coloured by its EPR.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Probability-flow trajectories dz/dt = v(z) (RK4) from the first frame of each replica, to
    /// HDF5: /flow/position [R, K+1, N, d], /flow/propulsion [R, K+1, N, c], /flow/time [K+1].
    #[arg(long)]
    pub flow_out: Option<PathBuf>,
    /// Steps K of the probability-flow trajectories.
    #[arg(long, default_value_t = 100)]
    pub flow_steps: usize,
    /// Step of the probability-flow trajectories (default: the model's dt).
    #[arg(long)]
    pub flow_dt: Option<f64>,
    /// `cpu`, or `cuda` / `wgpu` when built with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Options of `phaseflow series`.
#[derive(Args, Debug)]
pub struct SeriesArgs {
    /// A phaseflow trajectory (.h5) or a text file with one value per line
    pub input: PathBuf,
    /// Component of an .h5 trajectory (name or index) [default: the first]
    #[arg(long)]
    pub variable: Option<String>,
    /// Sampling step of a text series (an .h5 file gives its own)
    #[arg(long)]
    pub dt: Option<f64>,
    /// Embedding dimension m
    #[arg(long, default_value_t = 5)]
    pub embed: usize,
    /// Embedding delay in samples [default: 1/8 of the dominant period of the differenced series]
    #[arg(long)]
    pub lag: Option<usize>,
    /// Temporal exclusion window w in samples [default: one such period]
    #[arg(long)]
    pub exclude: Option<usize>,
    /// Samples the divergence is followed for [default: 8 such periods]
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// Options of `phaseflow simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// A definition file path or a catalogue name (e.g. lorenz).
    pub system: String,
    /// Override a parameter (or `dimension` of an indexed family): NAME=VALUE; repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Initial condition, comma-separated (default: the file's).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, num_args = 1)]
    pub ic: Option<Vec<String>>,
    /// Integration method.
    #[arg(long, default_value = "auto", value_parser = ["auto", "dop853", "dopri5", "rk4", "rosenbrock"])]
    pub method: String,
    /// Relative tolerance (adaptive methods).
    #[arg(long, default_value_t = 1e-10)]
    pub rtol: f64,
    /// Absolute tolerance (adaptive methods).
    #[arg(long, default_value_t = 1e-10)]
    pub atol: f64,
    /// Step size of rk4 (default: the file's `dt`); initial step of adaptive methods.
    #[arg(long)]
    pub step: Option<f64>,
    /// Number of output points (with --pts-per-period: t_end = period·N/K, like dysts).
    #[arg(long, conflicts_with_all = ["t_end", "dt_out"])]
    pub points: Option<usize>,
    /// Output points per dominant period of the system.
    #[arg(long, default_value_t = 100, conflicts_with_all = ["t_end", "dt_out"])]
    pub pts_per_period: usize,
    /// Length of the recorded interval (time units), with --dt-out.
    #[arg(long)]
    pub t_end: Option<f64>,
    /// Output spacing (time units), with --t-end.
    #[arg(long)]
    pub dt_out: Option<f64>,
    /// Transient discarded before recording (time units; iterations for maps).
    #[arg(long, default_value_t = 0.0)]
    pub burn_in: f64,
    /// Blow-up threshold: stop with an error when a |component| exceeds it.
    #[arg(long, default_value_t = 1e12)]
    pub max_abs: f64,
    /// Integrate an ensemble of M trajectories from initial conditions sampled on the attractor
    /// (seeded); `/state` is then [M, T, D].
    #[arg(long, value_name = "M", conflicts_with = "ic")]
    pub ensemble: Option<usize>,
    /// Ensemble initial conditions from a text file: one state per line, numbers separated by
    /// commas or spaces (`#` starts a comment).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ic", "ensemble"])]
    pub ic_file: Option<PathBuf>,
    /// Seed of every random choice (attractor sampling, noise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Additive noise intensity σ (dx = f dt + σ dW), one value or one per variable (diagonal);
    /// integrated with the stochastic Heun method at the fixed step --step (default: the file's dt).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub noise: Option<Vec<f64>>,
    /// Units of --noise: `state` (as given) or `std` (multiplied by the reference std of each
    /// variable from the file's [reference] table).
    #[arg(long, default_value = "state", value_parser = ["state", "std"])]
    pub noise_units: String,
    /// Record a delay embedding with E coordinates per variable: x(t), x(t − L), …, x(t − (E−1)L)
    /// (dysts stores delay equations with E = 10). L is --embed-lag, rounded to a multiple of the
    /// output spacing; the burn-in must cover (E−1)·L.
    #[arg(long, value_name = "E", conflicts_with_all = ["ensemble", "ic_file"])]
    pub embed: Option<usize>,
    /// Lag L of --embed (time units; default: the smallest delay of a delay equation).
    #[arg(long, requires = "embed")]
    pub embed_lag: Option<f64>,
    /// Maps: iterate the inverse map given by the file's `[inverse]` table (backwards in time).
    #[arg(long)]
    pub inverse: bool,
    /// Record the raw state even where the file declares an observation map (`[observe]`).
    #[arg(long)]
    pub raw: bool,
    /// Output HDF5 file.
    /// Particle models: number of recorded steps after the burn-in (or give --t-end)
    #[arg(long, conflicts_with = "t_end")]
    pub steps: Option<u64>,
    /// Particle models: steps between recorded frames (default: 100 frames in all)
    #[arg(long)]
    pub every: Option<u64>,
    /// Particle models: independent replicas (stationary samples), written as
    /// /particles/replica_0 … (one replica: /particles/all)
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Particle models: continue an interrupted run from its partial file (same command)
    #[arg(long)]
    pub resume: bool,
    /// Worker threads (default: all cores); results do not depend on it
    #[arg(long)]
    pub threads: Option<usize>,
    /// Testing aid: stop after this many frames as if the run had been killed
    #[arg(long, hide = true)]
    pub abort_after_frames: Option<usize>,
    #[arg(short, long)]
    pub output: PathBuf,
    /// Print a machine-readable summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::List { json } => list(json),
        Command::Info { system, set, json } => info(&system, &set, json),
        Command::Simulate(args) => simulate(&args),
        Command::Invariants(args) => invariants(&args),
        Command::Series(args) => series(&args),
        Command::Train(args) => train(&args),
        Command::Score(args) => score(&args),
        Command::Epr(args) => epr(&args),
        Command::Forecast { action } => forecast::run(&action),
        Command::Catalogue {
            action: CatalogueCommand::Check(args),
        } => catalogue_check(&args),
        Command::Catalogue {
            action: CatalogueCommand::Invariants(args),
        } => catalogue_invariants(&args),
        Command::Plot {
            input,
            output,
            axes,
            width,
            height,
            frame,
        } => {
            if io::h5md::is_h5md(&input) {
                plot_particles(&input, &output, frame, width, height)
            } else {
                plot(&input, &output, axes, width, height)
            }
        }
    }
}

fn load(system: &str, set: &[String]) -> Result<CompiledSystem> {
    let ov = Overrides::parse(set)?;
    Ok(CompiledSystem::load(system, &ov)?)
}

fn list(json_out: bool) -> Result<()> {
    let mut rows = Vec::new();
    for f in systems::catalogue_files() {
        match SystemSpec::load(&f) {
            Ok(s) => {
                let d = match s.dimension {
                    Some(n) => n * s.variables.len(),
                    None => s.variables.len(),
                };
                rows.push(json!({
                    "name": s.name, "kind": s.kind.as_str(), "dimension": d,
                    "file": f.display().to_string(), "description": s.description,
                    "period": s.period, "dt": s.dt,
                }));
            }
            Err(e) => rows.push(json!({"file": f.display().to_string(), "error": e.to_string()})),
        }
    }
    for f in systems::particle_files() {
        match crate::particles::ParticleModel::load(&f, &[]) {
            Ok(m) => rows.push(json!({
                "name": m.name, "kind": "particles", "dimension": m.dim,
                "particles": m.n, "file": f.display().to_string(),
                "description": m.description, "dt": m.dt,
            })),
            Err(e) => rows.push(json!({"file": f.display().to_string(), "error": e.to_string()})),
        }
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<16} {:<9} {:>4}  description", "name", "kind", "dim");
    for r in &rows {
        if let Some(e) = r.get("error") {
            println!("{:<16} error: {}", "?", e.as_str().unwrap_or(""));
            continue;
        }
        let mut desc = r["description"].as_str().unwrap_or("").to_string();
        if desc.chars().count() > 70 {
            desc = desc.chars().take(67).collect::<String>() + "...";
        }
        println!(
            "{:<16} {:<9} {:>4}  {}",
            r["name"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
            r["dimension"].as_u64().unwrap_or(0),
            desc
        );
    }
    println!(
        "{} systems in {}",
        rows.len(),
        systems::catalogue_dir().display()
    );
    Ok(())
}

fn info(system: &str, set: &[String], json_out: bool) -> Result<()> {
    let path = crate::systems::resolve_system(system).map_err(|e| anyhow!("{e}"))?;
    if crate::particles::model::is_particle_path(&path) {
        return info_particles(&path, set, json_out);
    }
    let sys = load(system, set)?;
    let info = sys.info();
    let (spec, m) = (&info.spec, &info.model);
    let equations: Vec<_> = spec
        .variables
        .iter()
        .map(|v| json!({"variable": v.value, "equation": spec.equations[&v.value].value}))
        .collect();
    let params: serde_json::Map<String, serde_json::Value> = m
        .param_names
        .iter()
        .zip(sys.params())
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    let reference = serde_json::to_value(&spec.reference)?;
    let out = json!({
        "name": m.name, "kind": m.kind.as_str(), "file": spec.path.display().to_string(),
        "description": spec.description, "citation": spec.citation,
        "variables": m.components, "dimension": sys.dim(), "family_size": m.dimension,
        "parameters": params, "equations": equations,
        "initial_condition": m.initial_condition, "t0": m.t0, "dt": m.dt, "period": m.period,
        "nonautonomous": m.uses_time, "hamiltonian": spec.hamiltonian,
        "jacobian_nonzeros": m.jacobian.len(),
        "delays": m.lags.iter().map(|l| l.text.clone()).collect::<Vec<_>>(),
        "conserved": m.conserved.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "reference": reference,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} ({}, dimension {})", m.name, m.kind.as_str(), sys.dim());
    println!("  file:        {}", spec.path.display());
    if !spec.description.is_empty() {
        println!("  description: {}", spec.description);
    }
    if !spec.citation.is_empty() {
        println!("  citation:    {}", spec.citation);
    }
    println!("  equations:");
    let dot = if m.kind == Kind::Map { "next" } else { "d/dt" };
    for v in &spec.variables {
        let lhs = if m.dimension.is_some() {
            format!("{dot} {}[i]", v.value)
        } else {
            format!("{dot} {}", v.value)
        };
        println!("    {lhs:<12} = {}", spec.equations[&v.value].value);
    }
    println!("  parameters:");
    for (n, v) in m.param_names.iter().zip(sys.params()) {
        println!("    {n:<12} = {v}");
    }
    println!(
        "  initial condition: {:?} (t0 = {})",
        m.initial_condition, m.t0
    );
    println!("  dt = {}, period = {}", m.dt, m.period);
    println!(
        "  Jacobian: {} nonzero entries of {}",
        m.jacobian.len(),
        sys.dim() * sys.dim()
    );
    if !m.lags.is_empty() {
        let l: Vec<_> = m.lags.iter().map(|l| l.text.as_str()).collect();
        println!("  delay terms: {}", l.join(", "));
    }
    if !spec.reference.is_empty() {
        println!("  reference:");
        for (k, v) in &spec.reference {
            println!("    {k:<28} = {v}");
        }
    }
    Ok(())
}

fn sampling(args: &SimulateArgs, sys: &CompiledSystem) -> Result<Sampling> {
    let m = sys.model();
    if !(args.burn_in >= 0.0 && args.burn_in.is_finite()) {
        bail!(
            "--burn-in must be a non-negative number, got {}",
            args.burn_in
        );
    }
    let t_start = m.t0 + args.burn_in;
    if m.kind == Kind::Map {
        if args.burn_in.fract() != 0.0 {
            bail!("--burn-in of a map counts iterations: give an integer");
        }
        return Ok(Sampling::iterations(t_start, args.points.unwrap_or(1000)));
    }
    match (args.t_end, args.dt_out) {
        (Some(t_end), Some(dt_out)) => {
            if !(t_end > 0.0 && dt_out > 0.0 && t_end.is_finite()) {
                bail!("--t-end and --dt-out must be positive");
            }
            Ok(Sampling::fixed(t_start, t_end, dt_out))
        }
        _ => {
            // dysts' convention: t_end = period · N / K, N points uniformly on [0, t_end]
            let points = args.points.unwrap_or(1000);
            if points < 2 || args.pts_per_period == 0 {
                bail!("--points must be at least 2 and --pts-per-period positive");
            }
            Ok(Sampling::per_period(
                t_start,
                m.period,
                points,
                args.pts_per_period,
            ))
        }
    }
}

fn parse_ic(items: &[String], sys: &CompiledSystem) -> Result<Vec<f64>> {
    let m = sys.model();
    let mut out = Vec::with_capacity(items.len());
    for s in items {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| anyhow!("--ic: '{}' is not a number", s.trim()))?;
        if !v.is_finite() {
            bail!("--ic: '{}' is not finite", s.trim());
        }
        out.push(v);
    }
    if out.len() != sys.dim() {
        let names = if m.components.len() <= 8 {
            m.components.join(", ")
        } else {
            format!(
                "{}, ..., {}",
                m.components[0],
                m.components[m.components.len() - 1]
            )
        };
        bail!(
            "--ic has {} values but {} has {} variables ({names})",
            out.len(),
            m.name,
            sys.dim()
        );
    }
    Ok(out)
}

fn simulate(args: &SimulateArgs) -> Result<()> {
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| anyhow!("cannot start {t} threads: {e}"))?;
        return pool.install(|| simulate_in_pool(args));
    }
    simulate_in_pool(args)
}

fn simulate_in_pool(args: &SimulateArgs) -> Result<()> {
    let path = crate::systems::resolve_system(&args.system).map_err(|e| anyhow!("{e}"))?;
    if crate::particles::model::is_particle_path(&path) {
        return simulate_particles(args, &path);
    }
    for (given, name) in [
        (args.steps.is_some(), "--steps"),
        (args.every.is_some(), "--every"),
        (args.replicas != 1, "--replicas"),
        (args.resume, "--resume"),
    ] {
        if given {
            bail!("{name} applies to particle models (kind = \"particles\") only");
        }
    }
    if args.t_end.is_some() != args.dt_out.is_some() {
        bail!("--t-end and --dt-out go together for flows, maps and delay equations");
    }
    simulate_system(args)
}

/// `phaseflow invariants`: Lyapunov spectrum, Kaplan–Yorke dimension, Pesin entropy,
/// correlation dimension, beside the file's reference values.
fn invariants(args: &InvariantsArgs) -> Result<()> {
    let sys = load(&args.system, &args.set)?;
    let settings = crate::analysis::invariants::InvariantSettings {
        span: args.t_end,
        transient: args.transient,
        qr_interval: args.qr_interval,
        exponents: args.exponents,
        ics: args.ics,
        seed: args.seed,
        rtol: args.rtol,
        atol: args.atol,
        correlation_points: args.correlation_points,
    };
    let inv = crate::analysis::invariants::compute(&sys, &settings).map_err(|e| anyhow!("{e}"))?;
    let spec = &sys.info().spec;
    let reference = |key: &str| spec.reference_array(key);
    let ref_scalar = |key: &str| spec.reference_number(key);
    let map = inv.kind == "map";
    let units = if map {
        "per iteration"
    } else {
        "per time unit"
    };
    if args.json {
        let mut v = serde_json::to_value(&inv)?;
        v["units"] = json!(units);
        v["reference"] = json!({
            "lyapunov_spectrum": reference("lyapunov_spectrum"),
            "lyapunov_spectrum_dysts": reference("lyapunov_spectrum_dysts"),
            "kaplan_yorke_dimension": ref_scalar("kaplan_yorke_dimension"),
            "kaplan_yorke_dimension_dysts": ref_scalar("kaplan_yorke_dimension_dysts"),
            "pesin_entropy_dysts": ref_scalar("pesin_entropy_dysts"),
            "maximum_lyapunov_dysts": ref_scalar("maximum_lyapunov_dysts"),
            "correlation_dimension_dysts": ref_scalar("correlation_dimension_dysts"),
            "multiscale_entropy_dysts": ref_scalar("multiscale_entropy_dysts"),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{}: Lyapunov spectrum ({units}; span {}, transient {}, QR every {}, {} initial condition(s))",
        inv.system, inv.span, inv.transient, inv.qr_interval, inv.initial_conditions
    );
    let lit = reference("lyapunov_spectrum");
    let dy = reference("lyapunov_spectrum_dysts");
    for (i, (l, e)) in inv
        .lyapunov_spectrum
        .iter()
        .zip(&inv.lyapunov_errors)
        .enumerate()
    {
        let col = |v: &Option<Vec<f64>>| {
            v.as_ref()
                .and_then(|v| v.get(i))
                .map_or("-".to_string(), |x| format!("{x:.4}"))
        };
        println!(
            "  λ{:<2} = {:>10.5} ± {:.5}   literature {:>9}   dysts {:>9}",
            i + 1,
            l,
            e,
            col(&lit),
            col(&dy)
        );
    }
    println!("  sum  = {:.6}", inv.sum);
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    if let (Some(l), Some(e)) = (
        inv.maximum_lyapunov_two_trajectories,
        inv.maximum_lyapunov_two_trajectories_error,
    ) {
        println!(
            "  maximal exponent by two-trajectory renormalisation {l:.5} ± {e:.5} (dysts {})",
            opt(ref_scalar("maximum_lyapunov_dysts"))
        );
    }
    println!(
        "  Kaplan–Yorke dimension {:.4} (literature {}, dysts {})",
        inv.kaplan_yorke_dimension,
        opt(ref_scalar("kaplan_yorke_dimension")),
        opt(ref_scalar("kaplan_yorke_dimension_dysts"))
    );
    if let (Some(c), Some(e), Some(r)) = (
        inv.correlation_dimension,
        inv.correlation_dimension_error,
        inv.correlation_fit_range,
    ) {
        println!(
            "  correlation dimension {c:.3} ± {e:.3} (fit over r ∈ [{:.3e}, {:.3e}], dysts {})",
            r.0,
            r.1,
            opt(ref_scalar("correlation_dimension_dysts"))
        );
    }
    if let Some(se) = inv.sample_entropy {
        println!(
            "  sample entropy SampEn(2, 0.2σ) of the first coordinate {se:.4} (dysts multiscale entropy {})",
            opt(ref_scalar("multiscale_entropy_dysts"))
        );
    }
    if !inv.dominant_periods.is_empty() {
        let ps: Vec<String> = inv
            .dominant_periods
            .iter()
            .map(|p| p.map_or("-".into(), |v| format!("{v:.4}")))
            .collect();
        println!(
            "  dominant spectral period per coordinate [{}] (file's period {})",
            ps.join(", "),
            sys.model().period
        );
    }
    println!(
        "  Pesin entropy {:.4} (dysts {})   [{:.2} s]",
        inv.pesin_entropy,
        opt(ref_scalar("pesin_entropy_dysts")),
        inv.wall_seconds
    );
    Ok(())
}

/// `phaseflow series`: invariants of a scalar time series (no equations).
fn series(args: &SeriesArgs) -> Result<()> {
    use crate::analysis::{dimension, stats, timeseries};
    let (x, dt) = if args.input.extension().is_some_and(|e| e == "h5") {
        let tr = io::read_trajectory(&args.input)?;
        if tr.len() < 2 {
            bail!("{}: fewer than two samples", args.input.display());
        }
        let c = match &args.variable {
            None => 0,
            Some(v) => tr
                .variables
                .iter()
                .position(|n| n == v)
                .or_else(|| v.parse::<usize>().ok().filter(|k| *k < tr.dim))
                .ok_or_else(|| {
                    anyhow!(
                        "no component '{v}' (components: {})",
                        tr.variables.join(", ")
                    )
                })?,
        };
        let xs: Vec<f64> = (0..tr.len()).map(|k| tr.state[k * tr.dim + c]).collect();
        (xs, args.dt.unwrap_or(tr.time[1] - tr.time[0]))
    } else {
        let dt = args
            .dt
            .ok_or_else(|| anyhow!("a text series needs its sampling step: --dt"))?;
        let text = std::fs::read_to_string(&args.input)
            .map_err(|e| anyhow!("{}: {e}", args.input.display()))?;
        let mut xs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            xs.push(l.parse::<f64>().map_err(|_| {
                anyhow!("{}:{}: '{l}' is not a number", args.input.display(), i + 1)
            })?);
        }
        (xs, dt)
    };
    if dt.is_nan() || dt <= 0.0 || x.len() < 200 || x.iter().any(|v| !v.is_finite()) {
        bail!("the series needs at least 200 finite samples and a positive time step");
    }
    // time scale of the oscillation: dominant period of the differenced series (differencing
    // removes the red low-frequency part of e.g. Lorenz's lobe switching)
    let diff: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let period = stats::dominant_period(&diff, dt)
        .or_else(|| stats::dominant_period(&x, dt))
        .unwrap_or(100.0 * dt);
    let per = ((period / dt).round() as usize).clamp(4, x.len() / 10);
    let lag = args.lag.unwrap_or((per / 8).max(1));
    let w = args.exclude.unwrap_or(per);
    let horizon = args.horizon.unwrap_or((8 * per).min(x.len() / 4));
    let n = x.len().min(12000);
    let xs = &x[..n];
    let ros = timeseries::rosenstein(xs, dt, args.embed, lag, w, horizon);
    let mean = xs.iter().sum::<f64>() / n as f64;
    let sd = (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let kan = timeseries::kantz(
        &x[..n.min(6000)],
        dt,
        args.embed,
        lag,
        w,
        0.1 * sd * (args.embed as f64).sqrt(),
        horizon,
    );
    // delay embedding for the correlation dimension
    let m = args.embed;
    let count = n.saturating_sub((m - 1) * lag);
    let emb: Vec<f64> = (0..count)
        .flat_map(|i| (0..m).map(move |c| (i, c)))
        .map(|(i, c)| xs[i + c * lag])
        .collect();
    let corr = dimension::correlation_dimension(&emb, m, w, sd * (m as f64).sqrt());
    let mse = timeseries::multiscale_entropy(&xs[..n.min(3000)], 2, 0.2, 5);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "samples": x.len(), "dt": dt, "dominant_period": period,
                "embedding_dimension": m, "lag": lag, "exclusion": w, "horizon": horizon,
                "lyapunov_rosenstein": ros.as_ref().map(|r| r.lambda),
                "lyapunov_kantz": kan.as_ref().map(|r| r.lambda),
                "correlation_dimension": corr.as_ref().map(|c| c.dimension),
                "correlation_dimension_error": corr.as_ref().map(|c| c.error),
                "sample_entropy": mse.first().cloned().flatten(),
                "multiscale_entropy": mse,
            }))?
        );
        return Ok(());
    }
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    println!(
        "{}: {} samples, dt = {dt}, dominant period {period:.4}; embedding m = {m}, lag {lag}, exclusion {w}, horizon {horizon} samples",
        args.input.display(),
        x.len()
    );
    println!(
        "  maximal Lyapunov exponent: Rosenstein {}, Kantz {}",
        f(ros.map(|r| r.lambda)),
        f(kan.map(|r| r.lambda))
    );
    println!(
        "  correlation dimension of the embedding {} ± {}",
        f(corr.as_ref().map(|c| c.dimension)),
        f(corr.as_ref().map(|c| c.error))
    );
    println!(
        "  sample entropy {} ; multiscale (scales 1-5) [{}]",
        f(mse.first().cloned().flatten()),
        mse.iter().map(|v| f(*v)).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// `phaseflow info` for a particle model: effective parameters (derived ones included), box,
/// interaction and its cut-off.
fn info_particles(path: &Path, set: &[String], json_out: bool) -> Result<()> {
    let ov = Overrides::parse(set).map_err(|e| anyhow!("{e}"))?;
    let m = crate::particles::ParticleModel::load(path, &ov.values).map_err(|e| anyhow!("{e}"))?;
    let (model, pair) = (
        match m.dynamics {
            crate::particles::Dynamics::Aoup { .. } => "aoup",
            crate::particles::Dynamics::Abp { .. } => "abp",
        },
        m.pair.map(|p| (format!("{p:?}"), p.cutoff())),
    );
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "name": m.name, "kind": "particles", "model": model, "file": path.display().to_string(),
                "description": m.description, "citation": m.citation, "dimension": m.dim,
                "particles": m.n, "fixed": m.n_fixed, "box_edge": m.bx.length,
                "packing_fraction": m.packing_fraction, "dt": m.dt, "parameters": m.parameters,
                "pair_force": pair.as_ref().map(|p| p.0.clone()), "cutoff": pair.as_ref().map(|p| p.1),
            }))?
        );
        return Ok(());
    }
    println!("{} (particles, model {model}, d = {})", m.name, m.dim);
    println!("  file:        {}", path.display());
    println!("  {}", m.description);
    println!(
        "  N = {} ({} fixed), box edge L = {:.6}, packing fraction {:.4}, dt = {}",
        m.n, m.n_fixed, m.bx.length, m.packing_fraction, m.dt
    );
    if let Some((p, rc)) = pair {
        println!("  pair force:  {p}, cut-off {rc:.4}");
    }
    println!("  parameters:");
    for (k, v) in &m.parameters {
        println!("    {k:<12} = {v}");
    }
    Ok(())
}

/// `phaseflow simulate` for particle models: H5MD output, replicas, resume.
fn simulate_particles(args: &SimulateArgs, path: &Path) -> Result<()> {
    let ov = Overrides::parse(&args.set).map_err(|e| anyhow!("{e}"))?;
    let model =
        crate::particles::ParticleModel::load(path, &ov.values).map_err(|e| anyhow!("{e}"))?;
    for w in model.warnings() {
        eprintln!("warning: {w}");
    }
    for (given, name) in [
        (args.ic.is_some(), "--ic"),
        (args.ensemble.is_some(), "--ensemble (use --replicas)"),
        (args.ic_file.is_some(), "--ic-file"),
        (args.noise.is_some(), "--noise"),
        (args.embed.is_some(), "--embed"),
        (args.inverse, "--inverse"),
        (args.dt_out.is_some(), "--dt-out (use --every)"),
        (args.points.is_some(), "--points"),
    ] {
        if given {
            bail!("{name} does not apply to particle models");
        }
    }
    let dt = model.dt;
    let to_steps = |t: f64, what: &str| -> Result<u64> {
        if !(t >= 0.0 && t.is_finite()) {
            bail!("{what} must be a non-negative time, got {t}");
        }
        Ok((t / dt).round() as u64)
    };
    let steps = match (args.steps, args.t_end) {
        (Some(s), _) => s,
        (None, Some(t)) => to_steps(t, "--t-end")?,
        (None, None) => bail!("give --steps S or --t-end T for a particle model"),
    };
    let every = args.every.unwrap_or((steps / 100).max(1));
    let cfg = crate::particles::run::RunConfig {
        steps,
        every,
        burn_in_steps: to_steps(args.burn_in, "--burn-in")?,
        replicas: args.replicas,
        seed: args.seed,
        resume: args.resume,
        progress: !args.quiet && !args.json,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        abort_after_frames: args.abort_after_frames,
    };
    let summary = crate::particles::run::run(&model, &args.output, &cfg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        eprintln!(
            "wrote {} ({} frames of {} particles × {} replica(s), φ = {:.3}, box {:.3}; {} steps in {:.2} s, {:.3e} particle-steps/s on {} threads)",
            summary.output.display(),
            summary.frames,
            summary.n_particles,
            summary.replicas,
            summary.packing_fraction,
            summary.box_edge,
            summary.steps,
            summary.wall_seconds,
            summary.particle_steps_per_second,
            summary.threads
        );
    }
    Ok(())
}

fn simulate_system(args: &SimulateArgs) -> Result<()> {
    let started = Instant::now();
    let sys = load(&args.system, &args.set)?;
    let m = sys.model();
    let x0 = match &args.ic {
        Some(items) => parse_ic(items, &sys)?,
        None => m.initial_condition.clone(),
    };
    let smp = sampling(args, &sys)?;
    let method: Method = args.method.parse().map_err(|e| anyhow!("{e}"))?;
    if !(args.rtol > 0.0 && args.atol > 0.0) {
        bail!("--rtol and --atol must be positive");
    }
    let opts = SolverOptions {
        method,
        rtol: args.rtol,
        atol: args.atol,
        h0: Some(args.step.unwrap_or(m.dt)),
        max_abs: args.max_abs,
        ..SolverOptions::default()
    };
    let opts = if method == Method::Rk4 {
        opts
    } else {
        SolverOptions {
            h0: args.step,
            ..opts
        }
    };

    let noise = parse_noise(args, &sys)?;
    let ensemble_ics: Option<Vec<Vec<f64>>> = match (&args.ic_file, args.ensemble) {
        (Some(f), _) => Some(read_ic_file(f, &sys)?),
        (None, Some(0)) => bail!("--ensemble must be at least 1"),
        (None, Some(n)) => Some(
            simulate::attractor_initial_conditions(&sys, &opts, n, args.seed)
                .map_err(|e| anyhow!("sampling initial conditions on the attractor: {e}"))?,
        ),
        (None, None) => None,
    };
    let times = smp.times();
    let apply_map = sys.has_observation_map() && !args.raw;
    let ro = simulate::RunOptions {
        solver: opts.clone(),
        noise: noise.clone(),
        raw: args.raw,
        inverse: args.inverse,
    };
    let (mut writer, stats, methods) = if let Some(e) = args.embed {
        let emb = embedding(args, &sys, &smp, e)?;
        let rec = simulate::trajectory(&sys, &ro, &x0, &emb.sampling)
            .map_err(|e| anyhow!("{e}; no output written"))?;
        let d = sys.dim();
        let mut names = Vec::with_capacity(d * e);
        for c in &m.components {
            for k in 0..e {
                names.push(if k == 0 {
                    format!("{c}(t)")
                } else {
                    format!("{c}(t-{k}L)")
                });
            }
        }
        let mut writer = TrajectoryWriter::create(&args.output, d * e, &names)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        let shift = (e - 1) * emb.lag_steps;
        let mut row = vec![0.0; d * e];
        for k in 0..smp.points {
            for j in 0..d {
                for q in 0..e {
                    row[j * e + q] = rec.state[(k + shift - q * emb.lag_steps) * d + j];
                }
            }
            writer
                .push(rec.time[k + shift], &row)
                .with_context(|| format!("writing {}", args.output.display()))?;
        }
        writer.set_attr("embedding_dimension", &AttrValue::U64(e as u64))?;
        writer.set_attr(
            "embedding_lag",
            &AttrValue::F64(emb.lag_steps as f64 * smp.dt_out),
        )?;
        (writer, rec.stats, rec.methods)
    } else if let Some(ics) = &ensemble_ics {
        let bar = progress_bar(ics.len() as u64, args.quiet);
        let recs = simulate::ensemble(&sys, &ro, ics, &smp)
            .map_err(|e| anyhow!("{e}; no output written"))?;
        bar.finish_and_clear();
        let mut writer =
            TrajectoryWriter::create_ensemble(&args.output, ics.len(), sys.dim(), &m.components)
                .with_context(|| format!("cannot create {}", args.output.display()))?;
        let d = sys.dim();
        let mut frame = vec![0.0; d * ics.len()];
        for (k, &t) in times.iter().enumerate() {
            for (j, r) in recs.iter().enumerate() {
                frame[j * d..(j + 1) * d].copy_from_slice(&r.state[k * d..(k + 1) * d]);
            }
            writer
                .push(t, &frame)
                .with_context(|| format!("writing {}", args.output.display()))?;
        }
        let mut total = recs[0].stats;
        for r in &recs[1..] {
            total.accepted += r.stats.accepted;
            total.rejected += r.stats.rejected;
            total.rhs_evals += r.stats.rhs_evals;
        }
        let flat: Vec<f64> = ics.iter().flatten().copied().collect();
        writer.set_attr("initial_conditions", &AttrValue::F64s(flat))?;
        let mut methods: Vec<&'static str> = Vec::new();
        for r in &recs {
            for m in &r.methods {
                if !methods.contains(m) {
                    methods.push(m);
                }
            }
        }
        (writer, total, methods)
    } else {
        let mut writer = TrajectoryWriter::create(&args.output, sys.dim(), &m.components)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        let bar = progress_bar(smp.points as u64, args.quiet);
        let mut write_err: Option<anyhow::Error> = None;
        let result = simulate::run(&sys, &ro, &x0, &times, &mut |k, t, row| {
            if let Err(e) = writer.push(t, row) {
                write_err = Some(e.into());
                return false;
            }
            bar.tick_to(k as u64 + 1);
            true
        });
        bar.finish_and_clear();
        if let Some(e) = write_err {
            return Err(e.context(format!("writing {}", args.output.display())));
        }
        let report = result.map_err(|e| anyhow!("{e}; no output written"))?;
        (writer, report.stats, report.methods)
    };
    // what actually ran: e.g. "dop853", or "dop853 -> rosenbrock" after a stiffness switch
    let solver_used = methods.join(" -> ");
    writer.set_attr("seed", &AttrValue::U64(args.seed))?;
    if let Some(nz) = &noise {
        writer.set_attr("noise_sigma", &AttrValue::F64s(nz.sigma.clone()))?;
        writer.set_attr("noise_step", &AttrValue::F64(nz.step))?;
        writer.set_attr(
            "noise_method",
            &AttrValue::Str("stochastic Heun (additive noise)".into()),
        )?;
    }
    let spec = &sys.info().spec;
    let cmdline: Vec<String> = std::env::args().collect();
    let attrs: Vec<(&str, AttrValue)> = vec![
        ("system", AttrValue::Str(m.name.clone())),
        ("kind", AttrValue::Str(m.kind.as_str().into())),
        ("definition", AttrValue::Str(spec.source.clone())),
        (
            "definition_path",
            AttrValue::Str(spec.path.display().to_string()),
        ),
        ("variables", AttrValue::Strs(m.components.clone())),
        ("parameter_names", AttrValue::Strs(m.param_names.clone())),
        ("parameter_values", AttrValue::F64s(sys.params().to_vec())),
        ("initial_condition", AttrValue::F64s(x0.clone())),
        ("t0", AttrValue::F64(m.t0)),
        ("inverse_map", AttrValue::Bool(args.inverse)),
        ("burn_in", AttrValue::F64(args.burn_in)),
        ("dt_out", AttrValue::F64(smp.dt_out)),
        ("period", AttrValue::F64(m.period)),
        ("solver", AttrValue::Str(solver_used.clone())),
        ("solver_requested", AttrValue::Str(method.to_string())),
        ("rtol", AttrValue::F64(args.rtol)),
        ("atol", AttrValue::F64(args.atol)),
        ("step", AttrValue::F64(opts.h0.unwrap_or(f64::NAN))),
        ("accepted_steps", AttrValue::U64(stats.accepted)),
        ("rejected_steps", AttrValue::U64(stats.rejected)),
        ("rhs_evaluations", AttrValue::U64(stats.rhs_evals)),
        (
            "observation_map",
            AttrValue::Strs(if apply_map {
                spec.observe
                    .iter()
                    .map(|(v, e)| format!("{v} -> {}", e.value))
                    .collect()
            } else {
                Vec::new()
            }),
        ),
        (
            "phaseflow_version",
            AttrValue::Str(env!("CARGO_PKG_VERSION").into()),
        ),
        ("command_line", AttrValue::Str(shell_join(&cmdline))),
    ];
    for (k, v) in &attrs {
        writer.set_attr(k, v)?;
    }
    let frames = writer
        .finish()
        .with_context(|| format!("writing {}", args.output.display()))?;
    let wall = started.elapsed().as_secs_f64();
    let summary = json!({
        "output": args.output.display().to_string(), "system": m.name, "points": frames,
        "dimension": sys.dim(), "t_start": smp.t_start,
        "t_end": smp.t_end(),
        "solver": solver_used, "solver_requested": method.to_string(),
        "accepted_steps": stats.accepted, "rejected_steps": stats.rejected,
        "rhs_evaluations": stats.rhs_evals, "wall_seconds": wall,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        eprintln!(
            "wrote {} ({} points × {} variables, t ∈ [{}, {}]; {}: {} steps, {} rejected, {} evaluations; {:.2} s)",
            args.output.display(),
            frames,
            sys.dim(),
            summary["t_start"],
            summary["t_end"],
            summary["solver"].as_str().unwrap_or(""),
            stats.accepted,
            stats.rejected,
            stats.rhs_evals,
            wall
        );
    }
    Ok(())
}

fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=./,:+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A progress bar that only appears once a run has taken more than a second.
struct LazyBar {
    bar: ProgressBar,
    start: Instant,
    shown: std::cell::Cell<bool>,
    quiet: bool,
}

impl LazyBar {
    fn tick_to(&self, pos: u64) {
        if !pos.is_multiple_of(64) {
            return;
        }
        if !self.shown.get() && !self.quiet && self.start.elapsed().as_secs_f64() > 1.0 {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown.set(true);
        }
        self.bar.set_position(pos);
    }
    fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}

fn progress_bar(len: u64, quiet: bool) -> LazyBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} points ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    LazyBar {
        bar,
        start: Instant::now(),
        shown: std::cell::Cell::new(false),
        quiet,
    }
}

/// Snapshot of a particle frame coloured by local packing fraction (probe radius 2.5 diameters).
fn plot_particles(input: &Path, output: &Path, frame: i64, width: u32, height: u32) -> Result<()> {
    let fr = io::h5md::read_particle_frame(input, frame)?;
    let p = &fr.parameters;
    let diameter = match (p.get("sigma"), p.get("R")) {
        (Some(s), _) => *s,
        (None, Some(r)) => 2.0 * r,
        _ => 1.0,
    };
    let bx = crate::particles::PeriodicBox::new(fr.dim, fr.edges[0]);
    let phi = crate::particles::observables::local_packing(
        &fr.x,
        &bx,
        fr.n,
        diameter,
        crate::particles::observables::LOCAL_RADIUS * diameter,
    );
    io::plot_particles(&fr, &phi, "local φ", diameter, output, (width, height))?;
    eprintln!(
        "wrote {} (frame {} of {}, t = {})",
        output.display(),
        if frame < 0 {
            fr.frames as i64 + frame
        } else {
            frame
        },
        fr.frames,
        fr.time
    );
    Ok(())
}

fn plot(
    input: &Path,
    output: &Path,
    axes: Option<Vec<String>>,
    width: u32,
    height: u32,
) -> Result<()> {
    let traj = io::read_trajectory(input)?;
    let axes = match axes {
        None => None,
        Some(list) => {
            if !(2..=3).contains(&list.len()) {
                bail!("--axes takes 2 or 3 components, got {}", list.len());
            }
            let mut idx = Vec::new();
            for a in &list {
                let k = traj
                    .variables
                    .iter()
                    .position(|v| v == a)
                    .or_else(|| a.parse::<usize>().ok().filter(|k| *k < traj.dim))
                    .ok_or_else(|| {
                        anyhow!(
                            "--axes: no component '{a}' (components: {})",
                            traj.variables.join(", ")
                        )
                    })?;
                idx.push(k);
            }
            Some(idx)
        }
    };
    let opts = PlotOptions {
        width,
        height,
        title: None,
        axes,
    };
    io::plot_trajectory(&traj, output, &opts)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}

/// One CSV field: arrays space-separated, missing values empty, text quoted.
fn csv_field(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_f64().map_or(String::new(), |f| format!("{f}")))
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::String(s) => format!("\"{}\"", s.replace('"', "'")),
        other => other.to_string(),
    }
}

const INVARIANT_COLUMNS: [&str; 18] = [
    "system",
    "kind",
    "dimension",
    "lyapunov_spectrum",
    "lyapunov_errors",
    "sum",
    "kaplan_yorke_dimension",
    "pesin_entropy",
    "maximum_lyapunov_two_trajectories",
    "correlation_dimension",
    "lyapunov_spectrum_literature",
    "lyapunov_spectrum_dysts",
    "kaplan_yorke_dimension_dysts",
    "pesin_entropy_dysts",
    "maximum_lyapunov_dysts",
    "correlation_dimension_dysts",
    "wall_seconds",
    "status",
];

/// The files named by `--systems` (names or paths), or every catalogue file.
fn selected_files(names: Option<&[String]>) -> Result<Vec<PathBuf>> {
    match names {
        Some(list) => list
            .iter()
            .map(|s| systems::resolve_system(s.trim()).map_err(|e| anyhow!("{e}")))
            .collect(),
        None => Ok(systems::catalogue_files()),
    }
}

/// `phaseflow catalogue invariants`: the invariants table of the whole catalogue.
fn catalogue_invariants(args: &CatalogueInvariantsArgs) -> Result<()> {
    use rayon::prelude::*;
    use std::io::Write;
    let files = selected_files(args.systems.as_deref())?;
    let name = args
        .output
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", args.output.display()))?;
    let partial = args
        .output
        .with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let mut done: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    if args.resume {
        let text = std::fs::read_to_string(&partial)
            .map_err(|e| anyhow!("nothing to resume: {} ({e})", partial.display()))?;
        for line in text.lines().skip(1) {
            if let Some(first) = line.split(',').next() {
                done.insert(first.trim_matches('"').to_string());
            }
        }
    } else {
        let mut f =
            std::fs::File::create(&partial).map_err(|e| anyhow!("{}: {e}", partial.display()))?;
        writeln!(f, "{}", INVARIANT_COLUMNS.join(","))?;
    }
    let writer = std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&partial)
            .map_err(|e| anyhow!("{}: {e}", partial.display()))?,
    );
    let todo: Vec<&PathBuf> = files
        .iter()
        .filter(|f| SystemSpec::load(f).map_or(true, |s| !done.contains(&s.name)))
        .collect();
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} systems {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let base_settings = crate::analysis::invariants::InvariantSettings {
        correlation_points: args.correlation_points,
        ..crate::analysis::invariants::InvariantSettings::default()
    };
    let failures = std::sync::atomic::AtomicUsize::new(0);
    todo.par_iter().for_each(|f| {
        let row = (|| -> std::result::Result<serde_json::Value, String> {
            let sys = CompiledSystem::load(&f.display().to_string(), &Overrides::default())
                .map_err(|e| e.to_string())?;
            let mut settings = base_settings.clone();
            if sys.model().kind == systems::Kind::Map {
                settings.span = Some(args.span_periods * 200.0);
            } else {
                settings.span = Some(args.span_periods * sys.model().period);
            }
            let spec = &sys.info().spec;
            let refs = |k: &str| json!(spec.reference_array(k));
            let refv = |k: &str| json!(spec.reference_number(k));
            let base = json!({
                "system": spec.name, "kind": spec.kind.as_str(),
                "lyapunov_spectrum_literature": refs("lyapunov_spectrum"),
                "lyapunov_spectrum_dysts": refs("lyapunov_spectrum_dysts"),
                "kaplan_yorke_dimension_dysts": refv("kaplan_yorke_dimension_dysts"),
                "pesin_entropy_dysts": refv("pesin_entropy_dysts"),
                "maximum_lyapunov_dysts": refv("maximum_lyapunov_dysts"),
                "correlation_dimension_dysts": refv("correlation_dimension_dysts"),
            });
            match crate::analysis::invariants::compute(&sys, &settings) {
                Ok(inv) => {
                    if args.write_reference {
                        crate::catalogue::write_phaseflow_reference(f, &inv)?;
                    }
                    let mut v = serde_json::to_value(&inv).map_err(|e| e.to_string())?;
                    for (k, val) in base.as_object().unwrap() {
                        v[k] = val.clone();
                    }
                    v["status"] = json!("ok");
                    Ok(v)
                }
                Err(e) => {
                    let mut v = base;
                    v["status"] = json!(format!("skipped: {e}"));
                    Ok(v)
                }
            }
        })();
        let v = row.unwrap_or_else(|e| {
            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            json!({"system": f.display().to_string(), "status": format!("error: {e}")})
        });
        let line = INVARIANT_COLUMNS
            .iter()
            .map(|c| csv_field(&v[*c]))
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(mut w) = writer.lock() {
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
        bar.set_message(v["system"].as_str().unwrap_or("").to_string());
        bar.inc(1);
    });
    bar.finish_and_clear();
    drop(writer);
    std::fs::rename(&partial, &args.output)
        .map_err(|e| anyhow!("{}: {e}", args.output.display()))?;
    let n = failures.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "wrote {} ({} systems computed now, {} from the partial table){}",
        args.output.display(),
        todo.len(),
        done.len(),
        if n > 0 {
            format!("; {n} errors")
        } else {
            String::new()
        }
    );
    if n > 0 {
        bail!("{n} systems failed");
    }
    Ok(())
}

fn catalogue_check(args: &CheckArgs) -> Result<()> {
    use crate::catalogue::{check_files, CheckOptions, Verdict};
    let files = selected_files(args.systems.as_deref())?;
    if files.is_empty() {
        bail!(
            "no definition files in {}",
            systems::catalogue_dir().display()
        );
    }
    let opts = CheckOptions {
        method: args.method.parse().map_err(|e| anyhow!("{e}"))?,
        rtol: args.rtol,
        atol: args.atol,
        burn_in_periods: args.burn_in_periods,
        points: args.points,
        per_period: args.pts_per_period,
        tolerance: args.tolerance,
    };
    let bar = ProgressBar::new(files.len() as u64);
    if args.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} systems {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let results = check_files(&files, &opts, &|r| {
        bar.set_message(r.system.clone());
        bar.inc(1);
    });
    bar.finish_and_clear();
    let n_fail = results
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "{:<26} {:<5} {:>3} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9}  verdict",
            "system",
            "kind",
            "dim",
            "mean_err",
            "std_err",
            "period",
            "spectral",
            "wall_ms",
            "evals"
        );
        let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        for r in &results {
            let verdict = match r.verdict {
                Verdict::Pass => "pass".to_string(),
                Verdict::Explained => format!("explained: {}", r.note.as_deref().unwrap_or("")),
                Verdict::Fail => format!("FAIL: {}", r.reason),
            };
            println!(
                "{:<26} {:<5} {:>3} {:>9} {:>9} {:>8.3} {:>8} {:>8.1} {:>9}  {verdict}",
                r.system,
                r.kind,
                r.dimension,
                f(r.mean_error),
                f(r.std_error),
                r.period,
                f(r.spectral_period),
                r.wall_seconds * 1e3,
                r.rhs_evaluations,
            );
        }
        let pass = results
            .iter()
            .filter(|r| r.verdict == Verdict::Pass)
            .count();
        let explained = results
            .iter()
            .filter(|r| r.verdict == Verdict::Explained)
            .count();
        println!(
            "{pass} of {} systems within {} of the reference std ({explained} explained deviations, {n_fail} failures); {:.2} s",
            results.len(),
            args.tolerance,
            start.elapsed().as_secs_f64()
        );
    }
    if n_fail > 0 {
        bail!(
            "{n_fail} of {} systems failed the catalogue check",
            results.len()
        );
    }
    Ok(())
}

fn parse_noise(args: &SimulateArgs, sys: &CompiledSystem) -> Result<Option<simulate::Noise>> {
    let Some(values) = &args.noise else {
        // an SDE file: dx = f dt + √(2D) dW with its [diffusion] table
        let Some(diff) = sys.diffusion() else {
            return Ok(None);
        };
        if let Some((k, v)) = diff
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            bail!(
                "{}: the diffusion of {} is {v}; it must be a non-negative number",
                sys.name(),
                sys.model().components[k]
            );
        }
        let step = args.step.unwrap_or(sys.model().dt);
        if step.is_nan() || step <= 0.0 {
            bail!("--step must be positive");
        }
        return Ok(Some(simulate::Noise {
            sigma: diff.iter().map(|d| (2.0 * d).sqrt()).collect(),
            step,
            seed: args.seed,
        }));
    };
    let d = sys.dim();
    let mut sigma = match values.len() {
        1 => vec![values[0]; d],
        n if n == d => values.clone(),
        n => bail!(
            "--noise has {n} values but {} has {d} variables (give 1 or {d})",
            sys.name()
        ),
    };
    if sigma.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
        bail!("--noise intensities must be non-negative numbers");
    }
    if args.noise_units == "std" {
        let std = sys.info().spec.reference_array("std").filter(|s| s.len() == d).ok_or_else(|| {
            anyhow!("--noise-units std needs a [reference] std with {d} values in the definition file")
        })?;
        for (s, r) in sigma.iter_mut().zip(&std) {
            *s *= r;
        }
    }
    let step = args.step.unwrap_or(sys.model().dt);
    if step.is_nan() || step <= 0.0 {
        bail!("--step must be positive");
    }
    Ok(Some(simulate::Noise {
        sigma,
        step,
        seed: args.seed,
    }))
}

fn read_ic_file(path: &Path, sys: &CompiledSystem) -> Result<Vec<Vec<f64>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let d = sys.dim();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let row: Vec<f64> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<f64>()
                    .map_err(|_| anyhow!("{}:{}: '{s}' is not a number", path.display(), i + 1))
            })
            .collect::<Result<_>>()?;
        if row.len() != d {
            bail!(
                "{}:{}: {} values but {} has {d} variables",
                path.display(),
                i + 1,
                row.len(),
                sys.name()
            );
        }
        out.push(row);
    }
    if out.is_empty() {
        bail!("{}: no initial conditions", path.display());
    }
    Ok(out)
}

/// Output grid of a delay-embedded run: the requested grid extended backwards by (E−1)·L.
struct Embedding {
    sampling: Sampling,
    lag_steps: usize,
}

fn embedding(
    args: &SimulateArgs,
    sys: &CompiledSystem,
    smp: &Sampling,
    e: usize,
) -> Result<Embedding> {
    use crate::integrate::DelaySystem;
    if e == 0 {
        bail!("--embed must be at least 1");
    }
    let lag = match args.embed_lag {
        Some(l) => l,
        None => DelaySystem::lags(sys)
            .iter()
            .map(|(_, tau)| *tau)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
            .ok_or_else(|| anyhow!("--embed needs --embed-lag for a system without delays"))?,
    };
    if !(lag.is_finite() && lag > 0.0) {
        bail!("--embed-lag must be positive");
    }
    let lag_steps = ((lag / smp.dt_out).round() as usize).max(1);
    let back = (e - 1) as f64 * lag_steps as f64 * smp.dt_out;
    let t0 = sys.model().t0;
    if smp.t_start - back < t0 - 1e-9 * back.max(1.0) {
        bail!(
            "--embed {e} with lag {} needs a burn-in of at least {back} (the embedding looks back (E-1)·L)",
            lag_steps as f64 * smp.dt_out
        );
    }
    Ok(Embedding {
        sampling: Sampling {
            points: smp.points + (e - 1) * lag_steps,
            t_start: smp.t_start - back,
            dt_out: smp.dt_out,
        },
        lag_steps,
    })
}

/// The burn device named on the command line (autodiff enabled).
fn burn_device(name: &str) -> Result<burn::tensor::Device> {
    match name {
        "cpu" => Ok(crate::score::cpu_device()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(burn::tensor::Device::cuda(0).autodiff()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(0)).autodiff()),
        other => bail!(
            "--device {other}: this build supports `cpu`{}{} (GPU backends need `cargo build --features cuda` or `--features wgpu`)",
            if cfg!(feature = "cuda") { ", `cuda`" } else { "" },
            if cfg!(feature = "wgpu") { ", `wgpu`" } else { "" }
        ),
    }
}

fn epr(args: &EprArgs) -> Result<()> {
    use crate::analysis::epr;
    let ov = Overrides::parse(&args.set).map_err(|e| anyhow!("{e}"))?;
    if args.exact {
        if args.model.is_some() || args.data.is_some() {
            bail!("--exact takes a system only (no --model, no --data)");
        }
        let system = args
            .system
            .as_deref()
            .ok_or_else(|| anyhow!("--exact needs --system FILE (a linear SDE)"))?;
        let path = systems::resolve_system(system).map_err(|e| anyhow!("{e}"))?;
        let (name, components, sde) = if crate::particles::model::is_particle_path(&path) {
            let m = crate::particles::ParticleModel::load(&path, &ov.values)
                .map_err(|e| anyhow!("{e}"))?;
            let drift = crate::particles::ParticleDrift::new(m.clone());
            let dz = drift.diffusion();
            let (n, d, c) = (m.n, m.dim, m.propulsion_dim());
            let mut names: Vec<String> = (0..n * d)
                .map(|k| format!("x[{}][{}]", k / d, k % d))
                .collect();
            names.extend((0..n * c).map(|k| format!("g[{}][{}]", k / c, k % c)));
            let sde =
                epr::linear_sde(&drift, &dz).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            (m.name.clone(), names, sde)
        } else {
            let sys = CompiledSystem::load(&path.display().to_string(), &ov)
                .map_err(|e| anyhow!("{e}"))?;
            let dz = sys.diffusion().ok_or_else(|| {
                anyhow!(
                    "{}: no [diffusion] table: the exact EPR needs an SDE dz = Az dt + √(2D) dW",
                    path.display()
                )
            })?;
            let sde = epr::linear_sde(&sys, &dz).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            (sys.name().to_string(), sys.model().components.clone(), sde)
        };
        let r = epr::exact_linear_epr(&sde).map_err(|e| anyhow!("{name}: {e}"))?;
        if args.json {
            let per: serde_json::Map<String, serde_json::Value> = components
                .iter()
                .zip(&r.per_coordinate)
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "system": name,
                    "epr": r.epr,
                    "epr_stderr": 0.0,
                    "epr_exact": r.epr,
                    "epr_reference": null,
                    "per_dof": per,
                    "n_samples": 0,
                    "lyapunov_residual": r.residual,
                    "convention": epr::CONVENTION,
                }))?
            );
        } else {
            println!(
                "{name}: exact entropy production rate {:.10} (Lyapunov residual {:.1e})",
                r.epr, r.residual
            );
            for (k, v) in components.iter().zip(&r.per_coordinate) {
                if *v != 0.0 {
                    println!("  {k:>10}  {v:.10}");
                }
            }
            println!("  ({})", epr::CONVENTION);
        }
        return Ok(());
    }
    let Some(data) = &args.data else {
        bail!("phaseflow epr needs --data SAMPLES.h5 (with --model DIR for the learned EPR; without, the learning-free reference only), or --exact --system FILE");
    };
    let device = burn_device(&args.device)?;
    let sm = match &args.model {
        Some(dir) => Some(crate::score::evaluate::ScoreModel::load(dir, &device)?),
        None => None,
    };
    if sm.is_none() && (args.maps.is_some() || args.png.is_some()) {
        bail!("--maps and --png show the learned EPR: they need --model DIR");
    }
    if !crate::io::h5md::is_h5md(data) {
        // the trajectory of an SDE flow (a definition with a [diffusion] table)
        let sm = sm.ok_or_else(|| anyhow!("an SDE trajectory needs --model DIR"))?;
        let traj = crate::io::read_trajectory(data).map_err(|e| anyhow!("{e}"))?;
        let sde = crate::score::train::sde_of_trajectory(&traj)?;
        let bar = if args.quiet || args.json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new((traj.len() * traj.members) as u64)
        };
        let r =
            epr::trajectory_epr(&sm, &sde, &traj, args.batches, &bar).map_err(|e| anyhow!(e))?;
        bar.finish_and_clear();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!(
                "{}: EPR {:.6} ± {:.6} (learned, {} samples)",
                r.system, r.epr, r.epr_stderr, r.n_samples
            );
            println!(
                "  learning-free reference {:.6} ± {:.6}{}",
                r.epr_reference,
                r.epr_reference_stderr,
                r.epr_exact
                    .map_or(String::new(), |e| format!("; exact (linear drift) {e:.6}"))
            );
            for (k, v) in &r.per_dof {
                println!("  {k:>10}  {v:.6}");
            }
            println!(
                "  stationarity: E[v·s] = {:.3e} ± {:.1e}",
                r.mean_v_dot_s, r.mean_v_dot_s_stderr
            );
            println!("  ({})", epr::CONVENTION);
        }
        return Ok(());
    }
    let samples = crate::io::h5md::read_particle_samples(data).map_err(|e| anyhow!("{e}"))?;
    // the system's definition (given, or the one stored with the data) at the data's
    // parameters, then --set
    let (text, def_path) = match &args.system {
        Some(system) => {
            let path = systems::resolve_system(system).map_err(|e| anyhow!("{e}"))?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (text, path)
        }
        None => (
            samples.definition.clone(),
            PathBuf::from(&samples.definition_path),
        ),
    };
    let model = crate::score::train::model_at_parameters(
        &text,
        &def_path,
        &samples.parameters,
        &ov.values,
    )?;
    let frames = (samples.replicas * samples.frames) as u64;
    let bar = if args.quiet || args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(frames)
    };
    let mut r = epr::sample_epr(sm.as_ref(), &model, &samples, args.batches, &bar)
        .map_err(|e| anyhow!(e))?;
    bar.finish_and_clear();
    if let Some(sm) = &sm {
        if args.diagnostic_samples > 0 {
            r.diagnostics = Some(epr::diagnostics(
                sm,
                &model,
                &samples,
                args.diagnostic_samples,
            ));
        }
    }
    if let Some(out) = &args.maps {
        write_epr_maps(out, &samples, &model, &r, args.bins.max(1))?;
    }
    if let Some(out) = &args.flow_out {
        let sm = sm
            .as_ref()
            .ok_or_else(|| anyhow!("--flow-out needs --model DIR"))?;
        let dt = args.flow_dt.unwrap_or(model.dt);
        if !(dt.is_finite() && dt > 0.0) {
            bail!("--flow-dt must be positive");
        }
        let (n, d, c) = (samples.n, samples.dim, samples.propulsion);
        let k = args.flow_steps;
        let mut xs = Vec::new();
        let mut gs = Vec::new();
        for rep in 0..samples.replicas {
            let (x0, g0) = crate::score::evaluate::configuration(&samples, &model, rep, 0);
            for (x, g) in epr::probability_flow_trajectory(sm, &model, &x0, g0, dt, k) {
                xs.extend(x);
                gs.extend(g);
            }
        }
        let m = samples.replicas;
        crate::io::write_hdf5_atomically(out, |f| {
            let g = f.create_group("flow")?;
            let shape_err = |e: ndarray::ShapeError| hdf5::Error::from(e.to_string().as_str());
            g.new_dataset_builder()
                .with_data(
                    &ndarray::Array4::from_shape_vec((m, k + 1, n, d), xs.clone())
                        .map_err(shape_err)?,
                )
                .create("position")?;
            g.new_dataset_builder()
                .with_data(
                    &ndarray::Array4::from_shape_vec((m, k + 1, n, c), gs.clone())
                        .map_err(shape_err)?,
                )
                .create("propulsion")?;
            let t: Vec<f64> = (0..=k).map(|j| j as f64 * dt).collect();
            g.new_dataset_builder().with_data(&t).create("time")?;
            Ok(())
        })
        .map_err(|e| anyhow!("{e}"))?;
    }
    if let Some(png) = &args.png {
        let frame = crate::io::h5md::read_particle_frame(data, -1).map_err(|e| anyhow!("{e}"))?;
        let n = r.particles;
        let last = (samples.frames - 1) * n;
        crate::io::plot::plot_particles(
            &frame,
            &r.particle_samples[last..last + n],
            "EPR per particle",
            model.diameter(),
            png,
            (1000, 860),
        )
        .map_err(|e| anyhow!("{e}"))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        if sm.is_some() {
            println!(
                "{}: EPR {:.6} ± {:.6} (learned, {} samples of {} particles; {:.6} per particle)",
                model.name, r.epr, r.epr_stderr, r.n_samples, r.particles, r.epr_per_particle
            );
        } else {
            println!(
                "{}: no --model: learning-free reference only ({} samples of {} particles)",
                model.name, r.n_samples, r.particles
            );
        }
        println!(
            "  learning-free reference {:.6} ± {:.6}{}",
            r.epr_reference,
            r.epr_reference_stderr,
            r.epr_exact
                .map_or(String::new(), |e| format!("; exact (linear drift) {e:.6}"))
        );
        if sm.is_some() {
            println!(
                "  per degree of freedom: x {:.6}, g {:.6}",
                r.per_dof.x, r.per_dof.g
            );
            println!(
                "  stationarity: E[v·s] = {:.3e} ± {:.1e} (0 at stationarity)",
                r.mean_v_dot_s, r.mean_v_dot_s_stderr
            );
            if let Some(dg) = &r.diagnostics {
                if let (Some(m), Some(e)) = (dg.residual_mean, dg.residual_stderr) {
                    println!(
                        "  Fokker–Planck residual ∇·v + v·s: mean {m:.3e} ± {e:.1e} over {} samples ({} divergence)",
                        dg.samples, dg.divergence
                    );
                }
                println!(
                    "  E[|s|² + ∇·s] = {:.3e} ± {:.1e} (0 by parts)",
                    dg.fisher_identity, dg.fisher_identity_stderr
                );
            }
        }
        println!("  ({})", epr::CONVENTION);
    }
    Ok(())
}

/// `phaseflow epr --maps`: per-particle contributions, grid and radial maps (atomic write).
fn write_epr_maps(
    out: &Path,
    samples: &crate::io::h5md::ParticleSamples,
    model: &crate::particles::ParticleModel,
    r: &crate::analysis::epr::SampleEpr,
    bins: usize,
) -> Result<()> {
    let (n, d) = (samples.n, samples.dim);
    let mut x = Vec::with_capacity(r.particle_samples.len() * d);
    for rep in 0..samples.replicas {
        for f in 0..samples.frames {
            x.extend(crate::score::evaluate::configuration(samples, model, rep, f).0);
        }
    }
    let maps = crate::analysis::epr::epr_maps(&r.particle_samples, &x, n, d, bins);
    let frames = r.particle_samples.len() / n;
    crate::io::write_hdf5_atomically(out, |f| {
        let shape_err = |e: ndarray::ShapeError| hdf5::Error::from(e.to_string().as_str());
        f.new_dataset_builder()
            .with_data(
                &ndarray::Array2::from_shape_vec((frames, n), r.particle_samples.clone())
                    .map_err(shape_err)?,
            )
            .create("particle_epr")?;
        // per-particle time averages along each replica's trajectory, [R, N]
        let averages = crate::analysis::epr::time_averages(
            &r.particle_samples,
            samples.replicas,
            samples.frames,
            n,
        );
        f.new_dataset_builder()
            .with_data(
                &ndarray::Array2::from_shape_vec((samples.replicas, n), averages)
                    .map_err(shape_err)?,
            )
            .create("particle_time_average")?;
        f.new_dataset_builder()
            .with_data(
                &ndarray::Array3::from_shape_vec((frames, n, d), x.clone()).map_err(shape_err)?,
            )
            .create("position")?;
        let g = f.create_group("grid")?;
        let cells = maps.count.len();
        let shape = if d >= 2 { (bins, bins) } else { (1, cells) };
        g.new_dataset_builder()
            .with_data(&maps.edges)
            .create("edges")?;
        for (k, v) in [
            ("conditional_mean", &maps.conditional_mean),
            ("density", &maps.density),
            ("count", &maps.count),
        ] {
            g.new_dataset_builder()
                .with_data(&ndarray::Array2::from_shape_vec(shape, v.clone()).map_err(shape_err)?)
                .create(k)?;
        }
        let rg = f.create_group("radial")?;
        rg.new_dataset_builder()
            .with_data(&maps.radial_edges)
            .create("edges")?;
        rg.new_dataset_builder()
            .with_data(&maps.radial_mean)
            .create("conditional_mean")?;
        rg.new_dataset_builder()
            .with_data(&maps.radial_density)
            .create("density")?;
        let conv: hdf5::types::VarLenUnicode = crate::analysis::epr::CONVENTION
            .parse()
            .map_err(|_| hdf5::Error::from("bad string"))?;
        f.new_attr::<hdf5::types::VarLenUnicode>()
            .create("convention")?
            .write_scalar(&conv)?;
        f.new_attr::<f64>().create("epr")?.write_scalar(&r.epr)?;
        Ok(())
    })
    .map_err(|e| anyhow!("{e}"))
}

fn train(args: &TrainArgs) -> Result<()> {
    let run = crate::score::train::TrainRun {
        config_path: args.config.clone(),
        data_path: args.data.clone(),
        out_dir: args.output.clone(),
        resume: args.resume,
        device: burn_device(&args.device)?,
        stop_after: args.stop_after,
        cancel: cancel_token(),
        progress: std::sync::Arc::new(progress::IndicatifProgress::new(
            args.quiet || args.json,
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps (eta {eta}) {msg}",
        )),
    };
    let summary = crate::score::train::train(&run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "trained {} steps ({} parameters): loss {:.4e}{}, {:.0} samples/s; wrote {}",
            summary.steps_done,
            summary.parameters,
            summary.final_loss,
            summary
                .final_validation_loss
                .map_or(String::new(), |v| format!(", validation {v:.4e}")),
            summary.samples_per_second,
            summary.model_dir
        );
    }
    Ok(())
}

fn score(args: &ScoreArgs) -> Result<()> {
    let device = burn_device(&args.device)?;
    let summary = crate::score::evaluate::score_file(
        &args.model,
        &args.data,
        &args.output,
        &device,
        &progress::IndicatifProgress::new(args.quiet, "{wide_bar} {pos}/{len}"),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "wrote {} ({} frames × {} particles)",
            args.output.display(),
            summary.frames,
            summary.particles
        );
    }
    Ok(())
}
