"""Model inputs from a track: audio filterbanks at 25 Hz, MFCCs for first-iteration targets, lip crops."""
from avspeech.features.audio import (AUDIO_DIM, audio_features, avhubert_filterbank_104, filterbank_104,
                                     mfcc_39)
from avspeech.features.lips import LIP_MEAN, LIP_STD, LipTransform

__all__ = ["AUDIO_DIM", "audio_features", "avhubert_filterbank_104", "filterbank_104", "mfcc_39", "LIP_MEAN",
           "LIP_STD", "LipTransform"]
