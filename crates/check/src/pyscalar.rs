//! Python scalar arithmetic, for formula parts made only of Python numbers (`2**-1`, `1/3`,
//! `np.pi / 2`): numpy never sees them, Python evaluates them, and the result stays a weak
//! Python scalar.

use voxcalc_syntax::ast::{BinaryOp, CmpOp, UnaryOp};

/// A Python number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Py {
    Int(i128),
    Float(f64),
    Bool(bool),
}

impl Py {
    /// Python's truth value (`bool(x)`; NaN is true).
    pub fn truthy(self) -> bool {
        match self {
            Py::Int(i) => i != 0,
            Py::Float(x) => x != 0.0,
            Py::Bool(b) => b,
        }
    }

    /// The Python type name, for messages.
    pub fn type_name(self) -> &'static str {
        match self {
            Py::Int(_) => "int",
            Py::Float(_) => "float",
            Py::Bool(_) => "bool",
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Py::Int(i) => i as f64,
            Py::Float(x) => x,
            Py::Bool(b) => b as i32 as f64,
        }
    }

    /// The integer value of an int or bool.
    pub fn as_int(self) -> Option<i128> {
        match self {
            Py::Int(i) => Some(i),
            Py::Bool(b) => Some(b as i128),
            Py::Float(_) => None,
        }
    }
}

/// Applies a Python binary operator; the error is Python's message.
pub fn binary(op: BinaryOp, a: Py, b: Py) -> Result<Py, String> {
    let too_large =
        || "integer result too large (voxcalc keeps Python ints within 128 bits)".to_string();
    if let (Py::Bool(x), Py::Bool(y)) = (a, b) {
        match op {
            BinaryOp::BitAnd => return Ok(Py::Bool(x & y)),
            BinaryOp::BitOr => return Ok(Py::Bool(x | y)),
            BinaryOp::BitXor => return Ok(Py::Bool(x ^ y)),
            _ => {}
        }
    }
    if op == BinaryOp::MatMul {
        return Err(format!(
            "unsupported operand type(s) for @: '{}' and '{}'",
            a.type_name(),
            b.type_name()
        ));
    }
    match (a.as_int(), b.as_int()) {
        (Some(x), Some(y)) => int_binary(op, x, y).ok_or_else(too_large)?,
        _ => {
            let (x, y) = (a.as_f64(), b.as_f64());
            match op {
                BinaryOp::Add => Ok(Py::Float(x + y)),
                BinaryOp::Sub => Ok(Py::Float(x - y)),
                BinaryOp::Mul => Ok(Py::Float(x * y)),
                BinaryOp::Div => {
                    if y == 0.0 {
                        Err("float division by zero".into())
                    } else {
                        Ok(Py::Float(x / y))
                    }
                }
                BinaryOp::FloorDiv => {
                    if y == 0.0 {
                        Err("float floor division by zero".into())
                    } else {
                        Ok(Py::Float((x / y).floor()))
                    }
                }
                BinaryOp::Mod => {
                    if y == 0.0 {
                        Err("float modulo by zero".into())
                    } else {
                        Ok(Py::Float(py_fmod(x, y)))
                    }
                }
                BinaryOp::Pow => float_pow(x, y),
                _ => Err(format!(
                    "unsupported operand type(s) for {}: '{}' and '{}'",
                    op_symbol(op),
                    a.type_name(),
                    b.type_name()
                )),
            }
        }
    }
}

fn int_binary(op: BinaryOp, x: i128, y: i128) -> Option<Result<Py, String>> {
    Some(match op {
        BinaryOp::Add => Ok(Py::Int(x.checked_add(y)?)),
        BinaryOp::Sub => Ok(Py::Int(x.checked_sub(y)?)),
        BinaryOp::Mul => Ok(Py::Int(x.checked_mul(y)?)),
        BinaryOp::Div => {
            if y == 0 {
                Err("division by zero".into())
            } else {
                Ok(Py::Float(x as f64 / y as f64))
            }
        }
        BinaryOp::FloorDiv | BinaryOp::Mod => {
            if y == 0 {
                Err("integer division or modulo by zero".into())
            } else {
                let q = x.checked_div_euclid(y)?;
                let r = x.checked_rem_euclid(y)?;
                // Python rounds toward minus infinity; Euclid keeps the remainder >= 0.
                let (q, r) = if y < 0 && r != 0 {
                    (q - 1, r + y)
                } else {
                    (q, r)
                };
                Ok(Py::Int(if op == BinaryOp::FloorDiv { q } else { r }))
            }
        }
        BinaryOp::Pow => {
            if y < 0 {
                if x == 0 {
                    Err("0.0 cannot be raised to a negative power".into())
                } else {
                    Ok(Py::Float((x as f64).powf(y as f64)))
                }
            } else {
                Ok(Py::Int(x.checked_pow(u32::try_from(y).ok()?)?))
            }
        }
        BinaryOp::LShift | BinaryOp::RShift => {
            if y < 0 {
                Err("negative shift count".into())
            } else if op == BinaryOp::RShift {
                Ok(Py::Int(if y >= 127 {
                    if x < 0 {
                        -1
                    } else {
                        0
                    }
                } else {
                    x >> y
                }))
            } else {
                if x == 0 {
                    return Some(Ok(Py::Int(0)));
                }
                let shift = u32::try_from(y).ok().filter(|&s| s < 127)?;
                let r = x.checked_shl(shift)?;
                if r >> shift != x {
                    return None;
                }
                Ok(Py::Int(r))
            }
        }
        BinaryOp::BitAnd => Ok(Py::Int(x & y)),
        BinaryOp::BitOr => Ok(Py::Int(x | y)),
        BinaryOp::BitXor => Ok(Py::Int(x ^ y)),
        BinaryOp::MatMul => Err("unsupported operand type(s) for @: 'int' and 'int'".into()),
    })
}

fn float_pow(x: f64, y: f64) -> Result<Py, String> {
    if x == 0.0 && y < 0.0 {
        return Err("0.0 cannot be raised to a negative power".into());
    }
    if x < 0.0 && y.fract() != 0.0 && y.is_finite() {
        return Err("the result would be a complex number, which formulas do not support".into());
    }
    let r = x.powf(y);
    if r.is_infinite() && x.is_finite() && y.is_finite() {
        return Err("(34, 'Numerical result out of range')".into());
    }
    Ok(Py::Float(r))
}

/// Python's float `%`: the result has the sign of the divisor.
fn py_fmod(x: f64, y: f64) -> f64 {
    let r = x % y;
    if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
        r + y
    } else {
        r
    }
}

/// Applies a Python unary operator.
pub fn unary(op: UnaryOp, a: Py) -> Result<Py, String> {
    match (op, a) {
        (UnaryOp::Not, a) => Ok(Py::Bool(!a.truthy())),
        (UnaryOp::Neg, Py::Float(x)) => Ok(Py::Float(-x)),
        (UnaryOp::Pos, Py::Float(x)) => Ok(Py::Float(x)),
        (UnaryOp::Invert, Py::Float(_)) => Err("bad operand type for unary ~: 'float'".into()),
        (op, a) => {
            let i = a.as_int().unwrap_or(0);
            Ok(Py::Int(match op {
                UnaryOp::Neg => i.checked_neg().ok_or("integer result too large")?,
                UnaryOp::Pos => i,
                _ => !i,
            }))
        }
    }
}

/// Applies a Python comparison (only the numeric ones; the checker refuses `in`/`is`).
pub fn compare(op: CmpOp, a: Py, b: Py) -> Py {
    let ord = match (a.as_int(), b.as_int()) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => a.as_f64().partial_cmp(&b.as_f64()),
    };
    use std::cmp::Ordering::*;
    Py::Bool(match op {
        CmpOp::Eq => ord == Some(Equal),
        CmpOp::NotEq => ord != Some(Equal),
        CmpOp::Lt => ord == Some(Less),
        CmpOp::LtE => matches!(ord, Some(Less | Equal)),
        CmpOp::Gt => ord == Some(Greater),
        CmpOp::GtE => matches!(ord, Some(Greater | Equal)),
        CmpOp::In | CmpOp::NotIn | CmpOp::Is | CmpOp::IsNot => false,
    })
}

/// Python's `round(x)` (half to even, an int) and `round(x, n)` (a float for a float).
pub fn round(x: Py, ndigits: Option<i128>) -> Result<Py, String> {
    match (x, ndigits) {
        (Py::Float(v), None) => {
            if !v.is_finite() {
                return Err("cannot convert float infinity or NaN to integer".into());
            }
            Ok(Py::Int(v.round_ties_even() as i128))
        }
        (Py::Float(v), Some(n)) => {
            let n = n.clamp(-400, 400) as i32;
            let scale = 10f64.powi(n.abs());
            Ok(Py::Float(if n >= 0 {
                (v * scale).round_ties_even() / scale
            } else {
                (v / scale).round_ties_even() * scale
            }))
        }
        (other, None) => Ok(Py::Int(other.as_int().unwrap_or(0))),
        (other, Some(n)) => {
            let i = other.as_int().unwrap_or(0);
            if n >= 0 {
                return Ok(Py::Int(i));
            }
            let m = 10i128.checked_pow((-n).min(38) as u32).unwrap_or(i128::MAX);
            let q = i.div_euclid(m);
            let r = i.rem_euclid(m);
            let q = if 2 * r > m || (2 * r == m && q % 2 != 0) {
                q + 1
            } else {
                q
            };
            Ok(Py::Int(q.saturating_mul(m)))
        }
    }
}

/// The operator as written (the parser's own table).
pub use voxcalc_syntax::pretty::binary_symbol as op_symbol;

/// The comparison as written.
pub fn cmp_symbol(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::NotEq => "!=",
        CmpOp::Lt => "<",
        CmpOp::LtE => "<=",
        CmpOp::Gt => ">",
        CmpOp::GtE => ">=",
        CmpOp::In => "in",
        CmpOp::NotIn => "not in",
        CmpOp::Is => "is",
        CmpOp::IsNot => "is not",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_semantics() {
        assert_eq!(
            binary(BinaryOp::Pow, Py::Int(2), Py::Int(-1)),
            Ok(Py::Float(0.5))
        );
        assert_eq!(
            binary(BinaryOp::Div, Py::Int(1), Py::Int(2)),
            Ok(Py::Float(0.5))
        );
        assert_eq!(
            binary(BinaryOp::FloorDiv, Py::Int(-7), Py::Int(2)),
            Ok(Py::Int(-4))
        );
        assert_eq!(
            binary(BinaryOp::Mod, Py::Int(-7), Py::Int(2)),
            Ok(Py::Int(1))
        );
        assert_eq!(
            binary(BinaryOp::Mod, Py::Int(7), Py::Int(-2)),
            Ok(Py::Int(-1))
        );
        assert_eq!(
            binary(BinaryOp::FloorDiv, Py::Int(7), Py::Int(-2)),
            Ok(Py::Int(-4))
        );
        assert_eq!(
            binary(BinaryOp::Mod, Py::Float(-1.0), Py::Float(3.0)),
            Ok(Py::Float(2.0))
        );
        assert_eq!(
            binary(BinaryOp::Add, Py::Bool(true), Py::Bool(true)),
            Ok(Py::Int(2))
        );
        assert_eq!(
            binary(BinaryOp::BitAnd, Py::Bool(true), Py::Bool(false)),
            Ok(Py::Bool(false))
        );
        assert!(binary(BinaryOp::Div, Py::Int(1), Py::Int(0)).is_err());
        assert!(binary(BinaryOp::Pow, Py::Int(10), Py::Int(100)).is_err());
        assert!(binary(BinaryOp::Pow, Py::Float(-8.0), Py::Float(0.5)).is_err());
        assert_eq!(unary(UnaryOp::Neg, Py::Bool(true)), Ok(Py::Int(-1)));
        assert_eq!(unary(UnaryOp::Invert, Py::Int(5)), Ok(Py::Int(-6)));
        assert_eq!(round(Py::Float(2.5), None), Ok(Py::Int(2)));
        assert_eq!(round(Py::Int(150), Some(-2)), Ok(Py::Int(200)));
        assert_eq!(round(Py::Int(250), Some(-2)), Ok(Py::Int(200)));
        assert_eq!(
            compare(CmpOp::Lt, Py::Int(1), Py::Float(1.5)),
            Py::Bool(true)
        );
    }
}
