"""Pretraining mechanics: clustering, exact resume after SIGTERM, DDP equals gradient accumulation,
checkpoints that cannot run code."""
import csv
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from avspeech.data import AVDataset, read_labels, read_manifest, write_labels
from avspeech.errors import InputError
from avspeech.model.checkpoint import load_encoder, load_state, load_weights
from avspeech.pretrain import cluster as cl
from avspeech.pretrain import train as train_mod
from avspeech.pretrain.train import TrainConfig, train
from data_helpers import make_manifest


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("manifest")
    manifest = make_manifest(root)
    utts = read_manifest(manifest)
    feats = cl.mfcc_features(utts)
    km = cl.fit_kmeans(feats, 8, seed=0)
    labels = root / "mfcc.km"
    write_labels(labels, cl.assign(km, feats, [u.frames for u in utts]))
    return manifest, labels


def _cfg(data, out, **kw):
    manifest, labels = data
    base = dict(manifest=str(manifest), labels=str(labels), out=str(out), steps=6, warmup=2, batch_frames=100,
                max_frames=50, save_every=100, log_every=1, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _losses(out):
    with open(out / "log.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def test_labels_match_manifest(data):
    manifest, labels = data
    utts = read_manifest(manifest)
    labs = read_labels(labels, utts)
    assert [len(x) for x in labs] == [u.frames for u in utts]
    assert len(np.unique(np.concatenate(labs))) == 8
    item = AVDataset(manifest, labels, train=True, max_frames=40)[3]
    assert item["lips"].shape == (1, 40, 88, 88) and item["audio"].shape == (40, 104)


def test_cluster_purity_closed_form():
    # HuBERT's definitions. Clusters {0: a a b b}, {1: c c}: the dominant phone of each cluster covers 2 + 2 of
    # 6 frames (phone purity 4/6); phones a -> {0 0}, b -> {0 0}, c -> {1 1}: each phone sits in one cluster
    # (cluster purity 1). The frame with cluster id -1 is left out.
    clusters = [np.array([0, 0, 0, 0, 1, 1, -1])]
    phones = [np.array(["a", "a", "b", "b", "c", "c", "c"])]
    res = cl.purity(clusters, phones)
    assert res["phone_purity"] == pytest.approx(4 / 6) and res["cluster_purity"] == pytest.approx(1.0)
    assert res["frames"] == 6 and res["clusters_used"] == 2 and res["phones"] == 3
    # PNMI: I(y; z) / H(y) with H(y) = log 3 and I = H(y) - H(y|z) = log 3 - (4/6) log 2
    assert res["pnmi"] == pytest.approx((np.log(3) - 4 / 6 * np.log(2)) / np.log(3))
    assert cl.purity([np.array([0, 0, 1, 1])], [np.array(["a", "a", "b", "b"])])["pnmi"] == pytest.approx(1.0)


def test_sigterm_saves_and_resume_is_exact(data, tmp_path, monkeypatch):
    straight = train(_cfg(data, tmp_path / "a"))
    assert straight["step"] == 6 and not straight["stopped"]

    calls = {"n": 0}
    real = train_mod.accuracies

    def interrupt_at_step_3(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # the real signal path: finish the step, save, stop
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "accuracies", interrupt_at_step_3)
    first = train(_cfg(data, tmp_path / "b"))
    assert first["stopped"] and first["step"] == 3
    assert load_state(first["checkpoint"])["step"] == 3
    monkeypatch.setattr(train_mod, "accuracies", real)
    second = train(_cfg(data, tmp_path / "b"))
    assert second["step"] == 6 and not second["stopped"]

    wa, wb = load_weights(straight["checkpoint"]), load_weights(second["checkpoint"])
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_ddp_two_processes_match_one_with_accumulation(data, tmp_path):
    manifest, labels = data
    common = ["--manifest", str(manifest), "--labels", str(labels), "--steps", "3", "--warmup", "1",
              "--batch-frames", "100", "--max-frames", "50", "--log-every", "1", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AVSPEECH_ATTENTION": "reference"}
    one = subprocess.run([sys.executable, "-m", "avspeech", "pretrain", "--out", str(tmp_path / "one"),
                          "--grad-accum", "2", *common], capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", "29517", "-m", "avspeech", "pretrain", "--out", str(tmp_path / "two"),
                          *common], capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    l1, l2 = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(l1) == sorted(l2) == [1, 2, 3]
    for s in l1:
        assert l2[s] == pytest.approx(l1[s], rel=1e-4, abs=1e-5), (s, l1[s], l2[s])


def test_checkpoints_refuse_code_and_name_the_file(data, tmp_path):
    res = train(_cfg(data, tmp_path / "run", steps=1))
    ck = res["checkpoint"]
    enc = load_encoder(ck)
    assert enc.cfg.dim == 64
    # iteration 2: cluster this checkpoint's layer-1 features
    manifest, _ = data
    out = tmp_path / "it2.km"
    r = subprocess.run(["avspeech", "cluster", str(manifest), "--out", str(out), "--clusters", "5",
                        "--checkpoint", str(ck), "--layer", "1"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "AVSPEECH_ATTENTION": "reference"})
    assert r.returncode == 0, r.stderr[-2000:]
    labs = read_labels(out, read_manifest(manifest))
    assert set(np.concatenate(labs).tolist()) == set(range(5))
    # a training state that would run code when unpickled is refused by weights_only=True
    evil = tmp_path / "evil"
    evil.mkdir()

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"step": Boom()}, evil / "state.pt")
    with pytest.raises(InputError, match=r"training state: refused to load: the file pickles (posix|os)\.system") as e:
        load_state(evil)
    assert "state.pt" in str(e.value)
    (evil / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(InputError, match="safetensors"):
        load_weights(evil)
    (evil / "config.json").write_text('{"encoder": {"dim": 64, "evil": 1}}')
    with pytest.raises(InputError, match="evil"):
        load_encoder(evil)


def test_cluster_command_continues_past_a_bad_file(data, tmp_path):
    import shutil

    manifest, _ = data
    root = tmp_path / "m"
    shutil.copytree(manifest.parent, root)
    lines = (root / "manifest.tsv").read_text().splitlines()
    lines[0] = str(root)
    (root / "manifest.tsv").write_text("\n".join(lines) + "\n")
    (root / "utt002.wav").write_text("this is not a wav file")
    res = subprocess.run(["avspeech", "cluster", str(root / "manifest.tsv"), "--out", str(root / "k.km"),
                          "--clusters", "4"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "utt002" in res.stdout and "cannot read audio" in res.stdout
    labs = read_labels(root / "k.km", read_manifest(root / "manifest.tsv"))
    assert (labs[2] == -1).all() and (labs[0] >= 0).all()
    (root / "utt005.mp4").unlink()
    with pytest.raises(InputError, match=r"2 file\(s\) of its utterances cannot be read") as e:  # before training
        train(_cfg((root / "manifest.tsv", root / "k.km"), tmp_path / "run"))
    assert e.value.path == str(root / "manifest.tsv")
    listed = (tmp_path / "run" / "unreadable.tsv").read_text().splitlines()[1:]
    assert [ln.split("\t")[0] for ln in listed] == [str(root / "utt002.wav"), str(root / "utt005.mp4")]
    assert listed[0].split("\t")[1].startswith("cannot read audio") and listed[1].endswith("\tfile not found")
    assert not (tmp_path / "run" / "checkpoints").exists()
