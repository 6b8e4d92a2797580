"""Official AV-HuBERT weights as our modules: the config, the key map, and :func:`load`.

An official file's encoder becomes an :class:`~avspeech.model.encoder.AVEncoder` with ``layout="avhubert"``
(AV-HuBERT's PReLU ResNet trunk, LayerNorm over the concatenated streams, fairseq's single encoder LayerNorm),
whose forward is AV-HuBERT's ``extract_finetune`` in eval mode. The key map (AV-HuBERT's module names at
258fb50 and fairseq's at afc77bdf, on the left):

==========================================================  ==============================================
``feature_extractor_audio.proj``                            ``audio_frontend.proj``
``feature_extractor_video.resnet.frontend3D.{0,1,2}``       ``lip_frontend.stem.{0,1,2}`` (conv, BN, PReLU)
``feature_extractor_video.resnet.trunk.layer{i}.{j}.*``     ``lip_frontend.trunk.{i-1}.{j}.*`` (relu1/relu2
                                                            are ``act1``/``act2``)
``feature_extractor_video.proj``                            ``lip_frontend.proj``
``layer_norm`` / ``post_extract_proj``                      ``fusion.norm`` / ``fusion.out``
``encoder.pos_conv.0.{bias,weight_g,weight_v}``             ``pos.conv.{bias, parametrizations.weight.original0/1}``
``encoder.layers.{n}.self_attn.{q,k,v}_proj``               ``layers.{n}.self_attn.in_proj_*`` (stacked q, k, v)
``encoder.layers.{n}.self_attn.out_proj``                   ``layers.{n}.self_attn.out_proj``
``encoder.layers.{n}.{self_attn_layer_norm,fc1,fc2,         ``layers.{n}.{norm1,linear1,linear2,norm2}``
final_layer_norm}``
``encoder.layer_norm``                                      ``norm_out`` (pre-LN) or ``norm_in`` (post-LN)
``mask_emb`` / ``final_proj`` / ``label_embs_concat``       the pretraining model's ``audio_mask_emb`` /
                                                            ``proj`` / ``cluster_emb``
==========================================================  ==============================================

A fine-tuned file holds the same encoder under ``encoder.w2v_model.``. A seq2seq file's ``decoder.*`` becomes a
:class:`~avspeech.model.avhubert.decoder.Seq2SeqDecoder` (our names are the file's after ``decoder.``) with the
target dictionary and SentencePiece model as a :class:`~avspeech.model.avhubert.vocabulary.TargetVocabulary`; a
CTC file's projection ``encoder.proj.*`` is carried unchanged. Every tensor of the file is one of these; nothing
is silently dropped (:data:`IGNORED` is the documented exception). Loading is strict: a missing, unknown or mis-shaped key is an :class:`InputError` that
lists them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from avspeech.errors import InputError
from avspeech.model.avhubert.container import OfficialFile, read_official
from avspeech.model.config import EncoderConfig

#: tensors of official files not used, and why: none of the encoder's. (BatchNorm's ``num_batches_tracked`` is
#: loaded too; it only matters for BN momentum None, which AV-HuBERT does not use.)
IGNORED: dict[str, str] = {
    "decoder.embed_positions._float_tensor": "fairseq's sinusoidal table keeps a 1-element tensor only to know "
                                             "its device and dtype; the table itself is computed, not stored",
}

ENCODER_PREFIX = {"pretrained": "", "finetuned_seq2seq": "encoder.w2v_model.", "finetuned_ctc": "encoder.w2v_model."}
LIP_WIDTHS = (64, 128, 256, 512)  # AV-HuBERT's ResEncoder (ResNet-18 trunk) is fixed at these widths

# AV-HuBERT config values this layout computes exactly; any other value is refused with the field's name.
_REQUIRED = {
    "modality_fuse": ("concat",),
    "resnet_relu_type": ("prelu",),
    "activation_fn": ("gelu",),
    "sub_encoder_layers": (0,),
    "extractor_mode": ("default",),
}
_FIELD_DEFAULTS = {  # AVHubertConfig defaults, for older files whose cfg lacks a field
    "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
    "activation_fn": "gelu", "dropout": 0.1, "layer_norm_first": False, "conv_pos": 128, "conv_pos_groups": 16,
    "final_dim": 0, "untie_final_proj": False, "logit_temp": 0.1, "resnet_relu_type": "prelu",
    "sub_encoder_layers": 0, "audio_feat_dim": -1, "modality_fuse": "concat", "masking_type": "feature",
    "extractor_mode": "default", "mask_prob_audio": 0.8, "mask_length_audio": 10, "mask_prob_image": 0.3,
    "mask_length_image": 10, "modality_dropout": 0.0, "audio_dropout": 0.0, "label_rate": -1,
}


def pretraining_config(f: OfficialFile) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (model, task) config sections of the pretrained AV-HuBERT inside ``f`` (for a fine-tuned file, its
    ``w2v_args``), with AVHubertConfig's defaults filled in for fields an older file lacks."""
    if f.kind == "pretrained":
        model, task = f.model_cfg, f.task_cfg
    else:
        w2v = f.model_cfg.get("w2v_args")
        if not isinstance(w2v, dict) or not isinstance(w2v.get("model"), dict):
            raise InputError("fine-tuned AV-HuBERT checkpoint without the pretrained model's config "
                             "(cfg['model']['w2v_args']['model']); it cannot be rebuilt", f.path)
        model, task = w2v["model"], w2v.get("task") or f.task_cfg
    return {**_FIELD_DEFAULTS, **model}, dict(task or {})


def _check_fields(m: dict[str, Any], task: dict[str, Any]) -> None:
    """AV-HuBERT's config fields checked under their own names (types, ranges) before anything is built."""
    from avspeech.model import validate as v

    v.positive_int("encoder_layers", m["encoder_layers"], maximum=v.MAX_LAYERS)
    for name in ("encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads", "conv_pos",
                 "conv_pos_groups", "mask_length_audio", "mask_length_image"):
        v.positive_int(name, m[name])
    if m["audio_feat_dim"] != -1:  # -1: AVHubertConfig's default, 26 x stack_order_audio
        v.positive_int("audio_feat_dim", m["audio_feat_dim"])
    v.positive_int("final_dim", m["final_dim"], minimum=0)
    v.positive_int("stack_order_audio", task.get("stack_order_audio", 4))
    for name in ("dropout", "mask_prob_audio", "mask_prob_image", "modality_dropout", "audio_dropout"):
        v.probability(name, m[name])
    v.finite_float("logit_temp", m["logit_temp"], minimum=0.0, open_minimum=True)
    v.boolean("layer_norm_first", m["layer_norm_first"])
    v.boolean("untie_final_proj", m["untie_final_proj"])
    v.choice("masking_type", m["masking_type"], ("input", "feature"))


def encoder_config(f: OfficialFile) -> EncoderConfig:
    """Our :class:`EncoderConfig` for the encoder of an official file. Every field used is checked first
    (under AV-HuBERT's names); a variant this layout does not compute exactly, an invalid value or a size above
    the budget is an :class:`InputError` naming the file, the field and the value."""
    m, task = pretraining_config(f)
    bad = [f"{k}={m.get(k)!r} (supported: {', '.join(map(repr, ok))})" for k, ok in _REQUIRED.items()
           if m.get(k) not in ok]
    if bad:
        raise InputError("AV-HuBERT variant not supported: " + "; ".join(bad), f.path)
    try:
        _check_fields(m, task)
    except ValueError as e:
        raise InputError(f"bad AV-HuBERT config: {e}", f.path) from None
    stack = task.get("stack_order_audio", 4)
    audio_dim = m["audio_feat_dim"] if m["audio_feat_dim"] > 0 else 26 * stack
    if audio_dim != 26 * stack:
        raise InputError(f"audio_feat_dim {audio_dim} is not 26 filterbank bins x stack_order_audio {stack}",
                         f.path)
    if stack != 4:
        raise InputError(f"stack_order_audio {stack} is not supported (4: 100 Hz filterbanks to 25 Hz)", f.path)
    try:
        return EncoderConfig(
            dim=m["encoder_embed_dim"], layers=m["encoder_layers"], heads=m["encoder_attention_heads"],
            ffn=m["encoder_ffn_embed_dim"], dropout=float(m["dropout"]), lip_widths=LIP_WIDTHS,
            audio_dim=audio_dim, pos_conv_kernel=m["conv_pos"], pos_conv_groups=m["conv_pos_groups"],
            fusion="concat", layout="avhubert", norm_first=m["layer_norm_first"], audio_features="avhubert",
            roi_geometry="avhubert")
    except ValueError as e:
        raise InputError(f"bad AV-HuBERT config (encoder_embed_dim, encoder_layers, encoder_attention_heads, "
                         f"encoder_ffn_embed_dim, conv_pos, conv_pos_groups as dim, layers, heads, ffn, "
                         f"pos_conv_kernel, pos_conv_groups): {e}", f.path) from None


@dataclass
class PretrainingParts:
    """What AV-HuBERT's pretraining adds to the encoder, in our names: ``mask_level`` ("input": a 104-dim
    ``audio_mask_emb``; "feature": D-dim), ``proj`` (final_proj) and ``cluster_emb`` (label_embs_concat), each
    None where the file has none (fine-tuned files drop final_proj); the masking and modality-dropout
    settings; ``temperature`` (logit_temp)."""

    mask_level: str
    audio_mask_emb: Tensor | None
    proj_weight: Tensor | None
    proj_bias: Tensor | None
    cluster_emb: Tensor | None
    temperature: float
    mask: dict[str, float] = field(default_factory=dict)

    label_symbols: list[str] = field(default_factory=list)  # the label dictionary, in row order of cluster_emb

    def clusters(self) -> Tensor | None:
        """``cluster_emb`` re-indexed for our labels, where cluster c is the label written as the integer c (the
        k-means label files of AV-HuBERT and of ``avspeech cluster``): row c is the file's row of symbol "c" in
        its label dictionary (fairseq puts its special symbols first). None when the dictionary's symbols are
        not the integers 0 .. K-1 (then the rows have no meaning for integer labels)."""
        if self.cluster_emb is None or len(self.label_symbols) != len(self.cluster_emb):
            return None
        rows = {sym: i for i, sym in enumerate(self.label_symbols)}
        k = sum(1 for sym in rows if sym.isdigit())
        if k == 0 or any(str(c) not in rows for c in range(k)):
            return None
        return self.cluster_emb[[rows[str(c)] for c in range(k)]]

    def state_dict(self) -> dict[str, Tensor]:
        """The keys of :class:`~avspeech.pretrain.objective.MaskedPredictionModel` besides ``encoder.*``."""
        out = {"audio_mask_emb": self.audio_mask_emb, "proj.weight": self.proj_weight,
               "proj.bias": self.proj_bias, "cluster_emb": self.cluster_emb}
        return {k: v for k, v in out.items() if v is not None}


def _block_key(rest: str) -> str:
    return rest.replace("relu1.", "act1.").replace("relu2.", "act2.")


def _map_key(k: str, norm_first: bool) -> str | None:
    """Our AVEncoder key for an official encoder key (without the fine-tuned prefix), None if it is not one."""
    simple = {"feature_extractor_audio.proj.": "audio_frontend.proj.",
              "feature_extractor_video.proj.": "lip_frontend.proj.",
              "layer_norm.": "fusion.norm.", "post_extract_proj.": "fusion.out.",
              "encoder.layer_norm.": "norm_out." if norm_first else "norm_in."}
    for a, b in simple.items():
        if k.startswith(a) and k.count(".") == a.count("."):
            return b + k[len(a):]
    m = re.fullmatch(r"feature_extractor_video\.resnet\.frontend3D\.([012])\.(\w+)", k)
    if m:
        return f"lip_frontend.stem.{m[1]}.{m[2]}"
    m = re.fullmatch(r"feature_extractor_video\.resnet\.trunk\.layer([1-4])\.(\d+)\.(.+)", k)
    if m:
        return f"lip_frontend.trunk.{int(m[1]) - 1}.{m[2]}.{_block_key(m[3])}"
    pos = {"encoder.pos_conv.0.bias": "pos.conv.bias",
           "encoder.pos_conv.0.weight_g": "pos.conv.parametrizations.weight.original0",
           "encoder.pos_conv.0.weight_v": "pos.conv.parametrizations.weight.original1",
           "encoder.pos_conv.0.parametrizations.weight.original0": "pos.conv.parametrizations.weight.original0",
           "encoder.pos_conv.0.parametrizations.weight.original1": "pos.conv.parametrizations.weight.original1"}
    if k in pos:
        return pos[k]
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", k)
    if m:
        n, rest = m[1], m[2]
        sub = {"self_attn.out_proj.": "self_attn.out_proj.", "self_attn_layer_norm.": "norm1.",
               "fc1.": "linear1.", "fc2.": "linear2.", "final_layer_norm.": "norm2."}
        for a, b in sub.items():
            if rest.startswith(a) and rest.count(".") == a.count("."):
                return f"layers.{n}.{b}{rest[len(a):]}"
    return None


def official_names(ours: str, norm_first: bool) -> list[str]:
    """The official key(s) (without the fine-tuned prefix) that our AVEncoder key ``ours`` comes from: the
    inverse of :func:`_map_key` (a stacked q/k/v tensor has three), for error messages in the file's terms."""
    m = re.fullmatch(r"layers\.(\d+)\.self_attn\.in_proj_(weight|bias)", ours)
    if m:
        return [f"encoder.layers.{m[1]}.self_attn.{p}_proj.{m[2]}" for p in "qkv"]
    pos = {"pos.conv.bias": "encoder.pos_conv.0.bias",
           "pos.conv.parametrizations.weight.original0": "encoder.pos_conv.0.weight_g",
           "pos.conv.parametrizations.weight.original1": "encoder.pos_conv.0.weight_v"}
    if ours in pos:
        return [pos[ours]]
    m = re.fullmatch(r"lip_frontend\.stem\.([012])\.(\w+)", ours)
    if m:
        return [f"feature_extractor_video.resnet.frontend3D.{m[1]}.{m[2]}"]
    m = re.fullmatch(r"lip_frontend\.trunk\.(\d)\.(\d+)\.(.+)", ours)
    if m:
        rest = m[3].replace("act1.", "relu1.").replace("act2.", "relu2.")
        return [f"feature_extractor_video.resnet.trunk.layer{int(m[1]) + 1}.{m[2]}.{rest}"]
    m = re.fullmatch(r"layers\.(\d+)\.(norm1|norm2|linear1|linear2|self_attn\.out_proj)\.(\w+)", ours)
    if m:
        sub = {"norm1": "self_attn_layer_norm", "norm2": "final_layer_norm", "linear1": "fc1", "linear2": "fc2"}
        return [f"encoder.layers.{m[1]}.{sub.get(m[2], m[2])}.{m[3]}"]
    simple = {"audio_frontend.proj.": "feature_extractor_audio.proj.", "lip_frontend.proj.":
              "feature_extractor_video.proj.", "fusion.norm.": "layer_norm.", "fusion.out.": "post_extract_proj.",
              ("norm_out." if norm_first else "norm_in."): "encoder.layer_norm."}
    for a, b in simple.items():
        if ours.startswith(a):
            return [b + ours[len(a):]]
    return [ours]


_QKV = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")
_PRETRAIN = ("mask_emb", "final_proj.weight", "final_proj.bias", "label_embs_concat")


def split_state(f: OfficialFile, cfg: EncoderConfig) -> tuple[dict[str, Tensor], dict[str, Tensor],
                                                              dict[str, Tensor]]:
    """(encoder state dict in our names, official pretraining tensors by official name, carried tensors by
    official name). Raises an InputError naming every key that fits nowhere."""
    prefix = ENCODER_PREFIX[f.kind]
    enc: dict[str, Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    pre: dict[str, Tensor] = {}
    carried: dict[str, Tensor] = {}
    unknown = []
    for key, t in f.state.items():
        if key in IGNORED:
            continue
        if not key.startswith(prefix):
            if f.kind != "pretrained" and (key.startswith("decoder.") or key.startswith("encoder.proj.")):
                carried[key] = t
                continue
            unknown.append(key)
            continue
        k = key[len(prefix):]
        if k in _PRETRAIN:
            pre[k] = t
            continue
        m = _QKV.fullmatch(k)
        if m:
            qkv.setdefault((m[1], m[3]), {})[m[2]] = t
            continue
        ours = _map_key(k, cfg.norm_first)
        if ours is None:
            unknown.append(key)
        else:
            enc[ours] = t
    for (n, what), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            absent = [f"{prefix}encoder.layers.{n}.self_attn.{p}_proj.{what}" for p in "qkv" if p not in parts]
            raise InputError(f"the encoder does not fit AV-HuBERT's layout: missing {absent}", f.path)
        if len({tuple(t.shape) for t in parts.values()}) != 1:
            shapes = ", ".join(f"{p}_proj {tuple(parts[p].shape)}" for p in "qkv")
            raise InputError(f"encoder.layers.{n}.self_attn: q/k/v {what}s differ in shape ({shapes})", f.path)
        enc[f"layers.{n}.self_attn.in_proj_{what}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if unknown:
        raise InputError(f"{len(unknown)} tensors of the file fit no part of AV-HuBERT's encoder "
                         f"(an unknown variant?): {sorted(unknown)[:8]}{'...' if len(unknown) > 8 else ''}",
                         f.path)
    return enc, pre, carried


def _load_strict(module: torch.nn.Module, sd: dict[str, Tensor], path: Path, what: str,
                 names=lambda k: [k]) -> None:
    """Load ``sd`` into ``module`` strictly; an InputError lists missing, unexpected and mis-shaped keys by
    ``names(key)`` (the file's own names)."""
    own = module.state_dict()
    missing = sorted(n for k in set(own) - set(sd) for n in names(k))
    extra = sorted(n for k in set(sd) - set(own) for n in names(k))
    shapes = [f"{'/'.join(names(k))}: file {tuple(sd[k].shape)}, expected {tuple(own[k].shape)}" for k in own
              if k in sd and sd[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:6]}{'...' if len(extra) > 6 else ''}")
        if shapes:
            parts.append(f"wrong shapes {shapes[:6]}{'...' if len(shapes) > 6 else ''}")
        raise InputError(f"the {what} does not fit AV-HuBERT's layout as its config describes it: "
                         + "; ".join(parts), path)
    module.load_state_dict(sd, strict=True)


def pretraining_parts(f: OfficialFile, pre: dict[str, Tensor], cfg: EncoderConfig) -> PretrainingParts:
    m, _ = pretraining_config(f)
    level = m.get("masking_type", "feature")
    if level not in ("input", "feature"):
        raise InputError(f"masking_type {level!r} not supported ('input' or 'feature')", f.path)
    emb = pre.get("mask_emb")
    want = cfg.audio_dim if level == "input" else cfg.dim
    if emb is not None and tuple(emb.shape) != (want,):
        raise InputError(f"mask_emb has shape {tuple(emb.shape)}; masking_type {level!r} expects ({want},)", f.path)
    w, b, lab = pre.get("final_proj.weight"), pre.get("final_proj.bias"), pre.get("label_embs_concat")
    if (w is None) != (b is None):
        raise InputError("final_proj has a weight or a bias but not both", f.path)
    if w is not None:
        if w.ndim != 2 or w.shape[1] != cfg.dim or b.shape != (w.shape[0],):
            raise InputError(f"final_proj has shape {tuple(w.shape)} / {tuple(b.shape)}; expected "
                             f"(final_dim x labels, {cfg.dim})", f.path)
        if lab is not None and lab.ndim == 2 and w.shape[0] != lab.shape[1]:
            n = len(f.dictionaries) or 1
            raise InputError(f"final_proj gives {w.shape[0]} dims for {n} label sets of {lab.shape[1]}-dim "
                             "embeddings; only one label set is supported", f.path)
    if lab is not None and lab.ndim != 2:
        raise InputError(f"label_embs_concat has shape {tuple(lab.shape)}, expected (classes, final_dim)", f.path)
    mask = {"audio_prob": float(m["mask_prob_audio"]), "audio_span": m["mask_length_audio"],
            "video_prob": float(m["mask_prob_image"]), "video_span": m["mask_length_image"]}
    md, ad = float(m["modality_dropout"]), float(m["audio_dropout"])
    # AV-HuBERT: with probability md one modality is dropped, the audio with probability ad (else the lips)
    mask.update(p_av=1.0 - md, p_audio=md * (1.0 - ad))
    symbols = f.dictionaries[0] if len(f.dictionaries) == 1 else []
    return PretrainingParts(level, emb, w, b, lab, float(m["logit_temp"]), mask, symbols)


@dataclass
class AVHubert:
    """An official AV-HuBERT checkpoint as our modules: ``encoder`` (:class:`AVEncoder`, eval mode),
    ``config`` (its :class:`EncoderConfig`), ``pretraining`` (:class:`PretrainingParts`), ``decoder`` (the
    fine-tuned seq2seq decoder, eval mode; None for other files) with ``vocabulary`` (its target dictionary and
    SentencePiece model), ``carried`` (tensors of no module here, official names: a CTC file's projection), and
    what the file holds besides (``file``: cfg, dictionaries, tokenizer bytes)."""

    encoder: Any
    config: EncoderConfig
    pretraining: PretrainingParts
    carried: dict[str, Tensor]
    file: OfficialFile
    decoder: Any = None
    vocabulary: Any = None

    @property
    def dictionaries(self) -> list[list[str]]:
        return self.file.dictionaries

    @property
    def target_dictionary(self) -> list[str] | None:
        return self.file.target_dictionary

    @property
    def tokenizer_model(self) -> bytes | None:
        return self.file.tokenizer_model


def from_official(f: OfficialFile, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> AVHubert:
    """:class:`AVHubert` from an already read official file."""
    from avspeech.model.encoder import AVEncoder

    cfg = encoder_config(f)
    enc_sd, pre, carried = split_state(f, cfg)
    encoder = AVEncoder(cfg).to(dtype)  # in the target dtype before loading: a float64 file stays exact
    prefix = ENCODER_PREFIX[f.kind]
    _load_strict(encoder, enc_sd, f.path, "encoder",
                 names=lambda k: [prefix + n for n in official_names(k, cfg.norm_first)])
    parts = pretraining_parts(f, pre, cfg)
    encoder = encoder.to(device=device, dtype=dtype).eval()
    decoder = vocabulary = None
    if f.kind == "finetuned_seq2seq":
        decoder, vocabulary = seq2seq_decoder(f, carried, cfg, dtype)
        decoder = decoder.to(device=device).eval()
        carried = {k: v for k, v in carried.items() if not k.startswith("decoder.")}
    return AVHubert(encoder, cfg, parts, carried, f, decoder, vocabulary)


def seq2seq_decoder(f: OfficialFile, carried: dict[str, Tensor], cfg: EncoderConfig,
                    dtype: torch.dtype = torch.float32):
    """(:class:`Seq2SeqDecoder` loaded strictly from the file's ``decoder.*``, :class:`TargetVocabulary`) of a
    fine-tuned seq2seq file; errors name the file's keys and config fields."""
    from avspeech.model.avhubert.decoder import Seq2SeqDecoder, decoder_config
    from avspeech.model.avhubert.vocabulary import TargetVocabulary

    if f.target_dictionary is None:
        raise InputError("fine-tuned seq2seq checkpoint without its target dictionary "
                         "(task_state['target_dictionary']); its output ids cannot be read", f.path)
    specials = f.target_specials or {}
    emb = carried.get("decoder.embed_tokens.weight")
    if emb is None:
        raise InputError("fine-tuned seq2seq checkpoint without decoder.embed_tokens.weight", f.path)
    if emb.shape[0] != len(f.target_dictionary):
        raise InputError(f"decoder.embed_tokens.weight has {emb.shape[0]} rows but the target dictionary "
                         f"{len(f.target_dictionary)} symbols", f.path)
    dcfg = decoder_config(f.model_cfg, len(f.target_dictionary), specials.get("pad", 1), cfg.dim, f.path)
    decoder = Seq2SeqDecoder(dcfg).to(dtype)
    sd = {k[len("decoder."):]: v for k, v in carried.items() if k.startswith("decoder.") and k not in IGNORED}
    _load_strict(decoder, sd, f.path, "decoder", names=lambda k: ["decoder." + k])
    return decoder, TargetVocabulary(f.target_dictionary, specials, f.tokenizer_model, f.path)


def load(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> AVHubert:
    """An official AV-HuBERT checkpoint (``.pt``), read safely (:func:`read_official`), as our modules: the
    encoder in eval mode, ``dtype`` on ``device``. Errors name the file and what did not fit."""
    return from_official(read_official(path), device, dtype)


CARRIED = "carried.safetensors"
DICTIONARIES = "dictionaries.json"
TOKENIZER = "tokenizer.model"


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def save_converted(m: AVHubert, out: str | Path) -> Path:
    """Write ``m`` as a checkpoint folder of ours (atomically): ``model.safetensors`` (``encoder.*``, plus
    ``audio_mask_emb``/``proj``/``cluster_emb`` where the file has them), ``config.json`` (``kind`` "pretrain"
    for a pretrained file, the encoder config, the masking settings, and under ``avhubert`` the file's name,
    SHA-256, kind and whole config), ``dictionaries.json`` (label and target dictionaries with their special
    indices), ``tokenizer.model`` (the SentencePiece model, fine-tuned files) and ``carried.safetensors`` (tensors of no
    module here, official names). A seq2seq file's decoder is in ``model.safetensors`` under ``decoder.*`` with
    its config under ``decoder`` and the modes it allows under ``modes`` (``load_seq2seq(out)``). The folder loads without the original file:
    ``load_encoder(out)``, ``--init-from out``."""
    import json

    from safetensors.torch import save as save_tensors
    from torch import nn

    from avspeech.model.checkpoint import save_checkpoint
    from avspeech.pretrain.objective import MaskedPredictionModel

    f, p = m.file, m.pretraining
    encoder = m.encoder.float().cpu()
    config: dict[str, Any] = {"encoder": m.config.to_dict(), "mask_level": p.mask_level, "mask": p.mask,
                              "temperature": p.temperature}
    if f.kind == "pretrained" and p.proj_weight is not None and p.cluster_emb is not None:
        clusters = p.clusters()  # row c = label "c" (fairseq's special rows dropped) where the labels are integers
        emb = clusters if clusters is not None else p.cluster_emb
        k, proj_dim = emb.shape
        model = MaskedPredictionModel(encoder, int(k), proj_dim=int(proj_dim), temperature=p.temperature,
                                      mask_level=p.mask_level)
        own = {n: t for n, t in model.state_dict().items() if not n.startswith("encoder.")}
        tensors = {**p.state_dict(), "cluster_emb": emb}
        config["cluster_rows"] = ("label c (the file's rows of the symbols 0 .. K-1)" if clusters is not None
                                  else "the file's label dictionary order")
        if p.audio_mask_emb is None:  # a file without mask_emb keeps a fresh one (reported in the config)
            tensors["audio_mask_emb"] = own["audio_mask_emb"]
        model.load_state_dict(tensors, strict=False)
        config.update(kind="pretrain", num_clusters=int(k), proj_dim=int(proj_dim))
    elif m.decoder is not None:
        from avspeech.recognition.seq2seq import KIND, modes_of

        model = nn.ModuleDict({"encoder": encoder, "decoder": m.decoder.float().cpu()})
        config.update(kind=KIND, decoder=m.decoder.cfg.to_dict(), modes=list(modes_of(f.task_cfg)))
    else:
        model = nn.ModuleDict({"encoder": encoder})
        config.update(kind="avhubert_" + f.kind)
    config["avhubert"] = {"source": f.path.name, "sha256": _sha256(f.path), "kind": f.kind,
                          "has": sorted(p.state_dict()), "cfg": _jsonable(f.cfg), "ignored": f.ignored}
    files = {DICTIONARIES: (json.dumps({
        "dictionaries": f.dictionaries, "dictionary_specials": f.dictionary_specials,
        "target_dictionary": f.target_dictionary, "target_specials": f.target_specials}, indent=1) + "\n"
        ).encode("utf-8")}
    if f.tokenizer_model:
        files[TOKENIZER] = f.tokenizer_model
    if m.carried:
        files[CARRIED] = save_tensors({k: v.contiguous() for k, v in m.carried.items()}, metadata={"format": "pt"})
    return save_checkpoint(out, model, config, files=files)
