//! The traits at the seams, shared by every layer: a [`System`] gives a right-hand side, a
//! [`Jacobian`] system also its exact Jacobian, a [`BatchSystem`] evaluates many states at once,
//! a [`DelaySystem`] has delayed terms. Definition files ([`crate::systems`]), particle models
//! ([`crate::particles`]) and hand-written systems implement them; integrators
//! ([`crate::integrate`]) and analyses ([`crate::analysis`]) take any implementation. This module
//! depends on nothing else in the crate.
//!
//! ```
//! use phaseflow::dynamics::System;
//! /// The harmonic oscillator x' = v, v' = −x.
//! struct Oscillator;
//! impl System for Oscillator {
//!     fn dim(&self) -> usize { 2 }
//!     fn rhs(&self, _t: f64, x: &[f64], out: &mut [f64]) {
//!         out[0] = x[1];
//!         out[1] = -x[0];
//!     }
//! }
//! let mut f = [0.0; 2];
//! Oscillator.rhs(0.0, &[1.0, 0.0], &mut f);
//! assert_eq!(f, [0.0, -1.0]);
//! ```

/// Continuous or discrete time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeKind {
    Continuous,
    Discrete,
}

/// A dynamical system: state dimension and right-hand side.
///
/// For flows `rhs` writes dx/dt = f(t, x); for maps it writes x_{n+1} = f(n, x_n).
/// Implementations must not allocate in `rhs` (it is called in the integrators' hot loops).
pub trait System {
    /// State dimension D.
    fn dim(&self) -> usize;
    /// Continuous (flow) or discrete (map) time.
    fn time_kind(&self) -> TimeKind {
        TimeKind::Continuous
    }
    /// Writes f(t, x) into `out` (length D).
    fn rhs(&self, t: f64, x: &[f64], out: &mut [f64]);
}

/// Largest state dimension D for which a dense D×D Jacobian is allocated (the Rosenbrock
/// method, the stiffness detection of `Method::Auto`, Lyapunov spectra): 8192² doubles are
/// 512 MiB. Larger systems (Lorenz-96 with 10⁵ variables) integrate with the explicit methods;
/// what needs the dense matrix is refused with a message instead of an allocation failure.
pub const MAX_DENSE_JACOBIAN_DIM: usize = 8192;

/// `Err(reason)` when `what` would need a dense Jacobian of a system of dimension `d` larger
/// than [`MAX_DENSE_JACOBIAN_DIM`].
pub fn check_dense_jacobian(d: usize, what: &str) -> Result<(), String> {
    if d <= MAX_DENSE_JACOBIAN_DIM {
        return Ok(());
    }
    let gib = (d as f64) * (d as f64) * 8.0 / (1u64 << 30) as f64;
    Err(format!(
        "{what} needs the dense {d}×{d} Jacobian ({gib:.1} GiB): at most dimension {MAX_DENSE_JACOBIAN_DIM}"
    ))
}

/// A system with an exact Jacobian.
pub trait Jacobian: System {
    /// Writes ∂f_i/∂x_j at `out[i*D + j]` (row-major D×D).
    fn jacobian(&self, t: f64, x: &[f64], out: &mut [f64]);
    /// f(t, x) and its Jacobian together (compiled systems evaluate both in one kernel, sharing
    /// subexpressions).
    fn rhs_jacobian(&self, t: f64, x: &[f64], f: &mut [f64], jac: &mut [f64]) {
        self.rhs(t, x, f);
        self.jacobian(t, x, jac);
    }
}

/// A system that evaluates the right-hand side of many states at once, in
/// structure-of-arrays layout: component `k` of state `i` at `x[k*stride + i]` (likewise `out`),
/// states `0..n`, `n <= stride`. Results equal `n` calls of [`System::rhs`] bit for bit.
pub trait BatchSystem: System {
    fn rhs_batch(&self, t: f64, x: &[f64], stride: usize, n: usize, out: &mut [f64]);
}

/// A system with delayed terms `x_{c_k}(t − τ_k)`, `k = 0..L`.
pub trait DelaySystem {
    /// State dimension.
    fn dim(&self) -> usize;
    /// `(component c_k, delay τ_k > 0)` of each delayed term, evaluated for the current
    /// parameters. Called once per integration.
    fn lags(&self) -> Vec<(usize, f64)>;
    /// Writes `f(t, x, lagged)` into `out`, with `lagged[k] = x_{c_k}(t − τ_k)`. Must not
    /// allocate.
    fn rhs_lagged(&self, t: f64, x: &[f64], lagged: &[f64], out: &mut [f64]);
}
