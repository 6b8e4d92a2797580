"""Settings of the preprocessing pipeline, one typed dataclass shared by every stage."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PreprocessConfig:
    """Every knob of ``avspeech preprocess``; defaults follow AV-HuBERT's conventions (shared/DESIGN.md).

    Time base: ``fps`` (25) video frames, ``sample_rate`` (16 kHz) mono audio, ``sample_rate / fps`` = 640
    samples per frame.
    """

    fps: float = 25.0
    sample_rate: int = 16000
    # Faces
    max_faces: int | None = None  # most faces tracked at once (None: all that are found)
    detect_every: int = 5  # run the full-range detector every N frames (and right after a face is lost)
    detect_max_side: int = 640  # frames larger than this are downscaled for detection only
    detection_confidence: float = 0.5
    landmark_confidence: float = 0.5  # FaceMesh presence threshold while tracking a face
    crop_scale: float = 1.7  # FaceMesh runs on a square crop of this many face-box sizes
    crop_size: int = 256  # pixels of that crop
    link_iou: float = 0.3  # a detection belongs to a track (or two tracklets join) above this box IoU
    max_gap: int = 12  # frames a track may miss and still be bridged (linearly interpolated)
    min_track_frames: int = 10  # shorter tracks are dropped
    # Mouth ROI
    smooth_window: int = 12  # frames of landmark smoothing before the similarity transform (AV-HuBERT: 12)
    roi_size: int = 96
    crf: int = 0  # ROI video: 0 is lossless (luma stored exactly)

    def __post_init__(self):
        if self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError(f"fps and sample_rate must be positive, got {self.fps}, {self.sample_rate}")
        if self.max_faces is not None and self.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1 or None, got {self.max_faces}")
        if self.detect_every < 1 or self.min_track_frames < 1 or self.smooth_window < 1:
            raise ValueError("detect_every, min_track_frames and smooth_window must be >= 1, got "
                             f"{self.detect_every}, {self.min_track_frames}, {self.smooth_window}")
        if self.roi_size % 2:
            raise ValueError(f"roi_size must be even (H.264), got {self.roi_size}")

    @property
    def samples_per_frame(self) -> float:
        return self.sample_rate / self.fps

    def to_dict(self) -> dict:
        return asdict(self)
