"""Where a checkpoint's weights come from, as far as the commands need to tell the user."""
from __future__ import annotations

import json
from pathlib import Path


def synthetic_only(checkpoint: str | Path) -> bool:
    """Whether the checkpoint folder's ``config.json`` records a recipe trained on synthetic speech only
    (``"recipe": {"trained_on_synthetic_only": true}``, as every checkpoint shipped in ``avspeech.pretrained``)."""
    try:
        cfg = json.loads((Path(checkpoint) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    recipe = cfg.get("recipe") if isinstance(cfg, dict) else None
    return isinstance(recipe, dict) and recipe.get("trained_on_synthetic_only") is True


def synthetic_note(checkpoint: str | Path, head: str) -> str | None:
    """The line a command prints when its checkpoint knows synthetic speech only (None otherwise)."""
    if not synthetic_only(checkpoint):
        return None
    return (f"note: the {head} checkpoint {checkpoint} was trained on synthetic speech only; on real video its "
            f"output is not meaningful (pass --checkpoint with a model trained on real data)")
