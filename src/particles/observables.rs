//! Observables of particle configurations: mean-squared displacement, propulsion/orientation
//! autocorrelation, radial distribution function, local packing fraction and the largest dense
//! cluster (the MIPS order parameter). Neighbour searches use the cell list, so every observable
//! is O(N).

use super::cells::{CellList, PeriodicBox};
use super::decomposition::Grid;
use super::model::{ball_volume, ParticleModel};
use rayon::prelude::*;

/// Mean-squared displacement (1/N) Σ_i |x_i(t) − x_i(0)|² of unwrapped positions (N·d each).
pub fn msd(unwrapped: &[f64], unwrapped0: &[f64], n: usize) -> f64 {
    unwrapped
        .iter()
        .zip(unwrapped0)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / n as f64
}

/// Unwrapped positions x + image·L.
pub fn unwrap(x: &[f64], image: &[i32], bx: &PeriodicBox) -> Vec<f64> {
    x.iter()
        .zip(image)
        .map(|(v, i)| v + *i as f64 * bx.length)
        .collect()
}

/// Autocorrelation (1/N) Σ_i e_i(t)·e_i(0) of orientations (`per` components per particle; one
/// component = a 2-D angle, compared through cos(θ(t) − θ(0))) or of propulsions.
pub fn autocorrelation(now: &[f64], then: &[f64], per: usize, n: usize) -> f64 {
    if per == 1 {
        return now
            .iter()
            .zip(then)
            .map(|(a, b)| (a - b).cos())
            .sum::<f64>()
            / n as f64;
    }
    now.iter().zip(then).map(|(a, b)| a * b).sum::<f64>() / n as f64
}

/// Radial distribution function g(r) on `bins` shells of width r_max/bins: pair counts within
/// r_max (minimum image, each ordered pair once) divided by N ρ v_shell, ρ = N/V. Returns
/// (bin centres, g).
pub fn rdf(x: &[f64], bx: &PeriodicBox, n: usize, r_max: f64, bins: usize) -> (Vec<f64>, Vec<f64>) {
    let r_max = r_max.min(0.5 * bx.length);
    let x = &x[..n * bx.dim];
    let cells = cell_list(x, bx, r_max, None, 0.0);
    let hist = pair_distance_counts(x, bx, n, r_max, bins, &cells);
    rdf_of_counts(&hist, bx, n, r_max)
}

/// g(r) from ordered-pair counts per shell of width r_max/bins (see [`rdf`]).
fn rdf_of_counts(hist: &[u64], bx: &PeriodicBox, n: usize, r_max: f64) -> (Vec<f64>, Vec<f64>) {
    let (d, bins) = (bx.dim, hist.len());
    let dr = r_max / bins as f64;
    let rho = n as f64 / bx.volume();
    let centres: Vec<f64> = (0..bins).map(|b| (b as f64 + 0.5) * dr).collect();
    let g = (0..bins)
        .map(|b| {
            let shell = ball_volume(d, (b + 1) as f64 * dr) - ball_volume(d, b as f64 * dr);
            hist[b] as f64 / (n as f64 * rho * shell)
        })
        .collect();
    (centres, g)
}

/// Counts of the ordered pairs (i, j ≠ i), i among the first `owned` particles of `x` and j any
/// of them, closer than `r_max` (minimum image), per shell of width r_max/bins.
fn pair_distance_counts(
    x: &[f64],
    bx: &PeriodicBox,
    owned: usize,
    r_max: f64,
    bins: usize,
    cells: &CellList,
) -> Vec<u64> {
    let d = bx.dim;
    let dr = r_max / bins as f64;
    // per-block integer histograms summed afterwards (rayon): integer counts, so the result does
    // not depend on how the blocks are split, the thread count or the process count
    (0..owned)
        .into_par_iter()
        .with_min_len(1024)
        .fold(
            || vec![0u64; bins],
            |mut h, i| {
                cells.for_each_candidate(i, |j| {
                    if j == i {
                        return;
                    }
                    let r = distance(x, i, j, d, bx);
                    if r < r_max {
                        h[((r / dr) as usize).min(bins - 1)] += 1;
                    }
                });
                h
            },
        )
        .reduce(
            || vec![0u64; bins],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

#[inline]
fn distance(x: &[f64], i: usize, j: usize, d: usize, bx: &PeriodicBox) -> f64 {
    (0..d)
        .map(|c| bx.min_image(x[i * d + c] - x[j * d + c]).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Local packing fraction of every particle: the particles (itself included) whose centres lie
/// within `radius`, times the particle volume v_d(diameter/2), over the probe volume v_d(radius).
pub fn local_packing(
    x: &[f64],
    bx: &PeriodicBox,
    n: usize,
    diameter: f64,
    radius: f64,
) -> Vec<f64> {
    let x = &x[..n * bx.dim];
    let cells = cell_list(x, bx, radius, None, 0.0);
    let all: Vec<usize> = (0..n).collect();
    let scale = packing_scale(bx.dim, diameter, radius);
    neighbour_counts(x, bx, &all, radius, &cells)
        .into_iter()
        .map(|c| c as f64 * scale)
        .collect()
}

/// v_d(diameter/2) / v_d(radius): the local packing fraction per particle within the probe.
fn packing_scale(d: usize, diameter: f64, radius: f64) -> f64 {
    ball_volume(d, 0.5 * diameter) / ball_volume(d, radius)
}

/// For each particle `i` of `which`: the particles of `x` (itself included) within `radius`.
fn neighbour_counts(
    x: &[f64],
    bx: &PeriodicBox,
    which: &[usize],
    radius: f64,
    cells: &CellList,
) -> Vec<u32> {
    let d = bx.dim;
    which
        .par_iter()
        .with_min_len(1024)
        .map(|&i| {
            let mut count = 0u32;
            cells.for_each_candidate(i, |j| {
                if distance(x, i, j, d, bx) < radius {
                    count += 1;
                }
            });
            count
        })
        .collect()
}

/// The bin of `v` among `bins` equal bins over [lo, hi), values outside clamped to the end bins.
#[inline]
fn bin_of(v: f64, lo: f64, hi: f64, bins: usize) -> usize {
    let w = (hi - lo) / bins as f64;
    (((v - lo) / w).floor().max(0.0) as usize).min(bins - 1)
}

/// Histogram of values on `bins` equal bins over [lo, hi) (values outside are clamped to the
/// end bins), normalised to a probability density.
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0u64; bins];
    for v in values {
        counts[bin_of(*v, lo, hi, bins)] += 1;
    }
    density_of_counts(&counts, values.len(), lo, hi)
}

/// Counts per bin of `total` values on [lo, hi) as a probability density.
fn density_of_counts(counts: &[u64], total: usize, lo: f64, hi: f64) -> Vec<f64> {
    let w = (hi - lo) / counts.len() as f64;
    let norm = total.max(1) as f64 * w;
    counts.iter().map(|&c| c as f64 / norm).collect()
}

/// Default probe radius of the local packing fraction, in particle diameters.
pub const LOCAL_RADIUS: f64 = 2.5;
/// Local packing fraction above which a particle belongs to the dense phase: between a
/// homogeneous fluid at φ ≈ 0.6 and the dense MIPS phase (φ ≈ 0.85–0.9). Measured on ABP–WCA disks
/// at φ = 0.6 (N = 1000, t = 4 τ_r): Pe = 10 gives a largest dense cluster of 0.035 N, Pe = 150
/// gives 0.59 N (0.55 with threshold 0.7, 0.45 with 0.75, whose probe counts miss the cluster rim).
pub const DENSE_THRESHOLD: f64 = 0.65;

/// Fraction of particles in the largest dense cluster: particles whose local packing fraction
/// `phi` (from [`local_packing`] with probe radius [`LOCAL_RADIUS`] diameters, one value per
/// particle) is at least `threshold`, connected when their centres are closer than `contact`
/// (union–find over cell-list pairs). In a homogeneous fluid below the threshold it is near 0; in
/// a phase-separated (MIPS) state it is the dense phase's share.
pub fn largest_cluster_fraction(
    x: &[f64],
    bx: &PeriodicBox,
    phi: &[f64],
    contact: f64,
    threshold: f64,
) -> f64 {
    let n = phi.len();
    if n == 0 {
        return 0.0;
    }
    let dense: Vec<bool> = phi.iter().map(|p| *p >= threshold).collect();
    let x = &x[..n * bx.dim];
    let cells = cell_list(x, bx, contact, None, 0.0);
    let (largest, _) = dense_clusters(x, bx, &dense, n, contact, &cells, None);
    largest as f64 / n as f64
}

/// Dense clusters among the first `owned` particles of `x` (and the others, ghosts, as far as
/// they link owned ones): union–find over the pairs (i owned, j) of dense particles closer than
/// `contact`. Returns the size (owned members) of the largest cluster none of whose members is
/// on a border, and the clusters that touch a border — those with a ghost member, or an owned
/// member within `contact` of a neighbouring rank's sub-box (`share`) — as [`ClusterPart`]s.
/// In one process (`share` None) no cluster touches a border.
fn dense_clusters(
    x: &[f64],
    bx: &PeriodicBox,
    dense: &[bool],
    owned: usize,
    contact: f64,
    cells: &CellList,
    share: Option<&Share<'_>>,
) -> (u64, Vec<ClusterPart>) {
    let d = bx.dim;
    let slots = dense.len();
    let mut parent: Vec<u32> = (0..slots as u32).collect();
    fn find(p: &mut [u32], mut a: u32) -> u32 {
        while p[a as usize] != a {
            p[a as usize] = p[p[a as usize] as usize];
            a = p[a as usize];
        }
        a
    }
    let mut links = Vec::new();
    for i in 0..owned {
        if !dense[i] {
            continue;
        }
        links.clear();
        cells.for_each_candidate(i, |j| {
            // owned pairs once; a ghost partner is only ever met from the owned side
            if (j > i || j >= owned) && dense[j] && distance(x, i, j, d, bx) < contact {
                links.push(j);
            }
        });
        for &j in &links {
            let (a, b) = (find(&mut parent, i as u32), find(&mut parent, j as u32));
            if a != b {
                parent[a.max(b) as usize] = a.min(b);
            }
        }
    }
    // owned members per cluster root, and whether (and through whom) the cluster touches a border
    let mut size = vec![0u64; slots];
    let mut border: Vec<Vec<u32>> = vec![Vec::new(); slots];
    for i in 0..slots {
        if !dense[i] {
            continue;
        }
        let r = find(&mut parent, i as u32) as usize;
        if i < owned {
            size[r] += 1;
        }
        if let Some(s) = share {
            let xi = &x[i * d..(i + 1) * d];
            let on_border =
                i >= owned || s.neighbours.iter().any(|&nb| s.grid.near(xi, nb, contact));
            if on_border {
                border[r].push(s.tag[i]);
            }
        }
    }
    let mut interior = 0u64;
    let mut parts = Vec::new();
    for r in 0..slots {
        // (a ghost linked to no owned particle is its owner's business)
        if size[r] == 0 {
            continue;
        }
        if border[r].is_empty() {
            interior = interior.max(size[r]);
        } else {
            parts.push(ClusterPart {
                owned: size[r],
                border: std::mem::take(&mut border[r]),
            });
        }
    }
    (interior, parts)
}

/// The largest dense cluster (members) from the clusters the processes saw whole (`interior`:
/// each process's largest) and the parts of those that touch a border: parts sharing a particle
/// (by id) are one cluster, their owned members added.
pub fn merge_clusters(interior: u64, parts: &[ClusterPart]) -> u64 {
    let mut parent: Vec<usize> = (0..parts.len()).collect();
    fn find(p: &mut [usize], mut a: usize) -> usize {
        while p[a] != a {
            p[a] = p[p[a]];
            a = p[a];
        }
        a
    }
    let mut first = std::collections::HashMap::new();
    for (k, part) in parts.iter().enumerate() {
        for &t in &part.border {
            let seen = *first.entry(t).or_insert(k);
            let (a, b) = (find(&mut parent, seen), find(&mut parent, k));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut size = vec![0u64; parts.len()];
    for (k, part) in parts.iter().enumerate() {
        let r = find(&mut parent, k);
        size[r] += part.owned;
    }
    size.into_iter().fold(interior, u64::max)
}

/// A dense cluster as one process sees it, where it touches the process's border: its own
/// members, and the ids of its members another process may also see (ghosts, and own particles
/// within contact of a neighbouring sub-box). [`merge_clusters`] joins the parts.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPart {
    /// Members this process owns.
    pub owned: u64,
    /// Ids of the members on the border.
    pub border: Vec<u32>,
}

/// The pair statistics a particle run records per frame (pair forces, d ≥ 2): g(r) out to
/// `rdf_max` on `rdf_bins` shells; the local packing fraction (particles within
/// `packing_radius`, see [`local_packing`]) histogrammed on `packing_bins` bins over
/// [0, `packing_max`); the largest cluster of dense particles (local packing fraction ≥
/// `threshold`) linked closer than `contact`. Lengths in the model's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairStatistics {
    /// Particle diameter σ.
    pub diameter: f64,
    pub rdf_max: f64,
    pub rdf_bins: usize,
    pub packing_radius: f64,
    pub packing_bins: usize,
    pub packing_max: f64,
    pub contact: f64,
    pub threshold: f64,
}

impl PairStatistics {
    /// The statistics of particles of diameter σ in `bx`: g(r) to min(5σ, L/2) on 100 shells,
    /// probe radius [`LOCAL_RADIUS`]·σ, 60 bins on [0, 1.2), contact 1.2σ,
    /// [`DENSE_THRESHOLD`].
    pub fn new(bx: &PeriodicBox, diameter: f64) -> PairStatistics {
        PairStatistics {
            diameter,
            rdf_max: (5.0 * diameter).min(0.5 * bx.length),
            rdf_bins: 100,
            packing_radius: LOCAL_RADIUS * diameter,
            packing_bins: 60,
            packing_max: 1.2,
            contact: 1.2 * diameter,
            threshold: DENSE_THRESHOLD,
        }
    }

    /// The statistics a run of `model` records: [`PairStatistics::new`] with its diameter, for
    /// pair forces in d ≥ 2 (None otherwise).
    pub fn of_model(model: &ParticleModel) -> Option<PairStatistics> {
        (model.pair.is_some() && model.dim >= 2)
            .then(|| PairStatistics::new(&model.bx, model.diameter()))
    }

    /// How far beyond its sub-box a process must see the others' particles to count its own:
    /// the g(r) range, and contact plus probe radius (the packing fraction of a ghost that
    /// links an own particle).
    pub fn reach(&self) -> f64 {
        self.rdf_max.max(self.contact + self.packing_radius)
    }
}

/// A process's share of a configuration for [`count_pairs`]: rank `rank`'s sub-box of `grid`,
/// the ranks neighbouring it, and the ids of the particles it holds (its own first, then ghost
/// copies of the others' particles within [`PairStatistics::reach`] of its sub-box).
#[derive(Debug, Clone, Copy)]
pub struct Share<'a> {
    pub grid: &'a Grid,
    pub rank: usize,
    pub neighbours: &'a [usize],
    pub tag: &'a [u32],
}

/// The cell list of the particles `x` for pairs within `r`: over the whole box in one process,
/// over the rank's sub-box widened by `reach` (clipped where the grid cuts the box) for a share.
fn cell_list(
    x: &[f64],
    bx: &PeriodicBox,
    r: f64,
    share: Option<&Share<'_>>,
    reach: f64,
) -> CellList {
    let mut cells = match share {
        None => CellList::new(bx, r),
        Some(s) => {
            let (mut lo, mut hi) = s.grid.bounds(s.rank);
            let mut clipped = [false; 3];
            for k in 0..bx.dim {
                lo[k] -= reach;
                hi[k] += reach;
                clipped[k] = s.grid.ranks[k] > 1;
            }
            CellList::new_region(bx, r, lo, hi, clipped)
        }
    };
    cells.build(x);
    cells
}

/// A process's pair statistics, before they are added up over processes ([`LocalCounts::total`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalCounts {
    /// Ordered pairs (i own, j ≠ i) per g(r) shell.
    pub rdf: Vec<u64>,
    /// Own particles per local-packing-fraction bin.
    pub packing: Vec<u64>,
    /// Largest dense cluster this process saw whole (own members).
    pub interior_cluster: u64,
    /// Dense clusters touching this process's border.
    pub border_clusters: Vec<ClusterPart>,
}

/// Counts the pair statistics of the first `owned` particles of `x` (N·d positions wrapped into
/// the box): all of them in one process (`share` None, `owned` = N), or a rank's own particles
/// among its own and ghost ones. Integer counts throughout, so that the sum over ranks
/// ([`LocalCounts::total`]) is the one-process count exactly, whatever the decomposition.
pub fn count_pairs(
    stats: &PairStatistics,
    bx: &PeriodicBox,
    x: &[f64],
    owned: usize,
    share: Option<&Share<'_>>,
) -> LocalCounts {
    let d = bx.dim;
    let slots = x.len() / d;
    let reach = stats.reach();
    // local packing fraction of the own particles, and of the ghosts within contact of the
    // sub-box (the only ones an own particle can link; their probes lie within the reach)
    let need: Vec<usize> = (0..slots)
        .filter(|&i| {
            i < owned
                || share.is_some_and(|s| s.grid.near(&x[i * d..(i + 1) * d], s.rank, stats.contact))
        })
        .collect();
    let probe = cell_list(x, bx, stats.packing_radius, share, reach);
    let counts = neighbour_counts(x, bx, &need, stats.packing_radius, &probe);
    drop(probe);
    let scale = packing_scale(d, stats.diameter, stats.packing_radius);
    let mut dense = vec![false; slots];
    let mut packing = vec![0u64; stats.packing_bins];
    for (&i, &c) in need.iter().zip(&counts) {
        let phi = c as f64 * scale;
        dense[i] = phi >= stats.threshold;
        if i < owned {
            packing[bin_of(phi, 0.0, stats.packing_max, stats.packing_bins)] += 1;
        }
    }
    let links = cell_list(x, bx, stats.contact, share, reach);
    let (interior_cluster, border_clusters) =
        dense_clusters(x, bx, &dense, owned, stats.contact, &links, share);
    drop(links);
    let shells = cell_list(x, bx, stats.rdf_max, share, reach);
    let rdf = pair_distance_counts(x, bx, owned, stats.rdf_max, stats.rdf_bins, &shells);
    LocalCounts {
        rdf,
        packing,
        interior_cluster,
        border_clusters,
    }
}

impl LocalCounts {
    /// The counts of all processes added up (clusters across borders joined).
    pub fn total(parts: &[LocalCounts]) -> PairCounts {
        let mut rdf = vec![0u64; parts.first().map_or(0, |p| p.rdf.len())];
        let mut packing = vec![0u64; parts.first().map_or(0, |p| p.packing.len())];
        for p in parts {
            rdf.iter_mut().zip(&p.rdf).for_each(|(a, b)| *a += b);
            packing
                .iter_mut()
                .zip(&p.packing)
                .for_each(|(a, b)| *a += b);
        }
        let interior = parts.iter().map(|p| p.interior_cluster).max().unwrap_or(0);
        let border: Vec<ClusterPart> = parts
            .iter()
            .flat_map(|p| p.border_clusters.iter().cloned())
            .collect();
        PairCounts {
            rdf,
            packing,
            largest_cluster: merge_clusters(interior, &border),
        }
    }

    /// The counts as one array of words, for a transport: the g(r) and packing counts, the
    /// interior cluster, then per border cluster its own members, its border count and ids.
    pub fn to_words(&self) -> Vec<u64> {
        let mut w = Vec::with_capacity(self.rdf.len() + self.packing.len() + 1);
        w.extend_from_slice(&self.rdf);
        w.extend_from_slice(&self.packing);
        w.push(self.interior_cluster);
        for c in &self.border_clusters {
            w.push(c.owned);
            w.push(c.border.len() as u64);
            w.extend(c.border.iter().map(|&t| t as u64));
        }
        w
    }

    /// The counts [`LocalCounts::to_words`] wrote for `stats`.
    pub fn from_words(words: &[u64], stats: &PairStatistics) -> LocalCounts {
        let (nr, np) = (stats.rdf_bins, stats.packing_bins);
        let rdf = words[..nr].to_vec();
        let packing = words[nr..nr + np].to_vec();
        let interior_cluster = words[nr + np];
        let mut rest = &words[nr + np + 1..];
        let mut border_clusters = Vec::new();
        while rest.len() >= 2 {
            let m = rest[1] as usize;
            border_clusters.push(ClusterPart {
                owned: rest[0],
                border: rest[2..2 + m].iter().map(|&t| t as u32).collect(),
            });
            rest = &rest[2 + m..];
        }
        LocalCounts {
            rdf,
            packing,
            interior_cluster,
            border_clusters,
        }
    }
}

/// The pair statistics of a whole configuration, as exact counts ([`count_pairs`] summed over
/// processes): ordered pairs per g(r) shell, particles per packing-fraction bin, members of the
/// largest dense cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct PairCounts {
    pub rdf: Vec<u64>,
    pub packing: Vec<u64>,
    pub largest_cluster: u64,
}

impl PairCounts {
    /// The counts of the whole configuration `x` (N·d positions wrapped into `bx`) in this
    /// process.
    pub fn of(stats: &PairStatistics, bx: &PeriodicBox, x: &[f64]) -> PairCounts {
        let n = x.len() / bx.dim;
        LocalCounts::total(&[count_pairs(stats, bx, x, n, None)])
    }

    /// g(r) (bin centres, values) of N particles in `bx`, as [`rdf`] gives it.
    pub fn rdf(&self, stats: &PairStatistics, bx: &PeriodicBox, n: usize) -> (Vec<f64>, Vec<f64>) {
        rdf_of_counts(&self.rdf, bx, n, stats.rdf_max)
    }

    /// The local packing fraction's probability density per bin (as [`histogram`] of the
    /// values of [`local_packing`] gives it).
    pub fn packing_density(&self, stats: &PairStatistics, n: usize) -> Vec<f64> {
        density_of_counts(&self.packing, n, 0.0, stats.packing_max)
    }

    /// The largest dense cluster's share of the N particles (as [`largest_cluster_fraction`]).
    pub fn cluster_fraction(&self, n: usize) -> f64 {
        if n == 0 {
            return 0.0;
        }
        self.largest_cluster as f64 / n as f64
    }
}

/// The local packing fraction of every particle of a frame read from an H5MD file (probe radius
/// [`LOCAL_RADIUS`] diameters), with the particle diameter taken from the file's parameters
/// (`sigma`, or 2`R`; 1 when neither is recorded): (φ per particle, diameter).
pub fn frame_packing(fr: &crate::io::h5md::ParticleFrame) -> (Vec<f64>, f64) {
    let p = &fr.parameters;
    let diameter = match (p.get("sigma"), p.get("R")) {
        (Some(s), _) => *s,
        (None, Some(r)) => 2.0 * r,
        _ => 1.0,
    };
    let bx = super::PeriodicBox::new(fr.dim, fr.edges[0]);
    let phi = local_packing(&fr.x, &bx, fr.n, diameter, LOCAL_RADIUS * diameter);
    (phi, diameter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdf_of_ideal_gas_is_one() {
        let bx = PeriodicBox::new(2, 40.0);
        let n = 4000;
        let mut s = 12345u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let x: Vec<f64> = (0..2 * n).map(|_| 40.0 * next() - 20.0).collect();
        let (_, g) = rdf(&x, &bx, n, 5.0, 10);
        for v in &g[2..] {
            assert!((v - 1.0).abs() < 0.1, "{g:?}");
        }
    }

    /// The counts of every rank of `grid` (own particles, and ghosts within the reach of its
    /// sub-box from its neighbours, as `particles::mpi` sends them), added up.
    fn decomposed_counts(
        stats: &PairStatistics,
        bx: &PeriodicBox,
        x: &[f64],
        grid: &Grid,
    ) -> PairCounts {
        let d = bx.dim;
        let n = x.len() / d;
        let parts: Vec<LocalCounts> = (0..grid.size())
            .map(|rank| {
                let mut xs = Vec::new();
                let mut tag = Vec::new();
                for i in 0..n {
                    if grid.owner(&x[i * d..(i + 1) * d]) == rank {
                        xs.extend_from_slice(&x[i * d..(i + 1) * d]);
                        tag.push(i as u32);
                    }
                }
                let owned = tag.len();
                let neighbours = grid.neighbours(rank);
                for &nb in &neighbours {
                    for i in 0..n {
                        let xi = &x[i * d..(i + 1) * d];
                        if grid.owner(xi) == nb && grid.near(xi, rank, stats.reach()) {
                            xs.extend_from_slice(xi);
                            tag.push(i as u32);
                        }
                    }
                }
                let share = Share {
                    grid,
                    rank,
                    neighbours: &neighbours,
                    tag: &tag,
                };
                let local = count_pairs(stats, bx, &xs, owned, Some(&share));
                // through the transport's words
                LocalCounts::from_words(&local.to_words(), stats)
            })
            .collect();
        LocalCounts::total(&parts)
    }

    /// A phase-separated configuration: a dense hexagonal slab (two touching layers of disks
    /// across the periodic edge in x, and a bridge) in a dilute gas, in `d` dimensions.
    fn mips_like(d: usize, length: f64, seed: u64) -> Vec<f64> {
        let mut s = seed;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let half = 0.5 * length;
        let wrap = |v: f64| v - length * ((v + half) / length).floor();
        let mut x = Vec::new();
        // dense band along y (straddling x = ±L/2), touching disks on a triangular lattice
        let rows = (length / (0.5 * 3f64.sqrt())) as usize;
        // (3-D: layers 0.8 apart, for a packing fraction above the dense threshold)
        let layers = if d == 3 { (length / 0.8) as usize } else { 1 };
        for l in 0..layers {
            for b in 0..rows {
                for a in 0..8 {
                    x.push(wrap(half - 4.0 + a as f64 + 0.5 * (b % 2) as f64));
                    x.push(wrap(-half + b as f64 * 0.5 * 3f64.sqrt()));
                    if d == 3 {
                        x.push(wrap(-half + 0.8 * l as f64));
                    }
                }
            }
        }
        // a second, separate dense blob in the middle (crosses the 2- and 3-rank borders)
        for a in 0..7 {
            for b in 0..7 {
                x.push(a as f64 - 3.0 + 0.5 * (b % 2) as f64);
                x.push(b as f64 * 0.5 * 3f64.sqrt() - 2.6);
                if d == 3 {
                    x.push(0.0);
                }
            }
        }
        // a dilute gas
        for _ in 0..300 {
            for _ in 0..d {
                x.push(length * next() - half);
            }
        }
        x
    }

    #[test]
    fn counts_added_over_any_rank_grid_are_the_one_process_counts() {
        for (d, length, grids) in [
            (
                2,
                30.0,
                vec![
                    vec![2, 1],
                    vec![1, 2],
                    vec![2, 2],
                    vec![3, 2],
                    vec![1, 5],
                    vec![4, 3],
                ],
            ),
            (3, 16.0, vec![vec![2, 1, 1], vec![2, 2, 2], vec![1, 3, 1]]),
        ] {
            let bx = PeriodicBox::new(d, length);
            let x = mips_like(d, length, 7 + d as u64);
            let stats = PairStatistics::new(&bx, 1.0);
            let one = PairCounts::of(&stats, &bx, &x);
            let n = x.len() / d;
            // the statistics are not trivial: a large cluster, a filled packing histogram
            assert!(
                one.largest_cluster as f64 > 0.2 * n as f64,
                "{}",
                one.largest_cluster
            );
            assert_eq!(one.packing.iter().sum::<u64>(), n as u64);
            assert!(one.rdf.iter().sum::<u64>() > 10 * n as u64);
            // as the free functions count them
            let phi = local_packing(&x, &bx, n, 1.0, LOCAL_RADIUS);
            let f = largest_cluster_fraction(&x, &bx, &phi, 1.2, DENSE_THRESHOLD);
            assert_eq!(one.cluster_fraction(n), f);
            assert_eq!(
                one.packing_density(&stats, n),
                histogram(&phi, 0.0, 1.2, 60)
            );
            assert_eq!(one.rdf(&stats, &bx, n), rdf(&x, &bx, n, 5.0, 100));
            for spec in grids {
                let k = spec.iter().product();
                let grid = Grid::new(k, d, length, stats.reach(), Some(&spec)).unwrap();
                assert_eq!(
                    decomposed_counts(&stats, &bx, &x, &grid),
                    one,
                    "d {d} grid {spec:?}"
                );
            }
        }
    }

    #[test]
    fn cluster_parts_sharing_a_particle_are_one_cluster() {
        let part = |owned, border: &[u32]| ClusterPart {
            owned,
            border: border.to_vec(),
        };
        // a chain 0–1–2 through shared ids, and a lone part
        let parts = [
            part(5, &[10, 11]),
            part(7, &[11, 12]),
            part(4, &[12]),
            part(9, &[99]),
        ];
        assert_eq!(merge_clusters(3, &parts), 16);
        assert_eq!(merge_clusters(20, &parts), 20);
        assert_eq!(merge_clusters(0, &[]), 0);
    }

    #[test]
    fn cluster_fraction_of_a_dense_patch() {
        // a hexagonal patch of touching disks (φ_local ≈ 0.9) in an otherwise empty box
        let bx = PeriodicBox::new(2, 60.0);
        let mut x = Vec::new();
        for a in 0..20 {
            for b in 0..20 {
                x.push(a as f64 + 0.5 * b as f64 - 15.0);
                x.push(b as f64 * 3f64.sqrt() / 2.0 - 8.0);
            }
        }
        // plus 100 scattered particles far apart
        for k in 0..100 {
            x.push(-28.0 + 5.0 * (k % 10) as f64);
            x.push(12.0 + 1.7 * (k / 10) as f64);
        }
        let n = x.len() / 2;
        let phi = local_packing(&x, &bx, n, 1.0, LOCAL_RADIUS);
        let f = largest_cluster_fraction(&x, &bx, &phi, 1.2, DENSE_THRESHOLD);
        // the patch interior counts (edge particles see fewer neighbours)
        assert!(f > 0.5 && f <= 400.0 / n as f64, "{f}");
    }
}
