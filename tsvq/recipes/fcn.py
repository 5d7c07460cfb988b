"""The FCN evaluator of FID / IS / CAS: training an FCN (the published recipe), loading the
published per-dataset weights or tsvq's own cached FCN, and its pass over the real test split."""
from __future__ import annotations

import io
import math
import os
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from ..engine.optim import adamw
from ..engine.run_dir import RunDir
from ..eval import accuracy
from ..models.fcn import FCN, FCNConfig, fcn_predict, fcn_scale, load_supervised_fcn


def train_fcn(x: torch.Tensor, y: torch.Tensor, n_classes: int, epochs: int = 1000, batch_size: int = 256,
              lr: float = 1e-3, weight_decay: float = 1e-5, seed: int = 0, device: str | torch.device = "cpu",
              progress: str | None = None) -> FCN:
    """Train an :class:`FCN` on ``x: Tensor[N, C, L]`` (already :func:`fcn_scale`-d) and labels
    ``y: int64[N]`` in ``[0, n_classes)`` with the published recipe (AdamW, cosine schedule over
    all steps, cross-entropy, batch 256, 1000 epochs; the last weights are kept). Returned in eval
    mode on ``device``.

    Raises:
        ValueError: shape mismatch, empty data, labels out of range, epochs < 1.
    """
    if x.dim() != 3 or y.dim() != 1 or len(x) != len(y):
        raise ValueError(f"x must be [N, C, L] and y [N] with the same N, got {list(x.shape)} and {list(y.shape)}")
    if len(x) == 0:
        raise ValueError("x: empty training set")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    y = y.long()
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ValueError(f"y must be in [0, {n_classes}), got range [{int(y.min())}, {int(y.max())}]")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FCN(FCNConfig(in_channels=x.shape[1], n_classes=n_classes)).to(device)
    opt = adamw(model.parameters(), lr, weight_decay)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    x, y = x.to(device), y.to(device)
    model.train()
    epochs_iter = range(epochs)
    if progress:  # a bar over the epochs on stderr, labelled `progress`
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc=progress, unit="epoch", dynamic_ncols=True)
    for _ in epochs_iter:
        perm = torch.randperm(len(x), generator=g).to(device)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2:  # BatchNorm needs two series
                continue
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def check_fcn_weights(fcn_weights: str | os.PathLike | None, dataset: str) -> Path | None:
    """The weights file for ``dataset`` named by ``fcn_weights`` (a folder of ``<Name>.ckpt`` files
    or one file), checked to exist; None when ``fcn_weights`` is None.

    Raises:
        FileNotFoundError: no such folder, or no ``<dataset>.ckpt`` in it, or no such file.
    """
    if fcn_weights is None:
        return None
    path = Path(fcn_weights)
    if path.is_dir():
        path = path / f"{dataset}.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"--fcn-weights: {path} not found (a folder of <Dataset>.ckpt files, or one file)")
    return path


def check_published_channels(path, channels: int) -> None:
    """Refuse the published (univariate) TimeVQVAE FCN weights for multichannel data.

    Raises:
        ValueError: ``channels > 1``.
    """
    if channels > 1:
        raise ValueError(f"--fcn-weights {path}: the published TimeVQVAE FCN evaluators are univariate, the data has "
                         f"{channels} channels; leave out --fcn-weights to train tsvq's own FCN on the train split")


def fcn_evaluator(run_dir: RunDir, ds, fcn_weights, epochs: int, seed: int) -> tuple[FCN, str]:
    """``(fcn, source)``: the published weights for ``ds`` when ``fcn_weights`` is given, else tsvq's
    own FCN trained on the train split for ``epochs`` (cached in ``run_dir/fcn/fcn.pt`` per epochs and seed).

    Raises:
        FileNotFoundError: see :func:`check_fcn_weights`. ValueError: class count mismatch.
    """
    path = check_fcn_weights(fcn_weights, ds.name)
    if path is not None:
        check_published_channels(path, ds.channels)
        model = load_supervised_fcn(path, in_channels=ds.x_train.shape[1])
        if model.cfg.n_classes != ds.n_classes:
            raise ValueError(f"{path}: {model.cfg.n_classes} classes, but {ds.name} has {ds.n_classes}")
        return model, f"published weights {path.name}"
    cache = run_dir.path / "fcn" / "fcn.pt"
    if cache.exists():
        saved = torch.load(cache, map_location="cpu", weights_only=False)
        if saved["epochs"] == epochs and saved["seed"] == seed:
            model = FCN(FCNConfig(**saved["config"]))
            model.load_state_dict(saved["state_dict"])
            return model.eval(), f"tsvq FCN ({epochs} epochs, cached)"
    model = train_fcn(fcn_scale(ds.x_train, ds.x_train), ds.y_train, ds.n_classes, epochs=epochs, seed=seed,
                      progress=f"FCN evaluator on {ds.name} train")
    buf = io.BytesIO()
    torch.save({"config": asdict(model.cfg), "state_dict": model.state_dict(), "epochs": epochs, "seed": seed}, buf)
    run_dir.write_bytes("fcn/fcn.pt", buf.getvalue())
    return model, f"tsvq FCN ({epochs} epochs)"


def fcn_on_test(fcn: FCN, ds) -> tuple[torch.Tensor, float, torch.Tensor]:
    """The real test split scaled for the FCN, the FCN's accuracy on it (the sanity line) and its features."""
    x = fcn_scale(ds.x_test, ds.x_train)
    feats, probs = fcn_predict(fcn, x)
    return x, accuracy(probs, ds.y_test), feats


def cas(x_synthetic: torch.Tensor, y_synthetic: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
        n_classes: int, epochs: int = 1000, seed: int = 0, device: str | torch.device = "cpu",
        progress: str | None = None) -> float:
    """Classification accuracy score (TSTR, Ravuri & Vinyals 2019): train a fresh FCN
    (:func:`train_fcn`, the published recipe) on class-conditional samples and report its accuracy
    on the real test set. All series must already be scaled with :func:`tsvq.models.fcn.fcn_scale`.

    Args:
        x_synthetic: ``Tensor[N, C, L]`` generated series, y_synthetic: ``int64[N]`` the classes they
            were generated for. x_test / y_test: the real test split. epochs: FCN training epochs.
        progress: label of a progress bar over the epochs (stderr); None: no bar.

    Raises:
        ValueError: see :func:`train_fcn`; label range or shape mismatch of the test set.
    """
    if len(x_test) != len(y_test) or len(x_test) == 0:
        raise ValueError(f"x_test / y_test: need the same non-zero length, got {len(x_test)} and {len(y_test)}")
    model = train_fcn(x_synthetic, y_synthetic, n_classes, epochs=epochs, seed=seed, device=device, progress=progress)
    _, probs = fcn_predict(model, x_test)
    return accuracy(probs, y_test.cpu().long())
