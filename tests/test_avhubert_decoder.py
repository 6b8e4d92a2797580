"""AV-HuBERT's fine-tuned seq2seq decoder, target vocabulary and beam search, against independent references:
the float64 decoder of ``avhubert_seq2seq.reference_logits`` (plain F.* on the raw fairseq-keyed state dict), an
exhaustive search over a tiny vocabulary, and greedy decoding with the reference."""
from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from avhubert_fakes import spm_model_bytes
from avhubert_seq2seq import EOS, PAD, SPECIALS, reference_greedy, reference_logits, write_finetuned
from avspeech.errors import InputError
from avspeech.model import avhubert
from avspeech.recognition.beam_search import BeamOptions, CachedSteps, PrefixSteps, beam_search


def _memory(b=2, t=7, d=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, d, generator=g, dtype=torch.float64)


def _vocab() -> int:
    from avhubert_seq2seq import target_pieces

    return len(SPECIALS) + len(target_pieces(spm_model_bytes()))


VARIANTS = {
    "released": {},  # pre-LN, tied output, sinusoidal positions, ReLU, 4 heads, no embedding scale
    "post_ln_untied_learned_gelu": dict(decoder_normalize_before=False, share_decoder_input_output_embed=False,
                                        decoder_learned_pos=True, activation_fn="gelu"),
    "scaled_no_positions": dict(no_scale_embedding=False, no_token_positional_embeddings=True,
                                decoder_attention_heads=2),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_decoder_matches_the_float64_reference(tmp_path, variant):
    _, dec_cfg, symbols, state = write_finetuned(tmp_path / "ft.pt", dec_overrides=VARIANTS[variant])
    m = avhubert.load(tmp_path / "ft.pt", dtype=torch.float64)
    assert m.decoder.cfg.vocab == len(symbols) and not m.carried
    enc, lengths = _memory(), torch.tensor([7, 4])
    prev = torch.tensor([[EOS, 5, 6, 7, 8, 9], [EOS, 9, 10, 11, PAD, PAD]])  # right-padded, as fairseq collates
    pad = torch.arange(7)[None] >= lengths[:, None]
    with torch.no_grad():
        ours = m.decoder(prev, enc, lengths)
    ref = reference_logits(state, dec_cfg, prev, enc, pad)
    assert ours.shape == (2, 6, len(symbols))
    assert (ours - ref).abs().max() < 1e-10
    # the incremental path (key/value cache, one token at a time) gives the same logits
    with torch.no_grad():
        cache = m.decoder.start(enc, lengths)
        steps = torch.stack([m.decoder.step(prev[:, i], cache) for i in range(4)], 1)
    assert (steps - ref[:, :4]).abs().max() < 1e-10


# (a k_proj bias shifts every score of a query alike: softmax cancels it, so it is not among these)
@pytest.mark.parametrize("key", ["decoder.layers.1.encoder_attn.v_proj.bias", "decoder.layers.0.fc1.weight",
                                 "decoder.layer_norm.weight", "decoder.layers.0.self_attn_layer_norm.bias"])
def test_each_tensor_matters(tmp_path, key):
    _, dec_cfg, _, state = write_finetuned(tmp_path / "ft.pt")
    m = avhubert.load(tmp_path / "ft.pt", dtype=torch.float64)
    enc, lengths = _memory(), torch.tensor([7, 5])
    prev = torch.tensor([[EOS, 5, 6], [EOS, 7, 8]])
    pad = torch.arange(7)[None] >= lengths[:, None]
    edited = {**state, key: state[key] + 0.05}
    with torch.no_grad():
        ours = m.decoder(prev, enc, lengths)
    assert (ours - reference_logits(edited, dec_cfg, prev, enc, pad)).abs().max() > 1e-4


def test_loader_recovers_dictionary_and_tokenizer(tmp_path):
    import sentencepiece

    _, _, symbols, _ = write_finetuned(tmp_path / "ft.pt")
    m = avhubert.load(tmp_path / "ft.pt")
    v = m.vocabulary
    assert v.symbols == symbols and (v.bos, v.pad, v.eos, v.unk) == (0, 1, 2, 3) and v.has_tokenizer
    sp = sentencepiece.SentencePieceProcessor(model_proto=spm_model_bytes())
    text = "The quick brown FOX hears sounds"
    ids = v.encode(text)
    assert [symbols[i] for i in ids] == sp.encode_as_pieces(text.lower())
    assert v.decode([EOS, *ids, EOS, PAD]) == "the quick brown fox hears sounds"
    assert v.encode("zzz qq") and all(i == 3 or symbols[i] in sp.encode_as_pieces("zzz qq") for i in v.encode("zzz qq"))


def test_file_without_tokenizer_takes_one(tmp_path):
    from avspeech.recognition.seq2seq import load_seq2seq

    write_finetuned(tmp_path / "ft.pt", with_spm=False)
    rec = load_seq2seq(tmp_path / "ft.pt")
    assert rec.tokenizer.decode([5, 6]) and not rec.tokenizer.has_tokenizer
    with pytest.raises(InputError, match="--spm"):
        rec.tokenizer.encode("hello")
    spm = tmp_path / "spm_unigram1000.model"
    spm.write_bytes(spm_model_bytes())
    assert load_seq2seq(tmp_path / "ft.pt", spm=spm).tokenizer.encode("hello world")
    (tmp_path / "bad.model").write_text("not a model")
    with pytest.raises(InputError, match="bad.model"):
        load_seq2seq(tmp_path / "ft.pt", spm=tmp_path / "bad.model")


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.pop("decoder.layers.1.fc2.bias"), ["missing", "decoder.layers.1.fc2.bias"]),
    (lambda s: s.update({"decoder.layers.0.extra.weight": torch.zeros(2)}), ["unexpected", "decoder.layers.0.extra"]),
    (lambda s: s.update({"decoder.layers.0.fc1.weight": torch.zeros(3, 32)}), ["decoder.layers.0.fc1.weight"]),
])
def test_decoder_tensors_that_do_not_fit_are_named(tmp_path, edit, words):
    from avhubert_reference import official_config
    from avhubert_seq2seq import decoder_model_cfg, finetuned_state

    model_cfg, _ = official_config("tiny")
    state = finetuned_state(model_cfg, decoder_model_cfg(32), _vocab())
    edit(state)
    path = tmp_path / "ft.pt"
    write_finetuned(path, state=state)
    with pytest.raises(InputError) as e:
        avhubert.load(path)
    assert all(w in str(e.value) for w in words) and "ft.pt" in str(e.value)


@pytest.mark.parametrize("overrides, words", [
    (dict(decoder_embed_dim=48, decoder_attention_heads=4), ["decoder_embed_dim", "48", "32"]),
    (dict(decoder_attention_heads=5), ["decoder_attention_heads", "5"]),
    (dict(decoder_layers=0), ["decoder_layers"]),
    (dict(decoder_normalize_before="yes"), ["decoder_normalize_before"]),
])
def test_bad_decoder_configs_are_refused_by_field(tmp_path, overrides, words):
    from avhubert_reference import official_config
    from avhubert_seq2seq import decoder_model_cfg, finetuned_state

    model_cfg, _ = official_config("tiny")
    state = finetuned_state(model_cfg, decoder_model_cfg(32), _vocab())
    write_finetuned(tmp_path / "ft.pt", dec_overrides=overrides, state=state)
    with pytest.raises(InputError) as e:
        avhubert.load(tmp_path / "ft.pt")
    assert all(w in str(e.value) for w in words), str(e.value)


# ------------------------------------------------------------------------------------------------ beam search

def _tiny_file(tmp_path, seed=0):
    """A decoder whose dictionary has 6 symbols: fairseq's 4 specials and 2 pieces."""
    from avhubert_reference import official_config
    from avhubert_seq2seq import decoder_model_cfg, finetuned_state
    from avhubert_fakes import write_official

    model_cfg, task_cfg = official_config("tiny")
    dec_cfg = decoder_model_cfg(32, decoder_layers=1)
    symbols = SPECIALS + ["\u2581a", "b"]
    state = finetuned_state(model_cfg, dec_cfg, len(symbols), seed)
    state["decoder.embed_tokens.weight"] *= 6.0  # sharper distributions: the search order matters
    ft = {**dec_cfg, "w2v_args": {"model": {"_name": "av_hubert", **model_cfg}, "task": task_cfg}}
    write_official(tmp_path / "tiny.pt", state, ft, {**task_cfg, "modalities": ["video"]},
                   kind="finetuned_seq2seq", target_symbols=symbols[4:])
    return state, dec_cfg, symbols


def _sequence_logprob(state, dec_cfg, enc, length, seq):
    prev = torch.tensor([[EOS, *seq]])
    pad = (torch.arange(enc.shape[0]) >= length)[None]
    lp = reference_logits(state, dec_cfg, prev, enc[None], pad)[0].log_softmax(-1)
    return float(sum(lp[i, t] for i, t in enumerate([*seq, EOS])))


def test_beam_search_is_exhaustive_when_the_beam_holds_everything(tmp_path):
    state, dec_cfg, symbols = _tiny_file(tmp_path)
    dec = avhubert.load(tmp_path / "tiny.pt", dtype=torch.float64).decoder
    enc, length, max_len = _memory(1, 5, 32, seed=3)[0], 4, 3
    allowed = [i for i in range(len(symbols)) if i not in (PAD, EOS)]  # bos and unk can be chosen, as in fairseq
    every = [s for n in range(1, max_len + 1) for s in itertools.product(allowed, repeat=n)]
    logprob = {s: _sequence_logprob(state, dec_cfg, enc, length, s) for s in every}
    for lenpen in (1.0, 0.0, 2.0):
        opts = BeamOptions(beam=100, max_len_a=0.0, max_len_b=max_len, lenpen=lenpen, nbest=100)
        (hyps,) = beam_search(CachedSteps(dec), enc[None], torch.tensor([length]), eos=EOS, pad=PAD, options=opts)
        scored = sorted(((lp / (len(s) + 1) ** lenpen, list(s)) for s, lp in logprob.items()), key=lambda x: -x[0])
        assert len(hyps) == len(every)
        assert hyps[0].tokens == scored[0][1] and abs(hyps[0].score - scored[0][0]) < 1e-9
        assert [h.tokens for h in hyps[:10]] == [s for _, s in scored[:10]]
        assert all(abs(sum(h.positional) - h.logprob) < 1e-9 for h in hyps[:5])


def test_beam_one_is_greedy_and_batching_changes_nothing(tmp_path):
    _, dec_cfg, _, state = write_finetuned(tmp_path / "ft.pt")
    dec = avhubert.load(tmp_path / "ft.pt", dtype=torch.float64).decoder
    enc, lengths = _memory(3, 9, 32, seed=5), torch.tensor([9, 6, 3])
    opts = BeamOptions(beam=1, max_len_a=1.0, max_len_b=2)
    batched = beam_search(CachedSteps(dec), enc, lengths, eos=EOS, pad=PAD, options=opts)
    for i in range(3):
        greedy = reference_greedy(state, dec_cfg, enc[i], int(lengths[i]), int(lengths[i]) + 2)
        assert batched[i][0].tokens == greedy
    wide = BeamOptions(beam=4, nbest=4, max_len_a=1.0, max_len_b=2)
    together = beam_search(CachedSteps(dec), enc, lengths, eos=EOS, pad=PAD, options=wide)
    for i in range(3):
        (alone,) = beam_search(CachedSteps(dec), enc[i:i + 1, :int(lengths[i])], lengths[i:i + 1], eos=EOS, pad=PAD,
                               options=wide)
        assert [h.tokens for h in together[i]] == [h.tokens for h in alone]
        assert all(abs(a.score - b.score) < 1e-9 for a, b in zip(together[i], alone))


def test_prefix_steps_equal_cached_steps(tmp_path):
    write_finetuned(tmp_path / "ft.pt")
    dec = avhubert.load(tmp_path / "ft.pt", dtype=torch.float64).decoder
    enc, lengths = _memory(2, 8, 32, seed=7), torch.tensor([8, 5])
    opts = BeamOptions(beam=3, nbest=3, max_len_b=6, max_len_a=0.0)

    def logprobs(tokens, memory, lens):
        return dec(tokens, memory, lens).log_softmax(-1)

    a = beam_search(CachedSteps(dec), enc, lengths, eos=EOS, pad=PAD, options=opts)
    b = beam_search(PrefixSteps(logprobs), enc, lengths, eos=EOS, pad=PAD, options=opts)
    assert [[h.tokens for h in x] for x in a] == [[h.tokens for h in x] for x in b]


def test_max_len_follows_the_options():
    from avspeech.recognition.beam_search import max_lengths

    opts = BeamOptions(max_len_a=1.0, max_len_b=0)
    assert max_lengths(torch.tensor([250, 3]), opts, 2048) == [250, 3]
    assert max_lengths(torch.tensor([5000]), opts, 2048) == [2047]
    assert max_lengths(torch.tensor([10]), BeamOptions(max_len_a=0.5, max_len_b=3), 2048) == [8]


def test_converted_folder_decodes_like_the_file(tmp_path, capsys):
    from avspeech.cli import main
    from avspeech.recognition.seq2seq import load_seq2seq

    write_finetuned(tmp_path / "ft.pt", modalities=("audio", "video"))
    assert main(["convert", "avhubert", str(tmp_path / "ft.pt"), str(tmp_path / "conv")]) == 0
    out = capsys.readouterr().out
    assert "decoder 2 layers x 32, 4 heads (pre-LN, relu, sinusoidal positions, tied output)" in out
    assert "encoder and decoder give" in out
    cfg = json.loads((tmp_path / "conv" / "config.json").read_text())
    assert cfg["kind"] == "avhubert_finetuned_seq2seq" and cfg["modes"] == ["av", "audio", "video"]
    assert not (tmp_path / "conv" / "carried.safetensors").exists()
    a, b = load_seq2seq(tmp_path / "ft.pt"), load_seq2seq(tmp_path / "conv")
    g = torch.Generator().manual_seed(0)
    video, audio, lengths = torch.randn(1, 1, 6, 88, 88, generator=g), torch.randn(1, 6, 104, generator=g), torch.tensor([6])
    opts = BeamOptions(beam=3, max_len_b=5, max_len_a=0.0)
    ha, hb = a.generate(video, audio, lengths, "av", opts), b.generate(video, audio, lengths, "av", opts)
    assert ha[0][0].tokens == hb[0][0].tokens and math.isclose(ha[0][0].score, hb[0][0].score, rel_tol=1e-6)
    assert a.tokenizer.symbols == b.tokenizer.symbols and b.tokenizer.has_tokenizer


def test_vsr_model_is_lips_only(tmp_path):
    from avspeech.recognition.seq2seq import load_seq2seq

    write_finetuned(tmp_path / "vsr.pt", modalities=("video",))
    rec = load_seq2seq(tmp_path / "vsr.pt")
    assert rec.modes == ("video",) and rec.default_mode(has_audio=True) == "video"
    with pytest.raises(InputError, match="lip-reading"):
        rec.check_mode("av")


def test_recognize_names_a_checkpoint_file_that_is_not_one(tmp_path):
    from avspeech.recognition.recognize import load_model

    bad = tmp_path / "vsr.pt"
    bad.write_text("not a checkpoint\n")
    with pytest.raises(InputError, match="vsr.pt: not a PyTorch checkpoint: it is a text file"):
        load_model(bad)
    pre = tmp_path / "pretrained.pt"
    from avhubert_reference import official_config, official_state_dict
    from avhubert_fakes import write_official

    model_cfg, task_cfg = official_config("tiny")
    write_official(pre, official_state_dict(model_cfg), model_cfg, task_cfg)
    with pytest.raises(InputError, match="pretrained, not a fine-tuned seq2seq model"):
        load_model(pre)
