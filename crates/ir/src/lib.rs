//! voxcalc-ir (work in progress).
