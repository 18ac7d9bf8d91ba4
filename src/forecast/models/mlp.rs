//! A neural forecaster trained with burn: an MLP on delay vectors predicting the next increment.
//!
//! On the standardised series z (training mean and std), the input is the delay vector
//! u_t = (z_t, z_{t−s}, …, z_{t−(k−1)s}) and the target the increment z_{t+1} − z_t divided by its
//! per-component training std. The network is [`crate::score::network::Mlp`] (GELU between the
//! linear layers) — the same module as the flat score network — trained full-batch with Adam on
//! the mean squared error, learning rate with a cosine decay. The forecast iterates the learned
//! step from the end of the context. CPU backend (`flex`); the initial weights come from the
//! device's generator, seeded under a process-wide lock so that fits running in parallel stay
//! reproducible. The backend parallelises its kernels with rayon, whose work splitting (and so
//! the order of floating-point sums) depends on the load of the pool; training and forecasting
//! therefore run in a one-thread pool of their own, so results are bit-identical whatever the
//! thread count (the benchmark parallelises over systems and models instead).

use super::Delays;
use crate::forecast::{ForecastError, Forecaster, Scaler, Series};
use crate::score::network::Mlp;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use std::sync::Mutex;

/// Settings of an [`MlpForecaster`].
#[derive(Debug, Clone, PartialEq)]
pub struct MlpSettings {
    pub lags: usize,
    pub skip: usize,
    pub hidden: Vec<usize>,
    pub steps: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// The MLP forecaster.
#[derive(Debug)]
pub struct MlpForecaster {
    pub settings: MlpSettings,
    fitted: Option<Fitted>,
}

#[derive(Debug)]
struct Fitted {
    scaler: Scaler,
    target_std: Vec<f64>,
    net: Mlp,
    device: Device,
}

/// Serialises seeding + initialisation of the device generator across threads.
static INIT_LOCK: Mutex<()> = Mutex::new(());

impl MlpForecaster {
    pub fn new(settings: MlpSettings) -> MlpForecaster {
        MlpForecaster {
            settings,
            fitted: None,
        }
    }

    fn delays(&self) -> Delays {
        Delays::new(self.settings.lags, self.settings.skip)
    }
}

impl Forecaster for MlpForecaster {
    fn name(&self) -> String {
        let s = &self.settings;
        format!(
            "mlp(lags={},skip={},hidden={:?},steps={})",
            s.lags, s.skip, s.hidden, s.steps
        )
    }

    fn fit(&mut self, train: &Series) -> Result<(), ForecastError> {
        let pool = single_thread(&self.name())?;
        pool.install(|| self.fit_here(train))
    }

    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        let pool = single_thread(&self.name())?;
        pool.install(|| self.predict_here(context, horizon))
    }
}

/// A one-thread rayon pool (see the module docs).
fn single_thread(model: &str) -> Result<rayon::ThreadPool, ForecastError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| ForecastError::Failed {
            model: model.into(),
            msg: format!("thread pool: {e}"),
        })
}

impl MlpForecaster {
    fn fit_here(&mut self, train: &Series) -> Result<(), ForecastError> {
        let s = self.settings.clone();
        let d = train.dim;
        let delays = self.delays();
        let span = delays.span();
        if train.len() < span + 2 {
            return Err(ForecastError::TooShort {
                model: self.name(),
                len: train.len(),
                need: span + 2,
            });
        }
        let scaler = Scaler::fit(train);
        let z = scaler.apply(train).values;
        let rows = train.len() - span;
        let q = delays.lags * d;
        let mut u = Vec::with_capacity(rows * q);
        let mut inc = Vec::with_capacity(rows * d);
        for t in span - 1..train.len() - 1 {
            delays.push(&z, d, t, &mut u);
            for k in 0..d {
                inc.push(z[(t + 1) * d + k] - z[t * d + k]);
            }
        }
        let x: Vec<f32> = u.iter().map(|v| *v as f32).collect();
        let inc_series = Series::new(inc, d);
        let target_std = Scaler::fit(&inc_series).std;
        let y: Vec<f32> = inc_series
            .values
            .chunks_exact(d)
            .flat_map(|r| r.iter().zip(&target_std).map(|(v, s)| (*v / s) as f32))
            .collect();
        let device = crate::score::cpu_device();
        let mut net = {
            let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            device.seed(s.seed);
            let net = Mlp::new(q, &s.hidden, d, &device);
            // burn initialises parameters lazily, on first use: one forward pass here draws
            // them while the lock is held
            let _ = net.forward(Tensor::<2>::zeros([1, q], &device));
            net
        };
        let xs = Tensor::<2>::from_data(TensorData::new(x, [rows, q]), &device);
        let ys = Tensor::<2>::from_data(TensorData::new(y, [rows, d]), &device);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        for step in 0..s.steps {
            let lr = s.learning_rate
                * 0.5
                * (1.0 + (std::f64::consts::PI * step as f64 / s.steps as f64).cos());
            let err = net.forward(xs.clone()) - ys.clone();
            let loss = err.clone().mul(err).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
        }
        self.fitted = Some(Fitted {
            scaler,
            target_std,
            net: net.valid(),
            device: device.inner(),
        });
        Ok(())
    }

    fn predict_here(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        let f = self
            .fitted
            .as_ref()
            .ok_or(ForecastError::NotFitted { model: self.name() })?;
        let d = context.dim;
        let delays = self.delays();
        let mut u = Vec::new();
        super::rollout(
            &self.name(),
            &f.scaler,
            context,
            delays.span(),
            horizon,
            |z, t, next| {
                u.clear();
                delays.push(z, d, t, &mut u);
                let q = u.len();
                let u32s: Vec<f32> = u.iter().map(|v| *v as f32).collect();
                let inp = Tensor::<2>::from_data(TensorData::new(u32s, [1, q]), &f.device);
                let step = crate::score::tensor_values(f.net.forward(inp));
                for k in 0..d {
                    next[k] = z[t * d + k] + step[k] * f.target_std[k];
                }
            },
        )
    }
}
