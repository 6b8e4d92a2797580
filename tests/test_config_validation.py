"""Untrusted checkpoint configs are checked field by field before any module is built: each hostile value gives
one clear error naming the file, the field and the value, at once and without allocating the model."""
import json
import subprocess
import sys
import time

import pytest

from avspeech.errors import InputError
from avspeech.model.checkpoint import encoder_config_of
from avspeech.model.config import EncoderConfig, preset
from avspeech.model.validate import MAX_PARAMETERS, encoder_parameters

NAN = float("nan")

# (section, field, value, words the message must contain)
HOSTILE = [
    ("encoder", "dropout", NAN, "dropout"),
    ("encoder", "heads", 0, "heads"),
    ("encoder", "dim", 0, "dim"),
    ("encoder", "lip_widths", [-8, 16, 32, 64], "lip_widths[0]"),
    ("encoder", "ffn", 10 ** 13, "ffn"),
    ("encoder", "layers", 100000, "layers"),
    ("encoder", "layers", True, "layers"),  # a boolean where an int belongs
    ("encoder", "dim", "64", "dim"),
    ("encoder", "lip_widths", {"a": [1, 2]}, "lip_widths"),  # nested garbage
    ("encoder", "surprise", 1, "surprise"),  # an unknown key
    ("encoder", "fusion", "magic", "fusion"),
    ("encoder", "rate", -25.0, "rate"),
    ("encoder", "dim", 60000, "parameters"),  # each width allowed, the whole over the size budget
    ("recognizer", "decoder_heads", 0, "decoder_heads"),
    ("recognizer", "dropout", NAN, "dropout"),
    ("recognizer", "upsample", 10 ** 9, "upsample"),
    ("recognizer", "decoder_ffn", 10 ** 12, "decoder_ffn"),
    ("recognizer", "tokenizer", {"kind": "char", "chars": 7}, "character set"),
    ("recognizer", "tokenizer", {"kind": "sentencepiece", "model": "!!not base64"}, "tokenizer.model"),
    ("recognizer", "tokenizer", "char", "tokenizer"),
]


def _recognizer_folder(path, field, value, inside_encoder=False):
    from avspeech.recognition.model import RecognizerConfig

    cfg = RecognizerConfig(decoder_layers=1, decoder_dim=32, decoder_heads=4, decoder_ffn=64).to_dict()
    if inside_encoder:
        cfg["encoder"][field] = value
    else:
        cfg[field] = value
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"kind": "recognition", "recognizer": cfg}))
    (path / "model.safetensors").write_bytes(b"")  # never reached
    return path


@pytest.mark.parametrize("section,field,value,words", HOSTILE)
def test_hostile_config_is_refused_before_building(tmp_path, section, field, value, words):
    from avspeech.recognition.train import load_recognizer

    folder = _recognizer_folder(tmp_path / "ck", field, value, inside_encoder=section == "encoder")
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        load_recognizer(folder)
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert "config.json" in msg and words in msg and "\n" not in msg, msg
    if section == "encoder":  # the same through --init-from of any head
        with pytest.raises(InputError, match="config.json"):
            encoder_config_of(folder)


def test_the_same_checks_in_python():
    with pytest.raises(ValueError, match=r"heads must be in \[1, 64\], got 0"):
        EncoderConfig(dim=64, heads=0)
    with pytest.raises(ValueError, match="dropout must be a finite number, got nan"):
        preset("tiny", dropout=NAN)


def test_parameter_budget_closed_form_is_close_and_large_fits():
    import torch

    from avspeech.model.encoder import AVEncoder

    for name in ("tiny", "base"):
        with torch.device("meta"):
            real = sum(p.numel() for p in AVEncoder(preset(name)).parameters())
        assert 0.85 < encoder_parameters(preset(name)) / real <= 1.0
    assert encoder_parameters(preset("large")) < MAX_PARAMETERS / 4


def test_commands_give_one_line_and_little_memory(tmp_path):
    folder = _recognizer_folder(tmp_path / "ck", "layers", 100000, inside_encoder=True)
    clip = tmp_path / "clip.mp4"
    clip.write_text("not a video")
    # VmHWM: the peak RSS of this process image (ru_maxrss would carry over pytest's own peak through fork/exec)
    code = ("import re, sys; from avspeech.cli import main; rc = main(sys.argv[1:]); "
            "print('MAXRSS', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]); sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code, "recognize", str(clip), "--out", str(tmp_path / "o"),
                          "--checkpoint", str(folder)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and "layers" in errors[0] and "config.json" in errors[0], res.stderr[-2000:]
    maxrss_kb = int(next(ln.split()[1] for ln in res.stdout.splitlines() if ln.startswith("MAXRSS")))
    assert maxrss_kb < 1024 * 1024, maxrss_kb


SEPARATOR_HOSTILE = [
    ("n_fft", -512, "n_fft"),
    ("lstm_hidden", 10 ** 9, "lstm_hidden"),
    ("lstm_hidden", 60000, "parameters"),
    ("lstm_layers", 100000, "lstm_layers"),
    ("attention_window", NAN, "attention_window"),
    ("attention_heads", 0, "attention_heads"),
    ("lip_attention", 2, "lip_attention"),
    ("mode", ["av"], "mode"),
    ("encoder", "tiny", "encoder"),
]


def _separator_folder(path, field, value):
    from avspeech.separation.model import SeparatorConfig

    cfg = SeparatorConfig(hidden=16, lstm_layers=1).to_dict()
    cfg[field] = value
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"kind": "separation", "separator": cfg}))
    (path / "model.safetensors").write_bytes(b"")
    return path


@pytest.mark.parametrize("field,value,words", SEPARATOR_HOSTILE)
def test_hostile_separator_config_is_refused_before_building(tmp_path, field, value, words):
    from avspeech.separation.train import load_separator

    folder = _separator_folder(tmp_path / "ck", field, value)
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        load_separator(folder)
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert "config.json" in msg and words in msg and "\n" not in msg, msg


def test_separate_command_gives_one_line(tmp_path):
    folder = _separator_folder(tmp_path / "ck", "lstm_hidden", 10 ** 9)
    clip = tmp_path / "clip.mp4"
    clip.write_text("not a video")
    res = subprocess.run([sys.executable, "-m", "avspeech", "separate", str(clip), "--out", str(tmp_path / "o"),
                          "--checkpoint", str(folder)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and "lstm_hidden" in errors[0] and "config.json" in errors[0], res.stderr[-2000:]
