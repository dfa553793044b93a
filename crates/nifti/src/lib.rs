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
//! * [`OutputStream`]: the same outputs written as a stream (data chunks in order, header at
//!   `finish`) with bounded memory: plain data go straight to the file, gzipped data are
//!   compressed in parallel batches by a background thread. Both writers share one gzip
//!   writer and produce identical files.
//!
//! Every failure is a [`NiftiError`] that names the file and, for header problems, the field.
//!
//! The `nifti` crate (0.18) reads NIfTI-1 only, detects gzip by file name, cannot map files and
//! writes whole in-memory arrays, so voxcalc has its own reader and writer; the tests use the
//! `nifti` crate as an independent check of our NIfTI-1 header parsing.
//!
//! # Fidelity to nibabel 5.4
//!
//! Tested against nibabel on every storage dtype x byte order x NIfTI-1/2 x `.nii`/`.nii.gz`/
//! `.hdr`+`.img` x scaled/unscaled (tests/nibabel_fixtures.rs) and the other way round
//! (tests/nibabel_reads_ours.rs). Values, shapes and affines are bit-exact, the qform included:
//! nibabel decodes the quaternion in 80-bit long double, which [`Header::qform`] emulates.
//!
//! * Shape is `dim[1..=dim[0]]` with trailing 1s kept, as nibabel's `get_data_shape()`.
//! * Scaling: none when `scl_slope` is 0 or not finite (the intercept is then ignored) or when
//!   `(slope, inter) == (1, 0)`; otherwise float64 `raw * slope + inter`, the multiply skipped
//!   for slope 1 and the add for inter 0 (so `-0.0` stays `-0.0`). A valid slope with a
//!   non-finite intercept is an error, as in nibabel.
//! * nibabel's silent load-time fixes are applied (zero voxel sizes become 1, negative ones
//!   positive, a qfac other than +-1 becomes 1, unknown xform codes 0), since they change the
//!   affine.
//! * Stricter than nibabel, as bad-file checks: a `bitpix` that disagrees with the datatype
//!   (nibabel fixes it silently), zero dims (nibabel reads an empty array), negative dims (this
//!   includes FreeSurfer's `dim[1] == -1` large-vector hack).
//! * `dim[0] == 0` is a 0-d image (shape `()`, one element), which is how nibabel writes a 0-d
//!   array (nilearn's `math_img("np.mean(img)")`); nibabel 5.4 itself loads such a file as
//!   shape `(0,)` with no data, losing the element it wrote.
//! * Output is always native-endian (nibabel keeps a copied header's byte order); values and
//!   header fields are the same.
//!
//! # Performance
//!
//! `cargo bench --bench nifti_io` (benches/nifti_io.rs) times voxcalc and nibabel alternately
//! on the same files. Measured 2026-11-22 on the idle 2-core development machine (load 1.2),
//! medians of 3 alternating runs, 91x109x91x200 int16 = 361 MB:
//!
//! | operation | voxcalc wall s | nibabel wall s | ratio | voxcalc CPU s | nibabel CPU s |
//! |---|---|---|---|---|---|
//! | read 256^3 int16 `.nii` (mapped, no copy) | 0.0001 | 0.0006 | 6.9x | 0.00 | 0.00 |
//! | read the nibabel-written `.nii.gz` (167.2 MB) | 0.71 | 2.07 | 2.9x | 0.79 | 2.07 |
//! | write it as `.nii.gz`, level 1 (163.8 MB) | 1.30 | 4.61 | 3.5x | 2.46 | 4.50 |
//! | read that voxcalc-written `.nii.gz` (parallel) | 0.43 | 2.52 | 5.9x | 0.81 | 2.52 |
//! | stream it volume by volume ([`OutputStream`]) | 1.30 | 4.58 | 3.5x | 2.32 | 4.47 |
//!
//! Compression is libdeflate's (the `libdeflater` crate): its level 1 writes files slightly
//! smaller than zlib's level 1, which nibabel uses (int16 above: 163.8 MB vs 167.2 MB; float64
//! z-scores: 0.879 vs 0.886 of the raw size), for under half of nibabel's CPU time on int16 and
//! about a quarter on float64 (about 120 MB/s per core; float data are mostly literals, which
//! no deflate level makes cheap). zlib-rs's level 1 was faster on int16 but wrote files 40%
//! larger. Reading a `.nii` maps it (no copy, independent of size). A single-member `.nii.gz`
//! (nibabel's) is inflated by one libdeflate call straight into the final buffer, whose size
//! the header gives (ISIZE and CRC checked): about 1.5x less CPU than zlib-rs streaming. A
//! single deflate stream cannot be inflated in parallel; voxcalc's own files are independent
//! 1 MiB members, inflated on all cores. Other files (several members, past the memory budget)
//! stream through zlib-rs. Writing `.nii.gz` compresses 1 MiB blocks as independent gzip
//! members on all cores, overlapped with writing the previous batch.
#![deny(missing_docs)]

mod datatype;
pub mod deflate;
mod error;
mod gz;
mod header;
mod paths;
mod pinflate;
mod read;
mod stream;
mod write;

pub use datatype::{code_from_dtype, dtype_from_code, CodeProblem};
pub use error::{ErrorKind, NiftiError, Result};
pub use header::{
    detect_version, Affine, ByteOrder, Extension, Header, Nifti1Legacy, NiftiVersion, Scaling,
    DEFAULT_MAX_DATA_BYTES, NIFTI1_HEADER_SIZE, NIFTI2_HEADER_SIZE,
};
pub use paths::{check_output_not_input, image_files, output_files, same_file, ImageFiles};
pub use read::{DataSource, NiftiImage, RawView, ReadOptions};
pub use stream::OutputStream;
pub use write::{native_range, OutputImage, WriteOptions};
