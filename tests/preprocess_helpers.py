"""Clips composed from two real face photos with known geometry, for the preprocessing tests.

Each face is the photo warped by a known similarity (photo -> frame) per frame, blended in with an elliptic mask,
on a smooth random background. Ground truth comes from hand-checked photo coordinates (mouth centre: mean of the
lip contour, checked on an overlay; face box) mapped through that similarity, never from the code under test.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Photo:
    mouth: tuple[float, float]  # photo pixels
    box: tuple[float, float, float, float]  # face x0, y0, x1, y1 (brow to chin, cheek to cheek)


PHOTOS = {
    "hopper": Photo(mouth=(268.6, 276.6), box=(171.0, 131.0, 357.0, 333.0)),
    "astronaut": Photo(mouth=(223.7, 144.3), box=(178.0, 72.0, 272.0, 176.0)),
}


def load_photo(name: str) -> np.ndarray:
    """RGB uint8 photo."""
    if name == "hopper":
        import matplotlib.cbook as cbook

        img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if name == "astronaut":
        import skimage.data

        return skimage.data.astronaut()[..., :3].copy()
    raise KeyError(name)


@dataclass(frozen=True)
class Placement:
    """Where a face is: its box centre at frame 0 (frame pixels), velocity (px per frame), box height (px),
    in-plane rotation (degrees, counter-clockwise) and mirror."""

    photo: str
    centre: tuple[float, float]
    height: float
    velocity: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    flip: bool = False
    frames: tuple[int, int] | None = None  # visible on frames [a, b) only (None: always)


def _matrix(p: Placement, t: float, photo_w: int) -> np.ndarray:
    ph = PHOTOS[p.photo]
    x0, y0, x1, y1 = ph.box
    if p.flip:
        x0, x1 = photo_w - 1 - x1, photo_w - 1 - x0
    s = p.height / (y1 - y0)
    a = np.deg2rad(p.angle)
    r = s * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # CCW on screen (y down)
    c_photo = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    c = np.array(p.centre) + t * np.array(p.velocity)
    return np.hstack([r, (c - r @ c_photo)[:, None]])


def _photo_point(p: Placement, xy: tuple[float, float], photo_w: int) -> np.ndarray:
    x, y = xy
    return np.array([photo_w - 1 - x if p.flip else x, y])


def compose(placements: list[Placement], num_frames: int, width: int = 320, height: int = 240, seed: int = 0,
            times: np.ndarray | None = None) -> tuple[np.ndarray, list[dict]]:
    """Frames (T, H, W, 3) RGB uint8 and per placement {"mouth": (T, 2), "box": (T, 4), "visible": (T,)}.
    ``times`` (T,) in frames of 25 fps (default 0..T-1) drive the motion, so clips at other rates share truth."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.uniform(60, 200, size=3)
    grad = rng.uniform(-40, 40, size=(2, 3))
    bg = base + xx[..., None] / width * grad[0] + yy[..., None] / height * grad[1]
    bg = np.clip(bg + rng.normal(0, 3, bg.shape), 0, 255).astype(np.uint8)
    times = np.arange(num_frames, dtype=float) if times is None else np.asarray(times, float)
    photos = {p.photo: load_photo(p.photo) for p in placements}
    truth = [{"mouth": np.zeros((num_frames, 2)), "box": np.zeros((num_frames, 4)),
              "visible": np.zeros(num_frames, bool)} for _ in placements]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for i, t in enumerate(times):
        frame = bg.astype(np.float32)
        for k, p in enumerate(placements):
            img = photos[p.photo][:, ::-1] if p.flip else photos[p.photo]
            w = img.shape[1]
            m = _matrix(p, t, w)
            ph = PHOTOS[p.photo]
            corners = np.array([[ph.box[0], ph.box[1]], [ph.box[2], ph.box[1]], [ph.box[0], ph.box[3]],
                                [ph.box[2], ph.box[3]]])
            corners = np.array([_photo_point(p, c, w) for c in corners]) @ m[:, :2].T + m[:, 2]
            truth[k]["box"][i] = [*corners.min(0), *corners.max(0)]
            truth[k]["mouth"][i] = m[:, :2] @ _photo_point(p, ph.mouth, w) + m[:, 2]
            shown = p.frames is None or p.frames[0] <= round(t) < p.frames[1]
            truth[k]["visible"][i] = shown
            if not shown:
                continue
            mask = np.zeros(img.shape[:2], np.float32)
            bx0, by0, bx1, by1 = (np.array(ph.box) if not p.flip else
                                  np.array([w - 1 - ph.box[2], ph.box[1], w - 1 - ph.box[0], ph.box[3]]))
            cv2.ellipse(mask, (int((bx0 + bx1) / 2), int((by0 + by1) / 2 - 0.05 * (by1 - by0))),
                        (int(0.75 * (bx1 - bx0)), int(0.75 * (by1 - by0))), 0, 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), 6)
            warped = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(mask, m, (width, height), flags=cv2.INTER_LINEAR)[..., None]
            frame = frame * (1 - alpha) + warped.astype(np.float32) * alpha
        frames[i] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    return frames, truth


def tone(num_samples: int, freq: float = 440.0, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(num_samples) / sample_rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_timed_video(path: str | Path, frames: np.ndarray, times: np.ndarray, crf: int = 10,
                      rotation: int = 0) -> None:
    """Write RGB ``frames`` with explicit presentation times (seconds; variable frame rate allowed) and an
    optional display rotation (degrees counter-clockwise, FFmpeg's convention)."""
    import av

    tb = Fraction(1, 90000)
    with av.open(str(path), mode="w") as out:
        avg = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 25
        vs = out.add_stream("libx264", rate=Fraction(avg).limit_denominator(1001))
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = "yuv420p"
        vs.time_base = tb
        vs.codec_context.time_base = tb
        vs.options = {"crf": str(crf), "preset": "ultrafast", "bf": "0"}
        if rotation:
            vs.set_display_rotation(rotation)
        for f, t in zip(frames, times):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts = int(round(t * 90000))
            frame.time_base = tb
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
