//! `phaseflow export`: particle files between H5MD and GSD.

use super::*;

/// Options of `phaseflow export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A particle file: H5MD (from `phaseflow simulate`) or GSD (HOOMD schema), told by its content
    pub input: PathBuf,
    /// The output, in the other format, told by its name: .gsd (GSD) or .h5 / .h5md (H5MD)
    pub output: PathBuf,
    /// Print a machine-readable summary
    #[arg(long)]
    pub json: bool,
}

/// `phaseflow export IN OUT`.
pub(super) fn export(args: &ExportArgs) -> Result<()> {
    let s = crate::io::particle_file::export(&args.input, &args.output)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    eprintln!(
        "wrote {} ({} → {}: {} frame(s) of {} particles × {} replica(s), {}-D)",
        s.output.display(),
        s.from,
        s.to,
        s.frames,
        s.particles,
        s.replicas,
        s.dimension
    );
    if s.to == crate::io::particle_file::ParticleFormat::Gsd {
        eprintln!("note: GSD holds positions and orientations in single precision (float32)");
    }
    for d in &s.dropped {
        eprintln!("note: not carried over: {d}");
    }
    Ok(())
}
