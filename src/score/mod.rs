//! Score networks and their training (burn): the score s = ∇ log ρ of a stationary density learned
//! from samples phaseflow produced, for the probability flow v = b − D s and the entropy
//! production of the analysis layer.
//!
//! - [`network`]: MLP, global transformer and spatially local transformer (burn modules).
//! - [`features`]: host-side inputs of the local transformer (k nearest neighbours).
//! - [`train`]: data sets (particle files, SDE trajectories), denoising and implicit score
//!   matching, the training loop; [`stationarity`]: the Fokker–Planck terms of the penalised
//!   loss; [`flow`]: the model-free probability-flow loss; [`optim`]: RAdam, EMA, schedule.
//! - [`evaluate`]: scores, velocities and divergences of a trained model.

pub mod evaluate;
pub mod features;
pub mod flow;
pub mod network;
pub mod optim;
pub mod stationarity;
pub mod train;

/// The values of a tensor as f64 (row-major).
pub fn tensor_values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// The CPU device with first-order autodiff (burn's `flex` backend).
pub fn cpu_device() -> burn::tensor::Device {
    burn::tensor::Device::flex().autodiff()
}

/// Draws the training and validation losses of a `log.csv` into a PNG.
pub fn plot_loss(
    log: &std::path::Path,
    png: &std::path::Path,
    loss_kind: &str,
) -> Result<(), String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut train = Vec::new();
    let mut valid = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 {
            continue;
        }
        let step: f64 = f[0].parse().unwrap_or(f64::NAN);
        if let Ok(v) = f[2].parse::<f64>() {
            train.push((step, v));
        }
        if let Ok(v) = f[3].parse::<f64>() {
            valid.push((step, v));
        }
    }
    crate::io::plot::plot_curves(
        png,
        match loss_kind {
            "ism" => "implicit score matching (with the weighted stationarity terms)",
            "probability_flow" => "probability flow (Stratonovich loss) per component",
            _ => "denoising score matching: (L - <zeta^2>)/sigma^2 per component",
        },
        "step",
        if loss_kind == "probability_flow" {
            "~ E|v - v*|^2 - E|v*|^2"
        } else {
            "~ E|s|^2 + 2 div s"
        },
        &[("training", train), ("validation (EMA)", valid)],
    )
    .map_err(|e| e.to_string())
}
