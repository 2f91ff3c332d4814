"""The data folder and the files in it that only their owner may read.

The folder holds the embedded database (which asks no password: whoever reads its URL
file may read and write every record), its log, and the generated development JWT
secret (whoever reads it may sign tokens for any account). The folder is 0700 and those
files 0600: created so, never readable by others even for a moment, and tightened at
start-up when an older version left them open.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_GROUP_AND_OTHERS = 0o077


def private_folder(path: Path) -> Path:
    """`path`, a folder only its owner may enter: made so, or tightened if it exists.
    Missing parents are made as usual; they are not ours to close."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        tighten(path)
    return path


def tighten(path: Path) -> None:
    """Take away what group and others may do with `path`, if it exists."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & _GROUP_AND_OTHERS:
        path.chmod(mode & ~_GROUP_AND_OTHERS)


def open_private(path: Path, flags: int) -> int:
    """`os.open` for a file only its owner may read; one left open by an older version is
    tightened first."""
    tighten(path)
    return os.open(path, flags | os.O_CREAT, FILE_MODE)


def replace_private(path: Path, text: str) -> None:
    """Put `text` in `path` as a new owner-only file: readers see the old or the new
    content, whole, and never a file that others may read."""
    with _written_aside(path, text) as aside:
        aside.replace(path)


def create_private(path: Path, text: str) -> bool:
    """Put `text` in `path` as a new owner-only file, unless `path` exists; whether it was
    created. Of processes racing to create it one wins, and all read the same content."""
    with _written_aside(path, text) as aside:
        try:
            os.link(aside, path)
        except FileExistsError:
            return False
        return True


@contextmanager
def _written_aside(path: Path, text: str) -> Iterator[Path]:
    aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        yield aside
    finally:
        aside.unlink(missing_ok=True)
