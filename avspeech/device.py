"""Where a model runs for inference and evaluation: ``--device auto|cpu|cuda|cuda:N``.

``auto`` is the first CUDA GPU when torch sees one, else the CPU. Training commands take the same names through
their configs (:func:`avspeech.training.resolve_device`).
"""
from __future__ import annotations

import argparse

from avspeech.errors import InputError

DEVICE_HELP = ("where the model runs: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, cuda:1, ... "
               "(default auto)")


def add_device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def inference_device(spec="auto"):
    """The ``torch.device`` ``spec`` (a name or a device) names; an :class:`InputError` saying what to use for a
    name torch does not know or a CUDA device this torch cannot see. (torch is imported here, not with the
    module: the command line's parsers use this module.)"""
    import torch

    from avspeech.training import resolve_device

    try:
        device = resolve_device(str(spec))
    except RuntimeError as e:
        raise InputError(f"unknown device {str(spec)!r} ({str(e).splitlines()[0]}); use auto, cpu or cuda") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device} asked for CUDA, but this torch sees no CUDA GPU; use cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device
