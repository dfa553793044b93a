//! voxcalc's kernel IR.
//!
//! A formula becomes a plan of stages, each a [`Kernel`]: typed SSA values in an arena computing
//! one output voxel from strided views of the inputs, uniform scalars and constants, with
//! reductions as loops inside the per-voxel computation. This crate holds the IR, its builder
//! and validation, the optimisation passes ([`opt`]), the text printer ([`print`]) and the
//! reference interpreter ([`interp`]) whose scalar semantics ([`scalar`]) follow numpy exactly;
//! the JIT (crate `voxcalc-jit`) is tested against that interpreter bit for bit.

pub mod exec;
pub mod interp;
pub mod kernel;
pub mod opt;
pub mod plan;
pub mod print;
pub mod scalar;
pub mod split;
pub mod stream;
pub mod vmath;

pub use exec::{check_run, InputBuf, RunArgs, RunError};
pub use kernel::{
    BinaryOp, ByteOrder, InputId, Inst, InstKind, IrError, Kernel, KernelBuilder, Loop, LoopId,
    Reduce, ReduceOp, SumOrder, UnaryOp, ValueId, View, ViewId,
};
pub use scalar::{MathFn, Scalar};
