//! NIfTI I/O benchmark against nibabel (issue 3).
//!
//! `cargo bench --bench nifti_io` generates, deterministically and into a temp dir, a 256^3 int16
//! `.nii` and a 91x109x91x200 int16 `.nii.gz` (written by nibabel, so as users' files are),
//! then times, as medians over several runs:
//!   * reading the `.nii` (voxcalc maps it: the data view points into the file mapping, no copy;
//!     nibabel's `np.asanyarray(img.dataobj)` is a numpy memmap),
//!   * reading the `.nii.gz` (full decompression into the storage dtype),
//!   * writing that 4-D volume as `.nii.gz` at the default level (libdeflate level 1, whose
//!     files are no larger than nibabel's zlib level-1 files), whole-buffer ([`OutputImage`])
//!     and streamed volume by volume ([`OutputStream`]), both against nibabel's writer.
//!
//! It runs benches/nifti_io.py (nibabel) on the same files in the same run, alternating with
//! voxcalc's runs, and prints both and the ratios. The Python interpreter is $VOXCALC_PYTHON,
//! else .venv/bin/python at the repo root.
//!
//! Run without `--bench` (as `cargo test --all-targets` does), it does a quick smoke run on tiny
//! volumes without Python, checking that what it writes reads back.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use voxcalc_nifti::{
    DataSource, Header, NiftiImage, NiftiVersion, OutputImage, OutputStream, WriteOptions,
};
use voxcalc_types::DType;

use common::{median, python, TempDir};

const AFFINE: [[f64; 4]; 4] = [
    [-2.0, 0.0, 0.0, 90.0],
    [0.0, 2.0, 0.0, -126.0],
    [0.0, 0.0, 2.0, -72.0],
    [0.0, 0.0, 0.0, 1.0],
];

struct Sizes {
    volume: Vec<usize>,
    series: Vec<usize>,
    runs: usize,
}

/// Brain-like int16 data: a smooth pattern plus a little deterministic noise, so gzip
/// compresses it about as well as real scans (roughly 2-3x).
fn fill_int16(bytes: &mut [u8], shape: &[usize]) {
    let (nx, ny) = (shape[0], shape[1]);
    let nz = shape.get(2).copied().unwrap_or(1);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for (voxel_idx, chunk) in bytes.chunks_exact_mut(2).enumerate() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = voxel_idx % nx;
        let y = (voxel_idx / nx) % ny;
        let z = (voxel_idx / (nx * ny)) % nz;
        let t = voxel_idx / (nx * ny * nz);
        let (dx, dy, dz) = (
            x as f64 / nx as f64 - 0.5,
            y as f64 / ny as f64 - 0.5,
            z as f64 / nz as f64 - 0.5,
        );
        let inside = dx * dx + dy * dy + dz * dz < 0.2;
        let value = if inside {
            800 + ((x * 7 + y * 3 + z * 5) % 200) as i64 + (t % 7) as i64 + (state % 64) as i64
        } else {
            (state % 8) as i64
        };
        chunk.copy_from_slice(&(value as i16).to_ne_bytes());
    }
}

fn write_nii(path: &Path, shape: &[usize]) {
    let header = Header::fresh(NiftiVersion::Nifti1, shape, DType::I16, &AFFINE).unwrap();
    let mut output = OutputImage::create(path, &header, &WriteOptions::default()).unwrap();
    fill_int16(output.data_mut(), shape);
    output.finish().unwrap();
}

/// Writes the 4-D series as `.nii.gz`: with nibabel when `use_nibabel` and Python are available
/// (so the file read is what users get from nibabel: one gzip member at level 1), else with
/// voxcalc's writer as one member. Returns who wrote it.
fn write_series_gz(path: &Path, shape: &[usize], use_nibabel: bool) -> &'static str {
    if use_nibabel {
        let plain = path.with_file_name("series_source.nii");
        write_nii(&plain, shape);
        let status = Command::new(python())
            .arg("-c")
            .arg("import sys, nibabel as nib; nib.save(nib.load(sys.argv[1]), sys.argv[2])")
            .arg(&plain)
            .arg(path)
            .status();
        let _ = std::fs::remove_file(&plain);
        if status.is_ok_and(|s| s.success()) {
            return "nibabel";
        }
        eprintln!("nibabel could not write the .nii.gz; voxcalc writes it instead");
    }
    let header = Header::fresh(NiftiVersion::Nifti1, shape, DType::I16, &AFFINE).unwrap();
    let options = WriteOptions {
        gzip_block_size: usize::MAX,
        ..WriteOptions::default()
    };
    let mut output = OutputImage::create(path, &header, &options).unwrap();
    fill_int16(output.data_mut(), shape);
    output.finish().unwrap();
    "voxcalc (one member)"
}

/// CPU seconds (user + system, all threads) this process has used so far, from /proc; 0 where
/// /proc is unavailable.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<f64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    // The kernel reports USER_HZ ticks, 100 per second on Linux.
    ticks.iter().sum::<f64>() / 100.0
}

/// The nibabel side (benches/nifti_io.py), kept running so that its runs can alternate with
/// voxcalc's.
struct Nibabel {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Nibabel {
    fn start(nii: &Path, nii_gz: &Path, out: &Path) -> Option<Nibabel> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/nifti_io.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(nii)
            .arg(nii_gz)
            .arg(out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                eprintln!(
                    "cannot run {}: {e}; timing voxcalc only",
                    python().display()
                )
            })
            .ok()?;
        let stdout = BufReader::new(child.stdout.take()?);
        Some(Nibabel { child, stdout })
    }

    /// Runs one operation in Python; returns its wall-clock and CPU time in seconds.
    fn time(&mut self, op: &str) -> Option<(f64, f64)> {
        let stdin = self.child.stdin.as_mut()?;
        writeln!(stdin, "{op}").ok()?;
        stdin.flush().ok()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        let mut fields = line.split_whitespace().map(|f| f.parse::<f64>().ok());
        Some((fields.next()??, fields.next()??))
    }
}

impl Drop for Nibabel {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            volume: vec![256, 256, 256],
            series: vec![91, 109, 91, 200],
            runs: 3,
        }
    } else {
        Sizes {
            volume: vec![16, 16, 16],
            series: vec![9, 10, 9, 4],
            runs: 1,
        }
    };
    let dir = TempDir::new("nifti-bench");
    let nii = dir.path().join("volume.nii");
    let nii_gz = dir.path().join("series.nii.gz");
    let out = dir.path().join("out.nii.gz");
    let out_streamed = dir.path().join("out_streamed.nii.gz");
    let nib_out = dir.path().join("nib_out.nii.gz");
    let start = Instant::now();
    write_nii(&nii, &sizes.volume);
    let gz_writer = write_series_gz(&nii_gz, &sizes.series, full);
    let series_bytes: usize = sizes.series.iter().product::<usize>() * 2;
    println!(
        "generated {:?} int16 .nii and {:?} int16 .nii.gz ({:.0} MB raw, {:.0} MB gzipped by {gz_writer}) in {:.1} s",
        sizes.volume,
        sizes.series,
        series_bytes as f64 / 1e6,
        std::fs::metadata(&nii_gz).unwrap().len() as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );

    let image = NiftiImage::open(&nii).unwrap();
    println!(
        ".nii data source: {:?} (the {} data bytes are a view into the file mapping: no copy)",
        image.data_source(),
        image.raw().bytes.len()
    );
    drop(image);
    let series = NiftiImage::open(&nii_gz).unwrap();
    let mut nibabel = if full {
        Nibabel::start(&nii, &nii_gz, &nib_out)
    } else {
        None
    };

    // Each operation alternates voxcalc and nibabel runs, so load from other processes on the
    // machine affects both alike.
    let mut ours = [0.0f64; 5];
    let mut ours_cpu = [0.0f64; 5];
    let mut theirs: Option<[f64; 5]> = nibabel.as_ref().map(|_| [0.0; 5]);
    let mut theirs_cpu = [0.0f64; 5];
    let read_out = format!("read {}", out.display());
    for (op_idx, op) in [
        "read_nii",
        "read_gz",
        "write_gz",
        read_out.as_str(),
        "stream_gz",
    ]
    .into_iter()
    .enumerate()
    {
        let mut our_samples = Vec::new();
        let mut our_cpu_samples = Vec::new();
        let mut their_samples = Vec::new();
        let mut their_cpu_samples = Vec::new();
        for _ in 0..sizes.runs {
            let start = Instant::now();
            let start_cpu = cpu_seconds();
            match op {
                "read_nii" => {
                    let image = NiftiImage::open(&nii).unwrap();
                    assert_eq!(image.data_source(), DataSource::MappedFile);
                    std::hint::black_box(image.raw().bytes.as_ptr());
                }
                "read_gz" => {
                    let image = NiftiImage::open(&nii_gz).unwrap();
                    std::hint::black_box(image.raw().bytes.len());
                }
                "write_gz" => {
                    let mut output =
                        OutputImage::create(&out, series.header(), &WriteOptions::default())
                            .unwrap();
                    output.data_mut().copy_from_slice(series.raw().bytes);
                    output.finish().unwrap();
                }
                "stream_gz" => {
                    let mut output = OutputStream::create(
                        &out_streamed,
                        series.header(),
                        &WriteOptions::default(),
                    )
                    .unwrap();
                    let volume_bytes = sizes.series[..3].iter().product::<usize>() * 2;
                    for volume in series.raw().bytes.chunks(volume_bytes) {
                        output.write_data(volume).unwrap();
                    }
                    output.finish().unwrap();
                }
                _ => {
                    let image = NiftiImage::open(&out).unwrap();
                    std::hint::black_box(image.raw().bytes.len());
                }
            }
            our_samples.push(start.elapsed().as_secs_f64());
            our_cpu_samples.push(cpu_seconds() - start_cpu);
            if let Some(nib) = nibabel.as_mut() {
                // nibabel has one writer; the streamed write is compared with it.
                match nib.time(if op == "stream_gz" { "write_gz" } else { op }) {
                    Some((wall, cpu)) => {
                        their_samples.push(wall);
                        their_cpu_samples.push(cpu);
                    }
                    None => {
                        eprintln!("the nibabel side stopped answering; timing voxcalc only");
                        theirs = None;
                    }
                }
            }
        }
        ours[op_idx] = median(our_samples);
        ours_cpu[op_idx] = median(our_cpu_samples);
        if let Some(t) = theirs.as_mut() {
            if !their_samples.is_empty() {
                t[op_idx] = median(their_samples);
                theirs_cpu[op_idx] = median(their_cpu_samples);
            }
        }
    }
    drop(nibabel);
    let [_, read_gz, write_gz, read_ours, _] = ours;
    let written = NiftiImage::open(&out).unwrap();
    assert_eq!(written.raw().bytes, series.raw().bytes, "round trip");
    let out_mb = std::fs::metadata(&out).unwrap().len() as f64 / 1e6;
    assert_eq!(
        std::fs::read(&out_streamed).unwrap(),
        std::fs::read(&out).unwrap(),
        "streamed and whole-buffer outputs are the same file"
    );
    let nib_out_mb = std::fs::metadata(&nib_out).map_or(f64::NAN, |m| m.len() as f64 / 1e6);

    let dims = |shape: &[usize]| {
        shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("x")
    };
    let names = [
        format!("read {} int16 .nii", dims(&sizes.volume)),
        format!("read {} int16 .nii.gz", dims(&sizes.series)),
        "write it as .nii.gz (default level 1)".to_string(),
        "read that voxcalc-written .nii.gz".to_string(),
        "stream it as .nii.gz volume by volume (OutputStream)".to_string(),
    ];
    println!(
        "\n| operation | voxcalc wall s | nibabel wall s | wall ratio | voxcalc CPU s | nibabel CPU s |\n|---|---|---|---|---|---|"
    );
    for i in 0..5 {
        match theirs {
            Some(t) => println!(
                "| {} | {:.4} | {:.4} | {:.1}x | {:.2} | {:.2} |",
                names[i],
                ours[i],
                t[i],
                t[i] / ours[i],
                ours_cpu[i],
                theirs_cpu[i]
            ),
            None => println!(
                "| {} | {:.4} | - | - | {:.2} | - |",
                names[i], ours[i], ours_cpu[i]
            ),
        }
    }
    println!(
        "(medians of {} alternating runs; ratio = nibabel / voxcalc; CPU counts all threads)",
        sizes.runs
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average during the run: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "\ngzip read {:.0} MB/s (voxcalc-written: {:.0} MB/s), write {:.0} MB/s ({:.1} MB out; nibabel's file {:.1} MB), {} cores",
        series_bytes as f64 / 1e6 / read_gz,
        series_bytes as f64 / 1e6 / read_ours,
        series_bytes as f64 / 1e6 / write_gz,
        out_mb,
        nib_out_mb,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
