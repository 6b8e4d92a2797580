"""``avspeech separate CLIP``: one waveform per visible face, with the preprocessing API and a separation model.

Every face track of the clip (``avspeech.preprocess``) is separated from the clip's audio with that face's lips:
the output is the voice of that face over the frames where the face is tracked, silence elsewhere. Long tracks
run in chunks of ``chunk_seconds`` that overlap by ``overlap_seconds`` and are cross-faded, and the video is
decoded as a stream (tracking, ROIs and the output videos are three passes over it), so memory grows only with
what is kept per frame (landmarks, mouth ROIs, audio), not with the frames themselves.

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
from avspeech.features import LipTransform, filterbank_104
from avspeech.separation.model import SAMPLES_PER_FRAME, AVSeparator

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained" / "separation_synth"
WRITERS_PER_PASS = 4  # output videos encoded per pass over the clip's frames
SPECTROGRAM_SECONDS = 30.0  # spectrograms.png shows at most the clip's first 30 s


def default_checkpoint() -> Path:
    """The checkpoint that ships with the package (trained on the synthetic corpus only)."""
    if not (PRETRAINED / "model.safetensors").is_file():
        raise InputError("no separation checkpoint ships with this installation; pass --checkpoint (train one "
                         "with 'avspeech finetune separation')", PRETRAINED)
    return PRETRAINED


def load_model(checkpoint: str | Path | None = None) -> AVSeparator:
    from avspeech.separation.train import load_separator

    model = load_separator(checkpoint or default_checkpoint())
    if model.cfg.mode != "av":
        raise InputError("this checkpoint is the audio-only baseline: it cannot tell faces apart; use an "
                         "audio-visual one", checkpoint)
    return model


@torch.no_grad()
def separate_span(model: AVSeparator, audio: np.ndarray, rois: np.ndarray, chunk_frames: int = 250,
                  overlap_frames: int = 25) -> np.ndarray:
    """The voice of the face whose mouth ROIs are ``rois`` (L, 96, 96) in ``audio`` (L * 640,) -> (L * 640,).

    Chunks of ``chunk_frames`` frames overlapping by ``overlap_frames``, each weighted by a window that ramps
    linearly over the overlaps, summed and normalised by the summed weights."""
    n_frames = len(rois)
    if audio.shape[0] != n_frames * SAMPLES_PER_FRAME:
        raise ValueError(f"{audio.shape[0]} samples for {n_frames} frames; expected {n_frames * SAMPLES_PER_FRAME}")
    if overlap_frames * 2 > chunk_frames:
        raise ValueError(f"overlap {overlap_frames} must be at most half the chunk {chunk_frames}")
    transform = LipTransform(train=False)
    out = np.zeros(audio.shape[0], np.float64)
    weight = np.zeros(audio.shape[0], np.float64)
    step = chunk_frames - overlap_frames
    starts = list(range(0, max(n_frames - overlap_frames, 1), step))
    ramp = overlap_frames * SAMPLES_PER_FRAME
    for s in starts:
        e = min(s + chunk_frames, n_frames)
        seg = audio[s * SAMPLES_PER_FRAME:e * SAMPLES_PER_FRAME].astype(np.float32)
        t = e - s
        est = model(torch.from_numpy(seg)[None], transform(rois[s:e])[None], filterbank_104(seg, t)[None],
                    torch.tensor([t]))[0, 0].numpy()
        w = np.ones(len(seg))
        if ramp and s > 0:
            w[:ramp] = np.linspace(0, 1, ramp + 2)[1:-1]
        if ramp and e < n_frames:
            w[-ramp:] = np.linspace(1, 0, ramp + 2)[1:-1]
        out[s * SAMPLES_PER_FRAME:e * SAMPLES_PER_FRAME] += w * est
        weight[s * SAMPLES_PER_FRAME:e * SAMPLES_PER_FRAME] += w
        if e == n_frames:
            break
    return (out / np.maximum(weight, 1e-8)).astype(np.float32)


@dataclass
class Speaker:
    track: int
    start: int  # first frame
    end: int  # one past the last frame
    box: list[float]  # median x0, y0, x1, y1
    audio: np.ndarray  # ((end - start) * 640,) the voice over the track's span

    def full(self, num_frames: int) -> np.ndarray:
        """(num_frames * 640,) the voice on the clip's timeline, silence where the face is not tracked."""
        wav = np.zeros(num_frames * SAMPLES_PER_FRAME, np.float32)
        wav[self.start * SAMPLES_PER_FRAME:self.end * SAMPLES_PER_FRAME] = self.audio
        return wav


def separate_tracks(model: AVSeparator, clip_audio: np.ndarray, tracks: Sequence, num_frames: int,
                    chunk_frames: int = 250, overlap_frames: int = 25) -> list[Speaker]:
    """One :class:`Speaker` per face track (``avspeech.preprocess.FaceTrack``) of a clip of ``num_frames``."""
    n = num_frames * SAMPLES_PER_FRAME
    clip_audio = np.asarray(clip_audio, np.float32)
    clip_audio = clip_audio[:n] if clip_audio.size >= n else np.pad(clip_audio, (0, n - clip_audio.size))
    out = []
    for tr in tracks:
        s0, s1 = tr.start * SAMPLES_PER_FRAME, tr.end * SAMPLES_PER_FRAME
        wav = separate_span(model, clip_audio[s0:s1], tr.rois, chunk_frames, overlap_frames)
        out.append(Speaker(tr.index, tr.start, tr.end, np.median(tr.boxes, axis=0).round(1).tolist(), wav))
    return out


def separate_clip(path: str | Path, out: str | Path, model: AVSeparator | None = None, *,
                  checkpoint: str | Path | None = None, max_faces: int = 4, chunk_seconds: float = 10.0,
                  overlap_seconds: float = 1.0) -> list[dict]:
    """Separate every face of the clip at ``path`` into ``out`` with ``model`` (default: loaded from
    ``checkpoint``, or the one that ships); returns the entries of ``speakers.json``."""
    from contextlib import ExitStack

    import cv2

    from avspeech.io.atomic import atomic_write_json
    from avspeech.io.media import VideoWriter, write_wav
    from avspeech.preprocess.config import PreprocessConfig
    from avspeech.preprocess.pipeline import Preprocessor, require_faces

    model = model if model is not None else load_model(checkpoint)
    cfg = PreprocessConfig(max_faces=max_faces)
    with Preprocessor(cfg) as pre:  # frames are streamed: memory does not grow with the clip
        clip, result = pre.process_file(path, stream=True)
    if not result.has_audio:
        raise InputError("the clip has no audio stream: there is nothing to separate", path)
    require_faces(result, path, cfg)
    fps = result.fps
    timings = dict(result.timings)
    t0 = time.perf_counter()
    speakers = separate_tracks(model, result.audio, result.tracks, result.num_frames,
                               int(round(chunk_seconds * fps)), int(round(overlap_seconds * fps)))
    timings["separation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = result.num_frames
    for spk in speakers:
        write_wav(out / f"speaker_{spk.track}.wav", spk.full(n), result.sample_rate)
    # more passes over the frames write the speakers' videos (face boxed) and thumbnails, a few at a time
    h, w = result.height // 2 * 2, result.width // 2 * 2
    for g in range(0, len(speakers), WRITERS_PER_PASS):
        group = list(zip(speakers[g:g + WRITERS_PER_PASS], result.tracks[g:g + WRITERS_PER_PASS]))
        with ExitStack() as stack:
            writers = [stack.enter_context(VideoWriter(out / f"speaker_{spk.track}.mp4", w, h, fps, audio=spk.full(n),
                                                       sample_rate=result.sample_rate)) for spk, _ in group]
            for t, frame in enumerate(clip.frames):
                for (spk, tr), writer in zip(group, writers):
                    img = frame[:h, :w]
                    if tr.start <= t < tr.end:
                        x0, y0, x1, y1 = (int(round(v)) for v in tr.boxes[t - tr.start])
                        if t == tr.start + tr.num_frames // 2:
                            thumb = cv2.resize(frame[max(y0, 0):max(y1, 1), max(x0, 0):max(x1, 1)], (96, 96))
                            cv2.imwrite(str(out / f"speaker_{tr.index}.jpg"), cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR))
                        img = img.copy()
                        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 255, 0), 2)
                    writer.write(img)
    entries = []
    for spk in speakers:
        k = spk.track
        active = spk.audio
        level = 10 * np.log10(float(np.mean(np.square(active, dtype=np.float64))) + 1e-12) if active.size else None
        entries.append({"track": k, "start_s": round(spk.start / fps, 3), "end_s": round(spk.end / fps, 3),
                        "frames": [spk.start, spk.end], "box": spk.box, "thumbnail": f"speaker_{k}.jpg",
                        "wav": f"speaker_{k}.wav", "video": f"speaker_{k}.mp4",
                        "level_dbfs": None if level is None else round(level, 1)})
    from avspeech.plots import spectrograms

    shown = min(n, int(SPECTROGRAM_SECONDS * fps)) * SAMPLES_PER_FRAME  # a long clip: its beginning
    spectrograms(out / "spectrograms.png", [("mixture", result.audio[:shown])]
                 + [(f"speaker {s.track}", s.full(n)[:shown]) for s in speakers], result.sample_rate)
    timings["writing"] = time.perf_counter() - t0
    atomic_write_json(out / "speakers.json", {
        "clip": str(path), "checkpoint": str(checkpoint or PRETRAINED), "frames": result.num_frames, "fps": fps,
        "seconds": {k: round(v, 3) for k, v in timings.items()}, "speakers": entries})
    return entries


def synthetic_improvements(clip: str | Path, out: str | Path) -> list[dict[str, float]]:
    """For a clip made by ``avspeech synth`` separated into ``out``: per ``speakers.json`` entry, the metrics
    of ``speaker_<k>.wav`` against the clean voice (``.spk<i>.wav``, gained as in the mixture) of the synthetic
    speaker whose face the track follows, over the track's span (no PESQ/STOI)."""
    import json

    from avspeech.io.media import read_wav
    from avspeech.separation.metrics import score
    from avspeech.synth.splits import speaker_of_track

    clip, out = Path(clip), Path(out)
    sidecar = json.loads(clip.with_suffix(".json").read_text())
    mixture = read_wav(clip.with_suffix(".mix.wav"), 16000)[0]
    result = []
    for e in json.loads((out / "speakers.json").read_text())["speakers"]:
        s0, s1 = e["frames"]
        i = speaker_of_track(np.tile(np.asarray(e["box"], np.float64), (s1 - s0, 1)), s0, sidecar)
        spk = sidecar["speakers"][i]
        ref = read_wav(clip.with_name(spk["wav"]), 16000)[0] * spk["gain"]
        est = read_wav(out / e["wav"], 16000)[0]
        a, b = s0 * SAMPLES_PER_FRAME, min(s1 * SAMPLES_PER_FRAME, len(ref), len(est), len(mixture))
        result.append({"speaker": i, **score(est[a:b], ref[a:b], mixture[a:b], perceptual=False)})
    return result
