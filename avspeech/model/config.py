"""Encoder configuration: a typed dataclass with named presets: ``tiny`` (CPU tests), ``small`` (the shipped
synthetic-data heads: trains on 2 CPU cores in an hour), ``base`` and ``large`` (the field's sizes)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready values (tuples as lists, nested configs as objects)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(asdict(cfg))


def config_from_dict(cls: Any, d: Any, what: str) -> Any:
    """The config dataclass ``cls`` from its JSON object ``d``: unknown keys refused, lists of tuple fields made
    tuples, a nested ``encoder`` object made an :class:`EncoderConfig`; the dataclass checks the values."""
    if not isinstance(d, dict):
        raise ValueError(f"the {what} config must be a JSON object, got {type(d).__name__}")
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} config keys: {sorted(unknown)}")
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    if "encoder" in d and cls is not EncoderConfig:
        d["encoder"] = EncoderConfig.from_dict(d["encoder"])
    return cls(**d)


@dataclass(frozen=True)
class EncoderConfig:
    dim: int = 768  # D
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    dropout: float = 0.1
    lip_widths: tuple[int, ...] = (64, 128, 256, 512)  # ResNet-18 stage widths; the 3D conv has widths[0]
    audio_dim: int = 104
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    fusion: str = "cross"  # "cross": cross-modal attention blocks, then concat; "concat": AV-HuBERT's
    fusion_layers: int = 1
    fusion_window: float | None = None  # seconds; None attends over the whole clip
    rate: float = 25.0  # token rate of both streams, Hz
    # "avspeech": the shipped checkpoints' layout (ReLU trunk, LayerNorm after the positional convolution and
    # at the end); "avhubert": AV-HuBERT's exact layout (PReLU trunk, LayerNorm over the concatenated streams
    # before the fusion projection, fairseq's encoder: one LayerNorm, after the positional convolution when
    # ``norm_first`` is False, after the last layer when it is True). Configs saved before this field load as
    # "avspeech", so they keep computing what they computed.
    layout: str = "avspeech"
    norm_first: bool = True  # pre-LN transformer layers (AV-HuBERT's layer_norm_first)
    # the preprocessing the model expects; commands read them from the model (shared/DESIGN.md)
    audio_features: str = "avspeech"  # avspeech.features.audio: "avspeech" (kaldi fbank) or "avhubert" (logfbank)
    roi_geometry: str = "avspeech"  # mouth ROI geometry of avspeech preprocess: "avspeech" or "avhubert"

    def __post_init__(self) -> None:
        from avspeech.model import validate as v

        v.positive_int("dim", self.dim)
        v.positive_int("layers", self.layers, minimum=0, maximum=v.MAX_LAYERS)
        v.positive_int("heads", self.heads, maximum=self.dim if isinstance(self.dim, int) else v.MAX_WIDTH)
        v.positive_int("ffn", self.ffn)
        v.probability("dropout", self.dropout)
        v.int_tuple("lip_widths", self.lip_widths, 4)
        v.positive_int("audio_dim", self.audio_dim)
        v.positive_int("pos_conv_kernel", self.pos_conv_kernel, maximum=1024)
        v.positive_int("pos_conv_groups", self.pos_conv_groups, maximum=self.dim)
        v.choice("fusion", self.fusion, ("cross", "concat"))
        v.positive_int("fusion_layers", self.fusion_layers, minimum=0, maximum=v.MAX_LAYERS)
        if self.fusion_window is not None:
            v.finite_float("fusion_window", self.fusion_window, minimum=0.0, maximum=3600.0, open_minimum=True)
        v.finite_float("rate", self.rate, minimum=0.0, maximum=1000.0, open_minimum=True)
        v.choice("layout", self.layout, ("avspeech", "avhubert"))
        v.boolean("norm_first", self.norm_first)
        v.choice("audio_features", self.audio_features, ("avspeech", "avhubert"))
        v.choice("roi_geometry", self.roi_geometry, ("avspeech", "avhubert"))
        if self.layout == "avhubert" and self.fusion != "concat":
            raise ValueError(f"layout 'avhubert' fuses by concatenation: fusion must be 'concat', got {self.fusion!r}")
        if self.layout == "avspeech" and not self.norm_first:
            raise ValueError("layout 'avspeech' has pre-LN layers only: norm_first must be true")
        v.divisible("dim", self.dim, "heads", self.heads)
        v.divisible("dim", self.dim, "pos_conv_groups", self.pos_conv_groups)
        v.within_budget("encoder", v.encoder_parameters(self))

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EncoderConfig":
        return config_from_dict(cls, d, "encoder")

    def with_(self, **changes) -> "EncoderConfig":
        return replace(self, **changes)


PRESETS: dict[str, EncoderConfig] = {
    "tiny": EncoderConfig(dim=64, layers=2, heads=4, ffn=128, dropout=0.0, lip_widths=(8, 16, 32, 64),
                          pos_conv_kernel=16, pos_conv_groups=4),
    "small": EncoderConfig(dim=128, layers=4, heads=4, ffn=256, dropout=0.0, lip_widths=(8, 16, 32, 64),
                           pos_conv_kernel=16, pos_conv_groups=4),
    "base": EncoderConfig(),
    "large": EncoderConfig(dim=1024, layers=24, heads=16, ffn=4096),
    # AV-HuBERT's exact layout and inputs at its two sizes (what a converted official checkpoint uses)
    "avhubert_base": EncoderConfig(fusion="concat", layout="avhubert", audio_features="avhubert",
                                   roi_geometry="avhubert"),
    "avhubert_large": EncoderConfig(dim=1024, layers=24, heads=16, ffn=4096, fusion="concat", layout="avhubert",
                                    audio_features="avhubert", roi_geometry="avhubert"),
}


def preset(name: str, **overrides) -> EncoderConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name].with_(**overrides)
