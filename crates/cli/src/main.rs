//! The `voxcalc` command-line tool: evaluate numpy-dialect formulas over NIfTI images.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod eval;
mod info;
mod progress;
mod regions;
mod repl;

/// numpy-dialect formulas over NIfTI volumes, compiled to native code.
///
/// voxcalc evaluates formulas as nilearn's math_img does (same shapes, dtypes, affines, header
/// fields and values), compiled into one fused multi-threaded kernel, without Python.
#[derive(Parser, Debug)]
#[command(name = "voxcalc", version, propagate_version = true)]
#[command(after_help = "Examples:
  voxcalc info examples/bold.nii.gz
  voxcalc eval 'np.mean(bold, axis=-1)' bold=examples/bold.nii.gz -o mean.nii.gz
  voxcalc img-to-signals examples/bold.nii.gz --labels examples/atlas.nii.gz -o signals.tsv
  voxcalc repl anat=examples/anat.nii.gz

Run `voxcalc help COMMAND` for the options and examples of one command.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate a formula over images and write the result, as nilearn's math_img.
    ///
    /// The formula is numpy: the images are arrays named by NAME, `np` is numpy. It is compiled
    /// into one native kernel and run over all cores; the result has the dtype, shape, affine
    /// and header nilearn would give it. A 0-d result (e.g. np.mean(img)) is also printed.
    #[command(after_help = "Examples:
  voxcalc eval 'img1 + img2' img1=a.nii.gz img2=b.nii.gz -o sum.nii.gz
  voxcalc eval 'np.mean(bold, axis=-1) / np.std(bold, axis=-1)' bold=bold.nii.gz -o tsnr.nii.gz
  voxcalc eval 'np.where(mask[..., None] > 0, bold, 0)' bold=bold.nii.gz mask=mask.nii.gz -o masked.nii.gz
  voxcalc eval 'np.mean(bold, axis=-1)' bold=bold.nii.gz -o mean.nii.gz --copy-header-from bold
  voxcalc eval 'np.mean(img[mask > 0])' img=anat.nii.gz mask=mask.nii.gz -o mean.nii

Broadcasting is numpy's: a 3-D mask does not combine with a 4-D series until you write
mask[..., None]. Integer arithmetic wraps like numpy's; int / int gives float64.
See docs/language.md for every function and operator.")]
    Eval(eval::EvalArgs),
    /// Show what a formula compiles to: typed tree, plan, kernel IR and Cranelift IR.
    ///
    /// Use it to see why a formula is fast or slow: which reductions run first as separate
    /// stages, which become loops inside the per-voxel kernel, and the native code's IR.
    #[command(after_help = "Example:
  voxcalc explain 'np.mean(bold, axis=-1) / np.std(bold, axis=-1)' bold=bold.nii.gz")]
    Explain(eval::ExplainArgs),
    /// Show an image's header: shape, datatype, scaling, voxel sizes, TR, units, xforms, affine.
    ///
    /// In the spirit of fslhd, but with the values as a formula sees them (e.g. a scaled int16
    /// image is float64 in formulas, as in nibabel).
    #[command(after_help = "Examples:
  voxcalc info anat.nii.gz
  voxcalc info bold.nii.gz mask.nii")]
    Info {
        /// One or more images (.nii, .nii.gz, .hdr/.img).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Try formulas interactively: each line is evaluated over the session's images.
    ///
    /// Each line is a formula over the images opened with NAME=PATH or `:load`; the answer is a
    /// summary (dtype, shape, min, max, mean, non-zero and NaN counts, compile and run time) or,
    /// for a 0-d result, its value. `name = formula` keeps a result for later formulas, `_` is
    /// the last one. Errors are shown with a caret under the offending token and the session
    /// goes on. Commands start with `:` (`:help` lists them): `:show NAME` draws slices in the
    /// terminal, `:png NAME PATH` writes the same picture, `:save NAME PATH` writes a result.
    /// Tab completes np. functions, methods, names and commands; history is kept in
    /// $VOXCALC_HISTORY, else $XDG_STATE_HOME/voxcalc/history (~/.local/state/voxcalc/history);
    /// Ctrl-C cancels a running evaluation, Ctrl-D or `:quit` leaves. With stdin not a
    /// terminal, lines are read as a script and printed plainly (no prompt, colours or
    /// timings); the exit status is 1 if any line failed.
    #[command(after_help = "Examples:
  voxcalc repl bold=examples/bold.nii.gz mask=examples/mask.nii.gz
  >>> m = np.mean(bold, axis=-1)
  >>> brain = np.where(mask > 0, m, 0)
  >>> np.mean(brain[mask > 0])
  >>> z = (brain - np.mean(brain)) / np.std(brain)
  >>> :show z
  >>> :png z z.png z 12
  >>> :save z z.nii.gz --copy-header-from mask

Scripted, with the input echoed:
  printf 'm = np.mean(bold, axis=-1)\\n:show m\\n' | voxcalc repl --echo bold=examples/bold.nii.gz")]
    Repl(repl::ReplArgs),
    /// Write region signals back to voxels through a label atlas (nilearn's signals_to_img_labels).
    ///
    /// The regions are the sorted unique values of the label image (voxels outside --mask read as
    /// the background) minus the --background label; column r of the signals fills every voxel of
    /// the r-th region, every other voxel is 0. 1-D signals (one value per region) give a 3-D
    /// image, 2-D signals (time points x regions) a 4-D image. The image has the signals' dtype
    /// (nilearn copies the atlas datatype on save and so quantises float signals; voxcalc never
    /// does), the atlas's header and affine. The signals must have exactly one column per
    /// region; a .tsv/.csv header row must name the regions' labels.
    #[command(name = "signals-to-img")]
    #[command(after_help = "Examples:
  voxcalc signals-to-img weights.npy --labels atlas.nii.gz -o weights.nii.gz
  voxcalc signals-to-img timeseries.tsv --labels atlas.nii.gz --mask brain.nii.gz -o recon.nii.gz
  voxcalc signals-to-img tvals.csv --labels atlas.nii --background -1 -o tmap.nii

Signals files: .npy (1-D or 2-D; float32, float64, int8-int32, uint8-uint32, int64), .tsv/.csv
(a header row of label values, then one row per time point), .txt (whitespace-separated, no
header). Text files are read as float64.")]
    SignalsToImg(regions::SignalsToImgArgs),
    /// Extract region mean signals from a 4-D image through a label atlas (nilearn's
    /// img_to_signals_labels).
    ///
    /// For every volume, the mean of each region's voxels (NaN and infinite voxels count as 0, as
    /// in nilearn). The signals are time points x regions, float32 for a float32 image and
    /// float64 otherwise; .tsv/.csv files start with a header row of the regions' labels.
    #[command(name = "img-to-signals")]
    #[command(after_help = "Examples:
  voxcalc img-to-signals bold.nii.gz --labels atlas.nii.gz -o signals.tsv
  voxcalc img-to-signals bold.nii.gz --labels atlas.nii.gz --mask brain.nii.gz -o signals.npy

A round trip gives the signals back:
  voxcalc signals-to-img signals.npy --labels atlas.nii.gz -o recon.nii.gz
  voxcalc img-to-signals recon.nii.gz --labels atlas.nii.gz -o back.npy")]
    ImgToSignals(regions::ImgToSignalsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Eval(args) => eval::run(&args),
        Command::Explain(args) => eval::explain(&args),
        Command::Info { paths } => info::run(&paths),
        Command::SignalsToImg(args) => regions::signals_to_img(&args),
        Command::ImgToSignals(args) => regions::img_to_signals(&args),
        Command::Repl(args) => repl::run(&args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", render_error(&err));
            ExitCode::FAILURE
        }
    }
}

/// Renders an error for the terminal: `error: ...` with its causes.
fn render_error(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let head = err.to_string();
    if head.starts_with("error") {
        out.push_str(&head);
    } else {
        out.push_str("error: ");
        out.push_str(&head);
    }
    for cause in err.chain().skip(1) {
        out.push_str(&format!("\n  caused by: {cause}"));
    }
    out
}
