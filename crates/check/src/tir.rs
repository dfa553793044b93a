//! The typed tree: what the checker hands to the planner and the IR lowering.
//!
//! Nodes live in an arena ([`Tree::nodes`]) and refer to each other by [`NodeId`]; a child is
//! always stored before its parent, so iterating `nodes` in order visits operands first. Every
//! node records its numpy dtype, its concrete shape (images are bound, so shapes are known) and
//! the source range it came from.
//!
//! Invariants the lowering may rely on:
//! - **Exact loop dtypes.** Every operand of a [`NodeKind::Unary`] / [`NodeKind::Binary`] node
//!   has exactly the input dtype of the numpy loop that was selected; numpy's implicit
//!   conversions are explicit [`NodeKind::Cast`] nodes (or a re-typed [`NodeKind::Const`]).
//!   The node's own dtype is the loop's output dtype. The one mixed loop: comparisons of int64
//!   with uint64 (numpy's exact `qQ->?` / `Qq->?` loops) keep their two different dtypes.
//! - **Weak literals resolved.** Python scalars appear as `Const` nodes of a concrete dtype;
//!   their value is stored in that dtype's domain (see [`Scalar`]).
//! - **Implicit broadcasting.** Elementwise nodes (`Unary`, `Binary`, `Where`, `Clip`,
//!   `Round`, `Cast`) broadcast their operands numpy-style to the node's shape; the shapes
//!   have been checked.
//! - **Float16.** Dtypes are numpy's, so float16 appears; the planner computes float16 in
//!   float32 (docs/compat.md).
//! - **Depth.** The tree is at most [`crate::MAX_TREE_DEPTH`] nodes deep, so recursive passes
//!   over it cannot overflow the stack.

use std::fmt::{self, Write};

use voxcalc_syntax::TextRange;
use voxcalc_types::{DType, Shape};

/// Index of a node in [`Tree::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// A checked formula.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    /// The arena; operands come before the nodes that use them.
    pub nodes: Vec<Node>,
    /// The node whose value is the formula's result (its dtype is the output dtype).
    pub root: NodeId,
    /// Names of the bound images the formula mentions, in order of first mention (decided by
    /// the names in the text, so an image whose contribution was folded away still counts).
    pub inputs_used: Vec<String>,
}

impl Tree {
    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    /// The result node.
    pub fn root_node(&self) -> &Node {
        self.node(self.root)
    }

    /// The numpy dtype of the formula's result.
    pub fn dtype(&self) -> DType {
        self.root_node().dtype
    }

    /// The shape of the formula's result (`()` for a global reduction such as `np.mean(img)`).
    pub fn shape(&self) -> &Shape {
        &self.root_node().shape
    }

    /// Renders the tree as indented text, one node per line (used by snapshot tests and the
    /// REPL's `:type`).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_node(&mut out, self.root, 0);
        out
    }

    /// Checks the invariants documented at the top of this module (operands first, exact loop
    /// dtypes, consistent shapes, masks only under reductions); the error names the first
    /// broken node. Tests run it on every tree they produce; consumers may run it in debug
    /// builds.
    pub fn validate(&self) -> Result<(), String> {
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (idx, node) in self.nodes.iter().enumerate() {
            let fail = |what: &str| Err(format!("node {idx} ({}): {what}", node.kind.label()));
            for c in node.kind.children() {
                if c.0 as usize >= idx {
                    return fail("operand stored after its user");
                }
                parents[c.0 as usize].push(idx);
            }
            let child = |id: NodeId| &self.nodes[id.0 as usize];
            let broadcast_of = |ids: &[NodeId]| {
                let shapes: Vec<&Shape> = ids.iter().map(|&i| &child(i).shape).collect();
                voxcalc_types::broadcast_all(&shapes).ok()
            };
            match &node.kind {
                NodeKind::Input { .. } => {}
                NodeKind::Const { value } => {
                    let domain_ok = match value {
                        Scalar::Bool(_) => node.dtype == DType::Bool,
                        Scalar::Int(i) => {
                            node.dtype.is_int() && voxcalc_types::promote::int_fits(*i, node.dtype)
                        }
                        Scalar::Float(_) => node.dtype.is_float(),
                    };
                    if !domain_ok || !node.shape.is_scalar() {
                        return fail("constant value outside its dtype's domain or not 0-d");
                    }
                }
                NodeKind::Cast { operand } => {
                    if child(*operand).shape != node.shape {
                        return fail("cast changes the shape");
                    }
                }
                NodeKind::Unary { op, operand } => {
                    let ins = [child(*operand).dtype];
                    if !loop_exists(*op, &ins, node.dtype) {
                        return fail("operand dtype is not a loop input of the ufunc");
                    }
                    if child(*operand).shape != node.shape {
                        return fail("unary node changes the shape");
                    }
                }
                NodeKind::Binary { op, lhs, rhs } => {
                    let ins = [child(*lhs).dtype, child(*rhs).dtype];
                    if !loop_exists(*op, &ins, node.dtype) {
                        return fail("operand dtypes are not a loop of the ufunc");
                    }
                    if broadcast_of(&[*lhs, *rhs]).as_ref() != Some(&node.shape) {
                        return fail("shape is not the broadcast of the operands");
                    }
                }
                NodeKind::Where {
                    cond,
                    then,
                    otherwise,
                } => {
                    if child(*cond).dtype != DType::Bool
                        || child(*then).dtype != node.dtype
                        || child(*otherwise).dtype != node.dtype
                    {
                        return fail("where operands have the wrong dtypes");
                    }
                    if broadcast_of(&[*cond, *then, *otherwise]).as_ref() != Some(&node.shape) {
                        return fail("shape is not the broadcast of the operands");
                    }
                }
                NodeKind::Clip { operand, lo, hi } => {
                    let ids: Vec<NodeId> = node.kind.children();
                    if ids.iter().any(|&i| child(i).dtype != node.dtype) {
                        return fail("clip operands differ from the result dtype");
                    }
                    let _ = (operand, lo, hi);
                    if broadcast_of(&ids).as_ref() != Some(&node.shape) {
                        return fail("shape is not the broadcast of the operands");
                    }
                }
                NodeKind::Round { operand, .. } => {
                    if child(*operand).dtype != node.dtype || child(*operand).shape != node.shape {
                        return fail("round changes dtype or shape");
                    }
                }
                NodeKind::Reduce(r) => {
                    let input = child(r.operand);
                    let ndim = input.shape.ndim();
                    if r.axes.windows(2).any(|w| w[0] >= w[1]) || r.axes.iter().any(|&a| a >= ndim)
                    {
                        return fail("axes not sorted, distinct and in range");
                    }
                    let mut dims: Vec<usize> = if r.q_is_list { vec![r.q.len()] } else { vec![] };
                    for (axis, &d) in input.shape.dims().iter().enumerate() {
                        if !r.axes.contains(&axis) {
                            dims.push(d);
                        } else if r.keepdims {
                            dims.push(1);
                        }
                    }
                    if dims != node.shape.dims() {
                        return fail("result shape does not follow from axes/keepdims/q");
                    }
                    if r.q.iter().any(|q| !(0.0..=1.0).contains(q)) {
                        return fail("q outside [0, 1]");
                    }
                }
                NodeKind::Index { base, items } => {
                    let n_axes = items
                        .iter()
                        .filter(|i| !matches!(i, IndexItem::NewAxis))
                        .count();
                    if n_axes != child(*base).shape.ndim() {
                        return fail("index items do not cover every axis of the base");
                    }
                }
                NodeKind::MaskSelect { base, mask } => {
                    let (b, m) = (child(*base), child(*mask));
                    if m.dtype != DType::Bool
                        || m.shape.ndim() > b.shape.ndim()
                        || b.shape.dims()[..m.shape.ndim()] != *m.shape.dims()
                    {
                        return fail("mask is not bool or does not match the base's leading axes");
                    }
                }
            }
        }
        // A mask selection feeds a reduction, directly or through one cast.
        for (idx, node) in self.nodes.iter().enumerate() {
            if !matches!(node.kind, NodeKind::MaskSelect { .. }) {
                continue;
            }
            let under_reduce = |i: usize| matches!(self.nodes[i].kind, NodeKind::Reduce(_));
            let ok = parents[idx].iter().all(|&p| {
                under_reduce(p)
                    || (matches!(self.nodes[p].kind, NodeKind::Cast { .. })
                        && parents[p].iter().all(|&pp| under_reduce(pp)))
            });
            if !ok || idx == self.root.0 as usize {
                return Err(format!("node {idx}: mask selection outside a reduction"));
            }
        }
        Ok(())
    }

    fn write_node(&self, out: &mut String, id: NodeId, depth: usize) {
        let node = self.node(id);
        let _ = write!(out, "{:indent$}", "", indent = 2 * depth);
        let _ = writeln!(
            out,
            "{} : {} {} @{:?}",
            node.kind.label(),
            node.dtype,
            node.shape,
            node.range
        );
        for child in node.kind.children() {
            self.write_node(out, child, depth + 1);
        }
    }
}

/// One typed node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node computes.
    pub kind: NodeKind,
    /// numpy dtype of the node's value.
    pub dtype: DType,
    /// Shape of the node's value (`()` for scalars).
    pub shape: Shape,
    /// The source text the node came from (for a cast numpy inserted implicitly: the operand's
    /// range).
    pub range: TextRange,
}

/// A constant's value, already in the domain of the node's dtype: `Bool` for bool, `Int` (in
/// range) for integer dtypes, `Float` for float dtypes (to be rounded to float32/float16 by the
/// consumer when the dtype says so).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i128),
    Float(f64),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// What a node computes.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A bound image, read whole. `input_idx` indexes the images of the [`crate::Env`].
    Input { name: String, input_idx: usize },
    /// A 0-d constant.
    Const { value: Scalar },
    /// numpy's `astype(node.dtype)` (unsafe casting: float to int truncates toward zero, out of
    /// range is undefined in numpy and saturates or wraps in voxcalc; int to narrower int wraps;
    /// anything to bool is `!= 0`, NaN included).
    Cast { operand: NodeId },
    /// A one-input ufunc; `operand.dtype` is the loop's input dtype.
    Unary { op: ElemOp, operand: NodeId },
    /// A two-input ufunc (arithmetic, comparison, logical, bitwise); operand dtypes are the
    /// loop's input dtypes.
    Binary {
        op: ElemOp,
        lhs: NodeId,
        rhs: NodeId,
    },
    /// `np.where(cond, then, otherwise)`: `cond` is bool, `then`/`otherwise` have `node.dtype`.
    Where {
        cond: NodeId,
        then: NodeId,
        otherwise: NodeId,
    },
    /// `np.clip(operand, lo, hi)`: every present operand has `node.dtype`; a missing bound is
    /// no bound. NaN propagates as in numpy (`np.minimum(np.maximum(x, lo), hi)`).
    Clip {
        operand: NodeId,
        lo: Option<NodeId>,
        hi: Option<NodeId>,
    },
    /// `np.round(operand, decimals)`, half to even; `operand.dtype == node.dtype`. For floats:
    /// `rint(x * 10**decimals) / 10**decimals` (or `* 10**-decimals` for negative decimals),
    /// as numpy computes it; for integers with `decimals >= 0` the identity, with negative
    /// `decimals` integer rounding to a multiple of `10**-decimals`, half to even.
    Round { operand: NodeId, decimals: i64 },
    /// A reduction. `operand.dtype` is the dtype the reduction computes in (numpy's implicit
    /// conversions such as int16 -> int64 for `sum` or int -> float64 for `mean` are explicit
    /// casts below it; `any`/`all`/`count_nonzero` see bool); `node.dtype` is the result dtype
    /// (which differs from the operand only for arg-reductions, `count_nonzero`, and float16
    /// statistics computed in float32).
    Reduce(Reduce),
    /// Basic indexing, a view: `items` covers every axis of `base` (an ellipsis is expanded to
    /// full slices) plus inserted `NewAxis` entries.
    Index { base: NodeId, items: Vec<IndexItem> },
    /// `base[mask]` with a bool `mask` whose shape equals the leading axes of `base`: the
    /// selected elements as axis 0 followed by base's remaining axes. Only appears as the
    /// direct operand of a `Reduce` (possibly through a `Cast`) that reduces axis 0. Its
    /// `shape[0]` is an upper bound (the mask's element count): the true length is the number
    /// of `true` mask elements, known only at run time.
    MaskSelect { base: NodeId, mask: NodeId },
}

/// A reduction node's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    /// Which statistic.
    pub op: ReduceOp,
    /// The nan-variant (`np.nanmean` ...): NaN elements are skipped.
    pub skip_nan: bool,
    /// The reduced input.
    pub operand: NodeId,
    /// Axes of the operand that are reduced: sorted, distinct, non-negative; all axes for
    /// `axis=None`.
    pub axes: Vec<usize>,
    /// Reduced axes are kept with extent 1 in the result.
    pub keepdims: bool,
    /// Delta degrees of freedom (`std`/`var` only; 0 elsewhere).
    pub ddof: u32,
    /// Quantile fractions in `[0, 1]` (`Quantile` only; `np.percentile`'s q is divided by 100).
    /// When the user gave a list, the result has a leading axis of `q.len()`.
    pub q: Vec<f64>,
    /// True when q was a list or tuple (result has the extra leading axis).
    pub q_is_list: bool,
}

/// A basic-indexing item, normalised against the base's extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexItem {
    /// A single position (negative indices already wrapped, bounds checked): removes the axis.
    At(usize),
    /// Positions `start, start + step, ...` (`len` of them), as Python's `slice.indices` gives;
    /// `step` is never 0. A full axis is `Slice { start: 0, step: 1, len: extent }`.
    Slice { start: usize, step: i64, len: usize },
    /// `None` / `np.newaxis`: inserts an axis of extent 1.
    NewAxis,
}

/// The statistic a [`Reduce`] node computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Prod,
    Mean,
    Std,
    Var,
    Min,
    Max,
    /// max - min, in the operand dtype (integers wrap as in numpy).
    Ptp,
    Median,
    /// Linear-interpolation quantile (numpy's default `method='linear'`) at each of `q`.
    Quantile,
    ArgMin,
    ArgMax,
    Any,
    All,
    CountNonzero,
}

impl ReduceOp {
    /// Lower-case name used in printing.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Prod => "prod",
            ReduceOp::Mean => "mean",
            ReduceOp::Std => "std",
            ReduceOp::Var => "var",
            ReduceOp::Min => "min",
            ReduceOp::Max => "max",
            ReduceOp::Ptp => "ptp",
            ReduceOp::Median => "median",
            ReduceOp::Quantile => "quantile",
            ReduceOp::ArgMin => "argmin",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::Any => "any",
            ReduceOp::All => "all",
            ReduceOp::CountNonzero => "count_nonzero",
        }
    }
}

/// Primitive elementwise operations (numpy ufuncs). Aliases (`abs`, `mod`, `true_divide`,
/// `degrees`, `bitwise_not`, `fix` ...) map onto these in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElemOp {
    // arithmetic
    Add,
    Subtract,
    Multiply,
    TrueDivide,
    FloorDivide,
    /// Python-style modulo (`%`, `np.remainder`): the sign of the divisor.
    Remainder,
    /// C-style `fmod`: the sign of the dividend.
    Fmod,
    Power,
    FloatPower,
    Negative,
    Positive,
    Absolute,
    Fabs,
    Sign,
    Square,
    Sqrt,
    Cbrt,
    Reciprocal,
    // exponentials and logarithms
    Exp,
    Exp2,
    Expm1,
    Log,
    Log2,
    Log10,
    Log1p,
    Logaddexp,
    Logaddexp2,
    // trigonometric and hyperbolic
    Sin,
    Cos,
    Tan,
    Arcsin,
    Arccos,
    Arctan,
    Sinh,
    Cosh,
    Tanh,
    Arcsinh,
    Arccosh,
    Arctanh,
    Arctan2,
    Hypot,
    Deg2rad,
    Rad2deg,
    // rounding
    Floor,
    Ceil,
    Trunc,
    Rint,
    // extrema
    /// NaN-propagating minimum.
    Minimum,
    /// NaN-propagating maximum.
    Maximum,
    /// NaN-ignoring minimum.
    Fmin,
    /// NaN-ignoring maximum.
    Fmax,
    // float classification
    Isnan,
    Isinf,
    Isfinite,
    Signbit,
    Copysign,
    Heaviside,
    // comparisons (bool result)
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    Equal,
    NotEqual,
    // logical (bool operands and result)
    LogicalAnd,
    LogicalOr,
    LogicalXor,
    LogicalNot,
    // bitwise (integers and bool)
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    /// Bitwise not; logical not on bool.
    Invert,
    LeftShift,
    RightShift,
}

impl ElemOp {
    /// numpy's ufunc name for the operation.
    pub fn name(self) -> &'static str {
        use ElemOp::*;
        match self {
            Add => "add",
            Subtract => "subtract",
            Multiply => "multiply",
            TrueDivide => "divide",
            FloorDivide => "floor_divide",
            Remainder => "remainder",
            Fmod => "fmod",
            Power => "power",
            FloatPower => "float_power",
            Negative => "negative",
            Positive => "positive",
            Absolute => "absolute",
            Fabs => "fabs",
            Sign => "sign",
            Square => "square",
            Sqrt => "sqrt",
            Cbrt => "cbrt",
            Reciprocal => "reciprocal",
            Exp => "exp",
            Exp2 => "exp2",
            Expm1 => "expm1",
            Log => "log",
            Log2 => "log2",
            Log10 => "log10",
            Log1p => "log1p",
            Logaddexp => "logaddexp",
            Logaddexp2 => "logaddexp2",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Arcsin => "arcsin",
            Arccos => "arccos",
            Arctan => "arctan",
            Sinh => "sinh",
            Cosh => "cosh",
            Tanh => "tanh",
            Arcsinh => "arcsinh",
            Arccosh => "arccosh",
            Arctanh => "arctanh",
            Arctan2 => "arctan2",
            Hypot => "hypot",
            Deg2rad => "deg2rad",
            Rad2deg => "rad2deg",
            Floor => "floor",
            Ceil => "ceil",
            Trunc => "trunc",
            Rint => "rint",
            Minimum => "minimum",
            Maximum => "maximum",
            Fmin => "fmin",
            Fmax => "fmax",
            Isnan => "isnan",
            Isinf => "isinf",
            Isfinite => "isfinite",
            Signbit => "signbit",
            Copysign => "copysign",
            Heaviside => "heaviside",
            Greater => "greater",
            GreaterEqual => "greater_equal",
            Less => "less",
            LessEqual => "less_equal",
            Equal => "equal",
            NotEqual => "not_equal",
            LogicalAnd => "logical_and",
            LogicalOr => "logical_or",
            LogicalXor => "logical_xor",
            LogicalNot => "logical_not",
            BitwiseAnd => "bitwise_and",
            BitwiseOr => "bitwise_or",
            BitwiseXor => "bitwise_xor",
            Invert => "invert",
            LeftShift => "left_shift",
            RightShift => "right_shift",
        }
    }
}

/// True when numpy has a loop of `op` taking exactly `ins` and giving `out` (the registry's
/// loop list, plus numpy's special resolutions: integer true division in float64 and logical
/// ufuncs on booleans).
fn loop_exists(op: ElemOp, ins: &[DType], out: DType) -> bool {
    let special = match op {
        ElemOp::TrueDivide => ins.iter().all(|&d| d == DType::F64) && out == DType::F64,
        ElemOp::LogicalAnd | ElemOp::LogicalOr | ElemOp::LogicalXor | ElemOp::LogicalNot => {
            ins.iter().all(|&d| d == DType::Bool) && out == DType::Bool
        }
        _ => false,
    };
    special
        || crate::registry::BUILTINS.iter().any(|b| match b.kind {
            crate::registry::Kind::Ufunc { op: o, loops } if o == op => {
                voxcalc_types::parse_loops(loops)
                    .iter()
                    .any(|l| l.inputs == ins && l.output == out)
            }
            _ => false,
        })
}

impl NodeKind {
    /// The operands of the node, in order.
    pub fn children(&self) -> Vec<NodeId> {
        match self {
            NodeKind::Input { .. } | NodeKind::Const { .. } => vec![],
            NodeKind::Cast { operand }
            | NodeKind::Unary { operand, .. }
            | NodeKind::Round { operand, .. } => vec![*operand],
            NodeKind::Binary { lhs, rhs, .. } => vec![*lhs, *rhs],
            NodeKind::Where {
                cond,
                then,
                otherwise,
            } => vec![*cond, *then, *otherwise],
            NodeKind::Clip { operand, lo, hi } => {
                std::iter::once(*operand).chain(*lo).chain(*hi).collect()
            }
            NodeKind::Reduce(r) => vec![r.operand],
            NodeKind::Index { base, .. } => vec![*base],
            NodeKind::MaskSelect { base, mask } => vec![*base, *mask],
        }
    }

    /// A one-line description without the operands (used by [`Tree::to_text`]).
    pub fn label(&self) -> String {
        match self {
            NodeKind::Input { name, input_idx } => format!("input {name} #{input_idx}"),
            NodeKind::Const { value } => format!("const {value}"),
            NodeKind::Cast { .. } => "cast".to_string(),
            NodeKind::Unary { op, .. } | NodeKind::Binary { op, .. } => op.name().to_string(),
            NodeKind::Where { .. } => "where".to_string(),
            NodeKind::Clip { lo, hi, .. } => {
                format!("clip lo={} hi={}", lo.is_some(), hi.is_some())
            }
            NodeKind::Round { decimals, .. } => format!("round decimals={decimals}"),
            NodeKind::Reduce(r) => {
                let mut s = format!(
                    "reduce {}{} axes={:?}",
                    if r.skip_nan { "nan" } else { "" },
                    r.op.name(),
                    r.axes
                );
                if r.keepdims {
                    s.push_str(" keepdims");
                }
                if r.ddof != 0 {
                    let _ = write!(s, " ddof={}", r.ddof);
                }
                if r.op == ReduceOp::Quantile {
                    let _ = write!(
                        s,
                        " q={:?}{}",
                        r.q,
                        if r.q_is_list { " (list)" } else { "" }
                    );
                }
                s
            }
            NodeKind::Index { items, .. } => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|it| match it {
                        IndexItem::At(i) => i.to_string(),
                        IndexItem::Slice { start, step, len } => {
                            format!("{start}:+{step}x{len}")
                        }
                        IndexItem::NewAxis => "newaxis".to_string(),
                    })
                    .collect();
                format!("index [{}]", parts.join(", "))
            }
            NodeKind::MaskSelect { .. } => "mask_select".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, dtype: DType, dims: &[usize]) -> Node {
        Node {
            kind,
            dtype,
            shape: Shape(dims.to_vec()),
            range: TextRange::default(),
        }
    }

    fn input(dtype: DType, dims: &[usize]) -> Node {
        node(
            NodeKind::Input {
                name: "x".into(),
                input_idx: 0,
            },
            dtype,
            dims,
        )
    }

    #[test]
    fn validate_accepts_exact_loops_and_rejects_implicit_conversions() {
        let add = |lhs_dtype: DType, out: DType| Tree {
            nodes: vec![
                input(lhs_dtype, &[2, 3]),
                node(
                    NodeKind::Const {
                        value: Scalar::Float(1.0),
                    },
                    DType::F32,
                    &[],
                ),
                node(
                    NodeKind::Binary {
                        op: ElemOp::Add,
                        lhs: NodeId(0),
                        rhs: NodeId(1),
                    },
                    out,
                    &[2, 3],
                ),
            ],
            root: NodeId(2),
            inputs_used: vec!["x".into()],
        };
        assert_eq!(add(DType::F32, DType::F32).validate(), Ok(()));
        // int16 + float32 needs an explicit cast of the int16 operand.
        assert!(add(DType::I16, DType::F32).validate().is_err());
        // The output must be the loop's output.
        assert!(add(DType::F32, DType::F64).validate().is_err());
    }

    #[test]
    fn validate_rejects_wrong_shapes_and_stray_masks() {
        let bad_shape = Tree {
            nodes: vec![
                input(DType::F32, &[2, 3]),
                node(
                    NodeKind::Unary {
                        op: ElemOp::Sqrt,
                        operand: NodeId(0),
                    },
                    DType::F32,
                    &[3, 2],
                ),
            ],
            root: NodeId(1),
            inputs_used: vec![],
        };
        assert!(bad_shape.validate().is_err());
        let stray_mask = Tree {
            nodes: vec![
                input(DType::F32, &[2, 3]),
                input(DType::Bool, &[2, 3]),
                node(
                    NodeKind::MaskSelect {
                        base: NodeId(0),
                        mask: NodeId(1),
                    },
                    DType::F32,
                    &[6],
                ),
            ],
            root: NodeId(2),
            inputs_used: vec![],
        };
        assert!(stray_mask.validate().is_err());
    }
}
