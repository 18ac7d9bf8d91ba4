//! One training step of the paper-size spatially local transformer (Boffi & Vanden-Eijnden 2024,
//! `benches/configs/mips_paper.toml`: k = 64 neighbours, embeddings 2 → 4 × 256 → 128, width 256,
//! 4 heads, 4 post-LayerNorm blocks, read-out MLP 4 × 256; 2 308 866 parameters) on a batch of
//! 1024 particles: forward on the + and the − perturbed token sets, denoising loss, backward,
//! RAdam update — on burn's CPU backend, with the binary's allocator (freed large blocks kept,
//! `phaseflow::block_cache`). Reports the time per step; samples/s = 1024 / that time.
//! `cargo bench --bench score`

use burn::optim::{GradientsParams, ModuleOptimizer};
use criterion::{criterion_group, criterion_main, Criterion};
use phaseflow::score::network::Shapes;
use phaseflow::score::optim::RAdam;
use phaseflow::score::train::{forward, Inputs, TrainConfig};

#[global_allocator]
static ALLOCATOR: phaseflow::block_cache::BlockCache = phaseflow::block_cache::BlockCache;

fn bench(c: &mut Criterion) {
    phaseflow::block_cache::enable(phaseflow::block_cache::default_budget());
    let cfg = TrainConfig::from_toml(include_str!("configs/mips_paper.toml")).unwrap();
    assert_eq!(cfg.network.neighbours, 64);
    let shapes = Shapes {
        n: 4096,
        dim: 2,
        propulsion: 2,
        learn_x: false,
        scale_x: 1.0,
        scale_g: 1.0,
        velocity: false,
    };
    let device = phaseflow::score::cpu_device();
    device.seed(0);
    let mut net = cfg.network.init(shapes, &device).unwrap();
    let mut optim = ModuleOptimizer::from(RAdam::default());
    let (p, k1) = (cfg.training.batch, cfg.network.neighbours + 1);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let rel: Vec<f32> = (0..p * k1 * 2).map(|_| 8.0 * next()).collect();
    let gn: Vec<f32> = (0..p * k1 * 2).map(|_| 2.0 * next()).collect();
    let target: Vec<f32> = (0..p * 2).map(|_| next()).collect();
    let inputs = Inputs::Local { p, rel, gn };
    let mut g = c.benchmark_group("score");
    g.sample_size(10);
    g.bench_function("local_transformer_paper_size_train_step_1024", |b| {
        b.iter(|| {
            // the + and the − side of the antithetic pair (same inputs: same work)
            let (_, sp) = forward(&net, &inputs, shapes, &device);
            let (_, sm) = forward(&net, &inputs, shapes, &device);
            let t = burn::tensor::Tensor::<2>::from_data(
                burn::tensor::TensorData::new(target.clone(), [p, 2]),
                &device,
            );
            let loss = (sp - t.clone()).square().mean() + (sm + t).square().mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(1e-4, net.clone(), grads);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
