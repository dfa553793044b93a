//! The reference interpreter: evaluates a kernel one voxel at a time with the scalar semantics of
//! [`crate::scalar`]. Slow and obviously correct; it is the oracle the JIT is tested against.

use voxcalc_types::DType;

use crate::exec::{check_run, RunArgs, RunError};
use crate::kernel::{BinaryOp, InstKind, Kernel, Reduce, ReduceOp, SumOrder, UnaryOp, ValueId};
use crate::scalar::{self, int_to, int_value, Scalar};

/// Computes domain points `start..end` of `kernel` into `out` (native byte order, dense).
pub fn run(
    kernel: &Kernel,
    args: &RunArgs<'_>,
    out: &mut [u8],
    start: u64,
    end: u64,
) -> Result<(), RunError> {
    check_run(kernel, args, out, start, end)?;
    let out_size = kernel.output_dtype().size();
    let mut interp = Interp {
        kernel,
        args,
        values: vec![None; kernel.insts.len()],
        domain_idx: vec![0; kernel.domain.len()],
        loop_idx: vec![0; kernel.loops.len()],
    };
    for (i, voxel_idx) in (start..end).enumerate() {
        let mut rest = voxel_idx;
        for (k, &len) in kernel.domain.iter().enumerate() {
            interp.domain_idx[k] = rest % len;
            rest /= len;
        }
        interp.eval_region(&kernel.body);
        let value = interp.get(kernel.output);
        out[i * out_size..(i + 1) * out_size].copy_from_slice(&value.to_le_bytes());
    }
    Ok(())
}

/// Evaluates a kernel over its whole domain into a new buffer.
pub fn run_all(kernel: &Kernel, args: &RunArgs<'_>) -> Result<Vec<u8>, RunError> {
    let n = kernel.n_voxels();
    let mut out = vec![0u8; n as usize * kernel.output_dtype().size()];
    run(kernel, args, &mut out, 0, n)?;
    Ok(out)
}

struct Interp<'k, 'a> {
    kernel: &'k Kernel,
    args: &'k RunArgs<'a>,
    values: Vec<Option<Scalar>>,
    domain_idx: Vec<u64>,
    loop_idx: Vec<u64>,
}

impl Interp<'_, '_> {
    fn get(&self, v: ValueId) -> Scalar {
        self.values[v.index()].expect("validated kernels use values after their definition")
    }

    fn eval_region(&mut self, region: &[ValueId]) {
        for &v in region {
            let value = self.eval(v);
            self.values[v.index()] = Some(value);
        }
    }

    fn eval(&mut self, v: ValueId) -> Scalar {
        let inst = &self.kernel.insts[v.index()];
        match &inst.kind {
            InstKind::Const(s) => *s,
            InstKind::Uniform(n) => Scalar::from_bits(inst.dtype, self.args.uniforms[*n as usize]),
            InstKind::Load(view_id) => {
                let view = &self.kernel.views[view_id.index()];
                let input = &self.kernel.inputs[view.input.index()];
                let mut offset = view.offset;
                for (k, &s) in view.domain_strides.iter().enumerate() {
                    offset += self.domain_idx[k] as i64 * s;
                }
                for &(l, s) in &view.loop_strides {
                    offset += self.loop_idx[l.index()] as i64 * s;
                }
                let buf = &self.args.inputs[view.input.index()];
                let size = input.dtype.size();
                let at = (buf.base as i64 + offset * size as i64) as usize;
                let mut bytes = buf.bytes[at..at + size].to_vec();
                if input.byte_order == crate::kernel::ByteOrder::Swapped {
                    bytes.reverse();
                }
                Scalar::from_le_bytes(input.dtype, &bytes)
            }
            InstKind::Cast(a) => self.get(*a).cast(inst.dtype),
            InstKind::Unary(op, a) => unary(*op, self.get(*a)),
            InstKind::Binary(op, a, b) => binary(*op, self.get(*a), self.get(*b)),
            InstKind::Select(c, a, b) => {
                if self.get(*c).truthy() {
                    self.get(*a)
                } else {
                    self.get(*b)
                }
            }
            InstKind::Reduce(r) => {
                let r: &Reduce = r;
                self.reduce(r, inst.dtype)
            }
        }
    }

    /// Runs the reduction's loops (first loop fastest) and collects the included elements.
    fn reduce(&mut self, r: &Reduce, result_dtype: DType) -> Scalar {
        let lens: Vec<u64> = r
            .loops
            .iter()
            .map(|l| self.kernel.loops[l.index()].len)
            .collect();
        let total: u64 = lens.iter().product();
        let inner_len = lens[0];
        let elem_dtype = self.kernel.dtype(r.elem);
        let mut acc = Accumulator::new(r.op, elem_dtype);
        let block = self.kernel.pairwise_block(r);
        for flat in 0..total {
            let mut rest = flat;
            for (j, l) in r.loops.iter().enumerate() {
                self.loop_idx[l.index()] = rest % lens[j];
                rest /= lens[j];
            }
            self.eval_region(&r.body);
            let included = r.mask.is_none_or(|m| self.get(m).truthy());
            if included {
                acc.add(self.get(r.elem));
                if block.is_some_and(|b| acc.kept.len() as u64 == b) {
                    acc.flush_pairwise();
                }
            }
            if (flat + 1) % inner_len == 0 {
                acc.end_run();
            }
        }
        let res = acc.finish();
        debug_assert_eq!(res.dtype(), result_dtype);
        res
    }
}

/// The state of one reduction.
struct Accumulator {
    op: ReduceOp,
    dtype: DType,
    acc: Option<Scalar>,
    /// Index of the next included element, and the best index so far (argmin/argmax).
    count: i64,
    best_idx: i64,
    kept: Vec<Scalar>,
}

impl Accumulator {
    fn new(op: ReduceOp, dtype: DType) -> Accumulator {
        Accumulator {
            op,
            dtype,
            acc: None,
            count: 0,
            best_idx: 0,
            kept: Vec::new(),
        }
    }

    fn add(&mut self, x: Scalar) {
        let idx = self.count;
        self.count += 1;
        let Some(acc) = self.acc else {
            match self.op {
                ReduceOp::Sum(
                    SumOrder::Pairwise | SumOrder::PairwiseAll | SumOrder::PairwiseGlobal,
                )
                | ReduceOp::Median
                | ReduceOp::Quantile { .. } => {
                    self.kept.push(x);
                }
                ReduceOp::Count => {}
                _ => {
                    self.acc = Some(match self.op {
                        ReduceOp::Any | ReduceOp::All => Scalar::Bool(x.truthy()),
                        // Float sums start from -0.0 (numpy's identity keeps a sum of -0.0
                        // negative); adding keeps the first element's value otherwise.
                        ReduceOp::Sum(_) => binary(BinaryOp::Add, neg_zero(self.dtype), x),
                        _ => x,
                    });
                    self.best_idx = 0;
                }
            }
            return;
        };
        let next = match self.op {
            ReduceOp::Sum(
                SumOrder::Pairwise | SumOrder::PairwiseAll | SumOrder::PairwiseGlobal,
            ) => {
                self.kept.push(x);
                acc
            }
            ReduceOp::Sum(_) => binary(BinaryOp::Add, acc, x),
            ReduceOp::Prod => binary(BinaryOp::Mul, acc, x),
            ReduceOp::Min => binary(BinaryOp::Min, acc, x),
            ReduceOp::Max => binary(BinaryOp::Max, acc, x),
            ReduceOp::FMin => binary(BinaryOp::FMin, acc, x),
            ReduceOp::FMax => binary(BinaryOp::FMax, acc, x),
            ReduceOp::Any => Scalar::Bool(acc.truthy() || x.truthy()),
            ReduceOp::All => Scalar::Bool(acc.truthy() && x.truthy()),
            ReduceOp::ArgMin | ReduceOp::ArgMax => {
                // The first NaN wins; otherwise a strictly better value replaces the best.
                let better = if acc.is_nan() {
                    false
                } else if x.is_nan() {
                    true
                } else if self.op == ReduceOp::ArgMin {
                    binary(BinaryOp::Lt, x, acc).truthy()
                } else {
                    binary(BinaryOp::Gt, x, acc).truthy()
                };
                if better {
                    self.best_idx = idx;
                    x
                } else {
                    acc
                }
            }
            ReduceOp::Count | ReduceOp::Median | ReduceOp::Quantile { .. } => {
                unreachable!("kept reductions have no accumulator")
            }
        };
        self.acc = Some(next);
    }

    /// Ends one run of the innermost loop: a pairwise sum folds its run into the total.
    fn end_run(&mut self) {
        if self.op == ReduceOp::Sum(SumOrder::Pairwise) {
            self.flush_pairwise();
        }
    }

    fn flush_pairwise(&mut self) {
        if !self.kept.is_empty() {
            let run = match self.dtype {
                DType::F32 => {
                    let v: Vec<f32> = self.kept.iter().map(|s| s.as_f64() as f32).collect();
                    Scalar::F32(scalar::pairwise_sum(&v))
                }
                DType::F64 => {
                    let v: Vec<f64> = self.kept.iter().map(|s| s.as_f64()).collect();
                    Scalar::F64(scalar::pairwise_sum(&v))
                }
                // Integer sums are exact in any order.
                _ => self.kept.iter().fold(Scalar::zero(self.dtype), |a, &b| {
                    binary(BinaryOp::Add, a, b)
                }),
            };
            self.kept.clear();
            self.acc = Some(match self.acc {
                None => run,
                Some(acc) => binary(BinaryOp::Add, acc, run),
            });
        }
    }

    fn finish(mut self) -> Scalar {
        let dtype = self.dtype;
        match self.op {
            ReduceOp::Count => Scalar::I64(self.count),
            ReduceOp::ArgMin | ReduceOp::ArgMax => Scalar::I64(self.best_idx),
            ReduceOp::Median | ReduceOp::Quantile { .. } => {
                let op = self.op;
                match dtype {
                    DType::F32 => {
                        let mut v: Vec<f32> = self.kept.iter().map(|s| s.as_f64() as f32).collect();
                        Scalar::F32(match op {
                            ReduceOp::Quantile { q, .. } => scalar::quantile_f32(&mut v, q),
                            _ => scalar::median_f32(&mut v),
                        })
                    }
                    _ => {
                        let mut v: Vec<f64> = self.kept.iter().map(|s| s.as_f64()).collect();
                        Scalar::F64(match op {
                            ReduceOp::Quantile { q, data_dtype } => {
                                scalar::quantile_f64(&mut v, q, data_dtype)
                            }
                            _ => scalar::median_f64(&mut v),
                        })
                    }
                }
            }
            _ => {
                self.flush_pairwise();
                match self.acc {
                    Some(a) => a,
                    None => empty_result(self.op, dtype),
                }
            }
        }
    }
}

fn neg_zero(dtype: DType) -> Scalar {
    match dtype {
        DType::F32 => Scalar::F32(-0.0),
        DType::F64 => Scalar::F64(-0.0),
        other => Scalar::zero(other),
    }
}

/// The result of a reduction with no included element. numpy raises for min/max/argmin/argmax
/// of an empty selection; kernels cannot raise, so they give NaN (floats) or 0.
pub fn empty_result(op: ReduceOp, dtype: DType) -> Scalar {
    match op {
        ReduceOp::Sum(_) => neg_zero(dtype),
        ReduceOp::Prod => Scalar::one(dtype),
        ReduceOp::Any => Scalar::Bool(false),
        ReduceOp::All => Scalar::Bool(true),
        ReduceOp::ArgMin | ReduceOp::ArgMax | ReduceOp::Count => Scalar::I64(0),
        ReduceOp::Min | ReduceOp::Max | ReduceOp::FMin | ReduceOp::FMax => match dtype {
            DType::F32 => Scalar::F32(f32::NAN),
            DType::F64 => Scalar::F64(f64::NAN),
            other => Scalar::zero(other),
        },
        ReduceOp::Median | ReduceOp::Quantile { .. } => match dtype {
            DType::F32 => Scalar::F32(f32::NAN),
            _ => Scalar::F64(f64::NAN),
        },
    }
}

/// Applies a unary operation with numpy's semantics.
pub fn unary(op: UnaryOp, a: Scalar) -> Scalar {
    match a {
        Scalar::F32(x) => match op {
            UnaryOp::Neg => Scalar::F32(-x),
            UnaryOp::Abs => Scalar::F32(x.abs()),
            UnaryOp::Sqrt => Scalar::F32(x.sqrt()),
            UnaryOp::Floor => Scalar::F32(x.floor()),
            UnaryOp::Ceil => Scalar::F32(x.ceil()),
            UnaryOp::Trunc => Scalar::F32(x.trunc()),
            UnaryOp::Rint => Scalar::F32(x.round_ties_even()),
            UnaryOp::RoundF16 => Scalar::F32(crate::scalar::round_f16(x)),
            UnaryOp::IsNan => Scalar::Bool(x.is_nan()),
            UnaryOp::IsInf => Scalar::Bool(x.is_infinite()),
            UnaryOp::IsFinite => Scalar::Bool(x.is_finite()),
            UnaryOp::SignBit => Scalar::Bool(x.is_sign_negative()),
            UnaryOp::Math(f) => Scalar::F32(f.eval_f32(x)),
            UnaryOp::Not => a,
        },
        Scalar::F64(x) => match op {
            UnaryOp::Neg => Scalar::F64(-x),
            UnaryOp::Abs => Scalar::F64(x.abs()),
            UnaryOp::Sqrt => Scalar::F64(x.sqrt()),
            UnaryOp::Floor => Scalar::F64(x.floor()),
            UnaryOp::Ceil => Scalar::F64(x.ceil()),
            UnaryOp::Trunc => Scalar::F64(x.trunc()),
            UnaryOp::Rint => Scalar::F64(x.round_ties_even()),
            UnaryOp::RoundF16 => Scalar::F64(crate::scalar::round_f16_f64(x)),
            UnaryOp::IsNan => Scalar::Bool(x.is_nan()),
            UnaryOp::IsInf => Scalar::Bool(x.is_infinite()),
            UnaryOp::IsFinite => Scalar::Bool(x.is_finite()),
            UnaryOp::SignBit => Scalar::Bool(x.is_sign_negative()),
            UnaryOp::Math(f) => Scalar::F64(f.eval_f64(x)),
            UnaryOp::Not => a,
        },
        Scalar::Bool(x) => match op {
            UnaryOp::Not => Scalar::Bool(!x),
            _ => a,
        },
        _ => {
            let dtype = a.dtype();
            let v = int_value(a);
            match op {
                UnaryOp::Neg => int_to(-v, dtype),
                UnaryOp::Abs => int_to(v.abs(), dtype),
                UnaryOp::Not => int_to(!v, dtype),
                _ => a,
            }
        }
    }
}

/// Applies a binary operation with numpy's semantics (both operands of one dtype).
pub fn binary(op: BinaryOp, a: Scalar, b: Scalar) -> Scalar {
    match (a, b) {
        (Scalar::F32(x), Scalar::F32(y)) => match op {
            BinaryOp::Add => Scalar::F32(x + y),
            BinaryOp::Sub => Scalar::F32(x - y),
            BinaryOp::Mul => Scalar::F32(x * y),
            BinaryOp::Div => Scalar::F32(x / y),
            BinaryOp::FloorDiv => Scalar::F32(scalar::floor_div_f32(x, y)),
            BinaryOp::Mod => Scalar::F32(scalar::mod_f32(x, y)),
            BinaryOp::Fmod => Scalar::F32(x % y),
            BinaryOp::Pow => Scalar::F32(x.powf(y)),
            BinaryOp::Min => Scalar::F32(np_minimum(x, y)),
            BinaryOp::Max => Scalar::F32(np_maximum(x, y)),
            BinaryOp::FMin => Scalar::F32(np_fmin(x, y)),
            BinaryOp::FMax => Scalar::F32(np_fmax(x, y)),
            BinaryOp::CopySign => Scalar::F32(x.copysign(y)),
            BinaryOp::Atan2 => Scalar::F32(x.atan2(y)),
            BinaryOp::Hypot => Scalar::F32(x.hypot(y)),
            BinaryOp::LogAddExp => Scalar::F32(scalar::logaddexp_f32(x, y)),
            cmp => Scalar::Bool(float_cmp(cmp, x as f64, y as f64)),
        },
        (Scalar::F64(x), Scalar::F64(y)) => match op {
            BinaryOp::Add => Scalar::F64(x + y),
            BinaryOp::Sub => Scalar::F64(x - y),
            BinaryOp::Mul => Scalar::F64(x * y),
            BinaryOp::Div => Scalar::F64(x / y),
            BinaryOp::FloorDiv => Scalar::F64(scalar::floor_div_f64(x, y)),
            BinaryOp::Mod => Scalar::F64(scalar::mod_f64(x, y)),
            BinaryOp::Fmod => Scalar::F64(x % y),
            BinaryOp::Pow => Scalar::F64(x.powf(y)),
            BinaryOp::Min => Scalar::F64(np_minimum(x, y)),
            BinaryOp::Max => Scalar::F64(np_maximum(x, y)),
            BinaryOp::FMin => Scalar::F64(np_fmin(x, y)),
            BinaryOp::FMax => Scalar::F64(np_fmax(x, y)),
            BinaryOp::CopySign => Scalar::F64(x.copysign(y)),
            BinaryOp::Atan2 => Scalar::F64(x.atan2(y)),
            BinaryOp::Hypot => Scalar::F64(x.hypot(y)),
            BinaryOp::LogAddExp => Scalar::F64(scalar::logaddexp_f64(x, y)),
            cmp => Scalar::Bool(float_cmp(cmp, x, y)),
        },
        _ => int_binary(op, a, b),
    }
}

fn float_cmp(op: BinaryOp, x: f64, y: f64) -> bool {
    match op {
        BinaryOp::Eq => x == y,
        BinaryOp::Ne => x != y,
        BinaryOp::Lt => x < y,
        BinaryOp::Le => x <= y,
        BinaryOp::Gt => x > y,
        BinaryOp::Ge => x >= y,
        _ => false,
    }
}

/// Integer and bool operations, computed exactly in i128 and wrapped to the dtype.
fn int_binary(op: BinaryOp, a: Scalar, b: Scalar) -> Scalar {
    let dtype = a.dtype();
    let x = int_value(a);
    let y = int_value(b);
    let bits = dtype.size() as u32 * 8;
    let signed = dtype.is_signed_int();
    match op {
        BinaryOp::Add => int_to(x + y, dtype),
        BinaryOp::Sub => int_to(x - y, dtype),
        BinaryOp::Mul => int_to(x.wrapping_mul(y), dtype),
        BinaryOp::FloorDiv => {
            if y == 0 {
                int_to(0, dtype)
            } else if signed {
                int_to(
                    scalar::floor_div_signed(x as i64, y as i64, bits) as i128,
                    dtype,
                )
            } else {
                int_to(x / y, dtype)
            }
        }
        BinaryOp::Mod => {
            if y == 0 {
                int_to(0, dtype)
            } else if signed {
                int_to(scalar::mod_signed(x as i64, y as i64) as i128, dtype)
            } else {
                int_to(x % y, dtype)
            }
        }
        // C remainder (truncating); by zero gives 0 as numpy.
        BinaryOp::Fmod => {
            if y == 0 {
                int_to(0, dtype)
            } else {
                int_to(x % y, dtype)
            }
        }
        BinaryOp::Pow => scalar::int_pow(x, y, dtype),
        BinaryOp::Min => int_to(x.min(y), dtype),
        BinaryOp::Max => int_to(x.max(y), dtype),
        BinaryOp::And => int_to(x & y, dtype),
        BinaryOp::Or => int_to(x | y, dtype),
        BinaryOp::Xor => int_to(x ^ y, dtype),
        BinaryOp::Shl => {
            // A negative shift count is a huge unsigned count in numpy's C code.
            if y < 0 || y >= bits as i128 {
                int_to(0, dtype)
            } else {
                int_to(x << y, dtype)
            }
        }
        BinaryOp::Shr => {
            if y < 0 || y >= bits as i128 {
                int_to(if x < 0 { -1 } else { 0 }, dtype)
            } else {
                int_to(x >> y, dtype)
            }
        }
        BinaryOp::Eq => Scalar::Bool(x == y),
        BinaryOp::Ne => Scalar::Bool(x != y),
        BinaryOp::Lt => Scalar::Bool(x < y),
        BinaryOp::Le => Scalar::Bool(x <= y),
        BinaryOp::Gt => Scalar::Bool(x > y),
        BinaryOp::Ge => Scalar::Bool(x >= y),
        // Float-only operations never reach here in validated kernels.
        BinaryOp::Div
        | BinaryOp::FMin
        | BinaryOp::FMax
        | BinaryOp::CopySign
        | BinaryOp::Atan2
        | BinaryOp::Hypot
        | BinaryOp::LogAddExp => a,
    }
}

/// `np.minimum`: the first NaN operand propagates; otherwise `a < b ? a : b` (so
/// `minimum(0.0, -0.0)` is `-0.0` and `minimum(-0.0, 0.0)` is `0.0`, as numpy computes).
pub fn np_minimum<T: PartialOrd + Copy + IsNan>(a: T, b: T) -> T {
    if a.nan() {
        a
    } else if b.nan() || b <= a {
        b
    } else {
        a
    }
}

/// `np.maximum`: the first NaN operand propagates; otherwise `a > b ? a : b`.
pub fn np_maximum<T: PartialOrd + Copy + IsNan>(a: T, b: T) -> T {
    if a.nan() {
        a
    } else if b.nan() || b >= a {
        b
    } else {
        a
    }
}

/// `np.fmin`: NaN is ignored unless both are NaN; otherwise as [`np_minimum`].
pub fn np_fmin<T: PartialOrd + Copy + IsNan>(a: T, b: T) -> T {
    if b.nan() {
        a
    } else if a.nan() || b <= a {
        b
    } else {
        a
    }
}

/// `np.fmax`: NaN is ignored unless both are NaN; otherwise as [`np_maximum`].
pub fn np_fmax<T: PartialOrd + Copy + IsNan>(a: T, b: T) -> T {
    if b.nan() {
        a
    } else if a.nan() || b >= a {
        b
    } else {
        a
    }
}

/// NaN test for the generic min/max helpers.
pub trait IsNan {
    /// True for NaN.
    fn nan(self) -> bool;
}

impl IsNan for f32 {
    fn nan(self) -> bool {
        self.is_nan()
    }
}

impl IsNan for f64 {
    fn nan(self) -> bool {
        self.is_nan()
    }
}
