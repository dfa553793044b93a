//! Lexer and parser errors: a kind plus a range, converted to a [`Diagnostic`] with a stable
//! code (`E01xx`) and, where a fix is known, a help text.
//!
//! Codes are part of the public contract (documented in docs/language.md): never renumber one;
//! add new kinds with new codes.

use std::fmt;

use crate::diagnostic::{Diagnostic, Label};
use crate::lexer::TokenKind;
use crate::span::{Ranged, TextRange};

/// Why a number literal is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumberError {
    /// `1e`, `1e+`: an exponent marker without digits.
    MissingExponentDigits,
    /// `1_`, `1__0`, `1_.5`: underscores must sit between digits.
    Underscore,
    /// `012`: a decimal integer with a leading zero (Python refuses it: it looks octal).
    LeadingZero,
    /// `3.foo`, `12abc`: letters glued to a number.
    FollowedByName,
    /// `1..2`, `1.2.3`: a second `.` glued to a number.
    ExtraDot,
    /// `2j`: a complex literal.
    Imaginary,
}

/// Every way the formula text can fail to be one well-formed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// E0100: the formula is longer than [`crate::MAX_FORMULA_LEN`] bytes.
    FormulaTooLong { len: usize, max: usize },
    /// E0101: a character that starts no token (`$`, `?`, a backslash, a Unicode look-alike).
    UnexpectedChar { ch: char },
    /// E0102: an expression was required here.
    ExpectedExpression { found: TokenKind },
    /// E0103: a specific token was required (`expected` is a phrase such as "`)`" or
    /// "`,` or `)`"); `open` is the bracket the missing token would close, if any.
    Expected {
        expected: &'static str,
        found: TokenKind,
        open: Option<TextRange>,
    },
    /// E0105: a malformed number literal.
    InvalidNumber(NumberError),
    /// E0106: a hexadecimal, octal or binary literal; `value` is its value when readable.
    UnsupportedNumberBase { radix: u32, value: Option<u128> },
    /// E0107: an integer literal that does not fit in 128 bits.
    IntegerTooLarge,
    /// E0108: a string literal without its closing quote on the same line.
    UnterminatedString { quote: char },
    /// E0109: an escape sequence Python does not define (`\q`) or a truncated one (`\x4`).
    InvalidEscape { escape: String },
    /// E0110: a string prefix that changes the literal's meaning (`f'..'`, `b'..'`, `r'..'`).
    StringPrefix { prefix: String },
    /// E0111: an operator from C-like languages: `&&`, `||`, `!`.
    CStyleOperator { op: &'static str },
    /// E0112: a Python keyword that is not expression syntax (`import`, `for`, `yield`, ...).
    ReservedWord { word: String },
    /// E0113: `lambda` expressions.
    Lambda,
    /// E0114: `=` where a comparison `==` was probably meant.
    AssignInsteadOfEq,
    /// E0115: an assignment expression `x := y`.
    Walrus,
    /// E0116: `*args` or `**kwargs` in a call.
    StarredArgument,
    /// E0117: a positional argument after a keyword argument; `keyword` is the range of the
    /// keyword argument before it (often a comparison written with `=`).
    PositionalAfterKeyword { keyword: TextRange },
    /// E0118: the same keyword argument given twice; `first` is the first occurrence.
    DuplicateKeyword { name: String, first: TextRange },
    /// E0119: a top-level comma-separated list `a, b`.
    BareTuple,
    /// E0120: more input after a complete formula (usually a missing operator).
    ExpectedEnd { found: TokenKind },
    /// E0121: a closing bracket with no opening one.
    UnmatchedCloser { delimiter: TokenKind },
    /// E0122: an empty subscript `x[]`.
    EmptySubscript,
    /// E0123: `not` as the operand of a tighter operator (`a == not b`).
    MisplacedNot,
    /// E0124: a dict or set display `{...}`.
    DictOrSet,
    /// E0125: `;` (a formula is one expression).
    Semicolon,
    /// E0126: nesting deeper than [`crate::MAX_NESTING_DEPTH`].
    TooDeep { max: usize },
    /// E0127: nothing but whitespace.
    EmptyFormula,
}

/// One syntax error: what went wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub range: TextRange,
}

impl Ranged for ParseError {
    fn range(&self) -> TextRange {
        self.range
    }
}

impl ParseError {
    /// Creates an error of `kind` at `range`.
    pub fn new(kind: ParseErrorKind, range: TextRange) -> ParseError {
        ParseError { kind, range }
    }

    /// The stable code of this error's kind, e.g. `"E0102"`.
    pub fn code(&self) -> &'static str {
        use ParseErrorKind::*;
        match self.kind {
            FormulaTooLong { .. } => "E0100",
            UnexpectedChar { .. } => "E0101",
            ExpectedExpression { .. } => "E0102",
            Expected { .. } => "E0103",
            InvalidNumber(_) => "E0105",
            UnsupportedNumberBase { .. } => "E0106",
            IntegerTooLarge => "E0107",
            UnterminatedString { .. } => "E0108",
            InvalidEscape { .. } => "E0109",
            StringPrefix { .. } => "E0110",
            CStyleOperator { .. } => "E0111",
            ReservedWord { .. } => "E0112",
            Lambda => "E0113",
            AssignInsteadOfEq => "E0114",
            Walrus => "E0115",
            StarredArgument => "E0116",
            PositionalAfterKeyword { .. } => "E0117",
            DuplicateKeyword { .. } => "E0118",
            BareTuple => "E0119",
            ExpectedEnd { .. } => "E0120",
            UnmatchedCloser { .. } => "E0121",
            EmptySubscript => "E0122",
            MisplacedNot => "E0123",
            DictOrSet => "E0124",
            Semicolon => "E0125",
            TooDeep { .. } => "E0126",
            EmptyFormula => "E0127",
        }
    }

    /// The one-line message (the diagnostic's headline).
    pub fn message(&self) -> String {
        use ParseErrorKind::*;
        match &self.kind {
            FormulaTooLong { len, max } => {
                format!("the formula is {len} bytes long; the limit is {max} bytes")
            }
            UnexpectedChar { ch } => match ch {
                c if c.is_control() || c.is_whitespace() => {
                    format!("unexpected character {:?} (U+{:04X})", c, *c as u32)
                }
                c if c.is_ascii() => format!("unexpected character `{c}`"),
                c => format!("unexpected character `{c}` (U+{:04X})", *c as u32),
            },
            ExpectedExpression { found } => {
                format!("expected an expression, found {}", found.describe())
            }
            Expected {
                expected, found, ..
            } => {
                format!("expected {expected}, found {}", found.describe())
            }
            InvalidNumber(number_error) => match number_error {
                NumberError::MissingExponentDigits => {
                    "invalid number: the exponent has no digits".to_string()
                }
                NumberError::Underscore => {
                    "invalid number: `_` may only separate two digits".to_string()
                }
                NumberError::LeadingZero => {
                    "leading zeros are not allowed in integer literals".to_string()
                }
                NumberError::FollowedByName => {
                    "invalid number: a number cannot be followed directly by letters".to_string()
                }
                NumberError::ExtraDot => "invalid number: too many `.`".to_string(),
                NumberError::Imaginary => "complex numbers are not supported".to_string(),
            },
            UnsupportedNumberBase { radix, .. } => {
                format!(
                    "{} literals are not part of the formula language",
                    base_name(*radix)
                )
            }
            IntegerTooLarge => "integer literal too large (it does not fit in 128 bits)".into(),
            UnterminatedString { .. } => "unterminated string literal".to_string(),
            InvalidEscape { escape } => format!("invalid escape sequence `{escape}`"),
            StringPrefix { prefix } => format!("string prefix `{prefix}` is not supported"),
            CStyleOperator { op } => format!("`{op}` is not a Python operator"),
            ReservedWord { word } => format!("`{word}` is not part of the formula language"),
            Lambda => "lambda expressions are not supported".to_string(),
            AssignInsteadOfEq => "`=` is assignment, not comparison".to_string(),
            Walrus => "assignment expressions (`:=`) are not supported".to_string(),
            StarredArgument => "argument unpacking (`*` / `**`) is not supported".to_string(),
            PositionalAfterKeyword { .. } => "positional argument follows keyword argument".into(),
            DuplicateKeyword { name, .. } => format!("keyword argument `{name}` is repeated"),
            BareTuple => "a formula is one expression, not a comma-separated list".to_string(),
            ExpectedEnd { found } => {
                format!(
                    "expected an operator or the end of the formula, found {}",
                    found.describe()
                )
            }
            UnmatchedCloser { delimiter } => format!("unmatched {}", delimiter.describe()),
            EmptySubscript => "empty subscript `[]`".to_string(),
            MisplacedNot => "`not` cannot appear here".to_string(),
            DictOrSet => "dictionaries and sets are not supported".to_string(),
            Semicolon => "`;` is not allowed: a formula is one expression".to_string(),
            TooDeep { max } => format!("the formula nests more than {max} levels deep"),
            EmptyFormula => "the formula is empty".to_string(),
        }
    }

    /// The short text drawn under the primary range.
    fn label(&self) -> String {
        use ParseErrorKind::*;
        match &self.kind {
            FormulaTooLong { .. } => "the limit is reached here".into(),
            UnexpectedChar { .. } => "not part of the formula language".into(),
            ExpectedExpression { .. } => "expected an expression".into(),
            Expected { expected, .. } => format!("expected {expected}"),
            InvalidNumber(_) | IntegerTooLarge => "invalid number".into(),
            UnsupportedNumberBase { .. } => "not a decimal number".into(),
            UnterminatedString { .. } => "the string starts here and is never closed".into(),
            InvalidEscape { .. } => "invalid escape".into(),
            StringPrefix { .. } => "unsupported prefix".into(),
            CStyleOperator { .. } => "not an operator".into(),
            ReservedWord { .. } => "reserved word".into(),
            Lambda => "lambda".into(),
            AssignInsteadOfEq => "assignment".into(),
            Walrus => "assignment expression".into(),
            StarredArgument => "unpacking".into(),
            PositionalAfterKeyword { .. } => "positional argument".into(),
            DuplicateKeyword { .. } => "repeated here".into(),
            BareTuple => "several comma-separated expressions".into(),
            ExpectedEnd { .. } => "expected an operator or the end".into(),
            UnmatchedCloser { .. } => "no matching opening bracket".into(),
            EmptySubscript => "nothing inside the brackets".into(),
            MisplacedNot => "`not` binds looser than this operator".into(),
            DictOrSet => "dict or set".into(),
            Semicolon => "not allowed".into(),
            TooDeep { .. } => "nested too deeply".into(),
            EmptyFormula => "nothing to evaluate".into(),
        }
    }

    /// How to fix it, when a fix is known.
    fn help(&self) -> Option<String> {
        use ParseErrorKind::*;
        let text: String = match &self.kind {
            FormulaTooLong { .. } => {
                "split the computation into several formulas over intermediate images".into()
            }
            UnexpectedChar { ch } => match ch {
                '\\' => "remove the backslash: a formula may span several lines without it".into(),
                '#' => "comments are not supported in a formula".into(),
                '?' => "for a conditional write `b if a else c`; for arrays, `np.where(a, b, c)`"
                    .into(),
                '$' | '`' => return None,
                c => match crate::lexer::lookalike(*c) {
                    Some((ascii, _)) => {
                        format!("`{c}` looks like `{ascii}`: type the ASCII `{ascii}`")
                    }
                    None if *c == '\u{2018}'
                        || *c == '\u{2019}'
                        || *c == '\u{201C}'
                        || *c == '\u{201D}' =>
                    {
                        "typographic quotes are not string quotes: use ' or \"".into()
                    }
                    None => return None,
                },
            },
            ExpectedExpression {
                found: TokenKind::Equal,
            } => "`=` only names a keyword argument, as in `np.mean(x, axis=-1)`".into(),
            Expected {
                found: TokenKind::Colon,
                ..
            }
            | ExpectedEnd {
                found: TokenKind::Colon,
            } => "a slice `a:b` is only allowed inside a subscript, as in `img[..., 2:5]`".into(),
            ExpectedExpression { .. } | Expected { .. } => return None,
            InvalidNumber(number_error) => match number_error {
                NumberError::MissingExponentDigits => "write the exponent's digits: `1e-3`".into(),
                NumberError::Underscore => "write `1_000` or `1000`".into(),
                NumberError::LeadingZero => "remove the leading zeros".into(),
                NumberError::FollowedByName => {
                    "a name cannot start with a digit; to multiply, write the operator (`3 * x`); \
                     for an attribute of a number, use parentheses (`(3).x`)"
                        .into()
                }
                NumberError::ExtraDot => {
                    "a number has at most one decimal point; for a slice write `1:2`".into()
                }
                NumberError::Imaginary => return None,
            },
            UnsupportedNumberBase { value, .. } => match value {
                Some(v) => format!("write it in decimal: `{v}`"),
                None => "write the number in decimal".into(),
            },
            IntegerTooLarge => "write it as a float, e.g. `1e40`".into(),
            UnterminatedString { quote } => {
                format!("close the string with a matching `{quote}` on the same line")
            }
            InvalidEscape { .. } => "write `\\\\` for a literal backslash".into(),
            StringPrefix { .. } => "remove the prefix: write a plain quoted string".into(),
            CStyleOperator { op } => match *op {
                "&&" => "use `&` for an element-wise and, with each comparison in parentheses: \
                         `(a > 0) & (b > 0)`"
                    .into(),
                "||" => "use `|` for an element-wise or, with each comparison in parentheses: \
                         `(a > 0) | (b > 0)`"
                    .into(),
                _ => "use `~` for an element-wise not, or `!=` to compare".into(),
            },
            ReservedWord { .. } => {
                "a formula is one numpy expression: statements, loops, comprehensions and \
                 imports are not available"
                    .into()
            }
            Lambda => "write the expression directly".into(),
            AssignInsteadOfEq => "use `==` to compare; `=` only names a keyword argument, as in \
                 `np.mean(x, axis=-1)`"
                .into(),
            Walrus => "write the expression directly where it is used".into(),
            StarredArgument => "pass each argument explicitly".into(),
            PositionalAfterKeyword { .. } => {
                "put positional arguments before keyword arguments; if `=` was meant as a \
                 comparison, write `==`"
                    .into()
            }
            DuplicateKeyword { .. } => "give each keyword argument once".into(),
            BareTuple => "wrap the items in parentheses to make a tuple: `(a, b)`".into(),
            ExpectedEnd { found } if can_start_operand(*found) => {
                "an operator is probably missing between the two expressions".into()
            }
            ExpectedEnd { .. } | UnmatchedCloser { .. } => return None,
            EmptySubscript => "write an index, a slice or `...`, e.g. `img[..., 0]`".into(),
            MisplacedNot => {
                "wrap it in parentheses: `(not x)`; for an element-wise not of an array use `~x`"
                    .into()
            }
            DictOrSet => "use a list `[...]` or a tuple `(...)`".into(),
            Semicolon | TooDeep { .. } => return None,
            EmptyFormula => "write an expression, e.g. `img1 - img2`".into(),
        };
        Some(text)
    }

    /// The diagnostic for this error: code, message, caret label, secondary labels and help.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let mut diagnostic = Diagnostic::error(
            self.code(),
            self.message(),
            Label::new(self.range, self.label()),
        );
        match &self.kind {
            ParseErrorKind::Expected {
                open: Some(open),
                found,
                expected,
            } => {
                let closes = matches!(*expected, "`)`" | "`]`" | "`}`");
                let label = if closes || *found == TokenKind::Eof {
                    "unclosed bracket"
                } else {
                    "bracket opened here"
                };
                diagnostic = diagnostic.with_secondary(*open, label);
            }
            ParseErrorKind::PositionalAfterKeyword { keyword } => {
                diagnostic = diagnostic.with_secondary(*keyword, "keyword argument");
            }
            ParseErrorKind::DuplicateKeyword { first, .. } => {
                diagnostic = diagnostic.with_secondary(*first, "first given here");
            }
            ParseErrorKind::UnexpectedChar { ch } if ch.is_control() => {
                diagnostic = diagnostic.with_note("control characters cannot appear in a formula");
            }
            _ => {}
        }
        if let Some(help) = self.help() {
            diagnostic = diagnostic.with_help(help);
        }
        diagnostic
    }
}

/// Tokens that can begin an operand (used to guess that an operator is missing).
pub(crate) fn can_start_operand(kind: TokenKind) -> bool {
    use TokenKind::*;
    matches!(
        kind,
        Name | Int
            | Float
            | Str
            | None
            | True
            | False
            | Ellipsis
            | LParen
            | LBracket
            | LBrace
            | Minus
            | Plus
            | Tilde
            | Not
            | Lambda
            | Unknown
    )
}

fn base_name(radix: u32) -> &'static str {
    match radix {
        16 => "hexadecimal",
        8 => "octal",
        _ => "binary",
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code(), self.message())
    }
}

impl std::error::Error for ParseError {}

impl From<&ParseError> for Diagnostic {
    fn from(error: &ParseError) -> Diagnostic {
        error.to_diagnostic()
    }
}

impl From<ParseError> for Diagnostic {
    fn from(error: ParseError) -> Diagnostic {
        error.to_diagnostic()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every kind.
    fn one_of_each() -> Vec<ParseErrorKind> {
        use ParseErrorKind::*;
        let r = TextRange::new(0, 1);
        vec![
            FormulaTooLong {
                len: 70_000,
                max: 65_536,
            },
            UnexpectedChar { ch: '$' },
            ExpectedExpression {
                found: TokenKind::RParen,
            },
            Expected {
                expected: "`)`",
                found: TokenKind::Eof,
                open: Some(r),
            },
            InvalidNumber(NumberError::FollowedByName),
            UnsupportedNumberBase {
                radix: 16,
                value: Some(16),
            },
            IntegerTooLarge,
            UnterminatedString { quote: '\'' },
            InvalidEscape {
                escape: "\\q".into(),
            },
            StringPrefix { prefix: "f".into() },
            CStyleOperator { op: "&&" },
            ReservedWord {
                word: "import".into(),
            },
            Lambda,
            AssignInsteadOfEq,
            Walrus,
            StarredArgument,
            PositionalAfterKeyword { keyword: r },
            DuplicateKeyword {
                name: "axis".into(),
                first: r,
            },
            BareTuple,
            ExpectedEnd {
                found: TokenKind::Name,
            },
            UnmatchedCloser {
                delimiter: TokenKind::RParen,
            },
            EmptySubscript,
            MisplacedNot,
            DictOrSet,
            Semicolon,
            TooDeep { max: 200 },
            EmptyFormula,
        ]
    }

    #[test]
    fn codes_are_distinct_and_messages_are_headlines() {
        let kinds = one_of_each();
        let mut codes: Vec<&str> = Vec::new();
        for kind in kinds {
            let error = ParseError::new(kind, TextRange::new(2, 3));
            let diagnostic = error.to_diagnostic();
            assert!(error.code().starts_with("E01") && error.code().len() == 5);
            assert!(
                !codes.contains(&error.code()),
                "{} used twice",
                error.code()
            );
            codes.push(error.code());
            assert_eq!(diagnostic.code, error.code());
            assert_eq!(diagnostic.primary.range, error.range);
            assert!(!diagnostic.message.is_empty() && !diagnostic.message.ends_with('.'));
            assert!(!diagnostic.primary.message.is_empty());
        }
        assert_eq!(codes.len(), 27);
    }

    #[test]
    fn known_fixes_have_help() {
        use ParseErrorKind::*;
        let help = |kind: ParseErrorKind| {
            ParseError::new(kind, TextRange::new(0, 1))
                .to_diagnostic()
                .help
                .unwrap_or_default()
        };
        assert!(help(AssignInsteadOfEq).contains("use `==` to compare"));
        assert!(help(CStyleOperator { op: "&&" }).contains("use `&`"));
        assert!(help(CStyleOperator { op: "||" }).contains("use `|`"));
        assert!(help(UnsupportedNumberBase {
            radix: 16,
            value: Some(16)
        })
        .contains("`16`"));
        assert!(help(InvalidNumber(NumberError::FollowedByName)).contains("`3 * x`"));
        assert!(help(BareTuple).contains("parentheses"));
        assert!(help(UnexpectedChar { ch: '\u{2212}' }).contains("ASCII `-`"));
    }
}
