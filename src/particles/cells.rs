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
#[derive(Debug, Clone)]
pub struct CellList {
    dim: usize,
    /// Cells per direction (≥ 3 in every direction, or the list degenerates to one cell with an
    /// all-pairs search).
    n: usize,
    cell_len: f64,
    /// Particle indices sorted by cell.
    pub order: Vec<u32>,
    /// `order[start[c]..start[c + 1]]` are the particles of cell c.
    pub start: Vec<u32>,
    cell_of: Vec<u32>,
    /// Cell of the k-th particle in sorted order.
    pub sorted_cell: Vec<u32>,
    /// Neighbouring cells of each cell (itself included), 3^d per cell, each listed once.
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
        let cells = n.pow(bx.dim as u32);
        let per_cell = if n == 1 { 1 } else { 3usize.pow(bx.dim as u32) };
        let mut neighbours = Vec::with_capacity(cells * per_cell);
        for c in 0..cells {
            let coords = unflatten(c, n, bx.dim);
            if n == 1 {
                neighbours.push(0);
                continue;
            }
            let offsets = 3usize.pow(bx.dim as u32);
            for o in 0..offsets {
                let mut flat = 0usize;
                let mut stride = 1usize;
                let mut oo = o;
                for &ck in coords.iter().take(bx.dim) {
                    let off = (oo % 3) as i64 - 1;
                    oo /= 3;
                    let v = (ck as i64 + off).rem_euclid(n as i64) as usize;
                    flat += v * stride;
                    stride *= n;
                }
                neighbours.push(flat as u32);
            }
        }
        CellList {
            dim: bx.dim,
            n,
            cell_len: bx.length / n as f64,
            order: Vec::new(),
            start: vec![0; cells + 1],
            cell_of: Vec::new(),
            sorted_cell: Vec::new(),
            neighbours,
            per_cell,
            fill: Vec::with_capacity(cells),
        }
    }

    /// Number of cells per direction.
    pub fn cells_per_side(&self) -> usize {
        self.n
    }

    /// Cell of a wrapped position (components in [−w, w)).
    #[inline]
    pub fn cell_of_position(&self, x: &[f64]) -> usize {
        let half = 0.5 * self.cell_len * self.n as f64;
        let mut flat = 0usize;
        let mut stride = 1usize;
        for &xk in x.iter().take(self.dim) {
            let c = (((xk + half) / self.cell_len) as usize).min(self.n - 1);
            flat += c * stride;
            stride *= self.n;
        }
        flat
    }

    /// Sorts the particles (positions `x`, N·d values, wrapped into the box) into cells.
    pub fn build(&mut self, x: &[f64]) {
        let np = x.len() / self.dim;
        let cells = self.start.len() - 1;
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

fn unflatten(mut c: usize, n: usize, dim: usize) -> [usize; 3] {
    let mut out = [0; 3];
    for o in out.iter_mut().take(dim) {
        *o = c % n;
        c /= n;
    }
    out
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
            for i in 0..np {
                let mut seen = vec![0u32; np];
                cl.for_each_candidate(i, |j| seen[j] += 1);
                for j in 0..np {
                    let r2: f64 = (0..dim)
                        .map(|k| bx.min_image(x[i * dim + k] - x[j * dim + k]).powi(2))
                        .sum();
                    assert!(seen[j] <= 1, "visited twice");
                    if r2 < cutoff * cutoff {
                        assert_eq!(seen[j], 1, "dim {dim}: pair ({i}, {j}) missed");
                    }
                }
            }
        }
    }
}
