"""End to end: a small seq2seq model in AV-HuBERT's official layout, whose decoder is trained here to read each face
of one synthetic clip, written as an official fine-tuned file (``avhubert_fakes.write_official``), then
``avspeech recognize CLIP --checkpoint file.pt`` gives each face its own sentence through the per-face pipeline."""
from __future__ import annotations

import io
import json

import torch

from avhubert_fakes import write_official
from avhubert_reference import official_config
from avhubert_seq2seq import SPECIALS, decoder_model_cfg, finetuned_state, target_pieces


def _spm(texts: list[str]) -> bytes:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts * 50), model_writer=buf, vocab_size=30,
                                   model_type="unigram", hard_vocab_limit=False, character_coverage=1.0,
                                   minloglevel=2)
    return buf.getvalue()


def _face_memories(rec, clip, sidecar):
    """Encoder output per synthetic speaker of the clip, computed as ``recognize`` computes it."""
    import numpy as np

    from avspeech.features import LipTransform
    from avspeech.pipeline.tracks import clip_tracks
    from avspeech.synth.splits import speaker_of_track

    out = {}
    with clip_tracks(clip, 4, roi_geometry="avhubert") as (_, result):
        for tr in result.tracks:
            i = speaker_of_track(np.asarray(tr.boxes, np.float64), tr.start, sidecar)
            lips = LipTransform(train=False)(np.asarray(tr.rois))[None]
            with torch.no_grad():
                out[i] = rec.encode(lips, None, torch.tensor([lips.shape[2]]), "video")
    return out


def test_recognize_reads_each_face_with_an_official_layout_model(synth_corpus_2spk, tmp_path, capsys):
    from avspeech.cli import main
    from avspeech.recognition.seq2seq import load_seq2seq

    clip = synth_corpus_2spk / "clip_00000.mp4"
    sidecar = json.loads(clip.with_suffix(".json").read_text())
    texts = [s["text"].lower() for s in sidecar["speakers"]]
    spm = _spm(texts)
    symbols = SPECIALS + target_pieces(spm)
    model_cfg, task_cfg = official_config("tiny")
    dec_cfg = decoder_model_cfg(32, decoder_layers=1)
    state = finetuned_state(model_cfg, dec_cfg, len(symbols), seed=0, dtype=torch.float32)
    ft = {**dec_cfg, "w2v_args": {"model": {"_name": "av_hubert", **model_cfg}, "task": task_cfg}}
    task = {**task_cfg, "is_s2s": True, "modalities": ["video"]}
    untrained = tmp_path / "untrained.pt"
    write_official(untrained, state, ft, task, kind="finetuned_seq2seq", target_symbols=symbols[4:], spm_model=spm)

    rec = load_seq2seq(untrained)
    memories = _face_memories(rec, clip, sidecar)
    assert sorted(memories) == [0, 1]
    v = rec.tokenizer
    torch.manual_seed(0)
    opt = torch.optim.Adam(rec.decoder.parameters(), lr=3e-3)
    rec.decoder.train()
    pairs = [(memories[i], [v.eos] + v.encode(texts[i]), v.encode(texts[i]) + [v.eos]) for i in (0, 1)]
    for step in range(400):
        loss = 0.0
        for mem, prev, target in pairs:
            logits = rec.decoder(torch.tensor([prev]), mem, torch.tensor([mem.shape[1]]))
            loss = loss + torch.nn.functional.cross_entropy(logits[0], torch.tensor(target))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    rec.decoder.eval()

    trained = {**state, **{f"decoder.{k}": t.detach().clone() for k, t in rec.decoder.state_dict().items()}}
    path = tmp_path / "vsr_tiny.pt"
    write_official(path, trained, ft, task, kind="finetuned_seq2seq", target_symbols=symbols[4:], spm_model=spm)

    out = tmp_path / "out"
    assert main(["recognize", str(clip), "--checkpoint", str(path), "--out", str(out), "--beam", "4"]) == 0
    printed = capsys.readouterr().out
    assert all(t in printed for t in texts), printed
    doc = json.loads((out / "transcripts.json").read_text())
    assert doc["timestamps"] == "segment" and "no CTC head" in doc["timestamps_note"]
    from avspeech.synth.score import synthetic_word_errors

    errs = synthetic_word_errors(clip, doc["speakers"])
    assert sorted(e["speaker"] for e in errs) == [0, 1]
    assert all(e["hypothesis"] == e["reference"].lower() for e in errs), errs
    for s in doc["speakers"]:
        assert s["mode"] == "video" and s["words"] == [] and len(s["segments"]) == 1
        g = s["segments"][0]
        assert s["start_s"] <= g["start"] < g["end"] <= s["end_s"] + 1e-6
        assert g["text"] in (out / s["srt"]).read_text()
