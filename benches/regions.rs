//! Region signals benchmark against nilearn (issue 7).
//!
//! `cargo bench --bench regions` writes, deterministically and into a temp dir, a 91x109x91 int16
//! atlas (`.nii.gz`) of 400 Voronoi parcels in a brain-sized ellipsoid with float32 signals of
//! 1200 time points, and a 200-parcel atlas with 200 time points, then for each case times, side
//! by side with nilearn 0.14 (benches/regions_compare.py) in the same run:
//!   * building the image in memory from a loaded atlas (`LabelMap::build` + `signals_to_img`
//!     into a fresh buffer, against `signals_to_img_labels`), and, for reference, refilling one
//!     reused buffer (`signals_to_img_into`, as a loop over subjects would; nilearn has no
//!     equivalent, its column is the same fresh build). Both sides build the same number of
//!     times in one process: on the development VM the first build in a process is several
//!     times slower than the next ones, on both sides (nilearn's 400 x 1200 build took 13 s the
//!     first time, 3 s after; presumably fresh memory that the host has to back again), so the
//!     "build in memory" row is the median of the later builds and "first build" compares the
//!     first ones,
//!   * for the 200 x 200 case, the inverse `img_to_signals_labels` on the rebuilt `.nii`
//!     (opening the file included),
//!   * the whole job in a fresh process: load the signals (.npy) and the atlas, build, write
//!     `.nii` and `.nii.gz` (voxcalc streams the file; nilearn calls `to_filename`), with the
//!     process's peak resident memory.
//!
//! It prints medians and ratios. The Python interpreter is $VOXCALC_PYTHON, else .venv/bin/python
//! at the repo root. The 400 x 1200 case writes 4.3 GB images and runs nilearn's jobs once (each
//! job, on both sides, is a fresh process).
//!
//! Run without `--bench` (as `cargo test --all-targets` does), it does a quick smoke run on a
//! tiny atlas without Python: signals -> image -> signals must give the signals back.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use voxcalc::regions::{read_signals, write_signals, LabelMap, Order, Signals, Values};
use voxcalc_nifti::{Header, NiftiImage, NiftiVersion, OutputImage, WriteOptions};
use voxcalc_types::DType;

use common::{median, python, TempDir};

const AFFINE: [[f64; 4]; 4] = [
    [-2.0, 0.0, 0.0, 90.0],
    [0.0, 2.0, 0.0, -126.0],
    [0.0, 0.0, 2.0, -72.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes an int16 atlas: `n_regions` Voronoi parcels of random seeds inside an ellipsoid
/// (0 outside), as a brain parcellation looks.
fn write_atlas(path: &Path, shape: [usize; 3], n_regions: usize) {
    let [nx, ny, nz] = shape;
    let centre = [nx as f64 / 2.0, ny as f64 / 2.0, nz as f64 / 2.0];
    let radii = [nx as f64 * 0.42, ny as f64 * 0.45, nz as f64 * 0.40];
    let inside = |p: [f64; 3]| -> bool {
        (0..3)
            .map(|a| ((p[a] - centre[a]) / radii[a]).powi(2))
            .sum::<f64>()
            < 1.0
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seeds = Vec::with_capacity(n_regions);
    while seeds.len() < n_regions {
        let p = [
            rng.uniform() * nx as f64,
            rng.uniform() * ny as f64,
            rng.uniform() * nz as f64,
        ];
        if inside(p) {
            seeds.push(p);
        }
    }
    let header = Header::fresh(NiftiVersion::Nifti1, &shape, DType::I16, &AFFINE).unwrap();
    let mut out = OutputImage::create(path, &header, &WriteOptions::default()).unwrap();
    for (voxel_idx, chunk) in out.data_mut().chunks_exact_mut(2).enumerate() {
        let p = [
            (voxel_idx % nx) as f64,
            ((voxel_idx / nx) % ny) as f64,
            (voxel_idx / (nx * ny)) as f64,
        ];
        let label = if inside(p) {
            let mut best = (f64::INFINITY, 0);
            for (idx, s) in seeds.iter().enumerate() {
                let d = (p[0] - s[0]).powi(2) + (p[1] - s[1]).powi(2) + (p[2] - s[2]).powi(2);
                if d < best.0 {
                    best = (d, idx);
                }
            }
            best.1 as i16 + 1
        } else {
            0
        };
        chunk.copy_from_slice(&label.to_ne_bytes());
    }
    out.finish().unwrap();
}

fn write_signals_npy(path: &Path, n_times: usize, n_regions: usize) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let values: Vec<f32> = (0..n_times * n_regions)
        .map(|_| (rng.uniform() * 200.0 - 100.0) as f32)
        .collect();
    let signals = Signals::new(Values::F32(values), &[n_times, n_regions], Order::C).unwrap();
    write_signals(path, &signals, &[]).unwrap();
}

fn compare_script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/benches/regions_compare.py")
}

/// Peak resident memory of this process in KiB (`VmHWM`).
fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The whole voxcalc job, run in a child process (`--job SIGNALS ATLAS OUT`): prints the
/// seconds it took and the peak resident memory.
fn job(signals: &Path, atlas: &Path, out: &Path) {
    let start = Instant::now();
    let signals = read_signals(signals).unwrap().signals;
    let labels = NiftiImage::open(atlas).unwrap();
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    map.write_signals_img(&signals, out, &WriteOptions::default())
        .unwrap();
    println!("{:.6} {}", start.elapsed().as_secs_f64(), peak_kb());
}

/// Runs a job command and parses its `seconds peak_kb` line.
fn run_job(command: &mut Command) -> (f64, u64) {
    let output = command.output().expect("cannot start the job");
    assert!(
        output.status.success(),
        "job failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let seconds = parts.next().and_then(|s| s.parse().ok()).unwrap();
    let peak = parts.next().and_then(|s| s.parse().ok()).unwrap();
    (seconds, peak)
}

struct Row {
    case: String,
    step: &'static str,
    ours: f64,
    theirs: f64,
    peaks: Option<(u64, u64)>,
}

fn bench_case(
    dir: &Path,
    n_regions: usize,
    n_times: usize,
    reps: usize,
    nilearn_reps: usize,
) -> Vec<Row> {
    let case = format!("{n_regions} x {n_times}");
    let atlas = dir.join(format!("atlas{n_regions}.nii.gz"));
    let signals_path = dir.join(format!("signals{n_regions}x{n_times}.npy"));
    write_atlas(&atlas, [91, 109, 91], n_regions);
    write_signals_npy(&signals_path, n_times, n_regions);
    let mut rows = Vec::new();
    eprintln!("  {case}: inputs written");

    // In memory, from a loaded atlas.
    let labels = NiftiImage::open(&atlas).unwrap();
    let signals = read_signals(&signals_path).unwrap().signals;
    let mut ours = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let map = LabelMap::build(&labels, None, 0.0).unwrap();
        assert_eq!(map.n_regions(), n_regions);
        let image = map.signals_to_img(&signals, Order::F).unwrap();
        ours.push(start.elapsed().as_secs_f64());
        drop(image);
    }
    // Into one reused buffer (no allocation, background rewritten each time).
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    let mut buffer = vec![0u8; map.n_voxels() * n_times * 4];
    // Untimed first fill: the buffer's pages are faulted in once, as in a loop over subjects.
    map.signals_to_img_into(&signals, Order::F, &mut buffer)
        .unwrap();
    let mut reused = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        map.signals_to_img_into(&signals, Order::F, &mut buffer)
            .unwrap();
        reused.push(start.elapsed().as_secs_f64());
    }
    drop(buffer);
    drop(labels);
    eprintln!("  {case}: voxcalc in memory done, running nilearn");
    let output = Command::new(python())
        .args([compare_script(), "inmem"])
        .arg(&signals_path)
        .arg(&atlas)
        .arg(reps.to_string())
        .output()
        .expect("cannot run python");
    assert!(
        output.status.success(),
        "nilearn failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(
        ours.len() >= 2 && theirs.len() == ours.len(),
        "need 2 builds or more a side"
    );
    // The first build of each process, then the median of the later ones.
    let (our_first, their_first) = (ours[0], theirs[0]);
    let (ours, theirs) = (median(ours[1..].to_vec()), median(theirs[1..].to_vec()));
    rows.push(Row {
        case: case.clone(),
        step: "build in memory",
        ours,
        theirs,
        peaks: None,
    });
    rows.push(Row {
        case: case.clone(),
        step: "  first build",
        ours: our_first,
        theirs: their_first,
        peaks: None,
    });
    rows.push(Row {
        case: case.clone(),
        step: "  reused buffer",
        ours: median(reused),
        theirs,
        peaks: None,
    });

    // The inverse, from a .nii file: region means of every volume.
    if n_times <= 200 {
        let img_path = dir.join("series.nii");
        let labels = NiftiImage::open(&atlas).unwrap();
        let map = LabelMap::build(&labels, None, 0.0).unwrap();
        map.write_signals_img(&signals, &img_path, &WriteOptions::default())
            .unwrap();
        let mut ours = Vec::new();
        for _ in 0..reps {
            let start = Instant::now();
            let img = NiftiImage::open(&img_path).unwrap();
            let res = voxcalc::regions::img_to_signals_labels(&img, &labels, None, 0.0).unwrap();
            ours.push(start.elapsed().as_secs_f64());
            assert_eq!(res.signals.shape(), &[n_times, n_regions]);
        }
        let output = Command::new(python())
            .args([compare_script(), "extract"])
            .arg(&img_path)
            .arg(&atlas)
            .arg(nilearn_reps.to_string())
            .output()
            .expect("cannot run python");
        assert!(
            output.status.success(),
            "nilearn failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs: Vec<f64> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        rows.push(Row {
            case: case.clone(),
            step: "img -> signals",
            ours: median(ours),
            theirs: median(theirs),
            peaks: None,
        });
        let _ = std::fs::remove_file(&img_path);
    }

    // The whole job, each in a fresh process.
    for (step, ext) in [("job -> .nii", "nii"), ("job -> .nii.gz", "nii.gz")] {
        let out = dir.join(format!("out.{ext}"));
        let mut ours = Vec::new();
        let mut our_peak = 0;
        for _ in 0..reps {
            let (seconds, peak) = run_job(
                Command::new(std::env::current_exe().unwrap())
                    .arg("--job")
                    .arg(&signals_path)
                    .arg(&atlas)
                    .arg(&out),
            );
            ours.push(seconds);
            our_peak = our_peak.max(peak);
            let _ = std::fs::remove_file(&out);
        }
        let mut theirs = Vec::new();
        let mut their_peak = 0;
        for _ in 0..nilearn_reps {
            let (seconds, peak) = run_job(
                Command::new(python())
                    .args([compare_script(), "job"])
                    .arg(&signals_path)
                    .arg(&atlas)
                    .arg(&out),
            );
            theirs.push(seconds);
            their_peak = their_peak.max(peak);
            let _ = std::fs::remove_file(&out);
        }
        eprintln!("  {case}: {step} done");
        rows.push(Row {
            case: case.clone(),
            step,
            ours: median(ours),
            theirs: median(theirs),
            peaks: Some((our_peak, their_peak)),
        });
    }
    rows
}

fn smoke() {
    let dir = TempDir::new("regions-smoke");
    let atlas = dir.path().join("atlas.nii");
    write_atlas(&atlas, [12, 10, 9], 5);
    let labels = NiftiImage::open(&atlas).unwrap();
    let map = LabelMap::build(&labels, None, 0.0).unwrap();
    assert_eq!(map.n_regions(), 5);
    let signals_path = dir.path().join("signals.npy");
    write_signals_npy(&signals_path, 3, 5);
    let signals = read_signals(&signals_path).unwrap().signals;
    for name in ["recon.nii", "recon.nii.gz"] {
        let out = dir.path().join(name);
        map.write_signals_img(&signals, &out, &WriteOptions::default())
            .unwrap();
        let back = map
            .img_to_signals(&NiftiImage::open(&out).unwrap())
            .unwrap();
        assert_eq!(back.signals, signals, "round trip through {name}");
    }
    println!("regions bench smoke run: ok (run `cargo bench --bench regions` to measure)");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--job" {
        job(
            Path::new(&args[2]),
            Path::new(&args[3]),
            Path::new(&args[4]),
        );
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        smoke();
        return;
    }
    let dir = TempDir::new("regions-bench");
    println!(
        "regions: signals_to_img_labels, voxcalc vs nilearn 0.14 ({} threads; 91x109x91 int16 \
         atlas, float32 signals)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let mut rows = bench_case(dir.path(), 200, 200, 5, 2);
    rows.extend(bench_case(dir.path(), 400, 1200, 3, 1));
    println!(
        "{:<11} {:<16} {:>10} {:>10} {:>8} {:>16}",
        "case", "step", "voxcalc", "nilearn", "ratio", "peak MB (v / n)"
    );
    for row in &rows {
        let peaks = row.peaks.map_or(String::new(), |(ours, theirs)| {
            format!(
                "{:.0} / {:.0}",
                ours as f64 / 1024.0,
                theirs as f64 / 1024.0
            )
        });
        println!(
            "{:<11} {:<16} {:>9.3}s {:>9.3}s {:>7.1}x {:>16}",
            row.case,
            row.step,
            row.ours,
            row.theirs,
            row.theirs / row.ours,
            peaks
        );
    }
}
