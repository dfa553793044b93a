"""Fixtures and nilearn 0.14 expectations for crates/regions/tests/nilearn.rs.

Usage: nilearn_cases.py OUTDIR. Writes small images (nibabel), signals (.npy) and, for every case,
what nilearn's signals_to_img_labels / img_to_signals_labels return (or the exception class it
raises), plus OUTDIR/manifest.tsv: one case per line, `key=value` fields separated by tabs.
Deterministic (seeded) and fast (tiny images).
"""

import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn.regions import img_to_signals_labels, signals_to_img_labels

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(20260701)
SHAPE = (7, 6, 5)
AFFINE = np.array(
    [[-2.0, 0.1, 0.0, 90.0], [0.0, 2.0, 0.2, -126.0], [0.0, 0.0, 2.5, -72.0], [0, 0, 0, 1]]
)
lines = []


def save(name, data, affine=AFFINE, ext=".nii", dtype=None, klass=nib.Nifti1Image, scaling=None):
    img = klass(data, affine)
    if dtype is not None:
        img.set_data_dtype(dtype)
    if scaling is not None:
        img.header.set_slope_inter(*scaling)
    path = out / f"{name}{ext}"
    img.to_filename(path)
    return path.name


def labels_data(values, shape=SHAPE, dtype=np.int16):
    return rng.choice(np.array(values), size=shape).astype(dtype)


fx = {}
fx["labels"] = save("labels", labels_data([0, 0, 1, 2, 3, 5, 7]))
fx["labels_gz"] = save("labels_gz", labels_data([0, 1, 2, 4]), ext=".nii.gz")
fx["labels_neg"] = save("labels_neg", labels_data([-3, -1, 0, 2, 4]))
fx["labels_f32"] = save("labels_f32", labels_data([0, 1.5, 2, 3.25], dtype=np.float32))
fx["labels_u8"] = save("labels_u8", labels_data([0, 10, 200, 255], dtype=np.uint8))
fx["labels_i32_big"] = save("labels_i32_big", labels_data([0, 100, 256, 400, 70000], dtype=np.int32))
fx["labels_be"] = save("labels_be", labels_data([0, 1, 2, 3]), dtype=np.dtype(">i2"))
fx["labels_n2"] = save("labels_n2", labels_data([0, 1, 2, 3]), klass=nib.Nifti2Image)
fx["labels_scaled"] = save("labels_scaled", labels_data([0, 1, 2, 3]), scaling=(2.0, 1.0))
lab_nan = labels_data([0, 1, 2, 3], dtype=np.float32)
lab_nan[0, 0, :2] = np.nan
lab_nan[1, 0, 0] = np.inf
fx["labels_nan"] = save("labels_nan", lab_nan)
fx["labels_4d1"] = save("labels_4d1", labels_data([0, 1, 2, 3])[..., None])
fx["labels_4d"] = save("labels_4d", labels_data([0, 1, 2, 3], shape=(*SHAPE, 2)))
fx["labels_only_bg"] = save("labels_only_bg", np.zeros(SHAPE, dtype=np.int16))
mask = np.zeros(SHAPE, dtype=np.uint8)
mask[1:6, 1:5, 1:4] = 1
fx["mask"] = save("mask", mask)
fx["mask_f64"] = save("mask_f64", mask * rng.uniform(0.5, 2.0, size=SHAPE))
fx["mask_gz"] = save("mask_gz", mask.astype(np.int16), ext=".nii.gz")
fx["mask_4d"] = save("mask_4d", np.ones((*SHAPE, 2), dtype=np.uint8))
fx["mask_4d1"] = save("mask_4d1", mask[..., None])
fx["mask_shape"] = save("mask_shape", np.ones((7, 6, 6), dtype=np.uint8))
fx["mask_aff2"] = save("mask_aff2", mask, affine=AFFINE * 2)
close = AFFINE.copy()
close[0, 3] += 5e-5
fx["mask_affclose"] = save("mask_affclose", mask, affine=close)
far = AFFINE.copy()
far[0, 3] += 5e-4
fx["mask_afffar"] = save("mask_afffar", mask, affine=far)
fx["mask_empty"] = save("mask_empty", np.zeros(SHAPE, dtype=np.uint8))
mask_labelled = np.isin(np.asanyarray(nib.load(out / fx["labels"]).dataobj), [1, 2])
fx["mask_two"] = save("mask_two", mask_labelled.astype(np.int8))

# Series for img_to_signals.
T = 6
fx["series_f32"] = save("series_f32", rng.normal(100, 20, size=(*SHAPE, T)).astype(np.float32))
fx["series_f32_gz"] = save(
    "series_f32_gz", rng.normal(100, 20, size=(*SHAPE, T)).astype(np.float32), ext=".nii.gz"
)
fx["series_f64"] = save("series_f64", rng.normal(0, 1, size=(*SHAPE, T)))
fx["series_i16"] = save("series_i16", rng.integers(-3000, 3000, size=(*SHAPE, T)).astype(np.int16))
fx["series_u8"] = save("series_u8", rng.integers(0, 255, size=(*SHAPE, T)).astype(np.uint8))
fx["series_scaled"] = save(
    "series_scaled", rng.integers(-300, 300, size=(*SHAPE, T)).astype(np.int16), scaling=(0.5, 3.0)
)
fx["series_be"] = save("series_be", rng.normal(0, 1, size=(*SHAPE, T)), dtype=np.dtype(">f8"))
nan_data = rng.normal(5, 1, size=(*SHAPE, T))
nan_data[2, 2, 2, :] = np.nan
nan_data[3, 1, 2, 1] = np.inf
nan_data[4, 4, 1, 3] = -np.inf
fx["series_nan"] = save("series_nan", nan_data)
fx["series_t1"] = save("series_t1", rng.normal(0, 1, size=(*SHAPE, 1)).astype(np.float32))
fx["series_3d"] = save("series_3d", rng.normal(0, 1, size=SHAPE).astype(np.float32))
fx["series_aff2"] = save("series_aff2", rng.normal(0, 1, size=(*SHAPE, T)), affine=AFFINE * 2)
fx["series_shape"] = save("series_shape", rng.normal(0, 1, size=(7, 6, 6, T)))


def labels_after_mask(labels, mask, background):
    lab = np.asanyarray(nib.load(out / fx[labels]).dataobj).astype(np.float64)
    if lab.ndim == 4 and lab.shape[3] == 1:
        lab = lab[..., 0]
    if lab.ndim != 3:
        return [1.0, 2.0, 3.0]
    lab[~np.isfinite(lab)] = 0
    if mask:
        m = np.asanyarray(nib.load(out / fx[mask]).dataobj)
        if m.ndim == 4 and m.shape[3] == 1:
            m = m[..., 0]
        if m.shape != lab.shape:
            return [1.0, 2.0, 3.0]
        lab[np.logical_not(m)] = background
    labels = [v for v in np.unique(lab).tolist() if v != background]
    return labels or [1.0, 2.0, 3.0]


def fields(**kw):
    return "\t".join(f"{k}={v}" for k, v in kw.items() if v is not None)


def run(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return func(*args, **kwargs), None
        except Exception as exc:  # noqa: BLE001
            return None, type(exc).__name__


n_case = 0


def s2i(labels, dtype="float64", ndim=2, mask=None, background=0, order="F", columns=0,
        times=4, layout="C", byteorder="<"):
    global n_case
    n_case += 1
    cid = f"s2i_{n_case:03d}"
    labs = labels_after_mask(labels, mask, background)
    n_cols = len(labs) + columns
    shape = (n_cols,) if ndim == 1 else (times, n_cols)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        sig = (rng.normal(0.0, 50.0, size=shape) + 0.123456789).astype(dt)
    else:
        sig = rng.integers(-1000, 1000, size=shape).astype(dt)
    stored = sig.astype(dt.newbyteorder(byteorder))
    stored = np.asfortranarray(stored) if layout == "F" else np.ascontiguousarray(stored)
    np.save(out / f"{cid}_signals.npy", stored)
    kwargs = {"background_label": background, "order": order}
    if mask:
        kwargs["mask_img"] = str(out / fx[mask])
    img, err = run(signals_to_img_labels, sig, str(out / fx[labels]), **kwargs)
    desc = fields(kind="s2i", id=cid, labels=fx[labels], mask=fx.get(mask), background=background,
                  order=order, signals=f"{cid}_signals.npy")
    if err:
        lines.append(desc + f"\terror={err}")
        return
    data = np.asanyarray(img.dataobj)
    np.save(out / f"{cid}_expected.npy", data.ravel(order="F"))
    np.save(out / f"{cid}_affine.npy", img.affine)
    lines.append(desc + "\t" + fields(expected=f"{cid}_expected.npy", affine=f"{cid}_affine.npy",
                                      shape=",".join(map(str, data.shape)), dtype=data.dtype.name))


def i2s(img, labels="labels", mask=None, background=0):
    global n_case
    n_case += 1
    cid = f"i2s_{n_case:03d}"
    kwargs = {"background_label": background}
    if mask:
        kwargs["mask_img"] = str(out / fx[mask])
    res, err = run(img_to_signals_labels, str(out / fx[img]), str(out / fx[labels]), **kwargs)
    desc = fields(kind="i2s", id=cid, img=fx[img], labels=fx[labels], mask=fx.get(mask),
                  background=background)
    if err:
        lines.append(desc + f"\terror={err}")
        return
    signals, labs, _ = res
    np.save(out / f"{cid}_expected.npy", np.ascontiguousarray(signals))
    lines.append(desc + "\t" + fields(expected=f"{cid}_expected.npy",
                                      labels_out=",".join(repr(float(v)) for v in labs),
                                      dtype=signals.dtype.name))


# signals_to_img: every dtype, 1-D and 2-D, with and without mask, background 0 and not, negative
# labels, order F and C, .nii and .nii.gz, stored C/F and little/big-endian.
for dtype in ["float32", "float64", "int16", "int32"]:
    for ndim in [1, 2]:
        s2i("labels", dtype, ndim)
        s2i("labels", dtype, ndim, mask="mask")
        s2i("labels", dtype, ndim, background=3)
        s2i("labels_neg", dtype, ndim, background=-1)
        s2i("labels_neg", dtype, ndim, mask="mask_gz")
        s2i("labels_gz", dtype, ndim, order="C")
        s2i("labels", dtype, ndim, order="C", layout="F")
        s2i("labels_f32", dtype, ndim, byteorder=">")
for dtype in ["int8", "uint8", "uint16", "uint32", "int64"]:
    s2i("labels", dtype)
s2i("labels", "float32", times=1)
s2i("labels", "float64", times=1, order="C")
s2i("labels", "float64", mask="mask_f64")
s2i("labels", "float64", mask="mask_two")
s2i("labels", "float64", mask="mask_4d1")
s2i("labels", "float64", mask="mask_affclose")
s2i("labels", "float64", background=2, mask="mask_two")
s2i("labels_neg", "float32", background=0, mask="mask")
s2i("labels_u8", "float32")
s2i("labels_i32_big", "float32")
s2i("labels_be", "int16")
s2i("labels_n2", "float64")
s2i("labels_scaled", "float64")
s2i("labels_nan", "float64")
s2i("labels_nan", "float64", background=1)
s2i("labels_4d1", "float32")
s2i("labels_f32", "float64", background=1.5)
s2i("labels", "float64", times=40, layout="F")
# Errors nilearn raises.
s2i("labels_4d")
s2i("labels", mask="mask_4d")
s2i("labels", mask="mask_shape")
s2i("labels", mask="mask_aff2")
s2i("labels", mask="mask_afffar")
s2i("labels", mask="mask_empty")
s2i("labels", columns=-1)
s2i("labels", ndim=1, columns=-2)

# img_to_signals
for img in ["series_f32", "series_f32_gz", "series_f64", "series_i16", "series_u8",
            "series_scaled", "series_be", "series_nan", "series_t1"]:
    i2s(img)
i2s("series_f64", mask="mask")
i2s("series_f32", mask="mask_two")
i2s("series_nan", mask="mask_f64")
i2s("series_f64", background=2)
i2s("series_f64", labels="labels_neg", background=-3)
i2s("series_f64", labels="labels_neg", mask="mask_gz", background=0)
i2s("series_f64", labels="labels_f32")
i2s("series_i16", labels="labels_i32_big")
i2s("series_f64", labels="labels_nan")
i2s("series_f64", labels="labels_4d1")
i2s("series_f64", mask="mask_affclose")
i2s("series_3d")
i2s("series_f64", labels="labels_4d")
i2s("series_f64", mask="mask_4d")
i2s("series_aff2")
i2s("series_shape")
i2s("series_f64", mask="mask_shape")
i2s("series_f64", mask="mask_aff2")
i2s("series_f64", mask="mask_empty")

(out / "manifest.tsv").write_text("\n".join(lines) + "\n")
print(f"{len(lines)} cases")
