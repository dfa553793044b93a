//! The 128-bit SIMD fast path for element-wise kernels, including kernels that mix dtypes, and
//! for kernels whose reductions are float sums in loop order (time means, variances).
//!
//! A kernel qualifies when every value is bool, float32, float64 or an integer of at most 32
//! bits, every cast and operation has an exact lane-wise form (see [`plan`]), every reduction
//! is an unmasked sequential float sum, every view walks domain axis 0 with stride 1 (vector
//! loads) or 0 (a broadcast) and inputs are in native byte order. The row loop then computes a
//! fixed number of voxels per iteration ([`VectorPlan::lanes`]): 16 bytes' worth of the one
//! dtype of a single-dtype kernel, otherwise (and always with reductions) 4. Each value is held
//! as as many 128-bit vectors of its own dtype as those voxels need (4 float64 voxels are two
//! `f64x2`, 4 int16 voxels the low half of an `i16x8`, 4 uint8 voxels the low quarter of an
//! `i8x16`); a bool is a lane mask (all ones or zeros) of the width of the values it was
//! computed from and is resized where it meets another width. A reduction is its loop nest
//! inside the row loop, with one vector accumulator per vector of voxels: each lane adds its own
//! voxel's elements in order, so the 4 voxels' dependency chains overlap as the scalar lanes of
//! other reductions do, from a quarter of the code. A row ends with a last vector overlapping
//! the one before, or (rows shorter than a vector) the scalar body.
//!
//! Every vector operation gives, lane by lane, the bits the scalar code gives: IEEE and
//! wrapping arithmetic, exact conversions (integer widening, wrapping narrowing through a mask
//! and an unsigned saturating narrow of in-range values, int-to-float conversions that are
//! exact or round once as the scalar one does, float promotion and demotion), and the
//! logarithm and exponential (float32 and float64) of `voxcalc_ir::vmath`, whose operations the
//! vector forms repeat one for one. The
//! differential tests run both paths.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use std::collections::HashMap;

use cranelift_codegen::ir::{
    types, ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use voxcalc_ir::{
    BinaryOp, ByteOrder, InstKind, Kernel, MathFn, Reduce, ReduceOp, Scalar, SumOrder, UnaryOp,
    ValueId,
};
use voxcalc_types::DType;

use crate::JitError;

/// The vector shape of a qualifying kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VectorPlan {
    /// Voxels computed per iteration.
    pub lanes: i64,
}

/// True for the dtypes the vector path holds in vectors (bool as masks).
fn vector_dtype(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Bool
            | DType::U8
            | DType::I8
            | DType::U16
            | DType::I16
            | DType::U32
            | DType::I32
            | DType::F32
            | DType::F64
    )
}

/// True when a cast from `from` to `to` has an exact lane-wise form here.
fn cast_ok(from: DType, to: DType) -> bool {
    if from == to || from == DType::Bool || to == DType::Bool {
        return true;
    }
    match (from.is_float(), to.is_float()) {
        (true, true) => true,
        // numpy's float-to-int casts (x86 truncation, NaN and out of range giving the
        // minimum, then wrapping): float32 to integers of at most 16 bits and int32 have a
        // lane-wise form; float64 and uint32 targets stay on the scalar path.
        (true, false) => from == DType::F32 && to != DType::U32,
        // uint32 to float32 has no exact single-rounding vector form here.
        (false, true) => !(from == DType::U32 && to == DType::F32),
        (false, false) => true,
    }
}

/// Decides whether `kernel` can use the vector path.
pub(crate) fn plan(kernel: &Kernel) -> Option<VectorPlan> {
    if kernel.domain.is_empty() {
        return None;
    }
    let mut min_size = usize::MAX;
    let mut sizes = Vec::new();
    for inst in &kernel.insts {
        if !vector_dtype(inst.dtype) {
            return None;
        }
        if inst.dtype != DType::Bool {
            min_size = min_size.min(inst.dtype.size());
            if !sizes.contains(&inst.dtype) {
                sizes.push(inst.dtype);
            }
        }
    }
    for view in &kernel.views {
        let input = &kernel.inputs[view.input.index()];
        if input.byte_order != ByteOrder::Native
            || !matches!(view.domain_strides.first(), Some(0) | Some(1))
        {
            return None;
        }
    }
    let mut has_reduction = false;
    for inst in &kernel.insts {
        let operand = |v: &ValueId| kernel.dtype(*v);
        let ok = match &inst.kind {
            InstKind::Const(_) | InstKind::Uniform(_) | InstKind::Load(_) => true,
            InstKind::Cast(a) => cast_ok(operand(a), inst.dtype),
            InstKind::Unary(op, a) => {
                let on_float = operand(a).is_float();
                match (op, operand(a) == DType::Bool) {
                    (UnaryOp::Not, true) => true,
                    (_, true) => false,
                    (UnaryOp::Neg | UnaryOp::Abs, false) => true,
                    (UnaryOp::Not, false) => !on_float,
                    (
                        UnaryOp::Sqrt
                        | UnaryOp::Floor
                        | UnaryOp::Ceil
                        | UnaryOp::Trunc
                        | UnaryOp::Rint
                        | UnaryOp::IsNan
                        | UnaryOp::IsInf
                        | UnaryOp::IsFinite
                        | UnaryOp::SignBit,
                        false,
                    ) => on_float,
                    (UnaryOp::Math(MathFn::Log | MathFn::Exp), false) => true,
                    (UnaryOp::Math(_) | UnaryOp::RoundF16, false) => false,
                }
            }
            InstKind::Binary(op, a, _) => {
                let on_bool = operand(a) == DType::Bool;
                let on_float = operand(a).is_float();
                match op {
                    BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => on_bool || !on_float,
                    _ if on_bool => false,
                    BinaryOp::Add | BinaryOp::Sub => true,
                    BinaryOp::Mul => on_float || operand(a).size() > 1,
                    BinaryOp::Div | BinaryOp::FMin | BinaryOp::FMax => on_float,
                    BinaryOp::Min | BinaryOp::Max => true,
                    BinaryOp::Eq
                    | BinaryOp::Ne
                    | BinaryOp::Lt
                    | BinaryOp::Le
                    | BinaryOp::Gt
                    | BinaryOp::Ge => true,
                    _ => false,
                }
            }
            InstKind::Select(..) => true,
            InstKind::Reduce(r) => {
                has_reduction = true;
                sequential_float_sum(kernel, r, inst.dtype)
            }
        };
        if !ok {
            return None;
        }
    }
    let lanes = match sizes.len() {
        // Reductions: 4 voxels, so that 4 voxels' accumulations are in flight at once (one
        // f32x4 or two f64x2 chains), as the scalar lanes of other reductions do.
        _ if has_reduction => 4,
        0 => 16,
        1 => 16 / min_size,
        // Mixed kernels: 4 voxels (one f32x4, two f64x2). 8 voxels ran 5% faster on the S2
        // formula but took 60% longer to compile (register allocation dominates).
        _ => 4,
    };
    Some(VectorPlan {
        lanes: lanes as i64,
    })
}

/// True for the reductions the vector path computes: unmasked float sums in loop order
/// ([`SumOrder::Sequential`], numpy's order over a non-contiguous axis such as time), each
/// lane accumulating its own voxel exactly as the scalar code does (from -0.0, one `fadd` per
/// element in order), so the bits agree.
fn sequential_float_sum(kernel: &Kernel, r: &Reduce, dtype: DType) -> bool {
    r.op == ReduceOp::Sum(SumOrder::Sequential)
        && r.mask.is_none()
        && dtype.is_float()
        && kernel.dtype(r.elem) == dtype
}

/// A kernel value over the iteration's voxels: vectors of `bits`-wide lanes, lane `l` of
/// vector `k` holding voxel `k * (128 / bits) + l`; when the voxels fill less than one vector
/// the extra lanes hold junk that no result depends on.
#[derive(Clone, Debug)]
struct Vals {
    bits: u32,
    vecs: Vec<Value>,
}

/// The vector type holding values of a non-bool `dtype`.
fn vec_type(dtype: DType) -> Type {
    match dtype {
        DType::F32 => types::F32X4,
        DType::F64 => types::F64X2,
        DType::I32 | DType::U32 => types::I32X4,
        DType::I16 | DType::U16 => types::I16X8,
        _ => types::I8X16,
    }
}

/// The integer vector type with `bits`-wide lanes (the type of masks).
fn int_vec(bits: u32) -> Type {
    match bits {
        8 => types::I8X16,
        16 => types::I16X8,
        32 => types::I32X4,
        _ => types::I64X2,
    }
}

fn int_lane(bits: u32) -> Type {
    types::Type::int(bits as u16).expect("8 to 64 bits")
}

/// Emits the vector code of one kernel.
struct Emitter<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    lanes: u32,
    /// Vector constants already emitted (by type and bytes): each is one constant-pool load,
    /// emitted once per body.
    consts: HashMap<(Type, [u8; 16]), Value>,
}

fn le() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// The values fdlibm's `log` combines in its last step (see `Emitter::log_combine`).
struct LogParts {
    f: Value,
    s: Value,
    hfsq: Value,
    r: Value,
    dk: Value,
    ln2_hi: Value,
    ln2_lo: Value,
}

impl Emitter<'_, '_> {
    /// Vectors needed for `bits`-wide lanes.
    fn count(&self, bits: u32) -> usize {
        ((self.lanes * bits) as usize / 128).max(1)
    }

    fn cast_vec(&mut self, ty: Type, v: Value) -> Value {
        if self.b.func.dfg.value_type(v) == ty {
            v
        } else {
            self.b.ins().bitcast(ty, le(), v)
        }
    }

    /// `if_true` where `mask` (lanes all ones or all zeros, as wide as the values' lanes) is set,
    /// else `if_false`. The select is done in the mask's own integer type, so when the mask is a
    /// comparison's result Cranelift sees that and emits one `pblendvb` instead of AND/ANDN/OR
    /// (other masks get the AND/ANDN/OR as before); the bitcasts cost nothing.
    fn blend(&mut self, mask: Value, if_true: Value, if_false: Value) -> Value {
        let ty = self.b.func.dfg.value_type(if_true);
        let mask_ty = self.b.func.dfg.value_type(mask);
        let t = self.cast_vec(mask_ty, if_true);
        let f = self.cast_vec(mask_ty, if_false);
        let picked = self.b.ins().bitselect(mask, t, f);
        self.cast_vec(ty, picked)
    }

    /// A vector of type `ty` whose every `bits`-wide lane holds the low bits of `pattern`.
    fn vconst(&mut self, ty: Type, bits: u32, pattern: u64) -> Value {
        let lane_bytes = (bits / 8) as usize;
        let mut bytes = [0u8; 16];
        for lane in bytes.chunks_mut(lane_bytes) {
            lane.copy_from_slice(&pattern.to_le_bytes()[..lane_bytes]);
        }
        if let Some(&v) = self.consts.get(&(ty, bytes)) {
            return v;
        }
        let c = self
            .b
            .func
            .dfg
            .constants
            .insert(ConstantData::from(&bytes[..]));
        let v = self.b.ins().vconst(ty, c);
        self.consts.insert((ty, bytes), v);
        v
    }

    fn splat_bits(&mut self, bits: u32, pattern: u64) -> Value {
        self.vconst(int_vec(bits), bits, pattern)
    }

    fn splat_f32(&mut self, x: f32) -> Value {
        self.vconst(types::F32X4, 32, x.to_bits() as u64)
    }

    /// `s` in every lane, as the vectors of its dtype (bool as a 32-bit mask).
    fn splat_scalar(&mut self, s: Scalar) -> Vals {
        let dtype = s.dtype();
        let (bits, v) = if dtype == DType::Bool {
            let pattern = if s.truthy() { u64::MAX } else { 0 };
            (32, self.splat_bits(32, pattern))
        } else {
            let bits = dtype.size() as u32 * 8;
            let v = match s {
                Scalar::F32(x) => self.splat_f32(x),
                Scalar::F64(x) => self.vconst(types::F64X2, 64, x.to_bits()),
                other => self.splat_bits(bits, other.to_bits()),
            };
            (bits, v)
        };
        Vals {
            bits,
            vecs: vec![v; self.count(bits)],
        }
    }

    /// A scalar of Cranelift type `ty` splat into vectors of `dtype`.
    fn splat_value(&mut self, dtype: DType, x: Value) -> Vals {
        let (bits, v) = if dtype == DType::Bool {
            let m = self.b.ins().bmask(types::I32, x);
            (32, self.b.ins().splat(types::I32X4, m))
        } else {
            (
                dtype.size() as u32 * 8,
                self.b.ins().splat(vec_type(dtype), x),
            )
        };
        Vals {
            bits,
            vecs: vec![v; self.count(bits)],
        }
    }

    /// Loads `lanes` consecutive elements of `dtype` at `p`.
    fn load(&mut self, dtype: DType, p: Value) -> Vals {
        let bits = dtype.size() as u32 * 8;
        let ty = vec_type(dtype);
        let flags = MemFlagsData::new().with_notrap();
        let total = self.lanes * bits / 8;
        let vecs = if total >= 16 {
            (0..total / 16)
                .map(|k| self.b.ins().load(ty, flags, p, (k * 16) as i32))
                .collect()
        } else {
            // 4 or 8 bytes: a scalar load into lane 0.
            let int_ty = int_lane(total * 8);
            let x = self.b.ins().load(int_ty, flags, p, 0);
            let v = self.b.ins().scalar_to_vector(int_vec(total * 8), x);
            vec![self.cast_vec(ty, v)]
        };
        if dtype == DType::Bool {
            let z = self.splat_bits(8, 0);
            let vecs = vecs
                .into_iter()
                .map(|v| self.b.ins().icmp(IntCC::NotEqual, v, z))
                .collect();
            Vals { bits: 8, vecs }
        } else {
            Vals { bits, vecs }
        }
    }

    /// Stores the vectors of `v` (the output, of `dtype`) at `p`.
    fn store(&mut self, dtype: DType, v: &Vals, p: Value) {
        let v = if dtype == DType::Bool {
            let m = self.resize_mask(v, 8);
            let one = self.splat_bits(8, 1);
            Vals {
                bits: 8,
                vecs: m.vecs.iter().map(|&x| self.b.ins().band(x, one)).collect(),
            }
        } else {
            v.clone()
        };
        let flags = MemFlagsData::new().with_notrap();
        let total = self.lanes * v.bits / 8;
        if total >= 16 {
            for (k, &x) in v.vecs.iter().enumerate() {
                self.b.ins().store(flags, x, p, (k * 16) as i32);
            }
        } else {
            let bits = total * 8;
            let x = self.cast_vec(int_vec(bits), v.vecs[0]);
            let x = self.b.ins().extractlane(x, 0);
            self.b.ins().store(flags, x, p, 0);
        }
    }

    /// A byte shuffle of `a` and `c` (lanes 0-15 of `a`, 16-31 of `c`) of vectors of type `ty`.
    fn shuffle(&mut self, ty: Type, a: Value, c: Value, mask: [u8; 16]) -> Value {
        let a = self.cast_vec(types::I8X16, a);
        let c = self.cast_vec(types::I8X16, c);
        let imm = self
            .b
            .func
            .dfg
            .immediates
            .push(ConstantData::from(&mask[..]));
        let r = self.b.ins().shuffle(a, c, imm);
        self.cast_vec(ty, r)
    }

    /// The high 8 bytes of `v` moved to the low half.
    fn high_half(&mut self, ty: Type, v: Value) -> Value {
        let mut mask = [0u8; 16];
        for (i, m) in mask.iter_mut().enumerate() {
            *m = (8 + i % 8) as u8;
        }
        self.shuffle(ty, v, v, mask)
    }

    /// The low halves of `a` and `c` joined.
    fn join_low(&mut self, ty: Type, a: Value, c: Value) -> Value {
        let mut mask = [0u8; 16];
        for (i, m) in mask.iter_mut().enumerate() {
            *m = if i < 8 { i as u8 } else { (16 + i - 8) as u8 };
        }
        self.shuffle(ty, a, c, mask)
    }

    /// Integer lanes widened to twice their width (sign- or zero-extended).
    fn widen(&mut self, v: &Vals, signed: bool) -> Vals {
        let bits = v.bits * 2;
        let vecs = (0..self.count(bits))
            .map(|o| {
                let x = v.vecs[o / 2];
                match (o % 2 == 0, signed) {
                    (true, true) => self.b.ins().swiden_low(x),
                    (true, false) => self.b.ins().uwiden_low(x),
                    (false, true) => self.b.ins().swiden_high(x),
                    (false, false) => self.b.ins().uwiden_high(x),
                }
            })
            .collect();
        Vals { bits, vecs }
    }

    /// Integer lanes narrowed to half their width. `wrap` keeps the low bits (numpy's integer
    /// casts); otherwise the lanes are masks (0 or -1), which a signed saturating narrow keeps.
    fn narrow(&mut self, v: &Vals, wrap: bool) -> Vals {
        let bits = v.bits / 2;
        let low = if wrap {
            let m = self.splat_bits(v.bits, (1u64 << bits) - 1);
            v.vecs.iter().map(|&x| self.b.ins().band(x, m)).collect()
        } else {
            v.vecs.clone()
        };
        let vecs = (0..self.count(bits))
            .map(|o| {
                let a = low[2 * o];
                let c = *low.get(2 * o + 1).unwrap_or(&a);
                if v.bits == 64 {
                    // No 64-bit narrowing instruction: keep each lane's low half.
                    let mut mask = [0u8; 16];
                    for (i, m) in mask.iter_mut().enumerate() {
                        let lane = i / 4;
                        *m = ((lane / 2) * 16 + (lane % 2) * 8 + i % 4) as u8;
                    }
                    self.shuffle(types::I32X4, a, c, mask)
                } else if wrap {
                    self.b.ins().unarrow(a, c)
                } else {
                    self.b.ins().snarrow(a, c)
                }
            })
            .collect();
        Vals { bits, vecs }
    }

    /// A mask resized to `bits`-wide lanes.
    fn resize_mask(&mut self, v: &Vals, bits: u32) -> Vals {
        if v.bits == 8 && bits >= 32 {
            // Lanes are 0 or -1, so widening repeats each byte: one byte shuffle per output
            // vector instead of a chain of widenings.
            let per_lane = (bits / 8) as usize;
            let lanes_per_vec = 16 / per_lane;
            let x = v.vecs[0];
            let vecs = (0..self.count(bits))
                .map(|o| {
                    let mut mask = [0u8; 16];
                    for (i, m) in mask.iter_mut().enumerate() {
                        *m = (o * lanes_per_vec + i / per_lane) as u8;
                    }
                    self.shuffle(int_vec(bits), x, x, mask)
                })
                .collect();
            return Vals { bits, vecs };
        }
        let mut v = v.clone();
        while v.bits < bits {
            v = self.widen(&v, true);
        }
        while v.bits > bits {
            v = self.narrow(&v, false);
        }
        v
    }

    /// Lane-wise `cmp(x, 0)` as a mask.
    fn is_nonzero(&mut self, dtype: DType, v: &Vals) -> Vals {
        let vecs = if dtype.is_float() {
            let zero = self.splat_scalar(Scalar::zero(dtype)).vecs[0];
            v.vecs
                .iter()
                .map(|&x| self.b.ins().fcmp(FloatCC::NotEqual, x, zero))
                .collect()
        } else {
            let zero = self.splat_bits(v.bits, 0);
            v.vecs
                .iter()
                .map(|&x| self.b.ins().icmp(IntCC::NotEqual, x, zero))
                .collect()
        };
        Vals { bits: v.bits, vecs }
    }

    fn cast(&mut self, v: &Vals, from: DType, to: DType) -> Result<Vals, JitError> {
        if from == to {
            return Ok(v.clone());
        }
        if to == DType::Bool {
            return Ok(self.is_nonzero(from, v));
        }
        let to_bits = to.size() as u32 * 8;
        if from == DType::Bool {
            let m = self.resize_mask(v, to_bits);
            let one = self.splat_scalar(Scalar::one(to)).vecs[0];
            let one = self.cast_vec(int_vec(to_bits), one);
            let vecs = m
                .vecs
                .iter()
                .map(|&x| {
                    let r = self.b.ins().band(x, one);
                    self.cast_vec(vec_type(to), r)
                })
                .collect();
            return Ok(Vals {
                bits: to_bits,
                vecs,
            });
        }
        match (from.is_float(), to.is_float()) {
            (true, true) if to == DType::F64 => {
                let vecs = (0..self.count(64))
                    .map(|o| {
                        let x = v.vecs[o / 2];
                        let x = if o % 2 == 0 {
                            x
                        } else {
                            self.high_half(types::F32X4, x)
                        };
                        self.b.ins().fvpromote_low(x)
                    })
                    .collect();
                Ok(Vals { bits: 64, vecs })
            }
            (true, true) => {
                let demoted: Vec<Value> =
                    v.vecs.iter().map(|&x| self.b.ins().fvdemote(x)).collect();
                let vecs = (0..self.count(32))
                    .map(|o| match demoted.get(2 * o + 1) {
                        Some(&c) => self.join_low(types::F32X4, demoted[2 * o], c),
                        None => demoted[2 * o],
                    })
                    .collect();
                Ok(Vals { bits: 32, vecs })
            }
            (false, true) => {
                let signed = from.is_signed_int();
                let mut w = v.clone();
                while w.bits < 32 {
                    w = self.widen(&w, signed);
                }
                if to == DType::F32 {
                    let vecs = w
                        .vecs
                        .iter()
                        .map(|&x| self.b.ins().fcvt_from_sint(types::F32X4, x))
                        .collect();
                    return Ok(Vals { bits: 32, vecs });
                }
                if from.size() <= 2 {
                    // Non-negative or signed 32-bit lanes: each pair converts exactly.
                    let vecs = (0..self.count(64))
                        .map(|o| {
                            let x = w.vecs[o / 2];
                            let x = if o % 2 == 0 {
                                x
                            } else {
                                self.high_half(types::I32X4, x)
                            };
                            // Lowered as one `cvtdq2pd`.
                            let x = self.b.ins().swiden_low(x);
                            self.b.ins().fcvt_from_sint(types::F64X2, x)
                        })
                        .collect();
                    return Ok(Vals { bits: 64, vecs });
                }
                // 32-bit integers: 2^52 + (x + bias) is exact in a float64's bits; subtracting
                // 2^52 + bias is exact too.
                let bias: u64 = if signed { 1 << 31 } else { 0 };
                let biased: Vec<Value> = if signed {
                    let flip = self.splat_bits(32, 0x8000_0000);
                    w.vecs.iter().map(|&x| self.b.ins().bxor(x, flip)).collect()
                } else {
                    w.vecs.clone()
                };
                let wide = self.widen(
                    &Vals {
                        bits: 32,
                        vecs: biased,
                    },
                    false,
                );
                let magic = self.splat_bits(64, 0x4330_0000_0000_0000);
                let offset = (4503599627370496u64 + bias) as f64;
                let offset = self.splat_scalar(Scalar::F64(offset)).vecs[0];
                let vecs = wide
                    .vecs
                    .iter()
                    .map(|&x| {
                        let x = self.b.ins().bor(x, magic);
                        let x = self.cast_vec(types::F64X2, x);
                        self.b.ins().fsub(x, offset)
                    })
                    .collect();
                Ok(Vals { bits: 64, vecs })
            }
            (false, false) => {
                let mut w = v.clone();
                while w.bits < to_bits {
                    w = self.widen(&w, from.is_signed_int());
                }
                while w.bits > to_bits {
                    w = self.narrow(&w, true);
                }
                Ok(w)
            }
            (true, false) if from == DType::F32 && to != DType::U32 => {
                // cvttps2dq semantics: truncation where -2^31 <= x < 2^31, else i32::MIN.
                let lo = self.splat_f32(-2147483648.0);
                let hi = self.splat_f32(2147483648.0);
                let min = self.splat_bits(32, i32::MIN as u32 as u64);
                let vecs = v
                    .vecs
                    .iter()
                    .map(|&x| {
                        let sat = self.b.ins().fcvt_to_sint_sat(types::I32X4, x);
                        let above = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, lo);
                        let below = self.b.ins().fcmp(FloatCC::LessThan, x, hi);
                        // Two blends on the comparisons themselves (see `blend`).
                        let below_hi = self.blend(below, sat, min);
                        self.blend(above, below_hi, min)
                    })
                    .collect();
                let mut w = Vals { bits: 32, vecs };
                while w.bits > to_bits {
                    w = self.narrow(&w, true);
                }
                Ok(w)
            }
            (true, false) => Err(JitError(format!("{from} to {to} has no vector form"))),
        }
    }

    /// Applies `f` to every vector of `v`.
    fn map(&mut self, v: &Vals, mut f: impl FnMut(&mut Self, Value) -> Value) -> Vals {
        let vecs = v.vecs.iter().map(|&x| f(self, x)).collect();
        Vals { bits: v.bits, vecs }
    }

    /// Applies `f` to the vectors of `x` and `y` pairwise.
    fn zip(
        &mut self,
        x: &Vals,
        y: &Vals,
        mut f: impl FnMut(&mut Self, Value, Value) -> Value,
    ) -> Vals {
        let vecs = x
            .vecs
            .iter()
            .zip(&y.vecs)
            .map(|(&a, &c)| f(self, a, c))
            .collect();
        Vals { bits: x.bits, vecs }
    }

    /// fdlibm's last step of `log`, the same in float32 and float64 (lane-wise, no fused
    /// multiply-add, so the bits equal `voxcalc_ir::vmath`'s): the two candidate results
    /// `a` (for large `f`) and `c`, from which the caller selects.
    fn log_combine(&mut self, p: LogParts) -> (Value, Value) {
        let LogParts {
            f,
            s,
            hfsq,
            r,
            dk,
            ln2_hi,
            ln2_lo,
        } = p;
        let dk_hi = self.b.ins().fmul(dk, ln2_hi);
        let dk_lo = self.b.ins().fmul(dk, ln2_lo);
        // a = dk*hi - ((hfsq - (s*(hfsq + r) + dk*lo)) - f)
        let a = self.b.ins().fadd(hfsq, r);
        let a = self.b.ins().fmul(s, a);
        let a = self.b.ins().fadd(a, dk_lo);
        let a = self.b.ins().fsub(hfsq, a);
        let a = self.b.ins().fsub(a, f);
        let a = self.b.ins().fsub(dk_hi, a);
        // c = dk*hi - ((s*(f - r) - dk*lo) - f)
        let c = self.b.ins().fsub(f, r);
        let c = self.b.ins().fmul(s, c);
        let c = self.b.ins().fsub(c, dk_lo);
        let c = self.b.ins().fsub(c, f);
        let c = self.b.ins().fsub(dk_hi, c);
        (a, c)
    }

    /// `voxcalc_ir::vmath::log_f32` on four lanes: the same operations in the same order.
    /// `int_valued`: every lane is a converted integer (0 or at least 1 in magnitude, finite),
    /// so the subnormal and non-finite cases cannot occur and are left out (the lanes they
    /// would touch, 0 and negatives, are overwritten by the zero and negative cases anyway).
    fn log_f32x4(&mut self, x: Value, int_valued: bool) -> Value {
        use voxcalc_ir::vmath::NEG_NAN_F32;
        let f32c = |e: &mut Self, bits: u32| e.splat_f32(f32::from_bits(bits));
        let ix0 = self.cast_vec(types::I32X4, x);
        let (xs, k0) = if int_valued {
            (x, None)
        } else {
            let min_normal = self.splat_bits(32, 0x0080_0000);
            let is_sub = self.b.ins().icmp(IntCC::SignedLessThan, ix0, min_normal);
            let two25 = f32c(self, 0x4c00_0000);
            let scaled = self.b.ins().fmul(x, two25);
            let xs = self.blend(is_sub, scaled, x);
            let minus25 = self.splat_bits(32, (-25i32) as u32 as u64);
            (xs, Some(self.b.ins().band(is_sub, minus25)))
        };
        let ix = self.cast_vec(types::I32X4, xs);
        let e = self.b.ins().sshr_imm_u(ix, 23);
        let bias = self.splat_bits(32, 127);
        let e = self.b.ins().isub(e, bias);
        let k1 = match k0 {
            Some(k0) => self.b.ins().iadd(k0, e),
            None => e,
        };
        let mant_mask = self.splat_bits(32, 0x007f_ffff);
        let mant = self.b.ins().band(ix, mant_mask);
        let c1 = self.splat_bits(32, 0x95f64 << 3);
        let i = self.b.ins().iadd(mant, c1);
        let bit23 = self.splat_bits(32, 0x0080_0000);
        let i = self.b.ins().band(i, bit23);
        let one_bits = self.splat_bits(32, 0x3f80_0000);
        let t = self.b.ins().bxor(i, one_bits);
        let t = self.b.ins().bor(mant, t);
        let m = self.cast_vec(types::F32X4, t);
        let i_shift = self.b.ins().sshr_imm_u(i, 23);
        let k = self.b.ins().iadd(k1, i_shift);
        let one = self.splat_f32(1.0);
        let two = self.splat_f32(2.0);
        let f = self.b.ins().fsub(m, one);
        let two_f = self.b.ins().fadd(two, f);
        let s = self.b.ins().fdiv(f, two_f);
        let dk = self.b.ins().fcvt_from_sint(types::F32X4, k);
        let z = self.b.ins().fmul(s, s);
        let w = self.b.ins().fmul(z, z);
        let lg1 = f32c(self, 0x3f2a_aaaa);
        let lg2 = f32c(self, 0x3ecc_ce13);
        let lg3 = f32c(self, 0x3e91_e9ee);
        let lg4 = f32c(self, 0x3e78_9e26);
        let t1 = self.b.ins().fmul(w, lg4);
        let t1 = self.b.ins().fadd(lg2, t1);
        let t1 = self.b.ins().fmul(w, t1);
        let t2 = self.b.ins().fmul(w, lg3);
        let t2 = self.b.ins().fadd(lg1, t2);
        let t2 = self.b.ins().fmul(z, t2);
        let r = self.b.ins().fadd(t2, t1);
        let half = self.splat_f32(0.5);
        let hfsq = self.b.ins().fmul(half, f);
        let hfsq = self.b.ins().fmul(hfsq, f);
        let c2 = self.splat_bits(32, 0x6147a << 3);
        let c3 = self.splat_bits(32, 0x6b851 << 3);
        let lo = self.b.ins().isub(mant, c2);
        let hi = self.b.ins().isub(c3, mant);
        let either = self.b.ins().bor(lo, hi);
        let zero_i = self.splat_bits(32, 0);
        let large_f = self.b.ins().icmp(IntCC::SignedGreaterThan, either, zero_i);
        let ln2_hi = f32c(self, 0x3f31_7180);
        let ln2_lo = f32c(self, 0x3717_f7d1);
        let (a, c) = self.log_combine(LogParts {
            f,
            s,
            hfsq,
            r,
            dk,
            ln2_hi,
            ln2_lo,
        });
        let mut res = self.blend(large_f, a, c);
        if !int_valued {
            let inf_bits = self.splat_bits(32, 0x7f80_0000);
            let not_finite = self
                .b
                .ins()
                .icmp(IntCC::SignedGreaterThanOrEqual, ix0, inf_bits);
            let xx = self.b.ins().fadd(x, x);
            res = self.blend(not_finite, xx, res);
        }
        let negative = self.b.ins().icmp(IntCC::SignedLessThan, ix0, zero_i);
        let nan = f32c(self, NEG_NAN_F32);
        let res = self.blend(negative, nan, res);
        let abs_mask = self.splat_bits(32, 0x7fff_ffff);
        let abs = self.b.ins().band(ix0, abs_mask);
        let is_zero = self.b.ins().icmp(IntCC::Equal, abs, zero_i);
        let neg_inf = self.splat_f32(f32::NEG_INFINITY);
        self.blend(is_zero, neg_inf, res)
    }

    /// `voxcalc_ir::vmath::log_f64` on two lanes: the same operations in the same order.
    /// `int_valued` as for [`Self::log_f32x4`].
    fn log_f64x2(&mut self, x: Value, int_valued: bool) -> Value {
        use voxcalc_ir::vmath::{INT_TO_F64_MAGIC, NEG_NAN_F64};
        let i64c = |e: &mut Self, v: i64| e.splat_bits(64, v as u64);
        let f64c = |e: &mut Self, bits: u64| e.vconst(types::F64X2, 64, bits);
        let as_f = |e: &mut Self, v: Value| e.cast_vec(types::F64X2, v);
        let bits = self.cast_vec(types::I64X2, x);
        let (xs, k0) = if int_valued {
            (x, None)
        } else {
            let hx0 = self.b.ins().sshr_imm_u(bits, 32);
            let min_normal = i64c(self, 0x0010_0000);
            let is_sub = self.b.ins().icmp(IntCC::SignedLessThan, hx0, min_normal);
            let two54 = f64c(self, 0x4350_0000_0000_0000);
            let scaled = self.b.ins().fmul(x, two54);
            let xs = self.blend(is_sub, scaled, x);
            let minus54 = i64c(self, -54);
            (xs, Some(self.b.ins().band(is_sub, minus54)))
        };
        let xbits = self.cast_vec(types::I64X2, xs);
        let hx = self.b.ins().sshr_imm_u(xbits, 32);
        let e = self.b.ins().sshr_imm_u(hx, 20);
        let bias = i64c(self, 1023);
        let e = self.b.ins().isub(e, bias);
        let k1 = match k0 {
            Some(k0) => self.b.ins().iadd(k0, e),
            None => e,
        };
        let mant_mask = i64c(self, 0x000f_ffff);
        let mant = self.b.ins().band(hx, mant_mask);
        let c1 = i64c(self, 0x95f64);
        let i = self.b.ins().iadd(mant, c1);
        let bit20 = i64c(self, 0x0010_0000);
        let i = self.b.ins().band(i, bit20);
        let one_hi = i64c(self, 0x3ff0_0000);
        let high = self.b.ins().bxor(i, one_hi);
        let high = self.b.ins().bor(mant, high);
        let high = self.b.ins().ishl_imm_u(high, 32);
        let low_mask = i64c(self, 0xffff_ffff);
        let low = self.b.ins().band(xbits, low_mask);
        let mbits = self.b.ins().bor(low, high);
        let m = as_f(self, mbits);
        let i_shift = self.b.ins().sshr_imm_u(i, 20);
        let k = self.b.ins().iadd(k1, i_shift);
        let one = f64c(self, 1f64.to_bits());
        let two = f64c(self, 2f64.to_bits());
        let f = self.b.ins().fsub(m, one);
        let two_f = self.b.ins().fadd(two, f);
        let s = self.b.ins().fdiv(f, two_f);
        let magic_bits = i64c(self, INT_TO_F64_MAGIC.to_bits() as i64);
        let dk = self.b.ins().iadd(k, magic_bits);
        let dk = as_f(self, dk);
        let magic = f64c(self, INT_TO_F64_MAGIC.to_bits());
        let dk = self.b.ins().fsub(dk, magic);
        let z = self.b.ins().fmul(s, s);
        let w = self.b.ins().fmul(z, z);
        let lg: Vec<Value> = [
            0x3fe5_5555_5555_5593u64,
            0x3fd9_9999_9997_fa04,
            0x3fd2_4924_9422_9359,
            0x3fcc_71c5_1d8e_78af,
            0x3fc7_4664_96cb_03de,
            0x3fc3_9a09_d078_c69f,
            0x3fc2_f112_df3e_5244,
        ]
        .iter()
        .map(|&c| f64c(self, c))
        .collect();
        // t1 = w * (lg2 + w * (lg4 + w * lg6))
        let t1 = self.b.ins().fmul(w, lg[5]);
        let t1 = self.b.ins().fadd(lg[3], t1);
        let t1 = self.b.ins().fmul(w, t1);
        let t1 = self.b.ins().fadd(lg[1], t1);
        let t1 = self.b.ins().fmul(w, t1);
        // t2 = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)))
        let t2 = self.b.ins().fmul(w, lg[6]);
        let t2 = self.b.ins().fadd(lg[4], t2);
        let t2 = self.b.ins().fmul(w, t2);
        let t2 = self.b.ins().fadd(lg[2], t2);
        let t2 = self.b.ins().fmul(w, t2);
        let t2 = self.b.ins().fadd(lg[0], t2);
        let t2 = self.b.ins().fmul(z, t2);
        let r = self.b.ins().fadd(t2, t1);
        let half = f64c(self, 0.5f64.to_bits());
        let hfsq = self.b.ins().fmul(half, f);
        let hfsq = self.b.ins().fmul(hfsq, f);
        let c2 = i64c(self, 0x6147a);
        let c3 = i64c(self, 0x6b851);
        let lo = self.b.ins().isub(mant, c2);
        let hi = self.b.ins().isub(c3, mant);
        let either = self.b.ins().bor(lo, hi);
        let zero_i = i64c(self, 0);
        let large_f = self.b.ins().icmp(IntCC::SignedGreaterThan, either, zero_i);
        let ln2_hi = f64c(self, 0x3fe6_2e42_fee0_0000);
        let ln2_lo = f64c(self, 0x3dea_39ef_3579_3c76);
        let (a, c) = self.log_combine(LogParts {
            f,
            s,
            hfsq,
            r,
            dk,
            ln2_hi,
            ln2_lo,
        });
        let mut res = self.blend(large_f, a, c);
        if !int_valued {
            let inf_bits = i64c(self, 0x7ff0_0000_0000_0000);
            let not_finite = self
                .b
                .ins()
                .icmp(IntCC::SignedGreaterThanOrEqual, bits, inf_bits);
            let xx = self.b.ins().fadd(x, x);
            res = self.blend(not_finite, xx, res);
        }
        let negative = self.b.ins().icmp(IntCC::SignedLessThan, bits, zero_i);
        let nan = f64c(self, NEG_NAN_F64);
        let res = self.blend(negative, nan, res);
        let abs_mask = i64c(self, 0x7fff_ffff_ffff_ffff);
        let abs = self.b.ins().band(bits, abs_mask);
        let is_zero = self.b.ins().icmp(IntCC::Equal, abs, zero_i);
        let neg_inf = f64c(self, f64::NEG_INFINITY.to_bits());
        self.blend(is_zero, neg_inf, res)
    }

    /// `voxcalc_ir::vmath::exp_f64` on two lanes: the same operations in the same order.
    fn exp_f64x2(&mut self, x: Value) -> Value {
        use voxcalc_ir::vmath::INT_TO_F64_MAGIC;
        let f64c = |e: &mut Self, v: f64| e.vconst(types::F64X2, 64, v.to_bits());
        let bitsc = |e: &mut Self, bits: u64| e.vconst(types::F64X2, 64, bits);
        let as_f = |e: &mut Self, v: Value| e.cast_vec(types::F64X2, v);
        let hi_clamp = f64c(self, 720.0);
        let lo_clamp = f64c(self, -760.0);
        let above = self.b.ins().fcmp(FloatCC::GreaterThan, x, hi_clamp);
        let above = as_f(self, above);
        let xc = self.b.ins().bitselect(above, hi_clamp, x);
        let below = self.b.ins().fcmp(FloatCC::LessThan, xc, lo_clamp);
        let below = as_f(self, below);
        let xc = self.b.ins().bitselect(below, lo_clamp, xc);
        let inv_ln2 = bitsc(self, 0x3ff7_1547_652b_82fe);
        let kf = self.b.ins().fmul(xc, inv_ln2);
        let kf = self.b.ins().nearest(kf);
        let ln2_hi = bitsc(self, 0x3fe6_2e42_fee0_0000);
        let ln2_lo = bitsc(self, 0x3dea_39ef_3579_3c76);
        let khi = self.b.ins().fmul(kf, ln2_hi);
        let hi = self.b.ins().fsub(xc, khi);
        let lo = self.b.ins().fmul(kf, ln2_lo);
        let r = self.b.ins().fsub(hi, lo);
        let t = self.b.ins().fmul(r, r);
        let p: Vec<Value> = [
            0x3fc5_5555_5555_553eu64,
            0xbf66_c16c_16be_bd93,
            0x3f11_566a_af25_de2c,
            0xbebb_bd41_c5d2_6bf1,
            0x3e66_3769_72be_a4d0,
        ]
        .iter()
        .map(|&c| bitsc(self, c))
        .collect();
        // c = r - t * (p1 + t * (p2 + t * (p3 + t * (p4 + t * p5))))
        let a = self.b.ins().fmul(t, p[4]);
        let a = self.b.ins().fadd(p[3], a);
        let a = self.b.ins().fmul(t, a);
        let a = self.b.ins().fadd(p[2], a);
        let a = self.b.ins().fmul(t, a);
        let a = self.b.ins().fadd(p[1], a);
        let a = self.b.ins().fmul(t, a);
        let a = self.b.ins().fadd(p[0], a);
        let a = self.b.ins().fmul(t, a);
        let c = self.b.ins().fsub(r, a);
        let rc = self.b.ins().fmul(r, c);
        let two = f64c(self, 2.0);
        let den = self.b.ins().fsub(two, c);
        let q = self.b.ins().fdiv(rc, den);
        let y = self.b.ins().fsub(lo, q);
        let y = self.b.ins().fsub(y, hi);
        let one = f64c(self, 1.0);
        let y = self.b.ins().fsub(one, y);
        let magic = f64c(self, INT_TO_F64_MAGIC);
        let k = self.b.ins().fadd(kf, magic);
        let k = self.cast_vec(types::I64X2, k);
        let magic_bits = self.splat_bits(64, INT_TO_F64_MAGIC.to_bits());
        let k = self.b.ins().isub(k, magic_bits);
        let k1 = self.b.ins().sshr_imm_u(k, 1);
        let k2 = self.b.ins().isub(k, k1);
        let bias = self.splat_bits(64, 1023);
        let scale = |e: &mut Self, k: Value| {
            let biased = e.b.ins().iadd(k, bias);
            let bits = e.b.ins().ishl_imm_u(biased, 52);
            e.cast_vec(types::F64X2, bits)
        };
        let s1 = scale(self, k1);
        let s2 = scale(self, k2);
        let res = self.b.ins().fmul(y, s1);
        let res = self.b.ins().fmul(res, s2);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        let nan = as_f(self, nan);
        let xx = self.b.ins().fadd(x, x);
        self.b.ins().bitselect(nan, xx, res)
    }

    /// `voxcalc_ir::vmath::exp_f32` on four lanes: the same operations in the same order.
    fn exp_f32x4(&mut self, x: Value) -> Value {
        let f32c = |e: &mut Self, bits: u32| e.splat_f32(f32::from_bits(bits));
        let hi_clamp = self.splat_f32(100.0);
        let lo_clamp = self.splat_f32(-110.0);
        let above = self.b.ins().fcmp(FloatCC::GreaterThan, x, hi_clamp);
        let above = self.cast_vec(types::F32X4, above);
        let xc = self.b.ins().bitselect(above, hi_clamp, x);
        let below = self.b.ins().fcmp(FloatCC::LessThan, xc, lo_clamp);
        let below = self.cast_vec(types::F32X4, below);
        let xc = self.b.ins().bitselect(below, lo_clamp, xc);
        let inv_ln2 = f32c(self, 0x3fb8_aa3b);
        let kf = self.b.ins().fmul(xc, inv_ln2);
        let kf = self.b.ins().nearest(kf);
        let ln2_hi = f32c(self, 0x3f31_7200);
        let ln2_lo = f32c(self, 0x35bf_be8e);
        let khi = self.b.ins().fmul(kf, ln2_hi);
        let hi = self.b.ins().fsub(xc, khi);
        let lo = self.b.ins().fmul(kf, ln2_lo);
        let r = self.b.ins().fsub(hi, lo);
        let t = self.b.ins().fmul(r, r);
        let p1 = f32c(self, 0x3e2a_aa8f);
        let p2 = f32c(self, 0xbb35_5215);
        let poly = self.b.ins().fmul(t, p2);
        let poly = self.b.ins().fadd(p1, poly);
        let poly = self.b.ins().fmul(t, poly);
        let c = self.b.ins().fsub(r, poly);
        let rc = self.b.ins().fmul(r, c);
        let two = self.splat_f32(2.0);
        let den = self.b.ins().fsub(two, c);
        let q = self.b.ins().fdiv(rc, den);
        let y = self.b.ins().fsub(lo, q);
        let y = self.b.ins().fsub(y, hi);
        let one = self.splat_f32(1.0);
        let y = self.b.ins().fsub(one, y);
        let k = self.b.ins().fcvt_to_sint_sat(types::I32X4, kf);
        let k1 = self.b.ins().sshr_imm_u(k, 1);
        let k2 = self.b.ins().isub(k, k1);
        let bias = self.splat_bits(32, 127);
        let scale = |e: &mut Self, k: Value| {
            let biased = e.b.ins().iadd(k, bias);
            let bits = e.b.ins().ishl_imm_u(biased, 23);
            e.cast_vec(types::F32X4, bits)
        };
        let s1 = scale(self, k1);
        let s2 = scale(self, k2);
        let res = self.b.ins().fmul(y, s1);
        let res = self.b.ins().fmul(res, s2);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        let nan = self.cast_vec(types::F32X4, nan);
        let xx = self.b.ins().fadd(x, x);
        self.b.ins().bitselect(nan, xx, res)
    }

    /// `int_valued`: `x` is an integer (or bool) converted to float (see [`Self::log_f32x4`]).
    fn unary(
        &mut self,
        op: UnaryOp,
        x: &Vals,
        dtype: DType,
        int_valued: bool,
    ) -> Result<Vals, JitError> {
        if dtype == DType::Bool {
            return match op {
                UnaryOp::Not => Ok(self.map(x, |e, v| e.b.ins().bnot(v))),
                _ => Err(JitError(format!("{op:?} on masks"))),
            };
        }
        if dtype.is_float() {
            let int_ty = int_vec(x.bits);
            return Ok(match op {
                UnaryOp::Neg => self.map(x, |e, v| e.b.ins().fneg(v)),
                UnaryOp::Abs => self.map(x, |e, v| e.b.ins().fabs(v)),
                UnaryOp::Sqrt => self.map(x, |e, v| e.b.ins().sqrt(v)),
                UnaryOp::Floor => self.map(x, |e, v| e.b.ins().floor(v)),
                UnaryOp::Ceil => self.map(x, |e, v| e.b.ins().ceil(v)),
                UnaryOp::Trunc => self.map(x, |e, v| e.b.ins().trunc(v)),
                UnaryOp::Rint => self.map(x, |e, v| e.b.ins().nearest(v)),
                UnaryOp::IsNan => self.map(x, |e, v| e.b.ins().fcmp(FloatCC::Unordered, v, v)),
                UnaryOp::IsInf | UnaryOp::IsFinite => {
                    let inf = Scalar::F64(f64::INFINITY).cast(dtype);
                    let inf = self.splat_scalar(inf).vecs[0];
                    let cc = if op == UnaryOp::IsInf {
                        FloatCC::Equal
                    } else {
                        FloatCC::LessThan
                    };
                    self.map(x, |e, v| {
                        let a = e.b.ins().fabs(v);
                        e.b.ins().fcmp(cc, a, inf)
                    })
                }
                UnaryOp::SignBit => {
                    let zero = self.splat_bits(x.bits, 0);
                    self.map(x, |e, v| {
                        let bits = e.cast_vec(int_ty, v);
                        e.b.ins().icmp(IntCC::SignedLessThan, bits, zero)
                    })
                }
                UnaryOp::Math(MathFn::Log) if dtype == DType::F32 => {
                    self.map(x, |e, v| e.log_f32x4(v, int_valued))
                }
                UnaryOp::Math(MathFn::Log) => self.map(x, |e, v| e.log_f64x2(v, int_valued)),
                UnaryOp::Math(MathFn::Exp) if dtype == DType::F32 => {
                    self.map(x, |e, v| e.exp_f32x4(v))
                }
                UnaryOp::Math(MathFn::Exp) => self.map(x, |e, v| e.exp_f64x2(v)),
                _ => return Err(JitError(format!("{op:?} has no vector form"))),
            });
        }
        Ok(match op {
            UnaryOp::Neg => self.map(x, |e, v| e.b.ins().ineg(v)),
            UnaryOp::Abs if dtype.is_signed_int() => self.map(x, |e, v| e.b.ins().iabs(v)),
            UnaryOp::Abs => x.clone(),
            UnaryOp::Not => self.map(x, |e, v| e.b.ins().bnot(v)),
            _ => return Err(JitError(format!("{op:?} has no vector form"))),
        })
    }

    fn binary(&mut self, op: BinaryOp, x: &Vals, y: &Vals, dtype: DType) -> Result<Vals, JitError> {
        if dtype == DType::Bool || matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
            let y = if dtype == DType::Bool {
                self.resize_mask(y, x.bits)
            } else {
                y.clone()
            };
            return Ok(match op {
                BinaryOp::And => self.zip(x, &y, |e, a, c| e.b.ins().band(a, c)),
                BinaryOp::Or => self.zip(x, &y, |e, a, c| e.b.ins().bor(a, c)),
                BinaryOp::Xor => self.zip(x, &y, |e, a, c| e.b.ins().bxor(a, c)),
                _ => return Err(JitError(format!("{op:?} on masks"))),
            });
        }
        if dtype.is_float() {
            let fcmp =
                |cc: FloatCC| move |e: &mut Self, a: Value, c: Value| e.b.ins().fcmp(cc, a, c);
            return Ok(match op {
                BinaryOp::Add => self.zip(x, y, |e, a, c| e.b.ins().fadd(a, c)),
                BinaryOp::Sub => self.zip(x, y, |e, a, c| e.b.ins().fsub(a, c)),
                BinaryOp::Mul => self.zip(x, y, |e, a, c| e.b.ins().fmul(a, c)),
                BinaryOp::Div => self.zip(x, y, |e, a, c| e.b.ins().fdiv(a, c)),
                BinaryOp::Min | BinaryOp::Max | BinaryOp::FMin | BinaryOp::FMax => {
                    let vec_ty = vec_type(dtype);
                    self.zip(x, y, |e, a, c| {
                        // As the scalar code: minimum(a, b) = a if isnan(a) else
                        // (b if isnan(b) or b <= a else a); fmin swaps the NaN roles.
                        let a_nan = e.b.ins().fcmp(FloatCC::Unordered, a, a);
                        let b_nan = e.b.ins().fcmp(FloatCC::Unordered, c, c);
                        let cc = if matches!(op, BinaryOp::Min | BinaryOp::FMin) {
                            FloatCC::LessThanOrEqual
                        } else {
                            FloatCC::GreaterThanOrEqual
                        };
                        let b_wins = e.b.ins().fcmp(cc, c, a);
                        let (first, second) = if matches!(op, BinaryOp::Min | BinaryOp::Max) {
                            (b_nan, a_nan)
                        } else {
                            (a_nan, b_nan)
                        };
                        let take_b = e.b.ins().bor(first, b_wins);
                        let take_b = e.cast_vec(vec_ty, take_b);
                        let pick = e.b.ins().bitselect(take_b, c, a);
                        let keep_a = e.cast_vec(vec_ty, second);
                        e.b.ins().bitselect(keep_a, a, pick)
                    })
                }
                BinaryOp::Eq => self.zip(x, y, fcmp(FloatCC::Equal)),
                BinaryOp::Ne => self.zip(x, y, fcmp(FloatCC::NotEqual)),
                BinaryOp::Lt => self.zip(x, y, fcmp(FloatCC::LessThan)),
                BinaryOp::Le => self.zip(x, y, fcmp(FloatCC::LessThanOrEqual)),
                BinaryOp::Gt => self.zip(x, y, fcmp(FloatCC::GreaterThan)),
                BinaryOp::Ge => self.zip(x, y, fcmp(FloatCC::GreaterThanOrEqual)),
                _ => return Err(JitError(format!("{op:?} has no vector form"))),
            });
        }
        let signed = dtype.is_signed_int();
        let cc = |s: IntCC, u: IntCC| if signed { s } else { u };
        let icmp = |cc: IntCC| move |e: &mut Self, a: Value, c: Value| e.b.ins().icmp(cc, a, c);
        Ok(match op {
            BinaryOp::Add => self.zip(x, y, |e, a, c| e.b.ins().iadd(a, c)),
            BinaryOp::Sub => self.zip(x, y, |e, a, c| e.b.ins().isub(a, c)),
            BinaryOp::Mul => self.zip(x, y, |e, a, c| e.b.ins().imul(a, c)),
            BinaryOp::Min if signed => self.zip(x, y, |e, a, c| e.b.ins().smin(a, c)),
            BinaryOp::Min => self.zip(x, y, |e, a, c| e.b.ins().umin(a, c)),
            BinaryOp::Max if signed => self.zip(x, y, |e, a, c| e.b.ins().smax(a, c)),
            BinaryOp::Max => self.zip(x, y, |e, a, c| e.b.ins().umax(a, c)),
            BinaryOp::Eq => self.zip(x, y, icmp(IntCC::Equal)),
            BinaryOp::Ne => self.zip(x, y, icmp(IntCC::NotEqual)),
            BinaryOp::Lt => self.zip(
                x,
                y,
                icmp(cc(IntCC::SignedLessThan, IntCC::UnsignedLessThan)),
            ),
            BinaryOp::Le => self.zip(
                x,
                y,
                icmp(cc(
                    IntCC::SignedLessThanOrEqual,
                    IntCC::UnsignedLessThanOrEqual,
                )),
            ),
            BinaryOp::Gt => self.zip(
                x,
                y,
                icmp(cc(IntCC::SignedGreaterThan, IntCC::UnsignedGreaterThan)),
            ),
            BinaryOp::Ge => self.zip(
                x,
                y,
                icmp(cc(
                    IntCC::SignedGreaterThanOrEqual,
                    IntCC::UnsignedGreaterThanOrEqual,
                )),
            ),
            _ => return Err(JitError(format!("{op:?} has no vector form"))),
        })
    }
}

/// Emits the vector code of one kernel's regions: the values of its instructions (as vectors)
/// and the loops of its reductions.
struct Body<'k, 'a, 'b> {
    e: Emitter<'a, 'b>,
    kernel: &'k Kernel,
    /// Each view's element address at the first voxel of the group (loop offsets excluded).
    ptrs: &'k [Value],
    uniforms_ptr: Value,
    values: Vec<Option<Vals>>,
    /// The index variable of each loop while its reduction is being emitted.
    loop_vars: Vec<Option<Variable>>,
}

impl Body<'_, '_, '_> {
    fn get(&self, v: &ValueId) -> Result<Vals, JitError> {
        self.values[v.index()]
            .clone()
            .ok_or_else(|| JitError(format!("{v} used before its definition")))
    }

    /// Emits the instructions of a region in order.
    fn region(&mut self, region: &[ValueId]) -> Result<(), JitError> {
        for &v in region {
            let vals = self.inst(v.index())?;
            self.values[v.index()] = Some(vals);
        }
        Ok(())
    }

    /// View `view`'s element address at the group's first voxel and the current iteration of
    /// the loops it walks.
    fn element_ptr(&mut self, view: usize) -> Result<Value, JitError> {
        let v = &self.kernel.views[view];
        let size = self.kernel.inputs[v.input.index()].dtype.size() as i64;
        let mut p = self.ptrs[view];
        for &(l, s) in &v.loop_strides {
            let var = self.loop_vars[l.index()]
                .ok_or_else(|| JitError(format!("a load uses {l} outside its loop")))?;
            let i = self.e.b.use_var(var);
            let off = crate::codegen::mul_const(self.e.b, i, s * size);
            p = self.e.b.ins().iadd(p, off);
        }
        Ok(p)
    }

    /// A sequential float sum (see [`sequential_float_sum`]): its loops, outermost first,
    /// with one vector accumulator per vector of voxels; each lane adds its own voxel's
    /// elements in loop order, starting from -0.0, as the scalar code does.
    fn reduce(&mut self, r: &Reduce, dtype: DType) -> Result<Vals, JitError> {
        let ty = vec_type(dtype);
        let init = self.e.splat_scalar(Scalar::F64(-0.0).cast(dtype));
        let accs: Vec<Variable> = init
            .vecs
            .iter()
            .map(|&v| {
                let var = self.e.b.declare_var(ty);
                self.e.b.def_var(var, v);
                var
            })
            .collect();
        // Constants first emitted inside the loops do not dominate the code after them.
        let consts_before = self.e.consts.clone();
        let bits = dtype.size() as u32 * 8;
        if r.loops
            .iter()
            .any(|l| self.kernel.loops[l.index()].len == 0)
        {
            // No element: the sum is its start value.
            return Ok(init);
        }
        // Loops of known, non-zero length: each tests at its end (one block per loop).
        let mut bodies = Vec::with_capacity(r.loops.len());
        for &l in r.loops.iter().rev() {
            let len = self.kernel.loops[l.index()].len;
            let b = &mut *self.e.b;
            let var = b.declare_var(types::I64);
            let zero = b.ins().iconst(types::I64, 0);
            b.def_var(var, zero);
            let body = b.create_block();
            b.ins().jump(body, &[]);
            b.switch_to_block(body);
            self.loop_vars[l.index()] = Some(var);
            bodies.push((l, var, body, len));
        }
        self.region(&r.body)?;
        let x = self.get(&r.elem)?;
        for (&acc, &xv) in accs.iter().zip(&x.vecs) {
            let a = self.e.b.use_var(acc);
            let sum = self.e.b.ins().fadd(a, xv);
            self.e.b.def_var(acc, sum);
        }
        for (l, var, body, len) in bodies.into_iter().rev() {
            let b = &mut *self.e.b;
            let cur = b.use_var(var);
            let next = b.ins().iadd_imm_s(cur, 1);
            b.def_var(var, next);
            let more = b
                .ins()
                .icmp_imm_s(IntCC::UnsignedLessThan, next, len as i64);
            let exit = b.create_block();
            b.ins().brif(more, body, &[], exit, &[]);
            b.switch_to_block(exit);
            self.loop_vars[l.index()] = None;
        }
        self.e.consts = consts_before;
        Ok(Vals {
            bits,
            vecs: accs.iter().map(|&a| self.e.b.use_var(a)).collect(),
        })
    }

    /// The vectors of instruction `i`.
    fn inst(&mut self, i: usize) -> Result<Vals, JitError> {
        let kernel = self.kernel;
        let uniforms_ptr = self.uniforms_ptr;
        let inst = &kernel.insts[i];
        Ok(match &inst.kind {
            InstKind::Const(s) => self.e.splat_scalar(*s),
            InstKind::Uniform(n) => {
                let ty = crate::codegen::clif_type(inst.dtype);
                let x = self.e.b.ins().load(
                    ty,
                    MemFlagsData::new().with_notrap(),
                    uniforms_ptr,
                    (*n as i32) * 8,
                );
                self.e.splat_value(inst.dtype, x)
            }
            InstKind::Load(view) => {
                let p = self.element_ptr(view.index())?;
                let dtype = kernel.inputs[kernel.views[view.index()].input.index()].dtype;
                if kernel.views[view.index()].domain_strides[0] == 0 {
                    let ty = crate::codegen::clif_type(dtype);
                    let x = self
                        .e
                        .b
                        .ins()
                        .load(ty, MemFlagsData::new().with_notrap(), p, 0);
                    self.e.splat_value(dtype, x)
                } else {
                    self.e.load(dtype, p)
                }
            }
            InstKind::Cast(a) => {
                let x = self.get(a)?;
                self.e.cast(&x, kernel.dtype(*a), inst.dtype)?
            }
            InstKind::Unary(op, a) => {
                let x = self.get(a)?;
                // An integer converted to float: finite, and 0 or at least 1 in magnitude.
                let int_valued = match kernel.insts[a.index()].kind {
                    InstKind::Cast(src) => !kernel.dtype(src).is_float(),
                    _ => false,
                };
                self.e.unary(*op, &x, kernel.dtype(*a), int_valued)?
            }
            InstKind::Binary(op, a, c) => {
                let (x, y) = (self.get(a)?, self.get(c)?);
                self.e.binary(*op, &x, &y, kernel.dtype(*a))?
            }
            InstKind::Select(c, a, el) => {
                let (x, y) = (self.get(a)?, self.get(el)?);
                let bits = x.bits;
                let zero_bits = |v: &ValueId| matches!(kernel.insts[v.index()].kind, InstKind::Const(s) if s.to_bits() == 0);
                // `where(n != 0, x, 0)` (or unsigned `n > 0`): `x` AND NOT `n == 0`, one
                // compare instead of a compare and a complement.
                let nonzero_of = match kernel.insts[c.index()].kind {
                    InstKind::Binary(op @ (BinaryOp::Ne | BinaryOp::Gt), n, z)
                        if zero_bits(&z)
                            && kernel.dtype(n).is_int()
                            && (op == BinaryOp::Ne || !kernel.dtype(n).is_signed_int()) =>
                    {
                        Some(n)
                    }
                    _ => None,
                };
                if let (Some(n), true, false) =
                    (nonzero_of, zero_bits(el), inst.dtype == DType::Bool)
                {
                    let nv = self.get(&n)?;
                    let zero = self.e.splat_bits(nv.bits, 0);
                    let is_zero = Vals {
                        bits: nv.bits,
                        vecs: nv
                            .vecs
                            .iter()
                            .map(|&v| self.e.b.ins().icmp(IntCC::Equal, v, zero))
                            .collect(),
                    };
                    let m = self.e.resize_mask(&is_zero, bits);
                    let ty = vec_type(inst.dtype);
                    let vecs = (0..x.vecs.len())
                        .map(|k| {
                            let mk = self.e.cast_vec(ty, m.vecs[k]);
                            self.e.b.ins().band_not(x.vecs[k], mk)
                        })
                        .collect();
                    return Ok(Vals { bits, vecs });
                }
                let m = self.e.resize_mask(&self.get(c)?, bits);
                let ty = if inst.dtype == DType::Bool {
                    int_vec(bits)
                } else {
                    vec_type(inst.dtype)
                };
                // Two bool operands may carry different mask widths.
                let y = if inst.dtype == DType::Bool {
                    self.e.resize_mask(&y, bits)
                } else {
                    y
                };
                // An arm whose every bit is zero makes the select one AND with the mask.
                let (then_zero, else_zero) = (zero_bits(a), zero_bits(el));
                let vecs = (0..x.vecs.len())
                    .map(|k| {
                        if !(else_zero || then_zero) {
                            return self.e.blend(m.vecs[k], x.vecs[k], y.vecs[k]);
                        }
                        let mk = self.e.cast_vec(ty, m.vecs[k]);
                        if else_zero {
                            self.e.b.ins().band(x.vecs[k], mk)
                        } else {
                            self.e.b.ins().band_not(y.vecs[k], mk)
                        }
                    })
                    .collect();
                Vals { bits, vecs }
            }
            InstKind::Reduce(r) => self.reduce(r, inst.dtype)?,
        })
    }
}

/// Emits the vector body for one group of [`VectorPlan::lanes`] voxels: `ptrs[view]` are the
/// element addresses of the first voxel, `out_p` the output address of the first voxel.
pub(crate) fn body(
    b: &mut FunctionBuilder<'_>,
    kernel: &Kernel,
    vp: VectorPlan,
    ptrs: &[Value],
    uniforms_ptr: Value,
    out_p: Value,
) -> Result<(), JitError> {
    let e = Emitter {
        b,
        consts: HashMap::new(),
        lanes: vp.lanes as u32,
    };
    let mut cx = Body {
        e,
        kernel,
        ptrs,
        uniforms_ptr,
        values: vec![None; kernel.insts.len()],
        loop_vars: vec![None; kernel.loops.len()],
    };
    cx.region(&kernel.body)?;
    let out = cx.get(&kernel.output)?;
    cx.e.store(kernel.output_dtype(), &out, out_p);
    Ok(())
}
