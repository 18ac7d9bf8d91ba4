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

use std::path::PathBuf;

/// A setting that takes one of a fixed set of names (`kind = "mlp"`): an enum that reads and
/// writes its snake_case name (so training files and the `config.toml` of model directories are
/// unchanged), and whose parse error names the field and the expected values.
macro_rules! named_setting {
    ($(#[$meta:meta])* $name:ident, $field:literal, { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case", try_from = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order of the documentation.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name in a training file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            /// The value named `s`; the error names the field and the expected values.
            fn from_str(s: &str) -> Result<$name, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        format!(
                            "{} = \"{s}\": expected {}",
                            $field,
                            $crate::score::expected_names($name::ALL.iter().map(|v| v.as_str()))
                        )
                    })
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<$name, String> {
                s.parse()
            }
        }
    };
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
#[doc(hidden)]
pub fn expected_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

pub mod evaluate;
pub mod features;
pub mod flow;
pub mod network;
pub mod optim;
pub mod stationarity;
pub mod train;

/// Errors of score training and evaluation. Each message is complete as shown; a variant that
/// wraps another error either shows that error itself (`Io`) or leaves it to
/// [`std::error::Error::source`] (`File`), so a chain printed with `{:#}` says everything once.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// A training file (or the `config.toml` of a model directory or checkpoint) is invalid:
    /// `message` names the field (TOML syntax errors: with line and column).
    #[error("{}: {message}", .path.display())]
    Config { path: PathBuf, message: String },
    /// Invalid settings not (yet) tied to a file: [`train::TrainConfig::from_toml`],
    /// [`network::NetworkConfig::validate`], or a misuse of [`train::Trainer`].
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing an HDF5 file (training data, scores) failed.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// A file-system operation on a model directory or its checkpoint failed (the operating
    /// system's reason is the [`std::error::Error::source`]).
    #[error("{}: {op}", .path.display())]
    File {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The data cannot serve the requested training or scoring.
    #[error("{0}")]
    Data(String),
    /// A model directory or checkpoint cannot be loaded or saved, or the network does not fit
    /// the data.
    #[error("{0}")]
    Model(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step}: loss = {loss} (lower training.lr?)")]
    Diverged { step: usize, loss: f64 },
}

impl ScoreError {
    /// A file-system error on `path` while doing `op` (`"cannot read"`, `"rename"`, …).
    pub fn file(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> ScoreError {
        ScoreError::File {
            path: path.into(),
            op,
            source,
        }
    }
}

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

/// The burn device named `name`, autodiff enabled (`--device` of `phaseflow train`, `score` and
/// `epr`): `cpu` ([`cpu_device`]), or `cuda` / `wgpu` in builds with that feature.
///
/// `wgpu` is cubecl's default adapter: the first high-power GPU wgpu finds, or the adapter named
/// by `CUBECL_WGPU_DEFAULT_DEVICE` (`Cpu` selects a software Vulkan such as Mesa's lavapipe,
/// `DiscreteGpu(1)` a second card; see `scripts/lavapipe_check.sh`).
pub fn device(name: &str) -> Result<burn::tensor::Device, ScoreError> {
    match name {
        "cpu" => Ok(cpu_device()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(burn::tensor::Device::cuda(0).autodiff()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff()),
        other => Err(ScoreError::Invalid(format!(
            "--device {other}: this build supports `cpu`{}{} (GPU backends need `cargo build --features cuda` or `--features wgpu`)",
            if cfg!(feature = "cuda") { ", `cuda`" } else { "" },
            if cfg!(feature = "wgpu") { ", `wgpu`" } else { "" }
        ))),
    }
}

/// Draws the training and validation losses of a `log.csv` into a PNG.
pub fn plot_loss(
    log: &std::path::Path,
    png: &std::path::Path,
    loss_kind: train::LossKind,
) -> Result<(), ScoreError> {
    use train::LossKind;
    let text = std::fs::read_to_string(log).map_err(|e| ScoreError::file(log, "cannot read", e))?;
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
    let (title, y_label) = match loss_kind {
        LossKind::Ism => (
            "implicit score matching (with the weighted stationarity terms)",
            "~ E|s|^2 + 2 div s",
        ),
        LossKind::ProbabilityFlow => (
            "probability flow (Stratonovich loss) per component",
            "~ E|v - v*|^2 - E|v*|^2",
        ),
        LossKind::Dsm => (
            "denoising score matching: (L - <zeta^2>)/sigma^2 per component",
            "~ E|s|^2 + 2 div s",
        ),
    };
    crate::io::plot::plot_curves(
        png,
        title,
        "step",
        y_label,
        &[("training", train), ("validation (EMA)", valid)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::network::{NetworkKind, Symmetry};
    use super::train::{Divergence, LossKind, Optimizer};

    /// The names the enums read are the ones serde writes (so `model.json` is unchanged).
    fn round_trip<T>(all: &[T])
    where
        T: serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Display
            + PartialEq
            + std::fmt::Debug,
    {
        for v in all {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), v);
        }
    }

    #[test]
    fn settings_serialise_as_their_names() {
        round_trip(NetworkKind::ALL);
        round_trip(Symmetry::ALL);
        round_trip(LossKind::ALL);
        round_trip(Divergence::ALL);
        round_trip(Optimizer::ALL);
        assert_eq!(NetworkKind::LocalTransformer.as_str(), "local_transformer");
        assert_eq!(LossKind::ProbabilityFlow.as_str(), "probability_flow");
    }

    #[test]
    fn an_unknown_name_names_the_field_and_the_values() {
        let e = "cnn".parse::<NetworkKind>().unwrap_err();
        assert_eq!(
            e,
            "network.kind = \"cnn\": expected \"mlp\", \"transformer\" or \"local_transformer\""
        );
        let e = "sgd".parse::<Optimizer>().unwrap_err();
        assert_eq!(
            e,
            "training.optimizer = \"sgd\": expected \"adam\" or \"radam\""
        );
    }
}
