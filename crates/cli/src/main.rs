//! The `voxcalc` command-line tool: evaluate numpy-dialect formulas over NIfTI images.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod info;

/// numpy-dialect formulas over NIfTI volumes, compiled to native code.
///
/// voxcalc evaluates formulas as nilearn's math_img does (same shapes, dtypes, affines, header
/// fields and values), compiled into one fused multi-threaded kernel, without Python.
#[derive(Parser, Debug)]
#[command(name = "voxcalc", version, propagate_version = true)]
#[command(after_help = "Examples:
  voxcalc info examples/bold.nii.gz
  voxcalc eval 'np.mean(bold, axis=-1)' bold=examples/bold.nii.gz -o mean.nii.gz

Run `voxcalc help COMMAND` for the options and examples of one command.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Info { paths } => info::run(&paths),
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
