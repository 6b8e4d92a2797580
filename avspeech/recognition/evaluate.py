"""``avspeech evaluate recognition``: WER and CER per mode (A, V, AV) and noise condition on a labelled set.

Conditions: clean, interfering speech and babble at each SNR of ``snrs`` (default -5, 0, 5 dB), made by
:class:`~avspeech.recognition.data.RecognitionDataset` (interferers drawn deterministically from other clips of
the same set). With ``noise`` (a noise set folder, ``avspeech noise``), its test list is added to every
condition, last, at an SNR drawn in ``snr`` dB (the same draw for an utterance in every condition and run); the
summary names the set and the SNR (columns ``noise``, ``noise_snr_db``). Video-only recognition does not read the
audio, so it is decoded once and its rows are the same under every condition. Writes ``results.csv`` (one row per utterance, mode and condition), ``summary.csv``,
``summary.md`` (a WER table and a CER table) and ``summary.json``. Every utterance to score is read once first:
one that cannot be read (a bad or missing file, a wrong sample rate, a truncated wav) is written with its cause
to ``failures.tsv`` (``failed`` in the summary) and left out of the set (``readable.tsv`` and ``readable.wrd``,
in ``out``), so no pass scores it or draws it as an interferer; the others are scored.
"""
from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from avspeech.batch import Failure, write_failures
from avspeech.datasets.noise import check_snr
from avspeech.errors import InputError
from avspeech.features.audio import encoder_setting
from avspeech.io.atomic import atomic_write_json, atomic_write_text
from avspeech.recognition.data import Condition, RecognitionDataset, collate_recognition
from avspeech.recognition.metrics import corpus_rates, error_counts
from avspeech.recognition.model import AVRecognizer
from avspeech.recognition.seq2seq import is_seq2seq
from avspeech.recognition.transcribe import DecodeOptions, transcribe_batch

log = logging.getLogger(__name__)

MODE_NAMES = {"audio": "A", "video": "V", "av": "AV"}


def conditions(snrs: Sequence[float] = (-5, 0, 5), kinds: Sequence[str] = ("speech", "babble")) -> list[Condition]:
    return [Condition()] + [Condition(k, float(s)) for k in kinds for s in snrs]


def evaluate_recognition(model: AVRecognizer, manifest: str | Path, labels: str | Path | None, out: str | Path, *,
                         modes: Sequence[str] = ("audio", "video", "av"), conds: Sequence[Condition] | None = None,
                         options: DecodeOptions = DecodeOptions(), limit: int | None = None,
                         batch_size: int = 8, noise: str | Path | None = None,
                         snr: tuple[float, float] = (0.0, 0.0)) -> dict:
    out = Path(out)
    lo, hi = check_snr(snr)
    noise_cols = {"noise": Path(noise).name if noise is not None else "",
                  "noise_snr_db": "" if noise is None else f"{lo:g}" if lo == hi else f"{lo:g}:{hi:g}"}
    out.mkdir(parents=True, exist_ok=True)
    conds = list(conds) if conds is not None else conditions()
    seq2seq = is_seq2seq(model)  # scores text only: no tokens needed
    if seq2seq:
        for mode in modes:
            model.check_mode(mode)
    source = manifest
    # interferers come from anywhere in the set: with a noisy condition every utterance is read, else the first limit
    clean_only = all(c.kind == "clean" for c in conds)
    skipped = unreadable(manifest, labels, None if seq2seq else model.tokenizer,
                         encoder_setting(model, "audio_features"), limit if clean_only else None)
    if skipped:
        manifest, labels = without(manifest, labels, skipped, out)
    rows: list[dict] = []
    video_rows: list[dict] | None = None
    jobs = [(c, m) for c in conds for m in modes]
    bar = tqdm(jobs, desc="evaluate recognition", unit="pass", dynamic_ncols=True)
    for cond, mode in bar:
        bar.set_postfix(mode=MODE_NAMES[mode], condition=cond.name)
        if mode == "video" and video_rows is not None:
            rows += [{**r, "condition": cond.name} for r in video_rows]
            continue
        ds = RecognitionDataset(manifest, labels, None if seq2seq else model.tokenizer, train=False, condition=cond,
                                features=encoder_setting(model, "audio_features"), noise=noise, snr=(lo, hi))
        idx = list(range(len(ds)))[:limit] if limit else list(range(len(ds)))
        batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
        new = []
        for b in batches:
            items = []
            for i in b:
                uid = ds.utts[i].id
                if uid in skipped:
                    continue
                try:
                    items.append(ds[i])
                except InputError as e:  # this utterance is left out of every pass and reported
                    skipped[uid] = str(e)
                    log.warning("utterance %s skipped: %s", uid, e)
            if not items:
                continue
            batch = collate_recognition(items)
            hyps = transcribe_batch(model, batch["lips"], batch["audio"], batch["lengths"], mode, options)
            for uid, ref, h in zip(batch["ids"], batch["texts"], hyps):
                new.append({"condition": cond.name, "mode": MODE_NAMES[mode], "id": uid, "reference": ref,
                            "hypothesis": h.text, **error_counts(ref, h.text)})
        if mode == "video":
            video_rows = new
        rows += new
    rows = [r for r in rows if r["id"] not in skipped]  # one that failed later is out of every condition
    summary = []
    for cond in conds:
        for mode in modes:
            sel = [r for r in rows if r["condition"] == cond.name and r["mode"] == MODE_NAMES[mode]]
            rates = corpus_rates(sel)
            summary.append({"condition": cond.name, "kind": cond.kind, "snr_db": None if cond.kind == "clean"
                            else cond.snr_db, **noise_cols, "mode": MODE_NAMES[mode], "utterances": len(sel),
                            "wer": round(rates["wer"], 2), "cer": round(rates["cer"], 2)})
    _write_csv(out / "results.csv", rows)
    _write_csv(out / "summary.csv", summary)
    head = "" if noise is None else (f"Noise set {Path(noise).resolve()} (test list) added to every condition at "
                                     f"{noise_cols['noise_snr_db']} dB.\n\n")
    write_failures(out / "failures.tsv", [Failure(uid, cause) for uid, cause in skipped.items()])
    tail = (f"\n{len(skipped)} utterance(s) could not be read and are left out (files and causes: failures.tsv).\n"
            if skipped else "")
    atomic_write_text(out / "summary.md", head + markdown_tables(summary, [c.name for c in conds],
                                                                 [MODE_NAMES[m] for m in modes]) + tail)
    result = {"manifest": str(source), "utterances": len({r["id"] for r in rows}), "failed": len(skipped),
              "summary": summary}
    if noise is not None:
        result.update(noise=str(Path(noise).resolve()), snr=[lo, hi])
    atomic_write_json(out / "summary.json", result)
    return result


def unreadable(manifest: str | Path, labels: str | Path | None, tokenizer, features: str,
               limit: int | None = None) -> dict[str, str]:
    """The utterances (the first ``limit``) of ``manifest`` that cannot be read, each with the error naming its
    file and the cause (each is read once, clean)."""
    ds = RecognitionDataset(manifest, labels, tokenizer, train=False, condition=Condition(), features=features)
    bad = {}
    for i in tqdm(range(len(ds) if limit is None else min(limit, len(ds))), desc="read utterances", unit="utt",
                  dynamic_ncols=True):
        try:
            ds[i]
        except InputError as e:
            bad[ds.utts[i].id] = str(e)
            log.warning("utterance %s left out: %s", ds.utts[i].id, e)
    return bad


def without(manifest: str | Path, labels: str | Path | None, drop: dict[str, str] | set[str],
            out: Path) -> tuple[Path, Path]:
    """Copies of ``manifest`` and its transcripts without the utterances ``drop``: ``out/readable.tsv`` (absolute
    paths) and ``out/readable.wrd``."""
    from avspeech.data.layout import (default_labels_path, read_manifest, read_transcripts, write_manifest,
                                      write_transcripts)

    utts = read_manifest(manifest)
    texts = read_transcripts(labels if labels is not None else default_labels_path(manifest), utts)
    keep = [(u, t) for u, t in zip(utts, texts) if u.id not in drop]
    m = write_manifest(out / "readable.tsv", "/", [(u.id, u.video or "", u.audio or "", u.frames, u.samples)
                                                    for u, _ in keep])
    write_transcripts(out / "readable.wrd", [t for _, t in keep])
    return m, out / "readable.wrd"


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def markdown_tables(summary: list[dict], cond_names: list[str], mode_names: list[str]) -> str:
    """Two markdown tables (WER %, CER %): one row per mode, one column per condition."""
    lines = []
    for metric in ("wer", "cer"):
        lines.append(f"{metric.upper()} (%) | " + " | ".join(cond_names))
        lines.append("---|" + "|".join("---:" for _ in cond_names))
        for m in mode_names:
            vals = {r["condition"]: r[metric] for r in summary if r["mode"] == m}
            lines.append(f"{m} | " + " | ".join("-" if c not in vals or math.isnan(vals[c]) else f"{vals[c]:.1f}"
                                                for c in cond_names))
        lines.append("")
    return "\n".join(lines)
