#!/usr/bin/env python3
"""voxcalc conformance suite: every case runs through nilearn (the oracle, in-process) and
through the `voxcalc` binary (a subprocess), and the two outputs are compared.

Usage (from the repository root, with the venv that has the pinned nilearn):
    .venv/bin/python tests/conformance/run.py --voxcalc target/release/voxcalc [-k PATTERN]
                                               [--jobs N] [--keep]
    .venv/bin/python tests/conformance/run.py --self-test     # nilearn only, no voxcalc
    .venv/bin/python tests/conformance/run.py --list          # case counts by file

The full run prints one line per failing case and ends with `conformance: N passed, M failed`;
the exit status is 0 only when nothing failed. See tests/conformance/README.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

import cases as case_files  # noqa: E402
import compare  # noqa: E402
import fixtures  # noqa: E402

PINNED_NILEARN = "0.14.1"
VOXCALC_TIMEOUT_S = 60


@dataclass
class Oracle:
    """What nilearn did for a case, and what voxcalc must therefore produce."""

    accepted: bool = False
    error: BaseException | None = None
    stale: list[str] = field(default_factory=list)  # the recorded expectation no longer holds
    # math: the expected image (header fields) and its values and datatype code.
    exp_img: object = None
    exp_values: np.ndarray | None = None
    exp_datatype: int | None = None
    scalar_value: object = None
    # regions.
    exp_signals: np.ndarray | None = None
    exp_labels: list | None = None


@dataclass
class Run:
    """One voxcalc invocation (or two, for a round trip)."""

    returncode: int
    stdout: str
    stderr: str
    out_path: Path
    work_dir: Path
    seconds: float


def quiet(fn, *args, **kwargs):
    """Calls nilearn with its warnings and numpy's floating-point warnings silenced (voxcalc's
    results are compared, not the warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)


def safe_name(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", case_id)


def _datatype_code(dtype) -> int:
    return int(nib.nifti1.data_type_codes.code[np.dtype(dtype).newbyteorder("=")])


# ---------------------------------------------------------------------------------------------
# nilearn side: math_img


def oracle_math(case, paths, work: Path) -> Oracle:
    from nilearn.image import math_img

    orc = Oracle()
    imgs = {name: str(paths[fid]) for name, fid in case.inputs.items()}
    nil_path = work / f"nilearn{case.out}"
    try:
        img = quiet(math_img, case.formula, copy_header_from=case.copy_header_from, **imgs)
        mem = np.asanyarray(img.dataobj).copy()
        img.to_filename(str(nil_path))
    except Exception as exc:  # noqa: BLE001 - any failure of nilearn is an outcome
        orc.error = exc
    if "python_eval" in case.deviation:
        if orc.error is not None:
            orc.stale.append(f"python_eval deviation: nilearn now rejects it too: {orc.error!r}")
        return orc
    if case.expect == "reject":
        if orc.error is None:
            orc.stale.append("nilearn accepts this formula (recorded: reject)")
        elif case.nilearn_error and type(orc.error).__name__ != case.nilearn_error:
            orc.stale.append(f"nilearn raises {type(orc.error).__name__}, recorded {case.nilearn_error}")
        return orc
    if "float16" in case.deviation:
        # Without a header nilearn cannot build a float16 image; with a copied header it builds
        # one and saves it quantised into the header's datatype.
        float16_mem = orc.error is None and mem.dtype == np.float16
        if not float16_mem and (orc.error is None or "float16" not in str(orc.error)):
            orc.stale.append(f"float16 deviation: nilearn's result is not float16 (error: {orc.error!r})")
            return orc
        orc.error = None
        try:
            img = quiet(math_img, case.reference, copy_header_from=case.copy_header_from, **imgs)
            mem = np.asanyarray(img.dataobj).copy()
            img.to_filename(str(nil_path))
        except Exception as exc:  # noqa: BLE001
            orc.stale.append(f"reference formula {case.reference!r} fails in nilearn: {exc!r}")
            return orc
        if mem.dtype != np.float32:
            orc.stale.append(f"reference formula gives {mem.dtype}, not float32")
    elif orc.error is not None:
        orc.stale.append(f"nilearn rejects this formula (recorded: accept): {type(orc.error).__name__}: {orc.error}")
        return orc
    saved = nib.load(str(nil_path))
    mem_code = _datatype_code(mem.dtype)
    saved_code = int(saved.header["datatype"])
    if "header_dtype" in case.deviation:
        if mem_code == saved_code:
            orc.stale.append("header_dtype deviation: nilearn saves the result dtype (no deviation any more)")
        orc.exp_values = mem
        orc.exp_datatype = mem_code
    else:
        if mem_code != saved_code:
            orc.stale.append(
                f"nilearn computes {mem.dtype} but saves datatype {saved_code}: record deviation = \"header_dtype\""
            )
        orc.exp_values = np.asanyarray(saved.dataobj)
        orc.exp_datatype = saved_code
    if (mem.ndim == 0) != case.scalar:
        orc.stale.append(f"result ndim is {mem.ndim}: set scalar = {str(mem.ndim == 0).lower()}")
    if mem.ndim == 0:
        orc.scalar_value = mem[()]
    orc.exp_img = saved
    orc.accepted = True
    return orc


def check_math(case, orc: Oracle, run: Run) -> list[str]:
    act_img = nib.load(str(run.out_path))
    diffs = compare.header_diffs(
        orc.exp_img, act_img, exp_datatype=orc.exp_datatype, copied_header=case.copy_header_from is not None
    )
    diffs += compare.value_diffs(orc.exp_values, np.asanyarray(act_img.dataobj), case.tol)
    if case.scalar:
        diffs += _scalar_diffs(orc.scalar_value, run.stdout, case.tol)
    return diffs


def _scalar_diffs(expected, stdout: str, tol) -> list[str]:
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return ["scalar result: nothing printed on stdout"]
    text = lines[-1]
    try:
        value = int(text) if np.asarray(expected).dtype.kind in "biu" else float(text)
    except ValueError:
        return [f"scalar result: stdout's last line {text!r} is not a number"]
    exp = np.asarray(expected)
    act = np.asarray(value, dtype=exp.dtype if exp.dtype.kind == "f" else np.int64)
    return [d.replace("values", "printed scalar", 1) for d in compare.value_diffs(exp, act, tol)]


# ---------------------------------------------------------------------------------------------
# nilearn side: regions


def _labels_after_mask(case, paths) -> list:
    """The labels nilearn will use (sorted unique masked labels minus the background), to size
    the generated signals; [1, 2, 3] when nilearn would refuse the inputs anyway."""
    try:
        lab = np.asanyarray(nib.load(str(paths[case.labels])).dataobj).copy()
        if lab.ndim != 3:
            return [1, 2, 3]
        lab[~np.isfinite(lab)] = 0
        bg = 0 if case.background is None else case.background
        if case.mask:
            mask = np.asanyarray(nib.load(str(paths[case.mask])).dataobj)
            if mask.shape != lab.shape:
                return [1, 2, 3]
            lab[np.logical_not(mask)] = bg
        labels = [v for v in np.unique(lab).tolist() if v != bg]
        return labels or [1, 2, 3]
    except Exception:  # noqa: BLE001
        return [1, 2, 3]


def _fmt_label(value) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def make_signals(case, paths, work: Path) -> tuple[np.ndarray, Path]:
    """Generates the case's signals (seeded by the case id), writes them in the case's format
    for voxcalc, and returns the array nilearn gets (what the file holds) and the file."""
    spec = case.signals
    labels = _labels_after_mask(case, paths)
    n_cols = len(labels) + int(spec.get("columns", 0))
    n_times = int(spec.get("times", 4))
    dtype = np.dtype(spec.get("dtype", "float64"))
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    shape = (n_cols,) if int(spec.get("ndim", 2)) == 1 else (n_times, n_cols)
    if dtype.kind == "f":
        sig = (rng.normal(0.0, 50.0, size=shape) + 0.123456789).astype(dtype)
    else:
        sig = rng.integers(-1000, 1000, size=shape).astype(dtype)
    fmt = case.format
    path = work / f"signals.{fmt}"
    if fmt == "npy":
        np.save(path, sig)
        return sig, path
    if dtype != np.float64 or sig.ndim != 2:
        raise case_files.CaseError(f"{case.id}: text signals must be 2-D float64")
    header_labels = list(labels) + [max(labels) + 1 + i for i in range(max(0, n_cols - len(labels)))]
    header_labels = header_labels[:n_cols]
    if spec.get("header") == "wrong":
        header_labels = [h + 1000 for h in header_labels]
    sep = {"tsv": "\t", "csv": ",", "txt": " "}[fmt]
    rows = [] if fmt == "txt" else [sep.join(_fmt_label(h) for h in header_labels)]
    rows += [sep.join(repr(float(v)) for v in row) for row in sig]
    path.write_text("\n".join(rows) + "\n")
    return sig, path


def oracle_signals_to_img(case, paths, work: Path, sig) -> Oracle:
    from nilearn.regions import signals_to_img_labels

    orc = Oracle()
    kwargs = {}
    if case.mask:
        kwargs["mask_img"] = str(paths[case.mask])
    if case.background is not None:
        kwargs["background_label"] = case.background
    if case.order:
        kwargs["order"] = case.order
    try:
        img = quiet(signals_to_img_labels, sig, str(paths[case.labels]), **kwargs)
    except Exception as exc:  # noqa: BLE001
        orc.error = exc
    _check_region_expectation(case, orc)
    if orc.error is None and not orc.stale and case.expect == "accept":
        orc.accepted = True
        orc.exp_img = img
        orc.exp_values = np.asanyarray(img.dataobj)
        orc.exp_datatype = _datatype_code(sig.dtype)
        if orc.exp_values.dtype != sig.dtype:
            orc.stale.append(f"nilearn's in-memory image is {orc.exp_values.dtype}, signals are {sig.dtype}")
    return orc


def _check_region_expectation(case, orc: Oracle) -> None:
    nilearn_accepts = orc.error is None
    if set(case.deviation) & {"extra_columns", "header_row"}:
        if not nilearn_accepts:
            orc.stale.append(f"{case.deviation} deviation: nilearn now refuses: {orc.error!r}")
    elif case.expect == "reject" and nilearn_accepts:
        orc.stale.append("nilearn accepts these inputs (recorded: reject)")
    elif case.expect == "accept" and not nilearn_accepts:
        orc.stale.append(f"nilearn refuses these inputs (recorded: accept): {type(orc.error).__name__}: {orc.error}")
    elif case.expect == "reject" and case.nilearn_error and type(orc.error).__name__ != case.nilearn_error:
        orc.stale.append(f"nilearn raises {type(orc.error).__name__}, recorded {case.nilearn_error}")


def check_signals_to_img(case, orc: Oracle, run: Run) -> list[str]:
    act = nib.load(str(run.out_path))
    diffs = []
    if act.shape != orc.exp_values.shape:
        diffs.append(f"shape: expected {orc.exp_values.shape}, got {act.shape}")
        return diffs
    if int(act.header["datatype"]) != orc.exp_datatype:
        diffs.append(f"datatype: expected {orc.exp_datatype} (the signals' dtype), got {int(act.header['datatype'])}")
    if not compare._close(orc.exp_img.affine, act.affine, compare.AFFINE_RTOL, compare.AFFINE_ATOL):
        diffs.append(f"affine: expected the labels' {compare._fmt(orc.exp_img.affine)}, got {compare._fmt(act.affine)}")
    if act.header.get_slope_inter() != (None, None):
        diffs.append(f"output is scaled {act.header.get_slope_inter()}: values must not be quantised")
    diffs += compare.value_diffs(orc.exp_values, np.asanyarray(act.dataobj), case.tol)
    return diffs


def oracle_img_to_signals(case, paths) -> Oracle:
    from nilearn.regions import img_to_signals_labels

    orc = Oracle()
    kwargs = {}
    if case.mask:
        kwargs["mask_img"] = str(paths[case.mask])
    if case.background is not None:
        kwargs["background_label"] = case.background
    try:
        signals, labels, _ = quiet(img_to_signals_labels, str(paths[case.img]), str(paths[case.labels]), **kwargs)
    except Exception as exc:  # noqa: BLE001
        orc.error = exc
    _check_region_expectation(case, orc)
    if orc.error is None and case.expect == "accept":
        orc.accepted = True
        orc.exp_signals = np.asarray(signals)
        orc.exp_labels = [float(v) for v in labels]
    return orc


def read_signals(path: Path, fmt: str) -> tuple[np.ndarray, list | None]:
    """Reads a signals file written by voxcalc: .npy as is; .tsv/.csv with a header row of label
    values; .txt whitespace-separated, no header."""
    if fmt == "npy":
        return np.load(path, allow_pickle=False), None
    text = path.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if fmt == "txt":
        return np.array([[float(v) for v in ln.split()] for ln in lines]), None
    sep = "\t" if fmt == "tsv" else ","
    header = [float(v) for v in lines[0].split(sep)]
    return np.array([[float(v) for v in ln.split(sep)] for ln in lines[1:]]), header


def check_signals(case, exp_signals, exp_labels, run: Run, tol) -> list[str]:
    try:
        got, header = read_signals(run.out_path, case.format)
    except Exception as exc:  # noqa: BLE001
        return [f"cannot read the signals file {run.out_path.name}: {exc}"]
    diffs = []
    if case.format == "npy" and got.dtype != exp_signals.dtype:
        diffs.append(f"signals dtype: expected {exp_signals.dtype}, got {got.dtype}")
    if got.shape != exp_signals.shape:
        return diffs + [f"signals shape: expected {exp_signals.shape}, got {got.shape}"]
    if header is not None and header != exp_labels:
        diffs.append(f"header row: expected labels {exp_labels}, got {header}")
    diffs += compare.value_diffs(exp_signals, got.astype(exp_signals.dtype), tol)
    return diffs


def oracle_roundtrip(case, paths, sig) -> Oracle:
    """nilearn's own round trip (signals -> image -> signals) must give the signals back; voxcalc's
    must too."""
    from nilearn.regions import img_to_signals_labels, signals_to_img_labels

    orc = Oracle()
    kwargs = {}
    if case.mask:
        kwargs["mask_img"] = str(paths[case.mask])
    if case.background is not None:
        kwargs["background_label"] = case.background
    try:
        img = quiet(signals_to_img_labels, sig, str(paths[case.labels]), **kwargs)
        back, labels, _ = quiet(img_to_signals_labels, img, str(paths[case.labels]), **kwargs)
    except Exception as exc:  # noqa: BLE001
        orc.error = exc
    _check_region_expectation(case, orc)
    if orc.error is None and case.expect == "accept":
        if not np.allclose(back, sig, rtol=0, atol=1e-7 * max(1.0, float(np.max(np.abs(sig))))):
            orc.stale.append("nilearn's own round trip does not give the signals back")
        orc.accepted = True
        orc.exp_signals = np.asarray(sig)
        orc.exp_labels = [float(v) for v in labels]
    return orc


# ---------------------------------------------------------------------------------------------
# voxcalc side


def voxcalc_commands(case, paths, voxcalc: str, work: Path, sig_path: Path | None) -> tuple[list[list[str]], Path]:
    def region_opts():
        opts = ["--labels", str(paths[case.labels])]
        if case.mask:
            opts += ["--mask", str(paths[case.mask])]
        if case.background is not None:
            opts += ["--background", _fmt_label(case.background)]
        return opts

    if case.kind == "math":
        out = work / f"out{case.out}"
        cmd = [voxcalc, "eval", case.formula]
        cmd += [f"{name}={paths[fid]}" for name, fid in case.inputs.items()]
        cmd += ["-o", str(out)]
        if case.copy_header_from is not None:
            cmd += ["--copy-header-from", case.copy_header_from]
        # One thread per process (the harness runs --jobs processes at once) unless the case
        # chooses its own count.
        threads = [] if "--threads" in case.args else ["--threads", "1"]
        cmd += [*threads, *case.args]
        return [cmd], out
    if case.kind == "signals_to_img":
        out = work / f"out{case.out}"
        cmd = [voxcalc, "signals-to-img", str(sig_path), *region_opts()]
        if case.order:
            cmd += ["--order", case.order]
        return [cmd + ["-o", str(out), *case.args]], out
    if case.kind == "img_to_signals":
        out = work / f"signals_out.{case.format}"
        return [[voxcalc, "img-to-signals", str(paths[case.img]), *region_opts(), "-o", str(out), *case.args]], out
    # Round trip: signals -> image -> signals, both through voxcalc.
    img_out = work / f"roundtrip{case.out}"
    out = work / f"signals_back.{case.format}"
    first = [voxcalc, "signals-to-img", str(sig_path), *region_opts(), "-o", str(img_out)]
    second = [voxcalc, "img-to-signals", str(img_out), *region_opts(), "-o", str(out)]
    return [first, second], out


def run_voxcalc(cmds: list[list[str]], out: Path, work: Path) -> Run:
    start = time.monotonic()
    proc = None
    for cmd in cmds:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=VOXCALC_TIMEOUT_S, cwd=work)
        except subprocess.TimeoutExpired:
            return Run(-9, "", f"timed out after {VOXCALC_TIMEOUT_S} s", out, work, time.monotonic() - start)
        except OSError as exc:
            return Run(-1, "", f"cannot run voxcalc: {exc}", out, work, time.monotonic() - start)
        if proc.returncode != 0:
            break
    return Run(proc.returncode, proc.stdout, proc.stderr, out, work, time.monotonic() - start)


def rejection_diffs(run: Run, inputs_before: set[str], stderr_regex: str | None = None) -> list[str]:
    """A rejected case must exit non-zero (not by a panic or a signal), say why on stderr and
    leave no output (nor any temporary file) behind."""
    diffs = []
    if run.returncode == 0:
        diffs.append("voxcalc accepted it (exit 0); nilearn rejects it")
    elif run.returncode < 0:
        diffs.append(f"voxcalc was killed by signal {-run.returncode}")
    elif run.returncode == 101 or "panicked at" in run.stderr:
        diffs.append("voxcalc panicked: " + _first_line(run.stderr))
    if run.returncode != 0 and not run.stderr.strip():
        diffs.append("voxcalc failed without a message on stderr")
    if run.returncode != 0 and stderr_regex and not re.search(stderr_regex, run.stderr, re.S):
        diffs.append(f"stderr does not match /{stderr_regex}/: {_first_line(run.stderr)}")
    left = sorted(set(os.listdir(run.work_dir)) - inputs_before)
    if left:
        diffs.append(f"voxcalc left files behind: {left}")
    return diffs


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


# ---------------------------------------------------------------------------------------------
# driver


def select(all_cases, pattern: str | None):
    if not pattern:
        return all_cases
    if any(ch in pattern for ch in "*?["):
        return [c for c in all_cases if fnmatch.fnmatch(c.id, pattern)]
    return [c for c in all_cases if pattern in c.id]


def describe(case) -> str:
    if case.kind == "math":
        extra = f" copy_header_from={case.copy_header_from}" if case.copy_header_from else ""
        ins = " ".join(f"{k}={v}" for k, v in case.inputs.items())
        return f"formula: {case.formula}  [{ins}{extra}]"
    parts = [case.kind, f"labels={case.labels}"]
    if case.img:
        parts.append(f"img={case.img}")
    if case.mask:
        parts.append(f"mask={case.mask}")
    if case.background is not None:
        parts.append(f"background={case.background}")
    if case.order:
        parts.append(f"order={case.order}")
    if case.signals:
        parts.append(f"signals={case.signals}")
    parts.append(f"format={case.format}")
    return " ".join(parts)


def oracle_for(case, paths, work: Path, sig) -> Oracle:
    if case.kind == "math":
        return oracle_math(case, paths, work)
    if case.kind == "signals_to_img":
        return oracle_signals_to_img(case, paths, work, sig)
    if case.kind == "img_to_signals":
        return oracle_img_to_signals(case, paths)
    return oracle_roundtrip(case, paths, sig)


def check_accepted(case, orc: Oracle, run: Run) -> list[str]:
    if run.returncode != 0:
        return [f"voxcalc failed (exit {run.returncode}): {_first_line(run.stderr)}"]
    if not run.out_path.exists():
        return [f"voxcalc exited 0 but wrote no {run.out_path.name}"]
    try:
        if case.kind == "math":
            return check_math(case, orc, run)
        if case.kind == "signals_to_img":
            return check_signals_to_img(case, orc, run)
        return check_signals(case, orc.exp_signals, orc.exp_labels, run, case.tol)
    except Exception as exc:  # noqa: BLE001 - an unreadable output is a failure, not a crash
        return [f"cannot compare the output: {type(exc).__name__}: {exc}"]


def check_fixtures(paths) -> list[str]:
    problems = []
    for fid, path in paths.items():
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
            if data.shape != img.shape:
                problems.append(f"fixture {fid}: data shape {data.shape} != header shape {img.shape}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"fixture {fid} does not load: {exc}")
    return problems


def check_comparators(paths) -> list[str]:
    """The comparison functions must see the differences they exist to see (and none where
    there are none): a guard against a harness that passes everything."""
    problems = []
    x = np.array([1.0, -0.0, np.nan, np.inf, 3.5], dtype=np.float32)
    one_ulp = x.copy()
    one_ulp[4] = np.nextafter(np.float32(3.5), np.float32(4))
    expectations = [
        (compare.value_diffs(x, x.copy(), "exact"), False, "identical floats"),
        (compare.value_diffs(x, one_ulp, "exact"), True, "1 ULP under exact"),
        (compare.value_diffs(x, one_ulp, {"ulp": 1}), False, "1 ULP under ulp=1"),
        (compare.value_diffs(x, np.where(np.isnan(x), 0, x).astype(np.float32), {"ulp": 4}), True, "NaN replaced"),
        (compare.value_diffs(x, np.abs(x), "exact"), True, "-0.0 vs 0.0 under exact"),
        (compare.value_diffs(x, x * 1.001, {"rtol": 1e-5, "atol": 0}), True, "0.1 % under rtol 1e-5"),
        (compare.value_diffs(np.array([2**40], np.int64), np.array([2**40 + 1], np.int64), {"ulp": 4}), True, "integers"),
    ]
    ref = nib.load(str(paths["i16_both_4d"]))
    expectations.append((compare.header_diffs(ref, ref, exp_datatype=4, copied_header=True), False, "header vs itself"))
    changed = nib.Nifti1Image(np.asanyarray(ref.dataobj), ref.affine, header=ref.header.copy())
    changed.header["pixdim"][4] = 2.0
    expectations.append((compare.header_diffs(ref, changed, exp_datatype=4, copied_header=True), True, "TR changed"))
    shifted = nib.Nifti1Image(np.asanyarray(ref.dataobj), ref.affine + 1e-4, header=ref.header.copy())
    expectations.append((compare.header_diffs(ref, shifted, exp_datatype=4, copied_header=True), True, "affine moved"))
    for diffs, should_differ, what in expectations:
        if bool(diffs) != should_differ:
            problems.append(f"comparator check '{what}': {'missed a difference' if should_differ else diffs}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voxcalc", help="path to the voxcalc binary")
    parser.add_argument("--self-test", action="store_true", help="check every case's recorded expectation against nilearn only")
    parser.add_argument("--list", action="store_true", help="print the case counts by file and exit")
    parser.add_argument("-k", dest="pattern", help="run only cases whose id contains PATTERN (or matches it, with * ? [)")
    parser.add_argument("--jobs", type=int, default=2, help="voxcalc processes run in parallel (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep fixtures and outputs in tests/conformance/out")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print passing cases and timings")
    args = parser.parse_args(argv)

    all_cases = case_files.load(HERE / "cases")
    if args.list:
        counts: dict[str, int] = {}
        for case in all_cases:
            counts[case.file] = counts.get(case.file, 0) + 1
        for name, n in counts.items():
            print(f"{n:5d}  {name}")
        print(f"{len(all_cases):5d}  total")
        return 0
    if not args.self_test and not args.voxcalc:
        parser.error("--voxcalc PATH is required (or --self-test)")
    if args.voxcalc and not args.self_test and not os.access(args.voxcalc, os.X_OK):
        parser.error(f"--voxcalc {args.voxcalc}: not an executable file")

    import nilearn

    if nilearn.__version__ != PINNED_NILEARN:
        print(f"warning: nilearn {nilearn.__version__} is not the pinned {PINNED_NILEARN}", file=sys.stderr)

    selected = select(all_cases, args.pattern)
    if args.keep:
        root = HERE / "out"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="voxcalc-conformance-"))
    try:
        return _run(args, selected, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _run(args, selected, root: Path) -> int:
    started = time.monotonic()
    paths = fixtures.build(root / "fixtures")
    failures: list[str] = []
    if args.self_test:
        failures += check_fixtures(paths)
        failures += check_comparators(paths)
    n_passed = 0
    n_failed = len(failures)

    # Prepare every case's work dir and signal files, then start voxcalc on all of them while
    # nilearn runs in this thread.
    prepared = []
    for index, case in enumerate(selected):
        work = root / "cases" / f"{index:04d}_{safe_name(case.id)[:80]}"
        work.mkdir(parents=True)
        missing = [fid for fid in case.fixture_ids() if fid not in paths]
        if missing:
            prepared.append((case, work, None, None, f"unknown fixture ids {missing}"))
            continue
        sig = sig_path = None
        if case.kind in ("signals_to_img", "roundtrip"):
            sig, sig_path = make_signals(case, paths, work)
        prepared.append((case, work, sig, sig_path, None))

    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    futures = {}
    before = {}
    if not args.self_test:
        for case, work, sig, sig_path, problem in prepared:
            if problem:
                continue
            vox_dir = work / "voxcalc"
            vox_dir.mkdir()
            before[case.id] = set(os.listdir(vox_dir))
            cmds, out = voxcalc_commands(case, paths, os.path.abspath(args.voxcalc), vox_dir, sig_path)
            futures[case.id] = pool.submit(run_voxcalc, cmds, out, vox_dir)

    for case, work, sig, sig_path, problem in prepared:
        diffs = [problem] if problem else []
        if not problem:
            nil_dir = work / "nilearn"
            nil_dir.mkdir()
            orc = oracle_for(case, paths, nil_dir, sig)
            diffs += [f"recorded expectation is stale: {s}" for s in orc.stale]
            if not args.self_test:
                run = futures[case.id].result()
                if case.expect == "reject":
                    diffs += rejection_diffs(run, before[case.id], case.stderr_regex)
                elif orc.accepted:
                    diffs += check_accepted(case, orc, run)
                if args.verbose:
                    print(f"  {run.seconds:6.2f}s  {case.id}")
        if diffs:
            n_failed += 1
            print(f"FAIL {case.id}: {'; '.join(diffs)} | {describe(case)}", flush=True)
        else:
            n_passed += 1
            if args.verbose:
                print(f"ok   {case.id}", flush=True)
    for problem in failures:
        print(f"FAIL {problem}")
    pool.shutdown()
    elapsed = time.monotonic() - started
    label = "conformance self-test" if args.self_test else "conformance"
    kept = f"; outputs kept in {root}" if args.keep else ""
    print(f"({len(selected)} cases in {elapsed:.1f} s{kept})", file=sys.stderr, flush=True)
    print(f"{label}: {n_passed} passed, {n_failed} failed")
    return 0 if n_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
