//! The `phaseflow` command line: one file per subcommand, each only parsing its arguments,
//! calling the library and printing. Shared here: the command tree, the Ctrl-C token and
//! progress bars ([`progress`]), and small argument helpers.

// clap turns these doc comments into --help text, where TOML table names and shapes appear in
// brackets ([diffusion], [T, D]): not links
#![allow(rustdoc::broken_intra_doc_links)]

use crate::systems::{self, CompiledSystem, Kind, Overrides, System, SystemSpec};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod catalogue;
mod epr;
mod export;
pub mod forecast;
mod info;
mod invariants;
mod merge;
mod plot;
pub mod progress;
mod series;
mod simulate;
mod sweep;
mod train;

pub use catalogue::{CatalogueInvariantsArgs, CheckArgs};
pub use epr::EprArgs;
pub use export::ExportArgs;
pub use invariants::InvariantsArgs;
pub use merge::MergeArgs;
pub use progress::{cancel_token, IndicatifProgress};
pub use series::SeriesArgs;
pub use simulate::SimulateArgs;
pub use sweep::SweepArgs;
pub use train::{ScoreArgs, TrainArgs};

/// phaseflow: chaotic flows and active matter from plain-text definition files.
#[derive(Parser, Debug)]
#[command(name = "phaseflow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments (exiting with clap's message and status 2 on a usage
    /// error). Negative numbers are values in every subcommand (`--t-end -5` reaches the range
    /// check that names it, instead of being read as an unknown option `-5`): no option of
    /// phaseflow is a digit.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        fn negative_numbers(cmd: clap::Command) -> clap::Command {
            cmd.allow_negative_numbers(true)
                .mut_subcommands(negative_numbers)
        }
        let matches = negative_numbers(Cli::command()).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
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
    /// Integrate a system and write its trajectory to HDF5 (/time [T], /state [T, D]); particle models (systems/active/) write H5MD 1.1, and GSD (HOOMD schema) with --gsd FILE or -o NAME.gsd.
    Simulate(Box<SimulateArgs>),
    /// Convert a particle file between H5MD (phaseflow's format) and GSD (HOOMD-blue's, read by
    /// OVITO and freud): `phaseflow export run.h5 run.gsd`, or back; the formats are told by
    /// content (input) and by name (output: .gsd or .h5). GSD keeps positions and orientations in
    /// single precision.
    Export(ExportArgs),
    /// Catalogue-wide operations.
    Catalogue {
        #[command(subcommand)]
        action: CatalogueCommand,
    },
    /// Lyapunov spectrum (variational equations with the exact Jacobian, QR re-orthonormalisation),
    /// Kaplan–Yorke dimension and Pesin entropy, with error bars, beside the file's reference values.
    Invariants(InvariantsArgs),
    /// Parameter sweep: the invariants (Lyapunov spectrum, Kaplan–Yorke, Pesin, λ_max,
    /// correlation dimension) at every point of a grid `--set NAME=START:STOP:STEP …` (product
    /// of the ranges; `NAME=VALUE` fixes a parameter), as a CSV table one row per point;
    /// parallel, resumable (run the same command again after a kill), shardable (--shard I/N or a
    /// Slurm array, then `phaseflow merge`).
    Sweep(SweepArgs),
    /// Merge the shard files of a command run with --shard I/N (catalogue invariants, catalogue
    /// check -o, sweep, simulate --ensemble, forecast bench: OUTPUT is then its directory) into
    /// OUTPUT: the bytes the unsharded run writes. Refuses missing, duplicated and foreign
    /// shards.
    Merge(MergeArgs),
    /// Invariants of a measured scalar series, without equations: maximal Lyapunov exponent
    /// (Rosenstein and Kantz), correlation dimension of the delay embedding, sample and multiscale
    /// entropy, dominant period. Input: a phaseflow trajectory file (.h5) or a text file with one
    /// number per line (time step from --dt).
    Series(SeriesArgs),
    /// Train a score network (burn) on stationary samples from `phaseflow simulate` (particle
    /// H5MD or GSD files, or trajectories of SDE files): denoising or implicit score matching (with the
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
    /// for a particle file (H5MD or GSD), a snapshot of one frame coloured by local packing
    /// fraction.
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
        /// Particle (H5MD or GSD) files: the frame to draw, negative from the end (-1 = last);
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::List { json } => info::list(json),
        Command::Info { system, set, json } => info::info(&system, &set, json),
        Command::Simulate(args) => simulate::simulate(&args),
        Command::Invariants(args) => invariants::invariants(&args),
        Command::Series(args) => series::series(&args),
        Command::Sweep(args) => sweep::sweep(&args),
        Command::Merge(args) => merge::merge(&args),
        Command::Train(args) => train::train(&args),
        Command::Score(args) => train::score(&args),
        Command::Epr(args) => epr::epr(&args),
        Command::Export(args) => export::export(&args),
        Command::Forecast { action } => forecast::run(&action),
        Command::Catalogue {
            action: CatalogueCommand::Check(args),
        } => catalogue::catalogue_check(&args),
        Command::Catalogue {
            action: CatalogueCommand::Invariants(args),
        } => catalogue::catalogue_invariants(&args),
        Command::Plot {
            input,
            output,
            axes,
            width,
            height,
            frame,
        } => {
            if crate::io::particle_file::is_particle_file(&input) {
                plot::plot_particles(&input, &output, frame, width, height)
            } else {
                plot::plot(&input, &output, axes, width, height)
            }
        }
    }
}

fn load(system: &str, set: &[String]) -> Result<CompiledSystem> {
    let ov = Overrides::parse(set)?;
    Ok(CompiledSystem::load(system, &ov)?)
}

fn shell_join(args: &[String]) -> String {
    crate::shard::shell_join(args)
}

/// The files named by `--systems` (names or paths), or every catalogue file.
pub(crate) fn selected_files(names: Option<&[String]>) -> Result<Vec<PathBuf>> {
    match names {
        Some(list) => list
            .iter()
            .map(|s| systems::resolve_system(s.trim()).map_err(|e| anyhow!("{e}")))
            .collect(),
        None => Ok(systems::catalogue_files()),
    }
}

/// The error of `train`, `score` and `epr --model` in a build without the `learn` feature.
#[cfg(not(feature = "learn"))]
const WITHOUT_LEARN: &str =
    "this build has no score networks: rebuild with the default feature `learn`";

/// The burn device named on the command line (autodiff enabled): [`crate::score::device`].
/// Also switches on the binary's cache of freed large blocks ([`crate::block_cache`]: the
/// network commands free and reallocate the same large tensors at every step) unless
/// `PHASEFLOW_BLOCK_CACHE=0`.
#[cfg(feature = "learn")]
fn burn_device(name: &str) -> Result<burn::tensor::Device> {
    if std::env::var_os("PHASEFLOW_BLOCK_CACHE").is_none_or(|v| v != "0") {
        crate::block_cache::enable(crate::block_cache::default_budget());
    }
    crate::score::device(name).map_err(|e| anyhow!("{e}"))
}
