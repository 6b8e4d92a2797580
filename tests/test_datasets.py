"""``avspeech prepare`` on fake LRS3, LRS2 and VoxCeleb2 folders (tests/dataset_helpers.py): manifests, transcripts
and segments against the trees' known content, an interrupted run resumed, shards merged, the bad clip listed.
The transcript format and AV-HuBERT's cutting rule are checked on hand-written tables."""
from __future__ import annotations

import numpy as np
import pytest

import dataset_helpers as H
from avspeech.data import layout
from avspeech.datasets import lrs2, lrs3, voxceleb2
from avspeech.datasets.prepare import FAILURES, prepare_dataset
from avspeech.datasets.shards import check_shards
from avspeech.datasets.transcripts import (Transcript, Word, format_transcript, parse_transcript,
                                           split_sentences)
from avspeech.errors import InputError
from avspeech.io.media import read_gray_video, read_wav

SPF = 640  # samples per 25 Hz frame at 16 kHz


# ---- the .txt format and the cutting rule ----------------------------------------------------------------------

LRS3_TXT = """Text:  AND IT'S NOT JUST
Conf:  4

WORD START END ASDSCORE
AND 0.06 0.21 4.3
IT'S 0.21 0.40 5.9
NOT 0.40 0.61 7.1
JUST 0.61 0.92 6.6
"""


def test_transcript_is_parsed_and_written_in_the_datasets_format():
    tr = parse_transcript(LRS3_TXT)
    assert tr.text == "AND IT'S NOT JUST" and tr.conf == "4"
    assert tr.words[1] == Word("IT'S", 0.21, 0.40, 5.9) and len(tr.words) == 4
    assert format_transcript(tr) == LRS3_TXT
    main = parse_transcript("Text:  WHEN YOU'RE UP THERE\nConf:  3\n")  # LRS2 main/: no word table
    assert main == Transcript("WHEN YOU'RE UP THERE", "3", ())
    with pytest.raises(InputError, match=r"x\.txt: line 5: START, END and ASDSCORE must be numbers"):
        parse_transcript(LRS3_TXT.replace("0.21 4.3", "zero 4.3"), "x.txt")
    with pytest.raises(InputError, match=r"x\.txt: line 1: expected 'Text:"):
        parse_transcript("WORD START END ASDSCORE\n", "x.txt")
    with pytest.raises(InputError, match=r"line 7: word 'NOT' ends \(0.3\) before it starts"):
        parse_transcript(LRS3_TXT.replace("NOT 0.40 0.61", "NOT 0.40 0.3"), "x.txt")


def _tr(times, text="T"):
    return Transcript(text, "3", tuple(Word(f"W{i}", s, e, 1.0) for i, (s, e) in enumerate(times)))


def test_pretrain_utterances_are_cut_as_avhubert_cuts_them():
    # last word ends before 15 s: one whole utterance, the Text: line lower-cased
    short = split_sentences(_tr([(0.0, 1.0), (9.0, 14.99)], "So IT Goes"))
    assert [(s.index, s.text, s.start, s.end) for s in short] == [(None, "so it goes", 0.0, None)]
    # gaps: 0.3 (kept), 0.5 (cut), 0.25 (kept), 1.0 (cut)
    times = [(0.5, 3.0), (3.3, 6.0), (6.5, 9.0), (9.25, 12.0), (13.0, 15.5)]
    cut = split_sentences(_tr(times))
    assert [(s.index, s.text, s.start, s.end) for s in cut] == [
        (0, "w0 w1", 0.0, 6.25),             # ends halfway between 6.0 and 6.5
        (1, "w2 w3", 6.25, 12.5),            # halfway between 12.0 and 13.0
        (2, "w4", 12.5, None)]               # to the end of the clip
    assert split_sentences(_tr([(0.0, 7.0), (7.5, 15.0)]))[0].end == 7.25
    # a gap of exactly min_gap is not cut ("more than"); a long utterance with no cut is still its sentence 0
    assert [(s.index, s.text, s.start, s.end) for s in split_sentences(_tr([(0.0, 7.0), (7.5, 15.0)]), min_gap=0.5)
            ] == [(0, "w0 w1", 0.0, None)]
    # boundaries keep three decimals (AV-HuBERT's csv)
    assert split_sentences(_tr([(0.0, 7.0001), (7.4113, 15.0)]), min_gap=0.4)[0].end == 7.206


# ---- fake trees, prepared once per module ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return H.make_sources(tmp_path_factory.mktemp("synth_sources"))


def _stopping_at(n):
    """(module, its process_one, a stand-in that stops as on Ctrl-C when preprocessing starts its ``n``-th clip)."""
    import avspeech.preprocess.batch as batch

    real, calls = batch.process_one, []

    def fake(*a, **k):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*a, **k)

    return batch, real, fake


@pytest.fixture(scope="module")
def lrs3_run(tmp_path_factory, sources):
    base = tmp_path_factory.mktemp("lrs3")
    tree = H.make_lrs3(base / "LRS3", sources)
    out = base / "out"
    plan = lambda: lrs3.plan_lrs3(tree.root, tree.lists["valid"], max_duration=H.MAX_DURATION)  # noqa: E731
    batch, real, fake = _stopping_at(3)
    batch.process_one = fake
    try:
        with pytest.raises(KeyboardInterrupt):
            prepare_dataset(plan(), out)
    finally:
        batch.process_one = real
    resumed = prepare_dataset(plan(), out)
    return tree, out, resumed, plan


def _check_manifests(tree, out, names):
    for name in names:
        utts = layout.read_manifest(out / f"{name}.tsv")
        assert [u.id for u in utts] == tree.manifests[name], name
        for u in utts:
            exp = tree.utterances[u.id]
            assert (u.frames, u.samples) == (exp.frames, exp.frames * SPF), u.id
            assert len(read_gray_video(u.video)) == u.frames and len(read_wav(u.audio, 16000)[0]) == u.samples
        wrd = out / f"{name}.wrd"
        if utts and tree.utterances[utts[0].id].text is None:
            assert not wrd.exists()
        else:
            assert layout.read_transcripts(wrd, utts) == [tree.utterances[u.id].text for u in utts]


def test_lrs3_manifests_hold_the_trees_utterances(lrs3_run):
    tree, out, report, _ = lrs3_run
    _check_manifests(tree, out, tree.manifests)
    # the bad clip is listed (and only it); the rest went on
    assert [f.item for f in report.failures] == [tree.bad]
    assert tree.bad in (out / FAILURES).read_text()


def test_lrs3_segments_are_cut_from_the_track_at_the_sentence_boundaries(lrs3_run):
    tree, out, _, _ = lrs3_run
    track = out / "video" / "pretrain" / "0akiEFwtkyA" / "00010" / "face0.mp4"
    wav = read_wav(out / "audio" / "pretrain" / "0akiEFwtkyA" / "00010" / "face0.wav", 16000)[0]
    rois = read_gray_video(track)
    start = 0
    for k in range(H.PRETRAIN_COPIES):
        uid = f"short-pretrain/0akiEFwtkyA/00010_{k}"
        n = tree.utterances[uid].frames
        seg = read_gray_video(out / "segments" / f"{uid}.mp4")
        np.testing.assert_array_equal(seg, rois[start:start + n])  # lossless ROI video: the same pixels
        a = read_wav(out / "segments" / f"{uid}.wav", 16000)[0]
        np.testing.assert_array_equal(a, wav[start * SPF:(start + n) * SPF])
        start += n
    assert start == len(rois)


def test_an_interrupted_lrs3_run_resumes_and_a_finished_one_changes_nothing(lrs3_run):
    tree, out, resumed, plan = lrs3_run
    assert resumed.preprocess.total == 7 and resumed.preprocess.skipped == 2  # two clips were done before the stop
    seg = out / "segments" / "short-pretrain" / "0akiEFwtkyA" / "00010_1.mp4"
    before = {p: p.read_bytes() for p in out.glob("*_data/*.*")}
    stamp = seg.stat().st_mtime_ns
    again = prepare_dataset(plan(), out)
    assert again.preprocess.skipped == 6  # all but the bad clip, which is tried again and listed again
    assert [f.item for f in again.failures] == [tree.bad]
    assert seg.stat().st_mtime_ns == stamp
    assert {p: p.read_bytes() for p in out.glob("*_data/*.*")} == before


@pytest.fixture(scope="module")
def lrs2_run(tmp_path_factory, sources):
    base = tmp_path_factory.mktemp("lrs2")
    tree = H.make_lrs2(base / "lrs2", sources)
    out = base / "out"
    plan = lambda: lrs2.plan_lrs2(tree.root, max_duration=H.MAX_DURATION)  # noqa: E731
    shards = [prepare_dataset(plan(), out, shard=(i, 2)) for i in range(2)]
    checks = {n: check_shards(out, plan().clips, n) for n in (2, 3)}
    merged = prepare_dataset(plan(), out)
    return tree, out, shards, merged, checks, plan


def test_lrs2_shards_then_a_final_run_write_the_manifests(lrs2_run):
    tree, out, shards, merged, _, _ = lrs2_run
    assert all(not s.manifests for s in shards)  # a shard writes no dataset manifest
    done = [set(r["id"] for r in s.preprocess.records) for s in shards]
    assert not done[0] & done[1] and len(done[0] | done[1]) == 5  # each good clip in exactly one shard
    assert merged.preprocess.skipped == 5
    _check_manifests(tree, out, tree.manifests)
    assert [f.item for f in merged.failures] == [tree.bad]


def test_the_merge_check_finds_unfinished_and_repeated_shards(lrs2_run, tmp_path, capsys):
    import shutil

    from avspeech.cli import main

    tree, out, _, _, checks, plan = lrs2_run
    assert checks[2].ok and checks[2].done == 6  # five clips done and the bad one failed, each in one shard
    assert not checks[3].ok and len(checks[3].missing_files) == 9  # no shard of a 3-way split was run
    # a clip in two shards: shard 1's manifest gains a row of shard 0's
    for p in out.glob("*.shard-*-of-2.tsv"):
        shutil.copy(p, tmp_path / p.name)
    m0, m1 = tmp_path / "manifest.shard-0-of-2.tsv", tmp_path / "manifest.shard-1-of-2.tsv"
    row = m0.read_text().splitlines()[1]
    m1.write_text(m1.read_text() + row + "\n")
    check = check_shards(tmp_path, plan().clips, 2)
    assert list(check.repeated.values()) == [[0, 1]] and layout.clip_of(row.split("\t")[0]) in check.repeated
    # the script for a SLURM array repeats the command with each task's shard
    assert main(["prepare", "lrs2", str(tree.root), "--out", str(out), "--workers", "3", "--sbatch", "4"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --array=0-3" in script and "#SBATCH --cpus-per-task=3" in script
    assert f'avspeech prepare lrs2 {tree.root} --out {out} --workers 3 --shard "${{SLURM_ARRAY_TASK_ID}}/4"' in script
    assert "--check-shards 4" in script and "--sbatch" not in script


def test_voxceleb2_from_the_command_line(tmp_path, sources, capsys):
    from avspeech.cli import main

    tree = H.make_voxceleb2(tmp_path / "vox2", sources)
    out = tmp_path / "out"
    rc = main(["prepare", "voxceleb2", str(tree.root), "--out", str(out), "--en-ids", str(tree.lists["en"])])
    assert rc == 1  # a clip failed
    printed = capsys.readouterr().out
    assert f"FAILED {tree.bad}" in printed and "English subset: 2 of the 2 ids" in printed
    _check_manifests(tree, out, tree.manifests)


def test_prepared_manifests_feed_pretraining_and_recognition(lrs3_run):
    from avspeech.data.dataset import AVDataset
    from avspeech.recognition.data import RecognitionDataset
    from avspeech.recognition.tokenizer import CharTokenizer

    tree, out, _, _ = lrs3_run
    train = out / "433h_data" / "train.tsv"
    utts = layout.read_manifest(train)
    labels = out / "zeros.km"
    layout.write_labels(labels, [np.zeros(u.frames, np.int64) for u in utts])
    item = AVDataset(train, labels)[0]
    assert item["lips"].shape == (1, utts[0].frames, 88, 88) and item["audio"].shape == (utts[0].frames, 104)
    rec = RecognitionDataset(out / "30h_data" / "valid.tsv", None, CharTokenizer())[0]
    assert rec["text"] == tree.utterances["trainval/Zx9_Qw-ty7U/50007"].text


def test_layouts_that_are_not_the_datasets_are_refused_and_bad_transcripts_listed(tmp_path):
    with pytest.raises(InputError, match="not an LRS3 folder"):
        lrs3.plan_lrs3(tmp_path)
    (tmp_path / "main").mkdir()
    with pytest.raises(InputError, match="the split list train.txt is neither in the folder nor beside it"):
        lrs2.plan_lrs2(tmp_path)
    with pytest.raises(InputError, match="not a VoxCeleb2 folder"):
        voxceleb2.plan_voxceleb2(tmp_path)
    spk = tmp_path / "trainval" / "abc"
    spk.mkdir(parents=True)
    (spk / "00001.mp4").write_bytes(b"x")
    (spk / "00001.txt").write_text("Conf:  3\n")
    (spk / "00002.mp4").write_bytes(b"x")  # no .txt
    plan = lrs3.plan_lrs3(tmp_path)
    assert not plan.clips  # neither video is processed
    assert [(f.item.split("/")[-1], f.cause.split(" (")[0]) for f in plan.failures] == [
        ("00001.txt", "line 1: expected 'Text:  ...', got 'Conf:  3'"), ("00002.txt", "cannot read the transcript")]


def test_clip_of_nested_track_ids():
    assert layout.clip_of("trainval/spk/00001/face2") == "trainval/spk/00001"
    assert layout.clip_of("clip_00003/face0") == "clip_00003"
    assert layout.clip_of("trainval/spk/00001") == "trainval/spk/00001"


def test_published_and_drawn_mixture_lists_feed_separation(lrs3_run, tmp_path):
    from avspeech.datasets import mixlists
    from avspeech.separation.mixtures import MixtureDataset

    _, out, _, _ = lrs3_run
    train = out / "433h_data" / "train.tsv"
    utts = layout.read_manifest(train)
    pan = tmp_path / "mixture_data_list_2mix.csv"
    pan.write_text("train,trainval,0akiEFwtkyA,50001,0,pretrain,1B3fhN8kP0s,00003,-2.5,1.88\n")
    parts, failures = mixlists.import_list(mixlists.read_pan(pan), utts)
    assert not failures
    drawn = [m for _, m, _ in mixlists.draw_mixtures(utts, 3, seed=1)]
    for mixtures in (parts["train"], drawn):
        item = MixtureDataset(train, mixtures)[0]
        np.testing.assert_allclose(item["mixture"], item["target"] + item["interferer"], atol=1e-6)
    m = parts["train"][0]
    assert (m.utt_a, m.utt_b, m.gain_db) == ("trainval/0akiEFwtkyA/50001", "short-pretrain/1B3fhN8kP0s/00003", 2.5)


def test_separation_mixtures_with_a_noise_set(lrs3_run, tmp_path):
    from avspeech.datasets import mixlists
    from avspeech.io.media import write_wav
    from avspeech.separation.mixtures import MixtureDataset

    _, out, _, _ = lrs3_run
    train = out / "433h_data" / "train.tsv"
    drawn = [m for _, m, _ in mixlists.draw_mixtures(layout.read_manifest(train), 2, seed=1)]
    rng = np.random.default_rng(0)
    write_wav(tmp_path / "hum.wav", (0.2 * rng.standard_normal(16000)).astype(np.float32), 16000)
    (tmp_path / "set").mkdir()
    for split in ("train", "test"):
        (tmp_path / "set" / f"{split}.tsv").write_text(f"{tmp_path / 'hum.wav'}\n")
    clean = MixtureDataset(train, drawn)
    noisy = MixtureDataset(train, drawn, noise=tmp_path / "set", snr=(5.0, 5.0))
    for i in (0, 1):
        c, n = clean[i], noisy[i]
        np.testing.assert_array_equal(n["target"], c["target"])  # the reference stays clean
        np.testing.assert_allclose(n["mixture"], n["target"] + n["interferer"], atol=1e-6)
        speech, added = c["mixture"].double(), (n["mixture"] - c["mixture"]).double()
        assert abs(10 * np.log10(float((speech ** 2).mean() / (added ** 2).mean())) - 5.0) < 0.01
    np.testing.assert_allclose(noisy[0]["mixture"], noisy[1]["mixture"], atol=1e-6)  # both targets: the same noise
