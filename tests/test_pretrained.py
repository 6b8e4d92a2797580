"""The shipped checkpoints' configs record the whole recipe with no machine-local path."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "avspeech" / "pretrained").glob("*/config.json"))


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
