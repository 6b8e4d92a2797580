"""Our converted AV-HuBERT encoder against an independent float64 reference of ``extract_finetune``
(tests/avhubert_reference.py), and its transformer trunk against torchaudio's wav2vec2 encoder.

Fake official files are written in the official pickle layout (tests/avhubert_fakes.py) from random tensors under
the official names; the file holds float32 (as AV-HuBERT's do), and both sides compute in float64 from those
same float32 values, so the two agree to rounding (~1e-15 relative) and any semantic difference shows as O(1).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avhubert_fakes import write_official
from avhubert_reference import (PRETRAINING_KEYS, expected_parameter_count, fused_features, official_config,
                                official_shapes, official_state_dict, padding_mask, projected_features,
                                reference_features)
from avspeech.model import avhubert
from avspeech.model.avhubert import OfficialFile, encoder_config
from avspeech.model.avhubert.convert import split_state
from avspeech.model.encoder import AVEncoder

T = 6
LENGTHS = torch.tensor([6, 4])
NUM_CLASSES = 13  # one label set: 9 symbols + fairseq's 4 specials
LABELS = [[str(i) for i in range(NUM_CLASSES - 4)]]
TOL = 1e-10  # relative to the largest valid-frame value


def _float32(state):
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def _inputs(seed=0, garbage_padding=False):
    """(audio (B, T, 104), video (B, 1, T, 88, 88)) in float64, zeros at padded frames as AV-HuBERT's collater
    pads; with ``garbage_padding`` the padded frames hold noise instead (what our extract_features must ignore)."""
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(2, T, 104, generator=g, dtype=torch.float64)
    video = torch.randn(2, 1, T, 88, 88, generator=g, dtype=torch.float64)
    if not garbage_padding:
        valid = ~padding_mask(LENGTHS, T)
        audio = audio * valid[..., None]
        video = video * valid[:, None, :, None, None]
    return audio, video


def _write(path, norm_first, masking_type="input", kind="pretrained", seed=0):
    model_cfg, task_cfg = official_config("tiny", layer_norm_first=norm_first, masking_type=masking_type)
    state = _float32(official_state_dict(model_cfg, NUM_CLASSES, seed=seed))
    if kind == "pretrained":
        write_official(path, state, model_cfg, task_cfg, dictionaries=LABELS)
        return state, model_cfg
    # AVHubertSeq2Seq: the pretrained model under encoder.w2v_model. without final_proj
    # (remove_pretraining_modules), the decoder beside it; w2v_args holds the pretraining config
    enc_state = {f"encoder.w2v_model.{k}": v for k, v in state.items() if not k.startswith("final_proj.")}
    from avhubert_seq2seq import decoder_model_cfg, decoder_state

    dec_cfg = decoder_model_cfg(32, decoder_layers=1)
    decoder = dict(decoder_state(dec_cfg, 10, seed + 1, torch.float32))  # 4 specials + the 6 symbols below
    ft_model = {"w2v_path": "/ckpt/base_vox_iter5.pt", **dec_cfg,
                "w2v_args": {"_name": None, "model": {"_name": "av_hubert", **model_cfg},
                             "task": {"_name": "av_hubert_pretraining", **task_cfg}}}
    ft_task = {**task_cfg, "labels": ["wrd"], "fine_tuning": True, "is_s2s": True}
    write_official(path, {**enc_state, **decoder}, ft_model, ft_task, kind=kind, dictionaries=LABELS,
                   target_symbols=["▁the", "▁a", "s", "▁of", "▁to", "▁and"])
    return state, model_cfg, decoder


class Official:
    """A written and loaded fake file: ``state`` (the file's float32 tensors), ``model_cfg``, ``enc`` (our encoder
    in float64), ``m`` (what :func:`avhubert.load` returned), and memoised outputs of both sides on the default
    inputs (the lip front-end is most of the time of this file)."""

    def __init__(self, state, model_cfg, m):
        self.state, self.model_cfg, self.m = state, model_cfg, m
        self.enc = m.encoder.double().eval()
        self._memo = {}

    def _inputs(self, modalities):
        audio, video = _inputs()
        return (audio if modalities in ("both", "audio") else None,
                video if modalities in ("both", "video") else None)

    def ours(self, modalities="both", layer=None):
        key = ("ours", modalities, layer)
        if key not in self._memo:
            with torch.no_grad():
                self._memo[key] = self.enc.extract_features(*self._inputs(modalities), LENGTHS, layer=layer)
        return self._memo[key]

    def reference(self, modalities="both", layer=None, state=None, model_cfg=None):
        key = ("ref", modalities, layer)
        if state is not None or model_cfg is not None:
            return reference_features(state or self.state, model_cfg or self.model_cfg,
                                      *self._inputs(modalities), LENGTHS, output_layer=layer)
        if key not in self._memo:
            self._memo[key] = reference_features(self.state, self.model_cfg, *self._inputs(modalities), LENGTHS,
                                                 output_layer=layer)
        return self._memo[key]


@pytest.fixture(scope="module", params=[True, False], ids=["pre_ln", "post_ln"])
def official(request, tmp_path_factory):
    """A pre-LN and a post-LN file, written and loaded (:class:`Official`)."""
    path = tmp_path_factory.mktemp("avhubert") / "tiny.pt"
    state, model_cfg = _write(path, request.param)
    m = avhubert.load(path)
    assert m.config.norm_first is request.param and m.config.layout == "avhubert"
    return Official(state, model_cfg, m)


def _compare(ours, ref, lengths=LENGTHS):
    valid = ~padding_mask(lengths, ref.shape[1])
    scale = ref[valid].abs().max().item()
    assert scale > 0.1, "reference output is degenerate"
    err = (ours[valid] - ref[valid]).abs().max().item() / scale
    assert err < TOL, f"relative error {err:.3g}"
    assert torch.all(ours[~valid] == 0), "padded output frames of extract_features are zero"
    return err


@pytest.mark.parametrize("modalities,layer", [("both", None), ("both", 1), ("both", 2), ("audio", None),
                                              ("audio", 1), ("audio", 2), ("video", None), ("video", 1)])
def test_extract_features_matches_reference(official, modalities, layer):
    """Padded batch (lengths 6 and 4); audio only / video only (the other modality's features are zeros, before
    the 2D LayerNorm) / both; layer 1, the last layer by number (2) and None."""
    ours = official.ours(modalities, layer)
    assert ours.dtype == torch.float64 and ours.shape == (2, T, official.model_cfg["encoder_embed_dim"])
    _compare(ours, official.reference(modalities, layer))


def test_padded_input_frames_do_not_matter(official):
    """extract_features zeroes padded input frames (the collater's zeros): noise there changes nothing, although
    the 3D stem's 5-frame kernel would carry it into the last valid frames otherwise."""
    noisy_a, noisy_v = _inputs(garbage_padding=True)
    with torch.no_grad():
        ours = official.enc.extract_features(noisy_a, noisy_v, LENGTHS)
    ref = official.reference()
    _compare(ours, ref)
    ref_noisy = reference_features(official.state, official.model_cfg, noisy_a, noisy_v, LENGTHS)
    valid = ~padding_mask(LENGTHS, T)
    assert (ref_noisy[valid] - ref[valid]).abs().max() > 1e-6  # the noise would matter


def test_unpadded_batch_and_last_layer(official):
    """A full-length batch; the last layer asked for by number (no final pre-LN LayerNorm) against None."""
    state, model_cfg, enc = official.state, official.model_cfg, official.enc
    audio, video = _inputs(seed=3)
    full = torch.tensor([T, T])
    n = model_cfg["encoder_layers"]
    with torch.no_grad():
        final = enc.extract_features(audio, video, full)
        by_number = enc.extract_features(audio, None, full, layer=n)
        audio_final = enc.extract_features(audio, None, full)
    _compare(final, reference_features(state, model_cfg, audio, video, full), full)
    _compare(by_number, reference_features(state, model_cfg, audio, None, full, output_layer=n), full)
    differs = (by_number - audio_final).abs().max().item() > 1e-3
    assert differs == bool(model_cfg["layer_norm_first"])  # post-LN: the same tensor


@pytest.mark.parametrize("key", [
    "feature_extractor_video.resnet.frontend3D.1.running_var",
    "feature_extractor_video.resnet.trunk.layer4.1.bn2.running_mean",
    "feature_extractor_video.resnet.trunk.layer2.0.relu2.weight",
    "layer_norm.bias", "encoder.layer_norm.weight", "encoder.pos_conv.0.weight_g",
    "encoder.layers.1.final_layer_norm.bias"])
def test_reference_sees_every_tensor(official, key):
    """The comparison is sensitive: changing one official tensor in the reference breaks the agreement (so a
    tensor mapped to the wrong place, or not used, would not pass unnoticed)."""
    changed = dict(official.state)
    changed[key] = changed[key] * 1.5 + 0.1
    ours, ref = official.ours(), official.reference(state=changed)
    valid = ~padding_mask(LENGTHS, T)
    assert (ours[valid] - ref[valid]).abs().max() / ref[valid].abs().max() > 1e-4


def test_other_norm_placement_disagrees(official):
    """Pre-LN and post-LN are not interchangeable on the same weights (the two fixtures test different paths)."""
    flipped = {**official.model_cfg, "layer_norm_first": not official.model_cfg["layer_norm_first"]}
    ours, ref = official.ours("audio"), official.reference("audio")
    other = official.reference("audio", model_cfg=flipped)
    valid = ~padding_mask(LENGTHS, T)
    assert (ours[valid] - other[valid]).abs().max() > 1e-2 * ref[valid].abs().max()


def test_pretraining_parts_are_the_files_tensors(official):
    state, model_cfg, m = official.state, official.model_cfg, official.m
    p = m.pretraining
    assert p.mask_level == "input" and p.audio_mask_emb.shape == (model_cfg["audio_feat_dim"],)
    assert torch.equal(p.audio_mask_emb, state["mask_emb"])
    assert torch.equal(p.proj_weight, state["final_proj.weight"])
    assert torch.equal(p.proj_bias, state["final_proj.bias"])
    assert torch.equal(p.cluster_emb, state["label_embs_concat"])
    assert p.temperature == model_cfg["logit_temp"]
    assert p.mask["audio_prob"] == model_cfg["mask_prob_audio"]
    assert p.mask["video_span"] == model_cfg["mask_length_image"]
    assert m.carried == {}


def test_feature_masking_file(tmp_path):
    """masking_type='feature': mask_emb is D-dimensional; the encoder is unchanged by it."""
    state, model_cfg = _write(tmp_path / "feat.pt", True, masking_type="feature", seed=5)
    m = avhubert.load(tmp_path / "feat.pt")
    assert m.pretraining.mask_level == "feature"
    assert torch.equal(m.pretraining.audio_mask_emb, state["mask_emb"])
    assert state["mask_emb"].shape == (model_cfg["encoder_embed_dim"],)
    audio, _ = _inputs()
    with torch.no_grad():
        ours = m.encoder.double().extract_features(audio, None, LENGTHS)
    _compare(ours, reference_features(state, model_cfg, audio, None, LENGTHS))


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre_ln", "post_ln"])
def test_finetuned_seq2seq_file(tmp_path, norm_first):
    """A fine-tuned file: the encoder under encoder.w2v_model. (no final_proj), the decoder loaded unchanged."""
    path = tmp_path / "ft.pt"
    state, model_cfg, decoder = _write(path, norm_first, kind="finetuned_seq2seq", seed=7)
    m = avhubert.load(path)
    assert m.file.kind == "finetuned_seq2seq" and m.config.norm_first is norm_first
    assert m.pretraining.proj_weight is None and m.pretraining.proj_bias is None
    assert torch.equal(m.pretraining.audio_mask_emb, state["mask_emb"])
    assert torch.equal(m.pretraining.cluster_emb, state["label_embs_concat"])
    assert not m.carried
    own = m.decoder.state_dict()
    assert {f"decoder.{k}" for k in own} == {k for k in decoder if not k.endswith("_float_tensor")}
    assert all(torch.equal(own[k[len("decoder."):]], v) for k, v in decoder.items() if not k.endswith("_float_tensor"))
    audio, video = _inputs(seed=2)
    layer = None if norm_first else 1
    with torch.no_grad():
        ours = m.encoder.double().extract_features(audio, video, LENGTHS, layer=layer)
    _compare(ours, reference_features(state, model_cfg, audio, video, LENGTHS, output_layer=layer))


# ------------------------------------------------------------------------------------- sizes of the real ones

def _official_file(size, norm_first=True):
    model_cfg, task_cfg = official_config(size, layer_norm_first=norm_first)
    return OfficialFile(path=Path(f"{size}.pt"), cfg={"model": model_cfg, "task": task_cfg}, model_cfg=model_cfg,
                        task_cfg=task_cfg, state={}, kind="pretrained"), model_cfg


@pytest.mark.parametrize("size,expected", [("base", 102_620_288), ("large", 324_622_976)])
def test_parameter_count_of_base_and_large(size, expected):
    """Our encoder built from AV-HuBERT Base's and Large's configs (on the meta device: no memory, no init) has
    exactly the parameters of the official state dict's encoder part (103M and 325M, as the paper gives)."""
    f, _ = _official_file(size)
    with torch.device("meta"):
        enc = AVEncoder(encoder_config(f))
    assert expected_parameter_count(size) == expected
    assert sum(p.numel() for p in enc.parameters()) == expected


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("size", ["base", "large"])
def test_official_shapes_map_onto_our_encoder(size, norm_first):
    """Every official tensor of Base/Large (meta tensors of the official shapes) maps onto a key of our encoder
    with its shape, and every key of ours (parameters and BN buffers) is covered."""
    f, model_cfg = _official_file(size, norm_first)
    f.state = {k: torch.empty(shape, device="meta", dtype=torch.int64 if kind == "count" else torch.float32)
               for k, (shape, kind) in official_shapes(model_cfg, num_classes=504).items()}
    cfg = encoder_config(f)
    enc_sd, pre, carried = split_state(f, cfg)
    with torch.device("meta"):
        own = AVEncoder(cfg).state_dict()
    assert {k: tuple(v.shape) for k, v in enc_sd.items()} == {k: tuple(v.shape) for k, v in own.items()}
    assert set(pre) == set(PRETRAINING_KEYS) and carried == {}


# -------------------------------------------------------------------------------- torchaudio's wav2vec2 trunk

def _torchaudio_encoder(state, model_cfg):
    """torchaudio's wav2vec2 ``Encoder`` (feature projection = AV-HuBERT's layer_norm + post_extract_proj, then
    the transformer) with the file's weights, mapped by torchaudio's own fairseq key map.

    Differences of torchaudio's code, handled here rather than forced: its ``Transformer(layer_norm_first=...)``
    flag means the opposite of fairseq's (``_get_encoder`` builds it with ``not layer_norm_first``: True puts
    ``encoder.layer_norm`` before the layers), so the encoder is built with ``_get_encoder``; its key padding is
    an additive -10000 (not -inf), which underflows to an exact 0 weight in float64 here; padded frames are zeroed
    after the feature projection, as fairseq's ``index_put`` does before ``pos_conv``.
    """
    from torchaudio.models.wav2vec2.components import _get_encoder
    from torchaudio.models.wav2vec2.utils.import_fairseq import _map_key

    d = model_cfg["encoder_embed_dim"]
    enc = _get_encoder(in_features=2 * d, embed_dim=d, dropout_input=0.0, pos_conv_kernel=model_cfg["conv_pos"],
                       pos_conv_groups=model_cfg["conv_pos_groups"], num_layers=model_cfg["encoder_layers"],
                       num_heads=model_cfg["encoder_attention_heads"], attention_dropout=0.0,
                       ff_interm_features=model_cfg["encoder_ffn_embed_dim"], ff_interm_dropout=0.0, dropout=0.0,
                       layer_norm_first=model_cfg["layer_norm_first"], layer_drop=0.0)
    sd = {}
    for k, v in state.items():
        if k.startswith("feature_extractor_") or k in PRETRAINING_KEYS:
            continue
        ours = _map_key(k)
        assert ours is not None and ours.startswith("encoder."), k
        sd[ours[len("encoder."):]] = v
    enc.load_state_dict(sd, strict=True)
    return enc.double().eval()


@pytest.mark.parametrize("layer", [None, 1])
def test_transformer_trunk_matches_torchaudio(official, layer):
    state, model_cfg, enc = official.state, official.model_cfg, official.enc
    ta = _torchaudio_encoder(state, model_cfg)
    audio, video = _inputs(seed=4)
    with torch.no_grad():
        xa, xv = enc.frontend(video, audio, LENGTHS)
        # the per-modality features are the reference's too (independent of torchaudio)
        s64 = {k: (v.double() if v.is_floating_point() else v) for k, v in state.items()}
        fused = fused_features(s64, model_cfg, audio, video)
        valid = ~padding_mask(LENGTHS, T)
        assert (torch.cat([xa, xv], -1) - fused)[valid].abs().max() < TOL * fused.abs().max()
        ours = enc.encode(xa, xv, LENGTHS, output_layer=layer)
        if layer is None:
            theirs = ta(fused, LENGTHS)
        else:
            theirs = ta.extract_features(fused, LENGTHS, num_layers=layer)[-1]
        assert (ta.feature_projection(fused) - projected_features(s64, fused)).abs().max() < 1e-12
    _compare(ours, theirs)
