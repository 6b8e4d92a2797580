"""The container of an official AV-HuBERT checkpoint: a fairseq ``.pt`` file, read without fairseq and without
running anything from it.

fairseq's ``Trainer.state_dict`` (fairseq/trainer.py) writes, with ``torch.save``, a dict of ``args`` (None, or an
``argparse.Namespace`` in files of older fairseq), ``cfg`` (``OmegaConf.to_container`` of the training config:
``cfg["model"]`` holds the fields of AV-HuBERT's model config with ``_name``, ``cfg["task"]`` those of
``AVHubertPretrainingConfig``), ``model`` (the state dict), ``criterion``, ``optimizer_history``, ``task_state``
(the task's :class:`StatefulContainer` contents: ``dictionaries``, a list of fairseq ``Dictionary`` objects for
pretraining; for fine-tuning also ``target_dictionary`` and ``s2s_tokenizer``, a fairseq ``SentencepieceBPE``
whose ``sp`` is a ``sentencepiece.SentencePieceProcessor``), ``extra_state`` (metrics, training time, iterator
position) and, unless disabled, ``last_optimizer_state``.

The file is opened with ``torch.load(weights_only=True)``. The few classes such files pickle besides tensors
and containers are registered under their exact global names as inert stand-ins that only keep the pickled
state (no method of fairseq or sentencepiece runs, and neither needs to be installed); ``argparse.Namespace``,
numpy scalars and dtypes, and ``int`` (the type, pickled by sentencepiece >= 0.2.1) are plain data. Any other
global is refused by torch before anything of the file runs, and reported as an :class:`UnsafeCheckpointError`
that names the file and the refused global.
"""
from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from avspeech.errors import InputError, UnsafeCheckpointError

DICTIONARY = "fairseq.data.dictionary.Dictionary"
SENTENCEPIECE_BPE = "fairseq.data.encoders.sentencepiece_bpe.SentencepieceBPE"
SENTENCEPIECE_PROCESSOR = "sentencepiece.SentencePieceProcessor"

#: AV-HuBERT's registered fairseq models (avhubert/hubert.py, avhubert/hubert_asr.py) and what we call them.
KINDS = {"av_hubert": "pretrained", "av_hubert_seq2seq": "finetuned_seq2seq", "av_hubert_ctc": "finetuned_ctc"}

#: Other fairseq speech models, for saying what a file is when it is not AV-HuBERT.
OTHER_MODELS = {
    "wav2vec2": "a wav2vec 2.0 pretraining checkpoint",
    "wav2vec_ctc": "a fine-tuned wav2vec 2.0 (CTC) checkpoint",
    "wav2vec_seq2seq": "a fine-tuned wav2vec 2.0 (seq2seq) checkpoint",
    "wav2vec": "a wav2vec (1.0) checkpoint",
    "hubert": "an audio-only HuBERT pretraining checkpoint",
    "hubert_ctc": "a fine-tuned audio-only HuBERT (CTC) checkpoint",
}

EXPECTED = ("expected an official AV-HuBERT checkpoint (a fairseq .pt file of model "
            + ", ".join(repr(k) for k in KINDS) + ")")

# Field names of the dataclasses that become cfg["model"] / cfg["task"] (avhubert/hubert.py AVHubertConfig,
# avhubert/hubert_asr.py AVHubertAsrConfig + AVHubertSeq2SeqConfig, avhubert/hubert_pretraining.py
# AVHubertPretrainingConfig): used to group the flat argparse.Namespace of files that carry ``args`` only.
MODEL_FIELDS = (
    "label_rate input_modality extractor_mode encoder_layers encoder_embed_dim encoder_ffn_embed_dim "
    "encoder_attention_heads activation_fn dropout attention_dropout activation_dropout encoder_layerdrop "
    "dropout_input dropout_features final_dim untie_final_proj layer_norm_first conv_feature_layers conv_bias "
    "logit_temp target_glu feature_grad_mult mask_length_audio mask_prob_audio mask_length_image mask_prob_image "
    "mask_selection mask_other no_mask_overlap mask_min_space mask_channel_length mask_channel_prob "
    "mask_channel_selection mask_channel_other no_mask_channel_overlap mask_channel_min_space conv_pos "
    "conv_pos_groups latent_temp skip_masked skip_nomask resnet_relu_type resnet_weights sim_type "
    "sub_encoder_layers audio_feat_dim modality_dropout audio_dropout modality_fuse selection_type masking_type "
    "decoder_embed_dim decoder_ffn_embed_dim decoder_layers decoder_layerdrop decoder_attention_heads "
    "decoder_learned_pos decoder_normalize_before no_token_positional_embeddings decoder_dropout "
    "decoder_attention_dropout decoder_activation_dropout max_target_positions share_decoder_input_output_embed "
    "no_scale_embedding "
    "w2v_path no_pretrained_weights final_dropout apply_mask mask_length mask_prob freeze_finetune_updates "
    "layerdrop normalize data w2v_args"
).split()
TASK_FIELDS = (
    "data labels label_dir label_rate sample_rate normalize enable_padding max_sample_size min_sample_size "
    "max_trim_sample_size single_target random_crop pad_audio pdb stack_order_audio skip_verify image_aug "
    "image_crop_size image_mean image_std modalities is_s2s tokenizer_bpe_name tokenizer_bpe_model noise_wav "
    "noise_prob noise_snr noise_num fine_tuning input_modality"
).split()

_SPECIALS = ("bos", "pad", "eos", "unk")
_AVSPEECH_FOLDER_FILES = ("config.json", "model.safetensors")


class _Pickled:
    """An inert stand-in for a class of fairseq or sentencepiece: unpickling creates it with ``__new__`` and
    hands it the pickled state, which it keeps as ``pickled_state``; it has no other behaviour."""

    global_name = ""

    def __setstate__(self, state: Any) -> None:
        self.pickled_state = state

    def __repr__(self) -> str:
        return f"<pickled {self.global_name}>"


class PickledDictionary(_Pickled):
    """``fairseq.data.dictionary.Dictionary``: state is its ``__dict__`` (symbols, count, indices, *_word,
    *_index, nspecial)."""

    global_name = DICTIONARY


class PickledSentencepieceBPE(_Pickled):
    """``fairseq.data.encoders.sentencepiece_bpe.SentencepieceBPE``: state is ``{"sp": SentencePieceProcessor}``."""

    global_name = SENTENCEPIECE_BPE


class PickledSentencePieceProcessor(_Pickled):
    """``sentencepiece.SentencePieceProcessor``: state is the serialized model proto (bytes; sentencepiece
    < 0.2.1), or a dict holding it under ``model_proto`` (sentencepiece >= 0.2.1)."""

    global_name = SENTENCEPIECE_PROCESSOR


def _numpy_globals() -> list[Any]:
    """numpy scalars and dtypes (a metric or a best loss saved as np.float64): data constructors only."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with torch here
        return []
    if int(np.__version__.split(".")[0]) >= 2:
        from numpy._core.multiarray import scalar
    else:
        from numpy.core.multiarray import scalar
    out: list[Any] = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
                      (np.dtype, "numpy.dtype")]
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float16, np.float32, np.float64):
        cls = type(np.dtype(t))
        if cls is not np.dtype:  # numpy >= 1.25: one dtype class per type, the object torch's BUILD sees
            out.append((cls, f"{cls.__module__}.{cls.__qualname__}"))
    return out


def safe_globals() -> list[Any]:
    """What :func:`read_official` allows besides torch's defaults, as entries for
    ``torch.serialization.safe_globals``."""
    return [
        (PickledDictionary, DICTIONARY),
        (PickledSentencepieceBPE, SENTENCEPIECE_BPE),
        (PickledSentencePieceProcessor, SENTENCEPIECE_PROCESSOR),
        (argparse.Namespace, "argparse.Namespace"),
        (int, "builtins.int"),
        *_numpy_globals(),
    ]


@dataclass
class OfficialFile:
    """What an official AV-HuBERT checkpoint holds, as plain data.

    ``kind`` is ``"pretrained"``, ``"finetuned_seq2seq"`` or ``"finetuned_ctc"``; ``cfg`` the stored config
    (from ``args`` grouped into ``model``/``task`` by field name when the file has no ``cfg``; the whole
    Namespace is then under ``cfg["args"]``); ``dictionaries`` the symbols of the pretraining labels'
    dictionaries in id order (the special symbols included, as stored) with their special indices in
    ``dictionary_specials`` (``{"bos": 0, "pad": 1, "eos": 2, "unk": 3, "nspecial": 4}`` for fairseq's defaults);
    ``target_dictionary``/``target_specials`` the same for the fine-tuned target dictionary;
    ``tokenizer_model`` the serialized SentencePiece model of the seq2seq tokenizer; ``ignored`` the parts of
    the file not read (optimizer state, metrics, ...).
    """

    path: Path
    cfg: dict[str, Any]
    model_cfg: dict[str, Any]
    task_cfg: dict[str, Any]
    state: dict[str, torch.Tensor] = field(repr=False)
    kind: str
    dictionaries: list[list[str]] = field(default_factory=list, repr=False)
    dictionary_specials: list[dict[str, int]] = field(default_factory=list, repr=False)
    target_dictionary: list[str] | None = field(default=None, repr=False)
    target_specials: dict[str, int] | None = None
    tokenizer_model: bytes | None = field(default=None, repr=False)
    ignored: list[str] = field(default_factory=list)

    @property
    def model_name(self) -> str:
        return self.model_cfg["_name"]


def _torch_legacy_magic() -> bytes:
    # torch.save's legacy (non-zip) format starts with its magic number pickled at protocol 2
    return pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)


def _head(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _is_torch_file_head(head: bytes) -> bool:
    return head.startswith(b"PK\x03\x04") or head.startswith(_torch_legacy_magic())


def is_official_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a file written by ``torch.save`` (zip or legacy format), as official AV-HuBERT
    checkpoints are; our checkpoints are folders. Reads a few bytes, never raises. A file that is not one
    (say, a text file named .pt) is best still handed to :func:`read_official`, which says what it is."""
    p = Path(path)
    try:
        return p.is_file() and _is_torch_file_head(_head(p))
    except OSError:
        return False


def _describe_head(head: bytes) -> str:
    if not head:
        return "an empty file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"a file of another format (starts with bytes {head[:8]!r})"
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        first = text.splitlines()[0] if text.splitlines() else text
        return f"a text file (starts with {first[:40]!r})"
    return f"a file of another format (starts with bytes {head[:8]!r})"


def _check_path(p: Path) -> None:
    if not p.exists():
        raise InputError(f"file not found; {EXPECTED}", p)
    if p.is_dir():
        if any((p / name).is_file() for name in _AVSPEECH_FOLDER_FILES):
            raise InputError("this is an avspeech checkpoint folder, not an official AV-HuBERT file: "
                             "pass the folder as --checkpoint directly, it needs no conversion", p)
        raise InputError(f"is a folder; {EXPECTED}", p)
    head = _head(p)
    if not _is_torch_file_head(head):
        raise InputError(f"not a PyTorch checkpoint: it is {_describe_head(head)}; {EXPECTED}", p)


_REFUSED_PATTERNS = (
    r"GLOBAL (\S+) was not an allowed global",
    r"unsupported GLOBAL (\S+) whose module",
    r"reduce for unrecognized function (.+?)(?: which belongs|$)",
    r"allowlisted via `add_safe_globals` but got (.+?)$",
)


def _weights_unpickler_message(message: str) -> str:
    """The unpickler's own words: torch wraps them in advice (including re-loading with weights_only=False,
    which we never do) and a link to its documentation."""
    m = re.search(r"WeightsUnpickler error: (.*?)(?:\n\nCheck the documentation|$)", message, re.S)
    if m:
        text = m.group(1)
    else:
        parts = [t for t in message.split("\n\n") if t.strip() and not t.startswith("Check the documentation")
                 and not t.startswith("Weights only load failed")]
        text = parts[-1] if parts else message.splitlines()[0]
    return " ".join(text.split())


def _refused_globals(p: Path, message: str) -> list[str]:
    found: list[str] = []
    for pattern in _REFUSED_PATTERNS:
        found += [g.strip() for g in re.findall(pattern, message, re.M)]
    try:  # a static listing of every global the pickle names that is not allowed (zip files only)
        found += torch.serialization.get_unsafe_globals_in_checkpoint(str(p))
    except Exception:  # legacy format, or a pickle the static reader does not follow: keep what torch said
        pass
    found = set(found)  # torch's message may name "print" where the static listing says "builtins.print"
    return sorted(g for g in found if not any(o.endswith("." + g) for o in found))


def _load(p: Path, map_location: Any) -> Any:
    with torch.serialization.safe_globals(safe_globals()):
        try:
            return torch.load(p, map_location=map_location, weights_only=True)
        except Exception as e:
            raise torch_load_error(p, e, "an AV-HuBERT checkpoint holds (tensors, containers, fairseq Dictionary "
                                   "and SentencepieceBPE, sentencepiece model, argparse.Namespace, numpy "
                                   "scalars)") from None


def torch_load_error(p: str | Path, e: Exception, holds: str) -> Exception:
    """What ``torch.load(p, weights_only=True)`` failing with ``e`` means, for a file that should hold ``holds``:
    :class:`UnsafeCheckpointError` naming the globals the file pickles, else :class:`InputError` (not a
    PyTorch file, or damaged), in our words (torch's advice includes loading with weights_only=False, which we
    never do). Other errors are returned unchanged."""
    p = Path(p)
    try:
        head = _head(p)
    except OSError:
        head = b"PK\x03\x04"
    if not _is_torch_file_head(head):
        return InputError(f"not a PyTorch file: it is {_describe_head(head)}", p)
    if isinstance(e, pickle.UnpicklingError):
        refused = _refused_globals(p, str(e))
        if refused:
            return UnsafeCheckpointError(
                f"refused to load: the file pickles {', '.join(refused)}, which is none of the data {holds}; "
                "unpickling it could run code, so nothing of the file was run", p, refused)
        detail = _weights_unpickler_message(str(e))
        return InputError(f"cannot be unpickled: the file is damaged or truncated ({detail})", p)
    if isinstance(e, (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, TypeError, AttributeError,
                      KeyError, IndexError)):
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return InputError(f"cannot be read as a PyTorch checkpoint: the file is damaged or truncated "
                          f"({type(e).__name__}: {first})", p)
    return e


def _cfg_from_args(ns: argparse.Namespace) -> dict[str, Any]:
    """fairseq's flat ``args`` grouped into the ``cfg`` shape by the dataclasses' field names."""
    d = vars(ns)
    model = {"_name": d.get("_name", d.get("arch"))}
    model.update({k: _plain(d[k]) for k in MODEL_FIELDS if k in d})
    task = {"_name": d.get("task")}
    task.update({k: _plain(d[k]) for k in TASK_FIELDS if k in d})
    return {"model": model, "task": task, "args": {k: _plain(v) for k, v in d.items()}}


def _plain(x: Any) -> Any:
    if isinstance(x, argparse.Namespace):
        return _cfg_from_args(x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


def _not_official(p: Path, raw: Any) -> InputError:
    if not isinstance(raw, dict):
        return InputError(f"holds a {type(raw).__name__}, not a fairseq checkpoint dict; {EXPECTED}", p)
    if raw and all(torch.is_tensor(v) for v in raw.values()):
        return InputError(f"holds a plain state dict ({len(raw)} tensors) without fairseq's 'cfg' and 'model' "
                          f"entries; {EXPECTED}", p)
    keys = sorted(map(str, raw))
    return InputError(f"holds a dict with keys {keys[:8]}{'...' if len(keys) > 8 else ''} but not fairseq's "
                      f"'model' and 'cfg' (or 'args'); {EXPECTED}", p)


def _symbols(p: Path, where: str, d: Any) -> tuple[list[str], dict[str, int]]:
    if not isinstance(d, PickledDictionary):
        raise InputError(f"{where} is a {type(d).__name__}, expected a fairseq Dictionary", p)
    st = d.pickled_state
    syms = st.get("symbols") if isinstance(st, dict) else None
    if not isinstance(syms, list) or not all(isinstance(s, str) for s in syms):
        raise InputError(f"{where}: fairseq Dictionary without a list of symbols", p)
    specials = {}
    for name in (*(f"{s}_index" for s in _SPECIALS), "nspecial"):
        v = st.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            if name != "nspecial" and not 0 <= v < len(syms):
                raise InputError(f"{where}: {name} {v} is outside its {len(syms)} symbols", p)
            specials[name.removesuffix("_index")] = v
    return list(syms), specials


def _tokenizer_bytes(p: Path, tok: Any) -> bytes:
    where = "task_state['s2s_tokenizer']"
    if not isinstance(tok, PickledSentencepieceBPE):
        raise InputError(f"{where} is a {type(tok).__name__}, expected fairseq's SentencepieceBPE", p)
    st = tok.pickled_state
    sp = st.get("sp") if isinstance(st, dict) else None
    if not isinstance(sp, PickledSentencePieceProcessor):
        raise InputError(f"{where} has no sentencepiece.SentencePieceProcessor 'sp' (got {type(sp).__name__})", p)
    proto = sp.pickled_state
    if isinstance(proto, dict):
        proto = proto.get("model_proto")
    if isinstance(proto, (bytearray, memoryview)):
        proto = bytes(proto)
    if not isinstance(proto, bytes) or not proto:
        raise InputError(f"{where}: the SentencePieceProcessor holds no serialized model "
                         f"(got {type(proto).__name__})", p)
    return proto


def read_official(path: str | Path, map_location: Any = "cpu") -> OfficialFile:
    """Read an official AV-HuBERT checkpoint (fairseq ``.pt``) as plain data; nothing of the file runs.

    Raises :class:`InputError` naming the file for a missing, truncated or non-PyTorch file, a plain state
    dict, a fairseq file of another model, or one of our checkpoint folders; :class:`UnsafeCheckpointError`
    (an InputError) for a file that pickles any other global.
    """
    p = Path(path)
    _check_path(p)
    raw = _load(p, map_location)
    if not isinstance(raw, dict) or "model" not in raw or (raw.get("cfg") is None and raw.get("args") is None):
        raise _not_official(p, raw)

    if raw.get("cfg") is not None:
        if not isinstance(raw["cfg"], dict):
            raise InputError(f"'cfg' is a {type(raw['cfg']).__name__}, expected the config as a dict; {EXPECTED}", p)
        cfg, used = _plain(raw["cfg"]), {"cfg"}
    else:
        if not isinstance(raw["args"], argparse.Namespace):
            raise InputError(f"'args' is a {type(raw['args']).__name__}, expected an argparse.Namespace; "
                             f"{EXPECTED}", p)
        cfg, used = _cfg_from_args(raw["args"]), {"args"}
    model_cfg, task_cfg = cfg.get("model"), cfg.get("task") or {}
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("_name"), str):
        raise InputError(f"fairseq checkpoint without a model name (cfg['model']['_name']); {EXPECTED}", p)
    if not isinstance(task_cfg, dict):
        raise InputError(f"cfg['task'] is a {type(task_cfg).__name__}, expected a dict", p)
    name = model_cfg["_name"]
    if name not in KINDS:
        what = OTHER_MODELS.get(name, "a fairseq checkpoint of another model")
        raise InputError(f"this is {what} (fairseq model {name!r}, task {task_cfg.get('_name')!r}), "
                         f"not AV-HuBERT; {EXPECTED}", p)

    model = raw["model"]
    if not isinstance(model, dict):
        raise InputError(f"'model' is a {type(model).__name__}, expected a state dict of tensors", p)
    bad = [k for k, v in model.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise InputError(f"'model' holds entries that are not tensors: {bad[:5]}", p)

    task_state = raw.get("task_state") or {}
    if not isinstance(task_state, dict):
        raise InputError(f"'task_state' is a {type(task_state).__name__}, expected a dict", p)
    dictionaries, dictionary_specials = [], []
    dicts = task_state.get("dictionaries")
    if dicts is not None:
        if not isinstance(dicts, list):
            raise InputError(f"task_state['dictionaries'] is a {type(dicts).__name__}, expected a list", p)
        for i, d in enumerate(dicts):
            syms, specials = _symbols(p, f"task_state['dictionaries'][{i}]", d)
            dictionaries.append(syms)
            dictionary_specials.append(specials)
    target, target_specials = None, None
    if task_state.get("target_dictionary") is not None:
        target, target_specials = _symbols(p, "task_state['target_dictionary']", task_state["target_dictionary"])
    tokenizer = None
    if task_state.get("s2s_tokenizer") is not None:
        tokenizer = _tokenizer_bytes(p, task_state["s2s_tokenizer"])

    used |= {"model", "task_state"}
    ignored = sorted(str(k) for k in raw if k not in used and not (k == "args" and raw[k] is None))
    ignored += sorted(f"task_state[{k!r}]" for k in task_state
                      if k not in ("dictionaries", "target_dictionary", "s2s_tokenizer"))
    return OfficialFile(path=p, cfg=cfg, model_cfg=model_cfg, task_cfg=task_cfg, state=dict(model),
                        kind=KINDS[name], dictionaries=dictionaries, dictionary_specials=dictionary_specials,
                        target_dictionary=target, target_specials=target_specials, tokenizer_model=tokenizer,
                        ignored=ignored)
