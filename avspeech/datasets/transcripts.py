"""The ``.txt`` beside each LRS2/LRS3 video, AV-HuBERT's text normalisation, and its cutting of long utterances.

The format (LRS3 everywhere; LRS2 ``pretrain/``; LRS2 ``main/`` stops after ``Conf:``)::

    Text:  WHEN YOU'RE UP THERE
    Conf:  3

    WORD START END ASDSCORE
    WHEN 0.06 0.21 4.3
    ...

Times are seconds from the start of the clip. AV-HuBERT's preparation (``avhubert/preparation/lrs3_prepare.py``,
``lrs3_manifest.py``) lower-cases the ``Text:`` line for the labels, and splits a ``pretrain`` utterance whose
last word ends at or after 15 s into sentences wherever two words are more than 0.4 s apart; a sentence's text is
its words joined by spaces, it starts halfway between its first word and the previous sentence's last word (the
first at 0) and ends halfway to the next sentence (the last at the end of the clip). Shorter utterances stay
whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from avspeech.errors import InputError

TABLE_HEADER = ("WORD", "START", "END", "ASDSCORE")
MAX_DURATION = 15.0  # s: AV-HuBERT cuts pretrain utterances whose last word ends at or after this
MIN_GAP = 0.4  # s: ... wherever two words are more than this apart


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # s
    end: float  # s
    score: float  # ASDSCORE (active speaker detection confidence)


@dataclass(frozen=True)
class Transcript:
    text: str  # the Text: line as written
    conf: str  # the Conf: line as written ("" when absent)
    words: tuple[Word, ...] = ()  # the word table (empty when absent)


@dataclass(frozen=True)
class Sentence:
    """One utterance cut from a clip: ``index`` (None: the whole clip, not cut), normalised ``text``, ``start``
    and ``end`` in seconds (``end`` None: to the end of the clip)."""

    index: int | None
    text: str
    start: float = 0.0
    end: float | None = None


def normalise(text: str) -> str:
    """AV-HuBERT's label text: stripped and lower-cased (``lrs3_manifest.py``), nothing else changed."""
    return text.strip().lower()


def parse_transcript(text: str, path: str | Path | None = None) -> Transcript:
    """Parse one ``.txt`` (see the module docstring); a malformed file raises :class:`InputError` naming
    ``path`` and the line."""
    lines = text.splitlines()
    first = next((n for n, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise InputError("transcript is empty (expected a 'Text:' line)", path)
    if not lines[first].startswith("Text:"):
        raise InputError(f"line {first + 1}: expected 'Text:  ...', got {lines[first][:40]!r}", path)
    sentence = lines[first][len("Text:"):].strip()
    conf, words, n = "", [], first + 1
    if n < len(lines) and lines[n].startswith("Conf:"):
        conf = lines[n][len("Conf:"):].strip()
        n += 1
    header = next((k for k in range(n, len(lines)) if lines[k].split()[:1] == ["WORD"]), None)
    if header is not None:
        if tuple(lines[header].split()) != TABLE_HEADER:
            raise InputError(f"line {header + 1}: expected the header {' '.join(TABLE_HEADER)!r}", path)
        for k in range(header + 1, len(lines)):
            cols = lines[k].split()
            if not cols:
                continue
            if len(cols) != 4:
                raise InputError(f"line {k + 1}: expected 'WORD START END ASDSCORE', got {lines[k][:60]!r}", path)
            try:
                start, end, score = float(cols[1]), float(cols[2]), float(cols[3])
            except ValueError:
                raise InputError(f"line {k + 1}: START, END and ASDSCORE must be numbers, got "
                                 f"{lines[k][:60]!r}", path) from None
            if end < start:
                raise InputError(f"line {k + 1}: word {cols[0]!r} ends ({end}) before it starts ({start})", path)
            words.append(Word(cols[0], start, end, score))
    return Transcript(sentence, conf, tuple(words))


def read_transcript(path: str | Path) -> Transcript:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the transcript ({e.strerror})", path) from e
    try:
        return parse_transcript(raw.decode("utf-8"), path)
    except UnicodeDecodeError as e:
        raise InputError(f"transcript is not UTF-8 text (byte {e.start})", path) from e


def format_transcript(tr: Transcript) -> str:
    """The ``.txt`` text of ``tr`` in the datasets' layout (the table only when ``tr`` has words)."""
    out = [f"Text:  {tr.text}", f"Conf:  {tr.conf}"]
    if tr.words:
        out += ["", " ".join(TABLE_HEADER)]
        out += [f"{w.word} {w.start:.2f} {w.end:.2f} {w.score:.1f}" for w in tr.words]
    return "\n".join(out) + "\n"


def split_sentences(tr: Transcript, max_duration: float = MAX_DURATION, min_gap: float = MIN_GAP) -> list[Sentence]:
    """AV-HuBERT's cutting of a long ``pretrain`` utterance (module docstring): one whole :class:`Sentence`
    (``index`` None, the ``Text:`` line) unless the last word ends at or after ``max_duration``."""
    words: Sequence[Word] = tr.words
    if not words or words[-1].end < max_duration:
        return [Sentence(None, normalise(tr.text))]
    groups: list[list[Word]] = [[words[0]]]
    for w in words[1:]:
        if w.start - groups[-1][-1].end > min_gap:
            groups.append([w])
        else:
            groups[-1].append(w)
    out = []
    for i, g in enumerate(groups):
        # AV-HuBERT keeps the boundaries with three decimals (its short-pretrain.csv), so do we
        start = 0.0 if i == 0 else round((g[0].start + groups[i - 1][-1].end) / 2, 3)
        end = None if i == len(groups) - 1 else round((g[-1].end + groups[i + 1][0].start) / 2, 3)
        out.append(Sentence(i, normalise(" ".join(w.word for w in g)), start, end))
    return out
