//! Ridge regression, the linear read-out every trainable native forecaster shares.

use nalgebra::{DMatrix, DVector};

/// Ridge regression: the `p × d` weights W (row-major) minimising |ΦW − Y|² + λ|W|² for the
/// `n × p` design Φ and the `n × d` targets Y (both row-major), with the relative penalty
/// λ = `alpha` · tr(ΦᵀΦ)/p, so that `alpha` means the same whatever the scale of the features.
/// Solved through the normal equations (ΦᵀΦ + λI) W = ΦᵀY by Cholesky; when that fails
/// (alpha = 0 with collinear features) the penalty is raised by factors of 10 from 1e-12.
/// `None` when the inputs are inconsistent or not finite.
pub fn ridge(phi: &[f64], n: usize, p: usize, y: &[f64], d: usize, alpha: f64) -> Option<Vec<f64>> {
    if n == 0 || p == 0 || phi.len() != n * p || y.len() != n * d {
        return None;
    }
    if phi.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    // Gram matrix (upper triangle accumulated row by row, then mirrored) and ΦᵀY
    let mut g = vec![0.0; p * p];
    let mut b = vec![0.0; p * d];
    for (row, target) in phi.chunks_exact(p).zip(y.chunks_exact(d)) {
        for i in 0..p {
            let ri = row[i];
            if ri == 0.0 {
                continue;
            }
            let gi = &mut g[i * p..(i + 1) * p];
            for j in i..p {
                gi[j] += ri * row[j];
            }
            for (bk, t) in b[i * d..(i + 1) * d].iter_mut().zip(target) {
                *bk += ri * t;
            }
        }
    }
    for i in 0..p {
        for j in 0..i {
            g[i * p + j] = g[j * p + i];
        }
    }
    let trace: f64 = (0..p).map(|i| g[i * p + i]).sum::<f64>() / p as f64;
    let trace = if trace > 0.0 { trace } else { 1.0 };
    let gram = DMatrix::from_row_slice(p, p, &g);
    let mut rel = alpha.max(0.0);
    for _ in 0..16 {
        let mut a = gram.clone();
        for i in 0..p {
            a[(i, i)] += rel * trace;
        }
        if let Some(ch) = a.cholesky() {
            let mut w = vec![0.0; p * d];
            for k in 0..d {
                let rhs = DVector::from_iterator(p, (0..p).map(|i| b[i * d + k]));
                let x = ch.solve(&rhs);
                for i in 0..p {
                    w[i * d + k] = x[i];
                }
            }
            return w.iter().all(|v| v.is_finite()).then_some(w);
        }
        rel = if rel == 0.0 { 1e-12 } else { rel * 10.0 };
    }
    None
}

/// `out = featuresᵀ W` for one feature vector (`p`) and row-major weights (`p × d`).
pub fn apply(features: &[f64], w: &[f64], out: &mut [f64]) {
    let d = out.len();
    out.fill(0.0);
    for (f, wr) in features.iter().zip(w.chunks_exact(d)) {
        if *f == 0.0 {
            continue;
        }
        for (o, wv) in out.iter_mut().zip(wr) {
            *o += f * wv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_exact_linear_map() {
        // y = 2 a − 3 b + 0.5, noise-free: tiny ridge recovers the coefficients
        let mut phi = Vec::new();
        let mut y = Vec::new();
        for k in 0..50 {
            let a = (k as f64 * 0.37).sin();
            let b = (k as f64 * 0.11).cos();
            phi.extend_from_slice(&[a, b, 1.0]);
            y.push(2.0 * a - 3.0 * b + 0.5);
        }
        let w = ridge(&phi, 50, 3, &y, 1, 1e-12).unwrap();
        assert!(
            (w[0] - 2.0).abs() < 1e-8 && (w[1] + 3.0).abs() < 1e-8 && (w[2] - 0.5).abs() < 1e-8
        );
        let mut out = [0.0];
        apply(&[1.0, 1.0, 1.0], &w, &mut out);
        assert!((out[0] + 0.5).abs() < 1e-8);
    }

    #[test]
    fn collinear_features_still_solve() {
        let phi: Vec<f64> = (0..20).flat_map(|k| [k as f64, 2.0 * k as f64]).collect();
        let y: Vec<f64> = (0..20).map(|k| 5.0 * k as f64).collect();
        let w = ridge(&phi, 20, 2, &y, 1, 0.0).unwrap();
        // any solution with w0 + 2 w1 = 5 fits; ridge picks the minimum-norm one (1, 2)
        assert!((w[0] + 2.0 * w[1] - 5.0).abs() < 1e-6);
        assert!(ridge(&[f64::NAN, 1.0], 1, 2, &[1.0], 1, 1e-6).is_none());
    }
}
