"""The pinned environment files agree with each other and with pyproject.toml."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip().lstrip("- ").strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")


def test_environment_yml_matches_lock_file():
    lock = _pins((ROOT / "requirements-lock.txt").read_text().splitlines())
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert env, "environment.yml pins nothing"
    mismatched = {k: (v, lock.get(k)) for k, v in env.items() if lock.get(k) != v}
    assert not mismatched, f"environment.yml vs requirements-lock.txt (env, lock): {mismatched}"


def test_every_declared_dependency_is_pinned_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for extra, reqs in project["optional-dependencies"].items():
        declared |= {_name(r) for r in reqs if not r.startswith("fa3d")}
    lock = _pins((ROOT / "requirements-lock.txt").read_text().splitlines())
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert declared - lock.keys() == set(), "declared but not in requirements-lock.txt"
    assert declared - env.keys() == set(), "declared but not in environment.yml"


def test_lock_pins_the_mirror_torch():
    lock = _pins((ROOT / "requirements-lock.txt").read_text().splitlines())
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"


def test_environment_yml_does_not_use_the_deprecated_pytorch_channel():
    text = (ROOT / "environment.yml").read_text()
    channels = text.split("channels:")[1].split("dependencies:")[0]
    assert "pytorch" not in channels
