"""What LRS2 and LRS3 share: ``<split>/<video>/<utt>.mp4`` beside ``<utt>.txt``, whole clips for the fine-tuning
splits, and long ``pretrain`` clips cut into sentences (:func:`~avspeech.datasets.transcripts.split_sentences`)
whose ids live under ``short-pretrain/`` (AV-HuBERT's names: ``short-pretrain/<video>/<utt>`` for a clip kept
whole, ``short-pretrain/<video>/<utt>_<k>`` for its k-th sentence)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from avspeech.batch import Failure
from avspeech.datasets.prepare import Cut
from avspeech.datasets.transcripts import MAX_DURATION, MIN_GAP, normalise, read_transcript, split_sentences
from avspeech.errors import InputError
from avspeech.preprocess.discover import ClipInput

SHORT_PRETRAIN = "short-pretrain"


def speaker_videos(folder: Path) -> list[Path]:
    """``folder/<video>/<utt>.mp4``, sorted (hidden names skipped)."""
    return sorted(p for p in folder.glob("*/*.mp4") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))


def lrs_cuts(split: str, video: Path, pretrain: bool, max_duration: float = MAX_DURATION,
             min_gap: float = MIN_GAP) -> list[Cut]:
    """The utterances of one clip ``<split>/<video>/<utt>``; raises :class:`InputError` naming the ``.txt``."""
    clip = f"{split}/{video.parent.name}/{video.stem}"
    tr = read_transcript(video.with_suffix(".txt"))
    if not pretrain:
        return [Cut(clip, clip, normalise(tr.text))]
    base = f"{SHORT_PRETRAIN}/{video.parent.name}/{video.stem}"
    return [Cut(base if s.index is None else f"{base}_{s.index}", clip, s.text, s.start, s.end, s.index is None)
            for s in split_sentences(tr, max_duration, min_gap)]


def collect(items: Iterable[tuple[str, Path, bool]], max_duration: float, min_gap: float
            ) -> tuple[list[ClipInput], list[Cut], list[Failure]]:
    """Clips, cuts and transcript failures of ``(split, video, pretrain)`` items; a clip whose ``.txt`` is missing
    or malformed is listed and left out (its video is not processed)."""
    clips, cuts, failures, seen = [], [], [], set()
    for split, video, pretrain in items:
        if video in seen:  # listed twice
            continue
        seen.add(video)
        if not video.is_file():
            failures.append(Failure(str(video), "video file missing"))
            continue
        try:
            c = lrs_cuts(split, video, pretrain, max_duration, min_gap)
        except InputError as e:
            failures.append(Failure(e.path or str(video), e.cause))
            continue
        clips.append(ClipInput(str(video.resolve()), c[0].clip))
        cuts += c
    return clips, cuts, failures
