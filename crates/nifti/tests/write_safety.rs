//! Output safety and round trips: temp-file-and-rename writing, refusing an output that is an
//! input, spill files past the memory budget, multi-member gzip, header limits.

use std::path::Path;

use voxcalc_nifti::{
    check_output_not_input, DataSource, ErrorKind, Header, NiftiImage, NiftiVersion, OutputImage,
    ReadOptions, WriteOptions,
};
use voxcalc_types::DType;

const AFFINE: [[f64; 4]; 4] = [
    [2.0, 0.0, 0.0, -90.0],
    [0.0, 2.0, 0.0, -126.0],
    [0.0, 0.0, 2.0, -72.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// Writes an int16 image whose voxel `i` holds `i as i16 + offset`.
fn write_i16(path: &Path, shape: &[usize], offset: i16, options: &WriteOptions) {
    let header = Header::fresh(NiftiVersion::Nifti1, shape, DType::I16, &AFFINE).unwrap();
    let mut output = OutputImage::create(path, &header, options).unwrap();
    for (voxel_idx, chunk) in output.data_mut().chunks_exact_mut(2).enumerate() {
        chunk.copy_from_slice(&(voxel_idx as i16).wrapping_add(offset).to_ne_bytes());
    }
    output.finish().unwrap();
}

fn values(image: &NiftiImage) -> Vec<f64> {
    image.to_f64_vec()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn dropping_an_unfinished_output_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::fresh(NiftiVersion::Nifti2, &[4, 5, 6], DType::F32, &AFFINE).unwrap();
    for name in ["a.nii", "b.nii.gz", "c.hdr", "d.img.gz"] {
        let mut output =
            OutputImage::create(dir.path().join(name), &header, &WriteOptions::default()).unwrap();
        output.data_mut().fill(7);
        drop(output);
    }
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn finished_outputs_leave_only_their_files() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.nii", "b.nii.gz", "c.hdr", "d.img.gz"] {
        write_i16(
            &dir.path().join(name),
            &[3, 4, 5],
            0,
            &WriteOptions::default(),
        );
    }
    assert_eq!(
        dir_entries(dir.path()),
        ["a.nii", "b.nii.gz", "c.hdr", "c.img", "d.hdr.gz", "d.img.gz"]
    );
    for name in [
        "a.nii", "b.nii.gz", "c.hdr", "c.img", "d.hdr.gz", "d.img.gz",
    ] {
        let image = NiftiImage::open(dir.path().join(name)).unwrap();
        let expected: Vec<f64> = (0..60).map(f64::from).collect();
        assert_eq!(values(&image), expected, "{name}");
    }
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.nii");
    write_i16(&input, &[2, 2, 2], 0, &WriteOptions::default());
    let pair = dir.path().join("pair.hdr");
    write_i16(&pair, &[2, 2, 2], 0, &WriteOptions::default());

    let refused = |output: &Path, inputs: &[&Path]| {
        let error = check_output_not_input(output, inputs).unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::OutputIsInput,
            "{}",
            output.display()
        );
        assert!(error.to_string().contains("in"), "{error}");
    };
    refused(&input, &[&input]);
    // The same file through another spelling, a hard link and a symlink.
    refused(&dir.path().join("./in.nii"), &[&input]);
    let hard = dir.path().join("hard.nii");
    std::fs::hard_link(&input, &hard).unwrap();
    refused(&hard, &[&input]);
    let soft = dir.path().join("soft.nii");
    std::os::unix::fs::symlink(&input, &soft).unwrap();
    refused(&soft, &[&input]);
    // Naming the .img of a pair input collides with its data file.
    refused(&dir.path().join("pair.img"), &[&input, &pair]);

    check_output_not_input(&dir.path().join("out.nii"), &[&input, &pair]).unwrap();
    check_output_not_input(&dir.path().join("in.nii.gz"), &[&input]).unwrap();
}

#[test]
fn a_forced_overwrite_never_changes_an_input_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.nii");
    write_i16(&path, &[4, 4, 4], 0, &WriteOptions::default());
    let before = NiftiImage::open(&path).unwrap();
    assert_eq!(before.data_source(), DataSource::MappedFile);
    let old_values = values(&before);

    // Overwrite while `before` still maps the old file.
    write_i16(&path, &[4, 4, 4], 1000, &WriteOptions::default());
    assert_eq!(
        values(&before),
        old_values,
        "the mapped input changed under the reader"
    );
    let after = NiftiImage::open(&path).unwrap();
    assert_eq!(values(&after)[0], 1000.0);
    assert_eq!(dir_entries(dir.path()), ["x.nii"]);
}

#[test]
fn data_past_the_memory_budget_spill_to_mapped_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.nii.gz");
    let write = WriteOptions {
        memory_budget: 0,
        gzip_block_size: 4096,
        ..WriteOptions::default()
    };
    write_i16(&path, &[40, 30, 20], 3, &write);
    let read = ReadOptions {
        memory_budget: 0,
        temp_dir: Some(dir.path().to_path_buf()),
        ..ReadOptions::default()
    };
    let image = NiftiImage::open_with(&path, &read).unwrap();
    assert_eq!(image.data_source(), DataSource::DecompressedToTempFile);
    let expected: Vec<f64> = (0..24_000)
        .map(|i| f64::from((i as i16).wrapping_add(3)))
        .collect();
    assert_eq!(values(&image), expected);
    let in_memory = NiftiImage::open(&path).unwrap();
    assert_eq!(in_memory.data_source(), DataSource::Decompressed);
    assert_eq!(values(&in_memory), expected);
}

#[test]
fn small_gzip_blocks_make_a_multi_member_file_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.nii.gz");
    let options = WriteOptions {
        gzip_block_size: 4096,
        compression_level: 6,
        ..WriteOptions::default()
    };
    write_i16(&path, &[64, 64, 8], -5, &options);
    let bytes = std::fs::read(&path).unwrap();
    let n_members = bytes.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
    assert!(n_members >= 16, "{n_members} gzip members");
    let image = NiftiImage::open(&path).unwrap();
    assert_eq!(values(&image)[..3], [-5.0, -4.0, -3.0]);
    assert_eq!(image.raw().n_voxels(), 64 * 64 * 8);
}

#[test]
fn nifti1_refuses_dims_that_only_nifti2_can_hold() {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::fresh(NiftiVersion::Nifti1, &[40_000, 1, 1], DType::U8, &AFFINE).unwrap();
    let error = OutputImage::create(dir.path().join("x.nii"), &header, &WriteOptions::default())
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::CannotWrite);
    assert!(error.to_string().contains("NIfTI-2"), "{error}");
    let header = Header::fresh(NiftiVersion::Nifti2, &[40_000, 1, 1], DType::U8, &AFFINE).unwrap();
    let mut output =
        OutputImage::create(dir.path().join("y.nii"), &header, &WriteOptions::default()).unwrap();
    output.data_mut()[39_999] = 9;
    output.finish().unwrap();
    let image = NiftiImage::open(dir.path().join("y.nii")).unwrap();
    assert_eq!(image.shape(), [40_000, 1, 1]);
    assert_eq!(image.raw().bytes[39_999], 9);
}

#[test]
fn cal_range_follows_numpy_min_max() {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::fresh(NiftiVersion::Nifti1, &[3, 1, 1], DType::F32, &AFFINE).unwrap();
    let mut output =
        OutputImage::create(dir.path().join("x.nii"), &header, &WriteOptions::default()).unwrap();
    for (chunk, value) in output
        .data_mut()
        .chunks_exact_mut(4)
        .zip([1.5f32, -2.0, 8.0])
    {
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    output.set_cal_range_from_data();
    assert_eq!(
        (output.header().cal_min, output.header().cal_max),
        (-2.0, 8.0)
    );
    output.data_mut()[4..8].copy_from_slice(&f32::NAN.to_ne_bytes());
    output.set_cal_range_from_data();
    assert!(output.header().cal_min.is_nan() && output.header().cal_max.is_nan());
}

#[test]
fn scaling_makes_float64_values_like_nibabel() {
    let mut header = Header::fresh(NiftiVersion::Nifti1, &[2, 1, 1], DType::I16, &AFFINE).unwrap();
    assert_eq!(header.scaling(), None);
    assert_eq!(header.effective_dtype(), Some(DType::I16));
    header.scl_slope = 0.0;
    header.scl_inter = 7.0;
    assert_eq!(
        header.scaling(),
        None,
        "slope 0: no scaling, intercept ignored"
    );
    header.scl_slope = f64::NAN;
    assert_eq!(header.scaling(), None, "slope NaN: no scaling");
    header.scl_slope = 1.0;
    let scaling = header.scaling().expect("inter 7 scales");
    assert_eq!(header.effective_dtype(), Some(DType::F64));
    assert_eq!(scaling.apply(-0.0).to_bits(), 7.0f64.to_bits());
    header.scl_slope = 2.0;
    header.scl_inter = 0.0;
    let scaling = header.scaling().unwrap();
    assert_eq!(
        scaling.apply(-0.0).to_bits(),
        (-0.0f64).to_bits(),
        "no + 0.0 when inter is 0, so -0 stays -0 as in nibabel"
    );
}

#[test]
fn a_zero_dimensional_result_is_written_as_nibabel_writes_it() {
    // nibabel writes np.array(5.0) as dim[0] = 0 followed by one element: 352 + 8 bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scalar.nii");
    let header = Header::fresh(NiftiVersion::Nifti1, &[], DType::F64, &AFFINE).unwrap();
    let mut output = OutputImage::create(&path, &header, &WriteOptions::default()).unwrap();
    output.data_mut().copy_from_slice(&5.0f64.to_ne_bytes());
    output.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 360);
    assert_eq!(i16::from_ne_bytes([bytes[40], bytes[41]]), 0);
    assert_eq!(bytes[352..], 5.0f64.to_ne_bytes());
    // It reads back as a 0-d image: shape (), one voxel.
    let image = NiftiImage::open(&path).unwrap();
    assert_eq!(image.shape(), Vec::<usize>::new());
    assert_eq!(image.to_f64_vec(), vec![5.0]);
}

#[test]
fn damage_to_a_file_voxcalc_wrote_is_still_reported() {
    // voxcalc's own .nii.gz files are inflated member by member in parallel; damage must give
    // the same kinds of error as the streaming path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.nii.gz");
    let options = WriteOptions {
        gzip_block_size: 4096,
        ..WriteOptions::default()
    };
    write_i16(&path, &[32, 32, 16], 0, &options);
    let good = std::fs::read(&path).unwrap();
    let damaged = dir.path().join("damaged.nii.gz");
    let open_damaged = |bytes: &[u8]| {
        std::fs::write(&damaged, bytes).unwrap();
        NiftiImage::open(&damaged).err().map(|e| e.kind())
    };
    let mut flipped = good.clone();
    let middle = good.len() / 2;
    flipped[middle] ^= 0x55;
    assert_eq!(open_damaged(&flipped), Some(ErrorKind::Gzip));
    assert_eq!(
        open_damaged(&good[..good.len() - 100]),
        Some(ErrorKind::Truncated)
    );
    let mut bad_crc = good.clone();
    let last = good.len() - 8;
    bad_crc[last] ^= 1;
    assert_eq!(open_damaged(&bad_crc), Some(ErrorKind::Gzip));
    assert_eq!(open_damaged(&good), None);
}

#[test]
fn images_can_be_shared_across_threads() {
    // The runtime reads one opened image from many worker threads and fills an output from
    // several; these bounds are part of the API.
    fn shared<T: Send + Sync>() {}
    fn sent<T: Send>() {}
    shared::<NiftiImage>();
    shared::<Header>();
    sent::<OutputImage>();
}
