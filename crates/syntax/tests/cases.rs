//! Data-driven snapshot tests: every `cases/valid/*.vx` and `cases/invalid/*.vx` file holds one
//! formula (a single trailing newline is not part of it). Each snapshot shows the formula's
//! S-expression tree, then every error rendered as a caret frame. Adding a case is adding a file.

use std::path::Path;

use voxcalc_syntax::{ast, parse, render};

/// Reads a case file: its content minus one trailing newline.
fn read_case(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("case file is UTF-8");
    text.strip_suffix('\n').unwrap_or(&text).to_string()
}

/// The snapshot text of a formula: the tree, then each rendered diagnostic.
fn snapshot(source: &str) -> String {
    let res = parse(source);
    let mut out = ast::pretty(&res.expr);
    out.push('\n');
    for diagnostic in res.diagnostics() {
        out.push('\n');
        out.push_str(&render(source, &diagnostic));
    }
    out
}

#[test]
fn valid_cases() {
    insta::glob!("cases/valid/*.vx", |path| {
        let source = read_case(path);
        let res = parse(&source);
        assert!(
            res.errors.is_empty(),
            "{}: {:?}",
            path.display(),
            res.errors
        );
        insta::with_settings!({ description => source.clone(), omit_expression => true }, {
            insta::assert_snapshot!(snapshot(&source));
        });
    });
}

#[test]
fn invalid_cases() {
    insta::glob!("cases/invalid/*.vx", |path| {
        let source = read_case(path);
        let res = parse(&source);
        assert!(
            !res.errors.is_empty(),
            "{} parsed without error",
            path.display()
        );
        insta::with_settings!({ description => source.clone(), omit_expression => true }, {
            insta::assert_snapshot!(snapshot(&source));
        });
    });
}
