//! One time step of 2-D active Brownian particles with WCA repulsion, eight particles at a time
//! in AVX-512 registers (the engine's benchmark system: `systems/active/abp_mips.toml`).
//!
//! The scalar kernel ([`super::sim`]) spends its time spread thinly over per-particle work: the
//! Philox block, the ziggurat, sin/cos of the angle, the minimum-image force loop with a
//! data-dependent trip count. Here each of the eight lanes of a register is one particle, so
//! every one of those operations is done for eight particles at once: neighbour positions are
//! gathered, the force loop runs to the longest of the eight lists with a lane mask, Philox runs
//! in 64-bit lanes (`vpmuludq`), the ziggurat fast path gathers its tables, and the rare
//! ziggurat rejections fall back to the scalar code lane by lane. 2-D AOUPs with softplus pairs
//! (the paper's MIPS, [`block_aoup`]) instead compact the pairs inside the cut-off into a
//! [`PairBuffer`] and evaluate the softplus eight pairs at a time, since there the pair term, not
//! the per-particle work, dominates.
//!
//! **Bit-identical to the scalar kernel.** Every lane performs exactly the operations of
//! [`super::sim`]'s per-particle code, in the same order (each particle's force is still summed
//! over its neighbours in list order; intrinsics are never contracted into FMAs; max is taken
//! so that NaN is ignored the same way as `f64::max`), so a run gives the same bits with this
//! kernel, the AVX2 or the baseline kernel (tested: `wide_and_baseline_kernels_are_bit_identical`).

use super::model;
use super::rng::{self, CounterRng};
use super::sim::{step_particle, StepContext};
use core::arch::x86_64::*;

/// Particles per register.
const LANES: usize = 8;

/// Whether [`chunk2`] applies to a step context: 2-D ABP with WCA pairs or 2-D AOUP with
/// softplus pairs (the paper's MIPS), a Verlet list.
pub(super) fn applies(ctx: &StepContext) -> bool {
    let abp_wca = matches!(ctx.dynamics, super::Dynamics::Abp { .. })
        && matches!(ctx.pair, Some(super::PairForce::Wca { .. }));
    let aoup_softplus = matches!(ctx.dynamics, super::Dynamics::Aoup { .. })
        && matches!(ctx.pair, Some(super::PairForce::Softplus { .. }));
    (abp_wca || aoup_softplus) && ctx.d == 2 && ctx.list.is_some() && !ctx.xb.is_empty()
}

/// Storage chunk `chunk` of a step (see `sim::step_chunk`): blocks of eight mobile particles in
/// AVX-512 registers, the rest (a tail, blocks holding a fixed particle) by the scalar code.
/// Returns (largest squared displacement since the list build, largest force component).
///
/// # Safety
/// The CPU must support AVX-512 F/VL/DQ/BW/CD (x86-64-v4), and [`applies`] must hold.
#[target_feature(
    enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd,avx2,fma,sse4.1,bmi1,bmi2,lzcnt"
)]
pub(super) unsafe fn chunk2(
    ctx: &StepContext,
    chunk: usize,
    xn: &mut [f64],
    imgs: &mut [i32],
    gs: &mut [f64],
) -> (f64, f64) {
    let m = xn.len() / 2;
    let first = chunk * ctx.chunk_len;
    let mut disp = _mm512_setzero_pd();
    let mut fmax = _mm512_setzero_pd();
    let (mut disp_s, mut fmax_s) = (0.0f64, 0.0f64);
    let aoup = matches!(ctx.dynamics, super::Dynamics::Aoup { .. });
    // on the stack: no allocation in the step (zeroed once per chunk: 9 kB)
    let mut buf = PairBuffer::new();
    let mut k = 0;
    while k < m {
        let s0 = first + k;
        let whole = k + LANES <= m && ctx.tag[s0..s0 + LANES].iter().all(|&t| t < ctx.n_mobile);
        if !whole {
            // scalar: the tail of the chunk, or a block with a fixed particle
            let end = (k + LANES).min(m);
            for kk in k..end {
                step_particle(ctx, first + kk, kk, xn, imgs, gs, &mut disp_s, &mut fmax_s);
            }
            k = end;
            continue;
        }
        // SAFETY: k + 8 ≤ m, so slots s0..s0 + 8 exist in every array; the CPU features are
        // enabled by this function's contract.
        let (d8, f8) = unsafe {
            if aoup {
                block_aoup(ctx, s0, k, xn, imgs, gs, &mut buf)
            } else {
                block(ctx, s0, k, xn, imgs, gs)
            }
        };
        disp = _mm512_max_pd(d8, disp);
        fmax = _mm512_max_pd(f8, fmax);
        k += LANES;
    }
    (hmax(disp, disp_s), hmax(fmax, fmax_s))
}

/// max(start, lanes of v), NaN ignored as by `f64::max`.
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn hmax(v: __m512d, start: f64) -> f64 {
    let mut a = [0.0f64; LANES];
    // SAFETY: `a` holds eight f64.
    unsafe { _mm512_storeu_pd(a.as_mut_ptr(), v) };
    a.iter().fold(start, |acc, &x| acc.max(x))
}

/// `c ? a : b` lane by lane.
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn blend(c: __mmask8, a: __m512d, b: __m512d) -> __m512d {
    _mm512_mask_blend_pd(c, b, a)
}

/// Minimum image of separations of wrapped coordinates (as `PeriodicBox::min_image_wrapped`):
/// Δ − (select(Δ ≥ w, L, 0) − select(Δ < −w, L, 0)).
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn min_image(delta: __m512d, w: __m512d, neg_w: __m512d, len: __m512d) -> __m512d {
    let zero = _mm512_setzero_pd();
    let up = blend(_mm512_cmp_pd_mask::<_CMP_GE_OQ>(delta, w), len, zero);
    let down = blend(_mm512_cmp_pd_mask::<_CMP_LT_OQ>(delta, neg_w), len, zero);
    _mm512_sub_pd(delta, _mm512_sub_pd(up, down))
}

/// Wraps coordinates into [−w, w) (as `PeriodicBox::wrap`): (wrapped, box lengths crossed as
/// i32 — `as i32` semantics: saturating, NaN → 0 — plus one where the upper-edge fix applied,
/// wrapping like the scalar i32 arithmetic in release builds).
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn wrap(x: __m512d, w: __m512d, neg_w: __m512d, len: __m512d) -> (__m512d, __m256i) {
    let inside =
        _mm512_cmp_pd_mask::<_CMP_GE_OQ>(x, neg_w) & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, w);
    let n = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(_mm512_div_pd(
        _mm512_add_pd(x, w),
        len,
    ));
    let xw = _mm512_sub_pd(x, _mm512_mul_pd(n, len));
    let over = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(xw, w);
    let xw = blend(over, _mm512_sub_pd(xw, len), xw);
    let clamped = _mm512_min_pd(
        _mm512_max_pd(n, _mm512_set1_pd(i32::MIN as f64)),
        _mm512_set1_pd(i32::MAX as f64),
    );
    let ordered = _mm512_cmp_pd_mask::<_CMP_ORD_Q>(n, n);
    let crossed = _mm512_maskz_cvttpd_epi32(ordered & !inside, clamped);
    let crossed = _mm256_mask_add_epi32(crossed, over & !inside, crossed, _mm256_set1_epi32(1));
    (blend(inside, x, xw), crossed)
}

/// (sin x, cos x) lane by lane, the operations of [`rng::sin_cos`].
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn sin_cos(x: __m512d) -> (__m512d, __m512d) {
    let t = _mm512_add_pd(
        _mm512_add_pd(
            _mm512_mul_pd(x, _mm512_set1_pd(std::f64::consts::FRAC_2_PI)),
            _mm512_set1_pd(0.5),
        ),
        _mm512_set1_pd(16.0),
    );
    let ki = _mm512_sub_epi64(_mm512_cvttpd_epi64(t), _mm512_set1_epi64(16));
    let k = _mm512_cvtepi64_pd(ki);
    let r = _mm512_sub_pd(
        _mm512_sub_pd(x, _mm512_mul_pd(k, _mm512_set1_pd(rng::PIO2_HI))),
        _mm512_mul_pd(k, _mm512_set1_pd(rng::PIO2_LO)),
    );
    let r2 = _mm512_mul_pd(r, r);
    let one = _mm512_set1_pd(1.0);
    let s = _mm512_mul_pd(
        r,
        _mm512_add_pd(one, _mm512_mul_pd(r2, horner(&rng::SIN_TAYLOR, r2))),
    );
    let c = _mm512_add_pd(one, _mm512_mul_pd(r2, horner(&rng::COS_TAYLOR, r2)));
    let q = _mm512_and_si512(ki, _mm512_set1_epi64(3));
    let swap = _mm512_test_epi64_mask(q, _mm512_set1_epi64(1));
    // sign_s = 1 − 2((q >> 1) & 1), sign_c = 1 − 2(((q + 1) >> 1) & 1)
    let sign_s = sign(_mm512_srli_epi64::<1>(q));
    let sign_c = sign(_mm512_srli_epi64::<1>(_mm512_add_epi64(
        q,
        _mm512_set1_epi64(1),
    )));
    let a = blend(swap, c, s);
    let b = blend(swap, s, c);
    (_mm512_mul_pd(sign_s, a), _mm512_mul_pd(sign_c, b))
}

/// Σ c_k r2^k by Horner's rule, innermost first (as the scalar `fold`).
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn horner(coeffs: &[f64], r2: __m512d) -> __m512d {
    coeffs.iter().rev().fold(_mm512_setzero_pd(), |acc, &c| {
        _mm512_add_pd(_mm512_set1_pd(c), _mm512_mul_pd(r2, acc))
    })
}

/// 1 − 2(bit & 1) as f64, lane by lane.
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn sign(bit: __m512i) -> __m512d {
    _mm512_cvtepi64_pd(_mm512_sub_epi64(
        _mm512_set1_epi64(1),
        _mm512_slli_epi64::<1>(_mm512_and_si512(bit, _mm512_set1_epi64(1))),
    ))
}

/// Philox4x32-10 of eight counters (one per lane, words in the low halves of 64-bit lanes), as
/// [`rng::philox4x32`].
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn philox(mut c: [__m512i; 4], key: [u32; 2]) -> [__m512i; 4] {
    let lo = _mm512_set1_epi64(0xffff_ffff);
    let (m0, m1) = (
        _mm512_set1_epi64(rng::M0 as i64),
        _mm512_set1_epi64(rng::M1 as i64),
    );
    let mut k = key;
    for _ in 0..10 {
        let p0 = _mm512_mul_epu32(m0, c[0]);
        let p1 = _mm512_mul_epu32(m1, c[2]);
        let (k0, k1) = (
            _mm512_set1_epi64(k[0] as i64),
            _mm512_set1_epi64(k[1] as i64),
        );
        c = [
            _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64::<32>(p1), c[1]), k0),
            _mm512_and_si512(p1, lo),
            _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64::<32>(p0), c[3]), k1),
            _mm512_and_si512(p0, lo),
        ];
        k = [k[0].wrapping_add(rng::W0), k[1].wrapping_add(rng::W1)];
    }
    c
}

/// Normal numbers of one Philox word per lane (the ziggurat fast path of
/// `CounterRng::normals`; rejected lanes by the scalar fallback, which draws from its own
/// counters).
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn normals(rng: &CounterRng, step: u64, tags: &[u32], word: __m512i, lane: u32) -> __m512d {
    let (kt, wt) = CounterRng::ziggurat_tables();
    let iz = _mm512_and_si512(word, _mm512_set1_epi64(127));
    let hz = _mm512_srli_epi64::<8>(word);
    // SAFETY: iz < 128 indexes the 128-entry tables.
    let (limit, scale) = unsafe {
        (
            _mm512_cvtepu32_epi64(_mm512_i64gather_epi32::<4>(iz, kt.as_ptr() as *const i32)),
            _mm512_i64gather_pd::<8>(iz, wt.as_ptr()),
        )
    };
    let fast = _mm512_cmplt_epu64_mask(hz, limit);
    let value = _mm512_mul_pd(_mm512_cvtepu64_pd(hz), scale);
    let sign = _mm512_slli_epi64::<56>(_mm512_and_si512(word, _mm512_set1_epi64(128)));
    let value = _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(value), sign));
    if fast == 0xff {
        return value;
    }
    let mut out = [0.0f64; LANES];
    // SAFETY: `out` holds eight f64.
    unsafe { _mm512_storeu_pd(out.as_mut_ptr(), value) };
    {
        let mut words = [0u64; LANES];
        // SAFETY: `words` holds eight u64.
        unsafe { _mm512_storeu_si512(words.as_mut_ptr() as *mut __m512i, word) };
        for l in 0..LANES {
            if fast & (1 << l) == 0 {
                out[l] = rng.normal_slow(step, tags[l], 0, lane, words[l] as u32);
            }
        }
    }
    // SAFETY: `out` holds eight f64.
    unsafe { _mm512_loadu_pd(out.as_ptr()) }
}

/// p + (v0 e + μ f) Δt + s ξ with `c` = [v0, μ, Δt, s] (the scalar update's order).
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn advance(p: __m512d, e: __m512d, f: __m512d, xi: __m512d, c: [__m512d; 4]) -> __m512d {
    let [v0, mu, dt, s] = c;
    _mm512_add_pd(
        _mm512_add_pd(
            p,
            _mm512_mul_pd(
                _mm512_add_pd(_mm512_mul_pd(v0, e), _mm512_mul_pd(mu, f)),
                dt,
            ),
        ),
        _mm512_mul_pd(s, xi),
    )
}

/// One step of the eight mobile particles in storage slots s0..s0 + 8 (chunk offset k): returns
/// per lane the squared displacement since the list build and the largest force component.
///
/// # Safety
/// AVX-512 (x86-64-v4) must be available; slots s0..s0 + 8 must exist and [`applies`] hold.
#[target_feature(
    enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd,avx2,fma,sse4.1,bmi1,bmi2,lzcnt"
)]
unsafe fn block(
    ctx: &StepContext,
    s0: usize,
    k: usize,
    xn: &mut [f64],
    imgs: &mut [i32],
    gs: &mut [f64],
) -> (__m512d, __m512d) {
    let (Some(super::PairForce::Wca { eps, sigma }), Some(list)) = (ctx.pair, ctx.list) else {
        unreachable!("chunk2 needs WCA pairs and a neighbour list")
    };
    let super::Dynamics::Abp { v0, mu, .. } = ctx.dynamics else {
        unreachable!("chunk2 needs ABP dynamics")
    };
    let len = _mm512_set1_pd(ctx.bx.length);
    let w = _mm512_set1_pd(0.5 * ctx.bx.length);
    let neg_w = _mm512_set1_pd(-(0.5 * ctx.bx.length));
    let even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    let odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    let x = ctx.x_old.as_ptr();
    // SAFETY (all loads and stores below): slots s0..s0 + 8 exist (caller), neighbour indices are
    // storage slots < N, list offsets index the list.
    let (xi, yi) = unsafe {
        let a = _mm512_loadu_pd(x.add(2 * s0));
        let b = _mm512_loadu_pd(x.add(2 * s0 + 8));
        (
            _mm512_permutex2var_pd(a, even, b),
            _mm512_permutex2var_pd(a, odd, b),
        )
    };

    // ---- forces: Σ_j over each particle's list, the longest of the eight lists with a mask
    let (start, nbr) = list.raw();
    let (begin, end) = unsafe {
        (
            _mm512_cvtepu32_epi64(_mm256_loadu_si256(start.as_ptr().add(s0) as *const __m256i)),
            _mm512_cvtepu32_epi64(_mm256_loadu_si256(
                start.as_ptr().add(s0 + 1) as *const __m256i
            )),
        )
    };
    let count = _mm512_sub_epi64(end, begin);
    let longest = _mm512_reduce_max_epi64(count);
    let (s2, e24) = (sigma * sigma, 24.0 * eps);
    let (s2v, e24v, rc2v) = (
        _mm512_set1_pd(s2),
        _mm512_set1_pd(e24),
        _mm512_set1_pd(ctx.rc2),
    );
    let (one, two, zero) = (
        _mm512_set1_pd(1.0),
        _mm512_set1_pd(2.0),
        _mm512_setzero_pd(),
    );
    let (mut fx, mut fy) = (zero, zero);
    for j in 0..longest {
        let jv = _mm512_set1_epi64(j);
        let live = _mm512_cmplt_epi64_mask(jv, count);
        let (xj, yj) = unsafe {
            let slot = _mm512_mask_i64gather_epi32::<4>(
                _mm256_setzero_si256(),
                live,
                _mm512_add_epi64(begin, jv),
                nbr.as_ptr() as *const i32,
            );
            let at = _mm512_slli_epi64::<1>(_mm512_cvtepu32_epi64(slot));
            (
                _mm512_mask_i64gather_pd::<8>(xi, live, at, x),
                _mm512_mask_i64gather_pd::<8>(
                    yi,
                    live,
                    _mm512_add_epi64(at, _mm512_set1_epi64(1)),
                    x,
                ),
            )
        };
        let dx = min_image(_mm512_sub_pd(xi, xj), w, neg_w, len);
        let dy = min_image(_mm512_sub_pd(yi, yj), w, neg_w, len);
        let r2 = _mm512_add_pd(_mm512_mul_pd(dx, dx), _mm512_mul_pd(dy, dy));
        let inside =
            _mm512_cmp_pd_mask::<_CMP_LT_OQ>(r2, rc2v) & _mm512_cmp_pd_mask::<_CMP_GT_OQ>(r2, zero);
        let rr = blend(inside, r2, rc2v);
        let inv = _mm512_div_pd(one, rr);
        let q = _mm512_mul_pd(s2v, inv);
        let s6 = _mm512_mul_pd(_mm512_mul_pd(q, q), q);
        let t = _mm512_sub_pd(_mm512_mul_pd(_mm512_mul_pd(two, s6), s6), s6);
        let sc = _mm512_mul_pd(_mm512_mul_pd(e24v, t), inv);
        let sc = blend(inside, sc, zero);
        fx = _mm512_mask_add_pd(fx, live, fx, _mm512_mul_pd(sc, dx));
        fy = _mm512_mask_add_pd(fy, live, fy, _mm512_mul_pd(sc, dy));
    }
    let fm = _mm512_max_pd(_mm512_abs_pd(fy), _mm512_max_pd(_mm512_abs_pd(fx), zero));

    // ---- noise: one Philox block per particle (counter: step, particle tag, stream)
    let tags = &ctx.tag[s0..s0 + LANES];
    let words = philox(
        [
            _mm512_set1_epi64((ctx.step as u32) as i64),
            _mm512_set1_epi64(((ctx.step >> 32) as u32) as i64),
            unsafe { _mm512_cvtepu32_epi64(_mm256_loadu_si256(tags.as_ptr() as *const __m256i)) },
            _mm512_set1_epi64(ctx.rng.stream_word(0) as i64),
        ],
        ctx.rng.key(),
    );
    let zx = normals(&ctx.rng, ctx.step, tags, words[0], 0);
    let zy = normals(&ctx.rng, ctx.step, tags, words[1], 1);
    let zt = normals(&ctx.rng, ctx.step, tags, words[2], 2);

    // ---- update: x += (v0 e + μF) Δt + √(2 D_T Δt) ξ, θ += √(2 D_r Δt) ξ
    let th = unsafe { _mm512_loadu_pd(gs.as_ptr().add(k)) };
    let (sn, cs) = sin_cos(th);
    let (dt, sx) = (_mm512_set1_pd(ctx.dt), _mm512_set1_pd(ctx.kicks.sx));
    let (v0v, muv) = (_mm512_set1_pd(v0), _mm512_set1_pd(mu));
    let (nx, ix) = wrap(advance(xi, cs, fx, zx, [v0v, muv, dt, sx]), w, neg_w, len);
    let (ny, iy) = wrap(advance(yi, sn, fy, zy, [v0v, muv, dt, sx]), w, neg_w, len);
    let pi = _mm512_set1_pd(std::f64::consts::PI);
    let tau = _mm512_set1_pd(std::f64::consts::TAU);
    let th = _mm512_add_pd(th, _mm512_mul_pd(_mm512_set1_pd(ctx.kicks.sr), zt));
    let th = blend(
        _mm512_cmp_pd_mask::<_CMP_GE_OQ>(th, pi),
        _mm512_sub_pd(th, tau),
        blend(
            _mm512_cmp_pd_mask::<_CMP_LT_OQ>(th, _mm512_sub_pd(zero, pi)),
            _mm512_add_pd(th, tau),
            th,
        ),
    );
    let lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    let hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    unsafe {
        _mm512_storeu_pd(gs.as_mut_ptr().add(k), th);
        _mm512_storeu_pd(
            xn.as_mut_ptr().add(2 * k),
            _mm512_permutex2var_pd(nx, lo, ny),
        );
        _mm512_storeu_pd(
            xn.as_mut_ptr().add(2 * k + 8),
            _mm512_permutex2var_pd(nx, hi, ny),
        );
    }
    // image counters (i32, interleaved like the positions)
    let mut crossed = [[0i32; LANES]; 2];
    unsafe {
        _mm256_storeu_si256(crossed[0].as_mut_ptr() as *mut __m256i, ix);
        _mm256_storeu_si256(crossed[1].as_mut_ptr() as *mut __m256i, iy);
    }
    for l in 0..LANES {
        for (a, c) in crossed.iter().enumerate() {
            let img = &mut imgs[2 * (k + l) + a];
            *img = img.saturating_add(c[l]);
        }
    }

    // ---- squared displacement since the list build
    let (bx, by) = unsafe {
        let xb = ctx.xb.as_ptr();
        let a = _mm512_loadu_pd(xb.add(2 * s0));
        let b = _mm512_loadu_pd(xb.add(2 * s0 + 8));
        (
            _mm512_permutex2var_pd(a, even, b),
            _mm512_permutex2var_pd(a, odd, b),
        )
    };
    let ddx = min_image(_mm512_sub_pd(nx, bx), w, neg_w, len);
    let ddy = min_image(_mm512_sub_pd(ny, by), w, neg_w, len);
    let d2 = _mm512_add_pd(_mm512_mul_pd(ddx, ddx), _mm512_mul_pd(ddy, ddy));
    (d2, fm)
}

/// c0 + c1 x, lane by lane.
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn linear(c0: f64, c1: f64, x: __m512d) -> __m512d {
    _mm512_add_pd(_mm512_set1_pd(c0), _mm512_mul_pd(_mm512_set1_pd(c1), x))
}

/// [`model::expm1_poly`] lane by lane (Estrin's scheme, the same operations).
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn expm1_poly(r: __m512d) -> __m512d {
    let c = &model::EXPM1_TAYLOR;
    let r2 = _mm512_mul_pd(r, r);
    let inner = _mm512_add_pd(
        linear(c[4], c[5], r),
        _mm512_mul_pd(r2, _mm512_set1_pd(c[6])),
    );
    let mid = _mm512_add_pd(linear(c[2], c[3], r), _mm512_mul_pd(r2, inner));
    _mm512_add_pd(linear(c[0], c[1], r), _mm512_mul_pd(r2, mid))
}

/// [`model::atanh_poly`] lane by lane (Estrin's scheme, the same operations).
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn atanh_poly(y: __m512d) -> __m512d {
    let c = &model::ATANH_SERIES;
    let y2 = _mm512_mul_pd(y, y);
    let mid = _mm512_add_pd(
        linear(c[2], c[3], y),
        _mm512_mul_pd(y2, linear(c[4], c[5], y)),
    );
    _mm512_add_pd(linear(c[0], c[1], y), _mm512_mul_pd(y2, mid))
}

/// A 16-entry table (the low four bits of each 64-bit index pick the entry).
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn lookup16(table: &[f64; 16], idx: __m512i) -> __m512d {
    // SAFETY: the table holds 16 f64, read as two registers of eight.
    let (a, b) = unsafe {
        (
            _mm512_loadu_pd(table.as_ptr()),
            _mm512_loadu_pd(table.as_ptr().add(8)),
        )
    };
    _mm512_permutex2var_pd(a, idx, b)
}

/// e^x lane by lane for x ≤ 0, the operations of [`model::exp_nonpositive`].
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn exp_nonpositive(x: __m512d) -> __m512d {
    // max_pd returns its second operand where x is NaN, as f64::max
    let x = _mm512_max_pd(x, _mm512_set1_pd(model::EXP_MIN));
    let n = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(_mm512_add_pd(
        _mm512_mul_pd(x, _mm512_set1_pd(model::INV_LN2_16)),
        _mm512_set1_pd(0.5),
    ));
    let r = _mm512_sub_pd(
        _mm512_sub_pd(x, _mm512_mul_pd(n, _mm512_set1_pd(model::LN2_16_HI))),
        _mm512_mul_pd(n, _mm512_set1_pd(model::LN2_16_LO)),
    );
    let q = _mm512_mul_pd(r, expm1_poly(r));
    let ni = _mm512_cvttpd_epi64(n);
    let (hi, lo) = (
        lookup16(&model::EXP2_16_HI, ni),
        lookup16(&model::EXP2_16_LO, ni),
    );
    let t = _mm512_add_pd(hi, _mm512_add_pd(_mm512_mul_pd(hi, q), lo));
    let two_m = _mm512_slli_epi64::<52>(_mm512_add_epi64(
        _mm512_srai_epi64::<4>(ni),
        _mm512_set1_epi64(1023),
    ));
    _mm512_mul_pd(t, _mm512_castsi512_pd(two_m))
}

/// ln(1 + t) lane by lane for t ∈ [0, 1], the operations of [`model::log1p_unit`].
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn log1p_unit(t: __m512d) -> __m512d {
    let i = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(_mm512_add_pd(
        _mm512_mul_pd(t, _mm512_set1_pd(8.0)),
        _mm512_set1_pd(0.5),
    ));
    let c1 = _mm512_mul_pd(i, _mm512_set1_pd(0.125));
    let s = _mm512_div_pd(
        _mm512_sub_pd(t, c1),
        _mm512_add_pd(_mm512_add_pd(_mm512_set1_pd(2.0), c1), t),
    );
    let l = _mm512_mul_pd(
        _mm512_mul_pd(_mm512_set1_pd(2.0), s),
        atanh_poly(_mm512_mul_pd(s, s)),
    );
    let ii = _mm512_cvttpd_epi64(i);
    _mm512_add_pd(
        lookup16(&model::LN1P_8_HI, ii),
        _mm512_add_pd(lookup16(&model::LN1P_8_LO, ii), l),
    )
}

/// k softplus_β(r0 − r)/r lane by lane from r², the operations of
/// `PairForce::magnitude_over_r` with [`model::softplus`].
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
#[inline]
fn softplus_over_r(r2: __m512d, c: &Softplus8) -> __m512d {
    let Softplus8 {
        k,
        r0,
        beta,
        inv_beta,
        ..
    } = *c;
    let r = _mm512_sqrt_pd(r2);
    let u = _mm512_sub_pd(r0, r);
    let z = _mm512_mul_pd(beta, u);
    // −|z|: the sign bit set
    let neg_abs = _mm512_or_pd(z, _mm512_set1_pd(-0.0));
    let l = _mm512_mul_pd(log1p_unit(exp_nonpositive(neg_abs)), inv_beta);
    let pos = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(z, _mm512_setzero_pd());
    let sp = blend(pos, _mm512_add_pd(u, l), l);
    _mm512_div_pd(_mm512_mul_pd(k, sp), r)
}

/// The softplus pair force's constants, broadcast: k, r0 = 2R, β, 1/β, r_c².
#[derive(Clone, Copy)]
struct Softplus8 {
    k: __m512d,
    r0: __m512d,
    beta: __m512d,
    inv_beta: __m512d,
    rc2: __m512d,
}

/// Pair entries [`PairBuffer`] holds (a multiple of eight).
const PAIR_BUF: usize = 256;

/// The pairs of one block of eight particles that contribute to their forces, between the
/// passes of [`block_aoup`]: separations (Δx, Δy, r²) of the kept list entries, lane by lane
/// in list order (a lane's entries are contiguous: `seg_begin[i]..` up to the next segment or
/// `len` belong to lane `seg_lane[i]`), then their products f(r)/r·Δ; the force sums of the
/// eight lanes so far. A full buffer is evaluated and summed (`flush`) and refilled; a lane's
/// sum goes on where it stopped, so the order of additions is each list's order.
///
/// Why: the softplus costs a square root, three divisions and ~35 multiply-adds; run lane by
/// lane over the eight lists it did so to the longest list, for every entry of it, also where
/// only some lanes were inside r_c. Here every evaluated lane is a pair inside r_c.
#[repr(C, align(64))]
pub(super) struct PairBuffer {
    dx: [f64; PAIR_BUF],
    dy: [f64; PAIR_BUF],
    /// r², then f(r)/r.
    r2: [f64; PAIR_BUF],
    fx: [f64; LANES],
    fy: [f64; LANES],
    len: usize,
    segs: usize,
    seg_lane: [usize; LANES + 1],
    seg_begin: [usize; LANES + 1],
}

impl PairBuffer {
    fn new() -> PairBuffer {
        PairBuffer {
            dx: [0.0; PAIR_BUF],
            dy: [0.0; PAIR_BUF],
            r2: [0.0; PAIR_BUF],
            fx: [0.0; LANES],
            fy: [0.0; LANES],
            len: 0,
            segs: 0,
            seg_lane: [0; LANES + 1],
            seg_begin: [0; LANES + 1],
        }
    }

    /// Empties the buffer and zeroes the sums (a new block).
    fn clear(&mut self) {
        self.len = 0;
        self.segs = 0;
        self.fx = [0.0; LANES];
        self.fy = [0.0; LANES];
    }

    /// Entries pushed from now on belong to lane `l`.
    fn open(&mut self, l: usize) {
        self.seg_lane[self.segs] = l;
        self.seg_begin[self.segs] = self.len;
        self.segs += 1;
    }

    /// Appends the lanes `keep` of (Δx, Δy, r²), in lane order (needs len + 8 ≤ PAIR_BUF).
    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
    #[inline]
    fn push(&mut self, keep: __mmask8, dx: __m512d, dy: __m512d, r2: __m512d) {
        debug_assert!(self.len + LANES <= PAIR_BUF);
        // SAFETY: len + 8 ≤ PAIR_BUF (caller), so the eight stores stay inside the arrays.
        unsafe {
            let at = self.len;
            _mm512_storeu_pd(
                self.dx.as_mut_ptr().add(at),
                _mm512_maskz_compress_pd(keep, dx),
            );
            _mm512_storeu_pd(
                self.dy.as_mut_ptr().add(at),
                _mm512_maskz_compress_pd(keep, dy),
            );
            _mm512_storeu_pd(
                self.r2.as_mut_ptr().add(at),
                _mm512_maskz_compress_pd(keep, r2),
            );
        }
        self.len += keep.count_ones() as usize;
    }

    /// f(r)/r (zero outside 0 < r² < r_c², as the scalar code) of every entry, eight at a
    /// time, its products with Δx and Δy added to the lanes' sums in entry order; empties the
    /// buffer (the sums stay).
    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd")]
    #[inline]
    fn flush(&mut self, c: &Softplus8) {
        let rc2 = c.rc2;
        let zero = _mm512_setzero_pd();
        let mut g = 0;
        while g < self.len {
            // SAFETY: g < len ≤ PAIR_BUF and PAIR_BUF is a multiple of eight: g + 8 ≤ PAIR_BUF.
            // Entries from len to g + 8 are stale (finite or not): computed, never used.
            unsafe {
                let r2 = _mm512_loadu_pd(self.r2.as_ptr().add(g));
                let inside = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(r2, rc2)
                    & _mm512_cmp_pd_mask::<_CMP_GT_OQ>(r2, zero);
                let sc = softplus_over_r(blend(inside, r2, rc2), c);
                let sc = blend(inside, sc, zero);
                let dx = self.dx.as_mut_ptr().add(g);
                let dy = self.dy.as_mut_ptr().add(g);
                _mm512_storeu_pd(dx, _mm512_mul_pd(sc, _mm512_loadu_pd(dx)));
                _mm512_storeu_pd(dy, _mm512_mul_pd(sc, _mm512_loadu_pd(dy)));
            }
            g += LANES;
        }
        for s in 0..self.segs {
            let l = self.seg_lane[s];
            let b = self.seg_begin[s];
            let e = if s + 1 < self.segs {
                self.seg_begin[s + 1]
            } else {
                self.len
            };
            let (mut ax, mut ay) = (self.fx[l], self.fy[l]);
            for (px, py) in self.dx[b..e].iter().zip(&self.dy[b..e]) {
                ax += px;
                ay += py;
            }
            self.fx[l] = ax;
            self.fy[l] = ay;
        }
        self.len = 0;
        self.segs = 0;
    }
}

/// One step of eight mobile 2-D AOUPs with softplus pairs in storage slots s0..s0 + 8 (chunk
/// offset k), the operations of `sim::step_particle` lane by lane: the force over each list
/// (through a [`PairBuffer`]: only pairs inside r_c are evaluated, eight at a time), x ← x + (v0 g + F − A x_unwrapped) Δt + √(2εΔt) ξ, the exact OU
/// step g ← e^{−γΔt} g + √(1 − e^{−2γΔt}) η (normals 0, 1 for x, 2, 3 for g, as the scalar
/// code). Returns per lane the squared displacement since the list build and the largest force
/// component.
///
/// # Safety
/// AVX-512 (x86-64-v4) must be available; slots s0..s0 + 8 must exist and [`applies`] hold.
#[target_feature(
    enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd,avx2,fma,sse4.1,bmi1,bmi2,lzcnt"
)]
unsafe fn block_aoup(
    ctx: &StepContext,
    s0: usize,
    k: usize,
    xn: &mut [f64],
    imgs: &mut [i32],
    gs: &mut [f64],
    buf: &mut PairBuffer,
) -> (__m512d, __m512d) {
    let (
        Some(super::PairForce::Softplus {
            k: kf, r0, beta, ..
        }),
        Some(list),
    ) = (ctx.pair, ctx.list)
    else {
        unreachable!("chunk2 needs softplus pairs and a neighbour list for AOUPs")
    };
    let super::Dynamics::Aoup { v0, trap, .. } = ctx.dynamics else {
        unreachable!("block_aoup needs AOUP dynamics")
    };
    let len = _mm512_set1_pd(ctx.bx.length);
    let w = _mm512_set1_pd(0.5 * ctx.bx.length);
    let neg_w = _mm512_set1_pd(-(0.5 * ctx.bx.length));
    let even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    let odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    let x = ctx.x_old.as_ptr();
    // SAFETY (all loads and stores below): slots s0..s0 + 8 exist (caller), offsets k..k + 8
    // exist in the chunk's slices, neighbour indices are storage slots < N, list offsets index
    // the list.
    let deinterleave = |p: *const f64| unsafe {
        let a = _mm512_loadu_pd(p);
        let b = _mm512_loadu_pd(p.add(8));
        (
            _mm512_permutex2var_pd(a, even, b),
            _mm512_permutex2var_pd(a, odd, b),
        )
    };
    let (xi, yi) = deinterleave(unsafe { x.add(2 * s0) });

    // ---- forces, in three passes over a buffer of pairs (see [`PairBuffer`]): the distances
    // of each particle's list, eight entries at a time, keeping only the entries that can
    // contribute; softplus_over_r of those, eight pairs at a time in every lane; each
    // particle's sum over its entries in list order
    let (start, nbr) = list.raw();
    let sp8 = Softplus8 {
        k: _mm512_set1_pd(kf),
        r0: _mm512_set1_pd(r0),
        beta: _mm512_set1_pd(beta),
        inv_beta: _mm512_set1_pd(1.0 / beta),
        rc2: _mm512_set1_pd(ctx.rc2),
    };
    let rc2v = sp8.rc2;
    let zero = _mm512_setzero_pd();
    let inf = _mm512_set1_pd(f64::INFINITY);
    let mut xs = [0.0f64; LANES];
    let mut ys = [0.0f64; LANES];
    unsafe {
        _mm512_storeu_pd(xs.as_mut_ptr(), xi);
        _mm512_storeu_pd(ys.as_mut_ptr(), yi);
    }
    buf.clear();
    for l in 0..LANES {
        let (b, e) = (start[s0 + l] as usize, start[s0 + l + 1] as usize);
        let (xl, yl) = (_mm512_set1_pd(xs[l]), _mm512_set1_pd(ys[l]));
        buf.open(l);
        let mut j = b;
        while j < e {
            let live: __mmask8 = if e - j >= LANES {
                0xff
            } else {
                (1u8 << (e - j)) - 1
            };
            let (xj, yj) = unsafe {
                let slot = _mm256_maskz_loadu_epi32(live, nbr.as_ptr().add(j) as *const i32);
                let at = _mm512_slli_epi64::<1>(_mm512_cvtepu32_epi64(slot));
                (
                    _mm512_mask_i64gather_pd::<8>(xl, live, at, x),
                    _mm512_mask_i64gather_pd::<8>(
                        yl,
                        live,
                        _mm512_add_epi64(at, _mm512_set1_epi64(1)),
                        x,
                    ),
                )
            };
            let dx = min_image(_mm512_sub_pd(xl, xj), w, neg_w, len);
            let dy = min_image(_mm512_sub_pd(yl, yj), w, neg_w, len);
            let r2 = _mm512_add_pd(_mm512_mul_pd(dx, dx), _mm512_mul_pd(dy, dy));
            // an entry contributes inside the cut-off, or with a non-finite separation (where the
            // scalar code's 0·Δ is NaN); any other adds ±0, which leaves a sum that started at +0
            // unchanged (it is never −0), so dropping it keeps the bits
            let keep = live
                & ((_mm512_cmp_pd_mask::<_CMP_LT_OQ>(r2, rc2v)
                    & _mm512_cmp_pd_mask::<_CMP_GT_OQ>(r2, zero))
                    | _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(r2, inf));
            if keep != 0 {
                if buf.len + LANES > PAIR_BUF {
                    buf.flush(&sp8);
                    buf.open(l);
                }
                buf.push(keep, dx, dy, r2);
            }
            j += LANES;
        }
    }
    buf.flush(&sp8);
    let (fx, fy) = unsafe {
        (
            _mm512_loadu_pd(buf.fx.as_ptr()),
            _mm512_loadu_pd(buf.fy.as_ptr()),
        )
    };
    let fm = _mm512_max_pd(_mm512_abs_pd(fy), _mm512_max_pd(_mm512_abs_pd(fx), zero));

    // ---- noise: one Philox block per particle (counter: step, particle tag, stream)
    let tags = &ctx.tag[s0..s0 + LANES];
    let words = philox(
        [
            _mm512_set1_epi64((ctx.step as u32) as i64),
            _mm512_set1_epi64(((ctx.step >> 32) as u32) as i64),
            unsafe { _mm512_cvtepu32_epi64(_mm256_loadu_si256(tags.as_ptr() as *const __m256i)) },
            _mm512_set1_epi64(ctx.rng.stream_word(0) as i64),
        ],
        ctx.rng.key(),
    );
    let zx = normals(&ctx.rng, ctx.step, tags, words[0], 0);
    let zy = normals(&ctx.rng, ctx.step, tags, words[1], 1);
    let hx = normals(&ctx.rng, ctx.step, tags, words[2], 2);
    let hy = normals(&ctx.rng, ctx.step, tags, words[3], 3);

    // ---- update, in the scalar order of operations
    let (gx, gy) = deinterleave(unsafe { gs.as_ptr().add(2 * k) });
    let mut img = [[0.0f64; LANES]; 2];
    for l in 0..LANES {
        for (a, v) in img.iter_mut().enumerate() {
            v[l] = imgs[2 * (k + l) + a] as f64;
        }
    }
    let (imx, imy) = unsafe {
        (
            _mm512_loadu_pd(img[0].as_ptr()),
            _mm512_loadu_pd(img[1].as_ptr()),
        )
    };
    let (v0v, trapv, dt, sx) = (
        _mm512_set1_pd(v0),
        _mm512_set1_pd(trap),
        _mm512_set1_pd(ctx.dt),
        _mm512_set1_pd(ctx.kicks.sx),
    );
    let (decay, sg) = (
        _mm512_set1_pd(ctx.kicks.decay),
        _mm512_set1_pd(ctx.kicks.sg),
    );
    let update = |p: __m512d, im: __m512d, g: __m512d, f: __m512d, z: __m512d| {
        let unwrapped = _mm512_add_pd(p, _mm512_mul_pd(im, len));
        let drift = _mm512_sub_pd(
            _mm512_add_pd(_mm512_mul_pd(v0v, g), f),
            _mm512_mul_pd(trapv, unwrapped),
        );
        _mm512_add_pd(
            _mm512_add_pd(p, _mm512_mul_pd(drift, dt)),
            _mm512_mul_pd(sx, z),
        )
    };
    let (nx, ix) = wrap(update(xi, imx, gx, fx, zx), w, neg_w, len);
    let (ny, iy) = wrap(update(yi, imy, gy, fy, zy), w, neg_w, len);
    let gx = _mm512_add_pd(_mm512_mul_pd(decay, gx), _mm512_mul_pd(sg, hx));
    let gy = _mm512_add_pd(_mm512_mul_pd(decay, gy), _mm512_mul_pd(sg, hy));
    let lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    let hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    unsafe {
        _mm512_storeu_pd(
            gs.as_mut_ptr().add(2 * k),
            _mm512_permutex2var_pd(gx, lo, gy),
        );
        _mm512_storeu_pd(
            gs.as_mut_ptr().add(2 * k + 8),
            _mm512_permutex2var_pd(gx, hi, gy),
        );
        _mm512_storeu_pd(
            xn.as_mut_ptr().add(2 * k),
            _mm512_permutex2var_pd(nx, lo, ny),
        );
        _mm512_storeu_pd(
            xn.as_mut_ptr().add(2 * k + 8),
            _mm512_permutex2var_pd(nx, hi, ny),
        );
    }
    let mut crossed = [[0i32; LANES]; 2];
    unsafe {
        _mm256_storeu_si256(crossed[0].as_mut_ptr() as *mut __m256i, ix);
        _mm256_storeu_si256(crossed[1].as_mut_ptr() as *mut __m256i, iy);
    }
    for l in 0..LANES {
        for (a, c) in crossed.iter().enumerate() {
            let img = &mut imgs[2 * (k + l) + a];
            *img = img.saturating_add(c[l]);
        }
    }

    // ---- squared displacement since the list build
    let (bx, by) = deinterleave(unsafe { ctx.xb.as_ptr().add(2 * s0) });
    let ddx = min_image(_mm512_sub_pd(nx, bx), w, neg_w, len);
    let ddy = min_image(_mm512_sub_pd(ny, by), w, neg_w, len);
    let d2 = _mm512_add_pd(_mm512_mul_pd(ddx, ddx), _mm512_mul_pd(ddy, ddy));
    (d2, fm)
}
