"""Scoring a separation checkpoint on a mixture list (``avspeech evaluate separation``).

Every (mixture, target face) is separated at full length and scored against its reference with
:func:`~avspeech.separation.metrics.score`; the audio-only baseline's two outputs are assigned to the two speakers by
the permutation with the higher total SI-SDR (its best case). Writes ``<out>/results.csv`` (one row per target, rows
written as they come, so an interrupted run resumes), ``<out>/summary.json`` and ``<out>/summary.md`` (means). A
target that cannot be scored (:func:`~avspeech.separation.metrics.unscorable`: a mixture shorter than BSS-eval's
filter, a silent target, an interferer that is silent or the target's own audio), like one whose audio cannot be
read, is skipped: its file and cause go to ``<out>/failures.tsv`` and the summary counts it (``failed``), the
others are scored (a re-run tries the skipped ones again). A target whose PESQ or STOI the
library refuses (no speech found, too short) is logged as a warning naming it, scores NaN there, is left out of that
mean, and counted in the summary (``pesq_failed``, ``stoi_failed``; None without PESQ/STOI) and in a line of
``summary.md``. ``<out>/scoring.json`` records what the rows score (a hash of the model's weights, the mixture list,
the manifest, whether PESQ/STOI are on): a run into a folder that holds another model's rows starts over instead of
mixing them in.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from avspeech.batch import Failure, write_failures
from avspeech.errors import InputError
from avspeech.features.audio import encoder_setting
from avspeech.io.atomic import atomic_write_json, atomic_write_text
from avspeech.separation.metrics import score, si_sdr, unscorable
from avspeech.separation.mixtures import MixtureDataset, collate_mixtures
from avspeech.separation.model import AVSeparator

log = logging.getLogger(__name__)

METRICS = ("si_sdri", "sdri", "si_sdr", "sdr", "si_sdr_mix", "sdr_mix", "pesq", "stoi")


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 of a model's parameters and buffers (names, shapes, dtypes, values)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def estimate(model: AVSeparator, item: dict) -> np.ndarray:
    """The target's estimate (N,) for one dataset item (best assignment for the audio-only baseline)."""
    dev = next((w.device for w in model.parameters()), torch.device("cpu"))  # where the model is
    b = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in collate_mixtures([item]).items()}
    est = model(b["mixture"], b["lips"], b["audio"], b["lengths"])[0]  # (K, N)
    if est.shape[0] == 2:
        keep = si_sdr(est[0:1], b["target"]) + si_sdr(est[1:2], b["interferer"])
        swap = si_sdr(est[1:2], b["target"]) + si_sdr(est[0:1], b["interferer"])
        est = est[0] if keep >= swap else est[1]
    else:
        est = est[0]
    return est.float().cpu().numpy()


def check_scorable(ds: MixtureDataset, i: int, item: dict) -> None:
    """An :class:`InputError` naming the file to blame when item ``i`` of ``ds`` cannot be scored
    (:func:`~avspeech.separation.metrics.unscorable`): the shorter utterance's audio when the mixture is too
    short, the interferer's when it is silent, else the target's (and the interferer's is named in the cause
    when it is the target's own audio)."""
    cause = unscorable(item["target"].numpy(), item["mixture"].numpy())
    if cause is None:
        return
    m = ds.mixtures[i // 2]
    target, other = (m.utt_a, m.utt_b) if i % 2 == 0 else (m.utt_b, m.utt_a)
    blame = other if cause.startswith("the interferer is silent") else target
    where = f"target {target} of mixture {m.id}, interferer {other}"
    if cause.startswith("the interferer is the reference's own audio"):
        where += f" ({ds.utts[other].audio})"
    if cause.startswith("only"):
        frames = {u: len(ds.load(u)[0]) for u in (target, other)}
        blame = min(frames, key=frames.get)
        cause += (f"; the mixture is cut to the shorter utterance, {blame}, which has {frames[blame]} frames of "
                  "video and audio")
    raise InputError(f"{where}: {cause}", ds.utts[blame].audio)


def evaluate_separation(model: AVSeparator, manifest: str | Path, mixtures: str | Path, out: str | Path,
                        perceptual: bool = True, limit: int | None = None, noise: str | Path | None = None,
                        snr: tuple[float, float] = (0.0, 0.0)) -> dict[str, Any]:
    """Score ``model`` on every target of ``mixtures`` (with ``noise``: a noise set's test list added to each
    mixture at ``snr`` dB, see :class:`MixtureDataset`); returns the summary (means, the number of targets and of
    PESQ/STOI failures)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = MixtureDataset(manifest, mixtures, features=encoder_setting(model, "audio_features"), noise=noise, snr=snr)
    n = len(ds) if limit is None else min(limit, len(ds))
    csv_path = out / "results.csv"
    fields = ["id", "target", "interferer", "gain_db", *METRICS]
    scoring = {"model_sha256": weights_hash(model), "mixtures": str(Path(mixtures).resolve()),
               "manifest": str(Path(manifest).resolve()), "perceptual": perceptual}
    if noise is not None:
        scoring.update(noise=str(Path(noise).resolve()), snr=list(snr))
    scoring_path = out / "scoring.json"
    done: dict[str, dict] = {}
    if csv_path.is_file():
        before = json.loads(scoring_path.read_text()) if scoring_path.is_file() else None
        if before == scoring:
            with open(csv_path, newline="") as f:
                done = {r["id"]: r for r in csv.DictReader(f)}
        else:
            log.warning("%s holds rows of another model or mixture list; scoring again from the start", csv_path)
    if not done:
        atomic_write_text(csv_path, ",".join(fields) + "\n")
    atomic_write_json(scoring_path, scoring)
    model.eval()
    failures: list[Failure] = []
    with open(csv_path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        for i in tqdm(range(n), desc="evaluate separation", unit="target", dynamic_ncols=True):
            m = ds.mixtures[i // 2]
            item_id = f"{m.id}:{'ab'[i % 2]}"
            if item_id in done:
                continue
            try:
                item = ds[i]
                check_scorable(ds, i, item)
                est = estimate(model, item)
                scores = score(est, item["target"].numpy(), item["mixture"].numpy(), perceptual=perceptual,
                               utterance=item_id)
            except (InputError, ValueError) as e:  # skipped and reported (a NaN estimate too); the rest is scored
                failures.append(Failure(item_id, str(e)))
                log.warning("target %s skipped: %s", item_id, e)
                continue
            row = {"id": item_id, "target": m.utt_a if i % 2 == 0 else m.utt_b,
                   "interferer": m.utt_b if i % 2 == 0 else m.utt_a, "gain_db": m.gain_db,
                   **{k: round(v, 4) for k, v in scores.items()}}
            w.writerow(row)
            f.flush()
            done[item_id] = row
    rows = [done[k] for k in sorted(done)]
    write_failures(out / "failures.tsv", failures)
    summary = {**summarize(rows, perceptual), "failed": len(failures)}
    atomic_write_json(out / "summary.json", summary)
    md = markdown_table({"model": summary})
    if summary["sdr_unbounded"]:
        md += (f"\n{summary['sdr_unbounded']} target(s) scored an infinite SDR (a silent or a perfect estimate; "
               "results.csv has them) and are left out of the SDR means.\n")
    if failures:
        md += (f"\n{len(failures)} of {len(rows) + len(failures)} targets could not be scored and are left out "
               f"(files and causes: failures.tsv).\n")
    if perceptual:
        md += (f"\nPESQ failed on {summary['pesq_failed']} of {summary['targets']} targets, STOI on "
               f"{summary['stoi_failed']} (left out of the means; the log names them).\n")
    atomic_write_text(out / "summary.md", md)
    return summary


def _number(r: dict, k: str) -> float:
    """A row's value of metric ``k`` as a float (NaN when empty or missing)."""
    v = r.get(k)
    return float("nan") if v in (None, "") else float(v)


def summarize(rows: Sequence[dict], perceptual: bool = True) -> dict[str, Any]:
    """Means over ``rows`` (NaN and infinite values left out: an SDR of a silent or a perfect estimate is
    -inf or +inf), the number of targets, ``sdr_unbounded`` (targets whose SDR was infinite), and with
    ``perceptual`` the number of targets whose PESQ / STOI failed (``pesq_failed``, ``stoi_failed``; None
    without)."""
    out: dict[str, Any] = {"targets": len(rows)}
    for k in METRICS:
        vals = [v for v in (_number(r, k) for r in rows) if math.isfinite(v)]
        out[k] = round(float(np.mean(vals)), 3) if vals else float("nan")
    out["sdr_unbounded"] = sum(math.isinf(_number(r, "sdr")) for r in rows)
    for k in ("pesq", "stoi"):
        out[f"{k}_failed"] = sum(math.isnan(_number(r, k)) for r in rows) if perceptual else None
    return out


def markdown_table(summaries: dict[str, dict]) -> str:
    """One row per named summary: targets, SI-SDRi, SDRi, SI-SDR, SDR, PESQ, STOI."""
    cols = [("targets", "targets"), ("si_sdri", "SI-SDRi (dB)"), ("sdri", "SDRi (dB)"), ("si_sdr", "SI-SDR (dB)"),
            ("sdr", "SDR (dB)"), ("pesq", "PESQ (wb)"), ("stoi", "STOI")]
    lines = ["| | " + " | ".join(c[1] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name, s in summaries.items():
        cells = [str(s.get(k, "")) if k == "targets" else f"{s.get(k, float('nan')):.2f}" for k, _ in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
