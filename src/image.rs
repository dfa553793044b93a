//! [`Image`]: a NIfTI volume opened for reading, with its header, affine and data view.

use std::fmt::Write as _;
use std::path::Path;

use voxcalc_nifti::{Affine, DataSource, Header, NiftiImage, NiftiVersion, RawView, ReadOptions};
use voxcalc_types::DType;

use crate::{Error, Evaluated};

/// An opened NIfTI image (`.nii`, `.nii.gz`, `.hdr`/`.img`). Plain `.nii` data are
/// memory-mapped, never copied; gzipped data are inflated once.
pub struct Image {
    inner: NiftiImage,
}

impl Image {
    /// Opens an image, validating its header against the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Image, Error> {
        Ok(Image {
            inner: NiftiImage::open(path)?,
        })
    }

    /// Opens an image whose data formulas read volume by volume along its last axis (time),
    /// as the file is inflated, when the image is a single gzipped file: only the header is
    /// read now, and the data are never resident as a whole. Such an image suits formulas
    /// whose every use of it is a sum or mean over time ([`crate::Formula::stream_passes`]
    /// says which); evaluating any other formula on it is refused with a message. Other files
    /// are opened as [`Image::load`] opens them.
    pub fn open_streamed(path: impl AsRef<Path>) -> Result<Image, Error> {
        Ok(Image {
            inner: NiftiImage::open_streamed(path, &ReadOptions::default())?,
        })
    }

    /// True for an image opened by [`Image::open_streamed`] whose data are read only as a
    /// formula streams them.
    pub fn is_streamed(&self) -> bool {
        self.inner.data_source() == DataSource::Streamed
    }

    /// An image over data held in memory, so that a computed result can be an input of later
    /// formulas (the REPL keeps `name = formula` results this way). `label` names it in
    /// messages where a file image shows its path (the REPL uses `m = anat * 2`). `data` must
    /// be the bytes `header` declares, in native byte order; they are copied once.
    pub fn from_memory(label: &str, header: Header, data: &[u8]) -> Result<Image, Error> {
        Ok(Image {
            inner: NiftiImage::from_memory(label, header, data)?,
        })
    }

    /// A formula's in-memory result as an image (see [`Image::from_memory`]), with the header
    /// it would be saved with.
    pub fn from_evaluated(evaluated: Evaluated, label: &str) -> Result<Image, Error> {
        Image::from_memory(label, evaluated.header, &evaluated.data)
    }

    /// True for images built from memory rather than opened from a file.
    pub fn is_in_memory(&self) -> bool {
        self.inner.data_source() == DataSource::Memory
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The header as nibabel would hold it after loading.
    pub fn header(&self) -> &Header {
        self.inner.header()
    }

    /// nibabel's `img.affine`.
    pub fn affine(&self) -> &Affine {
        self.inner.affine()
    }

    /// The shape (`dim[1..=dim[0]]`).
    pub fn shape(&self) -> Vec<usize> {
        self.inner.shape()
    }

    /// The dtype a formula sees: the storage dtype, or float64 when the header scales the data
    /// (as `np.asanyarray(img.dataobj)` does).
    pub fn dtype(&self) -> DType {
        self.inner.effective_dtype()
    }

    /// The data as stored on disk (storage dtype and byte order).
    pub fn raw(&self) -> RawView<'_> {
        self.inner.raw()
    }

    /// The underlying reader's image.
    pub fn nifti(&self) -> &NiftiImage {
        &self.inner
    }

    /// A multi-line, fslhd-style description: file, format, shape, dtypes, scaling, voxel sizes,
    /// TR, units, xform codes and the affine.
    pub fn describe(&self) -> String {
        let header = self.header();
        let mut out = String::new();
        let version = match header.version {
            NiftiVersion::Nifti1 => "NIfTI-1",
            NiftiVersion::Nifti2 => "NIfTI-2",
        };
        let storage = match self.inner.data_source() {
            DataSource::MappedFile => "memory-mapped",
            DataSource::Decompressed => "gzip, inflated in memory",
            DataSource::DecompressedToTempFile => "gzip, inflated to a temp file",
            DataSource::Memory => "in memory (a computed result)",
            DataSource::Streamed => "gzip, inflated volume by volume as formulas read it",
        };
        let label = if self.is_in_memory() { "name" } else { "file" };
        let _ = writeln!(out, "{label:<14}{}", self.path().display());
        let _ = writeln!(
            out,
            "format        {version}, {:?}-endian, {storage}",
            header.byte_order
        );
        let shape = self.shape();
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let _ = writeln!(out, "shape         ({})", dims.join(", "));
        let raw_dtype = self.inner.dtype();
        let _ = writeln!(
            out,
            "datatype      {raw_dtype} (code {}, bitpix {})",
            header.datatype, header.bitpix
        );
        match self.inner.scaling() {
            Some(scaling) => {
                let _ = writeln!(
                    out,
                    "scaling       slope {} inter {} -> formulas see float64",
                    scaling.slope, scaling.inter
                );
            }
            None => {
                let _ = writeln!(out, "scaling       none -> formulas see {raw_dtype}");
            }
        }
        let zooms: Vec<String> = header.zooms().iter().map(|z| format!("{z}")).collect();
        let _ = writeln!(out, "voxel sizes   ({})", zooms.join(", "));
        let _ = writeln!(
            out,
            "units         space {}, time {}",
            space_unit(header.spatial_unit_code()),
            time_unit(header.time_unit_code())
        );
        if let Some(tr) = header.tr() {
            let _ = writeln!(out, "TR            {tr}");
        }
        let _ = writeln!(
            out,
            "qform_code    {} ({})",
            header.qform_code,
            xform_name(header.qform_code)
        );
        let _ = writeln!(
            out,
            "sform_code    {} ({})",
            header.sform_code,
            xform_name(header.sform_code)
        );
        let _ = writeln!(
            out,
            "cal range     {} .. {}",
            header.cal_min, header.cal_max
        );
        let descrip = header.descrip();
        if !descrip.is_empty() {
            let _ = writeln!(out, "descrip       {descrip}");
        }
        if !header.extensions.is_empty() {
            let codes: Vec<String> = header
                .extensions
                .iter()
                .map(|e| format!("code {} ({} bytes)", e.code, e.content.len()))
                .collect();
            let _ = writeln!(out, "extensions    {}", codes.join(", "));
        }
        let _ = writeln!(out, "affine");
        for row in self.affine() {
            let _ = writeln!(
                out,
                "  {:>12.6} {:>12.6} {:>12.6} {:>12.6}",
                row[0], row[1], row[2], row[3]
            );
        }
        out
    }
}

fn xform_name(code: i32) -> &'static str {
    match code {
        0 => "unknown",
        1 => "scanner",
        2 => "aligned",
        3 => "talairach",
        4 => "mni",
        5 => "template",
        _ => "invalid",
    }
}

fn space_unit(code: i32) -> &'static str {
    match code {
        0 => "unknown",
        1 => "m",
        2 => "mm",
        3 => "um",
        _ => "invalid",
    }
}

fn time_unit(code: i32) -> &'static str {
    match code {
        0 => "unknown",
        8 => "s",
        16 => "ms",
        24 => "us",
        32 => "Hz",
        40 => "ppm",
        48 => "rad/s",
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(shape: &[usize], dtype: DType) -> Header {
        let affine = [
            [2.0, 0.0, 0.0, -10.0],
            [0.0, 2.0, 0.0, -20.0],
            [0.0, 0.0, 2.0, -30.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        Header::fresh(NiftiVersion::Nifti1, shape, dtype, &affine).expect("a valid header")
    }

    #[test]
    fn in_memory_images_read_back_their_values() {
        let values: [i16; 6] = [1, -2, 3, -4, 5, -6];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let image = Image::from_memory("m = a * 2", header(&[3, 2], DType::I16), &data)
            .expect("an in-memory image");
        assert!(image.is_in_memory());
        assert_eq!(image.shape(), vec![3, 2]);
        assert_eq!(image.dtype(), DType::I16);
        assert_eq!(image.path(), Path::new("m = a * 2"));
        assert_eq!(image.affine()[0][3], -10.0);
        let raw = image.raw();
        let read: Vec<f64> = (0..raw.n_voxels()).map(|idx| raw.value_f64(idx)).collect();
        assert_eq!(read, vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0]);
        assert!(image.describe().contains("in memory"));
    }

    #[test]
    fn a_0d_result_is_an_image_of_one_value() {
        let image = Image::from_memory("x", header(&[], DType::F64), &2.5f64.to_ne_bytes())
            .expect("a 0-d image");
        assert!(image.shape().is_empty());
        assert_eq!(image.raw().value_f64(0), 2.5);
    }

    #[test]
    fn data_of_the_wrong_size_are_refused_with_the_label() {
        let err = Image::from_memory("m = a * 2", header(&[3, 2], DType::I16), &[0u8; 10])
            .err()
            .expect("a size mismatch is an error");
        let message = err.to_string();
        assert!(message.contains("m = a * 2"), "{message}");
        assert!(message.contains("10"), "{message}");
    }
}
