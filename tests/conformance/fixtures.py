"""Deterministic NIfTI fixtures for the conformance suite.

Every fixture is a tiny image (6x7x5 in 3-D, 6x7x5x4 in 4-D) written with nibabel, so that the
same file is read by nilearn (in-process) and by `voxcalc` (as a subprocess). Values are drawn
from a generator seeded by the fixture id, so the files are byte-identical from run to run.

The ids are what case files name in their `inputs` tables; `FIXTURES` lists them all.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE_3D = (6, 7, 5)
SHAPE_4D = (6, 7, 5, 4)
TR_SECONDS = 2.0

DTYPES = {
    "u8": np.uint8,
    "i8": np.int8,
    "u16": np.uint16,
    "i16": np.int16,
    "u32": np.uint32,
    "i32": np.int32,
    "u64": np.uint64,
    "i64": np.int64,
    "f32": np.float32,
    "f64": np.float64,
}


def _affine() -> np.ndarray:
    """An oblique 2 x 2 x 2.5 mm affine (rotation about z and x, non-zero origin).

    A non-trivial affine makes sure that implementations copy it rather than rebuild it, and
    that the qform (quaternion) and sform (matrix) paths are both exercised.
    """
    cz, sz = np.cos(0.2), np.sin(0.2)
    cx, sx = np.cos(-0.1), np.sin(-0.1)
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    aff = np.eye(4)
    aff[:3, :3] = rot_z @ rot_x @ np.diag([2.0, 2.0, 2.5])
    aff[:3, 3] = [-31.5, 17.25, -12.0]
    return aff


AFFINE = _affine()


def _rng(fixture_id: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(fixture_id.encode()))


def _values(fixture_id: str, dtype, shape, special: bool = True) -> np.ndarray:
    """Small values with a few special ones: 0, the extremes of the type, -1 and, for floats, -0.0,
    subnormals and huge magnitudes."""
    rng = _rng(fixture_id)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(0.0, 10.0, size=shape).round(3).astype(dt)
    elif dt.kind == "u":
        data = rng.integers(0, 61, size=shape).astype(dt)
    else:
        data = rng.integers(-30, 31, size=shape).astype(dt)
    flat = data.reshape(-1)
    if special:
        flat[0] = 0
        if dt.kind == "f":
            finfo = np.finfo(dt)
            big = 1e30 if dt == np.float32 else 1e300
            flat[1:7] = [-0.0, big, -big, finfo.tiny / 4, finfo.max / 2, 1.0]
        else:
            iinfo = np.iinfo(dt)
            flat[1] = iinfo.min
            flat[2] = iinfo.max
            flat[3] = iinfo.max - 1
            flat[4] = 1
            if dt.kind == "i":
                flat[5] = -1
                flat[6] = iinfo.min + 1
    return data


def _save(img, path: Path) -> None:
    img.to_filename(str(path))


def _img(data, affine=AFFINE, klass=nib.Nifti1Image, dtype=None, endianness=None):
    header = klass.header_class(endianness=endianness) if endianness else None
    img = klass(data, affine, header=header, dtype=dtype if dtype is not None else data.dtype)
    if data.ndim == 4:
        img.header.set_xyzt_units("mm", "sec")
        zooms = list(img.header.get_zooms())
        zooms[3] = TR_SECONDS
        img.header.set_zooms(zooms)
    return img


def _patch_scaling(path: Path, slope: float, inter: float) -> None:
    """Write scl_slope/scl_inter bytes directly, bypassing nibabel's normalisation, so that
    header values nibabel would never write itself (slope 1, slope 0) can be tested."""
    raw = bytearray(path.read_bytes())
    raw[112:120] = struct.pack("<ff", slope, inter)
    path.write_bytes(bytes(raw))


def _labels(fixture_id: str, values, shape=SHAPE_3D, dtype=np.int16) -> np.ndarray:
    """A label image: blocks of the grid take the given label values, in a fixed layout."""
    data = np.zeros(shape, dtype=dtype)
    h0, h1, h2 = (s // 2 for s in shape)
    blocks = [
        (slice(0, h0), slice(0, h1), slice(0, h2)),
        (slice(0, h0), slice(h1, None), slice(0, h2)),
        (slice(h0, None), slice(0, h1), slice(0, h2)),
        (slice(h0, None), slice(h1, None), slice(h2, None)),
        (slice(0, h0), slice(0, h1), slice(h2, None)),
        (slice(h0, None), slice(0, h1), slice(h2, None)),
    ]
    for value, block in zip(values, blocks):
        data[block] = value
    return data


def build(out_dir: Path) -> dict[str, Path]:
    """Writes every fixture under `out_dir` and returns id -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def put(fid: str, img, ext: str = ".nii") -> Path:
        path = out_dir / f"{fid}{ext}"
        _save(img, path)
        paths[fid] = path
        return path

    # Every dtype, 3-D and 4-D (the 4-D ones have TR 2 s and xyzt_units mm + s).
    for short, dt in DTYPES.items():
        put(short, _img(_values(short, dt, SHAPE_3D)))
        put(f"{short}_4d", _img(_values(f"{short}_4d", dt, SHAPE_4D)))
        # A second, independent operand of each dtype (no extremes, so that sums stay finite).
        put(f"{short}_b", _img(_values(f"{short}_b", dt, SHAPE_3D, special=False)))
        put(f"{short}_b4d", _img(_values(f"{short}_b4d", dt, SHAPE_4D, special=False)))
        # Strictly positive values (for log, sqrt, division by the image).
        pos = np.abs(_values(f"{short}_pos", dt, SHAPE_3D, special=False)) + dt(1)
        put(f"{short}_pos", _img(pos.astype(dt)))

    # NaN and +-inf in float images.
    for short in ("f32", "f64"):
        for suffix, shape in (("nan", SHAPE_3D), ("nan_4d", SHAPE_4D)):
            fid = f"{short}_{suffix}"
            data = _values(fid, DTYPES[short], shape, special=False)
            flat = data.reshape(-1)
            flat[[3, 11, 40]] = [np.nan, np.inf, -np.inf]
            if len(shape) == 4:
                flat[[100, 101, 102, 103]] = np.nan  # one full time series of NaN
            put(fid, _img(data))

    # Scaled images: nibabel gives float64 data whatever the stored type.
    for fid, dt, slope, inter, shape in (
        ("i16_scaled", np.int16, 2.0, -3.0, SHAPE_3D),
        ("i16_scaled_4d", np.int16, 0.5, 0.0, SHAPE_4D),
        ("u8_scaled", np.uint8, 0.25, 0.0, SHAPE_3D),
        ("u8_inter", np.uint8, 1.0, 10.0, SHAPE_3D),
        ("f32_scaled", np.float32, 3.0, 1.0, SHAPE_3D),
    ):
        img = _img(_values(fid, dt, shape, special=False))
        img.header.set_slope_inter(slope, inter)
        put(fid, img)
    # Header values nibabel normalises to "no scaling": slope 1 / inter 0 and slope 0 (any inter).
    for fid, slope, inter in (("i16_slope1", 1.0, 0.0), ("i16_slope0", 0.0, 3.0)):
        path = put(fid, _img(_values(fid, np.int16, SHAPE_3D)))
        _patch_scaling(path, slope, inter)

    # Big-endian storage.
    for fid, dt, shape in (
        ("i16_be", ">i2", SHAPE_3D),
        ("u16_be", ">u2", SHAPE_3D),
        ("i32_be_4d", ">i4", SHAPE_4D),
        ("i64_be", ">i8", SHAPE_3D),
        ("f32_be", ">f4", SHAPE_3D),
        ("f64_be_4d", ">f8", SHAPE_4D),
    ):
        native = np.dtype(dt).newbyteorder("=")
        data = _values(fid, native, shape)
        img = _img(data, endianness=">")
        put(fid, img)

    # NIfTI-2.
    put("f32_n2", _img(_values("f32_n2", np.float32, SHAPE_3D), klass=nib.Nifti2Image))
    put("i16_n2", _img(_values("i16_n2", np.int16, SHAPE_3D), klass=nib.Nifti2Image))
    put("f64_n2_4d", _img(_values("f64_n2_4d", np.float64, SHAPE_4D), klass=nib.Nifti2Image))

    # Gzipped.
    put("i16_gz", _img(_values("i16_gz", np.int16, SHAPE_3D)), ".nii.gz")
    put("u8_gz", _img(_values("u8_gz", np.uint8, SHAPE_3D)), ".nii.gz")
    put("f32_gz_4d", _img(_values("f32_gz_4d", np.float32, SHAPE_4D)), ".nii.gz")
    put("f32_n2_gz", _img(_values("f32_n2_gz", np.float32, SHAPE_3D), klass=nib.Nifti2Image), ".nii.gz")

    # Header codes: qform only, sform only (MNI), both, with TR in ms and a description.
    img = _img(_values("f32_qform", np.float32, SHAPE_3D))
    img.header.set_qform(AFFINE, code=1)
    img.header.set_sform(None, code=0)
    put("f32_qform", img)
    img = _img(_values("f32_sform", np.float32, SHAPE_3D))
    img.header.set_sform(AFFINE, code=4)
    img.header.set_qform(None, code=0)
    put("f32_sform", img)
    img = _img(_values("i16_both_4d", np.int16, SHAPE_4D))
    img.header.set_qform(AFFINE, code=1)
    img.header.set_sform(AFFINE, code=4)
    img.header.set_xyzt_units("mm", "msec")
    zooms = list(img.header.get_zooms())
    zooms[3] = 2500.0
    img.header.set_zooms(zooms)
    img.header["descrip"] = b"voxcalc conformance fixture"
    img.header["intent_code"] = 0
    put("i16_both_4d", img)
    img = _img(_values("f32_both", np.float32, SHAPE_3D))
    img.header.set_qform(AFFINE, code=1)
    img.header.set_sform(AFFINE, code=4)
    img.header["descrip"] = b"both codes"
    put("f32_both", img)

    # Masks (3-D, on the shared grid).
    mask = np.zeros(SHAPE_3D, dtype=np.uint8)
    mask[1:5, 1:6, 1:4] = 1
    put("mask", _img(mask))
    put("mask_f32", _img(mask.astype(np.float32)))
    put("mask_i16_gz", _img(mask.astype(np.int16)), ".nii.gz")

    # Geometry mismatches and near-matches.
    put("f32_shape676", _img(_values("f32_shape676", np.float32, (6, 7, 6))))
    put("f32_shape766_4d", _img(_values("f32_shape766_4d", np.float32, (7, 6, 6, 4))))
    put("f32_aff2", _img(_values("f32_aff2", np.float32, SHAPE_3D), affine=AFFINE * 2))
    shifted = AFFINE.copy()
    shifted[0, 3] += 1.0
    put("f32_shift", _img(_values("f32_shift", np.float32, SHAPE_3D), affine=shifted))
    close = AFFINE.copy()
    close[:3, :3] *= 1 + 2e-6  # within np.allclose (rtol 1e-5): accepted, but not equal
    put("f32_affclose", _img(_values("f32_affclose", np.float32, SHAPE_3D), affine=close))
    far = AFFINE.copy()
    far[:3, :3] *= 1 + 1e-3
    put("f32_afffar", _img(_values("f32_afffar", np.float32, SHAPE_3D), affine=far))
    put("f32_t3_4d", _img(_values("f32_t3_4d", np.float32, (*SHAPE_3D, 3))))
    put("f32_t1_4d", _img(_values("f32_t1_4d", np.float32, (*SHAPE_3D, 1))))
    put("i16_eye", _img(_values("i16_eye", np.int16, SHAPE_3D), affine=np.eye(4)))

    # nilearn test fixtures (image/tests/conftest.py): ones / zeros, identity affine, default
    # 4-D shape scaled down; the "tr2" variant has TR 2 s and an MNI sform.
    put("ones_4d", _img(np.ones(SHAPE_4D, dtype=np.float64), affine=np.eye(4)))
    put("zeros_4d", _img(np.zeros(SHAPE_4D, dtype=np.float64), affine=np.eye(4)))
    put("zeros_4d_big", _img(np.zeros((10, 20, 10, 4), dtype=np.float64), affine=np.eye(4)))
    put("ones_4d_aff2", _img(np.ones(SHAPE_4D, dtype=np.float64), affine=np.eye(4) * 2))
    img = _img(np.ones(SHAPE_4D, dtype=np.float64), affine=np.eye(4))
    img.header.set_sform(np.eye(4), code=4)
    img.header.set_qform(np.eye(4), code=4)
    put("ones_4d_tr2", img)
    put("ones_4d_default", nib.Nifti1Image(np.ones(SHAPE_4D, dtype=np.float64), np.eye(4)))
    put("shape2_eye", _img(_values("shape2_eye", np.float64, (2, 2, 2)), affine=np.eye(4)))
    put("shape2_eye_b", _img(_values("shape2_eye_b", np.float64, (2, 2, 2)), affine=np.eye(4)))
    put("shape2_eye2", _img(_values("shape2_eye2", np.float64, (2, 2, 2)), affine=np.eye(4) * 2))
    put("shape3_eye", _img(_values("shape3_eye", np.float64, (3, 3, 3)), affine=np.eye(4)))
    put("shape3_eye2", _img(_values("shape3_eye2", np.float64, (3, 3, 3)), affine=np.eye(4) * 2))
    # test_new_img_like_int64: a two-region label image stored as int32.
    put("labels2_i32", _img(_labels("labels2_i32", [1, 2], dtype=np.int32)))

    # Region fixtures: label atlases (3-D), and 4-D images to extract signals from.
    put("labels", _img(_labels("labels", [1, 2, 3, 5, 7, 9])))
    put("labels_gz", _img(_labels("labels_gz", [1, 2, 3, 5, 7, 9])), ".nii.gz")
    put("labels_neg", _img(_labels("labels_neg", [-3, -1, 2, 4, 6, 8])))
    put("labels_f32", _img(_labels("labels_f32", [1, 2, 3, 4, 5, 6], dtype=np.float32)))
    put("labels_i32_big", _img(_labels("labels_i32_big", [100, 150, 200, 256, 300, 400], dtype=np.int32)))
    put("labels_4d", _img(np.stack([_labels("labels_4d", [1, 2, 3])] * 2, axis=-1)))
    put("labels_shape676", _img(_labels("labels_shape676", [1, 2, 3], shape=(6, 7, 6))))
    put("labels_aff2", _img(_labels("labels_aff2", [1, 2, 3]), affine=AFFINE * 2))
    put("labels_n2", _img(_labels("labels_n2", [1, 2, 3, 4]), klass=nib.Nifti2Image))
    mask_three = np.isin(_labels("x", [1, 2, 3, 5, 7, 9]), [1, 2, 7]).astype(np.int8)
    put("mask_three", _img(mask_three))
    put("mask_empty", _img(np.zeros(SHAPE_3D, dtype=np.uint8)))
    put("mask_4d", _img(np.ones(SHAPE_4D, dtype=np.uint8)))
    put("mask_shape676", _img(np.ones((6, 7, 6), dtype=np.uint8)))
    put("mask_aff2", _img(np.ones(SHAPE_3D, dtype=np.uint8), affine=AFFINE * 2))
    for short in ("f32", "f64", "i16"):
        fid = f"series_{short}"
        put(fid, _img(_values(fid, DTYPES[short], (*SHAPE_3D, 5), special=False)))
    put("series_f32_gz", _img(_values("series_f32_gz", np.float32, (*SHAPE_3D, 5), special=False)), ".nii.gz")
    data = _values("series_f64_nan", np.float64, (*SHAPE_3D, 5), special=False)
    data[0, 0, 0, :] = np.nan
    data[5, 6, 4, 2] = np.inf
    put("series_f64_nan", _img(data))
    put("series_t1", _img(_values("series_t1", np.float32, (*SHAPE_3D, 1), special=False)))
    put("series_3d", _img(_values("series_3d", np.float32, SHAPE_3D, special=False)))
    return paths


FIXTURES_PREFIX = "fixtures"
