//! Forecasters without trainable weights: naive (last value), mean, seasonal naive and context
//! parroting.

use crate::forecast::{ForecastError, Forecaster, Series};

fn empty_context(model: &str) -> ForecastError {
    ForecastError::TooShort {
        model: model.into(),
        len: 0,
        need: 1,
    }
}

/// Repeats the last value of the context: ŷ_{C+k} = x_{C−1}.
#[derive(Debug, Clone, Default)]
pub struct Naive;

impl Forecaster for Naive {
    fn name(&self) -> String {
        "naive".into()
    }
    fn fit(&mut self, _train: &Series) -> Result<(), ForecastError> {
        Ok(())
    }
    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        if context.is_empty() {
            return Err(empty_context("naive"));
        }
        Ok(Series::new(context.last().repeat(horizon), context.dim))
    }
}

/// Forecasts the per-component mean of the training series: ŷ_{C+k} = mean(train).
#[derive(Debug, Clone, Default)]
pub struct Mean {
    mean: Option<Vec<f64>>,
}

impl Forecaster for Mean {
    fn name(&self) -> String {
        "mean".into()
    }
    fn fit(&mut self, train: &Series) -> Result<(), ForecastError> {
        if train.is_empty() {
            return Err(empty_context("mean"));
        }
        self.mean = Some(train.moments().0);
        Ok(())
    }
    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        let m = self.mean.as_ref().ok_or(ForecastError::NotFitted {
            model: "mean".into(),
        })?;
        Ok(Series::new(m.repeat(horizon), context.dim))
    }
}

/// Repeats the last season of the context: ŷ_{C+k} = x_{C−s+(k mod s)} for a season of `s` steps.
#[derive(Debug, Clone)]
pub struct SeasonalNaive {
    pub season: usize,
}

impl Forecaster for SeasonalNaive {
    fn name(&self) -> String {
        format!("seasonal_naive(season={})", self.season)
    }
    fn fit(&mut self, _train: &Series) -> Result<(), ForecastError> {
        Ok(())
    }
    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        let s = self.season.max(1);
        if context.len() < s {
            return Err(ForecastError::TooShort {
                model: self.name(),
                len: context.len(),
                need: s,
            });
        }
        let c = context.len();
        let mut out = Vec::with_capacity(horizon * context.dim);
        for k in 0..horizon {
            out.extend_from_slice(context.row(c - s + k % s));
        }
        Ok(Series::new(out, context.dim))
    }
}

/// Context parroting (Zhang & Gilpin 2025): find the earlier stretch of the context that best
/// matches its last `m` steps and copy what followed it.
///
/// With the context x_0 … x_{C−1}, each component scaled by its standard deviation over the
/// context, the match ends at j* = argmin_{m ≤ j ≤ C−1} Σ_{i<m} |x_{j−m+i} − x_{C−m+i}|² (the query
/// itself, j = C, excluded; ties go to the latest j) and the forecast continues the sequence
/// ŷ_{C+k} = x̃_{j*+k}, where x̃ is the context followed by the forecast itself — so when the
/// copied stretch runs past the end of the context, the parrot repeats its own output (a periodic
/// continuation with period C − j*). No training: `fit` does nothing.
#[derive(Debug, Clone)]
pub struct Parroting {
    pub match_length: usize,
}

impl Forecaster for Parroting {
    fn name(&self) -> String {
        format!("parroting(match={})", self.match_length)
    }
    fn fit(&mut self, _train: &Series) -> Result<(), ForecastError> {
        Ok(())
    }
    fn predict(&self, context: &Series, horizon: usize) -> Result<Series, ForecastError> {
        let m = self.match_length.max(1);
        let c = context.len();
        let d = context.dim;
        if c < m + 1 {
            return Err(ForecastError::TooShort {
                model: self.name(),
                len: c,
                need: m + 1,
            });
        }
        let (_, std) = context.moments();
        let w: Vec<f64> = std
            .iter()
            .map(|s| if *s > 0.0 { 1.0 / (s * s) } else { 1.0 })
            .collect();
        let x = &context.values;
        let query = &x[(c - m) * d..c * d];
        let mut best = (f64::INFINITY, c - 1);
        for j in m..c {
            let cand = &x[(j - m) * d..j * d];
            let mut dist = 0.0;
            for (i, (a, b)) in cand.iter().zip(query).enumerate() {
                let e = a - b;
                dist += e * e * w[i % d];
                if dist > best.0 {
                    break;
                }
            }
            if dist <= best.0 {
                best = (dist, j);
            }
        }
        let mut ext = x.clone();
        ext.reserve(horizon * d);
        for k in 0..horizon {
            let src = best.1 + k;
            for i in 0..d {
                let v = ext[src * d + i];
                ext.push(v);
            }
        }
        Ok(Series::new(ext.split_off(c * d), d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(n: usize, period: f64) -> Series {
        Series::new(
            (0..n)
                .map(|t| (2.0 * std::f64::consts::PI * t as f64 / period).sin())
                .collect(),
            1,
        )
    }

    #[test]
    fn baselines_by_hand() {
        let s = Series::new(vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0], 2);
        let p = Naive.predict(&s, 2).unwrap();
        assert_eq!(p.values, vec![3.0, 30.0, 3.0, 30.0]);
        let mut m = Mean::default();
        m.fit(&s).unwrap();
        assert_eq!(m.predict(&s, 1).unwrap().values, vec![2.0, 20.0]);
        let sn = SeasonalNaive { season: 2 };
        assert_eq!(
            sn.predict(&s, 3).unwrap().values,
            vec![2.0, 20.0, 3.0, 30.0, 2.0, 20.0]
        );
    }

    #[test]
    fn parroting_continues_a_periodic_signal_exactly() {
        // a period of exactly 20 steps: the best match is one period back, and the copy (which
        // runs past the context end after 20 steps and then repeats itself) is exact
        let s = sine(200, 20.0);
        let p = Parroting { match_length: 10 }.predict(&s, 50).unwrap();
        let truth = sine(250, 20.0).tail(50);
        for (a, b) in p.values.iter().zip(&truth.values) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert!(Parroting { match_length: 10 }
            .predict(&sine(5, 20.0), 3)
            .is_err());
    }
}
