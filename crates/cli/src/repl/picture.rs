//! Pictures of slices: orthogonal views or one slice of a volume, coloured with a grey scale
//! (or a blue-white-red map centred on 0 for signed data) over a robust intensity range, drawn
//! in the terminal with half-block characters, as plain text, or as a PNG file.
//!
//! Orientation: slices are taken across voxel axes (the affine is not resampled): a `z` slice
//! shows `i` across and `j` up; a `y` slice `i` across and `k` up; an `x` slice `j` across and
//! `k` up. Each in-plane axis is drawn increasing to the right or upward unless the affine
//! says it runs toward left, posterior or inferior, in which case it is reversed (so a LAS
//! image is shown like a RAS one: the subject's right on the right, neurological view). Orthogonal views are `x`, `y`, `z`
//! side by side, as nilearn's `plot_anat` shows them. Voxels are drawn with their aspect
//! ratio: the smallest voxel size is one pixel and longer sides stretch (up to
//! [`MAX_STRETCH`] times), so anisotropic images are not squashed.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{bail, Result};
use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};
use voxcalc::Image;

use super::summary::{format_sig, Values};

/// A voxel axis a slice is taken across.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// The first voxel axis (`i`): a sagittal slice in RAS-like images.
    X,
    /// The second (`j`): coronal.
    Y,
    /// The third (`k`): axial.
    Z,
}

impl Axis {
    fn letter(self) -> char {
        match self {
            Axis::X => 'x',
            Axis::Y => 'y',
            Axis::Z => 'z',
        }
    }

    /// The voxel axes shown across and up in a slice across this axis.
    fn plane(self) -> (usize, usize) {
        match self {
            Axis::X => (1, 2),
            Axis::Y => (0, 2),
            Axis::Z => (0, 1),
        }
    }

    fn dim(self) -> usize {
        match self {
            Axis::X => 0,
            Axis::Y => 1,
            Axis::Z => 2,
        }
    }
}

/// Which slices to draw: `:show NAME [x|y|z] [INDEX] [t]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewSpec {
    /// One slice across this axis; `None`: orthogonal views through `index`-less centres.
    pub axis: Option<Axis>,
    /// The slice index (default: the centre).
    pub index: Option<usize>,
    /// The volume of a 4-D image (default 0).
    pub volume: usize,
}

/// How values become colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColourMap {
    /// Black at `lo`, white at `hi`, clamped.
    Grey { lo: f64, hi: f64 },
    /// Blue at `-limit`, white at 0, red at `+limit`, clamped.
    Diverging { limit: f64 },
}

/// One pixel of a picture before colouring.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    /// Space between panels.
    Gap,
    /// A NaN voxel (drawn magenta).
    Nan,
    /// A voxel's value.
    Value(f64),
}

/// A picture: panels side by side, row 0 at the top.
#[derive(Clone, Debug)]
pub struct Picture {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major cells.
    pub cells: Vec<Cell>,
    /// The colour map for the cells' values.
    pub map: ColourMap,
    /// Each panel's first column and caption (e.g. `z = 24`).
    pub captions: Vec<(usize, String)>,
}

/// One slice as a grid of values, row 0 at the top.
struct Panel {
    width: usize,
    height: usize,
    values: Vec<f64>,
    caption: String,
}

/// Colour of NaN voxels.
const NAN_RGB: [u8; 3] = [255, 0, 255];
/// Pixels between panels.
const GAP: usize = 1;
/// The largest PNG `:png` writes (bounds the memory a large --scale can take).
const MAX_PNG_PIXELS: usize = 1 << 26;
/// Volumes bigger than this are subsampled to estimate the intensity range.
const MAX_RANGE_SAMPLES: usize = 1 << 21;

/// Builds the picture of `image` for `spec`, downsampled (nearest voxel) so that it is at most
/// `max_width` pixels wide.
pub fn picture(image: &Image, spec: &ViewSpec, max_width: usize) -> Result<Picture> {
    let shape = image.shape();
    let dims = match shape.len() {
        0 => bail!("a 0-d image is a single value; it has no picture"),
        1 => bail!("a 1-D image ({} values) has no picture", shape[0]),
        2 => [shape[0], shape[1], 1],
        3 | 4 => [shape[0], shape[1], shape[2]],
        n => bail!("only 2-D to 4-D images have pictures; this one is {n}-D"),
    };
    let n_volumes = if shape.len() == 4 { shape[3] } else { 1 };
    if spec.volume >= n_volumes {
        bail!(
            "volume {} is out of range: the image has {n_volumes} volume{} (0 to {})",
            spec.volume,
            if n_volumes == 1 { "" } else { "s" },
            n_volumes - 1
        );
    }
    if dims.contains(&0) {
        bail!("the image is empty (shape {shape:?})");
    }
    let stretch = stretch_factors(&image.header().zooms());
    let volume = Volume {
        values: Values::of(image),
        dims,
        offset: spec.volume * dims[0] * dims[1] * dims[2],
        flip: flips(image.affine()),
    };
    let axes: Vec<Axis> = match (spec.axis, shape.len()) {
        (Some(Axis::Z) | None, 2) => vec![Axis::Z],
        (Some(axis), 2) => bail!(
            "a 2-D image has only its own plane: use `z` (not `{}`)",
            axis.letter()
        ),
        (Some(axis), _) => vec![axis],
        (None, _) => vec![Axis::X, Axis::Y, Axis::Z],
    };
    let mut panels = Vec::new();
    for axis in axes {
        let extent = dims[axis.dim()];
        let index = match spec.index {
            Some(index) if index >= extent => bail!(
                "slice {index} is out of range: the image has {extent} slices across {} (0 to {})",
                axis.letter(),
                extent - 1
            ),
            Some(index) => index,
            None => extent / 2,
        };
        let (h_axis, v_axis) = axis.plane();
        let panel = volume.slice(axis, index);
        panels.push(panel.stretched(stretch[h_axis], stretch[v_axis]));
    }
    if n_volumes > 1 {
        for panel in &mut panels {
            let _ = write!(panel.caption, " t = {}", spec.volume);
        }
    }
    let map = volume.colour_map();
    let natural: usize =
        panels.iter().map(|p| p.width).sum::<usize>() + GAP * (panels.len().saturating_sub(1));
    let factor = natural.div_ceil(max_width.max(1)).max(1);
    Ok(compose(&panels, factor, map))
}

/// Which voxel axes point toward left, posterior or inferior (the world axis each voxel axis
/// is most aligned with, by the affine, runs against it): those are drawn reversed.
fn flips(affine: &[[f64; 4]; 4]) -> [bool; 3] {
    let mut flip = [false; 3];
    for (axis, flipped) in flip.iter_mut().enumerate() {
        let dominant = (0..3)
            .max_by(|&a, &b| affine[a][axis].abs().total_cmp(&affine[b][axis].abs()))
            .unwrap_or(axis);
        *flipped = affine[dominant][axis] < 0.0;
    }
    flip
}

/// The most a voxel side is stretched relative to the smallest (guards against odd headers).
const MAX_STRETCH: f64 = 8.0;

/// How many pixels each spatial axis's voxel side takes relative to the smallest of them:
/// `zooms` are the header's voxel sizes (missing or invalid sizes count as the smallest).
fn stretch_factors(zooms: &[f64]) -> [f64; 3] {
    let valid = |zoom: f64| zoom.is_finite() && zoom > 0.0;
    let smallest = zooms
        .iter()
        .take(3)
        .copied()
        .filter(|&zoom| valid(zoom))
        .fold(f64::INFINITY, f64::min);
    if !smallest.is_finite() {
        return [1.0; 3];
    }
    let mut sizes = [smallest; 3];
    for (size, &zoom) in sizes.iter_mut().zip(zooms) {
        if valid(zoom) {
            *size = zoom;
        }
    }
    // Sizes computed from a rotated affine differ from the stored ones in the 8th digit:
    // those are equal sizes.
    sizes.map(|size| {
        let factor = size / smallest;
        if factor < 1.001 {
            1.0
        } else {
            factor.min(MAX_STRETCH)
        }
    })
}

impl Panel {
    /// The panel resampled (nearest voxel) so that a voxel is `across` x `up` pixels.
    fn stretched(self, across: f64, up: f64) -> Panel {
        if across == 1.0 && up == 1.0 {
            return self;
        }
        let width = ((self.width as f64 * across).round() as usize).max(1);
        let height = ((self.height as f64 * up).round() as usize).max(1);
        let mut values = Vec::with_capacity(width * height);
        for row in 0..height {
            let src_row = (((row as f64 + 0.5) / up) as usize).min(self.height - 1);
            for col in 0..width {
                let src_col = (((col as f64 + 0.5) / across) as usize).min(self.width - 1);
                values.push(self.values[src_row * self.width + src_col]);
            }
        }
        Panel {
            width,
            height,
            values,
            caption: self.caption,
        }
    }
}

/// One volume of an image.
struct Volume<'a> {
    values: Values<'a>,
    /// Voxel axes drawn reversed so that they increase toward right, anterior, superior.
    flip: [bool; 3],
    dims: [usize; 3],
    offset: usize,
}

impl Volume<'_> {
    fn value(&self, i: usize, j: usize, k: usize) -> f64 {
        let [nx, ny, _] = self.dims;
        self.values.get(self.offset + i + nx * (j + ny * k))
    }

    fn slice(&self, axis: Axis, index: usize) -> Panel {
        let (h_axis, v_axis) = axis.plane();
        let (width, height) = (self.dims[h_axis], self.dims[v_axis]);
        let mut values = Vec::with_capacity(width * height);
        for row in 0..height {
            let up = height - 1 - row;
            let v = if self.flip[v_axis] {
                height - 1 - up
            } else {
                up
            };
            for col in 0..width {
                let h = if self.flip[h_axis] {
                    width - 1 - col
                } else {
                    col
                };
                values.push(match axis {
                    Axis::X => self.value(index, h, v),
                    Axis::Y => self.value(h, index, v),
                    Axis::Z => self.value(h, v, index),
                });
            }
        }
        Panel {
            width,
            height,
            values,
            caption: format!("{} = {index}", axis.letter()),
        }
    }

    /// The colour map from the volume's robust range: percentiles of its finite non-zero
    /// values (zero background would otherwise dominate them).
    fn colour_map(&self) -> ColourMap {
        let n_voxels = self.dims.iter().product::<usize>();
        let stride = n_voxels.div_ceil(MAX_RANGE_SAMPLES).max(1);
        let mut values: Vec<f64> = (0..n_voxels)
            .step_by(stride)
            .map(|idx| self.values.get(self.offset + idx))
            .filter(|v| v.is_finite())
            .collect();
        colour_map_of(&mut values)
    }
}

/// The map for these finite values: diverging when any is negative, else grey from the 2nd to
/// the 98th percentile of the non-zero values (the full range when those coincide).
pub fn colour_map_of(values: &mut [f64]) -> ColourMap {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if values.is_empty() {
        return ColourMap::Grey { lo: 0.0, hi: 1.0 };
    }
    let mut nonzero: Vec<f64> = values.iter().copied().filter(|&v| v != 0.0).collect();
    if min < 0.0 {
        for v in &mut nonzero {
            *v = v.abs();
        }
        nonzero.sort_by(f64::total_cmp);
        let mut limit = percentile(&nonzero, 0.98);
        if limit <= 0.0 || !limit.is_finite() {
            limit = min.abs().max(max.abs());
        }
        return ColourMap::Diverging { limit };
    }
    nonzero.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = (percentile(&nonzero, 0.02), percentile(&nonzero, 0.98));
    if hi <= lo || nonzero.is_empty() {
        (lo, hi) = (min, max);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    ColourMap::Grey { lo, hi }
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Panels side by side, vertically centred, each downsampled by `factor`.
fn compose(panels: &[Panel], factor: usize, map: ColourMap) -> Picture {
    let sizes: Vec<(usize, usize)> = panels
        .iter()
        .map(|p| (p.width.div_ceil(factor), p.height.div_ceil(factor)))
        .collect();
    let width = sizes.iter().map(|s| s.0).sum::<usize>() + GAP * (panels.len().saturating_sub(1));
    let height = sizes.iter().map(|s| s.1).max().unwrap_or(0);
    let mut cells = vec![Cell::Gap; width * height];
    let mut captions = Vec::new();
    let mut left = 0;
    for (panel, &(w, h)) in panels.iter().zip(&sizes) {
        let top = (height - h) / 2;
        for row in 0..h {
            let src_row = (row * factor + factor / 2).min(panel.height - 1);
            for col in 0..w {
                let src_col = (col * factor + factor / 2).min(panel.width - 1);
                let value = panel.values[src_row * panel.width + src_col];
                cells[(top + row) * width + left + col] = if value.is_nan() {
                    Cell::Nan
                } else {
                    Cell::Value(value)
                };
            }
        }
        let mut caption = panel.caption.clone();
        if factor > 1 {
            let _ = write!(caption, " (1:{factor})");
        }
        captions.push((left, caption));
        left += w + GAP;
    }
    Picture {
        width,
        height,
        cells,
        map,
        captions,
    }
}

impl ColourMap {
    /// The value's position on the map: 0..1 for grey, -1..1 for diverging.
    fn level(self, value: f64) -> f64 {
        match self {
            ColourMap::Grey { lo, hi } => ((value - lo) / (hi - lo)).clamp(0.0, 1.0),
            ColourMap::Diverging { limit } => (value / limit).clamp(-1.0, 1.0),
        }
    }

    fn rgb(self, value: f64) -> [u8; 3] {
        let level = self.level(value);
        let byte = |x: f64| (x * 255.0).round().clamp(0.0, 255.0) as u8;
        match self {
            ColourMap::Grey { .. } => [byte(level); 3],
            ColourMap::Diverging { .. } if level >= 0.0 => {
                let fade = byte(1.0 - level);
                [255, fade, fade]
            }
            ColourMap::Diverging { .. } => {
                let fade = byte(1.0 + level);
                [fade, fade, 255]
            }
        }
    }

    /// One line naming the map and its range.
    pub fn legend(self) -> String {
        match self {
            ColourMap::Grey { lo, hi } => format!(
                "grey: black {} .. white {} (2nd-98th percentile of non-zero voxels)",
                format_sig(lo),
                format_sig(hi)
            ),
            ColourMap::Diverging { limit } => format!(
                "blue {} .. white 0 .. red {} (98th percentile of |non-zero voxels|)",
                format_sig(-limit),
                format_sig(limit)
            ),
        }
    }
}

impl Picture {
    fn cell(&self, row: usize, col: usize) -> Cell {
        if row >= self.height {
            return Cell::Gap;
        }
        self.cells[row * self.width + col]
    }

    /// The colour of a pixel (black between panels).
    pub fn rgb(&self, row: usize, col: usize) -> [u8; 3] {
        match self.cell(row, col) {
            Cell::Gap => [0, 0, 0],
            Cell::Nan => NAN_RGB,
            Cell::Value(value) => self.map.rgb(value),
        }
    }

    fn caption_line(&self) -> String {
        let mut line = String::new();
        for (left, caption) in &self.captions {
            let pad = left.saturating_sub(line.chars().count());
            line.push_str(&" ".repeat(pad));
            if !line.is_empty() && !line.ends_with(' ') {
                line.push(' ');
            }
            line.push_str(caption);
        }
        line
    }

    /// The picture in 24-bit colour: each character is two pixels, the upper one the
    /// foreground of `▀`, the lower one its background.
    pub fn to_ansi(&self) -> String {
        let mut out = String::new();
        for pair in 0..self.height.div_ceil(2) {
            // Colours are sent only when they change, which keeps a picture's text small.
            let mut current: Option<([u8; 3], [u8; 3])> = None;
            for col in 0..self.width {
                let top = self.cell(2 * pair, col);
                let bottom = self.cell(2 * pair + 1, col);
                if top == Cell::Gap && bottom == Cell::Gap {
                    if current.take().is_some() {
                        out.push_str("\x1b[0m");
                    }
                    out.push(' ');
                    continue;
                }
                let colours = (self.rgb(2 * pair, col), self.rgb(2 * pair + 1, col));
                if current != Some(colours) {
                    let ([r1, g1, b1], [r2, g2, b2]) = colours;
                    let _ = write!(out, "\x1b[38;2;{r1};{g1};{b1}m\x1b[48;2;{r2};{g2};{b2}m");
                    current = Some(colours);
                }
                out.push('\u{2580}');
            }
            out.push_str("\x1b[0m\n");
        }
        out.push_str(&self.caption_line());
        out.push('\n');
        out.push_str(&self.map.legend());
        out.push('\n');
        out
    }

    /// The picture as plain text for scripts and dumb terminals: one character per pixel
    /// across and per two pixel rows down, darker to brighter ` .:-=+*#%@` (grey), and for
    /// signed data ` .+*#` above 0 and ` ,~-=` below (`?`: NaN).
    pub fn to_text(&self) -> String {
        const GREY: &[u8] = b" .:-=+*#%@";
        const POSITIVE: &[u8] = b" .+*#";
        const NEGATIVE: &[u8] = b" ,~-=";
        let mut out = String::new();
        for pair in 0..self.height.div_ceil(2) {
            let mut line = String::new();
            for col in 0..self.width {
                let cells = [self.cell(2 * pair, col), self.cell(2 * pair + 1, col)];
                if cells.contains(&Cell::Nan) {
                    line.push('?');
                    continue;
                }
                let levels: Vec<f64> = cells
                    .iter()
                    .filter_map(|c| match c {
                        Cell::Value(v) => Some(self.map.level(*v)),
                        _ => None,
                    })
                    .collect();
                if levels.is_empty() {
                    line.push(' ');
                    continue;
                }
                let level = levels.iter().sum::<f64>() / levels.len() as f64;
                let ramp_char = |ramp: &[u8], x: f64| {
                    let idx = (x * (ramp.len() - 1) as f64).round() as usize;
                    char::from(ramp[idx.min(ramp.len() - 1)])
                };
                line.push(match self.map {
                    ColourMap::Grey { .. } => ramp_char(GREY, level),
                    ColourMap::Diverging { .. } if level >= 0.0 => ramp_char(POSITIVE, level),
                    ColourMap::Diverging { .. } => ramp_char(NEGATIVE, -level),
                });
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&self.caption_line());
        out.push('\n');
        out.push_str(&self.map.legend());
        out.push('\n');
        out
    }

    /// The picture as an 8-bit RGB PNG, each pixel drawn as a `scale` x `scale` square.
    pub fn to_png(&self, scale: usize) -> Result<Vec<u8>> {
        let scale = scale.max(1);
        let width = self.width * scale;
        let height = self.height * scale;
        if width.saturating_mul(height) > MAX_PNG_PIXELS {
            bail!(
                "the picture would be {width} x {height} pixels, more than {MAX_PNG_PIXELS}: \
                 use a smaller --scale"
            );
        }
        let (Ok(w32), Ok(h32)) = (u32::try_from(width), u32::try_from(height)) else {
            bail!("the picture ({width} x {height} pixels) is too large for a PNG");
        };
        let mut scanlines = Vec::with_capacity(height * (1 + 3 * width));
        for row in 0..self.height {
            let mut line = Vec::with_capacity(1 + 3 * width);
            line.push(0); // filter type 0: none
            for col in 0..self.width {
                let rgb = self.rgb(row, col);
                for _ in 0..scale {
                    line.extend_from_slice(&rgb);
                }
            }
            for _ in 0..scale {
                scanlines.extend_from_slice(&line);
            }
        }
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&scanlines)?;
        let compressed = encoder.finish()?;
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&w32.to_be_bytes());
        ihdr.extend_from_slice(&h32.to_be_bytes());
        // Bit depth 8, colour type 2 (RGB), deflate, filter method 0, no interlace.
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        push_chunk(&mut png, b"IHDR", &ihdr)?;
        push_chunk(&mut png, b"IDAT", &compressed)?;
        push_chunk(&mut png, b"IEND", &[])?;
        Ok(png)
    }
}

/// Appends a PNG chunk: length, type, data, CRC-32 of type and data.
fn push_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) -> Result<()> {
    let Ok(len) = u32::try_from(data.len()) else {
        bail!("a PNG chunk cannot hold {} bytes", data.len());
    };
    png.extend_from_slice(&len.to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_range_ignores_zero_background_and_outliers() {
        let mut values: Vec<f64> = vec![0.0; 1000];
        values.extend((1..=100).map(f64::from));
        values.push(1e6);
        let ColourMap::Grey { lo, hi } = colour_map_of(&mut values) else {
            panic!("non-negative data must get the grey map");
        };
        assert_eq!(lo, 3.0);
        assert_eq!(hi, 99.0);
    }

    #[test]
    fn signed_data_get_a_symmetric_diverging_map() {
        let mut values: Vec<f64> = (-50..=10).map(f64::from).collect();
        let ColourMap::Diverging { limit } = colour_map_of(&mut values) else {
            panic!("signed data must get the diverging map");
        };
        assert_eq!(limit, 49.0);
        let map = ColourMap::Diverging { limit };
        assert_eq!(map.rgb(0.0), [255, 255, 255]);
        assert_eq!(map.rgb(100.0), [255, 0, 0]);
        assert_eq!(map.rgb(-100.0), [0, 0, 255]);
    }

    #[test]
    fn constant_data_still_get_a_valid_range() {
        let mut values = vec![7.0; 10];
        assert_eq!(
            colour_map_of(&mut values),
            ColourMap::Grey { lo: 7.0, hi: 8.0 }
        );
    }

    #[test]
    fn anisotropic_voxels_keep_their_aspect() {
        assert_eq!(stretch_factors(&[2.0, 2.0, 2.0]), [1.0, 1.0, 1.0]);
        assert_eq!(
            stretch_factors(&[4.0, 4.000000088956152, 4.0]),
            [1.0, 1.0, 1.0]
        );
        assert_eq!(stretch_factors(&[1.0, 1.0, 3.0, 2.5]), [1.0, 1.0, 3.0]);
        assert_eq!(stretch_factors(&[0.5, 1.0, 100.0]), [1.0, 2.0, 8.0]);
        assert_eq!(stretch_factors(&[2.0, 0.0, f64::NAN]), [1.0, 1.0, 1.0]);
        assert_eq!(stretch_factors(&[4.0, 8.0]), [1.0, 2.0, 1.0]);
        assert_eq!(stretch_factors(&[]), [1.0, 1.0, 1.0]);
        let panel = Panel {
            width: 2,
            height: 1,
            values: vec![1.0, 2.0],
            caption: String::new(),
        }
        .stretched(1.0, 3.0);
        assert_eq!((panel.width, panel.height), (2, 3));
        assert_eq!(panel.values, vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn axes_running_left_posterior_or_inferior_are_reversed() {
        let ras = [
            [2.0, 0.0, 0.0, 0.0],
            [0.0, 2.0, 0.1, 0.0],
            [0.0, -0.1, 2.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(flips(&ras), [false, false, false]);
        let las = [
            [-2.0, 0.0, 0.0, 0.0],
            [0.0, 2.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(flips(&las), [true, false, false]);
        // Voxel axis 1 runs mostly toward inferior.
        let permuted = [
            [2.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
            [0.0, -2.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(flips(&permuted), [false, true, false]);
    }

    #[test]
    fn huge_pngs_are_refused() {
        let picture = Picture {
            width: 10_000,
            height: 2,
            cells: vec![Cell::Value(0.0); 20_000],
            map: ColourMap::Grey { lo: 0.0, hi: 1.0 },
            captions: Vec::new(),
        };
        let err = picture.to_png(64).expect_err("too large");
        assert!(err.to_string().contains("smaller --scale"), "{err}");
        assert!(picture.to_png(1).is_ok());
    }

    #[test]
    fn half_blocks_carry_both_rows_colours() {
        let picture = Picture {
            width: 1,
            height: 2,
            cells: vec![Cell::Value(1.0), Cell::Value(0.0)],
            map: ColourMap::Grey { lo: 0.0, hi: 1.0 },
            captions: vec![(0, "z = 0".to_string())],
        };
        let ansi = picture.to_ansi();
        assert!(ansi.starts_with("\x1b[38;2;255;255;255m\x1b[48;2;0;0;0m\u{2580}"));
    }

    #[test]
    fn runs_of_one_colour_send_it_once_and_gaps_reset_it() {
        let picture = Picture {
            width: 4,
            height: 1,
            cells: vec![Cell::Value(1.0), Cell::Value(1.0), Cell::Gap, Cell::Nan],
            map: ColourMap::Grey { lo: 0.0, hi: 1.0 },
            captions: Vec::new(),
        };
        let first_line = picture
            .to_ansi()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            first_line,
            "\x1b[38;2;255;255;255m\x1b[48;2;0;0;0m\u{2580}\u{2580}\x1b[0m \
             \x1b[38;2;255;0;255m\x1b[48;2;0;0;0m\u{2580}\x1b[0m"
        );
    }
}
