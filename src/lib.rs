//! # phaseflow
//!
//! An engine for the physics of systems far from equilibrium. This crate holds the dynamics
//! core: system definition files compiled to native code ([`systems`]), integrators
//! ([`integrate`]), HDF5 trajectories and plots ([`io`]), and the `phaseflow` command line
//! ([`cli`]); active-matter particles ([`particles`]), score networks ([`score`]), analyses
//! ([`analysis`]) and the forecasting benchmark ([`forecast`]).

pub mod analysis;
pub mod catalogue;
pub mod cli;
pub mod control;
pub mod forecast;
pub mod integrate;
pub mod io;
pub mod particles;
pub mod score;
pub mod simulate;
pub mod systems;
