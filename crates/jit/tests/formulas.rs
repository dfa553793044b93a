//! Random formulas (text) over random dtypes: every formula the checker accepts is planned,
//! compiled and run over blocks on 1, 2 and 4 threads; the result must equal the reference
//! interpreter's bit for bit (NaN payloads aside) for voxel counts at block tails.
//! `VOXCALC_FORMULA_CASES=5000` runs more formulas than the default 400.

mod common;

use common::{first_difference, BLOCK};
use voxcalc_check::Env;
use voxcalc_ir::plan::{execute, execute_interpreted, plan, ExecuteError, ImageLayout};
use voxcalc_ir::{ByteOrder, InputBuf, Scalar};
use voxcalc_jit::{compile_plan, CompileOptions, CompiledKernel};
use voxcalc_types::DType;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// An expression over the 1-D images `a`, `b`, `c` (one value per voxel).
fn voxel_expr(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 || rng.chance(20) {
        return rng
            .pick(&[
                "a", "b", "c", "a", "b", "2", "0.5", "-3", "np.pi", "True", "np.nan",
            ])
            .to_string();
    }
    let d = depth - 1;
    match rng.next() % 9 {
        0 | 1 => {
            let f = rng.pick(&[
                "sqrt",
                "abs",
                "exp",
                "log",
                "log1p",
                "floor",
                "rint",
                "negative",
                "sign",
                "isnan",
                "logical_not",
                "square",
                "sin",
                "arctan",
                "cbrt",
                "trunc",
                "signbit",
                "isfinite",
                "reciprocal",
                "fabs",
                "tanh",
                "exp2",
            ]);
            format!("np.{f}({})", voxel_expr(rng, d))
        }
        2..=4 => {
            let op = rng.pick(&[
                "+", "-", "*", "/", "//", "%", "**", "<", ">=", "==", "!=", "&", "|", "^",
            ]);
            format!("({} {op} {})", voxel_expr(rng, d), voxel_expr(rng, d))
        }
        5 => {
            let f = rng.pick(&[
                "minimum",
                "maximum",
                "fmin",
                "fmax",
                "arctan2",
                "hypot",
                "copysign",
                "fmod",
                "logaddexp",
                "heaviside",
                "floor_divide",
            ]);
            format!("np.{f}({}, {})", voxel_expr(rng, d), voxel_expr(rng, d))
        }
        6 => format!(
            "np.where({} > {}, {}, {})",
            voxel_expr(rng, d),
            voxel_expr(rng, d),
            voxel_expr(rng, d),
            voxel_expr(rng, d)
        ),
        7 => {
            let t = rng.pick(&["float32", "float64", "int16", "uint8", "int64", "bool"]);
            let t = if t == "bool" {
                "bool".to_string()
            } else {
                format!("np.{t}")
            };
            format!("({}).astype({t})", voxel_expr(rng, d))
        }
        _ => {
            // A reduction: over the time axis of `v` (one value per voxel), or global (scalar).
            let f = rng.pick(&[
                "mean",
                "sum",
                "std",
                "var",
                "min",
                "max",
                "median",
                "nanmean",
                "nanstd",
                "argmax",
                "any",
                "ptp",
                "count_nonzero",
                "nanmax",
                "prod",
            ]);
            let operand = if rng.chance(50) { "v" } else { "(v * 2 - 1)" };
            if rng.chance(70) {
                format!("np.{f}({operand}, axis=-1)")
            } else if rng.chance(50) {
                format!("np.percentile({operand}, {})", rng.next() % 101)
            } else {
                format!("np.{f}({operand})")
            }
        }
    }
}

const DTYPES: [DType; 10] = DType::STORAGE;

fn image_bytes(rng: &mut Rng, dtype: DType, n: usize) -> Vec<u8> {
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.5,
        -2.5,
        0.5,
        f64::NAN,
        f64::INFINITY,
        3.0,
        100.0,
    ];
    (0..n)
        .flat_map(|_| {
            let s = if rng.chance(40) {
                Scalar::F64(specials[(rng.next() % specials.len() as u64) as usize]).cast(dtype)
            } else if dtype.is_float() {
                Scalar::F64((rng.next() % 2000) as f64 / 16.0 - 60.0).cast(dtype)
            } else {
                Scalar::from_bits(dtype, rng.next())
            };
            s.to_le_bytes()
        })
        .collect()
}

fn run_threads(k: &CompiledKernel, args: &voxcalc_ir::RunArgs<'_>, out: &mut [u8], threads: usize) {
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

#[test]
fn random_formulas_jit_equals_interpreter() {
    let mut accepted = 0;
    let total: u64 = std::env::var("VOXCALC_FORMULA_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    for seed in 0..total {
        let mut rng = Rng(seed * 7919 + 13);
        let n = [0usize, 1, BLOCK as usize - 1, BLOCK as usize + 1, 5][seed as usize % 5];
        let t = 1 + (rng.next() % 5) as usize;
        let depth = 1 + (rng.next() % 4) as u32;
        let formula = voxel_expr(&mut rng, depth);
        let mut env = Env::new();
        let mut images = Vec::new();
        for name in ["a", "b", "c", "v"] {
            let dtype = DTYPES[(rng.next() % 10) as usize];
            let shape = if name == "v" { vec![n, t] } else { vec![n] };
            let order = if rng.chance(25) {
                ByteOrder::Swapped
            } else {
                ByteOrder::Native
            };
            let mut bytes = image_bytes(&mut rng, dtype, shape.iter().product());
            if order == ByteOrder::Swapped {
                for e in bytes.chunks_mut(dtype.size()) {
                    e.reverse();
                }
            }
            env.bind(name, dtype, shape.clone());
            images.push((ImageLayout::fortran(&shape, order), bytes));
        }
        let parsed = voxcalc_syntax::parse(&formula);
        let Ok(tree) = voxcalc_check::check(&parsed.expr, &env) else {
            continue;
        };
        let layouts: Vec<ImageLayout> = images.iter().map(|(l, _)| l.clone()).collect();
        let p = match plan(&tree, &layouts) {
            Ok(p) => p,
            Err(e) => panic!("{formula}: {e}"),
        };
        accepted += 1;
        let bufs: Vec<InputBuf> = images
            .iter()
            .map(|(_, b)| InputBuf { bytes: b, base: 0 })
            .collect();
        let want = execute_interpreted(&p, &bufs);
        let compiled = compile_plan(&p, CompileOptions::default()).expect("compiles");
        for threads in [1, 2, 4] {
            let got = execute(&p, &bufs, |i, args, out| {
                run_threads(&compiled.kernels()[i], args, out, threads);
                Ok(())
            });
            // A failed run-time check (e.g. a percentile of an empty image) must fail alike.
            let (want, got) = match (&want, got) {
                (Ok(w), Ok(g)) => (w, g),
                (Err(ExecuteError::Check(w)), Err(ExecuteError::Check(g))) if *w == g => continue,
                (w, g) => panic!("{formula}: interpreter {w:?}, JIT {g:?}"),
            };
            if let Some((i, x, y)) = first_difference(p.output().dtype(), want, &got) {
                panic!(
                    "{formula} ({n} voxels, {threads} threads): element {i}: interpreter {x:#x}, JIT {y:#x}\n{p}"
                );
            }
        }
    }
    eprintln!("{accepted} of {total} random formulas checked and ran");
    // Most random formulas must type-check, or this test would prove little.
    assert!(
        accepted * 2 > total,
        "only {accepted} of {total} formulas checked"
    );
}
