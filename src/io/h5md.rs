//! H5MD 1.1 output of particle simulations (de Buyl, Colberg & Höfling, H5MD: a structured,
//! efficient and portable file format for molecular data, Comput. Phys. Commun. 185 (2014)).
//!
//! Layout written here:
//!
//! ```text
//! /h5md                       attrs version = [1, 1]; groups author (name), creator (name, version)
//! /particles/<group>/box      attrs dimension, boundary = ["periodic", …]; dataset edges [d]
//! /particles/<group>/position {step [T] i64, time [T] f64, value [T, N, d] f64}  (wrapped)
//! /particles/<group>/image    {step, time, value [T, N, d] i32}   (unwrapped = position + image·edges)
//! /particles/<group>/self_propulsion  {…, value [T, N, d]}   (AOUP g)
//! /particles/<group>/orientation      {…, value [T, N, d]}   (ABP unit vectors)
//! /observables/<name>         {step [T], time [T], value [T, M]} per replica, or a fixed dataset
//! /parameters                 attrs: model parameters, seed, command, definition text
//! /checkpoint                 while running: the last complete state of every replica and the
//!                             observers' running sums (removed when the file is complete)
//! ```
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
            pending: Default::default(),
        }
    }
}

struct GroupHandles {
    position: Element,
    image: Element,
    propulsion: Element,
    layout: GroupLayout,
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
            bx.new_dataset_builder()
                .with_data(&vec![edge; g.dim])
                .create("edges")
                .map_err(|e| err("write box/edges", e))?;
            let position = element::<f64>(&grp, "position", g.n, g.dim, path)?;
            let image = element::<i32>(&grp, "image", g.n, g.dim, path)?;
            let propulsion = element::<f64>(&grp, &g.propulsion.0, g.n, g.propulsion.1, path)?;
            handles.push(GroupHandles {
                position,
                image,
                propulsion,
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
            let open = |el: &str| -> Result<Element> {
                let e = grp.group(el).map_err(|e| err("open element", e))?;
                let ds = |n: &str| e.dataset(n).map_err(|e2| err("open dataset", e2));
                Ok(Element::new(ds("step")?, ds("time")?, ds("value")?))
            };
            let prop_name = if grp.group("self_propulsion").is_ok() {
                "self_propulsion"
            } else {
                "orientation"
            };
            let position = open("position")?;
            let shape = position.value.shape();
            let prop = open(prop_name)?;
            let pshape = prop.value.shape();
            let layout = GroupLayout {
                name: name.clone(),
                n: shape[1],
                dim: shape[2],
                propulsion: (prop_name.into(), pshape[2]),
            };
            let g = GroupHandles {
                position,
                image: open("image")?,
                propulsion: prop,
                layout,
            };
            for el in [&g.position, &g.image, &g.propulsion] {
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
                // a fixed observable is written at the end only (not before a checkpoint)
                obs.unlink(&name)
                    .map_err(|e| err("remove an unfinished observable", e))?;
            }
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
        self.pending_bytes += 8 * (x.len() + propulsion.len()) + 4 * image.len() + 48;
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

    /// Writes a fixed (time-independent) observable `/observables/<name>` with named 1-D
    /// datasets (e.g. `r` and `value` of the radial distribution function).
    pub fn write_fixed_observable(&mut self, name: &str, data: &[(&str, &[f64])]) -> Result<()> {
        let file = self.file.as_ref().expect("open file");
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(&self.path, op, e);
        let obs = file
            .group("observables")
            .map_err(|e| err("open /observables", e))?;
        if obs.link_exists(name) {
            obs.unlink(name).map_err(|e| err("replace observable", e))?;
        }
        let g = obs
            .create_group(name)
            .map_err(|e| err("create observable", e))?;
        for (k, v) in data {
            g.new_dataset_builder()
                .with_data(v)
                .create(*k)
                .map_err(|e| err("write observable", e))?;
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

fn element<T: hdf5::H5Type>(
    grp: &Group,
    name: &str,
    n: usize,
    c: usize,
    path: &Path,
) -> Result<Element> {
    element_shape::<T>(grp, name, &[n, c], path)
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
    let mut chunk = vec![ch];
    chunk.extend_from_slice(frame);
    let mut shape: Vec<hdf5::Extent> = vec![(0..).into()];
    shape.extend(frame.iter().map(|&v| hdf5::Extent::from(v)));
    let value = g
        .new_dataset::<T>()
        .chunk(chunk)
        .shape(shape)
        .create("value")
        .map_err(|e| err("create value", e))?;
    Ok(Element::new(step, time, value))
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
    el.step.resize(end).map_err(|e| err("extend step", e))?;
    el.time.resize(end).map_err(|e| err("extend time", e))?;
    el.value
        .resize(shape.clone())
        .map_err(|e| err("extend value", e))?;
    el.step
        .write_slice(&p.steps, first..end)
        .map_err(|e| err("write step", e))?;
    el.time
        .write_slice(&p.times, first..end)
        .map_err(|e| err("write time", e))?;
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
    el.step
        .resize(frames)
        .map_err(|e| err("truncate step", e))?;
    el.time
        .resize(frames)
        .map_err(|e| err("truncate time", e))?;
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
    let edges: Vec<f64> = grp
        .dataset("box/edges")
        .and_then(|d| d.read_raw())
        .map_err(|e| err("read box/edges", e))?;
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

/// Reads a whole H5MD file written by `phaseflow simulate` for a particle model.
pub fn read_particle_samples(path: &Path) -> Result<ParticleSamples> {
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);
    let file = super::trajectory::open_read(path).map_err(|e| err("open", e))?;
    let particles = file
        .group("particles")
        .map_err(|e| err("open /particles (not a particle file?)", e))?;
    let mut names = particles
        .member_names()
        .map_err(|e| err("list /particles", e))?;
    names.sort_by_key(|s| {
        s.strip_prefix("replica_")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    });
    if names.is_empty() {
        return Err(IoError::invalid(path, "/particles holds no particle group"));
    }
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
        let edges: Vec<f64> = grp
            .dataset("box/edges")
            .and_then(|d| d.read_raw())
            .map_err(|e| err("read box/edges", e))?;
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
