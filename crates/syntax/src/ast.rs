//! The syntax tree of a formula: Python expression syntax, nothing more.
//!
//! The tree knows nothing of dtypes, shapes or which names exist: that is the checker's job.
//! Every node carries the [`TextRange`] it was parsed from. A node that could not be parsed is
//! [`ExprKind::Error`]; the parser records the reason in its error list and carries on.

use crate::span::{Ranged, TextRange};

/// An expression with its source range.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub range: TextRange,
}

impl Ranged for Expr {
    fn range(&self) -> TextRange {
        self.range
    }
}

/// An identifier with its source range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub id: String,
    pub range: TextRange,
}

impl Ranged for Name {
    fn range(&self) -> TextRange {
        self.range
    }
}

/// The kinds of expression in the dialect (a subset of Python 3 expressions).
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An identifier such as `img` or `np`.
    Name(Name),
    /// A non-negative integer literal (a sign is a unary operator). Literals beyond `u128` are a
    /// lexer error.
    Int(u128),
    /// A float literal (`1.5`, `.5`, `1.`, `1e-3`). Literals that overflow are `inf`, as in Python.
    Float(f64),
    /// A string literal, quotes removed and escapes resolved (`'linear'`, `"float32"`).
    Str(String),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// `...`
    Ellipsis,
    /// `(a, b)` or `a, b` (inside a subscript or call argument only when parenthesised).
    Tuple(Vec<Expr>),
    /// `[a, b]`
    List(Vec<Expr>),
    /// `-x`, `+x`, `~x`, `not x`.
    Unary { op: UnaryOp, operand: Box<Expr> },
    /// Arithmetic and bitwise binary operators.
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// A comparison, possibly chained as Python allows: `a < b <= c` has two `ops`.
    Compare {
        left: Box<Expr>,
        ops: Vec<(CmpOp, Expr)>,
    },
    /// `a and b and c` / `a or b` (flattened like Python's `BoolOp`).
    BoolOp { op: BoolOp, values: Vec<Expr> },
    /// `body if test else orelse`.
    IfExp {
        body: Box<Expr>,
        test: Box<Expr>,
        orelse: Box<Expr>,
    },
    /// `func(args..., name=value...)`.
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
        keywords: Vec<Keyword>,
    },
    /// `value.attr`
    Attribute { value: Box<Expr>, attr: Name },
    /// `value[items]`; `items` has one element per comma-separated index (`x[..., 0]` has two).
    Subscript { value: Box<Expr>, items: Vec<Expr> },
    /// `lower:upper:step` inside a subscript; each part optional.
    Slice {
        lower: Option<Box<Expr>>,
        upper: Option<Box<Expr>>,
        step: Option<Box<Expr>>,
    },
    /// A placeholder where parsing failed; the error is in the parse result's error list.
    Error,
}

/// `name=value` in a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Keyword {
    pub name: Name,
    pub value: Expr,
    pub range: TextRange,
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-`
    Neg,
    /// `+`
    Pos,
    /// `~`
    Invert,
    /// `not`
    Not,
}

/// Infix arithmetic and bitwise operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `//`
    FloorDiv,
    /// `%`
    Mod,
    /// `**`
    Pow,
    /// `@`
    MatMul,
    /// `<<`
    LShift,
    /// `>>`
    RShift,
    /// `&`
    BitAnd,
    /// `|`
    BitOr,
    /// `^`
    BitXor,
}

/// Comparison operators (`in`, `not in`, `is`, `is not` included so they can be refused clearly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtE,
    Gt,
    GtE,
    In,
    NotIn,
    Is,
    IsNot,
}

/// `and` / `or`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BoolOp {
    And,
    Or,
}

impl Ranged for Keyword {
    fn range(&self) -> TextRange {
        self.range
    }
}

/// The compact S-expression form of a tree (see [`crate::pretty`]).
pub use crate::pretty::pretty;
