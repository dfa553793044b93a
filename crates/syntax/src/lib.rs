//! The voxcalc formula dialect's syntax: spans, tokens, the parser, the AST and diagnostics.
//!
//! Entry point: [`parse`] turns formula text into an [`ast::Expr`] plus every error found.
//! The parser never gives up: a broken formula still yields a tree (with
//! [`ast::ExprKind::Error`] nodes) so that all its errors can be reported at once.
//! Each [`ParseError`] converts to a [`Diagnostic`], which [`diagnostic::render`] draws as a
//! rustc-style frame. The tree knows nothing of dtypes, shapes or which names exist.

pub mod ast;
pub mod diagnostic;
pub mod error;
pub mod lexer;
pub mod parser;
pub mod pretty;
pub mod span;

pub use diagnostic::{render, Diagnostic, Label, RenderOptions, Severity};
pub use error::{NumberError, ParseError, ParseErrorKind};
pub use parser::{parse, Parse};
pub use span::{Ranged, TextRange};

/// Longest formula accepted, in bytes.
pub const MAX_FORMULA_LEN: usize = 64 * 1024;
/// Deepest nesting of expressions accepted (parentheses, calls, operators): both the parser's
/// recursion and the height of the tree are bounded by it.
pub const MAX_NESTING_DEPTH: usize = 200;
