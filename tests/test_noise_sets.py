"""Noise sets in AV-HuBERT's layout from a small fake MUSAN folder and a manifest: pieces, babble and lists
checked against signals whose values are known."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from avspeech.data.layout import write_manifest
from avspeech.datasets.noise import NoiseConfig, NoiseSet, parse_snr, prepare_noise, read_list
from avspeech.errors import InputError
from avspeech.io.media import read_wav, write_wav

SR = 16000


def _pcm(x):  # the values a PCM-16 wav stores
    return np.round(np.asarray(x) * 32768) / 32768


def test_musan_and_dataset_noise_sets(tmp_path):
    musan = tmp_path / "musan"
    ramp = _pcm(((np.arange(23 * SR) % 5000) - 2500) / 10000)
    write_wav(musan / "noise" / "free-sound" / "noise-free-sound-0000.wav", ramp, SR, subtype="PCM_16")
    write_wav(musan / "noise" / "free-sound" / "noise-free-sound-0001.wav", ramp[:5 * SR], SR, subtype="PCM_16")
    write_wav(musan / "noise" / "free-sound" / "noise-free-sound-0002.wav", ramp[:2 * SR], SR, subtype="PCM_16")
    write_wav(musan / "music" / "fma" / "music-fma-0000.wav", ramp[:12 * SR], SR, subtype="PCM_16")
    levels = {}
    for k in range(24):  # speech pieces of known constant values
        v = _pcm((k + 1) / 128)
        name = f"speech-librivox-{k:04d}.wav"
        write_wav(musan / "speech" / "librivox" / name, np.full(4 * SR + 160 * k, v), SR, subtype="PCM_16")
        levels[name] = v
    rows = []
    for i, sec in enumerate((3.0, 1.0, 2.5, 0.5)):
        write_wav(tmp_path / "ds" / f"u{i}.wav", np.full(int(sec * SR), _pcm(0.1 * (i + 1))), SR, subtype="PCM_16")
        rows.append((f"trainval/spk{i}/0000{i}", "", f"u{i}.wav", int(sec * 25), int(sec * SR)))
    manifest = tmp_path / "ds" / "train.tsv"
    write_manifest(manifest, tmp_path / "ds", rows)
    out = tmp_path / "noise"
    counts = prepare_noise(out, musan, manifest, NoiseConfig(babble_files=10, talkers=3, speech_seconds=2.0,
                                                             babble_seconds=0.8))
    # noise: 23 s -> 10 + 10 + 3 s pieces (all kept), 5 s kept whole, 2 s dropped; music: 12 s -> 10 s kept
    assert sum(counts["noise"].values()) == 4 and sum(counts["music"].values()) == 1
    noise = [p for s in ("train", "valid", "test") for p in read_list(out / "noise" / f"{s}.tsv")]
    third = next(p for p in noise if p.name == "noise-free-sound-0000-2.wav")
    np.testing.assert_array_equal(read_wav(third)[0], ramp[20 * SR:].astype(np.float32))
    # babble: 8/1/1 files, each the mean of 3 distinct speech pieces of its own split, cut to the shortest
    assert counts["babble"] == {"train": 8, "valid": 1, "test": 1}
    train_babble = read_list(out / "babble" / "train.tsv")
    for f in train_babble:
        b = read_wav(f)[0]
        assert np.ptp(b) < 1e-4 and len(b) >= 4 * SR
        means = {round(float(np.mean(c)), 3) for c in itertools.combinations(levels.values(), 3)}
        assert round(float(b[0]), 3) in means
    # dataset speech: utterances over 2 s, cut to 2 s; dataset babble from those over 0.8 s
    speech = [read_wav(p)[0] for s in ("train", "valid", "test") for p in read_list(out / "speech" / f"{s}.tsv")]
    assert sorted(len(x) for x in speech) == [2 * SR] and sum(counts["speech"].values()) == 1
    bab = read_wav(read_list(out / "babble-dataset" / "test.tsv")[0])[0]
    assert len(bab) == int(1.0 * SR) and abs(float(bab[0]) - (0.1 + 0.2 + 0.3) / 3) < 1e-3
    all_train = read_list(out / "all" / "train.tsv")
    assert set(train_babble) <= set(all_train) and len(all_train) == sum(counts[n]["train"] for n in
                                                                         ("babble", "music", "noise", "speech"))


def test_noise_set_draws_and_snr(tmp_path):
    f = tmp_path / "n.wav"
    write_wav(f, np.full(SR, 0.25), SR, subtype="PCM_16")
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "test.tsv").write_text(f"{f}\n")
    ns = NoiseSet(tmp_path / "set", "test")
    rng = np.random.default_rng(0)
    assert ns.sample(3 * SR, rng).shape == (3 * SR,)
    target = np.sin(np.arange(SR) / 5).astype(np.float32)
    noisy = ns.add(target, (6.0, 6.0), rng)
    noise = noisy - target
    snr = 10 * np.log10(np.mean(target.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert abs(snr - 6.0) < 1e-3
    assert parse_snr("0") == (0.0, 0.0) and parse_snr("-5:10") == (-5.0, 10.0)
    with pytest.raises(InputError, match="LO <= HI"):
        parse_snr("10:-5")
    with pytest.raises(InputError, match="not a MUSAN folder"):
        prepare_noise(tmp_path / "o", tmp_path)


def test_noise_sets_with_nothing_to_draw_from_are_refused(tmp_path):
    """A MUSAN category without audio, fewer than two speech files, or a manifest with no utterance long enough
    for speech noise: one clear error instead of empty lists."""
    musan = tmp_path / "musan"
    for cat in ("noise", "music", "speech"):
        (musan / cat).mkdir(parents=True)
    write_wav(musan / "noise" / "n.wav", np.zeros(12 * SR), SR, subtype="PCM_16")  # not in a source folder
    with pytest.raises(InputError, match=r"musan: no usable audio in noise/ \(MUSAN keeps its wav files one folder "
                                         r"down, e.g. noise/<source>/\*.wav"):
        prepare_noise(tmp_path / "out", musan)
    write_wav(musan / "noise" / "src" / "n.wav", np.zeros(12 * SR), SR, subtype="PCM_16")
    write_wav(musan / "music" / "src" / "m.wav", np.zeros(12 * SR), SR, subtype="PCM_16")
    write_wav(musan / "speech" / "src" / "s.wav", np.zeros(5 * SR), SR, subtype="PCM_16")
    with pytest.raises(InputError, match=r"1 usable audio file\(s\) in speech/<source>/: babble needs at least two "
                                         r"talkers"):
        prepare_noise(tmp_path / "out", musan)
    write_wav(tmp_path / "ds" / "u.wav", np.zeros(SR), SR, subtype="PCM_16")
    manifest = write_manifest(tmp_path / "ds" / "m.tsv", tmp_path / "ds", [("u", "", "u.wav", 25, SR)])
    with pytest.raises(InputError, match=r"m.tsv: no utterance is longer than the 20 s of speech noise to cut from "
                                         r"each \(the longest has 1.00 s\)"):
        prepare_noise(tmp_path / "out2", None, manifest)
