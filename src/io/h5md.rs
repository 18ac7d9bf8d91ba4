//! H5MD 1.1 output of particle simulations (de Buyl, Colberg & Höfling, H5MD: a structured,
//! efficient and portable file format for molecular data, Comput. Phys. Commun. 185 (2014)).
//!
//! Layout written here (T frames, N particles, d dimensions, M replicas; lengths in the model's
//! length unit σ, times in its time unit τ):
//!
//! ```text
//! /h5md                        attrs version = [1, 1]; groups author (name), creator (name, version),
//!                              modules/units (attrs version = [1, 0], system = "reduced")
//! /particles/<group>/position  {step [T] i64, time [T] f64, value [T, N, d] f64}  (wrapped)
//! /particles/<group>/box       attrs dimension = d, boundary = ["periodic", …];
//!                              edges {step, time, value [T, d] f64 (unit "sigma")}
//! /particles/<group>/image     {step, time, value [T, N, d] i32}   (unwrapped = position + image·edges)
//! /particles/<group>/self_propulsion  {step, time, value [T, N, d]}   (AOUP g)
//! /particles/<group>/orientation      {step, time, value [T, N, d]}   (ABP unit vectors)
//! /observables/<name>          {step [T], time [T] (unit "tau"), value [T, M]}: one value per replica
//! /analysis/<name>/<dataset>   time-independent results (averages over frames and replicas)
//! /parameters                  attrs: model parameters, seed, command, definition text
//! /checkpoint                  while running: the last complete state of every replica and the
//!                              observers' running sums (removed when the file is complete)
//! ```
//!
//! Within a particle group, `box/edges`, `image` and the propulsion element share the `step` and
//! `time` datasets of `position` (hard links, as H5MD 1.1 requires of `box` and `image`); the box
//! is fixed, its edges repeated per frame in the time-dependent form that LAMMPS' `dump h5md`
//! writes and MDAnalysis' `H5MDReader` reads. `position/value` and the shared `time` carry no
//! `unit` attribute: MDAnalysis 2.x refuses any unit string outside its table of SI-based units
//! (also with `convert_units=False`), and reduced units have none; their units are those of
//! `box/edges/value` and of the observables' `time`. `/observables` holds only time-dependent
//! elements (MDAnalysis reads every member per frame); results without a time axis (g(r), the
//! packing fraction histogram) go to `/analysis`, a group H5MD leaves to the application.
//!
//! Files written before this layout (a time-independent dataset `box/edges` \[d\], own `step` and
//! `time` per element, the averages as groups of `/observables`) are read by the readers here.
//!
//! `<group>` is `all` for one replica and `replica_0 … replica_{M-1}` for M replicas (independent
//! stationary samples). The file is written as `.<name>.partial` next to the destination and
//! renamed into place when complete; one process at a time writes a destination ([`OutputLock`]:
//! `.<name>.lock` next to it). A checkpoint ([`H5mdWriter::write_checkpoint`]) goes into one of two
//! slots, `/checkpoint/slot_0` and `/checkpoint/slot_1`, alternately; only after the slot and the
//! frames before it are flushed is `/checkpoint/current` = [slot, frames] switched to it, so a
//! process killed at any moment leaves the previous checkpoint intact, and
//! [`H5mdWriter::open_partial`] continues from it (frames written after it are dropped and redone).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdf5::{Dataset, File, Group};

use super::trajectory::write_attr;
use super::{commit_file, AttrValue, IoError, Result};

/// What one particle group stores per frame.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupLayout {
    pub name: String,
    /// Particles N.
    pub n: usize,
    /// Spatial dimension d.
    pub dim: usize,
    /// `self_propulsion` or `orientation`, with its components per particle.
    pub propulsion: (String, usize),
}

/// Time series datasets of one H5MD element, with the frames appended since the last flush
/// (written as one block: one resize and three writes per element instead of per frame).
struct Element {
    step: Dataset,
    time: Dataset,
    value: Dataset,
    /// Whether `step` and `time` are this element's own; false for an element whose `step` and
    /// `time` are hard links to those of `position` (written and resized by `position` only).
    owns_axis: bool,
    pending: std::cell::RefCell<Pending>,
}

/// Frames buffered in memory: steps, times and the values (f64 or i32) of frames
/// `first..first + steps.len()`.
#[derive(Default)]
struct Pending {
    first: usize,
    steps: Vec<i64>,
    times: Vec<f64>,
    f64s: Vec<f64>,
    i32s: Vec<i32>,
}

/// Element types the writer buffers.
trait Buffered: hdf5::H5Type + Copy {
    fn buffer(p: &mut Pending) -> &mut Vec<Self>;
}
impl Buffered for f64 {
    fn buffer(p: &mut Pending) -> &mut Vec<f64> {
        &mut p.f64s
    }
}
impl Buffered for i32 {
    fn buffer(p: &mut Pending) -> &mut Vec<i32> {
        &mut p.i32s
    }
}

impl Element {
    fn new(step: Dataset, time: Dataset, value: Dataset) -> Element {
        Element {
            step,
            time,
            value,
            owns_axis: true,
            pending: Default::default(),
        }
    }

    /// An element whose `step` and `time` are another's (hard links).
    fn linked(step: Dataset, time: Dataset, value: Dataset) -> Element {
        Element {
            owns_axis: false,
            ..Element::new(step, time, value)
        }
    }
}

struct GroupHandles {
    position: Element,
    image: Element,
    propulsion: Element,
    /// `box/edges`, time-dependent: the (fixed) edges `edge` [d] repeated per frame.
    edges: Element,
    edge: Vec<f64>,
    layout: GroupLayout,
}

/// The unit system named by `/h5md/modules/units`: every length in the model's length unit
/// (`sigma`: the particle diameter of the ABP models, the unit of R of the AOUP models), every
/// time in its time unit (`tau`: 1/D_r of the ABP models, the unit of 1/γ of the AOUP models).
pub const UNIT_SYSTEM: &str = "reduced";
/// The `unit` of lengths (box edges, radii of g(r)).
pub const LENGTH_UNIT: &str = "sigma";
/// The `unit` of times (the observables' `time`).
pub const TIME_UNIT: &str = "tau";

/// The `unit` of the values of the time-dependent observable `name` (None: dimensionless).
fn observable_unit(name: &str) -> Option<&'static str> {
    match name {
        "msd" => Some("sigma+2"),
        _ => None,
    }
}

/// The `unit` of dataset `dataset` of the result `/analysis/<name>` (None: dimensionless).
fn analysis_unit(name: &str, dataset: &str) -> Option<&'static str> {
    match (name, dataset) {
        ("radial_distribution", "r") => Some(LENGTH_UNIT),
        _ => None,
    }
}

/// Writes the H5MD `unit` attribute (scalar, variable-length ASCII string, as the units module
/// prescribes) of `ds`.
fn set_unit(ds: &Dataset, unit: &str, path: &Path) -> Result<()> {
    let v = hdf5::types::VarLenAscii::from_ascii(unit)
        .map_err(|e| IoError::invalid(path, format!("unit '{unit}' is not ASCII: {e}")))?;
    ds.new_attr::<hdf5::types::VarLenAscii>()
        .shape(())
        .create("unit")
        .and_then(|a| a.write_scalar(&v))
        .map_err(|e| IoError::hdf5(path, "write a unit attribute", e))
}

/// Streams an H5MD file; see the module docs.
pub struct H5mdWriter {
    path: PathBuf,
    partial: PathBuf,
    groups: Vec<GroupHandles>,
    observables: BTreeMap<String, Element>,
    replicas: usize,
    frames: usize,
    finished: bool,
    file: Option<File>,
    /// When `/checkpoint` was last written (None: not yet in this process).
    last_checkpoint: Option<Instant>,
    /// Least wall time between checkpoints (zero: every frame).
    interval: Duration,
    /// The slot of `/checkpoint` holding the last complete checkpoint (None: none yet).
    slot: Option<usize>,
    /// Bytes of frames buffered in memory (written at [`MAX_PENDING_BYTES`] at the latest).
    pending_bytes: usize,
}

/// Default least wall time between checkpoints. A checkpoint writes every buffered frame (one
/// resize and block write per dataset), every replica's state and flushes the file: for runs of
/// many small frames that costs more than the dynamics (128 replicas × 3000 frames of one
/// particle, every frame: 112 s against 2 s of dynamics), so by default a checkpoint is written
/// at the first frame, at the first frame at least this long after the previous checkpoint, and at
/// the last frame of an interrupted run; a killed run loses at most this much work and redoes it
/// identically. [`H5mdWriter::set_checkpoint_interval`] changes it (zero: every frame).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// Buffered frames are written to the file once they take this many bytes, checkpoint or not
/// (memory stays bounded whatever the frame rate).
pub const MAX_PENDING_BYTES: usize = 64 << 20;

/// The deterministic partial-file name of `path`: `.<name>.partial` in the same directory.
pub fn partial_path(path: &Path) -> Result<PathBuf> {
    hidden_sibling(path, "partial")
}

/// `.<name>.<suffix>` next to `path` (refused for a destination that is not a regular file).
fn hidden_sibling(path: &Path, suffix: &str) -> Result<PathBuf> {
    super::check_destination(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| IoError::invalid(path, "the path does not name a file"))?;
    Ok(path.with_file_name(format!(".{}.{suffix}", name.to_string_lossy())))
}

/// The exclusive right to write a destination through its partial file: an advisory lock
/// (`flock`) on `.<name>.lock` next to it, which holds the owner's process id. A second run on
/// the same destination fails at once, naming the process that writes it (it never touches the
/// first run's partial file). The lock is released when the guard is dropped (the lock file is
/// then removed) or when the process dies, however it dies: a lock file left by a killed process
/// is not locked any more and is taken over, and its partial file is stale
/// ([`OutputLock::stale_partial`]).
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    lock_path: PathBuf,
    file: std::fs::File,
    stale_partial: bool,
}

impl OutputLock {
    /// Takes the lock of `path` or fails (without waiting) when another process holds it.
    pub fn acquire(path: &Path) -> Result<OutputLock> {
        use std::io::{Read, Write};
        let partial = partial_path(path)?;
        let lock_path = hidden_sibling(path, "lock")?;
        // a run that finishes between our open and our lock removes the file we opened; the lock
        // of a removed file guards nothing, so the lock is taken on the file that is at the path
        for _ in 0..16 {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(|e| IoError::fs(&lock_path, "open the lock file", e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = (&file).read_to_string(&mut holder);
                    let who = match holder.trim().parse::<u32>() {
                        Ok(pid) => format!("another phaseflow run (process {pid})"),
                        Err(_) => "another phaseflow run".to_string(),
                    };
                    return Err(IoError::invalid(
                        path,
                        format!(
                            "{who} is writing this file (lock {}): wait for it to finish, or choose another output",
                            lock_path.display()
                        ),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(IoError::fs(&lock_path, "lock", e))
                }
            }
            if !same_file(&file, &lock_path) {
                continue;
            }
            let mut f = &file;
            f.set_len(0)
                .and_then(|_| write!(f, "{}", std::process::id()))
                .map_err(|e| IoError::fs(&lock_path, "write the lock file", e))?;
            return Ok(OutputLock {
                path: path.to_path_buf(),
                lock_path,
                file,
                stale_partial: partial.exists(),
            });
        }
        Err(IoError::invalid(
            path,
            format!(
                "cannot take the lock {}: other runs keep replacing it",
                lock_path.display()
            ),
        ))
    }

    /// The destination this lock guards.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a partial file was there when the lock was taken: left by a run that did not
    /// finish (interrupted, killed, or failed), since no live process held the lock.
    pub fn stale_partial(&self) -> bool {
        self.stale_partial
    }
}

impl Drop for OutputLock {
    /// Removes the lock file while still holding the lock (closing the file releases it).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock_path);
        let _ = self.file.unlock();
    }
}

/// Whether the open `file` is the file at `path` (the same inode).
#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

/// Everything a run needs to continue from a frame: every replica's state and the running sums
/// of its observers (named arrays, of fixed length from the first checkpoint on, restored
/// verbatim: e.g. the g(r) and packing-fraction histograms summed over the frames so far).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checkpoint {
    pub replicas: Vec<CheckpointState>,
    pub accumulators: Vec<(String, Vec<f64>)>,
}

/// What [`H5mdWriter::open_partial`] found.
pub enum PartialFile {
    /// A complete checkpoint: the writer (positioned after its frame) and the checkpoint.
    Resumable(Box<H5mdWriter>, Checkpoint),
    /// A partial file without a complete checkpoint (its run was killed before its first frame
    /// was written, or while the file was being created): why. There is nothing to continue.
    Incomplete(String),
}

/// A replica's state as stored in `/checkpoint`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointState {
    pub x: Vec<f64>,
    pub image: Vec<i32>,
    pub g: Vec<f64>,
    pub step: u64,
    /// Unwrapped positions and propulsion at frame 0 (references of MSD and autocorrelation).
    pub ref_unwrapped: Vec<f64>,
    pub ref_g: Vec<f64>,
}

fn frames_chunk(per_frame: usize) -> usize {
    (65536 / per_frame.max(1)).clamp(1, 1024)
}

impl H5mdWriter {
    /// Creates the partial file of the destination `lock` guards for `groups` (all in one
    /// periodic box of edge `edge`), replacing a stale partial file.
    pub fn create(
        lock: &OutputLock,
        groups: &[GroupLayout],
        edge: f64,
        author: &str,
        parameters: &[(String, AttrValue)],
    ) -> Result<H5mdWriter> {
        let path = lock.path();
        let partial = partial_path(path)?;
        let _ = std::fs::remove_file(&partial);
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
        let file = File::with_options()
            .with_fapl(|p| {
                p.libver_v18()
                    .fclose_degree(hdf5::file::FileCloseDegree::Strong)
            })
            .create(&partial)
            .map_err(|e| err(&format!("create {}", partial.display()), e))?;
        let h5md = file
            .create_group("h5md")
            .map_err(|e| err("create /h5md", e))?;
        write_attr(&h5md, "version", &AttrValue::I64s(vec![1, 1]), path)?;
        let a = h5md
            .create_group("author")
            .map_err(|e| err("create author", e))?;
        write_attr(&a, "name", &AttrValue::Str(author.into()), path)?;
        let c = h5md
            .create_group("creator")
            .map_err(|e| err("create creator", e))?;
        write_attr(&c, "name", &AttrValue::Str("phaseflow".into()), path)?;
        write_attr(
            &c,
            "version",
            &AttrValue::Str(env!("CARGO_PKG_VERSION").into()),
            path,
        )?;
        let units = h5md
            .create_group("modules")
            .and_then(|m| m.create_group("units"))
            .map_err(|e| err("create /h5md/modules/units", e))?;
        write_attr(&units, "version", &AttrValue::I64s(vec![1, 0]), path)?;
        write_attr(&units, "system", &AttrValue::Str(UNIT_SYSTEM.into()), path)?;
        let particles = file
            .create_group("particles")
            .map_err(|e| err("create /particles", e))?;
        let mut handles = Vec::new();
        for g in groups {
            let grp = particles
                .create_group(&g.name)
                .map_err(|e| err("create particle group", e))?;
            let bx = grp.create_group("box").map_err(|e| err("create box", e))?;
            write_attr(&bx, "dimension", &AttrValue::I64(g.dim as i64), path)?;
            write_attr(
                &bx,
                "boundary",
                &AttrValue::Strs(vec!["periodic".into(); g.dim]),
                path,
            )?;
            let position = element_shape::<f64>(&grp, "position", &[g.n, g.dim], path)?;
            let axis = format!("/particles/{}/position", g.name);
            let image = linked_element::<i32>(&grp, "image", &[g.n, g.dim], &axis, path)?;
            let propulsion =
                linked_element::<f64>(&grp, &g.propulsion.0, &[g.n, g.propulsion.1], &axis, path)?;
            let edges = linked_element::<f64>(&bx, "edges", &[g.dim], &axis, path)?;
            set_unit(&edges.value, LENGTH_UNIT, path)?;
            handles.push(GroupHandles {
                position,
                image,
                propulsion,
                edges,
                edge: vec![edge; g.dim],
                layout: g.clone(),
            });
        }
        file.create_group("observables")
            .map_err(|e| err("create /observables", e))?;
        let pg = file
            .create_group("parameters")
            .map_err(|e| err("create /parameters", e))?;
        for (k, v) in parameters {
            write_attr(&pg, k, v, path)?;
        }
        Ok(H5mdWriter {
            path: path.to_path_buf(),
            partial,
            groups: handles,
            observables: BTreeMap::new(),
            replicas: groups.len(),
            frames: 0,
            finished: false,
            file: Some(file),
            last_checkpoint: None,
            interval: DEFAULT_CHECKPOINT_INTERVAL,
            slot: None,
            pending_bytes: 0,
        })
    }

    /// Reopens the partial file of the destination `lock` guards, left by an interrupted run:
    /// the writer positioned after the frame of the last complete checkpoint (frames written
    /// after it are dropped) and the checkpoint; or why there is nothing to continue. Fails when
    /// there is no partial file, or when it has a checkpoint that cannot be read.
    pub fn open_partial(lock: &OutputLock) -> Result<PartialFile> {
        let path = lock.path();
        let partial = partial_path(path)?;
        if !partial.exists() {
            return Err(IoError::invalid(
                path,
                format!(
                    "nothing to resume: no partial file {} (the run finished or never started)",
                    partial.display()
                ),
            ));
        }
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(&partial, op, e);
        let file = match File::open_rw(&partial) {
            Ok(f) => f,
            Err(e) => {
                return Ok(PartialFile::Incomplete(format!(
                    "it cannot be opened ({e})"
                )))
            }
        };
        let Some((slot, frames)) = file
            .group("checkpoint")
            .and_then(|ck| ck.dataset("current"))
            .and_then(|d| d.read_raw::<u64>())
            .ok()
            .filter(|v| v.len() == 2 && v[0] < 2)
            .map(|v| (v[0] as usize, v[1] as usize))
        else {
            return Ok(PartialFile::Incomplete(
                "it holds no complete checkpoint".into(),
            ));
        };
        let sg = file
            .group(&format!("checkpoint/slot_{slot}"))
            .map_err(|e| err("open the checkpoint", e))?;
        let steps: Vec<u64> = sg
            .dataset("step")
            .and_then(|d| d.read_raw())
            .map_err(|e| err("read checkpoint step", e))?;
        let replicas = steps.len();
        let particles = file
            .group("particles")
            .map_err(|e| err("open /particles", e))?;
        let mut groups = Vec::new();
        for r in 0..replicas {
            let name = if replicas == 1 {
                "all".to_string()
            } else {
                format!("replica_{r}")
            };
            let grp = particles
                .group(&name)
                .map_err(|e| err("open particle group", e))?;
            // `linked`: step and time are hard links to those of position
            let open = |el: &str, linked: bool| -> Result<Element> {
                let e = grp.group(el).map_err(|e| err("open element", e))?;
                let ds = |n: &str| e.dataset(n).map_err(|e2| err("open dataset", e2));
                let (step, time, value) = (ds("step")?, ds("time")?, ds("value")?);
                Ok(if linked {
                    Element::linked(step, time, value)
                } else {
                    Element::new(step, time, value)
                })
            };
            if grp.dataset("box/edges").is_ok() {
                return Err(IoError::invalid(
                    &partial,
                    "written by an earlier version of phaseflow (a time-independent box/edges): it cannot be continued by this one; run without --resume to start afresh",
                ));
            }
            let prop_name = if grp.group("self_propulsion").is_ok() {
                "self_propulsion"
            } else {
                "orientation"
            };
            let position = open("position", false)?;
            let shape = position.value.shape();
            let prop = open(prop_name, true)?;
            let pshape = prop.value.shape();
            let edges = open("box/edges", true)?;
            let edge: Vec<f64> = match edges.value.shape()[..] {
                [t, d] if t >= 1 && d == shape[2] => edges
                    .value
                    .read_slice_1d::<f64, _>((0, ..))
                    .map_err(|e| err("read box/edges", e))?
                    .to_vec(),
                _ => {
                    return Err(IoError::invalid(
                        &partial,
                        format!("{name}/box/edges/value is not [T >= 1, {}]", shape[2]),
                    ))
                }
            };
            let layout = GroupLayout {
                name: name.clone(),
                n: shape[1],
                dim: shape[2],
                propulsion: (prop_name.into(), pshape[2]),
            };
            let g = GroupHandles {
                position,
                image: open("image", true)?,
                propulsion: prop,
                edges,
                edge,
                layout,
            };
            for el in [&g.position, &g.image, &g.propulsion, &g.edges] {
                truncate(el, frames, &partial)?;
            }
            groups.push(g);
        }
        // every replica's arrays, concatenated, split back
        let split_f64 = |name: &str| -> Result<Vec<Vec<f64>>> {
            let v: Vec<f64> = sg
                .dataset(name)
                .and_then(|d| d.read_raw())
                .map_err(|e| err(&format!("read checkpoint {name}"), e))?;
            split(v, replicas, name, &partial)
        };
        let x = split_f64("x")?;
        let g = split_f64("g")?;
        let ref_unwrapped = split_f64("ref_unwrapped")?;
        let ref_g = split_f64("ref_g")?;
        let image: Vec<i32> = sg
            .dataset("image")
            .and_then(|d| d.read_raw())
            .map_err(|e| err("read checkpoint image", e))?;
        let image = split(image, replicas, "image", &partial)?;
        let mut states = Vec::with_capacity(replicas);
        for (r, (((x, image), g), (ru, rg))) in x
            .into_iter()
            .zip(image)
            .zip(g)
            .zip(ref_unwrapped.into_iter().zip(ref_g))
            .enumerate()
        {
            states.push(CheckpointState {
                x,
                image,
                g,
                step: steps[r],
                ref_unwrapped: ru,
                ref_g: rg,
            });
        }
        let mut accumulators = Vec::new();
        if let Ok(acc) = sg.group("accumulators") {
            for name in acc
                .member_names()
                .map_err(|e| err("list checkpoint accumulators", e))?
            {
                let v: Vec<f64> = acc
                    .dataset(&name)
                    .and_then(|d| d.read_raw())
                    .map_err(|e| err("read checkpoint accumulator", e))?;
                accumulators.push((name, v));
            }
        }
        let obs = file
            .group("observables")
            .map_err(|e| err("open /observables", e))?;
        let mut observables = BTreeMap::new();
        for name in obs.member_names().map_err(|e| err("list observables", e))? {
            let e = obs.group(&name).map_err(|e| err("open observable", e))?;
            if let (Ok(step), Ok(time), Ok(value)) =
                (e.dataset("step"), e.dataset("time"), e.dataset("value"))
            {
                let el = Element::new(step, time, value);
                truncate(&el, frames, &partial)?;
                observables.insert(name, el);
            } else {
                // not a time series (never written by this version before the end)
                obs.unlink(&name)
                    .map_err(|e| err("remove an unfinished observable", e))?;
            }
        }
        // the averages are written at the end only (not before a checkpoint)
        if file.link_exists("analysis") {
            file.unlink("analysis")
                .map_err(|e| err("remove unfinished averages", e))?;
        }
        Ok(PartialFile::Resumable(
            Box::new(H5mdWriter {
                path: path.to_path_buf(),
                partial,
                groups,
                observables,
                replicas,
                frames,
                finished: false,
                file: Some(file),
                last_checkpoint: None,
                interval: DEFAULT_CHECKPOINT_INTERVAL,
                slot: Some(slot),
                pending_bytes: 0,
            }),
            Checkpoint {
                replicas: states,
                accumulators,
            },
        ))
    }

    /// Sets the least wall time between checkpoints (default [`DEFAULT_CHECKPOINT_INTERVAL`];
    /// zero: every frame).
    pub fn set_checkpoint_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// The attribute `name` of `/parameters` as recorded, read as the variant of `like` (a
    /// number, or a string); None when the file does not record it or records another type.
    pub fn parameter(&self, name: &str, like: &AttrValue) -> Option<AttrValue> {
        let pg = self.file.as_ref()?.group("parameters").ok()?;
        let a = pg.attr(name).ok()?;
        match like {
            AttrValue::F64(_) => a.read_scalar::<f64>().ok().map(AttrValue::F64),
            AttrValue::U64(_) => a.read_scalar::<u64>().ok().map(AttrValue::U64),
            AttrValue::I64(_) => a.read_scalar::<i64>().ok().map(AttrValue::I64),
            AttrValue::Str(_) => a
                .read_scalar::<hdf5::types::VarLenUnicode>()
                .ok()
                .map(|v| AttrValue::Str(v.to_string())),
            _ => None,
        }
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Appends a frame of replica `r` (positions N·d, images N·d, propulsion N·c).
    pub fn push_frame(
        &mut self,
        r: usize,
        step: u64,
        time: f64,
        x: &[f64],
        image: &[i32],
        propulsion: &[f64],
    ) -> Result<()> {
        let path = self.path.clone();
        let g = &self.groups[r];
        let (n, d, c) = (g.layout.n, g.layout.dim, g.layout.propulsion.1);
        let k = self.frames;
        append(&g.position, k, step, time, x, &[n, d], &path)?;
        append(&g.image, k, step, time, image, &[n, d], &path)?;
        append(&g.propulsion, k, step, time, propulsion, &[n, c], &path)?;
        append(&g.edges, k, step, time, &g.edge, &[d], &path)?;
        self.pending_bytes += 8 * (x.len() + propulsion.len() + d) + 4 * image.len() + 64;
        Ok(())
    }

    /// Appends one value per replica of the time series `/observables/<name>` (created on first
    /// use).
    pub fn push_observable(
        &mut self,
        name: &str,
        step: u64,
        time: f64,
        values: &[f64],
    ) -> Result<()> {
        if !self.observables.contains_key(name) {
            let file = self.file.as_ref().expect("open file");
            let obs = file
                .group("observables")
                .map_err(|e| IoError::hdf5(&self.path, "open /observables", e))?;
            let el = element_shape::<f64>(&obs, name, &[self.replicas], &self.path)?;
            set_unit(&el.time, TIME_UNIT, &self.path)?;
            if let Some(unit) = observable_unit(name) {
                set_unit(&el.value, unit, &self.path)?;
            }
            self.observables.insert(name.to_string(), el);
        }
        self.pending_bytes += 8 * values.len() + 16;
        let el = &self.observables[name];
        append(
            el,
            self.frames,
            step,
            time,
            values,
            &[self.replicas],
            &self.path,
        )
    }

    /// Writes every buffered frame to the file.
    fn flush_pending(&mut self) -> Result<()> {
        self.pending_bytes = 0;
        for g in &self.groups {
            flush(&g.position, &self.path)?;
            flush(&g.image, &self.path)?;
            flush(&g.propulsion, &self.path)?;
            flush(&g.edges, &self.path)?;
        }
        for el in self.observables.values() {
            flush(el, &self.path)?;
        }
        Ok(())
    }

    /// Marks the frame complete (after [`H5mdWriter::push_frame`] of every replica and its
    /// observables); buffered frames are written once they exceed [`MAX_PENDING_BYTES`].
    pub fn end_frame(&mut self) -> Result<()> {
        self.frames += 1;
        if self.pending_bytes > MAX_PENDING_BYTES {
            self.flush_pending()?;
        }
        Ok(())
    }

    /// Whether a checkpoint is due after this frame: `force` (the last frame of a run that
    /// stops), the first frame of this process, or the interval since the last checkpoint
    /// ([`H5mdWriter::set_checkpoint_interval`]) has passed.
    pub fn checkpoint_due(&self, force: bool) -> bool {
        force
            || self
                .last_checkpoint
                .is_none_or(|t| t.elapsed() >= self.interval)
    }

    /// Writes a checkpoint after the frames so far (see the module docs: the other slot, then
    /// `/checkpoint/current`). The checkpoint's arrays keep their lengths from the first
    /// checkpoint on.
    pub fn write_checkpoint(&mut self, ck: &Checkpoint) -> Result<()> {
        self.flush_pending()?;
        let path = self.path.clone();
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(&path, op, e);
        let file = self.file.as_ref().expect("open file");
        let ckg = match file.group("checkpoint") {
            Ok(g) => g,
            Err(_) => file
                .create_group("checkpoint")
                .map_err(|e| err("create /checkpoint", e))?,
        };
        let slot = self.slot.map_or(0, |s| 1 - s);
        let name = format!("slot_{slot}");
        let sg = match ckg.group(&name) {
            Ok(g) => g,
            Err(_) => ckg
                .create_group(&name)
                .map_err(|e| err("create a checkpoint slot", e))?,
        };
        let cat = |f: fn(&CheckpointState) -> &[f64]| -> Vec<f64> {
            ck.replicas
                .iter()
                .flat_map(|s| f(s).iter().copied())
                .collect()
        };
        put(&sg, "x", &cat(|s| &s.x), &path)?;
        put(&sg, "g", &cat(|s| &s.g), &path)?;
        put(&sg, "ref_unwrapped", &cat(|s| &s.ref_unwrapped), &path)?;
        put(&sg, "ref_g", &cat(|s| &s.ref_g), &path)?;
        let image: Vec<i32> = ck
            .replicas
            .iter()
            .flat_map(|s| s.image.iter().copied())
            .collect();
        put(&sg, "image", &image, &path)?;
        let steps: Vec<u64> = ck.replicas.iter().map(|s| s.step).collect();
        put(&sg, "step", &steps, &path)?;
        if !ck.accumulators.is_empty() {
            let acc = match sg.group("accumulators") {
                Ok(g) => g,
                Err(_) => sg
                    .create_group("accumulators")
                    .map_err(|e| err("create checkpoint accumulators", e))?,
            };
            for (k, v) in &ck.accumulators {
                put(&acc, k, v, &path)?;
            }
        }
        // the slot (and every frame before it) on disk before the switch to it
        file.flush().map_err(|e| err("flush", e))?;
        let current = match ckg.dataset("current") {
            Ok(d) => d,
            Err(_) => ckg
                .new_dataset::<u64>()
                .shape(2)
                .create("current")
                .map_err(|e| err("create /checkpoint/current", e))?,
        };
        current
            .write_raw(&[slot as u64, self.frames as u64])
            .map_err(|e| err("write /checkpoint/current", e))?;
        file.flush().map_err(|e| err("flush", e))?;
        self.slot = Some(slot);
        self.last_checkpoint = Some(Instant::now());
        Ok(())
    }

    /// Writes a time-independent result `/analysis/<name>` with named 1-D datasets (e.g. `r`
    /// and `value` of the radial distribution function averaged over the frames). Not in
    /// `/observables`, whose members readers such as MDAnalysis read per frame.
    pub fn write_average(&mut self, name: &str, data: &[(&str, &[f64])]) -> Result<()> {
        let file = self.file.as_ref().expect("open file");
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(&self.path, op, e);
        let analysis = match file.group("analysis") {
            Ok(g) => g,
            Err(_) => file
                .create_group("analysis")
                .map_err(|e| err("create /analysis", e))?,
        };
        if analysis.link_exists(name) {
            analysis
                .unlink(name)
                .map_err(|e| err("replace an average", e))?;
        }
        let g = analysis
            .create_group(name)
            .map_err(|e| err("create an average", e))?;
        for (k, v) in data {
            let ds = g
                .new_dataset_builder()
                .with_data(v)
                .create(*k)
                .map_err(|e| err("write an average", e))?;
            if let Some(unit) = analysis_unit(name, k) {
                set_unit(&ds, unit, &self.path)?;
            }
        }
        Ok(())
    }

    /// Writes an attribute of `/parameters` (e.g. the wall time, at the end).
    pub fn set_parameter(&mut self, name: &str, value: &AttrValue) -> Result<()> {
        let file = self.file.as_ref().expect("open file");
        let pg = file
            .group("parameters")
            .map_err(|e| IoError::hdf5(&self.path, "open /parameters", e))?;
        write_attr(&pg, name, value, &self.path)
    }

    /// Closes and removes the partial file (a run that failed for good: nothing to resume).
    pub fn discard(mut self) {
        self.finished = true;
        self.groups.clear();
        self.observables.clear();
        if let Some(f) = self.file.take() {
            let _ = f.close();
        }
        let _ = std::fs::remove_file(&self.partial);
    }

    /// The partial file being written.
    pub fn partial(&self) -> &Path {
        &self.partial
    }

    /// Removes the checkpoint, closes the file and renames it into place; on failure (e.g. a
    /// full disk) the partial file is removed.
    pub fn finish(mut self) -> Result<usize> {
        let done = self.flush_pending().and_then(|_| {
            let file = self.file.take().expect("open file");
            let _ = file.unlink("checkpoint");
            self.groups.clear();
            self.observables.clear();
            file.close()
                .map_err(|e| IoError::hdf5(&self.path, "close", e))?;
            commit_file(&self.partial, &self.path)
        });
        self.finished = true;
        if done.is_err() {
            self.groups.clear();
            self.observables.clear();
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.partial);
        }
        done.map(|_| self.frames)
    }
}

impl Drop for H5mdWriter {
    /// An unfinished writer keeps its partial file (that is what `--resume` continues from).
    fn drop(&mut self) {
        if !self.finished {
            self.groups.clear();
            self.observables.clear();
            if let Some(f) = self.file.take() {
                let _ = f.flush();
            }
        }
    }
}

fn element_shape<T: hdf5::H5Type>(
    grp: &Group,
    name: &str,
    frame: &[usize],
    path: &Path,
) -> Result<Element> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let g = grp
        .create_group(name)
        .map_err(|e| err("create element", e))?;
    let per: usize = frame.iter().product();
    let ch = frames_chunk(per);
    let step = g
        .new_dataset::<i64>()
        .chunk(ch.max(64))
        .shape(0..)
        .create("step")
        .map_err(|e| err("create step", e))?;
    let time = g
        .new_dataset::<f64>()
        .chunk(ch.max(64))
        .shape(0..)
        .create("time")
        .map_err(|e| err("create time", e))?;
    let value = value_dataset::<T>(&g, frame, path)?;
    Ok(Element::new(step, time, value))
}

/// A time-dependent element `grp/name` whose `step` and `time` are hard links to those of the
/// element at the absolute path `axis` (e.g. `/particles/all/position`).
fn linked_element<T: hdf5::H5Type>(
    grp: &Group,
    name: &str,
    frame: &[usize],
    axis: &str,
    path: &Path,
) -> Result<Element> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let g = grp
        .create_group(name)
        .map_err(|e| err("create element", e))?;
    for d in ["step", "time"] {
        g.link_hard(&format!("{axis}/{d}"), d)
            .map_err(|e| err(&format!("link {name}/{d} to {axis}/{d}"), e))?;
    }
    let ds = |d: &str| g.dataset(d).map_err(|e| err("open linked dataset", e));
    let (step, time) = (ds("step")?, ds("time")?);
    let value = value_dataset::<T>(&g, frame, path)?;
    Ok(Element::linked(step, time, value))
}

/// The `value` dataset [0.., frame…] of an element, chunked by whole frames.
fn value_dataset<T: hdf5::H5Type>(g: &Group, frame: &[usize], path: &Path) -> Result<Dataset> {
    let per: usize = frame.iter().product();
    let mut chunk = vec![frames_chunk(per)];
    chunk.extend_from_slice(frame);
    let mut shape: Vec<hdf5::Extent> = vec![(0..).into()];
    shape.extend(frame.iter().map(|&v| hdf5::Extent::from(v)));
    g.new_dataset::<T>()
        .chunk(chunk)
        .shape(shape)
        .create("value")
        .map_err(|e| IoError::hdf5(path, "create value", e))
}

/// Buffers frame `k` of an element (written by [`flush`]).
fn append<T: Buffered>(
    el: &Element,
    k: usize,
    step: u64,
    time: f64,
    data: &[T],
    frame: &[usize],
    path: &Path,
) -> Result<()> {
    let mut p = el.pending.borrow_mut();
    if p.steps.is_empty() {
        p.first = k;
    }
    let per: usize = frame.iter().product();
    if data.len() != per || k != p.first + p.steps.len() {
        return Err(IoError::invalid(
            path,
            format!(
                "frame {k}: {} values for a frame of {per} (or frames out of order)",
                data.len()
            ),
        ));
    }
    p.steps.push(step as i64);
    p.times.push(time);
    T::buffer(&mut p).extend_from_slice(data);
    Ok(())
}

/// Writes the buffered frames of an element: one resize and one block write per dataset.
fn flush(el: &Element, path: &Path) -> Result<()> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let mut p = el.pending.borrow_mut();
    let count = p.steps.len();
    if count == 0 {
        return Ok(());
    }
    let (first, end) = (p.first, p.first + count);
    let mut shape = el.value.shape();
    shape[0] = end;
    el.value
        .resize(shape.clone())
        .map_err(|e| err("extend value", e))?;
    if el.owns_axis {
        el.step.resize(end).map_err(|e| err("extend step", e))?;
        el.time.resize(end).map_err(|e| err("extend time", e))?;
        el.step
            .write_slice(&p.steps, first..end)
            .map_err(|e| err("write step", e))?;
        el.time
            .write_slice(&p.times, first..end)
            .map_err(|e| err("write time", e))?;
    }
    let mut dims = shape.clone();
    dims[0] = count;
    let sel: Vec<hdf5::SliceOrIndex> = std::iter::once(hdf5::SliceOrIndex::from(first..end))
        .chain(shape[1..].iter().map(|_| hdf5::SliceOrIndex::from(..)))
        .collect();
    let sel = hdf5::Selection::from(hdf5::Hyperslab::from(sel));
    let shape_err = |e: ndarray::ShapeError| IoError::invalid(path, format!("frame shape: {e}"));
    if !p.f64s.is_empty() {
        let arr =
            ndarray::ArrayView::from_shape(ndarray::IxDyn(&dims), &p.f64s).map_err(shape_err)?;
        el.value
            .write_slice(&arr, sel)
            .map_err(|e| err("write value", e))?;
    } else {
        let arr =
            ndarray::ArrayView::from_shape(ndarray::IxDyn(&dims), &p.i32s).map_err(shape_err)?;
        el.value
            .write_slice(&arr, sel)
            .map_err(|e| err("write value", e))?;
    }
    *p = Pending::default();
    Ok(())
}

/// Writes `data` into the dataset `name` of `g` in place, creating it (contiguous, of this
/// length) the first time.
fn put<T: hdf5::H5Type>(g: &Group, name: &str, data: &[T], path: &Path) -> Result<()> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    if g.link_exists(name) {
        let ds = g
            .dataset(name)
            .map_err(|e| err("open checkpoint data", e))?;
        if ds.size() != data.len() {
            return Err(IoError::invalid(
                path,
                format!(
                    "checkpoint {name}: {} values where the first checkpoint had {}",
                    data.len(),
                    ds.size()
                ),
            ));
        }
        ds.write_raw(data)
            .map_err(|e| err("write checkpoint data", e))
    } else {
        g.new_dataset_builder()
            .with_data(data)
            .create(name)
            .map(|_| ())
            .map_err(|e| err("write checkpoint data", e))
    }
}

/// `v` cut into `parts` equal pieces (the replicas of a checkpoint array).
fn split<T: Clone>(v: Vec<T>, parts: usize, name: &str, path: &Path) -> Result<Vec<Vec<T>>> {
    if parts == 0 || !v.len().is_multiple_of(parts) {
        return Err(IoError::invalid(
            path,
            format!(
                "checkpoint {name}: {} values do not split into {parts} replicas",
                v.len()
            ),
        ));
    }
    Ok(v.chunks(v.len() / parts).map(|c| c.to_vec()).collect())
}

fn truncate(el: &Element, frames: usize, path: &Path) -> Result<()> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let mut shape = el.value.shape();
    if shape[0] == frames {
        return Ok(());
    }
    shape[0] = frames;
    el.value
        .resize(shape)
        .map_err(|e| err("truncate value", e))?;
    if el.owns_axis {
        el.step
            .resize(frames)
            .map_err(|e| err("truncate step", e))?;
        el.time
            .resize(frames)
            .map_err(|e| err("truncate time", e))?;
    }
    Ok(())
}

/// One frame of a particle group read back from an H5MD file.
#[derive(Debug, Clone)]
pub struct ParticleFrame {
    /// Wrapped positions, N·d.
    pub x: Vec<f64>,
    pub n: usize,
    pub dim: usize,
    /// Box edge lengths (d values).
    pub edges: Vec<f64>,
    pub step: i64,
    pub time: f64,
    /// Frames in the file.
    pub frames: usize,
    /// Numeric attributes of `/parameters`.
    pub parameters: BTreeMap<String, f64>,
    pub system: String,
}

/// Whether `path` is an H5MD file (has a `/h5md` group).
pub fn is_h5md(path: &Path) -> bool {
    super::trajectory::open_read(path)
        .map(|f| f.group("h5md").is_ok())
        .unwrap_or(false)
}

/// Reads frame `frame` (negative: from the end, −1 = last) of the first particle group
/// (`all`, or `replica_0`).
pub fn read_particle_frame(path: &Path, frame: i64) -> Result<ParticleFrame> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let file = super::trajectory::open_read(path).map_err(|e| err("open", e))?;
    let particles = file
        .group("particles")
        .map_err(|e| err("open /particles", e))?;
    let grp = particles
        .group("all")
        .or_else(|_| particles.group("replica_0"))
        .map_err(|e| err("open particle group", e))?;
    let (value, (frames, n, dim)) = position_dataset(&grp, path)?;
    let k = if frame < 0 {
        frames as i64 + frame
    } else {
        frame
    };
    if k < 0 || k as usize >= frames {
        return Err(IoError::invalid(
            path,
            format!("frame {frame} does not exist: the file has {frames} frames"),
        ));
    }
    let k = k as usize;
    let x: ndarray::Array3<f64> = value
        .read_slice((k..k + 1, .., ..))
        .map_err(|e| err("read position", e))?;
    let step: Vec<i64> = grp
        .dataset("position/step")
        .and_then(|d| d.read_raw())
        .map_err(|e| err("read step", e))?;
    let time: Vec<f64> = grp
        .dataset("position/time")
        .and_then(|d| d.read_raw())
        .map_err(|e| err("read time", e))?;
    let edges = read_edges(&grp, Some(k), path)?;
    let (parameters, strings) = read_parameters(&file);
    let system = strings.get("system").cloned().unwrap_or_default();
    Ok(ParticleFrame {
        x: x.iter().copied().collect(),
        n,
        dim,
        edges,
        step: step[k],
        time: time[k],
        frames,
        parameters,
        system,
    })
}

/// Every frame of every replica of a particle file, for training and analysis: stationary
/// samples (positions wrapped into the box, images, self-propulsion or orientation) with the
/// model's definition and effective parameters from `/parameters`.
#[derive(Debug, Clone)]
pub struct ParticleSamples {
    /// Replicas M, frames T per replica, particles N, dimension d, propulsion components c.
    pub replicas: usize,
    pub frames: usize,
    pub n: usize,
    pub dim: usize,
    pub propulsion: usize,
    /// `self_propulsion` (AOUP) or `orientation` (ABP).
    pub propulsion_name: String,
    /// Positions [M, T, N, d] (wrapped), images [M, T, N, d], propulsion [M, T, N, c].
    pub x: Vec<f64>,
    pub image: Vec<i32>,
    pub g: Vec<f64>,
    /// Times of the frames (the same for every replica).
    pub time: Vec<f64>,
    pub edges: Vec<f64>,
    /// Effective numeric parameters, and the definition text and path of the model.
    pub parameters: BTreeMap<String, f64>,
    pub definition: String,
    pub definition_path: String,
}

impl ParticleSamples {
    /// Offset of (replica r, frame t) in the per-particle arrays, in particles.
    pub fn frame_offset(&self, r: usize, t: usize) -> usize {
        (r * self.frames + t) * self.n
    }
}

/// The particle groups under `/particles` (`all`, or `replica_0`, `replica_1`, …) in replica
/// order; an error when there is none.
pub(crate) fn replica_groups(particles: &hdf5::Group, path: &Path) -> Result<Vec<String>> {
    let mut names = particles
        .member_names()
        .map_err(|e| IoError::hdf5(path, "list /particles", e))?;
    names.sort_by_key(|s| {
        s.strip_prefix("replica_")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    });
    if names.is_empty() {
        return Err(IoError::invalid(path, "/particles holds no particle group"));
    }
    Ok(names)
}

/// Reads a whole H5MD file written by `phaseflow simulate` for a particle model.
pub fn read_particle_samples(path: &Path) -> Result<ParticleSamples> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let file = super::trajectory::open_read(path).map_err(|e| err("open", e))?;
    let particles = file
        .group("particles")
        .map_err(|e| err("open /particles (not a particle file?)", e))?;
    let names = replica_groups(&particles, path)?;
    let mut out: Option<ParticleSamples> = None;
    for name in &names {
        let grp = particles
            .group(name)
            .map_err(|e| err("open particle group", e))?;
        let (pos, (frames, n, dim)) = position_dataset(&grp, path)?;
        let (prop_name, prop) = if let Ok(ds) = grp.dataset("self_propulsion/value") {
            ("self_propulsion", ds)
        } else {
            (
                "orientation",
                grp.dataset("orientation/value")
                    .map_err(|e| err("open self_propulsion or orientation", e))?,
            )
        };
        let c = prop.shape().get(2).copied().unwrap_or(0);
        let x: Vec<f64> = pos.read_raw().map_err(|e| err("read position", e))?;
        let image: Vec<i32> = grp
            .dataset("image/value")
            .and_then(|d| d.read_raw())
            .map_err(|e| err("read image", e))?;
        let g: Vec<f64> = prop.read_raw().map_err(|e| err("read propulsion", e))?;
        let time: Vec<f64> = grp
            .dataset("position/time")
            .and_then(|d| d.read_raw())
            .map_err(|e| err("read time", e))?;
        let edges = read_edges(&grp, None, path)?;
        match out.as_mut() {
            None => {
                out = Some(ParticleSamples {
                    replicas: 1,
                    frames,
                    n,
                    dim,
                    propulsion: c,
                    propulsion_name: prop_name.into(),
                    x,
                    image,
                    g,
                    time,
                    edges,
                    parameters: BTreeMap::new(),
                    definition: String::new(),
                    definition_path: String::new(),
                })
            }
            Some(s) => {
                if (frames, n, dim, c) != (s.frames, s.n, s.dim, s.propulsion) {
                    return Err(IoError::invalid(
                        path,
                        format!("particle group {name} has a different shape from the first"),
                    ));
                }
                s.replicas += 1;
                s.x.extend(x);
                s.image.extend(image);
                s.g.extend(g);
            }
        }
    }
    let mut s = out.expect("at least one group");
    let (parameters, strings) = read_parameters(&file);
    s.parameters = parameters;
    s.definition = strings.get("definition").cloned().unwrap_or_default();
    s.definition_path = strings.get("definition_path").cloned().unwrap_or_default();
    Ok(s)
}

/// The box edges [d] of a particle group: `box/edges/value[k]` of the time-dependent form, or
/// the time-independent dataset `box/edges` of files written before it. `k` None: the box of
/// every frame, which must be the same (phaseflow's analyses take the box as fixed).
fn read_edges(grp: &Group, k: Option<usize>, path: &Path) -> Result<Vec<f64>> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    if let Ok(ds) = grp.dataset("box/edges") {
        return ds.read_raw().map_err(|e| err("read box/edges", e));
    }
    let value = grp
        .dataset("box/edges/value")
        .map_err(|e| err("open box/edges (neither a dataset nor an element)", e))?;
    let shape = value.shape();
    let [frames, d] = shape[..] else {
        return Err(IoError::invalid(
            path,
            format!("box/edges/value has shape {shape:?}, not [T, d] (a cuboid box)"),
        ));
    };
    let all: Vec<f64> = value.read_raw().map_err(|e| err("read box/edges", e))?;
    let row = |t: usize| all[t * d..(t + 1) * d].to_vec();
    match k {
        Some(t) if t < frames => Ok(row(t)),
        Some(t) => Err(IoError::invalid(
            path,
            format!("box/edges/value holds {frames} frames, frame {t} has none"),
        )),
        None if frames == 0 => Err(IoError::invalid(path, "box/edges/value holds no frame")),
        None => {
            let first = row(0);
            match (1..frames).find(|&t| all[t * d..(t + 1) * d] != first[..]) {
                None => Ok(first),
                Some(t) => Err(IoError::invalid(
                    path,
                    format!(
                        "the box changes at frame {t} (box/edges/value): phaseflow reads runs in a fixed box only"
                    ),
                )),
            }
        }
    }
}

/// The time-independent results of a particle file by name, each a map of named 1-D datasets:
/// `radial_distribution` {`r`, `value`} and `local_packing_fraction` {`bin_edges`, `density`}
/// (averages over frames and replicas, runs with pair forces in d ≥ 2). Read from `/analysis`,
/// or from the groups of `/observables` that are not time series in files written before
/// `/analysis`. Empty when the file has none.
pub fn read_averages(path: &Path) -> Result<BTreeMap<String, BTreeMap<String, Vec<f64>>>> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let file = super::trajectory::open_read(path).map_err(|e| err("open", e))?;
    let mut out = BTreeMap::new();
    let (top, old) = match file.group("analysis") {
        Ok(g) => (g, false),
        Err(_) => match file.group("observables") {
            Ok(g) => (g, true),
            Err(_) => return Ok(out),
        },
    };
    for name in top.member_names().map_err(|e| err("list results", e))? {
        let Ok(g) = top.group(&name) else { continue };
        // a time series of /observables (step, time, value) is not an average
        if old && g.link_exists("step") {
            continue;
        }
        let mut data = BTreeMap::new();
        for k in g.member_names().map_err(|e| err("list a result", e))? {
            let v: Vec<f64> = g
                .dataset(&k)
                .and_then(|d| d.read_raw())
                .map_err(|e| err(&format!("read {name}/{k}"), e))?;
            data.insert(k, v);
        }
        out.insert(name, data);
    }
    Ok(out)
}

/// The attributes of `/parameters`: numbers, and strings (system, definition, command, …).
fn read_parameters(file: &File) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let mut numbers = BTreeMap::new();
    let mut strings = BTreeMap::new();
    if let Ok(pg) = file.group("parameters") {
        for name in pg.attr_names().unwrap_or_default() {
            if let Ok(a) = pg.attr(&name) {
                if let Ok(v) = a.read_scalar::<f64>() {
                    numbers.insert(name, v);
                } else if let Ok(v) = a.read_scalar::<hdf5::types::VarLenUnicode>() {
                    strings.insert(name, v.to_string());
                }
            }
        }
    }
    (numbers, strings)
}

/// The `position/value` dataset of a particle group and its shape (frames T, particles N,
/// dimension d).
fn position_dataset(grp: &Group, path: &Path) -> Result<(Dataset, (usize, usize, usize))> {
    let value = grp
        .dataset("position/value")
        .map_err(|e| IoError::hdf5(path, "open position/value", e))?;
    let shape = value.shape();
    if shape.len() != 3 {
        return Err(IoError::invalid(path, "position/value is not [T, N, d]"));
    }
    Ok((value, (shape[0], shape[1], shape[2])))
}
