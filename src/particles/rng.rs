//! Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11): every draw is a pure
//! function of (seed, stream, step, particle), so the noise a particle receives does not depend on
//! which thread computes it or in which order — runs are bit-identical for any thread count.

/// Philox4x32 multipliers and Weyl key increments (Random123).
pub(crate) const M0: u32 = 0xD251_1F53;
pub(crate) const M1: u32 = 0xCD9E_8D57;
pub(crate) const W0: u32 = 0x9E37_79B9;
pub(crate) const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds: maps a 128-bit counter and a 64-bit key to 128 random bits.
#[inline(always)]
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

    /// The Philox key (two words of the seed).
    pub(crate) fn key(&self) -> [u32; 2] {
        self.key
    }

    /// The fourth counter word of (block): the stream with the block in its high byte.
    pub(crate) fn stream_word(&self, block: u32) -> u32 {
        self.stream ^ (block << 24)
    }

    /// The ziggurat tables: fast-path limits k[i] and scales w[i] of the 128 layers (for the
    /// vectorised fast path of [`CounterRng::normals`]).
    pub(crate) fn ziggurat_tables() -> (&'static [u32; 128], &'static [f64; 128]) {
        let z = &*ZIGGURAT;
        (&z.k, &z.w)
    }

    /// 128 random bits for (step, particle, block).
    #[inline(always)]
    pub fn bits(&self, step: u64, particle: u32, block: u32) -> [u32; 4] {
        // counter: step (64 bits), particle, stream ⊕ block (block < 2^8 shifted high)
        philox4x32(
            [
                step as u32,
                (step >> 32) as u32,
                particle,
                self.stream_word(block),
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

    /// Four independent N(0, 1) numbers for (step, particle, block), one 32-bit word of a
    /// Philox block each, by the ziggurat method (Marsaglia & Tsang 2000, 128 layers): 97.2 % of
    /// draws cost a table lookup and a multiplication; the rest (wedges and the tail beyond
    /// r = 3.4426) take extra Philox blocks from a disjoint counter range (see
    /// `CounterRng::fallback_bits`), so every draw stays a pure function of its counter. Each
    /// word is split into layer (7 bits), sign (1 bit) and a 24-bit magnitude, so the layer
    /// index is independent of the value (the correlation Doornik 2005 found in the original).
    /// Exact up to the 24-bit resolution within a layer.
    #[inline(always)]
    pub fn normals(&self, step: u64, particle: u32, block: u32) -> [f64; 4] {
        let b = self.bits(step, particle, block);
        let z = &*ZIGGURAT;
        let mut out = [0.0; 4];
        for (lane, (o, &w)) in out.iter_mut().zip(&b).enumerate() {
            let (iz, hz) = ((w & 127) as usize, w >> 8);
            *o = if hz < z.k[iz] {
                // the sign bit set from bit 7 without a branch (a random sign would mispredict
                // half the time)
                f64::from_bits((hz as f64 * z.w[iz]).to_bits() | ((w as u64 & 128) << 56))
            } else {
                self.normal_slow(step, particle, block, lane as u32, w)
            };
        }
        out
    }

    /// 128 random bits for the `attempt`-th fallback draw of word `lane` of (step, particle,
    /// block): the counter's high step word carries a marker bit, the lane and the attempt
    /// (steps below 2⁴⁸ — 9 years at 10⁶ steps per second — keep the ranges disjoint).
    #[inline(never)]
    fn fallback_bits(
        &self,
        step: u64,
        particle: u32,
        block: u32,
        lane: u32,
        attempt: u32,
    ) -> [u32; 4] {
        debug_assert!(step < 1 << 48);
        let hi =
            ((step >> 32) as u32 & 0xffff) | 1 << 31 | (lane & 3) << 28 | (attempt & 0xfff) << 16;
        philox4x32(
            [step as u32, hi, particle, self.stream ^ (block << 24)],
            self.key,
        )
    }

    /// The rare branch of [`CounterRng::normals`] for word `lane` (= `word`) of (step,
    /// particle, block), when the fast path does not accept it: wedge rejection tests and the
    /// Marsaglia tail algorithm, with uniforms from [`CounterRng::fallback_bits`].
    #[cold]
    #[inline(never)]
    pub(crate) fn normal_slow(
        &self,
        step: u64,
        particle: u32,
        block: u32,
        lane: u32,
        word: u32,
    ) -> f64 {
        let z = &*ZIGGURAT;
        let u = |v: u32| (v as f64 + 0.5) * (1.0 / 4_294_967_296.0);
        let mut w = word;
        let mut attempt = 0u32;
        loop {
            let (iz, hz) = ((w & 127) as usize, w >> 8);
            let sign = if w & 128 != 0 { -1.0 } else { 1.0 };
            if hz < z.k[iz] {
                return sign * (hz as f64 * z.w[iz]);
            }
            let extra = self.fallback_bits(step, particle, block, lane, attempt);
            attempt += 1;
            if iz == 0 {
                // tail x > r: x = r + e1/r with e1, e2 exponential, accepted if 2 e2 > (e1/r)²
                let x = -u(extra[2]).ln() / ZIG_R;
                let y = -u(extra[3]).ln();
                if y + y > x * x {
                    return sign * (ZIG_R + x);
                }
                continue;
            }
            let x = hz as f64 * z.w[iz];
            if z.f[iz] + u(extra[0]) * (z.f[iz - 1] - z.f[iz]) < (-0.5 * x * x).exp() {
                return sign * x;
            }
            w = extra[1];
        }
    }
}

/// Right edge of the base layer of the 128-layer normal ziggurat, and the common layer area.
const ZIG_R: f64 = 3.442_619_855_899;
const ZIG_V: f64 = 9.912_563_035_262_17e-3;

/// Ziggurat tables (Marsaglia & Tsang 2000) for a 24-bit magnitude m: layer i has right edge
/// x_i (`w[i] = x_i / 2²⁴`), accepts m < `k[i]` = 2²⁴ x_{i−1}/x_i at once, and `f[i] = e^{−x_i²/2}`.
struct Ziggurat {
    k: [u32; 128],
    w: [f64; 128],
    f: [f64; 128],
}

static ZIGGURAT: std::sync::LazyLock<Ziggurat> = std::sync::LazyLock::new(|| {
    let m = 16_777_216.0f64;
    let mut z = Ziggurat {
        k: [0; 128],
        w: [0.0; 128],
        f: [0.0; 128],
    };
    let mut dn = ZIG_R;
    let mut tn = dn;
    let q = ZIG_V / (-0.5 * dn * dn).exp();
    z.k[0] = ((dn / q) * m) as u32;
    z.k[1] = 0;
    z.w[0] = q / m;
    z.w[127] = dn / m;
    z.f[0] = 1.0;
    z.f[127] = (-0.5 * dn * dn).exp();
    for i in (1..=126).rev() {
        dn = (-2.0 * (ZIG_V / dn + (-0.5 * dn * dn).exp()).ln()).sqrt();
        z.k[i + 1] = ((dn / tn) * m) as u32;
        tn = dn;
        z.f[i] = (-0.5 * dn * dn).exp();
        z.w[i] = dn / m;
    }
    z
});

/// Taylor coefficients of sin r / r after the constant 1: −1/3!, 1/5!, …, −1/15!.
pub(crate) const SIN_TAYLOR: [f64; 7] = [
    -1.0 / 6.0,
    1.0 / 120.0,
    -1.0 / 5040.0,
    1.0 / 362_880.0,
    -1.0 / 39_916_800.0,
    1.0 / 6_227_020_800.0,
    -1.0 / 1_307_674_368_000.0,
];

/// Taylor coefficients of cos r after the constant 1: −1/2!, 1/4!, …, 1/16!.
pub(crate) const COS_TAYLOR: [f64; 8] = [
    -0.5,
    1.0 / 24.0,
    -1.0 / 720.0,
    1.0 / 40_320.0,
    -1.0 / 3_628_800.0,
    1.0 / 479_001_600.0,
    -1.0 / 87_178_291_200.0,
    1.0 / 20_922_789_888_000.0,
];

/// Cody–Waite split of π/2 (high part, low part) and 2/π, for [`sin_cos`].
pub(crate) const PIO2_HI: f64 = std::f64::consts::FRAC_PI_2;
pub(crate) const PIO2_LO: f64 = 6.123_233_995_736_766e-17;

/// sin and cos of x for |x| ≤ 20 (used for wrapped orientation angles), to within 2 ulp of the libm values and several times faster: reduction
/// by multiples of π/2 (two-part Cody–Waite constant) and Taylor polynomials on [−π/4, π/4]
/// (truncation error below 5e-17).
#[inline(always)]
pub fn sin_cos(x: f64) -> (f64, f64) {
    const FRAC_2_PI: f64 = std::f64::consts::FRAC_2_PI;
    // floor without a libm call (no SSE4.1 in the baseline target): shift to positive, truncate
    let k = ((x * FRAC_2_PI + 0.5 + 16.0) as i64 - 16) as f64;
    let r = (x - k * PIO2_HI) - k * PIO2_LO;
    let r2 = r * r;
    // sin r = r (1 − r²/3! + r⁴/5! − …), cos r = 1 − r²/2! + r⁴/4! − … (Horner, innermost first)
    let s = r * (1.0 + r2 * SIN_TAYLOR.iter().rev().fold(0.0, |acc, &c| c + r2 * acc));
    let c = 1.0 + r2 * COS_TAYLOR.iter().rev().fold(0.0, |acc, &c| c + r2 * acc);
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
    fn fast_sin_cos_matches_libm() {
        let mut worst = 0.0f64;
        for k in 0..200_001 {
            let x = -8.0 + 16.0 * k as f64 / 200_000.0;
            let (s, c) = sin_cos(x);
            worst = worst.max((s - x.sin()).abs()).max((c - x.cos()).abs());
        }
        assert!(worst < 4.0 * f64::EPSILON, "max error {worst:e}");
    }

    /// The ziggurat normals against the normal CDF at points in the body, in the wedges and in
    /// the tail (|z| > r = 3.44), 8·10⁶ draws: each empirical fraction within 5 binomial standard
    /// errors of Φ(z); and the fast path is taken at its designed rate (97.2 %: the mean over layers of the
    /// fraction of a layer inside the next one up; the top layer has none).
    #[test]
    fn ziggurat_normals_follow_the_normal_cdf() {
        let rng = CounterRng::new(11, 3);
        let points = [
            (-4.0, 3.167_124_183_311_992e-5),
            (-3.5, 2.326_290_790_355_250_3e-4),
            (-3.0, 1.349_898_031_630_094_6e-3),
            (-2.0, 2.275_013_194_817_921e-2),
            (-1.0, 0.158_655_253_931_457_05),
            (-0.3, 0.382_088_577_811_047_1),
            (0.0, 0.5),
            (0.5, 0.691_462_461_274_013_1),
            (1.0, 0.841_344_746_068_543),
            (2.5, 0.993_790_334_674_223_8),
            (3.3, 0.999_516_575_857_616),
            (3.7, 0.999_892_200_266_802_3),
        ];
        let mut below = [0u64; 12];
        let n = 8_000_000u64;
        for k in 0..n / 4 {
            for z in rng.normals(k, (k % 1000) as u32, 0) {
                for (c, (p, _)) in below.iter_mut().zip(&points) {
                    *c += (z < *p) as u64;
                }
            }
        }
        for (c, (p, phi)) in below.iter().zip(&points) {
            let frac = *c as f64 / n as f64;
            let se = (phi * (1.0 - phi) / n as f64).sqrt();
            assert!(
                (frac - phi).abs() < 5.0 * se,
                "P(z < {p}) = {frac} vs {phi} (se {se:e})"
            );
        }
        let z = &*ZIGGURAT;
        let fast: f64 = (0..128).map(|i| z.k[i] as f64 / 16_777_216.0).sum::<f64>() / 128.0;
        assert!((0.970..0.975).contains(&fast), "fast-path rate {fast}");
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
