//! A trained score network evaluated on configurations: `phaseflow score MODEL_DIR --data … -o …`
//! and the library call [`ScoreModel::score`] used by the analyses.

use super::network::{NetworkKind, ScoreNet, Shapes};
use super::train::{forward, load_model, model_of_samples, Inputs, TrainConfig};
use super::ScoreError;
use crate::control::Progress;
use crate::particles::{Dynamics, ParticleDrift, ParticleModel};
use crate::systems::System;
use burn::module::Module;
use burn::tensor::Device;
use std::path::Path;

/// A trained network with what it needs to score a configuration.
pub struct ScoreModel {
    pub config: TrainConfig,
    pub shapes: Shapes,
    /// The network on the autodiff device (for derivatives by backpropagation).
    pub net: ScoreNet,
    pub device: Device,
    /// The same parameters on the plain device, for evaluation: forward passes on the autodiff
    /// device record a graph, which grew by 200 MB/s over a data set.
    eval_net: ScoreNet,
    eval_device: Device,
}

impl ScoreModel {
    /// Wraps a network (on an autodiff device) for evaluation.
    pub fn new(config: TrainConfig, shapes: Shapes, net: ScoreNet, device: Device) -> ScoreModel {
        let eval_net = net.valid();
        let eval_device = device.clone().inner();
        ScoreModel {
            config,
            shapes,
            net,
            device,
            eval_net,
            eval_device,
        }
    }

    /// Loads `MODEL_DIR` (the EMA parameters in `model.bpk`).
    pub fn load(dir: &Path, device: &Device) -> Result<ScoreModel, ScoreError> {
        let (config, shapes, net) = load_model(dir, device)?;
        Ok(ScoreModel::new(config, shapes, net, device.clone()))
    }

    /// Whether the network can score configurations of `model`: the same N, d and c as in
    /// training (the local transformer takes any N).
    pub fn check_model(&self, model: &ParticleModel) -> Result<(), ScoreError> {
        let (n, d, c) = (model.n, model.dim, model.propulsion_dim());
        let s = &self.shapes;
        if (d, c) != (s.dim, s.propulsion)
            || (n != s.n && self.config.network.kind != NetworkKind::LocalTransformer)
        {
            return Err(ScoreError::Model(format!(
                "N = {n}, d = {d}, c = {c} but the network was trained for N = {}, d = {}, c = {} (only the local transformer is size-independent)",
                s.n, s.dim, s.propulsion
            )));
        }
        Ok(())
    }

    /// The network inputs of one configuration (see [`ScoreModel::score`]).
    fn inputs(&self, model: &ParticleModel, x: &[f64], g: &[f64]) -> Inputs {
        let c = self.shapes.propulsion;
        let n = x.len() / model.dim;
        let net_cfg = &self.config.network;
        match net_cfg.kind {
            NetworkKind::LocalTransformer => {
                let bx = model.bx;
                let mut xw = x.to_vec();
                for v in xw.iter_mut() {
                    bx.wrap(v);
                }
                let grid = super::features::KnnGrid::new(&xw, &bx, 4.0);
                let (mut rel, mut gn) = (Vec::new(), Vec::new());
                for i in 0..n {
                    let nb = grid.nearest(&xw, &bx, i, net_cfg.neighbours);
                    super::features::push_tokens(
                        &xw,
                        g,
                        &bx,
                        c,
                        i,
                        &nb,
                        net_cfg.neighbours,
                        &mut rel,
                        &mut gn,
                    );
                }
                Inputs::Local { p: n, rel, gn }
            }
            kind @ (NetworkKind::Mlp | NetworkKind::Transformer) => Inputs::configurations(
                kind,
                1,
                n,
                model.dim,
                c,
                x.iter().map(|&v| v as f32).collect(),
                g.iter().map(|&v| v as f32).collect(),
            ),
        }
    }

    /// ∇_{g_i}·s_{g_i} of every particle by autodiff: one backward pass per propulsion component
    /// through the network's input (local transformer: each particle's output depends on its own
    /// token set only, so the gradient of Σ_i s_{g_i,a} with respect to token 0's g_a is the
    /// diagonal entry; MLP and global transformer: one pass per particle and component).
    pub fn divergence_g(&self, model: &ParticleModel, x: &[f64], g: &[f64]) -> Vec<f64> {
        use burn::tensor::{Tensor, TensorData};
        let Shapes {
            dim: d,
            propulsion: c,
            ..
        } = self.shapes;
        let n = x.len() / d;
        let (kx, kg) = (self.shapes.scale_x, self.shapes.scale_g);
        let shift = if self.config.network.equilibrium_shift {
            -(c as f64)
        } else {
            0.0
        };
        // a velocity model: s_g = −g − v_g/γ, so ∇_g·s_g = −c − ∇_g·v_g/γ
        let velocity = self.shapes.velocity;
        let (shift, out_scale) = if velocity {
            (0.0, -gamma_of(model))
        } else {
            (shift, kg)
        };
        let dev = &self.device;
        let t3 = |v: &[f32], s: [usize; 3]| -> Tensor<3> {
            Tensor::from_data(TensorData::new(v.to_vec(), s), dev)
        };
        let values = super::tensor_values::<3>;
        let mut div = vec![shift; n];
        match (&self.net, self.inputs(model, x, g)) {
            (ScoreNet::Local(m), Inputs::Local { p, rel, gn }) => {
                let k1 = rel.len() / (p * d);
                for a in 0..c {
                    // a fresh graph per backward pass (a backward pass consumes its graph)
                    let gin = t3(&gn, [p, k1, c]).require_grad();
                    let (_, sg) = m.forward(
                        t3(&rel, [p, k1, d]).div_scalar(kx),
                        gin.clone().div_scalar(kg),
                    );
                    let grads = sg.narrow(1, a, 1).div_scalar(out_scale).sum().backward();
                    if let Some(gr) = gin.grad(&grads) {
                        let v = values(gr);
                        for (i, dv) in div.iter_mut().enumerate() {
                            *dv += v[(i * k1) * c + a];
                        }
                    }
                }
            }
            (net, inputs) => {
                // the flat and global networks see every particle: the diagonal entries one by one
                let (xs, gs): (Vec<f32>, Vec<f32>) = match &inputs {
                    Inputs::Flat { z, .. } => (z[..n * d].to_vec(), z[n * d..].to_vec()),
                    Inputs::Particles { x, g, .. } => (x.clone(), g.clone()),
                    Inputs::Local { .. } => unreachable!(),
                };
                for (i, dv) in div.iter_mut().enumerate() {
                    for a in 0..c {
                        let gin = t3(&gs, [1, n, c]).require_grad();
                        let xin = t3(&xs, [1, n, d]).div_scalar(kx);
                        let gsc = gin.clone().div_scalar(kg);
                        let sg = match net {
                            ScoreNet::Mlp(m) => {
                                let z = Tensor::cat(
                                    vec![xin.reshape([1, n * d]), gsc.reshape([1, n * c])],
                                    1,
                                );
                                m.forward(z).narrow(1, n * d, n * c)
                            }
                            ScoreNet::Transformer(m) => m.forward(xin, gsc).1.reshape([1, n * c]),
                            ScoreNet::Local(_) => unreachable!(),
                        };
                        let grads = sg
                            .narrow(1, i * c + a, 1)
                            .div_scalar(out_scale)
                            .sum()
                            .backward();
                        if let Some(gr) = gin.grad(&grads) {
                            *dv += values(gr)[i * c + a];
                        }
                    }
                }
            }
        }
        if velocity {
            for v in div.iter_mut() {
                *v -= c as f64;
            }
        }
        div
    }

    /// The score of one state z (D values) of an SDE flow (a model trained on a trajectory
    /// file; for a velocity model s = D⁻¹(b − v), with the drift `b` given).
    pub fn score_state(&self, z: &[f64], b: &[f64], diffusion: &[f64]) -> Vec<f64> {
        let inputs = Inputs::Flat {
            b: 1,
            z: z.iter().map(|&v| v as f32).collect(),
        };
        let (_, out) = forward(&self.eval_net, &inputs, self.shapes, &self.eval_device);
        let out = super::tensor_values::<2>(out);
        if self.shapes.velocity {
            out.iter()
                .zip(b)
                .zip(diffusion)
                .map(|((v, b), d)| (b - v) / d)
                .collect()
        } else {
            out
        }
    }

    /// The probability flow velocity v = b − D s of one configuration: (v_x N·d, v_g N·c) — the
    /// network's output for a model trained with the probability-flow loss, else from the
    /// learned score and the model's drift and diffusion.
    pub fn velocity(&self, model: &ParticleModel, x: &[f64], g: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let f = self.flow(model, x, g);
        (f.vx, f.vg)
    }

    /// The score of one configuration: positions `x` (N·d, as the network was trained on:
    /// unwrapped for traps, wrapped otherwise) and propulsion `g` (N·c) → (s_x N·d, s_g N·c);
    /// s_x is zero where it is not learned (ε = 0).
    pub fn score(&self, model: &ParticleModel, x: &[f64], g: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let f = self.flow(model, x, g);
        (f.sx, f.sg)
    }

    /// Score and velocity of one configuration from one forward pass and one drift evaluation
    /// (see [`ScoreModel::score`], [`ScoreModel::velocity`]). A score model gives s (plus the
    /// equilibrium shift s_x += b_x/ε, s_g −= g when trained with it) and v = b − Ds; a velocity
    /// model gives v and s_g = −g − v_g/γ, s_x = (b_x − v_x)/ε where the positions are noisy.
    pub fn flow(&self, model: &ParticleModel, x: &[f64], g: &[f64]) -> Flow {
        let nd = x.len();
        let drift = ParticleDrift::new(model.clone());
        let dz = drift.diffusion();
        let mut z = x.to_vec();
        z.extend_from_slice(g);
        let mut b = vec![0.0; z.len()];
        drift.rhs(0.0, &z, &mut b);
        let inputs = self.inputs(model, x, g);
        let (ox, og) = forward(&self.eval_net, &inputs, self.shapes, &self.eval_device);
        let ox = ox.map(super::tensor_values::<2>).unwrap_or_default();
        let og = super::tensor_values::<2>(og);
        let (sx, sg, vx, vg);
        if self.shapes.velocity {
            // s = D⁻¹(b − v) on the noisy coordinates; s_g = −g − v_g/γ as b_g = −γg
            sx = (0..nd)
                .map(|k| {
                    if dz[k] > 0.0 {
                        (b[k] - ox[k]) / dz[k]
                    } else {
                        0.0
                    }
                })
                .collect();
            sg = (0..og.len())
                .map(|k| {
                    let dg = dz[nd + k];
                    if dg > 0.0 {
                        -g[k] - og[k] / dg
                    } else {
                        0.0
                    }
                })
                .collect();
            // no x head (ε = 0, a local transformer trained with output = "velocity"): v_x = b_x
            vx = if ox.len() == nd { ox } else { b[..nd].to_vec() };
            vg = og;
        } else {
            let net_cfg = &self.config.network;
            let mut s_x = if ox.len() == nd { ox } else { vec![0.0; nd] };
            let mut s_g = og;
            if net_cfg.equilibrium_shift {
                for (s, v) in s_g.iter_mut().zip(g) {
                    *s -= v;
                }
                let eps = match model.dynamics {
                    Dynamics::Aoup { eps, .. } => eps,
                    Dynamics::Abp { d_t, .. } => d_t,
                };
                if net_cfg.kind != NetworkKind::LocalTransformer && eps > 0.0 {
                    for (s, bv) in s_x.iter_mut().zip(&b[..nd]) {
                        *s += bv / eps;
                    }
                }
            }
            let v: Vec<f64> = s_x
                .iter()
                .chain(&s_g)
                .enumerate()
                .map(|(k, s)| b[k] - dz[k] * s)
                .collect();
            vx = v[..nd].to_vec();
            vg = v[nd..].to_vec();
            (sx, sg) = (s_x, s_g);
        }
        Flow { sx, sg, vx, vg }
    }
}

/// Score and probability flow velocity of one configuration (N·d and N·c values each).
#[derive(Debug, Clone)]
pub struct Flow {
    pub sx: Vec<f64>,
    pub sg: Vec<f64>,
    pub vx: Vec<f64>,
    pub vg: Vec<f64>,
}

/// γ of an AOUP model (the rate of its self-propulsion).
fn gamma_of(model: &ParticleModel) -> f64 {
    match model.dynamics {
        Dynamics::Aoup { gamma, .. } => gamma,
        Dynamics::Abp { d_r, .. } => d_r,
    }
}

/// Frame `f` of replica `r` as the networks see it: positions (N·d; unwrapped with the image
/// counts when the model has a trap, wrapped otherwise) and propulsion (N·c). The same as
/// [`ParticleModel::configuration`] (which needs no score networks).
pub fn configuration<'a>(
    samples: &'a crate::io::h5md::ParticleSamples,
    model: &ParticleModel,
    r: usize,
    f: usize,
) -> (Vec<f64>, &'a [f64]) {
    model.configuration(samples, r, f)
}

/// What `phaseflow score` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoreSummary {
    pub frames: usize,
    pub particles: usize,
    pub output: String,
}

/// Scores every frame of every replica of `data` and writes `/score_x [F, N, d]`,
/// `/score_g [F, N, c]`, the probability flow velocity v = b − D s `/velocity_x`, `/velocity_g`
/// (the network's own output for a model trained with the probability-flow loss) and `/time [F]` (F = replicas × frames, replica-major) to `out`
/// (written to a temporary name and renamed when complete). `progress` counts the frames.
pub fn score_file(
    model_dir: &Path,
    data: &Path,
    out: &Path,
    device: &Device,
    progress: &dyn Progress,
) -> Result<ScoreSummary, ScoreError> {
    let sm = ScoreModel::load(model_dir, device)?;
    if !crate::io::particle_file::is_particle_file(data) {
        return Err(ScoreError::Data(format!(
            "{}: not a particle (H5MD or GSD) file; for an SDE trajectory use `phaseflow epr --model … --data …`",
            data.display()
        )));
    }
    let samples = crate::io::particle_file::read_particle_samples(data)?;
    let model = model_of_samples(&samples)?;
    let (n, d, c) = (samples.n, samples.dim, samples.propulsion);
    sm.check_model(&model)
        .map_err(|e| ScoreError::Model(format!("{}: {e}", data.display())))?;
    let frames = samples.replicas * samples.frames;
    let mut sx_all = Vec::with_capacity(frames * n * d);
    let mut sg_all = Vec::with_capacity(frames * n * c);
    let mut vx_all = Vec::with_capacity(frames * n * d);
    let mut vg_all = Vec::with_capacity(frames * n * c);
    let mut times = Vec::with_capacity(frames);
    progress.start(frames as u64, 0, "frames");
    for r in 0..samples.replicas {
        for f in 0..samples.frames {
            progress.advance(1);
            let (x, g) = configuration(&samples, &model, r, f);
            let fl = sm.flow(&model, &x, g);
            sx_all.extend(fl.sx);
            sg_all.extend(fl.sg);
            vx_all.extend(fl.vx);
            vg_all.extend(fl.vg);
            times.push(samples.time[f]);
        }
    }
    progress.finish();
    crate::io::write_hdf5_atomically(out, |file| {
        file.new_dataset_builder()
            .with_data(
                &ndarray::Array3::from_shape_vec((frames, n, d), sx_all.clone())
                    .map_err(|e| hdf5::Error::from(e.to_string().as_str()))?,
            )
            .create("score_x")?;
        file.new_dataset_builder()
            .with_data(
                &ndarray::Array3::from_shape_vec((frames, n, c), sg_all.clone())
                    .map_err(|e| hdf5::Error::from(e.to_string().as_str()))?,
            )
            .create("score_g")?;
        for (name, values, cols) in [("velocity_x", &vx_all, d), ("velocity_g", &vg_all, c)] {
            file.new_dataset_builder()
                .with_data(
                    &ndarray::Array3::from_shape_vec((frames, n, cols), values.clone())
                        .map_err(|e| hdf5::Error::from(e.to_string().as_str()))?,
                )
                .create(name)?;
        }
        file.new_dataset_builder()
            .with_data(&times)
            .create("time")?;
        let attr = |name: &str, v: &str| -> hdf5::Result<()> {
            let s: hdf5::types::VarLenUnicode =
                v.parse().map_err(|_| hdf5::Error::from("bad string"))?;
            file.new_attr::<hdf5::types::VarLenUnicode>()
                .create(name)?
                .write_scalar(&s)
        };
        attr("model", &model_dir.display().to_string())?;
        attr("data", &data.display().to_string())?;
        attr(
            "convention",
            "score of the stationary density, s = grad log rho, and probability flow velocity v = b - D s; positions unwrapped for traps, wrapped otherwise; frames replica-major",
        )?;
        Ok(())
    })?;
    Ok(ScoreSummary {
        frames,
        particles: n,
        output: out.display().to_string(),
    })
}
