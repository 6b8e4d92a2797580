"""Transitional: the built-in pretraining data (a synthetic corpus, preprocessed and clustered) is
:func:`avspeech.synth.splits.prepare_default_data`; synthetic data does not belong to pretraining. This name is
kept only for ``cli/pretrain.py`` and ``cli/demo.py``; delete this module once they import from
``avspeech.synth.splits``.
"""
from __future__ import annotations

from pathlib import Path


def prepare_default_data(root: str | Path, clips: int = 24, clusters: int = 25, seed: int = 0,
                         workers: int | None = None) -> tuple[Path, Path]:
    """See :func:`avspeech.synth.splits.prepare_default_data`."""
    from avspeech.synth.splits import prepare_default_data as prepare

    return prepare(root, clips=clips, clusters=clusters, seed=seed, workers=workers)
