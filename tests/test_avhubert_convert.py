"""The converter's edges: files that do not fit (missing, unknown, mis-shaped tensors; unsupported variants;
hostile configs) are refused with one line naming the file and the official key or field, before a module is
built; `avspeech convert avhubert` writes a folder that computes what the file computes (pretrained and
fine-tuned); `avspeech pretrain --init-from official.pt` continues AV-HuBERT pretraining on our data."""
from __future__ import annotations

import hashlib
import json
import time

import pytest
import torch
from safetensors.torch import load_file

from avhubert_fakes import spm_model_bytes, write_official
from avhubert_reference import official_config, official_state_dict
from avspeech.cli import main
from avspeech.errors import InputError
from avspeech.model import avhubert
from avspeech.model.checkpoint import load_encoder

K = 8  # k-means clusters of the labels below
LABELS = [[str(c) for c in (3, 0, 7, 1, 5, 2, 6, 4)]]  # a dictionary file's order need not be numeric
NAN = float("nan")


def _state(model_cfg, seed=0):
    return {k: (v.float() if v.is_floating_point() else v)
            for k, v in official_state_dict(model_cfg, K + 4, seed=seed).items()}


def _file(path, edit_state=None, masking_type="input", **cfg_overrides):
    model_cfg, task_cfg = official_config("tiny", masking_type=masking_type)
    state = _state(model_cfg)
    if edit_state:
        edit_state(state)
    model_cfg.update({k: v for k, v in cfg_overrides.items() if k != "stack_order_audio"})
    if "stack_order_audio" in cfg_overrides:
        task_cfg["stack_order_audio"] = cfg_overrides["stack_order_audio"]
    write_official(path, state, model_cfg, task_cfg, dictionaries=LABELS)
    return path, state


def _inputs(t=6):
    g = torch.Generator().manual_seed(5)
    return torch.randn(2, t, 104, generator=g), torch.randn(2, 1, t, 88, 88, generator=g), torch.tensor([t, t - 2])


def _refused(path, *words):
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        avhubert.load(path)
    took = time.perf_counter() - t0
    msg = str(e.value)
    assert str(path.name) in msg and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return took


def _drop(key):
    return lambda s: s.pop(key)


def _reshape(key):
    return lambda s: s.__setitem__(key, torch.zeros(s[key].shape[0] + 1, *s[key].shape[1:]))


@pytest.mark.parametrize("edit,words", [
    (_drop("encoder.layers.1.fc2.weight"), ["missing", "encoder.layers.1.fc2.weight"]),
    (_drop("feature_extractor_video.resnet.trunk.layer3.0.downsample.1.running_var"),
     ["missing", "trunk.layer3.0.downsample.1.running_var"]),
    (_drop("encoder.layers.0.self_attn.k_proj.bias"), ["missing", "encoder.layers.0.self_attn.k_proj.bias"]),
    (lambda s: s.__setitem__("encoder.layers.0.adapter.weight", torch.zeros(2)),
     ["fit no part", "encoder.layers.0.adapter.weight"]),
    (_reshape("encoder.layers.0.fc1.weight"), ["wrong shapes", "encoder.layers.0.fc1.weight"]),
    (_reshape("encoder.layers.1.self_attn.v_proj.weight"), ["q/k/v", "v_proj (33, 32)"]),
    (_reshape("mask_emb"), ["mask_emb", "(104,)"]),
])
def test_tensors_that_do_not_fit_are_named(tmp_path, edit, words):
    path, _ = _file(tmp_path / "bad.pt", edit)
    _refused(path, *words)


@pytest.mark.parametrize("field,value", [("modality_fuse", "add"), ("resnet_relu_type", "relu"),
                                         ("sub_encoder_layers", 2), ("extractor_mode", "layer_norm"),
                                         ("activation_fn", "relu")])
def test_unsupported_variants_are_refused(tmp_path, field, value):
    path, _ = _file(tmp_path / "variant.pt", **{field: value})
    _refused(path, "not supported", field, repr(value))


# issue 22's rows for the official configs: each refused at once, by name, before anything is built
HOSTILE = [("encoder_layers", 100000), ("encoder_layers", True), ("dropout", NAN),
           ("encoder_attention_heads", 0), ("encoder_ffn_embed_dim", 10 ** 13), ("encoder_embed_dim", "32"),
           ("conv_pos", -1), ("mask_prob_audio", 1.5), ("logit_temp", 0.0), ("layer_norm_first", "yes"),
           ("masking_type", "magic"), ("stack_order_audio", 0), ("encoder_embed_dim", 60000)]


@pytest.mark.parametrize("field,value", HOSTILE)
def test_hostile_official_configs(tmp_path, monkeypatch, field, value):
    path, _ = _file(tmp_path / "hostile.pt", **{field: value})
    import avspeech.model.encoder as encoder_module

    def no_build(*a, **k):
        raise AssertionError("a module was built from a hostile config")

    monkeypatch.setattr(encoder_module.AVEncoder, "__init__", no_build)
    words = [field] if field != "encoder_embed_dim" or value != 60000 else ["parameters"]
    assert _refused(path, *words) < 1.0


@pytest.mark.parametrize("command", ["convert", "finetune separation", "finetune recognition", "pretrain"])
def test_hostile_official_file_through_each_command(tmp_path, capsys, command):
    from data_helpers import make_manifest

    path, _ = _file(tmp_path / "hostile.pt", encoder_layers=100000)
    manifest = make_manifest(tmp_path / "data", lengths=(12, 14))
    argv = {"convert": ["convert", "avhubert", str(path), str(tmp_path / "out")],
            "finetune separation": ["finetune", "separation", "--manifest", str(manifest), "--mixtures",
                                    str(tmp_path / "mix.tsv"), "--init-from", str(path), "--out", str(tmp_path / "r")],
            "finetune recognition": ["finetune", "recognition", "--manifest", str(manifest), "--init-from",
                                     str(path), "--out", str(tmp_path / "r")],
            "pretrain": ["pretrain", "--manifest", str(manifest), "--labels", str(tmp_path / "l.km"),
                         "--init-from", str(path), "--out", str(tmp_path / "r")]}[command]
    if command == "pretrain":
        (tmp_path / "l.km").write_text("0 1 " * 6 + "\n" + "1 0 " * 7 + "\n")
    if command == "finetune recognition":
        manifest.with_suffix(".wrd").write_text("hello world\nbye now\n")
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1 and "encoder_layers" in err[0] and "hostile.pt" in err[0], err


def test_convert_pretrained_round_trip(tmp_path, capsys):
    path, state = _file(tmp_path / "base_iter5.pt")
    assert main(["convert", "avhubert", str(path), str(tmp_path / "conv")]) == 0
    assert "verified" in capsys.readouterr().out
    m = avhubert.load(path)
    again = load_encoder(tmp_path / "conv")
    audio, video, lengths = _inputs()
    with torch.no_grad():
        for layer in (None, 1):
            assert torch.equal(m.encoder.extract_features(audio, video, lengths, layer),
                               again.extract_features(audio, video, lengths, layer))
    cfg = json.loads((tmp_path / "conv" / "config.json").read_text())
    assert cfg["avhubert"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert cfg["kind"] == "pretrain" and cfg["num_clusters"] == K and cfg["mask_level"] == "input"
    w = load_file(tmp_path / "conv" / "model.safetensors")
    # cluster c is the file's row of the symbol "c" (after fairseq's 4 specials)
    rows = [4 + LABELS[0].index(str(c)) for c in range(K)]
    assert torch.equal(w["cluster_emb"], state["label_embs_concat"][rows])
    assert torch.equal(w["audio_mask_emb"], state["mask_emb"])
    assert torch.equal(w["proj.weight"], state["final_proj.weight"])


def test_convert_finetuned_seq2seq_keeps_decoder_and_tokenizer(tmp_path, capsys):
    from avhubert_seq2seq import write_finetuned

    path = tmp_path / "vsr_433h.pt"
    _, _, symbols, state = write_finetuned(path)
    out = tmp_path / "conv"
    assert main(["convert", "avhubert", str(path), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "finetuned_seq2seq" in printed and "decoder 2 layers x 32" in printed and "SentencePiece" in printed
    weights = load_file(out / "model.safetensors")
    decoder = {k: v for k, v in state.items() if k.startswith("decoder.") and not k.endswith("_float_tensor")}
    assert {k for k in weights if k.startswith("decoder.")} == set(decoder)
    assert all(torch.equal(weights[k], decoder[k].float()) for k in decoder)
    assert not (out / "carried.safetensors").exists()
    assert (out / "tokenizer.model").read_bytes() == spm_model_bytes()
    dicts = json.loads((out / "dictionaries.json").read_text())
    assert dicts["target_dictionary"] == symbols
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "avhubert_finetuned_seq2seq" and cfg["decoder"]["heads"] == 4
    audio, video, lengths = _inputs()
    with torch.no_grad():
        assert torch.equal(avhubert.load(path).encoder.extract_features(audio, video, lengths),
                           load_encoder(out).extract_features(audio, video, lengths))


def test_pretrain_continues_from_an_official_file(tmp_path):
    from avspeech.data.layout import read_manifest, write_labels
    from avspeech.model.checkpoint import load_config
    from avspeech.pretrain import cluster as cl
    from avspeech.pretrain.train import TrainConfig, build_model, train
    from data_helpers import make_manifest

    manifest = make_manifest(tmp_path / "data", lengths=(20, 24, 18, 22))
    utts = read_manifest(manifest)
    feats = cl.mfcc_features(utts)
    labels = tmp_path / "data" / "mfcc.km"
    write_labels(labels, cl.assign(cl.fit_kmeans(feats, K, seed=0), feats, [u.frames for u in utts]))
    path, state = _file(tmp_path / "base_iter4.pt")
    cfg = TrainConfig(manifest=str(manifest), labels=str(labels), out=str(tmp_path / "run"), init_from=str(path),
                      steps=2, warmup=1, batch_frames=48, max_frames=24, save_every=100, log_every=1, seed=0)
    model, config = build_model(cfg, K)
    rows = [4 + LABELS[0].index(str(c)) for c in range(K)]
    assert torch.equal(model.cluster_emb.detach(), state["label_embs_concat"][rows])
    assert torch.equal(model.audio_mask_emb.detach(), state["mask_emb"])
    assert config["mask_level"] == "input" and config["encoder"]["layout"] == "avhubert"
    assert config["mask"]["p_av"] == pytest.approx(0.5) and config["mask"]["p_audio"] == pytest.approx(0.25)
    res = train(cfg)
    assert res["step"] == 2
    saved = load_config(res["checkpoint"])
    assert saved["encoder"]["audio_features"] == "avhubert" and saved["encoder"]["norm_first"] is True
