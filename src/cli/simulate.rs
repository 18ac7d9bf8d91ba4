//! `phaseflow simulate`: equation systems and particle models.

use super::*;
use crate::integrate::Method;
use crate::io::AttrValue;
use crate::simulate::NoiseUnits;
use crate::systems::System;
use std::time::Instant;

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
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    pub method: Method,
    /// Relative tolerance (adaptive methods).
    #[arg(long, default_value_t = 1e-10, allow_hyphen_values = true)]
    pub rtol: f64,
    /// Absolute tolerance (adaptive methods).
    #[arg(long, default_value_t = 1e-10, allow_hyphen_values = true)]
    pub atol: f64,
    /// Step size of rk4 (default: the file's `dt`); initial step of adaptive methods.
    #[arg(long, allow_hyphen_values = true)]
    pub step: Option<f64>,
    /// Number of output points (with --pts-per-period: t_end = period·N/K, like dysts).
    #[arg(long, conflicts_with_all = ["t_end", "dt_out"])]
    pub points: Option<usize>,
    /// Output points per dominant period of the system.
    #[arg(long, default_value_t = 100, conflicts_with_all = ["t_end", "dt_out"])]
    pub pts_per_period: usize,
    /// Length of the recorded interval (time units), with --dt-out.
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: Option<f64>,
    /// Output spacing (time units), with --t-end.
    #[arg(long, allow_hyphen_values = true)]
    pub dt_out: Option<f64>,
    /// Transient discarded before recording (time units; iterations for maps).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub burn_in: f64,
    /// Blow-up threshold: stop with an error when a |component| exceeds it.
    #[arg(long, default_value_t = 1e12, allow_hyphen_values = true)]
    pub max_abs: f64,
    /// Integrate an ensemble of M trajectories from initial conditions sampled on the attractor
    /// (seeded); `/state` is then [M, T, D].
    #[arg(long, value_name = "M", conflicts_with = "ic")]
    pub ensemble: Option<usize>,
    /// With --ensemble: integrate only shard I of N of the members (0-based; member k belongs
    /// to shard k mod N and runs exactly as in the whole ensemble) and write a shard file to -o;
    /// `phaseflow merge OUT SHARD…` writes the HDF5 file of the unsharded run, its command line
    /// the shards' without --shard and with `-o OUT` [default: from SLURM_ARRAY_TASK_ID −
    /// SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT when set]
    #[arg(long, value_name = "I/N", requires = "ensemble")]
    pub shard: Option<crate::shard::Shard>,
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
    #[arg(long, value_enum, default_value_t = NoiseUnits::State)]
    pub noise_units: NoiseUnits,
    /// Record a delay embedding with E coordinates per variable: x(t), x(t − L), …, x(t − (E−1)L)
    /// (dysts stores delay equations with E = 10). L is --embed-lag, rounded to a multiple of the
    /// output spacing; the burn-in must cover (E−1)·L.
    #[arg(long, value_name = "E", conflicts_with_all = ["ensemble", "ic_file"])]
    pub embed: Option<usize>,
    /// Lag L of --embed (time units; default: the smallest delay of a delay equation).
    #[arg(long, requires = "embed", allow_hyphen_values = true)]
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
    /// Continue an interrupted run from its partial file .NAME.partial (same command: the
    /// settings recorded in the file are checked): particle models, and ensembles (--ensemble,
    /// --ic-file; with or without --shard), whose finished members are taken from it
    #[arg(long)]
    pub resume: bool,
    /// Particle models: least wall time between checkpoints of the partial file, in seconds (a
    /// checkpoint is also written at the first frame and when interrupted; 0: every frame). A
    /// killed run resumes from its last checkpoint; the output does not depend on it
    #[arg(long, value_name = "SECONDS")]
    pub checkpoint_interval: Option<f64>,
    /// Worker threads (default: all cores); results do not depend on it
    #[arg(long)]
    pub threads: Option<usize>,
    /// Particle models under MPI (`mpirun -np K`, a build with the `mpi` feature): the rank grid
    /// over the box, ranks per direction as PxQ (2-D) or PxQxR (3-D), product K (default: the
    /// factorisation with the thickest sub-boxes)
    #[arg(long, value_name = "PxQ[xR]")]
    pub ranks_grid: Option<String>,
    /// Testing aid: stop after this many frames as if the run had been killed
    #[arg(long, hide = true)]
    pub abort_after_frames: Option<usize>,
    /// Testing aid: stop an ensemble after this many members as if the run had been killed
    #[arg(long, hide = true)]
    pub abort_after_members: Option<usize>,
    #[arg(short, long)]
    pub output: PathBuf,
    /// Particle models: also write the run as a GSD file (HOOMD schema, for HOOMD-blue, OVITO
    /// and freud) beside the H5MD output; `-o NAME.gsd` writes GSD only. GSD holds positions and
    /// orientations in single precision and is written when the run completes: H5MD stays the
    /// resumable format (with `-o NAME.gsd`, in the hidden `.NAME.gsd.h5md`, removed at the end)
    #[arg(long, value_name = "FILE")]
    pub gsd: Option<PathBuf>,
    /// Print a machine-readable summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--ic` values as numbers (their count is checked by the library against the system).
fn parse_ic(items: &[String]) -> Result<Vec<f64>> {
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
    Ok(out)
}

pub(super) fn simulate(args: &SimulateArgs) -> Result<()> {
    crate::control::with_threads(args.threads.or_else(threads_per_mpi_rank), || {
        simulate_in_pool(args)
    })
    .map_err(|e| anyhow!(e))?
}

fn simulate_in_pool(args: &SimulateArgs) -> Result<()> {
    let path = crate::systems::resolve_system(&args.system)?;
    let ov = Overrides::parse(&args.set)?;
    let sys = match crate::simulate::Definition::load_path(&path, &ov)? {
        crate::simulate::Definition::Particles(model) => return simulate_particles(args, model),
        crate::simulate::Definition::Equations(sys) => sys,
    };
    for (given, name) in [
        (args.steps.is_some(), "--steps"),
        (args.every.is_some(), "--every"),
        (args.replicas != 1, "--replicas"),
        (args.checkpoint_interval.is_some(), "--checkpoint-interval"),
        (args.gsd.is_some(), "--gsd"),
        (args.ranks_grid.is_some(), "--ranks-grid"),
    ] {
        if given {
            bail!("{name} applies to particle models (kind = \"particles\") only");
        }
    }
    if crate::io::particle_file::format_of_name(&args.output)
        == Some(crate::io::particle_file::ParticleFormat::Gsd)
    {
        bail!(
            "-o {}: GSD output is for particle models (kind = \"particles\"); flows, maps and delay equations write HDF5 (.h5)",
            args.output.display()
        );
    }
    if args.t_end.is_some() != args.dt_out.is_some() {
        bail!("--t-end and --dt-out go together for flows, maps and delay equations");
    }
    if args.resume && args.ensemble.is_none() && args.ic_file.is_none() {
        bail!(
            "--resume continues a particle run or an ensemble (--ensemble M, --ic-file); a single trajectory is not resumable: run it again"
        );
    }
    simulate_system(args, &sys)
}

/// `phaseflow simulate` for particle models: H5MD output, replicas, resume.
fn simulate_particles(args: &SimulateArgs, model: crate::particles::ParticleModel) -> Result<()> {
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
    use crate::particles::run::RunConfig;
    let steps = match (args.steps, args.t_end) {
        (Some(s), _) => s,
        (None, Some(t)) => RunConfig::steps_of_time(&model, t, "--t-end")?,
        (None, None) => bail!("give --steps S or --t-end T for a particle model"),
    };
    let checkpoint_interval = match args.checkpoint_interval {
        None => crate::io::h5md::DEFAULT_CHECKPOINT_INTERVAL,
        Some(s) if s >= 0.0 && s.is_finite() && s < 1e9 => std::time::Duration::from_secs_f64(s),
        Some(s) => bail!("--checkpoint-interval must be a non-negative number of seconds, got {s}"),
    };
    let cfg = RunConfig {
        steps,
        every: args.every.unwrap_or(RunConfig::default_every(steps)),
        burn_in_steps: RunConfig::steps_of_time(&model, args.burn_in, "--burn-in")?,
        replicas: args.replicas,
        seed: args.seed,
        resume: args.resume,
        cancel: cancel_token(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        abort_after_frames: args.abort_after_frames,
        checkpoint_interval,
        warn: |w| eprintln!("warning: {w}"),
    };
    let grid = args.ranks_grid.as_deref().map(parse_grid).transpose()?;
    let run = MpiRun::start(&model, grid.as_deref())?;
    if !run.is_root() {
        // a rank other than the root: takes its part, then ends the process (the root reports)
        run.run(
            &model,
            &args.output,
            &cfg,
            &IndicatifProgress::counting(true, "steps"),
        )?;
        return Ok(());
    }
    let gsd = GsdOutput::plan(args, &model)?;
    let h5md_out = gsd.as_ref().map_or(&args.output, |g| &g.h5md);
    let bar = IndicatifProgress::counting(args.quiet || args.json, "steps");
    let mut summary = run.run(&model, h5md_out, &cfg, &bar)?;
    let mut json = serde_json::to_value(&summary)?;
    if let Some(g) = gsd {
        g.write(args.quiet || args.json)?;
        if g.only {
            summary.output = Some(g.path.clone());
            json["output"] = json!(g.path.display().to_string());
        } else {
            json["gsd"] = json!(g.path.display().to_string());
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if !args.quiet {
        let also = match &args.gsd {
            Some(g) => format!(" and {}", g.display()),
            None => String::new(),
        };
        eprintln!(
            "wrote {}{also} ({} frames of {} particles × {} replica(s), φ = {:.3}, box {:.3}; {} steps in {:.2} s, {:.3e} particle-steps/s on {} threads)",
            args.output.display(),
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

/// `--ranks-grid 2x1`: ranks per direction.
fn parse_grid(s: &str) -> Result<Vec<usize>> {
    s.split(['x', 'X'])
        .map(|p| match p.trim().parse::<usize>() {
            Ok(v) if v >= 1 => Ok(v),
            _ => bail!("--ranks-grid {s}: expected ranks per direction as PxQ or PxQxR (each at least 1), '{p}' is not"),
        })
        .collect()
}

/// Rayon threads per process when several MPI ranks share this machine and `--threads` is not
/// given: the cores divided among the ranks (MPICH's launcher sets `MPI_LOCALNRANKS`), so that
/// `mpirun -np 2` on two cores runs one thread per rank rather than four on two cores.
fn threads_per_mpi_rank() -> Option<usize> {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return None;
    }
    let local: usize = std::env::var("MPI_LOCALNRANKS")
        .or_else(|_| std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE"))
        .ok()?
        .parse()
        .ok()?;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    (local > 1).then(|| (cores / local).max(1))
}

/// Whether this process was started by an MPI launcher (`mpirun`/`mpiexec`: MPICH's Hydra or
/// Open MPI), which is when `phaseflow simulate` decomposes a particle run over the ranks.
pub fn launched_by_mpi() -> bool {
    ["PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// How a particle run is executed: in this process, or (feature `mpi`, under `mpirun`) over the
/// ranks of MPI_COMM_WORLD — the root writes the output and reports, the others take their part
/// and end the process.
enum MpiRun {
    One,
    #[cfg(feature = "mpi")]
    Ranks(mpi::environment::Universe, crate::particles::mpi::Mpi),
}

impl MpiRun {
    /// One process, or (under `mpirun`) MPI initialised and the rank grid chosen and checked
    /// (every rank finds the same error; the root reports it, the others end quietly).
    fn start(model: &crate::particles::ParticleModel, grid: Option<&[usize]>) -> Result<MpiRun> {
        if !launched_by_mpi() {
            if grid.is_some() {
                bail!("--ranks-grid applies to runs started with mpirun -np K");
            }
            return Ok(MpiRun::One);
        }
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::Communicator;
            let universe = mpi::initialize()
                .ok_or_else(|| anyhow!("MPI was initialised already in this process"))?;
            let world = universe.world();
            let root = world.rank() == 0;
            let engine = match crate::particles::mpi::Mpi::new(world, model, grid) {
                Ok(e) => e,
                // every rank finds the same error: the root says it and ends with status 1
                // (mpirun's status); the others end quietly — with status 0, because MPICH's
                // launcher stops every rank as soon as one fails, which could cut the root off
                // before it has said why
                Err(e) if root => bail!("{e}"),
                Err(_) => {
                    drop(universe);
                    std::process::exit(0)
                }
            };
            Ok(MpiRun::Ranks(universe, engine))
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = model;
            bail!(
                "started by mpirun, but this phaseflow was built without MPI: build it with `cargo build --release --features mpi` (MPICH: apt-get install libmpich-dev mpich libclang-dev), or run it without mpirun"
            )
        }
    }

    /// This process writes the output and reports.
    fn is_root(&self) -> bool {
        match self {
            MpiRun::One => true,
            #[cfg(feature = "mpi")]
            MpiRun::Ranks(_, e) => crate::particles::run::Engine::is_root(e),
        }
    }

    /// Runs the simulation; on the root returns its summary (or the error), on the other ranks
    /// ends the process once the run is over (status 0: the root reports).
    fn run(
        self,
        model: &crate::particles::ParticleModel,
        out: &Path,
        cfg: &crate::particles::run::RunConfig,
        bar: &IndicatifProgress,
    ) -> Result<crate::particles::run::RunSummary> {
        match self {
            MpiRun::One => Ok(crate::particles::run::run(model, out, cfg, bar)?),
            #[cfg(feature = "mpi")]
            MpiRun::Ranks(universe, engine) => {
                use crate::particles::run::Engine;
                let root = engine.is_root();
                let result =
                    crate::particles::run::run_with(model, Some(out), cfg, bar, None, &engine);
                drop(engine);
                drop(universe);
                match result {
                    Ok(Some(s)) => Ok(s),
                    Ok(None) => std::process::exit(0),
                    Err(e) if root => Err(e.into()),
                    // the root reports the error and sets mpirun's status (see `start`)
                    Err(_) => std::process::exit(0),
                }
            }
        }
    }
}

/// The GSD output of a particle run (`--gsd FILE`, or `-o NAME.gsd`): written from the
/// finished H5MD file ([`crate::io::particle_file::h5md_to_gsd`]), so that a resumed run gives
/// the GSD file of an uninterrupted one. With `-o NAME.gsd` the H5MD file is the hidden
/// `.NAME.gsd.h5md` next to it (its partial file is what `--resume` continues), removed once the
/// GSD file is written.
struct GsdOutput {
    path: PathBuf,
    /// The H5MD file the run writes.
    h5md: PathBuf,
    /// GSD only (`-o NAME.gsd`).
    only: bool,
    /// Held from before the run until the GSD file is in place.
    lock: crate::io::h5md::OutputLock,
}

impl GsdOutput {
    fn plan(
        args: &SimulateArgs,
        model: &crate::particles::ParticleModel,
    ) -> Result<Option<GsdOutput>> {
        use crate::io::particle_file::{format_of_name, ParticleFormat};
        let only = format_of_name(&args.output) == Some(ParticleFormat::Gsd);
        let (path, h5md) = match (only, &args.gsd) {
            (true, Some(_)) => bail!(
                "-o {} is a GSD file already: --gsd names a GSD file beside an H5MD output (-o NAME.h5)",
                args.output.display()
            ),
            (true, None) => {
                let name = args
                    .output
                    .file_name()
                    .ok_or_else(|| anyhow!("-o {}: not a file name", args.output.display()))?;
                let hidden = format!(".{}.h5md", name.to_string_lossy());
                (args.output.clone(), args.output.with_file_name(hidden))
            }
            (false, Some(g)) => (g.clone(), args.output.clone()),
            (false, None) => return Ok(None),
        };
        if model.dim == 1 {
            bail!(
                "{}: GSD (the HOOMD schema) holds 2-D and 3-D systems; this model is 1-D: write H5MD (-o NAME.h5)",
                path.display()
            );
        }
        if !only && format_of_name(&path) != Some(ParticleFormat::Gsd) {
            bail!("--gsd {}: name the GSD file NAME.gsd", path.display());
        }
        if let (Ok(a), Ok(b)) = (
            std::path::absolute(&path),
            std::path::absolute(&args.output),
        ) {
            if !only && a == b {
                bail!("--gsd names the H5MD output itself");
            }
        }
        crate::io::check_output_path(&path)?;
        let lock = crate::io::h5md::OutputLock::acquire(&path)?;
        Ok(Some(GsdOutput {
            path,
            h5md,
            only,
            lock,
        }))
    }

    /// Writes the GSD file from the finished H5MD file.
    fn write(&self, quiet: bool) -> Result<()> {
        match crate::io::particle_file::h5md_to_gsd(&self.h5md, &self.lock) {
            Ok(s) => {
                if !quiet {
                    for d in &s.dropped {
                        eprintln!("note: not in {}: {d}", self.path.display());
                    }
                }
                if self.only {
                    std::fs::remove_file(&self.h5md).with_context(|| {
                        format!("cannot remove {}", self.h5md.display())
                    })?;
                }
                Ok(())
            }
            Err(e) => bail!(
                "{e}; the run's H5MD file {} is complete: `phaseflow export {} {}` writes the GSD file from it",
                self.h5md.display(),
                self.h5md.display(),
                self.path.display()
            ),
        }
    }
}

fn simulate_system(args: &SimulateArgs, sys: &CompiledSystem) -> Result<()> {
    use crate::simulate::{Embed, Grid, NoiseSetting, Run, SimulateError, Start};
    let started = Instant::now();
    let start = match (&args.ic, &args.ic_file, args.ensemble) {
        (Some(items), _, _) => Start::State(parse_ic(items)?),
        (None, Some(f), _) => Start::States(crate::simulate::read_initial_conditions(f, sys)?),
        (None, None, Some(n)) => Start::Attractor(n),
        (None, None, None) => Start::FileDefault,
    };
    let grid = match (args.t_end, args.dt_out) {
        (Some(t_len), Some(dt_out)) => Grid::Fixed { t_len, dt_out },
        _ => Grid::PerPeriod {
            points: args.points.unwrap_or(1000),
            per_period: args.pts_per_period,
        },
    };
    let noise = match &args.noise {
        Some(sigma) => NoiseSetting::Additive {
            sigma: sigma.clone(),
            units: args.noise_units,
        },
        None => NoiseSetting::FromFile,
    };
    let ensemble = start_is_ensemble(&start);
    let bar = IndicatifProgress::counting(
        args.quiet || args.json,
        if ensemble { "members" } else { "points" },
    );
    let mut run = Run::new(sys)
        .method(args.method)
        .tolerances(args.rtol, args.atol)
        .max_abs(args.max_abs)
        .grid(Some(grid))
        .burn_in(args.burn_in)
        .start(start)
        .seed(args.seed)
        .noise(noise)
        .raw(args.raw)
        .inverse(args.inverse)
        .progress(&bar)
        .cancel(cancel_token())
        .resume(args.resume)
        .stop_after_members(args.abort_after_members);
    if let Some(h) = args.step {
        run = run.step(h);
    }
    if let Some(e) = args.embed {
        run = run.embed(Embed {
            dimension: e,
            lag: args.embed_lag,
        });
    }
    // without --resume: a resumed ensemble records the command of the uninterrupted run
    let cmdline = crate::simulate::recorded_command(&std::env::args().collect::<Vec<_>>());
    let shard = match args.ensemble {
        Some(_) => crate::shard::Shard::resolve(args.shard)?,
        None => None,
    };
    if let Some(s) = shard {
        return simulate_ensemble_shard(args, sys, &run, s, &cmdline, started);
    }
    let extra = [(
        "command_line".to_string(),
        AttrValue::Str(shell_join(&cmdline)),
    )]
    .into();
    // a single trajectory streams to the file; nothing is left behind on any failure
    let out = run.write(&args.output, &extra).map_err(|e| match e {
        SimulateError::Run(r) => anyhow!("{r}; no output written"),
        other => other.into(),
    })?;
    let frames = out.frames;
    let wall = started.elapsed().as_secs_f64();
    let (stats, smp) = (out.stats, out.sampling);
    let mut summary = json!({
        "output": args.output.display().to_string(), "system": sys.name(), "points": frames,
        "dimension": sys.dim(), "t_start": smp.t_start,
        "t_end": smp.t_end(),
        "solver": out.solver, "solver_requested": args.method.to_string(),
        "accepted_steps": stats.accepted, "rejected_steps": stats.rejected,
        "rhs_evaluations": stats.rhs_evals, "wall_seconds": wall,
    });
    if ensemble {
        summary["members_from_partial_file"] = json!(out.reused_members);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        eprintln!(
            "wrote {} ({} points × {} variables, t ∈ [{}, {}]; {}: {} steps, {} rejected, {} evaluations; {:.2} s{})",
            args.output.display(),
            frames,
            sys.dim(),
            summary["t_start"],
            summary["t_end"],
            out.solver,
            stats.accepted,
            stats.rejected,
            stats.rhs_evals,
            wall,
            from_partial(out.reused_members)
        );
    }
    Ok(())
}

/// `simulate --ensemble M --shard I/N`: the shard file of the members of shard I.
fn simulate_ensemble_shard(
    args: &SimulateArgs,
    sys: &CompiledSystem,
    run: &crate::simulate::Run,
    s: crate::shard::Shard,
    cmdline: &[String],
    started: Instant,
) -> Result<()> {
    let m = args.ensemble.unwrap_or(0);
    if !args.json && !args.quiet {
        eprintln!("shard {s}: {} of {m} members", s.items(m).len());
    }
    let template = crate::simulate::command_template(cmdline);
    let (p, reused) = run.write_ensemble_shard(&args.output, s, Some(template))?;
    let summary = json!({
        "output": args.output.display().to_string(), "system": sys.name(),
        "shard": s.to_string(), "members": p.rows, "ensemble_size": p.items,
        "members_from_partial_file": reused,
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        eprintln!(
            "wrote {} (shard {s}: {} of {} members{}; `phaseflow merge OUT SHARD…` writes the ensemble's file)",
            args.output.display(),
            p.rows,
            p.items,
            from_partial(reused)
        );
    }
    Ok(())
}

/// `; N members taken from the partial file` of an ensemble that took N members over from its partial file.
fn from_partial(reused: usize) -> String {
    match reused {
        0 => String::new(),
        n => format!("; {n} members taken from the partial file"),
    }
}

fn start_is_ensemble(s: &crate::simulate::Start) -> bool {
    matches!(
        s,
        crate::simulate::Start::Attractor(_) | crate::simulate::Start::States(_)
    )
}
