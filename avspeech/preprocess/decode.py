"""Decode a media file onto the pipeline's time base: video resampled to 25 fps by timestamp, audio 16 kHz mono.

Probing uses PyAV (it names what is wrong with a file that is not media, has no video stream, or is cut short);
decord reads the frames' timestamps, which fix the 25 fps grid; PyAV decodes the frames, in order, in the calling
thread, keeping only those the grid needs. (decord's ``VideoReader.next()`` decodes ahead on a thread of its own
with no bound: when the caller is slower than the decoder, as tracking is, it buffers the rest of the video, about
6 GB for a minute of 1080p. PyAV decodes only what is asked for, gives the same pixels and is faster per frame.)

Memory: :func:`decode_clip` keeps a clip's frames in memory only when they take at most ``in_memory_mb``;
otherwise ``frames`` is a :class:`FrameStream` that decodes on demand and holds a few frames, optionally
downscaled (``max_side``) for the stages that do not need full resolution, and hands the freed frames' memory back
to the system as it goes (:mod:`avspeech.io.heap`). Frames larger than
:data:`MAX_FRAME_SIDE` are refused up front (:func:`check_frame_size`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from avspeech.errors import InputError
from avspeech.io.heap import TRIM_EVERY, trim_heap
from avspeech.timebase import FPS, SAMPLE_RATE

log = logging.getLogger(__name__)

MAX_FRAME_SIDE = 4096  # px: larger frames (8K) are refused with advice to downscale (README, "Limits")


@dataclass
class MediaInfo:
    """What a probe of a file found."""

    width: int  # as stored (before display rotation)
    height: int
    rotation: int  # display rotation, degrees counter-clockwise (FFmpeg's display matrix), multiple of 90
    has_audio: bool
    source_fps: float  # average rate of the video stream as declared by the container


@dataclass
class DecodedClip:
    """A clip on the pipeline's time base.

    frames: (T, H, W, 3) RGB uint8 at ``fps`` (or a :class:`FrameStream` of them); source_index: (T,) the source frame shown at each output frame;
    source_times: (S,) presentation times (s) of the source frames from the first one; audio: (T * sample_rate /
    fps,) float32 mono or None when the file has no audio stream.
    """

    frames: "np.ndarray | FrameStream"
    source_index: np.ndarray
    source_times: np.ndarray
    audio: np.ndarray | None
    info: MediaInfo
    fps: float
    sample_rate: int


def _first_line(e: Exception) -> str:
    from avspeech.io.media import decoder_message

    return decoder_message(e)


def probe(path: str | Path) -> MediaInfo:
    """Open ``path`` with PyAV and describe it; :class:`InputError` if it is not a video we can read."""
    import av

    from avspeech.io.media import check_file

    p = Path(path)
    check_file(p)
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise InputError(f"no video stream (streams: {', '.join(kinds)})", path)
            vs = container.streams.video[0]
            rotation = 0
            try:
                first = next(container.decode(vs))
                rotation = int(round(getattr(first, "rotation", 0) or 0))
            except StopIteration:
                raise InputError("video stream has no frames", path) from None
            rate = vs.average_rate or vs.guessed_rate or 0
            return MediaInfo(width=vs.codec_context.width, height=vs.codec_context.height,
                             rotation=rotation % 360, has_audio=bool(container.streams.audio),
                             source_fps=float(rate))
    except InputError:
        raise
    except Exception as e:  # av.error.InvalidDataError etc.: FFmpeg's reason
        raise InputError(f"not a readable media file ({_first_line(e)})", path) from e


def check_frame_size(info: MediaInfo, path: str | Path, limit: int = MAX_FRAME_SIDE) -> None:
    """:class:`InputError` naming the file, its frame size and what to do when a side exceeds ``limit`` px."""
    if max(info.width, info.height) > limit:
        raise InputError(f"frame size {info.width}x{info.height} exceeds the supported {limit} px per side; "
                         f"downscale the video first, e.g. ffmpeg -i IN -vf scale=-2:2160 OUT.mp4", path)


def resample_indices(times: np.ndarray, end_time: float, fps: float) -> np.ndarray:
    """For each frame of a ``fps`` grid over [0, end_time), the index of the source frame whose timestamp is
    nearest (ties to the earlier one). ``times`` (S,) are increasing source timestamps starting at 0."""
    n_out = max(1, int(np.floor(end_time * fps + 0.5 + 1e-9)))  # half a frame or more counts
    grid = np.arange(n_out) / fps
    right = np.searchsorted(times, grid, side="left").clip(0, len(times) - 1)
    left = (right - 1).clip(0, len(times) - 1)
    pick_left = np.abs(grid - times[left]) <= np.abs(times[right] - grid)
    return np.where(pick_left, left, right)


def _rotate(frame: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(frame, k=rotation // 90)) if rotation else frame


def _grid(starts: np.ndarray, end: float, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(source index per output frame, source times sorted) for start times ``starts`` (S,) from frame 0."""
    order = np.argsort(starts, kind="stable")  # present in time order even if timestamps are out of order
    sorted_times = starts[order]
    return order[resample_indices(sorted_times, end, fps)], sorted_times


SourceFrames = Callable[[], Iterator[np.ndarray]]


def _plan_decord(path: str | Path, fps: float, info: MediaInfo) -> tuple[np.ndarray, np.ndarray, SourceFrames]:
    import decord

    try:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n = len(vr)
        if n == 0:
            raise InputError("video stream has no frames", path)
        ts = vr.get_frame_timestamp(list(range(n))).astype(np.float64)  # (S, 2) start, end
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot decode video ({_first_line(e)})", path) from e
    starts = ts[:, 0] - ts[0, 0]
    end = max(ts[:, 1].max() - ts[0, 0], starts.max() + (1.0 / info.source_fps if info.source_fps else 0))
    pick, sorted_times = _grid(starts, end, fps)
    last = int(pick.max())
    del vr  # timestamps only: its own decoding would read ahead without bound (module docstring)
    return pick, sorted_times, _pyav_frames(path, last, info.rotation)


def _pyav_frames(path: str | Path, last: int, rotation: int) -> SourceFrames:
    """A function that opens a fresh pass over source frames 0..``last`` (RGB, display rotation applied),
    decoded by PyAV in the calling thread."""
    import av

    def frames() -> Iterator[np.ndarray]:
        count = 0
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "NONE"
                for frame in container.decode(stream):
                    yield _rotate(frame.to_ndarray(format="rgb24"), rotation)
                    count += 1
                    if count > last:
                        return
        except Exception as e:
            raise InputError(f"video is truncated or corrupt: decoding stopped at frame {count} of {last + 1} "
                             f"needed ({_first_line(e)})", path) from e
        raise InputError(f"video is truncated or corrupt: {count} of {last + 1} needed frames decoded", path)

    return frames


def _plan_pyav(path: str | Path, fps: float, info: MediaInfo) -> tuple[np.ndarray, np.ndarray, SourceFrames]:
    """The grid from packet timestamps, for files with a display rotation (decord 0.6 garbles them)."""
    import av

    try:
        with av.open(str(path)) as container:
            vs = container.streams.video[0]
            pts = sorted(p.pts for p in container.demux(vs) if p.pts is not None)
    except Exception as e:
        raise InputError(f"cannot decode video ({_first_line(e)})", path) from e
    if not pts:
        raise InputError("video stream has no frames", path)
    tb = float(vs.time_base)
    starts = (np.asarray(pts, np.float64) - pts[0]) * tb
    step = np.median(np.diff(starts)) if len(starts) > 1 else 1.0 / (info.source_fps or fps)
    pick, sorted_times = _grid(starts, starts[-1] + step, fps)  # decoded frames come in time order
    last = int(pick.max())

    return pick, sorted_times, _pyav_frames(path, last, info.rotation)


def _plan(path: str | Path, fps: float, info: MediaInfo) -> tuple[np.ndarray, np.ndarray, SourceFrames]:
    """(source index per output frame (T,), sorted source times (S,), a function that opens a fresh pass over
    the source frames in decoding order)."""
    return (_plan_pyav if info.rotation else _plan_decord)(path, fps, info)


Plan = tuple[np.ndarray, np.ndarray, SourceFrames]


def decode_video(path: str | Path, fps: float = 25.0, info: MediaInfo | None = None, plan: Plan | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) RGB uint8 resampled to ``fps`` by timestamp (display rotation applied), the source
    index of each, and the source timestamps (S,) in seconds from the first frame."""
    info = info or probe(path)
    pick, sorted_times, source = plan or _plan(path, fps, info)
    needed = {int(i) for i in pick}
    last = max(needed)
    kept: dict[int, np.ndarray] = {}
    for i, frame in enumerate(source()):
        if i in needed:
            kept[i] = frame
        if i >= last:
            break
    return np.stack([kept[int(j)] for j in pick]), pick.astype(np.int64), sorted_times


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the larger side is at most ``max_side`` (unchanged if it already is)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


class FrameStream:
    """The frames of a file on the ``fps`` grid, decoded on demand in order, so memory does not grow with the
    clip: ``stream[t]`` for frames at or after the newest one asked for, or within the last ``keep`` frames;
    ``len(stream)`` frames; ``iter(stream)`` is a fresh pass from the first frame. ``shape`` is (T, H, W, 3).

    With ``max_side``, frames whose larger side exceeds it are handed out downscaled to it (``cv2.INTER_AREA``,
    each decoded frame dropped once scaled); ``frame_size`` is then the full (width, height), ``shape`` the
    scaled one. :meth:`full` is the same stream at full resolution. Files whose timestamps are out of order
    (the grid is not monotonic in the source) are decoded whole."""

    def __init__(self, path: str | Path, fps: float = 25.0, keep: int = 32, info: MediaInfo | None = None,
                 max_side: int | None = None, plan: Plan | None = None):
        self.path, self.fps, self.keep, self.max_side = path, fps, keep, max_side
        self.info = info or probe(path)
        self._plan = plan or _plan(path, fps, self.info)
        self.pick, self.source_times, self._source = self._plan
        self._whole = None
        if np.any(np.diff(self.pick) < 0):
            self._whole = decode_video(path, fps, self.info, self._plan)[0]
        self._restart()
        if self._whole is None:
            self._decoded(0)  # the first frame, decoded now so that a file that yields none fails here
        w, h = (self.info.height, self.info.width) if self.info.rotation % 180 else (self.info.width, self.info.height)
        self.frame_size = (w, h)  # full resolution, display rotation applied
        self.size = scaled_size(w, h, max_side)
        self.shape = (len(self.pick), self.size[1], self.size[0], 3)

    def full(self, keep: int = 1) -> "FrameStream":
        """The same frames at full resolution, holding the last ``keep`` (a new stream sharing this one's plan;
        one frame is all that a pass that only iterates needs)."""
        return FrameStream(self.path, self.fps, keep, self.info, None, self._plan)

    def _scaled(self, frame: np.ndarray) -> np.ndarray:
        if not self.max_side or max(frame.shape[:2]) <= self.max_side:
            return frame
        import cv2

        return cv2.resize(frame, scaled_size(frame.shape[1], frame.shape[0], self.max_side),
                          interpolation=cv2.INTER_AREA)

    def _decoded(self, want: int) -> np.ndarray:
        """Source frame ``want`` (at or after the last one decoded), scaled; skipped frames are dropped at once."""
        while self._src < want:
            try:
                frame = next(self._it)
            except StopIteration:
                raise InputError(f"video is truncated or corrupt: stopped before source frame {want}",
                                 self.path) from None
            self._src += 1
            if self._src % TRIM_EVERY == 0:  # freed frames go back to the system (avspeech.io.heap)
                trim_heap()
            if self._src == want:
                self._frame = self._scaled(frame)
        return self._frame

    def _restart(self) -> None:
        self._it = self._source() if self._whole is None else None
        self._src = -1
        self._frame: np.ndarray | None = None
        self._next = 0
        self._buf: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.pick)

    def __getitem__(self, t: int) -> np.ndarray:
        if self._whole is not None:
            return self._scaled(self._whole[t])
        t = int(t) + (len(self) if t < 0 else 0)
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} of {len(self)}")
        if t in self._buf:
            return self._buf[t]
        if t < self._next:
            raise IndexError(f"frame {t} is no longer buffered (the stream keeps the last {self.keep} frames)")
        while self._next <= t:
            self._buf[self._next] = self._decoded(int(self.pick[self._next]))
            self._buf.pop(self._next - self.keep, None)
            self._next += 1
        return self._buf[t]

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._next > 0 or self._whole is not None:  # a fresh stream goes on from the first frame it decoded
            self._restart()
        for t in range(len(self)):
            yield self[t]


def decode_audio(path: str | Path, num_samples: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The audio stream as float32 mono at ``sample_rate``, cut or zero-padded to ``num_samples`` (AAC decoders
    add up to 1024 trailing samples; the video's duration decides); decoded as a stream
    (:func:`avspeech.io.media.read_audio`)."""
    from avspeech.io.media import read_audio

    return read_audio(path, sample_rate, num_samples)


def decode_clip(path: str | Path, fps: float = FPS, sample_rate: int = SAMPLE_RATE, stream: bool | None = False,
                keep: int = 32, in_memory_mb: float = 0.0, max_side: int | None = None) -> DecodedClip:
    """Probe, decode and resample one file. A file without an audio stream gives ``audio=None``. With
    ``stream``, ``frames`` is a :class:`FrameStream` (decoded on demand, the last ``keep`` frames kept, handed
    out downscaled to ``max_side``); with ``stream=None`` the clip is streamed only when its frames would take
    more than ``in_memory_mb`` MB (else decoded once into memory). Frames beyond :data:`MAX_FRAME_SIDE` raise
    :class:`InputError` before anything is decoded."""
    info = probe(path)
    check_frame_size(info, path)
    plan = _plan(path, fps, info)
    if stream is None:
        stream = len(plan[0]) * info.width * info.height * 3 > in_memory_mb * 2**20
    if stream:
        frames = FrameStream(path, fps, keep, info, max_side, plan)
        pick, times = frames.pick.astype(np.int64), frames.source_times
    else:
        frames, pick, times = decode_video(path, fps, info, plan)
    audio = None
    if info.has_audio:
        audio = decode_audio(path, int(round(len(frames) * sample_rate / fps)), sample_rate)
    return DecodedClip(frames, pick, times, audio, info, fps, sample_rate)
