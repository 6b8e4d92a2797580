"""benchmarks/gpu_session.sh --dry-run: the GPU session's command runs here end to end on tiny shapes (the kernels
in the interpreter, FlexAttention eagerly, the model on the reference), so the GPU window is not spent on a typo.

It runs as on the GPU image, where avspeech is not installed: an interpreter that cannot see this checkout's
installation (``hidden_install``), so the script must use its own copy of the tree with ``kernels/`` as
``avspeech.kernels``. Every stage runs once (about a minute and a half).
"""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("env", "warm", "attention", "attention_flex", "tests", "train_step", "pretrain", "separate")


@pytest.fixture
def hidden_install(tmp_path) -> str:
    """An interpreter (a wrapper script) for which the editable install of avspeech does not exist."""
    folder = tmp_path / "hide"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        "def _ours(f):\n"
        "    return '__editable__' in str(getattr(f, '__module__', '')) and 'avspeech' in str(f.__module__)\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if not _ours(f)]\n"
        "sys.path_hooks[:] = [h for h in sys.path_hooks if not _ours(h)]\n")
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{folder}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    r = subprocess.run([str(wrapper), "-c", "import avspeech"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "No module named 'avspeech'" in r.stderr, "the installation is still visible"
    return str(wrapper)


def test_gpu_session_dry_run(tmp_path, hidden_install):
    out = tmp_path / "dry-run"
    env = {**os.environ, "PYTHON": hidden_install, "OUT": str(tmp_path / "device_out")}
    (tmp_path / "device_out").mkdir()
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh"), "--dry-run", "--out", str(out)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    stages = [line.split("\t") for line in (out / "logs" / "stages.tsv").read_text().splitlines()]
    assert [s[:2] for s in stages] == [[n, "ok"] for n in STAGES], stages
    assert "collected" in (out / "logs" / "tests.log").read_text()
    rows = list(csv.DictReader(open(out / "cross_attention_shapes.csv")))
    ran = {row["provider"] for row in rows if row["status"] == "ok"}
    assert ran >= {"triton:shipped", "triton:large", "triton:narrow", "triton:shipped:atomic", "triton:large:atomic",
                   "flex", "flex:prebuilt", "sdpa_mask", "sdpa_flash"}, ran
    for row in rows:  # every kernel and Flex row was checked against float64 (fp32 here)
        if row["status"] == "ok" and row["provider"].startswith(("triton:", "flex")):
            assert float(row["rel_err"]) < 1e-5, row
        elif row["provider"].startswith("sdpa"):
            assert math.isnan(float(row["rel_err"])), row
    flash = [row for row in rows if row["provider"] == "sdpa_flash"]  # once per shape and mode, any pattern
    assert len(flash) == len({(row["shape"], row["mode"]) for row in rows}), flash
    summary = (out / "summary.md").read_text()
    assert "| attention | ok |" in summary and "fastest variant" in summary
    assert {p.name for p in (tmp_path / "device_out").iterdir()} >= {"summary.md", "results.tar.gz"}


def test_gpu_session_deadline_skips_what_it_cannot_finish(tmp_path):
    out = tmp_path / "dry-run"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_SESSION_SECONDS": "5"}
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh"), "--dry-run", "--out", str(out),
                        "--only", "env,tests"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    stages = [line.split("\t")[:2] for line in (out / "logs" / "stages.tsv").read_text().splitlines()]
    assert stages == [["env", "skipped: the session's deadline"], ["tests", "skipped: the session's deadline"]]


def test_a_wrong_kernel_row_is_flagged_and_not_chosen(monkeypatch, tmp_path):
    """The benchmark's float64 check: a variant whose results are off is timed but marked wrong, listed in the
    summary and left out of the tile choice."""
    import torch

    from avspeech.kernels import cross_attention as ca

    if not ca.triton_runs(torch.empty(0)):
        pytest.skip("TRITON_INTERPRET=1 was not set before triton was imported")
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import bench_cross_attention_shapes as bench

    real = ca.cross_modal_attention

    def off(*a, **k):  # the large tiles "lose" a few percent of every output
        out_a, out_v = real(*a, **k)
        return (out_a * 1.1, out_v) if k.get("tiles") == "large" else (out_a, out_v)

    monkeypatch.setattr(ca, "cross_modal_attention", off)
    rows = bench.run(torch.device("cpu"), 1, 1, 16, torch.float32, bench.DRY_SHAPES[:1],
                     ["triton:shipped", "triton:large"], ["fwd"], math.inf, tmp_path, log=lambda *_: None)
    status = {r.provider: r.status for r in rows}
    assert status["triton:shipped"] == "ok" and status["triton:large"].startswith("wrong (rel err 0.1"), status
    text, choice = bench.summarize(rows, math.nan)
    assert "WRONG: triton:large" in text and [c["fastest"] for c in choice] == ["triton:shipped"]


def test_prepared_corpus_feeds_the_pretrain_stage(tmp_path, hidden_install):
    """--prepare's corpus (made by a file: its synthesis workers are spawned, which a here-document's script
    cannot host) keeps only what travels, and the pretrain stage reads it through the re-rooted manifest."""
    corpus = tmp_path / "corpus"
    env = {**os.environ, "PYTHON": hidden_install}
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
