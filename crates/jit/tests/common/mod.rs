//! Shared test helpers: a block-splitting multi-threaded driver and output comparison.

#![allow(dead_code)]

use voxcalc_ir::{Kernel, RunArgs};
use voxcalc_jit::CompiledKernel;
use voxcalc_types::DType;

/// Block size of the test driver (small, so small volumes still have several blocks).
pub const BLOCK: u64 = 64;

/// Runs `kernel` over its domain in blocks of [`BLOCK`] voxels, blocks dealt round-robin to
/// `threads` threads, as the runtime will.
pub fn run_blocks(compiled: &CompiledKernel, args: &RunArgs<'_>, threads: usize) -> Vec<u8> {
    let kernel = compiled.kernel();
    let n = kernel.n_voxels();
    let size = kernel.output_dtype().size();
    let mut out = vec![0u8; n as usize * size];
    let blocks: Vec<(u64, &mut [u8])> = out
        .chunks_mut(BLOCK as usize * size)
        .enumerate()
        .map(|(i, c)| (i as u64 * BLOCK, c))
        .collect();
    let mut per_thread: Vec<Vec<(u64, &mut [u8])>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, b) in blocks.into_iter().enumerate() {
        per_thread[i % threads].push(b);
    }
    std::thread::scope(|s| {
        for work in per_thread {
            s.spawn(move || {
                for (start, chunk) in work {
                    let end = start + (chunk.len() / size) as u64;
                    compiled.run(args, chunk, start, end).expect("checked call");
                }
            });
        }
    });
    out
}

/// Runs the reference interpreter in the same blocks (one thread).
pub fn interp_blocks(kernel: &Kernel, args: &RunArgs<'_>) -> Vec<u8> {
    let n = kernel.n_voxels();
    let size = kernel.output_dtype().size();
    let mut out = vec![0u8; n as usize * size];
    for (i, chunk) in out.chunks_mut(BLOCK as usize * size).enumerate() {
        let start = i as u64 * BLOCK;
        let end = start + (chunk.len() / size) as u64;
        voxcalc_ir::interp::run(kernel, args, chunk, start, end).expect("checked call");
    }
    out
}

/// Compares two outputs of dtype `dtype` bit for bit, except that any two NaNs are equal
/// (numpy does not specify NaN payloads). Returns the first differing element.
pub fn first_difference(dtype: DType, a: &[u8], b: &[u8]) -> Option<(usize, u64, u64)> {
    let size = dtype.size();
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.chunks(size).zip(b.chunks(size)).enumerate() {
        let bits = |c: &[u8]| {
            let mut buf = [0u8; 8];
            buf[..size].copy_from_slice(c);
            u64::from_le_bytes(buf)
        };
        let (bx, by) = (bits(x), bits(y));
        if bx == by {
            continue;
        }
        let both_nan = match dtype {
            DType::F32 => f32::from_bits(bx as u32).is_nan() && f32::from_bits(by as u32).is_nan(),
            DType::F64 => f64::from_bits(bx).is_nan() && f64::from_bits(by).is_nan(),
            _ => false,
        };
        if !both_nan {
            return Some((i, bx, by));
        }
    }
    None
}
