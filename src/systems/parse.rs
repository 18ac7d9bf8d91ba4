//! Lexer and recursive-descent parser for the equation language of definition files.
//!
//! Grammar (standard precedence, `^` binds tighter than unary minus and is right-associative,
//! so `-x^2` is `-(x^2)` and `2^3^2` is `2^(3^2)`):
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := ('-' | '+')* power
//! power   := primary ('^' unary)?
//! primary := NUMBER | NAME | NAME '[' args ']' | NAME '(' args ')' | '(' expr ')'
//! args    := expr (',' expr)*
//! ```
//!
//! `NAME(...)` is a function call, or a delay term `x(t - tau)` when `NAME` is a variable.
//! The parser only builds the surface tree ([`Ast`]); names are resolved in [`super::model`].
//!
//! Limits (so that no input can exhaust the stack): sums and products of any length are read
//! by loops into flat [`AstKind::Chain`] nodes (a sum of 100,000 terms is one node with
//! 100,000 operands), a run of signs `- - -x` is folded into one negation (or none), and
//! everything else that nests — parentheses, function arguments, indices and exponents — may
//! nest at most [`MAX_NESTING`] levels deep; deeper input is a [`ParseError`] at the token that
//! opens level `MAX_NESTING + 1`. The tree's depth is therefore at most about 4 · `MAX_NESTING`
//! whatever the length of the expression.

use std::ops::Range;

/// A parse error: byte span inside the parsed string and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// Byte range of the offending token within the expression string.
    pub span: Range<usize>,
    /// Human-readable message, naming the offending token.
    pub message: String,
}

/// Deepest nesting of parentheses, function calls, indices and exponents (`^`) in one
/// expression; see the module documentation.
pub const MAX_NESTING: usize = 256;

/// Binary operators of the surface language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// Surface syntax tree with byte spans (relative to the expression string).
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    pub kind: AstKind,
    pub span: Range<usize>,
}

/// Node kinds of the surface tree.
#[derive(Debug, Clone, PartialEq)]
pub enum AstKind {
    Num(f64),
    /// A bare name: variable, parameter, constant, `t`, or (in indexed families) `i` / `N`.
    Name(String),
    /// `x[index]` (a component of an indexed family) or `w[row, col]` (an element of an array
    /// parameter).
    Index(String, Vec<Ast>),
    /// `f(a, b, ...)`: a function call or a delay term `x(t - tau)`.
    Call(String, Vec<Ast>),
    Neg(Box<Ast>),
    /// `a ^ b` (the only binary node: `^` chains nest, and count towards [`MAX_NESTING`]).
    Bin(BinOp, Box<Ast>, Box<Ast>),
    /// A left-associative chain `first op1 t1 op2 t2 …` of `+`/`-` (a sum) or `*`/`/`
    /// (a product), evaluated left to right: `((first op1 t1) op2 t2) …`. Flat, so that its
    /// length does not add to the depth of the tree.
    Chain(Box<Ast>, Vec<(BinOp, Ast)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(char),
    End,
}

struct Lexer<'a> {
    src: &'a str,
    toks: Vec<(Tok, Range<usize>)>,
}

impl<'a> Lexer<'a> {
    fn run(src: &'a str) -> Result<Vec<(Tok, Range<usize>)>, ParseError> {
        let mut lx = Lexer {
            src,
            toks: Vec::new(),
        };
        let b = src.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i] as char;
            if c.is_ascii_whitespace() {
                i += 1;
            } else if c.is_ascii_digit()
                || (c == '.' && i + 1 < b.len() && b[i + 1].is_ascii_digit())
            {
                let start = i;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    let mut j = i + 1;
                    if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                        j += 1;
                    }
                    if j < b.len() && b[j].is_ascii_digit() {
                        i = j;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                let text = &lx.src[start..i];
                let v: f64 = text.parse().map_err(|_| ParseError {
                    span: start..i,
                    message: format!("malformed number '{text}'"),
                })?;
                lx.toks.push((Tok::Num(v), start..i));
            } else if c.is_ascii_alphabetic() || c == '_' {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                lx.toks
                    .push((Tok::Name(lx.src[start..i].to_string()), start..i));
            } else if "+-*/^(),[]".contains(c) {
                lx.toks.push((Tok::Op(c), i..i + 1));
                i += 1;
            } else {
                let ch = lx.src[i..].chars().next().unwrap_or('?');
                return Err(ParseError {
                    span: i..i + ch.len_utf8(),
                    message: format!("unexpected character '{ch}'"),
                });
            }
        }
        // `**` is accepted as a synonym of `^` (Python habit).
        let mut out: Vec<(Tok, Range<usize>)> = Vec::with_capacity(lx.toks.len() + 1);
        for (t, s) in lx.toks {
            if t == Tok::Op('*') {
                if let Some((Tok::Op('*'), ps)) = out.last() {
                    if ps.end == s.start {
                        let start = ps.start;
                        out.pop();
                        out.push((Tok::Op('^'), start..s.end));
                        continue;
                    }
                }
            }
            out.push((t, s));
        }
        out.push((Tok::End, src.len()..src.len()));
        Ok(out)
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, Range<usize>)>,
    pos: usize,
    /// Current nesting level (parentheses, arguments, indices, exponents).
    depth: usize,
}

/// Parses one expression string into a surface tree.
pub fn parse_expr(src: &str) -> Result<Ast, ParseError> {
    let toks = Lexer::run(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
    };
    if p.peek() == &Tok::End {
        return Err(ParseError {
            span: 0..src.len(),
            message: "empty expression".into(),
        });
    }
    let e = p.expr()?;
    match p.peek() {
        Tok::End => Ok(e),
        _ => {
            let span = p.span();
            Err(ParseError {
                message: format!(
                    "unexpected '{}' after a complete expression",
                    &src[span.clone()]
                ),
                span,
            })
        }
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn span(&self) -> Range<usize> {
        self.toks[self.pos].1.clone()
    }
    fn bump(&mut self) -> (Tok, Range<usize>) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn token_text(&self) -> String {
        match self.peek() {
            Tok::End => "end of expression".to_string(),
            _ => format!("'{}'", &self.src[self.span()]),
        }
    }
    fn expect(&mut self, c: char) -> Result<Range<usize>, ParseError> {
        if self.peek() == &Tok::Op(c) {
            Ok(self.bump().1)
        } else {
            Err(ParseError {
                span: self.span(),
                message: format!("expected '{c}', found {}", self.token_text()),
            })
        }
    }
    /// Enters one nesting level at the current token (an error past [`MAX_NESTING`]).
    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= MAX_NESTING {
            return Err(ParseError {
                span: self.span(),
                message: format!(
                    "expression nested too deeply at {}: at most {MAX_NESTING} levels of parentheses, function arguments, indices and exponents",
                    self.token_text()
                ),
            });
        }
        self.depth += 1;
        Ok(())
    }
    fn expr(&mut self) -> Result<Ast, ParseError> {
        self.chain(Self::term, |t| match t {
            Tok::Op('+') => Some(BinOp::Add),
            Tok::Op('-') => Some(BinOp::Sub),
            _ => None,
        })
    }
    fn term(&mut self) -> Result<Ast, ParseError> {
        self.chain(Self::unary, |t| match t {
            Tok::Op('*') => Some(BinOp::Mul),
            Tok::Op('/') => Some(BinOp::Div),
            _ => None,
        })
    }
    /// `operand (op operand)*` read by a loop into one flat [`AstKind::Chain`].
    fn chain(
        &mut self,
        operand: fn(&mut Self) -> Result<Ast, ParseError>,
        op_of: fn(&Tok) -> Option<BinOp>,
    ) -> Result<Ast, ParseError> {
        let first = operand(self)?;
        let mut rest = Vec::new();
        while let Some(op) = op_of(self.peek()) {
            self.bump();
            rest.push((op, operand(self)?));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        let span = first.span.start..rest.last().map_or(first.span.end, |(_, t)| t.span.end);
        Ok(Ast {
            kind: AstKind::Chain(Box::new(first), rest),
            span,
        })
    }
    /// A run of signs is read by a loop: an odd number of `-` is one negation, an even number
    /// none (`- -x` is `x`, exactly as the evaluated expression would be).
    fn unary(&mut self) -> Result<Ast, ParseError> {
        let start = self.span().start;
        let mut negative = false;
        loop {
            match self.peek() {
                Tok::Op('-') => negative = !negative,
                Tok::Op('+') => {}
                _ => break,
            }
            self.bump();
        }
        let e = self.power()?;
        if !negative {
            return Ok(e);
        }
        let span = start..e.span.end;
        Ok(Ast {
            kind: AstKind::Neg(Box::new(e)),
            span,
        })
    }
    fn power(&mut self) -> Result<Ast, ParseError> {
        let base = self.primary()?;
        if self.peek() == &Tok::Op('^') {
            // right-associative; the exponent may carry a sign: 2^-1
            self.enter()?;
            self.bump();
            let exp = self.unary()?;
            self.depth -= 1;
            return Ok(bin(BinOp::Pow, base, exp));
        }
        Ok(base)
    }
    fn primary(&mut self) -> Result<Ast, ParseError> {
        let opens = match self.peek() {
            Tok::Op('(') => true,
            Tok::Name(_) => matches!(self.toks.get(self.pos + 1), Some((Tok::Op('(' | '['), _))),
            _ => false,
        };
        if opens {
            self.enter()?;
            let r = self.primary_nested();
            self.depth -= 1;
            return r;
        }
        self.primary_nested()
    }
    fn primary_nested(&mut self) -> Result<Ast, ParseError> {
        let (tok, span) = self.bump();
        match tok {
            Tok::Num(v) => Ok(Ast {
                kind: AstKind::Num(v),
                span,
            }),
            Tok::Op('(') => {
                let e = self.expr()?;
                let close = self.expect(')')?;
                Ok(Ast {
                    kind: e.kind,
                    span: span.start..close.end,
                })
            }
            Tok::Name(name) => match self.peek() {
                Tok::Op('(') => {
                    self.bump();
                    let mut args = Vec::new();
                    if self.peek() != &Tok::Op(')') {
                        args.push(self.expr()?);
                        while self.peek() == &Tok::Op(',') {
                            self.bump();
                            args.push(self.expr()?);
                        }
                    }
                    let close = self.expect(')')?;
                    Ok(Ast {
                        kind: AstKind::Call(name, args),
                        span: span.start..close.end,
                    })
                }
                Tok::Op('[') => {
                    self.bump();
                    let mut idx = vec![self.expr()?];
                    while self.peek() == &Tok::Op(',') {
                        self.bump();
                        idx.push(self.expr()?);
                    }
                    let close = self.expect(']')?;
                    Ok(Ast {
                        kind: AstKind::Index(name, idx),
                        span: span.start..close.end,
                    })
                }
                _ => Ok(Ast {
                    kind: AstKind::Name(name),
                    span,
                }),
            },
            Tok::End => Err(ParseError {
                span,
                message: "unexpected end of expression".into(),
            }),
            Tok::Op(c) => Err(ParseError {
                span,
                message: format!("unexpected '{c}'"),
            }),
        }
    }
}

fn bin(op: BinOp, a: Ast, b: Ast) -> Ast {
    let span = a.span.start..b.span.end;
    Ast {
        kind: AstKind::Bin(op, Box::new(a), Box::new(b)),
        span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(a: &Ast) -> String {
        match &a.kind {
            AstKind::Num(v) => format!("{v}"),
            AstKind::Name(n) => n.clone(),
            AstKind::Index(n, i) => {
                format!("{n}[{}]", i.iter().map(show).collect::<Vec<_>>().join(", "))
            }
            AstKind::Call(n, args) => {
                let a: Vec<String> = args.iter().map(show).collect();
                format!("{n}({})", a.join(","))
            }
            AstKind::Neg(e) => format!("(-{})", show(e)),
            AstKind::Chain(first, rest) => {
                let mut acc = show(first);
                for (op, t) in rest {
                    acc = format!("({acc}{}{})", op_str(*op), show(t));
                }
                acc
            }
            AstKind::Bin(op, a, b) => format!("({}{}{})", show(a), op_str(*op), show(b)),
        }
    }

    fn op_str(op: BinOp) -> &'static str {
        match op {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
        }
    }

    #[test]
    fn precedence_and_associativity() {
        let p = |s: &str| show(&parse_expr(s).unwrap());
        assert_eq!(p("-x^2"), "(-(x^2))");
        assert_eq!(p("2^3^2"), "(2^(3^2))");
        assert_eq!(p("a - b - c"), "((a-b)-c)");
        assert_eq!(p("a / b * c"), "((a/b)*c)");
        assert_eq!(p("a + b * c ^ d"), "(a+(b*(c^d)))");
        assert_eq!(p("x**2"), "(x^2)");
        assert_eq!(p("2^-1"), "(2^(-1))");
        assert_eq!(p("x[i-1]*atan2(y, 1e-3)"), "(x[(i-1)]*atan2(y,0.001))");
        assert_eq!(p("x(t - tau)"), "x((t-tau))");
        assert_eq!(p("1.5e+2 + .5"), "(150+0.5)");
    }

    #[test]
    fn errors_carry_spans() {
        let e = parse_expr("x + * y").unwrap_err();
        assert_eq!(e.span, 4..5);
        let e = parse_expr("sin(x").unwrap_err();
        assert!(e.message.contains("expected ')'"), "{}", e.message);
        let e = parse_expr("x $ y").unwrap_err();
        assert_eq!(e.span, 2..3);
        assert!(parse_expr("").is_err());
        assert!(parse_expr("x y").unwrap_err().message.contains("'y'"));
    }

    #[test]
    fn long_chains_are_flat_and_nesting_is_limited() {
        let sum = vec!["x"; 100_000].join(" - ");
        let a = parse_expr(&sum).unwrap();
        assert!(matches!(&a.kind, AstKind::Chain(_, rest) if rest.len() == 99_999));
        let signs = format!("{}x", "-".repeat(100_001));
        assert!(matches!(parse_expr(&signs).unwrap().kind, AstKind::Neg(_)));
        let ok = format!("{}x{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(parse_expr(&ok).is_ok());
        let deep = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
        let e = parse_expr(&deep).unwrap_err();
        assert_eq!(e.span, MAX_NESTING..MAX_NESTING + 1);
        assert!(
            e.message.contains("nested too deeply at '('"),
            "{}",
            e.message
        );
        let tower = vec!["2"; 1000].join("^");
        assert!(parse_expr(&tower).unwrap_err().message.contains("at '^'"));
        let calls = format!("{}x{}", "sin(".repeat(1000), ")".repeat(1000));
        assert!(parse_expr(&calls).unwrap_err().message.contains("at 'sin'"));
    }
}
