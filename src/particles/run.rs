//! Driving particle simulations to an H5MD file: burn-in, replicas, frames every K steps,
//! observables, checkpoints and resume, progress bar.

use super::model::{Dynamics, ParticleModel};
use super::observables as obs;
use super::sim::{ParticleState, Simulation};
use crate::io::h5md::{CheckpointState, GroupLayout, H5mdWriter};
use crate::io::{AttrValue, IoError};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Recorded steps after the burn-in (frames at 0, K, 2K, … ≤ steps).
    pub steps: u64,
    /// Steps between frames K.
    pub every: u64,
    /// Steps run before the first frame (not recorded).
    pub burn_in_steps: u64,
    /// Independent replicas M.
    pub replicas: usize,
    pub seed: u64,
    /// Continue an interrupted run from its partial file.
    pub resume: bool,
    /// Cancellation (e.g. Ctrl-C, connected by the front end): the run finishes the frame,
    /// writes its checkpoint and returns [`RunError::Interrupted`]; `--resume` continues it.
    pub cancel: crate::control::Cancel,
    /// The command line, stored in `/parameters`.
    pub command: String,
    /// Testing aid: stop with an error after this many frames of this invocation, leaving the
    /// partial file as a crash would (exercises `--resume`).
    pub abort_after_frames: Option<usize>,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub system: String,
    pub model: String,
    pub output: PathBuf,
    pub n_particles: usize,
    pub dimension: usize,
    pub replicas: usize,
    pub packing_fraction: f64,
    pub box_edge: f64,
    pub dt: f64,
    /// Steps taken in this invocation per replica (burn-in included).
    pub steps: u64,
    pub frames: usize,
    pub resumed_from_step: Option<u64>,
    pub wall_seconds: f64,
    /// N · M · steps / wall time.
    pub particle_steps_per_second: f64,
    pub threads: usize,
    pub largest_cluster_fraction: Option<f64>,
}

/// Errors of a particle run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{0}")]
    Invalid(String),
    #[error("{system}: unstable at step {step} (t = {t}) in replica {replica}: pair forces moved a particle by {jump:.3} in one step (particle diameter {diameter}); reduce dt (--set dt=...)")]
    Unstable {
        system: String,
        replica: usize,
        step: u64,
        t: f64,
        jump: f64,
        diameter: f64,
    },
    #[error(
        "run interrupted after {frames} frames (--abort-after-frames); continue with --resume"
    )]
    Aborted { frames: usize },
    #[error("interrupted after {frames} frames (checkpoint written); continue with --resume")]
    Interrupted { frames: usize },
    #[error("{system}: particle {particle} left the finite range at step {step} (t = {t}): coordinate {coordinate} = {value}; reduce dt")]
    BlowUp {
        system: String,
        particle: usize,
        coordinate: usize,
        step: u64,
        t: f64,
        value: f64,
    },
}

fn group_name(r: usize, m: usize) -> String {
    if m == 1 {
        "all".into()
    } else {
        format!("replica_{r}")
    }
}

/// Unit orientation / propulsion vectors for the output (2-D ABP angles → (cos θ, sin θ)).
fn propulsion_out(model: &ParticleModel, g: &[f64]) -> Vec<f64> {
    match model.dynamics {
        Dynamics::Abp { .. } if model.dim == 2 => {
            g.iter().flat_map(|t| [t.cos(), t.sin()]).collect()
        }
        _ => g.to_vec(),
    }
}

/// Per-replica reference of the time-correlation observables (frame 0).
#[derive(Clone)]
struct Reference {
    unwrapped: Vec<f64>,
    g: Vec<f64>,
}

/// Runs `model` and writes `out` (H5MD). See [`RunConfig`]; `progress` counts steps per replica
/// (burn-in included).
pub fn run(
    model: &ParticleModel,
    out: &Path,
    cfg: &RunConfig,
    progress: &dyn crate::control::Progress,
) -> Result<RunSummary, RunError> {
    if cfg.every == 0 {
        return Err(RunError::Invalid("--every must be at least 1".into()));
    }
    if cfg.replicas == 0 {
        return Err(RunError::Invalid("--replicas must be at least 1".into()));
    }
    let m = cfg.replicas;
    let (n, d) = (model.n, model.dim);
    let gd = model.propulsion_dim();
    let prop_name = match model.dynamics {
        Dynamics::Aoup { .. } => "self_propulsion",
        Dynamics::Abp { .. } => "orientation",
    };
    let out_components = if prop_name == "orientation" { d } else { gd };
    let total = cfg.burn_in_steps + cfg.steps;
    let frame_steps: Vec<u64> = (0..=cfg.steps / cfg.every)
        .map(|k| cfg.burn_in_steps + k * cfg.every)
        .collect();

    let (mut writer, mut sims, refs, resumed) = if cfg.resume {
        let (w, states) = H5mdWriter::open_partial(out)?;
        if states.len() != m {
            return Err(RunError::Invalid(format!(
                "the partial file holds {} replicas, the command asks for {m}",
                states.len()
            )));
        }
        let mut sims = Vec::new();
        let mut refs = Vec::new();
        for (r, s) in states.into_iter().enumerate() {
            if s.x.len() != n * d || s.g.len() != n * gd {
                return Err(RunError::Invalid(
                    "the partial file does not match this model (N, dimension)".into(),
                ));
            }
            // the reference frame (frame 0) is re-read from the file's first frame
            refs.push(Reference {
                unwrapped: s.ref_unwrapped.clone(),
                g: s.ref_g.clone(),
            });
            let st = ParticleState {
                x: s.x,
                image: s.image,
                g: s.g,
                step: s.step,
            };
            sims.push(Simulation::from_state(
                model.clone(),
                st,
                cfg.seed,
                r as u32,
            ));
        }
        let from = sims[0].step_count();
        (w, sims, Some(refs), Some(from))
    } else {
        let layouts: Vec<GroupLayout> = (0..m)
            .map(|r| GroupLayout {
                name: group_name(r, m),
                n,
                dim: d,
                propulsion: (prop_name.into(), out_components),
            })
            .collect();
        let mut params: Vec<(String, AttrValue)> = model
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), AttrValue::F64(*v)))
            .collect();
        params.push(("system".into(), AttrValue::Str(model.name.clone())));
        params.push((
            "model".into(),
            AttrValue::Str(match model.dynamics {
                Dynamics::Aoup { .. } => "aoup".into(),
                Dynamics::Abp { .. } => "abp".into(),
            }),
        ));
        params.push(("seed".into(), AttrValue::U64(cfg.seed)));
        params.push(("command".into(), AttrValue::Str(cfg.command.clone())));
        params.push(("definition".into(), AttrValue::Str(model.source.clone())));
        params.push((
            "definition_path".into(),
            AttrValue::Str(model.path.display().to_string()),
        ));
        params.push(("replicas".into(), AttrValue::U64(m as u64)));
        params.push(("every".into(), AttrValue::U64(cfg.every)));
        params.push(("burn_in_steps".into(), AttrValue::U64(cfg.burn_in_steps)));
        params.push(("n_fixed".into(), AttrValue::U64(model.n_fixed as u64)));
        params.push((
            "noise".into(),
            AttrValue::Str(
                "counter-based Philox4x32-10 keyed by (seed, replica, step, particle): identical output for any thread count".into(),
            ),
        ));
        let w = H5mdWriter::create(out, &layouts, model.bx.length, "phaseflow user", &params)?;
        let sims: Vec<Simulation> = (0..m)
            .map(|r| Simulation::new(model.clone(), cfg.seed, r as u32))
            .collect();
        (w, sims, None, None)
    };
    let mut refs = refs;

    progress.start(total, sims[0].step_count(), "steps");

    let start = Instant::now();
    let start_step = sims[0].step_count();
    let mut rdf_sum: Option<(Vec<f64>, Vec<f64>)> = None;
    let mut packing_hist: Vec<f64> = Vec::new();
    let mut averaged = 0usize;
    let mut last_cluster = None;
    let diameter = model.diameter();
    let has_pairs = model.pair.is_some();
    let rdf_max = (5.0 * diameter).min(0.5 * model.bx.length);
    let parallel_replicas = n < 2048 && m > 1;
    let mut written_here = 0usize;
    // frames still to write (those at steps beyond the current one, or the current one if not yet
    // written: the file has `writer.frames()` of them)
    for (k, &target) in frame_steps.iter().enumerate() {
        if k < writer.frames() {
            continue;
        }
        // advance every replica to `target`
        // a step in which forces move a particle by more than a quarter diameter is a blow-up
        // (Δt too large for the stiffness of the repulsion): stop with the step and particle
        let limit = 0.25 * diameter;
        let advance = |s: &mut Simulation| -> Option<(u64, f64)> {
            while s.step_count() < target {
                s.step();
                let jump = s.max_force_displacement();
                if jump.is_nan() || jump > limit {
                    return Some((s.step_count(), jump));
                }
            }
            None
        };
        let blown: Vec<Option<(u64, f64)>> = if parallel_replicas {
            sims.par_iter_mut().map(advance).collect()
        } else {
            sims.iter_mut().map(advance).collect()
        };
        if let Some((r, (step, jump))) = blown
            .iter()
            .enumerate()
            .find_map(|(r, b)| b.map(|v| (r, v)))
        {
            return Err(RunError::Unstable {
                system: model.name.clone(),
                replica: r,
                step,
                t: step as f64 * model.dt,
                jump,
                diameter,
            });
        }
        progress.set_position(target);
        let states: Vec<ParticleState> = sims.iter().map(|s| s.state()).collect();
        // blow-up check
        for (s, st) in sims.iter().zip(&states) {
            if let Some(pos) = st.x.iter().position(|v| !v.is_finite()) {
                return Err(RunError::BlowUp {
                    system: model.name.clone(),
                    particle: pos / d,
                    coordinate: pos % d,
                    step: st.step,
                    t: s.time(),
                    value: st.x[pos],
                });
            }
        }
        let time = target as f64 * model.dt;
        if refs.is_none() {
            refs = Some(
                states
                    .iter()
                    .map(|st| Reference {
                        unwrapped: obs::unwrap(&st.x, &st.image, &model.bx),
                        g: st.g.clone(),
                    })
                    .collect(),
            );
        }
        let rf = refs.as_ref().unwrap();
        let mut msd = Vec::with_capacity(m);
        let mut corr = Vec::with_capacity(m);
        let mut cluster = Vec::with_capacity(m);
        for (r, st) in states.iter().enumerate() {
            writer.push_frame(
                r,
                target,
                time,
                &st.x,
                &st.image,
                &propulsion_out(model, &st.g),
            )?;
            let u = obs::unwrap(&st.x, &st.image, &model.bx);
            let nm = n - model.n_fixed;
            msd.push(obs::msd(&u[..nm * d], &rf[r].unwrapped[..nm * d], nm));
            let c = obs::autocorrelation(&st.g[..nm * gd], &rf[r].g[..nm * gd], gd, nm);
            corr.push(match model.dynamics {
                // AOUP: (1/(N d)) Σ g(t)·g(0) = e^{−γ t} in the stationary state
                Dynamics::Aoup { .. } => c / d as f64,
                Dynamics::Abp { .. } => c,
            });
            if has_pairs && d >= 2 {
                // one local-packing pass serves the cluster order parameter and the histogram
                let phi =
                    obs::local_packing(&st.x, &model.bx, n, diameter, obs::LOCAL_RADIUS * diameter);
                cluster.push(obs::largest_cluster_fraction(
                    &st.x,
                    &model.bx,
                    &phi,
                    1.2 * diameter,
                    obs::DENSE_THRESHOLD,
                ));
                let (rr, g) = obs::rdf(&st.x, &model.bx, n, rdf_max, 100);
                let h = obs::histogram(&phi, 0.0, 1.2, 60);
                match rdf_sum.as_mut() {
                    None => {
                        rdf_sum = Some((rr, g));
                        packing_hist = h;
                    }
                    Some((_, acc)) => {
                        acc.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
                        packing_hist.iter_mut().zip(&h).for_each(|(a, b)| *a += b);
                    }
                }
                averaged += 1;
            }
        }
        writer.push_observable("msd", target, time, &msd)?;
        let cname = if prop_name == "orientation" {
            "orientation_autocorrelation"
        } else {
            "propulsion_autocorrelation"
        };
        writer.push_observable(cname, target, time, &corr)?;
        if !cluster.is_empty() {
            writer.push_observable("largest_cluster_fraction", target, time, &cluster)?;
            last_cluster = Some(cluster.iter().sum::<f64>() / cluster.len() as f64);
        }
        let checkpoints: Vec<CheckpointState> = states
            .into_iter()
            .zip(rf)
            .map(|(st, r)| CheckpointState {
                x: st.x,
                image: st.image,
                g: st.g,
                step: st.step,
                ref_unwrapped: r.unwrapped.clone(),
                ref_g: r.g.clone(),
            })
            .collect();
        written_here += 1;
        let last = k + 1 == frame_steps.len();
        let stop = cfg.abort_after_frames == Some(written_here) && !last;
        let ctrl_c = cfg.cancel.is_cancelled() && !last;
        writer.end_frame(&checkpoints, last || stop || ctrl_c)?;
        if ctrl_c {
            return Err(RunError::Interrupted {
                frames: writer.frames(),
            });
        }
        if stop {
            return Err(RunError::Aborted {
                frames: writer.frames(),
            });
        }
    }
    // make sure the last steps beyond the last frame are run (steps not a multiple of every)
    let wall = start.elapsed().as_secs_f64();
    progress.finish();
    if let Some((rr, acc)) = rdf_sum {
        let g: Vec<f64> = acc.iter().map(|v| v / averaged as f64).collect();
        let h: Vec<f64> = packing_hist.iter().map(|v| v / averaged as f64).collect();
        let edges: Vec<f64> = (0..=60).map(|b| b as f64 * 1.2 / 60.0).collect();
        writer.write_fixed_observable("radial_distribution", &[("r", &rr), ("value", &g)])?;
        writer.write_fixed_observable(
            "local_packing_fraction",
            &[("bin_edges", &edges), ("density", &h)],
        )?;
    }
    let steps_done = sims[0].step_count() - start_step;
    writer.set_parameter("wall_seconds", &AttrValue::F64(wall))?;
    let frames = writer.finish()?;
    let ps = (n * m) as f64 * steps_done as f64;
    Ok(RunSummary {
        system: model.name.clone(),
        model: match model.dynamics {
            Dynamics::Aoup { .. } => "aoup".into(),
            Dynamics::Abp { .. } => "abp".into(),
        },
        output: out.to_path_buf(),
        n_particles: n,
        dimension: d,
        replicas: m,
        packing_fraction: model.packing_fraction,
        box_edge: model.bx.length,
        dt: model.dt,
        steps: steps_done,
        frames,
        resumed_from_step: resumed,
        wall_seconds: wall,
        particle_steps_per_second: if wall > 0.0 { ps / wall } else { f64::INFINITY },
        threads: rayon::current_num_threads(),
        largest_cluster_fraction: last_cluster,
    })
}
