//! `phaseflow series`: invariants of a measured scalar series.

use super::*;

/// Options of `phaseflow series`.
#[derive(Args, Debug)]
pub struct SeriesArgs {
    /// A phaseflow trajectory (HDF5, told by its content) or a text file with one value per line
    pub input: PathBuf,
    /// Component of an .h5 trajectory (name or index) [default: the first]
    #[arg(long)]
    pub variable: Option<String>,
    /// Sampling step of a text series (a trajectory file gives its own)
    #[arg(long, allow_hyphen_values = true)]
    pub dt: Option<f64>,
    /// Embedding dimension m
    #[arg(long, default_value_t = 5)]
    pub embed: usize,
    /// Embedding delay in samples [default: 1/8 of the dominant period of the differenced series]
    #[arg(long)]
    pub lag: Option<usize>,
    /// Temporal exclusion window w in samples [default: one such period]
    #[arg(long)]
    pub exclude: Option<usize>,
    /// Samples the divergence is followed for [default: 8 such periods]
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// `phaseflow series`: invariants of a scalar time series (no equations).
pub(super) fn series(args: &SeriesArgs) -> Result<()> {
    use crate::analysis::series::{analyse, read_series, SeriesSettings};
    let (x, dt) = read_series(&args.input, args.variable.as_deref(), args.dt)?;
    let settings = SeriesSettings {
        embed: args.embed,
        lag: args.lag,
        exclude: args.exclude,
        horizon: args.horizon,
    };
    let r = analyse(&x, dt, &settings)?;
    if args.json {
        // through a JSON value: keys sorted, as before
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::to_value(&r)?)?
        );
        return Ok(());
    }
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    println!(
        "{}: {} samples, dt = {dt}, dominant period {:.4}; embedding m = {}, lag {}, exclusion {}, horizon {} samples",
        args.input.display(),
        r.samples,
        r.dominant_period,
        r.embedding_dimension,
        r.lag,
        r.exclusion,
        r.horizon
    );
    println!(
        "  maximal Lyapunov exponent: Rosenstein {}, Kantz {}",
        f(r.lyapunov_rosenstein),
        f(r.lyapunov_kantz)
    );
    println!(
        "  correlation dimension of the embedding {} ± {}",
        f(r.correlation_dimension),
        f(r.correlation_dimension_error)
    );
    println!(
        "  sample entropy {} ; multiscale (scales 1-5) [{}]",
        f(r.sample_entropy),
        r.multiscale_entropy
            .iter()
            .map(|v| f(*v))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
