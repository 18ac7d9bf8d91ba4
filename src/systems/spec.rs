//! Reading system definition files (TOML) into a typed [`SystemSpec`].
//!
//! This is the only code that reads TOML. Every error names the file, the line and column and
//! the offending token or field (see [`SpecError`]). The format is documented in
//! `systems/README.md`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Kind of dynamics a file defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary differential equations dx/dt = f(t, x).
    Flow,
    /// Iterated map x_{n+1} = f(n, x_n).
    Map,
    /// Delay differential equations with terms `x(t - tau)`.
    Dde,
}

impl Kind {
    /// Name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Flow => "flow",
            Kind::Map => "map",
            Kind::Dde => "dde",
        }
    }
}

/// An error in a definition file (or in a value given on the command line for it), located
/// at `file:line:column`. Displays on one line.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// File the error is in (or `<command line>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// Message naming the offending token or field.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}
impl std::error::Error for SpecError {}

/// A string value of the file together with the byte offset of its first character in the file
/// (so errors inside an equation can point at the exact column). Offsets into `value` are added
/// to `span.start`; where the string holds TOML escapes (`\u0078`) the decoded value is shorter
/// than its text, and [`SystemSpec::error_at`] maps such offsets back to the raw file.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    /// Byte span of the value in the file (for strings: of the contents, without quotes).
    pub span: Range<usize>,
}

/// A parsed definition file. Names are not resolved yet (see [`super::model::Model`]).
#[derive(Debug, Clone)]
pub struct SystemSpec {
    /// Path the file was read from (`<string>` when loaded from text).
    pub path: PathBuf,
    /// Full text of the file (stored in output files for provenance).
    pub source: String,
    pub name: String,
    pub kind: Kind,
    pub description: String,
    pub citation: String,
    /// Variable names in state order (for indexed families: the family names).
    pub variables: Vec<Located<String>>,
    /// Family size for indexed families (`dimension = N`).
    pub dimension: Option<usize>,
    /// Default initial condition (flat, state order).
    pub initial_conditions: Option<Located<Vec<f64>>>,
    /// Per-variable initial-condition expressions in `i`, `N` and parameters (indexed families).
    pub initial_rule: BTreeMap<String, Located<String>>,
    /// Parameters in sorted-name order (dysts' convention), with their spans; the elements of an
    /// array parameter appear in its place as scalars `w[r,c]` (row-major).
    pub parameters: Vec<(Located<String>, f64)>,
    /// Array parameters (vectors and matrices), whose elements are in `parameters`.
    pub arrays: Vec<ArrayParam>,
    /// Equation per variable name: the expression string located in the file.
    pub equations: BTreeMap<String, Located<String>>,
    /// Span of the `[equations]` table key names (for "missing equation" errors).
    pub equation_keys: BTreeMap<String, Range<usize>>,
    /// Named conserved quantities (expressions of the state), e.g. the energy.
    pub conserved: BTreeMap<String, Located<String>>,
    /// Observation map: variable → bounded expression recorded in its place (e.g. an angle
    /// `theta` recorded as `cos(theta)`).
    pub observe: BTreeMap<String, Located<String>>,
    /// Named intermediate quantities (`[define]`): name → expression, usable in every
    /// expression of the file (in indexed families, per component: `mu` or `mu[j]`).
    pub define: BTreeMap<String, Located<String>>,
    /// Inverse of a map: variable → expression of the state giving its previous value.
    pub inverse: BTreeMap<String, Located<String>>,
    /// Delay equations: variable → expression of `t` and parameters giving its value for
    /// `t < t0` (variables without one keep their initial value).
    pub history: BTreeMap<String, Located<String>>,
    /// Flows: diffusion coefficient D_k of each noisy variable (an expression of the
    /// parameters), for dx_k = f_k dt + √(2 D_k) dW_k; variables not listed are noiseless.
    pub diffusion: BTreeMap<String, Located<String>>,
    /// Step hint (time units).
    pub dt: f64,
    /// Dominant period (time units), used for points-per-period sampling.
    pub period: f64,
    /// Initial time.
    pub t0: f64,
    pub hamiltonian: bool,
    pub nonautonomous: bool,
    /// Hint that the system is stiff (used by the solver selection of later issues).
    pub stiff: bool,
    /// Reference values (mean, std, Lyapunov exponents, …) as given in the file.
    pub reference: toml::Table,
    /// Strings whose decoded value differs from their text (TOML escapes, line-ending
    /// backslashes): (byte offset of the contents in the file, raw offset relative to it of every
    /// byte offset 0..=len of the decoded value). Used by [`SystemSpec::error_at`].
    pub escapes: Vec<(usize, Vec<usize>)>,
}

/// A parameter value in a file: a number, a vector or a matrix (rows of equal length).
enum RawParam {
    Scalar(f64),
    Vector(Vec<f64>),
    Matrix(Vec<Vec<f64>>),
}

impl<'de> Deserialize<'de> for RawParam {
    /// Anything else (a string such as `"1/0"`, a table, a boolean, nested deeper) is an error
    /// naming the value and what a parameter may be.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawParam, D::Error> {
        let v = toml::Value::deserialize(d)?;
        fn num(v: &toml::Value) -> Option<f64> {
            v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
        }
        fn row(v: &toml::Value) -> Option<Vec<f64>> {
            v.as_array()?.iter().map(num).collect()
        }
        let parsed = match &v {
            toml::Value::Array(items)
                if items.iter().all(|x| x.is_array()) && !items.is_empty() =>
            {
                items
                    .iter()
                    .map(row)
                    .collect::<Option<Vec<_>>>()
                    .map(RawParam::Matrix)
            }
            toml::Value::Array(_) => row(&v).map(RawParam::Vector),
            other => num(other).map(RawParam::Scalar),
        };
        parsed.ok_or_else(|| {
            let hint = if v.is_str() {
                " (an expression belongs in [define] or in the equations)"
            } else {
                ""
            };
            serde::de::Error::custom(format!(
                "parameter value {v} is not a number, a vector of numbers [a, b] or a matrix [[a, b], [c, d]]{hint}"
            ))
        })
    }
}

/// An array parameter (`theta = [..]`, `w = [[..], [..]]`): its elements are scalar parameters
/// named `theta[k]` / `w[r,c]` (row-major), stored consecutively in [`SystemSpec::parameters`].
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayParam {
    pub name: String,
    /// `[len]` for a vector, `[rows, cols]` for a matrix.
    pub shape: Vec<usize>,
    /// Index of element 0 in [`SystemSpec::parameters`].
    pub first: usize,
}

impl ArrayParam {
    /// Name of the scalar parameter holding the element at `idx` (`w[1,2]`).
    pub fn element_name(&self, idx: &[usize]) -> String {
        let parts: Vec<String> = idx.iter().map(|k| k.to_string()).collect();
        format!("{}[{}]", self.name, parts.join(","))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    citation: String,
    variables: Spanned<Vec<Spanned<String>>>,
    dimension: Option<Spanned<i64>>,
    initial_conditions: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    initial_rule: BTreeMap<Spanned<String>, Spanned<String>>,
    dt: Option<Spanned<f64>>,
    period: Option<Spanned<f64>>,
    t0: Option<Spanned<f64>>,
    #[serde(default)]
    hamiltonian: bool,
    #[serde(default)]
    nonautonomous: bool,
    #[serde(default)]
    stiff: bool,
    #[serde(default)]
    parameters: BTreeMap<Spanned<String>, Spanned<RawParam>>,
    equations: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    conserved: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    observe: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    define: BTreeMap<Spanned<String>, Spanned<String>>,
    inverse: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    history: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    diffusion: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    #[serde(default)]
    reference: toml::Table,
}

/// Line and column (1-based; column counted in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Builds a located error for a byte offset in `source`.
pub fn error_at(file: &Path, source: &str, offset: usize, message: impl Into<String>) -> SpecError {
    let (line, col) = line_col(source, offset);
    SpecError {
        file: file.display().to_string(),
        line,
        col,
        message: message.into(),
    }
}

/// Span of a string's contents: skips the opening quote(s) of a TOML string.
fn inner_span(source: &str, span: Range<usize>) -> Range<usize> {
    let s = &source[span.clone()];
    let q = if s.starts_with("\"\"\"") || s.starts_with("'''") {
        let mut n = 3;
        // a newline right after the opening delimiter is trimmed by TOML
        if s[3..].starts_with("\r\n") {
            n += 2;
        } else if s[3..].starts_with('\n') {
            n += 1;
        }
        n
    } else if s.starts_with('"') || s.starts_with('\'') {
        1
    } else {
        0
    };
    (span.start + q).min(span.end)..span.end
}

/// Decodes the contents `raw` of a TOML basic string (without its quotes) while recording, for
/// every byte offset of the decoded text (0..=len), the byte offset in `raw` it came from (an
/// escape maps to its backslash). `None` when `raw` does not decode to `value` (then offsets are
/// left as they are).
fn escape_map(raw: &str, value: &str, multiline: bool) -> Option<Vec<usize>> {
    let mut out = String::with_capacity(value.len());
    let mut map = Vec::with_capacity(value.len() + 1);
    let b = raw.as_bytes();
    let mut k = 0;
    while k < raw.len() {
        let ch = raw[k..].chars().next()?;
        if ch != '\\' {
            for _ in 0..ch.len_utf8() {
                map.push(k);
            }
            out.push(ch);
            k += ch.len_utf8();
            continue;
        }
        let next = *b.get(k + 1)?;
        let (decoded, len) = match next {
            b'b' => ('\u{8}', 2),
            b't' => ('\t', 2),
            b'n' => ('\n', 2),
            b'f' => ('\u{c}', 2),
            b'r' => ('\r', 2),
            b'e' => ('\u{1b}', 2),
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'x' | b'u' | b'U' => {
                let n = match next {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = raw.get(k + 2..k + 2 + n)?;
                (char::from_u32(u32::from_str_radix(hex, 16).ok()?)?, 2 + n)
            }
            // a line-ending backslash of a multi-line string: whitespace and newlines vanish
            _ if multiline => {
                let rest = &raw[k + 1..];
                let skipped = rest.len() - rest.trim_start().len();
                k += 1 + skipped;
                continue;
            }
            _ => return None,
        };
        for _ in 0..decoded.len_utf8() {
            map.push(k);
        }
        out.push(decoded);
        k += len;
    }
    map.push(raw.len());
    (out == value).then_some(map)
}

/// Longest definition text read as equations (4 MiB): a sum of 100,000 written-out terms
/// takes well under 1 MiB; the parsed form of the text takes about 40 times its size.
pub const MAX_DEFINITION_BYTES: usize = 4 << 20;

/// The text of a definition file (equations or particles), or an error naming the file.
pub fn read_definition(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|e| SpecError {
        file: path.display().to_string(),
        line: 0,
        col: 0,
        message: format!("cannot read definition file: {e}"),
    })
}

impl SystemSpec {
    /// Reads and validates a definition file.
    pub fn load(path: &Path) -> Result<SystemSpec, SpecError> {
        Self::from_str_at(&read_definition(path)?, path)
    }

    /// Parses definition text; `path` is used in error messages. Text longer than
    /// [`MAX_DEFINITION_BYTES`] is an error at the byte past the limit.
    pub fn from_str_at(text: &str, path: &Path) -> Result<SystemSpec, SpecError> {
        let err = |off: usize, m: String| error_at(path, text, off, m);
        if text.len() > MAX_DEFINITION_BYTES {
            let mut off = MAX_DEFINITION_BYTES;
            while !text.is_char_boundary(off) {
                off -= 1;
            }
            return Err(err(
                off,
                format!(
                    "definition file of {} bytes: at most {MAX_DEFINITION_BYTES} (4 MiB)",
                    text.len()
                ),
            ));
        }
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let off = e.span().map(|s| s.start).unwrap_or(0);
            let msg = e.message().trim().replace('\n', " ");
            err(off, format!("malformed definition file: {msg}"))
        })?;
        let escapes = std::cell::RefCell::new(Vec::new());
        let loc = |s: &Spanned<String>| {
            let span = inner_span(text, s.span());
            let quote = text.get(s.span().start..span.start).unwrap_or("");
            // contents without the closing delimiter
            let end = span
                .end
                .saturating_sub(quote.trim_end().len())
                .max(span.start);
            let raw = text.get(span.start..end).unwrap_or("");
            if quote.starts_with('"') && raw != s.get_ref() {
                if let Some(map) = escape_map(raw, s.get_ref(), quote.starts_with("\"\"\"")) {
                    escapes.borrow_mut().push((span.start, map));
                }
            }
            Located {
                value: s.get_ref().clone(),
                span,
            }
        };

        let kind = match raw.kind.get_ref().as_str() {
            "flow" => Kind::Flow,
            "map" => Kind::Map,
            "dde" => Kind::Dde,
            "particles" => {
                return Err(err(
                    raw.kind.span().start,
                    "kind \"particles\" is not supported by this loader (particle models are read by the particle engine)".into(),
                ))
            }
            other => {
                return Err(err(
                    inner_span(text, raw.kind.span()).start,
                    format!("unknown kind '{other}' (expected flow, map or dde)"),
                ))
            }
        };
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(err(raw.name.span().start, "field 'name' is empty".into()));
        }

        let variables: Vec<Located<String>> = raw.variables.get_ref().iter().map(loc).collect();
        if variables.is_empty() {
            return Err(err(
                raw.variables.span().start,
                "field 'variables' is empty".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &variables {
            if !is_identifier(&v.value) {
                return Err(err(
                    v.span.start,
                    format!("variable name '{}' is not an identifier", v.value),
                ));
            }
            if RESERVED.contains(&v.value.as_str()) {
                return Err(err(
                    v.span.start,
                    format!("variable name '{}' is reserved", v.value),
                ));
            }
            if !seen.insert(v.value.clone()) {
                return Err(err(
                    v.span.start,
                    format!("variable '{}' is declared twice", v.value),
                ));
            }
        }

        let dimension = match &raw.dimension {
            None => None,
            Some(d) => {
                let n = *d.get_ref();
                if n < 1 {
                    return Err(err(
                        d.span().start,
                        format!("field 'dimension' must be a positive integer, got {n}"),
                    ));
                }
                let limit = super::model::MAX_STATE_DIMENSION;
                if (n as u64).saturating_mul(variables.len().max(1) as u64) > limit as u64 {
                    return Err(err(
                        d.span().start,
                        format!(
                            "dimension {n} gives more than {limit} state components (the most a file may declare)"
                        ),
                    ));
                }
                Some(n as usize)
            }
        };

        let mut parameters = Vec::new();
        let mut arrays = Vec::new();
        for (k, v) in &raw.parameters {
            let name = k.get_ref();
            if !is_identifier(name) {
                return Err(err(
                    k.span().start,
                    format!("parameter name '{name}' is not an identifier"),
                ));
            }
            if seen.contains(name) {
                return Err(err(
                    k.span().start,
                    format!("parameter '{name}' has the name of a variable"),
                ));
            }
            if RESERVED.contains(&name.as_str())
                || (dimension.is_some() && (name == "i" || name == "N"))
            {
                return Err(err(
                    k.span().start,
                    format!("parameter name '{name}' is reserved"),
                ));
            }
            let (shape, values): (Vec<usize>, Vec<f64>) = match v.get_ref() {
                RawParam::Scalar(x) => (Vec::new(), vec![*x]),
                RawParam::Vector(xs) => (vec![xs.len()], xs.clone()),
                RawParam::Matrix(rows) => {
                    let cols = rows.first().map_or(0, |r| r.len());
                    if rows.iter().any(|r| r.len() != cols) {
                        return Err(err(
                            v.span().start,
                            format!("matrix parameter '{name}' has rows of different lengths"),
                        ));
                    }
                    (vec![rows.len(), cols], rows.concat())
                }
            };
            if values.is_empty() {
                return Err(err(
                    v.span().start,
                    format!("array parameter '{name}' is empty"),
                ));
            }
            if values.iter().any(|x| !x.is_finite()) {
                return Err(err(
                    v.span().start,
                    format!("parameter '{name}' is not finite"),
                ));
            }
            let located = |value: String| Located {
                value,
                span: k.span(),
            };
            if shape.is_empty() {
                parameters.push((located(name.clone()), values[0]));
                continue;
            }
            let array = ArrayParam {
                name: name.clone(),
                shape: shape.clone(),
                first: parameters.len(),
            };
            for (flat, x) in values.iter().enumerate() {
                let idx = if shape.len() == 1 {
                    vec![flat]
                } else {
                    vec![flat / shape[1], flat % shape[1]]
                };
                parameters.push((located(array.element_name(&idx)), *x));
            }
            arrays.push(array);
        }

        let mut equations = BTreeMap::new();
        let mut equation_keys = BTreeMap::new();
        for (k, v) in raw.equations.get_ref() {
            let key = k.get_ref();
            if !seen.contains(key) {
                return Err(err(
                    k.span().start,
                    format!("equation for '{key}', which is not a declared variable"),
                ));
            }
            equation_keys.insert(key.clone(), k.span());
            equations.insert(key.clone(), loc(v));
        }
        for v in &variables {
            if !equations.contains_key(&v.value) {
                return Err(err(
                    raw.equations.span().start,
                    format!("no equation for variable '{}' in [equations]", v.value),
                ));
            }
        }

        let mut initial_rule = BTreeMap::new();
        for (k, v) in &raw.initial_rule {
            if !seen.contains(k.get_ref()) {
                return Err(err(
                    k.span().start,
                    format!(
                        "initial_rule for '{}', which is not a declared variable",
                        k.get_ref()
                    ),
                ));
            }
            initial_rule.insert(k.get_ref().clone(), loc(v));
        }
        let mut conserved = BTreeMap::new();
        for (k, v) in &raw.conserved {
            conserved.insert(k.get_ref().clone(), loc(v));
        }
        let mut observe = BTreeMap::new();
        for (k, v) in &raw.observe {
            if !seen.contains(k.get_ref()) {
                return Err(err(
                    k.span().start,
                    format!(
                        "observe entry for '{}', which is not a declared variable",
                        k.get_ref()
                    ),
                ));
            }
            observe.insert(k.get_ref().clone(), loc(v));
        }
        let mut define = BTreeMap::new();
        for (k, v) in &raw.define {
            let name = k.get_ref();
            let clash = seen.contains(name)
                || parameters
                    .iter()
                    .any(|(p, _)| p.value == *name || p.value.starts_with(&format!("{name}[")));
            if !is_identifier(name)
                || clash
                || RESERVED.contains(&name.as_str())
                || name == "i"
                || name == "N"
                || super::expr::FUNCTION_NAMES.contains(&name.as_str())
                || ["sum", "prod"].contains(&name.as_str())
            {
                return Err(err(
                    k.span().start,
                    format!(
                        "[define] name '{name}' is not an identifier or is already a variable, parameter, function or reserved name"
                    ),
                ));
            }
            define.insert(name.clone(), loc(v));
        }
        let mut inverse = BTreeMap::new();
        if let Some(raw_inverse) = &raw.inverse {
            if kind != Kind::Map {
                return Err(err(
                    raw_inverse.span().start,
                    "an [inverse] table is only meaningful for kind = \"map\"".into(),
                ));
            }
            for (k, v) in raw_inverse.get_ref() {
                if !seen.contains(k.get_ref()) {
                    return Err(err(
                        k.span().start,
                        format!(
                            "inverse for '{}', which is not a declared variable",
                            k.get_ref()
                        ),
                    ));
                }
                inverse.insert(k.get_ref().clone(), loc(v));
            }
            for v in &variables {
                if !inverse.contains_key(&v.value) {
                    return Err(err(
                        raw_inverse.span().start,
                        format!("[inverse] has no expression for variable '{}'", v.value),
                    ));
                }
            }
        }

        let mut diffusion = BTreeMap::new();
        if let Some(raw_diff) = &raw.diffusion {
            if kind != Kind::Flow {
                return Err(err(
                    raw_diff.span().start,
                    "a [diffusion] table is only meaningful for kind = \"flow\" (an SDE)".into(),
                ));
            }
            for (k, v) in raw_diff.get_ref() {
                if !seen.contains(k.get_ref()) {
                    return Err(err(
                        k.span().start,
                        format!(
                            "diffusion for '{}', which is not a declared variable",
                            k.get_ref()
                        ),
                    ));
                }
                diffusion.insert(k.get_ref().clone(), loc(v));
            }
        }
        let mut history = BTreeMap::new();
        if let Some(raw_history) = &raw.history {
            if kind != Kind::Dde {
                return Err(err(
                    raw_history.span().start,
                    "a [history] table is only meaningful for kind = \"dde\"".into(),
                ));
            }
            for (k, v) in raw_history.get_ref() {
                if !seen.contains(k.get_ref()) {
                    return Err(err(
                        k.span().start,
                        format!(
                            "history for '{}', which is not a declared variable",
                            k.get_ref()
                        ),
                    ));
                }
                history.insert(k.get_ref().clone(), loc(v));
            }
        }

        let positive =
            |f: &Option<Spanned<f64>>, field: &str, default: f64| -> Result<f64, SpecError> {
                match f {
                    None => Ok(default),
                    Some(v) if *v.get_ref() > 0.0 && v.get_ref().is_finite() => Ok(*v.get_ref()),
                    Some(v) => Err(err(
                        v.span().start,
                        format!(
                            "field '{field}' must be a positive number, got {}",
                            v.get_ref()
                        ),
                    )),
                }
            };
        let dt = positive(&raw.dt, "dt", if kind == Kind::Map { 1.0 } else { 1e-3 })?;
        let period = positive(&raw.period, "period", 1.0)?;
        let t0 = match &raw.t0 {
            None => 0.0,
            Some(v) if v.get_ref().is_finite() => *v.get_ref(),
            Some(v) => {
                return Err(err(
                    v.span().start,
                    format!("field 't0' must be a finite number, got {}", v.get_ref()),
                ))
            }
        };

        let initial_conditions = raw.initial_conditions.as_ref().map(|v| Located {
            value: v.get_ref().clone(),
            span: v.span(),
        });
        if initial_conditions.is_none() && initial_rule.is_empty() {
            return Err(err(
                0,
                "missing field 'initial_conditions' (or an [initial_rule] table)".into(),
            ));
        }

        Ok(SystemSpec {
            path: path.to_path_buf(),
            source: text.to_string(),
            name,
            kind,
            description: raw.description.trim().to_string(),
            citation: raw.citation.trim().to_string(),
            variables,
            dimension,
            initial_conditions,
            initial_rule,
            parameters,
            arrays,
            equations,
            equation_keys,
            conserved,
            observe,
            define,
            inverse,
            history,
            diffusion,
            dt,
            period,
            t0,
            hamiltonian: raw.hamiltonian,
            nonautonomous: raw.nonautonomous,
            stiff: raw.stiff,
            reference: raw.reference,
            escapes: escapes.into_inner(),
        })
    }

    /// Builds a located error at a byte offset of this file. An offset inside a string with TOML
    /// escapes counts bytes of the decoded value (as the expression parser sees it) and is mapped
    /// to the raw file, so the column is that of the token as written.
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> SpecError {
        let raw = self
            .escapes
            .iter()
            .find(|(start, map)| offset >= *start && offset - start < map.len())
            .map_or(offset, |(start, map)| start + map[offset - start]);
        error_at(&self.path, &self.source, raw, message)
    }

    /// A reference array (e.g. `mean`, `std`) from the `[reference]` table, if present.
    pub fn reference_array(&self, key: &str) -> Option<Vec<f64>> {
        let arr = self.reference.get(key)?.as_array()?;
        arr.iter().map(toml_number).collect()
    }

    /// A reference number (e.g. `kaplan_yorke_dimension_dysts`) from the `[reference]` table.
    pub fn reference_number(&self, key: &str) -> Option<f64> {
        self.reference.get(key).and_then(toml_number)
    }
}

/// A TOML float or integer as f64.
fn toml_number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// Names that cannot be variables or parameters.
pub const RESERVED: &[&str] = &["t", "pi"];

fn is_identifier(s: &str) -> bool {
    let mut ch = s.chars();
    matches!(ch.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && ch.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a definition file declares `kind = "particles"` (read without a full parse): the
/// particle models of [`crate::particles`] rather than equations.
pub fn is_particle_file(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| {
            t.get("kind")
                .and_then(|k| k.as_str().map(|s| s == "particles"))
        })
        .unwrap_or(false)
}

/// Whether the file at `path` is a particle definition file (false when it cannot be read).
pub fn is_particle_path(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| is_particle_file(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "ab\ncd\nef";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 4), (2, 2));
        assert_eq!(line_col(t, 6), (3, 1));
    }

    #[test]
    fn malformed_toml_is_located() {
        let e =
            SystemSpec::from_str_at("name = \"A\"\nkind = = 3\n", Path::new("a.toml")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().starts_with("a.toml:2:"), "{e}");
    }

    #[test]
    fn unknown_field_is_named() {
        let src = "name = \"A\"\nkind = \"flow\"\nvariables = [\"x\"]\ninitial_conditions = [1.0]\nparamters = {a = 1}\n[equations]\nx = \"-x\"\n";
        let e = SystemSpec::from_str_at(src, Path::new("a.toml")).unwrap_err();
        assert!(e.message.contains("paramters"), "{e}");
        assert_eq!(e.line, 5, "{e}");
    }
}
