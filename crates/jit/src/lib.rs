//! voxcalc-jit (work in progress).
