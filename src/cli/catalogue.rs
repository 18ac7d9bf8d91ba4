//! `phaseflow catalogue check` and `phaseflow catalogue invariants`.

use super::*;

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
    /// Compute only shard I of N (0-based; system k belongs to shard k mod N) and write a shard
    /// file for `phaseflow merge` [default: from SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN and
    /// SLURM_ARRAY_TASK_COUNT when set]
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::shard::Shard>,
}

/// Options of `phaseflow catalogue check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Only these systems (names or files), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub systems: Option<Vec<String>>,
    /// Integration method.
    #[arg(long, value_enum, default_value_t = crate::integrate::Method::Auto)]
    pub method: crate::integrate::Method,
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
    /// Also write the results to FILE as JSON Lines (one object per system in catalogue order,
    /// without wall_seconds: the file depends on the settings only), atomically; with --shard, a
    /// shard file for `phaseflow merge`
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Check only shard I of N (0-based; system k belongs to shard k mod N); needs --output
    /// [default: from SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT
    /// when set]
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::shard::Shard>,
    /// Continue an interrupted or killed check from the partial table it kept beside --output
    /// (.NAME.partial; the same command: systems, settings and shard are checked)
    #[arg(long, requires = "output")]
    pub resume: bool,
    /// Testing aid: stop (as a kill would) once this many systems are in the partial table
    #[arg(long, hide = true, requires = "output")]
    pub abort_after_systems: Option<usize>,
}

/// `phaseflow catalogue invariants`: the invariants table of the whole catalogue.
pub(super) fn catalogue_invariants(args: &CatalogueInvariantsArgs) -> Result<()> {
    use crate::catalogue::{invariants_table, TableOptions};
    let files = selected_files(args.systems.as_deref())?;
    let shard = crate::shard::Shard::resolve(args.shard)?;
    if let Some(s) = shard {
        eprintln!(
            "shard {s}: {} of {} systems",
            s.items(files.len()).len(),
            files.len()
        );
    }
    let bar = IndicatifProgress::new(
        false,
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} systems {msg}",
    );
    let opts = TableOptions {
        span_periods: args.span_periods,
        correlation_points: args.correlation_points,
        resume: args.resume,
        write_reference: args.write_reference,
        shard,
    };
    let t = invariants_table(&files, &args.output, &opts, &bar, &cancel_token())?;
    eprintln!(
        "wrote {} ({} systems computed now, {} from the partial table){}",
        args.output.display(),
        t.computed,
        t.reused,
        if t.failures > 0 {
            format!("; {} errors", t.failures)
        } else {
            String::new()
        }
    );
    if t.failures > 0 {
        bail!("{} systems failed", t.failures);
    }
    Ok(())
}

pub(super) fn catalogue_check(args: &CheckArgs) -> Result<()> {
    use crate::catalogue::{check_table, CheckOptions, Verdict};
    let files = selected_files(args.systems.as_deref())?;
    if files.is_empty() {
        bail!(
            "no definition files in {}",
            systems::catalogue_dir().display()
        );
    }
    let opts = CheckOptions {
        method: args.method,
        rtol: args.rtol,
        atol: args.atol,
        burn_in_periods: args.burn_in_periods,
        points: args.points,
        per_period: args.pts_per_period,
        tolerance: args.tolerance,
    };
    let shard = crate::shard::Shard::resolve(args.shard)?;
    if shard.is_some() && args.output.is_none() {
        bail!("--shard (or a Slurm array task) needs --output FILE: the shard file for `phaseflow merge`");
    }
    if let Some(o) = &args.output {
        crate::io::check_output_path(o)?;
    }
    // one process at a time writes an output; the partial table keeps its finished systems
    let _lock = args
        .output
        .as_deref()
        .map(crate::io::h5md::OutputLock::acquire)
        .transpose()?;
    let kept = args
        .output
        .as_deref()
        .map(|o| crate::catalogue::check_partial(o, &files, &opts, shard, args.resume))
        .transpose()?;
    let reused = kept.as_ref().map_or(0, |k| k.done.len());
    if reused > 0 {
        eprintln!("resuming: {reused} systems from the partial table");
    }
    let mine = shard.map_or(files.len(), |s| s.items(files.len()).len()) - reused;
    if let Some(s) = shard {
        eprintln!("shard {s}: {mine} of {} systems", files.len());
    }
    let bar = ProgressBar::new(mine as u64);
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
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let (results, table) = check_table(&files, &opts, shard, kept.as_ref(), &|r| {
        bar.set_message(r.system.clone());
        bar.inc(1);
        let n = finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if args.abort_after_systems.is_some_and(|k| n >= k) {
            // the row is in the partial table already: as a kill here would leave it
            eprintln!("error: interrupted after {n} systems (--abort-after-systems); the partial table is kept: continue with --resume");
            std::process::exit(1);
        }
    })?;
    bar.finish_and_clear();
    if let Some(o) = &args.output {
        crate::shard::publish(o, &table, shard)?;
    }
    let kept_done = kept.map(|k| {
        k.file.remove();
        k.done
    });
    // verdicts over all rows, the resumed ones included
    let count = |verdict: Verdict| {
        let want = serde_json::to_value(verdict).unwrap_or_default();
        table
            .rows
            .iter()
            .filter(|(_, row)| {
                serde_json::from_str::<serde_json::Value>(row).is_ok_and(|v| v["verdict"] == want)
            })
            .count()
    };
    let n_fail = count(Verdict::Fail);
    if args.json {
        // every system of the table: as checked now, or as the interrupted run's row (the
        // output file's, without wall_seconds)
        let done = kept_done.unwrap_or_default();
        let mut now = results.iter();
        let all: Vec<serde_json::Value> = table
            .rows
            .iter()
            .map(|(k, row)| match done.get(k) {
                Some(_) => serde_json::from_str(row).unwrap_or(serde_json::Value::Null),
                None => serde_json::to_value(now.next()).unwrap_or_default(),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
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
        let (pass, explained) = (count(Verdict::Pass), count(Verdict::Explained));
        if reused > 0 {
            println!("(and {reused} systems checked by the interrupted run, in the output file)");
        }
        println!(
            "{pass} of {} systems within {} of the reference std ({explained} explained deviations, {n_fail} failures); {:.2} s",
            table.rows.len(),
            args.tolerance,
            start.elapsed().as_secs_f64()
        );
    }
    if n_fail > 0 {
        bail!(
            "{n_fail} of {} systems failed the catalogue check",
            table.rows.len()
        );
    }
    Ok(())
}
