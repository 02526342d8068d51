"""Removing whatever tree a job left behind, however deep or strange (trusted side).

``shutil.rmtree`` recurses once per level (a 3000-deep tree raises RecursionError) and builds paths that outgrow
PATH_MAX. :func:`remove_tree` walks with one open directory at a time, relative to it (``*at`` calls), never
follows a symbolic link, makes unreadable directories readable first, and does not raise: the job is over and
nothing of it may stop the grading from writing its result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: Path) -> bool:
    """Remove ``path`` and everything under it; True when it is gone. A symbolic link is removed, not followed."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return True
        _remove_dir(path)
    except FileNotFoundError:
        return True
    except OSError as error:
        log.warning("could not remove %s: %s", path, error)
    return not os.path.lexists(path)


def _remove_dir(path: Path) -> None:
    fd = _open_dir(str(path), None)
    names: list[str] = []  # the path from `path` down to the directory open in fd
    try:
        while True:
            child = _empty_one_level(fd)
            if child is not None:
                deeper = _open_dir(child, fd)
                os.close(fd)
                fd = deeper
                names.append(child)
                continue
            if not names:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def _empty_one_level(fd: int) -> str | None:
    """Unlink every non-directory in the directory open at ``fd``; return a subdirectory's name, or None when the
    directory is empty."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=fd)
    return None


def _open_dir(name: str, dir_fd: int | None) -> int:
    """Open a directory for walking, and make it readable, writable and searchable by us (its entries go)."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=dir_fd, follow_symlinks=False)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o700)
    return fd
