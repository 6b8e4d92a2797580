"""The encoder on padded batches with mixed modalities: each sample's features are those it gets alone."""
import copy

import torch

from avspeech.model.config import preset
from avspeech.model.encoder import AVEncoder


def test_mixed_modalities_and_padding_match_each_sample_alone():
    torch.manual_seed(0)
    enc = AVEncoder(preset("tiny")).eval()
    b, t = 4, 12
    lips = torch.randn(b, 1, t, 88, 88)
    audio = torch.randn(b, t, 104)
    lengths = torch.tensor([12, 9, 7, 12])
    for i, n in enumerate(lengths.tolist()):  # padding is zeros, as the collate functions make it
        lips[i, :, n:] = 0
        audio[i, n:] = 0
    has_audio = torch.tensor([True, True, False, True])
    has_video = torch.tensor([True, False, True, False])  # the lip front-end runs on samples 0 and 2 only
    with torch.no_grad():
        out = enc(lips, audio, lengths, has_audio, has_video)
        for i in range(b):
            n = int(lengths[i])
            alone = enc(lips[i:i + 1, :, :n] if has_video[i] else None, audio[i:i + 1, :n] if has_audio[i] else None,
                        lengths[i:i + 1])
            torch.testing.assert_close(out[i, :n], alone[0], atol=2e-5, rtol=1e-4)
            assert torch.all(out[i, n:] == 0)


def test_batch_without_video_still_uses_every_parameter():
    """DDP needs every parameter in the graph: a batch where no sample has video still runs the lip front-end."""
    torch.manual_seed(0)
    enc = AVEncoder(preset("tiny"))
    lips = torch.randn(2, 1, 5, 88, 88)
    audio = torch.randn(2, 5, 104)
    out = enc(lips, audio, torch.tensor([5, 5]), torch.tensor([True, True]), torch.tensor([False, False]))
    out.sum().backward()
    assert all(p.grad is not None for p in enc.lip_frontend.parameters())


def test_lip_frontend_inference_by_blocks_equals_the_whole_clip():
    """Without gradients a long chunk goes through the lip front-end a block of frames at a time (each with the
    stem's 2 frames of temporal context): the same numbers as the whole clip at once with gradients on (float32
    bit for bit, both trunk layouts, a length that is no multiple of the block, the last block 3 frames), and
    within 1e-5 of a float64 copy; the first and last frames see the stem's zero padding, as in the whole clip."""
    from avspeech.model.frontends import INFERENCE_BLOCK, LipFrontend

    torch.manual_seed(0)
    t = 2 * INFERENCE_BLOCK + 3
    for layout in ("avspeech", "avhubert"):
        fe = LipFrontend(32, (8, 16, 16, 32), layout).eval()
        for m in fe.modules():  # non-trivial running statistics, so the eval-mode norms matter
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 1, t, 88, 88)
        whole = fe(x).detach()  # gradients on: the whole clip at once
        with torch.no_grad():
            blocks = fe(x)
            ref = fe.double()(x.double())
        assert torch.equal(blocks, whole), (blocks - whole).abs().max()
        assert (blocks.double() - ref).abs().max() < 1e-5
        fe.float().train()  # training-mode norms use batch statistics: never by blocks, even without gradients
        whole_model = copy.deepcopy(fe)
        with torch.no_grad():
            trained = fe(x)
            whole_train = whole_model.proj(whole_model._features(x))  # the whole clip at once
        assert torch.equal(trained, whole_train)
