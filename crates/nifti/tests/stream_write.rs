//! Streamed output ([`OutputStream`]): any chunking gives the same files, byte for byte, as
//! [`OutputImage`] writes for the same header and data; a wrong data length is an error; an
//! unfinished stream leaves nothing behind. (nibabel reading streamed files is checked in
//! tests/nibabel_reads_ours.rs.)

use std::path::Path;

use proptest::prelude::*;
use voxcalc_nifti::{
    ErrorKind, Header, NiftiImage, NiftiVersion, OutputImage, OutputStream, WriteOptions,
};
use voxcalc_types::DType;

const AFFINE: [[f64; 4]; 4] = [
    [2.0, 0.0, 0.0, -90.0],
    [0.0, 2.0, 0.0, -126.0],
    [0.0, 0.0, 2.0, -72.0],
    [0.0, 0.0, 0.0, 1.0],
];

const LAYOUTS: [&str; 6] = ["nii", "nii.gz", "hdr", "hdr.gz", "img.gz", "img"];

/// Small gzip blocks, so a few kilobytes of data make several members and several batches for
/// the compression thread.
fn small_blocks() -> WriteOptions {
    WriteOptions {
        gzip_block_size: 4096,
        ..WriteOptions::default()
    }
}

/// Pseudo-random but compressible data (a sawtooth with noise).
fn data_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (i % 251) as u8 ^ (state as u8 & 3)
        })
        .collect()
}

fn header(shape: &[usize], dtype: DType) -> Header {
    Header::fresh(NiftiVersion::Nifti1, shape, dtype, &AFFINE).unwrap()
}

/// The files of the image named `name` in `dir`, in a fixed order, with their bytes.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Streams `data` in pieces of the given sizes (cycled), sets the cal range after the data, and
/// finishes.
fn stream(
    path: &Path,
    header: &Header,
    data: &[u8],
    piece_sizes: &[usize],
    options: &WriteOptions,
) {
    let mut output = OutputStream::create(path, header, options).unwrap();
    let mut rest = data;
    for size in piece_sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let take = (*size).min(rest.len());
        output.write_data(&rest[..take]).unwrap();
        rest = &rest[take..];
    }
    output.header_mut().cal_min = -1.5;
    output.header_mut().cal_max = 250.0;
    output.finish().unwrap();
}

fn image(path: &Path, header: &Header, data: &[u8], options: &WriteOptions) {
    let mut output = OutputImage::create(path, header, options).unwrap();
    output.data_mut().copy_from_slice(data);
    output.header_mut().cal_min = -1.5;
    output.header_mut().cal_max = 250.0;
    output.finish().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_chunking_writes_the_files_output_image_writes(
        pieces in prop::collection::vec(1usize..9000, 1..6),
        layout_idx in 0..LAYOUTS.len(),
        n_slices in 1usize..40,
    ) {
        let layout = LAYOUTS[layout_idx];
        let shape = [16, 16, n_slices];
        let header = header(&shape, DType::I16);
        let data = data_bytes(16 * 16 * n_slices * 2, n_slices as u64);
        let options = small_blocks();
        let streamed = tempfile::tempdir().unwrap();
        let whole = tempfile::tempdir().unwrap();
        stream(&streamed.path().join(format!("x.{layout}")), &header, &data, &pieces, &options);
        image(&whole.path().join(format!("x.{layout}")), &header, &data, &options);
        let streamed_files = files_of(streamed.path());
        prop_assert_eq!(streamed_files.len(), if layout.starts_with("nii") { 1 } else { 2 });
        prop_assert!(streamed_files == files_of(whole.path()), "{} differs", layout);

        let reread = NiftiImage::open(streamed.path().join(format!("x.{layout}"))).unwrap();
        prop_assert_eq!(reread.shape(), shape.to_vec());
        prop_assert_eq!(reread.raw().bytes, &data[..]);
        prop_assert_eq!(reread.header().cal_min, -1.5);
        prop_assert_eq!(reread.header().cal_max, 250.0);
    }
}

#[test]
fn a_header_member_larger_than_one_stored_block_reads_back() {
    // Extensions past 64 KiB make the reserved header member span several stored blocks.
    let dir = tempfile::tempdir().unwrap();
    let mut header = header(&[8, 8, 8], DType::F32);
    // 149_992 + 8 bytes of esize and code is a multiple of 16: no padding is added.
    let content = data_bytes(149_992, 9);
    header.extensions.push(voxcalc_nifti::Extension {
        code: 6,
        content: content.clone(),
    });
    let data = data_bytes(8 * 8 * 8 * 4, 3);
    let path = dir.path().join("big_ext.nii.gz");
    stream(&path, &header, &data, &[100], &small_blocks());
    let reread = NiftiImage::open(&path).unwrap();
    assert_eq!(reread.raw().bytes, &data[..]);
    assert_eq!(reread.header().extensions[0].content, content);
}

#[test]
fn too_little_or_too_much_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let header = header(&[10, 10, 10], DType::I16);
    for layout in LAYOUTS {
        let path = dir.path().join(format!("short.{layout}"));
        let mut output = OutputStream::create(&path, &header, &small_blocks()).unwrap();
        output.write_data(&[0u8; 1999]).unwrap();
        let err = output.finish().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CannotWrite, "{layout}");
        assert!(err.to_string().contains("1999"), "{err}");

        let path = dir.path().join(format!("long.{layout}"));
        let mut output = OutputStream::create(&path, &header, &small_blocks()).unwrap();
        output.write_data(&[0u8; 1500]).unwrap();
        let err = output.write_data(&[0u8; 501]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CannotWrite, "{layout}");
        assert!(output.finish().is_err(), "{layout}");
    }
    assert_eq!(files_of(dir.path()), Vec::new());
}

#[test]
fn changing_the_layout_after_create_fails_finish() {
    let dir = tempfile::tempdir().unwrap();
    let header = header(&[4, 4, 4], DType::I16);
    let path = dir.path().join("x.nii.gz");
    let mut output = OutputStream::create(&path, &header, &small_blocks()).unwrap();
    output.write_data(&[0u8; 128]).unwrap();
    output.header_mut().set_dtype(DType::F32).unwrap();
    assert_eq!(output.finish().unwrap_err().kind(), ErrorKind::CannotWrite);
    assert_eq!(files_of(dir.path()), Vec::new());
}

#[test]
fn dropping_an_unfinished_stream_leaves_targets_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let header = header(&[64, 64, 16], DType::I16);
    let data = data_bytes(64 * 64 * 16 * 2, 5);
    for layout in LAYOUTS {
        // An existing image at the target stays as it was.
        let path = dir.path().join(format!("keep.{layout}"));
        image(&path, &header, &data, &small_blocks());
        let before = files_of(dir.path());
        let mut output = OutputStream::create(&path, &header, &small_blocks()).unwrap();
        // Enough to have batches queued and being compressed when the stream is dropped.
        output.write_data(&data[..data.len() - 10]).unwrap();
        drop(output);
        assert!(files_of(dir.path()) == before, "{layout}");
        for (name, _) in files_of(dir.path()) {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
    }
}

#[test]
fn zero_dimensional_outputs_stream_their_one_voxel() {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::fresh(NiftiVersion::Nifti2, &[], DType::F64, &AFFINE).unwrap();
    for layout in LAYOUTS {
        let path = dir.path().join(format!("scalar.{layout}"));
        let mut output = OutputStream::create(&path, &header, &small_blocks()).unwrap();
        output.write_data(&2.5f64.to_ne_bytes()).unwrap();
        output.finish().unwrap();
        let image = NiftiImage::open(&path).unwrap();
        assert_eq!(image.shape(), Vec::<usize>::new(), "{layout}");
        assert_eq!(image.to_f64_vec(), vec![2.5], "{layout}");
    }
}

#[test]
fn a_stream_can_move_to_another_thread() {
    fn sent<T: Send>() {}
    sent::<OutputStream>();
    let dir = tempfile::tempdir().unwrap();
    let header = header(&[8, 8, 8], DType::U8);
    let path = dir.path().join("moved.nii.gz");
    let mut output = OutputStream::create(&path, &header, &small_blocks()).unwrap();
    output.write_data(&[3u8; 256]).unwrap();
    std::thread::spawn(move || {
        output.write_data(&[3u8; 256]).unwrap();
        output.finish().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(
        NiftiImage::open(&path).unwrap().raw().bytes,
        &[3u8; 512][..]
    );
}

#[test]
fn streams_written_from_every_rayon_thread_at_once_finish() {
    // Each pool thread blocks in `write_data` while its stream's compression runs: that work
    // must not need a thread of the same pool.
    use rayon::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let header = header(&[64, 64, 32], DType::I16);
    let data = data_bytes(64 * 64 * 32 * 2, 11);
    let n_streams = rayon::current_num_threads() * 2;
    (0..n_streams).into_par_iter().for_each(|stream_idx| {
        let path = dir.path().join(format!("s{stream_idx}.nii.gz"));
        stream(&path, &header, &data, &[4096], &small_blocks());
    });
    for stream_idx in 0..n_streams {
        let path = dir.path().join(format!("s{stream_idx}.nii.gz"));
        assert_eq!(NiftiImage::open(&path).unwrap().raw().bytes, &data[..]);
    }
}
