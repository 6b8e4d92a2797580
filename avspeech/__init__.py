"""avspeech: audio-visual speech research package.

Data flow (one sub-package per stage): ``synth`` (synthetic talking-face corpus) and real video
-> ``preprocess`` (face tracks, mouth ROIs, 16 kHz audio, manifest) -> ``features`` -> ``model``
(encoder fused by ``avspeech.kernels`` cross-modal attention) -> heads (separation, recognition).
``cli`` is a thin command-line layer over these library functions.
"""

import os as _os

# MediaPipe (glog) and TensorFlow Lite print start-up chatter on stderr; keep warnings and errors only.
_os.environ.setdefault("GLOG_minloglevel", "2")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
