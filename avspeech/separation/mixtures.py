"""Two-speaker mixtures in the LRS2-2Mix style, made from any preprocessed manifest.

A mixture list is a TSV file (so a result can be reproduced and compared; its format is in
:mod:`avspeech.data.layout`) with a header line and one row per mixture: ``id, utt_a, utt_b, gain_db`` where
``utt_*`` are manifest ids of two utterances from different clips and ``gain_db`` is the level of A relative to B. Each utterance is level-normalised to ``LEVEL_DBFS`` (RMS), then A
gets ``+gain_db / 2`` and B ``-gain_db / 2``; the mixture is cut to the shorter of the two (whole 25 Hz frames).
Every mixture is used once per target face: target A (lips of A) and target B (lips of B).

:class:`MixtureDataset` yields, per (mixture, target): the mixture waveform, the target's and the interferer's
waveforms as they are in the mixture (so ``mixture == target + interferer`` exactly), the target's lips, and the
mixture's 104-dim filterbank features. Training crops a fixed-length window at a seeded random position and,
with probability ``silent_prob``, replaces the target by a face that does not speak (its first ROI frame, mouth
closed, held still) whose reference is silence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from avspeech.data.layout import Mixture, Utterance, clip_of, read_manifest, read_mixtures, write_mixtures
from avspeech.datasets.noise import NoiseSet, check_snr
from avspeech.errors import InputError
from avspeech.features import LipTransform, audio_features
from avspeech.features.audio import LEVEL_DBFS, level_normalise
from avspeech.io.media import read_gray_video, read_wav
from avspeech.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME


__all__ = ["LEVEL_DBFS", "Mixture", "MixtureDataset", "clip_of",
           "collate_mixtures", "level_normalise", "make_mixtures", "mix_pair", "read_mixtures", "write_mixtures"]


def make_mixtures(utts: Sequence[Utterance], n: int, *, seed: int = 0, gain_db_range: float = 10.0,
                  groups: Sequence[str] | None = None, same_group: bool | None = None,
                  prefix: str = "mix") -> list[Mixture]:
    """``n`` mixtures of two utterances from different clips, drawn with ``numpy.random.default_rng(seed)``;
    ``gain_db`` uniform in ``[-gain_db_range / 2, +gain_db_range / 2]`` (0 gives 0 dB mixtures).

    ``groups`` (one label per utterance, e.g. its voice) with ``same_group=True`` pairs only utterances of the
    same group (mixtures of one voice with itself), ``False`` only of different groups. Pairs are distinct
    (unordered) while distinct ones are easy to find."""
    if len(utts) < 2:
        raise InputError(f"need at least 2 utterances to mix, got {len(utts)}")
    if groups is not None and len(groups) != len(utts):
        raise ValueError(f"{len(groups)} groups for {len(utts)} utterances")
    rng = np.random.default_rng(seed)
    clips = [clip_of(u.id) for u in utts]

    def allowed(i: int, j: int) -> bool:
        if clips[i] == clips[j]:
            return False
        return same_group is None or groups is None or (groups[i] == groups[j]) == same_group

    # rejection sampling of pairs scales to large corpora; a pair repeats only once distinct ones run short
    out, seen, tries = [], set(), 0
    while len(out) < n:
        i, j = (int(x) for x in rng.integers(len(utts), size=2))
        tries += 1
        if tries > 200 * n + 10000:
            raise InputError("no pair of utterances satisfies the mixing constraints (different clips"
                             + ("" if same_group is None else ", same voice" if same_group else ", different voices")
                             + f"): {len(out)} of {n} mixtures found")
        if not allowed(i, j) or ((min(i, j), max(i, j)) in seen and tries < 50 * n):
            continue
        seen.add((min(i, j), max(i, j)))
        gain = float(rng.uniform(-gain_db_range / 2, gain_db_range / 2)) if gain_db_range > 0 else 0.0
        out.append(Mixture(f"{prefix}{len(out):06d}", utts[i].id, utts[j].id, round(gain, 3)))
    return out


def mix_pair(a: np.ndarray, b: np.ndarray, gain_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Level-normalised, gained and cut to whole frames of the shorter: (A as in the mixture, B as in it)."""
    n = min(len(a), len(b)) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME
    a = level_normalise(a[:n].astype(np.float64)) * 10 ** (gain_db / 40)
    b = level_normalise(b[:n].astype(np.float64)) * 10 ** (-gain_db / 40)
    return a.astype(np.float32), b.astype(np.float32)


class MixtureDataset(Dataset):
    """Items over (mixture, target) for every mixture of ``mixtures`` and both its targets.

    An item: ``mixture``, ``target``, ``interferer`` (N,) float32 with ``mixture = target + interferer``;
    ``lips`` (1, T, 88, 88); ``audio`` (T, 104) features of the mixture; ``length`` T (25 Hz frames; N = 640 T);
    ``silent`` whether the target face does not speak; ``id`` ``<mixture>:<a|b>``; ``target_utt`` the target's
    manifest id and ``start`` the first frame of the crop in it.
    """

    def __init__(self, manifest: str | Path, mixtures: str | Path | Sequence[Mixture], *, train: bool = False,
                 crop_frames: int | None = None, silent_prob: float = 0.0, seed: int = 0,
                 features: str = "avspeech", noise: str | Path | None = None,
                 snr: tuple[float, float] = (0.0, 0.0)):
        """``noise``: a noise set folder (``avspeech noise``; its ``train`` list when training, else ``test``),
        added to each mixture at an SNR (speech over noise) drawn uniformly in ``snr`` dB; the noise counts as
        interference, so ``mixture == target + interferer`` still holds and the target stays clean."""
        self.utts = {u.id: u for u in read_manifest(manifest)}
        self.mixtures = read_mixtures(mixtures) if isinstance(mixtures, (str, Path)) else list(mixtures)
        missing = sorted({m_id for m in self.mixtures for m_id in (m.utt_a, m.utt_b) if m_id not in self.utts})
        if missing:
            raise InputError(f"{len(missing)} utterances of the mixture list are not in the manifest, e.g. "
                             f"{missing[:3]}", manifest)
        for u in {m_id for m in self.mixtures for m_id in (m.utt_a, m.utt_b)}:
            if self.utts[u].audio is None or self.utts[u].video is None:
                raise InputError(f"{u}: separation needs both the ROI video and the audio", manifest)
        self.train, self.crop, self.silent_prob, self.seed = train, crop_frames, silent_prob, seed
        self.snr = check_snr(snr)
        self.noise = NoiseSet(noise, "train" if train else "test") if noise is not None else None
        self.lip_transform = LipTransform(train=train)
        self.features = audio_features(features)  # the model's (EncoderConfig.audio_features)
        self.epoch = 0
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 2 * len(self.mixtures)

    def load(self, uid: str) -> tuple[np.ndarray, np.ndarray]:
        """ROIs (T, 96, 96) uint8 and audio (T * 640,) float32 of a manifest utterance (cached)."""
        if uid not in self._cache:
            u = self.utts[uid]
            rois = read_gray_video(u.video)
            audio = read_wav(u.audio, SAMPLE_RATE)[0]
            t = min(len(rois), len(audio) // SAMPLES_PER_FRAME)
            self._cache[uid] = (rois[:t], audio[: t * SAMPLES_PER_FRAME])
        return self._cache[uid]

    def __getitem__(self, i: int) -> dict:
        m = self.mixtures[i // 2]
        which = "ab"[i % 2]
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) & 0x7FFFFFFF)
        rois_a, wav_a = self.load(m.utt_a)
        rois_b, wav_b = self.load(m.utt_b)
        a, b = mix_pair(wav_a, wav_b, m.gain_db)
        target, interferer, rois = (a, b, rois_a) if which == "a" else (b, a, rois_b)
        t = len(a) // SAMPLES_PER_FRAME
        start = 0
        if self.crop and t > self.crop:
            start = int(torch.randint(0, t - self.crop + 1, (1,), generator=g)) if self.train else 0
            t = self.crop
        s0, s1 = start * SAMPLES_PER_FRAME, (start + t) * SAMPLES_PER_FRAME
        target, interferer = target[s0:s1], interferer[s0:s1]
        rois = rois[start:start + t]
        silent = bool(self.train and self.silent_prob > 0 and torch.rand((), generator=g) < self.silent_prob)
        if silent:  # a face that does not speak: the mixture is unchanged, the reference is silence
            interferer = interferer + target
            target = np.zeros_like(target)
            rois = np.repeat(rois[:1], t, axis=0)
        if self.noise is not None:  # the same noise for both targets of a mixture
            rng = np.random.default_rng([self.seed, self.epoch, i // 2, start])
            speech = target + interferer
            interferer = interferer + (self.noise.add(speech, self.snr, rng) - speech)
        mixture = target + interferer
        return {"id": f"{m.id}:{which}", "mixture": torch.from_numpy(mixture), "target": torch.from_numpy(target),
                "interferer": torch.from_numpy(interferer), "lips": self.lip_transform(rois, g),
                "audio": self.features(mixture, t), "length": t, "silent": silent,
                "target_utt": m.utt_a if which == "a" else m.utt_b, "start": start}


def collate_mixtures(items: Sequence[dict]) -> dict:
    """Pad to the longest: mixture/target/interferer (B, N), lips (B, 1, T, 88, 88), audio (B, T, 104),
    lengths (B,) frames, silent (B,)."""
    t = max(it["length"] for it in items)
    b = len(items)
    n = t * SAMPLES_PER_FRAME
    wav = {k: torch.zeros(b, n) for k in ("mixture", "target", "interferer")}
    lips = torch.zeros(b, 1, t, *items[0]["lips"].shape[-2:])
    audio = torch.zeros(b, t, items[0]["audio"].shape[-1])
    for i, it in enumerate(items):
        k = it["length"]
        for key in wav:
            wav[key][i, : k * SAMPLES_PER_FRAME] = it[key]
        lips[i, :, :k] = it["lips"]
        audio[i, :k] = it["audio"]
    return {"ids": [it["id"] for it in items], **wav, "lips": lips, "audio": audio,
            "target_utts": [it["target_utt"] for it in items], "starts": [it["start"] for it in items],
            "lengths": torch.tensor([it["length"] for it in items]),
            "silent": torch.tensor([it["silent"] for it in items])}
