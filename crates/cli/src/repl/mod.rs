//! `voxcalc repl`: an interactive session for trying formulas on images.
//!
//! [`session::Session`] holds the named images and turns each line into text; this module
//! reads the lines, from rustyline on a terminal (completion, history, Ctrl-C) or line by
//! line from a pipe (plain output, no prompt, no timings, so transcripts are stable).

mod commands;
mod complete;
mod picture;
mod session;
mod summary;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, ValueEnum};
use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Editor};

use crate::eval::parse_bindings;
use complete::ReplHelper;
use session::{Session, SessionOptions, Step};

/// Arguments of `voxcalc repl`.
#[derive(Args, Debug)]
pub struct ReplArgs {
    /// Images to open at the start, as NAME=PATH (more with `:load NAME PATH`).
    #[arg(value_name = "NAME=PATH")]
    pub inputs: Vec<String>,
    /// Worker threads for evaluations (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print each input line after a `>>> ` prompt before its output (for transcripts of
    /// scripted sessions).
    #[arg(long)]
    pub echo: bool,
    /// Show compile and run times even when stdout is not a terminal.
    #[arg(long, overrides_with = "no_timings")]
    pub timings: bool,
    /// Never show compile and run times (they are shown on a terminal by default).
    #[arg(long)]
    pub no_timings: bool,
    /// Colour pictures of `:show` (24-bit colour half blocks) or draw them as plain text.
    #[arg(long, value_enum, default_value_t = ColourChoice::Auto)]
    pub color: ColourChoice,
    /// Width of `:show` pictures in characters (default: the terminal's, else 100).
    #[arg(long, value_name = "COLUMNS")]
    pub width: Option<usize>,
}

/// When to use colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColourChoice {
    /// Colour when stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Runs `voxcalc repl`.
pub fn run(args: &ReplArgs) -> Result<()> {
    // The first formula typed then compiles warm; never joined.
    std::thread::spawn(voxcalc::warm_up);
    let interactive = std::io::stdin().is_terminal();
    let stdout_terminal = std::io::stdout().is_terminal();
    let colour = match args.color {
        ColourChoice::Always => true,
        ColourChoice::Never => false,
        ColourChoice::Auto => stdout_terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    let timings = !args.no_timings && (args.timings || (interactive && stdout_terminal));
    let cancel = Arc::new(AtomicBool::new(false));
    let options = SessionOptions {
        timings,
        colour,
        width: args.width.unwrap_or(100),
        threads: args.threads,
        progress_bar: interactive,
    };
    let mut session = Session::new(options, cancel.clone());
    let mut failed = false;
    for (name, path) in parse_bindings(&args.inputs)? {
        let line = format!(":load {name} {}", path.display());
        failed |= !run_line(&mut session, &line);
    }
    if !interactive {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let line = line?;
            if args.echo {
                println!(">>> {line}");
            }
            match session.handle(&line) {
                Ok(Step::Quit) => break,
                Ok(Step::Continue(text)) => print_output(&text),
                Err(err) => {
                    failed = true;
                    print_error(&err);
                }
            }
        }
        if failed {
            anyhow::bail!("some commands failed (see above)");
        }
        return Ok(());
    }

    // A SIGINT handler: rustyline reads Ctrl-C itself at the prompt (raw mode), so a signal
    // arrives only while an evaluation runs, which the flag then cancels.
    let flag = cancel.clone();
    if let Err(err) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("warning: Ctrl-C will end the session instead of cancelling ({err})");
    }
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .max_history_size(10_000)?
        .build();
    let mut editor: Editor<ReplHelper, DefaultHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(ReplHelper::new()));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "voxcalc {} REPL: `:help` for commands, Ctrl-D to leave",
        env!("CARGO_PKG_VERSION")
    );
    let prompt = if colour {
        "\x1b[1;32m>>>\x1b[0m "
    } else {
        ">>> "
    };
    loop {
        if let Some(helper) = editor.helper_mut() {
            helper.names = session.names();
        }
        if args.width.is_none() {
            if let Some((columns, _)) = editor.dimensions() {
                session.set_width(usize::from(columns).saturating_sub(1).max(20));
            }
        }
        match editor.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &history {
                        save_history(&mut editor, path);
                    }
                }
                cancel.store(false, Ordering::Relaxed);
                match session.handle(&line) {
                    Ok(Step::Quit) => break,
                    Ok(Step::Continue(text)) => print_output(&text),
                    Err(err) => print_error(&err),
                }
            }
            // Ctrl-C at the prompt abandons the line, never the session.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Runs one line, printing its output or error; false when it failed.
fn run_line(session: &mut Session, line: &str) -> bool {
    match session.handle(line) {
        Ok(Step::Continue(text)) => {
            print_output(&text);
            true
        }
        Ok(Step::Quit) => true,
        Err(err) => {
            print_error(&err);
            false
        }
    }
}

fn print_output(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn print_error(err: &anyhow::Error) {
    let _ = std::io::stdout().flush();
    eprintln!("{}", crate::render_error(err));
}

/// The history file: `$VOXCALC_HISTORY`, else `$XDG_STATE_HOME/voxcalc/history`, else
/// `~/.local/state/voxcalc/history`. `None` when no home is known.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VOXCALC_HISTORY") {
        return Some(PathBuf::from(path));
    }
    let state = match std::env::var_os("XDG_STATE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(state.join("voxcalc").join("history"))
}

/// Appends the new history entries (creating the directory), so history survives a crash.
fn save_history(editor: &mut Editor<ReplHelper, DefaultHistory>, path: &PathBuf) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.append_history(path);
}
