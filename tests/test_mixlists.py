"""Published 2-speaker mixture lists (pan CSV, wsj0 lines) into our mixture lists and back, and seeded lists by
the same recipe; checked against rows written by hand."""
from __future__ import annotations

import numpy as np
import pytest

from avspeech.data.layout import Utterance, read_mixtures, write_manifest
from avspeech.datasets import mixlists
from avspeech.errors import InputError

# manifest ids as `avspeech prepare` writes them (LRS2, LRS3, VoxCeleb2), with frame counts
IDS = {"main/6330311066473698535/00011": 80, "main/6331559613336179781/00001": 120,
       "short-pretrain/5535415699068794046/00001": 150, "short-pretrain/5535415699068794046/00002_0": 60,
       "trainval/TRajLqEaWhQ/00002": 90, "test/LYCKzpXEW6E/00003": 70,
       "dev/mp4/id00012/21Uxsk56VDQ/00001": 100, "test/mp4/id00017/01dfn2spqyE/00001": 110}
UTTS = [Utterance(i, None, None, f, f * 640) for i, f in IDS.items()]

# a list in Pan Zexu's published layout (partition, [folder, speaker, utterance, db] x 2, shortest s)
PAN = """train,main,6330311066473698535,00011,0,pretrain,5535415699068794046,00001,-3.27351,3.2
val,main,6331559613336179781,00001,0,main,6330311066473698535,00011,7.5,3.2
test,train,id00012,21Uxsk56VDQ/00001,0,test,id00017,01dfn2spqyE/00001,2.0,4.0
test,trainval,TRajLqEaWhQ,00002,0,test,LYCKzpXEW6E,00003,-0.5,2.8
"""
# (partition, utt_a, utt_b, gain_db = level of A over B) for each row, by hand
EXPECTED = [("train", "main/6330311066473698535/00011", "short-pretrain/5535415699068794046/00001", 3.27351),
            ("val", "main/6331559613336179781/00001", "main/6330311066473698535/00011", -7.5),
            ("test", "dev/mp4/id00012/21Uxsk56VDQ/00001", "test/mp4/id00017/01dfn2spqyE/00001", -2.0),
            ("test", "trainval/TRajLqEaWhQ/00002", "test/LYCKzpXEW6E/00003", 0.5)]


def _flat(parts):
    return sorted((p, m.utt_a, m.utt_b, m.gain_db) for p, ms in parts.items() for m in ms)


def test_a_pan_list_round_trips_through_our_mixture_lists(tmp_path):
    src = tmp_path / "mixture_data_list_2mix.csv"
    src.write_text(PAN)
    parts, failures = mixlists.import_list(mixlists.read_pan(src), UTTS)
    assert not failures and _flat(parts) == sorted(EXPECTED)
    assert parts["val"][0].id == "val_main_6331559613336179781_00001_0_main_6330311066473698535_00011_7.5_3.2"
    rows = []
    for p, ms in parts.items():
        ours = tmp_path / f"{p}.tsv"
        from avspeech.data.layout import write_mixtures

        write_mixtures(ours, ms)
        rows += [(p, m, min(IDS[m.utt_a], IDS[m.utt_b]) / 25) for m in read_mixtures(ours)]
    back = tmp_path / "back.csv"
    mixlists.write_pan(back, rows)
    again, failures = mixlists.import_list(mixlists.read_pan(back), UTTS)
    assert not failures and _flat(again) == sorted(EXPECTED)
    # the written rows are in the published layout: A at 0 dB, B at -gain_db, the shorter length in seconds
    assert "val,main,6331559613336179781,00001,0,main,6330311066473698535,00011,7.5,3.20" in back.read_text()


def test_a_wsj0_style_list_and_sources_that_are_not_in_the_manifest(tmp_path):
    lst = tmp_path / "mix_2_spk_tt.txt"
    lst.write_text("/data/raw_audio/test/TRajLqEaWhQ_00002.wav 1.93234 /data/raw_audio/test/LYCKzpXEW6E_00003.wav "
                   "-1.93234\n/data/raw_audio/test/nobody_00001.wav 1 /data/raw_audio/test/LYCKzpXEW6E_00003.wav -1\n")
    listed = mixlists.read_wsj0(lst)
    parts, failures = mixlists.import_list(listed, UTTS)
    assert _flat(parts) == [("mix_2_spk_tt", "trainval/TRajLqEaWhQ/00002", "test/LYCKzpXEW6E/00003", 3.86468)]
    assert len(failures) == 1 and "raw_audio/test/nobody/00001" in failures[0].cause
    with pytest.raises(InputError, match="line 1 has 3 fields"):
        bad = tmp_path / "bad.txt"
        bad.write_text("a.wav 1 b.wav\n")
        mixlists.read_wsj0(bad)
    with pytest.raises(InputError, match="line 1: db must be a number"):
        bad.write_text("test,main,a,b,zero,main,c,d,1,2\n")
        mixlists.read_pan(bad)


def test_seeded_lists_follow_the_recipe():
    rows = mixlists.draw_mixtures(UTTS, 40, seed=3, mix_db=10.0)
    assert rows == mixlists.draw_mixtures(UTTS, 40, seed=3, mix_db=10.0)  # seeded
    assert rows != mixlists.draw_mixtures(UTTS, 40, seed=4, mix_db=10.0)
    spk = mixlists.speaker_of
    for part, m, shortest in rows:
        assert spk(m.utt_a) != spk(m.utt_b) and -10 <= m.gain_db <= 10 and part == "test"
        assert shortest == min(IDS[m.utt_a], IDS[m.utt_b]) / 25
    first = [u for _, m, _ in rows[:3] for u in (m.utt_a, m.utt_b)]
    assert len(set(first)) == 6  # each utterance used once while enough are left
    gains = np.array([m.gain_db for _, m, _ in rows])
    assert gains.std() > 3  # spread over the range, not one value
    assert [spk(i) for i in IDS][:3] == ["6330311066473698535", "6331559613336179781", "5535415699068794046"]
    assert spk("dev/mp4/id00012/21Uxsk56VDQ/00001") == "id00012"
    long_only = mixlists.draw_mixtures(UTTS, 5, seed=0, min_seconds=4.0)
    assert all(min(IDS[m.utt_a], IDS[m.utt_b]) >= 100 for _, m, _ in long_only)


def test_the_command_imports_exports_and_draws(tmp_path, capsys):
    from avspeech.cli import main

    manifest = tmp_path / "m.tsv"
    write_manifest(manifest, tmp_path, [(u.id, "", "", u.frames, u.samples) for u in UTTS])
    src = tmp_path / "list.csv"
    src.write_text(PAN)
    assert main(["mixtures", "import", str(src), "--manifest", str(manifest), "--out", str(tmp_path / "mix")]) == 0
    test = read_mixtures(tmp_path / "mix" / "test.tsv")
    assert [(m.utt_a, m.gain_db) for m in test] == [(e[1], e[3]) for e in EXPECTED if e[0] == "test"]
    assert main(["mixtures", "export", str(tmp_path / "mix" / "test.tsv"), "--manifest", str(manifest),
                 "--out", str(tmp_path / "test.csv")]) == 0
    assert len((tmp_path / "test.csv").read_text().splitlines()) == 2
    assert main(["mixtures", "draw", "--manifest", str(manifest), "--out", str(tmp_path / "d.tsv"), "--num", "4"]) == 0
    assert len(read_mixtures(tmp_path / "d.tsv")) == 4 and (tmp_path / "d.csv").is_file()


@pytest.mark.parametrize("n", [0, -3])
def test_drawing_no_mixture_is_refused(n):
    with pytest.raises(InputError, match=rf"at least 1, got {n}"):
        mixlists.draw_mixtures(UTTS, n)
