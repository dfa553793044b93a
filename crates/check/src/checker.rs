//! The checker proper: one recursive walk over the AST that evaluates Python-scalar parts,
//! resolves names, applies numpy's typing rules and appends typed nodes to an arena.

use voxcalc_syntax::ast::{self, BinaryOp, BoolOp, CmpOp, Expr, ExprKind, UnaryOp};
use voxcalc_syntax::TextRange;
use voxcalc_types::promote::{common_dtype, int_fits, operand_dtypes};
use voxcalc_types::{broadcast_all, find_loop, parse_loops, DType, Loop, Operand, Shape};

use crate::error::{CheckError, ErrorKind};
use crate::pyscalar::{self, cmp_symbol, op_symbol, Py};
use crate::registry::{self, Builtin, ConstValue, Kind, Namespace, ReduceSpec, Special};
use crate::text::{did_you_mean, operand_text, unparse};
use crate::tir::{ElemOp, IndexItem, Node, NodeId, NodeKind, Reduce, ReduceOp, Scalar, Tree};
use crate::{Env, MAX_CHECK_DEPTH, MAX_TREE_DEPTH};

/// Marker: an error has been recorded in `Checker::errors` (or the AST held a parse error).
#[derive(Debug)]
pub(crate) struct Reported;

type R<T> = Result<T, Reported>;

/// What an expression evaluates to while checking.
#[derive(Clone, Debug)]
enum Val {
    /// An array or numpy scalar: a typed node (strong dtype).
    Arr(NodeId),
    /// A Python number (weak).
    Py(Py),
    /// A string literal (`method='linear'`, `astype('float32')`).
    Str(String),
    /// `None` (also `np.newaxis`).
    None,
    /// `...`
    Ellipsis,
    /// A tuple or list (`axis=(0, 1)`, `q=[5, 95]`).
    Seq {
        items: Vec<(Val, TextRange)>,
        is_list: bool,
    },
    /// The `np` module.
    Module,
    /// An `np.` function.
    Func(&'static Builtin),
    /// An array method bound to its array (an `Arr` or a `Masked`).
    Bound(&'static Builtin, Box<Val>),
    /// A Python builtin (`abs`, `round`).
    PyBuiltin(&'static Builtin),
    /// A numpy dtype (`np.float32`).
    DType(DType),
    /// A Python type used as a dtype (`float`, `int`, `bool`).
    PyType(&'static str, DType),
    /// `img.shape`.
    ShapeOf(Vec<usize>),
    /// `base[mask]` (boolean-mask selection), only valid as a reduction's operand.
    Masked { base: NodeId, mask: NodeId },
}

/// An evaluated argument with its source.
#[derive(Clone, Debug)]
struct Arg<'e> {
    val: Val,
    range: TextRange,
    expr: Option<&'e Expr>,
}

impl Arg<'_> {
    fn text(&self) -> String {
        self.expr
            .map(operand_text)
            .unwrap_or_else(|| "x".to_string())
    }
}

/// Arguments bound to parameter names.
struct Bound<'e> {
    args: Vec<(&'static str, Arg<'e>)>,
}

impl<'e> Bound<'e> {
    fn get(&self, name: &str) -> Option<&Arg<'e>> {
        self.args.iter().find(|(n, _)| *n == name).map(|(_, a)| a)
    }

    /// The argument, treating an explicit `None` like an absent one.
    fn get_some(&self, name: &str) -> Option<&Arg<'e>> {
        self.get(name).filter(|a| !matches!(a.val, Val::None))
    }
}

/// Names Python has that a formula must never reach.
const FORBIDDEN: &[&str] = &[
    "__import__",
    "open",
    "eval",
    "exec",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "input",
    "print",
    "help",
    "dir",
    "breakpoint",
    "exit",
    "quit",
    "os",
    "sys",
    "subprocess",
    "shutil",
    "pathlib",
    "importlib",
    "builtins",
    "__builtins__",
    "type",
    "object",
    "memoryview",
    "bytes",
    "bytearray",
    "lambda",
    "super",
    "classmethod",
    "staticmethod",
    "property",
    "hasattr",
    "id",
    "hash",
    "iter",
    "next",
    "map",
    "filter",
    "zip",
    "enumerate",
    "sorted",
    "reversed",
    "range",
    "len",
    "list",
    "tuple",
    "dict",
    "set",
    "frozenset",
    "str",
    "repr",
    "format",
    "chr",
    "ord",
    "complex",
    "divmod",
    "isinstance",
    "issubclass",
    "callable",
    "nib",
    "nibabel",
    "nilearn",
    "scipy",
    "math",
];

/// Python builtins with an `np` counterpart, and that counterpart.
const PY_TO_NP: &[(&str, &str)] = &[
    ("min", "np.minimum (elementwise) or np.min (reduction)"),
    ("max", "np.maximum (elementwise) or np.max (reduction)"),
    ("sum", "np.sum"),
    ("any", "np.any"),
    ("all", "np.all"),
    ("pow", "np.power"),
];

/// numpy functions that exist but are refused: they read or write files or need the outside
/// world.
const NP_FORBIDDEN: &[&str] = &[
    "load",
    "save",
    "savez",
    "savetxt",
    "loadtxt",
    "genfromtxt",
    "fromfile",
    "memmap",
    "lib",
    "ctypeslib",
    "random",
    "testing",
    "f2py",
    "distutils",
    "core",
    "_core",
    "os",
    "sys",
    "frompyfunc",
    "vectorize",
    "set_printoptions",
    "seterr",
    "show_config",
    "info",
    "source",
];

/// Array methods numpy has that voxcalc does not (yet).
const UNSUPPORTED_METHODS: &[&str] = &[
    "reshape",
    "flatten",
    "ravel",
    "sort",
    "argsort",
    "cumsum",
    "cumprod",
    "squeeze",
    "transpose",
    "swapaxes",
    "copy",
    "nonzero",
    "tolist",
    "item",
    "fill",
    "view",
    "take",
    "repeat",
    "dot",
    "conj",
    "real",
    "imag",
    "flat",
    "itemsize",
    "nbytes",
    "strides",
    "data",
    "base",
    "ctypes",
    "tofile",
    "dump",
    "dumps",
    "byteswap",
    "partition",
    "searchsorted",
    "compress",
    "trace",
    "diagonal",
    "choose",
    "put",
    "resize",
    "setflags",
    "getfield",
    "setfield",
    "newbyteorder",
];

/// Quantile methods numpy has besides `linear`.
const QUANTILE_METHODS: &[&str] = &[
    "inverted_cdf",
    "averaged_inverted_cdf",
    "closest_observation",
    "interpolated_inverted_cdf",
    "hazen",
    "weibull",
    "median_unbiased",
    "normal_unbiased",
    "lower",
    "higher",
    "midpoint",
    "nearest",
];

pub(crate) struct Checker<'a> {
    env: &'a Env,
    nodes: Vec<Node>,
    errors: Vec<CheckError>,
    used: Vec<String>,
    depth: usize,
    too_deep_reported: bool,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(env: &'a Env) -> Checker<'a> {
        Checker {
            env,
            nodes: Vec::new(),
            errors: Vec::new(),
            used: Vec::new(),
            depth: 0,
            too_deep_reported: false,
        }
    }

    pub(crate) fn run(mut self, expr: &Expr) -> Result<Tree, Vec<CheckError>> {
        let res = self.arg(expr).and_then(|a| self.root_node(&a));
        match res {
            Ok(root) if self.errors.is_empty() => match self.compact(root) {
                Some(tree) => Ok(tree),
                None => Err(vec![CheckError::new(
                    ErrorKind::TooDeep,
                    expr.range,
                    format!("the typed formula nests deeper than {MAX_TREE_DEPTH} operations"),
                )
                .help("split the formula into simpler parts")]),
            },
            _ => Err(self.errors),
        }
    }

    // ----- infrastructure

    fn err(&mut self, e: CheckError) -> Reported {
        // A second error at the same place says nothing new.
        if !self
            .errors
            .iter()
            .any(|old| old.range == e.range && old.kind == e.kind)
        {
            self.errors.push(e);
        }
        Reported
    }

    fn push(&mut self, kind: NodeKind, dtype: DType, shape: Shape, range: TextRange) -> NodeId {
        self.nodes.push(Node {
            kind,
            dtype,
            shape,
            range,
        });
        NodeId((self.nodes.len() - 1) as u32)
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    fn root_node(&mut self, a: &Arg) -> R<NodeId> {
        match a.val {
            Val::Arr(id) => Ok(id),
            Val::Py(p) => {
                let ops = [py_operand(p)];
                let dtype = common_dtype(&ops);
                self.check_py_int(p, dtype, a.range, None)?;
                Ok(self.push_const(p, dtype, a.range))
            }
            _ => {
                self.need_value(a)?;
                Err(Reported)
            }
        }
    }

    /// Rebuilds the arena with only the nodes reachable from `root`, operands first; `None`
    /// when the tree is deeper than [`MAX_TREE_DEPTH`].
    fn compact(&self, root: NodeId) -> Option<Tree> {
        let mut new_id: Vec<Option<NodeId>> = vec![None; self.nodes.len()];
        let mut depth = vec![0usize; self.nodes.len()];
        let mut out: Vec<Node> = Vec::new();
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if new_id[id.0 as usize].is_some() {
                continue;
            }
            let node = self.node(id);
            let children = node.kind.children();
            if !expanded {
                stack.push((id, true));
                stack.extend(children.iter().rev().map(|&c| (c, false)));
                continue;
            }
            let d = 1 + children
                .iter()
                .map(|c| depth[c.0 as usize])
                .max()
                .unwrap_or(0);
            if d > MAX_TREE_DEPTH {
                return None;
            }
            depth[id.0 as usize] = d;
            let map = |c: NodeId| new_id[c.0 as usize].expect("operands are emitted first");
            let kind = remap(&node.kind, map);
            out.push(Node {
                kind,
                ..node.clone()
            });
            new_id[id.0 as usize] = Some(NodeId((out.len() - 1) as u32));
        }
        let root = new_id[root.0 as usize]?;
        Some(Tree {
            nodes: out,
            root,
            inputs_used: self.used.clone(),
        })
    }

    fn arg<'e>(&mut self, e: &'e Expr) -> R<Arg<'e>> {
        if self.depth >= MAX_CHECK_DEPTH {
            if !self.too_deep_reported {
                self.too_deep_reported = true;
                self.err(
                    CheckError::new(
                        ErrorKind::TooDeep,
                        e.range,
                        format!("the formula nests deeper than {MAX_CHECK_DEPTH} levels"),
                    )
                    .label("too deep from here on")
                    .help("split the formula into simpler parts"),
                );
            }
            return Err(Reported);
        }
        self.depth += 1;
        let val = self.expr(e);
        self.depth -= 1;
        Ok(Arg {
            val: val?,
            range: e.range,
            expr: Some(e),
        })
    }

    /// Evaluates every expression, so that independent errors are all reported, then fails if
    /// any failed.
    fn args<'e>(&mut self, es: &'e [Expr]) -> R<Vec<Arg<'e>>> {
        let res: Vec<R<Arg<'e>>> = es.iter().map(|e| self.arg(e)).collect();
        res.into_iter().collect()
    }

    fn expr(&mut self, e: &Expr) -> R<Val> {
        match &e.kind {
            ExprKind::Name(n) => self.name(n),
            ExprKind::Int(i) => match i128::try_from(*i) {
                Ok(v) => Ok(Val::Py(Py::Int(v))),
                Err(_) => Err(self.err(CheckError::new(
                    ErrorKind::PythonArithmetic,
                    e.range,
                    "integer literal too large",
                ))),
            },
            ExprKind::Float(x) => Ok(Val::Py(Py::Float(*x))),
            ExprKind::Str(s) => Ok(Val::Str(s.clone())),
            ExprKind::Bool(b) => Ok(Val::Py(Py::Bool(*b))),
            ExprKind::None => Ok(Val::None),
            ExprKind::Ellipsis => Ok(Val::Ellipsis),
            ExprKind::Tuple(items) | ExprKind::List(items) => {
                let args = self.args(items)?;
                Ok(Val::Seq {
                    items: args.into_iter().map(|a| (a.val, a.range)).collect(),
                    is_list: matches!(e.kind, ExprKind::List(_)),
                })
            }
            ExprKind::Unary { op, operand } => self.unary(e, *op, operand),
            ExprKind::Binary { op, left, right } => self.binary(e, *op, left, right),
            ExprKind::Compare { left, ops } => self.compare(e, left, ops),
            ExprKind::BoolOp { op, values } => self.bool_op(e, *op, values),
            ExprKind::IfExp { body, test, orelse } => self.if_exp(e, body, test, orelse),
            ExprKind::Call {
                func,
                args,
                keywords,
            } => self.call(e, func, args, keywords),
            ExprKind::Attribute { value, attr } => self.attribute(value, attr),
            ExprKind::Subscript { value, items } => self.subscript(e, value, items),
            ExprKind::Slice { .. } => Err(self.err(CheckError::new(
                ErrorKind::NotInLanguage,
                e.range,
                "a slice (`a:b`) is only valid inside `[...]`",
            ))),
            ExprKind::Error => Err(Reported),
        }
    }

    // ----- values

    fn describe(&self, v: &Val) -> String {
        match v {
            Val::Arr(id) => {
                let n = self.node(*id);
                format!("an array of {} {}", n.dtype, n.shape)
            }
            Val::Py(p) => format!("a Python {}", p.type_name()),
            Val::Str(_) => "a string".into(),
            Val::None => "None".into(),
            Val::Ellipsis => "an ellipsis (`...`)".into(),
            Val::Seq { is_list: true, .. } => "a list".into(),
            Val::Seq { .. } => "a tuple".into(),
            Val::Module => "the numpy module".into(),
            Val::Func(b) => format!("the function {}", b.qualified_name()),
            Val::Bound(b, _) => format!("the method {}", b.qualified_name()),
            Val::PyBuiltin(b) => format!("the Python function {}", b.name),
            Val::DType(d) => format!("the dtype {d}"),
            Val::PyType(name, _) => format!("the Python type {name}"),
            Val::ShapeOf(_) => "a shape tuple".into(),
            Val::Masked { .. } => "a boolean-mask selection".into(),
        }
    }

    /// Refuses anything that is not an array or a Python number, with an explanation fitted to
    /// what it is.
    fn need_value(&mut self, a: &Arg) -> R<()> {
        let what = self.describe(&a.val);
        let e = match &a.val {
            Val::Arr(_) | Val::Py(_) => return Ok(()),
            Val::Masked { .. } => CheckError::new(
                ErrorKind::BooleanMask,
                a.range,
                "boolean-mask indexing is only supported as the argument of a reduction",
            )
            .label("its length is only known at run time")
            .note("`img[mask > 0]` is a 1-D selection; voxcalc accepts it directly inside a reduction such as np.mean(img[mask > 0]) or img[mask > 0].std()")
            .help("to keep the image's shape, use np.where(mask > 0, img, 0)"),
            Val::Func(b) => CheckError::new(
                ErrorKind::NotAValue,
                a.range,
                format!("{} is a function, not a value", b.qualified_name()),
            )
            .help(format!("call it: {}", b.signature)),
            Val::Bound(b, _) => CheckError::new(
                ErrorKind::NotAValue,
                a.range,
                format!("{} is a method, not a value", b.qualified_name()),
            )
            .help(format!("call it: {}", b.signature)),
            Val::ShapeOf(_) => CheckError::new(
                ErrorKind::NotAValue,
                a.range,
                "a shape tuple is not a value in formulas",
            )
            .help("index it: img.shape[0]"),
            Val::Seq { .. } => CheckError::new(
                ErrorKind::NotAValue,
                a.range,
                format!("expected an array or a number, found {what}"),
            )
            .note("lists and tuples are accepted only as arguments such as axis=(0, 1) or q=[5, 95]"),
            _ => CheckError::new(
                ErrorKind::NotAValue,
                a.range,
                format!("expected an array or a number, found {what}"),
            ),
        };
        Err(self.err(e.label(what)))
    }

    fn push_const(&mut self, p: Py, dtype: DType, range: TextRange) -> NodeId {
        let value = scalar_in(py_scalar(p), dtype);
        self.push(NodeKind::Const { value }, dtype, Shape::scalar(), range)
    }

    /// The node for an array-or-number argument, in `dtype` (a Python number becomes a
    /// constant of that dtype; an array gets a cast when its dtype differs).
    fn materialize(&mut self, a: &Arg, dtype: DType) -> NodeId {
        match a.val {
            Val::Py(p) => self.push_const(p, dtype, a.range),
            Val::Arr(id) => self.cast_to(id, dtype),
            _ => unreachable!("materialize is only called after need_value"),
        }
    }

    fn cast_to(&mut self, id: NodeId, dtype: DType) -> NodeId {
        let node = self.node(id).clone();
        if node.dtype == dtype {
            return id;
        }
        match node.kind {
            NodeKind::Const { value } => {
                let value = scalar_in(value, dtype);
                self.push(NodeKind::Const { value }, dtype, node.shape, node.range)
            }
            _ => self.push(
                NodeKind::Cast { operand: id },
                dtype,
                node.shape,
                node.range,
            ),
        }
    }

    fn shape_of(&self, v: &Val) -> Shape {
        match v {
            Val::Arr(id) => self.node(*id).shape.clone(),
            _ => Shape::scalar(),
        }
    }

    fn check_py_int(
        &mut self,
        p: Py,
        dtype: DType,
        range: TextRange,
        array: Option<&Arg>,
    ) -> R<()> {
        if let Py::Int(v) = p {
            if !int_fits(v, dtype) {
                let (lo, hi) = dtype.int_range().unwrap_or((0, 0));
                let mut e = CheckError::new(
                    ErrorKind::IntOutOfBounds,
                    range,
                    format!("Python integer {v} out of bounds for {dtype}"),
                )
                .label(format!("does not fit {dtype} ({lo}..={hi})"))
                .note("numpy 2 keeps the array's dtype for a Python int operand and raises OverflowError when the int does not fit");
                if let Some(arr) = array {
                    e = e.secondary(arr.range, format!("this is {dtype}")).help(format!(
                        "convert the array first, e.g. {}.astype(np.int64), or write the number as a float ({v}.0)",
                        arr.text()
                    ));
                }
                return Err(self.err(e));
            }
        }
        Ok(())
    }

    // ----- names and attributes

    fn name(&mut self, n: &ast::Name) -> R<Val> {
        let id = n.id.as_str();
        if id == "np" || id == "numpy" {
            return Ok(Val::Module);
        }
        if let Some((input_idx, image)) = self.env.lookup(id) {
            if !self.used.iter().any(|u| u == id) {
                self.used.push(id.to_string());
            }
            let (dtype, shape) = (image.dtype, image.shape.clone());
            let kind = NodeKind::Input {
                name: id.to_string(),
                input_idx,
            };
            return Ok(Val::Arr(self.push(kind, dtype, shape, n.range)));
        }
        if let Some(b) = registry::lookup(Namespace::Python, id) {
            return Ok(match b.kind {
                Kind::DType(d) => Val::PyType(b.name, d),
                _ => Val::PyBuiltin(b),
            });
        }
        let not_in_language = |what: String| {
            CheckError::new(ErrorKind::NotInLanguage, n.range, what)
                .note("a formula is a numpy expression over the bound images: it cannot import modules, call Python builtins or touch files")
        };
        if id.starts_with("__") || FORBIDDEN.contains(&id) {
            return Err(self.err(not_in_language(format!(
                "`{id}` is not part of the formula language"
            ))));
        }
        if let Some((_, np_name)) = PY_TO_NP.iter().find(|(py, _)| *py == id) {
            return Err(self.err(
                not_in_language(format!(
                    "Python's builtin `{id}` is not part of the formula language"
                ))
                .help(format!("use {np_name}")),
            ));
        }
        let mut e = CheckError::new(
            ErrorKind::UnknownName,
            n.range,
            format!("unknown name `{id}`"),
        )
        .label("not a bound image");
        if registry::lookup(Namespace::Np, id).is_some() {
            e = e.help(format!("numpy names need the module prefix: np.{id}"));
        } else {
            let images: Vec<&str> = self.env.images().iter().map(|i| i.name.as_str()).collect();
            let candidates = images.iter().copied().chain(["np"]);
            if let Some(s) = did_you_mean(id, candidates) {
                e = e.help(format!("did you mean `{s}`?"));
            } else if let Some(s) = did_you_mean(id, registry::names(Namespace::Np)) {
                e = e.help(format!("did you mean `np.{s}`?"));
            }
            e = e.note(if images.is_empty() {
                "no images are bound".to_string()
            } else {
                format!("bound images: {}", images.join(", "))
            });
        }
        Err(self.err(e))
    }

    fn attribute(&mut self, value: &Expr, attr: &ast::Name) -> R<Val> {
        let base = self.arg(value)?;
        let name = attr.id.as_str();
        let range = attr.range;
        if name.starts_with("__") && name.ends_with("__") {
            return Err(self.err(
                CheckError::new(
                    ErrorKind::NotInLanguage,
                    range,
                    format!("the attribute `{name}` is not part of the formula language"),
                )
                .note("only `np.` functions and constants and array methods are available"),
            ));
        }
        match base.val {
            Val::Module => self.np_attribute(name, range),
            Val::Arr(_) | Val::Masked { .. } => self.array_attribute(base, name, range),
            other => {
                let what = self.describe(&other);
                Err(self.err(
                    CheckError::new(
                        ErrorKind::NotInLanguage,
                        range,
                        format!("`.{name}` on {what} is not part of the formula language"),
                    )
                    .secondary(base.range, what)
                    .note("attributes are only available on `np` and on arrays"),
                ))
            }
        }
    }

    fn np_attribute(&mut self, name: &str, range: TextRange) -> R<Val> {
        if let Some(b) = registry::lookup(Namespace::Np, name) {
            return Ok(match b.kind {
                Kind::Constant(ConstValue::Float(x)) => Val::Py(Py::Float(x)),
                Kind::Constant(ConstValue::NewAxis) => Val::None,
                Kind::DType(d) => Val::DType(d),
                _ => Val::Func(b),
            });
        }
        if NP_FORBIDDEN.contains(&name) {
            return Err(self.err(
                CheckError::new(
                    ErrorKind::NotInLanguage,
                    range,
                    format!("`np.{name}` is not part of the formula language"),
                )
                .note("formulas cannot read or write files or reach outside the bound images"),
            ));
        }
        let mut e = CheckError::new(
            ErrorKind::UnknownAttribute,
            range,
            format!("`np.{name}` is not available in formulas"),
        )
        .label("not in voxcalc's numpy subset");
        if let Some(s) = did_you_mean(name, registry::names(Namespace::Np)) {
            e = e.help(format!("did you mean `np.{s}`?"));
        } else {
            e = e.note("the REPL's `:funcs` and docs/language.md list every function");
        }
        Err(self.err(e))
    }

    fn array_attribute(&mut self, base: Arg, name: &str, range: TextRange) -> R<Val> {
        if let Some(b) = registry::lookup(Namespace::Method, name) {
            return Ok(Val::Bound(b, Box::new(base.val)));
        }
        let id = match base.val {
            Val::Arr(id) => Some(id),
            _ => None,
        };
        if let (Some(id), Some(_)) = (id, registry::lookup(Namespace::Attribute, name)) {
            let shape = self.node(id).shape.clone();
            return Ok(match name {
                "ndim" => Val::Py(Py::Int(shape.ndim() as i128)),
                "size" => Val::Py(Py::Int(shape.n_elements().unwrap_or(usize::MAX) as i128)),
                _ => Val::ShapeOf(shape.0),
            });
        }
        let e = if name == "ptp" {
            CheckError::new(
                ErrorKind::RemovedInNumpy2,
                range,
                "`ndarray.ptp` was removed in numpy 2",
            )
            .help(format!(
                "use np.ptp({})",
                base.expr.map(unparse).unwrap_or_default()
            ))
        } else if name == "T" || name == "dtype" || UNSUPPORTED_METHODS.contains(&name) {
            CheckError::new(
                ErrorKind::NotSupported,
                range,
                format!("`.{name}` is not supported in formulas yet"),
            )
        } else {
            let mut e = CheckError::new(
                ErrorKind::UnknownAttribute,
                range,
                format!("arrays have no method or attribute `{name}` in formulas"),
            );
            let candidates =
                registry::names(Namespace::Method).chain(registry::names(Namespace::Attribute));
            if let Some(s) = did_you_mean(name, candidates) {
                e = e.help(format!("did you mean `.{s}`?"));
            }
            e
        };
        Err(self.err(e.secondary(base.range, "an array")))
    }

    // ----- operators

    fn unary(&mut self, e: &Expr, op: UnaryOp, operand: &Expr) -> R<Val> {
        let a = self.arg(operand)?;
        if let Val::Py(p) = a.val {
            return match pyscalar::unary(op, p) {
                Ok(v) => Ok(Val::Py(v)),
                Err(msg) => {
                    Err(self.err(CheckError::new(ErrorKind::PythonArithmetic, e.range, msg)))
                }
            };
        }
        self.need_value(&a)?;
        let name = match op {
            UnaryOp::Neg => "negative",
            UnaryOp::Pos => "positive",
            UnaryOp::Invert => "invert",
            UnaryOp::Not => {
                return Err(self.err(
                    CheckError::new(
                        ErrorKind::BoolOpOnArray,
                        e.range,
                        "`not` cannot be applied to an array",
                    )
                    .label("Python's `not` needs one truth value; an array has many")
                    .help(format!("use ~ for elementwise not: ~{}", a.text())),
                ))
            }
        };
        self.apply_named(name, &[a], e.range)
    }

    fn binary(&mut self, e: &Expr, op: BinaryOp, left: &Expr, right: &Expr) -> R<Val> {
        let l = self.arg(left);
        let r = self.arg(right);
        let (l, r) = (l?, r?);
        if op == BinaryOp::MatMul {
            return Err(self.err(
                CheckError::new(
                    ErrorKind::NotSupported,
                    e.range,
                    "the matrix product `@` is not supported",
                )
                .help("use `*` for the elementwise product"),
            ));
        }
        if let (Val::Py(a), Val::Py(b)) = (&l.val, &r.val) {
            return match pyscalar::binary(op, *a, *b) {
                Ok(v) => Ok(Val::Py(v)),
                Err(msg) => {
                    Err(self.err(CheckError::new(ErrorKind::PythonArithmetic, e.range, msg)))
                }
            };
        }
        let lv = self.need_value(&l);
        let rv = self.need_value(&r);
        lv?;
        rv?;
        let name = match op {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "subtract",
            BinaryOp::Mul => "multiply",
            BinaryOp::Div => "divide",
            BinaryOp::FloorDiv => "floor_divide",
            BinaryOp::Mod => "remainder",
            BinaryOp::Pow => "power",
            BinaryOp::LShift => "left_shift",
            BinaryOp::RShift => "right_shift",
            BinaryOp::BitAnd => "bitwise_and",
            BinaryOp::BitOr => "bitwise_or",
            BinaryOp::BitXor => "bitwise_xor",
            BinaryOp::MatMul => unreachable!("refused above"),
        };
        self.apply_named(name, &[l, r], e.range)
    }

    fn compare(&mut self, e: &Expr, left: &Expr, ops: &[(CmpOp, Expr)]) -> R<Val> {
        if let Some((op, rhs)) = ops
            .iter()
            .find(|(op, _)| matches!(op, CmpOp::In | CmpOp::NotIn | CmpOp::Is | CmpOp::IsNot))
        {
            return Err(self.err(
                CheckError::new(
                    ErrorKind::NotInLanguage,
                    left.range.cover(rhs.range),
                    format!("`{}` is not part of the formula language", cmp_symbol(*op)),
                )
                .help("compare values with == or !="),
            ));
        }
        let mut operands = vec![self.arg(left)];
        operands.extend(ops.iter().map(|(_, rhs)| self.arg(rhs)));
        let operands: Vec<Arg> = operands.into_iter().collect::<R<_>>()?;
        let all_py: Option<Vec<Py>> = operands
            .iter()
            .map(|a| match a.val {
                Val::Py(p) => Some(p),
                _ => None,
            })
            .collect();
        if let Some(py) = all_py {
            let truth = ops
                .iter()
                .enumerate()
                .all(|(i, (op, _))| pyscalar::compare(*op, py[i], py[i + 1]).truthy());
            return Ok(Val::Py(Py::Bool(truth)));
        }
        if ops.len() > 1 {
            return Err(self.err(chained_comparison_error(e, left, ops)));
        }
        for a in &operands {
            self.need_value(a)?;
        }
        let name = match ops[0].0 {
            CmpOp::Eq => "equal",
            CmpOp::NotEq => "not_equal",
            CmpOp::Lt => "less",
            CmpOp::LtE => "less_equal",
            CmpOp::Gt => "greater",
            CmpOp::GtE => "greater_equal",
            _ => unreachable!("refused above"),
        };
        self.apply_named(name, &operands, e.range)
    }

    fn bool_op(&mut self, e: &Expr, op: BoolOp, values: &[Expr]) -> R<Val> {
        let args = self.args(values)?;
        let py: Option<Vec<Py>> = args
            .iter()
            .map(|a| match a.val {
                Val::Py(p) => Some(p),
                _ => None,
            })
            .collect();
        if let Some(py) = py {
            // Python returns the deciding operand itself.
            let pick = py
                .iter()
                .copied()
                .find(|p| {
                    if op == BoolOp::And {
                        !p.truthy()
                    } else {
                        p.truthy()
                    }
                })
                .unwrap_or(py[py.len() - 1]);
            return Ok(Val::Py(pick));
        }
        let (word, sym, fname) = match op {
            BoolOp::And => ("and", "&", "np.logical_and"),
            BoolOp::Or => ("or", "|", "np.logical_or"),
        };
        let fix = values
            .iter()
            .map(operand_text)
            .collect::<Vec<_>>()
            .join(&format!(" {sym} "));
        Err(self.err(
            CheckError::new(
                ErrorKind::BoolOpOnArray,
                e.range,
                format!("`{word}` cannot combine arrays"),
            )
            .label(format!(
                "Python's `{word}` needs one truth value per operand; an array has many"
            ))
            .note(
                "numpy raises: the truth value of an array with more than one element is ambiguous",
            )
            .help(format!("use `{sym}` (or {fname}) with parentheses: {fix}")),
        ))
    }

    fn if_exp(&mut self, e: &Expr, body: &Expr, test: &Expr, orelse: &Expr) -> R<Val> {
        let t = self.arg(test);
        let b = self.arg(body);
        let o = self.arg(orelse);
        let (t, b, o) = (t?, b?, o?);
        match t.val {
            Val::Py(p) => Ok(if p.truthy() { b.val } else { o.val }),
            _ => Err(self.err(
                CheckError::new(
                    ErrorKind::IfExpOnArray,
                    e.range,
                    "`a if condition else b` needs one truth value, and the condition is an array",
                )
                .secondary(t.range, "an array condition")
                .help(format!(
                    "choose elementwise with np.where({}, {}, {})",
                    unparse(test),
                    unparse(body),
                    unparse(orelse)
                )),
            )),
        }
    }

    // ----- ufuncs

    fn apply_named(&mut self, name: &str, args: &[Arg], range: TextRange) -> R<Val> {
        let b = registry::lookup(Namespace::Np, name).expect("operator ufuncs are registered");
        match b.kind {
            Kind::Ufunc { op, loops } => self.ufunc(b, op, loops, args, range, None),
            _ => unreachable!("apply_named is only used for ufuncs"),
        }
    }

    /// Resolves a ufunc call like numpy: weak scalars take the common dtype, Python ints are
    /// range-checked, special type resolvers run, then the first loop that accepts every
    /// operand safely is chosen. Returns the loop and the broadcast shape.
    fn resolve_loop(
        &mut self,
        b: &Builtin,
        op: ElemOp,
        loops: &str,
        args: &[Arg],
        range: TextRange,
        forced: Option<DType>,
    ) -> R<(Loop, Shape)> {
        let operands: Vec<Operand> = args.iter().map(|a| self.operand(&a.val)).collect();
        let mut dtypes = operand_dtypes(&operands);
        let is_comparison = matches!(
            op,
            ElemOp::Greater
                | ElemOp::GreaterEqual
                | ElemOp::Less
                | ElemOp::LessEqual
                | ElemOp::Equal
                | ElemOp::NotEqual
        );
        let strong = args.iter().find(|a| matches!(a.val, Val::Arr(_)));
        if is_comparison {
            for (i, a) in args.iter().enumerate() {
                if let Val::Py(Py::Int(v)) = a.val {
                    // numpy 2 compares Python ints exactly, even out of the array's range.
                    if !int_fits(v, dtypes[i]) && dtypes[i].is_int() {
                        if int_fits(v, DType::I64) {
                            dtypes[i] = DType::I64;
                        } else if int_fits(v, DType::U64) {
                            dtypes[i] = DType::U64;
                        }
                    }
                }
            }
        }
        let all_bool = dtypes.iter().all(|&d| d == DType::Bool);
        if all_bool && op == ElemOp::Subtract {
            return Err(self.err(
                CheckError::new(ErrorKind::NoLoop, range, "numpy boolean subtract, the `-` operator, is not supported")
                    .help("use the `^` operator (or np.logical_xor) for booleans, or convert first: a.astype(np.int16) - b"),
            ));
        }
        if all_bool && matches!(op, ElemOp::Positive | ElemOp::Sign) {
            return Err(self.err(
                CheckError::new(ErrorKind::NoLoop, range, format!("np.{} is not supported for booleans", b.name))
                    .note("numpy's loops for this ufunc take numbers only and it does not convert booleans")
                    .help("convert first, e.g. x.astype(np.int8)"),
            ));
        }
        if all_bool && op == ElemOp::Negative {
            return Err(self.err(
                CheckError::new(
                    ErrorKind::NoLoop,
                    range,
                    "numpy boolean negative, the `-` operator, is not supported",
                )
                .help("use the `~` operator (or np.logical_not) for booleans"),
            ));
        }
        let loops = parse_loops(loops);
        let chosen = if let Some(out) = forced {
            // `dtype=` fixes the output; the first loop with that output whose inputs the
            // operands reach by numpy's same_kind casting is used.
            let found = loops
                .iter()
                .find(|l| {
                    l.output == out
                        && l.inputs.len() == dtypes.len()
                        && l.inputs
                            .iter()
                            .zip(&dtypes)
                            .zip(args)
                            .all(|((&want, &have), a)| {
                                // A Python number converts to whatever the loop needs.
                                matches!(a.val, Val::Py(_)) || have.can_cast_same_kind(want)
                            })
                })
                .cloned();
            if found.is_none() {
                let types: Vec<String> = dtypes.iter().map(|d| d.to_string()).collect();
                return Err(self.err(
                    CheckError::new(
                        ErrorKind::NoLoop,
                        range,
                        format!(
                            "np.{} cannot compute in {out} from ({}) with numpy's same_kind casting",
                            b.name,
                            types.join(", ")
                        ),
                    )
                    .help(format!("convert the operands first with .astype(np.{out})")),
                ));
            }
            found
        } else if op == ElemOp::TrueDivide && dtypes.iter().all(|d| !d.is_float()) {
            Some(Loop {
                inputs: vec![DType::F64; dtypes.len()],
                output: DType::F64,
            })
        } else if matches!(
            op,
            ElemOp::LogicalAnd | ElemOp::LogicalOr | ElemOp::LogicalXor | ElemOp::LogicalNot
        ) {
            Some(Loop {
                inputs: vec![DType::Bool; dtypes.len()],
                output: DType::Bool,
            })
        } else {
            find_loop(&loops, &dtypes).cloned()
        };
        let Some(chosen) = chosen else {
            let types: Vec<String> = dtypes.iter().map(|d| d.to_string()).collect();
            let mut e = CheckError::new(
                ErrorKind::NoLoop,
                range,
                format!(
                    "np.{} is not supported for the input types ({})",
                    b.name,
                    types.join(", ")
                ),
            );
            for (a, d) in args.iter().zip(&dtypes) {
                e = e.secondary(a.range, d.to_string());
            }
            let accepted: Vec<String> = loops
                .iter()
                .map(|l| {
                    l.inputs
                        .iter()
                        .map(|d| d.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            e = e.note(format!("numpy has loops for: ({})", accepted.join("), (")));
            if matches!(
                op,
                ElemOp::BitwiseAnd | ElemOp::BitwiseOr | ElemOp::BitwiseXor | ElemOp::Invert
            ) {
                e = e.help("bitwise operators need integers or booleans: compare first, e.g. (img > 0) & (mask > 0)");
            } else if matches!(op, ElemOp::LeftShift | ElemOp::RightShift) {
                e = e.help("shifts need integers: convert with .astype(np.int32)");
            }
            return Err(self.err(e));
        };
        // A Python int becomes the selected loop's input dtype; only an integer dtype that
        // cannot hold it is an error (`uint8 / 100000` is fine: the loop is float64).
        for (a, &want) in args.iter().zip(&chosen.inputs) {
            if let (Val::Py(p @ Py::Int(_)), false) = (&a.val, want == DType::Bool) {
                self.check_py_int(*p, want, a.range, strong)?;
            }
        }
        if op == ElemOp::Power && chosen.output.is_int() {
            if let Some(a) = args.get(1) {
                if let Val::Py(Py::Int(v)) = a.val.clone() {
                    if v < 0 {
                        return Err(self.err(
                            CheckError::new(
                                ErrorKind::NegativeIntPower,
                                a.range,
                                "integers to negative integer powers are not allowed",
                            )
                            .help(format!("use a float exponent ({v}.0) or np.float_power")),
                        ));
                    }
                }
            }
        }
        let shape = self.broadcast_args(args, range)?;
        Ok((chosen, shape))
    }

    fn broadcast_args(&mut self, args: &[Arg], range: TextRange) -> R<Shape> {
        let shapes: Vec<Shape> = args.iter().map(|a| self.shape_of(&a.val)).collect();
        let refs: Vec<&Shape> = shapes.iter().collect();
        match broadcast_all(&refs) {
            Ok(s) => Ok(s),
            Err((idx, be)) => {
                let mut e = CheckError::new(ErrorKind::Broadcast, range, be.to_string())
                    .label("these operands have incompatible shapes");
                for (a, s) in args.iter().zip(&shapes) {
                    if !s.is_scalar() {
                        e = e.secondary(a.range, format!("shape {s}"));
                    }
                }
                let axis = -(be.axis_from_end as i64) - 1;
                e = e.note(format!(
                    "shapes are aligned at their last axis; at axis {axis} the sizes are {} and {}, and neither is 1",
                    be.left_dim, be.right_dim
                ));
                if be.is_missing_trailing_axes() {
                    let (short_idx, short, long) = if shapes[idx].ndim() < be.left.ndim() {
                        (idx, &shapes[idx], &be.left)
                    } else {
                        let i = shapes.iter().position(|s| *s == be.left).unwrap_or(0);
                        (i, &be.left, &shapes[idx])
                    };
                    let nones = vec!["None"; long.ndim() - short.ndim()].join(", ");
                    e = e.help(format!(
                        "numpy does not add trailing axes: write {}[..., {nones}] to repeat it along the extra axes of {long}",
                        args[short_idx].text()
                    ));
                }
                Err(self.err(e))
            }
        }
    }

    fn operand(&self, v: &Val) -> Operand {
        match v {
            Val::Arr(id) => Operand::Array(self.node(*id).dtype),
            Val::Py(p) => py_operand(*p),
            _ => Operand::Array(DType::F64),
        }
    }

    fn ufunc(
        &mut self,
        b: &Builtin,
        op: ElemOp,
        loops: &str,
        args: &[Arg],
        range: TextRange,
        forced: Option<DType>,
    ) -> R<Val> {
        let (chosen, shape) = self.resolve_loop(b, op, loops, args, range, forced)?;
        let ids: Vec<NodeId> = args
            .iter()
            .zip(&chosen.inputs)
            .map(|(a, &d)| self.materialize(a, d))
            .collect();
        if let Some(fast) = fast_power(op, chosen.output, args) {
            // numpy computes a float array to the power 2, 0.5 or -1 given as a Python number
            // with `square`, `sqrt` or `reciprocal` (exact), not with its `pow` routine.
            let kind = NodeKind::Unary {
                op: fast,
                operand: ids[0],
            };
            return Ok(Val::Arr(self.push(kind, chosen.output, shape, range)));
        }
        let kind = match ids.as_slice() {
            [x] => NodeKind::Unary { op, operand: *x },
            [l, r] => NodeKind::Binary {
                op,
                lhs: *l,
                rhs: *r,
            },
            _ => unreachable!("ufuncs in the registry take one or two inputs"),
        };
        Ok(Val::Arr(self.push(kind, chosen.output, shape, range)))
    }

    // ----- calls

    fn call(&mut self, e: &Expr, func: &Expr, args: &[Expr], keywords: &[ast::Keyword]) -> R<Val> {
        let f = self.arg(func);
        let pos = self.args(args);
        let kw: Vec<R<(ast::Name, Arg)>> = keywords
            .iter()
            .map(|k| self.arg(&k.value).map(|a| (k.name.clone(), a)))
            .collect();
        let (f, pos) = (f?, pos?);
        let kw: Vec<(ast::Name, Arg)> = kw.into_iter().collect::<R<_>>()?;
        match f.val.clone() {
            Val::Func(b) => {
                let bound = self.bind(b, pos, kw, e.range)?;
                self.call_builtin(b, bound, e.range)
            }
            Val::Bound(b, this) => {
                let mut bound = self.bind(b, pos, kw, e.range)?;
                let this = Arg {
                    val: *this,
                    range: func_value_range(func),
                    expr: func_value(func),
                };
                if let Kind::Function(Special::Astype) = b.kind {
                    return self.astype(this, &bound, e.range);
                }
                let Kind::Method(target) = b.kind else {
                    unreachable!("methods delegate")
                };
                let tb =
                    registry::lookup(Namespace::Np, target).expect("checked by a registry test");
                bound.args.insert(0, (tb.params[0].name, this));
                self.call_builtin(tb, bound, e.range)
            }
            Val::PyBuiltin(b) => {
                let bound = self.bind(b, pos, kw, e.range)?;
                self.python_builtin(b, bound, e.range)
            }
            Val::DType(d) => self.dtype_call(d, &format!("np.{d}"), pos, kw, e.range),
            Val::PyType(name, d) => {
                // On a Python number these are Python's conversions; on arrays Python would
                // need the value (a size-1 array), which is only known at run time.
                if let (
                    [Arg {
                        val: Val::Py(p), ..
                    }],
                    true,
                ) = (pos.as_slice(), kw.is_empty())
                {
                    let converted = match (name, *p) {
                        ("int", Py::Float(f)) if !f.is_finite() => None,
                        ("int", Py::Float(f)) => Some(Py::Int(f.trunc() as i128)),
                        ("int", other) => other.as_int().map(Py::Int),
                        ("float", Py::Float(f)) => Some(Py::Float(f)),
                        ("float", other) => other.as_int().map(|i| Py::Float(i as f64)),
                        (_, other) => Some(Py::Bool(other.truthy())),
                    };
                    if let Some(v) = converted {
                        return Ok(Val::Py(v));
                    }
                    return Err(self.err(CheckError::new(
                        ErrorKind::PythonArithmetic,
                        e.range,
                        "cannot convert float infinity or NaN to integer",
                    )));
                }
                Err(self.err(
                    CheckError::new(
                        ErrorKind::NotSupported,
                        e.range,
                        format!("Python's `{name}(...)` of an array is not supported"),
                    )
                    .note("Python converts only single values; the value is only known at run time")
                    .help(format!("convert arrays with x.astype(np.{d}) or np.{d}(x)")),
                ))
            }
            other => {
                let what = self.describe(&other);
                let mut err = CheckError::new(
                    ErrorKind::NotCallable,
                    func.range,
                    format!("{what} is not callable"),
                );
                if matches!(other, Val::Arr(_)) {
                    err = err.help("to select elements, index with square brackets: img[..., 0]");
                }
                Err(self.err(err))
            }
        }
    }

    fn bind<'e>(
        &mut self,
        b: &Builtin,
        pos: Vec<Arg<'e>>,
        kw: Vec<(ast::Name, Arg<'e>)>,
        range: TextRange,
    ) -> R<Bound<'e>> {
        let display = b.qualified_name();
        let mut out: Vec<(&'static str, Arg<'e>)> = Vec::new();
        let n_params = b.params.len();
        if pos.len() > n_params {
            let extra = &pos[n_params];
            return Err(self.err(
                CheckError::new(
                    ErrorKind::BadArguments,
                    extra.range,
                    format!("{display} takes at most {n_params} positional argument{} but {} were given", if n_params == 1 { "" } else { "s" }, pos.len()),
                )
                .label("unexpected argument")
                .help(format!("signature: {}", b.signature)),
            ));
        }
        for (p, a) in b.params.iter().zip(pos) {
            out.push((p.name, a));
        }
        let mut failed = false;
        for (name, a) in kw {
            if matches!(b.kind, Kind::Ufunc { .. }) && name.id == "dtype" {
                if out.iter().any(|(n, _)| *n == "dtype") {
                    self.err(CheckError::new(
                        ErrorKind::BadArguments,
                        name.range,
                        format!("{display} got multiple values for argument 'dtype'"),
                    ));
                    failed = true;
                } else {
                    out.push(("dtype", a));
                }
                continue;
            }
            let Some(p) = b.params.iter().find(|p| p.name == name.id) else {
                let mut e = CheckError::new(
                    ErrorKind::BadArguments,
                    name.range,
                    format!("{display} got an unexpected keyword argument '{}'", name.id),
                );
                let is_ufunc_kw = matches!(b.kind, Kind::Ufunc { .. })
                    && [
                        "out",
                        "where",
                        "dtype",
                        "casting",
                        "order",
                        "subok",
                        "signature",
                    ]
                    .contains(&name.id.as_str());
                if is_ufunc_kw {
                    e.kind = ErrorKind::NotSupported;
                    e.message = format!("the ufunc keyword `{}=` is not supported yet", name.id);
                    e = e.help(if name.id == "out" {
                        "a formula always produces a new image: drop `out=`"
                    } else {
                        "drop it; convert operands with .astype(...) where a dtype matters"
                    });
                } else if let Some(s) = did_you_mean(&name.id, b.params.iter().map(|p| p.name)) {
                    e = e.help(format!("did you mean `{s}=`?"));
                } else {
                    e = e.help(format!("signature: {}", b.signature));
                }
                self.err(e);
                failed = true;
                continue;
            };
            if out.iter().any(|(n, _)| *n == p.name) {
                self.err(CheckError::new(
                    ErrorKind::BadArguments,
                    name.range,
                    format!("{display} got multiple values for argument '{}'", p.name),
                ));
                failed = true;
                continue;
            }
            out.push((p.name, a));
        }
        if failed {
            return Err(Reported);
        }
        let has_self = matches!(b.namespace, Namespace::Method);
        for p in b.params {
            if p.default.is_none() && !out.iter().any(|(n, _)| *n == p.name) {
                let _ = has_self;
                let mut e = CheckError::new(
                    ErrorKind::BadArguments,
                    range,
                    format!("{display} is missing the required argument '{}'", p.name),
                )
                .help(format!("signature: {}", b.signature));
                if b.name == "where" && out.len() == 1 {
                    e = CheckError::new(
                        ErrorKind::NotSupported,
                        range,
                        "np.where(condition) with one argument returns indices, which formulas do not support",
                    )
                    .help("pass the two choices: np.where(condition, x, y)");
                }
                return Err(self.err(e));
            }
        }
        for (n, a) in &out {
            if *n == "out" && !matches!(a.val, Val::None) {
                return Err(self.err(CheckError::new(
                    ErrorKind::NotSupported,
                    a.range,
                    "`out=` is not supported: a formula always produces a new image",
                )));
            }
        }
        Ok(Bound { args: out })
    }

    fn call_builtin(&mut self, b: &'static Builtin, bound: Bound, range: TextRange) -> R<Val> {
        match b.kind {
            Kind::Ufunc { op, loops } => {
                let args: Vec<Arg> = b
                    .params
                    .iter()
                    .filter_map(|p| bound.get(p.name).cloned())
                    .collect();
                for a in &args {
                    self.need_value(a)?;
                }
                let forced = match bound.get_some("dtype") {
                    Some(d) => Some(self.dtype_arg(d)?),
                    None => None,
                };
                self.ufunc(b, op, loops, &args, range, forced)
            }
            Kind::Reduction(spec) => self.reduction(b, spec, &bound, range),
            Kind::Function(Special::Where) => self.where_(&bound, range),
            Kind::Function(Special::Clip) => self.clip(b, &bound, range),
            Kind::Function(Special::Round) => {
                let a = bound.get("a").expect("required").clone();
                let decimals = match bound.get_some("decimals") {
                    None => 0,
                    Some(d) => self.int_arg(d, "decimals")?,
                };
                self.round(a, decimals, range)
            }
            Kind::Function(Special::NanToNum) => self.nan_to_num(&bound, range),
            Kind::Function(Special::IsPosInf) | Kind::Function(Special::IsNegInf) => {
                let x = bound.get("x").expect("required").clone();
                self.need_value(&x)?;
                let inf = self.apply_named("isinf", std::slice::from_ref(&x), range)?;
                let sign = self.apply_named("signbit", std::slice::from_ref(&x), range)?;
                let sign_arg = Arg {
                    val: sign,
                    range,
                    expr: None,
                };
                let sign = if b.kind == Kind::Function(Special::IsPosInf) {
                    let inv = self.apply_named("invert", &[sign_arg], range)?;
                    Arg {
                        val: inv,
                        range,
                        expr: None,
                    }
                } else {
                    sign_arg
                };
                let inf = Arg {
                    val: inf,
                    range,
                    expr: None,
                };
                self.apply_named("logical_and", &[inf, sign], range)
            }
            Kind::Function(Special::Astype) | Kind::Method(_) | Kind::Attribute => {
                unreachable!("only reachable through a bound method")
            }
            Kind::Constant(_) | Kind::DType(_) => {
                unreachable!("resolved to values by np_attribute")
            }
        }
    }

    fn python_builtin(&mut self, b: &'static Builtin, bound: Bound, range: TextRange) -> R<Val> {
        if b.name == "round" {
            let x = bound.get("number").expect("required").clone();
            let ndigits = match bound.get_some("ndigits") {
                None => None,
                Some(n) => Some(self.int_arg(n, "ndigits")?),
            };
            if let Val::Py(p) = x.val {
                return match pyscalar::round(p, ndigits.map(i128::from)) {
                    Ok(v) => Ok(Val::Py(v)),
                    Err(msg) => {
                        Err(self.err(CheckError::new(ErrorKind::PythonArithmetic, range, msg)))
                    }
                };
            }
            return self.round(x, ndigits.unwrap_or(0), range);
        }
        let x = bound.get("x").expect("required").clone();
        if let Val::Py(p) = x.val {
            return Ok(Val::Py(match p {
                Py::Int(i) => Py::Int(i.abs()),
                Py::Float(f) => Py::Float(f.abs()),
                Py::Bool(v) => Py::Int(v as i128),
            }));
        }
        self.need_value(&x)?;
        self.apply_named("absolute", &[x], range)
    }

    fn int_arg(&mut self, a: &Arg, what: &str) -> R<i64> {
        match a.val {
            Val::Py(Py::Int(i)) if i64::try_from(i).is_ok() => Ok(i as i64),
            _ => {
                let d = self.describe(&a.val);
                Err(self.err(
                    CheckError::new(
                        ErrorKind::BadArguments,
                        a.range,
                        format!("`{what}` must be an integer"),
                    )
                    .label(d),
                ))
            }
        }
    }

    fn bool_arg(&mut self, a: Option<&Arg>, what: &str) -> R<bool> {
        match a.map(|a| &a.val) {
            None | Some(Val::None) => Ok(false),
            Some(Val::Py(Py::Bool(b))) => Ok(*b),
            Some(Val::Py(Py::Int(i))) => Ok(*i != 0),
            Some(other) => {
                let d = self.describe(other);
                let range = a.map(|a| a.range).unwrap_or_default();
                Err(self.err(
                    CheckError::new(
                        ErrorKind::BadArguments,
                        range,
                        format!("`{what}` must be True or False"),
                    )
                    .label(d),
                ))
            }
        }
    }

    /// A dtype argument: `np.float32`, `'float32'`, `'f4'`, or Python's `float`/`int`/`bool`.
    fn dtype_arg(&mut self, a: &Arg) -> R<DType> {
        match &a.val {
            Val::DType(d) | Val::PyType(_, d) => Ok(*d),
            Val::Str(s) => match dtype_from_str(s) {
                Some(d) => Ok(d),
                None => {
                    let mut e = CheckError::new(
                        ErrorKind::InvalidValue,
                        a.range,
                        format!("data type '{s}' not understood"),
                    );
                    if let Some(sugg) = did_you_mean(s, DType::ALL.iter().map(|d| d.name())) {
                        e = e.help(format!("did you mean '{sugg}'?"));
                    }
                    Err(self.err(e))
                }
            },
            other => {
                let d = self.describe(other);
                Err(self.err(
                    CheckError::new(
                        ErrorKind::BadArguments,
                        a.range,
                        "expected a dtype such as np.float32 or 'float32'",
                    )
                    .label(d),
                ))
            }
        }
    }

    fn dtype_call(
        &mut self,
        d: DType,
        display: &str,
        pos: Vec<Arg>,
        kw: Vec<(ast::Name, Arg)>,
        range: TextRange,
    ) -> R<Val> {
        if pos.len() != 1 || !kw.is_empty() {
            return Err(self.err(
                CheckError::new(
                    ErrorKind::BadArguments,
                    range,
                    format!("{display}(x) takes exactly one argument"),
                )
                .help(format!(
                    "to convert an array: {display}(img) or img.astype({display})"
                )),
            ));
        }
        let x = &pos[0];
        match x.val {
            Val::Py(p) => {
                let value = match (p, d) {
                    (Py::Int(v), d) if d.is_int() => {
                        self.check_py_int(p, d, x.range, None)?;
                        Scalar::Int(v)
                    }
                    (Py::Float(f), d) if d.is_int() => {
                        if !f.is_finite() {
                            return Err(self.err(CheckError::new(
                                ErrorKind::InvalidValue,
                                x.range,
                                format!("cannot convert float {f} to integer"),
                            )));
                        }
                        scalar_in(Scalar::Float(f), d)
                    }
                    (p, d) => scalar_in(py_scalar(p), d),
                };
                Ok(Val::Arr(self.push(
                    NodeKind::Const { value },
                    d,
                    Shape::scalar(),
                    range,
                )))
            }
            Val::Arr(id) => {
                let node = self.node(id).clone();
                if node.dtype == d {
                    return Ok(Val::Arr(id));
                }
                Ok(Val::Arr(self.push(
                    NodeKind::Cast { operand: id },
                    d,
                    node.shape,
                    range,
                )))
            }
            _ => {
                self.need_value(x)?;
                Err(Reported)
            }
        }
    }

    fn astype(&mut self, this: Arg, bound: &Bound, range: TextRange) -> R<Val> {
        let d = self.dtype_arg(bound.get("dtype").expect("required"))?;
        let display = format!("np.{d}");
        self.dtype_call(d, &display, vec![this], Vec::new(), range)
    }

    fn where_(&mut self, bound: &Bound, range: TextRange) -> R<Val> {
        let cond = bound.get("condition").expect("required").clone();
        let x = bound.get("x").expect("required").clone();
        let y = bound.get("y").expect("required").clone();
        let c1 = self.need_value(&cond);
        let c2 = self.need_value(&x);
        let c3 = self.need_value(&y);
        c1?;
        c2?;
        c3?;
        let ops = [self.operand(&x.val), self.operand(&y.val)];
        let dtype = common_dtype(&ops);
        let strong = [&x, &y]
            .into_iter()
            .find(|a| matches!(a.val, Val::Arr(_)))
            .cloned();
        // numpy's where converts a Python int C-style: out of the dtype's range it wraps
        // (np.where(c, uint8, 300) holds 44), and only ints beyond a C long are refused.
        let wide = if dtype.is_int() { DType::I64 } else { dtype };
        for a in [&x, &y] {
            if let Val::Py(p) = a.val {
                self.check_py_int(p, wide, a.range, strong.as_ref())?;
            }
        }
        let shape = self.broadcast_args(&[cond.clone(), x.clone(), y.clone()], range)?;
        let c = self.materialize(&cond, DType::Bool);
        let t = self.materialize(&x, dtype);
        let o = self.materialize(&y, dtype);
        Ok(Val::Arr(self.push(
            NodeKind::Where {
                cond: c,
                then: t,
                otherwise: o,
            },
            dtype,
            shape,
            range,
        )))
    }

    fn clip(&mut self, b: &Builtin, bound: &Bound, range: TextRange) -> R<Val> {
        let a = bound.get("a").expect("required").clone();
        self.need_value(&a)?;
        let mut lo = bound.get_some("a_min").cloned();
        let mut hi = bound.get_some("a_max").cloned();
        for (pos_name, kw_name, slot) in [("a_min", "min", &mut lo), ("a_max", "max", &mut hi)] {
            if let Some(k) = bound.get_some(kw_name) {
                if slot.is_some() {
                    return Err(self.err(CheckError::new(
                        ErrorKind::BadArguments,
                        k.range,
                        format!("pass either `{pos_name}` or `{kw_name}=`, not both"),
                    )));
                }
                *slot = Some(k.clone());
            }
        }
        for bnd in lo.iter().chain(hi.iter()) {
            self.need_value(bnd)?;
        }
        // numpy 2 drops Python-int bounds that lie beyond an integer array's range.
        if let Val::Arr(id) = a.val {
            let d = self.node(id).dtype;
            if let Some((min, max)) = d.int_range().filter(|_| d.is_int()) {
                if matches!(lo.as_ref().map(|l| &l.val), Some(Val::Py(Py::Int(v))) if *v <= min) {
                    lo = None;
                }
                if matches!(hi.as_ref().map(|h| &h.val), Some(Val::Py(Py::Int(v))) if *v >= max) {
                    hi = None;
                }
            }
        }
        let (loops, op, args): (&str, ElemOp, Vec<Arg>) = match (&lo, &hi) {
            (None, None) => return Ok(a.val),
            (Some(l), Some(h)) => (
                registry::CLIP_LOOPS,
                ElemOp::Minimum,
                vec![a.clone(), l.clone(), h.clone()],
            ),
            (Some(l), None) => (
                loops_of("maximum"),
                ElemOp::Maximum,
                vec![a.clone(), l.clone()],
            ),
            (None, Some(h)) => (
                loops_of("minimum"),
                ElemOp::Minimum,
                vec![a.clone(), h.clone()],
            ),
        };
        let (chosen, shape) = self.resolve_loop(b, op, loops, &args, range, None)?;
        let operand = self.materialize(&a, chosen.inputs[0]);
        let lo_id = lo.as_ref().map(|l| self.materialize(l, chosen.inputs[1]));
        let hi_idx = if lo.is_some() { 2 } else { 1 };
        let hi_id = hi
            .as_ref()
            .map(|h| self.materialize(h, chosen.inputs[hi_idx]));
        Ok(Val::Arr(self.push(
            NodeKind::Clip {
                operand,
                lo: lo_id,
                hi: hi_id,
            },
            chosen.output,
            shape,
            range,
        )))
    }

    fn round(&mut self, a: Arg, decimals: i64, range: TextRange) -> R<Val> {
        self.need_value(&a)?;
        let id = match a.val {
            Val::Py(p) => {
                let d = common_dtype(&[py_operand(p)]);
                self.check_py_int(p, d, a.range, None)?;
                self.push_const(p, d, a.range)
            }
            Val::Arr(id) => id,
            _ => unreachable!("need_value"),
        };
        let node = self.node(id).clone();
        // numpy rounds booleans through float16 (the first float loop bool casts to), but only
        // for decimals=0; other decimals need a multiply that has no boolean loop.
        if node.dtype == DType::Bool && decimals != 0 {
            return Err(self.err(
                CheckError::new(
                    ErrorKind::NoLoop,
                    range,
                    "rounding booleans to a number of decimals is not supported by numpy",
                )
                .help("convert first: x.astype(np.float32).round(decimals)"),
            ));
        }
        let dtype = if node.dtype == DType::Bool {
            DType::F16
        } else {
            node.dtype
        };
        let operand = self.cast_to(id, dtype);
        Ok(Val::Arr(self.push(
            NodeKind::Round { operand, decimals },
            dtype,
            node.shape,
            range,
        )))
    }

    fn nan_to_num(&mut self, bound: &Bound, range: TextRange) -> R<Val> {
        let x = bound.get("x").expect("required").clone();
        self.need_value(&x)?;
        let mut values = [None, None, None];
        for (slot, name) in values.iter_mut().zip(["nan", "posinf", "neginf"]) {
            if let Some(a) = bound.get_some(name) {
                match a.val {
                    Val::Py(p) => *slot = Some(p),
                    _ => {
                        let d = self.describe(&a.val);
                        return Err(self.err(
                            CheckError::new(
                                ErrorKind::BadArguments,
                                a.range,
                                format!("`{name}` must be a number"),
                            )
                            .label(d),
                        ));
                    }
                }
            }
        }
        self.bool_arg(bound.get("copy"), "copy")?;
        let id = match x.val {
            Val::Py(p) => {
                let d = common_dtype(&[py_operand(p)]);
                self.push_const(p, d, x.range)
            }
            Val::Arr(id) => id,
            _ => unreachable!("need_value"),
        };
        let node = self.node(id).clone();
        if !node.dtype.is_float() {
            return Ok(Val::Arr(id));
        }
        let (fmax, nan) = match node.dtype {
            DType::F16 => (65504.0, 0.0),
            DType::F32 => (f32::MAX as f64, 0.0),
            _ => (f64::MAX, 0.0),
        };
        let nan_val = values[0].unwrap_or(Py::Float(nan));
        let pos_val = values[1].unwrap_or(Py::Float(fmax));
        let neg_val = values[2].unwrap_or(Py::Float(-fmax));
        let x_arg = Arg {
            val: Val::Arr(id),
            range,
            expr: None,
        };
        let mut acc = id;
        let tests: [(&str, Option<f64>, Py); 3] = [
            ("isnan", None, nan_val),
            ("equal", Some(f64::INFINITY), pos_val),
            ("equal", Some(f64::NEG_INFINITY), neg_val),
        ];
        for (test, against, replacement) in tests {
            let mut test_args = vec![x_arg.clone()];
            if let Some(v) = against {
                test_args.push(Arg {
                    val: Val::Py(Py::Float(v)),
                    range,
                    expr: None,
                });
            }
            let cond = self.apply_named(test, &test_args, range)?;
            let Val::Arr(cond) = cond else {
                unreachable!("ufuncs give arrays")
            };
            let rep = self.push_const(replacement, node.dtype, range);
            acc = self.push(
                NodeKind::Where {
                    cond,
                    then: rep,
                    otherwise: acc,
                },
                node.dtype,
                node.shape.clone(),
                range,
            );
        }
        Ok(Val::Arr(acc))
    }

    // ----- reductions

    fn reduction(
        &mut self,
        b: &Builtin,
        spec: ReduceSpec,
        bound: &Bound,
        range: TextRange,
    ) -> R<Val> {
        let a = bound.get("a").expect("required").clone();
        let (operand, masked) = match a.val {
            Val::Masked { base, mask } => {
                let base_node = self.node(base).clone();
                let mask_node = self.node(mask).clone();
                let n_mask = mask_node.shape.n_elements().unwrap_or(usize::MAX);
                let mut dims = vec![n_mask];
                dims.extend_from_slice(&base_node.shape.dims()[mask_node.shape.ndim()..]);
                let kind = NodeKind::MaskSelect { base, mask };
                (self.push(kind, base_node.dtype, Shape(dims), a.range), true)
            }
            Val::Py(p) => {
                let d = common_dtype(&[py_operand(p)]);
                self.check_py_int(p, d, a.range, None)?;
                (self.push_const(p, d, a.range), false)
            }
            Val::Arr(id) => (id, false),
            _ => {
                self.need_value(&a)?;
                return Err(Reported);
            }
        };
        let in_node = self.node(operand).clone();
        let ndim = in_node.shape.ndim();
        let allow_tuple = !matches!(spec.op, ReduceOp::ArgMin | ReduceOp::ArgMax);
        let axes = self.axes(bound.get("axis"), ndim, allow_tuple, &b.qualified_name())?;
        if masked && !axes.contains(&0) {
            return Err(self.err(
                CheckError::new(
                    ErrorKind::NotSupported,
                    bound.get("axis").map(|a| a.range).unwrap_or(range),
                    "a reduction of a boolean-mask selection must reduce its first axis",
                )
                .note("the selection's first axis has one entry per true mask element, a length only known at run time")
                .help("reduce over axis 0 (the selected voxels), e.g. np.mean(img[mask > 0], axis=0)"),
            ));
        }
        let keepdims = self.bool_arg(bound.get("keepdims"), "keepdims")?;
        self.bool_arg(bound.get("overwrite_input"), "overwrite_input")?;
        let ddof = match bound.get_some("ddof") {
            None => 0,
            Some(d) => {
                let v = self.int_arg(d, "ddof")?;
                match u32::try_from(v) {
                    Ok(v) => v,
                    Err(_) => {
                        return Err(self.err(CheckError::new(
                            ErrorKind::InvalidValue,
                            d.range,
                            "`ddof` must be a non-negative integer",
                        )))
                    }
                }
            }
        };
        let dtype_kw = match bound.get_some("dtype") {
            None => None,
            Some(d) => Some(self.dtype_arg(d)?),
        };
        let (q, q_is_list) = if spec.op == ReduceOp::Quantile {
            self.method_arg(bound.get_some("method"))?;
            self.q_arg(bound.get("q").expect("required"), spec.percent)?
        } else {
            (Vec::new(), false)
        };
        let d = in_node.dtype;
        let small_int = |d: DType| {
            if d.is_unsigned_int() {
                DType::U64
            } else {
                DType::I64
            }
        };
        let (compute, result) = match spec.op {
            ReduceOp::Sum | ReduceOp::Prod => {
                let r = dtype_kw.unwrap_or(if d == DType::Bool || (d.is_int() && d.size() < 8) {
                    small_int(d)
                } else {
                    d
                });
                (r, r)
            }
            ReduceOp::Mean | ReduceOp::Std | ReduceOp::Var => {
                let r = dtype_kw.unwrap_or(if d.is_float() { d } else { DType::F64 });
                (r, r)
            }
            ReduceOp::Quantile if d == DType::Bool => {
                return Err(self.err(
                    CheckError::new(
                        ErrorKind::NoLoop,
                        range,
                        format!(
                            "{} of booleans is refused by numpy (it needs a boolean subtract)",
                            b.qualified_name()
                        ),
                    )
                    .help("convert first: x.astype(np.float32)"),
                ));
            }
            ReduceOp::Median | ReduceOp::Quantile => {
                // A list of q is a float64 array (strong), a single q a weak Python float.
                let r = if d.is_float() && !q_is_list {
                    d
                } else {
                    DType::F64
                };
                (r, r)
            }
            ReduceOp::Min | ReduceOp::Max => (d, d),
            ReduceOp::Ptp => {
                if d == DType::Bool {
                    return Err(self.err(
                        CheckError::new(
                            ErrorKind::NoLoop,
                            range,
                            "np.ptp of booleans needs a boolean subtract, which numpy refuses",
                        )
                        .help("convert first: np.ptp(x.astype(np.int8))"),
                    ));
                }
                (d, d)
            }
            ReduceOp::ArgMin | ReduceOp::ArgMax => (d, DType::I64),
            ReduceOp::Any | ReduceOp::All => (DType::Bool, DType::Bool),
            ReduceOp::CountNonzero => (DType::Bool, DType::I64),
        };
        let operand = self.cast_to(operand, compute);
        let mut dims: Vec<usize> = Vec::new();
        if q_is_list {
            dims.push(q.len());
        }
        for (axis, &extent) in in_node.shape.dims().iter().enumerate() {
            if !axes.contains(&axis) {
                dims.push(extent);
            } else if keepdims {
                dims.push(1);
            }
        }
        let reduce = Reduce {
            op: spec.op,
            skip_nan: spec.skip_nan && compute.is_float(),
            operand,
            axes,
            keepdims,
            ddof,
            q,
            q_is_list,
        };
        Ok(Val::Arr(self.push(
            NodeKind::Reduce(reduce),
            result,
            Shape(dims),
            range,
        )))
    }

    fn axes(
        &mut self,
        axis: Option<&Arg>,
        ndim: usize,
        allow_tuple: bool,
        fname: &str,
    ) -> R<Vec<usize>> {
        let Some(axis) = axis.filter(|a| !matches!(a.val, Val::None)) else {
            return Ok((0..ndim).collect());
        };
        let items: Vec<(Val, TextRange)> = match &axis.val {
            Val::Py(Py::Int(_)) => vec![(axis.val.clone(), axis.range)],
            Val::Seq {
                items,
                is_list: false,
            } if allow_tuple => items.clone(),
            _ => {
                let d = self.describe(&axis.val);
                let expected = if allow_tuple {
                    "an int, a tuple of ints, or None"
                } else {
                    "an int or None"
                };
                return Err(self.err(
                    CheckError::new(
                        ErrorKind::BadArguments,
                        axis.range,
                        format!("`axis` of {fname} must be {expected}"),
                    )
                    .label(d),
                ));
            }
        };
        let mut out = Vec::new();
        for (v, r) in items {
            let Val::Py(Py::Int(i)) = v else {
                return Err(self.err(CheckError::new(
                    ErrorKind::BadArguments,
                    r,
                    "`axis` entries must be integers",
                )));
            };
            let n = ndim as i128;
            if i < -n || i >= n {
                return Err(self.err(
                    CheckError::new(
                        ErrorKind::Axis,
                        r,
                        format!("axis {i} is out of bounds for array of dimension {ndim}"),
                    )
                    .help(if ndim == 0 {
                        "a 0-d value has no axes: drop `axis`".to_string()
                    } else {
                        format!("valid axes are {} to {}", -n, n - 1)
                    }),
                ));
            }
            let a = if i < 0 { (i + n) as usize } else { i as usize };
            if out.contains(&a) {
                return Err(self.err(CheckError::new(
                    ErrorKind::Axis,
                    r,
                    "duplicate value in 'axis'",
                )));
            }
            out.push(a);
        }
        out.sort_unstable();
        Ok(out)
    }

    fn method_arg(&mut self, method: Option<&Arg>) -> R<()> {
        let Some(m) = method else { return Ok(()) };
        match &m.val {
            Val::Str(s) if s == "linear" => Ok(()),
            Val::Str(s) if QUANTILE_METHODS.contains(&s.as_str()) => Err(self.err(
                CheckError::new(
                    ErrorKind::NotSupported,
                    m.range,
                    format!("method='{s}' is not supported yet"),
                )
                .help("only method='linear' (numpy's default) is supported"),
            )),
            other => {
                let d = self.describe(other);
                let mut e =
                    CheckError::new(ErrorKind::InvalidValue, m.range, "invalid quantile method")
                        .label(d);
                if let Val::Str(s) = other {
                    if let Some(sugg) =
                        did_you_mean(s, QUANTILE_METHODS.iter().copied().chain(["linear"]))
                    {
                        e = e.help(format!("did you mean '{sugg}'?"));
                    }
                }
                Err(self.err(e))
            }
        }
    }

    fn q_arg(&mut self, q: &Arg, percent: bool) -> R<(Vec<f64>, bool)> {
        let (items, is_list): (Vec<(Val, TextRange)>, bool) = match &q.val {
            Val::Py(_) => (vec![(q.val.clone(), q.range)], false),
            Val::Seq { items, .. } => (items.clone(), true),
            other => {
                let d = self.describe(other);
                let e = if matches!(other, Val::Arr(_)) {
                    CheckError::new(
                        ErrorKind::NotSupported,
                        q.range,
                        "`q` computed from image data is not supported",
                    )
                    .help("give q as a number or a list of numbers")
                } else {
                    CheckError::new(
                        ErrorKind::BadArguments,
                        q.range,
                        "`q` must be a number or a list of numbers",
                    )
                };
                return Err(self.err(e.label(d)));
            }
        };
        let (scale, hi) = if percent { (100.0, "100") } else { (1.0, "1") };
        let mut out = Vec::new();
        for (v, r) in items {
            let x = match v {
                Val::Py(Py::Int(i)) => i as f64,
                Val::Py(Py::Float(f)) => f,
                Val::Py(Py::Bool(b)) => b as i32 as f64,
                _ => {
                    return Err(self.err(CheckError::new(
                        ErrorKind::BadArguments,
                        r,
                        "`q` entries must be numbers",
                    )))
                }
            };
            if !(0.0..=scale).contains(&x) {
                let what = if percent { "Percentiles" } else { "Quantiles" };
                return Err(self.err(CheckError::new(
                    ErrorKind::InvalidValue,
                    r,
                    format!("{what} must be in the range [0, {hi}]"),
                )));
            }
            out.push(x / scale);
        }
        Ok((out, is_list))
    }

    // ----- indexing

    fn subscript(&mut self, e: &Expr, value: &Expr, items: &[Expr]) -> R<Val> {
        let base = self.arg(value)?;
        match base.val {
            Val::ShapeOf(ref dims) => {
                let dims = dims.clone();
                let idx = self.args(items)?;
                match idx.as_slice() {
                    [Arg {
                        val: Val::Py(Py::Int(i)),
                        range,
                        ..
                    }] => {
                        let n = dims.len() as i128;
                        if *i < -n || *i >= n {
                            return Err(self.err(
                                CheckError::new(
                                    ErrorKind::Index,
                                    *range,
                                    "tuple index out of range",
                                )
                                .note(format!("the shape is {}", Shape(dims.clone()))),
                            ));
                        }
                        let k = if *i < 0 {
                            (i + n) as usize
                        } else {
                            *i as usize
                        };
                        Ok(Val::Py(Py::Int(dims[k] as i128)))
                    }
                    _ => Err(self.err(CheckError::new(
                        ErrorKind::NotSupported,
                        e.range,
                        "only `shape[i]` with an integer i is supported",
                    ))),
                }
            }
            Val::Arr(id) => self.index_array(e, id, items),
            _ => {
                self.need_value(&base)?;
                let d = self.describe(&base.val);
                Err(self.err(CheckError::new(
                    ErrorKind::Index,
                    base.range,
                    format!("{d} cannot be indexed"),
                )))
            }
        }
    }

    fn index_array(&mut self, e: &Expr, base: NodeId, items: &[Expr]) -> R<Val> {
        let base_node = self.node(base).clone();
        let dims = base_node.shape.dims().to_vec();
        enum Raw {
            At(i128, TextRange),
            Slice(Option<i128>, Option<i128>, Option<i128>, TextRange),
            NewAxis,
            Ellipsis(TextRange),
        }
        let mut raw = Vec::new();
        for item in items {
            if let ExprKind::Slice { lower, upper, step } = &item.kind {
                let mut parts = [None, None, None];
                for (slot, part) in parts.iter_mut().zip([lower, upper, step]) {
                    if let Some(p) = part {
                        let a = self.arg(p)?;
                        match a.val {
                            Val::None => {}
                            Val::Py(Py::Int(i)) => *slot = Some(i),
                            Val::Py(Py::Bool(b)) => *slot = Some(b as i128),
                            _ => {
                                let d = self.describe(&a.val);
                                return Err(self.err(
                                    CheckError::new(
                                        ErrorKind::Index,
                                        a.range,
                                        "slice indices must be integers or None",
                                    )
                                    .label(d),
                                ));
                            }
                        }
                    }
                }
                raw.push(Raw::Slice(parts[0], parts[1], parts[2], item.range));
                continue;
            }
            let a = self.arg(item)?;
            match a.val {
                Val::Ellipsis => raw.push(Raw::Ellipsis(a.range)),
                Val::None => raw.push(Raw::NewAxis),
                Val::Py(Py::Int(i)) => raw.push(Raw::At(i, a.range)),
                Val::Arr(mask)
                    if items.len() == 1
                        && self.node(mask).dtype == DType::Bool
                        && !self.node(mask).shape.is_scalar() =>
                {
                    return self.mask(e, base, mask, a.range);
                }
                Val::Arr(_) | Val::Seq { .. } => {
                    return Err(self.err(
                        CheckError::new(ErrorKind::NotSupported, a.range, "indexing with an integer array or list (fancy indexing) is not supported")
                            .note("supported: integers, slices, `...`, `None`/np.newaxis, and a boolean mask inside a reduction"),
                    ));
                }
                _ => {
                    let d = self.describe(&a.val);
                    return Err(self.err(
                        CheckError::new(
                            ErrorKind::Index,
                            a.range,
                            "only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and integer or boolean arrays are valid indices",
                        )
                        .label(d),
                    ));
                }
            }
        }
        let ellipses: Vec<TextRange> = raw
            .iter()
            .filter_map(|r| {
                if let Raw::Ellipsis(r) = r {
                    Some(*r)
                } else {
                    None
                }
            })
            .collect();
        if ellipses.len() > 1 {
            return Err(self.err(CheckError::new(
                ErrorKind::Index,
                ellipses[1],
                "an index can only have a single ellipsis ('...')",
            )));
        }
        let n_consuming = raw
            .iter()
            .filter(|r| matches!(r, Raw::At(..) | Raw::Slice(..)))
            .count();
        if n_consuming > dims.len() {
            return Err(self.err(CheckError::new(
                ErrorKind::Index,
                e.range,
                format!("too many indices for array: array is {}-dimensional, but {n_consuming} were indexed", dims.len()),
            )));
        }
        let n_fill = dims.len() - n_consuming;
        let mut out_items = Vec::new();
        let mut out_dims = Vec::new();
        let mut axis = 0usize;
        let full = |extent: usize| IndexItem::Slice {
            start: 0,
            step: 1,
            len: extent,
        };
        let mut saw_ellipsis = false;
        for r in raw {
            match r {
                Raw::Ellipsis(_) => {
                    saw_ellipsis = true;
                    for _ in 0..n_fill {
                        out_items.push(full(dims[axis]));
                        out_dims.push(dims[axis]);
                        axis += 1;
                    }
                }
                Raw::NewAxis => {
                    out_items.push(IndexItem::NewAxis);
                    out_dims.push(1);
                }
                Raw::At(i, range) => {
                    let n = dims[axis] as i128;
                    if i < -n || i >= n {
                        return Err(self.err(CheckError::new(
                            ErrorKind::Index,
                            range,
                            format!("index {i} is out of bounds for axis {axis} with size {n}"),
                        )));
                    }
                    out_items.push(IndexItem::At(if i < 0 {
                        (i + n) as usize
                    } else {
                        i as usize
                    }));
                    axis += 1;
                }
                Raw::Slice(lo, hi, step, range) => {
                    let step = step.unwrap_or(1);
                    if step == 0 {
                        return Err(self.err(CheckError::new(
                            ErrorKind::Index,
                            range,
                            "slice step cannot be zero",
                        )));
                    }
                    let (start, len) = slice_indices(lo, hi, step, dims[axis]);
                    out_items.push(IndexItem::Slice {
                        start,
                        step: step.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
                        len,
                    });
                    out_dims.push(len);
                    axis += 1;
                }
            }
        }
        if !saw_ellipsis {
            while axis < dims.len() {
                out_items.push(full(dims[axis]));
                out_dims.push(dims[axis]);
                axis += 1;
            }
        }
        let is_identity = out_items.iter().zip(&dims).all(|(it, &d)| *it == full(d))
            && out_items.len() == dims.len();
        if is_identity {
            return Ok(Val::Arr(base));
        }
        let kind = NodeKind::Index {
            base,
            items: out_items,
        };
        Ok(Val::Arr(self.push(
            kind,
            base_node.dtype,
            Shape(out_dims),
            e.range,
        )))
    }

    fn mask(&mut self, e: &Expr, base: NodeId, mask: NodeId, mask_range: TextRange) -> R<Val> {
        let base_shape = self.node(base).shape.clone();
        let mask_shape = self.node(mask).shape.clone();
        if mask_shape.ndim() > base_shape.ndim() {
            return Err(self.err(CheckError::new(
                ErrorKind::Index,
                mask_range,
                format!(
                    "too many indices for array: array is {}-dimensional, but {} were indexed",
                    base_shape.ndim(),
                    mask_shape.ndim()
                ),
            )));
        }
        for (axis, (&m, &b)) in mask_shape.dims().iter().zip(base_shape.dims()).enumerate() {
            if m != b {
                return Err(self.err(
                    CheckError::new(
                        ErrorKind::BooleanMask,
                        mask_range,
                        format!("boolean index did not match indexed array along axis {axis}; size of axis is {b} but size of corresponding boolean axis is {m}"),
                    )
                    .label(format!("mask of shape {mask_shape}"))
                    .note(format!("the indexed array has shape {base_shape}; a mask must match its leading axes")),
                ));
            }
        }
        let _ = e;
        Ok(Val::Masked { base, mask })
    }
}

fn loops_of(name: &str) -> &'static str {
    match registry::lookup(Namespace::Np, name).map(|b| b.kind) {
        Some(Kind::Ufunc { loops, .. }) => loops,
        _ => unreachable!("{name} is a registered ufunc"),
    }
}

/// Python's `slice(lo, hi, step).indices(n)`, returned as (start, count).
fn slice_indices(lo: Option<i128>, hi: Option<i128>, step: i128, n: usize) -> (usize, usize) {
    let n = n as i128;
    let clamp = |v: i128, lower: i128, upper: i128| v.max(lower).min(upper);
    let norm = |v: i128| if v < 0 { v + n } else { v };
    if step > 0 {
        let start = lo.map(|v| clamp(norm(v), 0, n)).unwrap_or(0);
        let stop = hi.map(|v| clamp(norm(v), 0, n)).unwrap_or(n);
        let count = if stop > start {
            (stop - start + step - 1) / step
        } else {
            0
        };
        (if count == 0 { 0 } else { start as usize }, count as usize)
    } else {
        let start = lo.map(|v| clamp(norm(v), -1, n - 1)).unwrap_or(n - 1);
        let stop = hi.map(|v| clamp(norm(v), -1, n - 1)).unwrap_or(-1);
        let count = if start > stop {
            (start - stop + (-step) - 1) / (-step)
        } else {
            0
        };
        (if count == 0 { 0 } else { start as usize }, count as usize)
    }
}

fn chained_comparison_error(e: &Expr, left: &Expr, ops: &[(CmpOp, Expr)]) -> CheckError {
    // `img > 0 & m > 0` parses as `img > (0 & m) > 0`.
    if ops.len() == 2 {
        if let ExprKind::Binary {
            op: bop @ (BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor),
            left: ml,
            right: mr,
        } = &ops[0].1.kind
        {
            let (c1, c2) = (cmp_symbol(ops[0].0), cmp_symbol(ops[1].0));
            let sym = op_symbol(*bop);
            let fix = format!(
                "({} {c1} {}) {sym} ({} {c2} {})",
                unparse(left),
                unparse(ml),
                unparse(mr),
                unparse(&ops[1].1)
            );
            return CheckError::new(
                ErrorKind::PrecedenceTrap,
                e.range,
                format!("`{sym}` binds tighter than `{c1}`; write {fix}"),
            )
            .secondary(ops[0].1.range, format!("Python reads this as `{}`", unparse(&ops[0].1)))
            .note(format!(
                "as written this is the chained comparison {} {c1} ({}) {c2} {}, which numpy cannot evaluate on arrays",
                unparse(left),
                unparse(&ops[0].1),
                unparse(&ops[1].1)
            ))
            .help(format!("parenthesise each comparison: {fix}"));
        }
    }
    let mut parts = Vec::new();
    let mut prev = left;
    for (op, rhs) in ops {
        parts.push(format!(
            "({} {} {})",
            unparse(prev),
            cmp_symbol(*op),
            unparse(rhs)
        ));
        prev = rhs;
    }
    let fix = parts.join(" & ");
    CheckError::new(
        ErrorKind::ChainedComparison,
        e.range,
        "chained comparisons do not work on arrays",
    )
    .label("Python evaluates this with `and`, which needs one truth value")
    .help(format!("combine the comparisons elementwise: {fix}"))
}

/// The value part of a method call's `func` (`img` in `img.mean`).
fn func_value(func: &Expr) -> Option<&Expr> {
    match &func.kind {
        ExprKind::Attribute { value, .. } => Some(value),
        _ => None,
    }
}

fn func_value_range(func: &Expr) -> TextRange {
    func_value(func).map(|v| v.range).unwrap_or(func.range)
}

fn py_operand(p: Py) -> Operand {
    match p {
        Py::Int(i) => Operand::PyInt(i),
        Py::Float(f) => Operand::PyFloat(f),
        Py::Bool(b) => Operand::PyBool(b),
    }
}

fn py_scalar(p: Py) -> Scalar {
    match p {
        Py::Int(i) => Scalar::Int(i),
        Py::Float(f) => Scalar::Float(f),
        Py::Bool(b) => Scalar::Bool(b),
    }
}

/// Converts a constant into `dtype`'s domain the way `astype` does: nonzero is true, floats
/// truncate toward zero, integers wrap to the dtype's width.
fn scalar_in(v: Scalar, dtype: DType) -> Scalar {
    let as_int = match v {
        Scalar::Bool(b) => b as i128,
        Scalar::Int(i) => i,
        Scalar::Float(f) => {
            if f.is_finite() {
                f.trunc() as i128
            } else {
                0
            }
        }
    };
    if dtype == DType::Bool {
        return Scalar::Bool(match v {
            Scalar::Float(f) => f != 0.0,
            _ => as_int != 0,
        });
    }
    if dtype.is_float() {
        return Scalar::Float(match v {
            Scalar::Float(f) => f,
            _ => as_int as f64,
        });
    }
    let bits = 8 * dtype.size() as u32;
    let wrapped = as_int.rem_euclid(1i128 << bits);
    let value = if dtype.is_signed_int() && wrapped >= 1i128 << (bits - 1) {
        wrapped - (1i128 << bits)
    } else {
        wrapped
    };
    Scalar::Int(value)
}

fn dtype_from_str(s: &str) -> Option<DType> {
    DType::from_name(s).or(match s {
        "bool_" | "?" | "b1" => Some(DType::Bool),
        "float" | "double" | "f8" | "d" => Some(DType::F64),
        "single" | "f4" | "f" => Some(DType::F32),
        "half" | "f2" | "e" => Some(DType::F16),
        "int" | "i8" | "q" | "l" => Some(DType::I64),
        "i4" | "i" => Some(DType::I32),
        "i2" | "h" => Some(DType::I16),
        "i1" | "b" => Some(DType::I8),
        "u8" | "Q" | "L" => Some(DType::U64),
        "u4" | "I" => Some(DType::U32),
        "u2" | "H" => Some(DType::U16),
        "u1" | "B" => Some(DType::U8),
        _ => None,
    })
}

fn remap(kind: &NodeKind, map: impl Fn(NodeId) -> NodeId) -> NodeKind {
    match kind {
        NodeKind::Input { .. } | NodeKind::Const { .. } => kind.clone(),
        NodeKind::Cast { operand } => NodeKind::Cast {
            operand: map(*operand),
        },
        NodeKind::Unary { op, operand } => NodeKind::Unary {
            op: *op,
            operand: map(*operand),
        },
        NodeKind::Binary { op, lhs, rhs } => NodeKind::Binary {
            op: *op,
            lhs: map(*lhs),
            rhs: map(*rhs),
        },
        NodeKind::Where {
            cond,
            then,
            otherwise,
        } => NodeKind::Where {
            cond: map(*cond),
            then: map(*then),
            otherwise: map(*otherwise),
        },
        NodeKind::Clip { operand, lo, hi } => NodeKind::Clip {
            operand: map(*operand),
            lo: lo.map(&map),
            hi: hi.map(&map),
        },
        NodeKind::Round { operand, decimals } => NodeKind::Round {
            operand: map(*operand),
            decimals: *decimals,
        },
        NodeKind::Reduce(r) => NodeKind::Reduce(Reduce {
            operand: map(r.operand),
            ..r.clone()
        }),
        NodeKind::Index { base, items } => NodeKind::Index {
            base: map(*base),
            items: items.clone(),
        },
        NodeKind::MaskSelect { base, mask } => NodeKind::MaskSelect {
            base: map(*base),
            mask: map(*mask),
        },
    }
}

/// The exact unary ufunc numpy uses for `x ** c` / `np.power(x, c)` on a float array when `c`
/// is a Python number equal to 2, 0.5 or -1 (its fast scalar-power path and its power loop
/// both special-case these exponents).
fn fast_power(op: ElemOp, output: DType, args: &[Arg]) -> Option<ElemOp> {
    if op != ElemOp::Power || !output.is_float() {
        return None;
    }
    let exponent = match args.get(1)?.val {
        Val::Py(Py::Int(v)) => v as f64,
        Val::Py(Py::Float(v)) => v,
        _ => return None,
    };
    if exponent == 2.0 {
        Some(ElemOp::Square)
    } else if exponent == 0.5 {
        Some(ElemOp::Sqrt)
    } else if exponent == -1.0 {
        Some(ElemOp::Reciprocal)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed with Python's `range(n)[slice(lo, hi, step)]`.
    #[test]
    fn slices_normalise_like_python() {
        assert_eq!(slice_indices(None, None, 1, 5), (0, 5));
        assert_eq!(slice_indices(None, None, -1, 5), (4, 5));
        assert_eq!(slice_indices(Some(3), Some(0), -1, 6), (3, 3));
        assert_eq!(slice_indices(Some(-1), Some(-5), -2, 6), (5, 2));
        assert_eq!(slice_indices(Some(10), Some(-10), -1, 6), (5, 6));
        assert_eq!(slice_indices(None, Some(-10), -1, 6), (5, 6));
        assert_eq!(slice_indices(Some(1), None, -1, 6), (1, 2));
        assert_eq!(slice_indices(Some(-2), None, 1, 6), (4, 2));
        assert_eq!(slice_indices(None, None, 100, 6), (0, 1));
        assert_eq!(slice_indices(Some(4), Some(1), -2, 5), (4, 2));
        assert_eq!(slice_indices(Some(-1), None, -3, 3), (2, 1));
        assert_eq!(slice_indices(Some(2), Some(2), 1, 4), (0, 0));
        assert_eq!(slice_indices(Some(-100), Some(2), 1, 4), (0, 2));
        assert_eq!(slice_indices(None, None, -2, 4), (3, 2));
        assert_eq!(slice_indices(Some(5), None, 1, 3), (0, 0));
        assert_eq!(slice_indices(None, None, 1, 0), (0, 0));
        assert_eq!(slice_indices(None, None, -1, 0), (0, 0));
    }

    /// Expected values: numpy's `np.array(v).astype(dtype)` for in-range values, C-style
    /// wrapping for out-of-range integers (what `np.where(c, uint8, 300)` stores).
    #[test]
    fn constants_convert_like_astype() {
        assert_eq!(scalar_in(Scalar::Int(300), DType::U8), Scalar::Int(44));
        assert_eq!(scalar_in(Scalar::Int(-3), DType::U8), Scalar::Int(253));
        assert_eq!(scalar_in(Scalar::Int(200), DType::I8), Scalar::Int(-56));
        assert_eq!(scalar_in(Scalar::Float(-2.7), DType::I16), Scalar::Int(-2));
        assert_eq!(
            scalar_in(Scalar::Float(f64::NAN), DType::Bool),
            Scalar::Bool(true)
        );
        assert_eq!(scalar_in(Scalar::Int(0), DType::Bool), Scalar::Bool(false));
        assert_eq!(
            scalar_in(Scalar::Bool(true), DType::F32),
            Scalar::Float(1.0)
        );
    }
}
