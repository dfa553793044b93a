//! Differential property test: random well-typed kernels over random dtypes, byte orders,
//! layouts and small shapes; the JIT must equal the reference interpreter bit for bit (NaN
//! positions included, NaN payloads not compared), for voxel counts at block tails and for 1, 2
//! and 4 threads. The optimised kernel must also equal the unoptimised one in the interpreter.

mod common;

use common::{first_difference, interp_blocks, run_blocks, BLOCK};
use proptest::prelude::*;
use voxcalc_ir::opt::{optimize, OptOptions};
use voxcalc_ir::{
    BinaryOp, ByteOrder, InputBuf, Kernel, KernelBuilder, LoopId, MathFn, ReduceOp, RunArgs,
    Scalar, SumOrder, UnaryOp, ValueId, ViewId,
};
use voxcalc_jit::{compile, CompileOptions};
use voxcalc_types::DType;

/// splitmix64: a tiny deterministic generator driven by the proptest seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const DTYPES: [DType; 11] = [
    DType::Bool,
    DType::U8,
    DType::I8,
    DType::U16,
    DType::I16,
    DType::U32,
    DType::I32,
    DType::U64,
    DType::I64,
    DType::F32,
    DType::F64,
];

/// A value with special bit patterns mixed in: signed zeros, infinities, NaNs, subnormals,
/// integer extremes, rounding ties.
fn random_scalar(rng: &mut Rng, dtype: DType) -> Scalar {
    let special_f64 = [
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        5e-324,
        -2.5,
        0.5,
        1.5,
        2.5,
        -1.0,
        1.0,
        3.0,
        1e10,
        -1e19,
        65536.0,
        300.7,
    ];
    match dtype {
        DType::F32 | DType::F64 if rng.chance(20) => {
            Scalar::F64(rng.pick(&special_f64)).cast(dtype)
        }
        DType::F32 => Scalar::F32(if rng.chance(20) {
            f32::from_bits(rng.next() as u32)
        } else {
            (rng.below(2000) as f32 - 1000.0) / 8.0
        }),
        DType::F64 => Scalar::F64(if rng.chance(20) {
            f64::from_bits(rng.next())
        } else {
            (rng.below(2000) as f64 - 1000.0) / 8.0
        }),
        _ if rng.chance(40) => Scalar::I64(rng.below(9) as i64 - 4).cast(dtype),
        _ => Scalar::from_bits(dtype, rng.next()),
    }
}

struct Gen {
    rng: Rng,
    b: KernelBuilder,
    /// Per input: its dtype, strides (domain axes, then the time axis) and time length.
    arrays: Vec<(voxcalc_ir::InputId, Vec<i64>)>,
    time_len: u64,
    /// Views readable at the current scope, and the value pool of each open scope.
    domain_views: Vec<ViewId>,
    loop_views: Vec<Vec<ViewId>>,
    pools: Vec<Vec<ValueId>>,
    n_reduces: usize,
    /// The dtypes values are drawn from.
    dtypes: Vec<DType>,
    /// Single-dtype mode: only `T` and bool, no reductions or calls (the SIMD path's domain).
    only: Option<DType>,
    /// SIMD mode (single-dtype or mixed): no reductions, byte swaps, or operations without a
    /// vector form, except the odd one that sends a kernel back to the scalar path.
    simd: bool,
}

/// The dtypes the SIMD path holds in vectors (mixed-dtype mode draws from these).
const VECTOR_DTYPES: [DType; 9] = [
    DType::Bool,
    DType::U8,
    DType::I8,
    DType::U16,
    DType::I16,
    DType::U32,
    DType::I32,
    DType::F32,
    DType::F64,
];

impl Gen {
    fn dtype(&self, v: ValueId) -> DType {
        self.b.kernel().dtype(v)
    }

    fn remember(&mut self, v: ValueId) -> ValueId {
        self.pools.last_mut().unwrap().push(v);
        v
    }

    fn leaf(&mut self) -> ValueId {
        let choice = self.rng.below(10);
        if choice < 4 {
            let views = self.loop_views.last().cloned().unwrap_or_default();
            let view = if !views.is_empty() && self.rng.chance(70) {
                self.rng.pick(&views)
            } else {
                self.rng.pick(&self.domain_views)
            };
            let v = self.b.load(view);
            self.remember(v)
        } else if choice < 6 {
            let pool: Vec<ValueId> = self.pools.iter().flatten().copied().collect();
            if pool.is_empty() {
                let dt = self.rng.pick(&self.dtypes);
                let s = random_scalar(&mut self.rng, dt);
                return self.b.constant(s);
            }
            self.rng.pick(&pool)
        } else if choice < 9 {
            let dt = self.rng.pick(&self.dtypes);
            let s = random_scalar(&mut self.rng, dt);
            self.b.constant(s)
        } else {
            let dt = match self.only {
                Some(t) => t,
                None if self.simd => self.rng.pick(&VECTOR_DTYPES),
                None => self.rng.pick(&DTYPES),
            };
            self.b.uniform(dt)
        }
    }

    fn expr_of(&mut self, dtype: DType, depth: u32) -> ValueId {
        let v = self.expr(depth);
        let v = self.b.cast(v, dtype);
        self.remember(v)
    }

    fn expr(&mut self, depth: u32) -> ValueId {
        if depth == 0 || self.rng.chance(10) {
            return self.leaf();
        }
        let v = match self.rng.below(12) {
            0..=2 => self.unary(depth),
            3..=7 => self.binary(depth),
            8 => {
                let c = self.expr_of(DType::Bool, depth - 1);
                let a = self.expr(depth - 1);
                let dt = self.dtype(a);
                let b = self.expr_of(dt, depth - 1);
                self.b.select(c, a, b)
            }
            9 => {
                let a = self.expr(depth - 1);
                let to = self.rng.pick(&self.dtypes);
                self.b.cast(a, to)
            }
            _ if !self.simd && self.n_reduces < 4 && self.loop_views.len() < 2 => {
                self.reduce(depth)
            }
            _ => self.binary(depth),
        };
        self.remember(v)
    }

    fn unary(&mut self, depth: u32) -> ValueId {
        let a = self.expr(depth - 1);
        let dt = self.dtype(a);
        if dt.is_float() && self.simd && self.only.is_none() && self.rng.chance(25) {
            // The calls with a vector form.
            let f = self.rng.pick(&[MathFn::Log, MathFn::Exp]);
            return self.b.unary(UnaryOp::Math(f), a);
        }
        let op = if dt.is_float() {
            let f = self.rng.pick(&MathFn::ALL);
            // Calls (transcendental functions but float32 log, float16 rounding) have no
            // vector form.
            let (f, round) = if self.only.is_some() {
                (UnaryOp::Rint, UnaryOp::Rint)
            } else if self.simd {
                let f = if self.rng.chance(80) { MathFn::Log } else { f };
                (UnaryOp::Math(f), UnaryOp::Rint)
            } else {
                (UnaryOp::Math(f), UnaryOp::RoundF16)
            };
            self.rng.pick(&[
                UnaryOp::Neg,
                UnaryOp::Abs,
                UnaryOp::Sqrt,
                UnaryOp::Floor,
                UnaryOp::Ceil,
                UnaryOp::Trunc,
                UnaryOp::Rint,
                UnaryOp::IsNan,
                UnaryOp::IsInf,
                UnaryOp::IsFinite,
                UnaryOp::SignBit,
                round,
                f,
            ])
        } else if dt == DType::Bool {
            UnaryOp::Not
        } else {
            self.rng.pick(&[UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Not])
        };
        self.b.unary(op, a)
    }

    fn binary(&mut self, depth: u32) -> ValueId {
        let a = self.expr(depth - 1);
        // Bias towards float arithmetic, the bulk of real formulas.
        let a = if self.only.is_none() && self.rng.chance(40) {
            let to = self.rng.pick(&[DType::F32, DType::F64]);
            self.b.cast(a, to)
        } else {
            a
        };
        let dt = self.dtype(a);
        let b = self.expr_of(dt, depth - 1);
        let cmp = [
            BinaryOp::Eq,
            BinaryOp::Ne,
            BinaryOp::Lt,
            BinaryOp::Le,
            BinaryOp::Gt,
            BinaryOp::Ge,
        ];
        let c = self.rng.pick(&cmp);
        if self.simd {
            // The operations the SIMD path has vector forms for.
            let op = if dt == DType::Bool {
                self.rng.pick(&[BinaryOp::And, BinaryOp::Or, BinaryOp::Xor])
            } else if dt.is_float() {
                self.rng.pick(&[
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Div,
                    BinaryOp::Min,
                    BinaryOp::Max,
                    BinaryOp::FMin,
                    BinaryOp::FMax,
                    c,
                ])
            } else {
                let mul = if dt.size() > 1 {
                    BinaryOp::Mul
                } else {
                    BinaryOp::Add
                };
                self.rng.pick(&[
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    mul,
                    BinaryOp::Min,
                    BinaryOp::Max,
                    BinaryOp::And,
                    BinaryOp::Or,
                    BinaryOp::Xor,
                    c,
                ])
            };
            return self.b.binary(op, a, b);
        }
        let op = if dt.is_float() {
            self.rng.pick(&[
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::Div,
                BinaryOp::FloorDiv,
                BinaryOp::Mod,
                BinaryOp::Fmod,
                BinaryOp::Pow,
                BinaryOp::Min,
                BinaryOp::Max,
                BinaryOp::FMin,
                BinaryOp::FMax,
                BinaryOp::CopySign,
                BinaryOp::Atan2,
                BinaryOp::Hypot,
                BinaryOp::LogAddExp,
                c,
            ])
        } else if dt == DType::Bool {
            self.rng.pick(&[
                BinaryOp::And,
                BinaryOp::Or,
                BinaryOp::Xor,
                BinaryOp::Min,
                BinaryOp::Max,
                c,
            ])
        } else {
            self.rng.pick(&[
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::FloorDiv,
                BinaryOp::Mod,
                BinaryOp::Fmod,
                BinaryOp::Pow,
                BinaryOp::Min,
                BinaryOp::Max,
                BinaryOp::And,
                BinaryOp::Or,
                BinaryOp::Xor,
                BinaryOp::Shl,
                BinaryOp::Shr,
                c,
            ])
        };
        self.b.binary(op, a, b)
    }

    fn reduce(&mut self, depth: u32) -> ValueId {
        self.n_reduces += 1;
        let t = self.b.new_loop(self.rng.below(self.time_len + 1));
        let mut loops = vec![t];
        // Sometimes also reduce over domain axis 0 (the loop replaces that axis).
        let domain0 = self.b.kernel().domain.first().copied().unwrap_or(1);
        let over_axis0 = self.rng.chance(40) && domain0 > 0 && domain0 <= 8;
        let a0 = over_axis0.then(|| self.b.new_loop(domain0));
        loops.extend(a0);
        let views: Vec<ViewId> = self
            .arrays
            .clone()
            .into_iter()
            .map(|(input, strides)| {
                let nd = strides.len() - 1;
                let mut domain_strides = strides[..nd].to_vec();
                let mut loop_strides: Vec<(LoopId, i64)> = vec![(t, strides[nd])];
                if let Some(a0) = a0 {
                    loop_strides.push((a0, domain_strides[0]));
                    domain_strides[0] = 0;
                }
                self.b.view(input, 0, domain_strides, loop_strides)
            })
            .collect();
        let elem_dtype = self.rng.pick(&DTYPES);
        let op = if elem_dtype.is_float() {
            let q = self.rng.below(101) as f64 / 100.0;
            let data = self
                .rng
                .pick(&[DType::I16, DType::U8, DType::I64, elem_dtype]);
            self.rng.pick(&[
                ReduceOp::Sum(SumOrder::Sequential),
                ReduceOp::Sum(SumOrder::Pairwise),
                ReduceOp::Sum(SumOrder::PairwiseAll),
                ReduceOp::Sum(SumOrder::PairwiseGlobal),
                ReduceOp::Prod,
                ReduceOp::Min,
                ReduceOp::Max,
                ReduceOp::FMin,
                ReduceOp::FMax,
                ReduceOp::ArgMin,
                ReduceOp::ArgMax,
                ReduceOp::Any,
                ReduceOp::All,
                ReduceOp::Count,
                ReduceOp::Median,
                ReduceOp::Quantile {
                    q,
                    data_dtype: data,
                },
            ])
        } else if elem_dtype == DType::Bool {
            self.rng.pick(&[
                ReduceOp::Min,
                ReduceOp::Max,
                ReduceOp::ArgMin,
                ReduceOp::ArgMax,
                ReduceOp::Any,
                ReduceOp::All,
                ReduceOp::Count,
            ])
        } else {
            self.rng.pick(&[
                ReduceOp::Sum(SumOrder::Sequential),
                ReduceOp::Sum(SumOrder::Pairwise),
                ReduceOp::Prod,
                ReduceOp::Min,
                ReduceOp::Max,
                ReduceOp::ArgMin,
                ReduceOp::ArgMax,
                ReduceOp::Any,
                ReduceOp::All,
                ReduceOp::Count,
            ])
        };
        let with_mask = self.rng.chance(40);
        self.loop_views.push(views);
        self.pools.push(Vec::new());
        // The builder's closure cannot borrow `self`, so build the body first into the
        // builder by temporarily taking it out.
        let mut b = std::mem::replace(&mut self.b, KernelBuilder::new(vec![]));
        let v = b.reduce(op, loops, |inner| {
            std::mem::swap(&mut self.b, inner);
            let elem = self.expr_of(elem_dtype, depth - 1);
            let mask = with_mask.then(|| self.expr_of(DType::Bool, depth - 1));
            std::mem::swap(&mut self.b, inner);
            (elem, mask)
        });
        self.b = b;
        self.pools.pop();
        self.loop_views.pop();
        v
    }
}

/// Builds a random kernel and its input buffers from a seed.
fn random_case(seed: u64, n_voxels: u64) -> (Kernel, Vec<Vec<u8>>, Vec<usize>, Vec<u64>) {
    let mut rng = Rng(seed);
    // Factor the voxel count into a domain of rank 1 to 3.
    let mut domain = vec![n_voxels];
    for _ in 0..rng.below(3) {
        let last = *domain.last().unwrap();
        let divisors: Vec<u64> = (2..=last.min(8)).filter(|d| last % d == 0).collect();
        if divisors.is_empty() {
            break;
        }
        let d = rng.pick(&divisors);
        *domain.last_mut().unwrap() = d;
        domain.push(last / d);
    }
    let time_len = rng.below(6) + 1;
    let mode = rng.below(100);
    let simd = mode < 60;
    let only = (mode < 30).then(|| {
        rng.pick(&[
            DType::F32,
            DType::F64,
            DType::I32,
            DType::U32,
            DType::I16,
            DType::U16,
            DType::I8,
            DType::U8,
        ])
    });
    let mut b = KernelBuilder::new(domain.clone());
    let mut arrays = Vec::new();
    let mut buffers = Vec::new();
    let mut bases = Vec::new();
    let mut domain_views = Vec::new();
    for _ in 0..rng.below(3) + 1 {
        let dtype = match only {
            Some(t) => t,
            None if simd => rng.pick(&VECTOR_DTYPES),
            None => rng.pick(&DTYPES),
        };
        let order = if !simd && rng.chance(30) {
            ByteOrder::Swapped
        } else {
            ByteOrder::Native
        };
        let input = b.input(dtype, order);
        // Array shape: domain + [time]; Fortran order (axis 0 fastest) or C order, with some
        // domain axes broadcast (stride 0).
        let mut shape = domain.clone();
        shape.push(time_len);
        let mut strides = vec![0i64; shape.len()];
        let mut step = 1i64;
        let axes: Vec<usize> = if simd || rng.chance(50) {
            (0..shape.len()).collect()
        } else {
            (0..shape.len()).rev().collect()
        };
        for k in axes {
            if k < domain.len() && rng.chance(15) {
                continue;
            }
            strides[k] = step;
            step *= shape[k].max(1) as i64;
        }
        let n_elems = step as usize;
        let base = rng.below(4) as usize;
        let mut bytes: Vec<u8> = (0..base).map(|_| rng.next() as u8).collect();
        for _ in 0..n_elems {
            let s = random_scalar(&mut rng, dtype);
            let mut e = s.to_le_bytes();
            if order == ByteOrder::Swapped {
                e.reverse();
            }
            bytes.extend(e);
        }
        let t0 = rng.below(time_len) as i64;
        let nd = domain.len();
        domain_views.push(b.view(input, t0 * strides[nd], strides[..nd].to_vec(), vec![]));
        arrays.push((input, strides));
        buffers.push(bytes);
        bases.push(base);
    }
    let mut g = Gen {
        rng,
        b,
        arrays,
        time_len,
        domain_views,
        loop_views: Vec::new(),
        pools: vec![Vec::new()],
        n_reduces: 0,
        dtypes: match only {
            Some(t) => vec![t, t, t, DType::Bool],
            None if simd => VECTOR_DTYPES.to_vec(),
            None => DTYPES.to_vec(),
        },
        only,
        simd,
    };
    let out_dtype = match only {
        Some(t) => t,
        None => g.rng.pick(&g.dtypes.clone()),
    };
    let depth = g.rng.below(4) as u32 + 2;
    let out = g.expr_of(out_dtype, depth);
    let uniforms: Vec<u64> = {
        let kernel = g.b.kernel();
        let dts = kernel.uniforms.clone();
        dts.into_iter()
            .map(|dt| random_scalar(&mut g.rng, dt).to_bits())
            .collect()
    };
    let kernel = g.b.finish(out).expect("the generator builds valid kernels");
    (kernel, buffers, bases, uniforms)
}

fn check_case(seed: u64, n_voxels: u64) -> Result<(), TestCaseError> {
    let (kernel, buffers, bases, uniforms) = random_case(seed, n_voxels);
    let inputs: Vec<InputBuf> = buffers
        .iter()
        .zip(&bases)
        .map(|(bytes, &base)| InputBuf { bytes, base })
        .collect();
    let args = RunArgs {
        inputs: &inputs,
        uniforms: &uniforms,
    };
    let expected = interp_blocks(&kernel, &args);
    let dtype = kernel.output_dtype();
    let optimised = optimize(&kernel, OptOptions::default());
    let from_opt = interp_blocks(&optimised, &args);
    if let Some((i, a, b)) = first_difference(dtype, &expected, &from_opt) {
        return Err(TestCaseError::fail(format!(
            "optimised kernel differs at voxel {i}: {a:#x} vs {b:#x}\n{kernel}\n{optimised}"
        )));
    }
    let compiled = compile(&kernel, CompileOptions::default())
        .map_err(|e| TestCaseError::fail(format!("{e}\n{kernel}")))?;
    for threads in [1, 2, 4] {
        let got = run_blocks(&compiled, &args, threads);
        if let Some((i, a, b)) = first_difference(dtype, &expected, &got) {
            return Err(TestCaseError::fail(format!(
                "JIT ({threads} threads) differs at voxel {i}: interpreter {a:#x}, JIT {b:#x}\n{kernel}"
            )));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn jit_equals_interpreter(
        seed in any::<u64>(),
        n_voxels in prop_oneof![
            Just(0u64), Just(1), Just(BLOCK - 1), Just(BLOCK + 1), Just(3 * BLOCK), 2u64..40
        ],
    ) {
        check_case(seed, n_voxels)?;
    }
}

/// The SIMD-mode cases must actually exercise the SIMD path (vector types in the compiled
/// Cranelift IR), mixed-dtype kernels and the vector logarithm included, or the property above
/// would not cover them. (Kernels whose rows are shorter than a vector get no vector code.)
#[test]
fn simd_mode_kernels_take_the_simd_path() {
    let (mut vectorised, mut mixed, mut with_log) = (0, 0, 0);
    for seed in 0..1000u64 {
        let (kernel, ..) = random_case(seed.wrapping_mul(0x2545f4914f6cdd1d), 70);
        let c = compile(&kernel, CompileOptions { keep_clif: true }).expect("compiles");
        let clif = c.clif().unwrap_or_default();
        if !["f32x4", "f64x2", "i32x4", "i16x8", "i8x16"]
            .iter()
            .any(|t| clif.contains(t))
        {
            continue;
        }
        vectorised += 1;
        let mut dtypes: Vec<DType> = kernel
            .insts
            .iter()
            .map(|i| i.dtype)
            .filter(|&d| d != DType::Bool)
            .collect();
        dtypes.sort_by_key(|d| d.size());
        dtypes.dedup();
        if dtypes.len() > 1 {
            mixed += 1;
        }
        if kernel.insts.iter().any(|i| {
            matches!(
                i.kind,
                voxcalc_ir::InstKind::Unary(UnaryOp::Math(MathFn::Log | MathFn::Exp), _)
            )
        }) {
            with_log += 1;
        }
    }
    assert!(
        vectorised >= 200 && mixed >= 70 && with_log >= 8,
        "of 1000 kernels {vectorised} were vectorised, {mixed} with mixed dtypes, {with_log} with log or exp"
    );
    eprintln!(
        "of 1000 random kernels {vectorised} vectorised, {mixed} mixed, {with_log} with log or exp"
    );
}
