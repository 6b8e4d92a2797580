"""Field-by-field checks of model configs, run before any module is built.

A checkpoint's ``config.json`` is untrusted input: a NaN dropout, ``heads: 0`` or ``layers: 100000`` must give a
one-line error naming the field and the value, not a traceback from deep inside PyTorch or an allocation of
petabytes. The configs' ``__post_init__`` call these checks, so a config built in Python or from the command line
is checked the same way; checkpoint loaders add the file's name (:func:`avspeech.model.checkpoint.load_head`).

Size budget: the parameter count a config implies is computed in closed form first (:func:`encoder_parameters`)
and refused above :data:`MAX_PARAMETERS`, 2 billion (AV-HuBERT Large has about 0.3 billion); depth is capped at
:data:`MAX_LAYERS` and widths at :data:`MAX_WIDTH`, far above the field's models.
"""
from __future__ import annotations

import math
from typing import Any

MAX_PARAMETERS = 2_000_000_000
MAX_LAYERS = 64  # AV-HuBERT Large: 24
MAX_WIDTH = 65_536  # any single width (model dim, FFN, BLSTM, n_fft)


def positive_int(name: str, value: Any, *, minimum: int = 1, maximum: int = MAX_WIDTH) -> int:
    """``value`` as an int in [minimum, maximum]; booleans and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be in [{minimum}, {maximum}], got {value!r}")
    return value


def finite_float(name: str, value: Any, *, minimum: float = -math.inf, maximum: float = math.inf,
                 open_minimum: bool = False) -> float:
    """``value`` as a finite number in [minimum, maximum] (``(minimum, maximum]`` with ``open_minimum``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    low_ok = value > minimum if open_minimum else value >= minimum
    if not (low_ok and value <= maximum):
        bracket = "(" if open_minimum else "["
        raise ValueError(f"{name} must be in {bracket}{minimum}, {maximum}], got {value!r}")
    return float(value)


def probability(name: str, value: Any) -> float:
    return finite_float(name, value, minimum=0.0, maximum=1.0)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def int_tuple(name: str, value: Any, length: int) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise ValueError(f"{name} must be a list of {length} integers, got {value!r}")
    return tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def divisible(name: str, value: int, by_name: str, by: int) -> None:
    if value % by:
        raise ValueError(f"{name}={value} must be divisible by {by_name}={by}")


def within_budget(what: str, count: int) -> None:
    if count > MAX_PARAMETERS:
        raise ValueError(f"the {what} config implies {count:,} parameters, more than the limit of "
                         f"{MAX_PARAMETERS:,} (AV-HuBERT Large has about 300 million)")


def transformer_parameters(layers: int, dim: int, ffn: int) -> int:
    """Parameters of ``layers`` pre-LN transformer layers: attention (4 D x D + 4 D), FFN (2 D F + F + D), 2 norms."""
    return layers * (4 * dim * dim + 4 * dim + 2 * dim * ffn + ffn + dim + 4 * dim)


def encoder_parameters(cfg: Any) -> int:
    """Closed-form parameter count of an :class:`~avspeech.model.config.EncoderConfig`'s encoder (within a few
    per cent: biases and norms of the front-ends are counted roughly); for the size budget only."""
    w = cfg.lip_widths
    lips = 5 * 7 * 7 * w[0]  # the 3D stem
    prev = w[0]
    for width in w:  # ResNet-18 trunk: 2 basic blocks per stage (two 3x3 convs each, a 1x1 shortcut when widening)
        lips += 2 * (9 * prev * width + 9 * width * width) + prev * width
        prev = width
    lips += w[-1] * cfg.dim
    audio = cfg.audio_dim * cfg.dim
    pos = cfg.dim * (cfg.dim // cfg.pos_conv_groups) * cfg.pos_conv_kernel
    fusion = cfg.fusion_layers * 2 * (4 * cfg.dim * cfg.dim + 2 * cfg.dim * cfg.ffn)
    fused_dim = 2 * cfg.dim * cfg.dim
    return lips + audio + pos + fusion + fused_dim + transformer_parameters(cfg.layers, cfg.dim, cfg.ffn)
