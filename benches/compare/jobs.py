"""The Python tools' side of benches/compare: one whole job, or compute-only timings, per process.

Usage (run by run.py, one process per job):
  python jobs.py whole TOOL SCENARIO_JSON
  python jobs.py compute TOOL SCENARIO_JSON REPEATS

TOOL is nilearn, numpy or numexpr. SCENARIO_JSON is a serialised scenarios.Scenario plus "out"
(whole jobs). A whole job loads its inputs, computes and writes the output file, as a user's script
would; it imports only what that tool needs, since imports are part of the job. A compute-only run
loads the inputs into memory once (in-memory arrays, or in-memory images for nilearn), runs the
computation once untimed, then REPEATS times timed, and prints {"times": [seconds, ...]} as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _load_arrays(inputs):
    """Data as nilearn sees it (`np.asanyarray(img.dataobj)`: memory-mapped for .nii), and the
    affine of the last image, which is the one math_img gives its result."""
    import nibabel as nib
    import numpy as np

    arrays = {}
    affine = None
    for name, path in inputs.items():
        img = nib.load(path)
        arrays[name] = np.asanyarray(img.dataobj)
        affine = img.affine
    return arrays, affine


def _numpy_compute(formula, arrays):
    import numpy as np

    # The formula is the numpy code itself, the same text nilearn's math_img evaluates.
    return eval(formula, {"__builtins__": {}, "np": np}, dict(arrays))


def _numexpr_compute(plan, formula, arrays):
    import numexpr as ne
    import numpy as np

    ne.set_num_threads(int(os.environ.get("NUMEXPR_NUM_THREADS", "2")))
    if plan == "evaluate":
        return ne.evaluate(formula.replace("np.", ""), local_dict=dict(arrays))
    bold = arrays["bold"]
    if plan == "mean_t":
        return np.mean(bold, axis=-1)
    if plan == "tsnr":
        mean = np.mean(bold, axis=-1)
        std = np.std(bold, axis=-1)
        return ne.evaluate("mean / std")
    if plan == "zscore":
        mean = np.mean(bold, axis=-1, keepdims=True)
        std = np.std(bold, axis=-1, keepdims=True)
        return ne.evaluate("(bold - mean) / std")
    raise ValueError(f"unknown numexpr plan {plan!r}")


def _numpy_signals_to_labels(signals, atlas):
    """Region signals (T x R) to a 4-D image through a lookup table indexed by each voxel's label."""
    import numpy as np

    labels = np.unique(atlas)
    labels = labels[labels != 0]
    table = np.zeros((len(labels) + 1, signals.shape[0]), dtype=signals.dtype)
    table[1:] = signals.T
    idx = np.searchsorted(labels, atlas) + 1
    idx[atlas == 0] = 0
    return table[idx]


def _save(data, affine, out):
    import nibabel as nib

    nib.Nifti1Image(data, affine).to_filename(out)


def whole_job(tool, sc):
    out = sc["out"]
    if tool == "nilearn":
        if sc["kind"] == "signals":
            import numpy as np
            from nilearn.regions import signals_to_img_labels

            signals = np.load(sc["inputs"]["signals"])
            signals_to_img_labels(signals, sc["inputs"]["atlas"]).to_filename(out)
        else:
            from nilearn.image import math_img

            math_img(sc["formula"], **sc["inputs"]).to_filename(out)
        return
    if sc["kind"] == "signals":
        if tool != "numpy":
            raise SystemExit(f"{tool} has no signals_to_img_labels")
        import numpy as np

        arrays, affine = _load_arrays({"atlas": sc["inputs"]["atlas"]})
        signals = np.load(sc["inputs"]["signals"])
        _save(_numpy_signals_to_labels(signals, arrays["atlas"]), affine, out)
        return
    arrays, affine = _load_arrays(sc["inputs"])
    if tool == "numpy":
        result = _numpy_compute(sc["formula"], arrays)
    elif tool == "numexpr":
        result = _numexpr_compute(sc["numexpr_plan"], sc["formula"], arrays)
    else:
        raise SystemExit(f"unknown tool {tool!r}")
    _save(result, affine, out)


def compute_only(tool, sc, repeats):
    """Times the computation alone on inputs already in memory."""
    import nibabel as nib
    import numpy as np

    if sc["kind"] == "signals":
        signals = np.load(sc["inputs"]["signals"])
        atlas_img = nib.load(sc["inputs"]["atlas"])
        atlas = np.array(atlas_img.dataobj)
        if tool == "nilearn":
            from nilearn.regions import signals_to_img_labels

            atlas_mem = nib.Nifti1Image(atlas, atlas_img.affine)

            def run():
                return signals_to_img_labels(signals, atlas_mem)
        elif tool == "numpy":

            def run():
                return _numpy_signals_to_labels(signals, atlas)
        else:
            raise SystemExit(f"{tool} has no signals_to_img_labels")
    else:
        arrays = {}
        images = {}
        for name, path in sc["inputs"].items():
            img = nib.load(path)
            arrays[name] = np.array(img.dataobj)
            images[name] = nib.Nifti1Image(arrays[name], img.affine)
        if tool == "nilearn":
            from nilearn.image import math_img

            def run():
                return math_img(sc["formula"], **images)
        elif tool == "numpy":

            def run():
                return _numpy_compute(sc["formula"], arrays)
        elif tool == "numexpr":

            def run():
                return _numexpr_compute(sc["numexpr_plan"], sc["formula"], arrays)
        else:
            raise SystemExit(f"unknown tool {tool!r}")
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        del result
    print(json.dumps({"times": times}))


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    mode, tool, scenario = argv[0], argv[1], json.loads(argv[2])
    if mode == "whole":
        whole_job(tool, scenario)
    elif mode == "compute":
        compute_only(tool, scenario, int(argv[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
