"""``avspeech convert avhubert IN.pt OUT_DIR``: an official AV-HuBERT checkpoint as a checkpoint folder of ours."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", choices=("avhubert",), help="what the file is: avhubert (an official AV-HuBERT "
                   ".pt, pretrained or fine-tuned)")
    p.add_argument("input", help="the official checkpoint file")
    p.add_argument("out", help="checkpoint folder to write (safetensors + config + dictionaries)")


def run(args: argparse.Namespace) -> int:
    import torch

    from avspeech.model.avhubert import load
    from avspeech.model.avhubert.convert import save_converted
    from avspeech.model.checkpoint import load_encoder

    m = load(args.input)
    out = save_converted(m, args.out)
    # the folder must compute what the file computes: same outputs on a random input, bit for bit
    again = load_encoder(out)
    g = torch.Generator().manual_seed(0)
    t = 8
    audio = torch.randn(1, t, m.config.audio_dim, generator=g)
    video = torch.randn(1, 1, t, 88, 88, generator=g)
    lengths = torch.tensor([t])
    with torch.no_grad():
        memory = m.encoder.extract_features(audio, video, lengths)
        same = torch.equal(memory, again.extract_features(audio, video, lengths))
    if not same:
        raise RuntimeError(f"{out}: the written folder does not reproduce the file's encoder outputs")
    if m.decoder is not None:
        from avspeech.recognition.seq2seq import load_converted

        dec = load_converted(out).decoder
        prev = torch.tensor([[m.vocabulary.eos] + list(range(4, min(m.decoder.cfg.vocab, 10)))])
        with torch.no_grad():
            if not torch.equal(m.decoder(prev, memory, lengths), dec(prev, memory, lengths)):
                raise RuntimeError(f"{out}: the written folder does not reproduce the file's decoder outputs")
    c, p = m.config, m.pretraining
    n = sum(t.numel() for t in m.encoder.parameters())
    extra = [f"{len(m.dictionaries)} label dictionaries"] if m.dictionaries else []
    if m.target_dictionary:
        extra.append(f"target dictionary of {len(m.target_dictionary)} symbols")
    if m.tokenizer_model:
        extra.append("SentencePiece tokenizer")
    if m.decoder is not None:
        d = m.decoder.cfg
        extra.append(f"decoder {d.layers} layers x {d.dim}, {d.heads} heads ({'pre' if d.normalize_before else 'post'}"
                     f"-LN, {d.activation}, {d.positions} positions{', tied output' if d.tied else ''})")
    if m.carried:
        extra.append(f"{len(m.carried)} carried tensors ({', '.join(sorted(m.carried)[:3])})")
    print(f"wrote {out}: AV-HuBERT {m.file.kind} encoder, {c.layers} layers x {c.dim} "
          f"({'pre' if c.norm_first else 'post'}-LN), {n / 1e6:.1f} M parameters, {p.mask_level}-level masking"
          + (f", {p.cluster_emb.shape[0]} cluster embeddings" if p.cluster_emb is not None else "")
          + (f"; {', '.join(extra)}" if extra else "")
          + f"\nverified: the folder's encoder{' and decoder give' if m.decoder is not None else ' gives'} the file's "
          "outputs exactly")
    return 0
