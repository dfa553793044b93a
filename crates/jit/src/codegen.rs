//! Translation of one kernel to a Cranelift function
//! `kernel(args: *const RawArgs, start: u64, end: u64)`.
//!
//! The domain is walked row by row: a row is a run of consecutive voxels along domain axis 0,
//! whose multi-index is computed once (division by the axis lengths); a one-axis domain is a
//! single row. Reductions are nested loops (the first loop of a reduction innermost). Loads use
//! `notrap` flags only (never `aligned`: mapped data may be misaligned); byte-swapped inputs are
//! loaded as integers and swapped.
//!
//! Kernels the vector path takes (`crate::vector`: element-wise kernels and sequential float
//! sums) run whole 128-bit vectors of voxels when their rows hold at least one: the row loop
//! carries only the voxel index, each vector starting at `min(j, run_end - lanes)`, so a run
//! ends in a vector stepped back to overlap the one before (the overlapped voxels are computed
//! again, to the same bytes; `CompiledKernel::run` interprets runs of a row shorter than a
//! vector); rows shorter than a vector run scalar voxels. Other kernels with reductions compute
//! several voxels ("lanes") per iteration, each with its own accumulators, so their sequential
//! (numpy-ordered) accumulations overlap in the pipeline; they finish a row stepping back the
//! same way, or with repeated voxels when the row is shorter than the lanes. None reads past a
//! row.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{
    types, AbiParam, Block, FuncRef, InstBuilder, MemFlagsData, Signature, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::{Linkage, Module};
use voxcalc_ir::{
    BinaryOp, ByteOrder, InstKind, Kernel, LoopId, Reduce, ReduceOp, Scalar, SumOrder, UnaryOp,
    ValueId,
};
use voxcalc_types::DType;

use crate::helpers::{Abi, HelperSig};
use crate::JitError;

/// Byte offsets of the fields of `RawArgs`.
const ARGS_INPUTS: i32 = 0;
const ARGS_OUTPUT: i32 = 8;
const ARGS_UNIFORMS: i32 = 16;
const ARGS_SCRATCH: i32 = 24;

/// The Cranelift type holding values of `dtype` (bool is an i8 holding 0 or 1).
pub(crate) fn clif_type(dtype: DType) -> Type {
    match dtype {
        DType::Bool | DType::U8 | DType::I8 => types::I8,
        DType::U16 | DType::I16 => types::I16,
        DType::U32 | DType::I32 => types::I32,
        DType::U64 | DType::I64 => types::I64,
        DType::F16 | DType::F32 => types::F32,
        DType::F64 => types::F64,
    }
}

fn abi_type(a: Abi) -> Type {
    match a {
        Abi::F32 => types::F32,
        Abi::F64 => types::F64,
        Abi::I32 => types::I32,
        Abi::I64 => types::I64,
    }
}

/// `x * k` for a constant `k` (see `Translator::mul_const`).
pub(crate) fn mul_const(b: &mut FunctionBuilder<'_>, x: Value, k: i64) -> Value {
    if k == 1 {
        x
    } else if k > 0 && (k as u64).is_power_of_two() {
        b.ins().ishl_imm_s(x, k.trailing_zeros() as i64)
    } else {
        b.ins().imul_imm_s(x, k)
    }
}

fn notrap() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Whether a kernel compiled with `lanes` finishes its rows by stepping back (see
/// `Translator::translate`): vector kernels whose rows hold at least one whole vector, and
/// kernels with several lanes whose rows hold at least that many voxels. Returns the voxels
/// computed together. Such a kernel must never be called on a run of a row (the voxels of one
/// row inside `start..end`) shorter than that: `CompiledKernel::run` hands those to the
/// interpreter.
pub(crate) fn overlapping_tail(kernel: &Kernel, lanes: usize) -> Option<i64> {
    let width = match crate::vector::plan(kernel).filter(|_| lanes == 1) {
        Some(vp) => vp.lanes,
        None if lanes > 1 => lanes as i64,
        None => return None,
    };
    let row = *kernel.domain.first()?;
    (row >= width as u64).then_some(width)
}

/// State of one translation.
pub(crate) struct Translator<'a, 'b, M: Module> {
    pub kernel: &'a Kernel,
    pub builder: FunctionBuilder<'b>,
    pub module: &'a mut M,
    pub helper_sigs: &'a HashMap<String, HelperSig>,
    funcs: HashMap<String, FuncRef>,
    /// Voxels computed side by side per iteration (independent dependency chains, so the
    /// sequential accumulations of several voxels overlap in the pipeline).
    lanes: usize,
    /// The lane whose values `value` and `inst` currently read and write.
    lane: usize,
    /// The value of each kernel value, per lane.
    values: Vec<Vec<Option<Value>>>,
    /// Each lane's element address of each view at the current voxel.
    lane_ptrs: Vec<Vec<Value>>,
    /// Current byte address of each view's element at the current voxel (loop offsets excluded).
    view_ptrs: Vec<Option<Variable>>,
    loop_vars: Vec<Option<Variable>>,
    input_bases: Vec<Value>,
    uniforms_ptr: Value,
    scratch_ptr: Value,
    scratch_offsets: HashMap<ValueId, usize>,
}

impl<'a, 'b, M: Module> Translator<'a, 'b, M> {
    pub fn new(
        kernel: &'a Kernel,
        builder: FunctionBuilder<'b>,
        module: &'a mut M,
        helper_sigs: &'a HashMap<String, HelperSig>,
        lanes: usize,
    ) -> Self {
        let placeholder = Value::from_u32(0);
        Translator {
            kernel,
            builder,
            module,
            helper_sigs,
            funcs: HashMap::new(),
            lanes,
            lane: 0,
            values: vec![vec![None; kernel.insts.len()]; lanes],
            lane_ptrs: Vec::new(),
            view_ptrs: vec![None; kernel.views.len()],
            loop_vars: vec![None; kernel.loops.len()],
            input_bases: Vec::new(),
            uniforms_ptr: placeholder,
            scratch_ptr: placeholder,
            scratch_offsets: kernel.scratch_offsets().0.into_iter().collect(),
        }
    }

    /// Emits the whole function and finalises the builder.
    pub fn translate(mut self) -> Result<(), JitError> {
        let b = &mut self.builder;
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (args, start, end) = (params[0], params[1], params[2]);
        let inputs_ptr = b.ins().load(types::I64, notrap(), args, ARGS_INPUTS);
        let out_ptr = b.ins().load(types::I64, notrap(), args, ARGS_OUTPUT);
        // Fields a kernel does not use are not loaded (each instruction costs compile time).
        self.uniforms_ptr = if self.kernel.uniforms.is_empty() {
            b.ins().iconst(types::I64, 0)
        } else {
            b.ins().load(types::I64, notrap(), args, ARGS_UNIFORMS)
        };
        self.scratch_ptr = if self.kernel.scratch_bytes() == 0 {
            b.ins().iconst(types::I64, 0)
        } else {
            b.ins().load(types::I64, notrap(), args, ARGS_SCRATCH)
        };
        for i in 0..self.kernel.inputs.len() {
            let base = b
                .ins()
                .load(types::I64, notrap(), inputs_ptr, (i * 8) as i32);
            self.input_bases.push(base);
        }

        // A 0-d domain is one voxel.
        let domain: Vec<u64> = if self.kernel.domain.is_empty() {
            vec![1]
        } else {
            self.kernel.domain.clone()
        };
        let out_size = self.kernel.output_dtype().size() as i64;

        let var_i = self.builder.declare_var(types::I64);
        self.builder.def_var(var_i, start);
        let exit = self.builder.create_block();
        // A one-axis domain is one row: `start..end` is a single run, with no loop over rows.
        let single_row = domain.len() == 1;
        let outer_head = if single_row {
            None
        } else {
            let outer_head = self.builder.create_block();
            let outer_body = self.builder.create_block();
            self.builder.ins().jump(outer_head, &[]);

            // outer_head: while i < end
            self.builder.switch_to_block(outer_head);
            let i = self.builder.use_var(var_i);
            let more = self.builder.ins().icmp(IntCC::UnsignedLessThan, i, end);
            self.builder.ins().brif(more, outer_body, &[], exit, &[]);
            self.builder.switch_to_block(outer_body);
            Some(outer_head)
        };

        // outer_body: decompose i into a multi-index, set up the row.
        let i = self.builder.use_var(var_i);
        let mut idx = Vec::with_capacity(domain.len());
        let mut rest = i;
        for (k, &len) in domain.iter().enumerate() {
            if k + 1 == domain.len() {
                idx.push(rest);
            } else {
                // One division per axis (the remainder from the quotient).
                let len_v = self.builder.ins().iconst(types::I64, len as i64);
                let q = self.builder.ins().udiv(rest, len_v);
                let whole = self.mul_const(q, len as i64);
                idx.push(self.builder.ins().isub(rest, whole));
                rest = q;
            }
        }
        for view_idx in 0..self.kernel.views.len() {
            let view = &self.kernel.views[view_idx];
            let size = self.kernel.inputs[view.input.index()].dtype.size() as i64;
            let mut off: Option<Value> = None;
            for (k, &s) in view.domain_strides.iter().enumerate() {
                if s != 0 {
                    let t = self.mul_const(idx[k], s * size);
                    off = Some(match off {
                        Some(o) => self.builder.ins().iadd(o, t),
                        None => t,
                    });
                }
            }
            let mut ptr = self.input_bases[view.input.index()];
            if let Some(bytes) = off {
                ptr = self.builder.ins().iadd(ptr, bytes);
            }
            if view.offset != 0 {
                ptr = self.builder.ins().iadd_imm_s(ptr, view.offset * size);
            }
            let var = self.builder.declare_var(types::I64);
            self.builder.def_var(var, ptr);
            self.view_ptrs[view_idx] = Some(var);
        }
        let (run_end, out_p0) = if single_row {
            // `run` keeps `end` within the domain.
            (end, out_ptr)
        } else {
            let len0 = self.builder.ins().iconst(types::I64, domain[0] as i64);
            let row_left = self.builder.ins().isub(len0, idx[0]);
            let row_end = self.builder.ins().iadd(i, row_left);
            let run_end = self.builder.ins().umin(row_end, end);
            let rel = self.builder.ins().isub(i, start);
            let out_off = self.mul_const(rel, out_size);
            (run_end, self.builder.ins().iadd(out_ptr, out_off))
        };
        let var_out = self.builder.declare_var(types::I64);
        self.builder.def_var(var_out, out_p0);
        let var_j = self.builder.declare_var(types::I64);
        self.builder.def_var(var_j, i);
        let inner_head = self.builder.create_block();
        let inner_body = self.builder.create_block();
        let row_done = self.builder.create_block();
        // Rows of at least one whole vector end with a last vector that overlaps the one
        // before (the overlapped voxels are computed again, to the same bytes): no scalar code.
        let overlap = overlapping_tail(self.kernel, self.lanes).is_some() && self.lanes == 1;
        // Lanes step back the same way: lane `l` is voxel `j' + l`, `j' = min(j, run_end -
        // lanes)`, so lane addresses are constant offsets (no clamping per lane).
        let lanes_overlap = overlapping_tail(self.kernel, self.lanes).is_some() && self.lanes > 1;
        match crate::vector::plan(self.kernel).filter(|_| overlap) {
            Some(vp) => {
                // Whole vectors, the last one stepped back to end at the run's end: vector `k`
                // starts at voxel `j' = min(j, run_end - lanes)`, so the run (which `run` keeps
                // at least a vector long) ends in a vector overlapping the one before (the
                // overlapped voxels are computed again, to the same bytes). Every address is
                // the row's base plus `j' - i` voxels, so only `j` is carried round the loop.
                let lim = self.builder.ins().iadd_imm_s(run_end, -vp.lanes);
                let vec_body = self.builder.create_block();
                self.builder.ins().jump(vec_body, &[]);
                self.builder.switch_to_block(vec_body);
                let j = self.builder.use_var(var_j);
                let jj = self.builder.ins().umin(j, lim);
                let done = self.builder.ins().isub(jj, i);
                let ptrs: Vec<Value> = (0..self.kernel.views.len())
                    .map(|v| {
                        let (p, stride) = self.row_ptr(v);
                        if stride == 0 {
                            p
                        } else {
                            let off = self.mul_const(done, stride);
                            self.builder.ins().iadd(p, off)
                        }
                    })
                    .collect();
                let out_off = self.mul_const(done, out_size);
                let out_p = self.builder.ins().iadd(out_p0, out_off);
                crate::vector::body(
                    &mut self.builder,
                    self.kernel,
                    vp,
                    &ptrs,
                    self.uniforms_ptr,
                    out_p,
                )?;
                let j1 = self.builder.ins().iadd_imm_s(jj, vp.lanes);
                self.builder.def_var(var_j, j1);
                let more = self
                    .builder
                    .ins()
                    .icmp(IntCC::UnsignedLessThan, j1, run_end);
                self.builder.ins().brif(more, vec_body, &[], row_done, &[]);
            }
            None => {
                self.builder.ins().jump(inner_head, &[]);
            }
        }

        if !overlap {
            self.builder.switch_to_block(inner_head);
            let j = self.builder.use_var(var_j);
            let more = self.builder.ins().icmp(IntCC::UnsignedLessThan, j, run_end);
            self.builder
                .ins()
                .brif(more, inner_body, &[], row_done, &[]);

            self.builder.switch_to_block(inner_body);
            // Lane `l` computes voxel j + min(l, rem - 1): with fewer voxels left than lanes, the
            // extra lanes repeat the last voxel and store the same bytes to the same place.
            let j = self.builder.use_var(var_j);
            let rem = self.builder.ins().isub(run_end, j);
            if lanes_overlap {
                let lim = self.builder.ins().iadd_imm_s(run_end, -(self.lanes as i64));
                let jj = self.builder.ins().umin(j, lim);
                let back = self.builder.ins().isub(j, jj);
                let mut base = Vec::with_capacity(self.kernel.views.len());
                let mut bytes = Vec::with_capacity(self.kernel.views.len());
                for view_idx in 0..self.kernel.views.len() {
                    let (p, stride) = self.row_ptr(view_idx);
                    let p = if stride == 0 {
                        p
                    } else {
                        let off = self.mul_const(back, stride);
                        self.builder.ins().isub(p, off)
                    };
                    base.push(p);
                    bytes.push(stride);
                }
                self.lane_ptrs = (0..self.lanes)
                    .map(|lane| {
                        base.iter()
                            .zip(&bytes)
                            .map(|(&p, &b)| {
                                if lane == 0 || b == 0 {
                                    p
                                } else {
                                    self.builder.ins().iadd_imm_s(p, lane as i64 * b)
                                }
                            })
                            .collect()
                    })
                    .collect();
                let body = self.kernel.body.clone();
                self.region(&body)?;
                let out_p = self.builder.use_var(var_out);
                let off = self.mul_const(back, out_size);
                let out_p = self.builder.ins().isub(out_p, off);
                for lane in 0..self.lanes {
                    self.lane = lane;
                    let out_v = self.value(self.kernel.output);
                    self.builder.ins().store(
                        notrap(),
                        out_v,
                        out_p,
                        (lane as i64 * out_size) as i32,
                    );
                }
                let step = self.lanes as i64;
                let next_out = self.builder.ins().iadd_imm_s(out_p, step * out_size);
                self.builder.def_var(var_out, next_out);
                for (view_idx, (&p, &b)) in base.iter().zip(&bytes).enumerate() {
                    if b != 0 {
                        let var = self.view_ptrs[view_idx].expect("set up for the row");
                        let p = self.builder.ins().iadd_imm_s(p, step * b);
                        self.builder.def_var(var, p);
                    }
                }
                let j1 = self.builder.ins().iadd_imm_s(jj, step);
                self.builder.def_var(var_j, j1);
                self.builder.ins().jump(inner_head, &[]);
                self.builder.switch_to_block(row_done);
                self.next_row(outer_head, var_i, run_end, exit);
                return self.finish_function(exit);
            }
            let last = self.builder.ins().iadd_imm_s(rem, -1);
            let mut lane_idx = Vec::with_capacity(self.lanes);
            for lane in 0..self.lanes {
                let l = self.builder.ins().iconst(types::I64, lane as i64);
                lane_idx.push(self.builder.ins().umin(l, last));
            }
            self.lane_ptrs = vec![Vec::with_capacity(self.kernel.views.len()); self.lanes];
            for view_idx in 0..self.kernel.views.len() {
                let (p, stride) = self.row_ptr(view_idx);
                for (lane, &k) in lane_idx.iter().enumerate() {
                    let lp = if lane == 0 || stride == 0 {
                        p
                    } else {
                        let off = self.mul_const(k, stride);
                        self.builder.ins().iadd(p, off)
                    };
                    self.lane_ptrs[lane].push(lp);
                }
            }
            let body = self.kernel.body.clone();
            self.region(&body)?;
            let out_p = self.builder.use_var(var_out);
            for (lane, &k) in lane_idx.iter().enumerate() {
                self.lane = lane;
                let out_v = self.value(self.kernel.output);
                let p = if lane == 0 {
                    out_p
                } else {
                    let off = self.mul_const(k, out_size);
                    self.builder.ins().iadd(out_p, off)
                };
                self.builder.ins().store(notrap(), out_v, p, 0);
            }
            let lanes = self.builder.ins().iconst(types::I64, self.lanes as i64);
            let step = self.builder.ins().umin(lanes, rem);
            let out_step = self.mul_const(step, out_size);
            let next_out = self.builder.ins().iadd(out_p, out_step);
            self.builder.def_var(var_out, next_out);
            self.move_view_ptrs(step);
            let j1 = self.builder.ins().iadd(j, step);
            self.builder.def_var(var_j, j1);
            self.builder.ins().jump(inner_head, &[]);
        }

        self.builder.switch_to_block(row_done);
        self.next_row(outer_head, var_i, run_end, exit);

        self.finish_function(exit)
    }

    /// `x * k` for a constant `k`: `x` itself for 1 and a shift for other powers of two (strides
    /// and sizes mostly are), so that no instruction is spent where none is needed.
    fn mul_const(&mut self, x: Value, k: i64) -> Value {
        mul_const(&mut self.builder, x, k)
    }

    /// Bytes view `view_idx` advances per voxel along the row (0 when it does not move).
    fn row_stride_bytes(&self, view_idx: usize) -> i64 {
        let view = &self.kernel.views[view_idx];
        let s0 = view.domain_strides.first().copied().unwrap_or(0);
        s0 * self.kernel.inputs[view.input.index()].dtype.size() as i64
    }

    /// View `view_idx`'s current pointer in the row, and [`Self::row_stride_bytes`].
    fn row_ptr(&mut self, view_idx: usize) -> (Value, i64) {
        let var = self.view_ptrs[view_idx].expect("set up for the row");
        (self.builder.use_var(var), self.row_stride_bytes(view_idx))
    }

    /// Moves the pointer of every view that steps along the row forward by `voxels` voxels.
    fn move_view_ptrs(&mut self, voxels: Value) {
        for view_idx in 0..self.kernel.views.len() {
            let stride = self.row_stride_bytes(view_idx);
            if stride != 0 {
                let var = self.view_ptrs[view_idx].expect("set up for the row");
                let p = self.builder.use_var(var);
                let bytes = self.mul_const(voxels, stride);
                let p = self.builder.ins().iadd(p, bytes);
                self.builder.def_var(var, p);
            }
        }
    }

    /// Ends a row: on to the next (`i = run_end`) or, for a one-row domain, out.
    fn next_row(
        &mut self,
        outer_head: Option<Block>,
        var_i: Variable,
        run_end: Value,
        exit: Block,
    ) {
        match outer_head {
            Some(head) => {
                self.builder.def_var(var_i, run_end);
                self.builder.ins().jump(head, &[]);
            }
            None => {
                self.builder.ins().jump(exit, &[]);
            }
        }
    }

    /// Emits the exit block and finishes the function.
    fn finish_function(mut self, exit: Block) -> Result<(), JitError> {
        self.builder.switch_to_block(exit);
        self.builder.ins().return_(&[]);
        self.builder.seal_all_blocks();
        let config = self.module.isa().frontend_config();
        self.builder.finalize(config);
        Ok(())
    }

    fn value(&self, v: ValueId) -> Value {
        self.values[self.lane][v.index()]
            .expect("validated kernels define values before their uses")
    }

    /// Emits a region for every lane, instruction by instruction (a reduction once, with one
    /// accumulator per lane).
    fn region(&mut self, region: &[ValueId]) -> Result<(), JitError> {
        for &v in region {
            if let InstKind::Reduce(r) = &self.kernel.inst(v).kind {
                let dtype = self.kernel.dtype(v);
                let results = self.reduce(v, r, dtype)?;
                for (lane, value) in results.into_iter().enumerate() {
                    self.values[lane][v.index()] = Some(value);
                }
                continue;
            }
            for lane in 0..self.lanes {
                self.lane = lane;
                let value = self.inst(v)?;
                self.values[lane][v.index()] = Some(value);
            }
        }
        Ok(())
    }

    fn helper(&mut self, name: &str) -> Result<FuncRef, JitError> {
        if let Some(f) = self.funcs.get(name) {
            return Ok(*f);
        }
        let h = self
            .helper_sigs
            .get(name)
            .ok_or_else(|| JitError(format!("no helper named {name}")))?;
        let mut sig = Signature::new(self.module.isa().default_call_conv());
        for p in &h.params {
            sig.params.push(AbiParam::new(abi_type(*p)));
        }
        sig.returns.push(AbiParam::new(abi_type(h.ret)));
        let id = self
            .module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| JitError(format!("declaring {name}: {e}")))?;
        let f = self.module.declare_func_in_func(id, self.builder.func);
        self.funcs.insert(name.to_string(), f);
        Ok(f)
    }

    fn call(&mut self, name: &str, args: &[Value]) -> Result<Value, JitError> {
        let f = self.helper(name)?;
        let call = self.builder.ins().call(f, args);
        Ok(self.builder.inst_results(call)[0])
    }

    fn constant(&mut self, s: Scalar) -> Value {
        let ty = clif_type(s.dtype());
        match s {
            Scalar::F32(x) => self.builder.ins().f32const(Ieee32::with_bits(x.to_bits())),
            Scalar::F64(x) => self.builder.ins().f64const(Ieee64::with_bits(x.to_bits())),
            other => {
                let bits = other.to_bits();
                let masked = match ty.bits() {
                    64 => bits,
                    n => bits & ((1u64 << n) - 1),
                };
                self.builder.ins().iconst(ty, masked as i64)
            }
        }
    }

    fn inst(&mut self, v: ValueId) -> Result<Value, JitError> {
        let inst = self.kernel.inst(v).clone();
        let ty = inst.dtype;
        Ok(match &inst.kind {
            InstKind::Const(s) => self.constant(*s),
            InstKind::Uniform(n) => {
                let up = self.uniforms_ptr;
                let ld = self
                    .builder
                    .ins()
                    .load(clif_type(ty), notrap(), up, (*n as i32) * 8);
                if ty == DType::Bool {
                    self.builder.ins().icmp_imm_s(IntCC::NotEqual, ld, 0)
                } else {
                    ld
                }
            }
            InstKind::Load(view_id) => self.load(view_id.index())?,
            InstKind::Cast(a) => {
                let from = self.kernel.dtype(*a);
                let x = self.value(*a);
                self.cast(x, from, ty)
            }
            InstKind::Unary(op, a) => {
                let at = self.kernel.dtype(*a);
                let x = self.value(*a);
                self.unary(*op, x, at)?
            }
            InstKind::Binary(op, a, b) => {
                let at = self.kernel.dtype(*a);
                let (x, y) = (self.value(*a), self.value(*b));
                self.binary(*op, x, y, at)?
            }
            InstKind::Select(c, a, b) => {
                let (c, x, y) = (self.value(*c), self.value(*a), self.value(*b));
                self.builder.ins().select(c, x, y)
            }
            InstKind::Reduce(_) => {
                return Err(JitError(format!("{v}: reductions are emitted by region")));
            }
        })
    }

    fn load(&mut self, view_idx: usize) -> Result<Value, JitError> {
        let view = &self.kernel.views[view_idx];
        let input = &self.kernel.inputs[view.input.index()];
        let size = input.dtype.size() as i64;
        let mut p = self.lane_ptrs[self.lane][view_idx];
        for &(l, s) in &view.loop_strides {
            let lv = self.loop_vars[l.index()]
                .ok_or_else(|| JitError(format!("load uses {l} outside its loop")))?;
            let li = self.builder.use_var(lv);
            let off = self.mul_const(li, s * size);
            p = self.builder.ins().iadd(p, off);
        }
        let ty = clif_type(input.dtype);
        let swapped = input.byte_order == ByteOrder::Swapped && size > 1;
        let x = if swapped || ty.is_float() {
            let int_ty = types::Type::int((size * 8) as u16).expect("sizes are 1, 2, 4 or 8");
            let raw = self.builder.ins().load(int_ty, notrap(), p, 0);
            let raw = if swapped {
                self.builder.ins().bswap(raw)
            } else {
                raw
            };
            if ty.is_float() {
                self.builder.ins().bitcast(ty, MemFlagsData::new(), raw)
            } else {
                raw
            }
        } else {
            self.builder.ins().load(ty, notrap(), p, 0)
        };
        Ok(if input.dtype == DType::Bool {
            self.builder.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
        } else {
            x
        })
    }

    /// An integer or bool value widened to i64 (sign-extended for signed dtypes).
    fn widen(&mut self, x: Value, dtype: DType) -> Value {
        let ty = clif_type(dtype);
        if ty == types::I64 {
            x
        } else if dtype.is_signed_int() {
            self.builder.ins().sextend(types::I64, x)
        } else {
            self.builder.ins().uextend(types::I64, x)
        }
    }

    /// `cvttsd2si` semantics on an f64: truncation, or the minimum value of `to` (i32 or i64)
    /// when the value is NaN or out of range.
    fn cvtt(&mut self, x: Value, to: Type) -> Value {
        let sat = self.builder.ins().fcvt_to_sint_sat(to, x);
        let (above, min) = if to == types::I32 {
            let lo = self.builder.ins().f64const(-2147483649.0f64);
            let above = self.builder.ins().fcmp(FloatCC::GreaterThan, x, lo);
            (above, i32::MIN as u32 as i64)
        } else {
            // -2^63 is the smallest valid value (anything below rounds away from it).
            let lo = self.builder.ins().f64const(-9223372036854775808.0f64);
            let above = self.builder.ins().fcmp(FloatCC::GreaterThanOrEqual, x, lo);
            (above, i64::MIN)
        };
        let hi = if to == types::I32 {
            2147483648.0f64
        } else {
            9223372036854775808.0f64
        };
        let hi = self.builder.ins().f64const(hi);
        let below = self.builder.ins().fcmp(FloatCC::LessThan, x, hi);
        let ok = self.builder.ins().band(above, below);
        let min_v = self.builder.ins().iconst(to, min);
        self.builder.ins().select(ok, sat, min_v)
    }

    fn cast(&mut self, x: Value, from: DType, to: DType) -> Value {
        let to_ty = clif_type(to);
        if from == to {
            return x;
        }
        if to == DType::Bool {
            return if from.is_float() {
                let zero = self.zero_float(from);
                self.builder.ins().fcmp(FloatCC::NotEqual, x, zero)
            } else {
                self.builder.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
            };
        }
        if from.is_float() && to.is_float() {
            return if to_ty == types::F64 {
                self.builder.ins().fpromote(types::F64, x)
            } else {
                self.builder.ins().fdemote(types::F32, x)
            };
        }
        if from.is_float() {
            let x64 = if clif_type(from) == types::F32 {
                self.builder.ins().fpromote(types::F64, x)
            } else {
                x
            };
            return match to {
                DType::U64 => {
                    let two63 = self.builder.ins().f64const(9223372036854775808.0f64);
                    let big = self
                        .builder
                        .ins()
                        .fcmp(FloatCC::GreaterThanOrEqual, x64, two63);
                    let shifted = self.builder.ins().fsub(x64, two63);
                    let hi = self.cvtt(shifted, types::I64);
                    let hi = self.builder.ins().bxor_imm_s(hi, i64::MIN);
                    let lo = self.cvtt(x64, types::I64);
                    self.builder.ins().select(big, hi, lo)
                }
                DType::I64 => self.cvtt(x64, types::I64),
                DType::U32 => {
                    let v = self.cvtt(x64, types::I64);
                    self.builder.ins().ireduce(types::I32, v)
                }
                _ => {
                    let v = self.cvtt(x64, types::I32);
                    if to_ty == types::I32 {
                        v
                    } else {
                        self.builder.ins().ireduce(to_ty, v)
                    }
                }
            };
        }
        if to.is_float() {
            if from == DType::U64 {
                return self.builder.ins().fcvt_from_uint(to_ty, x);
            }
            let w = self.widen(x, from);
            return self.builder.ins().fcvt_from_sint(to_ty, w);
        }
        // Integer (or bool) to integer: wrap or extend.
        let from_ty = clif_type(from);
        if from_ty == to_ty {
            x
        } else if from_ty.bits() > to_ty.bits() {
            self.builder.ins().ireduce(to_ty, x)
        } else if from.is_signed_int() {
            self.builder.ins().sextend(to_ty, x)
        } else {
            self.builder.ins().uextend(to_ty, x)
        }
    }

    fn zero_float(&mut self, dtype: DType) -> Value {
        if clif_type(dtype) == types::F32 {
            self.builder.ins().f32const(0.0f32)
        } else {
            self.builder.ins().f64const(0.0f64)
        }
    }

    fn float_suffix(dtype: DType) -> &'static str {
        if clif_type(dtype) == types::F32 {
            "f32"
        } else {
            "f64"
        }
    }

    fn unary(&mut self, op: UnaryOp, x: Value, dtype: DType) -> Result<Value, JitError> {
        let b = &mut self.builder;
        Ok(if dtype.is_float() {
            match op {
                UnaryOp::Neg => b.ins().fneg(x),
                UnaryOp::Abs => b.ins().fabs(x),
                UnaryOp::Sqrt => b.ins().sqrt(x),
                UnaryOp::Floor => b.ins().floor(x),
                UnaryOp::Ceil => b.ins().ceil(x),
                UnaryOp::Trunc => b.ins().trunc(x),
                UnaryOp::Rint => b.ins().nearest(x),
                UnaryOp::IsNan => b.ins().fcmp(FloatCC::Unordered, x, x),
                UnaryOp::IsInf | UnaryOp::IsFinite => {
                    let a = b.ins().fabs(x);
                    let inf = if clif_type(dtype) == types::F32 {
                        b.ins().f32const(f32::INFINITY)
                    } else {
                        b.ins().f64const(f64::INFINITY)
                    };
                    let cc = if op == UnaryOp::IsInf {
                        FloatCC::Equal
                    } else {
                        FloatCC::LessThan
                    };
                    b.ins().fcmp(cc, a, inf)
                }
                UnaryOp::SignBit => {
                    let int_ty = if clif_type(dtype) == types::F32 {
                        types::I32
                    } else {
                        types::I64
                    };
                    let bits = b.ins().bitcast(int_ty, MemFlagsData::new(), x);
                    b.ins().icmp_imm_s(IntCC::SignedLessThan, bits, 0)
                }
                UnaryOp::Math(f) => {
                    let name = format!("vx_{}_{}", f.name(), Self::float_suffix(dtype));
                    return self.call(&name, &[x]);
                }
                UnaryOp::RoundF16 => {
                    let name = format!("vx_round_f16_{}", Self::float_suffix(dtype));
                    return self.call(&name, &[x]);
                }
                UnaryOp::Not => x,
            }
        } else if dtype == DType::Bool {
            match op {
                UnaryOp::Not => b.ins().bxor_imm_s(x, 1),
                _ => x,
            }
        } else {
            match op {
                UnaryOp::Neg => b.ins().ineg(x),
                UnaryOp::Abs if dtype.is_signed_int() => b.ins().iabs(x),
                UnaryOp::Not => b.ins().bnot(x),
                _ => x,
            }
        })
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        x: Value,
        y: Value,
        dtype: DType,
    ) -> Result<Value, JitError> {
        if dtype.is_float() {
            return self.float_binary(op, x, y, dtype);
        }
        let ty = clif_type(dtype);
        let signed = dtype.is_signed_int();
        let b = &mut self.builder;
        let cmp =
            |signed_cc: IntCC, unsigned_cc: IntCC| if signed { signed_cc } else { unsigned_cc };
        Ok(match op {
            BinaryOp::Add => b.ins().iadd(x, y),
            BinaryOp::Sub => b.ins().isub(x, y),
            BinaryOp::Mul => b.ins().imul(x, y),
            BinaryOp::Min if signed => b.ins().smin(x, y),
            BinaryOp::Min => b.ins().umin(x, y),
            BinaryOp::Max if signed => b.ins().smax(x, y),
            BinaryOp::Max => b.ins().umax(x, y),
            BinaryOp::And => b.ins().band(x, y),
            BinaryOp::Or => b.ins().bor(x, y),
            BinaryOp::Xor => b.ins().bxor(x, y),
            BinaryOp::Shl | BinaryOp::Shr => {
                let count = self.widen(y, dtype);
                let b = &mut self.builder;
                let bits = ty.bits() as i64;
                let in_range = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, count, bits);
                let shifted = match (op, signed) {
                    (BinaryOp::Shl, _) => b.ins().ishl(x, y),
                    (_, true) => b.ins().sshr(x, y),
                    (_, false) => b.ins().ushr(x, y),
                };
                let fallback = if op == BinaryOp::Shr && signed {
                    b.ins().sshr_imm_s(x, bits - 1)
                } else {
                    b.ins().iconst(ty, 0)
                };
                b.ins().select(in_range, shifted, fallback)
            }
            BinaryOp::Eq => b.ins().icmp(IntCC::Equal, x, y),
            BinaryOp::Ne => b.ins().icmp(IntCC::NotEqual, x, y),
            BinaryOp::Lt => b
                .ins()
                .icmp(cmp(IntCC::SignedLessThan, IntCC::UnsignedLessThan), x, y),
            BinaryOp::Le => b.ins().icmp(
                cmp(IntCC::SignedLessThanOrEqual, IntCC::UnsignedLessThanOrEqual),
                x,
                y,
            ),
            BinaryOp::Gt => b.ins().icmp(
                cmp(IntCC::SignedGreaterThan, IntCC::UnsignedGreaterThan),
                x,
                y,
            ),
            BinaryOp::Ge => b.ins().icmp(
                cmp(
                    IntCC::SignedGreaterThanOrEqual,
                    IntCC::UnsignedGreaterThanOrEqual,
                ),
                x,
                y,
            ),
            BinaryOp::FloorDiv | BinaryOp::Mod | BinaryOp::Fmod | BinaryOp::Pow => {
                let name = match op {
                    BinaryOp::FloorDiv => "floordiv",
                    BinaryOp::Mod => "mod",
                    BinaryOp::Fmod => "fmod",
                    _ => "pow",
                };
                let name = format!("vx_{name}_{}", if signed { "i64" } else { "u64" });
                let (wx, wy) = (self.widen(x, dtype), self.widen(y, dtype));
                let r = self.call(&name, &[wx, wy])?;
                if ty == types::I64 {
                    r
                } else {
                    self.builder.ins().ireduce(ty, r)
                }
            }
            BinaryOp::Div
            | BinaryOp::FMin
            | BinaryOp::FMax
            | BinaryOp::CopySign
            | BinaryOp::Atan2
            | BinaryOp::Hypot
            | BinaryOp::LogAddExp => {
                return Err(JitError(format!(
                    "{op:?} on {dtype} is not a valid operation"
                )))
            }
        })
    }

    fn float_binary(
        &mut self,
        op: BinaryOp,
        x: Value,
        y: Value,
        dtype: DType,
    ) -> Result<Value, JitError> {
        let b = &mut self.builder;
        Ok(match op {
            BinaryOp::Add => b.ins().fadd(x, y),
            BinaryOp::Sub => b.ins().fsub(x, y),
            BinaryOp::Mul => b.ins().fmul(x, y),
            BinaryOp::Div => b.ins().fdiv(x, y),
            BinaryOp::CopySign => b.ins().fcopysign(x, y),
            BinaryOp::Min | BinaryOp::Max | BinaryOp::FMin | BinaryOp::FMax => {
                // numpy: minimum(a, b) = a if isnan(a) else (b if isnan(b) or b <= a else a);
                // fmin(a, b) = a if isnan(b) else (b if isnan(a) or b <= a else a).
                let a_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
                let b_nan = b.ins().fcmp(FloatCC::Unordered, y, y);
                let cc = if matches!(op, BinaryOp::Min | BinaryOp::FMin) {
                    FloatCC::LessThanOrEqual
                } else {
                    FloatCC::GreaterThanOrEqual
                };
                let b_wins = b.ins().fcmp(cc, y, x);
                if matches!(op, BinaryOp::Min | BinaryOp::Max) {
                    let take_b = b.ins().bor(b_nan, b_wins);
                    let pick = b.ins().select(take_b, y, x);
                    b.ins().select(a_nan, x, pick)
                } else {
                    let take_b = b.ins().bor(a_nan, b_wins);
                    let pick = b.ins().select(take_b, y, x);
                    b.ins().select(b_nan, x, pick)
                }
            }
            BinaryOp::Eq => b.ins().fcmp(FloatCC::Equal, x, y),
            BinaryOp::Ne => b.ins().fcmp(FloatCC::NotEqual, x, y),
            BinaryOp::Lt => b.ins().fcmp(FloatCC::LessThan, x, y),
            BinaryOp::Le => b.ins().fcmp(FloatCC::LessThanOrEqual, x, y),
            BinaryOp::Gt => b.ins().fcmp(FloatCC::GreaterThan, x, y),
            BinaryOp::Ge => b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, y),
            BinaryOp::FloorDiv
            | BinaryOp::Mod
            | BinaryOp::Fmod
            | BinaryOp::Pow
            | BinaryOp::Atan2
            | BinaryOp::Hypot
            | BinaryOp::LogAddExp => {
                let name = match op {
                    BinaryOp::FloorDiv => "floordiv",
                    BinaryOp::Mod => "mod",
                    BinaryOp::Fmod => "fmod",
                    BinaryOp::Pow => "pow",
                    BinaryOp::Atan2 => "arctan2",
                    BinaryOp::Hypot => "hypot",
                    _ => "logaddexp",
                };
                let name = format!("vx_{name}_{}", Self::float_suffix(dtype));
                return self.call(&name, &[x, y]);
            }
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Shl | BinaryOp::Shr => {
                return Err(JitError(format!(
                    "{op:?} on {dtype} is not a valid operation"
                )))
            }
        })
    }

    /// The accumulator's start value: the identity of the operation, chosen so that combining it
    /// with the first element gives that element bit for bit (as the interpreter starts).
    fn reduce_init(&mut self, op: ReduceOp, dtype: DType) -> Value {
        let s = match op {
            ReduceOp::Sum(_) => {
                if dtype.is_float() {
                    Scalar::F64(-0.0).cast(dtype)
                } else {
                    Scalar::zero(dtype)
                }
            }
            ReduceOp::Prod => Scalar::one(dtype),
            ReduceOp::Min | ReduceOp::ArgMin => max_value(dtype),
            ReduceOp::Max | ReduceOp::ArgMax => min_value(dtype),
            ReduceOp::FMin | ReduceOp::FMax => Scalar::F64(f64::NAN).cast(dtype),
            ReduceOp::Any => Scalar::Bool(false),
            ReduceOp::All => Scalar::Bool(true),
            ReduceOp::Count | ReduceOp::Median | ReduceOp::Quantile { .. } => Scalar::I64(0),
        };
        self.constant(s)
    }

    /// Folds the kept elements of a pairwise sum into its accumulator and empties the buffer
    /// (an empty buffer leaves the accumulator as it is).
    fn flush_pairwise(
        &mut self,
        acc: Variable,
        count: Variable,
        base: Value,
        elem_dtype: DType,
    ) -> Result<(), JitError> {
        let n = self.builder.use_var(count);
        let name = format!("vx_pairwise_{}", Self::float_suffix(elem_dtype));
        let run = self.call(&name, &[base, n])?;
        let a = self.builder.use_var(acc);
        let sum = self.builder.ins().fadd(a, run);
        let has = self.builder.ins().icmp_imm_s(IntCC::NotEqual, n, 0);
        let total = self.builder.ins().select(has, sum, a);
        self.builder.def_var(acc, total);
        let z = self.builder.ins().iconst(types::I64, 0);
        self.builder.def_var(count, z);
        Ok(())
    }

    /// One reduction for every lane: one loop nest, one accumulator (and count, best index,
    /// scratch region) per lane. Masks select rather than branch, so the lanes stay in step.
    fn reduce(&mut self, v: ValueId, r: &Reduce, result: DType) -> Result<Vec<Value>, JitError> {
        let elem_dtype = self.kernel.dtype(r.elem);
        let elem_ty = clif_type(elem_dtype);
        let float_pairwise = matches!(
            r.op,
            ReduceOp::Sum(SumOrder::Pairwise | SumOrder::PairwiseAll | SumOrder::PairwiseGlobal)
        ) && elem_dtype.is_float();
        let block = self.kernel.pairwise_block(r).filter(|_| float_pairwise);
        // A pairwise sum folds its kept elements into the total at the end of each run of the
        // innermost loop, or once after all loops for `PairwiseAll`.
        let flush_depth = if matches!(
            r.op,
            ReduceOp::Sum(SumOrder::PairwiseAll | SumOrder::PairwiseGlobal)
        ) {
            r.loops.len() - 1
        } else {
            0
        };
        let keeps = matches!(r.op, ReduceOp::Median | ReduceOp::Quantile { .. }) || float_pairwise;
        let acc_ty = match r.op {
            ReduceOp::Any | ReduceOp::All => types::I8,
            ReduceOp::Count | ReduceOp::Median | ReduceOp::Quantile { .. } => types::I64,
            _ => elem_ty,
        };
        let region_off = if keeps {
            *self
                .scratch_offsets
                .get(&v)
                .ok_or_else(|| JitError(format!("{v} has no scratch region")))? as i64
        } else {
            0
        };
        let lane_stride = self.kernel.scratch_bytes() as i64;
        let zero = self.builder.ins().iconst(types::I64, 0);
        let mut acc = Vec::new();
        let mut count = Vec::new();
        let mut best_idx = Vec::new();
        let mut scratch_base = Vec::new();
        for lane in 0..self.lanes {
            let init = self.reduce_init(r.op, elem_dtype);
            let a = self.builder.declare_var(acc_ty);
            self.builder.def_var(a, init);
            acc.push(a);
            let c = self.builder.declare_var(types::I64);
            self.builder.def_var(c, zero);
            count.push(c);
            let bi = self.builder.declare_var(types::I64);
            self.builder.def_var(bi, zero);
            best_idx.push(bi);
            scratch_base.push(if keeps {
                self.builder
                    .ins()
                    .iadd_imm_s(self.scratch_ptr, lane as i64 * lane_stride + region_off)
            } else {
                zero
            });
        }
        let elem_size = elem_dtype.size() as i64;

        // Nested loops, outermost first.
        let mut exits: Vec<(LoopId, Variable, Block, Block)> = Vec::new();
        for &l in r.loops.iter().rev() {
            let len = self.kernel.loops[l.index()].len;
            let var = self.builder.declare_var(types::I64);
            let z = self.builder.ins().iconst(types::I64, 0);
            self.builder.def_var(var, z);
            self.loop_vars[l.index()] = Some(var);
            let head = self.builder.create_block();
            let body = self.builder.create_block();
            let exit = self.builder.create_block();
            self.builder.ins().jump(head, &[]);
            self.builder.switch_to_block(head);
            let cur = self.builder.use_var(var);
            let more = self
                .builder
                .ins()
                .icmp_imm_s(IntCC::UnsignedLessThan, cur, len as i64);
            self.builder.ins().brif(more, body, &[], exit, &[]);
            self.builder.switch_to_block(body);
            exits.push((l, var, head, exit));
        }

        // Innermost body: evaluate every lane, then accumulate the included elements.
        self.region(&r.body)?;
        for lane in 0..self.lanes {
            self.lane = lane;
            let x = self.value(r.elem);
            let included = match r.mask {
                Some(m) => self.value(m),
                None => self.builder.ins().iconst(types::I8, 1),
            };
            let a = self.builder.use_var(acc[lane]);
            let n = self.builder.use_var(count[lane]);
            let combined = match r.op {
                _ if keeps => {
                    // Stored unconditionally at the next free slot; only an included element
                    // advances the count, so an excluded one is overwritten.
                    let off = self.mul_const(n, elem_size);
                    let p = self.builder.ins().iadd(scratch_base[lane], off);
                    self.builder.ins().store(notrap(), x, p, 0);
                    a
                }
                ReduceOp::Sum(_) => self.binary(BinaryOp::Add, a, x, elem_dtype)?,
                ReduceOp::Prod => self.binary(BinaryOp::Mul, a, x, elem_dtype)?,
                ReduceOp::Min => self.binary(BinaryOp::Min, a, x, elem_dtype)?,
                ReduceOp::Max => self.binary(BinaryOp::Max, a, x, elem_dtype)?,
                ReduceOp::FMin => self.binary(BinaryOp::FMin, a, x, elem_dtype)?,
                ReduceOp::FMax => self.binary(BinaryOp::FMax, a, x, elem_dtype)?,
                ReduceOp::Any | ReduceOp::All => {
                    let t = self.cast(x, elem_dtype, DType::Bool);
                    if r.op == ReduceOp::Any {
                        self.builder.ins().bor(a, t)
                    } else {
                        self.builder.ins().band(a, t)
                    }
                }
                ReduceOp::ArgMin | ReduceOp::ArgMax => {
                    // better = !isnan(best) && (isnan(x) || x < best) (x > best for argmax).
                    let cmp = if r.op == ReduceOp::ArgMin {
                        BinaryOp::Lt
                    } else {
                        BinaryOp::Gt
                    };
                    let strictly = self.binary(cmp, x, a, elem_dtype)?;
                    let better = if elem_dtype.is_float() {
                        let x_nan = self.builder.ins().fcmp(FloatCC::Unordered, x, x);
                        let a_ord = self.builder.ins().fcmp(FloatCC::Ordered, a, a);
                        let t = self.builder.ins().bor(x_nan, strictly);
                        self.builder.ins().band(t, a_ord)
                    } else {
                        strictly
                    };
                    let take = self.builder.ins().band(better, included);
                    let bi = self.builder.use_var(best_idx[lane]);
                    let nbi = self.builder.ins().select(take, n, bi);
                    self.builder.def_var(best_idx[lane], nbi);
                    self.builder.ins().select(better, x, a)
                }
                ReduceOp::Count | ReduceOp::Median | ReduceOp::Quantile { .. } => a,
            };
            // The first included element replaces the start value outright (as the
            // interpreter starts), so no identity can change a NaN payload or a signed zero.
            let combined = if matches!(
                r.op,
                ReduceOp::Prod
                    | ReduceOp::Min
                    | ReduceOp::Max
                    | ReduceOp::FMin
                    | ReduceOp::FMax
                    | ReduceOp::ArgMin
                    | ReduceOp::ArgMax
            ) {
                let first = self.builder.ins().icmp_imm_s(IntCC::Equal, n, 0);
                self.builder.ins().select(first, x, combined)
            } else {
                combined
            };
            let next = if r.mask.is_some() {
                self.builder.ins().select(included, combined, a)
            } else {
                combined
            };
            self.builder.def_var(acc[lane], next);
            let inc = self.builder.ins().uextend(types::I64, included);
            let n1 = self.builder.ins().iadd(n, inc);
            self.builder.def_var(count[lane], n1);
            if let Some(block) = block {
                // A full buffer of kept elements is folded in, as numpy does per buffer.
                let full = self
                    .builder
                    .ins()
                    .icmp_imm_s(IntCC::Equal, n1, block as i64);
                let flush = self.builder.create_block();
                let cont = self.builder.create_block();
                self.builder.ins().brif(full, flush, &[], cont, &[]);
                self.builder.switch_to_block(flush);
                self.flush_pairwise(acc[lane], count[lane], scratch_base[lane], elem_dtype)?;
                self.builder.ins().jump(cont, &[]);
                self.builder.switch_to_block(cont);
            }
        }

        // Close the loops, innermost first.
        for (depth, (l, var, head, exit)) in exits.into_iter().rev().enumerate() {
            let cur = self.builder.use_var(var);
            let next = self.builder.ins().iadd_imm_s(cur, 1);
            self.builder.def_var(var, next);
            self.builder.ins().jump(head, &[]);
            self.builder.switch_to_block(exit);
            self.loop_vars[l.index()] = None;
            if depth == flush_depth && float_pairwise {
                for lane in 0..self.lanes {
                    self.flush_pairwise(acc[lane], count[lane], scratch_base[lane], elem_dtype)?;
                }
            }
        }

        let mut results = Vec::with_capacity(self.lanes);
        for lane in 0..self.lanes {
            let a = self.builder.use_var(acc[lane]);
            let n = self.builder.use_var(count[lane]);
            let res = match r.op {
                ReduceOp::Count => n,
                ReduceOp::ArgMin | ReduceOp::ArgMax => self.builder.use_var(best_idx[lane]),
                ReduceOp::Min | ReduceOp::Max if elem_dtype.is_float() => {
                    // An empty selection gives NaN.
                    let nan = self.constant(Scalar::F64(f64::NAN).cast(elem_dtype));
                    let has = self.builder.ins().icmp_imm_s(IntCC::NotEqual, n, 0);
                    self.builder.ins().select(has, a, nan)
                }
                ReduceOp::Min | ReduceOp::Max => {
                    let zero = self.constant(Scalar::zero(elem_dtype));
                    let has = self.builder.ins().icmp_imm_s(IntCC::NotEqual, n, 0);
                    self.builder.ins().select(has, a, zero)
                }
                ReduceOp::Median => {
                    let name = format!("vx_median_{}", Self::float_suffix(result));
                    self.call(&name, &[scratch_base[lane], n])?
                }
                ReduceOp::Quantile { q, data_dtype } => {
                    let qv = self.builder.ins().f64const(q);
                    if clif_type(result) == types::F32 {
                        self.call("vx_quantile_f32", &[scratch_base[lane], n, qv])?
                    } else {
                        let code = DType::ALL
                            .iter()
                            .position(|d| *d == data_dtype)
                            .unwrap_or(DType::ALL.len() - 1);
                        let code = self.builder.ins().iconst(types::I32, code as i64);
                        self.call("vx_quantile_f64", &[scratch_base[lane], n, qv, code])?
                    }
                }
                _ => a,
            };
            results.push(res);
        }
        Ok(results)
    }
}

fn max_value(dtype: DType) -> Scalar {
    match dtype {
        DType::F32 => Scalar::F32(f32::INFINITY),
        DType::F64 => Scalar::F64(f64::INFINITY),
        DType::Bool => Scalar::Bool(true),
        DType::U8 => Scalar::U8(u8::MAX),
        DType::I8 => Scalar::I8(i8::MAX),
        DType::U16 => Scalar::U16(u16::MAX),
        DType::I16 => Scalar::I16(i16::MAX),
        DType::U32 => Scalar::U32(u32::MAX),
        DType::I32 => Scalar::I32(i32::MAX),
        DType::U64 => Scalar::U64(u64::MAX),
        DType::I64 | DType::F16 => Scalar::I64(i64::MAX),
    }
}

fn min_value(dtype: DType) -> Scalar {
    match dtype {
        DType::F32 => Scalar::F32(f32::NEG_INFINITY),
        DType::F64 => Scalar::F64(f64::NEG_INFINITY),
        DType::Bool => Scalar::Bool(false),
        DType::U8 => Scalar::U8(0),
        DType::I8 => Scalar::I8(i8::MIN),
        DType::U16 => Scalar::U16(0),
        DType::I16 => Scalar::I16(i16::MIN),
        DType::U32 => Scalar::U32(0),
        DType::I32 => Scalar::I32(i32::MIN),
        DType::U64 => Scalar::U64(0),
        DType::I64 | DType::F16 => Scalar::I64(i64::MIN),
    }
}
