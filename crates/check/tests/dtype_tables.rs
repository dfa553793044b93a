//! The checker's result dtypes and shapes against numpy 2's, entry by entry.
//!
//! scripts/gen/dtype_tables.py evaluates every binary operator and every registered function
//! with numpy over all dtype pairs and Python scalars and writes
//! target/goldens/dtype_tables/table.jsonl; this test checks the same formula text with the
//! same bindings and requires the same result dtype and shape, or a refusal where numpy
//! refuses.

use std::fs;
use std::path::Path;

use voxcalc_check::registry::{Kind, Namespace};
use voxcalc_check::{check, Env, BUILTINS};
use voxcalc_syntax::parse;
use voxcalc_types::DType;

/// Deliberate differences from numpy: (formula, bindings, reason). Keep tiny.
const DEVIATIONS: &[(&str, &str, &str)] = &[];

struct Entry {
    formula: String,
    bindings: String,
    result: String,
    shape: String,
    error: String,
}

/// Parses one line of flat JSON (string values only, as the generator writes them).
fn parse_flat_json(line: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let body = line.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut chars = body.chars().peekable();
    let read_string = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Option<String> {
        while chars.peek()?.is_whitespace() {
            chars.next();
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                '"' => return Some(s),
                '\\' => match chars.next()? {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                        s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    c => s.push(c),
                },
                c => s.push(c),
            }
        }
    };
    loop {
        let key = read_string(&mut chars)?;
        while chars.peek()?.is_whitespace() || *chars.peek()? == ':' {
            chars.next();
        }
        let value = read_string(&mut chars)?;
        out.push((key, value));
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

fn load() -> Vec<Entry> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/goldens/dtype_tables"
    ));
    let path = dir.join("table.jsonl");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): run `.venv/bin/python scripts/gen/dtype_tables.py` from the repository root (bash scripts/test does)",
            path.display()
        )
    });
    text.lines()
        .map(|line| {
            let fields = parse_flat_json(line).unwrap_or_else(|| panic!("bad table line: {line}"));
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            Entry {
                formula: get("formula"),
                bindings: get("bindings"),
                result: get("result"),
                shape: get("shape"),
                error: get("error"),
            }
        })
        .collect()
}

fn env_of(bindings: &str) -> Env {
    let mut env = Env::new();
    for b in bindings.split(';').filter(|b| !b.is_empty()) {
        let parts: Vec<&str> = b.split(':').collect();
        let dtype = DType::from_name(parts[1]).expect("known dtype");
        let dims: Vec<usize> = parts[2]
            .split('x')
            .filter(|d| !d.is_empty())
            .map(|d| d.parse().unwrap())
            .collect();
        env.bind(parts[0], dtype, dims);
    }
    env
}

#[test]
fn checker_matches_numpy_tables() {
    let entries = load();
    assert!(
        entries.len() > 10_000,
        "suspiciously small table: {}",
        entries.len()
    );
    let mut mismatches = Vec::new();
    let mut n_compared = 0;
    for e in &entries {
        if e.error == "python-scalar-result" {
            continue;
        }
        if DEVIATIONS
            .iter()
            .any(|(f, b, _)| *f == e.formula && *b == e.bindings)
        {
            continue;
        }
        n_compared += 1;
        let parsed = parse(&e.formula);
        assert!(
            parsed.is_ok(),
            "table formula does not parse: {}",
            e.formula
        );
        let ours = check(&parsed.expr, &env_of(&e.bindings));
        let ours_text = match &ours {
            Ok(tree) => {
                if let Err(err) = tree.validate() {
                    mismatches.push(format!("{}: invalid typed tree: {err}", e.formula));
                }
                let dims: Vec<String> = tree.shape().dims().iter().map(|d| d.to_string()).collect();
                format!("{} {}", tree.dtype(), dims.join("x"))
            }
            Err(errs) => format!(
                "error {:?}",
                errs.iter().map(|e| e.kind.code()).collect::<Vec<_>>()
            ),
        };
        // The kind of refusal matches too: numpy's OverflowError (a Python int out of range)
        // is exactly our E0206.
        let ours_overflow = ours_text.contains("E0206");
        let ok = if e.error.is_empty() {
            ours_text == format!("{} {}", e.result, e.shape)
        } else {
            let numpy_type_error = e.error == "TypeError" || e.error == "UFuncTypeError";
            // numpy's missing-loop TypeError is our E0205 (argument-type errors are E0204).
            let ours_type_error = ours_text.contains("E0205") || ours_text.contains("E0204");
            ours.is_err()
                && (e.error == "OverflowError") == ours_overflow
                && numpy_type_error == ours_type_error
        };
        if !ok {
            let numpy = if e.error.is_empty() {
                format!("{} {}", e.result, e.shape)
            } else {
                format!("numpy {}", e.error)
            };
            mismatches.push(format!(
                "{:<40} [{}]  numpy: {numpy}  voxcalc: {ours_text}",
                e.formula, e.bindings
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {n_compared} entries differ from numpy:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(200)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_registered_function_is_in_the_tables() {
    let entries = load();
    let mut missing = Vec::new();
    for b in BUILTINS {
        let needle = match (b.namespace, b.kind) {
            (Namespace::Np, Kind::Ufunc { .. } | Kind::Function(_) | Kind::Reduction(_)) => {
                format!("np.{}(", b.name)
            }
            (Namespace::Method, _) => format!(".{}(", b.name),
            _ => continue,
        };
        if !entries.iter().any(|e| e.formula.contains(&needle)) {
            missing.push(b.qualified_name());
        }
    }
    assert!(
        missing.is_empty(),
        "registered but not covered by scripts/gen/dtype_tables.py: {missing:?}"
    );
}
