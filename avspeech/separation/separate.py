"""``avspeech separate CLIP``: one waveform per visible face, with the preprocessing API and a separation model.

Every face track of the clip (``avspeech.preprocess``) is separated from the clip's audio with that face's lips:
the output is the voice of that face over the frames where the face is tracked, silence elsewhere. Long tracks
run in chunks of ``chunk_seconds`` that overlap by ``overlap_seconds`` and are cross-faded. The path from the
clip to the outputs is :mod:`avspeech.pipeline`: the video is decoded as a stream (tracking, ROIs and the output
videos are three passes over it); the ROIs and each face's separated voice wait on disk (written and read a
block at a time), so memory grows only with the clip's audio and a few numbers per frame.

Outputs in ``out/``: ``speaker_<k>.wav`` (16 kHz, the clip's whole length), ``speaker_<k>.mp4`` (the clip with
that face boxed and that speaker's audio), ``speaker_<k>.jpg`` (a thumbnail of the face), ``speakers.json``
(track id, time span, median box, thumbnail, level; seconds per stage) and ``spectrograms.png`` (mixture and
each speaker). ``speakers.json`` is written last, so its presence marks a complete result.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from avspeech.errors import InputError
from avspeech.features import LipTransform, audio_features
from avspeech.features.audio import encoder_setting
from avspeech.io.arrayfile import TempArrays
from avspeech.pipeline import ChunkConfig, CrossFade, span_chunks
from avspeech.pipeline.stitch import OnTimeline
from avspeech.pipeline.config import SEPARATION_CHUNKS
from avspeech.separation.model import AVSeparator
from avspeech.pretrained import SEPARATION_SYNTH
from avspeech.timebase import SAMPLES_PER_FRAME

PRETRAINED = SEPARATION_SYNTH.path  # the bundle that ships (avspeech.pretrained)
SPECTROGRAM_SECONDS = 30.0  # spectrograms.png shows at most the clip's first 30 s


def default_checkpoint() -> Path:
    """The checkpoint that ships with the package (trained on the synthetic corpus only)."""
    if not (PRETRAINED / "model.safetensors").is_file():
        raise InputError("no separation checkpoint ships with this installation; pass --checkpoint (train one "
                         "with 'avspeech finetune separation')", PRETRAINED)
    return PRETRAINED


def load_model(checkpoint: str | Path | None = None, device: str | torch.device = "cpu") -> AVSeparator:
    """The separator of ``checkpoint`` (default: the one that ships) on ``device`` ("auto": CUDA when there is
    one); :func:`separate_span` runs where the model is."""
    from avspeech.device import inference_device
    from avspeech.separation.train import load_separator

    device = inference_device(device)
    model = load_separator(checkpoint or default_checkpoint())
    if model.cfg.mode != "av":
        raise InputError("this checkpoint is the audio-only baseline: it cannot tell faces apart; use an "
                         "audio-visual one", checkpoint)
    return model.to(device)


@torch.no_grad()
def separate_span(model: AVSeparator, audio: np.ndarray, rois, chunk_frames: int = 250,
                  overlap_frames: int = 25, out=None):
    """The voice of the face whose mouth ROIs are ``rois`` (L, 96, 96) in ``audio`` (L * 640,) -> (L * 640,).

    Chunks of ``chunk_frames`` frames overlapping by ``overlap_frames`` (:func:`avspeech.pipeline.span_chunks`),
    each weighted by a window that ramps linearly over the overlaps, summed and normalised by the summed weights
    (:class:`avspeech.pipeline.CrossFade`), into ``out`` if given (e.g. a 1-D ``ArrayFile``; returned), else into
    a new float32 array."""
    if audio.shape[0] != len(rois) * SAMPLES_PER_FRAME:
        raise ValueError(f"{audio.shape[0]} samples for {len(rois)} frames; expected {len(rois) * SAMPLES_PER_FRAME}")
    transform = LipTransform(train=False)
    features = audio_features(encoder_setting(model, "audio_features"))
    fade = CrossFade(len(rois), overlap_frames, out)
    dev = next((w.device for w in model.parameters()), torch.device("cpu"))  # where the model is
    for c in span_chunks(rois, audio, chunk_frames, overlap_frames):
        seg = c.audio.astype(np.float32)
        t = c.num_frames
        est = model(torch.from_numpy(seg)[None].to(dev), transform(c.rois)[None].to(dev),
                    features(seg, t)[None].to(dev), torch.tensor([t], device=dev))[0, 0]
        fade.add(c, est.float().cpu().numpy())
    return fade.out


LEVEL_BLOCK = 1 << 20  # samples summed at a time for a speaker's level


@dataclass
class Speaker:
    track: int
    start: int  # first frame
    end: int  # one past the last frame
    box: list[float]  # median x0, y0, x1, y1
    audio: np.ndarray  # ((end - start) * 640,) the voice over the track's span (an array, or an ArrayFile)

    def full(self, num_frames: int) -> OnTimeline:
        """(num_frames * 640,) the voice on the clip's timeline, silence where the face is not tracked, read by
        slices (``np.asarray`` for the whole of it)."""
        return OnTimeline(self.audio, self.start * SAMPLES_PER_FRAME, num_frames * SAMPLES_PER_FRAME)

    def level_dbfs(self) -> float | None:
        """Mean power over the track's span in dB re full scale (None for an empty span), summed in float64 a
        block at a time (for spans over 2^20 samples the last bits can differ from ``np.mean``'s pairwise sum;
        the JSON rounds to 0.1 dB)."""
        n = len(self.audio)
        if not n:
            return None
        power = sum(float(np.square(np.asarray(self.audio[s:s + LEVEL_BLOCK]), dtype=np.float64).sum())
                    for s in range(0, n, LEVEL_BLOCK))
        return 10 * np.log10(power / n + 1e-12)


def separate_tracks(model: AVSeparator, clip_audio: np.ndarray, tracks: Sequence, num_frames: int,
                    chunk_frames: int = 250, overlap_frames: int = 25, store=None) -> list[Speaker]:
    """One :class:`Speaker` per face track (``avspeech.preprocess.FaceTrack``) of a clip of ``num_frames``.
    ``store(samples)`` gives what each voice is written into (e.g. a 1-D ``ArrayFile``); default arrays."""
    n = num_frames * SAMPLES_PER_FRAME
    clip_audio = np.asarray(clip_audio, np.float32)
    clip_audio = clip_audio[:n] if clip_audio.size >= n else np.pad(clip_audio, (0, n - clip_audio.size))
    out = []
    for tr in tracks:
        s0, s1 = tr.start * SAMPLES_PER_FRAME, tr.end * SAMPLES_PER_FRAME
        wav = separate_span(model, clip_audio[s0:s1], tr.rois, chunk_frames, overlap_frames,
                            None if store is None else store(s1 - s0))
        out.append(Speaker(tr.index, tr.start, tr.end, np.median(tr.boxes, axis=0).round(1).tolist(), wav))
    return out


def separate_clip(path: str | Path, out: str | Path, model: AVSeparator | None = None, *,
                  checkpoint: str | Path | None = None, max_faces: int = 4,
                  chunk_seconds: float = SEPARATION_CHUNKS.chunk_seconds,
                  overlap_seconds: float = SEPARATION_CHUNKS.overlap_seconds) -> list[dict]:
    """Separate every face of the clip at ``path`` into ``out`` with ``model`` (default: loaded from
    ``checkpoint``, or the one that ships); returns the entries of ``speakers.json``."""
    from avspeech.pipeline.tracks import clip_tracks
    from avspeech.pipeline.writers import write_face_videos, write_json, write_wav
    from avspeech.plots import spectrograms

    chunks = ChunkConfig(chunk_seconds, overlap_seconds)
    model = model if model is not None else load_model(checkpoint)
    with clip_tracks(path, max_faces, need_audio="there is nothing to separate",
                     roi_geometry=encoder_setting(model, "roi_geometry")) as (clip, result):
        fps, n = result.fps, result.num_frames
        timings = dict(result.timings)
        t0 = time.perf_counter()
        with TempArrays() as voices:  # each face's voice on disk until written (a long clip)
            speakers = separate_tracks(model, result.audio, result.tracks, n, *chunks.frames(fps),
                                       store=lambda samples: voices((samples,), np.float32))
            timings["separation"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            for spk in speakers:
                write_wav(out / f"speaker_{spk.track}.wav", spk.full(n), result.sample_rate)
            # more passes over the frames write the speakers' videos (face boxed) and thumbnails, a few at a time
            write_face_videos(out, clip.frames, result.tracks, [spk.full(n) for spk in speakers], fps, result.height,
                              result.width, result.sample_rate)
            entries = []
            for spk in speakers:
                k = spk.track
                level = spk.level_dbfs()
                entries.append({"track": k, "start_s": round(spk.start / fps, 3),
                                "end_s": round(spk.end / fps, 3), "frames": [spk.start, spk.end], "box": spk.box,
                                "thumbnail": f"speaker_{k}.jpg", "wav": f"speaker_{k}.wav",
                                "video": f"speaker_{k}.mp4", "level_dbfs": None if level is None else round(level, 1)})
            shown = min(n, int(SPECTROGRAM_SECONDS * fps)) * SAMPLES_PER_FRAME  # a long clip: its beginning
            spectrograms(out / "spectrograms.png", [("mixture", result.audio[:shown])]
                         + [(f"speaker {s.track}", s.full(n)[:shown]) for s in speakers], result.sample_rate)
            timings["writing"] = time.perf_counter() - t0
            write_json(out / "speakers.json", {
                "clip": str(path), "checkpoint": str(checkpoint or PRETRAINED), "frames": n, "fps": fps,
                "seconds": {k: round(v, 3) for k, v in timings.items()}, "speakers": entries})
    return entries
