//! Lorenz right-hand side + Jacobian: the JIT-compiled kernel loaded from `systems/lorenz.toml`
//! against hand-written Rust and the reference tree interpreter.
//!
//! Target (spine issue): JIT within 1.5× of hand-written Rust. Run with
//! `cargo bench --bench rhs_jacobian`; criterion prints the three timings side by side.

use criterion::{criterion_group, criterion_main, Criterion};
use phaseflow::systems::{
    CompiledSystem, Interpreted, Jacobian, Model, Overrides, System, SystemSpec,
};
use std::hint::black_box;
use std::path::Path;

/// Hand-written Lorenz f and J (row-major), parameters in sorted-name order (beta, rho, sigma).
/// Not inlined, like the JIT kernel, which is called through a function pointer.
#[inline(never)]
fn lorenz_hand(x: &[f64; 3], p: &[f64; 3], f: &mut [f64; 3], j: &mut [f64; 9]) {
    let (beta, rho, sigma) = (p[0], p[1], p[2]);
    f[0] = sigma * (x[1] - x[0]);
    f[1] = x[0] * (rho - x[2]) - x[1];
    f[2] = x[0] * x[1] - beta * x[2];
    *j = [
        -sigma,
        sigma,
        0.0,
        rho - x[2],
        -1.0,
        -x[0],
        x[1],
        x[0],
        -beta,
    ];
}

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/lorenz.toml");
    let spec = SystemSpec::load(&path).expect("systems/lorenz.toml");
    let sys = CompiledSystem::new(spec.clone(), &Overrides::default()).unwrap();
    let interp = Interpreted::new(Model::build(&spec, &Overrides::default()).unwrap());
    let p: [f64; 3] = sys.params().try_into().unwrap();
    let x = [1.5, -2.0, 20.0];
    let mut g = c.benchmark_group("lorenz_rhs_jacobian");
    g.bench_function("hand_written", |b| {
        let mut f = [0.0; 3];
        let mut j = [0.0; 9];
        b.iter(|| {
            lorenz_hand(black_box(&x), black_box(&p), &mut f, &mut j);
            black_box((&f, &j));
        })
    });
    g.bench_function("jit", |b| {
        let mut f = [0.0; 3];
        let mut j = [0.0; 9];
        b.iter(|| {
            sys.rhs_and_jacobian(0.0, black_box(&x), &mut f, &mut j);
            black_box((&f, &j));
        })
    });
    g.bench_function("jit_separate_calls", |b| {
        let mut f = [0.0; 3];
        let mut j = [0.0; 9];
        b.iter(|| {
            sys.rhs(0.0, black_box(&x), &mut f);
            sys.jacobian(0.0, black_box(&x), &mut j);
            black_box((&f, &j));
        })
    });
    g.bench_function("interpreter", |b| {
        let mut f = [0.0; 3];
        let mut j = [0.0; 9];
        b.iter(|| {
            interp.rhs(0.0, black_box(&x), &mut f);
            interp.jacobian(0.0, black_box(&x), &mut j);
            black_box((&f, &j));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
