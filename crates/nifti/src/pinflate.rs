//! Parallel inflate of a single gzip member (see the module code).
