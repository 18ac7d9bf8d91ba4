//! Correlation dimension (Grassberger & Procaccia 1983) of a point set (an attractor sampled
//! along a trajectory, or a delay embedding).
//!
//! The correlation sum C(r) is the fraction of point pairs (i, j), |i − j| > w (Theiler window w:
//! temporally close samples of a flow are excluded), closer than r in the Euclidean norm. The
//! dimension is the least-squares slope of ln C against ln r over the scaling range where
//! C ∈ [`C_LOW`, `C_HIGH`] (documented defaults: 1e-4 … 1e-2, small enough to avoid the
//! attractor's overall size, large enough to hold ≥ ~1e4 pairs for N ≥ 1e4 points).
//!
//! Pairs closer than the largest radius are found with a sort-and-sweep along the coordinate of
//! largest spread: only pairs within r_max in that coordinate are examined, O(N · N r_max / L),
//! far below N² for the small radii of the scaling range. Distances go into logarithmic bins, so
//! all radii come from one pass.
//!
//! The sweep is the long part (seconds for 10⁵ points): it polls a [`Cancel`] token every 8
//! points and returns [`Interrupted`] when it is set.

use crate::control::{Cancel, Interrupted};

/// Lower end of the fitted range of the correlation sum.
pub const C_LOW: f64 = 1e-4;
/// Upper end of the fitted range of the correlation sum.
pub const C_HIGH: f64 = 1e-2;

/// Result of a correlation-dimension estimate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorrelationDimension {
    /// Fitted slope of ln C(r) against ln r.
    pub dimension: f64,
    /// Standard error of the slope from the least-squares fit.
    pub error: f64,
    /// Radii and correlation sums of the log bins (r_k, C(r_k)).
    pub radii: Vec<f64>,
    pub sums: Vec<f64>,
    /// The fitted radius range.
    pub fit_range: (f64, f64),
}

/// Correlation sums at `bins` log-spaced radii over [r_max·10^{−decades}, r_max] for the `n`
/// points of dimension `d` in `x` (row-major), excluding pairs with |i − j| ≤ `theiler`;
/// [`Interrupted`] once `cancel` is set.
pub fn correlation_sums(
    x: &[f64],
    d: usize,
    theiler: usize,
    r_max: f64,
    decades: f64,
    bins: usize,
    cancel: &Cancel,
) -> Result<(Vec<f64>, Vec<f64>), Interrupted> {
    let n = x.len() / d;
    // coordinate of largest spread
    let spread = |c: usize| {
        let (lo, hi) = (0..n).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), i| {
            (lo.min(x[i * d + c]), hi.max(x[i * d + c]))
        });
        hi - lo
    };
    let axis = (0..d)
        .max_by(|a, b| {
            spread(*a)
                .partial_cmp(&spread(*b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or(0);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| {
        x[a * d + axis]
            .partial_cmp(&x[b * d + axis])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let ln_max = r_max.ln();
    let ln_min = ln_max - decades * std::f64::consts::LN_10;
    let width = (ln_max - ln_min) / bins as f64;
    let mut hist = vec![0u64; bins + 1]; // bin 0 collects everything below r_min
    let r2max = r_max * r_max;
    for (a, &i) in order.iter().enumerate() {
        if a.is_multiple_of(8) {
            cancel.check()?;
        }
        let xi = &x[i * d..(i + 1) * d];
        for &j in &order[a + 1..] {
            let xj = &x[j * d..(j + 1) * d];
            if xj[axis] - xi[axis] >= r_max {
                break;
            }
            if i.abs_diff(j) <= theiler {
                continue;
            }
            let r2: f64 = xi.iter().zip(xj).map(|(p, q)| (p - q) * (p - q)).sum();
            if r2 < r2max {
                let lr = 0.5 * r2.max(f64::MIN_POSITIVE).ln();
                let b = if lr < ln_min {
                    0
                } else {
                    (((lr - ln_min) / width) as usize + 1).min(bins)
                };
                hist[b] += 1;
            }
        }
    }
    // pairs counted: all (i, j) with j > i and |i − j| > theiler
    let w = theiler.min(n);
    let total = ((n - w) * (n - w - 1)) as f64 / 2.0;
    let mut cum = 0u64;
    let mut radii = Vec::with_capacity(bins);
    let mut sums = Vec::with_capacity(bins);
    for (b, h) in hist.iter().take(bins).enumerate() {
        cum += h;
        // upper edge of bin b (bin 0 ends at r_min)
        radii.push((ln_min + b as f64 * width).exp());
        sums.push(cum as f64 / total);
    }
    Ok((radii, sums))
}

/// Grassberger–Procaccia correlation dimension of the `n` points (dimension `d`, row-major) with
/// Theiler window `theiler`; `r_max` should exceed the radius where C reaches [`C_HIGH`] (e.g.
/// a quarter of the attractor's extent). `Ok(None)`: too few radii in the scaling range for a
/// fit; [`Interrupted`] once `cancel` is set.
pub fn correlation_dimension(
    x: &[f64],
    d: usize,
    theiler: usize,
    r_max: f64,
    cancel: &Cancel,
) -> Result<Option<CorrelationDimension>, Interrupted> {
    let (radii, sums) = correlation_sums(x, d, theiler, r_max, 4.0, 64, cancel)?;
    let pts: Vec<(f64, f64)> = radii
        .iter()
        .zip(&sums)
        .filter(|(_, c)| **c >= C_LOW && **c <= C_HIGH)
        .map(|(r, c)| (r.ln(), c.ln()))
        .collect();
    if pts.len() < 4 {
        return Ok(None);
    }
    let Some((slope, error)) = super::stats::linear_fit(&pts) else {
        return Ok(None);
    };
    Ok(Some(CorrelationDimension {
        dimension: slope,
        error,
        fit_range: (pts[0].0.exp(), pts[pts.len() - 1].0.exp()),
        radii,
        sums,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points filling a unit square uniformly have dimension 2; on a line, 1.
    #[test]
    fn uniform_square_and_line() {
        let mut s = 88172645463325252u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let sq: Vec<f64> = (0..2 * 20000).map(|_| next()).collect();
        let c = correlation_dimension(&sq, 2, 0, 0.1, &Cancel::new())
            .unwrap()
            .unwrap();
        assert!((c.dimension - 2.0).abs() < 0.05, "square {}", c.dimension);
        let line: Vec<f64> = (0..20000)
            .flat_map(|_| {
                let t = next();
                [t, 0.5 * t]
            })
            .collect();
        let c = correlation_dimension(&line, 2, 0, 0.1, &Cancel::new())
            .unwrap()
            .unwrap();
        assert!((c.dimension - 1.0).abs() < 0.05, "line {}", c.dimension);
    }

    #[test]
    fn a_cancelled_token_stops_the_sweep() {
        let pts: Vec<f64> = (0..2000).map(|k| (k as f64 * 0.37).sin()).collect();
        let cancel = Cancel::new();
        cancel.cancel();
        assert_eq!(
            correlation_dimension(&pts, 2, 0, 0.5, &cancel).unwrap_err(),
            Interrupted
        );
    }
}
