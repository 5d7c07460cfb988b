"""``--set key=value`` overrides of the config dataclasses, type-checked against their fields.

Every run of ``tsvq train`` / ``tsvq prior`` is a config dataclass (:class:`tsvq.train.RunConfig`,
:class:`tsvq.generate.PriorConfig`, a model's config such as :class:`tsvq.models.VQVAEConfig`);
the command line changes its fields with ``key=value`` items. A value is converted to the field's
annotated type here, so a run never starts (or writes a config) with a value of the wrong type:

* ``int``: ``64``, also written as a float with no fractional part (``1e3``);
* ``float``: any number, including ``1e-4`` (which YAML alone reads as a string); finite only;
* ``bool``: ``true`` / ``false`` (YAML spellings: ``yes``/``no``, ``on``/``off``);
* ``str``: the text as given; ``int | str`` (Lightning's ``devices``): an int when it is one;
* ``tuple[int, ...]``: a YAML list, ``[1024, 1024, 1024]``;
* ``X | None``: ``none`` / ``null`` / ``~`` give None.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing

import yaml

_NONE_TEXT = ("none", "null", "~", "")


def _describe(tp) -> str:
    names = {int: "an int", float: "a number", bool: "true or false", str: "text", type(None): "none"}
    if tp in names:
        return names[tp]
    return "a list" if typing.get_origin(tp) is tuple else str(tp).replace("typing.", "")


def _convert(text: str, tp, key: str):
    """``text`` as a value of type ``tp``; ValueError naming ``key`` when it is not one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in _NONE_TEXT:
            return None
        rest = [a for a in args if a is not type(None)]
        for a in sorted(rest, key=lambda a: a is str):  # str (takes anything) last
            try:
                return _convert(text, a, key)
            except ValueError:
                pass
        raise ValueError(f"--set {key}: expected {' or '.join(_describe(a) for a in args)}, got {text!r}")
    if tp is str:
        return text
    return _from_yaml(yaml.safe_load(text) if text.strip() else None, tp, key, text)


def _from_yaml(value, tp, key: str, text: str):
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"--set {key}: expected true or false, got {text!r}")
    if tp in (int, float):
        if isinstance(value, str):  # "1e-4", "1e3": numbers YAML 1.1 reads as strings
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"--set {key}: expected {'an int' if tp is int else 'a number'}, got {text!r}")
        if not math.isfinite(value):
            raise ValueError(f"--set {key}: expected a finite number, got {text!r}")
        if tp is int:
            if value != int(value):
                raise ValueError(f"--set {key}: expected an int, got {text!r}")
            return int(value)
        return float(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"--set {key}: expected a non-empty list such as [256, 256], got {text!r}")
        return tuple(_from_yaml(v, args[0], key, text) for v in value)
    raise TypeError(f"--set {key}: the field has type {_describe(tp)}, which cannot be set from the command line")


def field_types(cls) -> dict[str, object]:
    """``{field name: annotated type}`` of a config dataclass (annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def apply_sets(sets: list[str] | None, run: dict, run_cls, run_fields: tuple[str, ...], model_cfg: dict,
               model_cls, model_label: str) -> None:
    """Apply ``key=value`` items to the run dict (keys in ``run_fields``, typed by the dataclass
    ``run_cls``) or the model-config dict (fields of the dataclass ``model_cls``), in place.

    Raises:
        ValueError: an item without ``=``, an unknown key (the message lists the valid ones), or a
            value that is not of the field's type (see the module docstring for the accepted forms).
    """
    run_types = {k: v for k, v in field_types(run_cls).items() if k in run_fields}
    model_types = field_types(model_cls)
    for item in sets or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        if key in run_types:
            run[key] = _convert(text, run_types[key], key)
        elif key in model_types:
            model_cfg[key] = _convert(text, model_types[key], key)
        else:
            raise ValueError(f"unknown --set key {key!r}; run keys: {list(run_fields)}, "
                             f"{model_label} keys: {sorted(model_types)}")


def check_optimisation(cfg) -> None:
    """Range checks shared by the run configs: ``epochs >= 1``, ``max_steps`` -1 (no cap) or >= 1,
    ``batch_size >= 1``, ``lr > 0``, ``weight_decay >= 0`` (finite). Raises ValueError naming the field."""
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.max_steps != -1 and cfg.max_steps < 1:
        raise ValueError(f"max_steps must be -1 (no cap) or >= 1, got {cfg.max_steps}")
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if not 0.0 < cfg.lr < math.inf:
        raise ValueError(f"lr must be a finite number > 0, got {cfg.lr}")
    if not 0.0 <= cfg.weight_decay < math.inf:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {cfg.weight_decay}")
