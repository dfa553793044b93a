//! Property tests: parsing arbitrary input never panics, and everything it returns is
//! consistent with the source (ranges inside it, on character boundaries, children inside
//! parents; a clean parse has no error placeholders), and rendering every error never panics.

use proptest::prelude::*;
use voxcalc_syntax::ast::{Expr, ExprKind};
use voxcalc_syntax::{parse, render, TextRange};

/// Tokens, near-tokens and garbage that formulas are made of.
const VOCABULARY: &[&str] = &[
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "@",
    "<<",
    ">>",
    "&",
    "|",
    "^",
    "~",
    "<",
    ">",
    "<=",
    ">=",
    "==",
    "!=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    "...",
    "=",
    ";",
    ":=",
    "and",
    "or",
    "not",
    "if",
    "else",
    "in",
    "is",
    "None",
    "True",
    "False",
    "lambda",
    "import",
    "for",
    "await",
    "yield",
    "np",
    "img",
    "mask",
    "axis",
    "mean",
    "astype",
    "x",
    "_",
    "β",
    "0",
    "1",
    "007",
    "1_000",
    "1__0",
    "3.",
    ".5",
    "1e-3",
    "1.5E+10",
    "1e",
    "1e+",
    "0x1F",
    "0b",
    "2j",
    "3.foo",
    "1..2",
    "99999999999999999999999999999999999999999",
    "'float32'",
    "\"linear\"",
    "'unterminated",
    "\"",
    "'",
    "'\\q'",
    "'\\x4'",
    "u'x'",
    "f'x'",
    "$",
    "?",
    "!",
    "&&",
    "||",
    "\\",
    "#",
    "`",
    "\u{2212}",
    "\u{00d7}",
    "\u{2018}",
    "\u{2019}",
    "\u{7}",
    "\u{0}",
    "é",
    "\u{1F600}",
    "\t",
    "\n",
    "\r\n",
    " ",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(VOCABULARY), prop::bool::ANY), 0..40).prop_map(
        |parts| {
            let mut source = String::new();
            for (token, space) in parts {
                source.push_str(token);
                if space {
                    source.push(' ');
                }
            }
            source
        },
    )
}

fn check_range(source: &str, range: TextRange, what: &str) {
    assert!(
        range.end() as usize <= source.len(),
        "{what} {range:?} outside {source:?}"
    );
    assert!(
        source.is_char_boundary(range.start() as usize),
        "{what} {range:?} in {source:?}"
    );
    assert!(
        source.is_char_boundary(range.end() as usize),
        "{what} {range:?} in {source:?}"
    );
}

fn inside(inner: TextRange, outer: TextRange) -> bool {
    outer.start() <= inner.start() && inner.end() <= outer.end()
}

/// Checks every node's range and counts error placeholders.
fn check_tree(source: &str, expr: &Expr, n_error_nodes: &mut usize) {
    check_range(source, expr.range, "node");
    let mut children: Vec<&Expr> = Vec::new();
    match &expr.kind {
        ExprKind::Error => *n_error_nodes += 1,
        ExprKind::Name(name) => assert_eq!(name.range, expr.range),
        ExprKind::Tuple(items) | ExprKind::List(items) => children.extend(items),
        ExprKind::Unary { operand, .. } => children.push(operand),
        ExprKind::Binary { left, right, .. } => children.extend([&**left, &**right]),
        ExprKind::Compare { left, ops } => {
            children.push(left);
            children.extend(ops.iter().map(|(_, e)| e));
        }
        ExprKind::BoolOp { values, .. } => children.extend(values),
        ExprKind::IfExp { body, test, orelse } => children.extend([&**body, &**test, &**orelse]),
        ExprKind::Call {
            func,
            args,
            keywords,
        } => {
            children.push(func);
            children.extend(args);
            for keyword in keywords {
                assert!(
                    inside(keyword.range, expr.range),
                    "keyword outside call in {source:?}"
                );
                assert!(inside(keyword.name.range, keyword.range));
                children.push(&keyword.value);
            }
        }
        ExprKind::Attribute { value, attr } => {
            assert!(
                inside(attr.range, expr.range),
                "attribute name outside in {source:?}"
            );
            children.push(value);
        }
        ExprKind::Subscript { value, items } => {
            children.push(value);
            children.extend(items);
        }
        ExprKind::Slice { lower, upper, step } => {
            children.extend([lower, upper, step].into_iter().flatten().map(|b| &**b));
        }
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Ellipsis => {}
    }
    for child in children {
        assert!(
            inside(child.range, expr.range),
            "child {:?} outside parent {:?} in {source:?}",
            child.range,
            expr.range
        );
        check_tree(source, child, n_error_nodes);
    }
}

fn check_source(source: &str) {
    let res = parse(source);
    let mut n_error_nodes = 0;
    check_tree(source, &res.expr, &mut n_error_nodes);
    if res.errors.is_empty() {
        assert_eq!(
            n_error_nodes, 0,
            "a clean parse holds error nodes: {source:?}"
        );
    }
    for error in &res.errors {
        check_range(source, error.range, "error");
        let diagnostic = error.to_diagnostic();
        for label in diagnostic.secondary.iter().chain([&diagnostic.primary]) {
            check_range(source, label.range, "label");
        }
        let rendered = render(source, &diagnostic);
        assert!(
            rendered.starts_with(&format!("error[{}]", error.code())),
            "{rendered}"
        );
    }
    let starts: Vec<u32> = res.errors.iter().map(|e| e.range.start()).collect();
    let mut sorted = starts.clone();
    sorted.sort_unstable();
    assert_eq!(starts, sorted, "errors are in source order");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn token_soup_never_breaks_the_parser(source in token_soup()) {
        check_source(&source);
    }

    #[test]
    fn arbitrary_text_never_breaks_the_parser(source in "\\PC{0,60}") {
        check_source(&source);
    }
}

#[test]
fn fixed_hard_inputs() {
    for source in [
        "",
        " ",
        "\n",
        "(",
        ")",
        "((((",
        "a +",
        "f(",
        "x[",
        "x[:",
        "x[1:2:",
        "'",
        "\"\\",
        "lambda",
        "not",
        "a if",
        "a if b else",
        "np.",
        "{",
        "}",
        "1e",
        "0x",
        "\u{2018}",
        "a \u{2018}b",
        "\\\n",
        "# only a comment",
        "é\u{301}",
    ] {
        check_source(source);
    }
}
