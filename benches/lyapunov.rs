//! Lorenz (σ = 10, ρ = 28, β = 8/3) full Lyapunov spectrum on one core: transient 20, span 5000
//! time units, DOP853 at rtol = atol = 1e-7, QR every 0.1 time units — settings at which the
//! trace identity Σλ = −(σ + 1 + β) holds to 4e-7 (measured over 5 initial conditions: 3.8e-7 to
//! 3.9e-7; the QR interval matters more than the tolerance: with QR every time unit the third
//! tangent vector shrinks by e^−14.6 between QRs, the absolute tolerance then dominates its
//! relative error and the identity is only good to 1e-6…3e-6 even at 3e-8) and λ1 is within
//! its statistical error (±0.0025 for this span) of 0.9056.
//! Goal of the invariants issue: < 50 ms (DynamicalSystems.jl's published figure: 226 ms).
//! Measured here: 44 ms (57 ms before the store-forwarding fix in the variational right-hand
//! side and the shorter QR interval).
//!
//! `cargo bench --bench lyapunov`

use criterion::{criterion_group, criterion_main, Criterion};
use phaseflow::analysis::lyapunov::{spectrum, SpectrumOptions};
use phaseflow::systems::{CompiledSystem, Overrides, SystemSpec};
use std::path::Path;

const LORENZ: &str = "name = \"Lorenz\"\nkind = \"flow\"\nvariables = [\"x\", \"y\", \"z\"]\ninitial_conditions = [1.0, 1.0, 20.0]\n[parameters]\nsigma = 10.0\nrho = 28.0\nbeta = 2.6666666666666665\n[equations]\nx = \"sigma * (y - x)\"\ny = \"x * (rho - z) - y\"\nz = \"x * y - beta * z\"\n";

fn bench(c: &mut Criterion) {
    let spec = SystemSpec::from_str_at(LORENZ, Path::new("lorenz.toml")).unwrap();
    let sys = CompiledSystem::new(spec, &Overrides::default()).unwrap();
    let opts = SpectrumOptions {
        transient: 20.0,
        span: 5000.0,
        qr_interval: 0.1,
        rtol: 1e-7,
        atol: 1e-7,
        ..SpectrumOptions::default()
    };
    let mut g = c.benchmark_group("lyapunov");
    g.sample_size(10);
    g.bench_function("lorenz_full_spectrum_T5000", |b| {
        b.iter(|| spectrum(&sys, 0.0, &[1.0, 1.0, 20.0], &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
