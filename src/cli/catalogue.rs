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

/// `phaseflow catalogue invariants`: the invariants table of the whole catalogue.
pub(super) fn catalogue_invariants(args: &CatalogueInvariantsArgs) -> Result<()> {
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

pub(super) fn catalogue_check(args: &CheckArgs) -> Result<()> {
    use crate::catalogue::{check_files, CheckOptions, Verdict};
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
