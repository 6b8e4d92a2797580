"""The one training engine (avspeech.training.fit) under torchrun with 2 gloo processes: a SIGTERM that reaches
one rank only still ends the run with a checkpoint of the step every rank stopped at; for each head, 2 ranks
compute the same losses as 1 rank with 2 accumulation steps."""
import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest

from avspeech.model.checkpoint import load_state
from avspeech.errors import InputError
from avspeech.training import latest_checkpoint
from data_helpers import make_manifest

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "AVSPEECH_ATTENTION": "reference"}

# Runs one head's training from a JSON config: ``python script.py HEAD CONFIG.json [SIGTERM_RANK SIGTERM_STEP]``.
# With the last two, the process of that rank sends itself SIGTERM during that step (1-based), the real path.
SCRIPT = textwrap.dedent('''
    import json, os, signal, sys

    head, cfg = sys.argv[1], json.load(open(sys.argv[2]))
    if len(sys.argv) > 3:
        import avspeech.training as engine
        rank, at = int(sys.argv[3]), int(sys.argv[4])
        real = engine.Task.train_mode
        def train_mode(self, model, step):
            if int(os.environ["RANK"]) == rank and step + 1 == at:
                os.kill(os.getpid(), signal.SIGTERM)
            return real(self, model, step)
        engine.Task.train_mode = train_mode
    if head == "pretrain":
        from avspeech.pretrain.train import TrainConfig as C, train as run
    elif head == "separation":
        from avspeech.separation.train import SeparationTrainConfig as C, train_separation as run
    else:
        from avspeech.recognition.train import RecognitionTrainConfig as C, train_recognition as run
    summary = run(C(**cfg))
    # one write of one line (under PIPE_BUF): two ranks' summaries cannot interleave on the shared pipe
    sys.stdout.write("SUMMARY " + json.dumps(summary) + "\\n")
    sys.stdout.flush()
''')


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from avspeech.data import read_manifest, write_labels
    from avspeech.pretrain import cluster as cl
    from avspeech.recognition.data import write_transcripts
    from avspeech.separation.mixtures import make_mixtures, write_mixtures

    root = tmp_path_factory.mktemp("engine")
    manifest = make_manifest(root, lengths=(22, 26, 20, 24, 28, 21, 25, 23))
    utts = read_manifest(manifest)
    feats = cl.mfcc_features(utts)
    labels = root / "mfcc.km"
    write_labels(labels, cl.assign(cl.fit_kmeans(feats, 6, seed=0), feats, [u.frames for u in utts]))
    write_transcripts(manifest.with_suffix(".wrd"), ["place red at f two now", "bin blue in n two again"] * 4)
    mixtures = root / "mix.tsv"
    write_mixtures(mixtures, make_mixtures(utts, 8, seed=0))
    (root / "train.py").write_text(SCRIPT)
    return {"manifest": str(manifest), "labels": str(labels), "mixtures": str(mixtures), "script": root / "train.py"}


def _config(head, data, out, **kw):
    common = dict(out=str(out), warmup=1, log_every=1, save_every=100, seed=5, **kw)
    if head == "pretrain":
        return dict(manifest=data["manifest"], labels=data["labels"], batch_frames=60, max_frames=30, **common)
    if head == "separation":
        return dict(manifest=data["manifest"], mixtures=data["mixtures"], batch_size=2, crop_frames=10, hidden=16,
                    silent_prob=0.3, **common)
    return dict(manifest=data["manifest"], batch_size=2, lr=1e-3, decoder_layers=1, silent_prob=0.3, **common)


def _launch(data, head, cfg, tmp_path, nproc, port, *extra):
    path = tmp_path / f"{head}_{nproc}_{port}.json"
    path.write_text(json.dumps(cfg))
    cmd = [sys.executable, str(data["script"]), head, str(path), *map(str, extra)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port",
               str(port), *cmd[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)


def _losses(out):
    with open(out / "log.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def test_sigterm_on_one_rank_ends_with_the_checkpoint_every_rank_agrees_on(data, tmp_path):
    out = tmp_path / "run"
    res = _launch(data, "pretrain", _config("pretrain", data, out, steps=6), tmp_path, 2, 29531, 1, 3)
    summaries = [json.loads(ln.split(" ", 1)[1]) for ln in res.stdout.splitlines() if ln.startswith("SUMMARY ")]
    assert len(summaries) == 2, res.stdout[-2000:] + res.stderr[-3000:]
    assert all(s["stopped"] and s["step"] == 3 for s in summaries), summaries  # rank 0 stopped with rank 1
    ck = latest_checkpoint(out)
    assert ck is not None and ck.name == "step_0000003", "no checkpoint of the step the ranks stopped at"
    assert load_state(ck)["step"] == 3
    assert sorted(_losses(out)) == [1, 2, 3]


@pytest.mark.parametrize("head,port", [("separation", 29533), ("recognition", 29535)])
def test_two_ranks_match_one_with_accumulation(data, tmp_path, head, port):
    one = _launch(data, head, _config(head, data, tmp_path / "one", steps=3, grad_accum=2), tmp_path, 1, port)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _launch(data, head, _config(head, data, tmp_path / "two", steps=3), tmp_path, 2, port)
    assert two.returncode == 0, two.stderr[-3000:]
    l1, l2 = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(l1) == sorted(l2) == [1, 2, 3]
    for s in l1:
        assert l2[s] == pytest.approx(l1[s], rel=1e-4, abs=1e-5), (s, l1[s], l2[s])


def test_latest_checkpoint_when_latest_names_a_missing_folder(tmp_path, caplog):
    """``latest`` is written after its folder; if that folder is gone (removed by hand), the newest step folder
    left is resumed, with a warning, and with none left the run refuses to start over (it would overwrite the
    run's log.csv)."""
    ckpts = tmp_path / "checkpoints"
    assert latest_checkpoint(tmp_path) is None  # a new run
    for step in (2, 10, 9):
        (ckpts / f"step_{step:07d}").mkdir(parents=True)
    (ckpts / "step_0000011.tmp").mkdir()  # a temporary folder is never a checkpoint
    (ckpts / "latest").write_text("step_0000009\n")
    assert latest_checkpoint(tmp_path) == ckpts / "step_0000009"
    (ckpts / "latest").write_text("step_0000012\n")
    with caplog.at_level("WARNING"):
        assert latest_checkpoint(tmp_path) == ckpts / "step_0000010"
    assert "names 'step_0000012', which is missing; resuming from the newest checkpoint there, step_0000010" \
        in caplog.text
    (ckpts / "latest").unlink()
    assert latest_checkpoint(tmp_path) == ckpts / "step_0000010"
    for step in (2, 10, 9):
        (ckpts / f"step_{step:07d}").rmdir()
    (ckpts / "latest").write_text("step_0000012\n")
    with pytest.raises(InputError, match=r"latest: names the checkpoint 'step_0000012', which is missing, and no "
                                         r"other checkpoint is left"):
        latest_checkpoint(tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never be printed",))


@pytest.mark.parametrize("content, words", [
    ("malicious", r"training state: refused to load: the file pickles builtins\.print, which is none of the data"),
    ("text", r"training state cannot be read: not a PyTorch file: it is a text file \(starts with 'step: 3'\)"),
    ("truncated", r"training state cannot be read: .*damaged or truncated"),
])
def test_a_bad_training_state_is_refused_in_our_words(tmp_path, capsys, content, words):
    """state.pt is read with weights_only; torch's own advice (which includes loading with weights_only=False)
    never reaches the user, and a pickled callable is named, not run."""
    import torch

    from avspeech.errors import UnsafeCheckpointError
    from avspeech.model.checkpoint import load_state

    f = tmp_path / "state.pt"
    if content == "malicious":
        torch.save({"step": 3, "hook": _RunsCode()}, f)
    elif content == "text":
        f.write_text("step: 3\n")
    else:
        torch.save({"step": 3, "w": torch.zeros(1000)}, f)
        f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(InputError, match=words) as e:
        load_state(tmp_path)
    assert "weights_only" not in str(e.value) and "\x1b" not in str(e.value)
    assert isinstance(e.value, UnsafeCheckpointError) == (content == "malicious")
    assert "must never be printed" not in capsys.readouterr().out
