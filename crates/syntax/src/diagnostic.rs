//! The one diagnostic type every phase converts its errors into.
//!
//! Phases keep their own error enums (kind + range); each converts to [`Diagnostic`]. Rendering
//! to a rustc-style frame with a caret lives here too, as plain text, so that the library error's
//! `Display` can show it; only the CLI/REPL add colour.

use crate::span::TextRange;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// A source range with a short message drawn under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub range: TextRange,
    pub message: String,
}

/// A message about the formula, pointing at one primary range and optionally more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable machine-readable code, e.g. `"E0101"`, documented in docs/language.md.
    pub code: &'static str,
    /// The headline: what is wrong, in one sentence without a trailing period.
    pub message: String,
    /// Where: the primary label is drawn with `^`.
    pub primary: Label,
    /// Other places that explain the error (e.g. each operand of a failed broadcast), drawn with `-`.
    pub secondary: Vec<Label>,
    /// Extra facts (`= note: ...`).
    pub notes: Vec<String>,
    /// How to fix it, when known (`= help: ...`).
    pub help: Option<String>,
}

impl Label {
    /// A label drawn under `range` with `message` (which may be empty).
    pub fn new(range: TextRange, message: impl Into<String>) -> Label {
        Label {
            range,
            message: message.into(),
        }
    }
}

impl Severity {
    /// The word that starts a rendered diagnostic: `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Diagnostic {
    /// An error with a code, a headline and the primary label; add the rest with the
    /// `with_*` methods.
    pub fn error(code: &'static str, message: impl Into<String>, primary: Label) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary,
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// A warning with a code, a headline and the primary label.
    pub fn warning(code: &'static str, message: impl Into<String>, primary: Label) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, primary)
        }
    }

    /// Adds a secondary label (drawn with `-`), e.g. pointing at an operand.
    pub fn with_secondary(mut self, range: TextRange, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label::new(range, message));
        self
    }

    /// Adds a `= note: ...` line.
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Sets the `= help: ...` line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

/// Options for [`render_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// What the `-->` line names as the source, e.g. `formula` or a file name.
    pub origin: String,
    /// How many columns a tab is drawn as.
    pub tab_width: usize,
}

impl Default for RenderOptions {
    fn default() -> RenderOptions {
        RenderOptions {
            origin: "formula".to_string(),
            tab_width: 4,
        }
    }
}

/// Renders `diag` as a rustc-style plain-text frame over `source` (see [`render_with`]).
pub fn render(source: &str, diag: &Diagnostic) -> String {
    render_with(source, diag, &RenderOptions::default())
}

/// Renders `diag` as a rustc-style plain-text frame:
///
/// ```text
/// error[E0102]: expected an expression, found `)`
///  --> formula:1:5
///   |
/// 1 | a + )
///   |     ^ expected an expression
/// ```
///
/// The primary label is drawn with `^`, secondary labels with `-`; every line a label touches is
/// shown (a `...` marks skipped lines). Columns count characters, not bytes; an empty range is
/// one caret. Ranges outside the source or inside a character are clamped, never a panic.
pub fn render_with(source: &str, diag: &Diagnostic, options: &RenderOptions) -> String {
    let lines = split_lines(source);
    let mut labels: Vec<(&Label, char)> = vec![(&diag.primary, '^')];
    labels.extend(diag.secondary.iter().map(|l| (l, '-')));
    let clamp = |offset: u32| {
        let mut offset = (offset as usize).min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    };
    // (line index, start column, end column) in display columns, per label and line.
    let mut marks: Vec<(usize, usize, usize, char, Option<&str>)> = Vec::new();
    for (label, mark) in &labels {
        let start = clamp(label.range.start());
        let end = clamp(label.range.end()).max(start);
        let first_line = line_of(&lines, start);
        let last_line = line_of(&lines, end);
        // An end at a line's very start belongs to the previous line (the range stopped at
        // the newline).
        let last_line = if end > start && last_line > first_line && lines[last_line].0 == end {
            last_line - 1
        } else {
            last_line
        };
        for (line_idx, &(line_start, line_end)) in lines
            .iter()
            .enumerate()
            .take(last_line + 1)
            .skip(first_line)
        {
            let from = start.max(line_start);
            let to = end.min(line_end);
            let text = &source[line_start..line_end];
            let col_from = display_width(&text[..from - line_start], options.tab_width);
            let col_to = display_width(&text[..to.max(from) - line_start], options.tab_width);
            let col_to = col_to.max(col_from + 1);
            let message = (line_idx == last_line).then_some(label.message.as_str());
            marks.push((line_idx, col_from, col_to, *mark, message));
        }
    }
    let mut shown: Vec<usize> = marks.iter().map(|m| m.0).collect();
    shown.sort_unstable();
    shown.dedup();
    let gutter = shown.last().map_or(1, |&l| (l + 1).to_string().len());
    let pad = " ".repeat(gutter);

    let primary_start = clamp(diag.primary.range.start());
    let primary_line = line_of(&lines, primary_start);
    let (line_start, _) = lines[primary_line];
    let column = source[line_start..primary_start].chars().count() + 1;

    let mut out = String::new();
    out.push_str(&format!(
        "{}[{}]: {}\n",
        diag.severity, diag.code, diag.message
    ));
    out.push_str(&format!(
        "{pad}--> {}:{}:{}\n",
        options.origin,
        primary_line + 1,
        column
    ));
    out.push_str(&format!("{pad} |\n"));
    let mut prev_line: Option<usize> = None;
    for &line_idx in &shown {
        if let Some(prev) = prev_line {
            if line_idx > prev + 1 {
                out.push_str("...\n");
            }
        }
        prev_line = Some(line_idx);
        let (line_start, line_end) = lines[line_idx];
        let line_marks: Vec<_> = marks.iter().filter(|m| m.0 == line_idx).collect();
        let display = display_chars(&source[line_start..line_end], options.tab_width);
        // Very long lines are cut to a window around the marks, with `...` where cut.
        let lo = line_marks.iter().map(|m| m.1).min().unwrap_or(0);
        let hi = line_marks.iter().map(|m| m.2).max().unwrap_or(0);
        let (from, to) = if display.len() > MAX_LINE_COLUMNS {
            let from = lo.saturating_sub(LINE_CONTEXT);
            let to = (hi + LINE_CONTEXT)
                .max(from + MAX_LINE_COLUMNS)
                .min(display.len());
            (from, to)
        } else {
            (0, display.len())
        };
        let prefix = if from > 0 { "..." } else { "" };
        let suffix = if to < display.len() { "..." } else { "" };
        let shown_text: String = display[from..to].iter().collect();
        let number = format!("{:>gutter$}", line_idx + 1);
        out.push_str(format!("{number} | {prefix}{shown_text}{suffix}").trim_end());
        out.push('\n');
        for &&(_, col_from, col_to, mark, message) in &line_marks {
            let indent = prefix.len() + col_from.saturating_sub(from);
            let width = col_to
                .min(to.max(from + 1))
                .saturating_sub(col_from.max(from))
                .max(1);
            let underline = mark.to_string().repeat(width);
            let mut row = format!("{pad} | {}{underline}", " ".repeat(indent));
            if let Some(message) = message.filter(|m| !m.is_empty()) {
                row.push(' ');
                row.push_str(message);
            }
            out.push_str(&row);
            out.push('\n');
        }
    }
    if !diag.notes.is_empty() || diag.help.is_some() {
        out.push_str(&format!("{pad} |\n"));
    }
    for note in &diag.notes {
        out.push_str(&format!("{pad} = note: {note}\n"));
    }
    if let Some(help) = &diag.help {
        out.push_str(&format!("{pad} = help: {help}\n"));
    }
    out
}

/// Byte ranges of each line's text (without its line break; a `\r` before `\n` is dropped).
fn split_lines(source: &str) -> Vec<(usize, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (idx, byte) in source.bytes().enumerate() {
        if byte == b'\n' {
            let end = if idx > start && source.as_bytes()[idx - 1] == b'\r' {
                idx - 1
            } else {
                idx
            };
            lines.push((start, end));
            start = idx + 1;
        }
    }
    lines.push((start, source.len()));
    lines
}

/// The index of the line holding byte `offset` (an offset on a line break belongs to the
/// line it ends).
fn line_of(lines: &[(usize, usize)], offset: usize) -> usize {
    lines
        .partition_point(|&(start, _)| start <= offset)
        .saturating_sub(1)
}

fn display_width(text: &str, tab_width: usize) -> usize {
    text.chars()
        .map(|c| if c == '\t' { tab_width } else { 1 })
        .sum()
}

/// The characters drawn for a line: tabs expanded to spaces, control characters shown as their
/// Unicode control pictures (`\u{7}` as `␇`) so the frame never emits raw control codes. One
/// character per display column, matching [`display_width`].
fn display_chars(text: &str, tab_width: usize) -> Vec<char> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.extend(std::iter::repeat_n(' ', tab_width)),
            c if (c as u32) < 0x20 => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('?')),
            '\u{7f}' => out.push('\u{2421}'),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Lines wider than this many columns are cut around the marks.
const MAX_LINE_COLUMNS: usize = 100;
/// Columns kept on each side of the marks when a long line is cut.
const LINE_CONTEXT: usize = 30;

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(start: u32, end: u32) -> Diagnostic {
        Diagnostic::error("E0102", "expected an expression, found `)`", {
            Label::new(TextRange::new(start, end), "expected an expression")
        })
    }

    #[test]
    fn single_caret_frame() {
        let rendered = render("a + )", &diag(4, 5).with_help("remove the `)`"));
        let expected = "\
error[E0102]: expected an expression, found `)`
 --> formula:1:5
  |
1 | a + )
  |     ^ expected an expression
  |
  = help: remove the `)`
";
        assert_eq!(rendered, expected);
    }

    #[test]
    fn secondary_labels_notes_and_columns_in_chars() {
        let source = "é + (b";
        let diagnostic = Diagnostic::error("E0103", "expected `)`", {
            Label::new(TextRange::new(7, 7), "expected `)`")
        })
        .with_secondary(TextRange::new(5, 6), "unclosed bracket")
        .with_note("a note");
        let expected = "\
error[E0103]: expected `)`
 --> formula:1:7
  |
1 | é + (b
  |       ^ expected `)`
  |     - unclosed bracket
  |
  = note: a note
";
        assert_eq!(render(source, &diagnostic), expected);
    }

    #[test]
    fn multi_line_ranges_and_skipped_lines() {
        let source = "np.where(\n  a,\n  b,\n  c,\n  d +)";
        let primary = Label::new(TextRange::new(30, 31), "here");
        let diagnostic = Diagnostic::warning("E0999", "message", primary)
            .with_secondary(TextRange::new(0, 12), "call");
        let expected = "\
warning[E0999]: message
 --> formula:5:6
  |
1 | np.where(
  | ---------
2 |   a,
  | -- call
...
5 |   d +)
  |      ^ here
";
        assert_eq!(render(source, &diagnostic), expected);
    }

    #[test]
    fn long_lines_are_cut_around_the_marks_and_control_characters_shown() {
        let source = format!("{}x{}", "a + ".repeat(50), " + b".repeat(50));
        let rendered = render(&source, &diag(200, 201));
        let expected = "\
error[E0102]: expected an expression, found `)`
 --> formula:1:201
  |
1 | ...+ a + a + a + a + a + a + a + x + b + b + b + b + b + b + b + b + b + b + b + b + b + b + b + b + b ...
  |                                  ^ expected an expression
";
        assert_eq!(rendered, expected);
        let rendered = render("a +\u{7} b", &diag(3, 4));
        assert!(
            rendered.contains("1 | a +\u{2407} b\n  |    ^ expected"),
            "{rendered}"
        );
    }

    #[test]
    fn out_of_range_and_mid_char_ranges_are_clamped() {
        let source = "αβ";
        for (start, end) in [(1, 3), (0, 100), (100, 200), (4, 4)] {
            let rendered = render(source, &diag(start, end));
            assert!(rendered.contains("1 | αβ"), "{rendered}");
        }
        let at_end = render("a +", &diag(3, 3));
        assert!(at_end.contains("  |    ^ expected"), "{at_end}");
    }
}
