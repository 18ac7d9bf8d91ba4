//! Resolved expressions: names replaced by slots, symbolic differentiation, simplification,
//! and the reference tree interpreter.
//!
//! An [`Expr`] is an immutable tree shared through [`Arc`], so derivatives built by the chain
//! rule share their sub-trees with the original instead of copying them; the JIT
//! ([`super::jit`]) evaluates every structurally distinct sub-tree once.
//!
//! Semantics of the non-smooth functions (identical in the interpreter and the JIT):
//! `heaviside(x)` = 1 for x ≥ 0, else 0; `sign(x)` ∈ {−1, 0, 1}; `min(a, b)` = a if a ≤ b else b;
//! `max(a, b)` = a if a ≥ b else b; `mod(a, b)` = a − b·floor(a/b) (result has the sign of b).
//! Their derivatives are taken almost everywhere: d heaviside = d sign = d floor = 0,
//! d|x| = sign(x), d min(a,b) = a' where a ≤ b else b'.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Functions of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func1 {
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Abs,
    Sign,
    Floor,
    Heaviside,
}

/// Functions of two arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func2 {
    Atan2,
    Min,
    Max,
    Mod,
    Pow,
    /// `kepler(m, e)`: the root E of Kepler's equation E − e·sin E = m (|e| < 1).
    Kepler,
}

impl Func1 {
    /// Looks a function name up (`None` if it is not a one-argument function).
    pub fn from_name(name: &str) -> Option<Func1> {
        use Func1::*;
        Some(match name {
            "sin" => Sin,
            "cos" => Cos,
            "tan" => Tan,
            "asin" => Asin,
            "acos" => Acos,
            "atan" => Atan,
            "sinh" => Sinh,
            "cosh" => Cosh,
            "tanh" => Tanh,
            "exp" => Exp,
            "log" => Log,
            "sqrt" => Sqrt,
            "abs" => Abs,
            "sign" => Sign,
            "floor" => Floor,
            "heaviside" => Heaviside,
            _ => return None,
        })
    }
    /// Name as written in definition files.
    pub fn name(self) -> &'static str {
        use Func1::*;
        match self {
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Asin => "asin",
            Acos => "acos",
            Atan => "atan",
            Sinh => "sinh",
            Cosh => "cosh",
            Tanh => "tanh",
            Exp => "exp",
            Log => "log",
            Sqrt => "sqrt",
            Abs => "abs",
            Sign => "sign",
            Floor => "floor",
            Heaviside => "heaviside",
        }
    }
    /// Evaluates the function (the reference semantics shared with the JIT).
    #[inline]
    pub fn eval(self, x: f64) -> f64 {
        use Func1::*;
        match self {
            Sin => x.sin(),
            Cos => x.cos(),
            Tan => x.tan(),
            Asin => x.asin(),
            Acos => x.acos(),
            Atan => x.atan(),
            Sinh => x.sinh(),
            Cosh => x.cosh(),
            Tanh => x.tanh(),
            Exp => x.exp(),
            Log => x.ln(),
            Sqrt => x.sqrt(),
            Abs => x.abs(),
            Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Floor => x.floor(),
            Heaviside => {
                if x >= 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

impl Func2 {
    /// Looks a two-argument function name up.
    pub fn from_name(name: &str) -> Option<Func2> {
        Some(match name {
            "atan2" => Func2::Atan2,
            "min" => Func2::Min,
            "max" => Func2::Max,
            "mod" => Func2::Mod,
            "pow" => Func2::Pow,
            "kepler" => Func2::Kepler,
            _ => return None,
        })
    }
    /// Name as written in definition files.
    pub fn name(self) -> &'static str {
        match self {
            Func2::Atan2 => "atan2",
            Func2::Min => "min",
            Func2::Max => "max",
            Func2::Mod => "mod",
            Func2::Pow => "pow",
            Func2::Kepler => "kepler",
        }
    }
    /// Evaluates the function (the reference semantics shared with the JIT).
    #[inline]
    pub fn eval(self, a: f64, b: f64) -> f64 {
        match self {
            Func2::Atan2 => a.atan2(b),
            Func2::Min => {
                if a <= b {
                    a
                } else {
                    b
                }
            }
            Func2::Max => {
                if a >= b {
                    a
                } else {
                    b
                }
            }
            Func2::Mod => a - b * (a / b).floor(),
            Func2::Pow => a.powf(b),
            Func2::Kepler => kepler(a, b),
        }
    }
}

/// Solves Kepler's equation E − e·sin E = m for E. For |e| < 1 the left side is strictly
/// increasing, so the root is unique and lies in [m − |e|, m + |e|]; Newton's method is run inside
/// that bracket (a step leaving it is replaced by bisection) to full double precision. Returns
/// NaN for |e| ≥ 1 (several roots) or non-finite input.
pub fn kepler(m: f64, e: f64) -> f64 {
    if !(m.is_finite() && e.is_finite()) || e.abs() >= 1.0 {
        return f64::NAN;
    }
    let (mut lo, mut hi) = (m - e.abs(), m + e.abs());
    let mut x = m + e * m.sin();
    for _ in 0..100 {
        let g = x - e * x.sin() - m;
        if g == 0.0 {
            return x;
        }
        if g > 0.0 {
            hi = x;
        } else {
            lo = x;
        }
        let mut next = x - g / (1.0 - e * x.cos());
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if (next - x).abs() <= 1e-16 * x.abs().max(1.0) || hi - lo <= 2e-16 * x.abs().max(1.0) {
            return next;
        }
        x = next;
    }
    x
}

/// Names of all functions of the language, for error messages and documentation.
pub const FUNCTION_NAMES: &[&str] = &[
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "sinh",
    "cosh",
    "tanh",
    "exp",
    "log",
    "sqrt",
    "abs",
    "sign",
    "floor",
    "min",
    "max",
    "mod",
    "pow",
    "heaviside",
    "kepler",
];

/// A resolved expression. Leaves refer to slots of the evaluation context.
///
/// Trees may be arbitrarily deep (a sum of 100,000 terms is a left-leaning chain 100,000 nodes
/// deep), so every walk over them — evaluation, differentiation, comparison, hashing,
/// printing, dropping and the JIT's lowering — runs from an explicit stack on the heap, never
/// by recursion whose depth depends on the input.
#[derive(Clone)]
pub enum Expr {
    /// A numeric constant.
    Const(f64),
    /// State component `x[k]` (flat index).
    State(usize),
    /// Parameter slot `p[k]`.
    Param(usize),
    /// Time `t`.
    Time,
    /// Delayed value slot `lag[k]` (a term `x(t - tau)` of a delay equation).
    Lag(usize),
    Neg(Arc<Expr>),
    Add(Arc<Expr>, Arc<Expr>),
    Sub(Arc<Expr>, Arc<Expr>),
    Mul(Arc<Expr>, Arc<Expr>),
    Div(Arc<Expr>, Arc<Expr>),
    /// `a ^ b`.
    Pow(Arc<Expr>, Arc<Expr>),
    F1(Func1, Arc<Expr>),
    F2(Func2, Arc<Expr>, Arc<Expr>),
    /// `if c >= 0 { a } else { b }` (produced by differentiation of min/max).
    Select(Arc<Expr>, Arc<Expr>, Arc<Expr>),
}

/// Shared pointer to an expression.
pub type E = Arc<Expr>;

impl PartialEq for Expr {
    /// Structural equality (bit-equal constants), compared from an explicit stack.
    fn eq(&self, other: &Self) -> bool {
        use Expr::*;
        let mut work: Vec<(&Expr, &Expr)> = vec![(self, other)];
        while let Some((a, b)) = work.pop() {
            if std::ptr::eq(a, b) {
                continue;
            }
            let same_node = match (a, b) {
                (Const(x), Const(y)) => x.to_bits() == y.to_bits(),
                (State(x), State(y)) | (Param(x), Param(y)) | (Lag(x), Lag(y)) => x == y,
                (Time, Time) => true,
                (Neg(_), Neg(_))
                | (Add(..), Add(..))
                | (Sub(..), Sub(..))
                | (Mul(..), Mul(..))
                | (Div(..), Div(..))
                | (Pow(..), Pow(..))
                | (Select(..), Select(..)) => true,
                (F1(f, _), F1(g, _)) => f == g,
                (F2(f, ..), F2(g, ..)) => f == g,
                _ => false,
            };
            if !same_node {
                return false;
            }
            for (x, y) in a.kids().into_iter().zip(b.kids()) {
                match (x, y) {
                    (Some(x), Some(y)) => {
                        if !Arc::ptr_eq(x, y) {
                            work.push((x, y));
                        }
                    }
                    (None, None) => {}
                    _ => return false,
                }
            }
        }
        true
    }
}
impl Eq for Expr {}

impl Hash for Expr {
    /// Hashes the nodes in pre-order (consistent with `==`).
    fn hash<H: Hasher>(&self, h: &mut H) {
        use Expr::*;
        self.visit(&mut |e| {
            std::mem::discriminant(e).hash(h);
            match e {
                Const(v) => v.to_bits().hash(h),
                State(k) | Param(k) | Lag(k) => k.hash(h),
                F1(f, _) => f.hash(h),
                F2(f, ..) => f.hash(h),
                _ => {}
            }
        });
    }
}

/// A leaf put in place of a child while a tree is dropped (see `Drop for Expr`).
static DETACHED: std::sync::LazyLock<E> = std::sync::LazyLock::new(|| Arc::new(Expr::Time));

impl Drop for Expr {
    /// Frees a deep tree from a loop: children owned by this node alone are detached (replaced
    /// by a shared leaf) and freed one after the other, so dropping a chain of any length does
    /// not recurse.
    fn drop(&mut self) {
        let mut stack: Vec<E> = Vec::new();
        self.detach_unique(&mut stack);
        while let Some(k) = stack.pop() {
            if let Some(mut inner) = Arc::into_inner(k) {
                inner.detach_unique(&mut stack);
            }
        }
    }
}

impl Expr {
    /// Children in order (`None` past the arity).
    fn kids(&self) -> [Option<&E>; 3] {
        use Expr::*;
        match self {
            Const(_) | State(_) | Param(_) | Time | Lag(_) => [None, None, None],
            Neg(a) | F1(_, a) => [Some(a), None, None],
            Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | Pow(a, b) | F2(_, a, b) => {
                [Some(a), Some(b), None]
            }
            Select(q, a, b) => [Some(q), Some(a), Some(b)],
        }
    }
    /// Number of children.
    fn arity(&self) -> usize {
        self.kids().iter().filter(|k| k.is_some()).count()
    }
    /// Moves the children that only this node holds (and that have children) onto `stack`.
    fn detach_unique(&mut self, stack: &mut Vec<E>) {
        use Expr::*;
        let mut take = |k: &mut E| {
            if Arc::strong_count(k) == 1 && Arc::weak_count(k) == 0 && k.arity() > 0 {
                stack.push(std::mem::replace(k, DETACHED.clone()));
            }
        };
        match self {
            Const(_) | State(_) | Param(_) | Time | Lag(_) => {}
            Neg(a) | F1(_, a) => take(a),
            Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | Pow(a, b) | F2(_, a, b) => {
                take(a);
                take(b)
            }
            Select(q, a, b) => {
                take(q);
                take(a);
                take(b)
            }
        }
    }
}

/// Post-order fold of a tree without recursion: `node(e, values of e's children)` is called
/// for every node, children first (a sub-tree shared through [`Arc`] is folded once per use).
pub fn fold<T>(root: &E, mut node: impl FnMut(&E, &[T]) -> T) -> T {
    enum Step<'a> {
        Enter(&'a E),
        Exit(&'a E, usize),
    }
    let mut work = vec![Step::Enter(root)];
    let mut vals: Vec<T> = Vec::new();
    while let Some(step) = work.pop() {
        match step {
            Step::Enter(e) => {
                let kids = e.kids();
                let n = kids.iter().filter(|k| k.is_some()).count();
                if n == 0 {
                    vals.push(node(e, &[]));
                    continue;
                }
                work.push(Step::Exit(e, n));
                for k in kids.iter().rev().flatten() {
                    work.push(Step::Enter(k));
                }
            }
            Step::Exit(e, n) => {
                let at = vals.len() - n;
                let v = node(e, &vals[at..]);
                vals.truncate(at);
                vals.push(v);
            }
        }
    }
    vals.pop().expect("the root's value")
}

/// Values an expression is evaluated at.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub t: f64,
    pub x: &'a [f64],
    pub p: &'a [f64],
    pub lag: &'a [f64],
}

/// Variable of differentiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrt {
    State(usize),
    Param(usize),
    Lag(usize),
}

// ----- smart constructors with light simplification -----

/// Constant leaf.
pub fn c(v: f64) -> E {
    Arc::new(Expr::Const(v))
}
fn as_const(e: &Expr) -> Option<f64> {
    if let Expr::Const(v) = e {
        Some(*v)
    } else {
        None
    }
}
fn is(e: &Expr, v: f64) -> bool {
    as_const(e) == Some(v)
}
/// −a.
pub fn neg(a: E) -> E {
    match &*a {
        Expr::Const(v) => c(-v),
        Expr::Neg(inner) => inner.clone(),
        _ => Arc::new(Expr::Neg(a)),
    }
}
/// a + b.
pub fn add(a: E, b: E) -> E {
    match (as_const(&a), as_const(&b)) {
        (Some(x), Some(y)) => c(x + y),
        (Some(0.0), _) => b,
        (_, Some(0.0)) => a,
        _ => {
            if let Expr::Neg(bb) = &*b {
                return sub(a, bb.clone());
            }
            Arc::new(Expr::Add(a, b))
        }
    }
}
/// a − b.
pub fn sub(a: E, b: E) -> E {
    match (as_const(&a), as_const(&b)) {
        (Some(x), Some(y)) => c(x - y),
        (Some(0.0), _) => neg(b),
        (_, Some(0.0)) => a,
        _ => {
            if let Expr::Neg(bb) = &*b {
                return add(a, bb.clone());
            }
            Arc::new(Expr::Sub(a, b))
        }
    }
}
/// a · b.
pub fn mul(a: E, b: E) -> E {
    match (as_const(&a), as_const(&b)) {
        (Some(x), Some(y)) => c(x * y),
        (Some(0.0), _) => c(0.0),
        (_, Some(0.0)) => c(0.0),
        (Some(1.0), _) => b,
        (_, Some(1.0)) => a,
        (Some(-1.0), _) => neg(b),
        (_, Some(-1.0)) => neg(a),
        _ => Arc::new(Expr::Mul(a, b)),
    }
}
/// a / b.
pub fn div(a: E, b: E) -> E {
    match (as_const(&a), as_const(&b)) {
        (Some(x), Some(y)) if y != 0.0 => c(x / y),
        (Some(0.0), _) => c(0.0),
        (_, Some(1.0)) => a,
        _ => Arc::new(Expr::Div(a, b)),
    }
}
/// a ^ b.
pub fn pow(a: E, b: E) -> E {
    match (as_const(&a), as_const(&b)) {
        (Some(x), Some(y)) => c(x.powf(y)),
        (_, Some(1.0)) => a,
        (_, Some(0.0)) => c(1.0),
        _ => Arc::new(Expr::Pow(a, b)),
    }
}
/// f(a).
pub fn f1(f: Func1, a: E) -> E {
    if let Some(x) = as_const(&a) {
        return c(f.eval(x));
    }
    Arc::new(Expr::F1(f, a))
}
/// f(a, b).
pub fn f2(f: Func2, a: E, b: E) -> E {
    if let (Some(x), Some(y)) = (as_const(&a), as_const(&b)) {
        return c(f.eval(x, y));
    }
    if f == Func2::Pow {
        return pow(a, b);
    }
    Arc::new(Expr::F2(f, a, b))
}
/// `if cond >= 0 { a } else { b }`.
pub fn select(cond: E, a: E, b: E) -> E {
    if let Some(x) = as_const(&cond) {
        return if x >= 0.0 { a } else { b };
    }
    if a == b {
        return a;
    }
    Arc::new(Expr::Select(cond, a, b))
}

impl Expr {
    /// Evaluates the tree (reference interpreter). Shallow trees are walked recursively (no
    /// allocation); below depth `EVAL_RECURSION` the walk continues from a heap stack.
    pub fn eval(&self, cx: &Ctx) -> f64 {
        self.eval_at(cx, 0)
    }

    fn eval_at(&self, cx: &Ctx, depth: usize) -> f64 {
        use Expr::*;
        if depth >= EVAL_RECURSION {
            let mut v = [0.0; 3];
            for (slot, k) in v.iter_mut().zip(self.kids().into_iter().flatten()) {
                *slot = fold(k, |e, v: &[f64]| e.apply(cx, v));
            }
            return self.apply(cx, &v);
        }
        let d = depth + 1;
        match self {
            Const(v) => *v,
            State(k) => cx.x[*k],
            Param(k) => cx.p[*k],
            Time => cx.t,
            Lag(k) => cx.lag[*k],
            Neg(a) => -a.eval_at(cx, d),
            Add(a, b) => a.eval_at(cx, d) + b.eval_at(cx, d),
            Sub(a, b) => a.eval_at(cx, d) - b.eval_at(cx, d),
            Mul(a, b) => a.eval_at(cx, d) * b.eval_at(cx, d),
            Div(a, b) => a.eval_at(cx, d) / b.eval_at(cx, d),
            Pow(a, b) => Expr::eval_pow(a.eval_at(cx, d), b, cx, d),
            F1(f, a) => f.eval(a.eval_at(cx, d)),
            F2(f, a, b) => f.eval(a.eval_at(cx, d), b.eval_at(cx, d)),
            Select(q, a, b) => {
                if q.eval_at(cx, d) >= 0.0 {
                    a.eval_at(cx, d)
                } else {
                    b.eval_at(cx, d)
                }
            }
        }
    }

    /// The value of this node given its children's values `v` (the fold of [`Expr::eval`]).
    fn apply(&self, cx: &Ctx, v: &[f64]) -> f64 {
        use Expr::*;
        match self {
            Const(c) => *c,
            State(k) => cx.x[*k],
            Param(k) => cx.p[*k],
            Time => cx.t,
            Lag(k) => cx.lag[*k],
            Neg(_) => -v[0],
            Add(..) => v[0] + v[1],
            Sub(..) => v[0] - v[1],
            Mul(..) => v[0] * v[1],
            Div(..) => v[0] / v[1],
            Pow(_, b) => match **b {
                Const(n) => match small_int(n) {
                    Some(k) => powi(v[0], k),
                    None => v[0].powf(n),
                },
                _ => v[0].powf(v[1]),
            },
            F1(f, _) => f.eval(v[0]),
            F2(f, ..) => f.eval(v[0], v[1]),
            // both branches were evaluated (they have no side effects): pick one
            Select(..) => {
                if v[0] >= 0.0 {
                    v[1]
                } else {
                    v[2]
                }
            }
        }
    }

    /// True if the expression depends on nothing but constants and parameters.
    pub fn is_parametric(&self) -> bool {
        let mut ok = true;
        self.visit(&mut |e| {
            if matches!(e, Expr::State(_) | Expr::Time | Expr::Lag(_)) {
                ok = false;
            }
        });
        ok
    }

    /// True if time appears explicitly.
    pub fn uses_time(&self) -> bool {
        let mut y = false;
        self.visit(&mut |e| y |= matches!(e, Expr::Time));
        y
    }

    /// Calls `f` on every node (pre-order, from a heap stack).
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        let mut work: Vec<&Expr> = vec![self];
        while let Some(e) = work.pop() {
            f(e);
            for k in e.kids().iter().rev().flatten() {
                work.push(k);
            }
        }
    }

    /// Number of nodes (with repetition).
    pub fn size(&self) -> usize {
        let mut n = 0;
        self.visit(&mut |_| n += 1);
        n
    }
}

/// Exponent `n` as a small integer (|n| ≤ 16), if it is one.
pub fn small_int(n: f64) -> Option<i32> {
    if n.fract() == 0.0 && n.abs() <= 16.0 {
        Some(n as i32)
    } else {
        None
    }
}

/// `a^k` by binary powering, in the exact multiplication order the JIT emits.
#[inline]
pub fn powi(a: f64, k: i32) -> f64 {
    let mut n = k.unsigned_abs();
    let mut base = a;
    let mut acc: Option<f64> = None;
    while n > 0 {
        if n & 1 == 1 {
            acc = Some(match acc {
                None => base,
                Some(v) => v * base,
            });
        }
        n >>= 1;
        if n > 0 {
            base *= base;
        }
    }
    let v = acc.unwrap_or(1.0);
    if k < 0 {
        1.0 / v
    } else {
        v
    }
}

/// Depth below which [`Expr::eval`] stops recursing and folds from a heap stack.
const EVAL_RECURSION: usize = 64;

/// Evaluates with a general (non-constant) exponent: separate entry used by `Expr::eval`.
impl Expr {
    fn eval_pow(a: f64, b: &E, cx: &Ctx, depth: usize) -> f64 {
        if let Expr::Const(n) = **b {
            if let Some(k) = small_int(n) {
                return powi(a, k);
            }
            return a.powf(n);
        }
        a.powf(b.eval_at(cx, depth))
    }
}

/// Symbolic derivative ∂e/∂w (a post-order [`fold`]: no recursion, whatever the depth).
pub fn diff(e: &E, w: Wrt) -> E {
    fold(e, |e, d: &[E]| diff_node(e, d, w))
}

/// ∂e/∂w given the derivatives `d` of e's children (in order).
fn diff_node(e: &E, d: &[E], w: Wrt) -> E {
    use Expr::*;
    match &**e {
        Const(_) | Time => c(0.0),
        State(k) => c(if w == Wrt::State(*k) { 1.0 } else { 0.0 }),
        Param(k) => c(if w == Wrt::Param(*k) { 1.0 } else { 0.0 }),
        Lag(k) => c(if w == Wrt::Lag(*k) { 1.0 } else { 0.0 }),
        Neg(_) => neg(d[0].clone()),
        Add(..) => add(d[0].clone(), d[1].clone()),
        Sub(..) => sub(d[0].clone(), d[1].clone()),
        Mul(a, b) => add(mul(d[0].clone(), b.clone()), mul(a.clone(), d[1].clone())),
        Div(a, b) => {
            let (da, db) = (d[0].clone(), d[1].clone());
            // (a/b)' = a'/b − a b'/b²
            sub(
                div(da, b.clone()),
                div(mul(a.clone(), db), mul(b.clone(), b.clone())),
            )
        }
        Pow(a, b) => dpow(e, a, b, d[0].clone(), d[1].clone()),
        F1(f, a) => {
            let da = d[0].clone();
            if is(&da, 0.0) {
                return c(0.0);
            }
            use Func1::*;
            let outer = match f {
                Sin => f1(Cos, a.clone()),
                Cos => neg(f1(Sin, a.clone())),
                Tan => add(c(1.0), pow(e.clone(), c(2.0))),
                Asin => div(c(1.0), f1(Sqrt, sub(c(1.0), pow(a.clone(), c(2.0))))),
                Acos => neg(div(c(1.0), f1(Sqrt, sub(c(1.0), pow(a.clone(), c(2.0)))))),
                Atan => div(c(1.0), add(c(1.0), pow(a.clone(), c(2.0)))),
                Sinh => f1(Cosh, a.clone()),
                Cosh => f1(Sinh, a.clone()),
                Tanh => sub(c(1.0), pow(e.clone(), c(2.0))),
                Exp => e.clone(),
                Log => div(c(1.0), a.clone()),
                Sqrt => div(c(0.5), e.clone()),
                Abs => f1(Sign, a.clone()),
                Sign | Floor | Heaviside => c(0.0),
            };
            if matches!(f, Sqrt | Log | Asin | Acos) {
                // outer derivative singular at the domain's edge: keep 0 where a' = 0
                return guarded_chain(outer, da);
            }
            mul(outer, da)
        }
        F2(f, a, b) => {
            let (da, db) = (d[0].clone(), d[1].clone());
            match f {
                Func2::Atan2 => {
                    // atan2(a, b)' = (b a' − a b') / (a² + b²)
                    let den = add(pow(a.clone(), c(2.0)), pow(b.clone(), c(2.0)));
                    div(sub(mul(b.clone(), da), mul(a.clone(), db)), den)
                }
                Func2::Min => select(sub(b.clone(), a.clone()), da, db),
                Func2::Max => select(sub(a.clone(), b.clone()), da, db),
                Func2::Mod => sub(da, mul(db, f1(Func1::Floor, div(a.clone(), b.clone())))),
                Func2::Pow => dpow(e, a, b, da, db),
                Func2::Kepler => {
                    // E = kepler(m, ε): dE = (dm + sin E dε) / (1 − ε cos E)
                    let den = sub(c(1.0), mul(b.clone(), f1(Func1::Cos, e.clone())));
                    div(add(da, mul(f1(Func1::Sin, e.clone()), db)), den)
                }
            }
        }
        Select(q, ..) => select(q.clone(), d[1].clone(), d[2].clone()),
    }
}

/// Chain rule `outer · a'` for an outer derivative that may be infinite (√ at 0, log at 0, asin at
/// ±1): the product is taken as 0 wherever `a' = 0` (e.g. `sqrt(max(x, 0))` for x < 0), instead of
/// the `∞ · 0 = NaN` of plain arithmetic. Implemented as `select(−a'² ≥ 0, 0, outer · a')`.
fn guarded_chain(outer: E, da: E) -> E {
    if is(&da, 0.0) {
        return c(0.0);
    }
    let prod = mul(outer, da.clone());
    select(neg(mul(da.clone(), da)), c(0.0), prod)
}

fn dpow(e: &E, a: &E, b: &E, da: E, db: E) -> E {
    if let Expr::Const(n) = **b {
        // (a^n)' = n a^(n−1) a'
        if is(&da, 0.0) {
            return c(0.0);
        }
        let outer = mul(c(n), pow(a.clone(), c(n - 1.0)));
        if n < 1.0 {
            // a^(n-1) is infinite at a = 0 (e.g. sqrt-like powers): keep 0 where a' = 0
            return guarded_chain(outer, da);
        }
        return mul(outer, da);
    }
    // (a^b)' = a^b (b' ln a + b a'/a)
    let t1 = mul(db, f1(Func1::Log, a.clone()));
    let t2 = div(mul(b.clone(), da), a.clone());
    mul(e.clone(), add(t1, t2))
}

impl fmt::Display for Expr {
    /// Fully parenthesised text (written from a heap stack: any depth).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Expr::*;
        enum Piece<'a> {
            Node(&'a Expr),
            Text(&'static str),
        }
        let mut work = vec![Piece::Node(self)];
        while let Some(p) = work.pop() {
            let e = match p {
                Piece::Text(t) => {
                    f.write_str(t)?;
                    continue;
                }
                Piece::Node(e) => e,
            };
            // pieces of this node, in reading order
            let parts: Vec<Piece> = match e {
                Const(v) => {
                    write!(f, "{v:?}")?;
                    continue;
                }
                State(k) => {
                    write!(f, "x[{k}]")?;
                    continue;
                }
                Param(k) => {
                    write!(f, "p[{k}]")?;
                    continue;
                }
                Time => {
                    f.write_str("t")?;
                    continue;
                }
                Lag(k) => {
                    write!(f, "lag[{k}]")?;
                    continue;
                }
                Neg(a) => vec![Piece::Text("(-"), Piece::Node(a), Piece::Text(")")],
                Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | Pow(a, b) => {
                    let op = match e {
                        Add(..) => " + ",
                        Sub(..) => " - ",
                        Mul(..) => " * ",
                        Div(..) => " / ",
                        _ => " ^ ",
                    };
                    vec![
                        Piece::Text("("),
                        Piece::Node(a),
                        Piece::Text(op),
                        Piece::Node(b),
                        Piece::Text(")"),
                    ]
                }
                F1(g, a) => {
                    f.write_str(g.name())?;
                    vec![Piece::Text("("), Piece::Node(a), Piece::Text(")")]
                }
                F2(g, a, b) => {
                    f.write_str(g.name())?;
                    vec![
                        Piece::Text("("),
                        Piece::Node(a),
                        Piece::Text(", "),
                        Piece::Node(b),
                        Piece::Text(")"),
                    ]
                }
                Select(q, a, b) => vec![
                    Piece::Text("select("),
                    Piece::Node(q),
                    Piece::Text(" >= 0, "),
                    Piece::Node(a),
                    Piece::Text(", "),
                    Piece::Node(b),
                    Piece::Text(")"),
                ],
            };
            work.extend(parts.into_iter().rev());
        }
        Ok(())
    }
}

impl fmt::Debug for Expr {
    /// The [`Display`](fmt::Display) text (a derived `Debug` would recurse).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(k: usize) -> E {
        Arc::new(Expr::State(k))
    }

    #[test]
    fn derivative_matches_finite_difference() {
        // f = sin(x0) * x1^3 / (1 + exp(x0 x1)) + atan2(x1, x0) + min(x0, x1)^2 + mod(x0, 0.7)
        let f = add(
            add(
                div(
                    mul(f1(Func1::Sin, x(0)), pow(x(1), c(3.0))),
                    add(c(1.0), f1(Func1::Exp, mul(x(0), x(1)))),
                ),
                f2(Func2::Atan2, x(1), x(0)),
            ),
            add(
                pow(f2(Func2::Min, x(0), x(1)), c(2.0)),
                f2(Func2::Mod, x(0), c(0.7)),
            ),
        );
        let pt = [0.3, -1.1];
        let cx = Ctx {
            t: 0.0,
            x: &pt,
            p: &[],
            lag: &[],
        };
        for k in 0..2 {
            let d = diff(&f, Wrt::State(k)).eval(&cx);
            let h = 1e-6;
            let mut xp = pt;
            xp[k] += h;
            let mut xm = pt;
            xm[k] -= h;
            let fp = f.eval(&Ctx { x: &xp, ..cx });
            let fm = f.eval(&Ctx { x: &xm, ..cx });
            let fd = (fp - fm) / (2.0 * h);
            assert!((d - fd).abs() < 1e-7, "k={k}: {d} vs {fd}");
        }
    }

    #[test]
    fn simplification() {
        assert_eq!(*mul(c(0.0), x(0)), Expr::Const(0.0));
        assert_eq!(*add(x(0), c(0.0)), *x(0));
        assert_eq!(*diff(&mul(c(3.0), x(0)), Wrt::State(0)), Expr::Const(3.0));
        assert_eq!(*diff(&x(1), Wrt::State(0)), Expr::Const(0.0));
        assert!((powi(1.7, 5) - 1.7f64.powi(5)).abs() < 1e-14);
        assert!((powi(2.0, -3) - 0.125).abs() < 1e-15);
    }

    /// Every walk over a tree 10⁶ nodes deep runs on a test thread's small stack: evaluation,
    /// differentiation, comparison, hashing, printing and dropping.
    #[test]
    fn deep_trees_need_no_deep_stack() {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let chain = || {
            let mut e = x(0);
            for k in 0..1_000_000 {
                e = if k % 2 == 0 {
                    add(e, mul(c(0.5), x(1)))
                } else {
                    sub(e, f1(Func1::Sin, x(0)))
                };
            }
            e
        };
        let (a, b) = (chain(), chain());
        let pt = [0.3, -1.1];
        let cx = Ctx {
            t: 0.0,
            x: &pt,
            p: &[],
            lag: &[],
        };
        let v = a.eval(&cx);
        let want = 0.3 + 500_000.0 * (0.5 * -1.1 - 0.3f64.sin());
        assert!((v - want).abs() < 1e-6 * want.abs(), "{v} vs {want}");
        let d = diff(&a, Wrt::State(1));
        assert!((d.eval(&cx) - 250_000.0).abs() < 1e-6, "{}", d.eval(&cx));
        assert!(*a == *b);
        let h = |e: &E| {
            let mut s = DefaultHasher::new();
            e.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&a), h(&b));
        assert!(a.to_string().starts_with("(((((("));
        assert!(format!("{b:?}").ends_with(")"));
        assert_eq!(a.size(), b.size());
        drop(a);
        drop(b);
    }
}
