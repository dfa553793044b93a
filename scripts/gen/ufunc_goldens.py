"""numpy goldens for every voxcalc function and operator, over every dtype, on special values.

Writes target/goldens/ufunc_goldens/cases.txt (relative to the repository root): one block per
case, read by crates/jit/tests/goldens.rs, which evaluates each formula with the JIT and the
reference interpreter and compares with numpy (bit-exact, or within a stated ULP bound).

Block format (one item per line, fields separated by a single space):
    case <name> <formula>
    image <var> <dtype> <dims comma-separated or '-'> <hex of the Fortran-order bytes>
    result <dtype> <dims or '-'> <hex>        (or: error <numpy exception class>)
    end
Inputs are Fortran-ordered like NIfTI data; results are flattened in Fortran order.
Deterministic: fixed values and a seeded generator.
"""

import os
import sys
import warnings

import numpy as np

OUT = os.path.join("target", "goldens", "ufunc_goldens")
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
          "float32", "float64"]
N = 48


def specials(dtype, rng, salt):
    """N values of `dtype`: signed zeros, infinities, NaN, subnormals, extremes, rounding ties,
    then seeded random values."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        fi = np.finfo(dt)
        base = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.5,
                float(fi.smallest_subnormal), -float(fi.smallest_subnormal),
                float(fi.tiny), float(fi.max), -float(fi.max), float(fi.eps), 0.1, 1e-3, 100.0,
                np.pi, -np.pi / 3, 0.9999, 1e10, -7.25, 2.0]
        vals = np.array(base, dtype=dt)
        extra = (rng.standard_normal(N - len(vals)) * 10.0 ** rng.integers(-3, 4, N - len(vals)))
        vals = np.concatenate([vals, extra.astype(dt)])
    elif dt.kind in "iu":
        ii = np.iinfo(dt)
        base = [0, 1, 2, 3, 7, ii.max, ii.max - 1, ii.min, 100 % (ii.max + 1), 5]
        if dt.kind == "i":
            base += [-1, -2, -3, -7, ii.min + 1, -100 % 127 - 100]
        vals = np.array(base, dtype=dt)
        extra = rng.integers(ii.min, ii.max, N - len(vals), dtype=dt, endpoint=True)
        vals = np.concatenate([vals, extra])
    else:
        vals = rng.integers(0, 2, N).astype(bool)
    vals = vals[:N]
    # A different order per operand so binary cases pair different specials.
    return np.roll(vals, salt * 7)


UNARY_FLOAT = ["sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin",
               "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh",
               "arccosh", "arctanh", "deg2rad", "rad2deg", "degrees", "radians", "reciprocal",
               "fabs", "isposinf", "isneginf", "nan_to_num"]
UNARY_ALL = ["negative", "positive", "abs", "absolute", "sign", "square", "floor", "ceil",
             "trunc", "rint", "fix", "around", "round", "isnan", "isinf", "isfinite", "signbit",
             "logical_not"]
UNARY_INT = ["invert", "bitwise_not"]
BINARY_ALL = ["add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "mod",
              "remainder", "fmod", "minimum", "maximum", "fmin", "fmax", "greater",
              "greater_equal", "less", "less_equal", "equal", "not_equal", "logical_and",
              "logical_or", "logical_xor"]
BINARY_FLOAT = ["arctan2", "hypot", "copysign", "heaviside", "logaddexp", "logaddexp2",
                "float_power", "power"]
BINARY_INT = ["bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift"]
OPERATORS = ["a + b", "a - b", "a * b", "a / b", "a // b", "a % b", "-a", "+a", "a > b",
             "a >= b", "a < b", "a <= b", "a == b", "a != b"]
INT_OPERATORS = ["~a", "a & b", "a | b", "a ^ b", "a << b", "a >> b"]
REDUCTIONS = ["sum", "prod", "mean", "std", "var", "min", "max", "amin", "amax", "ptp", "median",
              "argmin", "argmax", "any", "all", "count_nonzero", "nansum", "nanmean", "nanstd",
              "nanvar", "nanmin", "nanmax", "nanmedian"]


def cases():
    rng = np.random.default_rng(20260401)
    out = []
    for dt in DTYPES:
        a = specials(dt, rng, 0)
        b = specials(dt, rng, 1)
        is_float = np.dtype(dt).kind == "f"
        names = UNARY_ALL + (UNARY_FLOAT if is_float else UNARY_INT + ["sqrt", "exp", "log"])
        for f in names:
            out.append((f, f"np.{f}(a)", {"a": a}))
        out.append(("round2", "np.round(a, 2)", {"a": a}))
        # Integer rounding to tens: keep away from the dtype's ends, where the rounded value
        # does not fit and numpy's cast back is undefined.
        half = a if is_float else np.clip(a, np.iinfo(dt).min // 2, np.iinfo(dt).max // 2)
        out.append(("round-1", "np.round(a, -1)", {"a": half}))
        out.append(("clip", "np.clip(a, 1, 100)", {"a": a}))
        out.append(("where", "np.where(a > b, a, b)", {"a": a, "b": b}))
        for to in DTYPES + ["bool", "float16"]:
            src = a
            if is_float and to != "bool" and np.dtype(to).kind in "iu":
                # numpy leaves float-to-int casts of NaN, infinities and out-of-range values
                # undefined (it warns); only defined conversions are goldens.
                ii = np.iinfo(to)
                ok = np.isfinite(a) & (a > float(ii.min) - 1) & (a < float(ii.max))
                src = np.where(ok, a, 0).astype(a.dtype)
            out.append((f"astype_{to}", f"a.astype(np.{to})" if to != "bool" else "a.astype(bool)",
                        {"a": src}))
        if dt in ("uint8", "int8"):
            # sin of (u)int8 is float16 in numpy, rounded once before the float64 addition.
            out.append(("float16_mixed", "np.exp(a / 10.0) + np.sin(a)", {"a": a}))
            out.append(("float16_compare", "np.sqrt(a) > 1.4142", {"a": a}))
        for f in BINARY_ALL + (BINARY_FLOAT if is_float else BINARY_INT):
            out.append((f, f"np.{f}(a, b)", {"a": a, "b": b}))
        if not is_float:
            # Integer powers with non-negative exponents (numpy rejects negative ones).
            e = (np.abs(b.astype(np.int64)) % 9).astype(dt)
            out.append(("power", "np.power(a, b)", {"a": a, "b": e}))
            out.append(("a ** b", "a ** b", {"a": a, "b": e}))
            s = (np.abs(b.astype(np.int64)) % (8 * np.dtype(dt).itemsize + 3)).astype(dt)
            out.append(("shift", "np.left_shift(a, b) + np.right_shift(a, b)", {"a": a, "b": s}))
            if dt.startswith("int"):
                # A negative exponent anywhere: numpy raises (ValueError), voxcalc too.
                out.append(("a ** b_negative", "a ** b", {"a": a, "b": b}))
        else:
            out.append(("a ** b", "a ** b", {"a": a, "b": b}))
        for op in OPERATORS + ([] if is_float else INT_OPERATORS):
            out.append((op, op, {"a": a, "b": b}))
        # Reductions over a Fortran-ordered 3-D array: whole, first axis, time (last) axis.
        v = np.asfortranarray(specials(dt, rng, 2)[:48].reshape(4, 3, 4, order="F"))
        w = np.asfortranarray(np.abs(specials(dt, rng, 3)).reshape(4, 3, 4, order="F"))
        for f in REDUCTIONS:
            for axis in ["", ", axis=0", ", axis=-1"]:
                out.append((f, f"np.{f}(v{axis})", {"v": v}))
                if is_float:
                    out.append((f + "_finite", f"np.{f}(w{axis})", {"w": np.nan_to_num(w)}))
        out.append(("std_ddof", "np.std(v, axis=-1, ddof=1)", {"v": v}))
        out.append(("percentile", "np.percentile(v, 95)", {"v": v}))
        out.append(("percentile_axis", "np.percentile(v, 30, axis=-1)", {"v": v}))
        out.append(("quantile", "np.quantile(v, 0.3, axis=0)", {"v": v}))
        out.append(("nanpercentile", "np.nanpercentile(v, 95, axis=-1)", {"v": v}))
        # A list of q: a leading axis of len(q).
        for formula in ["np.percentile(v, [5, 50, 95])", "np.percentile(v, [5, 95], axis=-1)",
                        "np.quantile(v, [0.25, 0.75], axis=0)",
                        "np.nanpercentile(v, [10, 90], axis=-1)",
                        "np.percentile(v, [5, 95], axis=-1)[1]",
                        "np.percentile(v, [5, 95], axis=-1, keepdims=True)[0] + v",
                        "np.percentile(v, [95, 5])[0] - v"]:
            out.append(("percentile_list", formula, {"v": v}))
        out.append(("mean_keepdims", "v - np.mean(v, axis=-1, keepdims=True)", {"v": v}))
        out.append(("masked_mean", "np.mean(v[m > 0])",
                    {"v": v, "m": (np.arange(12).reshape(4, 3, order="F") % 3 == 0).astype(np.uint8)}))
        out.append(("method_mean", "v.mean(axis=-1)", {"v": v}))
        # Reductions of an empty selection: numpy raises for those without an identity.
        empty = np.zeros((4, 3), dtype=np.uint8)
        for f in ["max", "min", "ptp", "argmin", "argmax", "nanmax", "median", "mean"]:
            out.append((f"empty_{f}", f"np.{f}(v[m > 0])", {"v": v, "m": empty}))
        out.append(("empty_percentile", "np.percentile(v[m > 0], 5)", {"v": v, "m": empty}))
        out.append(("zscore", "(v - v.mean(axis=-1)[..., None]) / v.std(axis=-1)[..., None]",
                    {"v": v}))
    # Summation order: float sums large enough for numpy's pairwise recursion (> 128 elements
    # per contiguous run), over a Fortran-ordered array, reduced globally, along the contiguous
    # axis 0, along the last (time) axis, and over a boolean-mask selection.
    for dt in ["float32", "float64"]:
        big = np.asfortranarray((rng.standard_normal((150, 4, 3)) * 1000).astype(dt))
        mask = (np.arange(600).reshape(150, 4, order="F") % 7 != 0).astype(np.uint8)
        for formula in ["np.sum(vb)", "np.mean(vb)", "np.std(vb)", "np.var(vb, ddof=1)",
                        "np.sum(vb, axis=0)", "np.mean(vb, axis=(0, 1))", "np.mean(vb, axis=-1)",
                        "np.std(vb, axis=-1)", "np.mean(vb[m > 0])", "np.std(vb[m > 0])",
                        "np.sum(vb[:, 1:3, :])", "np.nanmean(vb)", "np.median(vb)",
                        "np.percentile(vb, 37.5)"]:
            out.append(("order_" + formula, formula, {"vb": big, "m": mask}))
        # More strided elements than one numpy buffer (8192): summed per buffer.
        huge = np.asfortranarray((rng.standard_normal((100, 50, 4)) * 1000).astype(dt))
        m2 = (np.arange(5000).reshape(100, 50, order="F") % 11 != 0).astype(np.uint8)
        for formula in ["np.sum(vh[:, 1:49, :])", "np.mean(vh[:, ::2, 1:])", "np.sum(vh)",
                        "np.mean(vh[m2 > 0])", "np.std(vh[m2 > 0])"]:
            out.append(("order_" + formula, formula, {"vh": huge, "m2": m2}))
        # Global reductions long enough to be split into parallel parts (>= 65536 elements):
        # the merge must keep numpy's order.
        xl = np.asfortranarray((rng.standard_normal((331, 211)) * 1000).astype(dt))
        for formula in ["np.sum(vx)", "np.mean(vx)", "np.max(vx)", "np.nanmin(vx)",
                        "np.sum(vx > 100)", "np.any(vx > 4000)", "np.sum(vx[:, 1:])",
                        "np.sum(vx[1:, :])", "np.sum(vx.astype(np.int64))", "vx - np.mean(vx)",
                        "np.std(vx)", "np.var(vx, ddof=1)", "(vx - np.mean(vx)) / np.std(vx)"]:
            out.append(("order_" + formula, formula, {"vx": xl}))
        long = np.asfortranarray((rng.standard_normal((10000, 3, 2)) * 1000).astype(dt))
        out.append(("order_long_runs", "np.sum(vl[:, 1:3, :])", {"vl": long}))
    return out


def f16_rounding_lines():
    """numpy's rounding of float32 and float64 values to float16 (`x.astype(np.float16)` read
    back in x's dtype), for crates/ir/tests/f16.rs and crates/jit/tests/f16.rs: every float16
    value, every midpoint between neighbours (ties to even) and the values one ULP either side,
    subnormals, the overflow threshold (65504, 65520), infinities, NaN and seeded random values.
    Line format: `<f32|f64> <hex bits of x> <hex bits of the rounded value>`."""
    rng = np.random.default_rng(20261122)
    h = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    mids = (h[:-1] + h[1:]) / 2
    base = np.concatenate([h, mids, [65504.0, 65519.0, 65520.0, 65536.0, 1e6, 1e-8, 2.0 ** -25,
                                     2.0 ** -24, 3 * 2.0 ** -26, 5.960464477539063e-08,
                                     6.097555160522461e-05, 6.103515625e-05, np.inf, np.nan]])
    base = np.concatenate([base, -base])
    lines = []
    for dt, it in [(np.float32, np.uint32), (np.float64, np.uint64)]:
        x = base.astype(dt)
        near = np.concatenate([x, np.nextafter(x, dt(np.inf)), np.nextafter(x, dt(-np.inf))])
        rand = (rng.standard_normal(4000) * 10.0 ** rng.integers(-9, 6, 4000)).astype(dt)
        vals = np.concatenate([near, rand])
        with np.errstate(all="ignore"):
            out = vals.astype(np.float16).astype(dt)
        name = "f32" if dt == np.float32 else "f64"
        width = 8 if dt == np.float32 else 16
        for a, b in zip(vals.view(it), out.view(it)):
            lines.append(f"{name} {int(a):0{width}x} {int(b):0{width}x}")
    return lines


def enc(arr):
    arr = np.asarray(arr)
    dims = ",".join(str(d) for d in arr.shape) or "-"
    name = "bool" if arr.dtype == np.bool_ else arr.dtype.name
    data = arr.flatten(order="F").astype(arr.dtype.newbyteorder("<")).tobytes().hex()
    return f"{name} {dims} {data or '-'}"


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = []
    for name, formula, images in cases():
        lines.append(f"case {name.replace(' ', '_')} {formula}")
        for var, arr in images.items():
            lines.append(f"image {var} {enc(np.asfortranarray(arr))}")
        ns = {"np": np, **images}
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = eval(formula, {}, ns)  # noqa: S307 (the fixed formulas above)
            lines.append(f"result {enc(res)}")
        except Exception as e:  # numpy's rejection is part of the golden
            lines.append(f"error {type(e).__name__}")
        lines.append("end")
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "f16_rounding.txt"), "w") as f:
        f.write("\n".join(f16_rounding_lines()) + "\n")
    print(f"wrote {sum(1 for l in lines if l.startswith('case '))} cases to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
