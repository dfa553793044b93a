//! Writing images: the caller fills the data buffer in place, then [`OutputImage::finish`]
//! writes the files to temp names beside the targets and renames them into place.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use memmap2::MmapMut;
use rayon::prelude::*;
use tempfile::NamedTempFile;
use voxcalc_types::DType;

use crate::error::{ErrorKind, NiftiError, Result};
use crate::gz::gzip_member;
use crate::header::{header_error, ByteOrder, Header};
use crate::paths::{has_gz_suffix, output_files, ImageFiles};
use crate::read::{anon_buffer, touch_pages};

/// How to write an image.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// gzip level 0-9 for `.gz` outputs; nibabel writes level 1.
    pub compression_level: u32,
    /// Uncompressed bytes per gzip member: each block is compressed independently, in
    /// parallel, and the members are concatenated (a valid multi-member gzip file that nibabel,
    /// Python's gzip, zlib and FSL read). Members record their size (a gzip extra subfield), so
    /// voxcalc reads its own files back in parallel.
    pub gzip_block_size: usize,
    /// A `.gz` output's uncompressed data up to this size are buffered in memory; larger ones in
    /// a mapped temp file beside the target.
    pub memory_budget: u64,
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            compression_level: 1,
            gzip_block_size: 1 << 20,
            memory_budget: 4 << 30,
        }
    }
}

/// An output file (or pair) being written: created with [`OutputImage::create`], filled through
/// [`OutputImage::data_mut`] (native byte order, the header's dtype, Fortran order), then
/// committed with [`OutputImage::finish`]. Dropping it without `finish` removes every temp file
/// and leaves the targets untouched.
pub struct OutputImage {
    header: Header,
    files: ImageFiles,
    options: WriteOptions,
    /// The data buffer: for a plain `.nii` the mapping of the whole temp file (header first);
    /// otherwise just the data.
    buffer: MmapMut,
    data_start: usize,
    data_len: usize,
    /// The temp file behind `buffer` when it is file-backed (plain `.nii`/`.img`, or a spill).
    buffer_file: Option<NamedTempFile>,
    /// True when `buffer_file` is the final data file (plain output) rather than a spill buffer.
    buffer_is_target: bool,
}

/// A temp file in the directory of `target`, readable like a normal output file.
fn temp_beside(target: &Path) -> Result<NamedTempFile> {
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".voxcalc-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder
        .tempfile_in(&dir)
        .map_err(|e| NiftiError::io(target, "cannot create a temp file beside the output", e))
}

/// Maps a freshly sized temp file for writing.
fn map_temp(temp: &NamedTempFile, len: u64, target: &Path) -> Result<MmapMut> {
    temp.as_file()
        .set_len(len)
        .map_err(|e| NiftiError::io(target, "cannot size the output file", e))?;
    // SAFETY: the temp file was just created by this process under a random name and is only
    // reachable through this mapping until it is renamed at `finish`, after the last write.
    unsafe { MmapMut::map_mut(temp.as_file()) }
        .map_err(|e| NiftiError::io(target, "cannot memory-map the output file", e))
}

impl OutputImage {
    /// Prepares an output at `path` (`.nii`, `.nii.gz`, `.hdr`/`.img`, each optionally `.gz`)
    /// for `header` (its version, shape, dtype, affine fields and extensions are written; scaling
    /// is written as none). Nothing appears at `path` until [`OutputImage::finish`].
    pub fn create(
        path: impl AsRef<Path>,
        header: &Header,
        options: &WriteOptions,
    ) -> Result<OutputImage> {
        let path = path.as_ref();
        let files = output_files(path)?;
        let mut header = header.clone();
        let single = matches!(files, ImageFiles::Single(_));
        let header_bytes = header
            .to_bytes(single)
            .map_err(|detail| header_error(path, detail))?;
        // What the file will say: native order, its magic and offset, no scaling.
        header.byte_order = ByteOrder::native();
        header.is_pair = !single;
        header.vox_offset = if single { header_bytes.len() as u64 } else { 0 };
        header.scl_slope = 1.0;
        header.scl_inter = 0.0;
        header
            .validate_for_write(path)
            .map_err(|e| NiftiError::new(ErrorKind::CannotWrite, path, e.to_string()))?;
        let data_len = header.data_bytes();
        let (data_target, data_gz) = match &files {
            ImageFiles::Single(file) => (file.clone(), has_gz_suffix(file)),
            ImageFiles::Pair { data, .. } => (data.clone(), has_gz_suffix(data)),
        };
        let (buffer, buffer_file, data_start, buffer_is_target) = if !data_gz {
            let prefix = if single { header_bytes.len() } else { 0 };
            let temp = temp_beside(&data_target)?;
            let mut map = map_temp(&temp, (prefix + data_len) as u64, &data_target)?;
            map[..prefix].copy_from_slice(&header_bytes[..prefix]);
            (map, Some(temp), prefix, true)
        } else if data_len as u64 <= options.memory_budget {
            let mut map = anon_buffer(data_len)
                .map_err(|e| NiftiError::io(path, "cannot allocate the output buffer", e))?;
            // Fault the pages in on all cores now rather than one by one while the caller fills
            // the buffer.
            map.par_chunks_mut(1 << 21).for_each(touch_pages);
            (map, None, 0, false)
        } else {
            let temp = temp_beside(&data_target)?;
            let map = map_temp(&temp, data_len as u64, &data_target)?;
            (map, Some(temp), 0, false)
        };
        Ok(OutputImage {
            header,
            files,
            options: options.clone(),
            buffer,
            data_start,
            data_len,
            buffer_file,
            buffer_is_target,
        })
    }

    /// The header that will be written. Fields may be changed through
    /// [`OutputImage::header_mut`] until `finish`, except those that change the data layout.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Mutable header access, e.g. to set `cal_min`/`cal_max` once the data are known. Changing
    /// shape, dtype or extensions makes `finish` fail.
    pub fn header_mut(&mut self) -> &mut Header {
        &mut self.header
    }

    /// The data buffer to fill: native byte order, the header's dtype, Fortran order, exactly
    /// `n_voxels * dtype.size()` bytes, zero-initialised.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer[self.data_start..self.data_start + self.data_len]
    }

    /// The data written so far.
    pub fn data(&self) -> &[u8] {
        &self.buffer[self.data_start..self.data_start + self.data_len]
    }

    /// Sets `cal_min`/`cal_max` to the minimum and maximum of the data as nilearn does
    /// (`np.min`/`np.max`: a NaN anywhere makes both NaN).
    pub fn set_cal_range_from_data(&mut self) {
        let dtype = self.header.dtype().unwrap_or(DType::U8);
        let (min, max) = native_range(self.data(), dtype);
        self.header.cal_min = min;
        self.header.cal_max = max;
    }

    /// Writes the header and data to temp files beside the targets and renames them into place
    /// (data file first for pairs).
    pub fn finish(self) -> Result<()> {
        let OutputImage {
            header,
            files,
            options,
            buffer,
            data_start,
            data_len,
            buffer_file,
            buffer_is_target,
        } = self;
        let single = matches!(files, ImageFiles::Single(_));
        let main_path = files.all()[0].to_path_buf();
        if header.data_bytes() != data_len {
            return Err(NiftiError::new(
                ErrorKind::CannotWrite,
                &main_path,
                "the header's shape or dtype changed after the output was created",
            ));
        }
        let header_bytes = header
            .to_bytes(single)
            .map_err(|detail| header_error(&main_path, detail))?;
        if single && header_bytes.len() != data_start && buffer_is_target {
            return Err(NiftiError::new(
                ErrorKind::CannotWrite,
                &main_path,
                "the header's extensions changed after the output was created",
            ));
        }
        let data = &buffer[data_start..data_start + data_len];
        match &files {
            ImageFiles::Single(target) => {
                if buffer_is_target {
                    let mut buffer = buffer;
                    buffer[..data_start].copy_from_slice(&header_bytes);
                    // The mapping's pages are the page cache itself: once unmapped, readers of
                    // the renamed file see the data. No msync (nibabel does not fsync either).
                    drop(buffer);
                    persist(buffer_file, target)?;
                } else {
                    let temp = temp_beside(target)?;
                    write_gzip(temp.as_file(), &header_bytes, data, &options, target)?;
                    persist(Some(temp), target)?;
                }
            }
            ImageFiles::Pair {
                header: header_path,
                data: data_path,
            } => {
                if buffer_is_target {
                    drop(buffer);
                    persist(buffer_file, data_path)?;
                } else {
                    let temp = temp_beside(data_path)?;
                    write_gzip(temp.as_file(), &[], data, &options, data_path)?;
                    persist(Some(temp), data_path)?;
                }
                let temp = temp_beside(header_path)?;
                if has_gz_suffix(header_path) {
                    write_gzip(temp.as_file(), &header_bytes, &[], &options, header_path)?;
                } else {
                    let mut file = temp.as_file();
                    file.write_all(&header_bytes)
                        .map_err(|e| NiftiError::io(header_path, "cannot write", e))?;
                }
                persist(Some(temp), header_path)?;
            }
        }
        Ok(())
    }
}

fn persist(temp: Option<NamedTempFile>, target: &Path) -> Result<()> {
    let Some(temp) = temp else {
        return Err(NiftiError::new(
            ErrorKind::CannotWrite,
            target,
            "no temp file to rename",
        ));
    };
    temp.persist(target)
        .map_err(|e| NiftiError::io(target, "cannot rename the temp file onto", e.error))?;
    Ok(())
}

/// Compresses `prefix` followed by `data` as gzip members of `options.gzip_block_size`
/// uncompressed bytes each (the first member carries the prefix), compressing in parallel
/// batches and writing the members in order to `file`. A block size of `usize::MAX` gives one
/// member, as nibabel writes. Each member records its size in a gzip extra subfield, so that
/// voxcalc can inflate the members of its own files in parallel.
fn write_gzip(
    file: &File,
    prefix: &[u8],
    data: &[u8],
    options: &WriteOptions,
    target: &Path,
) -> Result<()> {
    let level = Compression::new(options.compression_level.min(9));
    let block_size = options.gzip_block_size.max(4096);
    let first_len = block_size.saturating_sub(prefix.len()).min(data.len());
    let mut blocks: Vec<(&[u8], &[u8])> = vec![(prefix, &data[..first_len])];
    blocks.extend(
        data[first_len..]
            .chunks(block_size)
            .map(|chunk| (&[][..], chunk)),
    );
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let batch = (rayon::current_num_threads() * 8).max(1);
    let write_error = |e: io::Error| NiftiError::io(target, "cannot write", e);
    // Written members' buffers are reused for later members.
    let pool = std::sync::Mutex::new(Vec::<Vec<u8>>::new());
    let compress = |(head, body): &(&[u8], &[u8])| {
        let buffer = pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        gzip_member(head, body, level, buffer)
    };
    let write_members = |out: &mut BufWriter<&File>, members: Vec<io::Result<Vec<u8>>>| {
        for member in members {
            let member = member?;
            out.write_all(&member)?;
            if let Ok(mut pool) = pool.lock() {
                pool.push(member);
            }
        }
        io::Result::Ok(())
    };
    // Each batch is compressed in parallel while the previous batch is written.
    let mut pending = Vec::new();
    for group in blocks.chunks(batch) {
        let to_write = std::mem::take(&mut pending);
        let (written, compressed) = rayon::join(
            || write_members(&mut out, to_write),
            || group.par_iter().map(compress).collect::<Vec<_>>(),
        );
        written.map_err(write_error)?;
        pending = compressed;
    }
    write_members(&mut out, pending).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    Ok(())
}

/// `(min, max)` of native-order data as f64: NaN if any element is NaN (numpy's `min`/`max`),
/// `(0, 0)` for no data (nilearn's `cal_min`/`cal_max` rule).
pub fn native_range(bytes: &[u8], dtype: DType) -> (f64, f64) {
    macro_rules! range_of {
        ($t:ty) => {{
            let size = std::mem::size_of::<$t>();
            let mut min = f64::INFINITY;
            let mut max = f64::NEG_INFINITY;
            let mut any_nan = false;
            for chunk in bytes.chunks_exact(size) {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(chunk);
                let value = <$t>::from_ne_bytes(raw) as f64;
                if value.is_nan() {
                    any_nan = true;
                }
                min = min.min(value);
                max = max.max(value);
            }
            if bytes.is_empty() {
                (0.0, 0.0)
            } else if any_nan {
                (f64::NAN, f64::NAN)
            } else {
                (min, max)
            }
        }};
    }
    match dtype {
        DType::U8 | DType::Bool => range_of!(u8),
        DType::I8 => range_of!(i8),
        DType::U16 => range_of!(u16),
        DType::I16 => range_of!(i16),
        DType::U32 => range_of!(u32),
        DType::I32 => range_of!(i32),
        DType::U64 => range_of!(u64),
        DType::I64 => range_of!(i64),
        DType::F32 => range_of!(f32),
        DType::F64 | DType::F16 => range_of!(f64),
    }
}
