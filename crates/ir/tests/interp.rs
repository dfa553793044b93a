//! Hand-written kernels evaluated by the reference interpreter, with numpy's results.

use voxcalc_ir::interp::run_all;
use voxcalc_ir::opt::{optimize, OptOptions};
use voxcalc_ir::{
    BinaryOp, ByteOrder, InputBuf, KernelBuilder, ReduceOp, RunArgs, Scalar, SumOrder, UnaryOp,
};
use voxcalc_types::DType;

fn bytes_i16(v: &[i16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32s(out: &[u8]) -> Vec<f32> {
    out.chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn int16_addition_wraps_and_floor_division_by_zero_gives_zero() {
    // np.array([32767, -7, 5], np.int16) + np.int16(1) -> [-32768, -6, 6]
    // np.array([32767, -7, 5], np.int16) // np.array([2, 2, 0], np.int16) -> [16383, -4, 0]
    let mut b = KernelBuilder::new(vec![3]);
    let a = b.input(DType::I16, ByteOrder::Native);
    let d = b.input(DType::I16, ByteOrder::Swapped);
    let va = b.view(a, 0, vec![1], vec![]);
    let vd = b.view(d, 0, vec![1], vec![]);
    let x = b.load(va);
    let y = b.load(vd);
    let one = b.constant(Scalar::I16(1));
    let sum = b.binary(BinaryOp::Add, x, one);
    let q = b.binary(BinaryOp::FloorDiv, x, y);
    let both = b.binary(BinaryOp::Sub, sum, q);
    let k = b.finish(both).unwrap();
    let xa = bytes_i16(&[32767, -7, 5]);
    let yd: Vec<u8> = [2i16, 2, 0].iter().flat_map(|v| v.to_be_bytes()).collect();
    let inputs = [
        InputBuf {
            bytes: &xa,
            base: 0,
        },
        InputBuf {
            bytes: &yd,
            base: 0,
        },
    ];
    let out = run_all(
        &k,
        &RunArgs {
            inputs: &inputs,
            uniforms: &[],
        },
    )
    .unwrap();
    let got: Vec<i16> = out
        .chunks(2)
        .map(|c| i16::from_le_bytes(c.try_into().unwrap()))
        .collect();
    // [-32768 - 16383, -6 - -4, 6 - 0] with int16 wrapping.
    assert_eq!(got, vec![(-32768i16).wrapping_sub(16383), -2, 6]);
}

#[test]
fn time_mean_of_fortran_ordered_image_sums_sequentially() {
    // A 2x1x1x3 float32 image in Fortran order: voxel v's time series is at v + 2 * t.
    let data: Vec<f32> = vec![1e8, 1.0, 1.0, 2.0, -1e8, 3.0];
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut b = KernelBuilder::new(vec![2]);
    let img = b.input(DType::F32, ByteOrder::Native);
    let t = b.new_loop(3);
    let view = b.view(img, 0, vec![1], vec![(t, 2)]);
    let sum = b.reduce(ReduceOp::Sum(SumOrder::Sequential), vec![t], |b| {
        (b.load(view), None)
    });
    let n = b.constant(Scalar::F32(3.0));
    let mean = b.binary(BinaryOp::Div, sum, n);
    let k = b.finish(mean).unwrap();
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let out = run_all(
        &k,
        &RunArgs {
            inputs: &inputs,
            uniforms: &[],
        },
    )
    .unwrap();
    // numpy: np.mean(np.asfortranarray(a), axis=-1) -> [(1e8 + 1) - 1e8 = 0, 2]; float32.
    assert_eq!(f32s(&out), vec![0.0, 2.0]);
}

#[test]
fn masked_mean_counts_only_selected_voxels() {
    let data: Vec<f32> = vec![1.0, f32::NAN, 3.0, 4.0];
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut b = KernelBuilder::new(vec![]);
    let img = b.input(DType::F32, ByteOrder::Native);
    let l = b.new_loop(4);
    let view = b.view(img, 0, vec![], vec![(l, 1)]);
    let total = b.reduce(ReduceOp::Sum(SumOrder::Pairwise), vec![l], |b| {
        let x = b.load(view);
        let nan = b.unary(UnaryOp::IsNan, x);
        let keep = b.unary(UnaryOp::Not, nan);
        (x, Some(keep))
    });
    let count = b.reduce(ReduceOp::Count, vec![l], |b| {
        let x = b.load(view);
        let nan = b.unary(UnaryOp::IsNan, x);
        let keep = b.unary(UnaryOp::Not, nan);
        (x, Some(keep))
    });
    let count = b.cast(count, DType::F32);
    let mean = b.binary(BinaryOp::Div, total, count);
    let k = b.finish(mean).unwrap();
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let args = RunArgs {
        inputs: &inputs,
        uniforms: &[],
    };
    // np.nanmean([1, nan, 3, 4]) == 8 / 3 in float32.
    assert_eq!(f32s(&run_all(&k, &args).unwrap()), vec![8.0f32 / 3.0]);
    let opt = optimize(&k, OptOptions::default());
    assert_eq!(f32s(&run_all(&opt, &args).unwrap()), vec![8.0f32 / 3.0]);
    // The two reductions differ (sum and count), so both stay, each with its own body.
    insta::assert_snapshot!(opt.to_string());
}

#[test]
fn cse_shares_identical_reductions_and_folding_evaluates_constants() {
    let mut b = KernelBuilder::new(vec![2]);
    let img = b.input(DType::I16, ByteOrder::Native);
    let t = b.new_loop(3);
    let view = b.view(img, 0, vec![1], vec![(t, 2)]);
    let mean = |b: &mut KernelBuilder| {
        let s = b.reduce(ReduceOp::Sum(SumOrder::Sequential), vec![t], |b| {
            let x = b.load(view);
            (b.cast(x, DType::F64), None)
        });
        let three = b.constant(Scalar::I64(3));
        let n = b.cast(three, DType::F64);
        b.binary(BinaryOp::Div, s, n)
    };
    let m1 = mean(&mut b);
    let m2 = mean(&mut b);
    let r = b.binary(BinaryOp::Sub, m1, m2);
    let k = b.finish(r).unwrap();
    let opt = optimize(&k, OptOptions::default());
    opt.validate().unwrap();
    insta::assert_snapshot!(opt.to_string());
}

#[test]
fn out_of_bounds_views_are_refused() {
    let mut b = KernelBuilder::new(vec![4]);
    let img = b.input(DType::F64, ByteOrder::Native);
    let view = b.view(img, 1, vec![1], vec![]);
    let x = b.load(view);
    let k = b.finish(x).unwrap();
    let bytes = vec![0u8; 32];
    let inputs = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let err = run_all(
        &k,
        &RunArgs {
            inputs: &inputs,
            uniforms: &[],
        },
    )
    .unwrap_err();
    assert!(err.0.contains("outside its buffer"), "{err}");
}
