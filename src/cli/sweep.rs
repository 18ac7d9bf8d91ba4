//! `phaseflow sweep`: the invariants over a grid of parameter values.

use super::*;

/// Options of `phaseflow sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// System name or definition file
    pub system: String,
    /// A swept parameter NAME=START:STOP:STEP (values START, START+STEP, … up to STOP), or a
    /// fixed one NAME=VALUE; repeatable (the grid is the product of the ranges, the first
    /// varying slowest)
    #[arg(long = "set", value_name = "NAME=START:STOP:STEP", required = true)]
    pub set: Vec<String>,
    /// Output table (CSV, one row per point; with --shard, a shard file for `phaseflow merge`).
    /// Finished points are kept in .NAME.partial: after a kill the same command continues
    #[arg(short, long)]
    pub output: PathBuf,
    /// Compute only shard I of N (0-based; point k belongs to shard k mod N) [default: from
    /// SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT when set]
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::shard::Shard>,
    #[command(flatten)]
    pub settings: super::invariants::InvariantSettingsArgs,
    /// Points of the correlation-dimension estimate per grid point; 0 skips it
    #[arg(long, default_value_t = 0)]
    pub correlation_points: usize,
    /// Machine-readable summary on stdout
    #[arg(long)]
    pub json: bool,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
    /// Testing aid: stop after this many points as if the run had been killed
    #[arg(long, hide = true)]
    pub abort_after_points: Option<usize>,
}

/// `phaseflow sweep`.
pub(super) fn sweep(args: &SweepArgs) -> Result<()> {
    use crate::sweep::{run, Grid, SweepOptions};
    let grid = Grid::parse(&args.set)?;
    let shard = crate::shard::Shard::resolve(args.shard)?;
    let settings = args.settings.settings(args.correlation_points);
    let total = grid.len();
    if let Some(s) = shard {
        if !args.json {
            eprintln!("shard {s}: {} of {total} points", s.items(total).len());
        }
    }
    let opts = SweepOptions {
        system: args.system.clone(),
        grid,
        settings,
        shard,
        stop_after: args.abort_after_points,
    };
    let bar = IndicatifProgress::counting(args.quiet || args.json, "points");
    let s = run(&args.output, &opts, &bar, &cancel_token())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        eprintln!(
            "wrote {} ({} rows{}; {} computed now, {} from the partial file; {} skipped)",
            args.output.display(),
            s.published.rows,
            shard.map_or(String::new(), |sh| format!(
                ", shard {sh} of {} points",
                s.published.items
            )),
            s.computed,
            s.reused,
            s.skipped
        );
    }
    Ok(())
}
