//! numpy's type system as voxcalc needs it: dtypes, numpy 2 (NEP 50) promotion including weak
//! Python scalars, shapes and broadcasting. Pure functions, no dependencies.

pub mod dtype;

pub use dtype::DType;
