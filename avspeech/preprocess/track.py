"""Follow every face through a clip: detections start tracklets, FaceMesh follows them, short gaps are bridged.

Per frame ``t``:
1. every active tracklet runs its FaceMesh on a crop around its last box; a miss, or landmarks that jump off
   the last box (IoU below ``link_iou``), ends the tracklet; two tracklets on one face keep the older;
2. on detection frames (every ``detect_every`` frames, and right after a tracklet ended) the full-range detector
   runs on the whole frame; a detection no tracklet covers starts a new tracklet, which is first followed
   backwards (a face that appeared between two detection frames is covered from its first frame).
Afterwards tracklets that end and start again within ``max_gap`` frames at overlapping boxes are joined into
one track. Boxes are landmark boxes (x0, y0, x1, y1) in frame pixels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from avspeech.io.arrayfile import ArrayFile
from avspeech.preprocess.config import PreprocessConfig
from avspeech.preprocess.detect import FaceDetector, FaceMeshPool, FaceMeshTracker, landmark_box

SAME_FACE_IOU = 0.5  # two boxes this close are one face


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class RawTrack:
    """One face on the frames where FaceMesh found it (frame indices increasing, gaps allowed). Its landmarks
    live in the clip's landmark ``log`` (an :class:`~avspeech.io.arrayfile.ArrayFile` of (468, 2) rows): a
    tracklet keeps the row of each frame, so a long clip's landmarks are on disk while it is tracked."""

    log: ArrayFile
    frames: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # frames[k]'s landmarks are log[rows[k]]
    boxes: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> landmark box

    @property
    def start(self) -> int:
        return self.frames[0]

    @property
    def end(self) -> int:  # last frame, inclusive
        return self.frames[-1]

    def landmarks(self, k: int) -> np.ndarray:
        """(468, 2) landmarks of the k-th frame of :attr:`frames`."""
        return self.log[self.rows[k]]

    def add(self, t: int, lm: np.ndarray) -> None:
        self.frames.append(t)
        self.rows.append(self.log.append(lm))
        self.boxes[t] = landmark_box(lm)

    def prepend(self, t: int, lm: np.ndarray) -> None:
        self.frames.insert(0, t)
        self.rows.insert(0, self.log.append(lm))
        self.boxes[t] = landmark_box(lm)

    def drop_last(self) -> None:
        t = self.frames.pop()
        self.rows.pop()  # its row stays in the log, unread
        del self.boxes[t]

    def extend(self, other: "RawTrack") -> None:
        self.frames += other.frames
        self.rows += other.rows
        self.boxes.update(other.boxes)


@dataclass
class _Live:
    track: RawTrack
    follower: FaceMeshTracker
    box: np.ndarray


class _Timer:
    def __init__(self, timings: dict[str, float], key: str):
        self.timings, self.key = timings, key

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.key] = self.timings.get(self.key, 0.0) + time.perf_counter() - self.t0


def _follow(follower: FaceMeshTracker, frame: np.ndarray, box: np.ndarray, min_iou: float,
            size: tuple[int, int] | None = None) -> np.ndarray | None:
    lm = follower(frame, box, size)
    if lm is None or box_iou(landmark_box(lm), box) < min_iou:
        return None
    return lm


def find_tracklets(frames: np.ndarray, config: PreprocessConfig, detector: FaceDetector, pool: FaceMeshPool,
                   log: ArrayFile, timings: dict[str, float] | None = None, size: tuple[int, int] | None = None
                   ) -> list[RawTrack]:
    """Tracklets (contiguous runs of landmarks, one face each) of a clip ``frames`` (T, H, W, 3) RGB uint8, their
    landmarks appended to ``log`` (an ``ArrayFile`` of (468, 2) float64 rows, open while the tracklets are read).
    ``timings`` accumulates seconds under ``detection`` and ``landmarks``. ``size``: the full (width, height)
    when ``frames`` are downscaled copies; boxes and landmarks are in full-resolution pixels either way."""
    timings = {} if timings is None else timings
    timings.setdefault("detection", 0.0)
    timings.setdefault("landmarks", 0.0)
    live: list[_Live] = []
    done: list[RawTrack] = []
    lost_last_frame = False
    back_limit = config.detect_every + config.max_gap
    for t in range(len(frames)):
        frame = frames[t]
        lost = False
        with _Timer(timings, "landmarks"):
            for lv in list(live):
                lm = _follow(lv.follower, frame, lv.box, config.link_iou, size)
                if lm is None:
                    live.remove(lv)
                    pool.release(lv.follower)
                    done.append(lv.track)
                    lost = True
                else:
                    lv.track.add(t, lm)
                    lv.box = lv.track.boxes[t]
        # Two tracklets that converged on one face: the younger one ends (without this frame).
        for i in range(len(live) - 1, 0, -1):
            if any(box_iou(live[i].box, live[j].box) > SAME_FACE_IOU for j in range(i)):
                lv = live.pop(i)
                lv.track.drop_last()
                pool.release(lv.follower)
                if lv.track.frames:
                    done.append(lv.track)
                lost = True
        if t % config.detect_every == 0 or lost_last_frame:
            with _Timer(timings, "detection"):
                boxes, scores = detector(frame, size)
            for k in np.argsort(-scores, kind="stable"):
                if config.max_faces is not None and len(live) >= config.max_faces:
                    break
                det = boxes[k]
                if any(box_iou(det, lv.box) >= config.link_iou for lv in live):
                    continue
                with _Timer(timings, "landmarks"):
                    follower = pool.acquire()
                    lm = _follow(follower, frame, det, config.link_iou, size)
                    if lm is None or any(box_iou(landmark_box(lm), lv.box) > SAME_FACE_IOU for lv in live):
                        pool.release(follower)
                        continue
                    track = RawTrack(log)
                    track.add(t, lm)
                    _extend_backwards(track, frames, t, back_limit, pool, config, live, done, size)
                live.append(_Live(track, follower, track.boxes[t]))
        lost_last_frame = lost
    for lv in live:
        pool.release(lv.follower)
        done.append(lv.track)
    return [tr for tr in done if tr.frames]


def _extend_backwards(track: RawTrack, frames: np.ndarray, t: int, limit: int, pool: FaceMeshPool,
                      config: PreprocessConfig, live: list[_Live], done: list[RawTrack],
                      size: tuple[int, int] | None = None) -> None:
    """Follow a new face from frame ``t - 1`` backwards while FaceMesh finds it and no other tracklet has it."""
    others = [lv.track for lv in live] + done
    follower = pool.acquire()
    try:
        box = track.boxes[t]
        for u in range(t - 1, max(-1, t - 1 - limit), -1):
            if any(u in o.boxes and box_iou(o.boxes[u], box) > SAME_FACE_IOU for o in others):
                break
            lm = _follow(follower, frames[u], box, config.link_iou, size)
            if lm is None:
                break
            track.prepend(u, lm)
            box = track.boxes[u]
    finally:
        pool.release(follower)


def link_tracklets(tracklets: list[RawTrack], config: PreprocessConfig) -> list[RawTrack]:
    """Join tracklets of one face separated by at most ``max_gap`` missing frames (boxes overlap by ``link_iou``
    across the gap); the best-overlapping earlier track wins. Returns tracks sorted by start frame."""
    tracks: list[RawTrack] = []
    for tr in sorted(tracklets, key=lambda r: (r.start, r.boxes[r.start][0])):
        best, best_iou = None, config.link_iou
        for cand in tracks:
            gap = tr.start - cand.end - 1
            if 0 <= gap <= config.max_gap:
                iou = box_iou(cand.boxes[cand.end], tr.boxes[tr.start])
                if iou >= best_iou:
                    best, best_iou = cand, iou
        if best is None:
            tracks.append(RawTrack(tr.log, list(tr.frames), list(tr.rows), dict(tr.boxes)))
        else:
            best.extend(tr)
    return tracks
