//! Fuzzes the lexer and parser: any text must give a tree plus errors, never a panic, a stack
//! overflow or a range outside the source; every error must convert to a diagnostic and render.
//! Run with: cargo fuzz run parse
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxcalc_syntax::{ast, parse, render};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let res = parse(source);
    let _ = ast::pretty(&res.expr);
    for error in &res.errors {
        let range = error.range;
        assert!(range.start() <= range.end() && range.end() as usize <= source.len());
        assert!(source.is_char_boundary(range.start() as usize));
        assert!(source.is_char_boundary(range.end() as usize));
        let rendered = render(source, &error.to_diagnostic());
        assert!(rendered.starts_with("error["));
    }
    let root = res.expr.range;
    assert!(root.end() as usize <= source.len());
});
