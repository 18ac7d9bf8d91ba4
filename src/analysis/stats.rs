//! Per-component statistics of a sampled trajectory (rows of a row-major [T × D] array).

/// Mean of every column of a row-major `[rows × dim]` array.
pub fn column_means(data: &[f64], dim: usize) -> Vec<f64> {
    let rows = data.len() / dim;
    let mut m = vec![0.0; dim];
    for row in data.chunks_exact(dim) {
        for (a, v) in m.iter_mut().zip(row) {
            *a += v;
        }
    }
    m.iter_mut().for_each(|a| *a /= rows as f64);
    m
}

/// Population standard deviation (1/T normalisation, as numpy's default) of every column.
pub fn column_stds(data: &[f64], dim: usize) -> Vec<f64> {
    let rows = data.len() / dim;
    let mean = column_means(data, dim);
    let mut s = vec![0.0; dim];
    for row in data.chunks_exact(dim) {
        for k in 0..dim {
            let d = row[k] - mean[k];
            s[k] += d * d;
        }
    }
    s.iter().map(|v| (v / rows as f64).sqrt()).collect()
}

/// Dominant period of a uniformly sampled series (spacing `dt`): the period 1/f of the largest
/// peak of the periodogram |Σ_n (x_n − x̄) e^{−2πi k n / N}|², over k = 1 … N/2. The frequency
/// resolution is 1/(N·dt): with 10 periods sampled the result is within about ±10 %.
/// Returns `None` for a constant series or fewer than 4 samples. O(N²) work (a direct
/// transform with a rotating phasor; N is small in checks).
pub fn dominant_period(series: &[f64], dt: f64) -> Option<f64> {
    let n = series.len();
    if n < 4 {
        return None;
    }
    let mean = series.iter().sum::<f64>() / n as f64;
    let mut best = (0usize, 0.0f64);
    for k in 1..=n / 2 {
        let w = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
        let (sw, cw) = w.sin_cos();
        // phasor e^{i w j}, advanced by rotation and renormalised every 64 samples
        let (mut c, mut s) = (1.0f64, 0.0f64);
        let (mut re, mut im) = (0.0, 0.0);
        for (j, x) in series.iter().enumerate() {
            let v = x - mean;
            re += v * c;
            im += v * s;
            let nc = c * cw - s * sw;
            s = c * sw + s * cw;
            c = nc;
            if j % 64 == 63 {
                let r = (c * c + s * s).sqrt();
                c /= r;
                s /= r;
            }
        }
        let p = re * re + im * im;
        if p > best.1 {
            best = (k, p);
        }
    }
    if best.1 <= 0.0 {
        return None;
    }
    Some(n as f64 * dt / best.0 as f64)
}

/// Least-squares straight line through `(x, y)` points: `(slope, standard error of the slope)`;
/// `None` for fewer than three points or no spread in x.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 3 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let resid: f64 = points
        .iter()
        .map(|p| (p.1 - my - slope * (p.0 - mx)).powi(2))
        .sum();
    Some((slope, (resid / (n - 2.0) / sxx).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_and_period_of_known_series() {
        // x = 2 + 3 sin(2π t / 1.25) sampled over exactly 8 periods
        let dt = 0.01;
        let n = 1000;
        let data: Vec<f64> = (0..n)
            .flat_map(|j| {
                let t = j as f64 * dt;
                [
                    2.0 + 3.0 * (2.0 * std::f64::consts::PI * t / 1.25).sin(),
                    -1.0,
                ]
            })
            .collect();
        let m = column_means(&data, 2);
        let s = column_stds(&data, 2);
        assert!((m[0] - 2.0).abs() < 1e-12 && (m[1] + 1.0).abs() < 1e-12);
        // std of A sin over whole periods is A/√2
        assert!((s[0] - 3.0 / 2f64.sqrt()).abs() < 1e-12, "{}", s[0]);
        assert!(s[1].abs() < 1e-12);
        let col: Vec<f64> = data.chunks(2).map(|r| r[0]).collect();
        let p = dominant_period(&col, dt).unwrap();
        assert!((p - 1.25).abs() < 1e-9, "{p}");
        let flat: Vec<f64> = data.chunks(2).map(|r| r[1]).collect();
        assert!(dominant_period(&flat, dt).is_none());
    }
}
