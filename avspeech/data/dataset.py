"""Utterances as model inputs, and batches of similar length.

An item is ``{"id", "lips" (1, T, 88, 88), "audio" (T, 104), "targets" (T,) or None, "length" T}``; training
crops long utterances to ``max_frames`` at a random position. All randomness comes from a generator seeded by
``(seed, epoch, index)``, so a resumed run sees the same data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from tqdm.auto import tqdm

from avspeech.data.layout import Utterance, read_labels, read_manifest
from avspeech.errors import InputError
from avspeech.features import AUDIO_DIM, LipTransform, audio_features
from avspeech.io.media import read_gray_video, read_wav
from avspeech.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

ORDER_SALT = 100003  # an epoch's batch order is drawn from seed * ORDER_SALT + epoch


def read_utterance_audio(utt: Utterance) -> np.ndarray:
    """An utterance's audio (N,) float32 at 16 kHz, checked against the manifest's sample count: a file more than
    a video frame (640 samples; features are fitted to the video's length) shorter than the manifest says is
    refused with an :class:`InputError` naming it (truncated, or not the file the manifest was made from). A
    manifest without a count (0) is not checked."""
    if utt.audio is None:
        raise InputError(f"{utt.id}: the manifest gives no audio")
    audio = read_wav(utt.audio, SAMPLE_RATE)[0]
    _check_count(utt, len(audio))
    return audio


def _check_count(utt: Utterance, samples: int) -> None:
    """An :class:`InputError` naming ``utt``'s wav when it holds more than a frame less than the manifest says."""
    if utt.samples and samples < utt.samples - SAMPLES_PER_FRAME:
        raise InputError(f"has {samples} samples, the manifest says {utt.samples} (row {utt.id}): truncated?",
                         utt.audio)


def file_problems(utts: Sequence[Utterance]) -> list[Failure]:
    """Cheap checks of the files utterances name, before a training run reads them one by one, hours apart: each
    video exists, is not empty and, named .mp4 (.m4v, .mov), starts as one; each wav passes
    :func:`~avspeech.io.media.open_wav` at 16 kHz and holds the manifest's sample count (less one frame). One
    :class:`~avspeech.batch.Failure` (the file, the cause) per problem found; nothing is decoded."""
    from avspeech.batch import Failure
    from avspeech.io.media import check_file, open_wav

    out = []
    for u in tqdm(utts, desc="check files", unit="utt", dynamic_ncols=True, leave=False):
        try:
            if u.video is not None:
                check_file(u.video, "a video")
                with open(u.video, "rb") as f:
                    head = f.read(12)
                if u.video.suffix.lower() in (".mp4", ".m4v", ".mov") and head[4:8] != b"ftyp":
                    raise InputError(f"not an {u.video.suffix[1:].upper()} video (no 'ftyp' box at its start)",
                                     u.video)
        except InputError as e:
            out.append(Failure(str(u.video), e.cause))
        try:
            if u.audio is not None:
                with open_wav(u.audio, SAMPLE_RATE) as f:
                    _check_count(u, f.frames)
        except InputError as e:
            out.append(Failure(str(u.audio), e.cause))
    return out


def require_readable(utts: Sequence[Utterance], manifest: str | Path, out: str | Path) -> None:
    """:func:`file_problems` of ``utts``; if any, all of them go to ``out/unreadable.tsv`` and an
    :class:`InputError` names the manifest, the count and the first one (a training run stops before it starts,
    not when an epoch reaches the file)."""
    from avspeech.batch import write_failures

    problems = file_problems(utts)
    if not problems:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    listed = Path(out) / "unreadable.tsv"
    write_failures(listed, problems)
    first = problems[0]
    raise InputError(f"{len(problems)} file(s) of its utterances cannot be read (all in {listed}), e.g. "
                     f"{first.item}: {first.cause}; fix them, or leave their rows out of the manifest", manifest)


def order_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator an epoch's batch order is drawn from (the same on every rank and after a resume)."""
    return torch.Generator().manual_seed(seed * ORDER_SALT + epoch)


class AVDataset(Dataset):
    def __init__(self, manifest: str | Path, labels: str | Path | None = None, *, train: bool = False,
                 max_frames: int | None = None, seed: int = 0, cache_frames: int = 20000,
                 features: str = "avspeech"):
        """``cache_frames``: keep decoded utterances in memory when the whole set has at most this many frames
        (about 9 kB each), so small corpora are decoded once instead of every epoch. ``features``: the audio
        features of the model being trained (its ``EncoderConfig.audio_features``; see
        :func:`avspeech.features.audio_features`)."""
        self.utterances = read_manifest(manifest)
        self.labels = read_labels(labels, self.utterances) if labels else None
        self.train, self.max_frames, self.seed = train, max_frames, seed
        self.lip_transform = LipTransform(train=train)
        self.features = audio_features(features)
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, torch.Tensor, bool]] | None = (
            {} if sum(u.frames for u in self.utterances) <= cache_frames else None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterances)

    def lengths(self) -> list[int]:
        return [min(u.frames, self.max_frames or u.frames) for u in self.utterances]

    def load(self, utt: Utterance) -> tuple[np.ndarray, np.ndarray | None]:
        """ROIs (T, H, W) uint8 and audio (N,) float32 (None without audio) of one utterance."""
        if utt.video is None:
            raise InputError(f"{utt.id}: the manifest gives no video")
        rois = read_gray_video(utt.video)
        audio = read_utterance_audio(utt) if utt.audio is not None else None
        return rois, audio

    def __getitem__(self, i: int) -> dict:
        utt = self.utterances[i]
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) & 0x7FFFFFFF)
        if self._cache is not None and i in self._cache:
            rois, feats, has_audio = self._cache[i]
        else:
            rois, audio = self.load(utt)
            has_audio = audio is not None
            feats = self.features(audio, len(rois)) if has_audio else torch.zeros(len(rois), AUDIO_DIM)
            if self._cache is not None:
                self._cache[i] = (rois, feats, has_audio)
        t = len(rois)
        targets = None
        if self.labels is not None:
            lab = torch.from_numpy(self.labels[i])
            targets = torch.full((t,), -1, dtype=torch.long)
            targets[: min(t, len(lab))] = lab[:t]
        start = 0
        if self.max_frames and t > self.max_frames:
            start = int(torch.randint(0, t - self.max_frames + 1, (1,), generator=g)) if self.train else 0
            t = self.max_frames
        sl = slice(start, start + t)
        return {"id": utt.id, "lips": self.lip_transform(rois[sl], g), "audio": feats[sl],
                "targets": None if targets is None else targets[sl], "length": t, "has_audio": has_audio}


def collate(items: Sequence[dict]) -> dict:
    """Pad to the longest item: lips (B, 1, T, 88, 88), audio (B, T, 104), targets (B, T) (-1 padding),
    lengths (B,), has_audio (B,)."""
    t = max(it["length"] for it in items)
    b = len(items)
    lips = torch.zeros(b, 1, t, *items[0]["lips"].shape[-2:])
    audio = torch.zeros(b, t, items[0]["audio"].shape[-1])
    targets = torch.full((b, t), -1, dtype=torch.long)
    for i, it in enumerate(items):
        n = it["length"]
        lips[i, :, :n] = it["lips"]
        audio[i, :n] = it["audio"]
        if it["targets"] is not None:
            targets[i, :n] = it["targets"]
    return {"ids": [it["id"] for it in items], "lips": lips, "audio": audio, "targets": targets,
            "lengths": torch.tensor([it["length"] for it in items]),
            "has_audio": torch.tensor([it["has_audio"] for it in items])}


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of utterances of similar length whose padded size stays within ``max_frames_per_batch``
    (B x T_max), in a random order drawn from ``(seed, epoch)``; under DDP each rank takes every
    ``world``-th batch (the count is cut to a multiple of ``world`` so ranks stay in step)."""

    def __init__(self, lengths: Sequence[int], max_frames_per_batch: int, *, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world: int = 1, max_batch_size: int | None = None):
        self.lengths = list(lengths)
        if self.lengths and max(self.lengths) > max_frames_per_batch:
            raise ValueError(f"an utterance of {max(self.lengths)} frames does not fit in a batch of "
                             f"{max_frames_per_batch} frames; raise the cap or crop utterances")
        self.cap, self.shuffle, self.seed = max_frames_per_batch, shuffle, seed
        self.rank, self.world, self.max_batch_size = rank, world, max_batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
        out, cur, t_max = [], [], 0
        for i in order:
            t = max(t_max, self.lengths[i])
            if cur and (t * (len(cur) + 1) > self.cap or len(cur) == (self.max_batch_size or 1 << 30)):
                out.append(cur)
                cur, t = [], self.lengths[i]
            cur.append(i)
            t_max = t
        if cur:
            out.append(cur)
        if self.shuffle:
            g = order_generator(self.seed, self.epoch)
            out = [out[j] for j in torch.randperm(len(out), generator=g).tolist()]
        usable = len(out) // self.world * self.world if self.world > 1 else len(out)
        return out[self.rank:usable:self.world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())
