"""Atomic file writes: the one way fa3d writes a file a user keeps (checkpoints, JSON, datasets).

The content goes to a temporary file in the target's folder, is flushed to disk, and is then
renamed over the target with ``os.replace`` (atomic on POSIX and Windows): a crash, a full disk
or an exception while writing leaves the previous file intact, never a half-written one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path, content: str | bytes | Callable[[BinaryIO], None], *, overwrite: bool = True) -> Path:
    """Write ``content`` to ``path`` atomically and return the path.

    ``content``: text (written as UTF-8), bytes, or a function that writes into the binary
    file object it is given (e.g. ``lambda f: torch.save(obj, f)``). With ``overwrite=False``
    an existing ``path`` is a FileExistsError and nothing is written. Parent folders are made.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private (0600): give it a normal file's mode
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
