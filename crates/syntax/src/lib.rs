//! The voxcalc formula dialect's syntax: spans, tokens, the parser, the AST and diagnostics.
//!
//! Entry point: [`parse`] turns formula text into an [`ast::Expr`] plus every error found.
//! The parser never gives up: a broken formula still yields a tree (with
//! [`ast::ExprKind::Error`] nodes) so that all its errors can be reported at once.

pub mod ast;
pub mod diagnostic;
pub mod span;

pub use diagnostic::{Diagnostic, Label, Severity};
pub use span::{Ranged, TextRange};

/// Longest formula accepted, in bytes.
pub const MAX_FORMULA_LEN: usize = 64 * 1024;
/// Deepest nesting of expressions accepted (parentheses, calls, operators).
pub const MAX_NESTING_DEPTH: usize = 200;
