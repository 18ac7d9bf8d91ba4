//! What burn 0.22 does not ship for the paper's training recipe: the RAdam optimiser (Liu et al.,
//! "On the variance of the adaptive learning rate and beyond", ICLR 2020), an exponential moving
//! average (EMA) of the parameters, and the warm-up + cosine learning-rate schedule.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{Optimizer, RecordState, StateSink, StateSource};
use burn::tensor::{Device, Tensor, TensorData};

/// RAdam: Adam whose adaptive step is switched on only once the variance of the adaptive rate
/// is tractable. With ρ∞ = 2/(1 − β2) − 1 and ρ_t = ρ∞ − 2tβ2^t/(1 − β2^t):
/// m_t = β1 m + (1 − β1) g, v_t = β2 v + (1 − β2) g², m̂ = m_t/(1 − β1^t);
/// if ρ_t > 5: θ ← θ − lr · r_t · m̂ · √(1 − β2^t)/(√v_t + ε) with
/// r_t = √((ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t)); else θ ← θ − lr · m̂ (momentum SGD),
/// as PyTorch's `torch.optim.RAdam`.
#[derive(Clone, Debug)]
pub struct RAdam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for RAdam {
    fn default() -> Self {
        RAdam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Per-parameter state of [`RAdam`]: first and second moments and the step count (kept as a
/// one-element tensor so that it is recorded with the moments).
#[derive(Clone)]
pub struct RAdamState<const D: usize> {
    m: Tensor<D>,
    v: Tensor<D>,
    t: Tensor<1>,
}

impl<const D: usize> RecordState for RAdamState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(prefix, "m", self.m.clone().into_data());
        out.push_tensor(prefix, "v", self.v.clone().into_data());
        out.push_tensor(prefix, "t", self.t.clone().into_data());
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        Some(RAdamState {
            m: Tensor::from_data(src.take_tensor(prefix, "m")?, device),
            v: Tensor::from_data(src.take_tensor(prefix, "v")?, device),
            t: Tensor::from_data(src.take_tensor(prefix, "t")?, device),
        })
    }
}

impl Optimizer for RAdam {
    type State<const D: usize> = RAdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta1, self.beta2);
        let (m, v, t) = match state {
            Some(s) => {
                let t = s.t.clone().into_scalar::<f32>() as f64 + 1.0;
                (
                    s.m.mul_scalar(b1).add(grad.clone().mul_scalar(1.0 - b1)),
                    s.v.mul_scalar(b2).add(grad.square().mul_scalar(1.0 - b2)),
                    t,
                )
            }
            None => (
                grad.clone().mul_scalar(1.0 - b1),
                grad.square().mul_scalar(1.0 - b2),
                1.0,
            ),
        };
        let bc1 = 1.0 - b1.powf(t);
        let bc2 = 1.0 - b2.powf(t);
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
        let update = if rho_t > 5.0 {
            let r = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .sqrt();
            m.clone()
                .mul_scalar(lr * r * bc2.sqrt() / bc1)
                .div(v.clone().sqrt().add_scalar(self.eps))
        } else {
            m.clone().mul_scalar(lr / bc1)
        };
        let device = tensor.device();
        let state = RAdamState {
            m,
            v,
            t: Tensor::from_data(TensorData::new(vec![t as f32], [1]), &device),
        };
        (tensor - update, Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        RAdamState {
            m: state.m.to_device(device),
            v: state.v.to_device(device),
            t: state.t.to_device(device),
        }
    }
}

/// Learning rate at optimisation step `step` (0-based): linear warm-up from 0 to `lr` over
/// `warmup` steps, then a cosine decay to `lr_min` at `total` steps.
pub fn learning_rate(step: usize, lr: f64, lr_min: f64, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let u = ((step - warmup) as f64 / span).min(1.0);
    lr_min + 0.5 * (lr - lr_min) * (1.0 + (std::f64::consts::PI * u).cos())
}

/// Parameters of a module, flattened, in visiting order.
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // the inner (non-autodiff) tensor: the average must not grow an autodiff graph
        let v = param.val().inner();
        let n = v.shape().num_elements();
        self.0.push(v.reshape([n]));
    }
}

/// Replaces the parameters of a module, in visiting order.
struct Replace<'a>(std::slice::Iter<'a, Tensor<1>>);

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let new = self.0.next().expect("EMA: parameter count changed").clone();
        param.map(|old| {
            let dims = old.dims();
            let v = new.reshape(dims);
            if old.is_require_grad() || old.device().is_autodiff() {
                Tensor::from_inner(v)
            } else {
                v
            }
        })
    }
}

/// Exponential moving average of a module's parameters: θ̄ ← d·θ̄ + (1 − d)·θ after every step
/// (the paper: d = 0.9999), with the bias correction of a zero start folded into d_t =
/// min(d, (1 + t)/(10 + t)) so that early averages follow the parameters.
pub struct Ema {
    pub decay: f64,
    pub updates: u64,
    values: Vec<Tensor<1>>,
}

impl Ema {
    /// Starts the average at the module's current parameters.
    pub fn new<M: Module>(module: &M, decay: f64) -> Ema {
        let mut c = Collect(Vec::new());
        module.visit(&mut c);
        Ema {
            decay,
            updates: 0,
            values: c.0,
        }
    }

    /// Folds in the module's current parameters.
    pub fn update<M: Module>(&mut self, module: &M) {
        let mut c = Collect(Vec::new());
        module.visit(&mut c);
        self.updates += 1;
        let t = self.updates as f64;
        let d = self.decay.min((1.0 + t) / (10.0 + t));
        for (e, p) in self.values.iter_mut().zip(c.0) {
            *e = e.clone().mul_scalar(d).add(p.mul_scalar(1.0 - d));
        }
    }

    /// A copy of `module` carrying the averaged parameters.
    pub fn apply<M: Module>(&self, module: M) -> M {
        module.map(&mut Replace(self.values.iter()))
    }
}
