//! Every function and operator against numpy: the goldens written by
//! `scripts/gen/ufunc_goldens.py` (special values over every dtype) are evaluated through the
//! whole compiler (parse, check, plan, JIT) and the reference interpreter, then compared with
//! numpy's results: bit for bit where numpy's operation is IEEE-exact or integer, within the ULP
//! bounds of [`ulp_bound`] for transcendental functions. NaN payloads are not compared (numpy
//! does not specify them); NaN positions are.

use std::collections::BTreeMap;

use voxcalc_check::Env;
use voxcalc_ir::plan::{execute_interpreted, plan, ExecuteError, ImageLayout};
use voxcalc_ir::{ByteOrder, InputBuf};
use voxcalc_jit::{compile_plan, CompileOptions};
use voxcalc_types::DType;

const GOLDENS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/goldens/ufunc_goldens/cases.txt"
);

/// The largest distance, in units in the last place, allowed between voxcalc and numpy for a
/// case, by function name, result dtype and input dtype. Everything not listed must be
/// bit-exact.
///
/// voxcalc calls the platform libm (glibc) in the result dtype, except for float32 `log` and
/// `exp` and float64 `log`, which are its own branch-free versions (`voxcalc_ir::vmath`, within
/// 1 ULP of the exact result, also run on SIMD vectors); numpy 2 uses its own SIMD
/// implementations for some float32 functions (exp, log, sin, cos ...) and libm for the rest.
/// Quantiles of int64/uint64 data beyond 2^53 convert the neighbours to float64 before
/// interpolating (numpy keeps them as integers until the last addition): 1 ULP.
fn ulp_bound(name: &str, dtype: DType, input: DType) -> u64 {
    let quantile = [
        "percentile",
        "percentile_axis",
        "quantile",
        "nanpercentile",
        "percentile_list",
    ];
    if quantile.contains(&name) && matches!(input, DType::I64 | DType::U64) {
        return 1;
    }
    let transcendental = [
        "cbrt",
        "exp",
        "exp2",
        "expm1",
        "log",
        "log2",
        "log10",
        "log1p",
        "sin",
        "cos",
        "tan",
        "arcsin",
        "arccos",
        "arctan",
        "sinh",
        "cosh",
        "tanh",
        "arcsinh",
        "arccosh",
        "arctanh",
        "arctan2",
        "hypot",
        "logaddexp",
        "logaddexp2",
        "power",
        "float_power",
        "a_**_b",
        "float16_mixed",
    ];
    if transcendental.contains(&name) {
        match dtype {
            DType::F32 => 4,
            _ => 2,
        }
    } else {
        0
    }
}

struct Image {
    name: String,
    dtype: DType,
    dims: Vec<usize>,
    bytes: Vec<u8>,
}

struct Case {
    name: String,
    formula: String,
    images: Vec<Image>,
    /// numpy's result (dtype, dims, bytes), or None when numpy raised.
    result: Option<(String, Vec<usize>, Vec<u8>)>,
}

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn dims(s: &str) -> Vec<usize> {
    if s == "-" {
        Vec::new()
    } else {
        s.split(',').map(|d| d.parse().expect("dim")).collect()
    }
}

fn load_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(GOLDENS).unwrap_or_else(|e| {
        panic!(
            "{GOLDENS}: {e}; run `.venv/bin/python scripts/gen/ufunc_goldens.py` from the \
             repository root first (bash scripts/test does)"
        )
    });
    let mut cases = Vec::new();
    let mut cur: Option<Case> = None;
    for line in text.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "case" => {
                let (name, formula) = rest.split_once(' ').expect("case name and formula");
                cur = Some(Case {
                    name: name.to_string(),
                    formula: formula.to_string(),
                    images: Vec::new(),
                    result: None,
                });
            }
            "image" => {
                let f: Vec<&str> = rest.split(' ').collect();
                cur.as_mut().unwrap().images.push(Image {
                    name: f[0].to_string(),
                    dtype: DType::from_name(f[1]).expect("dtype"),
                    dims: dims(f[2]),
                    bytes: hex(f[3]),
                });
            }
            "result" => {
                let f: Vec<&str> = rest.split(' ').collect();
                cur.as_mut().unwrap().result = Some((f[0].to_string(), dims(f[1]), hex(f[2])));
            }
            "error" => {}
            "end" => cases.push(cur.take().expect("a case before end")),
            _ => panic!("unexpected golden line {line:?}"),
        }
    }
    cases
}

/// Maps float bits to integers whose order is the floats' order (for ULP distances).
fn ordered(bits: u64, dtype: DType) -> i128 {
    match dtype {
        DType::F32 => {
            let b = bits as u32 as i32;
            (if b < 0 { i32::MIN - b } else { b }) as i128
        }
        _ => {
            let b = bits as i64;
            (if b < 0 { i64::MIN - b } else { b }) as i128
        }
    }
}

fn element(bytes: &[u8], i: usize, size: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(&bytes[i * size..(i + 1) * size]);
    u64::from_le_bytes(buf)
}

fn is_nan(bits: u64, dtype: DType) -> bool {
    match dtype {
        DType::F32 => f32::from_bits(bits as u32).is_nan(),
        DType::F64 => f64::from_bits(bits).is_nan(),
        _ => false,
    }
}

/// Largest ULP distance between two outputs of `dtype` (u64::MAX when NaN positions differ
/// or integers differ).
fn distance(dtype: DType, ours: &[u8], numpy: &[u8]) -> u64 {
    let size = dtype.size();
    let n = numpy.len() / size;
    let mut worst = 0u64;
    for i in 0..n {
        let (a, b) = (element(ours, i, size), element(numpy, i, size));
        if a == b {
            continue;
        }
        if !dtype.is_float() {
            return u64::MAX;
        }
        match (is_nan(a, dtype), is_nan(b, dtype)) {
            (true, true) => continue,
            (false, false) => {}
            _ => return u64::MAX,
        }
        let d = (ordered(a, dtype) - ordered(b, dtype)).unsigned_abs();
        worst = worst.max(d.min(u64::MAX as u128) as u64);
    }
    worst
}

#[test]
fn every_function_matches_numpy() {
    let cases = load_cases();
    assert!(cases.len() > 1000, "only {} golden cases", cases.len());
    let mut failures = Vec::new();
    let mut unsupported = Vec::new();
    let mut compared = 0usize;
    // Worst ULP distance per (function, dtype) among the transcendental functions.
    let mut ulps: BTreeMap<(String, String), u64> = BTreeMap::new();
    for case in &cases {
        let parsed = voxcalc_syntax::parse(&case.formula);
        let mut env = Env::new();
        for img in &case.images {
            env.bind(img.name.clone(), img.dtype, img.dims.clone());
        }
        let checked = voxcalc_check::check(&parsed.expr, &env);
        let (tree, numpy) = match (checked, &case.result) {
            (Err(_), None) => continue, // both reject
            (Err(e), Some(_)) => {
                unsupported.push(format!("{}: check: {:?}", case.formula, e[0].kind));
                continue;
            }
            (Ok(t), None) => {
                // numpy raised while computing: a run-time check must fail in both engines.
                if !raises_at_run_time(&t, case) {
                    failures.push(format!(
                        "{}: numpy rejects it, voxcalc accepts it",
                        case.formula
                    ));
                }
                compared += 1;
                continue;
            }
            (Ok(t), Some(r)) => (t, r),
        };
        let layouts: Vec<ImageLayout> = case
            .images
            .iter()
            .map(|i| ImageLayout::fortran(&i.dims, ByteOrder::Native))
            .collect();
        let p = match plan(&tree, &layouts) {
            Ok(p) => p,
            Err(e) => {
                unsupported.push(format!("{}: {e}", case.formula));
                continue;
            }
        };
        let bufs: Vec<InputBuf> = case
            .images
            .iter()
            .map(|i| InputBuf {
                bytes: &i.bytes,
                base: 0,
            })
            .collect();
        let compiled = compile_plan(&p, CompileOptions::default()).expect("plans compile");
        let ours = compiled.execute(&bufs).expect("checked run");
        let interp = execute_interpreted(&p, &bufs).expect("checked run");
        let dtype = p.output().dtype();
        if distance(dtype, &ours, &interp) != 0 {
            failures.push(format!(
                "{}: JIT differs from the interpreter",
                case.formula
            ));
            continue;
        }
        let (np_dtype, np_dims, np_bytes) = numpy;
        if p.output().shape != *np_dims {
            failures.push(format!(
                "{}: shape {:?}, numpy {:?}",
                case.formula,
                p.output().shape,
                np_dims
            ));
            continue;
        }
        if np_dtype == "float16" && case.name == "astype_float16" {
            // An explicit cast to float16, written as float32: the float16 value exactly.
            let exact = ours.chunks(4).enumerate().all(|(i, c)| {
                let o = f32::from_le_bytes(c.try_into().unwrap());
                let n = f16_to_f32(element(np_bytes, i, 2) as u16);
                (o.is_nan() && n.is_nan()) || o.to_bits() == n.to_bits()
            });
            if !exact {
                failures.push(format!("{}: not numpy's float16 values", case.formula));
            }
            compared += 1;
            continue;
        }
        if np_dtype == "float16" {
            // Deliberate deviation: float16 results are computed as float32. Check the values
            // agree within float16 precision.
            let ours_f32: Vec<f32> = ours
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            for (i, o) in ours_f32.iter().enumerate() {
                let h = element(np_bytes, i, 2) as u16;
                let n = f16_to_f32(h);
                let ok = (o.is_nan() && n.is_nan())
                    || o == &n
                    || ((o - n).abs() <= n.abs() * 1e-3 + 1e-4);
                if !ok {
                    failures.push(format!("{}: {o} vs numpy float16 {n}", case.formula));
                    break;
                }
            }
            compared += 1;
            continue;
        }
        if dtype.name() != np_dtype {
            failures.push(format!("{}: dtype {dtype}, numpy {np_dtype}", case.formula));
            continue;
        }
        let d = distance(dtype, &ours, np_bytes);
        let bound = ulp_bound(&case.name, dtype, case.images[0].dtype);
        if bound > 0 {
            let e = ulps
                .entry((case.name.clone(), dtype.to_string()))
                .or_default();
            *e = (*e).max(d);
        }
        if d > bound {
            failures.push(format!(
                "{} ({}): {} ULP from numpy (bound {bound})",
                case.formula,
                case.images[0].dtype,
                if d == u64::MAX {
                    "NaN/integer mismatch".to_string()
                } else {
                    d.to_string()
                }
            ));
        }
        compared += 1;
    }
    eprintln!(
        "compared {compared} cases with numpy; {} unsupported",
        unsupported.len()
    );
    for ((name, dtype), d) in &ulps {
        eprintln!("  max ULP {name:>12} {dtype}: {d}");
    }
    for u in &unsupported {
        eprintln!("  unsupported: {u}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from numpy:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// True when the compiled plan and the interpreter both stop with a failed run-time check.
fn raises_at_run_time(tree: &voxcalc_check::tir::Tree, case: &Case) -> bool {
    let layouts: Vec<ImageLayout> = case
        .images
        .iter()
        .map(|i| ImageLayout::fortran(&i.dims, ByteOrder::Native))
        .collect();
    let Ok(p) = plan(tree, &layouts) else {
        return false;
    };
    let bufs: Vec<InputBuf> = case
        .images
        .iter()
        .map(|i| InputBuf {
            bytes: &i.bytes,
            base: 0,
        })
        .collect();
    let compiled = compile_plan(&p, CompileOptions::default()).expect("plans compile");
    let failed = |r: Result<Vec<u8>, ExecuteError>| matches!(r, Err(ExecuteError::Check(_)));
    failed(compiled.execute(&bufs)) && failed(execute_interpreted(&p, &bufs))
}

/// Decodes an IEEE half-precision value.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}
