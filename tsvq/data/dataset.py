"""One dataset type for every source: ``x: [N, C, L]`` with optional labels and test split.

:class:`TimeSeriesDataset` is what every model, evaluator and command reads. It is built by
:func:`from_arrays` (Python arrays or tensors) and by :func:`load_dataset`, which reads

- a name: ``<data_dir>/<Name>/<Name>_TRAIN.tsv`` (UCR 2018, also ``.tsv.gz``) or ``_TRAIN.ts``
  (UEA multivariate archive) with its ``_TEST`` file, else aeon's ``load_classification``
  (offline for the datasets its wheel ships, :data:`tsvq.data.catalog.AEON_OFFLINE`);
- a path: a dataset folder (``<dir>/<dir name>_TRAIN.tsv|.ts|.csv``), or one file: ``.npz``
  (``x_train``, optional ``y_train``, ``x_test``, ``y_test``), ``.npy`` (``x`` only), a ``.ts``
  file, or a table in the UCR wide layout (``.tsv``, ``.tsv.gz``, ``.csv``: label, then the
  values, one series per row). A file whose name ends in ``_TRAIN`` takes its ``_TEST`` sibling
  as the test split.

Lengths and missing values: trailing NaN in a channel is padding (the UCR / UEA convention for
variable-length series, and the way to store uneven lengths in ``.npz``); every channel is then
resampled (linear interpolation) to one common length, by default the longest one found. NaN
inside a series is refused, naming the series, unless ``nan="interpolate"``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .catalog import FILE_SUFFIXES, archive_root, data_name, find_split, not_found

NAN_POLICIES = ("refuse", "interpolate")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class TimeSeriesDataset:
    """A time-series dataset: train split, optional labels, optional test split.

    Attributes:
        name: dataset name (archive name, or the file / folder name of user data).
        x_train: float32 Tensor[N_train, C, L].
        y_train: int64 Tensor[N_train], label-encoded to ``0 .. n_classes - 1``, or None (unlabelled).
        x_test: float32 Tensor[N_test, C, L], or None (no test split).
        y_test: int64 Tensor[N_test], or None.
        classes: the original label values (``classes[y]`` is the label of ``y``), or None.
        source: where the data was read from.
        raw_lengths: (shortest, longest) series length before resampling.
        interpolated: how many NaN values inside series were interpolated (``nan="interpolate"``).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    classes: np.ndarray | None = None
    source: str = ""
    raw_lengths: tuple[int, int] | None = None
    interpolated: int = 0

    @property
    def labelled(self) -> bool:
        return self.y_train is not None

    @property
    def n_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)

    @property
    def channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def length(self) -> int:
        return self.x_train.shape[-1]

    def summary(self) -> dict:
        """What was loaded: sizes, lengths before resampling, classes and their counts per split."""
        out = {"name": self.name, "source": self.source, "n_train": len(self.x_train),
               "n_test": None if self.x_test is None else len(self.x_test), "channels": self.channels,
               "length": self.length, "raw_lengths": list(self.raw_lengths) if self.raw_lengths else None,
               "interpolated_nan": self.interpolated, "labelled": self.labelled}
        if self.labelled:
            names = [label_name(c) for c in self.classes]
            out["classes"] = {"train": dict(zip(names, torch.bincount(self.y_train, minlength=self.n_classes).tolist()))}
            if self.y_test is not None:
                out["classes"]["test"] = dict(zip(names, torch.bincount(self.y_test, minlength=self.n_classes).tolist()))
        return out


def label_name(value) -> str:
    """A label as written in the archive: ``1.0`` -> ``"1"``, strings unchanged."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _series_list(x, what: str) -> list[np.ndarray]:
    """``x`` as a list of float64 ``[C, L_i]`` arrays: ``[N, L]`` / ``[N, C, L]`` arrays or tensors, or a
    sequence of ``[L_i]`` / ``[C, L_i]`` series."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) and x.dtype != object:
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise ValueError(f"{what} must hold numbers, got dtype {x.dtype}")
        if x.ndim not in (2, 3):
            raise ValueError(f"{what} must be [N, L] or [N, C, L], got shape {list(x.shape)}")
        x = x.astype(np.float64)
        return list(x[:, None, :] if x.ndim == 2 else x)
    series = []
    for i, s in enumerate(x):
        try:
            s = np.asarray(s, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: series {i} holds values that are not numbers") from None
        if s.ndim not in (1, 2):
            raise ValueError(f"{what}: series {i} must be [L] or [C, L], got shape {list(s.shape)}")
        series.append(s[None] if s.ndim == 1 else s)
    return series


def _resample(row: np.ndarray, length: int) -> np.ndarray:
    if row.size == length:
        return row
    if row.size == 1:
        return np.full(length, row[0])
    return np.interp(np.linspace(0, row.size - 1, length), np.arange(row.size), row)


def _clean(series: list[np.ndarray], what: str, nan: str) -> tuple[list[list[np.ndarray]], int]:
    """Per series, per channel: trailing NaN (padding) removed; NaN inside refused or interpolated.
    Returns the channels and the count of interpolated values."""
    out, filled = [], 0
    for i, s in enumerate(series):
        if np.isinf(s).any():
            raise ValueError(f"{what}: series {i} holds inf")
        channels = []
        for c, row in enumerate(s):
            ok = ~np.isnan(row)
            if not ok.any():
                where = f"series {i}" + (f", channel {c}," if len(s) > 1 else "")
                raise ValueError(f"{what}: {where} holds no values (every value is NaN)")
            row = row[: int(np.flatnonzero(ok)[-1]) + 1]  # trailing NaN: padding of a shorter series
            gaps = np.isnan(row)
            if gaps.any():
                if nan != "interpolate":
                    where = f"series {i}" + (f", channel {c}" if len(s) > 1 else "")
                    raise ValueError(f"{what}: {where} holds NaN inside the series (at time step "
                                     f"{int(gaps.argmax())}); set nan=interpolate to fill such gaps linearly")
                t = np.arange(row.size)
                row = row.copy()
                row[gaps] = np.interp(t[gaps], t[~gaps], row[~gaps])
                filled += int(gaps.sum())
            channels.append(row)
        out.append(channels)
    return out, filled


def _labels(y, n: int, what: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{what} must be [N] with N = {n} (one label per series), got shape {list(y.shape)}")
    if y.dtype.kind in "US":  # the archives' labels are text; numeric ones are kept as numbers
        try:
            y = y.astype(np.float64)
        except ValueError:
            pass
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(f"{what}: series {int(np.isnan(y).argmax())} has no label (NaN)")
    return y


def from_arrays(x_train, y_train=None, x_test=None, y_test=None, *, name: str = "arrays", length: int | None = None,
                nan: str = "refuse", source: str = "arrays") -> TimeSeriesDataset:
    """Build a :class:`TimeSeriesDataset` from arrays, tensors or sequences of series.

    Args:
        x_train: ``[N, L]`` or ``[N, C, L]`` (array or tensor), or a sequence of ``[L_i]`` / ``[C, L_i]``
            series of uneven lengths; trailing NaN counts as padding.
        y_train: ``[N]`` labels of any type (label-encoded over both splits), or None: unlabelled.
        x_test, y_test: the test split, same layout; y_test only with y_train.
        name: dataset name (the run directory uses it).
        length: common length every channel is resampled to (linear interpolation); default: the
            longest series of both splits (series of that length stay exactly as they are).
        nan: "refuse" (default) or "interpolate" NaN inside a series.
        source: where the data came from (shown by ``tsvq data``).

    Raises:
        ValueError: a bad shape or value, naming the split and series: non-numeric values, no
            series, inf, an all-NaN series, NaN inside a series (``nan="refuse"``), a different
            number of channels, labels in one split only, a label count that differs from N.
    """
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan must be one of {NAN_POLICIES}, got {nan!r}")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 2):
        raise ValueError(f"length must be an int >= 2 or None (the longest series), got {length!r}")
    splits = {"x_train": x_train} if x_test is None else {"x_train": x_train, "x_test": x_test}
    if (y_train is None) != (y_test is None) and x_test is not None:
        given = "y_train" if y_test is None else "y_test"
        raise ValueError(f"{name}: labels are present in one split only ({given}); give labels for both "
                         "splits or for neither")
    if y_test is not None and x_test is None:
        raise ValueError(f"{name}: y_test given without x_test")
    cleaned, filled = {}, 0
    for what, x in splits.items():
        series = _series_list(x, f"{name} {what}")
        if not series:
            raise ValueError(f"{name} {what} holds no series")
        cleaned[what], n = _clean(series, f"{name} {what}", nan)
        filled += n
    c_train = {len(s) for s in cleaned["x_train"]}
    if len(c_train) > 1:
        raise ValueError(f"{name} x_train: series have different channel counts {sorted(c_train)}")
    (channels,) = c_train
    if "x_test" in cleaned:
        c_test = {len(s) for s in cleaned["x_test"]}
        if c_test != {channels}:
            raise ValueError(f"{name}: x_test has {sorted(c_test)} channel(s), x_train {channels}; both splits need "
                             "the same channels")
    lengths = [row.size for split in cleaned.values() for s in split for row in s]
    target = length if length is not None else max(lengths)
    if target < 2:
        raise ValueError(f"{name}: the series are {target} value(s) long; at least 2 are needed")
    x = {what: torch.from_numpy(np.stack([np.stack([_resample(row, target) for row in s]) for s in split])
                                .astype(np.float32)) for what, split in cleaned.items()}
    ytr = _labels(y_train, len(x["x_train"]), f"{name} y_train")
    yte = _labels(y_test, len(x["x_test"]), f"{name} y_test") if "x_test" in x else None
    classes = enc_tr = enc_te = None
    if ytr is not None:
        both = np.concatenate([ytr, yte]) if yte is not None else ytr
        try:
            classes, encoded = np.unique(both, return_inverse=True)
        except TypeError:  # mixed label types
            classes, encoded = np.unique(both.astype(str), return_inverse=True)
        enc_tr = torch.from_numpy(encoded[: len(ytr)].astype(np.int64))
        enc_te = torch.from_numpy(encoded[len(ytr):].astype(np.int64)) if yte is not None else None
    return TimeSeriesDataset(name=name, x_train=x["x_train"], y_train=enc_tr, x_test=x.get("x_test"), y_test=enc_te,
                             classes=classes, source=source, raw_lengths=(min(lengths), max(lengths)),
                             interpolated=filled)


# ---------------------------------------------------------------------------------------- files

def read_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A table in the UCR wide layout (label, then the values; tab- or comma-separated by suffix):
    ``(labels [N], values [N, L] with NaN padding)``.

    Raises:
        ValueError: an empty file, ragged rows, non-numeric values, a row without label or values.
    """
    import warnings

    delimiter = "," if path.name.endswith(".csv") else "\t"
    try:
        with warnings.catch_warnings():  # an empty file: numpy warns, then returns an empty table
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except ValueError as e:
        msg = str(e)
        if "number of columns changed" in msg:
            raise ValueError(f"{path}: rows have different numbers of values ({msg}); pad shorter series with NaN "
                             "(the UCR layout for uneven lengths)") from None
        raise ValueError(f"{path} is not a table in the UCR layout (label, then the values, "
                         f"{'comma' if delimiter == ',' else 'tab'}-separated, numbers only): {msg}") from None
    if table.shape[0] == 0 or table.shape[1] < 2:
        raise ValueError(f"{path} holds no series (one series per row: label, then the values)")
    labels, x = table[:, 0], table[:, 1:]
    if np.isnan(labels).any():
        raise ValueError(f"{path}: row {int(np.isnan(labels).argmax())} has no label (NaN in the first column)")
    empty = np.isnan(x).all(1)
    if empty.any():
        raise ValueError(f"{path}: row {int(empty.argmax())} holds no values (every value is NaN)")
    return labels, x


def read_ts(path: Path):
    """A ``.ts`` file (sktime / UEA format) through aeon: ``(x as aeon returns it, labels or None)``."""
    from aeon.datasets import load_from_ts_file

    try:
        x, y = load_from_ts_file(str(path))
    except Exception as e:  # aeon raises IOError / ValueError / TypeError for malformed headers and rows
        raise ValueError(f"{path} is not a readable .ts file: {e}") from None
    if x is None or len(x) == 0:
        raise ValueError(f"{path} holds no series")
    return x, (None if y is None or len(y) == 0 else y)


def _read_split(path: Path):
    """``(x, labels or None)`` of one split file."""
    if path.name.endswith(".ts"):
        return read_ts(path)
    labels, x = read_table(path)
    return x, labels


def _test_sibling(path: Path) -> Path | None:
    stem = path.name
    if "_TRAIN" not in stem:
        return None
    sibling = path.with_name(stem.replace("_TRAIN", "_TEST"))
    return sibling if sibling.exists() else None


def _load_npz(path: Path, **kw) -> TimeSeriesDataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:
        raise ValueError(f"{path}: cannot read the arrays ({e}); store numbers only (pad uneven lengths with NaN)") from None
    unknown = sorted(set(arrays) - set(NPZ_KEYS))
    if "x_train" not in arrays or unknown:
        raise ValueError(f"{path} must hold x_train ([N, L] or [N, C, L]) and optionally y_train, x_test, y_test; "
                         f"found {sorted(arrays) or 'no arrays'}")
    return from_arrays(arrays["x_train"], arrays.get("y_train"), arrays.get("x_test"), arrays.get("y_test"),
                       name=data_name(path), source=str(path), **kw)


def load_path(path: str | os.PathLike, length: int | None = None, nan: str = "refuse") -> TimeSeriesDataset:
    """Read user data from a file or a dataset folder (see the module docstring for the formats).

    Raises:
        FileNotFoundError: no such file or folder, or a folder without ``<name>_TRAIN.*``.
        ValueError: an unknown suffix or a malformed file (the message names the file).
    """
    path = Path(path)
    kw = {"length": length, "nan": nan}
    if path.is_dir():
        for suffix in (".tsv", ".tsv.gz", ".ts", ".csv"):
            train = path / f"{path.name}_TRAIN{suffix}"
            if train.exists():
                return load_path(train, **kw)
        raise FileNotFoundError(f"{path} is a folder without {path.name}_TRAIN.tsv, .tsv.gz, .ts or .csv "
                                "(a dataset folder holds <name>_TRAIN.* and <name>_TEST.*)")
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    if not path.name.endswith(FILE_SUFFIXES):
        raise ValueError(f"{path}: unknown data file type; tsvq reads {', '.join(FILE_SUFFIXES)} or a dataset folder")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    if path.suffix == ".npz":
        return _load_npz(path, **kw)
    if path.suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path}: cannot read the array ({e}); store numbers only") from None
        return from_arrays(x, name=data_name(path), source=str(path), **kw)
    x_tr, y_tr = _read_split(path)
    test = _test_sibling(path)
    x_te, y_te = _read_split(test) if test is not None else (None, None)
    source = str(path) + (f" + {test.name}" if test is not None else "")
    return from_arrays(x_tr, y_tr, x_te, y_te, name=data_name(path), source=source, **kw)


def _has_aeon() -> bool:
    try:
        import aeon.datasets  # noqa: F401
    except ImportError:
        return False
    return True


def _load_aeon(name: str, **kw) -> TimeSeriesDataset | None:
    """aeon's ``load_classification`` (UCR and UEA names; the datasets its wheel ships are read
    offline, others are downloaded from timeseriesclassification.com); None when it cannot."""
    if not _has_aeon():
        return None
    from aeon.datasets import load_classification

    try:
        x_tr, y_tr = load_classification(name, split="train")
        x_te, y_te = load_classification(name, split="test")
    except Exception:  # offline, unknown name, HTTP errors
        return None
    return from_arrays(x_tr, y_tr, x_te, y_te, name=name, source=f"aeon load_classification({name!r})", **kw)


def load_named(name: str, data_dir: str | os.PathLike | None = None, length: int | None = None,
               nan: str = "refuse", require_test: bool = True) -> TimeSeriesDataset:
    """A dataset by archive name: ``<data_dir>/<name>/<name>_TRAIN.tsv|.tsv.gz|.ts`` and ``_TEST``,
    else through aeon (see the module docstring).

    Raises:
        FileNotFoundError: not on disk and not loadable through aeon (the message says where the
            files should be), ``data_dir`` is not a folder, or no TEST file with ``require_test``.
        ValueError: a malformed file.
    """
    kw = {"length": length, "nan": nan}
    root = archive_root(data_dir)
    train = find_split(root, name, "TRAIN") if root is not None else None
    if train is None:
        loaded = _load_aeon(name, **kw)
        if loaded is not None:
            return loaded
        raise not_found(name, root, "(aeon is not installed: pip install aeon)" if not _has_aeon()
                        else "(offline, or not a UCR/UEA name)")
    if find_split(root, name, "TEST") is None and require_test:
        raise FileNotFoundError(f"{root / name / (name + '_TEST' + _suffix(train))} not found (train-only copy? "
                                "pass require_test=False, or holdout > 0, and report no test metrics)")
    ds = load_path(train, **kw)
    ds.name = name
    return ds


def _suffix(path: Path) -> str:
    return next(s for s in sorted(FILE_SUFFIXES, key=len, reverse=True) if path.name.endswith(s))


def is_path(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a file or folder rather than an archive dataset name."""
    s = str(source)
    return isinstance(source, Path) or os.sep in s or s.endswith(FILE_SUFFIXES)


def load_dataset(source: str | os.PathLike, data_dir: str | os.PathLike | None = None, length: int | None = None,
                 nan: str = "refuse", require_test: bool = True) -> TimeSeriesDataset:
    """Load ``source``: a file or folder path (:func:`load_path`) or an archive name
    (:func:`load_named`). ``length`` and ``nan`` as in :func:`from_arrays`.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_path` / :func:`load_named`.
    """
    if is_path(source):
        return load_path(source, length, nan)
    return load_named(str(source), data_dir, length, nan, require_test)
