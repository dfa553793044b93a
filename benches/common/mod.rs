//! Helpers shared by the root package's benches (`nifti_io`, `regions`): each bench is its own
//! crate, so they include this file with `mod common;`.

use std::path::{Path, PathBuf};

/// A scratch directory removed on drop (the root package has no `tempfile` dependency).
pub struct TempDir(PathBuf);

impl TempDir {
    /// `$TMPDIR/voxcalc-<tag>-<pid>`, created empty.
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("voxcalc-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The median: the middle sample, or the mean of the two middle ones for an even count.
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2.0
    } else {
        samples[mid]
    }
}

/// The Python with nibabel and nilearn: `VOXCALC_PYTHON` (set by scripts/test), else the repo's
/// `.venv`.
pub fn python() -> PathBuf {
    std::env::var_os("VOXCALC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python")))
}
