"""Pretrained weights as bundles (torchaudio's manner): a checkpoint folder together with how to load it, the
preprocessing its model expects, and where it comes from.

    >>> from avspeech.pretrained import SEPARATION_SYNTH
    >>> model = SEPARATION_SYNTH.load()            # an AVSeparator in eval mode
    >>> SEPARATION_SYNTH.preprocessing.sample_rate  # 16000
    >>> SEPARATION_SYNTH.trained_on_synthetic_only  # True: real video needs a model trained on real data

The checkpoints that ship (``separation_synth/``, ``recognition_synth/``) are folders of ``model.safetensors`` and
``config.json``; the config records the model, the preprocessing and the whole recipe (every training stage,
with paths relative to the recipe's data folders) under ``recipe``, and the last stage under ``train`` as a
training run writes it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Preprocessing:
    """What a model's inputs must be: ``fps`` video frames of ``roi_size`` mouth ROIs (gray, centre-cropped to
    ``lip_crop``, normalised with ``lip_mean`` / ``lip_std``) and ``sample_rate`` mono audio turned into
    ``audio_dim`` features per video frame (``audio_features``: their definition). ``roi_geometry``: where the
    mouth sits in the ROI (:class:`~avspeech.preprocess.config.PreprocessConfig`: this package's convention or
    AV-HuBERT's)."""

    fps: float
    sample_rate: int
    roi_size: int
    lip_crop: int
    lip_mean: float
    lip_std: float
    audio_dim: int
    audio_features: dict[str, Any]
    roi_geometry: str = "avspeech"

    @classmethod
    def package_default(cls) -> "Preprocessing":
        """The preprocessing of this package (``avspeech preprocess`` and the feature functions)."""
        from avspeech.features.audio import AUDIO_DIM, FBANK_BINS, SAMPLE_RATE, STACK
        from avspeech.features.lips import CROP, LIP_MEAN, LIP_STD
        from avspeech.preprocess.config import PreprocessConfig

        pre = PreprocessConfig()
        if pre.sample_rate != SAMPLE_RATE:  # one time base: preprocessing and features must agree
            raise RuntimeError(f"preprocess sample rate {pre.sample_rate} != features' {SAMPLE_RATE}")
        return cls(fps=pre.fps, sample_rate=pre.sample_rate, roi_size=pre.roi_size, lip_crop=CROP,
                   lip_mean=LIP_MEAN, lip_std=LIP_STD, audio_dim=AUDIO_DIM,
                   audio_features={"kind": "kaldi_fbank", "mel_bins": FBANK_BINS, "frame_length_ms": 25.0,
                                   "frame_shift_ms": 10.0, "stack": STACK, "normalize": "per_frame"})

    @classmethod
    def avhubert(cls) -> "Preprocessing":
        """AV-HuBERT's inputs (what its official checkpoints expect): python_speech_features' log filterbank,
        stacked and normalised the same way, and AV-HuBERT's mouth-ROI geometry."""
        d = asdict(cls.package_default())  # the same frame rate, stacking and normalisation
        d["audio_features"] = {**d["audio_features"], "kind": "python_speech_features_logfbank"}
        d["roi_geometry"] = "avhubert"
        return cls(**d)

    @classmethod
    def from_config(cls, config: dict) -> "Preprocessing":
        """The ``preprocessing`` section of a checkpoint config where it is recorded (else the package's
        settings), with the encoder's recorded frame rate and audio feature width taking precedence."""
        enc = (config.get("separator") or config.get("recognizer") or {}).get("encoder") or config.get("encoder")
        own = cls.avhubert() if (enc or {}).get("audio_features") == "avhubert" else cls.package_default()
        d = dict(config.get("preprocessing") or asdict(own))
        if enc:
            d["roi_geometry"] = str(enc.get("roi_geometry", d.get("roi_geometry", "avspeech")))
            d["fps"] = float(enc.get("rate", d["fps"]))
            d["audio_dim"] = int(enc.get("audio_dim", d["audio_dim"]))
        try:
            return cls(**d)
        except TypeError as e:
            raise ValueError(f"bad preprocessing section ({e})") from None


@dataclass(frozen=True)
class Bundle:
    """A checkpoint folder and how to use it. ``kind`` is ``"separation"`` or ``"recognition"`` (the loader);
    ``lexicon``: a word list the model's evaluation decoded with (recognition), or None."""

    name: str
    path: Path
    kind: str
    lexicon: Path | None = None

    @property
    def config(self) -> dict:
        """The checkpoint's ``config.json``."""
        from avspeech.model.checkpoint import load_config

        return load_config(self.path)

    def load(self):
        """The model, in eval mode on the CPU (weights and config only; no code from the folder runs)."""
        if self.kind == "separation":
            from avspeech.separation.train import load_separator

            return load_separator(self.path)
        if self.kind == "recognition":
            from avspeech.recognition.train import load_recognizer

            return load_recognizer(self.path)
        raise ValueError(f"unknown bundle kind {self.kind!r} (separation or recognition)")

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_config(self.config)

    @property
    def provenance(self) -> dict:
        """``trained_on`` (words), ``trained_on_synthetic_only``, ``benchmark`` (the recipe's script),
        ``results`` and ``stages`` (each stage's command and training config), as recorded in the config."""
        return dict(self.config.get("recipe") or {})

    @property
    def trained_on_synthetic_only(self) -> bool:
        return bool(self.provenance.get("trained_on_synthetic_only", False))

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.path})"


SEPARATION_SYNTH = Bundle("separation_synth", HERE / "separation_synth", "separation")
RECOGNITION_SYNTH = Bundle("recognition_synth", HERE / "recognition_synth", "recognition",
                           lexicon=HERE / "recognition_synth" / "words.txt")
BUNDLES = {b.name: b for b in (SEPARATION_SYNTH, RECOGNITION_SYNTH)}

__all__ = ["Bundle", "Preprocessing", "SEPARATION_SYNTH", "RECOGNITION_SYNTH", "BUNDLES"]
