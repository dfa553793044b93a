//! The parser: tokens to an [`ast::Expr`](crate::ast::Expr), with Python 3's expression
//! precedence.
//!
//! A hand-written Pratt parser in the style of ruff's: it never gives up. An unexpected token
//! records an error (a second error at the same offset is dropped, since it is almost always a
//! consequence of the first), an [`ExprKind::Error`] placeholder takes the place of what could
//! not be parsed, and parsing carries on so that one run reports every independent mistake.
//! Every loop makes progress or stops.
//!
//! Bounds: input longer than [`MAX_FORMULA_LEN`] is refused before lexing; recursion and the
//! height of the tree are both limited to [`MAX_NESTING_DEPTH`], so neither `((((...` nor
//! `-----x` nor `a**a**...` nor a long left-nested chain `a+a+...` can overflow a stack here or
//! in later passes that walk the tree recursively.

use std::collections::HashSet;

use crate::ast::{BinaryOp, BoolOp, CmpOp, Expr, ExprKind, Keyword, Name, UnaryOp};
use crate::diagnostic::Diagnostic;
use crate::error::{can_start_operand, ParseError, ParseErrorKind};
use crate::lexer::{self, Token, TokenKind};
use crate::span::TextRange;
use crate::{MAX_FORMULA_LEN, MAX_NESTING_DEPTH};

/// The result of parsing: always a tree, plus every error found (sorted by position).
#[derive(Clone, Debug, PartialEq)]
pub struct Parse {
    /// The formula's tree; where parsing failed it holds [`ExprKind::Error`] nodes.
    pub expr: Expr,
    /// Lexical and syntax errors, in source order. Empty when the formula is well formed.
    pub errors: Vec<ParseError>,
}

impl Parse {
    /// True when the formula parsed without any error.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors as diagnostics, ready for [`crate::diagnostic::render`].
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.errors.iter().map(ParseError::to_diagnostic).collect()
    }

    /// The tree if the formula is well formed, else every error (for callers that stop at the
    /// first phase with errors).
    pub fn into_result(self) -> Result<Expr, Vec<ParseError>> {
        if self.errors.is_empty() {
            Ok(self.expr)
        } else {
            Err(self.errors)
        }
    }
}

/// Parses one formula. Never panics and never fails: see [`Parse`].
pub fn parse(source: &str) -> Parse {
    if source.len() > MAX_FORMULA_LEN {
        let mut cut = MAX_FORMULA_LEN;
        while !source.is_char_boundary(cut) {
            cut -= 1;
        }
        let end = u32::try_from(source.len()).unwrap_or(cut as u32);
        let range = TextRange::new(cut as u32, end);
        let error = ParseError::new(
            ParseErrorKind::FormulaTooLong {
                len: source.len(),
                max: MAX_FORMULA_LEN,
            },
            range,
        );
        let expr = Expr {
            kind: ExprKind::Error,
            range: TextRange::empty(0),
        };
        return Parse {
            expr,
            errors: vec![error],
        };
    }
    let lexed = lexer::lex(source);
    let mut parser = Parser::new(source, lexed.tokens, lexed.errors);
    let expr = parser.parse_formula();
    let mut errors = parser.errors;
    errors.sort_by_key(|e| e.range.start());
    Parse { expr, errors }
}

/// Binding strength, loosest first: Python's precedence table for expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Lowest,
    /// `x if c else y` (and `lambda`, refused).
    Ternary,
    Or,
    And,
    /// Prefix `not`.
    Not,
    /// `in`, `not in`, `is`, `is not`, `<`, `<=`, `>`, `>=`, `!=`, `==`.
    Compare,
    BitOr,
    BitXor,
    BitAnd,
    /// `<<`, `>>`
    Shift,
    /// `+`, `-`
    Arith,
    /// `*`, `@`, `/`, `//`, `%`
    Term,
    /// Prefix `+`, `-`, `~`.
    Unary,
    /// `**`
    Power,
}

impl Prec {
    /// The next tighter level: the right operand's level for a left-associative operator.
    fn next(self) -> Prec {
        use Prec::*;
        match self {
            Lowest => Ternary,
            Ternary => Or,
            Or => And,
            And => Not,
            Not => Compare,
            Compare => BitOr,
            BitOr => BitXor,
            BitXor => BitAnd,
            BitAnd => Shift,
            Shift => Arith,
            Arith => Term,
            Term => Unary,
            Unary | Power => Power,
        }
    }
}

/// The infix arithmetic/bitwise operator a token stands for, with its level.
fn binary_op(kind: TokenKind) -> Option<(BinaryOp, Prec)> {
    use TokenKind as T;
    Some(match kind {
        T::Pipe => (BinaryOp::BitOr, Prec::BitOr),
        T::Caret => (BinaryOp::BitXor, Prec::BitXor),
        T::Amp => (BinaryOp::BitAnd, Prec::BitAnd),
        T::LShift => (BinaryOp::LShift, Prec::Shift),
        T::RShift => (BinaryOp::RShift, Prec::Shift),
        T::Plus => (BinaryOp::Add, Prec::Arith),
        T::Minus => (BinaryOp::Sub, Prec::Arith),
        T::Star => (BinaryOp::Mul, Prec::Term),
        T::At => (BinaryOp::MatMul, Prec::Term),
        T::Slash => (BinaryOp::Div, Prec::Term),
        T::DoubleSlash => (BinaryOp::FloorDiv, Prec::Term),
        T::Percent => (BinaryOp::Mod, Prec::Term),
        T::DoubleStar => (BinaryOp::Pow, Prec::Power),
        _ => return None,
    })
}

/// Keywords: tokens spelled like names.
fn is_word(kind: TokenKind) -> bool {
    use TokenKind as T;
    matches!(
        kind,
        T::And
            | T::Or
            | T::Not
            | T::If
            | T::Else
            | T::In
            | T::Is
            | T::None
            | T::True
            | T::False
            | T::Lambda
            | T::Reserved
    )
}

fn is_closer(kind: TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace
    )
}

/// An expression and the height of its tree (a leaf is 1).
type Node = (Expr, u32);

struct Parser<'src> {
    source: &'src str,
    tokens: Vec<Token>,
    pos: usize,
    errors: Vec<ParseError>,
    /// Start offsets that already have an error: a second error there is dropped.
    error_starts: HashSet<u32>,
    /// Current recursion depth of `parse_bp`.
    depth: usize,
    /// Set once the nesting limit is hit: the rest of the input is skipped silently.
    bailed: bool,
    too_deep_reported: bool,
    expected_end_reported: bool,
    /// End of the last consumed token (where "expected X" at the end of input points).
    prev_end: u32,
}

impl<'src> Parser<'src> {
    fn new(source: &'src str, tokens: Vec<Token>, errors: Vec<ParseError>) -> Parser<'src> {
        let error_starts = errors.iter().map(|e| e.range.start()).collect();
        Parser {
            source,
            tokens,
            pos: 0,
            errors,
            error_starts,
            depth: 0,
            bailed: false,
            too_deep_reported: false,
            expected_end_reported: false,
            prev_end: 0,
        }
    }

    // ---- token cursor ----

    fn kind(&self) -> TokenKind {
        self.tokens[self.pos].kind
    }

    fn nth(&self, n: usize) -> TokenKind {
        self.tokens
            .get(self.pos + n)
            .map_or(TokenKind::Eof, |t| t.kind)
    }

    fn range(&self) -> TextRange {
        self.tokens[self.pos].range
    }

    fn start(&self) -> u32 {
        self.range().start()
    }

    fn at(&self, kind: TokenKind) -> bool {
        self.kind() == kind
    }

    fn bump(&mut self) {
        if !self.at(TokenKind::Eof) {
            self.prev_end = self.range().end();
            self.pos += 1;
        }
    }

    fn eat(&mut self, kind: TokenKind) -> bool {
        let found = self.at(kind);
        if found {
            self.bump();
        }
        found
    }

    /// The range from `start` to the end of the last consumed token.
    fn finish(&self, start: u32) -> TextRange {
        TextRange::new(start, self.prev_end.max(start))
    }

    fn text(&self, range: TextRange) -> &'src str {
        &self.source[range.to_usize()]
    }

    // ---- errors ----

    fn error(&mut self, kind: ParseErrorKind, range: TextRange) {
        if self.bailed || !self.error_starts.insert(range.start()) {
            return;
        }
        self.errors.push(ParseError::new(kind, range));
    }

    /// Where an error about the current token points: the token, or just after the last
    /// consumed token when the input has ended.
    fn found_range(&self) -> TextRange {
        if self.at(TokenKind::Eof) {
            TextRange::empty(self.prev_end)
        } else {
            self.range()
        }
    }

    fn error_at_current(&mut self, kind: ParseErrorKind) {
        let range = self.found_range();
        self.error(kind, range);
    }

    /// Consumes `kind` or records "expected `what`" at the current token (which stays).
    fn expect(&mut self, kind: TokenKind, what: &'static str, open: Option<TextRange>) -> bool {
        if self.eat(kind) {
            return true;
        }
        let found = self.kind();
        if found == TokenKind::Reserved {
            self.reserved_word_error();
        } else {
            self.error_at_current(ParseErrorKind::Expected {
                expected: what,
                found,
                open,
            });
        }
        false
    }

    fn reserved_word_error(&mut self) {
        let word = self.text(self.range()).to_string();
        self.error_at_current(ParseErrorKind::ReservedWord { word });
    }

    /// Builds a node, replacing it by an error leaf if the tree would grow taller than the
    /// nesting limit.
    fn node(&mut self, kind: ExprKind, range: TextRange, height: u32) -> Node {
        if height as usize > MAX_NESTING_DEPTH {
            if !self.too_deep_reported {
                self.too_deep_reported = true;
                self.error(
                    ParseErrorKind::TooDeep {
                        max: MAX_NESTING_DEPTH,
                    },
                    range,
                );
            }
            return (
                Expr {
                    kind: ExprKind::Error,
                    range,
                },
                1,
            );
        }
        (Expr { kind, range }, height)
    }

    fn error_node(&self, range: TextRange) -> Node {
        (
            Expr {
                kind: ExprKind::Error,
                range,
            },
            1,
        )
    }

    // ---- formula ----

    fn parse_formula(&mut self) -> Expr {
        if self.at(TokenKind::Eof) {
            let range = TextRange::new(0, self.source.len() as u32);
            self.error(ParseErrorKind::EmptyFormula, range);
            return Expr {
                kind: ExprKind::Error,
                range,
            };
        }
        let token_start = self.start();
        let mut expr = self.parse_bp(Prec::Lowest);
        let start = token_start.min(expr.0.range.start());
        if self.at(TokenKind::Comma) {
            let mut height = expr.1;
            let mut items = vec![expr.0];
            while self.eat(TokenKind::Comma) {
                if self.at(TokenKind::Eof) || is_closer(self.kind()) {
                    break;
                }
                let item = self.parse_bp(Prec::Lowest);
                height = height.max(item.1);
                items.push(item.0);
            }
            let range = self.finish(start);
            self.error(ParseErrorKind::BareTuple, range);
            expr = self.node(ExprKind::Tuple(items), range, height + 1);
        }
        while !self.at(TokenKind::Eof) {
            let before = self.pos;
            let kind = self.kind();
            match kind {
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                    self.error_at_current(ParseErrorKind::UnmatchedCloser { delimiter: kind });
                    self.expected_end_reported = true;
                    self.bump();
                }
                TokenKind::Semicolon => {
                    self.error_at_current(ParseErrorKind::Semicolon);
                    self.expected_end_reported = true;
                    self.bump();
                }
                TokenKind::Reserved => {
                    self.parse_bp(Prec::Lowest);
                }
                _ => {
                    if !self.expected_end_reported {
                        self.expected_end_reported = true;
                        self.error_at_current(ParseErrorKind::ExpectedEnd { found: kind });
                    }
                    if can_start_operand(kind) {
                        self.parse_bp(Prec::Lowest);
                    } else {
                        self.bump();
                    }
                }
            }
            if self.pos == before {
                self.bump();
            }
        }
        expr.0
    }

    // ---- expressions ----

    /// Parses an expression whose operators all bind at least as tightly as `min`.
    fn parse_bp(&mut self, min: Prec) -> Node {
        if self.depth >= MAX_NESTING_DEPTH {
            let range = self.found_range();
            if !self.too_deep_reported {
                self.too_deep_reported = true;
                self.error(
                    ParseErrorKind::TooDeep {
                        max: MAX_NESTING_DEPTH,
                    },
                    range,
                );
            }
            self.bailed = true;
            self.pos = self.tokens.len() - 1;
            return self.error_node(TextRange::empty(self.prev_end));
        }
        self.depth += 1;
        let node = self.parse_bp_inner(min);
        self.depth -= 1;
        node
    }

    fn parse_bp_inner(&mut self, min: Prec) -> Node {
        let token_start = self.start();
        let mut left = self.parse_prefix(min);
        // A node starts at its first token (an opening parenthesis included) or where its first
        // operand starts, if earlier (an error placeholder sits before the current token).
        let start = token_start.min(left.0.range.start());
        // Each operator is parsed by its own function so that this frame, which is on every
        // level of recursion, stays small.
        loop {
            let kind = self.kind();
            left = if kind == TokenKind::If && min <= Prec::Ternary {
                self.parse_ternary(start, left)
            } else if kind == TokenKind::Or && min <= Prec::Or {
                self.parse_bool_op(start, left, BoolOp::Or)
            } else if kind == TokenKind::And && min <= Prec::And {
                self.parse_bool_op(start, left, BoolOp::And)
            } else if kind == TokenKind::ColonEqual && min <= Prec::Ternary {
                self.parse_walrus(start)
            } else if self.compare_op().is_some() && min <= Prec::Compare {
                self.parse_compare(start, left)
            } else if binary_op(kind).is_some_and(|(_, prec)| min <= prec) {
                self.parse_binary(start, left)
            } else {
                return left;
            };
        }
    }

    #[inline(never)]
    fn parse_ternary(&mut self, start: u32, body: Node) -> Node {
        self.bump();
        let test = self.parse_bp(Prec::Or);
        let orelse = if self.expect(TokenKind::Else, "`else`", None) {
            self.parse_bp(Prec::Ternary)
        } else {
            self.error_node(TextRange::empty(self.prev_end))
        };
        let height = 1 + body.1.max(test.1).max(orelse.1);
        let kind = ExprKind::IfExp {
            body: Box::new(body.0),
            test: Box::new(test.0),
            orelse: Box::new(orelse.0),
        };
        self.node(kind, self.finish(start), height)
    }

    #[inline(never)]
    fn parse_bool_op(&mut self, start: u32, first: Node, op: BoolOp) -> Node {
        let (token, operand_prec) = match op {
            BoolOp::Or => (TokenKind::Or, Prec::And),
            BoolOp::And => (TokenKind::And, Prec::Not),
        };
        let mut height = first.1;
        let mut values = vec![first.0];
        while self.eat(token) {
            let value = self.parse_bp(operand_prec);
            height = height.max(value.1);
            values.push(value.0);
        }
        self.node(
            ExprKind::BoolOp { op, values },
            self.finish(start),
            height + 1,
        )
    }

    #[inline(never)]
    fn parse_walrus(&mut self, start: u32) -> Node {
        self.error_at_current(ParseErrorKind::Walrus);
        self.bump();
        self.parse_bp(Prec::Ternary);
        self.error_node(self.finish(start))
    }

    #[inline(never)]
    fn parse_compare(&mut self, start: u32, left: Node) -> Node {
        let mut height = left.1;
        let mut ops = Vec::new();
        while let Some((op, n_tokens)) = self.compare_op() {
            if self.at(TokenKind::Equal) {
                self.error_at_current(ParseErrorKind::AssignInsteadOfEq);
            }
            for _ in 0..n_tokens {
                self.bump();
            }
            let right = self.parse_bp(Prec::BitOr);
            height = height.max(right.1);
            ops.push((op, right.0));
        }
        let kind = ExprKind::Compare {
            left: Box::new(left.0),
            ops,
        };
        self.node(kind, self.finish(start), height + 1)
    }

    #[inline(never)]
    fn parse_binary(&mut self, start: u32, left: Node) -> Node {
        let Some((op, prec)) = binary_op(self.kind()) else {
            return left;
        };
        self.bump();
        // `**` is right-associative and its right operand may carry a unary sign:
        // `a ** -b ** c` is `a ** (-(b ** c))`.
        let right_prec = if op == BinaryOp::Pow {
            Prec::Unary
        } else {
            prec.next()
        };
        let right = self.parse_bp(right_prec);
        let height = 1 + left.1.max(right.1);
        let kind = ExprKind::Binary {
            op,
            left: Box::new(left.0),
            right: Box::new(right.0),
        };
        self.node(kind, self.finish(start), height)
    }

    /// The comparison operator at the current token and how many tokens it spans
    /// (`not in` and `is not` are two). `=` is read as `==` after reporting it.
    fn compare_op(&self) -> Option<(CmpOp, usize)> {
        use TokenKind as T;
        Some(match self.kind() {
            T::EqEq | T::Equal => (CmpOp::Eq, 1),
            T::NotEq => (CmpOp::NotEq, 1),
            T::Less => (CmpOp::Lt, 1),
            T::LessEq => (CmpOp::LtE, 1),
            T::Greater => (CmpOp::Gt, 1),
            T::GreaterEq => (CmpOp::GtE, 1),
            T::In => (CmpOp::In, 1),
            T::Is if self.nth(1) == T::Not => (CmpOp::IsNot, 2),
            T::Is => (CmpOp::Is, 1),
            T::Not if self.nth(1) == T::In => (CmpOp::NotIn, 2),
            _ => return None,
        })
    }

    fn parse_prefix(&mut self, min: Prec) -> Node {
        let start = self.start();
        let op = match self.kind() {
            TokenKind::Not => {
                if min > Prec::Not {
                    self.error_at_current(ParseErrorKind::MisplacedNot);
                }
                UnaryOp::Not
            }
            TokenKind::Minus => UnaryOp::Neg,
            TokenKind::Plus => UnaryOp::Pos,
            TokenKind::Tilde => UnaryOp::Invert,
            TokenKind::Lambda => return self.parse_lambda(),
            _ => {
                let atom = self.parse_atom();
                let start = start.min(atom.0.range.start());
                return self.parse_postfix(start, atom);
            }
        };
        self.bump();
        let operand_prec = if op == UnaryOp::Not {
            Prec::Not
        } else {
            Prec::Unary
        };
        let operand = self.parse_bp(operand_prec);
        let kind = ExprKind::Unary {
            op,
            operand: Box::new(operand.0),
        };
        self.node(kind, self.finish(start), operand.1 + 1)
    }

    /// `lambda params: body` is refused; it is parsed only to report one clear error.
    fn parse_lambda(&mut self) -> Node {
        let start = self.start();
        self.error_at_current(ParseErrorKind::Lambda);
        self.bump();
        while matches!(
            self.kind(),
            TokenKind::Name
                | TokenKind::Comma
                | TokenKind::Equal
                | TokenKind::Star
                | TokenKind::DoubleStar
                | TokenKind::Int
                | TokenKind::Float
                | TokenKind::Str
                | TokenKind::None
                | TokenKind::True
                | TokenKind::False
                | TokenKind::Minus
        ) {
            self.bump();
        }
        if self.eat(TokenKind::Colon) {
            self.parse_bp(Prec::Ternary);
        }
        self.error_node(self.finish(start))
    }

    fn parse_atom(&mut self) -> Node {
        let start = self.start();
        let range = self.range();
        let text = self.text(range);
        let kind = match self.kind() {
            TokenKind::Name => ExprKind::Name(Name {
                id: text.to_string(),
                range,
            }),
            TokenKind::Int => match lexer::int_value(text) {
                Some(value) => ExprKind::Int(value),
                None => ExprKind::Error,
            },
            TokenKind::Float => match lexer::float_value(text) {
                Some(value) => ExprKind::Float(value),
                None => ExprKind::Error,
            },
            TokenKind::Str => {
                // Adjacent string literals concatenate, as in Python.
                let mut value = String::new();
                while self.at(TokenKind::Str) {
                    value.push_str(&lexer::string_value(self.text(self.range())));
                    self.bump();
                }
                return self.node(ExprKind::Str(value), self.finish(start), 1);
            }
            TokenKind::True => ExprKind::Bool(true),
            TokenKind::False => ExprKind::Bool(false),
            TokenKind::None => ExprKind::None,
            TokenKind::Ellipsis => ExprKind::Ellipsis,
            TokenKind::LParen => return self.parse_paren(),
            TokenKind::LBracket => return self.parse_list(),
            TokenKind::LBrace => return self.parse_brace(),
            TokenKind::Unknown => ExprKind::Error,
            TokenKind::Reserved => {
                self.reserved_word_error();
                self.bump();
                self.skip_to_boundary();
                return self.error_node(self.finish(start));
            }
            found => {
                self.error_at_current(ParseErrorKind::ExpectedExpression { found });
                // The placeholder sits right after the last consumed token, inside the
                // enclosing node's range.
                return self.error_node(TextRange::empty(self.prev_end));
            }
        };
        self.bump();
        (Expr { kind, range }, 1)
    }

    /// Skips tokens up to the next `,`, closing bracket or the end at this nesting level.
    fn skip_to_boundary(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.kind() {
                TokenKind::Eof => return,
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => depth += 1,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
                TokenKind::Comma if depth == 0 => return,
                _ => {}
            }
            self.bump();
        }
    }

    fn parse_postfix(&mut self, start: u32, mut left: Node) -> Node {
        loop {
            match self.kind() {
                TokenKind::LParen => left = self.parse_call(start, left),
                TokenKind::LBracket => left = self.parse_subscript(start, left),
                TokenKind::Dot => {
                    self.bump();
                    if self.at(TokenKind::Name) {
                        let range = self.range();
                        let attr = Name {
                            id: self.text(range).to_string(),
                            range,
                        };
                        self.bump();
                        let kind = ExprKind::Attribute {
                            value: Box::new(left.0),
                            attr,
                        };
                        left = self.node(kind, self.finish(start), left.1 + 1);
                    } else {
                        let found = self.kind();
                        self.error_at_current(ParseErrorKind::Expected {
                            expected: "a name after `.`",
                            found,
                            open: None,
                        });
                        // A keyword after `.` (`np.if`) was meant as a name: consume it so
                        // that it does not start another construct.
                        if is_word(found) {
                            self.bump();
                        }
                        left = self.error_node(self.finish(start));
                    }
                }
                _ => return left,
            }
        }
    }

    /// Parses comma-separated items up to `close`, calling `item` for each, then the closing
    /// bracket. Returns the number of commas seen. Recovers from missing commas (`f(a b)`) and
    /// from stray tokens, always making progress.
    fn parse_seq(
        &mut self,
        open: TextRange,
        close: TokenKind,
        expected_sep: &'static str,
        expected_close: &'static str,
        item: &mut dyn FnMut(&mut Self),
    ) -> usize {
        let mut n_commas = 0;
        loop {
            let kind = self.kind();
            if kind == close || kind == TokenKind::Eof || is_closer(kind) {
                break;
            }
            let before = self.pos;
            if kind == TokenKind::Comma {
                self.error_at_current(ParseErrorKind::ExpectedExpression { found: kind });
                self.bump();
                n_commas += 1;
                continue;
            }
            item(self);
            if self.eat(TokenKind::Comma) {
                n_commas += 1;
                continue;
            }
            let kind = self.kind();
            if kind == close || kind == TokenKind::Eof || is_closer(kind) {
                break;
            }
            if kind == TokenKind::Reserved {
                self.reserved_word_error();
                self.bump();
                self.skip_to_boundary();
                continue;
            }
            self.error_at_current(ParseErrorKind::Expected {
                expected: expected_sep,
                found: kind,
                open: Some(open),
            });
            if !can_start_operand(kind) || self.pos == before {
                self.bump();
            }
        }
        self.expect(close, expected_close, Some(open));
        n_commas
    }

    fn parse_call(&mut self, start: u32, func: Node) -> Node {
        let open = self.range();
        self.bump();
        let mut args: Vec<Expr> = Vec::new();
        let mut keywords: Vec<Keyword> = Vec::new();
        let mut reported_positional = false;
        let mut height = func.1;
        self.parse_seq(open, TokenKind::RParen, "`,` or `)`", "`)`", &mut |p| {
            let arg_start = p.start();
            if p.at(TokenKind::Star) || p.at(TokenKind::DoubleStar) {
                p.bump();
                p.parse_bp(Prec::Ternary);
                let range = p.finish(arg_start);
                p.error(ParseErrorKind::StarredArgument, range);
                args.push(p.error_node(range).0);
            } else if p.at(TokenKind::Name) && p.nth(1) == TokenKind::Equal {
                let name_range = p.range();
                let name = Name {
                    id: p.text(name_range).to_string(),
                    range: name_range,
                };
                p.bump();
                p.bump();
                let value = p.parse_bp(Prec::Lowest);
                height = height.max(value.1);
                if let Some(first) = keywords.iter().find(|k| k.name.id == name.id) {
                    let first = first.name.range;
                    p.error(
                        ParseErrorKind::DuplicateKeyword {
                            name: name.id.clone(),
                            first,
                        },
                        name_range,
                    );
                }
                let range = p.finish(arg_start);
                keywords.push(Keyword {
                    name,
                    value: value.0,
                    range,
                });
            } else {
                let value = p.parse_bp(Prec::Lowest);
                if let (Some(keyword), false) = (keywords.last(), reported_positional) {
                    // One report per call: later positional arguments add nothing.
                    reported_positional = true;
                    let keyword = keyword.range;
                    p.error(
                        ParseErrorKind::PositionalAfterKeyword { keyword },
                        value.0.range,
                    );
                }
                height = height.max(value.1);
                args.push(value.0);
            }
        });
        let kind = ExprKind::Call {
            func: Box::new(func.0),
            args,
            keywords,
        };
        self.node(kind, self.finish(start), height + 1)
    }

    fn parse_subscript(&mut self, start: u32, value: Node) -> Node {
        let open = self.range();
        self.bump();
        let mut items = Vec::new();
        let mut height = value.1;
        if self.at(TokenKind::RBracket) {
            let range = open.cover(self.range());
            self.error(ParseErrorKind::EmptySubscript, range);
            self.bump();
        } else {
            self.parse_seq(open, TokenKind::RBracket, "`,` or `]`", "`]`", &mut |p| {
                let item = p.parse_subscript_item();
                height = height.max(item.1);
                items.push(item.0);
            });
        }
        let kind = ExprKind::Subscript {
            value: Box::new(value.0),
            items,
        };
        self.node(kind, self.finish(start), height + 1)
    }

    /// One index of a subscript: an expression or a slice `lower:upper:step`.
    fn parse_subscript_item(&mut self) -> Node {
        let start = self.start();
        let ends_part = |kind: TokenKind| {
            matches!(kind, TokenKind::Colon | TokenKind::Comma | TokenKind::Eof) || is_closer(kind)
        };
        let lower = if self.at(TokenKind::Colon) {
            None
        } else {
            Some(self.parse_bp(Prec::Lowest))
        };
        if !self.at(TokenKind::Colon) {
            return lower.unwrap_or_else(|| self.error_node(TextRange::empty(start)));
        }
        let start = lower
            .as_ref()
            .map_or(start, |n| n.0.range.start().min(start));
        self.bump();
        let upper = if ends_part(self.kind()) {
            None
        } else {
            Some(self.parse_bp(Prec::Lowest))
        };
        let step = if self.eat(TokenKind::Colon) && !ends_part(self.kind()) {
            Some(self.parse_bp(Prec::Lowest))
        } else {
            None
        };
        let height = [&lower, &upper, &step]
            .iter()
            .filter_map(|p| p.as_ref().map(|n| n.1))
            .max();
        let kind = ExprKind::Slice {
            lower: lower.map(|n| Box::new(n.0)),
            upper: upper.map(|n| Box::new(n.0)),
            step: step.map(|n| Box::new(n.0)),
        };
        self.node(kind, self.finish(start), height.unwrap_or(0) + 1)
    }

    /// `()`, `(expr)` (the expression itself, with its own range, as in Python's AST) or a
    /// tuple `(a,)`, `(a, b)`.
    fn parse_paren(&mut self) -> Node {
        let start = self.start();
        let open = self.range();
        self.bump();
        let mut items = Vec::new();
        let mut height = 0;
        let n_commas = self.parse_seq(open, TokenKind::RParen, "`,` or `)`", "`)`", &mut |p| {
            let item = p.parse_bp(Prec::Lowest);
            height = height.max(item.1);
            items.push(item);
        });
        if items.len() == 1 && n_commas == 0 {
            return items.pop().unwrap_or_else(|| self.error_node(open));
        }
        let items = items.into_iter().map(|n| n.0).collect();
        self.node(ExprKind::Tuple(items), self.finish(start), height + 1)
    }

    fn parse_list(&mut self) -> Node {
        let start = self.start();
        let open = self.range();
        self.bump();
        let mut items = Vec::new();
        let mut height = 0;
        self.parse_seq(open, TokenKind::RBracket, "`,` or `]`", "`]`", &mut |p| {
            let item = p.parse_bp(Prec::Lowest);
            height = height.max(item.1);
            items.push(item.0);
        });
        self.node(ExprKind::List(items), self.finish(start), height + 1)
    }

    /// `{...}` is refused as a whole: one error, then the braces' content is skipped.
    fn parse_brace(&mut self) -> Node {
        let start = self.start();
        let mut depth = 0usize;
        loop {
            match self.kind() {
                TokenKind::Eof => break,
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => depth += 1,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.bump();
                        break;
                    }
                }
                _ => {}
            }
            self.bump();
        }
        let range = self.finish(start);
        self.error(ParseErrorKind::DictOrSet, range);
        self.error_node(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretty::pretty;

    /// Parses `source`, requires no error, and compares the tree's S-expression form.
    fn check(source: &str, expected: &str) {
        let res = parse(source);
        assert_eq!(res.errors, vec![], "{source}");
        assert_eq!(pretty(&res.expr), expected, "{source}");
    }

    /// Parses `source` and compares the tree and the error kinds with their ranges.
    fn check_errors(source: &str, expected_tree: &str, expected: &[(ParseErrorKind, u32, u32)]) {
        let res = parse(source);
        let errors: Vec<_> = res
            .errors
            .iter()
            .map(|e| (e.kind.clone(), e.range.start(), e.range.end()))
            .collect();
        assert_eq!(errors, expected, "{source}");
        assert_eq!(pretty(&res.expr), expected_tree, "{source}");
    }

    #[test]
    fn python_precedence() {
        check("-x**2", "(- (** x 2))");
        check("2**-1", "(** 2 (- 1))");
        check("a**b**c", "(** a (** b c))");
        check("a ** -b ** c", "(** a (- (** b c)))");
        check("-a * b", "(* (- a) b)");
        check("a + b * c - d", "(- (+ a (* b c)) d)");
        check("a | b ^ c & d << e + f", "(| a (^ b (& c (<< d (+ e f)))))");
        check("a > 0 & b > 0", "(chain a > (& 0 b) > 0)");
        check("a < b <= c", "(chain a < b <= c)");
        check("not a == b", "(not (== a b))");
        check("not a and b or c", "(or (and (not a) b) c)");
        check("a or b and c", "(or a (and b c))");
        check("a and b and c", "(and a b c)");
        check(
            "x if c else y if d else z",
            "(if c then x else (if d then y else z))",
        );
        check("a or b if c else d", "(if c then (or a b) else d)");
        check("a not in b", "(not-in a b)");
        check("a is not None", "(is-not a None)");
        check("~a & b", "(& (~ a) b)");
        check("a // b % c @ d", "(@ (% (// a b) c) d)");
    }

    #[test]
    fn primaries() {
        check(
            "np.mean(bold, axis=-1)",
            "(call (attr np mean) [bold] {axis: (- 1)})",
        );
        check("img[..., None]", "(index img [... None])");
        check(
            "x[1:2, ::2, :]",
            "(index x [(slice 1 2 _) (slice _ _ 2) (slice _ _ _)])",
        );
        check("f()", "(call f [])");
        check("f(a,)", "(call f [a])");
        check("(a,)", "(tuple a)");
        check("()", "(tuple)");
        check("(a)", "a");
        check("[1, 2.5, 'x']", "(list 1 2.5 'x')");
        check(
            "np.sum(x, axis=(0, 1))",
            "(call (attr np sum) [x] {axis: (tuple 0 1)})",
        );
        check("'a' \"b\"", "'ab'");
        check("True + False", "(+ True False)");
    }

    #[test]
    fn ranges_cover_parentheses_of_operands() {
        let res = parse("(a + b) * c");
        assert_eq!(res.expr.range, TextRange::new(0, 11));
        let res = parse_inner("(a)");
        assert_eq!(res.range, TextRange::new(1, 2));
    }

    fn parse_inner(source: &str) -> Expr {
        parse(source).expr
    }

    #[test]
    fn recovery_reports_each_error_once() {
        check_errors(
            "a + )",
            "(+ a <error>)",
            &[
                (
                    ParseErrorKind::ExpectedExpression {
                        found: TokenKind::RParen,
                    },
                    4,
                    5,
                ),
                (
                    ParseErrorKind::UnmatchedCloser {
                        delimiter: TokenKind::RParen,
                    },
                    4,
                    5,
                ),
            ][..1],
        );
        check_errors(
            "f(a b, *c, d=1, e)",
            "(call f [a b <error> e] {d: 1})",
            &[
                (
                    ParseErrorKind::Expected {
                        expected: "`,` or `)`",
                        found: TokenKind::Name,
                        open: Some(TextRange::new(1, 2)),
                    },
                    4,
                    5,
                ),
                (ParseErrorKind::StarredArgument, 7, 9),
                (
                    ParseErrorKind::PositionalAfterKeyword {
                        keyword: TextRange::new(11, 14),
                    },
                    16,
                    17,
                ),
            ],
        );
        check_errors(
            "(a + b",
            "(+ a b)",
            &[(
                ParseErrorKind::Expected {
                    expected: "`)`",
                    found: TokenKind::Eof,
                    open: Some(TextRange::new(0, 1)),
                },
                6,
                6,
            )],
        );
        check_errors(
            "x = 1",
            "(== x 1)",
            &[(ParseErrorKind::AssignInsteadOfEq, 2, 3)],
        );
        check_errors("a, b", "(tuple a b)", &[(ParseErrorKind::BareTuple, 0, 4)]);
        check_errors(
            "a == not b",
            "(== a (not b))",
            &[(ParseErrorKind::MisplacedNot, 5, 8)],
        );
        check_errors(
            "[x for x in y]",
            "(list x)",
            &[(ParseErrorKind::ReservedWord { word: "for".into() }, 3, 6)],
        );
    }

    #[test]
    fn length_and_depth_are_bounded_without_overflowing_the_stack() {
        let too_long = "(".repeat(100_000);
        let res = parse(&too_long);
        assert!(matches!(
            res.errors[..],
            [ParseError {
                kind: ParseErrorKind::FormulaTooLong { .. },
                ..
            }]
        ));

        let too_deep = format!("{}x", "(".repeat(60_000));
        let too_deep_errors = |source: &str| {
            let res = parse(source);
            assert!(
                res.errors
                    .iter()
                    .any(|e| matches!(e.kind, ParseErrorKind::TooDeep { .. })),
                "{:?}",
                res.errors
            );
            res.errors.len()
        };
        assert_eq!(too_deep_errors(&too_deep), 1);
        too_deep_errors(&format!("{}x", "-".repeat(60_000)));
        too_deep_errors(&format!("{}a", "a**".repeat(20_000)));
        too_deep_errors(&format!("a{}", "+a".repeat(30_000)));
        too_deep_errors(&format!("a{}", ".b".repeat(30_000)));
        too_deep_errors(&format!("a{}", "[0]".repeat(20_000)));

        let just_fits = format!(
            "{}x{}",
            "(".repeat(MAX_NESTING_DEPTH - 1),
            ")".repeat(MAX_NESTING_DEPTH - 1)
        );
        assert_eq!(parse(&just_fits).errors, vec![]);
        let sum = format!("a{}", "+a".repeat(MAX_NESTING_DEPTH - 1));
        assert_eq!(parse(&sum).errors, vec![]);
    }

    #[test]
    fn pathological_inputs_parse_in_linear_time() {
        // Each is near the length limit; a quadratic step would take minutes here.
        let n = MAX_FORMULA_LEN / 4;
        let sources = [
            "$".repeat(MAX_FORMULA_LEN),
            "\u{2018}".repeat(MAX_FORMULA_LEN / 3),
            "#\n".repeat(MAX_FORMULA_LEN / 2),
            format!("f({})", "a ".repeat(n)),
            format!("[{}]", "import ".repeat(n / 2)),
            "'a' ".repeat(n),
            "1e ".repeat(n),
            ")".repeat(MAX_FORMULA_LEN),
            "{".repeat(MAX_FORMULA_LEN),
        ];
        let started = std::time::Instant::now();
        for source in &sources {
            assert!(source.len() <= MAX_FORMULA_LEN);
            let _ = parse(source);
        }
        let elapsed = started.elapsed();
        assert!(elapsed.as_secs() < 20, "took {elapsed:?}");
    }

    #[test]
    fn deepest_accepted_formulas_parse_on_a_small_stack() {
        // The deepest accepted formulas of each shape must fit a 1 MiB stack in a debug build
        // (test threads get 2 MiB, main threads 8 MiB).
        let half = MAX_NESTING_DEPTH / 2 - 1;
        let full = MAX_NESTING_DEPTH - 1;
        let sources = [
            format!("{}x{}", "f(-".repeat(half), ")".repeat(half)),
            format!("{}x{}", "(".repeat(full), ")".repeat(full)),
            format!("{}x{}", "[".repeat(full), "]".repeat(full)),
            format!("{}x{}", "a[".repeat(half), "]".repeat(half)),
            format!("{}x", "-".repeat(full)),
            format!("{}x", "a**".repeat(full)),
            format!("{}x{}", "(a if b else ".repeat(half), ")".repeat(half)),
        ];
        for source in sources {
            let handle = std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || parse(&source).errors)
                .expect("spawn");
            assert_eq!(handle.join().expect("no stack overflow"), vec![]);
        }
    }
}
