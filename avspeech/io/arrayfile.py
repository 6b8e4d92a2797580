"""Per-frame arrays of a long clip kept on disk instead of in memory.

A streamed clip produces a few arrays per frame that later stages read back in order: each face's FaceMesh
landmarks while it is tracked (7.5 KB per face and frame), its mouth ROIs (9 KB), the landmarks of its finished
track for the track record. Held in memory these grow with the clip (about 0.5 GB for ten minutes of two faces);
an :class:`ArrayFile` puts them in an unnamed temporary file, written a row at a time and read back by rows or
contiguous slices, so what stays in memory is the row being handled. Written with ``write()``, not mapped: the
pages sit in the system's file cache, not in the process's resident set.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np


class ArrayFile:
    """``n`` rows of shape ``row_shape`` and type ``dtype`` in an unnamed temporary file (gone when closed or
    collected). Rows are set by index (``f[i] = row`` or ``f[a:b] = rows``, any order, rows never set read as
    zeros) or appended (:meth:`append`); ``row_shape=()`` makes a 1-D file (e.g. a long waveform, a sample per
    row); read as ``f[i]`` (one row) or ``f[a:b]`` (a contiguous slice). ``np.asarray(f)`` reads it all. One
    file is for one thread (a seek, then a read or write)."""

    def __init__(self, row_shape: Sequence[int], dtype=np.float64, n: int = 0,
                 folder: str | Path | None = None):
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self._row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._n = int(n)
        self._folder = folder or tempfile.gettempdir()
        self._file = None
        try:
            self._file = tempfile.TemporaryFile(dir=folder)
            if self._n:
                self._file.truncate(self._n * self._row_bytes)
        except OSError as e:
            if self._file is not None:
                self._file.close()
            raise self._disk_error(e) from e

    def _disk_error(self, e: OSError) -> OSError:
        return OSError(e.errno, f"cannot write a temporary file in {self._folder} ({e.strerror or e}): a long clip "
                       "keeps per-frame arrays there (about 25 KB per face and frame); free space there or set "
                       "TMPDIR to a folder with room")

    def _write(self, row: int, data: bytes) -> None:
        try:
            self._file.seek(row * self._row_bytes)
            self._file.write(data)
            self._file.flush()
        except OSError as e:
            raise self._disk_error(e) from e

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n,) + self.row_shape

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    def __len__(self) -> int:
        return self._n

    def _bytes(self, row: np.ndarray) -> bytes:
        row = np.asarray(row, self.dtype)  # (a 0-d row of a 1-D file stays 0-d; tobytes() is C order)
        if row.shape != self.row_shape:
            raise ValueError(f"a row of this file has shape {self.row_shape}, got {row.shape}")
        return row.tobytes()

    def __setitem__(self, index: int | slice, value: np.ndarray) -> None:
        if isinstance(index, slice):  # a contiguous run of rows
            s, e, step = index.indices(self._n)
            if step != 1:
                raise ValueError("an ArrayFile is written by rows or contiguous slices (step 1)")
            block = np.ascontiguousarray(value, self.dtype)
            if block.shape != (max(e, s) - s,) + self.row_shape:
                raise ValueError(f"rows {s}:{e} of this file have shape {(max(e, s) - s,) + self.row_shape}, "
                                 f"got {block.shape}")
            self._write(s, block.tobytes())
            return
        i = self._row_index(index)
        self._write(i, self._bytes(value))

    def _row_index(self, index) -> int:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"a row number, not {type(index).__name__}")
        i = int(index) + (self._n if index < 0 else 0)
        if not 0 <= i < self._n:
            raise IndexError(f"row {index} of a file of {self._n} rows")
        return i

    def append(self, row: np.ndarray) -> int:
        """Add ``row`` after the last one; returns its index."""
        self._write(self._n, self._bytes(row))
        self._n += 1
        return self._n - 1

    def _read(self, start: int, count: int) -> np.ndarray:
        self._file.seek(start * self._row_bytes)
        data = bytearray(self._file.read(count * self._row_bytes))  # a pre-sized file reads zeros where unset
        return np.frombuffer(data, self.dtype).reshape((count,) + self.row_shape)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            s, e, step = index.indices(self._n)
            if step != 1:
                raise ValueError("an ArrayFile is read by contiguous slices (step 1)")
            return self._read(s, max(e, s) - s)
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            return self._read(self._row_index(index), 1)[0]
        raise TypeError(f"an ArrayFile is read by a row number or a slice of rows, not {type(index).__name__} "
                        "(read the rows first: np.asarray(f[a:b]))")

    def __array__(self, dtype=None, copy=None):
        return self[:] if dtype is None else self[:].astype(dtype)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ArrayFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TempArrays:
    """Makes the :class:`ArrayFile` s of one piece of work and closes them all when it ends (``with``), error or
    not: ``store((n, *row_shape), dtype)`` gives a pre-sized file, the form the pipeline's ``store`` takes."""

    def __init__(self):
        self._files: list[ArrayFile] = []

    def __call__(self, shape: Sequence[int], dtype) -> ArrayFile:
        self._files.append(ArrayFile(shape[1:], dtype, shape[0]))
        return self._files[-1]

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()

    def __enter__(self) -> "TempArrays":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
