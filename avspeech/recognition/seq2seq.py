"""AV-HuBERT's fine-tuned seq2seq models (lip reading "VSR", audio-visual "AVSR") as recognizers of ours.

:class:`Seq2SeqRecognizer` is the official encoder (:class:`~avspeech.model.encoder.AVEncoder`, AV-HuBERT
layout), the official decoder (:class:`~avspeech.model.avhubert.decoder.Seq2SeqDecoder`) and the target
vocabulary, decoded by beam search (:mod:`avspeech.recognition.beam_search`). :func:`load_seq2seq` reads an
official ``.pt`` (safely, :mod:`avspeech.model.avhubert`) or the folder ``avspeech convert avhubert`` wrote.

Modes follow the file's ``task.modalities``: a model fine-tuned on ``["video"]`` reads lips only; one fine-tuned on
audio and video reads both, or either alone (AV-HuBERT's modality dropout trains for a missing stream).
These models have no CTC head, so there are no word timings: a transcript's times are its chunk's.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from avspeech.errors import InputError
from avspeech.model.avhubert.decoder import DecoderConfig, Seq2SeqDecoder
from avspeech.model.avhubert.vocabulary import TargetVocabulary
from avspeech.recognition.beam_search import BeamOptions, CachedSteps, beam_search

KIND = "avhubert_finetuned_seq2seq"


def is_seq2seq(model) -> bool:
    """Whether ``model`` is a recognizer without alignment (:class:`Seq2SeqRecognizer`): attention search only,
    segment times."""
    return getattr(model, "timestamps", "word") == "segment"


def modes_of(task_cfg: dict) -> tuple[str, ...]:
    """The recognition modes a fine-tuned file allows, from its ``task.modalities``."""
    mods = set(task_cfg.get("modalities") or ["audio", "video"])
    if mods == {"video"}:
        return ("video",)
    if mods == {"audio"}:
        return ("audio",)
    return ("av", "audio", "video")


class Seq2SeqRecognizer(nn.Module):
    """``encoder`` + ``decoder`` + ``tokenizer`` (a :class:`TargetVocabulary`); ``modes`` the modes it allows."""

    timestamps = "segment"  # no alignment: times are per decoded chunk

    def __init__(self, encoder: nn.Module, decoder: Seq2SeqDecoder, vocabulary: TargetVocabulary,
                 modes: tuple[str, ...] = ("av", "audio", "video"), source: str | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.tokenizer = vocabulary
        self.modes = tuple(modes)
        self.source = source

    def default_mode(self, has_audio: bool) -> str:
        if self.modes == ("video",) or not has_audio:
            return "video"
        return "av" if "av" in self.modes else self.modes[0]

    def check_mode(self, mode: str) -> None:
        if mode not in self.modes:
            kind = "a lip-reading (VSR) model" if self.modes == ("video",) else f"a model of modes {self.modes}"
            raise InputError(f"mode {mode!r} is not available: this is {kind}; use mode {self.modes[0]!r}",
                             self.source)

    def encode(self, lips: Tensor | None, audio: Tensor | None, lengths: Tensor, mode: str) -> Tensor:
        """(B, T, D) encoder output for ``mode`` (the other stream is left out, as AV-HuBERT does)."""
        self.check_mode(mode)
        return self.encoder.extract_features(audio if mode != "video" else None,
                                             lips if mode != "audio" else None, lengths)

    def logits(self, prev_tokens: Tensor, lips: Tensor | None, audio: Tensor | None, lengths: Tensor,
               mode: str) -> Tensor:
        """Teacher-forced logits (B, U, V)."""
        return self.decoder(prev_tokens, self.encode(lips, audio, lengths, mode), lengths)

    @torch.no_grad()
    def generate(self, lips: Tensor | None, audio: Tensor | None, lengths: Tensor, mode: str,
                 options: BeamOptions = BeamOptions()):
        """Beam search -> per utterance its n-best :class:`~avspeech.recognition.beam_search.Hypothesis` list."""
        self.eval()
        dev = next(self.parameters()).device
        lengths = lengths.to(dev)
        lips = lips.to(dev) if lips is not None else None
        audio = audio.to(dev) if audio is not None else None
        memory = self.encode(lips, audio, lengths, mode)
        v = self.tokenizer
        return beam_search(CachedSteps(self.decoder), memory, lengths, eos=v.eos, pad=v.pad, options=options,
                           max_positions=self.decoder.max_positions)


def from_avhubert(m, spm: str | Path | None = None) -> Seq2SeqRecognizer:
    """The recognizer of a loaded official fine-tuned file (:func:`avspeech.model.avhubert.load`)."""
    if m.decoder is None:
        raise InputError(f"this AV-HuBERT checkpoint is {m.file.kind}, not a fine-tuned seq2seq model (VSR/AVSR); "
                         "recognize needs one of those", m.file.path)
    vocab = m.vocabulary
    if spm is not None:
        vocab = vocab.with_tokenizer(read_spm(spm), spm)
    return Seq2SeqRecognizer(m.encoder, m.decoder.eval(), vocab, modes_of(m.file.task_cfg), str(m.file.path)).eval()


def read_spm(path: str | Path) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise InputError("SentencePiece model not found", p)
    return p.read_bytes()  # TargetVocabulary loads it and names this file if it is not a SentencePiece model


def is_seq2seq_folder(path: str | Path) -> bool:
    p = Path(path) / "config.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_converted(path: str | Path, spm: str | Path | None = None) -> Seq2SeqRecognizer:
    """The recognizer of a folder written by ``avspeech convert avhubert`` from a fine-tuned seq2seq file."""
    from avspeech.model.avhubert.convert import DICTIONARIES, TOKENIZER
    from avspeech.model.checkpoint import CONFIG, load_config, load_into, load_weights
    from avspeech.model.config import EncoderConfig
    from avspeech.model.encoder import AVEncoder

    path = Path(path)
    c = load_config(path)
    try:
        enc_cfg = EncoderConfig.from_dict(c["encoder"])
        dec_cfg = DecoderConfig.from_dict(c["decoder"])
        modes = tuple(c.get("modes") or ("av", "audio", "video"))
        if not set(modes) <= {"av", "audio", "video"} or not modes:
            raise ValueError(f"modes must be some of av, audio, video, got {modes}")
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(f"bad converted AV-HuBERT config ({e})", path / CONFIG) from None
    try:
        d = json.loads((path / DICTIONARIES).read_text(encoding="utf-8"))
        symbols, specials = d["target_dictionary"], d.get("target_specials") or {}
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise ValueError("target_dictionary is not a list of strings")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"no usable target dictionary ({e})", path / DICTIONARIES) from None
    if len(symbols) != dec_cfg.vocab:
        raise InputError(f"the target dictionary has {len(symbols)} symbols, the decoder {dec_cfg.vocab}", path)
    tok = path / TOKENIZER
    vocab = TargetVocabulary(symbols, specials, tok.read_bytes() if tok.is_file() else None, path)
    if spm is not None:
        vocab = vocab.with_tokenizer(read_spm(spm), spm)
    model = nn.ModuleDict({"encoder": AVEncoder(enc_cfg), "decoder": Seq2SeqDecoder(dec_cfg)})
    load_into(model, load_weights(path), path)
    return Seq2SeqRecognizer(model["encoder"], model["decoder"], vocab, modes, str(path)).eval()


def load_seq2seq(path: str | Path, spm: str | Path | None = None) -> Seq2SeqRecognizer:
    """An official fine-tuned seq2seq ``.pt`` or its converted folder as a :class:`Seq2SeqRecognizer`."""
    if Path(path).is_file():
        from avspeech.model.avhubert import load

        return from_avhubert(load(path), spm)
    return load_converted(path, spm)
