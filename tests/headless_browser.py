"""A real browser for the tests: Debian's headless Chromium, with no network, as a reader on a
cluster node or a train would open fa3d's HTML pages.

``render(page)`` opens a local HTML file, lets its scripts run, and returns the DOM after
them and a screenshot. ``plotly_scene_drawn(dom, png)`` says whether a plotly 3D scene was
drawn: plotly's WebGL container is in the DOM and the picture is not a blank page.

Where no browser is installed the tests that need one skip, except under CI (``CI=true``),
whose ``.ci/run`` installs ``chromium`` with apt-get: there a missing browser is a failure.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from needs import missing

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str:
    """The browser's path; skips the test when there is none, fails under CI."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    missing("a headless browser (Chromium)", "apt-get install chromium (.ci/run does)")


def _flags(browser: str) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
            # WebGL in software, as on a machine without a GPU
            "--use-gl=swiftshader", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            # no network at all: every host name resolves to nothing, and there is no proxy to reach
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "--proxy-server=http://127.0.0.1:9",
            "--no-first-run", "--disable-extensions", "--allow-file-access-from-files",
            "--virtual-time-budget=20000", "--window-size=1200,900"]


def render(page: Path, out_dir: Path, timeout: float = 120) -> tuple[str, np.ndarray]:
    """(DOM after the page's scripts ran, screenshot as an (H, W, 3) uint8 array)."""
    browser = find_browser()
    url = Path(page).resolve().as_uri()
    profile = Path(out_dir) / "chromium-profile"
    common = _flags(browser) + [f"--user-data-dir={profile}"]
    dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    if dom.returncode != 0:
        raise RuntimeError(f"chromium --dump-dom failed ({dom.returncode}): {dom.stderr[-2000:]}")
    png = Path(out_dir) / f"{Path(page).stem}.png"
    shot = subprocess.run(common + [f"--screenshot={png}", url], capture_output=True, text=True, timeout=timeout)
    if shot.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium --screenshot failed ({shot.returncode}): {shot.stderr[-2000:]}")
    return dom.stdout, np.asarray(Image.open(png).convert("RGB"))


def plotly_scene_drawn(dom: str, picture: np.ndarray) -> tuple[bool, str]:
    """Whether plotly drew a 3D scene: its WebGL scene container is in the DOM, and at least 2 %
    of the screenshot's pixels are neither white nor one flat colour (a page whose scripts
    failed is white)."""
    if "gl-container" not in dom:
        return False, "no plotly gl-container in the DOM: plotly.js did not run (not loaded offline?)"
    if 'class="no-webgl"' in dom:     # the notice plotly puts where a scene's WebGL context failed
        return False, "plotly found no WebGL in this browser, so the 3D scene was not drawn"
    flat = picture.reshape(-1, 3)
    background = np.all(flat >= 250, axis=1)
    coloured = 1.0 - background.mean()
    if coloured < 0.02:
        return False, f"the screenshot is blank ({100 * coloured:.2f} % non-white pixels)"
    return True, f"{100 * coloured:.1f} % of the screenshot's pixels are drawn"
