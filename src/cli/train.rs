//! `phaseflow train` and `phaseflow score`.

use super::*;

/// Options of `phaseflow train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training file (TOML: [network], [loss], [training]).
    pub config: PathBuf,
    /// Samples: an H5MD (or GSD) file written by `phaseflow simulate` for a particle model.
    #[arg(long)]
    pub data: PathBuf,
    /// Model directory to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Continue from the directory's last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// `cpu` (burn's flex backend), or `cuda` / `wgpu` when built with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Stop (with a checkpoint) after this many steps of this invocation.
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options of `phaseflow score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Model directory written by `phaseflow train`.
    pub model: PathBuf,
    /// Samples (H5MD or GSD particle file).
    #[arg(long)]
    pub data: PathBuf,
    /// Output HDF5 file: /score_x [F, N, d], /score_g [F, N, c] and the probability flow
    /// velocity /velocity_x, /velocity_g per frame F.
    #[arg(short, long)]
    pub output: PathBuf,
    /// `cpu`, or `cuda` / `wgpu` when built with that feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[cfg(not(feature = "learn"))]
pub(super) fn train(_: &TrainArgs) -> Result<()> {
    bail!("phaseflow train: {WITHOUT_LEARN}")
}

#[cfg(not(feature = "learn"))]
pub(super) fn score(_: &ScoreArgs) -> Result<()> {
    bail!("phaseflow score: {WITHOUT_LEARN}")
}

#[cfg(feature = "learn")]
pub(super) fn train(args: &TrainArgs) -> Result<()> {
    let run = crate::score::train::TrainRun {
        config_path: args.config.clone(),
        data_path: args.data.clone(),
        out_dir: args.output.clone(),
        resume: args.resume,
        device: burn_device(&args.device)?,
        stop_after: args.stop_after,
        cancel: cancel_token(),
        progress: std::sync::Arc::new(IndicatifProgress::new(
            args.quiet || args.json,
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps (eta {eta}) {msg}",
        )),
    };
    let summary = crate::score::train::train(&run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "trained {} steps ({} parameters): loss {:.4e}{}, {:.0} samples/s; wrote {}",
            summary.steps_done,
            summary.parameters,
            summary.final_loss,
            summary
                .final_validation_loss
                .map_or(String::new(), |v| format!(", validation {v:.4e}")),
            summary.samples_per_second,
            summary.model_dir
        );
    }
    Ok(())
}

#[cfg(feature = "learn")]
pub(super) fn score(args: &ScoreArgs) -> Result<()> {
    let device = burn_device(&args.device)?;
    let summary = crate::score::evaluate::score_file(
        &args.model,
        &args.data,
        &args.output,
        &device,
        &IndicatifProgress::new(args.quiet, "{wide_bar} {pos}/{len}"),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "wrote {} ({} frames × {} particles)",
            args.output.display(),
            summary.frames,
            summary.particles
        );
    }
    Ok(())
}
