//! Signals files: `.npy`, `.tsv` and `.csv` (a header row of label values, then one row per time
//! point) and whitespace-separated `.txt` (no header). Text is read as float64.

use std::io::Write;
use std::path::Path;

use crate::error::{RegionError, RegionErrorKind, Result};
use crate::labels::{format_label, LabelMap};
use crate::npy::{parse_npy, to_npy_bytes};
use crate::signals::{Signals, Values};
use crate::to_img::temp_beside;

/// The format of a signals file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalsFormat {
    /// numpy's `.npy` (any supported dtype, 1-D or 2-D, C or Fortran order).
    Npy,
    /// Tab-separated, with a header row of label values.
    Tsv,
    /// Comma-separated, with a header row of label values.
    Csv,
    /// Whitespace-separated, no header.
    Txt,
}

impl SignalsFormat {
    /// The format named by `path`'s extension (case-insensitive).
    pub fn from_path(path: &Path) -> Result<SignalsFormat> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "npy" => Ok(SignalsFormat::Npy),
            "tsv" => Ok(SignalsFormat::Tsv),
            "csv" => Ok(SignalsFormat::Csv),
            "txt" => Ok(SignalsFormat::Txt),
            _ => Err(RegionError::signals_file(
                path,
                "unknown signals format: the name must end in .npy, .tsv, .csv or .txt",
            )),
        }
    }

    fn separator(self) -> Option<char> {
        match self {
            SignalsFormat::Tsv => Some('\t'),
            SignalsFormat::Csv => Some(','),
            _ => None,
        }
    }
}

/// A signals file as read: the signals and, for `.tsv`/`.csv`, the labels of its header row.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalsFile {
    /// The signals (text files give 2-D float64, C order).
    pub signals: Signals,
    /// The header row's label values (`.tsv`/`.csv` only).
    pub header_labels: Option<Vec<f64>>,
}

/// Reads a signals file; the format comes from the extension.
pub fn read_signals(path: impl AsRef<Path>) -> Result<SignalsFile> {
    let path = path.as_ref();
    let format = SignalsFormat::from_path(path)?;
    let bytes = std::fs::read(path).map_err(|e| RegionError::io(path, "cannot read", e))?;
    if format == SignalsFormat::Npy {
        return Ok(SignalsFile {
            signals: parse_npy(&bytes, path)?,
            header_labels: None,
        });
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| RegionError::signals_file(path, "not a text file (invalid UTF-8)"))?;
    parse_text(&text, format, path)
}

fn split_fields(line: &str, format: SignalsFormat) -> Vec<&str> {
    match format.separator() {
        Some(sep) => line.split(sep).map(str::trim).collect(),
        None => line.split_whitespace().collect(),
    }
}

/// Parses the text of a `.tsv`, `.csv` or `.txt` signals file.
pub fn parse_text(text: &str, format: SignalsFormat, path: &Path) -> Result<SignalsFile> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_end_matches('\r')))
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
    let header_labels = if format.separator().is_some() {
        let (line_no, line) = lines.next().ok_or_else(|| {
            RegionError::signals_file(path, "the file is empty (expected a header row of labels)")
        })?;
        let labels = split_fields(line, format)
            .iter()
            .enumerate()
            .map(|(col, field)| {
                field.parse::<f64>().map_err(|_| {
                    RegionError::signals_file(
                        path,
                        format!(
                            "line {line_no}, column {}: the header row must hold the label \
                             values (numbers), found '{field}'; use .txt for a file without \
                             header",
                            col + 1
                        ),
                    )
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        Some(labels)
    } else {
        None
    };
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (line_no, line) in lines {
        let row = split_fields(line, format)
            .iter()
            .enumerate()
            .map(|(col, field)| {
                field.parse::<f64>().map_err(|_| {
                    RegionError::signals_file(
                        path,
                        format!(
                            "line {line_no}, column {}: '{field}' is not a number",
                            col + 1
                        ),
                    )
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        let width = header_labels
            .as_ref()
            .map_or_else(|| rows.first().map_or(row.len(), Vec::len), Vec::len);
        if row.len() != width {
            return Err(RegionError::signals_file(
                path,
                format!(
                    "line {line_no} has {} values, but the {} has {width}",
                    row.len(),
                    if header_labels.is_some() {
                        "header row"
                    } else {
                        "first row"
                    }
                ),
            ));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(RegionError::signals_file(path, "no rows of signal values"));
    }
    Ok(SignalsFile {
        signals: Signals::from_rows(&rows)?,
        header_labels,
    })
}

/// Checks a header row read from `path` against the labels of `map`: same count (else the
/// column-count error, with both numbers) and same values.
pub fn check_header_row(header_labels: &[f64], map: &LabelMap, path: &Path) -> Result<()> {
    map.check_columns(
        header_labels.len(),
        &format!("the header row of {} has", path.display()),
    )?;
    if header_labels.iter().zip(map.labels()).all(|(a, b)| a == b) {
        return Ok(());
    }
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|&v| format_label(v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(RegionError::new(
        RegionErrorKind::HeaderRow,
        format!(
            "{}: the header row names the labels [{}], but the labels image {} has the labels \
             [{}] (after masking and removing the background), in this order",
            path.display(),
            list(header_labels),
            map.path().display(),
            list(map.labels()),
        ),
    ))
}

/// Formats a value so that parsing it back gives the same number: the shortest round-trip
/// form, in exponent notation for very large or small magnitudes.
fn format_value(value: f64, single: bool) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let magnitude = value.abs();
    let plain = magnitude == 0.0 || (1e-5..1e16).contains(&magnitude);
    match (single, plain) {
        (true, true) => format!("{}", value as f32),
        (true, false) => format!("{:e}", value as f32),
        (false, true) => format!("{value}"),
        (false, false) => format!("{value:e}"),
    }
}

/// The text of a signals file: for `.tsv`/`.csv` a header row of `labels`, then one row per
/// time point (1-D signals give one row).
pub fn to_text(signals: &Signals, labels: &[f64], format: SignalsFormat) -> String {
    let sep = match format.separator() {
        Some(sep) => sep.to_string(),
        None => " ".to_string(),
    };
    let mut out = String::new();
    if format.separator().is_some() {
        let header: Vec<String> = labels.iter().map(|&v| format_label(v)).collect();
        out.push_str(&header.join(&sep));
        out.push('\n');
    }
    let single = matches!(signals.values(), Values::F32(_));
    for t in 0..signals.n_times() {
        let row: Vec<String> = (0..signals.n_regions())
            .map(|r| format_value(signals.get_f64(t, r), single))
            .collect();
        out.push_str(&row.join(&sep));
        out.push('\n');
    }
    out
}

/// Writes signals (with their labels, for the `.tsv`/`.csv` header row) to `path`, atomically
/// (a temp file beside it, renamed). Text formats hold float64 values, written to round-trip.
pub fn write_signals(path: impl AsRef<Path>, signals: &Signals, labels: &[f64]) -> Result<()> {
    let path = path.as_ref();
    let format = SignalsFormat::from_path(path)?;
    let bytes = match format {
        SignalsFormat::Npy => to_npy_bytes(signals),
        _ => to_text(signals, labels, format).into_bytes(),
    };
    let mut temp = temp_beside(path)
        .map_err(|e| RegionError::io(path, "cannot create a temp file beside the output", e))?;
    temp.write_all(&bytes)
        .and_then(|()| temp.flush())
        .map_err(|e| RegionError::io(path, "cannot write", e))?;
    temp.persist(path)
        .map_err(|e| RegionError::io(path, "cannot rename the temp file onto", e.error))?;
    Ok(())
}

/// The values of any signals as float64 (C order), for comparisons and text.
pub fn to_f64_rows(signals: &Signals) -> Vec<Vec<f64>> {
    (0..signals.n_times())
        .map(|t| {
            (0..signals.n_regions())
                .map(|r| signals.get_f64(t, r))
                .collect()
        })
        .collect()
}
