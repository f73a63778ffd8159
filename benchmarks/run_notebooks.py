"""Execute the course notebooks in quick mode (papermill, kernel "fa3d"), time each one and
export HTML a teacher can post. `make notebooks` runs this.

    python benchmarks/run_notebooks.py [--out outputs/notebooks] [NAME ...]

Writes OUT/executed/NN_name.ipynb, OUT/html/NN_name.html, the notebooks' own metrics JSON
files in OUT/, and OUT/timings.json (seconds per notebook).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(notebook: Path, out_dir: Path, kernel: str = "fa3d", parameters: dict | None = None,
            cell_timeout: int = 900) -> tuple[Path, float]:
    """Run one notebook with papermill; returns (executed path, seconds)."""
    import papermill as pm

    # nobody moves a slider in a headless run: fa3d.widgets shows static figures (notebook 06)
    os.environ.setdefault("FA3D_INTERACTIVE", "0")
    out_dir = out_dir.resolve()
    executed = out_dir / "executed" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pm.execute_notebook(str(notebook), str(executed), kernel_name=kernel, cwd=str(ROOT),
                        parameters={"OUT_DIR": str(out_dir), **(parameters or {})},
                        execution_timeout=cell_timeout, progress_bar=False)
    return executed, time.perf_counter() - t0


def export_html(executed: Path, out_dir: Path) -> Path:
    from nbconvert import HTMLExporter
    import nbformat

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    html = out_dir / "html" / executed.with_suffix(".html").name
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body)
    return html


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook names or prefixes (default: all)")
    parser.add_argument("--out", default="outputs/notebooks")
    parser.add_argument("--no-html", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        notebooks = [nb for nb in notebooks if any(nb.stem.startswith(n) for n in args.names)]
    timings = {}
    for nb in notebooks:
        executed, seconds = execute(nb, out)
        timings[nb.stem] = round(seconds, 1)
        print(f"{nb.stem:28s} {seconds:7.1f} s", flush=True)
        if not args.no_html:
            export_html(executed, out)
    print(f"{'total':28s} {sum(timings.values()):7.1f} s")
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
