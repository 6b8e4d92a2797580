"""Decoding CTC output: greedy, prefix beam search (optionally restricted to a word list), joint CTC/attention
rescoring, forced alignment and word timestamps.

All functions take one utterance's CTC log-probabilities ``logp`` (S, V) (id 0 the blank) as a tensor or array.

- :func:`prefix_beam_search`: the CTC prefix beam search (Hannun et al. 2014): a beam of label prefixes, each
  with the log-probability of all paths that collapse to it ending in blank (``pb``) and in its last label
  (``pnb``). With a beam at least as large as the number of prefixes it is exact: it returns the label sequence
  of maximum total probability (the sum over its paths), as enumerating every path does (the tests' oracle).
  A :class:`Lexicon` limits prefixes to sequences of its words.
- :func:`joint_rescore`: the n-best of the beam search rescored by ``ctc_weight x log P_ctc + (1 - ctc_weight) x
  log P_att`` with the attention decoder (joint CTC/attention decoding in the rescoring form, as WeNet's
  "attention rescoring").
- :func:`forced_align`: the most likely CTC path (Viterbi) for a given label sequence, by
  ``torchaudio.functional.forced_align``; word timestamps follow from the frames of each word's first and last
  label.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from avspeech.errors import InputError
from avspeech.recognition.tokenizer import BLANK, normalise_text

NEG_INF = -math.inf


def _np(logp) -> np.ndarray:
    if hasattr(logp, "detach"):
        logp = logp.detach().cpu().double().numpy()
    a = np.asarray(logp, np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected log-probabilities (S, V), got shape {a.shape}")
    return a


def _logadd(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def greedy(logp) -> list[int]:
    """Best path: argmax per frame, repeats merged, blanks dropped."""
    best = _np(logp).argmax(-1)
    return [int(k) for k, _ in itertools.groupby(best) if k != BLANK]


class Lexicon:
    """A word list: decoding may only produce sequences of these words. ``tokenizer`` turns text into tokens.

    Constraints are checked on the decoded text of a prefix: every complete word must be in the list and the
    word being spelled must be the start of one; at the end the last word must be complete."""

    def __init__(self, words: Sequence[str], tokenizer):
        self.words = {normalise_text(w) for w in words if normalise_text(w)}
        if any(" " in w for w in self.words):
            raise ValueError("lexicon entries must be single words")
        if not self.words:
            raise ValueError("the lexicon is empty")
        self.prefixes = {w[:i] for w in self.words for i in range(len(w) + 1)}
        self.tokenizer = tokenizer

    @classmethod
    def from_file(cls, path: str | Path, tokenizer) -> "Lexicon":
        """One word per line (further columns, e.g. a lexicon's spelling, are ignored)."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the word list ({e})", path) from e
        words = [ln.split()[0] for ln in lines if ln.strip()]
        if not words:
            raise InputError("the word list is empty", path)
        return cls(words, tokenizer)

    def allows(self, ids: Sequence[int], final: bool = False) -> bool:
        text = self.tokenizer.decode(list(ids))
        raw_end_space = bool(ids) and self.tokenizer.decode([ids[-1]]) == "" and not final
        words = text.split(" ") if text else []
        if not words:
            return True
        *done, cur = words
        if any(w not in self.words for w in done):
            return False
        if final or raw_end_space:
            return cur in self.words
        return cur in self.prefixes


def prefix_beam_search(logp, beam: int = 16, lexicon: Lexicon | None = None, nbest: int = 1,
                       prune: float | None = None) -> list[tuple[list[int], float]]:
    """Up to ``nbest`` (labels, log P_ctc(labels)) pairs, best first. ``prune``: per frame, only labels within
    ``prune`` nats of the frame's best label are extended (None: all)."""
    lp = _np(logp)
    s, v = lp.shape
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # prefix -> (pb, pnb)
    allowed: dict[tuple[int, ...], bool] = {}

    def ok(prefix: tuple[int, ...]) -> bool:
        if lexicon is None:
            return True
        if prefix not in allowed:
            allowed[prefix] = lexicon.allows(prefix)
        return allowed[prefix]

    for t in range(s):
        row = lp[t]
        labels = range(1, v) if prune is None else [k for k in range(1, v) if row[k] >= row.max() - prune]
        nxt: dict[tuple[int, ...], list[float]] = {}

        def acc(prefix, pb=NEG_INF, pnb=NEG_INF):
            cur = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
            cur[0] = _logadd(cur[0], pb)
            cur[1] = _logadd(cur[1], pnb)

        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            acc(prefix, pb=total + row[BLANK])  # blank: the prefix stays, now ending in blank
            last = prefix[-1] if prefix else None
            if last is not None:  # the last label repeated without a blank between: the same prefix
                acc(prefix, pnb=pnb + row[last])
            for k in labels:
                ext = prefix + (k,)
                if not ok(ext):
                    continue
                # after a repeat of the last label, only paths that ended in blank start a new label
                acc(ext, pnb=(pb if k == last else total) + row[k])
        ranked = sorted(nxt.items(), key=lambda kv: _logadd(*kv[1]), reverse=True)
        beams = {p: (a, b) for p, (a, b) in ranked[:beam]}
    final = [(list(p), _logadd(pb, pnb)) for p, (pb, pnb) in beams.items()
             if lexicon is None or lexicon.allows(p, final=True)]
    final.sort(key=lambda x: x[1], reverse=True)
    return final[:nbest]


def forced_align(logp, labels: Sequence[int]) -> list[int]:
    """The most likely CTC path (S,) for ``labels`` (``torchaudio.functional.forced_align``, the Viterbi
    algorithm); raises ValueError when the frames cannot hold them."""
    import torch
    from torchaudio.functional import forced_align as viterbi

    lp = _np(logp)
    s = len(lp)
    labels = [int(k) for k in labels]
    if not labels:
        return [BLANK] * s
    repeats = sum(a == b for a, b in zip(labels, labels[1:]))  # each needs a blank between the two
    if len(labels) + repeats > s:
        raise ValueError(f"{len(labels)} labels do not fit in {s} frames")
    path, scores = viterbi(torch.from_numpy(lp)[None], torch.tensor([labels], dtype=torch.int32), blank=BLANK)
    if not bool(torch.isfinite(scores.sum())):  # every path of the labels crosses a zero probability
        raise ValueError(f"{len(labels)} labels do not fit in {s} frames")
    return [int(k) for k in path[0]]


def word_timestamps(logp, labels: Sequence[int], tokenizer, frame_seconds: float,
                    offset_seconds: float = 0.0) -> list[dict]:
    """``[{"word", "start", "end"}]`` in seconds: a word spans from the first frame of its first label to the
    end of the last frame of its last label on the forced alignment of ``labels``."""
    if not labels:
        return []
    path = forced_align(logp, labels)
    # frame of each label occurrence: a new label starts where the path changes to a non-blank symbol
    starts, ends, j, prev = [], [], -1, BLANK
    for t, k in enumerate(path):
        if k != BLANK and (k != prev or t == 0):
            j += 1
            starts.append(t)
            ends.append(t)
        elif k != BLANK:
            ends[j] = t
        prev = k
    widx = tokenizer.word_index(list(labels))
    words: dict[int, list[int]] = {}
    for lab_i, w in enumerate(widx):
        if w is not None:
            words.setdefault(w, []).append(lab_i)
    out = []
    for w in sorted(words):
        ids = [labels[i] for i in words[w]]
        s0, s1 = starts[words[w][0]], ends[words[w][-1]] + 1
        out.append({"word": tokenizer.decode(ids), "start": round(offset_seconds + s0 * frame_seconds, 3),
                    "end": round(offset_seconds + s1 * frame_seconds, 3)})
    return out


@dataclass
class Hypothesis:
    tokens: list[int]
    ctc: float  # log P_ctc
    att: float | None = None  # log P_att (with the end symbol)
    score: float = 0.0


def joint_rescore(hyps: Sequence[tuple[list[int], float]], att_scores: Sequence[float] | None,
                  ctc_weight: float) -> list[Hypothesis]:
    """Hypotheses sorted by ``ctc_weight x ctc + (1 - ctc_weight) x att`` (CTC only without ``att_scores``)."""
    out = []
    for i, (tokens, ctc) in enumerate(hyps):
        att = None if att_scores is None else float(att_scores[i])
        score = ctc if att is None else ctc_weight * ctc + (1 - ctc_weight) * att
        out.append(Hypothesis(list(tokens), float(ctc), att, float(score)))
    out.sort(key=lambda h: h.score, reverse=True)
    return out
