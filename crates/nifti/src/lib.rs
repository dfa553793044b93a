//! NIfTI-1 and NIfTI-2 image I/O for voxcalc.
//!
//! * [`Header`]: our own reader and writer of 348-byte NIfTI-1 and 540-byte NIfTI-2 headers in
//!   either byte order, with extensions, nibabel's load-time fixes, its affine
//!   ([`Header::affine`]), scaling ([`Header::scaling`]) and output header policies
//!   ([`Header::fresh`], [`Header::copied_for_output`]).
//! * [`NiftiImage`]: an opened image whose data are a [`RawView`] in the storage dtype: `.nii`
//!   files are memory-mapped with no copy; gzipped files (detected by magic bytes) are inflated
//!   once, streaming, into memory or, past [`ReadOptions::memory_budget`], into a mapped temp
//!   file.
//! * [`OutputImage`]: an output the caller fills in place and then [`OutputImage::finish`]es;
//!   it is written to a temp file beside the target and renamed, so a failure never leaves a
//!   partial file and an input being read is never overwritten. `.nii.gz` output is compressed
//!   in parallel blocks (independent gzip members).
//!
//! Every failure is a [`NiftiError`] that names the file and, for header problems, the field.
//!
//! The `nifti` crate (0.18) reads NIfTI-1 only, detects gzip by file name, cannot map files and
//! writes whole in-memory arrays, so voxcalc has its own reader and writer; the tests use the
//! `nifti` crate as an independent check of our NIfTI-1 header parsing.
#![deny(missing_docs)]

mod datatype;
mod error;
mod gz;
mod header;
mod paths;
mod read;
mod write;

pub use datatype::{code_from_dtype, dtype_from_code, CodeProblem};
pub use error::{ErrorKind, NiftiError, Result};
pub use header::{
    detect_version, Affine, ByteOrder, Extension, Header, Nifti1Legacy, NiftiVersion, Scaling,
    DEFAULT_MAX_DATA_BYTES, NIFTI1_HEADER_SIZE, NIFTI2_HEADER_SIZE,
};
pub use paths::{check_output_not_input, image_files, output_files, same_file, ImageFiles};
pub use read::{DataSource, NiftiImage, RawView, ReadOptions};
pub use write::{OutputImage, WriteOptions};
