"""Writing one preprocessed clip (its tracks' ROI videos, audio and per-frame records, then the clip's record)
and the manifests of many; the file names and formats are :mod:`avspeech.data.layout`'s.

A track's record holds per frame: box, 468 landmarks, observed/interpolated, frame->ROI affine. ROI videos are
96x96 gray, 25 fps, H.264 lossless (luma exact); audio is 16 kHz mono PCM-16 over the track's frames (640 samples
per frame). Faces are numbered by first frame, then left to right.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

import numpy as np

from avspeech.data import layout
from avspeech.io.media import VideoWriter, write_wav
from avspeech.preprocess.config import PreprocessConfig
from avspeech.preprocess.decode import DecodedClip
from avspeech.preprocess.pipeline import ClipTracks


def write_clip(out: str | Path, clip_id: str, source: str, clip: DecodedClip, result: ClipTracks,
               config: PreprocessConfig) -> dict:
    """Write every track of one clip, then its record (the done marker); return the record."""
    out = Path(out)
    for d in layout.clip_folders(out, clip_id):  # leftovers of an interrupted run of this clip
        if d.is_dir():
            shutil.rmtree(d)
    tracks = []
    for tr in result.tracks:
        tid = layout.track_id(clip_id, tr.index)
        files = layout.track_files(tid)
        video = files["video"]
        _write_rois(out / video, tr.rois, config)
        audio, samples = "", 0
        if tr.audio is not None:
            audio = files["audio"]
            write_wav(out / audio, tr.audio, config.sample_rate, subtype="PCM_16")
            samples = int(tr.audio.size)
        meta = files["json"]
        layout.write_track_record(out, meta, {
            "id": tid, "clip": clip_id, "index": tr.index, "start": tr.start, "num_frames": tr.num_frames,
            "fps": config.fps, "roi_size": config.roi_size,
            "source_frames": clip.source_index[tr.start:tr.end].tolist(),
            "observed": tr.observed.astype(int).tolist(),
            "boxes": tr.boxes, "transforms": tr.transforms, "landmarks": tr.landmarks,
        }, decimals={"boxes": 1, "transforms": 5, "landmarks": 1})
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
    layout.write_clip_record(out, record)
    return record


def _write_rois(path: Path, rois, config: PreprocessConfig, chunk: int = 250) -> None:
    """A track's ROIs (L, size, size) (an array or an :class:`~avspeech.io.arrayfile.ArrayFile`) as its gray
    video, read ``chunk`` frames at a time."""
    n, size = len(rois), config.roi_size
    with VideoWriter(path, size, size, config.fps, gray=True, crf=config.crf) as writer:
        for s in range(0, n, chunk):
            for roi in np.asarray(rois[s:s + chunk]):
                writer.write(roi)


def write_manifests(out: str | Path, records: Iterable[dict], suffix: str = "") -> tuple[Path, Path]:
    """Write the AV manifest and the video-only manifest of ``records`` (sorted by track id); ``suffix`` names a
    shard's files (``manifest<suffix>.tsv``)."""
    out = Path(out)
    av_rows, v_rows = [], []
    for rec in records:
        for tr in rec["tracks"]:
            row = (tr["id"], tr["video"], tr["audio"], str(tr["frames"]), str(tr["samples"]))
            (av_rows if tr["audio"] else v_rows).append(row)
    paths = layout.manifest_paths(out, suffix)
    for p, rows in zip(paths, (av_rows, v_rows)):
        layout.write_manifest(p, out.resolve(), sorted(rows, key="\t".join))
    return paths
