//! NIfTI read/write benchmark against nibabel (issue 3). Placeholder until the nifti crate lands.

fn main() {}
