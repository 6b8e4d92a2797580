"""Word and character error rates with jiwer: per-utterance error counts that add up to corpus rates.

``WER = (S + D + I) / N`` over words of the references; ``CER`` the same over characters (spaces included, as
jiwer counts them). A corpus rate is the sum of the errors over the sum of the reference lengths (not the mean
of per-utterance rates). An empty reference (a silent face) contributes its hypothesis' words as insertions.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import jiwer

from avspeech.recognition.tokenizer import normalise_text


def error_counts(ref: str, hyp: str) -> dict[str, int]:
    """``{"word_errors", "words", "char_errors", "chars"}`` of one (normalised) reference/hypothesis pair."""
    ref, hyp = normalise_text(ref), normalise_text(hyp)
    w = jiwer.process_words([ref], [hyp])
    c = jiwer.process_characters([ref], [hyp])
    return {"word_errors": w.substitutions + w.deletions + w.insertions, "words": len(ref.split()),
            "char_errors": c.substitutions + c.deletions + c.insertions, "chars": len(ref)}


def corpus_rates(counts: Iterable[dict[str, int]]) -> dict[str, float]:
    """``{"wer", "cer"}`` in percent from per-utterance counts (NaN when the references are empty)."""
    counts = list(counts)
    we, wn = sum(c["word_errors"] for c in counts), sum(c["words"] for c in counts)
    ce, cn = sum(c["char_errors"] for c in counts), sum(c["chars"] for c in counts)
    return {"wer": 100.0 * we / wn if wn else float("nan"), "cer": 100.0 * ce / cn if cn else float("nan")}


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return corpus_rates(error_counts(r, h) for r, h in zip(refs, hyps))["wer"]


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return corpus_rates(error_counts(r, h) for r, h in zip(refs, hyps))["cer"]
