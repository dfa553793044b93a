//! Streamed plans (`voxcalc_ir::stream`): which formulas stream an image volume by volume, and
//! that the passes plus the rest give exactly the bytes of the plan run on the whole image
//! (both through the reference interpreter).

mod common;

use common::plan_formula;
use voxcalc_ir::plan::execute_interpreted;
use voxcalc_ir::stream::{stream_last_axis, StreamPlan};
use voxcalc_ir::{InputBuf, RunArgs};
use voxcalc_types::DType;

/// Runs a streamed plan with the interpreter: every pass feeds the volumes in order, then the
/// rest runs with the carries appended to the images.
fn run_streamed(sp: &StreamPlan, images: &[Vec<u8>], volume_bytes: usize) -> Vec<u8> {
    let mut carries: Vec<Vec<u8>> = sp
        .accumulators
        .iter()
        .map(|a| a.init.to_le_bytes().repeat(a.n_voxels as usize))
        .collect();
    let streamed = &images[sp.image];
    for pass in 0..sp.n_passes {
        for (t, volume) in streamed.chunks(volume_bytes).enumerate() {
            for (k, acc) in sp.accumulators.iter().enumerate() {
                if acc.pass != pass || !acc.reads(t as u64) {
                    continue;
                }
                let stage = &sp.accumulate.stages[k];
                let bufs: Vec<InputBuf<'_>> = stage
                    .inputs
                    .iter()
                    .map(|src| match *src {
                        voxcalc_ir::plan::StageInput::Image(n) if n == sp.image => InputBuf {
                            bytes: volume,
                            base: 0,
                        },
                        voxcalc_ir::plan::StageInput::Image(n) if n >= sp.n_images => InputBuf {
                            bytes: &carries[n - sp.n_images],
                            base: 0,
                        },
                        voxcalc_ir::plan::StageInput::Image(n) => InputBuf {
                            bytes: &images[n],
                            base: 0,
                        },
                        voxcalc_ir::plan::StageInput::Table(n) => InputBuf {
                            bytes: &sp.accumulate.tables[n],
                            base: 0,
                        },
                        voxcalc_ir::plan::StageInput::Stage(_) => {
                            panic!("accumulators read no stage")
                        }
                    })
                    .collect();
                let kernel = &stage.kernel;
                let mut next = vec![0u8; carries[k].len()];
                let args = RunArgs {
                    inputs: &bufs,
                    uniforms: &[],
                };
                voxcalc_ir::interp::run(kernel, &args, &mut next, 0, kernel.n_voxels())
                    .expect("accumulator runs");
                carries[k] = next;
            }
        }
    }
    let mut bufs: Vec<InputBuf<'_>> = images
        .iter()
        .enumerate()
        .map(|(i, b)| InputBuf {
            bytes: if i == sp.image { &[] } else { b },
            base: 0,
        })
        .collect();
    bufs.extend(carries.iter().map(|c| InputBuf { bytes: c, base: 0 }));
    execute_interpreted(&sp.rest, &bufs).expect("rest runs")
}

/// A deterministic series with negative values, zeros and (for floats) -0.0 and large values,
/// so that summation order and signs show.
fn series(dtype: DType, n: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .flat_map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = (state % 20001) as i64 - 10000;
            match dtype {
                DType::I16 => (x as i16).to_le_bytes().to_vec(),
                DType::U8 => vec![(x & 0xff) as u8],
                DType::F32 => {
                    let v = match i % 11 {
                        0 => -0.0,
                        1 => x as f32 * 1e6,
                        _ => x as f32 / 7.0,
                    };
                    v.to_le_bytes().to_vec()
                }
                _ => (x as f64 / 3.0).to_le_bytes().to_vec(),
            }
        })
        .collect()
}

/// Checks that `formula` streams `bold` in `passes` passes and gives the whole plan's bytes.
fn assert_streams(formula: &str, bold: DType, passes: usize) {
    let shape = vec![3, 4, 2, 9];
    let mask_shape = vec![3, 4, 2];
    let images = [
        ("bold", bold, shape.clone()),
        ("mask", DType::U8, mask_shape),
    ];
    let p = plan_formula(formula, &images);
    let sp =
        stream_last_axis(&p, 0, 2, &shape).unwrap_or_else(|| panic!("`{formula}` should stream"));
    assert_eq!(sp.n_passes, passes, "{formula}");
    let data = vec![series(bold, 3 * 4 * 2 * 9), series(DType::U8, 3 * 4 * 2)];
    let whole = execute_interpreted(
        &p,
        &[
            InputBuf {
                bytes: &data[0],
                base: 0,
            },
            InputBuf {
                bytes: &data[1],
                base: 0,
            },
        ],
    )
    .expect("whole plan runs");
    let streamed = run_streamed(&sp, &data, 3 * 4 * 2 * bold.size());
    assert_eq!(streamed, whole, "{formula} over {bold}");
}

#[test]
fn sums_means_variances_and_products_over_time_stream_with_the_same_bits() {
    for dtype in [DType::I16, DType::F32, DType::F64] {
        assert_streams("np.mean(bold, axis=-1)", dtype, 1);
        assert_streams("np.sum(bold, axis=-1)", dtype, 1);
        assert_streams("np.mean(bold, axis=-1) / np.std(bold, axis=-1)", dtype, 2);
        assert_streams("np.var(bold[..., 1::3], axis=-1, ddof=1)", dtype, 2);
        assert_streams(
            "np.where(mask > 100, np.mean(bold * 2.0, axis=-1), 0)",
            dtype,
            1,
        );
        assert_streams("np.prod(bold[..., :3] / 1000.0, axis=-1)", dtype, 1);
    }
    // A std reads its mean; a mean of squares minus the squared mean reads nothing streamed.
    assert_streams(
        "np.mean(bold ** 2, axis=-1) - np.mean(bold, axis=-1) ** 2 + np.std(bold, axis=-1)",
        DType::F64,
        2,
    );
}

#[test]
fn plans_that_read_volumes_otherwise_do_not_stream() {
    let shape = vec![3, 4, 2, 9];
    let images = [
        ("bold", DType::I16, shape.clone()),
        ("mask", DType::U8, vec![3, 4, 2]),
    ];
    for formula in [
        // The result is 4-D: every voxel of every volume is read where it is written.
        "(bold - np.mean(bold, axis=-1)[..., None]) / np.std(bold, axis=-1)[..., None]",
        "bold * 2",
        // Not a reduction over time, or not in loop order.
        "np.mean(bold[..., 0] + bold[..., 4], axis=0)",
        "np.max(bold, axis=-1)",
        "np.median(bold, axis=-1)",
        "np.mean(bold)",
        "np.mean(bold, axis=0)",
        // Backwards in time, or two volumes at each step.
        "np.sum(bold[..., ::-1], axis=-1)",
        "np.sum(bold[..., 1:] - bold[..., :-1], axis=-1)",
        // Reads a mask selection of the series.
        "np.mean(bold[mask > 0], axis=0)",
    ] {
        let p = plan_formula(formula, &images);
        assert!(
            stream_last_axis(&p, 0, 2, &shape).is_none(),
            "`{formula}` should not stream"
        );
    }
    // The mask is not a series: nothing to stream.
    let p = plan_formula("np.mean(bold, axis=-1) * mask", &images);
    assert!(stream_last_axis(&p, 1, 2, &[3, 4, 2]).is_none());
}
