//! The one error type of the facade. Its `Display` shows formula errors as caret frames.

use std::fmt;

use voxcalc_nifti::NiftiError;
use voxcalc_syntax::diagnostic::render;
use voxcalc_syntax::{Diagnostic, Severity};

/// Everything that can go wrong in a voxcalc call.
#[derive(Debug)]
pub enum Error {
    /// The formula is not valid for these inputs: syntax, names, dtypes or shapes. Holds the
    /// formula text so that `Display` can draw the frames.
    Formula {
        /// The formula as given.
        source: String,
        /// Every problem found, in source order.
        diagnostics: Vec<Diagnostic>,
    },
    /// A file could not be read or written, or is not valid NIfTI.
    Image(NiftiError),
    /// The inputs do not fit together or the call is inconsistent (names, geometry, options).
    Usage(String),
    /// The evaluation was cancelled through its progress sink (e.g. Ctrl-C in the REPL).
    Cancelled,
    /// The formula is valid but numpy raises an error for these input values (an integer
    /// power with a negative exponent, the maximum of an empty selection, ...). Holds the
    /// formula text so that `Display` can draw the frame.
    Evaluation {
        /// The formula as given.
        source: String,
        /// The error, pointing at the operation that raised it (boxed: it is large, and
        /// `Result<_, Error>` is returned everywhere).
        diagnostic: Box<Diagnostic>,
    },
}

impl Error {
    /// A formula error from diagnostics over `source`.
    pub fn formula(source: &str, diagnostics: Vec<Diagnostic>) -> Error {
        Error::Formula {
            source: source.to_string(),
            diagnostics,
        }
    }

    /// A run-time error of the formula over `source`.
    pub fn evaluation(source: &str, diagnostic: Diagnostic) -> Error {
        Error::Evaluation {
            source: source.to_string(),
            diagnostic: Box::new(diagnostic),
        }
    }

    /// The formula diagnostics, when this is a formula or evaluation error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Formula { diagnostics, .. } => diagnostics,
            Error::Evaluation { diagnostic, .. } => std::slice::from_ref(&**diagnostic),
            _ => &[],
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Formula {
                source,
                diagnostics,
            } => {
                let errors: Vec<&Diagnostic> = diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .collect();
                for (idx, diag) in errors.iter().enumerate() {
                    if idx > 0 {
                        writeln!(f)?;
                    }
                    f.write_str(render(source, diag).trim_end())?;
                }
                Ok(())
            }
            Error::Image(err) => write!(f, "{err}"),
            Error::Usage(message) => f.write_str(message),
            Error::Cancelled => f.write_str("cancelled"),
            Error::Evaluation { source, diagnostic } => {
                f.write_str(render(source, diagnostic).trim_end())
            }
        }
    }
}

/// `Display` already includes the underlying I/O or NIfTI message, so no `source` is chained
/// (a chained source would print the same text twice).
impl std::error::Error for Error {}

impl From<NiftiError> for Error {
    fn from(err: NiftiError) -> Error {
        Error::Image(err)
    }
}
