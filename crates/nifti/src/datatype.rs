//! NIfTI datatype codes and their mapping to numpy dtypes.

use voxcalc_types::DType;

/// Maps a NIfTI `datatype` code to the storage dtype voxcalc reads. `Ok(None)` is never
/// returned: the error side says whether the code is known-but-unsupported (with its NIfTI name)
/// or unknown.
pub fn dtype_from_code(code: i16) -> Result<DType, CodeProblem> {
    match code {
        2 => Ok(DType::U8),
        4 => Ok(DType::I16),
        8 => Ok(DType::I32),
        16 => Ok(DType::F32),
        64 => Ok(DType::F64),
        256 => Ok(DType::I8),
        512 => Ok(DType::U16),
        768 => Ok(DType::U32),
        1024 => Ok(DType::I64),
        1280 => Ok(DType::U64),
        1 => Err(CodeProblem::Unsupported("binary (1 bit)")),
        32 => Err(CodeProblem::Unsupported("complex64")),
        128 => Err(CodeProblem::Unsupported("RGB24")),
        1536 => Err(CodeProblem::Unsupported("float128")),
        1792 => Err(CodeProblem::Unsupported("complex128")),
        2048 => Err(CodeProblem::Unsupported("complex256")),
        2304 => Err(CodeProblem::Unsupported("RGBA32")),
        _ => Err(CodeProblem::Unknown),
    }
}

/// Why a datatype code cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeProblem {
    /// NIfTI defines the code (named here) but voxcalc does not handle it.
    Unsupported(&'static str),
    /// NIfTI does not define the code.
    Unknown,
}

/// The NIfTI `datatype` code for a storage dtype, or `None` for bool and float16, which NIfTI
/// files cannot hold (bool is written as uint8, float16 as float32 by the caller).
pub fn code_from_dtype(dtype: DType) -> Option<i16> {
    Some(match dtype {
        DType::U8 => 2,
        DType::I16 => 4,
        DType::I32 => 8,
        DType::F32 => 16,
        DType::F64 => 64,
        DType::I8 => 256,
        DType::U16 => 512,
        DType::U32 => 768,
        DType::I64 => 1024,
        DType::U64 => 1280,
        DType::Bool | DType::F16 => return None,
    })
}
