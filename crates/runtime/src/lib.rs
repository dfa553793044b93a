//! voxcalc-runtime (work in progress).
