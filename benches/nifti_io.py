"""nibabel side of benches/nifti_io.rs: times the same operations on the same files.

Usage: python nifti_io.py VOLUME.nii SERIES.nii.gz OUT.nii.gz RUNS
Prints per-run times and a final line "medians READ_NII READ_GZ WRITE_GZ" (seconds).
"""

import statistics
import sys
import time

import nibabel as nib
import numpy as np


def timed(runs, fn):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main():
    nii, nii_gz, out, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def read_nii():
        # nibabel memory-maps an uncompressed .nii: dataobj becomes a numpy memmap.
        np.asanyarray(nib.load(nii).dataobj)

    def read_gz():
        np.asanyarray(nib.load(nii_gz).dataobj)

    img = nib.load(nii_gz)
    data = np.asanyarray(img.dataobj)

    def write_gz():
        nib.save(nib.Nifti1Image(data, img.affine, img.header), out)

    times = [timed(runs, read_nii), timed(runs, read_gz), timed(runs, write_gz)]
    print("medians " + " ".join(f"{t:.6f}" for t in times))


if __name__ == "__main__":
    main()
