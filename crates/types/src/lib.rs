//! numpy's type system as voxcalc needs it: dtypes, numpy 2 (NEP 50) promotion including weak
//! Python scalars, ufunc loop selection, shapes and broadcasting. Pure functions, no
//! dependencies.

pub mod dtype;
pub mod promote;
pub mod shape;
pub mod ufunc;

pub use dtype::DType;
pub use promote::{common_dtype, operand_dtypes, promote, result_type, Operand, PromoteError};
pub use shape::{broadcast, broadcast_all, BroadcastError, Shape};
pub use ufunc::{find_loop, parse_loop, parse_loops, Loop};
