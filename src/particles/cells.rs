//! Periodic boxes and cell lists: O(N) neighbour search under the minimum-image convention.

use rayon::prelude::*;

/// A periodic box [−w, w)^d (d = 1, 2 or 3), edge length L = 2w in every direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodicBox {
    /// Spatial dimension d.
    pub dim: usize,
    /// Edge length L (length units).
    pub length: f64,
}

impl PeriodicBox {
    pub fn new(dim: usize, length: f64) -> PeriodicBox {
        PeriodicBox { dim, length }
    }
    /// Half edge w.
    pub fn half(&self) -> f64 {
        0.5 * self.length
    }
    /// Minimum image of a separation component: Δ − L·rint(Δ/L) ∈ [−L/2, L/2].
    #[inline]
    pub fn min_image(&self, delta: f64) -> f64 {
        delta - self.length * (delta / self.length).round()
    }
    /// Minimum image of the separation of two wrapped coordinates (|Δ| < L): one comparison
    /// each way instead of a rounding (the hot path of the force loop), as selects rather than
    /// branches (pairs across the box edge are rare but unpredictable).
    #[inline(always)]
    pub fn min_image_wrapped(&self, delta: f64) -> f64 {
        let w = 0.5 * self.length;
        let shift = select(delta >= w, self.length, 0.0) - select(delta < -w, self.length, 0.0);
        delta - shift
    }
    /// Wraps a coordinate into [−w, w), returning the number of box lengths crossed (added to
    /// the image counter so that x + image·L is the unwrapped coordinate).
    #[inline]
    pub fn wrap(&self, x: &mut f64) -> i32 {
        let w = self.half();
        if *x >= -w && *x < w {
            return 0;
        }
        let n = ((*x + w) / self.length).floor();
        *x -= n * self.length;
        if *x >= w {
            // rounding at the upper edge
            *x -= self.length;
            return n as i32 + 1;
        }
        n as i32
    }
    /// Volume L^d.
    pub fn volume(&self) -> f64 {
        self.length.powi(self.dim as i32)
    }
}

/// A cell list over a periodic box: cells of edge ≥ the interaction cut-off, particles sorted by
/// cell with a counting sort (stable, so the order within a cell is the particle order and every
/// neighbour loop is deterministic). Rebuilt in O(N) whenever positions change.
///
/// Over the whole box ([`CellList::new`]) or over a region of it ([`CellList::new_region`]: a
/// rank's sub-box with its ghost layer in a decomposed run, so that a rank's cells number as its
/// particles do, not as the whole box's).
#[derive(Debug, Clone)]
pub struct CellList {
    dim: usize,
    /// Cells per direction (1 beyond `dim`). Over a periodic direction ≥ 3, or 1 (then one cell
    /// spans the direction: all pairs along it, still minimum image).
    n: [usize; 3],
    cell_len: [f64; 3],
    /// Lower edge of the cells per direction (−L/2 over the whole box).
    origin: [f64; 3],
    /// Box edge L (positions are wrapped; offsets from `origin` are taken modulo L).
    length: f64,
    /// Particle indices sorted by cell.
    pub order: Vec<u32>,
    /// `order[start[c]..start[c + 1]]` are the particles of cell c; the extra cell `cells` is
    /// always empty (it pads the neighbour table where a region's edge clips the stencil).
    pub start: Vec<u32>,
    cell_of: Vec<u32>,
    /// Cell of the k-th particle in sorted order.
    pub sorted_cell: Vec<u32>,
    /// Neighbouring cells of each cell (itself included), `per_cell` per cell, each listed once
    /// (padded with the empty cell).
    neighbours: Vec<u32>,
    per_cell: usize,
    /// Next free slot per cell during a build (kept: rebuilds do not allocate).
    fill: Vec<u32>,
}

impl CellList {
    /// Cell list for `bx` with cells of edge ≥ `cutoff`. When fewer than 3 cells fit across the
    /// box, a single cell holds everything (all pairs, still minimum image), which is exact as
    /// long as the cut-off is below L/2.
    pub fn new(bx: &PeriodicBox, cutoff: f64) -> CellList {
        let fit = (bx.length / cutoff).floor() as usize;
        let n = if fit >= 3 { fit } else { 1 };
        let mut dims = [1usize; 3];
        dims[..bx.dim].iter_mut().for_each(|v| *v = n);
        Self::with_cells(bx, dims, [-bx.half(); 3], [bx.length; 3], [true; 3])
    }

    /// Cell list over the region `lo[k] ≤ x_k < hi[k]` (taken on the periodic circle; `hi − lo`
    /// below L) in the directions where `clipped[k]`, over the whole box in the others: cells of
    /// edge ≥ `cutoff`, the stencil clipped at the region's edges. Positions given to
    /// [`CellList::build`] must lie in the region (they are clamped into its edge cells).
    pub fn new_region(
        bx: &PeriodicBox,
        cutoff: f64,
        lo: [f64; 3],
        hi: [f64; 3],
        clipped: [bool; 3],
    ) -> CellList {
        let mut dims = [1usize; 3];
        let mut origin = [-bx.half(); 3];
        let mut extent = [bx.length; 3];
        let mut periodic = [true; 3];
        for k in 0..bx.dim {
            if clipped[k] && hi[k] - lo[k] < bx.length {
                origin[k] = lo[k];
                extent[k] = hi[k] - lo[k];
                periodic[k] = false;
                dims[k] = ((extent[k] / cutoff).floor() as usize).max(1);
            } else {
                let fit = (bx.length / cutoff).floor() as usize;
                dims[k] = if fit >= 3 { fit } else { 1 };
            }
        }
        Self::with_cells(bx, dims, origin, extent, periodic)
    }

    fn with_cells(
        bx: &PeriodicBox,
        n: [usize; 3],
        origin: [f64; 3],
        extent: [f64; 3],
        periodic: [bool; 3],
    ) -> CellList {
        let dim = bx.dim;
        let cells: usize = n.iter().product();
        let empty = cells as u32;
        let offsets = 3usize.pow(dim as u32);
        let per_cell = if n[..dim].iter().all(|&v| v == 1) {
            1
        } else {
            offsets
        };
        let mut neighbours = Vec::with_capacity(cells * per_cell);
        for c in 0..cells {
            let coords = [c % n[0], (c / n[0]) % n[1], c / (n[0] * n[1])];
            let mut list = Vec::with_capacity(per_cell);
            for o in 0..offsets {
                let mut flat = 0usize;
                let mut stride = 1usize;
                let mut oo = o;
                let mut inside = true;
                for k in 0..dim {
                    let off = (oo % 3) as i64 - 1;
                    oo /= 3;
                    let mut v = coords[k] as i64 + off;
                    if periodic[k] {
                        v = v.rem_euclid(n[k] as i64);
                    } else if v < 0 || v >= n[k] as i64 {
                        inside = false;
                    }
                    flat += v.max(0) as usize * stride;
                    stride *= n[k];
                }
                // a direction with one cell: its −1, 0, +1 are the same cell, listed once
                if inside && !list.contains(&(flat as u32)) {
                    list.push(flat as u32);
                }
            }
            list.resize(per_cell, empty);
            neighbours.extend_from_slice(&list);
        }
        let mut cell_len = [1.0f64; 3];
        for k in 0..3 {
            cell_len[k] = extent[k] / n[k] as f64;
        }
        CellList {
            dim,
            n,
            cell_len,
            origin,
            length: bx.length,
            order: Vec::new(),
            start: vec![0; cells + 2],
            cell_of: Vec::new(),
            sorted_cell: Vec::new(),
            neighbours,
            per_cell,
            fill: Vec::with_capacity(cells),
        }
    }

    /// Number of cells per direction (the first direction's; a whole-box list has the same
    /// number in every direction).
    pub fn cells_per_side(&self) -> usize {
        self.n[0]
    }

    /// Cell of a wrapped position (components in [−L/2, L/2); clamped into the region).
    #[inline]
    pub fn cell_of_position(&self, x: &[f64]) -> usize {
        let mut flat = 0usize;
        let mut stride = 1usize;
        for (k, &xk) in x.iter().take(self.dim).enumerate() {
            // the offset from the region's lower edge on the circle, in [0, L)
            let mut u = xk - self.origin[k];
            if u < 0.0 {
                u += self.length;
            } else if u >= self.length {
                u -= self.length;
            }
            let c = ((u / self.cell_len[k]) as usize).min(self.n[k] - 1);
            flat += c * stride;
            stride *= self.n[k];
        }
        flat
    }

    /// Sorts the particles (positions `x`, N·d values, wrapped into the box) into cells.
    pub fn build(&mut self, x: &[f64]) {
        let np = x.len() / self.dim;
        let cells = self.start.len() - 2;
        self.cell_of.resize(np, 0);
        self.order.resize(np, 0);
        self.start.iter_mut().for_each(|s| *s = 0);
        // the cell of every particle in parallel (pure per-particle work), the counts serially
        let mut cell_of = std::mem::take(&mut self.cell_of);
        {
            let this = &*self;
            let d = this.dim;
            cell_of
                .par_chunks_mut(4096)
                .zip(x.par_chunks(4096 * d))
                .for_each(|(cells_out, xs)| {
                    for (c, xi) in cells_out.iter_mut().zip(xs.chunks_exact(d)) {
                        *c = this.cell_of_position(xi) as u32;
                    }
                });
        }
        self.cell_of = cell_of;
        for &c in &self.cell_of {
            self.start[c as usize + 1] += 1;
        }
        for c in 0..cells {
            self.start[c + 1] += self.start[c];
        }
        // the padding cell stays empty
        self.start[cells + 1] = self.start[cells];
        // stable placement: walk particles in order, each goes to the next free slot of its cell
        let fill = &mut self.fill;
        fill.clear();
        fill.extend_from_slice(&self.start[..cells]);
        self.sorted_cell.resize(np, 0);
        for i in 0..np {
            let c = self.cell_of[i] as usize;
            self.order[fill[c] as usize] = i as u32;
            self.sorted_cell[fill[c] as usize] = c as u32;
            fill[c] += 1;
        }
    }

    /// Takes the particles as already re-sorted into [`CellList::build`]'s `order` (the caller
    /// permuted its positions by it): particle k now sits in cell `sorted_cell[k]` and the order
    /// is the identity — the cell list of the permuted positions, without another pass over them.
    pub fn adopt_order(&mut self) {
        let (cell_of, order) = (&mut self.cell_of, &mut self.order);
        cell_of.copy_from_slice(&self.sorted_cell);
        order.par_chunks_mut(4096).enumerate().for_each(|(c, o)| {
            for (k, v) in o.iter_mut().enumerate() {
                *v = (c * 4096 + k) as u32;
            }
        });
    }

    /// Calls `f(k)` for the sorted position k of every particle in the cells around cell `c`
    /// (the particles `order[k]`, contiguous per cell — with positions copied into sorted
    /// order, the neighbour loop reads memory sequentially).
    #[inline(always)]
    pub fn for_each_sorted_candidate(&self, c: usize, mut f: impl FnMut(usize)) {
        for &nc in &self.neighbours[c * self.per_cell..(c + 1) * self.per_cell] {
            let (a, b) = (self.start[nc as usize], self.start[nc as usize + 1]);
            for k in a..b {
                f(k as usize);
            }
        }
    }

    /// Cell of particle `i` (after [`CellList::build`]).
    #[inline]
    pub fn cell(&self, i: usize) -> usize {
        self.cell_of[i] as usize
    }

    /// Number of candidates [`CellList::for_each_candidate`] visits for particle i.
    #[inline(always)]
    pub fn candidate_count(&self, i: usize) -> usize {
        let c = self.cell_of[i] as usize;
        self.neighbours[c * self.per_cell..(c + 1) * self.per_cell]
            .iter()
            .map(|&nc| (self.start[nc as usize + 1] - self.start[nc as usize]) as usize)
            .sum()
    }

    /// Calls `f(j)` for every particle j in the cells around particle i's cell (i included);
    /// each candidate is visited once. Callers apply the cut-off and skip j = i.
    #[inline(always)]
    pub fn for_each_candidate(&self, i: usize, mut f: impl FnMut(usize)) {
        let c = self.cell_of[i] as usize;
        for &nc in &self.neighbours[c * self.per_cell..(c + 1) * self.per_cell] {
            let (a, b) = (self.start[nc as usize], self.start[nc as usize + 1]);
            for &j in &self.order[a as usize..b as usize] {
                f(j as usize);
            }
        }
    }
}

/// `if c { a } else { b }` by bit masking, without a branch.
#[inline(always)]
pub fn select(c: bool, a: f64, b: f64) -> f64 {
    let m = (c as u64).wrapping_neg();
    f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_minimum_image() {
        let bx = PeriodicBox::new(2, 10.0);
        let mut x = 5.0;
        assert_eq!(bx.wrap(&mut x), 1);
        assert_eq!(x, -5.0);
        let mut x = -17.5;
        assert_eq!(bx.wrap(&mut x), -2);
        assert!((x - 2.5).abs() < 1e-12);
        assert!((bx.min_image(9.0) - (-1.0)).abs() < 1e-12);
        assert!((bx.min_image(-6.0) - 4.0).abs() < 1e-12);
    }

    /// Every pair of `x` within `cutoff` (minimum image) is a candidate exactly once, no
    /// candidate is visited twice, and `candidate_count` counts the visits.
    fn assert_covers_pairs_once(
        cl: &CellList,
        x: &[f64],
        bx: &PeriodicBox,
        cutoff: f64,
        what: &str,
    ) {
        let dim = bx.dim;
        let np = x.len() / dim;
        for i in 0..np {
            let mut seen = vec![0u32; np];
            cl.for_each_candidate(i, |j| seen[j] += 1);
            for j in 0..np {
                let r2: f64 = (0..dim)
                    .map(|k| bx.min_image(x[i * dim + k] - x[j * dim + k]).powi(2))
                    .sum();
                assert!(seen[j] <= 1, "{what}: ({i}, {j}) visited twice");
                if r2 < cutoff * cutoff {
                    assert_eq!(seen[j], 1, "{what}: pair ({i}, {j}) missed");
                }
            }
            assert_eq!(cl.candidate_count(i), seen.iter().sum::<u32>() as usize);
        }
    }

    #[test]
    fn region_candidates_cover_all_pairs_within_cutoff_once() {
        use rand::{Rng, SeedableRng};
        // a region across the periodic edge in direction 0, the whole box in direction 1 (as a
        // rank's sub-box with its ghost layer, decomposed along 0 only), and a box too small
        // for three cells in direction 1
        for (dim, length, clipped) in [
            (1, 12.0, [true, false, false]),
            (2, 12.0, [true, false, false]),
            (2, 6.0, [true, false, false]),
            (3, 12.0, [true, true, false]),
        ] {
            let bx = PeriodicBox::new(dim, length);
            let cutoff = 2.2;
            let (lo, hi) = ([3.0, -2.0, 0.0], [3.0 + 7.5, 3.0, 0.0]);
            let mut rng = rand::rngs::StdRng::seed_from_u64(7 + dim as u64);
            let np = 400;
            let mut x = Vec::new();
            while x.len() < np * dim {
                let p: Vec<f64> = (0..dim)
                    .map(|k| {
                        if clipped[k] {
                            let mut v = rng.random_range(lo[k]..hi[k]);
                            bx.wrap(&mut v);
                            v
                        } else {
                            rng.random_range(-0.5 * length..0.5 * length)
                        }
                    })
                    .collect();
                x.extend(p);
            }
            let mut cl = CellList::new_region(&bx, cutoff, lo, hi, clipped);
            cl.build(&x);
            assert_covers_pairs_once(&cl, &x, &bx, cutoff, &format!("dim {dim}, L {length}"));
        }
    }

    #[test]
    fn candidates_cover_all_pairs_within_cutoff_once() {
        use rand::{Rng, SeedableRng};
        for dim in 1..=3 {
            let bx = PeriodicBox::new(dim, 12.0);
            let cutoff = 2.5;
            let mut rng = rand::rngs::StdRng::seed_from_u64(dim as u64);
            let np = 300;
            let x: Vec<f64> = (0..np * dim).map(|_| rng.random_range(-6.0..6.0)).collect();
            let mut cl = CellList::new(&bx, cutoff);
            assert!(cl.cells_per_side() >= 3);
            cl.build(&x);
            assert_covers_pairs_once(&cl, &x, &bx, cutoff, &format!("dim {dim}"));
        }
    }
}
