"""Evidence for the recognition head on the synthetic corpus, and the recipe of the checkpoint that ships.

1. Data: single-speaker synthetic clips (training voices, seed 1000; ``--train-clips``, 1200 for the shipped
   checkpoint) and a held-out set (voices ``m3``/``f3`` never heard in training, seed 2000; 60 clips),
   preprocessed by ``avspeech preprocess``; transcripts (``.wrd``) from the synthetic sidecars. Two-speaker
   held-out clips (``avspeech synth --speakers 2``, held-out voices, seed 3000) for per-face recognition.
2. Train in two stages (``avspeech finetune recognition --model small``: a 4-layer, 128-dim encoder;
   characters, CTC x2 upsampling + 2-layer attention decoder, hybrid loss with CTC weight 0.3; mel-axis warp
   1 +- 0.15; AdamW, batch 8). Stage 1, ``--audio-steps``: audio only, clean speech, lr 2e-3 (no lip front-end,
   about 0.15 s a step on 2 cores). Stage 2, ``--steps``: continues that model whole with modality dropout
   AV/A/V 0.4/0.4/0.2, interfering speech or babble at -5..10 dB on half the items, 5 % silent faces, lr 1e-3.
   Stage 3, ``--polish-steps``: continues again at lr 5e-4, AV/A/V 0.5/0.4/0.1, 45 % interfering speech, 15 %
   babble, a new data order (it took clean A from 5.6 to 4.7 % and per-face WER from 18.8 to 16.7 %). All
   resume. Why stages: in one noisy audio-visual stage the audio path learns slowly (clean A-only WER 52 % after
   800 steps, 63 % on the training voices after 1200 steps of the 70 %-noisy recipe), while clean audio-only
   training reaches 4.7 % held-out WER in 1000 steps. Word errors also fall steeply with the amount of training
   speech (audio only, 300 clips: 19 %; 150 clips: 45 %).
3. Score on the held-out set per mode (A, V, AV), clean and with interfering speech / babble at -5, 0, 5 dB
   (beam 8, joint CTC/attention rescoring with CTC weight 0.5); per face on the two-speaker clips through the
   whole ``avspeech recognize`` path (face tracking, mixture audio + that face's lips).
4. With ``--pretrained CK``: the recipe's first stage (clean; audio only, or lips only with ``--compare-mode
   video``) for ``--compare-steps`` steps from that encoder and from random init, on all training clips or the
   first ``--compare-clips``, both scored on the held-out set in that mode. The first stage because it is where
   the encoder's start shows: 300 steps of the noisy audio-visual stage leave both inits near 98 % WER. A win
   is a WER gain whose paired bootstrap interval excludes zero (utterances resampled; with ``--compare-seeds``,
   seeds too). ``--compare-only`` adds
   a comparison to the results already written.
5. ``--ship``: copy the weights and config to ``avspeech/pretrained/recognition_synth/``.

Writes ``benchmarks/results/recognition_synthetic.{json,md,png}``.

    python benchmarks/recognition_synthetic.py --data /tmp/recdata --ship
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("AVSPEECH_ATTENTION", "reference")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHIP = REPO / "avspeech" / "pretrained" / "recognition_synth"
MODE_LETTER = {"audio": "A", "video": "V"}  # --compare-mode -> the mode column of the evaluation
EARLY_CLIPS = 8  # two-speaker clips scored before the default became 40


def make_data(data: Path, train_clips: int, heldout_clips: int, two_speaker_clips: int,
              train: Path | None = None, held: Path | None = None):
    """Manifests (made unless given), their transcripts ``DATA/{train,heldout}.wrd`` and the two-speaker clips."""
    from avspeech.synth.corpus import SynthConfig, synthesize_corpus
    from avspeech.synth.splits import HELDOUT_VOICES, TRAIN_VOICES, synth_and_preprocess, write_synthetic_labels

    train = train or synth_and_preprocess(data / "train", SynthConfig(speakers=1, seed=1000, voices=TRAIN_VOICES),
                                          train_clips)
    held = held or synth_and_preprocess(data / "heldout", SynthConfig(speakers=1, seed=2000,
                                                                      voices=HELDOUT_VOICES), heldout_clips)
    labels = {}
    for name, m in (("train", train), ("heldout", held)):
        labels[name] = data / f"{name}.wrd"
        if not labels[name].is_file():
            write_synthetic_labels(m, labels[name])
    two = data / "two_speakers"
    synthesize_corpus(two, SynthConfig(speakers=2, seed=3000, voices=HELDOUT_VOICES), two_speaker_clips,
                      resume=True, workers=2)
    return (train, labels["train"]), (held, labels["heldout"]), sorted(two.glob("clip_*.mp4"))[:two_speaker_clips]


def train_run(train: tuple[Path, Path], out: Path, steps: int, init_from: str | None = None,
              model: str = "small", audio_steps: int = 0, polish_steps: int = 0) -> Path:
    """The recipe: with ``audio_steps``, first an audio-only stage on clean speech (``OUT_audio``; no lip
    front-end, so about four times cheaper per step), then the audio-visual stage continuing that model whole;
    with ``polish_steps``, a third stage at half the learning rate with more interfering speech (``OUT_polish``,
    new data order and noise draws)."""
    from avspeech.recognition.train import RecognitionTrainConfig, train_recognition

    common = dict(manifest=str(train[0]), labels=str(train[1]), save_every=100, model=model)
    if audio_steps:
        s = train_recognition(first_stage(train, out.with_name(out.name + "_audio"), audio_steps, init_from, model))
        init_from = s["checkpoint"]
    s = train_recognition(RecognitionTrainConfig(out=str(out), init_from=init_from, steps=steps, p_av=0.4,
                                                 p_audio=0.4, noise_probs=(0.5, 0.3, 0.2),
                                                 lr=1e-3 if audio_steps else 2e-3, **common))
    if polish_steps:
        s = train_recognition(RecognitionTrainConfig(out=str(out.with_name(out.name + "_polish")),
                                                     init_from=s["checkpoint"], steps=polish_steps, p_av=0.5,
                                                     p_audio=0.4, noise_probs=(0.4, 0.45, 0.15), lr=5e-4, warmup=50,
                                                     seed=1, **common))
    return Path(s["checkpoint"])


def first_stage(train: tuple[Path, Path], out: Path, steps: int, init_from: str | None, model: str,
                mode: str = "audio", lr: float = 2e-3, seed: int = 0, freeze_steps: int = 0):
    """The recipe's first stage: audio only, clean speech, lr 2e-3 (``mode="video"``: the same on lips only, for
    the init comparison; ``seed``: the heads' init, the data order and the augmentation draws)."""
    from avspeech.recognition.train import RecognitionTrainConfig

    return RecognitionTrainConfig(manifest=str(train[0]), labels=str(train[1]), save_every=100, model=model,
                                  out=str(out), init_from=init_from, steps=steps, p_av=0.0,
                                  p_audio=1.0 if mode == "audio" else 0.0, noise_probs=(1.0, 0.0, 0.0),
                                  silent_prob=0.0, lr=lr, seed=seed, freeze_steps=freeze_steps)


def paired_bootstrap(pretrained: Path | list[Path], random: Path | list[Path], mode: str, n: int = 2000,
                     seed: int = 0) -> dict:
    """WER(random) - WER(pretrained) in points, with a 95 % interval from a paired bootstrap, from the
    per-utterance ``results.csv`` of the evaluations. Given lists (one evaluation per fine-tuning seed, in seed
    order, the same seeds for both inits), each resample draws seeds and then utterances with replacement (both
    paired: seed k of one init against seed k of the other, the same utterances), so the interval covers the
    fine-tuning noise as well as the choice of utterances."""
    import csv

    import numpy as np

    def errors(d: Path) -> dict[str, tuple[int, int]]:
        return {r["id"]: (int(r["word_errors"]), int(r["words"])) for r in csv.DictReader(open(d / "results.csv"))
                if r["mode"] == mode and r["condition"] == "clean"}

    runs = {k: [v] if isinstance(v, Path) else list(v) for k, v in (("pretrained", pretrained), ("random", random))}
    if len(runs["pretrained"]) != len(runs["random"]):
        raise ValueError("the same number of seeds for both inits")
    rows = {k: [errors(d) for d in v] for k, v in runs.items()}
    ids = sorted(rows["pretrained"][0])
    # (init, seed, utterance) word errors; words per utterance
    e = np.array([[[r[i][0] for i in ids] for r in rows[k]] for k in ("pretrained", "random")], dtype=float)
    w = np.array([rows["pretrained"][0][i][1] for i in ids], dtype=float)
    s_n, u_n = e.shape[1], len(ids)
    rng = np.random.default_rng(seed)
    s_idx = rng.integers(0, s_n, (n, s_n)) if s_n > 1 else np.zeros((n, 1), dtype=int)
    u_idx = rng.integers(0, u_n, (n, u_n))
    d = e[1] - e[0]  # (seed, utterance) errors saved by the pretrained init
    diff = np.array([100 * d[si][:, ui].sum() / (s_n * w[ui].sum()) for si, ui in zip(s_idx, u_idx)])
    lo, hi = np.percentile(diff, [2.5, 97.5])
    wer = 100 * e.sum(2) / w.sum()  # (init, seed)
    result = {"wer": {"pretrained": round(float(wer[0].mean()), 2), "random": round(float(wer[1].mean()), 2)},
              "wer_gain_points": round(float(wer[1].mean() - wer[0].mean()), 2),
              "ci95": [round(float(lo), 2), round(float(hi), 2)], "utterances": u_n}
    if s_n > 1:
        result["seeds"] = s_n
        result["wer_per_seed"] = {k: [round(float(x), 2) for x in wer[m]] for m, k in enumerate(("pretrained", "random"))}
    return result


def first_clips(train: tuple[Path, Path], n: int, data: Path) -> tuple[Path, Path]:
    """The training manifest's root line and first ``n`` rows, and their transcripts, written under ``data``."""
    rows = train[0].read_text().splitlines()
    man, wrd = data / f"train_first{n}.tsv", data / f"train_first{n}.wrd"
    man.write_text("\n".join(rows[: n + 1]) + "\n")
    wrd.write_text("\n".join(train[1].read_text().splitlines()[:n]) + "\n")
    return man, wrd


def silent_faces(model, held: tuple[Path, Path], options, limit: int | None = None) -> dict:
    """A face that never speaks: each held-out ROI track's first frame held still, with another clip's voice as
    the audio (so the only speech in the audio is not this face's). The transcript should be empty."""
    import numpy as np

    from avspeech.features import LipTransform, filterbank_104
    from avspeech.recognition.data import RecognitionDataset, silent_face
    from avspeech.recognition.transcribe import transcribe_batch

    ds = RecognitionDataset(held[0], held[1], model.tokenizer)
    n = min(len(ds), limit or len(ds))
    words = []
    for i in range(n):
        still, wav = silent_face(*ds.load(i), ds.noise(i, "speech", None))
        audio = filterbank_104(wav, len(still))
        h = transcribe_batch(model, LipTransform()(still)[None], audio[None], torch.tensor([len(still)]), "av",
                             options)[0]
        words.append(len(h.text.split()))
    return {"faces": n, "empty": int(sum(w == 0 for w in words)), "words_inserted": int(sum(words)),
            "words_per_face": round(float(np.mean(words)), 3)}


def per_face(model, clips: list[Path], out: Path, options) -> dict:
    from avspeech.recognition.metrics import corpus_rates
    from avspeech.recognition.recognize import recognize_clip
    from avspeech.synth.score import synthetic_word_errors

    rows = []
    for clip in clips:
        entries = recognize_clip(clip, out / clip.stem, model, options=options)
        for e, err in zip(entries, synthetic_word_errors(clip, entries)):
            rows.append({"clip": clip.stem, "track": e["track"], **err})
    return {"faces": len(rows), **{k: round(v, 2) for k, v in corpus_rates(rows).items()}, "rows": rows}


def plot(path: Path, summary: list[dict], encoder: str = "small") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, kind in zip(axes, ("speech", "babble")):
        for mode, style in (("A", "o-"), ("V", "s--"), ("AV", "^-")):
            clean = next(r["wer"] for r in summary if r["mode"] == mode and r["kind"] == "clean")
            pts = sorted((r["snr_db"], r["wer"]) for r in summary if r["mode"] == mode and r["kind"] == kind)
            xs = [p[0] for p in pts] + [15]
            ys = [p[1] for p in pts] + [clean]
            ax.plot(xs, ys, style, label=mode)
        ax.set_xticks([-5, 0, 5, 15], ["-5", "0", "5", "clean"])
        ax.set_xlabel(f"SNR (dB), interfering {'speech' if kind == 'speech' else 'babble'}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("WER (%)")
    axes[0].legend()
    fig.suptitle(f"recognition on held-out synthetic voices ({encoder} encoder)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="data folder (made and kept)")
    p.add_argument("--run", type=Path, help="training run folder (default DATA/run)")
    p.add_argument("--checkpoint", type=Path, help="score this checkpoint instead of training")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--model", default="small", help="encoder preset (without --pretrained)")
    p.add_argument("--audio-steps", type=int, default=1500, help="steps of the audio-only first stage (0: none)")
    p.add_argument("--polish-steps", type=int, default=1000,
                   help="steps of the third stage (half the learning rate, more interfering speech; 0: none)")
    p.add_argument("--train-manifest", type=Path, help="an existing preprocessed synthetic training set")
    p.add_argument("--heldout-manifest", type=Path, help="an existing preprocessed synthetic held-out set")
    p.add_argument("--train-clips", type=int, default=1200)
    p.add_argument("--heldout-clips", type=int, default=60)
    p.add_argument("--two-speaker-clips", type=int, default=40)
    p.add_argument("--limit", type=int, help="score only the first N held-out utterances")
    p.add_argument("--pretrained", help="pretraining checkpoint for the init comparison")
    p.add_argument("--compare-steps", type=int, default=300)
    p.add_argument("--compare-only", action="store_true",
                   help="run only the init comparison and add it to the results already written")
    p.add_argument("--compare-mode", choices=("audio", "video"), default="audio",
                   help="the modality the init comparison fine-tunes and scores")
    p.add_argument("--compare-lr", type=float, default=2e-3, help="peak learning rate of the init comparison")
    p.add_argument("--compare-name", help="a name for this pretrained encoder, added to the comparison's run folders "
                   "and results key (to keep comparisons of several pretraining runs apart)")
    p.add_argument("--compare-freeze", type=int, default=0,
                   help="the pretrained encoder held fixed for the comparison's first N steps while the heads learn "
                        "(random init trains whole from the start: a frozen random encoder would only lose steps)")
    p.add_argument("--compare-seeds", type=int, default=1,
                   help="fine-tune each init with this many seeds (heads' init, data order); the bootstrap "
                        "resamples seeds and utterances")
    p.add_argument("--compare-clips", type=int, help="fine-tune the init comparison on the first N training clips "
                   "only (labelled data scarce, as when pretraining pays)")
    p.add_argument("--lexicon", help="word list for decoding (the grammar's words); also scored without it")
    p.add_argument("--ship", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("AVSPEECH_THREADS", "1")))
    from avspeech.recognition.evaluate import evaluate_recognition
    from avspeech.recognition.train import load_recognizer

    t0 = time.time()
    train, held, two = make_data(args.data, args.train_clips, args.heldout_clips, args.two_speaker_clips,
                                 args.train_manifest, args.heldout_manifest)
    ck = args.checkpoint or train_run(train, args.run or args.data / "run", args.steps, model=args.model,
                                      audio_steps=args.audio_steps, polish_steps=args.polish_steps)
    model = load_recognizer(ck)
    from avspeech.recognition.data import Condition
    from avspeech.recognition.decode import Lexicon
    from avspeech.recognition.transcribe import DecodeOptions

    options = DecodeOptions(lexicon=Lexicon.from_file(args.lexicon, model.tokenizer) if args.lexicon else None)
    if args.compare_only:  # add an init comparison to the results already written
        result = json.loads((RESULTS / "recognition_synthetic.json").read_text())
    else:
        ev = evaluate_recognition(model, held[0], held[1], args.data / "eval", options=options, limit=args.limit)
        faces = per_face(model, two, args.data / "two_speaker_out", options)
        result = {"checkpoint": str(ck), "train_config": json.loads((Path(ck) / "config.json").read_text()).get("train"),
                  "lexicon": args.lexicon, "heldout": ev, "two_speaker": faces,
                  "silent_faces": silent_faces(model, held, options, args.limit)}
        if args.lexicon:
            free = evaluate_recognition(model, held[0], held[1], args.data / "eval_no_lexicon",
                                        conds=[Condition(), Condition("speech", 0.0)], limit=args.limit)
            result["heldout_no_lexicon"] = free["summary"]
        old = RESULTS / "recognition_synthetic.json"
        if old.is_file():  # init comparisons train their own models: they stay valid when another checkpoint is scored
            result.update({k: v for k, v in json.loads(old.read_text()).items() if k.startswith("init_comparison")})
    if args.pretrained:
        from avspeech.recognition.train import train_recognition

        cmp = {}
        few, tag = train, f"compare_{args.compare_mode}_{args.compare_steps}" + (
            f"_lr{args.compare_lr:g}" if args.compare_lr != 2e-3 else "")
        if args.compare_clips:
            few, tag = first_clips(train, args.compare_clips, args.data), f"{tag}_{args.compare_clips}clips"
        pre_tag = tag + (f"_freeze{args.compare_freeze}" if args.compare_freeze else "")  # random init: no freeze
        named = f"_{args.compare_name}" if args.compare_name else ""
        evals: dict[str, list[Path]] = {}
        for name, init in (("pretrained", args.pretrained), ("random", None)):
            for seed in range(args.compare_seeds):  # seed 0 keeps the single-seed run's folder names
                # random init does not depend on the pretrained encoder: its runs are shared between names
                sfx = (named if init else "") + (f"_seed{seed}" if seed else "")
                run = pre_tag if init else tag
                c = train_recognition(first_stage(few, args.data / f"{run}_{name}{sfx}", args.compare_steps, init,
                                                  args.model, args.compare_mode, args.compare_lr, seed,
                                                  args.compare_freeze if init else 0))["checkpoint"]
                d = args.data / f"eval_{run}_{name}{sfx}"
                s = evaluate_recognition(load_recognizer(c), held[0], held[1], d, conds=[Condition()],
                                         modes=(args.compare_mode,), options=options)
                evals.setdefault(name, []).append(d)
                if not seed:
                    cmp[name] = s["summary"]
        cmp["bootstrap"] = paired_bootstrap(evals["pretrained"], evals["random"], MODE_LETTER[args.compare_mode])
        key = ("init_comparison" + (f"_{args.compare_mode}" if args.compare_mode != "audio" else "")
               + (f"_{args.compare_clips}clips" if args.compare_clips else "")
               + (f"_lr{args.compare_lr:g}" if args.compare_lr != 2e-3 else "")
               + (f"_{args.compare_seeds}seeds" if args.compare_seeds > 1 else "")
               + (f"_freeze{args.compare_freeze}" if args.compare_freeze else "") + named)
        result[key] = {
            "mode": args.compare_mode, "steps": args.compare_steps, "lr": args.compare_lr,
            "freeze_steps": args.compare_freeze, "clips": args.compare_clips or len(
            train[1].read_text().splitlines()), "pretrained_checkpoint": args.pretrained, **cmp}
    if not args.compare_only:
        result["seconds"] = round(time.time() - t0, 1)
        result["command"] = "python benchmarks/recognition_synthetic.py " + " ".join(sys.argv[1:])
    elif args.pretrained:
        result[key]["command"] = "python benchmarks/recognition_synthetic.py " + " ".join(sys.argv[1:])
    write_results(result)
    if args.ship:
        SHIP.mkdir(parents=True, exist_ok=True)
        for f in ("model.safetensors", "config.json"):
            shutil.copy(Path(ck) / f, SHIP / f)
    print((RESULTS / "recognition_synthetic.md").read_text())


def write_results(result: dict) -> None:
    from avspeech.recognition.evaluate import markdown_tables

    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = result["heldout"]["summary"]
    (RESULTS / "recognition_synthetic.json").write_text(json.dumps(result, indent=1) + "\n")
    conds = list(dict.fromkeys(r["condition"] for r in summary))
    get = {(r["mode"], r["condition"]): r["wer"] for r in summary}
    lines = ["# Recognition on the synthetic corpus", "", f"`{result.get('command', '')}`", ""]
    lines += [f"**Status:** {result['status']}", ""] if result.get("status") else []
    lines += [
             f"Checkpoint: `{result['checkpoint']}`; held-out set: {result['heldout']['utterances']} utterances "
             "of voices never heard in training; decoding: beam 8, joint CTC/attention (CTC weight 0.5)"
             + (f", word list `{Path(result['lexicon']).name}` (the grammar's {sum(1 for _ in open(result['lexicon']))} "
                "words)" if result.get("lexicon") else "") + ".", "", markdown_tables(summary, conds, ["A", "V", "AV"])]
    if "heldout_no_lexicon" in result:
        free = result["heldout_no_lexicon"]
        lines += ["Without the word list:", "",
                  markdown_tables(free, list(dict.fromkeys(r["condition"] for r in free)), ["A", "V", "AV"])]
    a0, av0 = get.get(("A", "speech+0dB")), get.get(("AV", "speech+0dB"))
    faces = result["two_speaker"]
    clips = sorted({r["clip"] for r in faces.get("rows", [])})
    lines += [f"Training: {json.dumps(result['train_config'])}", ""] if result.get("train_config") else []
    checks = [("clean WER <= 5 % (A)", get[("A", "clean")] <= 5), ("clean WER <= 5 % (AV)", get[("AV", "clean")] <= 5),
              ("AV WER at 0 dB speech >= 30 % lower than A", a0 is not None and av0 <= 0.7 * a0),
              ("per-face WER on two-speaker clips <= 15 %", faces["wer"] <= 15)]
    lines += ["Per face on two-speaker clips (mixture audio + that face's lips, whole `avspeech recognize` path): "
              f"WER {faces['wer']:.1f} %, CER {faces['cer']:.1f} % over {faces['faces']} faces"
              + (f" of {len(clips)} clips ({sum(r['words'] for r in faces['rows'])} words)" if clips else "") + "."]
    if len(clips) > EARLY_CLIPS:  # the smaller set earlier runs were scored on, for comparison with them
        early = [r for r in faces["rows"] if r["clip"] in clips[:EARLY_CLIPS]]
        lines[-1] += (f" On its first {EARLY_CLIPS} clips (the set of earlier runs): "
                      f"{100 * sum(r['word_errors'] for r in early) / sum(r['words'] for r in early):.1f} %.")
    lines += [""]
    if "silent_faces" in result:
        sf = result["silent_faces"]
        lines += [f"Silent faces (a held-out track's first ROI frame held still, another clip's voice as the audio): "
                  f"{sf['empty']} of {sf['faces']} transcripts empty, {sf['words_inserted']} words in all.", ""]
    comparisons = [k for k in result if k.startswith("init_comparison")]
    for key in comparisons:  # init_comparison, and others kept from earlier runs (init_comparison_<tag>)
        ic = result[key]
        m = MODE_LETTER[ic.get("mode", "audio")]
        wer = {name: next(r["wer"] for r in ic[name] if r["mode"] == m) for name in ("pretrained", "random")}
        bs = ic.get("bootstrap")
        seeds = bs.get("seeds", 1) if bs else 1
        if seeds > 1:  # pooled over the fine-tuning seeds
            wer = bs["wer"]
        lines += [f"Init comparison, {ic['steps']} steps of the first stage ({ic.get('mode', 'audio')} only, clean, "
                  f"peak lr {ic.get('lr', 2e-3):g}"
                  + (f"; the pretrained encoder held fixed for the first {ic['freeze_steps']} steps"
                     if ic.get("freeze_steps") else "") + ") on "
                  f"{ic.get('clips', '?')} labelled training clips from each init (pretrained: "
                  f"`{ic.get('pretrained_checkpoint', '?')}`): held-out clean {m} WER {wer['pretrained']:.1f} % "
                  f"from the pretrained encoder, {wer['random']:.1f} % from random init"
                  + (f", pooled over {seeds} fine-tuning seeds (per seed: pretrained "
                     f"{', '.join(f'{x:.1f}' for x in bs['wer_per_seed']['pretrained'])}; random "
                     f"{', '.join(f'{x:.1f}' for x in bs['wer_per_seed']['random'])})" if seeds > 1 else "")
                  + (f" (gain {bs['wer_gain_points']:+.1f} points, 95 % interval {bs['ci95'][0]:+.1f} to "
                     f"{bs['ci95'][1]:+.1f} from a paired bootstrap over "
                     + ("seeds and utterances" if seeds > 1 else "utterances") + ")" if bs else "")
                  + (f" (`{ic['command']}`)" if ic.get("command") else "") + ".", ""]
        # a win is a gain whose bootstrap interval excludes zero (without the interval: any gain)
        won = bs["ci95"][0] > 0 if bs else wer["pretrained"] < wer["random"]
        checks.append((f"pretrained init beats random init ({m}, {ic['steps']} steps, {ic.get('clips', '?')} clips, "
                       f"lr {ic.get('lr', 2e-3):g}" + (f", {seeds} seeds" if seeds > 1 else "")
                       + (f", freeze {ic['freeze_steps']}" if ic.get("freeze_steps") else "") + ")",
                       won))
    if not comparisons:
        lines += ["Init comparison (pretrained encoder vs random init): not run.", ""]
    lines += ["Target | met", "---|---"] + [f"{name} | {'yes' if ok else 'no'}" for name, ok in checks] + [""]
    (RESULTS / "recognition_synthetic.md").write_text("\n".join(lines))
    plot(RESULTS / "recognition_synthetic.png", summary, (result.get("train_config") or {}).get("model", "small"))


if __name__ == "__main__":
    main()
