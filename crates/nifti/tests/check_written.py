"""Checks images written by voxcalc-nifti against nibabel (run by tests/nibabel_reads_ours.rs).

For each manifest entry it loads voxcalc's file with nibabel and compares, with the image that
nibabel (fresh header: `Nifti{1,2}Image(data, affine)`) or nilearn (copied header: `new_img_like`
with `copy_header=True`, datatype set to the result's as voxcalc deliberately does) would write
from the same data:
  - the values and the on-disk datatype (no scaling may be applied),
  - the affine, the qform matrix and every header field (bit for bit, except the quaternion
    parameters, which may differ in sign when the rotation is 180 degrees and are checked through
    the qform matrix instead),
  - the extensions, the magic and vox_offset.
Prints one line per mismatch and "N files match" when all do; exits 1 on any mismatch.
Usage: python check_written.py manifest.json
"""

import json
import struct
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

SKIP_EXACT = {"quatern_b", "quatern_c", "quatern_d", "pixdim"}


def from_bits(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def expected_data(entry):
    dtype = np.dtype(entry["dtype"]).newbyteorder("<")
    raw = np.frombuffer(Path(entry["data"]).read_bytes(), dtype=dtype)
    return raw.astype(raw.dtype.newbyteorder("=")).reshape(entry["shape"], order="F")


def reference_image(entry, data, tmp):
    """The image nibabel/nilearn would write for this entry, saved and loaded back."""
    single = entry["file"].endswith((".nii", ".nii.gz"))
    klass = {
        (1, True): nib.Nifti1Image, (1, False): nib.Nifti1Pair,
        (2, True): nib.Nifti2Image, (2, False): nib.Nifti2Pair,
    }[(entry["version"], single)]
    if entry["policy"] == "fresh":
        affine = np.array([from_bits(b) for b in entry["affine_bits"]]).reshape(4, 4)
        img = klass(data, affine, dtype=data.dtype)
    else:
        source = nib.load(entry["source"])
        header = source.header.copy()
        # nilearn.image.new_img_like(copy_header=True) resets, as of nilearn 0.14.
        header["scl_slope"] = 0.0
        header["scl_inter"] = 0.0
        if "glmax" in header:
            header["glmax"] = 0.0
        header["cal_max"] = np.max(data) if data.size > 0 else 0.0
        header["cal_min"] = np.min(data) if data.size > 0 else 0.0
        header.set_data_dtype(data.dtype)  # voxcalc's deliberate deviation (docs/compat.md)
        img = klass(data, source.affine, header=header)
    path = Path(tmp) / ("ref.nii" if single else "ref.hdr")
    img.to_filename(str(path))
    return nib.load(str(path))


def native(a):
    a = np.asarray(a)
    return a.astype(a.dtype.newbyteorder("="))


def same_bytes(a, b):
    """Bit-for-bit equality of values (NaN payloads and -0 included), in native byte order:
    voxcalc always writes natively, nibabel keeps a copied big-endian header big-endian."""
    return native(a).tobytes() == native(b).tobytes()


def check(entry, tmp):
    problems = []
    name = Path(entry["file"]).name
    try:
        ours = nib.load(entry["file"])
    except Exception as error:  # noqa: BLE001 - any load failure is a finding
        return [f"{name}: nibabel cannot load it: {error}"]
    data = expected_data(entry)
    if ours.get_data_dtype() != np.dtype(entry["dtype"]):
        problems.append(f"{name}: datatype {ours.get_data_dtype()} != {entry['dtype']}")
    values = np.asanyarray(ours.dataobj)
    if values.dtype != data.dtype:
        problems.append(f"{name}: dataobj dtype {values.dtype} != {data.dtype}")
    if values.shape != data.shape:
        problems.append(f"{name}: shape {values.shape} != {data.shape}")
    elif not np.array_equal(values, data, equal_nan=data.dtype.kind == "f") or not same_bytes(
        np.signbit(values) if data.dtype.kind == "f" else values,
        np.signbit(data) if data.dtype.kind == "f" else data,
    ):
        problems.append(f"{name}: values differ")

    ref = reference_image(entry, data, tmp)
    if not same_bytes(ours.affine, ref.affine):
        problems.append(f"{name}: affine\n{ours.affine}\n!=\n{ref.affine}")
    if not np.allclose(ours.header.get_qform(), ref.header.get_qform(), rtol=0, atol=2e-6):
        problems.append(f"{name}: qform\n{ours.header.get_qform()}\n!=\n{ref.header.get_qform()}")
    hours, href = ours.header, ref.header
    for key in href.keys():
        if key in SKIP_EXACT:
            continue
        if key in ("magic", "vox_offset") and not entry["file"].endswith((".nii", ".nii.gz")):
            continue  # the reference is a single file only for single-file outputs
        if not same_bytes(hours[key], href[key]):
            problems.append(f"{name}: header {key} {hours[key]!r} != {href[key]!r}")
    # pixdim[0] (qfac) and the voxel sizes are exact; the quaternion is checked via the qform.
    if not same_bytes(hours["pixdim"][4:], href["pixdim"][4:]):
        problems.append(f"{name}: pixdim[4:] {hours['pixdim']} != {href['pixdim']}")
    tol = 1e-6 if entry["version"] == 1 else 1e-12
    if not np.allclose(hours["pixdim"][:4], href["pixdim"][:4], rtol=tol, atol=0):
        problems.append(f"{name}: pixdim[:4] {hours['pixdim']} != {href['pixdim']}")
    ours_ext = [(e.get_code(), e.get_content()) for e in hours.extensions]
    ref_ext = [(e.get_code(), e.get_content()) for e in href.extensions]
    if ours_ext != ref_ext:
        problems.append(f"{name}: extensions {ours_ext} != {ref_ext}")
    return problems


def main():
    entries = json.loads(Path(sys.argv[1]).read_text())
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for entry in entries:
            problems.extend(check(entry, tmp))
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} mismatches in {len(entries)} files")
        sys.exit(1)
    print(f"{len(entries)} files match")


if __name__ == "__main__":
    main()
