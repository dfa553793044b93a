//! Python's own parser is the oracle for precedence and tree shape (`tests/python_tree.py`
//! converts Python's `ast` tree to the S-expression form of `voxcalc_syntax::ast::pretty`):
//! - every valid case must give the same tree as Python;
//! - over thousands of generated formulas (random expression shapes, some mutated), whatever
//!   Python rejects must be rejected here, and whatever both accept must give the same tree.
//!
//! Python is the interpreter named by `VOXCALC_PYTHON` (set by `scripts/test`), else the
//! repository's `.venv/bin/python`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// A small deterministic generator (xorshift64*), so failures reproduce without a seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const ATOMS: &[&str] = &[
    "a",
    "b",
    "img",
    "np",
    "0",
    "1",
    "2",
    "10",
    "1_000",
    "2.5",
    ".5",
    "1.",
    "1e-3",
    "1E+2",
    "'x'",
    "\"float32\"",
    "None",
    "True",
    "False",
    "...",
];
const BINARY: &[&str] = &[
    "+", "-", "*", "/", "//", "%", "**", "@", "<<", ">>", "&", "|", "^", "<", ">", "<=", ">=",
    "==", "!=", "in", "not in", "is", "is not", "and", "or",
];
const PREFIX: &[&str] = &["-", "+", "~", "not"];
const NOISE: &[&str] = &[
    "(", ")", "[", "]", ",", ":", ".", "=", "if", "else", "not", "-", "**", "a", "1", "lambda",
];

/// Appends the tokens of a random expression, deliberately without parentheses around
/// operands, so that the parsers' precedence decides the tree.
fn gen_expr(rng: &mut Rng, depth: usize, out: &mut Vec<String>) {
    let choice = if depth == 0 { 0 } else { rng.below(10) };
    match choice {
        0 | 1 => out.push(rng.pick(ATOMS).to_string()),
        2 => {
            out.push(rng.pick(PREFIX).to_string());
            gen_expr(rng, depth - 1, out);
        }
        3 | 4 => {
            gen_expr(rng, depth - 1, out);
            out.push(rng.pick(BINARY).to_string());
            gen_expr(rng, depth - 1, out);
        }
        5 => {
            gen_expr(rng, depth - 1, out);
            out.push("if".into());
            gen_expr(rng, depth - 1, out);
            out.push("else".into());
            gen_expr(rng, depth - 1, out);
        }
        6 => {
            out.push("(".into());
            gen_expr(rng, depth - 1, out);
            if rng.below(3) == 0 {
                out.push(",".into());
                if rng.below(2) == 0 {
                    gen_expr(rng, depth - 1, out);
                }
            }
            out.push(")".into());
        }
        7 => {
            out.push(rng.pick(&["f", "np.mean", "x.astype"]).to_string());
            out.push("(".into());
            let n_args = rng.below(3);
            for idx in 0..n_args {
                if idx > 0 {
                    out.push(",".into());
                }
                if rng.below(3) == 0 {
                    out.push(rng.pick(&["axis", "q", "keepdims"]).to_string());
                    out.push("=".into());
                }
                gen_expr(rng, depth - 1, out);
            }
            out.push(")".into());
        }
        8 => {
            out.push(rng.pick(&["img", "x", "m"]).to_string());
            out.push("[".into());
            let n_items = 1 + rng.below(2);
            for idx in 0..n_items {
                if idx > 0 {
                    out.push(",".into());
                }
                match rng.below(3) {
                    0 => gen_expr(rng, depth - 1, out),
                    1 => {
                        if rng.below(2) == 0 {
                            gen_expr(rng, depth - 1, out);
                        }
                        out.push(":".into());
                        if rng.below(2) == 0 {
                            gen_expr(rng, depth - 1, out);
                        }
                    }
                    _ => out.push("...".into()),
                }
            }
            out.push("]".into());
        }
        _ => {
            out.push("[".into());
            gen_expr(rng, depth - 1, out);
            out.push(",".into());
            gen_expr(rng, depth - 1, out);
            out.push("]".into());
        }
    }
}

fn gen_formula(rng: &mut Rng) -> String {
    let mut tokens = Vec::new();
    let depth = 1 + rng.below(4);
    gen_expr(rng, depth, &mut tokens);
    // A third of the formulas get one or two random edits, to exercise error agreement.
    if rng.below(3) == 0 {
        for _ in 0..1 + rng.below(2) {
            let at = rng.below(tokens.len() + 1);
            match rng.below(3) {
                0 if at < tokens.len() => {
                    tokens.remove(at);
                }
                _ => tokens.insert(at, rng.pick(NOISE).to_string()),
            }
        }
    }
    tokens.join(" ")
}

/// Encodes `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How the generated formulas fared: (same tree, rejected by both, valid Python that the
/// dialect excludes). Panics on any disagreement.
fn compare_with_python(formulas: &[String]) -> (usize, usize, usize) {
    let input: String = formulas.iter().map(|f| json_string(f) + "\n").collect();

    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_tree.py");
    let mut child = Command::new(&python)
        .arg(script)
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): set VOXCALC_PYTHON", python.display()));
    // Write from another thread: Python answers as it reads, and a full output pipe would
    // otherwise block both processes.
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("python output");
    writer
        .join()
        .expect("writer thread")
        .expect("write formulas");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let verdicts: Vec<&str> = stdout.lines().collect();
    assert_eq!(verdicts.len(), formulas.len());

    let (mut n_same_tree, mut n_both_reject, mut n_only_we_reject) = (0, 0, 0);
    let mut failures = Vec::new();
    for (formula, verdict) in formulas.iter().zip(&verdicts) {
        let (status, detail) = verdict.split_once('\t').expect("status<TAB>detail");
        let res = parse(formula);
        match status {
            "error" if res.errors.is_empty() => failures.push(format!(
                "Python rejects `{formula}` ({detail}) but it parsed as {}",
                ast::pretty(&res.expr)
            )),
            "error" => n_both_reject += 1,
            "ok" if res.errors.is_empty() => {
                let ours = ast::pretty(&res.expr);
                if ours == detail {
                    n_same_tree += 1;
                } else {
                    failures.push(format!(
                        "`{formula}`:\n  python: {detail}\n  ours:   {ours}"
                    ));
                }
            }
            _ => n_only_we_reject += 1,
        }
    }
    eprintln!(
        "{n_same_tree} same tree, {n_both_reject} rejected by both, \
         {n_only_we_reject} valid Python outside the dialect"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (n_same_tree, n_both_reject, n_only_we_reject)
}

fn seed() -> u64 {
    std::env::var("VOXCALC_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
}

#[test]
fn generated_formulas_agree_with_python() {
    let mut rng = Rng(seed());
    let formulas: Vec<String> = (0..4000).map(|_| gen_formula(&mut rng)).collect();
    let (n_same_tree, n_both_reject, n_only_we_reject) = compare_with_python(&formulas);
    // The generator must exercise both outcomes, or this test proves little.
    assert!(
        n_same_tree > 1000,
        "only {n_same_tree} formulas both parsers accepted"
    );
    assert!(
        n_both_reject > 500,
        "only {n_both_reject} formulas both parsers rejected"
    );
    assert!(
        n_only_we_reject < 400,
        "{n_only_we_reject} formulas only voxcalc rejected"
    );
}

/// Characters numbers, strings and their near misses are made of.
const LEXICAL_CHARS: &[&str] = &[
    "0", "1", "7", "9", ".", "_", "e", "E", "x", "o", "b", "j", "+", "-", "'", "\"", "\\", "a",
    "f", "r", "u", " ", "(", ")", "[", "]", ",", ":", "*", "=",
];

#[test]
fn lexical_soup_agrees_with_python() {
    let mut rng = Rng(seed() ^ 0xD1B5_4A32_D192_ED03);
    let formulas: Vec<String> = (0..6000)
        .map(|_| {
            (0..1 + rng.below(10))
                .map(|_| rng.pick(LEXICAL_CHARS))
                .collect()
        })
        .collect();
    let (n_same_tree, n_both_reject, _) = compare_with_python(&formulas);
    assert!(
        n_same_tree > 300,
        "only {n_same_tree} formulas both parsers accepted"
    );
    assert!(
        n_both_reject > 1000,
        "only {n_both_reject} formulas both parsers rejected"
    );
}
