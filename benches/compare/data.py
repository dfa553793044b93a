"""Deterministic inputs for benches/compare: seeded synthetic images written as .nii and .nii.gz.

Every file is produced by a seeded numpy Generator, so two runs on any machine give byte-identical
inputs (the gzip streams use mtime 0). The files are written volume by volume, so even the longest
series of the scaling mode never needs the whole 4-D array in memory. The headers are the ones
nibabel writes for a new `Nifti1Image(data, affine)` (sform code 2, qform code 0, scl_slope 1,
scl_inter 0) and .nii.gz uses gzip level 1 as nibabel does.

A cache directory holds one folder per scale; a manifest records the generator version and the
sizes, and a folder whose manifest does not match is regenerated.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

# Bump when the content or layout of the generated files changes, so stale caches are regenerated.
GENERATOR_VERSION = 2
# The .nii.gz inputs' directory under a scale's root (see `Inputs.path`).
GZ_DIR = "gz"

# 1 mm isotropic grid centred on the origin for the 3-D images.
def _affine_3d(shape):
    affine = np.eye(4)
    affine[:3, 3] = [-(n // 2) for n in shape]
    return affine


# MNI-like 2 mm grid (91x109x91 at full scale) for the 4-D series and the atlas.
def _affine_bold(shape):
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [2 * (shape[0] // 2), -2 * (shape[1] // 2 + 9), -2 * (shape[2] // 2)]
    return affine


@dataclass(frozen=True)
class ScaleSizes:
    """Sizes of the generated inputs for one scale of the benchmark."""

    vol3d: tuple[int, int, int]
    bold: tuple[int, int, int, int]
    n_regions: int


SCALES = {
    "full": ScaleSizes(vol3d=(256, 256, 256), bold=(91, 109, 91, 200), n_regions=200),
    "small": ScaleSizes(vol3d=(64, 64, 64), bold=(32, 32, 32, 20), n_regions=20),
}

# Sizes of the scaling mode's series: edge of the cubic 3-D grid, number of volumes of the 4-D
# series (on the bold grid of the scale), number of 3-D float32 input images.
SCALING = {
    "full": {
        "voxels": [64, 96, 128, 192, 256],
        "volumes": [50, 100, 200, 400, 800, 1200],
        "inputs": [1, 2, 4, 8],
        "inputs_edge": 256,
    },
    "small": {
        "voxels": [16, 24, 32, 48, 64],
        "volumes": [10, 20, 40, 80],
        "inputs": [1, 2, 4, 8],
        "inputs_edge": 32,
    },
}


def _header_bytes(shape, dtype, affine) -> bytes:
    """The 352 bytes (header plus empty extension flag) nibabel writes for a new image."""
    tiny = nib.Nifti1Image(np.zeros((1,) * len(shape), dtype=dtype), affine)
    header = tiny.header.copy()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_slope_inter(1.0, 0.0)
    header.set_data_offset(352)
    buf = io.BytesIO()
    header.write_to(buf)
    block = buf.getvalue()
    return block + b"\x00" * (352 - len(block))


def write_series(path: Path, shape, dtype, affine, volumes) -> None:
    """Writes a NIfTI-1 file from an iterator of 3-D volumes (C-ordered arrays, stored F-order).

    A 3-D image is a single volume. The file is written to a temporary name and renamed, so an
    interrupted generation never leaves a file that looks complete.
    """
    tmp = path.with_name(path.name + ".part")
    header = _header_bytes(shape, dtype, affine)
    if path.name.endswith(".gz"):
        raw = open(tmp, "wb")
        stream = gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw, mtime=0)
    else:
        raw = None
        stream = open(tmp, "wb")
    try:
        stream.write(header)
        n_written = 0
        for volume in volumes:
            stream.write(np.asarray(volume, dtype=dtype).tobytes(order="F"))
            n_written += 1
    finally:
        stream.close()
        if raw is not None:
            raw.close()
    expected = 1 if len(shape) == 3 else shape[3]
    if n_written != expected:
        raise RuntimeError(f"{path}: wrote {n_written} volumes, expected {expected}")
    os.replace(tmp, path)


def _grid(shape):
    """Coordinates in [-1, 1] along each axis, shaped for broadcasting."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    return (
        axes[0][:, None, None],
        axes[1][None, :, None],
        axes[2][None, None, :],
    )


def _smooth_field(rng, shape, n_terms=6):
    """A smooth random field in about [-1, 1]: a few low-frequency cosines."""
    x, y, z = _grid(shape)
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(n_terms):
        fx, fy, fz = rng.uniform(0.5, 2.5, size=3).astype(np.float32)
        phase = np.float32(rng.uniform(0, 2 * np.pi))
        field += np.cos(np.pi * (fx * x + fy * y + fz * z) + phase)
    return field / np.float32(n_terms)


def _brain(shape):
    """Boolean ellipsoid that fills most of the field of view, as a head does."""
    x, y, z = _grid(shape)
    return (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.75) ** 2 <= 1.0


def make_anatomy_int16(rng, shape):
    """int16 anatomical image: smooth tissue contrast inside the brain, small noise outside (>= 0)."""
    brain = _brain(shape)
    tissue = 600.0 + 300.0 * _smooth_field(rng, shape)
    noise = rng.standard_normal(shape, dtype=np.float32)
    values = np.where(brain, tissue + 20.0 * noise, np.abs(5.0 * noise))
    return np.clip(np.rint(values), 0, 32767).astype(np.int16)


def make_field_float32(rng, shape):
    """float32 image: smooth field around 50 plus Gaussian noise (about 0 to 110)."""
    field = 50.0 + 50.0 * _smooth_field(rng, shape)
    return (field + 5.0 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def make_mask_uint8(shape):
    """uint8 brain mask (1 inside the ellipsoid, 0 outside)."""
    return _brain(shape).astype(np.uint8)


def bold_volumes(rng, shape4):
    """Yields the int16 volumes of a realistic BOLD series one by one.

    Each voxel has a smooth baseline (about 800 inside the brain, 100 outside), a slow drift,
    a block-design response in a smooth region, and Gaussian noise (sigma 10), so no time series
    is constant and means and standard deviations are well defined everywhere.
    """
    shape = shape4[:3]
    n_volumes = shape4[3]
    brain = _brain(shape)
    baseline = np.where(brain, 800.0 + 200.0 * _smooth_field(rng, shape), 100.0).astype(np.float32)
    active = np.clip(_smooth_field(rng, shape), 0.0, None).astype(np.float32) * brain
    for t in range(n_volumes):
        drift = np.float32(1.0 + 0.02 * t / max(n_volumes - 1, 1))
        on = np.float32(0.03 if (t // 10) % 2 == 1 else 0.0)
        noise = rng.standard_normal(shape, dtype=np.float32)
        volume = baseline * (drift + on * active) + 10.0 * noise
        yield np.rint(volume).astype(np.int16)


def make_atlas_int16(rng, shape, n_regions):
    """int16 atlas: the brain split into n_regions Voronoi cells of random seeds, labels 1..n_regions.

    Seeds are distinct brain voxels, so every label owns at least its seed voxel.
    """
    from scipy.spatial import cKDTree

    brain = _brain(shape)
    coords = np.argwhere(brain)
    if len(coords) < n_regions:
        raise ValueError(f"grid {shape} has fewer brain voxels than {n_regions} regions")
    seeds = coords[rng.choice(len(coords), size=n_regions, replace=False)]
    _, nearest = cKDTree(seeds).query(coords)
    atlas = np.zeros(shape, dtype=np.int16)
    atlas[tuple(coords.T)] = (nearest + 1).astype(np.int16)
    return atlas


def make_signals(rng, n_volumes, n_regions):
    """float64 region signals (time x regions): random walks around 1."""
    steps = 0.05 * rng.standard_normal((n_volumes, n_regions))
    return 1.0 + np.cumsum(steps, axis=0)


@dataclass(frozen=True)
class Inputs:
    """Paths of the generated inputs of one scale (stems without extension, see `path`)."""

    root: Path
    sizes: ScaleSizes

    def path(self, stem: str, fmt: str) -> Path:
        """The file of input `stem` (img1, img2, mask, bold, atlas) in format nii or nii.gz.

        The .nii.gz files live in their own directory: given `X.nii.gz`, nifticlib-based tools
        (niimath) open `X.nii` instead when one exists beside it, which would time them reading
        the uncompressed file in the .nii.gz scenarios.
        """
        if fmt == "nii.gz":
            return self.root / GZ_DIR / f"{stem}.nii.gz"
        return self.root / f"{stem}.{fmt}"

    @property
    def signals_npy(self) -> Path:
        return self.root / "signals.npy"

    @property
    def signals_tsv(self) -> Path:
        return self.root / "signals.tsv"


def _manifest_ok(root: Path, manifest: dict) -> bool:
    try:
        # Compared through JSON, which turns the sizes' tuples into lists.
        written = json.loads((root / "manifest.json").read_text())
        return written == json.loads(json.dumps(manifest))
    except (OSError, ValueError):
        return False


def _write_manifest(root: Path, manifest: dict) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _write_both(inputs: "Inputs", stem: str, shape, dtype, affine, make_volumes) -> None:
    for fmt in ("nii", "nii.gz"):
        path = inputs.path(stem, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_series(path, shape, dtype, affine, make_volumes())


def ensure_inputs(cache: Path, scale: str, log=print) -> Inputs:
    """Generates the inputs of `scale` under cache/scale unless an up-to-date copy is there."""
    sizes = SCALES[scale]
    root = cache / scale
    manifest = {"generator": GENERATOR_VERSION, "sizes": asdict(sizes)}
    inputs = Inputs(root=root, sizes=sizes)
    if _manifest_ok(root, manifest):
        return inputs
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").unlink(missing_ok=True)
    # Version 1 wrote the .nii.gz files beside the .nii ones: remove them.
    for stale in root.glob("*.nii.gz"):
        stale.unlink()
    log(f"generating {scale} inputs in {root} ...")

    affine3 = _affine_3d(sizes.vol3d)
    img1 = make_anatomy_int16(np.random.default_rng(1), sizes.vol3d)
    _write_both(inputs, "img1", sizes.vol3d, np.int16, affine3, lambda: [img1])
    del img1
    img2 = make_field_float32(np.random.default_rng(2), sizes.vol3d)
    _write_both(inputs, "img2", sizes.vol3d, np.float32, affine3, lambda: [img2])
    del img2
    mask = make_mask_uint8(sizes.vol3d)
    _write_both(inputs, "mask", sizes.vol3d, np.uint8, affine3, lambda: [mask])
    del mask

    affine_bold = _affine_bold(sizes.bold)
    _write_both(
        inputs,
        "bold",
        sizes.bold,
        np.int16,
        affine_bold,
        lambda: bold_volumes(np.random.default_rng(3), sizes.bold),
    )
    atlas = make_atlas_int16(np.random.default_rng(4), sizes.bold[:3], sizes.n_regions)
    _write_both(inputs, "atlas", sizes.bold[:3], np.int16, affine_bold, lambda: [atlas])
    signals = make_signals(np.random.default_rng(5), sizes.bold[3], sizes.n_regions)
    np.save(inputs.signals_npy, signals)
    labels = "\t".join(str(label) for label in range(1, sizes.n_regions + 1))
    np.savetxt(inputs.signals_tsv, signals, delimiter="\t", header=labels, comments="", fmt="%.17g")

    _write_manifest(root, manifest)
    return inputs


@dataclass(frozen=True)
class ScalingInputs:
    """Paths of the scaling mode's inputs."""

    root: Path
    bold_grid: tuple[int, int, int]

    def voxels(self, edge: int, stem: str) -> Path:
        return self.root / f"vox{edge}_{stem}.nii"

    def volumes(self, n_volumes: int) -> Path:
        return self.root / f"bold_t{n_volumes}.nii.gz"

    def image(self, index: int) -> Path:
        return self.root / f"in{index}.nii"


def ensure_scaling_inputs(cache: Path, scale: str, log=print) -> ScalingInputs:
    """Generates the scaling mode's inputs for `scale` unless an up-to-date copy is there."""
    plan = SCALING[scale]
    bold_grid = SCALES[scale].bold[:3]
    root = cache / scale / "scaling"
    manifest = {"generator": GENERATOR_VERSION, "plan": plan, "bold_grid": list(bold_grid)}
    inputs = ScalingInputs(root=root, bold_grid=bold_grid)
    if _manifest_ok(root, manifest):
        return inputs
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").unlink(missing_ok=True)
    log(f"generating {scale} scaling inputs in {root} ...")
    for edge in plan["voxels"]:
        shape = (edge, edge, edge)
        affine = _affine_3d(shape)
        img1 = make_anatomy_int16(np.random.default_rng(1), shape)
        write_series(inputs.voxels(edge, "img1"), shape, np.int16, affine, [img1])
        img2 = make_field_float32(np.random.default_rng(2), shape)
        write_series(inputs.voxels(edge, "img2"), shape, np.float32, affine, [img2])
        write_series(inputs.voxels(edge, "mask"), shape, np.uint8, affine, [make_mask_uint8(shape)])
    for n_volumes in plan["volumes"]:
        shape4 = (*bold_grid, n_volumes)
        write_series(
            inputs.volumes(n_volumes),
            shape4,
            np.int16,
            _affine_bold(shape4),
            bold_volumes(np.random.default_rng(3), shape4),
        )
    edge = plan["inputs_edge"]
    shape = (edge, edge, edge)
    for index in range(1, max(plan["inputs"]) + 1):
        image = make_field_float32(np.random.default_rng(100 + index), shape)
        write_series(inputs.image(index), shape, np.float32, _affine_3d(shape), [image])
    _write_manifest(root, manifest)
    return inputs
