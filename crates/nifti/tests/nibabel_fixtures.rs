//! Reads every fixture written by nibabel (scripts/gen/nifti_fixtures.py) and compares values,
//! dtype, shape, affine, scaling and header fields with what nibabel itself read back. NIfTI-1
//! headers are also cross-checked against the independent `nifti` crate.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use voxcalc_nifti::{ByteOrder, NiftiImage, NiftiVersion};
use voxcalc_types::DType;

fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/goldens/nifti_fixtures"
    ));
    assert!(
        dir.join("manifest.json").exists(),
        "{} is missing: run `.venv/bin/python scripts/gen/nifti_fixtures.py` from the repository \
         root (bash scripts/test does)",
        dir.display()
    );
    dir
}

fn f64_of(value: &Value) -> f64 {
    f64::from_bits(value.as_u64().expect("float bits as u64"))
}

/// True when two floats are the same value (NaN equals NaN; +0 and -0 differ).
fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn strip_nuls(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The expected dataobj values, decoded from the little-endian .bin file.
enum Expected {
    Ints(Vec<i128>),
    Floats(Vec<f64>),
}

fn read_expected(path: &Path, dtype: DType) -> Expected {
    let bytes = std::fs::read(path).expect("expected values file");
    let size = dtype.size();
    let chunks = bytes.chunks_exact(size);
    macro_rules! ints {
        ($t:ty) => {
            Expected::Ints(
                chunks
                    .map(|c| i128::from(<$t>::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
            )
        };
    }
    match dtype {
        DType::U8 => ints!(u8),
        DType::I8 => ints!(i8),
        DType::U16 => ints!(u16),
        DType::I16 => ints!(i16),
        DType::U32 => ints!(u32),
        DType::I32 => ints!(i32),
        DType::U64 => ints!(u64),
        DType::I64 => ints!(i64),
        DType::F32 => Expected::Floats(
            chunks
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                .collect(),
        ),
        DType::F64 => Expected::Floats(
            chunks
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        other => panic!("unexpected dataobj dtype {other}"),
    }
}

/// The header block as stored (decompressed when gzipped), for the `nifti` crate cross-check.
fn header_bytes(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).expect("fixture file");
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        raw
    }
}

fn check_case(dir: &Path, case: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let name = case["name"].as_str().unwrap();
    let path = dir.join(case["file"].as_str().unwrap());
    let image = match NiftiImage::open(&path) {
        Ok(image) => image,
        Err(e) => return vec![format!("{name}: open failed: {e}")],
    };
    let header = image.header();
    let mut fail = |what: String| problems.push(format!("{name}: {what}"));

    let version = match case["version"].as_u64() {
        Some(1) => NiftiVersion::Nifti1,
        _ => NiftiVersion::Nifti2,
    };
    if header.version != version {
        fail(format!("version {:?}", header.version));
    }
    let order = if case["endian"] == "big" {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
    if header.byte_order != order {
        fail(format!("byte order {:?}", header.byte_order));
    }
    let shape: Vec<usize> = case["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    if image.shape() != shape {
        fail(format!("shape {:?} != {shape:?}", image.shape()));
    }
    let storage = DType::from_name(case["storage_dtype"].as_str().unwrap()).unwrap();
    if image.dtype() != storage {
        fail(format!("storage dtype {} != {storage}", image.dtype()));
    }
    let dataobj = DType::from_name(case["dataobj_dtype"].as_str().unwrap()).unwrap();
    if image.effective_dtype() != dataobj {
        fail(format!(
            "effective dtype {} != {dataobj}",
            image.effective_dtype()
        ));
    }
    let (slope, inter) = image.scaling().map_or((1.0, 0.0), |s| (s.slope, s.inter));
    if !same_float(slope, f64_of(&case["slope_bits"]))
        || !same_float(inter, f64_of(&case["inter_bits"]))
    {
        fail(format!("scaling ({slope}, {inter})"));
    }

    // Values: exact integers for unscaled integer data, bit-exact floats otherwise.
    let expected = read_expected(&dir.join(format!("expected/{name}.bin")), dataobj);
    let raw = image.raw();
    match expected {
        Expected::Ints(values) => {
            if values.len() != raw.n_voxels() {
                fail(format!(
                    "{} values, expected {}",
                    raw.n_voxels(),
                    values.len()
                ));
            } else if let Some(idx) =
                (0..values.len()).find(|&i| raw.value_i128(i) != Some(values[i]))
            {
                fail(format!(
                    "value {idx}: {:?} != {}",
                    raw.value_i128(idx),
                    values[idx]
                ));
            }
        }
        Expected::Floats(values) => {
            let ours = image.to_f64_vec();
            if values.len() != ours.len() {
                fail(format!("{} values, expected {}", ours.len(), values.len()));
            } else if let Some(idx) = (0..values.len()).find(|&i| !same_float(ours[i], values[i])) {
                fail(format!("value {idx}: {} != {}", ours[idx], values[idx]));
            }
        }
    }

    // Affine: bit-exact, the qform included (nibabel decodes it in 80-bit long double, voxcalc
    // in double-double).
    let affine_bits = case["affine_bits"].as_array().unwrap();
    for row in 0..4 {
        for col in 0..4 {
            let expected = f64_of(&affine_bits[4 * row + col]);
            let ours = image.affine()[row][col];
            if !same_float(ours, expected) {
                fail(format!("affine[{row}][{col}] {ours} != {expected}"));
            }
        }
    }

    // Header fields.
    let ints = [
        ("sform_code", i64::from(header.sform_code)),
        ("qform_code", i64::from(header.qform_code)),
        ("xyzt_units", i64::from(header.xyzt_units)),
        ("intent_code", i64::from(header.intent_code)),
        ("dim_info", i64::from(header.dim_info)),
    ];
    for (field, ours) in ints {
        if case[field].as_i64() != Some(ours) {
            fail(format!("{field} {ours} != {}", case[field]));
        }
    }
    let floats = [
        ("cal_min_bits", header.cal_min),
        ("cal_max_bits", header.cal_max),
        ("slice_duration_bits", header.slice_duration),
        ("toffset_bits", header.toffset),
    ];
    for (field, ours) in floats {
        if !same_float(ours, f64_of(&case[field])) {
            fail(format!("{field} {ours} != {}", f64_of(&case[field])));
        }
    }
    for (i, bits) in case["pixdim_bits"].as_array().unwrap().iter().enumerate() {
        if !same_float(header.pixdim[i], f64_of(bits)) {
            fail(format!(
                "pixdim[{i}] {} != {}",
                header.pixdim[i],
                f64_of(bits)
            ));
        }
    }
    let zooms: Vec<f64> = case["zooms_bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(f64_of)
        .collect();
    if header.zooms() != zooms {
        fail(format!("zooms {:?} != {zooms:?}", header.zooms()));
    }
    if shape.len() >= 4 && header.tr() != Some(zooms[3]) {
        fail(format!("TR {:?}", header.tr()));
    }
    if header.descrip() != case["descrip"].as_str().unwrap() {
        fail(format!("descrip {:?}", header.descrip()));
    }
    if header.intent_name() != case["intent_name"].as_str().unwrap() {
        fail(format!("intent_name {:?}", header.intent_name()));
    }
    let extensions = case["extensions"].as_array().unwrap();
    let ours: Vec<(i64, String)> = header
        .extensions
        .iter()
        .map(|e| (i64::from(e.code), hex(strip_nuls(&e.content))))
        .collect();
    let theirs: Vec<(i64, String)> = extensions
        .iter()
        .map(|e| {
            (
                e["code"].as_i64().unwrap(),
                e["content_hex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    if ours != theirs {
        fail(format!("extensions {ours:?} != {theirs:?}"));
    }

    // Independent cross-check of NIfTI-1 header parsing with the `nifti` crate, which detects
    // the byte order from `dim[0]` in 1..=7 and so cannot read a big-endian 0-d header.
    let big_endian_0d = header.dim[0] == 0 && header.byte_order == ByteOrder::Big;
    if version == NiftiVersion::Nifti1 && !big_endian_0d {
        let bytes = header_bytes(&path);
        match nifti::NiftiHeader::from_reader(&bytes[..]) {
            Ok(theirs) => {
                let dims: Vec<i64> = theirs.dim.iter().map(|&d| i64::from(d)).collect();
                if dims != header.dim.to_vec() {
                    fail(format!("nifti crate dim {dims:?} != {:?}", header.dim));
                }
                if theirs.datatype != header.datatype || theirs.bitpix != header.bitpix {
                    fail("nifti crate datatype/bitpix differ".to_string());
                }
                let pairs = [
                    (theirs.srow_x[3], header.srow[0][3]),
                    (theirs.srow_y[1], header.srow[1][1]),
                    (theirs.srow_z[2], header.srow[2][2]),
                    (theirs.quatern_b, header.quatern[0]),
                    (theirs.quatern_c, header.quatern[1]),
                    (theirs.quatern_d, header.quatern[2]),
                    (theirs.quatern_x, header.qoffset[0]),
                    (theirs.scl_slope, header.scl_slope),
                    (theirs.scl_inter, header.scl_inter),
                    (theirs.cal_max, header.cal_max),
                    (theirs.pixdim[1], header.pixdim[1]),
                    (theirs.pixdim[4], header.pixdim[4]),
                ];
                for (i, (a, b)) in pairs.into_iter().enumerate() {
                    if !same_float(f64::from(a), b) {
                        fail(format!("nifti crate field #{i}: {a} != {b}"));
                    }
                }
                if i32::from(theirs.sform_code) != header.sform_code
                    || i32::from(theirs.qform_code) != header.qform_code
                    || theirs.vox_offset as u64 != header.vox_offset
                {
                    fail("nifti crate codes or vox_offset differ".to_string());
                }
            }
            Err(e) => fail(format!("nifti crate cannot parse the header: {e}")),
        }
    }
    problems
}

#[test]
fn every_nibabel_fixture_reads_as_nibabel_reads_it() {
    let dir = fixtures_dir();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 240, "only {} fixtures", cases.len());
    let problems: Vec<String> = cases
        .iter()
        .flat_map(|case| check_case(&dir, case))
        .collect();
    assert!(
        problems.is_empty(),
        "{} problems in {} fixtures:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}
