//! Model-free learning of the probability flow velocity from pairs of snapshots (Boffi &
//! Vanden-Eijnden's flocking paper, the "Stratonovich" loss): no drift, no score.
//!
//! For a pair z → z′ of consecutive stationary snapshots Δt apart, the network v_θ minimises
//!
//!   L(v) = E[ Δt |v(z′)|² − (v(z) + v(z′))·(z′ − z) ] / (Δt K),
//!
//! (K components per sample). The midpoint sum is a Stratonovich integral: E[½(v(z) + v(z′))·dz]
//! = Δt E[v·b + D:∇v] + O(Δt²) = Δt E[v·(b − Ds)] by parts, so L = E|v − v*|²/K − E|v*|²/K +
//! O(Δt), minimised by the probability flow velocity v* = b − Ds. The bias is first order in
//! Δt (the snapshot spacing times the fastest relaxation rate); the statistical error of a fitted
//! v falls like √(2D/(Δt · pairs)).
//!
//! The network's two heads are read as v_x and v_g (unscaled outputs). Scores follow where the
//! noise is non-degenerate: s_g = −g − v_g/γ, and s_x = (b_x − v_x)/ε when ε > 0.

use super::network::{NetworkKind, ScoreNet, Shapes};
use super::train::{forward, Dataset, Inputs};
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;

/// A batch of snapshot pairs on the host.
pub struct FlowBatch {
    /// Rows: B·N (whole configurations) or B (particles of the local transformer).
    pub rows: usize,
    /// Network inputs: the B samples at z, then the same B at z′.
    pub inputs: Inputs,
    /// Displacements z′ − z of the rows (minimum image in x), rows × d and rows × c.
    pub dx: Vec<f32>,
    pub dg: Vec<f32>,
    /// Snapshot spacing Δt.
    pub dt: f64,
}

/// Draws `size` pairs from `pairs` (indices of consecutive configurations).
pub fn make_flow_batch(
    ds: &Dataset,
    kind: NetworkKind,
    neighbours: usize,
    pairs: &[(usize, usize)],
    size: usize,
    rng: &mut impl Rng,
) -> FlowBatch {
    let (n, d, c) = (ds.n, ds.dim, ds.c);
    let drawn: Vec<(usize, usize)> = (0..size)
        .map(|_| pairs[rng.random_range(0..pairs.len())])
        .collect();
    let (mut dx, mut dg) = (Vec::new(), Vec::new());
    if kind == NetworkKind::LocalTransformer {
        let bx = ds.system.particles().expect("particle data").bx;
        let particles: Vec<usize> = (0..size).map(|_| rng.random_range(0..n)).collect();
        let (mut rel, mut gn) = (Vec::new(), Vec::new());
        for side in 0..2 {
            for (&(a, b), &i) in drawn.iter().zip(&particles) {
                let conf = if side == 0 { a } else { b };
                let mut xw = ds.x[conf].clone();
                for v in xw.iter_mut() {
                    bx.wrap(v);
                }
                let grid = super::features::KnnGrid::new(&xw, &bx, 4.0);
                let nb = grid.nearest(&xw, &bx, i, neighbours);
                super::features::push_tokens(
                    &xw,
                    &ds.g[conf],
                    &bx,
                    c,
                    i,
                    &nb,
                    neighbours,
                    &mut rel,
                    &mut gn,
                );
            }
        }
        for (&(a, b), &i) in drawn.iter().zip(&particles) {
            dx.extend((0..d).map(|e| bx.min_image(ds.x[b][i * d + e] - ds.x[a][i * d + e]) as f32));
            dg.extend((0..c).map(|e| (ds.g[b][i * c + e] - ds.g[a][i * c + e]) as f32));
        }
        return FlowBatch {
            rows: size,
            inputs: Inputs::Local {
                p: 2 * size,
                rel,
                gn,
            },
            dx,
            dg,
            dt: ds.pair_dt,
        };
    }
    let (mut xs, mut gs) = (Vec::new(), Vec::new());
    for side in 0..2 {
        for &(a, b) in &drawn {
            let conf = if side == 0 { a } else { b };
            xs.extend(ds.x[conf].iter().map(|&v| v as f32));
            gs.extend(ds.g[conf].iter().map(|&v| v as f32));
        }
    }
    for &(a, b) in &drawn {
        dx.extend(
            ds.x[a]
                .iter()
                .zip(&ds.x[b])
                .map(|(u, w)| ds.system.min_image(w - u) as f32),
        );
        dg.extend(ds.g[a].iter().zip(&ds.g[b]).map(|(u, w)| (w - u) as f32));
    }
    FlowBatch {
        rows: size * n,
        inputs: Inputs::configurations(kind, 2 * size, n, d, c, xs, gs),
        dx,
        dg,
        dt: ds.pair_dt,
    }
}

/// The Stratonovich loss of a batch (see the module docs): a scalar tensor, ≈ E|v − v*|²/K −
/// E|v*|²/K.
pub fn flow_loss(net: &ScoreNet, fb: &FlowBatch, shapes: Shapes, device: &Device) -> Tensor<1> {
    let (d, c, r) = (shapes.dim, shapes.propulsion, fb.rows);
    let (vx, vg) = forward(net, &fb.inputs, shapes, device);
    let t = |v: &[f32], cols: usize| -> Tensor<2> {
        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device).reshape([r, cols])
    };
    let mut heads = vec![(vg, t(&fb.dg, c))];
    if let Some(vx) = vx {
        heads.push((vx, t(&fb.dx, d)));
    }
    let mut total: Option<Tensor<1>> = None;
    for (v, dz) in heads {
        let now = v.clone().narrow(0, 0, r);
        let next = v.narrow(0, r, r);
        let term = next.clone().square().sum().mul_scalar(fb.dt) - (now + next).mul(dz).sum();
        total = Some(match total {
            None => term,
            Some(s) => s + term,
        });
    }
    total
        .expect("the g head")
        .div_scalar(fb.dt * (r * (c + d)) as f64)
}
