//! Text helpers for messages: turning an AST back into formula text (for suggested fixes) and
//! "did you mean" suggestions by edit distance.

use voxcalc_syntax::ast::{BoolOp, Expr, ExprKind, UnaryOp};

use crate::pyscalar::{cmp_symbol, op_symbol};

/// Formula text for `e`, parenthesising every compound operand so the text parses back to the
/// same tree.
pub fn unparse(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Name(n) => n.id.clone(),
        ExprKind::Int(i) => i.to_string(),
        ExprKind::Float(x) => format!("{x:?}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        ExprKind::None => "None".to_string(),
        ExprKind::Ellipsis => "...".to_string(),
        ExprKind::Tuple(items) => {
            let parts: Vec<String> = items.iter().map(unparse).collect();
            if parts.len() == 1 {
                format!("({},)", parts[0])
            } else {
                format!("({})", parts.join(", "))
            }
        }
        ExprKind::List(items) => {
            format!(
                "[{}]",
                items.iter().map(unparse).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::Unary { op, operand } => {
            let sym = match op {
                UnaryOp::Neg => "-",
                UnaryOp::Pos => "+",
                UnaryOp::Invert => "~",
                UnaryOp::Not => "not ",
            };
            format!("{sym}{}", operand_text(operand))
        }
        ExprKind::Binary { op, left, right } => {
            format!(
                "{} {} {}",
                operand_text(left),
                op_symbol(*op),
                operand_text(right)
            )
        }
        ExprKind::Compare { left, ops } => {
            let mut s = operand_text(left);
            for (op, rhs) in ops {
                s.push_str(&format!(" {} {}", cmp_symbol(*op), operand_text(rhs)));
            }
            s
        }
        ExprKind::BoolOp { op, values } => {
            let sep = if *op == BoolOp::And { " and " } else { " or " };
            values
                .iter()
                .map(operand_text)
                .collect::<Vec<_>>()
                .join(sep)
        }
        ExprKind::IfExp { body, test, orelse } => format!(
            "{} if {} else {}",
            operand_text(body),
            operand_text(test),
            operand_text(orelse)
        ),
        ExprKind::Call {
            func,
            args,
            keywords,
        } => {
            let mut parts: Vec<String> = args.iter().map(unparse).collect();
            parts.extend(
                keywords
                    .iter()
                    .map(|k| format!("{}={}", k.name.id, unparse(&k.value))),
            );
            format!("{}({})", operand_text(func), parts.join(", "))
        }
        ExprKind::Attribute { value, attr } => format!("{}.{}", operand_text(value), attr.id),
        ExprKind::Subscript { value, items } => format!(
            "{}[{}]",
            operand_text(value),
            items.iter().map(unparse).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Slice { lower, upper, step } => {
            let part = |p: &Option<Box<Expr>>| p.as_deref().map(unparse).unwrap_or_default();
            match step {
                Some(_) => format!("{}:{}:{}", part(lower), part(upper), part(step)),
                None => format!("{}:{}", part(lower), part(upper)),
            }
        }
        ExprKind::Error => "<error>".to_string(),
    }
}

/// `unparse(e)`, in parentheses unless `e` is atomic (a name, literal, call, attribute or
/// subscript).
pub fn operand_text(e: &Expr) -> String {
    let atomic = matches!(
        e.kind,
        ExprKind::Name(_)
            | ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::None
            | ExprKind::Ellipsis
            | ExprKind::Tuple(_)
            | ExprKind::List(_)
            | ExprKind::Call { .. }
            | ExprKind::Attribute { .. }
            | ExprKind::Subscript { .. }
    );
    if atomic {
        unparse(e)
    } else {
        format!("({})", unparse(e))
    }
}

/// Edit distance counting insertions, deletions, substitutions and swaps of two neighbouring
/// characters (optimal string alignment), so `mena` is one edit from `mean`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate to `name` when it is close enough to be a plausible typo (distance at
/// most a third of the name's length, at least 1; a case-only difference always counts).
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(name) {
                0
            } else {
                edit_distance(name, c)
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(did_you_mean("sqr", ["sqrt", "square", "exp"]), Some("sqrt"));
        assert_eq!(did_you_mean("mena", ["mean", "median"]), Some("mean"));
        assert_eq!(did_you_mean("zzzzzz", ["mean", "median"]), None);
        assert_eq!(did_you_mean("IMG", ["img"]), Some("img"));
    }
}
