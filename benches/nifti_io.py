"""nibabel side of benches/nifti_io.rs: times the same operations on the same files.

Usage: python nifti_io.py VOLUME.nii SERIES.nii.gz OUT.nii.gz
Then reads one command per line on stdin (read_nii, read_gz, write_gz, read PATH) and answers each with the
wall-clock and CPU seconds it took, so that the Rust side can alternate voxcalc and nibabel runs (the machine's load
then affects both alike). The data for write_gz are loaded once, untimed.
"""

import sys
import time

import nibabel as nib
import numpy as np


def main():
    nii, nii_gz, out = sys.argv[1], sys.argv[2], sys.argv[3]
    source = {}

    def read_nii():
        # nibabel memory-maps an uncompressed .nii: dataobj becomes a numpy memmap.
        np.asanyarray(nib.load(nii).dataobj)

    def read_gz():
        np.asanyarray(nib.load(nii_gz).dataobj)

    def write_gz():
        img, data = source["img"], source["data"]
        nib.save(nib.Nifti1Image(data, img.affine, img.header), out)

    ops = {"read_nii": read_nii, "read_gz": read_gz, "write_gz": write_gz}
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "read":
            ops["read"] = lambda path=argument: np.asanyarray(nib.load(path).dataobj)
        elif command not in ops:
            break
        if command == "write_gz" and not source:
            source["img"] = nib.load(nii_gz)
            source["data"] = np.asanyarray(source["img"].dataobj)
        start, start_cpu = time.perf_counter(), time.process_time()
        ops[command]()
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        print(f"{wall:.6f} {cpu:.6f}", flush=True)


if __name__ == "__main__":
    main()
