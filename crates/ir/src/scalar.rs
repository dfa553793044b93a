//! Scalar values and numpy's scalar semantics for every kernel operation.
//!
//! This module is the oracle: the reference interpreter evaluates kernels with these functions,
//! and the JIT calls the same functions (through `extern "C"` wrappers) for the operations it does
//! not inline (transcendental functions, integer floor division, float modulo). Each function is
//! written for clarity, following numpy's C loops (`npy_divmod`, `npy_lshift`, ...) line by line.

use std::fmt;

use voxcalc_types::DType;

/// One typed value. `F16` never appears: float16 results are computed as float32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
}

impl Scalar {
    /// The value's dtype.
    pub fn dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::U8(_) => DType::U8,
            Scalar::I8(_) => DType::I8,
            Scalar::U16(_) => DType::U16,
            Scalar::I16(_) => DType::I16,
            Scalar::U32(_) => DType::U32,
            Scalar::I32(_) => DType::I32,
            Scalar::U64(_) => DType::U64,
            Scalar::I64(_) => DType::I64,
            Scalar::F32(_) => DType::F32,
            Scalar::F64(_) => DType::F64,
        }
    }

    /// The value's bit pattern, zero-extended to 64 bits (`true` is 1). This is the encoding of
    /// uniform scalars in the kernel argument array.
    pub fn to_bits(self) -> u64 {
        match self {
            Scalar::Bool(v) => v as u64,
            Scalar::U8(v) => v as u64,
            Scalar::I8(v) => v as u8 as u64,
            Scalar::U16(v) => v as u64,
            Scalar::I16(v) => v as u16 as u64,
            Scalar::U32(v) => v as u64,
            Scalar::I32(v) => v as u32 as u64,
            Scalar::U64(v) => v,
            Scalar::I64(v) => v as u64,
            Scalar::F32(v) => v.to_bits() as u64,
            Scalar::F64(v) => v.to_bits(),
        }
    }

    /// Decodes a bit pattern written by [`Scalar::to_bits`] (extra high bits are ignored).
    /// `F16` decodes as float32, the dtype kernels compute it in.
    pub fn from_bits(dtype: DType, bits: u64) -> Scalar {
        match dtype {
            DType::Bool => Scalar::Bool(bits & 0xff != 0),
            DType::U8 => Scalar::U8(bits as u8),
            DType::I8 => Scalar::I8(bits as u8 as i8),
            DType::U16 => Scalar::U16(bits as u16),
            DType::I16 => Scalar::I16(bits as u16 as i16),
            DType::U32 => Scalar::U32(bits as u32),
            DType::I32 => Scalar::I32(bits as u32 as i32),
            DType::U64 => Scalar::U64(bits),
            DType::I64 => Scalar::I64(bits as i64),
            DType::F16 | DType::F32 => Scalar::F32(f32::from_bits(bits as u32)),
            DType::F64 => Scalar::F64(f64::from_bits(bits)),
        }
    }

    /// Decodes one element stored in little-endian byte order (`bytes.len()` must be the
    /// dtype's size; a bool byte is true when nonzero, as numpy reads it).
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Scalar {
        let mut buf = [0u8; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        Scalar::from_bits(dtype, u64::from_le_bytes(buf))
    }

    /// Encodes the value as little-endian bytes of its dtype's size.
    pub fn to_le_bytes(self) -> Vec<u8> {
        self.to_bits().to_le_bytes()[..self.dtype().size()].to_vec()
    }

    /// The value as an f64 (exact for every dtype except int64/uint64 beyond 2^53).
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Bool(v) => v as u8 as f64,
            Scalar::U8(v) => v as f64,
            Scalar::I8(v) => v as f64,
            Scalar::U16(v) => v as f64,
            Scalar::I16(v) => v as f64,
            Scalar::U32(v) => v as f64,
            Scalar::I32(v) => v as f64,
            Scalar::U64(v) => v as f64,
            Scalar::I64(v) => v as f64,
            Scalar::F32(v) => v as f64,
            Scalar::F64(v) => v,
        }
    }

    /// True when the value is a float NaN.
    pub fn is_nan(self) -> bool {
        match self {
            Scalar::F32(v) => v.is_nan(),
            Scalar::F64(v) => v.is_nan(),
            _ => false,
        }
    }

    /// numpy truthiness (`x != 0`; NaN is true).
    pub fn truthy(self) -> bool {
        match self {
            Scalar::Bool(v) => v,
            Scalar::F32(v) => v != 0.0,
            Scalar::F64(v) => v != 0.0,
            other => int_value(other) != 0,
        }
    }

    /// The value converted to `to` with numpy's `astype` (unsafe casting) semantics.
    ///
    /// Float to integer conversions of in-range values truncate toward zero. numpy leaves NaN,
    /// infinities and out-of-range values undefined (it warns "invalid value encountered in
    /// cast"); voxcalc defines them as x86-64 C compilers do: targets up to 32 bits signed (and
    /// 8/16 bits unsigned) convert through int32, uint32 through int64, and an invalid conversion
    /// to int32/int64 gives the minimum value (`cvttsd2si`). `F16` means float32.
    pub fn cast(self, to: DType) -> Scalar {
        if self.dtype() == to {
            return self;
        }
        match self {
            Scalar::F32(v) => cast_float(v as f64, to, true),
            Scalar::F64(v) => cast_float(v, to, false),
            Scalar::Bool(v) => int_to(v as i128, to),
            other => int_to(int_value(other), to),
        }
    }

    /// Zero of the given dtype (`false` for bool).
    pub fn zero(dtype: DType) -> Scalar {
        Scalar::from_bits(dtype, 0)
    }

    /// One of the given dtype (`true` for bool).
    pub fn one(dtype: DType) -> Scalar {
        Scalar::I64(1).cast(dtype)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(v) => write!(f, "{}", if *v { "True" } else { "False" }),
            Scalar::F32(v) => write!(f, "{v:?}"),
            Scalar::F64(v) => write!(f, "{v:?}"),
            other => write!(f, "{}", int_value(*other)),
        }
    }
}

/// The integer value of an integer or bool scalar (0 for floats).
pub fn int_value(s: Scalar) -> i128 {
    match s {
        Scalar::Bool(v) => v as i128,
        Scalar::U8(v) => v as i128,
        Scalar::I8(v) => v as i128,
        Scalar::U16(v) => v as i128,
        Scalar::I16(v) => v as i128,
        Scalar::U32(v) => v as i128,
        Scalar::I32(v) => v as i128,
        Scalar::U64(v) => v as i128,
        Scalar::I64(v) => v as i128,
        Scalar::F32(_) | Scalar::F64(_) => 0,
    }
}

/// Wraps an integer to `to` (two's complement truncation), or converts it to a float with
/// round-to-nearest-even.
pub fn int_to(v: i128, to: DType) -> Scalar {
    match to {
        DType::Bool => Scalar::Bool(v != 0),
        DType::U8 => Scalar::U8(v as u8),
        DType::I8 => Scalar::I8(v as i8),
        DType::U16 => Scalar::U16(v as u16),
        DType::I16 => Scalar::I16(v as i16),
        DType::U32 => Scalar::U32(v as u32),
        DType::I32 => Scalar::I32(v as i32),
        DType::U64 => Scalar::U64(v as u64),
        DType::I64 => Scalar::I64(v as i64),
        // i128 -> float is correctly rounded in Rust, and every i128 here fits in 64 bits.
        DType::F16 | DType::F32 => Scalar::F32(v as f32),
        DType::F64 => Scalar::F64(v as f64),
    }
}

/// `cvttsd2si` to 32 bits: truncation, or `i32::MIN` when the value is NaN or out of range.
pub fn cvtt_i32(v: f64) -> i32 {
    if v > -2147483649.0 && v < 2147483648.0 {
        v as i32
    } else {
        i32::MIN
    }
}

/// `cvttsd2si` to 64 bits: truncation, or `i64::MIN` when the value is NaN or out of range.
pub fn cvtt_i64(v: f64) -> i64 {
    if (-9223372036854775808.0..9223372036854775808.0).contains(&v) {
        v as i64
    } else {
        i64::MIN
    }
}

/// The x86-64 C conversion of a double to uint64 (values from 2^63 are converted after
/// subtracting 2^63, then the top bit is set back).
pub fn cvtt_u64(v: f64) -> u64 {
    if v >= 9223372036854775808.0 {
        (cvtt_i64(v - 9223372036854775808.0) as u64) ^ (1u64 << 63)
    } else {
        cvtt_i64(v) as u64
    }
}

fn cast_float(v: f64, to: DType, from_f32: bool) -> Scalar {
    match to {
        DType::Bool => Scalar::Bool(v != 0.0),
        DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32 => {
            int_to(cvtt_i32(v) as i128, to)
        }
        DType::U32 => Scalar::U32(cvtt_i64(v) as u32),
        DType::I64 => Scalar::I64(cvtt_i64(v)),
        DType::U64 => Scalar::U64(cvtt_u64(v)),
        DType::F16 | DType::F32 => Scalar::F32(v as f32),
        DType::F64 => Scalar::F64(if from_f32 { (v as f32) as f64 } else { v }),
    }
}

/// Python floor division for signed integers as numpy computes it: division by zero gives 0,
/// and `MIN // -1` wraps to `MIN`.
pub fn floor_div_signed(a: i64, b: i64, bits: u32) -> i64 {
    if b == 0 {
        return 0;
    }
    let min = -(1i128 << (bits - 1));
    if b == -1 && a as i128 == min {
        return a;
    }
    let q = a / b;
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

/// Python modulo for signed integers as numpy computes it: the result has the divisor's sign,
/// and modulo by zero gives 0.
pub fn mod_signed(a: i64, b: i64) -> i64 {
    if b == 0 || b == -1 {
        return 0;
    }
    let r = a % b;
    if r != 0 && ((r < 0) != (b < 0)) {
        r + b
    } else {
        r
    }
}

/// numpy's `npy_divmod` for doubles: returns (floor_divide, remainder) with Python semantics.
pub fn divmod_f64(a: f64, b: f64) -> (f64, f64) {
    let mut m = a % b;
    if b == 0.0 {
        return (a / b, m);
    }
    let mut div = (a - m) / b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(b);
    }
    let floordiv = if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0.0f64.copysign(a / b)
    };
    (floordiv, m)
}

/// numpy's `npy_divmod` for floats, computed in float32.
pub fn divmod_f32(a: f32, b: f32) -> (f32, f32) {
    let mut m = a % b;
    if b == 0.0 {
        return (a / b, m);
    }
    let mut div = (a - m) / b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = 0.0f32.copysign(b);
    }
    let floordiv = if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0.0f32.copysign(a / b)
    };
    (floordiv, m)
}

/// `np.floor_divide` for doubles.
pub fn floor_div_f64(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        a / b
    } else {
        divmod_f64(a, b).0
    }
}

/// `np.remainder` for doubles.
pub fn mod_f64(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        a % b
    } else {
        divmod_f64(a, b).1
    }
}

/// `np.floor_divide` for float32.
pub fn floor_div_f32(a: f32, b: f32) -> f32 {
    if b == 0.0 {
        a / b
    } else {
        divmod_f32(a, b).0
    }
}

/// `np.remainder` for float32.
pub fn mod_f32(a: f32, b: f32) -> f32 {
    if b == 0.0 {
        a % b
    } else {
        divmod_f32(a, b).1
    }
}

/// `np.logaddexp` for doubles (numpy's `npy_logaddexp`).
pub fn logaddexp_f64(x: f64, y: f64) -> f64 {
    if x == y {
        // Handles infinities of the same sign without producing NaN.
        x + std::f64::consts::LN_2
    } else {
        let tmp = x - y;
        if tmp > 0.0 {
            x + (-tmp).exp().ln_1p()
        } else if tmp <= 0.0 {
            y + tmp.exp().ln_1p()
        } else {
            tmp
        }
    }
}

/// `np.logaddexp` for float32 (numpy's `npy_logaddexpf`, computed in float32).
pub fn logaddexp_f32(x: f32, y: f32) -> f32 {
    if x == y {
        x + std::f32::consts::LN_2
    } else {
        let tmp = x - y;
        if tmp > 0.0 {
            x + (-tmp).exp().ln_1p()
        } else if tmp <= 0.0 {
            y + tmp.exp().ln_1p()
        } else {
            tmp
        }
    }
}

/// The element-wise functions computed by calls (no Cranelift instruction exists for them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MathFn {
    Exp,
    Exp2,
    Expm1,
    Log,
    Log2,
    Log10,
    Log1p,
    Sin,
    Cos,
    Tan,
    Arcsin,
    Arccos,
    Arctan,
    Sinh,
    Cosh,
    Tanh,
    Arcsinh,
    Arccosh,
    Arctanh,
    Cbrt,
}

impl MathFn {
    /// Every function, for tests and symbol registration.
    pub const ALL: [MathFn; 20] = [
        MathFn::Exp,
        MathFn::Exp2,
        MathFn::Expm1,
        MathFn::Log,
        MathFn::Log2,
        MathFn::Log10,
        MathFn::Log1p,
        MathFn::Sin,
        MathFn::Cos,
        MathFn::Tan,
        MathFn::Arcsin,
        MathFn::Arccos,
        MathFn::Arctan,
        MathFn::Sinh,
        MathFn::Cosh,
        MathFn::Tanh,
        MathFn::Arcsinh,
        MathFn::Arccosh,
        MathFn::Arctanh,
        MathFn::Cbrt,
    ];

    /// numpy's name of the function.
    pub fn name(self) -> &'static str {
        match self {
            MathFn::Exp => "exp",
            MathFn::Exp2 => "exp2",
            MathFn::Expm1 => "expm1",
            MathFn::Log => "log",
            MathFn::Log2 => "log2",
            MathFn::Log10 => "log10",
            MathFn::Log1p => "log1p",
            MathFn::Sin => "sin",
            MathFn::Cos => "cos",
            MathFn::Tan => "tan",
            MathFn::Arcsin => "arcsin",
            MathFn::Arccos => "arccos",
            MathFn::Arctan => "arctan",
            MathFn::Sinh => "sinh",
            MathFn::Cosh => "cosh",
            MathFn::Tanh => "tanh",
            MathFn::Arcsinh => "arcsinh",
            MathFn::Arccosh => "arccosh",
            MathFn::Arctanh => "arctanh",
            MathFn::Cbrt => "cbrt",
        }
    }

    /// Evaluates the function in float64: the platform libm, as numpy's float64 loops use,
    /// except `log` and `exp`, which are [`crate::vmath::log_f64`] and [`crate::vmath::exp_f64`]
    /// (the algorithms the JIT also runs on vectors, so both engines give the same bits).
    pub fn eval_f64(self, x: f64) -> f64 {
        match self {
            MathFn::Exp => crate::vmath::exp_f64(x),
            MathFn::Exp2 => x.exp2(),
            MathFn::Expm1 => x.exp_m1(),
            MathFn::Log => crate::vmath::log_f64(x),
            MathFn::Log2 => x.log2(),
            MathFn::Log10 => x.log10(),
            MathFn::Log1p => x.ln_1p(),
            MathFn::Sin => x.sin(),
            MathFn::Cos => x.cos(),
            MathFn::Tan => x.tan(),
            MathFn::Arcsin => x.asin(),
            MathFn::Arccos => x.acos(),
            MathFn::Arctan => x.atan(),
            MathFn::Sinh => x.sinh(),
            MathFn::Cosh => x.cosh(),
            MathFn::Tanh => x.tanh(),
            MathFn::Arcsinh => asinh_f64(x),
            MathFn::Arccosh => acosh_f64(x),
            MathFn::Arctanh => x.atanh(),
            MathFn::Cbrt => x.cbrt(),
        }
    }

    /// Evaluates the function in float32: the platform's float32 libm functions, except `log`
    /// and `exp`, which are [`crate::vmath::log_f32`] and [`crate::vmath::exp_f32`] (the
    /// algorithms the JIT also runs on vectors, so both engines give the same bits).
    pub fn eval_f32(self, x: f32) -> f32 {
        match self {
            MathFn::Exp => crate::vmath::exp_f32(x),
            MathFn::Exp2 => x.exp2(),
            MathFn::Expm1 => x.exp_m1(),
            MathFn::Log => crate::vmath::log_f32(x),
            MathFn::Log2 => x.log2(),
            MathFn::Log10 => x.log10(),
            MathFn::Log1p => x.ln_1p(),
            MathFn::Sin => x.sin(),
            MathFn::Cos => x.cos(),
            MathFn::Tan => x.tan(),
            MathFn::Arcsin => x.asin(),
            MathFn::Arccos => x.acos(),
            MathFn::Arctan => x.atan(),
            MathFn::Sinh => x.sinh(),
            MathFn::Cosh => x.cosh(),
            MathFn::Tanh => x.tanh(),
            MathFn::Arcsinh => asinh_f32(x),
            MathFn::Arccosh => acosh_f32(x),
            MathFn::Arctanh => x.atanh(),
            MathFn::Cbrt => x.cbrt(),
        }
    }
}

/// `asinh` with fdlibm's (and glibc's) argument reduction, so huge arguments stay finite
/// (Rust's `f64::asinh` overflows in `x * x` for |x| near the maximum).
pub fn asinh_f64(x: f64) -> f64 {
    let ax = x.abs();
    if !ax.is_finite() || ax < 2f64.powi(-28) {
        // NaN, infinities, zeros and tiny values: asinh(x) == x to working precision.
        return x;
    }
    let r = if ax > 2f64.powi(28) {
        ax.ln() + std::f64::consts::LN_2
    } else if ax > 2.0 {
        (2.0 * ax + 1.0 / ((ax * ax + 1.0).sqrt() + ax)).ln()
    } else {
        let t = ax * ax;
        (ax + t / (1.0 + (1.0 + t).sqrt())).ln_1p()
    };
    r.copysign(x)
}

/// `acosh` with fdlibm's argument reduction (finite for every finite argument >= 1).
pub fn acosh_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < 1.0 {
        return f64::NAN;
    }
    if x >= 2f64.powi(28) {
        if x.is_infinite() {
            return x;
        }
        x.ln() + std::f64::consts::LN_2
    } else if x > 2.0 {
        (2.0 * x - 1.0 / (x + (x * x - 1.0).sqrt())).ln()
    } else {
        let t = x - 1.0;
        (t + (2.0 * t + t * t).sqrt()).ln_1p()
    }
}

/// [`asinh_f64`] computed in float32.
pub fn asinh_f32(x: f32) -> f32 {
    let ax = x.abs();
    if !ax.is_finite() || ax < 2f32.powi(-28) {
        return x;
    }
    let r = if ax > 2f32.powi(28) {
        ax.ln() + std::f32::consts::LN_2
    } else if ax > 2.0 {
        (2.0 * ax + 1.0 / ((ax * ax + 1.0).sqrt() + ax)).ln()
    } else {
        let t = ax * ax;
        (ax + t / (1.0 + (1.0 + t).sqrt())).ln_1p()
    };
    r.copysign(x)
}

/// [`acosh_f64`] computed in float32.
pub fn acosh_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < 1.0 {
        return f32::NAN;
    }
    if x >= 2f32.powi(28) {
        if x.is_infinite() {
            return x;
        }
        x.ln() + std::f32::consts::LN_2
    } else if x > 2.0 {
        (2.0 * x - 1.0 / (x + (x * x - 1.0).sqrt())).ln()
    } else {
        let t = x - 1.0;
        (t + (2.0 * t + t * t).sqrt()).ln_1p()
    }
}

/// numpy's integer power (`npy_ipow`): exponentiation by squaring with wrapping; `0 ** 0 == 1`.
/// A negative exponent is an error in numpy ("Integers to negative integer powers are not
/// allowed"); kernels cannot raise, so the checker rejects constant negative exponents and a
/// negative exponent at run time gives 0.
pub fn int_pow(base: i128, exp: i128, to: DType) -> Scalar {
    if exp < 0 {
        return int_to(0, to);
    }
    let bits = to.size() as u32 * 8;
    let mask: u128 = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    let mut result: u128 = 1;
    let mut b = (base as u128) & mask;
    let mut e = exp as u128;
    while e > 0 {
        if e & 1 == 1 {
            result = result.wrapping_mul(b) & mask;
        }
        b = b.wrapping_mul(b) & mask;
        e >>= 1;
    }
    int_to(result as i128, to)
}

/// Pairwise summation exactly as numpy's `@TYPE@_pairwise_sum` (blocks of 8 partial sums below
/// 128 elements, recursive halving above, split points rounded down to a multiple of 8).
pub fn pairwise_sum<T>(v: &[T]) -> T
where
    T: Copy + std::ops::Add<Output = T> + NegZero,
{
    let n = v.len();
    if n < 8 {
        let mut res = T::NEG_ZERO;
        for &x in v {
            res = res + x;
        }
        res
    } else if n <= 128 {
        let mut r = [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]];
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] = r[j] + v[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &v[i..] {
            res = res + x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&v[..n2]) + pairwise_sum(&v[n2..])
    }
}

/// Float types with a negative zero (the identity of IEEE addition that keeps `-0.0`).
pub trait NegZero {
    /// `-0.0`.
    const NEG_ZERO: Self;
}

impl NegZero for f32 {
    const NEG_ZERO: f32 = -0.0;
}

impl NegZero for f64 {
    const NEG_ZERO: f64 = -0.0;
}

/// numpy's linear-interpolation quantile of `values` (`np.quantile(a, q)` with a Python float
/// `q` in [0, 1]), reordering `values` in place with a selection algorithm. `data_dtype` is the
/// dtype the values had before conversion to f64: numpy computes the difference of the two
/// neighbours in that dtype (wrapping for integers) before interpolating in float64. Returns NaN
/// for an empty slice or when any value is NaN (numpy's rule for the non-nan variants;
/// nan-variants drop NaNs before calling this).
pub fn quantile_f64(values: &mut [f64], q: f64, data_dtype: DType) -> f64 {
    let n = values.len();
    if n == 0 || values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let (prev, next, gamma) = neighbours(values, q, f64::total_cmp, f64::min);
    let diff = if matches!(data_dtype, DType::F32 | DType::F16) {
        // float32 data with a float64 result (a list of q is a float64 array): numpy takes
        // the difference of the float32 neighbours in float32.
        f64::from(next as f32 - prev as f32)
    } else if data_dtype.is_float() {
        next - prev
    } else {
        int_to(next as i128 - prev as i128, data_dtype).as_f64()
    };
    if gamma >= 0.5 {
        next - diff * (1.0 - gamma)
    } else {
        prev + diff * gamma
    }
}

/// The two order statistics around the virtual index `q * (n - 1)` and the interpolation weight.
fn neighbours<T: Copy>(
    values: &mut [T],
    q: f64,
    cmp: fn(&T, &T) -> std::cmp::Ordering,
    min: fn(T, T) -> T,
) -> (T, T, f64) {
    let n = values.len();
    let virtual_index = q * (n - 1) as f64;
    let prev_index = (virtual_index.floor().max(0.0) as usize).min(n - 1);
    let next_index = (prev_index + 1).min(n - 1);
    let gamma = virtual_index - prev_index as f64;
    let (_, prev, rest) = values.select_nth_unstable_by(prev_index, cmp);
    let prev = *prev;
    let next = if next_index == prev_index {
        prev
    } else {
        rest.iter().copied().fold(rest[0], min)
    };
    (prev, next, gamma)
}

/// [`quantile_f64`] for float32 data: numpy interpolates in float32, with the weight `t` (a
/// Python float) rounded to float32 and `1 - t` computed in float64 before rounding.
pub fn quantile_f32(values: &mut [f32], q: f64) -> f32 {
    let n = values.len();
    if n == 0 || values.iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    let (prev, next, gamma) = neighbours(values, q, f32::total_cmp, f32::min);
    let diff = next - prev;
    if gamma >= 0.5 {
        next - diff * ((1.0 - gamma) as f32)
    } else {
        prev + diff * (gamma as f32)
    }
}

/// numpy's median of float64 data: the middle element, or the mean of the two middle elements
/// (`(a + b) / 2`); NaN when empty or when any value is NaN.
pub fn median_f64(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 || values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let half = n / 2;
    let (lower, mid, _) = values.select_nth_unstable_by(half, f64::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        mid
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + mid) / 2.0
    }
}

/// [`median_f64`] computed in float32.
pub fn median_f32(values: &mut [f32]) -> f32 {
    let n = values.len();
    if n == 0 || values.iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    let half = n / 2;
    let (lower, mid, _) = values.select_nth_unstable_by(half, f32::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        mid
    } else {
        let below = lower.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (below + mid) / 2.0
    }
}

/// Rounds a float32 value to the nearest float16 value and returns it as float32: what numpy's
/// `np.float32(x).astype(np.float16).astype(np.float32)` gives.
///
/// Round to nearest, ties to even, with float16 subnormals (multiples of 2^-24), overflow to
/// infinity from 65520 up (halfway between 65504, the largest float16, and 2^16), infinities and
/// signed zeros kept and NaN kept as NaN. Kernels carry float16 values in float32 and round with
/// this where numpy converts a float16 value into another type (see the planner).
pub fn round_f16(x: f32) -> f32 {
    round_f16_f64(f64::from(x)) as f32
}

/// Rounds a float64 value to the nearest float16 value in one step, as numpy's float64 to
/// float16 cast does (rounding to float32 first could round twice), and returns it as float64.
/// The rules are those of [`round_f16`].
pub fn round_f16_f64(x: f64) -> f64 {
    const MIN_NORMAL: f64 = 6.103_515_625e-5; // 2^-14
    if x.is_nan() || x.is_infinite() {
        return x;
    }
    let a = x.abs();
    let rounded = if a >= 65520.0 {
        f64::INFINITY
    } else if a < MIN_NORMAL {
        // Subnormal float16: a multiple of 2^-24; both scalings are exact.
        (a * 16_777_216.0).round_ties_even() / 16_777_216.0
    } else {
        // Keep 10 of float64's 52 fraction bits, ties to even (a carry into the exponent is
        // the right result; below 65520 it cannot reach infinity).
        let bits = a.to_bits();
        let lsb = (bits >> 42) & 1;
        let half = (1u64 << 41) - 1;
        f64::from_bits((bits + half + lsb) & !((1u64 << 42) - 1))
    };
    rounded.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division_follows_python() {
        assert_eq!(floor_div_signed(7, -2, 16), -4);
        assert_eq!(floor_div_signed(-7, 2, 16), -4);
        assert_eq!(floor_div_signed(-32768, -1, 16), -32768);
        assert_eq!(floor_div_signed(5, 0, 16), 0);
        assert_eq!(mod_signed(7, -2), -1);
        assert_eq!(mod_signed(-7, 2), 1);
        assert_eq!(mod_signed(5, 0), 0);
        assert_eq!(divmod_f64(-7.0, 2.0), (-4.0, 1.0));
        assert_eq!(divmod_f64(7.0, -2.0), (-4.0, -1.0));
    }

    #[test]
    fn int_power_wraps() {
        assert_eq!(
            int_pow(3, 20, DType::I16),
            Scalar::I16(3i16.wrapping_pow(20))
        );
        assert_eq!(int_pow(0, 0, DType::U8), Scalar::U8(1));
        assert_eq!(int_pow(2, -1, DType::I32), Scalar::I32(0));
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // np.percentile(np.arange(10.0), 95) == 8.549999999999999 (t >= 0.5 branch).
        let mut v: Vec<f64> = (0..10).rev().map(f64::from).collect();
        assert_eq!(
            quantile_f64(&mut v, 95.0 / 100.0, DType::F64),
            8.549999999999999
        );
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(median_f64(&mut v), 2.5);
    }

    #[test]
    fn invalid_float_casts_follow_x86() {
        assert_eq!(Scalar::F64(300.5).cast(DType::I8), Scalar::I8(44));
        assert_eq!(
            Scalar::F64(f64::NAN).cast(DType::I64),
            Scalar::I64(i64::MIN)
        );
        assert_eq!(Scalar::F64(1e30).cast(DType::U64), Scalar::U64(0));
        assert_eq!(Scalar::F64(-1.5).cast(DType::U64), Scalar::U64(u64::MAX));
    }

    #[test]
    fn float16_rounding_follows_ieee_half_precision() {
        // 2049 is halfway between the float16 neighbours 2048 and 2050: ties to even (2048);
        // 2051 is halfway between 2050 and 2052: ties to even (2052).
        assert_eq!(round_f16(2049.0), 2048.0);
        assert_eq!(round_f16(2051.0), 2052.0);
        assert_eq!(round_f16(65504.0), 65504.0);
        assert_eq!(round_f16(65519.996), 65504.0);
        assert_eq!(round_f16(65520.0), f32::INFINITY);
        assert_eq!(round_f16(-65520.0), f32::NEG_INFINITY);
        // The smallest subnormal is 2^-24; half of it ties to even (0), a bit more rounds up.
        assert_eq!(round_f16(2f32.powi(-25)).to_bits(), 0);
        assert_eq!(round_f16(2f32.powi(-25) * 1.01), 2f32.powi(-24));
        assert_eq!(round_f16(-0.0).to_bits(), (-0.0f32).to_bits());
        assert!(round_f16(f32::NAN).is_nan());
        // float64 rounds once: 1 + 2^-11 + 2^-40 is just above a float16 midpoint, but rounds
        // to the midpoint (then to even, 1.0) if it goes through float32 first.
        let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        assert_eq!(round_f16_f64(x), 1.0 + 2f64.powi(-10));
        assert_eq!(round_f16(x as f32), 1.0);
    }
}
