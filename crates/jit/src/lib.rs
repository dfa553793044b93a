//! voxcalc's Cranelift backend: compiles a kernel ([`voxcalc_ir::Kernel`]) into one native
//! function `kernel(args, start, end)` that computes output voxels `start..end`.
//!
//! This is the only crate that runs generated code. Each [`CompiledKernel`] shares ownership of
//! the `JITModule` holding its code (one module per [`compile`] call, one for all stages of a
//! [`compile_plan`] call), freed with the last kernel of it; the compiled function can be called
//! from many
//! threads at once (each call gets its own scratch memory and output block). Calls go through
//! [`CompiledKernel::run`], which checks every buffer against the kernel's views first (the same
//! check as the reference interpreter), so safe code can never make the kernel read or write out
//! of bounds.

mod codegen;
mod helpers;
mod vector;

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, OnceLock};

use cranelift_codegen::ir::{types, AbiParam, UserFuncName};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use voxcalc_ir::plan::{ExecuteError, Plan};
use voxcalc_ir::{check_run, InputBuf, Kernel, RunArgs, RunError};

/// A failure to compile a kernel (an invalid kernel, or a Cranelift error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitError(pub String);

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel compilation failed: {}", self.0)
    }
}

impl std::error::Error for JitError {}

/// Compilation options.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompileOptions {
    /// Keep the Cranelift IR text of the compiled function (for `voxcalc explain`); costs
    /// compile time, so off by default.
    pub keep_clif: bool,
}

/// The argument block the generated function reads (layout fixed: see `codegen::ARGS_*`).
#[repr(C)]
struct RawArgs {
    inputs: *const *const u8,
    output: *mut u8,
    uniforms: *const u64,
    scratch: *mut u8,
}

type KernelFn = unsafe extern "C" fn(*const RawArgs, u64, u64);

/// Voxels computed side by side by kernels with reductions.
const REDUCTION_LANES: usize = 4;

/// The JIT module that owns the code pages of a kernel, or of every kernel of a plan.
struct ModuleOwner(Option<JITModule>);

// SAFETY: the module is only used by the thread that compiles it, before the `CompiledKernel`
// is handed out; afterwards it is touched only by `Drop`, which has exclusive access. The code
// pages it owns are immutable once finalised.
unsafe impl Send for ModuleOwner {}
// SAFETY: no method reads or writes the module through a shared reference after compilation
// (see above), so sharing references across threads cannot race on it.
unsafe impl Sync for ModuleOwner {}

impl Drop for ModuleOwner {
    fn drop(&mut self) {
        if let Some(module) = self.0.take() {
            // SAFETY: the only pointers into this module's code are the `func` fields of the
            // `CompiledKernel`s sharing this owner through an `Arc`, so the owner is dropped
            // only with the last of them (or, on a compilation error, before any exists);
            // `run` borrows its kernel, so no call can be executing and none can start after
            // this point.
            unsafe { module.free_memory() };
        }
    }
}

/// A compiled kernel: the native function and the module owning its code.
pub struct CompiledKernel {
    kernel: Kernel,
    func: KernelFn,
    clif: Option<String>,
    scratch_bytes: usize,
    /// `(row length, vector voxels)` for kernels that finish rows with an overlapping last
    /// vector: runs of a row shorter than a vector must go to the interpreter.
    overlap: Option<(u64, u64)>,
    // Declared last so the code is freed after everything else is dropped. The kernels of one
    // plan share one module (one code allocation, one finalisation).
    _module: Arc<ModuleOwner>,
}

impl fmt::Debug for CompiledKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledKernel")
            .field("domain", &self.kernel.domain)
            .field("output", &self.kernel.output_dtype())
            .finish()
    }
}

/// How hard Cranelift optimises a plan's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OptLevel {
    /// No e-graph pass: for plans whose every stage takes the vector path, whose translation
    /// is already lean (constants and addresses hoisted, no redundant values), so Cranelift's
    /// optimisations found nothing measurable to gain (S1-S5 ran as fast without them) while
    /// costing a quarter to a third of the compile time.
    None,
    /// `opt_level=speed`: plans with scalar stages (per-lane reductions, helper calls).
    Speed,
}

/// The host ISA at `level` with `is_pic=false`, each built once per process.
fn isa(level: OptLevel) -> Result<OwnedTargetIsa, JitError> {
    static NONE: OnceLock<Result<OwnedTargetIsa, String>> = OnceLock::new();
    static SPEED: OnceLock<Result<OwnedTargetIsa, String>> = OnceLock::new();
    let (cell, name) = match level {
        OptLevel::None => (&NONE, "none"),
        OptLevel::Speed => (&SPEED, "speed"),
    };
    cell.get_or_init(|| {
        let mut flags = settings::builder();
        flags.set("opt_level", name).map_err(|e| e.to_string())?;
        flags.set("is_pic", "false").map_err(|e| e.to_string())?;
        // The IR verifier costs compile time; debug builds (and so the test suite) keep it.
        let verify = if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        };
        // Kernels never unwind (helpers do not panic through them): no unwind tables.
        flags
            .set("unwind_info", "false")
            .map_err(|e| e.to_string())?;
        flags
            .set("enable_verifier", verify)
            .map_err(|e| e.to_string())?;
        let isa_builder = cranelift_native::builder().map_err(|e| e.to_string())?;
        isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(JitError)
}

/// Prepares the process for fast compilations: builds the host ISAs and compiles (then frees)
/// a small vector kernel, so that Cranelift's code and tables are paged in and its lazily
/// built state exists. Callers that know a formula is coming (a CLI that is still opening its
/// images) can run this on another thread; it is never needed for correctness.
pub fn warm_up() {
    use voxcalc_ir::{ByteOrder, KernelBuilder, MathFn};
    use voxcalc_types::DType;
    // A float32 logarithm of int16 (callers that know typical formulas compile those too:
    // `voxcalc::warm_up`).
    let mut b = KernelBuilder::new(vec![64]);
    let input = b.input(DType::I16, ByteOrder::Native);
    let view = b.view(input, 0, vec![1], vec![]);
    let x = b.load(view);
    let x = b.cast(x, DType::F32);
    let x = b.unary(voxcalc_ir::UnaryOp::Math(MathFn::Log), x);
    if let Ok(kernel) = b.finish(x) {
        // A failure here would show again, with its message, at the real compilation.
        let _ = compile(&kernel, CompileOptions::default());
    }
    // Plans with scalar stages use the other ISA (an error shows again when one is compiled).
    let _ = isa(OptLevel::Speed);
}

/// Byte offsets and strides are computed in 64-bit arithmetic by the generated code; refuse
/// kernels whose views could overflow it (no real image comes near: 2^47 bytes).
fn check_offsets(kernel: &Kernel) -> Result<(), JitError> {
    const LIMIT: i128 = 1 << 47;
    let dims = kernel
        .domain
        .iter()
        .chain(kernel.loops.iter().map(|l| &l.len));
    if dims.map(|&d| d as i128).any(|d| d > LIMIT) {
        return Err(JitError("a domain axis or loop is too long".into()));
    }
    for (i, v) in kernel.views.iter().enumerate() {
        let size = kernel.inputs[v.input.index()].dtype.size() as i128;
        let (lo, hi) = kernel.view_extent(voxcalc_ir::ViewId(i as u32));
        let strides = v
            .domain_strides
            .iter()
            .chain(v.loop_strides.iter().map(|(_, s)| s));
        let too_far = |x: i64| (x as i128 * size).abs() > LIMIT;
        if too_far(v.offset) || too_far(lo) || too_far(hi) || strides.copied().any(too_far) {
            return Err(JitError(format!(
                "view{i} reaches too far for 64-bit offsets"
            )));
        }
    }
    Ok(())
}

/// Compiles a kernel. The kernel is validated first; an invalid kernel is an error, not a panic.
pub fn compile(kernel: &Kernel, options: CompileOptions) -> Result<CompiledKernel, JitError> {
    let mut kernels = compile_all(&[kernel], options)?;
    kernels
        .pop()
        .ok_or_else(|| JitError("no kernel compiled".into()))
}

thread_local! {
    /// Cranelift's contexts, reused by the compilations on one thread so their allocations are
    /// made once (Cranelift clears them between functions).
    static CONTEXTS: RefCell<Option<(Context, FunctionBuilderContext)>> =
        const { RefCell::new(None) };
}

/// A kernel translated into a module, not yet finalised.
struct Defined {
    id: FuncId,
    lanes: usize,
    clif: Option<String>,
}

/// Compiles several kernels into one JIT module: one module creation and one finalisation
/// (with its page-protection calls) for a whole plan instead of one per stage.
fn compile_all(
    kernels: &[&Kernel],
    options: CompileOptions,
) -> Result<Vec<CompiledKernel>, JitError> {
    let trace = Trace::start();
    for kernel in kernels {
        kernel.validate().map_err(|e| JitError(e.to_string()))?;
        check_offsets(kernel)?;
    }
    trace.mark("validate");
    let level = if kernels.iter().all(|k| vector::plan(k).is_some()) {
        OptLevel::None
    } else {
        OptLevel::Speed
    };
    let isa = isa(level)?;
    trace.mark("isa");
    let helper_sigs = helpers::table();
    trace.mark("helpers");
    let mut jit_builder = JITBuilder::with_isa(isa.clone(), default_libcall_names());
    // Helpers resolve through the static table (registering ~80 symbols per compilation
    // would cost more than compiling a small kernel).
    jit_builder.symbol_lookup_fn(Box::new(|name| {
        helpers::table().get(name).map(|h| h.addr as *const u8)
    }));
    // The module owns its code from here on, so an error below frees what was allocated.
    let mut owner = ModuleOwner(Some(JITModule::new(jit_builder)));
    let module = owner.0.as_mut().expect("just created");
    trace.mark("module");
    // Contexts left by an earlier compilation on this thread keep their allocations; after an
    // error they are dropped instead of returned (they may hold a half-built function).
    let (mut ctx, mut fb_ctx) = CONTEXTS
        .with(|c| c.borrow_mut().take())
        .unwrap_or_else(|| (Context::new(), FunctionBuilderContext::new()));
    trace.mark("contexts");
    let mut defined = Vec::with_capacity(kernels.len());
    for (i, kernel) in kernels.iter().enumerate() {
        // Kernels with reductions compute several voxels side by side: their sequential
        // accumulations are long dependency chains that otherwise leave the pipeline idle.
        // Those the vector path takes hold the voxels in vector lanes instead (a quarter of
        // the code to compile).
        let has_reduction = kernel
            .insts
            .iter()
            .any(|i| matches!(i.kind, voxcalc_ir::InstKind::Reduce(_)))
            && vector::plan(kernel).is_none();
        // A domain smaller than the lanes (a global reduction's single voxel) would only
        // repeat its voxels.
        let lanes = if has_reduction {
            REDUCTION_LANES.min(kernel.n_voxels().max(1) as usize)
        } else {
            1
        };
        let ptr = types::I64;
        ctx.func.signature.call_conv = isa.default_call_conv();
        ctx.func.signature.params.push(AbiParam::new(ptr));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        ctx.func.name = UserFuncName::user(0, i as u32);
        {
            let builder = FunctionBuilder::new(&mut ctx.func, &mut fb_ctx);
            codegen::Translator::new(kernel, builder, module, helper_sigs, lanes).translate()?;
        }
        trace.mark("translate");
        let id = module
            .declare_function(
                &format!("voxcalc_kernel{i}"),
                Linkage::Local,
                &ctx.func.signature,
            )
            .map_err(|e| JitError(e.to_string()))?;
        // `VOXCALC_JIT_DISASM`: print each stage's machine code (a development aid).
        static DISASM: OnceLock<bool> = OnceLock::new();
        let disasm = *DISASM.get_or_init(|| std::env::var_os("VOXCALC_JIT_DISASM").is_some());
        ctx.set_disasm(disasm);
        module
            .define_function(id, &mut ctx)
            .map_err(|e| JitError(format!("{e:?}")))?;
        if disasm {
            if let Some(code) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()) {
                eprintln!("stage {i} machine code:\n{code}");
            }
        }
        trace.mark("define");
        let clif = options.keep_clif.then(|| ctx.func.display().to_string());
        module.clear_context(&mut ctx);
        defined.push(Defined { id, lanes, clif });
    }
    CONTEXTS.with(|c| *c.borrow_mut() = Some((ctx, fb_ctx)));
    trace.mark("loop-end");
    module
        .finalize_definitions()
        .map_err(|e| JitError(e.to_string()))?;
    trace.mark("finalize");
    let funcs: Vec<KernelFn> = defined
        .iter()
        .map(|d| {
            let code = module.get_finalized_function(d.id);
            // SAFETY: `code` is the finalised entry of a function just defined with the
            // signature (i64, i64, i64) -> () in the ISA's default (System V / C) calling
            // convention, which is the ABI of `KernelFn`. It stays valid while the module
            // lives, which every returned `CompiledKernel` guarantees by sharing its owner.
            unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
        })
        .collect();
    let owner = Arc::new(owner);
    let out = kernels
        .iter()
        .zip(defined)
        .zip(funcs)
        .map(|((kernel, d), func)| CompiledKernel {
            kernel: (*kernel).clone(),
            func,
            clif: d.clif,
            scratch_bytes: kernel.scratch_bytes() * d.lanes,
            overlap: codegen::overlapping_tail(kernel, d.lanes)
                .and_then(|v| Some((*kernel.domain.first()?, v as u64))),
            _module: owner.clone(),
        })
        .collect();
    trace.mark("wrap");
    trace.finish();
    Ok(out)
}

/// Phase timings of one compilation, printed to stderr when `VOXCALC_JIT_TRACE` is set
/// (a development aid for compile latency).
struct Trace {
    marks: Option<RefCell<TraceMarks>>,
}

/// When the last phase ended, and each phase's name, duration and the process's page faults
/// at its end.
type TraceMarks = (
    std::time::Instant,
    Vec<(&'static str, std::time::Duration, u64)>,
);

/// Minor page faults of this process so far (trace only).
fn minflt() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split(' ').nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

impl Trace {
    fn start() -> Trace {
        static ON: OnceLock<bool> = OnceLock::new();
        let on = *ON.get_or_init(|| std::env::var_os("VOXCALC_JIT_TRACE").is_some());
        Trace {
            marks: on.then(|| RefCell::new((std::time::Instant::now(), Vec::new()))),
        }
    }

    fn mark(&self, what: &'static str) {
        if let Some(m) = &self.marks {
            let mut m = m.borrow_mut();
            let f = minflt();
            let now = std::time::Instant::now();
            let d = now - m.0;
            m.1.push((what, d, f));
            m.0 = std::time::Instant::now();
        }
    }

    fn finish(&self) {
        if let Some(m) = &self.marks {
            let m = m.borrow();
            let parts: Vec<String> =
                m.1.iter()
                    .map(|(w, d, f)| format!("{w} {:.0}/{f}", d.as_secs_f64() * 1e6))
                    .collect();
            eprintln!("jit trace (us): {}", parts.join(", "));
        }
    }
}

impl CompiledKernel {
    /// The kernel this was compiled from.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The Cranelift IR of the compiled function after Cranelift's optimisations, when
    /// compiled with [`CompileOptions::keep_clif`].
    pub fn clif(&self) -> Option<&str> {
        self.clif.as_deref()
    }

    /// Computes domain points `start..end` into `out`, which holds exactly those points (dense,
    /// native byte order, output dtype). Buffers are checked against every view first.
    pub fn run(
        &self,
        args: &RunArgs<'_>,
        out: &mut [u8],
        start: u64,
        end: u64,
    ) -> Result<(), RunError> {
        check_run(&self.kernel, args, out, start, end)?;
        let Some((row, lanes)) = self.overlap else {
            return self.call(args, out, start, end);
        };
        // The kernel steps back within a run of a row to finish it with a whole vector, so a
        // run shorter than a vector (at most one at each end of `start..end`) is interpreted.
        let size = self.kernel.output_dtype().size();
        let (mut a, mut b) = (start, end);
        // Byte range in `out` of voxels `x..y`.
        let slice = |x: u64, y: u64| ((x - start) as usize * size, (y - start) as usize * size);
        let first_end = (a / row + 1).saturating_mul(row).min(b);
        if a % row != 0 && first_end - a < lanes {
            let (x, y) = slice(a, first_end);
            voxcalc_ir::interp::run(&self.kernel, args, &mut out[x..y], a, first_end)?;
            a = first_end;
        }
        let last_start = (b - b % row).max(a);
        if a < b && b % row != 0 && b - last_start < lanes {
            let (x, y) = slice(last_start, b);
            voxcalc_ir::interp::run(&self.kernel, args, &mut out[x..y], last_start, b)?;
            b = last_start;
        }
        let (x, y) = slice(a, b);
        self.call(args, &mut out[x..y], a, b)
    }

    /// Calls the compiled function for voxels `start..end` into `out`.
    fn call(
        &self,
        args: &RunArgs<'_>,
        out: &mut [u8],
        start: u64,
        end: u64,
    ) -> Result<(), RunError> {
        check_run(&self.kernel, args, out, start, end)?;
        if start == end {
            return Ok(());
        }
        let input_ptrs: Vec<*const u8> = args
            .inputs
            .iter()
            .map(|b| b.bytes.as_ptr().wrapping_add(b.base))
            .collect();
        let mut scratch = vec![0u64; self.scratch_bytes.div_ceil(8)];
        let raw = RawArgs {
            inputs: input_ptrs.as_ptr(),
            output: out.as_mut_ptr(),
            uniforms: args.uniforms.as_ptr(),
            scratch: scratch.as_mut_ptr() as *mut u8,
        };
        // SAFETY: `check_run` proved that every byte each view reaches over the whole domain
        // lies inside its buffer (so the base pointers plus any offset the kernel computes stay
        // in bounds), that `out` holds exactly `end - start` output elements (the kernel writes
        // only those), and that `uniforms` has one slot per kernel uniform. Scratch holds
        // `scratch_bytes` bytes, the kernel's own requirement. All pointers outlive the call,
        // and `out` and `scratch` are exclusively borrowed, so no other thread touches them.
        unsafe { (self.func)(&raw, start, end) };
        Ok(())
    }

    /// Runs the whole domain into a new buffer (convenience for tests and small kernels).
    pub fn run_all(&self, args: &RunArgs<'_>) -> Result<Vec<u8>, RunError> {
        let n = self.kernel.n_voxels();
        let mut out = vec![0u8; n as usize * self.kernel.output_dtype().size()];
        self.run(args, &mut out, 0, n)?;
        Ok(out)
    }
}

/// Every stage of a plan, compiled.
#[derive(Debug)]
pub struct CompiledPlan {
    plan: Plan,
    kernels: Vec<CompiledKernel>,
}

/// Compiles every stage of a plan (one JIT module for all stages).
pub fn compile_plan(plan: &Plan, options: CompileOptions) -> Result<CompiledPlan, JitError> {
    let stages: Vec<&Kernel> = plan.stages.iter().map(|s| &s.kernel).collect();
    let kernels = compile_all(&stages, options)?;
    Ok(CompiledPlan {
        plan: plan.clone(),
        kernels,
    })
}

impl CompiledPlan {
    /// The plan this was compiled from.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The compiled kernel of each stage, in execution order.
    pub fn kernels(&self) -> &[CompiledKernel] {
        &self.kernels
    }

    /// Runs every stage on one thread, each over its whole domain, and returns the output
    /// stage's buffer (dense, Fortran order). `images[i]` is image `i` of the checker's
    /// environment. The runtime crate runs the same stages in blocks over threads.
    /// Stops with [`ExecuteError::Check`] when a run-time check of the plan fails.
    pub fn execute(&self, images: &[InputBuf<'_>]) -> Result<Vec<u8>, ExecuteError> {
        voxcalc_ir::plan::execute(&self.plan, images, |i, args, out| {
            let k = &self.kernels[i];
            k.run(args, out, 0, k.kernel().n_voxels())
        })
    }

    /// The plan, each stage's kernel IR and, when compiled with
    /// [`CompileOptions::keep_clif`], each stage's Cranelift IR: what `voxcalc explain` prints.
    pub fn explain(&self) -> String {
        let mut s = self.plan.to_string();
        for (i, k) in self.kernels.iter().enumerate() {
            if let Some(clif) = k.clif() {
                s.push_str(&format!("stage {i} Cranelift IR:\n{clif}"));
            }
        }
        s
    }
}

/// What `voxcalc explain` prints for a checked formula: the typed tree, the plan with each
/// stage's kernel IR, and each stage's Cranelift IR after Cranelift's optimisations.
pub fn explain(
    tree: &voxcalc_check::tir::Tree,
    layouts: &[voxcalc_ir::plan::ImageLayout],
) -> Result<String, JitError> {
    let plan = voxcalc_ir::plan::plan(tree, layouts).map_err(|e| JitError(e.to_string()))?;
    let compiled = compile_plan(&plan, CompileOptions { keep_clif: true })?;
    Ok(format!(
        "typed tree:\n{}\nplan:\n{}",
        tree.to_text(),
        compiled.explain()
    ))
}
