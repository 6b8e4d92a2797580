"""Per-face outputs of a clip, each written atomically: wav, mp4 with the face boxed, thumbnail, SRT, JSON."""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avspeech.io.atomic import atomic_path, atomic_write_json, atomic_write_text
from avspeech.io.media import VideoWriter, write_wav
from avspeech.timebase import SAMPLE_RATE

WRITERS_PER_PASS = 4  # output videos encoded per pass over the clip's frames, at most
VIDEO_MAX_SIDE = 1920  # px: the per-face videos of larger clips are downscaled to this (an H.264 encoder of a 4K
# frame holds about 0.5 GB, whatever its settings)
PASS_PIXELS = 2 * 1920 * 1080  # frame pixels encoded at once: fewer videos per pass for larger frames

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
    """Per track ``speaker_<k>.mp4`` (the clip with that face boxed, and ``audios[i]`` as its sound; frames
    larger than :data:`VIDEO_MAX_SIDE` downscaled to it) and ``speaker_<k>.jpg`` (the face at the middle of its
    track, from the full frame), in passes over ``frames`` (a stream or an array), up to
    :data:`WRITERS_PER_PASS` videos per pass (fewer for large frames: :data:`PASS_PIXELS`)."""
    import cv2

    from avspeech.preprocess.decode import scaled_size

    sw, sh = scaled_size(width, height, VIDEO_MAX_SIDE)
    h, w = sh // 2 * 2, sw // 2 * 2
    sx, sy = sw / width, sh / height
    per_pass = max(1, min(WRITERS_PER_PASS, PASS_PIXELS // (w * h)))
    for g in range(0, len(tracks), per_pass):
        group = list(zip(tracks[g:g + per_pass], audios[g:g + per_pass]))
        with ExitStack() as stack:
            writers = [stack.enter_context(VideoWriter(out / f"speaker_{tr.index}.mp4", w, h, fps, audio=audio,
                                                       sample_rate=sample_rate)) for tr, audio in group]
            for t, frame in enumerate(frames):
                small = frame if (sw, sh) == (width, height) else cv2.resize(frame, (sw, sh),
                                                                             interpolation=cv2.INTER_AREA)
                for (tr, _), writer in zip(group, writers):
                    img = small[:h, :w]
                    if tr.start <= t < tr.end:
                        box = [int(round(v)) for v in tr.boxes[t - tr.start]]
                        if t == tr.start + tr.num_frames // 2:
                            write_thumbnail(out / f"speaker_{tr.index}.jpg", frame, box)
                        if (sw, sh) != (width, height):
                            box = [int(round(v * f)) for v, f in zip(tr.boxes[t - tr.start], (sx, sy, sx, sy))]
                        img = img.copy()
                        cv2.rectangle(img, tuple(box[:2]), tuple(box[2:]), (0, 255, 0), 2)
                    writer.write(img)
