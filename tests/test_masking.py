"""Masks, segment substitution, modality dropout and the objective, against closed forms."""
import math

import torch

from avspeech.model.modality import modality_dropout
from avspeech.pretrain.masking import MaskConfig, span_mask, substitute_segments


def test_span_mask_stays_within_length_and_hits_expected_fraction():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([200, 120, 0, 7])
    fractions = []
    for _ in range(50):
        m = span_mask(lengths, 210, 0.3, 5, g)
        assert not m[0, 200:].any() and not m[1, 120:].any() and not m[2].any()
        fractions.append(m[0, :200].float().mean().item())
    # k = 0.3*200/5 = 12 spans of 5 placed uniformly: expected coverage 1 - (1 - 5/196)^12 (edges aside) ~ 0.27
    expected = 1 - (1 - 5 / 196) ** 12
    assert abs(sum(fractions) / len(fractions) - expected) < 0.03
    assert span_mask(lengths, 210, 0.8, 10, g)[3, :7].all()  # a sample shorter than a span is masked whole


def test_substitute_segments_copies_other_segments_of_the_same_clip():
    g = torch.Generator().manual_seed(1)
    t = 40
    x = torch.arange(2 * t, dtype=torch.float32).reshape(2, t, 1).repeat(1, 1, 3)  # each frame knows its index
    lengths = torch.tensor([40, 25])
    mask = torch.zeros(2, t, dtype=torch.bool)
    mask[0, 10:15] = True
    mask[1, 3:8] = True
    y = substitute_segments(x, mask, lengths, g)
    assert torch.equal(y[~mask], x[~mask])
    for i, (s, e) in enumerate([(10, 15), (3, 8)]):
        seg = y[i, s:e, 0] - i * t
        src = int(seg[0])
        assert torch.equal(seg, torch.arange(src, src + 5, dtype=torch.float32))  # a contiguous run
        assert src != s and 0 <= src <= int(lengths[i]) - 5  # another segment, within the sample


def test_modality_dropout_proportions():
    g = torch.Generator().manual_seed(2)
    a, v = modality_dropout(20000, MaskConfig().p_av, MaskConfig().p_audio, g)
    assert not (~a & ~v).any()
    both, v_only, a_only = (a & v).float().mean(), (~a & v).float().mean(), (a & ~v).float().mean()
    for got, want in [(both, 0.5), (v_only, 0.25), (a_only, 0.25)]:
        assert abs(float(got) - want) < 4 * math.sqrt(want * (1 - want) / 20000)
