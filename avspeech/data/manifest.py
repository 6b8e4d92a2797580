"""The old import path of the manifest and label readers, now in :mod:`avspeech.data.layout` (the one module
for files on disk). Kept while modules outside ``data/`` still import from here (``pretrain/train.py``,
``cli/cluster.py``, ``separation/commands.py``); import from ``avspeech.data.layout`` in new code."""
from avspeech.data.layout import Utterance, read_labels, read_manifest, write_labels

__all__ = ["Utterance", "read_manifest", "read_labels", "write_labels"]
