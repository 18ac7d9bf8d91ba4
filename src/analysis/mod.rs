//! Analyses of trajectories and systems: attractor statistics ([`stats`]: per-component mean
//! and standard deviation, dominant spectral period) and Lyapunov spectra with the dimensions and
//! entropies derived from them ([`lyapunov`]), entropy production rates ([`epr`]).

pub mod dimension;
pub mod epr;
pub mod epr_output;
pub mod invariants;
pub mod lyapunov;
pub mod series;
pub mod stats;
pub mod timeseries;
