//! Particle models read from definition files of `kind = "particles"` (`systems/active/`):
//! active Ornstein–Uhlenbeck particles (AOUP, the model of Boffi & Vanden-Eijnden 2024) and
//! active Brownian particles (ABP) with WCA repulsion, in periodic boxes.
//!
//! ```toml
//! name = "mips"
//! kind = "particles"
//! model = "aoup"            # or "abp"
//! dimension = 2             # spatial dimension d (1, 2 or 3; ABP: 2 or 3)
//! dt = 0.1
//! [parameters]
//! N = 4096
//! phi = 0.5                 # packing fraction, sets the box (or give L, the box edge)
//! v0 = 0.025
//! gamma = 1e-4
//! eps = 0.0
//! k = 1.0
//! A = 0.0
//! R = 1.0
//! beta = 7.5                # absent: the hard harmonic force k (2R − r)
//! tail = 1e-10              # softplus cut-off: largest neglected force per pair / k (default)
//! ```

use super::cells::PeriodicBox;
use crate::systems::spec::error_at;
use crate::systems::SpecError;
use std::collections::BTreeMap;
use std::path::Path;

/// Pair interaction: the force on i from j is `magnitude(r) · r̂`, r = x_i − x_j (minimum image),
/// positive = repulsive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PairForce {
    /// k · softplus_β(r0 − r), softplus_β(u) = log(1 + e^{βu})/β (r0 = 2R): the paper's soft
    /// repulsion. Cut off at `cutoff`, where the neglected tail is below k·`tail` per pair (see
    /// [`Self::cutoff`]; `tail` is the parameter `tail`, default [`SOFTPLUS_TAIL`]).
    Softplus {
        k: f64,
        r0: f64,
        beta: f64,
        tail: f64,
    },
    /// k · (r0 − r) for r < r0 (harmonic overlap repulsion).
    Harmonic { k: f64, r0: f64 },
    /// Weeks–Chandler–Andersen: −dU/dr of U = 4ε[(σ/r)^12 − (σ/r)^6] + ε for r < 2^{1/6}σ.
    Wca { eps: f64, sigma: f64 },
}

/// 2^{1/6}: the WCA cut-off in units of σ (the minimum of the Lennard-Jones potential).
pub const WCA_CUT: f64 = 1.122_462_048_309_373;

/// Largest neglected softplus force per pair, in units of k (documented cut-off rule): the
/// default of the parameter `tail` (README, "Active matter": what a looser one buys and costs).
pub const SOFTPLUS_TAIL: f64 = 1e-10;

impl PairForce {
    /// Interaction range. Softplus: r_c = r0 + ln(1/(β δ))/β with δ = `tail` (default
    /// [`SOFTPLUS_TAIL`]), since
    /// softplus_β(r0 − r) ≤ e^{−β(r − r0)}/β for r > r0: the neglected force is below k·δ per
    /// pair (β = 7.5, r0 = 2: r_c = 4.80).
    pub fn cutoff(&self) -> f64 {
        match *self {
            PairForce::Softplus { r0, beta, tail, .. } => {
                r0 + (1.0 / (beta * tail)).ln().max(0.0) / beta
            }
            PairForce::Harmonic { r0, .. } => r0,
            PairForce::Wca { sigma, .. } => WCA_CUT * sigma,
        }
    }

    /// Force magnitude f(r) for 0 < r < cutoff.
    #[inline]
    pub fn magnitude(&self, r: f64) -> f64 {
        match *self {
            PairForce::Softplus { k, r0, beta, .. } => k * softplus(beta, r0 - r),
            PairForce::Harmonic { k, r0 } => {
                if r < r0 {
                    k * (r0 - r)
                } else {
                    0.0
                }
            }
            PairForce::Wca { eps, sigma } => {
                if r >= WCA_CUT * sigma {
                    return 0.0;
                }
                let s6 = (sigma / r).powi(6);
                24.0 * eps * (2.0 * s6 * s6 - s6) / r
            }
        }
    }

    /// f(r)/r from r² (the force is this times the separation vector); WCA needs no square
    /// root.
    #[inline(always)]
    pub fn magnitude_over_r(&self, r2: f64) -> f64 {
        match *self {
            PairForce::Wca { eps, sigma } => {
                let s2 = sigma * sigma / r2;
                let s6 = s2 * s2 * s2;
                24.0 * eps * (2.0 * s6 * s6 - s6) / r2
            }
            _ => {
                let r = r2.sqrt();
                self.magnitude(r) / r
            }
        }
    }

    /// df/dr, used for the divergence of the drift: ∇_{x_i}·(f(r) r̂) = f'(r) + (d − 1) f(r)/r.
    #[inline]
    pub fn derivative(&self, r: f64) -> f64 {
        match *self {
            PairForce::Softplus { k, r0, beta, .. } => -k * logistic(beta * (r0 - r)),
            PairForce::Harmonic { k, r0 } => {
                if r < r0 {
                    -k
                } else {
                    0.0
                }
            }
            PairForce::Wca { eps, sigma } => {
                if r >= WCA_CUT * sigma {
                    return 0.0;
                }
                let s6 = (sigma / r).powi(6);
                -24.0 * eps * (26.0 * s6 * s6 - 7.0 * s6) / (r * r)
            }
        }
    }
}

/// softplus_β(u) = log(1 + e^{βu})/β = max(u, 0) + log1p(e^{−β|u|})/β, evaluated without
/// overflow with the engine's own [`exp_nonpositive`] and [`log1p_unit`] (not libm), so that
/// the AVX-512 kernel (`particles::avx512`) computes the same bits lane by lane. Accuracy:
/// exp within 2.3e-16 and log1p within 4.9e-16 (relative) of libm's, softplus within
/// 6e-16 + 1.5e-16·|βu| of libm's formula (the rounding of z = βu, which libm's formula
/// shares, is amplified |z| times where softplus ≈ e^z; checked against 50-digit arithmetic
/// for the given u: within 3.4e-15 at z ≈ −35, as libm's formula). Tested on z ∈ [−40, 40]:
/// `own_softplus_matches_libm`.
#[inline]
pub fn softplus(beta: f64, u: f64) -> f64 {
    let z = beta * u;
    // × 1/β rather than ÷ β: a division less per pair in the vector kernel (the hardware
    // divider is its bottleneck), for one rounding more
    let l = log1p_unit(exp_nonpositive(-z.abs())) * (1.0 / beta);
    if z > 0.0 {
        u + l
    } else {
        l
    }
}

/// ln 2/16 split for the range reduction of [`exp_nonpositive`]: the high part has 39
/// significant bits, so n·LN2_16_HI is exact for |n| < 2^14 (x ≥ −700 gives |n| ≤ 16160);
/// the low part is the rest, rounded.
pub(crate) const LN2_16_HI: f64 = 0.043_321_698_784_893_67;
pub(crate) const LN2_16_LO: f64 = 1.029_121_848_931_067_6e-13;
/// 16/ln 2.
pub(crate) const INV_LN2_16: f64 = 16.0 * std::f64::consts::LOG2_E;
/// Arguments of [`exp_nonpositive`] are clamped from below here (e^{−700} ≈ 1e-304: 2^n stays
/// a normal number).
pub(crate) const EXP_MIN: f64 = -700.0;
/// 2^{j/16}, j = 0..16, rounded (`EXP2_16_HI`), and the rest (`EXP2_16_LO`), from 50-digit
/// arithmetic.
#[allow(clippy::excessive_precision)]
pub(crate) const EXP2_16_HI: [f64; 16] = [
    1.0,
    1.044_273_782_427_413_8,
    1.090_507_732_665_257_7,
    1.138_788_634_756_691_6,
    1.189_207_115_002_721,
    1.241_857_812_073_484,
    1.296_839_554_651_009_6,
    1.354_255_546_936_892_7,
    std::f64::consts::SQRT_2,
    1.476_826_145_939_499_3,
    1.542_210_825_407_940_7,
    1.610_490_331_949_254_3,
    1.681_792_830_507_429,
    1.756_252_160_373_299_5,
    1.834_008_086_409_342_4,
    1.915_206_561_397_147_4,
];
#[allow(clippy::excessive_precision)]
pub(crate) const EXP2_16_LO: [f64; 16] = [
    0.0,
    8.551_889_705_537_965e-17,
    -3.046_782_079_812_471e-17,
    8.912_812_676_025_408e-17,
    3.982_015_231_465_646e-17,
    4.658_027_591_836_937e-17,
    2.538_250_279_488_831_5e-17,
    7.700_948_379_802_99e-17,
    -9.667_293_313_452_913e-17,
    -3.483_994_556_892_796e-17,
    7.949_834_809_697_621e-17,
    2.470_719_256_979_788_8e-17,
    8.199_010_020_581_497e-17,
    2.960_140_695_448_873e-17,
    3.283_107_224_245_627e-17,
    -1.061_994_605_619_596_3e-16,
];
/// 1/k!, k = 1..=7: e^r − 1 = r Σ r^{k−1}/k! on |r| ≤ ln2/32 (truncation error
/// (ln2/32)^8/8! < 1.3e-18).
pub(crate) const EXPM1_TAYLOR: [f64; 7] = [
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
];
/// ln(1 + i/8), i = 0..=8, rounded (`LN1P_8_HI`), and the rest (`LN1P_8_LO`), from 50-digit
/// arithmetic; padded with zeros to 16 (the vector kernel's two-register table).
#[allow(clippy::excessive_precision)]
pub(crate) const LN1P_8_HI: [f64; 16] = [
    0.0,
    0.117_783_035_656_383_46,
    0.223_143_551_314_209_76,
    0.318_453_731_118_534_6,
    0.405_465_108_108_164_4,
    0.485_507_815_781_700_8,
    0.559_615_787_935_422_7,
    0.628_608_659_422_374_1,
    std::f64::consts::LN_2,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
];
#[allow(clippy::excessive_precision)]
pub(crate) const LN1P_8_LO: [f64; 16] = [
    0.0,
    -1.197_168_574_759_367_7e-18,
    -9.091_270_597_324_799e-18,
    2.711_477_936_732_623_6e-17,
    -2.881_138_025_962_642_6e-18,
    -1.661_835_069_385_204_8e-17,
    2.685_492_580_212_308e-17,
    4.353_874_260_797_038_7e-17,
    2.319_046_813_846_299_6e-17,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
];
/// 1/(2k + 1), k = 0..=5: atanh(s)/s = Σ s^{2k}/(2k + 1) for |s| ≤ 1/33 (s² < 9.2e-4;
/// truncation error (9.2e-4)^6/13 < 5e-20, relative).
pub(crate) const ATANH_SERIES: [f64; 6] =
    [1.0, 1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0, 1.0 / 9.0, 1.0 / 11.0];

/// Σ_{k<7} r^k/(k + 1)! ([`EXPM1_TAYLOR`]) by Estrin's scheme: (c0 + c1 r) + r²((c2 + c3 r) +
/// r²((c4 + c5 r) + r² c6)), a dependency chain of 8 operations instead of Horner's 14 (the
/// vector kernel's softplus is latency-bound there).
#[inline(always)]
pub(crate) fn expm1_poly(r: f64) -> f64 {
    let c = &EXPM1_TAYLOR;
    let r2 = r * r;
    (c[0] + c[1] * r) + r2 * ((c[2] + c[3] * r) + r2 * ((c[4] + c[5] * r) + r2 * c[6]))
}

/// Σ_{k<6} y^k/(2k + 1) ([`ATANH_SERIES`]) by Estrin's scheme: (c0 + c1 y) + y²((c2 + c3 y) +
/// y²(c4 + c5 y)).
#[inline(always)]
pub(crate) fn atanh_poly(y: f64) -> f64 {
    let c = &ATANH_SERIES;
    let y2 = y * y;
    (c[0] + c[1] * y) + y2 * ((c[2] + c[3] * y) + y2 * (c[4] + c[5] * y))
}

/// e^x for x ≤ 0 (x < −700 is taken as −700; NaN too, as by `f64::max`): with
/// 16m + j = ⌊16x/ln2 + ½⌋, 0 ≤ j < 16, x = (16m + j) ln2/16 + r, |r| ≤ ln2/32 (Cody–Waite),
/// so e^x = 2^m · 2^{j/16} e^r with 2^{j/16} = hi + lo from a table and e^r − 1 = q by its
/// Taylor polynomial: 2^m · (hi + (hi·q + lo)), 2^m built from its bits. Within 1.2e-16
/// (relative) of the exact value (checked against 50-digit arithmetic on [−700, 0]); only +, −,
/// ×, floor and table look-ups, so the vector kernel repeats it bit for bit. (Replaced a
/// degree-13 polynomial on |r| ≤ ln2/2: half the multiply-adds, a shorter dependency chain.)
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    let x = x.max(EXP_MIN);
    let n = (x * INV_LN2_16 + 0.5).floor();
    let r = (x - n * LN2_16_HI) - n * LN2_16_LO;
    let q = r * expm1_poly(r);
    let ni = n as i64;
    let j = (ni & 15) as usize;
    let (hi, lo) = (EXP2_16_HI[j], EXP2_16_LO[j]);
    let t = hi + (hi * q + lo);
    t * f64::from_bits((((ni >> 4) + 1023) as u64) << 52)
}

/// ln(1 + t) for t ∈ [0, 1]: with i = ⌊8t + ½⌋ and c = 1 + i/8 (so |1 + t − c| ≤ 1/16),
/// ln(1 + t) = ln c + 2 atanh(s), s = (t − i/8)/(2 + i/8 + t), |s| ≤ 1/33, by its series, and
/// ln c = hi + lo from a table: hi + (lo + 2s·Σ). t − i/8 is exact (Sterbenz), and for
/// i = 0 the result is 2s·(1 + …) with no cancellation. Within 3.5e-16 (relative) of the exact
/// value (checked against 50-digit arithmetic for t ∈ [1e-300, 1]). (Replaced halving 1 + t
/// above √2 and an 11-term series.)
#[inline(always)]
pub fn log1p_unit(t: f64) -> f64 {
    let i = (t * 8.0 + 0.5).floor();
    let c1 = i * 0.125;
    let s = (t - c1) / ((2.0 + c1) + t);
    let l = (2.0 * s) * atanh_poly(s * s);
    // t ∈ [0, 1] gives i ≤ 8 (`min` only guards the table for other arguments)
    let i = (i as usize).min(15);
    LN1P_8_HI[i] + (LN1P_8_LO[i] + l)
}

/// The logistic function 1/(1 + e^{−z}).
#[inline]
pub fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Stochastic dynamics of the particles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dynamics {
    /// AOUP: dx = (v0 g + Σ F − A x) dt + √(2ε) dW, dg = −γ g dt + √(2γ) dB. Euler–Maruyama in x,
    /// the exact OU step in g.
    Aoup {
        v0: f64,
        gamma: f64,
        eps: f64,
        trap: f64,
    },
    /// ABP: dx = (v0 e + μ F) dt + √(2 D_T) dW, the orientation e diffusing with D_r (2-D: an
    /// angle; 3-D: a unit vector).
    Abp {
        v0: f64,
        mu: f64,
        d_t: f64,
        d_r: f64,
    },
}

/// A particle system: box, interactions, dynamics and step, all from one definition file.
#[derive(Debug, Clone)]
pub struct ParticleModel {
    pub name: String,
    pub description: String,
    pub citation: String,
    pub path: std::path::PathBuf,
    /// File text (stored with every output).
    pub source: String,
    /// Spatial dimension d.
    pub dim: usize,
    /// Number of particles N (mobile + fixed).
    pub n: usize,
    /// The last `n_fixed` particles do not move (the paper's ring: one fixed particle).
    pub n_fixed: usize,
    pub bx: PeriodicBox,
    pub pair: Option<PairForce>,
    pub dynamics: Dynamics,
    /// Time step Δt.
    pub dt: f64,
    /// Effective parameter values (file, overrides, derived), for the output.
    pub parameters: BTreeMap<String, f64>,
    /// Packing fraction N·v_d(R)/L^d (v_d: volume of a d-ball of the particle radius).
    pub packing_fraction: f64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParticles {
    name: String,
    kind: String,
    model: toml::Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    citation: String,
    dimension: toml::Spanned<i64>,
    dt: toml::Spanned<f64>,
    #[serde(default)]
    parameters: BTreeMap<toml::Spanned<String>, toml::Spanned<f64>>,
    #[serde(default)]
    reference: toml::Table,
}

/// Volume of the d-ball of radius r.
pub fn ball_volume(dim: usize, r: f64) -> f64 {
    match dim {
        1 => 2.0 * r,
        2 => std::f64::consts::PI * r * r,
        _ => 4.0 / 3.0 * std::f64::consts::PI * r * r * r,
    }
}

pub use crate::systems::spec::{is_particle_file, is_particle_path};

/// Largest number of particles N a model may have (10^8: the state alone then takes about
/// 10–20 GB at d = 3); a larger N is an error naming this limit, before anything is allocated.
pub const MAX_PARTICLES: usize = 100_000_000;

impl ParticleModel {
    /// Loads a particle definition file with `--set NAME=VALUE` overrides (parameters, and `dt`).
    pub fn load(path: &Path, overrides: &[(String, f64)]) -> Result<ParticleModel, SpecError> {
        let text = crate::systems::spec::read_definition(path)?;
        Self::from_str_at(&text, path, overrides)
    }

    /// A particle model from a definition text at the parameters of a data file (only the names
    /// the definition's `[parameters]` table declares, and `dt`), then `extra` overrides
    /// (checked): the model a sample file (`/parameters`) was simulated with.
    pub fn at_parameters(
        definition: &str,
        path: &Path,
        parameters: &BTreeMap<String, f64>,
        extra: &[(String, f64)],
    ) -> Result<ParticleModel, SpecError> {
        let declared: Vec<String> = toml::from_str::<toml::Table>(definition)
            .ok()
            .and_then(|t| t.get("parameters").and_then(|p| p.as_table()).cloned())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let mut overrides: Vec<(String, f64)> = parameters
            .iter()
            .filter(|(k, _)| declared.contains(k) || k.as_str() == "dt")
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == *k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        overrides.extend_from_slice(extra);
        ParticleModel::from_str_at(definition, path, &overrides)
    }

    /// Frame `f` of replica `r` of `samples` as the score networks and the EPR see it: positions
    /// (N·d; unwrapped with the image counts when the model has a trap, wrapped otherwise) and
    /// propulsion (N·c).
    pub fn configuration<'a>(
        &self,
        samples: &'a crate::io::h5md::ParticleSamples,
        r: usize,
        f: usize,
    ) -> (Vec<f64>, &'a [f64]) {
        let (n, d, c) = (samples.n, samples.dim, samples.propulsion);
        let o = samples.frame_offset(r, f);
        let mut x = samples.x[o * d..(o + n) * d].to_vec();
        if matches!(self.dynamics, Dynamics::Aoup { trap, .. } if trap > 0.0) {
            let len = samples.edges.first().copied().unwrap_or(self.bx.length);
            for (v, im) in x.iter_mut().zip(&samples.image[o * d..(o + n) * d]) {
                *v += *im as f64 * len;
            }
        }
        (x, &samples.g[o * c..(o + n) * c])
    }

    /// Parses a particle definition from text (`path` names it in errors).
    pub fn from_str_at(
        text: &str,
        path: &Path,
        overrides: &[(String, f64)],
    ) -> Result<ParticleModel, SpecError> {
        let err = |offset: usize, m: String| error_at(path, text, offset, m);
        let raw: RawParticles = toml::from_str(text).map_err(|e| {
            let off = e.span().map(|s| s.start).unwrap_or(0);
            err(off, e.message().to_string())
        })?;
        if raw.kind != "particles" {
            return Err(err(0, format!("kind '{}' is not \"particles\"", raw.kind)));
        }
        let dim = *raw.dimension.get_ref();
        if !(1..=3).contains(&dim) {
            return Err(err(
                raw.dimension.span().start,
                format!("dimension must be 1, 2 or 3, got {dim}"),
            ));
        }
        let dim = dim as usize;
        let mut p: BTreeMap<String, f64> = BTreeMap::new();
        // byte offsets of each parameter's name and value in the file
        let mut spans: BTreeMap<String, usize> = BTreeMap::new();
        let mut value_spans: BTreeMap<String, usize> = BTreeMap::new();
        for (k, v) in &raw.parameters {
            p.insert(k.get_ref().clone(), *v.get_ref());
            spans.insert(k.get_ref().clone(), k.span().start);
            value_spans.insert(k.get_ref().clone(), v.span().start);
        }
        let mut dt = *raw.dt.get_ref();
        let model = raw.model.get_ref().as_str();
        let known: &[&str] = match model {
            "aoup" => &[
                "N", "phi", "L", "v0", "gamma", "eps", "k", "A", "R", "beta", "tail", "n_fixed",
            ],
            "abp" => &[
                "N", "phi", "L", "v0", "Pe", "sigma", "D_r", "D_T", "mu", "epsilon", "n_fixed",
            ],
            other => {
                return Err(err(
                    raw.model.span().start,
                    format!("unknown particle model '{other}' (known: aoup, abp)"),
                ))
            }
        };
        for k in p.keys() {
            if !known.contains(&k.as_str()) {
                return Err(err(
                    spans[k],
                    format!(
                        "unknown parameter '{k}' for model {model} (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        for (k, v) in overrides {
            if k == "dt" {
                dt = *v;
            } else if known.contains(&k.as_str()) {
                p.insert(k.clone(), *v);
            } else {
                return Err(SpecError {
                    file: "--set".into(),
                    line: 0,
                    col: 0,
                    message: format!(
                        "unknown parameter '{k}' for model {model} (known: dt, {})",
                        known.join(", ")
                    ),
                });
            }
        }
        let cli = |m: String| SpecError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            message: m,
        };
        // an error about parameter `name`: from --set when it was given there, else at its token
        // in the file (its name when the file does not write it: a default or a derived value)
        let bad = |name: &str, m: String| -> SpecError {
            if overrides.iter().any(|(k, _)| k == name) {
                SpecError {
                    file: "--set".into(),
                    line: 0,
                    col: 0,
                    message: m,
                }
            } else if let Some(&at) = value_spans.get(name) {
                err(at, m)
            } else {
                cli(m)
            }
        };
        if !(dt > 0.0 && dt.is_finite()) {
            let m = format!("dt must be positive, got {dt}");
            return Err(if overrides.iter().any(|(k, _)| k == "dt") {
                bad("dt", m)
            } else {
                err(raw.dt.span().start, m)
            });
        }
        let get = |name: &str, default: Option<f64>| -> Result<f64, SpecError> {
            match p.get(name).copied().or(default) {
                Some(v) if v.is_finite() => Ok(v),
                Some(v) => Err(bad(name, format!("parameter '{name}' is not finite ({v})"))),
                None => Err(cli(format!("missing parameter '{name}' for model {model}"))),
            }
        };
        let nonneg = |name: &str, v: f64| -> Result<f64, SpecError> {
            if v < 0.0 {
                Err(bad(
                    name,
                    format!("parameter '{name}' must be ≥ 0, got {v}"),
                ))
            } else {
                Ok(v)
            }
        };
        let n = get("N", None)?;
        if n > MAX_PARTICLES as f64 {
            return Err(bad(
                "N",
                format!("N = {n:e} exceeds the limit of {MAX_PARTICLES} particles"),
            ));
        }
        if n < 1.0 || n.fract() != 0.0 {
            return Err(bad("N", format!("N must be a positive integer, got {n}")));
        }
        let n = n as usize;
        let n_fixed = get("n_fixed", Some(0.0))?;
        if n_fixed < 0.0 || n_fixed.fract() != 0.0 || n_fixed as usize >= n {
            return Err(bad(
                "n_fixed",
                format!("n_fixed = {n_fixed} must be a non-negative integer below N = {n}"),
            ));
        }
        let n_fixed = n_fixed as usize;
        let mut eff = p.clone();
        let (pair, dynamics, radius) = match model {
            "aoup" => {
                let r = get("R", Some(1.0))?;
                let k = nonneg("k", get("k", Some(0.0))?)?;
                let pair = if k == 0.0 {
                    None
                } else if let Some(&beta) = p.get("beta") {
                    if beta <= 0.0 {
                        return Err(bad("beta", format!("beta must be positive, got {beta}")));
                    }
                    let tail = get("tail", Some(SOFTPLUS_TAIL))?;
                    if !(tail > 0.0 && tail < 1.0) {
                        return Err(bad("tail", format!("tail must lie in (0, 1), got {tail}")));
                    }
                    Some(PairForce::Softplus {
                        k,
                        r0: 2.0 * r,
                        beta,
                        tail,
                    })
                } else {
                    Some(PairForce::Harmonic { k, r0: 2.0 * r })
                };
                let dynamics = Dynamics::Aoup {
                    v0: get("v0", Some(0.0))?,
                    gamma: nonneg("gamma", get("gamma", None)?)?,
                    eps: nonneg("eps", get("eps", Some(0.0))?)?,
                    trap: nonneg("A", get("A", Some(0.0))?)?,
                };
                (pair, dynamics, r)
            }
            _ => {
                if dim == 1 {
                    return Err(err(
                        raw.dimension.span().start,
                        "ABP needs dimension 2 or 3".into(),
                    ));
                }
                let sigma = get("sigma", Some(1.0))?;
                let d_r = nonneg("D_r", get("D_r", Some(1.0))?)?;
                // Péclet number Pe = 3 v0 / (σ D_r), D_T = D_r σ²/3 (Stokes–Einstein for a sphere)
                let d_t = nonneg("D_T", get("D_T", Some(d_r * sigma * sigma / 3.0))?)?;
                let v0 = match (p.get("v0"), p.get("Pe")) {
                    (Some(_), Some(_)) => {
                        return Err(cli("give either v0 or Pe, not both".into()));
                    }
                    (Some(v), None) => *v,
                    (None, Some(pe)) => pe * sigma * d_r / 3.0,
                    (None, None) => 0.0,
                };
                let mu = get("mu", Some(1.0))?;
                // WCA strength: the propulsion force v0/μ equals 24 ε/σ (Stenhammar et al. 2014),
                // at least k_BT = D_T/μ
                let eps = get("epsilon", Some((v0 * sigma / (24.0 * mu)).max(d_t / mu)))?;
                eff.insert("v0".into(), v0);
                eff.insert("D_T".into(), d_t);
                eff.insert("D_r".into(), d_r);
                eff.insert("epsilon".into(), eps);
                eff.insert("Pe".into(), 3.0 * v0 / (sigma * d_r.max(f64::MIN_POSITIVE)));
                (
                    Some(PairForce::Wca { eps, sigma }),
                    Dynamics::Abp { v0, mu, d_t, d_r },
                    0.5 * sigma,
                )
            }
        };
        // box: L given, or from the packing fraction φ = N v_d(R) / L^d
        let length = match (p.get("L"), p.get("phi")) {
            (Some(l), _) if *l > 0.0 => *l,
            (Some(l), _) => return Err(bad("L", format!("L must be positive, got {l}"))),
            (None, Some(phi)) if *phi > 0.0 && *phi < 1.0 => {
                (n as f64 * ball_volume(dim, radius) / phi).powf(1.0 / dim as f64)
            }
            (None, Some(phi)) => {
                return Err(bad("phi", format!("phi must be in (0, 1), got {phi}")));
            }
            (None, None) => {
                return Err(cli("give the box edge L or the packing fraction phi".into()))
            }
        };
        let bx = PeriodicBox::new(dim, length);
        if let Some(f) = pair {
            if f.cutoff() >= 0.5 * length && n > 1 {
                return Err(cli(format!(
                    "box edge L = {length:.4} is shorter than twice the interaction range {:.4}: minimum image would miss pairs",
                    f.cutoff()
                )));
            }
        }
        let packing_fraction = n as f64 * ball_volume(dim, radius) / bx.volume();
        eff.insert("L".into(), length);
        eff.insert("phi".into(), packing_fraction);
        eff.insert("dt".into(), dt);
        let _ = raw.reference;
        Ok(ParticleModel {
            name: raw.name,
            description: raw.description,
            citation: raw.citation,
            path: path.to_path_buf(),
            source: text.to_string(),
            dim,
            n,
            n_fixed,
            bx,
            pair,
            dynamics,
            dt,
            parameters: eff,
            packing_fraction,
        })
    }

    /// Warnings about settings that run but probably do not model what was meant. For now: an
    /// interacting AOUP in a harmonic trap whose periodic box is small against the trap's spread
    /// (half-width w < 3√Σ_xx, with Σ_xx = (ε(A + γ) + v0²)/(A(A + γ)) the stationary variance of
    /// a free particle per coordinate): particles far apart in the trap then interact through
    /// periodic images (the trap acts on unwrapped positions, pairs by minimum image). For
    /// N = 4 at the trap file's φ = 0.1, w = 5.6 against √Σ_xx = 5.9; this changes the
    /// learning-free EPR by 3 % and makes the score much harder to learn.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let (
            Dynamics::Aoup {
                v0,
                gamma,
                eps,
                trap,
            },
            Some(_),
        ) = (self.dynamics, self.pair)
        {
            if trap > 0.0 && self.n > 1 {
                let spread = ((eps * (trap + gamma) + v0 * v0) / (trap * (trap + gamma))).sqrt();
                let w = self.bx.half();
                if w < 3.0 * spread {
                    // φ for a box of half-width 4√Σ_xx
                    let phi = self.n as f64 * ball_volume(self.dim, 0.5 * self.diameter())
                        / (8.0 * spread).powi(self.dim as i32);
                    out.push(format!(
                        "{}: the periodic box (half-width {w:.3}) is under 3 trap widths (free-particle spread {spread:.3} per coordinate): particles far apart in the trap interact through periodic images; a box of 4 trap widths needs phi = {phi:.3e} (--set phi=...)",
                        self.name
                    ));
                }
            }
        }
        out
    }

    /// Components of the propulsion / orientation per particle: AOUP d, ABP 1 (2-D angle) or 3.
    pub fn propulsion_dim(&self) -> usize {
        match self.dynamics {
            Dynamics::Aoup { .. } => self.dim,
            Dynamics::Abp { .. } => {
                if self.dim == 2 {
                    1
                } else {
                    3
                }
            }
        }
    }

    /// Particle diameter (2R for AOUP, σ for ABP).
    pub fn diameter(&self) -> f64 {
        match (self.dynamics, self.pair) {
            (Dynamics::Abp { .. }, Some(PairForce::Wca { sigma, .. })) => sigma,
            (_, Some(PairForce::Softplus { r0, .. }))
            | (_, Some(PairForce::Harmonic { r0, .. })) => r0,
            _ => 2.0 * self.parameters.get("R").copied().unwrap_or(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The own softplus (and its exp, log1p) against libm over the range the MIPS kernel uses
    /// and beyond: relative differences of a few 1e-16 (the bound in [`softplus`]'s docs).
    #[test]
    fn own_softplus_matches_libm() {
        let beta = 7.5;
        let (mut worst_sp, mut worst_exp, mut worst_log) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..=200_000 {
            let z = -40.0 + 80.0 * i as f64 / 200_000.0;
            let u = z / beta;
            let libm = if z > 30.0 {
                u + (-z).exp().ln_1p() / beta
            } else {
                z.exp().ln_1p() / beta
            };
            // measured in units of the conditioning bound 6e-16 + 1.5e-16 |z| (the rounding of
            // z = βu is amplified |z| times where softplus ≈ e^z)
            let bound = 6e-16 + 1.5e-16 * z.abs();
            worst_sp = worst_sp.max(((softplus(beta, u) - libm) / libm).abs() / bound);
            let x = -z.abs();
            worst_exp = worst_exp.max(((exp_nonpositive(x) - x.exp()) / x.exp()).abs());
            let t = i as f64 / 200_000.0;
            if t > 0.0 {
                worst_log = worst_log.max(((log1p_unit(t) - t.ln_1p()) / t.ln_1p()).abs());
            }
        }
        println!(
            "worst relative difference: softplus {worst_sp:.3} bounds, exp {worst_exp:e}, \
             log1p {worst_log:e}"
        );
        assert!(worst_sp < 1.0 && worst_exp < 4e-16 && worst_log < 6e-16);
        // known answers: the bits of a prototype of the same operations in Python (IEEE
        // doubles, the same order; its tables from mpmath at 50 digits), checking the tables
        // as typed here; within 1.2e-16 (exp) and 3.5e-16 (log1p) of mpmath's values
        for (x, bits) in [
            (-1e-3, 4_607_173_416_102_861_470u64),
            (-0.5, 4_603_638_362_051_417_610),
            (-1.2345, 4_598_913_453_489_276_573),
            (-7.0, 4_561_549_849_893_579_151),
            (-35.5, 4_376_248_132_203_026_106),
            (-699.0, 65_168_694_105_306_060),
        ] {
            assert_eq!(exp_nonpositive(x).to_bits(), bits, "exp({x})");
        }
        for (t, bits) in [
            (1e-20, 4_307_583_784_117_748_259u64),
            (0.03, 4_584_176_966_097_098_339),
            (0.0625, 4_588_897_749_810_897_576),
            (0.3, 4_598_397_954_332_670_428),
            (0.77, 4_603_318_146_091_755_823),
            (1.0, 4_604_418_534_313_441_775),
        ] {
            assert_eq!(log1p_unit(t).to_bits(), bits, "log1p({t})");
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(log1p_unit(0.0), 0.0);
        assert!(exp_nonpositive(-1e4) > 0.0 && exp_nonpositive(-1e4) < 1e-300);
        assert!(exp_nonpositive(f64::NAN) < 1e-300);
        assert!((softplus(beta, 100.0) - 100.0).abs() < 1e-12);
    }
}
