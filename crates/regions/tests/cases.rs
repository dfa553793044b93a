//! Hand-reasoned cases: small atlases whose expected images and signals are worked out by hand,
//! the errors and their messages, the signals file formats and the write safety of outputs.

use std::path::{Path, PathBuf};

use voxcalc_nifti::{Affine, Header, NiftiImage, NiftiVersion, OutputImage, WriteOptions};
use voxcalc_regions::{
    img_to_signals_labels, parse_npy, parse_text, read_signals, signals_to_img_labels,
    to_npy_bytes, to_text, write_signals, LabelMap, Order, RegionErrorKind, Signals, SignalsFormat,
    Values,
};
use voxcalc_types::DType;

const EYE: Affine = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// Writes an image whose values (Fortran order) are `values`, stored as `dtype`.
fn write_img(path: &Path, shape: &[usize], dtype: DType, values: &[f64], affine: &Affine) {
    let header = Header::fresh(NiftiVersion::Nifti1, shape, dtype, affine).unwrap();
    let mut out = OutputImage::create(path, &header, &WriteOptions::default()).unwrap();
    let size = dtype.size();
    for (chunk, &value) in out.data_mut().chunks_exact_mut(size).zip(values) {
        match dtype {
            DType::I16 => chunk.copy_from_slice(&(value as i16).to_ne_bytes()),
            DType::I32 => chunk.copy_from_slice(&(value as i32).to_ne_bytes()),
            DType::U8 => chunk.copy_from_slice(&(value as u8).to_ne_bytes()),
            DType::F32 => chunk.copy_from_slice(&(value as f32).to_ne_bytes()),
            DType::F64 => chunk.copy_from_slice(&value.to_ne_bytes()),
            other => panic!("test helper does not write {other}"),
        }
    }
    out.finish().unwrap();
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn img(&self, name: &str, shape: &[usize], dtype: DType, values: &[f64]) -> NiftiImage {
        self.img_affine(name, shape, dtype, values, &EYE)
    }
    fn img_affine(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        values: &[f64],
        affine: &Affine,
    ) -> NiftiImage {
        let path = self.path(name);
        write_img(&path, shape, dtype, values, affine);
        NiftiImage::open(path).unwrap()
    }
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// nilearn's docstring atlas, 2x2x2: in Fortran order the voxels (i, j, k) are
/// (0,0,0)=1 (1,0,0)=3 (0,1,0)=1 (1,1,0)=3 (0,0,1)=2 (1,0,1)=3 (0,1,1)=2 (1,1,1)=3.
const DOC_LABELS: [f64; 8] = [1.0, 3.0, 1.0, 3.0, 2.0, 3.0, 2.0, 3.0];

fn signals_f64(rows: &[&[f64]]) -> Signals {
    let rows: Vec<Vec<f64>> = rows.iter().map(|r| r.to_vec()).collect();
    Signals::from_rows(&rows).unwrap()
}

fn image_values(image: &voxcalc_regions::RegionImage) -> Vec<f64> {
    let shape = image.shape();
    let n_times = shape.get(3).copied().unwrap_or(1);
    let mut out = Vec::new();
    for t in 0..n_times {
        for k in 0..shape[2] {
            for j in 0..shape[1] {
                for i in 0..shape[0] {
                    out.push(image.get_f64([i, j, k], t));
                }
            }
        }
    }
    out
}

#[test]
fn docstring_example_fills_each_region_with_its_column() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    let signals = signals_f64(&[&[0.3, -1.0, 0.75], &[0.9, -1.9, -1.3]]);
    let image = signals_to_img_labels(&signals, &labels, None, 0.0, Order::F).unwrap();
    assert_eq!(image.shape(), &[2, 2, 2, 2]);
    assert_eq!(image.dtype(), DType::F64);
    let volume0 = [0.3, 0.75, 0.3, 0.75, -1.0, 0.75, -1.0, 0.75];
    let volume1 = [0.9, -1.3, 0.9, -1.3, -1.9, -1.3, -1.9, -1.3];
    let expected: Vec<f64> = volume0.iter().chain(&volume1).copied().collect();
    assert_eq!(image_values(&image), expected);
    // C order holds the same image in another layout.
    let c_image = signals_to_img_labels(&signals, &labels, None, 0.0, Order::C).unwrap();
    assert_eq!(image_values(&c_image), expected);
    let Values::F64(c_values) = c_image.to_values() else {
        panic!("float64 expected")
    };
    // C order: voxel (0,0,0) first with its two time points, then (0,0,1) = label 2.
    assert_eq!(&c_values[..4], &[0.3, 0.9, -1.0, -1.9]);
}

#[test]
fn one_d_signals_give_a_3d_image_and_background_voxels_are_zero() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[4, 1, 1], DType::I16, &[0.0, 5.0, 0.0, 2.0]);
    let signals = Signals::new(Values::I16(vec![-7, 9]), &[2], Order::C).unwrap();
    let image = signals_to_img_labels(&signals, &labels, None, 0.0, Order::F).unwrap();
    assert_eq!(image.shape(), &[4, 1, 1]);
    assert_eq!(image.dtype(), DType::I16);
    // Labels sorted: 2 -> column 0 (-7), 5 -> column 1 (9).
    assert_eq!(image_values(&image), vec![0.0, 9.0, 0.0, -7.0]);
    assert_eq!(image.header().cal_min, -7.0);
    assert_eq!(image.header().cal_max, 9.0);
}

#[test]
fn one_time_point_still_gives_a_4d_image() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    let signals = Signals::new(Values::F32(vec![1.0, 2.0, 3.0]), &[1, 3], Order::C).unwrap();
    let image = signals_to_img_labels(&signals, &labels, None, 0.0, Order::F).unwrap();
    assert_eq!(image.shape(), &[2, 2, 2, 1]);
    assert_eq!(image.dtype(), DType::F32);
}

#[test]
fn non_zero_background_makes_zero_a_region_and_negative_labels_sort_first() {
    let dir = Dir::new();
    let labels = dir.img(
        "labels.nii",
        &[5, 1, 1],
        DType::I16,
        &[0.0, -3.0, 4.0, 4.0, -1.0],
    );
    let map = LabelMap::build(&labels, None, 4.0).unwrap();
    assert_eq!(map.labels(), &[-3.0, -1.0, 0.0]);
    let signals = signals_f64(&[&[10.0, 20.0, 30.0]]);
    let image = map.signals_to_img(&signals, Order::F).unwrap();
    assert_eq!(image_values(&image), vec![30.0, 10.0, 0.0, 0.0, 20.0]);
}

#[test]
fn mask_turns_voxels_into_background_and_warns_about_removed_labels() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[4, 1, 1], DType::I16, &[1.0, 1.0, 2.0, 3.0]);
    let mask = dir.img("mask.nii", &[4, 1, 1], DType::F32, &[0.0, 0.5, 0.0, -2.0]);
    let map = LabelMap::build(&labels, Some(&mask), 0.0).unwrap();
    assert_eq!(map.labels(), &[1.0, 3.0]);
    assert_eq!(map.counts(), &[1, 1]);
    assert_eq!(map.warnings().len(), 1);
    assert!(map.warnings()[0].contains("the labels [2] have no voxel left"));
    let image = map
        .signals_to_img(&signals_f64(&[&[5.0, 6.0]]), Order::F)
        .unwrap();
    assert_eq!(image_values(&image), vec![0.0, 5.0, 0.0, 6.0]);
}

#[test]
fn mask_that_removes_every_label_is_an_error() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[3, 1, 1], DType::I16, &[1.0, 2.0, 0.0]);
    let mask = dir.img("mask.nii", &[3, 1, 1], DType::U8, &[0.0, 0.0, 1.0]);
    let err = LabelMap::build(&labels, Some(&mask), 0.0).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::NoLabelLeft);
    assert!(err
        .to_string()
        .contains("no label left after applying the mask"));
    assert!(err.to_string().contains("mask.nii"));
}

#[test]
fn column_count_mismatch_names_both_numbers() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    for (n_columns, relation) in [(2, "too few"), (4, "too many")] {
        let signals = signals_f64(&[&vec![1.0; n_columns]]);
        let err = signals_to_img_labels(&signals, &labels, None, 0.0, Order::F).unwrap_err();
        assert_eq!(err.kind(), RegionErrorKind::ColumnCount);
        let message = err.to_string();
        assert!(
            message.contains(&format!("{n_columns} columns ({relation})"))
                && message.contains("has 3 labels")
                && message.contains("[1, 2, 3]"),
            "{message}"
        );
    }
}

#[test]
fn labels_and_masks_must_be_3d_but_one_volume_counts_as_3d() {
    let dir = Dir::new();
    let labels_4d = dir.img("labels4.nii", &[2, 2, 2, 2], DType::I32, &[1.0; 16]);
    let err = LabelMap::build(&labels_4d, None, 0.0).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::Dimension);
    assert!(err
        .to_string()
        .contains("the labels image must be 3-D, but it is 4-D (shape (2, 2, 2, 2))"));
    let labels_1vol = dir.img("labels1.nii", &[2, 2, 2, 1], DType::I32, &DOC_LABELS);
    assert_eq!(
        LabelMap::build(&labels_1vol, None, 0.0)
            .unwrap()
            .n_regions(),
        3
    );
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    let mask_4d = dir.img("mask4.nii", &[2, 2, 2, 2], DType::U8, &[1.0; 16]);
    let err = LabelMap::build(&labels, Some(&mask_4d), 0.0).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::Dimension);
    assert!(err.to_string().contains("the mask image must be 3-D"));
}

#[test]
fn mask_geometry_uses_nilearns_affine_tolerance() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    let shifted = |delta: f64| {
        let mut affine = EYE;
        affine[0][3] = delta;
        affine
    };
    // nilearn's tolerance is 1000 * float32 eps (1.19e-4).
    let close = dir.img_affine(
        "close.nii",
        &[2, 2, 2],
        DType::U8,
        &[1.0; 8],
        &shifted(5e-5),
    );
    assert!(LabelMap::build(&labels, Some(&close), 0.0).is_ok());
    let far = dir.img_affine("far.nii", &[2, 2, 2], DType::U8, &[1.0; 8], &shifted(5e-4));
    let err = LabelMap::build(&labels, Some(&far), 0.0).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::Geometry);
    assert!(err.to_string().contains("images have different affines"));
    let other_shape = dir.img("shape.nii", &[2, 2, 3], DType::U8, &[1.0; 12]);
    let err = LabelMap::build(&labels, Some(&other_shape), 0.0).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::Geometry);
    assert!(err.to_string().contains("is (2, 2, 2) but"));
}

#[test]
fn non_finite_labels_read_as_zero() {
    let dir = Dir::new();
    let labels = dir.img(
        "labels.nii",
        &[4, 1, 1],
        DType::F32,
        &[f64::NAN, 1.5, f64::INFINITY, 0.0],
    );
    // Background 1.5: NaN, inf and 0 all become label 0, the only region.
    let map = LabelMap::build(&labels, None, 1.5).unwrap();
    assert_eq!(map.labels(), &[0.0]);
    assert_eq!(map.counts(), &[3]);
}

#[test]
fn int64_signals_become_int32_when_they_fit() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 1, 1], DType::I16, &[1.0, 2.0]);
    let small = Signals::new(Values::I64(vec![-5, 7]), &[2], Order::C).unwrap();
    let image = signals_to_img_labels(&small, &labels, None, 0.0, Order::F).unwrap();
    assert_eq!(image.dtype(), DType::I32);
    let big = Signals::new(Values::I64(vec![-5, 1 << 40]), &[2], Order::C).unwrap();
    let image = signals_to_img_labels(&big, &labels, None, 0.0, Order::F).unwrap();
    assert_eq!(image.dtype(), DType::I64);
    assert_eq!(image_values(&image), vec![-5.0, (1u64 << 40) as f64]);
}

#[test]
fn header_is_the_atlas_header_with_the_signals_dtype_and_no_scaling() {
    let dir = Dir::new();
    let mut header = Header::fresh(NiftiVersion::Nifti2, &[2, 2, 2], DType::I16, &EYE).unwrap();
    header.set_descrip("an atlas");
    header.xyzt_units = 2;
    let path = dir.path("atlas.nii");
    let mut out = OutputImage::create(&path, &header, &WriteOptions::default()).unwrap();
    for (chunk, &v) in out.data_mut().chunks_exact_mut(2).zip(&DOC_LABELS) {
        chunk.copy_from_slice(&(v as i16).to_ne_bytes());
    }
    out.finish().unwrap();
    let labels = NiftiImage::open(&path).unwrap();
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    let signals = signals_f64(&[&[0.25, 1e-9, 123456.789]]);
    let target = dir.path("out.nii.gz");
    map.write_signals_img(&signals, &target, &WriteOptions::default())
        .unwrap();
    let written = NiftiImage::open(&target).unwrap();
    let h = written.header();
    assert_eq!(h.version, NiftiVersion::Nifti2);
    assert_eq!(h.descrip(), "an atlas");
    assert_eq!(h.xyzt_units, 2);
    assert_eq!(written.dtype(), DType::F64);
    assert!(written.scaling().is_none());
    assert_eq!(written.shape(), vec![2, 2, 2, 1]);
    assert_eq!((h.cal_min, h.cal_max), (1e-9, 123456.789));
    // Values are never quantised into the atlas's int16.
    assert_eq!(
        written.to_f64_vec(),
        vec![0.25, 123456.789, 0.25, 123456.789, 1e-9, 123456.789, 1e-9, 123456.789]
    );
}

#[test]
fn streamed_saved_and_pair_outputs_hold_the_same_values() {
    let dir = Dir::new();
    // Enough voxels and volumes for several chunks per volume and several batches.
    let shape = [110, 60, 50];
    let n_voxels: usize = shape.iter().product();
    let label_values: Vec<f64> = (0..n_voxels).map(|v| ((v / 7) % 5) as f64).collect();
    let labels = dir.img("labels.nii", &shape, DType::I16, &label_values);
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    assert_eq!(map.labels(), &[1.0, 2.0, 3.0, 4.0]);
    let n_times = 9;
    let values: Vec<f32> = (0..n_times * 4).map(|i| i as f32 - 11.5).collect();
    let signals = Signals::new(Values::F32(values), &[n_times, 4], Order::F).unwrap();
    let image = map.signals_to_img(&signals, Order::C).unwrap();
    let expected = image_values(&image);
    image
        .save(dir.path("saved.nii"), &WriteOptions::default())
        .unwrap();
    for name in ["stream.nii", "stream.nii.gz", "pair.hdr", "pair_gz.hdr.gz"] {
        map.write_signals_img(&signals, dir.path(name), &WriteOptions::default())
            .unwrap();
    }
    for name in [
        "saved.nii",
        "stream.nii",
        "stream.nii.gz",
        "pair.hdr",
        "pair_gz.hdr.gz",
    ] {
        let written = NiftiImage::open(dir.path(name)).unwrap();
        assert_eq!(written.shape(), vec![110, 60, 50, 9], "{name}");
        assert!(written.to_f64_vec() == expected, "{name}");
    }
    assert!(!dir.names().iter().any(|n| n.ends_with(".tmp")));
}

#[test]
fn failed_writes_leave_nothing_and_inputs_are_never_overwritten() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    let before = dir.names();
    let wrong = signals_f64(&[&[1.0, 2.0]]);
    let err = map
        .write_signals_img(&wrong, dir.path("out.nii.gz"), &WriteOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::ColumnCount);
    let right = signals_f64(&[&[1.0, 2.0, 3.0]]);
    let err = map
        .write_signals_img(&right, dir.path("labels.nii"), &WriteOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("would replace the input"), "{err}");
    let err = map
        .write_signals_img(&right, dir.path("out.txt"), &WriteOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("output name must end in .nii"),
        "{err}"
    );
    assert_eq!(dir.names(), before);
    assert_eq!(
        NiftiImage::open(dir.path("labels.nii"))
            .unwrap()
            .to_f64_vec(),
        DOC_LABELS
    );
}

#[test]
fn region_means_per_volume() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    // Volume t holds voxel_idx + 10 t; label 1 = voxels {0, 2}, 2 = {4, 6}, 3 = {1, 3, 5, 7}.
    let values: Vec<f64> = (0..16)
        .map(|i| (i % 8) as f64 + 10.0 * (i / 8) as f64)
        .collect();
    let img = dir.img("img.nii", &[2, 2, 2, 2], DType::I16, &values);
    let res = img_to_signals_labels(&img, &labels, None, 0.0).unwrap();
    assert_eq!(res.labels, vec![1.0, 2.0, 3.0]);
    assert_eq!(res.signals.dtype(), DType::F64);
    assert_eq!(res.signals.shape(), &[2, 3]);
    let rows = voxcalc_regions::to_f64_rows(&res.signals);
    assert_eq!(rows, vec![vec![1.0, 5.0, 4.0], vec![11.0, 15.0, 14.0]]);
    // float32 images give float32 signals; NaN and inf count as 0.
    let mut with_nan = values.clone();
    with_nan[0] = f64::NAN;
    with_nan[1] = f64::INFINITY;
    let img = dir.img("img32.nii", &[2, 2, 2, 2], DType::F32, &with_nan);
    let res = img_to_signals_labels(&img, &labels, None, 0.0).unwrap();
    assert_eq!(res.signals.dtype(), DType::F32);
    let rows = voxcalc_regions::to_f64_rows(&res.signals);
    assert_eq!(rows[0], vec![1.0, 5.0, (0.0 + 3.0 + 5.0 + 7.0) / 4.0]);
}

#[test]
fn image_for_signals_must_be_4d_and_fit_the_labels() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    let img_3d = dir.img("img3.nii", &[2, 2, 2], DType::F32, &[1.0; 8]);
    let err = img_to_signals_labels(&img_3d, &labels, None, 0.0).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::Dimension);
    assert!(err.to_string().contains("must be 4-D"));
    let other = dir.img("img_other.nii", &[2, 2, 3, 2], DType::F32, &[1.0; 24]);
    let err = img_to_signals_labels(&other, &labels, None, 0.0).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::Geometry);
}

#[test]
fn round_trip_as_in_nilearns_tests() {
    // nilearn's test_signals_extraction_with_labels_{without,with}_mask: 8 octant regions of a
    // 7x8x9 grid, 17 time points; signals -> image -> signals gives the signals back, every voxel
    // of a region holds its column, and voxels outside the mask are 0.
    let dir = Dir::new();
    let shape = [7, 8, 9];
    let (h0, h1, h2) = (3, 4, 4);
    let mut label_values = Vec::new();
    let mut mask_values = Vec::new();
    for k in 0..shape[2] {
        for j in 0..shape[1] {
            for i in 0..shape[0] {
                let octant =
                    usize::from(i >= h0) * 4 + usize::from(j >= h1) * 2 + usize::from(k >= h2);
                label_values.push((octant + 1) as f64);
                let inside = i > 0 && j > 0 && k > 0 && i < 6 && j < 7 && k < 8;
                mask_values.push(f64::from(u8::from(inside)));
            }
        }
    }
    let labels = dir.img("labels.nii", &shape, DType::I32, &label_values);
    let mask = dir.img("mask.nii", &shape, DType::F64, &mask_values);
    let mut state = 12345u64;
    let rows: Vec<Vec<f64>> = (0..17)
        .map(|_| {
            (0..8)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
                })
                .collect()
        })
        .collect();
    let signals = Signals::from_rows(&rows).unwrap();
    for mask in [None, Some(&mask)] {
        let image = signals_to_img_labels(&signals, &labels, mask, 0.0, Order::F).unwrap();
        let path = dir.path("recon.nii.gz");
        image.save(&path, &WriteOptions::default()).unwrap();
        let recon = NiftiImage::open(&path).unwrap();
        let values = recon.to_f64_vec();
        let n_voxels = label_values.len();
        for voxel_idx in 0..n_voxels {
            let outside = mask.is_some() && mask_values[voxel_idx] == 0.0;
            for (t, row) in rows.iter().enumerate() {
                let expected = if outside {
                    0.0
                } else {
                    row[label_values[voxel_idx] as usize - 1]
                };
                assert_eq!(values[voxel_idx + n_voxels * t], expected);
            }
        }
        let back = img_to_signals_labels(&recon, &labels, mask, 0.0).unwrap();
        assert_eq!(back.labels, (1..=8).map(f64::from).collect::<Vec<_>>());
        for (t, row) in rows.iter().enumerate() {
            for (r, &value) in row.iter().enumerate() {
                assert!((back.signals.get_f64(t, r) - value).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn npy_headers_byte_orders_and_layouts() {
    let path = Path::new("x.npy");
    // Version 1, big-endian int16, Fortran order, 2 x 3: memory order is column by column.
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let dict = "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }";
    let header = format!("{dict:<117}\n");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in [1i16, 4, 2, 5, 3, -6] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    let signals = parse_npy(&bytes, path).unwrap();
    assert_eq!(signals.shape(), &[2, 3]);
    assert_eq!(signals.order(), Order::F);
    assert_eq!(
        voxcalc_regions::to_f64_rows(&signals),
        vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, -6.0]]
    );
    // Version 2 (4-byte header length), little-endian float32, 1-D.
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }          \n";
    v2.extend_from_slice(&(header.len() as u32).to_le_bytes());
    v2.extend_from_slice(header.as_bytes());
    v2.extend_from_slice(&1.5f32.to_le_bytes());
    v2.extend_from_slice(&(-0.25f32).to_le_bytes());
    let signals = parse_npy(&v2, path).unwrap();
    assert_eq!(signals.values(), &Values::F32(vec![1.5, -0.25]));
    // Our writer's output parses back to the same array, in every dtype and order.
    for signals in [
        Signals::new(Values::F64(vec![1.0, 2.0, 3.0, 4.0]), &[2, 2], Order::F).unwrap(),
        Signals::new(Values::I32(vec![-1, 2, 3]), &[3], Order::C).unwrap(),
        Signals::new(Values::U16(vec![1, 65535]), &[1, 2], Order::C).unwrap(),
    ] {
        assert_eq!(parse_npy(&to_npy_bytes(&signals), path).unwrap(), signals);
    }
}

#[test]
fn bad_npy_files_are_clear_errors() {
    let path = Path::new("bad.npy");
    let good = to_npy_bytes(&Signals::new(Values::F64(vec![1.0, 2.0]), &[2], Order::C).unwrap());
    // The same file with `from` replaced by `to` in its (version 1) header.
    let edited = |from: &str, to: &str| {
        let len = usize::from(u16::from_le_bytes([good[8], good[9]]));
        let header = std::str::from_utf8(&good[10..10 + len])
            .unwrap()
            .replace(from, to);
        let mut bytes = good[..8].to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&good[10 + len..]);
        bytes
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"PK\x03\x04".to_vec(), "does not start with the .npy magic"),
        (
            good[..good.len() - 3].to_vec(),
            "needs 16 data bytes, the file holds 13",
        ),
        (good[..20].to_vec(), "the header is longer than the file"),
        (edited("<f8", "<c8"), "'<c8' are not supported"),
        (edited("(2,)", "(1, 1, 2)"), "1-D (regions) or 2-D"),
        (edited("<f8", "|b1"), "booleans: convert to uint8"),
    ];
    for (bytes, needle) in cases {
        let err = parse_npy(&bytes, path).unwrap_err();
        assert_eq!(err.kind(), RegionErrorKind::Signals);
        assert!(err.to_string().contains(needle), "{err}");
        assert!(err.to_string().starts_with("bad.npy: "), "{err}");
    }
}

#[test]
fn text_files_with_header_rows() {
    let path = Path::new("s.tsv");
    let file = parse_text(
        "1\t2\t10\n0.5\t-1\t3e2\n# comment\n\n1\t2\t3\n",
        SignalsFormat::Tsv,
        path,
    )
    .unwrap();
    assert_eq!(file.header_labels, Some(vec![1.0, 2.0, 10.0]));
    assert_eq!(
        voxcalc_regions::to_f64_rows(&file.signals),
        vec![vec![0.5, -1.0, 300.0], vec![1.0, 2.0, 3.0]]
    );
    let csv = parse_text("-3,4.5\n1,2\n", SignalsFormat::Csv, Path::new("s.csv")).unwrap();
    assert_eq!(csv.header_labels, Some(vec![-3.0, 4.5]));
    let txt = parse_text("1 2  3\n4\t5 6\n", SignalsFormat::Txt, Path::new("s.txt")).unwrap();
    assert_eq!(txt.header_labels, None);
    assert_eq!(txt.signals.shape(), &[2, 3]);
    for (text, format, needle) in [
        (
            "a\tb\n1\t2\n",
            SignalsFormat::Tsv,
            "line 1, column 1: the header row must hold the label values",
        ),
        (
            "1\t2\n1\t2\t3\n",
            SignalsFormat::Tsv,
            "line 2 has 3 values, but the header row has 2",
        ),
        (
            "1 2\n3 x\n",
            SignalsFormat::Txt,
            "line 2, column 2: 'x' is not a number",
        ),
        ("1,2\n", SignalsFormat::Csv, "no rows of signal values"),
        ("", SignalsFormat::Csv, "the file is empty"),
    ] {
        let err = parse_text(text, format, path).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn header_row_must_match_the_labels() {
    let dir = Dir::new();
    let labels = dir.img("labels.nii", &[2, 2, 2], DType::I32, &DOC_LABELS);
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    let path = Path::new("s.tsv");
    assert!(voxcalc_regions::check_header_row(&[1.0, 2.0, 3.0], &map, path).is_ok());
    let err = voxcalc_regions::check_header_row(&[1.0, 2.0, 4.0], &map, path).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::HeaderRow);
    assert!(
        err.to_string().contains("names the labels [1, 2, 4]"),
        "{err}"
    );
    let err = voxcalc_regions::check_header_row(&[1.0, 2.0], &map, path).unwrap_err();
    assert_eq!(err.kind(), RegionErrorKind::ColumnCount);
}

#[test]
fn written_text_and_npy_round_trip() {
    let dir = Dir::new();
    let f64_signals = signals_f64(&[&[0.1, -1e-300, 1e20], &[f64::NAN, f64::INFINITY, 2.0 / 3.0]]);
    let f32_signals = Signals::new(
        Values::F32(vec![0.1, 1e-7, 3.4e38, -2.5]),
        &[2, 2],
        Order::C,
    )
    .unwrap();
    for (name, signals, labels) in [
        ("a.tsv", &f64_signals, vec![1.0, 2.5, 300.0]),
        ("a.csv", &f64_signals, vec![-1.0, 0.0, 7.0]),
        ("a.txt", &f64_signals, vec![1.0, 2.0, 3.0]),
        ("a.npy", &f64_signals, vec![1.0, 2.0, 3.0]),
        ("b.tsv", &f32_signals, vec![1.0, 2.0]),
        ("b.npy", &f32_signals, vec![1.0, 2.0]),
    ] {
        let path = dir.path(name);
        write_signals(&path, signals, &labels).unwrap();
        let back = read_signals(&path).unwrap();
        let got = voxcalc_regions::to_f64_rows(&back.signals);
        let want = voxcalc_regions::to_f64_rows(signals);
        // Text holds float64; float32 values come back exactly once cast to float32.
        let single = name.starts_with('b') && !name.ends_with("npy");
        for (&g, &w) in got.iter().flatten().zip(want.iter().flatten()) {
            let (g, w) = if single {
                (f64::from(g as f32), w)
            } else {
                (g, w)
            };
            assert!(g == w || (g.is_nan() && w.is_nan()), "{name}: {g} != {w}");
        }
        if name.ends_with("sv") {
            assert_eq!(
                back.header_labels.as_deref(),
                Some(labels.as_slice()),
                "{name}"
            );
        }
    }
    let text = to_text(&f64_signals, &[1.0, 2.5, 300.0], SignalsFormat::Tsv);
    assert!(text.starts_with("1\t2.5\t300\n"), "{text}");
    let err = write_signals(dir.path("a.xlsx"), &f64_signals, &[]).unwrap_err();
    assert!(err
        .to_string()
        .contains("must end in .npy, .tsv, .csv or .txt"));
}

#[test]
fn background_blocks_of_plain_outputs_are_holes_that_read_as_zeros() {
    let dir = Dir::new();
    // Labels only in the first slice: most 64 KiB blocks, the last ones included, are zero.
    let shape = [100, 100, 20];
    let n_voxels: usize = shape.iter().product();
    let label_values: Vec<f64> = (0..n_voxels)
        .map(|v| if v < 10_000 { (1 + v % 3) as f64 } else { 0.0 })
        .collect();
    let labels = dir.img("labels.nii", &shape, DType::I16, &label_values);
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    let signals = Signals::new(
        Values::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        &[2, 3],
        Order::C,
    )
    .unwrap();
    let path = dir.path("sparse.nii");
    map.write_signals_img(&signals, &path, &WriteOptions::default())
        .unwrap();
    let written = NiftiImage::open(&path).unwrap();
    let expected = image_values(&map.signals_to_img(&signals, Order::F).unwrap());
    assert!(written.to_f64_vec() == expected);
    let header_bytes = written.header().vox_offset;
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        header_bytes + (n_voxels * 2 * 4) as u64
    );
}

#[test]
fn filling_a_reused_buffer_writes_the_background_too() {
    let dir = Dir::new();
    let labels = dir.img(
        "labels.nii",
        &[3, 2, 2],
        DType::I16,
        &[0.0, 1.0, 2.0, 0.0, 2.0, 2.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0],
    );
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    let signals = Signals::new(Values::I32(vec![5, -6, 7, -8]), &[2, 2], Order::C).unwrap();
    for order in [Order::F, Order::C] {
        let fresh = map.signals_to_img(&signals, order).unwrap();
        let mut dirty = vec![0xAB; fresh.bytes().len()];
        map.signals_to_img_into(&signals, order, &mut dirty)
            .unwrap();
        assert_eq!(dirty, fresh.bytes(), "{order:?}");
    }
    let err = map
        .signals_to_img_into(&signals, Order::F, &mut [0u8; 7])
        .unwrap_err();
    assert!(err.to_string().contains("holds 7 bytes"), "{err}");
}
