"""Write the student versions of the course notebooks: the teacher's solutions taken out.

    python notebooks/make_assignments.py [--out notebooks/student] [--src notebooks]

Reads the committed teacher notebooks ``SRC/[0-9][0-9]_*.ipynb`` and writes one notebook of the
same name per notebook into OUT. In every code cell, each region from a ``### BEGIN SOLUTION``
line to its ``### END SOLUTION`` line (markers included) becomes, at the marker's indentation,

    # YOUR CODE HERE
    raise NotImplementedError()

(nbgrader's ClearSolutions convention, so a teacher who uses nbgrader gets the same notebooks).
Outputs and execution counts are cleared; everything else, the nbgrader cell metadata included,
is kept as it is. Notebooks without exercises are copied too (outputs cleared), so OUT is a
complete course. A marker without its partner is an error naming the notebook and the cell.
``make assignments`` writes the committed student edition, ``notebooks/student/``, whose Colab badges
open the student notebooks (a test fails when it is out of date).

    python notebooks/make_assignments.py --solutions [--keys notebooks/solutions] [--check]

writes instead the teachers' solution key ``KEYS/NN_name_solutions.md`` of every notebook (``make
solutions``; ``make notebooks`` runs it after re-executing them). A key has one banner (the fa3d
version), then what is generated from the committed, executed notebook: the numbers its last cell
printed (its ``facts``), and every code exercise with the teacher's solution cell and the verdict its
check printed. Below the heading ``## Open exercises: worked answers`` the key is written by hand (the
answers to the notebook's ``## Exercises``, with snippets to run after it) and is kept as it is; a key
that does not exist yet gets one heading per open exercise to fill in. ``--check`` writes nothing and
fails, naming the keys, where a key differs from what it would write.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
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


# The Colab badge of a teacher notebook opens notebooks/NN_name.ipynb; the student edition's opens its own copy.
TEACHER_BADGE = re.compile(r"(colab\.research\.google\.com/github/[^)\s]*/blob/[^/)\s]+/notebooks/)(\d\d_\w+\.ipynb)")
STUDENT_FOLDER = "student"    # notebooks/student: the committed student edition


def student_version(nb, name: str = "notebook"):
    """A copy of the notebook ``nb`` (nbformat node) with the solutions cleared, outputs and
    execution counts removed, and its Colab badge pointing at the student edition
    (``notebooks/student/``). ``name`` is used in error messages."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            if BEGIN in cell.source or END in cell.source:
                raise MarkerError(f"{name}, cell {index} ({cell.cell_type}): solution markers outside a code cell")
            cell.source = TEACHER_BADGE.sub(rf"\g<1>{STUDENT_FOLDER}/\g<2>", cell.source)
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


# ----------------------------------------------------------------------------- the solution keys

HAND = "## Open exercises: worked answers"
HAND_NOTE = ("<!-- Written by hand from here to the end: `make solutions` keeps this part as it is and "
             "rewrites everything above it from the committed notebook. -->")
NO_ANSWER = "No worked answer yet."


def fa3d_version(root: Path = ROOT) -> str:
    """fa3d's version, read from ``fa3d/__init__.py`` (without importing fa3d and torch)."""
    return re.search(r'^__version__ = "([^"]+)"', (root / "fa3d" / "__init__.py").read_text(), re.M).group(1)


def notebook_title(nb) -> str:
    """'05 Evaluation' from the notebook's first heading '# 05 · Evaluation: GTE, ...'."""
    first = next(c.source for c in nb.cells if c.cell_type == "markdown")
    heading = re.match(r"#\s+(.+)", first.strip()).group(1)
    return re.split(r": | \(", heading)[0].replace(" · ", " ").strip()


def open_exercises(nb) -> list[str]:
    """The titles of the numbered items of the notebook's ``## Exercises`` cell ('1. **Pitch.**' -> 'Pitch')."""
    cell = next((c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Exercises")), "")
    return [t.rstrip(".") for t in re.findall(r"^\d+\. \*\*(.+?)\*\*", cell, re.M)]


def _stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def printed_facts(nb) -> dict:
    """The facts the notebook's last code cell showed (``fa3d.course.save_facts`` puts them in the output's
    metadata; older notebooks printed them as JSON), {} if it showed none."""
    for cell in reversed([c for c in nb.cells if c.cell_type == "code"]):
        for out in cell.get("outputs", []):
            if "fa3d_facts" in out.get("metadata", {}):
                return dict(out["metadata"]["fa3d_facts"])
        text = _stream(cell).strip()
        if text.startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                return {}
        if cell.get("outputs"):
            return {}
    return {}


def _value(v) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return str(v).replace("|", "\\|")
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v).replace("|", "\\|")


def _flat(facts: dict, prefix: str = ""):
    for k, v in facts.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def code_exercises(nb) -> list[dict]:
    """Every nbgrader exercise of ``nb``: title (its "Your turn" heading), grade_id, the solution cell's
    source, the check it calls, its points and what the committed check cell printed."""
    cells = {c.metadata["nbgrader"]["grade_id"]: (i, c) for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and "nbgrader" in c.metadata}
    out = []
    for gid, (i, cell) in cells.items():
        if not cell.metadata["nbgrader"].get("solution"):
            continue
        _, check = cells.get(f"{gid}_check", (None, None))
        before = nb.cells[i - 1].source.strip().splitlines() if i and nb.cells[i - 1].cell_type == "markdown" else []
        title = before[0].lstrip("#").strip() if before else gid
        called = re.search(r"exercises\.(check_\w+)\(", check.source) if check is not None else None
        out.append({"title": title, "grade_id": gid, "source": cell.source.strip("\n"),
                    "check": called.group(1) if called else None,
                    "points": check.metadata["nbgrader"].get("points") if check is not None else None,
                    "verdict": _stream(check).strip() if check is not None else ""})
    return out


def hand_part(key_text: str) -> str:
    """The hand-written part of a key: from its ``## Open exercises: worked answers`` heading on ("" if none)."""
    i = key_text.find("\n" + HAND + "\n")
    return key_text[i + 1:] if i >= 0 else ""


def _hand_skeleton(nb) -> str:
    answers = "".join(f"\n### {n}. {title}\n\n{NO_ANSWER}\n" for n, title in enumerate(open_exercises(nb), 1))
    return f"{HAND}\n\n{HAND_NOTE}\n{answers}"


def solution_key(nb, stem: str, hand: str = "", version: str | None = None) -> str:
    """The solution key of the executed notebook ``nb`` (``notebooks/STEM.ipynb``), its hand-written
    part ``hand`` (from :func:`hand_part`; a skeleton when empty) kept as it is."""
    version = version or fa3d_version()
    exercises = code_exercises(nb)
    lines = [f"# Solutions · {notebook_title(nb)}", "",
             f"> **fa3d {version}.** `make solutions` generated this key, down to \"Open exercises\", from the "
             f"committed, executed `notebooks/{stem}.ipynb`: the numbers it printed"
             + (" and its code exercises, each with the teacher's solution and its check's verdict" if exercises else "")
             + ". The worked answers after that heading are written by hand and kept when the key is regenerated; "
             "their first paragraph says which fa3d measured their numbers. Where the two disagree, "
             "the notebook's numbers are this version's.", ""]
    facts = [(k, v) for k, v in _flat(printed_facts(nb)) if not k.startswith("exercise_")]
    lines += ["## The notebook's numbers", ""]
    if facts:
        lines += [f"What the last cell of `notebooks/{stem}.ipynb` printed (its `facts`, also written to "
                  f"`OUT_DIR/{stem}.json`; floats to 4 significant digits). Seeded: a run on another CPU may "
                  "differ in the last digits.", "", "| fact | value |", "|---|---|"]
        lines += [f"| `{k}` | {_value(v)} |" for k, v in facts]
    else:
        lines += [f"`notebooks/{stem}.ipynb` printed no facts: execute it (`make notebooks`)."]
    lines.append("")
    if exercises:
        lines += ["## Code exercises", "",
                  f"{len(exercises)} code exercise{'s' if len(exercises) > 1 else ''}, autograded: the check cell "
                  "after each runs `fa3d.course.exercises.check_*` on the student's function. `make assignments` "
                  "replaces each region from `### BEGIN SOLUTION` to `### END SOLUTION` by "
                  "`raise NotImplementedError()`.", ""]
        for ex in exercises:
            points = "" if ex["points"] is None else f", {ex['points']} point{'s' if ex['points'] != 1 else ''}"
            lines += [f"### {ex['title']}", "",
                      f"Cell `{ex['grade_id']}`, graded by `exercises.{ex['check']}` (cell `{ex['grade_id']}_check`"
                      f"{points}). The teacher's solution:", "", "```python", ex["source"], "```", "",
                      "What the check printed in the committed notebook:", "", "```text",
                      ex["verdict"] or "(nothing: execute the notebook)", "```", ""]
    return "\n".join(lines) + "\n" + (hand.strip("\n") if hand.strip() else _hand_skeleton(nb).strip("\n")) + "\n"


def key_path(keys: Path, stem: str) -> Path:
    return Path(keys) / f"{stem}_solutions.md"


def make_solutions(src: Path, keys: Path, check: bool = False) -> dict[str, bool]:
    """Write (or with ``check``, only compare) the key of every ``src/NN_*.ipynb`` in ``keys``;
    returns {key file name: whether it changed (would change)}."""
    notebooks = sorted(Path(src).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks [0-9][0-9]_*.ipynb in {src}")
    Path(keys).mkdir(parents=True, exist_ok=True)
    changed = {}
    for path in notebooks:
        key = key_path(keys, path.stem)
        old = key.read_text(encoding="utf-8") if key.exists() else ""
        new = solution_key(nbformat.read(path, as_version=4), path.stem, hand_part(old))
        changed[key.name] = new != old
        if changed[key.name] and not check:
            key.write_text(new, encoding="utf-8")
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "notebooks" / STUDENT_FOLDER),
                        help="folder of the student notebooks (default: the committed student edition)")
    parser.add_argument("--src", default=str(ROOT / "notebooks"), help="folder of the teacher notebooks")
    parser.add_argument("--solutions", action="store_true",
                        help="write the teachers' solution keys (KEYS/NN_name_solutions.md) instead")
    parser.add_argument("--keys", default=str(ROOT / "notebooks" / "solutions"), help="folder of the solution keys")
    parser.add_argument("--check", action="store_true",
                        help="with --solutions: write nothing, fail if a key differs from what it would write")
    args = parser.parse_args(argv)
    if args.solutions:
        try:
            changed = make_solutions(Path(args.src), Path(args.keys), check=args.check)
        except FileNotFoundError as err:
            print(f"make_assignments: {err}", file=sys.stderr)
            return 1
        stale = [name for name, c in changed.items() if c]
        if args.check:
            if stale:
                print(f"make_assignments: out of date: {', '.join(stale)} (run `make solutions`)", file=sys.stderr)
                return 1
            print(f"{len(changed)} solution keys in {args.keys} are up to date")
            return 0
        for name, c in changed.items():
            print(f"{name:40s} {'written' if c else 'unchanged'}")
        return 0
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
