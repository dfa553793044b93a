"""Loading conformance cases from the TOML files under cases/.

A case file holds one theme. An optional `[defaults]` table gives values every case of the file
inherits (kind, tolerance, output extension, source...). Each `[[case]]` is one case, or a
template when it has `over`: the case is then expanded once per item, `$x` (or `${x}`, and any
other key of a table item) being substituted in `formula` and in the `inputs` values, and the
item appended to the id (`add_scalar[i16]`). `expect_by` maps an item key to the outcome
for that item when it differs from `expect`.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("math", "signals_to_img", "img_to_signals", "roundtrip")
OUTCOMES = ("accept", "reject")
# Documented deviations from nilearn (docs/compat.md), each checked by --self-test:
#   header_dtype   with copy_header_from, nilearn saves into the source datatype; voxcalc writes the
#                  result dtype (values as computed, never quantised).
#   float16        numpy types the result float16 and nilearn cannot build the image; voxcalc
#                  computes and writes float32 (compared with `reference`, evaluated by nilearn).
#   extra_columns  signals with more columns than labels: nilearn ignores the extra ones, voxcalc
#                  refuses them.
#   python_eval    nilearn's eval accepts any Python expression (lambda, __import__); voxcalc's
#                  dialect refuses it.
#   header_row     a tsv/csv header row that does not match the labels: nilearn has no header
#                  row to check, voxcalc refuses the file.
# A case lists the deviations that apply to it (a string or a list of strings).
DEVIATIONS = ("header_dtype", "float16", "python_eval", "extra_columns", "header_row")

KNOWN_KEYS = {
    "id", "kind", "formula", "inputs", "copy_header_from", "expect", "expect_by", "deviation",
    "deviation_by", "reference", "tol", "out", "source", "note", "nilearn_error", "over", "args",
    "scalar", "stderr_regex", "labels", "mask", "background", "order", "signals", "img", "format", "group",
}


@dataclass
class Case:
    """One fully expanded case."""

    id: str
    kind: str
    expect: str
    file: str
    formula: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    copy_header_from: str | None = None
    deviation: tuple[str, ...] = ()
    reference: str | None = None
    tol: object = "exact"
    out: str = ".nii"
    source: str = ""
    note: str = ""
    nilearn_error: str | None = None
    args: list[str] = field(default_factory=list)
    scalar: bool = False
    # For rejected cases: a regex voxcalc's stderr must match (issue 5: a caret under the
    # offending token; DESIGN.md: broadcast errors suggest [..., None]).
    stderr_regex: str | None = None
    # Regions.
    labels: str | None = None
    mask: str | None = None
    background: float | None = None
    order: str | None = None
    signals: dict = field(default_factory=dict)
    img: str | None = None
    format: str = "npy"

    def fixture_ids(self) -> list[str]:
        ids = list(self.inputs.values())
        ids += [f for f in (self.labels, self.mask, self.img) if f]
        return ids


# The keys of a template case in which $x is substituted.
SUBSTITUTED = (
    "formula", "inputs", "reference", "copy_header_from", "labels", "mask", "img", "signals",
    "background", "order", "format", "out", "args",
)


class CaseError(Exception):
    """A malformed case file."""


def _subst(value, mapping):
    """Substitutes $x in strings; a value that is exactly "$x" takes the item itself (so that
    numbers stay numbers)."""
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{?(\w+)\}?", value)
        if m and m.group(1) in mapping:
            return mapping[m.group(1)]
        return string.Template(value).substitute({k: str(v) for k, v in mapping.items()})
    if isinstance(value, dict):
        return {k: _subst(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, mapping) for v in value]
    return value


def _item_key(item) -> str:
    return ",".join(str(v) for v in item.values()) if isinstance(item, dict) else str(item)


def _make(raw: dict, file: str) -> Case:
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise CaseError(f"{file}: case {raw.get('id')!r} has unknown keys {sorted(unknown)}")
    kind = raw.get("kind", "math")
    if kind not in KINDS:
        raise CaseError(f"{file}: case {raw['id']!r}: kind {kind!r} not in {KINDS}")
    expect = raw.get("expect", "accept")
    if expect not in OUTCOMES:
        raise CaseError(f"{file}: case {raw['id']!r}: expect {expect!r} not in {OUTCOMES}")
    deviation = raw.get("deviation") or ()
    deviation = tuple([deviation] if isinstance(deviation, str) else deviation)
    if any(d not in DEVIATIONS for d in deviation):
        raise CaseError(f"{file}: case {raw['id']!r}: deviation {deviation!r} unknown")
    if set(deviation) & {"python_eval", "extra_columns", "header_row"} and expect != "reject":
        raise CaseError(f"{file}: case {raw['id']!r}: deviation {deviation} means voxcalc rejects: expect = \"reject\"")
    if "float16" in deviation and not raw.get("reference"):
        raise CaseError(f"{file}: case {raw['id']!r}: a float16 deviation needs a reference formula")
    chf = raw.get("copy_header_from")
    if chf is not None and kind == "math" and chf not in raw.get("inputs", {}) and expect == "accept":
        raise CaseError(f"{file}: case {raw['id']!r}: copy_header_from names no input")
    if raw.get("stderr_regex") is not None:
        if expect != "reject":
            raise CaseError(f"{file}: case {raw['id']!r}: stderr_regex is only for rejected cases")
        re.compile(raw["stderr_regex"])
    out = raw.get("out", ".nii")
    if out not in (".nii", ".nii.gz", ".npy", ".tsv", ".csv", ".txt"):
        raise CaseError(f"{file}: case {raw['id']!r}: out {out!r}")
    return Case(
        id=raw["id"],
        kind=kind,
        expect=expect,
        file=file,
        formula=raw.get("formula", ""),
        inputs=dict(raw.get("inputs", {})),
        copy_header_from=chf,
        deviation=deviation,
        reference=raw.get("reference"),
        tol=raw.get("tol", "exact"),
        out=out,
        source=raw.get("source", ""),
        note=raw.get("note", ""),
        nilearn_error=raw.get("nilearn_error"),
        args=list(raw.get("args", [])),
        scalar=bool(raw.get("scalar", False)),
        stderr_regex=raw.get("stderr_regex"),
        labels=raw.get("labels"),
        mask=raw.get("mask"),
        background=raw.get("background"),
        order=raw.get("order"),
        signals=dict(raw.get("signals", {})),
        img=raw.get("img"),
        format=raw.get("format", "npy"),
    )


def load(cases_dir: Path) -> list[Case]:
    """Reads and expands every case file, in file-name order; ids are `<file stem>/<id>`."""
    result: list[Case] = []
    seen: set[str] = set()
    for path in sorted(cases_dir.glob("*.toml")):
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
        defaults = doc.get("defaults", {})
        for raw in doc.get("case", []):
            raw = {**defaults, **raw}
            if "id" not in raw:
                raise CaseError(f"{path.name}: a case has no id")
            over = raw.pop("over", None)
            expect_by = raw.pop("expect_by", {})
            deviation_by = raw.pop("deviation_by", {})
            items = over if over is not None else [None]
            for item in items:
                if item is None:
                    expanded = dict(raw)
                    key = None
                else:
                    mapping = dict(item) if isinstance(item, dict) else {"x": item}
                    key = _item_key(item)
                    expanded = {
                        k: (_subst(v, mapping) if k in SUBSTITUTED else v)
                        for k, v in raw.items()
                    }
                    expanded["id"] = f"{raw['id']}[{key}]"
                    if key in expect_by:
                        expanded["expect"] = expect_by[key]
                    if key in deviation_by:
                        expanded["deviation"] = deviation_by[key]
                try:
                    case = _make(expanded, path.name)
                except KeyError as exc:
                    raise CaseError(f"{path.name}: case {raw['id']!r}: missing {exc}") from exc
                case.id = f"{path.stem}/{case.id}"
                if case.id in seen:
                    raise CaseError(f"duplicate case id {case.id}")
                seen.add(case.id)
                result.append(case)
            unknown_keys = (set(expect_by) | set(deviation_by)) - {_item_key(i) for i in (over or [])}
            if unknown_keys:
                raise CaseError(f"{path.name}: case {raw['id']!r}: expect_by/deviation_by name unknown items {sorted(unknown_keys)}")
    return result
