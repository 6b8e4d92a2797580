"""Separation: SI-SDR against closed forms and an independent library, mixtures, the model's padding contract,
chunked inference, exact resume of fine-tuning, and the command line on bad input."""
import copy
import subprocess

import numpy as np
import pytest
import torch

from avspeech.data.layout import read_manifest
from avspeech.errors import InputError
from avspeech.separation.metrics import energy_db, score, separation_loss, si_sdr
from avspeech.separation.mixtures import (MixtureDataset, Mixture, make_mixtures, mix_pair,
                                          read_mixtures, write_mixtures)
from avspeech.separation.model import AVSeparator, SeparatorConfig, widen_lstm
from avspeech.separation.separate import separate_span
from data_helpers import assert_same_run, make_manifest


def _orthogonal_pair(rng, n):
    """Zero-mean reference r and noise e with <r, e> = 0 (float64)."""
    r = rng.standard_normal(n)
    r -= r.mean()
    e = rng.standard_normal(n)
    e -= e.mean()
    e -= (e @ r) / (r @ r) * r
    return r, e


def test_si_sdr_closed_form_and_scale_invariance():
    rng = np.random.default_rng(0)
    r, e = _orthogonal_pair(rng, 4000)
    for a in (0.3, 1.0, 7.0):
        est = a * r + e
        expect = 10 * np.log10(a * a * (r @ r) / (e @ e))
        got = float(si_sdr(torch.from_numpy(est)[None], torch.from_numpy(r)[None], eps=0.0)[0])
        assert got == pytest.approx(expect, abs=1e-9)
        # scaling the estimate does not change it, an offset is removed by the zero-mean step
        got2 = float(si_sdr(torch.from_numpy(5 * est + 0.1)[None], torch.from_numpy(r)[None], eps=0.0)[0])
        assert got2 == pytest.approx(expect, abs=1e-9)


def test_si_sdr_matches_fast_bss_eval_and_ignores_padding():
    import fast_bss_eval

    rng = np.random.default_rng(1)
    ref = rng.standard_normal((3, 3000))
    est = ref + 0.5 * rng.standard_normal((3, 3000))
    ours = si_sdr(torch.from_numpy(est), torch.from_numpy(ref), eps=0.0).numpy()
    np.testing.assert_allclose(ours, fast_bss_eval.si_sdr(ref, est, zero_mean=True), atol=1e-6)
    # the same rows inside a longer padded batch, garbage after each row's length
    pad = np.concatenate([est, rng.standard_normal((3, 500))], axis=1)
    padref = np.concatenate([ref, rng.standard_normal((3, 500))], axis=1)
    got = si_sdr(torch.from_numpy(pad), torch.from_numpy(padref), torch.tensor([3000] * 3), eps=0.0).numpy()
    np.testing.assert_allclose(got, ours, atol=1e-9)


def test_loss_pit_silence_and_score():
    rng = np.random.default_rng(2)
    t, i = torch.from_numpy(rng.standard_normal((2, 2000))), torch.from_numpy(rng.standard_normal((2, 2000)))
    mix = t + i
    n = torch.tensor([2000, 2000])
    est = torch.stack([t + 0.1 * i, i + 0.2 * t], dim=1)
    quiet = torch.zeros(2, dtype=torch.bool)
    pit = separation_loss(est, t, i, mix, quiet, n)
    assert float(separation_loss(est.flip(1), t, i, mix, quiet, n)) == pytest.approx(float(pit))
    expect = -(si_sdr(est[:, 0], t) + si_sdr(est[:, 1], i)).mean() / 2
    assert float(pit) == pytest.approx(float(expect))
    # a face that does not speak: the loss is the output level below the mixture, in dB
    e = 0.01 * mix[:, None]
    loss = separation_loss(e, torch.zeros_like(t), mix, mix, torch.ones(2, dtype=torch.bool), n)
    assert float(loss) == pytest.approx(-40.0, abs=1e-4)
    assert float(energy_db(0.1 * mix, mix).mean()) == pytest.approx(-20.0, abs=1e-4)
    s = score(est[0, 0].numpy(), t[0].numpy(), mix[0].numpy(), perceptual=False)
    assert s["si_sdri"] == pytest.approx(s["si_sdr"] - s["si_sdr_mix"])
    assert s["si_sdri"] > 10 and s["sdri"] > 10


def test_mix_pair_levels_and_lengths():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(16000).astype(np.float32), 3 * rng.standard_normal(20000).astype(np.float32)
    xa, xb = mix_pair(a, b, 4.0)
    assert len(xa) == len(xb) == 16000 // 640 * 640
    ratio = 10 * np.log10(np.mean(xa.astype(np.float64) ** 2) / np.mean(xb.astype(np.float64) ** 2))
    assert ratio == pytest.approx(4.0, abs=0.01)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_manifest(tmp_path_factory.mktemp("sep"))


def test_mixture_lists(manifest, tmp_path):
    utts = read_manifest(manifest)
    mixes = make_mixtures(utts, 12, seed=5, gain_db_range=6.0)
    assert mixes == make_mixtures(utts, 12, seed=5, gain_db_range=6.0)
    assert all(m.utt_a != m.utt_b and abs(m.gain_db) <= 3.0 for m in mixes)
    assert len({frozenset((m.utt_a, m.utt_b)) for m in mixes}) == 12  # 28 pairs exist: no repeats
    groups = ["x" if i % 2 else "y" for i in range(len(utts))]
    gid = {u.id: g for u, g in zip(utts, groups)}
    same = make_mixtures(utts, 6, seed=1, gain_db_range=0.0, groups=groups, same_group=True)
    assert all(gid[m.utt_a] == gid[m.utt_b] and m.gain_db == 0.0 for m in same)
    diff = make_mixtures(utts, 6, seed=1, groups=groups, same_group=False)
    assert all(gid[m.utt_a] != gid[m.utt_b] for m in diff)
    path = tmp_path / "m.tsv"
    write_mixtures(path, mixes)
    assert read_mixtures(path) == [Mixture(m.id, m.utt_a, m.utt_b, round(m.gain_db, 3)) for m in mixes]
    bad = tmp_path / "bad.tsv"
    bad.write_text("hello\n")
    with pytest.raises(InputError, match="bad.tsv.*not a mixture list"):
        read_mixtures(bad)


def test_dataset_items_add_up(manifest):
    utts = read_manifest(manifest)
    mixes = make_mixtures(utts, 4, seed=0)
    ds = MixtureDataset(manifest, mixes, train=True, crop_frames=20, silent_prob=0.5, seed=1)
    assert len(ds) == 8
    seen_silent = False
    for i in range(len(ds)):
        it = ds[i]
        assert it["length"] == 20 and it["mixture"].shape == (20 * 640,) and it["lips"].shape == (1, 20, 88, 88)
        torch.testing.assert_close(it["mixture"], it["target"] + it["interferer"], rtol=0, atol=1e-6)
        if it["silent"]:
            seen_silent = True
            assert float(it["target"].abs().max()) == 0
            assert torch.equal(it["lips"][:, :1].expand_as(it["lips"]), it["lips"])
    assert seen_silent
    # the two targets of one mixture share the mixture waveform (evaluation: no crop, no silence)
    ev = MixtureDataset(manifest, mixes)
    torch.testing.assert_close(ev[0]["mixture"], ev[1]["mixture"])
    with pytest.raises(InputError, match="not in the manifest"):
        MixtureDataset(manifest, [Mixture("m", "utt000", "nope", 0.0)])


@pytest.mark.parametrize("mode", ["av", "audio"])
def test_model_padding_contract(mode):
    """A sample's output is the same alone or padded in a batch with a longer one; zero past its length."""
    torch.manual_seed(0)
    model = AVSeparator(SeparatorConfig(mode=mode, hidden=32, lstm_layers=1)).eval()
    lengths = torch.tensor([12, 7])
    t = 12
    mix = torch.randn(2, t * 640) * 0.1
    lips = torch.randn(2, 1, t, 88, 88)
    audio = torch.randn(2, t, 104)
    mix[1, 7 * 640:] = 0
    lips[1, :, 7:] = 0
    audio[1, 7:] = 0
    with torch.no_grad():
        both = model(mix, lips, audio, lengths)
        alone = model(mix[1:, :7 * 640], lips[1:, :, :7], audio[1:, :7], lengths[1:])
    assert both.shape == (2, model.cfg.outputs, t * 640)
    torch.testing.assert_close(both[1:, :, :7 * 640], alone, rtol=1e-4, atol=1e-5)
    assert float(both[1, :, 7 * 640:].abs().max()) == 0


def test_precomputed_lip_features_stand_in_for_lips():
    torch.manual_seed(1)
    model = AVSeparator(SeparatorConfig(hidden=32, lstm_layers=1)).eval()
    t = 9
    mix, lips, audio = torch.randn(2, t * 640) * 0.1, torch.randn(2, 1, t, 88, 88), torch.randn(2, t, 104)
    lengths = torch.tensor([t, t])
    with torch.no_grad():
        direct = model(mix, lips, audio, lengths)
        given = model(mix, None, audio, lengths, lip_features=model.encoder.lip_frontend(lips))
        with pytest.raises(ValueError, match="do not match"):
            model(mix, None, audio, lengths, lip_features=torch.zeros(2, t + 1, model.cfg.encoder.dim))
    torch.testing.assert_close(given, direct)


def test_separator_attention_runs_one_direction_with_the_two_way_result():
    """The STFT frames read the lips through the one-direction entry point (the layer's two-way forward is never
    called), and the separator's output and gradients are those of the two-way layer with its lip->STFT half
    dropped (float64; av mode, and audio mode where the lips have length 0)."""
    from avspeech.model.cross_attention import CrossModalAttention

    for mode in ("av", "audio"):
        torch.manual_seed(2)
        model = AVSeparator(SeparatorConfig(mode=mode, hidden=16, lstm_layers=1)).double().train()
        old = copy.deepcopy(model)
        old.attn.forward_audio = lambda x_a, x_v, la, lv: CrossModalAttention.forward(old.attn, x_a, x_v, la, lv)[0]

        def two_way(*args):
            raise AssertionError("the separator ran both directions")

        model.attn.forward = two_way
        t, lengths = 8, torch.tensor([8, 5])
        g = torch.Generator().manual_seed(0)
        mix = 0.1 * torch.randn(2, t * 640, generator=g, dtype=torch.float64)
        lips = torch.randn(2, 1, t, 88, 88, generator=g, dtype=torch.float64)
        audio = torch.randn(2, t, 104, generator=g, dtype=torch.float64)
        outs = []
        for m in (model, old):
            y = m(mix, lips, audio, lengths)
            (y * torch.linspace(-1, 1, y.numel(), dtype=torch.float64).view_as(y)).sum().backward()
            outs.append((y.detach(), {n: p.grad for n, p in m.named_parameters()}))
        torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-10, atol=1e-12)
        assert {n for n, g_ in outs[0][1].items() if g_ is None} == {n for n, g_ in outs[1][1].items() if g_ is None}
        for n, g_ in outs[0][1].items():
            if g_ is not None:
                torch.testing.assert_close(g_, outs[1][1][n], rtol=1e-9, atol=1e-12, msg=n)


def test_widened_lstm_keeps_the_output_and_trains_its_new_units():
    """float64: the widened separator's output equals the original's, alone and padded; the new units' outgoing
    weights get gradients (so they can start to matter); narrowing is refused."""
    torch.manual_seed(2)
    model = AVSeparator(SeparatorConfig(hidden=16, lstm_layers=2)).double().eval()
    wide = widen_lstm(model, 24).eval()
    assert wide.cfg.lstm_width == 24 and wide.lstm.hidden_size == 24 and wide.mask.in_features == 48
    assert next(wide.parameters()).dtype == torch.float64
    t = 9
    mix, lips = torch.randn(2, t * 640, dtype=torch.float64) * 0.1, torch.randn(2, 1, t, 88, 88, dtype=torch.float64)
    audio = torch.randn(2, t, 104, dtype=torch.float64)
    for lengths in (torch.tensor([t, t]), torch.tensor([t, 6])):
        with torch.no_grad():
            torch.testing.assert_close(wide(mix, lips, audio, lengths), model(mix, lips, audio, lengths),
                                       rtol=1e-12, atol=1e-12)
    wide.train()
    wide(mix, lips, audio, torch.tensor([t, t])).pow(2).sum().backward()
    new_cols = torch.cat([torch.arange(16, 24), torch.arange(40, 48)])
    assert float(wide.mask.weight.grad[:, new_cols].abs().sum()) > 0
    assert float(wide.lstm.weight_hh_l1.grad[:, 16:24].abs().sum()) > 0
    with pytest.raises(ValueError, match="cannot narrow"):
        widen_lstm(wide, 16)


class _Passthrough(torch.nn.Module):
    """Stands in for a separator: returns its input mixture, so chunked inference must give the input back."""

    def forward(self, mixture, lips, audio, lengths):
        assert lips.shape[2] == audio.shape[1] == lengths.item() == mixture.shape[1] // 640
        return mixture[:, None]


@pytest.mark.parametrize("frames", [7, 20, 23, 61])
def test_chunked_separation_cross_fades_back_to_the_signal(frames):
    rng = np.random.default_rng(frames)
    audio = rng.standard_normal(frames * 640).astype(np.float32)
    rois = rng.integers(0, 255, (frames, 96, 96), dtype=np.uint8)
    out = separate_span(_Passthrough(), audio, rois, chunk_frames=10, overlap_frames=3)
    np.testing.assert_allclose(out, audio, rtol=1e-5, atol=1e-6)


def _train_cfg(manifest, mixtures, out, steps):
    from avspeech.separation.train import SeparationTrainConfig

    return SeparationTrainConfig(manifest=str(manifest), mixtures=str(mixtures), out=str(out), steps=steps,
                                 warmup=1, batch_size=2, crop_frames=10, hidden=16, save_every=2, log_every=1,
                                 seed=4, silent_prob=0.3)


def test_finetune_resumes_exactly(manifest, tmp_path):
    from avspeech.separation.train import load_separator, train_separation

    mixtures = tmp_path / "mix.tsv"
    write_mixtures(mixtures, make_mixtures(read_manifest(manifest), 6, seed=0))
    straight = train_separation(_train_cfg(manifest, mixtures, tmp_path / "a", 4))
    # 2 steps, then the same run raised to 4 (with warm-up 1 the first two learning rates are the same for both
    # totals; after the resume the learning rate follows the new total)
    train_separation(_train_cfg(manifest, mixtures, tmp_path / "b", 2))
    resumed = train_separation(_train_cfg(manifest, mixtures, tmp_path / "b", 4))
    assert_same_run(straight, resumed, tmp_path / "a", tmp_path / "b")
    assert load_separator(straight["checkpoint"]).cfg.hidden == 16
    with pytest.raises(InputError, match="not a separation checkpoint"):
        from avspeech.model.checkpoint import save_checkpoint

        save_checkpoint(tmp_path / "pre", torch.nn.Linear(2, 2), {"kind": "pretrain"})
        load_separator(tmp_path / "pre")


def _run(*args):
    return subprocess.run(["avspeech", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    from avspeech.model.checkpoint import save_checkpoint

    cfg = SeparatorConfig(hidden=16, lstm_layers=1)
    path = tmp_path_factory.mktemp("ck") / "sep"
    save_checkpoint(path, AVSeparator(cfg), {"kind": "separation", "separator": cfg.to_dict()})
    return path


def test_separate_refuses_bad_input(tmp_path, random_checkpoint):
    from avspeech.io.media import write_video

    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file\n")
    ck = ["--checkpoint", str(random_checkpoint)]
    res = _run("separate", str(fake), "--out", str(tmp_path / "o"), *ck)
    assert res.returncode != 0
    assert "notes.mp4" in res.stderr and "Traceback" not in res.stderr
    silent = tmp_path / "no_audio.mp4"
    write_video(silent, np.full((10, 64, 64, 3), 100, np.uint8), 25)
    res = _run("separate", str(silent), "--out", str(tmp_path / "o1"), *ck)
    assert res.returncode == 2 and "no_audio.mp4" in res.stderr and "no audio stream" in res.stderr
    res = _run("separate", str(fake), str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o2"), *ck)
    assert res.returncode == 1
    assert "0/2 clips done, 2 failed" in res.stdout and "notes.mp4" in res.stdout and "missing.mp4" in res.stdout


def test_separate_device_option(random_checkpoint):
    """--device auto is the GPU where there is one, else the CPU; the model's estimate comes back as a CPU array."""
    from avspeech.separation.separate import load_model

    model = load_model(random_checkpoint, "auto")
    assert next(model.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(0)
    out = separate_span(model, rng.standard_normal(12 * 640).astype(np.float32),
                        rng.integers(0, 255, (12, 96, 96), dtype=np.uint8), chunk_frames=10, overlap_frames=3)
    assert isinstance(out, np.ndarray) and out.shape == (12 * 640,) and np.isfinite(out).all()


@pytest.mark.parametrize("command", [["separate", "x.mp4", "--out", "o"], ["recognize", "x.mp4", "--out", "o"],
                                     ["evaluate", "separation", "--out", "o"],
                                     ["evaluate", "recognition", "--out", "o"]])
def test_device_option_refuses_what_is_not_there(tmp_path, command):
    """Every inference and evaluation command takes --device; a device that is not there, or not a device, is
    refused in one line before anything is read."""
    if not torch.cuda.is_available():
        res = subprocess.run(["avspeech", *command, "--device", "cuda"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
        assert res.returncode == 2 and "sees no CUDA GPU" in res.stderr and "Traceback" not in res.stderr, res.stderr
    res = subprocess.run(["avspeech", *command, "--device", "gpu"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert res.returncode == 2 and "unknown device 'gpu'" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_separate_two_speaker_clip_with_the_shipped_checkpoint(synth_corpus_2spk, tmp_path):
    """End to end as a user runs it: every face gets its files, and its output is closer to that face's clean
    voice than the mixture is (ground truth of the synthetic clip)."""
    import json

    from avspeech.synth.score import synthetic_improvements

    clip = synth_corpus_2spk / "clip_00000.mp4"
    out = tmp_path / "sep"
    res = _run("separate", str(clip), "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads((out / "speakers.json").read_text())
    assert len(info["speakers"]) == 2
    for e in info["speakers"]:
        for key in ("wav", "video", "thumbnail"):
            assert (out / e[key]).stat().st_size > 0
    assert (out / "spectrograms.png").stat().st_size > 0
    gains = synthetic_improvements(clip, out)
    assert sorted(g["speaker"] for g in gains) == [0, 1]  # each face is matched to its own speaker
    assert all(g["si_sdri"] > 3.0 for g in gains), gains


def test_lip_feature_cache_gives_the_front_end_output_of_each_crop(manifest, tmp_path):
    """The cached path (front-end run once per clip, cut to the item's crop) against the front-end run on the
    item's own frames: equal but at the crop's edges, where the cache saw the clip's real neighbour frames."""
    from avspeech.separation.mixtures import collate_mixtures
    from avspeech.separation.train import cached_lip_features, lip_feature_cache

    torch.manual_seed(2)
    model = AVSeparator(SeparatorConfig(hidden=16, lstm_layers=1)).eval()
    ds = MixtureDataset(manifest, make_mixtures(read_manifest(manifest), 3, seed=5), train=True, crop_frames=6,
                        silent_prob=0.5, seed=1)
    ds.lip_transform.train = False  # the cache's centre crop, no flip
    cache = lip_feature_cache(model, ds, torch.device("cpu"))
    assert set(cache) == {u for m in ds.mixtures for u in (m.utt_a, m.utt_b)}
    items = [ds[i] for i in range(6)]
    assert any(it["silent"] for it in items) and any(not it["silent"] for it in items)
    assert any(it["start"] > 0 for it in items)
    batch = collate_mixtures(items)
    with torch.no_grad():
        got = cached_lip_features(model, batch, cache, torch.device("cpu"))
        for i, it in enumerate(items):
            k = it["length"]
            own = model.encoder.lip_frontend(it["lips"][None])[0]
            inner = slice(0, k) if it["silent"] else slice(2, k - 2)  # the 3-D conv spans 5 frames
            torch.testing.assert_close(got[i, inner], own[inner], rtol=1e-4, atol=1e-5)
            assert float(got[i, k:].abs().sum()) == 0
def test_continue_from_and_frozen_lip_frontend(manifest, tmp_path):
    import dataclasses

    from avspeech.model.checkpoint import load_weights
    from avspeech.separation.train import load_separator, train_separation

    mixtures = tmp_path / "mix.tsv"
    write_mixtures(mixtures, make_mixtures(read_manifest(manifest), 6, seed=0))
    first = train_separation(_train_cfg(manifest, mixtures, tmp_path / "a", 2))["checkpoint"]
    cfg = dataclasses.replace(_train_cfg(manifest, mixtures, tmp_path / "b", 2), continue_from=first, hidden=64,
                              freeze_lip_frontend=True)
    second = train_separation(cfg)["checkpoint"]
    a, b = load_weights(first), load_weights(second)
    assert set(a) == set(b)  # the whole separator continued, with the first run's width (16), not 64
    front = [k for k in a if k.startswith("encoder.lip_frontend.")]
    assert front and all(torch.equal(a[k], b[k]) for k in front)  # weights and BatchNorm statistics held
    rest = [k for k in a if not k.startswith("encoder.lip_frontend.")]
    assert sum(not torch.equal(a[k], b[k]) for k in rest) > len(rest) // 2  # the rest trained
    with pytest.raises(InputError, match="mode 'av' separator"):
        train_separation(dataclasses.replace(cfg, out=str(tmp_path / "c"), mode="audio"))
    with pytest.raises(InputError, match="not both"):
        train_separation(dataclasses.replace(cfg, out=str(tmp_path / "d"), init_from=first))
    wider = train_separation(dataclasses.replace(cfg, out=str(tmp_path / "e"), steps=1, lstm_hidden=24))
    assert load_separator(wider["checkpoint"]).lstm.hidden_size == 24  # grown from the first run's 16
    with pytest.raises(InputError, match="cannot narrow"):
        train_separation(dataclasses.replace(cfg, out=str(tmp_path / "f"), lstm_hidden=8))


def test_evaluate_resumes_its_own_rows_only(manifest, tmp_path):
    """Rows left in the results folder by another model are not mixed in: the run scores again; an interrupted
    run of the same model resumes. Each row's SI-SDRi equals SI-SDR(estimate) - SI-SDR(mixture) in float64."""
    from avspeech.separation.evaluate import estimate, evaluate_separation

    mixtures = tmp_path / "mix.tsv"
    write_mixtures(mixtures, make_mixtures(read_manifest(manifest), 2, seed=3))
    torch.manual_seed(0)
    a = AVSeparator(SeparatorConfig(hidden=16, lstm_layers=1)).eval()
    torch.manual_seed(1)
    b = AVSeparator(SeparatorConfig(hidden=16, lstm_layers=1)).eval()
    fresh = evaluate_separation(b, manifest, mixtures, tmp_path / "fresh", perceptual=False)
    shared = tmp_path / "shared"
    first = evaluate_separation(a, manifest, mixtures, shared, perceptual=False)
    assert first["si_sdri"] != fresh["si_sdri"]
    evaluate_separation(b, manifest, mixtures, shared, perceptual=False, limit=1)  # another model: starts over
    resumed = evaluate_separation(b, manifest, mixtures, shared, perceptual=False)  # same model: resumes
    assert resumed == pytest.approx(fresh, nan_ok=True)
    import csv

    rows = list(csv.DictReader(open(shared / "results.csv")))
    assert len(rows) == 4 and len({r["id"] for r in rows}) == 4
    ds = MixtureDataset(manifest, mixtures)
    item = ds[0]
    est = torch.from_numpy(estimate(b, item)).double()
    tgt, mix = item["target"].double(), item["mixture"].double()

    def si_sdr64(x, s):
        x, s = x - x.mean(), s - s.mean()
        proj = (x @ s) / (s @ s) * s
        return float(10 * torch.log10((proj @ proj) / ((x - proj) @ (x - proj))))

    assert abs(float(rows[0]["si_sdri"]) - (si_sdr64(est, tgt) - si_sdr64(mix, tgt))) < 1e-2
