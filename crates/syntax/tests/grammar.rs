//! The grammar file is authoritative and its examples are executable: every
//! `(* example: FORMULA *)` line of grammar/formula.ebnf must parse without error, and every
//! `(* error: FORMULA *)` line must give at least one error.

use voxcalc_syntax::parse;

const GRAMMAR: &str = include_str!("../../../grammar/formula.ebnf");

/// The formulas on lines of the form `(* TAG: FORMULA *)`.
fn examples(tag: &str) -> Vec<&'static str> {
    let prefix = format!("(* {tag}: ");
    GRAMMAR
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix(prefix.as_str())?
                .strip_suffix(" *)")
        })
        .collect()
}

#[test]
fn every_example_parses_without_error() {
    let examples = examples("example");
    assert!(
        examples.len() >= 60,
        "only {} examples found",
        examples.len()
    );
    for example in examples {
        let res = parse(example);
        assert!(
            res.errors.is_empty(),
            "example `{example}` gave {:?}",
            res.errors
        );
    }
}

#[test]
fn every_error_example_gives_an_error() {
    let examples = examples("error");
    assert!(
        examples.len() >= 30,
        "only {} error examples found",
        examples.len()
    );
    for example in examples {
        assert!(
            !parse(example).errors.is_empty(),
            "error example `{example}` parsed"
        );
    }
}

#[test]
fn design_examples_are_in_the_grammar() {
    let examples = examples("example");
    for required in [
        "np.where(mask > 0, a - b, 0)",
        "np.mean(bold, axis=-1) / np.std(bold, axis=-1)",
        "img[..., None]",
        "np.percentile(x, [5, 95])",
        "a.astype('float32')",
    ] {
        assert!(
            examples.contains(&required),
            "`{required}` missing from the grammar"
        );
    }
}
