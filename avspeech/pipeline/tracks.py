"""The face tracks of a clip, streamed: frames are decoded on demand and each track keeps only what later stages
read (boxes, ROI transforms, ROIs in a temporary file; no landmarks, no per-track audio copy), so memory does not
grow with the clip's length beyond a few numbers per frame."""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from avspeech.errors import InputError


class RoiFile:
    """(n, size, size) uint8 mouth ROIs in an unnamed temporary file (gone when closed or collected): written a
    frame at a time, read a slice (one chunk) at a time, so a long track's ROIs are on disk, not in memory."""

    def __init__(self, n: int, size: int, folder: str | Path | None = None):
        self.shape = (n, size, size)
        self._frame = size * size
        self._file = tempfile.TemporaryFile(dir=folder)
        self._file.truncate(n * self._frame)

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, i: int, roi: np.ndarray) -> None:
        if not 0 <= i < len(self):
            raise IndexError(i)
        self._file.seek(i * self._frame)
        self._file.write(np.ascontiguousarray(roi, np.uint8).reshape(-1).tobytes())

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("RoiFile is read by slices of frames")
        s, e, step = index.indices(len(self))
        if step != 1:
            raise ValueError("RoiFile is read by contiguous slices")
        e = max(e, s)
        self._file.seek(s * self._frame)
        data = bytearray(self._file.read((e - s) * self._frame))
        return np.frombuffer(data, np.uint8).reshape(e - s, *self.shape[1:])

    def __array__(self, dtype=None, copy=None):
        return self[:] if dtype is None else self[:].astype(dtype)

    def close(self) -> None:
        self._file.close()


@contextmanager
def clip_tracks(path: str | Path, max_faces: int = 4, need_audio: str | None = None,
                roi_geometry: str = "avspeech") -> Iterator[tuple]:
    """``(clip, result)``: the decoded clip (``clip.frames`` a stream: iterate it for another pass) and its
    :class:`~avspeech.preprocess.pipeline.ClipTracks` (each track's ``rois`` a :class:`RoiFile`), for the
    ``with`` block. :class:`InputError` naming the clip when it has no face track, or no audio when
    ``need_audio`` (the reason the command needs it, for the message). ``roi_geometry``: the mouth-ROI
    convention of the model that reads the ROIs (:class:`~avspeech.preprocess.config.PreprocessConfig`)."""
    from avspeech.preprocess.config import PreprocessConfig
    from avspeech.preprocess.pipeline import Preprocessor, require_faces

    cfg = PreprocessConfig(max_faces=max_faces, roi_geometry=roi_geometry)
    stores: list[RoiFile] = []

    def store(n: int, size: int) -> RoiFile:
        stores.append(RoiFile(n, size))
        return stores[-1]

    try:
        with Preprocessor(cfg) as pre:
            clip, result = pre.process_file(path, stream=True, keep_landmarks=False, track_audio=False,
                                            roi_store=store)
        if need_audio and not result.has_audio:
            raise InputError(f"the clip has no audio stream: {need_audio}", path)
        require_faces(result, path, cfg)
        yield clip, result
    finally:
        for s in stores:
            s.close()
