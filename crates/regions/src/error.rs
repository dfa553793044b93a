//! The error type of the crate: every message names the file or the argument at fault.

use std::fmt;
use std::path::Path;

use voxcalc_nifti::NiftiError;

/// What kind of problem a [`RegionError`] reports, for callers and tests that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionErrorKind {
    /// A NIfTI file could not be read or written.
    Image,
    /// An image has the wrong number of dimensions (nilearn's `DimensionError`).
    Dimension,
    /// Two images do not share their shape or affine (nilearn's `ValueError`).
    Geometry,
    /// The mask removed every label (nilearn: "No label left after applying mask").
    NoLabelLeft,
    /// The signals have a different number of columns than there are labels.
    ColumnCount,
    /// A `.tsv`/`.csv` header row does not name the atlas's labels.
    HeaderRow,
    /// A signals array or file is malformed or has an unsupported dtype.
    Signals,
    /// A signals file could not be read or written.
    Io,
}

/// An error from region signal extraction or reconstruction.
#[derive(Debug)]
pub struct RegionError {
    kind: RegionErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl RegionError {
    /// An error of `kind` with a complete, human-readable message.
    pub fn new(kind: RegionErrorKind, message: impl Into<String>) -> RegionError {
        RegionError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An operating-system error about `path`; `doing` says what was attempted.
    pub fn io(path: &Path, doing: &str, err: std::io::Error) -> RegionError {
        RegionError {
            kind: RegionErrorKind::Io,
            message: format!("{}: {doing}: {err}", path.display()),
            source: None,
        }
    }

    /// A malformed signals file `path`.
    pub fn signals_file(path: &Path, detail: impl fmt::Display) -> RegionError {
        RegionError::new(
            RegionErrorKind::Signals,
            format!("{}: {detail}", path.display()),
        )
    }

    /// The kind of problem.
    pub fn kind(&self) -> RegionErrorKind {
        self.kind
    }

    /// The NIfTI error behind an [`RegionErrorKind::Image`] error.
    pub fn nifti_error(&self) -> Option<&NiftiError> {
        self.source.as_ref()?.downcast_ref::<NiftiError>()
    }
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Display` already holds the whole message, so no `source` is chained (it would print twice).
impl std::error::Error for RegionError {}

impl From<NiftiError> for RegionError {
    fn from(err: NiftiError) -> RegionError {
        RegionError {
            kind: RegionErrorKind::Image,
            message: err.to_string(),
            source: Some(Box::new(err)),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, RegionError>;
