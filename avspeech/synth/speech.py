"""Speech synthesis with phoneme and word timing: espeak-ng (bundled by ``espeakng-loader``) through ctypes.

espeak-ng keeps global state that carries over from one utterance to the next (the same sentence comes out a
few samples longer or shorter after another one, even after ``espeak_Terminate``/``espeak_Initialize``). So that
the same seed gives the same files whatever was synthesized before, :func:`synthesize` loads a fresh copy of the
library for every utterance and unloads it afterwards (about 0.2 s). Audio comes out at the engine's rate
(22050 Hz) and is resampled to 16 kHz.
"""
from __future__ import annotations

import _ctypes
import ctypes
from dataclasses import dataclass
from math import gcd

import numpy as np

from avspeech.errors import InputError
from avspeech.timebase import SAMPLE_RATE


# espeak-ng's speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4

# English voices with their variants: several speakers of each sex.
DEFAULT_VOICES = (
    "en+m1", "en+m2", "en+m3", "en+m4", "en+m5", "en+m7",
    "en+f1", "en+f2", "en+f3", "en+f4",
    "en-us+m3", "en-us+f2", "en-gb-x-rp+m2", "en-gb-scotland+m1",
)


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Utterance:
    """16 kHz float32 audio with phone and word timings in seconds from its start."""

    audio: np.ndarray
    phones: list[tuple[str, float, float]]  # (espeak phoneme mnemonic, start, end)
    words: list[tuple[str, float, float]]  # (word, start, end)

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class Espeak:
    """A freshly loaded espeak-ng engine; use as a context manager (unloaded on exit)."""

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.sample_rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise (code {self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _Callback(self._on_synth)  # keep a reference: ctypes does not
        self._lib.espeak_SetSynthCallback(self._callback)

    def __enter__(self) -> "Espeak":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Terminate the engine and unload the library, so the next load starts from a clean state."""
        if self._lib is not None:
            self._lib.espeak_Terminate()
            _ctypes.dlclose(self._lib._handle)
            self._lib = None

    def _on_synth(self, wav, n, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            name = bytes(e.id.string).split(b"\0")[0].decode("latin-1") if e.type == _EVENT_PHONEME else ""
            self._events.append((e.type, e.audio_position, e.text_position, e.length, name))
            i += 1
        return 0

    def has_voice(self, voice: str) -> bool:
        return self._lib.espeak_SetVoiceByName(voice.encode()) == 0

    def synthesize(self, text: str, voice: str, rate_wpm: int = 160, pitch: int = 50) -> Utterance:
        """Speak ``text``; raises :class:`InputError` for an unknown voice."""
        if not self.has_voice(voice):
            raise InputError(f"unknown espeak-ng voice {voice!r} (try one of: {', '.join(DEFAULT_VOICES)})")
        self._lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, 50, 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if err != 0 or not self._chunks:
            raise RuntimeError(f"espeak-ng could not synthesize {text!r} with voice {voice!r} (code {err})")
        audio = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        events = list(self._events)
        audio = _resample(audio, self.sample_rate, SAMPLE_RATE)
        end = len(audio) / SAMPLE_RATE
        return Utterance(audio, _phone_spans(events, end), _word_spans(events, text, end))


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def _phone_spans(events, end: float) -> list[tuple[str, float, float]]:
    ph = [(name, pos / 1000.0) for typ, pos, _, _, name in events if typ == _EVENT_PHONEME]
    return [(name, t, min(ph[i + 1][1] if i + 1 < len(ph) else end, end)) for i, (name, t) in enumerate(ph)]


def _word_spans(events, text: str, end: float) -> list[tuple[str, float, float]]:
    data = text.encode("utf-8")
    words = [(data[tp - 1: tp - 1 + ln].decode("utf-8", "replace"), pos / 1000.0)
             for typ, pos, tp, ln, _ in events if typ == _EVENT_WORD]
    # a word ends where the next one starts, or at the last non-pause phoneme
    last = max((pos / 1000.0 for typ, pos, *_ , name in events
                if typ == _EVENT_PHONEME and not name.startswith("_")), default=end)
    spans = []
    for i, (w, t) in enumerate(words):
        t_end = words[i + 1][1] if i + 1 < len(words) else max(last, t)
        spans.append((w, t, min(t_end, end)))
    return spans


def synthesize(text: str, voice: str, rate_wpm: int = 160, pitch: int = 50) -> Utterance:
    """Speak ``text`` with a freshly loaded engine: the result depends on the arguments alone."""
    with Espeak() as eng:
        return eng.synthesize(text, voice, rate_wpm, pitch)


def unknown_voices(voices) -> list[str]:
    """The names in ``voices`` that espeak-ng does not have."""
    with Espeak() as eng:
        return [v for v in voices if not eng.has_voice(v)]
