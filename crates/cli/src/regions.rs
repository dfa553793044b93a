//! `voxcalc signals-to-img` and `voxcalc img-to-signals`: region signals to voxels and back
//! through a label atlas (nilearn's `signals_to_img_labels` and `img_to_signals_labels`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use voxcalc::regions::{self, LabelMap, SignalsFormat, WriteOptions};
use voxcalc::Image;

/// nilearn's `order` argument.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OrderArg {
    /// Fortran (column-major) order, nilearn's default.
    F,
    /// C (row-major) order.
    C,
}

/// Options of `voxcalc signals-to-img`.
#[derive(Args, Debug)]
pub struct SignalsToImgArgs {
    /// Signals file: .npy (1-D: one value per region; 2-D: time points x regions, any of
    /// float32/float64/int8-int32/uint8-uint32/int64), .tsv/.csv (a header row of label values,
    /// then one row per time point) or .txt (whitespace-separated, no header).
    pub signals: PathBuf,
    /// Label atlas (3-D; .nii, .nii.gz, .hdr/.img): column r of the signals fills the voxels of
    /// the r-th label in ascending order.
    #[arg(long, value_name = "LABELS")]
    pub labels: PathBuf,
    /// Mask (3-D, same shape and affine as the labels): voxels where it is 0 are background.
    #[arg(long, value_name = "MASK")]
    pub mask: Option<PathBuf>,
    /// The label value that means "no region".
    #[arg(
        long,
        value_name = "B",
        default_value = "0",
        allow_negative_numbers = true
    )]
    pub background: f64,
    /// nilearn's memory order of the image; the file written is the same either way (NIfTI data
    /// are always in Fortran order). Accepted for scripts that pass nilearn's arguments through.
    #[arg(long, value_enum, default_value = "F", ignore_case = true)]
    pub order: OrderArg,
    /// Output image (.nii, .nii.gz, .hdr/.img); written to a temp file and renamed at the end.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// gzip level (0-9) for a .gz output.
    #[arg(long, value_name = "L", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compress_level: u32,
    /// Do not print warnings (e.g. labels that the mask removes).
    #[arg(long)]
    pub quiet: bool,
}

/// Options of `voxcalc img-to-signals`.
#[derive(Args, Debug)]
pub struct ImgToSignalsArgs {
    /// 4-D image (a series of volumes).
    pub img: PathBuf,
    /// Label atlas (3-D), with the image's shape and affine.
    #[arg(long, value_name = "LABELS")]
    pub labels: PathBuf,
    /// Mask (3-D): voxels where it is 0 belong to no region.
    #[arg(long, value_name = "MASK")]
    pub mask: Option<PathBuf>,
    /// The label value that means "no region".
    #[arg(
        long,
        value_name = "B",
        default_value = "0",
        allow_negative_numbers = true
    )]
    pub background: f64,
    /// Output signals file: .npy (float32 for a float32 image, else float64), .tsv/.csv (a
    /// header row of label values) or .txt (no header).
    #[arg(short = 'o', long = "output", value_name = "SIGNALS")]
    pub output: PathBuf,
    /// Do not print warnings (e.g. labels that the mask removes).
    #[arg(long)]
    pub quiet: bool,
}

fn load(path: &Path, role: &str) -> anyhow::Result<Image> {
    Image::load(path).with_context(|| format!("cannot read the {role}"))
}

fn print_warnings(map: &LabelMap, quiet: bool) {
    if !quiet {
        for warning in map.warnings() {
            eprintln!("warning: {warning}");
        }
    }
}

/// Runs `voxcalc signals-to-img`.
pub fn signals_to_img(args: &SignalsToImgArgs) -> anyhow::Result<()> {
    let file = regions::read_signals(&args.signals)?;
    let labels = load(&args.labels, "labels image")?;
    let mask = args
        .mask
        .as_deref()
        .map(|m| load(m, "mask image"))
        .transpose()?;
    let map = LabelMap::build(
        labels.nifti(),
        mask.as_ref().map(Image::nifti),
        args.background,
    )?;
    print_warnings(&map, args.quiet);
    if let Some(header) = &file.header_labels {
        regions::check_header_row(header, &map, &args.signals)?;
    }
    let options = WriteOptions {
        compression_level: args.compress_level,
        ..WriteOptions::default()
    };
    map.write_signals_img(&file.signals, &args.output, &options)?;
    Ok(())
}

/// Runs `voxcalc img-to-signals`.
pub fn img_to_signals(args: &ImgToSignalsArgs) -> anyhow::Result<()> {
    SignalsFormat::from_path(&args.output)?;
    let img = load(&args.img, "image")?;
    let labels = load(&args.labels, "labels image")?;
    let mask = args
        .mask
        .as_deref()
        .map(|m| load(m, "mask image"))
        .transpose()?;
    let res = regions::img_to_signals_labels(
        img.nifti(),
        labels.nifti(),
        mask.as_ref().map(Image::nifti),
        args.background,
    )?;
    regions::write_signals(&args.output, &res.signals, &res.labels)?;
    Ok(())
}
