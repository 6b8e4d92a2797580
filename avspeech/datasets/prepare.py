"""From a dataset's videos and its split recipe to AV-HuBERT-layout manifests, through ``avspeech preprocess``.

A dataset module (:mod:`~avspeech.datasets.lrs3`, ...) reads its layout into a :class:`DatasetPlan`: the source
videos with their ids, the utterances cut from them (a whole clip, or a sentence of a long one) with their
transcripts, and which utterances make each manifest. :func:`prepare_dataset` then

1. preprocesses the videos (:func:`avspeech.preprocess.batch.preprocess`: resumable, shardable, bad files
   listed) into ``OUT`` (``video/``, ``audio/``, ``tracks/``, ``clips/``, ``manifest.tsv``);
2. gives each utterance its clip's main face track (the one observed on most frames) and keeps it when the track
   covers at least ``min_coverage`` of the utterance's frames; a whole clip points at the track's files, a
   sentence is cut from them at frame boundaries into ``OUT/segments/<utterance id>.mp4`` and ``.wav``
   (resumable: a segment whose two files exist is kept);
3. writes each manifest ``OUT/<name>.tsv`` (root ``OUT``, rows sorted by id; AV-HuBERT's ids) with its
   transcripts ``OUT/<name>.wrd`` when the dataset has them, and every failure (unreadable transcript, failed
   video, utterance without a usable track) in ``OUT/prepare_failures.tsv``.

With ``shard=(i, N)`` only steps 1 and 2 run, on shard i's clips; a last run without a shard processes whatever
is still missing and writes the manifests (see :mod:`avspeech.datasets.shards`).
"""
from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from avspeech.batch import Failure, run_batch, write_failures
from avspeech.data import layout
from avspeech.errors import InputError
from avspeech.preprocess.batch import PreprocessReport, preprocess
from avspeech.preprocess.config import PreprocessConfig
from avspeech.preprocess.discover import ClipInput

log = logging.getLogger(__name__)

SEGMENTS = "segments"
FAILURES = "prepare_failures.tsv"
MIN_COVERAGE = 0.9


@dataclass(frozen=True)
class Cut:
    """One utterance of the manifests: ``id`` (AV-HuBERT's), the ``clip`` it comes from (a ``ClipInput`` id),
    its ``text`` (None: the dataset has no transcripts) and its time span in the clip (s; ``end`` None: to the
    end). ``whole``: the entire clip, whose track files are used as they are."""

    id: str
    clip: str
    text: str | None
    start: float = 0.0
    end: float | None = None
    whole: bool = True


@dataclass
class DatasetPlan:
    """What a dataset's layout says: videos, utterances, manifests (name -> utterance ids) and the problems
    found while reading it (each a :class:`Failure` naming the file)."""

    name: str
    clips: list[ClipInput]
    cuts: list[Cut]
    manifests: dict[str, list[str]]
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    transcribed: bool = True  # write a .wrd beside each manifest


@dataclass
class PrepareReport:
    dataset: str
    preprocess: PreprocessReport
    counts: dict[str, int]  # utterances per manifest written (empty for a shard)
    manifests: list[Path]
    cuts_done: int  # utterances with a usable track (in this shard)
    failures: list[Failure]
    failures_path: Path
    shard: tuple[int, int] | None
    notes: list[str]
    seconds: float

    def summary(self) -> str:
        lines = [f"{self.dataset}: " + self.preprocess.summary().splitlines()[0] + " (videos)",
                 f"{self.cuts_done} utterances ready, {len(self.failures)} problems in total "
                 f"({self.seconds:.1f} s)"]
        lines += [f"  FAILED {f.item}: {f.cause}" for f in self.failures]
        lines += [f"note: {n}" for n in self.notes]
        if self.shard is not None:
            lines.append(f"shard {self.shard[0]}/{self.shard[1]} done; run the same command without --shard once "
                         "every shard has finished to write the manifests")
        for p in self.manifests:
            lines.append(f"{p}: {self.counts[str(p)]} utterances")
        if self.failures:
            lines.append(f"failures: {self.failures_path}")
        return "\n".join(lines)


def main_track(record: dict, path: str) -> dict:
    """The track of a clip's speaker: among tracks with audio, the one observed on most frames (then the longest,
    then the first); an :class:`InputError` when the clip has no face track or no audio."""
    tracks = record["tracks"]
    if not tracks:
        raise InputError("no face track", path)
    with_audio = [t for t in tracks if t["audio"]]
    if not with_audio:
        raise InputError("no audio stream (the manifests are audio-visual)", path)
    return max(with_audio, key=lambda t: (t["frames"] - t["interpolated"], t["frames"], -t["index"]))


def _span(cut: Cut, record: dict, track: dict, fps: float, min_coverage: float) -> tuple[int, int]:
    """The cut's frames as ``[lo, hi)`` within the track (AV-HuBERT: frames ``int(start * fps)`` to
    ``min(int(end * fps), frames)``); an :class:`InputError` when the track covers too little of them."""
    n = record["num_frames"]
    a = int(cut.start * fps)
    b = n if cut.end is None else min(int(cut.end * fps), n)
    if b <= a:
        raise InputError(f"{cut.id}: no frames in {cut.start}-{cut.end} s (the clip has {n})", record["source"])
    ts, te = track["start"], track["start"] + track["frames"]
    lo, hi = max(a, ts), min(b, te)
    covered = max(0, hi - lo)
    if covered < min_coverage * (b - a):
        raise InputError(f"{cut.id}: the face is tracked on {covered} of its {b - a} frames "
                         f"({100 * covered / (b - a):.0f}%, at least {100 * min_coverage:.0f}% needed)",
                         record["source"])
    return lo - ts, hi - ts


def segment_files(cut_id: str) -> tuple[str, str]:
    return f"{SEGMENTS}/{cut_id}.mp4", f"{SEGMENTS}/{cut_id}.wav"


def _cut_clip(job: tuple[dict, list[Cut]], out: str, config: PreprocessConfig,
              min_coverage: float) -> tuple[list[tuple], list[Failure]]:
    """Manifest rows (id, video, audio, frames, samples) of one clip's cuts, and the failures among them."""
    from avspeech.io.media import read_gray_video, read_wav, write_video, write_wav

    record, cuts = job
    outp = Path(out)
    track = main_track(record, record["source"])
    spf = int(round(config.sample_rate / config.fps))
    rows, failures, media = [], [], None
    for cut in cuts:
        try:
            lo, hi = _span(cut, record, track, config.fps, min_coverage)
        except InputError as e:
            failures.append(Failure(cut.id, e.cause))
            continue
        if cut.whole and (lo, hi) == (0, track["frames"]):
            rows.append((cut.id, track["video"], track["audio"], track["frames"], track["samples"]))
            continue
        video, audio = segment_files(cut.id)
        if not ((outp / video).is_file() and (outp / audio).is_file()):
            if media is None:
                media = (read_gray_video(outp / track["video"]), read_wav(outp / track["audio"], config.sample_rate)[0])
            rois, wav = media
            write_video(outp / video, rois[lo:hi], config.fps, gray=True, crf=config.crf)
            write_wav(outp / audio, wav[lo * spf: hi * spf], config.sample_rate, subtype="PCM_16")
        rows.append((cut.id, video, audio, hi - lo, (hi - lo) * spf))
    return rows, failures


def prepare_dataset(plan: DatasetPlan, out: str | Path, *, workers: int = 1, shard: tuple[int, int] | None = None,
                    config: PreprocessConfig | None = None, min_coverage: float = MIN_COVERAGE) -> PrepareReport:
    """Preprocess ``plan``'s videos into ``out`` and write its manifests (module docstring); never raises for a
    bad file or utterance: each is listed in the report and in ``prepare_failures.tsv``."""
    if not 0.0 < min_coverage <= 1.0:
        raise InputError(f"min_coverage must be in (0, 1], got {min_coverage}")
    config = config or PreprocessConfig()
    out = Path(out)
    t0 = time.perf_counter()
    pre = preprocess([], out, workers=workers, shard=shard, config=config, clips=plan.clips)
    records = {r["id"]: r for r in pre.records}
    by_clip: dict[str, list[Cut]] = defaultdict(list)
    for cut in plan.cuts:
        if cut.clip in records:
            by_clip[cut.clip].append(cut)
    jobs = [(records[c], cuts) for c, cuts in sorted(by_clip.items())]
    fn = functools.partial(_cut_clip, out=str(out), config=config, min_coverage=min_coverage)
    # clips whose utterances are all whole need no media work: no worker processes for them
    light = [j for j in jobs if all(c.whole for c in j[1])]
    heavy = [j for j in jobs if not all(c.whole for c in j[1])]
    label = lambda job: job[0]["source"]  # noqa: E731
    res_l, fail_l = run_batch(light, fn, workers=1, desc="utterances", unit="clip", label=label)
    res_h, fail_h = run_batch(heavy, fn, workers=workers, desc="segments", unit="clip", label=label)
    rows: dict[str, tuple] = {}
    failures = list(plan.failures) + list(pre.failures) + fail_l + fail_h
    for r, f in res_l + res_h:
        rows.update((row[0], row) for row in r)
        failures += f
    suffix = "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"
    manifests, counts = [], {}
    if shard is None:
        texts = {c.id: c.text or "" for c in plan.cuts}
        for name, ids in plan.manifests.items():
            kept = sorted(i for i in set(ids) if i in rows)
            path = out / f"{name}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            layout.write_manifest(path, out.resolve(), [rows[i] for i in kept])
            if plan.transcribed:
                layout.write_transcripts(layout.default_labels_path(path), [texts[i] for i in kept])
            manifests.append(path)
            counts[str(path)] = len(kept)
    failures.sort(key=lambda f: f.item)
    fpath = out / FAILURES.replace(".tsv", f"{suffix}.tsv")
    write_failures(fpath, failures)
    return PrepareReport(plan.name, pre, counts, manifests, len(rows), failures, fpath, shard, list(plan.notes),
                         time.perf_counter() - t0)


