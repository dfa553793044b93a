//! Drives `voxcalc repl` through a pseudo-terminal, as a user at a terminal would: tab
//! completion, an error that leaves the session usable, Ctrl-C at the prompt, Ctrl-D, and the
//! history file.

use std::path::Path;
use std::process::Command;

use rexpect::session::{spawn_with_options, Options, PtySession};

const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// Generous: a debug build compiles each formula's kernel on first use.
const TIMEOUT_MS: u64 = 30_000;

fn start(history: &Path) -> PtySession {
    start_with(history, "anat=examples/anat.nii.gz")
}

fn start_with(history: &Path, binding: &str) -> PtySession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxcalc"));
    command
        .args(["repl", binding])
        .current_dir(REPO_ROOT)
        .env("VOXCALC_HISTORY", history)
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1");
    let options = Options::new()
        .timeout_ms(Some(TIMEOUT_MS))
        .strip_ansi_escape_codes(true);
    let mut session = spawn_with_options(command, options).expect("spawn voxcalc repl in a pty");
    session
        .exp_string("Ctrl-D to leave")
        .expect("the banner of an interactive session");
    session.exp_string(">>> ").expect("the first prompt");
    session
}

#[test]
fn completion_errors_interrupts_and_history() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let history = tmp.path().join("state/history");
    let mut repl = start(&history);

    // A unique np. function completes with its parenthesis.
    repl.send("np.percent").expect("type");
    repl.send("\t").expect("tab");
    repl.flush().expect("flush");
    repl.exp_string("np.percentile(")
        .expect("np.percent<TAB> completes to np.percentile(");
    repl.send_line("anat, 50)").expect("finish the line");
    repl.exp_string("_ = 0.0  (float64, 0-d)")
        .expect("the completed formula runs");
    repl.exp_string(">>> ").expect("prompt");

    // An ambiguous prefix lists the candidates on the second TAB.
    repl.send("np.sq").expect("type");
    repl.send("\t").expect("tab");
    repl.send("\t").expect("tab");
    repl.flush().expect("flush");
    repl.exp_string("sqrt").expect("candidate sqrt listed");
    repl.exp_string("square").expect("candidate square listed");
    repl.send_line("rt(anat)").expect("finish the line");
    repl.exp_string("_ = float32 (48, 56, 48)")
        .expect("np.sqrt(anat) runs");
    repl.exp_string(">>> ").expect("prompt");

    // Methods complete after a name.
    repl.send("anat.ast").expect("type");
    repl.send("\t").expect("tab");
    repl.flush().expect("flush");
    repl.exp_string("anat.astype(")
        .expect("anat.ast<TAB> completes to astype(");
    repl.send_line("np.float32) / 3").expect("finish the line");
    repl.exp_string("max 332.66666")
        .expect("the method call runs");
    repl.exp_string(">>> ").expect("prompt");

    // An error is drawn with its caret and the session goes on.
    repl.send_line("anta + 1").expect("send a misspelt formula");
    repl.exp_string("^^^^ not a bound image")
        .expect("the caret diagnostic");
    repl.exp_string("did you mean `anat`?")
        .expect("the suggestion");
    repl.exp_string(">>> ").expect("prompt after the error");
    repl.send_line("kept = anat * 2").expect("send");
    repl.exp_string("kept = int16 (48, 56, 48)")
        .expect("the session is usable after an error");
    repl.exp_string("compile")
        .expect("timings are shown on a terminal");
    repl.exp_string(">>> ").expect("prompt");

    // Commands and kept names complete after `:`.
    repl.send(":in").expect("type");
    repl.send("\t").expect("tab");
    repl.send("ke").expect("type");
    repl.send("\t").expect("tab");
    repl.flush().expect("flush");
    repl.exp_string(":info kept")
        .expect(":in<TAB>ke<TAB> completes to :info kept");
    repl.send_line("").expect("enter");
    repl.exp_string("name          kept = anat * 2")
        .expect(":info of a kept result");
    repl.exp_string(">>> ").expect("prompt");

    // Paths complete where a command takes a file.
    repl.send(":load m2 examples/mas").expect("type");
    repl.send("\t").expect("tab");
    repl.flush().expect("flush");
    repl.exp_string("examples/mask.nii.gz")
        .expect("a path completes after :load NAME");
    repl.send_line("").expect("enter");
    repl.exp_string("m2: uint8 (24, 28, 24)")
        .expect("the completed path loads");
    repl.exp_string(">>> ").expect("prompt");

    // Ctrl-C at the prompt drops the line, not the session.
    repl.send("anat +").expect("type");
    repl.send_control('c').expect("ctrl-c");
    repl.exp_string(">>> ")
        .expect("a fresh prompt after Ctrl-C");
    repl.send_line("1 + kept").expect("send");
    repl.exp_string("_ = int16 (48, 56, 48)")
        .expect("the session survives Ctrl-C");
    repl.exp_string(">>> ").expect("prompt");

    // Ctrl-D leaves.
    repl.send_control('d').expect("ctrl-d");
    repl.exp_eof().expect("the session ends on Ctrl-D");

    let saved = std::fs::read_to_string(&history).expect("the history file was written");
    assert!(saved.contains("kept = anat * 2"), "history:\n{saved}");
    assert!(saved.contains("anta + 1"), "history:\n{saved}");

    // A new session recalls the previous one's lines with the up arrow.
    let mut repl = start(&history);
    repl.send("\x1b[A").expect("up arrow");
    repl.flush().expect("flush");
    repl.exp_string("1 + kept")
        .expect("the last line is recalled");
    repl.send_control('u').expect("clear the line");
    repl.send_line(":quit").expect("quit");
    repl.exp_eof().expect("the session ends on :quit");
}

#[test]
fn ctrl_c_cancels_a_running_evaluation_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut repl = start_with(&tmp.path().join("history"), "bold=examples/bold.nii.gz");
    // Per-voxel means over a 40x40x40x10 broadcast: 10^10 sines, a minute or more anywhere,
    // in one output stage (the runtime polls for cancellation between that stage's blocks).
    repl.send_line(
        "np.mean(np.sin(bold[..., None, None, None] * 1.0 * bold[..., None, :, None, None] \
         * bold[..., None, None, :, None] * bold[..., None, None, None, :10]), axis=(-4, -3, -2, -1))",
    )
    .expect("send a long formula");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    repl.send_control('c').expect("ctrl-c");
    repl.exp_string("evaluation cancelled (Ctrl-C)")
        .expect("the evaluation stops with a message");
    repl.exp_string(">>> ").expect("a prompt after cancelling");
    repl.send_line("np.mean(bold)").expect("send");
    repl.exp_string("_ = 258.90260261656744  (float64, 0-d)")
        .expect("the session is usable after cancelling");
    repl.send_line(":quit").expect("quit");
    repl.exp_eof().expect("the session ends on :quit");
}
