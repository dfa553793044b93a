"""Runs a job's commands one after another and reports their wall time and peak RSS as JSON.

Usage: python -S -E measure.py SPEC_JSON
SPEC_JSON: {"commands": [{"argv": [...], "env": {...}}, ...], "stdout": PATH, "stderr": PATH}
Prints {"wall": seconds, "maxrss_kb": kB, "rc": exit code, "failed": index or null}.

Why a separate small process: on Linux a child's ru_maxrss starts at its parent's peak RSS (the
forked address space is charged to the child until exec replaces it), so a harness that holds
reference images in memory would inflate every tool's peak RSS. This wrapper is started with
`python -S -E` and imports only the standard library, so the floor it adds to a tool's peak RSS is
the few MB of a bare interpreter (run.py measures and reports that floor with `true`).

The wall time is measured here, around the spawn and wait of each command, so interpreter start-up
of this wrapper is not counted; a chain of commands (niimath with temp files) sums its wall times
and takes the largest peak RSS of its processes.
"""

import json
import os
import sys
import time


def main():
    spec = json.loads(sys.argv[1])
    out_fd = os.open(spec["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err_fd = os.open(spec["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    wall = 0.0
    maxrss_kb = 0
    rc = 0
    failed = None
    for index, command in enumerate(spec["commands"]):
        argv = command["argv"]
        env = command["env"]
        actions = [
            (os.POSIX_SPAWN_DUP2, out_fd, 1),
            (os.POSIX_SPAWN_DUP2, err_fd, 2),
        ]
        start = time.perf_counter()
        try:
            pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions)
        except OSError as err:
            os.write(err_fd, f"cannot start {argv[0]}: {err}\n".encode())
            rc, failed = 127, index
            break
        _, status, usage = os.wait4(pid, 0)
        wall += time.perf_counter() - start
        maxrss_kb = max(maxrss_kb, usage.ru_maxrss)
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            failed = index
            break
    print(json.dumps({"wall": wall, "maxrss_kb": maxrss_kb, "rc": rc, "failed": failed}))


if __name__ == "__main__":
    main()
