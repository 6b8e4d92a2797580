"""Fake official AV-HuBERT checkpoints in the exact fairseq container layout, without fairseq.

fairseq's classes are pickled through throwaway modules (``fairseq``, ``fairseq.data``,
``fairseq.data.dictionary``, ``fairseq.data.encoders``, ``fairseq.data.encoders.sentencepiece_bpe``) put into
``sys.modules`` only while ``torch.save`` runs. The ``Dictionary`` carries the attributes fairseq's ``__init__``
and ``add_symbol`` set (fairseq/data/dictionary.py at afc77bdf). The tokenizer is a ``SentencepieceBPE`` whose
``sp`` pickles as ``sentencepiece.SentencePieceProcessor`` with its serialized model as the state, as
sentencepiece < 0.2.1 (the versions AV-HuBERT's files were written with) does; ``spm_pickle="current"`` pickles
a real processor of the installed sentencepiece instead (a dict state with ``model_proto``).
"""
from __future__ import annotations

import functools
import io
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any

import torch

MODEL_NAMES = {"pretrained": "av_hubert", "finetuned_seq2seq": "av_hubert_seq2seq", "finetuned_ctc": "av_hubert_ctc"}
DEFAULT_LABELS = [[str(i) for i in range(8)]]
SPM_TEXT = ["the quick brown fox jumps over the lazy dog", "a speech model reads lips and hears sounds",
            "hello world this is a tiny corpus for testing", "we see the mouth move and we hear the words"]


@functools.lru_cache(maxsize=None)
def spm_model_bytes(vocab_size: int = 40) -> bytes:
    """A real tiny unigram SentencePiece model (serialized proto), trained in memory."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SPM_TEXT * 20), model_writer=out, vocab_size=vocab_size,
                                   model_type="unigram", normalization_rule_name="identity", minloglevel=2)
    return out.getvalue()


def _fairseq_modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in (
        "fairseq", "fairseq.data", "fairseq.data.dictionary", "fairseq.data.encoders",
        "fairseq.data.encoders.sentencepiece_bpe")}

    class Dictionary:
        def __init__(self, *, bos="<s>", pad="<pad>", eos="</s>", unk="<unk>", extra_special_symbols=None):
            self.bos_word, self.unk_word, self.pad_word, self.eos_word = bos, unk, pad, eos
            self.symbols, self.count, self.indices = [], [], {}
            self.bos_index = self.add_symbol(bos)
            self.pad_index = self.add_symbol(pad)
            self.eos_index = self.add_symbol(eos)
            self.unk_index = self.add_symbol(unk)
            for s in extra_special_symbols or ():
                self.add_symbol(s)
            self.nspecial = len(self.symbols)

        def add_symbol(self, word, n=1, overwrite=False):
            if word in self.indices and not overwrite:
                self.count[self.indices[word]] += n
                return self.indices[word]
            self.indices[word] = len(self.symbols)
            self.symbols.append(word)
            self.count.append(n)
            return self.indices[word]

    class SentencepieceBPE:
        def __init__(self, sp):
            self.sp = sp

    Dictionary.__module__, Dictionary.__qualname__ = "fairseq.data.dictionary", "Dictionary"
    SentencepieceBPE.__module__ = "fairseq.data.encoders.sentencepiece_bpe"
    SentencepieceBPE.__qualname__ = "SentencepieceBPE"
    mods["fairseq.data.dictionary"].Dictionary = Dictionary
    mods["fairseq.data.encoders.sentencepiece_bpe"].SentencepieceBPE = SentencepieceBPE
    mods["fairseq"].data = mods["fairseq.data"]
    mods["fairseq.data"].dictionary = mods["fairseq.data.dictionary"]
    mods["fairseq.data"].encoders = mods["fairseq.data.encoders"]
    mods["fairseq.data"].Dictionary = Dictionary
    mods["fairseq.data.encoders"].sentencepiece_bpe = mods["fairseq.data.encoders.sentencepiece_bpe"]
    return mods


def _legacy_sentencepiece_module() -> types.ModuleType:
    mod = types.ModuleType("sentencepiece")

    class SentencePieceProcessor:
        """Pickles like sentencepiece < 0.2.1: ``__getstate__`` returns ``serialized_model_proto()``."""

        def __init__(self, model_proto: bytes):
            self._proto = model_proto

        def serialized_model_proto(self) -> bytes:
            return self._proto

        def __getstate__(self):
            return self.serialized_model_proto()

    SentencePieceProcessor.__module__ = "sentencepiece"
    SentencePieceProcessor.__qualname__ = "SentencePieceProcessor"
    mod.SentencePieceProcessor = SentencePieceProcessor
    return mod


@contextmanager
def _modules(mods: dict[str, types.ModuleType]):
    saved = {name: sys.modules.get(name) for name in mods}
    sys.modules.update(mods)
    try:
        yield mods
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _metrics(num_updates: int) -> OrderedDict:
    """``metrics.state_dict()``: aggregator name -> MetersDict.state_dict(), a list of
    (priority, key, meter class name, meter state) (fairseq/logging/meters.py, metrics.py)."""
    def avg(v, n):
        return {"val": v, "sum": v * n, "count": n, "round": 3}
    train = [(0, "loss", "AverageMeter", avg(2.75, 1200)),
             (10, "accuracy", "AverageMeter", avg(torch.tensor(0.41), 1200)),  # all-reduced logging output
             (50, "wps", "TimeMeter", {"init": 1520.5, "n": 385000, "round": 1}),
             (100, "lr", "AverageMeter", {"val": 0.0005, "sum": 0.0005, "count": 1, "round": None}),
             (800, "wall", "StopwatchMeter", {"sum": 0, "n": 0, "round": 0}),
             (900, "train_wall", "SumMeter", {"sum": 812.3, "round": 0})]
    return OrderedDict([("default", train), ("train", train), ("train_inner", train[:4]),
                        ("valid", [(0, "loss", "AverageMeter", avg(2.31, 300))])])


def _optimizer_state(model_state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """FP16Optimizer.state_dict(): the fp32 Adam's state over the flattened parameters plus loss_scale."""
    n = sum(t.numel() for t in model_state.values() if t.is_floating_point())
    return {"state": {0: {"step": 1000, "exp_avg": torch.zeros(n), "exp_avg_sq": torch.zeros(n)}},
            "param_groups": [{"lr": 0.0005, "betas": (0.9, 0.98), "eps": 1e-06, "weight_decay": 0.01,
                              "amsgrad": False, "params": [0]}],
            "loss_scale": 64.0}


def write_official(path, model_state: dict[str, torch.Tensor], model_cfg: dict[str, Any],
                   task_cfg: dict[str, Any], kind: str = "pretrained",
                   dictionaries: list[list[str]] | None = None, target_symbols: list[str] | None = None,
                   spm_model: bytes | None = None, extra_globals: dict[str, Any] | None = None,
                   spm_pickle: str = "legacy", args: Any = None, with_cfg: bool = True,
                   zip_format: bool = True) -> None:
    """Write ``path`` as fairseq's ``Trainer.save_checkpoint`` does, with AV-HuBERT's task state as
    ``avhubert/misc/fix_state.py`` puts it (fine-tuned files hold the pretraining ``dictionaries`` too).

    ``dictionaries``: the pretraining labels' symbols (fairseq's four specials are added first, as
    ``Dictionary.load`` does); ``target_symbols``: the fine-tuned target dictionary (same); ``spm_model``: the
    serialized SentencePiece model of the seq2seq tokenizer. ``model_cfg["_name"]`` defaults to ``kind``'s
    model name. ``extra_globals``: extra top-level entries (any picklable objects, e.g. a payload that reduces
    to ``os.system``, or numpy scalars). ``args``: the legacy ``args`` entry; ``with_cfg=False`` stores
    ``cfg`` as None (files of older fairseq). ``zip_format=False``: torch's legacy (pre-1.6) file format.
    """
    if dictionaries is None:
        dictionaries = DEFAULT_LABELS
    model_cfg = {"_name": MODEL_NAMES[kind], **model_cfg}
    task_cfg = {"_name": "av_hubert_pretraining", **task_cfg}
    fs = _fairseq_modules()
    mods = dict(fs)
    if spm_model is not None and spm_pickle == "legacy":
        mods["sentencepiece"] = _legacy_sentencepiece_module()
    with _modules(mods):
        Dictionary = fs["fairseq.data.dictionary"].Dictionary

        def dictionary(symbols):
            d = Dictionary()
            for i, s in enumerate(symbols):
                d.add_symbol(s, n=1000 - i)
            return d

        task_state: dict[str, Any] = {"dictionaries": [dictionary(s) for s in dictionaries]}
        if target_symbols is not None:
            task_state["target_dictionary"] = dictionary(target_symbols)
        if spm_model is not None:
            if spm_pickle == "legacy":
                sp = mods["sentencepiece"].SentencePieceProcessor(spm_model)
            elif spm_pickle == "current":
                import sentencepiece
                sp = sentencepiece.SentencePieceProcessor(model_proto=spm_model)
            else:
                raise ValueError(f"spm_pickle must be 'legacy' or 'current', not {spm_pickle!r}")
            task_state["s2s_tokenizer"] = fs["fairseq.data.encoders.sentencepiece_bpe"].SentencepieceBPE(sp)

        state = OrderedDict((k, v.detach().clone()) for k, v in model_state.items())
        state._metadata = OrderedDict([("", {"version": 1})])  # as nn.Module.state_dict() sets it
        finetuned = kind != "pretrained"
        cfg = {
            "_name": None,
            "common": {"_name": None, "fp16": True, "log_interval": 200, "seed": 1337, "user_dir": "avhubert"},
            "distributed_training": {"_name": None, "distributed_world_size": 8, "ddp_backend": "c10d"},
            "checkpoint": {"_name": None, "save_dir": "checkpoints", "no_save_optimizer_state": False,
                           "best_checkpoint_metric": "accuracy" if finetuned else "loss"},
            "model": model_cfg, "task": task_cfg,
            "criterion": {"_name": "label_smoothed_cross_entropy" if finetuned else "av_hubert"},
            "optimizer": {"_name": "adam", "adam_betas": "(0.9,0.98)", "adam_eps": 1e-06, "lr": [0.0005]},
            "lr_scheduler": {"_name": "tri_stage" if finetuned else "polynomial_decay", "lr": [0.0005]},
        }
        obj = {
            "args": args,
            "cfg": cfg if with_cfg else None,
            "model": state,
            "criterion": None,
            "optimizer_history": [{
                "criterion_name": "LabelSmoothedCrossEntropyCriterion" if finetuned else "AVHubertCriterion",
                "optimizer_name": "FP16Optimizer", "lr_scheduler_state": {"best": 2.31}, "num_updates": 1000}],
            "task_state": task_state,
            "extra_state": {"metrics": _metrics(1000), "previous_training_time": 81234.5,
                            "train_iterator": {"version": 2, "epoch": 3, "iterations_in_epoch": 0,
                                               "shuffle": False},
                            "val_loss": 2.31, "best": 2.31},
            "last_optimizer_state": _optimizer_state(model_state),
            **(extra_globals or {}),
        }
        torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
