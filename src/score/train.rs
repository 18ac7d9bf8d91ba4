//! Training a score network on stationary samples: `phaseflow train CONFIG.toml --data FILE.h5
//! -o MODEL_DIR [--resume]`.
//!
//! The loss is particle-wise denoising score matching, hypoelliptic variant (Boffi &
//! Vanden-Eijnden 2024): every coordinate of a configuration z is perturbed, z̃ = z ± σζ
//! (antithetic pair, ζ ~ N(0, I)), and the network is scored only on the components the dynamics
//! makes noisy — s_g always, s_x when ε > 0:
//!
//!   L = ½ E[ |σ s(z + σζ) + ζ|² + |σ s(z − σζ) − ζ|² ] / (scored components),
//!
//! minimised by the score of ρ smoothed at scale σ (→ ∇ log ρ as σ → 0). `loss.kind = "ism"`
//! is implicit score matching with the paper's stationarity terms (see [`ism_loss`]), and
//! `"probability_flow"` the model-free loss of [`super::flow`].
//!
//! Data: an H5MD particle file (replicas × frames of N particles), or the trajectory file of an
//! SDE flow (a definition with a `[diffusion]` table; ensemble members as replicas, the whole
//! state scored), see [`load_dataset`].
//!
//! Mini-batches are drawn from replicas × frames (× particles for the local transformer) by a
//! generator seeded with (seed, step), so a run resumed from a checkpoint draws the same batches
//! as an uninterrupted one; with the model, the optimiser state and the EMA restored exactly, the
//! parameters continue bit for bit.
//!
//! The loop is [`train`]; [`Trainer`] offers its steps to a caller's own loop. Neither installs a
//! signal handler: the caller's [`Cancel`] token stops a run at its next step (with a checkpoint),
//! and its [`Progress`] reporter shows the steps. Checkpoints (`MODEL_DIR/checkpoint/`) are
//! committed crash-safely, see [`Trainer::save`].

use super::flow::{flow_loss, make_flow_batch};
use super::network::{NetworkConfig, NetworkKind, Output, ScoreNet, Shapes};
use super::optim::{learning_rate, Ema, RAdam};
use super::stationarity::{stationarity_terms, DriftTerms};
use super::ScoreError;
use crate::control::{Cancel, NoProgress, Progress};
use crate::io::h5md::ParticleSamples;
use crate::particles::{Dynamics, ParticleDrift, ParticleModel};
use crate::systems::System;
use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A training file: `[network]`, `[loss]`, `[training]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub network: NetworkConfig,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub training: TrainingConfig,
}

named_setting!(
    /// `loss.kind`: what the network is trained to minimise.
    LossKind, "loss.kind", {
        /// `dsm`: denoising score matching.
        Dsm = "dsm",
        /// `ism`: implicit score matching (with the stationarity terms), see [`ism_loss`].
        Ism = "ism",
        /// `probability_flow`: the model-free loss on snapshot pairs, see [`super::flow`].
        ProbabilityFlow = "probability_flow",
    }
);

named_setting!(
    /// `loss.divergence`: how implicit score matching computes ∇·s.
    Divergence, "loss.divergence", {
        /// `exact`: central differences along every scored coordinate.
        Exact = "exact",
        /// `hutchinson`: along one Rademacher probe.
        Hutchinson = "hutchinson",
    }
);

named_setting!(
    /// `training.optimizer`.
    Optimizer, "training.optimizer", {
        /// `adam`: Adam (ε = 1e-8).
        Adam = "adam",
        /// `radam`: rectified Adam ([`RAdam`]).
        Radam = "radam",
    }
);

/// The `[loss]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// `dsm` (denoising score matching), `ism` (implicit score matching, E[|s|² + 2∇·s],
    /// with the divergence by central finite differences: `exact` along every scored
    /// coordinate — small systems — or `hutchinson` along one Rademacher probe) or
    /// `probability_flow` (the model-free loss on consecutive snapshots, see [`super::flow`]:
    /// the network learns v = b − Ds itself).
    #[serde(default = "default_loss")]
    pub kind: LossKind,
    /// Noise scale σ of denoising score matching (the paper: 0.01).
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// ISM: `exact` or `hutchinson`.
    #[serde(default = "default_divergence")]
    pub divergence: Divergence,
    /// ISM: finite-difference step h of the divergence (coordinates are O(1); f32 network).
    #[serde(default = "default_fd_step")]
    pub fd_step: f64,
    /// ISM, λ1: weight of the score-matching term E[|s|² + 2∇·s] (default 1).
    #[serde(default = "default_one")]
    pub score_matching: f64,
    /// ISM, λ2: weight of the stationary Fokker–Planck residual E[(∇·v + v·s)²], v = b − Ds
    /// (needs the score on every noisy coordinate and the positions': ε > 0).
    #[serde(default)]
    pub fokker_planck: f64,
    /// ISM, λ3: weight of the global constraint (E[∇·v])² (= 0 at stationarity).
    #[serde(default)]
    pub mean_divergence: f64,
    /// ISM, λ4: weight of the global constraint (E[v·s])² (= 0 at stationarity).
    #[serde(default)]
    pub mean_flow_score: f64,
}

fn default_one() -> f64 {
    1.0
}

impl LossConfig {
    /// Whether any stationarity term (λ2, λ3, λ4) is on: the batch then carries the drift.
    pub fn uses_drift(&self) -> bool {
        self.fokker_planck > 0.0 || self.mean_divergence > 0.0 || self.mean_flow_score > 0.0
    }
}

fn default_weight(name: &str) -> f64 {
    if name == "score_matching" {
        1.0
    } else {
        0.0
    }
}

fn default_divergence() -> Divergence {
    Divergence::Exact
}
fn default_fd_step() -> f64 {
    1e-2
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: default_loss(),
            sigma: default_sigma(),
            divergence: default_divergence(),
            fd_step: default_fd_step(),
            score_matching: 1.0,
            fokker_planck: 0.0,
            mean_divergence: 0.0,
            mean_flow_score: 0.0,
        }
    }
}

fn default_loss() -> LossKind {
    LossKind::Dsm
}
fn default_sigma() -> f64 {
    0.01
}

/// The `[training]` table (every field optional; defaults in [`TrainingConfig::default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Optimisation steps.
    pub steps: usize,
    /// Samples per step: configurations (MLP, transformer) or particles (local transformer).
    pub batch: usize,
    /// Peak learning rate, final learning rate, linear warm-up steps (then cosine decay).
    pub lr: f64,
    pub lr_min: f64,
    pub warmup: usize,
    /// `adam` or `radam`.
    pub optimizer: Optimizer,
    /// Gradient clipping by global norm (0: none).
    pub clip: f64,
    /// EMA decay of the parameters (0: no averaging).
    pub ema: f64,
    pub seed: u64,
    /// Checkpoint every this many steps (and at the end, and on Ctrl-C).
    pub checkpoint_every: usize,
    /// Validation loss every this many steps (also logged).
    pub log_every: usize,
    /// Fraction of each replica's frames (the last ones) held out for validation.
    pub validation_fraction: f64,
    /// Frames at the start of each replica skipped (not yet stationary).
    pub skip_frames: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            steps: 2000,
            batch: 256,
            lr: 1e-3,
            lr_min: 1e-5,
            warmup: 100,
            optimizer: Optimizer::Radam,
            clip: 1.0,
            ema: 0.999,
            seed: 0,
            checkpoint_every: 500,
            log_every: 100,
            validation_fraction: 0.1,
            skip_frames: 0,
        }
    }
}

impl TrainConfig {
    /// Reads and checks a training file (errors name the file and the field).
    pub fn load(path: &Path) -> Result<TrainConfig, ScoreError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ScoreError::file(path, "cannot read", e))?;
        Self::from_toml(&text).map_err(|e| match e {
            ScoreError::Invalid(message) => ScoreError::Config {
                path: path.to_path_buf(),
                message,
            },
            e => e,
        })
    }

    /// Parses and checks a training file's text (errors: [`ScoreError::Invalid`]).
    pub fn from_toml(text: &str) -> Result<TrainConfig, ScoreError> {
        let invalid = |m: String| Err(ScoreError::Invalid(m));
        let cfg: TrainConfig =
            toml::from_str(text).map_err(|e| ScoreError::Invalid(e.to_string()))?;
        cfg.network.validate()?;
        let t = &cfg.training;
        let (kind, net) = (cfg.loss.kind, cfg.network.kind);
        if cfg.network.output == Output::Velocity {
            if cfg.network.equilibrium_shift {
                return invalid("network.output = \"velocity\" already measures the heads from the equilibrium score (s = D⁻¹(b̂ − u)): leave network.equilibrium_shift out".into());
            }
            if kind != LossKind::Dsm {
                return invalid(format!("network.output = \"velocity\" is trained with loss.kind = \"dsm\" (loss.kind = \"{kind}\": {})", if kind == LossKind::ProbabilityFlow { "that loss learns the velocity itself, with no score to parametrise" } else { "implicit score matching takes the score heads as they are" }));
            }
        }
        if kind == LossKind::ProbabilityFlow && cfg.network.equilibrium_shift {
            return invalid("network.equilibrium_shift shifts a score; loss.kind = \"probability_flow\" learns the velocity v itself (v = 0 at detailed balance needs no shift)".into());
        }
        if kind == LossKind::Ism {
            if cfg.loss.fd_step.is_nan() || cfg.loss.fd_step <= 0.0 {
                return invalid(format!(
                    "loss.fd_step = {} must be positive",
                    cfg.loss.fd_step
                ));
            }
            if cfg.network.equilibrium_shift && net == NetworkKind::LocalTransformer {
                return invalid(
                    "network.equilibrium_shift with loss.kind = \"ism\" needs a whole-configuration network (mlp or transformer)"
                        .into(),
                );
            }
        }
        let l = &cfg.loss;
        for (name, w) in [
            ("score_matching", l.score_matching),
            ("fokker_planck", l.fokker_planck),
            ("mean_divergence", l.mean_divergence),
            ("mean_flow_score", l.mean_flow_score),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return invalid(format!("loss.{name} = {w} must be a non-negative number"));
            }
            if w != default_weight(name) && kind != LossKind::Ism {
                return invalid(format!(
                    "loss.{name} applies to loss.kind = \"ism\" (the stationarity terms need ∇·s)"
                ));
            }
        }
        if l.uses_drift() && net == NetworkKind::LocalTransformer {
            return invalid("loss.fokker_planck, loss.mean_divergence and loss.mean_flow_score need a whole-configuration network (mlp or transformer): the local transformer is trained particle by particle and the residual couples all particles".into());
        }
        if cfg.loss.sigma.is_nan() || cfg.loss.sigma <= 0.0 {
            return invalid(format!("loss.sigma = {} must be positive", cfg.loss.sigma));
        }
        if t.steps == 0 || t.batch == 0 {
            return invalid("training.steps and training.batch must be positive".into());
        }
        if !(t.lr > 0.0 && t.lr_min >= 0.0) {
            return invalid("training.lr must be positive and training.lr_min non-negative".into());
        }
        if !(0.0..1.0).contains(&t.ema) {
            return invalid(format!("training.ema = {} must be in [0, 1)", t.ema));
        }
        if !(0.0..1.0).contains(&t.validation_fraction) {
            return invalid("training.validation_fraction must be in [0, 1)".into());
        }
        if t.checkpoint_every == 0 || t.log_every == 0 {
            return invalid(
                "training.checkpoint_every and training.log_every must be positive".into(),
            );
        }
        Ok(cfg)
    }
}

/// Stationary samples prepared for training: per configuration the positions (unwrapped when
/// the model has a trap, else wrapped) and the self-propulsion, with the particle model.
pub struct Dataset {
    /// What generated the samples: a particle model, or an SDE flow (one "particle" whose
    /// propulsion slot holds the whole state: N = 1, d = 0, c = D).
    pub system: SampleSystem,
    pub n: usize,
    pub dim: usize,
    pub c: usize,
    /// Configurations, each N·d positions and N·c propulsions.
    pub x: Vec<Vec<f64>>,
    pub g: Vec<Vec<f64>>,
    /// Indices of the training and validation configurations.
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
    /// Consecutive frames of one replica (z, z′), both in the training or both in the
    /// validation part, and their spacing Δt (for the probability-flow loss; 0 with one frame).
    pub pairs_train: Vec<(usize, usize)>,
    pub pairs_valid: Vec<(usize, usize)>,
    pub pair_dt: f64,
    /// Noise intensities (ε for x, γ for g) and whether s_x is learned (ε > 0).
    pub eps: f64,
    pub gamma: f64,
    pub learn_x: bool,
}

/// Rebuilds the particle model of a sample file from the definition text and the effective
/// parameters stored in `/parameters` (only the names the definition's `[parameters]` table
/// declares, and `dt`, are applied as overrides).
pub fn model_of_samples(s: &ParticleSamples) -> Result<ParticleModel, ScoreError> {
    if s.definition.is_empty() {
        return Err(ScoreError::Data(
            "the data file carries no model definition in /parameters".into(),
        ));
    }
    model_at_parameters(
        &s.definition,
        Path::new(&s.definition_path),
        &s.parameters,
        &[],
    )
}

/// A particle model from a definition text at the parameters of a data file (only the names the
/// definition's `[parameters]` table declares, and `dt`), then `extra` overrides (checked):
/// [`ParticleModel::at_parameters`] with a [`ScoreError`].
pub fn model_at_parameters(
    definition: &str,
    path: &Path,
    parameters: &std::collections::BTreeMap<String, f64>,
    extra: &[(String, f64)],
) -> Result<ParticleModel, ScoreError> {
    ParticleModel::at_parameters(definition, path, parameters, extra)
        .map_err(|e| ScoreError::Data(e.to_string()))
}

/// Training / validation split of the configurations of one replica (the first `skip` frames
/// skipped, the last `n_valid` of the rest held out) and the consecutive-frame pairs within each
/// part.
struct Split {
    frames: usize,
    skip: usize,
    n_valid: usize,
    train: Vec<usize>,
    valid: Vec<usize>,
    pairs_train: Vec<(usize, usize)>,
    pairs_valid: Vec<(usize, usize)>,
}

/// Training and validation configurations and their consecutive-frame pairs.
type SplitParts = (
    Vec<usize>,
    Vec<usize>,
    Vec<(usize, usize)>,
    Vec<(usize, usize)>,
);

impl Split {
    /// The split of replicas with `frames` frames under the training settings `t`.
    fn new(frames: usize, t: &TrainingConfig) -> Split {
        let usable = frames.saturating_sub(t.skip_frames);
        Split {
            frames,
            skip: t.skip_frames,
            n_valid: ((usable as f64) * t.validation_fraction).round() as usize,
            train: Vec::new(),
            valid: Vec::new(),
            pairs_train: Vec::new(),
            pairs_valid: Vec::new(),
        }
    }

    /// The parts (train, valid, training pairs, validation pairs), or an error when nothing is left
    /// for training (`count` `unit`s, e.g. 16 replicas, of `frames` frames each, in the message).
    fn finish(self, unit: &str, count: usize) -> Result<SplitParts, ScoreError> {
        if self.train.is_empty() {
            return Err(ScoreError::Data(format!(
                "no training configurations: {count} {unit} × {} frames, {} skipped, {} for validation",
                self.frames, self.skip, self.n_valid
            )));
        }
        Ok((self.train, self.valid, self.pairs_train, self.pairs_valid))
    }

    /// Configuration `k` is frame `f`; it pairs with configuration k − 1 when that is the
    /// previous frame of the same part.
    fn assign(&mut self, k: usize, f: usize) {
        let held_out = self.frames - self.n_valid;
        let in_valid = f >= held_out;
        if in_valid {
            self.valid.push(k);
        } else {
            self.train.push(k);
        }
        if f > self.skip && in_valid == (f > held_out) {
            if in_valid {
                self.pairs_valid.push((k - 1, k));
            } else {
                self.pairs_train.push((k - 1, k));
            }
        }
    }
}

/// The system behind a data set.
pub enum SampleSystem {
    Particles(ParticleModel),
    /// An SDE flow dz = b dt + √(2D) dW (a definition file with a `[diffusion]` table).
    Sde(SdeSystem),
}

/// An SDE flow with its diagonal diffusion.
pub struct SdeSystem {
    pub system: crate::systems::CompiledSystem,
    pub diffusion: Vec<f64>,
}

impl SampleSystem {
    /// The particle model, if the samples are particles.
    pub fn particles(&self) -> Option<&ParticleModel> {
        match self {
            SampleSystem::Particles(m) => Some(m),
            SampleSystem::Sde(_) => None,
        }
    }

    pub fn name(&self) -> String {
        match self {
            SampleSystem::Particles(m) => m.name.clone(),
            SampleSystem::Sde(s) => s.system.name().to_string(),
        }
    }

    /// Drift b(z) of a state z = (x, g) (for an SDE: the state itself).
    pub fn drift(&self, z: &[f64], out: &mut [f64]) {
        match self {
            SampleSystem::Particles(m) => ParticleDrift::new(m.clone()).rhs(0.0, z, out),
            SampleSystem::Sde(s) => s.system.rhs(0.0, z, out),
        }
    }

    /// ∇·b(z).
    pub fn divergence(&self, z: &[f64]) -> f64 {
        match self {
            SampleSystem::Particles(m) => ParticleDrift::new(m.clone()).divergence(z),
            SampleSystem::Sde(s) => sde_divergence(&s.system, z),
        }
    }

    /// Diagonal of D in z order.
    pub fn diffusion(&self) -> Vec<f64> {
        match self {
            SampleSystem::Particles(m) => ParticleDrift::new(m.clone()).diffusion(),
            SampleSystem::Sde(s) => s.diffusion.clone(),
        }
    }

    /// Minimum image of a position difference (identity without a periodic box).
    pub fn min_image(&self, delta: f64) -> f64 {
        match self {
            SampleSystem::Particles(m) => m.bx.min_image(delta),
            SampleSystem::Sde(_) => delta,
        }
    }
}

/// ∇·b of an SDE flow: the trace of its compiled Jacobian.
pub fn sde_divergence(system: &crate::systems::CompiledSystem, z: &[f64]) -> f64 {
    let n = system.dim();
    let mut jac = vec![0.0; n * n];
    crate::systems::Jacobian::jacobian(system, 0.0, z, &mut jac);
    (0..n).map(|k| jac[k * n + k]).sum()
}

/// The SDE flow of a trajectory file (`phaseflow simulate` of a file with a `[diffusion]`
/// table): its stored definition compiled at the stored parameter values.
pub fn sde_of_trajectory(traj: &crate::io::Trajectory) -> Result<SdeSystem, ScoreError> {
    use crate::io::AttrValue;
    let text = traj
        .attr_str("definition")
        .ok_or_else(|| ScoreError::Data("the trajectory file carries no definition".into()))?;
    let path = traj.attr_str("definition_path").unwrap_or("<data>");
    let spec = crate::systems::SystemSpec::from_str_at(text, Path::new(path))
        .map_err(|e| ScoreError::Data(e.to_string()))?;
    let names = match traj.attrs.get("parameter_names") {
        Some(AttrValue::Strs(v)) => v.clone(),
        _ => Vec::new(),
    };
    let values = match traj.attrs.get("parameter_values") {
        Some(AttrValue::F64s(v)) => v.clone(),
        _ => Vec::new(),
    };
    let ov = crate::systems::Overrides {
        values: names.into_iter().zip(values).collect(),
    };
    let system = crate::systems::CompiledSystem::new(spec, &ov)
        .map_err(|e| ScoreError::Data(e.to_string()))?;
    let diffusion = system.diffusion().ok_or_else(|| {
        ScoreError::Data(format!(
            "{}: the data comes from a system without a [diffusion] table (not an SDE): nothing to learn a stationary score of",
            system.name()
        ))
    })?;
    if let Some(k) = diffusion.iter().position(|v| v.is_nan() || *v <= 0.0) {
        return Err(ScoreError::Data(format!(
            "{}: score training on an SDE needs noise on every variable; {} has diffusion {}",
            system.name(),
            system.model().components[k],
            diffusion[k]
        )));
    }
    Ok(SdeSystem { system, diffusion })
}

/// The spacing of equally spaced times (0 with fewer than two; NaN when not equally spaced).
fn frame_spacing(time: &[f64]) -> f64 {
    if time.len() < 2 {
        return 0.0;
    }
    let dt = time[1] - time[0];
    let uniform = time
        .windows(2)
        .all(|w| ((w[1] - w[0]) - dt).abs() <= 1e-9 * dt.abs().max(1.0));
    if uniform {
        dt
    } else {
        f64::NAN
    }
}

impl Dataset {
    /// Splits the samples into training and validation configurations.
    pub fn new(s: &ParticleSamples, t: &TrainingConfig) -> Result<Dataset, ScoreError> {
        let model = model_of_samples(s)?;
        let (eps, gamma) = match model.dynamics {
            Dynamics::Aoup { eps, gamma, .. } => (eps, gamma),
            Dynamics::Abp { .. } => {
                return Err(ScoreError::Data(
                    "score training supports AOUP models (self-propulsion g); these samples hold active Brownian particles (orientations), which it does not support yet"
                        .into(),
                ))
            }
        };
        let trap = matches!(model.dynamics, Dynamics::Aoup { trap, .. } if trap > 0.0);
        let (n, d, c) = (s.n, s.dim, s.propulsion);
        let len = s.edges.first().copied().unwrap_or(model.bx.length);
        let mut x = Vec::new();
        let mut g = Vec::new();
        let mut split = Split::new(s.frames, t);
        for r in 0..s.replicas {
            for f in t.skip_frames..s.frames {
                let o = s.frame_offset(r, f);
                let mut xs = s.x[o * d..(o + n) * d].to_vec();
                if trap {
                    for (v, im) in xs.iter_mut().zip(&s.image[o * d..(o + n) * d]) {
                        *v += *im as f64 * len;
                    }
                }
                let k = x.len();
                x.push(xs);
                g.push(s.g[o * c..(o + n) * c].to_vec());
                split.assign(k, f);
            }
        }
        let (train, valid, pairs_train, pairs_valid) = split.finish("replicas", s.replicas)?;
        Ok(Dataset {
            system: SampleSystem::Particles(model),
            n,
            dim: d,
            c,
            x,
            g,
            train,
            valid,
            pairs_train,
            pairs_valid,
            pair_dt: frame_spacing(&s.time[t.skip_frames.min(s.time.len())..]),
            eps,
            gamma,
            learn_x: eps > 0.0,
        })
    }

    /// The frames of an SDE trajectory as configurations of one "particle" whose propulsion slot
    /// holds the whole state (N = 1, d = 0, c = D; every coordinate scored).
    pub fn from_trajectory(
        traj: &crate::io::Trajectory,
        sde: SdeSystem,
        t: &TrainingConfig,
    ) -> Result<Dataset, ScoreError> {
        let (dim, frames, members) = (traj.dim, traj.len(), traj.members);
        let (mut x, mut g) = (Vec::new(), Vec::new());
        let mut split = Split::new(frames, t);
        for m in 0..members {
            for f in t.skip_frames..frames {
                let k = x.len();
                x.push(Vec::new());
                g.push(traj.state[(m * frames + f) * dim..(m * frames + f + 1) * dim].to_vec());
                split.assign(k, f);
            }
        }
        let (train, valid, pairs_train, pairs_valid) = split.finish("members", members)?;
        Ok(Dataset {
            system: SampleSystem::Sde(sde),
            n: 1,
            dim: 0,
            c: dim,
            x,
            g,
            train,
            valid,
            pairs_train,
            pairs_valid,
            pair_dt: frame_spacing(&traj.time[t.skip_frames.min(traj.time.len())..]),
            eps: 0.0,
            gamma: 0.0,
            learn_x: false,
        })
    }

    /// The network shapes for this data.
    pub fn shapes(&self, net: &NetworkConfig) -> Shapes {
        let rms = |v: &Vec<Vec<f64>>| {
            let (sum, cnt) = self.train.iter().fold((0.0, 0usize), |(s, c), &k| {
                (s + v[k].iter().map(|a| a * a).sum::<f64>(), c + v[k].len())
            });
            let r = (sum / cnt.max(1) as f64).sqrt();
            if r > 0.0 && r.is_finite() {
                r
            } else {
                1.0
            }
        };
        let local = net.kind == NetworkKind::LocalTransformer;
        Shapes {
            scale_x: if local { 1.0 } else { rms(&self.x) },
            scale_g: rms(&self.g),
            n: self.n,
            dim: self.dim,
            propulsion: self.c,
            learn_x: self.learn_x,
            velocity: false,
        }
    }
}

/// One mini-batch on the host, with its noise.
pub struct Batch {
    /// Rows scored (particles): B·N (MLP, transformer) or B (local transformer).
    pub rows: usize,
    /// Network inputs for the + and − perturbations.
    pub inputs: [Inputs; 2],
    /// Noise of the scored components, rows × d and rows × c.
    pub zeta_x: Vec<f32>,
    pub zeta_g: Vec<f32>,
    /// Equilibrium shift for ±: rows × d (b_x/ε) and rows × c (−g̃), when enabled.
    pub shift: Option<[(Vec<f32>, Vec<f32>); 2]>,
    /// `network.output = "velocity"`: the factors (−1/ε, −1/γ) that turn the heads u into the
    /// score's departure from the shift, s = shift − D⁻¹u.
    pub velocity_scale: Option<(f64, f64)>,
}

/// Host-side network inputs.
pub enum Inputs {
    /// z [B, N(d+c)].
    Flat { b: usize, z: Vec<f32> },
    /// x [B, N, d], g [B, N, c].
    Particles { b: usize, x: Vec<f32>, g: Vec<f32> },
    /// rel [P, k+1, d], gn [P, k+1, c].
    Local {
        p: usize,
        rel: Vec<f32>,
        gn: Vec<f32>,
    },
}

impl Inputs {
    /// Inputs of `b` whole configurations, positions `xs` (b·N·d) and propulsions `gs` (b·N·c):
    /// flat states for the MLP, particle tokens for the global transformer.
    pub fn configurations(
        kind: NetworkKind,
        b: usize,
        n: usize,
        d: usize,
        c: usize,
        xs: Vec<f32>,
        gs: Vec<f32>,
    ) -> Inputs {
        if kind == NetworkKind::Mlp {
            let mut z = Vec::with_capacity(b * n * (d + c));
            for k in 0..b {
                z.extend_from_slice(&xs[k * n * d..(k + 1) * n * d]);
                z.extend_from_slice(&gs[k * n * c..(k + 1) * n * c]);
            }
            Inputs::Flat { b, z }
        } else {
            Inputs::Particles { b, x: xs, g: gs }
        }
    }
}

/// Draws a batch of `size` samples from the configurations `pool` (seeded generator `rng`).
pub fn make_batch(
    ds: &Dataset,
    net: &NetworkConfig,
    sigma: f64,
    pool: &[usize],
    size: usize,
    rng: &mut impl Rng,
) -> Batch {
    let (n, d, c) = (ds.n, ds.dim, ds.c);
    let shift_on = net.equilibrium_shift || net.output == Output::Velocity;
    let velocity_scale = (net.output == Output::Velocity).then(|| {
        let inv = |v: f64| if v > 0.0 { -1.0 / v } else { 0.0 };
        (inv(ds.eps), inv(ds.gamma))
    });
    let mut zeta_x = Vec::new();
    let mut zeta_g = Vec::new();
    let normal = |rng: &mut dyn rand::RngCore| -> f64 { rng.sample(StandardNormal) };
    if net.kind == NetworkKind::LocalTransformer {
        let k = net.neighbours;
        let model = ds.system.particles().expect("particle data");
        let bx = model.bx;
        // b̂_x of the velocity output: v0 g_i + Σ_tokens F (see NetworkConfig::output)
        let token_drift = (net.output == Output::Velocity && ds.learn_x).then(|| {
            let Dynamics::Aoup { v0, .. } = model.dynamics else {
                unreachable!("checked by Trainer::new")
            };
            (
                v0,
                model.pair,
                model.pair.map_or(0.0, |p| p.cutoff().powi(2)),
            )
        });
        let mut rel = [Vec::new(), Vec::new()];
        let mut gn = [Vec::new(), Vec::new()];
        let mut shifts = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
        for _ in 0..size {
            let conf = pool[rng.random_range(0..pool.len())];
            let i = rng.random_range(0..n);
            let (x, g) = (&ds.x[conf], &ds.g[conf]);
            let mut xw = x.clone();
            for v in xw.iter_mut() {
                bx.wrap(v);
            }
            let grid = super::features::KnnGrid::new(&xw, &bx, 4.0);
            // candidates: the k + PERTURBED_CANDIDATES nearest of the clean configuration, each
            // with its noise (slot 0: the particle itself); the tokens are the k nearest of the
            // perturbed configuration, in its canonical order
            let cand: Vec<usize> = std::iter::once(i)
                .chain(grid.nearest(&xw, &bx, i, k + super::features::PERTURBED_CANDIDATES))
                .collect();
            let zx: Vec<f64> = (0..cand.len() * d).map(|_| normal(rng)).collect();
            let zg: Vec<f64> = (0..cand.len() * c).map(|_| normal(rng)).collect();
            for (sgn, side) in [(1.0, 0usize), (-1.0, 1usize)] {
                let xi: Vec<f64> = (0..d)
                    .map(|a| xw[i * d + a] + sgn * sigma * zx[a])
                    .collect();
                let perturbed = |m: usize| -> [f64; 3] {
                    let mut r = [0.0f64; 3];
                    for a in 0..d {
                        let xj = xw[cand[m] * d + a] + sgn * sigma * zx[m * d + a];
                        r[a] = bx.min_image_wrapped(xi[a] - xj);
                    }
                    r
                };
                let mut order: Vec<(f64, [f64; 3], usize)> = (1..cand.len())
                    .map(|m| {
                        let r = perturbed(m);
                        (r[..d].iter().map(|v| v * v).sum(), r, m)
                    })
                    .collect();
                order.sort_by(|a, b| {
                    super::features::token_order((a.0, &a.1[..d]), (b.0, &b.1[..d]))
                });
                let mut force = [0.0f64; 3];
                for t in 0..=k {
                    // slot of token t (missing neighbours repeat the particle itself)
                    let (slot, r) = match t.checked_sub(1).and_then(|m| order.get(m)) {
                        Some(&(_, r, m)) => (m, r),
                        None => (0, [0.0; 3]),
                    };
                    let j = cand[slot];
                    for &v in &r[..d] {
                        rel[side].push(v as f32);
                    }
                    for a in 0..c {
                        gn[side].push((g[j * c + a] + sgn * sigma * zg[slot * c + a]) as f32);
                    }
                    if let Some((_, Some(pair), rc2)) = token_drift {
                        let r2: f64 = r[..d].iter().map(|v| v * v).sum();
                        if r2 > 0.0 && r2 < rc2 {
                            let f = pair.magnitude_over_r(r2);
                            for a in 0..d {
                                force[a] += f * r[a];
                            }
                        }
                    }
                }
                if shift_on {
                    match token_drift {
                        // s_x shift b̂_x/ε, b̂_x = v0 g̃_i + Σ_tokens F
                        Some((v0, _, _)) => shifts[side].0.extend((0..d).map(|a| {
                            ((v0 * (g[i * c + a] + sgn * sigma * zg[a]) + force[a]) / ds.eps) as f32
                        })),
                        None => shifts[side]
                            .0
                            .extend(std::iter::repeat_n(0.0f32, if ds.learn_x { d } else { 0 })),
                    }
                    shifts[side]
                        .1
                        .extend((0..c).map(|a| -(g[i * c + a] + sgn * sigma * zg[a]) as f32));
                }
            }
            if ds.learn_x {
                zeta_x.extend(zx[..d].iter().map(|&v| v as f32));
            }
            zeta_g.extend(zg[..c].iter().map(|&v| v as f32));
        }
        let [r0, r1] = rel;
        let [g0, g1] = gn;
        return Batch {
            rows: size,
            inputs: [
                Inputs::Local {
                    p: size,
                    rel: r0,
                    gn: g0,
                },
                Inputs::Local {
                    p: size,
                    rel: r1,
                    gn: g1,
                },
            ],
            zeta_x,
            zeta_g,
            shift: shift_on.then_some(shifts),
            velocity_scale,
        };
    }
    let drift =
        shift_on.then(|| ParticleDrift::new(ds.system.particles().expect("particle data").clone()));
    let mut xs = [Vec::new(), Vec::new()];
    let mut gs = [Vec::new(), Vec::new()];
    let mut shifts = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for _ in 0..size {
        let conf = pool[rng.random_range(0..pool.len())];
        let (x, g) = (&ds.x[conf], &ds.g[conf]);
        let zx: Vec<f64> = (0..n * d).map(|_| normal(rng)).collect();
        let zg: Vec<f64> = (0..n * c).map(|_| normal(rng)).collect();
        for (sgn, side) in [(1.0, 0usize), (-1.0, 1usize)] {
            let xn: Vec<f64> = x
                .iter()
                .zip(&zx)
                .map(|(v, z)| v + sgn * sigma * z)
                .collect();
            let gn: Vec<f64> = g
                .iter()
                .zip(&zg)
                .map(|(v, z)| v + sgn * sigma * z)
                .collect();
            if let Some(drift) = &drift {
                let mut z = xn.clone();
                z.extend_from_slice(&gn);
                let mut b = vec![0.0; z.len()];
                drift.rhs(0.0, &z, &mut b);
                let inv_eps = if ds.eps > 0.0 { 1.0 / ds.eps } else { 0.0 };
                shifts[side]
                    .0
                    .extend(b[..n * d].iter().map(|v| (v * inv_eps) as f32));
                shifts[side].1.extend(gn.iter().map(|v| -v as f32));
            }
            xs[side].extend(xn.iter().map(|&v| v as f32));
            gs[side].extend(gn.iter().map(|&v| v as f32));
        }
        zeta_x.extend(zx.iter().map(|&v| v as f32));
        zeta_g.extend(zg.iter().map(|&v| v as f32));
    }
    let [x0, x1] = xs;
    let [g0, g1] = gs;
    Batch {
        rows: size * n,
        inputs: [
            Inputs::configurations(net.kind, size, n, d, c, x0, g0),
            Inputs::configurations(net.kind, size, n, d, c, x1, g1),
        ],
        zeta_x,
        zeta_g,
        shift: shift_on.then_some(shifts),
        velocity_scale,
    }
}

fn tensor<const D: usize>(v: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

/// The network on host inputs: (s_x [rows, d] — `None` for a local transformer that does not
/// learn it (ε = 0) —, s_g [rows, c]).
pub fn forward(
    net: &ScoreNet,
    inputs: &Inputs,
    shapes: Shapes,
    device: &Device,
) -> (Option<Tensor<2>>, Tensor<2>) {
    let (n, d, c) = (shapes.n, shapes.dim, shapes.propulsion);
    let (kx, kg) = (shapes.scale_x, shapes.scale_g);
    let (sx, sg) = match (net, inputs) {
        (ScoreNet::Mlp(m), Inputs::Flat { b, z }) if n * d == 0 => {
            // no positions (an SDE state): the whole input is the propulsion slot
            let z = tensor(z, [*b, n * c], device).div_scalar(kg);
            (None, m.forward(z).reshape([b * n, c]))
        }
        (ScoreNet::Mlp(m), Inputs::Flat { b, z }) => {
            let z = tensor(z, [*b, n * (d + c)], device);
            let zx = z.clone().narrow(1, 0, n * d).div_scalar(kx);
            let zg = z.narrow(1, n * d, n * c).div_scalar(kg);
            let s = m.forward(Tensor::cat(vec![zx, zg], 1));
            let sx = s.clone().narrow(1, 0, n * d).reshape([b * n, d]);
            let sg = s.narrow(1, n * d, n * c).reshape([b * n, c]);
            (Some(sx), sg)
        }
        (ScoreNet::Transformer(m), Inputs::Particles { b, x, g }) => {
            let (sx, sg) = m.forward(
                tensor(x, [*b, n, d], device).div_scalar(kx),
                tensor(g, [*b, n, c], device).div_scalar(kg),
            );
            (Some(sx.reshape([b * n, d])), sg.reshape([b * n, c]))
        }
        (ScoreNet::Local(m), Inputs::Local { p, rel, gn }) => {
            let k1 = rel.len() / (p * d);
            m.forward(
                tensor(rel, [*p, k1, d], device).div_scalar(kx),
                tensor(gn, [*p, k1, c], device).div_scalar(kg),
            )
        }
        _ => panic!("network and inputs of different kinds"),
    };
    if shapes.velocity {
        return (sx, sg);
    }
    (sx.map(|v| v.div_scalar(kx)), sg.div_scalar(kg))
}

/// The network on the + and the − side of an antithetic pair. Token sets (the local
/// transformer) go through one forward pass over both sides' 2P particles — half the kernel
/// calls, each on twice the rows — and the outputs are split; other inputs, one pass per side.
/// Measured on the paper-size network (2 steps, 2 cores, load 6, A/B twice): 1–4 % less wall
/// time, and the same loss to the last bit.
fn both_sides(
    net: &ScoreNet,
    inputs: &[Inputs; 2],
    shapes: Shapes,
    device: &Device,
) -> [(Option<Tensor<2>>, Tensor<2>); 2] {
    if let [Inputs::Local {
        p: p0,
        rel: r0,
        gn: g0,
    }, Inputs::Local {
        p: p1,
        rel: r1,
        gn: g1,
    }] = inputs
    {
        let both = Inputs::Local {
            p: p0 + p1,
            rel: [r0.as_slice(), r1].concat(),
            gn: [g0.as_slice(), g1].concat(),
        };
        let (sx, sg) = forward(net, &both, shapes, device);
        let split = |t: Tensor<2>| (t.clone().narrow(0, 0, *p0), t.narrow(0, *p0, *p1));
        let (g_plus, g_minus) = split(sg);
        let (x_plus, x_minus) = match sx.map(split) {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        return [(x_plus, g_plus), (x_minus, g_minus)];
    }
    [
        forward(net, &inputs[0], shapes, device),
        forward(net, &inputs[1], shapes, device),
    ]
}

/// The denoising loss of a batch (a scalar tensor, differentiable in the parameters).
pub fn dsm_loss(
    net: &ScoreNet,
    batch: &Batch,
    shapes: Shapes,
    sigma: f64,
    learn_x: bool,
    device: &Device,
) -> Tensor<1> {
    let (d, c) = (shapes.dim, shapes.propulsion);
    let r = batch.rows;
    let zg = tensor(&batch.zeta_g, [r, c], device);
    let zx = learn_x.then(|| tensor(&batch.zeta_x, [r, d], device));
    let mut total: Option<Tensor<1>> = None;
    let outputs = both_sides(net, &batch.inputs, shapes, device);
    for ((side, sgn), (mut sx, mut sg)) in [(0usize, 1.0f64), (1, -1.0)].into_iter().zip(outputs) {
        if let Some((to_x, to_g)) = batch.velocity_scale {
            // heads u: s = shift − D⁻¹u (the shift is added below)
            sx = sx.map(|v| v.mul_scalar(to_x));
            sg = sg.mul_scalar(to_g);
        }
        if let Some(sh) = &batch.shift {
            sg = sg + tensor(&sh[side].1, [r, c], device);
            if learn_x && sh[side].0.len() == r * d {
                sx = sx.map(|v| v + tensor(&sh[side].0, [r, d], device));
            }
        }
        // |σ s(z ± σζ) ± ζ|²
        let mut term = (sg.mul_scalar(sigma) + zg.clone().mul_scalar(sgn))
            .square()
            .sum();
        if let (Some(zx), Some(sx)) = (&zx, sx) {
            term = term
                + (sx.mul_scalar(sigma) + zx.clone().mul_scalar(sgn))
                    .square()
                    .sum();
        }
        total = Some(match total {
            None => term,
            Some(t) => t + term,
        });
    }
    let comps = r * (c + if learn_x { d } else { 0 });
    total.expect("two sides").div_scalar(2.0 * comps as f64)
}

/// The reported loss: (L − ⟨|ζ|²⟩)/σ² per scored component, which removes the parameter-free
/// noise term (≈ 1) and estimates the implicit score-matching value E[|s|² + 2∇·s] (minimal,
/// = −E|s|², at the true score); the optimised quantity is L itself.
pub fn excess(loss: f64, batch: &Batch, sigma: f64, learn_x: bool) -> f64 {
    let mut sq: f64 = batch.zeta_g.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mut comps = batch.zeta_g.len();
    if learn_x {
        sq += batch
            .zeta_x
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>();
        comps += batch.zeta_x.len();
    }
    (loss - sq / comps as f64) / (sigma * sigma)
}

/// A batch for implicit score matching: the samples and their finite-difference copies.
pub struct IsmBatch {
    /// Samples B: configurations (MLP, transformer) or particles (local transformer).
    pub samples: usize,
    /// Scored coordinates K per sample (g components, then x components when ε > 0).
    pub scored: usize,
    /// Probes per sample: K (exact) or 1 (Hutchinson).
    pub probes: usize,
    /// Network inputs of the copies: B samples, then B·probes at +h, then B·probes at −h.
    pub inputs: Inputs,
    /// Probe directions, B·probes × K (unit vectors, or Rademacher ±1).
    pub directions: Vec<f32>,
    pub h: f64,
    /// Whether the x components are scored (ε > 0).
    pub learn_x: bool,
    /// Drift, diffusion and ∇·b of the samples (when a stationarity term is on).
    pub drift_terms: Option<DriftTerms>,
    /// Equilibrium shift of every copy in scored order (copies × K: −g, and b_x/ε when ε > 0),
    /// when the network learns the departure from the equilibrium score.
    pub shift: Option<Vec<f32>>,
}

/// The drift quantities of configurations `confs` in the scored order of an ISM batch (per
/// particle its c propulsion components, then its d positions when ε > 0).
pub fn drift_terms(ds: &Dataset, confs: &[usize]) -> DriftTerms {
    let (n, d, c) = (ds.n, ds.dim, ds.c);
    let dx = if ds.learn_x { d } else { 0 };
    let sys = &ds.system;
    let dz = sys.diffusion();
    let mut diffusion = Vec::with_capacity(n * (c + dx));
    for i in 0..n {
        diffusion.extend((0..c).map(|a| dz[n * d + i * c + a] as f32));
        diffusion.extend((0..dx).map(|e| dz[i * d + e] as f32));
    }
    // particles: ∇_g·b_g = −γ per mobile propulsion component; the rest of ∇·b is ∇_x·b_x
    let g_div: f64 = (0..n)
        .flat_map(|i| (0..c).map(move |a| n * d + i * c + a))
        .map(|k| if dz[k] > 0.0 { -ds.gamma } else { 0.0 })
        .sum();
    // an SDE has no positions: every coordinate is scored
    let unscored_x = !ds.learn_x && d > 0;
    let mut out = DriftTerms {
        diffusion,
        pointwise: !unscored_x,
        ..Default::default()
    };
    let mut b = vec![0.0; n * (d + c)];
    for &cf in confs {
        let mut z = ds.x[cf].clone();
        z.extend_from_slice(&ds.g[cf]);
        sys.drift(&z, &mut b);
        for i in 0..n {
            out.drift
                .extend((0..c).map(|a| b[n * d + i * c + a] as f32));
            out.drift.extend((0..dx).map(|e| b[i * d + e] as f32));
        }
        let div = sys.divergence(&z);
        out.div_drift.push(div as f32);
        out.unscored_v_dot_s.push(if unscored_x {
            -(div - g_div) as f32
        } else {
            0.0
        });
    }
    out
}

/// Draws an ISM batch of `size` samples from `pool` (see [`ism_loss`]).
pub fn make_ism_batch(
    ds: &Dataset,
    net: &NetworkConfig,
    loss: &LossConfig,
    pool: &[usize],
    size: usize,
    rng: &mut impl Rng,
) -> IsmBatch {
    let (n, d, c) = (ds.n, ds.dim, ds.c);
    let dx = if ds.learn_x { d } else { 0 };
    let h = loss.fd_step;
    let local = net.kind == NetworkKind::LocalTransformer;
    let scored = if local { c + dx } else { n * (c + dx) };
    let exact = loss.divergence == Divergence::Exact;
    let probes = if exact { scored } else { 1 };
    // per sample: base features and the probe directions
    let mut dirs: Vec<f32> = Vec::with_capacity(size * probes * scored);
    for _ in 0..size {
        for p in 0..probes {
            for k in 0..scored {
                dirs.push(if exact {
                    (k == p) as u8 as f32
                } else if rng.random::<bool>() {
                    1.0
                } else {
                    -1.0
                });
            }
        }
    }
    if local {
        let k = net.neighbours;
        let bx = ds.system.particles().expect("particle data").bx;
        let mut base_rel: Vec<Vec<f32>> = Vec::with_capacity(size);
        let mut base_gn: Vec<Vec<f32>> = Vec::with_capacity(size);
        for _ in 0..size {
            let conf = pool[rng.random_range(0..pool.len())];
            let i = rng.random_range(0..n);
            let mut xw = ds.x[conf].clone();
            for v in xw.iter_mut() {
                bx.wrap(v);
            }
            let grid = super::features::KnnGrid::new(&xw, &bx, 4.0);
            let nb = grid.nearest(&xw, &bx, i, k);
            let (mut rel, mut gn) = (Vec::new(), Vec::new());
            super::features::push_tokens(&xw, &ds.g[conf], &bx, c, i, &nb, k, &mut rel, &mut gn);
            base_rel.push(rel);
            base_gn.push(gn);
        }
        let (mut rel, mut gn) = (Vec::new(), Vec::new());
        for b in 0..size {
            rel.extend_from_slice(&base_rel[b]);
            gn.extend_from_slice(&base_gn[b]);
        }
        for sgn in [1.0f32, -1.0] {
            for b in 0..size {
                for p in 0..probes {
                    let v = &dirs[(b * probes + p) * scored..(b * probes + p + 1) * scored];
                    let mut r = base_rel[b].clone();
                    let mut g = base_gn[b].clone();
                    // g_i sits in token 0; x_i enters every rel_j = x_i − x_j (j ≥ 1)
                    for a in 0..c {
                        g[a] += sgn * h as f32 * v[a];
                    }
                    for e in 0..dx {
                        for t in 1..=k {
                            r[t * d + e] += sgn * h as f32 * v[c + e];
                        }
                    }
                    rel.extend(r);
                    gn.extend(g);
                }
            }
        }
        return IsmBatch {
            samples: size,
            scored,
            probes,
            inputs: Inputs::Local {
                p: size * (1 + 2 * probes),
                rel,
                gn,
            },
            directions: dirs,
            h,
            learn_x: ds.learn_x,
            drift_terms: None,
            shift: None,
        };
    }
    let confs: Vec<usize> = (0..size)
        .map(|_| pool[rng.random_range(0..pool.len())])
        .collect();
    let terms = loss.uses_drift().then(|| drift_terms(ds, &confs));
    let mut xs: Vec<f32> = Vec::new();
    let mut gs: Vec<f32> = Vec::new();
    for &cf in &confs {
        xs.extend(ds.x[cf].iter().map(|&v| v as f32));
        gs.extend(ds.g[cf].iter().map(|&v| v as f32));
    }
    for sgn in [1.0f32, -1.0] {
        for (b, &cf) in confs.iter().enumerate() {
            for p in 0..probes {
                let v = &dirs[(b * probes + p) * scored..(b * probes + p + 1) * scored];
                let mut x: Vec<f32> = ds.x[cf].iter().map(|&u| u as f32).collect();
                let mut g: Vec<f32> = ds.g[cf].iter().map(|&u| u as f32).collect();
                // scored coordinate order per particle: its c g components, then d x components
                for i in 0..n {
                    for a in 0..c {
                        g[i * c + a] += sgn * h as f32 * v[i * (c + dx) + a];
                    }
                    for e in 0..dx {
                        x[i * d + e] += sgn * h as f32 * v[i * (c + dx) + c + e];
                    }
                }
                xs.extend(x);
                gs.extend(g);
            }
        }
    }
    let copies = size * (1 + 2 * probes);
    // equilibrium shift at every copy (the finite differences then see its divergence too)
    let shift = net.equilibrium_shift.then(|| {
        let model = ds.system.particles().expect("particle data");
        let drift = ParticleDrift::new(model.clone());
        let inv_eps = if ds.eps > 0.0 { 1.0 / ds.eps } else { 0.0 };
        let mut out = Vec::with_capacity(copies * scored);
        let mut b = vec![0.0; n * (d + c)];
        for k in 0..copies {
            let mut z: Vec<f64> = xs[k * n * d..(k + 1) * n * d]
                .iter()
                .map(|&v| v as f64)
                .collect();
            z.extend(gs[k * n * c..(k + 1) * n * c].iter().map(|&v| v as f64));
            if ds.learn_x {
                drift.rhs(0.0, &z, &mut b);
            }
            for i in 0..n {
                out.extend((0..c).map(|a| -z[n * d + i * c + a] as f32));
                out.extend((0..dx).map(|e| (b[i * d + e] * inv_eps) as f32));
            }
        }
        out
    });
    let inputs = Inputs::configurations(net.kind, copies, n, d, c, xs, gs);
    IsmBatch {
        samples: size,
        scored,
        probes,
        inputs,
        directions: dirs,
        h,
        learn_x: ds.learn_x,
        drift_terms: terms,
        shift,
    }
}

/// Implicit score matching (Hyvärinen 2005), restricted to the noisy coordinates:
/// L = E[|s|² + 2∇·s] / K over the K scored components, with ∇·s = Σ_p v_p·(s(z + h v_p) −
/// s(z − h v_p))/(2h) over the probes v_p (unit vectors: exact up to O(h²); Rademacher: the
/// Hutchinson estimator). Minimal (= −E|s|²/K) at the true score; differentiable in the
/// parameters to first order, which is all burn's autodiff offers.
///
/// With the stationarity terms (weights λ1 = `score_matching`, λ2 = `fokker_planck`,
/// λ3 = `mean_divergence`, λ4 = `mean_flow_score`; see [`super::stationarity`]):
///
///   L = λ1 E[|s|² + 2∇·s]/K + λ2 E[(∇·v + v·s)²] + λ3 (E[∇·v])² + λ4 (E[v·s])²,  v = b − Ds,
///
/// where D:∇s comes from the same finite-difference probes weighted by D (exact along unit
/// vectors; an unbiased Hutchinson estimate inside the square, whose square is then biased by
/// the probe variance). All extra terms vanish at the true score.
pub fn ism_loss(
    net: &ScoreNet,
    ib: &IsmBatch,
    loss: &LossConfig,
    shapes: Shapes,
    device: &Device,
) -> Tensor<1> {
    let (d, c) = (shapes.dim, shapes.propulsion);
    let (b, k, p) = (ib.samples, ib.scored, ib.probes);
    let copies = b * (1 + 2 * p);
    let (sx, sg) = forward(net, &ib.inputs, shapes, device);
    let learn_x = ib.learn_x;
    let dx = if learn_x { d } else { 0 };
    let per = k / (c + dx);
    // scored vector per copy: per particle its g components then its x components
    let sg = sg.reshape([copies, per, c]);
    let sv = match (learn_x, sx) {
        (true, Some(sx)) => {
            Tensor::cat(vec![sg, sx.reshape([copies, per, dx])], 2).reshape([copies, k])
        }
        _ => sg.reshape([copies, k]),
    };
    let sv = match &ib.shift {
        Some(sh) => sv + tensor(sh, [copies, k], device),
        None => sv,
    };
    let base = sv.clone().narrow(0, 0, b);
    let plus = sv.clone().narrow(0, b, b * p);
    let minus = sv.narrow(0, b * (1 + p), b * p);
    let dirs = tensor(&ib.directions, [b * p, k], device);
    // directional differences (s(z + h v_p) − s(z − h v_p))/(2h) projected on v_p, per component
    let diff = (plus - minus).mul(dirs).div_scalar(2.0 * ib.h);
    let div = diff.clone().sum_dim(1).reshape([b, p]).sum_dim(1);
    let mut total = (base.clone().square().sum() + div.sum().mul_scalar(2.0))
        .div_scalar((b * k) as f64)
        .mul_scalar(loss.score_matching);
    if let Some(terms) = &ib.drift_terms {
        let dk = tensor(&terms.diffusion, [1, k], device);
        let wdiv = diff
            .mul(dk)
            .sum_dim(1)
            .reshape([b, p])
            .sum_dim(1)
            .reshape([b]);
        let st = stationarity_terms(base, wdiv, terms, device);
        if loss.fokker_planck > 0.0 {
            total = total + st.residual().square().mean().mul_scalar(loss.fokker_planck);
        }
        if loss.mean_divergence > 0.0 {
            total = total + st.div_v.mean().square().mul_scalar(loss.mean_divergence);
        }
        if loss.mean_flow_score > 0.0 {
            total = total + st.v_dot_s.mean().square().mul_scalar(loss.mean_flow_score);
        }
    }
    total
}

/// Options of a training run (the command line's, or a library caller's).
pub struct TrainRun {
    pub config_path: PathBuf,
    pub data_path: PathBuf,
    pub out_dir: PathBuf,
    pub resume: bool,
    pub device: Device,
    /// Stop after this many steps of this invocation (tests of resume).
    pub stop_after: Option<usize>,
    /// Polled after every step: when cancelled, the run writes its checkpoint and returns its
    /// summary (`steps_done` < `training.steps`, no final model); `--resume` continues it.
    pub cancel: Cancel,
    /// Reports the steps ("steps": start, position, a loss message at every log step, finish).
    pub progress: Arc<dyn Progress>,
}

impl TrainRun {
    /// A fresh run on the CPU, without cancellation or progress display.
    pub fn new(
        config_path: impl Into<PathBuf>,
        data_path: impl Into<PathBuf>,
        out_dir: impl Into<PathBuf>,
    ) -> TrainRun {
        TrainRun {
            config_path: config_path.into(),
            data_path: data_path.into(),
            out_dir: out_dir.into(),
            resume: false,
            device: super::cpu_device(),
            stop_after: None,
            cancel: Cancel::new(),
            progress: Arc::new(NoProgress),
        }
    }
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub steps_done: usize,
    pub final_loss: f64,
    pub final_validation_loss: Option<f64>,
    pub samples_per_second: f64,
    pub parameters: usize,
    pub model_dir: String,
}

/// The optimiser of a training file (with clipping).
fn optimiser(t: &TrainingConfig) -> ModuleOptimizer {
    let clip = (t.clip > 0.0).then_some(GradientClippingConfig::Norm(t.clip as f32));
    match t.optimizer {
        Optimizer::Adam => {
            let mut cfg = AdamConfig::new().with_epsilon(1e-8);
            if let Some(cl) = clip {
                cfg = cfg.with_grad_clipping(Some(cl));
            }
            cfg.init()
        }
        Optimizer::Radam => {
            let mut o = ModuleOptimizer::from(RAdam::default());
            if let Some(cl) = clip {
                o = o.with_grad_clipping(cl.init());
            }
            o
        }
    }
}

/// Checkpoint bookkeeping written next to the parameters (`progress.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    ema_updates: u64,
    /// Length of `log.csv` that goes with the checkpoint: a resumed run drops what a crashed
    /// run appended after it (absent in checkpoints of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_bytes: Option<u64>,
}

fn step_rng(seed: u64, step: usize, purpose: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
            ^ purpose,
    )
}

/// Loads a trained model directory: (config, shapes, EMA network).
pub fn load_model(
    dir: &Path,
    device: &Device,
) -> Result<(TrainConfig, Shapes, ScoreNet), ScoreError> {
    let cfg = TrainConfig::load(&dir.join("config.toml"))?;
    let meta_path = dir.join("model.json");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&meta_path)
            .map_err(|e| ScoreError::file(&meta_path, "cannot read", e))?,
    )
    .map_err(|e| ScoreError::Model(format!("{}: {e}", meta_path.display())))?;
    let get = |k: &str| meta["shapes"][k].as_u64().unwrap_or(0) as usize;
    let shapes = Shapes {
        n: get("n"),
        dim: get("dim"),
        propulsion: get("propulsion"),
        learn_x: meta["shapes"]["learn_x"].as_bool().unwrap_or(false),
        scale_x: meta["shapes"]["scale_x"].as_f64().unwrap_or(1.0),
        scale_g: meta["shapes"]["scale_g"].as_f64().unwrap_or(1.0),
        velocity: meta["shapes"]["velocity"].as_bool().unwrap_or(false),
    };
    device.seed(cfg.training.seed);
    let net = cfg
        .network
        .init(shapes, device)?
        .try_load_file(dir.join("model.bpk"))
        .map_err(|e| ScoreError::Model(format!("{}/model.bpk: {e:?}", dir.display())))?;
    Ok((cfg, shapes, net))
}

/// Where training data came from (recorded in `model.json`).
pub struct Provenance {
    pub definition: String,
    pub definition_path: String,
    pub parameters: std::collections::BTreeMap<String, f64>,
    pub replicas: usize,
    pub frames: usize,
}

/// Reads training data: a particle file (H5MD or GSD), or the trajectory file of an SDE flow (a
/// definition with a `[diffusion]` table; ensemble members play the replicas).
pub fn load_dataset(path: &Path, t: &TrainingConfig) -> Result<(Dataset, Provenance), ScoreError> {
    if crate::io::particle_file::is_particle_file(path) {
        let s = crate::io::particle_file::read_particle_samples(path)?;
        // the samples' own errors do not know the file: name it once
        let ds = Dataset::new(&s, t).map_err(|e| match e {
            ScoreError::Data(m) if !m.contains(&*path.to_string_lossy()) => {
                ScoreError::Data(format!("{}: {m}", path.display()))
            }
            e => e,
        })?;
        return Ok((
            ds,
            Provenance {
                definition: s.definition.clone(),
                definition_path: s.definition_path.clone(),
                parameters: s.parameters.clone(),
                replicas: s.replicas,
                frames: s.frames,
            },
        ));
    }
    let traj = crate::io::read_trajectory(path)?;
    let sde = sde_of_trajectory(&traj)?;
    let provenance = Provenance {
        definition: traj.attr_str("definition").unwrap_or_default().to_string(),
        definition_path: traj
            .attr_str("definition_path")
            .unwrap_or_default()
            .to_string(),
        parameters: sde
            .system
            .model()
            .param_names
            .iter()
            .cloned()
            .zip(sde.system.params().iter().copied())
            .collect(),
        replicas: traj.members,
        frames: traj.len(),
    };
    Ok((Dataset::from_trajectory(&traj, sde, t)?, provenance))
}

/// The committed checkpoint of a model directory.
const CHECKPOINT: &str = "checkpoint";
/// The checkpoint being written (complete once renamed to [`CHECKPOINT`]).
const CHECKPOINT_PARTIAL: &str = ".checkpoint.partial";
/// The previous checkpoint while the new one is renamed into place (deleted right after).
const CHECKPOINT_OLD: &str = ".checkpoint.old";
/// The training log's header.
const LOG_HEADER: &str = "step,lr,loss,validation_loss,samples_per_second\n";

/// Test hook: `PHASEFLOW_FAIL_CHECKPOINT=STEP:STAGE` makes the checkpoint of step STEP fail at
/// stage STAGE, leaving the files as a crash there would: 1 the new checkpoint is written
/// beside the old one, 2 `log.csv` is appended, 3 the old checkpoint is moved aside, 4 the new
/// one is renamed into place (the old one not yet deleted). A resumed run continues from
/// whichever checkpoint is complete.
#[doc(hidden)]
pub const FAIL_CHECKPOINT_ENV: &str = "PHASEFLOW_FAIL_CHECKPOINT";

fn injected_failure(step: usize, stage: u8) -> Result<(), ScoreError> {
    match std::env::var(FAIL_CHECKPOINT_ENV) {
        Ok(v) if v == format!("{step}:{stage}") => Err(ScoreError::Model(format!(
            "checkpoint of step {step}: failure injected at stage {stage} ({FAIL_CHECKPOINT_ENV})"
        ))),
        _ => Ok(()),
    }
}

/// The checkpoint a resumed run reads: `checkpoint/`, or `.checkpoint.old/` when a save was
/// interrupted after moving the old checkpoint aside and before renaming the new one in.
fn committed_checkpoint(dir: &Path) -> PathBuf {
    let ckpt = dir.join(CHECKPOINT);
    let old = dir.join(CHECKPOINT_OLD);
    if !ckpt.exists() && old.exists() {
        old
    } else {
        ckpt
    }
}

/// Flushes a file or directory to disk (directories: the renames inside it).
fn sync(path: &Path) -> Result<(), ScoreError> {
    #[cfg(not(unix))]
    if path.is_dir() {
        return Ok(());
    }
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| ScoreError::file(path, "cannot flush to disk", e))
}

/// The error of a [`Trainer`] whose step panicked inside the optimiser (which owns the network
/// during the update).
fn lost_network() -> ScoreError {
    ScoreError::Invalid("the trainer lost its network in a failed step".into())
}

/// The validation batch of a run (fixed: drawn once from the validation configurations).
enum Validation {
    None,
    Dsm(Batch),
    Ism(IsmBatch),
    Flow(super::flow::FlowBatch),
}

/// A training run step by step: [`Trainer::new`] loads the configuration and the data and
/// starts fresh or from the checkpoint (`run.resume`), [`Trainer::step`] takes one optimisation
/// step, [`Trainer::save`] writes a checkpoint, [`Trainer::finish`] writes the model directory.
/// [`train`] is the loop over it (checkpoints every `training.checkpoint_every` steps, on
/// `run.cancel` and at the end); a caller's own loop that steps and saves at the same steps gets
/// the same files, bit for bit.
///
/// ```no_run
/// use phaseflow::score::train::{TrainRun, Trainer};
/// let run = TrainRun::new("train.toml", "samples.h5", "model");
/// let mut trainer = Trainer::new(&run)?;
/// while trainer.steps_done() < trainer.total_steps() {
///     let loss = trainer.step()?;
///     if trainer.steps_done().is_multiple_of(500) {
///         trainer.save()?;
///         println!("step {}: loss {loss:.4e}", trainer.steps_done());
///     }
/// }
/// let summary = trainer.finish()?;
/// println!("{} parameters in {}", summary.parameters, summary.model_dir);
/// # Ok::<(), phaseflow::score::ScoreError>(())
/// ```
pub struct Trainer {
    config_path: PathBuf,
    data_path: PathBuf,
    dir: PathBuf,
    device: Device,
    progress: Arc<dyn Progress>,
    cfg: TrainConfig,
    ds: Dataset,
    provenance: Provenance,
    shapes: Shapes,
    /// `None` only inside [`Trainer::step`] (the optimiser takes the network by value).
    net: Option<ScoreNet>,
    optim: ModuleOptimizer,
    ema: Option<Ema>,
    validation: Validation,
    /// Steps done when this invocation started, now, and at the last checkpoint.
    start: usize,
    done: usize,
    saved: usize,
    /// `log.csv` lines not yet written (they are written with the next checkpoint).
    log: String,
    last_loss: f64,
    last_valid: Option<f64>,
    started: std::time::Instant,
    window_start: std::time::Instant,
    window_samples: usize,
}

impl Trainer {
    /// Reads the training file and the data, builds the network and the optimiser, and restores
    /// the checkpoint of `run.out_dir` when `run.resume` (a fresh run deletes `log.csv`).
    pub fn new(run: &TrainRun) -> Result<Trainer, ScoreError> {
        let cfg = TrainConfig::load(&run.config_path)?;
        let t = cfg.training.clone();
        let (ds, provenance) = load_dataset(&run.data_path, &t)?;
        if ds.system.particles().is_none() {
            if cfg.network.kind != NetworkKind::Mlp {
                return Err(ScoreError::Data(format!(
                    "network.kind = \"{}\": {} holds the state of an SDE flow (no particles): use kind = \"mlp\"",
                    cfg.network.kind,
                    run.data_path.display()
                )));
            }
            if cfg.network.equilibrium_shift {
                return Err(ScoreError::Data(
                    "network.equilibrium_shift is defined for particle models only".into(),
                ));
            }
        }
        if cfg.loss.fokker_planck > 0.0 && !ds.learn_x && ds.dim > 0 {
            return Err(ScoreError::Data(format!(
                "loss.fokker_planck: {} has noiseless positions (ε = 0), so s_x is not learned and the pointwise residual ∇·v + v·s (which contains v_x·s_x) is not available; the global constraints mean_divergence and mean_flow_score are",
                run.data_path.display()
            )));
        }
        let flow = cfg.loss.kind == LossKind::ProbabilityFlow;
        if flow {
            if ds.pairs_train.is_empty() {
                return Err(ScoreError::Data(format!(
                    "loss.kind = \"probability_flow\" learns from consecutive snapshots, but {} has no two consecutive training frames in a replica",
                    run.data_path.display()
                )));
            }
            if !(ds.pair_dt.is_finite() && ds.pair_dt > 0.0) {
                return Err(ScoreError::Data(format!(
                    "loss.kind = \"probability_flow\": the frames of {} are not equally spaced in time",
                    run.data_path.display()
                )));
            }
        }
        let mut shapes = ds.shapes(&cfg.network);
        if flow {
            shapes.velocity = true;
            shapes.learn_x = true;
        }
        if cfg.network.output == Output::Velocity {
            let Some(model) = ds.system.particles() else {
                return Err(ScoreError::Data(
                    "network.output = \"velocity\" is defined for particle models only".into(),
                ));
            };
            match model.dynamics {
                Dynamics::Aoup { trap, .. } => {
                    if trap > 0.0 && cfg.network.kind == NetworkKind::LocalTransformer {
                        return Err(ScoreError::Data(format!("network.output = \"velocity\" with the local transformer: {} has a trap (A = {trap}), whose force −A x_i the local transformer cannot see (relative positions only)", run.data_path.display())));
                    }
                }
                Dynamics::Abp { .. } => {
                    return Err(ScoreError::Data(format!("network.output = \"velocity\" needs AOUP dynamics (s_g = −g − u_g/γ); {} holds active Brownian particles", run.data_path.display())));
                }
            }
            shapes.velocity = true;
        }
        let device = &run.device;
        let dir = &run.out_dir;
        // a resumed run continues an existing directory: without a checkpoint it fails below and
        // leaves nothing behind (no empty directory)
        if !run.resume {
            std::fs::create_dir_all(dir).map_err(|e| ScoreError::file(dir, "cannot create", e))?;
        }
        // parameters drawn on the CPU and then moved: every backend starts from the same weights
        // (each backend has its own random stream), so loss traces can be compared across devices
        let cpu = super::cpu_device();
        cpu.seed(t.seed);
        let mut net = cfg.network.init(shapes, &cpu)?;
        if *device != cpu {
            // burn initialises parameters lazily, on first use: a forked parameter nobody else
            // holds would initialise on the destination from its random stream. A clone sharing
            // them makes `fork` initialise them here (seeded) and copy them.
            let shared = net.clone();
            net = net.fork(device);
            drop(shared);
        }
        let mut optim = optimiser(&t);
        let mut ema = (t.ema > 0.0).then(|| Ema::new(&net, t.ema));
        let mut start = 0usize;
        let log_path = dir.join("log.csv");
        if run.resume {
            let ckpt = committed_checkpoint(dir);
            let state: CheckpointState = serde_json::from_str(
                &std::fs::read_to_string(ckpt.join("progress.json")).map_err(|e| {
                    ScoreError::Model(format!(
                        "--resume: {}: no checkpoint to resume ({e})",
                        ckpt.display()
                    ))
                })?,
            )
            .map_err(|e| ScoreError::Model(format!("{}/progress.json: {e}", ckpt.display())))?;
            let saved = TrainConfig::load(&ckpt.join("config.toml"))?;
            if saved != cfg {
                return Err(ScoreError::Invalid(format!(
                    "--resume: {} differs from the configuration the checkpoint was trained with",
                    run.config_path.display()
                )));
            }
            let record = |name: &str, e: &dyn std::fmt::Debug| {
                ScoreError::Model(format!("{}/{name}: {e:?}", ckpt.display()))
            };
            net = net
                .try_load_file(ckpt.join("raw.bpk"))
                .map_err(|e| record("raw.bpk", &e))?;
            optim = optim
                .load(ckpt.join("optimizer.bpk"))
                .map_err(|e| record("optimizer.bpk", &e))?;
            if let Some(e) = ema.as_mut() {
                let avg = cfg
                    .network
                    .init(shapes, device)?
                    .try_load_file(ckpt.join("ema.bpk"))
                    .map_err(|e| record("ema.bpk", &e))?;
                *e = Ema::new(&avg, t.ema);
                e.updates = state.ema_updates;
            }
            start = state.step;
            // drop log lines a crashed run wrote after its last checkpoint
            if let (Some(bytes), Ok(meta)) = (state.log_bytes, std::fs::metadata(&log_path)) {
                if meta.len() > bytes {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&log_path)
                        .and_then(|f| f.set_len(bytes))
                        .map_err(|e| ScoreError::file(&log_path, "cannot truncate", e))?;
                }
            }
        } else {
            // a fresh run starts a fresh log
            let _ = std::fs::remove_file(&log_path);
        }
        // fixed validation batch
        let validation = if ds.valid.is_empty() {
            Validation::None
        } else {
            let mut rng = step_rng(t.seed, 0, 0x5EED_0FF1);
            match cfg.loss.kind {
                LossKind::ProbabilityFlow if ds.pairs_valid.is_empty() => Validation::None,
                LossKind::ProbabilityFlow => Validation::Flow(make_flow_batch(
                    &ds,
                    cfg.network.kind,
                    cfg.network.neighbours,
                    &ds.pairs_valid,
                    t.batch,
                    &mut rng,
                )),
                LossKind::Dsm => Validation::Dsm(make_batch(
                    &ds,
                    &cfg.network,
                    cfg.loss.sigma,
                    &ds.valid,
                    t.batch,
                    &mut rng,
                )),
                LossKind::Ism => Validation::Ism(make_ism_batch(
                    &ds,
                    &cfg.network,
                    &cfg.loss,
                    &ds.valid,
                    t.batch,
                    &mut rng,
                )),
            }
        };
        run.progress.start(t.steps as u64, start as u64, "steps");
        let now = std::time::Instant::now();
        Ok(Trainer {
            config_path: run.config_path.clone(),
            data_path: run.data_path.clone(),
            dir: dir.clone(),
            device: device.clone(),
            progress: run.progress.clone(),
            cfg,
            ds,
            provenance,
            shapes,
            net: Some(net),
            optim,
            ema,
            validation,
            start,
            done: start,
            saved: start,
            log: String::new(),
            last_loss: f64::NAN,
            last_valid: None,
            started: now,
            window_start: now,
            window_samples: 0,
        })
    }

    /// Steps done (including those before a resume).
    pub fn steps_done(&self) -> usize {
        self.done
    }

    /// `training.steps`.
    pub fn total_steps(&self) -> usize {
        self.cfg.training.steps
    }

    /// The training file's settings.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The validation loss of the EMA parameters at the last log step (if there is validation
    /// data and a log step has passed).
    pub fn last_validation_loss(&self) -> Option<f64> {
        self.last_valid
    }

    fn net(&self) -> Result<&ScoreNet, ScoreError> {
        self.net.as_ref().ok_or_else(lost_network)
    }

    /// The parameters used for validation and the model: the EMA average, or the raw ones.
    fn averaged(&self) -> Result<ScoreNet, ScoreError> {
        let net = self.net()?.clone();
        Ok(match &self.ema {
            Some(e) => e.apply(net),
            None => net,
        })
    }

    /// One optimisation step on the step's mini-batch (drawn by a generator seeded with the
    /// seed and the step number); at every `training.log_every` step and the last, the
    /// validation loss and a `log.csv` line (written with the next checkpoint). Returns the
    /// reported training loss (DSM: the excess over the noise term, see [`excess`]).
    pub fn step(&mut self) -> Result<f64, ScoreError> {
        let t = &self.cfg.training;
        let step = self.done;
        if step >= t.steps {
            return Err(ScoreError::Invalid(format!(
                "the training is complete ({} steps): nothing to step",
                t.steps
            )));
        }
        let (ds, cfg, shapes, device) = (&self.ds, &self.cfg, self.shapes, &self.device);
        let net = self.net.as_ref().ok_or_else(lost_network)?;
        let lr = learning_rate(step, t.lr, t.lr_min, t.warmup, t.steps);
        let mut rng = step_rng(t.seed, step, 1);
        let (loss, last_loss) = match cfg.loss.kind {
            LossKind::ProbabilityFlow => {
                let fb = make_flow_batch(
                    ds,
                    cfg.network.kind,
                    cfg.network.neighbours,
                    &ds.pairs_train,
                    t.batch,
                    &mut rng,
                );
                let l = flow_loss(net, &fb, shapes, device);
                let v = l.clone().into_scalar::<f32>() as f64;
                (l, v)
            }
            LossKind::Ism => {
                let ib = make_ism_batch(ds, &cfg.network, &cfg.loss, &ds.train, t.batch, &mut rng);
                let l = ism_loss(net, &ib, &cfg.loss, shapes, device);
                let v = l.clone().into_scalar::<f32>() as f64;
                (l, v)
            }
            LossKind::Dsm => {
                let batch = make_batch(
                    ds,
                    &cfg.network,
                    cfg.loss.sigma,
                    &ds.train,
                    t.batch,
                    &mut rng,
                );
                let l = dsm_loss(net, &batch, shapes, cfg.loss.sigma, ds.learn_x, device);
                let v = excess(
                    l.clone().into_scalar::<f32>() as f64,
                    &batch,
                    cfg.loss.sigma,
                    ds.learn_x,
                );
                (l, v)
            }
        };
        self.last_loss = last_loss;
        if !last_loss.is_finite() {
            return Err(ScoreError::Diverged {
                step,
                loss: last_loss,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), net);
        let net = self.net.take().expect("checked above");
        let net = self.optim.step(lr, net, grads);
        if let Some(e) = self.ema.as_mut() {
            e.update(&net);
        }
        self.net = Some(net);
        let t = &self.cfg.training;
        self.window_samples += t.batch;
        let done = step + 1;
        self.done = done;
        self.progress.set_position(done as u64);
        if done.is_multiple_of(t.log_every) || done == t.steps {
            let rate =
                self.window_samples as f64 / self.window_start.elapsed().as_secs_f64().max(1e-9);
            self.window_start = std::time::Instant::now();
            self.window_samples = 0;
            self.last_valid = self.validation_loss()?;
            self.log.push_str(&format!(
                "{done},{lr:e},{last_loss:e},{},{rate:.1}\n",
                self.last_valid.map_or(String::new(), |v| format!("{v:e}"))
            ));
            self.progress.message(&format!(
                "loss {last_loss:.4e}{} · {rate:.0} samples/s",
                self.last_valid
                    .map_or(String::new(), |v| format!(", validation {v:.4e}"))
            ));
        }
        Ok(last_loss)
    }

    /// The loss of the EMA parameters on the validation batch, evaluated on the plain device
    /// (`valid()`: no autodiff graph is recorded; on the paper-size local transformer that graph
    /// was as large as a training step's, 8.6 GB, for a value nobody differentiates).
    fn validation_loss(&self) -> Result<Option<f64>, ScoreError> {
        let (cfg, shapes) = (&self.cfg, self.shapes);
        let device = &self.device.clone().inner();
        let averaged = || self.averaged().map(|net| net.valid());
        Ok(match &self.validation {
            Validation::None => None,
            Validation::Dsm(vb) => {
                let l = dsm_loss(
                    &averaged()?,
                    vb,
                    shapes,
                    cfg.loss.sigma,
                    self.ds.learn_x,
                    device,
                )
                .into_scalar::<f32>() as f64;
                Some(excess(l, vb, cfg.loss.sigma, self.ds.learn_x))
            }
            Validation::Flow(fb) => {
                Some(flow_loss(&averaged()?, fb, shapes, device).into_scalar::<f32>() as f64)
            }
            Validation::Ism(ib) => Some(
                ism_loss(&averaged()?, ib, &cfg.loss, shapes, device).into_scalar::<f32>() as f64,
            ),
        })
    }

    /// Writes a checkpoint of the current step (raw and EMA parameters, optimiser state, the
    /// training file, `progress.json`) and appends the pending `log.csv` lines. Crash-safe: the
    /// new checkpoint is written beside the old one and renamed into place, so a complete
    /// checkpoint exists at every instant (`checkpoint/`, or `.checkpoint.old/` between the two
    /// renames), and the log is cut back to its checkpoint's length on resume.
    pub fn save(&mut self) -> Result<(), ScoreError> {
        let dir = &self.dir;
        let step = self.done;
        let tmp = dir.join(CHECKPOINT_PARTIAL);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .map_err(|e| ScoreError::file(&tmp, "cannot remove", e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| ScoreError::file(&tmp, "cannot create", e))?;
        let record = |name: &str, e: &dyn std::fmt::Debug| {
            ScoreError::Model(format!("{}/{name}: cannot save: {e:?}", tmp.display()))
        };
        let net = self.net()?;
        net.clone()
            .save_file(tmp.join("raw.bpk"))
            .map_err(|e| record("raw.bpk", &e))?;
        self.optim
            .save(tmp.join("optimizer.bpk"))
            .map_err(|e| record("optimizer.bpk", &e))?;
        self.averaged()?
            .save_file(tmp.join("ema.bpk"))
            .map_err(|e| record("ema.bpk", &e))?;
        let config = tmp.join("config.toml");
        std::fs::copy(&self.config_path, &config)
            .map_err(|e| ScoreError::file(&self.config_path, "cannot copy", e))?;
        // log.csv after this save: the pending lines (and the header when they start the file)
        let log_path = dir.join("log.csv");
        let log_len = std::fs::metadata(&log_path).map(|m| m.len()).ok();
        let header = log_len.is_none() && !self.log.is_empty();
        let log_bytes = log_len.unwrap_or(0)
            + if header { LOG_HEADER.len() as u64 } else { 0 }
            + self.log.len() as u64;
        let state = CheckpointState {
            step,
            ema_updates: self.ema.as_ref().map_or(0, |e| e.updates),
            log_bytes: Some(log_bytes),
        };
        let progress = tmp.join("progress.json");
        std::fs::write(
            &progress,
            serde_json::to_string_pretty(&state).unwrap_or_default(),
        )
        .map_err(|e| ScoreError::file(&progress, "cannot write", e))?;
        for f in [
            "raw.bpk",
            "optimizer.bpk",
            "ema.bpk",
            "config.toml",
            "progress.json",
        ] {
            sync(&tmp.join(f))?;
        }
        sync(&tmp)?;
        injected_failure(step, 1)?;
        if !self.log.is_empty() {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| ScoreError::file(&log_path, "cannot open", e))?;
            if header {
                f.write_all(LOG_HEADER.as_bytes())
                    .map_err(|e| ScoreError::file(&log_path, "cannot write", e))?;
            }
            f.write_all(self.log.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| ScoreError::file(&log_path, "cannot write", e))?;
        }
        injected_failure(step, 2)?;
        // commit: old checkpoint aside, new one in, old one deleted
        let ckpt = dir.join(CHECKPOINT);
        let old = dir.join(CHECKPOINT_OLD);
        if ckpt.exists() {
            if old.exists() {
                // left by a save interrupted after its commit: `checkpoint` is the newer one
                std::fs::remove_dir_all(&old)
                    .map_err(|e| ScoreError::file(&old, "cannot remove", e))?;
            }
            std::fs::rename(&ckpt, &old)
                .map_err(|e| ScoreError::file(&ckpt, "cannot rename", e))?;
        }
        injected_failure(step, 3)?;
        std::fs::rename(&tmp, &ckpt).map_err(|e| ScoreError::file(&tmp, "cannot rename", e))?;
        sync(dir)?;
        injected_failure(step, 4)?;
        if old.exists() {
            std::fs::remove_dir_all(&old)
                .map_err(|e| ScoreError::file(&old, "cannot remove", e))?;
        }
        self.log.clear();
        self.saved = step;
        Ok(())
    }

    /// Ends the run: checkpoints unsaved steps, and when every step is done writes the model
    /// directory (`model.bpk` with the EMA parameters, `config.toml`, `model.json`,
    /// `loss.png`); a stopped run (fewer steps) writes no model. Returns the summary.
    pub fn finish(mut self) -> Result<TrainSummary, ScoreError> {
        if self.saved != self.done {
            self.save()?;
        }
        self.progress.finish();
        let (t, dir, shapes) = (&self.cfg.training, &self.dir, self.shapes);
        let avg = self.averaged()?;
        let parameters = avg.num_params();
        if self.done == t.steps {
            avg.save_file(dir.join("model.bpk")).map_err(|e| {
                ScoreError::Model(format!("{}/model.bpk: cannot save: {e:?}", dir.display()))
            })?;
            std::fs::copy(&self.config_path, dir.join("config.toml"))
                .map_err(|e| ScoreError::file(&self.config_path, "cannot copy", e))?;
            let provenance = &self.provenance;
            let meta = serde_json::json!({
                "shapes": {"n": shapes.n, "dim": shapes.dim, "propulsion": shapes.propulsion, "learn_x": shapes.learn_x, "scale_x": shapes.scale_x, "scale_g": shapes.scale_g, "velocity": shapes.velocity},
                "network": self.cfg.network,
                "parameters": parameters,
                "steps": t.steps,
                "data": self.data_path.display().to_string(),
                "data_bytes": std::fs::metadata(&self.data_path).map(|m| m.len()).unwrap_or(0),
                "system": self.ds.system.name(),
                "system_definition_path": provenance.definition_path,
                "system_definition": provenance.definition,
                "system_parameters": provenance.parameters,
                "replicas": provenance.replicas,
                "frames": provenance.frames,
                "phaseflow_version": env!("CARGO_PKG_VERSION"),
            });
            let meta_path = dir.join("model.json");
            std::fs::write(
                &meta_path,
                serde_json::to_string_pretty(&meta).unwrap_or_default(),
            )
            .map_err(|e| ScoreError::file(&meta_path, "cannot write", e))?;
            if let Err(e) = super::plot_loss(
                &dir.join("log.csv"),
                &dir.join("loss.png"),
                self.cfg.loss.kind,
            ) {
                eprintln!("warning: loss curve not drawn: {e}");
            }
        }
        Ok(TrainSummary {
            steps_done: self.done,
            final_loss: self.last_loss,
            final_validation_loss: self.last_valid,
            samples_per_second: ((self.done - self.start) * t.batch) as f64
                / self.started.elapsed().as_secs_f64().max(1e-9),
            parameters,
            model_dir: dir.display().to_string(),
        })
    }
}

/// Runs (or resumes) a training: see the module docs and [`Trainer`]. Checkpoints every
/// `training.checkpoint_every` steps and at the end; stops after `run.stop_after` steps or when
/// `run.cancel` is cancelled, with a checkpoint and no final model (`steps_done` in the summary
/// tells), to be continued with `resume`.
pub fn train(run: &TrainRun) -> Result<TrainSummary, ScoreError> {
    let mut trainer = Trainer::new(run)?;
    if let Err(e) = train_loop(&mut trainer, run) {
        run.progress.finish();
        return Err(e);
    }
    trainer.finish()
}

fn train_loop(trainer: &mut Trainer, run: &TrainRun) -> Result<(), ScoreError> {
    let start = trainer.steps_done();
    let (total, every) = (trainer.total_steps(), trainer.cfg.training.checkpoint_every);
    while trainer.steps_done() < total {
        trainer.step()?;
        let done = trainer.steps_done();
        let stop = run.stop_after.is_some_and(|s| done - start >= s) || run.cancel.is_cancelled();
        if done.is_multiple_of(every) || done == total || stop {
            trainer.save()?;
        }
        if stop {
            break;
        }
    }
    Ok(())
}
