//! Reading images: `.nii` is memory-mapped (the data are a view into the file, no copy);
//! gzipped files are inflated once, streaming, into an anonymous mapping or, past the memory
//! budget, into a mapped temp file.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap, MmapMut, UncheckedAdvice};
use rayon::prelude::*;
use voxcalc_types::DType;

use crate::error::{ErrorKind, NiftiError, Result};
use crate::gz::GzSlice;
use crate::header::{
    detect_version, Affine, ByteOrder, Header, Scaling, DEFAULT_MAX_DATA_BYTES, NIFTI2_HEADER_SIZE,
};
use crate::paths::{image_files, ImageFiles};

/// deflate cannot expand more than 1032:1; a header declaring more data than its compressed
/// file could hold is refused before anything is allocated.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// How to read an image.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Decompressed data up to this many bytes live in memory; larger data go to a mapped temp
    /// file in `temp_dir`.
    pub memory_budget: u64,
    /// Upper bound on the data size a header may declare (a guard against hostile headers).
    pub max_data_bytes: u64,
    /// Directory for spill files (default: the system temp dir).
    pub temp_dir: Option<PathBuf>,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            memory_budget: 4 << 30,
            max_data_bytes: DEFAULT_MAX_DATA_BYTES,
            temp_dir: None,
        }
    }
}

/// Where an image's data bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// A read-only mapping of the image file itself: no copy was made.
    MappedFile,
    /// Inflated into anonymous memory.
    Decompressed,
    /// Inflated into a temp file (past the memory budget) that is mapped.
    DecompressedToTempFile,
    /// Built in memory by [`NiftiImage::from_memory`] (e.g. a REPL result), never read from a
    /// file.
    Memory,
    /// A gzipped file opened by [`NiftiImage::open_streamed`]: only the header was read; the
    /// data are inflated chunk by chunk by each [`NiftiImage::stream_data`] call and are never
    /// resident as a whole ([`NiftiImage::raw`] has no bytes).
    Streamed,
}

/// The mapping holding the data, kept alive with the image.
enum Storage {
    Map(Mmap),
    TempFile {
        map: Mmap,
        _file: File,
    },
    /// The mapped gzip file of a streamed image; no data are held.
    Compressed(Mmap),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Map(map) => map,
            Storage::TempFile { map, .. } => map,
            Storage::Compressed(_) => &[],
        }
    }
}

/// An opened image: header, affine and a view of the data in their storage dtype.
pub struct NiftiImage {
    path: PathBuf,
    header: Header,
    shape: Vec<usize>,
    affine: Affine,
    storage: Storage,
    data_start: usize,
    data_len: usize,
    source: DataSource,
}

/// The data as stored: bytes in the file's byte order, the storage dtype and the shape. Voxel
/// `(i, j, k, ...)` is element `i + n_i * (j + n_j * (k + ...))` (Fortran order).
#[derive(Clone, Copy, Debug)]
pub struct RawView<'a> {
    /// The data bytes (`n_voxels * dtype.size()` of them).
    pub bytes: &'a [u8],
    /// Storage dtype.
    pub dtype: DType,
    /// Byte order of the elements.
    pub byte_order: ByteOrder,
    /// Shape, `dim[1..=dim[0]]`.
    pub shape: &'a [usize],
}

impl RawView<'_> {
    /// Number of elements.
    pub fn n_voxels(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }

    /// True when elements can be used in place by native code (native byte order).
    pub fn is_native_order(&self) -> bool {
        self.byte_order == ByteOrder::native()
    }

    /// True when the first byte is aligned to the element size (mapped files with an odd
    /// `vox_offset` are not).
    pub fn is_aligned(&self) -> bool {
        (self.bytes.as_ptr() as usize).is_multiple_of(self.dtype.size())
    }

    fn element<const N: usize>(&self, voxel_idx: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[voxel_idx * N..voxel_idx * N + N]);
        if self.byte_order != ByteOrder::native() {
            out.reverse();
        }
        out
    }

    /// Element `voxel_idx` converted to f64 (unscaled). Panics when out of range, like slice
    /// indexing.
    pub fn value_f64(&self, voxel_idx: usize) -> f64 {
        match self.dtype {
            DType::U8 => f64::from(self.bytes[voxel_idx]),
            DType::I8 => f64::from(self.bytes[voxel_idx] as i8),
            DType::U16 => f64::from(u16::from_ne_bytes(self.element(voxel_idx))),
            DType::I16 => f64::from(i16::from_ne_bytes(self.element(voxel_idx))),
            DType::U32 => f64::from(u32::from_ne_bytes(self.element(voxel_idx))),
            DType::I32 => f64::from(i32::from_ne_bytes(self.element(voxel_idx))),
            DType::U64 => u64::from_ne_bytes(self.element(voxel_idx)) as f64,
            DType::I64 => i64::from_ne_bytes(self.element(voxel_idx)) as f64,
            DType::F32 => f64::from(f32::from_ne_bytes(self.element(voxel_idx))),
            DType::F64 => f64::from_ne_bytes(self.element(voxel_idx)),
            DType::Bool | DType::F16 => f64::NAN,
        }
    }

    /// Element `voxel_idx` of an integer dtype as an exact integer (`None` for float dtypes).
    pub fn value_i128(&self, voxel_idx: usize) -> Option<i128> {
        Some(match self.dtype {
            DType::U8 => i128::from(self.bytes[voxel_idx]),
            DType::I8 => i128::from(self.bytes[voxel_idx] as i8),
            DType::U16 => i128::from(u16::from_ne_bytes(self.element(voxel_idx))),
            DType::I16 => i128::from(i16::from_ne_bytes(self.element(voxel_idx))),
            DType::U32 => i128::from(u32::from_ne_bytes(self.element(voxel_idx))),
            DType::I32 => i128::from(i32::from_ne_bytes(self.element(voxel_idx))),
            DType::U64 => i128::from(u64::from_ne_bytes(self.element(voxel_idx))),
            DType::I64 => i128::from(i64::from_ne_bytes(self.element(voxel_idx))),
            _ => return None,
        })
    }
}

impl NiftiImage {
    /// Opens an image with the default [`ReadOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<NiftiImage> {
        NiftiImage::open_with(path, &ReadOptions::default())
    }

    /// Opens `.nii`, `.nii.gz`, `.hdr`/`.img` (each optionally gzipped; gzip is detected from
    /// the magic bytes, not the name) and validates header, extensions and data size.
    pub fn open_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<NiftiImage> {
        let path = path.as_ref();
        match image_files(path)? {
            ImageFiles::Single(file) => open_single(&file, options),
            ImageFiles::Pair { header, data } => open_pair(&header, &data, options),
        }
    }

    /// Opens a single-file gzipped image for streaming: reads and validates the header and the
    /// extensions only. Its data are read by [`NiftiImage::stream_data`], which inflates the
    /// file again on each call, chunk by chunk, so they are never resident as a whole. Any
    /// other image is opened as [`NiftiImage::open_with`] opens it.
    pub fn open_streamed(path: impl AsRef<Path>, options: &ReadOptions) -> Result<NiftiImage> {
        let path = path.as_ref();
        if let ImageFiles::Single(file_path) = image_files(path)? {
            let file = open_file(&file_path)?;
            if starts_with_gzip_magic(&file, &file_path)? {
                return open_single_gz_streamed(&file_path, &file, options);
            }
        }
        NiftiImage::open_with(path, options)
    }

    /// Hands the data bytes (as stored) to `consume` in order, in chunks of `chunk_len` bytes
    /// (the last may be shorter), stopping at the first error `consume` returns (the outer
    /// `Ok`). For a streamed image the file is inflated on a helper thread into two reused
    /// chunk buffers, one chunk ahead of `consume`, and the pages of the compressed file are
    /// released as they are passed; the gzip CRC is checked at the end, so a damaged file is
    /// an `Err` after the chunks before the damage were consumed. Other images hand over
    /// slices of their data.
    pub fn stream_data<C>(
        &self,
        chunk_len: usize,
        consume: &mut dyn FnMut(&[u8]) -> std::result::Result<(), C>,
    ) -> Result<std::result::Result<(), C>> {
        let chunk_len = chunk_len.max(1);
        let Storage::Compressed(compressed) = &self.storage else {
            for chunk in self.raw().bytes.chunks(chunk_len) {
                if let Err(err) = consume(chunk) {
                    return Ok(Err(err));
                }
            }
            return Ok(Ok(()));
        };
        let total = self.data_len;
        let path = self.path.as_path();
        let skip = self.header.vox_offset;
        std::thread::scope(|scope| {
            let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
            let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
            for _ in 0..2 {
                // Cannot fail: the receiver is alive and the channel has room.
                let _ = empty_tx.send(Vec::new());
            }
            let producer = scope.spawn(move || -> Result<()> {
                let mut reader = GzSlice::new(compressed);
                let skipped = io::copy(&mut (&mut reader).take(skip), &mut io::sink())
                    .map_err(|e| gz_error(path, e))?;
                if skipped < skip {
                    return Err(vox_offset_past_end(path, skip, skipped));
                }
                let mut done = 0usize;
                let mut released = 0usize;
                while done < total {
                    let Ok(mut buf) = empty_rx.recv() else {
                        return Ok(());
                    };
                    let n = chunk_len.min(total - done);
                    buf.resize(n, 0);
                    let got = fill(&mut reader, &mut buf, path)?;
                    if got < n {
                        return Err(NiftiError::new(
                            ErrorKind::Truncated,
                            path,
                            format!(
                                "data truncated: the gzip stream holds {} of the {total} data \
                                 bytes the header declares",
                                done + got
                            ),
                        ));
                    }
                    done += n;
                    released = release_pages(compressed, released, reader.consumed());
                    if full_tx.send(buf).is_err() {
                        return Ok(());
                    }
                }
                drain(&mut reader, path)
            });
            let mut outcome = Ok(());
            for buf in full_rx.iter() {
                outcome = consume(&buf);
                if outcome.is_err() {
                    break;
                }
                let _ = empty_tx.send(buf);
            }
            // Unblocks the producer if `consume` stopped early.
            drop(full_rx);
            drop(empty_tx);
            let produced = producer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            match outcome {
                Err(err) => Ok(Err(err)),
                Ok(()) => produced.map(Ok),
            }
        })
    }

    /// An image over data already in memory (a computed result that later formulas read as an
    /// input). `label` stands in for the path in messages. The data must be exactly the bytes
    /// the header declares, in native byte order (the header's byte order is set to native);
    /// they are copied into an anonymous mapping so that they are page-aligned, as mapped and
    /// inflated images are. Rank 0 (one element, `dim[0] == 0`) is allowed, as for outputs.
    /// The header's scaling, if any, applies to the data as for a file.
    pub fn from_memory(
        label: impl Into<PathBuf>,
        header: Header,
        data: &[u8],
    ) -> Result<NiftiImage> {
        let label = label.into();
        let mut header = header;
        // Laid out as a single file would be, so that the header is one a file could hold.
        let header_bytes = header
            .to_bytes(true)
            .map_err(|detail| NiftiError::new(ErrorKind::BadField, &label, detail))?;
        header.byte_order = ByteOrder::native();
        header.is_pair = false;
        header.vox_offset = header_bytes.len() as u64;
        header.validate_for_write(&label)?;
        if data.len() != header.data_bytes() {
            return Err(NiftiError::new(
                ErrorKind::Truncated,
                &label,
                format!(
                    "holds {} data bytes but the header declares {}",
                    data.len(),
                    header.data_bytes()
                ),
            ));
        }
        let map_error = |e| NiftiError::io(&label, "cannot allocate the data buffer", e);
        let mut map = anon_buffer(data.len().max(1)).map_err(map_error)?;
        map[..data.len()].copy_from_slice(data);
        let map = map.make_read_only().map_err(map_error)?;
        finish_image(&label, header, Storage::Map(map), 0, DataSource::Memory)
    }

    /// The path the image was opened from (the header file for pairs).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header (with extensions).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// nibabel's `img.affine`.
    pub fn affine(&self) -> &Affine {
        &self.affine
    }

    /// The shape (`dim[1..=dim[0]]`, trailing 1s kept as nibabel keeps them).
    pub fn shape(&self) -> Vec<usize> {
        self.header.shape()
    }

    /// The storage dtype.
    pub fn dtype(&self) -> DType {
        self.header.dtype().unwrap_or(DType::U8)
    }

    /// Scaling to apply on load (`None`: data are used in their storage dtype).
    pub fn scaling(&self) -> Option<Scaling> {
        self.header.scaling()
    }

    /// The dtype of nibabel's `np.asanyarray(img.dataobj)`.
    pub fn effective_dtype(&self) -> DType {
        if self.scaling().is_some() {
            DType::F64
        } else {
            self.dtype()
        }
    }

    /// Where the data bytes live (a mapping of the file itself means no copy was made).
    pub fn data_source(&self) -> DataSource {
        self.source
    }

    /// The raw data view in the storage dtype and the file's byte order.
    pub fn raw(&self) -> RawView<'_> {
        RawView {
            // A streamed image holds no data bytes.
            bytes: self
                .storage
                .bytes()
                .get(self.data_start..self.data_start + self.data_len)
                .unwrap_or(&[]),
            dtype: self.dtype(),
            byte_order: self.header.byte_order,
            shape: &self.shape,
        }
    }

    /// All values as f64 with scaling applied (nibabel's `np.asanyarray(img.dataobj)` converted
    /// to float64), in Fortran order. Meant for tests and small images: it allocates.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let raw = self.raw();
        let scaling = self.scaling();
        (0..raw.n_voxels())
            .map(|voxel_idx| {
                let value = raw.value_f64(voxel_idx);
                scaling.map_or(value, |s| s.apply(value))
            })
            .collect()
    }
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| NiftiError::io(path, "cannot open", e))
}

/// True when the file starts with the gzip magic bytes `1f 8b`.
fn starts_with_gzip_magic(file: &File, path: &Path) -> Result<bool> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    let mut reader = file;
    while got < 2 {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(NiftiError::io(path, "cannot read", e)),
        }
    }
    use std::io::Seek;
    reader
        .rewind()
        .map_err(|e| NiftiError::io(path, "cannot seek", e))?;
    Ok(got == 2 && magic == [0x1f, 0x8b])
}

fn map_file(file: &File, path: &Path) -> Result<Mmap> {
    // SAFETY: the map is read-only and the data are only ever read through bounds-checked
    // slices. Another process truncating the file while it is mapped would fault (as with any
    // mmap reader, nibabel included); voxcalc's own writer never modifies an existing file in
    // place (it writes a temp file and renames it).
    unsafe { Mmap::map(file) }.map_err(|e| NiftiError::io(path, "cannot memory-map", e))
}

/// A zeroed anonymous buffer of `len` bytes in ordinary pages. No huge-page advice: on
/// fragmented memory the kernel compacts inline at each huge-page fault (measured: up to a second
/// of system time per 361 MB here, making a gzip read 1.2-1.7 s instead of 0.7 s), while 4 KiB
/// pages fault predictably (the whole-buffer inflate faults them on all cores before it starts).
pub(crate) fn anon_buffer(len: usize) -> io::Result<MmapMut> {
    MmapMut::map_anon(len)
}

/// Bytes per page touched when pre-faulting (the smallest page size).
const PAGE: usize = 4096;
/// Buffers are pre-faulted and handed to the inflater in chunks of this size.
pub(crate) const PREFAULT_CHUNK: usize = 8 << 20;

/// Writes one byte per page so the kernel maps (and zeroes) every page now.
pub(crate) fn touch_pages(chunk: &mut [u8]) {
    for page in chunk.chunks_mut(PAGE) {
        page[0] = 0;
    }
    std::hint::black_box(chunk);
}

/// [`fill`] for a fresh anonymous buffer: a helper thread faults the pages in (the kernel zeroes
/// each one, about a tenth of the work of inflating into it) chunk by chunk ahead of the
/// inflater, which receives each chunk once it is ready. On two cores this hides the page
/// zeroing behind the single-threaded inflate.
fn fill_prefaulted(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize> {
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<&mut [u8]>(4);
        scope.spawn(move || {
            for chunk in buf.chunks_mut(PREFAULT_CHUNK) {
                touch_pages(chunk);
                if sender.send(chunk).is_err() {
                    return;
                }
            }
        });
        let mut got = 0;
        for chunk in receiver {
            let n = fill(reader, chunk, path)?;
            got += n;
            if n < chunk.len() {
                break;
            }
        }
        Ok(got)
    })
}

/// Maps a gzip file for [`GzSlice`], hinting the kernel that it is read once, front to back.
fn map_compressed(file: &File, path: &Path) -> Result<Mmap> {
    let map = map_file(file, path)?;
    // Only a hint: reading works the same when the kernel ignores it.
    let _ = map.advise(Advice::Sequential);
    Ok(map)
}

/// Maps an error from the gzip decoder: a premature end is truncation, anything else is a
/// corrupt stream.
fn gz_error(path: &Path, error: io::Error) -> NiftiError {
    match error.kind() {
        io::ErrorKind::UnexpectedEof => NiftiError::new(
            ErrorKind::Truncated,
            path,
            format!("gzip stream truncated: {error}"),
        ),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::Other => {
            NiftiError::new(
                ErrorKind::Gzip,
                path,
                format!("corrupt gzip stream: {error}"),
            )
        }
        _ => NiftiError::io(path, "cannot read", error),
    }
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gz_error(path, e)),
        }
    }
    Ok(got)
}

/// Reads up to `limit` bytes into a vector that grows only as bytes arrive (a hostile
/// `vox_offset` cannot force a large allocation).
fn read_up_to(reader: &mut impl Read, limit: u64, path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| gz_error(path, e))?;
    Ok(out)
}

/// Reads the fixed header block (348 or 540 bytes, by `sizeof_hdr`) from a stream.
fn read_header_block(reader: &mut impl Read, path: &Path) -> Result<Vec<u8>> {
    let mut block = vec![0u8; NIFTI2_HEADER_SIZE];
    let got = fill(reader, &mut block[..4], path)?;
    if got < 4 {
        block.truncate(got);
        return Ok(block);
    }
    let size = detect_version([block[0], block[1], block[2], block[3]])
        .map_or(4, |(version, _)| version.header_size());
    let got = 4 + fill(reader, &mut block[4..size], path)?;
    block.truncate(got);
    Ok(block)
}

/// Reads and discards the rest of the stream so the gzip CRC and length of the last member are
/// verified.
fn drain(reader: &mut impl Read, path: &Path) -> Result<()> {
    let mut scratch = [0u8; 1 << 16];
    loop {
        match reader.read(&mut scratch) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gz_error(path, e)),
        }
    }
}

/// The most bytes a gzip file of `compressed_len` bytes can inflate to (deflate's 1032:1 limit,
/// plus slack for headers).
fn max_inflated_len(compressed_len: u64) -> u64 {
    compressed_len
        .saturating_mul(MAX_DEFLATE_RATIO)
        .saturating_add(1 << 20)
}

/// Inflates exactly `n_bytes` of data from `reader` into memory or a temp file.
fn inflate_data(
    reader: &mut impl Read,
    path: &Path,
    n_bytes: usize,
    compressed_len: u64,
    options: &ReadOptions,
) -> Result<(Storage, DataSource)> {
    if n_bytes as u64 > max_inflated_len(compressed_len) {
        return Err(NiftiError::field(
            ErrorKind::Truncated,
            path,
            "dim",
            format!(
                "declares {n_bytes} bytes of data, more than a {compressed_len}-byte gzip file \
                 can hold"
            ),
        ));
    }
    let map_error = |e| NiftiError::io(path, "cannot allocate the data buffer", e);
    let (mut map, file) = data_buffer(n_bytes, options, path)?;
    let got = fill_prefaulted(reader, &mut map[..n_bytes], path)?;
    if got < n_bytes {
        return Err(NiftiError::new(
            ErrorKind::Truncated,
            path,
            format!("data truncated: the gzip stream holds {got} of the {n_bytes} data bytes the header declares"),
        ));
    }
    drain(reader, path)?;
    let map = map.make_read_only().map_err(map_error)?;
    Ok(storage_of(map, file))
}

fn storage_of(map: Mmap, file: Option<File>) -> (Storage, DataSource) {
    match file {
        None => (Storage::Map(map), DataSource::Decompressed),
        Some(file) => (
            Storage::TempFile { map, _file: file },
            DataSource::DecompressedToTempFile,
        ),
    }
}

/// A writable buffer for `n_bytes` of decompressed data: anonymous memory within the budget,
/// else a mapped unnamed temp file.
fn data_buffer(
    n_bytes: usize,
    options: &ReadOptions,
    path: &Path,
) -> Result<(MmapMut, Option<File>)> {
    let map_error = |e| NiftiError::io(path, "cannot allocate the data buffer", e);
    if n_bytes as u64 <= options.memory_budget {
        return Ok((anon_buffer(n_bytes).map_err(map_error)?, None));
    }
    let dir = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let file = tempfile::tempfile_in(&dir)
        .map_err(|e| NiftiError::io(&dir, "cannot create a spill file", e))?;
    file.set_len(n_bytes as u64)
        .map_err(|e| NiftiError::io(&dir, "cannot size the spill file", e))?;
    // SAFETY: an unnamed temp file that only this process can reach; it lives as long as the
    // mapping (both are kept in `Storage::TempFile`).
    let map = unsafe { MmapMut::map_mut(&file) }.map_err(map_error)?;
    Ok((map, Some(file)))
}

/// Reads a gzip file written by voxcalc (every member indexed) by inflating its members in
/// parallel. Returns `None` when the file is not such a file or does not add up (more data than
/// the header declares, a header longer than the first member); the caller then streams it,
/// which also produces the precise error for a damaged file.
fn open_indexed_gz(
    path: &Path,
    compressed: &[u8],
    options: &ReadOptions,
) -> Option<Result<(Header, Storage, DataSource)>> {
    let members = crate::gz::member_index(compressed)?;
    let first = members.first()?;
    let mut head = vec![0u8; first.out_len];
    if crate::gz::inflate_member(compressed, first, &mut head).is_err() {
        return None;
    }
    let mut header = Header::parse(&head, path, options.max_data_bytes).ok()?;
    let vox_offset = usize::try_from(header.vox_offset).ok()?;
    let header_size = header.version.header_size();
    if header.is_pair || vox_offset > head.len() || header_size > vox_offset {
        return None;
    }
    let n_bytes = header.data_bytes();
    let total: u64 = members.iter().map(|m| m.out_len as u64).sum();
    if total != (vox_offset + n_bytes) as u64 {
        return None;
    }
    Some((|| {
        header.parse_extensions(&head[header_size..vox_offset], path)?;
        let (mut map, file) = data_buffer(n_bytes, options, path)?;
        // Disjoint output slices, one per member (the first member's data part is copied).
        let (first_part, mut rest) = map[..n_bytes].split_at_mut(head.len() - vox_offset);
        first_part.copy_from_slice(&head[vox_offset..]);
        let mut jobs = Vec::with_capacity(members.len() - 1);
        for member in &members[1..] {
            let (slice, tail) = std::mem::take(&mut rest).split_at_mut(member.out_len);
            jobs.push((member, slice));
            rest = tail;
        }
        jobs.into_par_iter()
            .try_for_each(|(member, slice)| crate::gz::inflate_member(compressed, member, slice))
            .map_err(|e| gz_error(path, e))?;
        let map = map
            .make_read_only()
            .map_err(|e| NiftiError::io(path, "cannot allocate the data buffer", e))?;
        let (storage, source) = storage_of(map, file);
        Ok((header, storage, source))
    })())
}

/// Inflates a single-member gzip file (what nibabel, FSL and most tools write) straight into
/// the final buffer, in two halves at once when it is large ([`inflate_checked`]), else in one
/// libdeflate call: the header tells the decompressed size, which must agree with the
/// trailer's ISIZE, and the CRC is checked. `header.vox_offset` bytes precede the data
/// in the stream (the header and extensions of a single file; for a pair, what the data file
/// holds before the data). The buffer is laid out so that the data start on a page boundary,
/// and that offset is returned with it. `None` when the data do not fit the memory budget or
/// the file is not such a file (several members, a size that does not add up, damage): the
/// caller then streams it with zlib-rs, which also gives the precise error for a damaged file.
fn inflate_whole(
    compressed: &[u8],
    header: &Header,
    options: &ReadOptions,
) -> Option<(MmapMut, usize)> {
    let n_bytes = header.data_bytes();
    let prefix = usize::try_from(header.vox_offset).ok()?;
    let total = prefix.checked_add(n_bytes)?;
    if total as u64 > options.memory_budget
        || total as u64 > max_inflated_len(compressed.len() as u64)
    {
        return None;
    }
    if !header.is_pair && prefix < header.version.header_size() {
        return None;
    }
    let start = crate::gz::member_header_len(compressed).ok()?;
    let end = compressed.len().checked_sub(8)?;
    if end < start {
        return None;
    }
    let trailer = &compressed[end..];
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if isize != total as u32 {
        return None;
    }
    let pad = (PAGE - prefix % PAGE) % PAGE;
    let map = inflate_checked(&compressed[start..end], pad, total, crc, Inflate::Auto)?;
    Some((map, pad + prefix))
}

/// How [`inflate_checked`] may inflate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inflate {
    /// One libdeflate call (what `Auto` falls back to; chosen directly only by the timing
    /// probe, which compares the two).
    #[cfg_attr(not(test), allow(dead_code))]
    Serial,
    /// In two halves at once ([`crate::pinflate`]) when the stream is long enough and rayon has
    /// two threads, else (or when that fails) serially.
    Auto,
}

/// Inflates the raw deflate stream `deflate` into a new page-aligned buffer of `pad + total`
/// bytes, the output starting at `pad`; `None` unless it fills exactly `total` bytes whose
/// CRC-32 is `crc`.
pub(crate) fn inflate_checked(
    deflate: &[u8],
    pad: usize,
    total: usize,
    crc: u32,
    how: Inflate,
) -> Option<MmapMut> {
    let mut map = anon_buffer(pad + total).ok()?;
    if how == Inflate::Auto
        && deflate.len() >= SPLIT_MIN
        && rayon::current_num_threads() >= 2
        && crate::pinflate::inflate_split(deflate, &mut map[pad..]).is_some()
        && parallel_crc32(&map[pad..]) == crc
    {
        return Some(map);
    }
    // Fault the pages in on all cores first: otherwise the kernel's page zeroing (and, for huge
    // pages, any compaction) runs inline in the single-threaded inflate.
    map.par_chunks_mut(PREFAULT_CHUNK).for_each(touch_pages);
    crate::gz::inflate_exact(deflate, &mut map[pad..]).ok()?;
    if parallel_crc32(&map[pad..]) != crc {
        return None;
    }
    Some(map)
}

/// Deflate streams at least this long are inflated in two halves at once
/// ([`crate::pinflate`]) when rayon has two threads; below it the split does not pay. Unit
/// tests lower it to exercise the split on small data.
const SPLIT_MIN: usize = if cfg!(test) { 1 << 20 } else { 16 << 20 };

/// The CRC-32 of `bytes`, computed in chunks on all cores and combined.
fn parallel_crc32(bytes: &[u8]) -> u32 {
    bytes
        .par_chunks(PREFAULT_CHUNK)
        .map(|chunk| {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(chunk);
            hasher
        })
        .reduce(crc32fast::Hasher::new, |mut left, right| {
            left.combine(&right);
            left
        })
        .finalize()
}

fn single_magic_required(header: &Header, path: &Path) -> Result<()> {
    if header.is_pair {
        return Err(NiftiError::field(
            ErrorKind::BadMagic,
            path,
            "magic",
            "is the pair magic (ni1/ni2) but the file is a single-file .nii",
        ));
    }
    Ok(())
}

fn vox_offset_past_end(path: &Path, vox_offset: u64, len: u64) -> NiftiError {
    NiftiError::field(
        ErrorKind::Truncated,
        path,
        "vox_offset",
        format!("is {vox_offset}, past the end of the data file ({len} bytes)"),
    )
}

fn finish_image(
    path: &Path,
    header: Header,
    storage: Storage,
    data_start: usize,
    source: DataSource,
) -> Result<NiftiImage> {
    let affine = header
        .affine()
        .map_err(|detail| NiftiError::field(ErrorKind::BadField, path, "quatern_b", detail))?;
    let data_len = header.data_bytes();
    Ok(NiftiImage {
        path: path.to_path_buf(),
        shape: header.shape(),
        header,
        affine,
        storage,
        data_start,
        data_len,
        source,
    })
}

/// Checks that the data fit in a mapped data file and returns where they start.
fn mapped_data_range(header: &Header, map: &Mmap, path: &Path) -> Result<usize> {
    let len = map.len() as u64;
    if header.vox_offset > len {
        return Err(vox_offset_past_end(path, header.vox_offset, len));
    }
    let n_bytes = header.data_bytes() as u64;
    if header.vox_offset + n_bytes > len {
        return Err(NiftiError::new(
            ErrorKind::Truncated,
            path,
            format!(
                "data truncated: the file holds {} of the {n_bytes} data bytes the header declares",
                len - header.vox_offset
            ),
        ));
    }
    Ok(header.vox_offset as usize)
}

fn open_single(path: &Path, options: &ReadOptions) -> Result<NiftiImage> {
    let file = open_file(path)?;
    if starts_with_gzip_magic(&file, path)? {
        return open_single_gz(path, file, options);
    }
    let map = map_file(&file, path)?;
    let mut header = Header::parse(&map, path, options.max_data_bytes)?;
    single_magic_required(&header, path)?;
    let data_start = mapped_data_range(&header, &map, path)?;
    let header_size = header.version.header_size();
    header.parse_extensions(&map[header_size..data_start], path)?;
    finish_image(
        path,
        header,
        Storage::Map(map),
        data_start,
        DataSource::MappedFile,
    )
}

fn open_single_gz(path: &Path, file: File, options: &ReadOptions) -> Result<NiftiImage> {
    let compressed_len = file
        .metadata()
        .map_err(|e| NiftiError::io(path, "cannot stat", e))?
        .len();
    let compressed = map_compressed(&file, path)?;
    if let Some(result) = open_indexed_gz(path, &compressed, options) {
        let (header, storage, source) = result?;
        return finish_image(path, header, storage, 0, source);
    }
    let mut reader = GzSlice::new(&compressed);
    let block = read_header_block(&mut reader, path)?;
    let mut header = Header::parse(&block, path, options.max_data_bytes)?;
    single_magic_required(&header, path)?;
    if let Some((map, data_start)) = inflate_whole(&compressed, &header, options) {
        // `inflate_whole` checked that the extensions lie between the header and the data.
        let ext_start = data_start + header.version.header_size() - header.vox_offset as usize;
        header.parse_extensions(&map[ext_start..data_start], path)?;
        let map = map
            .make_read_only()
            .map_err(|e| NiftiError::io(path, "cannot allocate the data buffer", e))?;
        return finish_image(
            path,
            header,
            Storage::Map(map),
            data_start,
            DataSource::Decompressed,
        );
    }
    read_stream_extensions(&mut reader, &mut header, compressed.len() as u64, path)?;
    let (storage, source) = inflate_data(
        &mut reader,
        path,
        header.data_bytes(),
        compressed_len,
        options,
    )?;
    finish_image(path, header, storage, 0, source)
}

/// Reads and parses the extensions that follow the header block in a gzip stream of
/// `compressed_len` bytes (up to `vox_offset`).
fn read_stream_extensions(
    reader: &mut impl Read,
    header: &mut Header,
    compressed_len: u64,
    path: &Path,
) -> Result<()> {
    let header_size = header.version.header_size() as u64;
    let ext_len = header.vox_offset - header_size;
    let limit = max_inflated_len(compressed_len);
    if ext_len > limit {
        return Err(vox_offset_past_end(path, header.vox_offset, limit));
    }
    let ext = read_up_to(reader, ext_len, path)?;
    if (ext.len() as u64) < ext_len {
        return Err(vox_offset_past_end(
            path,
            header.vox_offset,
            header_size + ext.len() as u64,
        ));
    }
    header.parse_extensions(&ext, path)
}

/// Opens a single gzip file for streaming: header and extensions only (see
/// [`NiftiImage::open_streamed`]).
fn open_single_gz_streamed(path: &Path, file: &File, options: &ReadOptions) -> Result<NiftiImage> {
    let compressed_len = file
        .metadata()
        .map_err(|e| NiftiError::io(path, "cannot stat", e))?
        .len();
    let compressed = map_compressed(file, path)?;
    let header = {
        let mut reader = GzSlice::new(&compressed);
        let block = read_header_block(&mut reader, path)?;
        let mut header = Header::parse(&block, path, options.max_data_bytes)?;
        single_magic_required(&header, path)?;
        read_stream_extensions(&mut reader, &mut header, compressed_len, path)?;
        let limit = max_inflated_len(compressed_len);
        let n_bytes = header.data_bytes() as u64;
        if n_bytes > limit {
            return Err(NiftiError::field(
                ErrorKind::Truncated,
                path,
                "dim",
                format!(
                    "declares {n_bytes} bytes of data, more than a {compressed_len}-byte gzip \
                     file can hold"
                ),
            ));
        }
        header
    };
    finish_image(
        path,
        header,
        Storage::Compressed(compressed),
        0,
        DataSource::Streamed,
    )
}

/// Releases the pages of `map` in `from..to` (rounded to whole pages inside it) that a stream
/// has read past, so that a long stream's pages do not accumulate in the process's RSS.
/// Returns the new release point.
fn release_pages(map: &Mmap, from: usize, to: usize) -> usize {
    let start = from.next_multiple_of(PAGE);
    let end = to.min(map.len()) / PAGE * PAGE;
    if end <= start {
        return from;
    }
    // SAFETY: `map` is a read-only, private mapping of a file that is never written through
    // it. MADV_DONTNEED only drops this process's copy of the pages: a later access faults
    // them in again from the file, so every slice of the mapping keeps reading the same bytes.
    // The range lies inside the mapping and starts on a page boundary.
    let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
    end
}

/// Largest `.hdr` file accepted (header plus extensions).
const MAX_HEADER_FILE_BYTES: u64 = 256 << 20;

fn open_pair(header_path: &Path, data_path: &Path, options: &ReadOptions) -> Result<NiftiImage> {
    let header_file = open_file(header_path)?;
    let header_bytes = if starts_with_gzip_magic(&header_file, header_path)? {
        let compressed = map_compressed(&header_file, header_path)?;
        read_up_to(
            &mut GzSlice::new(&compressed),
            MAX_HEADER_FILE_BYTES,
            header_path,
        )?
    } else {
        read_up_to(
            &mut BufReader::new(header_file),
            MAX_HEADER_FILE_BYTES,
            header_path,
        )?
    };
    let mut header = Header::parse(&header_bytes, header_path, options.max_data_bytes)?;
    let header_size = header.version.header_size();
    header.parse_extensions(&header_bytes[header_size..], header_path)?;

    let data_file = open_file(data_path)?;
    if starts_with_gzip_magic(&data_file, data_path)? {
        let compressed_len = data_file
            .metadata()
            .map_err(|e| NiftiError::io(data_path, "cannot stat", e))?
            .len();
        let compressed = map_compressed(&data_file, data_path)?;
        if let Some((map, data_start)) = inflate_whole(&compressed, &header, options) {
            let map = map
                .make_read_only()
                .map_err(|e| NiftiError::io(data_path, "cannot allocate the data buffer", e))?;
            return finish_image(
                header_path,
                header,
                Storage::Map(map),
                data_start,
                DataSource::Decompressed,
            );
        }
        let mut reader = GzSlice::new(&compressed);
        let skipped = io::copy(&mut (&mut reader).take(header.vox_offset), &mut io::sink())
            .map_err(|e| gz_error(data_path, e))?;
        if skipped < header.vox_offset {
            return Err(vox_offset_past_end(data_path, header.vox_offset, skipped));
        }
        let (storage, source) = inflate_data(
            &mut reader,
            data_path,
            header.data_bytes(),
            compressed_len,
            options,
        )?;
        finish_image(header_path, header, storage, 0, source)
    } else {
        let map = map_file(&data_file, data_path)?;
        let data_start = mapped_data_range(&header, &map, data_path)?;
        finish_image(
            header_path,
            header,
            Storage::Map(map),
            data_start,
            DataSource::MappedFile,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::header::{Header, NiftiVersion};

    const AFFINE: Affine = [
        [2.0, 0.0, 0.0, -90.0],
        [0.0, 2.0, 0.0, -126.0],
        [0.0, 0.0, 2.0, -72.0],
        [0.0, 0.0, 0.0, 1.0],
    ];

    /// A header for a 20x20x20 int16 single file and its header bytes.
    fn header() -> (Header, Vec<u8>) {
        let mut header = Header::fresh(NiftiVersion::Nifti1, &[20, 20, 20], DType::I16, &AFFINE)
            .expect("a valid header");
        let bytes = header.to_bytes(true).expect("serialisable");
        header.vox_offset = bytes.len() as u64;
        (header, bytes)
    }

    fn data() -> Vec<u8> {
        (0..16_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// One gzip member (as nibabel writes) holding each part in turn, or one member per part.
    fn gzip(parts: &[&[u8]], one_member_each: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if one_member_each {
            for part in parts {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                encoder.write_all(part).expect("in memory");
                out.extend(encoder.finish().expect("in memory"));
            }
        } else {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            for part in parts {
                encoder.write_all(part).expect("in memory");
            }
            out = encoder.finish().expect("in memory");
        }
        out
    }

    #[test]
    fn the_parallel_crc_is_the_crc() {
        let bytes: Vec<u8> = (0..3 * PREFAULT_CHUNK + 12_345)
            .map(|i| (i * 31 % 257) as u8)
            .collect();
        for len in [0, 1, PREFAULT_CHUNK, PREFAULT_CHUNK + 1, bytes.len()] {
            assert_eq!(
                parallel_crc32(&bytes[..len]),
                crc32fast::hash(&bytes[..len])
            );
        }
    }

    #[test]
    fn a_single_member_file_inflates_whole_with_page_aligned_data() {
        let (header, header_bytes) = header();
        let data = data();
        let compressed = gzip(&[&header_bytes, &data], false);
        let (map, data_start) =
            inflate_whole(&compressed, &header, &ReadOptions::default()).expect("whole path");
        assert_eq!(data_start % PAGE, 0);
        assert_eq!(&map[data_start..], &data[..]);
        assert_eq!(
            &map[data_start - header_bytes.len()..data_start],
            &header_bytes[..]
        );
    }

    #[test]
    fn other_files_are_left_to_the_streaming_reader() {
        let (header, header_bytes) = header();
        let data = data();
        let options = ReadOptions::default();
        // Several members: the trailer's ISIZE is the last member's alone.
        let two = gzip(&[&header_bytes, &data], true);
        assert!(inflate_whole(&two, &header, &options).is_none());
        // Past the memory budget.
        let one = gzip(&[&header_bytes, &data], false);
        let small = ReadOptions {
            memory_budget: 1000,
            ..ReadOptions::default()
        };
        assert!(inflate_whole(&one, &header, &small).is_none());
        // A CRC that does not match.
        let mut bad_crc = one.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 1;
        assert!(inflate_whole(&bad_crc, &header, &options).is_none());
        // Fewer data than the header declares.
        let short = gzip(&[&header_bytes, &data[..data.len() - 2]], false);
        assert!(inflate_whole(&short, &header, &options).is_none());
        // Truncated.
        assert!(inflate_whole(&one[..one.len() / 2], &header, &options).is_none());
        // The same file is taken whole when nothing is wrong.
        assert!(inflate_whole(&one, &header, &options).is_some());
    }
}
