"""Writing the instance's files (``sts init``, key generation): explicit modes whatever the umask, never through a
symbolic link, into a file with other hard links or into another user's file; secret files end up mode 0600 also
when they existed before.

``open(2)`` and ``mkdir(2)`` apply the umask, and ``O_TRUNC`` keeps an existing file's mode, so modes are set
explicitly: ``fchmod`` on the open descriptor sets the mode of exactly the file written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
SECRET_FILE = 0o600
PUBLIC_FILE = 0o644
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UnsafePath(Exception):
    """A path the STS refuses to write: a symbolic link, not a regular file or directory, or open to others."""


def make_dirs(path: Path, mode: int = PRIVATE_DIR) -> None:
    """Create the missing directories of ``path`` with exactly ``mode``; existing ones are left as they are."""
    missing: list[Path] = []
    while not os.path.lexists(path):
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue
        os.chmod(directory, mode)  # mkdir applied the umask


def secure_dir(path: Path, mode: int = PRIVATE_DIR, *, follow: bool = False) -> None:
    """Make ``path`` a directory only its owner can write: create it with ``mode``, or take group and other write
    permission away from an existing one of ours. A symbolic link is refused unless ``follow`` (the directory the
    operator named); a directory of another user that others can write is refused."""
    make_dirs(path, mode)
    info = os.stat(path) if follow else os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(f"{path}: is a symbolic link; refusing to write through it")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{path}: not a directory")
    if info.st_mode & _OTHERS_WRITE:
        if info.st_uid != os.geteuid():
            raise UnsafePath(f"{path}: writable by other users and not ours to fix; choose another directory")
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~_OTHERS_WRITE)


def refuse_link(path: Path) -> None:
    """Raise :class:`UnsafePath` when ``path`` exists as a symbolic link (checked before anything is written)."""
    if path.is_symlink():
        raise UnsafePath(f"{path}: is a symbolic link; refusing to write through it")


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` as the whole content of ``path``, which ends up with exactly ``mode``."""
    make_dirs(path.parent)
    refuse_link(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode & SECRET_FILE)  # at most the owner's permissions until fchmod below
    except OSError as exc:
        raise UnsafePath(f"{path}: cannot write: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(f"{path}: not a regular file")
        if info.st_nlink != 1:
            raise UnsafePath(f"{path}: has other hard links; remove it first")
        if info.st_uid != os.geteuid():
            raise UnsafePath(f"{path}: belongs to another user; remove it first")
        os.fchmod(fd, mode)
        os.ftruncate(fd, 0)
        handle.write(data)


def loose_secret(path: Path) -> str | None:
    """A warning when a secret file (private key, passphrase, credential key, database) is open to others."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return f"{path}: mode {mode:04o} lets other users read or change this secret; chmod 600 it"
    return None
