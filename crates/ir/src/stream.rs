//! Streaming reductions over an image's last axis (time), so that a gzipped 4-D image never has
//! to be inflated whole.
//!
//! A kernel reduces each voxel's time series in one loop, which needs every volume at once. For
//! a sum or product in loop order the accumulation can instead be carried across volumes: with
//! `carry` starting at the reduction's own initial value (`-0.0` for float sums), applying
//! `carry = carry + elem(volume t)` for t in order performs exactly the additions the loop
//! performs, in the same order, so the bits are the same. [`stream_last_axis`] rewrites a plan
//! that way: every reduction reading the streamed image becomes an *accumulator* (a kernel over
//! the stage's domain taking one volume and the carry, giving the next carry), and the stage
//! itself becomes a kernel reading the finished carries in place of the reductions.
//!
//! A reduction whose body uses another streamed reduction's result (a variance uses its mean)
//! runs in a later *pass* over the volumes than that one; each pass reads the image once.
//!
//! Only what keeps numpy's bits and reads each volume as a whole is streamed; anything else
//! makes [`stream_last_axis`] return `None` (the caller then reads the image whole):
//! - every load of the image lies inside a top-level reduction of its stage over one loop,
//!   without a mask or a nested reduction, that sums in loop order (`SumOrder::Sequential`, or
//!   any order for integers, whose sums are exact) or multiplies;
//! - such a loop steps through whole volumes forwards (`img[..., ::2]` and `img[..., 3:]` do;
//!   `img[..., ::-1]` does not), and every load of the image in one reduction reads the same
//!   volume at each step (`np.sum(img[..., 1:] - img[..., :-1], axis=-1)` does not);
//! - other loads in that reduction do not vary along its loop;
//! - the stage reads no uniforms and no earlier stage (so the passes can run before any stage).

use std::collections::HashMap;

use crate::interp::empty_result;
use crate::kernel::{
    BinaryOp, ByteOrder, Input, InputId, InstKind, Kernel, LoopId, ReduceOp, SumOrder, ValueId,
    View, ViewId,
};
use crate::opt::{operands, optimize, OptOptions};
use crate::plan::{Plan, Stage, StageInput};
use crate::scalar::Scalar;

/// One streamed reduction: `StreamPlan::accumulate.stages[k]` computes the next carry of
/// accumulator `k` from one volume and its current carry.
#[derive(Clone, Debug, PartialEq)]
pub struct Accumulator {
    /// The pass over the volumes (from 0) it runs in; it reads only carries of earlier passes.
    pub pass: usize,
    /// The carry's initial value (the reduction's result over no element).
    pub init: Scalar,
    /// The volumes it reads, in order: `first`, `first + step`, ..., `len` of them.
    pub first: u64,
    pub step: u64,
    pub len: u64,
    /// Elements of the carry (the domain of its stage's kernel).
    pub n_voxels: u64,
}

impl Accumulator {
    /// True when volume `t` is one this accumulator reads.
    pub fn reads(&self, t: u64) -> bool {
        t >= self.first
            && (t - self.first).is_multiple_of(self.step)
            && (t - self.first) / self.step < self.len
    }
}

/// A plan rewritten to read one image volume by volume (see the module documentation).
///
/// Image numbering: images `0..n_images` are the plan's own; image `n_images + k` is the carry
/// of accumulator `k`. An accumulator kernel reads the current volume as image `image` (with
/// element 0 at the volume's first element); `rest` never reads image `image`.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamPlan {
    /// The streamed image.
    pub image: usize,
    /// Images of the original plan.
    pub n_images: usize,
    /// Elements per volume and volumes of the streamed image.
    pub volume_elems: u64,
    pub n_volumes: u64,
    /// Passes over the volumes (at least one).
    pub n_passes: usize,
    pub accumulators: Vec<Accumulator>,
    /// One stage per accumulator, in accumulator order (no checks).
    pub accumulate: Plan,
    /// The original plan with every streamed reduction read from its finished carry.
    pub rest: Plan,
}

/// Rewrites `plan` so that image `image` (of `n_images`, numpy shape `shape`, Fortran order) is
/// read volume by volume along its last axis. `None` when the plan does not read the image or
/// reads it in a way that cannot be streamed (see the module documentation).
pub fn stream_last_axis(
    plan: &Plan,
    image: usize,
    n_images: usize,
    shape: &[usize],
) -> Option<StreamPlan> {
    let (&n_volumes, volume) = shape.split_last()?;
    let volume_elems: u64 = volume.iter().map(|&d| d as u64).product();
    if volume_elems == 0 || n_volumes < 2 || image >= n_images {
        return None;
    }
    let mut out = Streamed {
        image,
        n_images,
        volume_elems,
        n_volumes: n_volumes as u64,
        accumulators: Vec::new(),
        stages: Vec::new(),
    };
    let mut rest = plan.clone();
    let mut any = false;
    for (s, stage) in plan.stages.iter().enumerate() {
        let streamed: Vec<InputId> = (0..stage.inputs.len())
            .filter(|&i| stage.inputs[i] == StageInput::Image(image))
            .map(|i| InputId(i as u32))
            .collect();
        if streamed.is_empty() {
            continue;
        }
        let reads_stages = stage
            .inputs
            .iter()
            .any(|src| matches!(src, StageInput::Stage(_)));
        if !stage.uniforms.is_empty() || reads_stages {
            return None;
        }
        rest.stages[s] = out.stage(stage, &streamed)?;
        any = true;
    }
    if !any {
        return None;
    }
    let n_passes = out.accumulators.iter().map(|a| a.pass + 1).max()?;
    Some(StreamPlan {
        image,
        n_images,
        volume_elems,
        n_volumes: n_volumes as u64,
        n_passes,
        accumulators: out.accumulators,
        accumulate: Plan {
            stages: out.stages,
            checks: Vec::new(),
            tables: plan.tables.clone(),
        },
        rest,
    })
}

/// The accumulators found so far.
struct Streamed {
    image: usize,
    n_images: usize,
    volume_elems: u64,
    n_volumes: u64,
    accumulators: Vec<Accumulator>,
    stages: Vec<Stage>,
}

/// A streamed reduction of one stage kernel, before its accumulator exists.
struct Found {
    value: ValueId,
    /// The new element offset within a volume of each of its loads of the image.
    volume_views: Vec<(ValueId, i64)>,
    first: u64,
    step: u64,
    len: u64,
    /// Streamed reductions of the same kernel its body reads (through values outside it).
    deps: Vec<ValueId>,
    combine: BinaryOp,
}

impl Streamed {
    /// Finds the stage's streamed reductions, adds their accumulators and returns the stage
    /// rewritten to read their carries.
    fn stage(&mut self, stage: &Stage, streamed: &[InputId]) -> Option<Stage> {
        let k = &stage.kernel;
        let reads_image = |view: ViewId| streamed.contains(&k.views[view.index()].input);
        // The top-level reduction each instruction lies in (at any depth).
        let mut owner: Vec<Option<ValueId>> = vec![None; k.insts.len()];
        for &v in &k.body {
            if let InstKind::Reduce(r) = &k.inst(v).kind {
                mark_region(k, &r.body, v, &mut owner);
            }
        }
        // Every load of the image must lie in a top-level reduction.
        let mut reductions: Vec<ValueId> = Vec::new();
        for (i, inst) in k.insts.iter().enumerate() {
            if let InstKind::Load(view) = inst.kind {
                if reads_image(view) {
                    let r = owner[i]?;
                    if !reductions.contains(&r) {
                        reductions.push(r);
                    }
                }
            }
        }
        let position = |v: ValueId| k.body.iter().position(|&b| b == v);
        reductions.sort_by_key(|&r| position(r));
        let found: Vec<Found> = reductions
            .iter()
            .map(|&r| self.find(k, r, &reads_image, &reductions))
            .collect::<Option<_>>()?;

        // Accumulators in body order, so that a reduction's dependencies come first.
        let mut index_of: HashMap<ValueId, usize> = HashMap::new();
        for f in &found {
            let pass = f
                .deps
                .iter()
                .map(|d| self.accumulators[index_of[d]].pass + 1)
                .max()
                .unwrap_or(0);
            let dtype = k.dtype(f.value);
            let init = match f.combine {
                BinaryOp::Mul => Scalar::one(dtype),
                _ => empty_result(ReduceOp::Sum(SumOrder::Sequential), dtype),
            };
            let kernel = self.accumulator_kernel(k, f, &index_of)?;
            let mut inputs = stage.inputs.clone();
            // The kernel's added inputs, in the order `accumulator_kernel` declared them.
            inputs.push(StageInput::Image(self.image));
            inputs.push(StageInput::Image(self.n_images + self.accumulators.len()));
            inputs.extend(
                f.deps
                    .iter()
                    .map(|d| StageInput::Image(self.n_images + index_of[d])),
            );
            index_of.insert(f.value, self.accumulators.len());
            self.accumulators.push(Accumulator {
                pass,
                init,
                first: f.first,
                step: f.step,
                len: f.len,
                n_voxels: k.n_voxels(),
            });
            self.stages.push(Stage {
                shape: stage.shape.clone(),
                kernel,
                inputs,
                uniforms: Vec::new(),
            });
        }

        // The stage itself: each streamed reduction becomes a load of its carry.
        let mut rest = k.clone();
        let mut inputs = stage.inputs.clone();
        for f in &found {
            let view = carry_view(&mut rest, k.dtype(f.value));
            rest.insts[f.value.index()].kind = InstKind::Load(view);
            inputs.push(StageInput::Image(self.n_images + index_of[&f.value]));
        }
        let rest = finish(rest)?;
        // No view of the image may be left.
        if rest.views.iter().any(|v| streamed.contains(&v.input)) {
            return None;
        }
        Some(Stage {
            shape: stage.shape.clone(),
            kernel: rest,
            inputs,
            uniforms: Vec::new(),
        })
    }

    /// Checks that top-level reduction `r` can be streamed and finds the volumes it reads.
    fn find(
        &self,
        k: &Kernel,
        r: ValueId,
        reads_image: &dyn Fn(ViewId) -> bool,
        reductions: &[ValueId],
    ) -> Option<Found> {
        let InstKind::Reduce(red) = &k.inst(r).kind else {
            return None;
        };
        let dtype = k.dtype(r);
        let combine = match red.op {
            ReduceOp::Sum(SumOrder::Sequential) => BinaryOp::Add,
            ReduceOp::Sum(_) if !dtype.is_float() => BinaryOp::Add,
            ReduceOp::Prod => BinaryOp::Mul,
            _ => return None,
        };
        if red.mask.is_some() || red.loops.len() != 1 {
            return None;
        }
        let l = red.loops[0];
        let len = k.loops[l.index()].len;
        let mut walk: Option<(u64, u64)> = None;
        let mut volume_views = Vec::new();
        for &b in &red.body {
            match &k.inst(b).kind {
                InstKind::Reduce(_) => return None,
                InstKind::Load(view) if reads_image(*view) => {
                    let (first, step, offset) = self.volume_walk(k, *view, l, len)?;
                    if walk.is_some_and(|w| w != (first, step)) {
                        return None;
                    }
                    walk = Some((first, step));
                    volume_views.push((b, offset));
                }
                InstKind::Load(view)
                    if k.views[view.index()]
                        .loop_strides
                        .iter()
                        .any(|&(_, s)| s != 0) =>
                {
                    return None;
                }
                _ => {}
            }
        }
        let (first, step) = walk?;
        Some(Found {
            value: r,
            volume_views,
            first,
            step,
            len,
            deps: outer_reductions(k, &red.body, reductions),
            combine,
        })
    }

    /// For a view of the image inside a reduction over loop `l`: the first volume, the volume
    /// step and the element offset within a volume, when every iteration reads within one
    /// volume, stepping forwards through whole volumes.
    fn volume_walk(
        &self,
        k: &Kernel,
        view: ViewId,
        l: LoopId,
        len: u64,
    ) -> Option<(u64, u64, i64)> {
        let v = &k.views[view.index()];
        let vol = i64::try_from(self.volume_elems).ok()?;
        let mut stride = 0i64;
        for &(lp, s) in &v.loop_strides {
            if lp != l && s != 0 {
                return None;
            }
            if lp == l {
                stride = stride.checked_add(s)?;
            }
        }
        if stride <= 0 || stride % vol != 0 {
            return None;
        }
        let first = v.offset.div_euclid(vol);
        let offset = v.offset.rem_euclid(vol);
        let (mut lo, mut hi) = (offset, offset);
        for (axis, &s) in v.domain_strides.iter().enumerate() {
            let reach = (k.domain[axis].saturating_sub(1) as i64).checked_mul(s)?;
            if reach < 0 {
                lo = lo.checked_add(reach)?;
            } else {
                hi = hi.checked_add(reach)?;
            }
        }
        let step = (stride / vol) as u64;
        let first = u64::try_from(first).ok()?;
        let last = first.checked_add(len.saturating_sub(1).checked_mul(step)?)?;
        if lo < 0 || hi >= vol || (len > 0 && last >= self.n_volumes) {
            return None;
        }
        Some((first, step, offset))
    }

    /// The kernel computing `carry combine elem(volume)` for found reduction `f` of `k`:
    /// `k`'s top-level values before the reduction, then its body, with loads of the image
    /// reading the volume and earlier streamed reductions reading their carries. Inputs: `k`'s,
    /// then the volume, its own carry, and the carries of `f.deps` in order.
    fn accumulator_kernel(
        &self,
        k: &Kernel,
        f: &Found,
        index_of: &HashMap<ValueId, usize>,
    ) -> Option<Kernel> {
        let InstKind::Reduce(red) = &k.inst(f.value).kind else {
            return None;
        };
        let mut a = k.clone();
        let dtype = k.dtype(f.value);
        let image_input = red.body.iter().find_map(|&b| match k.inst(b).kind {
            InstKind::Load(view) if f.volume_views.iter().any(|&(v, _)| v == b) => {
                Some(k.views[view.index()].input)
            }
            _ => None,
        })?;
        let volume = InputId(a.inputs.len() as u32);
        a.inputs.push(k.inputs[image_input.index()].clone());
        for &(load, offset) in &f.volume_views {
            let InstKind::Load(view) = k.inst(load).kind else {
                return None;
            };
            let domain_strides = k.views[view.index()].domain_strides.clone();
            a.views.push(View {
                input: volume,
                offset,
                domain_strides,
                loop_strides: Vec::new(),
            });
            a.insts[load.index()].kind = InstKind::Load(ViewId(a.views.len() as u32 - 1));
        }
        let carry = carry_view(&mut a, dtype);
        for d in &f.deps {
            if !index_of.contains_key(d) {
                return None;
            }
            let view = carry_view(&mut a, k.dtype(*d));
            a.insts[d.index()].kind = InstKind::Load(view);
        }
        let position = k.body.iter().position(|&b| b == f.value)?;
        let mut body: Vec<ValueId> = k.body[..position].to_vec();
        body.extend(&red.body);
        let carry_value = push(&mut a, dtype, InstKind::Load(carry), &mut body);
        let next = push(
            &mut a,
            dtype,
            InstKind::Binary(f.combine, carry_value, red.elem),
            &mut body,
        );
        a.body = body;
        a.output = next;
        finish(a)
    }
}

/// Records `owner` as the top-level reduction of every instruction in `region` (nested
/// reductions' bodies included).
fn mark_region(k: &Kernel, region: &[ValueId], owner: ValueId, out: &mut [Option<ValueId>]) {
    for &v in region {
        out[v.index()] = Some(owner);
        if let InstKind::Reduce(r) = &k.inst(v).kind {
            mark_region(k, &r.body, owner, out);
        }
    }
}

/// The streamed reductions (`reductions`) that values used by `body` but defined outside it
/// depend on, without looking inside those reductions.
fn outer_reductions(k: &Kernel, body: &[ValueId], reductions: &[ValueId]) -> Vec<ValueId> {
    let mut seen = vec![false; k.insts.len()];
    for &b in body {
        seen[b.index()] = true;
    }
    let mut stack: Vec<ValueId> = body
        .iter()
        .flat_map(|&b| operands(&k.inst(b).kind))
        .collect();
    let mut deps = Vec::new();
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut seen[v.index()], true) {
            continue;
        }
        if reductions.contains(&v) {
            deps.push(v);
            continue;
        }
        if let InstKind::Reduce(r) = &k.inst(v).kind {
            stack.extend(r.body.iter().copied());
        }
        stack.extend(operands(&k.inst(v).kind));
    }
    deps.sort_by_key(|&d| k.body.iter().position(|&b| b == d));
    deps
}

/// Declares a carry input of `dtype` (native order) and a dense view of it over the domain.
fn carry_view(k: &mut Kernel, dtype: voxcalc_types::DType) -> ViewId {
    k.inputs.push(Input {
        dtype,
        byte_order: ByteOrder::Native,
    });
    let mut step = 1i64;
    let domain_strides = k
        .domain
        .iter()
        .map(|&d| {
            let s = step;
            step = step.saturating_mul(d.max(1) as i64);
            s
        })
        .collect();
    k.views.push(View {
        input: InputId(k.inputs.len() as u32 - 1),
        offset: 0,
        domain_strides,
        loop_strides: Vec::new(),
    });
    ViewId(k.views.len() as u32 - 1)
}

/// Appends an instruction to the arena and to `region`.
fn push(
    k: &mut Kernel,
    dtype: voxcalc_types::DType,
    kind: InstKind,
    region: &mut Vec<ValueId>,
) -> ValueId {
    k.insts.push(crate::kernel::Inst { dtype, kind });
    let v = ValueId(k.insts.len() as u32 - 1);
    region.push(v);
    v
}

/// Drops what the rewrite left unused (the replaced reductions' bodies, their loops and views)
/// and validates the result.
fn finish(k: Kernel) -> Option<Kernel> {
    let k = optimize(&k, OptOptions::default());
    k.validate().ok()?;
    Some(k)
}
