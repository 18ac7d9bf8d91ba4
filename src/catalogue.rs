//! The catalogue check: every definition file integrated from its default initial condition and
//! compared with its reference statistics (`phaseflow catalogue check`).
//!
//! Protocol (defaults): no transient (`burn_in_periods = 0`: dysts computed its stored mean and
//! std from the default initial condition without one, over 10 periods), then 1000 points at 100
//! per period with the automatic method (DOP853, switching to the Rosenbrock method on detected stiffness) at rtol = atol = 1e-10; maps: 1000 iterations. Per system it reports
//! whether the run stayed finite and bounded, the largest mean and std errors over components in
//! units of the reference std, the dominant spectral period against the file's `period`, wall
//! time and solver statistics.
//!
//! Reference windows: dysts' statistics are 10-period samples with the period it stored when it
//! computed them (then dt = period / 4999.17 for every flow). For four flows (Bouali2, ExcitableCell,
//! KawczynskiStrizhak, BickleyJet) the stored period was edited later, and only the period implied
//! by dt reproduces the statistics; their files give it as `[reference] sample_period`, and the
//! check samples 10 of those periods (the file's `period` is unchanged).
//!
//! Delay equations: dysts stores the statistics of a 10-coordinate delay embedding; for a
//! scalar DDE they are pooled into one mean and std before comparing.
//!
//! Verdicts: `pass` (finite, bounded, both errors ≤ tolerance), `explained` (outside tolerance,
//! and the file's `[reference]` has a `check_note` saying why), `fail` (anything else, including
//! integration errors and missing or malformed references).

use crate::analysis::stats::{column_means, column_stds, dominant_period};
use crate::integrate::{Method, SolverOptions};
use crate::shard::csv_field;
use crate::simulate::{self, Sampling};
use crate::systems::{CompiledSystem, Kind, Overrides, SystemSpec};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of a check run.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub method: Method,
    pub rtol: f64,
    pub atol: f64,
    /// Transient discarded before recording, in periods of each system.
    pub burn_in_periods: f64,
    pub points: usize,
    pub per_period: usize,
    /// Largest accepted |Δmean|/std_ref and |Δstd|/std_ref.
    pub tolerance: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            method: Method::Auto,
            rtol: 1e-10,
            atol: 1e-10,
            burn_in_periods: 0.0,
            points: 1000,
            per_period: 100,
            tolerance: 0.1,
        }
    }
}

/// Verdict for one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Explained,
    Fail,
}

/// Result for one system.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub system: String,
    pub file: String,
    pub kind: String,
    pub dimension: usize,
    pub verdict: Verdict,
    /// Why it did not pass (empty when it passed).
    pub reason: String,
    /// The file's explanation for a known deviation (`[reference] check_note`).
    pub note: Option<String>,
    pub finite: bool,
    pub bounded: bool,
    /// max_k |mean_k − ref_mean_k| / ref_std_k.
    pub mean_error: Option<f64>,
    /// max_k |std_k − ref_std_k| / ref_std_k.
    pub std_error: Option<f64>,
    pub period: f64,
    /// `[reference] sample_period`: the period whose 10-period window the reference statistics
    /// describe, used for the sampling instead of `period` where the file gives one.
    pub sample_period: Option<f64>,
    /// Dominant spectral period of the first component.
    pub spectral_period: Option<f64>,
    pub wall_seconds: f64,
    /// Method(s) used, e.g. `dop853` or `dop853 -> rosenbrock` after a stiffness switch.
    pub solver: String,
    pub accepted_steps: u64,
    pub rejected_steps: u64,
    pub rhs_evaluations: u64,
}

/// Checks one definition file.
pub fn check_file(path: &Path, opts: &CheckOptions) -> CheckResult {
    let start = Instant::now();
    let mut r = CheckResult {
        system: path
            .file_stem()
            .map(|s| s.to_string_lossy().into())
            .unwrap_or_default(),
        file: path.display().to_string(),
        kind: String::new(),
        dimension: 0,
        verdict: Verdict::Fail,
        reason: String::new(),
        note: None,
        finite: false,
        bounded: false,
        mean_error: None,
        std_error: None,
        period: f64::NAN,
        sample_period: None,
        spectral_period: None,
        wall_seconds: 0.0,
        solver: String::new(),
        accepted_steps: 0,
        rejected_steps: 0,
        rhs_evaluations: 0,
    };
    let spec = match SystemSpec::load(path) {
        Ok(s) => s,
        Err(e) => {
            r.reason = e.to_string();
            return r;
        }
    };
    r.system = spec.name.clone();
    r.kind = spec.kind.as_str().into();
    r.note = spec
        .reference
        .get("check_note")
        .and_then(|v| v.as_str())
        .map(String::from);
    // the period of the window the reference statistics were computed over, where the file says
    // it differs from `period` (dysts edited four periods after computing its statistics)
    let sample_period = spec
        .reference_number("sample_period")
        .filter(|p| *p > 0.0 && p.is_finite());
    r.sample_period = sample_period;
    let ref_mean = spec.reference_array("mean");
    let ref_std = spec.reference_array("std");
    let sys = match CompiledSystem::new(spec, &Overrides::default()) {
        Ok(s) => s,
        Err(e) => {
            r.reason = e.to_string();
            return r;
        }
    };
    let m = sys.model();
    r.dimension = m.dim();
    r.period = m.period;
    let sampling = if m.kind == Kind::Map {
        Sampling::iterations(m.t0 + opts.burn_in_periods.round(), opts.points)
    } else {
        let period = sample_period.unwrap_or(m.period);
        Sampling::per_period(
            m.t0 + opts.burn_in_periods * period,
            period,
            opts.points,
            opts.per_period,
        )
    };
    let solver = SolverOptions {
        method: opts.method,
        rtol: opts.rtol,
        atol: opts.atol,
        h0: if opts.method == Method::Rk4 {
            Some(m.dt)
        } else {
            None
        },
        ..SolverOptions::default()
    };
    let rec = simulate::trajectory(
        &sys,
        &simulate::RunOptions::new(solver),
        &m.initial_condition,
        &sampling,
    );
    r.wall_seconds = start.elapsed().as_secs_f64();
    let rec = match rec {
        Ok(rec) => rec,
        Err(e) => {
            r.reason = e.to_string();
            return r;
        }
    };
    r.accepted_steps = rec.stats.accepted;
    r.solver = rec.methods.join(" -> ");
    r.rejected_steps = rec.stats.rejected;
    r.rhs_evaluations = rec.stats.rhs_evals;
    let d = rec.dim;
    r.finite = rec.state.iter().all(|v| v.is_finite());
    let mean = column_means(&rec.state, d);
    let std = column_stds(&rec.state, d);
    let first: Vec<f64> = rec.state.chunks_exact(d).map(|row| row[0]).collect();
    r.spectral_period = dominant_period(&first, sampling.dt_out);
    let (Some(rm), Some(rs)) = (ref_mean, ref_std) else {
        r.bounded = r.finite && rec.state.iter().all(|v| v.abs() < 1e8);
        r.reason = "no reference mean/std in the file".into();
        return r;
    };
    // Delay equations: dysts stores statistics of a delay embedding (E coordinates, the
    // windows x(t), x(t − Δ), …); for a scalar DDE they are pooled into one mean and std
    // (mean of the means; variance = mean of the variances + variance of the means).
    let (rm, rs) = if d == 1 && rm.len() > 1 && rm.len() == rs.len() && r.kind == "dde" {
        let e = rm.len() as f64;
        let mu = rm.iter().sum::<f64>() / e;
        let var = rs.iter().map(|s| s * s).sum::<f64>() / e
            + rm.iter().map(|m| (m - mu) * (m - mu)).sum::<f64>() / e;
        (vec![mu], vec![var.sqrt()])
    } else {
        (rm, rs)
    };
    if rm.len() != d || rs.len() != d {
        r.reason = format!(
            "reference has {} means and {} stds for {d} variables",
            rm.len(),
            rs.len()
        );
        return r;
    }
    // bounded: every component within 50 reference stds of the reference mean
    r.bounded = r.finite
        && rec.state.chunks_exact(d).all(|row| {
            row.iter()
                .zip(rm.iter().zip(&rs))
                .all(|(x, (mu, s))| (x - mu).abs() <= 50.0 * s.abs().max(1e-12))
        });
    let scale = |k: usize| rs[k].abs().max(1e-12);
    let me = (0..d)
        .map(|k| (mean[k] - rm[k]).abs() / scale(k))
        .fold(0.0, f64::max);
    let se = (0..d)
        .map(|k| (std[k] - rs[k]).abs() / scale(k))
        .fold(0.0, f64::max);
    r.mean_error = Some(me);
    r.std_error = Some(se);
    if !r.finite || !r.bounded {
        r.reason = "trajectory not finite or left the reference region (50 stds)".into();
        return r;
    }
    if me <= opts.tolerance && se <= opts.tolerance {
        r.verdict = Verdict::Pass;
    } else {
        r.reason = format!(
            "mean error {me:.3} / std error {se:.3} of the reference std exceed {}",
            opts.tolerance
        );
        r.verdict = if r.note.is_some() {
            Verdict::Explained
        } else {
            Verdict::Fail
        };
    }
    r
}

/// Checks files in parallel (rayon); results in the order of `files`. `progress` is called
/// once per finished system.
pub fn check_files(
    files: &[PathBuf],
    opts: &CheckOptions,
    progress: &(dyn Fn(&CheckResult) + Sync),
) -> Vec<CheckResult> {
    files
        .par_iter()
        .map(|f| {
            let r = check_file(f, opts);
            progress(&r);
            r
        })
        .collect()
}

/// The row of `r` in the output file of `catalogue check -o`: one JSON object (keys sorted, no
/// `wall_seconds`, which is a timing) and a line end.
pub fn check_row(r: &CheckResult) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("wall_seconds");
    }
    format!("{v}\n")
}

/// The identity of a catalogue check's work ([`crate::shard::work_id`]): the settings, and each
/// file's path and text.
fn check_identity(files: &[PathBuf], opts: &CheckOptions) -> String {
    let mut d = format!("catalogue check\n{opts:?}\n").into_bytes();
    for f in files {
        d.extend_from_slice(format!("{}\n", f.display()).as_bytes());
        d.extend_from_slice(&std::fs::read(f).unwrap_or_default());
        d.push(b'\n');
    }
    crate::shard::work_id(&d)
}

/// The systems a catalogue check written to a file has finished so far, kept in its partial
/// file ([`check_partial`]) for a run that is killed or interrupted.
#[derive(Debug)]
pub struct CheckPartial {
    /// Rows (of [`check_row`]) of the systems finished by an earlier run, by file index.
    pub done: std::collections::BTreeMap<usize, String>,
    /// Where each newly finished row is appended.
    pub file: crate::shard::PartialFile,
}

/// The partial file `.NAME.partial` of a catalogue check of `files` (its `shard`) written to
/// `output`: with `resume`, the rows an interrupted run of the same check (same files and texts,
/// settings and shard) kept there, and the file continued; else a new file. A partial file
/// found without `resume` is refused, not overwritten (its rows are finished work), and so is
/// one of another check. Hold the output's lock ([`crate::io::h5md::OutputLock`]) while using
/// it.
pub fn check_partial(
    output: &Path,
    files: &[PathBuf],
    opts: &CheckOptions,
    shard: Option<crate::shard::Shard>,
    resume: bool,
) -> Result<CheckPartial, crate::shard::ShardError> {
    use crate::shard::{PartialFile, Shard, ShardError};
    let path = PartialFile::path_of(output)?;
    let s = shard.unwrap_or(Shard::WHOLE);
    let first_line = format!(
        "phaseflow-check-partial work={} shard={s} items={}\n",
        check_identity(files, opts),
        files.len()
    );
    let bad = |msg: &str| ShardError::File {
        path: path.clone(),
        msg: msg.to_string(),
    };
    match PartialFile::read(&path, s, files.len())? {
        None => Ok(CheckPartial {
            done: Default::default(),
            file: PartialFile::create(&path, &first_line)?,
        }),
        Some(_) if !resume => Err(bad(
            "an unfinished check of this output kept its finished systems here: continue it with --resume (the same command), or remove the file to start afresh",
        )),
        Some(found) if found.first_line != first_line => Err(bad(
            "cannot resume: it holds another check (other systems, definition texts, settings or shard); give the same command, or remove the file to start afresh",
        )),
        Some(found) => Ok(CheckPartial {
            file: PartialFile::resume(&path, &found)?,
            done: found.rows,
        }),
    }
}

/// Checks the files of `shard` (all when `None`; file `k` belongs to shard `k mod N`) in
/// parallel, and returns the results computed now with the table of all of them for
/// [`crate::shard::publish`]: JSON Lines, one [`check_row`] per file in the order of `files`.
/// With `kept` ([`check_partial`]), the files it has done are not checked again (their rows
/// come from it), and each newly finished row is appended to it before `progress` sees it.
pub fn check_table(
    files: &[PathBuf],
    opts: &CheckOptions,
    shard: Option<crate::shard::Shard>,
    kept: Option<&CheckPartial>,
    progress: &(dyn Fn(&CheckResult) + Sync),
) -> Result<(Vec<CheckResult>, crate::shard::Table), crate::shard::ShardError> {
    let s = shard.unwrap_or(crate::shard::Shard::WHOLE);
    let mine = s.items(files.len());
    let done = |k: usize| kept.and_then(|p| p.done.get(&k));
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&k| done(k).is_none())
        .collect();
    let results: Vec<(usize, CheckResult)> = todo
        .par_iter()
        .map(
            |&k| -> Result<(usize, CheckResult), crate::shard::ShardError> {
                let r = check_file(&files[k], opts);
                if let Some(p) = kept {
                    p.file.append(k, &check_row(&r))?;
                }
                progress(&r);
                Ok((k, r))
            },
        )
        .collect::<Result<_, _>>()?;
    let mut now: std::collections::BTreeMap<usize, &CheckResult> =
        results.iter().map(|(k, r)| (*k, r)).collect();
    let rows = mine
        .iter()
        .map(|&k| {
            let row = match done(k) {
                Some(text) => text.clone(),
                None => check_row(now.remove(&k).expect("checked above")),
            };
            (k, row)
        })
        .collect();
    let table = crate::shard::Table {
        command: "catalogue check".into(),
        work: check_identity(files, opts),
        items: files.len(),
        head: String::new(),
        rows,
        tail: String::new(),
    };
    Ok((results.into_iter().map(|(_, r)| r).collect(), table))
}

/// Why [`write_phaseflow_reference`] could not update a file (the message names it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReferenceError(String);

impl From<String> for ReferenceError {
    fn from(s: String) -> Self {
        ReferenceError(s)
    }
}

/// Writes the recomputed invariants into the `[reference]` table of a definition file as
/// `phaseflow_*` keys (the dysts values stay next to them). `[reference]` is the last table of every
/// catalogue file; earlier `phaseflow_*` lines (and their marker comment) are replaced. The file
/// is rewritten atomically (temporary file, then rename) and must still parse afterwards.
pub fn write_phaseflow_reference(
    path: &std::path::Path,
    inv: &crate::analysis::invariants::Invariants,
) -> Result<(), ReferenceError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !text.lines().any(|l| l.trim() == "[reference]") {
        return Err(format!("{}: no [reference] table", path.display()).into());
    }
    let fmt = |v: f64| {
        if v.is_finite() {
            format!("{v:?}")
        } else {
            "nan".into()
        }
    };
    let arr = |v: &[f64]| {
        format!(
            "[{}]",
            v.iter().map(|x| fmt(*x)).collect::<Vec<_>>().join(", ")
        )
    };
    let mut kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("phaseflow_") && !l.starts_with("# phaseflow invariants:"))
        .collect();
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    let mut out = kept.join("\n");
    out.push_str(&format!(
        "\n# phaseflow invariants: `phaseflow catalogue invariants` (variational spectrum, span {}, transient {}, QR every {}; {}; correlation dimension: Grassberger-Procaccia, C in [1e-4, 1e-2])\n",
        inv.span, inv.transient, inv.qr_interval, inv.error_bars
    ));
    out.push_str(&format!(
        "phaseflow_lyapunov_spectrum = {}\n",
        arr(&inv.lyapunov_spectrum)
    ));
    out.push_str(&format!(
        "phaseflow_lyapunov_errors = {}\n",
        arr(&inv.lyapunov_errors)
    ));
    out.push_str(&format!(
        "phaseflow_kaplan_yorke_dimension = {}\n",
        fmt(inv.kaplan_yorke_dimension)
    ));
    out.push_str(&format!(
        "phaseflow_pesin_entropy = {}\n",
        fmt(inv.pesin_entropy)
    ));
    if let Some(l) = inv.maximum_lyapunov_two_trajectories {
        out.push_str(&format!("phaseflow_maximum_lyapunov = {}\n", fmt(l)));
    }
    if let Some(c) = inv.correlation_dimension {
        out.push_str(&format!("phaseflow_correlation_dimension = {}\n", fmt(c)));
    }
    // the result must still be a valid definition file
    crate::systems::SystemSpec::from_str_at(&out, path).map_err(|e| e.to_string())?;
    crate::io::write_bytes_atomically(path, out.as_bytes()).map_err(|e| e.to_string())?;
    Ok(())
}

/// Columns of the invariants table.
///
/// The table holds no timing (no `wall_seconds`): it is a function of the definition files and
/// the settings, rows in the order of the files, so that a run split into shards and merged
/// ([`crate::shard`]) gives the same bytes as one run.
pub const INVARIANT_COLUMNS: [&str; 17] = [
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
    "status",
];

/// Settings of [`invariants_table`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableOptions {
    /// Measured span of flows in periods (maps: 200 iterations per unit).
    pub span_periods: f64,
    /// Points of the correlation-dimension estimates (0 skips them).
    pub correlation_points: usize,
    /// Continue the partial table of an interrupted run.
    pub resume: bool,
    /// Also write the results into each file's `[reference]` as `phaseflow_*` values.
    pub write_reference: bool,
    /// Compute only this shard of the files (file `k` belongs to shard `k mod N`) and write a
    /// shard file for [`crate::shard::merge`]; `None`: every file, the complete table.
    pub shard: Option<crate::shard::Shard>,
}

/// What [`invariants_table`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSummary {
    /// Systems computed in this call.
    pub computed: usize,
    /// Rows taken over from the partial table (`resume`).
    pub reused: usize,
    /// Systems that could not be loaded or written (a row `error: …`); systems whose invariants
    /// cannot be computed get a row `skipped: …` and are not failures.
    pub failures: usize,
}

/// Errors of [`invariants_table`].
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{}: {what}: {reason}", path.display())]
    File {
        path: PathBuf,
        what: &'static str,
        reason: std::io::Error,
    },
    #[error("{}: not a file name", .0.display())]
    NotAFile(PathBuf),
    #[error("interrupted: continue with resume (the partial table is kept)")]
    Interrupted,
    /// The destination is not a regular file, or another process is writing it.
    #[error(transparent)]
    Output(#[from] crate::io::IoError),
    /// The shard file could not be made.
    #[error("{0}")]
    Shard(String),
}

/// The identity of an invariants table's work ([`crate::shard::work_id`]): each file's path
/// and text, and the settings that change a row.
pub fn table_identity(files: &[PathBuf], args: &TableOptions) -> String {
    let mut d = format!(
        "catalogue invariants\nspan {:016x} correlation {}\n",
        args.span_periods.to_bits(),
        args.correlation_points
    )
    .into_bytes();
    for f in files {
        d.extend_from_slice(format!("{}\n", f.display()).as_bytes());
        d.extend_from_slice(&std::fs::read(f).unwrap_or_default());
        d.push(b'\n');
    }
    crate::shard::work_id(&d)
}

/// The invariants table of `files` (one CSV row per system, columns [`INVARIANT_COLUMNS`]),
/// computed in parallel: rows are appended to `.NAME.partial` beside `output` as they finish (a
/// killed run keeps them; `resume` skips the systems already there), and the complete table,
/// rows in the order of `files`, is written to `output` atomically (never over what is not a
/// regular file) and the partial table removed. With [`TableOptions::shard`], only that
/// shard's files are computed and `output` is a shard file ([`crate::shard`]). One process at a time writes a
/// table ([`crate::io::h5md::OutputLock`]: a second run on the same output fails at once, naming
/// the first). `progress` counts systems; `cancel` stops the systems in flight at their next
/// check ([`crate::analysis::invariants::InvariantSettings::cancel`]) and starts no other.
pub fn invariants_table(
    files: &[PathBuf],
    output: &Path,
    args: &TableOptions,
    progress: &dyn crate::control::Progress,
    cancel: &crate::control::Cancel,
) -> Result<TableSummary, TableError> {
    use std::io::Write;
    let name = output
        .file_name()
        .ok_or_else(|| TableError::NotAFile(output.to_path_buf()))?;
    let partial = output.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let _lock = crate::io::h5md::OutputLock::acquire(output)?;
    // before --write-reference edits the files
    let work = table_identity(files, args);
    let file_err = |what: &'static str| {
        let p = partial.clone();
        move |e: std::io::Error| TableError::File {
            path: p,
            what,
            reason: e,
        }
    };
    let mut done: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    if args.resume {
        let text = std::fs::read_to_string(&partial).map_err(file_err("nothing to resume"))?;
        if text.lines().next() != Some(INVARIANT_COLUMNS.join(",").as_str()) {
            return Err(TableError::File {
                path: partial.clone(),
                what: "cannot resume",
                reason: std::io::Error::other(
                    "its columns are not this version's (a table of an older phaseflow?): remove it to start afresh",
                ),
            });
        }
        for line in text.lines().skip(1) {
            if let Some(first) = line.split(',').next() {
                done.insert(first.trim_matches('"').to_string());
            }
        }
    } else {
        let mut f = std::fs::File::create(&partial).map_err(file_err("create"))?;
        writeln!(f, "{}", INVARIANT_COLUMNS.join(",")).map_err(file_err("write"))?;
    }
    let writer = std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&partial)
            .map_err(file_err("open"))?,
    );
    let shard = args.shard.unwrap_or(crate::shard::Shard::WHOLE);
    // the names a row of file k can carry: the system's name, or the path (a row `error: …`)
    let mut index_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (k, f) in files.iter().enumerate().filter(|(k, _)| shard.owns(*k)) {
        index_of.insert(f.display().to_string(), k);
        if let Ok(s) = SystemSpec::load(f) {
            index_of.insert(s.name, k);
        }
    }
    let todo: Vec<&PathBuf> = files
        .iter()
        .enumerate()
        .filter(|(k, _)| shard.owns(*k))
        .map(|(_, f)| f)
        .filter(|f| SystemSpec::load(f).map_or(true, |s| !done.contains(&s.name)))
        .collect();
    progress.start(todo.len() as u64, 0, "systems");
    let base_settings = crate::analysis::invariants::InvariantSettings {
        correlation_points: args.correlation_points,
        cancel: cancel.clone(),
        ..crate::analysis::invariants::InvariantSettings::default()
    };
    let failures = std::sync::atomic::AtomicUsize::new(0);
    todo.par_iter().for_each(|f| {
        if cancel.is_cancelled() {
            return;
        }
        let row = (|| -> std::result::Result<Option<serde_json::Value>, String> {
            let sys = CompiledSystem::load(&f.display().to_string(), &Overrides::default())
                .map_err(|e| e.to_string())?;
            let mut settings = base_settings.clone();
            if sys.model().kind == Kind::Map {
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
                        write_phaseflow_reference(f, &inv).map_err(|e| e.to_string())?;
                    }
                    let mut v = serde_json::to_value(&inv).map_err(|e| e.to_string())?;
                    for (k, val) in base.as_object().unwrap() {
                        v[k] = val.clone();
                    }
                    v["status"] = json!("ok");
                    Ok(Some(v))
                }
                // stopped midway: no row, so that `resume` computes the system again
                Err(crate::analysis::invariants::InvariantsError::Interrupted) => Ok(None),
                Err(e) => {
                    let mut v = base;
                    v["status"] = json!(format!("skipped: {e}"));
                    Ok(Some(v))
                }
            }
        })();
        let v = match row {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                json!({"system": f.display().to_string(), "status": format!("error: {e}")})
            }
        };
        let line = INVARIANT_COLUMNS
            .iter()
            .map(|c| csv_field(&v[*c]))
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(mut w) = writer.lock() {
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
        progress.message(v["system"].as_str().unwrap_or(""));
        progress.advance(1);
    });
    progress.finish();
    drop(writer);
    if cancel.is_cancelled() {
        return Err(TableError::Interrupted);
    }
    // the rows in the order of the files (the last row of a system wins)
    let text = std::fs::read_to_string(&partial).map_err(file_err("read"))?;
    let mut rows: std::collections::BTreeMap<usize, String> = std::collections::BTreeMap::new();
    for line in text.lines().skip(1) {
        let key = line.split(',').next().unwrap_or("").trim_matches('"');
        if let Some(&k) = index_of.get(key) {
            rows.insert(k, format!("{line}\n"));
        }
    }
    let mine = shard.items(files.len());
    if rows.len() != mine.len() {
        return Err(TableError::Shard(format!(
            "{}: {} of the {} systems have no row (a system name with a comma?); the partial table is kept",
            partial.display(),
            mine.len() - rows.len(),
            mine.len()
        )));
    }
    let table = crate::shard::Table {
        command: "catalogue invariants".into(),
        work,
        items: files.len(),
        head: format!("{}\n", INVARIANT_COLUMNS.join(",")),
        rows: rows.into_iter().collect(),
        tail: String::new(),
    };
    crate::shard::publish(output, &table, args.shard).map_err(|e| match e {
        crate::shard::ShardError::Io(e) => TableError::Output(e),
        other => TableError::Shard(other.to_string()),
    })?;
    let _ = std::fs::remove_file(&partial);
    Ok(TableSummary {
        computed: todo.len(),
        reused: done.len(),
        failures: failures.load(std::sync::atomic::Ordering::Relaxed),
    })
}
