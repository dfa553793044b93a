//! voxcalc: numpy-dialect formulas over NIfTI volumes, compiled to native kernels.
//!
//! This crate is the library facade, the API boundary promised to users (see
//! docs/ARCHITECTURE.md): the workspace crates behind it may change freely.
#![deny(missing_docs)]

mod error;
mod formula;
mod image;
mod streamed;

pub use error::Error;
pub use formula::{math_img, EvalOptions, Evaluated, Formula, InputSpec, Timings, Written};
pub use image::Image;

/// Compiles a throw-away kernel and typical formulas (for tiny images) so that the compiler's
/// own machine code and tables are paged in and initialised. The first compilation in a process
/// otherwise pays ~0.5 ms of this cold start; calling `warm_up` while inputs are being opened
/// (the CLI does, on its main thread while another opens the images) takes that off the path to
/// the first result. Safe to call any number of times.
pub fn warm_up() {
    voxcalc_jit::warm_up();
    formula::warm_up();
}
pub use voxcalc_nifti::{ErrorKind as ImageErrorKind, Header, WriteOptions};
/// Region signals to voxels and back through a label atlas (nilearn's `signals_to_img_labels`
/// and `img_to_signals_labels`): [`regions::LabelMap`], [`regions::Signals`], signals files.
pub use voxcalc_regions as regions;
pub use voxcalc_regions::{img_to_signals_labels, signals_to_img_labels};
pub use voxcalc_runtime::{NoProgress, Progress};
pub use voxcalc_syntax::{Diagnostic, Severity};
pub use voxcalc_types::DType;
