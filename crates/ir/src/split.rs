//! Splitting a global reduction into partial reductions and a merge, so that a scalar stage
//! (`np.sum(img)`, `np.max(img)`) runs on several threads with the result it has on one.
//!
//! A scalar stage whose value comes from one top-level reduction becomes partial kernels, each
//! reducing a part of the reduction's outermost loop (views shifted to that part), and a merge
//! kernel that combines the partial results in an order that gives the same bits as the single
//! reduction, then computes the rest of the original stage (e.g. a mean's division):
//!
//! - minimum, maximum (NaN-propagating or NaN-ignoring), any, all, counts and integer sums and
//!   products: the merge applies the same operation to the parts in order (these operations are
//!   associative, ties and NaNs included); reductions under a mask only for any, all, counts
//!   and integer sums, whose empty parts give the identity;
//! - float sums in numpy's pairwise order over one contiguous run (`SumOrder::PairwiseGlobal`
//!   with a single loop): the parts are the subtrees of numpy's pairwise recursion (split in
//!   halves rounded down to a multiple of 8, while longer than 128 elements) and the merge adds
//!   them back in the same tree, so every addition numpy performs happens in the same order.
//!
//! Everything else stays one single-threaded kernel, because a split would change the result:
//! float sums in sequential order or over several loops (numpy's buffered order over strided
//! data: a part would start a new accumulation), float sums over a mask selection (numpy sums
//! the selected elements pairwise, whose split points depend on the mask), arg-reductions,
//! medians and quantiles, and stages with several reductions (e.g. a variance's two passes).

use crate::kernel::{BinaryOp, Inst, InstKind, Kernel, LoopId, ReduceOp, SumOrder, ValueId};
use crate::scalar::Scalar;

/// The fewest reduced elements worth splitting (below this one thread is fast enough).
pub const MIN_SPLIT_ELEMS: u64 = 1 << 16;

/// The most partial kernels a split creates (pairwise sums: 2^4 subtrees).
pub const MAX_PARTS: usize = 16;

/// A split global reduction: kernels computing parts of the reduction (each a scalar kernel
/// with the original inputs and uniforms), and the merge kernel, whose uniforms are the
/// original kernel's followed by one per part, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub parts: Vec<Kernel>,
    pub merge: Kernel,
}

/// How the parts of a reduction combine.
enum Merge {
    /// In order with this operation.
    Fold(BinaryOp),
    /// As numpy's pairwise recursion over a run of this many elements.
    Pairwise(u64),
}

/// Splits `kernel` when it is a scalar kernel whose value comes from one top-level reduction
/// that can be split without changing its result (see the module documentation), over at
/// least [`MIN_SPLIT_ELEMS`] elements. Returns `None` otherwise.
pub fn split_global(kernel: &Kernel) -> Option<Split> {
    if !kernel.domain.is_empty() {
        return None;
    }
    let mut reduces = kernel
        .insts
        .iter()
        .enumerate()
        .filter(|(_, inst)| matches!(inst.kind, InstKind::Reduce(_)));
    let (r_idx, r_inst) = reduces.next()?;
    if reduces.next().is_some() {
        return None;
    }
    let r_val = ValueId(r_idx as u32);
    let r_pos = kernel.body.iter().position(|&v| v == r_val)?;
    let InstKind::Reduce(r) = &r_inst.kind else {
        return None;
    };
    let elem = kernel.dtype(r.elem);
    let total: u64 = r
        .loops
        .iter()
        .map(|l| kernel.loops[l.index()].len)
        .try_fold(1u64, |acc, n| acc.checked_mul(n))?;
    if total < MIN_SPLIT_ELEMS {
        return None;
    }
    let masked = r.mask.is_some();
    let merge = match r.op {
        ReduceOp::Min if !masked => Merge::Fold(BinaryOp::Min),
        ReduceOp::Max if !masked => Merge::Fold(BinaryOp::Max),
        ReduceOp::FMin if !masked => Merge::Fold(BinaryOp::FMin),
        ReduceOp::FMax if !masked => Merge::Fold(BinaryOp::FMax),
        ReduceOp::Any => Merge::Fold(BinaryOp::Or),
        ReduceOp::All => Merge::Fold(BinaryOp::And),
        ReduceOp::Count => Merge::Fold(BinaryOp::Add),
        ReduceOp::Sum(_) if !elem.is_float() => Merge::Fold(BinaryOp::Add),
        ReduceOp::Prod if !elem.is_float() && !masked => Merge::Fold(BinaryOp::Mul),
        // One pairwise sum over everything only when the innermost loop is the one that
        // iterates (otherwise numpy sums buffers of it: see `Kernel::pairwise_block`).
        ReduceOp::Sum(SumOrder::PairwiseGlobal)
            if !masked
                && iterating_loops(kernel, r) == 1
                && kernel.loops[r.loops[0].index()].len > 1 =>
        {
            Merge::Pairwise(total)
        }
        _ => return None,
    };
    // The outermost loop that iterates (loops of one iteration outside it change nothing),
    // so that the parts are consecutive runs of the reduction's order.
    let outer = *r
        .loops
        .iter()
        .rev()
        .find(|l| kernel.loops[l.index()].len > 1)?;
    let outer_len = kernel.loops[outer.index()].len;
    let ranges: Vec<(u64, u64)> = match merge {
        Merge::Fold(_) => {
            let n_parts = (MAX_PARTS as u64).min(outer_len);
            if n_parts < 2 {
                return None;
            }
            (0..n_parts)
                .map(|p| (outer_len * p / n_parts, outer_len * (p + 1) / n_parts))
                .collect()
        }
        Merge::Pairwise(n) => {
            let mut leaves = Vec::new();
            pairwise_leaves(0, n, MAX_PARTS.trailing_zeros(), &mut leaves);
            leaves
        }
    };
    let parts = ranges
        .iter()
        .map(|&(start, end)| part(kernel, r_val, r_pos, outer, start, end))
        .collect();
    let merge = merge_kernel(kernel, r_val, r_pos, &merge, ranges.len(), r_inst);
    Some(Split { parts, merge })
}

/// The number of loops of `r` with more than one iteration.
fn iterating_loops(kernel: &Kernel, r: &crate::kernel::Reduce) -> usize {
    r.loops
        .iter()
        .filter(|l| kernel.loops[l.index()].len > 1)
        .count()
}

/// The leaves of numpy's pairwise recursion over `start..start + n`, at most `depth` levels
/// down: a run longer than 128 elements splits at half its length rounded down to a multiple
/// of 8.
fn pairwise_leaves(start: u64, n: u64, depth: u32, out: &mut Vec<(u64, u64)>) {
    if depth == 0 || n <= 128 {
        out.push((start, start + n));
        return;
    }
    let half = n / 2 - (n / 2) % 8;
    pairwise_leaves(start, half, depth - 1, out);
    pairwise_leaves(start + half, n - half, depth - 1, out);
}

/// Adds the parts back in numpy's pairwise recursion over `n` elements, mirroring
/// [`pairwise_leaves`] (`depth` levels at most): leaves are the parts in order, taken from
/// `next`; every addition is emitted with `add`.
fn pairwise_tree(
    n: u64,
    depth: u32,
    parts: &[ValueId],
    next: &mut usize,
    add: &mut impl FnMut(ValueId, ValueId) -> ValueId,
) -> ValueId {
    if depth == 0 || n <= 128 {
        let v = parts[*next];
        *next += 1;
        return v;
    }
    let half = n / 2 - (n / 2) % 8;
    let a = pairwise_tree(half, depth - 1, parts, next, add);
    let b = pairwise_tree(n - half, depth - 1, parts, next, add);
    add(a, b)
}

/// The kernel reducing iterations `start..end` of the outermost loop: the original kernel up
/// to the reduction, with that loop shortened and the views that step along it shifted.
fn part(
    kernel: &Kernel,
    r_val: ValueId,
    r_pos: usize,
    outer: LoopId,
    start: u64,
    end: u64,
) -> Kernel {
    let mut k = kernel.clone();
    k.loops[outer.index()].len = end - start;
    for v in &mut k.views {
        if let Some(&(_, stride)) = v.loop_strides.iter().find(|(l, _)| *l == outer) {
            v.offset += start as i64 * stride;
        }
    }
    k.body.truncate(r_pos + 1);
    k.output = r_val;
    crate::opt::prune(&k)
}

/// The merge kernel: the original kernel with the reduction replaced by the combination of the
/// `n_parts` parts' results (read as uniforms after the original ones).
fn merge_kernel(
    kernel: &Kernel,
    r_val: ValueId,
    r_pos: usize,
    merge: &Merge,
    n_parts: usize,
    r_inst: &Inst,
) -> Kernel {
    let mut k = kernel.clone();
    let dtype = r_inst.dtype;
    let mut new_body: Vec<ValueId> = Vec::new();
    let first_uniform = kernel.uniforms.len() as u32;
    let (op, a, b) = {
        let mut push = |kind: InstKind| {
            k.insts.push(Inst { dtype, kind });
            let id = ValueId(k.insts.len() as u32 - 1);
            new_body.push(id);
            id
        };
        let parts: Vec<ValueId> = (0..n_parts as u32)
            .map(|p| push(InstKind::Uniform(first_uniform + p)))
            .collect();
        // The combination; its last operation is written into the reduction's own id so
        // that the rest of the kernel reads it unchanged.
        match merge {
            Merge::Fold(op) => {
                let mut acc = parts[0];
                for &p in &parts[1..n_parts - 1] {
                    acc = push(InstKind::Binary(*op, acc, p));
                }
                (*op, acc, parts[n_parts - 1])
            }
            Merge::Pairwise(n) => {
                // The run is longer than 128 elements, so the recursion's root splits.
                let depth = MAX_PARTS.trailing_zeros() - 1;
                let half = n / 2 - (n / 2) % 8;
                let mut next = 0usize;
                let mut add = |a, b| push(InstKind::Binary(BinaryOp::Add, a, b));
                let a = pairwise_tree(half, depth, &parts, &mut next, &mut add);
                let b = pairwise_tree(n - half, depth, &parts, &mut next, &mut add);
                (BinaryOp::Add, a, b)
            }
        }
    };
    k.uniforms.extend(std::iter::repeat_n(dtype, n_parts));
    k.insts[r_val.index()] = Inst {
        dtype,
        kind: InstKind::Binary(op, a, b),
    };
    // The reduction's body is no longer reachable: make its instructions inert so that no
    // pass sees loads or loops of the original reduction.
    if let InstKind::Reduce(r) = &r_inst.kind {
        for &v in &r.body {
            let dtype = k.insts[v.index()].dtype;
            k.insts[v.index()].kind = InstKind::Const(Scalar::zero(dtype));
        }
    }
    let mut body = k.body[..r_pos].to_vec();
    body.extend(new_body);
    body.extend_from_slice(&k.body[r_pos..]);
    k.body = body;
    crate::opt::prune(&k)
}
