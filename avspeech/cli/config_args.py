"""Command-line options built from a config dataclass, and the dataclass built back from the parsed options.

The dataclass is the one place a default lives: each field becomes ``--kebab-case-name`` with

- its type from the annotation (``X | None`` takes an X and defaults to None; ``Literal[...]`` gives choices),
- ``bool`` as a ``--flag/--no-flag`` pair (:class:`argparse.BooleanOptionalAction`),
- ``tuple[T, T]`` as ``nargs=2`` and ``tuple[T, ...]`` as one or more values (a ``tuple[str, ...]`` value may
  also be comma-separated, ``--voices a,b``),
- its help from ``field(metadata={"help": ...})``, the default appended, and ``metadata["choices"]`` if any.

A field without a default is a required option, unless the command fills it itself (``optional``), e.g. the
built-in synthetic data of a command run without ``--manifest``.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Iterable, Mapping, TypeVar

T = TypeVar("T")


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_fields(cls: type, exclude: Iterable[str] = ()) -> list[dataclasses.Field]:
    """The fields of ``cls`` that become options (in declaration order)."""
    skip = set(exclude)
    unknown = skip - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    return [f for f in dataclasses.fields(cls) if f.name not in skip and f.init]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"only X | None unions become options, got {tp}")
        return args[0]
    return tp


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _split_commas(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def _option_kwargs(f: dataclasses.Field, tp: Any, default: Any) -> dict[str, Any]:
    tp = _unwrap_optional(tp)
    kw: dict[str, Any] = {}
    if tp is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(tp) is typing.Literal:
        values = typing.get_args(tp)
        kw.update(type=type(values[0]), choices=values)
    elif typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            kw.update(type=args[0], nargs="+")
        else:
            if len(set(args)) != 1:
                raise TypeError(f"{f.name}: only tuples of one element type become options, got {tp}")
            kw.update(type=args[0], nargs=len(args))
            kw["metavar"] = args[0].__name__.upper()
    elif tp in (int, float, str):
        kw["type"] = tp
    else:
        raise TypeError(f"{f.name}: no command-line form for {tp}")
    if "choices" in f.metadata:
        kw["choices"] = tuple(f.metadata["choices"])
    return kw


def add_config_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                         exclude: Iterable[str] = (), optional: Mapping[str, str] | None = None,
                         helps: Mapping[str, str] | None = None,
                         choices: Mapping[str, Iterable[Any]] | None = None) -> None:
    """Add one option per field of the dataclass ``cls``.

    ``optional``: fields without a default that the command fills when the option is not given, with the help
    that says how. ``helps``: help texts that replace the fields' own (or stand in for a dataclass whose fields
    carry none). ``choices``: allowed values kept elsewhere (e.g. the encoder presets)."""
    optional, helps, choices = dict(optional or {}), dict(helps or {}), dict(choices or {})
    hints = typing.get_type_hints(cls)
    for f in config_fields(cls, exclude):
        default = _default(f)
        kw = _option_kwargs(f, hints[f.name], default)
        if f.name in choices:
            kw["choices"] = tuple(choices[f.name])
        text = helps.get(f.name) or f.metadata.get("help")
        if text is None:
            raise ValueError(f"{cls.__name__}.{f.name} has no help text (field metadata 'help')")
        if default is dataclasses.MISSING:
            if f.name in optional:
                kw["default"] = None
                text = optional[f.name]
            else:
                kw["required"] = True
        else:
            kw["default"] = default
            if default is not None:
                text += f" (default: {_show(default)})"
        if kw.get("nargs") == "+" and kw.get("type") is str:
            kw["action"] = _CommaListAction
        action = parser.add_argument(option_name(f.name), dest=f.name, **kw)
        action.help = text.replace("%", "%%")  # set after construction: argparse adds nothing of its own


class _CommaListAction(argparse.Action):
    """``--voices a b`` and ``--voices a,b`` both give ``("a", "b")``."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, _split_commas(values))


def config_from_args(cls: type[T], args: argparse.Namespace, exclude: Iterable[str] = (), **given: Any) -> T:
    """The dataclass ``cls`` from parsed options: every option of :func:`add_config_arguments` (tuple options as
    tuples), with ``given`` values taking precedence (fields the command filled itself)."""
    values = {}
    for f in config_fields(cls, exclude):
        if f.name in given:
            continue
        if not hasattr(args, f.name):
            raise ValueError(f"no option parsed for {cls.__name__}.{f.name}")
        v = getattr(args, f.name)
        values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values, **given)
