"""The scenarios of issue 8 and how each tool expresses them.

This module is imported both by the harness (run.py) and by the job worker (jobs.py), so it imports
nothing heavier than the standard library: a job's import time is part of what is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

S1 = "img1 + img2"
S2 = "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)"
S3 = "np.mean(bold, axis=-1)"
S4 = "np.mean(bold, axis=-1) / np.std(bold, axis=-1)"
S5 = "(bold - np.mean(bold, axis=-1, keepdims=True)) / np.std(bold, axis=-1, keepdims=True)"

# numexpr plans (implemented in jobs.py): "evaluate" runs the whole formula through
# numexpr.evaluate (after dropping the "np." prefixes); the others use numpy for the reduction along
# time (numexpr's reductions are single-threaded and must be the outermost operation) and numexpr for
# the element-wise rest.
NUMEXPR_EVALUATE = "evaluate"
NUMEXPR_MEAN_T = "mean_t"
NUMEXPR_TSNR = "tsnr"
NUMEXPR_ZSCORE = "zscore"


@dataclass(frozen=True)
class Scenario:
    """One whole job: a formula (or region signals to voxels) over named inputs, one output file.

    `inputs` maps formula names to file paths (strings, so the worker can take them from argv).
    `n_volumes` is the length of the time axis when a niimath chain needs it (ddof correction).
    """

    id: str
    title: str
    kind: str  # "formula" or "signals"
    formula: str | None
    inputs: dict[str, str]
    fmt: str  # output format: "nii" or "nii.gz"
    numexpr_plan: str | None = None
    niimath_chain: str | None = None
    n_volumes: int = 0
    # Whether this variant also gets compute-only timings (one variant per formula is enough).
    compute_only: bool = False
    # Extra `voxcalc eval` options of this job (e.g. `--stream always`).
    voxcalc_args: tuple[str, ...] = ()

    @property
    def output_name(self) -> str:
        return f"out.{self.fmt}"


def main_scenarios(inputs) -> list[Scenario]:
    """S1-S6 of issue 8 over the generated inputs (a data.Inputs)."""
    n_volumes = inputs.sizes.bold[3]

    def p(stem, fmt):
        return str(inputs.path(stem, fmt))

    def three_d(fmt):
        return {"img1": p("img1", fmt), "img2": p("img2", fmt)}

    out = []
    for fmt, compute in (("nii", True), ("nii.gz", False)):
        out.append(
            Scenario(
                id=f"S1.{fmt}",
                title="img1 + img2 (int16 + float32)",
                kind="formula",
                formula=S1,
                inputs=three_d(fmt),
                fmt=fmt,
                numexpr_plan=NUMEXPR_EVALUATE,
                niimath_chain="S1",
                compute_only=compute,
            )
        )
    out.append(
        Scenario(
            id="S2.nii",
            title="where(mask > 0, log(abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)",
            kind="formula",
            formula=S2,
            inputs={"mask": p("mask", "nii"), **three_d("nii")},
            fmt="nii",
            numexpr_plan=NUMEXPR_EVALUATE,
            niimath_chain="S2",
            compute_only=True,
        )
    )
    for sid, title, formula, plan, chain in (
        ("S3", "mean over time", S3, NUMEXPR_MEAN_T, "S3"),
        ("S4", "tSNR: mean / std over time", S4, NUMEXPR_TSNR, "S4"),
        ("S5", "z-score over time (4-D -> 4-D)", S5, NUMEXPR_ZSCORE, "S5"),
    ):
        for fmt in ("nii.gz", "nii"):
            out.append(
                Scenario(
                    id=f"{sid}.{fmt}",
                    title=title,
                    kind="formula",
                    formula=formula,
                    inputs={"bold": p("bold", fmt)},
                    fmt=fmt,
                    numexpr_plan=plan,
                    niimath_chain=chain,
                    n_volumes=n_volumes,
                    compute_only=fmt == "nii",
                )
            )
    out.append(
        Scenario(
            id="S6.nii",
            title=f"signals_to_img_labels, {inputs.sizes.n_regions} regions x {n_volumes} volumes",
            kind="signals",
            formula=None,
            inputs={"signals": str(inputs.signals_npy), "atlas": p("atlas", "nii")},
            fmt="nii",
            compute_only=True,
        )
    )
    return out


def std_ddof0_factor(n_volumes: int) -> float:
    """Factor turning niimath's -Tstd (n - 1 denominator, as fslmaths) into numpy's np.std (n)."""
    return math.sqrt((n_volumes - 1) / n_volumes)


def niimath_commands(scenario: Scenario, niimath: str, out: str, tmp: str) -> list[list[str]] | None:
    """The niimath processes of one job, in order, or None when niimath cannot express it.

    Intermediate files are uncompressed .nii in `tmp` (the fastest choice for niimath). Each
    command's output format is set through FSLOUTPUTTYPE by the harness from the file's extension,
    since niimath ignores the extension given on the command line.
    """
    chain = scenario.niimath_chain
    ins = scenario.inputs
    if chain is None:
        return None
    if chain == "S1":
        return [[niimath, ins["img1"], "-add", ins["img2"], out]]
    if chain == "S2":
        # img2 / (img1 + 1) as img2 * (1 / (img1 + 1)): one process instead of two, within one
        # float32 rounding of the division.
        quotient = f"{tmp}/quotient.nii"
        return [
            [niimath, ins["img1"], "-add", "1", "-recip", "-mul", ins["img2"], quotient],
            [
                niimath, ins["img1"], "-abs", "-add", "1", "-log", "-mul", "2.5",
                "-sub", quotient, "-mas", ins["mask"], out,
            ],
        ]
    if chain == "S3":
        return [[niimath, ins["bold"], "-Tmean", out]]
    if chain == "S4":
        factor = f"{std_ddof0_factor(scenario.n_volumes):.17g}"
        std = f"{tmp}/std.nii"
        return [
            [niimath, ins["bold"], "-Tstd", "-mul", factor, std],
            [niimath, ins["bold"], "-Tmean", "-div", std, out],
        ]
    if chain == "S5":
        factor = f"{std_ddof0_factor(scenario.n_volumes):.17g}"
        mean = f"{tmp}/mean.nii"
        std = f"{tmp}/std.nii"
        return [
            [niimath, ins["bold"], "-Tmean", mean],
            [niimath, ins["bold"], "-Tstd", "-mul", factor, std],
            [niimath, ins["bold"], "-sub", mean, "-div", std, out],
        ]
    if chain == "mean_of_inputs":
        names = sorted(ins, key=lambda name: int(name[1:]))
        cmd = [niimath, ins[names[0]]]
        for name in names[1:]:
            cmd += ["-add", ins[name]]
        return [cmd + ["-div", str(len(names)), out]]
    raise ValueError(f"unknown niimath chain {chain!r}")


def voxcalc_command(scenario: Scenario, voxcalc: str, out: str, extra=()) -> list[str]:
    """The voxcalc command line of one job (issue 5's `eval`, issue 7's `signals-to-img`)."""
    if scenario.kind == "signals":
        return [
            voxcalc, "signals-to-img", scenario.inputs["signals"],
            "--labels", scenario.inputs["atlas"], "-o", out, *extra,
        ]
    pairs = [f"{name}={path}" for name, path in scenario.inputs.items()]
    return [voxcalc, "eval", scenario.formula, *pairs, "-o", out, *scenario.voxcalc_args, *extra]
