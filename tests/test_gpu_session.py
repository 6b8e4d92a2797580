"""benchmarks/gpu_session.sh --dry-run: the GPU session's command runs here end to end on tiny shapes (the kernels
in the interpreter, FlexAttention eagerly, the model on the reference), so the GPU window is not spent on a typo.

The suite runs the stages that need no media pipeline: the attention benchmark with every backend and variant,
and the training step (env only prints versions; the tests stage only collects the kernel test files, which the
suite runs anyway; pretrain and separate run commands that have their own tests). ``--dry-run`` alone runs every
stage (about two minutes in all).
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_session_dry_run(tmp_path):
    out = tmp_path / "dry-run"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "device_out")}
    (tmp_path / "device_out").mkdir()
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh"), "--dry-run", "--out", str(out),
                        "--only", "attention,attention_flex,train_step"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    stages = [line.split("\t") for line in (out / "logs" / "stages.tsv").read_text().splitlines()]
    assert [s[:2] for s in stages] == [[n, "ok"] for n in ("attention", "attention_flex", "train_step")], stages
    rows = list(csv.DictReader(open(out / "cross_attention_shapes.csv")))
    ran = {row["provider"] for row in rows if row["status"] == "ok"}
    assert ran >= {"triton:shipped", "triton:large", "triton:narrow", "triton:shipped:atomic", "triton:large:atomic",
                   "flex", "sdpa_mask", "sdpa_flash"}, ran
    summary = (out / "summary.md").read_text()
    assert "| attention | ok |" in summary and "fastest variant" in summary
    assert {p.name for p in (tmp_path / "device_out").iterdir()} >= {"summary.md", "results.tar.gz"}


def test_prepared_corpus_feeds_the_pretrain_stage(tmp_path):
    """--prepare's corpus (made by a file: its synthesis workers are spawned, which a here-document's script
    cannot host) keeps only what travels, and the pretrain stage reads it through the re-rooted manifest."""
    corpus = tmp_path / "corpus"
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_session_prepare.py"), "--corpus", str(corpus),
                        "--clips", "2", "--no-wheels"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "a device call sends tree" in r.stdout
    assert sorted(p.name for p in (corpus / "data").iterdir()) == ["prep"]  # the raw clips do not travel
    moved = tmp_path / "elsewhere"  # as on the GPU machine: another absolute path
    corpus.rename(moved)
    out = tmp_path / "dry-run"
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh"), "--dry-run", "--out", str(out),
                        "--prep", str(moved), "--only", "pretrain"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "logs" / "stages.tsv").read_text().split("\t")[:2] == ["pretrain", "ok"]
    manifest = (out / "pretrain_manifest.tsv").read_text().splitlines()
    assert manifest[0] == str(moved / "data" / "prep") and len(manifest) > 1
    assert "done: step 2" in (out / "logs" / "pretrain.log").read_text()


def test_attention_stage_without_a_kernel_row_still_writes_its_table(tmp_path):
    """A run where no Triton variant ran (the flex stage after a failed kernel stage) keeps its rows and table
    and exits 0: there is no tile choice to write."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_cross_attention_shapes.py"), "--dry-run",
                        "--out", str(tmp_path), "--providers", "sdpa_mask", "--modes", "fwd"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "cross_attention_shapes.csv")))
    assert {row["provider"] for row in rows} == {"sdpa_mask"} and all(row["status"] == "ok" for row in rows)
    assert "(none ran)" in (tmp_path / "cross_attention_shapes.md").read_text()
    assert not (tmp_path / "tile_choice.csv").exists()
