//! Transcript tests: each `tests/repl/*.txt` is a scripted session fed to `voxcalc repl
//! --echo` through stdin (the first line `# args: ...` gives the command-line images). The
//! merged stdout and stderr, with the exit status, are snapshot-checked. `$TMP` in a script is
//! a fresh temp directory (written back as `$TMP` in the output). Adding a case is adding a
//! file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Runs one script and returns the transcript to snapshot.
fn run_script(script_path: &Path) -> String {
    let script = std::fs::read_to_string(script_path).expect("read the script");
    let tmp = tempfile::tempdir().expect("temp dir");
    let tmp_text = tmp.path().display().to_string();
    let script = script.replace("$TMP", &tmp_text);
    let args: Vec<String> = script
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("# args:"))
        .map(|args| args.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let stdin_path = tmp.path().join("stdin.txt");
    std::fs::write(&stdin_path, &script).expect("write stdin");
    let out_path = tmp.path().join("out.txt");
    let out = File::create(&out_path).expect("create the output file");
    let status = Command::new(env!("CARGO_BIN_EXE_voxcalc"))
        .arg("repl")
        .arg("--echo")
        .args(&args)
        .current_dir(REPO_ROOT)
        .env_remove("NO_COLOR")
        .stdin(File::open(&stdin_path).expect("open stdin"))
        .stdout(out.try_clone().expect("clone the output file"))
        .stderr(out)
        .status()
        .expect("run voxcalc repl");
    let output = std::fs::read_to_string(&out_path).expect("read the output");
    let output = elide_native_code(&output.replace(&tmp_text, "$TMP"));
    format!("exit status: {}\n{output}", status.code().unwrap_or(-1))
}

/// `:explain` prints the plan and Cranelift IR after the typed tree; they change with the
/// code generator, so transcripts keep only the typed tree.
fn elide_native_code(output: &str) -> String {
    let mut out = String::new();
    let mut eliding = false;
    for line in output.lines() {
        if line.starts_with(">>> ") {
            eliding = false;
        }
        if line == "== plan" {
            eliding = true;
            out.push_str("== plan\n[plan and native code elided by the test]\n");
            continue;
        }
        if !eliding {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/repl");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read tests/repl")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    scripts.sort();
    scripts
}

#[test]
fn transcripts() {
    let scripts = scripts();
    assert!(
        scripts.len() >= 4,
        "expected the transcript scripts in tests/repl"
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/repl/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for script in &scripts {
            let name = script
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("script name")
                .to_string();
            let transcript = run_script(script);
            insta::assert_snapshot!(name, transcript);
        }
    });
}

#[test]
fn funcs_lists_every_builtin_signature() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let stdin_path = tmp.path().join("stdin.txt");
    std::fs::write(&stdin_path, ":funcs\n").expect("write stdin");
    let output = Command::new(env!("CARGO_BIN_EXE_voxcalc"))
        .arg("repl")
        .stdin(File::open(&stdin_path).expect("open stdin"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run voxcalc repl");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    for builtin in voxcalc_check::registry::BUILTINS {
        assert!(
            text.lines()
                .any(|line| line.trim_start().starts_with(builtin.signature)
                    && line.contains(builtin.meaning)),
            "`:funcs` misses {}",
            builtin.signature
        );
    }
}

#[test]
fn explain_shows_the_plan_and_native_code() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let stdin_path = tmp.path().join("stdin.txt");
    std::fs::write(&stdin_path, ":explain np.sqrt(anat) + 1\n").expect("write stdin");
    let output = Command::new(env!("CARGO_BIN_EXE_voxcalc"))
        .args(["repl", "anat=examples/anat.nii.gz"])
        .current_dir(REPO_ROOT)
        .stdin(File::open(&stdin_path).expect("open stdin"))
        .output()
        .expect("run voxcalc repl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(text.contains("== typed tree"), "{text}");
    assert!(text.contains("== plan"), "{text}");
    assert!(text.contains("function"), "no Cranelift IR in:\n{text}");
}
