//! Data-driven snapshot cases: every `tests/cases/valid/*.vx` must check and snapshots its
//! typed tree; every `tests/cases/invalid/*.vx` must be refused and snapshots each error as a
//! rendered caret frame. Adding a case is adding a file.

mod common;

use std::fs;
use std::path::Path;

use voxcalc_check::check;
use voxcalc_syntax::{parse, render, Diagnostic};

fn run_dir(kind: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(kind);
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "vx"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&path).unwrap();
        let case = match common::parse_case(&text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: bad case header: {e}"));
                continue;
            }
        };
        let parsed = parse(&case.formula);
        if !parsed.is_ok() {
            let frames: Vec<String> = parsed
                .diagnostics()
                .iter()
                .map(|d| render(&case.formula, d))
                .collect();
            failures.push(format!("{name}: does not parse:\n{}", frames.join("\n")));
            continue;
        }
        let mut out = String::new();
        for image in case.env.images() {
            out.push_str(&format!(
                "# {}: {} {}\n",
                image.name, image.dtype, image.shape
            ));
        }
        out.push_str(&case.formula);
        out.push_str("\n---\n");
        match (kind, check(&parsed.expr, &case.env)) {
            ("valid", Ok(tree)) => {
                if let Err(e) = tree.validate() {
                    failures.push(format!("{name}: typed tree breaks an invariant: {e}"));
                }
                out.push_str(&format!("result: {} {}\n", tree.dtype(), tree.shape()));
                out.push_str(&format!("inputs used: {:?}\n", tree.inputs_used));
                out.push_str(&tree.to_text());
            }
            ("invalid", Err(errors)) if !errors.is_empty() => {
                for e in errors {
                    out.push_str(&render(&case.formula, &Diagnostic::from(e)));
                    out.push('\n');
                }
            }
            (_, Ok(tree)) => {
                failures.push(format!(
                    "{name}: expected errors, got a tree:\n{}",
                    tree.to_text()
                ));
                continue;
            }
            (_, Err(errors)) => {
                let frames: Vec<String> = errors
                    .into_iter()
                    .map(|e| render(&case.formula, &Diagnostic::from(e)))
                    .collect();
                failures.push(format!(
                    "{name}: expected a tree, got errors:\n{}",
                    frames.join("\n")
                ));
                continue;
            }
        }
        insta::with_settings!({
            snapshot_path => format!("cases/snapshots/{kind}"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, out);
        });
    }
    failures
}

#[test]
fn valid_cases_check() {
    let failures = run_dir("valid");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn invalid_cases_are_refused() {
    let failures = run_dir("invalid");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
