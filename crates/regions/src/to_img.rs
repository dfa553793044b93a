//! Signals to voxels: every voxel of the `r`-th region gets column `r` of the signals, every
//! other voxel 0. Built in memory ([`LabelMap::signals_to_img`]) or streamed straight to a file
//! ([`LabelMap::write_signals_img`]), volumes filled in parallel.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use memmap2::{MmapMut, MmapOptions};
use rayon::prelude::*;
use voxcalc_nifti::{
    check_output_not_input, output_files, Affine, ByteOrder, ErrorKind, Header, ImageFiles,
    NiftiError, NiftiImage, OutputImage, WriteOptions,
};
use voxcalc_types::DType;

use crate::deflate::RunEncoder;
use crate::error::{RegionError, RegionErrorKind, Result};
use crate::labels::{LabelMap, NO_REGION};
use crate::signals::{Element, Order, Signals, Values};
use crate::with_values;

/// An image rebuilt from signals, in memory: the values in the signals' dtype and native byte
/// order, laid out in the requested order (Fortran order is NIfTI's; C order is numpy's
/// default). The buffer is an anonymous mapping (transparent huge pages when the kernel has
/// them), each page zeroed by the kernel as the fill first touches it.
pub struct RegionImage {
    header: Header,
    shape: Vec<usize>,
    dtype: DType,
    data: MmapMut,
    len: usize,
    order: Order,
}

impl std::fmt::Debug for RegionImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionImage")
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

/// Whether a buffer being filled needs its background voxels written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Background {
    /// The buffer is freshly zeroed.
    AlreadyZero,
    /// The buffer may hold anything: write the zeros.
    Write,
}

/// A zeroed buffer of `len` bytes: anonymous memory that the kernel zeroes page by page as the
/// fill first touches it, so each page is zeroed while the filling thread has it in cache and
/// pages left all background are never touched. Large buffers ask for transparent huge pages:
/// one fault per 2 MiB instead of per 4 KiB, the dominant cost of a multi-gigabyte image.
fn zeroed_buffer(len: usize) -> Result<MmapMut> {
    let data = MmapOptions::new().len(len.max(1)).map_anon().map_err(|e| {
        RegionError::new(
            RegionErrorKind::Io,
            format!("cannot allocate {len} bytes for the image: {e}"),
        )
    })?;
    #[cfg(target_os = "linux")]
    if len >= HUGE_PAGE_BYTES {
        // Advice only: without huge pages the buffer still works, with 4 KiB pages.
        let _ = data.advise(memmap2::Advice::HugePage);
    }
    Ok(data)
}

/// The transparent huge page size on x86-64 and most aarch64 kernels; buffers smaller than one
/// are not worth the advice.
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Element `idx` of native-order `bytes` of `dtype`, as f64.
fn native_f64(bytes: &[u8], dtype: DType, idx: usize) -> f64 {
    let big = cfg!(target_endian = "big");
    let size = dtype.size();
    let src = &bytes[idx * size..(idx + 1) * size];
    match dtype {
        DType::F32 => f32::read(src, big).to_f64(),
        DType::F64 => f64::read(src, big),
        DType::I8 => i8::read(src, big).to_f64(),
        DType::U8 => u8::read(src, big).to_f64(),
        DType::I16 => i16::read(src, big).to_f64(),
        DType::U16 => u16::read(src, big).to_f64(),
        DType::I32 => i32::read(src, big).to_f64(),
        DType::U32 => u32::read(src, big).to_f64(),
        DType::I64 => i64::read(src, big).to_f64(),
        _ => f64::NAN,
    }
}

impl RegionImage {
    /// The header that [`RegionImage::save`] writes: the label image's, with the signals' dtype,
    /// the output shape, no scaling and `cal_min`/`cal_max` set to the data range.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The affine (the label image's).
    pub fn affine(&self) -> Affine {
        self.header.affine().unwrap_or_else(|_| self.header.sform())
    }

    /// `[X, Y, Z]` for 1-D signals, `[X, Y, Z, T]` for 2-D signals.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The dtype (the signals' dtype).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The values as bytes in native byte order, laid out in [`RegionImage::order`].
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The values, typed (a copy), laid out in [`RegionImage::order`].
    pub fn to_values(&self) -> Values {
        fn read_into<T: Element>(bytes: &[u8], v: &mut Vec<T>) {
            let size = T::DTYPE.size();
            let big = cfg!(target_endian = "big");
            v.extend(bytes.chunks_exact(size).map(|c| T::read(c, big)));
        }
        let mut values = Values::zeros(self.dtype, 0).unwrap_or(Values::F64(Vec::new()));
        with_values!(&mut values, v => read_into(self.bytes(), v));
        values
    }

    /// The memory order of [`RegionImage::bytes`].
    pub fn order(&self) -> Order {
        self.order
    }

    /// The value at voxel `(i, j, k)` and time point `t` (0 for a 3-D image), as f64.
    pub fn get_f64(&self, voxel: [usize; 3], t: usize) -> f64 {
        let [nx, ny, nz] = [self.shape[0], self.shape[1], self.shape[2]];
        let n_times = self.shape.get(3).copied().unwrap_or(1);
        let [i, j, k] = voxel;
        let idx = match self.order {
            Order::F => i + nx * (j + ny * (k + nz * t)),
            Order::C => ((i * ny + j) * nz + k) * n_times + t,
        };
        native_f64(self.bytes(), self.dtype, idx)
    }

    /// Writes the image (`.nii`, `.nii.gz`, `.hdr`/`.img`), atomically (a temp file beside the
    /// target, renamed at the end).
    pub fn save(&self, path: impl AsRef<Path>, options: &WriteOptions) -> Result<()> {
        let path = path.as_ref();
        let mut out = OutputImage::create(path, &self.header, options)?;
        copy_to_fortran(
            self.bytes(),
            self.dtype.size(),
            &self.shape,
            self.order,
            out.data_mut(),
        );
        out.finish()?;
        Ok(())
    }
}

/// Copies native-order `bytes` of `size`-byte elements laid out in `order` into `data` in
/// Fortran order.
fn copy_to_fortran(bytes: &[u8], size: usize, shape: &[usize], order: Order, data: &mut [u8]) {
    let [nx, ny, nz] = [shape[0], shape[1], shape[2]];
    let n_voxels = nx * ny * nz;
    let n_times = shape.get(3).copied().unwrap_or(1);
    if n_voxels == 0 || n_times == 0 {
        return;
    }
    match order {
        Order::F => data
            .par_chunks_mut(1 << 20)
            .zip(bytes.par_chunks(1 << 20))
            .for_each(|(dst, src)| dst.copy_from_slice(src)),
        Order::C => data
            .par_chunks_mut(size * n_voxels)
            .enumerate()
            .for_each(|(t, dst)| {
                for (f, d) in dst.chunks_exact_mut(size).enumerate() {
                    let (i, j, k) = (f % nx, (f / nx) % ny, f / (nx * ny));
                    let c = ((i * ny + j) * nz + k) * n_times + t;
                    d.copy_from_slice(&bytes[c * size..(c + 1) * size]);
                }
            }),
    }
}

/// nilearn's `signals_to_img_labels(signals, labels_img, mask_img, background_label, order)`:
/// the image whose voxels in the `r`-th label (sorted unique values of the masked label image
/// minus the background) hold column `r` of `signals`, and 0 elsewhere. 1-D signals (`R`) give a
/// 3-D image, 2-D signals (`T x R`) a 4-D image. The dtype is the signals' dtype (int64 becomes
/// int32 when the values fit, as nilearn's `new_img_like` does); `order` is the memory order of
/// the result.
pub fn signals_to_img_labels(
    signals: &Signals,
    labels_img: &NiftiImage,
    mask_img: Option<&NiftiImage>,
    background_label: f64,
    order: Order,
) -> Result<RegionImage> {
    let map = LabelMap::build(labels_img, mask_img, background_label)?;
    map.signals_to_img(signals, order)
}

/// int64 signals become int32 when every value fits (nilearn's
/// `_downcast_from_int64_if_possible`), so images stay readable by every NIfTI tool.
fn downcast_int64(signals: &Signals) -> Option<Signals> {
    let Values::I64(v) = signals.values() else {
        return None;
    };
    let narrowed: Option<Vec<i32>> = v.iter().map(|&x| i32::try_from(x).ok()).collect();
    Signals::new(Values::I32(narrowed?), signals.shape(), signals.order()).ok()
}

/// The layout of the output: shape and number of volumes.
fn output_shape(map: &LabelMap, signals: &Signals) -> Vec<usize> {
    let mut shape = map.shape().to_vec();
    if signals.ndim() == 2 {
        shape.push(signals.n_times());
    }
    shape
}

/// `(min, max)` of the output as nilearn's `new_img_like` sets `cal_min`/`cal_max`
/// (`np.min`/`np.max`: NaN anywhere gives NaN): the signals' values, and 0 when some voxel is in
/// no region.
fn data_range(map: &LabelMap, signals: &Signals) -> (f64, f64) {
    let n_values = signals.values().len();
    if n_values == 0 || map.n_voxels() == 0 {
        return (0.0, 0.0);
    }
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    if map.n_region_voxels() < map.n_voxels() {
        min = 0.0;
        max = 0.0;
    }
    for idx in 0..n_values {
        let value = signals.values().get_f64(idx);
        if value.is_nan() {
            return (f64::NAN, f64::NAN);
        }
        min = min.min(value);
        max = max.max(value);
    }
    (min, max)
}

/// The signals as a C-order `T x R` table of `T` (row `t` = the values of time point `t`).
fn rows_of<T: Element>(signals: &Signals, v: &[T]) -> Vec<T> {
    let (n_times, n_regions) = (signals.n_times(), signals.n_regions());
    let mut rows = Vec::with_capacity(n_times * n_regions);
    for t in 0..n_times {
        for r in 0..n_regions {
            rows.push(v[signals.index(t, r)]);
        }
    }
    rows
}

/// The signals as an `R x T` table (column `r` of the signals contiguous).
fn columns_of<T: Element>(signals: &Signals, v: &[T]) -> Vec<T> {
    let (n_times, n_regions) = (signals.n_times(), signals.n_regions());
    let mut columns = Vec::with_capacity(n_times * n_regions);
    for r in 0..n_regions {
        for t in 0..n_times {
            columns.push(v[signals.index(t, r)]);
        }
    }
    columns
}

/// One piece of the output file: voxels `voxels` of volume `t`.
#[derive(Clone, Debug)]
struct Chunk {
    t: usize,
    start: usize,
    end: usize,
}

/// Uncompressed bytes per streamed chunk (and gzip member).
const CHUNK_BYTES: usize = 1 << 20;

impl LabelMap {
    /// The output header: the label image's header (codes, units, descrip, extensions kept, as
    /// nilearn copies it), with the signals' dtype, the output shape, no scaling and
    /// `cal_min`/`cal_max` = the data range.
    fn output_header(&self, signals: &Signals) -> Result<Header> {
        let shape = output_shape(self, signals);
        Header::copied_for_output(
            self.header(),
            &shape,
            signals.dtype(),
            data_range(self, signals),
        )
        .map_err(|detail| {
            RegionError::new(
                RegionErrorKind::Signals,
                format!("cannot build an image of these signals: {detail}"),
            )
        })
    }

    /// Checks the signals against the labels and narrows int64 signals that fit int32.
    fn prepared(&self, signals: &Signals) -> Result<Option<Signals>> {
        self.check_columns(signals.n_regions(), "the signals have")?;
        if Values::zeros(signals.dtype(), 0).is_none() {
            return Err(RegionError::new(
                RegionErrorKind::Signals,
                format!("signals of dtype {} cannot be written", signals.dtype()),
            ));
        }
        Ok(downcast_int64(signals))
    }

    /// Builds the image of `signals` in memory, laid out in `order` (see
    /// [`signals_to_img_labels`]). Fails when the signals do not have one column per label.
    pub fn signals_to_img(&self, signals: &Signals, order: Order) -> Result<RegionImage> {
        let narrowed = self.prepared(signals)?;
        let signals = narrowed.as_ref().unwrap_or(signals);
        let header = self.output_header(signals)?;
        let shape = output_shape(self, signals);
        let dtype = signals.dtype();
        let len = self.n_voxels() * signals.n_times() * dtype.size();
        let mut data = zeroed_buffer(len)?;
        with_values!(signals.values(), v => self.fill(signals, v, order, &mut data[..len], Background::AlreadyZero));
        Ok(RegionImage {
            header,
            shape,
            dtype,
            data,
            len,
            order,
        })
    }

    /// Writes the image of `signals` (see [`signals_to_img_labels`]) into `out`, a caller-owned
    /// buffer of native-order elements of the signals' dtype laid out in `order` (int64 signals
    /// are written as int64 here), background included: reusing one buffer for many images
    /// saves allocating and faulting in fresh memory each time. Fails when the signals do not
    /// have one column per label or `out` does not have the image's size.
    pub fn signals_to_img_into(
        &self,
        signals: &Signals,
        order: Order,
        out: &mut [u8],
    ) -> Result<()> {
        self.check_columns(signals.n_regions(), "the signals have")?;
        let expected = self.n_voxels() * signals.n_times() * signals.dtype().size();
        if out.len() != expected {
            return Err(RegionError::new(
                RegionErrorKind::Signals,
                format!(
                    "the output buffer holds {} bytes, the image of these signals needs {expected}",
                    out.len()
                ),
            ));
        }
        with_values!(signals.values(), v => self.fill(signals, v, order, out, Background::Write));
        Ok(())
    }

    /// Fills the native-order buffer `out` with the image of `signals` in `order`; background
    /// voxels are written only when `background` says the buffer is not zeroed already.
    fn fill<T: Element>(
        &self,
        signals: &Signals,
        v: &[T],
        order: Order,
        out: &mut [u8],
        background: Background,
    ) {
        let n_voxels = self.n_voxels();
        let n_times = signals.n_times();
        let size = T::DTYPE.size();
        if n_voxels == 0 || n_times == 0 {
            return;
        }
        match order {
            Order::F => {
                let rows = rows_of(signals, v);
                let n_regions = signals.n_regions();
                let segments = self.segments(size, n_voxels * size, background);
                out.par_chunks_mut(n_voxels * size)
                    .enumerate()
                    .for_each(|(t, volume)| {
                        let row = &rows[t * n_regions..(t + 1) * n_regions];
                        self.fill_volume(row, &segments, volume);
                    });
            }
            Order::C => {
                // Column r of the signals as native bytes: the T values of each voxel of region r.
                let mut columns = vec![0u8; n_times * signals.n_regions() * size];
                for (element, value) in columns.chunks_exact_mut(size).zip(columns_of(signals, v)) {
                    value.write_ne(element);
                }
                let [nx, ny, nz] = self.shape();
                let region_of = self.region_of();
                let column_bytes = n_times * size;
                out.par_chunks_mut(column_bytes)
                    .with_min_len(1024)
                    .enumerate()
                    .for_each(|(c, dst)| {
                        let (i, j, k) = (c / (ny * nz), (c / nz) % ny, c % nz);
                        let region = region_of[i + nx * (j + ny * k)];
                        if region != NO_REGION {
                            let r = region as usize;
                            dst.copy_from_slice(&columns[r * column_bytes..(r + 1) * column_bytes]);
                        } else if background == Background::Write {
                            dst.fill(0);
                        }
                    });
            }
        }
    }

    /// The stretches of a Fortran-order volume of `size`-byte elements that
    /// [`fill_volume`](Self::fill_volume) writes, in order: each region run, and each gap
    /// between runs (and after the last) as a zero stretch. With `background` already zero, a
    /// gap is only written over its first [`BLOCK`] bytes, the most that the run before it
    /// overshoots, and the gap before the first run not at all.
    fn segments(&self, size: usize, volume_len: usize, background: Background) -> Vec<Segment> {
        let zero = self.n_regions() as u32;
        let mut segments = Vec::with_capacity(self.runs().len() * 5 / 4 + 1);
        let gap = |segments: &mut Vec<Segment>, start: usize, end: usize| {
            if start >= end || (start == 0 && background == Background::AlreadyZero) {
                return;
            }
            let end = match background {
                Background::Write => end,
                Background::AlreadyZero => end.min(start + BLOCK),
            };
            segments.push(Segment {
                start,
                end,
                pattern: zero,
            });
        };
        let mut done = 0;
        for run in self.runs() {
            let start = run.start * size;
            gap(&mut segments, done, start);
            done = start + run.len * size;
            segments.push(Segment {
                start,
                end: done,
                pattern: run.region,
            });
        }
        gap(&mut segments, done, volume_len);
        segments
    }

    /// Fills one Fortran-order volume: every voxel of the `r`-th region gets `row[r]`, and the
    /// background is written as zeros unless `background` says the buffer is zeroed already.
    ///
    /// Runs average a few voxels, so a store sized to each run would cost a mispredicted
    /// branch or two per run. Instead every segment (see [`segments`](Self::segments)) is
    /// written in whole [`BLOCK`]-byte stores of a precomputed pattern of its value,
    /// overshooting its end by less than a block; segments are written in voxel order, so the
    /// next one overwrites the overshoot. Only the volume's last bytes take exact-length stores.
    fn fill_volume<T: Element>(&self, row: &[T], segments: &[Segment], volume: &mut [u8]) {
        // One pattern per region, then the zero pattern (index `n_regions`).
        let patterns: Vec<[u8; BLOCK]> = row
            .iter()
            .map(|&value| {
                let mut pattern = [0u8; BLOCK];
                value.fill_ne(&mut pattern);
                pattern
            })
            .chain(std::iter::once([0u8; BLOCK]))
            .collect();
        for segment in segments {
            let pattern = &patterns[segment.pattern as usize];
            let mut at = segment.start;
            loop {
                put_block(volume, at, pattern);
                at += BLOCK;
                if at >= segment.end {
                    break;
                }
            }
        }
    }

    /// Writes the image of `signals` to `path` without building it in memory: volumes are cut
    /// into chunks that are filled (and, for `.gz`, compressed as independent gzip members) in
    /// parallel and written in order to a temp file beside `path`, renamed at the end. Memory
    /// stays at a few chunks per thread whatever the image size. `.hdr`/`.img` pairs go through
    /// [`OutputImage`].
    pub fn write_signals_img(
        &self,
        signals: &Signals,
        path: impl AsRef<Path>,
        options: &WriteOptions,
    ) -> Result<()> {
        let path = path.as_ref();
        let mut inputs = vec![self.path()];
        inputs.extend(self.mask_path());
        check_output_not_input(path, &inputs)?;
        let narrowed = self.prepared(signals)?;
        let signals = narrowed.as_ref().unwrap_or(signals);
        let header = self.output_header(signals)?;
        with_values!(signals.values(), v => {
            let rows = rows_of(signals, v);
            self.write_rows(&rows, signals, header, path, options)
        })
    }

    fn write_rows<T: Element>(
        &self,
        rows: &[T],
        signals: &Signals,
        header: Header,
        path: &Path,
        options: &WriteOptions,
    ) -> Result<()> {
        let n_voxels = self.n_voxels();
        let n_regions = signals.n_regions();
        let size = T::DTYPE.size();
        let per_chunk = (CHUNK_BYTES / size).max(1);
        let mut chunks = Vec::new();
        for t in 0..signals.n_times() {
            let mut start = 0;
            while start < n_voxels {
                let end = (start + per_chunk).min(n_voxels);
                chunks.push(Chunk { t, start, end });
                start = end;
            }
        }
        // Fills a chunk's zeroed buffer and, when given, feeds its gaps and runs to a gzip
        // run encoder.
        let fill = |chunk: &Chunk, dst: &mut [u8], mut encoder: Option<&mut RunEncoder>| {
            let row = &rows[chunk.t * n_regions..(chunk.t + 1) * n_regions];
            let zero = [0u8; 8];
            let mut element = [0u8; 8];
            let mut done = chunk.start;
            for run in &self.runs()[self.first_run_after(chunk.start)..] {
                if run.start >= chunk.end {
                    break;
                }
                let a = run.start.max(chunk.start);
                let b = (run.start + run.len).min(chunk.end);
                let value = row[run.region as usize];
                value.fill_ne(&mut dst[(a - chunk.start) * size..(b - chunk.start) * size]);
                if let Some(encoder) = encoder.as_deref_mut() {
                    encoder.push(&zero, a - done);
                    value.write_ne(&mut element[..size]);
                    encoder.push(&element, b - a);
                }
                done = b;
            }
            if let Some(encoder) = encoder {
                encoder.push(&zero, chunk.end - done);
            }
        };
        match output_files(path)? {
            ImageFiles::Single(target) => {
                stream_single(&target, header, &chunks, size, &fill, options)
            }
            ImageFiles::Pair { .. } => {
                let mut out = OutputImage::create(path, &header, options)?;
                let mut rest = out.data_mut();
                let mut pieces = Vec::with_capacity(chunks.len());
                for chunk in &chunks {
                    let (head, tail) = rest.split_at_mut((chunk.end - chunk.start) * size);
                    pieces.push((chunk, head));
                    rest = tail;
                }
                pieces
                    .into_par_iter()
                    .for_each(|(chunk, dst)| fill(chunk, dst, None));
                out.finish()?;
                Ok(())
            }
        }
    }
}

/// Bytes per store when filling a Fortran-order volume: a multiple of every element size.
const BLOCK: usize = 64;

/// Bytes `start..end` of a Fortran-order volume, all holding pattern `pattern` (a region index,
/// or the number of regions for zeros).
struct Segment {
    start: usize,
    end: usize,
    pattern: u32,
}

/// Writes `pattern` at byte `at` of `volume`, cut short at the end of the volume (`at` is an
/// element boundary no further than the end, and the volume a whole number of elements, so the
/// cut keeps whole elements).
#[inline(always)]
fn put_block(volume: &mut [u8], at: usize, pattern: &[u8; BLOCK]) {
    // A fixed-size array copy compiles to a few vector stores, not a call to memcpy.
    match volume
        .get_mut(at..)
        .and_then(|rest| rest.first_chunk_mut::<BLOCK>())
    {
        Some(dst) => *dst = *pattern,
        None => put_tail(volume, at, pattern),
    }
}

/// The end of [`put_block`] for the volume's last bytes; kept out of line so that the common
/// case is not merged with it into one variable-length copy.
#[cold]
#[inline(never)]
fn put_tail(volume: &mut [u8], at: usize, pattern: &[u8; BLOCK]) {
    let tail = &mut volume[at..];
    let n = tail.len();
    tail.copy_from_slice(&pattern[..n]);
}

/// True when the file name ends in `.gz` (the output is then gzip-compressed).
fn has_gz_suffix(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(".gz"))
}

/// A temp file in the directory of `target`, to be renamed onto it once complete.
pub(crate) fn temp_beside(target: &Path) -> std::io::Result<tempfile::NamedTempFile> {
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
    builder.tempfile_in(dir)
}

fn gzip_member(level: Compression, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4 + 64), level);
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Fills a chunk's zeroed buffer, feeding its gaps and runs to the gzip run encoder if given.
type FillChunk<'a> = dyn Fn(&Chunk, &mut [u8], Option<&mut RunEncoder>) + Sync + 'a;

/// Zero blocks of this size are left as holes in a plain `.nii` (they read back as zeros and
/// cost no disk writes: most of a region image is background).
const HOLE_BYTES: usize = 64 << 10;

/// What a streamed chunk becomes: compressed bytes, or raw bytes with their all-zero blocks.
enum Piece {
    Bytes(Vec<u8>),
    Sparse(Vec<u8>, Vec<bool>),
}

fn is_zero(block: &[u8]) -> bool {
    let mut words = block.chunks_exact(16);
    words.all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([1; 16])) == 0)
        && words.remainder().iter().all(|&b| b == 0)
}

/// Streams a single-file image (`.nii` or `.nii.gz`): the header, then the chunks, each filled
/// by `fill` into a zeroed buffer (and compressed as its own gzip member for `.gz`) in parallel
/// batches; a batch is written while the next one is produced.
fn stream_single(
    target: &Path,
    mut header: Header,
    chunks: &[Chunk],
    size: usize,
    fill: &FillChunk<'_>,
    options: &WriteOptions,
) -> Result<()> {
    header.byte_order = ByteOrder::native();
    header.is_pair = false;
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    let cannot_write = |detail: String| NiftiError::new(ErrorKind::CannotWrite, target, detail);
    let header_bytes = header.to_bytes(true).map_err(cannot_write)?;
    header.vox_offset = header_bytes.len() as u64;
    header
        .validate(target, u64::MAX)
        .map_err(|e| cannot_write(e.to_string()))?;
    let gz = has_gz_suffix(target);
    let level = Compression::new(options.compression_level.min(9));
    let temp = temp_beside(target)
        .map_err(|e| RegionError::io(target, "cannot create a temp file beside the output", e))?;
    let write_error = |e: std::io::Error| RegionError::io(target, "cannot write", e);
    let file: &File = temp.as_file();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    if gz {
        out.write_all(&gzip_member(level, &header_bytes).map_err(write_error)?)
            .map_err(write_error)?;
    } else {
        out.write_all(&header_bytes).map_err(write_error)?;
    }
    // Level 1 (nibabel's, the default) uses the run-length encoder: region images are runs of
    // equal values, which it codes at memory speed; other levels use zlib-rs.
    let fast_gz = gz && options.compression_level == 1;
    let produce = |chunk: &Chunk| -> std::io::Result<Piece> {
        let mut buffer = vec![0u8; (chunk.end - chunk.start) * size];
        Ok(if fast_gz {
            let mut encoder = RunEncoder::new(size);
            fill(chunk, &mut buffer, Some(&mut encoder));
            Piece::Bytes(encoder.finish(&buffer))
        } else if gz {
            fill(chunk, &mut buffer, None);
            Piece::Bytes(gzip_member(level, &buffer)?)
        } else {
            fill(chunk, &mut buffer, None);
            let zero_blocks = buffer.chunks(HOLE_BYTES).map(is_zero).collect();
            Piece::Sparse(buffer, zero_blocks)
        })
    };
    let write_all = |out: &mut BufWriter<&File>, pieces: Vec<std::io::Result<Piece>>| {
        for piece in pieces {
            match piece? {
                Piece::Bytes(bytes) => out.write_all(&bytes)?,
                Piece::Sparse(bytes, zero_blocks) => {
                    for (block, zero) in bytes.chunks(HOLE_BYTES).zip(zero_blocks) {
                        if zero {
                            out.seek(SeekFrom::Current(block.len() as i64))?;
                        } else {
                            out.write_all(block)?;
                        }
                    }
                }
            }
        }
        std::io::Result::Ok(())
    };
    let batch = (rayon::current_num_threads() * 4).max(2);
    let mut pending = Vec::new();
    for group in chunks.chunks(batch) {
        let to_write = std::mem::take(&mut pending);
        let (written, produced) = rayon::join(
            || write_all(&mut out, to_write),
            || group.par_iter().map(produce).collect::<Vec<_>>(),
        );
        written.map_err(write_error)?;
        pending = produced;
    }
    write_all(&mut out, pending).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    let end = out.stream_position().map_err(write_error)?;
    drop(out);
    // Trailing zero blocks were skipped: the length makes them part of the file.
    file.set_len(end).map_err(write_error)?;
    temp.persist(target)
        .map_err(|e| RegionError::io(target, "cannot rename the temp file onto", e.error))?;
    Ok(())
}
