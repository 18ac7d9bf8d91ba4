//! `phaseflow epr`: entropy production rates.

use super::*;
use crate::control::Progress;

/// Options of `phaseflow epr`.
#[derive(Args, Debug)]
pub struct EprArgs {
    /// System definition: a particle model (systems/active/) or a linear SDE (a flow with a
    /// [diffusion] table, systems/linear/). With --data, its parameters are those the data was
    /// simulated with (`/parameters`), unless overridden by --set.
    #[arg(long)]
    pub system: Option<String>,
    /// Override a parameter: NAME=VALUE.
    #[arg(long)]
    pub set: Vec<String>,
    /// The exact EPR of a linear SDE dz = Az dt + √(2D) dW (no samples, no model).
    #[arg(long)]
    pub exact: bool,
    /// Model directory written by `phaseflow train`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Samples (particle file from `phaseflow simulate`: H5MD or GSD).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Contiguous batches for the batch-means standard errors.
    #[arg(long, default_value_t = 20)]
    pub batches: usize,
    /// Where entropy is produced, to HDF5: per frame and particle (/particle_epr [F, N],
    /// /position [F, N, d]), on a grid (/grid/{edges, conditional_mean, density, count}) and
    /// radially (/radial/{edges, conditional_mean, density}).
    #[arg(long)]
    pub maps: Option<PathBuf>,
    /// Bins per axis of the maps.
    #[arg(long, default_value_t = 32)]
    pub bins: usize,
    /// Samples for the stationarity diagnostics (∇·v + v·s, E[|s|² + ∇·s]; 0: none).
    #[arg(long, default_value_t = 500)]
    pub diagnostic_samples: usize,
    /// PNG: the last frame (first replica) with each particle coloured by its EPR.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Probability-flow trajectories dz/dt = v(z) (RK4) from the first frame of each replica, to
    /// HDF5: /flow/position [R, K+1, N, d], /flow/propulsion [R, K+1, N, c], /flow/time [K+1].
    #[arg(long)]
    pub flow_out: Option<PathBuf>,
    /// Steps K of the probability-flow trajectories.
    #[arg(long, default_value_t = 100)]
    pub flow_steps: usize,
    /// Step of the probability-flow trajectories (default: the model's dt).
    #[arg(long, allow_hyphen_values = true)]
    pub flow_dt: Option<f64>,
    /// `cpu`, or `cuda` / `wgpu` when built with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

pub(super) fn epr(args: &EprArgs) -> Result<()> {
    use crate::analysis::epr;
    let ov = Overrides::parse(&args.set).map_err(|e| anyhow!("{e}"))?;
    if args.exact {
        if args.model.is_some() || args.data.is_some() {
            bail!("--exact takes a system only (no --model, no --data)");
        }
        let system = args
            .system
            .as_deref()
            .ok_or_else(|| anyhow!("--exact needs --system FILE (a linear SDE)"))?;
        let path = systems::resolve_system(system).map_err(|e| anyhow!("{e}"))?;
        let exact = crate::analysis::epr_output::exact_of_definition(&path, &ov)?;
        let (name, components, r) = (&exact.system, &exact.components, &exact.result);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&exact)?);
        } else {
            println!(
                "{name}: exact entropy production rate {:.10} (Lyapunov residual {:.1e})",
                r.epr, r.residual
            );
            for (k, v) in components.iter().zip(&r.per_coordinate) {
                if *v != 0.0 {
                    println!("  {k:>10}  {v:.10}");
                }
            }
            println!("  ({})", epr::CONVENTION);
        }
        return Ok(());
    }
    // settings that can be checked before any work
    if let Some(dt) = args.flow_dt.filter(|dt| !(dt.is_finite() && *dt > 0.0)) {
        bail!("--flow-dt must be a finite number > 0, got {dt}");
    }
    let Some(data) = &args.data else {
        bail!("phaseflow epr needs --data SAMPLES.h5 (with --model DIR for the learned EPR; without, the learning-free reference only), or --exact --system FILE");
    };
    #[cfg(feature = "learn")]
    let sm = match &args.model {
        Some(dir) => Some(crate::score::evaluate::ScoreModel::load(
            dir,
            &burn_device(&args.device)?,
        )?),
        None => None,
    };
    #[cfg(not(feature = "learn"))]
    let sm: Option<std::convert::Infallible> = match &args.model {
        Some(_) => bail!("phaseflow epr --model: {WITHOUT_LEARN}"),
        None => None,
    };
    if sm.is_none() && (args.maps.is_some() || args.png.is_some()) {
        bail!("--maps and --png show the learned EPR: they need --model DIR");
    }
    if !crate::io::particle_file::is_particle_file(data) {
        // a missing, non-HDF5 or truncated file is named as such, not taken for a trajectory
        crate::io::probe_hdf5(data)?;
        // the trajectory of an SDE flow (a definition with a [diffusion] table)
        let Some(sm) = sm else {
            // a file that is not a trajectory either says so (read_trajectory names why)
            crate::io::read_trajectory(data)?;
            bail!(
                "{}: a flow trajectory, not a particle (H5MD) file: its EPR needs --model DIR (a score model trained on the trajectory of an SDE flow)",
                data.display()
            );
        };
        return sde_epr(args, data, &sm);
    }
    let samples =
        crate::io::particle_file::read_particle_samples(data).map_err(|e| anyhow!("{e}"))?;
    // the system's definition (given, or the one stored with the data) at the data's
    // parameters, then --set
    let (text, def_path) = match &args.system {
        Some(system) => {
            let path = systems::resolve_system(system).map_err(|e| anyhow!("{e}"))?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (text, path)
        }
        None => (
            samples.definition.clone(),
            PathBuf::from(&samples.definition_path),
        ),
    };
    let model = crate::particles::ParticleModel::at_parameters(
        &text,
        &def_path,
        &samples.parameters,
        &ov.values,
    )
    .map_err(|e| anyhow!("{e}"))?;
    // Ctrl-C (SIGTERM, SIGHUP) stops the sampling at its next sample: `error: interrupted`, and
    // no output file is begun after it
    let cancel = cancel_token();
    let interrupted = || -> Result<()> {
        if cancel.is_cancelled() {
            bail!(epr::EprError::Interrupted);
        }
        Ok(())
    };
    let frames = (samples.replicas * samples.frames) as u64;
    let bar = IndicatifProgress::counting(args.quiet || args.json, "frames");
    bar.start(frames, 0, "frames");
    #[cfg(feature = "learn")]
    let r = epr::sample_epr(sm.as_ref(), &model, &samples, args.batches, &cancel, &bar);
    #[cfg(not(feature = "learn"))]
    let r = epr::reference_epr(&model, &samples, args.batches, &cancel, &bar);
    bar.finish();
    #[cfg_attr(not(feature = "learn"), allow(unused_mut))]
    let mut r = r.map_err(|e| anyhow!(e))?;
    #[cfg(feature = "learn")]
    if let Some(sm) = &sm {
        if args.diagnostic_samples > 0 {
            r.diagnostics = Some(
                epr::diagnostics(sm, &model, &samples, args.diagnostic_samples, &cancel)
                    .map_err(|e| anyhow!(e))?,
            );
        }
    }
    if let Some(out) = &args.maps {
        interrupted()?;
        crate::analysis::epr_output::write_maps(out, &samples, &model, &r, args.bins.max(1))?;
    }
    if let Some(out) = &args.flow_out {
        let sm = sm
            .as_ref()
            .ok_or_else(|| anyhow!("--flow-out needs --model DIR"))?;
        let dt = args.flow_dt.unwrap_or(model.dt);
        #[cfg(feature = "learn")]
        crate::analysis::epr_output::write_flow(
            out,
            sm,
            &samples,
            &model,
            dt,
            args.flow_steps,
            &cancel,
        )?;
        #[cfg(not(feature = "learn"))]
        let _ = (out, sm, dt);
    }
    if let Some(png) = &args.png {
        interrupted()?;
        let frame =
            crate::io::particle_file::read_particle_frame(data, -1).map_err(|e| anyhow!("{e}"))?;
        let n = r.particles;
        let last = (samples.frames - 1) * n;
        crate::io::plot::plot_particles(
            &frame,
            &r.particle_samples[last..last + n],
            "EPR per particle",
            model.diameter(),
            png,
            (1000, 860),
        )
        .map_err(|e| anyhow!("{e}"))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        if sm.is_some() {
            println!(
                "{}: EPR {:.6} ± {:.6} (learned, {} samples of {} particles; {:.6} per particle)",
                model.name, r.epr, r.epr_stderr, r.n_samples, r.particles, r.epr_per_particle
            );
        } else {
            println!(
                "{}: no --model: learning-free reference only ({} samples of {} particles)",
                model.name, r.n_samples, r.particles
            );
        }
        println!(
            "  learning-free reference {:.6} ± {:.6}{}",
            r.epr_reference,
            r.epr_reference_stderr,
            r.epr_exact
                .map_or(String::new(), |e| format!("; exact (linear drift) {e:.6}"))
        );
        if sm.is_some() {
            println!(
                "  per degree of freedom: x {:.6}, g {:.6}",
                r.per_dof.x, r.per_dof.g
            );
            println!(
                "  stationarity: E[v·s] = {:.3e} ± {:.1e} (0 at stationarity)",
                r.mean_v_dot_s, r.mean_v_dot_s_stderr
            );
            if let Some(dg) = &r.diagnostics {
                if let (Some(m), Some(e)) = (dg.residual_mean, dg.residual_stderr) {
                    println!(
                        "  Fokker–Planck residual ∇·v + v·s: mean {m:.3e} ± {e:.1e} over {} samples ({} divergence)",
                        dg.samples, dg.divergence
                    );
                }
                println!(
                    "  E[|s|² + ∇·s] = {:.3e} ± {:.1e} (0 by parts)",
                    dg.fisher_identity, dg.fisher_identity_stderr
                );
            }
        }
        println!("  ({})", epr::CONVENTION);
    }
    Ok(())
}

/// `phaseflow epr --model DIR --data TRAJ.h5` for the trajectory of an SDE flow.
#[cfg(feature = "learn")]
fn sde_epr(args: &EprArgs, data: &Path, sm: &crate::score::evaluate::ScoreModel) -> Result<()> {
    use crate::analysis::epr;
    let traj = crate::io::read_trajectory(data).map_err(|e| anyhow!("{e}"))?;
    let sde = crate::score::train::sde_of_trajectory(&traj)?;
    let bar = IndicatifProgress::counting(args.quiet || args.json, "samples");
    bar.start((traj.len() * traj.members) as u64, 0, "samples");
    let r = epr::trajectory_epr(sm, &sde, &traj, args.batches, &cancel_token(), &bar);
    bar.finish();
    let r = r.map_err(|e| anyhow!(e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{}: EPR {:.6} ± {:.6} (learned, {} samples)",
            r.system, r.epr, r.epr_stderr, r.n_samples
        );
        println!(
            "  learning-free reference {:.6} ± {:.6}{}",
            r.epr_reference,
            r.epr_reference_stderr,
            r.epr_exact
                .map_or(String::new(), |e| format!("; exact (linear drift) {e:.6}"))
        );
        for (k, v) in &r.per_dof {
            println!("  {k:>10}  {v:.6}");
        }
        println!(
            "  stationarity: E[v·s] = {:.3e} ± {:.1e}",
            r.mean_v_dot_s, r.mean_v_dot_s_stderr
        );
        println!("  ({})", epr::CONVENTION);
    }
    Ok(())
}

#[cfg(not(feature = "learn"))]
fn sde_epr(_: &EprArgs, _: &Path, sm: &std::convert::Infallible) -> Result<()> {
    match *sm {}
}
