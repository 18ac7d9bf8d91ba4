//! External forecasters: any program joins the benchmark through files.
//!
//! # The subprocess protocol (version 1)
//!
//! For every forecast (one system, one test trajectory) the benchmark makes a fresh directory
//! holding
//!
//! - `train.npy`: the training series, float64, shape [T, D] (C order);
//! - `context.npy`: the steps just before the forecast window, float64, [C, D];
//! - `request.json`: `{"protocol": 1, "model", "system", "test_case", "horizon", "dim", "dt",
//!   "points_per_period", "lyapunov_max", "variables", "seed", "train": "train.npy",
//!   "context": "context.npy", "output": "forecast.npy", "output_json": "forecast.json"}`
//!   (`dt` in the system's time units; `lyapunov_max` may be null),
//!
//! and runs `sh -c COMMAND` in that directory with `PHASEFLOW_REQUEST` set to the absolute path of
//! `request.json` (stdin closed, stdout and stderr captured). The program writes its forecast of
//! `horizon` steps as `forecast.npy` (float64 or float32, shape \[H, D\], or \[H\] when D = 1) or as
//! `forecast.json` (`{"forecast": [[…D values…], …H rows…]}`) and exits with status 0. A non-zero
//! status, a time-out, or a missing or misshapen forecast is an error naming the model, the
//! system and the program's stderr.
//!
//! # Processes and scratch folders
//!
//! The program runs in a process group of its own (Unix). When the call ends — the program exited,
//! it ran past [`External::timeout`] (default [`DEFAULT_TIMEOUT`], `--external-timeout` on the
//! command line), its [`External::cancel`] token was cancelled (Ctrl-C), or the caller unwinds —
//! the whole group is killed (SIGKILL), so nothing it started keeps running (a helper that must
//! outlive the call has to leave the group, e.g. with `setsid`), and the scratch directory
//! (`phaseflow-external-PID-N` in the temporary directory, `$TMPDIR`) is removed. Directories left
//! by a process that was killed outright (SIGKILL) are removed by the next benchmark run
//! ([`clean_stale_scratch`]).
//!
//! `scripts/forecast_adapter_example.py` is a complete adapter (a trivial model plus the place
//! to call darts or a foundation model).

use super::{ForecastError, Forecaster, Series};
use crate::control::Cancel;
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Writes a float64 array of `shape` (C order) as a NumPy `.npy` file (format version 1.0).
pub fn write_npy(path: &Path, values: &[f64], shape: &[usize]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape_txt = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out)
}

/// Reads a `.npy` file of little-endian float64 or float32 in C order: (values, shape).
pub fn read_npy(path: &Path) -> Result<(Vec<f64>, Vec<usize>), crate::forecast::BenchError> {
    read_npy_inner(path).map_err(crate::forecast::BenchError::Failed)
}

fn read_npy_inner(path: &Path) -> Result<(Vec<f64>, Vec<usize>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |m: &str| format!("{}: not a readable .npy file: {m}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing magic string"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported version")),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + hlen)
            .ok_or_else(|| bad("short header"))?,
    )
    .map_err(|_| bad("header not text"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = header[i + key.len() + 2..].trim_start().strip_prefix(':')?;
        Some(rest.trim_start())
    };
    let descr = field("descr").ok_or_else(|| bad("no descr"))?;
    let width = if descr.starts_with("'<f8'") {
        8
    } else if descr.starts_with("'<f4'") {
        4
    } else {
        return Err(bad("only little-endian float64/float32 arrays are read"));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad(
            "Fortran-order arrays are not read (use np.ascontiguousarray)",
        ));
    }
    let shape_txt = field("shape").ok_or_else(|| bad("no shape"))?;
    let inner = shape_txt
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("malformed shape"))?;
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("malformed shape")))
        .collect::<Result<_, _>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &s| a.checked_mul(s))
        .filter(|n| n.checked_mul(width).is_some())
        .ok_or_else(|| bad("shape too large"))?;
    let data = &bytes[start + hlen..];
    if data.len() < n * width {
        return Err(bad("fewer values than the shape says"));
    }
    let values = if width == 8 {
        data.chunks_exact(8)
            .take(n)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    } else {
        data.chunks_exact(4)
            .take(n)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64)
            .collect()
    };
    Ok((values, shape))
}

/// What an external program is told about the series besides the arrays.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub system: String,
    pub test_case: usize,
    pub dt: f64,
    pub points_per_period: f64,
    pub lyapunov_max: Option<f64>,
    pub variables: Vec<String>,
    pub seed: u64,
}

/// How long one call of an external program may run by default (600 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A forecaster run as a subprocess (see the module docs for the protocol).
#[derive(Debug, Clone)]
pub struct External {
    pub name: String,
    pub command: String,
    pub info: RequestInfo,
    /// Longest run of one call (one forecast); then its process group is killed and the call
    /// fails naming the time-out.
    pub timeout: Duration,
    /// Cancelling this token (e.g. Ctrl-C) kills the running program's process group; the call
    /// then fails with "interrupted".
    pub cancel: Cancel,
    train: Option<Series>,
}

impl External {
    pub fn new(name: &str, command: &str, info: RequestInfo) -> External {
        External {
            name: name.into(),
            command: command.into(),
            info,
            timeout: DEFAULT_TIMEOUT,
            cancel: Cancel::new(),
            train: None,
        }
    }

    fn fail(&self, msg: String) -> ForecastError {
        ForecastError::Failed {
            model: self.name.clone(),
            msg: format!("system {}: {msg}", self.info.system),
        }
    }
}

/// Prefix of the scratch directories in the temporary directory: `phaseflow-external-PID-N`.
const SCRATCH_PREFIX: &str = "phaseflow-external-";

fn scratch_dir() -> std::io::Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{SCRATCH_PREFIX}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes the scratch directories of processes that no longer exist (a run killed outright
/// cannot remove its own); returns how many were removed. Directories of live processes, and
/// anything not named `phaseflow-external-PID-N`, are left alone.
pub fn clean_stale_scratch() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .filter(|(_, n)| n.parse::<u64>().is_ok())
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !process_exists(pid) && e.path().is_dir() && std::fs::remove_dir_all(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether a process with this id exists (Unix: `kill(pid, 0)`; elsewhere assumed).
fn process_exists(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// A running program in a process group of its own: dropping it (any way the call ends) kills
/// the whole group and reaps the program.
struct ChildGroup {
    child: std::process::Child,
    reaped: bool,
}

impl ChildGroup {
    /// Starts `cmd` as the leader of a new process group.
    fn spawn(cmd: &mut Command) -> std::io::Result<ChildGroup> {
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        Ok(ChildGroup {
            child: cmd.spawn()?,
            reaped: false,
        })
    }

    /// SIGKILL to every process of the group (the program and whatever it started).
    fn kill_group(&mut self) {
        #[cfg(unix)]
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill with a negative id signals the process group the program leads;
            // the group id stays reserved while the program is not reaped.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        #[cfg(not(unix))]
        let _ = self.child.kill();
    }

    /// Whether the program has exited, without reaping it (Linux: `waitid` with `WNOWAIT`, so
    /// its group id cannot be reused before [`ChildGroup::wait`]).
    fn exited(&mut self) -> std::io::Result<bool> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid only writes to it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let pid = self.child.id() as libc::id_t;
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            // SAFETY: waits (without blocking or reaping) for our own child.
            if unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags) } != 0 {
                let e = std::io::Error::last_os_error();
                // a signal (e.g. Ctrl-C, handled on another thread) interrupted the call
                return match e.kind() {
                    std::io::ErrorKind::Interrupted => Ok(false),
                    _ => Err(e),
                };
            }
            // SAFETY: si_pid is set by waitid (0 when the child is still running).
            Ok(unsafe { info.si_pid() } != 0)
        }
        #[cfg(not(target_os = "linux"))]
        {
            match self.child.try_wait()? {
                Some(_) => {
                    self.reaped = true;
                    Ok(true)
                }
                None => Ok(false),
            }
        }
    }

    /// Kills what is left of the group and reaps the program: its exit status.
    fn finish(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.kill_group();
        let st = self.child.wait();
        self.reaped = true;
        st
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// Removes the scratch directory when the call ends, whatever happened.
struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Forecaster for External {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn fit(&mut self, train: &Series) -> Result<(), ForecastError> {
        self.train = Some(train.clone());
        Ok(())
    }

    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        let train = self.train.as_ref().ok_or(ForecastError::NotFitted {
            model: self.name.clone(),
        })?;
        let io = |e: std::io::Error| self.fail(format!("scratch directory: {e}"));
        let dir = scratch_dir().map_err(io)?;
        let _cleanup = Cleanup(dir.clone());
        let d = context.dim;
        write_npy(&dir.join("train.npy"), &train.values, &[train.len(), d]).map_err(io)?;
        write_npy(
            &dir.join("context.npy"),
            &context.values,
            &[context.len(), d],
        )
        .map_err(io)?;
        let request = json!({
            "protocol": 1,
            "model": self.name,
            "system": self.info.system,
            "test_case": self.info.test_case,
            "horizon": horizon,
            "dim": d,
            "dt": self.info.dt,
            "points_per_period": self.info.points_per_period,
            "lyapunov_max": self.info.lyapunov_max,
            "variables": self.info.variables,
            "seed": self.info.seed,
            "train": "train.npy",
            "context": "context.npy",
            "output": "forecast.npy",
            "output_json": "forecast.json",
        });
        let req_path = dir.join("request.json");
        std::fs::write(&req_path, request.to_string()).map_err(io)?;
        // declared after `_cleanup`, so dropped before it: the group is dead before the
        // directory is removed
        let mut child = ChildGroup::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(&self.command)
                .current_dir(&dir)
                .env("PHASEFLOW_REQUEST", &req_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        )
        .map_err(|e| self.fail(format!("cannot start `{}`: {e}", self.command)))?;
        // drain stderr on a thread so a chatty program cannot block on a full pipe
        let mut stderr = child.child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let start = Instant::now();
        let waiting = |e: std::io::Error| self.fail(format!("waiting for `{}`: {e}", self.command));
        loop {
            if child.exited().map_err(waiting)? {
                break;
            }
            if self.cancel.is_cancelled() {
                return Err(self.fail(format!("`{}` interrupted", self.command)));
            }
            if start.elapsed() > self.timeout {
                return Err(self.fail(format!(
                    "`{}` timed out after {} s (--external-timeout)",
                    self.command,
                    self.timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // the program exited: whatever it left running in its group goes too (and closes the
        // stderr pipe it may hold)
        let status = child.finish().map_err(waiting)?;
        let err_text = reader.join().unwrap_or_default();
        let tail: String = {
            let t = err_text.trim();
            let start = t.len().saturating_sub(2000);
            let start = (start..=t.len())
                .find(|i| t.is_char_boundary(*i))
                .unwrap_or(t.len());
            t[start..].to_string()
        };
        if !status.success() {
            return Err(self.fail(format!(
                "`{}` exited with {status}; stderr:\n{tail}",
                self.command
            )));
        }
        let npy = dir.join("forecast.npy");
        let jsn = dir.join("forecast.json");
        let values = if npy.exists() {
            let (v, shape) = read_npy_inner(&npy).map_err(|e| self.fail(e))?;
            let ok = match shape.as_slice() {
                [h, dd] => *h == horizon && *dd == d,
                [h] => *h == horizon && d == 1,
                _ => false,
            };
            if !ok {
                return Err(self.fail(format!(
                    "forecast.npy has shape {shape:?}, expected [{horizon}, {d}]"
                )));
            }
            v
        } else if jsn.exists() {
            let text = std::fs::read_to_string(&jsn).map_err(io)?;
            let parsed: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| self.fail(format!("forecast.json: {e}")))?;
            let rows = parsed
                .get("forecast")
                .and_then(|v| v.as_array())
                .ok_or_else(|| self.fail("forecast.json has no \"forecast\" array".into()))?;
            let mut v = Vec::with_capacity(horizon * d);
            for r in rows {
                match r {
                    serde_json::Value::Array(xs) if xs.len() == d => {
                        for x in xs {
                            v.push(x.as_f64().unwrap_or(f64::NAN));
                        }
                    }
                    serde_json::Value::Number(x) if d == 1 => {
                        v.push(x.as_f64().unwrap_or(f64::NAN))
                    }
                    _ => return Err(self.fail(format!("forecast.json: a row is not {d} numbers"))),
                }
            }
            if v.len() != horizon * d {
                return Err(self.fail(format!(
                    "forecast.json has {} rows, expected {horizon}",
                    v.len() / d.max(1)
                )));
            }
            v
        } else {
            return Err(self.fail(format!(
                "`{}` wrote neither forecast.npy nor forecast.json; stderr:\n{tail}",
                self.command
            )));
        };
        Ok(Series::new(values, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip() {
        let dir = scratch_dir().unwrap();
        let _c = Cleanup(dir.clone());
        let p = dir.join("a.npy");
        let v: Vec<f64> = (0..12).map(|k| k as f64 * 0.5 - 1.0).collect();
        write_npy(&p, &v, &[4, 3]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(read_npy(&p).unwrap(), (v, vec![4, 3]));
        write_npy(&p, &[1.0, 2.0], &[2]).unwrap();
        assert_eq!(read_npy(&p).unwrap(), (vec![1.0, 2.0], vec![2]));
        // malformed files are errors, not panics
        for bytes in [
            b"not numpy".to_vec(),
            b"\x93NUMPY\x01\x00\x30\x00{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }".to_vec(),
            b"\x93NUMPY\x01\x00\x50\x00{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999), }".to_vec(),
        ] {
            std::fs::write(&p, bytes).unwrap();
            assert!(read_npy(&p).is_err());
        }
    }

    #[test]
    fn shell_program_through_the_protocol() {
        // a "model" in plain shell: copies the last context row by writing JSON by hand
        let mut m = External::new(
            "echo",
            "printf '{\"forecast\": [[1.5], [2.5]]}' > forecast.json",
            RequestInfo::default(),
        );
        let s = Series::new(vec![0.0, 1.0, 2.0], 1);
        m.fit(&s).unwrap();
        assert_eq!(m.predict(&s, 2).unwrap().values, vec![1.5, 2.5]);
        let bad = External::new("bad", "echo oops >&2; exit 3", RequestInfo::default());
        let mut bad = bad;
        bad.fit(&s).unwrap();
        let e = bad.predict(&s, 2).unwrap_err().to_string();
        assert!(e.contains("oops") && e.contains("bad"), "{e}");
    }
}
