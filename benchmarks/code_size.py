"""The size of fa3d/ per file and per layer: lines in all, and code lines (not blank, not a comment, not a
docstring), the way docs/layout.md and the layering issue count them.

    python benchmarks/code_size.py [--per-file] [PACKAGE_DIR]
"""
from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_layout import LAYERS, layer_of, module_name  # noqa: E402


def count(path: Path) -> tuple[int, int]:
    """(lines, code lines) of one Python file."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docstrings |= set(range(body[0].lineno, body[0].end_lineno + 1))
    code = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            code |= set(range(tok.start[0], tok.end[0] + 1))
    return len(source.splitlines()), len(code - docstrings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", nargs="?", default=str(ROOT / "fa3d"))
    parser.add_argument("--per-file", action="store_true")
    args = parser.parse_args()
    package = Path(args.package).resolve()
    names = [name for name, _ in LAYERS] + ["in no layer (an older fa3d)"]
    layers = [[0, 0, 0] for _ in names]
    for path in sorted(package.rglob("*.py")):
        lines, code = count(path)
        name = module_name(path, package)
        try:
            layer = layer_of(name) if name != "fa3d" else 0
        except AssertionError:
            layer = len(LAYERS)
        layers[layer] = [layers[layer][0] + 1, layers[layer][1] + lines, layers[layer][2] + code]
        if args.per_file:
            print(f"{lines:6d} {code:6d}  {path.relative_to(package.parent)}")
    print(f"{'layer':<26}{'files':>6}{'lines':>8}{'code':>8}")
    for name, (files, lines, code) in zip(names, layers):
        if files:
            print(f"{name:<26}{files:>6}{lines:>8}{code:>8}")
    total = [sum(col) for col in zip(*layers)]
    print(f"{'all':<26}{total[0]:>6}{total[1]:>8}{total[2]:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
