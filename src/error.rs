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
}

impl Error {
    /// A formula error from diagnostics over `source`.
    pub fn formula(source: &str, diagnostics: Vec<Diagnostic>) -> Error {
        Error::Formula {
            source: source.to_string(),
            diagnostics,
        }
    }

    /// The formula diagnostics, when this is a formula error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Formula { diagnostics, .. } => diagnostics,
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
