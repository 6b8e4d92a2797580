"""Settings of the preprocessing pipeline, one typed dataclass shared by every stage."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from avspeech.timebase import FPS, SAMPLE_RATE

ROI_GEOMETRIES = ("avspeech", "avhubert")  # avspeech.preprocess.align.roi_transforms(geometry=...)


@dataclass(frozen=True)
class PreprocessConfig:
    """Every knob of ``avspeech preprocess``; defaults follow AV-HuBERT's conventions (shared/DESIGN.md).

    Time base: ``fps`` (25) video frames, ``sample_rate`` (16 kHz) mono audio, ``sample_rate / fps`` = 640
    samples per frame.
    """

    fps: float = field(default=float(FPS), metadata={"help": "video frame rate of the output (AV-HuBERT: 25)"})
    sample_rate: int = field(default=SAMPLE_RATE, metadata={"help": "audio sample rate of the output, Hz"})
    # Faces
    max_faces: int | None = field(default=None, metadata={
        "help": "track at most K faces at once (default: all that are found)"})
    detect_every: int = field(default=5, metadata={
        "help": "run the face detector every N frames (and right after a face is lost)"})
    detect_max_side: int = field(default=640, metadata={
        "help": "frames larger than this (px) are downscaled for detection only"})
    track_max_side: int = field(default=1920, metadata={
        "help": "frames larger than this (px) are tracked (detection and landmarks) on a copy downscaled to it; "
                "mouth ROIs are still cut from the full-resolution frame"})
    in_memory_mb: float = field(default=128.0, metadata={
        "help": "a clip whose decoded frames take at most this many MB is decoded once and held in memory; a "
                "longer or larger one is streamed (decoded twice, a few frames held at a time)"})
    detection_confidence: float = field(default=0.5, metadata={"help": "face detector score threshold"})
    landmark_confidence: float = field(default=0.5, metadata={
        "help": "FaceMesh presence threshold while tracking a face"})
    crop_scale: float = field(default=1.7, metadata={
        "help": "FaceMesh runs on a square crop of this many face-box sizes"})
    crop_size: int = field(default=256, metadata={"help": "pixels of that crop"})
    link_iou: float = field(default=0.3, metadata={
        "help": "a detection belongs to a track (or two tracklets join) above this box IoU"})
    max_gap: int = field(default=12, metadata={
        "help": "frames a track may miss and still be bridged (linearly interpolated)"})
    min_track_frames: int = field(default=10, metadata={"help": "drop tracks shorter than this many frames"})
    # Mouth ROI
    smooth_window: int = field(default=12, metadata={
        "help": "frames of landmark smoothing before the similarity transform (AV-HuBERT: 12)"})
    roi_size: int = field(default=96, metadata={"help": "side of the square mouth ROI, px (even)"})
    roi_geometry: str = field(default="avspeech", metadata={
        "help": "where the mouth sits in the ROI: avspeech (this package's mean face, centred smoothing) or "
                "avhubert (AV-HuBERT's mean face and smoothing, for its official checkpoints)"})
    crf: int = field(default=0, metadata={"help": "H.264 CRF of the ROI video (0: lossless, luma stored exactly)"})

    def __post_init__(self):
        if self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError(f"fps and sample_rate must be positive, got {self.fps}, {self.sample_rate}")
        if self.max_faces is not None and self.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1 or None, got {self.max_faces}")
        if self.detect_every < 1 or self.min_track_frames < 1 or self.smooth_window < 1:
            raise ValueError("detect_every, min_track_frames and smooth_window must be >= 1, got "
                             f"{self.detect_every}, {self.min_track_frames}, {self.smooth_window}")
        if self.roi_geometry not in ROI_GEOMETRIES:
            raise ValueError(f"roi_geometry must be one of {', '.join(ROI_GEOMETRIES)}, got {self.roi_geometry!r}")
        if self.track_max_side < 64 or self.in_memory_mb < 0:
            raise ValueError(f"track_max_side must be >= 64 and in_memory_mb >= 0, got {self.track_max_side}, "
                             f"{self.in_memory_mb}")
        if self.roi_size % 2:
            raise ValueError(f"roi_size must be even (H.264), got {self.roi_size}")

    @property
    def samples_per_frame(self) -> float:
        return self.sample_rate / self.fps

    def to_dict(self) -> dict:
        return asdict(self)
