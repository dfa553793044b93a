//! Transcendental functions written as straight-line code (no branches, no table lookups), so
//! the JIT can emit the very same operations on SIMD vectors (`f32x4`, `f64x2`) and the
//! interpreter and the JIT give the same bits.
//!
//! Each function here is the specification of its vector form in the `voxcalc-jit` crate:
//! the same IEEE operations (plain multiply and add, no fused multiply-add) in the same order,
//! integer bit manipulations with wrapping semantics, and `select`s where a branch-free form
//! needs to pick between two results. Any change here must be mirrored there (the differential
//! tests compare both engines bit for bit).
//!
//! Algorithms: FreeBSD msun's `e_logf.c`, `e_log.c`, `e_expf.c` and `e_exp.c` (fdlibm), with their data-dependent
//! branches replaced by selections. Special values follow numpy: `log(±0) = -inf`,
//! `log(+inf) = +inf`, `log(NaN)` is NaN (the input quieted), `log(x < 0)` is numpy's default
//! NaN (the sign bit set, as x86 produces it).

/// `ln 2` split in a high part with trailing zero bits (so `k * LN2_HI` is exact for the
/// exponents `k` of float32) and the rest.
const LN2_HI_F32: f32 = f32::from_bits(0x3f31_7180);
const LN2_LO_F32: f32 = f32::from_bits(0x3717_f7d1);
/// `2^25`, which scales a float32 subnormal into the normal range.
const TWO25_F32: f32 = f32::from_bits(0x4c00_0000);
/// fdlibm's float32 minimax coefficients of `(log(1+s) - log(1-s)) / s` in `s^2`.
const LG1_F32: f32 = f32::from_bits(0x3f2a_aaaa);
const LG2_F32: f32 = f32::from_bits(0x3ecc_ce13);
const LG3_F32: f32 = f32::from_bits(0x3e91_e9ee);
const LG4_F32: f32 = f32::from_bits(0x3e78_9e26);
/// numpy's result for the logarithm of a negative number (x86's default NaN).
pub const NEG_NAN_F32: u32 = 0xffc0_0000;

/// The natural logarithm of a float32, within 1 ULP of the correctly rounded result (measured
/// over every float32 in the tests).
///
/// The steps, each mirrored by `voxcalc-jit`'s vector form:
/// 1. subnormals are scaled by `2^25` (`k` starts at -25 for them);
/// 2. `x = 2^k * m` with `m` in `[sqrt(2)/2, sqrt(2))`, `f = m - 1`, `s = f / (2 + f)`;
/// 3. `log(m) = f - hfsq + s * (hfsq + R)` or `f - s * (f - R)` (fdlibm's two forms, the first
///    for larger `f`), with `R` the polynomial in `s^2`, plus `k * ln 2` in two parts;
/// 4. special values replace the result last.
pub fn log_f32(x: f32) -> f32 {
    let bits = x.to_bits() as i32;
    let is_sub = bits < 0x0080_0000;
    let scaled = x * TWO25_F32;
    let xs = if is_sub { scaled } else { x };
    let k0: i32 = if is_sub { -25 } else { 0 };
    let ix = xs.to_bits() as i32;
    let k1 = k0.wrapping_add((ix >> 23).wrapping_sub(127));
    let mant = ix & 0x007f_ffff;
    let i = mant.wrapping_add(0x95f64 << 3) & 0x0080_0000;
    let m = f32::from_bits((mant | (i ^ 0x3f80_0000)) as u32);
    let k = k1.wrapping_add(i >> 23);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let dk = k as f32;
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2_F32 + w * LG4_F32);
    let t2 = z * (LG1_F32 + w * LG3_F32);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let large_f = (mant.wrapping_sub(0x6147a << 3) | (0x6b851i32 << 3).wrapping_sub(mant)) > 0;
    let a = dk * LN2_HI_F32 - ((hfsq - (s * (hfsq + r) + dk * LN2_LO_F32)) - f);
    let b = dk * LN2_HI_F32 - ((s * (f - r) - dk * LN2_LO_F32) - f);
    let res = if large_f { a } else { b };
    // Special values, in this order: NaN and +inf give x + x; negatives give NaN; zeros -inf.
    let res = if bits >= 0x7f80_0000 { x + x } else { res };
    let res = if bits < 0 {
        f32::from_bits(NEG_NAN_F32)
    } else {
        res
    };
    if bits & 0x7fff_ffff == 0 {
        f32::NEG_INFINITY
    } else {
        res
    }
}

const LN2_HI_F64: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO_F64: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const TWO54_F64: f64 = f64::from_bits(0x4350_0000_0000_0000);
const LG_F64: [f64; 7] = [
    f64::from_bits(0x3fe5_5555_5555_5593),
    f64::from_bits(0x3fd9_9999_9997_fa04),
    f64::from_bits(0x3fd2_4924_9422_9359),
    f64::from_bits(0x3fcc_71c5_1d8e_78af),
    f64::from_bits(0x3fc7_4664_96cb_03de),
    f64::from_bits(0x3fc3_9a09_d078_c69f),
    f64::from_bits(0x3fc2_f112_df3e_5244),
];
/// numpy's result for the logarithm of a negative number (x86's default NaN).
pub const NEG_NAN_F64: u64 = 0xfff8_0000_0000_0000;
/// `2^52 + 2^51`: a small integer `k` added to its bits (as integers) gives the float64
/// `2^52 + 2^51 + k`, from which subtracting this constant gives `k` exactly (the vector form's
/// integer-to-float64 conversion).
pub const INT_TO_F64_MAGIC: f64 = 6755399441055744.0;

/// The natural logarithm of a float64 (fdlibm's `e_log.c` without branches), with the special
/// values of [`log_f32`]. Within 1 ULP of the platform's `ln` in the tests.
///
/// The integer steps work on the high 32 bits of the value held in a 64-bit integer (the
/// vector form's `i64x2` lanes), sign-extended as fdlibm's `int32_t`.
pub fn log_f64(x: f64) -> f64 {
    let bits = x.to_bits() as i64;
    let hx0 = bits >> 32;
    let is_sub = hx0 < 0x0010_0000;
    let scaled = x * TWO54_F64;
    let xs = if is_sub { scaled } else { x };
    let k0: i64 = if is_sub { -54 } else { 0 };
    let xbits = xs.to_bits() as i64;
    let hx = xbits >> 32;
    let k1 = k0.wrapping_add((hx >> 20).wrapping_sub(1023));
    let mant = hx & 0x000f_ffff;
    let i = mant.wrapping_add(0x95f64) & 0x0010_0000;
    let high = mant | (i ^ 0x3ff0_0000);
    let m = f64::from_bits(((xbits & 0xffff_ffff) | (high << 32)) as u64);
    let k = k1.wrapping_add(i >> 20);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let dk =
        f64::from_bits(k.wrapping_add(INT_TO_F64_MAGIC.to_bits() as i64) as u64) - INT_TO_F64_MAGIC;
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG_F64[1] + w * (LG_F64[3] + w * LG_F64[5]));
    let t2 = z * (LG_F64[0] + w * (LG_F64[2] + w * (LG_F64[4] + w * LG_F64[6])));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let large_f = (mant.wrapping_sub(0x6147a) | 0x6b851i64.wrapping_sub(mant)) > 0;
    let a = dk * LN2_HI_F64 - ((hfsq - (s * (hfsq + r) + dk * LN2_LO_F64)) - f);
    let b = dk * LN2_HI_F64 - ((s * (f - r) - dk * LN2_LO_F64) - f);
    let res = if large_f { a } else { b };
    let res = if bits >= 0x7ff0_0000_0000_0000 {
        x + x
    } else {
        res
    };
    let res = if bits < 0 {
        f64::from_bits(NEG_NAN_F64)
    } else {
        res
    };
    if bits & 0x7fff_ffff_ffff_ffff == 0 {
        f64::NEG_INFINITY
    } else {
        res
    }
}

/// fdlibm's float32 `exp` constants: `ln 2` in two parts (`k * LN2_HI_EXP` is exact for the
/// `k` that occur), `1 / ln 2`, and the minimax coefficients of the remez polynomial.
const EXP_LN2_HI_F32: f32 = f32::from_bits(0x3f31_7200);
const EXP_LN2_LO_F32: f32 = f32::from_bits(0x35bf_be8e);
const INV_LN2_F32: f32 = f32::from_bits(0x3fb8_aa3b);
const EXP_P1_F32: f32 = f32::from_bits(0x3e2a_aa8f);
const EXP_P2_F32: f32 = f32::from_bits(0xbb35_5215);

/// `2^k` for `k` in the normal exponent range.
fn pow2_f32(k: i32) -> f32 {
    f32::from_bits((k.wrapping_add(127) << 23) as u32)
}

/// The exponential of a float32, within 1 ULP of the correctly rounded result (measured in the
/// tests), with numpy's special values: `exp(+inf) = +inf`, `exp(-inf) = 0`, NaN stays NaN,
/// overflow gives +inf and underflow 0 or a subnormal.
///
/// The steps, each mirrored by `voxcalc-jit`'s vector form:
/// 1. `x` is clamped to `[-110, 100]` (beyond which the result is 0 or inf anyway) by
///    comparisons, so NaN passes through;
/// 2. `k = rint(x / ln 2)`, `r = x - k ln 2` (in two parts, `hi - lo`);
/// 3. fdlibm's rational form `exp(r) = 1 - ((lo - r c / (2 - c)) - hi)` with
///    `c = r - r^2 (P1 + r^2 P2)`;
/// 4. scaling by `2^k` as two factors `2^(k >> 1)` and `2^(k - (k >> 1))`, so the first product
///    is exact and a subnormal result is rounded once;
/// 5. NaN gives `x + x`.
pub fn exp_f32(x: f32) -> f32 {
    let xc = if x > 100.0 { 100.0 } else { x };
    let xc = if xc < -110.0 { -110.0 } else { xc };
    let kf = (xc * INV_LN2_F32).round_ties_even();
    let hi = xc - kf * EXP_LN2_HI_F32;
    let lo = kf * EXP_LN2_LO_F32;
    let r = hi - lo;
    let t = r * r;
    let c = r - t * (EXP_P1_F32 + t * EXP_P2_F32);
    let y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    // `kf` is integral and within [-159, 145]: the conversion is exact.
    let k = kf as i32;
    let k1 = k >> 1;
    let k2 = k.wrapping_sub(k1);
    let res = y * pow2_f32(k1) * pow2_f32(k2);
    if x.is_nan() {
        x + x
    } else {
        res
    }
}

const EXP_LN2_HI_F64: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const EXP_LN2_LO_F64: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const INV_LN2_F64: f64 = f64::from_bits(0x3ff7_1547_652b_82fe);
/// fdlibm's float64 `exp` polynomial coefficients P1..P5.
const EXP_P_F64: [f64; 5] = [
    f64::from_bits(0x3fc5_5555_5555_553e),
    f64::from_bits(0xbf66_c16c_16be_bd93),
    f64::from_bits(0x3f11_566a_af25_de2c),
    f64::from_bits(0xbebb_bd41_c5d2_6bf1),
    f64::from_bits(0x3e66_3769_72be_a4d0),
];

/// `2^k` for `k` in the normal float64 exponent range.
fn pow2_f64(k: i64) -> f64 {
    f64::from_bits((k.wrapping_add(1023) << 52) as u64)
}

/// The exponential of a float64 (fdlibm's `e_exp.c` without branches, as [`exp_f32`]: the
/// argument clamped to `[-760, 720]` by comparisons, `k = rint(x / ln 2)`, the rational form,
/// and scaling by two powers of two so a subnormal result is rounded once). Within 1 ULP of
/// the platform's `exp` in the tests.
pub fn exp_f64(x: f64) -> f64 {
    let xc = if x > 720.0 { 720.0 } else { x };
    let xc = if xc < -760.0 { -760.0 } else { xc };
    let kf = (xc * INV_LN2_F64).round_ties_even();
    let hi = xc - kf * EXP_LN2_HI_F64;
    let lo = kf * EXP_LN2_LO_F64;
    let r = hi - lo;
    let t = r * r;
    let p = &EXP_P_F64;
    let c = r - t * (p[0] + t * (p[1] + t * (p[2] + t * (p[3] + t * p[4]))));
    let y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    // `kf` is integral and within [-1097, 1039]: exact through the magic constant, as the
    // vector form converts it.
    let k =
        ((kf + INT_TO_F64_MAGIC).to_bits() as i64).wrapping_sub(INT_TO_F64_MAGIC.to_bits() as i64);
    let k1 = k >> 1;
    let k2 = k.wrapping_sub(k1);
    let res = y * pow2_f64(k1) * pow2_f64(k2);
    if x.is_nan() {
        x + x
    } else {
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sampling steps over the bit patterns (1 checks every float32: run so once in release).
    const STEP_LOG: u32 = 61;
    const STEP_EXP: u32 = 101;

    /// ULP distance between a float32 result and the exact value (taken as a float64).
    fn ulp_err_f32(got: f32, exact: f64) -> f64 {
        let rounded = exact as f32;
        let ulp = (f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs()) as f64;
        ((got as f64) - exact).abs() / ulp
    }

    #[test]
    fn log_f32_special_values() {
        assert_eq!(log_f32(1.0).to_bits(), 0);
        assert_eq!(log_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(log_f32(-0.0), f32::NEG_INFINITY);
        assert_eq!(log_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(log_f32(-1.0).to_bits(), NEG_NAN_F32);
        assert_eq!(log_f32(f32::NEG_INFINITY).to_bits(), NEG_NAN_F32);
        assert!(log_f32(f32::NAN).is_nan());
        assert_eq!(log_f32(std::f32::consts::E), 1.0);
        let tiny = f32::from_bits(1);
        assert!(ulp_err_f32(log_f32(tiny), (tiny as f64).ln()) < 1.0);
    }

    #[test]
    fn exp_f32_special_values() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY).to_bits(), 0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(-104.0).to_bits(), 0);
        assert_eq!(exp_f32(1.0), std::f32::consts::E);
        assert_eq!(exp_f32(f32::from_bits(1)), 1.0);
    }

    /// Every 101st float32 bit pattern whose exponential is neither 0 nor inf, negative and
    /// positive (subnormal results included): under 1 ULP from the float64 exponential.
    #[test]
    fn exp_f32_within_one_ulp() {
        let mut worst = 0.0f64;
        for sign in [0u32, 0x8000_0000] {
            let mut bits = 0u32;
            while bits < 0x42d0_0000 {
                let x = f32::from_bits(bits | sign);
                let exact = (x as f64).exp();
                if exact < f32::MAX as f64 && exact > 1e-46 {
                    let got = exp_f32(x);
                    let err = if exact < f32::MIN_POSITIVE as f64 {
                        // Subnormal results: the spacing is that of the smallest subnormal.
                        ((got as f64) - exact).abs() / (f32::from_bits(1) as f64)
                    } else {
                        ulp_err_f32(got, exact)
                    };
                    worst = worst.max(err);
                }
                bits += STEP_EXP;
            }
        }
        eprintln!("exp_f32: worst error {worst} ULP");
        assert!(worst < 1.0, "worst error {worst} ULP");
    }

    #[test]
    fn log_f64_special_values() {
        assert_eq!(log_f64(1.0).to_bits(), 0);
        assert_eq!(log_f64(0.0), f64::NEG_INFINITY);
        assert_eq!(log_f64(-0.0), f64::NEG_INFINITY);
        assert_eq!(log_f64(f64::INFINITY), f64::INFINITY);
        assert_eq!(log_f64(-1.0).to_bits(), NEG_NAN_F64);
        assert_eq!(log_f64(f64::NEG_INFINITY).to_bits(), NEG_NAN_F64);
        assert!(log_f64(f64::NAN).is_nan());
        assert_eq!(log_f64(std::f64::consts::E), 1.0);
        assert_eq!(log_f64(2.0), std::f64::consts::LN_2);
        assert_eq!(log_f64(f64::from_bits(1)), (f64::from_bits(1)).ln());
    }

    /// A sweep of 20 million float64 bit patterns over the positive range (subnormals
    /// included): within 1 ULP of the platform's `ln` (glibc's, itself within 1 ULP of the
    /// exact result), and equal to it in most cases.
    #[test]
    fn log_f64_within_one_ulp_of_libm() {
        let (mut worst, mut differ) = (0u64, 0u64);
        let n = 20_000_000u64;
        let step = 0x7ff0_0000_0000_0000u64 / n;
        for j in 1..n {
            let x = f64::from_bits(j * step + (j & 0xfff));
            let (got, want) = (log_f64(x).to_bits(), x.ln().to_bits());
            if got != want {
                differ += 1;
                // Same sign (both negative or both positive results): a bit distance.
                worst = worst.max(got.abs_diff(want));
            }
        }
        eprintln!("log_f64: {differ} of {n} differ from libm, by at most {worst} ULP");
        assert!(worst <= 1, "{worst} ULP from libm");
    }

    #[test]
    fn exp_f64_special_values() {
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f64(-0.0), 1.0);
        assert_eq!(exp_f64(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp_f64(f64::NEG_INFINITY).to_bits(), 0);
        assert!(exp_f64(f64::NAN).is_nan());
        assert_eq!(exp_f64(710.0), f64::INFINITY);
        assert_eq!(exp_f64(-746.0).to_bits(), 0);
        // e itself is off by one ULP (an error of 0.67 ULP): fdlibm's accuracy, not correct
        // rounding.
        assert!(
            exp_f64(1.0)
                .to_bits()
                .abs_diff(std::f64::consts::E.to_bits())
                <= 1
        );
        assert_eq!(exp_f64(f64::from_bits(1)), 1.0);
        assert_eq!(exp_f64(-745.0), (-745f64).exp());
    }

    /// 20 million arguments spread over the range where the exponential is neither 0 nor
    /// inf (subnormal results included): within 1 ULP of the platform's `exp`.
    #[test]
    fn exp_f64_within_one_ulp_of_libm() {
        let (mut worst, mut differ) = (0u64, 0u64);
        let n = 20_000_000u64;
        for j in 0..n {
            // Alternate signs over a sweep of the bit patterns below 746 in magnitude.
            let bits = (j / 2) * (0x4087_5000_0000_0000 / (n / 2)) + (j & 0xfff);
            let x = f64::from_bits(bits | ((j & 1) << 63));
            let (got, want) = (exp_f64(x).to_bits(), x.exp().to_bits());
            if got != want {
                differ += 1;
                worst = worst.max(got.abs_diff(want));
            }
        }
        eprintln!("exp_f64: {differ} of {n} differ from libm, by at most {worst} ULP");
        assert!(worst <= 1, "{worst} ULP from libm");
    }

    /// Every 61st float32 bit pattern of the positive finite range (35 million values): the
    /// error against the float64 logarithm (itself within 1 ULP of float64, far below a float32
    /// ULP) stays under 1 float32 ULP.
    #[test]
    fn log_f32_within_one_ulp() {
        let mut worst = 0.0f64;
        let mut bits = 1u32;
        while bits < 0x7f80_0000 {
            let x = f32::from_bits(bits);
            worst = worst.max(ulp_err_f32(log_f32(x), (x as f64).ln()));
            bits += STEP_LOG;
        }
        eprintln!("log_f32: worst error {worst} ULP");
        assert!(worst < 1.0, "worst error {worst} ULP");
    }
}
