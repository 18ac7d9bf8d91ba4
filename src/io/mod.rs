//! Trajectory files (HDF5) and trajectory plots (PNG).
//!
//! # File layout
//!
//! A phaseflow trajectory file is an HDF5 file (library format bounds v1.8 … latest, so any
//! HDF5 ≥ 1.8 reader, h5py included, can open it) with
//!
//! | object                 | type                    | content                                           |
//! |------------------------|-------------------------|---------------------------------------------------|
//! | `/time`                | `f64` `[T]`             | sample times; chunked, resizable (unlimited)       |
//! | `/time@units`          | UTF-8 string            | time units (`"dimensionless"` unless set)          |
//! | `/state`               | `f64` `[T, D]`          | row `k` is the state at `time[k]`; chunks of about 1 MiB ([`chunk_shape`]) |
//! | `/state@variables`     | UTF-8 string `[D]`      | component names                                   |
//! | `/@format`             | UTF-8 string            | always `"phaseflow-trajectory"` ([`FORMAT_NAME`]) |
//! | `/@format_version`     | `i64`                   | [`FORMAT_VERSION`]                                |
//! | `/@variables`          | UTF-8 string `[D]`      | component names (same as `/state@variables`)      |
//! | `/@<anything else>`    | see [`AttrValue`]       | set by the caller: system name, definition text, parameters, solver, … |
//!
//! Strings are variable-length UTF-8 (h5py reads them as `str`), numbers are native
//! little-endian `f64` / `i64` / `u64`, booleans are the HDF5 enum `{FALSE = 0, TRUE = 1}`
//! that h5py maps to `numpy.bool_`.
//!
//! Files are only ever written through [`TrajectoryWriter`], which streams frames into a
//! temporary file next to the destination and renames it into place in
//! [`TrajectoryWriter::finish`]: a run that fails or panics leaves no file behind, and the
//! destination path never holds a partial file.
//!
//! Particle files: H5MD ([`h5md`]) and GSD ([`gsd`]), read and converted through
//! [`particle_file`] whichever the format.
//!
//! Plots ([`plot_trajectory`]) are PNGs drawn with plotters, written the same way (temporary
//! name + rename).

pub mod gsd;
pub mod h5md;
pub mod particle_file;
pub mod plot;
mod trajectory;
pub(crate) use trajectory::open_read;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use plot::{plot_particles, plot_trajectory, PlotOptions, MAX_DRAWN_POINTS};
pub use trajectory::{
    chunk_shape, read_trajectory, write_trajectory, AttrValue, Trajectory, TrajectoryWriter,
    CHUNK_FRAMES, CHUNK_TARGET_BYTES, FORMAT_NAME, FORMAT_VERSION,
};

/// Errors of the I/O layer. Every variant names the file concerned, and its `Display` is a
/// complete sentence-like message (`<path>: <what failed>: <why>`), so callers can show it as is.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The HDF5 library reported an error.
    #[error("{}: {op}: {msg}", .path.display())]
    Hdf5 {
        /// File concerned.
        path: PathBuf,
        /// What was being done (`"create file"`, `"write /state"`, …).
        op: String,
        /// HDF5's message.
        msg: String,
    },
    /// A file-system operation failed.
    #[error("{}: {op}: {err}", .path.display())]
    Fs {
        /// File concerned.
        path: PathBuf,
        /// What was being done (`"rename into place"`, …).
        op: String,
        /// The underlying error.
        err: std::io::Error,
    },
    /// The file is HDF5 (or not even that) but not a phaseflow trajectory.
    #[error("{}: not a phaseflow trajectory file: {reason}", .path.display())]
    NotTrajectory {
        /// File concerned.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// The caller passed inconsistent data (wrong state length, bad axis index, …).
    #[error("{}: {msg}", .path.display())]
    Invalid {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Drawing the plot failed.
    #[error("{}: drawing the plot failed: {msg}", .path.display())]
    Plot {
        /// File concerned.
        path: PathBuf,
        /// plotters' message.
        msg: String,
    },
}

/// Result type of the I/O layer.
pub type Result<T, E = IoError> = std::result::Result<T, E>;

impl IoError {
    pub(crate) fn hdf5(path: &Path, op: impl Into<String>, e: impl std::fmt::Display) -> Self {
        IoError::Hdf5 {
            path: path.to_path_buf(),
            op: op.into(),
            msg: condense_hdf5_message(&e.to_string()),
        }
    }

    pub(crate) fn fs(path: &Path, op: impl Into<String>, err: std::io::Error) -> Self {
        IoError::Fs {
            path: path.to_path_buf(),
            op: op.into(),
            err,
        }
    }

    pub(crate) fn invalid(path: &Path, msg: impl Into<String>) -> Self {
        IoError::Invalid {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

/// HDF5's report of a failed system call (`…: file write failed: time = …, filename = …,
/// file descriptor = 3, errno = 28, error message = 'No space left on device', buf = …`) as one
/// line: `…: file write failed: No space left on device (errno 28)`. Other messages unchanged.
fn condense_hdf5_message(msg: &str) -> String {
    let Some((head, details)) = msg.split_once(": time = ") else {
        return msg.to_string();
    };
    let field = |key: &str| {
        details
            .split_once(key)
            .map(|(_, rest)| rest.split([',', '\'']).next().unwrap_or("").trim())
    };
    let why = details
        .split_once("error message = '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(m, _)| m);
    match (why, field("errno = ")) {
        (Some(why), Some(errno)) => format!("{head}: {why} (errno {errno})"),
        (Some(why), None) => format!("{head}: {why}"),
        _ => msg.to_string(),
    }
}

/// The 8-byte signature that starts an HDF5 file's superblock.
const HDF5_SIGNATURE: [u8; 8] = *b"\x89HDF\r\n\x1a\n";

/// Whether `path` holds an HDF5 file, by its content: the HDF5 signature at byte 0, 512, 1024,
/// 2048, … (where the format allows a user block), whatever the file is called.
pub fn is_hdf5(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut at = 0u64;
    while at + 8 <= len {
        let mut sig = [0u8; 8];
        if f.seek(SeekFrom::Start(at)).is_err() || f.read_exact(&mut sig).is_err() {
            return false;
        }
        if sig == HDF5_SIGNATURE {
            return true;
        }
        at = if at == 0 { 512 } else { at * 2 };
    }
    false
}

/// Checks that `path` is a readable HDF5 file and says what is wrong otherwise: missing or not a
/// regular file, empty, not HDF5 (no signature), or HDF5 that the library cannot open (a
/// truncated or damaged file). Lets a command name the fault of its input before it tries to
/// interpret it.
pub fn probe_hdf5(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| IoError::fs(path, "open", e))?;
    if !meta.is_file() {
        return Err(IoError::invalid(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(IoError::invalid(path, "the file is empty"));
    }
    if !is_hdf5(path) {
        return Err(IoError::invalid(
            path,
            "not an HDF5 file (no HDF5 signature in it)",
        ));
    }
    trajectory::open_read(path).map(drop).map_err(|e| {
        IoError::invalid(
            path,
            format!(
                "an HDF5 file that cannot be opened (truncated or damaged?): {}",
                condense_hdf5_message(&e.to_string())
            ),
        )
    })
}

/// Bytes available to this user on the file system holding `path`'s directory, where the
/// platform tells (`statvfs`); `None` otherwise.
pub fn available_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Refuses a destination in a directory that does not exist, or that exists and is not a regular
/// file (a device such as `/dev/null` or `/dev/full`, a directory, a symbolic link): outputs are
/// published by renaming a finished file over the destination, which would replace such an entry
/// instead of writing to it.
pub(crate) fn check_destination(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(dir) {
            Err(e) => {
                return Err(IoError::invalid(
                    path,
                    format!("the directory {} does not exist ({e})", dir.display()),
                ))
            }
            Ok(m) if !m.is_dir() => {
                return Err(IoError::invalid(
                    path,
                    format!("{} is not a directory", dir.display()),
                ))
            }
            Ok(_) => {}
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(IoError::invalid(
            path,
            "exists and is not a regular file (a device, directory or link): outputs are published by renaming a finished file into place, which would replace it; give the path of a regular file",
        )),
        _ => Ok(()),
    }
}

/// The destination check of every atomic write, for callers outside the I/O layer: an output
/// path that exists must be a regular file, in a directory that exists. Lets a long computation
/// refuse a bad `-o` before it starts rather than after.
pub fn check_output_path(path: &Path) -> Result<()> {
    check_destination(path)
}

/// `<dir>/.<file name><tag>-<pid>-<n><suffix>`: a hidden name next to `path`, unique within
/// this process (`n` counts up) and across live processes (`pid`). Fails for a destination that
/// is not a regular file ([`check_destination`]).
pub(crate) fn temp_path_for(path: &Path, tag: &str, suffix: &str) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    check_destination(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| IoError::invalid(path, "the path does not name a file"))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".{}{tag}-{}-{n}{suffix}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(path.with_file_name(tmp_name))
}

/// Removes the temporaries `<dir>/.<file name><tag>-<pid>-<n><suffix>` (the names of
/// [`temp_path_for`]) that processes no longer running left next to `path`: a run killed
/// (`kill -9`, a crash, a power cut) cannot remove its own, so the next one writing to the same
/// destination does. A temporary of a live process (this one included) is never touched;
/// liveness is asked of this host's kernel (`kill(pid, 0)`), so a directory shared between
/// hosts may keep another host's leftovers. Best effort: errors are ignored. Returns the paths
/// removed. On platforms without that check nothing is removed.
pub(crate) fn remove_stale_temporaries(path: &Path, tag: &str, suffix: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Some(name) = path.file_name() else {
        return removed;
    };
    let prefix = format!(".{}{tag}-", name.to_string_lossy());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|r| r.strip_suffix(suffix))
        else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(pid) && digits(n)) {
            continue;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && !process_alive(pid) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// Whether process `pid` exists on this host (this process counts as alive). Where this cannot
/// be known, every process counts as alive.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return true;
        };
        if p <= 0 {
            return true;
        }
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let r = unsafe { libc::kill(p, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Writes an HDF5 file through `fill` under a temporary name next to `path`, then renames it into
/// place (a reader never sees a partial file; on error the temporary file is removed). Temporaries
/// `.<name>.partial-<pid>-<n>` that dead processes left next to `path` are removed first
/// (`remove_stale_temporaries`; a particle run's resumable `.<name>.partial` has no pid and is
/// not one of them).
pub fn write_hdf5_atomically(
    path: &Path,
    fill: impl FnOnce(&hdf5::File) -> hdf5::Result<()>,
) -> Result<()> {
    let tmp = temp_path_for(path, ".partial", "")?;
    // what killed writers (kill -9) left here before
    remove_stale_temporaries(path, ".partial", "");
    let result = hdf5::File::create(&tmp).and_then(|f| {
        fill(&f)?;
        f.close()
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(IoError::hdf5(path, "write", e));
    }
    commit_file(&tmp, path)
}

/// Writes `bytes` to `path` atomically: under a temporary name unique to this process and
/// call (`temp_path_for`), synced, then renamed into place. A reader never sees a partial
/// file, two writers never share a temporary, and on error nothing is left behind; what dead
/// processes left next to `path` is removed first (`remove_stale_temporaries`).
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path_for(path, ".partial", "")?;
    remove_stale_temporaries(path, ".partial", "");
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(IoError::fs(&tmp, "write temporary file", e));
    }
    commit_file(&tmp, path)
}

/// Renames `tmp` onto `path` (atomic on POSIX file systems) after syncing `tmp` to disk, then
/// syncs the directory (best effort) so that the rename itself survives a crash.
pub(crate) fn commit_file(tmp: &Path, path: &Path) -> Result<()> {
    if let Err(e) = check_destination(path) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| IoError::fs(tmp, "sync temporary file", e))?;
    std::fs::rename(tmp, path)
        .map_err(|e| IoError::fs(path, format!("rename {} into place", tmp.display()), e))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
