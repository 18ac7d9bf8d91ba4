//! Observables of particle configurations: mean-squared displacement, propulsion/orientation
//! autocorrelation, radial distribution function, local packing fraction and the largest dense
//! cluster (the MIPS order parameter). Neighbour searches use the cell list, so every observable
//! is O(N).

use super::cells::{CellList, PeriodicBox};
use super::model::ball_volume;
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
    let d = bx.dim;
    let r_max = r_max.min(0.5 * bx.length);
    let mut cl = CellList::new(bx, r_max);
    cl.build(x);
    let dr = r_max / bins as f64;
    // per-block integer histograms summed afterwards (rayon): integer counts, so the result does
    // not depend on how the blocks are split or the thread count
    let hist = (0..n)
        .into_par_iter()
        .with_min_len(1024)
        .fold(
            || vec![0u64; bins],
            |mut h, i| {
                cl.for_each_candidate(i, |j| {
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
        );
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
    let d = bx.dim;
    let mut cl = CellList::new(bx, radius);
    cl.build(x);
    let scale = ball_volume(d, 0.5 * diameter) / ball_volume(d, radius);
    (0..n)
        .map(|i| {
            let mut count = 0usize;
            cl.for_each_candidate(i, |j| {
                if distance(x, i, j, d, bx) < radius {
                    count += 1;
                }
            });
            count as f64 * scale
        })
        .collect()
}

/// Histogram of values on `bins` equal bins over [lo, hi) (values outside are clamped to the
/// end bins), normalised to a probability density.
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    let w = (hi - lo) / bins as f64;
    for v in values {
        let b = (((v - lo) / w).floor().max(0.0) as usize).min(bins - 1);
        h[b] += 1.0;
    }
    let total = values.len().max(1) as f64 * w;
    h.iter_mut().for_each(|v| *v /= total);
    h
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
    let d = bx.dim;
    let mut cl = CellList::new(bx, contact);
    cl.build(x);
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn find(p: &mut [u32], mut a: u32) -> u32 {
        while p[a as usize] != a {
            p[a as usize] = p[p[a as usize] as usize];
            a = p[a as usize];
        }
        a
    }
    for i in 0..n {
        if !dense[i] {
            continue;
        }
        let mut links = Vec::new();
        cl.for_each_candidate(i, |j| {
            if j > i && dense[j] && distance(x, i, j, d, bx) < contact {
                links.push(j);
            }
        });
        for j in links {
            let (a, b) = (find(&mut parent, i as u32), find(&mut parent, j as u32));
            if a != b {
                parent[a.max(b) as usize] = a.min(b);
            }
        }
    }
    let mut size = vec![0usize; n];
    for (i, &di) in dense.iter().enumerate() {
        if di {
            let r = find(&mut parent, i as u32);
            size[r as usize] += 1;
        }
    }
    *size.iter().max().unwrap() as f64 / n as f64
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
