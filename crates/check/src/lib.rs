//! voxcalc-check (work in progress).
