"""What a test needs from outside the repository (``../shared``, a browser, a detector's model file).

Where it is missing, the test skips on a user's machine (a fresh clone has no ``../shared``) and fails
under CI (``CI=true``), whose machine must have it: a CI that skipped would pass without checking.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_SAMPLES = SHARED / "real-samples"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str, how: str = "") -> None:
    """Skip (a user's machine) or fail (CI) because ``what`` is not here; ``how`` says how to get it."""
    hint = f"; {how}" if how else ""
    if in_ci():
        pytest.fail(f"CI=true but {what} is missing{hint}", pytrace=False)
    pytest.skip(f"{what} is not here{hint} (required under CI=true)")


def needs_path(path: Path, what: str | None = None) -> Path:
    """``path`` if it exists; else skip, or fail under CI, naming it."""
    path = Path(path)
    if not path.exists():
        missing(what or str(path), f"looked for {path}")
    return path
