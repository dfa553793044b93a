//! voxcalc-regions (work in progress).
