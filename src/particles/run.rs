//! Driving particle simulations (HOOMD-blue's "simulation = state + operations + writers"): a
//! [`Driver`] advances the replicas frame by frame and hands every frame to [`Observer`]s —
//! [`Observables`] (MSD, autocorrelation, cluster share, g(r), packing histogram) and
//! [`H5mdOutput`] (the H5MD writer with its checkpoints) — composed by the caller; [`run`] is
//! the composition `phaseflow simulate` uses (burn-in, replicas, resume), and [`run_to`] the same
//! with the frames also (or only) held in memory by a [`FrameRecorder`] (the Python package's
//! `phaseflow.particles.simulate`).

use super::model::{Dynamics, ParticleModel};
use super::observables as obs;
use super::sim::{ParticleState, Simulation};
use crate::io::h5md::{
    Checkpoint, CheckpointState, GroupLayout, H5mdWriter, OutputLock, PartialFile,
};
use crate::io::{AttrValue, IoError};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Recorded steps after the burn-in (frames at 0, K, 2K, … ≤ steps).
    pub steps: u64,
    /// Steps between frames K.
    pub every: u64,
    /// Steps run before the first frame (not recorded).
    pub burn_in_steps: u64,
    /// Independent replicas M.
    pub replicas: usize,
    pub seed: u64,
    /// Continue an interrupted run from its partial file.
    pub resume: bool,
    /// Cancellation (e.g. Ctrl-C, connected by the front end): the run finishes the frame,
    /// writes its checkpoint and returns [`RunError::Interrupted`]; `--resume` continues it.
    pub cancel: crate::control::Cancel,
    /// The command line, stored in `/parameters`.
    pub command: String,
    /// Testing aid: stop with an error after this many frames of this invocation, leaving the
    /// partial file as a crash would (exercises `--resume`).
    pub abort_after_frames: Option<usize>,
    /// Least wall time between checkpoints (zero: every frame); see
    /// [`crate::io::h5md::DEFAULT_CHECKPOINT_INTERVAL`]. Where the checkpoints fall does not
    /// change the output: a resumed run redoes the frames after the last one identically.
    pub checkpoint_interval: Duration,
    /// Called with a warning the caller should show (a stale partial file replaced, a partial
    /// file without a checkpoint restarted); the library prints nothing.
    pub warn: fn(&str),
}

impl RunConfig {
    /// Steps of `t` time units of `model` (rounded to the nearest step); `what` names the
    /// setting in the error for a negative or non-finite time.
    pub fn steps_of_time(model: &ParticleModel, t: f64, what: &str) -> Result<u64, RunError> {
        if !(t >= 0.0 && t.is_finite()) {
            return Err(RunError::Invalid(format!(
                "{what} must be a non-negative time, got {t}"
            )));
        }
        let steps = (t / model.dt).round();
        if steps > MAX_STEPS as f64 {
            return Err(RunError::Invalid(format!(
                "{what} {t:e} at dt = {} needs more than the limit of 2^53 = {:.3e} steps (where every step's time is exact in f64)",
                model.dt, MAX_STEPS as f64
            )));
        }
        Ok(steps as u64)
    }

    /// The default frame spacing: 100 frames over `steps` (at least one step apart).
    pub fn default_every(steps: u64) -> u64 {
        (steps / 100).max(1)
    }
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub system: String,
    pub model: String,
    /// The H5MD file written (None: the frames were only held in memory, [`run_to`]).
    pub output: Option<PathBuf>,
    pub n_particles: usize,
    pub dimension: usize,
    pub replicas: usize,
    pub packing_fraction: f64,
    pub box_edge: f64,
    pub dt: f64,
    /// Steps taken in this invocation per replica (burn-in included).
    pub steps: u64,
    pub frames: usize,
    pub resumed_from_step: Option<u64>,
    pub wall_seconds: f64,
    /// N · M · steps / wall time.
    pub particle_steps_per_second: f64,
    /// Rayon threads per process.
    pub threads: usize,
    /// Processes (MPI ranks) the run was decomposed over (1 without MPI).
    pub ranks: usize,
    /// Under MPI: what replica 0's decomposition exchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    pub largest_cluster_fraction: Option<f64>,
}

impl RunSummary {
    /// The summary as `phaseflow simulate --json` prints it (pretty-printed JSON; a non-finite
    /// number is `null`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary serialises")
    }
}

/// Errors of a particle run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{0}")]
    Invalid(String),
    #[error("{system}: unstable at step {step} (t = {t}) in replica {replica}: pair forces moved a particle by {jump:.3} in one step (particle diameter {diameter}); reduce dt (--set dt=...); no output written")]
    Unstable {
        system: String,
        replica: usize,
        step: u64,
        t: f64,
        jump: f64,
        diameter: f64,
    },
    #[error(
        "run interrupted after {frames} frames (--abort-after-frames); {}",
        kept_note(.partial)
    )]
    Aborted {
        frames: usize,
        /// The partial file kept for `--resume` (set by [`run`]).
        partial: Option<PathBuf>,
    },
    #[error("interrupted after {frames} frames; {}", kept_note(.partial))]
    Interrupted {
        frames: usize,
        /// The partial file kept for `--resume` (set by [`run`]).
        partial: Option<PathBuf>,
    },
    #[error("{system}: particle {particle} of replica {replica} crossed the periodic box {crossings} times by step {step} (t = {t}): the dynamics blew up (image counters are limited to {limit}); reduce dt (--set dt=...); no output written", limit = IMAGE_LIMIT)]
    ImageOverflow {
        system: String,
        replica: usize,
        particle: usize,
        crossings: i64,
        step: u64,
        t: f64,
    },
    #[error("stopped: rank 0 reports the error")]
    OnAnotherRank,
    #[error("{system}: particle {particle} left the finite range at step {step} (t = {t}): coordinate {coordinate} = {value}; reduce dt; no output written")]
    BlowUp {
        system: String,
        particle: usize,
        coordinate: usize,
        step: u64,
        t: f64,
        value: f64,
    },
}

/// "continue with --resume", naming the partial file kept when known.
fn kept_note(partial: &Option<PathBuf>) -> String {
    match partial {
        Some(p) => format!(
            "{} kept; continue with --resume (from its last checkpoint)",
            p.display()
        ),
        None => "continue with --resume".into(),
    }
}

/// Largest |image counter| a run accepts: a particle that crossed the periodic box 2^30 times
/// (the counters are `i32`, as H5MD stores them) has been thrown across the box by whole box
/// lengths per step, i.e. the integration blew up ([`RunError::ImageOverflow`]). Counters
/// saturate in the step kernels, so a larger jump cannot wrap around unseen.
pub const IMAGE_LIMIT: i32 = 1 << 30;

fn group_name(r: usize, m: usize) -> String {
    if m == 1 {
        "all".into()
    } else {
        format!("replica_{r}")
    }
}

/// Name of the propulsion element of the output: `self_propulsion` (AOUP g) or `orientation`
/// (ABP unit vectors), and its components per particle.
pub fn propulsion_output(model: &ParticleModel) -> (&'static str, usize) {
    match model.dynamics {
        Dynamics::Aoup { .. } => ("self_propulsion", model.propulsion_dim()),
        Dynamics::Abp { .. } => ("orientation", model.dim),
    }
}

/// The per-frame observables of the output, by name (`/observables/<name>`, one value per
/// replica): `msd`, `propulsion_autocorrelation` (AOUP) or `orientation_autocorrelation` (ABP),
/// and `largest_cluster_fraction` where [`Observables`] computes it (pair forces, d ≥ 2).
fn frame_series<'a>(model: &ParticleModel, obs: &'a Observables) -> Vec<(&'static str, &'a [f64])> {
    let cname = match model.dynamics {
        Dynamics::Abp { .. } => "orientation_autocorrelation",
        Dynamics::Aoup { .. } => "propulsion_autocorrelation",
    };
    let mut out = vec![("msd", &obs.msd[..]), (cname, &obs.autocorrelation[..])];
    if !obs.cluster.is_empty() {
        out.push(("largest_cluster_fraction", &obs.cluster[..]));
    }
    out
}

/// Unit orientation / propulsion vectors for the output (2-D ABP angles → (cos θ, sin θ)).
fn propulsion_out(model: &ParticleModel, g: &[f64]) -> Vec<f64> {
    match model.dynamics {
        Dynamics::Abp { .. } if model.dim == 2 => {
            g.iter().flat_map(|t| [t.cos(), t.sin()]).collect()
        }
        _ => g.to_vec(),
    }
}

/// Per-replica reference of the time-correlation observables (frame 0): unwrapped positions and
/// propulsion, particle order.
#[derive(Debug, Clone)]
pub struct Reference {
    pub unwrapped: Vec<f64>,
    pub g: Vec<f64>,
}

/// A recorded frame as observers see it: every replica's state at one step.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Frame number in the schedule (0 is the first frame after the burn-in).
    pub index: usize,
    pub step: u64,
    /// t = step·Δt.
    pub time: f64,
    /// One state per replica (particle order; positions wrapped, with image counters).
    pub states: &'a [ParticleState],
    /// Per replica, the frame's pair statistics ([`obs::PairCounts`]: g(r), packing-fraction
    /// and cluster counts) where the model has them ([`obs::PairStatistics::of_model`]);
    /// counted by every rank and added up under MPI. Empty: the observers count them.
    pub pairs: &'a [Option<obs::PairCounts>],
    /// The last frame this run records: the schedule's end, or a cancellation or abort after
    /// this frame (writers commit their checkpoint).
    pub closing: bool,
}

/// Something that watches a particle run (HOOMD-blue's writers and computes): called after
/// every recorded frame, in the order given to [`Driver::run`], and once at the end of a run
/// that reached its last frame.
pub trait Observer {
    /// A recorded frame.
    fn frame(&mut self, model: &ParticleModel, frame: &Frame<'_>) -> Result<(), RunError>;
    /// The run reached its last frame after `wall_seconds` (not called on interruption).
    fn finish(&mut self, _model: &ParticleModel, _wall_seconds: f64) -> Result<(), RunError> {
        Ok(())
    }
}

/// The per-frame observables of every replica: mean-squared displacement, propulsion (AOUP) or
/// orientation (ABP) autocorrelation against frame 0, the largest dense cluster's share (pair
/// forces, d ≥ 2); and their running frame averages, g(r) out to min(5σ, L/2) in 100 bins and
/// the local packing fraction histogram (60 bins on [0, 1.2]).
#[derive(Debug, Clone)]
pub struct Observables {
    /// Frame-0 references per replica (set at the first frame, or restored on resume).
    pub references: Option<Vec<Reference>>,
    /// The last frame's values per replica.
    pub msd: Vec<f64>,
    pub autocorrelation: Vec<f64>,
    pub cluster: Vec<f64>,
    /// Mean over replicas of the last frame's cluster share.
    pub last_cluster: Option<f64>,
    rdf_sum: Option<(Vec<f64>, Vec<f64>)>,
    packing_hist: Vec<f64>,
    averaged: usize,
}

impl Observables {
    /// Fresh observables, or continuing with the `references` of a resumed run.
    pub fn new(references: Option<Vec<Reference>>) -> Observables {
        Observables {
            references,
            msd: Vec::new(),
            autocorrelation: Vec::new(),
            cluster: Vec::new(),
            last_cluster: None,
            rdf_sum: None,
            packing_hist: Vec::new(),
            averaged: 0,
        }
    }

    /// The running sums of the frame averages (g(r) bin radii and sums, packing-fraction
    /// histogram sums, replica-frames averaged), for a checkpoint; empty before pair forces
    /// made any.
    pub fn accumulators(&self) -> Vec<(String, Vec<f64>)> {
        let Some((r, acc)) = self.rdf_sum.as_ref() else {
            return Vec::new();
        };
        vec![
            ("rdf_r".into(), r.clone()),
            ("rdf_sum".into(), acc.clone()),
            ("packing_sum".into(), self.packing_hist.clone()),
            ("averaged".into(), vec![self.averaged as f64]),
        ]
    }

    /// Continues the running sums of a checkpoint ([`Observables::accumulators`]; none: no
    /// sums yet).
    pub fn restore_accumulators(&mut self, acc: &[(String, Vec<f64>)]) -> Result<(), RunError> {
        if acc.is_empty() {
            return Ok(());
        }
        let get = |k: &str| -> Result<Vec<f64>, RunError> {
            acc.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    RunError::Invalid(format!("the checkpoint lacks the running sum '{k}'"))
                })
        };
        let averaged = get("averaged")?;
        self.rdf_sum = Some((get("rdf_r")?, get("rdf_sum")?));
        self.packing_hist = get("packing_sum")?;
        self.averaged = averaged.first().copied().unwrap_or(0.0) as usize;
        Ok(())
    }

    /// The frame averages when pair forces made them.
    pub fn averages(&self) -> Option<FrameAverages> {
        let (rr, acc) = self.rdf_sum.as_ref()?;
        let g: Vec<f64> = acc.iter().map(|v| v / self.averaged as f64).collect();
        let h: Vec<f64> = self
            .packing_hist
            .iter()
            .map(|v| v / self.averaged as f64)
            .collect();
        let edges: Vec<f64> = (0..=60).map(|b| b as f64 * 1.2 / 60.0).collect();
        Some(FrameAverages {
            r: rr.clone(),
            rdf: g,
            packing_edges: edges,
            packing_density: h,
        })
    }
}

/// Averages over the recorded frames and replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameAverages {
    /// Radial distribution g(r) at the radii `r` (as `obs::rdf` returns them).
    pub r: Vec<f64>,
    pub rdf: Vec<f64>,
    /// Local packing fraction histogram: `packing_edges` (61) and the density per bin (60).
    pub packing_edges: Vec<f64>,
    pub packing_density: Vec<f64>,
}

/// A time-independent observable: its name and its named datasets.
pub type FixedObservable<'a> = (&'static str, Vec<(&'static str, &'a [f64])>);

impl FrameAverages {
    /// The averages as the output names them: `(observable, [(dataset, values)])` —
    /// `radial_distribution` {`r`, `value`} and `local_packing_fraction` {`bin_edges`,
    /// `density`} (`/analysis/<observable>/<dataset>` of the H5MD file).
    pub fn datasets(&self) -> [FixedObservable<'_>; 2] {
        [
            (
                "radial_distribution",
                vec![("r", &self.r[..]), ("value", &self.rdf[..])],
            ),
            (
                "local_packing_fraction",
                vec![
                    ("bin_edges", &self.packing_edges[..]),
                    ("density", &self.packing_density[..]),
                ],
            ),
        ]
    }
}

impl Observer for Observables {
    fn frame(&mut self, model: &ParticleModel, frame: &Frame<'_>) -> Result<(), RunError> {
        let (n, d, gd) = (model.n, model.dim, model.propulsion_dim());
        let states = frame.states;
        let stats = obs::PairStatistics::of_model(model);
        if self.references.is_none() {
            self.references = Some(
                states
                    .iter()
                    .map(|st| Reference {
                        unwrapped: obs::unwrap(&st.x, &st.image, &model.bx),
                        g: st.g.clone(),
                    })
                    .collect(),
            );
        }
        let rf = self.references.as_ref().expect("set above");
        self.msd.clear();
        self.autocorrelation.clear();
        self.cluster.clear();
        for (r, st) in states.iter().enumerate() {
            let u = obs::unwrap(&st.x, &st.image, &model.bx);
            let nm = n - model.n_fixed;
            self.msd
                .push(obs::msd(&u[..nm * d], &rf[r].unwrapped[..nm * d], nm));
            let c = obs::autocorrelation(&st.g[..nm * gd], &rf[r].g[..nm * gd], gd, nm);
            self.autocorrelation.push(match model.dynamics {
                // AOUP: (1/(N d)) Σ g(t)·g(0) = e^{−γ t} in the stationary state
                Dynamics::Aoup { .. } => c / d as f64,
                Dynamics::Abp { .. } => c,
            });
            if let Some(stats) = stats.as_ref() {
                // counted by the driver (on every rank under MPI), else here
                let counts = match frame.pairs.get(r) {
                    Some(Some(p)) => std::borrow::Cow::Borrowed(p),
                    _ => std::borrow::Cow::Owned(obs::PairCounts::of(stats, &model.bx, &st.x)),
                };
                self.cluster.push(counts.cluster_fraction(n));
                let (rr, g) = counts.rdf(stats, &model.bx, n);
                let h = counts.packing_density(stats, n);
                match self.rdf_sum.as_mut() {
                    None => {
                        self.rdf_sum = Some((rr, g));
                        self.packing_hist = h;
                    }
                    Some((_, acc)) => {
                        acc.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
                        self.packing_hist
                            .iter_mut()
                            .zip(&h)
                            .for_each(|(a, b)| *a += b);
                    }
                }
                self.averaged += 1;
            }
        }
        if !self.cluster.is_empty() {
            self.last_cluster = Some(self.cluster.iter().sum::<f64>() / self.cluster.len() as f64);
        }
        Ok(())
    }
}

/// The H5MD writer as an observer: particles (positions, images, propulsion or orientation per
/// replica group), the per-frame observables of the [`Observables`] it owns, and at closing
/// frames (and whenever [`H5mdWriter::checkpoint_due`]: the first frame, then after the
/// checkpoint interval) a checkpoint — states, references and the observables' running sums —
/// from which [`RunConfig::resume`] continues; at the end, the frame averages and the wall
/// time, and the file is published atomically.
pub struct H5mdOutput {
    writer: Option<H5mdWriter>,
    /// The observables computed for (and written with) every frame.
    pub observables: Observables,
    /// Frames in the published file (after [`Observer::finish`]).
    pub frames: usize,
}

impl H5mdOutput {
    /// Wraps an open writer; `references` of a resumed run.
    pub fn new(writer: H5mdWriter, references: Option<Vec<Reference>>) -> H5mdOutput {
        H5mdOutput {
            writer: Some(writer),
            observables: Observables::new(references),
            frames: 0,
        }
    }

    /// Frames already in the file (a resumed run continues after them).
    pub fn frames_written(&self) -> usize {
        self.writer.as_ref().map_or(self.frames, |w| w.frames())
    }

    fn writer(&mut self) -> &mut H5mdWriter {
        self.writer.as_mut().expect("writer open until finish")
    }

    /// Removes the partial file (a run that failed for good).
    pub fn discard(&mut self) {
        if let Some(w) = self.writer.take() {
            w.discard();
        }
    }

    /// The partial file being written (None after [`Observer::finish`] or
    /// [`H5mdOutput::discard`]).
    pub fn partial(&self) -> Option<PathBuf> {
        self.writer.as_ref().map(|w| w.partial().to_path_buf())
    }
}

impl Observer for H5mdOutput {
    fn frame(&mut self, model: &ParticleModel, frame: &Frame<'_>) -> Result<(), RunError> {
        self.observables.frame(model, frame)?;
        let (step, time) = (frame.step, frame.time);
        let writer = self.writer.as_mut().expect("writer open until finish");
        for (r, st) in frame.states.iter().enumerate() {
            writer.push_frame(
                r,
                step,
                time,
                &st.x,
                &st.image,
                &propulsion_out(model, &st.g),
            )?;
        }
        let obs = &self.observables;
        for (name, values) in frame_series(model, obs) {
            writer.push_observable(name, step, time, values)?;
        }
        writer.end_frame()?;
        if writer.checkpoint_due(frame.closing) {
            let rf = obs.references.as_ref().expect("set by the observables");
            let ck = Checkpoint {
                replicas: frame
                    .states
                    .iter()
                    .zip(rf)
                    .map(|(st, r)| CheckpointState {
                        x: st.x.clone(),
                        image: st.image.clone(),
                        g: st.g.clone(),
                        step: st.step,
                        ref_unwrapped: r.unwrapped.clone(),
                        ref_g: r.g.clone(),
                    })
                    .collect(),
                accumulators: obs.accumulators(),
            };
            writer.write_checkpoint(&ck)?;
        }
        Ok(())
    }

    fn finish(&mut self, _model: &ParticleModel, wall_seconds: f64) -> Result<(), RunError> {
        if let Some(a) = self.observables.averages() {
            let w = self.writer();
            for (name, data) in a.datasets() {
                w.write_average(name, &data)?;
            }
        }
        self.writer()
            .set_parameter("wall_seconds", &AttrValue::F64(wall_seconds))?;
        let w = self.writer.take().expect("writer open until finish");
        self.frames = w.finish()?;
        Ok(())
    }
}

/// What a decomposed replica exchanges (`phaseflow simulate --json` under `mpirun`: the
/// measured inputs of the communication model in the README).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Traffic {
    /// Ranks per direction.
    pub grid: Vec<usize>,
    /// Neighbour-list rebuilds (each with a migration and a ghost-list exchange).
    pub rebuilds: u64,
    /// Ghost particles over all ranks at the last rebuild, per particle (ghosts / N).
    pub ghost_fraction: f64,
    /// Messages a rank sends per step (ghost positions), mean over ranks.
    pub messages_per_step: f64,
    /// Bytes a rank sends per step, mean over ranks.
    pub bytes_per_step: f64,
    /// Whether the frames' pair statistics (g(r), packing fraction, clusters) are counted on
    /// every rank and added up (true), or on the root from the gathered frame (false: a sub-box
    /// is thinner than their reach); `None` where the model has none.
    pub pair_statistics_on_ranks: Option<bool>,
}

/// One replica as the [`Driver`] advances it: a [`Simulation`] in one process, or the ranks'
/// shares of one (`particles::mpi::Decomposed`, feature `mpi`). Under MPI every method is
/// collective (all ranks call it in the same order) and its answer is the same on every rank.
pub trait Replica {
    /// Advances one step of Δt.
    fn step(&mut self);
    /// Steps taken since the initial condition.
    fn step_count(&self) -> u64;
    /// Largest displacement a pair force caused in the last step (the blow-up check).
    fn max_force_displacement(&self) -> f64;
    /// A particle (id) whose image counter exceeds `limit` in absolute value, with the largest
    /// such counter.
    fn image_beyond(&self, limit: i32) -> Option<(usize, i64)>;
    /// The state in particle order (under MPI gathered on the root rank; the other ranks get
    /// empty arrays and the step).
    fn state(&self) -> ParticleState;
    /// The pair statistics of this replica's configuration (collective), on the root; `None`
    /// on the other ranks. `gathered` is what [`Replica::state`] returned on this process. In
    /// one process (the default) they are counted from `gathered`; under MPI every rank counts
    /// its own particles and the counts are added up on the root.
    fn pair_counts(
        &self,
        model: &ParticleModel,
        stats: &obs::PairStatistics,
        gathered: &ParticleState,
    ) -> Option<obs::PairCounts> {
        Some(obs::PairCounts::of(stats, &model.bx, &gathered.x))
    }
    /// Under MPI, what the decomposition costs (collective); `None` in one process.
    fn traffic(&self) -> Option<Traffic> {
        None
    }
    /// Whether `cancel` is set (under MPI: on any rank).
    fn cancelled(&self, cancel: &crate::control::Cancel) -> bool {
        cancel.is_cancelled()
    }
    /// Runs `advance` on every replica (in parallel where the replicas allow it), returning its
    /// results in replica order.
    fn advance_each<T: Send>(sims: &mut [Self], advance: &(dyn Fn(&mut Self) -> T + Sync)) -> Vec<T>
    where
        Self: Sized,
    {
        sims.iter_mut().map(advance).collect()
    }
}

impl Replica for Simulation {
    fn step(&mut self) {
        Simulation::step(self)
    }
    fn step_count(&self) -> u64 {
        Simulation::step_count(self)
    }
    fn max_force_displacement(&self) -> f64 {
        Simulation::max_force_displacement(self)
    }
    fn image_beyond(&self, limit: i32) -> Option<(usize, i64)> {
        Simulation::image_beyond(self, limit)
    }
    fn state(&self) -> ParticleState {
        Simulation::state(self)
    }
    /// Small systems with several replicas: one replica per thread (a replica's own step is
    /// parallel over its particles, which does not pay below ~2048 particles).
    fn advance_each<T: Send>(
        sims: &mut [Self],
        advance: &(dyn Fn(&mut Self) -> T + Sync),
    ) -> Vec<T> {
        if sims.len() > 1 && sims[0].model.n < 2048 {
            sims.par_iter_mut().map(advance).collect()
        } else {
            sims.iter_mut().map(advance).collect()
        }
    }
}

/// The processes that run one simulation together, and how they make its replicas: one process
/// ([`OneProcess`]), or the ranks of an MPI communicator (`particles::mpi::Mpi`, feature `mpi`).
/// Every decision to stop is taken by all processes together ([`Engine::any`]); files are
/// written by the root alone.
pub trait Engine {
    type Replica: Replica;
    /// This process writes the output and shows progress.
    fn is_root(&self) -> bool {
        true
    }
    /// Whether `flag` is set on any process (collective).
    fn any(&self, flag: bool) -> bool {
        flag
    }
    /// The root's `value`, on every process (collective).
    fn share(&self, value: u64) -> u64 {
        value
    }
    /// Number of processes.
    fn ranks(&self) -> usize {
        1
    }
    /// Replica `replica` continuing from `state` (collective: given on the root, `None` on the
    /// other ranks).
    fn replica(
        &self,
        model: &ParticleModel,
        state: Option<ParticleState>,
        seed: u64,
        replica: u32,
    ) -> Self::Replica;
}

/// One process: replicas are [`Simulation`]s on this process's threads.
pub struct OneProcess;

impl Engine for OneProcess {
    type Replica = Simulation;
    fn replica(
        &self,
        model: &ParticleModel,
        state: Option<ParticleState>,
        seed: u64,
        replica: u32,
    ) -> Simulation {
        let state = state.expect("one process: the state is given");
        Simulation::from_state(model.clone(), state, seed, replica)
    }
}

/// The integrator side of a particle run: one [`Replica`] per replica (a [`Simulation`] in one
/// process), the frame schedule
/// (steps `burn_in + k·every ≤ burn_in + steps`), stability checks; [`Driver::run`] advances the
/// replicas frame by frame (in parallel for small systems) and hands each frame to the
/// observers.
///
/// ```
/// use phaseflow::particles::run::{Driver, Frame, Observables, Observer, OneProcess, RunError};
/// use phaseflow::particles::ParticleModel;
/// use phaseflow::control::{Cancel, NoProgress};
/// let file = std::path::Path::new("systems/active/trap.toml");
/// let model = ParticleModel::load(file, &[("N".into(), 4.0), ("k".into(), 0.0)]).unwrap();
/// /// Records the first particle's x coordinate of replica 0.
/// struct Track(Vec<f64>);
/// impl Observer for Track {
///     fn frame(&mut self, _m: &ParticleModel, f: &Frame<'_>) -> Result<(), RunError> {
///         self.0.push(f.states[0].x[0]);
///         Ok(())
///     }
/// }
/// let mut driver = Driver::new(&model, 7, 2, 100, 1000, 250).unwrap();
/// let (mut track, mut obs) = (Track(Vec::new()), Observables::new(None));
/// let observers: &mut [&mut dyn Observer] = &mut [&mut track, &mut obs];
/// driver.run(&model, &OneProcess, observers, &Cancel::new(), &NoProgress, None).unwrap();
/// assert_eq!(track.0.len(), 5); // steps 100, 350, 600, 850, 1100
/// assert_eq!(obs.msd.len(), 2); // one value per replica
/// ```
pub struct Driver<R: Replica = Simulation> {
    sims: Vec<R>,
    frame_steps: Vec<u64>,
    /// Frames of the schedule already recorded (a resumed run).
    first_frame: usize,
}

/// How a [`Driver::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriverEnd {
    /// Steps taken per replica in this call.
    pub steps: u64,
    pub wall_seconds: f64,
}

impl Driver<Simulation> {
    /// `replicas` fresh replicas (initial conditions from `seed`), frames every `every` steps
    /// over `steps` steps after `burn_in_steps`.
    pub fn new(
        model: &ParticleModel,
        seed: u64,
        replicas: usize,
        burn_in_steps: u64,
        steps: u64,
        every: u64,
    ) -> Result<Driver, RunError> {
        let sims = (0..replicas)
            .map(|r| Simulation::new(model.clone(), seed, r as u32))
            .collect();
        Self::from_simulations(sims, burn_in_steps, steps, every, 0)
    }
}

impl<R: Replica> Driver<R> {
    /// Replicas continuing from given simulations, with the first `recorded` frames of the
    /// schedule already written.
    pub fn from_simulations(
        sims: Vec<R>,
        burn_in_steps: u64,
        steps: u64,
        every: u64,
        recorded: usize,
    ) -> Result<Self, RunError> {
        check_schedule(steps, every, sims.len())?;
        let frame_steps: Vec<u64> = (0..=steps / every)
            .map(|k| burn_in_steps + k * every)
            .collect();
        Ok(Self {
            sims,
            frame_steps,
            first_frame: recorded,
        })
    }

    /// The steps of the frames of the schedule.
    pub fn frame_steps(&self) -> &[u64] {
        &self.frame_steps
    }

    /// Steps taken by replica 0 so far.
    pub fn step_count(&self) -> u64 {
        self.sims[0].step_count()
    }

    /// Advances every replica through the remaining frames, calling every observer at every
    /// frame; `progress` counts steps. Stops after the frame in progress when `cancel` is set
    /// ([`RunError::Interrupted`]) or after `stop_after_frames` frames of this call
    /// ([`RunError::Aborted`]) — the observers see that frame as closing.
    ///
    /// Under MPI (`engine` with several ranks) every rank calls this with the same schedule;
    /// the observers are the root's (the other ranks pass none), and every stop — a blow-up, a
    /// cancellation, an observer's error — is agreed by all ranks before any acts on it (the
    /// other ranks return [`RunError::OnAnotherRank`] where the root reports the error).
    pub fn run<E: Engine<Replica = R>>(
        &mut self,
        model: &ParticleModel,
        engine: &E,
        observers: &mut [&mut dyn Observer],
        cancel: &crate::control::Cancel,
        progress: &dyn crate::control::Progress,
        stop_after_frames: Option<usize>,
    ) -> Result<DriverEnd, RunError> {
        let d = model.dim;
        let total = *self.frame_steps.last().expect("at least one frame");
        progress.start(total, self.sims[0].step_count(), "steps");
        let start = Instant::now();
        let start_step = self.sims[0].step_count();
        let diameter = model.diameter();
        let mut written_here = 0usize;
        let frames = self.frame_steps.len();
        for k in self.first_frame..frames {
            let target = self.frame_steps[k];
            // advance every replica to `target`
            // a step in which forces move a particle by more than a quarter diameter is a
            // blow-up (Δt too large for the stiffness of the repulsion), and so is a particle
            // thrown across the periodic box IMAGE_LIMIT times (e.g. an explicit step far beyond
            // the trap's stability limit): stop with the step and particle
            let limit = 0.25 * diameter;
            let advance = |s: &mut R| -> Option<(u64, Blown)> {
                while s.step_count() < target {
                    if s.step_count().is_multiple_of(CANCEL_CHECK_STEPS) && s.cancelled(cancel) {
                        return Some((s.step_count(), Blown::Cancelled));
                    }
                    s.step();
                    let jump = s.max_force_displacement();
                    if jump.is_nan() || jump > limit {
                        return Some((s.step_count(), Blown::Jump(jump)));
                    }
                    if let Some((particle, crossings)) = s.image_beyond(IMAGE_LIMIT) {
                        return Some((s.step_count(), Blown::Images(particle, crossings.abs())));
                    }
                }
                None
            };
            let blown: Vec<Option<(u64, Blown)>> = R::advance_each(&mut self.sims, &advance);
            // a replica that blew up before the others saw the cancellation is reported as such
            let unstable = blown.iter().enumerate().find_map(|(r, b)| {
                b.filter(|(_, w)| !matches!(w, Blown::Cancelled))
                    .map(|v| (r, v))
            });
            if unstable.is_none() && blown.iter().any(|b| b.is_some()) {
                // stopped within frame k: frames 0..k are in the file, resumable from the last
                // checkpoint (as after a kill, which the two checkpoint slots make safe)
                return Err(RunError::Interrupted {
                    frames: k,
                    partial: None,
                });
            }
            if let Some((r, (step, what))) = unstable {
                let t = step as f64 * model.dt;
                let system = model.name.clone();
                return Err(match what {
                    Blown::Jump(jump) => RunError::Unstable {
                        system,
                        replica: r,
                        step,
                        t,
                        jump,
                        diameter,
                    },
                    Blown::Images(particle, crossings) => RunError::ImageOverflow {
                        system,
                        replica: r,
                        particle,
                        crossings,
                        step,
                        t,
                    },
                    // (filtered out above)
                    Blown::Cancelled => RunError::Interrupted {
                        frames: k,
                        partial: None,
                    },
                });
            }
            progress.set_position(target);
            let states: Vec<ParticleState> = self.sims.iter().map(|s| s.state()).collect();
            // blow-up check (on the root's gathered states under MPI, agreed by all ranks)
            let blow_up = states.iter().find_map(|st| {
                let pos = st.x.iter().position(|v| !v.is_finite())?;
                Some(RunError::BlowUp {
                    system: model.name.clone(),
                    particle: pos / d,
                    coordinate: pos % d,
                    step: st.step,
                    t: st.step as f64 * model.dt,
                    value: st.x[pos],
                })
            });
            if engine.any(blow_up.is_some()) {
                return Err(blow_up.unwrap_or(RunError::OnAnotherRank));
            }
            // the pair statistics: counted where the particles are (every rank under MPI)
            let pairs: Vec<Option<obs::PairCounts>> = match obs::PairStatistics::of_model(model) {
                Some(stats) => self
                    .sims
                    .iter()
                    .zip(&states)
                    .map(|(s, st)| s.pair_counts(model, &stats, st))
                    .collect(),
                None => Vec::new(),
            };
            written_here += 1;
            let last = k + 1 == frames;
            let stop = stop_after_frames == Some(written_here) && !last;
            let ctrl_c = engine.any(cancel.is_cancelled()) && !last;
            let frame = Frame {
                index: k,
                step: target,
                time: target as f64 * model.dt,
                states: &states,
                pairs: &pairs,
                closing: last || stop || ctrl_c,
            };
            let observed = observers
                .iter_mut()
                .try_for_each(|o| o.frame(model, &frame));
            if engine.any(observed.is_err()) {
                return Err(observed.err().unwrap_or(RunError::OnAnotherRank));
            }
            if ctrl_c {
                return Err(RunError::Interrupted {
                    frames: k + 1,
                    partial: None,
                });
            }
            if stop {
                return Err(RunError::Aborted {
                    frames: k + 1,
                    partial: None,
                });
            }
        }
        let wall = start.elapsed().as_secs_f64();
        progress.finish();
        let finished = observers.iter_mut().try_for_each(|o| o.finish(model, wall));
        if engine.any(finished.is_err()) {
            return Err(finished.err().unwrap_or(RunError::OnAnotherRank));
        }
        Ok(DriverEnd {
            steps: self.sims[0].step_count() - start_step,
            wall_seconds: wall,
        })
    }
}

/// Why a replica stopped (see [`Driver::run`]).
#[derive(Debug, Clone, Copy)]
enum Blown {
    /// Pair forces moved a particle this far in one step.
    Jump(f64),
    /// This particle's image counter passed [`IMAGE_LIMIT`] (its value).
    Images(usize, i64),
    /// `cancel` was set within the frame (checked every [`CANCEL_CHECK_STEPS`] steps).
    Cancelled,
}

/// Steps between two looks at the cancellation token inside a frame: a frame may last minutes
/// (`--every` is the user's), and Ctrl-C or SIGTERM must stop the run within a fraction of a
/// second; one atomic load per 256 steps costs nothing measurable.
const CANCEL_CHECK_STEPS: u64 = 256;

/// The frame schedule and replica count make sense: `every` ≥ 1 and, when steps are recorded, at
/// most `steps` (else no frame would follow the first); at least one replica.
/// Refuses, before any file is made, a run whose frames alone (positions, images and the
/// propulsion state, `frames × replicas × N × (8·d + 4·d + 8·g)` bytes) exceed the free space of
/// the destination's file system: it would fill the disk and fail hours later.
fn check_output_size(
    out: &Path,
    cfg: &RunConfig,
    n: usize,
    d: usize,
    g: usize,
) -> Result<(), RunError> {
    let frames = (cfg.steps / cfg.every.max(1)) as f64 + 1.0;
    let bytes = frames * cfg.replicas as f64 * n as f64 * (12 * d + 8 * g) as f64;
    if let Some(free) = crate::io::available_bytes(out) {
        if bytes > free as f64 {
            return Err(RunError::Invalid(format!(
                "the output would take at least {} ({} frames of {} replica(s) × {n} particles) but its file system has {} free: record fewer frames (--every) or write elsewhere",
                crate::control::human_bytes(bytes),
                crate::control::human_count(frames as usize),
                cfg.replicas,
                crate::control::human_bytes(free as f64)
            )));
        }
    }
    Ok(())
}

/// Most steps of one run: 2^53, where every step's time `k·dt` is exact in f64 (a request for
/// more, such as `--t-end 1e308`, is an error before any file is made, not a run that never ends).
pub const MAX_STEPS: u64 = 1 << 53;

fn check_schedule(steps: u64, every: u64, replicas: usize) -> Result<(), RunError> {
    if steps > MAX_STEPS {
        return Err(RunError::Invalid(format!(
            "--steps {steps} is more than the limit of 2^53 = {MAX_STEPS} steps"
        )));
    }
    if every == 0 {
        return Err(RunError::Invalid("--every must be at least 1".into()));
    }
    if replicas == 0 {
        return Err(RunError::Invalid("--replicas must be at least 1".into()));
    }
    if steps > 0 && every > steps {
        return Err(RunError::Invalid(format!(
            "--every {every} is longer than the {steps} recorded steps: no frame would follow the first (give --every at most --steps)"
        )));
    }
    Ok(())
}

/// Runs `model` and writes `out` (H5MD): a [`Driver`] with one observer, [`H5mdOutput`]. See
/// [`RunConfig`]; `progress` counts steps per replica (burn-in included).
///
/// One process at a time writes `out` ([`OutputLock`]: a second run fails at once, naming the
/// first). A run that stops for good (instability, blow-up, a write error) removes its partial
/// file; an interrupted one ([`RunError::Interrupted`], [`RunError::Aborted`], or a killed
/// process) keeps it, and `resume` continues it after checking that the settings recorded in
/// it (seed, steps, frame spacing, burn-in, replicas, every model parameter and the definition
/// text) are this command's: the resumed file equals an uninterrupted run's, dataset by dataset
/// and bit for bit (the attributes `command` and `wall_seconds` of `/parameters` are the first
/// invocation's command and the last one's wall time).
pub fn run(
    model: &ParticleModel,
    out: &Path,
    cfg: &RunConfig,
    progress: &dyn crate::control::Progress,
) -> Result<RunSummary, RunError> {
    run_to(model, Some(out), cfg, progress, None)
}

/// The frames of a particle run held in memory: the arrays of the H5MD file [`run`] writes
/// (row-major; the particle arrays are the file's per-replica datasets stacked over the
/// replicas, as [`crate::io::h5md::ParticleSamples`] reads them; the per-frame observables are
/// the file's `[F, M]` datasets):
///
/// - `step` \[F\], `time` \[F\] (t = step·Δt, Δt the model's `dt`);
/// - `position` \[M, F, N, d\]: wrapped into the periodic box \[−L/2, L/2)^d;
/// - `image` \[M, F, N, d\]: box crossings, so that the unwrapped position is
///   `position + image·L` (L = the box edge, `model.bx.length`);
/// - `propulsion` \[M, F, N, c\]: AOUP self-propulsion g (c = d) or ABP unit orientation vectors
///   (c = d; 2-D angles θ as (cos θ, sin θ)), named by [`FrameRecorder::propulsion_name`];
/// - `series`: the per-frame observables of [`Observables`] by their output names (`msd`,
///   `propulsion_autocorrelation` or `orientation_autocorrelation`, `largest_cluster_fraction`),
///   each \[F, M\];
/// - `averages`: g(r) and the local packing fraction histogram averaged over frames and
///   replicas (pair forces, d ≥ 2), set when the run reaches its last frame.
///
/// M replicas, F frames, N particles; [`run_to`] fills it. [`FrameRecorder::new`] refuses,
/// before anything is allocated, a recording larger than the machine's memory
/// ([`crate::control::memory_budget`]).
#[derive(Debug, Clone)]
pub struct FrameRecorder {
    pub replicas: usize,
    pub n: usize,
    pub dim: usize,
    /// `self_propulsion` (AOUP) or `orientation` (ABP).
    pub propulsion_name: &'static str,
    /// Components c per particle of `propulsion`.
    pub components: usize,
    pub step: Vec<u64>,
    pub time: Vec<f64>,
    pub position: Vec<f64>,
    pub image: Vec<i32>,
    pub propulsion: Vec<f64>,
    /// `(name, values [F, M])` in the order of the output.
    pub series: Vec<(&'static str, Vec<f64>)>,
    pub averages: Option<FrameAverages>,
    /// Frames the particle arrays have room for (the schedule's).
    planned: usize,
}

impl FrameRecorder {
    /// Bytes of a recording of `cfg`'s frames of `model`: F·M·N·(8d + 4d + 8c) for the
    /// particles and F·(16 + 24·M) for the times and the per-frame observables, F = steps/every + 1.
    pub fn bytes(model: &ParticleModel, cfg: &RunConfig) -> f64 {
        let frames = (cfg.steps / cfg.every.max(1)) as f64 + 1.0;
        let (d, c) = (model.dim, propulsion_output(model).1);
        let m = cfg.replicas as f64;
        frames * (m * model.n as f64 * (12 * d + 8 * c) as f64 + 16.0 + 24.0 * m)
    }

    /// An empty recording for the frames of `cfg` (its schedule checked as [`run`] checks it),
    /// its particle arrays allocated for all of them; refused with the size named when it would
    /// exceed [`crate::control::memory_budget`].
    pub fn new(model: &ParticleModel, cfg: &RunConfig) -> Result<FrameRecorder, RunError> {
        Self::within(model, cfg, crate::control::memory_budget())
    }

    /// [`FrameRecorder::new`] with a memory limit of `limit` bytes.
    pub fn within(
        model: &ParticleModel,
        cfg: &RunConfig,
        limit: u64,
    ) -> Result<FrameRecorder, RunError> {
        check_schedule(cfg.steps, cfg.every, cfg.replicas)?;
        let bytes = Self::bytes(model, cfg);
        let frames = cfg.steps / cfg.every + 1;
        let (name, c) = propulsion_output(model);
        let (m, n, d) = (cfg.replicas, model.n, model.dim);
        let too_large = || {
            RunError::Invalid(format!(
                "the recorded frames would take {} in memory ({} frames × {m} replica(s) × {n} particles), more than the limit of {}: record fewer frames (a larger every) or replicas (the command line streams its frames to the file)",
                crate::control::human_bytes(bytes),
                crate::control::human_count(frames as usize),
                crate::control::human_bytes(limit as f64),
            ))
        };
        if bytes > limit as f64 {
            return Err(too_large());
        }
        fn zeros<T: Clone + Default>(len: usize) -> Option<Vec<T>> {
            let mut v = Vec::new();
            v.try_reserve_exact(len).ok()?;
            v.resize(len, T::default());
            Some(v)
        }
        let f = frames as usize;
        let mut step = Vec::new();
        let mut time = Vec::new();
        step.try_reserve_exact(f).map_err(|_| too_large())?;
        time.try_reserve_exact(f).map_err(|_| too_large())?;
        Ok(FrameRecorder {
            replicas: m,
            n,
            dim: d,
            propulsion_name: name,
            components: c,
            step,
            time,
            position: zeros(m * f * n * d).ok_or_else(too_large)?,
            image: zeros(m * f * n * d).ok_or_else(too_large)?,
            propulsion: zeros(m * f * n * c).ok_or_else(too_large)?,
            series: Vec::new(),
            averages: None,
            planned: f,
        })
    }

    /// Frames recorded.
    pub fn frames(&self) -> usize {
        self.step.len()
    }

    /// Appends `frame` and the observables computed for it.
    pub fn record(
        &mut self,
        model: &ParticleModel,
        frame: &Frame<'_>,
        obs: &Observables,
    ) -> Result<(), RunError> {
        let k = self.frames();
        let (f, nd, nc) = (self.planned, self.n * self.dim, self.n * self.components);
        if k >= f || frame.states.len() != self.replicas {
            return Err(RunError::Invalid(format!(
                "frame {k} of {} replica(s) for a recording of {f} frames of {} replica(s)",
                frame.states.len(),
                self.replicas
            )));
        }
        self.step.push(frame.step);
        self.time.push(frame.time);
        for (r, st) in frame.states.iter().enumerate() {
            let o = r * f + k;
            self.position[o * nd..(o + 1) * nd].copy_from_slice(&st.x);
            self.image[o * nd..(o + 1) * nd].copy_from_slice(&st.image);
            self.propulsion[o * nc..(o + 1) * nc].copy_from_slice(&propulsion_out(model, &st.g));
        }
        for (name, values) in frame_series(model, obs) {
            match self.series.iter_mut().find(|(key, _)| *key == name) {
                Some((_, v)) => v.extend_from_slice(values),
                None => self.series.push((name, values.to_vec())),
            }
        }
        Ok(())
    }

    /// Shrinks the particle arrays to the frames recorded (fewer than planned after a resume).
    fn close(&mut self) {
        let (f, k) = (self.planned, self.frames());
        if k == f {
            return;
        }
        fn compact<T: Copy>(v: &mut Vec<T>, m: usize, f: usize, k: usize, per: usize) {
            for r in 0..m {
                v.copy_within(r * f * per..(r * f + k) * per, r * k * per);
            }
            v.truncate(m * k * per);
        }
        let (m, nd, nc) = (self.replicas, self.n * self.dim, self.n * self.components);
        compact(&mut self.position, m, f, k, nd);
        compact(&mut self.image, m, f, k, nd);
        compact(&mut self.propulsion, m, f, k, nc);
        self.planned = k;
    }
}

/// The observer [`run_to`] drives: the H5MD file (which computes the observables) or bare
/// [`Observables`], then the recorder, fed with those observables (computed once per frame).
struct Composed<'a> {
    file: Option<H5mdOutput>,
    bare: Observables,
    recorder: Option<&'a mut FrameRecorder>,
    frames: usize,
}

impl Composed<'_> {
    fn observables(&self) -> &Observables {
        self.file.as_ref().map_or(&self.bare, |f| &f.observables)
    }
}

impl Observer for Composed<'_> {
    fn frame(&mut self, model: &ParticleModel, frame: &Frame<'_>) -> Result<(), RunError> {
        match self.file.as_mut() {
            Some(f) => f.frame(model, frame)?,
            None => self.bare.frame(model, frame)?,
        }
        self.frames += 1;
        let obs = self.file.as_ref().map_or(&self.bare, |f| &f.observables);
        if let Some(r) = self.recorder.as_deref_mut() {
            r.record(model, frame, obs)?;
        }
        Ok(())
    }

    fn finish(&mut self, model: &ParticleModel, wall_seconds: f64) -> Result<(), RunError> {
        if let Some(f) = self.file.as_mut() {
            f.finish(model, wall_seconds)?;
        }
        let averages = self.observables().averages();
        if let Some(r) = self.recorder.as_mut() {
            r.averages = averages;
            r.close();
        }
        Ok(())
    }
}

/// [`run`] with the output file optional and the frames optionally recorded in memory: `out`
/// None writes nothing (and cannot `resume`); `recorder` (from [`FrameRecorder::new`] for the
/// same `cfg`) receives every frame this call records with the observables the file holds —
/// the same numbers, bit for bit, computed once. After a resume it holds only the frames after
/// the checkpoint.
pub fn run_to(
    model: &ParticleModel,
    out: Option<&Path>,
    cfg: &RunConfig,
    progress: &dyn crate::control::Progress,
    recorder: Option<&mut FrameRecorder>,
) -> Result<RunSummary, RunError> {
    Ok(run_with(model, out, cfg, progress, recorder, &OneProcess)?
        .expect("one process is the root"))
}

/// [`run_to`] on the processes of `engine`: with [`OneProcess`] exactly [`run_to`]; with the
/// ranks of an MPI communicator (`particles::mpi::Mpi`, feature `mpi`) every rank calls it, the root alone
/// touches the file (lock, resume, frames, checkpoints), and every rank gets the same outcome —
/// the root the summary (`Some`), the others `None`, or all an error. The datasets written do
/// not depend on the number of ranks, and a run interrupted with one rank count resumes with
/// another to the same file.
pub fn run_with<E: Engine>(
    model: &ParticleModel,
    out: Option<&Path>,
    cfg: &RunConfig,
    progress: &dyn crate::control::Progress,
    recorder: Option<&mut FrameRecorder>,
    engine: &E,
) -> Result<Option<RunSummary>, RunError> {
    // before any file is made
    check_schedule(cfg.steps, cfg.every, cfg.replicas)?;
    let m = cfg.replicas;
    let root = engine.is_root();
    if out.is_none() && cfg.resume {
        return Err(RunError::Invalid(
            "--resume continues an output file: give one".into(),
        ));
    }
    // the root prepares the file (or resumes it) and the initial states
    let prepared = if root {
        prepare(model, out, cfg).map(Some)
    } else {
        Ok(None)
    };
    if engine.any(prepared.is_err()) {
        return Err(prepared.err().unwrap_or(RunError::OnAnotherRank));
    }
    let mut prepared = prepared.expect("checked");
    let recorded = engine.share(prepared.as_ref().map_or(0, |p| p.recorded as u64)) as usize;
    let resumed = match engine.share(
        prepared
            .as_ref()
            .and_then(|p| p.resumed)
            .map_or(0, |s| s + 1),
    ) {
        0 => None,
        s => Some(s - 1),
    };
    let mut states = prepared
        .as_mut()
        .map(|p| std::mem::take(&mut p.states).into_iter());
    let sims: Vec<E::Replica> = (0..m)
        .map(|r| {
            let st = states.as_mut().and_then(|s| s.next());
            engine.replica(model, st, cfg.seed, r as u32)
        })
        .collect();
    let mut driver = Driver::<E::Replica>::from_simulations(
        sims,
        cfg.burn_in_steps,
        cfg.steps,
        cfg.every,
        recorded,
    )?;
    let (output, lock) = match prepared {
        Some(p) => (p.output, p.lock),
        None => (None, None),
    };
    let mut composed = Composed {
        file: output,
        bare: Observables::new(None),
        recorder,
        frames: 0,
    };
    let result = if root {
        driver.run(
            model,
            engine,
            &mut [&mut composed],
            &cfg.cancel,
            progress,
            cfg.abort_after_frames,
        )
    } else {
        let quiet = crate::control::NoProgress;
        driver.run(
            model,
            engine,
            &mut [],
            &cfg.cancel,
            &quiet,
            cfg.abort_after_frames,
        )
    };
    let mut output = composed.file.take();
    let end = match result {
        Ok(end) => end,
        // resumable: the partial file (with its checkpoint) stays, and the message says so
        Err(RunError::Interrupted { frames, .. }) => {
            return Err(RunError::Interrupted {
                frames,
                partial: output.as_ref().and_then(|o| o.partial()),
            })
        }
        Err(RunError::Aborted { frames, .. }) => {
            return Err(RunError::Aborted {
                frames,
                partial: output.as_ref().and_then(|o| o.partial()),
            })
        }
        // for good (blow-up, a write error): nothing is left behind
        Err(e) => {
            if let Some(o) = output.as_mut() {
                o.discard();
            }
            return Err(e);
        }
    };
    drop(lock);
    let traffic = driver.sims[0].traffic();
    if !root {
        return Ok(None);
    }
    let mut s = match &output {
        Some(o) => summary(model, cfg, out, end, o.frames, resumed, &o.observables),
        None => summary(model, cfg, None, end, composed.frames, None, &composed.bare),
    };
    s.ranks = engine.ranks();
    s.traffic = traffic;
    Ok(Some(s))
}

/// What the root sets up before a run: the output (created, or opened to resume, with its lock
/// held until the file is published), the replicas' states, the frames already recorded.
struct Prepared {
    output: Option<H5mdOutput>,
    lock: Option<OutputLock>,
    states: Vec<ParticleState>,
    recorded: usize,
    resumed: Option<u64>,
}

/// The root's side of [`run_with`] before the first step: checks, the output file, the states.
fn prepare(
    model: &ParticleModel,
    out: Option<&Path>,
    cfg: &RunConfig,
) -> Result<Prepared, RunError> {
    let m = cfg.replicas;
    let (n, d) = (model.n, model.dim);
    let gd = model.propulsion_dim();
    let fresh = || -> Vec<ParticleState> {
        (0..m)
            .map(|r| super::sim::initial_state(model, cfg.seed, r as u32))
            .collect()
    };
    let Some(out) = out else {
        return Ok(Prepared {
            output: None,
            lock: None,
            states: fresh(),
            recorded: 0,
            resumed: None,
        });
    };
    let (prop_name, out_components) = propulsion_output(model);
    let params = recorded_parameters(model, cfg);
    check_output_size(out, cfg, n, d, out_components)?;
    // held until the file is published (or the run stops)
    let lock = OutputLock::acquire(out)?;
    let partial = crate::io::h5md::partial_path(out)?;
    let found = if cfg.resume {
        match H5mdWriter::open_partial(&lock)? {
            PartialFile::Resumable(w, ck) => Some((*w, ck)),
            PartialFile::Incomplete(why) => {
                (cfg.warn)(&format!(
                    "{}: {why} (the run was killed before its first frame was written): starting from the beginning",
                    partial.display()
                ));
                None
            }
        }
    } else {
        if lock.stale_partial() {
            (cfg.warn)(&format!(
                "replacing {}, left by a run of {} that did not finish (--resume would continue it)",
                partial.display(),
                out.display()
            ));
        }
        None
    };

    if let Some((mut w, ck)) = found {
        check_same_settings(&w, &params, &partial)?;
        let saved = ck.replicas;
        if saved.len() != m {
            return Err(RunError::Invalid(format!(
                "the partial file holds {} replicas, the command asks for {m}",
                saved.len()
            )));
        }
        let mut states = Vec::new();
        let mut refs = Vec::new();
        for s in saved {
            if s.x.len() != n * d || s.g.len() != n * gd {
                return Err(RunError::Invalid(
                    "the partial file does not match this model (N, dimension)".into(),
                ));
            }
            // the reference frame (frame 0) is restored from the checkpoint
            refs.push(Reference {
                unwrapped: s.ref_unwrapped.clone(),
                g: s.ref_g.clone(),
            });
            states.push(ParticleState {
                x: s.x,
                image: s.image,
                g: s.g,
                step: s.step,
            });
        }
        let from = states[0].step;
        w.set_checkpoint_interval(cfg.checkpoint_interval);
        let mut output = H5mdOutput::new(w, Some(refs));
        output.observables.restore_accumulators(&ck.accumulators)?;
        let recorded = output.frames_written();
        Ok(Prepared {
            output: Some(output),
            lock: Some(lock),
            states,
            recorded,
            resumed: Some(from),
        })
    } else {
        let layouts: Vec<GroupLayout> = (0..m)
            .map(|r| GroupLayout {
                name: group_name(r, m),
                n,
                dim: d,
                propulsion: (prop_name.into(), out_components),
            })
            .collect();
        let mut w =
            H5mdWriter::create(&lock, &layouts, model.bx.length, "phaseflow user", &params)?;
        w.set_checkpoint_interval(cfg.checkpoint_interval);
        Ok(Prepared {
            output: Some(H5mdOutput::new(w, None)),
            lock: Some(lock),
            states: fresh(),
            recorded: 0,
            resumed: None,
        })
    }
}

/// The summary of a run that reached its last frame.
fn summary(
    model: &ParticleModel,
    cfg: &RunConfig,
    out: Option<&Path>,
    end: DriverEnd,
    frames: usize,
    resumed_from_step: Option<u64>,
    observables: &Observables,
) -> RunSummary {
    let wall = end.wall_seconds;
    let ps = (model.n * cfg.replicas) as f64 * end.steps as f64;
    RunSummary {
        system: model.name.clone(),
        model: match model.dynamics {
            Dynamics::Aoup { .. } => "aoup".into(),
            Dynamics::Abp { .. } => "abp".into(),
        },
        output: out.map(Path::to_path_buf),
        n_particles: model.n,
        dimension: model.dim,
        replicas: cfg.replicas,
        packing_fraction: model.packing_fraction,
        box_edge: model.bx.length,
        dt: model.dt,
        steps: end.steps,
        frames,
        resumed_from_step,
        wall_seconds: wall,
        particle_steps_per_second: if wall > 0.0 { ps / wall } else { f64::INFINITY },
        threads: rayon::current_num_threads(),
        ranks: 1,
        traffic: None,
        largest_cluster_fraction: observables.last_cluster,
    }
}

/// `/parameters` of a run: every effective model parameter, then the run's settings. Those but
/// `command` and `definition_path` must match for `--resume` ([`check_same_settings`]).
fn recorded_parameters(model: &ParticleModel, cfg: &RunConfig) -> Vec<(String, AttrValue)> {
    let mut params: Vec<(String, AttrValue)> = model
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), AttrValue::F64(*v)))
        .collect();
    params.push(("system".into(), AttrValue::Str(model.name.clone())));
    params.push((
        "model".into(),
        AttrValue::Str(match model.dynamics {
            Dynamics::Aoup { .. } => "aoup".into(),
            Dynamics::Abp { .. } => "abp".into(),
        }),
    ));
    params.push(("seed".into(), AttrValue::U64(cfg.seed)));
    params.push(("command".into(), AttrValue::Str(cfg.command.clone())));
    params.push(("definition".into(), AttrValue::Str(model.source.clone())));
    params.push((
        "definition_path".into(),
        AttrValue::Str(model.path.display().to_string()),
    ));
    params.push(("replicas".into(), AttrValue::U64(cfg.replicas as u64)));
    params.push(("steps".into(), AttrValue::U64(cfg.steps)));
    params.push(("every".into(), AttrValue::U64(cfg.every)));
    params.push(("burn_in_steps".into(), AttrValue::U64(cfg.burn_in_steps)));
    params.push(("n_fixed".into(), AttrValue::U64(model.n_fixed as u64)));
    params.push((
        "noise".into(),
        AttrValue::Str(
            "counter-based Philox4x32-10 keyed by (seed, replica, step, particle): identical output for any thread count".into(),
        ),
    ));
    params
}

/// Refuses to resume a partial file written with other settings than `params` (this command's),
/// naming each setting that differs with both values: continuing it would mix two runs in one
/// file.
fn check_same_settings(
    w: &H5mdWriter,
    params: &[(String, AttrValue)],
    partial: &Path,
) -> Result<(), RunError> {
    let show = |v: &AttrValue| match v {
        AttrValue::F64(x) => format!("{x}"),
        AttrValue::U64(x) => format!("{x}"),
        AttrValue::I64(x) => format!("{x}"),
        AttrValue::Str(x) => format!("'{x}'"),
        other => format!("{other:?}"),
    };
    let option = |k: &str| -> String {
        match k {
            "seed" => "--seed".into(),
            "steps" => "--steps (or --t-end)".into(),
            "every" => "--every".into(),
            "burn_in_steps" => "--burn-in (in steps)".into(),
            "replicas" => "--replicas".into(),
            "system" | "model" | "n_fixed" | "noise" => k.into(),
            _ => format!("parameter {k}"),
        }
    };
    let mut differences = Vec::new();
    for (k, v) in params {
        if k == "command" || k == "definition_path" {
            continue;
        }
        let same = match (w.parameter(k, v), v) {
            (Some(AttrValue::F64(a)), AttrValue::F64(b)) => a.to_bits() == b.to_bits(),
            (Some(a), b) => &a == b,
            (None, _) => {
                differences.push(format!("{} is not recorded in it", option(k)));
                continue;
            }
        };
        if same {
            continue;
        }
        if k == "definition" {
            differences.push("the definition file's text has changed since".into());
        } else {
            let recorded = w.parameter(k, v).map(|a| show(&a)).unwrap_or_default();
            differences.push(format!(
                "{} is {} here but {recorded} in it",
                option(k),
                show(v)
            ));
        }
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(RunError::Invalid(format!(
        "cannot resume: this command's settings differ from those of the run that wrote {}: {}; give the same settings, or run without --resume to start afresh",
        partial.display(),
        differences.join("; ")
    )))
}
