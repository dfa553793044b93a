//! Run-time arguments of a kernel and their checks, shared by the interpreter and the JIT so
//! both refuse exactly the same calls (never reading out of bounds).

use std::fmt;

use crate::kernel::{Kernel, ViewId};

/// One input buffer: its bytes and the byte offset of element 0 of the input array in them
/// (views add their own element offsets and strides). The data may be misaligned.
#[derive(Clone, Copy, Debug)]
pub struct InputBuf<'a> {
    pub bytes: &'a [u8],
    pub base: usize,
}

/// Everything a kernel reads: one buffer per kernel input, and the uniform scalars as bit
/// patterns ([`crate::Scalar::to_bits`]).
#[derive(Clone, Copy, Debug)]
pub struct RunArgs<'a> {
    pub inputs: &'a [InputBuf<'a>],
    pub uniforms: &'a [u64],
}

/// A call that does not fit the kernel (wrong buffer count or sizes, range outside the domain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunError(pub String);

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// Checks a call computing domain points `start..end` into `out` (which holds exactly those
/// points): every byte any view can reach lies inside its buffer.
pub fn check_run(
    kernel: &Kernel,
    args: &RunArgs<'_>,
    out: &[u8],
    start: u64,
    end: u64,
) -> Result<(), RunError> {
    if args.inputs.len() != kernel.inputs.len() {
        return Err(RunError(format!(
            "the kernel has {} inputs, {} buffers were given",
            kernel.inputs.len(),
            args.inputs.len()
        )));
    }
    if args.uniforms.len() != kernel.uniforms.len() {
        return Err(RunError(format!(
            "the kernel has {} uniforms, {} were given",
            kernel.uniforms.len(),
            args.uniforms.len()
        )));
    }
    let n_voxels = kernel.n_voxels();
    if start > end || end > n_voxels {
        return Err(RunError(format!(
            "voxel range {start}..{end} is outside the domain of {n_voxels} voxels"
        )));
    }
    let out_size = kernel.output_dtype().size() as u64;
    if out.len() as u64 != (end - start) * out_size {
        return Err(RunError(format!(
            "output block holds {} bytes, {} voxels of {} need {}",
            out.len(),
            end - start,
            kernel.output_dtype(),
            (end - start) * out_size
        )));
    }
    if n_voxels == 0 {
        return Ok(());
    }
    let reachable = reachable_views(kernel);
    for (view_idx, view) in kernel.views.iter().enumerate() {
        if !reachable[view_idx] {
            continue;
        }
        let input = &kernel.inputs[view.input.index()];
        let buf = &args.inputs[view.input.index()];
        let (lo, hi) = kernel.view_extent(ViewId(view_idx as u32));
        let size = input.dtype.size() as i128;
        let first = buf.base as i128 + lo as i128 * size;
        let last = buf.base as i128 + hi as i128 * size + size;
        if first < 0 || last > buf.bytes.len() as i128 {
            return Err(RunError(format!(
                "view{view_idx} of input {} reaches bytes {first}..{last}, outside its buffer of {} bytes",
                view.input,
                buf.bytes.len()
            )));
        }
    }
    Ok(())
}

/// The views some load can actually read: a load inside a reduction loop of zero iterations
/// never runs (an empty image's global mean, for instance), so its view need not fit a buffer.
fn reachable_views(kernel: &Kernel) -> Vec<bool> {
    use crate::kernel::{InstKind, ValueId};
    fn walk(kernel: &Kernel, region: &[ValueId], reachable: &mut Vec<bool>) {
        for &v in region {
            match &kernel.inst(v).kind {
                InstKind::Load(view) => reachable[view.index()] = true,
                InstKind::Reduce(r) if r.loops.iter().all(|l| kernel.loops[l.index()].len > 0) => {
                    walk(kernel, &r.body, reachable);
                }
                _ => {}
            }
        }
    }
    let mut reachable = vec![false; kernel.views.len()];
    walk(kernel, &kernel.body, &mut reachable);
    reachable
}
