"""Reading official AV-HuBERT checkpoint files (fairseq containers) without fairseq and without running code."""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import pickle
import sys

import numpy as np
import pytest
import torch

from avhubert_fakes import spm_model_bytes, write_official
from avspeech.errors import InputError, UnsafeCheckpointError
from avspeech.model.avhubert import is_official_checkpoint, read_official
from avspeech.model.checkpoint import save_checkpoint

MODEL_CFG = {"encoder_layers": 2, "encoder_embed_dim": 16, "layer_norm_first": True, "masking_type": "input",
             "audio_feat_dim": 104, "final_dim": 8, "untie_final_proj": True}
TASK_CFG = {"labels": ["km"], "label_rate": 25, "fine_tuning": False, "stack_order_audio": 4}
LABELS = [[str(i) for i in range(12)], [str(i) for i in range(5)]]


def _state():
    g = torch.Generator().manual_seed(0)
    return {"feature_extractor_audio.proj.weight": torch.randn(16, 104, generator=g),
            "feature_extractor_audio.proj.bias": torch.randn(16, generator=g),
            "encoder.layers.0.self_attn.k_proj.weight": torch.randn(16, 16, generator=g),
            "label_embs_concat": torch.randn(17, 8, generator=g)}


def _fine_tuned(path, **kw):
    state = _state()
    task = {**TASK_CFG, "labels": ["wrd"], "fine_tuning": True, "is_s2s": True,
            "tokenizer_bpe_name": "sentencepiece", "tokenizer_bpe_model": "/data/spm1000/spm_unigram1000.model"}
    model = {"w2v_path": "/ckpt/base_lrs3_iter5.pt", "decoder_layers": 2,
             "w2v_args": {"_name": None, "model": {"_name": "av_hubert", **MODEL_CFG},
                          "task": {"_name": "av_hubert_pretraining", **TASK_CFG}}}
    write_official(path, state, model, task, kind="finetuned_seq2seq", dictionaries=LABELS[:1],
                   target_symbols=["▁the", "▁a", "s", "▁of"], spm_model=spm_model_bytes(), **kw)
    return state, model, task


def _message(excinfo) -> str:
    return str(excinfo.value)


def test_pretrained_round_trip(tmp_path):
    path = tmp_path / "base_lrs3_iter5.pt"
    state = _state()
    write_official(path, state, MODEL_CFG, TASK_CFG, dictionaries=LABELS)
    assert is_official_checkpoint(path)
    got = read_official(path)
    assert got.kind == "pretrained" and got.model_name == "av_hubert" and got.path == path
    assert got.model_cfg == {"_name": "av_hubert", **MODEL_CFG}
    assert got.task_cfg == {"_name": "av_hubert_pretraining", **TASK_CFG}
    assert got.cfg["model"] is got.model_cfg and got.cfg["task"] is got.task_cfg
    assert got.cfg["common"]["fp16"] is True
    assert got.state.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(got.state[k], v) and got.state[k].dtype == v.dtype
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    assert got.dictionaries == [specials + LABELS[0], specials + LABELS[1]]
    assert got.dictionary_specials == [{"bos": 0, "pad": 1, "eos": 2, "unk": 3, "nspecial": 4}] * 2
    assert got.target_dictionary is None and got.target_specials is None and got.tokenizer_model is None
    assert got.ignored == ["criterion", "extra_state", "last_optimizer_state", "optimizer_history"]


@pytest.mark.parametrize("spm_pickle", ["legacy", "current"])
def test_finetuned_round_trip_with_tokenizer(tmp_path, spm_pickle):
    import sentencepiece

    path = tmp_path / "large_vox_433h.pt"
    state, model, task = _fine_tuned(path, spm_pickle=spm_pickle)
    got = read_official(path)
    assert got.kind == "finetuned_seq2seq"
    assert got.model_cfg == {"_name": "av_hubert_seq2seq", **model}
    assert got.model_cfg["w2v_args"]["model"]["encoder_layers"] == 2
    assert got.task_cfg["labels"] == ["wrd"]
    assert all(torch.equal(got.state[k], v) for k, v in state.items())
    assert got.target_dictionary == ["<s>", "<pad>", "</s>", "<unk>", "▁the", "▁a", "s", "▁of"]
    assert got.target_specials == {"bos": 0, "pad": 1, "eos": 2, "unk": 3, "nspecial": 4}
    assert got.dictionaries == [["<s>", "<pad>", "</s>", "<unk>"] + LABELS[0]]
    assert got.tokenizer_model == spm_model_bytes()
    sp = sentencepiece.SentencePieceProcessor(model_proto=got.tokenizer_model)
    pieces = sp.encode("hello world", out_type=str)
    assert pieces and "".join(pieces).replace("▁", " ").strip() == "hello world"


def test_ctc_kind(tmp_path):
    path = tmp_path / "ctc.pt"
    write_official(path, _state(), {"w2v_path": "x.pt"}, {"fine_tuning": True}, kind="finetuned_ctc",
                   target_symbols=["|", "E", "T"])
    got = read_official(path)
    assert got.kind == "finetuned_ctc" and got.target_dictionary[4:] == ["|", "E", "T"]
    assert got.tokenizer_model is None


def test_args_only_file_is_grouped_by_field_names(tmp_path):
    path = tmp_path / "old.pt"
    args = argparse.Namespace(arch="av_hubert", task="av_hubert_pretraining", encoder_layers=3,
                              encoder_embed_dim=16, labels=["km"], label_rate=25, lr=[0.001], seed=1)
    write_official(path, _state(), {}, {}, args=args, with_cfg=False)
    got = read_official(path)
    assert got.kind == "pretrained"
    assert got.model_cfg == {"_name": "av_hubert", "encoder_layers": 3, "encoder_embed_dim": 16,
                             "label_rate": 25}
    assert got.task_cfg == {"_name": "av_hubert_pretraining", "labels": ["km"], "label_rate": 25}
    assert got.cfg["args"]["seed"] == 1 and "args" not in got.ignored


def test_numpy_scalars_in_extra_state_are_data(tmp_path):
    path = tmp_path / "np.pt"
    write_official(path, _state(), MODEL_CFG, TASK_CFG,
                   extra_globals={"extra_best": {"best": np.float64(2.5), "n": np.int64(3)}})
    got = read_official(path)
    assert got.kind == "pretrained" and "extra_best" in got.ignored


class _System:
    """Pickles as a call of os.system (posix.system) with a command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_code_in_the_file_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    # the payload is live: unpickled without restrictions it runs the command
    pickle.loads(pickle.dumps(_System(tmp_path / "live")))
    assert (tmp_path / "live").exists()

    path = tmp_path / "evil.pt"
    write_official(path, _state(), MODEL_CFG, TASK_CFG, extra_globals={"extra_state_hook": _System(marker)})
    with pytest.raises(UnsafeCheckpointError) as e:
        read_official(path)
    assert isinstance(e.value, ValueError) and isinstance(e.value, InputError)
    assert str(path) in _message(e) and "system" in _message(e)
    assert e.value.refused == [f"{os.system.__module__}.system"]
    assert "nothing of the file was run" in _message(e) and "weights_only" not in _message(e)
    assert not marker.exists()


def test_legacy_torch_format(tmp_path):
    """torch's pre-1.6 format: read the same; a refused global is named from torch's message (the static
    listing reads zip files only)."""
    path, evil, marker = tmp_path / "legacy.pt", tmp_path / "legacy_evil.pt", tmp_path / "ran"
    write_official(path, _state(), MODEL_CFG, TASK_CFG, zip_format=False)
    assert path.read_bytes()[:2] == b"\x80\x02" and is_official_checkpoint(path)
    assert read_official(path).dictionaries[0][4:] == [str(i) for i in range(8)]
    write_official(evil, _state(), MODEL_CFG, TASK_CFG, zip_format=False, extra_globals={"x": _System(marker)})
    with pytest.raises(UnsafeCheckpointError) as e:
        read_official(evil)
    assert e.value.refused == [f"{os.system.__module__}.system"] and str(evil) in _message(e)
    assert not marker.exists()


def test_unknown_class_is_refused_by_name(tmp_path):
    path = tmp_path / "other.pt"
    write_official(path, _state(), MODEL_CFG, TASK_CFG, extra_globals={"thing": datetime.timedelta(days=1)})
    with pytest.raises(UnsafeCheckpointError) as e:
        read_official(path)
    assert e.value.refused == ["datetime.timedelta"] and str(path) in _message(e)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(InputError) as e:
        read_official(path)
    assert str(path) in _message(e) and "not found" in _message(e) and "AV-HuBERT" in _message(e)
    assert not is_official_checkpoint(path)


def test_truncated_file(tmp_path):
    good, path = tmp_path / "good.pt", tmp_path / "cut.pt"
    write_official(good, _state(), MODEL_CFG, TASK_CFG)
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert is_official_checkpoint(path)  # still looks like one; reading says what is wrong
    with pytest.raises(InputError) as e:
        read_official(path)
    assert str(path) in _message(e) and "truncated" in _message(e)
    assert not isinstance(e.value, UnsafeCheckpointError)


def test_text_file_named_pt(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    assert not is_official_checkpoint(path)
    with pytest.raises(InputError) as e:
        read_official(path)
    assert str(path) in _message(e) and "not a PyTorch checkpoint" in _message(e)
    assert "text file" in _message(e) and "git-lfs" in _message(e) and "AV-HuBERT" in _message(e)


def test_plain_state_dict(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(_state(), path)
    assert is_official_checkpoint(path)
    with pytest.raises(InputError) as e:
        read_official(path)
    assert str(path) in _message(e) and "plain state dict (4 tensors)" in _message(e)
    assert "AV-HuBERT" in _message(e)


@pytest.mark.parametrize("name,task,what", [
    ("wav2vec2", "audio_pretraining", "wav2vec 2.0 pretraining"),
    ("hubert", "hubert_pretraining", "audio-only HuBERT"),
    ("wav2vec_ctc", "audio_finetuning", "fine-tuned wav2vec 2.0 (CTC)"),
    ("transformer_lm", "language_modeling", "another model"),
])
def test_fairseq_file_of_another_model(tmp_path, name, task, what):
    path = tmp_path / f"{name}.pt"
    write_official(path, _state(), {"_name": name}, {"_name": task})
    with pytest.raises(InputError) as e:
        read_official(path)
    msg = _message(e)
    assert str(path) in msg and what in msg and repr(name) in msg and repr(task) in msg
    assert "expected an official AV-HuBERT checkpoint" in msg


def test_avspeech_folder_given_as_official_file(tmp_path):
    folder = save_checkpoint(tmp_path / "ours", torch.nn.Linear(2, 2), {"kind": "pretrain"})
    assert not is_official_checkpoint(folder)
    with pytest.raises(InputError) as e:
        read_official(folder)
    assert str(folder) in _message(e) and "avspeech checkpoint folder" in _message(e)
    assert "--checkpoint" in _message(e)
    with pytest.raises(InputError, match="is a folder"):
        read_official(tmp_path)


def test_no_fairseq_left_behind():
    assert not any(m == "fairseq" or m.startswith("fairseq.") for m in sys.modules)
    assert importlib.util.find_spec("fairseq") is None
    import sentencepiece
    assert hasattr(sentencepiece, "SentencePieceTrainer")  # the real module is back after the fakes
