"""Official AV-HuBERT checkpoints (fairseq ``.pt`` files): read without fairseq and without running code, as our
modules.

:mod:`~avspeech.model.avhubert.container` opens the file (:func:`read_official`) and says whether a path is one
(:func:`is_official_checkpoint`); :mod:`~avspeech.model.avhubert.convert` maps it onto our encoder
(:func:`load`)::

    >>> from avspeech.model import avhubert
    >>> enc = avhubert.load("base_vox_iter5.pt").encoder
    >>> feats = enc.extract_features(audio, video, lengths)       # (B, T, 768)
"""
from avspeech.model.avhubert.container import OfficialFile, is_official_checkpoint, read_official
from avspeech.model.avhubert.convert import AVHubert, PretrainingParts, encoder_config, from_official, load

__all__ = ["AVHubert", "OfficialFile", "PretrainingParts", "encoder_config", "from_official",
           "is_official_checkpoint", "load", "read_official"]
