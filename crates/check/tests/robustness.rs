//! Parsing and checking arbitrary input never panics, and deep formulas end in a clear error.

use proptest::prelude::*;
use voxcalc_check::registry::Namespace;
use voxcalc_check::{check, Env, ErrorKind, BUILTINS};
use voxcalc_syntax::parse;
use voxcalc_types::DType;

fn env() -> Env {
    let mut env = Env::new();
    env.bind("img", DType::I16, vec![4, 5, 6, 3])
        .bind("mask", DType::U8, vec![4, 5, 6])
        .bind("a", DType::F32, vec![4, 5, 6])
        .bind("b", DType::Bool, vec![4, 5, 6])
        .bind("s", DType::F64, vec![]);
    env
}

/// Tokens a formula is made of: bound and unbound names, every registered builtin, operators,
/// numbers of every flavour, brackets and keywords.
fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = [
        "img",
        "mask",
        "a",
        "b",
        "s",
        "foo",
        "np",
        "numpy",
        "__import__",
        "open",
        "True",
        "False",
        "None",
        "...",
        "(",
        ")",
        "[",
        "]",
        ",",
        ":",
        ".",
        "=",
        "+",
        "-",
        "*",
        "/",
        "//",
        "%",
        "**",
        "@",
        "&",
        "|",
        "^",
        "~",
        "<<",
        ">>",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "!=",
        "and",
        "or",
        "not",
        "if",
        "else",
        "in",
        "is",
        "0",
        "1",
        "2",
        "-1",
        "3",
        "255",
        "100000",
        "99999999999999999999999999999",
        "2.5",
        "1e300",
        ".5",
        "0.0",
        "'linear'",
        "'float32'",
        "'nearest'",
        "axis",
        "axis=",
        "keepdims=True",
        "ddof=1",
        "q",
        "dtype=",
        "nan=",
        "decimals=",
        "None,",
        "-3",
        "1e-3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for b in BUILTINS {
        match b.namespace {
            Namespace::Np => v.push(format!("np.{}", b.name)),
            Namespace::Method | Namespace::Attribute => v.push(format!(".{}", b.name)),
            Namespace::Python => v.push(b.name.to_string()),
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_and_check_never_panic(tokens in proptest::collection::vec(proptest::sample::select(vocabulary()), 1..24)) {
        let text = tokens.join(" ");
        let parsed = parse(&text);
        let env = env();
        match check(&parsed.expr, &env) {
            Ok(tree) => {
                // (A recovered parse, e.g. `0 else`, may still check: callers report parse
                // errors first.) Every node the tree refers to exists and comes first.
                for (idx, node) in tree.nodes.iter().enumerate() {
                    for child in node.kind.children() {
                        prop_assert!((child.0 as usize) < idx, "operand after its user in {text}");
                    }
                }
                prop_assert!(!tree.to_text().is_empty());
                if let Err(e) = tree.validate() {
                    prop_assert!(false, "invalid tree for `{text}`: {e}\n{}", tree.to_text());
                }
            }
            Err(errors) => {
                for e in errors {
                    let d = voxcalc_syntax::Diagnostic::from(e);
                    prop_assert!(!voxcalc_syntax::render(&text, &d).is_empty());
                }
            }
        }
    }

    /// Well-formed call shapes over random builtins and arguments never panic either.
    #[test]
    fn calls_never_panic(
        f in proptest::sample::select(vocabulary()),
        x in proptest::sample::select(vec!["img", "mask", "a", "b", "s", "2", "2.5", "True", "mask > 0", "img[mask > 0]"]),
        extra in proptest::sample::select(vec!["", ", 1", ", -1", ", axis=-1", ", 50", ", [5, 95]", ", a", ", img", ", None, 3", ", keepdims=True", ", dtype=np.float32"]),
    ) {
        for text in [format!("{f}({x}{extra})"), format!("({x}){f}({})", extra.trim_start_matches(", "))] {
            let parsed = parse(&text);
            if let Ok(tree) = check(&parsed.expr, &env()) {
                if let Err(e) = tree.validate() {
                    prop_assert!(false, "invalid tree for `{text}`: {e}\n{}", tree.to_text());
                }
            }
        }
    }
}

#[test]
fn deep_nesting_is_a_clear_error_not_a_crash() {
    let env = env();
    for depth in [50usize, 150, 199, 250, 1000] {
        for (open, close) in [
            ("-", ""),
            ("(", ")"),
            ("np.sqrt(", ")"),
            ("~", ""),
            ("a + ", ""),
        ] {
            let text = format!("{}a{}", open.repeat(depth), close.repeat(depth));
            let parsed = parse(&text);
            if let Err(errors) = check(&parsed.expr, &env) {
                for e in &errors {
                    assert!(
                        matches!(e.kind, ErrorKind::TooDeep | ErrorKind::NoLoop),
                        "unexpected error for depth {depth} `{open}`: {:?}",
                        e.kind
                    );
                }
            }
        }
    }
}

#[test]
fn moderately_deep_formulas_check() {
    let env = env();
    let text = format!("{}a{}", "np.sqrt(".repeat(60), ")".repeat(60));
    let parsed = parse(&text);
    assert!(parsed.is_ok());
    let tree = check(&parsed.expr, &env).expect("60 nested calls are fine");
    assert_eq!(tree.dtype(), DType::F32);
}
