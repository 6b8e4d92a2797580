"""The on-disk layout of preprocessed data (AV-HuBERT's: a root folder, a TSV manifest, per-utterance files).

    OUT/video/<clip>/face<k>.mp4   mouth ROI, 96x96 gray, 25 fps, H.264 lossless (luma exact)
    OUT/audio/<clip>/face<k>.wav   16 kHz mono PCM-16 over the track's frames (640 samples per frame)
    OUT/tracks/<clip>/face<k>.json per frame: box, 468 landmarks, observed/interpolated, frame->ROI affine
    OUT/clips/<clip>.json          the clip's record; written last, it marks the clip as done
    OUT/manifest.tsv               root line, then id, video, audio, frames, samples per track (paths relative)
    OUT/manifest_video_only.tsv    the same for tracks of clips without an audio stream (audio column empty)
    OUT/failures.tsv               file, cause

Track ids are ``<clip>/face<k>``: faces are numbered by first frame, then left to right.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np

from avspeech.io.atomic import atomic_write_text
from avspeech.io.media import write_video, write_wav
from avspeech.preprocess.config import PreprocessConfig
from avspeech.preprocess.decode import DecodedClip
from avspeech.preprocess.pipeline import ClipTracks

MANIFEST = "manifest.tsv"
MANIFEST_VIDEO_ONLY = "manifest_video_only.tsv"
FAILURES = "failures.tsv"


def clip_record_path(out: str | Path, clip_id: str) -> Path:
    return Path(out) / "clips" / f"{clip_id}.json"


def load_record(out: str | Path, clip_id: str) -> dict | None:
    """The record of a finished clip, or None if it is not (completely) done."""
    p = clip_record_path(out, clip_id)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json_compact(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, separators=(",", ":")) + "\n")


def write_clip(out: str | Path, clip_id: str, source: str, clip: DecodedClip, result: ClipTracks,
               config: PreprocessConfig) -> dict:
    """Write every track of one clip, then its record (the done marker); return the record."""
    out = Path(out)
    for sub in ("video", "audio", "tracks"):  # leftovers of an interrupted run of this clip
        d = out / sub / clip_id
        if d.is_dir():
            shutil.rmtree(d)
    tracks = []
    for tr in result.tracks:
        tid = f"{clip_id}/face{tr.index}"
        video = f"video/{tid}.mp4"
        write_video(out / video, tr.rois, fps=config.fps, gray=True, crf=config.crf)
        audio, samples = "", 0
        if tr.audio is not None:
            audio = f"audio/{tid}.wav"
            write_wav(out / audio, tr.audio, config.sample_rate, subtype="PCM_16")
            samples = int(tr.audio.size)
        meta = f"tracks/{tid}.json"
        _write_json_compact(out / meta, {
            "id": tid, "clip": clip_id, "index": tr.index, "start": tr.start, "num_frames": tr.num_frames,
            "fps": config.fps, "roi_size": config.roi_size,
            "source_frames": clip.source_index[tr.start:tr.end].tolist(),
            "observed": tr.observed.astype(int).tolist(),
            "boxes": np.round(tr.boxes, 1).tolist(),
            "transforms": np.round(tr.transforms, 5).tolist(),
            "landmarks": np.round(tr.landmarks, 1).tolist(),
        })
        tracks.append({"id": tid, "index": tr.index, "video": video, "audio": audio, "json": meta,
                       "start": tr.start, "frames": tr.num_frames, "samples": samples,
                       "interpolated": int((~tr.observed).sum())})
    info = clip.info
    record = {
        "id": clip_id, "source": source, "fps": config.fps, "sample_rate": config.sample_rate,
        "num_frames": result.num_frames, "num_samples": 0 if clip.audio is None else int(clip.audio.size),
        "width": result.width, "height": result.height, "rotation": info.rotation,
        "source_fps": info.source_fps, "source_frames": int(len(clip.source_times)),
        "has_audio": result.has_audio, "flags": [] if result.has_audio else ["no_audio"],
        "tracks": tracks, "timings": {k: round(v, 6) for k, v in result.timings.items()},
    }
    atomic_write_text(clip_record_path(out, clip_id), json.dumps(record, indent=1) + "\n")
    return record


def write_manifests(out: str | Path, records: Iterable[dict], suffix: str = "") -> tuple[Path, Path]:
    """Write the AV manifest and the video-only manifest of ``records`` (sorted by track id); ``suffix`` names a
    shard's files (``manifest<suffix>.tsv``)."""
    out = Path(out)
    root = str(out.resolve())
    av_rows, v_rows = [], []
    for rec in records:
        for tr in rec["tracks"]:
            row = (tr["id"], tr["video"], tr["audio"], str(tr["frames"]), str(tr["samples"]))
            (av_rows if tr["audio"] else v_rows).append("\t".join(row))
    paths = []
    for name, rows in ((MANIFEST, av_rows), (MANIFEST_VIDEO_ONLY, v_rows)):
        p = out / name.replace(".tsv", f"{suffix}.tsv")
        atomic_write_text(p, "\n".join([root] + sorted(rows)) + "\n")
        paths.append(p)
    return paths[0], paths[1]
