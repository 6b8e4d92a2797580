"""The commands' options are built from the config dataclasses: same defaults, right types, every field in --help."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Literal

import pytest

from avspeech.cli import build_parser, main
from avspeech.cli.config_args import add_config_arguments, config_from_args
from avspeech.preprocess.config import PreprocessConfig
from avspeech.pretrain.train import TrainConfig
from avspeech.recognition.train import RecognitionTrainConfig
from avspeech.recognition.transcribe import DecodeOptions
from avspeech.separation.train import SeparationTrainConfig
from avspeech.synth.corpus import SynthConfig

# command line (with what it requires), config class, fields that are not options, fields the command fills
COMMANDS = {
    "pretrain": (["pretrain"], TrainConfig, (), ("manifest", "labels")),
    "finetune separation": (["finetune", "separation"], SeparationTrainConfig, (), ("manifest", "mixtures")),
    "finetune recognition": (["finetune", "recognition"], RecognitionTrainConfig, (), ("manifest",)),
    "preprocess": (["preprocess", "in.mp4", "--out", "o"], PreprocessConfig, (), ()),
    "synth": (["synth", "--out", "o"], SynthConfig, (), ()),
    "evaluate recognition": (["evaluate", "recognition"], DecodeOptions, ("nbest", "lexicon"), ()),
    "recognize": (["recognize", "clip.mp4", "--out", "o"], DecodeOptions, ("nbest", "lexicon"), ()),
}


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser(argv[0]).parse_args(argv)


def _field_defaults(cls, exclude=()) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None  # a required field the command fills (or a required option)
    return out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_parser_defaults_are_the_dataclass_defaults(name):
    argv, cls, exclude, filled = COMMANDS[name]
    args = vars(_parse(argv))
    expected = _field_defaults(cls, exclude)
    assert expected, cls
    for field_name, default in expected.items():
        assert field_name in args, (name, field_name)
        assert args[field_name] == default, (name, field_name, args[field_name], default)
    for field_name in filled:
        assert args[field_name] is None


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_lists_every_field(name, capsys):
    argv, cls, exclude, _ = COMMANDS[name]
    command = argv[:2] if argv[0] in ("finetune", "evaluate") else argv[:1]
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert f"avspeech {' '.join(command)}" in text
    for f in dataclasses.fields(cls):
        if f.name not in exclude:
            assert "--" + f.name.replace("_", "-") in text, (name, f.name)


def test_pretrain_options_and_documented_defaults(capsys):
    args = _parse(["pretrain", "--steps", "7", "--lr", "1e-3", "--init-from", "ck", "--model", "small"])
    assert args.steps == 7 and type(args.steps) is int
    assert args.lr == 1e-3 and type(args.lr) is float
    cfg = config_from_args(TrainConfig, args, manifest="m.tsv", labels="l.km")
    assert (cfg.steps, cfg.lr, cfg.init_from, cfg.model, cfg.manifest) == (7, 1e-3, "ck", "small", "m.tsv")
    # the defaults the README's recipes rely on (checkpoints/step_0000300) and the preset's learning rate
    plain = config_from_args(TrainConfig, _parse(["pretrain"]), manifest="m", labels="l")
    assert (plain.steps, plain.warmup, plain.lr, plain.out) == (300, 30, 2e-3, "avspeech_pretrain")
    assert config_from_args(TrainConfig, _parse(["pretrain", "--model", "base"]), manifest="m", labels="l").lr == 5e-4
    with pytest.raises(SystemExit):
        _parse(["pretrain", "--model", "huge"])
    assert "invalid choice" in capsys.readouterr().err


def test_separation_flags():
    args = _parse(["finetune", "separation", "--no-lip-attention", "--freeze-encoder", "--lstm-hidden", "64",
                   "--crop-frames", "40"])
    cfg = config_from_args(SeparationTrainConfig, args, manifest="m", mixtures="x")
    assert cfg.lip_attention is False and cfg.freeze_encoder is True
    assert cfg.lstm_hidden == 64 and type(cfg.lstm_hidden) is int and cfg.crop_frames == 40
    assert cfg.lr == 2e-3 and cfg.mode == "av"
    off = _parse(["finetune", "separation", "--freeze-encoder", "--no-freeze-encoder"])
    assert off.freeze_encoder is False and off.lip_attention is True and off.lstm_hidden is None


def test_recognition_tuple_and_bool_flags():
    args = _parse(["finetune", "recognition", "--noise-probs", "1", "0", "0", "--snr-range", "0", "5",
                   "--freeze-encoder"])
    cfg = config_from_args(RecognitionTrainConfig, args, manifest="m")
    assert cfg.noise_probs == (1.0, 0.0, 0.0) and isinstance(cfg.noise_probs, tuple)
    assert all(type(v) is float for v in cfg.noise_probs)
    assert cfg.snr_range == (0.0, 5.0) and cfg.freeze_encoder is True and cfg.labels is None
    with pytest.raises(SystemExit):
        _parse(["finetune", "recognition", "--snr-range", "0"])  # two values


def test_synth_lists_and_preprocess_settings():
    args = _parse(["synth", "--out", "o", "--voices", "en+m1,en+f2", "en+m3", "--rate-wpm", "100", "120"])
    cfg = config_from_args(SynthConfig, args)
    assert cfg.voices == ("en+m1", "en+f2", "en+m3") and cfg.rate_wpm == (100, 120)
    assert cfg.faces == SynthConfig.__dataclass_fields__["faces"].default
    pre = config_from_args(PreprocessConfig, _parse(["preprocess", "a", "--out", "o", "--max-faces", "2",
                                                     "--detect-every", "3"]))
    assert (pre.max_faces, pre.detect_every, pre.roi_size) == (2, 3, 96)


def test_decode_options_from_flags():
    from avspeech.cli.decoding import decode_options

    args = _parse(["evaluate", "recognition", "--beam", "3", "--ctc-weight", "1", "--greedy"])
    opts = decode_options(args, model=None)
    assert (opts.beam, opts.nbest, opts.ctc_weight, opts.greedy, opts.lexicon) == (3, 3, 1.0, True, None)
    assert opts.prune == DecodeOptions().prune


@dataclasses.dataclass
class _Toy:
    need: str = dataclasses.field(metadata={"help": "needed"})
    n: int | None = dataclasses.field(default=None, metadata={"help": "count"})
    on: bool = dataclasses.field(default=True, metadata={"help": "switch"})
    pair: tuple[int, int] = dataclasses.field(default=(1, 2), metadata={"help": "two ints"})
    kind: Literal["a", "b"] = dataclasses.field(default="a", metadata={"help": "kind"})
    ratio: float = dataclasses.field(default=0.5, metadata={"help": "50% of it"})


def test_builder_on_a_toy_dataclass(capsys):
    p = argparse.ArgumentParser(prog="toy")
    add_config_arguments(p, _Toy)
    with pytest.raises(SystemExit):
        p.parse_args([])  # --need is required
    capsys.readouterr()
    t = config_from_args(_Toy, p.parse_args(["--need", "x", "--n", "4", "--no-on", "--pair", "3", "4",
                                             "--kind", "b", "--ratio", "2"]))
    assert t == _Toy(need="x", n=4, on=False, pair=(3, 4), kind="b", ratio=2.0)
    assert config_from_args(_Toy, p.parse_args(["--need", "y"])) == _Toy(need="y")
    with pytest.raises(SystemExit):
        p.parse_args(["--need", "x", "--kind", "c"])
    capsys.readouterr()
    text = p.format_help()
    assert "50% of it (default: 0.5)" in text and "two ints (default: 1 2)" in text and "--no-on" in text
    assert "count (default" not in text  # a None default is explained by the help text, not printed


def test_builder_refuses_fields_it_cannot_express():
    @dataclasses.dataclass
    class NoHelp:
        x: int = 1

    @dataclasses.dataclass
    class Mixed:
        x: tuple[int, str] = dataclasses.field(default=(1, "a"), metadata={"help": "h"})

    with pytest.raises(ValueError, match="NoHelp.x has no help"):
        add_config_arguments(argparse.ArgumentParser(), NoHelp)
    with pytest.raises(TypeError, match="one element type"):
        add_config_arguments(argparse.ArgumentParser(), Mixed)
    add_config_arguments(argparse.ArgumentParser(), NoHelp, helps={"x": "given here"})


def _recorded(out) -> dict:
    import json

    return json.loads((out / "config.json").read_text())["train"]


def test_finetune_commands_train_with_the_given_options(tmp_path, capsys):
    """One step of each head through the command: the run records the options as given and the rest as the
    dataclass defaults (read from the fields, not from the parser)."""
    from avspeech.recognition.data import write_transcripts
    from data_helpers import make_manifest

    manifest = make_manifest(tmp_path / "data", lengths=(22, 26, 20, 24))
    write_transcripts(manifest.with_suffix(".wrd"), ["one two", "three four", "five", "six seven"])
    sep = tmp_path / "sep"
    assert main(["finetune", "separation", "--manifest", str(manifest), "--out", str(sep), "--steps", "1",
                 "--warmup", "1", "--batch-size", "2", "--crop-frames", "10", "--hidden", "16", "--num-mixtures",
                 "4", "--no-lip-attention", "--log-every", "1"]) == 0
    got = _recorded(sep)
    assert (got["steps"], got["batch_size"], got["crop_frames"], got["hidden"], got["lip_attention"]) == \
        (1, 2, 10, 16, False)
    assert got["mixtures"] == str(sep / "mixtures.tsv") and len((sep / "mixtures.tsv").read_text().split("\n")) > 4
    defaults = _field_defaults(SeparationTrainConfig)
    for name in ("lr", "weight_decay", "silent_prob", "clip", "mode", "seed"):
        assert got[name] == defaults[name], name
    rec = tmp_path / "rec"
    assert main(["finetune", "recognition", "--manifest", str(manifest), "--out", str(rec), "--steps", "1",
                 "--warmup", "1", "--batch-size", "2", "--decoder-layers", "1", "--noise-probs", "1", "0", "0",
                 "--freq-warp", "0", "--log-every", "1"]) == 0
    got = _recorded(rec)
    assert (got["steps"], got["decoder_layers"], got["noise_probs"], got["freq_warp"]) == (1, 1, [1.0, 0.0, 0.0], 0.0)
    assert got["labels"] == str(manifest.with_suffix(".wrd"))
    defaults = _field_defaults(RecognitionTrainConfig)
    for name in ("lr", "ctc_weight", "p_av", "p_audio", "snr_range", "tokenizer"):
        assert got[name] == (list(defaults[name]) if isinstance(defaults[name], tuple) else defaults[name]), name
    assert "done: step 1" in capsys.readouterr().out
