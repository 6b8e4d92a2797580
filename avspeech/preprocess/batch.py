"""``avspeech preprocess`` as a library function: many files in, the AV-HuBERT layout out (:mod:`avspeech.data.layout`).

Resumable: a clip whose record (``clips/<id>.json``) exists is skipped; everything is written atomically.
Shardable: ``shard=(i, N)`` takes a deterministic part of the input list; a shard writes
``manifest.shard-i-of-N.tsv`` and ``failures.shard-i-of-N.tsv`` so shards can share an output folder.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from avspeech.batch import Failure, report_failures, run_batch, write_failures
from avspeech.data import layout
from avspeech.preprocess.config import PreprocessConfig
from avspeech.preprocess.discover import ClipInput, discover, shard as take_shard
from avspeech.preprocess.pipeline import Preprocessor, require_faces
from avspeech.preprocess.write import write_clip, write_manifests

log = logging.getLogger(__name__)

STAGES = ("decode", "detection", "landmarks", "alignment", "writing")

_worker: tuple[PreprocessConfig, Preprocessor] | None = None  # one per process


def _preprocessor(config: PreprocessConfig) -> Preprocessor:
    global _worker
    if _worker is None or _worker[0] != config:
        if _worker is not None:
            _worker[1].close()
        _worker = (config, Preprocessor(config))
    return _worker[1]


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one core per worker; parallelism comes from processes


def process_one(item: ClipInput, out: str, config: PreprocessConfig) -> dict:
    """Decode, track and write one clip; return its record. Raises InputError for a bad file.

    A clip whose frames take more than ``config.in_memory_mb`` is streamed, its tracks' ROIs and landmarks
    waiting in temporary files (:class:`~avspeech.io.arrayfile.ArrayFile`) until they are written, so memory
    does not grow with it."""
    from avspeech.io.arrayfile import TempArrays

    pre = _preprocessor(config)
    with TempArrays() as store:
        clip, result = pre.process_file(item.path, stream=None, store=store)
        require_faces(result, item.path, config)
        t0 = time.perf_counter()
        result.timings["writing"] = 0.0
        record = write_clip(out, item.clip_id, item.path, clip, result, config)
    # The record on disk holds the timings without writing; the returned one has them all.
    record["timings"]["writing"] = time.perf_counter() - t0
    return record


@dataclass
class PreprocessReport:
    """What a run did. ``records`` holds every clip of the (sharded) input that is done, this run or before."""

    total: int
    skipped: int
    records: list[dict]
    failures: list[Failure]
    seconds: float
    manifest: Path
    manifest_video_only: Path
    failures_path: Path
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage over the clips run now

    @property
    def num_tracks(self) -> int:
        return sum(len(r["tracks"]) for r in self.records)

    @property
    def no_audio(self) -> list[str]:
        return [r["source"] for r in self.records if not r["has_audio"]]

    def summary(self) -> str:
        frames = sum(r["num_frames"] for r in self.records)
        lines = [report_failures(self.failures, self.total, "clips"),
                 f"{self.skipped} already done (skipped), {self.num_tracks} face tracks, {frames} frames at 25 fps, "
                 f"{self.seconds:.1f} s"]
        if self.no_audio:
            lines.append(f"{len(self.no_audio)} clips without audio (tracks in {self.manifest_video_only.name}):")
            lines += [f"  NO AUDIO {p}" for p in self.no_audio]
        if self.timings:
            tot = sum(self.timings.values()) or 1.0
            lines.append("time per stage: " + ", ".join(f"{k} {v:.1f} s ({100 * v / tot:.0f}%)"
                                                         for k, v in self.timings.items()))
        lines.append(f"manifest: {self.manifest}")
        if self.failures:
            lines.append(f"failures: {self.failures_path}")
        return "\n".join(lines)


def preprocess(inputs: Sequence[str | Path], out: str | Path, *, workers: int = 1,
               shard: tuple[int, int] | None = None, config: PreprocessConfig | None = None,
               clips: Sequence[ClipInput] | None = None) -> PreprocessReport:
    """Preprocess every clip named by ``inputs`` (files, folders, list files) into ``out``; never raises for a
    bad file (it is listed in the report and in failures.tsv). ``clips`` (files with their ids, e.g. a
    dataset's own names) replaces the discovery of ``inputs``."""
    config = config or PreprocessConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    clips = discover(inputs, exclude=out) if clips is None else sorted(clips, key=lambda c: c.path)
    suffix = ""
    if shard is not None:
        clips = take_shard(clips, *shard)
        suffix = f".shard-{shard[0]}-of-{shard[1]}"
    done: dict[str, dict] = {}
    todo: list[ClipInput] = []
    for c in clips:
        rec = layout.load_record(out, c.clip_id)
        if rec is not None and rec.get("source") == c.path:
            done[c.clip_id] = rec
        else:
            todo.append(c)
    log.info("%d clips, %d already done, %d to process", len(clips), len(done), len(todo))
    fn = functools.partial(process_one, out=str(out), config=config)
    results, failures = run_batch(todo, fn, workers=workers, desc="preprocess", unit="clip",
                                  initializer=_init_worker)
    timings = {k: 0.0 for k in STAGES}
    for rec in results:
        done[rec["id"]] = rec
        for k, v in rec["timings"].items():
            timings[k] = timings.get(k, 0.0) + v
    records = [done[c.clip_id] for c in clips if c.clip_id in done]
    manifest, manifest_v = write_manifests(out, records, suffix)
    failures_path = layout.failures_path(out, suffix)
    failures.sort(key=lambda f: f.item)
    write_failures(failures_path, failures)
    return PreprocessReport(len(clips), len(clips) - len(todo), records, failures, time.perf_counter() - t0,
                            manifest, manifest_v, failures_path, timings if results else {})
