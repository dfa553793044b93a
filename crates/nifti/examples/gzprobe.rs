use std::time::Instant;
use voxcalc_nifti::*;
use voxcalc_types::DType;
fn main() {
    let path = std::path::Path::new("/tmp/nifti_probe/series.nii.gz");
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let shape = [91usize, 109, 91, 200];
        let aff = [
            [2.0, 0., 0., 0.],
            [0., 2., 0., 0.],
            [0., 0., 2., 0.],
            [0., 0., 0., 1.],
        ];
        let header = Header::fresh(NiftiVersion::Nifti1, &shape, DType::I16, &aff).unwrap();
        let mut out = OutputImage::create(
            path,
            &header,
            &WriteOptions {
                gzip_block_size: usize::MAX,
                ..Default::default()
            },
        )
        .unwrap();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for (i, c) in out.data_mut().chunks_exact_mut(2).enumerate() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = if (i / 1000) % 3 != 0 {
                800 + (i % 200) as i64 + (state % 64) as i64
            } else {
                (state % 8) as i64
            };
            c.copy_from_slice(&(v as i16).to_ne_bytes());
        }
        out.finish().unwrap();
    }
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "write" {
        let img = NiftiImage::open(path).unwrap();
        for _ in 0..3 {
            let t = Instant::now();
            let mut out = OutputImage::create(
                "/tmp/nifti_probe/out.nii.gz",
                img.header(),
                &WriteOptions::default(),
            )
            .unwrap();
            out.data_mut().copy_from_slice(img.raw().bytes);
            out.finish().unwrap();
            println!("write {:.3}s", t.elapsed().as_secs_f64());
        }
        return;
    }
    for _ in 0..5 {
        let t = Instant::now();
        let img = NiftiImage::open(path).unwrap();
        let dt = t.elapsed().as_secs_f64();
        let t2 = Instant::now();
        drop(img);
        println!("open {:.3}s drop {:.3}s", dt, t2.elapsed().as_secs_f64());
    }
}
