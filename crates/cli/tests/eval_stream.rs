//! `voxcalc eval --stream`: streaming a gzipped series changes memory, never the result, and a
//! formula that cannot stream falls back to inflating the series whole.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Runs `voxcalc eval FORMULA b=examples/bold.nii.gz -o OUT --stream MODE` and returns the
/// written file's bytes.
fn eval(formula: &str, mode: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("out-{mode}.nii"));
    let bold = example("bold.nii.gz");
    let status = Command::new(env!("CARGO_BIN_EXE_voxcalc"))
        .args(["eval", formula])
        .arg(format!("b={}", bold.display()))
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--stream", mode])
        .status()
        .expect("voxcalc runs");
    assert!(status.success(), "{formula} --stream {mode}");
    std::fs::read(&out).expect("written")
}

#[test]
fn every_stream_mode_writes_the_same_file() {
    let dir = std::env::temp_dir().join(format!("voxcalc-eval-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    for formula in [
        "np.mean(b, axis=-1)",
        "np.mean(b, axis=-1) / np.std(b, axis=-1)",
        // Cannot stream: read whole whatever the mode.
        "np.max(b, axis=-1) - b[..., 0]",
    ] {
        let never = eval(formula, "never", &dir);
        assert!(eval(formula, "always", &dir) == never, "{formula}");
        assert!(eval(formula, "auto", &dir) == never, "{formula}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
