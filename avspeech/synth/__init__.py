"""Synthetic talking-face corpus with known ground truth.

Real face photographs shipped by installed packages, speech synthesized by espeak-ng with phoneme timing, a
mouth driven by those phonemes through a landmark-guided warp, several faces per frame speaking overlapping
GRID-style sentences. See :func:`avspeech.synth.corpus.synthesize_corpus`.
"""
from avspeech.synth.corpus import SynthConfig, synthesize_clip, synthesize_corpus

__all__ = ["SynthConfig", "synthesize_clip", "synthesize_corpus"]
