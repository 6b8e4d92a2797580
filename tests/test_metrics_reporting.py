"""PESQ/STOI failures are reported, not silently NaN: a warning names the utterance and the library's error, and
``evaluate separation`` counts them in its summary."""
import csv
import logging
import math

import numpy as np
import pytest
import torch

from avspeech.separation.evaluate import evaluate_separation, summarize
from avspeech.separation.metrics import score
from avspeech.separation.mixtures import Mixture, write_mixtures
from avspeech.separation.model import AVSeparator, SeparatorConfig
from data_helpers import make_manifest


def test_score_warns_with_utterance_and_cause(caplog):
    rng = np.random.default_rng(0)
    short = rng.standard_normal(3200)  # 0.2 s: below the 1/4 s pesq needs, so it raises
    est = short + 0.1 * rng.standard_normal(3200)
    with caplog.at_level(logging.WARNING, logger="avspeech.separation.metrics"):
        s = score(est, short, est + short, utterance="mix007:a")
    assert math.isnan(s["pesq"]) and not math.isnan(s["si_sdr"])
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    pesq_msgs = [m for m in msgs if m.startswith("PESQ failed")]
    assert len(pesq_msgs) == 1
    assert "mix007:a" in pesq_msgs[0] and "BufferTooShortError" in pesq_msgs[0]
    # pystoi answers a placeholder 1e-5 with a warning of its own; that is a failure too, named
    stoi_msgs = [m for m in msgs if m.startswith("STOI failed")]
    assert math.isnan(s["stoi"]) and len(stoi_msgs) == 1
    assert "mix007:a" in stoi_msgs[0] and "Not enough STFT frames" in stoi_msgs[0]
    # a signal PESQ accepts scores a number and warns nothing
    caplog.clear()
    t = np.arange(16000) / 16000
    ref = np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    with caplog.at_level(logging.WARNING, logger="avspeech.separation.metrics"):
        ok = score(ref + 0.01 * rng.standard_normal(16000), ref, ref + rng.standard_normal(16000), utterance="fine")
    assert not math.isnan(ok["pesq"]) and not math.isnan(ok["stoi"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_summarize_counts_failures_only_with_perceptual():
    rows = [{"pesq": "1.5", "stoi": "0.8"}, {"pesq": "nan", "stoi": "0.6"}, {"pesq": "", "stoi": "nan"}]
    s = summarize(rows)
    assert (s["pesq_failed"], s["stoi_failed"]) == (2, 1)
    assert s["pesq"] == 1.5 and s["stoi"] == pytest.approx(0.7)
    s = summarize(rows, perceptual=False)
    assert s["pesq_failed"] is None and s["stoi_failed"] is None


def test_summarize_leaves_infinite_sdrs_out_of_the_means_and_counts_them():
    """A silent estimate scores SDR -inf, a perfect one +inf: the means stay finite (and JSON-safe)."""
    rows = [{"sdr": "4.0", "sdri": "2.0"}, {"sdr": "-inf", "sdri": "-inf"}, {"sdr": "8.0", "sdri": "inf"}]
    s = summarize(rows, perceptual=False)
    assert (s["sdr"], s["sdri"], s["sdr_unbounded"]) == (6.0, 2.0, 1)


def test_evaluate_counts_and_names_pesq_failures(tmp_path, caplog):
    """Mixtures with a 5-frame (0.2 s) utterance are shorter than the 1/4 s PESQ needs: both of their targets
    fail (BufferTooShortError) and are counted; the mixture of two long utterances scores."""
    manifest = make_manifest(tmp_path / "data", lengths=(5, 40, 36, 45))
    mixtures = tmp_path / "mix.tsv"
    write_mixtures(mixtures, [Mixture("short", "utt000", "utt001", 0.0), Mixture("long", "utt002", "utt003", 0.0)])
    torch.manual_seed(0)
    model = AVSeparator(SeparatorConfig(hidden=16, lstm_layers=1)).eval()
    with caplog.at_level(logging.WARNING, logger="avspeech.separation.metrics"):
        s = evaluate_separation(model, manifest, mixtures, tmp_path / "eval")
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("PESQ failed")]
    assert len(failed) == 2
    assert any("short:a" in m for m in failed) and any("short:b" in m for m in failed)
    assert all("BufferTooShortError" in m for m in failed)
    assert s["targets"] == 4 and s["pesq_failed"] == 2
    rows = {r["id"]: r for r in csv.DictReader(open(tmp_path / "eval" / "results.csv"))}
    assert math.isnan(float(rows["short:a"]["pesq"])) and not math.isnan(float(rows["long:a"]["pesq"]))
    assert s["pesq"] == pytest.approx(np.mean([float(rows[k]["pesq"]) for k in ("long:a", "long:b")]), abs=1e-3)
    assert "PESQ failed on 2 of 4 targets" in (tmp_path / "eval" / "summary.md").read_text()
    # resumed from the rows on disk, the count is the same
    again = evaluate_separation(model, manifest, mixtures, tmp_path / "eval")
    assert s["stoi_failed"] == 2  # the same two: too short for STOI's frames too
    assert again["pesq_failed"] == 2 and again["stoi_failed"] == 2
