//! `voxcalc eval` and `voxcalc explain`: formulas over named images.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use voxcalc::{DType, EvalOptions, Formula, Image, InputSpec, Severity, WriteOptions};

use crate::progress::TerminalProgress;

/// Arguments of `voxcalc eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The formula, numpy style, e.g. 'np.where(mask > 0, a - b, 0)'. Quote it for the shell.
    #[arg(allow_hyphen_values = true)]
    pub formula: String,
    /// Input images as NAME=PATH (.nii, .nii.gz, .hdr/.img); NAME is how the formula refers to
    /// the image. The last one gives the result its affine and NIfTI version (as nilearn).
    #[arg(value_name = "NAME=PATH", required = true)]
    pub inputs: Vec<String>,
    /// Output image (.nii, .nii.gz, .hdr/.img). Written atomically: nothing appears on error.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Copy this input's header (TR, units, codes, descrip) onto the result, as nilearn's
    /// copy_header_from. The result keeps its own dtype.
    #[arg(long, value_name = "NAME")]
    pub copy_header_from: Option<String>,
    /// Worker threads (default: every core). Results do not depend on it.
    #[arg(long, value_name = "N", overrides_with = "threads")]
    pub threads: Option<usize>,
    /// gzip level for .gz outputs, 0-9 (nibabel writes 1). At 1, parts of the data that
    /// LZ77 matching cannot shrink (noisy float results) are only Huffman-coded: several
    /// times faster for a file about as small.
    #[arg(long, value_name = "L", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compress_level: u32,
    /// Allow OUT to be one of the inputs (it is still replaced atomically, never corrupted
    /// while being read).
    #[arg(long)]
    pub force: bool,
    /// No warnings and no progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the time spent compiling, computing and writing to stderr.
    #[arg(long)]
    pub timings: bool,
    /// Read a gzipped series volume by volume while it inflates, instead of inflating it whole
    /// first, when the formula uses it only through sums or means over time (np.mean, np.sum,
    /// np.var, np.std along axis -1): memory then stays flat (about 40 MB for a 91x109x91
    /// series of any length) at the price of inflating on one core, and once per pass
    /// (np.std reads the series twice). auto streams series that inflate to more than 512 MiB.
    /// Results are identical either way.
    #[arg(long, value_enum, default_value_t = Stream::Auto)]
    pub stream: Stream,
}

/// When `eval` streams a gzipped input (see `--stream`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Stream {
    /// Series inflating to more than 512 MiB.
    Auto,
    /// Every series the formula can read that way.
    Always,
    /// Never: inflate every input whole.
    Never,
}

/// Arguments of `voxcalc explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The formula.
    #[arg(allow_hyphen_values = true)]
    pub formula: String,
    /// Input images as NAME=PATH (their dtypes, shapes and byte orders shape the code).
    #[arg(value_name = "NAME=PATH", required = true)]
    pub inputs: Vec<String>,
}

/// Splits `NAME=PATH` arguments.
pub fn parse_bindings(args: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((name, path)) if !name.is_empty() && !path.is_empty() => {
                Ok((name.to_string(), PathBuf::from(path)))
            }
            _ => bail!(
                "input `{arg}` is not of the form NAME=PATH (e.g. img=sub-01_bold.nii.gz): the \
                 formula refers to each image by its NAME"
            ),
        })
        .collect()
}

/// Opens every bound image, naming the binding on failure.
pub fn load_images(bindings: &[(String, PathBuf)]) -> anyhow::Result<Vec<(String, Image)>> {
    open_images(bindings, |p| Image::load(p))
}

/// Opens every bound image with `open`, naming the binding on failure.
fn open_images(
    bindings: &[(String, PathBuf)],
    open: fn(&Path) -> Result<Image, voxcalc::Error>,
) -> anyhow::Result<Vec<(String, Image)>> {
    bindings
        .iter()
        .map(|(name, path)| {
            let image = open(path).with_context(|| format!("cannot load input `{name}`"))?;
            Ok((name.clone(), image))
        })
        .collect()
}

/// Gzipped inputs that inflate to more than this are streamed by `--stream auto` (when the
/// formula can read them volume by volume); smaller ones are inflated whole. Streaming keeps
/// memory flat, but it inflates on one core (and again for each further pass: a variance takes
/// two), while a whole inflate uses both: for S3's 361 MB, 0.9-1.2 s streamed against 0.5-0.6 s
/// whole.
const STREAM_BYTES: u64 = 512 << 20;

/// How `--stream auto` opens an input: header-first, then, unless it inflates to more than
/// [`STREAM_BYTES`], inflated whole at once (on the loading thread, so that inflating overlaps
/// the compiler's warm-up as it does for `--stream never`).
fn open_auto(path: &Path) -> Result<Image, voxcalc::Error> {
    let image = Image::open_streamed(path)?;
    if image.is_streamed() && image.header().data_bytes() as u64 <= STREAM_BYTES {
        drop(image);
        return Image::load(path);
    }
    Ok(image)
}

/// Keeps streamed (see `Image::open_streamed`) the first input that `mode` lets stream and the
/// formula can read volume by volume, and loads every other streamed input whole.
fn settle_streams(
    formula: &Formula,
    images: Vec<(String, Image)>,
    mode: Stream,
) -> anyhow::Result<Vec<(String, Image)>> {
    let mut keep = None;
    {
        let named: Vec<(&str, &Image)> = images.iter().map(|(n, i)| (n.as_str(), i)).collect();
        for (idx, (name, image)) in images.iter().enumerate() {
            let wanted = match mode {
                Stream::Always => true,
                Stream::Auto => image.header().data_bytes() as u64 > STREAM_BYTES,
                Stream::Never => false,
            };
            if image.is_streamed()
                && wanted
                && keep.is_none()
                && formula.stream_passes(&named, name)?.is_some()
            {
                keep = Some(idx);
            }
        }
    }
    images
        .into_iter()
        .enumerate()
        .map(|(idx, (name, image))| {
            if !image.is_streamed() || keep == Some(idx) {
                return Ok((name, image));
            }
            let path = image.path().to_path_buf();
            drop(image);
            let image =
                Image::load(&path).with_context(|| format!("cannot load input `{name}`"))?;
            Ok((name, image))
        })
        .collect()
}

/// Opens every bound image on another thread while this one warms up the compiler
/// (`voxcalc::warm_up`: Cranelift's code paged in, its tables built, this thread's allocator
/// grown), so that the formula's compilation afterwards runs warm and alone. Opening a `.nii`
/// takes about as long as the warm-up; inflating a `.nii.gz` hides it entirely.
/// Each image is opened with `open`.
fn load_warm(
    bindings: Vec<(String, PathBuf)>,
    open: fn(&Path) -> Result<Image, voxcalc::Error>,
) -> anyhow::Result<Vec<(String, Image)>> {
    let loader = std::thread::Builder::new()
        .name("load".into())
        .spawn(move || open_images(&bindings, open))
        .context("cannot start a thread to open the inputs")?;
    voxcalc::warm_up();
    match loader.join() {
        Ok(images) => images,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Compiles the formula for the loaded images.
pub fn compile(formula: &str, images: &[(String, Image)]) -> Result<Formula, voxcalc::Error> {
    let specs: Vec<InputSpec> = images
        .iter()
        .map(|(name, image)| InputSpec::of(name, image))
        .collect();
    Formula::compile(formula, &specs)
}

/// Runs `voxcalc eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let bindings = parse_bindings(&args.inputs)?;
    // Unless streaming is off, gzipped inputs are opened header-first: one the formula reads
    // only through sums over time may then be streamed (`--stream`), the others are inflated
    // whole once the formula is known.
    let images = match args.stream {
        Stream::Never => load_warm(bindings, |p| Image::load(p))?,
        Stream::Auto => load_warm(bindings, open_auto)?,
        Stream::Always => load_warm(bindings, |p| Image::open_streamed(p))?,
    };
    let formula = compile(&args.formula, &images)?;
    let images = settle_streams(&formula, images, args.stream)?;
    let named: Vec<(&str, &Image)> = images.iter().map(|(n, i)| (n.as_str(), i)).collect();
    let options = EvalOptions {
        copy_header_from: args.copy_header_from.clone(),
        threads: args.threads,
        write: WriteOptions {
            compression_level: args.compress_level,
            ..WriteOptions::default()
        },
        allow_overwrite_input: args.force,
    };
    let progress = TerminalProgress::start(!args.quiet);
    let res = formula.eval_to_file(&named, &args.output, &options, &progress);
    progress.finish();
    let written = match res {
        Err(voxcalc::Error::Image(err)) if err.kind() == voxcalc::ImageErrorKind::OutputIsInput => {
            bail!("{err} (pass --force to replace it: it is swapped in atomically once the result is complete)")
        }
        other => other?,
    };
    if !args.quiet {
        for warning in written
            .warnings
            .iter()
            .filter(|w| w.severity == Severity::Warning)
        {
            eprintln!("warning: {}", warning.message);
        }
    }
    if let Some(value) = written.scalar {
        println!("{}", format_scalar(value, written.dtype));
    }
    if args.timings {
        let t = written.timings;
        eprintln!(
            "timings: compile {:.3} ms, compute {:.3} ms, write {:.3} ms",
            t.compile.as_secs_f64() * 1e3,
            t.run.as_secs_f64() * 1e3,
            t.write.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// Runs `voxcalc explain`.
pub fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    let bindings = parse_bindings(&args.inputs)?;
    let images = load_images(&bindings)?;
    let formula = compile(&args.formula, &images)?;
    let named: Vec<(&str, &Image)> = images.iter().map(|(n, i)| (n.as_str(), i)).collect();
    print!("{}", formula.explain(&named)?);
    Ok(())
}

/// A scalar as numpy prints it: integers without a fraction, floats with the shortest repr
/// of their own precision (float32 values as float32).
pub fn format_scalar(value: f64, dtype: DType) -> String {
    if value.is_nan() {
        "nan".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if !dtype.is_float() {
        format!("{value:.0}")
    } else if dtype == DType::F64 {
        format!("{value:?}")
    } else {
        format!("{:?}", value as f32)
    }
}
