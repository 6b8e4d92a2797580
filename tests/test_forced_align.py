"""``forced_align`` (torchaudio's Viterbi) against the dynamic programme it replaced (tests/ctc_oracles.py), on
random tie-free inputs with and without repeated labels, and word timestamps unchanged by the swap."""
import numpy as np
import pytest
import torch

import avspeech.recognition.decode as decode
from avspeech.recognition.tokenizer import CharTokenizer
from ctc_oracles import collapse, viterbi_align


def _cases(seed: int, n: int):
    """(logp (S, V) float64, labels) with random lengths; every other case has a repeated label."""
    rng = np.random.default_rng(seed)
    for trial in range(n):
        v = int(rng.integers(2, 7))
        labels = list(rng.integers(1, v, size=int(rng.integers(1, 6))))
        if trial % 2 and len(labels) > 1:
            labels[1] = labels[0]  # a repeat: the path needs a blank between the two
        need = len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))
        s = need + int(rng.integers(0, 12))
        # continuous random scores: ties between paths have probability 0
        logp = torch.from_numpy(rng.standard_normal((s, v)) * [0.5, 2.0, 6.0][trial % 3]).log_softmax(-1)
        yield logp, [int(k) for k in labels]


def test_forced_align_equals_the_viterbi_oracle():
    repeats = 0
    for logp, labels in _cases(0, 60):
        path = decode.forced_align(logp, labels)
        assert path == viterbi_align(logp, labels)
        assert collapse(path) == tuple(labels) and len(path) == len(logp)
        repeats += any(a == b for a, b in zip(labels, labels[1:]))
        # a numpy array gives the same path as a tensor
        assert decode.forced_align(logp.numpy(), labels) == path
    assert repeats >= 20
    assert decode.forced_align(torch.zeros(4, 3).log_softmax(-1), []) == [0, 0, 0, 0]


def test_forced_align_refuses_what_does_not_fit():
    lp = torch.randn(3, 4).log_softmax(-1)
    for labels in ([1, 1, 2], [1, 2, 3, 1]):  # 4 frames needed (a repeat), 4 labels in 3 frames
        with pytest.raises(ValueError, match="do not fit"):
            decode.forced_align(lp, labels)
        with pytest.raises(ValueError, match="do not fit"):
            viterbi_align(lp, labels)
    blocked = torch.full((3, 4), -torch.inf)
    blocked[:, 0] = 0.0  # only blanks are possible
    with pytest.raises(ValueError, match="do not fit"):
        decode.forced_align(blocked, [1])


def test_word_timestamps_unchanged_by_the_aligner(monkeypatch):
    tok = CharTokenizer(" ab")  # space 1, a 2, b 3
    rng = np.random.default_rng(1)
    got, want = [], []
    for text in ("a b", "ab ba", "aa b", "b a ab"):
        labels = tok.encode(text)
        s = 2 * len(labels) + int(rng.integers(0, 8))
        lp = torch.from_numpy(rng.standard_normal((s, 4)) * 2.0).log_softmax(-1)
        got.append(decode.word_timestamps(lp, labels, tok, frame_seconds=0.04, offset_seconds=0.5))
        with monkeypatch.context() as m:
            m.setattr(decode, "forced_align", viterbi_align)
            want.append(decode.word_timestamps(lp, labels, tok, frame_seconds=0.04, offset_seconds=0.5))
    assert got == want
    assert [w["word"] for w in got[1]] == ["ab", "ba"]
