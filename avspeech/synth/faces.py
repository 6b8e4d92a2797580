"""Real face photographs and a landmark-guided mouth warp.

A :class:`FaceAsset` is a photo cropped around its face, with a soft alpha mask and its 468 MediaPipe FaceMesh
landmarks, rescaled so the face (forehead to chin) is :data:`FACE_HEIGHT` px tall. :func:`render_mouth` opens
and rounds the mouth: pixels below the mouth line (lower lip, jaw) move down by a lens-shaped displacement that
vanishes at the mouth corners and fades out below the chin, the upper lip lifts a little, the gap is filled with
teeth and a dark cavity, and rounding narrows the mouth. The lip landmarks are moved by the same map, so the
mouth position and width of every rendered frame are known exactly.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avspeech.errors import InputError

FACE_HEIGHT = 256  # px, oval top to chin, in the asset
# MediaPipe FaceMesh indices
CORNERS = (61, 291)
INNER_LIPS = (13, 14)  # upper, lower (inner contour, mouth centre)
CHIN = 152


def face_photo_paths() -> dict[str, Path]:
    """Face photographs that ship inside installed packages (name -> path; the path may not exist)."""
    paths: dict[str, Path] = {}
    try:
        import matplotlib

        paths["grace_hopper"] = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    except ImportError:
        paths["grace_hopper"] = Path("<matplotlib not installed>/sample_data/grace_hopper.jpg")
    try:
        import skimage

        paths["astronaut"] = Path(skimage.__file__).parent / "data" / "astronaut.png"
    except ImportError:
        paths["astronaut"] = Path("<scikit-image not installed>/data/astronaut.png")
    return paths


FACE_SOURCES = ("grace_hopper", "astronaut")


@functools.lru_cache(maxsize=None)
def lip_indices() -> np.ndarray:
    import mediapipe as mp

    return np.array(sorted({i for e in mp.solutions.face_mesh.FACEMESH_LIPS for i in e}))


# FaceMesh lip contours (outer and inner), lower and upper; the four corners (61, 291, 78, 308) belong to neither
_LOWER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324)
_UPPER_LIP = (185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415)


def lower_lip_indices() -> np.ndarray:
    return np.array(_LOWER_LIP)


def upper_lip_indices() -> np.ndarray:
    return np.array(_UPPER_LIP)


@functools.lru_cache(maxsize=None)
def oval_indices() -> np.ndarray:
    import mediapipe as mp

    return np.array(sorted({i for e in mp.solutions.face_mesh.FACEMESH_FACE_OVAL for i in e}))


def detect_landmarks(image: np.ndarray) -> np.ndarray | None:
    """(468, 2) FaceMesh landmarks in pixels of an RGB image with one face, or None if no face is found."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        res = mesh.process(image)
    if not res.multi_face_landmarks:
        return None
    h, w = image.shape[:2]
    return np.array([[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark], dtype=np.float64)


@dataclass(frozen=True)
class FaceAsset:
    name: str
    image: np.ndarray  # (h, w, 3) uint8 RGB
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    landmarks: np.ndarray  # (468, 2) px
    # the mouth frame: origin at the lower inner lip, u along the corners, v perpendicular pointing down
    center: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    half_width: float  # half the corner-to-corner distance, px
    curve: float  # mouth line v = curve * u**2 (the corners' height relative to the centre)
    chin: float  # v of the chin
    rest_gap: float  # distance between the inner lips in the photo, px

    def flipped(self) -> "FaceAsset":
        w = self.image.shape[1]
        lm = self.landmarks.copy()
        lm[:, 0] = w - 1 - lm[:, 0]
        return _make_asset(self.name, np.ascontiguousarray(self.image[:, ::-1]),
                           np.ascontiguousarray(self.alpha[:, ::-1]), lm)

    @property
    def oval(self) -> np.ndarray:
        return self.landmarks[oval_indices()]

    @property
    def lips(self) -> np.ndarray:
        return self.landmarks[lip_indices()]


def _make_asset(name: str, image: np.ndarray, alpha: np.ndarray, lm: np.ndarray) -> FaceAsset:
    c = lm[INNER_LIPS[1]]  # the jaw opens below the lower inner lip (keeps a smile's visible teeth above)
    left, right = lm[CORNERS[0]], lm[CORNERS[1]]
    u = right - left
    half = float(np.linalg.norm(u)) / 2
    u = u / (2 * half)
    if u[0] < 0:  # keep u pointing right in the image whatever the landmark order (flipped assets)
        u = -u
    v = np.array([-u[1], u[0]])
    if v[1] < 0:
        v = -v
    corner_v = float(np.mean([(left - c) @ v, (right - c) @ v]))
    return FaceAsset(name, image, alpha, lm, c, u, v, half, corner_v / half**2, float((lm[CHIN] - c) @ v),
                     float(np.linalg.norm(lm[INNER_LIPS[0]] - lm[INNER_LIPS[1]])))


@functools.lru_cache(maxsize=None)
def load_face(name: str) -> FaceAsset:
    """Load a face photo by name (see :data:`FACE_SOURCES`), crop and rescale it around the face."""
    paths = face_photo_paths()
    if name not in paths:
        raise InputError(f"unknown face source {name!r}; available: {', '.join(sorted(paths))}")
    path = paths[name]
    if not path.is_file():
        raise InputError(f"face photo {name!r} is missing (install the package that ships it)", path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("face photo cannot be read as an image", path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    lm = detect_landmarks(rgb)
    if lm is None:
        raise InputError("no face found in the face photo", path)
    oval = lm[oval_indices()]
    top, bottom = oval[:, 1].min(), oval[:, 1].max()
    scale = FACE_HEIGHT / (bottom - top)
    cx, cy = oval[:, 0].mean(), (top + bottom) / 2
    side = int(round(FACE_HEIGHT * 1.6)) // 2 * 2
    # crop a square of `side` px centred on the face, in the rescaled photo, replicating borders
    m = np.array([[scale, 0, side / 2 - scale * cx], [0, scale, side / 2 - scale * cy]])
    patch = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    lm = lm * scale + m[:, 2]
    oval = lm[oval_indices()]
    # soft ellipse around the face oval, a little taller upwards to keep the hairline
    alpha = np.zeros((side, side), np.float32)
    ocx, ocy = oval[:, 0].mean(), (oval[:, 1].min() + oval[:, 1].max()) / 2
    ax = 0.5 * (oval[:, 0].max() - oval[:, 0].min()) * 1.18
    ay = 0.5 * (oval[:, 1].max() - oval[:, 1].min()) * 1.2
    cv2.ellipse(alpha, (int(round(ocx)), int(round(ocy - 0.06 * FACE_HEIGHT))), (int(ax), int(ay)), 0, 0, 360, 1.0,
                -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.035 * FACE_HEIGHT)
    return _make_asset(name, patch, alpha, lm)


def _smooth_step(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _MouthMap:
    """The warp of one mouth shape, in mouth coordinates (u, v) of an asset."""

    def __init__(self, asset: FaceAsset, opening: float, rounding: float):
        a = asset.half_width
        self.a = a
        self.curve = asset.curve
        self.drop = float(np.clip(opening, 0, 1)) * 0.85 * a  # lower-lip travel at full opening
        self.lift = 0.18 * self.drop  # upper-lip travel
        self.width = 1.0 - 0.28 * float(np.clip(rounding, 0, 1))  # mouth width factor
        self.chin = max(asset.chin, 1.2 * a)
        self.fade = 1.9 * a  # below the chin the displacement fades over this distance (keeps the map monotonic)
        self.lift_fade = 0.9 * a
        self.teeth = 0.3 if asset.rest_gap < 0.1 * a else 0.0  # show teeth unless the photo already does

    def _narrow_weight(self, u, v):
        return np.exp(-(u / (2.0 * self.a)) ** 4 - (v / (1.0 * self.a)) ** 2)

    def source_u(self, u, v):
        """Backward horizontal map: output u -> source u (rounding narrows the mouth)."""
        return u * (1 + (1 / self.width - 1) * self._narrow_weight(u, v))

    def lens(self, us):
        return np.cos(0.5 * np.pi * np.clip(us / (1.08 * self.a), -1, 1)) ** 2

    def profile(self, us, d):
        """Drop weight across the face: the lip's lens shape at the mouth line, a broad jaw lower down."""
        jaw = np.cos(0.5 * np.pi * np.clip(us / (2.4 * self.a), -1, 1)) ** 2
        w = _smooth_step(d / (1.0 * self.a))
        return (1 - w) * self.lens(us) + w * np.maximum(jaw, self.lens(us))

    def down(self, d):  # weight of the drop at depth d >= 0 below the mouth line
        return 1 - _smooth_step((d - self.chin) / self.fade)

    def up(self, d):  # weight of the lift at height -d >= 0 above the mouth line
        return 1 - _smooth_step(-d / self.lift_fade)

    def backward(self, u, v):
        """Output (u, v) -> source (u, v) and the cavity fraction (NaN outside the open mouth: 0 at the upper
        lip, 1 at the lower lip)."""
        us = self.source_u(u, v)
        g = self.lens(us)
        d_out = v - self.curve * us**2
        lo, hi = -self.lift * g, self.drop * g
        below, above = d_out >= hi, d_out <= lo
        d = np.where(below, d_out - hi, np.where(above, d_out - lo, 0.0))
        for _ in range(10):  # fixed point: d_out = d + drop*profile*down(d) (below), d - lift*g*up(d) (above)
            d_pos = np.maximum(d, 0)
            d = np.where(below, d_out - self.drop * self.profile(us, d_pos) * self.down(d_pos),
                         np.where(above, d_out - lo * self.up(d), d))
        cavity = np.where(below | above, np.nan, (d_out - lo) / np.maximum(hi - lo, 1e-6))
        return us, d + self.curve * us**2, cavity

    def forward(self, us, vs):
        """Source (u, v) -> output (u, v), for landmarks."""
        g = self.lens(us)
        d = vs - self.curve * us**2
        d_pos = np.maximum(d, 0)
        d_out = np.where(d >= 0, d + self.drop * self.profile(us, d_pos) * self.down(d_pos),
                         d - self.lift * g * self.up(d))
        u = us.copy()
        v_out = d_out + self.curve * us**2
        for _ in range(8):  # invert source_u by fixed point
            u = us / (1 + (1 / self.width - 1) * self._narrow_weight(u, v_out))
        # keep the curve anchored on the output u
        return u, d_out + self.curve * us**2


def render_mouth(asset: FaceAsset, opening: float, rounding: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The asset's image with the mouth set to ``opening`` and ``rounding`` (each in [0, 1]), and its
    468 landmarks moved accordingly. Only a box around the mouth and chin is recomputed."""
    mm = _MouthMap(asset, opening, rounding)
    a = asset.half_width
    lm = asset.landmarks
    rel = lm - asset.center
    us, vs = rel @ asset.axis_u, rel @ asset.axis_v
    # lip landmarks move with their lip whatever side of the mouth line they sit on (inner lower-lip points can
    # lie a hair above it, inner upper-lip points below it): put them just on their lip's side first
    line = mm.curve * us**2
    lower, upper = lower_lip_indices(), upper_lip_indices()
    vs[lower] = np.maximum(vs[lower], line[lower])
    vs[upper] = np.minimum(vs[upper], line[upper] - 1e-6)
    uu, vv = mm.forward(us, vs)
    moved = asset.center + uu[:, None] * asset.axis_u + vv[:, None] * asset.axis_v
    if mm.drop < 0.05 and abs(mm.width - 1) < 1e-3:
        return asset.image, moved

    # region that can change: |u| <= 2.6a, v from -1.2a to chin + fade
    corners = np.array([[su * 2.6 * a, sv] for su in (-1, 1) for sv in (-1.2 * a, mm.chin + mm.fade + 2)])
    pts = asset.center + corners[:, :1] * asset.axis_u + corners[:, 1:] * asset.axis_v
    h, w = asset.image.shape[:2]
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 1, [w, h])
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    px, py = xs - asset.center[0], ys - asset.center[1]
    u = px * asset.axis_u[0] + py * asset.axis_u[1]
    v = px * asset.axis_v[0] + py * asset.axis_v[1]
    us, vs, cavity = mm.backward(u, v)
    map_x = (asset.center[0] + us * asset.axis_u[0] + vs * asset.axis_v[0]).astype(np.float32)
    map_y = (asset.center[1] + us * asset.axis_u[1] + vs * asset.axis_v[1]).astype(np.float32)
    region = cv2.remap(asset.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    region = region.astype(np.float32)

    inside = ~np.isnan(cavity)
    if inside.any():
        q = np.nan_to_num(cavity, nan=0.0)
        teeth = np.array([205, 195, 180], np.float32)
        dark = np.array([70, 22, 28], np.float32)
        colour = np.where((q < mm.teeth)[..., None], teeth, dark)
        # soften the lip edges over about one pixel
        gap = np.maximum(mm.drop + mm.lift, 1e-6) * mm.lens(us)
        edge = np.clip(np.minimum(q, 1 - q) * gap, 0, 1)[..., None]
        region = np.where(inside[..., None], edge * colour + (1 - edge) * region, region)
    out = asset.image.copy()
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out, moved
