//! Differential test against nilearn 0.14: `nilearn_cases.py` writes fixtures, signals and what
//! nilearn's `signals_to_img_labels` / `img_to_signals_labels` return (or raise) for every case;
//! this test runs the same cases through voxcalc-regions (in memory and through the streamed
//! `.nii` / `.nii.gz` writer) and compares. It also checks that numpy reads the `.npy` files we
//! write. Python is `$VOXCALC_PYTHON`, else the repository's `.venv/bin/python`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use voxcalc_nifti::{NiftiImage, WriteOptions};
use voxcalc_regions::{
    img_to_signals_labels, parse_npy, read_signals, signals_to_img_labels, to_npy_bytes, LabelMap,
    Order, RegionErrorKind, Signals, Values,
};

fn python() -> PathBuf {
    match std::env::var_os("VOXCALC_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
    }
}

fn run_python(args: &[&str]) -> String {
    let python = python();
    let output = Command::new(&python)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): set VOXCALC_PYTHON to a Python with nilearn 0.14.1 \
                 (bash scripts/test sets up .venv)",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn read_npy(path: &Path) -> Signals {
    let bytes = std::fs::read(path).unwrap();
    parse_npy(&bytes, path).unwrap()
}

fn flat_f64(signals: &Signals) -> Vec<f64> {
    (0..signals.values().len())
        .map(|i| signals.values().get_f64(i))
        .collect()
}

/// Bit-exact equality, NaN equal to NaN.
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn expected_kinds(nilearn_error: &str) -> &'static [RegionErrorKind] {
    match nilearn_error {
        "DimensionError" => &[RegionErrorKind::Dimension],
        "IndexError" => &[RegionErrorKind::ColumnCount],
        "ValueError" => &[RegionErrorKind::Geometry, RegionErrorKind::NoLabelLeft],
        _ => &[],
    }
}

struct Case<'a> {
    fields: HashMap<&'a str, &'a str>,
    dir: &'a Path,
}

impl Case<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).copied()
    }
    fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(|name| self.dir.join(name))
    }
    fn background(&self) -> f64 {
        self.get("background").map_or(0.0, |b| b.parse().unwrap())
    }
    fn open(&self, key: &str) -> Option<NiftiImage> {
        self.path(key).map(|p| NiftiImage::open(p).unwrap())
    }
}

fn check_s2i(case: &Case, failures: &mut Vec<String>) {
    let id = case.get("id").unwrap();
    let signals = read_signals(case.path("signals").unwrap()).unwrap().signals;
    let labels = case.open("labels").unwrap();
    let mask = case.open("mask");
    let order = if case.get("order") == Some("C") {
        Order::C
    } else {
        Order::F
    };
    let res = signals_to_img_labels(&signals, &labels, mask.as_ref(), case.background(), order);
    if let Some(err_class) = case.get("error") {
        match res {
            Ok(_) => failures.push(format!("{id}: nilearn raises {err_class}, voxcalc accepts")),
            Err(err) if !expected_kinds(err_class).contains(&err.kind()) => failures.push(format!(
                "{id}: nilearn raises {err_class}, voxcalc fails with {:?}: {err}",
                err.kind()
            )),
            Err(_) => {}
        }
        return;
    }
    let image = match res {
        Ok(image) => image,
        Err(err) => {
            failures.push(format!("{id}: nilearn accepts, voxcalc fails: {err}"));
            return;
        }
    };
    let shape: Vec<usize> = case
        .get("shape")
        .unwrap()
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let expected = flat_f64(&read_npy(&case.path("expected").unwrap()));
    let dtype = case.get("dtype").unwrap();
    if image.shape() != shape.as_slice() {
        failures.push(format!(
            "{id}: shape {:?}, nilearn {shape:?}",
            image.shape()
        ));
        return;
    }
    if image.dtype().name() != dtype {
        failures.push(format!("{id}: dtype {}, nilearn {dtype}", image.dtype()));
    }
    let affine = flat_f64(&read_npy(&case.path("affine").unwrap()));
    let ours = image.affine();
    for (idx, (a, b)) in ours.iter().flatten().zip(&affine).enumerate() {
        if (a - b).abs() > 1e-6 * b.abs().max(1.0) {
            failures.push(format!("{id}: affine[{idx}] {a}, nilearn {b}"));
        }
    }
    let [nx, ny, nz] = [shape[0], shape[1], shape[2]];
    let n_times = shape.get(3).copied().unwrap_or(1);
    let mut n_bad = 0;
    for t in 0..n_times {
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let f = i + nx * (j + ny * (k + nz * t));
                    if !same(image.get_f64([i, j, k], t), expected[f]) {
                        n_bad += 1;
                    }
                }
            }
        }
    }
    if n_bad > 0 {
        failures.push(format!(
            "{id}: {n_bad} in-memory values differ from nilearn's"
        ));
    }
    // The same through the files: streamed .nii and .nii.gz, and the in-memory image saved.
    let out_dir = case.dir.join("ours");
    std::fs::create_dir_all(&out_dir).unwrap();
    let map = LabelMap::build(&labels, mask.as_ref(), case.background()).unwrap();
    for name in ["stream.nii", "stream.nii.gz", "saved.nii", "pair.hdr"] {
        let path = out_dir.join(format!("{id}_{name}"));
        if name.starts_with("saved") {
            image.save(&path, &WriteOptions::default()).unwrap();
        } else {
            map.write_signals_img(&signals, &path, &WriteOptions::default())
                .unwrap();
        }
        let written = NiftiImage::open(&path).unwrap();
        if written.shape() != shape || written.dtype().name() != dtype {
            failures.push(format!(
                "{id}: {name} has shape {:?} dtype {}, nilearn {shape:?} {dtype}",
                written.shape(),
                written.dtype()
            ));
            continue;
        }
        if written.scaling().is_some() {
            failures.push(format!("{id}: {name} is scaled"));
        }
        let values = written.to_f64_vec();
        let n_bad = values
            .iter()
            .zip(&expected)
            .filter(|(a, b)| !same(**a, **b))
            .count();
        if n_bad > 0 {
            failures.push(format!(
                "{id}: {name}: {n_bad} values differ from nilearn's"
            ));
        }
    }
}

fn check_i2s(case: &Case, failures: &mut Vec<String>) {
    let id = case.get("id").unwrap();
    let img = case.open("img").unwrap();
    let labels = case.open("labels").unwrap();
    let mask = case.open("mask");
    let res = img_to_signals_labels(&img, &labels, mask.as_ref(), case.background());
    if let Some(err_class) = case.get("error") {
        match res {
            Ok(_) => failures.push(format!("{id}: nilearn raises {err_class}, voxcalc accepts")),
            Err(err) if !expected_kinds(err_class).contains(&err.kind()) => failures.push(format!(
                "{id}: nilearn raises {err_class}, voxcalc fails with {:?}: {err}",
                err.kind()
            )),
            Err(_) => {}
        }
        return;
    }
    let res = match res {
        Ok(res) => res,
        Err(err) => {
            failures.push(format!("{id}: nilearn accepts, voxcalc fails: {err}"));
            return;
        }
    };
    let expected = read_npy(&case.path("expected").unwrap());
    let labels_out: Vec<f64> = case
        .get("labels_out")
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(|v| v.parse().unwrap()).collect())
        .unwrap_or_default();
    if res.labels != labels_out {
        failures.push(format!(
            "{id}: labels {:?}, nilearn {labels_out:?}",
            res.labels
        ));
    }
    if res.signals.dtype().name() != case.get("dtype").unwrap() {
        failures.push(format!(
            "{id}: signals dtype {}, nilearn {}",
            res.signals.dtype(),
            case.get("dtype").unwrap()
        ));
    }
    if res.signals.shape() != expected.shape() {
        failures.push(format!(
            "{id}: signals shape {:?}, nilearn {:?}",
            res.signals.shape(),
            expected.shape()
        ));
        return;
    }
    let single = matches!(expected.values(), Values::F32(_));
    for t in 0..expected.n_times() {
        for r in 0..expected.n_regions() {
            let (a, b) = (res.signals.get_f64(t, r), expected.get_f64(t, r));
            let ok = if single {
                let (a, b) = (a as f32, b as f32);
                (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 2
            } else {
                (a - b).abs() <= 1e-12 + 1e-12 * b.abs()
            };
            if !ok {
                failures.push(format!("{id}: signal ({t}, {r}) {a}, nilearn {b}"));
            }
        }
    }
}

#[test]
fn matches_nilearn() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nilearn_cases.py");
    run_python(&[script.to_str().unwrap(), dir.path().to_str().unwrap()]);
    let manifest = std::fs::read_to_string(dir.path().join("manifest.tsv")).unwrap();
    let mut failures = Vec::new();
    let (mut n_s2i, mut n_i2s, mut n_errors) = (0usize, 0usize, 0usize);
    let mut n_s2i_accepted = 0usize;
    for line in manifest.lines().filter(|l| !l.is_empty()) {
        let fields: HashMap<&str, &str> = line
            .split('\t')
            .filter_map(|field| field.split_once('='))
            .collect();
        let case = Case {
            fields,
            dir: dir.path(),
        };
        n_errors += usize::from(case.get("error").is_some());
        match case.get("kind") {
            Some("s2i") => {
                n_s2i += 1;
                n_s2i_accepted += usize::from(case.get("error").is_none());
                check_s2i(&case, &mut failures);
            }
            Some("i2s") => {
                n_i2s += 1;
                check_i2s(&case, &mut failures);
            }
            other => panic!("unknown case kind {other:?}"),
        }
    }
    assert!(
        n_s2i >= 90 && n_i2s >= 25 && n_errors >= 16,
        "the case generator produced too few cases ({n_s2i} signals_to_img, {n_i2s} \
         img_to_signals, {n_errors} errors)"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from nilearn:\n{}",
        failures.len(),
        n_s2i + n_i2s,
        failures.join("\n")
    );
    // nibabel reads what the streamed writer wrote (run-coded gzip members, sparse .nii, pairs)
    // as nilearn's values, exactly.
    let script = r#"
import sys, numpy as np, nibabel as nib
from pathlib import Path
d = Path(sys.argv[1]); n = bad = 0
for f in sorted((d / "ours").iterdir()):
    if f.suffix == ".img" or not f.name.split("_")[-1].startswith(("stream", "pair")):
        continue
    cid = "_".join(f.name.split("_")[:2])
    exp = np.load(d / f"{cid}_expected.npy")
    img = nib.load(f)
    got = np.asanyarray(img.dataobj).ravel(order="F")
    n += 1
    if img.header.get_slope_inter() != (None, None) or got.dtype != exp.dtype or not np.array_equal(got, exp, equal_nan=True):
        bad += 1
        print("differs:", f.name)
print(n, bad)
"#;
    let out = run_python(&["-c", script, dir.path().to_str().unwrap()]);
    let last = out.lines().last().unwrap_or_default().to_string();
    let counts: Vec<usize> = last.split(' ').filter_map(|v| v.parse().ok()).collect();
    assert!(
        counts.len() == 2 && counts[0] == 3 * n_s2i_accepted && counts[1] == 0,
        "nibabel reading our files: {out}"
    );
}

/// numpy reads every `.npy` we write (each dtype, 1-D and 2-D, C and Fortran order) as the same
/// array.
#[test]
fn numpy_reads_our_npy() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Signals)> = vec![
        (
            "f32_c",
            Signals::new(
                Values::F32(vec![1.5, -2.25, 3.0, 4.0, 5.0, f32::MAX]),
                &[2, 3],
                Order::C,
            )
            .unwrap(),
        ),
        (
            "f64_f",
            Signals::new(
                Values::F64(vec![0.1, 0.2, 0.3, 1e-300, -0.0, 6.0]),
                &[3, 2],
                Order::F,
            )
            .unwrap(),
        ),
        (
            "i16_1d",
            Signals::new(Values::I16(vec![-32768, 0, 32767]), &[3], Order::C).unwrap(),
        ),
        (
            "i32_c",
            Signals::new(
                Values::I32(vec![i32::MIN, 7, i32::MAX, -1]),
                &[1, 4],
                Order::C,
            )
            .unwrap(),
        ),
        (
            "u8_f",
            Signals::new(Values::U8(vec![0, 1, 2, 255]), &[2, 2], Order::F).unwrap(),
        ),
        (
            "i64_c",
            Signals::new(Values::I64(vec![i64::MIN, 0, i64::MAX]), &[3], Order::C).unwrap(),
        ),
    ];
    let mut expected = String::new();
    for (name, signals) in &cases {
        std::fs::write(
            dir.path().join(format!("{name}.npy")),
            to_npy_bytes(signals),
        )
        .unwrap();
        let rows: Vec<String> = (0..signals.n_times())
            .flat_map(|t| (0..signals.n_regions()).map(move |r| (t, r)))
            .map(|(t, r)| match signals.values() {
                Values::I64(v) => v[signals.index(t, r)].to_string(),
                Values::F32(v) => format!("{:?}", f64::from(v[signals.index(t, r)])),
                Values::F64(v) => format!("{:?}", v[signals.index(t, r)]),
                other => format!("{}", other.get_f64(signals.index(t, r)) as i64),
            })
            .collect();
        expected.push_str(&format!(
            "{name} {} {:?} {}\n",
            signals.dtype(),
            signals.shape(),
            rows.join(",")
        ));
    }
    let script = r#"
import sys, numpy as np
from pathlib import Path
for name in sys.argv[2:]:
    a = np.load(Path(sys.argv[1]) / f"{name}.npy", allow_pickle=False)
    vals = ",".join(repr(float(v)) if a.dtype.kind == "f" else str(int(v)) for v in a.ravel(order="C").tolist())
    print(name, a.dtype.name, list(a.shape), vals)
"#;
    let mut args = vec!["-c", script, dir.path().to_str().unwrap()];
    args.extend(cases.iter().map(|(name, _)| *name));
    let got = run_python(&args);
    // Floats are compared as numbers (Python prints `1e+38` where Rust prints `1e38`).
    let normalise = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|line| {
                let (head, values) = line.rsplit_once(' ').unwrap();
                let mut out = vec![head.to_string()];
                out.extend(values.split(',').map(|v| match v.parse::<i128>() {
                    Ok(int) => int.to_string(),
                    Err(_) => format!("{:?}", v.parse::<f64>().unwrap().to_bits()),
                }));
                out
            })
            .collect()
    };
    assert_eq!(normalise(&got), normalise(&expected));
}
