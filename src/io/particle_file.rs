//! Particle files in either format, told apart by their content (magic numbers, not names):
//! H5MD ([`super::h5md`]: phaseflow's own, `f64`, resumable) and GSD ([`super::gsd`]: the HOOMD
//! schema that HOOMD-blue, OVITO and freud read; `f32` particle data, an export). The readers of
//! particle data (`phaseflow plot`, `epr --data`, score training and evaluation) call
//! [`read_particle_frame`] and [`read_particle_samples`] here, and [`export`] converts between
//! the two (`phaseflow export`, and the GSD output of `phaseflow simulate`).
//!
//! # GSD layout written by phaseflow
//!
//! One GSD frame per recorded frame and replica, replica-major: frame `j = r·F + k` is frame `k`
//! of replica `r` (M replicas of F frames; one replica: the frames in order).
//!
//! | chunk | type, shape | frames | content |
//! |---|---|---|---|
//! | `configuration/step` | `u64` 1×1 | all | the step |
//! | `configuration/dimensions` | `u8` 1×1 | 0 | d (2 or 3) |
//! | `configuration/box` | `f32` 6×1 | 0 | [L, L, L or 0 (2-D), 0, 0, 0] |
//! | `particles/N` | `u32` 1×1 | 0 | N |
//! | `particles/types`, `particles/typeid` | `i8` T×W, `u32` N×1 | 0 | `active`, and `fixed` for the last `n_fixed` particles |
//! | `particles/position` | `f32` N×3 | all | wrapped positions in [−L/2, L/2) (z = 0 in 2-D) |
//! | `particles/image` | `i32` N×3 | all | box crossings (unwrapped = position + image·L) |
//! | `particles/orientation` | `f32` N×4 | all | ABP: quaternions rotating (1, 0, 0) onto the orientation ([`super::gsd::quaternion_from_unit`]) |
//! | `log/particles/phaseflow/self_propulsion` | `f64` N×d | all | AOUP: the self-propulsion g |
//! | `log/phaseflow/time` | `f64` 1×1 | all | t = step·Δt |
//! | `log/phaseflow/replica` | `u32` 1×1 | all | r |
//! | `log/phaseflow/<observable>` | `f64` 1×1 | all | the per-frame observables of the H5MD file (`msd`, `…_autocorrelation`, `largest_cluster_fraction`) of replica r |
//! | `phaseflow/analysis/<name>/<dataset>` | `f64` K×1 | 0 | the time-independent results of the H5MD file (g(r), the packing histogram: `/analysis`, or groups of `/observables` in files of the earlier layout) |
//! | `phaseflow/metadata` | `u8` B×1 | 0 | UTF-8 JSON: `format` = `"phaseflow-gsd"`, `format_version`, `replicas`, `frames`, `particles`, `dimension`, `box_edges` (`f64`), `propulsion`, `n_fixed`, `parameters` (every attribute of `/parameters`, typed) |
//!
//! What GSD loses against H5MD: positions and orientations are rounded to `f32` (the box edge
//! and everything else keep their `f64` values); 1-D systems have no GSD form. A GSD file
//! converted back ([`export`]) gives the H5MD file with those roundings. GSD files from other
//! programs are read as one replica, with the orientation (if any) as the propulsion and time =
//! step·`dt` (the step where no `dt` is known).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::gsd::{self, GsdFile, GsdWriter};
use super::h5md::{self, GroupLayout, H5mdWriter, OutputLock, ParticleFrame, ParticleSamples};
use super::{AttrValue, IoError, Result};

/// The two particle file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticleFormat {
    H5md,
    Gsd,
}

impl std::fmt::Display for ParticleFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParticleFormat::H5md => "H5MD",
            ParticleFormat::Gsd => "GSD",
        })
    }
}

/// `format` of the metadata chunk of GSD files phaseflow writes.
pub const GSD_METADATA_FORMAT: &str = "phaseflow-gsd";
/// `format_version` of that metadata.
pub const GSD_METADATA_VERSION: u64 = 1;
const META: &str = "phaseflow/metadata";
const FIXED_PREFIX: &str = "phaseflow/analysis/";
const LOG_PREFIX: &str = "log/phaseflow/";
const LOG_TIME: &str = "log/phaseflow/time";
const LOG_REPLICA: &str = "log/phaseflow/replica";
const LOG_G: &str = "log/particles/phaseflow/self_propulsion";

/// The format of the particle file at `path` by its content: GSD (magic number) or H5MD (an
/// HDF5 file with a `/h5md` group); None for anything else (a flow trajectory, another file, no
/// file).
pub fn particle_format(path: &Path) -> Option<ParticleFormat> {
    if gsd::is_gsd(path) {
        Some(ParticleFormat::Gsd)
    } else if super::is_hdf5(path) && h5md::is_h5md(path) {
        Some(ParticleFormat::H5md)
    } else {
        None
    }
}

/// Whether `path` is a particle file of either format.
pub fn is_particle_file(path: &Path) -> bool {
    particle_format(path).is_some()
}

/// The format an output path asks for by its extension: `.gsd` → GSD; `.h5`, `.h5md`, `.hdf5`,
/// `.hdf` → H5MD (case-insensitive); None otherwise.
pub fn format_of_name(path: &Path) -> Option<ParticleFormat> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "gsd" => Some(ParticleFormat::Gsd),
        "h5" | "h5md" | "hdf5" | "hdf" => Some(ParticleFormat::H5md),
        _ => None,
    }
}

/// Frame `frame` (negative: from the end, −1 = last) of the first replica of a particle file of
/// either format.
pub fn read_particle_frame(path: &Path, frame: i64) -> Result<ParticleFrame> {
    match particle_format(path) {
        Some(ParticleFormat::Gsd) => GsdParticles::open(path)?.particle_frame(frame),
        _ => h5md::read_particle_frame(path, frame),
    }
}

/// Every frame of every replica of a particle file of either format.
pub fn read_particle_samples(path: &Path) -> Result<ParticleSamples> {
    match particle_format(path) {
        Some(ParticleFormat::Gsd) => GsdParticles::open(path)?.samples(),
        _ => h5md::read_particle_samples(path),
    }
}

/// What [`export`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportSummary {
    pub input: PathBuf,
    pub output: PathBuf,
    pub from: ParticleFormat,
    pub to: ParticleFormat,
    pub replicas: usize,
    /// Frames per replica.
    pub frames: usize,
    pub particles: usize,
    pub dimension: usize,
    /// What the output format cannot hold, in words (empty: nothing but the rounding of
    /// positions and orientations to `f32` in GSD).
    pub dropped: Vec<String>,
}

/// Converts the particle file `input` (H5MD or GSD, told by content) into `output` in the other
/// format (told by `output`'s extension, [`format_of_name`]): H5MD → GSD writes the layout of
/// the module docs, GSD → H5MD the layout of `phaseflow simulate` as far as the GSD file holds
/// it. The output appears atomically (temporary name, then rename) and one process at a time
/// writes it ([`OutputLock`]); an output that exists and is not a regular file is refused.
pub fn export(input: &Path, output: &Path) -> Result<ExportSummary> {
    let from = particle_format(input).ok_or_else(|| {
        let why = match std::fs::metadata(input) {
            Err(e) => format!("cannot be read ({e})"),
            Ok(m) if !m.is_file() => "not a regular file".into(),
            Ok(_) => "neither a GSD file nor an H5MD particle file (as phaseflow simulate writes for particle models)".into(),
        };
        IoError::invalid(input, why)
    })?;
    let to = format_of_name(output).ok_or_else(|| {
        IoError::invalid(
            output,
            "cannot tell the output format from the name: end it in .gsd (GSD) or .h5 / .h5md (H5MD)",
        )
    })?;
    if from == to {
        return Err(IoError::invalid(
            input,
            format!("already {from}: export converts H5MD to GSD and GSD to H5MD (name the output .gsd or .h5)"),
        ));
    }
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(IoError::invalid(output, "the output is the input file"));
        }
    }
    super::check_destination(output)?;
    let lock = OutputLock::acquire(output)?;
    match to {
        ParticleFormat::Gsd => h5md_to_gsd(input, &lock),
        ParticleFormat::H5md => gsd_to_h5md(input, &lock),
    }
}

/// Writes the GSD file of the H5MD particle file `input` to the destination `lock` guards
/// (atomically; see [`export`]).
pub fn h5md_to_gsd(input: &Path, lock: &OutputLock) -> Result<ExportSummary> {
    let output = lock.path();
    let src = H5mdSource::open(input)?;
    let tmp = super::temp_path_for(output, ".partial", "")?;
    super::remove_stale_temporaries(output, ".partial", "");
    let written = write_gsd(&src, &tmp);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        // an error about the temporary file is one about the output
        return Err(match e {
            IoError::Fs { op, err, .. } => IoError::fs(output, op, err),
            IoError::Invalid { msg, .. } => IoError::invalid(output, msg),
            other => other,
        });
    }
    super::commit_file(&tmp, output)?;
    Ok(ExportSummary {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        from: ParticleFormat::H5md,
        to: ParticleFormat::Gsd,
        replicas: src.groups.len(),
        frames: src.frames,
        particles: src.n,
        dimension: src.d,
        dropped: src.dropped.clone(),
    })
}

/// Writes the H5MD file of the GSD file `input` to the destination `lock` guards (atomically;
/// see [`export`]).
pub fn gsd_to_h5md(input: &Path, lock: &OutputLock) -> Result<ExportSummary> {
    let mut g = GsdParticles::open(input)?;
    let (m, f, n, d, c) = (g.replicas, g.frames, g.n, g.dim, g.components);
    let layouts: Vec<GroupLayout> = (0..m)
        .map(|r| GroupLayout {
            name: if m == 1 {
                "all".into()
            } else {
                format!("replica_{r}")
            },
            n,
            dim: d,
            propulsion: (g.propulsion_name.clone(), c),
        })
        .collect();
    let mut parameters = g.parameters.clone();
    if !g.phaseflow {
        parameters.push((
            "converted_from".into(),
            AttrValue::Str(format!("GSD file {}", input.display())),
        ));
    }
    let mut dropped = Vec::new();
    let series: Vec<String> = g
        .series
        .iter()
        .filter(|s| {
            let keep = !s.contains('/');
            if !keep {
                dropped.push(format!("log/phaseflow/{s} (a nested name)"));
            }
            keep
        })
        .cloned()
        .collect();
    let mut w = H5mdWriter::create(lock, &layouts, g.edges[0], "phaseflow user", &parameters)?;
    let result = (|| -> Result<()> {
        let mut values = vec![0.0; m];
        for k in 0..f {
            let mut first = None;
            for r in 0..m {
                let fr = g.frame(r, k)?;
                w.push_frame(r, fr.step, fr.time, &fr.x, &fr.image, &fr.g)?;
                first.get_or_insert((fr.step, fr.time));
            }
            let (step, time) = first.expect("at least one replica");
            for s in &series {
                for (r, v) in values.iter_mut().enumerate() {
                    *v = g.series_value(r, k, s)?;
                }
                w.push_observable(s, step, time, &values)?;
            }
            w.end_frame()?;
        }
        let fixed = g.fixed()?;
        let mut by_name: BTreeMap<&str, Vec<(&str, &[f64])>> = BTreeMap::new();
        for (name, ds, v) in &fixed {
            by_name.entry(name).or_default().push((ds, v));
        }
        for (name, data) in by_name {
            write_average(&mut w, name, &data)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            w.finish()?;
        }
        Err(e) => {
            w.discard();
            return Err(e);
        }
    }
    if !g.phaseflow {
        dropped.push("not written by phaseflow: no model parameters or definition".into());
    }
    Ok(ExportSummary {
        input: input.to_path_buf(),
        output: lock.path().to_path_buf(),
        from: ParticleFormat::Gsd,
        to: ParticleFormat::H5md,
        replicas: m,
        frames: f,
        particles: n,
        dimension: d,
        dropped,
    })
}

/// Writes a time-independent result (`radial_distribution` {r, value}, …) of an H5MD file being
/// written, where the H5MD writer puts such results.
fn write_average(w: &mut H5mdWriter, name: &str, data: &[(&str, &[f64])]) -> Result<()> {
    w.write_average(name, data)
}

/// An H5MD particle file opened for a frame-by-frame conversion: the particle datasets of every
/// replica group, and the small things (steps, times, observables, parameters) in memory.
struct H5mdSource {
    path: PathBuf,
    groups: Vec<[hdf5::Dataset; 3]>,
    frames: usize,
    n: usize,
    d: usize,
    c: usize,
    propulsion: String,
    step: Vec<i64>,
    time: Vec<f64>,
    edge: f64,
    /// Per-frame observables, [T, M] row-major.
    series: Vec<(String, Vec<f64>)>,
    /// Time-independent observables: (observable, dataset, values).
    fixed: Vec<(String, String, Vec<f64>)>,
    parameters: Vec<(String, AttrValue)>,
    dropped: Vec<String>,
    _file: hdf5::File,
}

impl H5mdSource {
    fn open(path: &Path) -> Result<H5mdSource> {
        super::probe_hdf5(path)?;
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
        let file = super::trajectory::open_read(path).map_err(|e| err("open", e))?;
        let particles = file.group("particles").map_err(|_| {
            IoError::invalid(path, "no /particles group: not an H5MD particle file")
        })?;
        let names = h5md::replica_groups(&particles, path)?;
        let mut groups = Vec::new();
        let mut shape: Option<(usize, usize, usize, usize)> = None;
        let mut propulsion = String::new();
        let mut step = Vec::new();
        let mut time = Vec::new();
        let mut edge = f64::NAN;
        for name in &names {
            let grp = particles
                .group(name)
                .map_err(|e| err(&format!("open /particles/{name}"), e))?;
            let ds = |el: &str| {
                grp.dataset(&format!("{el}/value"))
                    .map_err(|e| err(&format!("open /particles/{name}/{el}/value"), e))
            };
            let (prop_name, prop) = match ds("self_propulsion") {
                Ok(p) => ("self_propulsion", p),
                Err(_) => ("orientation", ds("orientation")?),
            };
            let (pos, image) = (ds("position")?, ds("image")?);
            let ps = pos.shape();
            let cs = prop.shape();
            if ps.len() != 3 || image.shape() != ps || cs.len() != 3 || cs[..2] != ps[..2] {
                return Err(IoError::invalid(
                    path,
                    format!("/particles/{name}: position, image and {prop_name} are not [T, N, d] of one T and N"),
                ));
            }
            let s = (ps[0], ps[1], ps[2], cs[2]);
            match shape {
                None => {
                    shape = Some(s);
                    propulsion = prop_name.into();
                    step = grp
                        .dataset("position/step")
                        .and_then(|d| d.read_raw())
                        .map_err(|e| err("read position/step", e))?;
                    time = grp
                        .dataset("position/time")
                        .and_then(|d| d.read_raw())
                        .map_err(|e| err("read position/time", e))?;
                    // box edges: time-independent [d], or a time series {value [T, d]}
                    let edges: Vec<f64> = grp
                        .dataset("box/edges")
                        .or_else(|_| grp.dataset("box/edges/value"))
                        .and_then(|d| d.read_raw())
                        .map_err(|e| err("read box/edges", e))?;
                    let first = edges.get(..s.2).unwrap_or(&[]);
                    if first.is_empty()
                        || first.iter().any(|v| *v != first[0])
                        || !first[0].is_finite()
                        || first[0] <= 0.0
                    {
                        return Err(IoError::invalid(
                            path,
                            format!("box edges {first:?}: phaseflow's periodic boxes are cubic, of a positive edge"),
                        ));
                    }
                    edge = first[0];
                }
                Some(t) if t != s || prop_name != propulsion => {
                    return Err(IoError::invalid(
                        path,
                        format!("particle group {name} has a different shape from the first"),
                    ))
                }
                Some(_) => {}
            }
            groups.push([pos, image, prop]);
        }
        let (frames, n, d, c) = shape.expect("at least one group");
        if step.len() != frames || time.len() != frames {
            return Err(IoError::invalid(
                path,
                format!(
                    "position/step and position/time hold {} and {} values for {frames} frames",
                    step.len(),
                    time.len()
                ),
            ));
        }
        if !(2..=3).contains(&d) {
            return Err(IoError::invalid(
                path,
                format!("a {d}-D system: GSD (the HOOMD schema) holds 2-D and 3-D systems only"),
            ));
        }
        let m = groups.len();
        let mut series = Vec::new();
        let mut fixed = Vec::new();
        let mut dropped = Vec::new();
        // time-independent results: /analysis (H5MD files of the current layout) or groups of
        // plain datasets in /observables (the earlier layout)
        if let Ok(an) = file.group("analysis") {
            scan_observables(
                &an,
                "",
                (frames, m),
                path,
                &mut series,
                &mut fixed,
                &mut dropped,
            )?;
        }
        if let Ok(obs) = file.group("observables") {
            scan_observables(
                &obs,
                "",
                (frames, m),
                path,
                &mut series,
                &mut fixed,
                &mut dropped,
            )?;
        }
        let mut parameters = Vec::new();
        if let Ok(pg) = file.group("parameters") {
            let mut attrs = pg.attr_names().map_err(|e| err("list /parameters", e))?;
            attrs.sort();
            for a in attrs {
                match super::trajectory::read_attr(&pg, &a) {
                    Ok(Some(v)) => parameters.push((a, v)),
                    _ => dropped.push(format!(
                        "/parameters@{a} (a type GSD's metadata does not hold)"
                    )),
                }
            }
        }
        Ok(H5mdSource {
            path: path.to_path_buf(),
            groups,
            frames,
            n,
            d,
            c,
            propulsion,
            step,
            time,
            edge,
            series,
            fixed,
            parameters,
            dropped,
            _file: file,
        })
    }

    /// Positions, images and propulsion of frame `k` of replica `r`.
    fn frame(&self, r: usize, k: usize) -> Result<(Vec<f64>, Vec<i32>, Vec<f64>)> {
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(&self.path, op, e);
        let [pos, image, prop] = &self.groups[r];
        let x: ndarray::Array3<f64> = pos
            .read_slice((k..k + 1, .., ..))
            .map_err(|e| err("read position", e))?;
        let im: ndarray::Array3<i32> = image
            .read_slice((k..k + 1, .., ..))
            .map_err(|e| err("read image", e))?;
        let g: ndarray::Array3<f64> = prop
            .read_slice((k..k + 1, .., ..))
            .map_err(|e| err(&format!("read {}", self.propulsion), e))?;
        Ok((
            x.iter().copied().collect(),
            im.iter().copied().collect(),
            g.iter().copied().collect(),
        ))
    }

    fn parameter_u64(&self, name: &str) -> Option<u64> {
        self.parameters
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| match v {
                AttrValue::U64(u) => Some(*u),
                AttrValue::I64(i) => u64::try_from(*i).ok(),
                AttrValue::F64(x) if *x >= 0.0 && x.fract() == 0.0 => Some(*x as u64),
                _ => None,
            })
    }
}

/// Sorts the members of an observables group (`prefix`: its path below `/observables`):
/// elements `{step, time, value}` with value [T, M] (or [T] for one replica) are per-frame
/// series, plain 1-D datasets time-independent observables; the rest is listed in `dropped`.
fn scan_observables(
    g: &hdf5::Group,
    prefix: &str,
    (frames, m): (usize, usize),
    path: &Path,
    series: &mut Vec<(String, Vec<f64>)>,
    fixed: &mut Vec<(String, String, Vec<f64>)>,
    dropped: &mut Vec<String>,
) -> Result<()> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let mut members = g.member_names().map_err(|e| err("list /observables", e))?;
    members.sort();
    for name in members {
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if let Ok(sub) = g.group(&name) {
            if let (Ok(value), true) = (sub.dataset("value"), sub.link_exists("step")) {
                let s = value.shape();
                let per_replica = (s.len() == 2 && s[0] == frames && s[1] == m)
                    || (s.len() == 1 && s[0] == frames && m == 1);
                if per_replica {
                    let v: Vec<f64> = value
                        .read_raw()
                        .map_err(|e| err(&format!("read /observables/{full}"), e))?;
                    series.push((full, v));
                } else {
                    dropped.push(format!(
                        "/observables/{full} (a time series of shape {s:?}, not one value per frame and replica)"
                    ));
                }
                continue;
            }
            // a group of time-independent datasets (or of further groups)
            let mut inner = sub
                .member_names()
                .map_err(|e| err("list an observable", e))?;
            inner.sort();
            let mut nested = false;
            for ds in inner {
                match sub.dataset(&ds) {
                    Ok(d) if d.ndim() == 1 => {
                        let v: Vec<f64> = d
                            .read_raw()
                            .map_err(|e| err(&format!("read /observables/{full}/{ds}"), e))?;
                        fixed.push((full.clone(), ds, v));
                    }
                    Ok(d) => dropped.push(format!(
                        "/observables/{full}/{ds} (a dataset of shape {:?})",
                        d.shape()
                    )),
                    Err(_) => nested = true,
                }
            }
            if nested {
                scan_observables(&sub, &full, (frames, m), path, series, fixed, dropped)?;
            }
        } else {
            dropped.push(format!(
                "/observables/{full} (a dataset outside an element group)"
            ));
        }
    }
    Ok(())
}

/// The JSON form of an attribute (None: not representable, e.g. a non-finite number).
fn attr_json(v: &AttrValue) -> Option<Value> {
    let num = |x: f64| serde_json::Number::from_f64(x).map(Value::Number);
    Some(match v {
        AttrValue::Str(s) => json!(s),
        AttrValue::F64(x) => num(*x)?,
        AttrValue::I64(i) => json!(i),
        AttrValue::U64(u) => json!(u),
        AttrValue::Bool(b) => json!(b),
        AttrValue::F64s(v) => Value::Array(v.iter().map(|x| num(*x)).collect::<Option<_>>()?),
        AttrValue::I64s(v) => json!(v),
        AttrValue::Strs(v) => json!(v),
    })
}

/// The attribute of a JSON value written by [`attr_json`] (integers stay integers: serde_json
/// writes every `f64` with a fraction or exponent).
fn json_attr(v: &Value) -> Option<AttrValue> {
    Some(match v {
        Value::String(s) => AttrValue::Str(s.clone()),
        Value::Bool(b) => AttrValue::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                AttrValue::U64(u)
            } else if let Some(i) = n.as_i64() {
                AttrValue::I64(i)
            } else {
                AttrValue::F64(n.as_f64()?)
            }
        }
        Value::Array(a) if a.iter().all(|x| x.is_string()) && !a.is_empty() => AttrValue::Strs(
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect(),
        ),
        Value::Array(a) => AttrValue::F64s(a.iter().map(|x| x.as_f64()).collect::<Option<_>>()?),
        _ => return None,
    })
}

/// `x` (in [−L/2, L/2)) as an `f32` in [−L₃₂/2, L₃₂/2) for the box edge L₃₂ stored in the file:
/// rounding must not put a particle on or beyond the box face, where HOOMD-blue refuses it.
fn position_f32(x: f64, half: f32) -> f32 {
    let p = x as f32;
    if p >= half {
        f32::from_bits(half.to_bits() - 1)
    } else if p < -half {
        -half
    } else {
        p
    }
}

/// Writes the GSD file of `src` to `tmp` (see the module docs).
fn write_gsd(src: &H5mdSource, tmp: &Path) -> Result<()> {
    let (m, f, n, d, c) = (src.groups.len(), src.frames, src.n, src.d, src.c);
    let application = format!("phaseflow {}", env!("CARGO_PKG_VERSION"));
    let mut w = GsdWriter::create(
        tmp,
        &application,
        gsd::HOOMD_SCHEMA,
        gsd::HOOMD_SCHEMA_VERSION,
    )?;
    let n_fixed = (src.parameter_u64("n_fixed").unwrap_or(0) as usize).min(n);
    let params: serde_json::Map<String, Value> = src
        .parameters
        .iter()
        .filter_map(|(k, v)| attr_json(v).map(|j| (k.clone(), j)))
        .collect();
    let meta = json!({
        "format": GSD_METADATA_FORMAT,
        "format_version": GSD_METADATA_VERSION,
        "replicas": m,
        "frames": f,
        "particles": n,
        "dimension": d,
        "box_edges": vec![src.edge; d],
        "propulsion": src.propulsion,
        "n_fixed": n_fixed,
        "parameters": params,
    });
    let meta = serde_json::to_vec(&meta).expect("JSON of plain values");
    let l32 = src.edge as f32;
    let half = l32 / 2.0;
    let nn = n as u64;
    let mut pos32 = vec![0f32; 3 * n];
    let mut img = vec![0i32; 3 * n];
    let mut quat = vec![0f32; 4 * n];
    let abp = src.propulsion == "orientation";
    for r in 0..m {
        for k in 0..f {
            let (x, image, g) = src.frame(r, k)?;
            w.write("configuration/step", 1, 1, &[src.step[k].max(0) as u64])?;
            if r == 0 && k == 0 {
                w.write("configuration/dimensions", 1, 1, &[d as u8])?;
                let lz = if d == 3 { l32 } else { 0.0 };
                w.write("configuration/box", 6, 1, &[l32, l32, lz, 0.0, 0.0, 0.0])?;
                w.write("particles/N", 1, 1, &[n as u32])?;
                let types: &[&str] = if n_fixed > 0 {
                    &["active", "fixed"]
                } else {
                    &["active"]
                };
                let width = types.iter().map(|t| t.len()).max().unwrap_or(0) + 1;
                let mut tb = vec![0i8; types.len() * width];
                for (i, t) in types.iter().enumerate() {
                    for (j, b) in t.bytes().enumerate() {
                        tb[i * width + j] = b as i8;
                    }
                }
                w.write("particles/types", types.len() as u64, width as u32, &tb)?;
                let typeid: Vec<u32> = (0..n).map(|i| u32::from(i >= n - n_fixed)).collect();
                w.write("particles/typeid", nn, 1, &typeid)?;
                w.write(META, meta.len() as u64, 1, &meta)?;
                for (name, ds, v) in &src.fixed {
                    w.write(&format!("{FIXED_PREFIX}{name}/{ds}"), v.len() as u64, 1, v)?;
                }
            }
            for i in 0..n {
                for a in 0..d {
                    pos32[3 * i + a] = position_f32(x[d * i + a], half);
                    img[3 * i + a] = image[d * i + a];
                }
            }
            w.write("particles/position", nn, 3, &pos32)?;
            w.write("particles/image", nn, 3, &img)?;
            if abp {
                for i in 0..n {
                    let mut u = [0.0; 3];
                    u[..c.min(3)].copy_from_slice(&g[c * i..c * i + c.min(3)]);
                    let q = gsd::quaternion_from_unit(u);
                    for (a, v) in q.iter().enumerate() {
                        quat[4 * i + a] = *v as f32;
                    }
                }
                w.write("particles/orientation", nn, 4, &quat)?;
            } else {
                w.write(LOG_G, nn, c as u32, &g)?;
            }
            w.write(LOG_TIME, 1, 1, &[src.time[k]])?;
            w.write(LOG_REPLICA, 1, 1, &[r as u32])?;
            for (name, v) in &src.series {
                w.write(&format!("{LOG_PREFIX}{name}"), 1, 1, &[v[k * m + r]])?;
            }
            w.end_frame()?;
        }
    }
    w.finish()?;
    Ok(())
}

/// One frame of one replica read from a GSD file, in phaseflow's terms.
struct GsdFrame {
    step: u64,
    time: f64,
    /// Positions N·d, images N·d, propulsion N·c.
    x: Vec<f64>,
    image: Vec<i32>,
    g: Vec<f64>,
}

/// A GSD file read as phaseflow particle data (see the module docs).
struct GsdParticles {
    file: GsdFile,
    /// Written by phaseflow (has the metadata chunk).
    phaseflow: bool,
    replicas: usize,
    frames: usize,
    n: usize,
    dim: usize,
    edges: Vec<f64>,
    propulsion_name: String,
    components: usize,
    parameters: Vec<(String, AttrValue)>,
    /// Names of the per-frame scalar series (`log/phaseflow/<name>`, but time and replica).
    series: Vec<String>,
    dt: Option<f64>,
}

impl GsdParticles {
    fn open(path: &Path) -> Result<GsdParticles> {
        let mut file = GsdFile::open(path)?;
        let bad = |msg: String| IoError::invalid(path, format!("GSD file: {msg}"));
        if file.header.schema != gsd::HOOMD_SCHEMA {
            return Err(bad(format!(
                "schema '{}', not 'hoomd' (HOOMD-blue's): not a particle trajectory",
                file.header.schema
            )));
        }
        if !(1..=2).contains(&file.header.schema_version.0) {
            return Err(bad(format!(
                "HOOMD schema version {}.{} (1.x and 2.x are read)",
                file.header.schema_version.0, file.header.schema_version.1
            )));
        }
        let total = file.frames();
        if total == 0 {
            return Err(bad("the file holds no frame".into()));
        }
        let meta: Option<Value> = match file.find(0, META).copied() {
            Some(e) => {
                let b = file.read::<u8>(&e)?;
                let v: Value = serde_json::from_slice(&b)
                    .map_err(|e| bad(format!("{META} is not JSON: {e}")))?;
                if v["format"] != GSD_METADATA_FORMAT {
                    return Err(bad(format!("{META}: format {} unknown", v["format"])));
                }
                Some(v)
            }
            None => None,
        };
        let n = match file.read_shaped(0, "particles/N", 1, 1)? {
            Some(v) => v[0] as usize,
            None => 0,
        };
        if n == 0 {
            return Err(bad("frame 0 holds no particles (particles/N = 0)".into()));
        }
        let bx = file
            .read_shaped(0, "configuration/box", 6, 1)?
            .unwrap_or_else(|| vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        let dim = match file.read_shaped(0, "configuration/dimensions", 1, 1)? {
            Some(v) => v[0] as usize,
            None if bx[2] == 0.0 => 2,
            None => 3,
        };
        if !(2..=3).contains(&dim) {
            return Err(bad(format!("configuration/dimensions = {dim} (2 or 3)")));
        }
        let m_u = |k: &str| meta.as_ref().and_then(|v| v[k].as_u64());
        let (replicas, frames) = match (m_u("replicas"), m_u("frames")) {
            (Some(m), Some(f)) if m >= 1 && m.checked_mul(f) == Some(total) => {
                (m as usize, f as usize)
            }
            (Some(m), Some(f)) => {
                return Err(bad(format!(
                    "{total} frames, but its metadata says {m} replicas of {f} frames"
                )))
            }
            _ => (1, total as usize),
        };
        if let Some(md) = m_u("dimension") {
            if md as usize != dim || m_u("particles") != Some(n as u64) {
                return Err(bad(format!(
                    "the metadata ({md}-D, {:?} particles) does not match the frames ({dim}-D, {n} particles)",
                    m_u("particles")
                )));
            }
        }
        let edges: Vec<f64> = match meta.as_ref().map(|v| &v["box_edges"]) {
            Some(Value::Array(a)) if a.len() == dim => {
                a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
            }
            _ => bx[..dim].to_vec(),
        };
        let tilt = bx[3..].iter().any(|t| *t != 0.0);
        if tilt
            || edges
                .iter()
                .any(|e| *e != edges[0] || e.is_nan() || *e <= 0.0)
        {
            return Err(bad(format!(
                "box {:?}: phaseflow reads cubic boxes only (equal positive edges, no tilt)",
                &bx[..]
            )));
        }
        let aoup = file.find(0, LOG_G).copied();
        let (propulsion_name, components) = match aoup {
            Some(e) if e.n == n as u64 => ("self_propulsion".to_string(), e.m as usize),
            _ => ("orientation".to_string(), dim),
        };
        let mut parameters = Vec::new();
        if let Some(Value::Object(p)) = meta.as_ref().map(|v| &v["parameters"]) {
            for (k, v) in p {
                if let Some(a) = json_attr(v) {
                    parameters.push((k.clone(), a));
                }
            }
        }
        let dt = parameters
            .iter()
            .find(|(k, _)| k == "dt")
            .and_then(|(_, v)| match v {
                AttrValue::F64(x) => Some(*x),
                _ => None,
            });
        let series = file
            .names()
            .iter()
            .filter_map(|s| s.strip_prefix(LOG_PREFIX))
            .filter(|s| *s != "time" && *s != "replica")
            .filter(|s| file.find(0, &format!("{LOG_PREFIX}{s}")).is_some())
            .map(str::to_string)
            .collect();
        Ok(GsdParticles {
            file,
            phaseflow: meta.is_some(),
            replicas,
            frames,
            n,
            dim,
            edges,
            propulsion_name,
            components,
            parameters,
            series,
            dt,
        })
    }

    /// The GSD frame of frame `k` of replica `r`.
    fn index(&self, r: usize, k: usize) -> u64 {
        (r * self.frames + k) as u64
    }

    fn frame(&mut self, r: usize, k: usize) -> Result<GsdFrame> {
        let j = self.index(r, k);
        let (n, d, c) = (self.n, self.dim, self.components);
        let nn = n as u64;
        let path = self.file.path().to_path_buf();
        if let Some(v) = self.file.find(j, "particles/N").copied() {
            let fnn = self.file.read_f64(&v)?;
            if fnn.first().copied() != Some(n as f64) {
                return Err(IoError::invalid(
                    &path,
                    format!("GSD frame {j}: particles/N = {fnn:?} where frame 0 has {n}: phaseflow reads a fixed number of particles"),
                ));
            }
        }
        let step = match self.file.find_or_first(j, "configuration/step").copied() {
            Some(e) => self.file.read_f64(&e)?.first().copied().unwrap_or(0.0) as u64,
            None => 0,
        };
        let pos = self
            .file
            .read_shaped(j, "particles/position", nn, 3)?
            .ok_or_else(|| {
                IoError::invalid(&path, format!("GSD frame {j}: no particles/position"))
            })?;
        let image = self
            .file
            .read_shaped(j, "particles/image", nn, 3)?
            .unwrap_or_else(|| vec![0.0; 3 * n]);
        let mut x = Vec::with_capacity(n * d);
        let mut im = Vec::with_capacity(n * d);
        for i in 0..n {
            x.extend_from_slice(&pos[3 * i..3 * i + d]);
            im.extend(image[3 * i..3 * i + d].iter().map(|v| *v as i32));
        }
        let g = if self.propulsion_name == "self_propulsion" {
            self.file
                .read_shaped(j, LOG_G, nn, c as u32)?
                .expect("found in frame 0")
        } else {
            let q = self
                .file
                .read_shaped(j, "particles/orientation", nn, 4)?
                .unwrap_or_else(|| [1.0, 0.0, 0.0, 0.0].repeat(n));
            let mut g = Vec::with_capacity(n * d);
            for i in 0..n {
                let u =
                    gsd::unit_from_quaternion([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
                g.extend_from_slice(&u[..d]);
            }
            g
        };
        let time = match self.file.find(j, LOG_TIME).copied() {
            Some(e) => self.file.read_f64(&e)?.first().copied().unwrap_or(f64::NAN),
            None => step as f64 * self.dt.unwrap_or(1.0),
        };
        Ok(GsdFrame {
            step,
            time,
            x,
            image: im,
            g,
        })
    }

    fn series_value(&mut self, r: usize, k: usize, name: &str) -> Result<f64> {
        let j = self.index(r, k);
        let full = format!("{LOG_PREFIX}{name}");
        let v = self
            .file
            .read_shaped(j, &full, 1, 1)?
            .expect("series are found in frame 0");
        Ok(v[0])
    }

    /// The time-independent observables: (observable, dataset, values).
    fn fixed(&mut self) -> Result<Vec<(String, String, Vec<f64>)>> {
        let names: Vec<String> = self
            .file
            .names()
            .iter()
            .filter(|s| s.starts_with(FIXED_PREFIX))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for full in names {
            let Some(e) = self.file.find(0, &full).copied() else {
                continue;
            };
            let rest = &full[FIXED_PREFIX.len()..];
            let Some((name, ds)) = rest.rsplit_once('/') else {
                continue;
            };
            let v = self.file.read_f64(&e)?;
            out.push((name.to_string(), ds.to_string(), v));
        }
        Ok(out)
    }

    fn numeric_parameters(&self) -> BTreeMap<String, f64> {
        self.parameters
            .iter()
            .filter_map(|(k, v)| match v {
                AttrValue::F64(x) => Some((k.clone(), *x)),
                AttrValue::U64(u) => Some((k.clone(), *u as f64)),
                AttrValue::I64(i) => Some((k.clone(), *i as f64)),
                _ => None,
            })
            .collect()
    }

    fn string_parameter(&self, name: &str) -> String {
        self.parameters
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default()
            .to_string()
    }

    fn particle_frame(mut self, frame: i64) -> Result<ParticleFrame> {
        let frames = self.frames;
        let k = if frame < 0 {
            frames as i64 + frame
        } else {
            frame
        };
        if k < 0 || k as usize >= frames {
            return Err(IoError::invalid(
                self.file.path(),
                format!("frame {frame} does not exist: the file has {frames} frames"),
            ));
        }
        let fr = self.frame(0, k as usize)?;
        Ok(ParticleFrame {
            x: fr.x,
            n: self.n,
            dim: self.dim,
            edges: self.edges.clone(),
            step: fr.step as i64,
            time: fr.time,
            frames,
            parameters: self.numeric_parameters(),
            system: self.string_parameter("system"),
        })
    }

    fn samples(mut self) -> Result<ParticleSamples> {
        let (m, f, n, d, c) = (
            self.replicas,
            self.frames,
            self.n,
            self.dim,
            self.components,
        );
        let bytes = (m * f) as f64 * n as f64 * (12 * d + 8 * c) as f64;
        let budget = crate::control::memory_budget();
        if bytes > budget as f64 {
            return Err(IoError::invalid(
                self.file.path(),
                format!(
                    "its {m} × {f} frames of {n} particles would take {} in memory, more than the {} of this machine",
                    crate::control::human_bytes(bytes),
                    crate::control::human_bytes(budget as f64)
                ),
            ));
        }
        let mut x = Vec::with_capacity(m * f * n * d);
        let mut image = Vec::with_capacity(m * f * n * d);
        let mut g = Vec::with_capacity(m * f * n * c);
        let mut time = Vec::with_capacity(f);
        for r in 0..m {
            for k in 0..f {
                let fr = self.frame(r, k)?;
                x.extend_from_slice(&fr.x);
                image.extend_from_slice(&fr.image);
                g.extend_from_slice(&fr.g);
                if r == 0 {
                    time.push(fr.time);
                }
            }
        }
        Ok(ParticleSamples {
            replicas: m,
            frames: f,
            n,
            dim: d,
            propulsion: c,
            propulsion_name: self.propulsion_name.clone(),
            x,
            image,
            g,
            time,
            edges: self.edges.clone(),
            parameters: self.numeric_parameters(),
            definition: self.string_parameter("definition"),
            definition_path: self.string_parameter("definition_path"),
        })
    }
}
