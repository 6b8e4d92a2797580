"""GRID-style sentences: command, colour, preposition, letter, digit, adverb (a small, known vocabulary)."""
from __future__ import annotations

import numpy as np

COMMANDS = ("bin", "lay", "place", "set")
COLOURS = ("blue", "green", "red", "white")
PREPOSITIONS = ("at", "by", "in", "with")
LETTERS = tuple("abcdefghijklmnopqrstuvxyz")  # GRID leaves out "w" (three syllables)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ADVERBS = ("again", "now", "please", "soon")
SLOTS = (COMMANDS, COLOURS, PREPOSITIONS, LETTERS, DIGITS, ADVERBS)
VOCABULARY = tuple(sorted({w for slot in SLOTS for w in slot}))


def sample_sentence(rng: np.random.Generator) -> str:
    """One sentence, e.g. ``"place red at f two now"``."""
    return " ".join(slot[rng.integers(len(slot))] for slot in SLOTS)
