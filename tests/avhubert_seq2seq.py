"""Fine-tuned AV-HuBERT seq2seq files for the tests, and an independent float64 reference of their decoder.

- :func:`decoder_shapes` / :func:`decoder_state` give the ``decoder.*`` tensors of AV-HuBERT's TransformerDecoder
  under the official names and shapes (fairseq's MultiheadAttention registers k, v, q, out projections).
- :func:`reference_logits` is the decoder in teacher forcing as plain ``F.*`` calls on that raw state dict
  (fairseq's layer order, pre/post-LN, positions from ``make_positions``, the sinusoidal table in float32),
  written from the official sources, not from ``avspeech``'s module; :func:`reference_greedy` decodes with it.
- :func:`write_finetuned` writes a whole fine-tuned file (tiny encoder + decoder + target dictionary +
  SentencePiece model) in the official container layout (:func:`avhubert_fakes.write_official`).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from avhubert_fakes import spm_model_bytes, write_official
from avhubert_reference import official_config, official_state_dict

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # fairseq Dictionary: bos 0, pad 1, eos 2, unk 3
PAD, EOS = 1, 2

RELEASED = {  # conf/finetune/base_lrs3_433h.yaml's decoder settings (the rest are AVHubertSeq2SeqConfig defaults)
    "decoder_layers": 2, "decoder_dropout": 0.1, "decoder_attention_dropout": 0.0,
    "decoder_activation_dropout": 0.1, "share_decoder_input_output_embed": True, "decoder_normalize_before": True,
}


def decoder_model_cfg(dim: int, **overrides: Any) -> dict[str, Any]:
    """A fine-tuned file's decoder fields (AVHubertSeq2SeqConfig names) at width ``dim``: the released settings
    with small sizes; ``activation_fn`` is absent, as in the real configs."""
    return {**RELEASED, "decoder_embed_dim": dim, "decoder_ffn_embed_dim": 2 * dim, "decoder_attention_heads": 4,
            "decoder_layerdrop": 0.0, "decoder_learned_pos": False, "no_token_positional_embeddings": False,
            "max_target_positions": 64, "no_scale_embedding": True, **overrides}


def decoder_shapes(cfg: dict[str, Any], vocab: int) -> OrderedDict:
    d, f = cfg["decoder_embed_dim"], cfg["decoder_ffn_embed_dim"]
    out: OrderedDict = OrderedDict()
    if not cfg.get("share_decoder_input_output_embed", False):
        out["decoder.embed_out"] = (vocab, d)
    out["decoder.embed_tokens.weight"] = (vocab, d)
    if not cfg.get("no_token_positional_embeddings", False):
        if cfg.get("decoder_learned_pos", False):
            out["decoder.embed_positions.weight"] = (cfg["max_target_positions"] + PAD + 1, d)
        else:
            out["decoder.embed_positions._float_tensor"] = (1,)
    for n in range(cfg["decoder_layers"]):
        p = f"decoder.layers.{n}"
        for att in ("self_attn", "encoder_attn"):
            for q in ("k_proj", "v_proj", "q_proj", "out_proj"):
                out[f"{p}.{att}.{q}.weight"] = (d, d)
                out[f"{p}.{att}.{q}.bias"] = (d,)
            out[f"{p}.{att}_layer_norm.weight"] = (d,)
            out[f"{p}.{att}_layer_norm.bias"] = (d,)
        out[f"{p}.fc1.weight"], out[f"{p}.fc1.bias"] = (f, d), (f,)
        out[f"{p}.fc2.weight"], out[f"{p}.fc2.bias"] = (d, f), (d,)
        out[f"{p}.final_layer_norm.weight"], out[f"{p}.final_layer_norm.bias"] = (d,), (d,)
    if cfg.get("decoder_normalize_before", False):
        out["decoder.layer_norm.weight"], out["decoder.layer_norm.bias"] = (d,), (d,)
    return out


def decoder_state(cfg: dict[str, Any], vocab: int, seed: int = 0, dtype=torch.float64) -> OrderedDict:
    """Random tensors under the official decoder keys; LayerNorm gains in [0.5, 1.5], weights ~ 1/sqrt(fan-in)."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict = OrderedDict()
    for key, shape in decoder_shapes(cfg, vocab).items():
        if key.endswith("_float_tensor"):
            t = torch.zeros(shape)
        elif "layer_norm" in key and key.endswith("weight"):
            t = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
        elif key.endswith("bias"):
            t = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(shape[-1])
        if key == "decoder.embed_tokens.weight" or key == "decoder.embed_positions.weight":
            t[PAD] = 0.0  # fairseq's Embedding init zeroes the padding row
        out[key] = t.to(dtype) if t.is_floating_point() and not key.endswith("_float_tensor") else t
    return out


# ------------------------------------------------------------------------------------------------ reference

def _sinusoid(rows: int, dim: int) -> Tensor:
    """fairseq's SinusoidalPositionalEmbedding.get_embedding, in float32 as fairseq computes it."""
    half = dim // 2
    scale = math.log(10000) / (half - 1)
    inv = torch.exp(torch.arange(half, dtype=torch.float) * -scale)
    ang = torch.arange(rows, dtype=torch.float).unsqueeze(1) * inv.unsqueeze(0)
    emb = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1).view(rows, -1)
    if dim % 2 == 1:
        emb = torch.cat([emb, torch.zeros(rows, 1)], dim=1)
    emb[PAD, :] = 0
    return emb


def _mha(x: Tensor, kv: Tensor, s: dict[str, Tensor], p: str, heads: int, mask: Tensor) -> Tensor:
    """x (U, B, D) queries, kv (S, B, D); mask (B, U, S) True = -inf; fairseq's MultiheadAttention."""
    u, b, d = x.shape
    hd = d // heads
    q = F.linear(x, s[f"{p}.q_proj.weight"], s[f"{p}.q_proj.bias"]) * hd ** -0.5
    k = F.linear(kv, s[f"{p}.k_proj.weight"], s[f"{p}.k_proj.bias"])
    v = F.linear(kv, s[f"{p}.v_proj.weight"], s[f"{p}.v_proj.bias"])
    q = q.contiguous().view(u, b * heads, hd).transpose(0, 1)
    k = k.contiguous().view(-1, b * heads, hd).transpose(0, 1)
    v = v.contiguous().view(-1, b * heads, hd).transpose(0, 1)
    w = torch.bmm(q, k.transpose(1, 2)).view(b, heads, u, -1)
    w = w.masked_fill(mask.unsqueeze(1), float("-inf")).view(b * heads, u, -1)
    a = torch.bmm(F.softmax(w, dim=-1), v).transpose(0, 1).contiguous().view(u, b, d)
    return F.linear(a, s[f"{p}.out_proj.weight"], s[f"{p}.out_proj.bias"])


def _act(name: str):
    return {"relu": F.relu, "gelu": F.gelu}[name]


def reference_logits(state: dict[str, Tensor], cfg: dict[str, Any], prev: Tensor, enc: Tensor,
                     enc_pad: Tensor) -> Tensor:
    """Teacher-forced logits (B, U, V) of the official decoder: ``prev`` (B, U) tokens, ``enc`` (B, T, D) encoder
    output, ``enc_pad`` (B, T) True at padded frames. Float64 throughout (the position table is fairseq's float32)."""
    s = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    d = cfg["decoder_embed_dim"]
    heads = cfg.get("decoder_attention_heads", 4)
    pre = cfg.get("decoder_normalize_before", False)
    act = _act(cfg.get("activation_fn", "relu"))
    scale = 1.0 if cfg.get("no_scale_embedding", True) else math.sqrt(d)
    x = scale * F.embedding(prev, s["embed_tokens.weight"])
    if not cfg.get("no_token_positional_embeddings", False):
        mask = prev.ne(PAD).int()
        pos = (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + PAD
        if cfg.get("decoder_learned_pos", False):
            x = x + F.embedding(pos, s["embed_positions.weight"])
        else:
            table = _sinusoid(cfg.get("max_target_positions", 2048) + PAD + 1, d).to(x.dtype)
            x = x + table.index_select(0, pos.view(-1)).view(*pos.shape, -1)
    x = x.transpose(0, 1)  # (U, B, D)
    u, b = x.shape[:2]
    e = enc.transpose(0, 1)
    causal = torch.triu(torch.ones(u, u, dtype=torch.bool), 1).expand(b, u, u)
    cross = enc_pad[:, None, :].expand(b, u, enc.shape[1])

    def ln(h, name):
        return F.layer_norm(h, (d,), s[f"{name}.weight"], s[f"{name}.bias"], 1e-5)

    for n in range(cfg["decoder_layers"]):
        p = f"layers.{n}"
        for att, kv_of, m in (("self_attn", None, causal), ("encoder_attn", e, cross)):
            r = x
            h = ln(x, f"{p}.{att}_layer_norm") if pre else x
            h = _mha(h, h if kv_of is None else kv_of, s, f"{p}.{att}", heads, m)
            x = r + h
            if not pre:
                x = ln(x, f"{p}.{att}_layer_norm")
        r = x
        h = ln(x, f"{p}.final_layer_norm") if pre else x
        h = F.linear(act(F.linear(h, s[f"{p}.fc1.weight"], s[f"{p}.fc1.bias"])), s[f"{p}.fc2.weight"],
                     s[f"{p}.fc2.bias"])
        x = r + h
        if not pre:
            x = ln(x, f"{p}.final_layer_norm")
    if pre:
        x = ln(x, "layer_norm")
    x = x.transpose(0, 1)
    w = s["embed_tokens.weight"] if cfg.get("share_decoder_input_output_embed", False) else s["embed_out"]
    return torch.matmul(x, w.transpose(0, 1))


def reference_greedy(state, cfg, enc: Tensor, length: int, max_len: int) -> list[int]:
    """Argmax decoding of one utterance with :func:`reference_logits` (whole prefix each step): tokens before eos,
    with pad never chosen and eos not before the first token, up to ``max_len`` tokens."""
    prev = [EOS]
    pad = torch.arange(enc.shape[0]) >= length
    for step in range(max_len):
        lp = reference_logits(state, cfg, torch.tensor([prev]), enc[None], pad[None])[0, -1].log_softmax(-1)
        lp[PAD] = -math.inf
        if step == 0:
            lp[EOS] = -math.inf
        t = int(lp.argmax())
        if t == EOS:
            break
        prev.append(t)
    return prev[1:]


# ------------------------------------------------------------------------------------------------ files

def target_pieces(spm: bytes) -> list[str]:
    """The pieces of a SentencePiece model in its own id order, without its control symbols (as
    AV-HuBERT's gen_subword.py writes dict.wrd.txt from the vocabulary)."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_proto=spm)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())
            if not (sp.is_control(i) or sp.is_unknown(i))]


def finetuned_state(model_cfg: dict[str, Any], dec_cfg: dict[str, Any], vocab: int, seed: int = 0,
                    dtype=torch.float64) -> OrderedDict:
    enc = official_state_dict(model_cfg, seed=seed, dtype=dtype)
    out = OrderedDict((f"encoder.w2v_model.{k}", v) for k, v in enc.items() if not k.startswith("final_proj."))
    out.update(decoder_state(dec_cfg, vocab, seed + 1, dtype))
    return out


def write_finetuned(path, *, modalities=("video",), dec_overrides: dict[str, Any] | None = None,
                    state: dict[str, Tensor] | None = None, spm: bytes | None = None, with_spm: bool = True,
                    seed: int = 0, size: str = "tiny", encoder_overrides: dict[str, Any] | None = None):
    """A fine-tuned seq2seq file at ``path``; returns (model_cfg of the encoder, decoder cfg, target symbols,
    the file's state dict)."""
    model_cfg, task_cfg = official_config(size, **(encoder_overrides or {}))
    spm = spm if spm is not None else spm_model_bytes()
    symbols = SPECIALS + target_pieces(spm)
    dec_cfg = decoder_model_cfg(model_cfg["encoder_embed_dim"], **(dec_overrides or {}))
    if state is None:
        state = finetuned_state(model_cfg, dec_cfg, len(symbols), seed)
    ft = {"w2v_path": "/ckpt/base_vox_iter5.pt", **dec_cfg,
          "w2v_args": {"model": {"_name": "av_hubert", **model_cfg}, "task": task_cfg}}
    task = {**task_cfg, "is_s2s": True, "fine_tuning": True, "labels": ["wrd"], "modalities": list(modalities),
            "tokenizer_bpe_name": "sentencepiece", "tokenizer_bpe_model": "/data/spm1000/spm_unigram1000.model"}
    write_official(path, state, ft, task, kind="finetuned_seq2seq", target_symbols=symbols[4:],
                   spm_model=spm if with_spm else None)
    return model_cfg, dec_cfg, symbols, state
