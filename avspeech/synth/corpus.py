"""Compose talking-face clips and write the corpus.

A clip is fully determined by ``(config, index)``: its random generator is seeded with ``[seed, index]``, so
clips can be made in any order, by any number of workers, and a resumed run makes the same files.

Per clip ``<id>`` (``clip_00000`` ...) in the output folder:

- ``<id>.mp4``: H.264 at 25 fps with the mixture as AAC at 16 kHz (AAC pads up to one 1024-sample frame at the
  end; the exact audio is in the wavs),
- ``<id>.mix.wav``: the mixture, float32, 16 kHz; equal to ``sum_k gain_k * <id>.spk<k>.wav``,
- ``<id>.spk<k>.wav``: speaker k alone, level-normalised, on the clip's timeline,
- ``<id>.json``: the sidecar (ground truth), written last: its presence marks the clip complete.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_json
from avspeech.io.media import write_video, write_wav
from avspeech.synth.faces import (CORNERS, FACE_SOURCES, FaceAsset, lip_indices, load_face, oval_indices,
                                  render_mouth)
from avspeech.synth.grammar import sample_sentence
from avspeech.synth.speech import DEFAULT_VOICES, synthesize, unknown_voices
from avspeech.synth.visemes import mouth_track, viseme_of
from avspeech.timebase import FPS, SAMPLE_RATE

CORPUS_FILE = "corpus.json"
LEVEL_DBFS = -23.0  # speech level of each clean track (RMS)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a corpus (besides the clip index)."""

    speakers: int = 1
    seed: int = 0
    width: int = 640
    height: int = 480
    gain_db_range: float = 5.0  # relative gains between speakers drawn from +-range/2 dB each
    voices: tuple[str, ...] = DEFAULT_VOICES
    faces: tuple[str, ...] = FACE_SOURCES
    rate_wpm: tuple[int, int] = (135, 185)
    min_face_height: int = 120  # px, forehead to chin
    max_face_height: float = 0.55  # fraction of the frame height
    lead_in: tuple[float, float] = (0.1, 0.5)  # s before the first speaker starts
    tail: float = 0.3  # s after the last speaker ends

    def __post_init__(self) -> None:
        if self.speakers < 1:
            raise InputError(f"--speakers must be >= 1, got {self.speakers}")
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise InputError(f"frame size must be even and >= 64 px, got {self.width}x{self.height}")
        if self.gain_db_range < 0:
            raise InputError(f"gain range must be >= 0 dB, got {self.gain_db_range}")
        if not self.voices or not self.faces:
            raise InputError("at least one voice and one face source are needed")
        # K faces side by side: each needs a column wide enough for the smallest face we render
        if self.speakers * self.min_face_height > self.width or \
                self.min_face_height > self.max_face_height * self.height:
            fit = self.width // self.min_face_height
            raise InputError(f"{self.speakers} faces do not fit in a {self.width}x{self.height} frame: each needs "
                             f"a column of about {self.min_face_height} px; at most {fit} fit (use a larger "
                             "--width or fewer --speakers)")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SynthConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def clip_id(index: int) -> str:
    return f"clip_{index:05d}"


def validate(config: SynthConfig) -> None:
    """Fail early, naming the cause, on an unknown voice or a missing face photo."""
    for v in unknown_voices(config.voices):
        raise InputError(f"unknown espeak-ng voice {v!r} (available include: {', '.join(DEFAULT_VOICES)})")
    for f in config.faces:
        load_face(f)


@dataclass
class _Speaker:
    index: int
    face: FaceAsset
    flip: bool
    voice: str
    rate_wpm: int
    pitch: int
    text: str
    onset: float = 0.0
    gain_db: float = 0.0
    clean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    phones: list = field(default_factory=list)
    words: list = field(default_factory=list)


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A smooth two-colour gradient with low-frequency texture."""
    c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w]
    t = ((xs - w / 2) * np.cos(angle) + (ys - h / 2) * np.sin(angle)) / max(w, h) + 0.5
    img = c0 + (c1 - c0) * np.clip(t, 0, 1)[..., None]
    coarse = rng.normal(0, 10, (h // 48 + 2, w // 48 + 2, 1)) + rng.normal(0, 3, (h // 48 + 2, w // 48 + 2, 3))
    noise = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img + noise, 0, 255).astype(np.float32)


def _place(rng, cfg: SynthConfig, k: int, asset: FaceAsset) -> dict[str, float]:
    """Base pose of face k: the face centre, the face height in px, a small roll."""
    col_w = cfg.width / cfg.speakers
    oval = asset.oval
    face_w = oval[:, 0].max() - oval[:, 0].min()
    face_h = oval[:, 1].max() - oval[:, 1].min()
    hi = min(cfg.max_face_height * cfg.height, 0.8 * col_w * face_h / face_w)
    height = rng.uniform(cfg.min_face_height, max(hi, cfg.min_face_height))
    margin_x = max(0.0, (col_w - height * face_w / face_h) / 2 * 0.8)
    cx = (k + 0.5) * col_w + rng.uniform(-margin_x, margin_x)
    margin_y = max(0.0, (cfg.height - 1.25 * height) / 2)
    cy = cfg.height / 2 + rng.uniform(-margin_y, margin_y)
    return {"cx": cx, "cy": cy, "height": height, "roll": rng.uniform(-6, 6)}


def _pose_at(base: dict, motion: np.ndarray, t: float, face_h_asset: float) -> tuple[float, float, float, float]:
    """Pose at time t: base pose plus slow head motion (sums of sinusoids with per-face phases)."""
    amp, fr, ph = motion[0], motion[1], motion[2]
    s = base["height"] / face_h_asset
    dx = amp[0] * base["height"] * np.sin(2 * np.pi * fr[0] * t + ph[0])
    dy = amp[1] * base["height"] * np.sin(2 * np.pi * fr[1] * t + ph[1])
    roll = base["roll"] + amp[2] * np.sin(2 * np.pi * fr[2] * t + ph[2])
    scale = s * (1 + amp[3] * np.sin(2 * np.pi * fr[3] * t + ph[3]))
    return base["cx"] + dx, base["cy"] + dy, roll, scale


def _affine(asset: FaceAsset, cx: float, cy: float, roll_deg: float, scale: float) -> np.ndarray:
    """2x3 similarity taking asset pixels to frame pixels, the face oval's centre landing on (cx, cy)."""
    oval = asset.oval
    ocx, ocy = oval[:, 0].mean(), (oval[:, 1].min() + oval[:, 1].max()) / 2
    m = cv2.getRotationMatrix2D((float(ocx), float(ocy)), float(roll_deg), float(scale))
    m[:, 2] += np.array([cx - ocx, cy - ocy])
    return m


def _composite(frame: np.ndarray, img: np.ndarray, alpha: np.ndarray, m: np.ndarray, gain: float) -> None:
    """Warp the face image by ``m`` and alpha-blend it into ``frame`` (float32, in place), only over its box."""
    h, w = img.shape[:2]
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ m.T
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1 = min(int(np.ceil(corners[:, 0].max())), frame.shape[1])
    y1 = min(int(np.ceil(corners[:, 1].max())), frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    mm = m.copy()
    mm[:, 2] -= [x0, y0]
    size = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(img, mm, size, flags=cv2.INTER_LINEAR).astype(np.float32) * gain
    a = cv2.warpAffine(alpha, mm, size, flags=cv2.INTER_LINEAR)[..., None]
    region = frame[y0:y1, x0:x1]
    region *= 1 - a
    region += a * np.clip(face, 0, 255)


def render_clip(config: SynthConfig, index: int) -> dict[str, Any]:
    """Make one clip in memory: ``frames`` (T, H, W, 3) uint8, ``mixture`` (N,), ``clean`` (K, N) float32 and the
    ``sidecar`` dict (see the module docstring)."""
    rng = np.random.default_rng([config.seed, index])
    k_spk = config.speakers
    # distinct faces while there are enough, in random order
    faces = [config.faces[i % len(config.faces)] for i in rng.permutation(max(k_spk, len(config.faces)))][:k_spk]
    speakers = []
    for k in range(k_spk):
        flip = bool(rng.random() < 0.5)
        asset = load_face(faces[k])
        speakers.append(_Speaker(
            index=k, face=asset.flipped() if flip else asset, flip=flip,
            voice=config.voices[rng.integers(len(config.voices))],
            rate_wpm=int(rng.integers(config.rate_wpm[0], config.rate_wpm[1] + 1)),
            pitch=int(rng.integers(30, 71)), text=sample_sentence(rng)))

    # speech: each speaker starts while the previous one still talks
    t = rng.uniform(*config.lead_in)
    for spk in speakers:
        utt = synthesize(spk.text, spk.voice, spk.rate_wpm, spk.pitch)
        rms = float(np.sqrt(np.mean(utt.audio.astype(np.float64) ** 2)))
        spk.clean = (utt.audio * (10 ** (LEVEL_DBFS / 20) / max(rms, 1e-8))).astype(np.float32)
        spk.onset = round(t * SAMPLE_RATE) / SAMPLE_RATE
        spk.phones = [(p, s + spk.onset, e + spk.onset) for p, s, e in utt.phones]
        spk.words = [(w, s + spk.onset, e + spk.onset) for w, s, e in utt.words]
        t = spk.onset + rng.uniform(0.1, 0.6) * utt.duration
    end = max(s.onset + len(s.clean) / SAMPLE_RATE for s in speakers) + config.tail
    n_frames = int(math.ceil(end * FPS))
    n_samples = n_frames * SAMPLE_RATE // FPS

    clean = np.zeros((k_spk, n_samples), np.float32)
    for spk in speakers:
        start = int(round(spk.onset * SAMPLE_RATE))
        seg = spk.clean[: n_samples - start]
        clean[spk.index, start:start + len(seg)] = seg
    gains_db = rng.uniform(-config.gain_db_range / 2, config.gain_db_range / 2, k_spk) if k_spk > 1 else np.zeros(1)
    gains = 10 ** (gains_db / 20)
    def mix(g: np.ndarray) -> np.ndarray:  # elementwise, not BLAS: the same bits whatever the thread count
        out = np.zeros(n_samples, np.float64)
        for k in range(k_spk):
            out += g[k] * clean[k].astype(np.float64)
        return out

    peak = np.abs(mix(gains)).max()
    if peak > 0.9:  # keep the mixture below full scale; the gains carry the scaling
        gains = gains * 0.9 / peak
    mixture = mix(gains).astype(np.float32)

    # video
    times = np.arange(n_frames) / FPS
    bg = _background(rng, config.width, config.height)
    poses, motions, shades = [], [], []
    for spk in speakers:
        poses.append(_place(rng, config, spk.index, spk.face))
        motions.append(np.stack([np.array([0.03, 0.02, 3.0, 0.03]) * rng.uniform(0.3, 1.0, 4),
                                 rng.uniform(0.15, 0.6, 4), rng.uniform(0, 2 * np.pi, 4)]))
        shades.append(rng.uniform(0.75, 1.2))
    drift = rng.uniform(-0.08, 0.08)  # slow global brightness change over the clip
    tracks = [mouth_track(spk.phones, times) for spk in speakers]
    face_heights = [np.ptp(spk.face.oval[:, 1]) for spk in speakers]  # constant per face: not per frame
    frames = np.empty((n_frames, config.height, config.width, 3), np.uint8)
    per_face: list[dict[str, list]] = [{"box": [], "mouth": [], "mouth_width": []} for _ in speakers]
    oval_idx, lip_idx = oval_indices(), lip_indices()
    for f in range(n_frames):
        frame = bg * (1 + drift * f / max(n_frames - 1, 1))
        for spk, base, motion, shade, face_h, (opening, rounding) in zip(speakers, poses, motions, shades,
                                                                          face_heights, tracks):
            asset = spk.face
            img, lm = render_mouth(asset, opening[f], rounding[f])
            m = _affine(asset, *_pose_at(base, motion, times[f], face_h))
            _composite(frame, img, asset.alpha, m, shade)
            pts = lm @ m[:, :2].T + m[:, 2]
            oval = pts[oval_idx]
            rec = per_face[spk.index]
            rec["box"].append([round(float(v), 2) for v in (*oval.min(0), *oval.max(0))])
            rec["mouth"].append([round(float(v), 2) for v in pts[lip_idx].mean(0)])
            rec["mouth_width"].append(round(float(np.linalg.norm(pts[CORNERS[0]] - pts[CORNERS[1]])), 2))
        frames[f] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    cid = clip_id(index)
    sidecar = {
        "id": cid, "seed": config.seed, "index": index, "fps": FPS, "sample_rate": SAMPLE_RATE,
        "num_frames": n_frames, "num_samples": n_samples, "width": config.width, "height": config.height,
        "video": f"{cid}.mp4", "mixture_wav": f"{cid}.mix.wav",
        "speakers": [{
            "index": spk.index, "face_source": spk.face.name, "flip": spk.flip, "voice": spk.voice,
            "rate_wpm": spk.rate_wpm, "pitch": spk.pitch, "text": spk.text,
            "onset": spk.onset, "gain": float(gains[spk.index]), "gain_db": float(20 * np.log10(gains[spk.index])),
            "wav": f"{cid}.spk{spk.index}.wav",
            "words": [{"word": w, "start": round(s, 4), "end": round(e, 4)} for w, s, e in spk.words],
            "phones": [{"phone": p, "start": round(s, 4), "end": round(e, 4), "viseme": viseme_of(p)}
                       for p, s, e in spk.phones],
            "openness": [round(float(v), 4) for v in tracks[spk.index][0]],
            "rounding": [round(float(v), 4) for v in tracks[spk.index][1]],
            **per_face[spk.index],
        } for spk in speakers],
    }
    return {"frames": frames, "mixture": mixture, "clean": clean, "sidecar": sidecar}


def synthesize_clip(config: SynthConfig, index: int, out_dir: str | Path) -> dict[str, Any]:
    """Render clip ``index`` and write its files into ``out_dir`` (sidecar last); return the sidecar."""
    out_dir = Path(out_dir)
    clip = render_clip(config, index)
    sc = clip["sidecar"]
    write_video(out_dir / sc["video"], clip["frames"], FPS, clip["mixture"], SAMPLE_RATE)
    write_wav(out_dir / sc["mixture_wav"], clip["mixture"], SAMPLE_RATE)
    for spk in sc["speakers"]:
        write_wav(out_dir / spk["wav"], clip["clean"][spk["index"]], SAMPLE_RATE)
    atomic_write_json(out_dir / f"{sc['id']}.json", sc)
    return sc


def is_complete(out_dir: Path, index: int) -> bool:
    sidecar = out_dir / f"{clip_id(index)}.json"
    if not sidecar.is_file():
        return False
    try:
        sc = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    names = [sc["video"], sc["mixture_wav"]] + [s["wav"] for s in sc["speakers"]]
    return all((out_dir / n).is_file() for n in names)


def prepare_output(out_dir: str | Path, config: SynthConfig, clips: int, *, overwrite: bool = False,
                   resume: bool = False) -> list[int]:
    """Check ``out_dir`` and record the config; return the clip indices still to make.

    A non-empty folder is refused unless ``overwrite`` (its corpus files are removed) or ``resume`` (the clips
    already complete are kept; the config must match the one it was started with)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a folder", out)
    existing = [p for p in out.iterdir()] if out.is_dir() else []
    meta = {"config": config.to_json(), "clips": clips}
    if existing and not (overwrite or resume):
        raise InputError("output folder is not empty; pass --resume to finish an interrupted run or "
                         "--overwrite to start again", out)
    if existing and resume:
        prev = out / CORPUS_FILE
        if prev.is_file():
            old = json.loads(prev.read_text())
            if old.get("config") != meta["config"]:
                diff = {k: (old.get("config", {}).get(k), v) for k, v in meta["config"].items()
                        if old.get("config", {}).get(k) != v}
                raise InputError(f"cannot resume: the folder was made with other settings {diff} "
                                 "(old, new)", out)
    if existing and overwrite:
        for p in existing:
            if p.name == CORPUS_FILE or p.name.startswith("clip_") or p.name.startswith(".clip_"):
                p.unlink() if p.is_file() else shutil.rmtree(p)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / CORPUS_FILE, meta)
    return [i for i in range(clips) if not (resume and is_complete(out, i))]


def _make(args: tuple[SynthConfig, int, str]) -> dict[str, Any]:
    config, index, out = args
    sc = synthesize_clip(config, index, out)
    return {"id": sc["id"], "frames": sc["num_frames"], "texts": [s["text"] for s in sc["speakers"]]}


def synthesize_corpus(out_dir: str | Path, config: SynthConfig, clips: int, *, workers: int = 1,
                      overwrite: bool = False, resume: bool = False):
    """Write ``clips`` clips into ``out_dir``; returns ``(made, failures, skipped)`` (see
    :func:`avspeech.batch.run_batch`)."""
    from avspeech.batch import run_batch

    validate(config)
    todo = prepare_output(out_dir, config, clips, overwrite=overwrite, resume=resume)
    made, failures = run_batch([(config, i, str(out_dir)) for i in todo], _make, workers=workers,
                               desc="synth", unit="clip", label=lambda item: clip_id(item[1]))
    return made, failures, clips - len(todo)
