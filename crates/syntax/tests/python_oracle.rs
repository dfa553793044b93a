//! Python's own parser is the oracle for precedence and tree shape: every valid case must give
//! the same S-expression from `voxcalc_syntax::parse` as from Python's `ast` module
//! (`tests/python_tree.py` converts Python's tree to the same form).
//!
//! Python is the interpreter named by `VOXCALC_PYTHON` (set by `scripts/test`), else the
//! repository's `.venv/bin/python`.

use std::path::{Path, PathBuf};
use std::process::Command;

use voxcalc_syntax::{ast, parse};

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("VOXCALC_PYTHON") {
        return PathBuf::from(python);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

#[test]
fn valid_cases_parse_like_python() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let case_dir = manifest.join("tests/cases/valid");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&case_dir)
        .expect("valid case directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "vx"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 50,
        "expected the valid cases in {}",
        case_dir.display()
    );

    let python = python();
    let output = Command::new(&python)
        .arg(manifest.join("tests/python_tree.py"))
        .args(&cases)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): create the venv (see README) or set VOXCALC_PYTHON",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "python_tree.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let python_trees: Vec<(&str, &str)> = stdout
        .lines()
        .map(|line| line.split_once('\t').expect("name<TAB>tree"))
        .collect();
    assert_eq!(python_trees.len(), cases.len());

    let mut mismatches = Vec::new();
    for (path, (name, python_tree)) in cases.iter().zip(&python_trees) {
        let text = std::fs::read_to_string(path).expect("case file");
        let source = text.strip_suffix('\n').unwrap_or(&text);
        let ours = ast::pretty(&parse(source).expr);
        if ours != *python_tree {
            mismatches.push(format!(
                "{name}:\n  python: {python_tree}\n  ours:   {ours}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "trees differ from Python's:\n{}",
        mismatches.join("\n")
    );
}
