//! A compact S-expression form of the AST, for snapshots, debugging and tests.
//!
//! `np.mean(bold, axis=-1)` prints as `(call (attr np mean) [bold] {axis: (- 1)})`. Operators
//! print as their symbol (a unary operator has one operand, a binary one two); literals print
//! as Python's `repr` would, so the form can be compared with a tree built from Python's own
//! `ast` module.

use std::fmt::Write;

use crate::ast::{BinaryOp, BoolOp, CmpOp, Expr, ExprKind, UnaryOp};

/// The S-expression form of `expr` on one line.
pub fn pretty(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

fn write_list(out: &mut String, items: &[Expr]) {
    for (idx, item) in items.iter().enumerate() {
        if idx > 0 {
            out.push(' ');
        }
        write_expr(out, item);
    }
}

fn write_expr(out: &mut String, expr: &Expr) {
    match &expr.kind {
        ExprKind::Name(name) => out.push_str(&name.id),
        ExprKind::Int(value) => {
            let _ = write!(out, "{value}");
        }
        ExprKind::Float(value) => out.push_str(&python_float_repr(*value)),
        ExprKind::Str(value) => out.push_str(&python_str_repr(value)),
        ExprKind::Bool(true) => out.push_str("True"),
        ExprKind::Bool(false) => out.push_str("False"),
        ExprKind::None => out.push_str("None"),
        ExprKind::Ellipsis => out.push_str("..."),
        ExprKind::Tuple(items) => {
            out.push_str("(tuple");
            if !items.is_empty() {
                out.push(' ');
            }
            write_list(out, items);
            out.push(')');
        }
        ExprKind::List(items) => {
            out.push_str("(list");
            if !items.is_empty() {
                out.push(' ');
            }
            write_list(out, items);
            out.push(')');
        }
        ExprKind::Unary { op, operand } => {
            let _ = write!(out, "({} ", unary_symbol(*op));
            write_expr(out, operand);
            out.push(')');
        }
        ExprKind::Binary { op, left, right } => {
            let _ = write!(out, "({} ", binary_symbol(*op));
            write_expr(out, left);
            out.push(' ');
            write_expr(out, right);
            out.push(')');
        }
        ExprKind::Compare { left, ops } => {
            if let [(op, right)] = ops.as_slice() {
                let _ = write!(out, "({} ", compare_symbol(*op));
                write_expr(out, left);
                out.push(' ');
                write_expr(out, right);
            } else {
                out.push_str("(chain ");
                write_expr(out, left);
                for (op, right) in ops {
                    let _ = write!(out, " {} ", compare_symbol(*op));
                    write_expr(out, right);
                }
            }
            out.push(')');
        }
        ExprKind::BoolOp { op, values } => {
            out.push_str(match op {
                BoolOp::And => "(and ",
                BoolOp::Or => "(or ",
            });
            write_list(out, values);
            out.push(')');
        }
        ExprKind::IfExp { body, test, orelse } => {
            out.push_str("(if ");
            write_expr(out, test);
            out.push_str(" then ");
            write_expr(out, body);
            out.push_str(" else ");
            write_expr(out, orelse);
            out.push(')');
        }
        ExprKind::Call {
            func,
            args,
            keywords,
        } => {
            out.push_str("(call ");
            write_expr(out, func);
            out.push_str(" [");
            write_list(out, args);
            out.push(']');
            if !keywords.is_empty() {
                out.push_str(" {");
                for (idx, keyword) in keywords.iter().enumerate() {
                    if idx > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{}: ", keyword.name.id);
                    write_expr(out, &keyword.value);
                }
                out.push('}');
            }
            out.push(')');
        }
        ExprKind::Attribute { value, attr } => {
            out.push_str("(attr ");
            write_expr(out, value);
            let _ = write!(out, " {})", attr.id);
        }
        ExprKind::Subscript { value, items } => {
            out.push_str("(index ");
            write_expr(out, value);
            out.push_str(" [");
            write_list(out, items);
            out.push_str("])");
        }
        ExprKind::Slice { lower, upper, step } => {
            out.push_str("(slice");
            for part in [lower, upper, step] {
                out.push(' ');
                match part {
                    Some(part) => write_expr(out, part),
                    None => out.push('_'),
                }
            }
            out.push(')');
        }
        ExprKind::Error => out.push_str("<error>"),
    }
}

/// The symbol of a prefix operator (`not` for [`UnaryOp::Not`]).
pub fn unary_symbol(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "-",
        UnaryOp::Pos => "+",
        UnaryOp::Invert => "~",
        UnaryOp::Not => "not",
    }
}

/// The symbol of an infix operator as written in a formula.
pub fn binary_symbol(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::FloorDiv => "//",
        BinaryOp::Mod => "%",
        BinaryOp::Pow => "**",
        BinaryOp::MatMul => "@",
        BinaryOp::LShift => "<<",
        BinaryOp::RShift => ">>",
        BinaryOp::BitAnd => "&",
        BinaryOp::BitOr => "|",
        BinaryOp::BitXor => "^",
    }
}

/// The symbol of a comparison; the two-word operators are hyphenated (`not-in`, `is-not`)
/// so that every token of the S-expression is one word.
pub fn compare_symbol(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::NotEq => "!=",
        CmpOp::Lt => "<",
        CmpOp::LtE => "<=",
        CmpOp::Gt => ">",
        CmpOp::GtE => ">=",
        CmpOp::In => "in",
        CmpOp::NotIn => "not-in",
        CmpOp::Is => "is",
        CmpOp::IsNot => "is-not",
    }
}

/// `repr(x)` for a Python float: the shortest digits that round-trip, in positional notation
/// for exponents -4..16 and scientific notation (`1e-05`, `1e+16`) otherwise.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    // `{:e}` gives the shortest round-tripping digits: "1.5e-7", "-2e3".
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&exponent) {
        let n_digits = digits.len() as i32;
        let body = if exponent < 0 {
            format!("0.{}{}", "0".repeat((-exponent - 1) as usize), digits)
        } else if exponent + 1 >= n_digits {
            format!(
                "{}{}.0",
                digits,
                "0".repeat((exponent + 1 - n_digits) as usize)
            )
        } else {
            let split = (exponent + 1) as usize;
            format!("{}.{}", &digits[..split], &digits[split..])
        };
        format!("{sign}{body}")
    } else {
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs())
    }
}

/// `repr(s)` for a Python str: single quotes unless the text holds a `'` and no `"`.
pub fn python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e-3, "0.001"),
            (1e-5, "1e-05"),
            (1.5e10, "15000000000.0"),
            (1e16, "1e+16"),
            (1234.5678, "1234.5678"),
            (0.0001, "0.0001"),
            (1.5e300, "1.5e+300"),
            (0.1, "0.1"),
            (f64::INFINITY, "inf"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(value), expected);
        }
    }

    #[test]
    fn str_repr_matches_python() {
        assert_eq!(python_str_repr("float32"), "'float32'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
        assert_eq!(python_str_repr("a'\"b\n"), "'a\\'\"b\\n'");
    }
}
