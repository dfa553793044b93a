//! The text form of kernels (`voxcalc explain` and IR snapshot tests).

use std::fmt::{self, Write};

use crate::kernel::{BinaryOp, ByteOrder, InstKind, Kernel, ReduceOp, SumOrder, UnaryOp, ValueId};

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print(self))
    }
}

/// Prints a kernel: its domain, inputs, views, loops and uniforms, then one line per
/// instruction, reduction bodies indented.
pub fn print(kernel: &Kernel) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kernel domain={:?} out={}",
        kernel.domain,
        kernel.output_dtype()
    );
    for (i, input) in kernel.inputs.iter().enumerate() {
        let order = match input.byte_order {
            ByteOrder::Native => "",
            ByteOrder::Swapped => " byteswapped",
        };
        let _ = writeln!(s, "  in{i}: {}{order}", input.dtype);
    }
    for (i, l) in kernel.loops.iter().enumerate() {
        let _ = writeln!(s, "  loop{i}: 0..{}", l.len);
    }
    for (i, v) in kernel.views.iter().enumerate() {
        let loops: Vec<String> = v
            .loop_strides
            .iter()
            .map(|(l, st)| format!("{l}:{st}"))
            .collect();
        let _ = writeln!(
            s,
            "  view{i} = {}[offset {}, strides {:?}{}{}]",
            v.input,
            v.offset,
            v.domain_strides,
            if loops.is_empty() { "" } else { ", " },
            loops.join(", ")
        );
    }
    for (i, u) in kernel.uniforms.iter().enumerate() {
        let _ = writeln!(s, "  uniform{i}: {u}");
    }
    region(kernel, &kernel.body, 1, &mut s);
    let _ = writeln!(s, "  store {}", kernel.output);
    s
}

fn region(kernel: &Kernel, body: &[ValueId], depth: usize, s: &mut String) {
    for &v in body {
        let inst = kernel.inst(v);
        let pad = "  ".repeat(depth);
        let ty = inst.dtype;
        let text = match &inst.kind {
            InstKind::Const(c) => format!("const.{ty} {c}"),
            InstKind::Uniform(n) => format!("uniform.{ty} {n}"),
            InstKind::Load(view) => format!("load.{ty} view{}", view.0),
            InstKind::Cast(a) => format!("cast.{ty} {a}"),
            InstKind::Unary(op, a) => format!("{}.{ty} {a}", unary_name(*op)),
            InstKind::Binary(op, a, b) => format!("{}.{ty} {a}, {b}", binary_name(*op)),
            InstKind::Select(c, a, b) => format!("select.{ty} {c}, {a}, {b}"),
            InstKind::Reduce(r) => {
                let loops: Vec<String> = r.loops.iter().map(|l| l.to_string()).collect();
                let _ = writeln!(
                    s,
                    "{pad}{v} = reduce.{}.{ty} over {} {{",
                    reduce_name(r.op),
                    loops.join(", ")
                );
                region(kernel, &r.body, depth + 1, s);
                let mask = r.mask.map_or(String::new(), |m| format!(" where {m}"));
                let _ = writeln!(s, "{pad}}} elem {}{mask}", r.elem);
                continue;
            }
        };
        let _ = writeln!(s, "{pad}{v} = {text}");
    }
}

/// The printed name of a unary operation.
pub fn unary_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "neg",
        UnaryOp::Abs => "abs",
        UnaryOp::Not => "not",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Floor => "floor",
        UnaryOp::Ceil => "ceil",
        UnaryOp::Trunc => "trunc",
        UnaryOp::Rint => "rint",
        UnaryOp::RoundF16 => "round_f16",
        UnaryOp::IsNan => "isnan",
        UnaryOp::IsInf => "isinf",
        UnaryOp::IsFinite => "isfinite",
        UnaryOp::SignBit => "signbit",
        UnaryOp::Math(f) => f.name(),
    }
}

/// The printed name of a binary operation.
pub fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::FloorDiv => "floordiv",
        BinaryOp::Mod => "mod",
        BinaryOp::Fmod => "fmod",
        BinaryOp::Pow => "pow",
        BinaryOp::Min => "minimum",
        BinaryOp::Max => "maximum",
        BinaryOp::FMin => "fmin",
        BinaryOp::FMax => "fmax",
        BinaryOp::CopySign => "copysign",
        BinaryOp::Atan2 => "arctan2",
        BinaryOp::Hypot => "hypot",
        BinaryOp::LogAddExp => "logaddexp",
        BinaryOp::And => "and",
        BinaryOp::Or => "or",
        BinaryOp::Xor => "xor",
        BinaryOp::Shl => "shl",
        BinaryOp::Shr => "shr",
        BinaryOp::Eq => "eq",
        BinaryOp::Ne => "ne",
        BinaryOp::Lt => "lt",
        BinaryOp::Le => "le",
        BinaryOp::Gt => "gt",
        BinaryOp::Ge => "ge",
    }
}

/// The printed name of a reduction.
pub fn reduce_name(op: ReduceOp) -> String {
    match op {
        ReduceOp::Sum(SumOrder::Sequential) => "sum".into(),
        ReduceOp::Sum(SumOrder::Pairwise) => "sum_pairwise".into(),
        ReduceOp::Sum(SumOrder::PairwiseAll) => "sum_pairwise_all".into(),
        ReduceOp::Sum(SumOrder::PairwiseGlobal) => "sum_pairwise_global".into(),
        ReduceOp::Prod => "prod".into(),
        ReduceOp::Min => "min".into(),
        ReduceOp::Max => "max".into(),
        ReduceOp::FMin => "nanmin".into(),
        ReduceOp::FMax => "nanmax".into(),
        ReduceOp::Any => "any".into(),
        ReduceOp::All => "all".into(),
        ReduceOp::ArgMin => "argmin".into(),
        ReduceOp::ArgMax => "argmax".into(),
        ReduceOp::Count => "count".into(),
        ReduceOp::Median => "median".into(),
        ReduceOp::Quantile { q, data_dtype } => format!("quantile[q={q:?}, data={data_dtype}]"),
    }
}
