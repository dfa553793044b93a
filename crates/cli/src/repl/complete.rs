//! Tab completion: commands after `:`, `np.` functions after `np.`, array methods after
//! `name.`, session names elsewhere in a formula, and file paths where a command takes one.

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use voxcalc_check::registry::{Builtin, Kind, Namespace, BUILTINS};

use super::commands::COMMANDS;

/// The rustyline helper: completion only (no hints, highlighting or validation).
pub struct ReplHelper {
    /// Names bound in the session, refreshed before each prompt.
    pub names: Vec<String>,
    files: FilenameCompleter,
}

impl ReplHelper {
    /// A helper knowing no names yet.
    pub fn new() -> ReplHelper {
        ReplHelper {
            names: Vec::new(),
            files: FilenameCompleter::new(),
        }
    }
}

/// What the word under the cursor is.
#[derive(Debug, PartialEq, Eq)]
pub enum Slot {
    /// Part of a formula: functions, methods and names.
    Formula,
    /// A command name after `:`.
    Command,
    /// A session name (a command's NAME argument).
    Name,
    /// A file path.
    Path,
    /// Nothing to complete.
    Nothing,
}

/// Decides what the text before the cursor calls for. Returns the slot and where the text of
/// a command argument starts (for formulas, the whole line after the command).
pub fn slot(before: &str) -> Slot {
    let trimmed = before.trim_start();
    let Some(command_line) = trimmed.strip_prefix(':') else {
        return Slot::Formula;
    };
    let mut words: Vec<&str> = command_line.split_whitespace().collect();
    let ends_in_space = command_line.ends_with(char::is_whitespace);
    if words.is_empty() || (words.len() == 1 && !ends_in_space) {
        return Slot::Command;
    }
    let command = words.remove(0);
    // The argument being typed is the last word, unless the cursor is after a space.
    let arg_idx = if ends_in_space {
        words.len()
    } else {
        words.len() - 1
    };
    let previous = if arg_idx == 0 {
        None
    } else {
        words.get(arg_idx - 1).copied()
    };
    if previous == Some("--copy-header-from") {
        return Slot::Name;
    }
    match (command, arg_idx) {
        ("explain", _) => Slot::Formula,
        ("info" | "show" | "png" | "save", 0) => Slot::Name,
        ("load", 1) | ("png" | "save", 1) => Slot::Path,
        _ => Slot::Nothing,
    }
}

/// Completions of the word ending at the end of `before` in a formula: the start of the text
/// to replace and the replacements.
pub fn formula_candidates(before: &str, names: &[String]) -> (usize, Vec<String>) {
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.'))
        .map_or(0, |(idx, c)| idx + c.len_utf8());
    let word = &before[start..];
    if let Some((head, tail)) = word.rsplit_once('.') {
        let tail_start = before.len() - tail.len();
        let namespaces: &[Namespace] = if head == "np" || head == "numpy" {
            &[Namespace::Np]
        } else {
            &[Namespace::Method, Namespace::Attribute]
        };
        let mut out: Vec<String> = BUILTINS
            .iter()
            .filter(|b| namespaces.contains(&b.namespace) && b.name.starts_with(tail))
            .map(completion_text)
            .collect();
        out.sort();
        out.dedup();
        return (tail_start, out);
    }
    let mut out: Vec<String> = names
        .iter()
        .map(String::as_str)
        .chain(["np"])
        .filter(|name| name.starts_with(word))
        .map(str::to_string)
        .chain(
            BUILTINS
                .iter()
                .filter(|b| b.namespace == Namespace::Python && b.name.starts_with(word))
                .map(completion_text),
        )
        .collect();
    out.sort();
    out.dedup();
    (start, out)
}

/// A builtin's name as inserted: callables get their opening parenthesis.
fn completion_text(builtin: &Builtin) -> String {
    match builtin.kind {
        Kind::Constant(_) | Kind::Attribute | Kind::DType(_) => builtin.name.to_string(),
        _ => format!("{}(", builtin.name),
    }
}

/// Completions of the command name being typed after `:`.
pub fn command_candidates(before: &str) -> (usize, Vec<String>) {
    let colon = before.find(':').unwrap_or(0);
    let word = &before[colon + 1..];
    let out = COMMANDS
        .iter()
        .filter(|c| c.name.starts_with(word))
        .map(|c| format!(":{} ", c.name))
        .collect();
    (colon, out)
}

/// Completions of a session name as a command argument.
fn name_candidates(before: &str, names: &[String]) -> (usize, Vec<String>) {
    let start = before.rfind(char::is_whitespace).map_or(0, |idx| idx + 1);
    let word = &before[start..];
    let out = names
        .iter()
        .filter(|n| n.starts_with(word))
        .cloned()
        .collect();
    (start, out)
}

fn pairs(candidates: Vec<String>) -> Vec<Pair> {
    candidates
        .into_iter()
        .map(|c| Pair {
            display: c.trim_end_matches('(').trim_end().to_string(),
            replacement: c,
        })
        .collect()
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let (start, candidates) = match slot(before) {
            Slot::Formula => formula_candidates(before, &self.names),
            Slot::Command => command_candidates(before),
            Slot::Name => name_candidates(before, &self.names),
            Slot::Path => return self.files.complete(line, pos, ctx),
            Slot::Nothing => (pos, Vec::new()),
        };
        Ok((start, pairs(candidates)))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["anat".to_string(), "atlas".to_string(), "_".to_string()]
    }

    #[test]
    fn np_functions_complete_with_a_parenthesis() {
        let (start, got) = formula_candidates("anat + np.sq", &names());
        assert_eq!(start, "anat + np.".len());
        assert_eq!(got, vec!["sqrt(", "square("]);
        let (_, got) = formula_candidates("np.p", &names());
        assert!(got.contains(&"pi".to_string()), "{got:?}");
        assert!(got.contains(&"percentile(".to_string()), "{got:?}");
    }

    #[test]
    fn methods_complete_after_a_name_or_a_parenthesis() {
        let (start, got) = formula_candidates("(anat + 1).ast", &names());
        assert_eq!(start, "(anat + 1).".len());
        assert_eq!(got, vec!["astype("]);
        let (_, got) = formula_candidates("anat.nd", &names());
        assert_eq!(got, vec!["ndim"]);
    }

    #[test]
    fn names_complete_in_formulas() {
        let (start, got) = formula_candidates("np.mean(a", &names());
        assert_eq!(start, "np.mean(".len());
        assert_eq!(got, vec!["abs(", "anat", "atlas"]);
    }

    #[test]
    fn commands_and_their_arguments() {
        assert_eq!(slot(":lo"), Slot::Command);
        assert_eq!(command_candidates(":lo").1, vec![":load "]);
        assert_eq!(slot(":info a"), Slot::Name);
        assert_eq!(slot(":load x "), Slot::Path);
        assert_eq!(slot(":save m out.nii --copy-header-from "), Slot::Name);
        assert_eq!(slot(":explain np.me"), Slot::Formula);
        assert_eq!(slot("m = np.me"), Slot::Formula);
        assert_eq!(slot(":vars "), Slot::Nothing);
    }
}
