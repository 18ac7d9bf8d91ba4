//! The benchmark runner behind `phaseflow forecast bench`.
//!
//! For every system: the data set is generated once (`DIR/data/NAME.h5`, reused when its
//! protocol matches). For every (system, model) pair, in parallel over pairs (rayon):
//!
//! 1. **Tuning** (native models): each configuration of the model's grid is fitted on the first
//!    `train − validation` steps of the training series and forecasts the last `validation` steps
//!    from them; the configuration with the lowest sMAPE (0–200) wins (ties: the first). Non-finite
//!    forecasts score 200. External models are not tuned.
//! 2. **Test**: the chosen configuration is refitted on the whole training series and forecasts
//!    `horizon` steps after the context of every test trajectory. Non-finite forecast values
//!    (divergence) are replaced by the last finite value of that component (or the context's last
//!    value) and the case is flagged `diverged`.
//! 3. **Scores** per test trajectory: every metric of [`super::metrics::compute_metrics`], the
//!    valid prediction time in steps and in Lyapunov times (steps · dt · λ_max) and the sMAPE
//!    against the horizon; the system's score is the mean over its test trajectories.
//!
//! Results go to `DIR/results/NAME/MODEL.json` (settings, chosen hyperparameters, the validation
//! scores of the whole grid, forecasts, metrics, and for an external model the command that
//! produced them); a pair whose file exists without an error and with the same settings
//! (protocol, threshold, tuning, pinned hyperparameters, external command) is skipped, so an
//! interrupted run resumes; a failed pair, or one whose settings changed, is computed again.
//! Cancelling [`BenchOptions::cancel`] (Ctrl-C) stops the run: running external programs are
//! killed, pairs not finished are not written, and the run returns an "interrupted" error.
//! Finally [`finish`] (the records → [`report`]) writes `DIR/leaderboard.csv`, `DIR/summary.md`
//! and the plots. With [`BenchOptions::shard`] only the shard's systems run and the records go
//! to a shard file instead; [`merge_shards`] writes the report from the union of the shards'
//! records through the same [`finish`].

use super::data::{self, Dataset, Protocol};
use super::external::{External, RequestInfo};
use super::metrics;
use super::models::{self, Hyper, ModelContext};
use super::{Forecaster, Series};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// JSON has no NaN or infinity (serde_json writes them as null): metric maps and curves read
/// null back as NaN, validation scores as +∞ (a failed configuration).
mod json_nan {
    use super::Hyper;
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;

    pub fn map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let m = BTreeMap::<String, Option<f64>>::deserialize(d)?;
        Ok(m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
            .collect())
    }

    pub fn vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let v = Vec::<Option<f64>>::deserialize(d)?;
        Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
    }

    pub fn validation<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Hyper, f64)>, D::Error> {
        let v = Vec::<(Hyper, Option<f64>)>::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(h, x)| (h, x.unwrap_or(f64::INFINITY)))
            .collect())
    }
}

/// Settings of a benchmark run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Definition files.
    pub systems: Vec<PathBuf>,
    /// Native model names (see [`models::NATIVE`]).
    pub models: Vec<String>,
    /// External models: (name, shell command).
    pub external: Vec<(String, String)>,
    pub protocol: Protocol,
    pub out: PathBuf,
    /// Valid-prediction-time threshold on the cumulative sMAPE (0–200 scale).
    pub vpt_threshold: f64,
    /// Tune native models on the validation split (else: the first grid configuration).
    pub tune: bool,
    /// Pinned hyperparameters: (model, name, value) replace that name in every configuration of
    /// the model's grid (or add it). Checked against [`models::check_hyperparameter`].
    pub pinned: Vec<(String, String, f64)>,
    /// Longest run of one call of an external program ([`External::timeout`]).
    pub external_timeout: std::time::Duration,
    /// Stops the run (and kills running external programs) when cancelled.
    pub cancel: crate::control::Cancel,
    /// Run only this part of the systems (system `k` of [`BenchOptions::systems`] belongs to
    /// shard `k mod N`) and write a shard file instead of the leaderboard ([`shard_path`];
    /// `phaseflow merge` then writes the report from the union of the shards' records).
    pub shard: Option<crate::shard::Shard>,
}

impl BenchOptions {
    /// The shell command of an external model (`None` for a native one).
    pub fn command_of(&self, model: &str) -> Option<String> {
        self.external
            .iter()
            .find(|(n, _)| n == model)
            .map(|(_, c)| c.clone())
    }

    /// Whether a stored result was made by this run's settings for `model` on `ds` and succeeded
    /// (then it is reused; otherwise the pair is computed again).
    pub fn reuses(&self, prev: &SystemResult, ds: &Dataset, model: &str) -> bool {
        prev.error.is_none()
            && prev.protocol == ds.protocol
            && prev.vpt_threshold == self.vpt_threshold
            && prev.pinned == self.pinned_for(model)
            && prev.command == self.command_of(model)
            && prev.tuned == Some(self.tune)
    }

    /// The pinned hyperparameters of one model.
    pub fn pinned_for(&self, model: &str) -> Hyper {
        self.pinned
            .iter()
            .filter(|(m, _, _)| m == model)
            .map(|(_, k, v)| (k.clone(), *v))
            .collect()
    }
}

/// Scores of one forecast of one test trajectory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    #[serde(deserialize_with = "json_nan::map")]
    pub metrics: BTreeMap<String, f64>,
    /// Valid prediction time in steps (the horizon if never exceeded).
    pub vpt_steps: usize,
    /// The same in Lyapunov times (null without a positive λ_max).
    pub vpt_lyapunov: Option<f64>,
    /// sMAPE (0–200) of each horizon step, averaged over components.
    #[serde(deserialize_with = "json_nan::vec")]
    pub error_vs_horizon: Vec<f64>,
    pub diverged: bool,
    /// The forecast, H × D row-major (in the data set's units).
    #[serde(deserialize_with = "json_nan::vec")]
    pub forecast: Vec<f64>,
}

/// Everything about one model on one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemResult {
    pub system: String,
    pub file: String,
    pub model: String,
    /// The configured model's full name (with its hyperparameters).
    pub configuration: String,
    pub hyperparameters: Hyper,
    pub protocol: Protocol,
    pub vpt_threshold: f64,
    /// Hyperparameters pinned on the command line (`--hyper`).
    #[serde(default)]
    pub pinned: Hyper,
    /// The shell command of an external model (null for native ones): a result is reused only
    /// for the same command.
    #[serde(default)]
    pub command: Option<String>,
    /// Whether native models were tuned (`--no-tune` gives false); null in files written before
    /// it was recorded (such results are computed again).
    #[serde(default)]
    pub tuned: Option<bool>,
    /// Validation sMAPE of every grid configuration, in grid order.
    #[serde(deserialize_with = "json_nan::validation")]
    pub validation: Vec<(Hyper, f64)>,
    pub dt: f64,
    pub lyapunov_max: Option<f64>,
    pub cases: Vec<CaseResult>,
    /// Mean over the test trajectories of each metric (plus `vpt_steps`, `vpt_lyapunov`).
    #[serde(deserialize_with = "json_nan::map")]
    pub metrics: BTreeMap<String, f64>,
    /// Mean sMAPE against the horizon over the test trajectories.
    #[serde(deserialize_with = "json_nan::vec")]
    pub error_vs_horizon: Vec<f64>,
    pub seconds: f64,
    /// Why the model produced no forecast (then `cases` is empty).
    pub error: Option<String>,
}

/// Metrics where larger is better (all others: smaller is better).
pub fn higher_is_better(metric: &str) -> bool {
    matches!(
        metric,
        "r2" | "r2_score"
            | "pearson"
            | "spearman"
            | "kendall"
            | "mutual_information"
            | "vpt_steps"
            | "vpt_lyapunov"
    )
}

/// File-system name of a definition file: its path under the catalogue without `.toml`,
/// with `/` → `__` (e.g. `delay__mackey_glass`).
pub fn system_key(path: &Path) -> String {
    let dir = crate::systems::catalogue_dir();
    let rel = path.strip_prefix(&dir).unwrap_or(path);
    let s = rel
        .with_extension("")
        .to_string_lossy()
        .replace(['/', '\\'], "__");
    s.trim_start_matches("__").to_string()
}

/// sMAPE (0–200) over a whole forecast ([`metrics::smape`]); a non-finite score (a diverged
/// forecast) counts as the maximum, 200.
fn smape200(truth: &Series, pred: &Series) -> f64 {
    let m = metrics::smape(
        &truth.values,
        &pred.values,
        truth.dim,
        metrics::SmapeScale::Percent200,
    );
    if m.is_finite() {
        m
    } else {
        200.0
    }
}

/// Replaces non-finite forecast values by the last finite value of their component (or the
/// context's last value); returns whether any were replaced.
fn sanitise(pred: &mut Series, context: &Series) -> bool {
    let d = pred.dim;
    let mut last = context.last().to_vec();
    let mut any = false;
    for row in pred.values.chunks_exact_mut(d) {
        for (v, l) in row.iter_mut().zip(last.iter_mut()) {
            if v.is_finite() {
                *l = *v;
            } else {
                *v = *l;
                any = true;
            }
        }
    }
    any
}

/// Scores one forecast.
pub fn score_case(
    ds: &Dataset,
    context: &Series,
    truth: &Series,
    mut pred: Series,
    vpt_threshold: f64,
) -> CaseResult {
    let diverged = sanitise(&mut pred, context);
    let d = truth.dim;
    // sMAPE on the 0–200 scale of dysts' stored benchmark results (and PRR 2023); MASE scaled
    // by the naive one-step error of the training series
    let opts = metrics::MetricOptions {
        smape_scale: metrics::SmapeScale::Percent200,
        mase_train: Some(ds.train.values.clone()),
        seed: ds.protocol.seed,
        ..metrics::MetricOptions::default()
    };
    let mut m = metrics::compute_metrics(&truth.values, &pred.values, d, &opts);
    let vpt = metrics::valid_prediction_time(
        &truth.values,
        &pred.values,
        d,
        vpt_threshold,
        metrics::SmapeScale::Percent200,
    );
    // Lyapunov times only for chaotic systems: a λ_max ≤ 0 (quasi-periodic files) has none
    let vpt_l = ds
        .lyapunov_max
        .map(|l| metrics::steps_to_lyapunov_times(vpt, ds.dt, l))
        .filter(|v| v.is_finite());
    m.insert("vpt_steps".into(), vpt as f64);
    if let Some(v) = vpt_l {
        m.insert("vpt_lyapunov".into(), v);
    }
    CaseResult {
        metrics: m,
        vpt_steps: vpt,
        vpt_lyapunov: vpt_l,
        error_vs_horizon: metrics::error_vs_horizon(
            &truth.values,
            &pred.values,
            d,
            metrics::SmapeScale::Percent200,
        ),
        diverged,
        forecast: pred.values,
    }
}

/// Builds a model by name: a native one from its hyperparameters, or an external one.
fn make(
    model: &str,
    h: &Hyper,
    ds: &Dataset,
    opts: &BenchOptions,
    case: usize,
) -> Result<Box<dyn Forecaster>, String> {
    if let Some((name, cmd)) = opts.external.iter().find(|(n, _)| n == model) {
        let mut e = External::new(
            name,
            cmd,
            RequestInfo {
                system: ds.system.clone(),
                test_case: case,
                dt: ds.dt,
                points_per_period: ds.protocol.points_per_period,
                lyapunov_max: ds.lyapunov_max,
                variables: ds.variables.clone(),
                seed: ds.protocol.seed,
            },
        );
        e.timeout = opts.external_timeout;
        e.cancel = opts.cancel.clone();
        return Ok(Box::new(e));
    }
    Ok(models::build(model, h, &model_context(ds))?)
}

fn model_context(ds: &Dataset) -> ModelContext {
    ModelContext {
        points_per_period: ds.protocol.points_per_period,
        seed: ds.protocol.seed,
    }
}

/// Tunes (native models) and tests one model on one data set.
pub fn run_model(ds: &Dataset, model: &str, opts: &BenchOptions) -> SystemResult {
    let start = Instant::now();
    let mut r = SystemResult {
        system: ds.system.clone(),
        file: ds.file.clone(),
        model: model.into(),
        configuration: model.into(),
        hyperparameters: Hyper::new(),
        protocol: ds.protocol.clone(),
        vpt_threshold: opts.vpt_threshold,
        pinned: opts.pinned_for(model),
        command: opts.command_of(model),
        tuned: Some(opts.tune),
        validation: Vec::new(),
        dt: ds.dt,
        lyapunov_max: ds.lyapunov_max,
        cases: Vec::new(),
        metrics: BTreeMap::new(),
        error_vs_horizon: Vec::new(),
        seconds: 0.0,
        error: None,
    };
    let external = opts.external.iter().any(|(n, _)| n == model);
    let outcome = (|| -> Result<(), String> {
        if !external {
            let mut grid = models::grid(model, &model_context(ds))?;
            for h in &mut grid {
                h.extend(r.pinned.clone());
            }
            let mut unique: Vec<Hyper> = Vec::new();
            for h in grid {
                if !unique.contains(&h) {
                    unique.push(h);
                }
            }
            let grid = unique;
            let v = ds.protocol.validation();
            let n = ds.train.len();
            let fit_part = ds.train.head(n - v);
            let held = ds.train.tail(v);
            let candidates = if opts.tune {
                grid
            } else {
                grid.into_iter().take(1).collect()
            };
            for h in candidates {
                if opts.cancel.is_cancelled() {
                    return Err("interrupted".into());
                }
                let score = (|| {
                    let mut f = models::build(model, &h, &model_context(ds))?;
                    f.fit(&fit_part).map_err(|e| e.to_string())?;
                    let p = f.predict(&fit_part, v).map_err(|e| e.to_string())?;
                    Ok::<f64, String>(smape200(&held, &p))
                })()
                .unwrap_or(f64::INFINITY);
                r.validation.push((h, score));
            }
            let best = r
                .validation
                .iter()
                .enumerate()
                .fold(None::<(usize, f64)>, |b, (i, (_, s))| match b {
                    Some((_, bs)) if bs <= *s => b,
                    _ => Some((i, *s)),
                })
                .map(|(i, _)| i)
                .unwrap_or(0);
            r.hyperparameters = r
                .validation
                .get(best)
                .map(|v| v.0.clone())
                .unwrap_or_default();
        }
        let mut fitted: Option<Box<dyn Forecaster>> = None;
        for (k, case) in ds.tests.iter().enumerate() {
            if opts.cancel.is_cancelled() {
                return Err("interrupted".into());
            }
            // external programs get one call per test trajectory (told which in the request)
            if external || fitted.is_none() {
                let mut f = make(model, &r.hyperparameters, ds, opts, k)?;
                f.fit(&ds.train).map_err(|e| e.to_string())?;
                r.configuration = f.name();
                fitted = Some(f);
            }
            let f = fitted.as_ref().ok_or("no model")?;
            let p = f
                .predict(&case.context, case.truth.len())
                .map_err(|e| e.to_string())?;
            if p.len() != case.truth.len() || p.dim != case.truth.dim {
                return Err(format!(
                    "forecast has {} × {} values, expected {} × {}",
                    p.len(),
                    p.dim,
                    case.truth.len(),
                    case.truth.dim
                ));
            }
            r.cases.push(score_case(
                ds,
                &case.context,
                &case.truth,
                p,
                opts.vpt_threshold,
            ));
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        r.error = Some(e);
        r.cases.clear();
    }
    // means over the test trajectories
    let nc = r.cases.len() as f64;
    if nc > 0.0 {
        let keys: Vec<String> = r.cases[0].metrics.keys().cloned().collect();
        for k in keys {
            let m = r
                .cases
                .iter()
                .map(|c| c.metrics.get(&k).copied().unwrap_or(f64::NAN))
                .sum::<f64>()
                / nc;
            r.metrics.insert(k, m);
        }
        let h = r.cases[0].error_vs_horizon.len();
        r.error_vs_horizon = (0..h)
            .map(|i| r.cases.iter().map(|c| c.error_vs_horizon[i]).sum::<f64>() / nc)
            .collect();
    }
    r.seconds = start.elapsed().as_secs_f64();
    r
}

/// Outcome of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchSummary {
    pub systems: usize,
    pub models: Vec<String>,
    pub computed: usize,
    pub reused: usize,
    pub failed: Vec<String>,
    pub seconds: f64,
    /// The leaderboard (empty for a shard: its report is written by `phaseflow merge`).
    pub leaderboard: Vec<LeaderboardRow>,
    /// The shard run (`None`: the whole benchmark).
    pub shard: Option<crate::shard::Shard>,
    /// Systems of the whole benchmark (all shards).
    pub items: usize,
    /// The shard file written (sharded runs).
    pub shard_file: Option<PathBuf>,
}

fn results_path(out: &Path, key: &str, model: &str) -> PathBuf {
    out.join("results").join(key).join(format!("{model}.json"))
}

fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<(), String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    crate::io::write_bytes_atomically(path, text.as_bytes()).map_err(|e| e.to_string())
}

/// The data set of a system: read from `DIR/data` when it exists with the same protocol,
/// generated (and stored) otherwise.
pub fn dataset_for(
    path: &Path,
    protocol: &Protocol,
    out: &Path,
) -> Result<Dataset, crate::forecast::BenchError> {
    dataset_for_inner(path, protocol, out).map_err(crate::forecast::BenchError::Failed)
}

fn dataset_for_inner(path: &Path, protocol: &Protocol, out: &Path) -> Result<Dataset, String> {
    let file = out.join("data").join(format!("{}.h5", system_key(path)));
    if file.exists() {
        if let Ok(ds) = data::read(&file) {
            if ds.protocol == *protocol {
                return Ok(ds);
            }
        }
    }
    let ds = data::generate(path, protocol)?;
    std::fs::create_dir_all(out.join("data")).map_err(|e| e.to_string())?;
    data::write(&ds, &file)?;
    Ok(ds)
}

/// Runs the benchmark; `progress` counts data sets and (system, model) pairs, with the one just
/// done as its message: it advances after every data set and
/// every (system, model) pair.
pub fn run(
    opts: &BenchOptions,
    progress: &dyn crate::control::Progress,
) -> Result<BenchSummary, crate::forecast::BenchError> {
    run_inner(opts, progress).map_err(crate::forecast::BenchError::Failed)
}

fn run_inner(
    opts: &BenchOptions,
    progress: &dyn crate::control::Progress,
) -> Result<BenchSummary, String> {
    let start = Instant::now();
    opts.protocol.validate()?;
    for (m, k, v) in &opts.pinned {
        models::check_hyperparameter(m, k, *v)?;
    }
    if !opts.vpt_threshold.is_finite() || opts.vpt_threshold <= 0.0 {
        return Err(format!(
            "the valid-prediction-time threshold must be a finite positive number, got {}",
            opts.vpt_threshold
        ));
    }
    if opts.external_timeout.is_zero() {
        return Err("the time-out of external models must be positive".into());
    }
    if !opts.external.is_empty() {
        super::external::clean_stale_scratch();
    }
    let mut all_models: Vec<String> = opts.models.clone();
    for m in &opts.models {
        models::grid(
            m,
            &ModelContext {
                points_per_period: 100.0,
                seed: 0,
            },
        )?;
    }
    for (n, _) in &opts.external {
        if all_models.contains(n) || models::NATIVE.contains(&n.as_str()) {
            return Err(format!("external model name '{n}' is already taken"));
        }
        all_models.push(n.clone());
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let whole = opts.shard.unwrap_or(crate::shard::Shard::WHOLE);
    // this run's systems: (index in the whole list, file)
    let mine: Vec<(usize, &PathBuf)> = whole
        .items(opts.systems.len())
        .into_iter()
        .map(|k| (k, &opts.systems[k]))
        .collect();
    for (_, p) in &mine {
        let key = system_key(p);
        if key.contains(['\t', '\n']) {
            return Err(format!(
                "{}: a definition file name with a tab or line end cannot be benchmarked",
                p.display()
            ));
        }
    }
    let total = mine.len() * (1 + all_models.len());
    progress.start(total as u64, 0, "tasks");
    let tick = |msg: &str| {
        progress.message(msg);
        progress.advance(1);
    };
    // data sets, in parallel over systems
    let datasets: Vec<Result<Dataset, String>> = mine
        .par_iter()
        .map(|(_, p)| {
            let r = dataset_for_inner(p, &opts.protocol, &opts.out);
            tick(&format!("data {}", system_key(p)));
            r
        })
        .collect();
    let mut failed = Vec::new();
    let mut ok = Vec::new();
    // the whole-list index of each system in `ok`
    let mut ok_items = Vec::new();
    for ((k, p), d) in mine.iter().zip(datasets) {
        match d {
            Ok(d) => {
                ok.push((system_key(p), d));
                ok_items.push(*k);
            }
            Err(e) => {
                failed.push(format!("{}: {e}", p.display()));
                for _ in &all_models {
                    tick("skipped");
                }
            }
        }
    }
    let jobs: Vec<(usize, &String)> = (0..ok.len())
        .flat_map(|i| all_models.iter().map(move |m| (i, m)))
        .collect();
    let outcomes: Vec<Result<bool, String>> = jobs
        .par_iter()
        .map(|(i, model)| {
            let (key, ds) = &ok[*i];
            let path = results_path(&opts.out, key, model);
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Ok(prev) = serde_json::from_str::<SystemResult>(&text) {
                    if opts.reuses(&prev, ds, model) {
                        tick(&format!("{key} {model} (done)"));
                        return Ok(false);
                    }
                }
            }
            if opts.cancel.is_cancelled() {
                return Err(format!("{key} / {model}: interrupted"));
            }
            let r = run_model(ds, model, opts);
            if opts.cancel.is_cancelled() {
                // not written: the pair is computed by the next run
                return Err(format!("{key} / {model}: interrupted"));
            }
            let res = write_json_atomically(&path, &r).map(|()| true);
            tick(&format!("{key} {model}"));
            match (&r.error, res) {
                (Some(e), _) => Err(format!("{key} / {model}: {e}")),
                (None, res) => res,
            }
        })
        .collect();
    let mut computed = 0;
    let mut reused = 0;
    for o in outcomes {
        match o {
            Ok(true) => computed += 1,
            Ok(false) => reused += 1,
            Err(e) => failed.push(e),
        }
    }
    if opts.cancel.is_cancelled() {
        return Err(format!(
            "interrupted: {} (system, model) pairs finished and kept in {}; the same command continues",
            computed + reused,
            opts.out.join("results").display()
        ));
    }
    let keys: Vec<String> = ok.iter().map(|(k, _)| k.clone()).collect();
    let records = read_records(&opts.out, &keys, &all_models)?;
    let (leaderboard, shard_file) = match opts.shard {
        None => (
            finish(&opts.out, &records, &all_models, &opts.protocol)?,
            None,
        ),
        Some(s) => {
            let path = shard_path(&opts.out, s);
            let table = shard_table(opts, &all_models, &ok_items, &records);
            crate::shard::publish(&path, &table, Some(s)).map_err(|e| e.to_string())?;
            (Vec::new(), Some(path))
        }
    };
    Ok(BenchSummary {
        systems: ok.len(),
        models: all_models,
        computed,
        reused,
        failed,
        seconds: start.elapsed().as_secs_f64(),
        leaderboard,
        shard: opts.shard,
        items: opts.systems.len(),
        shard_file,
    })
}

/// The `command` of a benchmark's shard files.
pub const SHARD_COMMAND: &str = "forecast bench";

/// The shard file of shard `s` in the output directory: `DIR/shard-I-of-N.jsonl`.
pub fn shard_path(out: &Path, s: crate::shard::Shard) -> PathBuf {
    out.join(format!("shard-{}-of-{}.jsonl", s.index, s.count))
}

/// One finished (system, model) pair: the system's key ([`system_key`]), the model, and the
/// exact text of its `results/KEY/MODEL.json` (a [`SystemResult`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub model: String,
    pub text: String,
}

/// The records of the given systems and models, read from `DIR/results` (missing files, e.g.
/// of an interrupted pair, are skipped), systems first, models in the given order.
pub fn read_records(out: &Path, keys: &[String], models: &[String]) -> Result<Vec<Record>, String> {
    let mut v = Vec::new();
    for k in keys {
        for m in models {
            if let Ok(text) = std::fs::read_to_string(results_path(out, k, m)) {
                v.push(Record {
                    key: k.clone(),
                    model: m.clone(),
                    text,
                });
            }
        }
    }
    Ok(v)
}

/// The report of a benchmark from its records: `DIR/leaderboard.csv`, `DIR/summary.md` and the
/// plots ([`report`]). The one path from records to the report, taken by an unsharded run and
/// by `phaseflow merge` of its shards, so that both write the same bytes.
pub fn finish(
    out: &Path,
    records: &[Record],
    models: &[String],
    protocol: &Protocol,
) -> Result<Vec<LeaderboardRow>, String> {
    let results: Vec<SystemResult> = records
        .iter()
        .map(|r| {
            serde_json::from_str(&r.text)
                .map_err(|e| format!("{}: {e}", results_path(out, &r.key, &r.model).display()))
        })
        .collect::<Result<_, _>>()?;
    report_inner(out, &results, models, protocol)
}

/// What the shards of one benchmark share, in the head of their shard files: what [`finish`]
/// needs besides the records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardHead {
    models: Vec<String>,
    protocol: Protocol,
}

/// A shard's table: item `k` is system `k` of the whole list; its row is the system's key on a
/// line, then one line `MODEL<TAB>RESULT-JSON` per record (empty when its data set failed).
fn shard_table(
    opts: &BenchOptions,
    models: &[String],
    ok_items: &[usize],
    records: &[Record],
) -> crate::shard::Table {
    let keys: Vec<String> = opts.systems.iter().map(|p| system_key(p)).collect();
    let whole = opts.shard.unwrap_or(crate::shard::Shard::WHOLE);
    let mut rows: Vec<(usize, String)> = whole
        .items(opts.systems.len())
        .into_iter()
        .map(|k| (k, String::new()))
        .collect();
    for (row, text) in rows.iter_mut() {
        if ok_items.contains(row) {
            let key = &keys[*row];
            text.push_str(key);
            text.push('\n');
            for r in records.iter().filter(|r| &r.key == key) {
                text.push_str(&r.model);
                text.push('\t');
                text.push_str(&r.text);
                text.push('\n');
            }
        }
    }
    let head = ShardHead {
        models: models.to_vec(),
        protocol: opts.protocol.clone(),
    };
    let description = serde_json::json!({
        "systems": keys,
        "models": models,
        "external": opts.external,
        "protocol": opts.protocol,
        "vpt_threshold": opts.vpt_threshold,
        "tune": opts.tune,
        "pinned": opts.pinned,
    });
    crate::shard::Table {
        command: SHARD_COMMAND.into(),
        work: crate::shard::work_id(description.to_string().as_bytes()),
        items: opts.systems.len(),
        head: serde_json::to_string(&head).expect("the head serialises"),
        rows,
        tail: String::new(),
    }
}

/// What [`merge_shards`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct MergedBench {
    /// (system, model) records, written to `OUT/results`.
    pub records: usize,
    /// Data sets copied from beside the shard files to `OUT/data`.
    pub datasets_copied: usize,
    /// Data sets not found beside their shard file (left where the shards wrote them).
    pub datasets_missing: Vec<String>,
}

/// `phaseflow merge OUT SHARD…` of a benchmark: `table` is the complete table of the shards
/// ([`crate::shard::gather`]) and `sources[k]` the shard file holding item `k`. Writes into the directory `out` every record as `results/KEY/MODEL.json` (the shard's
/// bytes), copies each data set `data/KEY.h5` found next to its shard file (when `out` is
/// another directory), and the report through [`finish`]: the bytes an unsharded run writes.
pub fn merge_shards(
    out: &Path,
    table: &crate::shard::Table,
    sources: &[PathBuf],
) -> Result<MergedBench, crate::forecast::BenchError> {
    merge_inner(out, table, sources).map_err(crate::forecast::BenchError::Failed)
}

fn merge_inner(
    out: &Path,
    table: &crate::shard::Table,
    sources: &[PathBuf],
) -> Result<MergedBench, String> {
    if table.command != SHARD_COMMAND {
        return Err(format!(
            "shards of `{}`, not of `{SHARD_COMMAND}`",
            table.command
        ));
    }
    let head: ShardHead = serde_json::from_str(&table.head)
        .map_err(|e| format!("the shards' head is not a benchmark's: {e}"))?;
    let mut rows: Vec<&(usize, String)> = table.rows.iter().collect();
    rows.sort_by_key(|r| r.0);
    let mut records = Vec::new();
    let mut merged = MergedBench {
        records: 0,
        datasets_copied: 0,
        datasets_missing: Vec::new(),
    };
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (item, text) in rows {
        let mut lines = text.lines();
        let Some(key) = lines.next() else {
            continue; // the data set of this system failed in its shard
        };
        for line in lines {
            let (model, json) = line
                .split_once('\t')
                .ok_or_else(|| format!("item {item}: a record without its model"))?;
            records.push(Record {
                key: key.to_string(),
                model: model.to_string(),
                text: json.to_string(),
            });
        }
        let from_dir = sources
            .get(*item)
            .and_then(|f| f.parent())
            .ok_or_else(|| format!("item {item}: no shard file"))?;
        let from = from_dir.join("data").join(format!("{key}.h5"));
        let to = out.join("data").join(format!("{key}.h5"));
        let same = match (from.canonicalize(), to.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same {
            continue;
        }
        match std::fs::read(&from) {
            Ok(bytes) => {
                std::fs::create_dir_all(out.join("data")).map_err(|e| e.to_string())?;
                crate::io::write_bytes_atomically(&to, &bytes).map_err(|e| e.to_string())?;
                merged.datasets_copied += 1;
            }
            Err(_) => merged.datasets_missing.push(from.display().to_string()),
        }
    }
    for r in &records {
        let path = results_path(out, &r.key, &r.model);
        if std::fs::read_to_string(&path).is_ok_and(|t| t == r.text) {
            continue;
        }
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        crate::io::write_bytes_atomically(&path, r.text.as_bytes()).map_err(|e| e.to_string())?;
    }
    merged.records = records.len();
    finish(out, &records, &head.models, &head.protocol)?;
    Ok(merged)
}

/// Reads the per-system results of the given systems and models (missing files are skipped).
pub fn load_results(
    out: &Path,
    keys: &[String],
    models: &[String],
) -> Result<Vec<SystemResult>, crate::forecast::BenchError> {
    load_results_inner(out, keys, models).map_err(crate::forecast::BenchError::Failed)
}

fn load_results_inner(
    out: &Path,
    keys: &[String],
    models: &[String],
) -> Result<Vec<SystemResult>, String> {
    let mut v = Vec::new();
    for k in keys {
        for m in models {
            let p = results_path(out, k, m);
            if let Ok(text) = std::fs::read_to_string(&p) {
                v.push(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?);
            }
        }
    }
    Ok(v)
}

/// One row of the leaderboard: a model's distribution of one metric over systems.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderboardRow {
    pub model: String,
    pub metric: String,
    pub median: f64,
    pub mean: f64,
    pub q25: f64,
    pub q75: f64,
    pub iqr: f64,
    /// Systems on which this model has the best value of the metric among the models compared
    /// (ties count for each tied model).
    pub systems_won: usize,
    /// Systems with a finite value.
    pub n: usize,
    /// Test trajectories whose forecast diverged.
    pub diverged: usize,
}

/// Linear-interpolation quantile (NumPy's default) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

/// Published PRR 2023 medians of sMAPE (0–200) on the short protocol (Gilpin 2023), for the
/// summary's comparison column.
pub const PRR2023_MEDIAN_SMAPE: &[(&str, f64)] = &[("nvar", 69.7), ("esn", 77.5), ("linear", 94.4)];

/// Writes `leaderboard.csv`, `summary.md` and the plots for the given results.
pub fn report(
    out: &Path,
    results: &[SystemResult],
    models: &[String],
    protocol: &Protocol,
) -> Result<Vec<LeaderboardRow>, crate::forecast::BenchError> {
    report_inner(out, results, models, protocol).map_err(crate::forecast::BenchError::Failed)
}

fn report_inner(
    out: &Path,
    results: &[SystemResult],
    models: &[String],
    protocol: &Protocol,
) -> Result<Vec<LeaderboardRow>, String> {
    let mut metric_names: Vec<String> = results
        .iter()
        .flat_map(|r| r.metrics.keys().cloned())
        .collect();
    metric_names.sort();
    metric_names.dedup();
    // per metric and system: the best value over models
    let mut best: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for r in results {
        for (k, v) in &r.metrics {
            if !v.is_finite() {
                continue;
            }
            let e = best.entry((r.system.as_str(), k.as_str())).or_insert(*v);
            *e = if higher_is_better(k) {
                e.max(*v)
            } else {
                e.min(*v)
            };
        }
    }
    let mut rows = Vec::new();
    for m in models {
        let mine: Vec<&SystemResult> = results.iter().filter(|r| &r.model == m).collect();
        let diverged = mine
            .iter()
            .map(|r| r.cases.iter().filter(|c| c.diverged).count())
            .sum();
        for k in &metric_names {
            let mut vals: Vec<f64> = mine
                .iter()
                .filter_map(|r| r.metrics.get(k).copied())
                .filter(|v| v.is_finite())
                .collect();
            vals.sort_by(|a, b| a.total_cmp(b));
            let won = mine
                .iter()
                .filter(|r| {
                    r.metrics
                        .get(k)
                        .is_some_and(|v| best.get(&(r.system.as_str(), k.as_str())) == Some(v))
                })
                .count();
            let (q25, q75) = (quantile(&vals, 0.25), quantile(&vals, 0.75));
            rows.push(LeaderboardRow {
                model: m.clone(),
                metric: k.clone(),
                median: quantile(&vals, 0.5),
                mean: vals.iter().sum::<f64>() / vals.len().max(1) as f64,
                q25,
                q75,
                iqr: q75 - q25,
                systems_won: won,
                n: vals.len(),
                diverged,
            });
        }
    }
    let mut csv = String::from("model,metric,median,mean,q25,q75,iqr,systems_won,n,diverged\n");
    for r in &rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.model,
            r.metric,
            r.median,
            r.mean,
            r.q25,
            r.q75,
            r.iqr,
            r.systems_won,
            r.n,
            r.diverged
        ));
    }
    crate::io::write_bytes_atomically(&out.join("leaderboard.csv"), csv.as_bytes())
        .map_err(|e| e.to_string())?;
    let get = |m: &str, k: &str| rows.iter().find(|r| r.model == m && r.metric == k);
    let systems: std::collections::BTreeSet<&str> =
        results.iter().map(|r| r.system.as_str()).collect();
    let mut md = format!(
        "# Forecast benchmark\n\nProtocol `{}`: {} points per period, train {}, test context {}, horizon {}, \
         {} test trajectories per system, {}, {}, observation noise {} × std, seed {}.\n\
         {} systems. sMAPE on the 0–200 scale; VPT: first step where the cumulative sMAPE exceeds the \
         threshold, in Lyapunov times (dt · λ_max; systems with λ_max > 0).\n\n\
         | model | median sMAPE | mean sMAPE | IQR sMAPE | systems won (sMAPE) | median VPT (Lyapunov times) | diverged forecasts |",
        protocol.name,
        protocol.points_per_period,
        protocol.train,
        protocol.context,
        protocol.horizon,
        protocol.test_ics,
        if protocol.univariate { "first coordinate" } else { "all coordinates" },
        if protocol.standardise { "standardised" } else { "raw values" },
        protocol.noise,
        protocol.seed,
        systems.len()
    );
    let short = protocol.name == "short";
    if short {
        md.push_str(" PRR 2023 median sMAPE |\n|---|---|---|---|---|---|---|---|\n");
    } else {
        md.push_str("\n|---|---|---|---|---|---|---|\n");
    }
    let f = |v: Option<f64>| {
        v.filter(|x| x.is_finite())
            .map_or("–".to_string(), |x| format!("{x:.1}"))
    };
    let mut order: Vec<&String> = models.iter().collect();
    order.sort_by(|a, b| {
        let ma = get(a, "smape").map_or(f64::INFINITY, |r| r.median);
        let mb = get(b, "smape").map_or(f64::INFINITY, |r| r.median);
        ma.total_cmp(&mb)
    });
    for m in &order {
        let s = get(m, "smape");
        let v = get(m, "vpt_lyapunov");
        md.push_str(&format!(
            "| {m} | {} | {} | {} | {} | {} | {} |",
            f(s.map(|r| r.median)),
            f(s.map(|r| r.mean)),
            f(s.map(|r| r.iqr)),
            s.map_or(0, |r| r.systems_won),
            v.map_or("–".into(), |r| format!("{:.2}", r.median)),
            s.map_or(0, |r| r.diverged)
        ));
        if short {
            let p = PRR2023_MEDIAN_SMAPE
                .iter()
                .find(|(n, _)| n == m)
                .map(|p| p.1);
            md.push_str(&format!(" {} |", f(p)));
        }
        md.push('\n');
    }
    md.push_str("\nFull table (every metric, median / mean / IQR / systems won): `leaderboard.csv`. \
                 Per-system forecasts and scores: `results/SYSTEM/MODEL.json`. Figures: \
                 `smape_median.png`, `vpt_distribution.png`, `error_vs_horizon.png`, `smape_vs_lyapunov.png`.\n");
    crate::io::write_bytes_atomically(&out.join("summary.md"), md.as_bytes())
        .map_err(|e| e.to_string())?;
    plots(out, results, &order, &rows).map_err(|e| format!("plots: {e}"))?;
    Ok(rows)
}

fn plots(
    out: &Path,
    results: &[SystemResult],
    order: &[&String],
    rows: &[LeaderboardRow],
) -> Result<(), String> {
    use crate::io::plot;
    let e = |x: crate::io::IoError| x.to_string();
    let bars: Vec<(String, f64)> = order
        .iter()
        .map(|m| {
            let v = rows
                .iter()
                .find(|r| &r.model == *m && r.metric == "smape")
                .map_or(f64::NAN, |r| r.median);
            ((*m).clone(), v)
        })
        .collect();
    if bars.iter().any(|b| b.1.is_finite()) {
        plot::plot_bars(
            &out.join("smape_median.png"),
            "median sMAPE over systems (0-200, lower is better)",
            "sMAPE",
            &bars,
        )
        .map_err(e)?;
    }
    // VPT distribution: fraction of systems with VPT ≥ τ
    let mut vpt_curves = Vec::new();
    let mut horizon_curves = Vec::new();
    let mut scatter = Vec::new();
    for m in order {
        let mine: Vec<&SystemResult> = results.iter().filter(|r| &r.model == *m).collect();
        let mut v: Vec<f64> = mine
            .iter()
            .filter_map(|r| r.metrics.get("vpt_lyapunov").copied())
            .filter(|x| x.is_finite())
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        if !v.is_empty() {
            let n = v.len() as f64;
            let pts: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .map(|(i, x)| (*x, 1.0 - i as f64 / n))
                .collect();
            vpt_curves.push((m.as_str(), pts));
        }
        // error against horizon in Lyapunov times: median over systems in bins of 0.1, drawn
        // where at least half of the systems (and 3) reach that horizon
        let mut bins: BTreeMap<i64, (Vec<f64>, std::collections::BTreeSet<usize>)> =
            BTreeMap::new();
        let mut reaching = 0;
        for (si, r) in mine.iter().enumerate() {
            if let Some(l) = r.lyapunov_max.filter(|l| *l > 0.0) {
                reaching += 1;
                for (k, err) in r.error_vs_horizon.iter().enumerate() {
                    let tau = (k + 1) as f64 * r.dt * l;
                    let e = bins.entry((tau / 0.1).floor() as i64).or_default();
                    e.0.push(*err);
                    e.1.insert(si);
                }
            }
        }
        let need = (reaching / 2).max(3);
        let curve: Vec<(f64, f64)> = bins
            .into_iter()
            .filter(|(_, (_, systems))| systems.len() >= need)
            .map(|(b, (mut v, _))| {
                v.sort_by(|a, c| a.total_cmp(c));
                ((b as f64 + 0.5) * 0.1, quantile(&v, 0.5))
            })
            .collect();
        if !curve.is_empty() {
            horizon_curves.push((m.as_str(), curve));
        }
        let pts: Vec<(f64, f64)> = mine
            .iter()
            .filter_map(|r| Some((r.lyapunov_max?, *r.metrics.get("smape")?)))
            .collect();
        scatter.push((m.as_str(), pts));
    }
    if !vpt_curves.is_empty() {
        plot::plot_curves(
            &out.join("vpt_distribution.png"),
            "valid prediction time: fraction of systems with VPT >= tau",
            "tau (Lyapunov times)",
            "fraction of systems",
            &vpt_curves,
        )
        .map_err(e)?;
    }
    if !horizon_curves.is_empty() {
        plot::plot_curves(
            &out.join("error_vs_horizon.png"),
            "median sMAPE against horizon",
            "horizon (Lyapunov times)",
            "sMAPE (0-200)",
            &horizon_curves,
        )
        .map_err(e)?;
    }
    if scatter.iter().any(|s| !s.1.is_empty()) {
        plot::plot_scatter(
            &out.join("smape_vs_lyapunov.png"),
            "sMAPE against the largest Lyapunov exponent",
            "lambda_max (1/time)",
            "sMAPE (0-200)",
            &scatter,
            true,
        )
        .map_err(e)?;
    }
    Ok(())
}
