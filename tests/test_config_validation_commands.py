"""Issue 22's command rows: a hostile checkpoint config given as ``--init-from`` to each training command, or
found in the run folder a fine-tuning resumes from, is one error line naming the file and the field."""
import json

import pytest

from avspeech.cli import main
from data_helpers import make_manifest


def _hostile_recognizer(folder):
    from avspeech.recognition.model import RecognizerConfig

    cfg = RecognizerConfig(decoder_layers=1, decoder_dim=32, decoder_heads=4, decoder_ffn=64).to_dict()
    cfg["encoder"]["layers"] = 100000
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"kind": "recognition", "recognizer": cfg}))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


@pytest.mark.parametrize("command", ["finetune separation", "finetune recognition", "pretrain",
                                     "finetune recognition (resume)"])
def test_hostile_folder_through_each_training_command(tmp_path, capsys, command):
    manifest = make_manifest(tmp_path / "data", lengths=(12, 14))
    manifest.with_suffix(".wrd").write_text("hello world\nbye now\n")
    (tmp_path / "l.km").write_text("0 1 " * 6 + "\n" + "1 0 " * 7 + "\n")
    run = tmp_path / "run"
    if command.endswith("(resume)"):  # a run folder whose newest checkpoint has a hostile config
        _hostile_recognizer(run / "checkpoints" / "step_0000001")
        (run / "checkpoints" / "latest").write_text("step_0000001\n")
        ck = None
    else:
        ck = _hostile_recognizer(tmp_path / "ck")
    start = ["--init-from", str(ck)] if ck else []
    argv = {"finetune separation": ["finetune", "separation", "--mixtures", str(tmp_path / "mix.tsv")],
            "pretrain": ["pretrain", "--labels", str(tmp_path / "l.km")]}.get(command, ["finetune", "recognition"])
    assert main([*argv, "--manifest", str(manifest), "--out", str(run), *start]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1 and "layers" in err[0] and "config.json" in err[0], err
