//! The vector shortcuts taken for particular operands (the logarithm of a converted integer
//! without its subnormal and non-finite cases, selects with an all-zero arm as one AND, byte
//! masks widened by one shuffle, `where(n != 0, x, 0)` as x AND NOT `n == 0`, small integers converted straight to float64) give the
//! interpreter's bits, over every int16 value and masks of 0, 1 and 255.

use voxcalc_check::Env;
use voxcalc_ir::plan::{execute_interpreted, plan, ImageLayout, Plan};
use voxcalc_ir::{ByteOrder, InputBuf};
use voxcalc_jit::{compile_plan, CompileOptions, CompiledKernel};
use voxcalc_types::DType;

/// Every int16 value (65536 voxels, plus a tail of 3 so rows end in scalar code).
const N: usize = 65536 + 3;

fn images() -> Vec<(&'static str, DType, Vec<u8>)> {
    let img1: Vec<u8> = (0..N)
        .flat_map(|i| ((i as u32).wrapping_sub(32768) as u16 as i16).to_le_bytes())
        .collect();
    let specials = [
        0.0f32,
        -0.0,
        1.5,
        -2.25,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE / 4.0,
        1e30,
    ];
    let img2: Vec<u8> = (0..N)
        .flat_map(|i| specials[i % specials.len()].to_le_bytes())
        .collect();
    let mask: Vec<u8> = (0..N).map(|i| [0u8, 1, 255, 0, 7][i % 5]).collect();
    let i32s: Vec<u8> = (0..N)
        .flat_map(|i| {
            let v = match i % 4 {
                0 => i32::MIN + i as i32,
                1 => i32::MAX - i as i32,
                2 => 0,
                _ => i as i32 - 40000,
            };
            v.to_le_bytes()
        })
        .collect();
    vec![
        ("img1", DType::I16, img1),
        ("img2", DType::F32, img2),
        ("mask", DType::U8, mask),
        ("big", DType::I32, i32s),
    ]
}

#[test]
fn vector_shortcuts_match_the_interpreter_bit_for_bit() {
    let images = images();
    let imgs = Images::new(&images, &[N]);
    let formulas = [
        "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)",
        "np.log(img1)",
        "np.log(img1 * 1.0)",
        "np.log(big)",
        "np.log(mask)",
        "np.log(img2)",
        "np.where(mask > 0, 0, img2 * 2.0)",
        "np.where(mask > 0, img1, 0)",
        "np.where(mask > 0, img1 / 3, -0.0)",
        "np.where(mask == 0, img2, img1)",
        "np.where(mask > 0, img2 * 2.0, 0)",
        "np.where(img1 != 0, img2, 0)",
        "np.where(img1 > 0, img2, 0)",
        "np.where(big != 0, img1, 0)",
        "np.where(mask != 0, mask, 0)",
        "img1 + 0.5",
        "(mask > 1) & (img1 > 0)",
    ];
    for text in formulas {
        let p = imgs.plan(text);
        let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
        let jit = compiled.execute(&imgs.bufs).expect("runs");
        let reference = execute_interpreted(&p, &imgs.bufs).expect("interprets");
        assert_eq!(jit.len(), reference.len(), "{text}");
        let size = p.output().dtype().size();
        if let Some(i) = (0..jit.len() / size)
            .find(|&i| jit[i * size..(i + 1) * size] != reference[i * size..(i + 1) * size])
        {
            panic!(
                "{text}: voxel {i} differs: jit {:?}, interpreter {:?}",
                &jit[i * size..(i + 1) * size],
                &reference[i * size..(i + 1) * size]
            );
        }
    }
}

/// Images of one shape, as a checker environment, Fortran layouts and input buffers.
struct Images<'a> {
    env: Env,
    layouts: Vec<ImageLayout>,
    bufs: Vec<InputBuf<'a>>,
}

impl<'a> Images<'a> {
    fn new(images: &'a [(&'static str, DType, Vec<u8>)], shape: &[usize]) -> Images<'a> {
        let mut env = Env::new();
        for (name, dtype, _) in images {
            env.bind(*name, *dtype, shape.to_vec());
        }
        Images {
            env,
            layouts: images
                .iter()
                .map(|_| ImageLayout::fortran(shape, ByteOrder::Native))
                .collect(),
            bufs: images
                .iter()
                .map(|(_, _, d)| InputBuf { bytes: d, base: 0 })
                .collect(),
        }
    }

    /// The plan of `text` over these images.
    fn plan(&self, text: &str) -> Plan {
        let parsed = voxcalc_syntax::parse(text);
        let tree = voxcalc_check::check(&parsed.expr, &self.env).expect("the formula checks");
        plan(&tree, &self.layouts).expect("the formula plans")
    }

    /// Stage `s`'s inputs in its own order, when they are all images.
    fn stage_bufs(&self, p: &Plan, s: usize) -> Option<Vec<InputBuf<'a>>> {
        p.stages[s]
            .inputs
            .iter()
            .map(|src| match *src {
                voxcalc_ir::plan::StageInput::Image(k) => Some(self.bufs[k]),
                _ => None,
            })
            .collect()
    }
}

/// Runs `kernel` over every `start..end` of its domain and compares each with the interpreter.
fn assert_every_range_matches(kernel: &CompiledKernel, inputs: &[InputBuf<'_>], what: &str) {
    let args = voxcalc_ir::RunArgs {
        inputs,
        uniforms: &[],
    };
    let size = kernel.kernel().output_dtype().size();
    let n = kernel.kernel().n_voxels();
    for start in 0..n {
        for end in start..=n {
            let len = (end - start) as usize * size;
            let mut jit = vec![0u8; len];
            kernel.run(&args, &mut jit, start, end).expect("runs");
            let mut reference = vec![0u8; len];
            voxcalc_ir::interp::run(kernel.kernel(), &args, &mut reference, start, end)
                .expect("interprets");
            assert!(jit == reference, "{what}: voxels {start}..{end} differ");
        }
    }
}

/// Vector kernels (and the lanes of reductions) finish a row by stepping back to a last whole
/// vector, and `run` interprets runs of a row shorter than a vector: every `start..end` of
/// domains with rows of 5, 6 and 9 voxels (4-voxel vectors, 4 lanes) gives the interpreter's
/// bytes.
#[test]
fn overlapping_row_tails_match_the_interpreter_for_every_range() {
    for rows in [5usize, 6, 9] {
        let shape = vec![rows, 7];
        let n = rows * 7;
        let img1: Vec<u8> = (0..n)
            .flat_map(|i| ((i as i16) * 37 - 500).to_le_bytes())
            .collect();
        let img2: Vec<u8> = (0..n)
            .flat_map(|i| (i as f32 * 0.75 - 3.0).to_le_bytes())
            .collect();
        let mask: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        let images = [
            ("img1", DType::I16, img1),
            ("img2", DType::F32, img2),
            ("mask", DType::U8, mask),
        ];
        let imgs = Images::new(&images, &shape);
        for text in [
            "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)",
            "img1 + img2",
            "np.mean(img1, axis=-1)",
            "np.std(img2, axis=-1) + np.max(mask, axis=-1)",
        ] {
            let p = imgs.plan(text);
            let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
            let inputs = imgs.stage_bufs(&p, 0).expect("one stage over images");
            assert_every_range_matches(
                &compiled.kernels()[0],
                &inputs,
                &format!("{text}, rows of {rows}"),
            );
        }
    }
}

/// Time reductions that take the vector path (unmasked sequential float sums: means,
/// variances, z-scores) give the interpreter's bytes for every start..end of domains whose rows
/// are shorter than, equal to and longer than a vector, over int16, uint8, float32 and float64
/// series (empty ones too) with NaN, infinities, signed zeros and subnormals in them.
#[test]
fn vector_time_reductions_match_the_interpreter_for_every_range() {
    let specials = [
        0.0f64,
        -0.0,
        1.5,
        -2.25,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        f64::MIN_POSITIVE / 4.0,
        1e300,
        -7.0,
        3.0e-5,
    ];
    for (rows, volumes) in [
        (1usize, 5usize),
        (3, 4),
        (4, 7),
        (5, 3),
        (9, 6),
        (6, 1),
        (5, 0),
    ] {
        let shape = vec![rows, 2, volumes];
        let n = rows * 2 * volumes;
        let i16s: Vec<u8> = (0..n)
            .flat_map(|i| ((i as i32 * 7919 % 65536 - 32768) as i16).to_le_bytes())
            .collect();
        let u8s: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
        let f32s: Vec<u8> = (0..n)
            .flat_map(|i| {
                let x = if i % 5 == 0 {
                    specials[i / 5 % specials.len()] as f32
                } else {
                    i as f32 * 0.37 - 4.0
                };
                x.to_le_bytes()
            })
            .collect();
        let f64s: Vec<u8> = (0..n)
            .flat_map(|i| {
                let x = if i % 4 == 1 {
                    specials[i / 4 % specials.len()]
                } else {
                    (i as f64).sin() * 1e3
                };
                x.to_le_bytes()
            })
            .collect();
        let images = [
            ("bold", DType::I16, i16s),
            ("byte", DType::U8, u8s),
            ("single", DType::F32, f32s),
            ("double", DType::F64, f64s),
        ];
        let imgs = Images::new(&images, &shape);
        for text in [
            "np.mean(bold, axis=-1)",
            "np.mean(bold, axis=-1) / np.std(bold, axis=-1)",
            "np.var(byte, axis=-1)",
            "np.mean(single, axis=-1)",
            "np.std(single, axis=-1) + single[..., 0]",
            "np.sum(double, axis=-1)",
            "np.sqrt(np.mean(double * double, axis=-1))",
            "(bold - np.mean(bold, axis=-1, keepdims=True)) / np.std(bold, axis=-1, keepdims=True)",
        ] {
            if volumes == 0 && text.contains("[..., 0]") {
                continue;
            }
            let p = imgs.plan(text);
            let compiled = compile_plan(&p, CompileOptions { keep_clif: true }).expect("compiles");
            let whole = compiled.execute(&imgs.bufs).expect("runs");
            let reference = execute_interpreted(&p, &imgs.bufs).expect("interprets");
            assert!(whole == reference, "{text}, rows of {rows}: results differ");
            for (s, kernel) in compiled.kernels().iter().enumerate() {
                let is_reduction = kernel
                    .kernel()
                    .insts
                    .iter()
                    .any(|i| matches!(i.kind, voxcalc_ir::InstKind::Reduce(_)));
                let clif = kernel.clif().expect("kept");
                if is_reduction && rows >= 4 && volumes > 0 {
                    // The accumulators are loop-carried vectors (block parameters).
                    assert!(
                        clif.contains(": f64x2") || clif.contains(": f32x4"),
                        "{text}: stage {s} does not sum in vectors:\n{clif}"
                    );
                }
                // Every run of every stage whose inputs are images alone (later stages read
                // earlier results, checked as a whole above).
                if let Some(inputs) = imgs.stage_bufs(&p, s) {
                    assert_every_range_matches(
                        kernel,
                        &inputs,
                        &format!("{text}, rows of {rows}, stage {s}"),
                    );
                }
            }
        }
    }
}
