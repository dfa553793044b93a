//! `voxcalc info`: header summaries.

use std::path::PathBuf;

use voxcalc::Image;

/// Prints a description of each image, separated by blank lines.
pub fn run(paths: &[PathBuf]) -> anyhow::Result<()> {
    for (idx, path) in paths.iter().enumerate() {
        let image = Image::load(path)?;
        if idx > 0 {
            println!();
        }
        print!("{}", image.describe());
    }
    Ok(())
}
