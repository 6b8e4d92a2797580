"""The shipped checkpoints compute what they computed before the AV-HuBERT layout was added: their encoders'
outputs on fixed inputs equal, bit for bit, the outputs stored in tests/data/shipped_encoder_outputs.pt, which
were computed with the code at commit bc45503 (before ``EncoderConfig.layout``)."""
from pathlib import Path

import torch

from avspeech.pretrained import BUNDLES

STORED = Path(__file__).parent / "data" / "shipped_encoder_outputs.pt"


def test_shipped_encoders_bit_identical():
    want = torch.load(STORED, weights_only=True)
    for name, bundle in BUNDLES.items():
        enc = bundle.load().encoder
        assert enc.cfg.layout == "avspeech"
        g = torch.Generator().manual_seed(1)
        lips = torch.randn(2, 1, 12, 88, 88, generator=g)
        audio = torch.randn(2, 12, 104, generator=g)
        lengths = torch.tensor([12, 9])
        with torch.no_grad():
            got = {name: enc(lips, audio, lengths), name + "_l1": enc(lips, audio, lengths, output_layer=1),
                   name + "_a": enc(None, audio, lengths)}
        for k, v in got.items():
            assert torch.equal(v, want[k]), k
