"""Writes NIfTI fixtures with nibabel, and what nibabel reads back from them, for voxcalc-nifti.

Every storage dtype x byte order x NIfTI-1/NIfTI-2 x .nii/.nii.gz/.hdr+.img x scaled/unscaled,
with 3-D and 4-D shapes (TR set), non-trivial affines and sform-only / qform-only / both / neither
transforms. Scaled cases get their scl_slope/scl_inter patched into the header bytes (nibabel's
writer would otherwise choose its own scaling), then nibabel loads each file and its
`np.asanyarray(img.dataobj)`, `img.affine` and header fields become the expectations.

0-d images (dim[0] = 0, one element, as nibabel writes nilearn's `np.mean(img)`) are included;
their expectation is the stored element (see zero_d_value).

Output (deterministic; gzip members are written with mtime 0):
  target/goldens/nifti_fixtures/files/<case>.<ext>          the fixtures
  target/goldens/nifti_fixtures/expected/<case>.bin         dataobj values, little-endian, F order
  target/goldens/nifti_fixtures/manifest.json               one entry per case
Run from the repository root: .venv/bin/python scripts/gen/nifti_fixtures.py
"""

import gzip
import json
import math
import shutil
import struct
from pathlib import Path

import nibabel as nib
import numpy as np

OUT = Path("target/goldens/nifti_fixtures")
DTYPES = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float32", "float64"]
FORMATS = ["nii", "nii.gz", "hdr", "hdr.gz"]
SHAPES = [(3, 4, 5), (3, 4, 5, 2), (2, 3, 4, 1), (5, 4, 3, 2), (7, 5), (2, 3, 2, 2, 2)]
XFORMS = ["both", "sform", "qform", "neither"]
# (slope, inter) patched into scaled cases; (0, 7) and (nan, 1) mean "no scaling" to nibabel.
SCALINGS = [(2.5, -3.25), (1.0, 5.0), (0.0, 7.0), (float("nan"), 1.0), (-0.5, 0.0),
            (1.0, 0.0)]


def bits(value):
    """The IEEE bit pattern of a float64 (exact in JSON as an integer)."""
    return struct.unpack("<Q", struct.pack("<d", float(value)))[0]


def rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay),
                              math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_affine(idx, flip, shear=False):
    zooms = np.array([1.5, 2.0, 2.5]) + 0.25 * (idx % 3)
    rot = rotation(0.1 * (idx % 5), -0.2, 0.05 * (idx % 7))
    m = rot @ np.diag(zooms)
    if flip:
        m[:, 0] *= -1
    if shear:
        m[0, 1] += 0.3
    aff = np.eye(4)
    aff[:3, :3] = m
    aff[:3, 3] = [90.5 - idx, -126.25, -72.0 + 0.5 * idx]
    return aff


def make_data(dtype, shape, rng):
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind in "iu":
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dt)
        specials = [info.min, info.max, 0, 1] + ([-1] if dt.kind == "i" else [])
    else:
        data = (rng.standard_normal(n) * 1000).astype(dt)
        fi = np.finfo(dt)
        specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, fi.smallest_subnormal, fi.max, fi.tiny]
    if n >= len(specials):  # a 0-d image keeps its one ordinary value
        data[: len(specials)] = np.array(specials, dtype=dt)
    return data.reshape(shape, order="F")


def header_for(version, fmt, endian, dtype, shape, xform, idx):
    single = fmt.startswith("nii")
    klass = {
        (1, True): nib.Nifti1Header, (1, False): nib.nifti1.Nifti1PairHeader,
        (2, True): nib.Nifti2Header, (2, False): nib.nifti2.Nifti2PairHeader,
    }[(version, single)]
    hdr = klass(endianness=endian)
    hdr.set_data_dtype(np.dtype(dtype))
    hdr.set_data_shape(shape)
    zooms = [1.5, 2.0, 2.5, 2.0, 1.0, 1.0, 1.0][: len(shape)]
    hdr.set_zooms(zooms)
    if len(shape) >= 4:
        hdr.set_xyzt_units("mm", "sec")
    else:
        hdr.set_xyzt_units("mm")
    aff_q = make_affine(idx, flip=idx % 2 == 0)
    aff_s = make_affine(idx + 1, flip=idx % 2 == 1, shear=True)
    if xform == "both":
        hdr.set_qform(aff_q, code=1)
        hdr.set_sform(aff_s, code=4)
    elif xform == "sform":
        hdr.set_qform(aff_q, code=0)
        hdr.set_sform(aff_s, code=2)
    elif xform == "qform":
        hdr.set_qform(aff_q, code=1)
        hdr.set_sform(aff_s, code=0)
    else:
        hdr.set_qform(aff_q, code=0)
        hdr.set_sform(aff_s, code=0)
        hdr.set_zooms(zooms)
    hdr["descrip"] = f"voxcalc fixture {idx}".encode()
    hdr["intent_code"] = 0 if idx % 3 else 1001
    hdr["intent_name"] = b"" if idx % 3 else b"t-test"
    hdr["cal_min"] = -1.5 * (idx % 2)
    hdr["cal_max"] = 10.0 + idx
    hdr["slice_duration"] = 0.05 * (idx % 4)
    hdr["toffset"] = 0.25 * (idx % 3)
    hdr["dim_info"] = 57 if idx % 2 else 0
    if idx % 4 == 1:
        hdr.extensions.append(nib.nifti1.Nifti1Extension(6, f"comment {idx}".encode()))
    if idx % 8 == 3:
        hdr.extensions.append(nib.nifti1.Nifti1Extension(4, b"<AFNI attributes/>" * 3))
    return hdr


def file_paths(base, fmt):
    if fmt == "nii":
        return [base.with_name(base.name + ".nii")]
    if fmt == "nii.gz":
        return [base.with_name(base.name + ".nii.gz")]
    if fmt == "hdr":
        return [base.with_name(base.name + ".hdr"), base.with_name(base.name + ".img")]
    return [base.with_name(base.name + ".hdr.gz"), base.with_name(base.name + ".img.gz")]


def read_maybe_gz(path):
    raw = path.read_bytes()
    return (gzip.decompress(raw), True) if raw[:2] == b"\x1f\x8b" else (raw, False)


def write_maybe_gz(path, data, gz, members):
    if not gz:
        path.write_bytes(data)
        return
    # Deterministic gzip (mtime 0); some files are split into several members.
    step = max(1, -(-len(data) // members))
    out = b"".join(gzip.compress(data[i:i + step], compresslevel=1, mtime=0)
                   for i in range(0, len(data), step)) or gzip.compress(b"", mtime=0)
    path.write_bytes(out)


def patch_scaling(header_path, version, endian, slope, inter, members):
    data, gz = read_maybe_gz(header_path)
    data = bytearray(data)
    if version == 1:
        data[112:120] = struct.pack(endian + "ff", slope, inter)
    else:
        data[176:192] = struct.pack(endian + "dd", slope, inter)
    write_maybe_gz(header_path, bytes(data), gz, members)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "files").mkdir(parents=True)
    (OUT / "expected").mkdir()
    cases = []
    idx = 0
    for version in (1, 2):
        for fmt in FORMATS:
            dtypes = DTYPES if fmt != "hdr.gz" else ["int16", "float32", "uint64"]
            for dtype in dtypes:
                for endian in ("<", ">"):
                    for scaled in (False, True):
                        idx += 1
                        cases.append(write_case(idx, version, fmt, dtype, endian, scaled))
    # 0-d images (shape (), one voxel, dim[0] = 0), as nibabel writes nilearn's np.mean(img).
    for version in (1, 2):
        for fmt in FORMATS:
            for dtype, endian, scaled in (("float64", "<", False), ("int16", ">", True)):
                idx += 1
                cases.append(write_case(idx, version, fmt, dtype, endian, scaled, shape=()))
    (OUT / "manifest.json").write_text(json.dumps({"cases": cases}, indent=1))
    print(f"wrote {len(cases)} NIfTI fixtures to {OUT}")


def write_case(idx, version, fmt, dtype, endian, scaled, shape=None):
    rng = np.random.default_rng(idx)
    if shape is None:
        shape = SHAPES[idx % len(SHAPES)]
    xform = XFORMS[(idx // 2) % len(XFORMS)]
    name = f"n{version}_{fmt.replace('.', '')}_{dtype}_{'be' if endian == '>' else 'le'}_" \
           f"{'scaled' if scaled else 'plain'}{'_0d' if shape == () else ''}"
    base = OUT / "files" / name
    paths = file_paths(base, fmt)
    hdr = header_for(version, fmt, endian, dtype, shape, xform, idx)
    data = make_data(dtype, shape, rng)
    klass = {
        (1, True): nib.Nifti1Image, (1, False): nib.Nifti1Pair,
        (2, True): nib.Nifti2Image, (2, False): nib.Nifti2Pair,
    }[(version, fmt.startswith("nii"))]
    img = klass(data, None, header=hdr)
    img.to_filename(str(paths[0]))
    members = 1 + idx % 3
    if scaled:
        slope, inter = SCALINGS[idx % len(SCALINGS)]
        patch_scaling(paths[0], version, endian, slope, inter, members)
    for path in paths:
        data_bytes, gz = read_maybe_gz(path)
        if gz:
            write_maybe_gz(path, data_bytes, gz, members)

    loaded = nib.load(str(paths[0]))
    with np.errstate(over="ignore"):  # float64 max * 2.5 is inf, as intended
        arr = np.asanyarray(loaded.dataobj)
    if shape == ():
        arr = zero_d_value(loaded, paths)
    (OUT / "expected" / f"{name}.bin").write_bytes(
        arr.astype(arr.dtype.newbyteorder("<")).tobytes(order="F"))
    h = loaded.header
    # The loaded header has its scaling reset; the proxy holds what nibabel applied.
    slope, inter = float(loaded.dataobj.slope), float(loaded.dataobj.inter)
    raw_slope, raw_inter = read_raw_scaling(paths[0], version, endian)
    return {
        "name": name,
        "file": str(paths[0].relative_to(OUT)),
        "version": version,
        "format": fmt,
        "endian": "big" if endian == ">" else "little",
        "storage_dtype": dtype,
        "xform": xform,
        "dataobj_dtype": arr.dtype.name,
        "shape": list(arr.shape),
        "affine_bits": [bits(v) for v in loaded.affine.flatten()],
        "sform_code": int(h["sform_code"]),
        "qform_code": int(h["qform_code"]),
        "xyzt_units": int(h["xyzt_units"]),
        "pixdim_bits": [bits(v) for v in h["pixdim"]],
        # A 0-d image has no axes and so no zooms (nibabel's loader, reading shape (0,), says (1,)).
        "zooms_bits": [bits(v) for v in (h.get_zooms() if shape != () else ())],
        "descrip": h["descrip"].item().decode(),
        "intent_code": int(h["intent_code"]),
        "intent_name": h["intent_name"].item().decode(),
        "cal_min_bits": bits(h["cal_min"]),
        "cal_max_bits": bits(h["cal_max"]),
        "slice_duration_bits": bits(h["slice_duration"]),
        "toffset_bits": bits(h["toffset"]),
        "dim_info": int(h["dim_info"]),
        "raw_slope_bits": bits(raw_slope),
        "raw_inter_bits": bits(raw_inter),
        "slope_bits": bits(slope),
        "inter_bits": bits(inter),
        "extensions": [{"code": int(e.get_code()), "content_hex": e.get_content().hex()}
                       for e in h.extensions],
    }


def zero_d_value(loaded, paths):
    """The value of a 0-d image (dim[0] = 0) with nibabel's read scaling applied.

    nibabel writes a 0-d array as dim[0] = 0 followed by its one element, but its loader reads
    such a header as shape (0,) with no data. voxcalc reads the element as a 0-d image (shape
    (), one voxel), so the expectation is the stored element, scaled by nibabel's own rule.
    """
    h = loaded.header
    raw, _ = read_maybe_gz(paths[-1])
    offset = int(loaded.dataobj.offset)
    dtype = h.get_data_dtype()
    value = np.frombuffer(raw[offset:offset + dtype.itemsize], dtype=dtype).reshape(())
    scaled = nib.volumeutils.apply_read_scaling(value, loaded.dataobj.slope,
                                                loaded.dataobj.inter)
    return np.asarray(scaled)


def read_raw_scaling(header_path, version, endian):
    data, _ = read_maybe_gz(header_path)
    if version == 1:
        return struct.unpack(endian + "ff", data[112:120])
    return struct.unpack(endian + "dd", data[176:192])


if __name__ == "__main__":
    main()
