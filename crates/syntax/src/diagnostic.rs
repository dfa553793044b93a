//! The one diagnostic type every phase converts its errors into.
//!
//! Phases keep their own error enums (kind + range); each converts to [`Diagnostic`]. Rendering
//! to a rustc-style frame with a caret lives here too, as plain text, so that the library error's
//! `Display` can show it; only the CLI/REPL add colour.

use crate::span::TextRange;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// A source range with a short message drawn under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub range: TextRange,
    pub message: String,
}

/// A message about the formula, pointing at one primary range and optionally more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable machine-readable code, e.g. `"E0101"`, documented in docs/language.md.
    pub code: &'static str,
    /// The headline: what is wrong, in one sentence without a trailing period.
    pub message: String,
    /// Where: the primary label is drawn with `^`.
    pub primary: Label,
    /// Other places that explain the error (e.g. each operand of a failed broadcast), drawn with `-`.
    pub secondary: Vec<Label>,
    /// Extra facts (`= note: ...`).
    pub notes: Vec<String>,
    /// How to fix it, when known (`= help: ...`).
    pub help: Option<String>,
}
