"""Peak memory and time of ``avspeech recognize`` with an AV-HuBERT Base-size seq2seq model on long two-face clips.

The model is a converted folder of the official Base VSR layout (encoder 12 x 768 with the ResNet-18 lip
front-end, decoder 6 x 768 with 4 heads, 1,004 symbols) with random weights: memory and speed do not depend on
what the weights are. Its output is held at 40 tokens per 20 s chunk (``--max-len-a 0 --max-len-b 40``; random
weights rarely choose eos), so every chunk costs what a real sentence does. The clips are ``bench_separate.py``'s
(640x480, both faces tracked throughout). Each run is a child process under ``/usr/bin/time -v``. Target: below
4 GB on 2 cores at 600 s.

    python benchmarks/bench_avhubert_recognize.py --seconds 60 600

Writes ``benchmarks/results/cpu/avhubert_recognize_memory.{csv,png}``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_separate import long_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "cpu"


def base_vsr_folder(path: Path) -> Path:
    """A converted-folder checkpoint of AV-HuBERT's Base VSR layout with random weights (and a target dictionary
    of 1,000 made-up pieces plus fairseq's 4 specials)."""
    import torch
    from torch import nn

    from avspeech.model.avhubert.decoder import DecoderConfig, Seq2SeqDecoder
    from avspeech.model.checkpoint import save_checkpoint
    from avspeech.model.config import EncoderConfig
    from avspeech.model.encoder import AVEncoder
    from avspeech.recognition.seq2seq import KIND

    if (path / "config.json").is_file():
        return path
    torch.manual_seed(0)
    enc = EncoderConfig(dim=768, layers=12, heads=12, ffn=3072, fusion="concat", layout="avhubert", norm_first=True,
                        audio_features="avhubert", roi_geometry="avhubert")
    dec = DecoderConfig(vocab=1004, padding_idx=1, encoder_dim=768, normalize_before=True, tied=True)
    model = nn.ModuleDict({"encoder": AVEncoder(enc), "decoder": Seq2SeqDecoder(dec)})
    symbols = ["<s>", "<pad>", "</s>", "<unk>"] + [("\u2581" if i % 3 == 0 else "") + f"p{i}" for i in range(1000)]
    dicts = {"dictionaries": [], "dictionary_specials": [], "target_dictionary": symbols,
             "target_specials": {"bos": 0, "pad": 1, "eos": 2, "unk": 3, "nspecial": 4}}
    return save_checkpoint(path, model, {"kind": KIND, "encoder": enc.to_dict(), "decoder": dec.to_dict(),
                                         "modes": ["video"]},
                           files={"dictionaries.json": json.dumps(dicts).encode()})


def run_one(clip: Path, out: Path, checkpoint: Path) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "avspeech", "recognize", str(clip), "--out", str(out),
           "--checkpoint", str(checkpoint), "--beam", "5", "--max-len-a", "0", "--max-len-b", "40"]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
    info = json.loads((out / "transcripts.json").read_text())
    return {"clip_seconds": round(info["frames"] / info["fps"], 2), "faces": len(info["speakers"]),
            "segments": sum(len(s["segments"]) for s in info["speakers"]), "cores": os.cpu_count(),
            "wall_seconds": round(wall, 1), "recognition_seconds": round(info["seconds"].get("recognition", 0), 1),
            "peak_rss_gb": round(peak_kb / 2**20, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[60.0, 600.0])
    ap.add_argument("--work", default="bench_separate_work", help="clips (shared with bench_separate)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ck = base_vsr_folder(work / "avhubert_base_vsr_random")
    rows = []
    for s in args.seconds:
        rows.append(run_one(long_clip(work, s), work / f"avhubert_rec_{int(s)}s", ck))
        print(rows[-1], flush=True)
    from avspeech.io.atomic import atomic_write_csv

    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(RESULTS / "avhubert_recognize_memory.csv", rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot([r["clip_seconds"] for r in rows], [r["peak_rss_gb"] for r in rows], "o-",
            label="recognize, AV-HuBERT Base VSR layout")
    ax.axhline(4.0, color="k", ls=":", lw=1, label="4 GB target")
    ax.set_xscale("log")
    ax.set_ylim(0, 4.5)
    ax.set_xlabel("clip length (s), two faces, 640x480")
    ax.set_ylabel("peak resident memory (GB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = RESULTS / "avhubert_recognize_memory.tmp.png"
    fig.savefig(tmp, dpi=110)
    tmp.replace(RESULTS / "avhubert_recognize_memory.png")


if __name__ == "__main__":
    main()
