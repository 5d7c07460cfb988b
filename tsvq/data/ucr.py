"""The UCR 2018 archive by name, and the TimeVQVAE data scaling."""
from __future__ import annotations

import os

import torch

from .dataset import TimeSeriesDataset, load_named

UCRDataset = TimeSeriesDataset  # the UCR reader builds the one dataset type


def load_ucr(
    name: str,
    data_dir: str | os.PathLike | None = None,
    resample_to: int | None = None,
    require_test: bool = True,
) -> TimeSeriesDataset:
    """Load ``<data_dir>/<name>/<name>_TRAIN.tsv`` and ``_TEST.tsv`` (also ``.tsv.gz``, or the UEA
    ``.ts`` files), or through aeon when the dataset is not on disk (:func:`tsvq.data.load_named`).

    Tab-separated, label in the first column, one series per row (UCR 2018 format, Dau et
    al. 2019). Labels are label-encoded over train and test together.

    Args:
        name: dataset name as in the archive, e.g. ``"GunPoint"``.
        data_dir: archive root; default ``$TSVQ_DATA_DIR``. When neither is set or the dataset is
            not under it, ``aeon.datasets.load_classification`` is tried (offline for the
            datasets aeon ships: GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, ACSF1, BasicMotions,
            JapaneseVowels, PickupGestureWiimoteZ).
        resample_to: resample every series (linear interpolation) to this length; default the
            longest series (variable-length datasets are NaN-padded in the files).
        require_test: raise if the test split is missing (False: load a train-only copy,
            whose test fields are None; never report test metrics from such a copy).

    Returns:
        :class:`TimeSeriesDataset` with ``x: Tensor[N, C, L]`` (C = 1 for the UCR archive).

    Raises:
        FileNotFoundError: ``data_dir`` (or ``$TSVQ_DATA_DIR``) names no folder, or the dataset is
            neither on disk nor loadable through aeon (the message says where the files should be).
        ValueError: an empty or malformed table, a row without values or label, NaN inside a series.
    """
    return load_named(name, data_dir, length=resample_to, require_test=require_test)


class GlobalScaler:
    """TimeVQVAE scaling: one mean and one standard deviation per channel over the whole train
    split (for C = 1: over the whole train matrix, as TimeVQVAE).

    ``fit`` on the train split ``Tensor[N, C, L]``, ``transform`` train and test with the same
    statistics, ``inverse_transform`` maps model outputs (e.g. generated series) back to data units.
    """

    def __init__(self, eps: float = 1e-8):
        self.eps = eps
        self.mean: list[float] | None = None
        self.std: list[float] | None = None

    def fit(self, x: torch.Tensor) -> "GlobalScaler":
        if x.dim() != 3:
            raise ValueError(f"x must be Tensor[N, C, L], got shape {list(x.shape)}")
        self.mean = [float(x[:, c].mean()) for c in range(x.shape[1])]
        self.std = [float(x[:, c].std()) for c in range(x.shape[1])]
        return self

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None:
            raise RuntimeError("GlobalScaler.fit must be called before transform")
        if len(self.mean) not in (1, x.shape[-2]):
            raise ValueError(f"x has {x.shape[-2]} channels, the scaler was fitted on {len(self.mean)}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).unsqueeze(-1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).unsqueeze(-1)
        return mean, std + self.eps

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "eps": self.eps}

    def load_state_dict(self, state: dict) -> None:
        as_list = lambda v: [float(v)] if isinstance(v, (int, float)) else [float(a) for a in v]  # noqa: E731
        self.mean, self.std, self.eps = as_list(state["mean"]), as_list(state["std"]), state["eps"]
