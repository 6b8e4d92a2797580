"""Video and audio files: write mp4 with PyAV (H.264 + AAC), write wav with soundfile, read with PyAV (audio, gray
ROI videos) and decord (whole RGB videos).

torchaudio 2.11's ``load``/``save`` need torchcodec and a system FFmpeg, which a pip-only install lacks; PyAV and
decord carry their own FFmpeg.
"""
from __future__ import annotations

from fractions import Fraction
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from avspeech.errors import InputError
from avspeech.io.atomic import atomic_path
from avspeech.timebase import SAMPLE_RATE

_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile command (sndfile.h)


_WRITE_BLOCK = 1 << 20  # samples converted and written at a time


def _sliceable(audio):
    """``audio`` as it is when it is read by slices (an array, an ``ArrayFile``, an ``OnTimeline``), else as a
    float32 array (a list)."""
    return audio if hasattr(audio, "shape") and hasattr(audio, "__getitem__") else np.asarray(audio, np.float32)


class VideoWriter:
    """Frames written one at a time as H.264 at ``fps`` (``crf=0`` lossless; ``gray`` frames (H, W) go into the
    luma plane exactly), with ``audio`` (N,) float32 in [-1, 1] muxed as AAC at ``sample_rate`` on close (read
    a block at a time: an array, or anything read by slices, e.g. a waveform on disk). The
    file appears atomically when the ``with`` block ends without error; the same inputs give the same bytes.

    >>> with VideoWriter("out.mp4", 640, 480, audio=wav) as w:  # doctest: +SKIP
    ...     for frame in frames:
    ...         w.write(frame)
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 25.0,
                 audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE, *, crf: int = 18, gray: bool = False):
        if height % 2 or width % 2:
            raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
        self.path, self.width, self.height, self.fps = Path(path), width, height, fps
        self.audio, self.sample_rate, self.crf, self.gray = audio, sample_rate, crf, gray
        self._count = 0

    def __enter__(self) -> "VideoWriter":
        import av
        from av.codec.context import Flags

        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._out = av.open(str(tmp), mode="w", options={"fflags": "+bitexact"})
        vs = self._out.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        vs.width, vs.height = self.width, self.height
        vs.pix_fmt = "yuv420p"  # gray frames go into the luma plane unchanged (no range conversion)
        vs.options = {"crf": str(self.crf), "preset": "veryfast" if self.crf else "ultrafast", "threads": "1"}
        vs.codec_context.flags |= int(Flags.bitexact)
        self._vs, self._aus = vs, None
        if self.audio is not None:
            self._aus = self._out.add_stream("aac", rate=self.sample_rate, layout="mono")
            self._aus.codec_context.flags |= int(Flags.bitexact)
        return self

    def write(self, frame: np.ndarray) -> None:
        import av

        frame = np.ascontiguousarray(frame)
        want = (self.height, self.width) if self.gray else (self.height, self.width, 3)
        if frame.dtype != np.uint8 or frame.shape != want:
            raise ValueError(f"frames must be uint8 {want}, got {frame.dtype} {frame.shape}")
        if self.gray:
            yuv = np.full((self.height * 3 // 2, self.width), 128, np.uint8)
            yuv[:self.height] = frame
            vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        else:
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = self._count
        self._count += 1
        for packet in self._vs.encode(vf):
            self._out.mux(packet)

    def __exit__(self, exc_type, exc, tb) -> None:
        import av

        try:
            if exc_type is None:
                for packet in self._vs.encode():
                    self._out.mux(packet)
                if self._aus is not None:
                    audio = _sliceable(self.audio)
                    block = 1024
                    for start in range(0, len(audio), block):
                        samples = np.clip(np.asarray(audio[start:start + block], np.float32), -1, 1)
                        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.reshape(1, -1)),
                                                        format="fltp", layout="mono")
                        af.sample_rate = self.sample_rate
                        af.pts = start
                        for packet in self._aus.encode(af):
                            self._out.mux(packet)
                    for packet in self._aus.encode():
                        self._out.mux(packet)
        finally:
            self._out.close()
            self._atomic.__exit__(exc_type, exc, tb)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 25.0,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    *,
    crf: int = 18,
    gray: bool = False,
) -> None:
    """Write ``frames`` (T, H, W, 3) RGB uint8 (or (T, H, W) with ``gray=True``) as H.264 at ``fps``, with
    ``audio`` (N,) float32 in [-1, 1] as AAC at ``sample_rate`` if given. ``crf=0`` is lossless (with ``gray``
    the luma plane is stored exactly). Written atomically; the same inputs give the same bytes."""
    frames = np.ascontiguousarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != (3 if gray else 4):
        raise ValueError(f"frames must be uint8 {'(T,H,W)' if gray else '(T,H,W,3)'}, got {frames.dtype} "
                         f"{frames.shape}")
    h, w = frames.shape[1:3]
    with VideoWriter(path, w, h, fps, audio, sample_rate, crf=crf, gray=gray) as writer:
        for frame in frames:
            writer.write(frame)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "FLOAT") -> None:
    """Write mono ``audio`` (N,) atomically; float32 WAV by default, so stored samples are exact. ``audio`` is
    converted and written a block at a time: an array, or anything read by slices (a waveform on disk)."""
    import soundfile as sf

    audio = _sliceable(audio)
    with atomic_path(path) as tmp:
        with sf.SoundFile(str(tmp), "w", sample_rate, 1, subtype=subtype, format="WAV") as f:
            # float WAVs get a PEAK chunk stamped with the write time; leave it out so files are reproducible
            sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
            for start in range(0, len(audio), _WRITE_BLOCK):
                f.write(np.asarray(audio[start:start + _WRITE_BLOCK], np.float32))


def check_file(path: str | Path, kind: str = "a media") -> None:
    """An :class:`InputError` unless ``path`` is a file with something in it: "file not found", "is a folder, not
    <kind> file", "empty file (0 bytes)"."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path)
    if p.is_dir():
        raise InputError(f"is a folder, not {kind} file", path)
    if p.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path)


def open_wav(path: str | Path, sample_rate: int | None = None):
    """``path`` opened as a ``soundfile.SoundFile`` (a context manager), its header checked and nothing decoded: an
    :class:`InputError` for a missing, empty or unreadable file, a rate other than ``sample_rate`` (resampling is
    the caller's explicit choice) or one holding fewer samples than its header declares (truncated)."""
    import soundfile as sf

    check_file(path, "an audio")
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError with a terse message
        raise InputError(f"cannot read audio ({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                         path) from e
    declared = wav_declared_frames(path)
    if sample_rate is not None and f.samplerate != sample_rate:
        f.close()
        raise InputError(f"sample rate is {f.samplerate} Hz, expected {sample_rate} Hz", path)
    if declared is not None and f.frames < declared:  # libsndfile counts what the file holds
        f.close()
        raise InputError(f"truncated: its header declares {declared} samples, the file holds {f.frames}", path)
    return f


def read_wav(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a wav as float32 mono (channels averaged), checked as :func:`open_wav` checks it."""
    with open_wav(path, sample_rate) as f:
        try:
            audio = f.read(dtype="float32", always_2d=True)
        except Exception as e:  # noqa: BLE001 - damaged data past the header
            raise InputError(f"cannot read audio ({e})", path) from e
        return audio.mean(axis=1), f.samplerate


_WAV_SIZE_PLACEHOLDER = 0x7FFFF000  # data sizes from here up are what streaming writers put in (no seek back)


def wav_declared_frames(path: str | Path) -> int | None:
    """The sample frames a PCM or float WAV's header declares (its data chunk's size), or None where the header
    does not say: not RIFF/WAVE, another encoding, or a streaming writer's placeholder size (0, or near 2^32).
    libsndfile reads what the file holds, so a file cut short (header intact) reads as a shorter one."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size)
                    if len(fmt) < 16:
                        return None
                    tag, _, _, _, block_align = struct.unpack("<HHIIH", fmt[:14])
                    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                        tag = struct.unpack("<H", fmt[24:26])[0]
                    if tag not in (1, 3) or not block_align:  # PCM, IEEE float
                        return None
                    f.seek(size % 2, 1)
                elif cid == b"data":
                    if block_align is None or size == 0 or size >= _WAV_SIZE_PLACEHOLDER:
                        return None
                    return size // block_align
                else:
                    f.seek(size + size % 2, 1)
    except OSError:
        return None


def read_video_frames(path: str | Path, indices: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) RGB uint8 and their timestamps in seconds (T,), decoded with decord: all of them
    (a short clip: they are held at once), or only the frames ``indices``."""
    import decord

    try:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
        n = len(vr)
        if n == 0:
            raise InputError("video stream has no frames", path)
        idx = list(range(n)) if indices is None else [int(i) for i in indices]
        if idx and not 0 <= min(idx) <= max(idx) < n:
            raise InputError(f"frames {min(idx)}..{max(idx)} asked of a video of {n}", path)
        frames = vr.get_batch(idx).asnumpy()
        times = vr.get_frame_timestamp(idx)[:, 0].astype(np.float64)
    except InputError:
        raise
    except Exception as e:  # decord raises DECORDError with FFmpeg's text
        raise InputError(f"cannot decode video ({decoder_message(e)})", path) from e
    return frames, times


def read_gray_video(path: str | Path) -> np.ndarray:
    """Frames (T, H, W) uint8 of a video written with ``write_video(..., gray=True)``: the luma plane as stored
    (exact for ``crf=0``), read with PyAV. A yuv420p frame's luma plane is copied straight from the decoder's
    buffer (no pixel-format conversion: a quarter less time per frame than ``to_ndarray``); other formats are
    converted to yuv420p first."""
    import av

    try:
        with av.open(str(path)) as container:
            frames = [_luma(f) for f in container.decode(video=0)]
    except Exception as e:
        raise InputError(f"cannot decode video ({decoder_message(e)})", path) from e
    if not frames:
        raise InputError("video stream has no frames", path)
    return np.stack(frames)


def _luma(frame) -> np.ndarray:
    """(H, W) uint8 luma of a decoded PyAV video frame (a view of its buffer for yuv420p, padded rows cut)."""
    if frame.format.name != "yuv420p":
        return frame.to_ndarray(format="yuv420p")[: frame.height]
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]


_DECORD_LOG = re.compile(r"^\[[\d:]+\] \S+:\d+: (?:Error: )?")  # decord's "[hh:mm:ss] file.cc:line: " prefix
_FFMPEG_CODES = {1094995529: "invalid data (a damaged or truncated file?)",  # AVERROR_INVALIDDATA, "INDA"
                 541478725: "the file ends early (truncated?)"}  # AVERROR_EOF, "EOF "


def decoder_message(e: Exception) -> str:
    """A decoder's error in a line a user can act on: the last line of its text without decord's log prefix,
    with FFmpeg's numeric codes (``av_read_frame failed with 1094995529``) said in words."""
    text = str(e).split("Stack trace")[0]  # some decord builds append a native stack trace ("[bt] (0) ...")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.strip().startswith("[bt]")]
    if not lines:
        return type(e).__name__
    text = _DECORD_LOG.sub("", lines[-1])
    m = re.search(r"failed with (-?\d+)", text) or re.search(r"\((-?\d+) vs\. 0\)", text)
    if m and abs(int(m.group(1))) in _FFMPEG_CODES:
        call = re.sub(r"^Check failed:\s*|\s*[<>=!]=?\s*0\s*$", "", text[:m.start()].strip())
        text = f"{call} failed: {_FFMPEG_CODES[abs(int(m.group(1)))]}"
    return text


SHORT_AUDIO_S = 0.5  # read_audio warns when the stream falls short of num_samples by more (and by over 10 %)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, num_samples: int | None = None) -> np.ndarray:
    """The first audio stream of a media file as float32 mono at ``sample_rate``, decoded and resampled by PyAV
    one packet at a time (FFmpeg's resampler and its downmix, as ``ffmpeg -ac 1 -ar RATE``); with ``num_samples``
    cut or zero-padded to that length, the output array being the only buffer that grows with the file (a
    warning names the file when the stream ends more than ``SHORT_AUDIO_S`` and 10 % short of it).

    Audio already at ``sample_rate`` comes out as the decoder gives it. (decord's ``AudioReader``, used before,
    resamples every decoded frame as if the stream restarted there: from a 48 kHz AAC file its output departed
    from the resampled signal after the first frame, RMS error 0.42 on a 0.21 RMS signal; it also held several
    copies of the whole track, 0.6 GB at peak for 10 minutes of 16 kHz audio.)"""
    import av

    chunks: list[np.ndarray] = []
    out = None if num_samples is None else np.zeros(num_samples, np.float32)
    pos = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError("no audio stream", path)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            frames = container.decode(container.streams.audio[0])
            for frame in _then_none(frames):
                for piece in resampler.resample(frame):
                    x = piece.to_ndarray().reshape(-1)
                    if out is None:
                        chunks.append(x)
                        continue
                    take = min(x.size, num_samples - pos)
                    out[pos:pos + take] = x[:take]
                    pos += take
                if out is not None and pos >= num_samples:
                    break
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot decode audio ({decoder_message(e)})", path) from e
    if out is not None:
        if num_samples - pos > max(SHORT_AUDIO_S * sample_rate, 0.1 * num_samples):
            logging.getLogger(__name__).warning(
                "%s: its audio stream ends at %.2f s of the %.2f s asked for (the video's length); the rest is "
                "silence", path, pos / sample_rate, num_samples / sample_rate)
        return out
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _then_none(frames):
    """The decoded frames, then None (which flushes the resampler's last samples)."""
    yield from frames
    yield None
