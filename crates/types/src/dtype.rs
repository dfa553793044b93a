//! numpy dtypes as voxcalc sees them.

use std::fmt;

/// A numpy dtype. `F16` exists for type inference only: numpy gives float16 for e.g.
/// `np.log(uint8)`, and the dtype tables must agree with numpy; the planner computes and stores
/// such results as float32 (a documented deviation, docs/compat.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    F32,
    F64,
}

impl DType {
    /// Every dtype, in numpy's kind-then-size order.
    pub const ALL: [DType; 12] = [
        DType::Bool,
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F16,
        DType::F32,
        DType::F64,
    ];

    /// The ten NIfTI storage dtypes (uint8..float64), no bool, no float16.
    pub const STORAGE: [DType; 10] = [
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F32,
        DType::F64,
    ];

    /// numpy's name (`"int16"`, `"float32"`, `"bool"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Parses numpy's name (as in `astype('float32')` or `np.float32`).
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Size of one element in bytes (bool is one byte, as in numpy).
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::F16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// True for the floating-point dtypes.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::F32 | DType::F64)
    }

    /// True for signed and unsigned integers (not bool).
    pub fn is_int(self) -> bool {
        self.is_signed_int() || self.is_unsigned_int()
    }

    /// True for int8..int64.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    /// True for uint8..uint64.
    pub fn is_unsigned_int(self) -> bool {
        matches!(self, DType::U8 | DType::U16 | DType::U32 | DType::U64)
    }

    /// numpy's kind character: `b` bool, `u` unsigned, `i` signed, `f` float.
    pub fn kind(self) -> char {
        if self == DType::Bool {
            'b'
        } else if self.is_unsigned_int() {
            'u'
        } else if self.is_signed_int() {
            'i'
        } else {
            'f'
        }
    }

    /// The smallest and largest value of an integer dtype (bool is `0..=1`); `None` for floats.
    pub fn int_range(self) -> Option<(i128, i128)> {
        let bits = 8 * self.size() as u32;
        match self.kind() {
            'b' => Some((0, 1)),
            'u' => Some((0, (1i128 << bits) - 1)),
            'i' => Some((-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)),
            _ => None,
        }
    }

    /// numpy's one-letter type code as used in ufunc loop lists (`np.add.types`): `?bBhHiIqQefd`.
    /// int64 and uint64 are `q`/`Q` (numpy on Linux also lists them as `l`/`L`).
    pub fn char_code(self) -> char {
        match self {
            DType::Bool => '?',
            DType::I8 => 'b',
            DType::U8 => 'B',
            DType::I16 => 'h',
            DType::U16 => 'H',
            DType::I32 => 'i',
            DType::U32 => 'I',
            DType::I64 => 'q',
            DType::U64 => 'Q',
            DType::F16 => 'e',
            DType::F32 => 'f',
            DType::F64 => 'd',
        }
    }

    /// Parses a type code of a ufunc loop list (`l`/`L` are the 64-bit integers on LP64
    /// platforms); `None` for codes voxcalc has no dtype for (complex, long double, object).
    pub fn from_char_code(code: char) -> Option<DType> {
        match code {
            'l' => Some(DType::I64),
            'L' => Some(DType::U64),
            _ => DType::ALL.into_iter().find(|d| d.char_code() == code),
        }
    }

    /// numpy's "same_kind" casting: safe casts plus casts within a kind or to a higher kind in
    /// bool < unsigned < signed < float (`float64 -> float32`, `uint8 -> int8`), not down a
    /// kind (`float -> int`, `int -> uint`).
    pub fn can_cast_same_kind(self, to: DType) -> bool {
        let rank = |d: DType| match d.kind() {
            'b' => 0,
            'u' => 1,
            'i' => 2,
            _ => 3,
        };
        self.can_cast_safe(to) || rank(self) <= rank(to)
    }

    /// numpy's "safe" casting (`np.can_cast(from, to, casting='safe')`): every value of `from`
    /// is representable in `to` (int64 -> float64 counts as safe, as in numpy).
    pub fn can_cast_safe(self, to: DType) -> bool {
        if self == to || self == DType::Bool {
            return true;
        }
        match (self.kind(), to.kind()) {
            ('u', 'u') | ('i', 'i') | ('f', 'f') => to.size() >= self.size(),
            ('u', 'i') => to.size() > self.size(),
            ('u' | 'i', 'f') => match self.size() {
                1 => true,
                2 => to.size() >= 4,
                _ => to == DType::F64,
            },
            _ => false,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casting_rules() {
        assert!(DType::I64.can_cast_safe(DType::F64));
        assert!(!DType::I16.can_cast_safe(DType::F16));
        assert!(DType::U8.can_cast_safe(DType::I16));
        assert!(!DType::I8.can_cast_safe(DType::U64));
        assert!(DType::F64.can_cast_same_kind(DType::F32));
        assert!(DType::U8.can_cast_same_kind(DType::I8));
        assert!(!DType::I16.can_cast_same_kind(DType::U8));
        assert!(!DType::F64.can_cast_same_kind(DType::I16));
        assert_eq!(DType::I16.int_range(), Some((-32768, 32767)));
        assert_eq!(DType::U64.int_range(), Some((0, u64::MAX as i128)));
        for d in DType::ALL {
            assert_eq!(DType::from_char_code(d.char_code()), Some(d));
        }
    }
}
