"""Result-dtype tables of numpy 2 for the voxcalc checker (crates/check/tests/dtype_tables.rs).

For every binary operator and every registered function, over the storage dtypes uint8..float64
plus bool and float16, crossed with each other and with Python int / float / bool scalars on
either side (including Python ints out of an integer dtype's range), numpy evaluates the formula
on small arrays and we record the result dtype and shape, or the exception class when numpy
refuses. Reductions are recorded per dtype with axis=None and axis=-1 on a small 4-D array.

Output: target/goldens/dtype_tables/table.jsonl, one flat JSON object per line:
  {"formula": "a + b", "bindings": "a:int16:2x3;b:uint8:2x3", "result": "int16", "shape": "2x3",
   "error": ""}
(`result`/`shape` empty and `error` set to the exception class when numpy refuses).
Deterministic; runs in a few seconds.
"""

import json
import os
import warnings

import numpy as np

OUT_DIR = os.path.join("target", "goldens", "dtype_tables")

DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
          "float16", "float32", "float64"]
# Python scalars as written in a formula: a small int, ints out of the 8/16-bit and unsigned
# ranges, a float, a bool.
SCALARS = ["3", "100000", "-3", "2.5", "True"]
BINARY_OPS = ["+", "-", "*", "/", "//", "%", "**", "&", "|", "^", "<<", ">>",
              "==", "!=", "<", "<=", ">", ">="]
UNARY_OPS = ["-", "+", "~"]
UNARY_UFUNCS = [
    "negative", "positive", "absolute", "abs", "fabs", "sign", "square", "sqrt", "cbrt",
    "reciprocal", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan",
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh",
    "deg2rad", "rad2deg", "degrees", "radians", "floor", "ceil", "trunc", "rint", "fix",
    "isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit", "logical_not",
    "bitwise_not", "invert", "round", "around", "nan_to_num",
]
BINARY_UFUNCS = [
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "mod", "remainder",
    "fmod", "power", "float_power", "logaddexp", "logaddexp2", "arctan2", "hypot", "minimum",
    "maximum", "fmin", "fmax", "copysign", "heaviside", "greater", "greater_equal", "less",
    "less_equal", "equal", "not_equal", "logical_and", "logical_or", "logical_xor",
    "bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift",
]
REDUCTIONS = [
    "sum", "prod", "mean", "std", "var", "min", "amin", "max", "amax", "ptp", "median",
    "argmin", "argmax", "any", "all", "count_nonzero", "nansum", "nanprod", "nanmean", "nanstd",
    "nanvar", "nanmin", "nanmax", "nanmedian",
]
QUANTILES = [("percentile", "50"), ("percentile", "[5, 95]"), ("quantile", "0.5"),
             ("nanpercentile", "50"), ("nanquantile", "[0.25, 0.75]")]
METHODS = ["sum", "prod", "mean", "std", "var", "min", "max", "any", "all", "argmin", "argmax"]
ELEM_SHAPE = (2, 3)
RED_SHAPE = (2, 3, 4, 5)


def array(dtype, shape):
    n = int(np.prod(shape))
    if dtype == "bool":
        return (np.arange(n) % 2 == 0).reshape(shape)
    return (np.arange(n) % 5 + 1).astype(dtype).reshape(shape)


def evaluate(formula, bindings):
    env = {"np": np}
    for name, dtype, shape in bindings:
        env[name] = array(dtype, shape)
    entry = {
        "formula": formula,
        "bindings": ";".join(f"{n}:{d}:{'x'.join(map(str, s))}" for n, d, s in bindings),
        "result": "",
        "shape": "",
        "error": "",
    }
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = eval(formula, env)  # noqa: S307 (fixed formulas generated above)
    except Exception as exc:  # numpy's refusal is the data we record
        entry["error"] = type(exc).__name__
        return entry
    if isinstance(res, (bool, int, float)) and not isinstance(res, np.generic):
        entry["error"] = "python-scalar-result"
        return entry
    res = np.asarray(res)
    entry["result"] = res.dtype.name
    entry["shape"] = "x".join(map(str, res.shape))
    return entry


def main():
    entries = []
    e2 = ELEM_SHAPE
    for op in BINARY_OPS:
        for da in DTYPES:
            for db in DTYPES:
                entries.append(evaluate(f"a {op} b", [("a", da, e2), ("b", db, e2)]))
            for s in SCALARS:
                entries.append(evaluate(f"a {op} {s}", [("a", da, e2)]))
                entries.append(evaluate(f"{s} {op} a", [("a", da, e2)]))
    for op in UNARY_OPS:
        for da in DTYPES:
            entries.append(evaluate(f"{op}a", [("a", da, e2)]))
    for f in UNARY_UFUNCS:
        for da in DTYPES:
            entries.append(evaluate(f"np.{f}(a)", [("a", da, e2)]))
        for s in SCALARS:
            entries.append(evaluate(f"np.{f}({s})", []))
    for da in DTYPES:
        for extra in ["np.round(a, 2)", "np.round(a, -1)", "a.round(1)", "a.astype(np.float32)",
                      "a.astype('int16')", "np.float32(a)", "np.int8(a)",
                      "np.nan_to_num(a, nan=-1.0, posinf=5, neginf=-5)"]:
            entries.append(evaluate(extra, [("a", da, e2)]))
    for f in BINARY_UFUNCS:
        for da in DTYPES:
            for db in DTYPES:
                entries.append(evaluate(f"np.{f}(a, b)", [("a", da, e2), ("b", db, e2)]))
            for s in SCALARS:
                entries.append(evaluate(f"np.{f}(a, {s})", [("a", da, e2)]))
                entries.append(evaluate(f"np.{f}({s}, a)", [("a", da, e2)]))
    for f in ["add", "multiply", "divide", "sqrt", "greater", "maximum"]:
        for out in ["float32", "int16", "uint8", "float16"]:
            for da in DTYPES:
                args = "a" if f == "sqrt" else "a, 3"
                entries.append(evaluate(f"np.{f}({args}, dtype=np.{out})", [("a", da, e2)]))
    for da in DTYPES:
        for db in DTYPES:
            c = ("c", "bool", e2)
            entries.append(evaluate("np.where(c, a, b)", [c, ("a", da, e2), ("b", db, e2)]))
            entries.append(evaluate("np.clip(a, b, b)", [("a", da, e2), ("b", db, e2)]))
        for s in SCALARS:
            entries.append(evaluate(f"np.where(c, a, {s})", [("c", "bool", e2), ("a", da, e2)]))
            entries.append(evaluate(f"np.where(c, {s}, a)", [("c", "bool", e2), ("a", da, e2)]))
            entries.append(evaluate(f"np.clip(a, {s}, {s})", [("a", da, e2)]))
            entries.append(evaluate(f"np.clip(a, None, {s})", [("a", da, e2)]))
            entries.append(evaluate(f"np.clip(a, {s}, None)", [("a", da, e2)]))
            entries.append(evaluate(f"a.clip(0, {s})", [("a", da, e2)]))
    r4 = RED_SHAPE
    for da in DTYPES:
        for f in REDUCTIONS:
            entries.append(evaluate(f"np.{f}(x)", [("x", da, r4)]))
            entries.append(evaluate(f"np.{f}(x, axis=-1)", [("x", da, r4)]))
        entries.append(evaluate("np.std(x, axis=(0, 2), ddof=1, keepdims=True)", [("x", da, r4)]))
        entries.append(evaluate("np.mean(x, axis=-1, dtype=np.float32)", [("x", da, r4)]))
        entries.append(evaluate("np.sum(x, axis=0, dtype=np.int16)", [("x", da, r4)]))
        for f, q in QUANTILES:
            entries.append(evaluate(f"np.{f}(x, {q})", [("x", da, r4)]))
            entries.append(evaluate(f"np.{f}(x, {q}, axis=-1)", [("x", da, r4)]))
        for m in METHODS:
            entries.append(evaluate(f"x.{m}()", [("x", da, r4)]))
            entries.append(evaluate(f"x.{m}(axis=-1)", [("x", da, r4)]))
        entries.append(evaluate("np.mean(x[m > 0])", [("x", da, r4), ("m", "uint8", r4[:3])]))
        entries.append(evaluate("np.median(x[m], axis=0)", [("x", da, r4), ("m", "bool", r4[:3])]))
        entries.append(evaluate("x - np.mean(x)", [("x", da, r4)]))
        entries.append(evaluate("x * np.float32(2)", [("x", da, r4)]))

    # Shapes: broadcasting, basic indexing and reductions' axis handling on a 4-D image with
    # a 3-D mask, the everyday neuroimaging case.
    img, msk = ("img", "int16", (4, 5, 6, 3)), ("mask", "uint8", (4, 5, 6))
    for formula in [
        "img * mask", "img * mask[..., None]", "img * mask[:, :, :, np.newaxis]",
        "img[..., 0] * mask", "img[..., 1:] - img[..., :-1]", "img[::2, 1:-1, ::-1, 0]",
        "img[-1]", "img[1:100]", "img[::-2, ..., 1]", "img[4]", "img[..., 3]", "img[0, 0, 0, 0, 0]",
        "img[None, ..., None]", "img[:, None]", "img[..., ::3]", "img[2:2]", "img[-100:2]",
        "mask[:, :, :, None] + img[..., :1]", "img[0] + mask[0]", "img + img[0]",
        "img + img[..., 0:1]", "img + img[:, :, :1]", "np.where(mask > 0, img[..., 0], 0)",
        "np.where(mask[..., None] > 0, img, mask[..., None])", "np.clip(img, 0, mask[..., None])",
        "np.mean(img, axis=(0, 1, 2))", "np.mean(img, axis=(0, -1), keepdims=True)",
        "np.sum(img, axis=4)", "np.sum(img, axis=(1, 1))", "np.sum(img, axis=-5)",
        "np.percentile(img, [10, 50, 90], axis=(0, 1), keepdims=True)",
        "np.median(img, axis=-1, keepdims=True)", "img - img.mean(axis=-1, keepdims=True)",
        "img / img.std(axis=-1)", "np.argmax(img, axis=-1, keepdims=True)",
        "np.mean(img[mask > 0], axis=0)", "np.mean(img[mask > 0])", "img[mask > 0].sum(axis=0)",
        "np.mean(img[mask[0] > 0])", "np.std(img[mask > 0], axis=0, ddof=1)",
        "np.count_nonzero(img, axis=(0, 1))", "np.any(img > 0, axis=-1) & (mask > 0)",
        "img.ndim + img", "img.shape[0] + img", "img.shape[-1] * img[..., 0]",
        "np.sum(img, axis=[0, 1])", "np.percentile(img, (5, 95))", "img.mean(axis=(0,))",
        "img[3:0:-1]", "img[-1:-5:-2]", "img[10:-10:-1]", "img[:-10:-1]", "img[1::-1]",
        "img[-2:]", "img[::100]", "img[:, 4:1:-2, -1::-3]", "img[..., -3]", "img[..., -4]",
        "img[0][0][0]", "img[1:3][0]", "img[..., None][0]",
    ]:
        entries.append(evaluate(formula, [img, msk]))
    # Python-only parts are folded as Python does; their type decides the weak promotion.
    for da in ["int16", "uint8", "float32", "bool"]:
        for part in ["2**-1", "7 // 2", "7 / 2", "-7 % 3", "True + True", "-True",
                     "(1 if 2 > 1 else 2.5)", "(2.5 if 2 < 1 else 1)", "(0 or 3)", "(0 and 3)",
                     "3 < 4", "2 ** 10", "1 << 3", "abs(-3)", "round(2.5)", "round(2.567, 1)",
                     "np.pi / 2", "-np.inf", "(3 > 2) & (2 > 1)", "1e3", "int(3)" ]:
            entries.append(evaluate(f"a + {part}", [("a", da, e2)]))

    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "table.jsonl"), "w") as f:
        for e in entries:
            f.write(json.dumps(e, sort_keys=True) + "\n")
    meta = {"numpy": np.__version__, "entries": len(entries)}
    with open(os.path.join(OUT_DIR, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    print(f"dtype_tables: {len(entries)} entries (numpy {np.__version__})")


if __name__ == "__main__":
    main()
