"""Inference: batches of (lips, audio) -> transcripts, in the mode the inputs allow.

``mode`` is ``"av"`` (lips and audio), ``"audio"`` or ``"video"``; :func:`mode_of` picks it from what a sample
has. Decoding (``search``) is CTC prefix beam search (optionally with a word list) whose n-best is rescored by the
attention decoder when the model has one and ``ctc_weight < 1`` (joint CTC/attention decoding), or beam search over
the attention decoder alone (``search="attention"``, :mod:`avspeech.recognition.beam_search`), the only search of
AV-HuBERT's seq2seq models (:class:`~avspeech.recognition.seq2seq.Seq2SeqRecognizer`; they have no CTC head).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avspeech.recognition.decode import Lexicon, greedy, joint_rescore, prefix_beam_search, word_timestamps
from avspeech.recognition.model import AVRecognizer
from avspeech.recognition.seq2seq import is_seq2seq
from avspeech.timebase import FRAME_SECONDS

MODES = ("av", "audio", "video")


def mode_of(has_audio: bool, has_video: bool) -> str:
    if has_audio and has_video:
        return "av"
    if has_audio:
        return "audio"
    if has_video:
        return "video"
    raise ValueError("a sample needs audio, lips or both")


def flags(mode: str, b: int, device) -> tuple[Tensor, Tensor]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    has_audio = torch.full((b,), mode in ("av", "audio"), dtype=torch.bool, device=device)
    has_video = torch.full((b,), mode in ("av", "video"), dtype=torch.bool, device=device)
    return has_audio, has_video


@dataclass
class DecodeOptions:
    beam: int = 8
    nbest: int = 8
    prune: float | None = 10.0  # nats below a frame's best label that are still extended
    ctc_weight: float = 0.5  # joint decoding weight of CTC (1.0: CTC only)
    lexicon: Lexicon | None = None
    greedy: bool = False
    search: str = "ctc"  # "ctc" (prefix search + rescoring) or "attention" (beam search over the decoder)
    lenpen: float = 1.0  # attention search: scores are divided by (tokens + 1) ** lenpen
    max_len_a: float = 1.0  # attention search: at most max_len_a x frames + max_len_b tokens
    max_len_b: int = 0

    def beam_options(self):
        from avspeech.recognition.beam_search import BeamOptions

        return BeamOptions(beam=1 if self.greedy else self.beam, max_len_a=self.max_len_a, max_len_b=self.max_len_b,
                           lenpen=self.lenpen)


@dataclass
class Transcript:
    text: str
    tokens: list[int]
    score: float
    words: list[dict]  # [{"word", "start", "end"}] seconds from the start of the input
    ctc_logp: Tensor  # (S, V) for alignments and plots


@torch.no_grad()
def transcribe_batch(model: AVRecognizer, lips: Tensor | None, audio: Tensor | None, lengths: Tensor, mode: str,
                     options: DecodeOptions = DecodeOptions(), timestamps: bool = False) -> list[Transcript]:
    """lips (B, 1, T, 88, 88), audio (B, T, 104), lengths (B,) -> one :class:`Transcript` per sample."""
    if is_seq2seq(model):  # AV-HuBERT seq2seq: attention search, no alignment
        hyps = model.generate(lips if mode != "audio" else None, audio if mode != "video" else None, lengths, mode,
                              options.beam_options())
        return [Transcript(model.tokenizer.decode(h[0].tokens) if h else "", h[0].tokens if h else [],
                           h[0].score if h else float("-inf"), [], None) for h in hyps]
    if options.search not in ("ctc", "attention"):
        raise ValueError(f"search must be 'ctc' or 'attention', got {options.search!r}")
    model.eval()
    dev = next(model.parameters()).device
    b = lengths.shape[0]
    has_audio, has_video = flags(mode, b, dev)
    lips = lips.to(dev) if lips is not None and mode != "audio" else None
    audio = audio.to(dev) if audio is not None and mode != "video" else None
    if (mode != "audio" and lips is None) or (mode != "video" and audio is None):
        raise ValueError(f"mode {mode!r} needs {'lips and audio' if mode == 'av' else mode}")
    lengths = lengths.to(dev)
    feats, logp, ctc_len = model.encode(lips, audio, lengths, has_audio, has_video)
    tok = model.tokenizer
    frame = FRAME_SECONDS / model.cfg.upsample
    out = []
    if options.search == "attention":
        if model.decoder is None:
            raise ValueError("search 'attention' needs a model with an attention decoder (decoder_layers > 0)")
        from avspeech.recognition.beam_search import PrefixSteps, beam_search

        nbest = beam_search(PrefixSteps(model.decoder), feats, lengths, eos=0, options=options.beam_options(),
                            max_positions=model.decoder.max_tokens + 1)
    for i in range(b):
        lp = logp[i, : int(ctc_len[i])].float().cpu()
        if options.search == "attention":
            best = nbest[i][0] if nbest[i] else None
            tokens = best.tokens if best else []
            words = word_timestamps(lp, tokens, tok, frame) if timestamps and tokens else []
            out.append(Transcript(tok.decode(tokens), tokens, best.score if best else float("-inf"), words, lp))
            continue
        if options.greedy:
            hyps = [(greedy(lp), 0.0)]
        else:
            hyps = prefix_beam_search(lp, beam=options.beam, lexicon=options.lexicon,
                                      nbest=max(1, options.nbest), prune=options.prune)
            if not hyps:  # the word list allows nothing that fits: fall back to the unconstrained search
                hyps = prefix_beam_search(lp, beam=options.beam, nbest=1, prune=options.prune)
        att = None
        if model.decoder is not None and options.ctc_weight < 1.0 and len(hyps) > 1:
            att = model.sequence_logprob(feats[i], int(lengths[i]), [h[0] for h in hyps])
        best = joint_rescore(hyps, att, options.ctc_weight)[0]
        words = word_timestamps(lp, best.tokens, tok, frame) if timestamps else []
        out.append(Transcript(tok.decode(best.tokens), best.tokens, best.score, words, lp))
    return out
