//! Writes images with voxcalc (every dtype, NIfTI-1 and NIfTI-2, `.nii`/`.nii.gz`/`.hdr`+`.img`,
//! fresh and copied headers, whole-buffer [`OutputImage`] and chunked [`OutputStream`] with the
//! cal range set after the data), reads each back with voxcalc, then runs a Python checker
//! (tests/check_written.py, nibabel) that compares values, datatype, affine and header fields to
//! the image nibabel/nilearn would have written from the same data. Any mismatch fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use voxcalc_nifti::{
    native_range, Affine, Header, NiftiImage, NiftiVersion, OutputImage, OutputStream, WriteOptions,
};
use voxcalc_types::DType;

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn python() -> PathBuf {
    std::env::var_os("VOXCALC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

fn fixture(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target/goldens/nifti_fixtures/files")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `.venv/bin/python scripts/gen/nifti_fixtures.py` from the repository \
         root (bash scripts/test does)",
        path.display()
    );
    path
}

/// Deterministic test values for a dtype, extremes and (for floats) NaN, infinities, -0 and
/// subnormals included, as native-endian bytes.
fn values(dtype: DType, n_voxels: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(n_voxels * dtype.size());
    for voxel_idx in 0..n_voxels {
        let r = next();
        macro_rules! int {
            ($t:ty) => {{
                let v: $t = match voxel_idx {
                    0 => <$t>::MIN,
                    1 => <$t>::MAX,
                    2 => 0,
                    _ => r as $t,
                };
                out.extend_from_slice(&v.to_ne_bytes());
            }};
        }
        macro_rules! float {
            ($t:ty) => {{
                let v: $t = match voxel_idx {
                    0 => <$t>::NAN,
                    1 => <$t>::INFINITY,
                    2 => -0.0,
                    3 => <$t>::MIN_POSITIVE / 4.0,
                    4 => <$t>::MAX,
                    _ => ((r % 2_000_001) as $t - 1_000_000.0) / 7.0,
                };
                out.extend_from_slice(&v.to_ne_bytes());
            }};
        }
        match dtype {
            DType::U8 => int!(u8),
            DType::I8 => int!(i8),
            DType::U16 => int!(u16),
            DType::I16 => int!(i16),
            DType::U32 => int!(u32),
            DType::I32 => int!(i32),
            DType::U64 => int!(u64),
            DType::I64 => int!(i64),
            DType::F32 => float!(f32),
            DType::F64 => float!(f64),
            other => panic!("not a storage dtype: {other}"),
        }
    }
    out
}

/// Native-endian bytes to little-endian (the checker's data files are little-endian).
fn to_le(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if cfg!(target_endian = "big") {
        for chunk in out.chunks_exact_mut(size) {
            chunk.reverse();
        }
    }
    out
}

fn fresh_affine(variant: usize) -> Affine {
    let (s, c) = (0.3f64 * variant as f64).sin_cos();
    let mut affine = [
        [-2.0 * c, 2.5 * s, 0.0, 90.25],
        [2.0 * s, 2.5 * c, 0.0, -126.5],
        [0.0, 0.0, 3.0, -72.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    if variant % 3 == 2 {
        affine[0][2] = 0.4; // a shear: the qform strips it, the sform keeps it
    }
    affine
}

/// Which writer produces a case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// [`OutputImage`]: the whole buffer filled, then finished.
    Image,
    /// [`OutputStream`]: the data in uneven chunks, the cal range set after the data.
    Stream,
}

struct Case {
    file: PathBuf,
    entry: Value,
}

fn write_case(
    dir: &Path,
    version: NiftiVersion,
    dtype: DType,
    extension: &str,
    copied_from: Option<&Path>,
    variant: usize,
    writer: Writer,
) -> Case {
    let version_tag = match version {
        NiftiVersion::Nifti1 => 1,
        NiftiVersion::Nifti2 => 2,
    };
    let policy = if copied_from.is_some() {
        "copied"
    } else {
        "fresh"
    };
    let writer_tag = match writer {
        Writer::Image => "image",
        Writer::Stream => "stream",
    };
    let stem = format!(
        "out_n{version_tag}_{dtype}_{policy}_{writer_tag}_{}",
        extension.replace('.', "")
    );
    let file = dir.join(format!("{stem}.{extension}"));
    let (header, source_affine) = match copied_from {
        None => {
            let shape = if variant.is_multiple_of(2) {
                vec![4, 3, 5]
            } else {
                vec![3, 4, 2, 3]
            };
            let header = Header::fresh(version, &shape, dtype, &fresh_affine(variant)).unwrap();
            (header, None)
        }
        Some(source) => {
            let source = NiftiImage::open(source).unwrap();
            assert_eq!(source.header().version, version);
            let header =
                Header::copied_for_output(source.header(), &source.shape(), dtype, (0.0, 0.0))
                    .unwrap();
            (header, Some(*source.affine()))
        }
    };
    let shape = header.shape();
    let n_voxels: usize = shape.iter().product();
    let data = values(dtype, n_voxels, variant as u64 + 1);
    match writer {
        Writer::Image => {
            let mut output = OutputImage::create(&file, &header, &WriteOptions::default()).unwrap();
            output.data_mut().copy_from_slice(&data);
            if copied_from.is_some() {
                output.set_cal_range_from_data();
            }
            output.finish().unwrap();
        }
        Writer::Stream => {
            // Small gzip members, so even these tiny images are several members.
            let options = WriteOptions {
                gzip_block_size: 4096,
                ..WriteOptions::default()
            };
            let mut output = OutputStream::create(&file, &header, &options).unwrap();
            let mut rest = &data[..];
            for piece in [1usize, 7, 64, 5].iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let take = (*piece).min(rest.len());
                output.write_data(&rest[..take]).unwrap();
                rest = &rest[take..];
            }
            if copied_from.is_some() {
                let (min, max) = native_range(&data, dtype);
                output.header_mut().cal_min = min;
                output.header_mut().cal_max = max;
            }
            output.finish().unwrap();
        }
    }

    // voxcalc reads back exactly what it wrote.
    let reread = NiftiImage::open(&file).unwrap();
    assert_eq!(reread.shape(), shape, "{stem}");
    assert_eq!(reread.dtype(), dtype, "{stem}");
    assert!(reread.scaling().is_none(), "{stem}");
    assert_eq!(reread.raw().bytes, &data[..], "{stem}");
    if let Some(affine) = source_affine {
        assert_eq!(reread.affine(), &affine, "{stem}");
    }
    assert_eq!(reread.header().extensions, header.extensions, "{stem}");

    let data_file = dir.join(format!("{stem}.expected.bin"));
    std::fs::write(&data_file, to_le(&data, dtype.size())).unwrap();
    let affine_bits: Vec<u64> = fresh_affine(variant)
        .iter()
        .flatten()
        .map(|v| v.to_bits())
        .collect();
    let entry = json!({
        "file": file,
        "policy": policy,
        "version": version_tag,
        "dtype": dtype.name(),
        "shape": shape,
        "data": data_file,
        "affine_bits": affine_bits,
        "source": copied_from,
    });
    Case { file, entry }
}

#[test]
fn nibabel_reads_every_file_voxcalc_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut variant = 0;
    for version in [NiftiVersion::Nifti1, NiftiVersion::Nifti2] {
        let tag = if version == NiftiVersion::Nifti1 {
            1
        } else {
            2
        };
        let sources = [
            fixture(&format!("n{tag}_nii_int16_le_plain.nii")),
            fixture(&format!("n{tag}_nii_int8_le_plain.nii")),
            fixture(&format!("n{tag}_nii_uint8_be_plain.nii")),
        ];
        for dtype in DType::STORAGE {
            for extension in ["nii", "nii.gz", "hdr", "img.gz"] {
                for writer in [Writer::Image, Writer::Stream] {
                    variant += 1;
                    cases.push(write_case(
                        dir.path(),
                        version,
                        dtype,
                        extension,
                        None,
                        variant,
                        writer,
                    ));
                    let source = &sources[variant % sources.len()];
                    cases.push(write_case(
                        dir.path(),
                        version,
                        dtype,
                        extension,
                        Some(source),
                        variant,
                        writer,
                    ));
                }
            }
        }
    }
    assert_eq!(cases.len(), 2 * 10 * 4 * 2 * 2);
    for case in &cases {
        assert!(
            case.file.exists(),
            "{} was not written",
            case.file.display()
        );
    }
    let manifest = dir.path().join("manifest.json");
    let entries: Vec<&Value> = cases.iter().map(|c| &c.entry).collect();
    std::fs::write(&manifest, serde_json::to_string_pretty(&entries).unwrap()).unwrap();

    let checker = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/check_written.py"
    ));
    let output = Command::new(python())
        .arg(&checker)
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (set VOXCALC_PYTHON or create .venv): {e}",
                python().display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nibabel disagrees with voxcalc's output:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("{} files match", cases.len())),
        "checker did not check every file:\n{stdout}"
    );
}
