//! # phaseflow
//!
//! A engine for the physics of systems far from equilibrium. This crate holds the dynamics core:
//! system definition files compiled to native code ([`systems`]), integrators ([`integrate`]),
//! and HDF5 / plot output ([`io`]). The `phaseflow` binary ([`cli`]) drives them.

pub mod io;
pub mod systems;
