"""Claiming an output folder, so that a run folder never misleads.

:func:`claim` is called before any work. It creates the folder, takes its lock and clears it:

* **Lock.** ``OUTDIR/.xsim.lock`` is opened without following a symlink (``O_NOFOLLOW``) and
  locked with ``flock``; a second xsim run into the same folder finds it locked and stops with a
  message. The kernel drops the lock when the process ends, however it ends (``kill -9``
  included), so a stale lock never blocks a later run; the file itself stays, empty but for
  the holder's process id.
* **Clear.** The earlier run's ``summary.json`` goes first (a folder without one is not a
  complete run), then every other file the command may write there (``outputs``) and any
  temporary ``.*.part`` file a killed run left behind. Only files and symlinks named so are
  removed, never a folder or a file xsim does not write.

:func:`check_run` tells a complete run from a torn one afterwards: ``summary.json`` lists every
file of its run with its size and SHA-256.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from xsim.config.errors import XsimInputError

LOCK_NAME = ".xsim.lock"
SUMMARY = "summary.json"


class Claim:
    """A held output folder; :meth:`release` (or leaving the ``with`` block) drops the lock."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *_exc) -> None:
        self.release()


def claim(path: str | Path, outputs: Iterable[str] = ()) -> Claim:
    """Create and lock the output folder ``path``, then remove ``summary.json``, the files named
    in ``outputs`` and stale ``.*.part`` files. Raises XsimInputError when the folder cannot be
    written or another run holds it."""
    path = Path(path)
    name = str(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise XsimInputError(name, LOCK_NAME, "is a symlink; xsim does not write through "
                                 "one (remove it)") from None
        raise XsimInputError(name, None, f"cannot write the output folder: "
                             f"{exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise XsimInputError(name, LOCK_NAME, "is not a regular file (remove it)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise XsimInputError(name, None, "another xsim run is writing this folder"
                                 f"{f' (process {holder})' if holder.isdigit() else ''}; wait for "
                                 "it to finish or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _clear(path, outputs)
    except OSError as exc:
        os.close(fd)
        raise XsimInputError(name, None, f"cannot write the output folder: "
                             f"{exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        raise
    return Claim(path, fd)


def _clear(path: Path, outputs: Iterable[str]) -> None:
    stale = [SUMMARY, *(n for n in outputs if n != SUMMARY)]
    stale += sorted(p.name for p in path.glob(".*.part"))
    for name in stale:
        target = path / name
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            target.unlink(missing_ok=True)


def check_run(path: str | Path) -> list[str]:
    """Problems that make the run folder ``path`` incomplete or inconsistent (empty: a complete
    run): no ``summary.json``, a listed file missing or with another SHA-256, a ``.part`` file."""
    from xsim.report.files import sha256_file

    path = Path(path)
    problems = [f"{p.name}: a temporary file of an unfinished write" for p in path.glob(".*.part")]
    try:
        files = json.loads((path / SUMMARY).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{SUMMARY}: missing or without its file list: not a complete run", *problems]
    for entry in files:
        target = path / entry["file"]
        if not target.is_file():
            problems.append(f"{entry['file']}: listed in {SUMMARY} but missing")
        elif sha256_file(target) != entry["sha256"]:
            problems.append(f"{entry['file']}: differs from the run that wrote {SUMMARY}")
    return problems
