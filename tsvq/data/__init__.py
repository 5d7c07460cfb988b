"""Time-series data: the UCR 2018 reader and scaling."""
from .ucr import ENV_DATA_DIR, GlobalScaler, UCRDataset, load_ucr

__all__ = ["load_ucr", "UCRDataset", "GlobalScaler", "ENV_DATA_DIR"]
