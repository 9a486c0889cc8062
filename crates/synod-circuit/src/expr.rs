//! Expressions over encrypted columns, and their text syntax.
//!
//! ```text
//! expr    := term (("+" | "-") term)*
//! term    := unary ("*" unary)*
//! unary   := "-" unary | primary
//! primary := INTEGER | "[" INTEGER ("," INTEGER)* "]" | PARTY "." COLUMN
//!          | NAME "(" expr ("," expr)* ")" | "(" expr ")"
//! ```
//!
//! Functions inside an expression: `sum(e)` (over all rows, giving an
//! aggregate), `rotate(e, k)`, `inner_product(a, b)` (= `sum(a * b)`),
//! `weighted_sum(e, [w…])` (= `sum(e * [w…])`). At the top of an output only:
//! `mean(e)`, `variance(e)` and `covariance(a, b)`, whose division is finished
//! in the clear on decrypted sums.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A column of one party: `party.column`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ColumnRef {
    /// Party name as declared in the inputs.
    pub party: String,
    /// Column name.
    pub column: String,
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.party, self.column)
    }
}

/// An expression evaluated on ciphertexts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// An input column (one value per row).
    Column(ColumnRef),
    /// A public integer constant (only as a factor).
    Const(i64),
    /// A public integer vector, one value per row (only as a factor).
    Vector(Vec<i64>),
    /// Elementwise sum.
    Add(Box<Expr>, Box<Expr>),
    /// Elementwise difference.
    Sub(Box<Expr>, Box<Expr>),
    /// Negation.
    Neg(Box<Expr>),
    /// Elementwise product (relinearised when both sides are encrypted).
    Mul(Box<Expr>, Box<Expr>),
    /// Cyclic left rotation of the first SIMD row by `k` slots.
    Rotate(Box<Expr>, usize),
    /// Sum over all rows: an aggregate, replicated in every slot.
    Sum(Box<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c) => write!(f, "{c}"),
            Expr::Const(c) => write!(f, "{c}"),
            Expr::Vector(v) => {
                if let (Some(a), Some(b), true) = (v.first(), v.get(1), v.len() > 4) {
                    write!(f, "[{a}, {b}, … ({} values)]", v.len())
                } else {
                    let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                    write!(f, "[{}]", items.join(", "))
                }
            }
            Expr::Add(a, b) => write!(f, "({a} + {b})"),
            Expr::Sub(a, b) => write!(f, "({a} - {b})"),
            Expr::Neg(a) => write!(f, "-{a}"),
            Expr::Mul(a, b) => write!(f, "{a} * {b}"),
            Expr::Rotate(a, k) => write!(f, "rotate({a}, {k})"),
            Expr::Sum(a) => write!(f, "sum({a})"),
        }
    }
}

/// What an output computes: an encrypted expression, or a library statistic
/// finished in the clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputExpr {
    /// The decrypted value of the expression itself.
    Plain(Expr),
    /// `sum(e) / rows`.
    Mean(Expr),
    /// `sum(e²)/rows − (sum(e)/rows)²` (population variance).
    Variance(Expr),
    /// `sum(a·b)/rows − sum(a)·sum(b)/rows²` (population covariance).
    Covariance(Expr, Expr),
}

/// Parses the text of an output.
pub fn parse_output(text: &str) -> Result<OutputExpr, String> {
    let mut p = Parser::new(text);
    let tree = p.expr()?;
    p.skip_ws();
    if let Some(c) = p.chars.get(p.pos) {
        return Err(format!("unexpected {c:?} at column {}", p.pos + 1));
    }
    lower_top(tree)
}

#[derive(Debug, Clone)]
enum Tree {
    Int(i64),
    Vector(Vec<i64>),
    Column(ColumnRef),
    Call(String, Vec<Tree>),
    Add(Box<Tree>, Box<Tree>),
    Sub(Box<Tree>, Box<Tree>),
    Neg(Box<Tree>),
    Mul(Box<Tree>, Box<Tree>),
}

fn lower_top(t: Tree) -> Result<OutputExpr, String> {
    match t {
        Tree::Call(name, args) if name == "mean" => Ok(OutputExpr::Mean(lower(one(&name, args)?)?)),
        Tree::Call(name, args) if name == "variance" => {
            Ok(OutputExpr::Variance(lower(one(&name, args)?)?))
        }
        Tree::Call(name, args) if name == "covariance" => {
            let (a, b) = two(&name, args)?;
            Ok(OutputExpr::Covariance(lower(a)?, lower(b)?))
        }
        other => Ok(OutputExpr::Plain(lower(other)?)),
    }
}

fn one(name: &str, args: Vec<Tree>) -> Result<Tree, String> {
    let mut it = args.into_iter();
    match (it.next(), it.next()) {
        (Some(a), None) => Ok(a),
        _ => Err(format!("{name}() takes one argument")),
    }
}

fn two(name: &str, args: Vec<Tree>) -> Result<(Tree, Tree), String> {
    let mut it = args.into_iter();
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), None) => Ok((a, b)),
        _ => Err(format!("{name}() takes two arguments")),
    }
}

fn lower(t: Tree) -> Result<Expr, String> {
    Ok(match t {
        Tree::Int(i) => Expr::Const(i),
        Tree::Vector(v) => Expr::Vector(v),
        Tree::Column(c) => Expr::Column(c),
        Tree::Add(a, b) => Expr::Add(Box::new(lower(*a)?), Box::new(lower(*b)?)),
        Tree::Sub(a, b) => Expr::Sub(Box::new(lower(*a)?), Box::new(lower(*b)?)),
        Tree::Neg(a) => Expr::Neg(Box::new(lower(*a)?)),
        Tree::Mul(a, b) => Expr::Mul(Box::new(lower(*a)?), Box::new(lower(*b)?)),
        Tree::Call(name, args) => match name.as_str() {
            "sum" => Expr::Sum(Box::new(lower(one(&name, args)?)?)),
            "inner_product" => {
                let (a, b) = two(&name, args)?;
                Expr::Sum(Box::new(Expr::Mul(
                    Box::new(lower(a)?),
                    Box::new(lower(b)?),
                )))
            }
            "weighted_sum" => {
                let (a, w) = two(&name, args)?;
                let w = match w {
                    Tree::Vector(v) => Expr::Vector(v),
                    Tree::Int(c) => Expr::Const(c),
                    _ => return Err("weighted_sum() takes public weights [w1, w2, …]".into()),
                };
                Expr::Sum(Box::new(Expr::Mul(Box::new(lower(a)?), Box::new(w))))
            }
            "rotate" => {
                let (a, k) = two(&name, args)?;
                match k {
                    Tree::Int(k) if k > 0 => Expr::Rotate(Box::new(lower(a)?), k as usize),
                    _ => return Err("rotate(e, k) needs a positive integer k".into()),
                }
            }
            "mean" | "variance" | "covariance" => {
                return Err(format!(
                    "{name}() is finished in the clear and can only be a whole output"
                ))
            }
            other => {
                return Err(format!(
                    "unknown function {other}() (known: sum, mean, variance, covariance, \
                     inner_product, weighted_sum, rotate)"
                ))
            }
        },
    })
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn new(text: &str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("{c:?}")))
        }
    }

    fn unexpected(&mut self, wanted: &str) -> String {
        match self.peek() {
            Some(c) => format!("expected {wanted} at column {}, found {c:?}", self.pos + 1),
            None => format!("expected {wanted} at the end"),
        }
    }

    fn expr(&mut self) -> Result<Tree, String> {
        let mut acc = self.term()?;
        loop {
            if self.eat('+') {
                acc = Tree::Add(Box::new(acc), Box::new(self.term()?));
            } else if self.eat('-') {
                acc = Tree::Sub(Box::new(acc), Box::new(self.term()?));
            } else {
                return Ok(acc);
            }
        }
    }

    fn term(&mut self) -> Result<Tree, String> {
        let mut acc = self.unary()?;
        while self.eat('*') {
            acc = Tree::Mul(Box::new(acc), Box::new(self.unary()?));
        }
        Ok(acc)
    }

    fn unary(&mut self) -> Result<Tree, String> {
        if self.eat('-') {
            // A negative literal stays a literal.
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Ok(Tree::Int(-self.integer()?));
            }
            return Ok(Tree::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn integer(&mut self) -> Result<i64, String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_digit() || *c == '_')
        {
            self.pos += 1;
        }
        let text: String = self
            .chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .filter(|c| **c != '_')
            .collect();
        if self.chars.get(self.pos) == Some(&'.')
            && self
                .chars
                .get(self.pos + 1)
                .is_some_and(|c| c.is_ascii_digit())
        {
            return Err(format!(
                "public constants must be integers (column {}); scale reals through the input's `scale`",
                start + 1
            ));
        }
        text.parse::<i64>()
            .map_err(|e| format!("bad integer at column {}: {e}", start + 1))
    }

    fn signed_integer(&mut self) -> Result<i64, String> {
        if self.eat('-') {
            Ok(-self.integer()?)
        } else {
            self.integer()
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| {
            self.chars
                .get(start..self.pos)
                .unwrap_or_default()
                .iter()
                .collect()
        })
    }

    fn primary(&mut self) -> Result<Tree, String> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect(')')?;
                Ok(e)
            }
            Some('[') => {
                self.pos += 1;
                let mut v = vec![self.signed_integer()?];
                while self.eat(',') {
                    v.push(self.signed_integer()?);
                }
                self.expect(']')?;
                Ok(Tree::Vector(v))
            }
            Some(c) if c.is_ascii_digit() => Ok(Tree::Int(self.integer()?)),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let name = self.ident().unwrap_or_default();
                if self.eat('(') {
                    let mut args = vec![self.expr()?];
                    while self.eat(',') {
                        args.push(self.expr()?);
                    }
                    self.expect(')')?;
                    Ok(Tree::Call(name, args))
                } else if self.eat('.') {
                    let column = self
                        .ident()
                        .ok_or_else(|| self.unexpected("a column name"))?;
                    Ok(Tree::Column(ColumnRef {
                        party: name,
                        column,
                    }))
                } else {
                    Err(format!(
                        "{name:?} is neither a function call nor a column (write party.column)"
                    ))
                }
            }
            _ => Err(self.unexpected("an expression")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn col(p: &str, c: &str) -> Box<Expr> {
        Box::new(Expr::Column(ColumnRef {
            party: p.into(),
            column: c.into(),
        }))
    }

    #[test]
    fn parses_library_functions() {
        assert_eq!(
            parse_output("inner_product(p1.x, p2.x)").unwrap(),
            OutputExpr::Plain(Expr::Sum(Box::new(Expr::Mul(
                col("p1", "x"),
                col("p2", "x")
            ))))
        );
        assert_eq!(
            parse_output(" mean( p1.x ) ").unwrap(),
            OutputExpr::Mean(*col("p1", "x"))
        );
        assert_eq!(
            parse_output("sum(p1.x - -3 * p2.y)").unwrap(),
            OutputExpr::Plain(Expr::Sum(Box::new(Expr::Sub(
                col("p1", "x"),
                Box::new(Expr::Mul(Box::new(Expr::Const(-3)), col("p2", "y")))
            ))))
        );
        assert!(matches!(
            parse_output("weighted_sum(a.x, [1, -2, 3])").unwrap(),
            OutputExpr::Plain(Expr::Sum(_))
        ));
        assert!(matches!(
            parse_output("covariance(a.x, b.y)").unwrap(),
            OutputExpr::Covariance(_, _)
        ));
    }

    #[test]
    fn errors_say_where() {
        assert!(parse_output("sum(p1.x").unwrap_err().contains("')'"));
        assert!(parse_output("p1.x + ")
            .unwrap_err()
            .contains("expected an expression"));
        assert!(parse_output("sum(mean(p1.x))")
            .unwrap_err()
            .contains("whole output"));
        assert!(parse_output("median(p1.x)")
            .unwrap_err()
            .contains("unknown function"));
        assert!(parse_output("1.5 * p1.x").unwrap_err().contains("integers"));
        assert!(parse_output("p1.x p2.x").unwrap_err().contains("column 6"));
    }
}
