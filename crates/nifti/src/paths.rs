//! File names of NIfTI images: which files make up an image, and whether two paths are the same
//! file (so an output never silently replaces one of its inputs).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, NiftiError, Result};

/// The files an image lives in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageFiles {
    /// `.nii` or `.nii.gz`: header and data in one file.
    Single(PathBuf),
    /// `.hdr` + `.img` (either may be gzipped: `.hdr.gz`, `.img.gz`).
    Pair {
        /// The header file.
        header: PathBuf,
        /// The data file.
        data: PathBuf,
    },
}

impl ImageFiles {
    /// Every file of the image.
    pub fn all(&self) -> Vec<&Path> {
        match self {
            ImageFiles::Single(path) => vec![path.as_path()],
            ImageFiles::Pair { header, data } => vec![header.as_path(), data.as_path()],
        }
    }
}

/// True when the name ends in `.gz` (used only to name output files; reading detects gzip by
/// its magic bytes).
pub fn has_gz_suffix(path: &Path) -> bool {
    lower_name(path).ends_with(".gz")
}

fn lower_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Replaces the final `from` suffix (case-insensitive, `.gz` kept) of `path` by `to`.
fn swap_suffix(path: &Path, from: &str, to: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let gz = name.to_ascii_lowercase().ends_with(".gz");
    let stem_len = name.len() - from.len() - if gz { 3 } else { 0 };
    let mut new_name = name[..stem_len].to_string();
    new_name.push_str(to);
    if gz {
        new_name.push_str(&name[name.len() - 3..]);
    }
    path.with_file_name(new_name)
}

/// Works out the files of the image named `path` from its suffix: `.nii[.gz]` is a single file;
/// `.hdr[.gz]` or `.img[.gz]` names a pair (the partner is looked up with and without `.gz`).
pub fn image_files(path: &Path) -> Result<ImageFiles> {
    let name = lower_name(path);
    let base = name.strip_suffix(".gz").unwrap_or(&name);
    if base.ends_with(".nii") {
        return Ok(ImageFiles::Single(path.to_path_buf()));
    }
    let (header, data) = if base.ends_with(".hdr") {
        (path.to_path_buf(), partner(path, ".hdr", ".img"))
    } else if base.ends_with(".img") {
        (partner(path, ".img", ".hdr"), path.to_path_buf())
    } else {
        return Err(NiftiError::new(
            ErrorKind::BadPath,
            path,
            "not a NIfTI file name: expected .nii, .nii.gz, .hdr, .img (optionally .gz)",
        ));
    };
    Ok(ImageFiles::Pair { header, data })
}

/// The partner file of a pair: same gz-ness first, then the other, then the plain name (which
/// gives a clear "cannot open" error when neither exists).
fn partner(path: &Path, from: &str, to: &str) -> PathBuf {
    let same = swap_suffix(path, from, to);
    if same.exists() {
        return same;
    }
    let other = if has_gz_suffix(&same) {
        same.with_file_name(
            same.file_name()
                .map(|n| {
                    let n = n.to_string_lossy();
                    n[..n.len() - 3].to_string()
                })
                .unwrap_or_default(),
        )
    } else {
        let mut name = same.file_name().unwrap_or_default().to_os_string();
        name.push(".gz");
        same.with_file_name(name)
    };
    if other.exists() {
        other
    } else {
        same
    }
}

/// The files an output named `path` will be written to (pairs: `x.hdr` -> `x.hdr` + `x.img`,
/// `x.hdr.gz` -> `x.hdr.gz` + `x.img.gz`).
pub fn output_files(path: &Path) -> Result<ImageFiles> {
    let name = lower_name(path);
    let base = name.strip_suffix(".gz").unwrap_or(&name);
    if base.ends_with(".nii") {
        Ok(ImageFiles::Single(path.to_path_buf()))
    } else if base.ends_with(".hdr") {
        Ok(ImageFiles::Pair {
            header: path.to_path_buf(),
            data: swap_suffix(path, ".hdr", ".img"),
        })
    } else if base.ends_with(".img") {
        Ok(ImageFiles::Pair {
            header: swap_suffix(path, ".img", ".hdr"),
            data: path.to_path_buf(),
        })
    } else {
        Err(NiftiError::new(
            ErrorKind::BadPath,
            path,
            "output name must end in .nii, .nii.gz, .hdr, .img (optionally .gz)",
        ))
    }
}

/// True when `a` and `b` are the same existing file (same device and inode, so hard links and
/// symlinks count), or, when either does not exist, when their canonical parent directories and
/// names agree.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    #[cfg(not(unix))]
    {
        if let (Ok(ca), Ok(cb)) = (fs::canonicalize(a), fs::canonicalize(b)) {
            return ca == cb;
        }
    }
    let canonical = |p: &Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
        Some(dir.join(p.file_name()?))
    };
    match (canonical(a), canonical(b)) {
        (Some(ca), Some(cb)) => ca == cb,
        _ => false,
    }
}

/// Refuses an output whose files include any file of the given inputs. Writing goes through a
/// temp file and a rename, so even a forced overwrite cannot corrupt an input that is being
/// read; this check exists so it never happens by accident.
pub fn check_output_not_input(output: &Path, inputs: &[&Path]) -> Result<()> {
    let out_files = output_files(output)?;
    for input in inputs {
        let in_files = image_files(input)?;
        for out_file in out_files.all() {
            for in_file in in_files.all() {
                if same_file(out_file, in_file) {
                    return Err(NiftiError::new(
                        ErrorKind::OutputIsInput,
                        output,
                        format!(
                            "the output would replace the input {}; choose another name or force \
                             the overwrite",
                            in_file.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}
