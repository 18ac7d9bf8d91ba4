//! Run-time selection of the instruction set for the particle kernels. The hot loops (one time
//! step, one neighbour-list build) are compiled three times — for the baseline x86-64 target,
//! x86-64-v3 (AVX2, FMA, BMI) and x86-64-v4 (AVX-512) — and the best the CPU supports is called.
//! The variants execute the same operations in the same order, and Rust never contracts a·b + c
//! into an FMA on its own, so results are bit-identical whatever the CPU (tested); the wide
//! variants gain from more and wider registers, masked selects and floor/round as instructions
//! instead of libm calls.

/// Instruction sets the kernels are compiled for, best first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Isa {
    /// x86-64-v4: AVX-512 (F, VL, DQ, BW, CD) with AVX2, FMA, BMI.
    Avx512,
    /// x86-64-v3: AVX2, FMA, BMI, SSE4.1.
    Avx2,
    /// The baseline target.
    Baseline,
}

/// The best [`Isa`] of this CPU (std caches the feature detection).
pub fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let v3 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("sse4.1")
            && is_x86_feature_detected!("bmi1")
            && is_x86_feature_detected!("bmi2")
            && is_x86_feature_detected!("lzcnt");
        let v4 = v3
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512cd");
        if v4 {
            return Isa::Avx512;
        }
        if v3 {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// `multiversion!(fn name(a: A, b: B) -> R = body);` defines `fn name(isa: Isa, a: A, b: B) -> R`
/// that calls the `#[inline(always)]` function `body(a, b)` compiled for `isa`.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty = $body:path;) => {
        $(#[$meta])*
        $vis fn $name(isa: $crate::particles::isa::Isa, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// The CPU must support the x86-64-v4 features.
                #[target_feature(
                    enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd,avx2,fma,sse4.1,bmi1,bmi2,lzcnt"
                )]
                unsafe fn v4($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                /// # Safety
                /// The CPU must support the x86-64-v3 features.
                #[target_feature(enable = "avx2,fma,sse4.1,bmi1,bmi2,lzcnt")]
                unsafe fn v3($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                match isa {
                    // SAFETY: `isa` comes from `isa::detect` (or is narrower), so the CPU has
                    // the enabled features.
                    $crate::particles::isa::Isa::Avx512 => return unsafe { v4($($arg),*) },
                    $crate::particles::isa::Isa::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::particles::isa::Isa::Baseline => {}
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;
