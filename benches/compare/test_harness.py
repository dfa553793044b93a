"""Checks of the measuring instrument itself (seconds, no tool timings).

Run: .venv/bin/python -m unittest benches/compare/test_harness.py
"""

import gzip
import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import data  # noqa: E402
import run  # noqa: E402
import scenarios as sc  # noqa: E402


class WriterTest(unittest.TestCase):
    def test_nii_bytes_equal_nibabel(self):
        """Our streamed writer produces the very bytes nibabel's own save does."""
        for dtype, shape in ((np.int16, (5, 6, 7)), (np.float32, (4, 3, 2, 5)), (np.uint8, (3, 3, 3))):
            rng = np.random.default_rng(0)
            arr = (rng.standard_normal(shape) * 100).astype(dtype)
            affine = data._affine_bold(shape)
            with tempfile.TemporaryDirectory() as tmp:
                ref = Path(tmp) / "ref.nii"
                nib.save(nib.Nifti1Image(arr, affine), ref)
                mine = Path(tmp) / "mine.nii"
                volumes = [arr] if arr.ndim == 3 else [arr[..., t] for t in range(shape[3])]
                data.write_series(mine, shape, dtype, affine, volumes)
                self.assertEqual(ref.read_bytes(), mine.read_bytes(), f"{dtype} {shape}")
                mine_gz = Path(tmp) / "mine.nii.gz"
                data.write_series(mine_gz, shape, dtype, affine, volumes)
                self.assertEqual(gzip.decompress(mine_gz.read_bytes()), ref.read_bytes())

    def test_wrong_volume_count_is_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "x.nii"
            with self.assertRaises(RuntimeError):
                data.write_series(path, (2, 2, 2, 3), np.int16, np.eye(4), [np.zeros((2, 2, 2))])
            self.assertFalse(path.exists())

    def test_generation_is_deterministic(self):
        """Two generations give the same bytes; no gzipped input has an uncompressed sibling
        (niimath, given X.nii.gz, reads X.nii instead when it exists in the same directory);
        a second call finds the cache up to date instead of generating again."""
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            inputs = data.ensure_inputs(Path(a), "small", log=lambda _: None)
            data.ensure_inputs(Path(b), "small", log=lambda _: None)
            root_a, root_b = Path(a) / "small", Path(b) / "small"
            names = sorted(str(p.relative_to(root_a)) for p in root_a.rglob("*") if p.is_file())
            self.assertIn(f"{data.GZ_DIR}/bold.nii.gz", names)
            for name in names:
                self.assertEqual((root_a / name).read_bytes(), (root_b / name).read_bytes(), name)

            gz_inputs = [
                Path(path)
                for s in sc.main_scenarios(inputs)
                for path in s.inputs.values()
                if path.endswith(".nii.gz")
            ]
            self.assertTrue(gz_inputs)
            for path in gz_inputs:
                self.assertTrue(path.exists(), path)
                self.assertFalse(path.with_suffix("").exists(), path)
            self.assertEqual(data.ensure_inputs(Path(a), "small", log=self.fail), inputs)


class CompareTest(unittest.TestCase):
    def _pair(self, ref, out, ref_dtype=None):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        ref_path, out_path = Path(tmp) / "ref.nii", Path(tmp) / "out.nii"
        ref_img = nib.Nifti1Image(ref, np.eye(4))
        if ref_dtype is not None:
            ref_img.set_data_dtype(ref_dtype)
        ref_img.to_filename(ref_path)
        nib.Nifti1Image(out, np.eye(4)).to_filename(out_path)
        return run.compare_outputs(ref_path, out_path)

    def test_equal_and_float32_rounding_agree(self):
        ref = np.random.default_rng(1).standard_normal((4, 5, 6)) * 50
        self.assertEqual(self._pair(ref, ref.copy()).state, "ok")
        self.assertEqual(self._pair(ref, ref.astype(np.float32)).state, "ok")

    def test_small_relative_error_is_a_mismatch(self):
        ref = np.random.default_rng(1).uniform(1, 2, (4, 5, 6))
        out = ref.copy()
        out[1, 2, 3] *= 1.001
        status = self._pair(ref, out)
        self.assertEqual(status.state, "mismatch")
        self.assertIn("1 values", status.detail)

    def test_ddof_difference_is_a_mismatch(self):
        """niimath's -Tstd without the ddof factor must not pass as numpy's np.std."""
        bold = np.random.default_rng(2).normal(800, 10, (3, 3, 3, 200))
        status = self._pair(np.std(bold, axis=-1), np.std(bold, axis=-1, ddof=1))
        self.assertEqual(status.state, "mismatch")

    def test_shape_difference_is_a_mismatch(self):
        status = self._pair(np.zeros((4, 5, 6)), np.zeros((4, 5, 6, 1)))
        self.assertEqual(status.state, "mismatch")
        self.assertIn("shape", status.detail)

    def test_nan_and_inf_must_match(self):
        ref = np.array([[[np.nan, np.inf, 1.0]]])
        self.assertEqual(self._pair(ref, ref.copy()).state, "ok")
        self.assertEqual(self._pair(ref, np.array([[[0.0, np.inf, 1.0]]])).state, "mismatch")

    def test_quantised_reference_allows_half_a_step(self):
        """nilearn writes S6 in the atlas's int16 with scaling; its rounding is not a mismatch."""
        ref = np.linspace(-1.0, 1.0, 60).reshape(3, 4, 5)
        self.assertEqual(self._pair(ref, ref, ref_dtype=np.int16).state, "ok")


class MeasureTest(unittest.TestCase):
    def test_peak_rss_is_the_tool_s_not_the_harness_s(self):
        ballast = np.ones(400 * 2**20 // 8)  # 400 MB resident in this process
        ballast[::512] = 2.0
        with tempfile.TemporaryDirectory() as tmp:
            wall, rss_kb, rc, _ = run.measure([["true"]], {"PATH": "/usr/bin:/bin"}, Path(tmp), 60)
            self.assertEqual(rc, 0)
            self.assertLess(rss_kb, 50 * 1024)
            self.assertGreater(wall, 0)
            big = [sys.executable, "-c", "import numpy as np; a = np.ones(200 * 2**20 // 8)"]
            _, rss_kb, rc, _ = run.measure([big], {}, Path(tmp), 60)
            self.assertEqual(rc, 0)
            self.assertGreater(rss_kb, 200 * 1024)
            self.assertLess(rss_kb, 350 * 1024)
        del ballast

    def test_chain_stops_at_first_failure(self):
        with tempfile.TemporaryDirectory() as tmp:
            _, _, rc, tail = run.measure(
                [["false"], ["true"]], {"PATH": "/usr/bin:/bin"}, Path(tmp), 60
            )
            self.assertEqual(rc, 1)


class GoalTest(unittest.TestCase):
    def test_goals_are_computed_from_the_medians(self):
        inputs = data.Inputs(root=Path("/nonexistent"), sizes=data.SCALES["small"])
        by_id = {s.id: s for s in sc.main_scenarios(inputs)}
        s2 = run.Result(by_id["S2.nii"])
        s2.walls = {"voxcalc": [0.1, 0.1, 0.5], "nilearn": [2.0, 1.0, 3.0], "niimath": [0.2, 0.2, 0.2]}
        s2.rss_kb = {"voxcalc": [100], "nilearn": [1000], "niimath": [150]}
        s2.compute = {"voxcalc": [0.01], "numpy": [0.05], "numexpr": "failed"}
        s2.phases = {"compile": [0.0004, 0.002, 0.0005], "compute": [0.01], "compute_1t": [0.012]}
        rows = {(r[1], r[2]): (r[3], r[4]) for r in run.goal_rows([s2])}
        self.assertEqual(rows[("S2.nii", "nilearn time / voxcalc time >= 15")], ("20.00x", "met"))
        self.assertEqual(rows[("S2.nii", "niimath time / voxcalc time >= 3")], ("2.00x", "NOT met"))
        self.assertEqual(rows[("S2", "numpy compute / voxcalc compute >= 2")], ("5.00x", "met"))
        self.assertEqual(rows[("S2", "numexpr compute / voxcalc compute >= 2")][1], "not measured")
        self.assertEqual(rows[("S2", "voxcalc kernel compile latency < 1 ms")][1], "met")
        self.assertEqual(
            rows[("S2", "voxcalc compute, 1 thread / default threads >= 1.3")], ("1.20x", "NOT met")
        )
        self.assertEqual(rows[("S6.nii", "nilearn time / voxcalc time >= 5")][1], "not measured")


class ScenarioTest(unittest.TestCase):
    def test_niimath_std_factor_turns_ddof1_into_ddof0(self):
        x = np.random.default_rng(3).standard_normal(20)
        factor = sc.std_ddof0_factor(20)
        self.assertAlmostEqual(np.std(x, ddof=1) * factor, np.std(x), places=12)

    def test_every_main_scenario_has_nilearn_semantics(self):
        inputs = data.Inputs(root=Path("/nonexistent"), sizes=data.SCALES["small"])
        scens = sc.main_scenarios(inputs)
        ids = [s.id for s in scens]
        self.assertEqual(len(ids), len(set(ids)))
        for family in ("S1", "S2", "S3", "S4", "S5", "S6"):
            self.assertTrue(any(i.startswith(family + ".") for i in ids), family)
        for s in scens:
            if s.kind == "formula":
                cmd = sc.voxcalc_command(s, "voxcalc", "out")
                self.assertEqual(cmd[:3], ["voxcalc", "eval", s.formula])
                self.assertEqual(cmd[-2:], ["-o", "out"])


# A stand-in with voxcalc's command-line interface, computing with numpy, to exercise the harness's
# voxcalc path (probing, agreement check, timing, --timings parsing) before the real binary exists.
# It is a test double: its numbers never reach a report.
STANDIN = """#!{python}
import sys
import nibabel as nib
import numpy as np

args = sys.argv[1:]
if args == ["--version"]:
    print("voxcalc 0.0.0 (test stand-in)")
    sys.exit(0)
if not args or args[0] != "eval":
    print("error: unrecognized subcommand", file=sys.stderr)
    sys.exit(2)
if "--help" in args:
    print("Usage: voxcalc eval [--timings] [--threads N] FORMULA NAME=PATH... -o OUT")
    sys.exit(0)
out = args[args.index("-o") + 1]
pairs = [a for a in args[2:] if "=" in a]
images = dict(p.split("=", 1) for p in pairs)
arrays = {{k: np.asanyarray(nib.load(v).dataobj) for k, v in images.items()}}
result = eval(args[1], {{"np": np}}, arrays) + {offset}
nib.Nifti1Image(result, nib.load(list(images.values())[-1]).affine).to_filename(out)
if "--timings" in args:
    compute = "3 ms" if "--threads" in args else "1.5 ms"
    print(f"parse 0.1 ms\\ncompile 420 us\\ncompute {{compute}}\\nwrite 2 ms", file=sys.stderr)
"""


class StandInVoxcalcTest(unittest.TestCase):
    def _run(self, offset, tools):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        binary = tmp / "voxcalc"
        binary.write_text(STANDIN.format(python=sys.executable, offset=offset))
        binary.chmod(0o755)
        args = run.parse_args(
            ["--scale", "small", "--repeats", "2", "--tools", tools, "--voxcalc", str(binary)]
        )
        vox = run.probe_voxcalc(str(binary))
        self.assertTrue(vox.has_eval and vox.eval_timings and not vox.has_signals)
        ctx = run.Context(
            args=args,
            tools=args.tool_list,
            timed=args.timed_tools,
            niimath=None,
            voxcalc=vox,
            unavailable={},
            base_env=dict(os.environ, NUMEXPR_NUM_THREADS="2"),
            work=tmp / "runs",
        )
        inputs = data.ensure_inputs(tmp / "cache", "small", log=lambda _: None)
        by_id = {s.id: s for s in sc.main_scenarios(inputs)}
        return ctx, by_id

    def test_agreeing_tool_is_timed_with_ratio_and_compute_only(self):
        ctx, by_id = self._run(offset=0, tools="voxcalc,nilearn")
        res = run.run_scenario(by_id["S1.nii"], ctx, compute_only=True)
        self.assertEqual(res.status["voxcalc"].state, "ok")
        self.assertEqual(len(res.walls["voxcalc"]), 2)
        self.assertEqual(len(res.walls["nilearn"]), 2)
        self.assertEqual(res.compute["voxcalc"], [0.0015, 0.0015])
        self.assertEqual(res.phases["compute_1t"], [0.003, 0.003])
        self.assertEqual(len(res.phases["compile"]), 2)
        self.assertIn("x)", run._cell_whole(res, "nilearn"))
        s6 = run.run_scenario(by_id["S6.nii"], ctx, compute_only=False)
        self.assertEqual(s6.status["voxcalc"].state, "n/a")

    def test_disagreeing_tool_is_reported_and_not_timed(self):
        ctx, by_id = self._run(offset=1, tools="voxcalc")
        res = run.run_scenario(by_id["S1.nii"], ctx, compute_only=False)
        self.assertEqual(res.status["voxcalc"].state, "mismatch")
        self.assertEqual(res.status["nilearn"].state, "reference")
        self.assertEqual(res.walls, {}, "nilearn is only the reference when not asked for")
        self.assertNotIn("voxcalc", res.walls)
        self.assertEqual(run._cell_whole(res, "voxcalc"), "mismatch")


if __name__ == "__main__":
    unittest.main()
