"""Pretrained bundles: each loads the weights of its safetensors file, reports its preprocessing and its
provenance, and the shipped configs record the whole recipe with no machine-local path."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from avspeech.pretrained import BUNDLES, RECOGNITION_SYNTH, SEPARATION_SYNTH, Bundle, Preprocessing

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "avspeech" / "pretrained").glob("*/config.json"))


@pytest.mark.parametrize("bundle", [SEPARATION_SYNTH, RECOGNITION_SYNTH], ids=lambda b: b.name)
def test_bundle_loads_the_weights_of_its_safetensors_file(bundle):
    model = bundle.load()
    assert not model.training
    expected = load_file(str(bundle.path / "model.safetensors"))
    got = model.state_dict()
    assert sorted(got) == sorted(expected)
    for k, v in expected.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def test_bundles_and_their_models():
    from avspeech.recognition.model import AVRecognizer
    from avspeech.separation.model import AVSeparator

    assert BUNDLES == {"separation_synth": SEPARATION_SYNTH, "recognition_synth": RECOGNITION_SYNTH}
    assert isinstance(SEPARATION_SYNTH.load(), AVSeparator) and isinstance(RECOGNITION_SYNTH.load(), AVRecognizer)
    assert RECOGNITION_SYNTH.lexicon.read_text().split()[:3] == ["a", "again", "at"]
    with pytest.raises(ValueError, match="unknown bundle kind"):
        Bundle("x", SEPARATION_SYNTH.path, "lipreading").load()


@pytest.mark.parametrize("bundle", [SEPARATION_SYNTH, RECOGNITION_SYNTH], ids=lambda b: b.name)
def test_preprocessing_and_provenance(bundle):
    # the conventions of shared/DESIGN.md, written out here rather than read from the code
    assert bundle.preprocessing == Preprocessing(
        fps=25.0, sample_rate=16000, roi_size=96, lip_crop=88, lip_mean=0.421, lip_std=0.165, audio_dim=104,
        audio_features={"kind": "kaldi_fbank", "mel_bins": 26, "frame_length_ms": 25.0, "frame_shift_ms": 10.0,
                        "stack": 4, "normalize": "per_frame"})
    assert Preprocessing.package_default() == bundle.preprocessing
    assert bundle.trained_on_synthetic_only is True
    prov = bundle.provenance
    assert "synthetic corpus only" in prov["trained_on"]
    assert (ROOT / prov["results"]).is_file() and (ROOT / prov["benchmark"].split()[0]).is_file()


def test_preprocessing_falls_back_to_the_package_and_follows_the_encoder():
    cfg = {"kind": "separation", "separator": {"encoder": {"rate": 30.0, "audio_dim": 80}}}
    p = Preprocessing.from_config(cfg)
    assert (p.fps, p.audio_dim, p.sample_rate, p.roi_size) == (30.0, 80, 16000, 96)
    with pytest.raises(ValueError, match="bad preprocessing section"):
        Preprocessing.from_config({"preprocessing": {"fps": 25.0}})


def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def test_no_shipped_config_records_an_absolute_path():
    assert len(SHIPPED) == 2
    absolute = re.compile(r"^(/|~|[A-Za-z]:[\\/])")
    for path in SHIPPED:
        found = [tok for s in _strings(json.loads(path.read_text())) for tok in s.split() if absolute.match(tok)]
        assert not found, f"{path}: {found}"


EXPECTED_STEPS = {"separation_synth": [3000, 17000, 12000], "recognition_synth": [1500, 1500, 1000]}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_recipe_records_every_stage_as_a_chain(path):
    """Every stage's training config, each continuing the previous stage's last checkpoint; the last stage is
    the config's ``train`` (what a training run writes, and what the loaders and benchmarks read)."""
    cfg = json.loads(path.read_text())
    stages = cfg["recipe"]["stages"]
    assert [s["steps"] for s in stages] == [s["train"]["steps"] for s in stages] == EXPECTED_STEPS[path.parent.name]
    assert stages[-1]["train"] == cfg["train"]
    assert cfg["recipe"]["trained_on_synthetic_only"] is True
    start = "continue_from" if cfg["kind"] == "separation" else "init_from"
    assert stages[0]["train"].get(start) is None
    for prev, cur in zip(stages, stages[1:]):
        assert cur["train"][start] == f"{prev['train']['out']}/checkpoints/step_{prev['steps']:07d}"


def test_setup_ships_the_checkpoints(tmp_path):
    """``setup.py build_py`` (in a clean copy of the sources: no egg-info to borrow a file list from) copies both
    checkpoint folders into the installed avspeech.pretrained package."""
    import shutil

    src, lib = tmp_path / "src", tmp_path / "lib"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "kernels")  # avspeech/kernels: a symlink in worktrees
    shutil.copytree(ROOT / "avspeech", src / "avspeech", ignore=ignore)
    shutil.copytree(ROOT / "kernels", src / "kernels", ignore=ignore)
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(lib)], cwd=src, check=True,
                   capture_output=True)
    for name in ("separation_synth", "recognition_synth"):
        files = sorted((ROOT / "avspeech" / "pretrained" / name).iterdir())
        assert {f.name for f in files} >= {"model.safetensors", "config.json"}
        for f in files:
            assert (lib / "avspeech" / "pretrained" / name / f.name).read_bytes() == f.read_bytes()
    assert (lib / "avspeech" / "pretrained" / "__init__.py").is_file()
