//! Verlet neighbour lists with a skin, built from the cell list (O(N)) and reused until some
//! particle has moved more than half the skin (tracked by the caller), so every pair within the
//! cut-off is always in the list. The caller re-sorts its storage into cell order before each
//! build (`cell_order`), so the force loop reads neighbour positions from nearby memory.

use super::cells::{CellList, PeriodicBox};
use super::isa::{self, multiversion, Isa};
use rayon::prelude::*;

/// Particles per parallel work item of the list build, at most (fewer for small systems: 8
/// items per thread, see [`super::work_item_len`]; the list does not depend on it).
const CHUNK: usize = 1024;

/// A Verlet list over sorted particle positions.
#[derive(Debug, Clone)]
pub struct VerletList {
    /// Extra range beyond the cut-off (length units).
    pub skin: f64,
    cutoff: f64,
    cells: CellList,
    /// Neighbours of sorted particle k: `nbr[start[k]..start[k + 1]]` (sorted indices).
    start: Vec<u32>,
    nbr: Vec<u32>,
    /// Wrapped positions at the last build (particle order).
    x_build: Vec<f64>,
    /// Number of builds so far.
    pub builds: u64,
    built: bool,
    isa: Isa,
    /// Per chunk of particles: (neighbour count per particle, the lists one after another), and
    /// where the chunk's lists begin in `nbr` — kept between builds, so a rebuild does not
    /// allocate once the buffers have their working size.
    parts: Vec<Part>,
    offsets: Vec<u32>,
}

/// The neighbour lists of one chunk of particles (storage slots `range`): the count per
/// particle and the lists one after another.
#[derive(Debug, Clone, Default)]
struct Part {
    range: std::ops::Range<usize>,
    counts: Vec<u32>,
    list: Vec<u32>,
}

impl VerletList {
    /// List for pairs within `cutoff`, kept with a `skin`. When fewer than three cells of
    /// cutoff + skin fit across the box, the cell list degenerates to all pairs (still exact).
    pub fn new(bx: &PeriodicBox, cutoff: f64, skin: f64) -> VerletList {
        VerletList {
            cells: CellList::new(bx, cutoff + skin),
            ..Self::empty(cutoff, skin)
        }
    }

    /// List whose candidates come from a cell list over a region of the box (a rank's sub-box
    /// with its ghost layer; see [`CellList::new_region`]): for [`VerletList::build_partial`].
    pub fn new_region(
        bx: &PeriodicBox,
        cutoff: f64,
        skin: f64,
        lo: [f64; 3],
        hi: [f64; 3],
        clipped: [bool; 3],
    ) -> VerletList {
        VerletList {
            cells: CellList::new_region(bx, cutoff + skin, lo, hi, clipped),
            ..Self::empty(cutoff, skin)
        }
    }

    fn empty(cutoff: f64, skin: f64) -> VerletList {
        VerletList {
            skin,
            cutoff,
            cells: CellList::new(&PeriodicBox::new(1, 1.0), 1.0),
            start: Vec::new(),
            nbr: Vec::new(),
            x_build: Vec::new(),
            builds: 0,
            built: false,
            isa: isa::detect(),
            parts: Vec::new(),
            offsets: Vec::new(),
        }
    }

    /// Whether the list has been built.
    pub fn is_built(&self) -> bool {
        self.built
    }

    /// Wrapped positions at the last build (particle order; empty before the first build).
    pub fn built_positions(&self) -> &[f64] {
        &self.x_build
    }

    /// Neighbours (storage slots) of storage slot k.
    #[inline(always)]
    pub fn neighbours(&self, k: usize) -> &[u32] {
        &self.nbr[self.start[k] as usize..self.start[k + 1] as usize]
    }

    /// The list in compressed form: (offsets `start` (N + 1), neighbour slots `nbr`); the
    /// neighbours of slot k are `nbr[start[k]..start[k + 1]]`.
    pub fn raw(&self) -> (&[u32], &[u32]) {
        (&self.start, &self.nbr)
    }

    /// The cell order of positions `x` (wrapped): storage slot k should hold particle
    /// `order[k]` (stable within a cell).
    pub fn cell_order(&mut self, x: &[f64]) -> &[u32] {
        self.cells.build(x);
        &self.cells.order
    }

    /// Rebuilds the list at positions `x` (wrapped, storage order), which the caller has just
    /// permuted by the order [`VerletList::cell_order`] computed at these positions (so the cell
    /// list is carried over, not rebuilt): neighbours within cutoff + skin, as storage slots,
    /// each particle's neighbours sorted by particle tag. With that order a force sum depends on
    /// the positions only — not on the storage order or on when the list was last rebuilt (pairs
    /// beyond the cut-off add exact zeros) — so interrupted and resumed runs give the same bits.
    /// The lists are built per chunk of particles in parallel, then offsets and lists are written
    /// into place in parallel.
    pub fn build(&mut self, x: &[f64], bx: &PeriodicBox, tag: &[u32]) {
        self.cells.adopt_order();
        self.build_lists(x, bx, tag, x.len() / bx.dim);
    }

    /// The lists of the first `listed` slots of `x` (wrapped, any storage order), their
    /// candidates drawn from all of `x`: a rank's own particles (listed first) among its own
    /// and its ghosts in a decomposed run. The cell list is built from `x` here; the lists are
    /// as [`VerletList::build`]'s (sorted by tag, so force sums are those of one process).
    pub fn build_partial(&mut self, x: &[f64], bx: &PeriodicBox, tag: &[u32], listed: usize) {
        self.cells.build(x);
        self.build_lists(x, bx, tag, listed);
    }

    fn build_lists(&mut self, x: &[f64], bx: &PeriodicBox, tag: &[u32], n: usize) {
        let d = bx.dim;
        let r2max = (self.cutoff + self.skin).powi(2);
        let cells = &self.cells;
        let isa = self.isa;
        let chunk_len = super::work_item_len(n, 8, CHUNK);
        let chunks = n.div_ceil(chunk_len);
        if self.parts.len() < chunks {
            self.parts.resize_with(chunks, Default::default);
        }
        let parts = &mut self.parts[..chunks];
        parts.par_iter_mut().enumerate().for_each(|(chunk, part)| {
            part.range = chunk * chunk_len..((chunk + 1) * chunk_len).min(n);
            build_chunk_for(isa, cells, x, bx, tag, r2max, part);
        });
        // where each chunk's lists begin
        self.offsets.clear();
        let mut total = 0u32;
        for part in parts.iter() {
            self.offsets.push(total);
            total += part.list.len() as u32;
        }
        self.start.resize(n + 1, 0);
        self.start[0] = 0;
        self.nbr.resize(total as usize, 0);
        // each chunk writes its own disjoint range nbr[offset..offset + len]
        let nbr = SharedSlice(self.nbr.as_mut_ptr());
        let nbr = &nbr;
        self.start[1..]
            .par_chunks_mut(chunk_len)
            .zip(parts.par_iter().zip(self.offsets.par_iter()))
            .for_each(|(start, (Part { counts, list, .. }, &offset))| {
                let mut end = offset;
                for (s, &c) in start.iter_mut().zip(counts) {
                    end += c;
                    *s = end;
                }
                // SAFETY: the ranges [offset, offset + list.len()) of the chunks are disjoint
                // and lie within nbr (offsets are the prefix sums of the lengths, total =
                // nbr.len()); nbr is not otherwise accessed during this loop.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        list.as_ptr(),
                        nbr.0.add(offset as usize),
                        list.len(),
                    );
                }
            });
        self.x_build.resize(x.len(), 0.0);
        self.x_build
            .par_chunks_mut(CHUNK * d)
            .zip(x.par_chunks(CHUNK * d))
            .for_each(|(a, b)| a.copy_from_slice(b));
        self.builds += 1;
        self.built = true;
    }
}

multiversion!(
    /// [`build_chunk`] compiled for the instruction set `isa` (see [`super::isa`]).
    fn build_chunk_for(
        cells: &CellList,
        x: &[f64],
        bx: &PeriodicBox,
        tag: &[u32],
        r2max: f64,
        part: &mut Part,
    ) -> () = build_chunk;
);

/// A raw pointer into a slice that parallel workers write at disjoint ranges.
struct SharedSlice(*mut u32);
// SAFETY: used only to write disjoint ranges from different threads (see its one use).
unsafe impl Sync for SharedSlice {}

/// Neighbour lists of the particles in `part.range` (storage slots) into `part.counts` (count
/// per particle) and `part.list` (the lists one after another), both cleared first. Every candidate of the surrounding cells is written and kept by advancing
/// the end only when it lies within range — a select, not a branch (about a third of the
/// candidates are kept, in no predictable pattern).
#[inline(always)]
fn build_chunk(
    cells: &CellList,
    x: &[f64],
    bx: &PeriodicBox,
    tag: &[u32],
    r2max: f64,
    part: &mut Part,
) {
    let d = bx.dim;
    let Part {
        range,
        counts,
        list,
    } = part;
    counts.clear();
    list.clear();
    for k in range.clone() {
        let before = list.len();
        list.resize(before + cells.candidate_count(k), 0);
        let mut end = before;
        let xk = &x[k * d..(k + 1) * d];
        cells.for_each_candidate(k, |j| {
            let mut r2 = 0.0;
            for c in 0..d {
                let v = bx.min_image_wrapped(xk[c] - x[j * d + c]);
                r2 += v * v;
            }
            list[end] = j as u32;
            end += (r2 < r2max && j != k) as usize;
        });
        list.truncate(end);
        list[before..].sort_unstable_by_key(|&j| tag[j as usize]);
        counts.push((end - before) as u32);
    }
}
