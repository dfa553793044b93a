//! The builtins a formula may use, as one data table.
//!
//! Every `np.` function, constant and dtype and every array method is one [`Builtin`] row:
//! its name, what kind of thing it is (with numpy's ufunc loop list for elementwise functions),
//! its parameters with defaults, a one-line signature and a one-line numpy meaning. The checker
//! resolves names through this table, the REPL's `:funcs` lists it, and docs/language.md is
//! generated from it (a test fails when the file is stale).

use voxcalc_types::DType;

use crate::tir::{ElemOp, ReduceOp};

/// Where a builtin's name lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// `np.name` (also `numpy.name`).
    Np,
    /// `array.name(...)`.
    Method,
    /// `array.name` without a call.
    Attribute,
    /// A bare Python builtin name (`abs`, `round`) that nilearn's `eval` would also accept.
    Python,
}

/// A parameter of a builtin, in positional order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The keyword name.
    pub name: &'static str,
    /// The default as numpy writes it (`"None"`, `"0"`, `"'linear'"`); `None` when required.
    pub default: Option<&'static str>,
}

const fn req(name: &'static str) -> Param {
    Param {
        name,
        default: None,
    }
}

const fn opt(name: &'static str, default: &'static str) -> Param {
    Param {
        name,
        default: Some(default),
    }
}

/// Functions that are neither a plain ufunc nor a reduction; the checker builds them from
/// typed-tree nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// `np.where(cond, x, y)`.
    Where,
    /// `np.clip(a, a_min, a_max)`.
    Clip,
    /// `np.round(a, decimals)` / `np.around`.
    Round,
    /// `np.nan_to_num(x, nan=, posinf=, neginf=)`.
    NanToNum,
    /// `np.isposinf(x)` = `isinf(x) & ~signbit(x)`.
    IsPosInf,
    /// `np.isneginf(x)` = `isinf(x) & signbit(x)`.
    IsNegInf,
    /// `a.astype(dtype)`.
    Astype,
}

/// A reduction's statistic and flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReduceSpec {
    /// The statistic.
    pub op: ReduceOp,
    /// The `nan...` variant (skips NaN).
    pub skip_nan: bool,
    /// `percentile` (q in 0..=100) rather than `quantile` (q in 0..=1).
    pub percent: bool,
}

/// The value of an `np.` constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConstValue {
    /// A Python float (weak, like every Python scalar).
    Float(f64),
    /// `np.newaxis`, which is `None`.
    NewAxis,
}

/// What a builtin is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// An elementwise ufunc with numpy's loop list (as `np.<name>.types`, restricted to the
    /// dtypes voxcalc has, `l`/`L` being the 64-bit integers).
    Ufunc { op: ElemOp, loops: &'static str },
    /// Elementwise but built from several nodes, or not a numpy ufunc.
    Function(Special),
    /// A reduction.
    Reduction(ReduceSpec),
    /// A constant.
    Constant(ConstValue),
    /// A dtype, usable in `astype`, as `dtype=` and callable as a cast.
    DType(DType),
    /// An array method that calls the `np` function of the same behaviour (the target's name).
    Method(&'static str),
    /// An array attribute (`.ndim`, `.shape`, `.size`).
    Attribute,
}

/// One row of the registry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Builtin {
    /// The name after `np.` / after the dot / bare.
    pub name: &'static str,
    /// Where the name lives.
    pub namespace: Namespace,
    /// What it is.
    pub kind: Kind,
    /// Parameters in positional order (for methods: without the array itself).
    pub params: &'static [Param],
    /// One-line signature as the user writes it.
    pub signature: &'static str,
    /// One-line numpy meaning.
    pub meaning: &'static str,
}

impl Builtin {
    /// The name as written in a formula: `np.sqrt`, `.mean()`, `.ndim`, `abs`.
    pub fn qualified_name(&self) -> String {
        match self.namespace {
            Namespace::Np => format!("np.{}", self.name),
            Namespace::Method => format!(".{}()", self.name),
            Namespace::Attribute => format!(".{}", self.name),
            Namespace::Python => self.name.to_string(),
        }
    }

    /// How many positional arguments a call takes: (required, at most). Constants and
    /// attributes take none.
    pub fn arity(&self) -> (usize, usize) {
        let required = self.params.iter().filter(|p| p.default.is_none()).count();
        (required, self.params.len())
    }

    /// A short word for the kind, used in listings.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Ufunc { .. } => "ufunc",
            Kind::Function(_) => "function",
            Kind::Reduction(_) => "reduction",
            Kind::Constant(_) => "constant",
            Kind::DType(_) => "dtype",
            Kind::Method(_) => "method",
            Kind::Attribute => "attribute",
        }
    }
}

/// Looks a name up in one namespace.
pub fn lookup(namespace: Namespace, name: &str) -> Option<&'static Builtin> {
    BUILTINS
        .iter()
        .find(|b| b.namespace == namespace && b.name == name)
}

/// Every name of a namespace (for "did you mean" suggestions).
pub fn names(namespace: Namespace) -> impl Iterator<Item = &'static str> {
    BUILTINS
        .iter()
        .filter(move |b| b.namespace == namespace)
        .map(|b| b.name)
}

const X: &[Param] = &[req("x")];
const X12: &[Param] = &[req("x1"), req("x2")];

const ARITH: &str =
    "??->? bb->b BB->B hh->h HH->H ii->i II->I ll->l LL->L qq->q QQ->Q ee->e ff->f dd->d";
const ARITH_NO_BOOL: &str =
    "bb->b BB->B hh->h HH->H ii->i II->I ll->l LL->L qq->q QQ->Q ee->e ff->f dd->d";
const UNARY_NO_BOOL: &str = "b->b B->B h->h H->H i->i I->I l->l L->L q->q Q->Q e->e f->f d->d";
const UNARY_ALL: &str = "?->? b->b B->B h->h H->H i->i I->I l->l L->L q->q Q->Q e->e f->f d->d";
const FLOAT1: &str = "e->e f->f d->d";
const FLOAT2: &str = "ee->e ff->f dd->d";
const CLASSIFY: &str = "?->? b->? B->? h->? H->? i->? I->? l->? L->? q->? Q->? e->? f->? d->?";
const COMPARE: &str = "??->? bb->? BB->? hh->? HH->? ii->? II->? ll->? LL->? qq->? QQ->? qQ->? Qq->? ee->? ff->? dd->?";
const LOGICAL: &str =
    "??->? bb->? BB->? hh->? HH->? ii->? II->? ll->? LL->? qq->? QQ->? ee->? ff->? dd->?";
const BITWISE: &str = "??->? bb->b BB->B hh->h HH->H ii->i II->I ll->l LL->L qq->q QQ->Q";
const SHIFT: &str = "bb->b BB->B hh->h HH->H ii->i II->I ll->l LL->L qq->q QQ->Q";

/// numpy's `clip` ufunc loops (`np._core.umath.clip.types`), used to type `np.clip`.
pub const CLIP_LOOPS: &str = "???->? bbb->b BBB->B hhh->h HHH->H iii->i III->I lll->l LLL->L qqq->q QQQ->Q eee->e fff->f ddd->d";

macro_rules! ufunc {
    ($name:literal, $op:ident, $loops:expr, $params:expr, $sig:literal, $meaning:literal) => {
        Builtin {
            name: $name,
            namespace: Namespace::Np,
            kind: Kind::Ufunc {
                op: ElemOp::$op,
                loops: $loops,
            },
            params: $params,
            signature: $sig,
            meaning: $meaning,
        }
    };
}

macro_rules! func {
    ($name:literal, $special:ident, $params:expr, $sig:literal, $meaning:literal) => {
        Builtin {
            name: $name,
            namespace: Namespace::Np,
            kind: Kind::Function(Special::$special),
            params: $params,
            signature: $sig,
            meaning: $meaning,
        }
    };
}

macro_rules! reduction {
    ($name:literal, $op:ident, $nan:literal, $params:expr, $sig:literal, $meaning:literal) => {
        Builtin {
            name: $name,
            namespace: Namespace::Np,
            kind: Kind::Reduction(ReduceSpec {
                op: ReduceOp::$op,
                skip_nan: $nan,
                percent: false,
            }),
            params: $params,
            signature: $sig,
            meaning: $meaning,
        }
    };
}

macro_rules! dtype {
    ($name:literal, $d:ident) => {
        Builtin {
            name: $name,
            namespace: Namespace::Np,
            kind: Kind::DType(DType::$d),
            params: X,
            signature: concat!("np.", $name, "(x)"),
            meaning: concat!(
                "the ",
                $name,
                " dtype: use in astype/dtype=, or call to cast (x.astype(np.",
                $name,
                "))"
            ),
        }
    };
}

macro_rules! method {
    ($name:literal, $target:literal, $params:expr, $sig:literal, $meaning:literal) => {
        Builtin {
            name: $name,
            namespace: Namespace::Method,
            kind: Kind::Method($target),
            params: $params,
            signature: $sig,
            meaning: $meaning,
        }
    };
}

const SUM_P: &[Param] = &[
    req("a"),
    opt("axis", "None"),
    opt("dtype", "None"),
    opt("out", "None"),
    opt("keepdims", "False"),
];
const STD_P: &[Param] = &[
    req("a"),
    opt("axis", "None"),
    opt("dtype", "None"),
    opt("out", "None"),
    opt("ddof", "0"),
    opt("keepdims", "False"),
];
const MIN_P: &[Param] = &[
    req("a"),
    opt("axis", "None"),
    opt("out", "None"),
    opt("keepdims", "False"),
];
const MEDIAN_P: &[Param] = &[
    req("a"),
    opt("axis", "None"),
    opt("out", "None"),
    opt("overwrite_input", "False"),
    opt("keepdims", "False"),
];
const PCT_P: &[Param] = &[
    req("a"),
    req("q"),
    opt("axis", "None"),
    opt("out", "None"),
    opt("overwrite_input", "False"),
    opt("method", "'linear'"),
    opt("keepdims", "False"),
];
const COUNT_P: &[Param] = &[req("a"), opt("axis", "None"), opt("keepdims", "False")];
const M_SUM_P: &[Param] = &[
    opt("axis", "None"),
    opt("dtype", "None"),
    opt("out", "None"),
    opt("keepdims", "False"),
];
const M_STD_P: &[Param] = &[
    opt("axis", "None"),
    opt("dtype", "None"),
    opt("out", "None"),
    opt("ddof", "0"),
    opt("keepdims", "False"),
];
const M_MIN_P: &[Param] = &[
    opt("axis", "None"),
    opt("out", "None"),
    opt("keepdims", "False"),
];

/// The registry.
pub static BUILTINS: &[Builtin] = &[
    // ---- arithmetic ufuncs
    ufunc!("add", Add, ARITH, X12, "np.add(x1, x2)", "x1 + x2 elementwise (bool + bool is logical or)"),
    ufunc!("subtract", Subtract, ARITH_NO_BOOL, X12, "np.subtract(x1, x2)", "x1 - x2 elementwise (refused for two booleans)"),
    ufunc!("multiply", Multiply, ARITH, X12, "np.multiply(x1, x2)", "x1 * x2 elementwise (bool * bool is logical and)"),
    ufunc!("divide", TrueDivide, FLOAT2, X12, "np.divide(x1, x2)", "true division x1 / x2; integers and bools divide in float64"),
    ufunc!("true_divide", TrueDivide, FLOAT2, X12, "np.true_divide(x1, x2)", "alias of np.divide"),
    ufunc!("floor_divide", FloorDivide, ARITH_NO_BOOL, X12, "np.floor_divide(x1, x2)", "x1 // x2: division rounded toward minus infinity (integer // 0 gives 0)"),
    ufunc!("mod", Remainder, ARITH_NO_BOOL, X12, "np.mod(x1, x2)", "alias of np.remainder"),
    ufunc!("remainder", Remainder, ARITH_NO_BOOL, X12, "np.remainder(x1, x2)", "x1 % x2 with the sign of x2 (Python semantics; integer % 0 gives 0)"),
    ufunc!("fmod", Fmod, ARITH_NO_BOOL, X12, "np.fmod(x1, x2)", "C remainder with the sign of x1"),
    ufunc!("power", Power, ARITH_NO_BOOL, X12, "np.power(x1, x2)", "x1 ** x2 elementwise (integer overflow wraps; integers to negative integer powers are refused)"),
    ufunc!("float_power", FloatPower, "dd->d", X12, "np.float_power(x1, x2)", "x1 ** x2 computed in float64"),
    ufunc!("negative", Negative, UNARY_NO_BOOL, X, "np.negative(x)", "-x (refused for booleans: use ~ or np.logical_not)"),
    ufunc!("positive", Positive, UNARY_NO_BOOL, X, "np.positive(x)", "+x (a copy; refused for booleans)"),
    ufunc!("absolute", Absolute, UNARY_ALL, X, "np.absolute(x)", "|x| elementwise (abs of the most negative integer wraps to itself)"),
    ufunc!("abs", Absolute, UNARY_ALL, X, "np.abs(x)", "alias of np.absolute"),
    ufunc!("fabs", Fabs, FLOAT1, X, "np.fabs(x)", "|x| computed in floating point"),
    ufunc!("sign", Sign, UNARY_NO_BOOL, X, "np.sign(x)", "-1, 0 or 1 by the sign of x (NaN for NaN)"),
    ufunc!("square", Square, UNARY_NO_BOOL, X, "np.square(x)", "x * x"),
    ufunc!("sqrt", Sqrt, FLOAT1, X, "np.sqrt(x)", "square root (NaN for negative input)"),
    ufunc!("cbrt", Cbrt, FLOAT1, X, "np.cbrt(x)", "cube root"),
    ufunc!("reciprocal", Reciprocal, UNARY_NO_BOOL, X, "np.reciprocal(x)", "1 / x in the input dtype (integer reciprocal truncates)"),
    // ---- exponentials and logarithms
    ufunc!("exp", Exp, FLOAT1, X, "np.exp(x)", "e ** x"),
    ufunc!("exp2", Exp2, FLOAT1, X, "np.exp2(x)", "2 ** x"),
    ufunc!("expm1", Expm1, FLOAT1, X, "np.expm1(x)", "e ** x - 1, accurate near 0"),
    ufunc!("log", Log, FLOAT1, X, "np.log(x)", "natural logarithm (-inf at 0, NaN below)"),
    ufunc!("log2", Log2, FLOAT1, X, "np.log2(x)", "base-2 logarithm"),
    ufunc!("log10", Log10, FLOAT1, X, "np.log10(x)", "base-10 logarithm"),
    ufunc!("log1p", Log1p, FLOAT1, X, "np.log1p(x)", "log(1 + x), accurate near 0"),
    ufunc!("logaddexp", Logaddexp, FLOAT2, X12, "np.logaddexp(x1, x2)", "log(exp(x1) + exp(x2)) without overflow"),
    ufunc!("logaddexp2", Logaddexp2, FLOAT2, X12, "np.logaddexp2(x1, x2)", "log2(2**x1 + 2**x2) without overflow"),
    // ---- trigonometry
    ufunc!("sin", Sin, FLOAT1, X, "np.sin(x)", "sine (radians)"),
    ufunc!("cos", Cos, FLOAT1, X, "np.cos(x)", "cosine (radians)"),
    ufunc!("tan", Tan, FLOAT1, X, "np.tan(x)", "tangent (radians)"),
    ufunc!("arcsin", Arcsin, FLOAT1, X, "np.arcsin(x)", "inverse sine"),
    ufunc!("arccos", Arccos, FLOAT1, X, "np.arccos(x)", "inverse cosine"),
    ufunc!("arctan", Arctan, FLOAT1, X, "np.arctan(x)", "inverse tangent"),
    ufunc!("sinh", Sinh, FLOAT1, X, "np.sinh(x)", "hyperbolic sine"),
    ufunc!("cosh", Cosh, FLOAT1, X, "np.cosh(x)", "hyperbolic cosine"),
    ufunc!("tanh", Tanh, FLOAT1, X, "np.tanh(x)", "hyperbolic tangent"),
    ufunc!("arcsinh", Arcsinh, FLOAT1, X, "np.arcsinh(x)", "inverse hyperbolic sine"),
    ufunc!("arccosh", Arccosh, FLOAT1, X, "np.arccosh(x)", "inverse hyperbolic cosine"),
    ufunc!("arctanh", Arctanh, FLOAT1, X, "np.arctanh(x)", "inverse hyperbolic tangent"),
    ufunc!("arctan2", Arctan2, FLOAT2, X12, "np.arctan2(x1, x2)", "angle of the point (x2, x1), quadrant-aware"),
    ufunc!("hypot", Hypot, FLOAT2, X12, "np.hypot(x1, x2)", "sqrt(x1**2 + x2**2) without overflow"),
    ufunc!("deg2rad", Deg2rad, FLOAT1, X, "np.deg2rad(x)", "degrees to radians"),
    ufunc!("rad2deg", Rad2deg, FLOAT1, X, "np.rad2deg(x)", "radians to degrees"),
    ufunc!("radians", Deg2rad, FLOAT1, X, "np.radians(x)", "degrees to radians (same as np.deg2rad)"),
    ufunc!("degrees", Rad2deg, FLOAT1, X, "np.degrees(x)", "radians to degrees (same as np.rad2deg)"),
    // ---- rounding
    ufunc!("floor", Floor, UNARY_ALL, X, "np.floor(x)", "largest integer <= x (integers are kept as they are)"),
    ufunc!("ceil", Ceil, UNARY_ALL, X, "np.ceil(x)", "smallest integer >= x (integers are kept as they are)"),
    ufunc!("trunc", Trunc, UNARY_ALL, X, "np.trunc(x)", "x rounded toward zero"),
    ufunc!("fix", Trunc, UNARY_ALL, X, "np.fix(x)", "x rounded toward zero (same as np.trunc)"),
    ufunc!("rint", Rint, FLOAT1, X, "np.rint(x)", "round to the nearest integer, half to even"),
    func!("round", Round, &[req("a"), opt("decimals", "0"), opt("out", "None")], "np.round(a, decimals=0)", "round to `decimals` decimal places, half to even"),
    func!("around", Round, &[req("a"), opt("decimals", "0"), opt("out", "None")], "np.around(a, decimals=0)", "alias of np.round"),
    // ---- extrema and selection
    ufunc!("minimum", Minimum, ARITH, X12, "np.minimum(x1, x2)", "elementwise minimum, NaN if either is NaN"),
    ufunc!("maximum", Maximum, ARITH, X12, "np.maximum(x1, x2)", "elementwise maximum, NaN if either is NaN"),
    ufunc!("fmin", Fmin, ARITH, X12, "np.fmin(x1, x2)", "elementwise minimum ignoring NaN"),
    ufunc!("fmax", Fmax, ARITH, X12, "np.fmax(x1, x2)", "elementwise maximum ignoring NaN"),
    func!("clip", Clip, &[req("a"), opt("a_min", "None"), opt("a_max", "None"), opt("out", "None"), opt("min", "None"), opt("max", "None")], "np.clip(a, a_min, a_max)", "limit values to [a_min, a_max] (either bound may be None)"),
    func!("where", Where, &[req("condition"), req("x"), req("y")], "np.where(condition, x, y)", "x where condition is true, else y"),
    // ---- classification
    ufunc!("isnan", Isnan, CLASSIFY, X, "np.isnan(x)", "true where x is NaN"),
    ufunc!("isinf", Isinf, CLASSIFY, X, "np.isinf(x)", "true where x is +inf or -inf"),
    ufunc!("isfinite", Isfinite, CLASSIFY, X, "np.isfinite(x)", "true where x is neither NaN nor infinite"),
    func!("isposinf", IsPosInf, &[req("x"), opt("out", "None")], "np.isposinf(x)", "true where x is +inf"),
    func!("isneginf", IsNegInf, &[req("x"), opt("out", "None")], "np.isneginf(x)", "true where x is -inf"),
    ufunc!("signbit", Signbit, "e->? f->? d->?", X, "np.signbit(x)", "true where the sign bit is set (also for -0.0 and negative NaN)"),
    ufunc!("copysign", Copysign, FLOAT2, X12, "np.copysign(x1, x2)", "magnitude of x1 with the sign of x2"),
    ufunc!("heaviside", Heaviside, FLOAT2, X12, "np.heaviside(x1, x2)", "0 where x1 < 0, x2 where x1 == 0, 1 where x1 > 0"),
    func!("nan_to_num", NanToNum, &[req("x"), opt("copy", "True"), opt("nan", "0.0"), opt("posinf", "None"), opt("neginf", "None")], "np.nan_to_num(x, nan=0.0, posinf=None, neginf=None)", "replace NaN by `nan` and infinities by `posinf`/`neginf` (default: the dtype's largest/smallest finite value)"),
    // ---- comparisons and logic
    ufunc!("greater", Greater, COMPARE, X12, "np.greater(x1, x2)", "x1 > x2"),
    ufunc!("greater_equal", GreaterEqual, COMPARE, X12, "np.greater_equal(x1, x2)", "x1 >= x2"),
    ufunc!("less", Less, COMPARE, X12, "np.less(x1, x2)", "x1 < x2"),
    ufunc!("less_equal", LessEqual, COMPARE, X12, "np.less_equal(x1, x2)", "x1 <= x2"),
    ufunc!("equal", Equal, COMPARE, X12, "np.equal(x1, x2)", "x1 == x2"),
    ufunc!("not_equal", NotEqual, COMPARE, X12, "np.not_equal(x1, x2)", "x1 != x2"),
    ufunc!("logical_and", LogicalAnd, LOGICAL, X12, "np.logical_and(x1, x2)", "truth of x1 and x2 (nonzero is true)"),
    ufunc!("logical_or", LogicalOr, LOGICAL, X12, "np.logical_or(x1, x2)", "truth of x1 or x2"),
    ufunc!("logical_xor", LogicalXor, LOGICAL, X12, "np.logical_xor(x1, x2)", "truth of exactly one of x1, x2"),
    ufunc!("logical_not", LogicalNot, CLASSIFY, X, "np.logical_not(x)", "truth of not x"),
    ufunc!("bitwise_and", BitwiseAnd, BITWISE, X12, "np.bitwise_and(x1, x2)", "x1 & x2 (integers and booleans)"),
    ufunc!("bitwise_or", BitwiseOr, BITWISE, X12, "np.bitwise_or(x1, x2)", "x1 | x2 (integers and booleans)"),
    ufunc!("bitwise_xor", BitwiseXor, BITWISE, X12, "np.bitwise_xor(x1, x2)", "x1 ^ x2 (integers and booleans)"),
    ufunc!("bitwise_not", Invert, BITWISE_NOT, X, "np.bitwise_not(x)", "~x: bitwise not, logical not for booleans"),
    ufunc!("invert", Invert, BITWISE_NOT, X, "np.invert(x)", "~x: bitwise not, logical not for booleans"),
    ufunc!("left_shift", LeftShift, SHIFT, X12, "np.left_shift(x1, x2)", "x1 << x2 (integers)"),
    ufunc!("right_shift", RightShift, SHIFT, X12, "np.right_shift(x1, x2)", "x1 >> x2, arithmetic for signed integers"),
    // ---- reductions
    reduction!("sum", Sum, false, SUM_P, "np.sum(a, axis=None, dtype=None, keepdims=False)", "sum; small integers and bools accumulate in int64 (unsigned: uint64)"),
    reduction!("prod", Prod, false, SUM_P, "np.prod(a, axis=None, dtype=None, keepdims=False)", "product; small integers and bools accumulate in int64 (unsigned: uint64)"),
    reduction!("mean", Mean, false, SUM_P, "np.mean(a, axis=None, dtype=None, keepdims=False)", "arithmetic mean; integers and bools give float64"),
    reduction!("std", Std, false, STD_P, "np.std(a, axis=None, dtype=None, ddof=0, keepdims=False)", "standard deviation with divisor N - ddof; integers give float64"),
    reduction!("var", Var, false, STD_P, "np.var(a, axis=None, dtype=None, ddof=0, keepdims=False)", "variance with divisor N - ddof; integers give float64"),
    reduction!("min", Min, false, MIN_P, "np.min(a, axis=None, keepdims=False)", "minimum (NaN if any element is NaN)"),
    reduction!("amin", Min, false, MIN_P, "np.amin(a, axis=None, keepdims=False)", "alias of np.min"),
    reduction!("max", Max, false, MIN_P, "np.max(a, axis=None, keepdims=False)", "maximum (NaN if any element is NaN)"),
    reduction!("amax", Max, false, MIN_P, "np.amax(a, axis=None, keepdims=False)", "alias of np.max"),
    reduction!("ptp", Ptp, false, MIN_P, "np.ptp(a, axis=None, keepdims=False)", "max - min in the input dtype (refused for booleans)"),
    reduction!("median", Median, false, MEDIAN_P, "np.median(a, axis=None, keepdims=False)", "median; integers give float64"),
    Builtin {
        name: "percentile",
        namespace: Namespace::Np,
        kind: Kind::Reduction(ReduceSpec { op: ReduceOp::Quantile, skip_nan: false, percent: true }),
        params: PCT_P,
        signature: "np.percentile(a, q, axis=None, method='linear', keepdims=False)",
        meaning: "q-th percentile(s), q in [0, 100] (a list of q adds a leading axis); linear interpolation",
    },
    reduction!("quantile", Quantile, false, PCT_P, "np.quantile(a, q, axis=None, method='linear', keepdims=False)", "q-th quantile(s), q in [0, 1] (a list of q adds a leading axis); linear interpolation"),
    reduction!("argmin", ArgMin, false, MIN_P, "np.argmin(a, axis=None, keepdims=False)", "index of the first minimum (flat index for axis=None), int64"),
    reduction!("argmax", ArgMax, false, MIN_P, "np.argmax(a, axis=None, keepdims=False)", "index of the first maximum (flat index for axis=None), int64"),
    reduction!("any", Any, false, MIN_P, "np.any(a, axis=None, keepdims=False)", "true if any element is nonzero"),
    reduction!("all", All, false, MIN_P, "np.all(a, axis=None, keepdims=False)", "true if every element is nonzero"),
    reduction!("count_nonzero", CountNonzero, false, COUNT_P, "np.count_nonzero(a, axis=None, keepdims=False)", "number of nonzero elements, int64"),
    reduction!("nansum", Sum, true, SUM_P, "np.nansum(a, axis=None, dtype=None, keepdims=False)", "sum treating NaN as 0"),
    reduction!("nanprod", Prod, true, SUM_P, "np.nanprod(a, axis=None, dtype=None, keepdims=False)", "product treating NaN as 1"),
    reduction!("nanmean", Mean, true, SUM_P, "np.nanmean(a, axis=None, dtype=None, keepdims=False)", "mean ignoring NaN"),
    reduction!("nanstd", Std, true, STD_P, "np.nanstd(a, axis=None, dtype=None, ddof=0, keepdims=False)", "standard deviation ignoring NaN"),
    reduction!("nanvar", Var, true, STD_P, "np.nanvar(a, axis=None, dtype=None, ddof=0, keepdims=False)", "variance ignoring NaN"),
    reduction!("nanmin", Min, true, MIN_P, "np.nanmin(a, axis=None, keepdims=False)", "minimum ignoring NaN"),
    reduction!("nanmax", Max, true, MIN_P, "np.nanmax(a, axis=None, keepdims=False)", "maximum ignoring NaN"),
    reduction!("nanmedian", Median, true, MEDIAN_P, "np.nanmedian(a, axis=None, keepdims=False)", "median ignoring NaN"),
    Builtin {
        name: "nanpercentile",
        namespace: Namespace::Np,
        kind: Kind::Reduction(ReduceSpec { op: ReduceOp::Quantile, skip_nan: true, percent: true }),
        params: PCT_P,
        signature: "np.nanpercentile(a, q, axis=None, method='linear', keepdims=False)",
        meaning: "percentile(s) ignoring NaN",
    },
    reduction!("nanquantile", Quantile, true, PCT_P, "np.nanquantile(a, q, axis=None, method='linear', keepdims=False)", "quantile(s) ignoring NaN"),
    // ---- constants
    Builtin { name: "pi", namespace: Namespace::Np, kind: Kind::Constant(ConstValue::Float(std::f64::consts::PI)), params: &[], signature: "np.pi", meaning: "3.141592653589793 (a Python float: weak)" },
    Builtin { name: "e", namespace: Namespace::Np, kind: Kind::Constant(ConstValue::Float(std::f64::consts::E)), params: &[], signature: "np.e", meaning: "2.718281828459045 (a Python float: weak)" },
    Builtin { name: "nan", namespace: Namespace::Np, kind: Kind::Constant(ConstValue::Float(f64::NAN)), params: &[], signature: "np.nan", meaning: "not a number (a Python float: weak)" },
    Builtin { name: "inf", namespace: Namespace::Np, kind: Kind::Constant(ConstValue::Float(f64::INFINITY)), params: &[], signature: "np.inf", meaning: "positive infinity (a Python float: weak)" },
    Builtin { name: "newaxis", namespace: Namespace::Np, kind: Kind::Constant(ConstValue::NewAxis), params: &[], signature: "np.newaxis", meaning: "None: inserts an axis of length 1 in an index (x[..., np.newaxis])" },
    // ---- dtypes
    dtype!("bool", Bool),
    dtype!("bool_", Bool),
    dtype!("uint8", U8),
    dtype!("int8", I8),
    dtype!("uint16", U16),
    dtype!("int16", I16),
    dtype!("uint32", U32),
    dtype!("int32", I32),
    dtype!("uint64", U64),
    dtype!("int64", I64),
    dtype!("float16", F16),
    dtype!("float32", F32),
    dtype!("float64", F64),
    dtype!("double", F64),
    dtype!("single", F32),
    dtype!("half", F16),
    // ---- array methods
    Builtin { name: "astype", namespace: Namespace::Method, kind: Kind::Function(Special::Astype), params: &[req("dtype")], signature: "a.astype(dtype)", meaning: "a converted to dtype (unsafe casting: floats truncate toward zero, integers wrap)" },
    method!("sum", "sum", M_SUM_P, "a.sum(axis=None, dtype=None, keepdims=False)", "same as np.sum(a, ...)"),
    method!("prod", "prod", M_SUM_P, "a.prod(axis=None, dtype=None, keepdims=False)", "same as np.prod(a, ...)"),
    method!("mean", "mean", M_SUM_P, "a.mean(axis=None, dtype=None, keepdims=False)", "same as np.mean(a, ...)"),
    method!("std", "std", M_STD_P, "a.std(axis=None, dtype=None, ddof=0, keepdims=False)", "same as np.std(a, ...)"),
    method!("var", "var", M_STD_P, "a.var(axis=None, dtype=None, ddof=0, keepdims=False)", "same as np.var(a, ...)"),
    method!("min", "min", M_MIN_P, "a.min(axis=None, keepdims=False)", "same as np.min(a, ...)"),
    method!("max", "max", M_MIN_P, "a.max(axis=None, keepdims=False)", "same as np.max(a, ...)"),
    method!("any", "any", M_MIN_P, "a.any(axis=None, keepdims=False)", "same as np.any(a, ...)"),
    method!("all", "all", M_MIN_P, "a.all(axis=None, keepdims=False)", "same as np.all(a, ...)"),
    method!("argmin", "argmin", M_MIN_P, "a.argmin(axis=None, keepdims=False)", "same as np.argmin(a, ...)"),
    method!("argmax", "argmax", M_MIN_P, "a.argmax(axis=None, keepdims=False)", "same as np.argmax(a, ...)"),
    method!("clip", "clip", &[opt("min", "None"), opt("max", "None"), opt("out", "None")], "a.clip(min=None, max=None)", "same as np.clip(a, min, max)"),
    method!("round", "round", &[opt("decimals", "0"), opt("out", "None")], "a.round(decimals=0)", "same as np.round(a, decimals)"),
    Builtin { name: "ndim", namespace: Namespace::Attribute, kind: Kind::Attribute, params: &[], signature: "a.ndim", meaning: "number of axes (a Python int)" },
    Builtin { name: "shape", namespace: Namespace::Attribute, kind: Kind::Attribute, params: &[], signature: "a.shape[i]", meaning: "extent of axis i (a Python int); only usable indexed" },
    Builtin { name: "size", namespace: Namespace::Attribute, kind: Kind::Attribute, params: &[], signature: "a.size", meaning: "number of elements (a Python int)" },
    // ---- Python builtins nilearn's eval also accepts
    Builtin { name: "abs", namespace: Namespace::Python, kind: Kind::Method("absolute"), params: X, signature: "abs(x)", meaning: "Python's abs: np.absolute for arrays" },
    Builtin { name: "round", namespace: Namespace::Python, kind: Kind::Method("round"), params: &[req("number"), opt("ndigits", "None")], signature: "round(x, ndigits=None)", meaning: "Python's round: np.round for arrays; an int for a Python number without ndigits" },
    Builtin { name: "float", namespace: Namespace::Python, kind: Kind::DType(DType::F64), params: X, signature: "float(x)", meaning: "Python's float of a Python number; as a dtype (astype(float), dtype=float) it is float64" },
    Builtin { name: "int", namespace: Namespace::Python, kind: Kind::DType(DType::I64), params: X, signature: "int(x)", meaning: "Python's int of a Python number (truncates); as a dtype it is int64" },
    Builtin { name: "bool", namespace: Namespace::Python, kind: Kind::DType(DType::Bool), params: X, signature: "bool(x)", meaning: "Python's bool of a Python number; as a dtype it is bool" },
];

const BITWISE_NOT: &str = "?->? b->b B->B h->h H->H i->i I->I l->l L->L q->q Q->Q";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_namespace() {
        for (i, a) in BUILTINS.iter().enumerate() {
            for b in &BUILTINS[i + 1..] {
                assert!(
                    !(a.namespace == b.namespace && a.name == b.name),
                    "duplicate {}",
                    a.qualified_name()
                );
            }
        }
    }

    #[test]
    fn every_ufunc_loop_list_parses_and_matches_the_arity() {
        for b in BUILTINS {
            if let Kind::Ufunc { loops, .. } = b.kind {
                let parsed = voxcalc_types::parse_loops(loops);
                assert!(!parsed.is_empty(), "{}", b.name);
                for sig in loops.split_whitespace() {
                    assert!(
                        voxcalc_types::parse_loop(sig).is_some(),
                        "{}: {sig}",
                        b.name
                    );
                }
                assert!(
                    parsed.iter().all(|l| l.inputs.len() == b.params.len()),
                    "{}",
                    b.name
                );
            }
        }
    }

    #[test]
    fn arity_counts_required_and_optional_parameters() {
        assert_eq!(lookup(Namespace::Np, "sqrt").unwrap().arity(), (1, 1));
        assert_eq!(lookup(Namespace::Np, "percentile").unwrap().arity(), (2, 7));
        assert_eq!(lookup(Namespace::Method, "mean").unwrap().arity(), (0, 4));
        assert_eq!(lookup(Namespace::Np, "pi").unwrap().arity(), (0, 0));
    }

    #[test]
    fn methods_point_at_np_functions() {
        for b in BUILTINS {
            if let Kind::Method(target) = b.kind {
                assert!(
                    lookup(Namespace::Np, target).is_some(),
                    "{} -> {target}",
                    b.name
                );
            }
        }
    }
}
