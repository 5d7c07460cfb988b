"""Time-series data: one dataset type and its readers, scaling and the SSL views.

The names below are imported on first use (PEP 562), so that ``tsvq.data.catalog`` (dataset names
and locations, no torch) stays light for the command line's early checks.
"""
import importlib

from .catalog import ENV_DATA_DIR

_LAZY = {"TimeSeriesDataset": ".dataset", "from_arrays": ".dataset", "load_dataset": ".dataset",
         "load_path": ".dataset", "load_named": ".dataset", "load_ucr": ".ucr", "UCRDataset": ".ucr",
         "GlobalScaler": ".ucr", "ViewSpec": ".augment", "make_views": ".augment"}
__all__ = ["TimeSeriesDataset", "from_arrays", "load_dataset", "load_path", "load_named", "load_ucr", "UCRDataset",
           "GlobalScaler", "ENV_DATA_DIR", "ViewSpec", "make_views"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'tsvq.data' has no attribute {name!r}")
