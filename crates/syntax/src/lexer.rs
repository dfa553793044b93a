//! The lexer: formula text to tokens, built on logos.
//!
//! A [`Token`] is only a [`TokenKind`] and a [`TextRange`]; values (the digits of a number, the
//! characters of a string) are read lazily from the source with [`int_value`], [`float_value`]
//! and [`string_value`] when the parser needs them. Numbers and strings are scanned by hand
//! (from a logos callback) so that malformed literals such as `3.foo`, `1..2`, `0x10` or `1e` are
//! reported as one error at their exact position instead of being split into other tokens.
//!
//! Every lexical error is recorded as a [`ParseError`]; the offending text becomes a
//! [`TokenKind::Unknown`] token (already reported, so the parser does not report it again) or,
//! when the intent is obvious (`&&`, a Unicode minus sign), the token the user meant.

use logos::Logos;

use crate::error::{NumberError, ParseError, ParseErrorKind};
use crate::span::{Ranged, TextRange};

/// What a token is. Keywords and operators are their own kinds; names, numbers and strings
/// carry no value (read it from the source with the token's range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An identifier (`img`, `np`, `axis`).
    Name,
    /// A decimal integer literal (`3`, `1_000`).
    Int,
    /// A float literal (`1.5`, `.5`, `1.`, `1e-3`).
    Float,
    /// A string literal in single or double quotes, possibly with a `u` prefix.
    Str,
    /// `and`
    And,
    /// `or`
    Or,
    /// `not`
    Not,
    /// `if`
    If,
    /// `else`
    Else,
    /// `in`
    In,
    /// `is`
    Is,
    /// `None`
    None,
    /// `True`
    True,
    /// `False`
    False,
    /// `lambda` (parsed only to be refused clearly).
    Lambda,
    /// A Python keyword that has no place in a formula (`import`, `for`, `yield`, `await`, ...).
    Reserved,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `//`
    DoubleSlash,
    /// `%`
    Percent,
    /// `**`
    DoubleStar,
    /// `@`
    At,
    /// `<<`
    LShift,
    /// `>>`
    RShift,
    /// `&`
    Amp,
    /// `|`
    Pipe,
    /// `^`
    Caret,
    /// `~`
    Tilde,
    /// `<`
    Less,
    /// `>`
    Greater,
    /// `<=`
    LessEq,
    /// `>=`
    GreaterEq,
    /// `==`
    EqEq,
    /// `!=`
    NotEq,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `,`
    Comma,
    /// `:`
    Colon,
    /// `.`
    Dot,
    /// `...`
    Ellipsis,
    /// `=`
    Equal,
    /// `;`
    Semicolon,
    /// `:=`
    ColonEqual,
    /// Text the lexer could not read; its error is already in the error list.
    Unknown,
    /// The end of the formula (an empty range at the end of the source).
    Eof,
}

impl TokenKind {
    /// How the token is named in a message: "`+`", "a name", "the end of the formula".
    pub fn describe(self) -> &'static str {
        use TokenKind::*;
        match self {
            Name => "a name",
            Int => "an integer",
            Float => "a float",
            Str => "a string",
            And => "`and`",
            Or => "`or`",
            Not => "`not`",
            If => "`if`",
            Else => "`else`",
            In => "`in`",
            Is => "`is`",
            None => "`None`",
            True => "`True`",
            False => "`False`",
            Lambda => "`lambda`",
            Reserved => "a reserved word",
            Plus => "`+`",
            Minus => "`-`",
            Star => "`*`",
            Slash => "`/`",
            DoubleSlash => "`//`",
            Percent => "`%`",
            DoubleStar => "`**`",
            At => "`@`",
            LShift => "`<<`",
            RShift => "`>>`",
            Amp => "`&`",
            Pipe => "`|`",
            Caret => "`^`",
            Tilde => "`~`",
            Less => "`<`",
            Greater => "`>`",
            LessEq => "`<=`",
            GreaterEq => "`>=`",
            EqEq => "`==`",
            NotEq => "`!=`",
            LParen => "`(`",
            RParen => "`)`",
            LBracket => "`[`",
            RBracket => "`]`",
            LBrace => "`{`",
            RBrace => "`}`",
            Comma => "`,`",
            Colon => "`:`",
            Dot => "`.`",
            Ellipsis => "`...`",
            Equal => "`=`",
            Semicolon => "`;`",
            ColonEqual => "`:=`",
            Unknown => "an invalid token",
            Eof => "the end of the formula",
        }
    }
}

/// One token: its kind and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub range: TextRange,
}

impl Ranged for Token {
    fn range(&self) -> TextRange {
        self.range
    }
}

/// The lexer's output: the tokens (always ending with one [`TokenKind::Eof`]) and the lexical
/// errors, in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct Lexed {
    pub tokens: Vec<Token>,
    pub errors: Vec<ParseError>,
}

/// Python keywords that are not expression syntax in the dialect. They lex as
/// [`TokenKind::Reserved`] so the parser can say "`for` is not part of the formula language"
/// instead of treating them as image names.
const RESERVED_WORDS: &[&str] = &[
    "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif", "except",
    "finally", "for", "from", "global", "import", "nonlocal", "pass", "raise", "return", "try",
    "while", "with", "yield",
];

/// What the hand-written number scanner found.
#[derive(Clone, Copy, Debug, PartialEq)]
enum NumberScan {
    Int,
    Float,
    Invalid(NumberError),
    /// `0x..`, `0o..`, `0b..`; the value when the digits are valid and fit.
    OtherBase {
        radix: u32,
        value: Option<u128>,
    },
}

/// What the hand-written string scanner found.
#[derive(Clone, Copy, Debug, PartialEq)]
enum StringScan {
    Closed,
    Unterminated,
}

/// The raw logos token set. Numbers and strings are finished by hand in callbacks.
#[derive(Logos, Clone, Copy, Debug, PartialEq)]
#[logos(skip r"[ \t\r\n\x0C]+")]
enum Raw {
    #[regex(r"[0-9]", scan_number_cb)]
    #[regex(r"\.[0-9]", scan_number_cb)]
    Number(NumberScan),
    #[token("'", scan_string_cb)]
    #[token("\"", scan_string_cb)]
    Str(StringScan),
    #[regex(r"[\p{XID_Start}_]\p{XID_Continue}*")]
    Name,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("//")]
    DoubleSlash,
    #[token("%")]
    Percent,
    #[token("**")]
    DoubleStar,
    #[token("@")]
    At,
    #[token("<<")]
    LShift,
    #[token(">>")]
    RShift,
    #[token("&")]
    Amp,
    #[token("|")]
    Pipe,
    #[token("^")]
    Caret,
    #[token("~")]
    Tilde,
    #[token("<")]
    Less,
    #[token(">")]
    Greater,
    #[token("<=")]
    LessEq,
    #[token(">=")]
    GreaterEq,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(".")]
    Dot,
    #[token("...")]
    Ellipsis,
    #[token("=")]
    Equal,
    #[token(";")]
    Semicolon,
    #[token(":=")]
    ColonEqual,
    #[token("&&")]
    AmpAmp,
    #[token("||")]
    PipePipe,
    #[token("!")]
    Bang,
}

fn scan_number_cb(lex: &mut logos::Lexer<Raw>) -> NumberScan {
    let span = lex.span();
    let (end, scan) = scan_number(lex.source(), span.start);
    lex.bump(end - span.end);
    scan
}

fn scan_string_cb(lex: &mut logos::Lexer<Raw>) -> StringScan {
    let span = lex.span();
    let (end, scan) = scan_string(lex.source(), span.start);
    lex.bump(end - span.end);
    scan
}

/// True for characters that may continue an identifier (and so must not follow a number).
fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Consumes `[0-9_]*` from `i`; returns the new position and whether underscores were only
/// single separators between digits, as Python requires.
fn scan_digits(bytes: &[u8], mut i: usize) -> (usize, bool) {
    let begin = i;
    let mut ok = true;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
        if bytes[i] == b'_' && (i == begin || bytes[i - 1] == b'_') {
            ok = false;
        }
        i += 1;
    }
    if i > begin && bytes[i - 1] == b'_' {
        ok = false;
    }
    (i, ok)
}

/// Scans one number literal starting at `start` (a digit, or `.` followed by a digit) the way
/// Python's tokenizer does, then swallows any letters, digits or dots glued to it so that a
/// malformed literal is reported once, whole.
fn scan_number(src: &str, start: usize) -> (usize, NumberScan) {
    let bytes = src.as_bytes();
    let rest_end = |mut i: usize| {
        while let Some(c) = src[i..].chars().next() {
            if is_ident_continue(c) || c == '.' {
                i += c.len_utf8();
            } else {
                break;
            }
        }
        i
    };
    let mut i = start;
    if bytes[i] == b'0' && i + 1 < bytes.len() && b"xXoObB".contains(&bytes[i + 1]) {
        let radix = match bytes[i + 1].to_ascii_lowercase() {
            b'x' => 16,
            b'o' => 8,
            _ => 2,
        };
        let end = rest_end(i + 2);
        let digits: String = src[i + 2..end].chars().filter(|&c| c != '_').collect();
        let value = if digits.is_empty() {
            None
        } else {
            u128::from_str_radix(&digits, radix).ok()
        };
        return (end, NumberScan::OtherBase { radix, value });
    }
    let mut underscores_ok = true;
    let mut is_float = false;
    let int_start = i;
    if bytes[i].is_ascii_digit() {
        let (next, ok) = scan_digits(bytes, i);
        underscores_ok &= ok;
        i = next;
    }
    let int_end = i;
    if i < bytes.len() && bytes[i] == b'.' {
        is_float = true;
        i += 1;
        if i < bytes.len() && bytes[i].is_ascii_digit() {
            let (next, ok) = scan_digits(bytes, i);
            underscores_ok &= ok;
            i = next;
        }
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            let (next, ok) = scan_digits(bytes, j);
            underscores_ok &= ok;
            i = next;
            is_float = true;
        } else {
            let end = rest_end(j);
            return (end, NumberScan::Invalid(NumberError::MissingExponentDigits));
        }
    }
    match src[i..].chars().next() {
        Some('j' | 'J') => return (rest_end(i), NumberScan::Invalid(NumberError::Imaginary)),
        Some(c) if is_ident_continue(c) => {
            return (
                rest_end(i),
                NumberScan::Invalid(NumberError::FollowedByName),
            )
        }
        Some('.') => return (rest_end(i), NumberScan::Invalid(NumberError::ExtraDot)),
        _ => {}
    }
    if !underscores_ok {
        return (i, NumberScan::Invalid(NumberError::Underscore));
    }
    if !is_float {
        let digits = &src[int_start..int_end];
        if digits.starts_with('0') && digits.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
            return (i, NumberScan::Invalid(NumberError::LeadingZero));
        }
        return (i, NumberScan::Int);
    }
    (i, NumberScan::Float)
}

/// Scans a string literal starting at its opening quote. A string ends at the matching quote;
/// an unescaped line break or the end of the source leaves it unterminated.
fn scan_string(src: &str, start: usize) -> (usize, StringScan) {
    let quote = src.as_bytes()[start];
    let mut chars = src[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        let at = start + 1 + offset;
        match c {
            '\\' => {
                chars.next();
            }
            '\n' | '\r' => return (at, StringScan::Unterminated),
            _ if c as u32 == u32::from(quote) => return (at + 1, StringScan::Closed),
            _ => {}
        }
    }
    (src.len(), StringScan::Unterminated)
}

/// The character the user most likely meant by a Unicode look-alike, with the token it stands for.
pub(crate) fn lookalike(c: char) -> Option<(&'static str, TokenKind)> {
    Some(match c {
        '\u{2212}' | '\u{2013}' | '\u{2014}' => ("-", TokenKind::Minus),
        '\u{00D7}' | '\u{22C5}' | '\u{00B7}' => ("*", TokenKind::Star),
        '\u{00F7}' | '\u{2215}' => ("/", TokenKind::Slash),
        '\u{2264}' => ("<=", TokenKind::LessEq),
        '\u{2265}' => (">=", TokenKind::GreaterEq),
        '\u{2260}' => ("!=", TokenKind::NotEq),
        _ => return None,
    })
}

fn range_of(start: usize, end: usize) -> TextRange {
    // The caller bounds the source to `MAX_FORMULA_LEN`, far below `u32::MAX`.
    TextRange::new(start as u32, end as u32)
}

/// Splits `source` into tokens. Never fails: every problem becomes an error in
/// [`Lexed::errors`] and the lexer carries on after it.
///
/// The source must be at most `u32::MAX` bytes long ([`crate::parse`] checks the much smaller
/// [`crate::MAX_FORMULA_LEN`] first); longer input is truncated to an empty token list.
pub fn lex(source: &str) -> Lexed {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    if u32::try_from(source.len()).is_err() {
        errors.push(ParseError::new(
            ParseErrorKind::FormulaTooLong {
                len: source.len(),
                max: crate::MAX_FORMULA_LEN,
            },
            TextRange::empty(0),
        ));
        tokens.push(Token {
            kind: TokenKind::Eof,
            range: TextRange::empty(0),
        });
        return Lexed { tokens, errors };
    }
    let mut lexer = Raw::lexer(source);
    while let Some(raw) = lexer.next() {
        let span = lexer.span();
        let range = range_of(span.start, span.end);
        let text = &source[span.clone()];
        let mut error = |kind: ParseErrorKind| errors.push(ParseError::new(kind, range));
        let kind = match raw {
            Ok(raw) => match raw {
                Raw::Number(NumberScan::Int) => {
                    if int_value(text).is_some() {
                        TokenKind::Int
                    } else {
                        error(ParseErrorKind::IntegerTooLarge);
                        TokenKind::Unknown
                    }
                }
                Raw::Number(NumberScan::Float) => TokenKind::Float,
                Raw::Number(NumberScan::Invalid(number_error)) => {
                    error(ParseErrorKind::InvalidNumber(number_error));
                    TokenKind::Unknown
                }
                Raw::Number(NumberScan::OtherBase { radix, value }) => {
                    error(ParseErrorKind::UnsupportedNumberBase { radix, value });
                    TokenKind::Unknown
                }
                Raw::Str(StringScan::Closed) => {
                    check_escapes(source, range, &mut errors);
                    TokenKind::Str
                }
                Raw::Str(StringScan::Unterminated) => {
                    let quote = text.chars().next().unwrap_or('\'');
                    error(ParseErrorKind::UnterminatedString { quote });
                    TokenKind::Unknown
                }
                Raw::Name => keyword_kind(text),
                Raw::Plus => TokenKind::Plus,
                Raw::Minus => TokenKind::Minus,
                Raw::Star => TokenKind::Star,
                Raw::Slash => TokenKind::Slash,
                Raw::DoubleSlash => TokenKind::DoubleSlash,
                Raw::Percent => TokenKind::Percent,
                Raw::DoubleStar => TokenKind::DoubleStar,
                Raw::At => TokenKind::At,
                Raw::LShift => TokenKind::LShift,
                Raw::RShift => TokenKind::RShift,
                Raw::Amp => TokenKind::Amp,
                Raw::Pipe => TokenKind::Pipe,
                Raw::Caret => TokenKind::Caret,
                Raw::Tilde => TokenKind::Tilde,
                Raw::Less => TokenKind::Less,
                Raw::Greater => TokenKind::Greater,
                Raw::LessEq => TokenKind::LessEq,
                Raw::GreaterEq => TokenKind::GreaterEq,
                Raw::EqEq => TokenKind::EqEq,
                Raw::NotEq => TokenKind::NotEq,
                Raw::LParen => TokenKind::LParen,
                Raw::RParen => TokenKind::RParen,
                Raw::LBracket => TokenKind::LBracket,
                Raw::RBracket => TokenKind::RBracket,
                Raw::LBrace => TokenKind::LBrace,
                Raw::RBrace => TokenKind::RBrace,
                Raw::Comma => TokenKind::Comma,
                Raw::Colon => TokenKind::Colon,
                Raw::Dot => TokenKind::Dot,
                Raw::Ellipsis => TokenKind::Ellipsis,
                Raw::Equal => TokenKind::Equal,
                Raw::Semicolon => TokenKind::Semicolon,
                Raw::ColonEqual => TokenKind::ColonEqual,
                Raw::AmpAmp => {
                    error(ParseErrorKind::CStyleOperator { op: "&&" });
                    TokenKind::Amp
                }
                Raw::PipePipe => {
                    error(ParseErrorKind::CStyleOperator { op: "||" });
                    TokenKind::Pipe
                }
                Raw::Bang => {
                    error(ParseErrorKind::CStyleOperator { op: "!" });
                    TokenKind::Tilde
                }
            },
            Err(()) => {
                // logos reports the unmatched text; report its first character, so that the
                // caret lands on it, and decide how to carry on.
                let ch = text.chars().next().unwrap_or('\u{FFFD}');
                let char_end = span.start + ch.len_utf8();
                let char_range = range_of(span.start, char_end);
                errors.push(ParseError::new(
                    ParseErrorKind::UnexpectedChar { ch },
                    char_range,
                ));
                // Work past this character is bounded by what it consumes, so that a formula
                // full of stray characters still lexes in linear time.
                let line_end = |from: usize| {
                    source[from..]
                        .find(['\n', '\r'])
                        .map_or(source.len(), |i| from + i)
                };
                let (resume, token) = match ch {
                    // A line continuation or a control character: read on as if it were a
                    // space.
                    '\\' => (char_end, None),
                    c if c.is_control() => (char_end, None),
                    // A comment: the rest of the line is skipped.
                    '#' => (line_end(char_end), None),
                    // Typographic quotes: the quoted text (up to the closing quote, or the end
                    // of the line) is one invalid token, not names.
                    '\u{2018}' | '\u{201C}' => {
                        let close = if ch == '\u{2018}' {
                            '\u{2019}'
                        } else {
                            '\u{201D}'
                        };
                        let end = source[char_end..]
                            .find([close, '\n', '\r'])
                            .map_or(source.len(), |i| char_end + i);
                        let end = if source[end..].starts_with(close) {
                            end + close.len_utf8()
                        } else {
                            end
                        };
                        let range = range_of(span.start, end);
                        (
                            end,
                            Some(Token {
                                kind: TokenKind::Unknown,
                                range,
                            }),
                        )
                    }
                    _ => {
                        let kind = lookalike(ch).map_or(TokenKind::Unknown, |(_, kind)| kind);
                        (
                            char_end,
                            Some(Token {
                                kind,
                                range: char_range,
                            }),
                        )
                    }
                };
                tokens.extend(token);
                if resume != span.end {
                    lexer = relex_from(source, resume);
                }
                continue;
            }
        };
        tokens.push(Token { kind, range });
    }
    merge_string_prefixes(source, &mut tokens, &mut errors);
    errors.sort_by_key(|e| (e.range.start(), e.range.end()));
    let end = range_of(source.len(), source.len());
    tokens.push(Token {
        kind: TokenKind::Eof,
        range: end,
    });
    Lexed { tokens, errors }
}

/// A logos lexer positioned at byte `offset` of `source` (which must be a char boundary).
fn relex_from(source: &str, offset: usize) -> logos::Lexer<'_, Raw> {
    let mut lexer = Raw::lexer(source);
    lexer.bump(offset);
    lexer
}

fn keyword_kind(text: &str) -> TokenKind {
    match text {
        "and" => TokenKind::And,
        "or" => TokenKind::Or,
        "not" => TokenKind::Not,
        "if" => TokenKind::If,
        "else" => TokenKind::Else,
        "in" => TokenKind::In,
        "is" => TokenKind::Is,
        "None" => TokenKind::None,
        "True" => TokenKind::True,
        "False" => TokenKind::False,
        "lambda" => TokenKind::Lambda,
        _ if RESERVED_WORDS.contains(&text) => TokenKind::Reserved,
        _ => TokenKind::Name,
    }
}

/// Python string prefixes: `u` is a no-op and is accepted; the others (`r`, `b`, `f`, ...)
/// change what the literal means and are refused.
fn merge_string_prefixes(source: &str, tokens: &mut Vec<Token>, errors: &mut Vec<ParseError>) {
    let mut merged: Vec<Token> = Vec::with_capacity(tokens.len());
    for token in tokens.drain(..) {
        if let Some(prev) = merged.last_mut() {
            let glued = prev.range.end() == token.range.start();
            let is_string_start = matches!(token.kind, TokenKind::Str | TokenKind::Unknown)
                && matches!(
                    source[token.range.to_usize()].chars().next(),
                    Some('\'' | '"')
                );
            if prev.kind == TokenKind::Name && glued && is_string_start {
                let prefix = &source[prev.range.to_usize()];
                let is_prefix = prefix.len() <= 2
                    && prefix.chars().all(|c| "rRbBuUfFtT".contains(c))
                    && !prefix.is_empty();
                if is_prefix {
                    let range = prev.range.cover(token.range);
                    if !prefix.eq_ignore_ascii_case("u") {
                        errors.push(ParseError::new(
                            ParseErrorKind::StringPrefix {
                                prefix: prefix.to_string(),
                            },
                            prev.range,
                        ));
                    }
                    *prev = Token {
                        kind: token.kind,
                        range,
                    };
                    continue;
                }
            }
        }
        merged.push(token);
    }
    *tokens = merged;
}

/// Records an error for every invalid escape sequence in the string literal at `range`.
fn check_escapes(source: &str, range: TextRange, errors: &mut Vec<ParseError>) {
    let literal = &source[range.to_usize()];
    let mut report = |start: usize, end: usize| {
        let escape = literal[start..end].to_string();
        let at = range.start() as usize;
        errors.push(ParseError::new(
            ParseErrorKind::InvalidEscape { escape },
            range_of(at + start, at + end),
        ));
    };
    unescape(literal, &mut report);
}

/// The value of an integer literal (underscores ignored), or `None` if it does not fit a
/// `u128` or is not an integer literal.
pub fn int_value(text: &str) -> Option<u128> {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    digits.parse::<u128>().ok()
}

/// The value of a float literal (underscores ignored); overflow gives `inf`, as in Python.
pub fn float_value(text: &str) -> Option<f64> {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    digits.parse::<f64>().ok()
}

/// The value of a string literal token's text (quotes and an optional `u` prefix included):
/// quotes removed and escapes resolved. Invalid escapes (already reported by the lexer) are
/// kept as written.
pub fn string_value(text: &str) -> String {
    unescape(text, &mut |_, _| {})
}

/// Resolves the escapes of a quoted literal; `bad(start, end)` receives the byte range (within
/// `literal`) of each invalid escape, which is kept verbatim in the result.
fn unescape(literal: &str, bad: &mut dyn FnMut(usize, usize)) -> String {
    let body_start = literal.find(['\'', '"']).map_or(0, |q| q + 1);
    let body_end = if literal.len() > body_start {
        literal.len() - 1
    } else {
        body_start
    };
    let body = &literal[body_start..body_end];
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            bad(body_start + offset, body_start + offset + 1);
            out.push('\\');
            continue;
        };
        let simple = match e {
            '\n' => Some(None),
            '\\' => Some(Some('\\')),
            '\'' => Some(Some('\'')),
            '"' => Some(Some('"')),
            'a' => Some(Some('\u{07}')),
            'b' => Some(Some('\u{08}')),
            'f' => Some(Some('\u{0C}')),
            'n' => Some(Some('\n')),
            'r' => Some(Some('\r')),
            't' => Some(Some('\t')),
            'v' => Some(Some('\u{0B}')),
            _ => None,
        };
        if let Some(resolved) = simple {
            out.extend(resolved);
            continue;
        }
        // Numeric escapes: \ooo (1-3 octal digits), \xhh, \uhhhh, \Uhhhhhhhh.
        let (radix, n_digits) = match e {
            '0'..='7' => (8, 3),
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            _ => (0, 0),
        };
        let escape_start = body_start + offset;
        if radix == 0 {
            let end = escape_start + 1 + e.len_utf8();
            bad(escape_start, end);
            out.push_str(&literal[escape_start..end]);
            continue;
        }
        let mut digits = String::new();
        if radix == 8 {
            digits.push(e);
        }
        while digits.len() < n_digits {
            match chars.peek() {
                Some(&(_, d)) if d.is_digit(radix) => {
                    digits.push(d);
                    chars.next();
                }
                _ => break,
            }
        }
        let end = chars.peek().map_or(body_end, |&(o, _)| body_start + o);
        let fixed_width = radix == 16;
        let value = u32::from_str_radix(&digits, radix)
            .ok()
            .and_then(char::from_u32);
        match value {
            Some(v) if !fixed_width || digits.len() == n_digits => out.push(v),
            _ => {
                bad(escape_start, end);
                out.push_str(&literal[escape_start..end]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        lex(source).tokens.iter().map(|t| t.kind).collect()
    }

    fn error_kinds(source: &str) -> Vec<(ParseErrorKind, std::ops::Range<usize>)> {
        lex(source)
            .errors
            .into_iter()
            .map(|e| (e.kind, e.range.to_usize()))
            .collect()
    }

    #[test]
    fn numbers_python_accepts() {
        for src in [
            "1e-3", ".5", "1.", "1.5E+10", "1_000", "0", "00", "0.5", "1.e5", "0e0", "1_0.2_5",
        ] {
            let lexed = lex(src);
            assert!(lexed.errors.is_empty(), "{src}: {:?}", lexed.errors);
            assert_eq!(lexed.tokens.len(), 2, "{src} is one token");
        }
        assert_eq!(kinds("1_000"), [TokenKind::Int, TokenKind::Eof]);
        assert_eq!(kinds("1."), [TokenKind::Float, TokenKind::Eof]);
        assert_eq!(float_value("1.5E+10"), Some(1.5e10));
        assert_eq!(float_value(".5"), Some(0.5));
        assert_eq!(float_value("1."), Some(1.0));
        assert_eq!(float_value("1e400"), Some(f64::INFINITY));
        assert_eq!(int_value("1_000"), Some(1000));
    }

    #[test]
    fn malformed_numbers_are_one_error_at_their_position() {
        let cases: &[(&str, ParseErrorKind, std::ops::Range<usize>)] = &[
            (
                "a + 3.foo",
                ParseErrorKind::InvalidNumber(NumberError::FollowedByName),
                4..9,
            ),
            (
                "1..2",
                ParseErrorKind::InvalidNumber(NumberError::ExtraDot),
                0..4,
            ),
            (
                "x*1e",
                ParseErrorKind::InvalidNumber(NumberError::MissingExponentDigits),
                2..4,
            ),
            (
                "1_",
                ParseErrorKind::InvalidNumber(NumberError::Underscore),
                0..2,
            ),
            (
                "1__0",
                ParseErrorKind::InvalidNumber(NumberError::Underscore),
                0..4,
            ),
            (
                "012",
                ParseErrorKind::InvalidNumber(NumberError::LeadingZero),
                0..3,
            ),
            (
                "2j",
                ParseErrorKind::InvalidNumber(NumberError::Imaginary),
                0..2,
            ),
            (
                " 0x10",
                ParseErrorKind::UnsupportedNumberBase {
                    radix: 16,
                    value: Some(16),
                },
                1..5,
            ),
            (
                "0b",
                ParseErrorKind::UnsupportedNumberBase {
                    radix: 2,
                    value: None,
                },
                0..2,
            ),
        ];
        for (src, kind, range) in cases {
            assert_eq!(
                error_kinds(src),
                vec![(kind.clone(), range.clone())],
                "{src}"
            );
        }
    }

    #[test]
    fn integers_beyond_u128_are_an_error() {
        let max = u128::MAX.to_string();
        assert!(lex(&max).errors.is_empty());
        let too_big = format!("{max}0");
        assert_eq!(
            error_kinds(&too_big),
            vec![(ParseErrorKind::IntegerTooLarge, 0..40)]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(string_value(r#"'a\'b'"#), "a'b");
        assert_eq!(string_value(r#""x\ty\\""#), "x\ty\\");
        assert_eq!(string_value(r"'\x41\101\u00e9'"), "AAé");
        assert_eq!(string_value("u'float32'"), "float32");
        assert_eq!(kinds("u'x'"), [TokenKind::Str, TokenKind::Eof]);
        assert_eq!(
            error_kinds(r"'a\qb'"),
            vec![(
                ParseErrorKind::InvalidEscape {
                    escape: r"\q".into()
                },
                2..4
            )]
        );
        assert_eq!(
            error_kinds("f(x, 'abc"),
            vec![(ParseErrorKind::UnterminatedString { quote: '\'' }, 5..9)]
        );
        assert_eq!(
            error_kinds("f'{x}'"),
            vec![(ParseErrorKind::StringPrefix { prefix: "f".into() }, 0..1)]
        );
    }

    #[test]
    fn stray_characters_and_c_operators() {
        assert_eq!(
            error_kinds("a $ b"),
            vec![(ParseErrorKind::UnexpectedChar { ch: '$' }, 2..3)]
        );
        assert_eq!(
            error_kinds("a ?"),
            vec![(ParseErrorKind::UnexpectedChar { ch: '?' }, 2..3)]
        );
        assert_eq!(
            error_kinds("a \\\n+ b"),
            vec![(ParseErrorKind::UnexpectedChar { ch: '\\' }, 2..3)]
        );
        assert_eq!(error_kinds("é+é"), vec![]);
        assert_eq!(
            error_kinds("a $$ b"),
            vec![
                (ParseErrorKind::UnexpectedChar { ch: '$' }, 2..3),
                (ParseErrorKind::UnexpectedChar { ch: '$' }, 3..4)
            ]
        );
        assert_eq!(
            kinds("a \u{2018}x y\u{2019} b # c d\n+ e"),
            [
                TokenKind::Name,
                TokenKind::Unknown,
                TokenKind::Name,
                TokenKind::Plus,
                TokenKind::Name,
                TokenKind::Eof
            ]
        );
        assert_eq!(
            kinds("a\x07+ \\\nb"),
            [
                TokenKind::Name,
                TokenKind::Plus,
                TokenKind::Name,
                TokenKind::Eof
            ]
        );
        assert_eq!(
            kinds("a && b"),
            [
                TokenKind::Name,
                TokenKind::Amp,
                TokenKind::Name,
                TokenKind::Eof
            ]
        );
        assert_eq!(
            error_kinds("a || b"),
            vec![(ParseErrorKind::CStyleOperator { op: "||" }, 2..4)]
        );
        assert_eq!(
            error_kinds("!a"),
            vec![(ParseErrorKind::CStyleOperator { op: "!" }, 0..1)]
        );
        assert_eq!(kinds("a != b")[1], TokenKind::NotEq);
        assert_eq!(kinds("a \u{2212} b")[1], TokenKind::Minus);
        assert_eq!(
            error_kinds("a \u{2212} b"),
            vec![(ParseErrorKind::UnexpectedChar { ch: '\u{2212}' }, 2..5)]
        );
    }

    #[test]
    fn every_operator_and_keyword() {
        use TokenKind::*;
        let src = "+ - * / // % ** @ << >> & | ^ ~ < > <= >= == != ( ) [ ] { } , : . ... = ; := \
                   and or not if else in is None True False lambda import x";
        assert_eq!(
            kinds(src),
            [
                Plus,
                Minus,
                Star,
                Slash,
                DoubleSlash,
                Percent,
                DoubleStar,
                At,
                LShift,
                RShift,
                Amp,
                Pipe,
                Caret,
                Tilde,
                Less,
                Greater,
                LessEq,
                GreaterEq,
                EqEq,
                NotEq,
                LParen,
                RParen,
                LBracket,
                RBracket,
                LBrace,
                RBrace,
                Comma,
                Colon,
                Dot,
                Ellipsis,
                Equal,
                Semicolon,
                ColonEqual,
                And,
                Or,
                Not,
                If,
                Else,
                In,
                Is,
                None,
                True,
                False,
                Lambda,
                Reserved,
                Name,
                Eof
            ]
        );
    }
}
