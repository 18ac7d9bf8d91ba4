//! Inputs of the local transformer: for particle i, its k nearest neighbours under minimum image
//! and the token features wrap(x_i − x_j), g_j.
//!
//! Neighbours are found with a cell grid searched in growing rings of cells (exact: after ring r
//! every particle closer than r·h is known, h the cell edge, so the search stops once the k-th
//! distance is below that). Tokens are ordered by (distance², relative vector) — a canonical order
//! that does not depend on particle labels, so the network is exactly permutation-equivariant.

use crate::particles::PeriodicBox;

/// A uniform grid of cells over a periodic box for k-nearest-neighbour queries.
#[derive(Debug, Clone)]
pub struct KnnGrid {
    dim: usize,
    side: usize,
    h: f64,
    half: f64,
    start: Vec<u32>,
    items: Vec<u32>,
}

impl KnnGrid {
    /// Grid for positions `x` (N·d, wrapped into the box) sized so that a cell holds about
    /// `per_cell` particles.
    pub fn new(x: &[f64], bx: &PeriodicBox, per_cell: f64) -> KnnGrid {
        let d = bx.dim;
        let n = x.len() / d;
        let cells_wanted = (n as f64 / per_cell.max(1.0)).max(1.0);
        let side = (cells_wanted.powf(1.0 / d as f64).floor() as usize).max(1);
        let h = bx.length / side as f64;
        let half = bx.half();
        let total = side.pow(d as u32);
        let cell = |p: &[f64]| {
            let mut flat = 0usize;
            for &v in p.iter().rev() {
                let c = (((v + half) / h) as usize).min(side - 1);
                flat = flat * side + c;
            }
            flat
        };
        let mut start = vec![0u32; total + 1];
        let cells: Vec<usize> = x.chunks_exact(d).map(cell).collect();
        for &c in &cells {
            start[c + 1] += 1;
        }
        for c in 0..total {
            start[c + 1] += start[c];
        }
        let mut fill = start.clone();
        let mut items = vec![0u32; n];
        for (i, &c) in cells.iter().enumerate() {
            items[fill[c] as usize] = i as u32;
            fill[c] += 1;
        }
        KnnGrid {
            dim: d,
            side,
            h,
            half,
            start,
            items,
        }
    }

    fn cell_coords(&self, p: &[f64]) -> [usize; 3] {
        let mut c = [0usize; 3];
        for (k, &v) in p.iter().enumerate() {
            c[k] = (((v + self.half) / self.h) as usize).min(self.side - 1);
        }
        c
    }

    /// The k nearest neighbours of particle i (j ≠ i), nearest first, ties broken by the
    /// relative vector; fewer when the box holds fewer particles.
    pub fn nearest(&self, x: &[f64], bx: &PeriodicBox, i: usize, k: usize) -> Vec<usize> {
        let d = self.dim;
        let n = x.len() / d;
        let k = k.min(n - 1);
        let xi = &x[i * d..(i + 1) * d];
        let home = self.cell_coords(xi);
        let mut found: Vec<(f64, usize)> = Vec::new();
        let side = self.side as i64;
        let mut r = 0i64;
        loop {
            // the cells at Chebyshev distance r from home (each once, also when rings wrap)
            let span = 2 * r + 1;
            let covers_all = span >= side;
            if covers_all {
                // every cell is visited below: drop what the earlier rings found
                found.clear();
            }
            let lo = if covers_all { 0 } else { -r };
            let hi = if covers_all { side - 1 } else { r };
            let mut offs = [0i64; 3];
            let count = (hi - lo + 1).pow(d as u32);
            for m in 0..count {
                let mut mm = m;
                let mut on_ring = false;
                for o in offs.iter_mut().take(d) {
                    *o = lo + mm % (hi - lo + 1);
                    mm /= hi - lo + 1;
                    on_ring |= o.abs() == r;
                }
                if !covers_all && !on_ring {
                    continue;
                }
                let mut flat = 0usize;
                for a in (0..d).rev() {
                    let c = if covers_all {
                        offs[a]
                    } else {
                        (home[a] as i64 + offs[a]).rem_euclid(side)
                    };
                    flat = flat * self.side + c as usize;
                }
                for &j in &self.items[self.start[flat] as usize..self.start[flat + 1] as usize] {
                    let j = j as usize;
                    if j == i {
                        continue;
                    }
                    let d2: f64 = (0..d)
                        .map(|a| {
                            let v = bx.min_image_wrapped(xi[a] - x[j * d + a]);
                            v * v
                        })
                        .sum();
                    found.push((d2, j));
                }
            }
            let done = covers_all || {
                if found.len() >= k {
                    let mut dists: Vec<f64> = found.iter().map(|f| f.0).collect();
                    let kth = if k == 0 {
                        0.0
                    } else {
                        *dists.select_nth_unstable_by(k - 1, f64::total_cmp).1
                    };
                    let reach = r as f64 * self.h;
                    kth <= reach * reach
                } else {
                    false
                }
            };
            if done {
                break;
            }
            r += 1;
        }
        let rel = |j: usize| -> [f64; 3] {
            let mut v = [0.0; 3];
            for a in 0..d {
                v[a] = bx.min_image_wrapped(xi[a] - x[j * d + a]);
            }
            v
        };
        found.sort_by(|a, b| token_order((a.0, &rel(a.1)), (b.0, &rel(b.1))));
        found.truncate(k);
        found.into_iter().map(|f| f.1).collect()
    }
}

/// The canonical order of neighbour tokens: by squared distance, ties broken by the relative
/// vector x_i − x_j component by component (independent of particle labels).
pub fn token_order(a: (f64, &[f64]), b: (f64, &[f64])) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then_with(|| {
        a.1.iter()
            .zip(b.1)
            .map(|(p, q)| p.total_cmp(q))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    })
}

/// Extra candidates drawn beyond the k nearest when the positions are perturbed (denoising):
/// the tokens are the k nearest of the *perturbed* configuration, in its order, so that the
/// network input is a function of z̃ alone — ordering by the clean positions would let the
/// network read the noise off the token order (measured: a local transformer then reaches a
/// denoising loss far below the true score's and learns a velocity 35 % too large on free
/// particles). σ ≪ the particle spacing, so a neighbour ranked beyond k + 8 cleanly cannot
/// enter the k nearest perturbed ones except at a tie.
pub const PERTURBED_CANDIDATES: usize = 8;

/// Token features of particle i with neighbours `nb`: appends (k+1)·d values wrap(x_i − x_j)
/// (token 0: the particle itself, zeros) to `rel` and (k+1)·c values g_j to `gn`. When the box
/// holds fewer than k other particles the missing tokens repeat the particle itself.
#[allow(clippy::too_many_arguments)]
pub fn push_tokens(
    x: &[f64],
    g: &[f64],
    bx: &PeriodicBox,
    c: usize,
    i: usize,
    nb: &[usize],
    k: usize,
    rel: &mut Vec<f32>,
    gn: &mut Vec<f32>,
) {
    let d = bx.dim;
    let xi = &x[i * d..(i + 1) * d];
    for t in 0..=k {
        let j = if t == 0 {
            i
        } else {
            nb.get(t - 1).copied().unwrap_or(i)
        };
        for a in 0..d {
            rel.push(bx.min_image_wrapped(xi[a] - x[j * d + a]) as f32);
        }
        gn.extend(g[j * c..(j + 1) * c].iter().map(|&v| v as f32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grid search returns the same k nearest neighbours as a brute-force sort, in 1-D, 2-D
    /// and 3-D, for k below and above a cell's occupancy.
    #[test]
    fn grid_knn_equals_brute_force() {
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for (d, n, k) in [
            (1, 50, 5),
            (2, 400, 16),
            (2, 300, 64),
            (3, 500, 20),
            (2, 60, 8),
            (2, 60, 40),
        ] {
            let bx = PeriodicBox::new(d, 10.0);
            let x: Vec<f64> = (0..n * d).map(|_| -5.0 + 10.0 * next()).collect();
            let grid = KnnGrid::new(&x, &bx, 4.0);
            for i in [0, n / 2, n - 1] {
                let got = grid.nearest(&x, &bx, i, k);
                let mut all: Vec<(f64, usize)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        let d2 = (0..d)
                            .map(|a| bx.min_image_wrapped(x[i * d + a] - x[j * d + a]).powi(2))
                            .sum::<f64>();
                        (d2, j)
                    })
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0));
                let want: Vec<usize> = all[..k].iter().map(|p| p.1).collect();
                assert_eq!(got, want, "d = {d}, n = {n}, k = {k}, i = {i}");
            }
        }
    }
}
