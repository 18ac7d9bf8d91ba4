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
//! /checkpoint                 the last complete state of every replica (resume)
//! ```
//!
//! `<group>` is `all` for one replica and `replica_0 … replica_{M-1}` for M replicas (independent
//! stationary samples). The file is written as `.<name>.partial` next to the destination, renamed
//! into place when complete; `/checkpoint` is rewritten with every frame, so a killed run resumes
//! from its last frame (`open_partial`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    last_checkpoint: Option<std::time::Instant>,
}

/// Wall time between checkpoints: rewriting `/checkpoint` (every replica's state) and flushing
/// at every frame dominated runs with many small frames (128 replicas × 3000 frames of one
/// particle: 112 s against 2 s of dynamics); a crash loses at most this much work.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The deterministic partial-file name of `path`: `.<name>.partial` in the same directory.
pub fn partial_path(path: &Path) -> Result<PathBuf> {
    super::check_destination(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| IoError::invalid(path, "the path does not name a file"))?;
    Ok(path.with_file_name(format!(".{}.partial", name.to_string_lossy())))
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
    /// Creates the partial file for `groups` (all in one periodic box of edge `edge`).
    pub fn create(
        path: &Path,
        groups: &[GroupLayout],
        edge: f64,
        author: &str,
        parameters: &[(String, AttrValue)],
    ) -> Result<H5mdWriter> {
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
        })
    }

    /// Reopens the partial file of an interrupted run: returns the writer (positioned after the
    /// last checkpointed frame; later frames are dropped) and the checkpointed replica states.
    pub fn open_partial(path: &Path) -> Result<(H5mdWriter, Vec<CheckpointState>)> {
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
        let file = File::open_rw(&partial).map_err(|e| err("open partial file", e))?;
        let ck = file
            .group("checkpoint")
            .map_err(|e| err("read /checkpoint (no complete frame yet?)", e))?;
        let frames = ck
            .attr("frames")
            .and_then(|a| a.read_scalar::<u64>())
            .map_err(|e| err("read checkpoint frames", e))? as usize;
        let replicas = ck
            .attr("replicas")
            .and_then(|a| a.read_scalar::<u64>())
            .map_err(|e| err("read checkpoint replicas", e))? as usize;
        let particles = file
            .group("particles")
            .map_err(|e| err("open /particles", e))?;
        let mut groups = Vec::new();
        let mut states = Vec::new();
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
            let rd = |n: &str| -> Result<hdf5::Dataset> {
                ck.dataset(&format!("{n}_{r}"))
                    .map_err(|e| err("read checkpoint state", e))
            };
            let st = CheckpointState {
                x: rd("x")?.read_raw::<f64>().map_err(|e| err("read x", e))?,
                image: rd("image")?
                    .read_raw::<i32>()
                    .map_err(|e| err("read image", e))?,
                g: rd("g")?.read_raw::<f64>().map_err(|e| err("read g", e))?,
                step: rd("step")?
                    .read_scalar::<u64>()
                    .map_err(|e| err("read step", e))?,
                ref_unwrapped: rd("ref_unwrapped")?
                    .read_raw::<f64>()
                    .map_err(|e| err("read reference", e))?,
                ref_g: rd("ref_g")?
                    .read_raw::<f64>()
                    .map_err(|e| err("read reference", e))?,
            };
            states.push(st);
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
            }
        }
        Ok((
            H5mdWriter {
                path: path.to_path_buf(),
                partial,
                groups,
                observables,
                replicas,
                frames,
                finished: false,
                file: Some(file),
                last_checkpoint: None,
            },
            states,
        ))
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
    fn flush_pending(&self) -> Result<()> {
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

    /// Marks the frame complete and rewrites `/checkpoint` with every replica's state when
    /// `force` is set or the last checkpoint is [`CHECKPOINT_INTERVAL`] old (a resumed run
    /// continues from the last checkpoint; frames written after it are truncated and redone,
    /// identically).
    pub fn end_frame(&mut self, states: &[CheckpointState], force: bool) -> Result<()> {
        self.frames += 1;
        if !force
            && self
                .last_checkpoint
                .is_some_and(|t| t.elapsed() < CHECKPOINT_INTERVAL)
        {
            return Ok(());
        }
        self.last_checkpoint = Some(std::time::Instant::now());
        self.flush_pending()?;
        let path = self.path.clone();
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(&path, op, e);
        let file = self.file.as_ref().expect("open file");
        if let Ok(old) = file.group("checkpoint") {
            drop(old);
            file.unlink("checkpoint")
                .map_err(|e| err("replace /checkpoint", e))?;
        }
        let ck = file
            .create_group("checkpoint")
            .map_err(|e| err("create /checkpoint", e))?;
        for (r, s) in states.iter().enumerate() {
            ck.new_dataset_builder()
                .with_data(&s.x)
                .create(format!("x_{r}").as_str())
                .map_err(|e| err("write checkpoint", e))?;
            ck.new_dataset_builder()
                .with_data(&s.image)
                .create(format!("image_{r}").as_str())
                .map_err(|e| err("write checkpoint", e))?;
            ck.new_dataset_builder()
                .with_data(&s.g)
                .create(format!("g_{r}").as_str())
                .map_err(|e| err("write checkpoint", e))?;
            ck.new_dataset_builder()
                .with_data(&s.ref_unwrapped)
                .create(format!("ref_unwrapped_{r}").as_str())
                .map_err(|e| err("write checkpoint", e))?;
            ck.new_dataset_builder()
                .with_data(&s.ref_g)
                .create(format!("ref_g_{r}").as_str())
                .map_err(|e| err("write checkpoint", e))?;
            ck.new_dataset::<u64>()
                .shape(())
                .create(format!("step_{r}").as_str())
                .and_then(|d| d.write_scalar(&s.step))
                .map_err(|e| err("write checkpoint", e))?;
        }
        write_attr(&ck, "frames", &AttrValue::U64(self.frames as u64), &path)?;
        write_attr(&ck, "replicas", &AttrValue::U64(states.len() as u64), &path)?;
        file.flush().map_err(|e| err("flush", e))?;
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

    /// Removes the checkpoint, closes the file and renames it into place.
    pub fn finish(mut self) -> Result<usize> {
        self.flush_pending()?;
        let file = self.file.take().expect("open file");
        let _ = file.unlink("checkpoint");
        self.groups.clear();
        self.observables.clear();
        file.close()
            .map_err(|e| IoError::hdf5(&self.path, "close", e))?;
        commit_file(&self.partial, &self.path)?;
        self.finished = true;
        Ok(self.frames)
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
