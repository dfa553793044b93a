//! The planner: splits a typed tree ([`voxcalc_check::tir::Tree`]) into stages and lowers each
//! stage to a [`Kernel`].
//!
//! - A reduction whose result is a scalar (`np.mean(img)`, `np.percentile(img, 95)`,
//!   `np.std(img[mask > 0])`) becomes its own stage, run first; later stages read its result as a
//!   uniform scalar.
//! - A reduction whose result has fewer elements than the stage consuming it (the mean over time
//!   in a z-score, broadcast back over time), or that is used inside another reduction's loop,
//!   becomes a buffer stage: computed once per element into a temporary array instead of once per
//!   consuming voxel.
//! - Other reductions are loops inside the per-voxel kernel; slicing, `None` and broadcasting
//!   only change the strides of views.
//!
//! - Errors numpy raises for some values (an integer power with a negative exponent, a
//!   reduction without identity over an empty selection) are [`RuntimeCheck`]s: scalar bool
//!   stages planned before the stage that needs them, with the error to raise when true.
//! - float16 values (numpy's type for e.g. `np.sin(uint8)`) are carried in float32 and rounded
//!   to float16 precision (`UnaryOp::RoundF16`) where numpy converts them: casts to or from
//!   float16, comparisons of float16 values, float16 constants and elements of reductions
//!   over float16; a float16 result is written as float32 (docs/compat.md, items 3 and 5).
//! - A long global reduction is split into partial stages and a merge with the same result, so
//!   the runtime can run it on several threads ([`crate::split`]).
//!
//! Every stage writes its result densely in Fortran order (axis 0 fastest), the order of NIfTI
//! data, so the last stage's output is the formula's image as it is stored on disk.
//!
//! Summation order (how float sums match numpy bit for bit): numpy accumulates a reduction in
//! memory order. Inputs are Fortran-ordered NIfTI arrays, so reduction loops run with axis 0
//! fastest. When axis 0 is reduced, numpy's innermost loop is the reduction and uses pairwise
//! summation over each contiguous run (after merging contiguous axes, which [`coalesce`] does
//! too); otherwise (e.g. the time axis of a 4-D image) each output element accumulates
//! sequentially. A boolean-mask selection is a new contiguous array in numpy, summed pairwise as
//! a whole, in C order. Means and variances divide in float64 and round to the result dtype, as
//! numpy's `true_divide(sum, np.intp(n))` does.

use std::collections::HashMap;
use std::fmt::{self, Write};

use voxcalc_check::tir::{self, ElemOp, IndexItem, NodeId, NodeKind, Tree};
use voxcalc_syntax::TextRange;
use voxcalc_types::DType;

use crate::kernel::{
    BinaryOp, ByteOrder, InputId, InstKind, Kernel, KernelBuilder, LoopId, ReduceOp, SumOrder,
    UnaryOp, ValueId, ViewId,
};
use crate::opt::{coalesce, optimize, prune, OptOptions};
use crate::scalar::{int_to, round_f16_f64, MathFn, Scalar};
use crate::split::split_global;

/// How an input image's elements are laid out: strides in elements per numpy axis, byte
/// order, and an optional NIfTI scaling applied as the kernel reads. NIfTI data are
/// Fortran-ordered ([`ImageLayout::fortran`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageLayout {
    pub strides: Vec<i64>,
    pub byte_order: ByteOrder,
    pub scaling: Option<Scaling>,
}

/// NIfTI `scl_slope`/`scl_inter` scaling: the buffer holds `storage` values and the formula
/// sees `raw * slope + inter` in the image's (float) dtype, computed as nibabel does (the
/// multiplication only when `slope != 1`, the addition only when `inter != 0`, each rounded).
/// Reading through it avoids a float64 copy of the image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaling {
    pub storage: DType,
    pub slope: f64,
    pub inter: f64,
}

impl ImageLayout {
    /// A dense Fortran-ordered (axis 0 fastest) layout of `shape`.
    pub fn fortran(shape: &[usize], byte_order: ByteOrder) -> ImageLayout {
        ImageLayout {
            strides: fortran_strides(shape),
            byte_order,
            scaling: None,
        }
    }

    /// The same layout over raw `storage` values scaled as NIfTI `scl_slope`/`scl_inter`.
    pub fn scaled(self, storage: DType, slope: f64, inter: f64) -> ImageLayout {
        ImageLayout {
            scaling: Some(Scaling {
                storage,
                slope,
                inter,
            }),
            ..self
        }
    }
}

fn fortran_strides(shape: &[usize]) -> Vec<i64> {
    let mut step = 1i64;
    shape
        .iter()
        .map(|&d| {
            let s = step;
            step = step.saturating_mul(d.max(1) as i64);
            s
        })
        .collect()
}

/// Where a stage's kernel input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageInput {
    /// A bound image (index into the checker's environment).
    Image(usize),
    /// The output buffer of an earlier stage.
    Stage(usize),
    /// A constant table of the plan ([`Plan::tables`]), e.g. the positions along the q axis
    /// of `np.percentile(x, [5, 95])`.
    Table(usize),
}

/// One stage: a kernel over the stage's result shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// The result's numpy shape (the kernel's domain may be coalesced to fewer axes).
    pub shape: Vec<usize>,
    pub kernel: Kernel,
    /// The source of each kernel input.
    pub inputs: Vec<StageInput>,
    /// The stage producing each kernel uniform (a stage with a scalar result).
    pub uniforms: Vec<usize>,
}

impl Stage {
    /// The result dtype (float16 results are computed and stored as float32).
    pub fn dtype(&self) -> DType {
        self.kernel.output_dtype()
    }
}

/// Stages in execution order; the last one computes the formula's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub stages: Vec<Stage>,
    /// Errors numpy raises while computing (a negative integer exponent, a reduction of an
    /// empty selection), each decided by a scalar bool stage: the run stops with the error
    /// when that stage gives true, before any later stage runs.
    pub checks: Vec<RuntimeCheck>,
    /// Constant tables read by stages ([`StageInput::Table`]): little-endian bytes.
    pub tables: Vec<Vec<u8>>,
}

/// An error numpy raises at run time, decided by the bool result of a scalar stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeCheck {
    /// The stage whose (bool, scalar) result is true when the error must be raised.
    pub stage: usize,
    pub error: CheckError,
}

/// A run-time error of the formula: numpy's message and where in the formula it arises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckError {
    /// The diagnostic code (documented in docs/language.md).
    pub code: &'static str,
    /// numpy's message, without a trailing period.
    pub message: String,
    /// The formula range of the operation that fails.
    pub range: TextRange,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CheckError {}

/// The kinds of stages planned for a node without being the node's value (run-time checks,
/// the mean inside a global variance), to plan each once per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AuxKind {
    NegativeExponent,
    EmptyReduction,
    /// The mean of a global variance's operand, computed as its own (splittable) stage.
    GlobalMean,
}

/// A formula the planner cannot lower (a feature not supported yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot plan the formula: {}", self.0)
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// The output stage.
    pub fn output(&self) -> &Stage {
        self.stages.last().expect("a plan has at least one stage")
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.stages.len() - 1;
        for (i, st) in self.stages.iter().enumerate() {
            let role = if i == last {
                "output"
            } else if st.shape.iter().all(|&d| d == 1) {
                "scalar"
            } else {
                "buffer"
            };
            writeln!(f, "stage {i} ({role}): {} {:?}", st.dtype(), st.shape)?;
            for c in self.checks.iter().filter(|c| c.stage == i) {
                writeln!(f, "  fails if true: {} ({})", c.error.message, c.error.code)?;
            }
            for (k, src) in st.inputs.iter().enumerate() {
                match src {
                    StageInput::Image(n) => writeln!(f, "  in{k} <- image #{n}")?,
                    StageInput::Stage(n) => writeln!(f, "  in{k} <- stage {n}")?,
                    StageInput::Table(n) => writeln!(f, "  in{k} <- table #{n}")?,
                }
            }
            for (k, s) in st.uniforms.iter().enumerate() {
                writeln!(f, "  uniform{k} <- stage {s}")?;
            }
            let mut text = String::new();
            for line in st.kernel.to_string().lines() {
                let _ = writeln!(text, "  {line}");
            }
            f.write_str(&text)?;
        }
        Ok(())
    }
}

/// Plans a checked formula. `layouts[i]` describes image `i` of the checker's environment.
pub fn plan(tree: &Tree, layouts: &[ImageLayout]) -> Result<Plan, PlanError> {
    let mut planner = Planner {
        tree,
        layouts,
        stages: Vec::new(),
        done: HashMap::new(),
        checks: Vec::new(),
        aux: HashMap::new(),
        tables: Vec::new(),
    };
    planner.stage(tree.root)?;
    Ok(Plan {
        stages: planner.stages,
        checks: planner.checks,
        tables: planner.tables,
    })
}

struct Planner<'t> {
    tree: &'t Tree,
    layouts: &'t [ImageLayout],
    stages: Vec<Stage>,
    done: HashMap<NodeId, usize>,
    checks: Vec<RuntimeCheck>,
    aux: HashMap<(NodeId, AuxKind), usize>,
    tables: Vec<Vec<u8>>,
}

impl Planner<'_> {
    /// The stage computing `node` (planned once per node).
    fn stage(&mut self, node: NodeId) -> Result<usize, PlanError> {
        if let Some(&s) = self.done.get(&node) {
            return Ok(s);
        }
        let shape = self.tree.node(node).shape.dims().to_vec();
        let domain: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut sb = StageBuilder {
            b: KernelBuilder::new(domain),
            root: node,
            domain_elems: shape.iter().product(),
            inputs: Vec::new(),
            input_ids: HashMap::new(),
            uniforms: Vec::new(),
            views: HashMap::new(),
            loop_depth: 0,
        };
        let srcs: Vec<Src> = shape
            .iter()
            .enumerate()
            .map(|(k, &d)| {
                if d == 1 {
                    Src::zero()
                } else {
                    Src::var(Var::Domain(k))
                }
            })
            .collect();
        let out = sb.lower(self, node, &srcs)?;
        let kernel =
            sb.b.finish(out)
                .map_err(|e| PlanError(format!("internal lowering error: {e}")))?;
        let kernel = prune(&coalesce(&optimize(&kernel, OptOptions::default())));
        let idx = self.push_stage(shape, kernel, sb.inputs, sb.uniforms);
        self.done.insert(node, idx);
        Ok(idx)
    }
}

impl Planner<'_> {
    /// The index of a constant table holding `bytes` (each distinct table stored once).
    fn table(&mut self, bytes: Vec<u8>) -> usize {
        if let Some(i) = self.tables.iter().position(|t| *t == bytes) {
            return i;
        }
        self.tables.push(bytes);
        self.tables.len() - 1
    }

    /// Adds a run-time check on `node` (once per node and kind): a scalar bool stage computed
    /// by `build`, true when `error` must be raised.
    fn check(
        &mut self,
        node: NodeId,
        kind: AuxKind,
        error: CheckError,
        build: impl FnOnce(&mut StageBuilder, &mut Planner) -> Result<ValueId, PlanError>,
    ) -> Result<(), PlanError> {
        if self.aux.contains_key(&(node, kind)) {
            return Ok(());
        }
        let stage = self.aux_stage(node, kind, build)?;
        let st = &self.stages[stage].kernel;
        let never = matches!(
            st.inst(st.output).kind,
            InstKind::Const(Scalar::Bool(false))
        );
        if never && stage + 1 == self.stages.len() {
            // A check that can never fail (a constant condition): no stage at all.
            self.stages.pop();
            self.aux.remove(&(node, kind));
            return Ok(());
        }
        self.checks.push(RuntimeCheck { stage, error });
        Ok(())
    }

    /// A scalar stage computed by `build` that no typed-tree node stands for (a check, the
    /// mean inside a global variance), planned once per node and kind.
    fn aux_stage(
        &mut self,
        node: NodeId,
        kind: AuxKind,
        build: impl FnOnce(&mut StageBuilder, &mut Planner) -> Result<ValueId, PlanError>,
    ) -> Result<usize, PlanError> {
        if let Some(&stage) = self.aux.get(&(node, kind)) {
            return Ok(stage);
        }
        let mut sb = StageBuilder {
            b: KernelBuilder::new(Vec::new()),
            root: self.tree.root,
            domain_elems: 1,
            inputs: Vec::new(),
            input_ids: HashMap::new(),
            uniforms: Vec::new(),
            views: HashMap::new(),
            loop_depth: 0,
        };
        let out = build(&mut sb, self)?;
        let kernel =
            sb.b.finish(out)
                .map_err(|e| PlanError(format!("internal lowering error: {e}")))?;
        let kernel = prune(&coalesce(&optimize(&kernel, OptOptions::default())));
        let stage = self.push_stage(Vec::new(), kernel, sb.inputs, sb.uniforms);
        self.aux.insert((node, kind), stage);
        Ok(stage)
    }

    /// Appends a stage; a scalar stage is split into parallel parts and a merge when its
    /// reduction allows (see [`crate::split`]). Returns the stage computing the result.
    fn push_stage(
        &mut self,
        shape: Vec<usize>,
        kernel: Kernel,
        inputs: Vec<StageInput>,
        uniforms: Vec<usize>,
    ) -> usize {
        let (kernel, uniforms) = match split_global(&kernel) {
            Some(split) => {
                let mut all = uniforms.clone();
                for part in split.parts {
                    self.stages.push(Stage {
                        shape: Vec::new(),
                        kernel: part,
                        inputs: inputs.clone(),
                        uniforms: uniforms.clone(),
                    });
                    all.push(self.stages.len() - 1);
                }
                (split.merge, all)
            }
            None => (kernel, uniforms),
        };
        self.stages.push(Stage {
            shape,
            kernel,
            inputs,
            uniforms,
        });
        self.stages.len() - 1
    }
}

impl StageBuilder {
    /// `any(pred(x))` over every element of `node` (its own shape, axis 0 fastest).
    fn any_over(
        &mut self,
        pl: &mut Planner,
        node: NodeId,
        pred: impl FnOnce(&mut StageBuilder, ValueId) -> ValueId,
    ) -> Result<ValueId, PlanError> {
        let dims = pl.tree.node(node).shape.dims().to_vec();
        let mut loops = Vec::new();
        let mut srcs = Vec::new();
        for &d in &dims {
            if d == 1 {
                srcs.push(Src::zero());
            } else {
                let l = self.b.new_loop(d as u64);
                loops.push(l);
                srcs.push(Src::var(Var::Loop(l)));
            }
        }
        if loops.is_empty() {
            loops.push(self.b.new_loop(1));
        }
        self.b.begin_reduce();
        self.loop_depth += 1;
        let x = self.lower(pl, node, &srcs);
        self.loop_depth -= 1;
        let p = pred(self, x?);
        self.b
            .end_reduce(ReduceOp::Any, loops, p, None)
            .map_err(|err| PlanError(format!("internal lowering error: {err}")))
    }
}

/// A source of index values: a domain axis or a reduction loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Var {
    Domain(usize),
    Loop(LoopId),
}

/// The index along one axis of a node, as a function of the kernel's variables.
#[derive(Clone, Debug, PartialEq)]
enum Src {
    /// `konst + sum(coef * var)`.
    Affine(i64, Vec<(Var, i64)>),
    /// Axis 0 of a boolean-mask selection: one loop per mask axis.
    Mask(Vec<LoopId>),
}

impl Src {
    fn zero() -> Src {
        Src::Affine(0, Vec::new())
    }
    fn var(v: Var) -> Src {
        Src::Affine(0, vec![(v, 1)])
    }
}

/// What a reduction pass accumulates, derived from the operand element `x`.
#[derive(Clone, Copy, Debug)]
enum Elem {
    /// `x` itself.
    Value,
    /// `x`, with NaN replaced by a constant (numpy's nan-variants replace rather than skip).
    NanTo(f64),
    /// `(x - mean)²`; with `nan_to_zero`, NaN elements give 0.
    SquaredDeviation { mean: ValueId, nan_to_zero: bool },
}

/// A view's identity: input, offset, domain strides, loop strides.
type ViewKey = (InputId, i64, Vec<i64>, Vec<(LoopId, i64)>);

struct StageBuilder {
    b: KernelBuilder,
    root: NodeId,
    domain_elems: usize,
    inputs: Vec<StageInput>,
    input_ids: HashMap<StageInput, InputId>,
    uniforms: Vec<usize>,
    views: HashMap<ViewKey, ViewId>,
    loop_depth: usize,
}

/// The dtype voxcalc computes a numpy dtype in (float16 as float32).
fn compute_dtype(d: DType) -> DType {
    if d == DType::F16 {
        DType::F32
    } else {
        d
    }
}

impl StageBuilder {
    /// `v` rounded to float16 precision (once: a rounded value is returned as it is).
    fn round_f16(&mut self, v: ValueId) -> ValueId {
        let k = self.b.kernel();
        let is_rounded =
            |v: ValueId| matches!(k.inst(v).kind, InstKind::Unary(UnaryOp::RoundF16, _));
        // A float16 value converted to float32 (from float64) is still that float16 value.
        let rounded = match k.inst(v).kind {
            InstKind::Cast(a) => is_rounded(a) && k.dtype(a).is_float() && k.dtype(v).is_float(),
            _ => is_rounded(v),
        };
        if rounded {
            return v;
        }
        self.b.unary(UnaryOp::RoundF16, v)
    }

    fn konst(&mut self, value: f64, dtype: DType) -> ValueId {
        self.b.constant(Scalar::F64(value).cast(dtype))
    }

    fn input(&mut self, src: StageInput, dtype: DType, order: ByteOrder) -> InputId {
        if let Some(&id) = self.input_ids.get(&src) {
            return id;
        }
        let id = self.b.input(dtype, order);
        self.inputs.push(src);
        self.input_ids.insert(src, id);
        id
    }

    /// Loads element `srcs` of an array with the given strides.
    fn load(
        &mut self,
        input: InputId,
        strides: &[i64],
        srcs: &[Src],
    ) -> Result<ValueId, PlanError> {
        let ndomain = self.b.kernel().domain.len();
        let mut offset = 0i64;
        let mut domain_strides = vec![0i64; ndomain];
        let mut loop_strides: Vec<(LoopId, i64)> = Vec::new();
        for (axis, src) in srcs.iter().enumerate() {
            let Src::Affine(k, terms) = src else {
                return Err(PlanError(
                    "a boolean-mask selection must be reduced along its first axis".into(),
                ));
            };
            let stride = strides[axis];
            offset += k * stride;
            for &(var, coef) in terms {
                match var {
                    Var::Domain(d) => domain_strides[d] += coef * stride,
                    Var::Loop(l) => match loop_strides.iter_mut().find(|(x, _)| *x == l) {
                        Some((_, s)) => *s += coef * stride,
                        None => loop_strides.push((l, coef * stride)),
                    },
                }
            }
        }
        let key = (input, offset, domain_strides.clone(), loop_strides.clone());
        let view = match self.views.get(&key) {
            Some(&v) => v,
            None => {
                let v = self.b.view(input, offset, domain_strides, loop_strides);
                self.views.insert(key, v);
                v
            }
        };
        Ok(self.b.load(view))
    }

    /// The index sources of an operand broadcast (numpy-style, aligned right) to `parent`.
    fn broadcast(
        &self,
        tree: &Tree,
        child: NodeId,
        parent_shape: &[usize],
        srcs: &[Src],
    ) -> Vec<Src> {
        let child_shape = tree.node(child).shape.dims();
        let off = parent_shape.len().saturating_sub(child_shape.len());
        child_shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if d == 1 {
                    Src::zero()
                } else {
                    srcs.get(i + off).cloned().unwrap_or_else(Src::zero)
                }
            })
            .collect()
    }

    fn lower(
        &mut self,
        pl: &mut Planner,
        node: NodeId,
        srcs: &[Src],
    ) -> Result<ValueId, PlanError> {
        let tree = pl.tree;
        let n = tree.node(node);
        let shape = n.shape.dims().to_vec();
        let dtype = compute_dtype(n.dtype);
        let child = |sb: &Self, c: NodeId| sb.broadcast(tree, c, &shape, srcs);
        Ok(match &n.kind {
            NodeKind::Input { input_idx, .. } => {
                let layout = pl
                    .layouts
                    .get(*input_idx)
                    .ok_or_else(|| PlanError(format!("no layout for image #{input_idx}")))?;
                if layout.strides.len() != shape.len() {
                    return Err(PlanError(format!(
                        "the layout of image #{input_idx} has {} strides for {} axes",
                        layout.strides.len(),
                        shape.len()
                    )));
                }
                let storage = layout.scaling.map_or(dtype, |sc| sc.storage);
                if storage == DType::F16 || storage == DType::Bool && layout.scaling.is_some() {
                    return Err(PlanError(format!(
                        "image #{input_idx}: {storage} storage is not supported"
                    )));
                }
                let id = self.input(StageInput::Image(*input_idx), storage, layout.byte_order);
                let strides = layout.strides.clone();
                let scaling = layout.scaling;
                let raw = self.load(id, &strides, srcs)?;
                match scaling {
                    None => raw,
                    Some(sc) => {
                        if !dtype.is_float() {
                            return Err(PlanError(format!(
                                "image #{input_idx} is scaled but typed {dtype}"
                            )));
                        }
                        let mut x = self.b.cast(raw, dtype);
                        if sc.slope != 1.0 {
                            let slope = self.konst(sc.slope, dtype);
                            x = self.b.binary(BinaryOp::Mul, x, slope);
                        }
                        if sc.inter != 0.0 {
                            let inter = self.konst(sc.inter, dtype);
                            x = self.b.binary(BinaryOp::Add, x, inter);
                        }
                        x
                    }
                }
            }
            NodeKind::Const { value } => {
                let s = match *value {
                    tir::Scalar::Bool(b) => Scalar::Bool(b),
                    // A float16 constant holds a float16 value (e.g. the 0.1 of `f16 > 0.1`).
                    _ if n.dtype == DType::F16 => {
                        let x = match *value {
                            tir::Scalar::Int(i) => i as f64,
                            tir::Scalar::Float(x) => x,
                            tir::Scalar::Bool(_) => unreachable!("matched above"),
                        };
                        Scalar::F32(round_f16_f64(x) as f32)
                    }
                    tir::Scalar::Int(i) => int_to(i, dtype),
                    tir::Scalar::Float(x) => Scalar::F64(x).cast(dtype),
                };
                self.b.constant(s)
            }
            NodeKind::Cast { operand } => {
                let s = child(self, *operand);
                let v = self.lower(pl, *operand, &s)?;
                let from = tree.node(*operand).dtype;
                if from == DType::F16 && n.dtype == DType::F16 {
                    v
                } else if from == DType::F16 {
                    // A float16 value promoted or converted: numpy converts the float16 value.
                    let v = self.round_f16(v);
                    self.b.cast(v, dtype)
                } else if n.dtype == DType::F16
                    && matches!(from, DType::Bool | DType::U8 | DType::I8)
                {
                    // Every bool, uint8 and int8 value is a float16 value.
                    self.b.cast(v, dtype)
                } else if n.dtype == DType::F16 {
                    // A cast to float16: round once from the source (a float64 rounded through
                    // float32 could round twice).
                    let v = if self.b.kernel().dtype(v) == DType::F64 {
                        self.round_f16(v)
                    } else {
                        let v = self.b.cast(v, DType::F32);
                        self.round_f16(v)
                    };
                    self.b.cast(v, dtype)
                } else {
                    self.b.cast(v, dtype)
                }
            }
            NodeKind::Unary { op, operand } => {
                let s = child(self, *operand);
                let x = self.lower(pl, *operand, &s)?;
                self.unary(*op, x, dtype)?
            }
            NodeKind::Binary { op, lhs, rhs } => {
                let (sl, sr) = (child(self, *lhs), child(self, *rhs));
                let mut a = self.lower(pl, *lhs, &sl)?;
                let mut b = self.lower(pl, *rhs, &sr)?;
                let rt = tree.node(*rhs).dtype;
                if matches!(op, ElemOp::Power) && rt.is_signed_int() {
                    // numpy raises on any negative exponent of an integer power.
                    let error = CheckError {
                        code: "E0222",
                        message: "integers to negative integer powers are not allowed".into(),
                        range: n.range,
                    };
                    let rhs = *rhs;
                    let negative = |sb: &mut StageBuilder, x: ValueId| {
                        let zero = sb.b.constant(Scalar::zero(sb.b.kernel().dtype(x)));
                        sb.b.binary(BinaryOp::Lt, x, zero)
                    };
                    pl.check(rhs, AuxKind::NegativeExponent, error, |sb, pl| {
                        if is_constant(tree, rhs) {
                            // One value (e.g. `np.int16(-2)`): decided once, and dropped when
                            // it folds to false.
                            let srcs = vec![Src::zero(); tree.node(rhs).shape.ndim()];
                            let x = sb.lower(pl, rhs, &srcs)?;
                            Ok(negative(sb, x))
                        } else {
                            sb.any_over(pl, rhs, negative)
                        }
                    })?;
                }
                if n.dtype == DType::Bool && tree.node(*lhs).dtype == DType::F16 {
                    // A comparison of float16 values compares the float16 values.
                    a = self.round_f16(a);
                    b = self.round_f16(b);
                }
                self.binary(*op, a, b, dtype)?
            }
            NodeKind::Where {
                cond,
                then,
                otherwise,
            } => {
                let (sc, st, so) = (
                    child(self, *cond),
                    child(self, *then),
                    child(self, *otherwise),
                );
                let c = self.lower(pl, *cond, &sc)?;
                let t = self.lower(pl, *then, &st)?;
                let o = self.lower(pl, *otherwise, &so)?;
                self.b.select(c, t, o)
            }
            NodeKind::Clip { operand, lo, hi } => {
                let s = child(self, *operand);
                let mut v = self.lower(pl, *operand, &s)?;
                if let Some(lo) = lo {
                    let s = child(self, *lo);
                    let l = self.lower(pl, *lo, &s)?;
                    v = self.b.binary(BinaryOp::Max, v, l);
                }
                if let Some(hi) = hi {
                    let s = child(self, *hi);
                    let h = self.lower(pl, *hi, &s)?;
                    v = self.b.binary(BinaryOp::Min, v, h);
                }
                v
            }
            NodeKind::Round { operand, decimals } => {
                let s = child(self, *operand);
                let x = self.lower(pl, *operand, &s)?;
                self.round(x, *decimals, dtype)
            }
            NodeKind::Index { base, items } => {
                let mut base_srcs = Vec::new();
                let mut ri = 0usize;
                for item in items {
                    match *item {
                        IndexItem::At(p) => base_srcs.push(Src::Affine(p as i64, Vec::new())),
                        IndexItem::Slice { start, step, .. } => {
                            let s = srcs.get(ri).cloned().unwrap_or_else(Src::zero);
                            ri += 1;
                            let Src::Affine(k, terms) = s else {
                                return Err(PlanError(
                                    "indexing a boolean-mask selection is not supported".into(),
                                ));
                            };
                            base_srcs.push(Src::Affine(
                                start as i64 + k * step,
                                terms.into_iter().map(|(v, c)| (v, c * step)).collect(),
                            ));
                        }
                        IndexItem::NewAxis => ri += 1,
                    }
                }
                self.lower(pl, *base, &base_srcs)?
            }
            NodeKind::MaskSelect { base, .. } => {
                let Some(Src::Mask(loops)) = srcs.first() else {
                    return Err(PlanError(
                        "a boolean-mask selection must be reduced along its first axis".into(),
                    ));
                };
                let mut base_srcs: Vec<Src> =
                    loops.iter().map(|&l| Src::var(Var::Loop(l))).collect();
                base_srcs.extend(srcs[1..].iter().cloned());
                self.lower(pl, *base, &base_srcs)?
            }
            NodeKind::Reduce(r) => {
                let n_elems: usize = shape.iter().product();
                if node != self.root && shape.iter().all(|&d| d == 1) {
                    // A scalar: its own stage, read as a uniform.
                    let stage = pl.stage(node)?;
                    self.uniforms.push(stage);
                    return Ok(self.b.uniform(dtype));
                }
                if node != self.root && (n_elems < self.domain_elems || self.loop_depth > 0) {
                    // Fewer results than consuming voxels: a buffer stage, read as an array.
                    let stage = pl.stage(node)?;
                    let id = self.input(StageInput::Stage(stage), dtype, ByteOrder::Native);
                    return self.load(id, &fortran_strides(&shape), srcs);
                }
                self.reduce(pl, node, r, srcs, dtype)?
            }
        })
    }

    fn round(&mut self, x: ValueId, decimals: i64, dtype: DType) -> ValueId {
        if dtype.is_float() {
            // numpy: rint(x * 10**d) / 10**d, or rint(x / 10**-d) * 10**-d; the factor is a
            // Python float, so it is rounded to the array's dtype.
            let f = self.konst(10f64.powi(decimals.unsigned_abs().min(400) as i32), dtype);
            let (first, second) = if decimals >= 0 {
                (BinaryOp::Mul, BinaryOp::Div)
            } else {
                (BinaryOp::Div, BinaryOp::Mul)
            };
            let y = self.b.binary(first, x, f);
            let y = self.b.unary(UnaryOp::Rint, y);
            self.b.binary(second, y, f)
        } else if decimals >= 0 || dtype == DType::Bool {
            x
        } else {
            let xf = self.b.cast(x, DType::F64);
            let f = self.konst(
                10f64.powi(decimals.unsigned_abs().min(400) as i32),
                DType::F64,
            );
            let y = self.b.binary(BinaryOp::Div, xf, f);
            let y = self.b.unary(UnaryOp::Rint, y);
            let y = self.b.binary(BinaryOp::Mul, y, f);
            self.b.cast(y, dtype)
        }
    }

    fn unary(&mut self, op: ElemOp, x: ValueId, out: DType) -> Result<ValueId, PlanError> {
        let xt = self.b.kernel().dtype(x);
        let math = |f| Ok(UnaryOp::Math(f));
        let simple: Result<UnaryOp, ()> = match op {
            ElemOp::Negative if xt != DType::Bool => Ok(UnaryOp::Neg),
            ElemOp::Absolute | ElemOp::Fabs if xt != DType::Bool => Ok(UnaryOp::Abs),
            ElemOp::Sqrt => Ok(UnaryOp::Sqrt),
            ElemOp::Cbrt => math(MathFn::Cbrt),
            ElemOp::Exp => math(MathFn::Exp),
            ElemOp::Exp2 => math(MathFn::Exp2),
            ElemOp::Expm1 => math(MathFn::Expm1),
            ElemOp::Log => math(MathFn::Log),
            ElemOp::Log2 => math(MathFn::Log2),
            ElemOp::Log10 => math(MathFn::Log10),
            ElemOp::Log1p => math(MathFn::Log1p),
            ElemOp::Sin => math(MathFn::Sin),
            ElemOp::Cos => math(MathFn::Cos),
            ElemOp::Tan => math(MathFn::Tan),
            ElemOp::Arcsin => math(MathFn::Arcsin),
            ElemOp::Arccos => math(MathFn::Arccos),
            ElemOp::Arctan => math(MathFn::Arctan),
            ElemOp::Sinh => math(MathFn::Sinh),
            ElemOp::Cosh => math(MathFn::Cosh),
            ElemOp::Tanh => math(MathFn::Tanh),
            ElemOp::Arcsinh => math(MathFn::Arcsinh),
            ElemOp::Arccosh => math(MathFn::Arccosh),
            ElemOp::Arctanh => math(MathFn::Arctanh),
            ElemOp::Floor | ElemOp::Ceil | ElemOp::Trunc | ElemOp::Rint if !xt.is_float() => {
                return Ok(self.b.cast(x, out));
            }
            ElemOp::Floor => Ok(UnaryOp::Floor),
            ElemOp::Ceil => Ok(UnaryOp::Ceil),
            ElemOp::Trunc => Ok(UnaryOp::Trunc),
            ElemOp::Rint => Ok(UnaryOp::Rint),
            ElemOp::Isnan | ElemOp::Isinf | ElemOp::Isfinite | ElemOp::Signbit
                if !xt.is_float() =>
            {
                let v = match op {
                    ElemOp::Isfinite => Scalar::Bool(true),
                    ElemOp::Signbit if xt.is_signed_int() => {
                        let zero = self.b.constant(Scalar::zero(xt));
                        return Ok(self.b.binary(BinaryOp::Lt, x, zero));
                    }
                    _ => Scalar::Bool(false),
                };
                return Ok(self.b.constant(v));
            }
            ElemOp::Isnan => Ok(UnaryOp::IsNan),
            ElemOp::Isinf => Ok(UnaryOp::IsInf),
            ElemOp::Isfinite => Ok(UnaryOp::IsFinite),
            ElemOp::Signbit => Ok(UnaryOp::SignBit),
            ElemOp::LogicalNot | ElemOp::Invert => Ok(UnaryOp::Not),
            _ => Err(()),
        };
        if let Ok(u) = simple {
            let v = self.b.unary(u, x);
            return Ok(self.b.cast(v, out));
        }
        Ok(match op {
            ElemOp::Positive | ElemOp::Negative | ElemOp::Absolute | ElemOp::Fabs => x,
            ElemOp::Square => self.b.binary(BinaryOp::Mul, x, x),
            ElemOp::Reciprocal => {
                if xt.is_float() {
                    let one = self.konst(1.0, xt);
                    self.b.binary(BinaryOp::Div, one, x)
                } else {
                    // C integer division 1 / x: 1 for 1, -1 for -1, else 0 (0 for x == 0).
                    let one = self.b.constant(Scalar::one(xt));
                    let zero = self.b.constant(Scalar::zero(xt));
                    let is_one = self.b.binary(BinaryOp::Eq, x, one);
                    let rest = if xt.is_signed_int() {
                        let m1 = self.b.constant(int_to(-1, xt));
                        let is_m1 = self.b.binary(BinaryOp::Eq, x, m1);
                        self.b.select(is_m1, m1, zero)
                    } else {
                        zero
                    };
                    self.b.select(is_one, one, rest)
                }
            }
            ElemOp::Sign => {
                // numpy: x > 0 ? 1 : (x < 0 ? -1 : (x == 0 ? 0 : x)); NaN stays NaN.
                let zero = self.b.constant(Scalar::zero(xt));
                let one = self.b.constant(Scalar::one(xt));
                let m1 = self.b.constant(int_to(-1, xt));
                let gt = self.b.binary(BinaryOp::Gt, x, zero);
                let lt = self.b.binary(BinaryOp::Lt, x, zero);
                let eq = self.b.binary(BinaryOp::Eq, x, zero);
                let inner = self.b.select(eq, zero, x);
                let mid = self.b.select(lt, m1, inner);
                self.b.select(gt, one, mid)
            }
            ElemOp::Deg2rad | ElemOp::Rad2deg => {
                // numpy: x * (pi / 180) (deg2rad) or x * (180 / pi), the factor computed in
                // the dtype.
                let factor = if xt == DType::F32 {
                    let pi = std::f32::consts::PI;
                    (if op == ElemOp::Deg2rad {
                        pi / 180.0
                    } else {
                        180.0 / pi
                    }) as f64
                } else {
                    let pi = std::f64::consts::PI;
                    if op == ElemOp::Deg2rad {
                        pi / 180.0
                    } else {
                        180.0 / pi
                    }
                };
                let f = self.konst(factor, xt);
                self.b.binary(BinaryOp::Mul, x, f)
            }
            other => {
                return Err(PlanError(format!(
                    "np.{} on {xt} is not supported by the compiler yet",
                    other.name()
                )))
            }
        })
    }

    fn binary(
        &mut self,
        op: ElemOp,
        a: ValueId,
        b: ValueId,
        out: DType,
    ) -> Result<ValueId, PlanError> {
        let at = self.b.kernel().dtype(a);
        let bt = self.b.kernel().dtype(b);
        if at != bt {
            return self.mixed_comparison(op, a, b);
        }
        let simple = match op {
            ElemOp::Add if at == DType::Bool => Some(BinaryOp::Or),
            ElemOp::Multiply if at == DType::Bool => Some(BinaryOp::And),
            ElemOp::Add => Some(BinaryOp::Add),
            ElemOp::Subtract => Some(BinaryOp::Sub),
            ElemOp::Multiply => Some(BinaryOp::Mul),
            ElemOp::TrueDivide => Some(BinaryOp::Div),
            ElemOp::FloorDivide => Some(BinaryOp::FloorDiv),
            ElemOp::Remainder => Some(BinaryOp::Mod),
            ElemOp::Fmod => Some(BinaryOp::Fmod),
            ElemOp::Power | ElemOp::FloatPower => Some(BinaryOp::Pow),
            ElemOp::Minimum => Some(BinaryOp::Min),
            ElemOp::Maximum => Some(BinaryOp::Max),
            ElemOp::Fmin if at.is_float() => Some(BinaryOp::FMin),
            ElemOp::Fmax if at.is_float() => Some(BinaryOp::FMax),
            ElemOp::Fmin => Some(BinaryOp::Min),
            ElemOp::Fmax => Some(BinaryOp::Max),
            ElemOp::Copysign => Some(BinaryOp::CopySign),
            ElemOp::Arctan2 => Some(BinaryOp::Atan2),
            ElemOp::Hypot => Some(BinaryOp::Hypot),
            ElemOp::Logaddexp => Some(BinaryOp::LogAddExp),
            ElemOp::Greater => Some(BinaryOp::Gt),
            ElemOp::GreaterEqual => Some(BinaryOp::Ge),
            ElemOp::Less => Some(BinaryOp::Lt),
            ElemOp::LessEqual => Some(BinaryOp::Le),
            ElemOp::Equal => Some(BinaryOp::Eq),
            ElemOp::NotEqual => Some(BinaryOp::Ne),
            ElemOp::LogicalAnd | ElemOp::BitwiseAnd => Some(BinaryOp::And),
            ElemOp::LogicalOr | ElemOp::BitwiseOr => Some(BinaryOp::Or),
            ElemOp::LogicalXor | ElemOp::BitwiseXor => Some(BinaryOp::Xor),
            ElemOp::LeftShift => Some(BinaryOp::Shl),
            ElemOp::RightShift => Some(BinaryOp::Shr),
            _ => None,
        };
        if let Some(op) = simple {
            let v = self.b.binary(op, a, b);
            return Ok(self.b.cast(v, out));
        }
        Ok(match op {
            ElemOp::Heaviside => {
                // numpy: NaN -> NaN, 0 -> h, negative -> 0, positive -> 1.
                let zero = self.konst(0.0, at);
                let one = self.konst(1.0, at);
                let is_nan = self.b.unary(UnaryOp::IsNan, a);
                let neg = self.b.binary(BinaryOp::Lt, a, zero);
                let is_zero = self.b.binary(BinaryOp::Eq, a, zero);
                let sign = self.b.select(neg, zero, one);
                let v = self.b.select(is_zero, b, sign);
                self.b.select(is_nan, a, v)
            }
            ElemOp::Logaddexp2 => {
                // numpy's npy_logaddexp2: x == y -> x + 1; else the larger plus
                // log2(1 + 2**-(|x - y|)), computed as LOG2E * log1p(exp2(.)).
                let one = self.konst(1.0, at);
                let log2e = self.konst(std::f64::consts::LOG2_E, at);
                let zero = self.konst(0.0, at);
                let same = self.b.binary(BinaryOp::Eq, a, b);
                let tmp = self.b.binary(BinaryOp::Sub, a, b);
                let pos = self.b.binary(BinaryOp::Gt, tmp, zero);
                let neg_tmp = self.b.unary(UnaryOp::Neg, tmp);
                let arg = self.b.select(pos, neg_tmp, tmp);
                let e = self.b.unary(UnaryOp::Math(MathFn::Exp2), arg);
                let l = self.b.unary(UnaryOp::Math(MathFn::Log1p), e);
                let l = self.b.binary(BinaryOp::Mul, l, log2e);
                let base = self.b.select(pos, a, b);
                let sum = self.b.binary(BinaryOp::Add, base, l);
                let le = self.b.binary(BinaryOp::Le, tmp, zero);
                let ordered = self.b.binary(BinaryOp::Or, pos, le);
                let v = self.b.select(ordered, sum, tmp);
                let plus1 = self.b.binary(BinaryOp::Add, a, one);
                self.b.select(same, plus1, v)
            }
            other => {
                return Err(PlanError(format!(
                    "np.{} on {at} is not supported by the compiler yet",
                    other.name()
                )))
            }
        })
    }

    /// numpy's exact comparison of int64 with uint64 (the one mixed-dtype loop).
    fn mixed_comparison(
        &mut self,
        op: ElemOp,
        a: ValueId,
        b: ValueId,
    ) -> Result<ValueId, PlanError> {
        let at = self.b.kernel().dtype(a);
        // Normalise to (signed, unsigned) and mirror the comparison if needed.
        let (s, u, op) = if at == DType::I64 {
            (a, b, op)
        } else {
            let mirrored = match op {
                ElemOp::Greater => ElemOp::Less,
                ElemOp::GreaterEqual => ElemOp::LessEqual,
                ElemOp::Less => ElemOp::Greater,
                ElemOp::LessEqual => ElemOp::GreaterEqual,
                other => other,
            };
            (b, a, mirrored)
        };
        if self.b.kernel().dtype(s) != DType::I64 || self.b.kernel().dtype(u) != DType::U64 {
            return Err(PlanError(format!(
                "operands of np.{} have different dtypes",
                op.name()
            )));
        }
        let zero = self.b.constant(Scalar::I64(0));
        let negative = self.b.binary(BinaryOp::Lt, s, zero);
        let su = self.b.cast(s, DType::U64);
        let (cmp, when_negative) = match op {
            ElemOp::Less => (BinaryOp::Lt, true),
            ElemOp::LessEqual => (BinaryOp::Le, true),
            ElemOp::Greater => (BinaryOp::Gt, false),
            ElemOp::GreaterEqual => (BinaryOp::Ge, false),
            ElemOp::Equal => (BinaryOp::Eq, false),
            ElemOp::NotEqual => (BinaryOp::Ne, true),
            other => {
                return Err(PlanError(format!(
                    "np.{} of int64 and uint64 is not supported",
                    other.name()
                )))
            }
        };
        let c = self.b.binary(cmp, su, u);
        let fixed = self.b.constant(Scalar::Bool(when_negative));
        Ok(self.b.select(negative, fixed, c))
    }

    /// Inline reduction of `node` at `srcs`.
    fn reduce(
        &mut self,
        pl: &mut Planner,
        node: NodeId,
        r: &tir::Reduce,
        srcs: &[Src],
        dtype: DType,
    ) -> Result<ValueId, PlanError> {
        let tree = pl.tree;
        let operand = tree.node(r.operand);
        let x_dtype = compute_dtype(operand.dtype);
        let masked = find_mask_select(tree, r.operand).is_some();
        let static_n: u64 = r
            .axes
            .iter()
            .map(|&a| operand.shape.dims()[a] as u64)
            .product();
        let order = if masked {
            SumOrder::PairwiseAll
        } else if r.axes.len() == operand.shape.ndim() && !r.axes.is_empty() {
            SumOrder::PairwiseGlobal
        } else if r.axes.contains(&0) {
            SumOrder::Pairwise
        } else {
            SumOrder::Sequential
        };
        let skip_nan = r.skip_nan && x_dtype.is_float();
        self.check_not_empty(pl, node, r, skip_nan, static_n)?;
        let count = |sb: &mut Self, pl: &mut Planner| -> Result<ValueId, PlanError> {
            if masked || skip_nan {
                sb.pass(pl, r, srcs, ReduceOp::Count, Elem::Value, skip_nan)
            } else {
                Ok(sb.b.constant(Scalar::I64(static_n as i64)))
            }
        };
        let divide = |sb: &mut Self, num: ValueId, den: ValueId| {
            let num = sb.b.cast(num, DType::F64);
            let den = sb.b.cast(den, DType::F64);
            let q = sb.b.binary(BinaryOp::Div, num, den);
            sb.b.cast(q, dtype)
        };
        let nan_sum = if skip_nan {
            Elem::NanTo(0.0)
        } else {
            Elem::Value
        };
        Ok(match r.op {
            tir::ReduceOp::Sum => self.pass(pl, r, srcs, ReduceOp::Sum(order), nan_sum, false)?,
            tir::ReduceOp::Prod => {
                let e = if skip_nan {
                    Elem::NanTo(1.0)
                } else {
                    Elem::Value
                };
                self.pass(pl, r, srcs, ReduceOp::Prod, e, false)?
            }
            tir::ReduceOp::Mean => {
                let s = self.pass(pl, r, srcs, ReduceOp::Sum(order), nan_sum, false)?;
                let n = count(self, pl)?;
                divide(self, s, n)
            }
            tir::ReduceOp::Var | tir::ReduceOp::Std => {
                let n = count(self, pl)?;
                let mean = match self.planned_mean(pl, r, x_dtype, masked || skip_nan) {
                    // The same mean is already a buffer stage (a z-score's mean beside its
                    // std): read it instead of summing again (the values are identical).
                    Some((stage, shape)) => {
                        let id = self.input(StageInput::Stage(stage), x_dtype, ByteOrder::Native);
                        self.load(id, &fortran_strides(&shape), srcs)?
                    }
                    // A global variance: the mean is a stage of its own, so that both passes
                    // are single reductions the runtime can split over threads (the values
                    // are those of the inline computation below).
                    None if node == self.root
                        && self.domain_elems == 1
                        && !masked
                        && !skip_nan
                        && r.axes.len() == operand.shape.ndim() =>
                    {
                        let stage = pl.aux_stage(r.operand, AuxKind::GlobalMean, |sb, pl| {
                            let s =
                                sb.pass(pl, r, &[], ReduceOp::Sum(order), Elem::Value, false)?;
                            let n = sb.b.constant(Scalar::I64(static_n as i64));
                            let mean = divide(sb, s, n);
                            Ok(sb.b.cast(mean, x_dtype))
                        })?;
                        self.uniforms.push(stage);
                        self.b.uniform(x_dtype)
                    }
                    None => {
                        let s = self.pass(pl, r, srcs, ReduceOp::Sum(order), nan_sum, false)?;
                        let mean = divide(self, s, n);
                        self.b.cast(mean, x_dtype)
                    }
                };
                let sq = Elem::SquaredDeviation {
                    mean,
                    nan_to_zero: skip_nan,
                };
                let ss = self.pass(pl, r, srcs, ReduceOp::Sum(order), sq, false)?;
                let ddof = self.b.constant(Scalar::I64(r.ddof as i64));
                let dof = self.b.binary(BinaryOp::Sub, n, ddof);
                let var = if skip_nan {
                    // nanvar: NaN where the degrees of freedom are not positive.
                    let v = divide(self, ss, dof);
                    let zero = self.b.constant(Scalar::I64(0));
                    let bad = self.b.binary(BinaryOp::Le, dof, zero);
                    let nan = self.konst(f64::NAN, dtype);
                    self.b.select(bad, nan, v)
                } else {
                    let zero = self.b.constant(Scalar::I64(0));
                    let dof = self.b.binary(BinaryOp::Max, dof, zero);
                    divide(self, ss, dof)
                };
                if r.op == tir::ReduceOp::Std {
                    self.b.unary(UnaryOp::Sqrt, var)
                } else {
                    var
                }
            }
            tir::ReduceOp::Min | tir::ReduceOp::Max => {
                let op = match (r.op == tir::ReduceOp::Min, skip_nan) {
                    (true, false) => ReduceOp::Min,
                    (true, true) => ReduceOp::FMin,
                    (false, false) => ReduceOp::Max,
                    (false, true) => ReduceOp::FMax,
                };
                self.pass(pl, r, srcs, op, Elem::Value, false)?
            }
            tir::ReduceOp::Ptp => {
                let hi = self.pass(pl, r, srcs, ReduceOp::Max, Elem::Value, false)?;
                let lo = self.pass(pl, r, srcs, ReduceOp::Min, Elem::Value, false)?;
                self.b.binary(BinaryOp::Sub, hi, lo)
            }
            tir::ReduceOp::Median => {
                let v = self.pass(pl, r, srcs, ReduceOp::Median, Elem::Value, skip_nan)?;
                self.b.cast(v, dtype)
            }
            tir::ReduceOp::Quantile => {
                let data_dtype = match &operand.kind {
                    NodeKind::Cast { operand: inner } => compute_dtype(tree.node(*inner).dtype),
                    _ => x_dtype,
                };
                let quantile = |sb: &mut Self, pl: &mut Planner, q: f64, srcs: &[Src]| {
                    let op = ReduceOp::Quantile { q, data_dtype };
                    let v = sb.pass(pl, r, srcs, op, Elem::Value, skip_nan)?;
                    Ok::<_, PlanError>(sb.b.cast(v, dtype))
                };
                match (r.q_is_list, srcs.split_first()) {
                    (false, _) | (true, None) => {
                        let q = *r.q.first().ok_or_else(|| PlanError("no quantile".into()))?;
                        quantile(self, pl, q, srcs)?
                    }
                    // One element of the q axis: that quantile alone.
                    (true, Some((Src::Affine(k, terms), rest))) if terms.is_empty() => {
                        let q = usize::try_from(*k)
                            .ok()
                            .and_then(|k| r.q.get(k))
                            .ok_or_else(|| PlanError(format!("quantile #{k} out of range")))?;
                        quantile(self, pl, *q, rest)?
                    }
                    // The q axis varies over the domain: every quantile, selected by the
                    // position along it (read from an index table: 0, 1, ..., len(q) - 1).
                    (true, Some((qsrc, rest))) => {
                        let table: Vec<u8> = (0..r.q.len() as i64)
                            .flat_map(|i| i.to_le_bytes())
                            .collect();
                        let t = pl.table(table);
                        let id = self.input(StageInput::Table(t), DType::I64, ByteOrder::Native);
                        let idx = self.load(id, &[1], std::slice::from_ref(qsrc))?;
                        let (last, init) =
                            r.q.split_last()
                                .ok_or_else(|| PlanError("an empty list of quantiles".into()))?;
                        let mut v = quantile(self, pl, *last, rest)?;
                        for (j, &q) in init.iter().enumerate().rev() {
                            let vj = quantile(self, pl, q, rest)?;
                            let jc = self.b.constant(Scalar::I64(j as i64));
                            let is_j = self.b.binary(BinaryOp::Eq, idx, jc);
                            v = self.b.select(is_j, vj, v);
                        }
                        v
                    }
                }
            }
            tir::ReduceOp::ArgMin => {
                self.pass(pl, r, srcs, ReduceOp::ArgMin, Elem::Value, false)?
            }
            tir::ReduceOp::ArgMax => {
                self.pass(pl, r, srcs, ReduceOp::ArgMax, Elem::Value, false)?
            }
            tir::ReduceOp::Any => self.pass(pl, r, srcs, ReduceOp::Any, Elem::Value, false)?,
            tir::ReduceOp::All => self.pass(pl, r, srcs, ReduceOp::All, Elem::Value, false)?,
            tir::ReduceOp::CountNonzero => {
                let v = self.pass_masked_by_value(pl, r, srcs)?;
                self.b.cast(v, dtype)
            }
        })
    }

    /// numpy's reductions without an identity (min, max, ptp, argmin, argmax, percentile and
    /// their nan-variants, except nanpercentile) raise on an empty selection: a run-time check
    /// on the mask when the operand is a boolean-mask selection, an always-failing check when a
    /// reduced axis has length 0 (and the result is not empty).
    fn check_not_empty(
        &mut self,
        pl: &mut Planner,
        reduce_node: NodeId,
        r: &tir::Reduce,
        skip_nan: bool,
        static_n: u64,
    ) -> Result<(), PlanError> {
        let tree = pl.tree;
        let message = match (r.op, skip_nan) {
            (tir::ReduceOp::Min, false) => {
                "zero-size array to reduction operation minimum which has no identity"
            }
            (tir::ReduceOp::Min, true) => {
                "zero-size array to reduction operation fmin which has no identity"
            }
            (tir::ReduceOp::Max | tir::ReduceOp::Ptp, false) => {
                "zero-size array to reduction operation maximum which has no identity"
            }
            (tir::ReduceOp::Max | tir::ReduceOp::Ptp, true) => {
                "zero-size array to reduction operation fmax which has no identity"
            }
            (tir::ReduceOp::ArgMin, _) => "attempt to get argmin of an empty sequence",
            (tir::ReduceOp::ArgMax, _) => "attempt to get argmax of an empty sequence",
            (tir::ReduceOp::Quantile, false) => {
                "cannot take a percentile or quantile of an empty selection (numpy: index -1 is \
                 out of bounds for axis 0 with size 0)"
            }
            _ => return Ok(()),
        };
        let node = tree.node(reduce_node);
        if node.shape.dims().iter().product::<usize>() == 0 {
            return Ok(());
        }
        let error = CheckError {
            code: "E0401",
            message: message.into(),
            range: node.range,
        };
        if let Some((_, mask)) = find_mask_select(tree, r.operand) {
            return pl.check(mask, AuxKind::EmptyReduction, error, |sb, pl| {
                let any = sb.any_over(pl, mask, |sb, m| sb.b.cast(m, DType::Bool))?;
                Ok(sb.b.unary(UnaryOp::Not, any))
            });
        }
        if static_n == 0 {
            return pl.check(reduce_node, AuxKind::EmptyReduction, error, |sb, _| {
                Ok(sb.b.constant(Scalar::Bool(true)))
            });
        }
        Ok(())
    }

    /// A buffer stage already planned for `np.mean` of the same operand over the same axes (with
    /// the dtype the variance computes its mean in), for `np.var`/`np.std` to reuse.
    fn planned_mean(
        &self,
        pl: &Planner,
        r: &tir::Reduce,
        x_dtype: DType,
        masked_or_nan: bool,
    ) -> Option<(usize, Vec<usize>)> {
        if masked_or_nan {
            return None;
        }
        let tree = pl.tree;
        pl.done.iter().find_map(|(&node, &stage)| {
            let n = tree.node(node);
            let NodeKind::Reduce(m) = &n.kind else {
                return None;
            };
            let same = m.op == tir::ReduceOp::Mean
                && !m.skip_nan
                && m.axes == r.axes
                && m.keepdims == r.keepdims
                && compute_dtype(n.dtype) == x_dtype
                && same_tree(tree, m.operand, r.operand);
            same.then(|| (stage, n.shape.dims().to_vec()))
        })
    }

    /// `count_nonzero`: counts the elements whose (bool) value is true.
    fn pass_masked_by_value(
        &mut self,
        pl: &mut Planner,
        r: &tir::Reduce,
        srcs: &[Src],
    ) -> Result<ValueId, PlanError> {
        self.pass_inner(pl, r, srcs, ReduceOp::Count, Elem::Value, false, true)
    }

    fn pass(
        &mut self,
        pl: &mut Planner,
        r: &tir::Reduce,
        srcs: &[Src],
        op: ReduceOp,
        elem: Elem,
        skip_nan: bool,
    ) -> Result<ValueId, PlanError> {
        self.pass_inner(pl, r, srcs, op, elem, skip_nan, false)
    }

    /// One reduction loop nest over the reduced axes of `r.operand`.
    #[allow(clippy::too_many_arguments)]
    fn pass_inner(
        &mut self,
        pl: &mut Planner,
        r: &tir::Reduce,
        srcs: &[Src],
        op: ReduceOp,
        elem: Elem,
        skip_nan: bool,
        mask_by_value: bool,
    ) -> Result<ValueId, PlanError> {
        let tree = pl.tree;
        let operand = tree.node(r.operand);
        let oshape = operand.shape.dims().to_vec();
        let mask_sel = find_mask_select(tree, r.operand);
        // Index sources of the operand: result axes map to its kept axes, reduced axes to loops.
        let mut osrcs: Vec<Option<Src>> = vec![None; oshape.len()];
        let mut ri = 0usize;
        for (axis, slot) in osrcs.iter_mut().enumerate() {
            if r.axes.contains(&axis) {
                if r.keepdims {
                    ri += 1;
                }
            } else {
                *slot = Some(srcs.get(ri).cloned().unwrap_or_else(Src::zero));
                ri += 1;
            }
        }
        // Loop order: C order (last axis fastest) for arg-reductions and mask selections
        // (numpy counts their positions in C order), memory (Fortran) order otherwise.
        let c_order = mask_sel.is_some() || matches!(op, ReduceOp::ArgMin | ReduceOp::ArgMax);
        let mut axes = r.axes.clone();
        if c_order {
            axes.reverse();
        }
        let mut loops = Vec::new();
        for &axis in &axes {
            if axis == 0 {
                if let Some(ms) = mask_sel {
                    let mask_dims = tree.node(ms.1).shape.dims().to_vec();
                    let mask_loops: Vec<LoopId> = mask_dims
                        .iter()
                        .map(|&d| self.b.new_loop(d as u64))
                        .collect();
                    // C order over the mask: its last axis fastest.
                    loops.extend(mask_loops.iter().rev().copied());
                    osrcs[0] = Some(Src::Mask(mask_loops));
                    continue;
                }
            }
            let l = self.b.new_loop(oshape[axis] as u64);
            loops.push(l);
            osrcs[axis] = Some(Src::var(Var::Loop(l)));
        }
        if loops.is_empty() {
            // Reducing no axis (axis=()) is the identity on each element; a one-iteration
            // loop keeps the reduction semantics (e.g. a mean divides by 1).
            loops.push(self.b.new_loop(1));
        }
        let osrcs: Vec<Src> = osrcs
            .into_iter()
            .map(|s| s.unwrap_or_else(Src::zero))
            .collect();
        self.b.begin_reduce();
        self.loop_depth += 1;
        let body = (|| -> Result<(ValueId, Option<ValueId>), PlanError> {
            let x = self.lower(pl, r.operand, &osrcs)?;
            let x = self.b.cast(x, compute_dtype(operand.dtype));
            // numpy reduces the float16 values of a float16 operand.
            let x = if operand.dtype == DType::F16 {
                self.round_f16(x)
            } else {
                x
            };
            let mut mask = None;
            if let Some((_, mask_node)) = mask_sel {
                let Src::Mask(mask_loops) = &osrcs[0] else {
                    unreachable!("set above")
                };
                let msrcs: Vec<Src> = mask_loops.iter().map(|&l| Src::var(Var::Loop(l))).collect();
                let m = self.lower(pl, mask_node, &msrcs)?;
                mask = Some(self.b.cast(m, DType::Bool));
            }
            let mut and_mask = |sb: &mut Self, m: ValueId| {
                mask = Some(match mask {
                    None => m,
                    Some(prev) => sb.b.binary(BinaryOp::And, prev, m),
                });
            };
            if skip_nan {
                let nan = self.b.unary(UnaryOp::IsNan, x);
                let keep = self.b.unary(UnaryOp::Not, nan);
                and_mask(self, keep);
            }
            if mask_by_value {
                let m = self.b.cast(x, DType::Bool);
                and_mask(self, m);
            }
            let xt = self.b.kernel().dtype(x);
            let e = match elem {
                Elem::Value => x,
                Elem::NanTo(c) => {
                    let is_nan = self.b.unary(UnaryOp::IsNan, x);
                    let c = self.konst(c, xt);
                    self.b.select(is_nan, c, x)
                }
                Elem::SquaredDeviation { mean, nan_to_zero } => {
                    let d = self.b.binary(BinaryOp::Sub, x, mean);
                    let sq = self.b.binary(BinaryOp::Mul, d, d);
                    if nan_to_zero {
                        let is_nan = self.b.unary(UnaryOp::IsNan, x);
                        let zero = self.konst(0.0, xt);
                        self.b.select(is_nan, zero, sq)
                    } else {
                        sq
                    }
                }
            };
            Ok((e, mask))
        })();
        self.loop_depth -= 1;
        let (e, mask) = body?;
        self.b
            .end_reduce(op, loops, e, mask)
            .map_err(|err| PlanError(format!("internal lowering error: {err}")))
    }
}

/// True when a subtree reads no image (one value, known when planning).
fn is_constant(tree: &Tree, node: NodeId) -> bool {
    let n = tree.node(node);
    !matches!(n.kind, NodeKind::Input { .. })
        && n.kind.children().iter().all(|&c| is_constant(tree, c))
}

/// True when two subtrees compute the same values (same operations, dtypes, shapes, inputs).
fn same_tree(tree: &Tree, a: NodeId, b: NodeId) -> bool {
    let (na, nb) = (tree.node(a), tree.node(b));
    if na.dtype != nb.dtype || na.shape != nb.shape || na.kind.label() != nb.kind.label() {
        return false;
    }
    let (ca, cb) = (na.kind.children(), nb.kind.children());
    ca.len() == cb.len() && ca.iter().zip(&cb).all(|(x, y)| same_tree(tree, *x, *y))
}

/// The boolean-mask selection under a reduction's operand (through casts), as (select, mask).
fn find_mask_select(tree: &Tree, mut node: NodeId) -> Option<(NodeId, NodeId)> {
    loop {
        match &tree.node(node).kind {
            NodeKind::Cast { operand } => node = *operand,
            NodeKind::MaskSelect { mask, .. } => return Some((node, *mask)),
            _ => return None,
        }
    }
}

/// Why a plan execution stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecuteError {
    /// A buffer did not fit a kernel.
    Run(crate::exec::RunError),
    /// A run-time check failed: the error numpy raises for these values.
    Check(CheckError),
}

impl fmt::Display for ExecuteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::Run(e) => write!(f, "{e}"),
            ExecuteError::Check(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExecuteError {}

impl From<crate::exec::RunError> for ExecuteError {
    fn from(e: crate::exec::RunError) -> ExecuteError {
        ExecuteError::Run(e)
    }
}

impl Plan {
    /// The check that fails after stage `stage` produced `output` (its bytes), if any.
    pub fn failed_check(&self, stage: usize, output: &[u8]) -> Option<&CheckError> {
        self.checks
            .iter()
            .find(|c| c.stage == stage && output.first().is_some_and(|&b| b != 0))
            .map(|c| &c.error)
    }
}

/// The runtime values of one plan execution: runs stages in order with `run_stage` (the
/// interpreter or compiled kernels), stops at the first failing run-time check, and returns
/// the output stage's buffer.
pub fn execute(
    plan: &Plan,
    images: &[crate::exec::InputBuf<'_>],
    mut run_stage: impl FnMut(
        usize,
        &crate::exec::RunArgs<'_>,
        &mut [u8],
    ) -> Result<(), crate::exec::RunError>,
) -> Result<Vec<u8>, ExecuteError> {
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(plan.stages.len());
    for (i, stage) in plan.stages.iter().enumerate() {
        let mut inputs = Vec::with_capacity(stage.inputs.len());
        for src in &stage.inputs {
            inputs.push(match *src {
                StageInput::Image(n) => *images
                    .get(n)
                    .ok_or_else(|| crate::exec::RunError(format!("image #{n} was not given")))?,
                StageInput::Stage(s) => crate::exec::InputBuf {
                    bytes: &outputs[s],
                    base: 0,
                },
                StageInput::Table(t) => crate::exec::InputBuf {
                    bytes: &plan.tables[t],
                    base: 0,
                },
            });
        }
        let uniforms: Vec<u64> = stage
            .uniforms
            .iter()
            .map(|&s| {
                let st = &plan.stages[s];
                Scalar::from_le_bytes(st.dtype(), &outputs[s]).to_bits()
            })
            .collect();
        let n = stage.kernel.n_voxels();
        let mut out = vec![0u8; n as usize * stage.dtype().size()];
        let args = crate::exec::RunArgs {
            inputs: &inputs,
            uniforms: &uniforms,
        };
        run_stage(i, &args, &mut out)?;
        if let Some(err) = plan.failed_check(i, &out) {
            return Err(ExecuteError::Check(err.clone()));
        }
        outputs.push(out);
    }
    Ok(outputs.pop().unwrap_or_default())
}

/// Runs a plan with the reference interpreter.
pub fn execute_interpreted(
    plan: &Plan,
    images: &[crate::exec::InputBuf<'_>],
) -> Result<Vec<u8>, ExecuteError> {
    execute(plan, images, |i, args, out| {
        let k = &plan.stages[i].kernel;
        crate::interp::run(k, args, out, 0, k.n_voxels())
    })
}
