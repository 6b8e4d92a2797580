"""The face tracks of a clip, streamed: frames are decoded on demand and each track keeps only what later stages
read (boxes, ROI transforms, ROIs in a temporary file; no landmarks, no per-track audio copy), so memory does not
grow with the clip's length beyond a few numbers per frame."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from avspeech.errors import InputError
from avspeech.io.arrayfile import TempArrays


@contextmanager
def clip_tracks(path: str | Path, max_faces: int = 4, need_audio: str | None = None,
                roi_geometry: str = "avspeech") -> Iterator[tuple]:
    """``(clip, result)``: the decoded clip (``clip.frames`` a stream: iterate it for another pass) and its
    :class:`~avspeech.preprocess.pipeline.ClipTracks` (each track's ``rois`` an ``ArrayFile``), for the
    ``with`` block. :class:`InputError` naming the clip when it has no face track, or no audio when
    ``need_audio`` (the reason the command needs it, for the message). ``roi_geometry``: the mouth-ROI
    convention of the model that reads the ROIs (:class:`~avspeech.preprocess.config.PreprocessConfig`)."""
    from avspeech.preprocess.config import PreprocessConfig
    from avspeech.preprocess.pipeline import Preprocessor, require_faces

    cfg = PreprocessConfig(max_faces=max_faces, roi_geometry=roi_geometry)
    with TempArrays() as store:
        with Preprocessor(cfg) as pre:
            clip, result = pre.process_file(path, stream=True, keep_landmarks=False, track_audio=False,
                                            store=store)
        if need_audio and not result.has_audio:
            raise InputError(f"the clip has no audio stream: {need_audio}", path)
        require_faces(result, path, cfg)
        yield clip, result
