//! # phaseflow
//!
//! An engine for the physics of systems far from equilibrium: chaotic flows, maps, delay and
//! stochastic equations from plain-text definition files, active-matter particle systems, score
//! networks learned from their stationary samples, and the analyses built on them (Lyapunov
//! spectra and other invariants, entropy production rates, the forecasting benchmark).
//!
//! The library is the product: the `phaseflow` binary ([`cli`]) and the Python package are thin
//! front ends over the calls below, and a Rust program gets, bit for bit, the datasets a command
//! writes.
//!
//! ```
//! use phaseflow::simulate::Run;
//! use phaseflow::systems::{CompiledSystem, Overrides};
//! let lorenz = CompiledSystem::load("lorenz", &Overrides::default())?;
//! let out = Run::new(&lorenz).points(500).burn_in(10.0).run()?;
//! let path = std::env::temp_dir().join("phaseflow-lib-doc.h5");
//! phaseflow::io::write_trajectory(&path, &out.trajectory)?; // atomic: all or nothing
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layers
//!
//! A module uses only modules of lower layers (no import cycles; `tests/layers.rs` checks it):
//!
//! | layer | modules | role |
//! |---|---|---|
//! | 0 | [`control`], [`dynamics`], [`seeds`], [`block_cache`] | cancellation and progress; the traits at the seams ([`dynamics::System`], [`dynamics::Jacobian`], [`dynamics::DelaySystem`]); random-stream seeds; the binary's allocator (reuse of large blocks) |
//! | 1 | [`io`], [`systems`], [`integrate`] | HDF5/H5MD and GSD files and plots; definition files → compiled systems, the catalogue index ([`systems::Catalogue`]); integrators of any [`dynamics::System`] |
//! | 2 | [`particles`], [`shard`] | the particle engine: models, forces, the driver and its observers; splitting a work list over processes (`--shard I/N`, Slurm arrays) and merging the parts |
//! | 3 | [`simulate`], [`score`] | one loader for every file ([`simulate::Definition`]) and the run builder of equation systems ([`simulate::Run`]); score networks (burn): training, evaluation (feature `learn`) |
//! | 4 | [`analysis`] | invariants, Lyapunov spectra, series analysis, entropy production |
//! | 5 | [`catalogue`], [`forecast`], [`sweep`] | catalogue-wide checks and tables; the forecasting benchmark; parameter sweeps of the invariants |
//! | 6 | [`cli`] | the command line: one file per subcommand, parsing and printing only |
//!
//! The score networks ([`score`], and what uses them: `phaseflow train`, `score`, `epr --model`,
//! the `mlp` forecaster) need the default feature `learn` (burn); `--no-default-features`
//! builds the rest in about half the time.
//!
//! Long-running calls take a [`control::Cancel`] token and a [`control::Progress`] reporter;
//! the library never installs signal handlers (the binary connects Ctrl-C to one token).

pub mod analysis;
pub mod block_cache;
pub mod catalogue;
pub mod cli;
pub mod control;
pub mod dynamics;
pub mod forecast;
pub mod integrate;
pub mod io;
pub mod particles;
#[cfg(feature = "learn")]
pub mod score;
pub mod seeds;
pub mod shard;
pub mod simulate;
pub mod sweep;
pub mod systems;
