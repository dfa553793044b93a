//! The in-memory build against a voxel-by-voxel reference: random atlases made of runs of every
//! length (the fill writes runs in whole blocks that overshoot and are overwritten, so short,
//! long, adjacent and volume-ending runs all matter), every element size, both orders, fresh
//! buffers and reused dirty ones.

use std::path::Path;

use proptest::prelude::*;
use voxcalc_nifti::{Affine, Header, NiftiImage, NiftiVersion, OutputImage, WriteOptions};
use voxcalc_regions::{LabelMap, Order, Signals, Values};
use voxcalc_types::DType;

const EYE: Affine = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// Writes an int16 label image whose values (Fortran order) are `labels`.
fn write_labels(path: &Path, shape: [usize; 3], labels: &[i16]) -> NiftiImage {
    let header = Header::fresh(NiftiVersion::Nifti1, &shape, DType::I16, &EYE).unwrap();
    let mut out = OutputImage::create(path, &header, &WriteOptions::default()).unwrap();
    for (chunk, label) in out.data_mut().chunks_exact_mut(2).zip(labels) {
        chunk.copy_from_slice(&label.to_ne_bytes());
    }
    out.finish().unwrap();
    NiftiImage::open(path).unwrap()
}

/// Signals of `dtype` (`n_times x n_regions`, or 1-D when `n_times` is `None`) whose every
/// value is non-zero and tells its time point and region apart.
fn signals_of(dtype: DType, n_times: Option<usize>, n_regions: usize) -> Signals {
    let rows = n_times.unwrap_or(1);
    let value = |idx: usize| (idx % 120 + 1) as f64 + 0.5 * (idx % 2) as f64;
    let n = rows * n_regions;
    let values = match dtype {
        DType::U8 => Values::U8((0..n).map(|i| value(i) as u8 | 1).collect()),
        DType::I16 => Values::I16((0..n).map(|i| -(i as i16) - 1).collect()),
        DType::F32 => Values::F32((0..n).map(|i| value(i) as f32).collect()),
        DType::F64 => Values::F64((0..n).map(|i| -value(i)).collect()),
        other => panic!("no test signals of {other}"),
    };
    let shape: Vec<usize> = match n_times {
        Some(t) => vec![t, n_regions],
        None => vec![n_regions],
    };
    Signals::new(values, &shape, Order::C).unwrap()
}

/// Checks the fresh image of both orders against the reference, voxel by voxel, and a refill
/// of a dirty buffer against the fresh bytes.
fn check(labels: &[i16], shape: [usize; 3], dtype: DType, n_times: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let img = write_labels(&dir.path().join("labels.nii"), shape, labels);
    let map = LabelMap::build(&img, None, 0.0).unwrap();
    let mut sorted: Vec<i16> = labels.iter().copied().filter(|&l| l != 0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(map.n_regions(), sorted.len());
    let signals = signals_of(dtype, n_times, sorted.len());
    let [nx, ny, _] = shape;
    for order in [Order::F, Order::C] {
        let image = map.signals_to_img(&signals, order).unwrap();
        for t in 0..n_times.unwrap_or(1) {
            for (voxel_idx, label) in labels.iter().enumerate() {
                let voxel = [voxel_idx % nx, (voxel_idx / nx) % ny, voxel_idx / (nx * ny)];
                let expected = match sorted.binary_search(label) {
                    Ok(region) if *label != 0 => signals.get_f64(t, region),
                    _ => 0.0,
                };
                assert_eq!(
                    image.get_f64(voxel, t),
                    expected,
                    "{order:?} {dtype} voxel {voxel:?} t {t}"
                );
            }
        }
        let mut dirty = vec![0xAB; image.bytes().len()];
        map.signals_to_img_into(&signals, order, &mut dirty)
            .unwrap();
        assert!(dirty == image.bytes(), "{order:?} {dtype}: refill differs");
    }
}

/// Labels in runs: `(label, length)` pairs repeated until `n_voxels` are filled.
fn labels_from_runs(runs: &[(i16, usize)], n_voxels: usize) -> Vec<i16> {
    let mut labels = Vec::with_capacity(n_voxels);
    for &(label, len) in runs.iter().cycle() {
        if labels.len() == n_voxels {
            break;
        }
        let len = len.min(n_voxels - labels.len());
        labels.extend(std::iter::repeat_n(label, len));
    }
    labels
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_atlases_fill_as_the_reference(
        shape in (1usize..40, 1usize..5, 1usize..4),
        runs in prop::collection::vec((0i16..6, 1usize..40), 1..12),
        dtype in prop::sample::select(vec![DType::U8, DType::I16, DType::F32, DType::F64]),
        n_times in prop::option::of(1usize..4),
    ) {
        let shape = [shape.0, shape.1, shape.2];
        let labels = labels_from_runs(&runs, shape.iter().product());
        prop_assume!(labels.iter().any(|&l| l != 0));
        check(&labels, shape, dtype, n_times);
    }
}

#[test]
fn a_large_image_fills_as_the_reference() {
    // 3.1 MB of float32 output: over the size at which the buffer asks for huge pages.
    let shape = [64, 50, 41];
    let n_voxels: usize = shape.iter().product();
    let labels: Vec<i16> = (0..n_voxels)
        .map(|voxel_idx| {
            let hash = voxel_idx.wrapping_mul(2_654_435_761) >> 7;
            if (voxel_idx / 37) % 3 == 0 {
                0
            } else {
                (hash % 9) as i16 - 4
            }
        })
        .collect();
    check(&labels, shape, DType::F32, Some(6));
}

#[test]
fn streamed_files_hold_the_in_memory_image() {
    // 2.6 MB float64 volumes: the writer fills them in 1 MiB pieces, the last one partial.
    let shape = [70, 60, 78];
    let n_voxels: usize = shape.iter().product();
    let labels: Vec<i16> = (0..n_voxels)
        .map(|voxel_idx| {
            if (voxel_idx / 53) % 4 == 0 {
                0
            } else {
                ((voxel_idx.wrapping_mul(2_654_435_761) >> 9) % 7) as i16 + 1
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let img = write_labels(&dir.path().join("labels.nii"), shape, &labels);
    let map = LabelMap::build(&img, None, 0.0).unwrap();
    let signals = signals_of(DType::F64, Some(3), map.n_regions());
    let image = map.signals_to_img(&signals, Order::F).unwrap();
    for name in ["out.nii", "out.nii.gz", "out.hdr"] {
        let path = dir.path().join(name);
        map.write_signals_img(&signals, &path, &WriteOptions::default())
            .unwrap();
        let back = NiftiImage::open(&path).unwrap();
        assert_eq!(back.shape(), [70, 60, 78, 3], "{name}");
        assert_eq!(back.dtype(), DType::F64, "{name}");
        assert!(back.raw().bytes == image.bytes(), "{name}: data differ");
    }
}
