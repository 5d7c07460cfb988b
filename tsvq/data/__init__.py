"""Time-series data: the UCR 2018 reader, scaling and the SSL views."""
from .augment import ViewSpec, make_views
from .ucr import ENV_DATA_DIR, GlobalScaler, UCRDataset, load_ucr

__all__ = ["load_ucr", "UCRDataset", "GlobalScaler", "ENV_DATA_DIR", "ViewSpec", "make_views"]
