"""Tokenizers: text <-> token ids for the CTC and attention heads.

Id 0 is reserved: the CTC blank, and the start/end symbol of the attention decoder (the decoder never needs a
blank, CTC never needs an end symbol), so one output layer size serves both heads. Real tokens are 1..N.

- :class:`CharTokenizer` (the default): lower-case letters, apostrophe and space; text is normalised (lower case,
  other characters dropped, runs of spaces collapsed).
- :class:`SentencePieceTokenizer`: a unigram (or BPE) SentencePiece model trained on the training transcripts;
  the model's bytes are kept in the tokenizer's dict, so a checkpoint's ``config.json`` carries it.

Both expose ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``word_index(ids)`` (per token, the index of
the word it belongs to, or None for a separator) and ``to_dict()``; :func:`tokenizer_from_dict` rebuilds either.
"""
from __future__ import annotations

import base64
import re
from typing import Any, Sequence

BLANK = 0
DEFAULT_CHARS = " 'abcdefghijklmnopqrstuvwxyz"


def normalise_text(text: str, allowed: str = DEFAULT_CHARS) -> str:
    """Lower case; punctuation and whitespace outside ``allowed`` become spaces, other characters (digits) are
    dropped; space runs collapsed to one space, stripped."""
    keep = set(allowed)
    text = "".join(c if c in keep else " " if not c.isalnum() else "" for c in text.lower())
    return re.sub(" +", " ", text).strip()


class CharTokenizer:
    kind = "char"

    def __init__(self, chars: str = DEFAULT_CHARS):
        if not isinstance(chars, str) or not 1 <= len(chars) <= 10_000:
            raise ValueError(f"the character set must be a string of 1 to 10000 characters, got {str(chars)[:40]!r}")
        if " " not in chars:
            raise ValueError("the character set must contain the space (the word separator)")
        if len(set(chars)) != len(chars):
            raise ValueError(f"repeated characters in {chars!r}")
        self.chars = chars
        self.index = {c: i + 1 for i, c in enumerate(chars)}

    @property
    def vocab_size(self) -> int:
        """Output size of the heads: N tokens + the reserved id 0."""
        return len(self.chars) + 1

    def tokens(self) -> list[str]:
        return ["<blank>"] + list(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.index[c] for c in normalise_text(text, self.chars)]

    def decode(self, ids: Sequence[int]) -> str:
        return re.sub(" +", " ", "".join(self.chars[i - 1] for i in ids if i > 0)).strip()

    def word_index(self, ids: Sequence[int]) -> list[int | None]:
        out, w, in_word = [], -1, False
        for i in ids:
            if i > 0 and self.chars[i - 1] == " ":
                out.append(None)
                in_word = False
                continue
            if not in_word:
                w += 1
                in_word = True
            out.append(w)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}


class SentencePieceTokenizer:
    kind = "sentencepiece"

    def __init__(self, model_bytes: bytes):
        import sentencepiece as spm

        self.model_bytes = model_bytes
        self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int = 64, model_type: str = "unigram") -> "SentencePieceTokenizer":
        """Train on ``texts`` (normalised first); no files are written."""
        import io

        import sentencepiece as spm

        lines = [normalise_text(t) for t in texts if normalise_text(t)]
        if not lines:
            raise ValueError("no text to train a SentencePiece model on")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size,
                                       model_type=model_type, character_coverage=1.0, bos_id=-1, eos_id=-1,
                                       unk_id=0, hard_vocab_limit=False, minloglevel=2)
        return cls(buf.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size() + 1

    def tokens(self) -> list[str]:
        return ["<blank>"] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self.sp.encode(normalise_text(text))]

    def decode(self, ids: Sequence[int]) -> str:
        return normalise_text(self.sp.decode([i - 1 for i in ids if i > 0]))

    def word_index(self, ids: Sequence[int]) -> list[int | None]:
        out, w = [], -1
        for i in ids:
            piece = self.sp.id_to_piece(i - 1)
            if piece.startswith("\u2581") or w < 0:
                w += 1
            if piece == "\u2581":  # a bare word marker: the separator itself
                out.append(None)
                continue
            out.append(w)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": base64.b64encode(self.model_bytes).decode("ascii")}


Tokenizer = CharTokenizer | SentencePieceTokenizer


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    if not isinstance(d, dict):
        raise ValueError(f"the tokenizer config must be an object, got {type(d).__name__}")
    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(d.get("chars", DEFAULT_CHARS))
    if kind == "sentencepiece":
        model = d.get("model")
        if not isinstance(model, str) or len(model) > 64_000_000:
            raise ValueError("tokenizer.model must be a base64 string of a SentencePiece model")
        try:
            return SentencePieceTokenizer(base64.b64decode(model, validate=True))
        except (ValueError, RuntimeError, OSError) as e:
            raise ValueError(f"tokenizer.model is not a SentencePiece model ({e})") from e
    raise ValueError(f"unknown tokenizer kind {kind!r} (expected 'char' or 'sentencepiece')")
