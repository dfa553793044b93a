//! Rounding to float16 precision (`UnaryOp::RoundF16`) against numpy: the goldens written by
//! `scripts/gen/ufunc_goldens.py` (`f16_rounding.txt`: every float16 value, the midpoints between
//! neighbours and one ULP either side, subnormals, 65504/65520, infinities, NaN, random values,
//! as float32 and float64) are rounded by the scalar function, the reference interpreter and
//! compiled code, each compared bit for bit with numpy's `x.astype(np.float16)` read back (any
//! NaN matches any NaN).

use voxcalc_ir::scalar::{round_f16, round_f16_f64};
use voxcalc_ir::{interp, ByteOrder, InputBuf, KernelBuilder, RunArgs, UnaryOp};
use voxcalc_jit::{compile, CompileOptions};
use voxcalc_types::DType;

const GOLDENS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/goldens/ufunc_goldens/f16_rounding.txt"
);

/// (input bits, numpy's rounded bits) for one dtype.
fn goldens(dtype: &str) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(GOLDENS).unwrap_or_else(|e| {
        panic!(
            "{GOLDENS}: {e}; run `.venv/bin/python scripts/gen/ufunc_goldens.py` from the \
             repository root"
        )
    });
    let pairs: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            (it.next() == Some(dtype)).then(|| {
                let a = u64::from_str_radix(it.next().expect("input"), 16).expect("hex");
                let b = u64::from_str_radix(it.next().expect("output"), 16).expect("hex");
                (a, b)
            })
        })
        .collect();
    assert!(
        pairs.len() > 100_000,
        "only {} {dtype} goldens",
        pairs.len()
    );
    pairs
}

/// Rounds `values` (raw little-endian bytes of `dtype`) with a kernel `round_f16(load)`, compiled
/// and interpreted; returns both outputs.
fn run_kernel(dtype: DType, bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let n = (bytes.len() / dtype.size()) as u64;
    let mut b = KernelBuilder::new(vec![n]);
    let input = b.input(dtype, ByteOrder::Native);
    let view = b.view(input, 0, vec![1], vec![]);
    let x = b.load(view);
    let y = b.unary(UnaryOp::RoundF16, x);
    let kernel = b.finish(y).expect("a valid kernel");
    let inputs = [InputBuf { bytes, base: 0 }];
    let args = RunArgs {
        inputs: &inputs,
        uniforms: &[],
    };
    let compiled = compile(&kernel, CompileOptions::default()).expect("compiles");
    let jit = compiled.run_all(&args).expect("runs");
    let interp = interp::run_all(&kernel, &args).expect("interprets");
    (jit, interp)
}

fn same(ours: u64, numpy: u64, dtype: DType) -> bool {
    let nan = match dtype {
        DType::F32 => f32::from_bits(ours as u32).is_nan() && f32::from_bits(numpy as u32).is_nan(),
        _ => f64::from_bits(ours).is_nan() && f64::from_bits(numpy).is_nan(),
    };
    nan || ours == numpy
}

fn check(dtype: DType, name: &str) {
    let pairs = goldens(name);
    let size = dtype.size();
    let bytes: Vec<u8> = pairs
        .iter()
        .flat_map(|&(a, _)| a.to_le_bytes()[..size].to_vec())
        .collect();
    let (jit, interp) = run_kernel(dtype, &bytes);
    let mut failures = Vec::new();
    for (i, &(a, want)) in pairs.iter().enumerate() {
        let scalar = match dtype {
            DType::F32 => u64::from(round_f16(f32::from_bits(a as u32)).to_bits()),
            _ => round_f16_f64(f64::from_bits(a)).to_bits(),
        };
        let mut le = [0u8; 8];
        le[..size].copy_from_slice(&jit[i * size..(i + 1) * size]);
        let from_jit = u64::from_le_bytes(le);
        le[..size].copy_from_slice(&interp[i * size..(i + 1) * size]);
        let from_interp = u64::from_le_bytes(le);
        for (who, got) in [
            ("scalar", scalar),
            ("jit", from_jit),
            ("interp", from_interp),
        ] {
            if !same(got, want, dtype) && failures.len() < 20 {
                failures.push(format!("{who} {name} {a:x}: {got:x}, numpy {want:x}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn float32_rounds_to_float16_as_numpy() {
    check(DType::F32, "f32");
}

#[test]
fn float64_rounds_to_float16_in_one_step_as_numpy() {
    check(DType::F64, "f64");
}
