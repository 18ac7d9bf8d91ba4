//! Resolution of a [`SystemSpec`] into a [`Model`]: names → slots, indexed families expanded,
//! delay terms collected, symbolic Jacobian and parameter derivatives built.
//!
//! State layout: variables in declaration order; an indexed family `x` of size N occupies
//! N consecutive slots `x[0] … x[N-1]`. Parameters are in sorted-name order.

use super::expr::{self, c, Expr, Func1, Func2, Wrt, E, FUNCTION_NAMES};
use super::parse::{parse_expr, Ast, AstKind, BinOp};
use super::spec::{Kind, Located, SpecError, SystemSpec};
use std::sync::Arc;

/// A delayed term `x_k(t − τ)`: component `k` and the delay τ (an expression of parameters).
#[derive(Debug, Clone)]
pub struct LagSlot {
    /// Flat state component that is delayed.
    pub component: usize,
    /// Delay τ > 0 as a parametric expression.
    pub delay: E,
    /// Text of the delay term, for messages.
    pub text: String,
}

/// A resolved system: expressions over state/parameter/lag slots.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub kind: Kind,
    /// Names of the flat state components (`x`, or `x[3]` for families).
    pub components: Vec<String>,
    /// Family size for indexed families.
    pub dimension: Option<usize>,
    pub param_names: Vec<String>,
    pub param_values: Vec<f64>,
    /// Right-hand side per component: dx_k/dt (flows, DDEs) or x_k at the next step (maps).
    pub rhs: Vec<E>,
    /// Nonzero entries (row, column, ∂f_row/∂x_column) of the Jacobian, row-major order.
    pub jacobian: Vec<(usize, usize, E)>,
    /// Nonzero entries (row, parameter, ∂f_row/∂p) of the parameter Jacobian.
    pub param_jacobian: Vec<(usize, usize, E)>,
    /// Delayed terms (DDEs), in order of first appearance.
    pub lags: Vec<LagSlot>,
    /// Named conserved quantities.
    pub conserved: Vec<(String, E)>,
    /// Observation map: (component, expression recorded in its place).
    pub observe: Vec<(usize, E)>,
    /// Inverse map (maps with an `[inverse]` table): previous state per component; empty if none.
    pub inverse: Vec<E>,
    /// Delay equations: history x_k(t) for t < t0 per component (expressions of `t` and
    /// parameters); empty when the history is the initial condition held constant.
    pub history: Vec<Option<E>>,
    /// SDE flows: diffusion coefficient D_k per component (expressions of the parameters; `None`
    /// for noiseless components); empty when the file has no `[diffusion]` table.
    pub diffusion: Vec<Option<E>>,
    /// Default initial condition (flat).
    pub initial_condition: Vec<f64>,
    pub t0: f64,
    pub dt: f64,
    pub period: f64,
    /// Whether `t` appears in the equations.
    pub uses_time: bool,
}

/// Overrides applied when building a model (from `--set NAME=VALUE`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub values: Vec<(String, f64)>,
}

impl Overrides {
    /// Parses `NAME=VALUE` strings.
    pub fn parse(items: &[String]) -> Result<Overrides, SpecError> {
        let mut values = Vec::new();
        for item in items {
            let bad = |m: String| SpecError {
                file: "--set".into(),
                line: 0,
                col: 0,
                message: m,
            };
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("'{item}' is not of the form NAME=VALUE")))?;
            let v: f64 = v.trim().parse().map_err(|_| {
                bad(format!(
                    "value '{}' of '{}' is not a number",
                    v.trim(),
                    k.trim()
                ))
            })?;
            if !v.is_finite() {
                return Err(bad(format!("value of '{}' is not finite", k.trim())));
            }
            // `w[0, 1]` and `w[0,1]` name the same array element
            let name: String = k.chars().filter(|c| !c.is_whitespace()).collect();
            values.push((name, v));
        }
        Ok(Overrides { values })
    }
}

struct Family {
    name: String,
    offset: usize,
    indexed: bool,
}

struct Env<'a> {
    spec: &'a SystemSpec,
    families: &'a [Family],
    n: usize,
    params: &'a [String],
    /// index `i` of the component being resolved (indexed families)
    index: Option<usize>,
    allow_state: bool,
    lags: &'a mut Vec<LagSlot>,
    /// Indices bound by enclosing reductions (`sum(j, 0, 4, …)`), innermost last.
    bound: Vec<(String, i64)>,
    /// `[define]` names being resolved (cycle detection).
    defining: Vec<String>,
    /// Current depth of [`resolve`] (bounded by [`MAX_RESOLVE_DEPTH`]).
    depth: usize,
    /// What is left of the file's expansion budget ([`MAX_EXPANDED_NODES`]).
    budget: &'a Budget,
    /// `[define]` names resolved without error so far, where the caller keeps count
    /// ([`check_defines`]: each entry is checked once, not once per entry that uses it).
    resolved: Option<&'a std::cell::RefCell<std::collections::BTreeSet<String>>>,
}

/// Most nodes that resolving one definition file may create, all expressions together:
/// reductions (`sum`, `prod`, `min`, `max`) and indexed families are unrolled when the file is
/// loaded, so `sum(j, 0, 9999, sum(k, 0, 9999, x))` or a family of 10⁷ members would otherwise
/// take gigabytes. One unit is one node of the written expression resolved for one family
/// member and one value of every enclosing summation index (about 130 bytes of memory).
/// Lorenz-96 with 10⁵ variables needs about 3·10⁶. Past the limit loading stops with an error
/// at the expression being expanded.
pub const MAX_EXPANDED_NODES: usize = 4_000_000;

/// Most node visits of the symbolic Jacobian of one file: differentiating a right-hand side
/// visits its nodes once per state component and parameter it depends on (all-to-all coupled
/// families cost N³). Lorenz-96 with 10⁵ variables needs about 5·10⁶. Past the limit loading
/// stops with an error at the equation.
pub const MAX_DERIVATIVE_WORK: usize = 50_000_000;

/// Most terms of one reduction (`sum(j, lo, hi, …)` and the like); all reductions of a file
/// together are bounded by [`MAX_EXPANDED_NODES`].
pub const MAX_REDUCTION_TERMS: usize = 100_000;

/// Deepest recursion of name resolution: the nesting of one expression (at most
/// [`super::parse::MAX_NESTING`] levels) plus that of the `[define]` entries it uses, which are
/// substituted where they are named. Deeper input is an error at the name that goes too deep.
pub const MAX_RESOLVE_DEPTH: usize = 4096;

/// Most state components (family size × variables): each needs at least one node, see
/// [`MAX_EXPANDED_NODES`]; checked before anything is allocated.
pub const MAX_STATE_DIMENSION: usize = 2_000_000;

/// The expansion budget of one file (see [`MAX_EXPANDED_NODES`]).
struct Budget {
    left: std::cell::Cell<usize>,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            left: std::cell::Cell::new(MAX_EXPANDED_NODES),
        }
    }
    /// Takes `n` units; `false` when the budget is spent.
    fn take(&self, n: usize) -> bool {
        match self.left.get().checked_sub(n) {
            Some(l) => {
                self.left.set(l);
                true
            }
            None => {
                self.left.set(0);
                false
            }
        }
    }
}

/// The message of a spent budget.
fn budget_message(what: &str) -> String {
    format!(
        "{what} exceeds the limit of {MAX_EXPANDED_NODES} expanded nodes for one definition file (reductions and indexed families are unrolled when the file is loaded: use fewer terms or a smaller dimension)"
    )
}

/// Stack of the thread [`Model::build`] resolves on: name resolution recurses (at most
/// [`MAX_RESOLVE_DEPTH`] levels, each a few hundred bytes), more than the 2 MiB of a spawned or
/// pool thread holds. Reserved address space only, touched as far as used.
const RESOLVE_STACK_BYTES: usize = 256 << 20;

impl Model {
    /// Resolves a spec with overrides. Errors are located in the file.
    ///
    /// Runs on a thread of its own with a `RESOLVE_STACK_BYTES` stack, so that the deepest
    /// input within the limits resolves whatever thread calls it (a panic is passed on; a
    /// thread that cannot be started is an error).
    pub fn build(spec: &SystemSpec, ov: &Overrides) -> Result<Model, SpecError> {
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("phaseflow-resolve".into())
                .stack_size(RESOLVE_STACK_BYTES)
                .spawn_scoped(s, || Model::build_here(spec, ov));
            match worker {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(e) => Err(SpecError {
                    file: spec.path.display().to_string(),
                    line: 0,
                    col: 0,
                    message: format!("cannot start a thread to resolve the file: {e}"),
                }),
            }
        })
    }

    /// [`Model::build`] on the calling thread.
    fn build_here(spec: &SystemSpec, ov: &Overrides) -> Result<Model, SpecError> {
        let mut param_names: Vec<String> = spec
            .parameters
            .iter()
            .map(|(n, _)| n.value.clone())
            .collect();
        let mut param_values: Vec<f64> = spec.parameters.iter().map(|(_, v)| *v).collect();
        let mut dimension = spec.dimension;
        for (k, v) in &ov.values {
            if k == "dimension" || k == "N" && spec.dimension.is_some() && !param_names.contains(k)
            {
                if spec.dimension.is_none() {
                    return Err(cli_err(format!(
                        "'{k}' cannot be set: {} is not an indexed family (no 'dimension' in its file)",
                        spec.name
                    )));
                }
                if *v < 1.0 || v.fract() != 0.0 {
                    return Err(cli_err(format!(
                        "dimension must be a positive integer, got {v}"
                    )));
                }
                dimension = Some(*v as usize);
            } else if let Some(i) = param_names.iter().position(|p| p == k) {
                param_values[i] = *v;
            } else {
                return Err(cli_err(format!(
                    "unknown parameter '{k}' for {} (parameters: {}{})",
                    spec.name,
                    if param_names.is_empty() {
                        "none".to_string()
                    } else {
                        param_names.join(", ")
                    },
                    if spec.dimension.is_some() {
                        "; and dimension"
                    } else {
                        ""
                    }
                )));
            }
        }
        let n = dimension.unwrap_or(1);
        let d = n.saturating_mul(spec.variables.len());
        if d > MAX_STATE_DIMENSION {
            return Err(cli_err(format!(
                "dimension {n} gives {d} state components ({} variable(s) of {} members): at most {MAX_STATE_DIMENSION}",
                spec.variables.len(),
                n
            )));
        }
        let budget = Budget::new();
        let mut families = Vec::new();
        let mut components = Vec::new();
        for v in &spec.variables {
            families.push(Family {
                name: v.value.clone(),
                offset: components.len(),
                indexed: dimension.is_some(),
            });
            if dimension.is_some() {
                for i in 0..n {
                    components.push(format!("{}[{i}]", v.value));
                }
            } else {
                components.push(v.value.clone());
            }
        }
        debug_assert_eq!(d, components.len());

        // equations
        let mut lags = Vec::new();
        let mut rhs = vec![c(0.0); d];
        let ctx = FamilyCtx {
            spec,
            families: &families,
            n,
            params: &param_names,
            budget: &budget,
        };
        for fam in &families {
            let es = ctx.resolve(fam, &spec.equations[&fam.name], true, Some(&mut lags), "")?;
            for (i, e) in es.into_iter().enumerate() {
                rhs[fam.offset + i] = e;
            }
        }
        // delays must be positive at the parameters given by --set (at the file's own values
        // they were checked where the delay term is written: see `resolve`)
        for l in &lags {
            let v = at_params(&l.delay, &param_values);
            if !(v > 0.0 && v.is_finite()) {
                return Err(cli_err(format!(
                    "delay of '{}' in {} must be positive, got {v}",
                    l.text, spec.name
                )));
            }
        }
        let uses_time = rhs.iter().any(|e| e.uses_time());

        // conserved quantities (scalar systems, or single components of families)
        let mut conserved = Vec::new();
        for (name, text) in &spec.conserved {
            let ast = parse_located(spec, text)?;
            let mut scratch = Vec::new();
            let mut env = Env {
                spec,
                families: &families,
                n,
                params: &param_names,
                index: None,
                allow_state: true,
                lags: &mut scratch,
                bound: Vec::new(),
                defining: Vec::new(),
                resolved: None,
                depth: 0,
                budget: &budget,
            };
            let e = resolve(&ast, &mut env, text.span.start)?;
            if !scratch.is_empty() {
                return Err(spec.error_at(
                    text.span.start,
                    format!("conserved quantity '{name}' cannot contain delay terms"),
                ));
            }
            conserved.push((name.clone(), e));
        }

        // observation map, one entry per component of the variable; inverse map (maps)
        let ctx = FamilyCtx {
            spec,
            families: &families,
            n,
            params: &param_names,
            budget: &budget,
        };
        let mut observe = Vec::new();
        for fam in &families {
            if let Some(text) = spec.observe.get(&fam.name) {
                let es = ctx.resolve(fam, text, true, None, "an observation")?;
                observe.extend(es.into_iter().enumerate().map(|(i, e)| (fam.offset + i, e)));
            }
        }
        let mut inverse = Vec::new();
        if !spec.inverse.is_empty() {
            for fam in &families {
                inverse.extend(ctx.resolve(
                    fam,
                    &spec.inverse[&fam.name],
                    true,
                    None,
                    "an inverse map",
                )?);
            }
        }

        // history of delay equations: expressions of t and parameters only
        let mut history = Vec::new();
        if !spec.history.is_empty() {
            history = vec![None; d];
            for fam in &families {
                let Some(text) = spec.history.get(&fam.name) else {
                    continue;
                };
                let es = ctx.resolve(fam, text, true, None, "a history")?;
                for (i, e) in es.into_iter().enumerate() {
                    let mut uses_state = false;
                    e.visit(&mut |x| uses_state |= matches!(x, Expr::State(_)));
                    if uses_state {
                        return Err(spec.error_at(
                            text.span.start,
                            format!(
                                "the history of '{}' must be an expression of t and parameters",
                                fam.name
                            ),
                        ));
                    }
                    history[fam.offset + i] = Some(e);
                }
            }
        }

        // diffusion of SDE flows: expressions of parameters only
        let mut diffusion = Vec::new();
        if !spec.diffusion.is_empty() {
            diffusion = vec![None; d];
            for fam in &families {
                let Some(text) = spec.diffusion.get(&fam.name) else {
                    continue;
                };
                let es = ctx.resolve(fam, text, true, None, "a diffusion coefficient")?;
                for (i, e) in es.into_iter().enumerate() {
                    let mut uses_state_or_time = false;
                    e.visit(&mut |x| {
                        uses_state_or_time |= matches!(x, Expr::State(_) | Expr::Time)
                    });
                    if uses_state_or_time {
                        return Err(spec.error_at(
                            text.span.start,
                            format!(
                                "the diffusion of '{}' must be an expression of the parameters (additive noise)",
                                fam.name
                            ),
                        ));
                    }
                    // D ≥ 0: at the file's values an error at the expression, else at --set
                    let file_d = at_params(&e, &file_values(spec));
                    if !(file_d >= 0.0 && file_d.is_finite()) {
                        return Err(spec.error_at(
                            text.span.start,
                            format!(
                                "the diffusion of '{}' is {file_d}; it must be a non-negative number",
                                fam.name
                            ),
                        ));
                    }
                    let set_d = at_params(&e, &param_values);
                    if !(set_d >= 0.0 && set_d.is_finite()) {
                        return Err(cli_err(format!(
                            "the diffusion of '{}' in {} is {set_d}; it must be a non-negative number",
                            fam.name, spec.name
                        )));
                    }
                    diffusion[fam.offset + i] = Some(e);
                }
            }
        }

        // initial condition
        let initial_condition =
            initial_condition(spec, &families, n, d, &param_names, &param_values, &budget)?;

        // every [define] entry is checked, used or not: unknown symbols, cycles
        check_defines(spec, &families, n, &param_names, &budget)?;

        // Jacobian: differentiate each equation w.r.t. the state components and the parameters
        // it depends on (the derivative w.r.t. anything else is 0)
        let mut jacobian = Vec::new();
        let mut param_jacobian = Vec::new();
        let mut derivative_work = 0usize;
        for (r, f) in rhs.iter().enumerate() {
            let mut cols: Vec<usize> = Vec::new();
            let mut pars: Vec<usize> = Vec::new();
            let mut size = 0usize;
            f.visit(&mut |e| {
                size += 1;
                match e {
                    Expr::State(k) => cols.push(*k),
                    Expr::Param(k) => pars.push(*k),
                    _ => {}
                }
            });
            cols.sort_unstable();
            cols.dedup();
            pars.sort_unstable();
            pars.dedup();
            derivative_work =
                derivative_work.saturating_add((cols.len() + pars.len()).saturating_mul(size));
            if derivative_work > MAX_DERIVATIVE_WORK {
                let fam = families
                    .iter()
                    .rev()
                    .find(|f| f.offset <= r)
                    .expect("row of a family");
                return Err(spec.error_at(
                    spec.equations[&fam.name].span.start,
                    format!(
                        "the Jacobian exceeds the limit of {MAX_DERIVATIVE_WORK} node visits for one definition file (at '{}': {} nodes differentiated w.r.t. {} state components and {} parameters; use fewer terms or a smaller dimension)",
                        components[r],
                        size,
                        cols.len(),
                        pars.len()
                    ),
                ));
            }
            for col in cols {
                let df = expr::diff(f, Wrt::State(col));
                if !matches!(*df, Expr::Const(z) if z == 0.0) {
                    jacobian.push((r, col, df));
                }
            }
            for k in pars {
                let df = expr::diff(f, Wrt::Param(k));
                if !matches!(*df, Expr::Const(z) if z == 0.0) {
                    param_jacobian.push((r, k, df));
                }
            }
        }
        // rows of the parameter Jacobian are in row-major order already
        param_names.shrink_to_fit();
        Ok(Model {
            name: spec.name.clone(),
            kind: spec.kind,
            components,
            dimension,
            param_names,
            param_values,
            rhs,
            jacobian,
            param_jacobian,
            lags,
            conserved,
            observe,
            inverse,
            history,
            diffusion,
            initial_condition,
            t0: spec.t0,
            dt: spec.dt,
            period: spec.period,
            uses_time,
        })
    }

    /// State dimension.
    pub fn dim(&self) -> usize {
        self.components.len()
    }
}

/// Checks every `[define]` entry by resolving it once (at component 0 in indexed families): an
/// unknown symbol or a cycle (`a -> b -> a`) in an entry that no equation uses is an error too.
fn check_defines(
    spec: &SystemSpec,
    families: &[Family],
    n: usize,
    params: &[String],
    budget: &Budget,
) -> Result<(), SpecError> {
    // Resolving an entry resolves every entry it uses, so entries no other entry mentions go
    // first and each entry is checked once: a chain a0 <- a1 <- … <- a1999 costs one
    // expansion, not 2000 (the order only saves work; every entry not yet resolved is).
    let mentioned: std::collections::BTreeSet<&str> = spec
        .define
        .values()
        .flat_map(|text| identifiers(&text.value))
        .filter(|w| spec.define.contains_key(*w))
        .collect();
    let order = spec
        .define
        .iter()
        .filter(|(name, _)| !mentioned.contains(name.as_str()))
        .chain(
            spec.define
                .iter()
                .filter(|(name, _)| mentioned.contains(name.as_str())),
        );
    let resolved = std::cell::RefCell::new(std::collections::BTreeSet::new());
    for (name, text) in order {
        if resolved.borrow().contains(name) {
            continue;
        }
        let mut scratch = Vec::new();
        let mut env = Env {
            spec,
            families,
            n,
            params,
            index: spec.dimension.map(|_| 0),
            allow_state: true,
            lags: &mut scratch,
            bound: Vec::new(),
            defining: Vec::new(),
            depth: 0,
            budget,
            resolved: Some(&resolved),
        };
        let at = Ast {
            kind: AstKind::Name(name.clone()),
            span: 0..0,
        };
        resolve_define(name, env.index, &at, &mut env, text.span.start)?;
    }
    Ok(())
}

/// The identifiers (`[A-Za-z_][A-Za-z0-9_]*`) written in an expression, in order.
fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
}

/// The parameter values written in the file (sorted-name order, as [`Model::param_names`]).
fn file_values(spec: &SystemSpec) -> Vec<f64> {
    spec.parameters.iter().map(|(_, v)| *v).collect()
}

/// A parametric expression (no state, no time) at parameter values `p`.
fn at_params(e: &E, p: &[f64]) -> f64 {
    e.eval(&expr::Ctx {
        t: 0.0,
        x: &[],
        p,
        lag: &[],
    })
}

fn cli_err(message: String) -> SpecError {
    SpecError {
        file: "--set".into(),
        line: 0,
        col: 0,
        message,
    }
}

fn parse_located(spec: &SystemSpec, text: &Located<String>) -> Result<Ast, SpecError> {
    parse_expr(&text.value).map_err(|e| spec.error_at(text.span.start + e.span.start, e.message))
}

fn initial_condition(
    spec: &SystemSpec,
    families: &[Family],
    n: usize,
    d: usize,
    param_names: &[String],
    param_values: &[f64],
    budget: &Budget,
) -> Result<Vec<f64>, SpecError> {
    if let Some(ic) = &spec.initial_conditions {
        if ic.value.len() == d {
            // the rules are not needed, but every entry of a file is checked (at component 0)
            for rule in spec.initial_rule.values() {
                let ast = parse_located(spec, rule)?;
                let mut scratch = Vec::new();
                let mut env = Env {
                    spec,
                    families,
                    n,
                    params: param_names,
                    index: Some(0),
                    allow_state: false,
                    lags: &mut scratch,
                    bound: Vec::new(),
                    defining: Vec::new(),
                    resolved: None,
                    depth: 0,
                    budget,
                };
                resolve(&ast, &mut env, rule.span.start)?;
            }
            return Ok(ic.value.clone());
        }
        if spec.initial_rule.is_empty() || spec.dimension.is_none() {
            return Err(spec.error_at(
                ic.span.start,
                format!(
                    "initial_conditions has {} values but {} has {d} variables ({})",
                    ic.value.len(),
                    spec.name,
                    families
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let mut out = vec![0.0; d];
    for fam in families {
        let Some(rule) = spec.initial_rule.get(&fam.name) else {
            return Err(spec.error_at(
                0,
                format!(
                    "no initial_conditions of length {d} and no initial_rule for '{}'",
                    fam.name
                ),
            ));
        };
        let ctx = FamilyCtx {
            spec,
            families,
            n,
            params: param_names,
            budget,
        };
        // an initial rule is evaluated for every component, scalar variables included (index 0)
        let indexed = Family {
            name: fam.name.clone(),
            offset: fam.offset,
            indexed: true,
        };
        let count = if fam.indexed { n } else { 1 };
        let es = ctx.resolve(&indexed, rule, false, None, "an initial rule")?;
        for (i, e) in es.into_iter().take(count).enumerate() {
            out[fam.offset + i] = e.eval(&expr::Ctx {
                t: spec.t0,
                x: &[],
                p: param_values,
                lag: &[],
            });
        }
    }
    Ok(out)
}

/// What resolving an expression for each member of a family needs.
struct FamilyCtx<'a> {
    spec: &'a SystemSpec,
    families: &'a [Family],
    n: usize,
    params: &'a [String],
    budget: &'a Budget,
}

impl FamilyCtx<'_> {
    /// Resolves `text` once per component of `fam` (once for a scalar variable). Delay terms
    /// are collected into `lags`; without `lags` they are an error naming `what`.
    fn resolve(
        &self,
        fam: &Family,
        text: &Located<String>,
        allow_state: bool,
        lags: Option<&mut Vec<LagSlot>>,
        what: &str,
    ) -> Result<Vec<E>, SpecError> {
        let ast = parse_located(self.spec, text)?;
        let count = if fam.indexed { self.n } else { 1 };
        let mut scratch = Vec::new();
        let delays_allowed = lags.is_some();
        let lags = lags.unwrap_or(&mut scratch);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let mut env = Env {
                spec: self.spec,
                families: self.families,
                n: self.n,
                params: self.params,
                index: fam.indexed.then_some(i),
                allow_state,
                lags: &mut *lags,
                bound: Vec::new(),
                defining: Vec::new(),
                resolved: None,
                depth: 0,
                budget: self.budget,
            };
            out.push(resolve(&ast, &mut env, text.span.start)?);
        }
        if !delays_allowed && !lags.is_empty() {
            return Err(self.spec.error_at(
                text.span.start,
                format!("{what} of '{}' cannot contain delay terms", fam.name),
            ));
        }
        Ok(out)
    }
}

/// Resolves one node: checks the depth and the file's budget, then [`resolve_node`].
fn resolve(ast: &Ast, env: &mut Env, base: usize) -> Result<E, SpecError> {
    if env.depth >= MAX_RESOLVE_DEPTH {
        return Err(env.spec.error_at(
            base + ast.span.start,
            format!(
                "expression nested too deeply: more than {MAX_RESOLVE_DEPTH} levels, counting the [define] entries it uses"
            ),
        ));
    }
    if !env.budget.take(1) {
        return Err(env.spec.error_at(
            base + ast.span.start,
            budget_message("expanding this expression"),
        ));
    }
    env.depth += 1;
    let e = resolve_node(ast, env, base);
    env.depth -= 1;
    e
}

fn apply(op: BinOp, a: E, b: E) -> E {
    match op {
        BinOp::Add => expr::add(a, b),
        BinOp::Sub => expr::sub(a, b),
        BinOp::Mul => expr::mul(a, b),
        BinOp::Div => expr::div(a, b),
        BinOp::Pow => expr::pow(a, b),
    }
}

fn resolve_node(ast: &Ast, env: &mut Env, base: usize) -> Result<E, SpecError> {
    let at = |off: usize, m: String| env.spec.error_at(base + off, m);
    Ok(match &ast.kind {
        AstKind::Num(v) => c(*v),
        AstKind::Neg(a) => expr::neg(resolve(a, env, base)?),
        AstKind::Bin(op, a, b) => {
            let a = resolve(a, env, base)?;
            let b = resolve(b, env, base)?;
            apply(*op, a, b)
        }
        AstKind::Chain(first, rest) => {
            // left to right, as the binary tree ((first op t1) op t2) … it stands for
            let mut acc = resolve(first, env, base)?;
            for (op, t) in rest {
                let b = resolve(t, env, base)?;
                acc = apply(*op, acc, b);
            }
            acc
        }
        AstKind::Name(name) => {
            if let Some((_, k)) = env.bound.iter().rev().find(|(b, _)| b == name) {
                c(*k as f64)
            } else if env.spec.define.contains_key(name) {
                resolve_define(name, env.index, ast, env, base)?
            } else if let Some(a) = env.spec.arrays.iter().find(|a| &a.name == name) {
                // a bare vector parameter in an indexed family means its element i
                match (a.shape.as_slice(), env.index) {
                    ([len], Some(i)) if i < *len => Arc::new(Expr::Param(a.first + i)),
                    ([len], Some(_)) => {
                        return Err(at(
                            ast.span.start,
                            format!(
                                "'{name}' has {len} elements but the family has N = {}: write {name}[k]",
                                env.n
                            ),
                        ))
                    }
                    _ => {
                        return Err(at(
                            ast.span.start,
                            format!(
                                "'{name}' is an array parameter: write {name}[{}]",
                                vec!["k"; a.shape.len()].join(", ")
                            ),
                        ))
                    }
                }
            } else if let Some(f) = env.families.iter().find(|f| &f.name == name) {
                if !env.allow_state {
                    return Err(at(
                        ast.span.start,
                        format!("state variable '{name}' cannot appear here"),
                    ));
                }
                let k = f.offset + if f.indexed { env.index.unwrap_or(0) } else { 0 };
                if f.indexed && env.index.is_none() {
                    return Err(at(
                        ast.span.start,
                        format!("'{name}' is an indexed variable: write {name}[k]"),
                    ));
                }
                Arc::new(Expr::State(k))
            } else if let Some(k) = env.params.iter().position(|p| p == name) {
                Arc::new(Expr::Param(k))
            } else if name == "t" {
                if !env.allow_state {
                    return Err(at(ast.span.start, "time 't' cannot appear here".into()));
                }
                Arc::new(Expr::Time)
            } else if name == "i" && env.index.is_some() {
                c(env.index.unwrap() as f64)
            } else if name == "N" && env.spec.dimension.is_some() {
                c(env.n as f64)
            } else if name == "pi" {
                c(std::f64::consts::PI)
            } else if name == "e" {
                c(std::f64::consts::E)
            } else if expr::Func1::from_name(name).is_some()
                || expr::Func2::from_name(name).is_some()
            {
                return Err(at(
                    ast.span.start,
                    format!("function '{name}' used without arguments"),
                ));
            } else {
                let mut known: Vec<&str> = env.families.iter().map(|f| f.name.as_str()).collect();
                known.extend(env.params.iter().map(|s| s.as_str()));
                return Err(at(
                    ast.span.start,
                    format!(
                        "unknown symbol '{name}' (variables and parameters: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        AstKind::Index(name, idxs) if env.spec.arrays.iter().any(|a| &a.name == name) => {
            let a = env.spec.arrays.iter().find(|a| &a.name == name).unwrap();
            if idxs.len() != a.shape.len() {
                return Err(at(
                    ast.span.start,
                    format!(
                        "'{name}' has {} index(es) (shape {:?}), got {}",
                        a.shape.len(),
                        a.shape,
                        idxs.len()
                    ),
                ));
            }
            let mut flat = 0usize;
            for (idx, &len) in idxs.iter().zip(&a.shape) {
                let k = const_index(idx, env, base, name)?;
                if k < 0 || k as usize >= len {
                    return Err(at(
                        idx.span.start,
                        format!("index {k} of '{name}' is out of range 0..{}", len - 1),
                    ));
                }
                flat = flat * len + k as usize;
            }
            Arc::new(Expr::Param(a.first + flat))
        }
        AstKind::Index(name, idxs) if env.spec.define.contains_key(name) => {
            if env.spec.dimension.is_none() || idxs.len() != 1 {
                return Err(at(
                    ast.span.start,
                    format!(
                        "'{name}[...]': only defined quantities of indexed families take one index"
                    ),
                ));
            }
            let k = const_index(&idxs[0], env, base, name)?;
            let k = k.rem_euclid(env.n as i64) as usize;
            resolve_define(name, Some(k), ast, env, base)?
        }
        AstKind::Index(name, idxs) => {
            let Some(f) = env.families.iter().find(|f| &f.name == name) else {
                return Err(at(
                    ast.span.start,
                    format!("'{name}[...]': '{name}' is not a variable"),
                ));
            };
            if !f.indexed {
                return Err(at(
                    ast.span.start,
                    format!("'{name}' is not indexed (the file has no 'dimension')"),
                ));
            }
            if !env.allow_state {
                return Err(at(
                    ast.span.start,
                    format!("state variable '{name}' cannot appear here"),
                ));
            }
            if idxs.len() != 1 {
                return Err(at(
                    ast.span.start,
                    format!("'{name}' takes one index, got {}", idxs.len()),
                ));
            }
            let k = const_index(&idxs[0], env, base, name)?;
            let k = k.rem_euclid(env.n as i64) as usize;
            Arc::new(Expr::State(f.offset + k))
        }
        AstKind::Call(name, args) => {
            if let Some(f) = env.families.iter().find(|f| &f.name == name) {
                // a delay term x(t - tau)
                if env.spec.kind != Kind::Dde {
                    return Err(at(
                        ast.span.start,
                        format!("delay term '{name}(...)' in a system of kind \"{}\" (use kind = \"dde\")", env.spec.kind.as_str()),
                    ));
                }
                if !env.allow_state {
                    return Err(at(
                        ast.span.start,
                        format!("delay term '{name}(...)' cannot appear here"),
                    ));
                }
                let delay_ast = match (args.len(), args.first().map(|a| &a.kind)) {
                    (1, Some(AstKind::Chain(lhs, rest)))
                        if lhs.kind == AstKind::Name("t".into())
                            && matches!(rest.as_slice(), [(BinOp::Sub, _)]) =>
                    {
                        &rest[0].1
                    }
                    _ => {
                        return Err(at(
                            ast.span.start,
                            format!("delay term must read {name}(t - tau) with tau a positive expression of parameters"),
                        ))
                    }
                };
                let save = env.allow_state;
                env.allow_state = false;
                let delay = resolve(delay_ast, env, base);
                env.allow_state = save;
                let delay = delay?;
                if !delay.is_parametric() {
                    return Err(at(
                        delay_ast.span.start,
                        "a delay must depend only on parameters and numbers".into(),
                    ));
                }
                let component = f.offset + if f.indexed { env.index.unwrap_or(0) } else { 0 };
                let text = env
                    .spec
                    .source
                    .get(base + ast.span.start..base + ast.span.end)
                    .unwrap_or(name)
                    .to_string();
                let slot = match env
                    .lags
                    .iter()
                    .position(|l| l.component == component && *l.delay == *delay)
                {
                    Some(s) => s,
                    None => {
                        // τ > 0 at the file's own parameter values, reported at the delay as
                        // written (values given by --set are checked in `Model::build`)
                        let tau = at_params(&delay, &file_values(env.spec));
                        if !(tau > 0.0 && tau.is_finite()) {
                            return Err(at(
                                delay_ast.span.start,
                                format!("the delay of '{text}' must be positive, got {tau}"),
                            ));
                        }
                        env.lags.push(LagSlot {
                            component,
                            delay,
                            text,
                        });
                        env.lags.len() - 1
                    }
                };
                Arc::new(Expr::Lag(slot))
            } else if let Some(red) = Reduction::of(name, args.len(), env.spec.dimension.is_some())
            {
                reduce(red, ast, args, env, base)?
            } else if let Some(f) = Func1::from_name(name) {
                if args.len() != 1 {
                    return Err(at(
                        ast.span.start,
                        format!("function '{name}' takes 1 argument, got {}", args.len()),
                    ));
                }
                expr::f1(f, resolve(&args[0], env, base)?)
            } else if let Some(f) = Func2::from_name(name) {
                if args.len() != 2 {
                    return Err(at(
                        ast.span.start,
                        format!("function '{name}' takes 2 arguments, got {}", args.len()),
                    ));
                }
                let a = resolve(&args[0], env, base)?;
                let b = resolve(&args[1], env, base)?;
                expr::f2(f, a, b)
            } else {
                return Err(at(
                    ast.span.start,
                    format!(
                        "unknown function '{name}' (known: {})",
                        FUNCTION_NAMES.join(", ")
                    ),
                ));
            }
        }
    })
}

/// Resolves an index expression to an integer (an expression of `i`, `N`, reduction indices and
/// numbers; state, time and parameters are not allowed).
fn const_index(idx: &Ast, env: &mut Env, base: usize, name: &str) -> Result<i64, SpecError> {
    let save = env.allow_state;
    env.allow_state = false;
    let ie = resolve(idx, env, base);
    env.allow_state = save;
    match *ie? {
        Expr::Const(v) if v.fract() == 0.0 && v.abs() < 1e15 => Ok(v as i64),
        _ => Err(env.spec.error_at(
            base + idx.span.start,
            format!("index of '{name}' must be an integer expression of i, N, summation indices and numbers"),
        )),
    }
}

/// Reductions over an integer index, unrolled when the file is loaded:
/// `sum(j, lo, hi, body)`, `prod(…)`, `min(j, lo, hi, body)`, `max(…)` over j = lo, …, hi
/// (inclusive), and in indexed families `sum(j, body)` / `prod(j, body)` over j = 0, …, N − 1.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reduction {
    Sum,
    Prod,
    Min,
    Max,
}

impl Reduction {
    fn of(name: &str, nargs: usize, family: bool) -> Option<Reduction> {
        match (name, nargs) {
            ("sum", 4) => Some(Reduction::Sum),
            ("prod", 4) => Some(Reduction::Prod),
            ("min", 4) => Some(Reduction::Min),
            ("max", 4) => Some(Reduction::Max),
            ("sum", 2) if family => Some(Reduction::Sum),
            ("prod", 2) if family => Some(Reduction::Prod),
            ("sum" | "prod", _) => Some(Reduction::Sum), // wrong arity: reported by `reduce`
            _ => None,
        }
    }
}

fn reduce(
    red: Reduction,
    ast: &Ast,
    args: &[Ast],
    env: &mut Env,
    base: usize,
) -> Result<E, SpecError> {
    let AstKind::Call(fname, _) = &ast.kind else {
        unreachable!("reduce is called on calls")
    };
    let usage = || {
        format!(
            "'{fname}' over an index reads {fname}(j, lo, hi, expression) with j running from lo to hi inclusive{}",
            if env.spec.dimension.is_some() { format!(", or {fname}(j, expression) for j = 0 .. N-1") } else { String::new() }
        )
    };
    if !(args.len() == 4 || (args.len() == 2 && env.spec.dimension.is_some())) {
        return Err(env.spec.error_at(base + ast.span.start, usage()));
    }
    let AstKind::Name(var) = &args[0].kind else {
        return Err(env.spec.error_at(base + args[0].span.start, usage()));
    };
    let clash = env.families.iter().any(|f| &f.name == var)
        || env.params.iter().any(|p| p == var)
        || env.spec.arrays.iter().any(|a| &a.name == var)
        || (env.index.is_some() && var == "i")
        || var == "t"
        || var == "N";
    if clash {
        return Err(env.spec.error_at(
            base + args[0].span.start,
            format!(
                "summation index '{var}' has the name of a variable, parameter or reserved symbol"
            ),
        ));
    }
    let (lo, hi, body) = if args.len() == 4 {
        let lo = const_index(&args[1], env, base, fname)?;
        let hi = const_index(&args[2], env, base, fname)?;
        (lo, hi, &args[3])
    } else {
        (0, env.n as i64 - 1, &args[1])
    };
    if hi < lo && matches!(red, Reduction::Min | Reduction::Max) {
        return Err(env.spec.error_at(
            base + args[1].span.start,
            format!("'{fname}' over an empty range {lo} .. {hi}"),
        ));
    }
    if hi - lo + 1 > MAX_REDUCTION_TERMS as i64 {
        return Err(env.spec.error_at(
            base + args[1].span.start,
            format!(
                "'{fname}' over {} terms: at most {MAX_REDUCTION_TERMS}",
                hi - lo + 1
            ),
        ));
    }
    let mut acc: Option<E> = None;
    for k in lo..=hi {
        env.bound.push((var.clone(), k));
        let term = resolve(body, env, base);
        env.bound.pop();
        let term = term?;
        acc = Some(match acc {
            None => term,
            Some(a) => match red {
                Reduction::Sum => expr::add(a, term),
                Reduction::Prod => expr::mul(a, term),
                Reduction::Min => expr::f2(Func2::Min, a, term),
                Reduction::Max => expr::f2(Func2::Max, a, term),
            },
        });
    }
    Ok(acc.unwrap_or_else(|| c(if red == Reduction::Prod { 1.0 } else { 0.0 })))
}

/// Resolves the `[define]` quantity `name` for family index `index` (its own expression, with its
/// own spans; enclosing reduction indices are not visible inside it).
fn resolve_define(
    name: &str,
    index: Option<usize>,
    at: &Ast,
    env: &mut Env,
    base: usize,
) -> Result<E, SpecError> {
    if env.defining.iter().any(|d| d == name) {
        return Err(env.spec.error_at(
            base + at.span.start,
            format!(
                "[define] '{name}' refers to itself ({} -> {name})",
                env.defining.join(" -> ")
            ),
        ));
    }
    let text = &env.spec.define[name];
    let ast = parse_located(env.spec, text)?;
    let saved_bound = std::mem::take(&mut env.bound);
    let saved_index = env.index;
    env.index = index.or(env.index);
    env.defining.push(name.to_string());
    let e = resolve(&ast, env, text.span.start);
    env.defining.pop();
    if let (Ok(_), Some(r)) = (&e, env.resolved) {
        r.borrow_mut().insert(name.to_string());
    }
    env.index = saved_index;
    env.bound = saved_bound;
    e
}
