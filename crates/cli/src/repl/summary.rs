//! The one-screen summary of an image: shape, dtype, range, mean and counts.

use std::fmt::Write as _;

use voxcalc::{DType, Image, Timings};

use crate::eval::format_scalar;

/// Statistics over every element of an image, NaN excluded from min, max and mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Number of elements.
    pub n_elements: usize,
    /// Smallest non-NaN value (NaN when every value is NaN or there are none).
    pub min: f64,
    /// Largest non-NaN value.
    pub max: f64,
    /// Mean of the non-NaN values.
    pub mean: f64,
    /// Elements that are not zero (NaN counts as non-zero, as in `np.count_nonzero`).
    pub n_nonzero: usize,
    /// NaN elements.
    pub n_nan: usize,
}

/// An image's values as a formula sees them (scaling applied), read element by element with
/// the view and scaling looked up once.
pub struct Values<'a> {
    len: usize,
    get: Box<dyn Fn(usize) -> f64 + 'a>,
}

impl<'a> Values<'a> {
    /// The values of `image`.
    pub fn of(image: &'a Image) -> Values<'a> {
        let raw = image.raw();
        let scaling = image.nifti().scaling();
        Values {
            len: raw.n_voxels(),
            get: Box::new(move |voxel_idx| {
                let value = raw.value_f64(voxel_idx);
                scaling.map_or(value, |s| s.apply(value))
            }),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Element `voxel_idx` (Fortran order); panics past the end, like slice indexing.
    pub fn get(&self, voxel_idx: usize) -> f64 {
        (self.get)(voxel_idx)
    }
}

/// Element `voxel_idx` as the value a formula sees (scaling applied).
pub fn value_at(image: &Image, voxel_idx: usize) -> f64 {
    Values::of(image).get(voxel_idx)
}

/// Computes [`Stats`] in one pass.
pub fn stats(image: &Image) -> Stats {
    let values = Values::of(image);
    let n_elements = values.len();
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    let mut sum = 0.0;
    let mut compensation = 0.0;
    let mut n_finite_or_inf = 0usize;
    let mut n_nonzero = 0;
    let mut n_nan = 0;
    for voxel_idx in 0..n_elements {
        let value = values.get(voxel_idx);
        if value != 0.0 {
            n_nonzero += 1;
        }
        if value.is_nan() {
            n_nan += 1;
            continue;
        }
        min = min.min(value);
        max = max.max(value);
        // Neumaier's compensated sum: a plain running sum loses the small means of centred
        // data (e.g. a z-score) in rounding error.
        let total = sum + value;
        if sum.abs() >= value.abs() {
            compensation += (sum - total) + value;
        } else {
            compensation += (value - total) + sum;
        }
        sum = total;
        n_finite_or_inf += 1;
    }
    if n_finite_or_inf == 0 {
        min = f64::NAN;
        max = f64::NAN;
    }
    Stats {
        n_elements,
        min,
        max,
        mean: if n_finite_or_inf == 0 {
            f64::NAN
        } else {
            (sum + compensation) / n_finite_or_inf as f64
        },
        n_nonzero,
        n_nan,
    }
}

/// A shape as numpy prints it: `(48, 56, 48)`, `(5,)`, `()`.
pub fn format_shape(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// A float with six significant digits and no trailing zeros (`212.466`, `1.5e-07`).
pub fn format_sig(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let exponent = value.abs().log10().floor() as i32;
    if (-4..15).contains(&exponent) {
        let decimals = (5 - exponent).max(0) as usize;
        trim_fraction(&format!("{value:.decimals$}"))
    } else {
        let text = format!("{value:.5e}");
        match text.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_fraction(mantissa)),
            None => text,
        }
    }
}

fn trim_fraction(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// What to show besides the statistics.
#[derive(Clone, Copy, Debug, Default)]
pub struct SummaryOptions {
    /// Show compile and run times (hidden in scripts so transcripts are stable).
    pub timings: bool,
}

/// The summary of a result named `name`: its value for a 0-d result, else dtype, shape,
/// statistics and (optionally) timings.
pub fn summarize(name: &str, image: &Image, timings: Timings, options: SummaryOptions) -> String {
    let dtype = image.dtype();
    let mut out = String::new();
    if image.shape().is_empty() {
        let value = value_at(image, 0);
        let _ = writeln!(
            out,
            "{name} = {}  ({dtype}, 0-d)",
            format_scalar(value, dtype)
        );
    } else {
        let s = stats(image);
        let _ = writeln!(out, "{name} = {dtype} {}", format_shape(&image.shape()));
        let _ = writeln!(
            out,
            "  min {}  max {}  mean {}",
            format_value(s.min, dtype),
            format_value(s.max, dtype),
            format_sig(s.mean)
        );
        let _ = writeln!(
            out,
            "  nonzero {} of {}  nan {}",
            s.n_nonzero, s.n_elements, s.n_nan
        );
    }
    if options.timings {
        let _ = writeln!(
            out,
            "  compile {:.1} ms  run {:.1} ms",
            timings.compile.as_secs_f64() * 1e3,
            timings.run.as_secs_f64() * 1e3
        );
    }
    out
}

/// A min or max: exact for integers, shortest round-trip for floats of their own precision.
fn format_value(value: f64, dtype: DType) -> String {
    format_scalar(value, dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(format_sig(212.46612), "212.466");
        assert_eq!(format_sig(0.5), "0.5");
        assert_eq!(format_sig(-3.0), "-3");
        assert_eq!(format_sig(1.5e-7), "1.5e-7");
        assert_eq!(format_sig(123456789.0), "123456789");
        assert_eq!(format_sig(f64::NAN), "nan");
    }

    #[test]
    fn shapes_print_like_numpy() {
        assert_eq!(format_shape(&[]), "()");
        assert_eq!(format_shape(&[5]), "(5,)");
        assert_eq!(format_shape(&[2, 3]), "(2, 3)");
    }
}
