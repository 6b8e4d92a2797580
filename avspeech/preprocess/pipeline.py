"""The preprocessing of one clip, in memory: frames (and audio) in, face tracks with mouth ROIs out.

Later stages (separation, recognition per face) call :func:`preprocess_clip` or :class:`Preprocessor` on single
clips without going through files; the batch command (``avspeech.preprocess.batch``) writes the same tracks to
disk.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avspeech.errors import InputError
from avspeech.io.arrayfile import ArrayFile
from avspeech.preprocess.align import LIP_POINTS, crop_rois, iter_filled, roi_points, roi_transforms
from avspeech.preprocess.config import PreprocessConfig
from avspeech.preprocess.decode import DecodedClip, FrameStream, decode_clip
from avspeech.preprocess.detect import NUM_LANDMARKS, FaceDetector, FaceMeshPool, landmark_box
from avspeech.preprocess.track import find_tracklets, link_tracklets


@dataclass
class FaceTrack:
    """One face over a run of consecutive frames ``start .. start + L - 1`` of the clip's 25 fps grid.

    boxes: (L, 4) landmark boxes x0, y0, x1, y1 in frame pixels; landmarks: (L, 468, 2) FaceMesh points in frame
    pixels (smoothing is applied to the alignment only, these are as found, gaps interpolated; None when the
    caller asked not to keep them); observed: (L,)
    False where the frame was interpolated; transforms: (L, 2, 3) affine maps frame pixels -> ROI pixels;
    rois: (L, 96, 96) uint8 grayscale mouth ROIs; audio: (L * 640,) float32 16 kHz over the same span (a view of
    the clip's audio), or None. For a streamed clip given a ``store``, ``rois`` and ``landmarks`` are what the
    store made (e.g. :class:`~avspeech.io.arrayfile.ArrayFile`, read by rows or slices).
    """

    index: int
    start: int
    boxes: np.ndarray
    landmarks: np.ndarray | ArrayFile | None
    observed: np.ndarray
    transforms: np.ndarray
    rois: np.ndarray
    audio: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.boxes)

    @property
    def end(self) -> int:
        """One past the last frame."""
        return self.start + self.num_frames

    @property
    def mouth(self) -> np.ndarray:
        """(L, 2) mouth centre (mean of the lip landmarks) in frame pixels (landmarks on disk read in blocks)."""
        lm = self.landmarks
        if isinstance(lm, np.ndarray):
            return lm[:, LIP_POINTS].mean(axis=1)
        return np.concatenate([np.asarray(lm[s:s + 1024])[:, LIP_POINTS].mean(axis=1)
                               for s in range(0, len(lm), 1024)]).reshape(-1, 2)


def _in_memory(shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.empty(shape, dtype)


@dataclass
class ClipTracks:
    """All face tracks of a clip. ``audio`` (T * 640,) float32 is the whole clip's audio (None if it has none);
    ``timings`` holds seconds per stage (decode, detection, landmarks, alignment; writing is added by the batch)."""

    tracks: list[FaceTrack]
    num_frames: int
    height: int
    width: int
    fps: float
    sample_rate: int
    audio: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def has_audio(self) -> bool:
        return self.audio is not None


class Preprocessor:
    """Holds the MediaPipe models so that many clips can be processed without rebuilding them (one per process).

    >>> with Preprocessor(PreprocessConfig(max_faces=2)) as pre:
    ...     result = pre.process_file("talk.mp4")  # doctest: +SKIP
    """

    def __init__(self, config: PreprocessConfig | None = None):
        self.config = config or PreprocessConfig()
        self.detector = FaceDetector(self.config.detection_confidence, self.config.detect_max_side)
        self.pool = FaceMeshPool(self.config.landmark_confidence, self.config.crop_scale, self.config.crop_size)

    def __enter__(self) -> "Preprocessor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.detector.close()
        self.pool.close()

    def process_frames(self, frames: np.ndarray, audio: np.ndarray | None = None,
                       timings: dict[str, float] | None = None, *, keep_landmarks: bool = True,
                       track_audio: bool = True, store=None) -> ClipTracks:
        """Face tracks of ``frames`` (T, H, W, 3) RGB uint8 already on the ``config.fps`` grid, with the clip's
        ``audio`` (N,) float32 at ``config.sample_rate`` (cut or zero-padded to T frames) or None.

        Memory: while tracking, the landmarks of every face and frame wait in a temporary file
        (:class:`~avspeech.io.arrayfile.ArrayFile`); a track is then built a frame at a time and keeps its boxes,
        ROI transforms, observed flags and, with ``keep_landmarks``, its (L, 468, 2) landmarks. ``frames`` may
        be a :class:`~avspeech.preprocess.decode.FrameStream` (a long clip, decoded on demand): its ROIs are cut
        in a second pass, and ``store(shape, dtype)`` gives the array-like that a streamed clip's ROIs and kept
        landmarks are written into, a row per frame (e.g. an ``ArrayFile``; default: arrays in memory).
        Without ``track_audio`` the tracks carry no audio; with it, each carries a view of its span of the
        clip's audio (no copy)."""
        cfg = self.config
        streamed = isinstance(frames, FrameStream)
        if not streamed:
            frames = np.asarray(frames)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 (T, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
        timings = {} if timings is None else timings
        n = len(frames)
        spf = cfg.samples_per_frame
        if audio is not None:
            audio = np.asarray(audio, np.float32).reshape(-1)
            want = int(round(n * spf))
            audio = audio[:want] if audio.size >= want else np.pad(audio, (0, want - audio.size))
        size = frames.frame_size if streamed else None  # a stream may hand out downscaled copies for tracking
        if store is None or not streamed:
            store = _in_memory
        columns = roi_points(cfg.roi_geometry)
        with ArrayFile((NUM_LANDMARKS, 2), np.float64) as log:
            raw = link_tracklets(find_tracklets(frames, cfg, self.detector, self.pool, log, timings, size), cfg)
            t0 = time.perf_counter()
            tracks = []
            for r in raw:
                if r.end - r.start + 1 < cfg.min_track_frames:
                    continue
                span = r.end - r.start + 1
                lm = store((span, NUM_LANDMARKS, 2), np.float64) if keep_landmarks else None
                boxes, points = np.empty((span, 4)), np.empty((span, len(columns), 2))
                for i, row in enumerate(iter_filled(r.frames, r.landmarks)):
                    boxes[i], points[i] = landmark_box(row), row[columns]
                    if lm is not None:
                        lm[i] = row
                observed = np.zeros(span, bool)
                observed[np.asarray(r.frames) - r.start] = True
                tf = roi_transforms(points, cfg.smooth_window, cfg.roi_size, cfg.roi_geometry, columns)
                rois = None if streamed else crop_rois(frames[r.start:r.end + 1], tf, cfg.roi_size)
                seg = None
                if audio is not None and track_audio:
                    seg = audio[int(round(r.start * spf)):int(round((r.end + 1) * spf))]
                tracks.append(FaceTrack(0, r.start, boxes, lm, observed, tf, rois, seg))
        if streamed:  # a second pass over the clip cuts every track's ROIs from the full-resolution frames
            for tr in tracks:
                tr.rois = store((tr.num_frames, cfg.roi_size, cfg.roi_size), np.uint8)
            last = max((tr.end for tr in tracks), default=0)
            for t, frame in enumerate(frames.full()):
                if t >= last:
                    break
                for tr in tracks:
                    if tr.start <= t < tr.end:
                        tr.rois[t - tr.start] = crop_rois(frame[None], tr.transforms[t - tr.start:t - tr.start + 1],
                                                          cfg.roi_size)[0]
        tracks.sort(key=lambda tr: (tr.start, tr.boxes[0, 0]))
        for i, tr in enumerate(tracks):
            tr.index = i
        timings["alignment"] = timings.get("alignment", 0.0) + time.perf_counter() - t0
        w, h = size or (frames.shape[2], frames.shape[1])
        return ClipTracks(tracks, n, h, w, cfg.fps, cfg.sample_rate, audio, timings)

    def process_file(self, path: str | Path, stream: bool | None = False, **keep) -> tuple[DecodedClip, ClipTracks]:
        """Decode ``path`` (resampled to 25 fps, audio 16 kHz mono) and track its faces. With ``stream`` the
        frames are decoded on demand (:class:`~avspeech.preprocess.decode.FrameStream`, two passes: tracking on
        frames downscaled to ``config.track_max_side``, then ROIs from the full-resolution frames), so memory
        does not grow with the clip's length or resolution; the returned clip's ``frames`` is then the stream
        (``clip.frames.full()`` for another pass at full resolution). ``stream=None`` streams only a clip whose
        frames would take more than ``config.in_memory_mb``. ``keep`` goes to :meth:`process_frames` (what a
        track keeps)."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        cfg = self.config
        clip = decode_clip(path, cfg.fps, cfg.sample_rate, stream=stream,
                           keep=cfg.detect_every + cfg.max_gap + 4, in_memory_mb=cfg.in_memory_mb,
                           max_side=cfg.track_max_side)
        timings["decode"] = time.perf_counter() - t0
        result = self.process_frames(clip.frames, clip.audio, timings, **keep)
        if isinstance(clip.frames, FrameStream):
            clip.frames = clip.frames.full()
        return clip, result


def preprocess_clip(frames: np.ndarray, audio: np.ndarray | None = None,
                    config: PreprocessConfig | None = None) -> ClipTracks:
    """One-shot form of :meth:`Preprocessor.process_frames` (builds and closes the models)."""
    with Preprocessor(config) as pre:
        return pre.process_frames(frames, audio)


def preprocess_file(path: str | Path, config: PreprocessConfig | None = None) -> ClipTracks:
    """One-shot form of :meth:`Preprocessor.process_file`; returns the tracks (the decoded frames are dropped).
    Raises :class:`InputError` naming the file when it cannot be decoded."""
    with Preprocessor(config) as pre:
        return pre.process_file(path)[1]


def require_faces(result: ClipTracks, path: str | Path, config: PreprocessConfig) -> None:
    """:class:`InputError` when a clip yields no track (so the batch lists it with the reason)."""
    if result.tracks:
        return
    if result.num_frames < config.min_track_frames:
        raise InputError(f"clip too short: {result.num_frames} frames at {config.fps:g} fps, a track needs at "
                         f"least {config.min_track_frames}", path)
    raise InputError(f"no face found (no track of at least {config.min_track_frames} frames)", path)
