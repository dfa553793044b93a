//! Kernel compile latency and in-memory throughput for the typical formulas S1-S5 of the
//! performance issue. Run with `cargo bench -p voxcalc-jit --bench kernels`.
//!
//! Compile latency: the median (and 90th percentile) over many compilations of the whole plan
//! (every stage), from the plan to callable code. Throughput: output voxels per second of the
//! compiled plan over synthetic in-memory images, on 1 and 2 threads (blocks of 4096 voxels
//! dealt round-robin, as the runtime does).

use std::time::{Duration, Instant};

use voxcalc_check::Env;
use voxcalc_ir::plan::{plan, ImageLayout, Plan};
use voxcalc_ir::{ByteOrder, InputBuf, RunArgs};
use voxcalc_jit::{compile_plan, CompileOptions, CompiledKernel};
use voxcalc_types::DType;

const BLOCK: u64 = 4096;

struct Formula {
    name: &'static str,
    text: &'static str,
    images: Vec<(&'static str, DType, Vec<usize>)>,
}

fn formulas(vol: &[usize], bold: &[usize]) -> Vec<Formula> {
    vec![
        Formula {
            name: "S1 img1 + img2",
            text: "img1 + img2",
            images: vec![
                ("img1", DType::I16, vol.to_vec()),
                ("img2", DType::I16, vol.to_vec()),
            ],
        },
        Formula {
            name: "S2 where/log",
            text: "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)",
            images: vec![
                ("mask", DType::U8, vol.to_vec()),
                ("img1", DType::I16, vol.to_vec()),
                ("img2", DType::F32, vol.to_vec()),
            ],
        },
        Formula {
            name: "G  img - mean",
            text: "img2 - np.mean(img2)",
            images: vec![("img2", DType::F32, vol.to_vec())],
        },
        Formula {
            name: "S3 time mean",
            text: "np.mean(bold, axis=-1)",
            images: vec![("bold", DType::I16, bold.to_vec())],
        },
        Formula {
            name: "S4 tSNR",
            text: "np.mean(bold, axis=-1) / np.std(bold, axis=-1)",
            images: vec![("bold", DType::I16, bold.to_vec())],
        },
        Formula {
            name: "S5 z-score",
            text: "(bold - np.mean(bold, axis=-1)[..., None]) / np.std(bold, axis=-1)[..., None]",
            images: vec![("bold", DType::I16, bold.to_vec())],
        },
    ]
}

fn make_plan(f: &Formula) -> Plan {
    let parsed = voxcalc_syntax::parse(f.text);
    let mut env = Env::new();
    for (name, dtype, shape) in &f.images {
        env.bind(*name, *dtype, shape.clone());
    }
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("the formula checks");
    let layouts: Vec<ImageLayout> = f
        .images
        .iter()
        .map(|(_, _, s)| ImageLayout::fortran(s, ByteOrder::Native))
        .collect();
    plan(&tree, &layouts).expect("the formula plans")
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

/// Deterministic pseudo-random bytes for an image.
fn image_bytes(dtype: DType, n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n * dtype.size());
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match dtype {
            DType::U8 => out.push((x % 2) as u8),
            DType::I16 => out.extend(((x % 2000) as i16 + 100).to_le_bytes()),
            DType::F32 => out.extend(((x % 10000) as f32 * 0.01).to_le_bytes()),
            _ => out.extend(vec![0u8; dtype.size()]),
        }
    }
    out
}

fn run_threads(k: &CompiledKernel, args: &RunArgs<'_>, out: &mut [u8], threads: usize) {
    let size = k.kernel().output_dtype().size();
    let mut per_thread: Vec<Vec<(u64, &mut [u8])>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, chunk) in out.chunks_mut(BLOCK as usize * size).enumerate() {
        per_thread[i % threads].push((i as u64 * BLOCK, chunk));
    }
    std::thread::scope(|s| {
        for work in per_thread {
            s.spawn(move || {
                for (start, chunk) in work {
                    let end = start + (chunk.len() / size) as u64;
                    k.run(args, chunk, start, end).expect("checked run");
                }
            });
        }
    });
}

fn main() {
    println!("== compile latency (whole plan, median / p90 over 300 compilations)");
    for f in formulas(&[256, 256, 256], &[91, 109, 91, 200]) {
        let p = make_plan(&f);
        let mut times = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            let c = compile_plan(&p, CompileOptions::default()).expect("compiles");
            times.push(t.elapsed());
            drop(c);
        }
        let (med, p90) = median(times);
        println!(
            "{:<16} {} stage(s)  median {:>7.3} ms  p90 {:>7.3} ms",
            f.name,
            p.stages.len(),
            med.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3
        );
    }

    println!("== throughput (in memory; 3-D 128^3, 4-D 64x64x32x100 int16)");
    for f in formulas(&[128, 128, 128], &[64, 64, 32, 100]) {
        let p = make_plan(&f);
        let c = compile_plan(&p, CompileOptions::default()).expect("compiles");
        let images: Vec<Vec<u8>> = f
            .images
            .iter()
            .enumerate()
            .map(|(i, (_, dt, s))| image_bytes(*dt, s.iter().product(), i as u64 + 7))
            .collect();
        let bufs: Vec<InputBuf> = images
            .iter()
            .map(|b| InputBuf { bytes: b, base: 0 })
            .collect();
        for threads in [1, 2] {
            let mut best = Duration::MAX;
            let mut n_out = 0u64;
            for _ in 0..5 {
                let t = Instant::now();
                // Stages in order; every stage runs in blocks over the threads.
                let out = voxcalc_ir::plan::execute(&p, &bufs, |i, args, out| {
                    run_threads(&c.kernels()[i], args, out, threads);
                    Ok(())
                })
                .expect("runs");
                best = best.min(t.elapsed());
                n_out = (out.len() / p.output().dtype().size()) as u64;
            }
            println!(
                "{:<16} {threads} thread(s)  {:>8.1} ms  {:>8.1} Mvoxel/s (output voxels)",
                f.name,
                best.as_secs_f64() * 1e3,
                n_out as f64 / best.as_secs_f64() / 1e6
            );
        }
    }
}
