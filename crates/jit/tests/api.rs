//! The safe API refuses what it cannot run, and frees compiled code.

use voxcalc_ir::kernel::{Inst, InstKind, Kernel};
use voxcalc_ir::{BinaryOp, ByteOrder, InputBuf, KernelBuilder, RunArgs, Scalar, ValueId};
use voxcalc_jit::{compile, CompileOptions};
use voxcalc_types::DType;

fn add_kernel() -> Kernel {
    let mut b = KernelBuilder::new(vec![8]);
    let input = b.input(DType::F32, ByteOrder::Native);
    let view = b.view(input, 0, vec![1], vec![]);
    let x = b.load(view);
    let two = b.constant(Scalar::F32(2.0));
    let y = b.binary(BinaryOp::Mul, x, two);
    b.finish(y).unwrap()
}

#[test]
fn an_ill_typed_kernel_is_an_error() {
    let mut k = add_kernel();
    // Make the multiplication claim an int16 result.
    let last = k.output;
    k.insts[last.index()] = Inst {
        dtype: DType::I16,
        kind: InstKind::Binary(BinaryOp::Mul, ValueId(0), ValueId(1)),
    };
    let err = compile(&k, CompileOptions::default()).unwrap_err();
    assert!(err.to_string().contains("wrong result dtype"), "{err}");
}

#[test]
fn short_buffers_and_bad_ranges_are_refused() {
    let c = compile(&add_kernel(), CompileOptions::default()).unwrap();
    let bytes = vec![0u8; 31]; // 8 float32 need 32 bytes
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let args = RunArgs {
        inputs: &inputs,
        uniforms: &[],
    };
    let mut out = vec![0u8; 32];
    assert!(c.run(&args, &mut out, 0, 8).is_err());
    let bytes = vec![0u8; 32];
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 1,
    }]; // misaligned and one byte short
    let args = RunArgs {
        inputs: &inputs,
        uniforms: &[],
    };
    assert!(c.run(&args, &mut out, 0, 8).is_err());
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let args = RunArgs {
        inputs: &inputs,
        uniforms: &[],
    };
    assert!(c.run(&args, &mut out, 0, 9).is_err());
    assert!(c.run(&args, &mut out[..8], 0, 8).is_err());
    assert!(c.run(&args, &mut out, 0, 8).is_ok());
}

#[test]
fn misaligned_input_is_read_correctly() {
    let c = compile(&add_kernel(), CompileOptions::default()).unwrap();
    let mut bytes = vec![0u8; 3];
    for i in 0..8 {
        bytes.extend((i as f32 + 0.5).to_le_bytes());
    }
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 3,
    }];
    let out = c
        .run_all(&RunArgs {
            inputs: &inputs,
            uniforms: &[],
        })
        .unwrap();
    let got: Vec<f32> = out
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(
        got,
        (0..8).map(|i| (i as f32 + 0.5) * 2.0).collect::<Vec<_>>()
    );
}

fn rss_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4
}

#[test]
fn dropping_a_kernel_frees_its_code() {
    let k = add_kernel();
    for _ in 0..200 {
        drop(compile(&k, CompileOptions::default()).unwrap());
    }
    let before = rss_kb();
    for _ in 0..3000 {
        drop(compile(&k, CompileOptions::default()).unwrap());
    }
    let grown = rss_kb().saturating_sub(before);
    // Leaking each module's code and data pages would grow by at least 3000 * 8 KiB.
    assert!(grown < 8 * 1024, "resident memory grew by {grown} KiB");
}

#[test]
fn scaled_swapped_images_compile_to_the_interpreters_values() {
    use voxcalc_check::Env;
    use voxcalc_ir::plan::{execute_interpreted, plan, ImageLayout};
    let parsed = voxcalc_syntax::parse("np.mean(img, axis=-1) - img[..., 0]");
    let mut env = Env::new();
    env.bind("img", DType::F64, vec![5, 3]);
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("checks");
    let layout = ImageLayout::fortran(&[5, 3], ByteOrder::Swapped).scaled(DType::U16, 0.37, 12.5);
    let p = plan(&tree, &[layout]).expect("plans");
    let bytes: Vec<u8> = (0..15u16).flat_map(|v| (v * 4099).to_be_bytes()).collect();
    let images = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let want = execute_interpreted(&p, &images).unwrap();
    let got = voxcalc_jit::compile_plan(&p, CompileOptions::default())
        .unwrap()
        .execute(&images)
        .unwrap();
    assert_eq!(got, want);
}
