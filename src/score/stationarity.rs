//! The stationary Fokker–Planck equation written with the score, as differentiable tensors: the
//! terms of the paper's penalised losses and of the stationarity diagnostics.
//!
//! For dz = b(z) dt + √(2D) dW with diagonal D and stationary density ρ, the probability flow
//! velocity is v = b − D s (s = ∇ log ρ) and stationarity ∇·(vρ) = 0 reads, divided by ρ,
//!
//!   ∇·v + v·s = 0   pointwise,  with  ∇·v = ∇·b − Σ_k D_k ∂_k s_k,
//!
//! and integrates to the global identities E[∇·v] = 0 and E[v·s] = 0 (each term separately,
//! since E[∇·v] = −E[v·s] by parts).
//!
//! The score is known on the *scored* coordinates only (all noisy ones; the positions too when
//! ε > 0). When the positions are noiseless (ε = 0) v_x = b_x needs no score, the divergence part
//! is unchanged (D_x = 0), and E[v_x·s_x] = −E[∇_x·b_x] by parts: the mean of v·s stays exact with
//! the per-sample term −∇_x·b_x in place of v_x·s_x, but the pointwise residual needs s_x and is
//! not available.

use burn::tensor::{Device, Tensor, TensorData};

/// Host-side drift quantities of a batch of B samples with K scored coordinates each.
#[derive(Debug, Clone, Default)]
pub struct DriftTerms {
    /// b on the scored coordinates, B × K (row-major).
    pub drift: Vec<f32>,
    /// D on the scored coordinates, K.
    pub diffusion: Vec<f32>,
    /// ∇·b of the whole system per sample, B.
    pub div_drift: Vec<f32>,
    /// Per sample, the part of v·s on the unscored coordinates in its integrated-by-parts form
    /// (−∇_x·b_x when the positions are noiseless and unscored; 0 otherwise), B.
    pub unscored_v_dot_s: Vec<f32>,
    /// Whether every coordinate with D > 0 or b·s ≠ 0 is scored (the pointwise residual exists).
    pub pointwise: bool,
}

/// The stationarity terms of a batch, each \[B\].
pub struct Stationarity {
    /// ∇·v = ∇·b − Σ_k D_k ∂_k s_k.
    pub div_v: Tensor<1>,
    /// v·s on the scored coordinates plus the unscored part (see [`DriftTerms`]).
    pub v_dot_s: Tensor<1>,
}

impl Stationarity {
    /// The pointwise Fokker–Planck residual ∇·v + v·s.
    pub fn residual(&self) -> Tensor<1> {
        self.div_v.clone() + self.v_dot_s.clone()
    }
}

/// ∇·v and v·s from the score s [B, K] on the scored coordinates and its D-weighted divergence
/// Σ_k D_k ∂_k s_k \[B\].
pub fn stationarity_terms(
    s: Tensor<2>,
    weighted_div_s: Tensor<1>,
    terms: &DriftTerms,
    device: &Device,
) -> Stationarity {
    let [b, k] = s.dims();
    let t1 = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
    let drift: Tensor<2> = t1(&terms.drift).reshape([b, k]);
    let diff: Tensor<2> = t1(&terms.diffusion).reshape([1, k]);
    let v = drift - s.clone().mul(diff);
    let v_dot_s: Tensor<1> = v.mul(s).sum_dim(1).reshape([b]) + t1(&terms.unscored_v_dot_s);
    let div_v: Tensor<1> = t1(&terms.div_drift) - weighted_div_s;
    Stationarity { div_v, v_dot_s }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linear SDE dz = Az dt + √(2D) dW with its Gaussian stationary density N(0, Σ): the
    /// exact score −Σ⁻¹z makes the residual vanish pointwise (z = (x, g) of the linear trap,
    /// one coordinate: A = [[−a, v0], [0, −γ]], D = diag(ε, γ), Σ in closed form).
    #[test]
    fn the_exact_gaussian_score_is_stationary() {
        let device = crate::score::cpu_device();
        let (a, gm, e, v0) = (0.05, 0.1, 0.1, 0.5);
        let sxx = (e * (a + gm) + v0 * v0) / (a * (a + gm));
        let sxg = v0 / (a + gm);
        let det = sxx - sxg * sxg;
        let (ixx, ixg, igg) = (1.0 / det, -sxg / det, sxx / det);
        // samples (x, g); scored order (g, x)
        let zs = [(1.3, -0.4), (-2.0, 0.7), (0.1, 1.9), (5.0, -1.2)];
        let mut s = Vec::new();
        let mut drift = Vec::new();
        for &(x, g) in &zs {
            s.push((-(ixg * x + igg * g)) as f32);
            s.push((-(ixx * x + ixg * g)) as f32);
            drift.push((-gm * g) as f32);
            drift.push((v0 * g - a * x) as f32);
        }
        let b = zs.len();
        let terms = DriftTerms {
            drift,
            diffusion: vec![gm as f32, e as f32],
            div_drift: vec![(-a - gm) as f32; b],
            unscored_v_dot_s: vec![0.0; b],
            pointwise: true,
        };
        // Σ_k D_k ∂_k s_k = −(γ (Σ⁻¹)_gg + ε (Σ⁻¹)_xx)
        let wdiv = vec![(-(gm * igg + e * ixx)) as f32; b];
        let residual = |scale: f32| {
            let st = stationarity_terms(
                Tensor::<1>::from_data(
                    TensorData::new(s.iter().map(|v| v * scale).collect::<Vec<_>>(), [2 * b]),
                    &device,
                )
                .reshape([b, 2]),
                Tensor::from_data(
                    TensorData::new(wdiv.iter().map(|v| v * scale).collect::<Vec<_>>(), [b]),
                    &device,
                ),
                &terms,
                &device,
            );
            crate::score::tensor_values(st.residual())
        };
        for (k, v) in residual(1.0).iter().enumerate() {
            assert!(v.abs() < 1e-5, "sample {k}: residual {v}");
        }
        // (for a Gaussian ∇·v = tr(A + DΣ⁻¹) = 0 by the Lyapunov equation, so v·s = 0 too);
        // a score 50 % off is not stationary: the test has teeth
        let off = residual(1.5);
        assert!(off.iter().any(|v| v.abs() > 0.1), "{off:?}");
    }
}
