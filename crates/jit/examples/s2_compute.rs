//! S2's kernel alone on one thread over 256^3 `.nii` inputs (the compare bench's data): median
//! on-CPU and wall time of repeated runs into a reused output buffer, and a checksum of the
//! output to compare kernels bit for bit. `CHECK=1` also compares with the interpreter.
//! `cargo run --release -p voxcalc-jit --example s2_compute -- [DIR [REPEATS]]` (DIR defaults to
//! `target/compare-data/full`, made by `benches/compare/data.py`).

use std::time::Instant;

use voxcalc_check::Env;
use voxcalc_ir::plan::{execute_interpreted, plan, ImageLayout};
use voxcalc_ir::{ByteOrder, InputBuf, RunArgs};
use voxcalc_jit::{compile_plan, CompileOptions};
use voxcalc_types::DType;

/// This thread's on-CPU time so far (Linux schedstat), in nanoseconds.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// The voxel bytes of a `.nii` file (NIfTI-1, native byte order).
fn voxels(path: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("readable input");
    let off = f32::from_le_bytes(bytes[108..112].try_into().expect("4 bytes")) as usize;
    bytes[off..].to_vec()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/compare-data/full".into());
    let repeats: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let text = std::env::var("FORMULA").unwrap_or_else(|_| {
        "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)".into()
    });
    let shape = vec![256usize, 256, 256];
    let images = [
        ("mask", DType::U8),
        ("img1", DType::I16),
        ("img2", DType::F32),
    ];
    let data: Vec<Vec<u8>> = images
        .iter()
        .map(|(n, _)| voxels(&format!("{dir}/{n}.nii")))
        .collect();
    let parsed = voxcalc_syntax::parse(&text);
    let mut env = Env::new();
    for (name, dtype) in &images {
        env.bind(*name, *dtype, shape.clone());
    }
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("the formula checks");
    let layouts: Vec<ImageLayout> = images
        .iter()
        .map(|_| ImageLayout::fortran(&shape, ByteOrder::Native))
        .collect();
    let p = plan(&tree, &layouts).expect("the formula plans");
    let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
    let kernel = &compiled.kernels()[0];
    assert_eq!(compiled.kernels().len(), 1, "S2 is one stage");
    let bufs: Vec<InputBuf<'_>> = data
        .iter()
        .map(|d| InputBuf { bytes: d, base: 0 })
        .collect();
    let n = kernel.kernel().n_voxels();
    let mut out = vec![0u8; n as usize * kernel.kernel().output_dtype().size()];
    let args = RunArgs {
        inputs: &bufs,
        uniforms: &[],
    };
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..repeats {
        let (c, t) = (cpu_ns(), Instant::now());
        kernel.run(&args, &mut out, 0, n).expect("runs");
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push((cpu_ns() - c) as f64 / 1e6);
    }
    cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    let sum = out.chunks(8).fold(0u64, |h, c| {
        h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))
    });
    println!(
        "cpu median {:.2} ms (min {:.2}), wall median {:.2} ms, checksum {sum:016x}",
        cpu[cpu.len() / 2],
        cpu[0],
        wall[wall.len() / 2]
    );
    if std::env::var_os("CHECK").is_some() {
        let reference = execute_interpreted(&p, &bufs).expect("interprets");
        assert!(reference == out, "kernel and interpreter differ");
        println!("identical to the interpreter");
    }
}
