"""The field's published 2-speaker mixture lists, read into our mixture lists and written back; seeded lists drawn
by the same recipe.

Two formats are in use for LRS2-2Mix, LRS3-2Mix and VoxCeleb2-2Mix:

- ``pan`` (Pan Zexu's ``mixture_data_list_2mix.csv``, e.g. USEV, reentry): one CSV row per mixture,
  ``partition, [folder, speaker, utterance, db] x 2, shortest`` where ``folder/speaker/utterance`` names the
  source clip (LRS2 ``main/<video>/<utt>``, LRS3 ``trainval/<spk>/<utt>``, VoxCeleb2 ``train/<id>/<video>/<utt>``
  with ``utterance`` holding ``<video>/<utt>``), ``db`` is the speaker's level in dB relative to the first
  speaker (the first is 0; the interferer is scaled to ``10^(db/20)`` times the target's RMS), and ``shortest``
  the length in seconds the mixture is cut to (the shorter source). The mixture's name is the row with ``,`` and
  ``/`` replaced by ``_``.
- ``wsj0`` (the wsj0-2mix list, used by JusperLee's LRS3-For-Speech-Separation): one line per mixture,
  ``path_a snr_a path_b snr_b`` separated by spaces, each source level-normalised and scaled by
  ``10^(snr/20)`` (``snr_b = -snr_a``); a source file named ``<speaker>_<utt>.wav`` stands for ``<speaker>/<utt>``.

Our list (:mod:`avspeech.data.layout`) holds ``id, utt_a, utt_b, gain_db`` with ``gain_db`` the level of A
relative to B, so ``gain_db = db_a - db_b`` (``pan``) and ``snr_a - snr_b`` (``wsj0``). A list's sources are
matched to manifest ids by their trailing path components (the longest unique match), which maps e.g. LRS2's
``pretrain/<video>/<utt>`` to ``short-pretrain/<video>/<utt>`` and VoxCeleb2's ``train/<id>/...`` to
``dev/mp4/<id>/...``; a source that matches no id, or several, is reported.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from avspeech.batch import Failure
from avspeech.data.layout import Mixture, Utterance
from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_text

FORMATS = ("pan", "wsj0")
FPS = 25


@dataclass(frozen=True)
class ListedMixture:
    """One row of a published list: its partition, the two sources as the list names them, the relative gain
    (A over B, dB) and the name the list's recipe gives the mixture."""

    partition: str
    source_a: str
    source_b: str
    gain_db: float
    name: str


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the mixture list ({e})", path) from e


def _number(value: str, what: str, n: int, path: Path) -> float:
    try:
        return float(value)
    except ValueError:
        raise InputError(f"line {n}: {what} must be a number, got {value!r}", path) from None


def read_pan(path: str | Path) -> list[ListedMixture]:
    """The rows of a ``pan`` list with two speakers (module docstring)."""
    path = Path(path)
    out = []
    for n, row in enumerate(csv.reader(_text(path).splitlines()), start=1):
        if not row:
            continue
        if len(row) != 10:
            raise InputError(f"line {n} has {len(row)} fields; a 2-speaker list has 10 (partition, then folder, "
                             "speaker, utterance, db for each speaker, then the shortest length)", path)
        db_a, db_b = (_number(row[k], "db", n, path) for k in (4, 8))
        _number(row[9], "the shortest length", n, path)
        out.append(ListedMixture(row[0], "/".join(row[1:4]), "/".join(row[5:8]), db_a - db_b,
                                 ",".join(row).replace(",", "_").replace("/", "_")))
    return out


def _wsj0_source(path: str) -> str:
    stem = Path(path).with_suffix("")
    spk, sep, utt = stem.name.rpartition("_")
    return f"{stem.parent.as_posix()}/{spk}/{utt}" if sep else stem.as_posix()


def read_wsj0(path: str | Path, partition: str = "") -> list[ListedMixture]:
    """The lines of a ``wsj0`` list (module docstring); ``partition`` names them all (default: the file's stem)."""
    path = Path(path)
    part = partition or path.stem
    out = []
    for n, line in enumerate(_text(path).splitlines(), start=1):
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 4:
            raise InputError(f"line {n} has {len(cols)} fields, expected 4 (path_a snr_a path_b snr_b)", path)
        snr_a, snr_b = _number(cols[1], "snr_a", n, path), _number(cols[3], "snr_b", n, path)
        name = "_".join([Path(cols[0]).stem, cols[1], Path(cols[2]).stem, cols[3]])
        out.append(ListedMixture(part, _wsj0_source(cols[0]), _wsj0_source(cols[2]), snr_a - snr_b, name))
    return out


def read_list(path: str | Path, fmt: str) -> list[ListedMixture]:
    if fmt == "pan":
        return read_pan(path)
    if fmt == "wsj0":
        return read_wsj0(path)
    raise InputError(f"unknown mixture list format {fmt!r} (one of {', '.join(FORMATS)})")


class IdMatcher:
    """Manifest ids found from the paths a list names: the longest trailing run of path components (at least
    two) that exactly one id ends with."""

    def __init__(self, ids: Sequence[str]):
        self.by_suffix: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for uid in ids:
            parts = tuple(uid.split("/"))
            for k in range(2, len(parts) + 1):
                self.by_suffix[parts[-k:]].append(uid)

    def __call__(self, source: str) -> str | None:
        parts = tuple(p for p in source.split("/") if p)
        for k in range(len(parts), 1, -1):
            hits = self.by_suffix.get(parts[-k:], [])
            if hits:  # a shorter suffix would match these and more
                return hits[0] if len(hits) == 1 else None
        return None


def import_list(listed: Sequence[ListedMixture], utts: Sequence[Utterance]
                ) -> tuple[dict[str, list[Mixture]], list[Failure]]:
    """Our mixtures per partition, and the rows whose sources are not in the manifest."""
    match = IdMatcher([u.id for u in utts])
    out: dict[str, list[Mixture]] = defaultdict(list)
    failures = []
    for m in listed:
        a, b = match(m.source_a), match(m.source_b)
        missing = [s for s, i in ((m.source_a, a), (m.source_b, b)) if i is None]
        if missing:
            failures.append(Failure(m.name, "not in the manifest (or matching several ids): " + ", ".join(missing)))
            continue
        out[m.partition].append(Mixture(m.name, a, b, round(m.gain_db, 5)))
    return dict(out), failures


def pan_fields(uid: str) -> tuple[str, str, str]:
    """(folder, speaker, utterance) of a manifest id in ``pan``'s layout: AV-HuBERT's VoxCeleb2 ids
    ``dev/mp4/<id>/<video>/<utt>`` give ``train, <id>, <video>/<utt>`` (``test/mp4/...``: ``test``), LRS ids
    ``<folder>/<spk>/<utt>`` give themselves (``short-pretrain`` is LRS's ``pretrain``)."""
    parts = uid.split("/")
    if len(parts) == 5 and parts[1] == "mp4":
        return ("train" if parts[0] == "dev" else parts[0]), parts[2], "/".join(parts[3:])
    if len(parts) < 3:
        raise InputError(f"manifest id {uid!r} has no folder/speaker/utterance parts for a pan list")
    folder = "pretrain" if parts[0] == "short-pretrain" else parts[0]
    return folder, parts[-2], parts[-1]


def format_pan(rows: Sequence[tuple[str, Mixture, float]]) -> str:
    """``pan`` CSV text of ``(partition, mixture, shortest seconds)`` rows (A at 0 dB, B at ``-gain_db``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for part, m, shortest in rows:
        w.writerow([part, *pan_fields(m.utt_a), "0", *pan_fields(m.utt_b), str(round(-m.gain_db, 5) + 0.0),
                    f"{shortest:.2f}"])
    return buf.getvalue()


def write_pan(path: str | Path, rows: Sequence[tuple[str, Mixture, float]]) -> None:
    atomic_write_text(path, format_pan(rows))


def speaker_of(uid: str) -> str:
    """The speaker of a manifest id: the folder above the utterance for LRS (``trainval/<spk>/<utt>``; LRS2's
    video id), the ``id<NNNNN>`` of VoxCeleb2 (``dev/mp4/<id>/<video>/<utt>``)."""
    parts = uid.split("/")
    return parts[2] if len(parts) == 5 and parts[1] == "mp4" else parts[-2] if len(parts) >= 2 else uid


def draw_mixtures(utts: Sequence[Utterance], n: int, *, seed: int = 0, mix_db: float = 10.0,
                  min_seconds: float = 0.0, partition: str = "test",
                  speaker: Callable[[str], str] = speaker_of) -> list[tuple[str, Mixture, float]]:
    """``n`` mixtures by the ``pan`` recipe: two utterances of different speakers (each used once while enough
    are left, then drawn again from all), the second at a level drawn uniformly in ``[-mix_db, mix_db]`` dB
    relative to the first, cut to the shorter; utterances shorter than ``min_seconds`` are left out. Drawn with
    ``numpy.random.default_rng(seed)``; returns ``(partition, mixture, shortest seconds)`` rows."""
    if n < 1:
        raise InputError(f"the number of mixtures to draw must be at least 1, got {n}")
    pool = [u for u in utts if u.frames / FPS >= min_seconds]
    if len({speaker(u.id) for u in pool}) < 2:
        raise InputError(f"mixtures need utterances of at least two speakers ({len(pool)} utterances of at least "
                         f"{min_seconds:g} s)")
    rng = np.random.default_rng(seed)
    left = list(pool)
    rows = []
    while len(rows) < n:
        src = left if len({speaker(u.id) for u in left}) >= 2 else pool
        i = int(rng.integers(len(src)))
        a = src[i]
        others = [k for k, u in enumerate(src) if speaker(u.id) != speaker(a.id)]
        b = src[others[int(rng.integers(len(others)))]]
        db = float(rng.uniform(-mix_db, mix_db))
        if src is left:
            left = [u for u in left if u is not a and u is not b]
        shortest = min(a.frames, b.frames) / FPS
        m = Mixture("", a.id, b.id, round(-db, 5))
        name = format_pan([(partition, m, shortest)]).strip().replace(",", "_").replace("/", "_")
        rows.append((partition, Mixture(name, a.id, b.id, m.gain_db), shortest))
    return rows
