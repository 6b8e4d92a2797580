"""Noise sets for noisy training and evaluation, in AV-HuBERT's layout (``avhubert/preparation/musan_prepare.py``,
``lrs3_noise.py``, ``noise_manifest.py``; facts only).

From MUSAN (``noise/``, ``music/``, ``speech/``, each ``<source>/<name>.wav`` at 16 kHz):

- every file longer than 10 s is cut into 10 s pieces (the rest kept as the last piece); pieces of 3 to 11 s are
  kept;
- ``noise`` and ``music`` pieces are split 80/10/10 % into train, valid and test (AV-HuBERT shuffles; here the
  order is a hash of the file name, so the split does not depend on the machine);
- ``babble``: each file the mean of 30 speech pieces drawn at random (seeded by the file's index), cut to the
  shortest of them; the speech pieces are split 80/10/10 % first, so no voice is in two splits' babble.

From a dataset's manifest (``manifest=``, e.g. ``lrs3/433h_data/train.tsv``):

- ``speech``: the first 20 s of every utterance longer than that, split 60/20/20 %;
- ``babble-dataset``: one file, the mean of 30 utterances longer than 15 s (its valid and test list).

Each set is a folder with ``train.tsv``, ``valid.tsv`` and ``test.tsv``, one absolute wav path per line (AV-HuBERT's
noise lists), and ``all/`` joins babble, music, noise and speech. :class:`NoiseSet` draws noise from a list for
``add_noise``-style mixing at a fixed or drawn SNR.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_text

SAMPLE_RATE = 16000
PIECE_SECONDS = 10.0
KEEP_SECONDS = (3.0, 11.0)  # [min, max) of the pieces kept
SPLITS = ("train", "valid", "test")
BABBLE_TALKERS = 30


@dataclass(frozen=True)
class NoiseConfig:
    babble_files: int = 100  # MUSAN babble files made in all (split 80/10/10); AV-HuBERT makes 10,000
    talkers: int = BABBLE_TALKERS
    speech_seconds: float = 20.0  # dataset speech noise: utterances longer than this, cut to it
    babble_seconds: float = 15.0  # dataset babble: utterances longer than this
    seed: int = 0


def split_by_hash(files: Sequence[Path], fractions: tuple[float, float] = (0.8, 0.1)) -> dict[str, list[Path]]:
    """Train, valid and test parts of ``files``: ordered by a hash of the file name (so the split does not depend
    on the machine or on the other files' order), the first ``int(0.8 n)`` train, the next ``int(0.1 n)`` valid,
    the rest test (AV-HuBERT's counts)."""
    order = sorted(files, key=lambda p: hashlib.sha1(Path(p).name.encode()).hexdigest())
    a, b = int(len(order) * fractions[0]), int(len(order) * fractions[1])
    return {"train": order[:a], "valid": order[a:a + b], "test": order[a + b:]}


def _read(path: Path) -> np.ndarray:
    from avspeech.io.media import read_wav

    audio, sr = read_wav(path)
    if sr != SAMPLE_RATE:
        raise InputError(f"sample rate is {sr} Hz, expected {SAMPLE_RATE} (MUSAN is 16 kHz)", path)
    return audio


def _write_list(path: Path, files: Sequence[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(f"{Path(f).resolve()}\n" for f in files))


def read_list(path: str | Path) -> list[Path]:
    path = Path(path)
    try:
        return [Path(ln.strip()) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as e:
        raise InputError(f"cannot read the noise list ({e.strerror})", path) from e


def musan_pieces(musan: Path, category: str, out: Path) -> list[Path]:
    """The kept pieces of one MUSAN category (files over 10 s are cut into ``out/pieces/``; resumable)."""
    from avspeech.io.media import write_wav

    files = sorted((musan / category).glob("*/*.wav"))
    step = int(PIECE_SECONDS * SAMPLE_RATE)
    lo, hi = (int(s * SAMPLE_RATE) for s in KEEP_SECONDS)
    kept = []
    for f in files:
        audio = _read(f)
        if len(audio) <= step:
            if lo <= len(audio) < hi:
                kept.append(f)
            continue
        for k in range(int(np.ceil(len(audio) / step))):
            piece = audio[k * step:(k + 1) * step]
            if not lo <= len(piece) < hi:
                continue
            dst = out / "pieces" / category / f.parent.name / f"{f.stem}-{k}.wav"
            if not dst.is_file():
                write_wav(dst, piece, SAMPLE_RATE, subtype="PCM_16")
            kept.append(dst)
    return kept


def mean_of(audios: Sequence[np.ndarray]) -> np.ndarray:
    """AV-HuBERT's babble: the mean of the sources, each cut to the shortest."""
    n = min(len(a) for a in audios)
    return np.mean(np.stack([a[:n].astype(np.float64) for a in audios]), axis=0).astype(np.float32)


def prepare_noise(out: str | Path, musan: str | Path | None = None, manifest: str | Path | None = None,
                  config: NoiseConfig = NoiseConfig()) -> dict[str, dict[str, int]]:
    """Write the noise sets (module docstring) into ``out``; returns files per set and split."""
    from avspeech.io.media import write_wav

    if musan is None and manifest is None:
        raise InputError("give a MUSAN folder, a dataset manifest, or both")
    out = Path(out)
    sets: dict[str, dict[str, list[Path]]] = {}
    if musan is not None:
        musan = Path(musan)
        missing = [c for c in ("noise", "music", "speech") if not (musan / c).is_dir()]
        if missing:
            raise InputError(f"not a MUSAN folder: {', '.join(m + '/' for m in missing)} missing", musan)
        for cat in ("noise", "music"):
            pieces = musan_pieces(musan, cat, out)
            if not pieces:
                raise InputError(f"no usable audio in {cat}/ (MUSAN keeps its wav files one folder down, e.g. "
                                 f"{cat}/<source>/*.wav; files or pieces of {KEEP_SECONDS[0]:g} to "
                                 f"{KEEP_SECONDS[1]:g} s are kept)", musan)
            sets[cat] = split_by_hash(pieces)
        speech = musan_pieces(musan, "speech", out)
        if len(speech) < 2:
            raise InputError(f"{len(speech)} usable audio file(s) in speech/<source>/: babble needs at least two "
                             "talkers", musan)
        by_split = split_by_hash(speech)
        counts = dict(zip(SPLITS, (round(config.babble_files * f) for f in (0.8, 0.1, 0.1))))
        sets["babble"] = {s: [] for s in SPLITS}
        for s in SPLITS:
            src = by_split[s]
            if len(src) < 2:
                continue
            for i in range(counts[s]):
                dst = out / "babble" / "wav" / f"{s}-{i + 1:05d}.wav"
                if not dst.is_file():
                    rng = np.random.default_rng([config.seed, SPLITS.index(s), i])
                    pick = rng.permutation(len(src))[:config.talkers]
                    write_wav(dst, mean_of([_read(src[k]) for k in pick]), SAMPLE_RATE, subtype="PCM_16")
                sets["babble"][s].append(dst)
    if manifest is not None:
        from avspeech.data.layout import read_manifest

        utts = [u for u in read_manifest(manifest) if u.audio is not None]
        if not utts:
            raise InputError("no utterances with audio found in this manifest", manifest)
        n_speech = int(config.speech_seconds * SAMPLE_RATE)
        long = [u for u in utts if u.samples > n_speech]
        if not long:
            raise InputError(f"no utterance is longer than the {config.speech_seconds:g} s of speech noise to cut "
                             f"from each (the longest has {max(u.samples for u in utts) / SAMPLE_RATE:.2f} s)",
                             manifest)
        speech = []
        for u in long:
            dst = out / "speech" / "wav" / f"{u.id.replace('/', '_')}.wav"
            if not dst.is_file():
                write_wav(dst, _read(u.audio)[:n_speech], SAMPLE_RATE, subtype="PCM_16")
            speech.append(dst)
        a, b = int(len(speech) * 0.6), int(len(speech) * 0.2)
        sets["speech"] = {"train": speech[:a], "valid": speech[a:a + b], "test": speech[a + b:a + 2 * b]}
        pool = [u for u in utts if u.samples > config.babble_seconds * SAMPLE_RATE]
        if len(pool) >= 2:
            rng = np.random.default_rng(config.seed)
            pick = [pool[k] for k in rng.permutation(len(pool))[:config.talkers]]
            dst = out / "babble-dataset" / "noise.wav"
            write_wav(dst, mean_of([_read(u.audio) for u in pick]), SAMPLE_RATE, subtype="PCM_16")
            sets["babble-dataset"] = {"train": [], "valid": [dst], "test": [dst]}
    for name, splits in sets.items():
        for s, files in splits.items():
            _write_list(out / name / f"{s}.tsv", files)
    joined = [n for n in ("babble", "music", "noise", "speech") if n in sets]
    for s in SPLITS:
        _write_list(out / "all" / f"{s}.tsv", [f for n in joined for f in sets[n][s]])
    return {n: {s: len(f) for s, f in sp.items()} for n, sp in sets.items()}


class NoiseSet:
    """Noise drawn from a noise list (``<set>/<split>.tsv``): a random file at a random offset, looped to the
    length asked for; files are read once."""

    def __init__(self, folder: str | Path, split: str = "train"):
        path = Path(folder) / f"{split}.tsv"
        self.files = read_list(path)
        if not self.files:
            raise InputError("the noise list is empty", path)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def audio(self, k: int) -> np.ndarray:
        if k not in self._cache:
            self._cache[k] = _read(self.files[k])
        return self._cache[k]

    def sample(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """(num_samples,) float32 noise."""
        a = self.audio(int(rng.integers(len(self.files))))
        start = int(rng.integers(len(a))) if len(a) else 0
        return np.resize(np.roll(a, -start), num_samples).astype(np.float32)

    def add(self, target: np.ndarray, snr: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
        """``target`` with noise at an SNR drawn uniformly in ``snr`` (dB; a fixed SNR when both ends agree)."""
        from avspeech.recognition.data import add_noise

        lo, hi = snr
        return add_noise(target, self.sample(len(target), rng), lo if lo == hi else float(rng.uniform(lo, hi)))


def check_snr(snr: Sequence[float]) -> tuple[float, float]:
    """``snr`` as a (LO, HI) pair of floats in dB, checked (``LO == HI``: a fixed SNR)."""
    lo, hi = (float(x) for x in snr)
    if lo > hi:
        raise InputError(f"the SNR range must be LO HI with LO <= HI, got {tuple(snr)}")
    return lo, hi


def parse_snr(text: str) -> tuple[float, float]:
    """``"0"`` -> (0, 0) (fixed, AV-HuBERT's noisy fine-tuning); ``"-5:10"`` -> a range drawn uniformly."""
    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError:
        raise InputError(f"--snr must be a number or LO:HI in dB, got {text!r}") from None
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) != 2 or parts[0] > parts[1]:
        raise InputError(f"--snr must be a number or LO:HI with LO <= HI, got {text!r}")
    return parts[0], parts[1]
