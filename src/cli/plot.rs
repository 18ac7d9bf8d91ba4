//! `phaseflow plot`: trajectory plots and particle snapshots.

use super::*;
use crate::io::{self, PlotOptions};

/// Snapshot of a particle frame coloured by local packing fraction (probe radius 2.5 diameters).
pub(super) fn plot_particles(
    input: &Path,
    output: &Path,
    frame: i64,
    width: u32,
    height: u32,
) -> Result<()> {
    let fr = io::particle_file::read_particle_frame(input, frame)?;
    let (phi, diameter) = crate::particles::observables::frame_packing(&fr);
    io::plot_particles(&fr, &phi, "local φ", diameter, output, (width, height))?;
    eprintln!(
        "wrote {} (frame {} of {}, t = {})",
        output.display(),
        if frame < 0 {
            fr.frames as i64 + frame
        } else {
            frame
        },
        fr.frames,
        fr.time
    );
    Ok(())
}

pub(super) fn plot(
    input: &Path,
    output: &Path,
    axes: Option<Vec<String>>,
    width: u32,
    height: u32,
) -> Result<()> {
    let traj = io::read_trajectory(input)?;
    let axes = match axes {
        None => None,
        Some(list) => {
            if !(2..=3).contains(&list.len()) {
                bail!("--axes takes 2 or 3 components, got {}", list.len());
            }
            let mut idx = Vec::new();
            for a in &list {
                let k = traj
                    .variables
                    .iter()
                    .position(|v| v == a)
                    .or_else(|| a.parse::<usize>().ok().filter(|k| *k < traj.dim))
                    .ok_or_else(|| {
                        anyhow!(
                            "--axes: no component '{a}' (components: {})",
                            traj.variables.join(", ")
                        )
                    })?;
                idx.push(k);
            }
            Some(idx)
        }
    };
    let opts = PlotOptions {
        width,
        height,
        title: None,
        axes,
    };
    io::plot_trajectory(&traj, output, &opts)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}
