"""Per-face outputs of a clip, each written atomically: wav, mp4 with the face boxed, thumbnail, SRT, JSON."""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avspeech.io.atomic import atomic_path, atomic_write_json, atomic_write_text
from avspeech.io.media import VideoWriter, write_wav
from avspeech.timebase import SAMPLE_RATE

WRITERS_PER_PASS = 4  # output videos encoded per pass over the clip's frames

__all__ = ["write_wav", "write_json", "write_srt", "write_face_videos", "WRITERS_PER_PASS"]


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_json(path, obj)


def write_srt(path: str | Path, cues: Sequence[tuple[float, float, str]]) -> None:
    from avspeech.recognition.subtitles import to_srt

    atomic_write_text(path, to_srt(cues))


def write_thumbnail(path: str | Path, frame: np.ndarray, box: Sequence[int], size: int = 96) -> None:
    """The ``box`` (x0, y0, x1, y1) of an RGB ``frame`` resized to ``size`` x ``size``, as JPEG."""
    import cv2

    x0, y0, x1, y1 = box
    thumb = cv2.resize(frame[max(y0, 0):max(y1, 1), max(x0, 0):max(x1, 1)], (size, size))
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")


def write_face_videos(out: Path, frames, tracks: Sequence, audios: Sequence[np.ndarray | None], fps: float,
                      height: int, width: int, sample_rate: int = SAMPLE_RATE) -> None:
    """Per track ``speaker_<k>.mp4`` (the clip with that face boxed, and ``audios[i]`` as its sound) and
    ``speaker_<k>.jpg`` (the face at the middle of its track), in passes over ``frames`` (a stream or an array),
    :data:`WRITERS_PER_PASS` videos per pass."""
    import cv2

    h, w = height // 2 * 2, width // 2 * 2
    for g in range(0, len(tracks), WRITERS_PER_PASS):
        group = list(zip(tracks[g:g + WRITERS_PER_PASS], audios[g:g + WRITERS_PER_PASS]))
        with ExitStack() as stack:
            writers = [stack.enter_context(VideoWriter(out / f"speaker_{tr.index}.mp4", w, h, fps, audio=audio,
                                                       sample_rate=sample_rate)) for tr, audio in group]
            for t, frame in enumerate(frames):
                for (tr, _), writer in zip(group, writers):
                    img = frame[:h, :w]
                    if tr.start <= t < tr.end:
                        box = [int(round(v)) for v in tr.boxes[t - tr.start]]
                        if t == tr.start + tr.num_frames // 2:
                            write_thumbnail(out / f"speaker_{tr.index}.jpg", frame, box)
                        img = img.copy()
                        cv2.rectangle(img, tuple(box[:2]), tuple(box[2:]), (0, 255, 0), 2)
                    writer.write(img)
