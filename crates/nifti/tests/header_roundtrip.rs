//! Property: any header voxcalc can write parses back to the same fields, for both versions,
//! every storage dtype, ranks 1-7, with extensions; NIfTI-1 stores float32, so values are drawn
//! from float32.

use std::path::Path;

use proptest::prelude::*;
use voxcalc_nifti::{Extension, Header, NiftiVersion};
use voxcalc_types::DType;

fn any_f32() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1e6f32..1e6f32).prop_map(f64::from),
        Just(0.0),
        Just(-0.0),
        Just(1.0)
    ]
}

prop_compose! {
    fn any_header()(
        nifti2 in any::<bool>(),
        dtype_idx in 0usize..10,
        shape in prop::collection::vec(1usize..40, 1..=7),
        pixdim in prop::collection::vec(0.01f32..10.0, 7),
        qfac_negative in any::<bool>(),
        srow in prop::collection::vec(any_f32(), 12),
        quatern in prop::collection::vec(-0.5f32..0.5, 3),
        qoffset in prop::collection::vec(any_f32(), 3),
        codes in (0i32..=5, 0i32..=5),
        xyzt_units in 0i32..64,
        cal in (any_f32(), any_f32()),
        descrip in "[a-zA-Z0-9 ._-]{0,79}",
        extensions in prop::collection::vec((0i32..100, prop::collection::vec(any::<u8>(), 0..40)), 0..3),
    ) -> Header {
        let version = if nifti2 { NiftiVersion::Nifti2 } else { NiftiVersion::Nifti1 };
        let mut header = Header::empty(version);
        header.set_shape(&shape);
        header.set_dtype(DType::STORAGE[dtype_idx]).unwrap();
        header.pixdim[0] = if qfac_negative { -1.0 } else { 1.0 };
        for (axis, &size) in pixdim.iter().enumerate() {
            header.pixdim[axis + 1] = f64::from(size);
        }
        for (i, &v) in srow.iter().enumerate() {
            header.srow[i / 4][i % 4] = v;
        }
        for i in 0..3 {
            header.quatern[i] = f64::from(quatern[i]);
            header.qoffset[i] = qoffset[i];
        }
        (header.qform_code, header.sform_code) = codes;
        header.xyzt_units = xyzt_units;
        (header.cal_min, header.cal_max) = cal;
        header.set_descrip(&descrip);
        header.extensions = extensions
            .into_iter()
            .map(|(code, mut content)| {
                // Stored contents are padded to 16 bytes with the 8-byte prefix; pad here too so
                // the round trip compares like with like.
                content.resize((content.len() + 8).div_ceil(16) * 16 - 8, 0);
                Extension { code, content }
            })
            .collect();
        header
    }
}

proptest! {
    #[test]
    fn written_headers_parse_back_unchanged(header in any_header()) {
        let path = Path::new("prop.nii");
        let bytes = header.to_bytes(true).unwrap();
        let mut parsed = Header::parse(&bytes, path, u64::MAX).unwrap();
        let size = header.version.header_size();
        parsed.parse_extensions(&bytes[size..], path).unwrap();
        prop_assert_eq!(parsed.vox_offset, bytes.len() as u64);
        let mut expected = header.clone();
        expected.vox_offset = bytes.len() as u64;
        prop_assert_eq!(parsed, expected);
    }
}
