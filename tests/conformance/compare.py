"""Comparison of voxcalc's outputs with nilearn's: header fields, on-disk dtype and values.

Each function returns a list of human-readable differences (empty when the outputs agree).
The bounds are stated here once and selected per case (the `tol` key of a case or its file's
`[defaults]`): nothing is loosened globally.
"""

from __future__ import annotations

import numpy as np

# The sform is stored as float32: an affine is equal when every element is within one float32
# ULP (relative 2**-23) plus 1e-7 absolute (for elements that are 0 in one and tiny in the other,
# as a qform-derived rotation gives).
AFFINE_RTOL = 2.0**-23
AFFINE_ATOL = 1e-7
# pixdim[1:4] (voxel sizes) are derived from the affine in float64 and stored as float32.
PIXDIM_RTOL = 1e-6


def _fmt(value) -> str:
    return np.array2string(np.asarray(value), precision=9, separator=",", max_line_width=200)


def _close(a, b, rtol, atol) -> bool:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return bool(np.all(np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b))))


def _same_float(a, b) -> bool:
    a = np.float64(a)
    b = np.float64(b)
    return (np.isnan(a) and np.isnan(b)) or a == b


def header_diffs(exp_img, act_img, *, exp_datatype: int, copied_header: bool) -> list[str]:
    """Differences in the fields the suite compares: NIfTI version, shape (dim), datatype,
    affine, sform/qform codes and matrices, pixdim, xyzt_units, cal_min/cal_max, scaling and,
    when a header was copied, descrip."""
    he, ha = exp_img.header, act_img.header
    diffs = []
    if int(he["sizeof_hdr"]) != int(ha["sizeof_hdr"]):
        diffs.append(f"NIfTI version: expected sizeof_hdr {int(he['sizeof_hdr'])}, got {int(ha['sizeof_hdr'])}")
        return diffs
    n_exp, n_act = int(he["dim"][0]), int(ha["dim"][0])
    if n_exp != n_act or list(he["dim"][1 : n_exp + 1]) != list(ha["dim"][1 : n_act + 1]):
        diffs.append(f"dim: expected {list(he['dim'][: n_exp + 1])}, got {list(ha['dim'][: n_act + 1])}")
    if int(ha["datatype"]) != exp_datatype:
        diffs.append(f"datatype: expected {exp_datatype} ({_dtype_name(exp_datatype)}), got {int(ha['datatype'])} ({_dtype_name(int(ha['datatype']))})")
    if not _close(exp_img.affine, act_img.affine, AFFINE_RTOL, AFFINE_ATOL):
        diffs.append(f"affine: expected {_fmt(exp_img.affine)}, got {_fmt(act_img.affine)}")
    for code in ("sform_code", "qform_code"):
        if int(he[code]) != int(ha[code]):
            diffs.append(f"{code}: expected {int(he[code])}, got {int(ha[code])}")
    if int(he["sform_code"]) > 0 and int(he["sform_code"]) == int(ha["sform_code"]):
        if not _close(he.get_sform(), ha.get_sform(), AFFINE_RTOL, AFFINE_ATOL):
            diffs.append(f"sform matrix: expected {_fmt(he.get_sform())}, got {_fmt(ha.get_sform())}")
    if int(he["qform_code"]) > 0 and int(he["qform_code"]) == int(ha["qform_code"]):
        if not _close(he.get_qform(), ha.get_qform(), AFFINE_RTOL, AFFINE_ATOL):
            diffs.append(f"qform matrix: expected {_fmt(he.get_qform())}, got {_fmt(ha.get_qform())}")
    pe, pa = np.asarray(he["pixdim"], np.float64), np.asarray(ha["pixdim"], np.float64)
    if pe[0] != pa[0] or not _close(pe[1:4], pa[1:4], PIXDIM_RTOL, 0.0) or list(pe[4:]) != list(pa[4:]):
        diffs.append(f"pixdim: expected {_fmt(pe)}, got {_fmt(pa)}")
    if int(he["xyzt_units"]) != int(ha["xyzt_units"]):
        diffs.append(f"xyzt_units: expected {int(he['xyzt_units'])}, got {int(ha['xyzt_units'])}")
    for cal in ("cal_min", "cal_max"):
        if not _same_float(he[cal], ha[cal]):
            diffs.append(f"{cal}: expected {float(he[cal])!r}, got {float(ha[cal])!r}")
    if act_img.header.get_slope_inter() != (None, None):
        diffs.append(f"output is scaled (scl_slope, scl_inter) = {act_img.header.get_slope_inter()}")
    if copied_header and bytes(he["descrip"]) != bytes(ha["descrip"]):
        diffs.append(f"descrip: expected {bytes(he['descrip'])!r}, got {bytes(ha['descrip'])!r}")
    return diffs


def _dtype_name(code: int) -> str:
    import nibabel as nib

    try:
        return str(nib.nifti1.data_type_codes.dtype[code])
    except KeyError:
        return "unknown"


def _ordered(values: np.ndarray) -> np.ndarray:
    """Maps floats to integers whose order and differences count ULPs (sign-magnitude to
    two's complement)."""
    if values.dtype == np.float32:
        ints = values.view(np.int32).astype(np.int64)
        return np.where(ints < 0, np.int64(-(2**31)) - ints, ints)
    ints = values.astype(np.float64).view(np.int64)
    # Python ints: the distance between float64 values can exceed the int64 range.
    return np.where(ints < 0, np.iinfo(np.int64).min - ints, ints)


def describe_tol(tol) -> str:
    if tol == "exact":
        return "exact"
    return ", ".join(f"{k}={v}" for k, v in tol.items())


def value_diffs(expected: np.ndarray, actual: np.ndarray, tol) -> list[str]:
    """Compares values: integers and booleans exactly whatever `tol` says; floats by `tol`
    ("exact": equal including the sign of zero; {ulp = n}; {rtol = r, atol = a}), with NaN at the
    same positions and infinities equal."""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    if expected.shape != actual.shape:
        return [f"value shape: expected {expected.shape}, got {actual.shape}"]
    if expected.size == 0:
        return []
    if expected.dtype.kind in "biu" or actual.dtype.kind in "biu":
        bad = expected.astype(object) != actual.astype(object) if expected.dtype.kind != actual.dtype.kind else expected != actual
        return _report(bad, expected, actual, "exact (integer)")
    exp = expected.astype(actual.dtype if actual.dtype.kind == "f" else np.float64, copy=False)
    act = actual
    nan_e, nan_a = np.isnan(exp), np.isnan(act)
    diffs = []
    if np.any(nan_e != nan_a):
        diffs += _report(nan_e != nan_a, exp, act, "NaN positions")
    both = ~(nan_e | nan_a)
    inf_bad = both & (np.isinf(exp) | np.isinf(act)) & (exp != act)
    if np.any(inf_bad):
        diffs += _report(inf_bad, exp, act, "infinities")
    finite = both & np.isfinite(exp) & np.isfinite(act)
    if tol == "exact":
        bad = finite & ((exp != act) | (np.signbit(exp) != np.signbit(act)))
        what = "exact"
    elif "ulp" in tol:
        if exp.dtype != act.dtype or exp.dtype not in (np.float32, np.float64):
            exp = exp.astype(act.dtype)
        dist = np.abs(_ordered(exp).astype(object) - _ordered(act).astype(object)) if exp.dtype == np.float64 else np.abs(_ordered(exp) - _ordered(act))
        bad = finite & np.asarray(dist > int(tol["ulp"]), dtype=bool)
        what = f"ulp<={tol['ulp']}"
    else:
        rtol, atol = float(tol.get("rtol", 0.0)), float(tol.get("atol", 0.0))
        e64, a64 = exp.astype(np.float64), act.astype(np.float64)
        with np.errstate(all="ignore"):
            bad = finite & ~(np.abs(e64 - a64) <= atol + rtol * np.abs(e64))
        what = f"rtol={rtol}, atol={atol}"
    if np.any(bad):
        diffs += _report(bad, exp, act, what)
    return diffs


def _report(bad: np.ndarray, exp: np.ndarray, act: np.ndarray, what: str) -> list[str]:
    bad = np.asarray(bad, dtype=bool)
    if not np.any(bad):
        return []
    idx = tuple(int(i[0]) for i in np.nonzero(bad)) if bad.ndim else ()
    n_bad = int(np.count_nonzero(bad))
    e = exp[idx] if exp.ndim else exp[()]
    a = act[idx] if act.ndim else act[()]
    return [f"values ({what}): {n_bad} of {bad.size} differ; first at {idx}: expected {e!r}, got {a!r}"]
