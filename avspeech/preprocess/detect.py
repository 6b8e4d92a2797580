"""MediaPipe models: the full-range face detector on whole frames, FaceMesh landmarks on one face's crop.

FaceMesh alone misses faces in multi-face frames, so faces are found by the detector and each face gets its own
FaceMesh instance (``static_image_mode=False``: it follows its face from frame to frame without re-detecting),
fed a square crop around where the face was. Coordinates go back to the frame through the crop's affine map.
Both may be given a downscaled copy of a large frame with the full frame's ``size``: boxes and landmarks are
then in full-resolution pixels all the same (the crop is warped from the copy through the composed map).
Both models ship inside the mediapipe wheel; nothing is downloaded.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

import cv2
import numpy as np

log = logging.getLogger(__name__)

NUM_LANDMARKS = 468  # FaceMesh without iris refinement
_BLANK = np.zeros((64, 64, 3), np.uint8)


def _quiet_mediapipe() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextmanager
def _quiet_stderr():
    """MediaPipe's C++ side writes start-up notices (XNNPACK delegate, feedback manager) straight to file
    descriptor 2 on a graph's first run; hide them there only."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceDetector:
    """MediaPipe face detection, full-range model (``model_selection=1``: faces up to about 5 m away)."""

    def __init__(self, min_confidence: float = 0.5, max_side: int = 640):
        _quiet_mediapipe()
        import mediapipe as mp

        self._det = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                              min_detection_confidence=min_confidence)
        self.max_side = max_side
        with _quiet_stderr():
            self._det.process(np.zeros((64, 64, 3), np.uint8))

    def __call__(self, frame: np.ndarray, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Faces in one RGB frame (H, W, 3): boxes (F, 4) as x0, y0, x1, y1 pixels and scores (F,). ``size``:
        the (width, height) of the full frame when ``frame`` is a downscaled copy (boxes in its pixels)."""
        h, w = frame.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        img = frame if scale == 1.0 else cv2.resize(frame, (round(w * scale), round(h * scale)),
                                                    interpolation=cv2.INTER_AREA)
        if size is not None:
            w, h = size
        res = self._det.process(img)
        boxes, scores = [], []
        for d in res.detections or []:
            bb = d.location_data.relative_bounding_box
            boxes.append([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h])
            scores.append(d.score[0])
        return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)

    def close(self) -> None:
        self._det.close()


def crop_transform(box: np.ndarray, scale: float, size: int) -> np.ndarray:
    """(2, 3) affine map from frame pixels to a ``size`` x ``size`` crop around ``box`` (x0, y0, x1, y1): a square
    of side ``scale`` times the box's larger side, centred on the box."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = scale * max(box[2] - box[0], box[3] - box[1], 1.0)
    s = size / side
    return np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float64)


def from_scaled(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray | None:
    """(2, 3) affine map from the pixels of a downscaled copy ``frame`` to those of the full frame of ``size``
    (width, height), pixel centres aligned as ``cv2.resize`` aligns them; None when ``frame`` is full size."""
    h, w = frame.shape[:2]
    if size is None or size == (w, h):
        return None
    sx, sy = size[0] / w, size[1] / h
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], np.float64)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Box (x0, y0, x1, y1) around landmarks (N, 2)."""
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])


class FaceMeshTracker:
    """One face's landmarks from frame to frame (one FaceMesh instance, reset when the face is handed back)."""

    def __init__(self, mesh, crop_scale: float, crop_size: int):
        self._mesh = mesh
        self.crop_scale = crop_scale
        self.crop_size = crop_size

    def __call__(self, frame: np.ndarray, box: np.ndarray, size: tuple[int, int] | None = None
                 ) -> np.ndarray | None:
        """Landmarks (468, 2) in frame pixels of the face near ``box``, or None if FaceMesh finds none. ``size``:
        the (width, height) of the full frame when ``frame`` is a downscaled copy (``box`` and landmarks in the
        full frame's pixels)."""
        m = crop_transform(box, self.crop_scale, self.crop_size)
        up = from_scaled(frame, size)
        warp = m if up is None else m @ np.vstack([up, [0, 0, 1]])
        crop = cv2.warpAffine(frame, warp, (self.crop_size, self.crop_size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        res = self._mesh.process(crop)
        if not res.multi_face_landmarks:
            return None
        pts = np.array([(p.x, p.y) for p in res.multi_face_landmarks[0].landmark], np.float64)
        pts *= self.crop_size
        s, tx, ty = m[0, 0], m[0, 2], m[1, 2]
        pts[:, 0] = (pts[:, 0] - tx) / s
        pts[:, 1] = (pts[:, 1] - ty) / s
        return pts


class FaceMeshPool:
    """FaceMesh instances cost ~30 ms to build: keep them and hand them out one per tracked face."""

    def __init__(self, min_confidence: float = 0.5, crop_scale: float = 1.7, crop_size: int = 256):
        _quiet_mediapipe()
        self._free: list = []
        self.min_confidence = min_confidence
        self.crop_scale = crop_scale
        self.crop_size = crop_size

    def acquire(self) -> FaceMeshTracker:
        if self._free:
            mesh = self._free.pop()
        else:
            import mediapipe as mp

            mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                                   refine_landmarks=False,
                                                   min_detection_confidence=self.min_confidence,
                                                   min_tracking_confidence=self.min_confidence)
            with _quiet_stderr():  # first run: start-up notices; a blank image finds no face
                mesh.process(_BLANK)
        return FaceMeshTracker(mesh, self.crop_scale, self.crop_size)

    def release(self, tracker: FaceMeshTracker) -> None:
        # A frame without a face clears FaceMesh's tracking state; much cheaper than reset() (graph restart).
        tracker._mesh.process(_BLANK)
        self._free.append(tracker._mesh)

    def close(self) -> None:
        for mesh in self._free:
            mesh.close()
        self._free.clear()
