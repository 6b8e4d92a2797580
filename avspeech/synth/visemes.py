"""From espeak-ng phonemes to a mouth shape over time.

Each phoneme belongs to a viseme class with a target lip opening (0 closed .. 1 wide open) and lip rounding
(0 spread/neutral .. 1 rounded). Targets sit at phoneme midpoints and are interpolated linearly between them;
before the first and after the last phoneme the mouth is at rest (closed, neutral).
"""
from __future__ import annotations

import numpy as np

# class -> (openness, rounding)
VISEMES: dict[str, tuple[float, float]] = {
    "rest": (0.0, 0.0),
    "bilabial": (0.0, 0.1),
    "labiodental": (0.12, 0.0),
    "dental": (0.3, 0.0),
    "consonant": (0.25, 0.0),
    "postalveolar": (0.25, 0.6),
    "rounded": (0.4, 1.0),
    "open": (1.0, 0.0),
    "open_rounded": (0.7, 0.6),
    "mid": (0.6, 0.0),
    "close": (0.3, 0.0),
}

_CLASS_OF = {
    **dict.fromkeys(["_", "_:", "_!", "_^", ""], "rest"),
    **dict.fromkeys(["p", "b", "m"], "bilabial"),
    **dict.fromkeys(["f", "v"], "labiodental"),
    **dict.fromkeys(["T", "D"], "dental"),
    **dict.fromkeys(["tS", "dZ", "S", "Z"], "postalveolar"),
    **dict.fromkeys(["w", "w#", "u:", "U", "o@", "oU", "O@", "O:", "O", "U@"], "rounded"),
    **dict.fromkeys(["0", "aU"], "open_rounded"),
    **dict.fromkeys(["a", "a#", "aI", "aI2", "A@", "A:", "V", "{", "aI@"], "open"),
    **dict.fromkeys(["E", "@", "eI", "e@", "3:", "@L", "@2", "e", "E@", ";"], "mid"),
    **dict.fromkeys(["i:", "I", "i@", "i", "I2", "I#", "j"], "close"),
}


def viseme_of(phone: str) -> str:
    """The viseme class of an espeak-ng phoneme mnemonic (stress marks ignored); other consonants map to
    ``consonant``."""
    return _CLASS_OF.get(phone.lstrip("',%=").rstrip(), "consonant")


def mouth_track(phones: list[tuple[str, float, float]], times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Openness and rounding (each ``(len(times),)`` in [0, 1]) at ``times`` (seconds, same clock as the
    phone spans)."""
    if not phones:
        return np.zeros(len(times)), np.zeros(len(times))
    t = [phones[0][1] - 0.05] + [(s + e) / 2 for _, s, e in phones] + [phones[-1][2] + 0.05]
    targets = [VISEMES["rest"]] + [VISEMES[viseme_of(p)] for p, _, _ in phones] + [VISEMES["rest"]]
    t = np.maximum.accumulate(np.asarray(t))  # np.interp needs non-decreasing points
    opening = np.interp(times, t, [o for o, _ in targets], left=0.0, right=0.0)
    rounding = np.interp(times, t, [r for _, r in targets], left=0.0, right=0.0)
    return opening, rounding
