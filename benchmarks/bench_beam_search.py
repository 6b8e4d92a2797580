"""Beam search speed over AV-HuBERT's Base decoder: real-time factor of decoding a 10 s utterance, beam 1/5/20.

The decoder has the released Base layout (6 layers, 768 wide, FFN 3072, 4 heads, pre-LN, tied output, sinusoidal
positions) over a 1,004-symbol dictionary (SentencePiece 1000 + fairseq's 4 specials), random weights; the
encoder output is random (250 frames = 10 s at 25 Hz). A 10 s sentence is about 30 words, 40 subword tokens:
the output is held at 40 tokens (``max_len_b=40``, eos is improbable under random weights), so every beam
does the same work a real sentence asks. The encoder's own cost is measured by ``bench_avhubert_encoder.py``.
Also times the cached decoder against recomputing the prefix at each step (the same search), side by side.

    python benchmarks/bench_beam_search.py [--beams 1,5,20] [--out benchmarks/results/cpu]

Writes ``beam_search.csv`` and ``beam_search.png``.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from avspeech.io.atomic import atomic_write_csv
from avspeech.model.avhubert.decoder import DecoderConfig, Seq2SeqDecoder
from avspeech.recognition.beam_search import BeamOptions, CachedSteps, PrefixSteps, beam_search

SECONDS, FRAMES, TOKENS = 10.0, 250, 40


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beams", default="1,5,20")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab=1004, padding_idx=1, encoder_dim=768, dim=768, ffn=3072, layers=6, heads=4,
                        normalize_before=True, tied=True)
    dec = Seq2SeqDecoder(cfg).eval()
    memory, lengths = torch.randn(1, FRAMES, 768), torch.tensor([FRAMES])
    rows = []
    for beam in [int(b) for b in args.beams.split(",")]:
        opts = BeamOptions(beam=beam, max_len_a=0.0, max_len_b=TOKENS)
        for name, steps in (("cached", CachedSteps(dec)),
                            ("prefix", PrefixSteps(lambda t, m, n: dec(t, m, n).log_softmax(-1)))):
            if name == "prefix" and beam > 5:
                continue  # the uncached search only shows the ratio; it is slow at wide beams
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                with torch.no_grad():
                    (hyps,) = beam_search(steps, memory, lengths, eos=2, pad=1, options=opts,
                                          max_positions=dec.max_positions)
                best = min(best, time.perf_counter() - t0)
            rows.append({"beam": beam, "decoder": name, "tokens": len(hyps[0].tokens), "seconds": round(best, 3),
                         "rtf": round(best / SECONDS, 4), "threads": torch.get_num_threads(),
                         "loadavg_1min": round(os.getloadavg()[0], 1)})
            print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "beam_search.csv", rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in ("cached", "prefix"):
        sel = [r for r in rows if r["decoder"] == name]
        ax.plot([r["beam"] for r in sel], [r["rtf"] for r in sel], "o-", label=f"{name} decoder")
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="goal RTF 0.5")
    ax.set_xlabel("beam")
    ax.set_ylabel("real-time factor (10 s utterance)")
    ax.set_title(f"AV-HuBERT Base decoder, {TOKENS} tokens, {torch.get_num_threads()} threads")
    ax.legend()
    fig.tight_layout()
    tmp = out / "beam_search.tmp.png"
    fig.savefig(tmp, dpi=120)
    tmp.replace(out / "beam_search.png")
    print(f"wrote {out / 'beam_search.csv'} and {out / 'beam_search.png'}")


if __name__ == "__main__":
    main()
