"""Test oracles of CTC decoding, written for clarity over speed (tiny inputs only):

- :func:`exhaustive_search`: the label sequence of maximum total CTC probability, by enumerating every path;
- :func:`ctc_logprob`: log P_ctc(labels | x) by the forward algorithm;
- :func:`viterbi_align`: the most likely CTC path for given labels, by dynamic programming (the implementation
  of ``avspeech.recognition.decode.forced_align`` before it used ``torchaudio.functional.forced_align``).

All take one utterance's CTC log-probabilities ``logp`` (S, V), id 0 the blank, as a tensor or array.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

BLANK = 0
NEG_INF = -math.inf


def _np(logp) -> np.ndarray:
    return np.asarray(logp.detach().cpu().double() if hasattr(logp, "detach") else logp, np.float64)


def collapse(path: Sequence[int]) -> tuple[int, ...]:
    """The labels of a CTC path: repeats merged, blanks dropped."""
    return tuple(int(k) for k, _ in itertools.groupby(path) if k != BLANK)


def _extended(labels: Sequence[int]) -> list[int]:
    ext = [BLANK]
    for k in labels:
        ext += [int(k), BLANK]
    return ext


def ctc_logprob(logp, labels: Sequence[int]) -> float:
    """log P_ctc(labels | x): the forward algorithm over the blank-extended label sequence."""
    lp = _np(logp)
    ext = _extended(labels)
    n = len(ext)
    alpha = np.full(n, NEG_INF)
    alpha[0] = lp[0, BLANK]
    if n > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, len(lp)):
        new = np.full(n, NEG_INF)
        for i in range(n):
            a = alpha[i]
            if i >= 1:
                a = np.logaddexp(a, alpha[i - 1])
            if i >= 2 and ext[i] != BLANK and ext[i] != ext[i - 2]:
                a = np.logaddexp(a, alpha[i - 2])
            new[i] = a + lp[t, ext[i]] if a != NEG_INF else NEG_INF
        alpha = new
    return np.logaddexp(alpha[-1], alpha[-2]) if n > 1 else float(alpha[-1])


def exhaustive_search(logp, lexicon=None) -> tuple[list[int], float]:
    """The label sequence of maximum total CTC probability, by enumerating all V^S paths; with a
    ``avspeech.recognition.decode.Lexicon``, only the sequences it allows as final."""
    lp = _np(logp)
    s, v = lp.shape
    if v ** s > 2_000_000:
        raise ValueError(f"{v}^{s} paths are too many to enumerate")
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(v), repeat=s):
        score = float(lp[np.arange(s), list(path)].sum())
        key = collapse(path)
        totals[key] = float(np.logaddexp(totals.get(key, NEG_INF), score))
    items = [(k, p) for k, p in totals.items() if lexicon is None or lexicon.allows(k, final=True)]
    best = max(items, key=lambda kv: kv[1])
    return list(best[0]), best[1]


def viterbi_align(logp, labels: Sequence[int]) -> list[int]:
    """The most likely CTC path (S,) for ``labels``; raises ValueError when the frames cannot hold them."""
    lp = _np(logp)
    s = len(lp)
    ext = _extended(labels)
    n = len(ext)
    score = np.full((s, n), NEG_INF)
    back = np.zeros((s, n), np.int64)
    score[0, 0] = lp[0, BLANK]
    if n > 1:
        score[0, 1] = lp[0, ext[1]]
    for t in range(1, s):
        for i in range(n):
            cands = [(score[t - 1, i], i)]
            if i >= 1:
                cands.append((score[t - 1, i - 1], i - 1))
            if i >= 2 and ext[i] != BLANK and ext[i] != ext[i - 2]:
                cands.append((score[t - 1, i - 2], i - 2))
            best, arg = max(cands)
            if best > NEG_INF:
                score[t, i] = best + lp[t, ext[i]]
                back[t, i] = arg
    ends = [n - 1] + ([n - 2] if n > 1 else [])
    i = max(ends, key=lambda j: score[-1, j])
    if score[-1, i] == NEG_INF:
        raise ValueError(f"{len(labels)} labels do not fit in {s} frames")
    path = [0] * s
    for t in range(s - 1, -1, -1):
        path[t] = ext[i]
        i = back[t, i]
    return path
