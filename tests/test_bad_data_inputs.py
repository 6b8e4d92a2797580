"""Bad data in, a clear error out: a truncated wav (header intact, data cut short), a wav shorter than its manifest
row says, a text file given as a manifest, a manifest without a usable utterance (cluster), mixtures that SDR
cannot score (evaluate separation), and an InputError raised in a DataLoader worker (one line, not torch's
traceback). Each error names the file and the cause; the command line prints it as one line and exits 2."""
import argparse
import shutil
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from avspeech import cli
from avspeech.data.dataset import AVDataset, read_utterance_audio
from avspeech.data.layout import Mixture, read_manifest, write_mixtures
from avspeech.errors import InputError
from avspeech.io.media import read_wav, write_wav
from avspeech.pretrain.cluster import mfcc_features
from avspeech.separation.metrics import score, unscorable
from data_helpers import make_manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_manifest(tmp_path_factory.mktemp("bad_data"), lengths=(20, 24, 16))


def _copy(manifest, tmp_path):
    """A writable copy of the fixture's folder; its manifest's root line is its own folder."""
    root = tmp_path / "m"
    shutil.copytree(manifest.parent, root)
    lines = (root / "manifest.tsv").read_text().splitlines()
    (root / "manifest.tsv").write_text("\n".join([str(root)] + lines[1:]) + "\n")
    return root / "manifest.tsv"


def _cut(path, keep_bytes):
    path.write_bytes(path.read_bytes()[:keep_bytes])


# ---- a truncated wav: read_wav, the reader every command shares --------------------------------------------------

@pytest.mark.parametrize("subtype, width", [("PCM_16", 2), ("FLOAT", 4)])
def test_truncated_wav_is_refused_naming_both_counts(tmp_path, subtype, width):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    path = tmp_path / "a.wav"
    write_wav(path, x, 16000, subtype=subtype)
    back, sr = read_wav(path, 16000)
    assert sr == 16000 and len(back) == 16000
    np.testing.assert_allclose(back, x, atol=1 / 32768 if width == 2 else 0)
    data_start = path.stat().st_size - 16000 * width  # the data chunk comes last
    _cut(path, data_start + 6000 * width + 1)  # 6000 samples and a stray byte left
    with pytest.raises(InputError) as e:
        read_wav(path, 16000)
    assert e.value.path == str(path)
    assert e.value.cause == "truncated: its header declares 16000 samples, the file holds 6000"


def test_streamed_wav_with_a_placeholder_size_is_read(tmp_path):
    """A streaming writer cannot seek back to fill in the data size: 0xFFFFFFFF is not a truncation."""
    x = np.linspace(-0.5, 0.5, 3200).astype(np.float32)
    path = tmp_path / "s.wav"
    write_wav(path, x, 16000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    raw[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    assert len(read_wav(path, 16000)[0]) == 3200


# ---- a wav shorter than its manifest row -----------------------------------------------------------------------

def test_wav_shorter_than_the_manifest_says_is_refused(manifest, tmp_path):
    m = _copy(manifest, tmp_path)
    u0, u1, u2 = read_manifest(m)
    assert (u0.frames, u0.samples) == (20, 12800)
    audio = read_wav(u0.audio)[0]
    write_wav(u0.audio, audio[:12800 - 640], 16000, subtype="PCM_16")  # one frame short: tolerated
    assert len(read_utterance_audio(u0)) == 12160
    write_wav(u1.audio, read_wav(u1.audio)[0][:7000], 16000, subtype="PCM_16")  # a whole header, half the data
    with pytest.raises(InputError) as e:
        read_utterance_audio(u1)
    assert str(e.value) == f"{u1.audio}: has 7000 samples, the manifest says 15360 (row utt001): truncated?"
    # the readers of pretraining and clustering
    with pytest.raises(InputError, match="has 7000 samples, the manifest says 15360"):
        AVDataset(m)[1]
    failures = []
    feats = mfcc_features(read_manifest(m), failures)
    assert [f is None for f in feats] == [False, True, False]
    assert [(f.item, f.cause) for f in failures] == [("utt001", str(e.value))]
    # a manifest without a count (AV-HuBERT's empty samples column) is not checked
    rows = m.read_text().splitlines()
    cols = rows[2].split("\t")
    rows[2] = "\t".join(cols[:4] + [""])
    m.write_text("\n".join(rows) + "\n")
    assert len(read_utterance_audio(read_manifest(m)[1])) == 7000


# ---- manifests that are not manifests --------------------------------------------------------------------------

def test_text_file_or_rows_without_root_line_are_not_manifests(tmp_path):
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(InputError, match=r"not a manifest: no rows, and its first line \('not a checkpoint'\) is "
                       "no folder") as e:
        read_manifest(text)
    assert e.value.path == str(text)
    rows = tmp_path / "rows.tsv"
    rows.write_text("a\tv.mp4\ta.wav\t10\t6400\n")
    with pytest.raises(InputError, match="holds 5 tab-separated columns .is the root line missing"):
        read_manifest(rows)
    empty = tmp_path / "empty.tsv"  # a shard's video-only manifest may have no rows: its root exists
    empty.write_text(f"{tmp_path}\n")
    assert read_manifest(empty) == []


# ---- cluster: no usable utterance ------------------------------------------------------------------------------

def _cluster(capsys, manifest, out, k=3):
    rc = cli.main(["cluster", str(manifest), "--out", str(out), "--clusters", str(k)])
    got = capsys.readouterr()
    return rc, got.out, got.err


def test_cluster_without_a_usable_utterance_lists_the_failures_and_names_the_manifest(manifest, tmp_path, capsys):
    m = _copy(manifest, tmp_path)
    u = read_manifest(m)[0]
    write_wav(tmp_path / "m" / "a8k.wav", np.zeros(6400, np.float32), 8000, subtype="PCM_16")
    only8k = tmp_path / "only8k.tsv"
    only8k.write_text(f"{tmp_path / 'm'}\nx\t{u.video.name}\ta8k.wav\t20\t12800\n")
    rc, out, err = _cluster(capsys, only8k, tmp_path / "l.km")
    assert rc == 2 and not (tmp_path / "l.km").exists()
    assert out.splitlines()[-2:] == [
        "0/1 utterances done, 1 failed",
        f"  FAILED x: {tmp_path / 'm' / 'a8k.wav'}: sample rate is 8000 Hz, expected 16000 Hz"]
    assert err.splitlines()[-1] == (f"avspeech cluster: error: {only8k}: no usable utterance: its one utterance "
                                    "failed (listed above)")
    badroot = tmp_path / "badroot.tsv"
    badroot.write_text(f"{tmp_path / 'nowhere'}\n" + "\n".join(m.read_text().splitlines()[1:]) + "\n")
    rc, out, err = _cluster(capsys, badroot, tmp_path / "l.km")
    assert rc == 2 and "0/3 utterances done, 3 failed" in out
    assert err.splitlines()[-1] == (f"avspeech cluster: error: {badroot}: no usable utterance: all 3 utterances "
                                    "failed (listed above); none of their audio files exists (is the root folder "
                                    "on the manifest's first line right?)")
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\n")
    rc, out, err = _cluster(capsys, text, tmp_path / "l.km")
    assert rc == 2 and err.splitlines()[-1].startswith(f"avspeech cluster: error: {text}: not a manifest: no rows")


def test_cluster_labels_a_truncated_wav_as_failed_not_as_audio(manifest, tmp_path, capsys):
    m = _copy(manifest, tmp_path)
    u = read_manifest(m)[2]
    _cut(u.audio, 44 + 2 * 5000)  # a PCM_16 file of 10240 samples cut to 5000, header intact
    rc, out, err = _cluster(capsys, m, tmp_path / "l.km", k=2)
    assert rc == 1
    assert f"  FAILED utt002: {u.audio}: truncated: its header declares 10240 samples, the file holds 5000" in out
    labels = (tmp_path / "l.km").read_text().splitlines()
    assert labels[2] == " ".join(["-1"] * 16)  # all 16 frames unlabelled, none from the missing half
    assert all(int(x) >= 0 for line in labels[:2] for x in line.split())


# ---- evaluate separation: mixtures SDR cannot score ------------------------------------------------------------

def test_score_refuses_what_sdr_cannot_score_and_scores_degenerate_estimates():
    import fast_bss_eval

    rng = np.random.default_rng(4)
    r, n = rng.standard_normal(4000), rng.standard_normal(4000)
    s = score(r + 0.3 * n, r, r + n, perceptual=False)
    assert s["sdr"] == pytest.approx(float(fast_bss_eval.sdr(r[None], (r + 0.3 * n)[None])[0]), abs=1e-9)
    assert s["sdr_mix"] == pytest.approx(float(fast_bss_eval.sdr(r[None], (r + n)[None])[0]), abs=1e-9)
    cases = {
        "only 400 samples to score; SDR needs more than 512": (r[:400], r[:400] + n[:400]),
        "only 0 samples": (r[:0], r[:0]),
        "the reference is silent": (np.zeros(4000), n),
        "the interferer is the reference's own audio, scaled": (r, 2 * r),
        "the interferer is silent": (r, r.copy()),
        "the reference or the mixture holds NaN": (r, r + n * np.nan),
    }
    for cause, (ref, mix) in cases.items():
        assert unscorable(ref, mix).startswith(cause)
        with pytest.raises(InputError, match=f"cannot score mix:a: {cause}"):
            score(mix, ref, mix, perceptual=False, utterance="mix:a")
    # a perfect or a silent estimate is a score, not a crash (fast_bss_eval's sdr fails on infinities)
    assert score(3 * r, r, r + n, perceptual=False)["sdr"] > 100
    assert score(np.zeros(4000), r, r + n, perceptual=False)["sdr"] == -np.inf


def test_evaluate_separation_skips_and_names_the_file_of_an_unscorable_target(manifest, tmp_path):
    """A target that cannot be scored is skipped, its file and cause written to failures.tsv; the rest is scored
    and the summary counts what was skipped."""
    from avspeech.batch import read_failures
    from avspeech.separation.evaluate import evaluate_separation
    from avspeech.separation.model import AVSeparator, SeparatorConfig

    m = _copy(manifest, tmp_path)
    root = m.parent
    shutil.copy(root / "utt000.wav", root / "dup.wav")
    write_wav(root / "quiet.wav", np.zeros(16 * 640, np.float32), 16000, subtype="PCM_16")
    with open(m, "a") as f:
        f.write("dup\tutt000.mp4\tdup.wav\t20\t12800\nquiet\tutt002.mp4\tquiet.wav\t16\t10240\n")
    torch.manual_seed(0)
    model = AVSeparator(SeparatorConfig(hidden=16, lstm_layers=1)).eval()
    mixtures = tmp_path / "mix.tsv"
    write_mixtures(mixtures, [Mixture("m0", "utt000", "utt001", 0.0), Mixture("m1", "dup", "utt000", 0.0)])
    s = evaluate_separation(model, m, mixtures, tmp_path / "eval", perceptual=False)
    assert (s["targets"], s["failed"]) == (2, 2)
    rows = (tmp_path / "eval" / "results.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["m0:a", "m0:b"]
    failed = read_failures(tmp_path / "eval" / "failures.tsv")
    assert [f.item for f in failed] == ["m1:a", "m1:b"]
    assert failed[0].cause == (f"{root / 'dup.wav'}: target dup of mixture m1, interferer utt000 "
                               f"({root / 'utt000.wav'}): the interferer is the reference's own audio, scaled (the "
                               "mixture is the reference alone)")
    assert "2 of 4 targets could not be scored" in (tmp_path / "eval" / "summary.md").read_text()
    causes = []
    for a, b in (("utt001", "quiet"), ("quiet", "utt001")):  # target a: a silent interferer, a silent target
        write_mixtures(mixtures, [Mixture("m2", a, b, 0.0)])
        s = evaluate_separation(model, m, mixtures, tmp_path / f"eval_{a}", perceptual=False, limit=1)
        (f,) = read_failures(tmp_path / f"eval_{a}" / "failures.tsv")
        assert s["failed"] == 1 and f.item == "m2:a" and f.cause.startswith(f"{root / 'quiet.wav'}: ")
        causes.append(f.cause.split(": ", 1)[1])
    assert causes == ["target utt001 of mixture m2, interferer quiet: the interferer is silent (the mixture is the "
                      "reference alone)", "target quiet of mixture m2, interferer utt001: the reference is silent "
                      "(SDR needs a reference with sound)"]


# ---- an InputError in a DataLoader worker ----------------------------------------------------------------------

class _BadItems(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise InputError("sample rate is 8000 Hz, expected 16000 Hz", f"/data/utt{i}.wav")


def add_arguments(p: argparse.ArgumentParser) -> None:  # this module as a command, for main()
    p.add_argument("--workers", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    for _ in DataLoader(_BadItems(), batch_size=1, num_workers=args.workers):
        pass
    return 0


def test_input_error_from_a_dataloader_worker_prints_as_its_one_line(monkeypatch, capsys):
    with pytest.raises(InputError) as e:
        run(argparse.Namespace(workers=1))
    assert str(e.value).startswith("Caught InputError in DataLoader worker process 0.")  # torch's wrapping
    assert cli._message(e.value) == "/data/utt0.wav: sample rate is 8000 Hz, expected 16000 Hz"
    assert cli._message(InputError("cause", "/x.wav")) == "/x.wav: cause"
    monkeypatch.setitem(cli.COMMANDS, "badload", (__name__, "a DataLoader over items that raise"))
    assert cli.main(["badload", "--workers", "1"]) == 2
    assert capsys.readouterr().err == ("avspeech badload: error: /data/utt0.wav: sample rate is 8000 Hz, expected "
                                       "16000 Hz\n")
    assert cli.main(["badload", "--workers", "0"]) == 2  # in-process: the message as it is
    assert capsys.readouterr().err == ("avspeech badload: error: /data/utt0.wav: sample rate is 8000 Hz, expected "
                                       "16000 Hz\n")


def test_read_wav_says_file_not_found_and_folder(tmp_path):
    from avspeech.io.media import read_wav

    with pytest.raises(InputError) as e:
        read_wav(tmp_path / "nope.wav", 16000)
    assert (e.value.path, e.value.cause) == (str(tmp_path / "nope.wav"), "file not found")
    with pytest.raises(InputError) as e:
        read_wav(tmp_path, 16000)
    assert (e.value.path, e.value.cause) == (str(tmp_path), "is a folder, not an audio file")


def test_audio_much_shorter_than_asked_is_named_in_a_warning(tmp_path, caplog):
    """A clip whose audio stream ends long before its video: padded with silence, and a warning says so."""
    from avspeech.io.media import read_audio, write_video

    clip = tmp_path / "shortaudio.mp4"
    write_video(clip, np.full((50, 32, 32, 3), 90, np.uint8), 25, audio=np.full(1600, 0.1, np.float32))
    with caplog.at_level("WARNING"):
        out = read_audio(clip, 16000, 32000)  # 2 s of video, 0.1 s of audio
    assert out.shape == (32000,) and not out[8000:].any()
    assert "shortaudio.mp4: its audio stream ends at 0.1" in caplog.text and "of the 2.00 s" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_audio(clip, 16000, 1600 + 4000)  # 0.25 s short: within the tolerance
    assert "audio stream ends" not in caplog.text


@pytest.mark.parametrize("raw, said", [
    ("[22:55:57] /github/workspace/src/video/video_reader.cc:486: Error: av_read_frame failed with 1094995529",
     "av_read_frame failed: invalid data (a damaged or truncated file?)"),
    ("[09:01:02] /src/audio/audio_reader.cc:12: av_read_frame failed with -541478725",
     "av_read_frame failed: the file ends early (truncated?)"),
    ("Invalid data found when processing input: 'x.mp4'", "Invalid data found when processing input: 'x.mp4'"),
    ("[10:00:00] /src/video/video_reader.cc:151: Check failed: avformat_open_input(...) >= 0 (-1094995529 vs. 0)"
     "\n\nStack trace returned 10 entries:\n[bt] (0) /x/libdecord.so(foo+0x20) [0x7fb]\n[bt] (1) /x/libdecord.so",
     "avformat_open_input(...) failed: invalid data (a damaged or truncated file?)"),
    ("", "RuntimeError"),
])
def test_decoder_errors_are_said_in_words(raw, said):
    from avspeech.io.media import decoder_message

    assert decoder_message(RuntimeError(raw)) == said


def test_file_problems_finds_each_kind_of_bad_file_without_decoding(manifest, tmp_path):
    from pathlib import Path

    from avspeech.data.dataset import file_problems
    from avspeech.data.layout import read_manifest

    m = _copy(manifest, tmp_path)
    root = m.parent
    utts = read_manifest(m)
    assert file_problems(utts) == []  # the fixture's files are fine
    write_wav(root / "utt000.wav", np.zeros(12800, np.float32), 8000, subtype="PCM_16")  # wrong rate
    (root / "utt001.mp4").write_text("not a video\n")  # a text file named .mp4
    _cut(root / "utt002.wav", 44 + 2 * 3000)  # header intact, data cut
    lines = m.read_text().splitlines()
    lines.append("extra\tutt001.mp4\tgone.wav\t10\t6400")
    m.write_text("\n".join(lines) + "\n")
    got = [(Path(f.item).name, f.cause) for f in file_problems(read_manifest(m))]
    assert got[0] == ("utt000.wav", "sample rate is 8000 Hz, expected 16000 Hz")
    assert got[1] == ("utt001.mp4", "not an MP4 video (no 'ftyp' box at its start)")
    assert got[2][0] == "utt002.wav" and got[2][1].startswith("truncated: its header declares 10240 samples, the "
                                                                 "file holds 3000")
    assert got[3:] == [("utt001.mp4", "not an MP4 video (no 'ftyp' box at its start)"), ("gone.wav", "file not found")]
