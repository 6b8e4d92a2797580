"""Recognition: tokenizers, CTC decoding against exhaustive search and torch's CTC loss, forced alignment and
word timestamps, WER/CER against a hand-written edit distance, noise at a given SNR, the model's modes and
decoder, exact resume of fine-tuning, evaluation tables, per-face recognition of a clip and the command line."""
import itertools
import json
import subprocess

import numpy as np
import pytest
import torch

from avspeech.errors import InputError
from avspeech.recognition.decode import (Lexicon, forced_align, greedy, joint_rescore, prefix_beam_search,
                                         word_timestamps)
from avspeech.recognition.metrics import cer, corpus_rates, error_counts, wer
from avspeech.recognition.model import AVRecognizer, RecognizerConfig
from avspeech.recognition.tokenizer import (CharTokenizer, SentencePieceTokenizer, normalise_text,
                                            tokenizer_from_dict)
from ctc_oracles import collapse, ctc_logprob, exhaustive_search
from data_helpers import assert_same_run, make_manifest

SENTENCES = ["place red at f two now", "bin blue in n two again", "lay green by a one soon",
             "set white with z zero please"]


def _tiny_cfg(**kw):
    return RecognizerConfig(decoder_layers=1, decoder_dim=32, decoder_heads=4, decoder_ffn=64, **kw)


# ---------------------------------------------------------------- tokenizers

def test_char_tokenizer_round_trip_and_words():
    tok = CharTokenizer()
    assert normalise_text("  Don't  STOP-now!! 42 ") == "don't stop now"
    ids = tok.encode("Place  RED, at")
    assert ids == [tok.chars.index(c) + 1 for c in "place red at"] and 0 not in ids
    assert tok.decode(ids) == "place red at"
    assert tok.word_index(ids) == [0] * 5 + [None] + [1] * 3 + [None] + [2] * 2
    assert tok.vocab_size == 29 and tokenizer_from_dict(tok.to_dict()).encode("abc") == tok.encode("abc")


def test_sentencepiece_tokenizer_round_trip():
    tok = SentencePieceTokenizer.train(SENTENCES * 10, vocab_size=40)
    for s in SENTENCES + ["place blue at z zero soon"]:
        ids = tok.encode(s)
        assert min(ids) >= 1 and tok.decode(ids) == s
        widx = [w for w in tok.word_index(ids) if w is not None]
        assert widx == sorted(widx) and len(set(widx)) == len(s.split())
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.encode("lay green") == tok.encode("lay green")


# ---------------------------------------------------------------- CTC decoding

def _random_logp(rng, s, v, sharp=2.0):
    return torch.from_numpy(rng.standard_normal((s, v)) * sharp).log_softmax(-1)


def test_prefix_beam_search_is_exact_with_a_wide_beam():
    rng = np.random.default_rng(0)
    for trial in range(30):
        s, v = int(rng.integers(1, 7)), int(rng.integers(2, 5))
        lp = _random_logp(rng, s, v, sharp=[0.5, 2.0, 5.0][trial % 3])
        ref, ref_p = exhaustive_search(lp)
        (hyp, hyp_p), = prefix_beam_search(lp, beam=10_000)
        assert hyp == ref
        assert hyp_p == pytest.approx(ref_p, abs=1e-9)
        # and the n-best carry the exact probability of each sequence
        for labels, p in prefix_beam_search(lp, beam=10_000, nbest=5):
            assert p == pytest.approx(ctc_logprob(lp, labels), abs=1e-9)


def test_ctc_logprob_matches_torch_ctc_loss_and_path_sum():
    rng = np.random.default_rng(1)
    lp = _random_logp(rng, 6, 4)
    for labels in ([1, 2], [2, 2], [1], [3, 1, 3]):
        torch_nll = torch.nn.functional.ctc_loss(lp[:, None], torch.tensor([labels]), torch.tensor([6]),
                                                 torch.tensor([len(labels)]), reduction="sum")
        assert ctc_logprob(lp, labels) == pytest.approx(-float(torch_nll), abs=1e-5)
        paths = [p for p in itertools.product(range(4), repeat=6) if collapse(p) == tuple(labels)]
        total = np.logaddexp.reduce([float(lp[np.arange(6), list(p)].sum()) for p in paths])
        assert ctc_logprob(lp, labels) == pytest.approx(total, abs=1e-9)


def test_lexicon_constrained_search_is_exact():
    tok = CharTokenizer(" abt")  # ids: space 1, a 2, b 3, t 4
    lex = Lexicon(["ab", "bat", "a"], tok)
    assert lex.allows(tok.encode("ab ba")) and not lex.allows(tok.encode("ab ba"), final=True)
    assert not lex.allows(tok.encode("abt")) and lex.allows(tok.encode("a bat"), final=True)
    rng = np.random.default_rng(2)
    found_constrained = 0
    for _ in range(10):
        lp = _random_logp(rng, 6, 5, sharp=1.5)
        ref, ref_p = exhaustive_search(lp, lexicon=lex)
        (hyp, hyp_p), = prefix_beam_search(lp, beam=10_000, lexicon=lex)
        assert hyp == ref and hyp_p == pytest.approx(ref_p, abs=1e-9)
        assert all(w in lex.words for w in tok.decode(hyp).split())
        found_constrained += exhaustive_search(lp)[0] != ref
    assert found_constrained  # the word list changed the answer at least once


def test_greedy_and_narrow_beam_on_a_clear_case():
    lp = torch.full((6, 4), -20.0)
    for t, k in enumerate([1, 1, 0, 1, 2, 0]):
        lp[t, k] = 0.0
    lp = lp.log_softmax(-1)
    assert greedy(lp) == [1, 1, 2]
    assert prefix_beam_search(lp, beam=2)[0][0] == [1, 1, 2]


def test_forced_alignment_is_the_best_path_and_gives_word_times():
    rng = np.random.default_rng(3)
    lp = _random_logp(rng, 6, 3)
    labels = [1, 2, 2]
    path = forced_align(lp, labels)
    paths = [p for p in itertools.product(range(3), repeat=6) if collapse(p) == tuple(labels)]
    best = max(paths, key=lambda p: float(lp[np.arange(6), list(p)].sum()))
    assert tuple(path) == best
    with pytest.raises(ValueError, match="do not fit"):
        forced_align(lp[:2], labels)
    tok = CharTokenizer(" ab")  # space 1, a 2, b 3
    lp = torch.full((8, 4), -30.0)
    for t, k in enumerate([0, 2, 2, 0, 1, 3, 3, 0]):  # "a" at frames 1-2, " " at 4, "b" at 5-6
        lp[t, k] = 0.0
    words = word_timestamps(lp.log_softmax(-1), tok.encode("a b"), tok, frame_seconds=0.02, offset_seconds=1.0)
    assert words == [{"word": "a", "start": 1.02, "end": 1.06}, {"word": "b", "start": 1.1, "end": 1.14}]


def test_joint_rescoring_weights():
    hyps = [([1], -1.0), ([2], -2.0)]
    assert joint_rescore(hyps, None, 0.5)[0].tokens == [1]
    best = joint_rescore(hyps, [-5.0, -1.0], 0.3)[0]  # 0.3 * -2 + 0.7 * -1 = -1.3 beats -3.8
    assert best.tokens == [2] and best.score == pytest.approx(-1.3)


# ---------------------------------------------------------------- metrics and noise

def _levenshtein(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


def test_wer_cer_match_hand_computed_edit_distance():
    pairs = [("place red at f two now", "place red f too now soon"), ("bin blue", ""), ("", "lay"),
             ("set white with z zero please", "set white with z zero please")]
    for ref, hyp in pairs:
        c = error_counts(ref, hyp)
        assert c["word_errors"] == _levenshtein(ref.split(), hyp.split())
        assert c["char_errors"] == _levenshtein(ref, hyp)
    refs, hyps = zip(*pairs)
    words = sum(len(r.split()) for r in refs)
    assert wer(refs, hyps) == pytest.approx(100 * sum(_levenshtein(r.split(), h.split()) for r, h in pairs) / words)
    assert cer(refs, hyps) == pytest.approx(100 * sum(_levenshtein(r, h) for r, h in pairs) / sum(map(len, refs)))
    assert wer(["a b c d"], ["a x c"]) == 50.0
    assert np.isnan(corpus_rates([error_counts("", "")])["wer"])


def test_add_noise_hits_the_snr():
    from avspeech.recognition.data import add_noise

    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000).astype(np.float32)
    n = rng.standard_normal(3000).astype(np.float32) * 7
    for snr in (-5.0, 0.0, 5.0):
        y = add_noise(x, n, snr)
        e = (y - x).astype(np.float64)
        assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(e ** 2)) == pytest.approx(snr, abs=1e-3)


# ---------------------------------------------------------------- model

def test_model_modes_padding_and_decoder_causality():
    torch.manual_seed(0)
    model = AVRecognizer(_tiny_cfg()).eval()
    lips, audio = torch.randn(2, 1, 12, 88, 88), torch.randn(2, 12, 104)
    lengths = torch.tensor([12, 7])
    lips[1, :, 7:] = 0  # padding is zeros, as collate writes it
    audio[1, 7:] = 0
    from avspeech.recognition.transcribe import flags

    for mode in ("av", "audio", "video"):
        ha, hv = flags(mode, 2, "cpu")
        feats, logp, ctc_len = model.encode(lips if mode != "audio" else None, audio if mode != "video" else None,
                                            lengths, ha, hv)
        assert logp.shape == (2, 24, 29) and ctc_len.tolist() == [24, 14] and torch.isfinite(logp).all()
        # the short sample alone gives the same CTC output on its valid frames (padding does not leak)
        _, alone, _ = model.encode(lips[1:, :, :7] if mode != "audio" else None,
                                   audio[1:, :7] if mode != "video" else None, lengths[1:], ha[1:], hv[1:])
        torch.testing.assert_close(logp[1, :14], alone[0], atol=1e-4, rtol=1e-4)
    # the decoder's teacher-forced score equals step-by-step autoregressive scoring
    hyp = [3, 5, 1, 7]
    teacher = model.sequence_logprob(feats[0], 12, [hyp, hyp[:2]])
    step_sum = 0.0
    for i, k in enumerate(hyp + [0]):
        lp = model.decoder(torch.tensor([[0] + hyp[:i]]), feats[:1], lengths[:1])[0, -1]
        step_sum += float(lp[k].detach())
    assert teacher[0] == pytest.approx(step_sum, abs=1e-4)
    losses = model.loss(feats, logp, ctc_len, lengths, [[3, 4, 5], []])
    assert torch.isfinite(losses["loss"]) and set(losses) >= {"ctc", "att", "loss"}


def test_empty_decode_on_all_blank_output():
    from avspeech.recognition.transcribe import DecodeOptions, transcribe_batch

    model = AVRecognizer(_tiny_cfg()).eval()
    with torch.no_grad():
        model.ctc.out.weight.zero_()
        model.ctc.out.bias.fill_(-10.0)
        model.ctc.out.bias[0] = 10.0
    (t,) = transcribe_batch(model, torch.randn(1, 1, 5, 88, 88), torch.randn(1, 5, 104), torch.tensor([5]), "av",
                            DecodeOptions(), timestamps=True)
    assert t.text == "" and t.words == []


# ---------------------------------------------------------------- data, training, evaluation

@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    from avspeech.recognition.data import write_transcripts

    root = tmp_path_factory.mktemp("rec")
    manifest = make_manifest(root, lengths=(22, 26, 20, 24))
    write_transcripts(manifest.with_suffix(".wrd"), SENTENCES)
    return manifest


def _train_cfg(manifest, out, steps, **kw):
    from avspeech.recognition.train import RecognitionTrainConfig

    return RecognitionTrainConfig(manifest=str(manifest), out=str(out), steps=steps, warmup=1, batch_size=2,
                                  save_every=1000, log_every=1, lr=1e-3, decoder_layers=1, silent_prob=0.3, **kw)


def test_transcript_file_checks(labelled, tmp_path):
    from avspeech.recognition.data import RecognitionDataset, read_transcripts

    bad = tmp_path / "short.wrd"
    bad.write_text("one line\n")
    with pytest.raises(InputError, match="1 transcript lines for 4 utterances"):
        RecognitionDataset(labelled, bad, CharTokenizer())
    binary = tmp_path / "bin.wrd"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not UTF-8"):
        read_transcripts(binary)
    ds = RecognitionDataset(labelled, None, CharTokenizer(), train=True, silent_prob=1.0)
    item = ds[0]
    assert item["text"] == "" and item["tokens"] == []
    assert item["lips"].shape == (1, 22, 88, 88) and item["audio"].shape == (22, 104)


def test_finetune_resumes_exactly(labelled, tmp_path):
    from avspeech.recognition.train import load_recognizer, train_recognition

    straight = train_recognition(_train_cfg(labelled, tmp_path / "a", 4))
    train_recognition(_train_cfg(labelled, tmp_path / "b", 2))
    resumed = train_recognition(_train_cfg(labelled, tmp_path / "b", 4))
    assert_same_run(straight, resumed, tmp_path / "a", tmp_path / "b")
    model = load_recognizer(straight["checkpoint"])
    assert model.cfg.decoder_layers == 1 and model.tokenizer.kind == "char"
    with pytest.raises(InputError, match="not a recognition checkpoint"):
        from avspeech.model.checkpoint import save_checkpoint

        save_checkpoint(tmp_path / "pre", torch.nn.Linear(2, 2), {"kind": "pretrain"})
        load_recognizer(tmp_path / "pre")
    (tmp_path / "a" / "checkpoints" / "step_0000004" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(InputError, match="safetensors"):
        load_recognizer(tmp_path / "a" / "checkpoints" / "step_0000004")


def test_recognition_checkpoint_continues_whole_and_audio_only_runs_skip_lips(labelled, tmp_path):
    from avspeech.model.checkpoint import load_weights
    from avspeech.recognition.train import build_recognizer, train_recognition

    first = train_recognition(_train_cfg(labelled, tmp_path / "stage1", 2, p_av=0.0, p_audio=1.0))
    weights = load_weights(first["checkpoint"])
    # an audio-only run never uses the lip front-end: its weights stay at their initial values
    torch.manual_seed(0)  # as train_recognition seeds before building (seed 0)
    fresh, _ = build_recognizer(_train_cfg(labelled, tmp_path / "x", 1), [])
    lip = {k: v for k, v in fresh.state_dict().items() if k.startswith("encoder.lip_frontend.")}
    assert all(torch.equal(weights[k], v) for k, v in lip.items())
    cfg = _train_cfg(labelled, tmp_path / "stage2", 1, init_from=first["checkpoint"])
    cfg.decoder_layers, cfg.tokenizer = 2, "sentencepiece"
    model, config = build_recognizer(cfg, [])
    # the checkpoint's heads and tokenizer, not the new config's
    assert config["recognizer"]["decoder_layers"] == 1 and model.tokenizer.kind == "char"
    state = model.state_dict()
    assert set(state) == set(weights) and all(torch.equal(state[k], weights[k]) for k in weights)


def test_freeze_steps_hold_the_encoder_then_release_it(labelled, tmp_path):
    from avspeech.model.checkpoint import load_weights
    from avspeech.recognition.train import build_recognizer, train_recognition

    torch.manual_seed(0)  # as train_recognition seeds before building (seed 0)
    fresh = build_recognizer(_train_cfg(labelled, tmp_path / "x", 1), [])[0].state_dict()
    held = load_weights(train_recognition(_train_cfg(labelled, tmp_path / "f", 2, freeze_steps=2))["checkpoint"])
    enc = [k for k in fresh if k.startswith("encoder.")]
    heads = [k for k in fresh if not k.startswith("encoder.") and fresh[k].is_floating_point()]
    # two frozen steps: every encoder tensor (weights and BatchNorm statistics) as initialised; the heads moved
    assert enc and all(torch.equal(held[k], fresh[k]) for k in enc)
    assert any(not torch.equal(held[k], fresh[k]) for k in heads)
    # resumed past the frozen steps, the encoder trains
    after = load_weights(train_recognition(_train_cfg(labelled, tmp_path / "f", 3, freeze_steps=2))["checkpoint"])
    assert any(not torch.equal(after[k], fresh[k]) for k in enc)


def test_sentencepiece_finetune_and_ctc_only(labelled, tmp_path):
    from avspeech.recognition.train import load_recognizer, train_recognition

    s = train_recognition(_train_cfg(labelled, tmp_path / "sp", 1, tokenizer="sentencepiece", sp_vocab=30))
    model = load_recognizer(s["checkpoint"])
    assert model.tokenizer.kind == "sentencepiece" and model.tokenizer.decode(model.tokenizer.encode(SENTENCES[0])) \
        == SENTENCES[0]
    cfg = _train_cfg(labelled, tmp_path / "ctc", 1)
    cfg.decoder_layers = 0
    assert load_recognizer(train_recognition(cfg)["checkpoint"]).decoder is None


def test_evaluate_writes_tables(labelled, tmp_path):
    from avspeech.recognition.data import Condition
    from avspeech.recognition.evaluate import evaluate_recognition

    model = AVRecognizer(_tiny_cfg()).eval()
    conds = [Condition(), Condition("babble", -5.0)]
    s = evaluate_recognition(model, labelled, None, tmp_path, conds=conds)
    assert {(r["mode"], r["condition"]) for r in s["summary"]} == {
        (m, c.name) for m in ("A", "V", "AV") for c in conds}
    md = (tmp_path / "summary.md").read_text()
    assert "WER (%) | clean | babble-5dB" in md and "\nAV |" in md
    import csv

    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 4 * 3 * 2
    v = {c.name: [r["hypothesis"] for r in rows if r["mode"] == "V" and r["condition"] == c.name] for c in conds}
    assert v["clean"] == v["babble-5dB"]


def test_evaluate_skips_an_unreadable_utterance_and_reports_it(labelled, tmp_path):
    """An utterance whose audio cannot be read is left out of every pass and written to failures.tsv with its
    cause; the others are scored."""
    import shutil

    from avspeech.batch import read_failures
    from avspeech.io.media import write_wav
    from avspeech.recognition.data import Condition
    from avspeech.recognition.evaluate import evaluate_recognition

    root = tmp_path / "rec"
    shutil.copytree(labelled.parent, root)
    lines = (root / labelled.name).read_text().splitlines()
    (root / labelled.name).write_text("\n".join([str(root)] + lines[1:]) + "\n")
    bad_id, _, bad_wav = lines[2].split("\t")[:3]
    write_wav(root / bad_wav, np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    model = AVRecognizer(_tiny_cfg()).eval()
    s = evaluate_recognition(model, root / labelled.name, None, tmp_path / "eval", modes=("audio", "av"),
                             conds=[Condition(), Condition("babble", 0.0)])
    assert (s["utterances"], s["failed"], s["manifest"]) == (3, 1, str(root / labelled.name))
    (f,) = read_failures(tmp_path / "eval" / "failures.tsv")
    assert f.item == bad_id and f.cause == f"{root / bad_wav}: sample rate is 8000 Hz, expected 16000 Hz"
    import csv

    rows = list(csv.DictReader(open(tmp_path / "eval" / "results.csv")))
    assert len(rows) == 3 * 2 * 2 and bad_id not in {r["id"] for r in rows}
    assert "1 utterance(s) could not be read" in (tmp_path / "eval" / "summary.md").read_text()
    kept = (tmp_path / "eval" / "readable.tsv").read_text().splitlines()[1:]  # the set scored, without it
    assert [ln.split("\t")[0] for ln in kept] == [ln.split("\t")[0] for ln in lines[1:] if ln.split("\t")[0] != bad_id]


def test_finetune_stops_before_training_on_an_unreadable_file(labelled, tmp_path):
    import shutil

    from avspeech.io.media import write_wav
    from avspeech.recognition.train import train_recognition

    root = tmp_path / "rec"
    shutil.copytree(labelled.parent, root)
    lines = (root / labelled.name).read_text().splitlines()
    (root / labelled.name).write_text("\n".join([str(root)] + lines[1:]) + "\n")
    bad_wav = lines[3].split("\t")[2]
    write_wav(root / bad_wav, np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    with pytest.raises(InputError, match=rf"1 file\(s\) of its utterances cannot be read .*{bad_wav}: sample rate is "
                                         r"8000 Hz, expected 16000 Hz"):
        train_recognition(_train_cfg(root / labelled.name, tmp_path / "run", steps=2))
    assert not (tmp_path / "run" / "checkpoints").exists()


def _noise_set(folder, **splits):
    """A noise set whose lists name one wav each (``split=values``), written as float so stored values are exact."""
    from avspeech.io.media import write_wav

    folder.mkdir(parents=True, exist_ok=True)
    for split, values in splits.items():
        write_wav(folder / f"{split}.wav", values, 16000)
        (folder / f"{split}.tsv").write_text(f"{folder / f'{split}.wav'}\n")
    return folder


def _scaled_copy(d, noise):
    """The gain and offset with ``d == g * noise[(offset + n) % len(noise)]`` best (float64 least squares over
    every offset) and the worst residual."""
    best = None
    for start in range(len(noise)):
        ref = np.resize(np.roll(noise, -start), len(d))
        g = float(d @ ref / (ref @ ref))
        res = float(np.max(np.abs(d - g * ref)))
        if best is None or res < best[2]:
            best = (g, start, res)
    return best


def test_noise_set_items_are_clean_plus_scaled_noise(labelled, tmp_path):
    from avspeech.recognition.data import RecognitionDataset

    rng = np.random.default_rng(3)
    test_noise = rng.standard_normal(400) * 0.3
    train_noise = np.sign(np.sin(np.arange(300) / 7.0)) * 0.5 + 0.01 * np.arange(300) / 300  # another signal
    folder = _noise_set(tmp_path / "set", test=test_noise, train=train_noise)
    clean = RecognitionDataset(labelled, None, None)
    noisy = RecognitionDataset(labelled, None, None, noise=folder, snr=(3.0, 3.0))
    again = RecognitionDataset(labelled, None, None, noise=folder, snr=(3.0, 3.0))
    test_noise, train_noise = (test_noise.astype(np.float32).astype(np.float64),
                               train_noise.astype(np.float32).astype(np.float64))
    g0 = torch.Generator()
    for i in range(len(clean)):
        c = clean.load(i)[1].astype(np.float64)
        y = noisy.signals(i, g0)[1]
        np.testing.assert_array_equal(y, again.signals(i, g0)[1])  # seeded: the same draw in every run
        d = y.astype(np.float64) - c
        g, _, res = _scaled_copy(d, test_noise)
        assert res < 1e-6 and g > 0  # clean + g * (the test list's file, looped from some offset)
        assert 10 * np.log10(np.mean(c ** 2) / np.mean(d ** 2)) == pytest.approx(3.0, abs=1e-6)
    # a range: each item's SNR inside it; training reads the train list (interference and warp off)
    ranged = RecognitionDataset(labelled, None, None, noise=folder, snr=(-5.0, 10.0))
    snrs = []
    for i in range(len(clean)):
        c = clean.load(i)[1].astype(np.float64)
        d = ranged.signals(i, g0)[1].astype(np.float64) - c
        snrs.append(10 * np.log10(np.mean(c ** 2) / np.mean(d ** 2)))
    assert all(-5.0 - 1e-6 <= s <= 10.0 + 1e-6 for s in snrs) and len(set(np.round(snrs, 3))) == len(snrs)
    train = RecognitionDataset(labelled, None, None, train=True, noise_probs=(1.0, 0.0, 0.0), noise=folder,
                               snr=(0.0, 0.0))
    c = clean.load(1)[1].astype(np.float64)
    d = train.signals(1, torch.Generator().manual_seed(0))[1].astype(np.float64) - c
    assert _scaled_copy(d, train_noise)[2] < 1e-6
    assert 10 * np.log10(np.mean(c ** 2) / np.mean(d ** 2)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InputError, match="LO <= HI"):
        RecognitionDataset(labelled, None, None, noise=folder, snr=(5.0, 0.0))


def test_finetune_and_evaluate_recognition_with_a_noise_set(labelled, tmp_path, random_checkpoint, capsys):
    from avspeech.cli import main

    folder = _noise_set(tmp_path / "set", test=np.sin(np.arange(800) / 3.0) * 0.2,
                        train=np.cos(np.arange(700) / 5.0) * 0.2)
    run = tmp_path / "ft"
    assert main(["finetune", "recognition", "--manifest", str(labelled), "--out", str(run), "--steps", "1",
                 "--warmup", "1", "--batch-size", "2", "--decoder-layers", "1", "--model", "tiny", "--log-every",
                 "1", "--noise", str(folder), "--snr", "-5", "5"]) == 0
    got = json.loads((run / "config.json").read_text())["train"]
    assert got["noise"] == str(folder) and got["snr"] == [-5.0, 5.0]
    out = tmp_path / "eval"
    assert main(["evaluate", "recognition", "--manifest", str(labelled), "--checkpoint", str(random_checkpoint),
                 "--modes", "audio", "--snrs", "0", "--out", str(out), "--noise", str(folder), "--snr", "2", "2",
                 "--greedy"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["noise"] == str(folder.resolve()) and s["snr"] == [2.0, 2.0]
    assert [(r["condition"], r["noise"], r["noise_snr_db"]) for r in s["summary"]] == [
        ("clean", "set", "2"), ("speech+0dB", "set", "2"), ("babble+0dB", "set", "2")]
    assert "added to every condition at 2 dB" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert main(["evaluate", "recognition", "--manifest", str(labelled), "--checkpoint", str(random_checkpoint),
                 "--out", str(out), "--noise", str(tmp_path / "none")]) != 0
    assert "test.tsv" in capsys.readouterr().err


def test_attention_search_of_our_model_at_beam_one_is_greedy(labelled):
    from avspeech.recognition.data import RecognitionDataset, collate_recognition
    from avspeech.recognition.transcribe import DecodeOptions, transcribe_batch

    torch.manual_seed(3)
    model = AVRecognizer(_tiny_cfg()).eval()
    ds = RecognitionDataset(labelled, None, model.tokenizer)
    batch = collate_recognition([ds[0], ds[1]])
    (a, b) = transcribe_batch(model, batch["lips"], batch["audio"], batch["lengths"], "av",
                              DecodeOptions(search="attention", beam=1, max_len_a=0.0, max_len_b=12))
    with torch.no_grad():
        feats, _, _ = model.encode(batch["lips"], batch["audio"], batch["lengths"])
    for i, h in enumerate((a, b)):  # argmax over the decoder, one token at a time (eos = 0 not first)
        prev = [0]
        for step in range(12):
            with torch.no_grad():
                lp = model.decoder(torch.tensor([prev]), feats[i:i + 1], batch["lengths"][i:i + 1])[0, -1]
            if step == 0:
                lp[0] = -float("inf")
            t = int(lp.argmax())
            if t == 0:
                break
            prev.append(t)
        assert h.tokens == prev[1:] and h.text == model.tokenizer.decode(prev[1:])


def test_evaluate_recognition_with_an_official_lip_reading_model(labelled, tmp_path, capsys):
    from avhubert_seq2seq import write_finetuned
    from avspeech.cli import main

    write_finetuned(tmp_path / "vsr.pt", modalities=("video",))
    out = tmp_path / "eval"
    assert main(["evaluate", "recognition", "--manifest", str(labelled), "--checkpoint", str(tmp_path / "vsr.pt"),
                 "--clean-only", "--out", str(out), "--beam", "2", "--max-len-b", "4", "--max-len-a", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert [(r["mode"], r["condition"], r["utterances"]) for r in summary] == [("V", "clean", 4)]
    capsys.readouterr()
    assert main(["evaluate", "recognition", "--manifest", str(labelled), "--checkpoint", str(tmp_path / "vsr.pt"),
                 "--clean-only", "--out", str(out), "--modes", "av"]) != 0
    assert "vsr.pt: mode 'av' is not available: this is a lip-reading (VSR) model" in capsys.readouterr().err


# ---------------------------------------------------------------- clips and the command line

def test_srt_format():
    from avspeech.recognition.subtitles import cues, srt_time, to_srt

    assert srt_time(3723.4567) == "01:02:03,457" and srt_time(0) == "00:00:00,000"
    words = [{"word": w, "start": s, "end": s + 0.2} for w, s in [("a", 0.0), ("b", 0.3), ("c", 2.0)]]
    assert cues(words) == [(0.0, 0.5, "a b"), (2.0, 2.2, "c")]
    assert to_srt(cues(words)) == "1\n00:00:00,000 --> 00:00:00,500\na b\n\n2\n00:00:02,000 --> 00:00:02,200\nc\n"


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    from avspeech.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = _tiny_cfg()
    path = tmp_path_factory.mktemp("ck") / "rec"
    save_checkpoint(path, AVRecognizer(cfg), {"kind": "recognition", "recognizer": cfg.to_dict()})
    return path


def _run(*args):
    return subprocess.run(["avspeech", *args], capture_output=True, text=True, timeout=600)


def test_recognize_clip_one_entry_per_face(synth_corpus_2spk, tmp_path, random_checkpoint):
    from avspeech.recognition.recognize import load_model, recognize_clip
    from avspeech.synth.score import synthetic_word_errors

    clip = synth_corpus_2spk / "clip_00000.mp4"
    entries = recognize_clip(clip, tmp_path, load_model(random_checkpoint), checkpoint=random_checkpoint)
    assert len(entries) == 2 and {e["mode"] for e in entries} == {"av"}
    doc = json.loads((tmp_path / "transcripts.json").read_text())
    assert [s["track"] for s in doc["speakers"]] == [e["track"] for e in entries]
    for e in entries:
        assert (tmp_path / e["srt"]).is_file()
        assert all(e["start_s"] <= w["start"] < w["end"] <= e["end_s"] + 1e-6 for w in e["words"])
    errs = synthetic_word_errors(clip, entries)
    assert sorted(e["speaker"] for e in errs) == [0, 1]
    sidecar = json.loads(clip.with_suffix(".json").read_text())
    assert {e["reference"] for e in errs} == {s["text"] for s in sidecar["speakers"]}


def test_recognize_command_on_bad_input(tmp_path, random_checkpoint):
    from avspeech.io.media import write_video
    from avspeech.recognition.recognize import load_model

    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file\n")
    blank = tmp_path / "no_face.mp4"
    write_video(blank, np.full((30, 64, 64, 3), 100, np.uint8), 25)
    res = _run("recognize", str(fake), str(blank), str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o"),
               "--checkpoint", str(random_checkpoint))
    assert res.returncode == 1 and "0/3 clips done, 3 failed" in res.stdout, res.stdout + res.stderr
    assert "notes.mp4" in res.stdout and "no face" in res.stdout and "missing.mp4" in res.stdout
    assert "Traceback" not in res.stderr
    with pytest.raises(InputError, match="config.json is missing"):
        load_model(tmp_path)
