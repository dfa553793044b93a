//! The kernel IR: typed SSA values in an arena, addressed by typed ids.
//!
//! A [`Kernel`] computes one output value per point of its *domain* (an N-d shape whose axis 0
//! varies fastest; the runtime calls it on ranges of linear domain indices). Operands are
//! strided views over input buffers; uniforms are scalars computed by earlier stages; reductions
//! are loops inside the per-voxel computation. The output is written densely, in domain order, in
//! the output dtype's native byte order.
//!
//! Regions: the kernel body and each reduction body are ordered lists of value ids. A value may
//! use values of its own region (defined earlier) and of enclosing regions; a reduction's body is
//! evaluated once per loop iteration.

use std::fmt;

use voxcalc_types::DType;

pub use crate::scalar::{MathFn, Scalar};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The index into the owning arena.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// An SSA value (the result of one instruction).
    ValueId,
    "v"
);
id_type!(
    /// An input buffer (one base pointer in the kernel arguments).
    InputId,
    "in"
);
id_type!(
    /// A strided view of an input buffer.
    ViewId,
    "view"
);
id_type!(
    /// A reduction loop axis.
    LoopId,
    "loop"
);

/// Byte order of stored elements relative to the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// The machine's order (little-endian on every supported target).
    Native,
    /// The opposite order: elements are byte-swapped when loaded.
    Swapped,
}

/// An input buffer: its storage dtype and byte order. Its base pointer (with the view's byte
/// offset already added) is passed at run time; it may be misaligned.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub dtype: DType,
    pub byte_order: ByteOrder,
}

/// A strided view: the element at domain index `d` and loop indices `l` is at element offset
/// `offset + sum(d[k] * domain_strides[k]) + sum(l[j] * stride_j)` from the input's base
/// pointer (element 0 of the input array). Strides are in elements and may be negative or zero
/// (broadcasting); `offset` places slices such as `img[..., 3]`.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub input: InputId,
    pub offset: i64,
    pub domain_strides: Vec<i64>,
    pub loop_strides: Vec<(LoopId, i64)>,
}

/// A reduction loop over `len` iterations.
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    pub len: u64,
}

/// Element-wise operations with one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    /// Negation (wrapping for integers).
    Neg,
    /// Absolute value (wrapping: `abs(int16 min) == int16 min`, as numpy).
    Abs,
    /// Logical not for bool, bitwise not (`~`) for integers.
    Not,
    Sqrt,
    Floor,
    Ceil,
    Trunc,
    /// Round to nearest, ties to even (`np.rint`).
    Rint,
    /// Round to float16 precision, keeping the dtype ([`crate::scalar::round_f16`], float32 or
    /// float64): float16 values are carried in float32 and rounded where numpy converts them
    /// to another type.
    RoundF16,
    /// Tests giving bool.
    IsNan,
    IsInf,
    IsFinite,
    SignBit,
    /// A transcendental function computed by a call.
    Math(MathFn),
}

/// Element-wise operations with two operands of the same dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    /// Wrapping for integers.
    Add,
    Sub,
    Mul,
    /// True division (floats only; integer true division is lowered through a cast to float).
    Div,
    /// Python floor division (`//`); integer division by zero gives 0.
    FloorDiv,
    /// Python modulo (`np.remainder`: the sign follows the divisor); integer modulo by zero gives 0.
    Mod,
    /// C `fmod` (`np.fmod`: the sign follows the dividend); integer fmod by zero gives 0.
    Fmod,
    /// `np.power`; integer power wraps.
    Pow,
    /// `np.minimum` / `np.maximum`: NaN propagates (the first NaN operand is returned).
    Min,
    Max,
    /// `np.fmin` / `np.fmax`: NaN is ignored unless both are NaN.
    FMin,
    FMax,
    CopySign,
    Atan2,
    Hypot,
    LogAddExp,
    /// Bitwise for integers, logical for bool.
    And,
    Or,
    Xor,
    /// numpy shifts: a shift by the bit width or more gives 0 (or -1 for a negative value
    /// shifted right).
    Shl,
    Shr,
    /// Comparisons giving bool (IEEE: every comparison with NaN is false except `Ne`).
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinaryOp {
    /// True for comparisons (whose result is bool).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }

    /// True for operations defined only on floats.
    pub fn float_only(self) -> bool {
        matches!(
            self,
            BinaryOp::Div
                | BinaryOp::CopySign
                | BinaryOp::Atan2
                | BinaryOp::Hypot
                | BinaryOp::LogAddExp
                | BinaryOp::FMin
                | BinaryOp::FMax
        )
    }

    /// True for operations defined only on integers and bool.
    pub fn int_only(self) -> bool {
        matches!(
            self,
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Shl | BinaryOp::Shr
        )
    }

    /// True when `a op b == b op a` for every pair of values (used by CSE to canonicalise).
    pub fn is_commutative(self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Mul
                | BinaryOp::And
                | BinaryOp::Or
                | BinaryOp::Xor
                | BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::Hypot
        )
    }
}

/// How a floating-point sum accumulates its elements (integer sums are exact in any order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SumOrder {
    /// One accumulator, elements added in loop order: numpy's order when the reduced axis is not
    /// the memory-contiguous one (e.g. the time axis of a Fortran-ordered 4-D image).
    Sequential,
    /// numpy's pairwise summation over each run of the innermost loop, runs accumulated in
    /// order: numpy's order when the reduced elements are contiguous in memory.
    Pairwise,
    /// numpy's pairwise summation over all included elements at once: numpy's order for a
    /// reduction of a boolean-mask selection (`img[mask > 0]` is a new contiguous array).
    PairwiseAll,
    /// numpy's order for a reduction over every axis: one pairwise sum when the reduction is a
    /// single loop (its elements are one contiguous run); otherwise numpy copies the strided
    /// data through its iterator's buffers, which hold as many whole runs of the innermost loop
    /// as fit in [`NUMPY_BUFFER_SIZE`] elements (at least one run): each buffer is summed
    /// pairwise and the buffers are accumulated in order (checked against numpy 2.4 on slices
    /// with runs shorter and longer than a buffer).
    PairwiseGlobal,
}

/// The element count of numpy's iterator buffers (`np.getbufsize()`).
pub const NUMPY_BUFFER_SIZE: u64 = 8192;

/// Reduction operators. The element dtype is the reduction's `elem` value's dtype; the lowering
/// inserts the casts numpy applies first (e.g. int16 summed as int64, int averaged as float64).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReduceOp {
    /// Sum in the element dtype (result: the element dtype).
    Sum(SumOrder),
    /// Product in the element dtype.
    Prod,
    /// NaN-propagating minimum / maximum (`np.min`); NaN (float) or 0 (int) when empty.
    Min,
    Max,
    /// NaN-ignoring minimum / maximum (`np.nanmin`); NaN when every element is NaN or empty.
    FMin,
    FMax,
    /// Bool results.
    Any,
    All,
    /// Index (int64) of the first minimum / maximum in loop order (the first NaN wins, as numpy);
    /// 0 when empty.
    ArgMin,
    ArgMax,
    /// Number of included elements (int64), for means over masked selections.
    Count,
    /// numpy's median: float elements only (ints are cast to float64 first).
    Median,
    /// numpy's linear-interpolation quantile, `q` in [0, 1] (`np.percentile(x, p)` uses
    /// `q = p / 100`). Float elements only; `data_dtype` is the dtype the elements had before
    /// their cast to float64 (numpy takes the neighbours' difference in it).
    Quantile {
        q: f64,
        data_dtype: DType,
    },
}

impl ReduceOp {
    /// The result dtype for elements of dtype `elem`.
    pub fn result_dtype(self, elem: DType) -> DType {
        match self {
            ReduceOp::Any | ReduceOp::All => DType::Bool,
            ReduceOp::ArgMin | ReduceOp::ArgMax | ReduceOp::Count => DType::I64,
            _ => elem,
        }
    }

    /// True when the reduction keeps every included element (in scratch memory).
    pub fn needs_scratch(self) -> bool {
        matches!(
            self,
            ReduceOp::Median
                | ReduceOp::Quantile { .. }
                | ReduceOp::Sum(SumOrder::Pairwise)
                | ReduceOp::Sum(SumOrder::PairwiseAll)
                | ReduceOp::Sum(SumOrder::PairwiseGlobal)
        )
    }
}

/// A reduction: loops over `loops` (the first varies fastest), evaluating `body` then
/// accumulating `elem` when `mask` (if any) is true.
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub op: ReduceOp,
    pub loops: Vec<LoopId>,
    pub body: Vec<ValueId>,
    pub elem: ValueId,
    pub mask: Option<ValueId>,
}

/// What an instruction computes.
#[derive(Clone, Debug, PartialEq)]
pub enum InstKind {
    Const(Scalar),
    /// Uniform scalar number `n` of the kernel arguments (a result of an earlier stage).
    Uniform(u32),
    /// An element of a view, in its storage dtype.
    Load(ViewId),
    /// numpy `astype` to the instruction's dtype.
    Cast(ValueId),
    Unary(UnaryOp, ValueId),
    Binary(BinaryOp, ValueId, ValueId),
    /// `np.where(cond, a, b)`.
    Select(ValueId, ValueId, ValueId),
    Reduce(Box<Reduce>),
}

/// One instruction: its result dtype and what it computes.
#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    pub dtype: DType,
    pub kind: InstKind,
}

/// A complete kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// Output iteration shape; axis 0 varies fastest.
    pub domain: Vec<u64>,
    pub inputs: Vec<Input>,
    pub views: Vec<View>,
    pub loops: Vec<Loop>,
    /// The dtype of each uniform scalar.
    pub uniforms: Vec<DType>,
    pub insts: Vec<Inst>,
    /// The top-level region.
    pub body: Vec<ValueId>,
    /// The value stored per domain point (in its dtype, which is the output dtype).
    pub output: ValueId,
}

/// A malformed kernel (a bug in the lowering or the generator, reported instead of panicking).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrError(pub String);

impl fmt::Display for IrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid kernel IR: {}", self.0)
    }
}

impl std::error::Error for IrError {}

impl Kernel {
    /// The instruction defining `v`.
    pub fn inst(&self, v: ValueId) -> &Inst {
        &self.insts[v.index()]
    }

    /// The dtype of `v`.
    pub fn dtype(&self, v: ValueId) -> DType {
        self.insts[v.index()].dtype
    }

    /// The output dtype.
    pub fn output_dtype(&self) -> DType {
        self.dtype(self.output)
    }

    /// Number of domain points (output voxels).
    pub fn n_voxels(&self) -> u64 {
        self.domain.iter().product()
    }

    /// Bytes of per-thread scratch memory the kernel needs: one f64 slot per iteration of every
    /// reduction that keeps its elements (each gets its own region, so nested ones do not clash).
    pub fn scratch_bytes(&self) -> usize {
        self.scratch_offsets().1
    }

    /// For a pairwise sum that folds its kept elements every `n` included elements (a
    /// [`SumOrder::PairwiseGlobal`] sum over several loops), `n`.
    pub fn pairwise_block(&self, r: &Reduce) -> Option<u64> {
        if r.op != ReduceOp::Sum(SumOrder::PairwiseGlobal) || r.loops.len() < 2 {
            return None;
        }
        let inner = self.loops[r.loops[0].index()].len.max(1);
        Some((NUMPY_BUFFER_SIZE / inner).max(1) * inner)
    }

    /// The scratch byte offset of every scratch-using reduction (by value id), and the total.
    pub fn scratch_offsets(&self) -> (Vec<(ValueId, usize)>, usize) {
        let mut offsets = Vec::new();
        let mut total = 0usize;
        for (i, inst) in self.insts.iter().enumerate() {
            if let InstKind::Reduce(r) = &inst.kind {
                if r.op.needs_scratch() {
                    offsets.push((ValueId(i as u32), total));
                    let n: u64 = match r.op {
                        // Pairwise sums buffer one run of the innermost loop.
                        ReduceOp::Sum(SumOrder::Pairwise) => {
                            r.loops.first().map_or(1, |l| self.loops[l.index()].len)
                        }
                        _ => {
                            let all: u64 =
                                r.loops.iter().map(|l| self.loops[l.index()].len).product();
                            self.pairwise_block(r).map_or(all, |b| all.min(b))
                        }
                    };
                    total += n as usize * 8;
                }
            }
        }
        (offsets, total)
    }

    /// The minimum and maximum element offsets a view reaches over the whole domain and all its
    /// loops (offset included), for bounds checks before running the kernel.
    pub fn view_extent(&self, view: ViewId) -> (i64, i64) {
        let v = &self.views[view.index()];
        let mut lo = v.offset;
        let mut hi = v.offset;
        let mut add = |len: u64, stride: i64| {
            if len == 0 {
                return;
            }
            let reach = (len as i64 - 1).saturating_mul(stride);
            if reach < 0 {
                lo = lo.saturating_add(reach);
            } else {
                hi = hi.saturating_add(reach);
            }
        };
        for (k, &s) in v.domain_strides.iter().enumerate() {
            add(self.domain[k], s);
        }
        for &(l, s) in &v.loop_strides {
            add(self.loops[l.index()].len, s);
        }
        (lo, hi)
    }

    /// Checks that the kernel is well formed and well typed: ids in range, every use after its
    /// definition in an enclosing region, operand dtypes matching each operation.
    pub fn validate(&self) -> Result<(), IrError> {
        let err = |msg: String| Err(IrError(msg));
        if self.domain.len() > 16 {
            return err("domain has more than 16 axes".into());
        }
        for (i, v) in self.views.iter().enumerate() {
            if v.input.index() >= self.inputs.len() {
                return err(format!("view{i} uses missing input {}", v.input));
            }
            if v.domain_strides.len() != self.domain.len() {
                return err(format!(
                    "view{i} has {} domain strides",
                    v.domain_strides.len()
                ));
            }
            if v.loop_strides
                .iter()
                .any(|(l, _)| l.index() >= self.loops.len())
            {
                return err(format!("view{i} uses a missing loop"));
            }
        }
        for input in &self.inputs {
            if input.dtype == DType::F16 {
                return err("float16 storage is not supported in kernels".into());
            }
        }
        let mut defined = vec![false; self.insts.len()];
        let mut active_loops = Vec::new();
        self.validate_region(&self.body, &mut defined, &mut active_loops)?;
        if self.output.index() >= self.insts.len() || !defined[self.output.index()] {
            return err("output is not a top-level value".into());
        }
        if self.output_dtype() == DType::F16 {
            return err("float16 output".into());
        }
        Ok(())
    }

    fn validate_region(
        &self,
        region: &[ValueId],
        defined: &mut Vec<bool>,
        active_loops: &mut Vec<LoopId>,
    ) -> Result<(), IrError> {
        for &v in region {
            if v.index() >= self.insts.len() {
                return Err(IrError(format!("{v} is out of range")));
            }
            if defined[v.index()] {
                return Err(IrError(format!("{v} is defined twice")));
            }
            self.validate_inst(v, defined, active_loops)?;
            defined[v.index()] = true;
        }
        Ok(())
    }

    fn validate_inst(
        &self,
        v: ValueId,
        defined: &mut Vec<bool>,
        active_loops: &mut Vec<LoopId>,
    ) -> Result<(), IrError> {
        let inst = &self.insts[v.index()];
        let ty = inst.dtype;
        let fail = |msg: &str| Err(IrError(format!("{v}: {msg}")));
        let operand = |o: ValueId, defined: &Vec<bool>| -> Result<DType, IrError> {
            if o.index() >= self.insts.len() || !defined[o.index()] {
                return Err(IrError(format!("{v} uses {o} before its definition")));
            }
            Ok(self.insts[o.index()].dtype)
        };
        if ty == DType::F16 {
            return fail("float16 values are computed as float32");
        }
        match &inst.kind {
            InstKind::Const(s) => {
                if s.dtype() != ty {
                    return fail("constant dtype differs from the instruction dtype");
                }
            }
            InstKind::Uniform(n) => {
                if self.uniforms.get(*n as usize) != Some(&ty) {
                    return fail("uniform missing or of another dtype");
                }
            }
            InstKind::Load(view) => {
                let Some(vw) = self.views.get(view.index()) else {
                    return fail("missing view");
                };
                if self.inputs[vw.input.index()].dtype != ty {
                    return fail("load dtype differs from the storage dtype");
                }
                if vw
                    .loop_strides
                    .iter()
                    .any(|(l, _)| !active_loops.contains(l))
                {
                    return fail("load uses a loop outside its reduction");
                }
            }
            InstKind::Cast(a) => {
                operand(*a, defined)?;
            }
            InstKind::Unary(op, a) => {
                let at = operand(*a, defined)?;
                let want = match op {
                    UnaryOp::IsNan | UnaryOp::IsInf | UnaryOp::IsFinite | UnaryOp::SignBit => {
                        if !at.is_float() {
                            return fail("float test on a non-float");
                        }
                        DType::Bool
                    }
                    UnaryOp::Sqrt
                    | UnaryOp::Floor
                    | UnaryOp::Ceil
                    | UnaryOp::Trunc
                    | UnaryOp::Rint
                    | UnaryOp::RoundF16
                    | UnaryOp::Math(_) => {
                        if !at.is_float() {
                            return fail("float function on a non-float");
                        }
                        at
                    }
                    UnaryOp::Not => {
                        if at.is_float() {
                            return fail("not on a float");
                        }
                        at
                    }
                    UnaryOp::Neg | UnaryOp::Abs => {
                        if at == DType::Bool {
                            return fail("arithmetic on bool");
                        }
                        at
                    }
                };
                if ty != want {
                    return fail("wrong result dtype");
                }
            }
            InstKind::Binary(op, a, b) => {
                let at = operand(*a, defined)?;
                let bt = operand(*b, defined)?;
                if at != bt {
                    return fail("binary operands of different dtypes");
                }
                if op.float_only() && !at.is_float() {
                    return fail("float operation on a non-float");
                }
                if op.int_only() && at.is_float() {
                    return fail("integer operation on a float");
                }
                if at == DType::Bool
                    && !op.is_comparison()
                    && !matches!(
                        op,
                        BinaryOp::And
                            | BinaryOp::Or
                            | BinaryOp::Xor
                            | BinaryOp::Min
                            | BinaryOp::Max
                    )
                {
                    return fail("arithmetic on bool");
                }
                let want = if op.is_comparison() { DType::Bool } else { at };
                if ty != want {
                    return fail("wrong result dtype");
                }
            }
            InstKind::Select(c, a, b) => {
                if operand(*c, defined)? != DType::Bool {
                    return fail("select condition is not bool");
                }
                if operand(*a, defined)? != ty || operand(*b, defined)? != ty {
                    return fail("select branches differ from the result dtype");
                }
            }
            InstKind::Reduce(r) => {
                if r.loops.is_empty() {
                    return fail("reduction without loops");
                }
                for l in &r.loops {
                    if l.index() >= self.loops.len() || active_loops.contains(l) {
                        return fail("reduction loop missing or already active");
                    }
                }
                let depth = active_loops.len();
                active_loops.extend(r.loops.iter().copied());
                let res = self.validate_region(&r.body, defined, active_loops);
                let body_ok = res.and_then(|()| {
                    let et = operand(r.elem, defined)?;
                    if let Some(m) = r.mask {
                        if operand(m, defined)? != DType::Bool {
                            return Err(IrError(format!("{v}: reduction mask is not bool")));
                        }
                    }
                    Ok(et)
                });
                // Values of the body are not visible outside the reduction.
                for b in &r.body {
                    if b.index() < defined.len() {
                        defined[b.index()] = false;
                    }
                }
                active_loops.truncate(depth);
                let et = body_ok?;
                match r.op {
                    ReduceOp::Median
                    | ReduceOp::Quantile { .. }
                    | ReduceOp::FMin
                    | ReduceOp::FMax
                        if !et.is_float() =>
                    {
                        return fail("this reduction needs float elements");
                    }
                    ReduceOp::Sum(_) | ReduceOp::Prod if et == DType::Bool => {
                        return fail("sum of bool: cast to an integer first");
                    }
                    _ => {}
                }
                if ty != r.op.result_dtype(et) {
                    return fail("wrong reduction result dtype");
                }
            }
        }
        Ok(())
    }
}

/// Builds kernels: creates inputs, views and loops, and appends instructions to the current
/// region (the top level, or the body of the reduction being built).
#[derive(Debug)]
pub struct KernelBuilder {
    kernel: Kernel,
    regions: Vec<Vec<ValueId>>,
}

impl KernelBuilder {
    /// Starts a kernel over the given output domain.
    pub fn new(domain: Vec<u64>) -> KernelBuilder {
        KernelBuilder {
            kernel: Kernel {
                domain,
                inputs: Vec::new(),
                views: Vec::new(),
                loops: Vec::new(),
                uniforms: Vec::new(),
                insts: Vec::new(),
                body: Vec::new(),
                output: ValueId(0),
            },
            regions: vec![Vec::new()],
        }
    }

    /// The kernel built so far (to look up dtypes while building).
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Declares an input buffer.
    pub fn input(&mut self, dtype: DType, byte_order: ByteOrder) -> InputId {
        self.kernel.inputs.push(Input { dtype, byte_order });
        InputId(self.kernel.inputs.len() as u32 - 1)
    }

    /// Declares a view of an input.
    pub fn view(
        &mut self,
        input: InputId,
        offset: i64,
        domain_strides: Vec<i64>,
        loop_strides: Vec<(LoopId, i64)>,
    ) -> ViewId {
        self.kernel.views.push(View {
            input,
            offset,
            domain_strides,
            loop_strides,
        });
        ViewId(self.kernel.views.len() as u32 - 1)
    }

    /// Declares a reduction loop of `len` iterations.
    pub fn new_loop(&mut self, len: u64) -> LoopId {
        self.kernel.loops.push(Loop { len });
        LoopId(self.kernel.loops.len() as u32 - 1)
    }

    /// Declares a uniform scalar of the given dtype and returns its value.
    pub fn uniform(&mut self, dtype: DType) -> ValueId {
        self.kernel.uniforms.push(dtype);
        let n = self.kernel.uniforms.len() as u32 - 1;
        self.push(dtype, InstKind::Uniform(n))
    }

    /// Appends an instruction to the current region.
    pub fn push(&mut self, dtype: DType, kind: InstKind) -> ValueId {
        let id = ValueId(self.kernel.insts.len() as u32);
        self.kernel.insts.push(Inst { dtype, kind });
        self.regions
            .last_mut()
            .expect("the top-level region always exists")
            .push(id);
        id
    }

    /// A constant.
    pub fn constant(&mut self, s: Scalar) -> ValueId {
        self.push(s.dtype(), InstKind::Const(s))
    }

    /// Loads an element of a view (in the storage dtype).
    pub fn load(&mut self, view: ViewId) -> ValueId {
        let input = self.kernel.views[view.index()].input;
        let dtype = self.kernel.inputs[input.index()].dtype;
        self.push(dtype, InstKind::Load(view))
    }

    /// Casts to `to` (returns `v` itself when it already has that dtype).
    pub fn cast(&mut self, v: ValueId, to: DType) -> ValueId {
        if self.kernel.dtype(v) == to {
            return v;
        }
        self.push(to, InstKind::Cast(v))
    }

    /// A unary operation (the result dtype follows from the operation).
    pub fn unary(&mut self, op: UnaryOp, a: ValueId) -> ValueId {
        let at = self.kernel.dtype(a);
        let dtype = match op {
            UnaryOp::IsNan | UnaryOp::IsInf | UnaryOp::IsFinite | UnaryOp::SignBit => DType::Bool,
            _ => at,
        };
        self.push(dtype, InstKind::Unary(op, a))
    }

    /// A binary operation on two values of one dtype.
    pub fn binary(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> ValueId {
        let dtype = if op.is_comparison() {
            DType::Bool
        } else {
            self.kernel.dtype(a)
        };
        self.push(dtype, InstKind::Binary(op, a, b))
    }

    /// `np.where(cond, a, b)`.
    pub fn select(&mut self, cond: ValueId, a: ValueId, b: ValueId) -> ValueId {
        let dtype = self.kernel.dtype(a);
        self.push(dtype, InstKind::Select(cond, a, b))
    }

    /// A reduction over `loops`; `body` builds the per-iteration computation and returns the
    /// element and the optional mask.
    pub fn reduce(
        &mut self,
        op: ReduceOp,
        loops: Vec<LoopId>,
        body: impl FnOnce(&mut KernelBuilder) -> (ValueId, Option<ValueId>),
    ) -> ValueId {
        self.regions.push(Vec::new());
        let (elem, mask) = body(self);
        let region = self.regions.pop().expect("pushed above");
        let dtype = op.result_dtype(self.kernel.dtype(elem));
        self.push(
            dtype,
            InstKind::Reduce(Box::new(Reduce {
                op,
                loops,
                body: region,
                elem,
                mask,
            })),
        )
    }

    /// Opens the body of a reduction: instructions pushed until [`KernelBuilder::end_reduce`]
    /// are evaluated once per iteration.
    pub fn begin_reduce(&mut self) {
        self.regions.push(Vec::new());
    }

    /// Closes the body opened by [`KernelBuilder::begin_reduce`] and appends the reduction.
    /// Returns an error when no body is open.
    pub fn end_reduce(
        &mut self,
        op: ReduceOp,
        loops: Vec<LoopId>,
        elem: ValueId,
        mask: Option<ValueId>,
    ) -> Result<ValueId, IrError> {
        if self.regions.len() < 2 {
            return Err(IrError("end_reduce without begin_reduce".into()));
        }
        let region = self.regions.pop().expect("checked above");
        let dtype = op.result_dtype(self.kernel.dtype(elem));
        Ok(self.push(
            dtype,
            InstKind::Reduce(Box::new(Reduce {
                op,
                loops,
                body: region,
                elem,
                mask,
            })),
        ))
    }

    /// Finishes the kernel with `output` as the stored value and validates it.
    pub fn finish(mut self, output: ValueId) -> Result<Kernel, IrError> {
        self.kernel.body = self.regions.swap_remove(0);
        self.kernel.output = output;
        self.kernel.validate()?;
        Ok(self.kernel)
    }
}
