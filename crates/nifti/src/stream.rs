//! Streamed writing: the data arrive in order, in chunks of any size, and are written (plain) or
//! compressed and written (gzip) as they come, so memory stays bounded whatever the image size.
//! The header is written last, at [`OutputStream::finish`], into room reserved at the start.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use tempfile::NamedTempFile;

use crate::error::{ErrorKind, NiftiError, Result};
use crate::gz::{stored_member, stored_member_len};
use crate::header::Header;
use crate::paths::{has_gz_suffix, ImageFiles};
use crate::write::{
    block_size, blocks_per_batch, final_header_bytes, persist, prepare, temp_beside, write_gzip,
    MemberWriter, Prepared, WriteOptions,
};

/// An output written as a stream: created with [`OutputStream::create`], fed the data in order
/// with [`OutputStream::write_data`] (native byte order, the header's dtype, Fortran order, in
/// chunks of any size), then committed with [`OutputStream::finish`], which writes the header
/// (so fields known only after the data, such as `cal_min`/`cal_max`, can be set through
/// [`OutputStream::header_mut`]) and renames the temp files into place, exactly as
/// [`crate::OutputImage::finish`] does. Dropping it without `finish` removes every temp file and
/// leaves the targets untouched.
///
/// Plain data (`.nii`, `.img`) are written with ordinary file writes after a reserved header
/// area, never through a mapping: dirty mapped pages would count in the process's resident
/// memory, and a full disk must be an error naming the file, not a SIGBUS. Gzipped data are
/// cut into [`WriteOptions::gzip_block_size`] blocks that a background thread compresses in
/// parallel batches (on a rayon pool of its own, as many threads as the caller's pool) while the
/// previous batch is written, so at most about four batches (16 MiB each on two cores) are held
/// in memory. A single `.nii.gz` starts with a stored (uncompressed) gzip member holding the
/// header: its size is known in advance, so it is reserved at `create` and filled in at
/// `finish`. The result is a valid multi-member gzip file, byte-identical to what
/// [`crate::OutputImage`] writes for the same header and data.
pub struct OutputStream {
    header: Header,
    files: ImageFiles,
    options: WriteOptions,
    header_bytes_len: usize,
    data_len: usize,
    n_written: u64,
    sink: Sink,
    /// Set once a write failed: the stream can no longer be finished.
    failed: bool,
}

/// Where the data go.
enum Sink {
    Plain(PlainSink),
    Gzip(GzipSink),
}

/// Plain data written straight to the data file's temp file.
struct PlainSink {
    temp: NamedTempFile,
    out: BufWriter<File>,
    /// The data file's final name (for messages).
    target: PathBuf,
}

/// Gzipped data: whole batches of blocks are handed to a worker thread.
struct GzipSink {
    /// Taken at `finish`; otherwise removed (with the file) when the sink is dropped.
    temp: Option<NamedTempFile>,
    target: PathBuf,
    /// The batch being filled.
    batch: Vec<u8>,
    batch_len: usize,
    to_worker: Option<SyncSender<Vec<u8>>>,
    /// Batches the worker is done with, reused so no fresh memory is faulted in per batch.
    recycled: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<io::Result<()>>>,
    cancel: Arc<AtomicBool>,
}

impl GzipSink {
    fn start(temp: NamedTempFile, target: PathBuf, options: &WriteOptions) -> Result<GzipSink> {
        let handle = temp
            .as_file()
            .try_clone()
            .map_err(|e| NiftiError::io(&target, "cannot write", e))?;
        let block = block_size(options);
        let batch_len = block.saturating_mul(blocks_per_batch());
        let (to_worker, from_caller) = mpsc::sync_channel::<Vec<u8>>(1);
        let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
        let cancel = Arc::new(AtomicBool::new(false));
        let worker_cancel = Arc::clone(&cancel);
        let mut writer = MemberWriter::new(handle, options);
        // A pool of its own: the caller may itself run on the global rayon pool and block in
        // `write_data` while this worker waits for compression jobs, which must not then queue
        // behind the blocked caller (two streams written from two pool threads would deadlock).
        let n_threads = rayon::current_num_threads();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n_threads)
            .thread_name(|i| format!("voxcalc-gzip-{i}"))
            .build()
            .map_err(|e| {
                NiftiError::io(
                    &target,
                    "cannot start the compression threads",
                    io::Error::other(e),
                )
            })?;
        let worker = std::thread::Builder::new()
            .name("voxcalc-gzip-writer".into())
            .spawn(move || {
                for batch in from_caller {
                    if worker_cancel.load(Ordering::Relaxed) {
                        return Err(io::Error::other("cancelled"));
                    }
                    let blocks: Vec<&[u8]> = batch.chunks(block).collect();
                    pool.install(|| writer.push_batch(&blocks))?;
                    // The caller may have stopped taking buffers back; that is fine.
                    let _ = recycle.send(batch);
                }
                if worker_cancel.load(Ordering::Relaxed) {
                    return Err(io::Error::other("cancelled"));
                }
                pool.install(|| writer.finish()).map(drop)
            })
            .map_err(|e| NiftiError::io(&target, "cannot start the compression thread", e))?;
        Ok(GzipSink {
            temp: Some(temp),
            target,
            batch: Vec::new(),
            batch_len,
            to_worker: Some(to_worker),
            recycled,
            worker: Some(worker),
            cancel,
        })
    }

    /// Appends `chunk`; `n_remaining` is how many data bytes are still to come after it (so a
    /// small image does not reserve a whole batch).
    fn write(&mut self, mut chunk: &[u8], n_remaining: usize) -> Result<()> {
        while !chunk.is_empty() {
            if self.batch.capacity() == 0 {
                self.batch = self.recycled.try_recv().unwrap_or_default();
                self.batch.clear();
                let wanted = self.batch_len.min(chunk.len() + n_remaining);
                self.batch.reserve(wanted.min(64 << 20));
            }
            let take = (self.batch_len - self.batch.len()).min(chunk.len());
            self.batch.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.batch.len() == self.batch_len {
                self.send_batch()?;
            }
        }
        Ok(())
    }

    fn send_batch(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let sent = self
            .to_worker
            .as_ref()
            .is_some_and(|sender| sender.send(batch).is_ok());
        if sent {
            Ok(())
        } else {
            // The worker stopped: its error says why.
            Err(self.join_worker())
        }
    }

    /// Waits for the worker after it stopped early and returns its error.
    fn join_worker(&mut self) -> NiftiError {
        self.to_worker = None;
        let error = match self.worker.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("the compression thread panicked"),
            _ => io::Error::other("the compression thread stopped"),
        };
        NiftiError::io(&self.target, "cannot write", error)
    }

    /// Compresses and writes what is left, then waits for the worker.
    fn finish(mut self) -> Result<NamedTempFile> {
        if !self.batch.is_empty() {
            self.send_batch()?;
        }
        self.to_worker = None;
        let joined = self.worker.take().map(JoinHandle::join);
        match joined {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => return Err(NiftiError::io(&self.target, "cannot write", e)),
            _ => {
                return Err(NiftiError::io(
                    &self.target,
                    "cannot write",
                    io::Error::other("the compression thread panicked"),
                ))
            }
        }
        self.temp.take().ok_or_else(|| {
            NiftiError::new(
                ErrorKind::CannotWrite,
                &self.target,
                "no temp file to rename",
            )
        })
    }
}

impl Drop for GzipSink {
    fn drop(&mut self) {
        // An unfinished stream: stop the worker without compressing what is queued. The temp
        // file is removed when `temp` is dropped.
        self.cancel.store(true, Ordering::Relaxed);
        self.to_worker = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl OutputStream {
    /// Prepares an output at `path` (`.nii`, `.nii.gz`, `.hdr`/`.img`, each optionally `.gz`)
    /// for `header`, with the same header policy and checks as [`crate::OutputImage::create`].
    /// Nothing appears at `path` until [`OutputStream::finish`].
    pub fn create(
        path: impl AsRef<Path>,
        header: &Header,
        options: &WriteOptions,
    ) -> Result<OutputStream> {
        let path = path.as_ref();
        let Prepared {
            files,
            header,
            header_bytes,
            data_len,
        } = prepare(path, header)?;
        let (data_target, single) = match &files {
            ImageFiles::Single(file) => (file.clone(), true),
            ImageFiles::Pair { data, .. } => (data.clone(), false),
        };
        let write_error = |e| NiftiError::io(&data_target, "cannot write", e);
        let temp = temp_beside(&data_target)?;
        let sink = if has_gz_suffix(&data_target) {
            let mut file = temp.as_file();
            if single {
                // Room for the header member, filled in at `finish`.
                let reserved = stored_member_len(header_bytes.len());
                file.seek(SeekFrom::Start(reserved as u64))
                    .map_err(write_error)?;
            }
            Sink::Gzip(GzipSink::start(temp, data_target, options)?)
        } else {
            let mut file = temp.as_file().try_clone().map_err(write_error)?;
            if single {
                file.seek(SeekFrom::Start(header_bytes.len() as u64))
                    .map_err(write_error)?;
            }
            Sink::Plain(PlainSink {
                temp,
                out: BufWriter::with_capacity(1 << 20, file),
                target: data_target,
            })
        };
        Ok(OutputStream {
            header,
            files,
            options: options.clone(),
            header_bytes_len: header_bytes.len(),
            data_len,
            n_written: 0,
            sink,
            failed: false,
        })
    }

    /// The header that will be written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Mutable header access, e.g. to set `cal_min`/`cal_max` once the data are known. Changing
    /// shape, dtype or extensions makes `finish` fail.
    pub fn header_mut(&mut self) -> &mut Header {
        &mut self.header
    }

    /// Appends `chunk` to the data (native byte order, the header's dtype, Fortran order).
    /// Writing more than the header declares is an error, as is any write failure (a full disk
    /// names the file); after an error the stream can only be dropped.
    pub fn write_data(&mut self, chunk: &[u8]) -> Result<()> {
        if self.failed {
            return Err(NiftiError::new(
                ErrorKind::CannotWrite,
                self.main_path(),
                "an earlier write to this output failed",
            ));
        }
        if self.n_written + chunk.len() as u64 > self.data_len as u64 {
            self.failed = true;
            return Err(NiftiError::new(
                ErrorKind::CannotWrite,
                self.main_path(),
                format!(
                    "more data than the header declares ({} bytes)",
                    self.data_len
                ),
            ));
        }
        let written = match &mut self.sink {
            // In pieces of 1 MiB: one multi-megabyte write() spends most of its time in the
            // kernel's page-cache copy on this class of VM (measured 4x slower than 1 MiB
            // pieces for the same bytes).
            Sink::Plain(plain) => chunk
                .chunks(1 << 20)
                .try_for_each(|piece| plain.out.write_all(piece))
                .map_err(|e| NiftiError::io(&plain.target, "cannot write", e)),
            Sink::Gzip(gzip) => {
                let n_remaining = self.data_len - self.n_written as usize - chunk.len();
                gzip.write(chunk, n_remaining)
            }
        };
        if written.is_err() {
            self.failed = true;
        }
        written?;
        self.n_written += chunk.len() as u64;
        Ok(())
    }

    fn main_path(&self) -> &Path {
        self.files.all()[0]
    }

    /// Checks that exactly the declared data were written, writes the header, and renames the
    /// temp files into place (the data file first for pairs).
    pub fn finish(self) -> Result<()> {
        let OutputStream {
            header,
            files,
            options,
            header_bytes_len,
            data_len,
            n_written,
            sink,
            failed,
        } = self;
        let main_path = files.all()[0].to_path_buf();
        if failed || n_written != data_len as u64 {
            return Err(NiftiError::new(
                ErrorKind::CannotWrite,
                &main_path,
                format!("{n_written} data bytes were written but the header declares {data_len}"),
            ));
        }
        let single = matches!(files, ImageFiles::Single(_));
        let reserved = single.then_some(header_bytes_len);
        let header_bytes = final_header_bytes(&header, single, data_len, reserved, &main_path)?;
        let (data_temp, data_target) = match sink {
            Sink::Plain(PlainSink { temp, out, target }) => {
                let file = out
                    .into_inner()
                    .map_err(|e| NiftiError::io(&target, "cannot write", e.into_error()))?;
                if single {
                    write_at_start(&file, &header_bytes, &target)?;
                }
                (temp, target)
            }
            Sink::Gzip(gzip) => {
                let target = gzip.target.clone();
                let temp = gzip.finish()?;
                if single {
                    let member = stored_member(&header_bytes)
                        .map_err(|e| NiftiError::io(&target, "cannot write", e))?;
                    write_at_start(temp.as_file(), &member, &target)?;
                }
                (temp, target)
            }
        };
        persist(Some(data_temp), &data_target)?;
        if let ImageFiles::Pair {
            header: header_path,
            ..
        } = &files
        {
            write_header_file(header_path, &header_bytes, &options)?;
        }
        Ok(())
    }
}

/// Writes `bytes` at offset 0 of `file` (the room reserved for the header).
fn write_at_start(file: &File, bytes: &[u8], target: &Path) -> Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(bytes))
        .and_then(|_| file.flush())
        .map_err(|e| NiftiError::io(target, "cannot write", e))
}

/// Writes the `.hdr` (or `.hdr.gz`) file of a pair through a temp file and a rename.
pub(crate) fn write_header_file(
    header_path: &Path,
    header_bytes: &[u8],
    options: &WriteOptions,
) -> Result<()> {
    let temp = temp_beside(header_path)?;
    if has_gz_suffix(header_path) {
        write_gzip(
            temp.as_file(),
            Some(header_bytes),
            &[],
            options,
            header_path,
        )?;
    } else {
        let mut file = temp.as_file();
        file.write_all(header_bytes)
            .map_err(|e| NiftiError::io(header_path, "cannot write", e))?;
    }
    persist(Some(temp), header_path)
}
