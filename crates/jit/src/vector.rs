//! The 128-bit SIMD fast path for element-wise kernels of one dtype.
//!
//! A kernel qualifies when it has no reduction and no call, every non-bool value has one
//! dtype `T` (float32/float64 or an integer of at most 32 bits), bool values are only
//! comparison results, tests, masks and casts between `T` and bool, every view walks domain
//! axis 0 with stride 1 (a vector load) or 0 (a broadcast), inputs are in native byte order,
//! and the output is `T`. Then the row loop computes 16 bytes of voxels per iteration
//! (f32x4, f64x2, i32x4, i16x8, i8x16) and the scalar body handles the rest of the row.
//! Every vector operation is the lane-wise IEEE / wrapping operation the scalar code uses, so
//! results are identical bit for bit (the differential tests run both paths).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use voxcalc_ir::{BinaryOp, ByteOrder, InstKind, Kernel, Scalar, UnaryOp, ValueId};
use voxcalc_types::DType;

use crate::JitError;

/// The vector shape of a qualifying kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VectorPlan {
    /// The one non-bool dtype.
    pub dtype: DType,
    /// The vector type of `dtype` values.
    pub vec: Type,
    /// The integer vector type of masks (bool values) with the same lanes.
    pub mask: Type,
    /// Voxels per vector.
    pub lanes: i64,
}

/// Decides whether `kernel` can use the vector path.
pub(crate) fn plan(kernel: &Kernel) -> Option<VectorPlan> {
    let mut dtype = None;
    for inst in &kernel.insts {
        if inst.dtype != DType::Bool {
            if dtype.is_some_and(|d| d != inst.dtype) {
                return None;
            }
            dtype = Some(inst.dtype);
        }
    }
    let dtype = dtype?;
    let (vec, mask) = match dtype {
        DType::F32 => (types::F32X4, types::I32X4),
        DType::F64 => (types::F64X2, types::I64X2),
        DType::I32 | DType::U32 => (types::I32X4, types::I32X4),
        DType::I16 | DType::U16 => (types::I16X8, types::I16X8),
        DType::I8 | DType::U8 => (types::I8X16, types::I8X16),
        _ => return None,
    };
    if kernel.domain.is_empty() || kernel.output_dtype() != dtype {
        return None;
    }
    for view in &kernel.views {
        let input = &kernel.inputs[view.input.index()];
        if input.byte_order != ByteOrder::Native
            || !view.loop_strides.is_empty()
            || !matches!(view.domain_strides.first(), Some(0) | Some(1))
        {
            return None;
        }
    }
    let float = dtype.is_float();
    for inst in &kernel.insts {
        let operand = |v: &ValueId| kernel.dtype(*v);
        let ok = match &inst.kind {
            InstKind::Const(_) => true,
            InstKind::Uniform(_) | InstKind::Load(_) => inst.dtype == dtype,
            InstKind::Cast(a) => {
                let from = operand(a);
                from == inst.dtype || from == DType::Bool || inst.dtype == DType::Bool
            }
            InstKind::Unary(op, a) => match (op, operand(a) == DType::Bool) {
                (UnaryOp::Not, true) => true,
                (_, true) => false,
                (UnaryOp::Neg | UnaryOp::Abs, false) => true,
                (UnaryOp::Not, false) => !float,
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
                ) => float,
                (UnaryOp::Math(_) | UnaryOp::RoundF16, false) => false,
            },
            InstKind::Binary(op, a, _) => {
                let on_bool = operand(a) == DType::Bool;
                match op {
                    BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => on_bool || !float,
                    _ if on_bool => false,
                    BinaryOp::Add | BinaryOp::Sub => true,
                    BinaryOp::Mul => float || dtype.size() > 1,
                    BinaryOp::Div | BinaryOp::FMin | BinaryOp::FMax => float,
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
            InstKind::Reduce(_) => false,
        };
        if !ok {
            return None;
        }
    }
    Some(VectorPlan {
        dtype,
        vec,
        mask,
        lanes: 16 / dtype.size() as i64,
    })
}

/// Emits the vector body for one group of voxels: `ptrs[view]` are the element addresses of
/// lane 0; returns the output vector.
pub(crate) fn body(
    b: &mut FunctionBuilder<'_>,
    kernel: &Kernel,
    vp: VectorPlan,
    ptrs: &[Value],
    uniforms_ptr: Value,
) -> Result<Value, JitError> {
    let mut values: Vec<Option<Value>> = vec![None; kernel.insts.len()];
    let scalar_ty = vp.vec.lane_type();
    let lane_bits = scalar_ty.bits();
    let int_lane = types::Type::int(lane_bits as u16).expect("8 to 64 bits");
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let as_vec = |b: &mut FunctionBuilder<'_>, m: Value| {
        if vp.vec == vp.mask {
            m
        } else {
            b.ins().bitcast(vp.vec, le, m)
        }
    };
    let as_mask = |b: &mut FunctionBuilder<'_>, v: Value| {
        if vp.vec == vp.mask {
            v
        } else {
            b.ins().bitcast(vp.mask, le, v)
        }
    };
    let splat_const = |b: &mut FunctionBuilder<'_>, s: Scalar| -> Value {
        let x = match s {
            Scalar::F32(x) => b.ins().f32const(Ieee32::with_bits(x.to_bits())),
            Scalar::F64(x) => b.ins().f64const(Ieee64::with_bits(x.to_bits())),
            other => {
                let bits = other.to_bits();
                let masked = if lane_bits == 64 {
                    bits
                } else {
                    bits & ((1u64 << lane_bits) - 1)
                };
                b.ins().iconst(scalar_ty, masked as i64)
            }
        };
        b.ins().splat(vp.vec, x)
    };
    let all_ones = |b: &mut FunctionBuilder<'_>| {
        let x = b
            .ins()
            .iconst(int_lane, -1i64 as u64 as i64 & mask_bits(lane_bits));
        b.ins().splat(vp.mask, x)
    };
    let signed = vp.dtype.is_signed_int();
    for (i, inst) in kernel.insts.iter().enumerate() {
        let get = |v: &ValueId| values[v.index()].expect("operands come first");
        let is_bool = inst.dtype == DType::Bool;
        let v = match &inst.kind {
            InstKind::Const(s) => {
                if is_bool {
                    if s.truthy() {
                        all_ones(b)
                    } else {
                        let z = b.ins().iconst(int_lane, 0);
                        b.ins().splat(vp.mask, z)
                    }
                } else {
                    splat_const(b, *s)
                }
            }
            InstKind::Uniform(n) => {
                let x = b.ins().load(
                    scalar_ty,
                    MemFlagsData::new().with_notrap(),
                    uniforms_ptr,
                    (*n as i32) * 8,
                );
                b.ins().splat(vp.vec, x)
            }
            InstKind::Load(view) => {
                let p = ptrs[view.index()];
                let flags = MemFlagsData::new().with_notrap();
                if kernel.views[view.index()].domain_strides[0] == 0 {
                    let x = b.ins().load(scalar_ty, flags, p, 0);
                    b.ins().splat(vp.vec, x)
                } else {
                    b.ins().load(vp.vec, flags, p, 0)
                }
            }
            InstKind::Cast(a) => {
                let from = kernel.dtype(*a);
                let x = get(a);
                if from == inst.dtype {
                    x
                } else if is_bool {
                    // x != 0 (NaN is true).
                    if vp.dtype.is_float() {
                        let z = splat_const(b, Scalar::zero(vp.dtype));
                        b.ins().fcmp(FloatCC::NotEqual, x, z)
                    } else {
                        let z = splat_const(b, Scalar::zero(vp.dtype));
                        b.ins().icmp(IntCC::NotEqual, x, z)
                    }
                } else {
                    let one = splat_const(b, Scalar::one(vp.dtype));
                    let zero = splat_const(b, Scalar::zero(vp.dtype));
                    let m = as_vec(b, x);
                    b.ins().bitselect(m, one, zero)
                }
            }
            InstKind::Unary(op, a) => {
                let x = get(a);
                if is_bool && *op == UnaryOp::Not && kernel.dtype(*a) == DType::Bool {
                    b.ins().bnot(x)
                } else if vp.dtype.is_float() {
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
                            let ax = b.ins().fabs(x);
                            let inf = splat_const(b, Scalar::F64(f64::INFINITY).cast(vp.dtype));
                            let cc = if *op == UnaryOp::IsInf {
                                FloatCC::Equal
                            } else {
                                FloatCC::LessThan
                            };
                            b.ins().fcmp(cc, ax, inf)
                        }
                        UnaryOp::SignBit => {
                            let bits = as_mask(b, x);
                            let z = b.ins().iconst(int_lane, 0);
                            let z = b.ins().splat(vp.mask, z);
                            b.ins().icmp(IntCC::SignedLessThan, bits, z)
                        }
                        _ => return Err(JitError(format!("{op:?} has no vector form"))),
                    }
                } else {
                    match op {
                        UnaryOp::Neg => b.ins().ineg(x),
                        UnaryOp::Abs if signed => b.ins().iabs(x),
                        UnaryOp::Abs => x,
                        UnaryOp::Not => b.ins().bnot(x),
                        _ => return Err(JitError(format!("{op:?} has no vector form"))),
                    }
                }
            }
            InstKind::Binary(op, a, c) => {
                let (x, y) = (get(a), get(c));
                let on_bool = kernel.dtype(*a) == DType::Bool;
                if on_bool || matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
                    match op {
                        BinaryOp::And => b.ins().band(x, y),
                        BinaryOp::Or => b.ins().bor(x, y),
                        BinaryOp::Xor => b.ins().bxor(x, y),
                        _ => return Err(JitError(format!("{op:?} on masks"))),
                    }
                } else if vp.dtype.is_float() {
                    match op {
                        BinaryOp::Add => b.ins().fadd(x, y),
                        BinaryOp::Sub => b.ins().fsub(x, y),
                        BinaryOp::Mul => b.ins().fmul(x, y),
                        BinaryOp::Div => b.ins().fdiv(x, y),
                        BinaryOp::Min | BinaryOp::Max | BinaryOp::FMin | BinaryOp::FMax => {
                            // As the scalar code: minimum(a, b) = a if isnan(a) else
                            // (b if isnan(b) or b <= a else a); fmin swaps the NaN roles.
                            let a_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
                            let b_nan = b.ins().fcmp(FloatCC::Unordered, y, y);
                            let cc = if matches!(op, BinaryOp::Min | BinaryOp::FMin) {
                                FloatCC::LessThanOrEqual
                            } else {
                                FloatCC::GreaterThanOrEqual
                            };
                            let b_wins = b.ins().fcmp(cc, y, x);
                            let (first, second) = if matches!(op, BinaryOp::Min | BinaryOp::Max) {
                                (b_nan, a_nan)
                            } else {
                                (a_nan, b_nan)
                            };
                            let take_b = b.ins().bor(first, b_wins);
                            let take_b = as_vec(b, take_b);
                            let pick = b.ins().bitselect(take_b, y, x);
                            let keep_a = as_vec(b, second);
                            b.ins().bitselect(keep_a, x, pick)
                        }
                        BinaryOp::Eq => b.ins().fcmp(FloatCC::Equal, x, y),
                        BinaryOp::Ne => b.ins().fcmp(FloatCC::NotEqual, x, y),
                        BinaryOp::Lt => b.ins().fcmp(FloatCC::LessThan, x, y),
                        BinaryOp::Le => b.ins().fcmp(FloatCC::LessThanOrEqual, x, y),
                        BinaryOp::Gt => b.ins().fcmp(FloatCC::GreaterThan, x, y),
                        BinaryOp::Ge => b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, y),
                        _ => return Err(JitError(format!("{op:?} has no vector form"))),
                    }
                } else {
                    let cc = |s: IntCC, u: IntCC| if signed { s } else { u };
                    match op {
                        BinaryOp::Add => b.ins().iadd(x, y),
                        BinaryOp::Sub => b.ins().isub(x, y),
                        BinaryOp::Mul => b.ins().imul(x, y),
                        BinaryOp::Min if signed => b.ins().smin(x, y),
                        BinaryOp::Min => b.ins().umin(x, y),
                        BinaryOp::Max if signed => b.ins().smax(x, y),
                        BinaryOp::Max => b.ins().umax(x, y),
                        BinaryOp::Eq => b.ins().icmp(IntCC::Equal, x, y),
                        BinaryOp::Ne => b.ins().icmp(IntCC::NotEqual, x, y),
                        BinaryOp::Lt => {
                            b.ins()
                                .icmp(cc(IntCC::SignedLessThan, IntCC::UnsignedLessThan), x, y)
                        }
                        BinaryOp::Le => b.ins().icmp(
                            cc(IntCC::SignedLessThanOrEqual, IntCC::UnsignedLessThanOrEqual),
                            x,
                            y,
                        ),
                        BinaryOp::Gt => b.ins().icmp(
                            cc(IntCC::SignedGreaterThan, IntCC::UnsignedGreaterThan),
                            x,
                            y,
                        ),
                        BinaryOp::Ge => b.ins().icmp(
                            cc(
                                IntCC::SignedGreaterThanOrEqual,
                                IntCC::UnsignedGreaterThanOrEqual,
                            ),
                            x,
                            y,
                        ),
                        _ => return Err(JitError(format!("{op:?} has no vector form"))),
                    }
                }
            }
            InstKind::Select(c, a, e) => {
                let (x, y) = (get(a), get(e));
                let m = if is_bool { get(c) } else { as_vec(b, get(c)) };
                b.ins().bitselect(m, x, y)
            }
            InstKind::Reduce(_) => return Err(JitError("reduction in a vector kernel".into())),
        };
        values[i] = Some(v);
    }
    values[kernel.output.index()].ok_or_else(|| JitError("output not computed".into()))
}

fn mask_bits(bits: u32) -> i64 {
    if bits == 64 {
        -1
    } else {
        ((1u64 << bits) - 1) as i64
    }
}
