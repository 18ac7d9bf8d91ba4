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
//! line of the unsharded run that writes the same file. Neither records `--resume`
//! ([`recorded_command`]).
//!
//! # Resuming
//!
//! While an ensemble (whole or a shard) is written to a file, each finished member is appended,
//! synced, to the partial file `.NAME.partial` beside it ([`crate::shard::PartialFile`], as
//! `phaseflow sweep` keeps its rows): a first line ([`PARTIAL_FORMAT`]) recording by name every
//! setting the members depend on (system, definition text, parameters, M, seed or initial
//! conditions, solver, grid, noise, shard, phaseflow version), then one line `k<TAB>row` per
//! member, the row as in shard files (exact bits). `--resume` ([`super::Run::resume`]) takes the
//! members found there when the settings are the same (a difference is refused, naming it),
//! runs the others, and writes the bytes of an uninterrupted run: members are independent
//! (member `k` from `ics[k]`, noise stream `k`), and the file is assembled from all members in
//! member order whichever run computed them. A line cut short by a kill is dropped (that member
//! runs again); without `--resume`, a partial file is refused, not overwritten. The partial file
//! is removed once the output is in place, or when a member fails (it would fail again).

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

/// A row of an ensemble's shard file or partial file: one member.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    state: String,
    accepted: u64,
    rejected: u64,
    rhs_evals: u64,
    t_final: String,
    methods: Vec<String>,
    /// The member's recorded times, where they are not the sampling's grid bit for bit (a map
    /// whose `t0` is not a whole number counts its iterations by additions); partial files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<String>,
}

/// Member `m` as a row (one line of JSON, no line end) of a shard or partial file; `time`: its
/// recorded times where they are not the grid's (see [`Row`]).
pub(super) fn member_row(m: &Member, time: Option<&[f64]>) -> String {
    let row = Row {
        state: hex(&m.state),
        accepted: m.stats.accepted,
        rejected: m.stats.rejected,
        rhs_evals: m.stats.rhs_evals,
        t_final: hex(&[m.stats.t_final]),
        methods: m.methods.clone(),
        time: time.map(hex),
    };
    serde_json::to_string(&row).expect("a row serialises")
}

/// The member of a row written by [`member_row`], with its times if the row has them; `values`:
/// the number of state values a member has (`T × D`).
pub(super) fn parse_member_row(
    text: &str,
    values: usize,
) -> Result<(Member, Option<Vec<f64>>), String> {
    let r: Row = serde_json::from_str(text.trim_end()).map_err(|e| e.to_string())?;
    let state = unhex(&r.state)?;
    if state.len() != values {
        return Err(format!("{} values, not {values}", state.len()));
    }
    let time = r.time.as_deref().map(unhex).transpose()?;
    let t_final = *unhex(&r.t_final)?
        .first()
        .ok_or_else(|| "a number is damaged".to_string())?;
    Ok((
        Member {
            state,
            stats: SolverStats {
                accepted: r.accepted,
                rejected: r.rejected,
                rhs_evals: r.rhs_evals,
                t_final,
            },
            methods: r.methods,
        },
        time,
    ))
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
        .map(|(k, m)| (*k, member_row(m, None)))
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

/// The `format` of an ensemble's partial file (its first line).
pub const PARTIAL_FORMAT: &str = "phaseflow-ensemble-partial";

/// The first line of an ensemble's partial file: the settings that make its members what they
/// are, by name (as on the command line) and value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartialHead {
    format: String,
    version: u32,
    settings: Vec<(String, String)>,
}

/// The first line (with its line end) of the partial file of an ensemble run with `settings`.
pub(super) fn partial_first_line(settings: &[(String, String)]) -> String {
    let head = PartialHead {
        format: PARTIAL_FORMAT.into(),
        version: 1,
        settings: settings.to_vec(),
    };
    format!(
        "{}\n",
        serde_json::to_string(&head).expect("the head serialises")
    )
}

/// How the settings recorded in a partial file's `first_line` differ from `settings` (this
/// run's), each difference named: empty when they are the same. Fails when `first_line` is not
/// that of an ensemble's partial file.
pub(super) fn settings_differences(
    first_line: &str,
    settings: &[(String, String)],
) -> Result<Vec<String>, String> {
    let head: PartialHead = serde_json::from_str(first_line.trim_end())
        .ok()
        .filter(|h: &PartialHead| h.format == PARTIAL_FORMAT && h.version == 1)
        .ok_or_else(|| {
            "not the partial file of an ensemble (of this phaseflow version)".to_string()
        })?;
    let recorded: BTreeMap<&str, &str> = head
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::new();
    for (k, v) in settings {
        match recorded.get(k.as_str()) {
            None => out.push(format!("{k} is not recorded in it")),
            Some(r) if r == v => {}
            Some(_) if k == "definition" => {
                out.push("the definition file's text has changed since".into())
            }
            Some(r) => out.push(format!("{k} is {v} here but {r} in it")),
        }
    }
    Ok(out)
}

/// The command line an ensemble's output records: `argv` without `--resume` and the testing
/// aid `--abort-after-members K`, so that a resumed run records the command of the
/// uninterrupted run that writes the same file.
pub fn recorded_command(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(it.by_ref().cloned());
            break;
        }
        if a == "--resume" || a.starts_with("--abort-after-members=") {
            continue;
        }
        if a == "--abort-after-members" {
            it.next();
            continue;
        }
        out.push(a.clone());
    }
    out
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
    let values = base.time.len() * base.variables.len();
    for (k, text) in rows {
        let (member, _) =
            parse_member_row(text, values).map_err(|e| bad(format!("member {k}: {e}")))?;
        members.push(member);
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

    #[test]
    fn recorded_command_drops_resume_and_the_abort_aid() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            recorded_command(&s(&[
                "pf",
                "simulate",
                "--resume",
                "lorenz",
                "--abort-after-members",
                "2",
                "--abort-after-members=3",
                "-o",
                "x",
                "--",
                "--resume"
            ])),
            s(&["pf", "simulate", "lorenz", "-o", "x", "--", "--resume"])
        );
    }

    #[test]
    fn member_rows_and_partial_heads_round_trip() {
        let m = Member {
            state: vec![0.1, -0.0, f64::NAN, 3e300],
            stats: SolverStats {
                accepted: 3,
                rejected: 1,
                rhs_evals: 40,
                t_final: 2.5,
            },
            methods: vec!["dop853".into(), "rosenbrock".into()],
        };
        let text = member_row(&m, Some(&[0.5, 1.5]));
        assert!(!text.contains('\n'));
        let (back, time) = parse_member_row(&text, 4).unwrap();
        assert_eq!(time, Some(vec![0.5, 1.5]));
        assert!(back
            .state
            .iter()
            .zip(&m.state)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!((back.stats, &back.methods), (m.stats, &m.methods));
        assert!(parse_member_row(&member_row(&m, None), 4)
            .unwrap()
            .1
            .is_none());
        assert!(parse_member_row(&text, 5).is_err());
        let set = |seed: &str| {
            vec![
                ("--seed".to_string(), seed.to_string()),
                ("definition".to_string(), "1".to_string()),
            ]
        };
        let line = partial_first_line(&set("4"));
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        assert!(settings_differences(&line, &set("4")).unwrap().is_empty());
        assert_eq!(
            settings_differences(&line, &set("5")).unwrap(),
            vec!["--seed is 5 here but 4 in it".to_string()]
        );
        assert!(settings_differences("phaseflow-sweep-partial work=1\n", &set("4")).is_err());
    }
}
