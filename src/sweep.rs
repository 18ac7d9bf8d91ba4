//! Parameter sweeps: the invariants of one system at every point of a grid of parameter values
//! (`phaseflow sweep SYSTEM --set rho=20:40:0.5 …`), as a CSV table with one row per point.
//!
//! # Grid
//!
//! Each `--set NAME=START:STOP:STEP` is an axis with the values `START + j·STEP`, `j = 0, 1, …`
//! up to `STOP` (included when it is on the grid, within 1e-9 of a step); a plain `NAME=VALUE`
//! is a fixed override of every point. The points are the product of the axes in row-major
//! order (the first axis varies slowest): point `k` of that order is item `k` of the work list
//! ([`crate::shard`]: shard `k mod N` computes it). At most [`MAX_POINTS`] points.
//!
//! # Table
//!
//! Columns: the axes' names, then [`SWEEP_COLUMNS`] (what `phaseflow invariants` computes,
//! [`crate::analysis::invariants::compute`]); a point whose invariants cannot be computed gets
//! `status = "skipped: …"`. Numbers are written in Rust's shortest round-trip form, so the table
//! is a function of the system, the grid and the settings: the same bytes whatever the threads,
//! the shards or the interruptions.
//!
//! # Resuming
//!
//! Finished rows are appended, each synced to disk, to `.NAME.partial` beside the output
//! ([`crate::shard::PartialFile`], shared with `simulate --ensemble`), whose first line records the sweep's identity ([`crate::shard::work_id`]) and shard. A run that
//! finds the partial file of the same sweep skips the points in it (a line cut short by a kill
//! is dropped); one of another sweep is refused, naming the file. The complete table (or shard
//! file) is renamed into place at the end and the partial file removed: an interrupted and
//! resumed sweep writes the bytes of an uninterrupted one.

use crate::analysis::invariants::{compute, InvariantSettings, InvariantsError};
use crate::control::{Cancel, Progress};
use crate::shard::{csv_field, publish, work_id, PartialFile, Published, Shard, Table};
use crate::systems::{CompiledSystem, Overrides};
use rayon::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest number of grid points of one sweep.
pub const MAX_POINTS: usize = 100_000;

/// The table's columns after the axes.
pub const SWEEP_COLUMNS: [&str; 11] = [
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
    "status",
];

/// Errors of a sweep; each message is complete.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A `--set` or setting is malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// The system cannot be loaded.
    #[error("{0}")]
    System(String),
    /// The partial file cannot be used.
    #[error("{}: {msg}", .path.display())]
    Partial {
        /// The partial file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Interrupted: the partial file keeps the finished points.
    #[error("interrupted: {done} of {total} points of this shard are kept in {}; run the same command again to continue", .partial.display())]
    Interrupted {
        /// The partial file.
        partial: PathBuf,
        /// Points finished.
        done: usize,
        /// Points of this shard.
        total: usize,
    },
    /// Sharding or writing the output failed.
    #[error(transparent)]
    Shard(#[from] crate::shard::ShardError),
    /// The output cannot be written (or is locked by another run).
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
}

/// One axis of the grid: a parameter and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Parameter name.
    pub name: String,
    /// Values, increasing.
    pub values: Vec<f64>,
}

/// The grid: fixed overrides and axes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grid {
    /// `NAME=VALUE` overrides of every point.
    pub fixed: Vec<(String, f64)>,
    /// The axes, first varying slowest.
    pub axes: Vec<Axis>,
}

impl Grid {
    /// Parses `--set` items: `NAME=START:STOP:STEP` (an axis) or `NAME=VALUE` (fixed).
    /// Refuses a name given twice, a non-finite number, `STEP ≤ 0`, `STOP < START` and a grid of
    /// more than [`MAX_POINTS`] points.
    pub fn parse(items: &[String]) -> Result<Grid, SweepError> {
        let mut g = Grid::default();
        let mut names = std::collections::BTreeSet::new();
        for item in items {
            let bad = |why: String| SweepError::Invalid(format!("--set '{item}': {why}"));
            let (name, v) = item
                .split_once('=')
                .ok_or_else(|| bad("expected NAME=VALUE or NAME=START:STOP:STEP".into()))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(bad("no parameter name".into()));
            }
            if !names.insert(name.to_string()) {
                return Err(bad(format!("{name} is set twice")));
            }
            let num = |s: &str, what: &str| -> Result<f64, SweepError> {
                let x: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{what} '{}' is not a number", s.trim())))?;
                if !x.is_finite() {
                    return Err(bad(format!("{what} '{}' is not finite", s.trim())));
                }
                Ok(x)
            };
            let parts: Vec<&str> = v.split(':').collect();
            match parts.as_slice() {
                [x] => g.fixed.push((name.to_string(), num(x, "the value")?)),
                [a, b, c] => {
                    let (start, stop, step) = (num(a, "START")?, num(b, "STOP")?, num(c, "STEP")?);
                    if step <= 0.0 {
                        return Err(bad(format!("STEP must be positive, not {step}")));
                    }
                    if stop < start {
                        return Err(bad(format!("STOP {stop} is below START {start}")));
                    }
                    let n = ((stop - start) / step + 1e-9).floor();
                    if n.is_nan() || n >= MAX_POINTS as f64 {
                        return Err(bad(format!(
                            "more than {MAX_POINTS} values; use a larger STEP"
                        )));
                    }
                    let values = (0..=n as usize).map(|j| start + j as f64 * step).collect();
                    g.axes.push(Axis {
                        name: name.to_string(),
                        values,
                    });
                }
                _ => {
                    return Err(bad(
                        "expected NAME=VALUE or NAME=START:STOP:STEP (three numbers)".into(),
                    ))
                }
            }
        }
        if g.axes.is_empty() {
            return Err(SweepError::Invalid(
                "no axis to sweep: give at least one --set NAME=START:STOP:STEP".into(),
            ));
        }
        let mut total: usize = 1;
        for a in &g.axes {
            total = total.saturating_mul(a.values.len());
        }
        if total > MAX_POINTS {
            return Err(SweepError::Invalid(format!(
                "the grid has {total} points, more than the limit of {MAX_POINTS}: use larger steps or fewer axes"
            )));
        }
        Ok(g)
    }

    /// Number of points (product of the axes' lengths).
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    /// Whether the grid has no point (never, for a parsed grid).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The axis values of point `k` (row-major: the last axis varies fastest).
    pub fn point(&self, mut k: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.axes.len()];
        for (i, a) in self.axes.iter().enumerate().rev() {
            let n = a.values.len();
            out[i] = a.values[k % n];
            k /= n;
        }
        out
    }

    /// The overrides of point `k`: the fixed ones, then the axes'.
    pub fn overrides(&self, k: usize) -> Overrides {
        let mut values = self.fixed.clone();
        for (a, v) in self.axes.iter().zip(self.point(k)) {
            values.push((a.name.clone(), v));
        }
        Overrides { values }
    }
}

/// Settings of a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// A definition file path or a catalogue name.
    pub system: String,
    /// The grid.
    pub grid: Grid,
    /// The invariants' settings at every point (`cancel` is the sweep's).
    pub settings: InvariantSettings,
    /// The shard to compute (`None`: all points, writing the complete table).
    pub shard: Option<Shard>,
    /// Testing aid: stop (as if killed) after this many points computed in this call.
    pub stop_after: Option<usize>,
}

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepSummary {
    /// The file written.
    pub output: PathBuf,
    /// What was written (shard, rows, items of the full grid).
    pub published: Published,
    /// Points computed in this call.
    pub computed: usize,
    /// Points taken over from the partial file.
    pub reused: usize,
    /// Points with `status` other than `ok`.
    pub skipped: usize,
}

/// `.NAME.partial` beside `output` ([`PartialFile::path_of`]).
pub fn partial_path(output: &Path) -> Result<PathBuf, SweepError> {
    Ok(PartialFile::path_of(output)?)
}

/// The sweep's identity: the definition file's path and text, the grid (values as bits) and
/// every setting that changes a row.
fn identity(path: &Path, text: &str, opts: &SweepOptions) -> String {
    let s = &opts.settings;
    let mut d = format!("sweep\n{}\n{text}\n", path.display());
    for (n, v) in &opts.grid.fixed {
        d.push_str(&format!("fixed {n} {:016x}\n", v.to_bits()));
    }
    for a in &opts.grid.axes {
        d.push_str(&format!("axis {}", a.name));
        for v in &a.values {
            d.push_str(&format!(" {:016x}", v.to_bits()));
        }
        d.push('\n');
    }
    d.push_str(&format!(
        "span {:?} transient {:?} qr {:?} exponents {:?} ics {} seed {} rtol {:016x} atol {:016x} correlation {}\n",
        s.span.map(f64::to_bits),
        s.transient.map(f64::to_bits),
        s.qr_interval.map(f64::to_bits),
        s.exponents,
        s.ics,
        s.seed,
        s.rtol.to_bits(),
        s.atol.to_bits(),
        s.correlation_points
    ));
    work_id(d.as_bytes())
}

/// The CSV row of point `k` (with its line end); `None` when interrupted.
fn row(
    sys_path: &Path,
    opts: &SweepOptions,
    k: usize,
) -> Result<Option<(String, bool)>, SweepError> {
    let mut fields: Vec<String> = opts.grid.point(k).iter().map(|v| format!("{v}")).collect();
    let sys = CompiledSystem::load(&sys_path.display().to_string(), &opts.grid.overrides(k))
        .map_err(|e| SweepError::System(e.to_string()));
    let (v, ok) = match sys {
        Err(e) => (json!({ "status": format!("skipped: {e}") }), false),
        Ok(sys) => match compute(&sys, &opts.settings) {
            Ok(inv) => {
                let mut v = serde_json::to_value(&inv)
                    .map_err(|e| SweepError::Invalid(format!("internal error: {e}")))?;
                v["status"] = json!("ok");
                (v, true)
            }
            Err(InvariantsError::Interrupted) => return Ok(None),
            Err(e) => (
                json!({ "system": sys.name(), "kind": sys.model().kind.as_str(),
                        "dimension": sys.model().dim(), "status": format!("skipped: {e}") }),
                false,
            ),
        },
    };
    fields.extend(SWEEP_COLUMNS.iter().map(|c| csv_field(&v[*c])));
    Ok(Some((format!("{}\n", fields.join(",")), ok)))
}

/// Runs the sweep (the points of `opts.shard`, in parallel) and writes `output`: the complete
/// CSV table, or the shard file for [`crate::shard::merge`]. Resumes from the partial file of
/// the same sweep (module documentation). `progress` counts points; `cancel` stops the points in
/// flight at their next check and keeps the finished ones.
pub fn run(
    output: &Path,
    opts: &SweepOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<SweepSummary, SweepError> {
    let sys_path = crate::systems::resolve_system(&opts.system)
        .map_err(|e| SweepError::System(e.to_string()))?;
    let text = std::fs::read_to_string(&sys_path)
        .map_err(|e| SweepError::System(format!("{}: {e}", sys_path.display())))?;
    // the names of the grid must be parameters of the system: refuse before any work
    CompiledSystem::load(&sys_path.display().to_string(), &opts.grid.overrides(0))
        .map_err(|e| SweepError::System(e.to_string()))?;
    crate::io::check_output_path(output)?;
    let _lock = crate::io::h5md::OutputLock::acquire(output)?;
    let total = opts.grid.len();
    let shard = opts.shard.unwrap_or(Shard::WHOLE);
    let mine = shard.items(total);
    let id = identity(&sys_path, &text, opts);
    let first_line = format!("phaseflow-sweep-partial work={id} shard={shard}\n");
    let partial = partial_path(output)?;
    let perr = |msg: String| SweepError::Partial {
        path: partial.clone(),
        msg,
    };
    let (writer, mut done) = match PartialFile::read(&partial, shard, total)? {
        Some(found) => {
            if found.first_line != first_line {
                return Err(perr(format!(
                    "the partial file of another sweep (or another shard): remove it to start afresh (expected first line '{}')",
                    first_line.trim_end()
                )));
            }
            (PartialFile::resume(&partial, &found)?, found.rows)
        }
        None => (PartialFile::create(&partial, &first_line)?, BTreeMap::new()),
    };
    let reused = done.len();
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|k| !done.contains_key(k))
        .collect();
    progress.start(mine.len() as u64, reused as u64, "points");
    let settings = InvariantSettings {
        cancel: cancel.clone(),
        ..opts.settings.clone()
    };
    let local = SweepOptions {
        settings,
        ..opts.clone()
    };
    let computed = std::sync::atomic::AtomicUsize::new(0);
    let new_rows: Vec<Result<(usize, String), SweepError>> = todo
        .par_iter()
        .filter_map(|&k| {
            if cancel.is_cancelled() {
                return None;
            }
            let r = match row(&sys_path, &local, k) {
                Ok(Some((text, _))) => text,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = writer.append(k, &r) {
                return Some(Err(e.into()));
            }
            let n = computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if opts.stop_after.is_some_and(|m| n >= m) {
                cancel.cancel();
            }
            progress.advance(1);
            Some(Ok((k, r)))
        })
        .collect();
    progress.finish();
    for r in new_rows {
        let (k, text) = r?;
        done.insert(k, text);
    }
    if cancel.is_cancelled() || done.len() < mine.len() {
        return Err(SweepError::Interrupted {
            partial,
            done: done.len(),
            total: mine.len(),
        });
    }
    let mut head: Vec<String> = opts.grid.axes.iter().map(|a| a.name.clone()).collect();
    head.extend(SWEEP_COLUMNS.iter().map(|c| c.to_string()));
    let skipped = done
        .values()
        .filter(|r| !r.trim_end().ends_with("\"ok\""))
        .count();
    let table = Table {
        command: "sweep".into(),
        work: id,
        items: total,
        head: format!("{}\n", head.join(",")),
        rows: done.into_iter().collect(),
        tail: String::new(),
    };
    let published = publish(output, &table, opts.shard)?;
    writer.remove();
    Ok(SweepSummary {
        output: output.to_path_buf(),
        published,
        computed: computed.into_inner(),
        reused,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_parse_and_points() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let g = Grid::parse(&s(&["rho=20:21:0.5", "beta=2.5", "sigma=9:10:1"])).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g.axes[0].values, vec![20.0, 20.5, 21.0]);
        assert_eq!(g.point(0), vec![20.0, 9.0]);
        assert_eq!(g.point(1), vec![20.0, 10.0]);
        assert_eq!(g.point(5), vec![21.0, 10.0]);
        assert_eq!(g.fixed, vec![("beta".to_string(), 2.5)]);
        for bad in [
            "rho=1:2:0",
            "rho=2:1:1",
            "rho=1:2:-1",
            "rho=1:inf:1",
            "rho=0:1e9:1",
            "rho=1:2",
            "rho",
        ] {
            assert!(Grid::parse(&s(&[bad])).is_err(), "{bad}");
        }
        assert!(Grid::parse(&s(&["rho=1"])).is_err(), "no axis");
        assert!(Grid::parse(&s(&["rho=1:2:1", "rho=3"])).is_err(), "twice");
        assert!(
            Grid::parse(&s(&["a=0:999:1", "b=0:999:1"])).is_err(),
            "too many"
        );
    }
}
