//! Seeds of independent random streams, at the bottom of the layers (simulations, ensembles and
//! the forecasting benchmark draw from them).
//!
//! ```
//! use phaseflow::seeds::stream_seed;
//! assert_ne!(stream_seed(1, 0), stream_seed(1, 1));
//! assert_eq!(stream_seed(7, 3), stream_seed(7, 3));
//! ```

/// A well-mixed 64-bit seed for stream `k` of a run seeded with `seed` (SplitMix64 finaliser),
/// so ensemble members get independent, thread-count-independent random streams.
pub fn stream_seed(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
