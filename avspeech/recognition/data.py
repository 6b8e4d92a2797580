"""Transcripts and training/evaluation items for recognition.

Labels follow AV-HuBERT's fine-tuning layout: a text file parallel to the manifest (``.wrd``), one transcript
per manifest row (read and written by :mod:`avspeech.data.layout`; for a manifest preprocessed from an
``avspeech synth`` corpus, :func:`avspeech.synth.splits.write_synthetic_labels` writes one from the sidecars).

:class:`RecognitionDataset` items: ``lips`` (1, T, 88, 88), ``audio`` (T, 104) filterbank features of the
(possibly noisy) waveform, ``length`` T, ``tokens`` (list of ids), ``text`` and ``id``. Noise is added to the
waveform before features:

- ``speech``: another utterance (from another clip) at ``snr_db`` below the target, looped or cut to length;
- ``babble``: the sum of ``babble_talkers`` other utterances, each level-normalised, at ``snr_db``;
- ``freq_warp`` (training): the mel axis of the audio features scaled by a factor drawn from
  1 +- ``freq_warp`` per item (:func:`~avspeech.features.audio.warp_mel`), so voices with other vocal tract
  lengths than the training voices' are not new to the model;
- a *silent face* (training, probability ``silent_prob``): the target's voice is removed, an interfering voice
  remains, the lips are the first ROI frame held still and the transcript is empty, so the model learns that a
  face that does not move says nothing, whatever the audio;
- ``noise`` (a noise set folder, ``avspeech noise``; its ``train`` list when training, else ``test``): added to
  every item last, over the audio as it is by then, at an SNR drawn uniformly in ``snr`` dB (AV-HuBERT's noisy
  fine-tuning and evaluation), from a generator seeded by ``(seed, epoch, index)``, so an evaluation draws the
  same noise for an utterance in every condition and every run.

Training draws noise kind, SNR and interferers from a generator seeded by ``(seed, epoch, index)``; evaluation
uses a fixed ``condition`` (kind, SNR) with interferers chosen deterministically from the index.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from avspeech.data.layout import clip_of, default_labels_path, read_manifest, read_transcripts, write_transcripts
from avspeech.datasets.noise import NoiseSet, check_snr
from avspeech.errors import InputError
from avspeech.features import LipTransform, audio_features
from avspeech.io.media import read_gray_video, read_wav
from avspeech.features.audio import level_normalise
from avspeech.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME


__all__ = ["Condition", "RecognitionDataset", "add_noise", "collate_recognition", "default_labels_path",
           "read_transcripts", "silent_face", "write_transcripts"]


@dataclass(frozen=True)
class Condition:
    """Evaluation noise: ``kind`` ``clean``, ``speech`` or ``babble``; ``snr_db`` target over noise."""

    kind: str = "clean"
    snr_db: float = 0.0

    @property
    def name(self) -> str:
        return "clean" if self.kind == "clean" else f"{self.kind}{self.snr_db:+g}dB"


def add_noise(target: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``target + g * noise`` with ``g`` such that 10 log10(P_target / P_gnoise) = ``snr_db`` (powers over the
    target's length; ``noise`` is looped or cut to it). A silent target gets the noise at its own level."""
    n = len(target)
    if n == 0 or len(noise) == 0:
        return target.copy()
    noise = np.resize(noise.astype(np.float64), n)
    pt = float(np.mean(np.square(target, dtype=np.float64)))
    pn = float(np.mean(np.square(noise)))
    if pn < 1e-12:
        return target.copy()
    g = np.sqrt(pt / (pn * 10 ** (snr_db / 10))) if pt > 1e-12 else 1.0
    return (target + g * noise).astype(np.float32)


def silent_face(rois: np.ndarray, wav: np.ndarray, voice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A face that does not speak: its first ROI frame held still, and someone else's ``voice`` (looped or cut to
    the length of ``wav``) as the only speech in the audio."""
    return np.repeat(rois[:1], len(rois), axis=0), np.resize(voice, len(wav)).astype(np.float32)


class RecognitionDataset(Dataset):
    def __init__(self, manifest: str | Path, labels: str | Path | None, tokenizer, *, train: bool = False,
                 condition: Condition = Condition(), noise_probs: tuple[float, float, float] = (0.3, 0.5, 0.2),
                 snr_range: tuple[float, float] = (-5.0, 10.0), babble_talkers: int = 4, silent_prob: float = 0.0,
                 freq_warp: float = 0.0, seed: int = 0, features: str = "avspeech",
                 noise: str | Path | None = None, snr: tuple[float, float] = (0.0, 0.0)):
        if not 0.0 <= freq_warp < 1.0:
            raise ValueError(f"freq_warp must be in [0, 1), got {freq_warp}")
        self.utts = read_manifest(manifest)
        labels = labels if labels is not None else default_labels_path(manifest)
        self.texts = read_transcripts(labels, self.utts)
        self.tokenizer = tokenizer
        self.train, self.condition, self.noise_probs, self.snr_range = train, condition, noise_probs, snr_range
        self.babble_talkers, self.silent_prob, self.seed = babble_talkers, silent_prob, seed
        self.freq_warp = freq_warp
        self.snr = check_snr(snr)
        self.noise_set = NoiseSet(noise, "train" if train else "test") if noise is not None else None
        for u in self.utts:
            if u.video is None or u.audio is None:
                raise InputError(f"{u.id}: recognition needs both the ROI video and the audio (the mode is chosen "
                                 "at run time)", manifest)
        self.clips = [clip_of(u.id) for u in self.utts]
        self.lip_transform = LipTransform(train=train)
        self.features = audio_features(features)  # the model's (EncoderConfig.audio_features)
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utts)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """ROIs (T, 96, 96) uint8 and level-normalised audio (T * 640,) float32 (cached)."""
        if i not in self._cache:
            u = self.utts[i]
            rois = read_gray_video(u.video)
            audio = read_wav(u.audio, SAMPLE_RATE)[0]
            audio = np.pad(audio, (0, max(0, len(rois) * SAMPLES_PER_FRAME - len(audio))))
            self._cache[i] = (rois, level_normalise(audio[: len(rois) * SAMPLES_PER_FRAME]).astype(np.float32))
        return self._cache[i]

    def _others(self, i: int, k: int, g: torch.Generator | None) -> list[int]:
        """``k`` utterances from other clips: random (training) or the next ones after ``i`` (evaluation)."""
        n = len(self.utts)
        cand = [j for j in range(n) if self.clips[j] != self.clips[i]]
        if not cand:
            raise InputError("noise needs utterances from at least two clips")
        if g is None:
            start = next(idx for idx, j in enumerate(cand) if j > i) if any(j > i for j in cand) else 0
            return [cand[(start + m) % len(cand)] for m in range(k)]
        return [cand[int(x)] for x in torch.randint(0, len(cand), (k,), generator=g)]

    def noise(self, i: int, kind: str, g: torch.Generator | None) -> np.ndarray:
        if kind == "speech":
            return self.load(self._others(i, 1, g)[0])[1]
        others = [self.load(j)[1] for j in self._others(i, self.babble_talkers, g)]
        n = max(len(o) for o in others)
        return np.sum([np.resize(o, n) for o in others], axis=0).astype(np.float32)

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) & 0x7FFFFFFF)
        rois, wav, text, warp = self.signals(i, g)
        t = len(rois)
        return {"id": self.utts[i].id, "lips": self.lip_transform(rois, g),
                "audio": self.features(wav, t, warp=warp), "length": t, "text": text,
                "tokens": self.tokenizer.encode(text) if self.tokenizer is not None else []}

    def signals(self, i: int, g: torch.Generator) -> tuple[np.ndarray, np.ndarray, str, float | None]:
        """Item ``i`` before the lip transform and features: ROIs (T, 96, 96) uint8, the (noisy) waveform
        (T * 640,) float32, the transcript and the mel warp factor (None: no warp); training draws from ``g``."""
        rois, wav = self.load(i)
        text = self.texts[i]
        warp = None
        if self.train:
            r = float(torch.rand((), generator=g))
            kind = "clean" if r < self.noise_probs[0] else "speech" if r < sum(self.noise_probs[:2]) else "babble"
            lo, hi = self.snr_range
            snr = lo + (hi - lo) * float(torch.rand((), generator=g))
            silent = self.silent_prob > 0 and float(torch.rand((), generator=g)) < self.silent_prob
            if silent:
                rois, wav = silent_face(rois, wav, self.noise(i, "speech", g))
                text = ""
            elif kind != "clean":
                wav = add_noise(wav, self.noise(i, kind, g), snr)
            if self.freq_warp > 0:
                warp = 1.0 + self.freq_warp * (2.0 * float(torch.rand((), generator=g)) - 1.0)
        elif self.condition.kind != "clean":
            wav = add_noise(wav, self.noise(i, self.condition.kind, None), self.condition.snr_db)
        if self.noise_set is not None:
            wav = self.noise_set.add(wav, self.snr, np.random.default_rng([self.seed, self.epoch, i]))
        return rois, wav, text, warp


def collate_recognition(items: Sequence[dict]) -> dict:
    """lips (B, 1, T, 88, 88), audio (B, T, 104), lengths (B,), tokens (list of lists), texts, ids."""
    t = max(it["length"] for it in items)
    b = len(items)
    lips = torch.zeros(b, 1, t, *items[0]["lips"].shape[-2:])
    audio = torch.zeros(b, t, items[0]["audio"].shape[-1])
    for i, it in enumerate(items):
        lips[i, :, : it["length"]] = it["lips"]
        audio[i, : it["length"]] = it["audio"]
    return {"ids": [it["id"] for it in items], "lips": lips, "audio": audio,
            "lengths": torch.tensor([it["length"] for it in items]), "tokens": [it["tokens"] for it in items],
            "texts": [it["text"] for it in items]}
