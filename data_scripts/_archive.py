"""Shared helpers of the prepare_*.py scripts: fetch, verify, safely extract, check.

Safety rules (the archive is untrusted input):
* nothing is ever written outside the target folder: absolute names, ``..``
  components, drive letters, device files and links that leave the target
  (also through other links of the same archive) are refused before anything
  is extracted; tar files are then extracted with Python's ``"data"`` filter;
* the target folder must be empty unless ``--force``;
* the user's archive is only read, never moved, modified or deleted.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import posixpath
import re
import shutil
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

# Let `python data_scripts/prepare_x.py` work from a checkout where fa3d is not pip-installed.
_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "fa3d").is_dir() and str(_REPO) not in sys.path:
    sys.path.append(str(_REPO))


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder (or is a device file)."""


def sha256sum(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path, expected: str | None) -> str:
    """Return the file's SHA-256; raise ValueError if ``expected`` is given and differs."""
    actual = sha256sum(path)
    if expected and actual != expected.strip().lower():
        raise ValueError(f"{path}: SHA-256 mismatch: expected {expected.strip().lower()}, got {actual} "
                         "(incomplete download or a different file)")
    return actual


def is_url(s: str) -> bool:
    return urllib.parse.urlparse(str(s)).scheme in ("http", "https")


def download(url: str, dest_dir) -> Path:
    """Download ``url`` into ``dest_dir`` (kept if already there). Only called when the user gives a URL."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    dest = dest_dir / name
    if dest.exists():
        print(f"{dest} already exists; using it (delete it to download again)")
        return dest
    part = dest.with_name(dest.name + ".part")
    print(f"downloading {url} -> {dest}")
    with urllib.request.urlopen(url) as r, open(part, "wb") as f:
        shutil.copyfileobj(r, f, length=1 << 20)
    os.replace(part, dest)
    return dest


# ----------------------------------------------------------------------------- safe extraction

def _normalise(name: str, archive) -> str:
    """Archive member name -> a clean relative posix path, or UnsafeArchiveError."""
    n = name.replace("\\", "/")
    if n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    if ".." in n.split("/"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; refusing to extract")
    return posixpath.normpath(n)


def _resolve_in_archive(path: str, links: set[str], archive, what: str) -> None:
    """Walk ``path`` (relative to the target) component by component; refuse leaving the
    target (``..`` above it) or passing through one of the archive's links (whose real
    target a lexical check cannot know)."""
    parts: list[str] = []
    for comp in path.split("/") + [""]:  # the trailing "" checks the last component too
        if "/".join(parts) in links:
            raise UnsafeArchiveError(f"{archive}: {what} goes through the link {'/'.join(parts)!r}; "
                                     "refusing to extract")
        if comp == "..":
            if not parts:
                raise UnsafeArchiveError(f"{archive}: {what} escapes the target folder; refusing to extract")
            parts.pop()
        elif comp not in ("", "."):
            parts.append(comp)


def check_tar_members(tar: tarfile.TarFile, archive) -> None:
    """Refuse absolute/'..' names, device files, and links that leave the target."""
    members = [(m, _normalise(m.name, archive)) for m in tar.getmembers()]
    links = {rel for m, rel in members if m.issym() or m.islnk()}
    for m, rel in members:
        if m.isdev():
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or FIFO; refusing to extract")
        _resolve_in_archive(posixpath.dirname(rel), links, archive, f"member {m.name!r}")
        if m.issym() or m.islnk():
            if m.linkname.startswith("/") or re.match(r"^[A-Za-z]:", m.linkname):
                raise UnsafeArchiveError(f"{archive}: link {m.name!r} -> {m.linkname!r} is absolute; "
                                         "refusing to extract")
            base = posixpath.dirname(rel) if m.issym() else ""  # hard links are relative to the root
            _resolve_in_archive(f"{base}/{m.linkname}", links, archive, f"link {m.name!r} -> {m.linkname!r}")


def check_zip_members(zf: zipfile.ZipFile, archive) -> None:
    for info in zf.infolist():
        _normalise(info.filename, archive)


def prepare_target(target, force: bool = False) -> Path:
    """Create ``target``; refuse a non-empty one unless ``force``."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise FileExistsError(f"{target} is not empty; choose an empty folder or pass --force")
    target.mkdir(parents=True, exist_ok=True)
    return target


def safe_extract(archive, target, force: bool = False) -> Path:
    """Extract a .zip or tar(.gz/.bz2/.xz) archive into ``target`` after checking every member."""
    archive, target = Path(archive), Path(target)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            check_zip_members(zf, archive)
            prepare_target(target, force)
            zf.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            check_tar_members(tar, archive)
            prepare_target(target, force)
            try:
                tar.extractall(target, filter="data")  # second line of defence (Python >= 3.11.4)
            except tarfile.FilterError as e:
                raise UnsafeArchiveError(f"{archive}: {e}; extraction stopped") from None
    else:
        raise ValueError(f"{archive}: not a zip or tar archive")
    return target


def join_parts(parts: list[Path], dest: Path) -> Path:
    """Concatenate a split archive (``x.zip.001``, ``x.zip.002``, ...) into ``dest``."""
    with open(dest, "xb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, length=1 << 20)
    return dest


# ----------------------------------------------------------------------------- the common CLI

def find_dataset(out: Path, open_fn: Callable, max_depth: int = 2):
    """Open the dataset at ``out`` or the first sub-folder (breadth-first, up to max_depth) where it opens."""
    level, errors = [out], []
    for _ in range(max_depth + 1):
        for d in level:
            try:
                return d, open_fn(d)
            except (ValueError, FileNotFoundError) as e:
                errors.append(f"  {d}: {e}")
        level = sorted(c for d in level for c in d.iterdir() if c.is_dir() and not c.name.startswith((".", "__")))
    raise ValueError(f"could not open the dataset under {out}:\n" + "\n".join(errors[:6]))


def parse_args(argv, description: str, default_url: str | None, configure: Callable | None = None):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", metavar="ARCHIVE_OR_URL",
                   help="the official archive(s) you downloaded (.zip/.tar*, or the parts x.zip.001 ...), "
                        "or an http(s) URL to download" + (f" (official: {default_url})" if default_url else ""))
    p.add_argument("--out", required=True, type=Path, help="folder to extract into (must be empty)")
    p.add_argument("--sha256", action="append", default=[],
                   help="expected SHA-256 of each archive, in the order given (repeat the option)")
    p.add_argument("--force", action="store_true", help="extract into a non-empty --out folder")
    p.add_argument("--download-dir", type=Path, default=None,
                   help="where URLs are downloaded to (default: the parent of --out)")
    if configure is not None:
        configure(p)
    return p.parse_args(argv)


def shown_path(path) -> str:
    """A path as the user would type it: relative to the working folder when it is inside it."""
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def prepare(args, open_fn: Callable, known_sha256: dict[str, str | None]):
    """Fetch, verify, extract and open; returns (dataset root, dataset)."""
    if args.sha256 and len(args.sha256) != len(args.sources):
        raise ValueError(f"{len(args.sha256)} --sha256 value(s) for {len(args.sources)} archive(s)")
    out = args.out.resolve()
    files = []
    for i, src in enumerate(args.sources):
        path = download(src, args.download_dir or out.parent) if is_url(src) else Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"archive not found: {path}")
        if path.resolve().is_relative_to(out):
            raise ValueError(f"{path}: the archive must not live inside --out ({out})")
        expected = args.sha256[i] if args.sha256 else known_sha256.get(path.name)
        digest = verify_sha256(path, expected)
        print(f"{path.name}: SHA-256 {digest} " + ("(verified)" if expected else "(no known checksum to compare)"))
        files.append(path)
    prepare_target(out, args.force)

    # Split archives: concatenate x.zip.001, x.zip.002, ... into a temporary file beside --out.
    groups: dict[str, list[Path]] = {}
    for f in files:
        m = re.match(r"^(.*)\.(\d{3})$", f.name)
        groups.setdefault(m.group(1) if m else f.name, []).append(f)
    for name, group in groups.items():
        if len(group) > 1 or re.search(r"\.\d{3}$", group[0].name):
            joined = join_parts(sorted(group), out.parent / f".{name}.joined")
            try:
                safe_extract(joined, out, force=True)
            finally:
                joined.unlink()
        else:
            safe_extract(group[0], out, force=True)
        print(f"extracted {name} into {shown_path(out)}")
    root, ds = find_dataset(out, open_fn)
    item = ds[0]
    print(f"OK: {len(ds)} faces in {shown_path(root)} ({type(ds).__name__}, {ds.scheme.num_points} points; "
          f"first: {item['id']!r}, image {tuple(item['image'].shape)})")
    return root, ds


def run(argv, *, doc: str, open_fn: Callable, known_sha256: dict, default_url: str | None = None,
        configure: Callable | None = None, before: Callable | None = None, after: Callable | None = None) -> int:
    """The whole CLI: returns the exit status (0 ok, 1 error with a one-line message on stderr).
    ``configure(parser)`` adds a script's own options; ``before(args)`` checks them before anything is
    extracted (and returns what ``after`` needs); ``after(args, root, dataset, checked)`` runs once the
    dataset is extracted and opens."""
    args = parse_args(argv, doc, default_url, configure)
    try:
        checked = before(args) if before is not None else None
        root, ds = prepare(args, open_fn, known_sha256)
        if after is not None:
            after(args, root, ds, checked)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
