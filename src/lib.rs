//! voxcalc: numpy-dialect formulas over NIfTI volumes, compiled to native kernels.
//!
//! This crate is the library facade, the API boundary promised to users (see
//! docs/ARCHITECTURE.md): the workspace crates behind it may change freely.
#![deny(missing_docs)]

mod error;
mod formula;
mod image;

pub use error::Error;
pub use formula::{math_img, EvalOptions, Evaluated, Formula, InputSpec, Timings, Written};
pub use image::Image;
pub use voxcalc_nifti::{ErrorKind as ImageErrorKind, Header, WriteOptions};
/// Region signals to voxels and back through a label atlas (nilearn's `signals_to_img_labels`
/// and `img_to_signals_labels`): [`regions::LabelMap`], [`regions::Signals`], signals files.
pub use voxcalc_regions as regions;
pub use voxcalc_regions::{img_to_signals_labels, signals_to_img_labels};
pub use voxcalc_runtime::{NoProgress, Progress};
pub use voxcalc_syntax::{Diagnostic, Severity};
pub use voxcalc_types::DType;
