"""Beam search over an attention decoder, batched over utterances and beams, with fairseq's rules.

A decoder is driven through three calls (:class:`StepDecoder`): ``start(memory, lengths)`` makes a state for
N rows, ``step(last_tokens (N,), state)`` gives the next token's log-probabilities (N, V) and advances the state,
``reorder(state, rows)`` keeps the given rows (beam survivors and their parents). AV-HuBERT's decoder does this
with a key/value cache (:class:`CachedSteps`); a decoder without one recomputes its prefix
(:class:`PrefixSteps`).

The rules are those of fairseq's SequenceGenerator and BeamSearch (as AV-HuBERT's avhubert/sequence_generator.py
uses them), written here from their description:

- every hypothesis starts from ``eos``; ``pad`` is never chosen; ``eos`` is not allowed before ``min_len`` tokens
  and is the only choice at ``max_len``; the first step expands the first beam only;
- each step takes the ``2 x beam`` best (cumulative log-probability) continuations of all beams of an utterance;
  those among the first ``beam`` that end in ``eos`` are finished with the score ``sum / (len + 1) ** lenpen``
  (``len`` tokens plus ``eos``); the first ``beam`` that do not end in ``eos`` are the next beams;
- an utterance is done when it has ``beam`` finished hypotheses or reaches ``max_len``; its n-best is its
  finished hypotheses by score.

Two deliberate differences, neither of which changes a result at AV-HuBERT's sizes: ``max_len`` is
``min(int(max_len_a x T + max_len_b), max_positions - 1)`` with each utterance's own number of encoder frames T
(fairseq takes the batch's padded size, so results would depend on batching; AV-HuBERT's generator even takes
the audio feature dimension, 104, as T when audio is given), and the beam is not capped at ``V - 1`` (fewer
candidates than beams are padded with impossible ones), so a beam wider than the vocabulary searches
exhaustively.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from torch import Tensor

NEG_INF = -math.inf


@dataclass(frozen=True)
class BeamOptions:
    """AV-HuBERT's released evaluation (conf/s2s_decode.yaml) uses beam 50, max_len_a 1.0, max_len_b 0,
    lenpen 1.0; the beam default here is smaller for CPU inference (``--beam 50`` reproduces theirs)."""

    beam: int = 5
    max_len_a: float = 1.0
    max_len_b: int = 0
    lenpen: float = 1.0
    min_len: int = 1
    nbest: int = 1

    def __post_init__(self) -> None:
        from avspeech.model import validate as v

        v.positive_int("beam", self.beam, maximum=10_000)
        v.positive_int("nbest", self.nbest, maximum=self.beam)
        v.positive_int("min_len", self.min_len, minimum=0, maximum=100_000)
        v.positive_int("max_len_b", self.max_len_b, minimum=0, maximum=100_000)
        v.finite_float("max_len_a", self.max_len_a, minimum=0.0)
        v.finite_float("lenpen", self.lenpen)


@dataclass
class Hypothesis:
    tokens: list[int]  # without the final eos
    score: float  # normalised by length: sum of log-probabilities / (len + 1) ** lenpen
    logprob: float  # the plain sum, eos included
    positional: list[float]  # log-probability of each token, eos last


def _log_softmax(logits: Tensor) -> Tensor:
    """In float32 at least (fairseq's ``get_normalized_probs`` for half-precision models); float64 stays."""
    half = logits.dtype in (torch.float16, torch.bfloat16)
    return torch.log_softmax(logits.float() if half else logits, dim=-1)


class StepDecoder(Protocol):
    def start(self, memory: Tensor, lengths: Tensor) -> Any: ...
    def step(self, last: Tensor, state: Any) -> Tensor: ...
    def reorder(self, state: Any, rows: Tensor) -> Any: ...


class CachedSteps:
    """:class:`StepDecoder` of a decoder with ``start(memory, lengths) -> cache``, ``step(tokens, cache) ->
    logits`` and ``cache.reorder(rows)`` (:class:`~avspeech.model.avhubert.decoder.Seq2SeqDecoder`)."""

    def __init__(self, decoder):
        self.decoder = decoder

    def start(self, memory: Tensor, lengths: Tensor):
        return self.decoder.start(memory, lengths)

    def step(self, last: Tensor, state) -> Tensor:
        return _log_softmax(self.decoder.step(last, state))

    def reorder(self, state, rows: Tensor):
        return state.reorder(rows)


class PrefixSteps:
    """:class:`StepDecoder` of ``logprobs(tokens (N, U), memory (N, T, D), lengths (N,)) -> (N, U, V)`` (a
    decoder without a cache: the whole prefix is run at each step)."""

    def __init__(self, logprobs: Callable[[Tensor, Tensor, Tensor], Tensor]):
        self.logprobs = logprobs

    def start(self, memory: Tensor, lengths: Tensor):
        return {"memory": memory, "lengths": lengths, "tokens": memory.new_zeros(memory.shape[0], 0).long()}

    def step(self, last: Tensor, state) -> Tensor:
        state["tokens"] = torch.cat([state["tokens"], last[:, None]], 1)
        return self.logprobs(state["tokens"], state["memory"], state["lengths"])[:, -1]

    def reorder(self, state, rows: Tensor):
        return {k: v.index_select(0, rows) for k, v in state.items()}


def max_lengths(lengths: Tensor, options: BeamOptions, max_positions: int) -> list[int]:
    """Each utterance's longest output (tokens before eos)."""
    return [max(min(int(options.max_len_a * int(t) + options.max_len_b), max_positions - 1), options.min_len)
            for t in lengths.tolist()]


@torch.no_grad()
def beam_search(decoder: StepDecoder, memory: Tensor, lengths: Tensor, *, eos: int, pad: int | None = None,
                options: BeamOptions = BeamOptions(), max_positions: int = 1024) -> list[list[Hypothesis]]:
    """The n-best (``options.nbest``) hypotheses of each of the B utterances whose encoder output is ``memory``
    (B, T, D) with ``lengths`` (B,) valid frames, best first."""
    b, k = memory.shape[0], options.beam
    dev = memory.device
    limit = max_lengths(lengths, options, max_positions)
    state = decoder.start(memory.repeat_interleave(k, 0), lengths.repeat_interleave(k, 0))
    alive = list(range(b))  # utterances still searched, in row-block order
    tokens = torch.zeros(b * k, 0, dtype=torch.long, device=dev)
    scores = torch.zeros(b * k, dtype=torch.float64, device=dev)  # cumulative, per row
    pos_scores = torch.zeros(b * k, 0, dtype=torch.float64, device=dev)
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    last = torch.full((b * k,), eos, dtype=torch.long, device=dev)
    step = 0
    while alive:
        lp = decoder.step(last, state).double()  # (n k, V)
        v = lp.shape[1]
        if pad is not None:
            lp[:, pad] = NEG_INF
        if step < options.min_len:
            lp[:, eos] = NEG_INF
        at_limit = torch.tensor([step >= limit[u] for u in alive], device=dev).repeat_interleave(k)
        if bool(at_limit.any()):
            only_eos = torch.full_like(lp[0], NEG_INF)
            only_eos[eos] = 0.0
            lp[at_limit] = lp[at_limit] + only_eos
        n = len(alive)
        total = lp.view(n, k, v) + scores.view(n, k, 1)
        if step == 0:
            total[:, 1:] = NEG_INF  # all beams are the same: expand the first only
        cand, idx = total.view(n, k * v).topk(min(2 * k, k * v), dim=1)  # (n, 2k), best first
        parent, token = idx // v, idx % v
        keep_scores, keep_tokens, keep_parents, still = [], [], [], []
        for j, u in enumerate(alive):
            c, p, t = cand[j].tolist(), parent[j].tolist(), token[j].tolist()
            for i in range(min(k, len(c))):
                if t[i] == eos and c[i] > NEG_INF and len(finished[u]) < k:
                    row = j * k + p[i]
                    lps = pos_scores[row].tolist() + [c[i] - float(scores[row])]
                    finished[u].append(Hypothesis(tokens[row].tolist(), c[i] / (step + 1) ** options.lenpen,
                                                  c[i], lps))
            if len(finished[u]) >= k or step >= limit[u]:
                continue
            nxt = [i for i in range(len(c)) if t[i] != eos][:k]
            fill = k - len(nxt)
            still.append(u)
            keep_parents += [j * k + p[i] for i in nxt] + [j * k] * fill
            keep_tokens += [t[i] for i in nxt] + [eos] * fill
            keep_scores += [c[i] for i in nxt] + [NEG_INF] * fill
        if not still:
            break
        rows = torch.tensor(keep_parents, dtype=torch.long, device=dev)
        new_tok = torch.tensor(keep_tokens, dtype=torch.long, device=dev)
        new_scores = torch.tensor(keep_scores, dtype=torch.float64, device=dev)
        step_lp = new_scores - scores[rows]
        tokens = torch.cat([tokens[rows], new_tok[:, None]], 1)
        pos_scores = torch.cat([pos_scores[rows], step_lp[:, None]], 1)
        scores = new_scores
        state = decoder.reorder(state, rows)
        last = new_tok
        alive = still
        step += 1
    return [sorted(f, key=lambda h: -h.score)[:options.nbest] for f in finished]
