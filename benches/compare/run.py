"""voxcalc side by side with nilearn, numexpr, numpy and niimath on the scenarios of issue 8.

Run from the repository root with the project's virtualenv (see README.md in this folder):

  .venv/bin/python benches/compare/run.py [--scale full|small] [--repeats N] [--tools ...]
      [--scenarios ...] [--voxcalc PATH] [--scaling]

Each job (load + compute + write) is a separate process, started through measure.py so that its
wall time and peak RSS are the tool's own. Before any timing, every tool's output is compared with
nilearn's; a tool that disagrees (or fails) is reported and not timed. Tools then alternate run by
run (ABCABC...) for N repeats and the medians are printed and written as Markdown under
benches/compare/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import data  # noqa: E402
import scenarios as sc  # noqa: E402

ALL_TOOLS = ("nilearn", "numexpr", "numpy", "niimath", "voxcalc")
PYTHON_TOOLS = ("nilearn", "numexpr", "numpy")
COLUMN = {
    "nilearn": "nilearn",
    "numexpr": "numexpr+nibabel",
    "numpy": "numpy+nibabel",
    "niimath": "niimath",
    "voxcalc": "voxcalc",
}

# Agreement with nilearn: |out - ref| <= RTOL * |ref| + ATOL_FRACTION * max|ref| (+ half of the
# reference's quantisation step when nilearn stores float values in an integer datatype, as it does
# for S6). float32 has a relative precision of 6e-8, so this allows about a hundred float32 roundings
# of accumulated error while still catching any wrong formula, dtype wrap-around or shape mix-up.
RTOL = 1e-5
ATOL_FRACTION = 1e-5


@dataclass
class ToolStatus:
    """Whether a tool can run a scenario, and how its output compared with nilearn's."""

    state: str  # "ok", "mismatch", "failed", "n/a", "unavailable", "reference"
    detail: str = ""
    out_dtype: str = ""
    max_abs: float | None = None
    max_rel: float | None = None


@dataclass
class Result:
    """Everything measured for one scenario."""

    scenario: sc.Scenario
    status: dict = field(default_factory=dict)  # tool -> ToolStatus
    walls: dict = field(default_factory=dict)  # tool -> [seconds]
    rss_kb: dict = field(default_factory=dict)  # tool -> [kB]
    compute: dict = field(default_factory=dict)  # tool -> [seconds] or a reason string
    # voxcalc's own phases from --timings: "compile", "compute", and "compute_1t" (--threads 1).
    phases: dict = field(default_factory=dict)
    commands: dict = field(default_factory=dict)  # tool -> [argv, ...] of one job


@dataclass
class Voxcalc:
    """What the given voxcalc binary can do (its subcommands appear over time)."""

    path: str | None
    version: str = ""
    has_eval: bool = False
    has_signals: bool = False
    eval_timings: bool = False
    signals_timings: bool = False
    eval_threads: bool = False
    signals_threads: bool = False
    reason: str = ""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Tools


def find_niimath() -> str | None:
    beside = Path(sys.executable).parent / "niimath"
    if beside.exists():
        return str(beside)
    return shutil.which("niimath")


def _help(argv) -> tuple[int, str]:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return 1, str(err)
    return res.returncode, res.stdout + res.stderr


def probe_voxcalc(path: str | None) -> Voxcalc:
    if path is None:
        default = REPO / "target" / "release" / "voxcalc"
        if not default.exists():
            return Voxcalc(None, reason="no binary given (--voxcalc PATH)")
        path = str(default)
    if not os.access(path, os.X_OK):
        return Voxcalc(None, reason=f"{path} is not an executable file")
    info = Voxcalc(path)
    rc, text = _help([path, "--version"])
    info.version = text.strip().splitlines()[0] if rc == 0 and text.strip() else "unknown"
    rc, text = _help([path, "eval", "--help"])
    info.has_eval = rc == 0
    info.eval_timings = info.has_eval and "--timings" in text
    info.eval_threads = info.has_eval and "--threads" in text
    rc, text = _help([path, "signals-to-img", "--help"])
    info.has_signals = rc == 0
    info.signals_timings = info.has_signals and "--timings" in text
    info.signals_threads = info.has_signals and "--threads" in text
    if not (info.has_eval or info.has_signals):
        info.reason = f"{path} has neither `eval` nor `signals-to-img` yet"
    return info


def python_tool_available(tool: str) -> str:
    """Empty string when the tool's module imports in this interpreter, else the reason."""
    module = {"nilearn": "nilearn.image", "numexpr": "numexpr", "numpy": "nibabel"}[tool]
    res = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    if res.returncode != 0:
        return f"cannot import {module} (see benches/compare/README.md)"
    return ""


# ---------------------------------------------------------------------------------------------
# Running jobs


def _env_for(argv, base_env):
    """niimath picks its output format from FSLOUTPUTTYPE, not from the name it is given."""
    env = dict(base_env)
    if Path(argv[0]).name == "niimath":
        env["FSLOUTPUTTYPE"] = "NIFTI_GZ" if argv[-1].endswith(".gz") else "NIFTI"
    return env


def measure(commands, base_env, logdir: Path, timeout: float):
    """Runs a job's commands through measure.py; returns (wall s, peak RSS kB, rc, stderr tail)."""
    logdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "commands": [{"argv": argv, "env": _env_for(argv, base_env)} for argv in commands],
        "stdout": str(logdir / "stdout.txt"),
        "stderr": str(logdir / "stderr.txt"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-S", "-E", str(HERE / "measure.py"), json.dumps(spec)],
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, None, -1, f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return None, None, proc.returncode, "measure.py failed"
    rep = json.loads(out)
    tail = ""
    if rep["rc"] != 0:
        err = (logdir / "stderr.txt").read_text(errors="replace").strip().splitlines()
        tail = " | ".join(err[-3:]) if err else f"exit code {rep['rc']}"
    return rep["wall"], rep["maxrss_kb"], rep["rc"], tail


def job_commands(tool, scenario, out: Path, tmp: Path, ctx) -> list[list[str]] | None:
    """The processes of one whole job of `tool`, or None when the tool cannot express it."""
    if tool in PYTHON_TOOLS:
        if scenario.kind == "signals" and tool == "numexpr":
            return None
        payload = dataclasses.asdict(scenario)
        payload["out"] = str(out)
        return [[sys.executable, str(HERE / "jobs.py"), "whole", tool, json.dumps(payload)]]
    if tool == "niimath":
        if ctx.niimath is None:
            return None
        return sc.niimath_commands(scenario, ctx.niimath, str(out), str(tmp))
    if tool == "voxcalc":
        vox = ctx.voxcalc
        if vox.path is None:
            return None
        if scenario.kind == "signals" and not vox.has_signals:
            return None
        if scenario.kind == "formula" and not vox.has_eval:
            return None
        return [sc.voxcalc_command(scenario, vox.path, str(out))]
    raise ValueError(tool)


# ---------------------------------------------------------------------------------------------
# Agreement with nilearn


def _disk_dtype(path: Path) -> str:
    import nibabel as nib

    return str(nib.load(path).get_data_dtype())


def compare_outputs(ref_path: Path, out_path: Path) -> ToolStatus:
    import nibabel as nib
    import numpy as np

    try:
        ref_img = nib.load(ref_path)
        out_img = nib.load(out_path)
    except Exception as err:  # any unreadable output is a disagreement, reported as such
        return ToolStatus("mismatch", f"cannot read output: {err}")
    out_dtype = str(out_img.get_data_dtype())
    if out_img.shape != ref_img.shape:
        return ToolStatus(
            "mismatch", f"shape {out_img.shape} != nilearn's {ref_img.shape}", out_dtype
        )
    ref = np.asanyarray(ref_img.dataobj)
    out = np.asanyarray(out_img.dataobj)
    # nibabel moves scl_slope from the header into the array proxy when it loads a file.
    slope = getattr(ref_img.dataobj, "slope", 1.0)
    step = 0.0
    if np.issubdtype(ref_img.get_data_dtype(), np.integer) and np.isfinite(slope):
        step = abs(float(slope))
    n_last = ref.shape[-1] if ref.ndim > 0 else 1

    def chunks():
        if ref.ndim == 0:
            yield np.asarray(ref, np.float64), np.asarray(out, np.float64)
            return
        size = max(1, n_last // 16)
        for start in range(0, n_last, size):
            sl = (..., slice(start, start + size))
            yield np.asarray(ref[sl], np.float64), np.asarray(out[sl], np.float64)

    scale = 0.0
    for r, _ in chunks():
        finite = r[np.isfinite(r)]
        if finite.size:
            scale = max(scale, float(np.max(np.abs(finite))))
    max_abs = 0.0
    n_bad = 0
    first_bad = None
    for r, o in chunks():
        both_nan = np.isnan(r) & np.isnan(o)
        same_inf = np.isinf(r) & (r == o)
        with np.errstate(invalid="ignore"):
            diff = np.abs(o - r)
            tol = RTOL * np.abs(r) + ATOL_FRACTION * scale + step / 2
            bad = ~((diff <= tol) | both_nan | same_inf)
        d = np.where(both_nan | same_inf, 0.0, diff)
        d = np.where(np.isnan(d), np.inf, d)
        if d.size:
            max_abs = max(max_abs, float(np.max(d)))
        if bad.any() and first_bad is None:
            idx = np.argwhere(bad)[0]
            first_bad = f"e.g. {o[tuple(idx)]!r} vs nilearn {r[tuple(idx)]!r}"
        n_bad += int(bad.sum())
    max_rel = max_abs / scale if scale else max_abs
    if n_bad:
        return ToolStatus(
            "mismatch",
            f"{n_bad} values outside tolerance ({first_bad})",
            out_dtype,
            max_abs,
            max_rel,
        )
    return ToolStatus("ok", "", out_dtype, max_abs, max_rel)


# ---------------------------------------------------------------------------------------------
# One scenario


@dataclass
class Context:
    """What every scenario run needs: the options, the tools and where to work."""

    args: argparse.Namespace
    tools: list  # every tool that runs, nilearn always (it is the reference)
    timed: list  # the tools asked for with --tools, which are timed and shown
    niimath: str | None
    voxcalc: Voxcalc
    unavailable: dict  # tool -> reason
    base_env: dict
    work: Path


def run_scenario(scenario: sc.Scenario, ctx: Context, compute_only: bool) -> Result:
    """Checks every tool against nilearn, then times the agreeing ones, alternating run by run."""
    res = Result(scenario)
    work = ctx.work / re.sub(r"[^A-Za-z0-9_.-]+", "_", scenario.id)
    if work.exists():
        shutil.rmtree(work)
    plans = {}
    for tool in ctx.tools:
        if tool in ctx.unavailable:
            res.status[tool] = ToolStatus("unavailable", ctx.unavailable[tool])
            continue
        tdir = work / tool
        (tdir / "tmp").mkdir(parents=True, exist_ok=True)
        out = tdir / scenario.output_name
        cmds = job_commands(tool, scenario, out, tdir / "tmp", ctx)
        if cmds is None:
            reason = "not expressible"
            if tool == "voxcalc":
                reason = "voxcalc lacks this subcommand"
            res.status[tool] = ToolStatus("n/a", reason)
            continue
        plans[tool] = (cmds, out, tdir)
        res.commands[tool] = cmds

    # The reference: nilearn's output, produced first (this also warms the page cache).
    ref_path = None
    if "nilearn" in plans:
        cmds, out, tdir = plans["nilearn"]
        _, _, rc, tail = measure(cmds, ctx.base_env, tdir / "log", ctx.args.timeout)
        if rc == 0 and out.exists():
            ref_path = work / f"reference.{scenario.fmt}"
            out.rename(ref_path)
            res.status["nilearn"] = ToolStatus("reference", out_dtype=_disk_dtype(ref_path))
        else:
            res.status["nilearn"] = ToolStatus("failed", tail)
            del plans["nilearn"]
    for tool, (cmds, out, tdir) in list(plans.items()):
        if tool == "nilearn":
            continue
        _, _, rc, tail = measure(cmds, ctx.base_env, tdir / "log", ctx.args.timeout)
        if rc != 0 or not out.exists():
            res.status[tool] = ToolStatus("failed", tail or "no output file")
            del plans[tool]
            continue
        if ref_path is None:
            res.status[tool] = ToolStatus("failed", "no nilearn reference to check against")
            del plans[tool]
            continue
        status = compare_outputs(ref_path, out)
        ref_dtype = res.status["nilearn"].out_dtype
        if status.state == "ok" and status.out_dtype != ref_dtype:
            status.detail = f"writes {status.out_dtype} where nilearn writes {ref_dtype}"
        res.status[tool] = status
        out.unlink()
        if status.state != "ok":
            del plans[tool]
    if ref_path is not None:
        ref_path.unlink()

    # Whole jobs, alternating tools run by run.
    order = [t for t in ctx.timed if t in plans]
    for repeat in range(ctx.args.repeats):
        for tool in list(order):
            cmds, out, tdir = plans[tool]
            out.unlink(missing_ok=True)
            wall, rss, rc, tail = measure(cmds, ctx.base_env, tdir / "log", ctx.args.timeout)
            if rc != 0:
                res.status[tool] = ToolStatus("failed", f"repeat {repeat + 1}: {tail}")
                plans.pop(tool)
                order.remove(tool)
                res.walls.pop(tool, None)
                res.rss_kb.pop(tool, None)
                continue
            res.walls.setdefault(tool, []).append(wall)
            res.rss_kb.setdefault(tool, []).append(rss)
        log(f"  {scenario.id}: repeat {repeat + 1}/{ctx.args.repeats} done")

    if compute_only and scenario.compute_only:
        for tool in order:
            res.compute[tool] = compute_only_times(tool, scenario, plans[tool], ctx, res.phases)
    shutil.rmtree(work, ignore_errors=True)
    return res


_DURATION = r"\D*?([0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)\s*(ns|us|µs|ms|s)\b"
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_phase(text: str, phase: str) -> float | None:
    """Seconds of the first duration following the word `phase` (e.g. `compute 12.3 ms`)."""
    match = re.search(rf"\b{phase}{_DURATION}", text, re.I)
    if match is None:
        return None
    return float(match.group(1)) * _UNIT[match.group(2)]


def compute_only_times(tool, scenario, plan, ctx, phases):
    """Compute-only seconds (a list), or a string saying why there are none.

    For voxcalc this also records, in `phases`, the compile durations its --timings prints and,
    when it has --threads, the compute durations with one thread (issue 8's goal 5).
    """
    repeats = ctx.args.repeats
    if tool in PYTHON_TOOLS:
        payload = dataclasses.asdict(scenario)
        cmd = [sys.executable, str(HERE / "jobs.py"), "compute", tool, json.dumps(payload)]
        cmd.append(str(repeats))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ctx.base_env)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["failed"]
            return tail[0]
        return json.loads(proc.stdout.strip().splitlines()[-1])["times"]
    if tool == "voxcalc":
        vox = ctx.voxcalc
        supported = vox.signals_timings if scenario.kind == "signals" else vox.eval_timings
        if not supported:
            return "no --timings option"
        _, out, _ = plan
        variants = [("compute", ("--timings",))]
        threads_ok = vox.signals_threads if scenario.kind == "signals" else vox.eval_threads
        if threads_ok:
            variants.append(("compute_1t", ("--timings", "--threads", "1")))
        for key, extra in variants:
            cmd = sc.voxcalc_command(scenario, vox.path, str(out), extra=extra)
            for _ in range(repeats):
                out.unlink(missing_ok=True)
                proc = subprocess.run(cmd, capture_output=True, text=True, env=ctx.base_env)
                text = proc.stdout + "\n" + proc.stderr
                seconds = parse_phase(text, "compute")
                if proc.returncode != 0 or seconds is None:
                    return "--timings printed no `compute <duration>`"
                phases.setdefault(key, []).append(seconds)
                compile_s = parse_phase(text, "compile")
                if key == "compute" and compile_s is not None:
                    phases.setdefault("compile", []).append(compile_s)
        out.unlink(missing_ok=True)
        return phases["compute"]
    return "n/a"


# ---------------------------------------------------------------------------------------------
# Reporting


def machine_description(ctx: Context, rss_floor_kb) -> list[tuple[str, str]]:
    from importlib import metadata

    def version(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    osname = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    niimath = "not found"
    if ctx.niimath:
        _, text = _help([ctx.niimath])
        m = re.search(r"version\s+(\S+)", text)
        niimath = f"{version('niimath')} (binary {m.group(1) if m else '?'})"
    vox = ctx.voxcalc
    voxcalc = vox.version if vox.path else f"unavailable: {vox.reason}"
    if vox.path and vox.reason:
        voxcalc = f"{vox.version}; {vox.reason}"
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    return [
        ("CPU", cpu),
        ("cores", f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)"),
        ("memory", mem),
        ("OS", f"{osname}, kernel {platform.release()}"),
        ("Python", platform.python_version()),
        ("numpy", version("numpy")),
        ("nibabel", version("nibabel")),
        ("nilearn", version("nilearn")),
        ("numexpr", f"{version('numexpr')} ({ctx.base_env['NUMEXPR_NUM_THREADS']} threads)"),
        ("niimath", niimath),
        ("voxcalc", voxcalc),
        ("load average at start", " ".join(load)),
        ("peak RSS floor of the measuring wrapper", f"{rss_floor_kb / 1024:.1f} MB"),
    ]


def _median(values):
    return statistics.median(values) if values else None


def _fmt_s(seconds):
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds:.3f} s"
    return f"{seconds:.2f} s"


def _fmt_ratio(t, ref):
    if t is None or ref is None or ref <= 0:
        return ""
    return f" ({t / ref:.1f}x)"


def _cell_whole(res: Result, tool):
    walls = res.walls.get(tool)
    if not walls:
        st = res.status.get(tool)
        if st is None or st.state in ("n/a", "unavailable"):
            return "-"
        return st.state
    t = _median(walls)
    rss = max(res.rss_kb[tool]) / 1024
    ratio = "" if tool == "voxcalc" else _fmt_ratio(t, _median(res.walls.get("voxcalc", [])))
    return f"{_fmt_s(t)}{ratio}, {rss:.0f} MB"


def _cell_compute(res: Result, tool):
    value = res.compute.get(tool)
    if not isinstance(value, list) or not value:
        return "-"
    t = _median(value)
    vox = res.compute.get("voxcalc")
    ref = _median(vox) if isinstance(vox, list) else None
    ratio = "" if tool == "voxcalc" else _fmt_ratio(t, ref)
    return f"{_fmt_s(t)}{ratio}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def inputs_description(inputs) -> list[str]:
    s = inputs.sizes
    v = "x".join(map(str, s.vol3d))
    b = "x".join(map(str, s.bold))
    a = "x".join(map(str, s.bold[:3]))
    return [
        f"- 3-D: img1 {v} int16 (anatomy-like, >= 0), img2 {v} float32, mask {v} uint8.",
        f"- 4-D: bold {b} int16 (smooth baseline, drift, block response, noise sigma 10).",
        f"- S6: atlas {a} int16 with {s.n_regions} regions; signals {s.bold[3]} x {s.n_regions}"
        " float64 (.npy; .tsv also generated).",
        "- Every input as .nii and .nii.gz (gzip level 1, as nibabel writes), seeded generator"
        " (benches/compare/data.py). The .nii.gz files are in their own directory: niimath,"
        " given X.nii.gz, reads X.nii instead when it is beside it.",
    ]


# Issue 8's goals, checked from one run: (goal number, scenario id, what, other tool, threshold).
# "time": other tool's median whole-job time / voxcalc's >= threshold.
# "rss": voxcalc's peak RSS / other tool's <= threshold.
# "compute": other tool's compute-only median / voxcalc's >= threshold (scenario family).
# "compile": voxcalc's median kernel compile latency < threshold seconds.
# "threads": voxcalc's 1-thread compute / default-thread compute >= threshold.
GOALS = [
    (1, "S2.nii", "time", "nilearn", 15.0),
    (1, "S2.nii", "time", "niimath", 3.0),
    (1, "S2", "compute", "numpy", 2.0),
    (1, "S2", "compute", "numexpr", 2.0),
    (2, "S3.nii.gz", "time", "niimath", 1.5),
    (2, "S3.nii.gz", "rss", "niimath", 0.6),
    (2, "S4.nii.gz", "time", "niimath", 1.5),
    (2, "S4.nii.gz", "rss", "niimath", 0.6),
    (2, "S3.nii", "time", "niimath", 5.0),
    (2, "S4.nii", "time", "niimath", 5.0),
    (3, "S5.nii", "time", "nilearn", 4.0),
    (3, "S5.nii", "rss", "nilearn", 0.25),
    (3, "S5.nii.gz", "time", "nilearn", 4.0),
    (3, "S5.nii.gz", "rss", "nilearn", 0.25),
    (3, "S5.nii.gz", "time", "niimath", 3.0),
    (4, "S1.nii.gz", "time", "niimath", 2.0),
    (4, "S6.nii", "time", "nilearn", 5.0),
    (5, "S1", "compile", None, 1e-3),
    (5, "S2", "compile", None, 1e-3),
    (5, "S3", "compile", None, 1e-3),
    (5, "S4", "compile", None, 1e-3),
    (5, "S5", "compile", None, 1e-3),
    (5, "S2", "threads", None, 1.3),
]


def goal_rows(results) -> list[list[str]]:
    """One row per goal of issue 8: the target, what this run measured, and whether it is met."""
    by_id = {r.scenario.id: r for r in results}
    by_family = {}
    for r in results:
        if r.scenario.compute_only:
            by_family[r.scenario.id.split(".")[0]] = r
    rows = []
    for number, sid, what, other, threshold in GOALS:
        res = by_id.get(sid) or by_family.get(sid)
        measured = None
        if what == "time":
            target = f"{COLUMN[other]} time / voxcalc time >= {threshold:g}"
            if res and res.walls.get("voxcalc") and res.walls.get(other):
                measured = _median(res.walls[other]) / _median(res.walls["voxcalc"])
            ok = measured is not None and measured >= threshold
            shown = f"{measured:.2f}x" if measured is not None else "-"
        elif what == "rss":
            target = f"voxcalc peak RSS / {COLUMN[other]} peak RSS <= {threshold:g}"
            if res and res.rss_kb.get("voxcalc") and res.rss_kb.get(other):
                measured = max(res.rss_kb["voxcalc"]) / max(res.rss_kb[other])
            ok = measured is not None and measured <= threshold
            shown = f"{measured:.2f}" if measured is not None else "-"
        elif what == "compute":
            target = f"{other} compute / voxcalc compute >= {threshold:g}"
            mine = res.compute.get("voxcalc") if res else None
            theirs = res.compute.get(other) if res else None
            if isinstance(mine, list) and mine and isinstance(theirs, list) and theirs:
                measured = _median(theirs) / _median(mine)
            ok = measured is not None and measured >= threshold
            shown = f"{measured:.2f}x" if measured is not None else "-"
        elif what == "compile":
            target = f"voxcalc kernel compile latency < {threshold * 1e3:g} ms"
            if res and res.phases.get("compile"):
                measured = _median(res.phases["compile"])
            ok = measured is not None and measured < threshold
            shown = _fmt_s(measured)
        else:
            target = f"voxcalc compute, 1 thread / default threads >= {threshold:g}"
            if res and res.phases.get("compute_1t") and res.phases.get("compute"):
                measured = _median(res.phases["compute_1t"]) / _median(res.phases["compute"])
            ok = measured is not None and measured >= threshold
            shown = f"{measured:.2f}x" if measured is not None else "-"
        verdict = "not measured" if measured is None else ("met" if ok else "NOT met")
        rows.append([str(number), sid, target, shown, verdict])
    return rows


def report_main(results, ctx, machine, inputs, started) -> str:
    args = ctx.args
    lines = [f"# voxcalc side by side ({args.scale} scale, {started:%Y-%m-%d %H:%M} UTC)", ""]
    if args.scale != "full":
        lines += [
            "> **Small scale**: inputs far smaller than issue 8's; the numbers test the harness,"
            " they do not measure the tools.",
            "",
        ]
    if args.note:
        lines += [f"> {args.note}", ""]
    lines += _debug_warning(ctx)
    lines += ["## Machine", ""]
    lines += _table(["", ""], [[k, v] for k, v in machine])
    lines += ["", "## Inputs", ""] + inputs_description(inputs)
    tools = ctx.timed
    lines += [
        "",
        f"## Whole jobs: load + compute + write, each a separate process (median of {args.repeats})",
        "",
        "Cells: median wall time (ratio = tool time / voxcalc time), peak RSS of the tool's"
        " process(es). `-`: the tool cannot express the scenario or is unavailable; `mismatch` or"
        " `failed`: see the agreement table (such a tool is not timed).",
        "",
    ]
    rows = [[r.scenario.id] + [_cell_whole(r, t) for t in tools] for r in results]
    lines += _table(["scenario"] + [COLUMN[t] for t in tools], rows)
    compute_tools = [t for t in tools if t != "niimath"]
    compute_rows = [
        [r.scenario.id.split(".")[0]] + [_cell_compute(r, t) for t in compute_tools]
        for r in results
        if r.scenario.compute_only and r.compute
    ]
    if compute_rows:
        lines += [
            "",
            f"## Compute only: inputs already in memory (median of {args.repeats})",
            "",
            "numpy/numexpr: the computation on in-memory arrays; nilearn: `math_img` /"
            " `signals_to_img_labels` on in-memory images; voxcalc: the `compute` duration its"
            " `--timings` option prints, when it has one.",
            "",
        ]
        lines += _table(["scenario"] + compute_tools, compute_rows)
    phase_rows = []
    for r in results:
        ph = r.phases
        if not ph:
            continue
        two, one = _median(ph.get("compute", [])), _median(ph.get("compute_1t", []))
        speedup = f"{one / two:.2f}x" if one and two else "-"
        phase_rows.append(
            [r.scenario.id.split(".")[0], _fmt_s(_median(ph.get("compile", []))), _fmt_s(two),
             _fmt_s(one), speedup]
        )
    if phase_rows:
        lines += [
            "",
            "## voxcalc phases (from `--timings`, median)",
            "",
            "Kernel compile latency, compute with the default threads and with `--threads 1`.",
            "",
        ]
        lines += _table(
            ["scenario", "compile", "compute", "compute, 1 thread", "1 thread / default"],
            phase_rows,
        )
    lines += [
        "",
        "## Agreement with nilearn (checked before timing)",
        "",
        f"Tolerance: |out - nilearn| <= {RTOL:g} * |nilearn| + {ATOL_FRACTION:g} * max|nilearn|"
        " (+ half of nilearn's quantisation step when it stores floats in an integer datatype)."
        " max rel = max |out - nilearn| / max |nilearn|.",
        "",
    ]
    rows = []
    for r in results:
        for t in ctx.tools:
            st = r.status.get(t)
            if st is None or st.state == "unavailable":
                continue
            err = "" if st.max_rel is None else f"{st.max_rel:.2e}"
            rows.append([r.scenario.id, COLUMN[t], st.state, st.out_dtype, err, st.detail])
    lines += _table(["scenario", "tool", "agreement", "output dtype", "max rel", "note"], rows)
    lines += [
        "",
        "## Issue 8's goals in this run",
        "",
        "Ratios from the tables above; `not measured` when a tool or timing is missing.",
        "",
    ]
    lines += _table(["goal", "scenario", "target", "measured", "verdict"], goal_rows(results))
    lines += _unavailable_lines(ctx)
    lines += ["", "## niimath chains", ""]
    for r in results:
        cmds = r.commands.get("niimath")
        if cmds:
            shown = " && ".join(" ".join(_short(a) for a in c) for c in cmds)
            lines.append(f"- {r.scenario.id}: `{shown}`")
    lines += ["", "## Rerun", "", "```", rerun_command(args), "```", ""]
    return "\n".join(lines)


def _debug_warning(ctx) -> list[str]:
    """A debug build of voxcalc compiles and runs kernels many times slower: say so loudly."""
    path = ctx.voxcalc.path
    if path and "/debug/" in str(Path(path).resolve()):
        return [f"> **voxcalc is a debug build** ({path}): its times are not a measurement.", ""]
    return []


def _unavailable_lines(ctx) -> list[str]:
    if not ctx.unavailable:
        return []
    lines = ["", "## Tools not run", ""]
    lines += [f"- {COLUMN[t]}: {reason}" for t, reason in ctx.unavailable.items()]
    return lines


def _short(arg: str) -> str:
    """Paths shown by file name only, so the chains read like a user's command."""
    if "/" in arg and not arg.startswith("-"):
        return Path(arg).name
    return arg


def rerun_command(args) -> str:
    parts = [".venv/bin/python benches/compare/run.py", f"--scale {args.scale}"]
    parts.append(f"--repeats {args.repeats}")
    if args.scaling:
        parts.append("--scaling")
    if args.tools_given:
        parts.append(f"--tools {','.join(args.timed_tools)}")
    if args.scenarios:
        parts.append(f"--scenarios {args.scenarios}")
    if args.no_compute_only:
        parts.append("--no-compute-only")
    voxcalc = "target/release/voxcalc"
    if args.voxcalc:
        given = Path(args.voxcalc).resolve()
        voxcalc = str(given.relative_to(REPO)) if given.is_relative_to(REPO) else str(given)
    parts.append(f"--voxcalc {voxcalc}")
    return " ".join(parts)


def write_results(args, markdown: str, raw: dict, started, kind: str):
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.scale == "full" else f"-{args.scale}"
    if kind:
        suffix = f"-{kind}{suffix}"
    stem = f"{started:%Y-%m-%d}{suffix}"
    (results_dir / f"{stem}.md").write_text(markdown)
    (results_dir / f"latest{suffix}.md").write_text(markdown)
    (results_dir / f"{stem}.json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {results_dir / (stem + '.md')} and latest{suffix}.md")


def raw_results(results) -> list:
    out = []
    for r in results:
        out.append(
            {
                "scenario": r.scenario.id,
                "status": {t: dataclasses.asdict(s) for t, s in r.status.items()},
                "wall_s": r.walls,
                "peak_rss_kb": r.rss_kb,
                "compute_s": r.compute,
                "commands": r.commands,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Scaling mode


def scaling_scenarios(inputs: data.ScalingInputs, scale: str) -> list[tuple[str, str, sc.Scenario]]:
    """(series, size label, scenario) for the series of the scaling table."""
    plan = data.SCALING[scale]
    out = []
    for edge in plan["voxels"]:
        ins = {s: str(inputs.voxels(edge, s)) for s in ("mask", "img1", "img2")}
        scen = sc.Scenario(
            id=f"voxels {edge}^3",
            title="S2 formula",
            kind="formula",
            formula=sc.S2,
            inputs=ins,
            fmt="nii",
            numexpr_plan=sc.NUMEXPR_EVALUATE,
            niimath_chain="S2",
        )
        out.append(("voxels (S2, .nii)", f"{edge}^3", scen))
    # The volumes series twice: voxcalc's default (series inflating to more than 512 MiB are
    # streamed, smaller ones inflated whole) and every series streamed (`--stream always`).
    for label, id_prefix, vox_args in (
        ("volumes (S3, .nii.gz in)", "volumes", ()),
        ("volumes (S3, .nii.gz in, --stream always)", "volumes streamed", ("--stream", "always")),
    ):
        for n_volumes in plan["volumes"]:
            scen = sc.Scenario(
                id=f"{id_prefix} {n_volumes}",
                title="S3 formula",
                kind="formula",
                formula=sc.S3,
                inputs={"bold": str(inputs.volumes(n_volumes))},
                fmt="nii",
                numexpr_plan=sc.NUMEXPR_MEAN_T,
                niimath_chain="S3",
                n_volumes=n_volumes,
                voxcalc_args=vox_args,
            )
            grid = "x".join(map(str, inputs.bold_grid))
            out.append((label, f"{grid}x{n_volumes}", scen))
    edge = plan["inputs_edge"]
    for k in plan["inputs"]:
        names = [f"a{i}" for i in range(1, k + 1)]
        scen = sc.Scenario(
            id=f"inputs {k}",
            title="mean of k images",
            kind="formula",
            formula=f"({' + '.join(names)}) / {k}",
            inputs={name: str(inputs.image(i + 1)) for i, name in enumerate(names)},
            fmt="nii",
            numexpr_plan=sc.NUMEXPR_EVALUATE,
            niimath_chain="mean_of_inputs",
        )
        out.append((f"inputs ((a1 + ... + ak) / k, {edge}^3 float32 .nii)", f"{k}", scen))
    return out


def report_scaling(rows, ctx, machine, started) -> str:
    args = ctx.args
    tools = ctx.timed
    lines = [f"# voxcalc scaling ({args.scale} scale, {started:%Y-%m-%d %H:%M} UTC)", ""]
    if args.scale != "full":
        lines += ["> **Small scale**: tests the harness; not a measurement.", ""]
    if args.note:
        lines += [f"> {args.note}", ""]
    lines += _debug_warning(ctx)
    lines += ["## Machine", ""] + _table(["", ""], [[k, v] for k, v in machine])
    lines += [
        "",
        f"## Time and peak RSS as the work grows (whole jobs, median of {args.repeats})",
        "",
        "Every point was checked against nilearn before timing; a disagreement is listed under"
        " Problems and its cells read `mismatch` or `failed`.",
        "",
    ]
    header = ["series", "size", "input MB"]
    for t in tools:
        header += [f"{COLUMN[t]} s", f"{COLUMN[t]} MB"]
    table_rows = []
    for series, size, res in rows:
        mb = sum(Path(p).stat().st_size for p in res.scenario.inputs.values()) / 1e6
        row = [series, size, f"{mb:.0f}" if mb >= 10 else f"{mb:.2f}"]
        for t in tools:
            walls = res.walls.get(t)
            if walls:
                row += [_fmt_s(_median(walls)), f"{max(res.rss_kb[t]) / 1024:.0f}"]
            else:
                st = res.status.get(t)
                mark = "-" if st is None or st.state in ("n/a", "unavailable") else st.state
                row += [mark, "-"]
        table_rows.append(row)
    lines += _table(header, table_rows)
    notes = []
    for _, _, res in rows:
        for t, st in res.status.items():
            if st.state in ("mismatch", "failed"):
                notes.append(f"- {res.scenario.id}, {COLUMN[t]}: {st.state}: {st.detail}")
    if notes:
        lines += ["", "## Problems", ""] + notes
    lines += _unavailable_lines(ctx)
    lines += ["", "## Rerun", "", "```", rerun_command(args), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="voxcalc side by side with nilearn, numexpr, numpy and niimath (issue 8).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: .venv/bin/python benches/compare/run.py --scale small --repeats 3",
    )
    p.add_argument("--scale", choices=sorted(data.SCALES), default="full")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per tool (default 5)")
    p.add_argument(
        "--tools",
        default=None,
        help=f"comma-separated subset of {','.join(ALL_TOOLS)} to time (default: all; with"
        " --scaling: voxcalc,nilearn); nilearn always runs once as the reference",
    )
    p.add_argument(
        "--scenarios",
        default=None,
        help="comma-separated scenario ids (S3.nii.gz) or families (S3); default: all",
    )
    p.add_argument("--voxcalc", default=None, help="voxcalc binary (default target/release/voxcalc)")
    p.add_argument("--cache", default=str(REPO / "target" / "compare-data"))
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--scaling", action="store_true", help="the scaling table instead of S1-S6")
    p.add_argument("--no-compute-only", action="store_true", help="skip compute-only timings")
    p.add_argument("--numexpr-threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per job")
    p.add_argument("--note", default="", help="a line added to the report (e.g. machine state)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    args.tools_given = args.tools is not None
    if args.tools is None:
        args.tools = "voxcalc,nilearn" if args.scaling else ",".join(ALL_TOOLS)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in ALL_TOOLS]
    if unknown:
        p.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(ALL_TOOLS)}")
    args.timed_tools = [t for t in ALL_TOOLS if t in tools]
    args.tool_list = [t for t in ALL_TOOLS if t in tools or t == "nilearn"]
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        import nibabel  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        sys.exit("run.py needs numpy and nibabel: use the project's .venv/bin/python")
    started = dt.datetime.now(dt.timezone.utc)
    base_env = dict(os.environ)
    base_env["NUMEXPR_NUM_THREADS"] = str(args.numexpr_threads)
    base_env.pop("FSLOUTPUTTYPE", None)
    unavailable = {}
    for tool in PYTHON_TOOLS:
        if tool in args.tool_list:
            reason = python_tool_available(tool)
            if reason:
                unavailable[tool] = reason
    niimath = find_niimath()
    if niimath is None and "niimath" in args.tool_list:
        unavailable["niimath"] = "niimath not found (pip install niimath)"
    vox = probe_voxcalc(args.voxcalc) if "voxcalc" in args.tool_list else Voxcalc(None)
    if "voxcalc" in args.tool_list and (vox.path is None or vox.reason):
        unavailable["voxcalc"] = vox.reason
    cache = Path(args.cache)
    ctx = Context(
        args=args,
        tools=args.tool_list,
        timed=args.timed_tools,
        niimath=niimath,
        voxcalc=vox,
        unavailable=unavailable,
        base_env=base_env,
        work=cache / args.scale / "runs",
    )
    for tool, reason in unavailable.items():
        log(f"{tool}: unavailable: {reason}")

    _, floor_kb, _, _ = measure([["true"]], base_env, ctx.work / "floor", 60)
    machine = machine_description(ctx, floor_kb or 0)

    if args.scaling:
        scaling_inputs = data.ensure_scaling_inputs(cache, args.scale, log=log)
        rows = []
        for series, size, scen in scaling_scenarios(scaling_inputs, args.scale):
            log(f"{scen.id} ...")
            rows.append((series, size, run_scenario(scen, ctx, compute_only=False)))
        markdown = report_scaling(rows, ctx, machine, started)
        print(markdown)
        raw = {"machine": machine, "args": vars(args), "results": raw_results([r for *_, r in rows])}
        write_results(args, markdown, raw, started, "scaling")
        return

    inputs = data.ensure_inputs(cache, args.scale, log=log)
    scen_list = sc.main_scenarios(inputs)
    if args.scenarios:
        wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()}
        known = {s.id for s in scen_list} | {s.id.split(".")[0] for s in scen_list}
        unknown = sorted(wanted - known)
        if unknown:
            sys.exit(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        scen_list = [s for s in scen_list if s.id in wanted or s.id.split(".")[0] in wanted]
    results = []
    for scen in scen_list:
        log(f"{scen.id}: {scen.title}")
        results.append(run_scenario(scen, ctx, compute_only=not args.no_compute_only))
    markdown = report_main(results, ctx, machine, inputs, started)
    print(markdown)
    raw = {"machine": machine, "args": vars(args), "results": raw_results(results)}
    write_results(args, markdown, raw, started, "")


if __name__ == "__main__":
    main()
