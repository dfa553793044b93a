"""Prints each case formula's tree in voxcalc's S-expression form, built from Python's own
`ast` module: the oracle for the parser's precedence and tree shape.

Usage:
  python python_tree.py CASE.vx...   one line per file: "<file name>\t<tree>"
  python python_tree.py --stdin      reads one JSON-encoded formula per line and prints one line
                                     per formula: "ok\t<tree>", "bare-tuple\t", "unsupported\t<node>"
                                     (valid Python outside the dialect's tree) or "error\t<message>"
The formula is wrapped in parentheses so that line breaks parse as Python allows them inside
brackets; that does not change the tree of a single expression.
"""
import ast
import json
import sys
import warnings

BIN = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
       ast.Mod: "%", ast.Pow: "**", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
       ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^"}
UNARY = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~", ast.Not: "not"}
CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
       ast.In: "in", ast.NotIn: "not-in", ast.Is: "is", ast.IsNot: "is-not"}


def sexp(node, source_lines):
    def rec(n):
        return sexp(n, source_lines)

    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant):
        if node.value is Ellipsis:
            return "..."
        if not isinstance(node.value, (bool, int, float, str, type(None))):
            raise ValueError(f"constant {type(node.value).__name__}")
        return repr(node.value)
    if isinstance(node, ast.Tuple):
        return "(tuple" + "".join(" " + rec(e) for e in node.elts) + ")"
    if isinstance(node, ast.List):
        return "(list" + "".join(" " + rec(e) for e in node.elts) + ")"
    if isinstance(node, ast.UnaryOp):
        return f"({UNARY[type(node.op)]} {rec(node.operand)})"
    if isinstance(node, ast.BinOp):
        return f"({BIN[type(node.op)]} {rec(node.left)} {rec(node.right)})"
    if isinstance(node, ast.BoolOp):
        op = "and" if isinstance(node.op, ast.And) else "or"
        return f"({op} " + " ".join(rec(v) for v in node.values) + ")"
    if isinstance(node, ast.Compare):
        if len(node.ops) == 1:
            return f"({CMP[type(node.ops[0])]} {rec(node.left)} {rec(node.comparators[0])})"
        parts = [rec(node.left)]
        for op, right in zip(node.ops, node.comparators):
            parts += [CMP[type(op)], rec(right)]
        return "(chain " + " ".join(parts) + ")"
    if isinstance(node, ast.IfExp):
        return f"(if {rec(node.test)} then {rec(node.body)} else {rec(node.orelse)})"
    if isinstance(node, ast.Call):
        out = f"(call {rec(node.func)} [" + " ".join(rec(a) for a in node.args) + "]"
        if node.keywords:
            out += " {" + ", ".join(f"{k.arg}: {rec(k.value)}" for k in node.keywords) + "}"
        return out + ")"
    if isinstance(node, ast.Attribute):
        return f"(attr {rec(node.value)} {node.attr})"
    if isinstance(node, ast.Subscript):
        index = node.slice
        # `x[a, b]` is a bare Tuple; `x[(a, b)]` a parenthesised one (one index).
        bare = isinstance(index, ast.Tuple) and not parenthesised(source_lines, index)
        items = index.elts if bare else [index]
        return f"(index {rec(node.value)} [" + " ".join(rec(i) for i in items) + "])"
    if isinstance(node, ast.Slice):
        parts = [rec(p) if p is not None else "_" for p in (node.lower, node.upper, node.step)]
        return "(slice " + " ".join(parts) + ")"
    raise ValueError(f"unsupported node {ast.dump(node)}")


def offset(source_lines, lineno, col):
    """Absolute byte offset of (lineno, col) in the UTF-8 source."""
    return sum(len(line.encode("utf-8")) + 1 for line in source_lines[:lineno - 1]) + col


def parenthesised(source_lines, node):
    """True when the node's text is one pair of parentheses around it: `(a, b)`, not `(a), b`."""
    text = "\n".join(source_lines).encode("utf-8")
    start = offset(source_lines, node.lineno, node.col_offset)
    end = offset(source_lines, node.end_lineno, node.end_col_offset)
    if text[start:start + 1] != b"(":
        return False
    depth, idx, quote = 0, start, None
    while idx < end:
        c = text[idx:idx + 1]
        if quote:
            if c == b"\\":
                idx += 1
            elif c == quote:
                quote = None
        elif c in (b"'", b'"'):
            quote = c
        elif c in (b"(", b"[", b"{"):
            depth += 1
        elif c in (b")", b"]", b"}"):
            depth -= 1
            if depth == 0:
                return idx == end - 1
        idx += 1
    return False


def source_char(source_lines, node):
    line = source_lines[node.lineno - 1].encode("utf-8")
    return line[node.col_offset:node.col_offset + 1].decode("utf-8", "replace")


class Unsupported(Exception):
    """Valid Python that has no counterpart in the dialect's tree (lambda, starred, ...)."""


def classify(source):
    wrapped = "(" + source + ")"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(wrapped, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        return "error\t" + str(exc).replace("\n", " ").replace("\t", " ")
    lines = wrapped.split("\n")
    body = tree.body
    if isinstance(body, ast.Tuple) and (body.lineno, body.col_offset) == (1, 0):
        # The tuple starts at the wrapping parenthesis: the formula is a bare `a, b`.
        return "bare-tuple\t"
    try:
        return "ok\t" + sexp(body, lines)
    except (ValueError, KeyError) as exc:
        return "unsupported\t" + str(exc).split("(")[0][:60]
    except RecursionError:
        return "error\ttoo deep"


def main():
    if sys.argv[1:] == ["--stdin"]:
        for line in sys.stdin:
            print(classify(json.loads(line)))
        return
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        if source.endswith("\n"):
            source = source[:-1]
        wrapped = "(" + source + ")"
        tree = ast.parse(wrapped, mode="eval")
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        print(name + "\t" + sexp(tree.body, wrapped.split("\n")))


if __name__ == "__main__":
    main()
