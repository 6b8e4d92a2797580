"""Evidence for the separation head on the synthetic corpus, and the recipe of the checkpoint that ships.

1. Data: single-speaker synthetic clips (training voices, seed 1000) and a held-out set (voices ``m3``/``f3``
   never heard in training, seed 2000: other sentences, face placements, scales, shades and motions), both
   preprocessed by ``avspeech preprocess``.
2. Mixture lists (saved under ``<data>/mixtures/``): training pairs at relative gains in +-5 dB; held-out pairs at
   0 dB of two different voices and of one voice with itself (only the lips tell those speakers apart).
3. Train the audio-visual model (tiny encoder, fine-tuned; STFT frames attend to the encoder features through
   the cross-modal kernel) and the audio-only baseline (same network without lips, two outputs, PIT).
4. Score both on the held-out lists (SI-SDRi, SDRi, PESQ, STOI); swap the lips of the two faces (the output for
   face B's lips scored against speaker B and against speaker A); a silent third face (a closed-mouth frame
   held still) and its output level relative to the mixture.
5. Copy the audio-visual weights and config to ``avspeech/pretrained/separation_synth/`` (``--ship``).

Writes ``benchmarks/results/separation_synthetic.{json,md,png}``.

    python benchmarks/separation_synthetic.py --data /tmp/sepdata --steps 2000 --ship
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("AVSPEECH_ATTENTION", "reference")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHIP = REPO / "avspeech" / "pretrained" / "separation_synth"


def make_data(data: Path, train_clips: int, heldout_clips: int) -> tuple[Path, Path]:
    from avspeech.synth.corpus import SynthConfig
    from avspeech.synth.splits import HELDOUT_VOICES, TRAIN_VOICES, synth_and_preprocess

    train = synth_and_preprocess(data / "train", SynthConfig(speakers=1, seed=1000, voices=TRAIN_VOICES),
                                 train_clips)
    held = synth_and_preprocess(data / "heldout", SynthConfig(speakers=1, seed=2000, voices=HELDOUT_VOICES),
                                heldout_clips)
    return train, held


def make_lists(data: Path, train: Path, held: Path, n_train: int, n_test: int) -> dict[str, Path]:
    from avspeech.data.layout import read_manifest
    from avspeech.separation.mixtures import make_mixtures, write_mixtures
    from avspeech.synth.splits import synthetic_speakers

    out = data / "mixtures"
    lists = {"train": out / "train.tsv", "different_voice": out / "heldout_0db_different_voice.tsv",
             "same_voice": out / "heldout_0db_same_voice.tsv"}
    if all(p.is_file() for p in lists.values()):
        return lists
    write_mixtures(lists["train"], make_mixtures(read_manifest(train), n_train, seed=1, gain_db_range=10.0))
    held_utts = read_manifest(held)
    voices = [s["voice"] for s in synthetic_speakers(held, [u.id for u in held_utts])]
    write_mixtures(lists["different_voice"], make_mixtures(held_utts, n_test, seed=2, gain_db_range=0.0,
                                                           groups=voices, same_group=False, prefix="dv"))
    write_mixtures(lists["same_voice"], make_mixtures(held_utts, n_test, seed=3, gain_db_range=0.0,
                                                      groups=voices, same_group=True, prefix="sv"))
    return lists


@torch.no_grad()
def lip_tests(model, held: Path, mixtures: Path) -> dict[str, float]:
    """Swapped lips and a silent third face on each mixture of ``mixtures`` (audio-visual model only)."""
    from avspeech.separation.metrics import energy_db, si_sdr
    from avspeech.separation.mixtures import MixtureDataset, collate_mixtures

    ds = MixtureDataset(held, mixtures)
    own, other, silent = [], [], []
    for j in range(len(ds.mixtures)):
        a, b = ds[2 * j], ds[2 * j + 1]  # targets A and B of mixture j (same mixture waveform)
        for tgt, oth in ((a, b), (b, a)):
            x = collate_mixtures([tgt])
            est = model(x["mixture"], x["lips"], x["audio"], x["lengths"])[0, 0]
            own.append(float(si_sdr(est[None], x["target"])[0]))
            other.append(float(si_sdr(est[None], oth["target"][None])[0]))
        x = collate_mixtures([a])
        still = x["lips"][:, :, :1].expand_as(x["lips"]).contiguous()  # a closed mouth, held still
        est = model(x["mixture"], still, x["audio"], x["lengths"])[0, 0]
        silent.append(float(energy_db(est[None], x["mixture"])[0]))
    # own: f(mix, lips of X) against X, i.e. with the lips swapped, against the other face's speaker;
    # other: the same output against the speaker whose lips were not given
    return {"si_sdr_own": float(np.mean(own)), "si_sdr_other_speaker": float(np.mean(other)),
            "silent_face_db_below_mixture": float(-np.mean(silent)), "mixtures": len(ds.mixtures)}


def training_record(run: Path) -> dict:
    """The last row of a run's log and its training time (the sum of logged step times, so a run resumed in
    several sittings counts once)."""
    import csv

    rows = list(csv.DictReader(open(run / "log.csv")))
    seconds, prev = 0.0, 0
    for r in rows:
        seconds += float(r["sec_per_step"]) * (int(r["step"]) - prev)
        prev = int(r["step"])
    return {"last": rows[-1], "train_minutes": round(seconds / 60, 1)}


def stages(checkpoint: str) -> list[dict]:
    """The training configs of a chain of continued separation runs, first stage first (a shipped checkpoint
    records its whole chain under ``recipe``, with paths relative to the recipe's data folders)."""
    from avspeech.model.checkpoint import load_config

    chain, ck = [], checkpoint
    while ck:
        cfg = load_config(ck)
        if "recipe" in cfg:
            return [s["train"] for s in cfg["recipe"]["stages"]] + chain[::-1]
        train = cfg.get("train", {})
        chain.append(train)
        ck = train.get("continue_from")
    return chain[::-1]


def encoder_words(args) -> str:
    """How the audio-visual model started, for the results page."""
    if args.continue_from:
        chain = stages(args.continue_from)
        start = (f"audio-visual separator continued (all weights) from `{args.continue_from}`, itself trained "
                 + ", then ".join(f"{c.get('steps', '?')} steps at lr {c.get('lr', '?')} on `{c.get('mixtures', '?')}` "
                                  f"({c.get('crop_frames', '?')}-frame crops"
                                  + (f", BLSTM widened to {c['lstm_hidden']}" if c.get("lstm_hidden") else "") + ")"
                                  for c in chain)
                 + f"; encoder {chain[0].get('model', '?')} from random init")
    elif args.init_from:
        from avspeech.model.checkpoint import load_config

        kind = load_config(args.init_from).get("kind", "pretraining")
        start = f"encoder from the {kind} checkpoint `{args.init_from}`"
    else:
        start = f"{args.model} encoder at random init"
    return start + (", frozen" if args.freeze_encoder else ", fine-tuned") + (
        ", lip front-end frozen" if args.freeze_lip_frontend and not args.freeze_encoder else "") + (
        f"; this run's BLSTM widened to {args.lstm_hidden} units each way" if args.lstm_hidden else "")


def plot(path: Path, logs: dict[str, Path], summary: dict) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for name, (p, offset) in logs.items():  # offset: steps a continued run had before it
        rows = list(csv.DictReader(open(p)))
        ax[0].plot([offset + int(r["step"]) for r in rows], [float(r["si_sdr"]) for r in rows],
                   label=name + (f" (continued after {offset} steps)" if offset else ""))
    ax[0].set(xlabel="step", ylabel="training SI-SDR (dB)", title="training (crops at +-5 dB)")
    ax[0].legend()
    names = ["different_voice", "same_voice"]
    w = 0.38
    for k, model in enumerate(["audio-visual", "audio-only (best permutation)"]):
        vals = [summary["heldout"][n][model]["si_sdri"] for n in names]
        ax[1].bar(np.arange(2) + (k - 0.5) * w, vals, w, label=model)
    ax[1].axhline(10, color="k", ls=":", lw=1)
    ax[1].set_xticks(range(2), ["two voices, 0 dB", "one voice with itself, 0 dB"])
    ax[1].set(ylabel="SI-SDRi (dB)", title="held-out voices and sentences")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="separation_data", help="folder for the corpora, mixture lists and runs")
    ap.add_argument("--train-clips", type=int, default=300)
    ap.add_argument("--heldout-clips", type=int, default=60)
    ap.add_argument("--train-mixtures", type=int, default=20000)
    ap.add_argument("--test-mixtures", type=int, default=100)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--audio-steps", type=int, default=None, help="audio-only baseline steps (default --steps)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--audio-lr", type=float, default=None, help="audio-only baseline learning rate (default --lr)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps of the audio-visual run (default: a "
                    "tenth of its steps, at most 100; the baseline always uses that)")
    ap.add_argument("--init-from", help="checkpoint for the encoder (pretraining, recognition or separation)")
    ap.add_argument("--model", default="tiny", help="encoder preset without --init-from")
    ap.add_argument("--hidden", type=int, default=128, help="width of the mask network (BLSTM)")
    ap.add_argument("--lstm-hidden", type=int, default=None,
                    help="BLSTM width of the audio-visual run; with --continue-from, grown from the checkpoint's")
    ap.add_argument("--freeze-encoder", action="store_true")
    ap.add_argument("--continue-from", help="separation checkpoint that starts the audio-visual run whole (config "
                    "and weights), e.g. the shipped one; the audio-only baseline starts as --init-from/--model say")
    ap.add_argument("--freeze-lip-frontend", action="store_true",
                    help="lip front-end fixed, its output computed once per training clip")
    ap.add_argument("--crop-frames", type=int, default=50, help="training crop in 25 Hz frames (default 2 s); "
                    "crops no longer than the shortest clip keep batches unpadded, the fast LSTM path")
    ap.add_argument("--runs", default="runs", help="run folder name under --data (a new name, a new recipe)")
    ap.add_argument("--ship", action="store_true", help="copy the audio-visual model into avspeech/pretrained/")
    args = ap.parse_args()

    from avspeech.separation.evaluate import evaluate_separation, markdown_table
    from avspeech.separation.train import SeparationTrainConfig, load_separator, train_separation

    data = Path(args.data)
    t0 = time.time()
    train, held = make_data(data, args.train_clips, args.heldout_clips)
    lists = make_lists(data, train, held, args.train_mixtures, args.test_mixtures)
    runs = {"audio-visual": ("av", data / args.runs / "av", args.steps),
            "audio-only (best permutation)": ("audio", data / args.runs / "audio", args.audio_steps or args.steps)}
    summary: dict = {"command": "python benchmarks/separation_synthetic.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False, True))
        + "".join(f" --{k.replace('_', '-')}" for k, v in vars(args).items() if v is True),
        "threads": torch.get_num_threads(), "heldout": {}, "train": {}}
    models = {}
    for name, (mode, out, steps) in runs.items():
        is_av = mode == "av"
        res = train_separation(SeparationTrainConfig(
            manifest=str(train), mixtures=str(lists["train"]), out=str(out), mode=mode, steps=steps,
            lr=args.lr if is_av or args.audio_lr is None else args.audio_lr, batch_size=args.batch,
            init_from=args.init_from,
            warmup=args.warmup if is_av and args.warmup is not None else min(100, steps // 10),
            model=args.model, hidden=args.hidden, freeze_encoder=args.freeze_encoder,
            continue_from=args.continue_from if is_av else None,
            lstm_hidden=args.lstm_hidden if is_av else None,
            freeze_lip_frontend=args.freeze_lip_frontend, crop_frames=args.crop_frames))
        summary["train"][name] = {"steps": res["step"], "checkpoint": res["checkpoint"], **training_record(out)}
        models[name] = load_separator(res["checkpoint"])
    for lst in ("different_voice", "same_voice"):
        summary["heldout"][lst] = {}
        for name, model in models.items():
            summary["heldout"][lst][name] = evaluate_separation(
                model, held, lists[lst], data / "eval" / lst / runs[name][0])
    av = models["audio-visual"]
    summary["lips"] = {lst: lip_tests(av, held, lists[lst]) for lst in ("different_voice", "same_voice")}
    summary["minutes"] = round((time.time() - t0) / 60, 1)

    av_cfg = av.cfg
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "separation_synthetic.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = ["# Separation on the synthetic corpus (held-out voices, sentences and face variations)", "",
          f"`{summary['command']}`", "",
          f"Training ({encoder_words(args)}; mask network: BLSTM {av_cfg.lstm_width} units each way, input width "
          f"{av_cfg.hidden}; {args.crop_frames / 25:g} s crops "
          f"at +-5 dB; CPU, {summary['threads']} thread(s)): "
          + "; ".join(f"{n}: {r['steps']} steps in {r['train_minutes']} min, final training SI-SDR "
                      f"{float(r['last']['si_sdr']):.2f} dB" for n, r in summary["train"].items()) + ".", "",
          f"Evaluation: {summary['minutes']} min.", ""]
    for lst, title in (("different_voice", "Two different voices at 0 dB"),
                       ("same_voice", "One voice with itself at 0 dB")):
        md += [f"## {title}", "", markdown_table(summary["heldout"][lst])]
        lt = summary["lips"][lst]
        md += [f"Swapped lips (the separator has no notion of a face slot: its output follows the lips it is given): "
               f"with the two faces' lips exchanged, each output scores {lt['si_sdr_own']:.2f} dB SI-SDR against the "
               f"other speaker (whose lips it now has) and {lt['si_sdr_other_speaker']:.2f} dB against the speaker "
               f"of its slot. A silent third face (closed mouth held still) gets an output "
               f"{lt['silent_face_db_below_mixture']:.1f} dB below the mixture. ({lt['mixtures']} mixtures)", ""]
    (RESULTS / "separation_synthetic.md").write_text("\n".join(md) + "\n")
    offset = sum(int(c.get("steps", 0)) for c in stages(args.continue_from)) if args.continue_from else 0
    plot(RESULTS / "separation_synthetic.png", {n: (Path(r[1]) / "log.csv", offset if r[0] == "av" else 0)
                                                for n, r in runs.items()}, summary)
    if args.ship:
        from avspeech.model.checkpoint import CONFIG, WEIGHTS

        ck = Path(summary["train"]["audio-visual"]["checkpoint"])
        SHIP.mkdir(parents=True, exist_ok=True)
        for f in (WEIGHTS, CONFIG):
            shutil.copyfile(ck / f, SHIP / f)
        print(f"shipped {ck} -> {SHIP}")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
