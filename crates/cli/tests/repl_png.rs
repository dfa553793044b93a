//! `:png` pictures decoded pixel by pixel: a blob made by a formula over the example atlas
//! must appear exactly where its voxels are, in the single-slice and the orthogonal layouts.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use flate2::read::ZlibDecoder;
use flate2::Crc;
use voxcalc::Image;

const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A decoded 8-bit RGB PNG.
struct Rgb {
    width: usize,
    height: usize,
    pixels: Vec<[u8; 3]>,
}

impl Rgb {
    fn at(&self, row: usize, col: usize) -> [u8; 3] {
        self.pixels[row * self.width + col]
    }
}

/// Decodes the PNGs `:png` writes (RGB, 8 bits, no interlace, filter type 0 on every row),
/// checking the signature and every chunk's CRC.
fn decode_png(bytes: &[u8]) -> Rgb {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let mut pos = 8;
    let mut header = None;
    let mut idat = Vec::new();
    loop {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        let crc = u32::from_be_bytes(bytes[pos + 8 + len..pos + 12 + len].try_into().unwrap());
        let mut expected = Crc::new();
        expected.update(kind);
        expected.update(data);
        assert_eq!(
            crc,
            expected.sum(),
            "CRC of chunk {:?}",
            String::from_utf8_lossy(kind)
        );
        match kind {
            b"IHDR" => {
                let width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                let height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(&data[8..13], &[8, 2, 0, 0, 0], "8-bit RGB, no interlace");
                header = Some((width, height));
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            other => panic!("unexpected chunk {:?}", String::from_utf8_lossy(other)),
        }
        pos += 12 + len;
    }
    let (width, height) = header.expect("an IHDR chunk");
    let mut raw = Vec::new();
    ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .expect("a valid zlib stream");
    assert_eq!(raw.len(), height * (1 + 3 * width), "scanline bytes");
    let mut pixels = Vec::with_capacity(width * height);
    for line in raw.chunks(1 + 3 * width) {
        assert_eq!(line[0], 0, "filter type 0");
        pixels.extend(line[1..].chunks(3).map(|p| [p[0], p[1], p[2]]));
    }
    Rgb {
        width,
        height,
        pixels,
    }
}

/// The atlas label and its voxels, as the test's own reading of the file.
struct Atlas {
    dims: [usize; 3],
    labels: Vec<i64>,
}

impl Atlas {
    fn load() -> Atlas {
        let image = Image::load(Path::new(REPO_ROOT).join("examples/atlas.nii.gz")).expect("atlas");
        let shape = image.shape();
        assert_eq!(shape.len(), 3);
        let raw = image.raw();
        let labels = (0..raw.n_voxels())
            .map(|idx| raw.value_f64(idx) as i64)
            .collect();
        Atlas {
            dims: [shape[0], shape[1], shape[2]],
            labels,
        }
    }

    fn label(&self, i: usize, j: usize, k: usize) -> i64 {
        self.labels[i + self.dims[0] * (j + self.dims[1] * k)]
    }
}

fn run_repl(script: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let stdin_path = tmp.path().join("stdin.txt");
    std::fs::write(&stdin_path, script).expect("write the script");
    let output = Command::new(env!("CARGO_BIN_EXE_voxcalc"))
        .args(["repl", "atlas=examples/atlas.nii.gz"])
        .current_dir(REPO_ROOT)
        .stdin(File::open(&stdin_path).expect("open the script"))
        .output()
        .expect("run voxcalc repl");
    assert!(
        output.status.success(),
        "voxcalc repl failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

#[test]
fn a_formula_blob_appears_where_its_voxels_are() {
    let atlas = Atlas::load();
    let [nx, ny, nz] = atlas.dims;
    // The blob: the label met first in the centre axial slice, so that every layout shows it.
    let (ci, cj, ck) = (nx / 2, ny / 2, nz / 2);
    let label = (0..nx * ny)
        .map(|idx| atlas.label(idx % nx, idx / nx, ck))
        .find(|&l| l != 0)
        .expect("the centre slice crosses a region");
    let (bi, bj, bk) = (0..nx * ny * nz)
        .map(|idx| (idx % nx, (idx / nx) % ny, idx / (nx * ny)))
        .find(|&(i, j, k)| atlas.label(i, j, k) == label)
        .expect("the label has voxels");
    let tmp = tempfile::tempdir().expect("temp dir");
    let slice_png = tmp.path().join("slice.png");
    let ortho_png = tmp.path().join("ortho.png");
    run_repl(&format!(
        "blob = np.where(atlas == {label}, 1000, 0)\n\
         :png blob {} z {bk} --scale 1\n\
         :png blob {} --scale 2\n",
        slice_png.display(),
        ortho_png.display()
    ));

    // One axial slice at scale 1: column i, row ny-1-j (j up), white exactly on the label.
    let png = decode_png(&std::fs::read(&slice_png).expect("slice.png written"));
    assert_eq!((png.width, png.height), (nx, ny));
    let mut n_white = 0;
    for j in 0..ny {
        for i in 0..nx {
            let expected = if atlas.label(i, j, bk) == label {
                WHITE
            } else {
                BLACK
            };
            assert_eq!(png.at(ny - 1 - j, i), expected, "voxel ({i}, {j}, {bk})");
            n_white += usize::from(expected == WHITE);
        }
    }
    assert!(n_white > 0);
    assert_eq!(png.at(ny - 1 - bj, bi), WHITE);

    // Orthogonal views at scale 2: x, y, z panels through the centre, 1-voxel gaps, each
    // panel centred vertically in the tallest.
    let png = decode_png(&std::fs::read(&ortho_png).expect("ortho.png written"));
    let scale = 2;
    let panels = [(ny, nz), (nx, nz), (nx, ny)];
    let width = ny + 1 + nx + 1 + nx;
    let height = nz.max(ny);
    assert_eq!((png.width, png.height), (width * scale, height * scale));
    let mut left = 0;
    let mut n_white = 0;
    for (panel_idx, &(w, h)) in panels.iter().enumerate() {
        let top = (height - h) / 2;
        for row in 0..h {
            for col in 0..w {
                let up = h - 1 - row;
                let voxel_label = match panel_idx {
                    0 => atlas.label(ci, col, up),
                    1 => atlas.label(col, cj, up),
                    _ => atlas.label(col, up, ck),
                };
                let expected = if voxel_label == label { WHITE } else { BLACK };
                n_white += usize::from(expected == WHITE);
                for dy in 0..scale {
                    for dx in 0..scale {
                        assert_eq!(
                            png.at((top + row) * scale + dy, (left + col) * scale + dx),
                            expected,
                            "panel {panel_idx}, pixel ({row}, {col})"
                        );
                    }
                }
            }
        }
        left += w + 1;
    }
    assert!(n_white > 0, "the blob crosses the centre slices");
}

/// Writes the atlas stored the other way along `i` (voxel `i` holds what voxel `nx-1-i` held)
/// with the affine's first column negated to match: the same anatomy in LAS order.
fn write_las_atlas(path: &Path) {
    let atlas = Image::load(Path::new(REPO_ROOT).join("examples/atlas.nii.gz")).expect("atlas");
    let shape = atlas.shape();
    let nx = shape[0];
    let raw = atlas.raw();
    assert_eq!(raw.dtype, voxcalc::DType::I16);
    let mut data = Vec::with_capacity(raw.n_voxels() * 2);
    for idx in 0..raw.n_voxels() {
        let (i, rest) = (idx % nx, idx / nx);
        let value = raw.value_f64(nx - 1 - i + nx * rest) as i16;
        data.extend_from_slice(&value.to_ne_bytes());
    }
    let mut affine = *atlas.affine();
    for row in &mut affine {
        // x_world(i) = a*i + b becomes a*(nx-1-i) + b = -a*i + (a*(nx-1) + b).
        row[3] += row[0] * (nx - 1) as f64;
        row[0] = -row[0];
    }
    let mut header = atlas.header().clone();
    header.set_sform(&affine, 2);
    header.set_qform(&affine, 0).expect("a valid qform");
    header.scl_slope = 0.0;
    let las = voxcalc::Evaluated {
        header,
        data,
        warnings: Vec::new(),
        timings: voxcalc::Timings::default(),
    };
    las.save(path, &voxcalc::WriteOptions::default())
        .expect("write the LAS atlas");
}

#[test]
fn images_stored_right_to_left_are_drawn_like_left_to_right_ones() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let las_path = tmp.path().join("atlas_las.nii");
    write_las_atlas(&las_path);
    let (ras_png, las_png) = (tmp.path().join("ras.png"), tmp.path().join("las.png"));
    run_repl(&format!(
        ":load las {}\n:png atlas {}\n:png las {}\n",
        las_path.display(),
        ras_png.display(),
        las_png.display()
    ));
    let ras = decode_png(&std::fs::read(&ras_png).expect("ras.png"));
    let las = decode_png(&std::fs::read(&las_png).expect("las.png"));
    assert_eq!((ras.width, ras.height), (las.width, las.height));
    assert!(
        ras.pixels.iter().any(|&p| p != BLACK),
        "the picture shows regions"
    );
    // The x panel (i = nx/2) differs between the two storages when nx is even (it is the
    // slice at the same index, not the same place), so compare the y and z panels, which
    // hold the whole i range.
    let atlas = Atlas::load();
    let [nx, ny, nz] = atlas.dims;
    // Without the reversal the LAS picture would be the mirror image: the atlas is not
    // left-right symmetric, so that would show.
    assert!(
        (0..nx * ny).any(|idx| {
            let (i, j) = (idx % nx, idx / nx);
            atlas.label(i, j, nz / 2) != atlas.label(nx - 1 - i, j, nz / 2)
        }),
        "the test needs an asymmetric atlas"
    );
    let scale = 4;
    let first_col = (ny + 1) * scale;
    for row in 0..ras.height {
        for col in first_col..ras.width {
            assert_eq!(las.at(row, col), ras.at(row, col), "pixel ({row}, {col})");
        }
    }
}
