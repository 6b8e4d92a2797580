"""Decoding options of the recognition commands (``recognize``, ``evaluate recognition``), built from
:class:`avspeech.recognition.transcribe.DecodeOptions`: its defaults are the commands' defaults."""
from __future__ import annotations

import argparse

from avspeech.cli.config_args import add_config_arguments

HELPS = {
    "beam": "CTC prefix beam width (also the n-best rescored by the attention decoder)",
    "prune": "prefixes more than this many nats below a frame's best label are not extended",
    "ctc_weight": "joint decoding: weight of CTC against the attention decoder (1 = CTC only)",
    "greedy": "best-path decoding (fastest, no decoder rescoring); with --search attention: beam 1",
    "search": "ctc: CTC prefix search rescored by the decoder; attention: beam search over the attention decoder "
              "alone (AV-HuBERT seq2seq models always use it; --beam 50 is their released evaluation)",
    "lenpen": "attention search: a hypothesis' score is its log-probability / (tokens + 1) ** lenpen",
    "max_len_a": "attention search: at most max_len_a x frames + max_len_b tokens",
    "max_len_b": "attention search: see --max-len-a",
}


def add_decode_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.recognition.transcribe import DecodeOptions

    g = p.add_argument_group("decoding")
    add_config_arguments(g, DecodeOptions, exclude=("nbest", "lexicon"), helps=HELPS,
                         choices={"search": ("ctc", "attention")})
    g.add_argument("--lexicon", help="word list (one word per line): decode only sequences of these words")


def decode_options(args: argparse.Namespace, model):
    """The :class:`DecodeOptions` of the parsed options for ``model`` (whose tokenizer reads the lexicon)."""
    from avspeech.errors import InputError
    from avspeech.recognition.decode import Lexicon
    from avspeech.recognition.transcribe import DecodeOptions

    if not 0.0 <= args.ctc_weight <= 1.0:
        raise InputError(f"--ctc-weight must be in [0, 1], got {args.ctc_weight}")
    if args.beam < 1:
        raise InputError(f"--beam must be >= 1, got {args.beam}")
    if args.max_len_a < 0 or args.max_len_b < 0:
        raise InputError(f"--max-len-a and --max-len-b must be >= 0, got {args.max_len_a} and {args.max_len_b}")
    from avspeech.recognition.seq2seq import is_seq2seq

    seq2seq = is_seq2seq(model)
    if args.lexicon and (seq2seq or args.search == "attention"):
        raise InputError("--lexicon constrains the CTC prefix search; it does not apply to attention search "
                         "(AV-HuBERT seq2seq models have no CTC head)")
    lex = Lexicon.from_file(args.lexicon, model.tokenizer) if args.lexicon else None
    return DecodeOptions(beam=args.beam, nbest=args.beam, prune=args.prune, ctc_weight=args.ctc_weight, lexicon=lex,
                         greedy=args.greedy, search="attention" if seq2seq else args.search, lenpen=args.lenpen,
                         max_len_a=args.max_len_a, max_len_b=args.max_len_b)
