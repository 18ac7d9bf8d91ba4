//! Forecasting on the short protocol's Lorenz data set (train 1000, forecast 200 from a 1000-step
//! context, 100 points per period): fit + forecast of the native models at one fixed
//! configuration each, and the full dysts metric set on one forecast. These are the units of
//! `phaseflow forecast bench`, which runs each model's whole grid (2 fits and forecasts per
//! configuration per system) over the catalogue — the end-to-end timing is
//! `benches/forecast_benchmark.py` (105–112 s for 135 systems × 9 models on 2 cores).
//!
//! Measured here (one core): parroting 12 µs, linear 58 µs, NVAR 0.26 ms, random features 18 ms,
//! ESN 28 ms, MLP (burn, 300 Adam steps) 0.33 s; all metrics of one 200 × 3 forecast 5.1 ms.
//!
//! `cargo bench --bench forecast`

use criterion::{criterion_group, criterion_main, Criterion};
use phaseflow::forecast::data::{generate, Protocol};
use phaseflow::forecast::metrics::{compute_metrics, MetricOptions, SmapeScale};
use phaseflow::forecast::models::{build, grid, ModelContext};
use std::path::Path;

fn bench(c: &mut Criterion) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/lorenz.toml");
    let ds = generate(&file, &Protocol::named("short", 100.0).unwrap()).unwrap();
    let ctx = ModelContext {
        points_per_period: 100.0,
        seed: 0,
    };
    let case = &ds.tests[0];
    let mut g = c.benchmark_group("forecast");
    g.sample_size(10);
    for model in [
        "parroting",
        "linear",
        "nvar",
        "esn",
        "random_features",
        #[cfg(feature = "learn")]
        "mlp",
    ] {
        let h = grid(model, &ctx).unwrap().remove(0);
        g.bench_function(format!("{model}_fit_and_forecast_lorenz"), |b| {
            b.iter(|| {
                let mut f = build(model, &h, &ctx).unwrap();
                f.fit(&ds.train).unwrap();
                f.predict(&case.context, 200).unwrap()
            })
        });
    }
    let mut f = build("nvar", &grid("nvar", &ctx).unwrap()[0], &ctx).unwrap();
    f.fit(&ds.train).unwrap();
    let pred = f.predict(&case.context, 200).unwrap();
    let opts = MetricOptions {
        smape_scale: SmapeScale::Percent200,
        mase_train: Some(ds.train.values.clone()),
        ..MetricOptions::default()
    };
    g.bench_function("compute_metrics_200x3", |b| {
        b.iter(|| compute_metrics(&case.truth.values, &pred.values, 3, &opts))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
