//! Voxels to signals: the mean of every region in every volume (nilearn's
//! `img_to_signals_labels` with the default `strategy="mean"`).

use rayon::prelude::*;
use voxcalc_nifti::{ByteOrder, NiftiImage};
use voxcalc_types::DType;

use crate::error::{RegionError, RegionErrorKind, Result};
use crate::labels::{check_geometry, format_shape, shape_3d, LabelMap};
use crate::signals::{Order, Signals, Values};

/// Region signals extracted from an image, with the label of each column.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionSignals {
    /// `T x R` region means (C order): float32 for a float32 image, float64 otherwise.
    pub signals: Signals,
    /// The label of each column, ascending.
    pub labels: Vec<f64>,
}

/// nilearn's `img_to_signals_labels(imgs, labels_img, mask_img, background_label)`: for each
/// volume of the 4-D `img`, the mean of each region's voxels (NaN and infinite voxels count as 0,
/// as nilearn replaces them). Sums are accumulated in float64 as scipy's `ndimage.mean` does.
/// Fails as nilearn does for a 3-D image, a labels or mask image that is not 3-D, and shape or
/// affine mismatches.
pub fn img_to_signals_labels(
    img: &NiftiImage,
    labels_img: &NiftiImage,
    mask_img: Option<&NiftiImage>,
    background_label: f64,
) -> Result<RegionSignals> {
    let labels_shape = shape_3d(labels_img, "labels image")?;
    check_4d(img)?;
    check_geometry(
        (img.path(), &img.shape(), img.affine()),
        (labels_img.path(), &labels_shape, labels_img.affine()),
    )?;
    if let Some(mask) = mask_img {
        let mask_shape = shape_3d(mask, "mask image")?;
        check_geometry(
            (img.path(), &img.shape(), img.affine()),
            (mask.path(), &mask_shape, mask.affine()),
        )?;
    }
    let map = LabelMap::build(labels_img, mask_img, background_label)?;
    map.img_to_signals(img)
}

fn check_4d(img: &NiftiImage) -> Result<()> {
    let shape = img.shape();
    if shape.len() == 4 {
        return Ok(());
    }
    Err(RegionError::new(
        RegionErrorKind::Dimension,
        format!(
            "{}: the image must be 4-D (a series of volumes), but it is {}-D (shape {}); \
             nilearn refuses it too (DimensionError){}",
            img.path().display(),
            shape.len(),
            format_shape(&shape),
            if shape.len() == 3 {
                ": add a time axis, e.g. `voxcalc eval 'img[..., None]'`"
            } else {
                ""
            }
        ),
    ))
}

/// Loads one stored element as f64.
trait Load {
    const SIZE: usize;
    fn load(src: &[u8], big_endian: bool) -> f64;
}

macro_rules! load {
    ($name:ident, $t:ty, $size:expr) => {
        struct $name;
        impl Load for $name {
            const SIZE: usize = $size;
            #[inline]
            #[allow(clippy::cast_lossless)]
            fn load(src: &[u8], big_endian: bool) -> f64 {
                let mut raw = [0u8; $size];
                raw.copy_from_slice(src);
                (if big_endian {
                    <$t>::from_be_bytes(raw)
                } else {
                    <$t>::from_le_bytes(raw)
                }) as f64
            }
        }
    };
}

load!(LoadU8, u8, 1);
load!(LoadI8, i8, 1);
load!(LoadU16, u16, 2);
load!(LoadI16, i16, 2);
load!(LoadU32, u32, 4);
load!(LoadI32, i32, 4);
load!(LoadU64, u64, 8);
load!(LoadI64, i64, 8);
load!(LoadF32, f32, 4);
load!(LoadF64, f64, 8);

impl LabelMap {
    /// Region means of every volume of `img` (see [`img_to_signals_labels`]); the image must
    /// have this map's spatial shape.
    pub fn img_to_signals(&self, img: &NiftiImage) -> Result<RegionSignals> {
        check_4d(img)?;
        let shape = img.shape();
        if shape[..3] != self.shape() {
            return Err(RegionError::new(
                RegionErrorKind::Geometry,
                format!(
                    "images have incompatible shapes: {} is {:?} but the labels image {} is {:?}",
                    img.path().display(),
                    &shape[..3],
                    self.path().display(),
                    self.shape()
                ),
            ));
        }
        let sums = match img.dtype() {
            DType::U8 => self.region_sums::<LoadU8>(img),
            DType::I8 => self.region_sums::<LoadI8>(img),
            DType::U16 => self.region_sums::<LoadU16>(img),
            DType::I16 => self.region_sums::<LoadI16>(img),
            DType::U32 => self.region_sums::<LoadU32>(img),
            DType::I32 => self.region_sums::<LoadI32>(img),
            DType::U64 => self.region_sums::<LoadU64>(img),
            DType::I64 => self.region_sums::<LoadI64>(img),
            DType::F32 => self.region_sums::<LoadF32>(img),
            DType::F64 => self.region_sums::<LoadF64>(img),
            other => {
                return Err(RegionError::new(
                    RegionErrorKind::Signals,
                    format!("{}: unsupported dtype {other}", img.path().display()),
                ))
            }
        };
        let n_times = shape[3];
        let n_regions = self.n_regions();
        let counts = self.counts();
        let means = sums
            .iter()
            .enumerate()
            .map(|(idx, &sum)| sum / counts[idx % n_regions.max(1)] as f64);
        let values = if img.effective_dtype() == DType::F32 {
            Values::F32(means.map(|m| m as f32).collect())
        } else {
            Values::F64(means.collect())
        };
        Ok(RegionSignals {
            signals: Signals::new(values, &[n_times, n_regions], Order::C)?,
            labels: self.labels().to_vec(),
        })
    }

    /// Per volume and region, the sum of the region's values (scaled, non-finite as 0), C order.
    fn region_sums<L: Load>(&self, img: &NiftiImage) -> Vec<f64> {
        let raw = img.raw();
        let big_endian = raw.byte_order == ByteOrder::Big;
        let scaling = img.scaling();
        let n_voxels = self.n_voxels();
        let n_regions = self.n_regions();
        let n_times = raw.n_voxels().checked_div(n_voxels).unwrap_or(0);
        let volume_bytes = n_voxels * L::SIZE;
        let mut sums = vec![0.0f64; n_times * n_regions];
        if n_regions == 0 {
            return sums;
        }
        sums.par_chunks_mut(n_regions)
            .enumerate()
            .for_each(|(t, volume_sums)| {
                let volume = &raw.bytes[t * volume_bytes..(t + 1) * volume_bytes];
                for run in self.runs() {
                    let bytes = &volume[run.start * L::SIZE..(run.start + run.len) * L::SIZE];
                    let mut sum = volume_sums[run.region as usize];
                    for element in bytes.chunks_exact(L::SIZE) {
                        let mut value = L::load(element, big_endian);
                        if let Some(s) = scaling {
                            value = s.apply(value);
                        }
                        if value.is_finite() {
                            sum += value;
                        }
                    }
                    volume_sums[run.region as usize] = sum;
                }
            });
        sums
    }
}
