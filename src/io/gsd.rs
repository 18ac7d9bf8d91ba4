//! GSD files (General Simulation Data, the trajectory format of HOOMD-blue, read by OVITO, freud
//! and the `gsd` Python package): a writer and a reader of the GSD file layer, version 2.0,
//! written from its published description (the gsd documentation, "File layer"), and the parts
//! of the HOOMD schema phaseflow uses.
//!
//! # File layer
//!
//! All integers little-endian (the byte order of every platform phaseflow runs on; GSD files are
//! written in the writer's native order).
//!
//! | bytes | content |
//! |---|---|
//! | 0‥256 | header: `u64 magic` = `0x65DF65DF65DF65DF`, `u64 index_location`, `u64 index_allocated_entries`, `u64 namelist_location`, `u64 namelist_allocated_entries` (in units of 64 bytes), `u32 schema_version`, `u32 gsd_version` (both `major << 16 \| minor`), `char application[64]`, `char schema[64]`, 80 reserved bytes (zero) |
//! | anywhere | chunk data: `N × M` values of the chunk's type, row-major |
//! | `namelist_location` | chunk names, each NUL-terminated, one after another; a chunk's id is its name's position; zeros after the last (GSD 1.x: one name per 64-byte slot) |
//! | `index_location` | `index_allocated_entries` entries of 32 bytes: `u64 frame`, `u64 N`, `i64 location`, `u32 M`, `u16 id`, `u8 type`, `u8 flags` (= 0); the used entries first, sorted by (frame, id), then zeros (`location` = 0 ends the list) |
//!
//! Types: 1 `u8`, 2 `u16`, 3 `u32`, 4 `u64`, 5 `i8`, 6 `i16`, 7 `i32`, 8 `i64`, 9 `f32`, 10 `f64`,
//! 11 character. The number of frames is the last entry's frame + 1.
//!
//! [`GsdWriter`] appends the chunks of each frame to the end of the data as they come and keeps
//! the index (32 bytes per chunk) in memory; [`GsdWriter::finish`] writes the name list and the
//! index after the data and then the header that points to them, so a file is valid only once
//! finished — it is written under a temporary name and renamed into place by the caller.
//! [`GsdFile`] reads any GSD 1.x or 2.x file: every size in the header and the index is checked
//! against the file's length before anything is allocated or read, so a truncated or damaged
//! file gives an error naming the file and the fault, never a panic or an unbounded allocation.
//!
//! # HOOMD schema
//!
//! Schema name `hoomd`, version [`HOOMD_SCHEMA_VERSION`] (1.4: single-precision floats, what
//! HOOMD-blue 2–4, OVITO and freud read). Chunks (per frame; a chunk missing from frame i takes
//! its value from frame 0, else the schema's default):
//! `configuration/step` (`u64` 1×1), `configuration/dimensions` (`u8` 1×1, 2 or 3),
//! `configuration/box` (`f32` 6×1: Lx, Ly, Lz, xy, xz, yz; Lz = 0 in 2-D, as HOOMD-blue 3+
//! expects), `particles/N` (`u32` 1×1), `particles/types` (`i8` T×W, NUL-padded names),
//! `particles/typeid` (`u32` N×1), `particles/position` (`f32` N×3, in [−L/2, L/2)),
//! `particles/image` (`i32` N×3), `particles/orientation` (`f32` N×4 quaternions (w, x, y, z)),
//! and `log/...` (any type; `log/particles/...` per particle).
//!
//! Orientation convention ([`quaternion_from_unit`], [`unit_from_quaternion`]): the quaternion
//! of a unit vector u rotates the body axis (1, 0, 0) onto u (HOOMD-blue's active force acts
//! along the body x axis): q = (1 + u_x, 0, −u_z, u_y)/√(2(1 + u_x)), and in 2-D, for u = (cos θ,
//! sin θ) with θ in (−π, π], q = (cos θ/2, 0, 0, sin θ/2) (w ≥ 0: of the two quaternions of a
//! rotation, q and −q, the one with w ≥ 0). A reader gets u back by rotating (1, 0, 0) by q.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{IoError, Result};

/// The magic number at byte 0 of every GSD file.
pub const GSD_MAGIC: u64 = 0x65DF_65DF_65DF_65DF;
/// The file-layer version [`GsdWriter`] writes: 2.0 (read by gsd ≥ 2.0, HOOMD-blue ≥ 2.9, OVITO 3).
pub const GSD_VERSION: (u32, u32) = (2, 0);
/// Schema name of HOOMD-blue files.
pub const HOOMD_SCHEMA: &str = "hoomd";
/// The HOOMD schema version written: 1.4 (single-precision particle data).
pub const HOOMD_SCHEMA_VERSION: (u32, u32) = (1, 4);

const HEADER_BYTES: u64 = 256;
const ENTRY_BYTES: u64 = 32;
const NAME_BLOCK: usize = 64;
/// Index entries allocated at least (as the reference writer does for a new file).
const MIN_INDEX_ENTRIES: u64 = 128;
/// Largest name list read (a valid file holds at most 65535 names).
const MAX_NAMELIST_BYTES: u64 = 64 << 20;

/// `major << 16 | minor`, the packed version of the header.
pub fn make_version(major: u32, minor: u32) -> u32 {
    (major << 16) | (minor & 0xffff)
}

/// A GSD chunk type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GsdType {
    U8 = 1,
    U16 = 2,
    U32 = 3,
    U64 = 4,
    I8 = 5,
    I16 = 6,
    I32 = 7,
    I64 = 8,
    F32 = 9,
    F64 = 10,
    Char = 11,
}

impl GsdType {
    /// The type of code `t`, if it is one.
    pub fn from_code(t: u8) -> Option<GsdType> {
        use GsdType::*;
        Some(match t {
            1 => U8,
            2 => U16,
            3 => U32,
            4 => U64,
            5 => I8,
            6 => I16,
            7 => I32,
            8 => I64,
            9 => F32,
            10 => F64,
            11 => Char,
            _ => return None,
        })
    }

    /// Bytes per value.
    pub fn size(self) -> u64 {
        use GsdType::*;
        match self {
            U8 | I8 | Char => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
        }
    }

    /// The type's name (`float32`, `uint64`, …) for messages.
    pub fn name(self) -> &'static str {
        use GsdType::*;
        match self {
            U8 => "uint8",
            U16 => "uint16",
            U32 => "uint32",
            U64 => "uint64",
            I8 => "int8",
            I16 => "int16",
            I32 => "int32",
            I64 => "int64",
            F32 => "float32",
            F64 => "float64",
            Char => "character",
        }
    }
}

/// A value type GSD stores ([`GsdWriter::write`], [`GsdFile::read`]).
pub trait GsdValue: Copy + Default {
    const TYPE: GsdType;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// The value of little-endian bytes (`b.len()` = the type's size).
    fn get(b: &[u8]) -> Self;
}

macro_rules! gsd_value {
    ($t:ty, $g:ident) => {
        impl GsdValue for $t {
            const TYPE: GsdType = GsdType::$g;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("the type's size"))
            }
        }
    };
}
gsd_value!(u8, U8);
gsd_value!(u16, U16);
gsd_value!(u32, U32);
gsd_value!(u64, U64);
gsd_value!(i8, I8);
gsd_value!(i16, I16);
gsd_value!(i32, I32);
gsd_value!(i64, I64);
gsd_value!(f32, F32);
gsd_value!(f64, F64);

/// One entry of the index: where chunk `id` of `frame` is and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub frame: u64,
    /// Rows N and columns M.
    pub n: u64,
    pub m: u32,
    /// Byte offset of the data in the file.
    pub location: u64,
    /// Position of the chunk's name in the name list.
    pub id: u16,
    pub kind: GsdType,
}

impl IndexEntry {
    /// Bytes of the chunk's data (None when N·M·size overflows).
    fn bytes(&self) -> Option<u64> {
        self.n
            .checked_mul(self.m as u64)
            .and_then(|v| v.checked_mul(self.kind.size()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.frame.to_le_bytes());
        out.extend_from_slice(&self.n.to_le_bytes());
        out.extend_from_slice(&(self.location as i64).to_le_bytes());
        out.extend_from_slice(&self.m.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.push(self.kind as u8);
        out.push(0);
    }
}

/// Writes a GSD file (see the module docs): chunks appended frame by frame, the name list, the
/// index and the header at [`GsdWriter::finish`]. Write to a temporary path and rename it into
/// place once finished (the particle export does, through the I/O layer's helpers).
pub struct GsdWriter {
    /// The file named in errors.
    path: PathBuf,
    file: Option<BufWriter<File>>,
    /// End of the data written so far.
    end: u64,
    names: Vec<String>,
    ids: HashMap<String, u16>,
    index: Vec<IndexEntry>,
    /// Entries of the frame being written.
    pending: Vec<IndexEntry>,
    frame: u64,
    application: String,
    schema: String,
    schema_version: u32,
    scratch: Vec<u8>,
}

impl GsdWriter {
    /// Creates (truncates) `path` for a file of `schema` at `schema_version` (major, minor),
    /// written by `application` (both names cut to 63 bytes).
    pub fn create(
        path: &Path,
        application: &str,
        schema: &str,
        schema_version: (u32, u32),
    ) -> Result<GsdWriter> {
        let f = File::create(path).map_err(|e| IoError::fs(path, "create", e))?;
        let mut file = BufWriter::with_capacity(1 << 20, f);
        // a placeholder header: the file is valid once finish() writes the real one
        file.write_all(&[0u8; HEADER_BYTES as usize])
            .map_err(|e| IoError::fs(path, "write", e))?;
        Ok(GsdWriter {
            path: path.to_path_buf(),
            file: Some(file),
            end: HEADER_BYTES,
            names: Vec::new(),
            ids: HashMap::new(),
            index: Vec::new(),
            pending: Vec::new(),
            frame: 0,
            application: application.to_string(),
            schema: schema.to_string(),
            schema_version: make_version(schema_version.0, schema_version.1),
            scratch: Vec::new(),
        })
    }

    /// Frames completed so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Appends chunk `name` (N = `n` rows of M = `m` columns, row-major `data`) to the current
    /// frame. A name appears at most once per frame; `m` ≥ 1.
    pub fn write<T: GsdValue>(&mut self, name: &str, n: u64, m: u32, data: &[T]) -> Result<()> {
        let count = n.checked_mul(m as u64);
        if m == 0 || count != Some(data.len() as u64) {
            return Err(IoError::invalid(
                &self.path,
                format!(
                    "GSD chunk {name}: {} values for {n} × {m} (M must be at least 1)",
                    data.len()
                ),
            ));
        }
        if name.is_empty() || name.contains('\0') {
            return Err(IoError::invalid(
                &self.path,
                format!("GSD chunk name {name:?}: empty or holding a NUL byte"),
            ));
        }
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                if self.names.len() >= u16::MAX as usize {
                    return Err(IoError::invalid(
                        &self.path,
                        "GSD: more than 65535 chunk names",
                    ));
                }
                let id = self.names.len() as u16;
                self.names.push(name.to_string());
                self.ids.insert(name.to_string(), id);
                id
            }
        };
        if self.pending.iter().any(|e| e.id == id) {
            return Err(IoError::invalid(
                &self.path,
                format!("GSD chunk {name} written twice in frame {}", self.frame),
            ));
        }
        self.scratch.clear();
        self.scratch.reserve(data.len() * T::TYPE.size() as usize);
        for v in data {
            v.put(&mut self.scratch);
        }
        let file = self.file.as_mut().expect("open until finish");
        file.write_all(&self.scratch)
            .map_err(|e| IoError::fs(&self.path, format!("write GSD chunk {name}"), e))?;
        self.pending.push(IndexEntry {
            frame: self.frame,
            n,
            m,
            location: self.end,
            id,
            kind: T::TYPE,
        });
        self.end += self.scratch.len() as u64;
        Ok(())
    }

    /// Ends the current frame (it must hold at least one chunk).
    pub fn end_frame(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Err(IoError::invalid(
                &self.path,
                format!("GSD frame {} holds no chunk", self.frame),
            ));
        }
        self.pending.sort_by_key(|e| e.id);
        self.index.append(&mut self.pending);
        self.frame += 1;
        Ok(())
    }

    /// Writes the name list, the index and the header, and syncs the file. Returns the frames
    /// written. A frame begun but not ended is an error.
    pub fn finish(mut self) -> Result<u64> {
        if !self.pending.is_empty() {
            return Err(IoError::invalid(
                &self.path,
                format!("GSD frame {} was not ended", self.frame),
            ));
        }
        let path = self.path.clone();
        let werr = |e: std::io::Error| IoError::fs(&path, "write GSD index", e);
        // names, NUL-terminated, then zeros to a whole number of 64-byte blocks (at least one
        // zero byte after the last name: an empty name ends the list)
        let mut names: Vec<u8> = Vec::new();
        for n in &self.names {
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        names.push(0);
        names.resize(names.len().div_ceil(NAME_BLOCK) * NAME_BLOCK, 0);
        let namelist_location = self.end;
        let index_location = namelist_location + names.len() as u64;
        let allocated = (self.index.len() as u64).max(MIN_INDEX_ENTRIES);
        let mut index = Vec::with_capacity((allocated * ENTRY_BYTES) as usize);
        for e in &self.index {
            e.encode(&mut index);
        }
        index.resize((allocated * ENTRY_BYTES) as usize, 0);
        let mut header = Vec::with_capacity(HEADER_BYTES as usize);
        header.extend_from_slice(&GSD_MAGIC.to_le_bytes());
        header.extend_from_slice(&index_location.to_le_bytes());
        header.extend_from_slice(&allocated.to_le_bytes());
        header.extend_from_slice(&namelist_location.to_le_bytes());
        header.extend_from_slice(&((names.len() / NAME_BLOCK) as u64).to_le_bytes());
        header.extend_from_slice(&self.schema_version.to_le_bytes());
        header.extend_from_slice(&make_version(GSD_VERSION.0, GSD_VERSION.1).to_le_bytes());
        for s in [&self.application, &self.schema] {
            let mut field = [0u8; 64];
            let b = s.as_bytes();
            let k = b.len().min(63);
            field[..k].copy_from_slice(&b[..k]);
            header.extend_from_slice(&field);
        }
        header.resize(HEADER_BYTES as usize, 0);
        let mut file = self.file.take().expect("open until finish");
        file.write_all(&names).map_err(werr)?;
        file.write_all(&index).map_err(werr)?;
        file.seek(SeekFrom::Start(0)).map_err(werr)?;
        file.write_all(&header).map_err(werr)?;
        let f = file.into_inner().map_err(|e| werr(e.into_error()))?;
        f.sync_all()
            .map_err(|e| IoError::fs(&path, "sync GSD file", e))?;
        Ok(self.frame)
    }
}

/// The header of a GSD file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsdHeader {
    /// File-layer version (major, minor).
    pub version: (u32, u32),
    pub schema: String,
    /// Schema version (major, minor).
    pub schema_version: (u32, u32),
    pub application: String,
}

/// An open GSD file whose header, name list and index have been read and checked (see the
/// module docs). Chunks are read on demand.
#[derive(Debug)]
pub struct GsdFile {
    path: PathBuf,
    file: File,
    len: u64,
    pub header: GsdHeader,
    names: Vec<String>,
    ids: HashMap<String, u16>,
    /// Used entries sorted by (frame, id).
    index: Vec<IndexEntry>,
    frames: u64,
}

/// Whether `path` starts with the GSD magic number.
pub fn is_gsd(path: &Path) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut b = [0u8; 8];
    f.read_exact(&mut b).is_ok() && u64::from_le_bytes(b) == GSD_MAGIC
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl GsdFile {
    /// Opens and checks `path`: header, name list and index (see the module docs).
    pub fn open(path: &Path) -> Result<GsdFile> {
        let bad = |msg: String| IoError::invalid(path, format!("GSD file: {msg}"));
        let mut file = File::open(path).map_err(|e| IoError::fs(path, "open", e))?;
        let meta = file.metadata().map_err(|e| IoError::fs(path, "open", e))?;
        if !meta.is_file() {
            return Err(IoError::invalid(path, "not a regular file"));
        }
        let len = meta.len();
        if len < HEADER_BYTES {
            if len >= 8 && is_gsd(path) {
                return Err(bad(format!(
                    "{len} bytes, shorter than the 256-byte header (truncated)"
                )));
            }
            return Err(IoError::invalid(
                path,
                "not a GSD file (no GSD magic number at byte 0)",
            ));
        }
        let mut h = [0u8; HEADER_BYTES as usize];
        file.read_exact(&mut h)
            .map_err(|e| IoError::fs(path, "read the GSD header", e))?;
        let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
        if u64_at(0) != GSD_MAGIC {
            return Err(IoError::invalid(
                path,
                "not a GSD file (no GSD magic number at byte 0)",
            ));
        }
        let (index_location, index_allocated) = (u64_at(8), u64_at(16));
        let (namelist_location, namelist_allocated) = (u64_at(24), u64_at(32));
        let unpack = |v: u32| (v >> 16, v & 0xffff);
        let header = GsdHeader {
            schema_version: unpack(u32_at(40)),
            version: unpack(u32_at(44)),
            application: cstr(&h[48..112]),
            schema: cstr(&h[112..176]),
        };
        let (major, minor) = header.version;
        if !(1..=2).contains(&major) {
            return Err(bad(format!(
                "file-layer version {major}.{minor} is not supported (1.x and 2.x are)"
            )));
        }
        let within = |what: &str, at: u64, count: u64, size: u64| -> Result<()> {
            match count.checked_mul(size).and_then(|b| b.checked_add(at)) {
                Some(end) if at >= HEADER_BYTES && end <= len => Ok(()),
                _ => Err(bad(format!(
                    "the {what} ({count} × {size} bytes at byte {at}) lies outside the file of {len} bytes (truncated or damaged)"
                ))),
            }
        };
        if namelist_allocated == 0 {
            return Err(bad("the header allocates no name list".into()));
        }
        within("name list", namelist_location, namelist_allocated, 64)?;
        if namelist_allocated * 64 > MAX_NAMELIST_BYTES {
            return Err(bad(format!(
                "a name list of {namelist_allocated} blocks is more than a valid file can hold"
            )));
        }
        if index_allocated == 0 {
            return Err(bad("the header allocates no index".into()));
        }
        within("index", index_location, index_allocated, ENTRY_BYTES)?;
        let read_at = |file: &mut File, at: u64, buf: &mut [u8], what: &str| -> Result<()> {
            file.seek(SeekFrom::Start(at))
                .and_then(|_| file.read_exact(buf))
                .map_err(|e| IoError::fs(path, format!("read the GSD {what}"), e))
        };
        let mut nl = vec![0u8; (namelist_allocated * 64) as usize];
        read_at(&mut file, namelist_location, &mut nl, "name list")?;
        if nl.last() != Some(&0) {
            return Err(bad(
                "the name list does not end in a NUL byte (damaged)".into()
            ));
        }
        let mut names = Vec::new();
        let mut at = 0usize;
        while at < nl.len() && nl[at] != 0 {
            let end = at + nl[at..].iter().position(|&c| c == 0).expect("ends in NUL");
            let name = std::str::from_utf8(&nl[at..end])
                .map_err(|_| bad(format!("chunk name {} is not UTF-8", names.len())))?;
            names.push(name.to_string());
            at = if major < 2 { at + NAME_BLOCK } else { end + 1 };
            if names.len() > u16::MAX as usize {
                return Err(bad("more than 65535 chunk names".into()));
            }
        }
        let ids: HashMap<String, u16> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u16))
            .collect();
        // the used entries: read in blocks up to the first with location 0
        let mut index = Vec::new();
        let block = 4096u64;
        let mut k = 0u64;
        let mut buf = Vec::new();
        'blocks: while k < index_allocated {
            let count = block.min(index_allocated - k);
            buf.resize((count * ENTRY_BYTES) as usize, 0);
            read_at(
                &mut file,
                index_location + k * ENTRY_BYTES,
                &mut buf,
                "index",
            )?;
            for (j, e) in buf.chunks_exact(ENTRY_BYTES as usize).enumerate() {
                let num = k + j as u64;
                let u64_of = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().expect("8"));
                let location = u64_of(16);
                if location == 0 {
                    break 'blocks;
                }
                let entry_bad = |what: String| bad(format!("index entry {num}: {what}"));
                let kind = GsdType::from_code(e[30])
                    .ok_or_else(|| entry_bad(format!("unknown type code {}", e[30])))?;
                if e[31] != 0 {
                    return Err(entry_bad(format!("flags {} (must be 0)", e[31])));
                }
                let entry = IndexEntry {
                    frame: u64_of(0),
                    n: u64_of(8),
                    location,
                    m: u32::from_le_bytes(e[24..28].try_into().expect("4")),
                    id: u16::from_le_bytes(e[28..30].try_into().expect("2")),
                    kind,
                };
                if entry.id as usize >= names.len() {
                    return Err(entry_bad(format!(
                        "name id {} but the name list holds {} names",
                        entry.id,
                        names.len()
                    )));
                }
                let name = &names[entry.id as usize];
                match entry.bytes().and_then(|b| b.checked_add(location)) {
                    Some(end) if location >= HEADER_BYTES && end <= len => {}
                    _ => {
                        return Err(entry_bad(format!(
                            "chunk {name} of frame {} ({} × {} {}) at byte {location} lies outside the file of {len} bytes (truncated or damaged)",
                            entry.frame,
                            entry.n,
                            entry.m,
                            kind.name()
                        )))
                    }
                }
                if entry.frame >= index_allocated {
                    return Err(entry_bad(format!(
                        "frame {} beyond the {index_allocated} index entries",
                        entry.frame
                    )));
                }
                if let Some(prev) = index.last().map(|p: &IndexEntry| p.frame) {
                    if entry.frame < prev {
                        return Err(entry_bad(format!(
                            "frame {} after frame {prev} (the index must be sorted)",
                            entry.frame
                        )));
                    }
                }
                index.push(entry);
            }
            k += count;
        }
        // GSD 1.x sorts by frame only: sort by (frame, id) for the search (stable, so a
        // duplicate stays detectable)
        index.sort_by_key(|e| (e.frame, e.id));
        if let Some(w) = index
            .windows(2)
            .find(|w| (w[0].frame, w[0].id) == (w[1].frame, w[1].id))
        {
            return Err(bad(format!(
                "chunk {} appears twice in frame {}",
                names[w[0].id as usize], w[0].frame
            )));
        }
        let frames = index.last().map_or(0, |e| e.frame + 1);
        Ok(GsdFile {
            path: path.to_path_buf(),
            file,
            len,
            header,
            names,
            ids,
            index,
            frames,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames in the file.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Every chunk name of the file (in id order).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The entry of chunk `name` in `frame`, if the frame holds it.
    pub fn find(&self, frame: u64, name: &str) -> Option<&IndexEntry> {
        let id = *self.ids.get(name)?;
        self.index
            .binary_search_by_key(&(frame, id), |e| (e.frame, e.id))
            .ok()
            .map(|k| &self.index[k])
    }

    /// The entry of `name` in `frame`, or else in frame 0 (the HOOMD schema's rule for a chunk
    /// a frame does not repeat).
    pub fn find_or_first(&self, frame: u64, name: &str) -> Option<&IndexEntry> {
        self.find(frame, name).or_else(|| self.find(0, name))
    }

    /// The name of an entry.
    pub fn name_of(&self, e: &IndexEntry) -> &str {
        &self.names[e.id as usize]
    }

    /// The raw bytes of a chunk.
    pub fn read_bytes(&mut self, e: &IndexEntry) -> Result<Vec<u8>> {
        // checked against the file's length when the index was read
        let bytes = e.bytes().expect("checked on open");
        debug_assert!(e.location + bytes <= self.len);
        let mut buf = vec![0u8; bytes as usize];
        let name = self.names[e.id as usize].clone();
        self.file
            .seek(SeekFrom::Start(e.location))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|err| {
                IoError::fs(
                    &self.path,
                    format!("read GSD chunk {name} of frame {}", e.frame),
                    err,
                )
            })?;
        Ok(buf)
    }

    /// The values of a chunk of type `T` (an error naming the chunk for another type).
    pub fn read<T: GsdValue>(&mut self, e: &IndexEntry) -> Result<Vec<T>> {
        if e.kind != T::TYPE {
            return Err(IoError::invalid(
                &self.path,
                format!(
                    "GSD chunk {} of frame {}: {} where {} is expected",
                    self.name_of(e),
                    e.frame,
                    e.kind.name(),
                    T::TYPE.name()
                ),
            ));
        }
        let b = self.read_bytes(e)?;
        let s = T::TYPE.size() as usize;
        Ok(b.chunks_exact(s).map(T::get).collect())
    }

    /// The values of a numeric chunk of any type as `f64` (integers above 2^53 rounded).
    pub fn read_f64(&mut self, e: &IndexEntry) -> Result<Vec<f64>> {
        let b = self.read_bytes(e)?;
        let s = e.kind.size() as usize;
        let conv = |c: &[u8]| -> f64 {
            use GsdType::*;
            match e.kind {
                U8 | Char => c[0] as f64,
                I8 => c[0] as i8 as f64,
                U16 => u16::get(c) as f64,
                I16 => i16::get(c) as f64,
                U32 => u32::get(c) as f64,
                I32 => i32::get(c) as f64,
                U64 => u64::get(c) as f64,
                I64 => i64::get(c) as f64,
                F32 => f32::get(c) as f64,
                F64 => f64::get(c),
            }
        };
        Ok(b.chunks_exact(s).map(conv).collect())
    }

    /// Chunk `name` of `frame` (or of frame 0) as `f64`, checked to be `n` × `m`; None when
    /// neither frame holds it.
    pub fn read_shaped(
        &mut self,
        frame: u64,
        name: &str,
        n: u64,
        m: u32,
    ) -> Result<Option<Vec<f64>>> {
        let Some(e) = self.find_or_first(frame, name).copied() else {
            return Ok(None);
        };
        if e.n != n || e.m != m {
            return Err(IoError::invalid(
                &self.path,
                format!(
                    "GSD chunk {name} of frame {}: {} × {} where {n} × {m} is expected",
                    e.frame, e.n, e.m
                ),
            ));
        }
        self.read_f64(&e).map(Some)
    }
}

/// The HOOMD quaternion (w, x, y, z) that rotates (1, 0, 0) onto the unit vector `u` (see the
/// module docs; the rotation by π about z for u = (−1, 0, 0)).
pub fn quaternion_from_unit(u: [f64; 3]) -> [f64; 4] {
    let w = 1.0 + u[0];
    let norm2 = w * w + u[1] * u[1] + u[2] * u[2];
    // also NaN
    if norm2.is_nan() || norm2 <= 1e-300 {
        return [0.0, 0.0, 0.0, 1.0];
    }
    let s = 1.0 / norm2.sqrt();
    [w * s, 0.0, -u[2] * s, u[1] * s]
}

/// The unit vector (1, 0, 0) rotated by the quaternion q = (w, x, y, z) (normalised first; the
/// zero quaternion gives (1, 0, 0)).
pub fn unit_from_quaternion(q: [f64; 4]) -> [f64; 3] {
    let n2 = q.iter().map(|v| v * v).sum::<f64>();
    if n2.is_nan() || n2 <= 0.0 || !n2.is_finite() {
        return [1.0, 0.0, 0.0];
    }
    let [w, x, y, z] = q.map(|v| v / n2.sqrt());
    [
        1.0 - 2.0 * (y * y + z * z),
        2.0 * (x * y + w * z),
        2.0 * (x * z - w * y),
    ]
}

#[cfg(test)]
mod tests;
