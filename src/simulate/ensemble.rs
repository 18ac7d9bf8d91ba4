//! Ensembles in parts: `phaseflow simulate SYSTEM --ensemble M --shard I/N` and its merge.
//!
//! Member `k` of an ensemble of `M` belongs to shard `k mod N` ([`crate::shard::Shard`]). Every
//! shard samples the same `M` initial conditions (the run's seed) and integrates its members
//! exactly as the unsharded run does (member `k` from `ics[k]`, noise stream `k`), so a member's
//! trajectory does not depend on the shard it ran in.
//!
//! An ensemble's file is assembled by one function, [`assemble`], from what the members share
//! ([`EnsembleBase`]: times, names, the root attributes but the solver's) and the members
//! ([`Member`]: states, solver statistics, methods), in member order: the unsharded run calls it
//! with all members; [`merge_ensemble`] calls it with the union of the shards' members, read
//! from their shard files (JSON Lines through [`crate::shard`]; numbers as the hexadecimal bits
//! of their `f64`, so they come back exactly). Both then write with
//! [`crate::io::write_trajectory`]: the same bytes.
//!
//! The command line (`command_line` attribute): a shard records its own with `--shard I/N`
//! removed and the value of `-o` replaced by [`OUTPUT_MARKER`]; the merged file stores that
//! command with `-o` naming the merge's output as given to `phaseflow merge`, i.e. the command
//! line of the unsharded run that writes the same file.

use super::builder::Simulated;
use super::Sampling;
use crate::integrate::SolverStats;
use crate::io::AttrValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The `command` of an ensemble's shard files.
pub const ENSEMBLE_SHARD_COMMAND: &str = "simulate --ensemble";

/// Stands for the output file in the command line a shard records (see the module
/// documentation).
pub const OUTPUT_MARKER: &str = "\u{1}phaseflow-merge-output\u{1}";

/// What every member of an ensemble shares.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleBase {
    /// Output times `[T]`.
    pub time: Vec<f64>,
    /// Component names `[D]`.
    pub variables: Vec<String>,
    /// Root attributes, without the solver (`solver`, `accepted_steps`, `rejected_steps`,
    /// `rhs_evaluations`: from the members) and without the command line.
    pub attrs: BTreeMap<String, AttrValue>,
    /// The recorded grid.
    pub sampling: Sampling,
    /// Number of members `M`.
    pub members: usize,
}

/// One member's run.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// States `[T, D]`, row-major.
    pub state: Vec<f64>,
    /// Its solver's counters.
    pub stats: SolverStats,
    /// Methods used, in order.
    pub methods: Vec<String>,
}

/// The ensemble's trajectory from its base and all its members in order: the states `[M, T,
/// D]`, the solver statistics summed over members, the methods of all members (each once, in
/// order of first use), and the root attributes.
pub fn assemble(base: &EnsembleBase, members: &[Member]) -> Simulated {
    let mut state = Vec::with_capacity(members.iter().map(|m| m.state.len()).sum());
    for m in members {
        state.extend_from_slice(&m.state);
    }
    let mut total = members
        .first()
        .map_or_else(SolverStats::default, |m| m.stats);
    for m in members.iter().skip(1) {
        total.accepted += m.stats.accepted;
        total.rejected += m.stats.rejected;
        total.rhs_evals += m.stats.rhs_evals;
    }
    let mut methods: Vec<&str> = Vec::new();
    for m in members {
        for mm in &m.methods {
            if !methods.contains(&mm.as_str()) {
                methods.push(mm);
            }
        }
    }
    let solver = methods.join(" -> ");
    let mut attrs = base.attrs.clone();
    attrs.insert("solver".into(), AttrValue::Str(solver.clone()));
    attrs.insert("accepted_steps".into(), AttrValue::U64(total.accepted));
    attrs.insert("rejected_steps".into(), AttrValue::U64(total.rejected));
    attrs.insert("rhs_evaluations".into(), AttrValue::U64(total.rhs_evals));
    Simulated {
        trajectory: crate::io::Trajectory {
            time: base.time.clone(),
            state,
            dim: base.variables.len(),
            members: members.len(),
            variables: base.variables.clone(),
            attrs,
        },
        stats: total,
        solver,
        sampling: base.sampling,
    }
}

/// `f64`s as the hexadecimal digits of their bits, 16 per value: exact, NaN included.
fn hex(v: &[f64]) -> String {
    let mut s = String::with_capacity(16 * v.len());
    for x in v {
        s.push_str(&format!("{:016x}", x.to_bits()));
    }
    s
}

fn unhex(s: &str) -> Result<Vec<f64>, String> {
    if !s.len().is_multiple_of(16) || !s.is_ascii() {
        return Err("a number array is damaged".into());
    }
    (0..s.len() / 16)
        .map(|i| {
            u64::from_str_radix(&s[16 * i..16 * (i + 1)], 16)
                .map(f64::from_bits)
                .map_err(|_| "a number array is damaged".to_string())
        })
        .collect()
}

/// An attribute in a shard file (numbers in [`hex`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Attr {
    Str(String),
    F64(String),
    I64(i64),
    U64(u64),
    F64s(String),
    I64s(Vec<i64>),
    Strs(Vec<String>),
    Bool(bool),
}

impl Attr {
    fn of(v: &AttrValue) -> Attr {
        match v {
            AttrValue::Str(s) => Attr::Str(s.clone()),
            AttrValue::F64(x) => Attr::F64(hex(&[*x])),
            AttrValue::I64(x) => Attr::I64(*x),
            AttrValue::U64(x) => Attr::U64(*x),
            AttrValue::F64s(x) => Attr::F64s(hex(x)),
            AttrValue::I64s(x) => Attr::I64s(x.clone()),
            AttrValue::Strs(x) => Attr::Strs(x.clone()),
            AttrValue::Bool(b) => Attr::Bool(*b),
        }
    }

    fn value(&self) -> Result<AttrValue, String> {
        Ok(match self {
            Attr::Str(s) => AttrValue::Str(s.clone()),
            Attr::F64(x) => {
                AttrValue::F64(*unhex(x)?.first().ok_or("a number attribute is damaged")?)
            }
            Attr::I64(x) => AttrValue::I64(*x),
            Attr::U64(x) => AttrValue::U64(*x),
            Attr::F64s(x) => AttrValue::F64s(unhex(x)?),
            Attr::I64s(x) => AttrValue::I64s(x.clone()),
            Attr::Strs(x) => AttrValue::Strs(x.clone()),
            Attr::Bool(b) => AttrValue::Bool(*b),
        })
    }
}

/// The head of an ensemble's shard files: the base and the command line template.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    time: String,
    variables: Vec<String>,
    attrs: BTreeMap<String, Attr>,
    /// points, t_start, dt_out
    points: usize,
    t_start: String,
    dt_out: String,
    members: usize,
    /// The command line with [`OUTPUT_MARKER`] for the output (see the module documentation).
    command: Option<Vec<String>>,
}

/// A row of an ensemble's shard file: one member.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    state: String,
    accepted: u64,
    rejected: u64,
    rhs_evals: u64,
    t_final: String,
    methods: Vec<String>,
}

/// The shard table of `members` (`(k, member)`, the shard's) of the ensemble `base`; `command`:
/// the command line template recorded for the merged file.
pub(super) fn shard_table(
    base: &EnsembleBase,
    members: &[(usize, Member)],
    command: Option<Vec<String>>,
) -> crate::shard::Table {
    let head = Head {
        time: hex(&base.time),
        variables: base.variables.clone(),
        attrs: base
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), Attr::of(v)))
            .collect(),
        points: base.sampling.points,
        t_start: hex(&[base.sampling.t_start]),
        dt_out: hex(&[base.sampling.dt_out]),
        members: base.members,
        command,
    };
    let head = serde_json::to_string(&head).expect("the head serialises");
    let rows = members
        .iter()
        .map(|(k, m)| {
            let row = Row {
                state: hex(&m.state),
                accepted: m.stats.accepted,
                rejected: m.stats.rejected,
                rhs_evals: m.stats.rhs_evals,
                t_final: hex(&[m.stats.t_final]),
                methods: m.methods.clone(),
            };
            (*k, serde_json::to_string(&row).expect("a row serialises"))
        })
        .collect();
    crate::shard::Table {
        command: ENSEMBLE_SHARD_COMMAND.into(),
        work: crate::shard::work_id(head.as_bytes()),
        items: base.members,
        head,
        rows,
        tail: String::new(),
    }
}

/// The command line of a shard as the template its merge fills in: `--shard I/N` (or
/// `--shard=I/N`) removed, the value of `-o`/`--output` replaced by [`OUTPUT_MARKER`].
pub fn command_template(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.iter().peekable();
    let mut first = true;
    while let Some(a) = it.next() {
        if first {
            first = false;
            out.push(a.clone());
            continue;
        }
        if a == "--" {
            out.push(a.clone());
            out.extend(it.by_ref().cloned());
            break;
        }
        if a == "--shard" {
            it.next();
            continue;
        }
        if a.starts_with("--shard=") {
            continue;
        }
        if a == "--output" {
            out.push(a.clone());
            if it.next().is_some() {
                out.push(OUTPUT_MARKER.into());
            }
            continue;
        }
        if a.starts_with("--output=") {
            out.push(format!("--output={OUTPUT_MARKER}"));
            continue;
        }
        // short options: -o FILE, -oFILE, -qo FILE, -qoFILE (-q is the only other flag)
        if let Some(cluster) = a.strip_prefix('-').filter(|c| !c.starts_with('-')) {
            if let Some(pos) = cluster.find('o') {
                if cluster[..pos].chars().all(|c| c == 'q') {
                    let rest = &cluster[pos + 1..];
                    if rest.is_empty() {
                        out.push(a.clone());
                        if it.next().is_some() {
                            out.push(OUTPUT_MARKER.into());
                        }
                    } else {
                        out.push(format!("-{}{OUTPUT_MARKER}", &cluster[..=pos]));
                    }
                    continue;
                }
            }
        }
        out.push(a.clone());
    }
    out
}

/// What [`merge_ensemble`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MergedEnsemble {
    /// Members `M`.
    pub members: usize,
    /// Frames `T`.
    pub frames: usize,
}

/// `phaseflow merge OUT SHARD…` of an ensemble: `table` is the complete table of its shards
/// ([`crate::shard::gather`]). Writes `out` as the unsharded run writes it ([`assemble`], then
/// [`crate::io::write_trajectory`]), its `command_line` the shards' command with `-o` naming
/// `out` (as given).
pub fn merge_ensemble(
    out: &Path,
    table: &crate::shard::Table,
) -> Result<MergedEnsemble, super::SimulateError> {
    use super::SimulateError;
    let bad = |e: String| SimulateError::Invalid(format!("the ensemble's shard files: {e}"));
    if table.command != ENSEMBLE_SHARD_COMMAND {
        return Err(bad(format!(
            "shards of `{}`, not of `{ENSEMBLE_SHARD_COMMAND}`",
            table.command
        )));
    }
    let head: Head = serde_json::from_str(&table.head).map_err(|e| bad(e.to_string()))?;
    let one = |s: &str| -> Result<f64, String> {
        unhex(s)?
            .first()
            .copied()
            .ok_or_else(|| "a number is damaged".to_string())
    };
    let mut attrs = BTreeMap::new();
    for (k, v) in &head.attrs {
        attrs.insert(k.clone(), v.value().map_err(&bad)?);
    }
    let base = EnsembleBase {
        time: unhex(&head.time).map_err(&bad)?,
        variables: head.variables,
        attrs,
        sampling: Sampling {
            points: head.points,
            t_start: one(&head.t_start).map_err(&bad)?,
            dt_out: one(&head.dt_out).map_err(&bad)?,
        },
        members: head.members,
    };
    let mut rows: Vec<&(usize, String)> = table.rows.iter().collect();
    rows.sort_by_key(|r| r.0);
    let mut members = Vec::with_capacity(rows.len());
    for (k, text) in rows {
        let r: Row = serde_json::from_str(text).map_err(|e| bad(format!("member {k}: {e}")))?;
        let state = unhex(&r.state).map_err(|e| bad(format!("member {k}: {e}")))?;
        if state.len() != base.time.len() * base.variables.len() {
            return Err(bad(format!(
                "member {k} has {} values, not {} × {}",
                state.len(),
                base.time.len(),
                base.variables.len()
            )));
        }
        members.push(Member {
            state,
            stats: SolverStats {
                accepted: r.accepted,
                rejected: r.rejected,
                rhs_evals: r.rhs_evals,
                t_final: one(&r.t_final).map_err(|e| bad(format!("member {k}: {e}")))?,
            },
            methods: r.methods,
        });
    }
    if members.len() != base.members {
        return Err(bad(format!(
            "{} members, not {}",
            members.len(),
            base.members
        )));
    }
    let mut sim = assemble(&base, &members);
    if let Some(cmd) = &head.command {
        let output = out.display().to_string();
        let argv: Vec<String> = cmd
            .iter()
            .map(|a| a.replace(OUTPUT_MARKER, &output))
            .collect();
        sim.trajectory.attrs.insert(
            "command_line".into(),
            AttrValue::Str(crate::shard::shell_join(&argv)),
        );
    }
    crate::io::check_output_path(out).map_err(SimulateError::Io)?;
    let frames = crate::io::write_trajectory(out, &sim.trajectory).map_err(SimulateError::Io)?;
    Ok(MergedEnsemble {
        members: base.members,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_drops_the_shard_and_marks_the_output() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let m = OUTPUT_MARKER;
        assert_eq!(
            command_template(&s(&[
                "pf", "simulate", "lorenz", "--shard", "1/3", "-o", "p1"
            ])),
            s(&["pf", "simulate", "lorenz", "-o", m])
        );
        assert_eq!(
            command_template(&s(&[
                "pf",
                "--shard=0/2",
                "--output=x",
                "-qo",
                "y",
                "-ofile"
            ])),
            s(&["pf", &format!("--output={m}"), "-qo", m, &format!("-o{m}")])
        );
        let v = vec![0.1, -2.5e300, f64::NAN, 0.0, -0.0];
        let back = unhex(&hex(&v)).unwrap();
        assert!(v.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(unhex("123").is_err());
    }
}
