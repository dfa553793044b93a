//! Runs a compiled plan ([`voxcalc_jit::CompiledPlan`]) over input buffers, stage by stage, each
//! stage's domain split into blocks of voxels computed on a thread pool.
//!
//! Every block writes a disjoint slice of its stage's output and reads only inputs and earlier
//! stages, and a kernel computes each voxel independently of how the domain was cut, so the
//! result does not depend on the thread count or the block size (a test checks it).
//! A scalar stage is one voxel, so one thread: the planner splits long global reductions into
//! independent partial stages and a merge with the same bits (`voxcalc_ir::split`), and
//! consecutive scalar stages that do not read each other run concurrently.
//! After each stage, the plan's run-time checks on it are evaluated: a failed check (numpy's
//! error for these values, e.g. an integer power with a negative exponent) stops the run with
//! [`ExecError::Check`] before any later stage.
//! Every stage checks [`Progress::cancelled`] before it starts and between blocks, so a
//! cancelled run stops within one block of work whichever stage it is in.
//!
//! The output stage either writes straight into the caller's buffer ([`run`]), or, with
//! [`run_streaming`], is computed window by window (a window is many blocks of contiguous
//! output voxels, computed in parallel) into a reused buffer handed to a sink in order, so a
//! large result (e.g. a 4-D z-score) never has to be held in memory whole. While the sink
//! consumes one window the next is being computed into a second buffer.

mod passes;

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use voxcalc_ir::plan::{CheckError, StageInput};
use voxcalc_ir::{InputBuf, RunArgs, RunError, Scalar};
use voxcalc_jit::{CompiledKernel, CompiledPlan};

pub use passes::Passes;

/// How to run a plan.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Voxels per block; `None` picks a size from the stage's work (see [`block_voxels`]).
    pub block_voxels: Option<usize>,
    /// Output bytes per window of [`run_streaming`] (rounded to whole blocks); `None` uses
    /// [`default_window_bytes`]. Two windows are held at a time.
    pub window_bytes: Option<usize>,
}

/// The largest default window of [`run_streaming`]: large enough that the per-window hand-over
/// costs nothing measurable and every thread gets many blocks, small enough that two windows
/// are a small fraction of a large result.
pub const DEFAULT_WINDOW_BYTES: usize = 32 << 20;

/// The smallest default window (see [`default_window_bytes`]).
pub const MIN_WINDOW_BYTES: usize = 4 << 20;

/// The default window for a result of `total` bytes: a 32nd of it, between
/// [`MIN_WINDOW_BYTES`] and [`DEFAULT_WINDOW_BYTES`]. The first window is computed before any
/// is written and the last written after all are computed, so the window bounds the part of
/// the job that does not overlap; fewer fresh pages are touched, too. (S2, a 134 MB result:
/// compute phase 114 -> 96 ms on 2 threads with 4 MiB instead of 32 MiB windows.)
pub fn default_window_bytes(total: usize) -> usize {
    (total / 32).clamp(MIN_WINDOW_BYTES, DEFAULT_WINDOW_BYTES)
}

/// Receives progress reports from worker threads and may ask the run to stop.
pub trait Progress: Sync {
    /// `voxels` more output voxels of the last stage are done (of `total`).
    fn advance(&self, voxels: u64, total: u64);
    /// True when the run should stop early (e.g. Ctrl-C in the REPL).
    fn cancelled(&self) -> bool {
        false
    }
}

/// A progress sink that ignores reports.
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _voxels: u64, _total: u64) {}
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// A buffer did not fit a kernel (a bug in the caller, reported instead of reading out of
    /// bounds).
    Run(RunError),
    /// The thread pool could not be built.
    Threads(String),
    /// [`Progress::cancelled`] returned true.
    Cancelled,
    /// A run-time check of the plan failed: the error numpy raises for these values (e.g. an
    /// integer power with a negative exponent, the maximum of an empty selection).
    Check(CheckError),
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecError::Run(err) => write!(f, "internal error running a kernel: {err}"),
            ExecError::Threads(err) => write!(f, "cannot start worker threads: {err}"),
            ExecError::Cancelled => f.write_str("cancelled"),
            ExecError::Check(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ExecError {}

/// Why a streamed run stopped: the run itself, or the sink the output went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError<E> {
    /// The run failed or was cancelled (see [`ExecError`]).
    Exec(ExecError),
    /// The sink returned this error; no later window was handed to it.
    Sink(E),
}

impl<E: std::fmt::Display> std::fmt::Display for StreamError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Exec(err) => write!(f, "{err}"),
            StreamError::Sink(err) => write!(f, "{err}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for StreamError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Exec(err) => Some(err),
            StreamError::Sink(err) => Some(err),
        }
    }
}

impl<E> From<ExecError> for StreamError<E> {
    fn from(err: ExecError) -> StreamError<E> {
        StreamError::Exec(err)
    }
}

impl From<RunError> for ExecError {
    fn from(err: RunError) -> ExecError {
        ExecError::Run(err)
    }
}

/// The block size for a stage: enough voxels that per-block overhead (argument checks, scratch
/// allocation) is negligible, small enough that every thread gets several blocks. Work per voxel
/// grows with the kernel's reduction loops, so blocks shrink accordingly.
pub fn block_voxels(n_voxels: u64, work_per_voxel: u64, threads: usize) -> usize {
    const TARGET_WORK: u64 = 1 << 18;
    let by_work = (TARGET_WORK / work_per_voxel.max(1)).clamp(64, 1 << 16);
    let per_thread = n_voxels.div_ceil((threads as u64).max(1) * 4).max(64);
    by_work.min(per_thread) as usize
}

/// Runs every stage of `plan`. `images[i]` is image `i` of the checker's environment (bytes in
/// the layout the plan was built for). The output stage writes into `out`, which must hold
/// exactly its result (dense, Fortran order, native byte order, the stage's dtype).
pub fn run(
    plan: &CompiledPlan,
    images: &[InputBuf<'_>],
    out: &mut [u8],
    options: &RunOptions,
    progress: &dyn Progress,
) -> Result<(), ExecError> {
    let pool = thread_pool(options)?;
    let threads = pool.current_num_threads();
    pool.install(|| {
        let outputs = run_earlier_stages(plan, images, options, threads, progress)?;
        let output = OutputStage::new(plan, images, &outputs, options, threads)?;
        let total = output.n_voxels;
        let want = total.saturating_mul(output.elem_size as u64);
        if out.len() as u64 != want {
            return Err(ExecError::Run(RunError(format!(
                "the output stage of {total} voxels needs a buffer of {want} bytes, got {}",
                out.len()
            ))));
        }
        run_blocks(
            output.kernel,
            &output.args(),
            out,
            Blocks {
                first_voxel: 0,
                block: output.block,
            },
            progress,
            Some(total),
        )
    })
}

/// Runs every stage of `plan` like [`run`], but hands the output stage's result to `sink` in
/// order, window by window (chunks of whole elements: dense, Fortran order, native byte order,
/// the stage's dtype; every chunk but the last holds a full window). At most two windows are
/// held at a time: the sink consumes one while the next is computed on the thread pool. The
/// bytes the sink receives, concatenated, are exactly what [`run`] writes into its buffer, for
/// any thread count, block size and window size.
///
/// The sink runs on one of the pool's threads, so a sink that itself uses rayon (e.g. parallel
/// compression) shares the run's threads.
pub fn run_streaming<E: Send>(
    plan: &CompiledPlan,
    images: &[InputBuf<'_>],
    sink: &mut (dyn FnMut(&[u8]) -> Result<(), E> + Send),
    options: &RunOptions,
    progress: &dyn Progress,
) -> Result<(), StreamError<E>> {
    let pool = thread_pool(options)?;
    let threads = pool.current_num_threads();
    pool.install(|| {
        let outputs = run_earlier_stages(plan, images, options, threads, progress)?;
        let output = OutputStage::new(plan, images, &outputs, options, threads)?;
        stream_windows(&output, sink, options, progress)
    })
}

fn thread_pool(options: &RunOptions) -> Result<rayon::ThreadPool, ExecError> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = options.threads {
        builder = builder.num_threads(n.max(1));
    }
    builder
        .build()
        .map_err(|e| ExecError::Threads(e.to_string()))
}

/// Runs every stage but the output stage, in order, and returns their results (indexed by
/// stage). Cancellation is checked before each stage and between blocks.
fn run_earlier_stages(
    plan: &CompiledPlan,
    images: &[InputBuf<'_>],
    options: &RunOptions,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<u8>>, ExecError> {
    let stages = &plan.plan().stages;
    let kernels = plan.kernels();
    if stages.is_empty() {
        return Err(ExecError::Run(RunError(
            "the plan has no stages".to_string(),
        )));
    }
    let last = stages.len() - 1;
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(stages.len());
    let mut stage_idx = 0;
    while stage_idx < last {
        if progress.cancelled() {
            return Err(ExecError::Cancelled);
        }
        // Consecutive scalar stages that do not read each other (e.g. the parts of a split
        // global reduction) run at the same time, one thread each.
        let wave = scalar_wave(plan, stage_idx, last);
        if wave > 1 {
            let results: Vec<Result<Vec<u8>, ExecError>> = (stage_idx..stage_idx + wave)
                .into_par_iter()
                .map(|s| {
                    let (inputs, uniforms) = stage_args(plan, s, images, &outputs)?;
                    let args = RunArgs {
                        inputs: &inputs,
                        uniforms: &uniforms,
                    };
                    let mut own = vec![0u8; stages[s].dtype().size()];
                    let blocks = Blocks {
                        first_voxel: 0,
                        block: 1,
                    };
                    run_blocks(&kernels[s], &args, &mut own, blocks, progress, None)?;
                    Ok(own)
                })
                .collect();
            for (s, res) in (stage_idx..).zip(results) {
                let own = res?;
                if let Some(err) = plan.plan().failed_check(s, &own) {
                    return Err(ExecError::Check(err.clone()));
                }
                outputs.push(own);
            }
            stage_idx += wave;
            continue;
        }
        let (inputs, uniforms) = stage_args(plan, stage_idx, images, &outputs)?;
        let args = RunArgs {
            inputs: &inputs,
            uniforms: &uniforms,
        };
        let kernel = &kernels[stage_idx];
        let n_voxels = kernel.kernel().n_voxels();
        let elem_size = stages[stage_idx].dtype().size();
        let blocks = Blocks {
            first_voxel: 0,
            block: stage_block(kernel, options, threads),
        };
        let mut own = vec![0u8; n_voxels as usize * elem_size];
        run_blocks(kernel, &args, &mut own, blocks, progress, None)?;
        if let Some(err) = plan.plan().failed_check(stage_idx, &own) {
            return Err(ExecError::Check(err.clone()));
        }
        outputs.push(own);
        stage_idx += 1;
    }
    if progress.cancelled() {
        return Err(ExecError::Cancelled);
    }
    Ok(outputs)
}

/// The voxels per block of a stage: the caller's choice or [`block_voxels`] for its work.
fn stage_block(kernel: &CompiledKernel, options: &RunOptions, threads: usize) -> usize {
    let work = kernel
        .kernel()
        .loops
        .iter()
        .map(|l| l.len.max(1))
        .fold(1u64, |acc, len| acc.saturating_mul(len));
    options
        .block_voxels
        .unwrap_or_else(|| block_voxels(kernel.kernel().n_voxels(), work, threads))
        .max(1)
}

/// The output stage, ready to run: its kernel, arguments and block size.
struct OutputStage<'a> {
    kernel: &'a CompiledKernel,
    inputs: Vec<InputBuf<'a>>,
    uniforms: Vec<u64>,
    n_voxels: u64,
    elem_size: usize,
    block: usize,
}

impl<'a> OutputStage<'a> {
    fn new(
        plan: &'a CompiledPlan,
        images: &[InputBuf<'a>],
        outputs: &'a [Vec<u8>],
        options: &RunOptions,
        threads: usize,
    ) -> Result<OutputStage<'a>, ExecError> {
        let last = plan.plan().stages.len() - 1;
        let kernel = &plan.kernels()[last];
        let (inputs, uniforms) = stage_args(plan, last, images, outputs)?;
        Ok(OutputStage {
            kernel,
            inputs,
            uniforms,
            n_voxels: kernel.kernel().n_voxels(),
            elem_size: plan.plan().stages[last].dtype().size(),
            block: stage_block(kernel, options, threads),
        })
    }

    fn args(&self) -> RunArgs<'_> {
        RunArgs {
            inputs: &self.inputs,
            uniforms: &self.uniforms,
        }
    }
}

/// Computes the output stage window by window into two reused buffers, handing each finished
/// window to `sink` while the next one is computed.
fn stream_windows<E: Send>(
    output: &OutputStage<'_>,
    sink: &mut (dyn FnMut(&[u8]) -> Result<(), E> + Send),
    options: &RunOptions,
    progress: &dyn Progress,
) -> Result<(), StreamError<E>> {
    let n_voxels = output.n_voxels;
    if n_voxels == 0 {
        return Ok(());
    }
    let window_bytes = options
        .window_bytes
        .unwrap_or_else(|| default_window_bytes(n_voxels as usize * output.elem_size));
    // Whole blocks per window, at least one.
    let blocks_per_window = (window_bytes / (output.block * output.elem_size)).max(1) as u64;
    let window_voxels = (blocks_per_window * output.block as u64).min(n_voxels);
    let n_windows = n_voxels.div_ceil(window_voxels);
    let window_len = |window_idx: u64| {
        let start = window_idx * window_voxels;
        ((n_voxels - start).min(window_voxels) as usize) * output.elem_size
    };
    let args = output.args();
    let compute = |window_idx: u64, buffer: &mut [u8]| {
        let blocks = Blocks {
            first_voxel: window_idx * window_voxels,
            block: output.block,
        };
        run_blocks(
            output.kernel,
            &args,
            &mut buffer[..window_len(window_idx)],
            blocks,
            progress,
            Some(n_voxels),
        )
    };
    let buffer_len = window_voxels as usize * output.elem_size;
    let mut current = vec![0u8; buffer_len];
    let mut next = if n_windows > 1 {
        vec![0u8; buffer_len]
    } else {
        Vec::new()
    };
    compute(0, &mut current)?;
    for window_idx in 0..n_windows {
        let ready = &current[..window_len(window_idx)];
        if window_idx + 1 == n_windows {
            sink(ready).map_err(StreamError::Sink)?;
            break;
        }
        let (sunk, computed) = rayon::join(|| sink(ready), || compute(window_idx + 1, &mut next));
        sunk.map_err(StreamError::Sink)?;
        computed?;
        std::mem::swap(&mut current, &mut next);
    }
    Ok(())
}

/// How many stages from `first` on (never the output stage `last`) are scalar and read no
/// other stage of the group, so that they can run concurrently.
fn scalar_wave(plan: &CompiledPlan, first: usize, last: usize) -> usize {
    let stages = &plan.plan().stages;
    let mut end = first;
    while end < last && stages[end].kernel.domain.is_empty() {
        let reads_group = stages[end]
            .inputs
            .iter()
            .filter_map(|src| match *src {
                StageInput::Stage(s) => Some(s),
                _ => None,
            })
            .chain(stages[end].uniforms.iter().copied())
            .any(|s| s >= first);
        if reads_group {
            break;
        }
        end += 1;
    }
    end - first
}

/// The input buffers and uniform bits of stage `stage_idx`, from the images, the plan's tables
/// and the outputs of earlier stages.
fn stage_args<'a>(
    plan: &'a CompiledPlan,
    stage_idx: usize,
    images: &[InputBuf<'a>],
    outputs: &'a [Vec<u8>],
) -> Result<(Vec<InputBuf<'a>>, Vec<u64>), ExecError> {
    let stages = &plan.plan().stages;
    let stage = &stages[stage_idx];
    let earlier = |s: usize| {
        outputs.get(s).ok_or_else(|| {
            RunError(format!(
                "stage {stage_idx} reads stage {s}, which has not run"
            ))
        })
    };
    let mut inputs = Vec::with_capacity(stage.inputs.len());
    for src in &stage.inputs {
        inputs.push(match *src {
            StageInput::Image(n) => *images
                .get(n)
                .ok_or_else(|| RunError(format!("image #{n} was not given")))?,
            StageInput::Stage(s) => InputBuf {
                bytes: earlier(s)?,
                base: 0,
            },
            StageInput::Table(t) => InputBuf {
                bytes: &plan.plan().tables[t],
                base: 0,
            },
        });
    }
    let uniforms = stage
        .uniforms
        .iter()
        .map(|&s| Ok(Scalar::from_le_bytes(stages[s].dtype(), earlier(s)?).to_bits()))
        .collect::<Result<Vec<u64>, RunError>>()?;
    Ok((inputs, uniforms))
}

/// Where a buffer lies in a kernel's domain and how it is cut into blocks.
#[derive(Clone, Copy, Debug)]
struct Blocks {
    /// The domain index of the buffer's first voxel.
    first_voxel: u64,
    /// Voxels per block (the last block may be shorter).
    block: usize,
}

/// Computes the voxels `blocks.first_voxel..` of a kernel's domain that `dest` holds, in blocks
/// on the current thread pool. Cancellation is checked before every block; progress is
/// reported against `report_total` when it is given (the output stage).
fn run_blocks(
    kernel: &CompiledKernel,
    args: &RunArgs<'_>,
    dest: &mut [u8],
    blocks: Blocks,
    progress: &dyn Progress,
    report_total: Option<u64>,
) -> Result<(), ExecError> {
    let n_voxels = kernel.kernel().n_voxels();
    let elem_size = kernel.kernel().output_dtype().size();
    let dest_voxels = (dest.len() / elem_size) as u64;
    if !dest.len().is_multiple_of(elem_size)
        || blocks
            .first_voxel
            .checked_add(dest_voxels)
            .is_none_or(|end| end > n_voxels)
    {
        return Err(ExecError::Run(RunError(format!(
            "a stage of {n_voxels} voxels cannot write {} bytes from voxel {}",
            dest.len(),
            blocks.first_voxel
        ))));
    }
    if dest.is_empty() {
        return Ok(());
    }
    let block = blocks.block.max(1);
    let stop = AtomicBool::new(false);
    dest.par_chunks_mut(block * elem_size)
        .enumerate()
        .try_for_each(|(block_idx, chunk)| {
            if stop.load(Ordering::Relaxed) || progress.cancelled() {
                stop.store(true, Ordering::Relaxed);
                return Err(ExecError::Cancelled);
            }
            let start = blocks.first_voxel + (block_idx * block) as u64;
            let end = start + (chunk.len() / elem_size) as u64;
            kernel.run(args, chunk, start, end)?;
            if let Some(total) = report_total {
                progress.advance(end - start, total);
            }
            Ok(())
        })
}
