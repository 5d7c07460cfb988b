"""Run configs: :class:`RunConfig` (stage 1), :class:`PriorConfig` (the MaskGIT prior), their
presets, and ``--set key=value`` overrides type-checked against the dataclass fields.

A run is a config dataclass whose ``model_config`` is the model's own config dataclass (such as
:class:`tsvq.models.VQVAEConfig` or :class:`tsvq.models.MaskGITConfig`); both are dumped to the
run's ``config.yaml`` and read back through the same classes. The command line changes their
fields with ``key=value`` items. A value is converted to the field's
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
from dataclasses import dataclass, field

import yaml

from .models import MODELS, TOKENIZERS, TRAINABLE, MaskGITConfig

_NONE_TEXT = ("none", "null", "~", "")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


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
    ``batch_size >= 1``, ``lr > 0``, ``weight_decay >= 0`` (finite), ``checkpoint_every >= 1``,
    ``devices`` an int >= 1, a list or a Lightning word. Raises ValueError naming the field."""
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
    if cfg.checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 (optimiser steps), got {cfg.checkpoint_every}")
    if cfg.accelerator not in ACCELERATORS:
        raise ValueError(f"accelerator must be one of {list(ACCELERATORS)}, got {cfg.accelerator!r}")
    devices = cfg.devices
    if isinstance(devices, str) and devices != "auto":
        try:  # Lightning's spellings: "2", "0,1", "-1"
            [int(d) for d in devices.split(",") if d.strip()]
        except ValueError:
            raise ValueError(f"devices must be an int, a comma-separated list of device indices or 'auto', "
                             f"got {devices!r}") from None
    elif isinstance(devices, int) and devices < -1 or devices == 0:
        raise ValueError(f"devices must be >= 1 (or -1: all), got {devices}")


# Training presets: "quick" finishes GunPoint in minutes on a 2-core CPU (500 epochs, at most 500
# optimiser steps, so larger datasets stop earlier); "paper" is the NC-VQVAE tokenizer setting, with
# the decoder of the TimeVQVAE code that NC-VQVAE copies (measured in docs/ncvqvae-reference.md);
# "timevqvae" is the tokenizer behind the TimeVQVAE paper's FID / IS / CAS table (LF/HF two-branch
# split, EMA decay 0.8, 2000 epochs), tokenizers only.
PRESETS: dict[str, dict] = {
    "quick": {"epochs": 500, "max_steps": 500, "batch_size": 128, "model": {"projector_widths": [1024, 1024, 1024]}},
    "paper": {"epochs": 1000, "batch_size": 128, "model": {"decoder": "timevqvae"}},
    "timevqvae": {"epochs": 2000, "batch_size": 128, "model": {"two_branch": True, "decay": 0.8}},
}
TRAIN_FIELDS = ("epochs", "max_steps", "batch_size", "lr", "weight_decay", "scaling", "accelerator", "devices", "precision",
                "probe_every", "holdout", "checkpoint_every", "length", "nan")
NAN_POLICIES = ("refuse", "interpolate")

# "quick": GunPoint end to end in minutes on a 2-core CPU (a smaller transformer: the paper's one
# costs about 40 GFLOP per step of 50 series); "paper": the TimeVQVAE stage-2 settings.
PRIOR_PRESETS: dict[str, dict] = {
    "quick": {"epochs": 1000, "max_steps": 500, "batch_size": 256, "fcn_epochs": 200, "cas_epochs": 30,
              "model": {"hidden": 128, "n_layers": 2}},
    "paper": {"epochs": 10000, "max_steps": -1, "batch_size": 256, "fcn_epochs": 1000, "cas_epochs": 1000,
              "model": {}},
}
PRIOR_PRESETS["timevqvae"] = PRIOR_PRESETS["paper"]  # the TimeVQVAE prior is the paper's one
PRIOR_FIELDS = ("epochs", "max_steps", "batch_size", "lr", "weight_decay", "fcn_epochs", "cas_epochs", "checkpoint",
                "accelerator", "devices", "precision", "checkpoint_every")


def model_config_from(model: str, value):
    """The config dataclass of registry model ``model`` from ``value`` (an instance, or a dict of
    fields as stored in ``config.yaml``; list values of tuple fields become tuples).

    Raises:
        ValueError: unknown model or field (the message lists the valid ones).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; available: {sorted(MODELS)}")
    cls = MODELS[model][1]
    if isinstance(value, cls):
        return value
    value = dict(value or {})
    types_ = field_types(cls)
    unknown = sorted(set(value) - set(types_))
    if unknown:
        raise ValueError(f"unknown {model} config field(s) {unknown}; valid: {sorted(types_)}")
    for key, v in value.items():
        if isinstance(v, list) and typing.get_origin(types_[key]) is tuple:
            value[key] = tuple(v)
    return cls(**value)


@dataclass
class RunConfig:
    """Everything that defines a stage-1 run; dumped to ``config.yaml``.

    Attributes:
        model: registry name (``tsvq.models.TRAINABLE``). dataset: the dataset's name (archive name,
            or the name of the file / folder in ``data``). data_dir: archive root (None:
            $TSVQ_DATA_DIR, then aeon). data: a user file or dataset folder (absolute path; None: the
            archive dataset ``dataset``). preset: "quick" | "paper" | "timevqvae". seed: global seed.
        epochs, max_steps (-1: no cap; training stops at whichever limit comes first), batch_size,
            lr (AdamW, default 1e-3), weight_decay (1e-3): optimisation, cosine schedule over all steps.
        scaling: "global" (TimeVQVAE: one mean/std per channel over the train split) or "znorm"
            (per series and channel).
        length: the common series length every channel is resampled to (None: the longest series).
        nan: "refuse" (default) or "interpolate" NaN inside a series (trailing NaN is padding).
        accelerator / devices / precision: passed to Lightning.
        probe_every: log the linear-probe accuracies every N epochs (0: never).
        holdout: evaluate on a hold-out of TRAIN of this fraction, stratified by class when labelled
            (0: the dataset's TEST split).
        checkpoint_every: write ``last.ckpt`` about every this many optimiser steps (whole epochs;
            default 100); the final model is always written at the end.
        model_config: the model's config dataclass (``in_channels`` / ``length`` are set from the data).

    Raises:
        ValueError: a field out of range (named in the message).
    """

    model: str
    dataset: str
    data_dir: str | None = None
    preset: str = "quick"
    seed: int = 0
    epochs: int = 200
    max_steps: int = -1
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-3
    scaling: str = "global"
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    probe_every: int = 0
    holdout: float = 0.0
    checkpoint_every: int = 100
    data: str | None = None
    length: int | None = None
    nan: str = "refuse"
    model_config: object = None

    def __post_init__(self):
        check_optimisation(self)
        if self.length is not None and (isinstance(self.length, bool) or not isinstance(self.length, int)
                                        or self.length < 2):
            raise ValueError(f"length must be an int >= 2 or none (the longest series), got {self.length!r}")
        if self.nan not in NAN_POLICIES:
            raise ValueError(f"nan must be one of {NAN_POLICIES}, got {self.nan!r}")
        if self.scaling not in ("global", "znorm"):
            raise ValueError(f"scaling must be 'global' or 'znorm', got {self.scaling!r}")
        if self.probe_every < 0:
            raise ValueError(f"probe_every must be >= 0 (0: no probes during training), got {self.probe_every}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1) (0: the official TEST split), got {self.holdout}")
        self.model_config = model_config_from(self.model, self.model_config)


@dataclass
class PriorConfig:
    """A prior run on top of a stage-1 run; dumped to ``prior/config.yaml``.

    Attributes:
        preset: "quick" | "paper" | "timevqvae" (= paper). seed: global seed. epochs, max_steps
            (-1 = no cap), batch_size (256), lr (AdamW, 1e-3), weight_decay (1e-2): optimisation with
            a cosine schedule. fcn_epochs: epochs of tsvq's own FCN evaluator (trained on the train
            split when no published weights are given); cas_epochs: epochs of the CAS classifier
            trained on the samples (both 1000 in the published recipe; fewer in "quick").
        checkpoint: which stage-1 checkpoint is the tokenizer ("best" | "last").
        accelerator / devices / precision: passed to Lightning. checkpoint_every: as in :class:`RunConfig`.
        model_config: :class:`MaskGITConfig`.

    Raises:
        ValueError: a field out of range (named in the message).
    """

    preset: str = "quick"
    seed: int = 0
    epochs: int = 1000
    max_steps: int = -1
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    fcn_epochs: int = 1000
    cas_epochs: int = 1000
    checkpoint: str = "best"
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    checkpoint_every: int = 100
    model_config: MaskGITConfig = field(default_factory=MaskGITConfig)

    def __post_init__(self):
        check_optimisation(self)
        for name in ("fcn_epochs", "cas_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got {self.checkpoint!r}")
        self.model_config = model_config_from("maskgit", self.model_config)


def resolve_config(model: str, dataset: str, preset: str = "quick", sets: list[str] | None = None,
                   seed: int = 0, data_dir: str | None = None, data: str | None = None) -> RunConfig:
    """Preset + ``key=value`` overrides -> :class:`RunConfig`. Keys are run fields (``epochs``,
    ``batch_size``, ``lr``, ...) or model config fields (``ssl_loss``, ``codebook_size``, ...).

    Raises:
        ValueError: unknown model, preset or key, or a malformed or out-of-range ``key=value``.
    """
    if model not in TRAINABLE:
        raise ValueError(f"unknown model {model!r} for tsvq train; available: {list(TRAINABLE)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; available: {sorted(PRESETS)}")
    if preset == "timevqvae" and model not in TOKENIZERS:
        raise ValueError(f"preset 'timevqvae' (the TimeVQVAE two-branch tokenizer) is for {list(TOKENIZERS)}, "
                         f"not {model!r}; use quick or paper")
    p = PRESETS[preset]
    run = {k: v for k, v in p.items() if k != "model"}
    model_fields = {f.name for f in dataclasses.fields(MODELS[model][1])}
    model_cfg = {k: v for k, v in p["model"].items() if k in model_fields}
    apply_sets(sets, run, RunConfig, TRAIN_FIELDS, model_cfg, MODELS[model][1], model)
    return RunConfig(model=model, dataset=dataset, data_dir=data_dir, data=data, preset=preset, seed=seed,
                     model_config=model_cfg, **run)


def resolve_prior_config(preset: str = "quick", sets: list[str] | None = None, seed: int = 0) -> PriorConfig:
    """Preset + ``key=value`` overrides (prior run fields or :class:`MaskGITConfig` fields).

    Raises:
        ValueError: unknown preset or key, malformed ``key=value``, checkpoint not best/last.
    """
    if preset not in PRIOR_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; available: {sorted(PRIOR_PRESETS)}")
    run = {k: v for k, v in PRIOR_PRESETS[preset].items() if k != "model"}
    model_cfg = dict(PRIOR_PRESETS[preset]["model"])
    apply_sets(sets, run, PriorConfig, PRIOR_FIELDS, model_cfg, MaskGITConfig, "maskgit")
    return PriorConfig(preset=preset, seed=seed, model_config=model_cfg, **run)


def config_from_dict(cls, stored: dict):
    """A run config (:class:`RunConfig` or :class:`PriorConfig`) from the mapping stored in
    ``config.yaml``; fields a later version added take their defaults.

    Raises:
        ValueError: a field this version does not know, or a value out of range.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in a stored {cls.__name__}")
    return cls(**stored)


def config_to_dict(cfg) -> dict:
    """The plain mapping of a run config (nested model config included) for ``config.yaml``."""
    return dataclasses.asdict(cfg)
