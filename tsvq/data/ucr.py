"""Reader for the UCR 2018 time-series classification archive on disk."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .catalog import archive_root, find_split, not_found



@dataclass
class UCRDataset:
    """One UCR dataset with its official split.

    Attributes:
        name: dataset name, e.g. ``"GunPoint"``.
        x_train: float32 Tensor[N_train, 1, L].
        y_train: int64 Tensor[N_train], label-encoded to ``0 .. n_classes - 1``.
        x_test: float32 Tensor[N_test, 1, L], or None for a train-only copy.
        y_test: int64 Tensor[N_test], or None.
        classes: the archive's original label values; ``classes[y]`` is the label of ``y``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    classes: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def length(self) -> int:
        return self.x_train.shape[-1]


def _read(path: Path, name: str, resample_to: int | None) -> tuple[np.ndarray, np.ndarray]:
    import warnings

    try:
        with warnings.catch_warnings():  # an empty file: numpy warns, then returns an empty table
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter="\t", dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path} is not a UCR table (label, then the series, tab-separated): {e}") from None
    if table.shape[0] == 0 or table.shape[1] < 2:
        raise ValueError(f"{path} holds no series (a UCR table has one series per row: label, then the values)")
    labels, x = table[:, 0], table[:, 1:]
    if np.isnan(labels).any():
        raise ValueError(f"{path}: row {int(np.isnan(labels).argmax())} has no label (NaN in the first column)")
    empty = np.isnan(x).all(1)
    if empty.any():
        raise ValueError(f"{path}: row {int(empty.argmax())} holds no values (every value is NaN)")
    if np.isnan(x).any():
        if resample_to is None:
            raise ValueError(
                f"{name} has variable-length series (NaN padding in {path.name}); pass "
                "resample_to=L to resample every series to a fixed length L")
        x = np.stack([_resample(row[~np.isnan(row)], resample_to) for row in x])
    elif resample_to is not None and resample_to != x.shape[1]:
        x = np.stack([_resample(row, resample_to) for row in x])
    return labels, x


def _resample(row: np.ndarray, length: int) -> np.ndarray:
    if row.size == 0:
        raise ValueError("cannot resample an empty series")
    if row.size == 1:
        return np.full(length, row[0])
    return np.interp(np.linspace(0, row.size - 1, length), np.arange(row.size), row)


def _has_aeon() -> bool:
    try:
        import aeon.datasets  # noqa: F401
    except ImportError:
        return False
    return True


def _aeon_split(name: str, split: str, resample_to: int | None):
    from aeon.datasets import load_classification

    x, labels = load_classification(name, split=split)
    if isinstance(x, list) or (isinstance(x, np.ndarray) and x.dtype == object):  # unequal lengths
        if resample_to is None:
            raise ValueError(f"{name} has variable-length series; pass resample_to=L")
        x = np.stack([np.stack([_resample(np.asarray(c, np.float64), resample_to) for c in s]) for s in x])
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        if resample_to is None:
            raise ValueError(f"{name} has variable-length series (NaN padding); pass resample_to=L")
        x = np.stack([np.stack([_resample(c[~np.isnan(c)], resample_to) for c in s]) for s in x])
    elif resample_to is not None and resample_to != x.shape[-1]:
        x = np.stack([np.stack([_resample(c, resample_to) for c in s]) for s in x])
    try:
        labels = labels.astype(np.float64)  # the archive's numeric labels, as in the .tsv files
    except ValueError:
        pass
    return labels, x


def _load_aeon(name: str, resample_to: int | None) -> "UCRDataset | None":
    """aeon's ``load_classification``: GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf and ACSF1
    ship inside its wheel; other names are downloaded from timeseriesclassification.com."""
    if not _has_aeon():
        return None
    try:
        ltr, xtr = _aeon_split(name, "train", resample_to)
        lte, xte = _aeon_split(name, "test", resample_to)
    except ValueError as e:
        if "variable-length" in str(e):
            raise
        return None
    except Exception:  # offline, unknown name, HTTP errors
        return None
    classes, encoded = np.unique(np.concatenate([ltr, lte]), return_inverse=True)
    as_x = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return UCRDataset(name=name, x_train=as_x(xtr), y_train=torch.from_numpy(encoded[:len(ltr)].astype(np.int64)),
                      x_test=as_x(xte), y_test=torch.from_numpy(encoded[len(ltr):].astype(np.int64)), classes=classes)


def load_ucr(
    name: str,
    data_dir: str | os.PathLike | None = None,
    resample_to: int | None = None,
    require_test: bool = True,
) -> UCRDataset:
    """Load ``<data_dir>/<name>/<name>_TRAIN.tsv`` and ``_TEST.tsv`` (also ``.tsv.gz``), or
    through aeon when the dataset is not on disk.

    Tab-separated, label in the first column, one series per row (UCR 2018 format, Dau et
    al. 2019). Labels are label-encoded over train and test together.

    Args:
        name: dataset name as in the archive, e.g. ``"GunPoint"``.
        data_dir: archive root; default ``$TSVQ_DATA_DIR``. When neither is set or the dataset is
            not under it, ``aeon.datasets.load_classification`` is tried (offline for the
            datasets aeon ships: GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, ACSF1).
        resample_to: resample every series (linear interpolation) to this length; needed for
            variable-length datasets, whose files are NaN-padded.
        require_test: raise if the test split is missing (False: load a train-only copy,
            whose test fields are None; never report test metrics from such a copy).

    Returns:
        :class:`UCRDataset`.

    Raises:
        FileNotFoundError: ``data_dir`` (or ``$TSVQ_DATA_DIR``) names no folder, or the dataset is
            neither on disk nor loadable through aeon (the message says where the files should be).
        ValueError: an empty or malformed table, a row without values or label, or NaN-padded
            (variable-length) series without ``resample_to``.
    """
    root = archive_root(data_dir)
    train = find_split(root, name, "TRAIN") if root is not None else None
    if train is None:
        loaded = _load_aeon(name, resample_to)
        if loaded is not None:
            return loaded
        raise not_found(name, root, "(aeon is not installed: pip install aeon)" if not _has_aeon()
                        else "(offline, or not a UCR/UEA name)")
    test = find_split(root, name, "TEST")
    if test is None and require_test:
        raise FileNotFoundError(f"{root / name / (name + '_TEST.tsv')} not found (train-only copy? "
                                "pass require_test=False and report no test metrics)")
    ltr, xtr = _read(train, name, resample_to)
    lte, xte = _read(test, name, resample_to) if test is not None else (np.empty(0), None)
    if xte is not None and xte.shape[1] != xtr.shape[1]:
        raise ValueError(f"{name}: train length {xtr.shape[1]} != test length {xte.shape[1]}; "
                         "pass resample_to")
    classes, encoded = np.unique(np.concatenate([ltr, lte]), return_inverse=True)
    ytr, yte = encoded[: len(ltr)], encoded[len(ltr):]
    as_x = lambda a: torch.from_numpy(a.astype(np.float32)).unsqueeze(1)  # noqa: E731
    return UCRDataset(
        name=name,
        x_train=as_x(xtr),
        y_train=torch.from_numpy(ytr.astype(np.int64)),
        x_test=as_x(xte) if xte is not None else None,
        y_test=torch.from_numpy(yte.astype(np.int64)) if xte is not None else None,
        classes=classes,
    )


class GlobalScaler:
    """TimeVQVAE scaling: one mean and one standard deviation over the whole train matrix.

    ``fit`` on the train split, ``transform`` train and test with the same statistics,
    ``inverse_transform`` maps model outputs (e.g. generated series) back to data units.
    """

    def __init__(self, eps: float = 1e-8):
        self.eps = eps
        self.mean: float | None = None
        self.std: float | None = None

    def fit(self, x: torch.Tensor) -> "GlobalScaler":
        self.mean = float(x.mean())
        self.std = float(x.std())
        return self

    def _check(self):
        if self.mean is None:
            raise RuntimeError("GlobalScaler.fit must be called before transform")

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        self._check()
        return (x - self.mean) / (self.std + self.eps)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        self._check()
        return x * (self.std + self.eps) + self.mean

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "eps": self.eps}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.std, self.eps = state["mean"], state["std"], state["eps"]
