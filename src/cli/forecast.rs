//! `phaseflow forecast …`: data sets and the forecasting benchmark.

use super::selected_files;
use crate::forecast::{bench, data, models};
use crate::systems::{self, Kind, SystemSpec};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ForecastCommand {
    /// Benchmark forecasters on generated chaos: for each system a data set (training series and
    /// test trajectories from different on-attractor initial conditions), each native model tuned
    /// on a validation split of the training series, then scored on every test trajectory with
    /// all of dysts' metrics and the valid prediction time. Parallel over (system, model) pairs,
    /// resumable (finished pairs are skipped), shardable (--shard I/N or a Slurm array, then
    /// `phaseflow merge DIR SHARD…`). Writes DIR/data/*.h5, DIR/results/SYSTEM/MODEL.json,
    /// DIR/leaderboard.csv, DIR/summary.md and plots.
    Bench(BenchArgs),
    /// Generate (or check) the data sets of a protocol without running models: DIR/data/*.h5.
    Data(DataArgs),
}

/// Data-set settings shared by `forecast bench` and `forecast data`.
#[derive(Args, Debug, Clone)]
pub struct ProtocolArgs {
    /// Systems: `all` (every flow and delay equation of the catalogue) or comma-separated names
    /// or files
    #[arg(long, default_value = "all")]
    pub systems: String,
    /// Protocol: short (PRR 2023: 100 points per period, train 1000, forecast 200, multivariate,
    /// raw), long (forecast 5000), univariate (NeurIPS 2021: first coordinate, fit 10 periods,
    /// forecast 2), custom
    #[arg(long, default_value = "short", value_parser = parse_protocol)]
    pub protocol: data::ProtocolName,
    /// Points per period (univariate: 15 or 100; overrides the protocol's value)
    #[arg(long)]
    pub per_period: Option<f64>,
    /// Training steps (overrides the protocol)
    #[arg(long)]
    pub train: Option<usize>,
    /// Context steps given before each test forecast (overrides the protocol)
    #[arg(long)]
    pub context: Option<usize>,
    /// Steps to forecast (overrides the protocol)
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Test trajectories per system
    #[arg(long)]
    pub test_ics: Option<usize>,
    /// Standardise every series with the training mean and std
    #[arg(long)]
    pub standardise: bool,
    /// Observation noise, as a fraction of each component's std (added to what models see)
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
    /// Integrator of the data sets: auto (DOP853, Rosenbrock on stiffness), dop853, dopri5,
    /// rosenbrock, rk4 (at the file's dt)
    #[arg(long, default_value = "auto")]
    pub integrator: String,
    /// Relative tolerance of the integrator
    #[arg(long, default_value_t = 1e-9)]
    pub rtol: f64,
    /// Absolute tolerance of the integrator
    #[arg(long, default_value_t = 1e-9)]
    pub atol: f64,
    /// Seed of the initial conditions, the noise and every model's random draws
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory
    #[arg(short, long)]
    pub output: PathBuf,
    /// Machine-readable summary on stdout
    #[arg(long)]
    pub json: bool,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

/// Options of `phaseflow forecast bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Native models, comma-separated (default: all of naive, mean, seasonal_naive, parroting,
    /// linear, nvar, esn, random_features, mlp; none when --external is given)
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// An external model NAME=COMMAND run through the subprocess protocol (repeatable; see
    /// `phaseflow::forecast::external` and scripts/forecast_adapter_example.py)
    #[arg(long = "external", value_name = "NAME=COMMAND")]
    pub external: Vec<String>,
    /// Longest run of one call of an external model, in seconds; then its whole process group is
    /// killed and the pair fails (Ctrl-C kills it too)
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 600.0,
        allow_negative_numbers = true
    )]
    pub external_timeout: f64,
    /// Valid prediction time threshold on the cumulative sMAPE (0–200 scale)
    #[arg(long, default_value_t = 30.0)]
    pub vpt_threshold: f64,
    /// Use each model's default configuration instead of tuning on the validation split
    #[arg(long)]
    pub no_tune: bool,
    /// Pin a hyperparameter of a native model in every configuration of its grid:
    /// MODEL.NAME=VALUE (repeatable), e.g. nvar.order=1 or esn.units=500 (names: see
    /// `phaseflow::forecast::models::build`)
    #[arg(long = "hyper", value_name = "MODEL.NAME=VALUE")]
    pub hyper: Vec<String>,
    /// Run only shard I of N of the systems (0-based; system k belongs to shard k mod N):
    /// DIR/data and DIR/results as usual (resumable), then DIR/shard-I-of-N.jsonl with the
    /// shard's records instead of the leaderboard; `phaseflow merge DIR SHARD…` writes the
    /// report of the whole benchmark, the bytes of an unsharded run [default: from
    /// SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT when set]
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::shard::Shard>,
}

/// Options of `phaseflow forecast data`.
#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// `--protocol`: a [`data::ProtocolName`], with the library's message for an unknown one.
fn parse_protocol(s: &str) -> std::result::Result<data::ProtocolName, String> {
    s.parse()
}

/// The data-set protocol of the options: the named protocol, then each override (shared with the
/// Python package's `phaseflow.forecast.bench`).
pub fn protocol_of(a: &ProtocolArgs) -> Result<data::Protocol> {
    let univariate = a.protocol == data::ProtocolName::Univariate;
    let pp = a
        .per_period
        .unwrap_or(if univariate { 15.0 } else { 100.0 });
    let mut p = data::Protocol::named(a.protocol.as_str(), pp)?;
    if let Some(v) = a.per_period {
        if !univariate {
            p.points_per_period = v;
        }
    }
    if let Some(v) = a.train {
        p.train = v;
    }
    if let Some(v) = a.context {
        p.context = v;
    }
    if let Some(v) = a.horizon {
        p.horizon = v;
    }
    if let Some(v) = a.test_ics {
        p.test_ics = v;
    }
    p.standardise = a.standardise;
    p.noise = a.noise;
    p.seed = a.seed;
    p.method = a.integrator.clone();
    p.rtol = a.rtol;
    p.atol = a.atol;
    p.validate().map_err(|e| anyhow!(e))?;
    Ok(p)
}

/// The definition files of `--systems`: `all` = every flow and delay equation of the catalogue.
pub fn systems_of(a: &ProtocolArgs) -> Result<Vec<PathBuf>> {
    if a.systems.trim() == "all" {
        let files: Vec<PathBuf> = systems::catalogue_files()
            .into_iter()
            .filter(|f| SystemSpec::load(f).is_ok_and(|s| matches!(s.kind, Kind::Flow | Kind::Dde)))
            .collect();
        if files.is_empty() {
            bail!(
                "no flows found in the catalogue ({})",
                systems::catalogue_dir().display()
            );
        }
        return Ok(files);
    }
    let names: Vec<String> = a.systems.split(',').map(|s| s.trim().to_string()).collect();
    selected_files(Some(&names))
}

fn bar(total: usize, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

pub fn run(cmd: &ForecastCommand) -> Result<()> {
    match cmd {
        ForecastCommand::Bench(a) => run_bench(a),
        ForecastCommand::Data(a) => run_data(a),
    }
}

fn run_data(a: &DataArgs) -> Result<()> {
    use rayon::prelude::*;
    let p = &a.protocol;
    let protocol = protocol_of(p)?;
    let files = systems_of(p)?;
    let pb = bar(files.len(), p.quiet || p.json);
    let results: Vec<(String, Result<data::Dataset, String>)> = files
        .par_iter()
        .map(|f| {
            let r = bench::dataset_for(f, &protocol, &p.output).map_err(String::from);
            pb.inc(1);
            (bench::system_key(f), r)
        })
        .collect();
    pb.finish_and_clear();
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    for (k, r) in results {
        match r {
            Ok(ds) => rows.push(serde_json::json!({
                "system": ds.system,
                "file": p.output.join("data").join(format!("{k}.h5")),
                "dim": ds.train.dim,
                "dt": ds.dt,
                "lyapunov_max": ds.lyapunov_max,
            })),
            Err(e) => failed.push(format!("{k}: {e}")),
        }
    }
    if p.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "protocol": protocol, "datasets": rows, "failed": failed
            }))?
        );
    } else {
        println!(
            "{} data sets in {} ({} failed)",
            rows.len(),
            p.output.join("data").display(),
            failed.len()
        );
        for f in &failed {
            eprintln!("failed: {f}");
        }
    }
    if !failed.is_empty() {
        bail!("{} data sets could not be generated", failed.len());
    }
    Ok(())
}

/// The settings `phaseflow forecast bench` runs with: the protocol ([`protocol_of`]), the
/// definition files (`systems`, called after the protocol is checked; the command line passes
/// [`systems_of`]), the models, external commands, threshold and pinned hyperparameters, each
/// checked with the command line's message. Shared with the Python package's
/// `phaseflow.forecast.bench`, which resolves names in the catalogue built into it.
pub fn bench_options(
    a: &BenchArgs,
    systems: impl FnOnce(&ProtocolArgs) -> Result<Vec<PathBuf>>,
    cancel: crate::control::Cancel,
) -> Result<bench::BenchOptions> {
    let p = &a.protocol;
    let protocol = protocol_of(p)?;
    let files = systems(p)?;
    let native: Vec<String> = match &a.models {
        Some(m) => m
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None if a.external.is_empty() => models::NATIVE.iter().map(|s| s.to_string()).collect(),
        None => Vec::new(),
    };
    let mut external = Vec::new();
    for e in &a.external {
        let (name, cmd) = e
            .split_once('=')
            .ok_or_else(|| anyhow!("--external '{e}': expected NAME=COMMAND"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("--external '{e}': the name must be letters, digits, '_' or '-'");
        }
        external.push((name.to_string(), cmd.to_string()));
    }
    if !a.vpt_threshold.is_finite() || a.vpt_threshold <= 0.0 {
        bail!(
            "--vpt-threshold {}: must be a finite positive number",
            a.vpt_threshold
        );
    }
    let mut pinned = Vec::new();
    for h in &a.hyper {
        let parsed = h.split_once('=').and_then(|(lhs, v)| {
            let (m, k) = lhs.trim().split_once('.')?;
            Some((m.to_string(), k.to_string(), v.trim().parse::<f64>().ok()?))
        });
        let Some((m, k, v)) = parsed else {
            bail!("--hyper '{h}': expected MODEL.NAME=NUMBER, e.g. nvar.order=1");
        };
        models::check_hyperparameter(&m, &k, v).map_err(|e| anyhow!("--hyper '{h}': {e}"))?;
        pinned.push((m, k, v));
    }
    let external_timeout = std::time::Duration::try_from_secs_f64(a.external_timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            anyhow!(
                "--external-timeout {}: must be a positive number of seconds",
                a.external_timeout
            )
        })?;
    Ok(bench::BenchOptions {
        pinned,
        systems: files,
        models: native,
        external,
        protocol,
        out: p.output.clone(),
        vpt_threshold: a.vpt_threshold,
        tune: !a.no_tune,
        external_timeout,
        cancel,
        shard: a.shard,
    })
}

/// The error of a run in which data sets or (system, model) pairs failed (`Ok` if none did).
pub fn check_failed(summary: &bench::BenchSummary) -> Result<()> {
    if !summary.failed.is_empty() {
        bail!(
            "{} data sets or (system, model) pairs failed (results of the others are written)",
            summary.failed.len()
        );
    }
    Ok(())
}

fn run_bench(a: &BenchArgs) -> Result<()> {
    let p = &a.protocol;
    let mut opts = bench_options(a, systems_of, super::cancel_token())?;
    opts.shard = crate::shard::Shard::resolve(a.shard)?;
    if let Some(s) = opts.shard {
        if !p.json {
            let total = opts.systems.len();
            eprintln!("shard {s}: {} of {total} systems", s.items(total).len());
        }
    }
    let progress = super::IndicatifProgress::new(
        p.quiet || p.json,
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
    );
    let summary = bench::run(&opts, &progress)?;
    crate::control::Progress::finish(&progress);
    if p.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        if let (Some(s), Some(f)) = (summary.shard, &summary.shard_file) {
            println!(
                "wrote {} (shard {s}: {} of {} systems; `phaseflow merge {} SHARD…` writes the report)",
                f.display(),
                summary.systems,
                summary.items,
                p.output.display()
            );
        } else if let Ok(text) = std::fs::read_to_string(p.output.join("summary.md")) {
            println!("{text}");
        }
        println!(
            "{} systems × {} models: {} computed, {} reused, {} failed, {:.1} s",
            summary.systems,
            summary.models.len(),
            summary.computed,
            summary.reused,
            summary.failed.len(),
            summary.seconds
        );
        for f in &summary.failed {
            eprintln!("failed: {f}");
        }
    }
    check_failed(&summary)
}
