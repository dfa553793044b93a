//! The runtime against the reference interpreter: the same bytes on 1, 2, 3 and 4 threads and
//! small blocks, and failed run-time checks reported as numpy's errors.

use voxcalc_check::Env;
use voxcalc_ir::plan::{execute_interpreted, plan, ExecuteError, ImageLayout, Plan};
use voxcalc_ir::{ByteOrder, InputBuf};
use voxcalc_jit::{compile_plan, CompileOptions};
use voxcalc_runtime::{run, ExecError, NoProgress, RunOptions};
use voxcalc_types::DType;

/// Parses, checks and plans `formula` over float32 image `a` and uint8 image `m` of `shape`.
fn plan_formula(formula: &str, shape: &[usize]) -> Plan {
    let parsed = voxcalc_syntax::parse(formula);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut env = Env::new();
    env.bind("a", DType::F32, shape.to_vec());
    env.bind("m", DType::U8, shape.to_vec());
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("formula checks");
    let layout = ImageLayout::fortran(shape, ByteOrder::Native);
    plan(&tree, &[layout.clone(), layout]).expect("formula plans")
}

/// Deterministic values spanning several orders of magnitude, so that float sums depend on
/// their order.
fn values(n: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let scale = 10f32.powi((state % 7) as i32 - 3);
            (unit * scale).to_le_bytes()
        })
        .collect()
}

fn run_threads(
    p: &Plan,
    bufs: &[InputBuf<'_>],
    threads: usize,
    block: usize,
) -> Result<Vec<u8>, ExecError> {
    let compiled = compile_plan(p, CompileOptions::default()).expect("compiles");
    let n = p.output().kernel.n_voxels() as usize * p.output().dtype().size();
    let mut out = vec![0u8; n];
    let options = RunOptions {
        threads: Some(threads),
        block_voxels: Some(block),
    };
    run(&compiled, bufs, &mut out, &options, &NoProgress)?;
    Ok(out)
}

#[test]
fn results_do_not_depend_on_threads_or_blocks() {
    let shape = [37usize, 29, 23];
    let n: usize = shape.iter().product();
    let a = values(n);
    let m: Vec<u8> = (0..n).map(|i| u8::from(i % 3 != 0)).collect();
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf { bytes: &m, base: 0 },
    ];
    for formula in [
        "a - np.mean(a)",
        "a / np.std(a[m > 0])",
        "np.sum(a)",
        "np.var(a[:, 1:20, :])",
        "a * np.percentile(a, 95) + np.max(a)",
        "np.percentile(a, [5, 50, 95], axis=-1)",
        "np.mean(a, axis=0) + np.sum(a[1:30, :, :], axis=0)",
    ] {
        let p = plan_formula(formula, &shape);
        let want = execute_interpreted(&p, &bufs).expect("interprets");
        for threads in [1, 2, 3, 4] {
            for block in [1, 64, 1000, 1 << 20] {
                let got = run_threads(&p, &bufs, threads, block).expect("runs");
                assert!(
                    got == want,
                    "{formula}: {threads} threads, blocks of {block}"
                );
            }
        }
    }
}

#[test]
fn failed_checks_stop_the_run_with_numpy_s_error() {
    let shape = [5usize, 4, 3];
    let n: usize = shape.iter().product();
    let a = values(n);
    let zeros = vec![0u8; n];
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf {
            bytes: &zeros,
            base: 0,
        },
    ];
    let p = plan_formula("a - np.max(a[m > 0])", &shape);
    for threads in [1, 3] {
        match run_threads(&p, &bufs, threads, 7) {
            Err(ExecError::Check(e)) => {
                assert_eq!(e.code, "E0401");
                assert_eq!(
                    e.message,
                    "zero-size array to reduction operation maximum which has no identity"
                );
                assert_eq!((e.range.start(), e.range.end()), (4, 20));
            }
            other => panic!("expected a failed check, got {other:?}"),
        }
    }
    assert!(matches!(
        execute_interpreted(&p, &bufs),
        Err(ExecuteError::Check(_))
    ));
    let ones = vec![1u8; n];
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf {
            bytes: &ones,
            base: 0,
        },
    ];
    assert_eq!(
        run_threads(&p, &bufs, 2, 7).expect("a non-empty selection runs"),
        execute_interpreted(&p, &bufs).expect("interprets")
    );
}

#[test]
fn split_global_reductions_run_in_parallel_with_the_single_thread_result() {
    let shape = [331usize, 211, 1];
    let n: usize = shape.iter().product();
    let a = values(n);
    let m: Vec<u8> = (0..n).map(|i| u8::from(i % 5 != 0)).collect();
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf { bytes: &m, base: 0 },
    ];
    for formula in [
        "np.sum(a)",
        "a - np.mean(a) + np.max(a)",
        "np.sum(m > 0) + np.count_nonzero(a > 0.1)",
        "np.any(a > 1000)",
        "(a - np.mean(a)) / np.std(a)",
    ] {
        let p = plan_formula(formula, &shape);
        assert!(p.stages.len() > 2, "{formula} is split:\n{p}");
        let want = execute_interpreted(&p, &bufs).expect("interprets");
        for threads in [1, 2, 4] {
            let got = run_threads(&p, &bufs, threads, 4096).expect("runs");
            assert!(got == want, "{formula}: {threads} threads");
        }
    }
}
