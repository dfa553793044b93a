//! A small `.npy` reader and writer (format versions 1, 2 and 3; either byte order; C or Fortran
//! order; 1-D and 2-D arrays of the [`Values`] dtypes). No pickles, no structured dtypes.

use crate::error::{RegionError, Result};
use crate::signals::{Element, Order, Signals, Values};
use crate::with_values;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses the bytes of a `.npy` file. `what` names the file in errors.
pub fn parse_npy(bytes: &[u8], what: &std::path::Path) -> Result<Signals> {
    let bad = |detail: String| {
        RegionError::signals_file(what, format!("not a valid .npy file: {detail}"))
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(
            "it does not start with the .npy magic \\x93NUMPY".into()
        ));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header".into()));
            }
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (len as usize, 12)
        }
        _ => return Err(bad(format!("unknown format version {major}"))),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| bad("the header is longer than the file".into()))?;
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| bad("the header is not text".into()))?;
    let descr =
        dict_value(header, "descr").ok_or_else(|| bad("no 'descr' in the header".into()))?;
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| bad("no 'fortran_order' in the header".into()))?;
    let shape_text =
        dict_value(header, "shape").ok_or_else(|| bad("no 'shape' in the header".into()))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let fortran = match fortran.trim() {
        "True" => true,
        "False" => false,
        other => return Err(bad(format!("fortran_order is {other}"))),
    };
    let shape = parse_shape(shape_text)
        .ok_or_else(|| bad(format!("cannot read the shape {shape_text}")))?;
    if shape.is_empty() || shape.len() > 2 {
        return Err(RegionError::signals_file(
            what,
            format!(
                "signals must be a 1-D (regions) or 2-D (time points x regions) array, this one \
                 has shape {shape:?}"
            ),
        ));
    }
    let (byte_order, code) = descr.split_at(descr.len().min(1));
    let big_endian = match byte_order {
        ">" => true,
        "<" | "|" => false,
        "=" => cfg!(target_endian = "big"),
        _ => return Err(bad(format!("unsupported dtype descriptor '{descr}'"))),
    };
    let n_values = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    let data = &bytes[data_start..];
    fn read_all<T: Element>(data: &[u8], n: usize, big_endian: bool) -> Vec<T> {
        let size = T::DTYPE.size();
        data.chunks_exact(size)
            .take(n)
            .map(|c| T::read(c, big_endian))
            .collect()
    }
    let unsupported = |why: &str| {
        RegionError::signals_file(
            what,
            format!("signals of dtype '{descr}' are not supported{why}; use float32, float64, int8-int32, uint8-uint32 or int64"),
        )
    };
    let size = match code {
        "f4" | "i4" | "u4" => 4,
        "f8" | "i8" => 8,
        "i2" | "u2" => 2,
        "i1" | "u1" => 1,
        "b1" => return Err(unsupported(" (booleans: convert to uint8)")),
        "f2" => return Err(unsupported(" (float16: convert to float32)")),
        "u8" => return Err(unsupported(" (uint64: NIfTI tools rarely read it)")),
        _ => return Err(unsupported("")),
    };
    let expected = n_values
        .checked_mul(size)
        .ok_or_else(|| bad("too large".into()))?;
    if data.len() != expected {
        return Err(bad(format!(
            "shape {shape:?} of '{descr}' needs {expected} data bytes, the file holds {}",
            data.len()
        )));
    }
    let values = match code {
        "f4" => Values::F32(read_all(data, n_values, big_endian)),
        "f8" => Values::F64(read_all(data, n_values, big_endian)),
        "i1" => Values::I8(read_all(data, n_values, big_endian)),
        "u1" => Values::U8(read_all(data, n_values, big_endian)),
        "i2" => Values::I16(read_all(data, n_values, big_endian)),
        "u2" => Values::U16(read_all(data, n_values, big_endian)),
        "i4" => Values::I32(read_all(data, n_values, big_endian)),
        "u4" => Values::U32(read_all(data, n_values, big_endian)),
        _ => Values::I64(read_all(data, n_values, big_endian)),
    };
    let order = if fortran { Order::F } else { Order::C };
    Signals::new(values, &shape, order)
}

/// The text after `'key':` in a Python dict literal, up to the next top-level comma or brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pattern_single = format!("'{key}'");
    let pattern_double = format!("\"{key}\"");
    let at = header
        .find(&pattern_single)
        .map(|i| i + pattern_single.len())
        .or_else(|| {
            header
                .find(&pattern_double)
                .map(|i| i + pattern_double.len())
        })?;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

/// The `.npy` bytes (format 1.0, or 2.0 for huge headers; little-endian) of `signals`, in their
/// memory order.
pub fn to_npy_bytes(signals: &Signals) -> Vec<u8> {
    let descr = match signals.values() {
        Values::F32(_) => "<f4",
        Values::F64(_) => "<f8",
        Values::I8(_) => "|i1",
        Values::U8(_) => "|u1",
        Values::I16(_) => "<i2",
        Values::U16(_) => "<u2",
        Values::I32(_) => "<i4",
        Values::U32(_) => "<u4",
        Values::I64(_) => "<i8",
    };
    let shape = match signals.shape() {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let fortran = signals.ndim() == 2 && signals.order() == Order::F;
    let mut dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let v1 = dict.len() + 11 < 65536;
    let prefix = if v1 { 10 } else { 12 };
    while (prefix + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out =
        Vec::with_capacity(prefix + dict.len() + signals.values().len() * signals.dtype().size());
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    with_values!(signals.values(), v => {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    });
    out
}
