//! Region signals benchmark against nilearn (issue 7).
//!
//! Run without `--bench` (as `cargo test --all-targets` does), it does a quick smoke run on a
//! tiny atlas without Python: signals -> image -> signals must give the signals back.

use voxcalc::regions::{LabelMap, Order, Signals, Values};
use voxcalc_nifti::{Header, NiftiImage, NiftiVersion, OutputImage, WriteOptions};
use voxcalc_types::DType;

const AFFINE: [[f64; 4]; 4] = [
    [-2.0, 0.0, 0.0, 90.0],
    [0.0, 2.0, 0.0, -126.0],
    [0.0, 0.0, 2.0, -72.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// Writes an int16 atlas of `n_regions` slabs along x (0 outside a central box).
fn write_atlas(path: &std::path::Path, shape: [usize; 3], n_regions: usize) {
    let header = Header::fresh(NiftiVersion::Nifti1, &shape, DType::I16, &AFFINE).unwrap();
    let mut out = OutputImage::create(path, &header, &WriteOptions::default()).unwrap();
    let [nx, ny, nz] = shape;
    for (voxel_idx, chunk) in out.data_mut().chunks_exact_mut(2).enumerate() {
        let (x, y, z) = (voxel_idx % nx, (voxel_idx / nx) % ny, voxel_idx / (nx * ny));
        let inside = x > 0 && y > 0 && z > 0 && x + 1 < nx && y + 1 < ny && z + 1 < nz;
        let label = if inside {
            1 + ((x * 31 + y * 17 + z * 7) / 3) % n_regions
        } else {
            0
        };
        chunk.copy_from_slice(&(label as i16).to_ne_bytes());
    }
    out.finish().unwrap();
}

fn smoke() {
    let dir = std::env::temp_dir().join(format!("voxcalc-regions-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let atlas = dir.join("atlas.nii");
    write_atlas(&atlas, [9, 8, 7], 5);
    let labels = NiftiImage::open(&atlas).unwrap();
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    let n_times = 3;
    let values: Vec<f32> = (0..n_times * map.n_regions())
        .map(|i| i as f32 * 0.5)
        .collect();
    let signals = Signals::new(Values::F32(values), &[n_times, map.n_regions()], Order::C).unwrap();
    for name in ["recon.nii", "recon.nii.gz"] {
        let out = dir.join(name);
        map.write_signals_img(&signals, &out, &WriteOptions::default())
            .unwrap();
        let back = map
            .img_to_signals(&NiftiImage::open(&out).unwrap())
            .unwrap();
        assert_eq!(back.signals, signals, "round trip through {name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    println!("regions bench smoke run: ok (run `cargo bench --bench regions` to measure)");
}

fn main() {
    smoke();
}
