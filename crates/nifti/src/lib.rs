//! voxcalc-nifti (work in progress).
