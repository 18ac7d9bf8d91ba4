//! Domain decomposition of the periodic box (the geometry of a run over MPI ranks, without the
//! transport): a Cartesian grid of P_1 × … × P_d equal sub-boxes, one per rank; which rank owns
//! a position; which ranks neighbour a rank; which of a rank's particles another rank needs as
//! ghosts. The transport is `particles::mpi` (feature `mpi`).
//!
//! A rank owns the particles whose wrapped position lies in its sub-box at the last neighbour-
//! list build, and holds as ghosts every particle of another rank within the ghost width
//! w = cut-off + skin of its sub-box (per coordinate, on the periodic circle). Between builds no
//! particle moves more than skin/2 (the list's rebuild trigger), so every pair within the
//! cut-off of an owned particle has its partner owned or a ghost: forces are gathered per owned
//! particle (LAMMPS's `newton off`) and no force is sent back.

/// Most ranks along one direction (a sanity limit: a grid is chosen by enumerating factors).
pub const MAX_RANKS: usize = 1 << 20;

/// The rank grid over a periodic box of edge `length` in `dim` dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub dim: usize,
    /// Ranks per direction (1 beyond `dim`); rank = c_0 + P_0 (c_1 + P_1 c_2).
    pub ranks: [usize; 3],
    /// Box edge L (the box spans [−L/2, L/2) per direction).
    pub length: f64,
}

impl Grid {
    /// The grid for `k` ranks: the factorisation P_1 · … · P_d = k with the thickest thinnest
    /// sub-box (ties: more ranks along the earlier directions), or `spec` when given (its
    /// product must be k). Refused, with what would work, when a decomposed direction's
    /// sub-box is thinner than `ghost_width` (the cut-off plus the skin): its ghost layer would
    /// reach past the neighbouring rank. `ghost_width` = 0 (no pair forces) allows any grid.
    pub fn new(
        k: usize,
        dim: usize,
        length: f64,
        ghost_width: f64,
        spec: Option<&[usize]>,
    ) -> Result<Grid, String> {
        if k == 0 || k > MAX_RANKS {
            return Err(format!(
                "{k} ranks: between 1 and {MAX_RANKS} are supported"
            ));
        }
        let fits = |p: usize| fits_in(length, p, ghost_width);
        let most = if ghost_width > 0.0 {
            ((length / ghost_width).floor() as usize).max(1)
        } else {
            usize::MAX
        };
        let ranks = if let Some(spec) = spec {
            if spec.len() != dim {
                return Err(format!(
                    "--ranks-grid gives {} directions, the box has {dim}",
                    spec.len()
                ));
            }
            let product: usize = spec.iter().product();
            if product != k || spec.contains(&0) {
                return Err(format!(
                    "--ranks-grid {} has {product} ranks, the run has {k} (mpirun -np)",
                    join(spec)
                ));
            }
            if let Some(c) = spec.iter().position(|&p| !fits(p)) {
                return Err(format!(
                    "--ranks-grid {}: {} ranks along direction {c} give sub-boxes {:.4} wide, thinner than the ghost layer (cut-off + skin = {:.4}); at most {most} ranks fit along a direction of this box (L = {length})",
                    join(spec),
                    spec[c],
                    length / spec[c] as f64,
                    ghost_width
                ));
            }
            let mut r = [1usize; 3];
            r[..dim].copy_from_slice(spec);
            r
        } else {
            let mut best: Option<([usize; 3], usize)> = None;
            for_each_factorisation(k, dim, &mut |f| {
                if !f[..dim].iter().all(|&p| fits(p)) {
                    return;
                }
                let thinnest = *f[..dim].iter().max().unwrap();
                // fewer ranks along the most divided direction = thicker sub-boxes; ties go to
                // the first found (factors enumerated largest first along direction 0)
                if best.is_none_or(|(_, t)| thinnest < t) {
                    best = Some((f, thinnest));
                }
            });
            match best {
                Some((f, _)) => f,
                None => {
                    return Err(format!(
                        "{k} ranks cannot tile this box: every grid of {k} ranks has sub-boxes thinner than the ghost layer (cut-off + skin = {ghost_width:.4}); the box (L = {length:.4}) holds at most {most} sub-box(es) per direction, {} rank(s) in all",
                        most.saturating_pow(dim as u32)
                    ))
                }
            }
        };
        Ok(Grid { dim, ranks, length })
    }

    /// Whether every sub-box is at least `width` wide where the grid cuts the box: a layer of
    /// that width around a sub-box then reaches no rank beyond its neighbours.
    pub fn admits(&self, width: f64) -> bool {
        (0..self.dim).all(|k| fits_in(self.length, self.ranks[k], width))
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.ranks.iter().product()
    }

    /// Grid coordinates of `rank`.
    pub fn coords(&self, rank: usize) -> [usize; 3] {
        let p = self.ranks;
        [rank % p[0], (rank / p[0]) % p[1], rank / (p[0] * p[1])]
    }

    /// The rank at grid coordinates `c` (taken modulo the grid: periodic).
    pub fn rank_at(&self, c: [i64; 3]) -> usize {
        let p = self.ranks;
        let w = |k: usize| c[k].rem_euclid(p[k] as i64) as usize;
        w(0) + p[0] * (w(1) + p[1] * w(2))
    }

    /// Lower and upper edges of `rank`'s sub-box per direction (lower ≤ x < upper).
    pub fn bounds(&self, rank: usize) -> ([f64; 3], [f64; 3]) {
        let c = self.coords(rank);
        let (mut lo, mut hi) = ([0.0; 3], [0.0; 3]);
        for k in 0..self.dim {
            let w = self.length / self.ranks[k] as f64;
            lo[k] = -0.5 * self.length + c[k] as f64 * w;
            hi[k] = lo[k] + w;
        }
        (lo, hi)
    }

    /// The rank owning wrapped position `x` (d components in [−L/2, L/2)).
    pub fn owner(&self, x: &[f64]) -> usize {
        let mut c = [0i64; 3];
        for k in 0..self.dim {
            let p = self.ranks[k];
            let u = (x[k] + 0.5 * self.length) / self.length * p as f64;
            c[k] = (u.floor().max(0.0) as i64).min(p as i64 - 1);
        }
        self.rank_at(c)
    }

    /// The other ranks in the 3^d stencil around `rank` (each once, ascending): the only ranks
    /// that can hold ghosts of its particles or send it ghosts.
    pub fn neighbours(&self, rank: usize) -> Vec<usize> {
        let c = self.coords(rank);
        let mut out = Vec::new();
        for o in 0..3usize.pow(self.dim as u32) {
            let mut cc = [0i64; 3];
            let mut oo = o;
            for k in 0..3 {
                let off = if k < self.dim { (oo % 3) as i64 - 1 } else { 0 };
                oo /= 3;
                cc[k] = c[k] as i64 + off;
            }
            let r = self.rank_at(cc);
            if r != rank {
                out.push(r);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether wrapped position `x` lies within `width` of `rank`'s sub-box along every
    /// decomposed direction (distance on the periodic circle): `rank` needs it as a ghost.
    pub fn near(&self, x: &[f64], rank: usize, width: f64) -> bool {
        let (lo, hi) = self.bounds(rank);
        self.near_box(x, &lo, &hi, width)
    }

    /// [`Grid::near`] for the sub-box with edges `lo`, `hi` (from [`Grid::bounds`]).
    #[inline]
    pub fn near_box(&self, x: &[f64], lo: &[f64; 3], hi: &[f64; 3], width: f64) -> bool {
        (0..self.dim).all(|k| {
            if self.ranks[k] == 1 {
                return true;
            }
            let centre = 0.5 * (lo[k] + hi[k]);
            let mut dx = x[k] - centre;
            dx -= self.length * (dx / self.length).round();
            dx.abs() - 0.5 * (hi[k] - lo[k]) <= width
        })
    }
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// Calls `f` with every ordered factorisation of `k` into `dim` factors (1 beyond `dim`), the
/// first direction's factor from largest to smallest.
fn for_each_factorisation(k: usize, dim: usize, f: &mut dyn FnMut([usize; 3])) {
    fn rec(k: usize, at: usize, dim: usize, cur: &mut [usize; 3], f: &mut dyn FnMut([usize; 3])) {
        if at + 1 == dim {
            cur[at] = k;
            f(*cur);
            return;
        }
        for p in (1..=k).rev().filter(|p| k.is_multiple_of(*p)) {
            cur[at] = p;
            rec(k / p, at + 1, dim, cur, f);
        }
    }
    let mut cur = [1usize; 3];
    rec(k, 0, dim.max(1), &mut cur, f);
}

/// Whether `p` ranks along a direction of length `length` give sub-boxes at least `width` wide
/// (one rank: the whole periodic direction).
fn fits_in(length: f64, p: usize, width: f64) -> bool {
    p == 1 || length / p as f64 >= width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_balanced_and_refused_when_too_thin() {
        let g = Grid::new(4, 2, 40.0, 2.0, None).unwrap();
        assert_eq!(g.ranks, [2, 2, 1]);
        let g = Grid::new(6, 3, 40.0, 2.0, None).unwrap();
        assert_eq!(g.ranks.iter().product::<usize>(), 6);
        assert_eq!(*g.ranks.iter().max().unwrap(), 3);
        // 7 ranks in a box 10 wide with ghost width 2: 7 along one direction is too thin
        let e = Grid::new(7, 2, 10.0, 2.0, None).unwrap_err();
        assert!(e.contains("thinner than the ghost layer"), "{e}");
        let e = Grid::new(2, 2, 10.0, 2.0, Some(&[1, 6])).unwrap_err();
        assert!(e.contains("has 6 ranks, the run has 2"), "{e}");
        let e = Grid::new(6, 2, 10.0, 2.0, Some(&[1, 6])).unwrap_err();
        assert!(e.contains("thinner than the ghost layer"), "{e}");
        // no pair forces: any grid
        assert_eq!(Grid::new(5, 1, 1.0, 0.0, None).unwrap().ranks, [5, 1, 1]);
    }

    #[test]
    fn every_position_has_one_owner_and_ghosts_reach_the_neighbours() {
        let g = Grid::new(6, 2, 12.0, 1.5, Some(&[3, 2])).unwrap();
        for r in 0..6 {
            assert_eq!(g.rank_at(g.coords(r).map(|c| c as i64)), r);
            let nb = g.neighbours(r);
            assert_eq!(nb.len(), 5, "3x2 grid: every other rank neighbours");
        }
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 12.0 - 6.0
        };
        for _ in 0..2000 {
            let x = [uniform(), uniform()];
            let o = g.owner(&x);
            let (lo, hi) = g.bounds(o);
            assert!((0..2).all(|k| lo[k] <= x[k] && x[k] < hi[k]));
            // within its own sub-box: near its owner at any width
            assert!(g.near(&x, o, 0.0));
            // a point within the ghost width of another sub-box is near it; checked against
            // the distance to that box on the circle
            for r in 0..6 {
                let (lo, hi) = g.bounds(r);
                let inside = (0..2).all(|k| {
                    [-12.0, 0.0, 12.0].iter().any(|sh| {
                        let y = x[k] + sh;
                        y >= lo[k] - 1.5 && y <= hi[k] + 1.5
                    })
                });
                assert_eq!(g.near(&x, r, 1.5), inside, "{x:?} rank {r}");
            }
        }
    }
}
