"""Small manifests written by hand (tests of data loading and training mechanics, no preprocessing needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from avspeech.io.media import write_video, write_wav


def make_manifest(root: Path, lengths=(30, 42, 36, 50, 24, 45, 33, 40), seed: int = 0) -> Path:
    """Utterances whose mouth ROIs (96x96 gray, lossless) and audio (16 kHz tones) change together every few
    frames; writes ``root/manifest.tsv`` in AV-HuBERT's layout and returns its path."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = [str(root)]
    for i, t in enumerate(lengths):
        states = rng.integers(0, 4, size=(t + 4) // 5).repeat(5)[:t]  # a "phone" every 5 frames
        yy, xx = np.mgrid[0:96, 0:96]
        rois = np.stack([(128 + 60 * np.sin(xx / (4 + 3 * s)) * np.cos(yy / (5 + 2 * s))
                          + rng.normal(0, 3, (96, 96))).clip(0, 255).astype(np.uint8) for s in states])
        tt = np.arange(640) / 16000
        audio = np.concatenate([0.2 * np.sin(2 * np.pi * (200 + 250 * s) * tt + rng.uniform(0, 6)) for s in states])
        audio = (audio + rng.normal(0, 0.01, audio.size)).astype(np.float32)
        uid = f"utt{i:03d}"
        write_video(root / f"{uid}.mp4", rois, 25, gray=True, crf=0)
        write_wav(root / f"{uid}.wav", audio, 16000, subtype="PCM_16")
        rows.append(f"{uid}\t{uid}.mp4\t{uid}.wav\t{t}\t{audio.size}")
    path = root / "manifest.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def assert_same_run(a: dict, b: dict, dir_a: Path, dir_b: Path) -> None:
    """Two training runs (their summaries and folders) end with bit-identical weights and the same logged
    steps, epochs and first two metrics."""
    import torch

    from avspeech.model.checkpoint import load_weights

    wa, wb = load_weights(a["checkpoint"]), load_weights(b["checkpoint"])
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)
    rows_a = (Path(dir_a) / "log.csv").read_text().splitlines()
    rows_b = (Path(dir_b) / "log.csv").read_text().splitlines()
    assert [r.split(",")[:4] for r in rows_a] == [r.split(",")[:4] for r in rows_b]
