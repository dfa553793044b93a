//! The runtime against the reference interpreter: the same bytes on 1, 2, 3 and 4 threads and
//! small blocks, streamed in windows of any size or written whole, failed run-time checks
//! reported as numpy's errors, and cancellation honoured in every stage.

use std::sync::atomic::{AtomicU64, Ordering};

use voxcalc_check::Env;
use voxcalc_ir::plan::{execute_interpreted, plan, ExecuteError, ImageLayout, Plan};
use voxcalc_ir::{ByteOrder, InputBuf};
use voxcalc_jit::{compile_plan, CompileOptions, CompiledPlan};
use voxcalc_runtime::{
    run, run_streaming, ExecError, NoProgress, Progress, RunOptions, StreamError,
};
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
        window_bytes: None,
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

/// Runs `compiled` streaming and returns the chunks the sink received, in order.
fn stream_chunks(
    compiled: &CompiledPlan,
    bufs: &[InputBuf<'_>],
    options: &RunOptions,
    progress: &dyn Progress,
) -> Result<Vec<Vec<u8>>, StreamError<String>> {
    let mut chunks = Vec::new();
    let mut sink = |chunk: &[u8]| -> Result<(), String> {
        chunks.push(chunk.to_vec());
        Ok(())
    };
    run_streaming(compiled, bufs, &mut sink, options, progress)?;
    Ok(chunks)
}

#[test]
fn streamed_windows_concatenate_to_the_whole_result() {
    let shape = [7usize, 5, 4, 9];
    let n: usize = shape.iter().product();
    let a = values(n);
    let m: Vec<u8> = (0..n).map(|i| u8::from(i % 3 != 0)).collect();
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf { bytes: &m, base: 0 },
    ];
    for formula in [
        "(a - np.mean(a, axis=-1, keepdims=True)) / np.std(a, axis=-1, keepdims=True)",
        "a - np.mean(a)",
        "np.mean(a, axis=-1)",
        "np.sum(a)",
        "(a * 2).astype('float64') + m",
        "m > 0",
    ] {
        let p = plan_formula(formula, &shape);
        let want = execute_interpreted(&p, &bufs).expect("interprets");
        let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
        let elem_size = p.output().dtype().size();
        for threads in [1, 2, 3] {
            for block in [1, 64, 1000] {
                for window_bytes in [Some(1), Some(24), Some(1000), Some(1 << 20), None] {
                    let options = RunOptions {
                        threads: Some(threads),
                        block_voxels: Some(block),
                        window_bytes,
                    };
                    let case = format!(
                        "{formula}: {threads} threads, blocks of {block}, windows of \
                         {window_bytes:?} bytes"
                    );
                    let chunks =
                        stream_chunks(&compiled, &bufs, &options, &NoProgress).expect(&case);
                    assert!(chunks.concat() == want, "{case}");
                    // Every window holds whole blocks (at least one), and only the last is short.
                    let full = chunks[0].len();
                    assert!(full.is_multiple_of(elem_size), "{case}");
                    let full_voxels = full / elem_size;
                    assert!(
                        full_voxels.is_multiple_of(block) || chunks.len() == 1,
                        "{case}: {full_voxels} voxels per window"
                    );
                    let (last, rest) = chunks.split_last().expect("at least one window");
                    assert!(rest.iter().all(|c| c.len() == full), "{case}");
                    assert!(!last.is_empty() && last.len() <= full, "{case}");
                }
            }
        }
    }
}

#[test]
fn a_failing_sink_stops_the_stream_with_its_error() {
    let shape = [40usize, 30, 20];
    let n: usize = shape.iter().product();
    let a = values(n);
    let m = vec![1u8; n];
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf { bytes: &m, base: 0 },
    ];
    let p = plan_formula("a * 2", &shape);
    let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
    let options = RunOptions {
        threads: Some(2),
        block_voxels: Some(100),
        window_bytes: Some(4000),
    };
    let mut calls = 0;
    let mut sink = |_: &[u8]| -> Result<(), String> {
        calls += 1;
        if calls == 3 {
            return Err("disk full".to_string());
        }
        Ok(())
    };
    let res = run_streaming(&compiled, &bufs, &mut sink, &options, &NoProgress);
    assert_eq!(res, Err(StreamError::Sink("disk full".to_string())));
    assert_eq!(calls, 3, "no window is handed over after the sink failed");
}

/// Cancels from the `after`-th call to `cancelled` on, counting the voxels reported done.
struct CancelAfter {
    after: u64,
    calls: AtomicU64,
    advanced: AtomicU64,
}

impl CancelAfter {
    fn new(after: u64) -> CancelAfter {
        CancelAfter {
            after,
            calls: AtomicU64::new(0),
            advanced: AtomicU64::new(0),
        }
    }
}

impl Progress for CancelAfter {
    fn advance(&self, voxels: u64, _total: u64) {
        self.advanced.fetch_add(voxels, Ordering::SeqCst);
    }

    fn cancelled(&self) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1 >= self.after
    }
}

#[test]
fn cancellation_stops_an_earlier_stage_before_the_output_stage_starts() {
    // The time mean and std are a 3-D stage of their own, computed before the 4-D output.
    let shape = [9usize, 8, 7, 30];
    let n: usize = shape.iter().product();
    let a = values(n);
    let m = vec![1u8; n];
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf { bytes: &m, base: 0 },
    ];
    let p = plan_formula(
        "(a - np.mean(a, axis=-1, keepdims=True)) / np.std(a, axis=-1, keepdims=True)",
        &shape,
    );
    assert!(
        p.stages.len() > 1 && !p.stages[0].kernel.domain.is_empty(),
        "the reduction is an earlier voxel stage:\n{p}"
    );
    let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
    let options = RunOptions {
        threads: Some(1),
        block_voxels: Some(4),
        window_bytes: None,
    };
    // The first stage has 9 * 8 * 7 / 4 = 126 blocks; cancelling at the third check stops it.
    let progress = CancelAfter::new(3);
    let mut out = vec![0u8; p.output().kernel.n_voxels() as usize * 8];
    assert_eq!(
        run(&compiled, &bufs, &mut out, &options, &progress),
        Err(ExecError::Cancelled)
    );
    assert_eq!(progress.calls.load(Ordering::SeqCst), 3);
    assert_eq!(progress.advanced.load(Ordering::SeqCst), 0);

    let progress = CancelAfter::new(3);
    assert_eq!(
        stream_chunks(&compiled, &bufs, &options, &progress),
        Err(StreamError::Exec(ExecError::Cancelled))
    );
    assert_eq!(progress.calls.load(Ordering::SeqCst), 3);
    assert_eq!(progress.advanced.load(Ordering::SeqCst), 0);
}

#[test]
fn cancellation_is_honoured_before_a_scalar_stage_whose_check_would_fail() {
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
    // Run to the end, this plan fails its check after the first stage (an empty maximum);
    // cancelled from the start, it must stop before computing that stage.
    let p = plan_formula("a - np.max(a[m > 0])", &shape);
    let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
    let options = RunOptions::default();
    let mut out = vec![0u8; n * 4];
    assert_eq!(
        run(&compiled, &bufs, &mut out, &options, &CancelAfter::new(1)),
        Err(ExecError::Cancelled)
    );
    assert_eq!(
        stream_chunks(&compiled, &bufs, &options, &CancelAfter::new(1)),
        Err(StreamError::Exec(ExecError::Cancelled))
    );
    assert!(matches!(
        run(&compiled, &bufs, &mut out, &options, &NoProgress),
        Err(ExecError::Check(_))
    ));
}

#[test]
fn cancelling_the_streamed_output_stops_before_the_last_window() {
    let shape = [40usize, 30, 20];
    let n: usize = shape.iter().product();
    let a = values(n);
    let m = vec![1u8; n];
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf { bytes: &m, base: 0 },
    ];
    let p = plan_formula("a * 2", &shape);
    let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
    let options = RunOptions {
        threads: Some(2),
        block_voxels: Some(100),
        window_bytes: Some(4000),
    };
    // 240 blocks of 100 voxels in windows of 10 blocks: cancel a third of the way in.
    let progress = CancelAfter::new(80);
    let mut received = 0;
    let mut sink = |chunk: &[u8]| -> Result<(), String> {
        received += chunk.len();
        Ok(())
    };
    let res = run_streaming(&compiled, &bufs, &mut sink, &options, &progress);
    assert_eq!(res, Err(StreamError::Exec(ExecError::Cancelled)));
    assert!(received < n * 4 / 2, "{received} of {} bytes", n * 4);
    assert!(progress.advanced.load(Ordering::SeqCst) < n as u64 / 2);
}

#[test]
fn a_buffer_of_the_wrong_size_is_an_error() {
    let shape = [5usize, 4, 3];
    let n: usize = shape.iter().product();
    let a = values(n);
    let m = vec![1u8; n];
    let bufs = [
        InputBuf { bytes: &a, base: 0 },
        InputBuf { bytes: &m, base: 0 },
    ];
    let p = plan_formula("a + 1", &shape);
    let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
    for len in [0, n * 4 - 4, n * 4 + 4] {
        let mut out = vec![0u8; len];
        assert!(
            matches!(
                run(
                    &compiled,
                    &bufs,
                    &mut out,
                    &RunOptions::default(),
                    &NoProgress
                ),
                Err(ExecError::Run(_))
            ),
            "{len} bytes"
        );
    }
}
