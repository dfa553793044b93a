//! Rust functions the generated code calls for operations Cranelift has no instruction for.
//!
//! Each one forwards to the same scalar function the reference interpreter uses
//! (`voxcalc_ir::scalar`), so a call gives the interpreter's result bit for bit.

use std::collections::HashMap;
use std::sync::OnceLock;

use voxcalc_ir::scalar::{self, MathFn};
use voxcalc_ir::Scalar;
use voxcalc_types::DType;

/// A helper: its symbol name, its address, its parameter and result types.
struct Helper {
    pub name: String,
    pub addr: *const u8,
    pub params: &'static [Abi],
    pub ret: Abi,
}

/// The value types helper signatures use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abi {
    F32,
    F64,
    I32,
    I64,
}

macro_rules! math_helpers {
    ($($fn:ident => $f32:ident, $f64:ident;)*) => {
        $(
            extern "C" fn $f32(x: f32) -> f32 {
                MathFn::$fn.eval_f32(x)
            }
            extern "C" fn $f64(x: f64) -> f64 {
                MathFn::$fn.eval_f64(x)
            }
        )*

        fn math_helper_addrs(f: MathFn) -> (*const u8, *const u8) {
            match f {
                $(MathFn::$fn => ($f32 as *const u8, $f64 as *const u8),)*
            }
        }
    };
}

math_helpers! {
    Exp => exp_f32, exp_f64;
    Exp2 => exp2_f32, exp2_f64;
    Expm1 => expm1_f32, expm1_f64;
    Log => log_f32, log_f64;
    Log2 => log2_f32, log2_f64;
    Log10 => log10_f32, log10_f64;
    Log1p => log1p_f32, log1p_f64;
    Sin => sin_f32, sin_f64;
    Cos => cos_f32, cos_f64;
    Tan => tan_f32, tan_f64;
    Arcsin => asin_f32, asin_f64;
    Arccos => acos_f32, acos_f64;
    Arctan => atan_f32, atan_f64;
    Sinh => sinh_f32, sinh_f64;
    Cosh => cosh_f32, cosh_f64;
    Tanh => tanh_f32, tanh_f64;
    Arcsinh => asinh_f32, asinh_f64;
    Arccosh => acosh_f32, acosh_f64;
    Arctanh => atanh_f32, atanh_f64;
    Cbrt => cbrt_f32, cbrt_f64;
}

extern "C" fn round_f16_f32(x: f32) -> f32 {
    scalar::round_f16(x)
}
extern "C" fn round_f16_f64(x: f64) -> f64 {
    scalar::round_f16_f64(x)
}
extern "C" fn pow_f32(a: f32, b: f32) -> f32 {
    a.powf(b)
}
extern "C" fn pow_f64(a: f64, b: f64) -> f64 {
    a.powf(b)
}
extern "C" fn floordiv_f32(a: f32, b: f32) -> f32 {
    scalar::floor_div_f32(a, b)
}
extern "C" fn floordiv_f64(a: f64, b: f64) -> f64 {
    scalar::floor_div_f64(a, b)
}
extern "C" fn mod_f32(a: f32, b: f32) -> f32 {
    scalar::mod_f32(a, b)
}
extern "C" fn mod_f64(a: f64, b: f64) -> f64 {
    scalar::mod_f64(a, b)
}
extern "C" fn fmod_f32(a: f32, b: f32) -> f32 {
    a % b
}
extern "C" fn fmod_f64(a: f64, b: f64) -> f64 {
    a % b
}
extern "C" fn atan2_f32(a: f32, b: f32) -> f32 {
    a.atan2(b)
}
extern "C" fn atan2_f64(a: f64, b: f64) -> f64 {
    a.atan2(b)
}
extern "C" fn hypot_f32(a: f32, b: f32) -> f32 {
    a.hypot(b)
}
extern "C" fn hypot_f64(a: f64, b: f64) -> f64 {
    a.hypot(b)
}
extern "C" fn logaddexp_f32(a: f32, b: f32) -> f32 {
    scalar::logaddexp_f32(a, b)
}
extern "C" fn logaddexp_f64(a: f64, b: f64) -> f64 {
    scalar::logaddexp_f64(a, b)
}

extern "C" fn floordiv_i64(a: i64, b: i64) -> i64 {
    scalar::floor_div_signed(a, b, 64)
}
extern "C" fn floordiv_u64(a: u64, b: u64) -> u64 {
    a.checked_div(b).unwrap_or(0)
}
extern "C" fn mod_i64(a: i64, b: i64) -> i64 {
    scalar::mod_signed(a, b)
}
extern "C" fn mod_u64(a: u64, b: u64) -> u64 {
    a.checked_rem(b).unwrap_or(0)
}
extern "C" fn fmod_i64(a: i64, b: i64) -> i64 {
    if b == 0 {
        0
    } else {
        a.wrapping_rem(b)
    }
}
extern "C" fn pow_i64(a: i64, b: i64) -> i64 {
    match scalar::int_pow(a as i128, b as i128, DType::I64) {
        Scalar::I64(v) => v,
        _ => 0,
    }
}
extern "C" fn pow_u64(a: u64, b: u64) -> u64 {
    match scalar::int_pow(a as i128, b as i128, DType::U64) {
        Scalar::U64(v) => v,
        _ => 0,
    }
}

/// Builds a mutable slice over `n` elements of kernel scratch memory.
///
/// Called only by the reduction helpers below, themselves called only by generated code, which
/// passes a pointer into the scratch buffer `CompiledKernel::run` allocated with
/// `Kernel::scratch_bytes()` bytes (8-byte aligned) and a count of elements it stored there.
fn scratch<'a, T>(ptr: *mut T, n: u64) -> &'a mut [T] {
    if n == 0 {
        return &mut [];
    }
    // SAFETY: `ptr` points into the scratch buffer of the running call, aligned for `T` (the
    // buffer is a Vec<u64> and each reduction's region starts at a multiple of 8 bytes), and the
    // generated code stored exactly `n` elements of `T` there (the region holds one 8-byte slot
    // per loop iteration, so `n` never exceeds it). Nothing else aliases it during the call.
    unsafe { std::slice::from_raw_parts_mut(ptr, n as usize) }
}

extern "C" fn median_f32(ptr: *mut f32, n: u64) -> f32 {
    scalar::median_f32(scratch(ptr, n))
}
extern "C" fn median_f64(ptr: *mut f64, n: u64) -> f64 {
    scalar::median_f64(scratch(ptr, n))
}
extern "C" fn quantile_f32(ptr: *mut f32, n: u64, q: f64) -> f32 {
    scalar::quantile_f32(scratch(ptr, n), q)
}
extern "C" fn quantile_f64(ptr: *mut f64, n: u64, q: f64, data_dtype: i32) -> f64 {
    let dtype = DType::ALL
        .get(data_dtype as usize)
        .copied()
        .unwrap_or(DType::F64);
    scalar::quantile_f64(scratch(ptr, n), q, dtype)
}
extern "C" fn pairwise_f32(ptr: *mut f32, n: u64) -> f32 {
    scalar::pairwise_sum(scratch(ptr, n))
}
extern "C" fn pairwise_f64(ptr: *mut f64, n: u64) -> f64 {
    scalar::pairwise_sum(scratch(ptr, n))
}

/// A helper's address (as an integer, so the table can be shared between threads) and
/// signature.
pub(crate) struct HelperSig {
    pub addr: usize,
    pub params: Vec<Abi>,
    pub ret: Abi,
}

/// Every helper by symbol name, built once per process.
pub(crate) fn table() -> &'static HashMap<String, HelperSig> {
    static TABLE: OnceLock<HashMap<String, HelperSig>> = OnceLock::new();
    TABLE.get_or_init(|| {
        all()
            .into_iter()
            .map(|h| {
                let sig = HelperSig {
                    addr: h.addr as usize,
                    params: h.params.to_vec(),
                    ret: h.ret,
                };
                (h.name, sig)
            })
            .collect()
    })
}

/// Every helper.
fn all() -> Vec<Helper> {
    use Abi::*;
    let mut v = Vec::new();
    let mut add = |name: &str, addr: *const u8, params: &'static [Abi], ret: Abi| {
        v.push(Helper {
            name: name.to_string(),
            addr,
            params,
            ret,
        })
    };
    for f in MathFn::ALL {
        let (a32, a64) = math_helper_addrs(f);
        add(&format!("vx_{}_f32", f.name()), a32, &[F32], F32);
        add(&format!("vx_{}_f64", f.name()), a64, &[F64], F64);
    }
    add("vx_round_f16_f32", round_f16_f32 as *const u8, &[F32], F32);
    add("vx_round_f16_f64", round_f16_f64 as *const u8, &[F64], F64);
    let bin32: [(&str, extern "C" fn(f32, f32) -> f32); 7] = [
        ("pow", pow_f32),
        ("floordiv", floordiv_f32),
        ("mod", mod_f32),
        ("fmod", fmod_f32),
        ("arctan2", atan2_f32),
        ("hypot", hypot_f32),
        ("logaddexp", logaddexp_f32),
    ];
    for (name, f) in bin32 {
        add(&format!("vx_{name}_f32"), f as *const u8, &[F32, F32], F32);
    }
    let bin64: [(&str, extern "C" fn(f64, f64) -> f64); 7] = [
        ("pow", pow_f64),
        ("floordiv", floordiv_f64),
        ("mod", mod_f64),
        ("fmod", fmod_f64),
        ("arctan2", atan2_f64),
        ("hypot", hypot_f64),
        ("logaddexp", logaddexp_f64),
    ];
    for (name, f) in bin64 {
        add(&format!("vx_{name}_f64"), f as *const u8, &[F64, F64], F64);
    }
    add(
        "vx_floordiv_i64",
        floordiv_i64 as *const u8,
        &[I64, I64],
        I64,
    );
    add(
        "vx_floordiv_u64",
        floordiv_u64 as *const u8,
        &[I64, I64],
        I64,
    );
    add("vx_mod_i64", mod_i64 as *const u8, &[I64, I64], I64);
    add("vx_mod_u64", mod_u64 as *const u8, &[I64, I64], I64);
    add("vx_fmod_i64", fmod_i64 as *const u8, &[I64, I64], I64);
    add("vx_fmod_u64", mod_u64 as *const u8, &[I64, I64], I64);
    add("vx_pow_i64", pow_i64 as *const u8, &[I64, I64], I64);
    add("vx_pow_u64", pow_u64 as *const u8, &[I64, I64], I64);
    add("vx_median_f32", median_f32 as *const u8, &[I64, I64], F32);
    add("vx_median_f64", median_f64 as *const u8, &[I64, I64], F64);
    add(
        "vx_quantile_f32",
        quantile_f32 as *const u8,
        &[I64, I64, F64],
        F32,
    );
    add(
        "vx_quantile_f64",
        quantile_f64 as *const u8,
        &[I64, I64, F64, I32],
        F64,
    );
    add(
        "vx_pairwise_f32",
        pairwise_f32 as *const u8,
        &[I64, I64],
        F32,
    );
    add(
        "vx_pairwise_f64",
        pairwise_f64 as *const u8,
        &[I64, I64],
        F64,
    );
    v
}
