"""Checkpoints: weights in safetensors plus a JSON config, loadable without the training code's state.

A checkpoint folder holds ``model.safetensors`` and ``config.json`` (and, for training runs, ``state.pt`` with
optimiser, scheduler, step, RNG and data position, read with ``torch.load(weights_only=True)``). safetensors and
JSON cannot run code, so a checkpoint from an untrusted source is safe to open; a malformed one raises an
:class:`InputError` naming the file and the cause. Folders are written under a temporary name and renamed.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avspeech.errors import InputError, UnsafeCheckpointError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
STATE = "state.pt"


def save_checkpoint(path: str | Path, model: nn.Module, config: dict[str, Any],
                    state: dict[str, Any] | None = None, files: dict[str, bytes] | None = None) -> Path:
    """Write ``path/`` atomically (a sibling temp folder renamed into place; an old ``path`` is replaced);
    ``files``: more files of the folder (name -> content)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
    (tmp / CONFIG).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    if state is not None:
        torch.save(state, tmp / STATE)
    for name, content in (files or {}).items():
        (tmp / name).write_bytes(content)
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
    return path


def load_config(path: str | Path) -> dict[str, Any]:
    f = Path(path) / CONFIG
    if not Path(path).exists():
        raise InputError("checkpoint not found", path)
    if is_official_file(path):
        raise InputError("this is a PyTorch file (as official AV-HuBERT checkpoints are; nothing of it was "
                         "loaded), not a checkpoint folder of avspeech: an AV-HuBERT file can be given as "
                         "--init-from to start a model from its encoder, or converted with 'avspeech convert "
                         "avhubert FILE OUT_DIR'", path)
    if not f.is_file():
        raise InputError(f"not a checkpoint folder: {CONFIG} is missing", path)
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"config is not valid JSON ({e})", f) from e
    if not isinstance(cfg, dict):
        raise InputError("config must be a JSON object", f)
    return cfg


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    f = Path(path) / WEIGHTS
    if not f.is_file():
        raise InputError(f"not a checkpoint folder: {WEIGHTS} is missing", path)
    try:
        return load_file(str(f))
    except Exception as e:  # safetensors raises SafetensorError/OSError on a damaged file
        raise InputError(f"weights cannot be read as safetensors ({e})", f) from e


def load_into(model: nn.Module, weights: dict[str, torch.Tensor], source: str | Path, prefix: str = "") -> None:
    """Load ``weights`` (keys under ``prefix``) into ``model``, naming missing, unexpected and mis-shaped keys."""
    sd = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd
              and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise InputError(f"weights do not fit the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected {unexpected[:5]}, wrong shapes {shapes[:5]}", source)
    model.load_state_dict(sd)


def load_state(path: str | Path) -> dict[str, Any]:
    f = Path(path) / STATE
    if not f.is_file():
        raise InputError(f"{STATE} is missing: this checkpoint has weights only and cannot resume training", path)
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, or an object that weights_only refuses
        from avspeech.model.avhubert.container import torch_load_error

        err = torch_load_error(f, e, "a training state holds (tensors, numbers, strings, containers)")
        if isinstance(err, UnsafeCheckpointError):
            raise UnsafeCheckpointError(f"training state: {err.cause}", f, err.refused) from None
        if isinstance(err, InputError):
            raise InputError(f"training state cannot be read: {err.cause}", f) from None
        raise


def is_official_file(path: str | Path) -> bool:
    from avspeech.model.avhubert.container import is_official_checkpoint

    return Path(path).is_file() and is_official_checkpoint(path)


def encoder_config_of(path: str | Path):
    """The :class:`~avspeech.model.config.EncoderConfig` of any checkpoint of the package (pretraining,
    separation, recognition) or of an official AV-HuBERT file, so a head can start from any of them."""
    from avspeech.model.config import EncoderConfig

    if is_official_file(path):
        from avspeech.model.avhubert import encoder_config, read_official

        return encoder_config(read_official(path))
    c = load_config(path)
    for section in ("encoder", "separator", "recognizer"):
        if section in c:
            try:
                return EncoderConfig.from_dict(c[section] if section == "encoder" else c[section]["encoder"])
            except (TypeError, ValueError, KeyError) as e:
                raise InputError(f"bad encoder config ({e})", Path(path) / CONFIG) from e
    raise InputError("config has no 'encoder', 'separator' or 'recognizer' section", Path(path) / CONFIG)


def encoder_init(path: str | Path):
    """(EncoderConfig, encoder weights under AVEncoder's names) of any checkpoint folder of the package or of an
    official AV-HuBERT ``.pt`` (converted on the fly; :mod:`avspeech.model.avhubert`), read once."""
    if is_official_file(path):
        from avspeech.model.avhubert import load

        m = load(path)
        return m.config, m.encoder.state_dict()
    cfg = encoder_config_of(path)
    weights = load_weights(path)
    return cfg, {k[len("encoder."):]: v for k, v in weights.items() if k.startswith("encoder.")}


def load_encoder(path: str | Path):
    """The :class:`~avspeech.model.encoder.AVEncoder` of a checkpoint (pretraining or fine-tuning, ours or an
    official AV-HuBERT file), in eval mode."""
    from avspeech.model.encoder import AVEncoder

    cfg, weights = encoder_init(path)
    encoder = AVEncoder(cfg)
    load_into(encoder, weights, path)
    return encoder.eval()


def head_config(path: str | Path, kind: str, key: str, config_cls: Any) -> tuple[Any, dict[str, Any]]:
    """(the head's config, checked field by field, and the whole ``config.json``) of a head checkpoint folder of
    this ``kind``; a bad value is an InputError naming the file and the field, before anything is built."""
    c = load_config(path)
    if c.get("kind") != kind or key not in c:
        raise InputError(f"not a {kind} checkpoint (kind {c.get('kind')!r}); train one with "
                         f"'avspeech finetune {kind}'", path)
    try:
        return config_cls.from_dict(c[key]), c
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(f"bad {key} config ({e})", Path(path) / CONFIG) from e


def load_head(path: str | Path, kind: str, key: str, config_cls: Any, model_cls: Any) -> nn.Module:
    """The model of a head checkpoint folder (``config.json`` of this ``kind`` holding the head's config under
    ``key``, weights in safetensors; no code runs), in eval mode; errors name the folder or file."""
    cfg, _ = head_config(path, kind, key, config_cls)
    try:
        model = model_cls(cfg)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"bad {key} config ({e})", Path(path) / CONFIG) from e
    load_into(model, load_weights(path), path)
    return model.eval()
