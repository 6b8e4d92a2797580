"""Official AV-HuBERT checkpoints (fairseq ``.pt`` files): read without fairseq and without running code.

:mod:`~avspeech.model.avhubert.container` opens the file (:func:`read_official`) and says whether a path is one
(:func:`is_official_checkpoint`).
"""
from avspeech.model.avhubert.container import OfficialFile, is_official_checkpoint, read_official

__all__ = ["OfficialFile", "is_official_checkpoint", "read_official"]
