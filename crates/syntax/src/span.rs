//! Byte ranges into the formula text.
//!
//! Offsets are `u32`: formulas are bounded far below 4 GiB (see [`crate::MAX_FORMULA_LEN`]).

use std::fmt;
use std::ops::Range;

/// A half-open byte range `start..end` into the formula source.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct TextRange {
    start: u32,
    end: u32,
}

impl TextRange {
    /// Creates a range; `start` must not be after `end`.
    pub fn new(start: u32, end: u32) -> TextRange {
        assert!(start <= end, "TextRange start {start} after end {end}");
        TextRange { start, end }
    }

    /// An empty range at `offset` (used for "expected X here" errors at the end of input).
    pub fn empty(offset: u32) -> TextRange {
        TextRange::new(offset, offset)
    }

    /// First byte of the range.
    pub fn start(self) -> u32 {
        self.start
    }

    /// One past the last byte of the range.
    pub fn end(self) -> u32 {
        self.end
    }

    /// Length in bytes.
    pub fn len(self) -> u32 {
        self.end - self.start
    }

    /// True when the range covers no byte.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// The smallest range covering both `self` and `other`.
    pub fn cover(self, other: TextRange) -> TextRange {
        TextRange::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The range as `usize` indices, for slicing the source.
    pub fn to_usize(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

impl fmt::Debug for TextRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Anything that covers a range of the source.
pub trait Ranged {
    /// The source range this item covers.
    fn range(&self) -> TextRange;
}

impl Ranged for TextRange {
    fn range(&self) -> TextRange {
        *self
    }
}
