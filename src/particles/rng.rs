//! Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11): every draw is a pure
//! function of (seed, stream, step, particle), so the noise a particle receives does not depend on
//! which thread computes it or in which order — runs are bit-identical for any thread count.

/// Philox4x32 multipliers and Weyl key increments (Random123).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds: maps a 128-bit counter and a 64-bit key to 128 random bits.
#[inline]
pub fn philox4x32(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// A keyed counter-based generator: `normals(step, particle, block)` returns four independent
/// standard normal numbers for that (step, particle, block); blocks let one particle draw more
/// than four numbers per step.
#[derive(Debug, Clone, Copy)]
pub struct CounterRng {
    key: [u32; 2],
    stream: u32,
}

impl CounterRng {
    /// Generator for `seed`; `stream` separates independent uses (replicas, initial conditions,
    /// dynamics) under one seed.
    pub fn new(seed: u64, stream: u32) -> CounterRng {
        CounterRng {
            key: [seed as u32, (seed >> 32) as u32],
            stream,
        }
    }

    /// 128 random bits for (step, particle, block).
    #[inline]
    pub fn bits(&self, step: u64, particle: u32, block: u32) -> [u32; 4] {
        // counter: step (64 bits), particle, stream ⊕ block (block < 2^8 shifted high)
        philox4x32(
            [
                step as u32,
                (step >> 32) as u32,
                particle,
                self.stream ^ (block << 24),
            ],
            self.key,
        )
    }

    /// Four uniform numbers in (0, 1) from one Philox block (32-bit resolution, never 0 or 1:
    /// (k + ½)/2³²).
    #[inline]
    pub fn uniforms(&self, step: u64, particle: u32, block: u32) -> [f64; 4] {
        let b = self.bits(step, particle, block);
        let u = |v: u32| (v as f64 + 0.5) * (1.0 / 4_294_967_296.0);
        [u(b[0]), u(b[1]), u(b[2]), u(b[3])]
    }

    /// Four independent N(0, 1) numbers (Box–Muller on the two pairs of uniforms of one Philox
    /// block; |z| ≤ 6.7 by the 32-bit resolution, a tail probability of 2e-11 per draw).
    #[inline]
    pub fn normals(&self, step: u64, particle: u32, block: u32) -> [f64; 4] {
        let b = self.bits(step, particle, block);
        let u = |v: u32| (v as f64 + 0.5) * (1.0 / 4_294_967_296.0);
        let (s0, c0) = unit_circle(b[1]);
        let (s1, c1) = unit_circle(b[3]);
        let r0 = (-2.0 * u(b[0]).ln()).sqrt();
        let r1 = (-2.0 * u(b[2]).ln()).sqrt();
        [r0 * c0, r0 * s0, r1 * c1, r1 * s1]
    }
}

/// (sin, cos) of the angle 2π (v + ½)/2³² for a 32-bit integer v: the top 8 bits pick one of 256
/// tabulated angles, the remaining 24 a rotation δ < 2π/256 whose sine and cosine are short
/// Taylor polynomials (truncation below 1e-20); absolute error below 1e-15, branch-free.
#[inline(always)]
fn unit_circle(v: u32) -> (f64, f64) {
    static TABLE: std::sync::LazyLock<[(f64, f64); 256]> = std::sync::LazyLock::new(|| {
        let mut t = [(0.0, 0.0); 256];
        for (j, e) in t.iter_mut().enumerate() {
            *e = (std::f64::consts::TAU * j as f64 / 256.0).sin_cos();
        }
        t
    });
    let (sa, ca) = TABLE[(v >> 24) as usize];
    let d = std::f64::consts::TAU * (((v & 0x00ff_ffff) as f64 + 0.5) * (1.0 / 4_294_967_296.0));
    let d2 = d * d;
    let sd = d * (1.0 + d2 * (-1.0 / 6.0 + d2 * (1.0 / 120.0 + d2 * (-1.0 / 5040.0))));
    let cd = 1.0 + d2 * (-0.5 + d2 * (1.0 / 24.0 + d2 * (-1.0 / 720.0 + d2 * (1.0 / 40_320.0))));
    (sa * cd + ca * sd, ca * cd - sa * sd)
}

/// sin and cos of x for |x| ≤ 20 (used for Box–Muller angles in [0, 2π) and wrapped
/// orientation angles), to within 2 ulp of the libm values and several times faster: reduction
/// by multiples of π/2 (two-part Cody–Waite constant) and Taylor polynomials on [−π/4, π/4]
/// (truncation error below 5e-17).
#[inline(always)]
pub fn sin_cos(x: f64) -> (f64, f64) {
    const FRAC_2_PI: f64 = std::f64::consts::FRAC_2_PI;
    const PIO2_HI: f64 = std::f64::consts::FRAC_PI_2;
    const PIO2_LO: f64 = 6.123_233_995_736_766e-17;
    // floor without a libm call (no SSE4.1 in the baseline target): shift to positive, truncate
    let k = ((x * FRAC_2_PI + 0.5 + 16.0) as i64 - 16) as f64;
    let r = (x - k * PIO2_HI) - k * PIO2_LO;
    let r2 = r * r;
    // sin r = r (1 − r²/3! + r⁴/5! − …), cos r = 1 − r²/2! + r⁴/4! − …
    let s = r
        * (1.0
            + r2 * (-1.0 / 6.0
                + r2 * (1.0 / 120.0
                    + r2 * (-1.0 / 5040.0
                        + r2 * (1.0 / 362_880.0
                            + r2 * (-1.0 / 39_916_800.0
                                + r2 * (1.0 / 6_227_020_800.0
                                    + r2 * (-1.0 / 1_307_674_368_000.0))))))));
    let c = 1.0
        + r2 * (-0.5
            + r2 * (1.0 / 24.0
                + r2 * (-1.0 / 720.0
                    + r2 * (1.0 / 40_320.0
                        + r2 * (-1.0 / 3_628_800.0
                            + r2 * (1.0 / 479_001_600.0
                                + r2 * (-1.0 / 87_178_291_200.0
                                    + r2 * (1.0 / 20_922_789_888_000.0))))))));
    // quadrant q = k mod 4, selected without branches (the Box–Muller angles are random, so a
    // branch would mispredict half the time): (sin, cos) = (s, c), (c, −s), (−s, −c), (−c, s)
    let q = (k as i64) & 3;
    let swap = q & 1 == 1;
    let sign_s = (1 - 2 * ((q >> 1) & 1)) as f64;
    let sign_c = (1 - 2 * (((q + 1) >> 1) & 1)) as f64;
    let (a, b) = if swap { (c, s) } else { (s, c) };
    (sign_s * a, sign_c * b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_circle_matches_libm() {
        let mut worst = 0.0f64;
        for k in 0..100_000u64 {
            let v = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
            let a = std::f64::consts::TAU * ((v as f64 + 0.5) / 4_294_967_296.0);
            let (s, c) = unit_circle(v);
            worst = worst.max((s - a.sin()).abs()).max((c - a.cos()).abs());
        }
        assert!(worst < 8.0 * f64::EPSILON, "max error {worst:e}");
    }

    #[test]
    fn fast_sin_cos_matches_libm() {
        let mut worst = 0.0f64;
        for k in 0..200_001 {
            let x = -8.0 + 16.0 * k as f64 / 200_000.0;
            let (s, c) = sin_cos(x);
            worst = worst.max((s - x.sin()).abs()).max((c - x.cos()).abs());
        }
        assert!(worst < 4.0 * f64::EPSILON, "max error {worst:e}");
    }

    /// Known-answer test of Random123 (kat_vectors: philox4x32_10, counter = key = 0 and all
    /// ones).
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
    }

    #[test]
    fn normals_have_unit_moments() {
        let rng = CounterRng::new(7, 1);
        let (mut s1, mut s2, mut s4) = (0.0, 0.0, 0.0);
        let n = 200_000;
        for k in 0..n / 4 {
            for z in rng.normals(k as u64, 3, 0) {
                s1 += z;
                s2 += z * z;
                s4 += z * z * z * z;
            }
        }
        let nf = n as f64;
        assert!((s1 / nf).abs() < 5.0 / nf.sqrt());
        assert!((s2 / nf - 1.0).abs() < 5.0 * (2.0 / nf).sqrt());
        assert!((s4 / nf - 3.0).abs() < 5.0 * (96.0 / nf).sqrt());
        // distinct particles, steps and streams give different numbers
        assert_ne!(rng.normals(1, 3, 0), rng.normals(1, 4, 0));
        assert_ne!(rng.normals(1, 3, 0), rng.normals(2, 3, 0));
        assert_ne!(rng.normals(1, 3, 0), CounterRng::new(7, 2).normals(1, 3, 0));
        assert_ne!(rng.normals(1, 3, 0), rng.normals(1, 3, 1));
    }
}
