//! numpy 2 type promotion (NEP 50), including weak Python scalars.
//!
//! numpy 2 distinguishes *strong* operands (arrays and numpy scalars, whose dtype always counts)
//! from *weak* ones (Python `int`, `float` and `bool` literals, whose dtype adapts to the strong
//! operands). `int16_array + 1` stays int16, `float32_array * 2.5` stays float32, and a Python
//! int that does not fit the integer dtype it is converted to is an error
//! (`OverflowError: Python integer 100000 out of bounds for int16`).

use std::fmt;

use crate::DType;

/// numpy's `np.promote_types(a, b)` for two strong dtypes.
///
/// The result is the first dtype in numpy's kind-then-size order that both inputs cast to
/// safely: `uint8 + int8 -> int16`, `uint64 + int64 -> float64`, `int16 + float16 -> float32`,
/// `int8 + float16 -> float16`, `bool + int8 -> int8`.
pub fn promote(a: DType, b: DType) -> DType {
    DType::ALL
        .into_iter()
        .find(|&to| a.can_cast_safe(to) && b.can_cast_safe(to))
        // float64 accepts every dtype safely, so the search always succeeds.
        .unwrap_or(DType::F64)
}

/// One operand of an operation, as numpy 2's promotion sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    /// An array or a numpy scalar (e.g. the 0-d result of `np.mean(img)`): its dtype is strong.
    Array(DType),
    /// A Python `int` literal (weak), with its value (Python ints are unbounded; voxcalc keeps
    /// 128 bits and refuses larger literals earlier).
    PyInt(i128),
    /// A Python `float` literal (weak).
    PyFloat(f64),
    /// A Python `bool` literal (weak).
    PyBool(bool),
}

impl Operand {
    /// True for Python scalars, whose dtype adapts to the strong operands.
    pub fn is_weak(self) -> bool {
        !matches!(self, Operand::Array(_))
    }

    /// The dtype numpy gives a weak operand when nothing strong is around: `int64` for a Python
    /// int, `float64` for a float, `bool` for a bool (the `dtype` itself for a strong operand).
    pub fn default_dtype(self) -> DType {
        match self {
            Operand::Array(d) => d,
            Operand::PyInt(_) => DType::I64,
            Operand::PyFloat(_) => DType::F64,
            Operand::PyBool(_) => DType::Bool,
        }
    }

    /// Rank of the Python type for weak promotion: bool < int < float.
    fn weak_rank(self) -> u8 {
        match self {
            Operand::PyBool(_) => 0,
            Operand::PyInt(_) => 1,
            Operand::PyFloat(_) => 2,
            Operand::Array(_) => 0,
        }
    }
}

/// Why numpy refuses to promote a set of operands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromoteError {
    /// A Python int does not fit the integer dtype it has to become (numpy's `OverflowError`).
    IntOutOfBounds {
        /// The Python integer.
        value: i128,
        /// The dtype it should have been converted to.
        dtype: DType,
        /// Which operand (index into the operand list) holds the integer.
        operand_idx: usize,
    },
}

impl fmt::Display for PromoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromoteError::IntOutOfBounds { value, dtype, .. } => {
                write!(f, "Python integer {value} out of bounds for {dtype}")
            }
        }
    }
}

/// The common dtype of `operands` as numpy 2's `np.result_type` computes it, without checking
/// the values of Python ints (see [`result_type`]).
///
/// Strong dtypes are promoted with [`promote`]. A weak operand only matters when its Python type
/// is of a higher kind than the strong result: a Python int with a bool array gives int64, a
/// Python float with a bool or integer array gives float64; otherwise the strong dtype wins
/// (`float32 * 2.5 -> float32`, `float16 + 1 -> float16`). With no strong operand the result is
/// the default dtype of the highest weak kind (int64 or float64, or bool).
pub fn common_dtype(operands: &[Operand]) -> DType {
    let strong = operands
        .iter()
        .filter_map(|op| match op {
            Operand::Array(d) => Some(*d),
            _ => None,
        })
        .reduce(promote);
    let weak = operands
        .iter()
        .copied()
        .filter(|op| op.is_weak())
        .max_by_key(|op| op.weak_rank());
    match (strong, weak) {
        (Some(d), None) => d,
        (None, Some(w)) => w.default_dtype(),
        (None, None) => DType::F64,
        (Some(d), Some(w)) => match (w, d.kind()) {
            (Operand::PyInt(_), 'b') => DType::I64,
            (Operand::PyFloat(_), 'b' | 'u' | 'i') => DType::F64,
            _ => d,
        },
    }
}

/// numpy 2's `np.result_type(*operands)`, including the check that every Python int fits the
/// integer dtype it becomes (`int16 + 100000` is an error; `float16 + 100000` is not).
pub fn result_type(operands: &[Operand]) -> Result<DType, PromoteError> {
    let dtype = common_dtype(operands);
    check_py_ints(operands, dtype)?;
    Ok(dtype)
}

/// Checks that every Python int among `operands` fits `dtype` when `dtype` is an integer type.
pub fn check_py_ints(operands: &[Operand], dtype: DType) -> Result<(), PromoteError> {
    for (operand_idx, op) in operands.iter().enumerate() {
        if let Operand::PyInt(value) = *op {
            if !int_fits(value, dtype) {
                return Err(PromoteError::IntOutOfBounds {
                    value,
                    dtype,
                    operand_idx,
                });
            }
        }
    }
    Ok(())
}

/// True when the Python int `value` converts to `dtype` without numpy raising `OverflowError`:
/// always for floats (large values become `inf`), within the range for integers. For bool
/// numpy never converts a Python int to bool during promotion (it picks int64 instead), so
/// `bool` only accepts 0 and 1.
pub fn int_fits(value: i128, dtype: DType) -> bool {
    match dtype.int_range() {
        Some((lo, hi)) => (lo..=hi).contains(&value),
        None => true,
    }
}

/// The dtype each operand has once weak scalars are resolved against the others, as numpy does
/// before it searches a ufunc's loop list: a strong operand keeps its dtype, a weak one takes
/// the common dtype of all operands (`np.arctan2(int8_array, 2)` sees `(int8, int8)`, and so
/// finds the float16 loop).
pub fn operand_dtypes(operands: &[Operand]) -> Vec<DType> {
    let common = common_dtype(operands);
    operands
        .iter()
        .map(|op| match op {
            Operand::Array(d) => *d,
            _ => common,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use DType::*;

    #[test]
    fn promote_matches_numpy_examples() {
        assert_eq!(promote(U64, I64), F64);
        assert_eq!(promote(I16, F16), F32);
        assert_eq!(promote(I8, F16), F16);
        assert_eq!(promote(Bool, I8), I8);
        assert_eq!(promote(U8, I8), I16);
        assert_eq!(promote(U32, I8), I64);
        assert_eq!(promote(I64, F32), F64);
        assert_eq!(promote(U16, F16), F32);
    }

    #[test]
    fn weak_scalars_follow_nep50() {
        assert_eq!(
            result_type(&[Operand::Array(I16), Operand::PyInt(1)]),
            Ok(I16)
        );
        assert_eq!(
            result_type(&[Operand::Array(Bool), Operand::PyInt(1)]),
            Ok(I64)
        );
        assert_eq!(
            result_type(&[Operand::Array(I16), Operand::PyFloat(1.5)]),
            Ok(F64)
        );
        assert_eq!(
            result_type(&[Operand::Array(F32), Operand::PyFloat(1.5)]),
            Ok(F32)
        );
        assert_eq!(
            result_type(&[Operand::Array(F16), Operand::PyInt(100_000)]),
            Ok(F16)
        );
        assert_eq!(
            result_type(&[Operand::Array(U8), Operand::PyBool(true)]),
            Ok(U8)
        );
        assert_eq!(
            result_type(&[Operand::PyInt(1), Operand::PyFloat(1.0)]),
            Ok(F64)
        );
        assert_eq!(
            result_type(&[Operand::Array(I16), Operand::PyInt(100_000)]),
            Err(PromoteError::IntOutOfBounds {
                value: 100_000,
                dtype: I16,
                operand_idx: 1
            })
        );
        assert_eq!(
            result_type(&[Operand::Array(U8), Operand::PyInt(-1)])
                .unwrap_err()
                .to_string(),
            "Python integer -1 out of bounds for uint8"
        );
    }

    #[test]
    fn weak_operands_take_the_common_dtype() {
        assert_eq!(
            operand_dtypes(&[Operand::Array(I8), Operand::PyInt(2)]),
            vec![I8, I8]
        );
        assert_eq!(
            operand_dtypes(&[Operand::Array(I8), Operand::PyFloat(2.0)]),
            vec![I8, F64]
        );
        assert_eq!(
            operand_dtypes(&[Operand::Array(I8), Operand::Array(U8), Operand::PyInt(3)]),
            vec![I8, U8, I16]
        );
    }

    #[test]
    fn promote_is_not_associative_across_signedness() {
        // As in numpy: np.promote_types(np.promote_types('e', 'B'), 'b') is float16 but
        // np.promote_types('e', np.promote_types('B', 'b')) is float32.
        assert_eq!(promote(promote(F16, U8), I8), F16);
        assert_eq!(promote(F16, promote(U8, I8)), F32);
    }

    fn any_dtype() -> impl Strategy<Value = DType> {
        proptest::sample::select(DType::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn promote_is_commutative(a in any_dtype(), b in any_dtype()) {
            prop_assert_eq!(promote(a, b), promote(b, a));
        }

        /// numpy's promotion is associative except when an unsigned and a signed integer meet
        /// next to a float (see `promote_is_not_associative_across_signedness`).
        #[test]
        fn promote_is_associative(a in any_dtype(), b in any_dtype(), c in any_dtype()) {
            let kinds = [a.kind(), b.kind(), c.kind()];
            prop_assume!(!(kinds.contains(&'u') && kinds.contains(&'i')));
            prop_assert_eq!(promote(promote(a, b), c), promote(a, promote(b, c)));
        }

        #[test]
        fn both_inputs_cast_safely_to_the_promoted_dtype(a in any_dtype(), b in any_dtype()) {
            let p = promote(a, b);
            prop_assert!(a.can_cast_safe(p) && b.can_cast_safe(p));
        }

        #[test]
        fn weak_int_never_changes_a_strong_integer_dtype(d in any_dtype(), v in -100i128..100) {
            prop_assume!(d.is_int() || d.is_float());
            let ops = [Operand::Array(d), Operand::PyInt(v)];
            if int_fits(v, d) {
                prop_assert_eq!(result_type(&ops), Ok(d));
            } else {
                prop_assert!(result_type(&ops).is_err());
            }
        }

        #[test]
        fn result_type_is_order_independent(a in any_dtype(), b in any_dtype(), v in -3i128..3, w in 0u8..3) {
            let weak = match w { 0 => Operand::PyInt(v), 1 => Operand::PyFloat(v as f64), _ => Operand::PyBool(v > 0) };
            let ops1 = [Operand::Array(a), weak, Operand::Array(b)];
            let ops2 = [weak, Operand::Array(b), Operand::Array(a)];
            prop_assert_eq!(common_dtype(&ops1), common_dtype(&ops2));
        }
    }
}
