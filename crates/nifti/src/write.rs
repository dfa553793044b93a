//! Writing images: the caller fills the data buffer in place, then [`OutputImage::finish`]
//! writes the files to temp names beside the targets and renames them into place.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;
use rayon::prelude::*;
use tempfile::NamedTempFile;
use voxcalc_types::DType;

use crate::error::{ErrorKind, NiftiError, Result};
use crate::gz::{gzip_member, stored_member};
use crate::header::{header_error, ByteOrder, Header};
use crate::paths::{has_gz_suffix, output_files, ImageFiles};
use crate::read::{anon_buffer, touch_pages};

/// How to write an image.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// libdeflate level for `.gz` outputs: 0 stores, 1 (the default) is fastest, 12 smallest.
    /// libdeflate's level 1 gives files slightly smaller than zlib's level 1 (what nibabel
    /// writes) at a fraction of its CPU time. At level 1, a member whose sample shows that
    /// matching would save less than 10% is Huffman-coded only ([`crate::deflate`]), about
    /// five times faster than libdeflate on noisy float data and as small.
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
pub(crate) fn temp_beside(target: &Path) -> Result<NamedTempFile> {
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

/// An output's files and the header as it will be written.
pub(crate) struct Prepared {
    pub files: ImageFiles,
    /// The header as the file will say it: native order, its magic and offset, no scaling.
    pub header: Header,
    /// The header serialised for the layout (extensions included).
    pub header_bytes: Vec<u8>,
    /// Bytes of data the header declares.
    pub data_len: usize,
}

/// Works out an output's files and checks that `header` can be written there (the header
/// policy shared by [`OutputImage`] and [`crate::OutputStream`]).
pub(crate) fn prepare(path: &Path, header: &Header) -> Result<Prepared> {
    let files = output_files(path)?;
    let mut header = header.clone();
    let single = matches!(files, ImageFiles::Single(_));
    let header_bytes = header
        .to_bytes(single)
        .map_err(|detail| header_error(path, detail))?;
    header.byte_order = ByteOrder::native();
    header.is_pair = !single;
    header.vox_offset = if single { header_bytes.len() as u64 } else { 0 };
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    header
        .validate_for_write(path)
        .map_err(|e| NiftiError::new(ErrorKind::CannotWrite, path, e.to_string()))?;
    let data_len = header.data_bytes();
    Ok(Prepared {
        files,
        header,
        header_bytes,
        data_len,
    })
}

/// The header bytes to write at `finish`, checked against what was laid out at `create`: the
/// data size and (for single files) the header's length must not have changed.
pub(crate) fn final_header_bytes(
    header: &Header,
    single: bool,
    data_len: usize,
    reserved_len: Option<usize>,
    path: &Path,
) -> Result<Vec<u8>> {
    if header.data_bytes() != data_len {
        return Err(NiftiError::new(
            ErrorKind::CannotWrite,
            path,
            "the header's shape or dtype changed after the output was created",
        ));
    }
    let header_bytes = header
        .to_bytes(single)
        .map_err(|detail| header_error(path, detail))?;
    if reserved_len.is_some_and(|len| len != header_bytes.len()) {
        return Err(NiftiError::new(
            ErrorKind::CannotWrite,
            path,
            "the header's extensions changed after the output was created",
        ));
    }
    Ok(header_bytes)
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
        let Prepared {
            files,
            header,
            header_bytes,
            data_len,
        } = prepare(path, header)?;
        let single = matches!(files, ImageFiles::Single(_));
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
        let reserved = (single && buffer_is_target).then_some(data_start);
        let header_bytes = final_header_bytes(&header, single, data_len, reserved, &main_path)?;
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
                    write_gzip(temp.as_file(), Some(&header_bytes), data, &options, target)?;
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
                    write_gzip(temp.as_file(), None, data, &options, data_path)?;
                    persist(Some(temp), data_path)?;
                }
                crate::stream::write_header_file(header_path, &header_bytes, &options)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn persist(temp: Option<NamedTempFile>, target: &Path) -> Result<()> {
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

/// Writes gzip members to a file: data blocks are compressed in parallel batches (rayon), each
/// batch while the previous batch's members are written, so compression and writing overlap and
/// only about two batches of compressed output are held at a time. Used by both
/// [`OutputImage::finish`] and [`crate::OutputStream`], so both write identical bytes.
pub(crate) struct MemberWriter {
    out: BufWriter<File>,
    level: u32,
    /// Compressed members of the previous batch, not yet written.
    pending: Vec<io::Result<Vec<u8>>>,
    /// Buffers of written members, reused for later members (no fresh pages to fault in).
    pool: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl MemberWriter {
    /// Writes members to `file` from its current position.
    pub(crate) fn new(file: File, options: &WriteOptions) -> MemberWriter {
        MemberWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            level: options.compression_level,
            pending: Vec::new(),
            pool: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Writes `bytes` as they are (e.g. a member built elsewhere), after any pending members.
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_pending()?;
        self.out.write_all(bytes)
    }

    /// Compresses each block as one member (in parallel) while writing the previous batch.
    pub(crate) fn push_batch(&mut self, blocks: &[&[u8]]) -> io::Result<()> {
        let level = self.level;
        let pending = std::mem::take(&mut self.pending);
        let MemberWriter { out, pool, .. } = self;
        let pool = &*pool;
        let compress = |body: &&[u8]| {
            let buffer = pool
                .lock()
                .ok()
                .and_then(|mut p| p.pop())
                .unwrap_or_default();
            gzip_member(body, level, buffer)
        };
        let (written, compressed) = rayon::join(
            || write_members(out, pool, pending),
            || blocks.par_iter().map(compress).collect::<Vec<_>>(),
        );
        written?;
        self.pending = compressed;
        Ok(())
    }

    fn write_pending(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        write_members(&mut self.out, &self.pool, pending)
    }

    /// Writes what is pending, flushes, and hands the file back.
    pub(crate) fn finish(mut self) -> io::Result<File> {
        self.write_pending()?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

fn write_members(
    out: &mut BufWriter<File>,
    pool: &std::sync::Mutex<Vec<Vec<u8>>>,
    members: Vec<io::Result<Vec<u8>>>,
) -> io::Result<()> {
    for member in members {
        let member = member?;
        out.write_all(&member)?;
        if let Ok(mut pool) = pool.lock() {
            pool.push(member);
        }
    }
    Ok(())
}

/// Blocks per parallel batch: enough to keep every core busy while the previous batch is
/// written.
pub(crate) fn blocks_per_batch() -> usize {
    (rayon::current_num_threads() * 8).max(1)
}

/// The effective uncompressed size of one gzip member.
pub(crate) fn block_size(options: &WriteOptions) -> usize {
    options.gzip_block_size.max(4096)
}

/// Writes a gzip file to `file`: `prefix` (the header of a single-file image, or nothing) as
/// one stored member, then `data` as members of [`block_size`] bytes compressed in parallel.
pub(crate) fn write_gzip(
    file: &File,
    prefix: Option<&[u8]>,
    data: &[u8],
    options: &WriteOptions,
    target: &Path,
) -> Result<()> {
    let write_error = |e: io::Error| NiftiError::io(target, "cannot write", e);
    let handle = file.try_clone().map_err(write_error)?;
    let mut writer = MemberWriter::new(handle, options);
    if let Some(prefix) = prefix {
        writer
            .write_raw(&stored_member(prefix).map_err(write_error)?)
            .map_err(write_error)?;
    }
    let blocks: Vec<&[u8]> = data.chunks(block_size(options)).collect();
    for batch in blocks.chunks(blocks_per_batch()) {
        writer.push_batch(batch).map_err(write_error)?;
    }
    writer.finish().map_err(write_error)?;
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
