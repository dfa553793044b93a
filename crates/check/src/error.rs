//! The checker's errors: a kind (with a stable `E02xx` code), a primary range, secondary
//! ranges, and the explanation; each converts into a [`voxcalc_syntax::Diagnostic`].

use voxcalc_syntax::{Diagnostic, Label, Severity, TextRange};

/// What went wrong, one variant per `E02xx` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A name that is neither a bound image nor `np`.
    UnknownName,
    /// Something Python has but the formula language refuses (`__import__`, `open`, dunder
    /// attributes, attributes of non-arrays, `in`/`is`, lambda-like constructs).
    NotInLanguage,
    /// An `np.` name or array method that does not exist.
    UnknownAttribute,
    /// Wrong number or kind of arguments, unknown or repeated keyword.
    BadArguments,
    /// No numpy loop accepts the operand dtypes (numpy's `UFuncTypeError` / `TypeError`).
    NoLoop,
    /// A Python int does not fit the integer dtype it must become (numpy's `OverflowError`).
    IntOutOfBounds,
    /// Shapes that do not broadcast.
    Broadcast,
    /// `a < b < c` with arrays.
    ChainedComparison,
    /// `and` / `or` / `not` with arrays.
    BoolOpOnArray,
    /// `a if c else b` with an array condition.
    IfExpOnArray,
    /// `img > 0 & m > 0`: `&` binds tighter than `>`.
    PrecedenceTrap,
    /// An index out of bounds, too many indices, or an index of the wrong type.
    Index,
    /// Boolean-mask indexing outside a reduction or with a mismatched mask shape.
    BooleanMask,
    /// An axis out of bounds or repeated.
    Axis,
    /// Valid numpy that voxcalc does not support (yet).
    NotSupported,
    /// An argument value numpy refuses (`q` out of range, unknown dtype name, negative ddof).
    InvalidValue,
    /// Python arithmetic on constants failed (division by zero, complex result, too large).
    PythonArithmetic,
    /// The formula nests deeper than the checker accepts.
    TooDeep,
    /// A value that is not an array or number where one is needed (a function, a dtype, a
    /// string).
    NotAValue,
    /// Something numpy 2 removed (`ndarray.ptp`).
    RemovedInNumpy2,
    /// Calling something that is not callable.
    NotCallable,
    /// An integer raised to a negative integer power.
    NegativeIntPower,
}

impl ErrorKind {
    /// Every kind, in code order (for the docs table).
    pub const ALL: [ErrorKind; 22] = [
        ErrorKind::UnknownName,
        ErrorKind::NotInLanguage,
        ErrorKind::UnknownAttribute,
        ErrorKind::BadArguments,
        ErrorKind::NoLoop,
        ErrorKind::IntOutOfBounds,
        ErrorKind::Broadcast,
        ErrorKind::ChainedComparison,
        ErrorKind::BoolOpOnArray,
        ErrorKind::IfExpOnArray,
        ErrorKind::PrecedenceTrap,
        ErrorKind::Index,
        ErrorKind::BooleanMask,
        ErrorKind::Axis,
        ErrorKind::NotSupported,
        ErrorKind::InvalidValue,
        ErrorKind::PythonArithmetic,
        ErrorKind::TooDeep,
        ErrorKind::NotAValue,
        ErrorKind::RemovedInNumpy2,
        ErrorKind::NotCallable,
        ErrorKind::NegativeIntPower,
    ];

    /// The stable diagnostic code.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::UnknownName => "E0201",
            ErrorKind::NotInLanguage => "E0202",
            ErrorKind::UnknownAttribute => "E0203",
            ErrorKind::BadArguments => "E0204",
            ErrorKind::NoLoop => "E0205",
            ErrorKind::IntOutOfBounds => "E0206",
            ErrorKind::Broadcast => "E0207",
            ErrorKind::ChainedComparison => "E0208",
            ErrorKind::BoolOpOnArray => "E0209",
            ErrorKind::IfExpOnArray => "E0210",
            ErrorKind::PrecedenceTrap => "E0211",
            ErrorKind::Index => "E0212",
            ErrorKind::BooleanMask => "E0213",
            ErrorKind::Axis => "E0214",
            ErrorKind::NotSupported => "E0215",
            ErrorKind::InvalidValue => "E0216",
            ErrorKind::PythonArithmetic => "E0217",
            ErrorKind::TooDeep => "E0218",
            ErrorKind::NotAValue => "E0219",
            ErrorKind::RemovedInNumpy2 => "E0220",
            ErrorKind::NotCallable => "E0221",
            ErrorKind::NegativeIntPower => "E0222",
        }
    }

    /// A one-line description for docs/language.md.
    pub fn summary(self) -> &'static str {
        match self {
            ErrorKind::UnknownName => "unknown name (with a \"did you mean\" suggestion)",
            ErrorKind::NotInLanguage => "not part of the formula language (`__import__`, `open`, dunder attributes, attributes outside `np.` and array methods, `in`/`is`)",
            ErrorKind::UnknownAttribute => "unknown `np.` function/constant or array method (with a suggestion)",
            ErrorKind::BadArguments => "wrong number of arguments, unknown or repeated keyword",
            ErrorKind::NoLoop => "numpy has no loop for these dtypes (e.g. `bool - bool`, `-bool`, `float & int`)",
            ErrorKind::IntOutOfBounds => "a Python int does not fit the array's integer dtype (`int16 * 100000`), numpy's OverflowError",
            ErrorKind::Broadcast => "shapes do not broadcast (a 3-D mask with a 4-D image: use `mask[..., None]`)",
            ErrorKind::ChainedComparison => "chained comparison on arrays (`0 < img < 5`): write `(0 < img) & (img < 5)`",
            ErrorKind::BoolOpOnArray => "`and`/`or`/`not` on arrays: use `&`, `|`, `~`",
            ErrorKind::IfExpOnArray => "`a if c else b` with an array condition: use `np.where(c, a, b)`",
            ErrorKind::PrecedenceTrap => "`img > 0 & m > 0`: `&` binds tighter than `>`; write `(img > 0) & (m > 0)`",
            ErrorKind::Index => "index out of bounds, too many indices, or an unsupported index",
            ErrorKind::BooleanMask => "boolean-mask indexing outside a reduction, or a mask whose shape does not match",
            ErrorKind::Axis => "axis out of bounds or repeated",
            ErrorKind::NotSupported => "valid numpy that voxcalc does not support yet",
            ErrorKind::InvalidValue => "an argument value numpy refuses (q out of range, unknown dtype name, ...)",
            ErrorKind::PythonArithmetic => "arithmetic on Python constants failed (division by zero, complex result, too large)",
            ErrorKind::TooDeep => "the formula nests too deeply",
            ErrorKind::NotAValue => "a function, dtype or string where an array or number is needed",
            ErrorKind::RemovedInNumpy2 => "removed in numpy 2 (`a.ptp()`: use `np.ptp(a)`)",
            ErrorKind::NotCallable => "calling something that is not a function",
            ErrorKind::NegativeIntPower => "integers to negative integer powers are not allowed",
        }
    }
}

/// One checker error.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckError {
    /// What kind of error.
    pub kind: ErrorKind,
    /// The headline, without a trailing period.
    pub message: String,
    /// Where it is, with a short label.
    pub range: TextRange,
    /// The label drawn under the primary range.
    pub label: String,
    /// Other places that explain it (each operand of a failed broadcast ...).
    pub secondary: Vec<Label>,
    /// Extra facts.
    pub notes: Vec<String>,
    /// How to fix it.
    pub help: Option<String>,
}

impl CheckError {
    /// An error with a message and a primary range; add the rest with the builder methods.
    pub fn new(kind: ErrorKind, range: TextRange, message: impl Into<String>) -> CheckError {
        CheckError {
            kind,
            message: message.into(),
            range,
            label: String::new(),
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Sets the primary label.
    pub fn label(mut self, label: impl Into<String>) -> CheckError {
        self.label = label.into();
        self
    }

    /// Adds a secondary label.
    pub fn secondary(mut self, range: TextRange, message: impl Into<String>) -> CheckError {
        self.secondary.push(Label {
            range,
            message: message.into(),
        });
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> CheckError {
        self.notes.push(note.into());
        self
    }

    /// Sets the help text.
    pub fn help(mut self, help: impl Into<String>) -> CheckError {
        self.help = Some(help.into());
        self
    }
}

impl From<CheckError> for Diagnostic {
    fn from(e: CheckError) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: e.kind.code(),
            message: e.message,
            primary: Label {
                range: e.range,
                message: e.label,
            },
            secondary: e.secondary,
            notes: e.notes,
            help: e.help,
        }
    }
}
