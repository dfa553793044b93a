"""nilearn side of benches/regions.rs: times nilearn 0.14's signals_to_img_labels on the same
atlas and signals.

Usage:
  python regions_compare.py inmem SIGNALS.npy ATLAS REPS
      builds the image in memory REPS times from an atlas already loaded into memory and prints
      one line per run: the seconds it took.
  python regions_compare.py job SIGNALS.npy ATLAS OUT
      the whole job as a script does it: load the signals and the atlas, build, `to_filename`;
      prints `seconds peak_kb` (wall time after the imports; peak resident memory of the
      process).
  python regions_compare.py extract IMG ATLAS REPS
      img_to_signals_labels(IMG, ATLAS) from the files, REPS times; one line of seconds per run.
"""

import resource
import sys
import time
import warnings

import nibabel as nib
import numpy as np
from nilearn.regions import img_to_signals_labels, signals_to_img_labels

warnings.simplefilter("ignore")


def main():
    mode, signals_path, atlas_path = sys.argv[1:4]
    if mode == "inmem":
        signals = np.load(signals_path)
        atlas = nib.load(atlas_path)
        atlas = nib.Nifti1Image(np.asanyarray(atlas.dataobj), atlas.affine, atlas.header)
        for _ in range(int(sys.argv[4])):
            start = time.perf_counter()
            img = signals_to_img_labels(signals, atlas)
            elapsed = time.perf_counter() - start
            del img
            print(f"{elapsed:.6f}", flush=True)
    elif mode == "job":
        start = time.perf_counter()
        signals = np.load(signals_path)
        signals_to_img_labels(signals, atlas_path).to_filename(sys.argv[4])
        elapsed = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{elapsed:.6f} {peak_kb}", flush=True)
    elif mode == "extract":
        img_path = signals_path
        for _ in range(int(sys.argv[4])):
            start = time.perf_counter()
            img_to_signals_labels(img_path, atlas_path)
            print(f"{time.perf_counter() - start:.6f}", flush=True)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
