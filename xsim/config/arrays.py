"""Array files (``.npz``: weights, tier-1 masks, tier-2 scales), checked before they are used.

An ``.npz`` is a zip archive of ``.npy`` members. :class:`NpzArchive` opens it as a regular file
(a FIFO is refused, not waited on), reads each member's ``.npy`` header — dtype and shape — and
checks it before allocating anything: no Python objects (pickles stay refused), the dtype kind the
caller expects (integer codes, real scales), the expected shape, at most
:data:`~xsim.config.limits.MAX_ARRAY_BYTES`, and a header that does not claim more data than
the member holds. After reading, :meth:`NpzArchive.read` checks values: finite, and within the
caller's range. Every violation is an :class:`ArrayFileError` naming the file, the array and
who named the file (the workload and the task).
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from xsim.config.errors import ConfigError
from xsim.config.limits import MAX_ARRAY_BYTES, MAX_ARRAYS, open_regular, shown_key
from xsim.text import shown

KIND_NAMES = {"b": "boolean", "i": "integer", "u": "unsigned integer", "f": "real (float)"}
INTEGER = "iu"
REAL = "iuf"


class ArrayFileError(ConfigError, ValueError):
    """A bad array file. Also a ValueError, which callers of :func:`xsim.functional.load_weights`
    have always caught."""


class NpzArchive:
    """An ``.npz`` archive opened for checked reads; ``named_by`` says who named the file
    (e.g. ``"named by w.json: tasks[1].tier2.scales_file (task 'rotated')"``)."""

    def __init__(self, path: str | Path, named_by: str = "") -> None:
        self.path = str(path)
        self.named_by = named_by
        try:
            self._handle = open_regular(path)
        except ConfigError as exc:
            raise self.error(None, f"cannot read as .npz ({exc.message})") from None
        try:
            if self._handle.read(6) == b"\x93NUMPY":
                raise self.error(None, "a single .npy array, not an .npz archive of named arrays")
            self._handle.seek(0)
            self._zip = zipfile.ZipFile(self._handle)
            infos = [i for i in self._zip.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            self._handle.close()
            if isinstance(exc, ArrayFileError):
                raise
            raise self.error(None, f"cannot read as .npz: not a readable .npz archive "
                             f"({shown(str(exc))})") from None
        if len(infos) > MAX_ARRAYS:
            self.close()
            raise self.error(None, f"holds {len(infos)} arrays; at most {MAX_ARRAYS} (MAX_ARRAYS)")
        self._members = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i
                         for i in infos}

    def error(self, key: str | None, message: str) -> ArrayFileError:
        return ArrayFileError(self.path, None if key is None else shown_key(key),
                              f"{message}{'; ' + self.named_by if self.named_by else ''}")

    @property
    def keys(self) -> list[str]:
        return sorted(self._members)

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """The array's shape and dtype, from its ``.npy`` header alone; checks the size bound."""
        info = self._member(key)
        try:
            with self._zip.open(info) as member:
                version = npy_format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = npy_format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = npy_format.read_array_header_2_0(member)
                else:
                    raise self.error(key, f"unsupported .npy format version {version}")
                offset = member.tell()
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            if isinstance(exc, ArrayFileError):
                raise
            raise self.error(key, f"not a readable .npy array ({shown(str(exc))})") from None
        if dtype.hasobject:
            raise self.error(key, "holds Python objects (a pickle), which xsim never loads")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES:
            raise self.error(key, f"claims shape {shown(shape)} of {dtype} ({nbytes} bytes); at "
                             f"most {MAX_ARRAY_BYTES} bytes per array (MAX_ARRAY_BYTES)")
        if offset + nbytes > info.file_size:
            raise self.error(key, f"its header claims shape {shown(shape)} of {dtype} "
                             f"({nbytes} bytes) but the member holds {info.file_size - offset}")
        return tuple(shape), dtype

    def read(self, key: str, *, kinds: str | None = None, shape: tuple[int, ...] | None = None,
             what: str = "an array", low: float | None = None, high: float | None = None,
             max_items: int | None = None) -> np.ndarray:
        """Read array ``key``, checked: dtype kind among ``kinds`` (numpy kind letters), ``shape``
        (or at most ``max_items`` elements), finite values and values in [``low``, ``high``].
        Header checks come before the read."""
        found, dtype = self.header(key)
        if max_items is not None and math.prod(found) > max_items:
            raise self.error(key, f"expected {what} of at most {max_items} entries, got shape "
                             f"{shown(found)}")
        if (kinds is not None and dtype.kind not in kinds) or (shape is not None and found != shape):
            expected = " or ".join(dict.fromkeys(KIND_NAMES.get(k, k) for k in kinds or ""))
            raise self.error(key, f"expected {what}{' (' + expected + ')' if expected else ''}"
                             f"{f' of shape {shape}' if shape is not None else ''}, got {dtype} "
                             f"{shown(found)}")
        try:
            with self._zip.open(self._member(key)) as member:
                array = npy_format.read_array(member, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise self.error(key, f"cannot be read ({shown(str(exc))})") from None
        if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
            raise self.error(key, f"{what} holds NaN or infinite values")
        if array.size and array.dtype.kind in "iuf":
            lo, hi = array.min(), array.max()
            if (low is not None and lo < low) or (high is not None and hi > high):
                raise self.error(key, f"{what} must lie in [{_bound(low, '-inf')}, "
                                 f"{_bound(high, 'inf')}], found values from {lo} to {hi}")
        return array

    def _member(self, key: str) -> zipfile.ZipInfo:
        if key not in self._members:
            raise self.error(key, f"missing array (file has {shown(self.keys)})")
        return self._members[key]

    def close(self) -> None:
        self._zip.close()
        self._handle.close()

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _bound(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else f"{value:g}"
