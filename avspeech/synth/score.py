"""Scores of a command's outputs on a clip made by ``avspeech synth``, against the clip's ground truth.

The synthetic corpus knows each face's clean voice and sentence (its sidecar ``.json``); the benchmarks, the demo
and the tests score ``avspeech separate`` and ``avspeech recognize`` with these. The heads never import this.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from avspeech.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME


def synthetic_improvements(clip: str | Path, out: str | Path) -> list[dict[str, float]]:
    """For a clip made by ``avspeech synth`` separated into ``out``: per ``speakers.json`` entry, the metrics
    of ``speaker_<k>.wav`` against the clean voice (``.spk<i>.wav``, gained as in the mixture) of the synthetic
    speaker whose face the track follows, over the track's span (no PESQ/STOI)."""
    from avspeech.io.media import read_wav
    from avspeech.separation.metrics import score
    from avspeech.synth.splits import speaker_of_track

    clip, out = Path(clip), Path(out)
    sidecar = json.loads(clip.with_suffix(".json").read_text())
    mixture = read_wav(clip.with_suffix(".mix.wav"), SAMPLE_RATE)[0]
    result = []
    for e in json.loads((out / "speakers.json").read_text())["speakers"]:
        s0, s1 = e["frames"]
        i = speaker_of_track(np.tile(np.asarray(e["box"], np.float64), (s1 - s0, 1)), s0, sidecar)
        spk = sidecar["speakers"][i]
        ref = read_wav(clip.with_name(spk["wav"]), SAMPLE_RATE)[0] * spk["gain"]
        est = read_wav(out / e["wav"], SAMPLE_RATE)[0]
        a, b = s0 * SAMPLES_PER_FRAME, min(s1 * SAMPLES_PER_FRAME, len(ref), len(est), len(mixture))
        result.append({"speaker": i, **score(est[a:b], ref[a:b], mixture[a:b], perceptual=False)})
    return result


def synthetic_word_errors(clip: str | Path, entries: Sequence[dict]) -> list[dict]:
    """For a clip made by ``avspeech synth``: per entry, the synthetic speaker whose face the track follows,
    that speaker's sentence and the word/character error counts of the entry's transcript against it."""
    from avspeech.recognition.metrics import error_counts
    from avspeech.synth.splits import speaker_of_track

    sidecar = json.loads(Path(clip).with_suffix(".json").read_text())
    out = []
    for e in entries:
        s0, s1 = e["frames"]
        i = speaker_of_track(np.tile(np.asarray(e["box"], np.float64), (s1 - s0, 1)), s0, sidecar)
        ref = sidecar["speakers"][i]["text"]
        out.append({"speaker": i, "reference": ref, "hypothesis": e["text"], **error_counts(ref, e["text"])})
    return out
