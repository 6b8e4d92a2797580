"""``avspeech recognize CLIP``: one transcript per visible face, with word timestamps.

Every face track of the clip (``avspeech.preprocess``) is recognised from the clip's audio (the mixture of
everyone who speaks) and that face's lips, so each face gets its own speaker's words; a face that does not
speak gets an empty transcript. The mode follows the clip: audio-visual when it has audio, lip reading (video
only) when it has none. Long tracks are decoded in chunks of ``chunk_seconds`` overlapping by ``overlap_seconds``,
merged by time (:mod:`avspeech.pipeline`: streamed decoding, ROIs on disk, one chunk in memory at a time).

Outputs in ``out/``: ``speaker_<k>.srt`` per face, ``transcripts.srt`` (every face, cues prefixed by the
speaker) and ``transcripts.json`` (track, span, median box, mode, text, words with start/end seconds; seconds
per stage) last, so its presence marks a complete result.

An official AV-HuBERT seq2seq model (``--checkpoint vsr.pt`` or its converted folder) goes through the same
per-face pipeline with its own preprocessing (its ROI geometry and filterbanks) and beam search. It has no CTC
head, hence no word timings: each chunk (``chunk_seconds``, no overlap) is one segment with that chunk's times,
``"timestamps": "segment"`` in the JSON, and the SRT has a cue per segment.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from avspeech.errors import InputError
from avspeech.features import LipTransform, audio_features
from avspeech.features.audio import encoder_setting
from avspeech.pipeline import ChunkConfig, merge_words, span_chunks
from avspeech.pipeline.config import RECOGNITION_CHUNKS
from avspeech.recognition.model import AVRecognizer
from avspeech.recognition.seq2seq import is_seq2seq
from avspeech.recognition.subtitles import cues
from avspeech.recognition.transcribe import DecodeOptions, transcribe_batch
from avspeech.pretrained import RECOGNITION_SYNTH
from avspeech.timebase import FRAME_SECONDS, SAMPLES_PER_FRAME

PRETRAINED = RECOGNITION_SYNTH.path  # the bundle that ships (avspeech.pretrained)


def default_checkpoint() -> Path:
    """The checkpoint that ships with the package (trained on the synthetic corpus only)."""
    if not (PRETRAINED / "model.safetensors").is_file():
        raise InputError("no recognition checkpoint ships with this installation; pass --checkpoint (train one "
                         "with 'avspeech finetune recognition')", PRETRAINED)
    return PRETRAINED


def load_model(checkpoint: str | Path | None = None, spm: str | Path | None = None, device: str = "cpu"):
    """The recognizer of ``checkpoint``: a recognition folder of ours (:class:`AVRecognizer`), or an official
    AV-HuBERT fine-tuned seq2seq file or its converted folder
    (:class:`~avspeech.recognition.seq2seq.Seq2SeqRecognizer`; ``spm``: its SentencePiece model when the file
    carries none), on ``device`` (:func:`avspeech.device.inference_device`; decoding runs where the model is)."""
    from avspeech.device import inference_device
    from avspeech.recognition.seq2seq import is_seq2seq_folder, load_seq2seq
    from avspeech.recognition.train import load_recognizer

    device = inference_device(device)
    # a file can only be an official checkpoint: its reader says what it is if it is not one
    if checkpoint is not None and (Path(checkpoint).is_file() or is_seq2seq_folder(checkpoint)):
        return load_seq2seq(checkpoint, spm).to(device)
    if spm is not None:
        raise InputError("--spm applies to AV-HuBERT checkpoints only (ours keep their tokenizer in config.json)",
                         checkpoint)
    return load_recognizer(checkpoint or default_checkpoint()).to(device)


def recognize_segments(model, rois, audio: np.ndarray | None, mode: str, options: DecodeOptions = DecodeOptions(),
                       chunk_frames: int = 500, offset_seconds: float = 0.0) -> dict:
    """Transcript of one face over a span with a model without alignment: consecutive chunks of ``chunk_frames``
    (no overlap), each one segment ``{"start", "end", "text"}`` with the chunk's times."""
    transform = LipTransform(train=False)
    features = audio_features(encoder_setting(model, "audio_features"))
    segments = []
    for c in span_chunks(rois, audio, chunk_frames, 0):
        t = c.num_frames
        feats = None if c.audio is None or mode == "video" else features(c.audio.astype(np.float32), t)[None]
        lips = transform(c.rois)[None] if mode != "audio" else None
        (h,) = transcribe_batch(model, lips, feats, torch.tensor([t]), mode, options)
        if h.text:
            start = offset_seconds + c.start * FRAME_SECONDS
            segments.append({"start": round(start, 3), "end": round(start + t * FRAME_SECONDS, 3), "text": h.text})
    return {"text": " ".join(s["text"] for s in segments), "words": [], "segments": segments,
            "timestamps": "segment", "ctc_logp": []}


def recognize_span(model: AVRecognizer, rois, audio: np.ndarray | None, mode: str,
                   options: DecodeOptions = DecodeOptions(), chunk_frames: int = 500,
                   offset_seconds: float = 0.0, overlap_frames: int = 50, keep_logp: bool = True) -> dict:
    """Transcript of one face over a span: ``rois`` (L, 96, 96), ``audio`` (L * 640,) or None ->
    ``{"text", "words", "ctc_logp" (list of (S, V) tensors, one per chunk; empty without ``keep_logp``: a long
    span's would grow with it)}``.

    The span is decoded in chunks of ``chunk_frames`` overlapping by ``overlap_frames``
    (:func:`avspeech.pipeline.span_chunks`); each word is kept from the chunk that owns its midpoint
    (:func:`avspeech.pipeline.merge_words`), so a word across a chunk boundary is neither lost nor doubled."""
    transform = LipTransform(train=False)
    features = audio_features(encoder_setting(model, "audio_features"))
    per_chunk, logps = [], []
    for c in span_chunks(rois, audio, chunk_frames, overlap_frames):
        t = c.num_frames
        feats = None if c.audio is None else features(c.audio.astype(np.float32), t)[None]
        (h,) = transcribe_batch(model, transform(c.rois)[None], feats, torch.tensor([t]), mode, options,
                                timestamps=True)
        off = offset_seconds + c.start * FRAME_SECONDS
        words = [{**w, "start": round(w["start"] + off, 3), "end": round(w["end"] + off, 3)} for w in h.words]
        per_chunk.append((offset_seconds + c.own_start * FRAME_SECONDS, offset_seconds + c.own_end * FRAME_SECONDS,
                          words))
        if keep_logp:
            logps.append(h.ctc_logp)
    words = merge_words(per_chunk)
    return {"text": " ".join(w["word"] for w in words), "words": words, "ctc_logp": logps}


def recognize_tracks(model: AVRecognizer, clip_audio: np.ndarray | None, tracks: Sequence, num_frames: int,
                     fps: float = 25.0, options: DecodeOptions = DecodeOptions(), mode: str | None = None,
                     chunk_frames: int = 500, overlap_frames: int = 50, keep_logp: bool = True) -> list[dict]:
    """One entry per face track (``avspeech.preprocess.FaceTrack``): track, span, box, mode, text, words, and
    ``ctc_logp`` (kept for plots when ``keep_logp``; not written to JSON)."""
    seq2seq = is_seq2seq(model)
    if seq2seq:
        mode = mode or model.default_mode(clip_audio is not None)
        model.check_mode(mode)
    mode = mode or ("av" if clip_audio is not None else "video")
    if mode != "video" and clip_audio is None:
        raise ValueError(f"mode {mode!r} needs the clip's audio")
    n = num_frames * SAMPLES_PER_FRAME
    if clip_audio is not None:
        clip_audio = np.asarray(clip_audio, np.float32)
        clip_audio = clip_audio[:n] if clip_audio.size >= n else np.pad(clip_audio, (0, n - clip_audio.size))
    out = []
    for tr in tracks:
        audio = None if clip_audio is None else clip_audio[tr.start * SAMPLES_PER_FRAME:tr.end * SAMPLES_PER_FRAME]
        if seq2seq:
            r = recognize_segments(model, tr.rois, audio, mode, options, chunk_frames, offset_seconds=tr.start / fps)
        else:
            r = recognize_span(model, tr.rois, audio, mode, options, chunk_frames, offset_seconds=tr.start / fps,
                               overlap_frames=overlap_frames, keep_logp=keep_logp)
        out.append({"track": tr.index, "start_s": round(tr.start / fps, 3), "end_s": round(tr.end / fps, 3),
                    "frames": [tr.start, tr.end], "box": np.median(tr.boxes, axis=0).round(1).tolist(),
                    "mode": mode, **r})
    return out


def recognize_clip(path: str | Path, out: str | Path, model: AVRecognizer | None = None, *,
                   checkpoint: str | Path | None = None, max_faces: int = 4, mode: str | None = None,
                   options: DecodeOptions = DecodeOptions(), chunk_seconds: float = RECOGNITION_CHUNKS.chunk_seconds,
                   overlap_seconds: float = RECOGNITION_CHUNKS.overlap_seconds, keep_logp: bool = False) -> list[dict]:
    """Recognise every face of the clip at ``path`` into ``out``; returns the entries of ``transcripts.json``
    (with ``ctc_logp`` and the tracks' ``rois`` too when ``keep_logp``)."""
    from avspeech.pipeline.tracks import clip_tracks
    from avspeech.pipeline.writers import write_json, write_srt

    chunks = ChunkConfig(chunk_seconds, overlap_seconds)
    model = model if model is not None else load_model(checkpoint)
    need = f"mode {mode!r} needs it (use --mode video)" if mode in ("av", "audio") else None
    with clip_tracks(path, max_faces, need_audio=need, roi_geometry=encoder_setting(model, "roi_geometry")) as (_, result):
        timings = dict(result.timings)
        t0 = time.perf_counter()
        entries = recognize_tracks(model, result.audio, result.tracks, result.num_frames, result.fps, options, mode,
                                   *chunks.frames(result.fps), keep_logp=keep_logp)
        timings["recognition"] = time.perf_counter() - t0
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        everyone = []
        for e, tr in zip(entries, result.tracks):
            c = [(g["start"], g["end"], g["text"]) for g in e["segments"]] if "segments" in e else cues(e["words"])
            write_srt(out / f"speaker_{e['track']}.srt", c)
            everyone += [(s, t, f"[speaker {e['track']}] {text}") for s, t, text in c]
            e["srt"] = f"speaker_{e['track']}.srt"
            if keep_logp:
                e["rois"] = np.asarray(tr.rois)
        write_srt(out / "transcripts.srt", everyone)
        public = [{k: v for k, v in e.items() if k not in ("ctc_logp", "rois")} for e in entries]
        stamps = ({"timestamps": "segment", "timestamps_note": "the model has no CTC head, so no alignment: each "
                   f"segment is one decoded chunk of {chunk_seconds:g} s with that chunk's times"}
                  if is_seq2seq(model) else {"timestamps": "word"})
        write_json(out / "transcripts.json", {
            "clip": str(path), "checkpoint": str(checkpoint or PRETRAINED), "frames": result.num_frames,
            "fps": result.fps, "has_audio": result.has_audio, **stamps,
            "seconds": {k: round(v, 3) for k, v in timings.items()}, "speakers": public})
    return entries if keep_logp else public
