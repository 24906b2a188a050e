"""Owner-only files and folders: what flywheel creates under FLYWHEEL_HOME is 0600 (files) and 0700
(folders), so the captured traffic, the warehouse and the SQLite database are never world-readable.

Standard library only: the serving-side SDK (`flywheel.capture.sdk`) imports this module. Folders that
already exist keep their permissions; missing ones (and their missing parents) are created private.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dirs(path: str | os.PathLike[str]) -> Path:
    """Create folder `path` and each missing parent with mode 0700 (`mkdir(parents=True)` would give the
    parents the umask's mode); existing folders are left as they are. A path on object storage (not
    `os.PathLike`) is returned as it is: object stores have no folders, access is the bucket's policy."""
    if not isinstance(path, (str, os.PathLike)):
        return path
    folder = Path(path)
    missing: list[Path] = []
    probe = folder
    while not probe.is_dir() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for level in reversed(missing):
        try:
            level.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # created meanwhile by another process (or a file: the next level says so)
            if not level.is_dir():
                raise
    return folder


def private_opener(path: str, flags: int) -> int:
    """An `open(..., opener=private_opener)` that creates the file with mode 0600."""
    return os.open(path, flags, PRIVATE_FILE)


def touch_private(path: str | os.PathLike[str]) -> Path:
    """Create an empty file with mode 0600 when it is missing (its folders private); an existing file is kept."""
    if not isinstance(path, (str, os.PathLike)):
        path.touch(exist_ok=True)
        return path
    target = Path(path)
    private_dirs(target.parent)
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    return target
