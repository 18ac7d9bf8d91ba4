//! Score networks (burn modules), configured from the `[network]` table of a training file.
//!
//! All three map a batch of configurations to the score s = ∇ log ρ of the stationary density, split
//! into its position part s_x and its self-propulsion part s_g, each shaped like its input:
//!
//! - [`Mlp`]: the flat state z = (x, g) of a low-dimensional system (ring) through an MLP, with an
//!   optional antisymmetrisation s(z) = ½(f(z) − f(−z)) when the density is symmetric under
//!   z → −z (then the score is odd).
//! - [`GlobalTransformer`]: one token per particle, [x_i, g_i] → width, post-LayerNorm encoder
//!   blocks over all particles, separate linear heads for s_x and s_g. No positional encoding, so
//!   it is permutation-equivariant; it sees absolute positions (for traps).
//! - [`LocalTransformer`]: for each particle i, the tokens are i itself and its k nearest
//!   neighbours under minimum image, token_j = [MLP_g(g_j), MLP_x(wrap(x_i − x_j))]; encoder
//!   blocks; token 0 read out through an MLP → s_{g_i} (and s_{x_i} when ε > 0). Only relative
//!   positions enter, and neighbour tokens are ordered by distance, so it is translation
//!   invariant and permutation-equivariant by construction (the feature extraction is in
//!   [`super::features`]).
//!
//! An optional equilibrium shift (s_x += b_x/ε, s_g −= g) makes v = b − Ds vanish at
//! initialisation (the network learns the departure from detailed balance).

use burn::module::Module;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ScoreError;

named_setting!(
    /// `network.kind`: the architecture.
    NetworkKind, "network.kind", {
        /// `mlp`: the flat state through an MLP ([`FlatMlp`]).
        Mlp = "mlp",
        /// `transformer`: one token per particle ([`GlobalTransformer`]).
        Transformer = "transformer",
        /// `local_transformer`: each particle and its k nearest neighbours ([`LocalTransformer`]).
        LocalTransformer = "local_transformer",
    }
);

named_setting!(
    /// `network.output`: what the heads stand for.
    Output, "network.output", {
        /// `score`: the heads are the score s (plus the equilibrium shift when enabled).
        Score = "score",
        /// `velocity`: the heads are a velocity u, and the score on the noisy coordinates is
        /// s = D⁻¹(b̂ − u) (s_x = (b̂_x − u_x)/ε, s_g = −g − u_g/γ for AOUPs), b̂ the drift
        /// (see [`NetworkConfig::output`]); at the optimum u is the probability flow velocity
        /// v = b − Ds.
        Velocity = "velocity",
    }
);

named_setting!(
    /// `network.symmetry` of the MLP.
    Symmetry, "network.symmetry", {
        /// `none`: s = f(z).
        None = "none",
        /// `odd`: antisymmetrised, s(z) = ½(f(z) − f(−z)).
        Odd = "odd",
    }
);

/// The `[network]` table of a training file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// `mlp`, `transformer` (global) or `local_transformer`.
    pub kind: NetworkKind,
    /// MLP hidden widths (also the read-out MLP of the local transformer).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Token width of the transformers.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Attention heads.
    #[serde(default = "default_heads")]
    pub heads: usize,
    /// Encoder blocks.
    #[serde(default = "default_blocks")]
    pub blocks: usize,
    /// Feed-forward width of each block (default: the token width).
    #[serde(default)]
    pub feed_forward: Option<usize>,
    /// Neighbours k of the local transformer.
    #[serde(default = "default_neighbours")]
    pub neighbours: usize,
    /// Hidden widths of the local transformer's token embeddings MLP_x and MLP_g (each
    /// d → hidden → width/2; default: one hidden layer of width/2). The paper's MIPS network:
    /// `[256, 256, 256, 256]` (then 2 308 866 parameters at width 256, 4 blocks, read-out
    /// `hidden = [256, 256, 256, 256]`, as the authors' code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_hidden: Option<Vec<usize>>,
    /// MLP: `none` or `odd` (antisymmetrise: s(z) = ½(f(z) − f(−z))).
    #[serde(default = "default_symmetry")]
    pub symmetry: Symmetry,
    /// Add the equilibrium score (s_x += b_x/ε, s_g −= g).
    #[serde(default)]
    pub equilibrium_shift: bool,
    /// `score` (default) or `velocity`: the heads give u and the score trained by denoising
    /// score matching is s = D⁻¹(b̂ − u), the equilibrium shift with its output measured in the
    /// units of the drift — u is O(v0) where the score is O(v0/ε) or O(EPR/γ), which is what
    /// makes small ε and γ trainable. b̂ is the drift of the whole configuration (MLP, global
    /// transformer) or, for the local transformer, the drift its tokens determine,
    /// v0 g_i + k Σ_{tokens j} F(x_i − x_j) (partners beyond the k nearest are left to u: the
    /// softplus tail there is below 1e-8·k at the paper's densities with k ≥ 16). A model
    /// trained so is evaluated as a velocity model: v = u.
    #[serde(default = "default_output")]
    pub output: Output,
}

fn default_output() -> Output {
    Output::Score
}

fn default_hidden() -> Vec<usize> {
    vec![128, 128, 128]
}
fn default_width() -> usize {
    64
}
fn default_heads() -> usize {
    4
}
fn default_blocks() -> usize {
    2
}
fn default_neighbours() -> usize {
    16
}
fn default_symmetry() -> Symmetry {
    Symmetry::None
}

/// A multilayer perceptron with GELU activations between its linear layers.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// `input → hidden[0] → … → output`.
    pub fn new(input: usize, hidden: &[usize], output: usize, device: &Device) -> Mlp {
        let mut sizes = vec![input];
        sizes.extend_from_slice(hidden);
        sizes.push(output);
        let layers = sizes
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Mlp { layers }
    }

    /// Applies the layers to the last dimension of `x`.
    pub fn forward<const D: usize>(&self, mut x: Tensor<D>) -> Tensor<D> {
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if k < last {
                x = gelu(x);
            }
        }
        x
    }
}

/// MLP score of a flat state: z [B, n] → s [B, n].
#[derive(Module, Debug)]
pub struct FlatMlp {
    net: Mlp,
    odd: bool,
}

impl FlatMlp {
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        if self.odd {
            (self.net.forward(z.clone()) - self.net.forward(z.neg())).mul_scalar(0.5)
        } else {
            self.net.forward(z)
        }
    }
}

/// Transformer over all particles of a configuration.
#[derive(Module, Debug)]
pub struct GlobalTransformer {
    embed: Linear,
    encoder: TransformerEncoder,
    head_x: Linear,
    head_g: Linear,
}

impl GlobalTransformer {
    /// x [B, N, d], g [B, N, c] → (s_x [B, N, d], s_g [B, N, c]).
    pub fn forward(&self, x: Tensor<3>, g: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let tokens = self.embed.forward(Tensor::cat(vec![x, g], 2));
        let h = self.encoder.forward(TransformerEncoderInput::new(tokens));
        (self.head_x.forward(h.clone()), self.head_g.forward(h))
    }
}

/// Transformer over each particle's k nearest neighbours.
#[derive(Module, Debug)]
pub struct LocalTransformer {
    embed_x: Mlp,
    embed_g: Mlp,
    encoder: TransformerEncoder,
    readout: Mlp,
    /// Components of s_x in the read-out (0 when ε = 0: only s_g is learned).
    dim_x: usize,
}

impl LocalTransformer {
    /// rel [P, k+1, d] (wrap(x_i − x_j), token 0 = the particle itself, so zeros), gn [P, k+1, c]
    /// (g_j) → (s_x [P, d] when it is learned (ε > 0), s_g [P, c]).
    pub fn forward(&self, rel: Tensor<3>, gn: Tensor<3>) -> (Option<Tensor<2>>, Tensor<2>) {
        let tokens = Tensor::cat(vec![self.embed_g.forward(gn), self.embed_x.forward(rel)], 2);
        let h = self.encoder.forward(TransformerEncoderInput::new(tokens));
        let [p, _, w] = h.dims();
        let out = self.readout.forward(h.narrow(1, 0, 1).reshape([p, w]));
        let total = out.dims()[1];
        if self.dim_x == 0 {
            return (None, out);
        }
        let sx = out.clone().narrow(1, 0, self.dim_x);
        let sg = out.narrow(1, self.dim_x, total - self.dim_x);
        (Some(sx), sg)
    }
}

/// The network of a training file (variants of different sizes: one lives per run).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ScoreNet {
    Mlp(FlatMlp),
    Transformer(GlobalTransformer),
    Local(LocalTransformer),
}

/// Shapes the network is built for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shapes {
    /// Particles N (configurations of the MLP and the global transformer).
    pub n: usize,
    /// Spatial dimension d.
    pub dim: usize,
    /// Self-propulsion components c per particle.
    pub propulsion: usize,
    /// Whether s_x is learned (ε > 0); the MLP and the global transformer always output it.
    pub learn_x: bool,
    /// Input scales: the network sees x/scale_x and g/scale_g (the root mean square of the
    /// training data for absolute positions, 1 for the local transformer's relative ones) and
    /// its output u is mapped back to s = u/scale (the score of the rescaled variable divided
    /// by the scale), so that a standardised input is learned whatever the units.
    pub scale_x: f64,
    pub scale_g: f64,
    /// The heads are the probability flow velocity (v_x, v_g) instead of the score (model-free
    /// loss): outputs are not rescaled, and both heads exist.
    pub velocity: bool,
}

fn encoder(cfg: &NetworkConfig, device: &Device) -> TransformerEncoder {
    TransformerEncoderConfig::new(
        cfg.width,
        cfg.feed_forward.unwrap_or(cfg.width),
        cfg.heads,
        cfg.blocks,
    )
    .with_dropout(0.0)
    .with_norm_first(false)
    .init(device)
}

impl NetworkConfig {
    /// Checks the settings (names the field at fault).
    pub fn validate(&self) -> Result<(), ScoreError> {
        let invalid = |m: String| Err(ScoreError::Invalid(m));
        if self.kind != NetworkKind::Mlp {
            if self.width == 0 || self.heads == 0 || !self.width.is_multiple_of(self.heads) {
                return invalid(format!(
                    "network.width = {} must be a positive multiple of network.heads = {}",
                    self.width, self.heads
                ));
            }
            if self.kind == NetworkKind::LocalTransformer && !self.width.is_multiple_of(2) {
                return invalid(format!(
                    "network.width = {} must be even (half for g, half for x)",
                    self.width
                ));
            }
        }
        if self.hidden.contains(&0) {
            return invalid("network.hidden: widths must be positive".into());
        }
        if let Some(eh) = &self.embed_hidden {
            if self.kind != NetworkKind::LocalTransformer {
                return invalid(format!(
                    "network.embed_hidden applies to kind = \"local_transformer\" (this is \"{}\")",
                    self.kind
                ));
            }
            if eh.contains(&0) {
                return invalid("network.embed_hidden: widths must be positive".into());
            }
        }
        Ok(())
    }

    /// Builds the network with parameters drawn from the device's random stream (seed it first).
    pub fn init(&self, shapes: Shapes, device: &Device) -> Result<ScoreNet, ScoreError> {
        self.validate()?;
        let (d, c) = (shapes.dim, shapes.propulsion);
        Ok(match self.kind {
            NetworkKind::Mlp => {
                let nz = shapes.n * (d + c);
                ScoreNet::Mlp(FlatMlp {
                    net: Mlp::new(nz, &self.hidden, nz, device),
                    odd: self.symmetry == Symmetry::Odd,
                })
            }
            NetworkKind::Transformer => ScoreNet::Transformer(GlobalTransformer {
                embed: LinearConfig::new(d + c, self.width).init(device),
                encoder: encoder(self, device),
                head_x: LinearConfig::new(self.width, d).init(device),
                head_g: LinearConfig::new(self.width, c).init(device),
            }),
            NetworkKind::LocalTransformer => {
                let half = self.width / 2;
                let dim_x = if shapes.learn_x { d } else { 0 };
                let embed_hidden = self.embed_hidden.clone().unwrap_or_else(|| vec![half]);
                ScoreNet::Local(LocalTransformer {
                    embed_x: Mlp::new(d, &embed_hidden, half, device),
                    embed_g: Mlp::new(c, &embed_hidden, half, device),
                    encoder: encoder(self, device),
                    readout: Mlp::new(self.width, &self.hidden, dim_x + c, device),
                    dim_x,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Shapes {
        Shapes {
            n: 1024,
            dim: 2,
            propulsion: 2,
            learn_x: false,
            scale_x: 1.0,
            scale_g: 1.0,
            velocity: false,
        }
    }

    /// `benches/configs/mips_paper.toml` has the authors' parameter count: per embedding
    /// 2·256+256 + 3·(256²+256) + 256·128+128 = 231 040, per block 4·(256²+256) (attention) +
    /// 2·(256²+256) (feed-forward) + 2·512 (LayerNorms) = 395 776, read-out 4·(256²+256) + 256·2+2
    /// = 263 682: 2·231 040 + 4·395 776 + 263 682 = 2 308 866 (also for
    /// `notebooks/configs/mips_paper.toml`, the training ready to run at the paper's point). Without `embed_hidden` the
    /// embeddings are 2 → 128 → 128 as before (1 880 578 in all).
    #[test]
    fn paper_network_has_the_authors_parameter_count() {
        let cfg = crate::score::train::TrainConfig::from_toml(include_str!(
            "../../benches/configs/mips_paper.toml"
        ))
        .unwrap();
        let device = crate::score::cpu_device();
        device.seed(0);
        let net = cfg.network.init(shapes(), &device).unwrap();
        assert_eq!(net.num_params(), 2_308_866);
        // the training file ready to run at the paper's point is the same network
        let ready = crate::score::train::TrainConfig::from_toml(include_str!(
            "../../notebooks/configs/mips_paper.toml"
        ))
        .unwrap();
        let ready_net = ready.network.init(shapes(), &device).unwrap();
        assert_eq!(ready_net.num_params(), 2_308_866);
        let mut old = cfg.network.clone();
        old.embed_hidden = None;
        assert_eq!(old.init(shapes(), &device).unwrap().num_params(), 1_880_578);
    }

    #[test]
    fn embed_hidden_is_checked() {
        let mut cfg = crate::score::train::TrainConfig::from_toml(include_str!(
            "../../benches/configs/mips_paper.toml"
        ))
        .unwrap()
        .network;
        cfg.embed_hidden = Some(vec![256, 0]);
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("embed_hidden"));
        cfg.embed_hidden = Some(vec![8]);
        cfg.kind = NetworkKind::Transformer;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("embed_hidden"));
    }
}
