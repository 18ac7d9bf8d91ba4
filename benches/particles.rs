//! Particle engine throughput in particle-steps per second (criterion reports elements/s):
//! 2-D ABP–WCA at φ = 0.6, Pe = 150 (the LAMMPS comparison system of benches/compare_lammps.py)
//! and the paper's AOUP MIPS (soft repulsion, φ = 0.5), on one thread and on all threads, for
//! N = 4096 and 32768. Each sample advances the same state by 20 steps (forces, Verlet list
//! upkeep and noise included; no output).
//!
//! `cargo bench --bench particles`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use phaseflow::particles::{ParticleModel, Simulation};
use std::path::PathBuf;

fn model(file: &str, n: usize) -> ParticleModel {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("systems/active")
        .join(file);
    ParticleModel::load(&path, &[("N".into(), n as f64)]).unwrap()
}

fn bench(c: &mut Criterion) {
    let steps = 20u64;
    for (file, label) in [
        ("abp_mips.toml", "abp_wca_phi0.6_pe150"),
        ("mips.toml", "aoup_mips_phi0.5"),
    ] {
        let mut g = c.benchmark_group(label);
        g.sample_size(10);
        for n in [4096usize, 32768] {
            g.throughput(Throughput::Elements(n as u64 * steps));
            for threads in [1usize, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut sim = Simulation::new(model(file, n), 1, 0);
                // relax the lattice start a little so the neighbour lists look like a fluid's
                pool.install(|| (0..200).for_each(|_| sim.step()));
                g.bench_function(format!("N{n}_threads{threads}"), |b| {
                    b.iter(|| pool.install(|| (0..steps).for_each(|_| sim.step())))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
