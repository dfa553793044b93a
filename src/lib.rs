//! voxcalc: numpy-dialect formulas over NIfTI volumes, compiled to native kernels.
//!
//! This is the library facade (the API boundary); see docs/ARCHITECTURE.md.
