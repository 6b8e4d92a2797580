"""The target vocabulary of AV-HuBERT's fine-tuned seq2seq models: fairseq's dictionary ids, SentencePiece pieces.

Facts (avhubert/hubert_pretraining.py ``LabelEncoderS2SToken``, infer_s2s.py; fairseq's Dictionary and
SentencepieceBPE at afc77bdf): a transcript is lower-cased, cut into SentencePiece pieces (``encode_as_pieces``),
and each piece looked up in the target dictionary (``dict.wrd.txt``; unknown pieces are ``unk``), with ``eos``
appended. fairseq's dictionary puts its specials first (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3 by
default; the file's own indices are used). Decoding drops ``eos`` and ``pad`` (and ``bos``, never a target),
joins the pieces, and turns SentencePiece's word marker U+2581 into spaces (SentencepieceBPE.decode): the text
is the lower-case text AV-HuBERT's evaluation scores.

Decoding needs only the dictionary; encoding (references for teacher forcing or scoring token accuracy) needs
the SentencePiece model, which the fine-tuned files carry (or ``--spm MODEL`` supplies).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from avspeech.errors import InputError

WORD_MARK = "\u2581"


class TargetVocabulary:
    """``symbols`` in id order, ``specials`` ({"bos", "pad", "eos", "unk"} -> id), ``spm_model`` (serialized
    SentencePiece model bytes or None)."""

    def __init__(self, symbols: Sequence[str], specials: dict[str, int] | None = None,
                 spm_model: bytes | None = None, source: str | Path | None = None):
        self.symbols = list(symbols)
        sp = {"bos": 0, "pad": 1, "eos": 2, "unk": 3, **{k: v for k, v in (specials or {}).items()
                                                         if k in ("bos", "pad", "eos", "unk")}}
        for name, i in sp.items():
            if not 0 <= i < len(self.symbols):
                raise InputError(f"the target dictionary's {name} index {i} is outside its {len(self.symbols)} "
                                 "symbols", source)
        self.bos, self.pad, self.eos, self.unk = sp["bos"], sp["pad"], sp["eos"], sp["unk"]
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.spm_model = spm_model
        self.source = source
        self._sp = None
        if spm_model is not None:
            import sentencepiece as spm

            try:
                self._sp = spm.SentencePieceProcessor(model_proto=spm_model)
            except (RuntimeError, TypeError, ValueError) as e:
                raise InputError(f"the SentencePiece model does not load ({e})", source) from None

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    @property
    def has_tokenizer(self) -> bool:
        return self._sp is not None

    def tokens(self) -> list[str]:
        return list(self.symbols)

    def with_tokenizer(self, spm_model: bytes, source: str | Path | None = None) -> "TargetVocabulary":
        """The same dictionary with the SentencePiece model ``spm_model`` (``--spm MODEL``)."""
        specials = {"bos": self.bos, "pad": self.pad, "eos": self.eos, "unk": self.unk}
        return TargetVocabulary(self.symbols, specials, spm_model, source or self.source)

    def pieces(self, text: str) -> list[str]:
        if self._sp is None:
            raise InputError("this model's file carries no SentencePiece model, needed to encode text; give the "
                             "one it was fine-tuned with (--spm MODEL, e.g. spm1000/spm_unigram1000.model)",
                             self.source)
        return list(self._sp.encode_as_pieces(text.lower()))

    def encode(self, text: str) -> list[int]:
        """Dictionary ids of ``text``'s pieces (without the eos that ends a target)."""
        return [self.index.get(p, self.unk) for p in self.pieces(text)]

    def decode(self, ids: Sequence[int]) -> str:
        drop = {self.eos, self.pad, self.bos}
        pieces = [self.symbols[i] for i in ids if i not in drop and 0 <= i < len(self.symbols)]
        return " ".join("".join(pieces).replace(WORD_MARK, " ").split()).lower()
