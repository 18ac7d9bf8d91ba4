//! Splitting a command's work list over several processes (Slurm array tasks, hosts) and merging
//! the parts back: `--shard I/N` of `catalogue invariants`, `catalogue check`, `sweep`,
//! `forecast bench`, `simulate --ensemble`, and `phaseflow merge` ([`gather`] checks the shards;
//! [`merge`] writes a table's output; the benchmark and ensembles build theirs from the gathered
//! records: `crate::forecast::bench::merge_shards`, `crate::simulate::merge_ensemble`).
//!
//! # Shards
//!
//! A [`Shard`] `I/N` is part `I` (0-based, `0 ≤ I < N`) of `N`. Item `k` of the full, ordered
//! work list (catalogue files, grid points) belongs to shard `k mod N` (round-robin, so that
//! neighbouring entries of similar cost land on different shards). [`Shard::resolve`] takes an
//! explicit `--shard` first, then a Slurm job array's environment ([`Shard::from_env`]):
//! `I = SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` (MIN defaults to 0), `N =
//! SLURM_ARRAY_TASK_COUNT`, so `sbatch --array=1-8` gives shards 0/8 … 7/8.
//!
//! # Tables and shard files
//!
//! A sharded command produces a [`Table`]: a head, one text row per item of the full list, and
//! a tail; its unsharded output file is `head + rows in item order + tail` ([`publish`]). Run as
//! a shard, it writes a *shard file* instead (text, JSON Lines):
//!
//! ```text
//! {"format":"phaseflow-shard","version":1,"command":"sweep","work":"<16 hex>","items":12,"shard":1,"of":3,"head":"…","tail":"…"}
//! {"item":1,"text":"…"}
//! {"item":4,"text":"…"}
//! ```
//!
//! `work` identifies the full work list and every setting that changes a row ([`work_id`]:
//! FNV-1a of a canonical description); `items` is the length of the full list. [`merge`]
//! checks that the files are shards `0 … N−1` of one and the same work (same command, `work`,
//! `items`, `of`, head and tail), each exactly once, each holding exactly its own items, and
//! writes `head + rows + tail`: the bytes of the unsharded run's output.
//!
//! Outputs are written atomically ([`crate::io::write_bytes_atomically`]: a temporary next to
//! the destination, renamed into place; never over what is not a regular file). While a command
//! runs, its finished items are kept in a [`PartialFile`] beside the output, from which a killed
//! run continues (`sweep`, `simulate --ensemble`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `format` field of a shard file's header line.
pub const SHARD_FORMAT: &str = "phaseflow-shard";
/// The `version` field of a shard file's header line.
pub const SHARD_VERSION: u32 = 1;

/// Errors of sharding and merging; each message is complete (names the file or variable).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A `--shard` value or an environment variable is malformed or out of range.
    #[error("{0}")]
    Spec(String),
    /// A shard file cannot be read or is not one.
    #[error("{}: {msg}", .path.display())]
    File {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The shard files do not make up one complete run.
    #[error("{0}")]
    Mismatch(String),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
}

/// Part `index` (0-based) of `count` of a work list: item `k` belongs to it when
/// `k mod count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based index, `0 ≤ index < count`.
    pub index: usize,
    /// Number of shards, at least 1.
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = ShardError;
    /// `I/N` with `N ≥ 1` and `0 ≤ I < N` (0-based: `0/4` … `3/4`).
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = |why: &str| {
            ShardError::Spec(format!(
                "--shard '{s}': {why} (expected I/N, 0-based: 0/4, 1/4, 2/4, 3/4)"
            ))
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(|| bad("no '/'"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        let i: usize = i
            .trim()
            .parse()
            .map_err(|_| bad("I is not a whole number"))?;
        Shard::new(i, n).map_err(|e| bad(&e))
    }
}

impl Shard {
    /// The whole work list as one part (`0/1`).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; the message says which bound is broken.
    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 {
            return Err("N must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "I = {index} is not below N = {count} (shards are numbered from 0)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether item `k` of the full list belongs to this shard (`k mod count == index`).
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// The indices of the full list of `total` items that belong to this shard, increasing.
    pub fn items(&self, total: usize) -> Vec<usize> {
        (self.index..total).step_by(self.count).collect()
    }

    /// The shard of a Slurm job array, from the variables `var` returns (the process
    /// environment in [`Shard::resolve`]): `None` when `SLURM_ARRAY_TASK_ID` is not set;
    /// otherwise `SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` (MIN 0 when unset) of
    /// `SLURM_ARRAY_TASK_COUNT`. A malformed or inconsistent value is an error naming the
    /// variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
        let number = |name: &str| -> Result<Option<usize>, ShardError> {
            match var(name) {
                None => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                    ShardError::Spec(format!(
                        "{name}='{v}' is not a whole number (set by Slurm for a job array; give --shard I/N to override)"
                    ))
                }),
            }
        };
        let Some(id) = number("SLURM_ARRAY_TASK_ID")? else {
            return Ok(None);
        };
        let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            ShardError::Spec(
                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: give --shard I/N"
                    .into(),
            )
        })?;
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let index = id.checked_sub(min).ok_or_else(|| {
            ShardError::Spec(format!(
                "SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"
            ))
        })?;
        Shard::new(index, count).map(Some).map_err(|e| {
            ShardError::Spec(format!(
                "SLURM_ARRAY_TASK_ID={id} − SLURM_ARRAY_TASK_MIN={min} of SLURM_ARRAY_TASK_COUNT={count}: {e} (an array with gaps or a step, e.g. --array=0-9:2, cannot be mapped to shards: use --array=0-(N-1) or give --shard I/N)"
            ))
        })
    }

    /// The shard a command runs as: `explicit` (`--shard`) if given, else the Slurm array's
    /// ([`Shard::from_env`] on the process environment), else `None` (an unsharded run).
    pub fn resolve(explicit: Option<Shard>) -> Result<Option<Shard>, ShardError> {
        match explicit {
            Some(s) => Ok(Some(s)),
            None => Shard::from_env(|k| std::env::var(k).ok()),
        }
    }
}

/// A stable 64-bit identity (16 hex digits) of `description`: FNV-1a, the same on every
/// platform and build, so that shards computed on different hosts agree.
pub fn work_id(description: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in description {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A command's output as text: `head`, then the row of each item of the full work list in
/// order, then `tail`. A shard's table holds the rows of its own items only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The command (`"sweep"`, `"catalogue invariants"`, …), recorded in shard files.
    pub command: String,
    /// [`work_id`] of the full work list and settings.
    pub work: String,
    /// Length of the full work list.
    pub items: usize,
    /// Text before the rows (e.g. a CSV header line, with its newline).
    pub head: String,
    /// `(item index, row text)`, the text with its line end.
    pub rows: Vec<(usize, String)>,
    /// Text after the rows.
    pub tail: String,
}

impl Table {
    /// `head + rows (sorted by item) + tail`.
    pub fn render(&self) -> String {
        let mut rows: Vec<&(usize, String)> = self.rows.iter().collect();
        rows.sort_by_key(|r| r.0);
        let mut out = self.head.clone();
        for (_, r) in rows {
            out.push_str(r);
        }
        out.push_str(&self.tail);
        out
    }
}

/// One CSV field of a table row: arrays space-separated, missing values empty, text quoted (a
/// `"` inside becomes `'`), numbers in their shortest round-trip form. Shared by the invariants
/// tables of `catalogue invariants` and `sweep`.
pub fn csv_field(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_f64().map_or(String::new(), |f| format!("{f}")))
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::String(s) => format!("\"{}\"", s.replace('"', "'")),
        other => other.to_string(),
    }
}

/// First line of a shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    command: String,
    work: String,
    items: usize,
    shard: usize,
    of: usize,
    head: String,
    tail: String,
}

/// Every other line of a shard file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    item: usize,
    text: String,
}

/// What [`publish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The shard written (`None`: the complete output).
    pub shard: Option<Shard>,
    /// Rows in the file.
    pub rows: usize,
    /// Length of the full work list.
    pub items: usize,
}

/// Writes `table` to `path` atomically: the complete output ([`Table::render`]) when `shard`
/// is `None`, else a shard file (format in the module documentation) for [`merge`]. The rows
/// must be exactly the items of `shard` (all items when unsharded).
pub fn publish(path: &Path, table: &Table, shard: Option<Shard>) -> Result<Published, ShardError> {
    let whole = shard.unwrap_or(Shard::WHOLE);
    let mut have: Vec<usize> = table.rows.iter().map(|r| r.0).collect();
    have.sort_unstable();
    if have != whole.items(table.items) {
        return Err(ShardError::Mismatch(format!(
            "{}: internal error: the table holds {} rows, not the {} items of shard {whole}",
            path.display(),
            have.len(),
            whole.items(table.items).len()
        )));
    }
    let bytes = match shard {
        None => table.render(),
        Some(s) => {
            let header = Header {
                format: SHARD_FORMAT.into(),
                version: SHARD_VERSION,
                command: table.command.clone(),
                work: table.work.clone(),
                items: table.items,
                shard: s.index,
                of: s.count,
                head: table.head.clone(),
                tail: table.tail.clone(),
            };
            let mut out = serde_json::to_string(&header).expect("a header serialises");
            out.push('\n');
            let mut rows: Vec<&(usize, String)> = table.rows.iter().collect();
            rows.sort_by_key(|r| r.0);
            for (k, text) in rows {
                let row = Row {
                    item: *k,
                    text: text.clone(),
                };
                out.push_str(&serde_json::to_string(&row).expect("a row serialises"));
                out.push('\n');
            }
            out
        }
    };
    crate::io::write_bytes_atomically(path, bytes.as_bytes())?;
    Ok(Published {
        shard,
        rows: table.rows.len(),
        items: table.items,
    })
}

/// The resumable record of a long command's finished items, kept beside its output as
/// `.NAME.partial` (the name of [`crate::io::h5md::partial_path`]) until the output is
/// published: a first line identifying the work (the command's own format), then one line
/// `k<TAB>text` per finished item `k`, appended and synced as each finishes (from any thread).
/// A kill can only cut the last line short; [`PartialFile::read`] drops such a line (that item
/// runs again). `phaseflow sweep` and `simulate --ensemble` keep one.
#[derive(Debug)]
pub struct PartialFile {
    path: PathBuf,
    file: std::sync::Mutex<std::fs::File>,
}

/// What [`PartialFile::read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRows {
    /// The first line, with its line end.
    pub first_line: String,
    /// The finished items: `k` and the text after the tab, with its line end.
    pub rows: std::collections::BTreeMap<usize, String>,
    /// Length in bytes of the complete lines (what follows is a line cut short by a kill).
    complete: u64,
}

impl PartialFile {
    /// `.NAME.partial` beside `output` (refused for an output that is not a regular file).
    pub fn path_of(output: &Path) -> Result<PathBuf, ShardError> {
        Ok(crate::io::h5md::partial_path(output)?)
    }

    /// The partial file at `path`: `None` when there is none, or when it holds no complete first
    /// line (a run killed while creating it). Each row must be an item of `shard` of a work list
    /// of `items`; a last line without its line end is left out.
    pub fn read(
        path: &Path,
        shard: Shard,
        items: usize,
    ) -> Result<Option<PartialRows>, ShardError> {
        let bad = |msg: String| ShardError::File {
            path: path.to_path_buf(),
            msg,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(format!("cannot read: {e}"))),
        };
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let text = String::from_utf8_lossy(&bytes[..complete]);
        let mut lines = text.split_inclusive('\n');
        let Some(first_line) = lines.next() else {
            return Ok(None);
        };
        let mut rows = std::collections::BTreeMap::new();
        for line in lines {
            let (k, row) = line
                .split_once('\t')
                .and_then(|(k, r)| Some((k.parse::<usize>().ok()?, r)))
                .ok_or_else(|| {
                    bad(format!(
                        "not a row of a partial file: '{}'",
                        line.trim_end()
                    ))
                })?;
            if !shard.owns(k) || k >= items {
                return Err(bad(format!(
                    "row {k} is not an item of shard {shard} of {items}"
                )));
            }
            rows.insert(k, row.to_string());
        }
        Ok(Some(PartialRows {
            first_line: first_line.to_string(),
            rows,
            complete: complete as u64,
        }))
    }

    /// Creates the partial file at `path` (replacing any) with `first_line` (with its line
    /// end), synced.
    pub fn create(path: &Path, first_line: &str) -> Result<PartialFile, ShardError> {
        use std::io::Write;
        let bad = |what: &str, e: std::io::Error| ShardError::File {
            path: path.to_path_buf(),
            msg: format!("cannot {what}: {e}"),
        };
        let mut f = std::fs::File::create(path).map_err(|e| bad("create", e))?;
        f.write_all(first_line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| bad("write", e))?;
        Ok(PartialFile {
            path: path.to_path_buf(),
            file: std::sync::Mutex::new(f),
        })
    }

    /// Continues the partial file at `path` as [`PartialFile::read`] found it: a line cut short
    /// by a kill is cut off, and rows are appended after the complete ones.
    pub fn resume(path: &Path, found: &PartialRows) -> Result<PartialFile, ShardError> {
        let bad = |what: &str, e: std::io::Error| ShardError::File {
            path: path.to_path_buf(),
            msg: format!("cannot {what}: {e}"),
        };
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| bad("open", e))?;
        f.set_len(found.complete).map_err(|e| bad("truncate", e))?;
        Ok(PartialFile {
            path: path.to_path_buf(),
            file: std::sync::Mutex::new(f),
        })
    }

    /// Appends the row of item `k` (`text`: one line, with its line end) and syncs it to disk.
    pub fn append(&self, k: usize, text: &str) -> Result<(), ShardError> {
        use std::io::Write;
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(format!("{k}\t{text}").as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| ShardError::File {
                path: self.path.clone(),
                msg: format!("cannot append: {e}"),
            })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes and removes the file (once the output it served is published).
    pub fn remove(self) {
        let PartialFile { path, file } = self;
        drop(file);
        let _ = std::fs::remove_file(path);
    }
}

/// A command line as one string for a shell: arguments of letters, digits and `-_=./,:+` as
/// they are, others in single quotes. The `command_line` attribute of output files.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=./,:+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A shard file as read by [`read_shard`].
#[derive(Debug, Clone)]
pub struct ShardFile {
    /// Which shard of how many.
    pub shard: Shard,
    /// The table (its rows: this shard's).
    pub table: Table,
}

/// Reads a shard file written by [`publish`], checking its header and that it holds exactly
/// the rows of its shard.
pub fn read_shard(path: &Path) -> Result<ShardFile, ShardError> {
    let bad = |msg: String| ShardError::File {
        path: path.to_path_buf(),
        msg,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let header: Header = serde_json::from_str(first).map_err(|_| {
        bad("not a phaseflow shard file (written by a command run with --shard I/N)".into())
    })?;
    if header.format != SHARD_FORMAT {
        return Err(bad(format!(
            "not a phaseflow shard file (format '{}')",
            header.format
        )));
    }
    if header.version != SHARD_VERSION {
        return Err(bad(format!(
            "shard format version {} (this build reads {SHARD_VERSION})",
            header.version
        )));
    }
    let shard = Shard::new(header.shard, header.of)
        .map_err(|e| bad(format!("shard {}/{}: {e}", header.shard, header.of)))?;
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let row: Row = serde_json::from_str(line)
            .map_err(|e| bad(format!("line {}: not a row: {e}", n + 2)))?;
        rows.push((row.item, row.text));
    }
    if !text.ends_with('\n') {
        return Err(bad("truncated (no final line end)".into()));
    }
    let got: Vec<usize> = rows.iter().map(|r| r.0).collect();
    if got != shard.items(header.items) {
        return Err(bad(format!(
            "holds {} rows, not the {} items of shard {shard} of {} (truncated or edited?)",
            got.len(),
            shard.items(header.items).len(),
            header.items
        )));
    }
    Ok(ShardFile {
        shard,
        table: Table {
            command: header.command,
            work: header.work,
            items: header.items,
            head: header.head,
            rows,
            tail: header.tail,
        },
    })
}

/// What [`merge`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merged {
    /// The command whose output was merged.
    pub command: String,
    /// Number of shards.
    pub shards: usize,
    /// Rows written (the full work list).
    pub items: usize,
}

/// The shard files of one run, checked and put together by [`gather`].
#[derive(Debug, Clone)]
pub struct Gathered {
    /// The complete table: every item's row.
    pub table: Table,
    /// Number of shards.
    pub shards: usize,
    /// `sources[k]`: the shard file that held item `k`.
    pub sources: Vec<PathBuf>,
}

/// Reads the shard files `inputs` (any order) and checks that they are shards `0 … N−1` of one
/// run, each exactly once: refuses (naming the files) files that are not shards, shards of
/// different runs (command, work identity, item count, head or tail), a shard given twice, and
/// a missing shard. Commands whose output is not `head + rows + tail` (`forecast bench`,
/// `simulate --ensemble`) build it from the [`Gathered`] table themselves.
pub fn gather(inputs: &[PathBuf]) -> Result<Gathered, ShardError> {
    if inputs.is_empty() {
        return Err(ShardError::Mismatch("merge: no shard files given".into()));
    }
    let files: Vec<ShardFile> = inputs
        .iter()
        .map(|p| read_shard(p))
        .collect::<Result<_, _>>()?;
    let first = &files[0];
    let mut by_index: Vec<Option<&Path>> = vec![None; first.shard.count];
    for (f, p) in files.iter().zip(inputs) {
        let same = f.table.command == first.table.command
            && f.table.work == first.table.work
            && f.table.items == first.table.items
            && f.shard.count == first.shard.count
            && f.table.head == first.table.head
            && f.table.tail == first.table.tail;
        if !same {
            return Err(ShardError::Mismatch(format!(
                "{} (`{}`, work {}, shard {} of {} items) is not a shard of the same run as {} (`{}`, work {}, shard {} of {} items): shards must come from one command with the same settings and work list",
                p.display(), f.table.command, f.table.work, f.shard, f.table.items,
                inputs[0].display(), first.table.command, first.table.work, first.shard, first.table.items
            )));
        }
        if let Some(q) = by_index[f.shard.index] {
            return Err(ShardError::Mismatch(format!(
                "shard {} is given twice: {} and {}",
                f.shard,
                q.display(),
                p.display()
            )));
        }
        by_index[f.shard.index] = Some(p);
    }
    let missing: Vec<String> = by_index
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_none())
        .map(|(i, _)| format!("{i}/{}", first.shard.count))
        .collect();
    if !missing.is_empty() {
        return Err(ShardError::Mismatch(format!(
            "missing shard{} {} of `{}` (work {}): give all {} shard files",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            first.table.command,
            first.table.work,
            first.shard.count
        )));
    }
    let mut table = first.table.clone();
    table.rows = files.iter().flat_map(|f| f.table.rows.clone()).collect();
    table.rows.sort_by_key(|r| r.0);
    let mut sources = vec![PathBuf::new(); table.items];
    for (f, p) in files.iter().zip(inputs) {
        for (k, _) in &f.table.rows {
            sources[*k] = p.clone();
        }
    }
    Ok(Gathered {
        table,
        shards: first.shard.count,
        sources,
    })
}

/// Merges the shard files `inputs` (any order, checked by [`gather`]) of a command whose
/// output is its table (`sweep`, `catalogue invariants`, `catalogue check -o`) into `output`,
/// atomically: the bytes the unsharded run writes.
pub fn merge(output: &Path, inputs: &[PathBuf]) -> Result<Merged, ShardError> {
    let g = gather(inputs)?;
    publish(output, &g.table, None)?;
    Ok(Merged {
        command: g.table.command,
        shards: g.shards,
        items: g.table.items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_env() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["4/4", "0/0", "a/2", "1", "-1/2", "1/x"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Shard::from_env(env(&[])).unwrap(), None);
        let s = Shard::from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 2, count: 4 }));
        let e = Shard::from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "x"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID='x'"), "{e}");
        assert_eq!(Shard { index: 1, count: 3 }.items(8), vec![1, 4, 7]);
        assert_eq!(work_id(b""), "cbf29ce484222325");
    }
}
