"""``avspeech demo``: the main job end to end on the built-in default (a small synthetic two-speaker set).

Each stage of the package extends it; today: synthesize two-speaker clips and draw a contact sheet, pretrain a
tiny encoder (synthetic single-speaker clips -> preprocess -> MFCC clusters -> masked prediction) and plot its
training curves, then separate the speakers of a two-speaker clip with the separation checkpoint that ships and
print each face's SI-SDR improvement against the clip's ground truth, and finally transcribe each speaker of that
clip (mixture audio + that face's lips) with the recognition checkpoint that ships and print each face's words
with timestamps and its word error rate against the sentence the face says.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="avspeech_demo", help="output folder (default ./avspeech_demo)")
    p.add_argument("--clips", type=int, default=4, help="clips to synthesize (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--pretrain-clips", type=int, default=16, help="single-speaker clips for pretraining (default 16)")
    p.add_argument("--pretrain-steps", type=int, default=120, help="pretraining steps (default 120; 0 skips)")
    p.add_argument("--no-separate", action="store_true", help="skip the separation stage")
    p.add_argument("--no-recognize", action="store_true", help="skip the recognition stage")


def run(args: argparse.Namespace) -> int:
    from avspeech.batch import report_failures
    from avspeech.io.media import read_video_frames
    from avspeech.plots import contact_sheet, sheet_frames
    from avspeech.synth.corpus import SynthConfig, clip_id, synthesize_corpus

    out = Path(args.out)
    corpus = out / "synth"
    stages = 2 + (args.pretrain_steps > 0) + (not args.no_separate) + (not args.no_recognize)
    print(f"[1/{stages}] synthesizing {args.clips} two-speaker clips into {corpus}")
    config = SynthConfig(speakers=2, seed=args.seed)
    made, failures, skipped = synthesize_corpus(corpus, config, args.clips, resume=True,
                                                workers=min(os.cpu_count() or 1, args.clips))
    if failures:
        print(report_failures(failures, args.clips - skipped, "clips"))
        return 1
    import json

    clips = []
    for i in range(args.clips):
        sc = json.loads((corpus / f"{clip_id(i)}.json").read_text())
        shown = sheet_frames(sc["num_frames"])  # only the frames the contact sheet shows are decoded
        clips.append((dict(zip(shown, read_video_frames(corpus / sc["video"], shown)[0])), sc))
        spk = "; ".join(f"face {s['index']} ({s['face_source']}{', flipped' if s['flip'] else ''}, {s['voice']}, "
                        f"{s['gain_db']:+.1f} dB) says \"{s['text']}\"" for s in sc["speakers"])
        print(f"  {sc['id']}: {sc['num_frames']} frames ({sc['num_frames'] / sc['fps']:.2f} s) at {sc['fps']} fps, "
              f"{sc['num_samples']} samples at {sc['sample_rate']} Hz; {spk}")
    sheet = out / "contact_sheet.png"
    print(f"[2/{stages}] contact sheet (face boxes green, mouth regions red): {sheet}")
    contact_sheet(sheet, clips)
    if args.pretrain_steps > 0:
        _pretrain(args, out, stages)
    if not args.no_separate:
        _separate(out, corpus / f"{clip_id(0)}.mp4", stages - (not args.no_recognize), stages)
    if not args.no_recognize:
        _recognize(out, corpus / f"{clip_id(0)}.mp4", stages)
    print(f"done: {out}")
    return 0


def _pretrain(args: argparse.Namespace, out: Path, stages: int) -> None:
    import json

    from avspeech.plots import training_curves
    from avspeech.synth.splits import prepare_default_data
    from avspeech.pretrain.train import TrainConfig, train

    print(f"[3/{stages}] pretraining a tiny encoder: {args.pretrain_clips} single-speaker clips -> preprocess -> "
          f"MFCC clusters -> {args.pretrain_steps} steps of masked prediction")
    manifest, labels = prepare_default_data(out / "pretrain_data", clips=args.pretrain_clips, clusters=25,
                                            seed=args.seed)
    info = json.loads(Path(str(labels) + ".json").read_text())
    if "phone_purity" in info:
        print(f"  MFCC clusters vs synthetic phones: cluster purity {info['cluster_purity']:.2f}, "
              f"phone purity {info['phone_purity']:.2f}")
    run = out / "pretrain"
    cfg = TrainConfig(manifest=str(manifest), labels=str(labels), out=str(run), steps=args.pretrain_steps,
                      lr=2e-3, warmup=max(1, args.pretrain_steps // 10), batch_frames=500,
                      save_every=max(args.pretrain_steps // 2, 1), log_every=5, seed=args.seed)
    summary = train(cfg)
    curves = out / "pretrain_curves.png"
    training_curves(curves, run / "log.csv", "tiny encoder, masked prediction of MFCC clusters")
    last = summary["last"]
    print(f"  step {summary['step']}: loss {last.get('loss')}, masked accuracy {last.get('acc_masked')}, "
          f"unmasked {last.get('acc_unmasked')}; checkpoint {summary['checkpoint']}")
    print(f"  training curves: {curves}")


def _separate(out: Path, clip: Path, stage: int, stages: int) -> None:
    from avspeech.separation.separate import separate_clip
    from avspeech.synth.score import synthetic_improvements

    target = out / "separated"
    print(f"[{stage}/{stages}] separating the speakers of {clip.name} (checkpoint trained on synthetic data) "
          f"into {target}")
    entries = separate_clip(clip, target)
    for e, gain in zip(entries, synthetic_improvements(clip, target)):
        print(f"  speaker_{e['track']}.wav ({e['start_s']:.2f}-{e['end_s']:.2f} s): SI-SDRi {gain['si_sdri']:+.1f} dB "
              f"(SI-SDR {gain['si_sdr']:.1f} dB against the face's clean voice, mixture {gain['si_sdr_mix']:.1f} dB)")
    print(f"  spectrograms: {target / 'spectrograms.png'}; per face: {target / 'speakers.json'}")


def _recognize(out: Path, clip: Path, stages: int) -> None:
    from avspeech.recognition.decode import Lexicon
    from avspeech.recognition.recognize import default_checkpoint, load_model, recognize_clip
    from avspeech.synth.score import synthetic_word_errors
    from avspeech.recognition.transcribe import DecodeOptions

    target = out / "recognized"
    word_list = default_checkpoint() / "words.txt"  # the synthetic grammar's 51 words
    print(f"[{stages}/{stages}] transcribing each speaker of {clip.name} (mixture audio + that face's lips; "
          f"checkpoint trained on synthetic data, decoding with the word list {word_list.name}) into {target}")
    model = load_model()
    entries = recognize_clip(clip, target, model, options=DecodeOptions(lexicon=Lexicon.from_file(word_list,
                                                                                                  model.tokenizer)))
    for e, err in zip(entries, synthetic_word_errors(clip, entries)):
        words = " ".join(f"{w['word']}[{w['start']:.2f}-{w['end']:.2f}]" for w in e["words"]) or "(silent)"
        rate = 100.0 * err["word_errors"] / max(err["words"], 1)
        print(f"  speaker_{e['track']} ({e['start_s']:.2f}-{e['end_s']:.2f} s): \"{e['text']}\" (WER {rate:.0f}% "
              f"against \"{err['reference']}\")\n    {words}")
    print(f"  per face: {target / 'transcripts.json'}, subtitles: {target / 'transcripts.srt'}")
