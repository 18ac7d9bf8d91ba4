//! Maximal Lyapunov exponent from a scalar time series, for data without equations: the
//! nearest-neighbour divergence method of Rosenstein, Collins & De Luca (Physica D 65, 117, 1993).
//!
//! The series is delay-embedded, Y_i = (s_i, s_{i+τ}, …, s_{i+(m−1)τ}); every point gets its
//! nearest neighbour j outside a temporal window |i − j| > w (w ≈ one mean period), and
//! y(k) = ⟨ln |Y_{i+k} − Y_{j+k}|⟩ is averaged over all pairs. λ_max is the slope of y against
//! k·Δt over the linear stretch, taken here between 30 % and 70 % of the rise of y from y(0) to its
//! plateau (documented default: below 30 % the neighbour vectors are still aligning with the
//! unstable direction and y grows faster; `k_max` must reach the plateau; the curve is returned so
//! the fit can be checked).

/// Result of [`rosenstein`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct DivergenceEstimate {
    /// Estimated maximal exponent (per time unit).
    pub lambda: f64,
    /// Mean log divergence y(k) for k = 0, 1, … (time k·Δt).
    pub curve: Vec<f64>,
    /// Fitted index range [k0, k1].
    pub fit: (usize, usize),
}

/// Embedded points (dimension m, delay τ) of an n-sample series whose futures can be followed
/// for k_max samples; `None` when the series is too short for that and a temporal window w.
fn followable_points(n: usize, m: usize, tau: usize, w: usize, k_max: usize) -> Option<usize> {
    if m == 0 || tau == 0 || n <= (m - 1) * tau + k_max + w + 2 {
        return None;
    }
    Some(n - (m - 1) * tau - k_max)
}

/// Rosenstein estimate of λ_max from `series` sampled every `dt`, embedding dimension `m`, delay
/// `tau` (samples), temporal exclusion `w` (samples), divergence followed for `k_max` samples.
pub fn rosenstein(
    series: &[f64],
    dt: f64,
    m: usize,
    tau: usize,
    w: usize,
    k_max: usize,
) -> Option<DivergenceEstimate> {
    let usable = followable_points(series.len(), m, tau, w, k_max)?;
    let point = |i: usize, c: usize| series[i + c * tau];
    // nearest neighbours (brute force over the embedded points, excluding |i − j| ≤ w); only
    // points whose trajectories can be followed for k_max samples take part
    let mut nn = vec![usize::MAX; usable];
    for (i, slot) in nn.iter_mut().enumerate() {
        let mut best = f64::INFINITY;
        for j in 0..usable {
            if i.abs_diff(j) <= w {
                continue;
            }
            let mut d2 = 0.0;
            for c in 0..m {
                let v = point(i, c) - point(j, c);
                d2 += v * v;
                if d2 >= best {
                    break;
                }
            }
            if d2 < best && d2 > 0.0 {
                best = d2;
                *slot = j;
            }
        }
    }
    let mut curve = vec![0.0; k_max + 1];
    for (k, yk) in curve.iter_mut().enumerate() {
        let (mut sum, mut cnt) = (0.0, 0usize);
        for (i, &j) in nn.iter().enumerate() {
            if j == usize::MAX {
                continue;
            }
            let d2: f64 = (0..m)
                .map(|c| (point(i + k, c) - point(j + k, c)).powi(2))
                .sum();
            if d2 > 0.0 {
                sum += 0.5 * d2.ln();
                cnt += 1;
            }
        }
        *yk = sum / cnt.max(1) as f64;
    }
    let (lambda, fit) = fit_divergence(&curve, dt)?;
    Some(DivergenceEstimate { lambda, curve, fit })
}

/// Slope of a mean log-divergence curve against time over its linear stretch: between 30 % and
/// 70 % of the rise from y(0) to the plateau (shared by [`rosenstein`] and [`kantz`]).
fn fit_divergence(curve: &[f64], dt: f64) -> Option<(f64, (usize, usize))> {
    let (y0, top) = (
        curve[0],
        curve.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    let rise = top - y0;
    let k0 = curve.iter().position(|y| *y >= y0 + 0.3 * rise)?;
    let k1 = curve.iter().position(|y| *y >= y0 + 0.7 * rise)?;
    if k1 <= k0 + 2 {
        return None;
    }
    let pts: Vec<(f64, f64)> = (k0..=k1).map(|k| (k as f64 * dt, curve[k])).collect();
    let (slope, _) = super::stats::linear_fit(&pts)?;
    Some((slope, (k0, k1)))
}

/// Kantz's estimate (Phys. Lett. A 185, 77, 1994): for every embedded point i, all neighbours j
/// within `eps` (|i − j| > w) are followed; S(k) = ⟨ln ⟨|s_{i+k} − s_{j+k}|⟩_j⟩_i with the scalar
/// distance of the series k samples ahead; λ_max is the slope of S over its linear stretch (same
/// window as [`rosenstein`]). Points with no neighbour are skipped.
pub fn kantz(
    series: &[f64],
    dt: f64,
    m: usize,
    tau: usize,
    w: usize,
    eps: f64,
    k_max: usize,
) -> Option<DivergenceEstimate> {
    let usable = followable_points(series.len(), m, tau, w, k_max)?;
    let point = |i: usize, c: usize| series[i + c * tau];
    let last = (m - 1) * tau;
    let eps2 = eps * eps;
    let mut sums = vec![0.0; k_max + 1];
    let mut used = 0usize;
    let mut dist = vec![0.0; k_max + 1];
    for i in 0..usable {
        dist.iter_mut().for_each(|v| *v = 0.0);
        let mut neighbours = 0usize;
        for j in 0..usable {
            if i.abs_diff(j) <= w {
                continue;
            }
            let mut d2 = 0.0;
            for c in 0..m {
                let v = point(i, c) - point(j, c);
                d2 += v * v;
                if d2 > eps2 {
                    break;
                }
            }
            if d2 <= eps2 {
                neighbours += 1;
                for (k, dk) in dist.iter_mut().enumerate() {
                    *dk += (series[i + last + k] - series[j + last + k]).abs();
                }
            }
        }
        if neighbours == 0 || dist.iter().any(|d| *d <= 0.0) {
            continue;
        }
        used += 1;
        for (s, d) in sums.iter_mut().zip(&dist) {
            *s += (d / neighbours as f64).ln();
        }
    }
    if used == 0 {
        return None;
    }
    let curve: Vec<f64> = sums.iter().map(|s| s / used as f64).collect();
    let (lambda, fit) = fit_divergence(&curve, dt)?;
    Some(DivergenceEstimate { lambda, curve, fit })
}

/// Sample entropy SampEn(m, r) of a series (Richman & Moorman 2000): −ln(A/B), with B the number
/// of pairs of length-m templates within tolerance r (maximum norm, self-matches excluded) and A
/// the same for length m + 1, both over the first n − m templates. `r` is in the units of the
/// series (commonly 0.2 × its standard deviation). `None` when no template pairs match.
pub fn sample_entropy(series: &[f64], m: usize, r: f64) -> Option<f64> {
    let n = series.len();
    if n <= m + 1 {
        return None;
    }
    let count = n - m;
    let (mut a, mut b) = (0u64, 0u64);
    for i in 0..count {
        for j in i + 1..count {
            let mut ok = true;
            for k in 0..m {
                if (series[i + k] - series[j + k]).abs() > r {
                    ok = false;
                    break;
                }
            }
            if ok {
                b += 1;
                if (series[i + m] - series[j + m]).abs() <= r {
                    a += 1;
                }
            }
        }
    }
    (a > 0 && b > 0).then(|| -((a as f64) / (b as f64)).ln())
}

/// Multiscale entropy (Costa, Goldberger & Peng 2002): sample entropy of the coarse-grained series
/// y_j^(s) = mean of s consecutive non-overlapping samples, for s = 1 … `scales`, with the
/// tolerance r = `r_factor` × the std of the original series (fixed across scales).
pub fn multiscale_entropy(
    series: &[f64],
    m: usize,
    r_factor: f64,
    scales: usize,
) -> Vec<Option<f64>> {
    let n = series.len() as f64;
    let mean = series.iter().sum::<f64>() / n;
    let sd = (series.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    (1..=scales)
        .map(|s| {
            let coarse: Vec<f64> = series
                .chunks_exact(s)
                .map(|c| c.iter().sum::<f64>() / s as f64)
                .collect();
            sample_entropy(&coarse, m, r_factor * sd)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize) -> Vec<f64> {
        // Gaussian white noise (Box–Muller on a xorshift stream)
        let mut s = 0x2545F4914F6CDD1Du64;
        let mut u = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos())
            .collect()
    }

    /// White noise: SampEn(2, 0.2σ) = −ln P(|x − y| ≤ 0.2σ) = −ln erf(0.1/√2·√2) ≈ 2.18 (templates
    /// are independent); a sine is regular: SampEn near 0; coarse-graining white noise lowers its
    /// entropy (the multiscale signature of uncorrelated noise).
    #[test]
    fn sample_entropy_of_noise_and_sine() {
        let x = noise(3000);
        let se = sample_entropy(&x, 2, 0.2).unwrap();
        // P(|N(0, 2)| ≤ 0.2) = erf(0.1) = 0.11246
        assert!(
            (se - (-(0.112_462_916f64).ln())).abs() < 0.1,
            "white noise SampEn {se}"
        );
        let sine: Vec<f64> = (0..3000).map(|k| (0.05 * k as f64).sin()).collect();
        let se = sample_entropy(&sine, 2, 0.2 * std::f64::consts::FRAC_1_SQRT_2).unwrap();
        assert!(se < 0.2, "sine SampEn {se}");
        let mse = multiscale_entropy(&x, 2, 0.2, 5);
        assert!(mse[4].unwrap() < mse[0].unwrap() - 0.5, "{mse:?}");
    }
}
