//! The vector forms of the float32 and float64 logarithm and exponential give the bits of `voxcalc_ir::vmath` (the interpreter's functions) for every special value and for
//! a sweep of bit patterns over the whole range, in whole vectors and in the scalar row tail.

use voxcalc_ir::vmath::{exp_f32, exp_f64, log_f32, log_f64};
use voxcalc_ir::{ByteOrder, InputBuf, KernelBuilder, MathFn, RunArgs, UnaryOp};
use voxcalc_jit::{compile, CompileOptions};
use voxcalc_types::DType;

/// Special values, then every 4099th bit pattern (both signs), then three extra values so the
/// count is not a multiple of the vector width (the last ones run through the scalar tail).
fn inputs() -> Vec<f32> {
    let mut xs = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::MAX,
        f32::MIN,
        88.72168,
        88.72284,
        -103.97208,
        -87.33655,
        std::f32::consts::E,
        0.5,
        2.0,
    ];
    let mut bits = 0u64;
    while bits < 1 << 32 {
        xs.push(f32::from_bits(bits as u32));
        bits += 4099;
    }
    xs.extend([1.5, 3.0, 1e-3]);
    if xs.len().is_multiple_of(4) {
        xs.push(7.0);
    }
    xs
}

fn check(f: MathFn, reference: fn(f32) -> f32) {
    let xs = inputs();
    let mut b = KernelBuilder::new(vec![xs.len() as u64]);
    let input = b.input(DType::F32, ByteOrder::Native);
    let view = b.view(input, 0, vec![1], vec![]);
    let x = b.load(view);
    let y = b.unary(UnaryOp::Math(f), x);
    let kernel = b.finish(y).expect("a valid kernel");
    let compiled = compile(&kernel, CompileOptions { keep_clif: true }).expect("compiles");
    assert!(
        compiled.clif().unwrap_or_default().contains("f32x4"),
        "{f:?} must take the vector path"
    );
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let out = compiled
        .run_all(&RunArgs {
            inputs: &inputs,
            uniforms: &[],
        })
        .expect("runs");
    for (i, (x, got)) in xs.iter().zip(out.chunks_exact(4)).enumerate() {
        let got = u32::from_le_bytes(got.try_into().expect("4 bytes"));
        let want = reference(*x).to_bits();
        assert_eq!(
            got, want,
            "{f:?}({x:e}) (element {i}): JIT {got:#010x}, interpreter {want:#010x}"
        );
    }
}

#[test]
fn vector_log_equals_the_interpreter() {
    check(MathFn::Log, log_f32);
}

#[test]
fn vector_exp_equals_the_interpreter() {
    check(MathFn::Exp, exp_f32);
}

#[test]
fn vector_log_f64_equals_the_interpreter() {
    check_f64(MathFn::Log, log_f64);
}

#[test]
fn vector_exp_f64_equals_the_interpreter() {
    check_f64(MathFn::Exp, exp_f64);
}

fn check_f64(f: MathFn, reference: fn(f64) -> f64) {
    let mut xs: Vec<f64> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::from_bits(0x000f_ffff_ffff_ffff),
        f64::MAX,
        std::f64::consts::E,
        1.0 + f64::EPSILON,
        1.0 - f64::EPSILON / 2.0,
        709.782712893384,
        709.7827128933841,
        -745.1332191019411,
        -745.1332191019412,
        -708.3964185322641,
    ];
    let mut bits = 0u64;
    while let Some(next) = bits.checked_add(0x0000_4000_0000_0123) {
        xs.push(f64::from_bits(bits));
        bits = next;
    }
    if xs.len().is_multiple_of(2) {
        xs.push(3.0);
    }
    let mut b = KernelBuilder::new(vec![xs.len() as u64]);
    let input = b.input(DType::F64, ByteOrder::Native);
    let view = b.view(input, 0, vec![1], vec![]);
    let x = b.load(view);
    let y = b.unary(UnaryOp::Math(f), x);
    let kernel = b.finish(y).expect("a valid kernel");
    let compiled = compile(&kernel, CompileOptions { keep_clif: true }).expect("compiles");
    assert!(
        compiled.clif().unwrap_or_default().contains("f64x2"),
        "{f:?} must take the vector path"
    );
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let out = compiled
        .run_all(&RunArgs {
            inputs: &inputs,
            uniforms: &[],
        })
        .expect("runs");
    for (i, (x, got)) in xs.iter().zip(out.chunks_exact(8)).enumerate() {
        let got = u64::from_le_bytes(got.try_into().expect("8 bytes"));
        let want = reference(*x).to_bits();
        assert_eq!(
            got, want,
            "{f:?}({x:e}) (element {i}): JIT {got:#018x}, interpreter {want:#018x}"
        );
    }
}
