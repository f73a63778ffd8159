"""Write the student versions of the course notebooks: the teacher's solutions taken out.

    python notebooks/make_assignments.py [--out outputs/assignments] [--src notebooks]

Reads the committed teacher notebooks ``SRC/[0-9][0-9]_*.ipynb`` and writes one notebook of the
same name per notebook into OUT. In every code cell, each region from a ``### BEGIN SOLUTION``
line to its ``### END SOLUTION`` line (markers included) becomes, at the marker's indentation,

    # YOUR CODE HERE
    raise NotImplementedError()

(nbgrader's ClearSolutions convention, so a teacher who uses nbgrader gets the same notebooks).
Outputs and execution counts are cleared; everything else, the nbgrader cell metadata included,
is kept as it is. Notebooks without exercises are copied too (outputs cleared), so OUT is a
complete course. A marker without its partner is an error naming the notebook and the cell.
``make assignments`` runs this into ``$(OUT)/assignments``.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


class MarkerError(ValueError):
    """A ``### BEGIN SOLUTION`` without its ``### END SOLUTION`` (or the reverse)."""


def clear_solutions(source: str, where: str = "a cell") -> tuple[str, int]:
    """``source`` with every solution region replaced; returns (new source, number of regions)."""
    out, inside, count = [], None, 0
    for number, line in enumerate(source.splitlines(), 1):
        marker = BEGIN if BEGIN in line else END if END in line else None   # as nbgrader: anywhere in the line
        if marker == BEGIN:
            if inside is not None:
                raise MarkerError(f"{where}, line {number}: {BEGIN} inside the solution region begun at line {inside}")
            inside, indent = number, line[:len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
        elif marker == END:
            if inside is None:
                raise MarkerError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            inside, count = None, count + 1
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise MarkerError(f"{where}, line {inside}: {BEGIN} without an {END} after it")
    return "\n".join(out) + ("\n" if source.endswith("\n") else ""), count


def student_version(nb, name: str = "notebook"):
    """A copy of the notebook ``nb`` (nbformat node) with the solutions cleared, outputs and
    execution counts removed. ``name`` is used in error messages."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            if BEGIN in cell.source or END in cell.source:
                raise MarkerError(f"{name}, cell {index} ({cell.cell_type}): solution markers outside a code cell")
            continue
        cell.source, _ = clear_solutions(cell.source, f"{name}, cell {index}")
        cell.outputs, cell.execution_count = [], None
    return nb


def count_solutions(nb, name: str = "notebook") -> int:
    """Number of solution regions in the code cells of ``nb``."""
    return sum(clear_solutions(c.source, f"{name}, cell {i}")[1] for i, c in enumerate(nb.cells) if c.cell_type == "code")


def make_assignments(src: Path, out: Path) -> dict[str, int]:
    """Write the student version of every ``src/NN_*.ipynb`` into ``out``; returns {name: solutions cleared}."""
    notebooks = sorted(Path(src).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks [0-9][0-9]_*.ipynb in {src}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cleared = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        student = student_version(nb, path.name)        # raises on a broken marker before writing anything
        cleared[path.name] = count_solutions(nb, path.name)
        nbformat.write(student, out / path.name)
    return cleared


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/assignments", help="folder of the student notebooks")
    parser.add_argument("--src", default=str(ROOT / "notebooks"), help="folder of the teacher notebooks")
    args = parser.parse_args(argv)
    try:
        cleared = make_assignments(Path(args.src), Path(args.out))
    except (MarkerError, FileNotFoundError) as err:
        print(f"make_assignments: {err}", file=sys.stderr)
        return 1
    for name, n in cleared.items():
        print(f"{name:28s} {n} solution{'s' if n != 1 else ''} cleared" if n else f"{name:28s} copied (no exercise)")
    print(f"{len(cleared)} student notebooks in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
