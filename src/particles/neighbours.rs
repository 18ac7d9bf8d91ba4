//! Verlet neighbour lists with a skin, built from the cell list (O(N)) and reused until some
//! particle has moved more than half the skin, so every pair within the cut-off is always in the
//! list. Particles are stored in cell order at each build: the force loop reads neighbour
//! positions from nearby memory.

use super::cells::{CellList, PeriodicBox};
use rayon::prelude::*;

/// Particles per parallel work item of the list build.
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
    /// Inverse of the sort order: rank[i] = position of particle i in sorted order.
    pub rank: Vec<u32>,
    /// Number of builds so far.
    pub builds: u64,
    built: bool,
}

impl VerletList {
    /// List for pairs within `cutoff`, kept with a `skin`. When fewer than three cells of
    /// cutoff + skin fit across the box, the cell list degenerates to all pairs (still exact).
    pub fn new(bx: &PeriodicBox, cutoff: f64, skin: f64) -> VerletList {
        VerletList {
            skin,
            cutoff,
            cells: CellList::new(bx, cutoff + skin),
            start: Vec::new(),
            nbr: Vec::new(),
            x_build: Vec::new(),
            rank: Vec::new(),
            builds: 0,
            built: false,
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

    /// Particle index of the k-th sorted particle.
    #[inline]
    pub fn order(&self) -> &[u32] {
        &self.cells.order
    }

    /// Sorted neighbours of sorted particle k.
    #[inline(always)]
    pub fn neighbours(&self, k: usize) -> &[u32] {
        &self.nbr[self.start[k] as usize..self.start[k + 1] as usize]
    }

    /// Whether a particle has moved more than skin/2 since the last build (positions wrapped;
    /// displacements by minimum image).
    pub fn needs_rebuild(&self, x: &[f64], bx: &PeriodicBox) -> bool {
        if !self.built || x.len() != self.x_build.len() {
            return true;
        }
        let limit = 0.25 * self.skin * self.skin;
        let d = bx.dim;
        x.par_chunks(CHUNK * d)
            .zip(self.x_build.par_chunks(CHUNK * d))
            .any(|(a, b)| {
                a.chunks_exact(d).zip(b.chunks_exact(d)).any(|(p, q)| {
                    let mut r2 = 0.0;
                    for c in 0..d {
                        let v = bx.min_image_wrapped(p[c] - q[c]);
                        r2 += v * v;
                    }
                    r2 > limit
                })
            })
    }

    /// Rebuilds the list at positions `x` (wrapped) and writes them in sorted order into `xs`.
    pub fn build(&mut self, x: &[f64], bx: &PeriodicBox, xs: &mut Vec<f64>) {
        let d = bx.dim;
        let n = x.len() / d;
        self.cells.build(x);
        gather(x, self.order(), d, xs);
        let r2max = (self.cutoff + self.skin).powi(2);
        let cells = &self.cells;
        let xs_ref = &*xs;
        let parts: Vec<(Vec<u32>, Vec<u32>)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|chunk| {
                let (a, b) = (chunk * CHUNK, ((chunk + 1) * CHUNK).min(n));
                let mut counts = Vec::with_capacity(b - a);
                let mut list = Vec::with_capacity((b - a) * 8);
                for k in a..b {
                    let before = list.len();
                    let xk = &xs_ref[k * d..(k + 1) * d];
                    cells.for_each_sorted_candidate(cells.sorted_cell[k] as usize, |j| {
                        if j == k {
                            return;
                        }
                        let mut r2 = 0.0;
                        for c in 0..d {
                            let v = bx.min_image_wrapped(xk[c] - xs_ref[j * d + c]);
                            r2 += v * v;
                        }
                        if r2 < r2max {
                            list.push(j as u32);
                        }
                    });
                    counts.push((list.len() - before) as u32);
                }
                (counts, list)
            })
            .collect();
        self.start.clear();
        self.start.push(0);
        self.nbr.clear();
        for (counts, list) in parts {
            for c in counts {
                let last = *self.start.last().unwrap();
                self.start.push(last + c);
            }
            self.nbr.extend_from_slice(&list);
        }
        self.x_build.clear();
        self.x_build.extend_from_slice(x);
        self.rank.resize(n, 0);
        for (k, &i) in self.cells.order.iter().enumerate() {
            self.rank[i as usize] = k as u32;
        }
        self.builds += 1;
        self.built = true;
    }
}

/// `xs[k] = x[order[k]]` (d components each), in parallel.
pub fn gather(x: &[f64], order: &[u32], d: usize, xs: &mut Vec<f64>) {
    xs.resize(x.len(), 0.0);
    xs.par_chunks_mut(CHUNK * d)
        .zip(order.par_chunks(CHUNK))
        .for_each(|(out, idx)| {
            for (o, &i) in out.chunks_exact_mut(d).zip(idx) {
                let i = i as usize;
                o.copy_from_slice(&x[i * d..(i + 1) * d]);
            }
        });
}

/// `out[order[k]] = sorted[k]`, in parallel through the inverse permutation `rank`
/// (`rank[order[k]] = k`).
pub fn scatter(sorted: &[f64], rank: &[u32], d: usize, out: &mut [f64]) {
    out.par_chunks_mut(CHUNK * d)
        .zip(rank.par_chunks(CHUNK))
        .for_each(|(o, r)| {
            for (oi, &k) in o.chunks_exact_mut(d).zip(r) {
                let k = k as usize;
                oi.copy_from_slice(&sorted[k * d..(k + 1) * d]);
            }
        });
}
