//! The entropy-production results as a front end needs them: the exact EPR of a linear SDE
//! definition file with named coordinates ([`exact_of_definition`]), and the HDF5 files of
//! `phaseflow epr --maps` ([`write_maps`]) and `--flow-out` ([`write_flow`]), written atomically.

use super::epr::{self, LinearEpr};
use crate::io::h5md::ParticleSamples;
use crate::particles::ParticleModel;
use crate::systems::{CompiledSystem, Overrides};
use std::path::Path;

/// Errors of this module: each names the file or the system concerned.
#[derive(Debug, thiserror::Error)]
pub enum EprOutputError {
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    #[error("{0}")]
    Invalid(String),
    /// The call's cancellation token was set before it ended (nothing was written).
    #[error("interrupted")]
    Interrupted,
}

/// The exact EPR of a linear SDE with the names of its coordinates; its serde form is
/// `phaseflow epr --exact --json`.
#[derive(Debug, Clone)]
pub struct ExactEpr {
    pub system: String,
    /// Coordinate names, as many as `result.per_coordinate`.
    pub components: Vec<String>,
    pub result: LinearEpr,
}

impl serde::Serialize for ExactEpr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let per: serde_json::Map<String, serde_json::Value> = self
            .components
            .iter()
            .zip(&self.result.per_coordinate)
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        serde_json::json!({
            "system": self.system,
            "epr": self.result.epr,
            "epr_stderr": 0.0,
            "epr_exact": self.result.epr,
            "epr_reference": null,
            "per_dof": per,
            "n_samples": 0,
            "lyapunov_residual": self.result.residual,
            "convention": epr::CONVENTION,
        })
        .serialize(s)
    }
}

/// The exact EPR (Lyapunov equation) of the linear SDE defined by `path`: an equation file with a
/// `[diffusion]` table, or a particle model with a linear drift (coordinates `x[i][a]`,
/// `g[i][a]`), at the parameters of `overrides` (`phaseflow epr --exact`).
pub fn exact_of_definition(path: &Path, overrides: &Overrides) -> Result<ExactEpr, EprOutputError> {
    let text = crate::systems::spec::read_definition(path)
        .map_err(|e| EprOutputError::Invalid(e.to_string()))?;
    exact_of_text(&text, path, overrides)
}

/// [`exact_of_definition`] of a definition's text (`label` names it in messages: its path, or
/// `<string>`), for front ends that hold the text rather than a file (the Python package's
/// embedded catalogue).
pub fn exact_of_text(
    text: &str,
    label: &Path,
    overrides: &Overrides,
) -> Result<ExactEpr, EprOutputError> {
    let bad = |m: String| EprOutputError::Invalid(m);
    if crate::systems::is_particle_file(text) {
        let m = ParticleModel::from_str_at(text, label, &overrides.values)
            .map_err(|e| bad(e.to_string()))?;
        let drift = crate::particles::ParticleDrift::new(m.clone());
        let dz = drift.diffusion();
        let (n, d, c) = (m.n, m.dim, m.propulsion_dim());
        let mut names: Vec<String> = (0..n * d)
            .map(|k| format!("x[{}][{}]", k / d, k % d))
            .collect();
        names.extend((0..n * c).map(|k| format!("g[{}][{}]", k / c, k % c)));
        let sde =
            epr::linear_sde(&drift, &dz).map_err(|e| bad(format!("{}: {e}", label.display())))?;
        let result = epr::exact_linear_epr(&sde).map_err(|e| bad(format!("{}: {e}", m.name)))?;
        Ok(ExactEpr {
            system: m.name.clone(),
            components: names,
            result,
        })
    } else {
        let spec =
            crate::systems::SystemSpec::from_str_at(text, label).map_err(|e| bad(e.to_string()))?;
        let sys = CompiledSystem::new(spec, overrides).map_err(|e| bad(e.to_string()))?;
        exact_of_system(&sys)
    }
}

/// The exact EPR of a compiled equation system with a `[diffusion]` table, at its current
/// parameters (messages name the file by its spec's path).
pub fn exact_of_system(sys: &CompiledSystem) -> Result<ExactEpr, EprOutputError> {
    let bad = |m: String| EprOutputError::Invalid(m);
    let path = &sys.info().spec.path;
    let dz = sys.diffusion().ok_or_else(|| {
        bad(format!(
            "{}: no [diffusion] table: the exact EPR needs an SDE dz = Az dt + √(2D) dW",
            path.display()
        ))
    })?;
    let sde = epr::linear_sde(sys, &dz).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let name = sys.name().to_string();
    let result = epr::exact_linear_epr(&sde).map_err(|e| bad(format!("{name}: {e}")))?;
    Ok(ExactEpr {
        system: name,
        components: sys.model().components.clone(),
        result,
    })
}

fn shape_err(e: ndarray::ShapeError) -> hdf5::Error {
    hdf5::Error::from(e.to_string().as_str())
}

/// `phaseflow epr --maps`: per-particle contributions `/particle_epr` [F, N], their time averages
/// along each replica `/particle_time_average` [R, N], positions `/position` [F, N, d], the grid
/// maps `/grid/{edges, conditional_mean, density, count}` (`bins`² cells) and radial maps
/// `/radial/{edges, conditional_mean, density}` (see [`epr::epr_maps`]); written atomically.
pub fn write_maps(
    out: &Path,
    samples: &ParticleSamples,
    model: &ParticleModel,
    r: &epr::SampleEpr,
    bins: usize,
) -> Result<(), EprOutputError> {
    let (n, d) = (samples.n, samples.dim);
    let mut x = Vec::with_capacity(r.particle_samples.len() * d);
    for rep in 0..samples.replicas {
        for f in 0..samples.frames {
            x.extend(model.configuration(samples, rep, f).0);
        }
    }
    let maps = epr::epr_maps(&r.particle_samples, &x, n, d, bins);
    let frames = r.particle_samples.len() / n;
    crate::io::write_hdf5_atomically(out, |f| {
        f.new_dataset_builder()
            .with_data(
                &ndarray::Array2::from_shape_vec((frames, n), r.particle_samples.clone())
                    .map_err(shape_err)?,
            )
            .create("particle_epr")?;
        let averages = epr::time_averages(&r.particle_samples, samples.replicas, samples.frames, n);
        f.new_dataset_builder()
            .with_data(
                &ndarray::Array2::from_shape_vec((samples.replicas, n), averages)
                    .map_err(shape_err)?,
            )
            .create("particle_time_average")?;
        f.new_dataset_builder()
            .with_data(
                &ndarray::Array3::from_shape_vec((frames, n, d), x.clone()).map_err(shape_err)?,
            )
            .create("position")?;
        let g = f.create_group("grid")?;
        let cells = maps.count.len();
        let shape = if d >= 2 { (bins, bins) } else { (1, cells) };
        g.new_dataset_builder()
            .with_data(&maps.edges)
            .create("edges")?;
        for (k, v) in [
            ("conditional_mean", &maps.conditional_mean),
            ("density", &maps.density),
            ("count", &maps.count),
        ] {
            g.new_dataset_builder()
                .with_data(&ndarray::Array2::from_shape_vec(shape, v.clone()).map_err(shape_err)?)
                .create(k)?;
        }
        let rg = f.create_group("radial")?;
        rg.new_dataset_builder()
            .with_data(&maps.radial_edges)
            .create("edges")?;
        rg.new_dataset_builder()
            .with_data(&maps.radial_mean)
            .create("conditional_mean")?;
        rg.new_dataset_builder()
            .with_data(&maps.radial_density)
            .create("density")?;
        let conv: hdf5::types::VarLenUnicode = epr::CONVENTION
            .parse()
            .map_err(|_| hdf5::Error::from("bad string"))?;
        f.new_attr::<hdf5::types::VarLenUnicode>()
            .create("convention")?
            .write_scalar(&conv)?;
        f.new_attr::<f64>().create("epr")?.write_scalar(&r.epr)?;
        Ok(())
    })?;
    Ok(())
}

/// `phaseflow epr --flow-out`: the probability-flow trajectory dx/dt = v_x, dg/dt = v_g of the
/// learned velocity from the first frame of every replica, `steps` Euler steps of `dt`:
/// `/flow/position` [R, K+1, N, d], `/flow/propulsion` [R, K+1, N, c], `/flow/time` [K+1];
/// written atomically. `cancel` is polled at every step; once it is set nothing is written
/// ([`EprOutputError::Interrupted`]). Needs the `learn` feature (score networks).
#[cfg(feature = "learn")]
pub fn write_flow(
    out: &Path,
    sm: &crate::score::evaluate::ScoreModel,
    samples: &ParticleSamples,
    model: &ParticleModel,
    dt: f64,
    steps: usize,
    cancel: &crate::control::Cancel,
) -> Result<(), EprOutputError> {
    if !(dt.is_finite() && dt > 0.0) {
        return Err(EprOutputError::Invalid(format!(
            "--flow-dt must be a finite number > 0, got {dt}"
        )));
    }
    let (n, d, c) = (samples.n, samples.dim, samples.propulsion);
    let k = steps;
    let mut xs = Vec::new();
    let mut gs = Vec::new();
    for rep in 0..samples.replicas {
        let (x0, g0) = model.configuration(samples, rep, 0);
        let flow = epr::probability_flow_trajectory(sm, model, &x0, g0, dt, k, cancel).map_err(
            |e| match e {
                epr::EprError::Interrupted => EprOutputError::Interrupted,
                e => EprOutputError::Invalid(e.to_string()),
            },
        )?;
        for (x, g) in flow {
            xs.extend(x);
            gs.extend(g);
        }
    }
    let m = samples.replicas;
    crate::io::write_hdf5_atomically(out, |f| {
        let g = f.create_group("flow")?;
        g.new_dataset_builder()
            .with_data(
                &ndarray::Array4::from_shape_vec((m, k + 1, n, d), xs.clone())
                    .map_err(shape_err)?,
            )
            .create("position")?;
        g.new_dataset_builder()
            .with_data(
                &ndarray::Array4::from_shape_vec((m, k + 1, n, c), gs.clone())
                    .map_err(shape_err)?,
            )
            .create("propulsion")?;
        let t: Vec<f64> = (0..=k).map(|j| j as f64 * dt).collect();
        g.new_dataset_builder().with_data(&t).create("time")?;
        Ok(())
    })?;
    Ok(())
}
