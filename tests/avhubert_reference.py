"""An independent float64 reference of AV-HuBERT's encoder (``AVHubertModel.extract_finetune`` in eval mode).

Written from the official sources (facebookresearch/av_hubert at 258fb50: ``avhubert/hubert.py``,
``avhubert/resnet.py``, ``avhubert/hubert_dataset.py``; fairseq at afc77bdf:
``fairseq/models/wav2vec/wav2vec2.py``, ``fairseq/modules/multihead_attention.py``, ``same_pad.py``,
``layer_norm.py``, ``gelu.py``) with plain tensor arithmetic and ``torch.nn.functional`` convolutions on a dict
of tensors under the OFFICIAL state-dict names. It imports nothing of avspeech, so it checks our modules rather
than restating them.

Facts of the official code this follows (what a reader of our converter should know):

* ``extract_finetune`` (hubert.py) with its default ``mask=False`` applies no input masking and no feature
  masking, and has no modality dropout at all (that is only in ``forward``, and only in training). A missing
  modality (``source['audio']`` or ``source['video']`` None) gets features ``new_zeros(B, encoder_embed_dim, T)``;
  the zeros are concatenated (audio first, ``modality_fuse='concat'``) *before* the 2D LayerNorm.
* the audio branch is ``SubModel(resnet=None)``: ``proj`` (Linear audio_feat_dim -> D) on ``(B, F, T)``
  transposed; ``sub_encoder_layers=0`` means no per-modality transformer. The video branch is ``ResEncoder``
  (``frontend3D``: Conv3d 1->64 k(5,7,7) s(1,2,2) p(2,3,3) no bias, BN3d, PReLU(64), MaxPool3d((1,3,3),
  (1,2,2),(0,1,1))), then a ResNet-18 trunk (widths fixed at 64/128/256/512, BasicBlock: conv3x3-BN-PReLU
  (``relu1``)-conv3x3-BN, plus the 1x1-conv+BN ``downsample`` shortcut when the shape changes, then PReLU
  (``relu2``) after the add), AdaptiveAvgPool2d(1) per frame, then ``proj`` (Linear 512 -> D).
* ``layer_norm`` (LayerNorm over 2D, eps 1e-5), ``post_extract_proj`` (2D -> D), ``dropout_input`` (identity
  in eval), then fairseq's ``TransformerEncoder(x, padding_mask, layer=output_layer - 1)``.
* ``TransformerEncoder.extract_features``: padded frames of ``x`` set to 0; ``x + GELU(SamePad(pos_conv(x)))``
  (weight norm over ``dim=2``: ``weight = g * v / ||v||`` with the norm over the output and input-channel
  axes for every kernel tap; ``SamePad`` drops the last frame for an even kernel); for post-LN
  (``layer_norm_first=False``) ``encoder.layer_norm`` right after the add; then the layers, breaking after the
  layer whose 0-based index equals ``tgt_layer``. ``TransformerEncoder.forward`` applies ``encoder.layer_norm``
  at the end only for pre-LN and only when ``layer`` is None. So ``output_layer`` is 1-based (``output_layer=k``
  returns layer k's output); ``output_layer=0`` (tgt_layer -1) or one above the depth runs the whole stack
  without the final pre-LN LayerNorm. This reference does that too.
* ``TransformerSentenceEncoderLayer``: pre-LN ``x + attn(LN1 x)``, ``x + fc2(gelu(fc1(LN2 x)))``; post-LN
  ``LN1(x + attn(x))``, ``LN2(x + fc2(gelu(fc1 x)))`` (LN1 = ``self_attn_layer_norm``, LN2 =
  ``final_layer_norm``). Attention: separate q/k/v projections with bias, q scaled by ``head_dim ** -0.5`` after
  its bias, keys at padded frames set to -inf before the softmax, ``out_proj``.
* GELU is the exact (erf) one in both places. fairseq's ``gelu`` computes in float32
  (``F.gelu(x.float()).type_as(x)``); that is the same function, only rounded, so this float64 reference uses the
  erf GELU in float64 throughout.
* the collater pads both streams with zeros (``hubert_dataset.collater_audio``), and the padding mask is True at
  padded frames; ``forward_padding_mask`` is the identity when the features have the input's frame count.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

LN_EPS = 1e-5  # fairseq LayerNorm and nn.LayerNorm defaults
BN_EPS = 1e-5  # nn.BatchNorm2d/3d default
LIP_WIDTHS = (64, 128, 256, 512)  # ResNet(BasicBlock, [2, 2, 2, 2]) in avhubert/resnet.py: fixed widths
STEM_WIDTH = 64  # ResEncoder.frontend_nout
BACKEND_OUT = 512  # ResEncoder.backend_out

SIZES = {
    "tiny": dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
                 conv_pos=8, conv_pos_groups=4, final_dim=16),
    "base": dict(encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072, encoder_attention_heads=12,
                 conv_pos=128, conv_pos_groups=16, final_dim=256),
    "large": dict(encoder_layers=24, encoder_embed_dim=1024, encoder_ffn_embed_dim=4096,
                  encoder_attention_heads=16, conv_pos=128, conv_pos_groups=16, final_dim=256),
}


def official_config(size: str = "tiny", layer_norm_first: bool = True, masking_type: str = "input",
                    **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model_cfg, task_cfg) under AV-HuBERT's field names (AVHubertConfig / AVHubertPretrainingConfig), with the
    values of the official pretraining configs (conf/pretrain/base_*_iter5.yaml) and the sizes of ``size``."""
    model = {
        **SIZES[size],
        "label_rate": 25, "input_modality": "image", "extractor_mode": "default", "activation_fn": "gelu",
        "dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0, "encoder_layerdrop": 0.05,
        "dropout_input": 0.1, "dropout_features": 0.1, "untie_final_proj": True, "layer_norm_first": layer_norm_first,
        "logit_temp": 0.1, "feature_grad_mult": 0.1, "target_glu": False, "skip_masked": False,
        "skip_nomask": False, "mask_length_audio": 10, "mask_prob_audio": 0.8, "mask_length_image": 5,
        "mask_prob_image": 0.3, "mask_selection": "static", "mask_other": 0.0, "no_mask_overlap": False,
        "mask_min_space": 1, "mask_channel_prob": 0.0, "mask_channel_length": 10,
        "resnet_relu_type": "prelu", "resnet_weights": None, "sim_type": "cosine", "sub_encoder_layers": 0,
        "audio_feat_dim": 104, "modality_dropout": 0.5, "audio_dropout": 0.5, "modality_fuse": "concat",
        "selection_type": "same_seq", "masking_type": masking_type,
    }
    if masking_type == "feature":  # apply_feature_mask asserts equal audio and image masking
        model.update(mask_prob_image=model["mask_prob_audio"], mask_length_image=model["mask_length_audio"])
    model.update(overrides)
    task = {"data": "/data/433h_data", "labels": ["km"], "label_dir": "/data/iter5", "label_rate": 25,
            "sample_rate": 25, "normalize": True, "enable_padding": False, "max_sample_size": 500,
            "min_sample_size": 5, "single_target": False, "random_crop": False, "pad_audio": True,
            "stack_order_audio": 4, "skip_verify": False, "image_aug": True, "modalities": ["video", "audio"],
            "is_s2s": False, "fine_tuning": False, "input_modality": "image"}
    return model, task


# --------------------------------------------------------------------------------------------------- shapes

def _linear(out: dict, name: str, n_in: int, n_out: int) -> None:
    out[f"{name}.weight"] = ((n_out, n_in), "w")
    out[f"{name}.bias"] = ((n_out,), "b")


def _norm(out: dict, name: str, n: int) -> None:
    out[f"{name}.weight"] = ((n,), "gamma")
    out[f"{name}.bias"] = ((n,), "b")


def _bn(out: dict, name: str, n: int) -> None:
    _norm(out, name, n)
    out[f"{name}.running_mean"] = ((n,), "mean")
    out[f"{name}.running_var"] = ((n,), "var")
    out[f"{name}.num_batches_tracked"] = ((), "count")


def official_shapes(model_cfg: dict[str, Any], num_classes: int | None = 13, num_label_sets: int = 1,
                    pretraining: bool = True) -> OrderedDict:
    """Official state-dict key -> (shape, kind) of a pretrained ``AVHubertModel`` with ``model_cfg``, in
    ``state_dict()`` order (the root's own parameters ``mask_emb`` and ``label_embs_concat`` first, then the
    submodules in registration order). ``num_classes``: the summed dictionary sizes (``label_embs_concat`` rows; None: no
    dictionaries, no ``label_embs_concat``); ``pretraining=False`` leaves out ``mask_emb``, ``final_proj`` and
    ``label_embs_concat``."""
    d, f = model_cfg["encoder_embed_dim"], model_cfg["encoder_ffn_embed_dim"]
    k, g = model_cfg["conv_pos"], model_cfg["conv_pos_groups"]
    final_dim = model_cfg.get("final_dim", 0) or d
    out: OrderedDict = OrderedDict()
    if pretraining:
        n = model_cfg["audio_feat_dim"] if model_cfg.get("masking_type", "input") == "input" else d
        out["mask_emb"] = ((n,), "uniform")
        if num_classes is not None:
            out["label_embs_concat"] = ((num_classes, final_dim), "uniform")
    _linear(out, "feature_extractor_audio.proj", model_cfg["audio_feat_dim"], d)
    v = "feature_extractor_video.resnet"
    out[f"{v}.frontend3D.0.weight"] = ((STEM_WIDTH, 1, 5, 7, 7), "w")
    _bn(out, f"{v}.frontend3D.1", STEM_WIDTH)
    out[f"{v}.frontend3D.2.weight"] = ((STEM_WIDTH,), "prelu")
    c_in = STEM_WIDTH
    for i, w in enumerate(LIP_WIDTHS, start=1):
        stride = 1 if i == 1 else 2
        for j in range(2):
            p = f"{v}.trunk.layer{i}.{j}"
            cin = c_in if j == 0 else w
            out[f"{p}.conv1.weight"] = ((w, cin, 3, 3), "w")
            _bn(out, f"{p}.bn1", w)
            out[f"{p}.relu1.weight"] = ((w,), "prelu")
            out[f"{p}.relu2.weight"] = ((w,), "prelu")
            out[f"{p}.conv2.weight"] = ((w, w, 3, 3), "w")
            _bn(out, f"{p}.bn2", w)
            if j == 0 and (stride != 1 or cin != w):
                out[f"{p}.downsample.0.weight"] = ((w, cin, 1, 1), "w")
                _bn(out, f"{p}.downsample.1", w)
        c_in = w
    _linear(out, "feature_extractor_video.proj", BACKEND_OUT, d)
    _linear(out, "post_extract_proj", 2 * d, d)
    out["encoder.pos_conv.0.bias"] = ((d,), "b")
    out["encoder.pos_conv.0.weight_g"] = ((1, 1, k), "g")
    out["encoder.pos_conv.0.weight_v"] = ((d, d // g, k), "w")
    for n in range(model_cfg["encoder_layers"]):
        p = f"encoder.layers.{n}"
        for q in "kvq":  # MultiheadAttention registers k_proj, v_proj, q_proj, out_proj
            _linear(out, f"{p}.self_attn.{q}_proj", d, d)
        _linear(out, f"{p}.self_attn.out_proj", d, d)
        _norm(out, f"{p}.self_attn_layer_norm", d)
        _linear(out, f"{p}.fc1", d, f)
        _linear(out, f"{p}.fc2", f, d)
        _norm(out, f"{p}.final_layer_norm", d)
    _norm(out, "encoder.layer_norm", d)
    _norm(out, "layer_norm", 2 * d)
    if pretraining:
        n_proj = final_dim * num_label_sets if model_cfg.get("untie_final_proj") else final_dim
        _linear(out, "final_proj", d, n_proj)
    return out


PRETRAINING_KEYS = ("mask_emb", "final_proj.weight", "final_proj.bias", "label_embs_concat")
_BUFFER_KINDS = ("mean", "var", "count")


def expected_parameter_count(size: str, part: str = "encoder") -> int:
    """Number of parameters of an official AVHubertModel of ``size`` ("tiny", "base", "large") from the
    state-dict shapes: ``part="encoder"`` counts what ``extract_finetune`` uses (no BN running statistics, no
    ``mask_emb``/``final_proj``/``label_embs_concat``); ``"all"`` counts every parameter of the pretrained model
    (one label set of 504 classes: 500 clusters + fairseq's 4 specials)."""
    model_cfg, _ = official_config(size)
    shapes = official_shapes(model_cfg, num_classes=504)
    total = 0
    for key, (shape, kind) in shapes.items():
        if kind in _BUFFER_KINDS or (part == "encoder" and key in PRETRAINING_KEYS):
            continue
        total += math.prod(shape)
    return total


def official_state_dict(model_cfg: dict[str, Any], num_classes: int | None = 13, seed: int = 0,
                        dtype: torch.dtype = torch.float64, num_label_sets: int = 1) -> OrderedDict:
    """Random tensors under exactly the official keys and shapes of a pretrained AVHubertModel state dict.
    Weights are scaled by 1/sqrt(fan-in) so activations stay O(1); LayerNorm/BatchNorm affine parameters, BN
    running statistics and PReLU slopes are random and far from their init values, so a misplaced or skipped
    one shows. ``num_batches_tracked`` is int64, as torch stores it."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict = OrderedDict()
    for key, (shape, kind) in official_shapes(model_cfg, num_classes, num_label_sets).items():
        def u(lo, hi):
            return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)
        if kind == "w":
            fan_in = math.prod(shape[1:])
            t = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
        elif kind == "b":
            t = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif kind == "gamma":
            t = u(0.5, 1.5)
        elif kind == "mean":
            t = 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif kind == "var":
            t = u(0.5, 2.0)
        elif kind == "count":
            out[key] = torch.tensor(12345, dtype=torch.int64)
            continue
        elif kind == "prelu":
            t = u(0.05, 0.5)
        elif kind == "g":
            t = u(0.5, 2.0)
        elif kind == "uniform":
            t = u(0.0, 1.0)
        else:  # pragma: no cover
            raise AssertionError(kind)
        out[key] = t.to(dtype)
    return out


# ------------------------------------------------------------------------------------------------ reference

def _layer_norm(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased variance, as LayerNorm
    return (x - mu) / torch.sqrt(var + LN_EPS) * w + b


def _batch_norm(x: Tensor, s: dict[str, Tensor], p: str) -> Tensor:
    """Eval-mode BatchNorm over channel axis 1 with the running statistics."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = s[f"{p}.running_mean"].view(shape), s[f"{p}.running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + BN_EPS) * s[f"{p}.weight"].view(shape) + s[f"{p}.bias"].view(shape)


def _prelu(x: Tensor, a: Tensor) -> Tensor:
    a = a.view((1, -1) + (1,) * (x.ndim - 2))
    return torch.where(x >= 0, x, a * x)


def _gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _lin(x: Tensor, s: dict[str, Tensor], p: str) -> Tensor:
    return x @ s[f"{p}.weight"].T + s[f"{p}.bias"]


def _block(x: Tensor, s: dict[str, Tensor], p: str, stride: int) -> Tensor:
    y = F.conv2d(x, s[f"{p}.conv1.weight"], stride=stride, padding=1)
    y = _prelu(_batch_norm(y, s, f"{p}.bn1"), s[f"{p}.relu1.weight"])
    y = _batch_norm(F.conv2d(y, s[f"{p}.conv2.weight"], padding=1), s, f"{p}.bn2")
    if f"{p}.downsample.0.weight" in s:
        res = _batch_norm(F.conv2d(x, s[f"{p}.downsample.0.weight"], stride=stride), s, f"{p}.downsample.1")
    else:
        res = x
    return _prelu(y + res, s[f"{p}.relu2.weight"])


def video_features(s: dict[str, Tensor], video: Tensor) -> Tensor:
    """ResEncoder + proj: (B, 1, T, H, W) -> (B, T, D)."""
    r = "feature_extractor_video.resnet"
    x = F.conv3d(video, s[f"{r}.frontend3D.0.weight"], stride=(1, 2, 2), padding=(2, 3, 3))
    x = _prelu(_batch_norm(x, s, f"{r}.frontend3D.1"), s[f"{r}.frontend3D.2.weight"])
    x = F.max_pool3d(x, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
    b, c, t, h, w = x.shape
    x = x.transpose(1, 2).reshape(b * t, c, h, w)
    for i in range(1, 5):
        for j in range(2):
            x = _block(x, s, f"{r}.trunk.layer{i}.{j}", 2 if (i > 1 and j == 0) else 1)
    x = x.mean(dim=(2, 3)).view(b, t, -1)  # AdaptiveAvgPool2d(1)
    return _lin(x, s, "feature_extractor_video.proj")


def audio_features(s: dict[str, Tensor], audio: Tensor) -> Tensor:
    """SubModel(resnet=None): (B, T, F) -> (B, T, D)."""
    return _lin(audio, s, "feature_extractor_audio.proj")


def _attention(x: Tensor, s: dict[str, Tensor], p: str, heads: int, pad: Tensor) -> Tensor:
    b, t, d = x.shape
    hd = d // heads
    q = _lin(x, s, f"{p}.q_proj") * hd ** -0.5
    k, v = _lin(x, s, f"{p}.k_proj"), _lin(x, s, f"{p}.v_proj")
    q, k, v = (z.view(b, t, heads, hd).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hd)
    scores = q @ k.transpose(-1, -2)
    scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
    scores = scores - scores.amax(-1, keepdim=True)
    w = scores.exp()
    w = w / w.sum(-1, keepdim=True)
    y = (w @ v).transpose(1, 2).reshape(b, t, d)
    return _lin(y, s, f"{p}.out_proj")


def _layer(x: Tensor, s: dict[str, Tensor], p: str, heads: int, pad: Tensor, norm_first: bool) -> Tensor:
    ln1 = (s[f"{p}.self_attn_layer_norm.weight"], s[f"{p}.self_attn_layer_norm.bias"])
    ln2 = (s[f"{p}.final_layer_norm.weight"], s[f"{p}.final_layer_norm.bias"])

    def ffn(z):
        return _lin(_gelu(_lin(z, s, f"{p}.fc1")), s, f"{p}.fc2")

    if norm_first:
        x = x + _attention(_layer_norm(x, *ln1), s, f"{p}.self_attn", heads, pad)
        return x + ffn(_layer_norm(x, *ln2))
    x = _layer_norm(x + _attention(x, s, f"{p}.self_attn", heads, pad), *ln1)
    return _layer_norm(x + ffn(x), *ln2)


def pos_conv_weight(s: dict[str, Tensor]) -> Tensor:
    """weight_norm(dim=2): g * v / ||v||, the norm over axes 0 and 1 for every kernel tap."""
    v, g = s["encoder.pos_conv.0.weight_v"], s["encoder.pos_conv.0.weight_g"]
    return g * v / v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()


def transformer(s: dict[str, Tensor], model_cfg: dict[str, Any], x: Tensor, pad: Tensor,
                layer: int | None = None) -> Tensor:
    """fairseq's TransformerEncoder.forward(x, padding_mask=pad, layer=layer) in eval mode (``layer`` 0-based,
    as fairseq's ``tgt_layer``): (B, T, D) -> (B, T, D)."""
    norm_first = bool(model_cfg["layer_norm_first"])
    k, groups = model_cfg["conv_pos"], model_cfg["conv_pos_groups"]
    x = x.masked_fill(pad.unsqueeze(-1), 0.0)
    y = F.conv1d(x.transpose(1, 2), pos_conv_weight(s), s["encoder.pos_conv.0.bias"], padding=k // 2,
                 groups=groups)
    if k % 2 == 0:  # SamePad
        y = y[..., :-1]
    x = x + _gelu(y).transpose(1, 2)
    enc_ln = (s["encoder.layer_norm.weight"], s["encoder.layer_norm.bias"])
    if not norm_first:
        x = _layer_norm(x, *enc_ln)
    for i in range(model_cfg["encoder_layers"]):
        x = _layer(x, s, f"encoder.layers.{i}", model_cfg["encoder_attention_heads"], pad, norm_first)
        if i == layer:
            break
    if norm_first and layer is None:
        x = _layer_norm(x, *enc_ln)
    return x


def fused_features(s: dict[str, Tensor], model_cfg: dict[str, Any], audio: Tensor | None,
                   video: Tensor | None) -> Tensor:
    """The concatenated per-modality features (B, T, 2D), audio first; a missing modality is zeros."""
    d = model_cfg["encoder_embed_dim"]
    fa = audio_features(s, audio) if audio is not None else None
    fv = video_features(s, video) if video is not None else None
    if fa is None:
        fa = fv.new_zeros(fv.shape[0], fv.shape[1], d)
    if fv is None:
        fv = fa.new_zeros(fa.shape[0], fa.shape[1], d)
    return torch.cat([fa, fv], dim=-1)


def projected_features(s: dict[str, Tensor], fused: Tensor) -> Tensor:
    """layer_norm (2D) then post_extract_proj: what enters the transformer."""
    return _lin(_layer_norm(fused, s["layer_norm.weight"], s["layer_norm.bias"]), s, "post_extract_proj")


def padding_mask(lengths: Tensor, t: int) -> Tensor:
    """(B, T) True at padded frames, as AV-HuBERT's collater makes it."""
    return torch.arange(t, device=lengths.device)[None, :] >= lengths[:, None]


def reference_features(state: dict[str, Tensor], model_cfg: dict[str, Any], audio: Tensor | None,
                       video: Tensor | None, lengths: Tensor, output_layer: int | None = None) -> Tensor:
    """``extract_finetune(source={'audio': audio.transpose(1, 2), 'video': video}, padding_mask,
    output_layer=output_layer)[0]`` in eval mode, in float64. ``audio`` (B, T, F) and ``video`` (B, 1, T, H, W)
    as the collater gives them (zeros at padded frames; not zeroed here); ``output_layer`` 1-based or None.
    Returns (B, T, D); padded frames hold whatever fairseq computes there (compare valid frames)."""
    s = {k: (v.double() if v.is_floating_point() else v) for k, v in state.items()}
    audio = audio.double() if audio is not None else None
    video = video.double() if video is not None else None
    if audio is None and video is None:
        raise ValueError("need audio, video or both")
    t = audio.shape[1] if audio is not None else video.shape[2]
    x = projected_features(s, fused_features(s, model_cfg, audio, video))
    layer = None if output_layer is None else output_layer - 1
    return transformer(s, model_cfg, x, padding_mask(lengths, t), layer)
