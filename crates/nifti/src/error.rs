//! The one error type of the crate: every failure names the file and, where a header field is at
//! fault, the field.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, without the file name: lets callers and tests match on the kind of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The operating system refused an operation (open, read, write, rename, map).
    Io,
    /// The file ends before the header, the extensions or the data it declares.
    Truncated,
    /// `sizeof_hdr` is neither 348 nor 540 in either byte order.
    BadSizeofHdr,
    /// The magic string is not a NIfTI-1 or NIfTI-2 magic.
    BadMagic,
    /// A header field holds a value that cannot describe a volume (negative dims, `dim[0]` out of
    /// range, a `vox_offset` inside the header, a non-finite intercept, ...).
    BadField,
    /// The dims multiply to more voxels or bytes than the address space or the size bound allows.
    TooLarge,
    /// A datatype code that NIfTI defines but voxcalc does not handle (complex, RGB, float128).
    UnsupportedDatatype,
    /// A datatype code that NIfTI does not define.
    UnknownDatatype,
    /// `bitpix` disagrees with the datatype.
    BitpixMismatch,
    /// The gzip stream is corrupt (bad header, bad deflate data, CRC mismatch).
    Gzip,
    /// The extension list after the header is malformed.
    BadExtension,
    /// The output path names a file that is also an input.
    OutputIsInput,
    /// The file name has no NIfTI extension (`.nii`, `.nii.gz`, `.hdr`, `.img`, ...).
    BadPath,
    /// A value to be written does not fit the chosen header format (e.g. a dim above 32767 in
    /// NIfTI-1) or the output buffer does not match the header.
    CannotWrite,
}

/// An error reading or writing a NIfTI image. `Display` names the file and, for header
/// problems, the field (e.g. `dim[3]`, `vox_offset`, `datatype`).
#[derive(Debug)]
pub struct NiftiError {
    kind: ErrorKind,
    path: PathBuf,
    field: Option<&'static str>,
    detail: String,
    source: Option<io::Error>,
}

impl NiftiError {
    /// Builds an error of `kind` about `path` with a human-readable `detail`.
    pub fn new(kind: ErrorKind, path: &Path, detail: impl Into<String>) -> NiftiError {
        NiftiError {
            kind,
            path: path.to_path_buf(),
            field: None,
            detail: detail.into(),
            source: None,
        }
    }

    /// Builds an error about the header field `field` of `path`.
    pub fn field(
        kind: ErrorKind,
        path: &Path,
        field: &'static str,
        detail: impl Into<String>,
    ) -> NiftiError {
        NiftiError {
            kind,
            path: path.to_path_buf(),
            field: Some(field),
            detail: detail.into(),
            source: None,
        }
    }

    /// Wraps an operating-system error; `doing` says what was attempted ("opening", "renaming").
    pub fn io(path: &Path, doing: &str, source: io::Error) -> NiftiError {
        NiftiError {
            kind: ErrorKind::Io,
            path: path.to_path_buf(),
            field: None,
            detail: format!("{doing}: {source}"),
            source: Some(source),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header field at fault, when one is.
    pub fn field_name(&self) -> Option<&'static str> {
        self.field
    }
}

impl fmt::Display for NiftiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        if let Some(field) = self.field {
            write!(f, "header field {field}: ")?;
        }
        f.write_str(&self.detail)
    }
}

impl std::error::Error for NiftiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, NiftiError>;
