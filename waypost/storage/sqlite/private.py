"""The data folder and its files, for their owner only.

The folder holds event payloads, response bodies, destination settings outside `credentials`
(custom headers, URL user info, delivery metadata) and the generated keys. So it is created 0700
and every file in it 0600, whatever the umask: the database is created empty with that mode before
SQLite opens it, and SQLite gives its `-wal` and `-shm` files the database's mode. A folder that
already exists keeps its mode (an operator may have chosen it), but a start in one that others
can enter is logged as a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import IO

FOLDER_MODE = 0o700
FILE_MODE = 0o600
log = logging.getLogger(__name__)


def make_folder(path: Path) -> None:
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)


def warn_if_open(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "data folder %s is open to other users (mode %04o): it holds event payloads and "
            "keys; chmod 700 it",
            path,
            mode,
        )


def create_file(path: str) -> None:
    """Create `path` empty and 0600 unless it exists (an existing file is left as it is)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))


def open_file(path: str, mode: str) -> IO[str]:
    """`open(path, mode)` for "w" or "a", creating the file 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if mode == "w" else os.O_APPEND)
    return os.fdopen(os.open(path, flags, FILE_MODE), mode)
