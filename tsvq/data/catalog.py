"""Where datasets come from, without importing torch: the archive root, the datasets aeon ships,
close names for typos, and the not-found message. :mod:`tsvq.data.ucr` loads; the command line
checks a name here first, so that a typo is answered before any heavy import."""
from __future__ import annotations

import difflib
import os
from pathlib import Path

ENV_DATA_DIR = "TSVQ_DATA_DIR"
# Classification datasets aeon's wheel ships (no download needed).
AEON_OFFLINE = ("ACSF1", "ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "JapaneseVowels", "OSULeaf",
                "PickupGestureWiimoteZ")
ARCHIVE_URL = "https://www.timeseriesclassification.com"
# The files tsvq.data.load_path reads.
TABLE_SUFFIXES = (".tsv", ".tsv.gz", ".csv", ".txt")
FILE_SUFFIXES = (*TABLE_SUFFIXES, ".ts", ".npz", ".npy")


def archive_root(data_dir: str | os.PathLike | None) -> Path | None:
    """``data_dir``, else ``$TSVQ_DATA_DIR``, as a folder (None when neither is set).

    Raises:
        FileNotFoundError: the one given is not a folder.
    """
    root = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    if root is None:
        return None
    root = Path(root)
    if not root.is_dir():
        what = "data_dir" if data_dir is not None else f"${ENV_DATA_DIR}"
        raise FileNotFoundError(f"{what} {root} is not a folder (the UCR / UEA archive root, holding <Name>/<Name>_TRAIN.tsv or .ts)")
    return root


def find_split(root: Path, name: str, split: str) -> Path | None:
    """``root/<name>/<name>_<split>.tsv`` (or ``.tsv.gz``, UCR; or ``.ts``, UEA) if it exists."""
    for suffix in (".tsv", ".tsv.gz", ".ts"):
        p = root / name / f"{name}_{split}{suffix}"
        if p.exists():
            return p
    return None


def datasets_under(root: Path | None) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root is not None else []


def close_names(name: str, candidates) -> list[str]:
    """The candidate equal to ``name`` but for case, else up to 3 similar ones."""
    by_lower = {c.lower(): c for c in candidates}
    exact = by_lower.get(name.lower())
    return [exact] if exact else [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3)]


def not_found(name: str, root: Path | None, aeon_note: str) -> FileNotFoundError:
    """The error for a dataset neither on disk nor loadable through aeon (``aeon_note`` says why)."""
    where = (f"{root / name / (name + '_TRAIN.tsv')} not found" if root is not None
             else f"no archive directory given (data_dir or ${ENV_DATA_DIR})")
    available = datasets_under(root)
    close = close_names(name, set(available) | set(AEON_OFFLINE))
    return FileNotFoundError(
        f"dataset {name!r} not found"
        + (f" (did you mean {' or '.join(close)}?)" if close else "")
        + f": {where}, and aeon could not load it {aeon_note}."
        + f" Offline through aeon: {', '.join(AEON_OFFLINE)}. Others: download the UCR 2018 / UEA archives "
        f"({ARCHIVE_URL}, <Name>/<Name>_TRAIN.tsv or .ts, and _TEST) and pass the folder as data_dir (--data-dir) "
        f"or ${ENV_DATA_DIR}" + (f"; datasets under {root}: {', '.join(available)}" if available else ""))


def check_name(name: str, data_dir: str | os.PathLike | None = None) -> None:
    """Refuse at once a dataset name that differs only in case from one on disk or shipped by aeon
    (UCR / UEA names are case-distinct, so it is a typo that no download would satisfy); other names
    not on disk are left to aeon, which may download them.

    Raises:
        FileNotFoundError: such a typo (the message suggests the right name), or ``data_dir`` is not
            a folder.
    """
    root = archive_root(data_dir)
    if root is not None and find_split(root, name, "TRAIN") is not None:
        return
    candidates = set(datasets_under(root)) | set(AEON_OFFLINE)
    if name not in candidates and any(c.lower() == name.lower() for c in candidates):
        raise not_found(name, root, "(names are case-sensitive)")


def data_name(path: str | os.PathLike) -> str:
    """The dataset name of a user file or folder: its name without the data suffix and ``_TRAIN``
    (``recordings.npz`` -> ``recordings``, ``Walk_TRAIN.csv`` -> ``Walk``)."""
    name = Path(path).name
    for suffix in sorted(FILE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("_TRAIN", "") or "data"


def check_path(path: str | os.PathLike, what: str = "--data") -> None:
    """Refuse at once a data path (the argument ``what``) that does not exist or has a type tsvq
    does not read.

    Raises:
        FileNotFoundError: no such file or folder. ValueError: an unknown file type.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} {p} not found")
    if p.is_file() and not p.name.endswith(FILE_SUFFIXES):
        raise ValueError(f"{what} {p}: unknown data file type; tsvq reads {', '.join(FILE_SUFFIXES)} or a dataset folder")
