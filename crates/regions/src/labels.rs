//! [`LabelMap`]: one pass over a label atlas (and mask) gives the sorted region labels and the
//! voxel-to-region map, stored as runs of consecutive voxels (Fortran order) of one region.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use voxcalc_nifti::{Affine, Header, NiftiImage};
use voxcalc_types::DType;

use crate::error::{RegionError, RegionErrorKind, Result};

/// nilearn's affine tolerance for region extraction (`1000 * np.finfo(np.float32).eps`): two
/// affines match when no element differs by more.
pub const AFFINE_TOLERANCE: f64 = 1000.0 * f32::EPSILON as f64;

/// Marks a voxel that belongs to no region in [`LabelMap::region_of`].
pub const NO_REGION: u32 = u32::MAX;

/// Consecutive voxels (in Fortran order) of one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First voxel index.
    pub start: usize,
    /// Number of voxels.
    pub len: usize,
    /// Region index (position of the label in [`LabelMap::labels`]).
    pub region: u32,
}

/// The regions of a label atlas after masking, as nilearn's `_get_labels_data` defines them:
/// the labels are the sorted unique values of the label image (non-finite values read as 0,
/// voxels outside the mask read as the background label) minus the background label.
#[derive(Clone, Debug)]
pub struct LabelMap {
    path: PathBuf,
    mask_path: Option<PathBuf>,
    header: Header,
    affine: Affine,
    shape: [usize; 3],
    labels: Vec<f64>,
    region_of: Vec<u32>,
    runs: Vec<Run>,
    counts: Vec<usize>,
    warnings: Vec<String>,
}

/// Canonical hash key of a label value (`-0.0` and `0.0` are the same label, as `np.unique`
/// and `==` treat them).
fn key(value: f64) -> u64 {
    (value + 0.0).to_bits()
}

/// Hashes the label keys (bits of an f64) with a multiply-and-fold mix: they are few and not
/// chosen by an adversary who could benefit from collisions, and the default SipHash showed in
/// profiles of the label pass, which looks a key up at every change of label.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }
    fn write_u64(&mut self, value: u64) {
        // Integral labels differ only in their high bits: fold them into the low bits (which
        // pick the bucket) as well as the high ones.
        let mixed = (self.0 ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = mixed ^ (mixed >> 32);
    }
}

/// Voxels `start..start + out.len()` of `img` as nilearn reads an image with
/// `safe_get_data(img, ensure_finite=True)`: scaled, and NaN or infinite values replaced by 0.
/// Decoded with one dtype dispatch per call instead of one per voxel.
pub(crate) fn finite_values(img: &NiftiImage, start: usize, out: &mut [f64]) {
    let raw = img.raw();
    let native = raw.is_native_order();
    macro_rules! decode {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            let bytes = &raw.bytes[start * N..(start + out.len()) * N];
            for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(N)) {
                let mut element = [0u8; N];
                element.copy_from_slice(chunk);
                if !native {
                    element.reverse();
                }
                *value = <$t>::from_ne_bytes(element) as f64;
            }
        }};
    }
    match raw.dtype {
        DType::U8 => decode!(u8),
        DType::I8 => decode!(i8),
        DType::U16 => decode!(u16),
        DType::I16 => decode!(i16),
        DType::U32 => decode!(u32),
        DType::I32 => decode!(i32),
        DType::U64 => decode!(u64),
        DType::I64 => decode!(i64),
        DType::F32 => decode!(f32),
        DType::F64 => decode!(f64),
        _ => {
            for (offset, value) in out.iter_mut().enumerate() {
                *value = raw.value_f64(start + offset);
            }
        }
    }
    let scaling = img.scaling();
    for value in out.iter_mut() {
        let scaled = scaling.map_or(*value, |s| s.apply(*value));
        *value = if scaled.is_finite() { scaled } else { 0.0 };
    }
}

/// Formats a label value as numpy prints it in a list: integral values without a fraction.
pub fn format_label(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e17 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

pub(crate) fn format_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

/// The 3-D shape of an image that must be 3-D (nilearn's `check_niimg_3d`: a 4-D image with one
/// volume counts as 3-D). `role` names it in the error ("labels image", "mask image").
pub(crate) fn shape_3d(img: &NiftiImage, role: &str) -> Result<[usize; 3]> {
    let shape = img.shape();
    match shape.as_slice() {
        [x, y, z] | [x, y, z, 1] => Ok([*x, *y, *z]),
        _ => Err(RegionError::new(
            RegionErrorKind::Dimension,
            format!(
                "{}: the {role} must be 3-D, but it is {}-D (shape {}); nilearn refuses it too \
                 (DimensionError){}",
                img.path().display(),
                shape.len(),
                format_shape(&shape),
                if shape.len() == 4 {
                    ": pick one volume, e.g. with `voxcalc eval 'img[..., 0]'`"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// Checks that `other` has the spatial shape and (within [`AFFINE_TOLERANCE`]) the affine of
/// `reference`, as nilearn's `_check_shape_and_affine_compatibility`.
pub(crate) fn check_geometry(
    reference: (&Path, &[usize], &Affine),
    other: (&Path, &[usize], &Affine),
) -> Result<()> {
    if reference.1[..3] != other.1[..3] {
        return Err(RegionError::new(
            RegionErrorKind::Geometry,
            format!(
                "images have incompatible shapes: {} is {} but {} is {}",
                reference.0.display(),
                format_shape(&reference.1[..3]),
                other.0.display(),
                format_shape(&other.1[..3]),
            ),
        ));
    }
    let max_diff = reference
        .2
        .iter()
        .flatten()
        .zip(other.2.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0f64,
            |acc, d| if d.is_nan() { f64::NAN } else { acc.max(d) },
        );
    if max_diff.is_nan() || max_diff > AFFINE_TOLERANCE {
        return Err(RegionError::new(
            RegionErrorKind::Geometry,
            format!(
                "images have different affines: {} and {} differ by up to {max_diff:e} (nilearn's \
                 tolerance is {AFFINE_TOLERANCE:e}); resample one onto the other first",
                reference.0.display(),
                other.0.display(),
            ),
        ));
    }
    Ok(())
}

impl LabelMap {
    /// Reads the label image (and mask) once and builds the map. `background_label` is the value
    /// that means "no region". Fails as nilearn does: a labels or mask image that is not 3-D, a
    /// mask of another shape or affine, or a mask that removes every label.
    pub fn build(
        labels_img: &NiftiImage,
        mask_img: Option<&NiftiImage>,
        background_label: f64,
    ) -> Result<LabelMap> {
        let shape = shape_3d(labels_img, "labels image")?;
        if let Some(mask) = mask_img {
            let mask_shape = shape_3d(mask, "mask image")?;
            check_geometry(
                (labels_img.path(), &shape, labels_img.affine()),
                (mask.path(), &mask_shape, mask.affine()),
            )?;
        }
        let n_voxels = shape[0] * shape[1] * shape[2];
        let big_ints = matches!(labels_img.dtype(), DType::I64 | DType::U64);

        // Distinct values: raw labels and the background; per voxel the index of its value
        // after masking.
        let mut distinct: Vec<f64> = Vec::new();
        let mut index_of: HashMap<u64, u32, BuildHasherDefault<KeyHasher>> = HashMap::default();
        let mut intern = |value: f64, distinct: &mut Vec<f64>| -> u32 {
            *index_of.entry(key(value)).or_insert_with(|| {
                distinct.push(value + 0.0);
                (distinct.len() - 1) as u32
            })
        };
        let background_idx = intern(background_label, &mut distinct);
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut value_idx = vec![0u32; n_voxels];
        let mut last: Option<(u64, u32)> = None;
        // Label (and mask) values are decoded a block of voxels at a time.
        const DECODE_BLOCK: usize = 4096;
        let mut label_values = vec![0.0; DECODE_BLOCK.min(n_voxels)];
        let mut mask_values = vec![
            0.0;
            if mask_img.is_some() {
                label_values.len()
            } else {
                0
            }
        ];
        for (block_idx, slots) in value_idx.chunks_mut(DECODE_BLOCK).enumerate() {
            let block_start = block_idx * DECODE_BLOCK;
            let label_values = &mut label_values[..slots.len()];
            finite_values(labels_img, block_start, label_values);
            if let Some(mask) = mask_img {
                finite_values(mask, block_start, &mut mask_values[..slots.len()]);
            }
            for (offset, (slot, &value)) in slots.iter_mut().zip(label_values.iter()).enumerate() {
                if big_ints && value.abs() > 9_007_199_254_740_992.0 {
                    return Err(RegionError::new(
                        RegionErrorKind::Signals,
                        format!(
                            "{}: label value {value} is beyond 2^53; labels must be exactly \
                             representable as float64",
                            labels_img.path().display()
                        ),
                    ));
                }
                let bits = key(value);
                let idx = match last {
                    Some((last_bits, idx)) if last_bits == bits => idx,
                    _ => {
                        let idx = intern(value, &mut distinct);
                        last = Some((bits, idx));
                        idx
                    }
                };
                if before.len() < distinct.len() {
                    before.resize(distinct.len(), false);
                    after.resize(distinct.len(), false);
                }
                before[idx as usize] = true;
                let masked_out = mask_img.is_some() && mask_values[offset] == 0.0;
                let idx = if masked_out { background_idx } else { idx };
                after[idx as usize] = true;
                *slot = idx;
            }
        }
        before.resize(distinct.len(), false);
        after.resize(distinct.len(), false);

        let mut warnings = Vec::new();
        if let Some(mask) = mask_img {
            let removed: Vec<f64> = (0..distinct.len())
                .filter(|&i| before[i] && !after[i])
                .map(|i| distinct[i])
                .collect();
            let n_after = after.iter().filter(|&&a| a).count();
            let any_region_left =
                (0..distinct.len()).any(|i| after[i] && i as u32 != background_idx);
            if !removed.is_empty() {
                if !any_region_left {
                    return Err(RegionError::new(
                        RegionErrorKind::NoLabelLeft,
                        format!(
                            "no label left after applying the mask {} to the labels image {}: \
                             the mask covers no labelled voxel",
                            mask.path().display(),
                            labels_img.path().display()
                        ),
                    ));
                }
                let mut removed = removed;
                removed.sort_by(f64::total_cmp);
                let list: Vec<String> = removed.iter().map(|&v| format_label(v)).collect();
                warnings.push(format!(
                    "after applying the mask {}, the labels [{}] have no voxel left; the masked \
                     labels image has {n_after} labels (including background)",
                    mask.path().display(),
                    list.join(", ")
                ));
            }
        }

        // Regions: the sorted distinct values present after masking, minus the background.
        let mut region_values: Vec<(f64, u32)> = (0..distinct.len())
            .filter(|&i| after[i] && i as u32 != background_idx)
            .map(|i| (distinct[i], i as u32))
            .collect();
        region_values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut remap = vec![NO_REGION; distinct.len()];
        for (region, &(_, idx)) in region_values.iter().enumerate() {
            remap[idx as usize] = region as u32;
        }
        let labels: Vec<f64> = region_values.iter().map(|&(v, _)| v).collect();
        let mut counts = vec![0usize; labels.len()];
        let mut runs: Vec<Run> = Vec::new();
        for (voxel_idx, slot) in value_idx.iter_mut().enumerate() {
            let region = remap[*slot as usize];
            *slot = region;
            if region == NO_REGION {
                continue;
            }
            counts[region as usize] += 1;
            match runs.last_mut() {
                Some(run) if run.region == region && run.start + run.len == voxel_idx => {
                    run.len += 1;
                }
                _ => runs.push(Run {
                    start: voxel_idx,
                    len: 1,
                    region,
                }),
            }
        }
        Ok(LabelMap {
            path: labels_img.path().to_path_buf(),
            mask_path: mask_img.map(|m| m.path().to_path_buf()),
            header: labels_img.header().clone(),
            affine: *labels_img.affine(),
            shape,
            labels,
            region_of: value_idx,
            runs,
            counts,
            warnings,
        })
    }

    /// The label image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mask image's path, when a mask was applied.
    pub fn mask_path(&self) -> Option<&Path> {
        self.mask_path.as_deref()
    }

    /// The label image's header (the template of reconstructed images).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The label image's affine.
    pub fn affine(&self) -> &Affine {
        &self.affine
    }

    /// The spatial shape.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Voxels per volume.
    pub fn n_voxels(&self) -> usize {
        self.region_of.len()
    }

    /// The region labels in ascending order: column `r` of signals belongs to `labels()[r]`.
    pub fn labels(&self) -> &[f64] {
        &self.labels
    }

    /// Number of regions.
    pub fn n_regions(&self) -> usize {
        self.labels.len()
    }

    /// Per voxel (Fortran order), its region index or [`NO_REGION`].
    pub fn region_of(&self) -> &[u32] {
        &self.region_of
    }

    /// The runs of region voxels, in voxel order.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Voxels per region.
    pub fn counts(&self) -> &[usize] {
        &self.counts
    }

    /// Number of voxels in some region.
    pub fn n_region_voxels(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Warnings nilearn would also give (labels removed by the mask).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Checks that signals have one column per label; the error says both numbers. `what` is
    /// the subject and verb of the message ("the signals have").
    pub fn check_columns(&self, n_columns: usize, what: &str) -> Result<()> {
        if n_columns == self.n_regions() {
            return Ok(());
        }
        let relation = if n_columns < self.n_regions() {
            "too few"
        } else {
            "too many"
        };
        Err(RegionError::new(
            RegionErrorKind::ColumnCount,
            format!(
                "{what} {n_columns} columns ({relation}), but the labels image {} has {} labels \
                 after masking and removing the background{}",
                self.path.display(),
                self.n_regions(),
                self.labels_summary(),
            ),
        ))
    }

    /// `": [1, 2, ...]"` for messages, shortened for big atlases.
    fn labels_summary(&self) -> String {
        let shown: Vec<String> = self
            .labels
            .iter()
            .take(12)
            .map(|&v| format_label(v))
            .collect();
        let more = if self.labels.len() > 12 { ", ..." } else { "" };
        format!(": [{}{more}]", shown.join(", "))
    }

    /// The index of the first run that ends after `voxel_idx`.
    pub(crate) fn first_run_after(&self, voxel_idx: usize) -> usize {
        self.runs
            .partition_point(|run| run.start + run.len <= voxel_idx)
    }
}
