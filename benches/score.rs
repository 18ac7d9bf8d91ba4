//! One training step of the paper-size spatially local transformer (Boffi & Vanden-Eijnden 2024:
//! k = 64 neighbours, width 256, 4 heads, 4 post-LayerNorm blocks, read-out MLP 4 × 256; ≈ 2.3 M
//! parameters) on a batch of 1024 particles: forward on the ± perturbed token sets, denoising loss,
//! backward, RAdam update — on burn's CPU backend. Reports the time per step; samples/s =
//! 1024 / that time. `cargo bench --bench score`

use burn::optim::{GradientsParams, ModuleOptimizer};
use criterion::{criterion_group, criterion_main, Criterion};
use phaseflow::score::network::Shapes;
use phaseflow::score::optim::RAdam;
use phaseflow::score::train::{forward, Inputs, TrainConfig};

fn bench(c: &mut Criterion) {
    let cfg = TrainConfig::from_toml(
        "[network]\nkind = \"local_transformer\"\nwidth = 256\nheads = 4\nblocks = 4\nfeed_forward = 256\nneighbours = 64\nhidden = [256, 256, 256, 256]\n",
    )
    .unwrap();
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
    let (p, k1) = (1024usize, 65usize);
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
            let (_, sg) = forward(&net, &inputs, shapes, &device);
            let t = burn::tensor::Tensor::<2>::from_data(
                burn::tensor::TensorData::new(target.clone(), [p, 2]),
                &device,
            );
            let loss = (sg - t).square().mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(1e-4, net.clone(), grads);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
