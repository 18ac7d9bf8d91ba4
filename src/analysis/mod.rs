//! Analyses of trajectories and systems. This version: attractor statistics
//! ([`stats`]: per-component mean and standard deviation, dominant spectral period).

pub mod stats;
