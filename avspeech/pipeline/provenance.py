"""Where a checkpoint's weights come from, as far as the commands need to tell the user."""
from __future__ import annotations

import json
from pathlib import Path

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


def synthetic_only(checkpoint: str | Path) -> bool:
    """Whether the checkpoint folder's weights were trained on synthetic speech only: its ``config.json`` says so
    (``"trained_on": "synthetic"``, also under ``"provenance"``), or it is one that ships with the package
    (``avspeech/pretrained/*_synth``: every shipped checkpoint is trained on the synthetic corpus)."""
    ck = Path(checkpoint)
    try:
        cfg = json.loads((ck / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    said = cfg.get("trained_on", (cfg.get("provenance") or {}).get("trained_on"))
    if said is not None:
        return str(said) == "synthetic"
    return ck.resolve().parent == PRETRAINED and ck.name.endswith("_synth")


def synthetic_note(checkpoint: str | Path, head: str) -> str | None:
    """The line a command prints when its checkpoint knows synthetic speech only (None otherwise)."""
    if not synthetic_only(checkpoint):
        return None
    return (f"note: the {head} checkpoint {checkpoint} was trained on synthetic speech only; on real video its "
            f"output is not meaningful (pass --checkpoint with a model trained on real data)")
