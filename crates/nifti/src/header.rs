//! NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers: parsing in either byte order, validation,
//! nibabel's load-time fixes, serialisation, and the affine exactly as nibabel computes it.
//!
//! One [`Header`] type holds both versions: numbers are widened to `f64`/`i64` (a NIfTI-1
//! `float32` survives the round trip to `f64` and back bit for bit), and the NIfTI-1-only Analyze
//! leftovers are kept in [`Nifti1Legacy`] so a copied header is written back unchanged.

use std::path::Path;

use voxcalc_types::DType;

use crate::datatype::{code_from_dtype, dtype_from_code, CodeProblem};
use crate::error::{ErrorKind, NiftiError, Result};

/// Size of a NIfTI-1 header in bytes.
pub const NIFTI1_HEADER_SIZE: usize = 348;
/// Size of a NIfTI-2 header in bytes.
pub const NIFTI2_HEADER_SIZE: usize = 540;
/// Largest data size in bytes a header may declare unless the caller raises the bound: far above
/// any real volume (1 TiB), low enough that arithmetic on it never overflows.
pub const DEFAULT_MAX_DATA_BYTES: u64 = 1 << 40;

/// The two NIfTI header layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NiftiVersion {
    /// 348-byte header, `int16` dims, `float32` fields.
    Nifti1,
    /// 540-byte header, `int64` dims, `float64` fields.
    Nifti2,
}

impl NiftiVersion {
    /// Size of the header block in bytes.
    pub fn header_size(self) -> usize {
        match self {
            NiftiVersion::Nifti1 => NIFTI1_HEADER_SIZE,
            NiftiVersion::Nifti2 => NIFTI2_HEADER_SIZE,
        }
    }

    /// The smallest `vox_offset` of a single-file image: header plus the 4-byte extender.
    pub fn single_vox_offset(self) -> u64 {
        self.header_size() as u64 + 4
    }
}

/// Byte order of the header and data on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Least significant byte first (x86, ARM).
    Little,
    /// Most significant byte first.
    Big,
}

impl ByteOrder {
    /// The byte order of the machine voxcalc runs on.
    pub fn native() -> ByteOrder {
        if cfg!(target_endian = "big") {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }
}

/// One header extension (`esize`, `ecode`, content). The content is kept as stored, padding
/// included; writing pads it again to a multiple of 16 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// The NIfTI extension code (e.g. 4 AFNI, 6 comment, 44 BIDS/JSON in some tools).
    pub code: i32,
    /// The extension's bytes after its 8-byte size/code prefix.
    pub content: Vec<u8>,
}

/// NIfTI-1 fields inherited from Analyze 7.5 that NIfTI-2 dropped; kept so that a copied
/// NIfTI-1 header is written back as it was.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Nifti1Legacy {
    /// `data_type[10]`, unused.
    pub data_type: [u8; 10],
    /// `db_name[18]`, unused.
    pub db_name: [u8; 18],
    /// `extents`, unused.
    pub extents: i32,
    /// `session_error`, unused.
    pub session_error: i16,
    /// `regular`, unused.
    pub regular: u8,
    /// `glmax`, unused (nilearn zeroes it in copied headers).
    pub glmax: i32,
    /// `glmin`, unused.
    pub glmin: i32,
}

/// Data scaling from `scl_slope`/`scl_inter`, applied as nibabel does: `raw * slope + inter`
/// in float64, the multiplication skipped when `slope == 1` and the addition when `inter == 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaling {
    /// Multiplier (finite, non-zero).
    pub slope: f64,
    /// Offset (finite).
    pub inter: f64,
}

impl Scaling {
    /// Applies the scaling to one raw value exactly as nibabel's `apply_read_scaling` does.
    #[inline]
    pub fn apply(self, raw: f64) -> f64 {
        let mut value = raw;
        if self.slope != 1.0 {
            value *= self.slope;
        }
        if self.inter != 0.0 {
            value += self.inter;
        }
        value
    }
}

/// A 4x4 affine (voxel index -> world coordinates), row-major.
pub type Affine = [[f64; 4]; 4];

/// A NIfTI-1 or NIfTI-2 header with its extensions. Field values are as nibabel holds them after
/// loading (its automatic fixes applied: zero `pixdim[1..4]` -> 1, negative -> absolute value,
/// `qfac` not +-1 -> 1, unknown xform codes -> 0, `bitpix` must match `datatype`).
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Which layout the header was read from (or will be written as).
    pub version: NiftiVersion,
    /// Byte order of the file the header came from (output is always written natively).
    pub byte_order: ByteOrder,
    /// True for the pair magic (`ni1`/`ni2`: header and data in separate files).
    pub is_pair: bool,
    /// `dim[0..8]`: `dim[0]` is the number of dimensions, `dim[1..=dim[0]]` the shape.
    pub dim: [i64; 8],
    /// `intent_p1..3`.
    pub intent_p: [f64; 3],
    /// `intent_code`.
    pub intent_code: i32,
    /// `intent_name[16]`.
    pub intent_name: [u8; 16],
    /// `datatype` code.
    pub datatype: i16,
    /// `bitpix` (bits per voxel).
    pub bitpix: i16,
    /// `slice_start`.
    pub slice_start: i64,
    /// `slice_end`.
    pub slice_end: i64,
    /// `slice_code`.
    pub slice_code: i32,
    /// `pixdim[0..8]`: `pixdim[0]` is qfac, `pixdim[1..4]` voxel sizes, `pixdim[4]` TR.
    pub pixdim: [f64; 8],
    /// `vox_offset`: byte offset of the data in the data file.
    pub vox_offset: u64,
    /// `scl_slope` as stored.
    pub scl_slope: f64,
    /// `scl_inter` as stored.
    pub scl_inter: f64,
    /// `cal_max`.
    pub cal_max: f64,
    /// `cal_min`.
    pub cal_min: f64,
    /// `slice_duration`.
    pub slice_duration: f64,
    /// `toffset`.
    pub toffset: f64,
    /// `xyzt_units`: spatial unit in bits 0-2, temporal unit in bits 3-5.
    pub xyzt_units: i32,
    /// `dim_info`.
    pub dim_info: u8,
    /// `descrip[80]`.
    pub descrip: [u8; 80],
    /// `aux_file[24]`.
    pub aux_file: [u8; 24],
    /// `qform_code`.
    pub qform_code: i32,
    /// `sform_code`.
    pub sform_code: i32,
    /// `quatern_b`, `quatern_c`, `quatern_d`.
    pub quatern: [f64; 3],
    /// `qoffset_x`, `qoffset_y`, `qoffset_z`.
    pub qoffset: [f64; 3],
    /// `srow_x`, `srow_y`, `srow_z`.
    pub srow: [[f64; 4]; 3],
    /// Analyze leftovers of NIfTI-1 (ignored when writing NIfTI-2).
    pub legacy: Nifti1Legacy,
    /// Header extensions, in file order.
    pub extensions: Vec<Extension>,
}

/// Reads fixed-width numbers at byte offsets in a given byte order. Every caller has checked
/// that the buffer holds the whole header, so offsets are in bounds by construction.
struct Fields<'a> {
    bytes: &'a [u8],
    order: ByteOrder,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[offset..offset + N]);
        if self.order != ByteOrder::native() {
            out.reverse();
        }
        out
    }
    fn i16(&self, offset: usize) -> i16 {
        i16::from_ne_bytes(self.array(offset))
    }
    fn i32(&self, offset: usize) -> i32 {
        i32::from_ne_bytes(self.array(offset))
    }
    fn i64(&self, offset: usize) -> i64 {
        i64::from_ne_bytes(self.array(offset))
    }
    fn f32(&self, offset: usize) -> f64 {
        f64::from(f32::from_ne_bytes(self.array(offset)))
    }
    fn f64(&self, offset: usize) -> f64 {
        f64::from_ne_bytes(self.array(offset))
    }
    fn raw<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[offset..offset + N]);
        out
    }
}

/// Detects the header version and byte order from the first four bytes (`sizeof_hdr`), the way
/// nibabel and niftilib do: 348 or 540 in one of the two byte orders.
pub fn detect_version(first4: [u8; 4]) -> Option<(NiftiVersion, ByteOrder)> {
    for (order, value) in [
        (ByteOrder::Little, i32::from_le_bytes(first4)),
        (ByteOrder::Big, i32::from_be_bytes(first4)),
    ] {
        match value {
            348 => return Some((NiftiVersion::Nifti1, order)),
            540 => return Some((NiftiVersion::Nifti2, order)),
            _ => {}
        }
    }
    None
}

const NIFTI2_EOL: [u8; 4] = [b'\r', b'\n', 0x1a, b'\n'];

impl Header {
    /// Parses and validates the fixed header block at the start of `bytes` (extensions are read
    /// separately by [`Header::parse_extensions`]). `path` is only used in error messages.
    ///
    /// Checks: `sizeof_hdr`, magic, `dim[0]` in 1..=7, every used dim >= 1, the voxel count and
    /// byte size fit in `max_data_bytes`, datatype supported, `bitpix` consistent, `vox_offset`
    /// finite and non-negative, a valid `scl_slope` paired with a finite `scl_inter`.
    pub fn parse(bytes: &[u8], path: &Path, max_data_bytes: u64) -> Result<Header> {
        let Some(first4) = bytes.get(..4) else {
            return Err(NiftiError::field(
                ErrorKind::Truncated,
                path,
                "sizeof_hdr",
                format!(
                    "file is {} bytes, too short for a NIfTI header",
                    bytes.len()
                ),
            ));
        };
        let first4: [u8; 4] = [first4[0], first4[1], first4[2], first4[3]];
        let Some((version, order)) = detect_version(first4) else {
            return Err(NiftiError::field(
                ErrorKind::BadSizeofHdr,
                path,
                "sizeof_hdr",
                format!(
                    "is {} (little-endian) / {} (big-endian); a NIfTI-1 header has 348, NIfTI-2 540",
                    i32::from_le_bytes(first4),
                    i32::from_be_bytes(first4)
                ),
            ));
        };
        if bytes.len() < version.header_size() {
            return Err(NiftiError::new(
                ErrorKind::Truncated,
                path,
                format!(
                    "header truncated: {} bytes, a {} header needs {}",
                    bytes.len(),
                    version_name(version),
                    version.header_size()
                ),
            ));
        }
        let f = Fields {
            bytes: &bytes[..version.header_size()],
            order,
        };
        let mut header = match version {
            NiftiVersion::Nifti1 => parse_nifti1(&f),
            NiftiVersion::Nifti2 => parse_nifti2(&f),
        };
        header.byte_order = order;
        header.check_magic(&f, path)?;
        header.validate(path, max_data_bytes)?;
        header.apply_nibabel_fixes();
        Ok(header)
    }

    fn check_magic(&mut self, f: &Fields<'_>, path: &Path) -> Result<()> {
        let (magic, ok) = match self.version {
            NiftiVersion::Nifti1 => {
                let magic: [u8; 4] = f.raw(344);
                let pair = &magic == b"ni1\0";
                self.is_pair = pair;
                (magic.to_vec(), pair || &magic == b"n+1\0")
            }
            NiftiVersion::Nifti2 => {
                let magic: [u8; 8] = f.raw(4);
                let pair = &magic[..4] == b"ni2\0";
                let eol_ok = magic[4..] == NIFTI2_EOL || magic[4..] == [0, 0, 0, 0];
                self.is_pair = pair;
                (magic.to_vec(), (pair || &magic[..4] == b"n+2\0") && eol_ok)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(NiftiError::field(
                ErrorKind::BadMagic,
                path,
                "magic",
                format!(
                    "is {:?}; a {} file has {}",
                    String::from_utf8_lossy(&magic),
                    version_name(self.version),
                    match self.version {
                        NiftiVersion::Nifti1 => "\"n+1\" (single file) or \"ni1\" (pair)",
                        NiftiVersion::Nifti2 => "\"n+2\" (single file) or \"ni2\" (pair)",
                    }
                ),
            ))
        }
    }

    /// Checks every field a reader relies on; see [`Header::parse`].
    pub fn validate(&self, path: &Path, max_data_bytes: u64) -> Result<()> {
        self.validate_for(path, max_data_bytes)
    }

    /// As [`Header::validate`], without the data size bound (the caller supplies the data).
    pub(crate) fn validate_for_write(&self, path: &Path) -> Result<()> {
        self.validate_for(path, u64::MAX)
    }

    /// Rank 0 (`dim[0] == 0`) is a 0-d image of one element: nibabel writes a 0-d array that
    /// way (nilearn's `math_img("np.mean(img)")`), followed by its one element.
    fn validate_for(&self, path: &Path, max_data_bytes: u64) -> Result<()> {
        let n_dims = self.dim[0];
        if !(0..=7).contains(&n_dims) {
            return Err(NiftiError::field(
                ErrorKind::BadField,
                path,
                "dim[0]",
                format!("is {n_dims}; the number of dimensions must be 0 to 7"),
            ));
        }
        const DIM_NAMES: [&str; 8] = [
            "dim[0]", "dim[1]", "dim[2]", "dim[3]", "dim[4]", "dim[5]", "dim[6]", "dim[7]",
        ];
        let mut n_voxels: u64 = 1;
        for (axis, name) in DIM_NAMES
            .iter()
            .enumerate()
            .take(n_dims as usize + 1)
            .skip(1)
        {
            let size = self.dim[axis];
            if size < 1 {
                return Err(NiftiError::field(
                    ErrorKind::BadField,
                    path,
                    name,
                    format!("is {size}; every dimension must be at least 1"),
                ));
            }
            n_voxels = n_voxels.checked_mul(size as u64).ok_or_else(|| {
                NiftiError::field(
                    ErrorKind::TooLarge,
                    path,
                    name,
                    "the product of the dims overflows 64 bits",
                )
            })?;
        }
        let dtype = match dtype_from_code(self.datatype) {
            Ok(dtype) => dtype,
            Err(CodeProblem::Unsupported(name)) => {
                return Err(NiftiError::field(
                    ErrorKind::UnsupportedDatatype,
                    path,
                    "datatype",
                    format!(
                        "unsupported datatype {} ({name}); voxcalc reads uint8, int8, int16, \
                         uint16, int32, uint32, int64, uint64, float32 and float64",
                        self.datatype
                    ),
                ))
            }
            Err(CodeProblem::Unknown) => {
                return Err(NiftiError::field(
                    ErrorKind::UnknownDatatype,
                    path,
                    "datatype",
                    format!("{} is not a NIfTI datatype code", self.datatype),
                ))
            }
        };
        if i64::from(self.bitpix) != 8 * dtype.size() as i64 {
            return Err(NiftiError::field(
                ErrorKind::BitpixMismatch,
                path,
                "bitpix",
                format!(
                    "is {} but datatype {} ({dtype}) has {} bits per voxel",
                    self.bitpix,
                    self.datatype,
                    8 * dtype.size()
                ),
            ));
        }
        let n_bytes = n_voxels.checked_mul(dtype.size() as u64);
        match n_bytes {
            Some(n) if n <= max_data_bytes && usize::try_from(n).is_ok() => {}
            _ => {
                return Err(NiftiError::field(
                    ErrorKind::TooLarge,
                    path,
                    "dim",
                    format!(
                        "{n_voxels} voxels of {dtype} exceed the {max_data_bytes}-byte bound on \
                         image data"
                    ),
                ))
            }
        }
        if !self.is_pair && self.vox_offset < self.version.header_size() as u64 {
            return Err(NiftiError::field(
                ErrorKind::BadField,
                path,
                "vox_offset",
                format!(
                    "is {}, inside the {}-byte header of a single-file image",
                    self.vox_offset,
                    self.version.header_size()
                ),
            ));
        }
        let slope = self.scl_slope;
        if slope != 0.0 && slope.is_finite() && !self.scl_inter.is_finite() {
            return Err(NiftiError::field(
                ErrorKind::BadField,
                path,
                "scl_inter",
                format!(
                    "is {} while scl_slope is {slope}; nibabel refuses such a file",
                    self.scl_inter
                ),
            ));
        }
        Ok(())
    }

    /// nibabel's fixes applied on load (`check_fix` problems below error level 40): they change
    /// the affine, so voxcalc applies them too.
    fn apply_nibabel_fixes(&mut self) {
        for size in &mut self.pixdim[1..4] {
            if *size == 0.0 {
                *size = 1.0;
            } else if *size < 0.0 {
                *size = size.abs();
            }
        }
        if self.pixdim[0] != 1.0 && self.pixdim[0] != -1.0 {
            self.pixdim[0] = 1.0;
        }
        for code in [&mut self.qform_code, &mut self.sform_code] {
            if !(0..=5).contains(code) {
                *code = 0;
            }
        }
    }

    /// Reads the extension list that follows the header. `after_header` holds the bytes from the
    /// end of the fixed header up to `vox_offset` (single file) or the end of the `.hdr` file.
    pub fn parse_extensions(&mut self, after_header: &[u8], path: &Path) -> Result<()> {
        self.extensions.clear();
        if after_header.len() < 4 || after_header[0] == 0 {
            return Ok(());
        }
        let mut pos = 4usize;
        let f = Fields {
            bytes: after_header,
            order: self.byte_order,
        };
        while after_header.len() - pos >= 8 {
            let esize = f.i32(pos);
            let code = f.i32(pos + 4);
            let remaining = after_header.len() - pos;
            if esize < 8 || esize as usize > remaining {
                return Err(NiftiError::field(
                    ErrorKind::BadExtension,
                    path,
                    "esize",
                    format!(
                        "extension at byte {} has size {esize}; it must be at least 8 and fit in \
                         the {remaining} bytes before the data",
                        pos + self.version.header_size()
                    ),
                ));
            }
            let esize = esize as usize;
            self.extensions.push(Extension {
                code,
                content: after_header[pos + 8..pos + esize].to_vec(),
            });
            pos += esize;
        }
        Ok(())
    }

    /// The data shape, `dim[1..=dim[0]]`, exactly as nibabel's `get_data_shape()` (nibabel keeps
    /// trailing 1s: `dim = [4, 2, 3, 4, 1]` is shape `(2, 3, 4, 1)`). Data are stored in Fortran
    /// order: the first axis varies fastest.
    pub fn shape(&self) -> Vec<usize> {
        let n_dims = self.dim[0].clamp(0, 7) as usize;
        self.dim[1..=n_dims]
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect()
    }

    /// Number of voxels (product of the shape).
    pub fn n_voxels(&self) -> usize {
        self.shape().iter().product()
    }

    /// The storage dtype (validated headers always have one).
    pub fn dtype(&self) -> Option<DType> {
        dtype_from_code(self.datatype).ok()
    }

    /// Size of the data in bytes.
    pub fn data_bytes(&self) -> usize {
        self.n_voxels() * self.dtype().map_or(0, DType::size)
    }

    /// The scaling nibabel applies on read, or `None` when the data are returned in their storage
    /// dtype: slope 0 or non-finite means no scaling (the intercept is then ignored), and so does
    /// `(slope, inter) == (1, 0)`. With scaling the effective dtype is float64.
    pub fn scaling(&self) -> Option<Scaling> {
        let (slope, inter) = (self.scl_slope, self.scl_inter);
        if slope == 0.0 || !slope.is_finite() || (slope == 1.0 && inter == 0.0) {
            return None;
        }
        Some(Scaling { slope, inter })
    }

    /// The dtype of `np.asanyarray(img.dataobj)`: float64 when scaled, else the storage dtype.
    pub fn effective_dtype(&self) -> Option<DType> {
        if self.scaling().is_some() {
            Some(DType::F64)
        } else {
            self.dtype()
        }
    }

    /// Voxel sizes `pixdim[1..=dim[0]]` (nibabel's `get_zooms()`).
    pub fn zooms(&self) -> Vec<f64> {
        let n_dims = self.dim[0].clamp(0, 7) as usize;
        self.pixdim[1..=n_dims].to_vec()
    }

    /// The repetition time `pixdim[4]` of a 4-D (or higher) image, in the unit of
    /// [`Header::time_unit_code`]; `None` for 3-D images.
    pub fn tr(&self) -> Option<f64> {
        (self.dim[0] >= 4).then_some(self.pixdim[4])
    }

    /// Spatial unit code (`xyzt_units & 0x07`: 0 unknown, 1 m, 2 mm, 3 micron).
    pub fn spatial_unit_code(&self) -> i32 {
        self.xyzt_units & 0x07
    }

    /// Temporal unit code (`xyzt_units & 0x38`: 8 s, 16 ms, 24 us, ...).
    pub fn time_unit_code(&self) -> i32 {
        self.xyzt_units & 0x38
    }

    /// `descrip` as text, up to the first NUL.
    pub fn descrip(&self) -> String {
        c_string(&self.descrip)
    }

    /// `intent_name` as text, up to the first NUL.
    pub fn intent_name(&self) -> String {
        c_string(&self.intent_name)
    }

    /// Sets `descrip`, truncated to 79 bytes so a NUL always ends it.
    pub fn set_descrip(&mut self, text: &str) {
        self.descrip = [0; 80];
        let n = text.len().min(79);
        self.descrip[..n].copy_from_slice(&text.as_bytes()[..n]);
    }

    /// The sform matrix (`srow_x/y/z` plus `[0, 0, 0, 1]`), whatever the `sform_code`.
    pub fn sform(&self) -> Affine {
        [
            self.srow[0],
            self.srow[1],
            self.srow[2],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    /// The qform matrix decoded from the quaternion, voxel sizes, qfac and offsets, as nibabel's
    /// `get_qform()` (whatever the `qform_code`). Fails when `b^2 + c^2 + d^2` exceeds 1 beyond
    /// the precision of the stored values, as nibabel does.
    pub fn qform(&self) -> std::result::Result<Affine, String> {
        // nibabel computes this in 80-bit long double; `Ext` emulates its rounding.
        let [b, c, d] = self.quatern.map(Ext::from);
        let threshold = match self.version {
            NiftiVersion::Nifti1 => 3.0 * f64::from(f32::EPSILON),
            NiftiVersion::Nifti2 => 3.0 * f64::EPSILON,
        };
        let w2 = Ext::from(1.0) - (b * b + c * c + d * d);
        let a = if w2.value().abs() < threshold {
            Ext::from(0.0)
        } else if w2.value() < 0.0 {
            return Err(format!(
                "quaternion (b, c, d) = ({}, {}, {}) has b^2+c^2+d^2 > 1",
                self.quatern[0], self.quatern[1], self.quatern[2]
            ));
        } else {
            w2.sqrt()
        };
        let rotation = quat_to_mat([a, b, c, d]);
        let mut vox = [self.pixdim[1], self.pixdim[2], self.pixdim[3]];
        vox[2] *= self.pixdim[0];
        let mut out = identity();
        for row in 0..3 {
            for col in 0..3 {
                out[row][col] = (rotation[row][col] * Ext::from(vox[col])).value();
            }
            out[row][3] = self.qoffset[row];
        }
        Ok(out)
    }

    /// nibabel's fall-back affine from shape and zooms (`get_base_affine`): x flipped, origin at
    /// the centre of the volume.
    pub fn base_affine(&self) -> Affine {
        let shape = self.shape();
        let zooms = self.zooms();
        let mut full_shape = [1.0f64; 3];
        let mut full_zooms = [1.0f64; 3];
        for axis in 0..shape.len().min(3) {
            full_shape[axis] = shape[axis] as f64;
            full_zooms[axis] = zooms[axis];
        }
        full_zooms[0] = -full_zooms[0];
        let mut out = identity();
        for axis in 0..3 {
            let origin = (full_shape[axis] - 1.0) / 2.0;
            out[axis][axis] = full_zooms[axis];
            out[axis][3] = -origin * full_zooms[axis];
        }
        out
    }

    /// The affine of nibabel's `img.affine`: the sform when `sform_code != 0`, else the qform
    /// when `qform_code != 0`, else [`Header::base_affine`].
    pub fn affine(&self) -> std::result::Result<Affine, String> {
        if self.sform_code != 0 {
            Ok(self.sform())
        } else if self.qform_code != 0 {
            self.qform()
        } else {
            Ok(self.base_affine())
        }
    }

    /// Sets the sform from `affine` with `code` (nibabel's `set_sform`).
    pub fn set_sform(&mut self, affine: &Affine, code: i32) {
        self.srow.copy_from_slice(&affine[..3]);
        self.sform_code = code;
    }

    /// Sets the qform from `affine` with `code` as nibabel's `set_qform` does: voxel sizes are
    /// the column norms, qfac makes the rotation proper, shears are stripped by taking the
    /// nearest orthogonal matrix (polar decomposition), and the quaternion has `a >= 0`.
    pub fn set_qform(&mut self, affine: &Affine, code: i32) -> std::result::Result<(), String> {
        let mut rzs = [[0.0f64; 3]; 3];
        for row in 0..3 {
            rzs[row].copy_from_slice(&affine[row][..3]);
        }
        let mut zooms = [0.0f64; 3];
        for (col, zoom) in zooms.iter_mut().enumerate() {
            *zoom = (0..3)
                .map(|row| rzs[row][col] * rzs[row][col])
                .sum::<f64>()
                .sqrt();
            if *zoom == 0.0 || !zoom.is_finite() {
                return Err(format!("affine column {col} is zero or not finite"));
            }
        }
        let mut rotation = [[0.0f64; 3]; 3];
        for row in 0..3 {
            for col in 0..3 {
                rotation[row][col] = rzs[row][col] / zooms[col];
            }
        }
        let qfac = if det3(&rotation) > 0.0 {
            1.0
        } else {
            for row in &mut rotation {
                row[2] = -row[2];
            }
            -1.0
        };
        let orthogonal = nearest_orthogonal(&rotation)?;
        let [a, b, c, d] = mat_to_quat(&orthogonal);
        let _ = a;
        self.qoffset = [affine[0][3], affine[1][3], affine[2][3]];
        self.pixdim[0] = qfac;
        self.pixdim[1..4].copy_from_slice(&zooms);
        self.quatern = [b, c, d];
        self.qform_code = code;
        Ok(())
    }

    /// Sets `dim` and the voxel sizes beyond the new rank as nibabel's `set_data_shape` does
    /// (unused dims and the zooms of dimensions past the rank become 1).
    pub fn set_shape(&mut self, shape: &[usize]) {
        self.dim = [1; 8];
        self.dim[0] = shape.len() as i64;
        for (axis, &size) in shape.iter().enumerate().take(7) {
            self.dim[axis + 1] = size as i64;
        }
        for size in self.pixdim.iter_mut().skip(shape.len() + 1) {
            *size = 1.0;
        }
    }

    /// Sets `datatype` and `bitpix` for a storage dtype. Bool and float16 have no NIfTI code.
    pub fn set_dtype(&mut self, dtype: DType) -> std::result::Result<(), String> {
        let code = code_from_dtype(dtype).ok_or_else(|| {
            format!("{dtype} cannot be stored in NIfTI (write bool as uint8, float16 as float32)")
        })?;
        self.datatype = code;
        self.bitpix = (8 * dtype.size()) as i16;
        Ok(())
    }

    /// A fresh header as nibabel's `Nifti1Image(data, affine)` / `Nifti2Image(data, affine)` make
    /// it (what nilearn's `new_img_like` writes): sform from the affine with code 2 (aligned),
    /// qform also set from the affine but with code 0, qfac and `pixdim[1..4]` from the affine,
    /// other pixdims 1, `xyzt_units` 0, no scaling, empty descrip.
    pub fn fresh(
        version: NiftiVersion,
        shape: &[usize],
        dtype: DType,
        affine: &Affine,
    ) -> std::result::Result<Header, String> {
        let mut header = Header::empty(version);
        header.set_shape(shape);
        header.set_dtype(dtype)?;
        header.set_sform(affine, 2);
        header.set_qform(affine, 0)?;
        Ok(header)
    }

    /// The header of an output that copies `source` (nilearn's `copy_header_from`): every field
    /// and extension kept (TR, units, codes, descrip, intent), scaling reset, `glmax` zeroed,
    /// `cal_min`/`cal_max` set to the data range, datatype set to the result dtype (nilearn keeps
    /// the source datatype; voxcalc deliberately writes the result's), shape set to the result's.
    pub fn copied_for_output(
        source: &Header,
        shape: &[usize],
        dtype: DType,
        data_range: (f64, f64),
    ) -> std::result::Result<Header, String> {
        let mut header = source.clone();
        header.set_shape(shape);
        header.set_dtype(dtype)?;
        header.scl_slope = 0.0;
        header.scl_inter = 0.0;
        header.legacy.glmax = 0;
        header.cal_min = data_range.0;
        header.cal_max = data_range.1;
        Ok(header)
    }

    /// A header with nibabel's defaults: everything zero except `pixdim` (all 1), `dim` (all 1,
    /// rank 0), `scl_slope` 1 and the single-file magic.
    pub fn empty(version: NiftiVersion) -> Header {
        let mut dim = [1i64; 8];
        dim[0] = 0;
        Header {
            version,
            byte_order: ByteOrder::native(),
            is_pair: false,
            dim,
            intent_p: [0.0; 3],
            intent_code: 0,
            intent_name: [0; 16],
            datatype: 0,
            bitpix: 0,
            slice_start: 0,
            slice_end: 0,
            slice_code: 0,
            pixdim: [1.0; 8],
            vox_offset: 0,
            scl_slope: 1.0,
            scl_inter: 0.0,
            cal_max: 0.0,
            cal_min: 0.0,
            slice_duration: 0.0,
            toffset: 0.0,
            xyzt_units: 0,
            dim_info: 0,
            descrip: [0; 80],
            aux_file: [0; 24],
            qform_code: 0,
            sform_code: 0,
            quatern: [0.0; 3],
            qoffset: [0.0; 3],
            srow: [
                [0.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 0.0],
            ],
            legacy: Nifti1Legacy::default(),
            extensions: Vec::new(),
        }
    }

    /// Bytes the extensions take on disk, extender included (0 without extensions: the 4-byte
    /// extender is then counted by [`NiftiVersion::single_vox_offset`]).
    fn extension_bytes(&self) -> usize {
        self.extensions
            .iter()
            .map(|ext| padded_extension_size(ext.content.len()))
            .sum()
    }

    /// Serialises the header, the extender and the extensions in native byte order for the
    /// chosen layout. `single_file` picks the magic and sets `vox_offset` to the first byte after
    /// the extensions (pairs get `vox_offset` 0). Scaling is written as nibabel writes unscaled
    /// data (`scl_slope` 1, `scl_inter` 0). Fails when a value does not fit NIfTI-1's narrower
    /// fields (a dim above 32767).
    pub fn to_bytes(&self, single_file: bool) -> std::result::Result<Vec<u8>, String> {
        let size = self.version.header_size();
        let ext_bytes = self.extension_bytes();
        let vox_offset = if single_file {
            (size + 4 + ext_bytes) as u64
        } else {
            0
        };
        let mut out = vec![0u8; size + 4 + ext_bytes];
        let mut w = Writer { out: &mut out };
        match self.version {
            NiftiVersion::Nifti1 => self.write_nifti1(&mut w, single_file, vox_offset)?,
            NiftiVersion::Nifti2 => self.write_nifti2(&mut w, single_file, vox_offset),
        }
        if !self.extensions.is_empty() {
            out[size] = 1;
            let mut pos = size + 4;
            for ext in &self.extensions {
                let esize = padded_extension_size(ext.content.len());
                let esize_i32 = i32::try_from(esize)
                    .map_err(|_| "an extension is larger than 2 GiB".to_string())?;
                out[pos..pos + 4].copy_from_slice(&esize_i32.to_ne_bytes());
                out[pos + 4..pos + 8].copy_from_slice(&ext.code.to_ne_bytes());
                out[pos + 8..pos + 8 + ext.content.len()].copy_from_slice(&ext.content);
                pos += esize;
            }
        }
        Ok(out)
    }

    fn write_nifti1(
        &self,
        w: &mut Writer<'_>,
        single_file: bool,
        vox_offset: u64,
    ) -> std::result::Result<(), String> {
        let narrow = |value: i64, what: &str| {
            i16::try_from(value)
                .map_err(|_| format!("{what} = {value} does not fit NIfTI-1 (int16); use NIfTI-2"))
        };
        w.i32(0, 348);
        w.bytes(4, &self.legacy.data_type);
        w.bytes(14, &self.legacy.db_name);
        w.i32(32, self.legacy.extents);
        w.i16(36, self.legacy.session_error);
        w.bytes(38, &[self.legacy.regular, self.dim_info]);
        for (axis, &size) in self.dim.iter().enumerate() {
            w.i16(40 + 2 * axis, narrow(size, "dim")?);
        }
        for (i, &p) in self.intent_p.iter().enumerate() {
            w.f32(56 + 4 * i, p);
        }
        w.i16(68, narrow(i64::from(self.intent_code), "intent_code")?);
        w.i16(70, self.datatype);
        w.i16(72, self.bitpix);
        w.i16(74, narrow(self.slice_start, "slice_start")?);
        for (i, &p) in self.pixdim.iter().enumerate() {
            w.f32(76 + 4 * i, p);
        }
        w.f32(108, vox_offset as f64);
        w.f32(112, 1.0);
        w.f32(116, 0.0);
        w.i16(120, narrow(self.slice_end, "slice_end")?);
        w.bytes(122, &[self.slice_code as u8, self.xyzt_units as u8]);
        w.f32(124, self.cal_max);
        w.f32(128, self.cal_min);
        w.f32(132, self.slice_duration);
        w.f32(136, self.toffset);
        w.i32(140, self.legacy.glmax);
        w.i32(144, self.legacy.glmin);
        w.bytes(148, &self.descrip);
        w.bytes(228, &self.aux_file);
        w.i16(252, narrow(i64::from(self.qform_code), "qform_code")?);
        w.i16(254, narrow(i64::from(self.sform_code), "sform_code")?);
        for i in 0..3 {
            w.f32(256 + 4 * i, self.quatern[i]);
            w.f32(268 + 4 * i, self.qoffset[i]);
        }
        for (row, srow) in self.srow.iter().enumerate() {
            for (col, &v) in srow.iter().enumerate() {
                w.f32(280 + 16 * row + 4 * col, v);
            }
        }
        w.bytes(328, &self.intent_name);
        w.bytes(344, if single_file { b"n+1\0" } else { b"ni1\0" });
        Ok(())
    }

    fn write_nifti2(&self, w: &mut Writer<'_>, single_file: bool, vox_offset: u64) {
        w.i32(0, 540);
        w.bytes(4, if single_file { b"n+2\0" } else { b"ni2\0" });
        w.bytes(8, &NIFTI2_EOL);
        w.i16(12, self.datatype);
        w.i16(14, self.bitpix);
        for (axis, &size) in self.dim.iter().enumerate() {
            w.i64(16 + 8 * axis, size);
        }
        for (i, &p) in self.intent_p.iter().enumerate() {
            w.f64(80 + 8 * i, p);
        }
        for (i, &p) in self.pixdim.iter().enumerate() {
            w.f64(104 + 8 * i, p);
        }
        w.i64(168, vox_offset as i64);
        w.f64(176, 1.0);
        w.f64(184, 0.0);
        w.f64(192, self.cal_max);
        w.f64(200, self.cal_min);
        w.f64(208, self.slice_duration);
        w.f64(216, self.toffset);
        w.i64(224, self.slice_start);
        w.i64(232, self.slice_end);
        w.bytes(240, &self.descrip);
        w.bytes(320, &self.aux_file);
        w.i32(344, self.qform_code);
        w.i32(348, self.sform_code);
        for i in 0..3 {
            w.f64(352 + 8 * i, self.quatern[i]);
            w.f64(376 + 8 * i, self.qoffset[i]);
        }
        for (row, srow) in self.srow.iter().enumerate() {
            for (col, &v) in srow.iter().enumerate() {
                w.f64(400 + 32 * row + 8 * col, v);
            }
        }
        w.i32(496, self.slice_code);
        w.i32(500, self.xyzt_units);
        w.i32(504, self.intent_code);
        w.bytes(508, &self.intent_name);
        w.bytes(524, &[self.dim_info]);
    }
}

fn version_name(version: NiftiVersion) -> &'static str {
    match version {
        NiftiVersion::Nifti1 => "NIfTI-1",
        NiftiVersion::Nifti2 => "NIfTI-2",
    }
}

fn padded_extension_size(content_len: usize) -> usize {
    (content_len + 8).div_ceil(16) * 16
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn parse_nifti1(f: &Fields<'_>) -> Header {
    let mut h = Header::empty(NiftiVersion::Nifti1);
    h.legacy = Nifti1Legacy {
        data_type: f.raw(4),
        db_name: f.raw(14),
        extents: f.i32(32),
        session_error: f.i16(36),
        regular: f.bytes[38],
        glmax: f.i32(140),
        glmin: f.i32(144),
    };
    h.dim_info = f.bytes[39];
    for axis in 0..8 {
        h.dim[axis] = i64::from(f.i16(40 + 2 * axis));
    }
    for i in 0..3 {
        h.intent_p[i] = f.f32(56 + 4 * i);
    }
    h.intent_code = i32::from(f.i16(68));
    h.datatype = f.i16(70);
    h.bitpix = f.i16(72);
    h.slice_start = i64::from(f.i16(74));
    for i in 0..8 {
        h.pixdim[i] = f.f32(76 + 4 * i);
    }
    h.vox_offset = offset_from_float(f.f32(108));
    h.scl_slope = f.f32(112);
    h.scl_inter = f.f32(116);
    h.slice_end = i64::from(f.i16(120));
    h.slice_code = i32::from(f.bytes[122]);
    h.xyzt_units = i32::from(f.bytes[123]);
    h.cal_max = f.f32(124);
    h.cal_min = f.f32(128);
    h.slice_duration = f.f32(132);
    h.toffset = f.f32(136);
    h.descrip = f.raw(148);
    h.aux_file = f.raw(228);
    h.qform_code = i32::from(f.i16(252));
    h.sform_code = i32::from(f.i16(254));
    for i in 0..3 {
        h.quatern[i] = f.f32(256 + 4 * i);
        h.qoffset[i] = f.f32(268 + 4 * i);
    }
    for row in 0..3 {
        for col in 0..4 {
            h.srow[row][col] = f.f32(280 + 16 * row + 4 * col);
        }
    }
    h.intent_name = f.raw(328);
    h
}

fn parse_nifti2(f: &Fields<'_>) -> Header {
    let mut h = Header::empty(NiftiVersion::Nifti2);
    h.datatype = f.i16(12);
    h.bitpix = f.i16(14);
    for axis in 0..8 {
        h.dim[axis] = f.i64(16 + 8 * axis);
    }
    for i in 0..3 {
        h.intent_p[i] = f.f64(80 + 8 * i);
    }
    for i in 0..8 {
        h.pixdim[i] = f.f64(104 + 8 * i);
    }
    let vox_offset = f.i64(168);
    h.vox_offset = if vox_offset < 0 {
        u64::MAX
    } else {
        vox_offset as u64
    };
    h.scl_slope = f.f64(176);
    h.scl_inter = f.f64(184);
    h.cal_max = f.f64(192);
    h.cal_min = f.f64(200);
    h.slice_duration = f.f64(208);
    h.toffset = f.f64(216);
    h.slice_start = f.i64(224);
    h.slice_end = f.i64(232);
    h.descrip = f.raw(240);
    h.aux_file = f.raw(320);
    h.qform_code = f.i32(344);
    h.sform_code = f.i32(348);
    for i in 0..3 {
        h.quatern[i] = f.f64(352 + 8 * i);
        h.qoffset[i] = f.f64(376 + 8 * i);
    }
    for row in 0..3 {
        for col in 0..4 {
            h.srow[row][col] = f.f64(400 + 32 * row + 8 * col);
        }
    }
    h.slice_code = f.i32(496);
    h.xyzt_units = f.i32(500);
    h.intent_code = f.i32(504);
    h.intent_name = f.raw(508);
    h.dim_info = f.bytes[524];
    h
}

/// nibabel reads `vox_offset` as `int(float)`; negative or non-finite offsets become
/// `u64::MAX`, which every later bounds check rejects.
fn offset_from_float(value: f64) -> u64 {
    if (0.0..1.8e19).contains(&value) {
        value.trunc() as u64
    } else {
        u64::MAX
    }
}

/// Writes native-endian numbers into a zeroed header buffer.
struct Writer<'a> {
    out: &'a mut [u8],
}

impl Writer<'_> {
    fn bytes(&mut self, offset: usize, value: &[u8]) {
        self.out[offset..offset + value.len()].copy_from_slice(value);
    }
    fn i16(&mut self, offset: usize, value: i16) {
        self.bytes(offset, &value.to_ne_bytes());
    }
    fn i32(&mut self, offset: usize, value: i32) {
        self.bytes(offset, &value.to_ne_bytes());
    }
    fn i64(&mut self, offset: usize, value: i64) {
        self.bytes(offset, &value.to_ne_bytes());
    }
    fn f32(&mut self, offset: usize, value: f64) {
        self.bytes(offset, &(value as f32).to_ne_bytes());
    }
    fn f64(&mut self, offset: usize, value: f64) {
        self.bytes(offset, &value.to_ne_bytes());
    }
}

fn identity() -> Affine {
    let mut out = [[0.0; 4]; 4];
    for (i, row) in out.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    out
}

/// nibabel's `quat2mat` (a unit or near-unit quaternion `w, x, y, z` to a rotation matrix),
/// evaluated in the same order and with the same 80-bit rounding.
fn quat_to_mat([w, x, y, z]: [Ext; 4]) -> [[Ext; 3]; 3] {
    let one = Ext::from(1.0);
    let nq = w * w + x * x + y * y + z * z;
    if nq.value() < f64::EPSILON {
        let zero = Ext::from(0.0);
        return [[one, zero, zero], [zero, one, zero], [zero, zero, one]];
    }
    let s = Ext::from(2.0) / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [one - (yy + zz), xy - wz, xz + wy],
        [xy + wz, one - (xx + zz), yz - wx],
        [xz - wy, yz + wx, one - (xx + yy)],
    ]
}

/// An x87 80-bit long double (64-bit significand), emulated as a double-double rounded to 64
/// significant bits after every operation, so the qform matches nibabel's bit for bit.
#[derive(Clone, Copy, Debug)]
struct Ext(Dd);

impl From<f64> for Ext {
    fn from(value: f64) -> Ext {
        Ext(Dd::from(value))
    }
}

impl Ext {
    /// Rounds a double-double to the nearest 64-bit-significand value. `sticky` carries the
    /// sign of what the double-double lost (positive: the exact value is larger); it breaks
    /// apparent ties, which are otherwise resolved to even.
    fn round_sticky(x: Dd, sticky: f64) -> Ext {
        if x.hi == 0.0 || !x.hi.is_finite() || x.lo == 0.0 {
            return Ext(x);
        }
        let biased = ((x.hi.to_bits() >> 52) & 0x7ff) as i32;
        if biased == 0 {
            return Ext(Dd::from(x.hi));
        }
        let mut exponent = biased - 1023;
        let is_power_of_two = x.hi.to_bits() & ((1u64 << 52) - 1) == 0;
        if is_power_of_two && (x.lo < 0.0) != (x.hi < 0.0) {
            exponent -= 1;
        }
        let ulp = 2f64.powi(exponent - 63);
        let scaled = x.lo / ulp;
        let floor = scaled.floor();
        let fraction = scaled - floor;
        let rounded = if fraction > 0.5 || (fraction == 0.5 && sticky > 0.0) {
            floor + 1.0
        } else if fraction < 0.5 || sticky < 0.0 {
            floor
        } else {
            scaled.round_ties_even()
        };
        Ext(Dd::quick_two_sum(x.hi, rounded * ulp))
    }
    fn round(x: Dd) -> Ext {
        Ext::round_sticky(x, 0.0)
    }
    /// The value rounded to f64 (as numpy does when storing into a float64 array).
    fn value(self) -> f64 {
        self.0.hi
    }
    fn sqrt(self) -> Ext {
        let root = self.0.sqrt();
        Ext::round_sticky(root, residual(self.0, root, root))
    }
}

impl std::ops::Add for Ext {
    type Output = Ext;
    fn add(self, other: Ext) -> Ext {
        Ext::round(self.0 + other.0)
    }
}

impl std::ops::Sub for Ext {
    type Output = Ext;
    fn sub(self, other: Ext) -> Ext {
        Ext::round(self.0 - other.0)
    }
}

impl std::ops::Mul for Ext {
    type Output = Ext;
    fn mul(self, other: Ext) -> Ext {
        Ext::round(self.0 * other.0)
    }
}

impl std::ops::Div for Ext {
    type Output = Ext;
    fn div(self, other: Ext) -> Ext {
        let quotient = self.0 / other.0;
        Ext::round_sticky(quotient, residual(self.0, other.0, quotient) / other.0.hi)
    }
}

/// The sign-accurate remainder `a - b * c`: products are split exactly with fma and summed from
/// the largest terms down, so an exact cancellation (an apparent rounding tie) leaves the tiny
/// true remainder.
fn residual(a: Dd, b: Dd, c: Dd) -> f64 {
    let p = b.hi * c.hi;
    let e = b.hi.mul_add(c.hi, -p);
    let mut r = a.hi - p;
    r -= e;
    r += a.lo;
    r -= b.hi * c.lo;
    r -= b.lo * c.hi;
    r -= b.lo * c.lo;
    r
}

/// A double-double number (`hi + lo`, about 106 significant bits).
#[derive(Clone, Copy, Debug)]
struct Dd {
    hi: f64,
    lo: f64,
}

impl From<f64> for Dd {
    fn from(value: f64) -> Dd {
        Dd { hi: value, lo: 0.0 }
    }
}

impl Dd {
    fn two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        let bb = s - a;
        Dd {
            hi: s,
            lo: (a - (s - bb)) + (b - bb),
        }
    }
    fn quick_two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        Dd {
            hi: s,
            lo: b - (s - a),
        }
    }
    fn sqrt(self) -> Dd {
        if self.hi <= 0.0 {
            return Dd::from(0.0);
        }
        let approx = self.hi.sqrt();
        // One Newton step: x + (a - x^2) / (2x).
        let square = Dd::from(approx) * Dd::from(approx);
        let residual = self - square;
        Dd::quick_two_sum(approx, residual.hi / (2.0 * approx))
    }
}

impl std::ops::Add for Dd {
    type Output = Dd;
    fn add(self, other: Dd) -> Dd {
        let s = Dd::two_sum(self.hi, other.hi);
        let t = Dd::two_sum(self.lo, other.lo);
        let u = Dd::quick_two_sum(s.hi, s.lo + t.hi);
        Dd::quick_two_sum(u.hi, u.lo + t.lo)
    }
}

impl std::ops::Neg for Dd {
    type Output = Dd;
    fn neg(self) -> Dd {
        Dd {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl std::ops::Sub for Dd {
    type Output = Dd;
    fn sub(self, other: Dd) -> Dd {
        self + (-other)
    }
}

impl std::ops::Mul for Dd {
    type Output = Dd;
    fn mul(self, other: Dd) -> Dd {
        let p = self.hi * other.hi;
        let e = self.hi.mul_add(other.hi, -p);
        Dd::quick_two_sum(p, e + (self.hi * other.lo + self.lo * other.hi))
    }
}

impl std::ops::Div for Dd {
    type Output = Dd;
    fn div(self, other: Dd) -> Dd {
        let q1 = self.hi / other.hi;
        let r = self - other * Dd::from(q1);
        let q2 = r.hi / other.hi;
        let r = r - other * Dd::from(q2);
        let q3 = r.hi / other.hi;
        let q = Dd::quick_two_sum(q1, q2);
        q + Dd::from(q3)
    }
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// The orthogonal factor of the polar decomposition (what nibabel gets from `P @ Qs` of an SVD),
/// by Newton's iteration `X <- (X + X^-T) / 2`, which converges quadratically for a non-singular
/// matrix.
fn nearest_orthogonal(m: &[[f64; 3]; 3]) -> std::result::Result<[[f64; 3]; 3], String> {
    let mut x = *m;
    for _ in 0..100 {
        let det = det3(&x);
        if det == 0.0 || !det.is_finite() {
            return Err("the affine's 3x3 part is singular".to_string());
        }
        // Inverse transpose = cofactor matrix / det.
        let mut next = [[0.0f64; 3]; 3];
        let mut change = 0.0f64;
        for row in 0..3 {
            for col in 0..3 {
                let (r1, r2) = ((row + 1) % 3, (row + 2) % 3);
                let (c1, c2) = ((col + 1) % 3, (col + 2) % 3);
                let cofactor = x[r1][c1] * x[r2][c2] - x[r1][c2] * x[r2][c1];
                next[row][col] = 0.5 * (x[row][col] + cofactor / det);
                change = change.max((next[row][col] - x[row][col]).abs());
            }
        }
        x = next;
        if change < 1e-15 {
            break;
        }
    }
    Ok(x)
}

/// Rotation matrix to a unit quaternion `[a, b, c, d]` with `a >= 0` (Shepperd's method; nibabel
/// takes the dominant eigenvector of Bar-Itzhack's matrix, which is the same quaternion for an
/// orthogonal input).
fn mat_to_quat(m: &[[f64; 3]; 3]) -> [f64; 4] {
    let trace = m[0][0] + m[1][1] + m[2][2];
    let mut q = if trace > 0.0 {
        let s = (trace + 1.0).sqrt() * 2.0;
        [
            0.25 * s,
            (m[2][1] - m[1][2]) / s,
            (m[0][2] - m[2][0]) / s,
            (m[1][0] - m[0][1]) / s,
        ]
    } else if m[0][0] > m[1][1] && m[0][0] > m[2][2] {
        let s = (1.0 + m[0][0] - m[1][1] - m[2][2]).sqrt() * 2.0;
        [
            (m[2][1] - m[1][2]) / s,
            0.25 * s,
            (m[0][1] + m[1][0]) / s,
            (m[0][2] + m[2][0]) / s,
        ]
    } else if m[1][1] > m[2][2] {
        let s = (1.0 + m[1][1] - m[0][0] - m[2][2]).sqrt() * 2.0;
        [
            (m[0][2] - m[2][0]) / s,
            (m[0][1] + m[1][0]) / s,
            0.25 * s,
            (m[1][2] + m[2][1]) / s,
        ]
    } else {
        let s = (1.0 + m[2][2] - m[0][0] - m[1][1]).sqrt() * 2.0;
        [
            (m[1][0] - m[0][1]) / s,
            (m[0][2] + m[2][0]) / s,
            (m[1][2] + m[2][1]) / s,
            0.25 * s,
        ]
    };
    let norm = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    for v in &mut q {
        *v /= norm;
    }
    if q[0] < 0.0 {
        for v in &mut q {
            *v = -*v;
        }
    }
    q
}

/// Maps an error message about a header value to a [`NiftiError`] about `path`.
pub(crate) fn header_error(path: &Path, detail: String) -> NiftiError {
    NiftiError::new(ErrorKind::CannotWrite, path, detail)
}
