//! Fuzzes the NIfTI header reader: any bytes must give a header or an error, never a panic or
//! an out-of-bounds read; a header we parse must serialise and parse back to the same layout.
//! Run with: cargo fuzz run nifti_header
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use voxcalc_nifti::{Header, DEFAULT_MAX_DATA_BYTES};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.nii");
    let Ok(mut header) = Header::parse(data, path, DEFAULT_MAX_DATA_BYTES) else {
        return;
    };
    let header_size = header.version.header_size();
    let end = usize::try_from(header.vox_offset)
        .unwrap_or(usize::MAX)
        .clamp(header_size, data.len());
    if header
        .parse_extensions(&data[header_size..end], path)
        .is_err()
    {
        return;
    }
    let _ = header.affine();
    let _ = header.scaling();
    let shape = header.shape();
    assert_eq!(shape.iter().product::<usize>(), header.n_voxels());
    if let Ok(bytes) = header.to_bytes(true) {
        let again = Header::parse(&bytes, path, DEFAULT_MAX_DATA_BYTES)
            .expect("a header voxcalc wrote must parse back");
        assert_eq!(again.shape(), shape);
        assert_eq!(again.datatype, header.datatype);
        assert_eq!(again.version, header.version);
    }
});
