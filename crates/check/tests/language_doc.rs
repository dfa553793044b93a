//! docs/language.md must equal what the registry and the checker generate.

use std::fs;
use std::path::Path;

use voxcalc_check::docs::language_reference;
use voxcalc_check::BUILTINS;

fn doc_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/language.md")
}

#[test]
fn language_doc_is_current() {
    let expected = language_reference();
    let path = doc_path();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        fs::write(&path, &expected).expect("write docs/language.md");
    }
    let actual = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/language.md is stale: regenerate with UPDATE_DOCS=1 cargo test -p voxcalc-check --test language_doc"
    );
}

#[test]
fn every_registry_entry_is_documented() {
    let text = language_reference();
    for b in BUILTINS {
        assert!(
            text.contains(&format!("`{}`", b.qualified_name())),
            "{} missing",
            b.qualified_name()
        );
    }
}
