//! Streaming HDF5 trajectory writer and reader. The file layout is documented in [`super`].
//!
//! This is the only code that writes trajectories to HDF5.
//!
//! # Ensembles
//!
//! An ensemble of `M` trajectories sampled at the same times: `/state` is `[M, T, D]` with
//! chunks `[1, rows, cols]` ([`chunk_shape`]), max shape `[M, unlimited, D]`, and a root
//! attribute `ensemble_size = M`; [`TrajectoryWriter::push`] takes a whole `M × D` frame and
//! each member's block is written with one hyperslab `(m, a..b, ..)`. `/time` stays `[T]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hdf5::types::{FloatSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, File, Location};

use super::{commit_file, temp_path_for, IoError, Result};

/// Value of the root attribute `format` of every phaseflow trajectory file.
pub const FORMAT_NAME: &str = "phaseflow-trajectory";
/// Value of the root attribute `format_version` written by this code.
pub const FORMAT_VERSION: i64 = 1;

/// The most frames in one chunk of `/state` (and of `/time`); narrow states get this many.
pub const CHUNK_FRAMES: usize = 4096;

/// Target size of one chunk of `/state`, in bytes (1 MiB): see [`chunk_shape`].
pub const CHUNK_TARGET_BYTES: usize = 1 << 20;

/// The chunk shape `(frames, variables)` of `/state` (of each member's `[T, D]` block for an
/// ensemble) for `dim` variables and, if known, `frames` frames in all.
///
/// Chunks hold about [`CHUNK_TARGET_BYTES`] (1 MiB): `frames × variables × 8 bytes` with
/// `frames = clamp(2^17 / dim, 1, CHUNK_FRAMES)` (4096 frames for a narrow state, e.g. 96 KiB
/// for Lorenz), never more frames than the trajectory has, and for a state wider than 2^17
/// variables one frame of 2^17 variables. The writer buffers exactly one chunk row of frames
/// (per member), so its memory is about 1 MiB per member whatever the length of the run.
pub fn chunk_shape(dim: usize, frames: Option<usize>) -> (usize, usize) {
    let target = CHUNK_TARGET_BYTES / std::mem::size_of::<f64>();
    let dim = dim.max(1);
    let mut rows = (target / dim).clamp(1, CHUNK_FRAMES);
    if let Some(t) = frames {
        rows = rows.min(t.max(1));
    }
    let cols = dim.min((target / rows).max(1));
    (rows, cols)
}

/// An HDF5 attribute value: scalar, string, or 1-D array.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// Variable-length UTF-8 string (h5py: `str`).
    Str(String),
    /// `f64` scalar.
    F64(f64),
    /// `i64` scalar.
    I64(i64),
    /// `u64` scalar.
    U64(u64),
    /// 1-D `f64` array.
    F64s(Vec<f64>),
    /// 1-D `i64` array (read back as [`AttrValue::F64s`]).
    I64s(Vec<i64>),
    /// 1-D array of variable-length UTF-8 strings (h5py: array of `str`).
    Strs(Vec<String>),
    /// Boolean (HDF5 enum `{FALSE, TRUE}` over `i8`, as h5py writes it).
    Bool(bool),
}

impl AttrValue {
    /// The string, if this is [`AttrValue::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Open HDF5 handles of a file being written. Field order matters: the datasets are dropped
/// (closed) before the file.
struct Handles {
    time: Dataset,
    state: Dataset,
    file: File,
}

/// Streams a trajectory into an HDF5 file (layout in [`super`]).
///
/// Frames are buffered (one chunk row of frames, see [`chunk_shape`]) and written a chunk row
/// at a time, so `push` never allocates and memory does not grow with the length of the run. The file is written under a temporary name in
/// the destination directory and only renamed to its final path by [`finish`]; dropping an
/// unfinished writer deletes the temporary file.
///
/// [`finish`]: TrajectoryWriter::finish
pub struct TrajectoryWriter {
    handles: Option<Handles>,
    path: PathBuf,
    tmp: PathBuf,
    dim: usize,
    /// Ensemble size M (1: a plain `[T, D]` file; > 1 or [`TrajectoryWriter::create_ensemble`]:
    /// `/state` is `[M, T, D]`).
    members: usize,
    ensemble: bool,
    /// Frames per chunk of `/state`, and frames buffered before a write.
    rows: usize,
    /// `rows` times.
    tbuf: Vec<f64>,
    /// `members` blocks of `rows × dim` values (row-major): component `j` of buffered frame `k`
    /// of member `m` is at `xbuf[(m * rows + k) * dim + j]`.
    xbuf: Vec<f64>,
    buffered: usize,
    written: usize,
    /// Set when a write failed: the file is in an unknown state and must not be committed.
    failed: bool,
    finished: bool,
}

impl std::fmt::Debug for TrajectoryWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrajectoryWriter")
            .field("path", &self.path)
            .field("tmp", &self.tmp)
            .field("dim", &self.dim)
            .field("frames", &(self.written + self.buffered))
            .finish()
    }
}

impl TrajectoryWriter {
    /// Creates the temporary file `<dir>/.<name>.tmp-<pid>-<n>` next to `path` (which is not
    /// touched until [`finish`](Self::finish)) with empty `/time` `[0]` and `/state` `[0, dim]`.
    /// Temporaries of the same name that processes no longer running left behind (a run killed
    /// by `kill -9`) are removed first; those of live processes are left alone.
    ///
    /// `variables` are the names of the `dim` state components; they are stored as root
    /// attribute `variables` and as `/state` attribute `variables`.
    pub fn create(path: &Path, dim: usize, variables: &[String]) -> Result<Self> {
        Self::create_inner(path, 1, false, dim, variables, None)
    }

    /// [`create`](Self::create) for a trajectory of about `frames` frames: chunks are never
    /// longer than that ([`chunk_shape`]), so a short, wide trajectory makes a small file.
    /// More (or fewer) frames may still be pushed.
    pub fn create_sized(
        path: &Path,
        dim: usize,
        variables: &[String],
        frames: usize,
    ) -> Result<Self> {
        Self::create_inner(path, 1, false, dim, variables, Some(frames))
    }

    /// Like [`create`](Self::create) for an ensemble of `members` trajectories sampled at the
    /// same times: `/state` is `[M, T, D]` (chunks `[1, rows, cols]`, [`chunk_shape`]) and the root
    /// attribute `ensemble_size` is M. [`push`](Self::push) then takes all members' states at
    /// one time, member-major (`M × D` values).
    pub fn create_ensemble(
        path: &Path,
        members: usize,
        dim: usize,
        variables: &[String],
    ) -> Result<Self> {
        Self::create_ensemble_inner(path, members, dim, variables, None)
    }

    /// [`create_ensemble`](Self::create_ensemble) for about `frames` frames per member (see
    /// [`create_sized`](Self::create_sized)).
    pub fn create_ensemble_sized(
        path: &Path,
        members: usize,
        dim: usize,
        variables: &[String],
        frames: usize,
    ) -> Result<Self> {
        Self::create_ensemble_inner(path, members, dim, variables, Some(frames))
    }

    fn create_ensemble_inner(
        path: &Path,
        members: usize,
        dim: usize,
        variables: &[String],
        frames: Option<usize>,
    ) -> Result<Self> {
        if members == 0 {
            return Err(IoError::invalid(path, "ensemble size must be at least 1"));
        }
        let mut w = Self::create_inner(path, members, true, dim, variables, frames)?;
        w.set_attr("ensemble_size", &AttrValue::U64(members as u64))?;
        Ok(w)
    }

    fn create_inner(
        path: &Path,
        members: usize,
        ensemble: bool,
        dim: usize,
        variables: &[String],
        frames: Option<usize>,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(IoError::invalid(path, "state dimension must be at least 1"));
        }
        if variables.len() != dim {
            return Err(IoError::invalid(
                path,
                format!(
                    "{} variable names given for a {dim}-dimensional state",
                    variables.len()
                ),
            ));
        }
        let tmp = temp_path_for(path, ".tmp", "")?;
        // what killed runs (kill -9) left here before
        super::remove_stale_temporaries(path, ".tmp", "");
        // A plain message for the commonest failure, rather than HDF5's.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    let e = std::io::Error::other(format!("{} is not a directory", dir.display()));
                    return Err(IoError::fs(path, "create", e));
                }
                Err(e) => {
                    return Err(IoError::fs(
                        path,
                        format!("create (directory {})", dir.display()),
                        e,
                    ));
                }
            }
        }
        let (rows, cols) = chunk_shape(dim, frames);
        // From here on, `writer`'s Drop removes `tmp` if anything fails.
        let mut writer = TrajectoryWriter {
            handles: None,
            path: path.to_path_buf(),
            tmp,
            dim,
            members,
            ensemble,
            rows,
            tbuf: vec![0.0; rows],
            xbuf: vec![0.0; rows * dim * members],
            buffered: 0,
            written: 0,
            failed: false,
            finished: false,
        };
        writer.handles = Some(writer.open_tmp(variables, cols, frames)?);
        Ok(writer)
    }

    fn open_tmp(
        &self,
        variables: &[String],
        cols: usize,
        frames: Option<usize>,
    ) -> Result<Handles> {
        let (dim, rows) = (self.dim, self.rows);
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(&self.path, op, e);
        let file = File::with_options()
            .with_fapl(|p| {
                p.libver_v18()
                    .fclose_degree(hdf5::file::FileCloseDegree::Strong)
            })
            // no times in the root group's header: two runs of one command write the same bytes
            .with_fcpl(|p| p.obj_track_times(false))
            .create(&self.tmp)
            .map_err(|e| {
                IoError::hdf5(
                    &self.path,
                    format!("create temporary file {}", self.tmp.display()),
                    e,
                )
            })?;
        let time = file
            .new_dataset::<f64>()
            .chunk(CHUNK_FRAMES.min(frames.unwrap_or(CHUNK_FRAMES).max(1)))
            .shape(0..)
            .create("time")
            .map_err(|e| err("create /time", e))?;
        // Rows are appended one chunk row (`rows` frames × all variables) at a time, so every
        // write but the last covers whole chunks; the cache holds one such band (the last,
        // partial one is then written once, at close).
        let band = rows * dim * std::mem::size_of::<f64>();
        let slots = 10 * dim.div_ceil(cols) + 1;
        let cache_bytes = band.max(1 << 20);
        let state = if self.ensemble {
            file.new_dataset::<f64>()
                .chunk((1, rows, cols))
                .shape((self.members, 0.., dim))
                .with_dapl(|p| p.chunk_cache(slots, cache_bytes, 1.0))
                .create("state")
        } else {
            file.new_dataset::<f64>()
                .chunk((rows, cols))
                .shape((0.., dim))
                .with_dapl(|p| p.chunk_cache(slots, cache_bytes, 1.0))
                .create("state")
        }
        .map_err(|e| err("create /state", e))?;
        let path = &self.path;
        write_attr(
            &time,
            "units",
            &AttrValue::Str("dimensionless".into()),
            path,
        )?;
        let vars = AttrValue::Strs(variables.to_vec());
        write_attr(&state, "variables", &vars, path)?;
        write_attr(&file, "format", &AttrValue::Str(FORMAT_NAME.into()), path)?;
        write_attr(
            &file,
            "format_version",
            &AttrValue::I64(FORMAT_VERSION),
            path,
        )?;
        write_attr(&file, "variables", &vars, path)?;
        Ok(Handles { time, state, file })
    }

    fn handles(&self) -> Result<&Handles> {
        match (&self.handles, self.failed) {
            (Some(h), false) => Ok(h),
            _ => Err(IoError::invalid(
                &self.path,
                "an earlier write to this trajectory failed",
            )),
        }
    }

    /// Destination path given to [`create`](Self::create).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of frames pushed so far.
    pub fn frames(&self) -> usize {
        self.written + self.buffered
    }

    /// Appends the frame `(t, x)`; `x.len()` must be the state dimension (times the ensemble
    /// size, member-major, for ensembles). Frames are buffered and written a chunk row at a
    /// time ([`chunk_shape`]); no allocation happens here.
    pub fn push(&mut self, t: f64, x: &[f64]) -> Result<()> {
        // After a failed write the buffer may be full: refuse rather than index past it.
        self.handles()?;
        if x.len() != self.dim * self.members {
            return Err(IoError::invalid(
                &self.path,
                format!(
                    "frame at t = {t} has {} components, expected {}",
                    x.len(),
                    self.dim * self.members
                ),
            ));
        }
        let (k, d, rows) = (self.buffered, self.dim, self.rows);
        self.tbuf[k] = t;
        for (m, member) in x.chunks_exact(d).enumerate() {
            let at = (m * rows + k) * d;
            self.xbuf[at..at + d].copy_from_slice(member);
        }
        self.buffered += 1;
        if self.buffered == rows {
            self.flush_buffer()?;
        }
        Ok(())
    }

    /// Writes the buffered frames: grows `/time` and `/state` and writes the new rows, one
    /// hyperslab for `/time` and one for `/state` (per member), covering whole chunks.
    fn flush_buffer(&mut self) -> Result<()> {
        let n = self.buffered;
        if n == 0 {
            return Ok(());
        }
        let result = self.write_rows(n);
        if result.is_err() {
            self.failed = true;
        } else {
            self.written += n;
            self.buffered = 0;
        }
        result
    }

    fn write_rows(&self, n: usize) -> Result<()> {
        let h = self.handles()?;
        let (a, b) = (self.written, self.written + n);
        let err = |op: &str, e: hdf5::Error| IoError::hdf5(&self.path, op, e);
        h.time.resize(b).map_err(|e| err("grow /time", e))?;
        if self.ensemble {
            h.state.resize((self.members, b, self.dim))
        } else {
            h.state.resize((b, self.dim))
        }
        .map_err(|e| err("grow /state", e))?;
        h.time
            .write_slice(&self.tbuf[..n], a..b)
            .map_err(|e| err("write /time", e))?;
        let d = self.dim;
        for m in 0..self.members {
            let at = m * self.rows * d;
            let block = ndarray::ArrayView2::from_shape((n, d), &self.xbuf[at..at + n * d])
                .map_err(|e| IoError::invalid(&self.path, format!("frame block: {e}")))?;
            if self.ensemble {
                h.state.write_slice(block, (m, a..b, ..))
            } else {
                h.state.write_slice(block, (a..b, ..))
            }
            .map_err(|e| err("write /state", e))?;
        }
        Ok(())
    }

    /// Sets (or replaces) the root attribute `name`. Strings are variable-length UTF-8, arrays
    /// 1-D. `format` and `format_version` are reserved.
    pub fn set_attr(&mut self, name: &str, value: &AttrValue) -> Result<()> {
        if name == "format" || name == "format_version" {
            return Err(IoError::invalid(
                &self.path,
                format!("attribute name '{name}' is reserved"),
            ));
        }
        let h = self.handles()?;
        write_attr(&h.file, name, value, &self.path)
    }

    /// Sets the `units` attribute of `/time` (default `"dimensionless"`).
    pub fn set_time_units(&mut self, units: &str) -> Result<()> {
        let h = self.handles()?;
        write_attr(&h.time, "units", &AttrValue::Str(units.into()), &self.path)
    }

    /// Writes the buffered frames, closes the file, syncs it, and renames it atomically onto the
    /// destination path (replacing any existing file). Returns the number of frames.
    pub fn finish(mut self) -> Result<usize> {
        self.flush_buffer()?;
        let h = self.handles.take().ok_or_else(|| {
            IoError::invalid(&self.path, "an earlier write to this trajectory failed")
        })?;
        let Handles { time, state, file } = h;
        drop(time);
        drop(state);
        file.flush()
            .map_err(|e| IoError::hdf5(&self.path, "flush", e))?;
        file.close()
            .map_err(|e| IoError::hdf5(&self.path, "close", e))?;
        commit_file(&self.tmp, &self.path)?;
        self.finished = true;
        Ok(self.written)
    }
}

impl Drop for TrajectoryWriter {
    /// An unfinished writer closes and deletes its temporary file: no partial output remains.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        drop(self.handles.take());
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Writes attribute `name` on `loc`, replacing an existing one.
pub(crate) fn write_attr(loc: &Location, name: &str, value: &AttrValue, path: &Path) -> Result<()> {
    let op = || format!("write attribute '{name}'");
    let vlu = |s: &str| {
        VarLenUnicode::from_str(s).map_err(|e| {
            IoError::invalid(
                path,
                format!("attribute '{name}': string not storable: {e}"),
            )
        })
    };
    if loc.attr_info(name).is_ok() {
        loc.delete_attr(name)
            .map_err(|e| IoError::hdf5(path, op(), e))?;
    }
    let r: hdf5::Result<()> = match value {
        AttrValue::Str(s) => {
            let v = vlu(s)?;
            loc.new_attr::<VarLenUnicode>()
                .shape(())
                .create(name)
                .and_then(|a| a.write_scalar(&v))
        }
        AttrValue::F64(x) => scalar_attr(loc, name, x),
        AttrValue::I64(x) => scalar_attr(loc, name, x),
        AttrValue::U64(x) => scalar_attr(loc, name, x),
        AttrValue::Bool(x) => scalar_attr(loc, name, x),
        AttrValue::F64s(v) => loc
            .new_attr::<f64>()
            .shape(v.len())
            .create(name)
            .and_then(|a| a.write_raw(v.as_slice())),
        AttrValue::I64s(v) => loc
            .new_attr::<i64>()
            .shape(v.len())
            .create(name)
            .and_then(|a| a.write_raw(v.as_slice())),
        AttrValue::Strs(v) => {
            let v = v.iter().map(|s| vlu(s)).collect::<Result<Vec<_>>>()?;
            loc.new_attr::<VarLenUnicode>()
                .shape(v.len())
                .create(name)
                .and_then(|a| a.write_raw(v.as_slice()))
        }
    };
    r.map_err(|e| IoError::hdf5(path, op(), e))
}

fn scalar_attr<T: hdf5::H5Type>(loc: &Location, name: &str, x: &T) -> hdf5::Result<()> {
    loc.new_attr::<T>()
        .shape(())
        .create(name)
        .and_then(|a| a.write_scalar(x))
}

/// Reads an attribute into an [`AttrValue`]; `Ok(None)` for types without a counterpart
/// (compound, enum other than bool, fixed-length strings, arrays of more than one dimension, …).
pub(crate) fn read_attr(loc: &Location, name: &str) -> hdf5::Result<Option<AttrValue>> {
    use TypeDescriptor as T;
    let attr = loc.attr(name)?;
    let desc = attr.dtype()?.to_descriptor()?;
    let shape = attr.shape();
    let value = match (shape.len(), desc) {
        (0, T::VarLenUnicode) => AttrValue::Str(attr.read_scalar::<VarLenUnicode>()?.into()),
        (0, T::VarLenAscii) => AttrValue::Str(attr.read_scalar::<VarLenAscii>()?.into()),
        (0, T::Float(_)) => AttrValue::F64(attr.read_scalar::<f64>()?),
        (0, T::Integer(_)) => AttrValue::I64(attr.read_scalar::<i64>()?),
        (0, T::Unsigned(_)) => AttrValue::U64(attr.read_scalar::<u64>()?),
        (0, T::Boolean) => AttrValue::Bool(attr.read_scalar::<bool>()?),
        (1, T::Float(FloatSize::U8)) => AttrValue::F64s(attr.read_raw::<f64>()?),
        // Other numbers: integer → float is a "hard" conversion in HDF5 terms.
        (1, T::Float(_) | T::Integer(_) | T::Unsigned(_)) => AttrValue::F64s(
            attr.as_reader()
                .conversion(hdf5::Conversion::Hard)
                .read_raw::<f64>()?,
        ),
        (1, T::VarLenUnicode) => AttrValue::Strs(
            attr.read_raw::<VarLenUnicode>()?
                .into_iter()
                .map(Into::into)
                .collect(),
        ),
        (1, T::VarLenAscii) => AttrValue::Strs(
            attr.read_raw::<VarLenAscii>()?
                .into_iter()
                .map(Into::into)
                .collect(),
        ),
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// A trajectory read back from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// Sample times, `T` values.
    pub time: Vec<f64>,
    /// States, row-major `T × D` (`M × T × D` for ensembles): component `j` of frame `k` of
    /// member `m` is `state[(m * T + k) * dim + j]`.
    pub state: Vec<f64>,
    /// State dimension `D`.
    pub dim: usize,
    /// Ensemble size `M` (1 for a plain `[T, D]` file).
    pub members: usize,
    /// Component names (`D` of them).
    pub variables: Vec<String>,
    /// Every root attribute of the file whose type has an [`AttrValue`] counterpart (that is,
    /// everything the writer writes, `format`, `format_version` and `variables` included).
    pub attrs: BTreeMap<String, AttrValue>,
}

impl Trajectory {
    /// Number of frames `T`.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// `true` if there are no frames.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// State of frame `k` (`D` values; of the first member for ensembles).
    pub fn frame(&self, k: usize) -> &[f64] {
        &self.state[k * self.dim..(k + 1) * self.dim]
    }

    /// The root attribute `name` if it is a string.
    pub fn attr_str(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).and_then(AttrValue::as_str)
    }
}

/// Writes a whole trajectory (as [`read_trajectory`] returns it, or as
/// the run builder of `simulate` makes it) atomically through a [`TrajectoryWriter`]: a plain
/// `[T, D]` file for one member, `[M, T, D]` for an ensemble (M > 1, or a root attribute
/// `ensemble_size`); `variables` go to `/state@variables`, and every root attribute in `attrs`
/// is written (`format`, `format_version` and `ensemble_size` are the writer's own). Returns
/// the number of frames written.
pub fn write_trajectory(path: &Path, tr: &Trajectory) -> Result<usize> {
    let (t_len, d, m) = (tr.time.len(), tr.dim, tr.members);
    if tr.variables.len() != d || tr.state.len() != m * t_len * d {
        return Err(IoError::invalid(
            path,
            format!(
                "inconsistent trajectory: {} times, {} members, dimension {d}, {} names, {} state values",
                t_len,
                m,
                tr.variables.len(),
                tr.state.len()
            ),
        ));
    }
    let ensemble = m > 1 || tr.attrs.contains_key("ensemble_size");
    let mut w = if ensemble {
        TrajectoryWriter::create_ensemble_sized(path, m, d, &tr.variables, t_len)?
    } else {
        TrajectoryWriter::create_sized(path, d, &tr.variables, t_len)?
    };
    let mut frame = vec![0.0; m * d];
    for (k, &t) in tr.time.iter().enumerate() {
        for j in 0..m {
            let row = (j * t_len + k) * d;
            frame[j * d..(j + 1) * d].copy_from_slice(&tr.state[row..row + d]);
        }
        w.push(t, &frame)?;
    }
    for (k, v) in &tr.attrs {
        if !matches!(k.as_str(), "format" | "format_version" | "ensemble_size") {
            w.set_attr(k, v)?;
        }
    }
    w.finish()
}

/// Reads a whole trajectory file. Fails with an error naming `path` if the file is missing, is
/// not HDF5, or lacks a consistent `/time` `[T]` + `/state` `[T, D]` pair (a `format` attribute,
/// if present, must be [`FORMAT_NAME`] with a version this code understands), and, before
/// reading, if its data (`T × (M·D + 1) × 8` bytes) exceed [`crate::control::memory_budget`].
pub fn read_trajectory(path: &Path) -> Result<Trajectory> {
    std::fs::metadata(path).map_err(|e| IoError::fs(path, "open", e))?;
    let not_traj = |reason: String| IoError::NotTrajectory {
        path: path.to_path_buf(),
        reason,
    };
    let file = open_read(path).map_err(|e| not_traj(format!("cannot open as HDF5 ({e})")))?;
    let err = |op: &str, e: hdf5::Error| IoError::hdf5(path, op, e);

    let names = file
        .attr_names()
        .map_err(|e| err("list root attributes", e))?;
    let mut attrs = BTreeMap::new();
    for name in names {
        let v = read_attr(&file, &name).map_err(|e| err(&format!("read attribute '{name}'"), e))?;
        if let Some(v) = v {
            attrs.insert(name, v);
        }
    }
    match attrs.get("format") {
        None => {}
        Some(AttrValue::Str(s)) if s == FORMAT_NAME => {}
        Some(other) => return Err(not_traj(format!("root attribute format = {other:?}"))),
    }
    if let Some(v) = attrs.get("format_version") {
        match v {
            AttrValue::I64(v) if (1..=FORMAT_VERSION).contains(v) => {}
            other => {
                return Err(not_traj(format!(
                    "unsupported format_version {other:?} (this build reads 1..={FORMAT_VERSION})"
                )));
            }
        }
    }

    let time_ds = file
        .dataset("time")
        .map_err(|_| not_traj("no /time dataset".into()))?;
    let state_ds = file
        .dataset("state")
        .map_err(|_| not_traj("no /state dataset".into()))?;
    let (tshape, sshape) = (time_ds.shape(), state_ds.shape());
    let ok2 = sshape.len() == 2 && tshape.len() == 1 && sshape[0] == tshape[0] && sshape[1] > 0;
    let ok3 = sshape.len() == 3
        && tshape.len() == 1
        && sshape[1] == tshape[0]
        && sshape[2] > 0
        && sshape[0] > 0;
    if !(ok2 || ok3) {
        return Err(not_traj(format!(
            "/time has shape {tshape:?} and /state {sshape:?}; expected [T] and [T, D] or [M, T, D]"
        )));
    }
    let (members, dim) = if ok3 {
        (sshape[0], sshape[2])
    } else {
        (1, sshape[1])
    };
    // read whole: refused up front beyond the machine's memory, rather than a failed allocation
    let frames = tshape[0];
    let bytes = frames as f64 * (1 + members * dim) as f64 * 8.0;
    let budget = crate::control::memory_budget();
    if bytes > budget as f64 {
        use crate::control::{human_bytes, human_count};
        return Err(IoError::invalid(
            path,
            format!(
                "reading it whole takes {} ({} times × {} values × 8 bytes), more than the memory budget of {} (this machine's memory)",
                human_bytes(bytes),
                human_count(frames),
                1 + members * dim,
                human_bytes(budget as f64)
            ),
        ));
    }
    let time = time_ds
        .read_raw::<f64>()
        .map_err(|e| err("read /time", e))?;
    let state = state_ds
        .read_raw::<f64>()
        .map_err(|e| err("read /state", e))?;

    let variables = match state_ds
        .attr_info("variables")
        .ok()
        .map(|_| read_attr(&state_ds, "variables"))
        .transpose()
        .map_err(|e| err("read /state attribute 'variables'", e))?
        .flatten()
        .or_else(|| attrs.get("variables").cloned())
    {
        Some(AttrValue::Strs(v)) if v.len() == dim => v,
        _ => (0..dim).map(|j| format!("x{j}")).collect(),
    };

    Ok(Trajectory {
        time,
        state,
        dim,
        members,
        variables,
        attrs,
    })
}

/// Opens an HDF5 file read-only without HDF5's advisory file locking: phaseflow publishes files
/// by renaming complete temporary files, so readers never see a file being written, and a lock
/// left by a handle still closing (seen under load in the test suite: "unable to lock file,
/// errno = 11") must not make a finished file unreadable.
pub(crate) fn open_read(path: &Path) -> hdf5::Result<File> {
    File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
}
