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
//! The last stage writes straight into the caller's buffer (for files: the output mapping), so
//! the result is never copied.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use voxcalc_ir::plan::{CheckError, StageInput};
use voxcalc_ir::{InputBuf, RunArgs, RunError, Scalar};
use voxcalc_jit::{CompiledKernel, CompiledPlan};

/// How to run a plan.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Voxels per block; `None` picks a size from the stage's work (see [`block_voxels`]).
    pub block_voxels: Option<usize>,
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
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = options.threads {
        builder = builder.num_threads(n.max(1));
    }
    let pool = builder
        .build()
        .map_err(|e| ExecError::Threads(e.to_string()))?;
    let threads = pool.current_num_threads();
    pool.install(|| run_stages(plan, images, out, options, threads, progress))
}

fn run_stages(
    plan: &CompiledPlan,
    images: &[InputBuf<'_>],
    out: &mut [u8],
    options: &RunOptions,
    threads: usize,
    progress: &dyn Progress,
) -> Result<(), ExecError> {
    let stages = &plan.plan().stages;
    let kernels = plan.kernels();
    let last = stages.len().saturating_sub(1);
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(stages.len());
    let mut stage_idx = 0;
    while stage_idx < stages.len() {
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
                    run_blocks(&kernels[s], &args, &mut own, 1, None)?;
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
        let stage = &stages[stage_idx];
        let (inputs, uniforms) = stage_args(plan, stage_idx, images, &outputs)?;
        let args = RunArgs {
            inputs: &inputs,
            uniforms: &uniforms,
        };
        let kernel = &kernels[stage_idx];
        let n_voxels = kernel.kernel().n_voxels();
        let elem_size = stage.dtype().size();
        let work = kernel
            .kernel()
            .loops
            .iter()
            .map(|l| l.len.max(1))
            .fold(1u64, |acc, len| acc.saturating_mul(len));
        let block = options
            .block_voxels
            .unwrap_or_else(|| block_voxels(n_voxels, work, threads))
            .max(1);
        if stage_idx == last {
            run_blocks(kernel, &args, out, block, Some(progress))?;
            return Ok(());
        }
        let mut own = vec![0u8; n_voxels as usize * elem_size];
        run_blocks(kernel, &args, &mut own, block, None)?;
        if let Some(err) = plan.plan().failed_check(stage_idx, &own) {
            return Err(ExecError::Check(err.clone()));
        }
        outputs.push(own);
        stage_idx += 1;
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
    let mut inputs = Vec::with_capacity(stage.inputs.len());
    for src in &stage.inputs {
        inputs.push(match *src {
            StageInput::Image(n) => *images
                .get(n)
                .ok_or_else(|| RunError(format!("image #{n} was not given")))?,
            StageInput::Stage(s) => InputBuf {
                bytes: &outputs[s],
                base: 0,
            },
            StageInput::Table(t) => InputBuf {
                bytes: &plan.plan().tables[t],
                base: 0,
            },
        });
    }
    let uniforms: Vec<u64> = stage
        .uniforms
        .iter()
        .map(|&s| Scalar::from_le_bytes(stages[s].dtype(), &outputs[s]).to_bits())
        .collect();
    Ok((inputs, uniforms))
}

/// Computes a kernel's whole domain into `dest` in blocks of `block` voxels on the current
/// thread pool. Progress is reported (and cancellation honoured) when `progress` is given.
fn run_blocks(
    kernel: &CompiledKernel,
    args: &RunArgs<'_>,
    dest: &mut [u8],
    block: usize,
    progress: Option<&dyn Progress>,
) -> Result<(), ExecError> {
    let n_voxels = kernel.kernel().n_voxels();
    let elem_size = kernel.kernel().output_dtype().size();
    if dest.len() as u64 != n_voxels * elem_size as u64 {
        return Err(ExecError::Run(RunError(format!(
            "a stage of {n_voxels} voxels needs an output of {} bytes, got {}",
            n_voxels * elem_size as u64,
            dest.len()
        ))));
    }
    if dest.is_empty() {
        return Ok(());
    }
    let stop = AtomicBool::new(false);
    dest.par_chunks_mut(block * elem_size)
        .enumerate()
        .try_for_each(|(block_idx, chunk)| {
            if stop.load(Ordering::Relaxed) || progress.is_some_and(|p| p.cancelled()) {
                stop.store(true, Ordering::Relaxed);
                return Err(ExecError::Cancelled);
            }
            let start = (block_idx * block) as u64;
            let end = start + (chunk.len() / elem_size) as u64;
            kernel.run(args, chunk, start, end)?;
            if let Some(p) = progress {
                p.advance(end - start, n_voxels);
            }
            Ok(())
        })
}
