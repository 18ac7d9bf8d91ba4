//! `phaseflow invariants`: Lyapunov spectrum and other invariants of a system.

use super::*;

/// Options of `phaseflow invariants`.
#[derive(Args, Debug)]
pub struct InvariantsArgs {
    /// System name or definition file
    pub system: String,
    /// Override a parameter: NAME=VALUE (repeatable)
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub settings: InvariantSettingsArgs,
    /// Points of the correlation-dimension estimate (a trajectory sampled 20 times per period
    /// after the transient, Theiler window one period; maps: iterates); 0 skips it
    #[arg(long, default_value_t = 20000)]
    pub correlation_points: usize,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// The settings of the invariants computation that `phaseflow invariants` and `phaseflow sweep`
/// share (each point of a sweep is computed as `phaseflow invariants` would).
#[derive(Args, Debug)]
pub struct InvariantSettingsArgs {
    /// Measured span per initial condition (time units; iterations for maps)
    /// [default: 2000 periods of flows, 1e5 iterations of maps]
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: Option<f64>,
    /// Discarded transient [default: 20 periods; 1000 iterations]
    #[arg(long, allow_hyphen_values = true)]
    pub transient: Option<f64>,
    /// Re-orthonormalisation interval [default: period/8; every iteration of maps]
    #[arg(long, allow_hyphen_values = true)]
    pub qr_interval: Option<f64>,
    /// Number of exponents (default: all; delay equations: 3)
    #[arg(long)]
    pub exponents: Option<usize>,
    /// Initial conditions sampled on the attractor (error bars across them); 1 = the file's IC
    /// with block error bars
    #[arg(long, default_value_t = 1)]
    pub ics: usize,
    /// Seed of the initial-condition sampling
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 1e-9, allow_hyphen_values = true)]
    pub rtol: f64,
    #[arg(long, default_value_t = 1e-9, allow_hyphen_values = true)]
    pub atol: f64,
}

impl InvariantSettingsArgs {
    /// The library's settings, with `correlation_points` (whose default differs between the
    /// commands) and Ctrl-C (SIGTERM, SIGHUP) connected: the computation stops at its next
    /// check with `error: interrupted`.
    pub(super) fn settings(
        &self,
        correlation_points: usize,
    ) -> crate::analysis::invariants::InvariantSettings {
        crate::analysis::invariants::InvariantSettings {
            span: self.t_end,
            transient: self.transient,
            qr_interval: self.qr_interval,
            exponents: self.exponents,
            ics: self.ics,
            seed: self.seed,
            rtol: self.rtol,
            atol: self.atol,
            correlation_points,
            cancel: cancel_token(),
        }
    }
}

/// `phaseflow invariants`: Lyapunov spectrum, Kaplan–Yorke dimension, Pesin entropy,
/// correlation dimension, beside the file's reference values.
pub(super) fn invariants(args: &InvariantsArgs) -> Result<()> {
    let sys = load(&args.system, &args.set)?;
    let settings = args.settings.settings(args.correlation_points);
    let inv = crate::analysis::invariants::compute(&sys, &settings).map_err(|e| anyhow!("{e}"))?;
    let spec = &sys.info().spec;
    let reference = |key: &str| spec.reference_array(key);
    let ref_scalar = |key: &str| spec.reference_number(key);
    let map = inv.kind == "map";
    let units = if map {
        "per iteration"
    } else {
        "per time unit"
    };
    if args.json {
        let report = crate::analysis::invariants::InvariantsReport::new(&sys, inv);
        // through a JSON value: keys sorted, as before
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::to_value(&report)?)?
        );
        return Ok(());
    }
    println!(
        "{}: Lyapunov spectrum ({units}; span {}, transient {}, QR every {}, {} initial condition(s))",
        inv.system, inv.span, inv.transient, inv.qr_interval, inv.initial_conditions
    );
    let lit = reference("lyapunov_spectrum");
    let dy = reference("lyapunov_spectrum_dysts");
    for (i, (l, e)) in inv
        .lyapunov_spectrum
        .iter()
        .zip(&inv.lyapunov_errors)
        .enumerate()
    {
        let col = |v: &Option<Vec<f64>>| {
            v.as_ref()
                .and_then(|v| v.get(i))
                .map_or("-".to_string(), |x| format!("{x:.4}"))
        };
        println!(
            "  λ{:<2} = {:>10.5} ± {:.5}   literature {:>9}   dysts {:>9}",
            i + 1,
            l,
            e,
            col(&lit),
            col(&dy)
        );
    }
    println!("  sum  = {:.6}", inv.sum);
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    if let (Some(l), Some(e)) = (
        inv.maximum_lyapunov_two_trajectories,
        inv.maximum_lyapunov_two_trajectories_error,
    ) {
        println!(
            "  maximal exponent by two-trajectory renormalisation {l:.5} ± {e:.5} (dysts {})",
            opt(ref_scalar("maximum_lyapunov_dysts"))
        );
    }
    println!(
        "  Kaplan–Yorke dimension {:.4} (literature {}, dysts {})",
        inv.kaplan_yorke_dimension,
        opt(ref_scalar("kaplan_yorke_dimension")),
        opt(ref_scalar("kaplan_yorke_dimension_dysts"))
    );
    if let (Some(c), Some(e), Some(r)) = (
        inv.correlation_dimension,
        inv.correlation_dimension_error,
        inv.correlation_fit_range,
    ) {
        println!(
            "  correlation dimension {c:.3} ± {e:.3} (fit over r ∈ [{:.3e}, {:.3e}], dysts {})",
            r.0,
            r.1,
            opt(ref_scalar("correlation_dimension_dysts"))
        );
    }
    if let Some(se) = inv.sample_entropy {
        println!(
            "  sample entropy SampEn(2, 0.2σ) of the first coordinate {se:.4} (dysts multiscale entropy {})",
            opt(ref_scalar("multiscale_entropy_dysts"))
        );
    }
    if !inv.dominant_periods.is_empty() {
        let ps: Vec<String> = inv
            .dominant_periods
            .iter()
            .map(|p| p.map_or("-".into(), |v| format!("{v:.4}")))
            .collect();
        println!(
            "  dominant spectral period per coordinate [{}] (file's period {})",
            ps.join(", "),
            sys.model().period
        );
    }
    println!(
        "  Pesin entropy {:.4} (dysts {})   [{:.2} s]",
        inv.pesin_entropy,
        opt(ref_scalar("pesin_entropy_dysts")),
        inv.wall_seconds
    );
    Ok(())
}
