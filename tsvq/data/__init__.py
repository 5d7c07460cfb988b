"""Time-series data: the UCR 2018 reader, scaling and the SSL views.

The names below are imported on first use (PEP 562), so that ``tsvq.data.catalog`` (dataset names
and locations, no torch) stays light for the command line's early checks.
"""
import importlib

from .catalog import ENV_DATA_DIR

_LAZY = {"load_ucr": ".ucr", "UCRDataset": ".ucr", "GlobalScaler": ".ucr", "ViewSpec": ".augment",
         "make_views": ".augment"}
__all__ = ["load_ucr", "UCRDataset", "GlobalScaler", "ENV_DATA_DIR", "ViewSpec", "make_views"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'tsvq.data' has no attribute {name!r}")
