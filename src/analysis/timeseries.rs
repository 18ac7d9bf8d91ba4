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
    let n = series.len();
    if m == 0 || tau == 0 || n <= (m - 1) * tau + k_max + w + 2 {
        return None;
    }
    let count = n - (m - 1) * tau;
    let point = |i: usize, c: usize| series[i + c * tau];
    // nearest neighbours (brute force over the embedded points, excluding |i − j| ≤ w); only
    // points whose trajectories can be followed for k_max samples take part
    let usable = count - k_max;
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
    let nf = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / nf,
        pts.iter().map(|p| p.1).sum::<f64>() / nf,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(DivergenceEstimate {
        lambda: sxy / sxx,
        curve,
        fit: (k0, k1),
    })
}
