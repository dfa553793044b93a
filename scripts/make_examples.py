#!/usr/bin/env python3
"""Writes the example images shipped in examples/ (synthetic, deterministic, < 2 MB in all).

    .venv/bin/python scripts/make_examples.py          # from the repository root

Outputs (all on a shared field of view, 96 x 112 x 96 mm, slightly rotated and offset):
  examples/anat.nii.gz       48x56x48 int16, 2 mm: a head-like volume (scalp, skull, CSF, grey
                             and white matter) with T1-like contrast.
  examples/bold.nii.gz       24x28x24x40 int16, 4 mm, TR 2.0 s (xyzt_units mm + s): baseline from
                             the tissue, a block design (20 s off / 20 s on) in the occipital
                             regions, slow drift and thermal noise.
  examples/mask.nii.gz       24x28x24 uint8 brain mask on the bold grid.
  examples/atlas.nii.gz      24x28x24 int16 label atlas on the bold grid: 6 regions (1..6).
  examples/atlas_labels.tsv  index and name of each atlas region.
  examples/signals.tsv       40 x 6 region mean time series of bold.nii.gz through the atlas, with
                             a header row of label values (the format `voxcalc img-to-signals`
                             writes and `voxcalc signals-to-img` reads).
Only numpy and nibabel are needed; the random generator is seeded, and gzip streams carry no
timestamp, so the files are byte-identical from run to run.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples"
SEED = 20240611

ANAT_SHAPE = (48, 56, 48)
BOLD_SHAPE = (24, 28, 24)
N_VOLUMES = 40
TR = 2.0
REGION_NAMES = [
    "left frontal",
    "right frontal",
    "left parietal",
    "right parietal",
    "left occipital",
    "right occipital",
]


def affine_for(voxel_mm: float) -> np.ndarray:
    """A 5-degree pitch, RAS orientation and a field of view centred near the origin."""
    angle = np.deg2rad(5.0)
    rot = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    )
    aff = np.eye(4)
    aff[:3, :3] = rot * voxel_mm
    # Centre of the 96 x 112 x 96 mm box at (0, -18, 10) mm.
    centre_vox = (np.array([96.0, 112.0, 96.0]) / voxel_mm - 1) / 2
    aff[:3, 3] = np.array([0.0, -18.0, 10.0]) - aff[:3, :3] @ centre_vox
    return aff


def normalised_coords(shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel centres in [-1, 1] along each axis (x left-right, y posterior-anterior, z inferior-superior)."""
    axes = [(np.arange(n) + 0.5) / n * 2 - 1 for n in shape]
    return np.meshgrid(*axes, indexing="ij")


def tissue_maps(shape) -> dict[str, np.ndarray]:
    """Boolean maps of nested ellipsoids: head, skull, CSF, brain, white matter, ventricles."""
    x, y, z = normalised_coords(shape)
    # A slightly egg-shaped head, wider at the back.
    r = np.sqrt((x / 0.78) ** 2 + ((y + 0.05) / 0.92) ** 2 + ((z + 0.05) / 0.85) ** 2 * (1 + 0.08 * y))
    ventricles = (np.abs(x) > 0.04) & (np.sqrt((np.abs(x) - 0.12) ** 2 / 0.06**2 + (y + 0.05) ** 2 / 0.3**2 + (z - 0.05) ** 2 / 0.12**2) < 1)
    return {
        "head": r < 1.0,
        "skull": (r >= 0.88) & (r < 0.95),
        "csf": (r >= 0.80) & (r < 0.88),
        "brain": r < 0.80,
        "white": r < 0.60,
        "ventricles": ventricles & (r < 0.6),
    }


def make_anat(rng: np.random.Generator) -> nib.Nifti1Image:
    t = tissue_maps(ANAT_SHAPE)
    data = np.zeros(ANAT_SHAPE)
    data[t["head"]] = 900.0  # scalp and fat: bright on T1
    data[t["skull"]] = 150.0
    data[t["csf"]] = 250.0
    data[t["brain"]] = 600.0  # grey matter
    data[t["white"]] = 850.0
    data[t["ventricles"]] = 250.0
    # A smooth bias field and noise, as a scanner gives.
    x, y, z = normalised_coords(ANAT_SHAPE)
    data *= 1.0 + 0.08 * x - 0.05 * z
    data += rng.normal(0.0, 12.0, ANAT_SHAPE) * (data > 0)
    img = nib.Nifti1Image(np.round(data).clip(0, None).astype(np.int16), affine_for(2.0))
    img.header.set_xyzt_units("mm")
    img.header.set_qform(img.affine, code=1)
    img.header.set_sform(img.affine, code=1)
    img.header["descrip"] = b"voxcalc example: synthetic T1-like anatomy"
    return img


def make_atlas(brain: np.ndarray) -> np.ndarray:
    """Six regions: frontal, parietal and occipital thirds of the brain, split left/right."""
    x, y, _ = normalised_coords(BOLD_SHAPE)
    atlas = np.zeros(BOLD_SHAPE, dtype=np.int16)
    right = x > 0
    for i, (lo, hi) in enumerate(((0.25, 1.0), (-0.3, 0.25), (-1.0, -0.3))):
        band = brain & (y >= lo) & (y < hi)
        atlas[band & ~right] = 2 * i + 1
        atlas[band & right] = 2 * i + 2
    return atlas


def block_regressor() -> np.ndarray:
    """20 s off / 20 s on, convolved with a gamma haemodynamic response, peak 1."""
    t = np.arange(N_VOLUMES) * TR
    boxcar = ((t // 20) % 2 == 1).astype(float)
    ht = np.arange(0, 30, TR)
    hrf = ht**5 * np.exp(-ht) / 120.0
    reg = np.convolve(boxcar, hrf)[:N_VOLUMES]
    return reg / reg.max()


def make_bold(rng: np.random.Generator, tissue: dict, atlas: np.ndarray) -> nib.Nifti1Image:
    baseline = np.zeros(BOLD_SHAPE)
    baseline[tissue["head"]] = 300.0
    baseline[tissue["csf"] | tissue["ventricles"]] = 1400.0
    baseline[tissue["brain"] & ~tissue["ventricles"]] = 1000.0
    baseline[tissue["white"] & ~tissue["ventricles"]] = 800.0
    active = np.isin(atlas, [5, 6])  # occipital regions respond to the blocks
    t = np.arange(N_VOLUMES)
    drift = 1.0 + 0.01 * (t / N_VOLUMES) + 0.004 * np.sin(2 * np.pi * t / 33.0)
    response = 1.0 + 0.03 * block_regressor()
    data = baseline[..., None] * drift[None, None, None, :]
    data[active] *= response
    data += rng.normal(0.0, 8.0, (*BOLD_SHAPE, N_VOLUMES)) * (baseline[..., None] > 0)
    img = nib.Nifti1Image(np.round(data).astype(np.int16), affine_for(4.0))
    img.header.set_xyzt_units("mm", "sec")
    zooms = list(img.header.get_zooms())
    zooms[3] = TR
    img.header.set_zooms(zooms)
    img.header.set_qform(img.affine, code=1)
    img.header.set_sform(img.affine, code=1)
    img.header["descrip"] = b"voxcalc example: synthetic block-design BOLD"
    return img


def save_gz(img, path: Path) -> None:
    """Writes a .nii.gz with a zero gzip timestamp (nibabel's own writer stamps the time)."""
    raw = io.BytesIO()
    file_map = img.make_file_map({"image": raw})
    img.to_file_map(file_map)
    with path.open("wb") as fh:
        with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz:
            gz.write(raw.getvalue())


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(SEED)
    save_gz(make_anat(rng), OUT / "anat.nii.gz")

    tissue = tissue_maps(BOLD_SHAPE)
    brain = tissue["brain"]
    atlas = make_atlas(brain)
    bold = make_bold(rng, tissue, atlas)
    save_gz(bold, OUT / "bold.nii.gz")

    mask = nib.Nifti1Image(brain.astype(np.uint8), bold.affine)
    mask.header.set_xyzt_units("mm")
    save_gz(mask, OUT / "mask.nii.gz")
    atlas_img = nib.Nifti1Image(atlas, bold.affine)
    atlas_img.header.set_xyzt_units("mm")
    save_gz(atlas_img, OUT / "atlas.nii.gz")

    names = ["index\tname"] + [f"{i}\t{name}" for i, name in enumerate(REGION_NAMES, start=1)]
    (OUT / "atlas_labels.tsv").write_text("\n".join(names) + "\n")

    data = np.asanyarray(bold.dataobj).astype(np.float64)
    labels = list(range(1, len(REGION_NAMES) + 1))
    means = np.stack([data[atlas == label].mean(axis=0) for label in labels], axis=1)
    rows = ["\t".join(str(label) for label in labels)]
    rows += ["\t".join(f"{v:.3f}" for v in row) for row in means]
    (OUT / "signals.tsv").write_text("\n".join(rows) + "\n")

    total = sum(p.stat().st_size for p in OUT.iterdir() if p.is_file())
    print(f"wrote examples/ ({total / 1e6:.2f} MB)")
    if total >= 2_000_000:
        raise SystemExit("examples/ must stay under 2 MB")


if __name__ == "__main__":
    main()
