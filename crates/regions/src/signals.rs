//! [`Signals`]: an in-memory 1-D (`R`) or 2-D (`T x R`) array of region signals, in one of the
//! dtypes a NIfTI image can hold, laid out in C or Fortran order as a numpy array would be.

use voxcalc_types::DType;

use crate::error::{RegionError, RegionErrorKind, Result};

/// Memory order of a 2-D array (numpy's `order`): `C` stores rows contiguously, `F` columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Row-major: element `(t, r)` at `t * n_regions + r`.
    C,
    /// Column-major: element `(t, r)` at `r * n_times + t` (nilearn's default, NIfTI's layout).
    #[default]
    F,
}

/// A scalar type signals and images are made of. Implemented for the NIfTI dtypes voxcalc
/// writes as signals: `f32 f64 i8 u8 i16 u16 i32 u32 i64`.
pub trait Element: Copy + Send + Sync + PartialEq + Default + 'static {
    /// The numpy dtype.
    const DTYPE: DType;
    /// The value as f64 (exact for every type but large `i64`).
    fn to_f64(self) -> f64;
    /// Writes the value in native byte order into `dst` (`dst.len() == DTYPE.size()`).
    fn write_ne(self, dst: &mut [u8]);
    /// Writes the value in native byte order into every element of `dst`.
    fn fill_ne(self, dst: &mut [u8]);
    /// Reads a value from `src` (`src.len() == DTYPE.size()`) in the given byte order.
    fn read(src: &[u8], big_endian: bool) -> Self;
}

macro_rules! element {
    ($t:ty, $dtype:expr, $size:expr) => {
        impl Element for $t {
            const DTYPE: DType = $dtype;
            #[allow(clippy::cast_lossless)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn write_ne(self, dst: &mut [u8]) {
                dst.copy_from_slice(&self.to_ne_bytes());
            }
            fn fill_ne(self, dst: &mut [u8]) {
                let bytes = self.to_ne_bytes();
                // 16-byte stores of the repeated element, then the tail element by element.
                let mut pattern = [0u8; 16];
                for chunk in pattern.chunks_exact_mut($size) {
                    chunk.copy_from_slice(&bytes);
                }
                let mut blocks = dst.chunks_exact_mut(16);
                for block in &mut blocks {
                    block.copy_from_slice(&pattern);
                }
                for chunk in blocks.into_remainder().chunks_exact_mut($size) {
                    chunk.copy_from_slice(&bytes);
                }
            }
            fn read(src: &[u8], big_endian: bool) -> Self {
                let mut raw = [0u8; $size];
                raw.copy_from_slice(src);
                if big_endian {
                    <$t>::from_be_bytes(raw)
                } else {
                    <$t>::from_le_bytes(raw)
                }
            }
        }
    };
}

element!(f32, DType::F32, 4);
element!(f64, DType::F64, 8);
element!(i8, DType::I8, 1);
element!(u8, DType::U8, 1);
element!(i16, DType::I16, 2);
element!(u16, DType::U16, 2);
element!(i32, DType::I32, 4);
element!(u32, DType::U32, 4);
element!(i64, DType::I64, 8);

/// The elements of an array, typed. Supported dtypes: float32, float64, int8, uint8, int16,
/// uint16, int32, uint32, int64 (int64 images are written as int32 when the values fit, as
/// nilearn's `new_img_like` does).
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// float32
    F32(Vec<f32>),
    /// float64
    F64(Vec<f64>),
    /// int8
    I8(Vec<i8>),
    /// uint8
    U8(Vec<u8>),
    /// int16
    I16(Vec<i16>),
    /// uint16
    U16(Vec<u16>),
    /// int32
    I32(Vec<i32>),
    /// uint32
    U32(Vec<u32>),
    /// int64
    I64(Vec<i64>),
}

/// Runs `$body` with `$v` bound to the typed vector of a [`Values`] (any variant).
#[macro_export]
#[doc(hidden)]
macro_rules! with_values {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            $crate::Values::F32($v) => $body,
            $crate::Values::F64($v) => $body,
            $crate::Values::I8($v) => $body,
            $crate::Values::U8($v) => $body,
            $crate::Values::I16($v) => $body,
            $crate::Values::U16($v) => $body,
            $crate::Values::I32($v) => $body,
            $crate::Values::U32($v) => $body,
            $crate::Values::I64($v) => $body,
        }
    };
}

impl Values {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            Values::F32(_) => DType::F32,
            Values::F64(_) => DType::F64,
            Values::I8(_) => DType::I8,
            Values::U8(_) => DType::U8,
            Values::I16(_) => DType::I16,
            Values::U16(_) => DType::U16,
            Values::I32(_) => DType::I32,
            Values::U32(_) => DType::U32,
            Values::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_values!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `idx` as f64.
    pub fn get_f64(&self, idx: usize) -> f64 {
        with_values!(self, v => v[idx].to_f64())
    }

    /// A zero-filled vector of `len` elements of `dtype`, or `None` for an unsupported dtype.
    pub fn zeros(dtype: DType, len: usize) -> Option<Values> {
        Some(match dtype {
            DType::F32 => Values::F32(vec![0.0; len]),
            DType::F64 => Values::F64(vec![0.0; len]),
            DType::I8 => Values::I8(vec![0; len]),
            DType::U8 => Values::U8(vec![0; len]),
            DType::I16 => Values::I16(vec![0; len]),
            DType::U16 => Values::U16(vec![0; len]),
            DType::I32 => Values::I32(vec![0; len]),
            DType::U32 => Values::U32(vec![0; len]),
            DType::I64 => Values::I64(vec![0; len]),
            _ => return None,
        })
    }
}

/// Region signals: one value per region (1-D, shape `[R]`) or one row per time point (2-D,
/// shape `[T, R]`), as nilearn's `signals` argument. Column `r` belongs to the `r`-th label in
/// sorted order.
#[derive(Clone, Debug, PartialEq)]
pub struct Signals {
    values: Values,
    shape: Vec<usize>,
    order: Order,
}

impl Signals {
    /// Wraps `values` laid out in `order` as an array of `shape` (`[R]` or `[T, R]`). Fails when
    /// the shape is not 1-D or 2-D or does not match the number of values.
    pub fn new(values: Values, shape: &[usize], order: Order) -> Result<Signals> {
        if shape.is_empty() || shape.len() > 2 {
            return Err(RegionError::new(
                RegionErrorKind::Signals,
                format!(
                    "signals must be a 1-D (regions) or 2-D (time points x regions) array, not {}-D \
                     (shape {shape:?})",
                    shape.len()
                ),
            ));
        }
        let n_values = shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .unwrap_or(usize::MAX);
        if n_values != values.len() {
            return Err(RegionError::new(
                RegionErrorKind::Signals,
                format!(
                    "signals of shape {shape:?} need {n_values} values, {} given",
                    values.len()
                ),
            ));
        }
        Ok(Signals {
            values,
            shape: shape.to_vec(),
            order,
        })
    }

    /// A 2-D `T x R` array from rows (C order).
    pub fn from_rows<T: Element>(rows: &[Vec<T>]) -> Result<Signals>
    where
        Vec<T>: Into<Values>,
    {
        let n_regions = rows.first().map_or(0, Vec::len);
        if let Some((idx, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != n_regions) {
            return Err(RegionError::new(
                RegionErrorKind::Signals,
                format!(
                    "row {idx} has {} values, the first row {n_regions}",
                    row.len()
                ),
            ));
        }
        let flat: Vec<T> = rows.iter().flatten().copied().collect();
        Signals::new(flat.into(), &[rows.len(), n_regions], Order::C)
    }

    /// The typed elements in memory order.
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// The shape: `[R]` or `[T, R]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The memory order of the values.
    pub fn order(&self) -> Order {
        self.order
    }

    /// The dtype of the elements (the dtype of an image built from them).
    pub fn dtype(&self) -> DType {
        self.values.dtype()
    }

    /// 1 or 2.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of time points (1 for 1-D signals).
    pub fn n_times(&self) -> usize {
        if self.shape.len() == 2 {
            self.shape[0]
        } else {
            1
        }
    }

    /// Number of columns, i.e. regions.
    pub fn n_regions(&self) -> usize {
        *self.shape.last().unwrap_or(&0)
    }

    /// Memory index of element `(t, r)`.
    pub fn index(&self, t: usize, r: usize) -> usize {
        match self.order {
            Order::C => t * self.n_regions() + r,
            Order::F => r * self.n_times() + t,
        }
    }

    /// Element `(t, r)` as f64 (`t` is 0 for 1-D signals).
    pub fn get_f64(&self, t: usize, r: usize) -> f64 {
        self.values.get_f64(self.index(t, r))
    }

    /// The same signals re-laid out in `order`.
    pub fn to_order(&self, order: Order) -> Signals {
        if order == self.order {
            return self.clone();
        }
        let (n_times, n_regions) = (self.n_times(), self.n_regions());
        let values = with_values!(&self.values, v => {
            let mut out = Vec::with_capacity(v.len());
            for outer in 0..if order == Order::C { n_times } else { n_regions } {
                for inner in 0..if order == Order::C { n_regions } else { n_times } {
                    let (t, r) = if order == Order::C { (outer, inner) } else { (inner, outer) };
                    out.push(v[self.index(t, r)]);
                }
            }
            Values::from(out)
        });
        Signals {
            values,
            shape: self.shape.clone(),
            order,
        }
    }
}

macro_rules! values_from {
    ($t:ty, $variant:ident) => {
        impl From<Vec<$t>> for Values {
            fn from(v: Vec<$t>) -> Values {
                Values::$variant(v)
            }
        }
    };
}

values_from!(f32, F32);
values_from!(f64, F64);
values_from!(i8, I8);
values_from!(u8, U8);
values_from!(i16, I16);
values_from!(u16, U16);
values_from!(i32, I32);
values_from!(u32, U32);
values_from!(i64, I64);
