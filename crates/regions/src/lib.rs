//! Region signals to voxels and back through a label atlas: nilearn's `signals_to_img_labels`
//! and `img_to_signals_labels`, without its per-voxel Python loop and without quantising float
//! signals into the atlas's datatype.
//!
//! * [`LabelMap::build`] reads the label image (and mask) once: the regions are the sorted unique
//!   label values after masking, minus the background label, and every voxel maps to its region
//!   (stored as runs of consecutive voxels).
//! * [`signals_to_img_labels`] / [`LabelMap::signals_to_img`] build the image in memory (or
//!   [`LabelMap::signals_to_img_into`] into a reused buffer); [`LabelMap::write_signals_img`]
//!   streams it to a file, filling volume chunks in parallel, so memory stays a few megabytes
//!   whatever the image size. A plain `.nii` leaves all-zero blocks as holes; a `.nii.gz` at
//!   level 1 (the default, nibabel's) is coded straight from the known runs of equal values by a
//!   small fixed-Huffman deflate encoder (`deflate.rs`), other levels go through zlib-rs.
//! * [`img_to_signals_labels`] / [`LabelMap::img_to_signals`]: per-volume region means, reading
//!   the image in its storage dtype (no float64 copy).
//! * [`read_signals`] / [`write_signals`]: `.npy`, `.tsv`, `.csv` and `.txt` signals files.
//!
//! The output header is the label image's (as nilearn copies it) with the signals' dtype, no
//! scaling and `cal_min`/`cal_max` set to the data range: values are never quantised. Signals
//! whose column count differs from the number of labels are refused with both numbers (nilearn
//! raises an `IndexError` for too few and silently ignores extra columns).
#![deny(missing_docs)]

mod deflate;
mod error;
mod io;
mod labels;
mod npy;
mod signals;
mod to_img;
mod to_signals;

pub use error::{RegionError, RegionErrorKind, Result};
pub use io::{
    check_header_row, parse_text, read_signals, to_f64_rows, to_text, write_signals, SignalsFile,
    SignalsFormat,
};
pub use labels::{format_label, LabelMap, Run, AFFINE_TOLERANCE, NO_REGION};
pub use npy::{parse_npy, to_npy_bytes};
pub use signals::{Element, Order, Signals, Values};
pub use to_img::{signals_to_img_labels, RegionImage};
pub use to_signals::{img_to_signals_labels, RegionSignals};
/// How images are written (gzip level, block size), re-exported from the NIfTI crate.
pub use voxcalc_nifti::WriteOptions;
