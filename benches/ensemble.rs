//! Lorenz ensemble with fixed-step RK4, parallel over members with rayon: throughput in
//! trajectory-steps per second (criterion reports elements/s). Target of the catalogue issue:
//! ≥ 2e8 trajectory-steps/s on 2 cores.
//!
//! `cargo bench --bench ensemble`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use phaseflow::integrate::{Rk4, Rk4Batch};
use phaseflow::systems::{CompiledSystem, Overrides, System};
use rayon::prelude::*;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let sys = CompiledSystem::load(
        &format!("{}/systems/lorenz.toml", env!("CARGO_MANIFEST_DIR")),
        &Overrides::default(),
    )
    .unwrap();
    let d = sys.dim();
    let members = 1024usize;
    let steps = 1000usize;
    let h = 1e-3;
    let x0: Vec<f64> = (0..members)
        .flat_map(|k| [1.0 + 1e-3 * k as f64, 1.0, 20.0])
        .collect();
    let mut g = c.benchmark_group("lorenz_rk4_ensemble");
    g.throughput(Throughput::Elements((members * steps) as u64));
    g.sample_size(20);
    g.bench_function("1024x1000_steps", |b| {
        b.iter(|| {
            let mut xs = x0.clone();
            xs.par_chunks_mut(d * 64).for_each(|block| {
                let mut rk4 = Rk4::new(d);
                for x in block.chunks_mut(d) {
                    let mut t = 0.0;
                    for _ in 0..steps {
                        rk4.step(&sys, t, x, h);
                        t += h;
                    }
                }
            });
            black_box(xs)
        })
    });
    // structure-of-arrays blocks of 64 members, one batched (SIMD) kernel call per stage
    let lanes = 64usize;
    let soa0: Vec<f64> = x0
        .chunks(d * lanes)
        .flat_map(|block| {
            let mut soa = vec![0.0; d * lanes];
            for (l, x) in block.chunks(d).enumerate() {
                for k in 0..d {
                    soa[k * lanes + l] = x[k];
                }
            }
            soa
        })
        .collect();
    g.bench_function("1024x1000_steps_batched", |b| {
        b.iter(|| {
            let mut xs = soa0.clone();
            xs.par_chunks_mut(d * lanes).for_each(|block| {
                let mut rk4 = Rk4Batch::new(d, lanes);
                let mut t = 0.0;
                for _ in 0..steps {
                    rk4.step(&sys, t, block, h);
                    t += h;
                }
            });
            black_box(xs)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
