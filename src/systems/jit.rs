//! Native code for a [`Model`] with Cranelift: the right-hand side, the dense Jacobian, both
//! together, and the parameter Jacobian, compiled once when a file is loaded.
//!
//! Every generated function has the C signature
//! `fn(t: f64, x: *const f64, p: *const f64, lag: *const f64, out: *mut f64 [, jac: *mut f64])`
//! with `x` of length D (state), `p` of length P (parameters, sorted-name order), `lag` of length
//! L (delayed values, DDEs only) and row-major outputs (`out` D for the right-hand side, D×D for
//! the Jacobian ∂f_i/∂x_j at `i*D + j`, D×P for ∂f_i/∂p_k at `i*P + k`).
//!
//! Sub-expressions are hash-consed while lowering, so a term shared between equations, or
//! between an equation and its derivatives, is computed once; transcendental functions call
//! Rust's `f64` methods so the results equal the interpreter's bit for bit for the same
//! evaluation order. Integer powers are lowered to the same multiplication sequence as
//! [`expr::powi`].

use super::expr::{self, Expr, Func1, Func2, E};
use super::model::Model;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, AbiParam, FuncRef, InstBuilder, MemFlagsData, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use std::collections::HashMap;

/// Signature of a generated right-hand side / Jacobian / parameter-Jacobian function.
pub type KernelFn = unsafe extern "C" fn(f64, *const f64, *const f64, *const f64, *mut f64);
/// Signature of the generated combined right-hand side + Jacobian function.
pub type KernelFn2 =
    unsafe extern "C" fn(f64, *const f64, *const f64, *const f64, *mut f64, *mut f64);

/// Signature of the batched right-hand side: `fn(t, x, p, out, stride, n)` for `n` states in
/// structure-of-arrays layout (component `k` of state `i` at `x[k*stride + i]`, likewise `out`),
/// `n` even. Two states are evaluated at once with SIMD (f64x2).
pub type BatchFn = unsafe extern "C" fn(f64, *const f64, *const f64, *mut f64, i64, i64);

/// Compiled kernels of one model. Owns the executable memory.
pub struct JitCode {
    module: Option<JITModule>,
    /// f(t, x) (delayed terms read from `lag`).
    pub rhs: KernelFn,
    /// f(t, x) with every delayed term replaced by the current state (the τ → 0 limit; equals
    /// `rhs` for systems without delays).
    pub rhs_undelayed: KernelFn,
    /// Dense Jacobian ∂f/∂x with respect to the current state (delayed terms held fixed and,
    /// like in `rhs_undelayed`, read from the current state; `lag` is not read).
    pub jacobian: KernelFn,
    /// f (undelayed) and ∂f/∂x in one pass (shared sub-expressions).
    pub rhs_jacobian: KernelFn2,
    /// Dense parameter Jacobian ∂f/∂p (undelayed).
    pub param_jacobian: KernelFn,
    /// Batched right-hand side (systems without delays).
    pub rhs_batch: Option<BatchFn>,
}

// SAFETY: after `finalize_definitions` the module is never mutated again (only freed in `Drop`,
// which needs `&mut self`); the generated functions are pure and reentrant, reading only their
// arguments, so sharing them across threads is sound.
unsafe impl Send for JitCode {}
unsafe impl Sync for JitCode {}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the function pointers are owned by `self` and die with it.
            unsafe { m.free_memory() };
        }
    }
}

/// An error of the code generator (not of the user's file: every valid model compiles).
#[derive(Debug, thiserror::Error)]
#[error("JIT compilation of '{system}' failed: {message}")]
pub struct JitError {
    pub system: String,
    pub message: String,
}

extern "C" fn pf_f1(code: u32, x: f64) -> f64 {
    // The function is chosen by code to keep one import: see `Func1` order in `f1_code`.
    F1_TABLE[code as usize].eval(x)
}
extern "C" fn pf_f2(code: u32, a: f64, b: f64) -> f64 {
    F2_TABLE[code as usize].eval(a, b)
}
extern "C" fn pf_zero(ptr: *mut f64, n: u64) {
    // SAFETY: called only by generated code with the caller-provided output buffer of length n.
    unsafe { std::ptr::write_bytes(ptr, 0, n as usize) };
}

const F1_TABLE: [Func1; 16] = [
    Func1::Sin,
    Func1::Cos,
    Func1::Tan,
    Func1::Asin,
    Func1::Acos,
    Func1::Atan,
    Func1::Sinh,
    Func1::Cosh,
    Func1::Tanh,
    Func1::Exp,
    Func1::Log,
    Func1::Sqrt,
    Func1::Abs,
    Func1::Sign,
    Func1::Floor,
    Func1::Heaviside,
];
const F2_TABLE: [Func2; 6] = [
    Func2::Atan2,
    Func2::Min,
    Func2::Max,
    Func2::Mod,
    Func2::Pow,
    Func2::Kepler,
];

fn f1_code(f: Func1) -> u32 {
    F1_TABLE.iter().position(|g| *g == f).unwrap() as u32
}
fn f2_code(f: Func2) -> u32 {
    F2_TABLE.iter().position(|g| *g == f).unwrap() as u32
}

/// Key of a hash-consed node: tag, payload, child ids.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct Key(u8, u64, u32, u32, u32);

struct Lower<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    t: Value,
    x: Value,
    p: Value,
    lag: Value,
    f1: FuncRef,
    f2: FuncRef,
    by_ptr: HashMap<*const Expr, (u32, Value)>,
    by_key: HashMap<Key, (u32, Value)>,
    /// For the undelayed variant: lag slot → state component.
    lag_to_state: Option<&'a [usize]>,
    /// Batched (SIMD, two lanes of f64) lowering: the state rows and the byte offset of the
    /// current lane pair.
    vec: Option<VecCtx>,
}

/// Addressing of the batched kernel: row `k` of the structure-of-arrays state starts at
/// `rows[k]`, and the current pair of lanes is at byte offset `off`.
struct VecCtx {
    rows: HashMap<usize, Value>,
    off: Value,
}

impl Lower<'_, '_> {
    fn konst(&mut self, v: f64) -> (u32, Value) {
        self.cons(Key(0, v.to_bits(), 0, 0, 0), |l| {
            let s = l.b.ins().f64const(v);
            l.splat(s)
        })
    }
    /// A scalar broadcast to both lanes in batched mode; unchanged otherwise.
    fn splat(&mut self, s: Value) -> Value {
        if self.vec.is_some() {
            self.b.ins().splat(types::F64X2, s)
        } else {
            s
        }
    }
    /// Applies a scalar operation lane by lane (batched mode): the lanes of `args` are
    /// extracted, `f` builds the scalar result, and the results are packed again.
    fn lanewise(&mut self, args: &[Value], f: &dyn Fn(&mut Self, &[Value]) -> Value) -> Value {
        let mut packed: Option<Value> = None;
        for lane in 0..2u8 {
            let scalars: Vec<Value> = args
                .iter()
                .map(|a| self.b.ins().extractlane(*a, lane))
                .collect();
            let r = f(self, &scalars);
            packed = Some(match packed {
                None => self.b.ins().scalar_to_vector(types::F64X2, r),
                Some(v) => self.b.ins().insertlane(v, r, lane),
            });
        }
        packed.expect("two lanes")
    }
    fn cons(&mut self, key: Key, make: impl FnOnce(&mut Self) -> Value) -> (u32, Value) {
        if let Some(r) = self.by_key.get(&key) {
            return *r;
        }
        let v = make(self);
        let id = self.by_key.len() as u32 + 1;
        self.by_key.insert(key, (id, v));
        (id, v)
    }
    /// Stores `v` at `out[pos]` (a 64-bit address computation where the byte offset does not
    /// fit the 32-bit immediate of a store: outputs of more than 2³¹ bytes, e.g. a dense
    /// Jacobian of dimension 16,384 and more).
    fn store_at(&mut self, out: Value, pos: usize, v: Value) {
        let bytes = 8 * pos as i64;
        match i32::try_from(bytes) {
            Ok(off) => {
                self.b.ins().store(MemFlagsData::trusted(), v, out, off);
            }
            Err(_) => {
                let addr = self.b.ins().iadd_imm_u(out, bytes);
                self.b.ins().store(MemFlagsData::trusted(), v, addr, 0);
            }
        }
    }
    fn load(&mut self, base: Value, k: usize) -> Value {
        self.b.ins().load(
            types::F64,
            MemFlagsData::trusted().with_readonly(),
            base,
            (8 * k) as i32,
        )
    }
    fn call1(&mut self, f: Func1, a: Value) -> Value {
        let code = self.b.ins().iconst(types::I32, f1_code(f) as i64);
        let call = self.b.ins().call(self.f1, &[code, a]);
        self.b.inst_results(call)[0]
    }
    fn call2(&mut self, f: Func2, a: Value, c: Value) -> Value {
        let code = self.b.ins().iconst(types::I32, f2_code(f) as i64);
        let call = self.b.ins().call(self.f2, &[code, a, c]);
        self.b.inst_results(call)[0]
    }
    fn ge_zero_select(&mut self, q: Value, a: Value, c: Value) -> Value {
        let zero = self.konst(0.0).1;
        let cmp = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, q, zero);
        self.b.ins().select(cmp, a, c)
    }

    /// Lowers `root` (children before parents, each distinct node once), from a heap stack so
    /// that a tree of any depth is lowered without recursion: when [`Self::gen_node`] asks
    /// for a child's value, the child has been lowered already.
    fn gen(&mut self, root: &E) -> (u32, Value) {
        let ptr = std::sync::Arc::as_ptr;
        if let Some(r) = self.by_ptr.get(&ptr(root)) {
            return *r;
        }
        let mut work: Vec<(&E, bool)> = vec![(root, false)];
        while let Some((e, ready)) = work.pop() {
            if self.by_ptr.contains_key(&ptr(e)) {
                continue;
            }
            if ready {
                let r = self.gen_node(e);
                self.by_ptr.insert(ptr(e), r);
                continue;
            }
            work.push((e, true));
            let kids: [Option<&E>; 3] = match &**e {
                Expr::Const(_) | Expr::State(_) | Expr::Param(_) | Expr::Time | Expr::Lag(_) => {
                    [None, None, None]
                }
                Expr::Neg(a) | Expr::F1(_, a) => [Some(a), None, None],
                // a small integer exponent is not lowered as a value (see `powi`)
                Expr::Pow(a, b) if matches!(**b, Expr::Const(n) if expr::small_int(n).is_some()) => {
                    [Some(a), None, None]
                }
                Expr::Add(a, b)
                | Expr::Sub(a, b)
                | Expr::Mul(a, b)
                | Expr::Div(a, b)
                | Expr::Pow(a, b)
                | Expr::F2(_, a, b) => [Some(a), Some(b), None],
                Expr::Select(q, a, b) => [Some(q), Some(a), Some(b)],
            };
            for k in kids.into_iter().rev().flatten() {
                if !self.by_ptr.contains_key(&ptr(k)) {
                    work.push((k, false));
                }
            }
        }
        self.by_ptr[&ptr(root)]
    }

    fn gen_node(&mut self, e: &E) -> (u32, Value) {
        use Expr::*;
        match &**e {
            Const(v) => self.konst(*v),
            State(k) => {
                let k = *k;
                self.cons(Key(1, k as u64, 0, 0, 0), |l| match &l.vec {
                    Some(v) => {
                        let addr = l.b.ins().iadd(v.rows[&k], v.off);
                        // lanes of a Vec<f64> are 8-byte aligned only: no `aligned` flag
                        l.b.ins()
                            .load(types::F64X2, MemFlagsData::new().with_notrap(), addr, 0)
                    }
                    None => l.load(l.x, k),
                })
            }
            Param(k) => {
                let k = *k;
                self.cons(Key(2, k as u64, 0, 0, 0), |l| {
                    let s = l.load(l.p, k);
                    l.splat(s)
                })
            }
            Time => {
                let t = self.t;
                self.cons(Key(3, 0, 0, 0, 0), |l| l.splat(t))
            }
            Lag(k) => {
                let k = *k;
                match self.lag_to_state {
                    Some(map) => {
                        let s = map[k];
                        self.cons(Key(1, s as u64, 0, 0, 0), |l| l.load(l.x, s))
                    }
                    None => self.cons(Key(4, k as u64, 0, 0, 0), |l| l.load(l.lag, k)),
                }
            }
            Neg(a) => {
                let (ia, va) = self.gen(a);
                self.cons(Key(5, 0, ia, 0, 0), |l| l.b.ins().fneg(va))
            }
            Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) => {
                let (ia, va) = self.gen(a);
                let (ib, vb) = self.gen(b);
                let tag = match &**e {
                    Add(..) => 6,
                    Sub(..) => 7,
                    Mul(..) => 8,
                    _ => 9,
                };
                self.cons(Key(tag, 0, ia, ib, 0), |l| match tag {
                    6 => l.b.ins().fadd(va, vb),
                    7 => l.b.ins().fsub(va, vb),
                    8 => l.b.ins().fmul(va, vb),
                    _ => l.b.ins().fdiv(va, vb),
                })
            }
            Pow(a, b) => {
                let (ia, va) = self.gen(a);
                if let Const(n) = **b {
                    if let Some(k) = expr::small_int(n) {
                        return self.cons(Key(10, k as i64 as u64, ia, 0, 0), |l| l.powi(va, k));
                    }
                }
                let (ib, vb) = self.gen(b);
                self.cons(Key(11, 0, ia, ib, 0), |l| {
                    if l.vec.is_some() {
                        l.lanewise(&[va, vb], &|l, s| l.call2(Func2::Pow, s[0], s[1]))
                    } else {
                        l.call2(Func2::Pow, va, vb)
                    }
                })
            }
            F1(f, a) => {
                let (ia, va) = self.gen(a);
                let f = *f;
                self.cons(Key(12, f1_code(f) as u64, ia, 0, 0), |l| match f {
                    Func1::Sqrt => l.b.ins().sqrt(va),
                    Func1::Abs => l.b.ins().fabs(va),
                    _ if l.vec.is_some() => l.lanewise(&[va], &|l, s| l.call1(f, s[0])),
                    Func1::Heaviside => {
                        let one = l.konst(1.0).1;
                        let zero = l.konst(0.0).1;
                        l.ge_zero_select(va, one, zero)
                    }
                    Func1::Sign => {
                        let one = l.konst(1.0).1;
                        let mone = l.konst(-1.0).1;
                        let zero = l.konst(0.0).1;
                        let gt = l.b.ins().fcmp(FloatCC::GreaterThan, va, zero);
                        let lt = l.b.ins().fcmp(FloatCC::LessThan, va, zero);
                        let neg_or_zero = l.b.ins().select(lt, mone, zero);
                        l.b.ins().select(gt, one, neg_or_zero)
                    }
                    _ => l.call1(f, va),
                })
            }
            F2(f, a, b) => {
                let (ia, va) = self.gen(a);
                let (ib, vb) = self.gen(b);
                let f = *f;
                self.cons(Key(13, f2_code(f) as u64, ia, ib, 0), |l| match f {
                    _ if l.vec.is_some() => l.lanewise(&[va, vb], &|l, s| l.call2(f, s[0], s[1])),
                    Func2::Min => {
                        let cmp = l.b.ins().fcmp(FloatCC::LessThanOrEqual, va, vb);
                        l.b.ins().select(cmp, va, vb)
                    }
                    Func2::Max => {
                        let cmp = l.b.ins().fcmp(FloatCC::GreaterThanOrEqual, va, vb);
                        l.b.ins().select(cmp, va, vb)
                    }
                    Func2::Mod => {
                        // a − b·floor(a/b), as the interpreter
                        let q = l.b.ins().fdiv(va, vb);
                        let fl = l.call1(Func1::Floor, q);
                        let m = l.b.ins().fmul(vb, fl);
                        l.b.ins().fsub(va, m)
                    }
                    _ => l.call2(f, va, vb),
                })
            }
            Select(q, a, b) => {
                let (iq, vq) = self.gen(q);
                let (ia, va) = self.gen(a);
                let (ib, vb) = self.gen(b);
                self.cons(Key(14, 0, iq, ia, ib), |l| {
                    if l.vec.is_some() {
                        l.lanewise(&[vq, va, vb], &|l, s| {
                            let zero = l.b.ins().f64const(0.0);
                            let cmp = l.b.ins().fcmp(FloatCC::GreaterThanOrEqual, s[0], zero);
                            l.b.ins().select(cmp, s[1], s[2])
                        })
                    } else {
                        l.ge_zero_select(vq, va, vb)
                    }
                })
            }
        }
    }

    /// Binary powering in the order of [`expr::powi`].
    fn powi(&mut self, a: Value, k: i32) -> Value {
        let mut n = k.unsigned_abs();
        let mut base = a;
        let mut acc: Option<Value> = None;
        while n > 0 {
            if n & 1 == 1 {
                acc = Some(match acc {
                    None => base,
                    Some(v) => self.b.ins().fmul(v, base),
                });
            }
            n >>= 1;
            if n > 0 {
                base = self.b.ins().fmul(base, base);
            }
        }
        let v = match acc {
            Some(v) => v,
            None => self.konst(1.0).1,
        };
        if k < 0 {
            let one = self.konst(1.0).1;
            self.b.ins().fdiv(one, v)
        } else {
            v
        }
    }
}

/// One output block of a generated function: a dense row-major array whose nonzero entries
/// are given.
struct Block<'a> {
    len: usize,
    entries: Vec<(usize, &'a E)>,
}

/// Compiles the model's kernels.
pub fn compile(model: &Model) -> Result<JitCode, JitError> {
    let fail = |m: String| JitError {
        system: model.name.clone(),
        message: m,
    };
    let mut flags = settings::builder();
    flags
        .set("opt_level", "speed")
        .map_err(|e| fail(e.to_string()))?;
    flags
        .set("is_pic", "false")
        .map_err(|e| fail(e.to_string()))?;
    // large models: a single-pass register allocator and no IR optimisation, so that
    // compilation stays fast (and linear) in the size of the model
    let nodes: usize = model.rhs.iter().map(|e| e.size()).sum();
    if model.dim() > LARGE_MODEL || nodes > LARGE_EXPRESSIONS {
        flags
            .set("regalloc_algorithm", "single_pass")
            .map_err(|e| fail(e.to_string()))?;
        flags
            .set("opt_level", "none")
            .map_err(|e| fail(e.to_string()))?;
    }
    // the IR is generated by this module, not written by hand: checking it again on every
    // load is a sizeable part of the compile time of large models
    flags
        .set(
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        )
        .map_err(|e| fail(e.to_string()))?;
    flags
        .set("use_colocated_libcalls", "false")
        .map_err(|e| fail(e.to_string()))?;
    let isa = cranelift_native::builder()
        .map_err(|e| fail(e.to_string()))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| fail(e.to_string()))?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    jb.symbol("pf_f1", pf_f1 as *const u8);
    jb.symbol("pf_f2", pf_f2 as *const u8);
    jb.symbol("pf_zero", pf_zero as *const u8);
    let mut module = JITModule::new(jb);

    let d = model.dim();
    let np = model.param_names.len();
    let rhs_entries: Vec<(usize, &E)> = model.rhs.iter().enumerate().collect();
    let jac_entries: Vec<(usize, &E)> = model
        .jacobian
        .iter()
        .map(|(r, c, e)| (r * d + c, e))
        .collect();
    let pj_entries: Vec<(usize, &E)> = model
        .param_jacobian
        .iter()
        .map(|(r, k, e)| (r * np + k, e))
        .collect();
    let lag_map: Vec<usize> = model.lags.iter().map(|l| l.component).collect();

    let rhs = build(
        &mut module,
        "rhs",
        &[Block {
            len: d,
            entries: rhs_entries.clone(),
        }],
        None,
    )
    .map_err(fail)?;
    // without delayed terms the undelayed right-hand side is the right-hand side
    let rhs_u = if model.lags.is_empty() {
        rhs
    } else {
        build(
            &mut module,
            "rhs_undelayed",
            &[Block {
                len: d,
                entries: rhs_entries.clone(),
            }],
            Some(&lag_map),
        )
        .map_err(fail)?
    };
    let jac = build(
        &mut module,
        "jacobian",
        &[Block {
            len: d * d,
            entries: jac_entries.clone(),
        }],
        Some(&lag_map),
    )
    .map_err(fail)?;
    let both = build(
        &mut module,
        "rhs_jacobian",
        &[
            Block {
                len: d,
                entries: rhs_entries,
            },
            Block {
                len: d * d,
                entries: jac_entries,
            },
        ],
        Some(&lag_map),
    )
    .map_err(fail)?;
    let pj = build(
        &mut module,
        "param_jacobian",
        &[Block {
            len: d * np,
            entries: pj_entries,
        }],
        Some(&lag_map),
    )
    .map_err(fail)?;
    let batch = if model.lags.is_empty() {
        Some(build_batch(&mut module, &model.rhs).map_err(fail)?)
    } else {
        None
    };
    module
        .finalize_definitions()
        .map_err(|e| fail(e.to_string()))?;
    // SAFETY: each id was defined above with the signature matching the transmuted type.
    unsafe {
        let get = |id: FuncId| module.get_finalized_function(id);
        Ok(JitCode {
            rhs: std::mem::transmute::<*const u8, KernelFn>(get(rhs)),
            rhs_undelayed: std::mem::transmute::<*const u8, KernelFn>(get(rhs_u)),
            jacobian: std::mem::transmute::<*const u8, KernelFn>(get(jac)),
            rhs_jacobian: std::mem::transmute::<*const u8, KernelFn2>(get(both)),
            param_jacobian: std::mem::transmute::<*const u8, KernelFn>(get(pj)),
            rhs_batch: batch.map(|id| std::mem::transmute::<*const u8, BatchFn>(get(id))),
            module: Some(module),
        })
    }
}

/// Most output entries lowered into one Cranelift function. A kernel with more entries is
/// split into parts of at most this many, each its own function, called in turn by the kernel:
/// compile time (register allocation in particular) grows faster than linearly with the size
/// of one function, so large models (Lorenz-96 with 10⁵ variables) compile in linear time.
const ENTRIES_PER_FUNCTION: usize = 256;

/// State dimension above which kernels are compiled for compile speed rather than run speed
/// (single-pass register allocation, no IR optimisation): about 1 s of compile time. The
/// backtracking allocator is superlinear in the number of values live at once, which grows with
/// the size of one function (a large family) or of one expression (a long product, whose
/// derivative keeps every partial product alive).
const LARGE_MODEL: usize = 4096;

/// Nodes of the right-hand side (all components) above which kernels are compiled for compile
/// speed, see [`LARGE_MODEL`].
const LARGE_EXPRESSIONS: usize = 20_000;

fn build(
    module: &mut JITModule,
    name: &str,
    blocks: &[Block],
    lag_to_state: Option<&[usize]>,
) -> Result<FuncId, String> {
    let all: Vec<(usize, usize, &E)> = blocks
        .iter()
        .enumerate()
        .flat_map(|(bi, b)| b.entries.iter().map(move |(pos, e)| (bi, *pos, *e)))
        .collect();
    if all.len() <= ENTRIES_PER_FUNCTION {
        return build_fn(module, name, blocks, &all, true, lag_to_state, &[]);
    }
    let mut parts = Vec::new();
    for (k, chunk) in all.chunks(ENTRIES_PER_FUNCTION).enumerate() {
        parts.push(build_fn(
            module,
            &format!("{name}.part{k}"),
            blocks,
            chunk,
            false,
            lag_to_state,
            &[],
        )?);
    }
    build_fn(module, name, blocks, &[], true, lag_to_state, &parts)
}

/// One function of the kernel signature: zeroes the outputs' uncomputed entries (`zero`), calls
/// `calls` with its own arguments, then computes and stores `entries` (block, position, value).
fn build_fn(
    module: &mut JITModule,
    name: &str,
    blocks: &[Block],
    entries: &[(usize, usize, &E)],
    zero: bool,
    lag_to_state: Option<&[usize]>,
    calls: &[FuncId],
) -> Result<FuncId, String> {
    let ptr = module.target_config().pointer_type();
    let mut ctx = module.make_context();
    let sig = &mut ctx.func.signature;
    sig.params.push(AbiParam::new(types::F64));
    for _ in 0..3 + blocks.len() {
        sig.params.push(AbiParam::new(ptr));
    }
    let id = module
        .declare_function(name, Linkage::Local, &ctx.func.signature)
        .map_err(|e| e.to_string())?;

    let (f1, f2, fz) = declare_imports(module)?;

    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let f1r = module.declare_func_in_func(f1, b.func);
        let f2r = module.declare_func_in_func(f2, b.func);
        let fzr = module.declare_func_in_func(fz, b.func);
        let call_refs: Vec<FuncRef> = calls
            .iter()
            .map(|id| module.declare_func_in_func(*id, b.func))
            .collect();
        let mut l = Lower {
            b: &mut b,
            t: params[0],
            x: params[1],
            p: params[2],
            lag: params[3],
            f1: f1r,
            f2: f2r,
            by_ptr: HashMap::new(),
            by_key: HashMap::new(),
            lag_to_state,
            vec: None,
        };
        // zero the entries that are not computed, then compute and store each entry in turn
        // (a value is stored as soon as it is computed, so few values are live at a time; the
        // outputs never alias the inputs)
        for (bi, block) in blocks.iter().enumerate() {
            let out = params[4 + bi];
            let dense = block.entries.len() == block.len;
            if dense || !zero {
                continue;
            }
            if block.len <= 4096 {
                let mut filled = vec![false; block.len];
                for (pos, _) in &block.entries {
                    filled[*pos] = true;
                }
                let zero = l.konst(0.0).1;
                for (pos, f) in filled.iter().enumerate() {
                    if !f {
                        l.store_at(out, pos, zero);
                    }
                }
            } else {
                let n = l.b.ins().iconst(types::I64, block.len as i64);
                l.b.ins().call(fzr, &[out, n]);
            }
        }
        for f in call_refs {
            l.b.ins().call(f, &params);
        }
        for (bi, pos, e) in entries {
            let v = l.gen(e).1;
            l.store_at(params[4 + bi], *pos, v);
        }
        b.ins().return_(&[]);
        b.finalize(module.target_config());
    }
    module
        .define_function(id, &mut ctx)
        .map_err(|e| format!("{e:?}"))?;
    module.clear_context(&mut ctx);
    Ok(id)
}

/// Builds the batched right-hand side (see [`BatchFn`]): a loop over pairs of states, each
/// pair evaluated with two-lane SIMD; functions without a vector instruction are applied lane
/// by lane with the same scalar code as the other kernels, so results equal theirs bit for bit.
fn build_batch(module: &mut JITModule, rhs: &[E]) -> Result<FuncId, String> {
    if rhs.len() <= ENTRIES_PER_FUNCTION {
        return build_batch_fn(module, "rhs_batch", rhs, 0..rhs.len(), &[]);
    }
    // large models: one function (with its own loop over the states) per part of the
    // components, called in turn (see ENTRIES_PER_FUNCTION)
    let mut parts = Vec::new();
    for (k, start) in (0..rhs.len()).step_by(ENTRIES_PER_FUNCTION).enumerate() {
        let end = (start + ENTRIES_PER_FUNCTION).min(rhs.len());
        parts.push(build_batch_fn(
            module,
            &format!("rhs_batch.part{k}"),
            rhs,
            start..end,
            &[],
        )?);
    }
    build_batch_fn(module, "rhs_batch", rhs, 0..0, &parts)
}

/// One function of the [`BatchFn`] signature: calls `calls` with its own arguments, then
/// computes the components `range` of the right-hand side for the `n` states.
fn build_batch_fn(
    module: &mut JITModule,
    name: &str,
    rhs: &[E],
    range: std::ops::Range<usize>,
    calls: &[FuncId],
) -> Result<FuncId, String> {
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::BlockArg;
    let ptr = module.target_config().pointer_type();
    let mut ctx = module.make_context();
    let sig = &mut ctx.func.signature;
    sig.params.push(AbiParam::new(types::F64));
    for _ in 0..3 {
        sig.params.push(AbiParam::new(ptr));
    }
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    let id = module
        .declare_function(name, Linkage::Local, &ctx.func.signature)
        .map_err(|e| e.to_string())?;
    let (f1, f2, _) = declare_imports(module)?;
    // the state rows this part reads
    let mut used: Vec<usize> = Vec::new();
    for e in &rhs[range.clone()] {
        e.visit(&mut |n| {
            if let Expr::State(k) = n {
                used.push(*k)
            }
        });
    }
    used.sort_unstable();
    used.dedup();

    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        let header = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.append_block_param(header, types::I64);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let (t, x, p, out, stride, n) = (
            params[0], params[1], params[2], params[3], params[4], params[5],
        );
        let f1r = module.declare_func_in_func(f1, b.func);
        let f2r = module.declare_func_in_func(f2, b.func);
        for id in calls {
            let f = module.declare_func_in_func(*id, b.func);
            b.ins().call(f, &params);
        }
        // row pointers: base + k·stride·8
        let stride8 = b.ins().ishl_imm_u(stride, 3);
        let row = |b: &mut FunctionBuilder, base: Value, k: usize| {
            let kk = b.ins().iconst(types::I64, k as i64);
            let offk = b.ins().imul(kk, stride8);
            b.ins().iadd(base, offk)
        };
        let rows_x: HashMap<usize, Value> = used.iter().map(|&k| (k, row(&mut b, x, k))).collect();
        let rows_out: Vec<Value> = range.clone().map(|k| row(&mut b, out, k)).collect();
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().jump(header, &[BlockArg::Value(zero)]);

        b.switch_to_block(header);
        let i = b.block_params(header)[0];
        let more = b.ins().icmp(IntCC::SignedLessThan, i, n);
        b.ins().brif(more, body, &[], exit, &[]);

        b.switch_to_block(body);
        b.seal_block(body);
        let off = b.ins().ishl_imm_u(i, 3);
        let mut l = Lower {
            b: &mut b,
            t,
            x,
            p,
            lag: x,
            f1: f1r,
            f2: f2r,
            by_ptr: HashMap::new(),
            by_key: HashMap::new(),
            lag_to_state: None,
            vec: Some(VecCtx { rows: rows_x, off }),
        };
        let mut vals = Vec::with_capacity(range.len());
        for e in &rhs[range] {
            vals.push(l.gen(e).1);
        }
        for (k, v) in vals.into_iter().enumerate() {
            let addr = l.b.ins().iadd(rows_out[k], off);
            l.b.ins()
                .store(MemFlagsData::new().with_notrap(), v, addr, 0);
        }
        let next = b.ins().iadd_imm_u(i, 2);
        b.ins().jump(header, &[BlockArg::Value(next)]);
        b.seal_block(header);

        b.switch_to_block(exit);
        b.seal_block(exit);
        b.ins().return_(&[]);
        b.finalize(module.target_config());
    }
    module
        .define_function(id, &mut ctx)
        .map_err(|e| format!("{e:?}"))?;
    module.clear_context(&mut ctx);
    Ok(id)
}

/// Declares the Rust helpers the kernels call: `pf_f1(code, x)`, `pf_f2(code, a, b)` (the
/// functions of the language, see [`F1_TABLE`] / [`F2_TABLE`]) and `pf_zero(ptr, n)`.
fn declare_imports(module: &mut JITModule) -> Result<(FuncId, FuncId, FuncId), String> {
    let ptr = module.target_config().pointer_type();
    let mut sig1 = module.make_signature();
    sig1.params.push(AbiParam::new(types::I32));
    sig1.params.push(AbiParam::new(types::F64));
    sig1.returns.push(AbiParam::new(types::F64));
    let mut sig2 = module.make_signature();
    sig2.params.push(AbiParam::new(types::I32));
    sig2.params.push(AbiParam::new(types::F64));
    sig2.params.push(AbiParam::new(types::F64));
    sig2.returns.push(AbiParam::new(types::F64));
    let mut sigz = module.make_signature();
    sigz.params.push(AbiParam::new(ptr));
    sigz.params.push(AbiParam::new(types::I64));
    let declare = |m: &mut JITModule, name: &str, sig: &cranelift_codegen::ir::Signature| {
        m.declare_function(name, Linkage::Import, sig)
            .map_err(|e| e.to_string())
    };
    Ok((
        declare(module, "pf_f1", &sig1)?,
        declare(module, "pf_f2", &sig2)?,
        declare(module, "pf_zero", &sigz)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{
        resolve_system, BatchSystem, CompiledSystem, Interpreted, Jacobian, Overrides, System,
        SystemSpec,
    };

    fn lorenz96(n: usize) -> CompiledSystem {
        let spec = SystemSpec::load(&resolve_system("lorenz96").unwrap()).unwrap();
        let ov = Overrides::parse(&[format!("dimension={n}")]).unwrap();
        CompiledSystem::new(spec, &ov).unwrap()
    }

    fn same(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "entry {k}: {x} vs {y}");
        }
    }

    /// Kernels split into several functions (more than ENTRIES_PER_FUNCTION entries) and those
    /// compiled for compile speed (dimension above LARGE_MODEL) give the interpreter's values
    /// bit for bit: right-hand side, batched right-hand side, Jacobian, parameter Jacobian.
    #[test]
    fn split_and_large_kernels_equal_the_interpreter() {
        for n in [600, 5000] {
            let sys = lorenz96(n);
            let interp = Interpreted::new(sys.model().clone());
            let x: Vec<f64> = (0..n).map(|k| (k as f64 * 0.37).sin() * 3.0).collect();
            let (mut f, mut g) = (vec![0.0; n], vec![0.0; n]);
            sys.rhs(0.0, &x, &mut f);
            interp.rhs(0.0, &x, &mut g);
            same(&f, &g);
            // three states in structure-of-arrays layout (stride 4): the batched kernel
            let stride = 4;
            let mut xs = vec![0.0; n * stride];
            for k in 0..n {
                for s in 0..3 {
                    xs[k * stride + s] = x[k] + s as f64;
                }
            }
            let mut out = vec![0.0; n * stride];
            sys.rhs_batch(0.0, &xs, stride, 3, &mut out);
            for s in 0..3 {
                let xi: Vec<f64> = (0..n).map(|k| xs[k * stride + s]).collect();
                sys.rhs(0.0, &xi, &mut f);
                let got: Vec<f64> = (0..n).map(|k| out[k * stride + s]).collect();
                same(&got, &f);
            }
            let np = sys.params().len();
            let (mut pj, mut pi) = (vec![0.0; n * np], vec![0.0; n * np]);
            sys.param_jacobian(0.0, &x, &mut pj);
            interp.param_jacobian(0.0, &x, &mut pi);
            same(&pj, &pi);
            if n <= 1000 {
                let (mut j, mut ji) = (vec![1.0; n * n], vec![0.0; n * n]);
                sys.jacobian(0.0, &x, &mut j);
                interp.jacobian(0.0, &x, &mut ji);
                same(&j, &ji);
                let mut j2 = vec![1.0; n * n];
                sys.rhs_jacobian(0.0, &x, &mut f, &mut j2);
                same(&j2, &ji);
                same(&f, &g);
            }
        }
    }
}
