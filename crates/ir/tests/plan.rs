//! Planner tests: the plans of typical formulas (snapshots of the stage split and kernel IR)
//! and their interpreted results on small images.

mod common;

use common::plan_formula;
use voxcalc_check::Env;
use voxcalc_ir::plan::{execute_interpreted, plan, ImageLayout};
use voxcalc_ir::{ByteOrder, InputBuf};
use voxcalc_types::DType;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn as_f32(b: &[u8]) -> Vec<f32> {
    b.chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn as_f64(b: &[u8]) -> Vec<f64> {
    b.chunks(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn s2_masked_log_formula_is_one_fused_stage() {
    let p = plan_formula(
        "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)",
        &[
            ("mask", DType::U8, vec![4, 3, 2]),
            ("img1", DType::I16, vec![4, 3, 2]),
            ("img2", DType::F32, vec![4, 3, 2]),
        ],
    );
    assert_eq!(p.stages.len(), 1);
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn s5_zscore_materialises_the_time_statistics() {
    let p = plan_formula(
        "(bold - np.mean(bold, axis=-1)[..., None]) / np.std(bold, axis=-1)[..., None]",
        &[("bold", DType::I16, vec![2, 2, 1, 5])],
    );
    // mean and std over time are 3-D buffers, the z-score reads them broadcast over time.
    assert_eq!(p.stages.len(), 3);
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn global_mean_is_a_scalar_stage_feeding_a_uniform() {
    let shape = vec![3, 2, 2];
    let p = plan_formula("img - np.mean(img)", &[("img", DType::F32, shape)]);
    assert_eq!(p.stages.len(), 2);
    assert_eq!(p.stages[1].uniforms, vec![0]);
    let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    let bytes = f32_bytes(&data);
    let out = execute_interpreted(
        &p,
        &[InputBuf {
            bytes: &bytes,
            base: 0,
        }],
    )
    .unwrap();
    // np.mean of 0, 0.5, ..., 5.5 is 2.75.
    let want: Vec<f32> = data.iter().map(|x| x - 2.75).collect();
    assert_eq!(as_f32(&out), want);
}

#[test]
fn time_mean_and_masked_std_match_numpy() {
    // bold: 2 voxels x 3 volumes, Fortran order: voxel v at time t is element v + 2 t.
    let bold: Vec<f32> = vec![1.0, 10.0, 2.0, 20.0, 4.0, 40.0];
    let bytes = f32_bytes(&bold);
    let p = plan_formula(
        "np.mean(bold, axis=-1)",
        &[("bold", DType::F32, vec![2, 3])],
    );
    let out = execute_interpreted(
        &p,
        &[InputBuf {
            bytes: &bytes,
            base: 0,
        }],
    )
    .unwrap();
    // np.mean(np.asfortranarray([[1, 2, 4], [10, 20, 40]], np.float32), axis=-1)
    assert_eq!(as_f32(&out), vec![7.0f32 / 3.0, 70.0f32 / 3.0]);

    let mask: Vec<u8> = vec![1, 0];
    let p = plan_formula(
        "np.std(bold[mask > 0])",
        &[
            ("bold", DType::F32, vec![2, 3]),
            ("mask", DType::U8, vec![2]),
        ],
    );
    let out = execute_interpreted(
        &p,
        &[
            InputBuf {
                bytes: &bytes,
                base: 0,
            },
            InputBuf {
                bytes: &mask,
                base: 0,
            },
        ],
    )
    .unwrap();
    // np.std(np.array([1, 2, 4], np.float32)) == np.float32(1.2472192).
    assert_eq!(as_f32(&out), vec![1.2472192f32]);

    let p = plan_formula(
        "np.percentile(bold, 95)",
        &[("bold", DType::F32, vec![2, 3])],
    );
    let out = execute_interpreted(
        &p,
        &[InputBuf {
            bytes: &bytes,
            base: 0,
        }],
    )
    .unwrap();
    // np.percentile(bold, 95) == 35.0 for float32 data (20 + 20 * 0.75).
    assert_eq!(as_f32(&out), vec![35.0]);

    let p = plan_formula(
        "np.median(bold.astype(np.float64), axis=0)",
        &[("bold", DType::F32, vec![2, 3])],
    );
    let out = execute_interpreted(
        &p,
        &[InputBuf {
            bytes: &bytes,
            base: 0,
        }],
    )
    .unwrap();
    assert_eq!(as_f64(&out), vec![5.5, 11.0, 22.0]);
}

/// Data-driven plan snapshots: every `tests/plans/NAME.formula` file (first line: images as
/// `name:dtype:dims`, second line: the formula) is planned and its text snapshotted as
/// `plan_files@NAME`. Adding a case is adding a file.
#[test]
fn plan_files() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/plans");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/plans exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "formula"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable case");
        let mut lines = text.lines();
        let images: Vec<(String, DType, Vec<usize>)> = lines
            .next()
            .expect("an images line")
            .split_whitespace()
            .map(|spec| {
                let parts: Vec<&str> = spec.split(':').collect();
                let dims = parts[2]
                    .split(',')
                    .map(|d| d.parse().expect("dim"))
                    .collect();
                (
                    parts[0].to_string(),
                    DType::from_name(parts[1]).expect("dtype"),
                    dims,
                )
            })
            .collect();
        let formula = lines.next().expect("a formula line");
        let borrowed: Vec<(&str, DType, Vec<usize>)> = images
            .iter()
            .map(|(n, d, s)| (n.as_str(), *d, s.clone()))
            .collect();
        let p = plan_formula(formula, &borrowed);
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        insta::assert_snapshot!(name, format!("{formula}\n\n{p}"));
    }
}

#[test]
fn scaled_images_are_read_as_raw_times_slope_plus_inter() {
    // A NIfTI int16 image with scl_slope 1.1 and scl_inter -3: nibabel gives the float64 array
    // raw * 1.1 + (-3) (two roundings), which the formula sees as `img`.
    let parsed = voxcalc_syntax::parse("img * 2");
    let mut env = Env::new();
    env.bind("img", DType::F64, vec![4]);
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("checks");
    let layout = ImageLayout::fortran(&[4], ByteOrder::Swapped).scaled(DType::I16, 1.1, -3.0);
    let p = plan(&tree, &[layout]).expect("plans");
    let raw: [i16; 4] = [0, 7, -300, i16::MAX];
    let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_be_bytes()).collect();
    let out = execute_interpreted(
        &p,
        &[InputBuf {
            bytes: &bytes,
            base: 0,
        }],
    )
    .unwrap();
    let want: Vec<f64> = raw.iter().map(|&r| (r as f64 * 1.1 + -3.0) * 2.0).collect();
    assert_eq!(as_f64(&out), want);
    assert!(p.to_string().contains("in0: int16 byteswapped"), "{p}");
}

/// Run-time checks: numpy's errors for these values stop the run with the error, pointing at
/// the operation; other values of the same formula run normally.
#[test]
fn runtime_checks_raise_numpy_errors_for_the_values_that_need_them() {
    use voxcalc_ir::plan::ExecuteError;
    let i16_bytes = |v: &[i16]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let run = |formula: &str, a: &[i16], b: &[i16]| {
        let p = plan_formula(
            formula,
            &[("a", DType::I16, vec![3]), ("b", DType::I16, vec![3])],
        );
        let (ab, bb) = (i16_bytes(a), i16_bytes(b));
        let bufs = [
            InputBuf {
                bytes: &ab,
                base: 0,
            },
            InputBuf {
                bytes: &bb,
                base: 0,
            },
        ];
        execute_interpreted(&p, &bufs)
    };
    let err = |r: Result<Vec<u8>, ExecuteError>| match r {
        Err(ExecuteError::Check(e)) => (e.code, e.message, e.range),
        other => panic!("expected a failed check, got {other:?}"),
    };
    // Integer power: any negative exponent raises, wherever it is.
    let (code, message, range) = err(run("a + a ** b", &[1, 2, 3], &[2, -1, 0]));
    assert_eq!(code, "E0222");
    assert_eq!(
        message,
        "integers to negative integer powers are not allowed"
    );
    assert_eq!((range.start(), range.end()), (4, 10));
    let ok = run("a + a ** b", &[1, 2, 3], &[2, 1, 0]).expect("non-negative exponents run");
    assert_eq!(ok, i16_bytes(&[2, 4, 4]));
    // Reductions without an identity over an empty selection.
    for (formula, message) in [
        (
            "np.max(a[b > 5])",
            "zero-size array to reduction operation maximum which has no identity",
        ),
        (
            "np.ptp(a[b > 5])",
            "zero-size array to reduction operation maximum which has no identity",
        ),
        (
            "np.min(a[b > 5])",
            "zero-size array to reduction operation minimum which has no identity",
        ),
        (
            "np.argmax(a[b > 5])",
            "attempt to get argmax of an empty sequence",
        ),
    ] {
        let (code, got, _) = err(run(formula, &[1, 2, 3], &[0, 1, 2]));
        assert_eq!((code, got.as_str()), ("E0401", message), "{formula}");
        run(formula, &[1, 2, 3], &[0, 9, 2]).expect("a non-empty selection runs");
    }
    let (_, got, _) = err(run("np.percentile(a[b > 5], 50)", &[1, 2, 3], &[0, 1, 2]));
    assert!(got.contains("percentile"), "{got}");
    // numpy gives NaN (with a warning), not an error, for these.
    for formula in [
        "np.median(a[b > 5])",
        "np.mean(a[b > 5])",
        "np.sum(a[b > 5])",
    ] {
        run(formula, &[1, 2, 3], &[0, 1, 2]).expect("no error");
    }
}

/// A long global reduction is split into partial stages and a merge (so the runtime can run the
/// parts on several threads) with exactly the single reduction's result: a float sum keeps
/// numpy's pairwise order (checked against `pairwise_sum` over the whole array), a maximum and
/// an integer sum are associative.
#[test]
fn long_global_reductions_split_without_changing_the_result() {
    let n = 70_001usize;
    // Magnitudes from 1e-3 to 1e5, so that a different summation order changes the bits.
    let values: Vec<f32> = (0..n)
        .map(|i| {
            let x = ((i as u64 * 2_654_435_761) % 1_000_003) as f32 / 1_000_003.0 - 0.5;
            x * 10f32.powi((i % 9) as i32 - 3)
        })
        .collect();
    let bytes = f32_bytes(&values);
    let bufs = [InputBuf {
        bytes: &bytes,
        base: 0,
    }];
    let p = plan_formula("np.sum(a)", &[("a", DType::F32, vec![n])]);
    assert_eq!(p.stages.len(), 17, "16 pairwise subtrees and a merge:\n{p}");
    let got = as_f32(&execute_interpreted(&p, &bufs).unwrap());
    let want = voxcalc_ir::scalar::pairwise_sum(&values);
    assert_eq!(got[0].to_bits(), want.to_bits());
    // A sequential left-to-right sum differs, so the test can tell the orders apart.
    let sequential = values.iter().fold(-0.0f32, |acc, &x| acc + x);
    assert_ne!(sequential.to_bits(), want.to_bits());

    let p = plan_formula("np.max(a) - np.min(a)", &[("a", DType::F32, vec![n])]);
    assert!(p.stages.len() > 3, "{p}");
    let got = as_f32(&execute_interpreted(&p, &bufs).unwrap());
    let max = values.iter().copied().fold(f32::MIN, f32::max);
    let min = values.iter().copied().fold(f32::MAX, f32::min);
    assert_eq!(got[0], max - min);

    // A global variance: its mean is a stage of its own, so both passes split; the result is
    // numpy's (pairwise sums, means and variances divided in float64 and rounded to float32).
    let p = plan_formula("np.var(a)", &[("a", DType::F32, vec![n])]);
    assert_eq!(p.stages.len(), 34, "{p}");
    let got = as_f32(&execute_interpreted(&p, &bufs).unwrap());
    let mean = (f64::from(voxcalc_ir::scalar::pairwise_sum(&values)) / n as f64) as f32;
    let squares: Vec<f32> = values.iter().map(|&x| (x - mean) * (x - mean)).collect();
    let var = (f64::from(voxcalc_ir::scalar::pairwise_sum(&squares)) / n as f64) as f32;
    assert_eq!(got[0].to_bits(), var.to_bits());
}
